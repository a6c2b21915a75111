/* SPDX-License-Identifier: MIT */
/* core: what the curation and search services share: the store, the job runner, the index
 * catalog and the tunables they read, borrowed from the process that assembles them.
 *
 * winnowd's main() fills one struct core inside its struct daemon (daemon/daemon.h) at
 * start-up; the tests and benches that run services without HTTP fill their own. Services
 * take a borrowed struct core * and never see the HTTP server, the configuration file or
 * the API keys. Fields are read-only once the services run, except the atomic. */
#ifndef WINNOW_CORE_H
#define WINNOW_CORE_H

#include <stdatomic.h>
#include <stdint.h>

struct store;
struct jobs;
struct catalog;

struct core {
	struct store *store;
	struct jobs *jobs;       /* the job runner (core/jobs.h) */
	struct catalog *catalog; /* the indexes of every dataset (search/catalog.h) */
	const char *data_dir;    /* borrowed: index files live under it */
	uint64_t job_chunk;      /* rows a job commits at a time (0: the job's own default) */
	unsigned job_throttle_ms;    /* pause after each job chunk */
	unsigned search_threads;     /* threads of one full scan (0: the CPU count) */
	int index_huge_pages;        /* 1: indexes on transparent huge pages (lib/thp.h) */
	uint64_t index_build_memory; /* vectors an HNSW build adds to FAISS in one piece */
	unsigned index_rebuild_dead; /* percent of dead vectors that queues a rebuild (0: never) */
	atomic_int stopping;     /* 1 once shutdown began: jobs stop at their next chunk */
};

/* The rows a job of a service commits at a time: c->job_chunk (--job-chunk), or dflt when
 * it is 0, rounded up to whole row-array blocks (STORE_ARRAY_ROWS). */
uint64_t core_chunk_rows(const struct core *c, uint64_t dflt);

/* The pause after a job chunk (--job-throttle-ms); returns at once when it is 0. */
void core_throttle(const struct core *c);

#endif
