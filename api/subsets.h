/* SPDX-License-Identifier: MIT */
/* subsets: the /v1/datasets/{ds}/subsets resource (materialise, provenance, :export) and
 * per-record decisions. Route handlers: each fills res (see api/http.h) and returns 0. */
#ifndef WINNOW_API_SUBSETS_H
#define WINNOW_API_SUBSETS_H

struct http_req;
struct http_res;

int subsets_list(struct http_req *r, struct http_res *res);
int subsets_get(struct http_req *r, struct http_res *res);
/* POST .../subsets:probe: the router's view of a step's scores (curate/subset.h). */
int subsets_probe(struct http_req *r, struct http_res *res);
int subsets_put(struct http_req *r, struct http_res *res);
int subsets_delete(struct http_req *r, struct http_res *res);
int subsets_export(struct http_req *r, struct http_res *res);
int subsets_decisions(struct http_req *r, struct http_res *res);

#endif
