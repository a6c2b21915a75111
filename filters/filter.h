/* SPDX-License-Identifier: MIT */
/* filter: the filter plug-in interface (a struct of function pointers) and the wrappers
 * that every caller goes through.
 *
 * How to add a filter in three steps:
 *   1. Copy filters/template.c to filters/<type>.c. Rename the struct and the ops; fill in
 *      create (validate params, declare inputs) and score; fit, save/load and rescore are
 *      optional (leave them NULL).
 *   2. Declare `extern const struct filter_ops <type>_filter_ops;` in filters/registry.h and
 *      add `&<type>_filter_ops` to the table in filters/registry.c, keeping it sorted by name.
 *   3. Add a table-driven unit test in tests/unit/filters/ (params, input, expected scores)
 *      and document the type and its params in docs/filters.md.
 *
 * The model: a filter *type* (struct filter_ops, a const singleton) makes filter
 * *instances* (struct filter, one per PUT /v1/datasets/{ds}/filters/{name}). An instance is
 * created from JSON params against the dataset's schema, may be *fitted* on the dataset
 * (k-means centroids, n-gram models, bank statistics; the fitted state is saved as a blob
 * in LMDB and loaded at start-up), and *scores* records in batches. Each scored row gets a
 * float score (higher is better) and a one-byte status:
 *   FILTER_PENDING (0)         not scored yet (also: rows ingested since, for costly filters);
 *   FILTER_SCORED (1)          a finite score;
 *   2 .. FILTER_REASON_BASE-1  unscorable, with a framework reason (enum filter_status);
 *   FILTER_REASON_BASE + i     a finite score that carries the filter's own reason i
 *                              (ops->reasons[i], e.g. basic's "too_few_words" for a 0).
 * Instances may also *rescore* search candidates at query time (Cosine Adapter, DBNorm).
 *
 * Every instance starts with `struct filter base;` (one allocation of ops->size bytes,
 * zeroed, made by filter_create; no void * state). The framework owns base; the type owns
 * the rest of its struct and frees what it allocated in destroy.
 *
 * Threading: an instance is used by one thread at a time for fit; score and rescore must
 * be safe to call concurrently on one instance once it is created or fitted (they may
 * read the instance, never write it). */
#ifndef WINNOW_FILTER_H
#define WINNOW_FILTER_H

#include <stddef.h>
#include <stdint.h>

struct err;
struct store_schema;
typedef struct json_t json_t;

#define FILTER_MAX_INPUTS 4  /* embedding spaces one filter may read */
#define FILTER_TYPE_MAX 32
#define FILTER_REASON_BASE 16

enum filter_status {
	FILTER_PENDING = 0,
	FILTER_SCORED = 1,
	FILTER_NO_VECTOR = 2,   /* a required embedding is absent */
	FILTER_ZERO_VECTOR = 3, /* a required embedding has norm 0 */
	FILTER_NO_FIELD = 4,    /* a required record field is absent (text, image size, ...) */
	FILTER_BAD_FIELD = 5,   /* a required record field has the wrong type or range */
	FILTER_NOT_FINITE = 6,  /* the filter produced NaN or inf (the wrapper sets this) */
	FILTER_UNFITTED = 7,    /* the filter needs a fit that has not happened */
	FILTER_EXCLUDED = 8,    /* the filter does not score this record (e.g. its own training data) */
};

/* What a filter reads from each record. */
enum filter_needs {
	FILTER_NEEDS_BODY = 1u << 0, /* the parsed JSON body (text, image, meta, signals) */
	FILTER_NEEDS_ID = 1u << 1,   /* the record ids */
	/* The type can read binary16 vectors as stored (filter_batch.f16) instead of f32
	 * copies: a scan then skips the conversion for f16 spaces. */
	FILTER_ACCEPTS_F16 = 1u << 2,
};

/* One batch of live rows, in ascending row order. Everything is borrowed for the call. */
struct filter_batch {
	size_t n;
	const uint64_t *rows;
	const unsigned *kinds;          /* enum store_kind bits; NULL unless BODY or ID is needed */
	const char *const *ids;         /* NUL-terminated; NULL unless FILTER_NEEDS_ID */
	json_t *const *bodies;          /* NULL unless FILTER_NEEDS_BODY; an entry may be NULL */
	/* Per declared input i (filter.inputs[i]): n * dims[i] floats, row-major, converted
	 * to f32 whatever the stored dtype; the rows without a vector are zeroed and have
	 * has_vec[i][j] == 0. */
	const float *vecs[FILTER_MAX_INPUTS];
	const uint8_t *has_vec[FILTER_MAX_INPUTS];
	uint32_t dims[FILTER_MAX_INPUTS];
	/* Only for a type with FILTER_ACCEPTS_F16: for an input stored as f16, f16[i] may hold
	 * the n * dims[i] halves instead (then vecs[i] is NULL); a type must handle either. */
	const uint16_t *f16[FILTER_MAX_INPUTS];
};

struct filter;
struct filter_scan;

struct filter_ops {
	const char *name;    /* the type name in the API, [a-z_]+; the registry's sort key */
	const char *summary; /* one line for docs and GET /v1/filter-types */
	size_t size;         /* sizeof the instance struct, which starts with struct filter */
	int cheap;           /* 1: score rows on ingest; 0: mark them pending instead */
	int needs_fit;       /* 1: score gives FILTER_UNFITTED until fit has run */
	/* Reasons this type attaches to finite scores: reasons[i] is status
	 * FILTER_REASON_BASE + i. NULL-terminated; may be NULL. */
	const char *const *reasons;

	/* Validate params (borrowed) against schema (borrowed) and set up f: inputs, needs and
	 * any type fields. Unknown or bad params: ERR_INVALID with a slug and a detail that names
	 * the param (the API answers 422). Required. */
	int (*create)(struct filter *f, const json_t *params, const struct store_schema *schema,
	              struct err *e);
	/* Fit on the dataset: pull batches with filter_scan_next() until it returns 0. May be
	 * NULL (nothing to fit). */
	int (*fit)(struct filter *f, struct filter_scan *scan, struct err *e);
	/* Serialise the fitted state: *blob new (free()), *len its size. NULL when fit is. */
	int (*save)(const struct filter *f, void **blob, size_t *len, struct err *e);
	/* Restore the fitted state from a blob (borrowed) that save wrote. NULL when fit is. */
	int (*load)(struct filter *f, const void *blob, size_t len, struct err *e);
	/* Score a batch: for each j < b->n, scores[j] and status[j] (FILTER_SCORED, an
	 * unscorable status, or FILTER_REASON_BASE + i). Outputs borrowed, b->n entries. Required. */
	int (*score)(const struct filter *f, const struct filter_batch *b, float *scores,
	             uint8_t *status, struct err *e);
	/* Rescore n search candidates of one query at query time: query (borrowed, dim floats,
	 * L2-normalised), rows and raw scores (borrowed, n each); out (borrowed, n) gets the new
	 * scores, higher is better. May be NULL (the wrapper then copies raw). */
	int (*rescore)(const struct filter *f, const float *query, uint32_t dim, size_t n,
	               const uint64_t *rows, const float *raw, float *out, struct err *e);
	/* Free what the type allocated (not f itself). May be NULL. */
	void (*destroy)(struct filter *f);

	/* ---- Optional: labels, explanations, another instance's state ---- */
	/* The name of a u32 the type attaches to each scored row ("cluster"), kept in a third
	 * row array of the instance (subset steps can select per label); NULL = none. A type
	 * with a label provides score_label. */
	const char *label;
	/* score, plus labels[j] for every row (FILTER_NO_LABEL where none). labels may be
	 * NULL (then it is score). Required when label is set. */
	int (*score_label)(const struct filter *f, const struct filter_batch *b, float *scores,
	                   uint8_t *status, uint32_t *labels, struct err *e);
	/* What the fitted state says about one row, for decisions: *out new (a JSON object) or
	 * NULL. An integer member named "<x>_row" names a row: callers with a store add "<x>"
	 * with that record's id. May be NULL. */
	int (*explain)(const struct filter *f, uint64_t row, json_t **out, struct err *e);
	/* Take what fit needs from other (borrowed for the call; fitted or not), the instance
	 * named by f->uses. Called before fit when create set f->uses. May be NULL. */
	int (*use)(struct filter *f, const struct filter *other, struct err *e);
	/* Check the instance against the data before it is stored, so that PUT refuses it (422)
	 * rather than accept it and fail its scoring job later: scan delivers the dataset's live
	 * rows like a fit's (filter_scan_open_other included). Returns 0 or ERR_INVALID with a
	 * slug; may add warnings (filter_warn). Must cost far less than fit (CoLoR-Filter's
	 * prior overlap check reads ids and text, trains nothing). May be NULL. */
	int (*check)(struct filter *f, struct filter_scan *scan, struct err *e);

	/* ---- Optional: a corpus-wide fit over the shards of a cluster (docs/scale.md) ---- */
	/* What this daemon's records contribute to the fit (CoLoR-Filter's raw n-gram counts),
	 * as a JSON object (*out new) that a router merges across shards; the type's params
	 * then take the merged object, and a fit from it is the fit one daemon holding every
	 * record would make. scan as for fit. May be NULL. */
	int (*partial)(struct filter *f, struct filter_scan *scan, json_t **out, struct err *e);
};

#define FILTER_NO_LABEL UINT32_MAX

struct filter {
	const struct filter_ops *ops;
	unsigned ninputs;
	unsigned inputs[FILTER_MAX_INPUTS]; /* schema space indexes the filter reads */
	unsigned needs;                     /* enum filter_needs bits */
	int fitted;                         /* 1 after fit or load */
	/* Another instance of the dataset whose state fit takes through ops->use (a
	 * semdedup reusing a prototypes filter's centroids); "" = none. Set by create. */
	char uses[65];
	/* Warnings about the fitted state that the caller should see (e.g. a CoLoR-Filter prior
	 * that overlaps the pool, allowed by a param): a JSON array of objects with at least
	 * "code" and "detail", or NULL for none. Set by fit or check through filter_warn,
	 * cleared by filter_fit before each fit, freed by filter_free. */
	json_t *warnings;
};

/* Create an instance of ops from params (borrowed JSON object; NULL = {}) for a dataset
 * with schema (borrowed). *out new (filter_free), set only on success. ERR_INVALID with a
 * detail for bad params (params that are not an object included). */
int filter_create(struct filter **out, const struct filter_ops *ops, const json_t *params,
                  const struct store_schema *schema, struct err *e);

/* Free an instance. f may be NULL. */
void filter_free(struct filter *f);

/* Fit f on the data that scan delivers; sets f->fitted. A type without fit: 0. */
int filter_fit(struct filter *f, struct filter_scan *scan, struct err *e);

/* Saved fitted state (*blob new, free(); *len), or *blob = NULL, *len = 0 when the type has
 * none or f is not fitted. */
int filter_save(const struct filter *f, void **blob, size_t *len, struct err *e);

/* Load fitted state; sets f->fitted. ERR_INVALID when the type has no state. */
int filter_load(struct filter *f, const void *blob, size_t len, struct err *e);

/* Score a batch through ops->score and enforce the contract once: a status of
 * FILTER_SCORED or a reason with a non-finite score becomes FILTER_NOT_FINITE, every
 * unscorable row's score becomes NaN, an unfitted filter that needs a fit gives
 * FILTER_UNFITTED for all rows without calling the type. */
int filter_score_batch(const struct filter *f, const struct filter_batch *b, float *scores,
                       uint8_t *status, struct err *e);

/* filter_score_batch plus a label per row into labels (borrowed, b->n entries; may be
 * NULL): the type's score_label when it has a label, else FILTER_NO_LABEL everywhere;
 * unscorable rows always get FILTER_NO_LABEL. */
int filter_score_batch_labels(const struct filter *f, const struct filter_batch *b,
                              float *scores, uint8_t *status, uint32_t *labels, struct err *e);

/* ops->explain of row, or *out = NULL when the type has none or f is not fitted. */
int filter_explain(const struct filter *f, uint64_t row, json_t **out, struct err *e);

/* ops->check (0 when the type has none). */
int filter_check(struct filter *f, struct filter_scan *scan, struct err *e);

/* ops->partial (ERR_INVALID, slug no_partial, when the type has none). */
int filter_partial(struct filter *f, struct filter_scan *scan, json_t **out, struct err *e);

/* Append warning (taken: a JSON object with "code" and "detail") to f->warnings. Returns 0
 * or ERR_NOMEM (warning is freed either way). */
int filter_warn(struct filter *f, json_t *warning);

/* ops->use (ERR_INVALID when the type has none). */
int filter_use(struct filter *f, const struct filter *other, struct err *e);

/* Rescore candidates (see ops->rescore); copies raw to out when the type has no rescore.
 * Non-finite results become -inf (never kept by a threshold). */
int filter_rescore(const struct filter *f, const float *query, uint32_t dim, size_t n,
                   const uint64_t *rows, const float *raw, float *out, struct err *e);

/* True when status counts as a finite score (FILTER_SCORED or a filter reason). */
int filter_status_scored(uint8_t status);

/* The API name of a status: "pending", "scored", "no_vector", ..., or the type's reason
 * name for FILTER_REASON_BASE + i (ops may be NULL: then "reason_<i>"). Static string. */
const char *filter_status_name(const struct filter_ops *ops, uint8_t status);

/* ---- Helpers for types: params with clear 422 details ----
 * Each returns 0 or ERR_INVALID with slug "unknown_param" / "bad_param" naming the param. */

/* Every key of params (borrowed object) is in allowed (a NULL-terminated list). */
int filter_params_known(const json_t *params, const char *const *allowed, struct err *e);

/* params[key] names a space of schema: *space gets its index. Absent: ERR_INVALID when
 * required, else 0 with *space untouched. */
int filter_param_space(const json_t *params, const char *key, const struct store_schema *schema,
                       int required, unsigned *space, struct err *e);

/* params[key] is a number in [min, max] (*out untouched when absent). integer = 1: it must
 * be a JSON integer. */
int filter_param_number(const json_t *params, const char *key, double min, double max,
                        int integer, double *out, struct err *e);

/* params[key] is a boolean (*out untouched when absent). */
int filter_param_bool(const json_t *params, const char *key, int *out, struct err *e);

/* params[key] is one of choices (NULL-terminated): *out its index (untouched when absent). */
int filter_param_choice(const json_t *params, const char *key, const char *const *choices,
                        unsigned *out, struct err *e);

/* ---- The scan that fit pulls batches from ----
 * A struct filter_scan is provided by whoever runs the fit (filters/scan.c over a store
 * snapshot; tests over arrays). filter_scan_next() gives the next batch of live rows with
 * the inputs and needs of the filter it was opened for; *b is borrowed until the next call.
 * Returns 1 with a batch, 0 at the end, or a negative code (ERR_CANCELLED when the job
 * running the fit was cancelled). */
int filter_scan_next(struct filter_scan *scan, const struct filter_batch **b, struct err *e);

/* The scan's generic shape, so that tests and other sources can provide one: next is
 * called by filter_scan_next. Embed it first in a source's own struct. */
struct filter_scan {
	int (*next)(struct filter_scan *scan, const struct filter_batch **b, struct err *e);
};

/* A scan that can also open scans of other datasets of the same snapshot, named by their
 * API name, for a type that trains on named corpora (CoLoR-Filter's downstream and prior
 * text). base.next must be filter_scan_ext_next (that is how filter_scan_open_other knows
 * one); next is the real next. Only for a filter without embedding inputs. open_other: *out
 * new, freed with close_other. */
struct filter_scan_ext {
	struct filter_scan base;
	int (*next)(struct filter_scan *scan, const struct filter_batch **b, struct err *e);
	int (*open_other)(struct filter_scan *scan, const char *dataset, struct filter_scan **out,
	                  struct err *e);
	void (*close_other)(struct filter_scan *other);
};

/* The base.next of every struct filter_scan_ext: calls its next. */
int filter_scan_ext_next(struct filter_scan *scan, const struct filter_batch **b,
                         struct err *e);

/* A scan of dataset next to scan's: ERR_INVALID (slug no_other_datasets) when scan is not a
 * struct filter_scan_ext, ERR_NOT_FOUND (dataset_not_found) for an unknown name. */
int filter_scan_open_other(struct filter_scan *scan, const char *dataset,
                           struct filter_scan **out, struct err *e);

/* Close what filter_scan_open_other gave (other may be NULL). */
void filter_scan_close_other(struct filter_scan *scan, struct filter_scan *other);

#endif
