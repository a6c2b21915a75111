/* SPDX-License-Identifier: MIT */
/* normalizers: the /v1/datasets/{ds}/hubness resource: hubness normalisers (DBNorm banks
 * and statistics) and their :report. Route handlers: each fills res (see api/http.h) and
 * returns 0. */
#ifndef WINNOW_API_NORMALIZERS_H
#define WINNOW_API_NORMALIZERS_H

struct http_req;
struct http_res;

int hubness_routes_list(struct http_req *r, struct http_res *res);
int hubness_routes_get(struct http_req *r, struct http_res *res);
int hubness_routes_put(struct http_req *r, struct http_res *res);
int hubness_routes_delete(struct http_req *r, struct http_res *res);
int hubness_routes_report(struct http_req *r, struct http_res *res);
/* The cluster's side of a normaliser over a sharded gallery (search/normalizers.h). */
int hubness_routes_topk(struct http_req *r, struct http_res *res);
int hubness_routes_activation(struct http_req *r, struct http_res *res);
int hubness_routes_stats(struct http_req *r, struct http_res *res);

#endif
