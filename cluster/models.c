/* SPDX-License-Identifier: MIT */
/* models: corpus-wide models over the shards (see models.h): the merges of the shards'
 * partial statistics and the calls that gather and broadcast them. */
#include "cluster/models.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo/hubness.h"
#include "cluster/fanout.h"
#include "cluster/shardmap.h"
#include "filters/kmeans.h"
#include "filters/semdedup.h"
#include "lib/err.h"

#define HUB_PATH "/v1/datasets/%s/hubness/%s"

/* ---- shards' answers ---- */

/* e from a shard's refusal (status not 2xx): its problem's code and detail, the shard named. */
static int shard_err(const struct fanout_call *c, struct err *e)
{
	json_t *p = fanout_json(c);
	const char *code = json_string_value(json_object_get(p, "code"));
	const char *detail = json_string_value(json_object_get(p, "detail"));
	int rc = c->status == 404   ? ERR_NOT_FOUND
	         : c->status == 409 ? ERR_CONFLICT
	         : c->status == 400 ? ERR_MALFORMED
	         : c->status == 413 ? ERR_TOO_LARGE
	         : c->status == 422 ? ERR_INVALID
	         : c->status == 503 ? ERR_UNAVAILABLE
	                            : ERR_GATEWAY;

	err_set(e, rc, code != NULL ? code : "shard_failed", "shard %zu (HTTP %d): %s", c->shard,
	        c->status, detail != NULL ? detail : "no detail");
	json_decref(p);
	return rc;
}

/* Every call answered 2xx: 0, else the first refusal as an error. */
static int all_ok(const struct fanout_call *c, size_t n, struct err *e)
{
	for (size_t i = 0; i < n; i++)
		if (c[i].status < 200 || c[i].status > 299)
			return shard_err(&c[i], e);
	return 0;
}

/* ---- the activation sets ---- */

struct entry {
	double score;
	const char *id;
};

static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return strcmp(x->id, y->id);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of set (an object used as a set) as a sorted array of strings (new). */
static json_t *sorted_keys(const json_t *set)
{
	size_t n = json_object_size(set), i = 0;
	const char **v = malloc((n + 1) * sizeof *v);
	const char *key;
	json_t *val, *out = json_array();

	if (v == NULL || out == NULL) {
		free(v);
		json_decref(out);
		return NULL;
	}
	json_object_foreach((json_t *)set, key, val)
		v[i++] = key;
	qsort(v, n, sizeof *v, str_cmp);
	for (i = 0; i < n; i++)
		json_array_append_new(out, json_string(v[i]));
	free(v);
	return out;
}

/* One bank's merged top-k ids into set: each item's k best of every part's entries. */
static int bank_merge(json_t *const *parts, size_t n, const char *bank, size_t k, json_t *set)
{
	size_t items = json_array_size(json_object_get(parts[0], bank));
	struct entry *v = malloc((n * k + 1) * sizeof *v);

	if (v == NULL)
		return -1;
	for (size_t b = 0; b < items; b++) {
		size_t m = 0;

		for (size_t p = 0; p < n; p++) {
			const json_t *one = json_array_get(json_object_get(parts[p], bank), b), *x;
			size_t i;

			if (json_array_size(one) > k) {
				free(v);
				return -1;
			}
			json_array_foreach ((json_t *)one, i, x) {
				v[m].score = json_number_value(json_object_get(x, "score"));
				v[m].id = json_string_value(json_object_get(x, "id"));
				if (v[m].id != NULL)
					m++;
			}
		}
		qsort(v, m, sizeof *v, entry_cmp);
		for (size_t i = 0; i < m && i < k; i++)
			json_object_set_new(set, v[i].id, json_true());
	}
	free(v);
	return 0;
}

json_t *models_topk_sets(json_t *const *parts, size_t n)
{
	static const char *const banks[2] = {"query_bank", "gallery_bank"};
	static const char *const keys[2] = {"in_aq", "in_ag"};
	json_int_t k = n > 0 ? json_integer_value(json_object_get(parts[0], "k")) : 0;
	json_t *out = json_object();

	for (int s = 0; out != NULL && s < 2; s++) {
		size_t items = json_array_size(json_object_get(parts[0], banks[s]));
		json_t *set = json_object();
		int bad = set == NULL || k < 1;

		for (size_t p = 0; p < n && !bad; p++)
			bad = json_array_size(json_object_get(parts[p], banks[s])) != items ||
			      json_integer_value(json_object_get(parts[p], "k")) != k;
		if (bad || bank_merge(parts, n, banks[s], (size_t)k, set) != 0) {
			json_decref(set);
			json_decref(out);
			return NULL;
		}
		json_object_set_new(out, keys[s], sorted_keys(set));
		json_decref(set);
	}
	return out;
}

/* ---- sync ---- */

/* The normaliser's view on every shard into c (n calls, answered): *global = every shard has
 * activation "global". */
static int views(struct fanout *f, struct fanout_call *c, const char *path, const char *rid,
                 int *global, struct err *e)
{
	size_t n = fanout_map(f)->n;
	int rc;

	if ((rc = fanout_all(f, c, "GET", path, NULL, 0, NULL, rid, e)) != 0 ||
	    (rc = all_ok(c, n, e)) != 0)
		return rc;
	*global = 1;
	for (size_t i = 0; i < n; i++) {
		json_t *v = fanout_json(&c[i]);
		const char *a = json_string_value(json_object_get(v, "activation"));
		int ready = json_is_true(json_object_get(v, "ready"));

		if (a == NULL || strcmp(a, "global") != 0)
			*global = 0;
		json_decref(v);
		if (!ready)
			return err_set(e, ERR_CONFLICT, "normalizer_not_ready",
			               "shard %zu is still computing the normalizer's statistics", i);
	}
	return 0;
}

/* Send each shard the sets with its own version (parts: the :topk answers). */
static int activate(struct fanout *f, const char *path, json_t *const *parts, const json_t *sets,
                    const char *rid, struct err *e)
{
	size_t n = fanout_map(f)->n;
	struct fanout_call *c = calloc(n, sizeof *c);
	char **bodies = calloc(n, sizeof *bodies);
	int rc = 0;

	if (c == NULL || bodies == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		json_t *b = json_pack("{s:O, s:O, s:O}", "version", json_object_get(parts[i], "version"),
		                      "in_aq", json_object_get(sets, "in_aq"), "in_ag",
		                      json_object_get(sets, "in_ag"));

		bodies[i] = b != NULL ? json_dumps(b, JSON_COMPACT) : NULL;
		json_decref(b);
		if (bodies[i] == NULL)
			rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		c[i] = (struct fanout_call){.shard = i, .method = "POST", .path = path,
		                            .body = bodies[i],
		                            .body_len = bodies[i] ? strlen(bodies[i]) : 0};
	}
	if (rc == 0 && (rc = fanout_run(f, c, n, rid, e)) == 0)
		rc = all_ok(c, n, e);
out:
	if (c != NULL)
		fanout_calls_free(c, n);
	for (size_t i = 0; bodies != NULL && i < n; i++)
		free(bodies[i]);
	free(bodies);
	free(c);
	return rc;
}

int models_hubness_sync(struct fanout *f, const char *ds, const char *name, int force,
                        const char *rid, struct err *e)
{
	size_t n = fanout_map(f)->n;
	struct fanout_call *c = calloc(n, sizeof *c);
	json_t **parts = calloc(n, sizeof *parts), *sets = NULL;
	char path[256], tpath[272];
	int rc, global = 0;

	if (c == NULL || parts == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	snprintf(path, sizeof path, HUB_PATH, ds, name);
	if ((rc = views(f, c, path, rid, &global, e)) != 0 || (global && !force))
		goto out;
	fanout_calls_free(c, n);
	snprintf(tpath, sizeof tpath, "%s:topk", path);
	if ((rc = fanout_all(f, c, "GET", tpath, NULL, 0, NULL, rid, e)) != 0 ||
	    (rc = all_ok(c, n, e)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		if ((parts[i] = fanout_json(&c[i])) == NULL) {
			rc = err_set(e, ERR_GATEWAY, "shard_failed", "shard %zu: :topk is not JSON", i);
			goto out;
		}
	if ((sets = models_topk_sets(parts, n)) == NULL) {
		rc = err_set(e, ERR_GATEWAY, "shards_disagree",
		             "the shards' normalizers '%s' have different banks or k: PUT it again "
		             "through the router", name);
		goto out;
	}
	snprintf(tpath, sizeof tpath, "%s:activation", path);
	rc = activate(f, tpath, parts, sets, rid, e);
out:
	if (c != NULL)
		fanout_calls_free(c, n);
	for (size_t i = 0; parts != NULL && i < n; i++)
		json_decref(parts[i]);
	free(parts);
	free(c);
	json_decref(sets);
	return rc;
}

/* ---- search ---- */

struct cand {
	json_t *res;   /* the shard's result (borrowed from its answer) */
	float raw;     /* its cosine */
	const char *id;
	json_t *stats; /* its statistics (borrowed), or NULL */
	float hub;     /* the normalised score */
};

static int cand_raw_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->raw != y->raw)
		return x->raw > y->raw ? -1 : 1;
	return strcmp(x->id, y->id);
}

static int cand_hub_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->hub != y->hub)
		return x->hub > y->hub ? -1 : 1;
	return cand_raw_cmp(a, b);
}

/* The request's hubness options, as api/search.c reads them. */
struct hub_req {
	const char *name;
	enum hubness_method method;
	size_t candidates, limit;
	int dualdis_mode; /* -1: the normaliser's */
};

static int hub_req(const json_t *body, struct hub_req *h, struct err *e)
{
	const json_t *spec = json_object_get(body, "hubness"), *v;
	const json_t *params = json_object_get(body, "params");

	h->name = json_string_value(json_object_get(spec, "normalizer"));
	h->method = HUBNESS_DUALIS;
	h->candidates = 100;
	h->limit = 10;
	h->dualdis_mode = -1;
	if (json_object_get(body, "queries") != NULL ||
	    json_is_true(json_object_get(params, "exact")))
		return err_set(e, ERR_NOT_SUPPORTED, "not_supported_by_router",
		               "a hubness search through a router takes one query and the index's "
		               "candidates (no \"queries\", no params.exact); send it to a shard");
	if (h->name == NULL)
		return err_set(e, ERR_INVALID, "bad_query", "hubness.normalizer must be a name");
	if ((v = json_object_get(spec, "method")) != NULL &&
	    hubness_method_parse(json_string_value(v), &h->method) != 0)
		return err_set(e, ERR_INVALID, "bad_query",
		               "hubness.method must be is, dis, dualis, dualdis or csls");
	if ((v = json_object_get(spec, "candidates")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000)
			return err_set(e, ERR_INVALID, "bad_query",
			               "hubness.candidates must be 1 to 1000 through a router");
		h->candidates = (size_t)json_integer_value(v);
	}
	if ((v = json_object_get(spec, "dualdis_mode")) != NULL)
		h->dualdis_mode = json_is_string(v) && strcmp(json_string_value(v), "monotone") == 0;
	if ((v = json_object_get(body, "limit")) != NULL && json_is_integer(v) &&
	    json_integer_value(v) >= 1)
		h->limit = (size_t)json_integer_value(v);
	return 0;
}

/* The candidates: every shard's top h->candidates by raw cosine (the body without "hubness"),
 * merged: *ans (n answers, new), *cv (new) the best h->candidates of them. */
static int gather(struct fanout *f, const char *ds, const json_t *body, const struct hub_req *h,
                  const char *rid, json_t **ans, struct cand **cv, size_t *nc, struct err *e)
{
	size_t n = fanout_map(f)->n, m = 0, cap = 0;
	struct fanout_call *c = calloc(n, sizeof *c);
	json_t *b = json_deep_copy(body);
	char path[160], *s = NULL;
	int rc;

	*cv = NULL;
	if (c == NULL || b == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	json_object_del(b, "hubness");
	json_object_set_new(b, "limit", json_integer((json_int_t)h->candidates));
	snprintf(path, sizeof path, "/v1/datasets/%s/search", ds);
	if ((s = json_dumps(b, JSON_COMPACT)) == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	if ((rc = fanout_all(f, c, "POST", path, s, strlen(s), NULL, rid, e)) != 0 ||
	    (rc = all_ok(c, n, e)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		ans[i] = fanout_json(&c[i]);
		cap += json_array_size(json_object_get(ans[i], "results"));
	}
	if ((*cv = calloc(cap + 1, sizeof **cv)) == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		size_t j;
		json_t *x;

		json_array_foreach (json_object_get(ans[i], "results"), j, x) {
			(*cv)[m].res = x;
			(*cv)[m].raw = (float)json_number_value(json_object_get(x, "score"));
			(*cv)[m].id = json_string_value(json_object_get(x, "id"));
			if ((*cv)[m].id != NULL)
				m++;
		}
	}
	qsort(*cv, m, sizeof **cv, cand_raw_cmp);
	*nc = m < h->candidates ? m : h->candidates;
out:
	if (c != NULL)
		fanout_calls_free(c, n);
	free(c);
	free(s);
	json_decref(b);
	return rc;
}

/* The statistics of the candidates from their owners (one :stats call per shard holding
 * some): cv[i].stats set; *sans (n answers, new) holds them. */
static int cand_stats(struct fanout *f, const char *ds, const char *name, struct cand *cv,
                      size_t nc, const char *rid, json_t **sans, struct err *e)
{
	const struct shardmap *map = fanout_map(f);
	size_t n = map->n, m = 0;
	struct fanout_call *c = calloc(n, sizeof *c);
	char **bodies = calloc(n, sizeof *bodies), path[272];
	size_t *owner = malloc((nc + 1) * sizeof *owner);
	int rc = 0;

	if (c == NULL || bodies == NULL || owner == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	snprintf(path, sizeof path, HUB_PATH ":stats", ds, name);
	for (size_t i = 0; i < nc; i++)
		owner[i] = shardmap_place(map, cv[i].id, strlen(cv[i].id));
	for (size_t s = 0; s < n && rc == 0; s++) {
		json_t *ids = json_array();

		for (size_t i = 0; ids != NULL && i < nc; i++)
			if (owner[i] == s)
				json_array_append_new(ids, json_string(cv[i].id));
		if (json_array_size(ids) > 0) {
			json_t *b = json_pack("{s:o}", "ids", ids);

			bodies[s] = b != NULL ? json_dumps(b, JSON_COMPACT) : NULL;
			json_decref(b);
			if (bodies[s] == NULL)
				rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
			c[m++] = (struct fanout_call){.shard = s, .method = "POST", .path = path,
			                              .body = bodies[s],
			                              .body_len = bodies[s] ? strlen(bodies[s]) : 0};
		} else {
			json_decref(ids);
		}
	}
	if (rc != 0 || (rc = fanout_run(f, c, m, rid, e)) != 0 || (rc = all_ok(c, m, e)) != 0)
		goto out;
	for (size_t j = 0; j < m; j++) {
		json_t *st;
		size_t k = 0;

		sans[c[j].shard] = fanout_json(&c[j]);
		st = json_object_get(sans[c[j].shard], "stats");
		for (size_t i = 0; i < nc; i++)
			if (owner[i] == c[j].shard) {
				json_t *x = json_array_get(st, k++);

				cv[i].stats = json_is_object(x) ? x : NULL;
			}
	}
out:
	if (c != NULL)
		fanout_calls_free(c, m);
	for (size_t s = 0; bodies != NULL && s < n; s++)
		free(bodies[s]);
	free(bodies);
	free(owner);
	free(c);
	return rc;
}

/* The normaliser's parameters from its view (a shard's GET answer). */
static int params_from_view(const json_t *v, const struct hub_req *h, struct hubness_params *p)
{
	const char *mode = json_string_value(json_object_get(v, "dualdis_mode"));

	p->beta1 = json_number_value(json_object_get(v, "beta1"));
	p->beta2 = json_number_value(json_object_get(v, "beta2"));
	p->k = (unsigned)json_integer_value(json_object_get(v, "k"));
	p->csls_k = (unsigned)json_integer_value(json_object_get(v, "csls_k"));
	p->dualdis_mode = mode != NULL && strcmp(mode, "monotone") == 0 ? HUBNESS_MONOTONE
	                                                                 : HUBNESS_REFERENCE;
	if (h->dualdis_mode >= 0)
		p->dualdis_mode = (enum hubness_dualdis_mode)h->dualdis_mode;
	return p->k >= 1 && p->csls_k >= 1 ? 0 : -1;
}

/* Rank the candidates as normalizers_rescore does: the raw top-1 gates DIS and DualDIS,
 * r_G is the mean of their csls_k best cosines, a candidate without statistics gets -inf. */
static int rank(const struct hubness_params *p, const struct hub_req *h, struct cand *cv,
                size_t nc, struct err *e)
{
	float *s = malloc((nc + 1) * sizeof *s);
	struct hubness_stats *st = calloc(nc + 1, sizeof *st);
	double *out = malloc((nc + 1) * sizeof *out);

	if (s == NULL || st == NULL || out == NULL) {
		free(s);
		free(st);
		free(out);
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	for (size_t i = 0; i < nc; i++) {
		const json_t *x = cv[i].stats;

		s[i] = cv[i].raw;
		if (x == NULL)
			continue;
		st[i].log_zq = (float)json_number_value(json_object_get(x, "log_zq"));
		st[i].log_zg = (float)json_number_value(json_object_get(x, "log_zg"));
		st[i].r_b = (float)json_number_value(json_object_get(x, "r_b"));
		st[i].flags = HUBNESS_COMPUTED |
		              (json_is_true(json_object_get(x, "in_aq")) ? HUBNESS_IN_AQ : 0) |
		              (json_is_true(json_object_get(x, "in_ag")) ? HUBNESS_IN_AG : 0);
	}
	/* cv is in raw order: index 0 is the top-1 */
	hubness_rescore(p, h->method, nc, s, st, 0, hubness_topk_mean(s, nc, p->csls_k), out);
	for (size_t i = 0; i < nc; i++)
		cv[i].hub = (st[i].flags & HUBNESS_COMPUTED) && isfinite(out[i]) ? (float)out[i]
		                                                                 : -INFINITY;
	free(s);
	free(st);
	free(out);
	qsort(cv, nc, sizeof *cv, cand_hub_cmp);
	return 0;
}

/* The answer: the best limit candidates with their hubness_score, stats as one daemon's. */
static json_t *answer(const struct cand *cv, size_t nc, size_t limit, const json_t *stats0)
{
	size_t shown = nc < limit ? nc : limit;
	json_t *arr = json_array(), *st = json_deep_copy(stats0 ? stats0 : json_object());

	for (size_t i = 0; arr != NULL && i < shown; i++) {
		json_t *o = json_deep_copy(cv[i].res);

		if (o != NULL)
			json_object_set_new(o, "hubness_score",
			                    isfinite(cv[i].hub) ? json_real(cv[i].hub) : json_null());
		json_array_append_new(arr, o);
	}
	if (st != NULL) {
		json_object_set_new(st, "candidates_scanned", json_integer((json_int_t)nc));
		json_object_set_new(st, "returned", json_integer((json_int_t)shown));
		json_object_set_new(st, "truncated", json_boolean(nc > shown));
		json_object_set_new(st, "truncation_reason", nc > shown ? json_string("limit")
		                                                        : json_null());
	}
	return json_pack("{s:o?, s:o?}", "results", arr, "stats", st);
}

/* The view of the normaliser on shard 0 (new). */
static int view0(struct fanout *f, const char *ds, const char *name, const char *rid,
                 json_t **out, struct err *e)
{
	struct fanout_call c = {.shard = 0, .method = "GET"};
	char path[256];
	int rc;

	snprintf(path, sizeof path, HUB_PATH, ds, name);
	c.path = path;
	if ((rc = fanout_run(f, &c, 1, rid, e)) == 0 && (rc = all_ok(&c, 1, e)) == 0 &&
	    (*out = fanout_json(&c)) == NULL)
		rc = err_set(e, ERR_GATEWAY, "shard_failed", "shard 0: the normalizer is not JSON");
	fanout_calls_free(&c, 1);
	return rc;
}

int models_hubness_search(struct fanout *f, const char *ds, const json_t *body, const char *rid,
                          json_t **out, struct err *e)
{
	size_t n = fanout_map(f)->n, nc = 0;
	json_t **ans = calloc(n, sizeof *ans), **sans = calloc(n, sizeof *sans), *view = NULL;
	struct cand *cv = NULL;
	struct hub_req h;
	struct hubness_params p;
	int rc;

	if (ans == NULL || sans == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	if ((rc = hub_req(body, &h, e)) != 0 ||
	    (rc = models_hubness_sync(f, ds, h.name, 0, rid, e)) != 0 ||
	    (rc = view0(f, ds, h.name, rid, &view, e)) != 0)
		goto out;
	if (params_from_view(view, &h, &p) != 0) {
		rc = err_set(e, ERR_GATEWAY, "shard_failed", "shard 0: the normalizer has no params");
		goto out;
	}
	if ((rc = gather(f, ds, body, &h, rid, ans, &cv, &nc, e)) != 0 ||
	    (rc = cand_stats(f, ds, h.name, cv, nc, rid, sans, e)) != 0 ||
	    (rc = rank(&p, &h, cv, nc, e)) != 0)
		goto out;
	*out = answer(cv, nc, h.limit, json_object_get(ans[0], "stats"));
	if (*out == NULL)
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
out:
	for (size_t i = 0; i < n; i++) {
		json_decref(ans ? ans[i] : NULL);
		json_decref(sans ? sans[i] : NULL);
	}
	free(ans);
	free(sans);
	free(cv);
	json_decref(view);
	return rc;
}

/* ---- CoLoR-Filter n-gram counts ---- */

/* dst[key] += src[key] for every n-gram of src (saturating at 2^32 - 1, as a model does). */
static int counts_add(json_t *dst, const json_t *src)
{
	const char *key;
	json_t *val;

	json_object_foreach((json_t *)src, key, val) {
		json_t *have = json_object_get(dst, key);
		json_int_t a = json_integer_value(val), b = json_integer_value(have);

		if (!json_is_integer(val) || a < 1)
			return -1;
		a = a + b > (json_int_t)UINT32_MAX ? (json_int_t)UINT32_MAX : a + b;
		if (have != NULL ? json_integer_set(have, a) != 0
		                 : json_object_set_new(dst, key, json_integer(a)) != 0)
			return -1;
	}
	return 0;
}

int models_counts_merge(json_t *const *parts, size_t n, json_t **out, struct err *e)
{
	const json_t *fmt = n > 0 ? json_object_get(parts[0], "format") : NULL;
	const json_t *order = n > 0 ? json_object_get(parts[0], "order") : NULL;
	size_t np = n > 0 ? json_array_size(json_object_get(parts[0], "priors")) : 0;
	json_t *priors = json_array(), *down = json_object();
	int bad = n == 0 || !json_is_string(fmt) || !json_is_integer(order) || np == 0;

	for (size_t i = 0; i < np && !bad && priors != NULL; i++)
		bad = json_array_append_new(priors, json_object()) != 0;
	for (size_t p = 0; p < n && !bad; p++) {
		const json_t *pr = json_object_get(parts[p], "priors");

		bad = !json_equal(json_object_get(parts[p], "format"), (json_t *)fmt) ||
		      !json_equal(json_object_get(parts[p], "order"), (json_t *)order) ||
		      json_array_size(pr) != np ||
		      counts_add(down, json_object_get(parts[p], "down")) != 0;
		for (size_t i = 0; i < np && !bad; i++)
			bad = counts_add(json_array_get(priors, i), json_array_get(pr, i)) != 0;
	}
	if (bad || priors == NULL || down == NULL) {
		json_decref(priors);
		json_decref(down);
		return err_set(e, ERR_GATEWAY, "shards_disagree",
		               "the shards' n-gram counts do not fit together (format, order, folds)");
	}
	*out = json_pack("{s:O, s:O, s:o, s:o}", "format", fmt, "order", order, "priors", priors,
	                 "down", down);
	return *out != NULL ? 0 : err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
}

/* ---- k-means (prototypes) ---- */

struct sitem {
	const char *h, *id; /* 16 hex digits (so string order is numeric order), the record id */
	const json_t *v;
};

static int sitem_cmp(const void *a, const void *b)
{
	const struct sitem *x = a, *y = b;
	int c = strcmp(x->h, y->h);

	return c != 0 ? c : strcmp(x->id, y->id);
}

/* The merged sample's vectors (new, *m of them, dim each) from the parts' items. */
static int sample_merge(json_t *const *parts, size_t n, uint32_t dim, size_t cap, float **x,
                        size_t *m)
{
	size_t total = 0, k = 0;
	struct sitem *v;

	for (size_t p = 0; p < n; p++)
		total += json_array_size(json_object_get(parts[p], "items"));
	if ((v = malloc((total + 1) * sizeof *v)) == NULL)
		return -1;
	for (size_t p = 0; p < n; p++) {
		size_t i;
		json_t *it;

		json_array_foreach (json_object_get(parts[p], "items"), i, it) {
			v[k] = (struct sitem){json_string_value(json_object_get(it, "h")),
			                      json_string_value(json_object_get(it, "id")),
			                      json_object_get(it, "v")};
			if (v[k].h == NULL || strlen(v[k].h) != 16 || v[k].id == NULL ||
			    json_array_size(v[k].v) != dim) {
				free(v);
				return -1;
			}
			k++;
		}
	}
	qsort(v, k, sizeof *v, sitem_cmp);
	*m = k < cap ? k : cap;
	if ((*x = malloc((*m + 1) * dim * sizeof **x)) == NULL) {
		free(v);
		return -1;
	}
	for (size_t i = 0; i < *m; i++)
		for (uint32_t j = 0; j < dim; j++)
			(*x)[i * dim + j] = (float)json_number_value(json_array_get(v[i].v, j));
	free(v);
	return 0;
}

int models_kmeans_fit(json_t *const *parts, size_t n, const json_t *params, json_t **centroids,
                      struct err *e)
{
	json_int_t dim = n > 0 ? json_integer_value(json_object_get(parts[0], "dim")) : 0;
	json_int_t cap = n > 0 ? json_integer_value(json_object_get(parts[0], "cap")) : 0;
	struct kmeans_params kp;
	float *x = NULL, *cent = NULL;
	size_t m = 0;
	int rc;

	for (size_t p = 0; p < n; p++)
		if (json_integer_value(json_object_get(parts[p], "dim")) != dim ||
		    json_integer_value(json_object_get(parts[p], "cap")) != cap)
			dim = 0;
	if (dim < 1 || cap < 1)
		return err_set(e, ERR_GATEWAY, "shards_disagree",
		               "the shards' k-means samples do not fit together (dim, cap)");
	if ((rc = kmeans_params_parse(params, (uint32_t)dim, &kp, e)) != 0)
		return rc;
	if (sample_merge(parts, n, (uint32_t)dim, (size_t)cap, &x, &m) != 0) {
		rc = err_set(e, ERR_GATEWAY, "shards_disagree", "a shard's k-means sample is malformed");
		goto out;
	}
	if ((cent = malloc((size_t)kp.k * (size_t)dim * sizeof *cent)) == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	if ((rc = kmeans_train(&kp, (uint32_t)dim, m, x, cent, e)) != 0)
		goto out;
	*centroids = json_array();
	for (uint32_t i = 0; *centroids != NULL && i < kp.k; i++) {
		json_t *row = json_array();

		for (json_int_t j = 0; row != NULL && j < dim; j++)
			json_array_append_new(row, json_real(cent[(size_t)i * dim + j]));
		json_array_append_new(*centroids, row);
	}
	if (*centroids == NULL)
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
out:
	kmeans_params_free(&kp);
	free(x);
	free(cent);
	return rc;
}

/* ---- SemDeDup ---- */

/* The records of the parts into r (new) with their vectors in *x (new): *m records. */
static int pool_merge(json_t *const *parts, size_t n, uint32_t dim, struct semdedup_rec **r,
                      float **x, size_t *m)
{
	size_t total = 0, k = 0;

	for (size_t p = 0; p < n; p++)
		total += json_array_size(json_object_get(parts[p], "items"));
	*r = malloc((total + 1) * sizeof **r);
	*x = malloc((total + 1) * dim * sizeof **x);
	if (*r == NULL || *x == NULL)
		return -1;
	for (size_t p = 0; p < n; p++) {
		size_t i;
		json_t *it;

		json_array_foreach (json_object_get(parts[p], "items"), i, it) {
			const json_t *v = json_object_get(it, "v");
			const char *id = json_string_value(json_object_get(it, "id"));

			if (id == NULL || json_array_size(v) != dim ||
			    !json_is_integer(json_object_get(it, "c")) ||
			    !json_is_number(json_object_get(it, "s")))
				return -1;
			for (uint32_t j = 0; j < dim; j++)
				(*x)[k * dim + j] = (float)json_number_value(json_array_get(v, j));
			(*r)[k] = (struct semdedup_rec){
			    .id = id,
			    .v = *x + k * dim,
			    .cluster = (uint32_t)json_integer_value(json_object_get(it, "c")),
			    .sim = (float)json_number_value(json_object_get(it, "s"))};
			k++;
		}
	}
	*m = k;
	return 0;
}

/* Part p's decisions (its records are r[at .. at + cnt)) as the param "given" (new). */
static json_t *given_of(const struct semdedup_rec *r, size_t at, size_t cnt)
{
	json_t *ids = json_array(), *cl = json_array(), *m = json_array(), *er = json_array();

	for (size_t i = at; ids && cl && m && er && i < at + cnt; i++) {
		json_array_append_new(ids, json_string(r[i].id));
		json_array_append_new(cl, json_integer((json_int_t)r[i].cluster));
		json_array_append_new(m, json_real(r[i].maxsim));
		json_array_append_new(
		    er, r[i].earlier == SIZE_MAX ? json_null() : json_string(r[r[i].earlier].id));
	}
	return json_pack("{s:s, s:o?, s:o?, s:o?, s:o?}", "format", "semdedup_given/1", "ids", ids,
	                 "cluster", cl, "m", m, "earlier", er);
}

int models_semdedup_given(json_t *const *parts, size_t n, const json_t *params, json_t **given,
                          struct err *e)
{
	json_int_t dim = n > 0 ? json_integer_value(json_object_get(parts[0], "dim")) : 0;
	struct semdedup_rec *r = NULL;
	struct semdedup_stats st;
	float *x = NULL;
	size_t m = 0, at = 0;
	unsigned order;
	uint64_t maxc;
	int seed, rc;

	for (size_t p = 0; p < n; p++)
		if (json_integer_value(json_object_get(parts[p], "dim")) != dim)
			dim = 0;
	if (dim < 1)
		return err_set(e, ERR_GATEWAY, "shards_disagree",
		               "the shards' semdedup pools do not fit together (dim)");
	if ((rc = semdedup_dedup_params(params, &order, &seed, &maxc, e)) != 0)
		return rc;
	if (pool_merge(parts, n, (uint32_t)dim, &r, &x, &m) != 0) {
		rc = r == NULL || x == NULL
		         ? err_set(e, ERR_NOMEM, "out_of_memory", "out of memory")
		         : err_set(e, ERR_GATEWAY, "shards_disagree",
		                   "a shard's semdedup pool is malformed");
		goto out;
	}
	if ((rc = semdedup_dedup(r, m, (uint32_t)dim, order, seed, maxc, &st, e)) != 0)
		goto out;
	for (size_t p = 0; p < n; p++) {
		size_t cnt = json_array_size(json_object_get(parts[p], "items"));

		if ((given[p] = given_of(r, at, cnt)) == NULL) {
			rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
			goto out;
		}
		at += cnt;
	}
out:
	free(r);
	free(x);
	return rc;
}
