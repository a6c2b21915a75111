/* SPDX-License-Identifier: MIT */
/* router_subsets: subsets through the router: the PUT resolves every global step (top_fraction,
 * bottom_fraction, top_k, bottom_k, tau) into the exact shard-side "cut" step from the shards'
 * score distributions (cluster/gselect.h), then the shards materialise their parts; exports
 * merge the shards' parts (.npy: one sorted file, byte-identical to a single daemon's). */
#ifndef WINNOW_ROUTER_SUBSETS_H
#define WINNOW_ROUTER_SUBSETS_H

struct http_req;
struct http_res;

int rsubsets_put(struct http_req *r, struct http_res *res);
int rsubsets_export(struct http_req *r, struct http_res *res);

#endif
