/* SPDX-License-Identifier: MIT */
/* adapters: the /v1/datasets/{ds}/adapters resource (Cosine Adapters: definition, labelled
 * pairs, :train). Route handlers: each fills res (see api/http.h) and returns 0. */
#ifndef WINNOW_API_ADAPTERS_H
#define WINNOW_API_ADAPTERS_H

struct http_req;
struct http_res;

int adapters_routes_list(struct http_req *r, struct http_res *res);
int adapters_routes_get(struct http_req *r, struct http_res *res);
int adapters_routes_put(struct http_req *r, struct http_res *res);
int adapters_routes_delete(struct http_req *r, struct http_res *res);
int adapters_routes_pairs(struct http_req *r, struct http_res *res);
int adapters_routes_train(struct http_req *r, struct http_res *res);
/* GET and PUT .../adapters/{adapter}/weights: copy a trained adapter between daemons. */
int adapters_routes_weights_get(struct http_req *r, struct http_res *res);
int adapters_routes_weights_put(struct http_req *r, struct http_res *res);
/* POST .../adapters/{adapter}:partial: this daemon's training data, for a router. */
int adapters_routes_partial(struct http_req *r, struct http_res *res);

#endif
