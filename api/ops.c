/* SPDX-License-Identifier: MIT */
/* ops: liveness, readiness, Prometheus metrics and the OpenAPI document. Stateless
 * handlers over the daemon's borrowed state. */
#include "api/ops.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/openapi.h"
#include "core/jobs.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "search/catalog.h"
#include "index/index.h"
#include "daemon/metrics.h"
#include "store/store.h"

int ops_livez(struct http_req *r, struct http_res *res)
{
	(void)r;
	return http_json(res, 200, json_pack("{s:s}", "status", "ok"));
}

/* "?verbose" comes without a value, which http_query() cannot tell from no parameter. */
static int is_verbose(void *ctx, const char *name, const char *value)
{
	(void)ctx;
	(void)value;
	return strcmp(name, "verbose") == 0;
}

int ops_readyz(struct http_req *r, struct http_res *res)
{
	struct err e = {0};
	size_t building;
	json_t *out;

	if (atomic_load(&r->d->core.stopping)) {
		err_set(&e, ERR_UNAVAILABLE, "shutting_down", "the server is shutting down");
		return http_problem(res, r, ERR_UNAVAILABLE, &e, NULL);
	}
	if (!atomic_load(&r->d->ready)) {
		err_set(&e, ERR_UNAVAILABLE, "starting", "storage or indexes are still loading");
		return http_problem(res, r, ERR_UNAVAILABLE, &e, NULL);
	}
	if (r->core->store != NULL && store_full(r->core->store))
		/* reads and searches still answer; writes get 507 until one commits again */
		out = json_pack("{s:s, s:[s], s:s}", "status", "degraded", "reasons", "storage_full",
		                "detail",
		                "the last write failed because the disk is full: reads and searches "
		                "answer, writes get 507 until space is freed");
	else if ((building = r->core->catalog != NULL ? catalog_building(r->core->catalog) : 0) > 0)
		/* searches of those spaces are exact scans meanwhile */
		out = json_pack("{s:s, s:I}", "status", "ready", "indexes_building",
		                (json_int_t)building);
	else
		out = json_pack("{s:s}", "status", "ready");
	if (out != NULL && http_query_each(r, is_verbose, NULL) != 0) {
		/* what an operator should know about a daemon that is otherwise ready */
		json_t *warnings = json_array();

		if (r->d->auth == NULL && r->d->cfg->insecure_no_auth)
			json_array_append_new(warnings, json_string("insecure_no_auth"));
		json_object_set_new(out, "warnings", warnings);
		json_object_set_new(out, "faiss_build", json_string(index_faiss_build(NULL)));
	}
	return http_json(res, 200, out);
}

int ops_metrics(struct http_req *r, struct http_res *res)
{
	struct store_stats st = {0};
	struct metrics_gauges g = {0};
	struct jobs_stat jobs[16];
	size_t len = 0;
	char *text;

	if (r->core->store != NULL && store_stats(r->core->store, &st) == 0) {
		g.lmdb_used_bytes = st.used_bytes;
		g.lmdb_map_size_bytes = st.map_size;
		g.datasets = st.datasets;
	}
	g.ready = atomic_load(&r->d->ready);
	g.storage_full = r->core->store != NULL && store_full(r->core->store);
	g.uptime_s = clock_now() - r->d->started;
	g.search_split_scans = index_split_scans();
	g.faiss_build = index_faiss_build(NULL);
	if (r->core->jobs != NULL) {
		g.njobs = jobs_stats(r->core->jobs, jobs, sizeof jobs / sizeof jobs[0]);
		g.jobs = jobs;
	}
	text = metrics_render(r->d->metrics, &g, &len);
	if (text == NULL)
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	res->status = 200;
	res->body = text;
	res->len = len;
	res->content_type = "text/plain; version=0.0.4; charset=utf-8";
	return 0;
}

int ops_openapi(struct http_req *r, struct http_res *res)
{
	res->body = malloc(openapi_json_len + 1);
	if (res->body == NULL)
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	memcpy(res->body, openapi_json, openapi_json_len + 1);
	res->len = openapi_json_len;
	res->status = 200;
	res->content_type = "application/json";
	return 0;
}
