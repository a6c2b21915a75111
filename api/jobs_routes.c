/* SPDX-License-Identifier: MIT */
/* jobs_routes: handlers of /v1/jobs. */
#include "api/jobs_routes.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>

#include "api/http.h"
#include "daemon/daemon.h"
#include "lib/err.h"
#include "core/jobs.h"
#include "store/store.h"

/* The {id} parameter as a job id; fills res with a 404 when it is not one. */
static int job_param(struct http_req *r, struct http_res *res, uint64_t *id)
{
	struct err e = {0};
	char *end;

	errno = 0;
	*id = strtoull(r->params[0], &end, 10);
	if (errno == 0 && end != r->params[0] && *end == '\0' && *id > 0)
		return 0;
	err_set(&e, ERR_NOT_FOUND, "job_not_found", "no job '%.64s'", r->params[0]);
	http_problem(res, r, ERR_NOT_FOUND, &e, NULL);
	return -1;
}

static int list(struct http_req *r, struct http_res *res, uint32_t ds)
{
	const char *ql = http_query(r, "limit");
	struct err e = {0};
	unsigned long limit = 100;
	json_t *arr = NULL;
	char *end;
	int rc;

	if (ql != NULL) {
		errno = 0;
		limit = strtoul(ql, &end, 10);
		if (errno != 0 || end == ql || *end != '\0' || limit < 1 || limit > 10000) {
			err_set(&e, ERR_MALFORMED, "bad_query", "limit must be an integer in 1..10000");
			return http_problem(res, r, ERR_MALFORMED, &e, NULL);
		}
	}
	if ((rc = jobs_list_json(r->core->jobs, ds, limit, &arr, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_json(res, 200, json_pack("{s:o}", "jobs", arr));
}

int jobs_routes_list(struct http_req *r, struct http_res *res)
{
	return list(r, res, 0);
}

int jobs_routes_list_dataset(struct http_req *r, struct http_res *res)
{
	const char *name = http_name_param(r, res, 0, "dataset");
	struct store_dataset_info ds;
	struct err e = {0};
	int rc;

	if (name == NULL)
		return 0;
	if ((rc = store_dataset_get(r->core->store, name, &ds, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	return list(r, res, ds.id);
}

int jobs_routes_get(struct http_req *r, struct http_res *res)
{
	struct err e = {0};
	json_t *v = NULL;
	uint64_t id;
	int rc;

	if (job_param(r, res, &id) != 0)
		return 0;
	if ((rc = jobs_get_json(r->core->jobs, id, &v, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_json(res, 200, v);
}

int jobs_routes_cancel(struct http_req *r, struct http_res *res)
{
	struct err e = {0};
	json_t *v = NULL;
	uint64_t id;
	int rc;

	if (job_param(r, res, &id) != 0)
		return 0;
	if ((rc = jobs_cancel(r->core->jobs, id, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	if ((rc = jobs_get_json(r->core->jobs, id, &v, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_json(res, 202, v);
}
