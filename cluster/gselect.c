/* SPDX-License-Identifier: MIT */
/* gselect: global thresholds from the shards' probes, steps rewritten as cuts. */
#include "cluster/gselect.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo/select.h"
#include "cluster/fanout.h"
#include "cluster/shardmap.h"
#include "lib/err.h"

#define GSEL_BINS 4096
#define GSEL_VALUES 4096

struct gctx {
	struct fanout *f;
	char path[512];
	const json_t *prior; /* the rewritten steps so far */
	const char *filter;
	const char *rid;
	unsigned rounds;
	json_t **problem;
	int *status;
};

/* One probe to every shard: answers[i] (new) for body. */
static int probe(struct gctx *g, json_t *body, json_t **ans, struct err *e)
{
	size_t n = fanout_map(g->f)->n;
	struct fanout_call *c = calloc(n, sizeof *c);
	char *s = json_dumps(body, JSON_COMPACT);
	int rc;

	if (c == NULL || s == NULL) {
		free(c);
		free(s);
		return err_set(e, ERR_NOMEM, NULL, "out of memory");
	}
	g->rounds++;
	rc = fanout_all(g->f, c, "POST", g->path, s, strlen(s), "application/json", g->rid, e);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		ans[i] = fanout_json(&c[i]);
		if (c[i].status != 200 || ans[i] == NULL) {
			*g->problem = ans[i] != NULL ? json_incref(ans[i]) : NULL;
			*g->status = c[i].status;
			rc = err_set(e, ERR_GATEWAY, "shard_refused", "shard %zu answered %d to the probe",
			             i, c[i].status);
		}
	}
	if (rc != 0)
		for (size_t i = 0; i < n; i++)
			json_decref(ans[i]), ans[i] = NULL;
	fanout_calls_free(c, n);
	free(c);
	free(s);
	return rc;
}

static json_t *probe_body(struct gctx *g)
{
	return json_pack("{s:O, s:s}", "steps", g->prior, "filter", g->filter);
}

static void free_ans(json_t **ans, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(ans[i]), ans[i] = NULL;
}

static uint64_t sum_of(json_t **ans, size_t n, const char *key)
{
	uint64_t s = 0;

	for (size_t i = 0; i < n; i++)
		s += (uint64_t)json_integer_value(json_object_get(ans[i], key));
	return s;
}

/* Merge the shards' value lists: the value at ascending index q - below, with the counts of
 * values below it and equal to it in the range. */
static int pick_value(json_t **ans, size_t n, uint64_t q, uint64_t below, float *v,
                      uint64_t *less, uint64_t *equal)
{
	size_t *pos = calloc(n, sizeof *pos);
	uint64_t seen = below;

	if (pos == NULL)
		return ERR_NOMEM;
	for (;;) {
		double best = INFINITY;
		int any = 0;
		uint64_t cnt = 0;

		for (size_t i = 0; i < n; i++) {
			json_t *p = json_array_get(json_object_get(ans[i], "values"), pos[i]);

			if (p != NULL && (!any || json_number_value(json_array_get(p, 0)) < best))
				best = json_number_value(json_array_get(p, 0)), any = 1;
		}
		if (!any) {
			free(pos);
			return ERR_INTERNAL; /* the counts did not add up */
		}
		for (size_t i = 0; i < n; i++) {
			json_t *p = json_array_get(json_object_get(ans[i], "values"), pos[i]);

			if (p != NULL && json_number_value(json_array_get(p, 0)) == best) {
				cnt += (uint64_t)json_integer_value(json_array_get(p, 1));
				pos[i]++;
			}
		}
		if (q < seen + cnt) {
			*v = (float)best;
			*less = seen;
			*equal = cnt;
			free(pos);
			return 0;
		}
		seen += cnt;
	}
}

/* The finite score at ascending index q (0-based) among the survivors of g->prior, with the
 * number of scores below it and equal to it. */
static int value_at(struct gctx *g, uint64_t q, float *v, uint64_t *less, uint64_t *equal,
                    struct err *e)
{
	size_t n = fanout_map(g->f)->n;
	json_t **ans = calloc(n, sizeof *ans);
	uint32_t klo = select_float_key(-FLT_MAX), khi = select_float_key(FLT_MAX);
	int rc = 0;

	if (ans == NULL)
		return err_set(e, ERR_NOMEM, NULL, "out of memory");
	for (;;) {
		json_t *body = probe_body(g);
		uint64_t below, width, cum, all_listed = 1;

		json_object_set_new(body, "lo", json_real(select_key_float(klo)));
		json_object_set_new(body, "hi", json_real(select_key_float(khi)));
		json_object_set_new(body, "bins", json_integer(klo == khi ? 1 : GSEL_BINS));
		json_object_set_new(body, "values_max", json_integer(GSEL_VALUES));
		rc = probe(g, body, ans, e);
		json_decref(body);
		if (rc != 0)
			break;
		below = sum_of(ans, n, "below");
		for (size_t i = 0; i < n; i++)
			if (!json_is_array(json_object_get(ans[i], "values")))
				all_listed = 0;
		if (all_listed || klo == khi) {
			if (klo == khi && !all_listed) {
				*v = select_key_float(klo);
				*less = below;
				*equal = sum_of(ans, n, "in_range");
			} else if (pick_value(ans, n, q, below, v, less, equal) != 0) {
				rc = err_set(e, ERR_GATEWAY, "shards_changed",
				             "the shards' scores changed during the selection; try again");
			}
			break;
		}
		/* the bin holding index q */
		width = ((uint64_t)khi - klo) / GSEL_BINS + 1;
		cum = below;
		for (size_t b = 0; b < GSEL_BINS; b++) {
			uint64_t c = 0;

			for (size_t i = 0; i < n; i++)
				c += (uint64_t)json_integer_value(
				        json_array_get(json_object_get(ans[i], "bins"), b));
			if (q < cum + c) {
				uint64_t lo = klo + b * width, hi = lo + width - 1;

				klo = (uint32_t)lo;
				khi = hi < khi ? (uint32_t)hi : khi;
				break;
			}
			cum += c;
			if (b == GSEL_BINS - 1) {
				rc = err_set(e, ERR_GATEWAY, "shards_changed",
				             "the shards' scores changed during the selection; try again");
			}
		}
		free_ans(ans, n);
		if (rc != 0)
			break;
	}
	free_ans(ans, n);
	free(ans);
	return rc;
}

/* The need-th smallest id (1-based) among the survivors scored exactly t. */
static int tie_id(struct gctx *g, float t, uint64_t need, char **out, struct err *e)
{
	size_t n = fanout_map(g->f)->n, total = 0, k = 0;
	json_t **ans = calloc(n, sizeof *ans), *body = probe_body(g);
	const char **all = NULL;
	int rc;

	if (ans == NULL || body == NULL) {
		free(ans);
		json_decref(body);
		return err_set(e, ERR_NOMEM, NULL, "out of memory");
	}
	json_object_set_new(body, "tie_score", json_real(t));
	json_object_set_new(body, "tie_ids", json_integer((json_int_t)need));
	json_object_set_new(body, "lo", json_real(t));
	json_object_set_new(body, "hi", json_real(t));
	rc = probe(g, body, ans, e);
	json_decref(body);
	for (size_t i = 0; rc == 0 && i < n; i++)
		total += json_array_size(json_object_get(ans[i], "tie_ids"));
	if (rc == 0 && (all = calloc(total ? total : 1, sizeof *all)) == NULL)
		rc = err_set(e, ERR_NOMEM, NULL, "out of memory");
	for (size_t i = 0; rc == 0 && i < n; i++)
		for (size_t j = 0; j < json_array_size(json_object_get(ans[i], "tie_ids")); j++)
			all[k++] = json_string_value(json_array_get(json_object_get(ans[i], "tie_ids"), j));
	if (rc == 0 && (need == 0 || need > k))
		rc = err_set(e, ERR_GATEWAY, "shards_changed",
		             "the shards' scores changed during the selection; try again");
	if (rc == 0) {
		/* partial selection sort up to need: k is at most n * need */
		for (size_t i = 0; i < need; i++) {
			size_t m = i;

			for (size_t j = i + 1; j < k; j++)
				if (strcmp(all[j], all[m]) < 0)
					m = j;
			const char *tmp = all[i];
			all[i] = all[m];
			all[m] = tmp;
		}
		if ((*out = strdup(all[need - 1])) == NULL)
			rc = err_set(e, ERR_NOMEM, NULL, "out of memory");
	}
	free(all);
	free_ans(ans, n);
	free(ans);
	return rc;
}

/* The survivors' finite count N for g (one probe). */
static int count_n(struct gctx *g, uint64_t *nfin, struct err *e)
{
	size_t n = fanout_map(g->f)->n;
	json_t **ans = calloc(n, sizeof *ans), *body = probe_body(g);
	int rc;

	if (ans == NULL || body == NULL) {
		free(ans);
		json_decref(body);
		return err_set(e, ERR_NOMEM, NULL, "out of memory");
	}
	rc = probe(g, body, ans, e);
	json_decref(body);
	if (rc == 0)
		*nfin = sum_of(ans, n, "n");
	free_ans(ans, n);
	free(ans);
	return rc;
}

static json_t *cut(const char *filter, float t, int below, const char *id_max,
                   const json_t *origin)
{
	json_t *c = json_pack("{s:f, s:s, s:O}", "score", (double)t, "keep",
	                      below ? "below" : "above", "origin", origin);

	if (id_max != NULL)
		json_object_set_new(c, "id_max", json_string(id_max));
	return json_pack("{s:s, s:o}", "filter", filter, "cut", c);
}

/* A k rule (top: the k highest) as a cut; k <= N, k > 0. */
static json_t *rewrite_k(struct gctx *g, const json_t *step, uint64_t nfin, uint64_t k,
                         int top, struct err *e)
{
	float t;
	uint64_t less, equal, better, need;
	char *idm = NULL;
	json_t *out;

	if (value_at(g, top ? nfin - k : k - 1, &t, &less, &equal, e) != 0)
		return NULL;
	better = top ? nfin - less - equal : less;
	need = k - better;
	if (need < equal && tie_id(g, t, need, &idm, e) != 0)
		return NULL;
	out = cut(g->filter, t, !top, idm, step);
	free(idm);
	return out;
}

struct pair {
	float score;
	const char *id;
};

static int top_pair_cmp(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return strcmp(x->id, y->id);
}

static int bottom_pair_cmp(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;

	if (x->score != y->score)
		return x->score < y->score ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* The clusters' summed sizes: *size (new, *maxl entries, indexed by label); *none set when a
 * shard says the filter has no clusters. */
static int cluster_sizes(struct gctx *g, uint64_t **size, uint32_t *maxl, int *none, struct err *e)
{
	size_t n = fanout_map(g->f)->n, j;
	json_t **ans = calloc(n, sizeof *ans), *body = probe_body(g), *c;
	int rc;

	*size = NULL;
	*maxl = 0;
	if (ans == NULL || body == NULL) {
		free(ans);
		json_decref(body);
		return err_set(e, ERR_NOMEM, NULL, "out of memory");
	}
	json_object_set_new(body, "cluster_sizes", json_true());
	json_object_set_new(body, "bins", json_integer(0));
	rc = probe(g, body, ans, e);
	json_decref(body);
	*none = 0;
	for (size_t i = 0; rc == 0 && i < n; i++)
		*none |= !json_is_array(json_object_get(ans[i], "clusters"));
	for (size_t i = 0; rc == 0 && i < n; i++)
		json_array_foreach(json_object_get(ans[i], "clusters"), j, c) {
			json_int_t l = json_integer_value(json_array_get(c, 0));

			if (l >= 0 && l < (1 << 24) && (uint32_t)l + 1 > *maxl)
				*maxl = (uint32_t)l + 1;
		}
	if (rc == 0 && (*size = calloc(*maxl ? *maxl : 1, sizeof **size)) == NULL)
		rc = err_set(e, ERR_NOMEM, NULL, "out of memory");
	for (size_t i = 0; rc == 0 && i < n; i++)
		json_array_foreach(json_object_get(ans[i], "clusters"), j, c) {
			json_int_t l = json_integer_value(json_array_get(c, 0));

			if (l >= 0 && l < (json_int_t)*maxl)
				(*size)[l] += (uint64_t)json_integer_value(json_array_get(c, 1));
		}
	free_ans(ans, n);
	free(ans);
	return rc;
}

/* Cluster l's cut from the shards' lists lists[l * n + i]: [l, score, id_max] of its
 * want-th best by (score, id), or NULL when the lists hold fewer than want. */
static json_t *cluster_cut(json_t **lists, size_t n, uint32_t l, uint64_t want, int top)
{
	size_t m = 0, k = 0, q;
	struct pair *p;
	json_t *x, *out;

	for (size_t i = 0; i < n; i++)
		m += json_array_size(lists[(size_t)l * n + i]);
	if (m < want || (p = malloc(m * sizeof *p)) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		json_array_foreach(lists[(size_t)l * n + i], q, x)
			p[k++] = (struct pair){(float)json_number_value(json_array_get(x, 0)),
			                       json_string_value(json_array_get(x, 1))};
	for (k = 0; k < m && p[k].id != NULL; k++)
		;
	out = NULL;
	if (k == m) {
		qsort(p, m, sizeof *p, top ? top_pair_cmp : bottom_pair_cmp);
		out = json_pack("[I, f, s]", (json_int_t)l, (double)p[want - 1].score,
		                p[want - 1].id);
	}
	free(p);
	return out;
}

/* Each cluster's cut from the shards' heads (indexed by label first: one pass over them). */
static json_t *cluster_cuts(json_t **ans, size_t n, const uint64_t *want, uint32_t maxl, int top)
{
	json_t *cuts = json_array(), **lists = calloc((size_t)(maxl ? maxl : 1) * n, sizeof *lists);
	json_t *h;
	size_t j;

	if (cuts == NULL || lists == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++)
		json_array_foreach(json_object_get(ans[i], "heads"), j, h) {
			json_int_t l = json_integer_value(json_array_get(h, 0));

			if (l >= 0 && l < (json_int_t)maxl)
				lists[(size_t)l * n + i] = json_array_get(h, 1);
		}
	for (uint32_t l = 0; l < maxl; l++) {
		json_t *c;

		if (want[l] == 0)
			continue;
		if ((c = cluster_cut(lists, n, l, want[l], top)) == NULL)
			goto fail;
		json_array_append_new(cuts, c);
	}
	free(lists);
	return cuts;
fail:
	free(lists);
	json_decref(cuts);
	return NULL;
}

/* A per_cluster fraction f as a per-cluster cut: the summed cluster sizes, T = round(f N)
 * apportioned as one daemon does (select_apportion, minimum m), then each cluster's best
 * want[c] over the shards (each shard lists its own best want[c]). */
static json_t *rewrite_per_cluster(struct gctx *g, const json_t *step, double f, int top,
                                   uint64_t m, struct err *e)
{
	size_t n = fanout_map(g->f)->n;
	uint64_t *size = NULL, *want = NULL, nc = 0, applied = 0, T;
	uint32_t maxl = 0;
	json_t **ans = NULL, *body = NULL, *heads, *cuts = NULL, *out = NULL;
	int none = 0;

	if (cluster_sizes(g, &size, &maxl, &none, e) != 0)
		return NULL;
	if (none) {
		free(size);
		return json_incref((json_t *)step); /* the shards refuse it as one daemon does */
	}
	for (uint32_t l = 0; l < maxl; l++)
		nc += size[l];
	T = (uint64_t)floor(f * (double)nc + 0.5);
	T = T > nc ? nc : T;
	want = calloc(maxl ? maxl : 1, sizeof *want);
	ans = calloc(n, sizeof *ans);
	heads = json_array();
	if (want == NULL || ans == NULL || heads == NULL ||
	    select_apportion(size, maxl, T, m, want, &applied) != 0) {
		err_set(e, ERR_NOMEM, NULL, "out of memory");
		goto out;
	}
	for (uint32_t l = 0; l < maxl; l++)
		if (want[l] > 0)
			json_array_append_new(
			    heads, json_pack("[I, I]", (json_int_t)l, (json_int_t)want[l]));
	body = probe_body(g);
	json_object_set(body, "cluster_heads", heads);
	json_object_set_new(body, "order", json_string(top ? "top" : "bottom"));
	json_object_set_new(body, "bins", json_integer(0));
	if (probe(g, body, ans, e) != 0)
		goto out;
	if ((cuts = cluster_cuts(ans, n, want, maxl, top)) == NULL) {
		err_set(e, ERR_GATEWAY, "shards_changed",
		        "the shards' scores changed during the selection; try again");
		goto out;
	}
	out = json_pack("{s:s, s:{s:s, s:o, s:O, s:{s:I, s:I, s:I}}}", "filter", g->filter, "cut",
	                "keep", top ? "above" : "below", "clusters", cuts, "origin", step,
	                "apportion", "requested", (json_int_t)T, "min_per_cluster", (json_int_t)m,
	                "min_per_cluster_applied", (json_int_t)applied);
out:
	json_decref(heads);
	json_decref(body);
	free_ans(ans, n);
	free(ans);
	free(size);
	free(want);
	return out;
}

/* Step (borrowed) as the shards should run it (new), or NULL with e set. */
static json_t *rewrite_step(struct gctx *g, const json_t *step, struct err *e)
{
	static const char *const frac[] = {"top_fraction", "bottom_fraction"};
	static const char *const ks[] = {"top_k", "bottom_k"};
	uint64_t nfin = 0;

	if (json_object_get(step, "recommend")) {
		err_set(e, ERR_NOT_SUPPORTED, "not_supported_by_router",
		        "recommend steps depend on each shard's own models and are not served by a "
		        "router");
		return NULL;
	}
	g->filter = json_string_value(json_object_get(step, "filter"));
	if (json_is_true(json_object_get(step, "per_cluster")) && g->filter != NULL) {
		const json_t *fv = json_object_get(step, "top_fraction");
		const json_t *bv = json_object_get(step, "bottom_fraction");
		const json_t *mv = json_object_get(step, "min_per_cluster");

		if ((fv == NULL) == (bv == NULL) || !json_is_number(fv ? fv : bv) ||
		    !(json_number_value(fv ? fv : bv) > 0 &&
		      json_number_value(fv ? fv : bv) <= 1) ||
		    (mv != NULL && (!json_is_integer(mv) || json_integer_value(mv) < 0)))
			return json_incref((json_t *)step); /* the shards say what is wrong */
		return rewrite_per_cluster(g, step, json_number_value(fv ? fv : bv), fv != NULL,
		                           mv != NULL ? (uint64_t)json_integer_value(mv) : 1, e);
	}
	for (int top = 1; top >= 0; top--) {
		const json_t *fv = json_object_get(step, frac[!top]), *kv = json_object_get(step, ks[!top]);

		if (g->filter == NULL || (fv == NULL && kv == NULL))
			continue;
		if ((fv != NULL && !json_is_number(fv)) ||
		    (kv != NULL && !json_is_integer(kv) && !json_is_object(kv)))
			return json_incref((json_t *)step); /* the shards say what is wrong */
		if (count_n(g, &nfin, e) != 0)
			return NULL;
		if (nfin == 0)
			return json_incref((json_t *)step); /* keeps nothing anywhere */
		if (fv != NULL) {
			double f = json_number_value(fv), kd = floor((double)nfin * f);
			uint64_t k = kd >= (double)nfin ? nfin - 1 : (uint64_t)kd;
			float t;
			uint64_t less, equal;

			if (!(f > 0 && f <= 1))
				return json_incref((json_t *)step);
			if (value_at(g, top ? nfin - 1 - k : k, &t, &less, &equal, e) != 0)
				return NULL;
			return cut(g->filter, t, !top, NULL, step);
		} else {
			uint64_t k;

			if (json_is_object(kv)) {
				size_t kc = 0;

				if (select_color_k((size_t)nfin,
				                   json_number_value(json_object_get(kv, "tau")), &kc) != 0)
					return json_incref((json_t *)step);
				k = kc;
			} else {
				k = (uint64_t)json_integer_value(kv);
			}
			if (k == 0)
				return json_pack("{s:s, s:I}", "filter", g->filter, ks[!top], (json_int_t)0);
			if (k > nfin)
				k = nfin;
			return rewrite_k(g, step, nfin, k, top, e);
		}
	}
	return json_incref((json_t *)step);
}

int gselect_rewrite(struct fanout *f, const char *dataset, const json_t *steps,
                    const char *request_id, json_t **out, unsigned *rounds,
                    json_t **shard_problem, int *status, struct err *e)
{
	struct gctx g = {.f = f, .rid = request_id, .problem = shard_problem, .status = status};
	json_t *done = json_array();
	size_t i;
	json_t *st;

	*shard_problem = NULL;
	*status = 0;
	snprintf(g.path, sizeof g.path, "/v1/datasets/%s/subsets:probe", dataset);
	json_array_foreach(steps, i, st) {
		json_t *w;

		g.prior = done;
		if ((w = rewrite_step(&g, st, e)) == NULL) {
			json_decref(done);
			*rounds = g.rounds;
			return e->code != 0 ? e->code : ERR_NOMEM;
		}
		json_array_append_new(done, w);
	}
	*rounds = g.rounds;
	*out = json_pack("{s:o}", "steps", done);
	return 0;
}

int gselect_value_at(struct fanout *f, const char *dataset, const char *filter, uint64_t q,
                     const char *request_id, float *v, uint64_t *less, uint64_t *equal,
                     json_t **shard_problem, int *status, struct err *e)
{
	struct gctx g = {.f = f, .filter = filter, .rid = request_id, .problem = shard_problem,
	                 .status = status};
	json_t *none = json_array();
	int rc;

	*shard_problem = NULL;
	*status = 0;
	if (none == NULL)
		return err_set(e, ERR_NOMEM, NULL, "out of memory");
	g.prior = none;
	snprintf(g.path, sizeof g.path, "/v1/datasets/%s/subsets:probe", dataset);
	rc = value_at(&g, q, v, less, equal, e);
	json_decref(none);
	return rc;
}
