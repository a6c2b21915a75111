/* SPDX-License-Identifier: MIT */
/* datasets: PUT (create with a schema, idempotent), GET one, GET all, DELETE. */
#include "api/datasets.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/codec.h"
#include "api/http.h"
#include "daemon/daemon.h"
#include "lib/err.h"
#include "core/jobs.h"
#include "search/catalog.h"
#include "lib/log.h"
#include "store/store.h"

/* The {name} parameter, checked; on a bad name fills res and returns NULL. */
static const char *dataset_name(struct http_req *r, struct http_res *res)
{
	struct err e = {0};

	if (store_name_valid(r->params[0]))
		return r->params[0];
	err_set(&e, ERR_INVALID, "invalid_name",
	        "a dataset name must match [A-Za-z0-9._-]{1,64}");
	http_problem(res, r, ERR_INVALID, &e, NULL);
	return NULL;
}

/* GET /v1/datasets?page_size=N&page_token=T: datasets in name order, at most page_size
 * (default and most DATASETS_PAGE_MAX); next_page_token (the last name, hex) when more
 * follow. Keyset paging: datasets created or deleted between pages neither repeat nor
 * shift the others. */
enum { DATASETS_PAGE_MAX = 1000 };

static int name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct store_dataset_info *)a)->name,
	              ((const struct store_dataset_info *)b)->name);
}

static int page_args(struct http_req *r, size_t *size, char *after, size_t after_size,
                     struct err *e)
{
	const char *qs = http_query(r, "page_size"), *qt = http_query(r, "page_token");
	char *end;
	unsigned long long v;
	size_t n;

	*size = DATASETS_PAGE_MAX;
	after[0] = '\0';
	if (qs != NULL) {
		errno = 0;
		v = strtoull(qs, &end, 10);
		if (qs[0] < '0' || qs[0] > '9' || *end != '\0' || errno != 0 || v < 1 ||
		    v > DATASETS_PAGE_MAX)
			return err_set(e, ERR_MALFORMED, "bad_page_size",
			               "page_size must be a whole number from 1 to %d, got '%s'",
			               DATASETS_PAGE_MAX, qs);
		*size = (size_t)v;
	}
	if (qt != NULL) {
		n = strlen(qt);
		if (n == 0 || n % 2 != 0 || n / 2 >= after_size)
			return err_set(e, ERR_MALFORMED, "bad_page_token", "page_token is not one of ours");
		for (size_t i = 0; i < n / 2; i++) {
			unsigned hi, lo;

			if (sscanf(qt + 2 * i, "%1x%1x", &hi, &lo) != 2 || (hi << 4 | lo) == 0)
				return err_set(e, ERR_MALFORMED, "bad_page_token",
				               "page_token is not one of ours");
			after[i] = (char)(hi << 4 | lo);
		}
		after[n / 2] = '\0';
	}
	return 0;
}

int datasets_list(struct http_req *r, struct http_res *res)
{
	struct store_dataset_info *all = NULL;
	struct err e = {0};
	char after[STORE_NAME_MAX + 1], token[2 * STORE_NAME_MAX + 1];
	size_t n = 0, size, i, shown = 0;
	json_t *arr, *out;
	int rc;

	if ((rc = page_args(r, &size, after, sizeof after, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	rc = store_dataset_list(r->core->store, &all, &n, &e);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	if (n > 1)
		qsort(all, n, sizeof *all, name_cmp);
	for (i = 0; i < n && after[0] != '\0' && strcmp(all[i].name, after) <= 0; i++)
		;
	arr = json_array();
	for (; i < n && shown < size; i++, shown++)
		json_array_append_new(arr, codec_dataset_json(&all[i]));
	out = json_pack("{s:o}", "datasets", arr);
	if (out != NULL && i < n && shown > 0) {
		const char *last = all[i - 1].name;
		size_t k;

		for (k = 0; last[k] != '\0'; k++)
			snprintf(token + 2 * k, 3, "%02x", (unsigned char)last[k]);
		token[2 * k] = '\0';
		json_object_set_new(out, "next_page_token", json_string(token));
	}
	free(all);
	return http_json(res, 200, out);
}

int datasets_get(struct http_req *r, struct http_res *res)
{
	struct store_dataset_info ds;
	struct err e = {0};
	const char *name = dataset_name(r, res);
	int rc;

	if (name == NULL)
		return 0;
	rc = store_dataset_get(r->core->store, name, &ds, &e);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_json(res, 200, codec_dataset_json(&ds));
}

int datasets_put(struct http_req *r, struct http_res *res)
{
	struct store_schema schema;
	struct store_dataset_info ds;
	struct err e = {0};
	const char *name = dataset_name(r, res);
	json_t *body;
	char mt[64];
	int rc, created = 0;

	if (name == NULL)
		return 0;
	http_media_type(r, mt, sizeof mt);
	if (strcmp(mt, "application/json") != 0) {
		err_set(&e, ERR_MEDIA_TYPE, "unsupported_media_type",
		        "send the schema as application/json, not '%s'", mt[0] ? mt : "(none)");
		return http_problem(res, r, ERR_MEDIA_TYPE, &e, NULL);
	}
	if (http_body_json(r, res, &body) != 0)
		return 0;
	rc = codec_parse_schema(body, &schema, &e);
	json_decref(body);
	if (rc == 0)
		rc = store_dataset_create(r->core->store, name, &schema, &created, &e);
	if (rc == 0)
		rc = store_dataset_get(r->core->store, name, &ds, &e);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	if (created)
		log_msg(LOG_INFO, "dataset_created", "dataset=%s spaces=%u", name,
		        schema.nspaces);
	snprintf(res->location, sizeof res->location, "/v1/datasets/%s", name);
	return http_json(res, created ? 201 : 200, codec_dataset_json(&ds));
}

int datasets_delete(struct http_req *r, struct http_res *res)
{
	struct store_dataset_info ds;
	struct err e = {0};
	const char *name = dataset_name(r, res);
	int rc;

	if (name == NULL)
		return 0;
	if (store_dataset_get(r->core->store, name, &ds, NULL) == 0) {
		jobs_cancel_matching(r->core->jobs, ds.id, NULL, NULL, 0); /* before its data goes */
		catalog_drop_dataset(r->core->catalog, ds.id);
	}
	rc = store_dataset_delete(r->core->store, name, &e);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	log_msg(LOG_INFO, "dataset_deleted", "dataset=%s", name);
	res->status = 204;
	return 0;
}
