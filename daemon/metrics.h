/* SPDX-License-Identifier: MIT */
/* metrics: request counters, latency histograms and record counters, rendered in the
 * Prometheus text format 0.0.4.
 *
 * Owns a small table of label sets keyed by (method, route template[, status]), kept
 * sorted so the output is stable. Thread-safe: one mutex around the table; the record
 * counters are atomics. Label values must come from a bounded set (route templates,
 * never raw paths or ids); past METRICS_MAX_SERIES label sets new ones are dropped. */
#ifndef WINNOW_METRICS_H
#define WINNOW_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct metrics;

enum metrics_counter {
	METRICS_RECORDS_INGESTED,
	METRICS_RECORDS_REJECTED,
	METRICS_SEARCHES_QUICK, /* searches answered on an HTTP thread (ROUTE_QUICK) */
	METRICS_COUNTER_COUNT
};

/* Values the caller samples at render time. */
struct jobs_stat;

struct metrics_gauges {
	uint64_t lmdb_used_bytes, lmdb_map_size_bytes;
	unsigned datasets;
	int ready;
	int storage_full;            /* store_full(): the last write failed for space */
	double uptime_s;
	uint64_t search_split_scans; /* index_split_scans(): rendered as a counter */
	const char *faiss_build;      /* index_faiss_build(): "avx2", "generic" (NULL: not shown) */
	const struct jobs_stat *jobs; /* borrowed: jobs_stats() by kind */
	size_t njobs;
};

/* Most (method, route, status) label sets kept; a guard against unbounded labels. */
#define METRICS_MAX_SERIES 4096

/* 0 and *out (new, metrics_free it), or ERR_NOMEM. */
int metrics_open(struct metrics **out);

/* Free m. m may be NULL. */
void metrics_free(struct metrics *m);

/* Count one answered request and its duration. method ("GET") and route (a template such
 * as "/v1/datasets/{name}", never a raw path) are borrowed for the call (copied).
 * Negative or NaN seconds count as 0. Thread-safe; m NULL does nothing. */
void metrics_request(struct metrics *m, const char *method, const char *route, int status,
                     double seconds);

/* Add n to a counter. Thread-safe (atomic); m NULL or c out of range does nothing. */
void metrics_add(struct metrics *m, enum metrics_counter c, uint64_t n);

/* Current value of a counter (0 for m NULL or c out of range). */
uint64_t metrics_get(struct metrics *m, enum metrics_counter c);

/* Render everything with # HELP and # TYPE lines: winnow_http_requests_total{method,route,
 * status}, the winnow_http_request_duration_seconds{method,route} histogram (le = .0005
 * .001 .0025 .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10 +Inf; _bucket/_sum/_count),
 * winnow_records_ingested_total, winnow_records_rejected_total,
 * winnow_searches_quick_total and, when g is not NULL,
 * the gauges winnow_lmdb_used_bytes, winnow_lmdb_map_size_bytes, winnow_datasets,
 * winnow_ready, winnow_uptime_seconds, winnow_faiss_build_info{build="..."} (always 1),
 * and the counter winnow_search_split_scans_total. Series are sorted by route, method, status. Label
 * values are escaped (\\, \", \n). Returns a new NUL-terminated string (free() it) and
 * *len its length (len may be NULL); NULL on ENOMEM. g is borrowed. */
char *metrics_render(struct metrics *m, const struct metrics_gauges *g, size_t *len);

#endif
