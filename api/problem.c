/* SPDX-License-Identifier: MIT */
/* problem: JSON and RFC 9457 problem+json answers, and the one table from error codes
 * to HTTP statuses. Stateless, thread-safe. */
#include "api/http.h"

#include <ctype.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/err.h"
#include "lib/jsonnum.h"
#include "store/store.h"

static const struct {
	int code;
	int status;
	const char *title;
} status_table[] = {
	{ERR_NOMEM, 500, "Out of memory"},
	{ERR_MALFORMED, 400, "Malformed request"},
	{ERR_INVALID, 422, "Invalid request"},
	{ERR_NOT_FOUND, 404, "Not found"},
	{ERR_CONFLICT, 409, "Conflict"},
	{ERR_TOO_LARGE, 413, "Content too large"},
	{ERR_MEDIA_TYPE, 415, "Unsupported media type"},
	{ERR_UNAUTHORIZED, 401, "Unauthorized"},
	{ERR_FORBIDDEN, 403, "Forbidden"},
	{ERR_UNAVAILABLE, 503, "Service unavailable"},
	{ERR_IO, 500, "I/O error"},
	{ERR_STORE, 500, "Storage error"},
	{ERR_VERSION, 500, "Storage format mismatch"},
	{ERR_METHOD, 405, "Method not allowed"},
	{ERR_INTERNAL, 500, "Internal error"},
	{ERR_CANCELLED, 409, "Cancelled"},
	{ERR_NOSPACE, 507, "Insufficient storage"},
	{ERR_GATEWAY, 502, "Bad gateway"},
	{ERR_NOT_SUPPORTED, 501, "Not implemented"},
	{ERR_NOT_ACCEPTABLE, 406, "Not acceptable"},
};

static size_t status_index(int code)
{
	for (size_t i = 0; i < sizeof status_table / sizeof status_table[0]; i++)
		if (status_table[i].code == code)
			return i;
	return sizeof status_table / sizeof status_table[0];
}

int http_status_for(int code)
{
	size_t i = status_index(code);

	return i < sizeof status_table / sizeof status_table[0] ? status_table[i].status : 500;
}

const char *http_header(const struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_query(const struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

struct query_each {
	int (*fn)(void *ctx, const char *name, const char *value);
	void *ctx;
	int rc;
};

static enum MHD_Result query_each_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
	struct query_each *q = cls;

	(void)kind;
	q->rc = q->fn(q->ctx, key, value);
	return q->rc == 0 ? MHD_YES : MHD_NO;
}

int http_query_each(const struct http_req *r,
                    int (*fn)(void *ctx, const char *name, const char *value), void *ctx)
{
	struct query_each q = {fn, ctx, 0};

	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, query_each_one, &q);
	return q.rc;
}

const char *http_media_type(const struct http_req *r, char *buf, size_t size)
{
	const char *ct = http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
	size_t n = 0;

	if (size == 0)
		return buf;
	buf[0] = '\0';
	if (ct == NULL)
		return buf;
	while (*ct == ' ')
		ct++;
	while (ct[n] != '\0' && ct[n] != ';' && ct[n] != ' ' && n + 1 < size) {
		buf[n] = (char)tolower((unsigned char)ct[n]);
		n++;
	}
	buf[n] = '\0';
	return buf;
}

/* The q parameter of one media range's parameters p[0..n) (1 without one). */
static double accept_range_q(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] != ';')
			continue;
		while (i + 1 < n && p[i + 1] == ' ')
			i++;
		if (i + 2 < n && tolower((unsigned char)p[i + 1]) == 'q' && p[i + 2] == '=') {
			double q = strtod(p + i + 3, NULL);

			return q > 1 ? 1 : q > 0 ? q : 0;
		}
	}
	return 1;
}

double http_accept_q(const struct http_req *r, const char *type, int wild)
{
	const char *h = http_header(r, MHD_HTTP_HEADER_ACCEPT), *slash = strchr(type, '/');
	size_t major = slash != NULL ? (size_t)(slash - type) : strlen(type);
	double q = 0;
	int best = 0; /* 3 type itself, 2 major/x, 1 x/x */

	if (h == NULL)
		return wild ? 1 : 0;
	while (*h != '\0') {
		size_t n = strcspn(h, ","), m;
		int rank = 0;

		while (n > 0 && *h == ' ') {
			h++;
			n--;
		}
		m = strcspn(h, ";, ");
		if (m > n)
			m = n;
		if (m == strlen(type) && strncasecmp(h, type, m) == 0)
			rank = 3;
		else if (wild && m == major + 2 && strncasecmp(h, type, major + 1) == 0 &&
		         h[major + 1] == '*')
			rank = 2;
		else if (wild && m == 3 && strncmp(h, "*/*", 3) == 0)
			rank = 1;
		if (rank > best) {
			best = rank;
			q = accept_range_q(h + m, n - m);
		}
		h += n + (h[n] == ',');
	}
	return q;
}

int http_json(struct http_res *res, int status, json_t *obj)
{
	char *s = json_dumps(obj, JSON_COMPACT);

	json_decref(obj);
	res->status = status;
	res->content_type = "application/json";
	if (s == NULL) {
		res->status = 500;
		res->body = strdup("{}");
		res->len = res->body ? 2 : 0;
		return 0;
	}
	res->len = jsonnum_shorten(s, strlen(s));
	res->body = s;
	return 0;
}

int http_problem(struct http_res *res, const struct http_req *r, int code, const struct err *e,
                 json_t *extra)
{
	size_t i;
	int status;
	const char *title, *slug, *detail;
	char type[96];
	json_t *p;

	/* a full disk is the store's to know: whatever a service made of the code, say 507 */
	if (e != NULL && e->code == ERR_NOSPACE)
		code = ERR_NOSPACE;
	i = status_index(code);
	status = http_status_for(code);
	title = i < sizeof status_table / sizeof status_table[0] ? status_table[i].title : "Error";
	slug = e != NULL && e->code != 0 && e->slug[0] ? e->slug : err_str(code);
	detail = e != NULL && e->code != 0 && e->detail[0] ? e->detail : title;
	snprintf(type, sizeof type, "urn:winnow:problem:%s", slug);
	p = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "type", type, "title", title, "status",
	              status, "detail", detail, "code", slug, "request_id",
	              r != NULL ? r->request_id : "");
	if (p != NULL && extra != NULL)
		json_object_update(p, extra);
	json_decref(extra);
	http_json(res, status, p != NULL ? p : json_object());
	res->status = status;
	res->content_type = "application/problem+json";
	if (code == ERR_UNAUTHORIZED)
		res->www_authenticate = 1;
	return 0;
}

int http_body_json(const struct http_req *r, struct http_res *res, json_t **out)
{
	struct err e = {0};
	json_error_t jerr;
	/* a key given twice would otherwise mean its last value, silently */
	json_t *body = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);

	if (body == NULL) {
		err_set(&e, ERR_MALFORMED, "malformed_json", "the body is not JSON: %s (line %d)",
		        jerr.text, jerr.line);
		http_problem(res, r, ERR_MALFORMED, &e, NULL);
		return ERR_MALFORMED;
	}
	*out = body;
	return 0;
}

int http_dataset_op(struct http_req *r, struct http_res *res,
                    int (*op)(struct core *core, const char *dataset, const json_t *body,
                              json_t **out, struct err *e))
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	struct err e = {0};
	json_t *body = NULL, *out = NULL;
	int rc;

	if (ds == NULL || http_body_json(r, res, &body) != 0)
		return 0;
	rc = op(r->core, ds, body, &out, &e);
	json_decref(body);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	return http_json(res, 200, out);
}

const char *http_name_param(const struct http_req *r, struct http_res *res, int i,
                            const char *what)
{
	struct err e = {0};

	if (r->params[i] != NULL && store_name_valid(r->params[i]))
		return r->params[i];
	err_set(&e, ERR_INVALID, "invalid_name", "a %s name must match [A-Za-z0-9._-]{1,64}",
	        what);
	http_problem(res, r, ERR_INVALID, &e, NULL);
	return NULL;
}

int http_accepted(struct http_res *res, uint64_t job, const char *key, json_t *view)
{
	char id[24];

	snprintf(id, sizeof id, "%llu", (unsigned long long)job);
	snprintf(res->location, sizeof res->location, "/v1/jobs/%s", id);
	return http_json(res, 202, json_pack("{s:s, s:o}", "job", id, key, view));
}
