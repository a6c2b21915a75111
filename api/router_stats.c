/* SPDX-License-Identifier: MIT */
/* router_stats: a filter's statistics merged over the shards (api/router_stats.h). */
#include "api/router_stats.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/router_util.h"
#include "cluster/fanout.h"
#include "cluster/gselect.h"
#include "cluster/shardmap.h"
#include "daemon/daemon.h"
#include "lib/err.h"

/* The quantiles one daemon reports (curate/instance.c). */
static const double quantiles[] = {0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99};
#define NQ (sizeof quantiles / sizeof quantiles[0])

static json_int_t sum_int(json_t **docs, size_t n, const char *key)
{
	json_int_t s = 0;

	for (size_t i = 0; i < n; i++)
		s += json_integer_value(json_object_get(docs[i], key));
	return s;
}

/* dst[key] = the shards' objects of counts (by name) summed. */
static void sum_obj(json_t *dst, json_t **docs, size_t n, const char *key)
{
	json_t *o = json_object(), *v;
	const char *k;

	for (size_t i = 0; i < n; i++) {
		json_object_foreach(json_object_get(docs[i], key), k, v) {
			json_int_t cur = json_integer_value(json_object_get(o, k));

			json_object_set_new(o, k, json_integer(cur + json_integer_value(v)));
		}
	}
	json_object_set_new(dst, key, o);
}

/* Shard 0's answer with the counts summed, min, max and mean over every shard. */
static json_t *merge_counts(json_t **docs, size_t n, json_int_t *count)
{
	static const char *const ints[] = {"records", "count", "unscorable", "pending"};
	json_t *m = json_deep_copy(docs[0]);
	double lo = INFINITY, hi = -INFINITY, sum = 0;

	if (m == NULL)
		return NULL;
	for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
		json_object_set_new(m, ints[k], json_integer(sum_int(docs, n, ints[k])));
	if (json_object_get(m, "at_or_above") != NULL)
		json_object_set_new(m, "at_or_above", json_integer(sum_int(docs, n, "at_or_above")));
	sum_obj(m, docs, n, "unscorable_by_reason");
	sum_obj(m, docs, n, "reasons");
	*count = sum_int(docs, n, "count");
	for (size_t i = 0; i < n; i++) {
		json_int_t c = json_integer_value(json_object_get(docs[i], "count"));

		if (c <= 0)
			continue;
		lo = fmin(lo, json_number_value(json_object_get(docs[i], "min")));
		hi = fmax(hi, json_number_value(json_object_get(docs[i], "max")));
		sum += json_number_value(json_object_get(docs[i], "mean")) * (double)c;
	}
	if (*count > 0) {
		json_object_set_new(m, "min", json_real(lo));
		json_object_set_new(m, "max", json_real(hi));
		json_object_set_new(m, "mean", json_real(sum / (double)*count));
	}
	return m;
}

/* Ask every shard for path; docs[i] new. 0, or -1 with res answered (a shard's refusal as it
 * is, a shard without an answer or with one that is not JSON a 502). */
static int ask_all(struct http_req *r, struct http_res *res, const char *path, json_t **docs)
{
	struct fanout *f = r->d->router;
	size_t n = fanout_map(f)->n;
	struct fanout_call *c = calloc(n, sizeof *c), *bad;
	struct err e = {0};
	int rc = -1;

	if (c == NULL)
		return http_problem(res, r, ERR_NOMEM, NULL, NULL), -1;
	if (fanout_all(f, c, "GET", path, NULL, 0, NULL, r->request_id, &e) != 0) {
		rutil_gateway(res, r, &e);
	} else if ((bad = rutil_first_bad(c, n)) != NULL) {
		rutil_copy(res, bad);
	} else {
		rc = 0;
		for (size_t i = 0; i < n; i++)
			if ((docs[i] = fanout_json(&c[i])) == NULL)
				rc = -1;
		if (rc != 0) {
			err_set(&e, ERR_GATEWAY, "shard_bad_answer", "a shard's statistics are not JSON");
			rutil_gateway(res, r, &e);
		}
	}
	fanout_calls_free(c, n);
	free(c);
	return rc;
}

static void free_docs(json_t **docs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(docs[i]), docs[i] = NULL;
}

/* m's histogram: every shard's bins over the global [min, max], summed. */
static int histogram(struct http_req *r, struct http_res *res, json_t *m, json_t **docs,
                     size_t n)
{
	const char *qb = http_query(r, "bins"), *ql = http_query(r, "lo"), *qh = http_query(r, "hi");
	char path[600];
	json_t *counts = json_array(), *edges = NULL;
	/* the client's range (the shards took it in the first round), else the global one */
	double lo = ql != NULL ? strtod(ql, NULL) : json_number_value(json_object_get(m, "min"));
	double hi = qh != NULL ? strtod(qh, NULL) : json_number_value(json_object_get(m, "max"));

	snprintf(path, sizeof path, "/v1/datasets/%s/filters/%s/stats?bins=%s&lo=%.17g&hi=%.17g",
	         r->params[0], r->params[1], qb != NULL ? qb : "10", lo, hi);
	if (counts == NULL || ask_all(r, res, path, docs) != 0) {
		json_decref(counts);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *h = json_object_get(docs[i], "histogram"), *v;
		size_t k;

		if (json_array_size(json_object_get(h, "edges")) == 0)
			continue; /* a shard without a finite score */
		if (edges == NULL)
			edges = json_incref(json_object_get(h, "edges"));
		json_array_foreach(json_object_get(h, "counts"), k, v) {
			json_int_t cur = json_integer_value(json_array_get(counts, k));

			if (k < json_array_size(counts))
				json_array_set_new(counts, k, json_integer(cur + json_integer_value(v)));
			else
				json_array_append_new(counts, json_integer(json_integer_value(v)));
		}
	}
	free_docs(docs, n);
	json_object_set_new(m, "histogram", json_pack("{s:o, s:o}", "edges",
	                                              edges != NULL ? edges : json_array(), "counts",
	                                              counts));
	return 0;
}

/* Order statistics found so far: index range [less, less + equal) holds v. */
struct rank_cache {
	float v[2 * NQ];
	uint64_t less[2 * NQ], equal[2 * NQ];
	size_t n;
};

/* The pool's score at ascending index q; -1 with res answered. */
static int rank_value(struct http_req *r, struct http_res *res, struct rank_cache *rc,
                      uint64_t q, float *v)
{
	struct err e = {0};
	json_t *problem = NULL;
	int status = 0;

	for (size_t i = 0; i < rc->n; i++) {
		if (q >= rc->less[i] && q < rc->less[i] + rc->equal[i]) {
			*v = rc->v[i];
			return 0;
		}
	}
	if (gselect_value_at(r->d->router, r->params[0], r->params[1], q, r->request_id, v,
	                     &rc->less[rc->n], &rc->equal[rc->n], &problem, &status, &e) != 0) {
		rutil_problem(res, r, problem, status, e.code != 0 ? e.code : ERR_GATEWAY, &e);
		json_decref(problem);
		return -1;
	}
	rc->v[rc->n++] = *v;
	return 0;
}

/* m's quantiles, exact: numpy's linear interpolation between two order statistics. */
static int quantiles_of(struct http_req *r, struct http_res *res, json_t *m, json_int_t count)
{
	struct rank_cache rc = {.n = 0};
	json_t *quant = json_object();
	uint64_t nv = (uint64_t)count;

	for (size_t k = 0; k < NQ; k++) {
		double pos = quantiles[k] * (double)(nv - 1);
		uint64_t i0 = (uint64_t)floor(pos), i1 = i0 + 1 < nv ? i0 + 1 : i0;
		float v0, v1;
		char key[16];

		if (rank_value(r, res, &rc, i0, &v0) != 0 || rank_value(r, res, &rc, i1, &v1) != 0) {
			json_decref(quant);
			return -1;
		}
		snprintf(key, sizeof key, "%g", quantiles[k]);
		json_object_set_new(quant, key,
		                    json_real(v0 + (pos - (double)i0) * ((double)v1 - v0)));
	}
	json_object_set_new(m, "quantiles", quant);
	return 0;
}

int rstats_get(struct http_req *r, struct http_res *res)
{
	size_t n = fanout_map(r->d->router)->n;
	json_t **docs = calloc(n, sizeof *docs), *m = NULL;
	char *path = rutil_path(r);
	json_int_t count = 0;

	if (docs == NULL || path == NULL) {
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
		goto out;
	}
	if (ask_all(r, res, path, docs) != 0)
		goto out;
	if ((m = merge_counts(docs, n, &count)) == NULL) {
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
		goto out;
	}
	free_docs(docs, n);
	if (count > 0 && (histogram(r, res, m, docs, n) != 0 || quantiles_of(r, res, m, count) != 0))
		goto out;
	http_json(res, 200, json_incref(m));
out:
	if (docs != NULL)
		free_docs(docs, n);
	free(docs);
	free(path);
	json_decref(m);
	return 0;
}
