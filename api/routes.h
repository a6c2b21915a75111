/* SPDX-License-Identifier: MIT */
/* routes: the route table (method, template, scope, handler) and its matcher.
 * The table is const and sorted by template; matching is a linear walk, since there are
 * few routes and every template is matched segment by segment without allocation. */
#ifndef WINNOW_ROUTES_H
#define WINNOW_ROUTES_H

#include <stddef.h>

#include "daemon/auth.h"

struct http_req;
struct http_res;

typedef int (*route_handler)(struct http_req *r, struct http_res *res);

/* Which body limit a route has (each also under --body-limit). */
enum route_body {
	ROUTE_BODY_DEFINITION = 0, /* definitions, patches, small JSON: --definition-body-limit */
	ROUTE_BODY_SEARCH,         /* search queries, raw rows included: --search-body-limit */
	ROUTE_BODY_BULK,           /* ingest-sized NDJSON: --body-limit */
};

/* Where a route's handler runs. libmicrohttpd serves several connections on each HTTP
 * thread, so work that may take long goes to the work pool; the hand-off costs a
 * suspend, two thread wake-ups and a resume (0.1 to 0.2 ms on a 2-core machine). */
enum route_run {
	ROUTE_INLINE = 0, /* on the HTTP thread: quick by nature */
	ROUTE_POOL = 1,   /* CPU- or I/O-heavy: on the work pool */
	ROUTE_QUICK = 2,  /* the handler decides per request (http_req.quick): graph searches */
};

struct route {
	const char *method;
	const char *tmpl;         /* e.g. "/v1/datasets/{name}/records/{id*}"; {x*} takes the rest */
	enum auth_scope scope;    /* AUTH_NONE: open to all; AUTH_READ; AUTH_ADMIN */
	route_handler handler;
	enum route_run offload;   /* where the handler runs */
	enum route_body body;     /* the body limit that applies */
};

/* Outcome of matching a path and method. */
struct route_match {
	const struct route *route;   /* the route, or NULL */
	char allow[64];              /* when route is NULL but the path matched: allowed methods */
	size_t nparams;
	size_t param_off[4], param_len[4]; /* captured segments as offsets into the path */
};

/* 1 when route rt takes the query parameter name; 0 otherwise, with the names it takes in
 * list (size bytes, ", "-separated; "" for none) for the error's detail. */
int routes_query_allowed(const struct route *rt, const char *name, char *list, size_t size);

/* Match path (decoded, no query) and method. Returns 0 with m->route set; ERR_METHOD when
 * the path is known but not for this method (m->allow lists the methods); ERR_NOT_FOUND. */
int routes_match(const char *method, const char *path, struct route_match *m);

/* The table, for the OpenAPI coverage check and for docs. *n gets its length. */
const struct route *routes_table(size_t *n);

#endif
