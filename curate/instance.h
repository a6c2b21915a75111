/* SPDX-License-Identifier: MIT */
/* instance: filter instances of a dataset, persisted in the store, their score arrays,
 * the scoring job, scoring on ingest, and score statistics.
 *
 * An instance is a document (namespace STORE_NS_FILTER, key = its name) holding its type, params,
 * version, and the ids of its two row arrays: `score` (f32 per row, NaN when there is no
 * finite score) and `status` (u8 per row, enum filter_status or a type's reason), and a
 * third, `label` (u32 per row), for a type with a label (ops->label: prototypes' and
 * semdedup's cluster). Fitted state is a blob (namespace STORE_NS_FITTED, key = the name). The
 * version starts at 1 and grows when the params change (PUT with other params) or a fit changes the
 * fitted state.
 *
 * A PUT with new params allocates fresh arrays (the old ones are dropped in the same
 * transaction), cancels the instance's open scoring job and starts a new one: a job's
 * chunks commit only while the instance still has the arrays the job was started for.
 *
 * Threading: every function may be called from any thread; the store serialises writes. */
#ifndef WINNOW_INSTANCE_H
#define WINNOW_INSTANCE_H

#include <stddef.h>
#include <stdint.h>

struct core;
struct err;
struct filter_ops;
struct filter;
struct job;
struct store;
struct store_reader;
struct store_record;
struct store_schema;
typedef struct json_t json_t;

/* What other modules need to read an instance's scores. */
struct instance_ref {
	char name[65];
	const struct filter_ops *ops;
	uint64_t version;
	uint32_t arr_score, arr_status;
	uint32_t arr_label; /* u32 per row when ops->label is set, else 0 */
};

/* Create or replace filter name of dataset from body {"type": ..., "params": {...}}
 * (borrowed). Same type and params as now: nothing changes, *job = 0, *created = 0.
 * Otherwise the instance is written and a scoring job created: *job its id, *created 1 when
 * it is new. *view new: the instance as GET shows it. ERR_NOT_FOUND (dataset),
 * ERR_MALFORMED / ERR_INVALID (body, type, params: with a detail). */
int instance_put(struct core *core, const char *dataset, const char *name, const json_t *body,
                 json_t **view, uint64_t *job, int *created, struct err *e);

/* Before instance_put: check a definition (body as for instance_put) against the dataset's
 * data with its type's check (filter_check; e.g. a CoLoR-Filter prior or downstream dataset
 * that overlaps the pool, slug prior_overlaps_pool). Reads one snapshot; costs a pass over
 * the datasets the check reads. 0 when the type has no check, or when the body, the type,
 * the params or the dataset are bad (instance_put reports those); ERR_INVALID with the
 * check's slug and detail; ERR_NOMEM. */
int instance_check(struct core *core, const char *dataset, const json_t *body, struct err *e);

/* POST .../filters:partial with a filter definition body {"type", "params"} (borrowed): what
 * this daemon's records contribute to that filter's fit (filter_partial), for a router to
 * merge across the shards of a cluster; nothing is stored. *out new. ERR_NOT_FOUND (dataset),
 * ERR_INVALID (unknown type, bad params, a type without partials: no_partial). */
int instance_partial(struct core *core, const char *dataset, const json_t *body, json_t **out,
                     struct err *e);

/* The API view of an instance: name, type, params, version, fitted, created, updated,
 * scoring (the last scoring job's state and progress), warnings (what its last fit warned
 * about, filter_warn; an array, empty when none). *out new. ERR_NOT_FOUND. */
int instance_get_json(struct core *core, const char *dataset, const char *name, json_t **out,
                      struct err *e);

/* All instances of dataset, by name. *out new (a JSON array). */
int instance_list_json(struct core *core, const char *dataset, json_t **out, struct err *e);

/* Delete an instance, its arrays and fitted state; cancels its jobs. ERR_NOT_FOUND. */
int instance_delete(struct core *core, const char *dataset, const char *name, struct err *e);

/* Start a job that (fits, when the type fits, and) scores every record again. *job its id. */
int instance_rescore(struct core *core, const char *dataset, const char *name, uint64_t *job,
                     struct err *e);

/* Statistics of the current scores (see docs/api.md): bins 1..1000, threshold NaN = none.
 * range (may be NULL: the scores' own [min, max]) is the histogram's [lo, hi]: a router gives
 * every shard the global one, so that the shards' bins add up; scores outside it are left out
 * of the histogram. *out new. */
int instance_stats_json(struct core *core, const char *dataset, const char *name,
                        unsigned bins, double threshold, const double *range, json_t **out,
                        struct err *e);

/* After records were committed by ingest: score them with every cheap instance of the
 * dataset and mark them pending for the others, in one transaction. recs and rows
 * (borrowed, n each) are what store_put_records wrote. A failure leaves those rows pending
 * (GET .../stats counts them; POST .../filters/{name}:score rescores). */
int instance_on_ingest(struct core *core, uint32_t ds_id, const struct store_schema *schema,
                       const struct store_record *recs, const uint64_t *rows, size_t n,
                       struct err *e);

/* After the signals of existing records were patched and committed: the cheap instances that
 * read bodies (FILTER_NEEDS_BODY) score those rows again from a fresh snapshot (their vectors
 * included; one whose fitted state does not load marks them pending). The other instances
 * keep their scores: costly types read no signals. rows (borrowed, n entries, any order,
 * repeats allowed) are the patched rows. A failure leaves the old scores (logged by the
 * caller). */
int instance_on_patch(struct core *core, uint32_t ds_id, const struct store_schema *schema,
                      const uint64_t *rows, size_t n, struct err *e);

/* After the record at row of dataset ds_id was deleted and committed: every instance's score,
 * status and label at row are reset to what a row never scored reads (NaN, FILTER_PENDING,
 * FILTER_NO_LABEL), in one transaction, so no array keeps a gone record's result (the stats
 * count live rows only, whatever the arrays hold). Fitted state (centroids, a semdedup's
 * clusters) is left as fitted: the next fit or rescore forgets the row. A failure leaves the
 * old values, which nothing reads for a row that is not live (logged by the caller). */
int instance_on_delete(struct core *core, uint32_t ds_id, uint64_t row, struct err *e);

/* A live filter of instance name (params from its document, fitted state loaded when the
 * type fits), for query-time rescoring. *out new (filter_free). ERR_NOT_FOUND. */
int instance_open(struct store_reader *r, uint32_t ds_id, const struct store_schema *schema,
                  const char *name, struct filter **out, struct err *e);

/* Add to o (borrowed JSON object) what instance ref says about row beyond its score: its
 * label under the type's name ("cluster": 12), and "explain", the type's account of the row
 * from its fitted state, where every integer member "<x>_row" is followed by "<x>" with
 * that record's id (semdedup: "duplicate_of"). Best effort: what cannot be read is left
 * out. r, schema, ref borrowed. */
void instance_explain_row(struct store_reader *r, uint32_t ds_id,
                          const struct store_schema *schema, const struct instance_ref *ref,
                          uint64_t row, json_t *o);

/* GET .../filters/{name}/records/{id}: the record's score, status, label and explain under
 * filter name (see instance_explain_row). *out new. ERR_NOT_FOUND (dataset, filter,
 * record). */
int instance_record_json(struct core *core, const char *dataset, const char *name,
                         const char *id, size_t id_len, json_t **out, struct err *e);

/* POST .../filters/{name}:sweep with body {"eps": [..]} (borrowed): for a fitted semdedup
 * filter, how many records each eps would keep. *out new. ERR_INVALID (body, type),
 * ERR_CONFLICT (not fitted yet), ERR_NOT_FOUND. */
int instance_sweep_json(struct core *core, const char *dataset, const char *name,
                        const json_t *body, json_t **out, struct err *e);

/* Read the instance name of dataset ds_id in reader r. ERR_NOT_FOUND (slug unknown_filter). */
int instance_ref_read(struct store_reader *r, uint32_t ds_id, const char *name,
                      struct instance_ref *out, struct err *e);

/* Score the live rows in [lo, hi) of dataset ds with f from one snapshot per thread, on
 * threads threads (0 = instance_score_threads()), each over a contiguous slice of whole
 * vector blocks. scores and status (borrowed, hi - lo entries) get every row's result;
 * rows that are not live get NaN and FILTER_PENDING. job (may be NULL) is polled with
 * jobs_should_stop between batches (ERR_CANCELLED). */
int instance_score_range(struct store *s, uint32_t ds, const struct store_schema *schema,
                         const struct filter *f, uint64_t lo, uint64_t hi, float *scores,
                         uint8_t *status, unsigned threads, struct job *job, struct err *e);

/* instance_score_range plus the rows' labels into labels (borrowed, hi - lo entries, may
 * be NULL; FILTER_NO_LABEL where none). */
int instance_score_range_labels(struct store *s, uint32_t ds, const struct store_schema *schema,
                                const struct filter *f, uint64_t lo, uint64_t hi,
                                float *scores, uint8_t *status, uint32_t *labels,
                                unsigned threads, struct job *job, struct err *e);

/* The scoring threads used by default: the online CPUs, at most 8. */
unsigned instance_score_threads(void);

/* The job kind "score" (see core/jobs.h). */
int instance_job_score(struct job *j, struct err *e);

/* The current scores of filter name of dataset that a selection can keep: the finite scores
 * of live, scored rows (the "count" of instance_stats_json), in row order. *vals_out new
 * (free; not NULL on success, even when *n_out is 0), *n_out their number, *version
 * (borrowed, may be NULL) the instance's version. ERR_NOT_FOUND (dataset, filter),
 * ERR_NOMEM, ERR_STORE; outputs untouched on an error. */
int instance_scores(struct core *core, const char *dataset, const char *name, float **vals_out,
                    size_t *n_out, uint64_t *version, struct err *e);

#endif
