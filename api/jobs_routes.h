/* SPDX-License-Identifier: MIT */
/* jobs_routes: the /v1/jobs resource (list, get, cancel). Route handlers: each fills res
 * (see api/http.h) and returns 0. */
#ifndef WINNOW_JOBS_ROUTES_H
#define WINNOW_JOBS_ROUTES_H

struct http_req;
struct http_res;

int jobs_routes_list(struct http_req *r, struct http_res *res);
int jobs_routes_list_dataset(struct http_req *r, struct http_res *res);
int jobs_routes_get(struct http_req *r, struct http_res *res);
int jobs_routes_cancel(struct http_req *r, struct http_res *res);

#endif
