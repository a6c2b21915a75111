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

#include "daemon/auth.h"

struct daemon;
struct err;
struct MHD_Connection;
typedef struct json_t json_t;

#define HTTP_MAX_PARAMS 4

struct http_req {
	struct daemon *d;
	struct MHD_Connection *conn;
	const char *method;
	const char *path;                    /* percent-decoded path, no query */
	const char *route;                   /* the matched route template, for logs and metrics */
	const char *params[HTTP_MAX_PARAMS]; /* captured {segments} in template order */
	const char *body;                    /* request body (NUL-terminated), may be "" */
	size_t body_len;
	char request_id[65];
	enum auth_scope scope;
};

struct http_res {
	int status;
	char *body;               /* new; taken by the server */
	size_t len;
	const char *content_type; /* static string */
	char location[256];       /* "" = no Location header */
	char allow[64];           /* "" = no Allow header */
	int www_authenticate;     /* 1: add WWW-Authenticate: Bearer */
};

/* Value of request header name (case-insensitive), or NULL. Borrowed for the request. */
const char *http_header(const struct http_req *r, const char *name);
/* Value of query argument name, or NULL. Borrowed for the request. */
const char *http_query(const struct http_req *r, const char *name);

/* Answer with obj serialised compactly; takes the reference to obj. Returns 0. */
int http_json(struct http_res *res, int status, json_t *obj);

/* Answer with an RFC 9457 problem for error code (mapped to a status by one table),
 * using e's slug and detail when set. extra (taken, may be NULL) is merged into the
 * problem object, e.g. {"errors": [...]}. Returns 0. */
int http_problem(struct http_res *res, const struct http_req *r, int code, const struct err *e,
                 json_t *extra);

/* HTTP status for an error code. */
int http_status_for(int code);

/* Media type of the request without parameters, lower-cased, into buf ("" if none). */
const char *http_media_type(const struct http_req *r, char *buf, size_t size);

#endif
