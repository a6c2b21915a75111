/* SPDX-License-Identifier: MIT */
/* normalizers: handlers of hubness normalisers (filters/hubnorm.c does the work). */
#include "api/normalizers.h"

#include <jansson.h>
#include <stdio.h>

#include "api/http.h"
#include "daemon/daemon.h"
#include "daemon/err.h"
#include "daemon/log.h"
#include "filters/hubnorm.h"

int normalizers_list(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	struct err e = {0};
	json_t *arr = NULL;
	int rc;

	if (ds == NULL)
		return 0;
	if ((rc = hubnorm_list_json(r->d, ds, &arr, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_json(res, 200, json_pack("{s:o}", "normalizers", arr));
}

int normalizers_get(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "normalizer") : NULL;
	struct err e = {0};
	json_t *v = NULL;
	int rc;

	if (name == NULL)
		return 0;
	if ((rc = hubnorm_get_json(r->d, ds, name, &v, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_json(res, 200, v);
}

int normalizers_put(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "normalizer") : NULL;
	struct err e = {0};
	json_t *body = NULL, *view = NULL;
	uint64_t job = 0;
	int rc, created = 0;

	if (name == NULL || http_body_json(r, res, &body) != 0)
		return 0;
	rc = hubnorm_put(r->d, ds, name, body, &view, &job, &created, &e);
	json_decref(body);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	if (job == 0) /* unchanged */
		return http_json(res, 200, view);
	log_msg(LOG_INFO, "normalizer_put", "dataset=%s normalizer=%s created=%d job=%llu", ds,
	        name, created, (unsigned long long)job);
	return http_accepted(res, job, "normalizer", view);
}

int normalizers_delete(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "normalizer") : NULL;
	struct err e = {0};
	int rc;

	if (name == NULL)
		return 0;
	if ((rc = hubnorm_delete(r->d, ds, name, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	log_msg(LOG_INFO, "normalizer_deleted", "dataset=%s normalizer=%s", ds, name);
	res->status = 204;
	return 0;
}

int normalizers_report(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "normalizer") : NULL;
	struct err e = {0};
	json_t *body = NULL, *out = NULL;
	int rc;

	if (name == NULL || http_body_json(r, res, &body) != 0)
		return 0;
	rc = hubnorm_report(r->d, ds, name, body, &out, &e);
	json_decref(body);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_json(res, 200, out);
}
