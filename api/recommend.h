/* SPDX-License-Identifier: MIT */
/* recommend: POST /v1/datasets/{ds}/filters/{f}:recommend, the compute-aware keep fraction
 * (spec section 6, algo/scaling): the predicted error of keeping the top m buckets of the
 * filter's ranking under a training budget, the best m, and the score threshold that
 * realises its keep fraction on the dataset's stored scores. Route handler: fills res (see
 * api/http.h) and returns 0. */
#ifndef WINNOW_API_RECOMMEND_H
#define WINNOW_API_RECOMMEND_H

struct core;
struct err;
struct http_req;
struct http_res;
typedef struct json_t json_t;

int recommend_post(struct http_req *r, struct http_res *res);

/* Before a subset PUT: every step {"filter": f, "recommend": {...}} of body's "steps"
 * (body borrowed, changed in place) becomes {"filter": f, "top_fraction": keep_fraction,
 * "recommendation": answer}, where answer is what :recommend answers for {...} plus
 * "request", the {...} itself. Steps without "recommend", or without a string "filter", are
 * left to subset_put to judge. Returns 0, ERR_INVALID with *errors (new: {field, code,
 * detail}, fields prefixed "steps[i].recommend."), or another code of :recommend (404, 409)
 * with e set; body may then be partly rewritten (the caller drops it). */
int recommend_resolve_steps(struct core *core, const char *dataset, json_t *body, json_t **errors,
                            struct err *e);

#endif
