/* SPDX-License-Identifier: MIT */
/* router: every /v1 route of a router, answered from the shards (docs/scale.md has the table of
 * what each route does). One table maps the server's route templates to the router's handlers;
 * a route missing from it is a 501 not_supported_by_router, never a silent wrong answer. */
#include "api/router.h"

#include <stdatomic.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/router_import.h"
#include "api/router_models.h"
#include "api/router_search.h"
#include "api/router_signals.h"
#include "api/router_stats.h"
#include "api/router_util.h"
#include "api/router_subsets.h"
#include "cluster/fanout.h"
#include "cluster/shardmap.h"
#include "daemon/daemon.h"
#include "lib/err.h"
#include "store/store.h"

/* ---- the owner of one record: get, patch, delete, decisions, a filter's record ---- */

/* The {id*} parameter is the last one captured. */
static int rt_owner(struct http_req *r, struct http_res *res)
{
	struct fanout *f = r->d->router;
	const char *id = NULL;
	struct fanout_call c = {0};
	char *path;
	struct err e = {0};

	for (int i = HTTP_MAX_PARAMS - 1; i >= 0 && id == NULL; i--)
		id = r->params[i];
	if (id == NULL)
		return http_problem(res, r, ERR_INTERNAL, NULL, NULL);
	if ((path = rutil_path(r)) == NULL)
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	c.shard = shardmap_place(fanout_map(f), id, strlen(id));
	c.method = r->method;
	c.path = path;
	c.body = r->body_len > 0 ? r->body : NULL;
	c.body_len = r->body_len;
	c.content_type = http_header(r, "Content-Type");
	if (fanout_run(f, &c, 1, r->request_id, &e) != 0)
		rutil_gateway(res, r, &e);
	else
		rutil_copy(res, &c);
	free(path);
	fanout_calls_free(&c, 1);
	return 0;
}

/* ---- filters: only the types that score each record on its own ---- */

/* A filter whose scores depend on the whole pool (k-means prototypes and clusters, duplicates
 * across records, n-gram models of the pool) would be fitted on each shard's part alone: a
 * different filter than one daemon's. The router refuses those rather than answer wrongly. */
static int rt_filter_put(struct http_req *r, struct http_res *res)
{
	static const char *const per_record[] = {"basic", "clip_score", "color"};
	json_t *body = json_loadb(r->body, r->body_len, 0, NULL);
	const char *type = json_string_value(json_object_get(body, "type"));
	int ok = type == NULL; /* not a definition: shard 0 says what is wrong */
	struct err e = {0};

	for (size_t i = 0; type != NULL && i < sizeof per_record / sizeof per_record[0]; i++)
		ok |= strcmp(type, per_record[i]) == 0;
	if (type != NULL && rmodels_filter_fits(type)) { /* corpus-wide: api/router_models.c */
		json_decref(body);
		return rmodels_filter_put(r, res);
	}
	if (!ok) {
		err_set(&e, ERR_NOT_SUPPORTED, "not_supported_by_router",
		        "filter type '%.64s' fits a model over the whole pool; a router would fit it "
		        "on each shard's part alone (a router serves basic, clip_score, color, and "
		        "color_ngram, prototypes and semdedup fitted over every shard)",
		        type);
		json_decref(body);
		return http_problem(res, r, ERR_NOT_SUPPORTED, &e, NULL);
	}
	json_decref(body);
	return rutil_broadcast(r, res);
}

/* ---- a record's decisions: from its shard, with the client's steps ---- */

/* The owner's decisions, each "cut" step shown as the step the client gave (its origin, read
 * from the subset's definition on shard 0, asked at the same time). */
static int rt_decisions(struct http_req *r, struct http_res *res)
{
	struct fanout *f = r->d->router;
	const char *id = r->params[1], *sub = http_query(r, "subset");
	struct fanout_call c[2] = {{0}};
	char *path = rutil_path(r), def[512];
	struct err e = {0};
	json_t *dec = NULL, *view = NULL, *x;
	size_t i, n = 1;

	if (path == NULL)
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	c[0] = (struct fanout_call){.shard = shardmap_place(fanout_map(f), id, strlen(id)),
	                            .method = "GET", .path = path};
	if (sub != NULL && store_name_valid(sub)) {
		snprintf(def, sizeof def, "/v1/datasets/%s/subsets/%s", r->params[0], sub);
		c[1] = (struct fanout_call){.shard = 0, .method = "GET", .path = def};
		n = 2;
	}
	if (fanout_run(f, c, n, r->request_id, &e) != 0) {
		rutil_gateway(res, r, &e);
	} else if (c[0].status != 200 || (dec = fanout_json(&c[0])) == NULL) {
		rutil_copy(res, &c[0]);
	} else {
		view = n == 2 && c[1].status == 200 ? fanout_json(&c[1]) : NULL;
		json_array_foreach(json_object_get(dec, "steps"), i, x) {
			json_t *st = json_array_get(json_object_get(view, "steps"), i);
			json_t *origin = json_object_get(json_object_get(st, "cut"), "origin"), *v;
			const char *key;

			if (!json_is_object(origin))
				continue;
			json_object_foreach(origin, key, v) {
				if (strcmp(key, "filter") == 0)
					continue;
				json_object_set_new(x, "rule", json_string(key));
				json_object_set(x, "value", v);
			}
		}
		http_json(res, 200, json_incref(dec));
	}
	json_decref(dec);
	json_decref(view);
	fanout_calls_free(c, n);
	free(path);
	return 0;
}

/* ---- readiness ---- */

static int rt_readyz(struct http_req *r, struct http_res *res)
{
	struct fanout *f = r->d->router;
	size_t n = fanout_map(f)->n;
	struct fanout_call *c = calloc(n, sizeof *c);
	struct err e = {0};
	json_t *shards = json_array();
	int ready = 1;

	if (c == NULL || shards == NULL) {
		free(c);
		json_decref(shards);
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	}
	if (atomic_load(&r->d->core.stopping)) {
		free(c);
		json_decref(shards);
		err_set(&e, ERR_UNAVAILABLE, "shutting_down", "the router is shutting down");
		return http_problem(res, r, ERR_UNAVAILABLE, &e, NULL);
	}
	fanout_all(f, c, "GET", "/readyz", NULL, 0, NULL, r->request_id, &e);
	for (size_t i = 0; i < n; i++) {
		json_t *b = fanout_json(&c[i]);
		const char *st = c[i].status == 0 ? "unreachable"
		                 : c[i].status == 200 ? "ready" : "not_ready";

		if (c[i].status != 200)
			ready = 0;
		json_array_append_new(shards, json_pack("{s:I, s:s, s:s, s:i}", "shard", (json_int_t)i,
		                                        "url", fanout_map(f)->url[i], "status", st,
		                                        "http_status", c[i].status));
		json_decref(b);
	}
	fanout_calls_free(c, n);
	free(c);
	if (!ready) {
		err_set(&e, ERR_UNAVAILABLE, "shards_not_ready", "not every shard is ready");
		res->retry_after = 1;
		return http_problem(res, r, ERR_UNAVAILABLE, &e, json_pack("{s:o}", "shards", shards));
	}
	return http_json(res, 200, json_pack("{s:s, s:o}", "status", "ready", "shards", shards));
}

/* ---- the table ---- */

struct rroute {
	const char *method, *tmpl;
	int (*fn)(struct http_req *r, struct http_res *res);
};

#define LOCAL NULL
static const struct rroute rtable[] = {
	{"GET", "/livez", LOCAL},
	{"GET", "/metrics", LOCAL},
	{"GET", "/readyz", rt_readyz},
	{"GET", "/ui/", LOCAL},
	{"GET", "/ui/{file}", LOCAL},
	{"GET", "/v1/openapi.json", LOCAL},
	{"GET", "/v1/filter-types", LOCAL},
	{"GET", "/v1/datasets", rutil_merged_get},
	{"DELETE", "/v1/datasets/{name}", rutil_broadcast},
	{"GET", "/v1/datasets/{name}", rutil_merged_get},
	{"PUT", "/v1/datasets/{name}", rutil_broadcast},
	{"GET", "/v1/datasets/{name}/adapters", rutil_merged_get},
	{"DELETE", "/v1/datasets/{name}/adapters/{adapter}", rutil_broadcast},
	{"GET", "/v1/datasets/{name}/adapters/{adapter}", rutil_merged_get},
	{"PUT", "/v1/datasets/{name}/adapters/{adapter}", rutil_broadcast},
	{"POST", "/v1/datasets/{name}/adapters/{adapter}/pairs", rmodels_adapter_pairs},
	{"PUT", "/v1/datasets/{name}/adapters/{adapter}/weights", rutil_broadcast},
	{"POST", "/v1/datasets/{name}/adapters/{adapter}:train", rmodels_adapter_train},
	{"GET", "/v1/datasets/{name}/filters", rutil_merged_get},
	{"DELETE", "/v1/datasets/{name}/filters/{filter}", rutil_broadcast},
	{"GET", "/v1/datasets/{name}/filters/{filter}", rutil_merged_get},
	{"PUT", "/v1/datasets/{name}/filters/{filter}", rt_filter_put},
	{"GET", "/v1/datasets/{name}/filters/{filter}/records/{id*}", rt_owner},
	{"GET", "/v1/datasets/{name}/filters/{filter}/stats", rstats_get},
	{"POST", "/v1/datasets/{name}/filters/{filter}:score", rutil_broadcast},
	{"GET", "/v1/datasets/{name}/hubness", rutil_merged_get},
	{"DELETE", "/v1/datasets/{name}/hubness/{normalizer}", rutil_broadcast},
	{"GET", "/v1/datasets/{name}/hubness/{normalizer}", rmodels_hubness_get},
	{"PUT", "/v1/datasets/{name}/hubness/{normalizer}", rmodels_hubness_put},
	{"POST", "/v1/datasets/{name}/hubness/{normalizer}:stats", rmodels_hubness_stats},
	{"POST", "/v1/datasets/{name}/hubness/{normalizer}:sync", rmodels_hubness_sync},
	{"GET", "/v1/datasets/{name}/indexes", rutil_merged_get},
	{"DELETE", "/v1/datasets/{name}/indexes/{space}", rutil_broadcast},
	{"GET", "/v1/datasets/{name}/indexes/{space}", rutil_merged_get},
	{"PUT", "/v1/datasets/{name}/indexes/{space}", rutil_broadcast},
	{"GET", "/v1/datasets/{name}/jobs", rutil_jobs_list},
	{"POST", "/v1/datasets/{name}/records", rutil_ingest},
	{"DELETE", "/v1/datasets/{name}/records/{id*}", rt_owner},
	{"GET", "/v1/datasets/{name}/records/{id*}", rt_owner},
	{"PATCH", "/v1/datasets/{name}/records/{id*}", rt_owner},
	{"POST", "/v1/datasets/{name}/records:import", rimport_post},
	{"POST", "/v1/datasets/{name}/records:signals", rsignals_post},
	{"GET", "/v1/datasets/{name}/records/{id*}/decisions", rt_decisions},
	{"POST", "/v1/datasets/{name}/search", rsearch_post},
	{"POST", "/v1/datasets/{name}/search:count", rsearch_count},
	{"GET", "/v1/datasets/{name}/subsets", rutil_merged_get},
	{"DELETE", "/v1/datasets/{name}/subsets/{subset}", rutil_broadcast},
	{"GET", "/v1/datasets/{name}/subsets/{subset}", rutil_merged_get},
	{"PUT", "/v1/datasets/{name}/subsets/{subset}", rsubsets_put},
	{"GET", "/v1/datasets/{name}/subsets/{subset}:export", rsubsets_export},
	{"GET", "/v1/jobs", rutil_jobs_list},
	{"DELETE", "/v1/jobs/{id}", rutil_job_one},
	{"GET", "/v1/jobs/{id}", rutil_job_one},
};
#undef LOCAL

int router_handle(struct http_req *r, struct http_res *res)
{
	struct err e = {0};

	for (size_t i = 0; i < sizeof rtable / sizeof rtable[0]; i++) {
		if (strcmp(rtable[i].method, r->method) != 0 || strcmp(rtable[i].tmpl, r->route) != 0)
			continue;
		if (rtable[i].fn == NULL)
			return 1;
		rtable[i].fn(r, res);
		return 0;
	}
	err_set(&e, ERR_NOT_SUPPORTED, "not_supported_by_router",
	        "%s %s is not served by a router (docs/scale.md lists what is); send it to a shard",
	        r->method, r->route);
	return http_problem(res, r, ERR_NOT_SUPPORTED, &e, NULL);
}
