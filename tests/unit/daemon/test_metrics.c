/* SPDX-License-Identifier: MIT */
/* test_metrics: the exact text-format output (counts, cumulative buckets, sums, sorting,
 * label escaping, gauges), counters, concurrent updates and the label-set guard. */
#include "daemon/metrics.h"
#include "tests/harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const les[14] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                    "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                                    "1",      "2.5",   "5",      "10"};

/* One histogram series as a reader would expect it: cumulative counts per le. */
struct hist {
	const char *labels;
	unsigned cum[14];
	unsigned count;
	const char *sum;
};

static size_t append(char *buf, size_t size, size_t n, const char *text)
{
	size_t len = strlen(text);

	if (n + len < size) {
		memcpy(buf + n, text, len + 1);
		n += len;
	}
	return n;
}

static size_t append_hist(char *buf, size_t size, size_t n, const struct hist *h)
{
	char line[512];
	int i;

	for (i = 0; i < 14; i++) {
		snprintf(line, sizeof line,
		         "winnow_http_request_duration_seconds_bucket{%s,le=\"%s\"} %u\n",
		         h->labels, les[i], h->cum[i]);
		n = append(buf, size, n, line);
	}
	snprintf(line, sizeof line,
	         "winnow_http_request_duration_seconds_bucket{%s,le=\"+Inf\"} %u\n"
	         "winnow_http_request_duration_seconds_sum{%s} %s\n"
	         "winnow_http_request_duration_seconds_count{%s} %u\n",
	         h->labels, h->count, h->labels, h->sum, h->labels, h->count);
	return append(buf, size, n, line);
}

/* Print the first line where got and want differ. */
static void show_diff(const char *got, const char *want)
{
	size_t i = 0, line_start = 0;

	while (got[i] && got[i] == want[i]) {
		if (got[i] == '\n')
			line_start = i + 1;
		i++;
	}
	printf("  differs at byte %zu\n  got:  %.120s\n  want: %.120s\n", i, got + line_start,
	       want + line_start);
}

static void test_render_exact(void)
{
	static const struct hist hists[] = {
		{"method=\"GET\",route=\"/livez\"",
		 {1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2}, 3, "20.002197265625"},
		{"method=\"PUT\",route=\"/v1/datasets/{name}\"",
		 {0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 2}, 2, "0.75"},
		{"method=\"GET\",route=\"/x\\\"y\\\\z\\nw\"",
		 {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 1, "0"},
	};
	struct metrics_gauges g = {.lmdb_used_bytes = 4096,
	                           .lmdb_map_size_bytes = 1073741824,
	                           .datasets = 3,
	                           .ready = 1,
	                           .uptime_s = 12.5,
	                           .search_split_scans = 9};
	static char want[16384];
	struct metrics *m = NULL;
	size_t n = 0, len = 0, i;
	char *text;

	CHECK_INT(metrics_open(&m), 0);
	/* Durations are exact binary fractions so the sums print exactly. */
	metrics_request(m, "GET", "/livez", 200, 0.000244140625); /* le 0.0005 */
	metrics_request(m, "PUT", "/v1/datasets/{name}", 409, 0.5); /* on a bound: le 0.5 */
	metrics_request(m, "GET", "/livez", 200, 0.001953125);    /* le 0.0025 */
	metrics_request(m, "GET", "/x\"y\\z\nw", 404, -1);        /* clamped to 0 */
	metrics_request(m, "PUT", "/v1/datasets/{name}", 201, 0.25);
	metrics_request(m, "GET", "/livez", 200, 20);             /* only +Inf */
	metrics_add(m, METRICS_RECORDS_INGESTED, 5);
	metrics_add(m, METRICS_RECORDS_INGESTED, 2);
	metrics_add(m, METRICS_RECORDS_REJECTED, 2);
	metrics_add(m, METRICS_SEARCHES_QUICK, 4);
	metrics_add(m, METRICS_COUNTER_COUNT, 100); /* out of range: ignored */
	CHECK_INT(metrics_get(m, METRICS_RECORDS_INGESTED), 7);
	CHECK_INT(metrics_get(m, METRICS_RECORDS_REJECTED), 2);

	n = append(want, sizeof want, n,
	           "# HELP winnow_http_requests_total HTTP requests answered, by method, route "
	           "template and status.\n"
	           "# TYPE winnow_http_requests_total counter\n"
	           "winnow_http_requests_total{method=\"GET\",route=\"/livez\",status=\"200\"} 3\n"
	           "winnow_http_requests_total{method=\"PUT\",route=\"/v1/datasets/{name}\","
	           "status=\"201\"} 1\n"
	           "winnow_http_requests_total{method=\"PUT\",route=\"/v1/datasets/{name}\","
	           "status=\"409\"} 1\n"
	           "winnow_http_requests_total{method=\"GET\",route=\"/x\\\"y\\\\z\\nw\","
	           "status=\"404\"} 1\n"
	           "# HELP winnow_http_request_duration_seconds Time from request start to "
	           "response completion, by method and route template.\n"
	           "# TYPE winnow_http_request_duration_seconds histogram\n");
	for (i = 0; i < sizeof hists / sizeof hists[0]; i++)
		n = append_hist(want, sizeof want, n, &hists[i]);
	n = append(want, sizeof want, n,
	           "# HELP winnow_records_ingested_total Records accepted by ingest.\n"
	           "# TYPE winnow_records_ingested_total counter\n"
	           "winnow_records_ingested_total 7\n"
	           "# HELP winnow_records_rejected_total Records rejected by ingest.\n"
	           "# TYPE winnow_records_rejected_total counter\n"
	           "winnow_records_rejected_total 2\n"
	           "# HELP winnow_searches_quick_total Searches answered on the HTTP thread, "
	           "without the work pool's hand-off.\n"
	           "# TYPE winnow_searches_quick_total counter\n"
	           "winnow_searches_quick_total 4\n"
	           "# HELP winnow_lmdb_used_bytes Bytes of the LMDB map in use.\n"
	           "# TYPE winnow_lmdb_used_bytes gauge\n"
	           "winnow_lmdb_used_bytes 4096\n"
	           "# HELP winnow_storage_full 1 while the last write failed because the disk is full "
	           "(writes answer 507).\n"
	           "# TYPE winnow_storage_full gauge\n"
	           "winnow_storage_full 0\n"
	           "# HELP winnow_lmdb_map_size_bytes Current LMDB map size in bytes.\n"
	           "# TYPE winnow_lmdb_map_size_bytes gauge\n"
	           "winnow_lmdb_map_size_bytes 1073741824\n"
	           "# HELP winnow_datasets Number of datasets.\n"
	           "# TYPE winnow_datasets gauge\n"
	           "winnow_datasets 3\n"
	           "# HELP winnow_ready 1 when the daemon is ready to serve, else 0.\n"
	           "# TYPE winnow_ready gauge\n"
	           "winnow_ready 1\n"
	           "# HELP winnow_uptime_seconds Seconds since the daemon started.\n"
	           "# TYPE winnow_uptime_seconds gauge\n"
	           "winnow_uptime_seconds 12.5\n"
	           "# HELP winnow_search_split_scans_total Searches that scanned every vector on "
	           "several threads (--search-threads).\n"
	           "# TYPE winnow_search_split_scans_total counter\n"
	           "winnow_search_split_scans_total 9\n");
	CHECK(n < sizeof want - 1);

	text = metrics_render(m, &g, &len);
	CHECK(text != NULL);
	CHECK_INT(len, strlen(text));
	if (strcmp(text, want) != 0)
		show_diff(text, want);
	CHECK_INT(strcmp(text, want), 0);
	free(text);

	/* The same cumulative bucket line, spelled out, as a scraper would grep it. */
	text = metrics_render(m, NULL, NULL);
	CHECK(text != NULL);
	CHECK(strstr(text, "winnow_http_request_duration_seconds_bucket{method=\"GET\","
	                   "route=\"/livez\",le=\"0.0025\"} 2\n") != NULL);
	CHECK(strstr(text, "winnow_lmdb_used_bytes") == NULL); /* no gauges without g */
	CHECK(strstr(text, "winnow_records_rejected_total 2\n") != NULL);
	free(text);
	metrics_free(m);
}

static void test_empty_and_null(void)
{
	struct metrics_gauges g = {.uptime_s = 0.1};
	struct metrics *m = NULL;
	char *text;
	size_t len = 0;

	CHECK(metrics_render(NULL, &g, &len) == NULL);
	metrics_request(NULL, "GET", "/livez", 200, 1);
	metrics_add(NULL, METRICS_RECORDS_INGESTED, 1);
	CHECK_INT(metrics_get(NULL, METRICS_RECORDS_INGESTED), 0);
	metrics_free(NULL);

	CHECK_INT(metrics_open(&m), 0);
	text = metrics_render(m, &g, &len);
	CHECK(text != NULL);
	CHECK(strstr(text, "# TYPE winnow_http_requests_total counter\n"
	                   "# HELP winnow_http_request_duration_seconds ") != NULL);
	CHECK(strstr(text, "winnow_records_ingested_total 0\n") != NULL);
	CHECK(strstr(text, "winnow_ready 0\n") != NULL);
	CHECK(strstr(text, "winnow_uptime_seconds 0.1\n") != NULL);
	CHECK(strstr(text, "winnow_datasets 0\n") != NULL);
	CHECK(strstr(text, "winnow_faiss_build_info") == NULL); /* no build given, none shown */
	free(text);
	g.faiss_build = "avx2";
	text = metrics_render(m, &g, &len);
	CHECK(text != NULL);
	CHECK(strstr(text, "# TYPE winnow_faiss_build_info gauge\n"
	                   "winnow_faiss_build_info{build=\"avx2\"} 1\n") != NULL);
	free(text);
	metrics_free(m);
}

struct worker {
	struct metrics *m;
	int id;
};

static void *hammer(void *arg)
{
	struct worker *w = arg;
	static const char *const routes[] = {"/livez", "/readyz", "/metrics"};
	int i;

	for (i = 0; i < 2000; i++) {
		metrics_request(w->m, "GET", routes[i % 3], 200, 0.001953125);
		metrics_add(w->m, METRICS_RECORDS_INGESTED, 1);
	}
	return NULL;
}

static void test_concurrent(void)
{
	struct worker w[4];
	pthread_t t[4];
	struct metrics *m = NULL;
	char *text;
	int i;

	CHECK_INT(metrics_open(&m), 0);
	for (i = 0; i < 4; i++) {
		w[i].m = m;
		w[i].id = i;
		CHECK_INT(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
	}
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK_INT(metrics_get(m, METRICS_RECORDS_INGESTED), 8000);
	text = metrics_render(m, NULL, NULL);
	CHECK(text != NULL);
	/* 2000 per thread round-robin over 3 routes: 667 + 667 + 666 each, times 4. */
	CHECK(strstr(text, "{method=\"GET\",route=\"/livez\",status=\"200\"} 2668\n") != NULL);
	CHECK(strstr(text, "{method=\"GET\",route=\"/metrics\",status=\"200\"} 2664\n") != NULL);
	CHECK(strstr(text, "_count{method=\"GET\",route=\"/readyz\"} 2668\n") != NULL);
	CHECK(strstr(text, "_bucket{method=\"GET\",route=\"/readyz\",le=\"0.001\"} 0\n") != NULL);
	CHECK(strstr(text, "_bucket{method=\"GET\",route=\"/readyz\",le=\"0.0025\"} "
	                   "2668\n") != NULL);
	CHECK(strstr(text, "_sum{method=\"GET\",route=\"/readyz\"} 5.2109375\n") != NULL);
	free(text);
	metrics_free(m);
}

static void test_series_guard(void)
{
	struct metrics *m = NULL;
	char route[32], *text, *p;
	unsigned lines = 0;
	int i;

	CHECK_INT(metrics_open(&m), 0);
	for (i = 0; i < METRICS_MAX_SERIES + 50; i++) {
		snprintf(route, sizeof route, "/raw/%05d", i);
		metrics_request(m, "GET", route, 200, 0);
	}
	/* Existing label sets keep counting after the guard trips. */
	metrics_request(m, "GET", "/raw/00000", 200, 0);
	text = metrics_render(m, NULL, NULL);
	CHECK(text != NULL);
	/* Walk the lines by hand: strstr in a loop is quadratic under ASan's interceptor. */
	for (p = text; *p; p++) {
		if ((p == text || p[-1] == '\n') &&
		    strncmp(p, "winnow_http_requests_total{", 27) == 0)
			lines++;
	}
	CHECK_INT(lines, METRICS_MAX_SERIES);
	CHECK(strstr(text, "route=\"/raw/00000\",status=\"200\"} 2\n") != NULL);
	CHECK(strstr(text, "route=\"/raw/04095\",status=\"200\"} 1\n") != NULL);
	CHECK(strstr(text, "/raw/04096") == NULL);
	free(text);
	metrics_free(m);
}

int main(void)
{
	HARNESS_RUN(test_render_exact);
	HARNESS_RUN(test_empty_and_null);
	HARNESS_RUN(test_concurrent);
	HARNESS_RUN(test_series_guard);
	return harness_done();
}
