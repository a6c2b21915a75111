/* SPDX-License-Identifier: MIT */
/* search: handlers of indexes and similarity search. */
#include "api/search.h"

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
#include "search/catalog.h"

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
	rc = catalog_put(r->core, ds, space, body, &view, &job, &created, &e);
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

/* A number from query-string text as JSON: an integer, a real, or the text itself when it
 * is not a number (the JSON request's own validation then names the problem). */
static json_t *qs_number(const char *v)
{
	char *end;
	long long i;
	double x;

	errno = 0;
	i = strtoll(v, &end, 10);
	if (*v != '\0' && *end == '\0' && errno == 0)
		return json_integer(i);
	x = strtod(v, &end);
	if (*v != '\0' && *end == '\0' && isfinite(x))
		return json_real(x);
	return json_string(v);
}

struct rows_args {
	json_t *body, *params;
	int f16;
	struct err *e;
};

/* One query argument of a search whose body is raw query rows. */
static int rows_arg(void *ctx, const char *name, const char *value)
{
	static const char *const strings[] = {"space", "metric", "subset", NULL};
	struct rows_args *a = ctx;
	const char *v = value != NULL ? value : "";

	for (size_t i = 0; strings[i] != NULL; i++)
		if (strcmp(name, strings[i]) == 0)
			return json_object_set_new(a->body, name, json_string(v));
	if (strcmp(name, "limit") == 0 || strcmp(name, "score_threshold") == 0)
		return json_object_set_new(a->body, name, qs_number(v));
	if (strcmp(name, "ef_search") == 0 || strcmp(name, "nprobe") == 0)
		return json_object_set_new(a->params, name, qs_number(v));
	if (strcmp(name, "exact") == 0) {
		if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
			return err_set(a->e, ERR_INVALID, "bad_query", "exact must be true or false");
		return json_object_set_new(a->params, name, json_boolean(strcmp(v, "true") == 0));
	}
	if (strcmp(name, "with") == 0) {
		json_t *w = json_array();

		for (const char *p = v; w != NULL && *p != '\0';) {
			size_t n = strcspn(p, ",");

			json_array_append_new(w, json_stringn(p, n));
			p += n + (p[n] == ',');
		}
		return json_object_set_new(a->body, name, w);
	}
	if (strcmp(name, "dtype") == 0) {
		if (strcmp(v, "f32") != 0 && strcmp(v, "f16") != 0)
			return err_set(a->e, ERR_INVALID, "bad_query", "dtype must be f32 or f16");
		a->f16 = strcmp(v, "f16") == 0;
		return 0;
	}
	return err_set(a->e, ERR_INVALID, "unknown_field",
	               "unknown query parameter '%s' (a body of vector rows takes space, limit, "
	               "score_threshold, metric, subset, with, ef_search, nprobe, exact, dtype)",
	               name);
}

/* The parameters of a search whose body is raw query rows (application/octet-stream): the
 * query string, as the JSON body it stands for. */
static int rows_request(const struct http_req *r, json_t **body, int *f16, struct err *e)
{
	struct rows_args a = {json_object(), json_object(), 0, e};
	int rc;

	if (a.body == NULL || a.params == NULL) {
		json_decref(a.body);
		json_decref(a.params);
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	rc = http_query_each(r, rows_arg, &a);
	if (rc == 0 && json_object_size(a.params) > 0)
		rc = json_object_set(a.body, "params", a.params) == 0
		             ? 0
		             : err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	json_decref(a.params);
	if (rc != 0) {
		if (e->code == 0) /* a json_object_set_new that failed */
			err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		json_decref(a.body);
		return e->code;
	}
	*body = a.body;
	*f16 = a.f16;
	return 0;
}

/* The query: a JSON body, or raw rows of query vectors (application/octet-stream) with the
 * other parameters in the query string, answered as a batch. */
static int run(struct http_req *r, struct http_res *res, int count)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	struct err e = {0};
	json_t *body = NULL;
	struct catalog_rows rows = {0};
	char *out = NULL;
	size_t len = 0;
	char mt[64];
	int rc;

	if (ds == NULL)
		return 0;
	if (strcmp(http_media_type(r, mt, sizeof mt), "application/octet-stream") == 0) {
		if ((rc = rows_request(r, &body, &rows.f16, &e)) != 0)
			return http_problem(res, r, rc, &e, NULL);
		rows.data = r->body;
		rows.len = r->body_len;
	} else if (http_body_json(r, res, &body) != 0) {
		return 0;
	}
	rc = catalog_search(r->core, ds, body, rows.data != NULL ? &rows : NULL, count, &out, &len,
	                    &e);
	json_decref(body);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	res->status = 200;
	res->content_type = "application/json";
	res->body = out;
	res->len = len;
	return 0;
}

int search_post(struct http_req *r, struct http_res *res)
{
	return run(r, res, 0);
}

int search_count(struct http_req *r, struct http_res *res)
{
	return run(r, res, 1);
}
