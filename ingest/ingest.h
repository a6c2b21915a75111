/* SPDX-License-Identifier: MIT */
/* ingest: every write of records and what it owes the layers that keep derived state.
 *
 * A record write is durable in the store first; then each service that keeps state per row is
 * told, in this order: the filter instances (scores, statuses, labels: curate/instance.c), the
 * indexes (search/catalog.c) and the hubness normalisers (per-row statistics, activation sets:
 * search/normalizers.c). The hooks run after the commit and never undo it: a hook that fails
 * is logged and leaves state that the next job (a rescore, an index build, a normaliser PUT)
 * recomputes. The HTTP handlers (api/records.c, api/signals.c), the benches and the tests all
 * write through here, so no writer can bypass a hook.
 *
 * Threading: every function may be called from any thread; the store serialises the writes. */
#ifndef WINNOW_INGEST_H
#define WINNOW_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct core;
struct err;

/* Write n decoded records (borrowed; validated against ds->schema by the caller, as api/codec.c
 * does) into dataset ds (borrowed, from store_dataset_get), then run the hooks: the cheap
 * filters score them (the others mark them pending), the built indexes add their vectors, the
 * ready normalisers compute their statistics. Before the commit the dataset's saved index files
 * stop counting as current (a crash then rebuilds the indexes).
 * Returns 0 once every record is committed, whatever the hooks do (their failures are logged:
 * a failed scoring leaves the rows pending). On failure nothing ran after the store, and a
 * prefix of the records may be committed (store_put_records; a retry is safe). rows_out
 * (borrowed, n entries, may be NULL) gets each record's row. ERR_NOT_FOUND when the dataset went
 * away, ERR_NOMEM, ERR_STORE. */
int ingest_commit(struct core *core, const struct store_dataset_info *ds,
                  const struct store_record *recs, size_t n, uint64_t *rows_out, struct err *e);

/* Delete record id (id_len bytes) of dataset ds and, once the delete is committed, its state in
 * every hook: its scores, statuses and labels are reset (the filters' stats count it no more),
 * its vectors leave the indexes that can remove them (Flat, SQ, PQ: their "vectors" drops; an
 * HNSW or IVF index keeps them and search skips them), and the normalisers zero its
 * statistics and drop it from their activation sets. row_out (may be NULL) gets the row it had.
 * Returns 0 once the delete is committed (hook failures are logged); ERR_NOT_FOUND
 * (record_not_found) when there is no such record. */
int ingest_delete(struct core *core, const struct store_dataset_info *ds, const char *id,
                  size_t id_len, uint64_t *row_out, struct err *e);

/* A signals patch of existing records: fn(ctx, t, e) rewrites their bodies in one write
 * transaction (as store_write: it may run more than once) and writes into rows (borrowed, n
 * entries) the row of each patched record. After the commit the cheap filters that read bodies
 * score those rows again (the others keep their scores: no costly type reads signals); indexes
 * and normalisers are untouched (a patch changes no vector). Returns fn's or the store's code
 * when the transaction did not commit (nothing changed, no hook ran), else 0 (a failed
 * rescoring is logged and leaves the old scores). */
int ingest_patch(struct core *core, const struct store_dataset_info *ds, store_txn_fn fn,
                 void *ctx, uint64_t *rows, size_t n, struct err *e);

#endif
