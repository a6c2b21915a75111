/* SPDX-License-Identifier: MIT */
/* search: the /v1/datasets/{ds}/indexes resource and similarity search (search, :count).
 * Route handlers: each fills res (see api/http.h) and returns 0. */
#ifndef WINNOW_API_SEARCH_H
#define WINNOW_API_SEARCH_H

struct http_req;
struct http_res;

int search_indexes_list(struct http_req *r, struct http_res *res);
int search_index_get(struct http_req *r, struct http_res *res);
int search_index_put(struct http_req *r, struct http_res *res);
int search_index_delete(struct http_req *r, struct http_res *res);
int search_post(struct http_req *r, struct http_res *res);
int search_count(struct http_req *r, struct http_res *res);

#endif
