/* SPDX-License-Identifier: MIT */
/* routes: every route winnowd serves, in one sorted const table, and the matcher. */
#include "api/routes.h"

#include <string.h>

#include "api/datasets.h"
#include "api/ops.h"
#include "api/records.h"
#include "daemon/err.h"

/* Sorted by template, then method. Keep api/openapi.json in step (a test checks it). */
static const struct route table[] = {
	{"GET", "/livez", AUTH_NONE, ops_livez, 0},
	{"GET", "/metrics", AUTH_READ, ops_metrics, 0},
	{"GET", "/readyz", AUTH_NONE, ops_readyz, 0},
	{"GET", "/v1/datasets", AUTH_READ, datasets_list, 0},
	{"DELETE", "/v1/datasets/{name}", AUTH_ADMIN, datasets_delete, 0},
	{"GET", "/v1/datasets/{name}", AUTH_READ, datasets_get, 0},
	{"PUT", "/v1/datasets/{name}", AUTH_ADMIN, datasets_put, 0},
	{"POST", "/v1/datasets/{name}/records", AUTH_ADMIN, records_post, 1},
	{"DELETE", "/v1/datasets/{name}/records/{id*}", AUTH_ADMIN, records_delete, 0},
	{"GET", "/v1/datasets/{name}/records/{id*}", AUTH_READ, records_get, 0},
	{"GET", "/v1/openapi.json", AUTH_READ, ops_openapi, 0},
};

const struct route *routes_table(size_t *n)
{
	*n = sizeof table / sizeof table[0];
	return table;
}

/* Match one template against path; fills offsets of captured segments. 1 on match. */
static int match_tmpl(const char *tmpl, const char *path, struct route_match *m)
{
	const char *t = tmpl, *p = path;

	m->nparams = 0;
	while (*t != '\0') {
		if (*t == '{') {
			const char *close = strchr(t, '}');
			int rest = close != NULL && close > t && close[-1] == '*';
			size_t len = rest ? strlen(p) : strcspn(p, "/");

			if (close == NULL || len == 0 || m->nparams >= 4)
				return 0;
			m->param_off[m->nparams] = (size_t)(p - path);
			m->param_len[m->nparams] = len;
			m->nparams++;
			p += len;
			t = close + 1;
			continue;
		}
		if (*t != *p)
			return 0;
		t++;
		p++;
	}
	return *p == '\0';
}

int routes_match(const char *method, const char *path, struct route_match *m)
{
	int path_known = 0;

	memset(m, 0, sizeof *m);
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		struct route_match tmp;

		if (!match_tmpl(table[i].tmpl, path, &tmp))
			continue;
		if (strcmp(table[i].method, method) == 0) {
			*m = tmp;
			m->route = &table[i];
			return 0;
		}
		path_known = 1;
		if (strlen(m->allow) + strlen(table[i].method) + 3 < sizeof m->allow) {
			if (m->allow[0] != '\0')
				strcat(m->allow, ", ");
			strcat(m->allow, table[i].method);
		}
	}
	return path_known ? ERR_METHOD : ERR_NOT_FOUND;
}
