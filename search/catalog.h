/* SPDX-License-Identifier: MIT */
/* catalog: the indexes of the datasets (one per dataset space) and similarity search.
 *
 * An index is defined by a document (namespace 'x', key = the space name: factory, metric,
 * version) and built by a job ("index") from the vectors in LMDB; the built index lives in
 * memory, guarded by a read-write lock (searches read, ingest adds). Records ingested later
 * are added as they are committed.
 *
 * Indexes are saved to the data directory (indexes/<dataset id>-<space>.idx) at a clean
 * shutdown, with a mark in their document; the first ingest into the dataset afterwards
 * removes the mark before its records are committed. At start-up an index whose mark is there
 * is loaded from its file; every other defined index is rebuilt from LMDB by a job, and /readyz
 * answers 503 until all are ready. So an index is never served stale, a crash between a
 * commit and an index update included.
 *
 * Search is exact-scored: candidates from the index (or every record, for an exact search,
 * a threshold search, or a space without an index) are scored from the vectors in LMDB, so
 * scores are the true ones whatever the index type, and a threshold search is complete.
 * Threading: every function is thread-safe. */
#ifndef WINNOW_CATALOG_H
#define WINNOW_CATALOG_H

#include <stddef.h>
#include <stdint.h>

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

/* 1 when every defined index is built (for /readyz). */
int catalog_ready(struct catalog *c);

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
 * built indexes that can remove (index_can_remove: Flat, IVF; their "vectors" count drops).
 * An HNSW index keeps them, as it keeps an upserted row's old vector; search never answers
 * them (it checks every candidate against the store). Call catalog_before_ingest before the
 * delete commits, as for an ingest: a saved index file would hold the vector. A build running
 * meanwhile may add the row's vector if it read it before the delete. */
void catalog_on_delete(struct core *core, uint32_t ds_id, const struct store_schema *schema,
                       uint64_t row);

/* The most query vectors of one search request (a batch). */
#define CATALOG_BATCH_MAX 1024

/* Query vectors sent as raw rows (POST .../search with application/octet-stream): len bytes
 * of little-endian f32 (f16 = 0) or f16 (f16 = 1) values, dim of them per row. */
struct catalog_rows {
	const void *data;
	size_t len;
	int f16;
};

/* POST .../search (count = 0) or .../search:count (count = 1) with body (borrowed): the query
 * is the body's "vector", "vectors" or "record_id", or rows (NULL for a JSON request; then
 * the body holds the other parameters only, and the answer is a batch's).
 * *out new, the answer as JSON text (*len bytes, NUL-terminated): {"results": [...],
 * "stats": {...}, "page_token"} or {"count": n, ...}, or for a batch {"queries": [one of
 * those per query]}.
 * ERR_MALFORMED for a bad page token, ERR_INVALID for a bad request (with a detail). */
int catalog_search(struct core *core, const char *dataset, const json_t *body,
                   const struct catalog_rows *rows, int count, char **out, size_t *len,
                   struct err *e);

/* The job kind "index". */
int catalog_job_build(struct job *j, struct err *e);

#endif
