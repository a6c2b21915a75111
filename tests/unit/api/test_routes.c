/* SPDX-License-Identifier: MIT */
/* Tests of api/routes: the table is sorted, every route is in the OpenAPI document, and the
 * matcher's rules (segments, ":verb" suffixes, {x*} with a suffix, the longest template wins,
 * 405 with Allow). */
#include <jansson.h>
#include <string.h>

#include "api/openapi.h"
#include "api/routes.h"
#include "lib/err.h"
#include "tests/harness.h"

static void test_sorted(void)
{
	size_t n;
	const struct route *t = routes_table(&n);

	CHECK(n > 10);
	for (size_t i = 1; i < n; i++) {
		int c = strcmp(t[i - 1].tmpl, t[i].tmpl);

		CHECK(c < 0 || (c == 0 && strcmp(t[i - 1].method, t[i].method) < 0));
	}
}

/* "/v1/datasets/{name}/records/{id*}" -> "/v1/datasets/{name}/records/{id}" */
static void openapi_path(const char *tmpl, char *out, size_t size)
{
	size_t o = 0;

	for (const char *p = tmpl; *p != '\0' && o + 1 < size; p++)
		if (*p != '*')
			out[o++] = *p;
	out[o] = '\0';
}

static void test_openapi_has_every_route(void)
{
	size_t n;
	const struct route *t = routes_table(&n);
	json_t *doc = json_loads(openapi_json, 0, NULL), *paths;

	CHECK(doc != NULL);
	paths = json_object_get(doc, "paths");
	for (size_t i = 0; i < n; i++) {
		char path[256], method[16];
		json_t *item;
		size_t k;

		openapi_path(t[i].tmpl, path, sizeof path);
		for (k = 0; t[i].method[k] != '\0' && k + 1 < sizeof method; k++)
			method[k] = (char)(t[i].method[k] - 'A' + 'a');
		method[k] = '\0';
		item = json_object_get(paths, path);
		if (item == NULL || json_object_get(item, method) == NULL)
			harness_fail(__FILE__, __LINE__, "%s %s is not in openapi.json", t[i].method,
			             path);
	}
	json_decref(doc);
}

static const char *param(const char *path, const struct route_match *m, size_t i, char *buf)
{
	memcpy(buf, path + m->param_off[i], m->param_len[i]);
	buf[m->param_len[i]] = '\0';
	return buf;
}

static void test_match(void)
{
	struct route_match m;
	char b1[128], b2[128];
	const char *p;

	p = "/v1/datasets/pool/filters/clip:score";
	CHECK_INT(routes_match("POST", p, &m), 0);
	CHECK_STR(m.route->tmpl, "/v1/datasets/{name}/filters/{filter}:score");
	CHECK_STR(param(p, &m, 0, b1), "pool");
	CHECK_STR(param(p, &m, 1, b2), "clip");

	p = "/v1/datasets/pool/filters/clip";
	CHECK_INT(routes_match("PUT", p, &m), 0);
	CHECK_STR(m.route->tmpl, "/v1/datasets/{name}/filters/{filter}");
	CHECK_STR(param(p, &m, 1, b2), "clip");

	/* an id with slashes, then the decisions suffix */
	p = "/v1/datasets/pool/records/a/b/decisions";
	CHECK_INT(routes_match("GET", p, &m), 0);
	CHECK_STR(m.route->tmpl, "/v1/datasets/{name}/records/{id*}/decisions");
	CHECK_STR(param(p, &m, 1, b2), "a/b");

	p = "/v1/datasets/pool/records/a/b";
	CHECK_INT(routes_match("GET", p, &m), 0);
	CHECK_STR(m.route->tmpl, "/v1/datasets/{name}/records/{id*}");
	CHECK_STR(param(p, &m, 1, b2), "a/b");

	/* DELETE exists for the record but not for decisions: the record route answers */
	p = "/v1/datasets/pool/records/x/decisions";
	CHECK_INT(routes_match("DELETE", p, &m), 0);
	CHECK_STR(m.route->tmpl, "/v1/datasets/{name}/records/{id*}");

	p = "/v1/datasets/pool/subsets/s1:export";
	CHECK_INT(routes_match("GET", p, &m), 0);
	CHECK_STR(m.route->tmpl, "/v1/datasets/{name}/subsets/{subset}:export");
	CHECK_STR(param(p, &m, 1, b2), "s1");

	CHECK_INT(routes_match("POST", "/v1/jobs/7", &m), ERR_METHOD);
	CHECK(strstr(m.allow, "GET") != NULL && strstr(m.allow, "DELETE") != NULL);
	CHECK_INT(routes_match("GET", "/v1/nothing", &m), ERR_NOT_FOUND);
}

int main(void)
{
	HARNESS_RUN(test_sorted);
	HARNESS_RUN(test_openapi_has_every_route);
	HARNESS_RUN(test_match);
	return harness_done();
}
