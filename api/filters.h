/* SPDX-License-Identifier: MIT */
/* filters: the /v1/datasets/{ds}/filters resource (instances, :score, stats) and
 * /v1/filter-types. Route handlers: each fills res (see api/http.h) and returns 0. */
#ifndef WINNOW_API_FILTERS_H
#define WINNOW_API_FILTERS_H

struct http_req;
struct http_res;

int filters_list(struct http_req *r, struct http_res *res);
int filters_get(struct http_req *r, struct http_res *res);
int filters_put(struct http_req *r, struct http_res *res);
int filters_delete(struct http_req *r, struct http_res *res);
/* POST .../filters:partial: a fit's partial statistics on this daemon (a cluster's shard). */
int filters_partial(struct http_req *r, struct http_res *res);
int filters_score(struct http_req *r, struct http_res *res);
int filters_stats(struct http_req *r, struct http_res *res);
int filters_types(struct http_req *r, struct http_res *res);
/* GET .../filters/{filter}/records/{id*}: one record under one filter, with its label and
 * the type's explain. POST .../filters/{filter}:sweep: a semdedup eps sweep. */
int filters_record(struct http_req *r, struct http_res *res);
int filters_sweep(struct http_req *r, struct http_res *res);

#endif
