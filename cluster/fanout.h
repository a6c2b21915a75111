/* SPDX-License-Identifier: MIT */
/* fanout: the router's HTTP client to the shards, on libcurl multi.
 *
 * fanout_run() sends a batch of requests (one or more per shard) concurrently and waits for
 * all of them; every answer (status, body, content type) or transport error is kept per call.
 * Connections are kept alive and reused: each batch borrows a libcurl multi handle (and its
 * connection cache) from a pool, so consecutive batches of one thread or of different threads
 * reuse the open connections. Every request carries `Authorization: Bearer <shard key>` when
 * the cluster has a key and the caller's X-Request-Id. Timeouts: connect min(5 s, timeout),
 * whole request --shard-timeout; a shard that does not answer in time is a transport error
 * (status 0), never a hang. A body larger than FANOUT_MAX_BODY is a transport error too.
 *
 * Threading: fanout_open/fanout_close from main() only (curl_global_init); fanout_run from
 * any number of threads at once. */
#ifndef WINNOW_FANOUT_H
#define WINNOW_FANOUT_H

#include <stddef.h>
#include <stdint.h>

struct err;
struct fanout;
struct shardmap;
typedef struct json_t json_t;

#define FANOUT_MAX_BODY ((size_t)1 << 31)

struct fanout_call {
	/* in */
	size_t shard;             /* index into the map's shards */
	const char *method;       /* "GET", "PUT", "POST", "PATCH", "DELETE" */
	const char *path;         /* path and query, percent-encoded, starting with '/' */
	const char *body;         /* borrowed, NULL = none */
	size_t body_len;
	const char *content_type; /* NULL: application/json when there is a body */
	/* out (fanout_run) */
	int status;               /* HTTP status; 0 = no answer (error says why) */
	char *resp;               /* body, NUL-terminated, new (fanout_calls_free) */
	size_t resp_len;
	char resp_type[128];      /* Content-Type of the answer, "" if none */
	char error[256];          /* the transport error when status is 0 */
};

/* A client over map's shards (borrowed until fanout_close) with timeout_s for a whole
 * request. *out new. ERR_NOMEM, ERR_INTERNAL (libcurl could not start). */
int fanout_open(struct fanout **out, const struct shardmap *map, unsigned timeout_s,
                struct err *e);
void fanout_close(struct fanout *f);

/* The map the client was opened with. */
const struct shardmap *fanout_map(const struct fanout *f);

/* Run the n calls concurrently; fills each call's out fields. request_id (may be NULL) is sent
 * as X-Request-Id. Returns 0 when every call has an answer (any status), else ERR_GATEWAY
 * with e naming the first shard without one (slug shard_unreachable, its URL and the reason). */
int fanout_run(struct fanout *f, struct fanout_call *calls, size_t n, const char *request_id,
               struct err *e);

/* The same call to every shard (n = the map's shards, calls[i].shard = i): calls must have
 * room for that many. Returns as fanout_run. */
int fanout_all(struct fanout *f, struct fanout_call *calls, const char *method, const char *path,
               const char *body, size_t body_len, const char *content_type,
               const char *request_id, struct err *e);

/* The answer's body parsed as JSON (new), or NULL when it is not JSON. */
json_t *fanout_json(const struct fanout_call *c);

/* Free the answers of n calls (the in fields stay as given). */
void fanout_calls_free(struct fanout_call *calls, size_t n);

#endif
