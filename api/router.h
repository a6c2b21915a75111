/* SPDX-License-Identifier: MIT */
/* router: the handlers of `winnowd --router FILE` (docs/scale.md). The server routes, checks
 * auth, limits and the memory budget exactly as for a data node, then hands every matched
 * request to router_handle(), which answers it from the shards (cluster/fanout.h) instead of
 * calling the route's own handler. */
#ifndef WINNOW_ROUTER_H
#define WINNOW_ROUTER_H

struct http_req;
struct http_res;

/* Answer r from the shards. Returns 1 when the route is served locally (the route's own
 * handler should run: /livez, /metrics, /ui, /v1/openapi.json, /v1/filter-types), else 0
 * with res filled. */
int router_handle(struct http_req *r, struct http_res *res);

#endif
