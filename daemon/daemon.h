/* SPDX-License-Identifier: MIT */
/* daemon: the one struct that main() owns and every request handler borrows.
 *
 * main() fills it in start-up order (config, log, metrics, auth, store, jobs, catalog,
 * server) and tears it down in reverse. Handlers receive a borrowed pointer valid for the
 * whole time the HTTP server runs; they hand &d->core to the services. Fields are
 * read-only after start-up except the atomics. */
#ifndef WINNOW_DAEMON_H
#define WINNOW_DAEMON_H

#include <stdatomic.h>

#include "core/core.h"

struct config;
struct auth;
struct metrics;
struct server;
struct fanout;

struct daemon {
	struct core core;         /* store, jobs, catalog: what the services borrow */
	const struct config *cfg; /* borrowed from main() */
	struct auth *auth;        /* NULL when no keys file is configured */
	struct metrics *metrics;
	struct server *server;
	struct fanout *router;     /* --router: the client to the shards; NULL on a data node */
	double started;           /* clock_now() at start-up */
	atomic_int ready;         /* 1 once storage is open and indexes are loaded */
};

#endif
