/* SPDX-License-Identifier: MIT */
/* catalog: the indexes of the datasets (one per dataset space); similarity search over them
 * is search/query.h.
 *
 * An index is defined by a document (namespace STORE_NS_INDEX, key = the space name: factory,
 * metric, version) and built by a job ("index") from the vectors in LMDB; the built index lives in
 * memory, guarded by a read-write lock (searches read, ingest adds). Records ingested later
 * are added as they are committed.
 *
 * Indexes are saved to the data directory (indexes/<dataset id>-<space>.idx) at a clean
 * shutdown, with a mark in their document; the first ingest into the dataset afterwards
 * removes the mark before its records are committed. At start-up an index whose mark is there
 * is loaded from its file; every other defined index is rebuilt from LMDB by a job, and /readyz
 * answers 503 until all are ready. So an index is never served stale, a crash between a
 * commit and an index update included.
 * Threading: every function is thread-safe. */
#ifndef WINNOW_CATALOG_H
#define WINNOW_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "index/index.h"

struct core;
struct err;
struct job;
struct store_record;
struct store_schema;
typedef struct json_t json_t;

struct catalog;

/* Make the (empty) catalog over d (borrowed until catalog_close); main() stores it in
 * core->catalog before the job runner starts, since resumed build jobs use it. */
int catalog_open(struct catalog **out, struct core *core, struct err *e);

/* Queue a build job for every defined index (core->jobs must be open): the rebuild from LMDB
 * that /readyz waits for. */
int catalog_start(struct catalog *c, struct err *e);
void catalog_close(struct catalog *c);

/* How many of the rebuilds queued at start-up are still queued or running (for /readyz,
 * which stays ready meanwhile: a space without a built index is searched by the exact
 * scan, complete and only slower). */
size_t catalog_building(struct catalog *c);

/* PUT .../indexes/{space} with {"factory": "HNSW32", "metric": "cosine"} (borrowed): 202 with
 * a build job (*job), or *job = 0 when the same definition exists. *view new. */
int catalog_put(struct core *core, const char *dataset, const char *space, const json_t *body,
                json_t **view, uint64_t *job, int *created, struct err *e);
int catalog_get_json(struct core *core, const char *dataset, const char *space, json_t **out,
                     struct err *e);
int catalog_list_json(struct core *core, const char *dataset, json_t **out, struct err *e);
int catalog_delete(struct core *core, const char *dataset, const char *space, struct err *e);

/* Before ingest commits records into dataset ds_id: remove the saved marks of its indexes
 * (once after each load or save). */
void catalog_before_ingest(struct core *core, uint32_t ds_id);

/* Save every built index that changed since it was loaded or saved, with its mark. Call at
 * shutdown, when no request can ingest any more. */
void catalog_save(struct catalog *c);

/* Free the built indexes of dataset ds_id (deleted), and their files. */
void catalog_drop_dataset(struct catalog *c, uint32_t ds_id);

/* After ingest committed recs at rows (borrowed, n each): add their vectors to the built
 * indexes of dataset ds_id. */
void catalog_on_ingest(struct core *core, uint32_t ds_id, const struct store_schema *schema,
                       const struct store_record *recs, const uint64_t *rows, size_t n);

/* After the delete of the record at row of dataset ds_id committed: its vectors leave the
 * built indexes that can remove (index_can_remove: Flat, SQ, PQ; their "vectors" count drops).
 * HNSW and IVF indexes keep them, as they keep an upserted row's old vector; search never answers
 * them (it checks every candidate against the store). Call catalog_before_ingest before the
 * delete commits, as for an ingest: a saved index file would hold the vector. A build running
 * meanwhile may add the row's vector if it read it before the delete. */
void catalog_on_delete(struct core *core, uint32_t ds_id, const struct store_schema *schema,
                       uint64_t row);

/* ---- The built indexes, for the query engine (search/query.c) ----
 * An index is found by (dataset id, space name) each time: entries outlive every request,
 * and the index inside may be swapped (a rebuild) or dropped between two calls. */

/* 1 when the index of space (a name) of dataset ds_id is built, with its metric, factory
 * string (INDEX_FACTORY_MAX + 1 bytes), index_exact_scores() and its dead vectors (old
 * vectors of upserted or deleted rows an HNSW or IVF still holds; 0 for an index that
 * removes them); each out may be NULL. 0 when it is not (never defined, building, or
 * dropped). */
int catalog_index_built(struct catalog *c, uint32_t ds_id, const char *space,
                        enum index_metric *metric, char factory[INDEX_FACTORY_MAX + 1],
                        int *exact_scores, uint64_t *dead);

/* Search that index for nq queries q (borrowed, nq * dim floats, any norm: the index
 * handles its metric) for k candidates each into sc and ids (nq * k each; ids -1 for none),
 * with efSearch ef_search and nprobe nprobe when > 0 (for this search only: the index
 * returns to its defaults). ERR_INVALID "bad_param" when the index type has no such
 * parameter, ERR_UNAVAILABLE "index_gone" when the index is not built (any more). */
int catalog_index_search(struct catalog *c, uint32_t ds_id, const char *space, size_t nq,
                         const float *q, size_t k, double ef_search, double nprobe, float *sc,
                         int64_t *ids, struct err *e);

/* Vectors in that index (replaced ones included, and deleted ones where it cannot remove them:
 * catalog_on_delete); 0 when it is not built. */
size_t catalog_index_count(struct catalog *c, uint32_t ds_id, const char *space);

/* The job kind "index". */
int catalog_job_build(struct job *j, struct err *e);

#endif
