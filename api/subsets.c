/* SPDX-License-Identifier: MIT */
/* subsets: handlers of subsets (materialise, provenance, export) and record decisions. */
#include "api/subsets.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/recommend.h"
#include "api/resource.h"
#include "daemon/daemon.h"
#include "lib/err.h"
#include "lib/log.h"
#include "curate/subset.h"

static const struct resource subset_resource = {
	.param = "subset",
	.plural = "subsets",
	.deleted = "subset_deleted",
	.list = subset_list_json,
	.get = subset_get_json,
	.del = subset_delete,
};

int subsets_list(struct http_req *r, struct http_res *res)
{
	return resource_list(r, res, &subset_resource);
}

int subsets_get(struct http_req *r, struct http_res *res)
{
	return resource_get(r, res, &subset_resource);
}

int subsets_probe(struct http_req *r, struct http_res *res)
{
	return http_dataset_op(r, res, subset_probe);
}

int subsets_put(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "subset") : NULL;
	struct err e = {0};
	json_t *body = NULL, *view = NULL, *errors = NULL;
	uint64_t job = 0;
	int rc, created = 0;

	if (name == NULL || http_body_json(r, res, &body) != 0)
		return 0;
	/* steps {"filter": f, "recommend": {...}} become the top fraction they recommend */
	if ((rc = recommend_resolve_steps(r->core, ds, body, &errors, &e)) != 0) {
		json_decref(body);
		return http_problem(res, r, rc, &e,
		                    errors != NULL ? json_pack("{s:o}", "errors", errors) : NULL);
	}
	rc = subset_put(r->core, ds, name, body, &view, &job, &created, &e);
	json_decref(body);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	log_msg(LOG_INFO, "subset_put", "dataset=%s subset=%s created=%d job=%llu", ds, name,
	        created, (unsigned long long)job);
	return http_accepted(res, job, "subset", view);
}

int subsets_delete(struct http_req *r, struct http_res *res)
{
	return resource_delete(r, res, &subset_resource);
}

static int uint_query(struct http_req *r, const char *key, unsigned long def,
                      unsigned long max, unsigned long *out, struct err *e)
{
	const char *q = http_query(r, key);
	char *end;

	*out = def;
	if (q == NULL)
		return 0;
	errno = 0;
	*out = strtoul(q, &end, 10);
	if (errno != 0 || end == q || *end != '\0' || *out > max)
		return err_set(e, ERR_MALFORMED, "bad_query", "%s must be an integer in 0..%lu", key,
		               max);
	return 0;
}

static ssize_t export_read(void *ctx, char *buf, size_t max)
{
	return subset_export_read(ctx, buf, max);
}

static void export_free(void *ctx)
{
	subset_export_close(ctx);
}

int subsets_export(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "subset") : NULL;
	const char *qf = http_query(r, "format"), *qfields = http_query(r, "fields");
	const char *qsum = http_query(r, "summary");
	enum subset_format fmt = SUBSET_NDJSON;
	struct subset_export *x = NULL;
	const char *ctype = NULL;
	struct err e = {0};
	unsigned long slices, slice_id;
	unsigned fields = SUBSET_F_ID;
	int rc;

	if (name == NULL)
		return 0;
	if (qf == NULL || strcmp(qf, "ndjson") == 0) {
		fmt = SUBSET_NDJSON;
	} else if (strcmp(qf, "ids") == 0) {
		fmt = SUBSET_IDS;
	} else if (strcmp(qf, "npy") == 0) {
		fmt = SUBSET_NPY;
	} else {
		err_set(&e, ERR_MALFORMED, "bad_query", "format must be ndjson, ids or npy");
		return http_problem(res, r, ERR_MALFORMED, &e, NULL);
	}
	if ((rc = uint_query(r, "slices", 1, 65536, &slices, &e)) != 0 ||
	    (rc = uint_query(r, "slice_id", 0, 65535, &slice_id, &e)) != 0 ||
	    (qfields != NULL && (rc = subset_fields_parse(qfields, &fields, &e)) != 0))
		return http_problem(res, r, rc, &e, NULL);
	if (qfields != NULL && fmt != SUBSET_NDJSON) {
		err_set(&e, ERR_MALFORMED, "bad_query", "fields applies to format=ndjson only");
		return http_problem(res, r, ERR_MALFORMED, &e, NULL);
	}
	if (qsum != NULL && strcmp(qsum, "true") != 0 && strcmp(qsum, "false") != 0) {
		err_set(&e, ERR_MALFORMED, "bad_query", "summary must be true or false, got '%s'", qsum);
		return http_problem(res, r, ERR_MALFORMED, &e, NULL);
	}
	if (qsum != NULL && fmt != SUBSET_NDJSON) {
		err_set(&e, ERR_MALFORMED, "bad_query", "summary applies to format=ndjson only");
		return http_problem(res, r, ERR_MALFORMED, &e, NULL);
	}
	rc = subset_export_open(r->core, ds, name, fmt, fields, (unsigned)slices, (unsigned)slice_id,
	                        qsum != NULL && strcmp(qsum, "true") == 0, &x, &ctype, &e);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	res->status = 200;
	res->content_type = ctype;
	res->stream = export_read;
	res->stream_free = export_free;
	res->stream_ctx = x;
	if (fmt == SUBSET_NPY)
		res->disposition = "attachment; filename=\"subset.npy\"";
	return 0;
}

int subsets_decisions(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *subset = http_query(r, "subset");
	struct err e = {0};
	json_t *v = NULL;
	int rc;

	if (ds == NULL)
		return 0;
	if (subset == NULL) {
		err_set(&e, ERR_MALFORMED, "bad_query", "?subset=NAME is required");
		return http_problem(res, r, ERR_MALFORMED, &e, NULL);
	}
	rc = subset_decisions_json(r->core, ds, r->params[1], strlen(r->params[1]), subset, &v, &e);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_json(res, 200, v);
}
