/* SPDX-License-Identifier: MIT */
/* adapters: handlers of Cosine Adapters, their pairs and training (search/adapters.h). */
#include "api/adapters_routes.h"

#include <jansson.h>
#include <string.h>

#include "api/http.h"
#include "api/resource.h"
#include "daemon/daemon.h"
#include "lib/err.h"
#include "lib/log.h"
#include "search/adapters.h"

static const struct resource adapter_resource = {
	.param = "adapter",
	.plural = "adapters",
	.deleted = "adapter_deleted",
	.list = adapters_list_json,
	.get = adapters_get_json,
	.del = adapters_delete,
};

int adapters_routes_list(struct http_req *r, struct http_res *res)
{
	return resource_list(r, res, &adapter_resource);
}

int adapters_routes_get(struct http_req *r, struct http_res *res)
{
	return resource_get(r, res, &adapter_resource);
}

int adapters_routes_put(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "adapter") : NULL;
	struct err e = {0};
	json_t *body = NULL, *view = NULL;
	int rc, created = 0;

	if (name == NULL || http_body_json(r, res, &body) != 0)
		return 0;
	rc = adapters_put(r->core, ds, name, body, &view, &created, &e);
	json_decref(body);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	log_msg(LOG_INFO, "adapter_put", "dataset=%s adapter=%s created=%d", ds, name, created);
	return http_json(res, created ? 201 : 200, view);
}

int adapters_routes_delete(struct http_req *r, struct http_res *res)
{
	return resource_delete(r, res, &adapter_resource);
}

int adapters_routes_pairs(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "adapter") : NULL;
	struct err e = {0};
	json_t *out = NULL;
	char mt[64];
	int rc;

	if (name == NULL)
		return 0;
	http_media_type(r, mt, sizeof mt);
	if (strcmp(mt, "application/x-ndjson") != 0 && strcmp(mt, "application/jsonl") != 0) {
		err_set(&e, ERR_MEDIA_TYPE, "unsupported_media_type",
		        "send pairs as application/x-ndjson, not '%s'", mt[0] ? mt : "(none)");
		return http_problem(res, r, ERR_MEDIA_TYPE, &e, NULL);
	}
	if ((rc = adapters_pairs_add(r->core, ds, name, r->body, r->body_len, &out, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	if (json_integer_value(json_object_get(out, "accepted")) == 0) {
		json_int_t rej = json_integer_value(json_object_get(out, "rejected"));

		if (rej == 0) {
			json_decref(out);
			err_set(&e, ERR_MALFORMED, "empty_body", "the body holds no pairs");
			return http_problem(res, r, ERR_MALFORMED, &e, NULL);
		}
		err_set(&e, ERR_INVALID, "no_pairs_accepted",
		        "none of the %lld pairs was accepted; see errors", (long long)rej);
		return http_problem(res, r, ERR_INVALID, &e, out);
	}
	return http_json(res, 200, out);
}

int adapters_routes_train(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "adapter") : NULL;
	struct err e = {0};
	json_t *view = NULL;
	uint64_t job = 0;
	int rc;

	if (name == NULL)
		return 0;
	if ((rc = adapters_train(r->core, ds, name, &job, &view, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	log_msg(LOG_INFO, "adapter_train", "dataset=%s adapter=%s job=%llu", ds, name,
	        (unsigned long long)job);
	return http_accepted(res, job, "adapter", view);
}

/* GET-like reads of one adapter a service answers as a JSON document: 200 with it, or the
 * problem of op's error. */
static int adapter_doc(struct http_req *r, struct http_res *res,
                       int (*op)(struct core *core, const char *dataset, const char *name,
                                 json_t **out, struct err *e))
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "adapter") : NULL;
	struct err e = {0};
	json_t *out = NULL;
	int rc;

	if (name == NULL)
		return 0;
	if ((rc = op(r->core, ds, name, &out, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_json(res, 200, out);
}

int adapters_routes_weights_get(struct http_req *r, struct http_res *res)
{
	return adapter_doc(r, res, adapters_weights_get);
}

int adapters_routes_weights_put(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "adapter") : NULL;
	struct err e = {0};
	json_t *body = NULL, *view = NULL;
	int rc;

	if (name == NULL || http_body_json(r, res, &body) != 0)
		return 0;
	rc = adapters_weights_put(r->core, ds, name, body, &view, &e);
	json_decref(body);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	log_msg(LOG_INFO, "adapter_weights_put", "dataset=%s adapter=%s", ds, name);
	return http_json(res, 200, view);
}

int adapters_routes_partial(struct http_req *r, struct http_res *res)
{
	return adapter_doc(r, res, adapters_partial);
}
