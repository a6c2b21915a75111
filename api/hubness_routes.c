/* SPDX-License-Identifier: MIT */
/* normalizers: handlers of hubness normalisers (search/normalizers.c does the work). */
#include "api/hubness_routes.h"

#include <jansson.h>
#include <stdio.h>

#include "api/http.h"
#include "api/resource.h"
#include "daemon/daemon.h"
#include "lib/err.h"
#include "lib/log.h"
#include "search/normalizers.h"

static const struct resource normalizer_resource = {
	.param = "normalizer",
	.plural = "normalizers",
	.deleted = "normalizer_deleted",
	.list = normalizers_list_json,
	.get = normalizers_get_json,
	.del = normalizers_delete,
};

int hubness_routes_list(struct http_req *r, struct http_res *res)
{
	return resource_list(r, res, &normalizer_resource);
}

int hubness_routes_get(struct http_req *r, struct http_res *res)
{
	return resource_get(r, res, &normalizer_resource);
}

int hubness_routes_put(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "normalizer") : NULL;
	struct err e = {0};
	json_t *body = NULL, *view = NULL;
	uint64_t job = 0;
	int rc, created = 0;

	if (name == NULL || http_body_json(r, res, &body) != 0)
		return 0;
	rc = normalizers_put(r->core, ds, name, body, &view, &job, &created, &e);
	json_decref(body);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	if (job == 0) /* unchanged */
		return http_json(res, 200, view);
	log_msg(LOG_INFO, "normalizer_put", "dataset=%s normalizer=%s created=%d job=%llu", ds,
	        name, created, (unsigned long long)job);
	return http_accepted(res, job, "normalizer", view);
}

int hubness_routes_delete(struct http_req *r, struct http_res *res)
{
	return resource_delete(r, res, &normalizer_resource);
}

int hubness_routes_report(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "normalizer") : NULL;
	struct err e = {0};
	json_t *body = NULL, *out = NULL;
	int rc;

	if (name == NULL || http_body_json(r, res, &body) != 0)
		return 0;
	rc = normalizers_report(r->core, ds, name, body, &out, &e);
	json_decref(body);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_json(res, 200, out);
}

/* A POST or GET on one normaliser answered by fn (body NULL for a GET). */
static int one_call(struct http_req *r, struct http_res *res, int with_body,
                    int (*fn)(struct core *, const char *, const char *, const json_t *,
                              json_t **, struct err *))
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "normalizer") : NULL;
	struct err e = {0};
	json_t *body = NULL, *out = NULL;
	int rc;

	if (name == NULL || (with_body && http_body_json(r, res, &body) != 0))
		return 0;
	rc = fn(r->core, ds, name, body, &out, &e);
	json_decref(body);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_json(res, 200, out);
}

static int topk_fn(struct core *core, const char *ds, const char *name, const json_t *body,
                   json_t **out, struct err *e)
{
	(void)body;
	return normalizers_topk_json(core, ds, name, out, e);
}

int hubness_routes_topk(struct http_req *r, struct http_res *res)
{
	return one_call(r, res, 0, topk_fn);
}

int hubness_routes_activation(struct http_req *r, struct http_res *res)
{
	return one_call(r, res, 1, normalizers_activation);
}

int hubness_routes_stats(struct http_req *r, struct http_res *res)
{
	return one_call(r, res, 1, normalizers_stats_json);
}
