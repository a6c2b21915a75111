/* SPDX-License-Identifier: MIT */
/* datasets: the /v1/datasets resource: create with a schema, get, list, delete.
 * Route handlers: each fills res (see api/http.h for ownership) and returns 0. */
#ifndef WINNOW_DATASETS_H
#define WINNOW_DATASETS_H

struct http_req;
struct http_res;

int datasets_list(struct http_req *r, struct http_res *res);
int datasets_get(struct http_req *r, struct http_res *res);
int datasets_put(struct http_req *r, struct http_res *res);
int datasets_delete(struct http_req *r, struct http_res *res);

#endif
