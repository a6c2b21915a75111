/* SPDX-License-Identifier: MIT */
/* http: the request and response types that route handlers see, and the helpers that
 * build JSON and problem+json answers. Handlers never touch libmicrohttpd directly
 * except through http_header() and http_query().
 *
 * A struct http_req lives from the first callback of a request to its completion; its
 * strings are borrowed by handlers for that long. A handler fills struct http_res; the
 * server takes ownership of res->body and frees it. One request is handled by one thread. */
#ifndef WINNOW_HTTP_H
#define WINNOW_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/auth.h"

struct core;
struct daemon;
struct err;
struct MHD_Connection;
typedef struct json_t json_t;

#define HTTP_MAX_PARAMS 4

struct http_req {
	struct daemon *d;
	struct core *core;                   /* &d->core: what handlers hand to the services */
	struct MHD_Connection *conn;
	const char *method;
	const char *path;                    /* percent-decoded path, no query */
	const char *route;                   /* the matched route template, for logs and metrics */
	const char *params[HTTP_MAX_PARAMS]; /* captured {segments} in template order */
	const char *body;                    /* request body (NUL-terminated), may be "" */
	size_t body_len;
	char request_id[65];
	enum auth_scope scope;
	/* 1: the handler of a ROUTE_QUICK route runs on an HTTP thread. It answers when the
	 * work is quick (well under a millisecond) and otherwise sets res->defer and returns
	 * having changed nothing, to run again on the work pool with quick 0. */
	int quick;
};

struct http_res {
	int status;
	char *body;               /* new; taken by the server */
	size_t len;
	const char *content_type; /* static string */
	char location[256];       /* "" = no Location header */
	char allow[64];           /* "" = no Allow header */
	int www_authenticate;     /* 1: add WWW-Authenticate: Bearer */
	int retry_after;          /* > 0: add Retry-After: this many seconds */
	/* A streamed body (chunked, length unknown) instead of body: stream(stream_ctx, buf,
	 * max) returns the bytes it wrote (> 0), 0 at the end, -1 on an error (the connection is
	 * then closed early). The server calls stream_free(stream_ctx) exactly once when the
	 * response is done or abandoned; both are taken by the server with the response. */
	ssize_t (*stream)(void *ctx, char *buf, size_t max);
	void (*stream_free)(void *ctx);
	void *stream_ctx;
	const char *disposition;  /* static or res-lifetime string: Content-Disposition, or NULL */
	const char *cache_control; /* static string: Cache-Control, or NULL for "no-store" */
	const char *csp;          /* static string: Content-Security-Policy (with nosniff), or NULL */
	char etag[24];            /* "" = no ETag header */
	int defer;                /* 1: no answer; run the handler again on the work pool */
};

/* Value of request header name (case-insensitive), or NULL. Borrowed for the request. */
const char *http_header(const struct http_req *r, const char *name);
/* Value of query argument name, or NULL. Borrowed for the request. */
const char *http_query(const struct http_req *r, const char *name);

/* Call fn(ctx, name, value) for every query argument of r in order (value is NULL for a
 * bare "?name"); stops at the first nonzero return of fn and returns it, else 0. */
int http_query_each(const struct http_req *r,
                    int (*fn)(void *ctx, const char *name, const char *value), void *ctx);

/* Answer with obj serialised compactly; takes the reference to obj. Returns 0. */
int http_json(struct http_res *res, int status, json_t *obj);

/* Answer with an RFC 9457 problem for error code (mapped to a status by one table),
 * using e's slug and detail when set. extra (taken, may be NULL) is merged into the
 * problem object, e.g. {"errors": [...]}. Returns 0. */
int http_problem(struct http_res *res, const struct http_req *r, int code, const struct err *e,
                 json_t *extra);

/* 202 Accepted for job (Location: /v1/jobs/{job}) with the body {"job": "<id>", key: view};
 * takes view. Returns 0. */
int http_accepted(struct http_res *res, uint64_t job, const char *key, json_t *view);

/* Parse the request body as JSON into *out (new). A body that is not JSON, or has an
 * object with a key given twice: fills res with a 400 problem (malformed_json) and
 * returns ERR_MALFORMED. */
int http_body_json(const struct http_req *r, struct http_res *res, json_t **out);

/* A POST on a dataset that a service answers with a JSON document: the {dataset} parameter
 * (0) and the JSON body checked, then op(core, dataset, body, &out, &e); 200 with out, or the
 * problem of op's error. Returns 0. */
int http_dataset_op(struct http_req *r, struct http_res *res,
                    int (*op)(struct core *core, const char *dataset, const json_t *body,
                              json_t **out, struct err *e));

/* The {segment} parameter i as a store name ([A-Za-z0-9._-]{1,64}); otherwise fills res with
 * a 422 problem naming what (e.g. "dataset") and returns NULL. */
const char *http_name_param(const struct http_req *r, struct http_res *res, int i,
                            const char *what);

/* HTTP status for an error code. */
int http_status_for(int code);

/* Media type of the request without parameters, lower-cased, into buf ("" if none). */
const char *http_media_type(const struct http_req *r, char *buf, size_t size);

/* The quality (0 to 1) the request's Accept header gives the media type type (lower case):
 * that of the most specific range matching it (type itself, then its "major/x" and "x/x"
 * wildcards when wild), 0 when none does; 1 without an Accept header when wild, else 0. */
double http_accept_q(const struct http_req *r, const char *type, int wild);

#endif
