/* SPDX-License-Identifier: MIT */
/* router_util: what the router's handlers share: forwarding paths, copying a shard's answer,
 * 502 problems naming a shard, the merge of the shards' JSON (counts summed, job ids composed),
 * definitions broadcast to every shard, ingest split by id, and composite job ids.
 *
 * Composite job ids: a job the router reports is "ID0-ID1-...-IDn-1", the shards' own job ids
 * in shard order, an empty field for a shard without one ("-7-" is shard 1's job 7). */
#ifndef WINNOW_ROUTER_UTIL_H
#define WINNOW_ROUTER_UTIL_H

#include <stddef.h>

struct err;
struct fanout_call;
struct http_req;
struct http_res;
typedef struct json_t json_t;

/* The request's path and query, percent-encoded again for a shard (new, free()). */
char *rutil_path(const struct http_req *r);

/* 502 for e (a shard without an answer). Returns 0. */
int rutil_gateway(struct http_res *res, const struct http_req *r, const struct err *e);

/* A failed shard step into res: the shard's own 4xx problem (problem, status) as the shard
 * wrote it, the client's to see; otherwise the router's problem for code and e. */
int rutil_problem(struct http_res *res, const struct http_req *r, const json_t *problem,
                  int status, int code, const struct err *e);

/* res = the shard's answer as it is (status, body, content type). Returns 0. */
int rutil_copy(struct http_res *res, struct fanout_call *c);

/* The request as it is (method, body, Content-Type) to one shard at path; res = its answer as
 * it is, or a 502 when it does not answer. Returns 0. */
int rutil_forward_one(struct http_req *r, struct http_res *res, size_t shard, const char *path);

/* The first call of n whose status is not ok (ok: 200..299), or NULL. */
struct fanout_call *rutil_first_bad(struct fanout_call *c, size_t n);

/* The shards' JSON answers merged into the first (taken): integer counts summed (records,
 * rows, vectors, members, pool, in, out, unscorable, ...), job ids composed, states the
 * least finished. docs (n entries) are borrowed. */
json_t *rutil_merge(json_t **docs, size_t n);

/* A body split by shard: the lines (or JSON array items) of one shard, and for its i-th
 * item the client's line (1-based). */
struct rutil_part {
	char *buf;
	size_t len, cap;
	size_t *lines;
	size_t nlines, lcap;
};

/* Append s (len bytes) as the part's next item, the client's line `line`: a line of NDJSON
 * (json_form 0) or an array item after a comma (json_form 1). 0, or -1 when out of memory. */
int rutil_part_add(struct rutil_part *p, const char *s, size_t len, size_t line, int json_form);

/* Free n parts and the array. */
void rutil_parts_free(struct rutil_part *p, size_t n);

/* Append to dst the shard's errors (each {"line", ...} of the part p), their lines made the
 * client's. */
void rutil_errors_remap(json_t *dst, json_t *errs, const struct rutil_part *p);

/* Sort errors by "line" and keep the first 1,000. */
void rutil_errors_by_line(json_t *errors);

/* A 502 problem "partial" listing the n calls' shards, statuses and answers: the request was
 * applied on some shards only, and sending it again completes it. Returns 0. */
int rutil_partial(struct http_req *r, struct http_res *res, struct fanout_call *c, size_t n);

/* GET the request's path and query from every shard: a shard that cannot be reached is a 502,
 * the first shard that refuses is answered as it answered, and otherwise merge(r, res, calls,
 * n, ctx) makes the answer from the n shards' calls (borrowed for the call). Returns 0. */
int rutil_gather_get(struct http_req *r, struct http_res *res,
                     int (*merge)(struct http_req *r, struct http_res *res,
                                  struct fanout_call *c, size_t n, void *ctx),
                     void *ctx);

/* Handlers. */
int rutil_merged_get(struct http_req *r, struct http_res *res);
int rutil_broadcast(struct http_req *r, struct http_res *res);
int rutil_ingest(struct http_req *r, struct http_res *res);
int rutil_jobs_list(struct http_req *r, struct http_res *res);
int rutil_job_one(struct http_req *r, struct http_res *res);

/* Send body (JSON, borrowed) with method to path on every shard: shard 0 first (a refusal
 * changes nothing elsewhere and is answered as it is), then the others at once; a failure
 * there is a 502 problem "partial" listing the shards (a retry of the same request
 * completes it). On success res gets shard 0's answer merged with the others'.
 * rutil_broadcast_each: the same with shard i's own body bodies[i] (lens[i] bytes). */
int rutil_broadcast_each(struct http_req *r, struct http_res *res, const char *method,
                         const char *path, char *const *bodies, const size_t *lens);
int rutil_broadcast_body(struct http_req *r, struct http_res *res, const char *method,
                         const char *path, const char *body, size_t len);

#endif
