/* SPDX-License-Identifier: MIT */
/* resource: the list, get and delete handlers that every named resource of a dataset shares
 * (filters, subsets, indexes, adapters, hubness normalisers). A handler file describes its
 * resource once (struct resource) and its list/get/delete handlers call these. */
#ifndef WINNOW_RESOURCE_H
#define WINNOW_RESOURCE_H

#include <jansson.h>

struct core;
struct err;
struct http_req;
struct http_res;

struct resource {
	const char *param;    /* the path parameter after the dataset, as problems name it: "filter" */
	const char *plural;   /* the member of a list answer: "filters" */
	const char *deleted;  /* the log event of a delete: "filter_deleted" */
	int (*list)(struct core *core, const char *dataset, json_t **out, struct err *e);
	int (*get)(struct core *core, const char *dataset, const char *name, json_t **out,
	           struct err *e);
	int (*del)(struct core *core, const char *dataset, const char *name, struct err *e);
};

/* GET /v1/datasets/{name}/<plural>: {"<plural>": [...]}. */
int resource_list(struct http_req *r, struct http_res *res, const struct resource *k);

/* GET /v1/datasets/{name}/<plural>/{<param>}: the resource's view. */
int resource_get(struct http_req *r, struct http_res *res, const struct resource *k);

/* DELETE /v1/datasets/{name}/<plural>/{<param>}: 204, logged as k->deleted. */
int resource_delete(struct http_req *r, struct http_res *res, const struct resource *k);

#endif
