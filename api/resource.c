/* SPDX-License-Identifier: MIT */
/* resource: list, get and delete of a dataset's named resources (see resource.h). */
#include "api/resource.h"

#include "api/http.h"
#include "lib/err.h"
#include "lib/log.h"

int resource_list(struct http_req *r, struct http_res *res, const struct resource *k)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	struct err e = {0};
	json_t *arr = NULL;
	int rc;

	if (ds == NULL)
		return 0;
	if ((rc = k->list(r->core, ds, &arr, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_json(res, 200, json_pack("{s:o}", k->plural, arr));
}

int resource_get(struct http_req *r, struct http_res *res, const struct resource *k)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, k->param) : NULL;
	struct err e = {0};
	json_t *v = NULL;
	int rc;

	if (name == NULL)
		return 0;
	if ((rc = k->get(r->core, ds, name, &v, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_json(res, 200, v);
}

int resource_delete(struct http_req *r, struct http_res *res, const struct resource *k)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, k->param) : NULL;
	struct err e = {0};
	int rc;

	if (name == NULL)
		return 0;
	if ((rc = k->del(r->core, ds, name, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	log_msg(LOG_INFO, k->deleted, "dataset=%s %s=%s", ds, k->param, name);
	res->status = 204;
	return 0;
}
