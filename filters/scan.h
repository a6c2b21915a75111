/* SPDX-License-Identifier: MIT */
/* scan: batches of live rows of one dataset, read from a store snapshot, in the shape a
 * filter wants (struct filter_batch): f32 vectors of its input spaces, and ids, kinds and
 * parsed bodies when it needs them.
 *
 * Owns its batch buffers (reused from batch to batch) and the parsed bodies of the current
 * batch. Borrows the reader, the schema and the filter for its whole life. A batch covers
 * rows of one vector block (STORE_BLOCK_ROWS rows), so a scan reads each space's blocks
 * once, in key order. One thread at a time. */
#ifndef WINNOW_SCAN_H
#define WINNOW_SCAN_H

#include <stdint.h>

#include "filters/filter.h"

struct err;
struct store_reader;
struct store_schema;
struct scan;

/* Stop hook: called before every batch with the first row it will cover; a non-zero
 * return ends the scan with that code (e.g. ERR_CANCELLED). */
typedef int (*scan_stop_fn)(void *ctx, uint64_t next_row);

/* Open a scan of the live rows in [first, end) of dataset ds_id through reader r, for
 * filter f (its inputs and needs). r, schema and f are borrowed until scan_close.
 * stop may be NULL. *out set only on success. */
int scan_open(struct scan **out, struct store_reader *r, uint32_t ds_id,
              const struct store_schema *schema, const struct filter *f, uint64_t first,
              uint64_t end, scan_stop_fn stop, void *stop_ctx, struct err *e);

/* The next batch: 1 with *b set (borrowed until the next call), 0 at the end, or a negative
 * code. A batch has at least one row. */
int scan_next(struct scan *sc, const struct filter_batch **b, struct err *e);

/* The scan as the generic struct filter_scan that filter_fit() pulls from. */
struct filter_scan *scan_base(struct scan *sc);

void scan_close(struct scan *sc);

#endif
