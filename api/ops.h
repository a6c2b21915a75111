/* SPDX-License-Identifier: MIT */
/* ops: operational routes: liveness, readiness, Prometheus metrics, the OpenAPI document.
 * Route handlers: each fills res (see api/http.h for ownership) and returns 0. */
#ifndef WINNOW_OPS_H
#define WINNOW_OPS_H

struct http_req;
struct http_res;

int ops_livez(struct http_req *r, struct http_res *res);
int ops_readyz(struct http_req *r, struct http_res *res);
int ops_metrics(struct http_req *r, struct http_res *res);
int ops_openapi(struct http_req *r, struct http_res *res);

#endif
