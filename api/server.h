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

/* Start listening on d->cfg's address with d->cfg->threads threads. d is borrowed until
 * server_stop(). *out set only on success. */
int server_start(struct server **out, struct daemon *d, struct err *e);

/* The bound port (useful when the configured port was 0). */
uint16_t server_port(const struct server *s);

/* Stop accepting, wait up to grace_s seconds for in-flight requests, stop, free.
 * s may be NULL. */
void server_stop(struct server *s, double grace_s);

#endif
