/* SPDX-License-Identifier: MIT */
/* search: handlers of indexes and similarity search. */
#include "api/search.h"

#include <jansson.h>
#include <stdio.h>

#include "api/http.h"
#include "api/resource.h"
#include "daemon/daemon.h"
#include "daemon/err.h"
#include "daemon/log.h"
#include "index/catalog.h"

static const struct resource index_resource = {
	.param = "space",
	.plural = "indexes",
	.deleted = "index_deleted",
	.list = catalog_list_json,
	.get = catalog_get_json,
	.del = catalog_delete,
};

int search_indexes_list(struct http_req *r, struct http_res *res)
{
	return resource_list(r, res, &index_resource);
}

int search_index_get(struct http_req *r, struct http_res *res)
{
	return resource_get(r, res, &index_resource);
}

int search_index_put(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *space = ds ? http_name_param(r, res, 1, "space") : NULL;
	struct err e = {0};
	json_t *body = NULL, *view = NULL;
	uint64_t job = 0;
	int rc, created = 0;

	if (space == NULL || http_body_json(r, res, &body) != 0)
		return 0;
	rc = catalog_put(r->d, ds, space, body, &view, &job, &created, &e);
	json_decref(body);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	if (job == 0)
		return http_json(res, 200, view);
	log_msg(LOG_INFO, "index_put", "dataset=%s space=%s job=%llu", ds, space,
	        (unsigned long long)job);
	return http_accepted(res, job, "index", view);
}

int search_index_delete(struct http_req *r, struct http_res *res)
{
	return resource_delete(r, res, &index_resource);
}

static int run(struct http_req *r, struct http_res *res, int count)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	struct err e = {0};
	json_t *body = NULL, *out = NULL;
	int rc;

	if (ds == NULL || http_body_json(r, res, &body) != 0)
		return 0;
	rc = catalog_search(r->d, ds, body, count, &out, &e);
	json_decref(body);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_json(res, 200, out);
}

int search_post(struct http_req *r, struct http_res *res)
{
	return run(r, res, 0);
}

int search_count(struct http_req *r, struct http_res *res)
{
	return run(r, res, 1);
}
