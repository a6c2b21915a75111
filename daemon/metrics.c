/* SPDX-License-Identifier: MIT */
/* metrics: the label-set tables, the histogram buckets and the text-format renderer.
 *
 * Owns two sorted arrays (requests by route/method/status, durations by route/method)
 * behind one mutex, and atomic record counters. Lookups are binary searches; inserts
 * (once per new label set, a bounded number of times) shift the array. Rendering holds
 * the mutex while it formats, which is cheap at the sizes the label guard allows. */
#include "daemon/metrics.h"

#include "core/jobs.h"

#include "lib/err.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_NBUCKETS 14

static const double bucket_le[METRICS_NBUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
static const char *const bucket_text[METRICS_NBUCKETS] = {
	"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
	"0.1",    "0.25",  "0.5",    "1",     "2.5",   "5",     "10",
};

struct req_series {
	char *method, *route;
	int status;
	uint64_t count;
};

struct dur_series {
	char *method, *route;
	uint64_t bucket[METRICS_NBUCKETS]; /* per bucket, not cumulative; +Inf = count */
	uint64_t count;
	double sum;
};

struct metrics {
	pthread_mutex_t lock;
	struct req_series *req;
	size_t nreq, areq;
	struct dur_series *dur;
	size_t ndur, adur;
	atomic_uint_least64_t counters[METRICS_COUNTER_COUNT];
};

int metrics_open(struct metrics **out)
{
	struct metrics *m = calloc(1, sizeof *m);
	int i;

	if (m == NULL)
		return ERR_NOMEM;
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		free(m);
		return ERR_NOMEM;
	}
	for (i = 0; i < METRICS_COUNTER_COUNT; i++)
		atomic_init(&m->counters[i], 0);
	*out = m;
	return 0;
}

void metrics_free(struct metrics *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->nreq; i++) {
		free(m->req[i].method);
		free(m->req[i].route);
	}
	for (i = 0; i < m->ndur; i++) {
		free(m->dur[i].method);
		free(m->dur[i].route);
	}
	free(m->req);
	free(m->dur);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static int cmp_key(const char *route_a, const char *method_a, int status_a, const char *route_b,
                   const char *method_b, int status_b)
{
	int c = strcmp(route_a, route_b);

	if (c == 0)
		c = strcmp(method_a, method_b);
	if (c == 0)
		c = (status_a > status_b) - (status_a < status_b);
	return c;
}

/* Index of the matching request series, or where it would go with *found = 0. */
static size_t find_req(const struct metrics *m, const char *method, const char *route,
                       int status, int *found)
{
	size_t lo = 0, hi = m->nreq;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct req_series *s = &m->req[mid];
		int c = cmp_key(s->route, s->method, s->status, route, method, status);

		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

static size_t find_dur(const struct metrics *m, const char *method, const char *route,
                       int *found)
{
	size_t lo = 0, hi = m->ndur;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct dur_series *s = &m->dur[mid];
		int c = cmp_key(s->route, s->method, 0, route, method, 0);

		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

/* Make room for one element at pos in an array of n elements of size sz. */
static int array_insert(void **arr, size_t *n, size_t *alloc, size_t sz, size_t pos)
{
	char *p = *arr;

	if (*n == *alloc) {
		size_t na = *alloc ? 2 * *alloc : 16;

		p = realloc(p, na * sz);
		if (p == NULL)
			return ERR_NOMEM;
		*arr = p;
		*alloc = na;
	}
	memmove(p + (pos + 1) * sz, p + pos * sz, (*n - pos) * sz);
	memset(p + pos * sz, 0, sz);
	(*n)++;
	return 0;
}

static void array_remove(void *arr, size_t *n, size_t sz, size_t pos)
{
	char *p = arr;

	memmove(p + pos * sz, p + (pos + 1) * sz, (*n - pos - 1) * sz);
	(*n)--;
}

static int names_dup(const char *method, const char *route, char **mo, char **ro)
{
	*mo = strdup(method);
	*ro = strdup(route);
	if (*mo == NULL || *ro == NULL) {
		free(*mo);
		free(*ro);
		*mo = *ro = NULL;
		return ERR_NOMEM;
	}
	return 0;
}

void metrics_request(struct metrics *m, const char *method, const char *route, int status,
                     double seconds)
{
	struct req_series *r;
	struct dur_series *d;
	char *mo = NULL, *ro = NULL;
	size_t ri, di, b;
	int rfound, dfound;

	if (m == NULL)
		return;
	if (method == NULL)
		method = "";
	if (route == NULL)
		route = "";
	if (!(seconds > 0)) /* NaN too */
		seconds = 0;
	pthread_mutex_lock(&m->lock);
	ri = find_req(m, method, route, status, &rfound);
	di = find_dur(m, method, route, &dfound);
	if ((!rfound && m->nreq >= METRICS_MAX_SERIES) ||
	    (!dfound && m->ndur >= METRICS_MAX_SERIES))
		goto out; /* a caller is passing unbounded labels; drop rather than grow */
	if (!dfound) {
		if (names_dup(method, route, &mo, &ro) != 0)
			goto out;
		if (array_insert((void **)&m->dur, &m->ndur, &m->adur, sizeof *m->dur, di) != 0) {
			free(mo);
			free(ro);
			goto out;
		}
		m->dur[di].method = mo;
		m->dur[di].route = ro;
	}
	if (!rfound) {
		char *rm = NULL, *rr = NULL;

		if (names_dup(method, route, &rm, &rr) != 0 ||
		    array_insert((void **)&m->req, &m->nreq, &m->areq, sizeof *m->req, ri) != 0) {
			free(rm);
			free(rr);
			/* Keep the two tables consistent: undo a duration series just added. */
			if (!dfound) {
				free(m->dur[di].method);
				free(m->dur[di].route);
				array_remove(m->dur, &m->ndur, sizeof *m->dur, di);
			}
			goto out;
		}
		m->req[ri].method = rm;
		m->req[ri].route = rr;
		m->req[ri].status = status;
	}
	r = &m->req[ri];
	d = &m->dur[di];
	r->count++;
	d->count++;
	d->sum += seconds;
	for (b = 0; b < METRICS_NBUCKETS; b++) {
		if (seconds <= bucket_le[b]) {
			d->bucket[b]++;
			break;
		}
	}
out:
	pthread_mutex_unlock(&m->lock);
}

void metrics_add(struct metrics *m, enum metrics_counter c, uint64_t n)
{
	if (m == NULL || (int)c < 0 || c >= METRICS_COUNTER_COUNT)
		return;
	atomic_fetch_add_explicit(&m->counters[c], n, memory_order_relaxed);
}

uint64_t metrics_get(struct metrics *m, enum metrics_counter c)
{
	if (m == NULL || (int)c < 0 || c >= METRICS_COUNTER_COUNT)
		return 0;
	return atomic_load_explicit(&m->counters[c], memory_order_relaxed);
}

/* A growing output buffer; after an allocation failure every append is a no-op. */
struct mbuf {
	char *p;
	size_t len, cap;
	int oom;
};

static int mbuf_reserve(struct mbuf *b, size_t extra)
{
	size_t ncap;
	char *np;

	if (b->oom)
		return ERR_NOMEM;
	if (b->len + extra + 1 <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 4096;
	while (ncap < b->len + extra + 1)
		ncap *= 2;
	np = realloc(b->p, ncap);
	if (np == NULL) {
		b->oom = 1;
		return ERR_NOMEM;
	}
	b->p = np;
	b->cap = ncap;
	return 0;
}

static void mbuf_printf(struct mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void mbuf_printf(struct mbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (mbuf_reserve(b, 256) != 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= b->cap - b->len) {
		if (mbuf_reserve(b, (size_t)n) != 0)
			return;
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/* A label value with \\, \" and \n escaped, as the text format requires. */
static void mbuf_label(struct mbuf *b, const char *s)
{
	size_t n = strlen(s);

	if (mbuf_reserve(b, 2 * n) != 0)
		return;
	for (; *s; s++) {
		if (*s == '\\' || *s == '"') {
			b->p[b->len++] = '\\';
			b->p[b->len++] = *s;
		} else if (*s == '\n') {
			b->p[b->len++] = '\\';
			b->p[b->len++] = 'n';
		} else {
			b->p[b->len++] = *s;
		}
	}
	b->p[b->len] = '\0';
}

/* Shortest of %.15g / %.17g that reads back as the same double. */
static void format_double(double v, char *out, size_t size)
{
	if (isnan(v)) {
		snprintf(out, size, "NaN");
	} else if (isinf(v)) {
		snprintf(out, size, v > 0 ? "+Inf" : "-Inf");
	} else {
		snprintf(out, size, "%.15g", v);
		if (strtod(out, NULL) != v)
			snprintf(out, size, "%.17g", v);
	}
}

static void family(struct mbuf *b, const char *name, const char *type, const char *help)
{
	mbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void method_route(struct mbuf *b, const char *method, const char *route)
{
	mbuf_printf(b, "method=\"");
	mbuf_label(b, method);
	mbuf_printf(b, "\",route=\"");
	mbuf_label(b, route);
	mbuf_printf(b, "\"");
}

static void render_requests(struct mbuf *b, const struct metrics *m)
{
	char num[32];
	size_t i, k;

	family(b, "winnow_http_requests_total", "counter",
	       "HTTP requests answered, by method, route template and status.");
	for (i = 0; i < m->nreq; i++) {
		const struct req_series *r = &m->req[i];

		mbuf_printf(b, "winnow_http_requests_total{");
		method_route(b, r->method, r->route);
		mbuf_printf(b, ",status=\"%d\"} %llu\n", r->status, (unsigned long long)r->count);
	}
	family(b, "winnow_http_request_duration_seconds", "histogram",
	       "Time from request start to response completion, by method and route template.");
	for (i = 0; i < m->ndur; i++) {
		const struct dur_series *d = &m->dur[i];
		uint64_t cum = 0;

		for (k = 0; k < METRICS_NBUCKETS; k++) {
			cum += d->bucket[k];
			mbuf_printf(b, "winnow_http_request_duration_seconds_bucket{");
			method_route(b, d->method, d->route);
			mbuf_printf(b, ",le=\"%s\"} %llu\n", bucket_text[k],
			            (unsigned long long)cum);
		}
		mbuf_printf(b, "winnow_http_request_duration_seconds_bucket{");
		method_route(b, d->method, d->route);
		mbuf_printf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)d->count);
		format_double(d->sum, num, sizeof num);
		mbuf_printf(b, "winnow_http_request_duration_seconds_sum{");
		method_route(b, d->method, d->route);
		mbuf_printf(b, "} %s\n", num);
		mbuf_printf(b, "winnow_http_request_duration_seconds_count{");
		method_route(b, d->method, d->route);
		mbuf_printf(b, "} %llu\n", (unsigned long long)d->count);
	}
}

/* Jobs by kind: how many are in each state (finished ones as --job-history keeps them),
 * and the units (rows, pairs) each kind processed since start. */
static void render_jobs(struct mbuf *b, const struct metrics_gauges *g)
{
	if (g->njobs == 0)
		return;
	family(b, "winnow_jobs", "gauge",
	       "Jobs in the store by kind and state (finished ones as --job-history keeps them).");
	for (size_t k = 0; k < g->njobs; k++)
		for (int st = 0; st < JOBS_NSTATES; st++)
			mbuf_printf(b, "winnow_jobs{kind=\"%s\",state=\"%s\"} %llu\n", g->jobs[k].kind,
			            jobs_state_name((enum jobs_state)st),
			            (unsigned long long)g->jobs[k].count[st]);
	family(b, "winnow_job_units_processed_total", "counter",
	       "Rows (or pairs) the jobs of each kind processed since the daemon started.");
	for (size_t k = 0; k < g->njobs; k++)
		mbuf_printf(b, "winnow_job_units_processed_total{kind=\"%s\"} %llu\n", g->jobs[k].kind,
		            (unsigned long long)g->jobs[k].processed_total);
}

static void render_gauges(struct mbuf *b, const struct metrics_gauges *g)
{
	char num[32];

	family(b, "winnow_lmdb_used_bytes", "gauge", "Bytes of the LMDB map in use.");
	mbuf_printf(b, "winnow_lmdb_used_bytes %llu\n", (unsigned long long)g->lmdb_used_bytes);
	family(b, "winnow_storage_full", "gauge",
	       "1 while the last write failed because the disk is full (writes answer 507).");
	mbuf_printf(b, "winnow_storage_full %d\n", g->storage_full);
	family(b, "winnow_lmdb_map_size_bytes", "gauge", "Current LMDB map size in bytes.");
	mbuf_printf(b, "winnow_lmdb_map_size_bytes %llu\n",
	            (unsigned long long)g->lmdb_map_size_bytes);
	family(b, "winnow_datasets", "gauge", "Number of datasets.");
	mbuf_printf(b, "winnow_datasets %u\n", g->datasets);
	family(b, "winnow_ready", "gauge", "1 when the daemon is ready to serve, else 0.");
	mbuf_printf(b, "winnow_ready %d\n", g->ready ? 1 : 0);
	family(b, "winnow_uptime_seconds", "gauge", "Seconds since the daemon started.");
	format_double(g->uptime_s, num, sizeof num);
	mbuf_printf(b, "winnow_uptime_seconds %s\n", num);
	family(b, "winnow_search_split_scans_total", "counter",
	       "Searches that scanned every vector on several threads (--search-threads).");
	mbuf_printf(b, "winnow_search_split_scans_total %llu\n",
	            (unsigned long long)g->search_split_scans);
	if (g->faiss_build != NULL) {
		family(b, "winnow_faiss_build_info", "gauge",
		       "Always 1; the label says which FAISS build the loader mapped (avx2, generic).");
		mbuf_printf(b, "winnow_faiss_build_info{build=\"");
		mbuf_label(b, g->faiss_build);
		mbuf_printf(b, "\"} 1\n");
	}
	render_jobs(b, g);
}

char *metrics_render(struct metrics *m, const struct metrics_gauges *g, size_t *len)
{
	struct mbuf b = {0};

	if (m == NULL)
		return NULL;
	pthread_mutex_lock(&m->lock);
	render_requests(&b, m);
	pthread_mutex_unlock(&m->lock);
	family(&b, "winnow_records_ingested_total", "counter", "Records accepted by ingest.");
	mbuf_printf(&b, "winnow_records_ingested_total %llu\n",
	            (unsigned long long)metrics_get(m, METRICS_RECORDS_INGESTED));
	family(&b, "winnow_records_rejected_total", "counter", "Records rejected by ingest.");
	mbuf_printf(&b, "winnow_records_rejected_total %llu\n",
	            (unsigned long long)metrics_get(m, METRICS_RECORDS_REJECTED));
	family(&b, "winnow_searches_quick_total", "counter",
	       "Searches answered on the HTTP thread, without the work pool's hand-off.");
	mbuf_printf(&b, "winnow_searches_quick_total %llu\n",
	            (unsigned long long)metrics_get(m, METRICS_SEARCHES_QUICK));
	if (g != NULL)
		render_gauges(&b, g);
	if (b.oom || mbuf_reserve(&b, 0) != 0) {
		free(b.p);
		return NULL;
	}
	if (len != NULL)
		*len = b.len;
	return b.p;
}
