/* SPDX-License-Identifier: MIT */
/* datasets: PUT (create with a schema, idempotent), GET one, GET all, DELETE. */
#include "api/datasets.h"

#include <jansson.h>
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

int datasets_list(struct http_req *r, struct http_res *res)
{
	struct store_dataset_info *all = NULL;
	struct err e = {0};
	size_t n = 0;
	json_t *arr;
	int rc;

	rc = store_dataset_list(r->core->store, &all, &n, &e);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, codec_dataset_json(&all[i]));
	free(all);
	return http_json(res, 200, json_pack("{s:o}", "datasets", arr));
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
