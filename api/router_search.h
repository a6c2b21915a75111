/* SPDX-License-Identifier: MIT */
/* router_search: search across shards. Every shard answers the same query; the router merges
 * the results by score (descending; equal scores by shard, then each shard's own order) and
 * keeps the first `limit`. A page token of the router holds, per shard, the shard's token the
 * page started from, how many of that page's results were already shown, and whether the
 * shard is exhausted ("r1." + base64 of JSON). A page stops early (truncated, with a token)
 * rather than pass a shard that has more: nothing is skipped or shown twice. search:count
 * sums the shards' counts. */
#ifndef WINNOW_ROUTER_SEARCH_H
#define WINNOW_ROUTER_SEARCH_H

struct http_req;
struct http_res;

int rsearch_post(struct http_req *r, struct http_res *res);
int rsearch_count(struct http_req *r, struct http_res *res);

#endif
