/* SPDX-License-Identifier: MIT */
/* normalizers: the /v1/datasets/{ds}/hubness resource: hubness normalisers (DBNorm banks
 * and statistics) and their :report. Route handlers: each fills res (see api/http.h) and
 * returns 0. */
#ifndef WINNOW_API_NORMALIZERS_H
#define WINNOW_API_NORMALIZERS_H

struct http_req;
struct http_res;

int normalizers_list(struct http_req *r, struct http_res *res);
int normalizers_get(struct http_req *r, struct http_res *res);
int normalizers_put(struct http_req *r, struct http_res *res);
int normalizers_delete(struct http_req *r, struct http_res *res);
int normalizers_report(struct http_req *r, struct http_res *res);

#endif
