/* SPDX-License-Identifier: MIT */
/* server: the libmicrohttpd daemon: listening, the thread pool, request bodies, auth,
 * routing, request ids, request logs and metrics. Handlers live in the resource files.
 *
 * Threading: MHD's thread pool with internal epoll; each request runs entirely on one
 * pool thread. server_stop() stops accepting, lets in-flight requests finish (bounded
 * wait), then stops the pool. */
#ifndef WINNOW_SERVER_H
#define WINNOW_SERVER_H

#include <stdint.h>

struct daemon;
struct err;
struct server;

/* Start listening on d->cfg's address with d->cfg->threads threads, over TLS when
 * d->cfg->tls_cert is set. d is borrowed until server_stop(). *out set only on success.
 * Errors: ERR_IO "listen_failed" naming the address and the reason (a busy port);
 * ERR_INVALID "bad_listen_address", "tls_config". */
int server_start(struct server **out, struct daemon *d, struct err *e);

/* The bound port (useful when the configured port was 0). */
uint16_t server_port(const struct server *s);

/* Load d->cfg's TLS certificate and key again (SIGHUP): handshakes from now on use them,
 * open connections keep theirs. 0 (also when the server has no TLS); ERR_INVALID with e
 * saying why, the old credentials staying in use. */
int server_reload_tls(struct server *s, struct err *e);

/* Bytes of the memory budget (--memory-limit) charged by requests in flight. */
uint64_t server_memory_used(const struct server *s);

/* 1 when every address host resolves to is a loopback one (127.0.0.0/8, ::1), else 0
 * (also when it does not resolve): binding anything else needs API keys. */
int server_listen_is_loopback(const char *host);

/* Stop accepting, wait up to grace_s seconds for in-flight requests, stop, free.
 * s may be NULL. */
void server_stop(struct server *s, double grace_s);

#endif
