/* SPDX-License-Identifier: MIT */
/* router_models: corpus-wide models through the router (see router_models.h). */
#include "api/router_models.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/router_util.h"
#include "cluster/fanout.h"
#include "cluster/models.h"
#include "cluster/shardmap.h"
#include "daemon/daemon.h"
#include "lib/err.h"
#include "lib/log.h"
#include "search/adapters.h"

/* ---- hubness normalisers ---- */

/* A bank a router can broadcast: inline vectors (a gallery bank with the ids of its items). */
static int bank_inline(const json_t *bank, const char *what, struct err *e)
{
	if (json_is_object(bank) && json_object_get(bank, "vectors") != NULL)
		return 0;
	return err_set(e, ERR_INVALID, "bank_not_inline",
	               "%s: through a router a bank is given inline, {\"vectors\": [...], \"ids\": "
	               "[...]} (ids: the records the vectors are, so that a record is left out of "
	               "its own statistics); a bank drawn from a dataset differs from shard to "
	               "shard", what);
}

int rmodels_hubness_put(struct http_req *r, struct http_res *res)
{
	struct err e = {0};
	json_t *body = NULL;
	int rc;

	if (http_body_json(r, res, &body) != 0)
		return 0;
	rc = bank_inline(json_object_get(body, "query_bank"), "query_bank", &e);
	if (rc == 0)
		rc = bank_inline(json_object_get(body, "gallery_bank"), "gallery_bank", &e);
	json_decref(body);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	return rutil_broadcast(r, res);
}

/* The merged view of normaliser name of ds (every shard's GET answer merged). */
static int merged_view(struct http_req *r, struct http_res *res, const char *ds,
                       const char *name)
{
	struct fanout *f = r->d->router;
	size_t n = fanout_map(f)->n;
	struct fanout_call *c = calloc(n, sizeof *c);
	json_t **docs = calloc(n, sizeof *docs), *out = NULL;
	char path[256];
	struct err e = {0};

	if (c == NULL || docs == NULL) {
		free(c);
		free(docs);
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	}
	snprintf(path, sizeof path, "/v1/datasets/%s/hubness/%s", ds, name);
	if (fanout_all(f, c, "GET", path, NULL, 0, NULL, r->request_id, &e) != 0) {
		rutil_gateway(res, r, &e);
	} else if (rutil_first_bad(c, n) != NULL) {
		rutil_copy(res, rutil_first_bad(c, n));
	} else {
		for (size_t i = 0; i < n; i++)
			docs[i] = fanout_json(&c[i]);
		out = rutil_merge(docs, n);
		http_json(res, 200, out != NULL ? out : json_object());
	}
	for (size_t i = 0; i < n; i++)
		json_decref(docs[i]);
	fanout_calls_free(c, n);
	free(c);
	free(docs);
	return 0;
}

/* GET: the activation sets made global first when every shard is ready (a normaliser still
 * computing is shown as it is). */
int rmodels_hubness_get(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "normalizer") : NULL;
	struct err e = {0};
	int rc;

	if (name == NULL)
		return 0;
	rc = models_hubness_sync(r->d->router, ds, name, 0, r->request_id, &e);
	if (rc != 0 && rc != ERR_CONFLICT && rc != ERR_NOT_FOUND)
		return http_problem(res, r, rc, &e, NULL);
	return merged_view(r, res, ds, name);
}

int rmodels_hubness_sync(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "normalizer") : NULL;
	struct err e = {0};
	int rc;

	if (name == NULL)
		return 0;
	if ((rc = models_hubness_sync(r->d->router, ds, name, 1, r->request_id, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	return merged_view(r, res, ds, name);
}

/* :stats: every id asked of its owner, the answers put back in the request's order. */
int rmodels_hubness_stats(struct http_req *r, struct http_res *res)
{
	struct fanout *f = r->d->router;
	const struct shardmap *map = fanout_map(f);
	size_t n = map->n, i;
	struct fanout_call *c = calloc(n, sizeof *c);
	json_t *body = NULL, **ans = calloc(n, sizeof *ans), *ids, *one, *stats = NULL, *out;
	size_t *at = calloc(n, sizeof *at);
	char *path = rutil_path(r), *s = NULL;
	struct err e = {0};

	if (c == NULL || ans == NULL || at == NULL || path == NULL) {
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
		goto out;
	}
	if (http_body_json(r, res, &body) != 0)
		goto out;
	if ((s = json_dumps(body, JSON_COMPACT)) == NULL) {
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
		goto out;
	}
	/* every shard gets the whole list (it checks it, and answers null for ids it lacks) */
	if (fanout_all(f, c, "POST", path, s, strlen(s), NULL, r->request_id, &e) != 0) {
		rutil_gateway(res, r, &e);
		goto out;
	}
	if (rutil_first_bad(c, n) != NULL) {
		rutil_copy(res, rutil_first_bad(c, n));
		goto out;
	}
	for (i = 0; i < n; i++)
		ans[i] = fanout_json(&c[i]);
	ids = json_object_get(body, "ids");
	stats = json_array();
	json_array_foreach (ids, i, one) {
		const char *id = json_string_value(one);
		size_t sh = shardmap_place(map, id, json_string_length(one));

		json_array_append(stats, json_array_get(json_object_get(ans[sh], "stats"), i));
	}
	out = json_deep_copy(ans[0]);
	if (out != NULL)
		json_object_set_new(out, "stats", stats);
	else
		json_decref(stats);
	http_json(res, 200, out);
out:
	for (i = 0; ans != NULL && i < n; i++)
		json_decref(ans[i]);
	if (c != NULL)
		fanout_calls_free(c, n);
	free(c);
	free(ans);
	free(at);
	free(path);
	free(s);
	json_decref(body);
	return 0;
}

int rmodels_hubness_search(struct http_req *r, struct http_res *res, const json_t *body)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	struct err e = {0};
	json_t *out = NULL;
	int rc;

	if (ds == NULL)
		return 0;
	if ((rc = models_hubness_search(r->d->router, ds, body, r->request_id, &out, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_json(res, 200, out);
}

/* ---- fits from the shards' partials: CoLoR-Filter n-gram counts, prototypes k-means ---- */

/* Every shard's partial of definition (borrowed) merged by merge into *merged (new). */
static int gather(struct http_req *r, struct http_res *res, const char *ds,
                  const json_t *definition,
                  int (*merge)(json_t *const *parts, size_t n, const json_t *params,
                               json_t **out, struct err *e),
                  json_t **merged)
{
	struct fanout *f = r->d->router;
	size_t n = fanout_map(f)->n;
	struct fanout_call *c = calloc(n, sizeof *c);
	json_t **parts = calloc(n, sizeof *parts);
	char path[160], *s = json_dumps(definition, JSON_COMPACT);
	struct err e = {0};
	int rc = -1;

	if (c == NULL || parts == NULL || s == NULL) {
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
		goto out;
	}
	snprintf(path, sizeof path, "/v1/datasets/%s/filters:partial", ds);
	if (fanout_all(f, c, "POST", path, s, strlen(s), NULL, r->request_id, &e) != 0) {
		rutil_gateway(res, r, &e);
		goto out;
	}
	if (rutil_first_bad(c, n) != NULL) {
		rutil_copy(res, rutil_first_bad(c, n)); /* a shard's refusal (bad params) as it is */
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		parts[i] = fanout_json(&c[i]);
	rc = merge(parts, n, json_object_get(definition, "params"), merged, &e);
	if (rc != 0)
		http_problem(res, r, rc, &e, NULL);
out:
	for (size_t i = 0; parts != NULL && i < n; i++)
		json_decref(parts[i]);
	if (c != NULL)
		fanout_calls_free(c, n);
	free(c);
	free(parts);
	free(s);
	return rc;
}

static int counts_merge(json_t *const *parts, size_t n, const json_t *params, json_t **out,
                        struct err *e)
{
	(void)params;
	return models_counts_merge(parts, n, out, e);
}

/* What a definition's fit needs from the shards: the param it fills and how (NULL: none, the
 * definition is broadcast as it is). A prototypes fit is made on the id-hash sample (the same
 * on one daemon and on shards); a reservoir sample follows the row order: refused (422). */
static const char *fitted_param(json_t *body, struct err *e,
                                int (**merge)(json_t *const *, size_t, const json_t *,
                                              json_t **, struct err *))
{
	const char *type = json_string_value(json_object_get(body, "type"));
	json_t *params = json_object_get(body, "params");
	const char *smp;

	if (type == NULL || !json_is_object(params))
		return NULL;
	if (strcmp(type, "color_ngram") == 0 && json_object_get(params, "counts") == NULL) {
		*merge = counts_merge;
		return "counts";
	}
	if (strcmp(type, "prototypes") != 0 || json_object_get(params, "centroids") != NULL)
		return NULL;
	smp = json_string_value(json_object_get(params, "sample"));
	if (smp != NULL && strcmp(smp, "id_hash") != 0) {
		err_set(e, ERR_INVALID, "not_exact_on_shards",
		        "param 'sample' \"%s\" follows each shard's row order: through a router a "
		        "prototypes fit samples by id hash (leave 'sample' out, or \"id_hash\")", smp);
		return "";
	}
	json_object_set_new(params, "sample", json_string("id_hash"));
	*merge = models_kmeans_fit;
	return "centroids";
}

/* ---- SemDeDup: centroids as prototypes', then the dedup stage here ---- */

/* The shards' pools deduplicated here: *out new, an array of each shard's param "given". */
static int sdd_merge(json_t *const *parts, size_t n, const json_t *params, json_t **out,
                     struct err *e)
{
	json_t **g = calloc(n + 1, sizeof *g);
	int rc;

	if (g == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if ((rc = models_semdedup_given(parts, n, params, g, e)) == 0) {
		*out = json_array();
		for (size_t i = 0; i < n; i++) {
			json_array_append(*out, g[i]);
			if (*out == NULL)
				rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		}
	}
	for (size_t i = 0; i < n; i++)
		json_decref(g[i]);
	free(g);
	return rc;
}

/* The prototypes definition whose id-hash sample a semdedup k-means trains on (new). */
static json_t *kmeans_def(const json_t *params)
{
	static const char *const keep[] = {
	    "space", "k", "iterations", "seed", "max_points_per_centroid", NULL};
	json_t *p = json_object();

	for (size_t i = 0; p != NULL && keep[i] != NULL; i++)
		if (json_object_get(params, keep[i]) != NULL)
			json_object_set(p, keep[i], json_object_get(params, keep[i]));
	if (p != NULL)
		json_object_set_new(p, "sample", json_string("id_hash"));
	return json_pack("{s:s, s:o?}", "type", "prototypes", "params", p);
}

/* What a router cannot make exact: a reservoir sample (row order), another filter's
 * centroids (each shard's own instance), decisions given by the client. */
static int sdd_refuse(const json_t *params, struct err *e)
{
	const char *smp = json_string_value(json_object_get(params, "sample"));

	if (json_object_get(params, "given") != NULL)
		return err_set(e, ERR_INVALID, "not_exact_on_shards",
		               "param 'given' is what a router sends its shards; leave it out");
	if (json_object_get(params, "prototypes") != NULL)
		return err_set(e, ERR_INVALID, "not_exact_on_shards",
		               "param 'prototypes' through a router: give 'centroids' (e.g. the "
		               "prototypes filter's) or let the router fit k-means ('k')");
	if (smp != NULL && strcmp(smp, "id_hash") != 0 &&
	    json_object_get(params, "centroids") == NULL)
		return err_set(e, ERR_INVALID, "not_exact_on_shards",
		               "param 'sample' \"%s\" follows each shard's row order: through a "
		               "router semdedup's k-means samples by id hash (leave 'sample' out, "
		               "or \"id_hash\")",
		               smp);
	return 0;
}

/* Send each shard the definition with its own decisions (given: an array, one per shard). */
static int sdd_send(struct http_req *r, struct http_res *res, json_t *body, const json_t *given)
{
	size_t n = fanout_map(r->d->router)->n;
	char **b = calloc(n, sizeof *b), *path = rutil_path(r);
	size_t *l = calloc(n, sizeof *l);
	int bad = b == NULL || l == NULL || path == NULL;

	for (size_t i = 0; !bad && i < n; i++) {
		json_object_set(json_object_get(body, "params"), "given", json_array_get(given, i));
		bad = (b[i] = json_dumps(body, JSON_COMPACT)) == NULL;
		l[i] = bad ? 0 : strlen(b[i]);
	}
	if (bad)
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
	else
		rutil_broadcast_each(r, res, "PUT", path, b, l);
	for (size_t i = 0; b != NULL && i < n; i++)
		free(b[i]);
	free(b);
	free(l);
	free(path);
	return 0;
}

/* PUT of a semdedup filter: k-means fitted here on the id-hash sample (as prototypes), every
 * shard's pool (clusters, cosines, unit vectors) deduplicated here with the filter's own code,
 * and each shard given the decisions for its records. */
static int sdd_put(struct http_req *r, struct http_res *res, const char *ds, json_t *body)
{
	json_t *params = json_object_get(body, "params"), *merged = NULL, *def;
	struct err e = {0};

	if (!json_is_object(params))
		return rutil_broadcast(r, res); /* shard 0 says what is wrong */
	if (sdd_refuse(params, &e) != 0)
		return http_problem(res, r, ERR_INVALID, &e, NULL);
	if (json_object_get(params, "centroids") == NULL) {
		if ((def = kmeans_def(params)) == NULL)
			return http_problem(res, r, ERR_NOMEM, NULL, NULL);
		if (gather(r, res, ds, def, models_kmeans_fit, &merged) != 0) {
			json_decref(def);
			return 0;
		}
		json_decref(def);
		json_object_set_new(params, "centroids", merged);
		json_object_set_new(params, "sample", json_string("id_hash"));
	}
	if (gather(r, res, ds, body, sdd_merge, &merged) != 0)
		return 0;
	sdd_send(r, res, body, merged);
	json_decref(merged);
	return 0;
}

/* PUT of a filter: a fit the shards' data make together (color_ngram counts, prototypes
 * k-means) is made from every shard's partial and broadcast as a param; every other
 * definition is broadcast as it is. */
int rmodels_filter_put(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	int (*merge)(json_t *const *, size_t, const json_t *, json_t **, struct err *) = NULL;
	json_t *body = NULL, *merged = NULL;
	char *path = NULL, *s = NULL;
	const char *param;
	struct err e = {0};

	if (ds == NULL || http_body_json(r, res, &body) != 0)
		return 0;
	if (strcmp(json_string_value(json_object_get(body, "type")), "semdedup") == 0) {
		sdd_put(r, res, ds, body);
		json_decref(body);
		return 0;
	}
	if ((param = fitted_param(body, &e, &merge)) == NULL) {
		json_decref(body);
		return rutil_broadcast(r, res);
	}
	if (param[0] == '\0')
		http_problem(res, r, ERR_INVALID, &e, NULL);
	else if (gather(r, res, ds, body, merge, &merged) == 0) {
		json_object_set_new(json_object_get(body, "params"), param, merged);
		path = rutil_path(r);
		s = json_dumps(body, JSON_COMPACT);
		if (path == NULL || s == NULL)
			http_problem(res, r, ERR_NOMEM, NULL, NULL);
		else
			rutil_broadcast_body(r, res, "PUT", path, s, strlen(s));
	}
	free(path);
	free(s);
	json_decref(body);
	return 0;
}

int rmodels_filter_fits(const char *type)
{
	return strcmp(type, "color_ngram") == 0 || strcmp(type, "prototypes") == 0 ||
	       strcmp(type, "semdedup") == 0;
}

/* ---- Cosine Adapters ---- */

/* POST .../adapters/{a}:train: every shard's pairs (their queries, cosines and labels,
 * :partial) trained on here once, as one daemon trains, and the weights given to every shard
 * (PUT .../weights). Synchronous: the answer is the adapter, trained. */
int rmodels_adapter_train(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "adapter") : NULL;
	struct fanout *f = r->d->router;
	size_t n = fanout_map(f)->n;
	struct fanout_call *c = calloc(n, sizeof *c);
	json_t **parts = calloc(n, sizeof *parts), *w = NULL;
	char path[200], *s = NULL;
	struct err e = {0};
	int rc;

	if (name == NULL)
		goto out;
	if (c == NULL || parts == NULL) {
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
		goto out;
	}
	snprintf(path, sizeof path, "/v1/datasets/%s/adapters/%s:partial", ds, name);
	if (fanout_all(f, c, "POST", path, "{}", 2, NULL, r->request_id, &e) != 0) {
		rutil_gateway(res, r, &e);
		goto out;
	}
	if (rutil_first_bad(c, n) != NULL) {
		rutil_copy(res, rutil_first_bad(c, n)); /* not found, ... as a shard says it */
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		parts[i] = fanout_json(&c[i]);
	if ((rc = adapters_fit_partials(parts, n, &w, &e)) != 0) {
		http_problem(res, r, rc, &e, NULL);
		goto out;
	}
	if ((s = json_dumps(w, JSON_COMPACT)) == NULL) {
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
		goto out;
	}
	snprintf(path, sizeof path, "/v1/datasets/%s/adapters/%s/weights", ds, name);
	rutil_broadcast_body(r, res, "PUT", path, s, strlen(s));
	log_msg(LOG_INFO, "router_adapter_train", "dataset=%s adapter=%s", ds, name);
out:
	for (size_t i = 0; parts != NULL && i < n; i++)
		json_decref(parts[i]);
	if (c != NULL)
		fanout_calls_free(c, n);
	free(c);
	free(parts);
	free(s);
	json_decref(w);
	return 0;
}
