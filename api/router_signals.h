/* SPDX-License-Identifier: MIT */
/* router_signals: POST .../records:signals through the router, all or nothing across shards.
 *
 * The router checks every line itself as a daemon does (signals_check); a batch with a bad
 * line goes whole to shard 0, which answers the single daemon's 422 (or 404) and changes
 * nothing. Otherwise the lines are split by id (their owning shards) and run in two rounds:
 * every shard first checks its part with ?dry_run=true (unknown ids, merged signals that are
 * not valid), and only when every shard accepts does every shard apply its part. A refusal in
 * the first round is the single daemon's 422 patch_rejected, the errors on the client's lines,
 * and nothing changed anywhere. A failure in the second round (a shard that stopped answering,
 * a record deleted in between) is a 502 "partial" naming each shard's answer: a merge patch is
 * idempotent, so sending the same batch again completes it. */
#ifndef WINNOW_ROUTER_SIGNALS_H
#define WINNOW_ROUTER_SIGNALS_H

struct http_req;
struct http_res;

int rsignals_post(struct http_req *r, struct http_res *res);

#endif
