/* SPDX-License-Identifier: MIT */
/* models: the router's side of corpus-wide models (docs/scale.md, "Corpus-wide models"): a
 * model fitted on records spread over the shards made equal to the model one daemon holding
 * every record fits.
 *
 * - Hubness normalisers: the banks go to every shard inline, so a shard computes log Z_q,
 *   log Z_g and r_B of its records exactly; the activation sets (every bank item's top-k over
 *   the whole gallery) are merged here from each shard's top-k (:topk) and sent back
 *   (:activation). A search with a normaliser takes the global raw top candidates, their
 *   statistics from their owners (:stats) and ranks them here with algo/hubness.c, as one
 *   daemon does.
 * - k-means of the prototypes filter: each shard's id-hash sample (filters:partial) merged
 *   here into the sample one daemon draws, k-means fitted here, the centroids broadcast as the
 *   param "centroids".
 * - SemDeDup: the centroids fitted as for prototypes; then every shard's pool (its records'
 *   clusters, cosines and unit vectors, filters:partial) ordered and deduplicated here with
 *   the filter's own code, and each shard given the decisions for its records (param
 *   "given").
 * - CoLoR-Filter n-gram models: the raw n-gram counts of every shard (filters:partial) are
 *   summed here and the fit made from the sums on every shard (param "counts").
 *
 * Threading: no shared state; every function may run on any thread (fanout is thread-safe). */
#ifndef WINNOW_CLUSTER_MODELS_H
#define WINNOW_CLUSTER_MODELS_H

#include <stddef.h>

struct err;
struct fanout;
typedef struct json_t json_t;

/* The activation sets from the shards' :topk answers (n, borrowed): each bank item's k best
 * entries over all of them (score descending, then id), as {"in_aq": [ids], "in_ag": [ids]}
 * (new, sorted, no duplicates). NULL on a malformed answer or no memory. */
json_t *models_topk_sets(json_t *const *parts, size_t n);

/* Make the activation flags of normaliser name of dataset ds global on every shard: when some
 * shard's "activation" is not "global" (or always, with force), its :topk is read from every
 * shard, merged and sent back with each shard's own version. rid: the X-Request-Id (may be
 * NULL). ERR_NOT_FOUND, ERR_CONFLICT (a shard not ready), ERR_GATEWAY, or a shard's refusal
 * as ERR_INVALID with its detail. */
int models_hubness_sync(struct fanout *f, const char *ds, const char *name, int force,
                        const char *rid, struct err *e);

/* A search with "hubness" (body borrowed: one query, no "queries", no params.exact) over the
 * shards, ranked as one daemon ranks it: *out new, the search answer. ERR_INVALID,
 * ERR_NOT_SUPPORTED (a batch, or params.exact), ERR_GATEWAY, or as models_hubness_sync. */
int models_hubness_search(struct fanout *f, const char *ds, const json_t *body, const char *rid,
                          json_t **out, struct err *e);

/* The color_ngram partials (n, borrowed: filters:partial answers) summed: *out new, the
 * object the param "counts" takes. ERR_INVALID when they do not fit together. */
int models_counts_merge(json_t *const *parts, size_t n, json_t **out, struct err *e);

/* The prototypes partials (n, borrowed: each shard's id-hash sample, filters:partial) merged
 * into the global sample (the cap smallest (hash, id) of all) and k-means fitted on it with
 * the kmeans params of params (borrowed): *centroids new, an array of k arrays of dim numbers,
 * the value of the param "centroids". ERR_INVALID (too few points, bad params), ERR_GATEWAY
 * (partials that do not fit together). */
int models_kmeans_fit(json_t *const *parts, size_t n, const json_t *params, json_t **centroids,
                      struct err *e);

/* SemDeDup's dedup stage over the shards: the semdedup partials (n, borrowed: each shard's
 * pool with clusters, cosines to the centroids and unit vectors) ordered and deduplicated here
 * as one daemon does (semdedup_dedup) with the dedup params of params (borrowed). given (n
 * entries, borrowed) gets per shard the decisions for its own records (new), the value of its
 * param "given". ERR_INVALID (bad params), ERR_GATEWAY (partials that do not fit together). */
int models_semdedup_given(json_t *const *parts, size_t n, const json_t *params, json_t **given,
                          struct err *e);

#endif
