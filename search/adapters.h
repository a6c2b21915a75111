/* SPDX-License-Identifier: MIT */
/* adapters: Cosine Adapters of a dataset in the store (several per dataset), their labelled
 * pairs, the training job, and what search needs to map raw cosines to relevance.
 *
 * An adapter is a document (namespace STORE_NS_ADAPTER, key = its name) holding its definition
 * (space, family, hidden, training options), its version, its pair counts and, once trained, the
 * training report and the chosen global threshold. Its trained weights are a blob (namespace
 * STORE_NS_ADAPTER_WEIGHTS, key = the name): the version, threshold and space that search needs,
 * then algo/adapter.c's layout, so that a search opens an adapter without parsing JSON. Labelled
 * pairs arrive in batches, one blob per batch (namespace STORE_NS_ADAPTER_PAIRS, key =
 * "<name>/<batch number, 10 digits>"): the batch's distinct query vectors (f32) and its pairs
 * (query index, document row, label as given).
 *
 * The version starts at 1 and grows when the definition changes (the weights are dropped;
 * the pairs too when the space changes) and when a training job commits new weights. A
 * training job trains from one snapshot of the pairs and commits only while the adapter still
 * has the definition it was started with.
 *
 * Threading: every function may be called from any thread; the store serialises writes. */
#ifndef WINNOW_RELEVANCE_H
#define WINNOW_RELEVANCE_H

#include <stddef.h>
#include <stdint.h>

struct adapter;
struct core;
struct err;
struct job;
struct store_reader;
typedef struct json_t json_t;

/* Create or change adapter name of dataset from body (borrowed) {"space": ..., "family":
 * "linear", "hidden": 32, ...}. Same definition as now: nothing changes. *view new;
 * *created 1 when it is new. ERR_NOT_FOUND (dataset), ERR_INVALID (with a detail). */
int adapters_put(struct core *core, const char *dataset, const char *name, const json_t *body,
                  json_t **view, int *created, struct err *e);

/* The API view: name, version, definition, pairs, state, training job, report. *out new. */
int adapters_get_json(struct core *core, const char *dataset, const char *name, json_t **out,
                       struct err *e);
int adapters_list_json(struct core *core, const char *dataset, json_t **out, struct err *e);

/* Delete the adapter, its weights and pairs; cancels its training jobs. ERR_NOT_FOUND. */
int adapters_delete(struct core *core, const char *dataset, const char *name, struct err *e);

/* Add the NDJSON pairs in body (borrowed, len bytes) to the adapter: one
 * {"query": [...] | {"record_id": ..., "space": ...}, "id": ..., "label": n} a line. Lines
 * that fail are listed in *out's "errors" and change nothing; the others are committed in
 * one transaction. *out new: {"accepted", "rejected", "errors", "pairs", "queries"}. */
int adapters_pairs_add(struct core *core, const char *dataset, const char *name,
                        const char *body, size_t len, json_t **out, struct err *e);

/* Start a training job. *job its id, *view new (the adapter). ERR_NOT_FOUND, ERR_INVALID
 * (no pairs). */
int adapters_train(struct core *core, const char *dataset, const char *name, uint64_t *job,
                    json_t **view, struct err *e);

/* The job kind "adapter_train". */
int adapters_job_train(struct job *j, struct err *e);

/* The trained weights, to copy an adapter to another daemon (a router's shards): *out new,
 * {"name", "version", "definition", "threshold", "training", "weights": base64 of
 * adapter_save's blob}. ERR_NOT_FOUND; ERR_CONFLICT (adapter_untrained). */
int adapters_weights_get(struct core *core, const char *dataset, const char *name, json_t **out,
                         struct err *e);

/* Commit weights given in body (borrowed; what adapters_weights_get gives, "name" and
 * "version" ignored) as a training would: the version grows, the training report is the
 * body's with "source": "given". The definition must equal the adapter's (ERR_CONFLICT
 * adapter_changed); the weights must fit it (ERR_INVALID). *view new (the adapter). */
int adapters_weights_put(struct core *core, const char *dataset, const char *name,
                         const json_t *body, json_t **view, struct err *e);

/* What this daemon's pairs of the adapter give a training, for a router to train once over
 * every shard: *out new, {"definition", "dim", "queries", "pairs", "skipped",
 * "query_vectors" (base64 f32, queries x dim), "pair_queries" (base64 u32 per pair),
 * "cosines" (base64 f32 per pair), "relevant" (base64 u8 per pair: label >= label_cut)}.
 * ERR_NOT_FOUND. */
int adapters_partial(struct core *core, const char *dataset, const char *name, json_t **out,
                     struct err *e);

/* Train once on the partials of every shard (n, borrowed), as one daemon trains on the same
 * pairs (the pairs are put in an order independent of where they live, so the weights are
 * equal bit for bit): *weights new, the body of adapters_weights_put. ERR_CONFLICT
 * (adapter_differs: the shards' definitions differ), ERR_INVALID (too few queries),
 * ERR_GATEWAY (partials that do not fit together). */
int adapters_fit_partials(json_t *const *parts, size_t n, json_t **weights, struct err *e);

/* ---- Search ---- */

/* A trained adapter opened for queries. */
struct adapters_model {
	struct adapter *a;
	char name[65];
	uint64_t version;
	double threshold; /* the global threshold chosen at training */
};

/* Per query: the mapping's parameters and the cosine bound of a minimum relevance. */
struct adapters_query {
	double alpha, beta;
	double min;     /* NAN: no minimum */
	double cos_min; /* the smallest cosine that can reach min (-inf: all; +inf: none) */
};

/* Open adapter name (trained, over the space named space) from the reader's snapshot.
 * *out new (adapters_free). ERR_NOT_FOUND; ERR_INVALID (untrained, another space). */
int adapters_open(struct store_reader *r, uint32_t ds_id, const char *name, const char *space,
                   struct adapters_model **out, struct err *e);
void adapters_free(struct adapters_model *rl);

/* Prepare one query q (borrowed, dim floats, any norm) for minimum min (NAN: none).
 * ERR_INVALID for a zero or mismatched query. */
int adapters_prepare(const struct adapters_model *rl, const float *q, uint32_t dim, double min,
                      struct adapters_query *out, struct err *e);

/* The relevance of a result with cosine s. */
double adapters_score(const struct adapters_model *rl, const struct adapters_query *rq, float s);

/* The float cosine bound for an exact scan: every cosine whose computed relevance reaches
 * rq->min is >= it (a margin below cos_min absorbs rounding; callers then keep exactly the
 * results with adapters_score >= min). */
float adapters_scan_bound(const struct adapters_query *rq);

#endif
