/* SPDX-License-Identifier: MIT */
/* router_models: the router's routes of corpus-wide models (cluster/models.h does the work):
 * hubness normalisers (PUT with inline banks, GET and :sync making the activation sets global,
 * :stats from each record's owner, and the search with "hubness", called by router_search)
 * CoLoR-Filter n-gram filters (PUT gathers the shards' counts, sums them and fits every shard
 * from the sums) and prototypes (PUT gathers the shards' id-hash samples, fits k-means once and
 * broadcasts the centroids) and semdedup (the centroids as prototypes', then every shard's pool
 * deduplicated here and each shard given the decisions for its records), and Cosine Adapters
 * (pairs to the shard of their judged record; :train over every shard's :partial, trained here
 * with search/adapters.c and the weights PUT on every shard). */
#ifndef WINNOW_ROUTER_MODELS_H
#define WINNOW_ROUTER_MODELS_H

struct http_req;
struct http_res;
typedef struct json_t json_t;

int rmodels_hubness_put(struct http_req *r, struct http_res *res);
int rmodels_hubness_get(struct http_req *r, struct http_res *res);
int rmodels_hubness_sync(struct http_req *r, struct http_res *res);
int rmodels_hubness_stats(struct http_req *r, struct http_res *res);
int rmodels_filter_put(struct http_req *r, struct http_res *res);
/* POST .../adapters/{a}:train: trained here on every shard's pairs, the weights given to every
 * shard; answers the adapter (200). */
int rmodels_adapter_train(struct http_req *r, struct http_res *res);
/* POST .../adapters/{a}/pairs: each pair to the shard of its judged record. */
int rmodels_adapter_pairs(struct http_req *r, struct http_res *res);

/* 1 when a filter type's fit is made over every shard here (color_ngram, prototypes,
 * semdedup). */
int rmodels_filter_fits(const char *type);

/* A search whose body (borrowed) has "hubness": res filled. Returns 0. */
int rmodels_hubness_search(struct http_req *r, struct http_res *res, const json_t *body);

#endif
