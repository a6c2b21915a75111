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

/* The adapter's definition from every shard (they must agree): *space new (its space). A
 * refusal or a disagreement is answered in res. */
static int adapter_space(struct http_req *r, struct http_res *res, const char *ds,
                         const char *name, char **space)
{
	struct fanout *f = r->d->router;
	size_t n = fanout_map(f)->n;
	struct fanout_call *c = calloc(n, sizeof *c);
	json_t *first = NULL;
	char path[200];
	struct err e = {0};
	int rc = -1;

	if (c == NULL)
		return http_problem(res, r, ERR_NOMEM, NULL, NULL), -1;
	snprintf(path, sizeof path, "/v1/datasets/%s/adapters/%s", ds, name);
	if (fanout_all(f, c, "GET", path, NULL, 0, NULL, r->request_id, &e) != 0) {
		rutil_gateway(res, r, &e);
		goto out;
	}
	if (rutil_first_bad(c, n) != NULL) {
		rutil_copy(res, rutil_first_bad(c, n));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *v = fanout_json(&c[i]);
		const json_t *def = json_object_get(v, "definition");

		if (i == 0) {
			first = v;
			continue;
		}
		if (!json_equal(def, json_object_get(first, "definition"))) {
			json_decref(v);
			err_set(&e, ERR_CONFLICT, "adapter_differs",
			        "the shards hold different definitions of adapter '%s': PUT it through "
			        "the router",
			        name);
			http_problem(res, r, ERR_CONFLICT, &e, NULL);
			goto out;
		}
		json_decref(v);
	}
	{
		const char *sv = json_string_value(
		    json_object_get(json_object_get(first, "definition"), "space"));

		*space = strdup(sv != NULL ? sv : "");
	}
	rc = *space != NULL ? 0 : (http_problem(res, r, ERR_NOMEM, NULL, NULL), -1);
out:
	json_decref(first);
	fanout_calls_free(c, n);
	free(c);
	return rc;
}

/* A pair line whose query names a record on another shard than its judged record: the query
 * record's vector (from its owner) put in the line. */
struct pline {
	json_t *o;      /* the parsed line (NULL: not JSON) */
	size_t shard;   /* where the line goes */
	size_t line;    /* the client's line */
	char *path;     /* new: the query record's GET, NULL when nothing to resolve */
};

static int pline_target(struct pline *pl, const struct shardmap *m, const char *ds)
{
	const char *id = json_string_value(json_object_get(pl->o, "id"));
	const json_t *q = json_object_get(pl->o, "query");
	const char *qid = json_string_value(json_object_get(q, "record_id"));
	size_t o, cap;

	pl->shard = id != NULL && id[0] ? shardmap_place(m, id, strlen(id)) : 0;
	pl->path = NULL;
	if (qid == NULL || !qid[0] || shardmap_place(m, qid, strlen(qid)) == pl->shard)
		return 0; /* nothing to fetch: the owner resolves it (or rejects the line) */
	cap = strlen(ds) + 3 * strlen(qid) + 32;
	if ((pl->path = malloc(cap)) == NULL)
		return ERR_NOMEM;
	o = (size_t)snprintf(pl->path, cap, "/v1/datasets/%s/records/", ds);
	for (const char *p = qid; *p && o < cap - 4; p++) {
		unsigned char ch = (unsigned char)*p;

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '_' || ch == '.')
			pl->path[o++] = (char)ch;
		else
			o += (size_t)snprintf(pl->path + o, cap - o, "%%%02X", ch);
	}
	pl->path[o] = '\0';
	return 0;
}

/* The vectors of the query records on other shards, fetched at once and put in the lines (a
 * record or vector not found leaves the line as it is: its shard rejects it). */
static int plines_resolve(struct http_req *r, struct pline *pl, size_t n, const char *space)
{
	struct fanout *f = r->d->router;
	struct fanout_call *c = calloc(n ? n : 1, sizeof *c);
	size_t *who = calloc(n ? n : 1, sizeof *who), m = 0;
	struct err e = {0};
	int rc = 0;

	if (c == NULL || who == NULL) {
		free(c);
		free(who);
		return ERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++)
		if (pl[i].path != NULL) {
			const char *qid = json_string_value(
			    json_object_get(json_object_get(pl[i].o, "query"), "record_id"));

			c[m] = (struct fanout_call){.shard = shardmap_place(fanout_map(f), qid, strlen(qid)),
			                            .method = "GET", .path = pl[i].path};
			who[m++] = i;
		}
	if (m > 0 && fanout_run(f, c, m, r->request_id, &e) != 0)
		rc = ERR_GATEWAY;
	for (size_t k = 0; rc == 0 && k < m; k++) {
		json_t *o = pl[who[k]].o, *rec = c[k].status == 200 ? fanout_json(&c[k]) : NULL;
		const json_t *q = json_object_get(o, "query");
		const char *sp = json_string_value(json_object_get(q, "space"));
		json_t *v = json_object_get(json_object_get(rec, "embeddings"), sp ? sp : space);

		if (json_is_array(v))
			json_object_set(o, "query", v);
		json_decref(rec);
	}
	fanout_calls_free(c, m);
	free(c);
	free(who);
	return rc;
}

/* The body's lines parsed (blank lines counted, as one daemon counts them). *out new. */
static int plines_parse(const struct http_req *r, const struct shardmap *m, const char *ds,
                        struct pline **out, size_t *n)
{
	struct pline *pl = NULL;
	size_t cap = 0, line = 0;

	*n = 0;
	for (const char *p = r->body, *end = r->body + r->body_len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		int blank = 1;

		line++;
		for (size_t i = 0; i < len && blank; i++)
			blank = p[i] == ' ' || p[i] == '\t' || p[i] == '\r';
		if (!blank) {
			if (*n == cap) {
				struct pline *g = realloc(pl, (cap = cap ? cap * 2 : 256) * sizeof *g);

				if (g == NULL)
					goto nomem;
				pl = g;
			}
			pl[*n].o = json_loadb(p, len, JSON_REJECT_DUPLICATES, NULL);
			pl[*n].line = line;
			pl[*n].path = NULL;
			if (json_is_object(pl[*n].o)) {
				if (pline_target(&pl[*n], m, ds) != 0) {
					json_decref(pl[(*n)++].o);
					goto nomem;
				}
			} else { /* shard 0 rejects it with the daemon's code */
				json_decref(pl[*n].o);
				pl[*n].o = json_stringn(p, len); /* kept as its text */
				pl[*n].shard = 0;
			}
			(*n)++;
			if (pl[*n - 1].o == NULL) {
				goto nomem;
			}
		}
		p += len + 1;
	}
	*out = pl;
	return 0;
nomem:
	for (size_t i = 0; i < *n; i++) {
		json_decref(pl[i].o);
		free(pl[i].path);
	}
	free(pl);
	*n = 0;
	return ERR_NOMEM;
}

/* Sum the shards' pair answers (200, or 422 no_pairs_accepted with the same fields). */
static void pairs_answer(struct http_req *r, struct http_res *res, struct fanout_call *c,
                         size_t m, const struct rutil_part *parts)
{
	json_t *errors = json_array();
	json_int_t acc = 0, rej = 0, pairs = 0, queries = 0;
	struct err e = {0};
	json_t *out;

	for (size_t i = 0; i < m; i++) {
		json_t *a = fanout_json(&c[i]);

		acc += json_integer_value(json_object_get(a, "accepted"));
		rej += json_integer_value(json_object_get(a, "rejected"));
		pairs += json_integer_value(json_object_get(a, "pairs"));
		queries += json_integer_value(json_object_get(a, "queries"));
		rutil_errors_remap(errors, json_object_get(a, "errors"), &parts[c[i].shard]);
		json_decref(a);
	}
	rutil_errors_by_line(errors);
	out = json_pack("{s:I, s:I, s:o, s:I, s:I}", "accepted", acc, "rejected", rej, "errors",
	                errors, "pairs", pairs, "queries", queries);
	if (out == NULL) {
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
		return;
	}
	if (acc == 0) {
		err_set(&e, ERR_INVALID, "no_pairs_accepted",
		        "none of the %lld pairs was accepted; see errors", (long long)rej);
		http_problem(res, r, ERR_INVALID, &e, out);
		json_decref(out);
		return;
	}
	http_json(res, 200, out);
}

static void pairs_send(struct http_req *r, struct http_res *res, struct rutil_part *parts,
                       size_t n)
{
	struct fanout_call *c = calloc(n, sizeof *c), *bad = NULL;
	char *path = rutil_path(r);
	size_t m = 0, ok = 0;
	struct err e = {0};

	if (c == NULL || path == NULL) {
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (parts[i].nlines > 0)
			c[m++] = (struct fanout_call){.shard = i, .method = "POST", .path = path,
			                              .body = parts[i].buf, .body_len = parts[i].len,
			                              .content_type = "application/x-ndjson"};
	if (fanout_run(r->d->router, c, m, r->request_id, &e) != 0) {
		rutil_gateway(res, r, &e);
		goto out;
	}
	for (size_t i = 0; i < m; i++) {
		if (c[i].status == 200 || c[i].status == 422)
			ok++;
		else if (bad == NULL)
			bad = &c[i];
	}
	if (bad != NULL && ok == 0)
		rutil_copy(res, bad);
	else if (bad != NULL)
		rutil_partial(r, res, c, m); /* some shards stored their pairs */
	else
		pairs_answer(r, res, c, m, parts);
out:
	if (c != NULL)
		fanout_calls_free(c, m);
	free(c);
	free(path);
}

/* POST .../adapters/{a}/pairs: each line to the shard owning its judged record ("id"), a query
 * naming a record of another shard replaced by that record's vector; the answers summed, the
 * errors on the client's lines. */
int rmodels_adapter_pairs(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "adapter") : NULL;
	const struct shardmap *m = fanout_map(r->d->router);
	struct rutil_part *parts = NULL;
	struct pline *pl = NULL;
	size_t npl = 0;
	char mt[64], *space = NULL, *path = NULL;
	int rc;

	if (name == NULL)
		return 0;
	http_media_type(r, mt, sizeof mt);
	if ((strcmp(mt, "application/x-ndjson") != 0 && strcmp(mt, "application/jsonl") != 0) ||
	    r->body_len == 0) { /* refused by shard 0 as one daemon refuses it */
		path = rutil_path(r);
		rutil_forward_one(r, res, 0, path);
		free(path);
		return 0;
	}
	if (adapter_space(r, res, ds, name, &space) != 0)
		return 0;
	parts = calloc(m->n, sizeof *parts);
	if (parts == NULL || (rc = plines_parse(r, m, ds, &pl, &npl)) != 0 ||
	    (rc = plines_resolve(r, pl, npl, space)) != 0) {
		http_problem(res, r, parts == NULL ? ERR_NOMEM : rc, NULL, NULL);
		goto out;
	}
	for (size_t i = 0; i < npl; i++) {
		char *s = json_is_string(pl[i].o) ? strdup(json_string_value(pl[i].o))
		                                  : json_dumps(pl[i].o, JSON_COMPACT);

		rc = s != NULL ? rutil_part_add(&parts[pl[i].shard], s, strlen(s), pl[i].line, 0) : -1;
		free(s);
		if (rc != 0) {
			http_problem(res, r, ERR_NOMEM, NULL, NULL);
			goto out;
		}
	}
	if (npl == 0) { /* only blank lines: shard 0 says "empty_body" */
		path = rutil_path(r);
		rutil_forward_one(r, res, 0, path);
	} else {
		pairs_send(r, res, parts, m->n);
	}
out:
	for (size_t i = 0; i < npl; i++) {
		json_decref(pl[i].o);
		free(pl[i].path);
	}
	free(pl);
	if (parts != NULL)
		rutil_parts_free(parts, m->n);
	free(space);
	free(path);
	return 0;
}
