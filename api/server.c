/* SPDX-License-Identifier: MIT */
/* server: libmicrohttpd glue. Owns the MHD daemon, the per-request state (struct
 * conn_state, allocated when the request line arrives and freed in the completion
 * callback), the per-connection deadlines and the work pool. ROUTE_POOL routes (ingest)
 * do not run on the HTTP thread: the connection is suspended, a pool thread runs the
 * handler, then resumes it and MHD calls us again to send the answer. libmicrohttpd may
 * accept several connections on one HTTP thread; the pool lets their requests parse and
 * commit at the same time. A ROUTE_QUICK handler (search) first runs on the HTTP thread
 * and answers there when the work is quick (a graph search of a few queries), sparing the
 * hand-off; otherwise it defers to the pool before doing any.
 *
 * Bodies are accumulated up to their route's limit; errors found before the body ends
 * (400, 401, 403, 404, 405, 503 overloaded) are answered once the body is consumed (and
 * dropped), except a declared Content-Length over the limit, which is answered at once (413). The memory budget (--memory-limit) is charged with each body's buffer
 * plus an estimate of what parsing it costs (JSON trees take many times the text), for as
 * long as the request runs; a request that does not fit waits for nothing: it is refused
 * with Retry-After. A watchdog closes connections that have not delivered a whole request
 * within --request-timeout of their start (libmicrohttpd's own timeout is an idle one, which
 * a client sending a byte every few seconds never reaches). */
#include "api/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "api/http.h"
#include "api/router.h"
#include "api/routes.h"
#include "api/tls.h"
#include "daemon/auth.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "daemon/metrics.h"

#define SERVER_MAX_WORKERS 16

/* What parsing a body costs beyond its own bytes, as a multiple of its length, charged to
 * the memory budget while the request runs. JSON: jansson allocates a node for every value
 * (a real is 24 bytes of struct plus malloc's overhead for 4 to 10 bytes of text, an
 * array slot 8 more); a 50 MB body of numbers peaked at 1.18 GB (23x, issue 16), so 24x.
 * Raw rows and NDJSON are read in place or a line at a time: once more. */
#define SERVER_PARSE_JSON 24
#define SERVER_PARSE_OTHER 1

/* One accepted connection, for the request deadline: from accept, or from the end of its
 * previous request, to the moment its next request is whole. Guarded by track_mu. */
struct conn_track {
	struct conn_track *prev, *next;
	int fd;
	double since;
	int received; /* 1 from a whole request to its completion: the deadline is off */
	int cut;      /* shut down by the watchdog */
};

struct server {
	struct MHD_Daemon *mhd;
	struct daemon *d;
	uint16_t port;
	uint64_t id_seed;
	atomic_uint_fast64_t id_counter;
	atomic_int inflight;
	/* the work pool */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct conn_state *head, *tail; /* queued requests, FIFO */
	int quit;
	unsigned nworkers;
	pthread_t workers[SERVER_MAX_WORKERS];
	char start_msg[256];    /* libmicrohttpd's last message while starting (under mu) */
	int starting;
	/* the memory budget: bytes charged by requests in flight */
	atomic_uint_fast64_t mem_used;
	uint64_t mem_limit;
	/* the request deadline: every open connection, and the watchdog that cuts them */
	pthread_mutex_t track_mu;
	pthread_cond_t track_cv;
	struct conn_track *tracks;
	int watchdog_quit;
	int have_watchdog;
	pthread_t watchdog;
	int tls;
};

struct conn_state {
	struct server *srv;
	struct conn_state *next; /* in the work queue */
	struct http_res res;     /* the pool's answer, sent once the connection resumes */
	int res_ready;
	struct http_req req;
	struct route_match match;
	char *path;            /* copy of the decoded URL path */
	char *params;          /* captured parameters, NUL-separated */
	char *body;
	size_t len, cap;
	int pending_code;      /* error to answer once the body is consumed, 0 = none */
	struct err pending_err;
	int status;            /* status sent, for the request log */
	double t0;
	int started;           /* on_request has seen the request */
	int path_bad;          /* the raw path decodes to a NUL or to bytes that are not UTF-8 */
	uint64_t limit;        /* the route's body limit */
	const char *limit_flag; /* the flag that sets it, for the 413 detail */
	unsigned parse_factor; /* SERVER_PARSE_* for the body's media type */
	uint64_t charged;      /* bytes charged to the memory budget */
	int parse_charged;     /* the parse estimate is in charged */
	struct conn_track *track;
};

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* An incoming X-Request-Id is echoed when it is short printable ASCII without spaces. */
static int request_id_sane(const char *s)
{
	size_t n = 0;

	if (s == NULL || *s == '\0')
		return 0;
	for (; s[n] != '\0'; n++)
		if (n >= 64 || s[n] <= ' ' || s[n] > '~' || s[n] == '"' || s[n] == '\\')
			return 0;
	return 1;
}

static void set_request_id(struct conn_state *cs)
{
	const char *given = http_header(&cs->req, "X-Request-Id");

	if (request_id_sane(given)) {
		snprintf(cs->req.request_id, sizeof cs->req.request_id, "%s", given);
		return;
	}
	snprintf(cs->req.request_id, sizeof cs->req.request_id, "%016llx",
	         (unsigned long long)splitmix64(cs->srv->id_seed +
	                                        atomic_fetch_add(&cs->srv->id_counter, 1)));
}

/* Charge n bytes to the memory budget; 0, or -1 (nothing charged) when it does not fit. */
static int mem_charge(struct conn_state *cs, uint64_t n)
{
	struct server *srv = cs->srv;
	uint_fast64_t cur = atomic_load(&srv->mem_used);

	do {
		if (n > srv->mem_limit || cur > srv->mem_limit - n)
			return -1;
	} while (!atomic_compare_exchange_weak(&srv->mem_used, &cur, cur + n));
	cs->charged += n;
	return 0;
}

static void mem_release(struct conn_state *cs)
{
	atomic_fetch_sub(&cs->srv->mem_used, cs->charged);
	cs->charged = 0;
}

static int overloaded(struct conn_state *cs, struct err *e)
{
	return err_set(e, ERR_UNAVAILABLE, "overloaded",
	               "the memory for request bodies (--memory-limit, %llu bytes) is taken by "
	               "requests in flight; retry later",
	               (unsigned long long)cs->srv->mem_limit);
}

/* A well-formed UTF-8 sequence (no overlong forms, surrogates or code points past
 * U+10FFFF) without NUL. */
static int utf8_clean(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], need, cp, min;

		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 1, cp = c & 0x1f, min = 0x80;
		else if (c >= 0xe0 && c <= 0xef)
			need = 2, cp = c & 0x0f, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 3, cp = c & 0x07, min = 0x10000;
		else
			return 0;
		if (n - i <= need)
			return 0;
		for (unsigned k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += need + 1;
	}
	return 1;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Whether the path part of a raw request target percent-decodes (as libmicrohttpd does)
 * to clean UTF-8. libmicrohttpd hands us the decoded path as a C string, so "ab%00x"
 * arrives as "ab": the raw target is the only place a NUL can be seen. */
static int raw_path_clean(const char *uri)
{
	size_t n = strcspn(uri, "?"), o = 0;
	unsigned char *buf = malloc(n + 1);
	int ok;

	if (buf == NULL)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int hi, lo;

		if (uri[i] == '%' && i + 2 < n + 1 && (hi = hexval(uri[i + 1])) >= 0 &&
		    (lo = hexval(uri[i + 2])) >= 0) {
			buf[o++] = (unsigned char)(hi * 16 + lo);
			i += 2;
		} else {
			buf[o++] = (unsigned char)uri[i];
		}
	}
	ok = utf8_clean(buf, o);
	free(buf);
	return ok;
}

/* The request line has arrived: allocate its state, which on_request then finds in
 * *con_cls, and look at the raw target. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct conn_state *cs = calloc(1, sizeof *cs);

	(void)conn;
	if (cs == NULL)
		return NULL;
	cs->srv = cls;
	cs->t0 = clock_now();
	cs->path_bad = !raw_path_clean(uri);
	return cs;
}

/* A streamed body: the handler's producer and its context, for MHD's callbacks. */
struct stream {
	ssize_t (*fn)(void *ctx, char *buf, size_t max);
	void (*free_fn)(void *ctx);
	void *ctx;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *st = cls;
	ssize_t n;

	(void)pos;
	n = st->fn(st->ctx, buf, max);
	if (n > 0)
		return n;
	return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_done(void *cls)
{
	struct stream *st = cls;

	if (st->free_fn != NULL)
		st->free_fn(st->ctx);
	free(st);
}

static int queue(struct conn_state *cs, struct MHD_Connection *conn, struct http_res *res)
{
	struct MHD_Response *mr;
	int ret;

	if (res->stream != NULL) {
		struct stream *st = malloc(sizeof *st);

		if (st == NULL)
			return MHD_NO; /* on_completed frees the context */
		*st = (struct stream){res->stream, res->stream_free, res->stream_ctx};
		res->stream_ctx = NULL;
		res->stream_free = NULL;
		mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, st,
		                                       stream_done);
		if (mr == NULL) {
			stream_done(st);
			return MHD_NO;
		}
		free(res->body);
	} else {
		mr = MHD_create_response_from_buffer(res->len, res->body, MHD_RESPMEM_MUST_FREE);
		if (mr == NULL) {
			free(res->body);
			res->body = NULL;
			return MHD_NO;
		}
	}
	res->body = NULL;
	if (res->disposition != NULL)
		MHD_add_response_header(mr, "Content-Disposition", res->disposition);
	MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        res->content_type ? res->content_type : "application/json");
	MHD_add_response_header(mr, "X-Request-Id", cs->req.request_id);
	MHD_add_response_header(mr, MHD_HTTP_HEADER_CACHE_CONTROL,
	                        res->cache_control ? res->cache_control : "no-store");
	if (res->csp != NULL) {
		MHD_add_response_header(mr, "Content-Security-Policy", res->csp);
		MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
		MHD_add_response_header(mr, "Referrer-Policy", "no-referrer");
	}
	if (res->etag[0] != '\0')
		MHD_add_response_header(mr, MHD_HTTP_HEADER_ETAG, res->etag);
	if (res->location[0] != '\0')
		MHD_add_response_header(mr, MHD_HTTP_HEADER_LOCATION, res->location);
	if (res->allow[0] != '\0')
		MHD_add_response_header(mr, MHD_HTTP_HEADER_ALLOW, res->allow);
	if (res->www_authenticate)
		MHD_add_response_header(mr, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	if (res->retry_after > 0) {
		char ra[16];

		snprintf(ra, sizeof ra, "%d", res->retry_after);
		MHD_add_response_header(mr, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	if (atomic_load(&cs->srv->d->core.stopping))
		MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");
	cs->status = res->status;
	ret = MHD_queue_response(conn, (unsigned)res->status, mr);
	MHD_destroy_response(mr);
	return ret;
}

static int answer_problem(struct conn_state *cs, struct MHD_Connection *conn, int code,
                          const struct err *e)
{
	struct http_res res = {0};

	http_problem(&res, &cs->req, code, e, NULL);
	if (code == ERR_METHOD)
		snprintf(res.allow, sizeof res.allow, "%s", cs->match.allow);
	if (code == ERR_UNAVAILABLE)
		res.retry_after = 1;
	return queue(cs, conn, &res);
}

static int is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		const uint8_t *b = in6->sin6_addr.s6_addr;
		static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

		if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return 1;
		return memcmp(b, v4mapped, 12) == 0 && b[12] == 127;
	}
	return 0;
}

static int client_is_loopback(struct conn_state *cs)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(cs->req.conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	return ci != NULL && ci->client_addr != NULL && is_loopback(ci->client_addr);
}

/* Route, authenticate and authorise on the first callback; remember any error. */
/* A query parameter the route does not take is a 400 naming it (http_query_each calls this
 * for each; the first unknown one stops the walk). */
static int query_known(void *ctx, const char *name, const char *value)
{
	struct conn_state *cs = ctx;
	char list[256];

	(void)value;
	if (cs->pending_code != 0 ||
	    routes_query_allowed(cs->match.route, name, list, sizeof list))
		return 0;
	cs->pending_code = err_set(&cs->pending_err, ERR_MALFORMED, "unknown_parameter",
	                           "unknown query parameter '%.64s' for %s %s (it takes: %s)", name,
	                           cs->req.method, cs->req.route, list[0] ? list : "none");
	return 1;
}

static void first_call(struct conn_state *cs)
{
	struct daemon *d = cs->srv->d;
	int rc;

	if (cs->path_bad) {
		/* before routing: the decoded path was cut at the NUL and names something else */
		cs->pending_code = err_set(&cs->pending_err, ERR_MALFORMED, "invalid_path",
		                           "a path segment decodes to a NUL byte or to bytes that "
		                           "are not UTF-8");
		return;
	}
	if (d->auth == NULL && !d->cfg->insecure_no_auth && !client_is_loopback(cs)) {
		char q[80];

		cs->pending_code = err_set(&cs->pending_err, ERR_FORBIDDEN, "remote_client_refused",
		                           "without an API keys file only loopback clients are "
		                           "served (see --api-keys)");
		log_msg(LOG_WARN, "refused", "reason=remote_client_without_keys request_id=%s",
		        log_quote(cs->req.request_id, q, sizeof q));
		return;
	}
	rc = routes_match(cs->req.method, cs->path, &cs->match);
	if (rc == ERR_NOT_FOUND) {
		cs->pending_code = err_set(&cs->pending_err, ERR_NOT_FOUND, "no_such_route",
		                           "no route for %s", cs->path);
		return;
	}
	if (rc == ERR_METHOD) {
		cs->pending_code = err_set(&cs->pending_err, ERR_METHOD, "method_not_allowed",
		                           "%s is not allowed here; allowed: %s", cs->req.method,
		                           cs->match.allow);
		return;
	}
	cs->req.route = cs->match.route->tmpl;

	/* Split the captured segments into their own NUL-terminated strings. */
	size_t total = 0;
	for (size_t i = 0; i < cs->match.nparams; i++)
		total += cs->match.param_len[i] + 1;
	cs->params = malloc(total + 1);
	if (cs->params == NULL) {
		cs->pending_code = err_set(&cs->pending_err, ERR_NOMEM, NULL, "out of memory");
		return;
	}
	char *p = cs->params;
	for (size_t i = 0; i < cs->match.nparams; i++) {
		memcpy(p, cs->path + cs->match.param_off[i], cs->match.param_len[i]);
		p[cs->match.param_len[i]] = '\0';
		cs->req.params[i] = p;
		p += cs->match.param_len[i] + 1;
	}

	if (cs->match.route->scope != AUTH_NONE) {
		if (atomic_load(&d->core.stopping)) {
			cs->pending_code = err_set(&cs->pending_err, ERR_UNAVAILABLE, "shutting_down",
			                           "the server is shutting down");
			return;
		}
		if (d->auth != NULL) {
			enum auth_scope scope = AUTH_NONE;
			const char *name = NULL;

			if (auth_check(d->auth, http_header(&cs->req, MHD_HTTP_HEADER_AUTHORIZATION),
			               &scope, &name) != 0) {
				cs->pending_code =
					err_set(&cs->pending_err, ERR_UNAUTHORIZED, "unauthorized",
				                "a valid 'Authorization: Bearer <key>' header is required");
				return;
			}
			if (scope < cs->match.route->scope) {
				cs->pending_code = err_set(&cs->pending_err, ERR_FORBIDDEN, "forbidden",
				                           "this key has the read scope; %s %s needs admin",
				                           cs->req.method, cs->req.route);
				return;
			}
			cs->req.scope = scope;
		} else {
			cs->req.scope = AUTH_ADMIN;
		}
	}
	http_query_each(&cs->req, query_known, cs);
}

/* The handler's answer made whole: a problem when it gave none, an empty body for none. */
static void handler_done(struct conn_state *cs)
{
	struct http_res *res = &cs->res;

	if (res->status == 0) {
		struct err e = {0};

		free(res->body);
		memset(res, 0, sizeof *res);
		err_set(&e, ERR_INTERNAL, "no_answer", "the handler gave no answer");
		http_problem(res, &cs->req, ERR_INTERNAL, &e, NULL);
	}
	if (res->body == NULL) {
		res->body = strdup("");
		res->len = 0;
	}
	cs->res_ready = 1;
}

/* Run the route's handler into cs->res, with the contract's fallbacks. */
static void run_handler(struct conn_state *cs)
{
	if (cs->srv->d->router == NULL || router_handle(&cs->req, &cs->res) == 1)
		cs->match.route->handler(&cs->req, &cs->res);
	handler_done(cs);
}

/* A ROUTE_QUICK handler on this HTTP thread: 1 when it answered (a quick search, counted in
 * winnow_searches_quick_total, or an error found while deciding), 0 when it deferred to
 * the work pool, having changed nothing. */
static int run_quick(struct conn_state *cs)
{
	struct http_res *res = &cs->res;

	cs->req.quick = 1;
	cs->match.route->handler(&cs->req, res);
	cs->req.quick = 0;
	if (!res->defer) {
		if (res->status == 200)
			metrics_add(cs->srv->d->metrics, METRICS_SEARCHES_QUICK, 1);
		handler_done(cs);
		return 1;
	}
	free(res->body);
	memset(res, 0, sizeof *res);
	return 0;
}

/* A pool thread: take a suspended request, run its handler, resume its connection. */
static void *worker_main(void *arg)
{
	struct server *srv = arg;

	for (;;) {
		struct conn_state *cs;

		pthread_mutex_lock(&srv->mu);
		while (srv->head == NULL && !srv->quit)
			pthread_cond_wait(&srv->cv, &srv->mu);
		if (srv->head == NULL) { /* quit, and nothing left */
			pthread_mutex_unlock(&srv->mu);
			return NULL;
		}
		cs = srv->head;
		srv->head = cs->next;
		if (srv->head == NULL)
			srv->tail = NULL;
		cs->next = NULL;
		pthread_mutex_unlock(&srv->mu);
		run_handler(cs);
		MHD_resume_connection(cs->req.conn);
	}
}

/* The route's body limit and the flag that sets it; every one is also under --body-limit. */
static void set_limit(struct conn_state *cs)
{
	const struct config *cfg = cs->srv->d->cfg;
	enum route_body b = cs->match.route != NULL ? cs->match.route->body : ROUTE_BODY_DEFINITION;
	uint64_t lim = cfg->body_limit;
	const char *flag = "--body-limit";

	if (b == ROUTE_BODY_SEARCH && cfg->search_body_limit < lim) {
		lim = cfg->search_body_limit;
		flag = "--search-body-limit";
	} else if (b == ROUTE_BODY_DEFINITION && cfg->definition_body_limit < lim) {
		lim = cfg->definition_body_limit;
		flag = "--definition-body-limit";
	}
	cs->limit = lim;
	cs->limit_flag = flag;
}

static unsigned parse_factor(const struct http_req *r)
{
	char mt[64];
	size_t n;

	http_media_type(r, mt, sizeof mt);
	n = strlen(mt);
	if (strcmp(mt, "application/json") == 0 || (n > 5 && strcmp(mt + n - 5, "+json") == 0))
		return SERVER_PARSE_JSON;
	return SERVER_PARSE_OTHER;
}

static void track_set(struct server *srv, struct conn_track *t, int received)
{
	if (t == NULL)
		return;
	pthread_mutex_lock(&srv->track_mu);
	t->received = received;
	if (!received)
		t->since = clock_now();
	pthread_mutex_unlock(&srv->track_mu);
}

/* The first callback of a request: its state, routing, auth, the limits. */
static enum MHD_Result request_start(struct server *srv, struct conn_state *cs,
                                     struct MHD_Connection *conn, const char *url,
                                     const char *method)
{
	const union MHD_ConnectionInfo *ci;
	const char *cl;
	struct err e = {0};

	cs->started = 1;
	cs->req.d = srv->d;
	cs->req.core = &srv->d->core;
	cs->req.conn = conn;
	cs->req.method = method;
	cs->req.route = "unmatched";
	cs->path = strdup(url);
	if (cs->path == NULL)
		return MHD_NO;
	cs->req.path = cs->path;
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	cs->track = ci != NULL ? ci->socket_context : NULL;
	atomic_fetch_add(&srv->inflight, 1);
	set_request_id(cs);
	first_call(cs);
	set_limit(cs);
	cs->parse_factor = parse_factor(&cs->req);
	cl = http_header(&cs->req, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl == NULL)
		return MHD_YES; /* a chunked body is charged as it grows */
	{
		char *end;
		unsigned long long n;

		/* before any other error: a body too large to drop is answered at once */
		errno = 0;
		n = strtoull(cl, &end, 10);
		if (errno != 0 || end == cl || n > cs->limit) {
			cs->pending_code = err_set(&e, ERR_TOO_LARGE, "body_too_large",
			        "the request body (%s bytes) exceeds the limit of %llu bytes for this "
			        "route (%s)", cl, (unsigned long long)cs->limit, cs->limit_flag);
			return (enum MHD_Result)answer_problem(cs, conn, ERR_TOO_LARGE, &e);
		}
		if (n == 0 || cs->pending_code != 0)
			return MHD_YES; /* a refused body is dropped, never charged */
		/* the whole cost up front, so that a body the budget cannot take is refused before
		 * it is read; the buffer is allocated at its exact size */
		if (mem_charge(cs, (n + 1) * (1 + (uint64_t)cs->parse_factor)) != 0) {
			/* Answered once the body is read and dropped (it is within the route's
			 * limit): answered now, the client would still be writing when the
			 * connection closes and would see a reset instead of the 503. */
			cs->pending_code = overloaded(cs, &cs->pending_err);
			return MHD_YES;
		}
		cs->parse_charged = 1;
		cs->body = malloc(n + 1);
		if (cs->body == NULL) {
			cs->pending_code = err_set(&cs->pending_err, ERR_NOMEM, NULL,
			                           "out of memory for the request body");
			return MHD_YES;
		}
		cs->cap = n + 1;
	}
	return MHD_YES;
}

/* Append a piece of the body, growing and charging the buffer when its length was not
 * declared (chunked). */
static void body_append(struct conn_state *cs, const char *data, size_t n)
{
	if (cs->len + n > cs->limit) {
		free(cs->body);
		cs->body = NULL;
		cs->len = cs->cap = 0;
		mem_release(cs);
		cs->pending_code = err_set(&cs->pending_err, ERR_TOO_LARGE, "body_too_large",
		                           "the request body exceeds the limit of %llu bytes for "
		                           "this route (%s)",
		                           (unsigned long long)cs->limit, cs->limit_flag);
		return;
	}
	if (cs->len + n + 1 > cs->cap) {
		size_t cap = cs->cap ? cs->cap : 64 * 1024;
		char *nb;

		while (cap < cs->len + n + 1)
			cap *= 2;
		if (mem_charge(cs, cap - cs->cap) != 0) {
			free(cs->body);
			cs->body = NULL;
			cs->len = cs->cap = 0;
			mem_release(cs);
			cs->pending_code = overloaded(cs, &cs->pending_err);
			return;
		}
		nb = realloc(cs->body, cap);
		if (nb == NULL) {
			cs->pending_code = err_set(&cs->pending_err, ERR_NOMEM, NULL,
			                           "out of memory for the request body");
			return;
		}
		cs->body = nb;
		cs->cap = cap;
	}
	memcpy(cs->body + cs->len, data, n);
	cs->len += n;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
	struct server *srv = cls;
	struct conn_state *cs = *con_cls;

	(void)version;
	if (cs == NULL || !cs->started) {
		if (cs == NULL) { /* on_uri could not allocate */
			cs = calloc(1, sizeof *cs);
			if (cs == NULL)
				return MHD_NO;
			cs->srv = srv;
			cs->t0 = clock_now();
			*con_cls = cs;
		}
		return request_start(srv, cs, conn, url, method);
	}

	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (cs->pending_code == 0)
			body_append(cs, upload_data, n);
		return MHD_YES; /* else discard: the answer is already decided */
	}

	/* The body is complete: answer. */
	if (cs->res_ready) /* back from the pool */
		return (enum MHD_Result)queue(cs, conn, &cs->res);
	track_set(srv, cs->track, 1);
	/* A chunked body was charged for its buffer only: now its parse. (A declared length
	 * was charged for both at the start.) */
	if (cs->pending_code == 0 && cs->len > 0 && !cs->parse_charged) {
		if (mem_charge(cs, (uint64_t)cs->len * cs->parse_factor) != 0)
			cs->pending_code = overloaded(cs, &cs->pending_err);
		cs->parse_charged = 1;
	}
	if (cs->pending_code != 0)
		return (enum MHD_Result)answer_problem(cs, conn, cs->pending_code, &cs->pending_err);
	if (cs->body != NULL)
		cs->body[cs->len] = '\0';
	cs->req.body = cs->body != NULL ? cs->body : "";
	cs->req.body_len = cs->len;

	/* a router waits on the shards: never on an HTTP thread */
	if (cs->match.route->offload == ROUTE_QUICK && srv->d->router == NULL &&
	    srv->nworkers > 0 && run_quick(cs))
		return (enum MHD_Result)queue(cs, conn, &cs->res);
	if ((cs->match.route->offload != ROUTE_INLINE || srv->d->router != NULL) &&
	    srv->nworkers > 0) {
		MHD_suspend_connection(conn);
		pthread_mutex_lock(&srv->mu);
		if (srv->tail != NULL)
			srv->tail->next = cs;
		else
			srv->head = cs;
		srv->tail = cs;
		pthread_cond_signal(&srv->cv);
		pthread_mutex_unlock(&srv->mu);
		return MHD_YES;
	}
	run_handler(cs);
	return (enum MHD_Result)queue(cs, conn, &cs->res);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct server *srv = cls;
	struct conn_state *cs = *con_cls;
	double dur;
	char qid[80];

	(void)conn;
	if (cs == NULL)
		return;
	if (!cs->started) { /* the request line came, the headers never did */
		free(cs);
		*con_cls = NULL;
		return;
	}
	mem_release(cs);
	track_set(srv, cs->track, 0);
	dur = clock_now() - cs->t0;
	if (cs->status == 0)
		cs->status = 499; /* the client went away before an answer */
	metrics_request(srv->d->metrics, cs->req.method, cs->req.route, cs->status, dur);
	log_msg(cs->status >= 500 ? LOG_WARN : LOG_INFO, "request",
	        "method=%s route=%s status=%d duration_ms=%.3f bytes_in=%zu request_id=%s%s",
	        cs->req.method, cs->req.route, cs->status, dur * 1e3, cs->len,
	        log_quote(cs->req.request_id, qid, sizeof qid),
	        toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " completed=false");
	free(cs->res.body); /* NULL once queued; set if the client left before the answer */
	if (cs->res.stream_free != NULL) /* a stream that was never handed to MHD */
		cs->res.stream_free(cs->res.stream_ctx);
	free(cs->body);
	free(cs->params);
	free(cs->path);
	free(cs);
	*con_cls = NULL;
	atomic_fetch_sub(&srv->inflight, 1);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
	struct server *srv = cls;
	struct conn_track *t;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);

		t = calloc(1, sizeof *t);
		if (t == NULL || ci == NULL) {
			free(t);
			*socket_context = NULL;
			return; /* untracked: only the idle timeout applies */
		}
		t->fd = ci->connect_fd;
		t->since = clock_now();
		pthread_mutex_lock(&srv->track_mu);
		t->next = srv->tracks;
		if (srv->tracks != NULL)
			srv->tracks->prev = t;
		srv->tracks = t;
		pthread_mutex_unlock(&srv->track_mu);
		*socket_context = t;
		return;
	}
	/* MHD_CONNECTION_NOTIFY_CLOSED comes before libmicrohttpd closes the socket: once the
	 * entry is gone under the lock, the watchdog cannot shut down a reused descriptor. */
	t = *socket_context;
	if (t == NULL)
		return;
	pthread_mutex_lock(&srv->track_mu);
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		srv->tracks = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	pthread_mutex_unlock(&srv->track_mu);
	free(t);
	*socket_context = NULL;
}

/* Every quarter of the deadline (at most a second), shut down the sockets of connections
 * that have not delivered a whole request in time; libmicrohttpd then reads the end of
 * the stream on its own thread and closes them as it would any closed connection. */
static void *watchdog_main(void *arg)
{
	struct server *srv = arg;
	double limit = (double)srv->d->cfg->request_timeout_s;
	double step = limit / 4 < 1.0 ? limit / 4 : 1.0;

	pthread_mutex_lock(&srv->track_mu);
	while (!srv->watchdog_quit) {
		struct timespec ts;
		double now = clock_now(), wake;
		unsigned cut = 0;

		for (struct conn_track *t = srv->tracks; t != NULL; t = t->next) {
			if (t->received || t->cut || now - t->since < limit)
				continue;
			shutdown(t->fd, SHUT_RDWR);
			t->cut = 1;
			cut++;
		}
		if (cut > 0)
			log_msg(LOG_WARN, "request_timeout",
			        "connections=%u timeout_s=%u msg=\"closed: no whole request in time\"",
			        cut, srv->d->cfg->request_timeout_s);
		clock_gettime(CLOCK_REALTIME, &ts);
		wake = (double)ts.tv_sec + ts.tv_nsec / 1e9 + step;
		ts.tv_sec = (time_t)wake;
		ts.tv_nsec = (long)((wake - (double)ts.tv_sec) * 1e9);
		pthread_cond_timedwait(&srv->track_cv, &srv->track_mu, &ts);
	}
	pthread_mutex_unlock(&srv->track_mu);
	return NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct server *srv = cls;
	char buf[512], q[600];
	size_t n;

	vsnprintf(buf, sizeof buf, fmt, ap);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	/* kept for the start-up error: "Failed to bind to port 8080: Address already in use" */
	pthread_mutex_lock(&srv->mu);
	if (srv->starting)
		snprintf(srv->start_msg, sizeof srv->start_msg, "%s", buf);
	pthread_mutex_unlock(&srv->mu);
	log_msg(LOG_WARN, "http", "msg=%s", log_quote(buf, q, sizeof q));
}

int server_start(struct server **out, struct daemon *d, struct err *e)
{
	struct server *srv = NULL;
	struct addrinfo hints = {0}, *ai = NULL;
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
	                 MHD_ALLOW_SUSPEND_RESUME;
	int rc = 0, gai;

	srv = calloc(1, sizeof *srv);
	if (srv == NULL)
		return err_set(e, ERR_NOMEM, NULL, "out of memory");
	srv->d = d;
	srv->mem_limit = d->cfg->memory_limit;
	pthread_mutex_init(&srv->mu, NULL);
	pthread_cond_init(&srv->cv, NULL);
	pthread_mutex_init(&srv->track_mu, NULL);
	pthread_cond_init(&srv->track_cv, NULL);
	srv->starting = 1;
	if (getrandom(&srv->id_seed, sizeof srv->id_seed, 0) != (ssize_t)sizeof srv->id_seed)
		srv->id_seed = (uint64_t)time(NULL) ^ (uint64_t)getpid();

	hints.ai_flags = AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	gai = getaddrinfo(d->cfg->listen_host, NULL, &hints, &ai);
	if (gai != 0 || ai == NULL) {
		rc = err_set(e, ERR_INVALID, "bad_listen_address", "cannot resolve listen host '%s': %s",
		             d->cfg->listen_host, gai_strerror(gai));
		goto out;
	}
	memset(&ss, 0, sizeof ss);
	memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
	if (ss.ss_family == AF_INET6) {
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(d->cfg->listen_port);
		flags |= MHD_USE_IPv6;
	} else {
		((struct sockaddr_in *)&ss)->sin_port = htons(d->cfg->listen_port);
	}

	if (d->cfg->tls_cert != NULL) {
		if ((rc = tls_load(d->cfg->tls_cert, d->cfg->tls_key, e)) != 0)
			goto out;
		srv->tls = 1;
		flags |= MHD_USE_TLS;
	}

	/* No MHD_OPTION_LISTENING_ADDRESS_REUSE: with it a second daemon bound the same port
	 * and the kernel split the requests between two stores. libmicrohttpd still sets
	 * SO_REUSEADDR, so a restart does not wait for TIME_WAIT. */
	srv->mhd = MHD_start_daemon(
		flags, d->cfg->listen_port, NULL, NULL, on_request, srv,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv, /* first, so it sees option errors */
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)d->cfg->threads,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)d->cfg->max_connections,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)d->cfg->max_connections_per_ip,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)d->cfg->timeout_s,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
		srv->tls ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END, tls_retrieve,
		MHD_OPTION_END);
	pthread_mutex_lock(&srv->mu);
	srv->starting = 0;
	pthread_mutex_unlock(&srv->mu);
	if (srv->mhd == NULL) {
		int v6 = strchr(d->cfg->listen_host, ':') != NULL;

		rc = err_set(e, ERR_IO, "listen_failed", "cannot listen on %s%s%s:%u: %s",
		             v6 ? "[" : "", d->cfg->listen_host, v6 ? "]" : "",
		             (unsigned)d->cfg->listen_port,
		             srv->start_msg[0] ? srv->start_msg : "libmicrohttpd refused to start");
		goto out;
	}
	/* Two pool threads per HTTP thread: requests parse on all cores already, but a request
	 * that waits for its commit (two fsyncs) holds a pool thread without using a core; a
	 * second one per core keeps parsing meanwhile, and concurrent commits are grouped by the
	 * store. Measured with bench/ingest: one per core 40,000 records/s, two per core (with
	 * group commit) above 50,000. */
	for (unsigned i = 0; i < 2 * d->cfg->threads && i < SERVER_MAX_WORKERS; i++) {
		if (pthread_create(&srv->workers[i], NULL, worker_main, srv) != 0)
			break;
		srv->nworkers++;
	}
	if (d->cfg->request_timeout_s > 0 &&
	    pthread_create(&srv->watchdog, NULL, watchdog_main, srv) == 0)
		srv->have_watchdog = 1;
	info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info != NULL ? info->port : d->cfg->listen_port;
	*out = srv;
	srv = NULL;
out:
	if (ai != NULL)
		freeaddrinfo(ai);
	if (srv != NULL) {
		if (srv->tls)
			tls_close();
		pthread_mutex_destroy(&srv->mu);
		pthread_cond_destroy(&srv->cv);
		pthread_mutex_destroy(&srv->track_mu);
		pthread_cond_destroy(&srv->track_cv);
	}
	free(srv);
	return rc;
}

uint16_t server_port(const struct server *s)
{
	return s->port;
}

int server_reload_tls(struct server *s, struct err *e)
{
	if (s == NULL || !s->tls)
		return 0;
	return tls_load(s->d->cfg->tls_cert, s->d->cfg->tls_key, e);
}

uint64_t server_memory_used(const struct server *s)
{
	return s != NULL ? (uint64_t)atomic_load(&s->mem_used) : 0;
}

int server_listen_is_loopback(const char *host)
{
	struct addrinfo hints = {0}, *ai = NULL;
	int all = 1;

	hints.ai_flags = AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, NULL, &hints, &ai) != 0 || ai == NULL)
		return 0;
	for (struct addrinfo *p = ai; p != NULL; p = p->ai_next)
		if (!is_loopback(p->ai_addr))
			all = 0;
	freeaddrinfo(ai);
	return all;
}

void server_stop(struct server *s, double grace_s)
{
	double deadline;

	if (s == NULL)
		return;
	/* No MHD_quiesce_daemon: with a thread pool on epoll it races with the workers, which
	 * drop the listening socket from their epoll sets themselves once they see the flag it
	 * sets, and libmicrohttpd aborts the process when its own removal then fails (seen on a
	 * SIGTERM a few milliseconds after start-up). New requests get 503 shutting_down
	 * (d->core.stopping, set before this call) while the ones in flight finish. */
	deadline = clock_now() + grace_s;
	while (atomic_load(&s->inflight) > 0 && clock_now() < deadline) {
		struct timespec ts = {0, 10 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
	/* Every queued request has been answered (inflight is 0) unless the grace ran out;
	 * the workers finish what is queued, then MHD stops. */
	pthread_mutex_lock(&s->mu);
	s->quit = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	for (unsigned i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	if (s->have_watchdog) {
		pthread_mutex_lock(&s->track_mu);
		s->watchdog_quit = 1;
		pthread_cond_signal(&s->track_cv);
		pthread_mutex_unlock(&s->track_mu);
		pthread_join(s->watchdog, NULL);
	}
	MHD_stop_daemon(s->mhd);
	if (s->tls)
		tls_close();
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->track_mu);
	pthread_cond_destroy(&s->track_cv);
	free(s);
}
