/* SPDX-License-Identifier: MIT */
/* daemon: the one struct that main() owns and every request handler borrows.
 *
 * main() fills it in start-up order (config, log, metrics, auth, store, server) and
 * tears it down in reverse. Handlers receive a borrowed pointer valid for the whole
 * time the HTTP server runs. Fields are read-only after start-up except the atomics. */
#ifndef WINNOW_DAEMON_H
#define WINNOW_DAEMON_H

#include <stdatomic.h>

struct config;
struct store;
struct auth;
struct metrics;
struct server;
struct jobs;
struct catalog;

struct daemon {
	const struct config *cfg; /* borrowed from main() */
	struct store *store;
	struct auth *auth;        /* NULL when no keys file is configured */
	struct metrics *metrics;
	struct server *server;
	struct jobs *jobs;         /* the job runner (scoring, subsets, index builds) */
	struct catalog *catalog;   /* indexes and search */
	double started;           /* CLOCK_MONOTONIC seconds at start-up */
	atomic_int ready;         /* 1 once storage is open and indexes are loaded */
	atomic_int stopping;      /* 1 once shutdown began: new requests get 503 */
};

/* CLOCK_MONOTONIC in seconds. */
double daemon_now(void);

#endif
