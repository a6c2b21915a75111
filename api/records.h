/* SPDX-License-Identifier: MIT */
/* records: the /v1/datasets/{name}/records resource: NDJSON/JSON ingest, get, delete.
 * Route handlers: each fills res (see api/http.h for ownership) and returns 0. */
#ifndef WINNOW_RECORDS_H
#define WINNOW_RECORDS_H

struct http_req;
struct http_res;

int records_post(struct http_req *r, struct http_res *res);
int records_get(struct http_req *r, struct http_res *res);
int records_delete(struct http_req *r, struct http_res *res);

#endif
