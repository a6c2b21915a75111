/* SPDX-License-Identifier: MIT */
/* routes: every route winnowd serves, in one sorted const table, and the matcher. */
#include "api/routes.h"

#include <stdio.h>
#include <string.h>

#include "api/adapters_routes.h"
#include "api/datasets.h"
#include "api/filters.h"
#include "api/hubness_routes.h"
#include "api/import.h"
#include "api/jobs_routes.h"
#include "api/ops.h"
#include "api/recommend.h"
#include "api/records.h"
#include "api/search.h"
#include "api/signals.h"
#include "api/subsets.h"
#include "api/ui.h"
#include "lib/err.h"

/* The body limit of each route (api/routes.h) */
#define DEF ROUTE_BODY_DEFINITION
#define SEARCH ROUTE_BODY_SEARCH
#define BULK ROUTE_BODY_BULK

/* Sorted by template, then method. Keep api/openapi.json in step (a test checks it).
 * The fifth field is enum route_run: 0 ROUTE_INLINE, 1 ROUTE_POOL, or ROUTE_QUICK. */
static const struct route table[] = {
	{"GET", "/livez", AUTH_NONE, ops_livez, 0, DEF},
	{"GET", "/metrics", AUTH_READ, ops_metrics, 0, DEF},
	{"GET", "/readyz", AUTH_NONE, ops_readyz, 0, DEF},
	{"GET", "/ui/", AUTH_NONE, ui_get, 0, DEF},
	{"GET", "/ui/{file}", AUTH_NONE, ui_get, 0, DEF},
	{"GET", "/v1/datasets", AUTH_READ, datasets_list, 0, DEF},
	{"DELETE", "/v1/datasets/{name}", AUTH_ADMIN, datasets_delete, 0, DEF},
	{"GET", "/v1/datasets/{name}", AUTH_READ, datasets_get, 0, DEF},
	{"PUT", "/v1/datasets/{name}", AUTH_ADMIN, datasets_put, 0, DEF},
	{"GET", "/v1/datasets/{name}/adapters", AUTH_READ, adapters_routes_list, 0, DEF},
	{"DELETE", "/v1/datasets/{name}/adapters/{adapter}", AUTH_ADMIN, adapters_routes_delete, 0, DEF},
	{"GET", "/v1/datasets/{name}/adapters/{adapter}", AUTH_READ, adapters_routes_get, 0, DEF},
	{"PUT", "/v1/datasets/{name}/adapters/{adapter}", AUTH_ADMIN, adapters_routes_put, 0, DEF},
	{"POST", "/v1/datasets/{name}/adapters/{adapter}/pairs", AUTH_ADMIN, adapters_routes_pairs, 1,
	 BULK},
	{"GET", "/v1/datasets/{name}/adapters/{adapter}/weights", AUTH_READ,
	 adapters_routes_weights_get, 0, DEF},
	{"PUT", "/v1/datasets/{name}/adapters/{adapter}/weights", AUTH_ADMIN,
	 adapters_routes_weights_put, 0, BULK},
	{"POST", "/v1/datasets/{name}/adapters/{adapter}:partial", AUTH_ADMIN,
	 adapters_routes_partial, 0, DEF},
	{"POST", "/v1/datasets/{name}/adapters/{adapter}:train", AUTH_ADMIN, adapters_routes_train, 0,
	 DEF},
	{"GET", "/v1/datasets/{name}/filters", AUTH_READ, filters_list, 0, DEF},
	{"DELETE", "/v1/datasets/{name}/filters/{filter}", AUTH_ADMIN, filters_delete, 0, DEF},
	{"GET", "/v1/datasets/{name}/filters/{filter}", AUTH_READ, filters_get, 0, DEF},
	{"PUT", "/v1/datasets/{name}/filters/{filter}", AUTH_ADMIN, filters_put, 0, DEF},
	{"GET", "/v1/datasets/{name}/filters/{filter}/records/{id*}", AUTH_READ, filters_record, 0, DEF},
	{"GET", "/v1/datasets/{name}/filters/{filter}/stats", AUTH_READ, filters_stats, 1, DEF},
	{"POST", "/v1/datasets/{name}/filters/{filter}:recommend", AUTH_READ, recommend_post, 1, DEF},
	{"POST", "/v1/datasets/{name}/filters/{filter}:score", AUTH_ADMIN, filters_score, 0, DEF},
	{"POST", "/v1/datasets/{name}/filters/{filter}:sweep", AUTH_READ, filters_sweep, 0, DEF},
	{"POST", "/v1/datasets/{name}/filters:partial", AUTH_READ, filters_partial, 1, DEF},
	{"GET", "/v1/datasets/{name}/hubness", AUTH_READ, hubness_routes_list, 0, DEF},
	{"DELETE", "/v1/datasets/{name}/hubness/{normalizer}", AUTH_ADMIN, hubness_routes_delete, 0, DEF},
	{"GET", "/v1/datasets/{name}/hubness/{normalizer}", AUTH_READ, hubness_routes_get, 0, DEF},
	{"PUT", "/v1/datasets/{name}/hubness/{normalizer}", AUTH_ADMIN, hubness_routes_put, 1, BULK},
	{"POST", "/v1/datasets/{name}/hubness/{normalizer}:activation", AUTH_ADMIN,
	 hubness_routes_activation, 1, BULK},
	{"POST", "/v1/datasets/{name}/hubness/{normalizer}:report", AUTH_READ, hubness_routes_report, 1,
	 DEF},
	{"POST", "/v1/datasets/{name}/hubness/{normalizer}:stats", AUTH_READ, hubness_routes_stats, 1,
	 SEARCH},
	{"POST", "/v1/datasets/{name}/hubness/{normalizer}:sync", AUTH_ADMIN, hubness_routes_get, 0,
	 DEF},
	{"GET", "/v1/datasets/{name}/hubness/{normalizer}:topk", AUTH_READ, hubness_routes_topk, 1, DEF},
	{"GET", "/v1/datasets/{name}/indexes", AUTH_READ, search_indexes_list, 0, DEF},
	{"DELETE", "/v1/datasets/{name}/indexes/{space}", AUTH_ADMIN, search_index_delete, 0, DEF},
	{"GET", "/v1/datasets/{name}/indexes/{space}", AUTH_READ, search_index_get, 0, DEF},
	{"PUT", "/v1/datasets/{name}/indexes/{space}", AUTH_ADMIN, search_index_put, 0, DEF},
	{"GET", "/v1/datasets/{name}/jobs", AUTH_READ, jobs_routes_list_dataset, 0, DEF},
	{"POST", "/v1/datasets/{name}/records", AUTH_ADMIN, records_post, 1, BULK},
	{"DELETE", "/v1/datasets/{name}/records/{id*}", AUTH_ADMIN, records_delete, 0, DEF},
	{"GET", "/v1/datasets/{name}/records/{id*}", AUTH_READ, records_get, 0, DEF},
	{"PATCH", "/v1/datasets/{name}/records/{id*}", AUTH_ADMIN, signals_patch_one, 0, DEF},
	{"GET", "/v1/datasets/{name}/records/{id*}/decisions", AUTH_READ, subsets_decisions, 0, DEF},
	{"POST", "/v1/datasets/{name}/records:import", AUTH_ADMIN, import_post, 1, BULK},
	{"POST", "/v1/datasets/{name}/records:signals", AUTH_ADMIN, signals_patch_bulk, 1,
	 BULK},
	{"POST", "/v1/datasets/{name}/search", AUTH_READ, search_post, ROUTE_QUICK, SEARCH},
	{"POST", "/v1/datasets/{name}/search:count", AUTH_READ, search_count, 1, SEARCH},
	{"GET", "/v1/datasets/{name}/subsets", AUTH_READ, subsets_list, 0, DEF},
	{"DELETE", "/v1/datasets/{name}/subsets/{subset}", AUTH_ADMIN, subsets_delete, 0, DEF},
	{"GET", "/v1/datasets/{name}/subsets/{subset}", AUTH_READ, subsets_get, 0, DEF},
	{"PUT", "/v1/datasets/{name}/subsets/{subset}", AUTH_ADMIN, subsets_put, 0, DEF},
	{"GET", "/v1/datasets/{name}/subsets/{subset}:export", AUTH_READ, subsets_export, 1, DEF},
	{"POST", "/v1/datasets/{name}/subsets:probe", AUTH_READ, subsets_probe, 1, DEF},
	{"GET", "/v1/filter-types", AUTH_READ, filters_types, 0, DEF},
	{"GET", "/v1/jobs", AUTH_READ, jobs_routes_list, 0, DEF},
	{"DELETE", "/v1/jobs/{id}", AUTH_ADMIN, jobs_routes_cancel, 0, DEF},
	{"GET", "/v1/jobs/{id}", AUTH_READ, jobs_routes_get, 0, DEF},
	{"GET", "/v1/openapi.json", AUTH_READ, ops_openapi, 0, DEF},
};

#undef DEF
#undef SEARCH
#undef BULK

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
			size_t len;

			if (close == NULL || m->nparams >= 4)
				return 0;
			if (rest) {
				/* {x*} takes the rest of the path but a literal suffix of the
				 * template ("/decisions"), which the path must end with */
				size_t plen = strlen(p), slen = strlen(close + 1);

				if (strchr(close + 1, '{') != NULL || plen <= slen ||
				    strcmp(p + plen - slen, close + 1) != 0)
					return 0;
				len = plen - slen;
			} else {
				/* a segment; before a ":verb" suffix it stops at the ':' */
				len = strcspn(p, close[1] == ':' ? "/:" : "/");
			}
			if (len == 0)
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
	size_t best = 0;

	memset(m, 0, sizeof *m);
	/* The longest matching template wins: ".../records/{id*}/decisions" over
	 * ".../records/{id*}" for a path that ends in "/decisions". */
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		struct route_match tmp;

		if (!match_tmpl(table[i].tmpl, path, &tmp))
			continue;
		if (strcmp(table[i].method, method) == 0) {
			if (m->route == NULL || strlen(table[i].tmpl) > best) {
				char allow[sizeof m->allow];

				memcpy(allow, m->allow, sizeof allow);
				*m = tmp;
				memcpy(m->allow, allow, sizeof allow);
				m->route = &table[i];
				best = strlen(table[i].tmpl);
			}
			continue;
		}
		path_known = 1;
		if (strlen(m->allow) + strlen(table[i].method) + 3 < sizeof m->allow) {
			if (m->allow[0] != '\0')
				strcat(m->allow, ", ");
			strcat(m->allow, table[i].method);
		}
	}
	if (m->route != NULL)
		return 0;
	return path_known ? ERR_METHOD : ERR_NOT_FOUND;
}

/* The query parameters each route takes; a route missing here takes none. One table beside
 * the routes, so that an unknown or misspelt parameter is a 400 everywhere, never ignored.
 * The handlers check the values. */
static const struct {
	const char *method, *tmpl;
	const char *const names[12];
} query_table[] = {
	{"GET", "/readyz", {"verbose"}},
	{"GET", "/v1/datasets", {"page_size", "page_token"}},
	{"GET", "/v1/datasets/{name}/filters/{filter}/stats", {"bins", "threshold", "lo", "hi"}},
	{"GET", "/v1/datasets/{name}/jobs", {"limit"}},
	{"GET", "/v1/datasets/{name}/records/{id*}", {"embeddings"}},
	{"GET", "/v1/datasets/{name}/records/{id*}/decisions", {"subset"}},
	{"POST", "/v1/datasets/{name}/records:signals", {"dry_run"}},
	{"POST", "/v1/datasets/{name}/search",
	 {"space", "limit", "score_threshold", "metric", "subset", "with", "ef_search", "nprobe",
	  "exact", "dtype"}},
	{"POST", "/v1/datasets/{name}/search:count",
	 {"space", "limit", "score_threshold", "metric", "subset", "with", "ef_search", "nprobe",
	  "exact", "dtype"}},
	{"GET", "/v1/datasets/{name}/subsets/{subset}:export",
	 {"format", "fields", "slices", "slice_id", "summary"}},
	{"GET", "/v1/jobs", {"limit"}},
};

int routes_query_allowed(const struct route *rt, const char *name, char *list, size_t size)
{
	size_t i, k, n = 0;

	if (size > 0)
		list[0] = '\0';
	for (i = 0; i < sizeof query_table / sizeof query_table[0]; i++)
		if (strcmp(query_table[i].method, rt->method) == 0 &&
		    strcmp(query_table[i].tmpl, rt->tmpl) == 0)
			break;
	if (i == sizeof query_table / sizeof query_table[0])
		return 0;
	for (k = 0; k < 12 && query_table[i].names[k] != NULL; k++) {
		if (name != NULL && strcmp(name, query_table[i].names[k]) == 0)
			return 1;
		if (n < size)
			n += (size_t)snprintf(list + n, size - n, "%s%s", k ? ", " : "",
			                      query_table[i].names[k]);
	}
	return 0;
}
