/* SPDX-License-Identifier: MIT */
/* filters: handlers of filter instances, their scoring jobs and statistics. */
#include "api/filters.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/resource.h"
#include "daemon/daemon.h"
#include "lib/err.h"
#include "lib/log.h"
#include "filters/filter.h"
#include "curate/instance.h"
#include "filters/registry.h"

static const struct resource filter_resource = {
	.param = "filter",
	.plural = "filters",
	.deleted = "filter_deleted",
	.list = instance_list_json,
	.get = instance_get_json,
	.del = instance_delete,
};

int filters_list(struct http_req *r, struct http_res *res)
{
	return resource_list(r, res, &filter_resource);
}

int filters_get(struct http_req *r, struct http_res *res)
{
	return resource_get(r, res, &filter_resource);
}

int filters_put(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "filter") : NULL;
	struct err e = {0};
	json_t *body = NULL, *view = NULL;
	uint64_t job = 0;
	int rc, created = 0;

	if (name == NULL || http_body_json(r, res, &body) != 0)
		return 0;
	/* the data checks first (a CoLoR-Filter prior that overlaps the pool): 422, nothing stored */
	rc = instance_check(r->core, ds, body, &e);
	if (rc == 0)
		rc = instance_put(r->core, ds, name, body, &view, &job, &created, &e);
	json_decref(body);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	if (job == 0) /* unchanged */
		return http_json(res, 200, view);
	log_msg(LOG_INFO, "filter_put", "dataset=%s filter=%s created=%d job=%llu", ds, name,
	        created, (unsigned long long)job);
	return http_accepted(res, job, "filter", view);
}

int filters_partial(struct http_req *r, struct http_res *res)
{
	return http_dataset_op(r, res, instance_partial);
}

int filters_delete(struct http_req *r, struct http_res *res)
{
	return resource_delete(r, res, &filter_resource);
}

int filters_score(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "filter") : NULL;
	struct err e = {0};
	json_t *view = NULL;
	uint64_t job = 0;
	int rc;

	if (name == NULL)
		return 0;
	if ((rc = instance_rescore(r->core, ds, name, &job, &e)) != 0 ||
	    (rc = instance_get_json(r->core, ds, name, &view, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_accepted(res, job, "filter", view);
}

/* The histogram's range ?lo=&hi= (both or neither, finite, lo <= hi): 1 when given, 0 when
 * not, -1 with e when bad. */
static int stats_range(struct http_req *r, double range[2], struct err *e)
{
	const char *q[2] = {http_query(r, "lo"), http_query(r, "hi")};
	char *end;

	if (q[0] == NULL && q[1] == NULL)
		return 0;
	for (int i = 0; i < 2; i++) {
		if (q[i] == NULL) {
			err_set(e, ERR_MALFORMED, "bad_query", "lo and hi come together");
			return -1;
		}
		range[i] = strtod(q[i], &end);
		if (end == q[i] || *end != '\0' || !isfinite(range[i])) {
			err_set(e, ERR_MALFORMED, "bad_query", "%s must be a finite number",
			        i ? "hi" : "lo");
			return -1;
		}
	}
	if (range[0] > range[1]) {
		err_set(e, ERR_MALFORMED, "bad_query", "lo must not be above hi");
		return -1;
	}
	return 1;
}

int filters_stats(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "filter") : NULL;
	const char *qb = http_query(r, "bins"), *qt = http_query(r, "threshold");
	struct err e = {0};
	double threshold = NAN, range[2];
	unsigned long bins = 10;
	json_t *v = NULL;
	char *end;
	int rc;

	if (name == NULL)
		return 0;
	if (qb != NULL) {
		errno = 0;
		bins = strtoul(qb, &end, 10);
		if (errno != 0 || end == qb || *end != '\0' || bins < 1 || bins > 1000) {
			err_set(&e, ERR_MALFORMED, "bad_query", "bins must be an integer in 1..1000");
			return http_problem(res, r, ERR_MALFORMED, &e, NULL);
		}
	}
	if (qt != NULL) {
		threshold = strtod(qt, &end);
		if (end == qt || *end != '\0' || !isfinite(threshold)) {
			err_set(&e, ERR_MALFORMED, "bad_query", "threshold must be a finite number");
			return http_problem(res, r, ERR_MALFORMED, &e, NULL);
		}
	}
	if ((rc = stats_range(r, range, &e)) < 0)
		return http_problem(res, r, ERR_MALFORMED, &e, NULL);
	rc = instance_stats_json(r->core, ds, name, (unsigned)bins, threshold, rc ? range : NULL, &v,
	                         &e);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_json(res, 200, v);
}

int filters_types(struct http_req *r, struct http_res *res)
{
	size_t n;
	const struct filter_ops *const *t = registry_table(&n);
	json_t *arr = json_array();

	(void)r;
	for (size_t i = 0; i < n; i++) {
		json_t *reasons = json_array();

		for (size_t k = 0; t[i]->reasons != NULL && t[i]->reasons[k] != NULL; k++)
			json_array_append_new(reasons, json_string(t[i]->reasons[k]));
		json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:b, s:b, s:o}", "name",
		                                     t[i]->name, "summary", t[i]->summary, "cheap",
		                                     t[i]->cheap, "fits", t[i]->fit != NULL,
		                                     "rescores", t[i]->rescore != NULL, "reasons",
		                                     reasons));
	}
	return http_json(res, 200, json_pack("{s:o}", "filter_types", arr));
}

int filters_record(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "filter") : NULL;
	struct err e = {0};
	json_t *v = NULL;
	int rc;

	if (name == NULL)
		return 0;
	rc = instance_record_json(r->core, ds, name, r->params[2], strlen(r->params[2]), &v, &e);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_json(res, 200, v);
}

int filters_sweep(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "filter") : NULL;
	struct err e = {0};
	json_t *body = NULL, *v = NULL;
	int rc;

	if (name == NULL || http_body_json(r, res, &body) != 0)
		return 0;
	rc = instance_sweep_json(r->core, ds, name, body, &v, &e);
	json_decref(body);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_json(res, 200, v);
}
