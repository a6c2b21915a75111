/* SPDX-License-Identifier: MIT */
/* server: libmicrohttpd glue. Owns the MHD daemon, the per-request state (struct
 * conn_state, allocated on a request's first callback and freed in the completion
 * callback) and the work pool. Routes marked offload (ingest) do not run on the HTTP
 * thread: the connection is suspended, a pool thread runs the handler, then resumes it and
 * MHD calls us again to send the answer. libmicrohttpd may accept several connections on
 * one HTTP thread; the pool lets their requests parse and commit at the same time. Bodies are accumulated up to the configured limit; errors found before the
 * body ends (401, 403, 404, 405, 503) are answered once the body is consumed, except
 * a declared Content-Length over the limit, which is answered at once (413). */
#include "api/server.h"

#include <arpa/inet.h>
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
#include "api/routes.h"
#include "daemon/auth.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "daemon/metrics.h"

#define SERVER_MAX_WORKERS 16

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
	return queue(cs, conn, &res);
}

/* Route, authenticate and authorise on the first callback; remember any error. */
static void first_call(struct conn_state *cs)
{
	struct daemon *d = cs->srv->d;
	int rc;

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
}

/* Run the route's handler into cs->res, with the contract's fallbacks. */
static void run_handler(struct conn_state *cs)
{
	struct http_res *res = &cs->res;

	cs->match.route->handler(&cs->req, res);
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
	struct server *srv = cls;
	struct conn_state *cs = *con_cls;
	uint64_t limit = srv->d->cfg->body_limit;

	(void)version;
	if (cs == NULL) {
		const char *cl;

		cs = calloc(1, sizeof *cs);
		if (cs == NULL)
			return MHD_NO;
		cs->srv = srv;
		cs->t0 = clock_now();
		cs->req.d = srv->d;
		cs->req.core = &srv->d->core;
		cs->req.conn = conn;
		cs->req.method = method;
		cs->req.route = "unmatched";
		cs->path = strdup(url);
		if (cs->path == NULL) {
			free(cs);
			return MHD_NO;
		}
		cs->req.path = cs->path;
		*con_cls = cs;
		atomic_fetch_add(&srv->inflight, 1);
		set_request_id(cs);
		first_call(cs);
		cl = http_header(&cs->req, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL && strtoull(cl, NULL, 10) > limit) {
			struct err e = {0};

			err_set(&e, ERR_TOO_LARGE, "body_too_large",
			        "the request body (%s bytes) exceeds the limit of %llu bytes", cl,
			        (unsigned long long)limit);
			return (enum MHD_Result)answer_problem(cs, conn, ERR_TOO_LARGE, &e);
		}
		return MHD_YES;
	}

	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (cs->pending_code != 0)
			return MHD_YES; /* discard: the answer is already decided */
		if (cs->len + n > limit) {
			free(cs->body);
			cs->body = NULL;
			cs->len = cs->cap = 0;
			cs->pending_code = err_set(&cs->pending_err, ERR_TOO_LARGE, "body_too_large",
			                           "the request body exceeds the limit of %llu bytes",
			                           (unsigned long long)limit);
			return MHD_YES;
		}
		if (cs->len + n + 1 > cs->cap) {
			size_t cap = cs->cap ? cs->cap : 64 * 1024;
			char *nb;

			while (cap < cs->len + n + 1)
				cap *= 2;
			nb = realloc(cs->body, cap);
			if (nb == NULL) {
				cs->pending_code = err_set(&cs->pending_err, ERR_NOMEM, NULL,
				                           "out of memory for the request body");
				return MHD_YES;
			}
			cs->body = nb;
			cs->cap = cap;
		}
		memcpy(cs->body + cs->len, upload_data, n);
		cs->len += n;
		return MHD_YES;
	}

	/* The body is complete: answer. */
	if (cs->res_ready) /* back from the pool */
		return (enum MHD_Result)queue(cs, conn, &cs->res);
	if (cs->pending_code != 0)
		return (enum MHD_Result)answer_problem(cs, conn, cs->pending_code, &cs->pending_err);
	if (cs->body != NULL)
		cs->body[cs->len] = '\0';
	cs->req.body = cs->body != NULL ? cs->body : "";
	cs->req.body_len = cs->len;

	if (cs->match.route->offload && srv->nworkers > 0) {
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

/* Without a keys file, only loopback clients get in unless allow_remote is set. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct server *srv = cls;

	(void)addrlen;
	if (srv->d->auth != NULL || srv->d->cfg->allow_remote || is_loopback(addr))
		return MHD_YES;
	return MHD_NO;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512], q[600];
	size_t n;

	(void)cls;
	vsnprintf(buf, sizeof buf, fmt, ap);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
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
	pthread_mutex_init(&srv->mu, NULL);
	pthread_cond_init(&srv->cv, NULL);
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

	srv->mhd = MHD_start_daemon(
		flags, d->cfg->listen_port, on_accept, srv, on_request, srv,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv, /* first, so it sees option errors */
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)d->cfg->threads,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)d->cfg->max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)d->cfg->timeout_s,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1,
		MHD_OPTION_END);
	if (srv->mhd == NULL) {
		rc = err_set(e, ERR_IO, "listen_failed", "cannot listen on %s:%u (address in use?)",
		             d->cfg->listen_host, (unsigned)d->cfg->listen_port);
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
	info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info != NULL ? info->port : d->cfg->listen_port;
	*out = srv;
	srv = NULL;
out:
	if (ai != NULL)
		freeaddrinfo(ai);
	if (srv != NULL) {
		pthread_mutex_destroy(&srv->mu);
		pthread_cond_destroy(&srv->cv);
	}
	free(srv);
	return rc;
}

uint16_t server_port(const struct server *s)
{
	return s->port;
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
	MHD_stop_daemon(s->mhd);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}
