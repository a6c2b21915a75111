/* SPDX-License-Identifier: MIT */
/* router_util: forwarding, merging and broadcasting for the router's handlers. */
#include "api/router_util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/http.h"
#include "cluster/fanout.h"
#include "cluster/shardmap.h"
#include "daemon/daemon.h"
#include "lib/err.h"

/* ---- paths and answers ---- */

static int unreserved(unsigned char c, int in_path)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~' || (in_path && (c == '/' || c == ':'));
}

static void pct(char **p, const char *s, int in_path)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (unreserved(c, in_path)) {
			*(*p)++ = (char)c;
		} else {
			*(*p)++ = '%';
			*(*p)++ = hex[c >> 4];
			*(*p)++ = hex[c & 15];
		}
	}
}

struct qbuf {
	char *p;
	int first;
};

static int add_query(void *ctx, const char *name, const char *value)
{
	struct qbuf *q = ctx;

	*q->p++ = q->first ? '?' : '&';
	q->first = 0;
	pct(&q->p, name, 0);
	if (value != NULL) {
		*q->p++ = '=';
		pct(&q->p, value, 0);
	}
	return 0;
}

static int query_len(void *ctx, const char *name, const char *value)
{
	*(size_t *)ctx += 2 + 3 * strlen(name) + (value ? 3 * strlen(value) : 0);
	return 0;
}

char *rutil_path(const struct http_req *r)
{
	size_t n = 3 * strlen(r->path) + 1;
	char *out, *p;
	struct qbuf q;

	http_query_each(r, query_len, &n);
	if ((out = malloc(n + 1)) == NULL)
		return NULL;
	p = out;
	pct(&p, r->path, 1);
	q.p = p;
	q.first = 1;
	http_query_each(r, add_query, &q);
	*q.p = '\0';
	return out;
}

int rutil_gateway(struct http_res *res, const struct http_req *r, const struct err *e)
{
	return http_problem(res, r, ERR_GATEWAY, e, NULL);
}

int rutil_problem(struct http_res *res, const struct http_req *r, const json_t *problem,
                  int status, int code, const struct err *e)
{
	if (problem == NULL || status < 400 || status >= 500)
		return http_problem(res, r, code, e, NULL);
	res->status = status;
	res->content_type = "application/problem+json";
	res->body = json_dumps(problem, JSON_COMPACT);
	res->len = res->body != NULL ? strlen(res->body) : 0;
	return 0;
}

static const char *static_type(const char *t)
{
	static const char *const known[] = {"application/problem+json", "application/json",
	                                    "application/x-ndjson", "application/octet-stream",
	                                    "text/plain; charset=utf-8"};

	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strncasecmp(t, known[i], strlen(known[i])) == 0)
			return known[i];
	return "application/json";
}

int rutil_forward_one(struct http_req *r, struct http_res *res, size_t shard, const char *path)
{
	struct fanout_call c = {.shard = shard, .method = r->method, .path = path,
	                        .body = r->body_len > 0 ? r->body : NULL, .body_len = r->body_len,
	                        .content_type = http_header(r, "Content-Type")};
	struct err e = {0};

	if (fanout_run(r->d->router, &c, 1, r->request_id, &e) != 0)
		rutil_gateway(res, r, &e);
	else
		rutil_copy(res, &c);
	fanout_calls_free(&c, 1);
	return 0;
}

int rutil_copy(struct http_res *res, struct fanout_call *c)
{
	res->status = c->status;
	res->body = c->resp;
	res->len = c->resp_len;
	res->content_type = static_type(c->resp_type);
	c->resp = NULL;
	c->resp_len = 0;
	if (res->status == 503)
		res->retry_after = 1;
	return 0;
}

struct fanout_call *rutil_first_bad(struct fanout_call *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (c[i].status < 200 || c[i].status > 299)
			return &c[i];
	return NULL;
}

/* ---- merging ---- */

static const char *const count_keys[] = {
	"records", "rows", "vectors", "members", "pool", "in", "out", "unscorable", "dead",
	"accepted", "rejected", "patched", "processed", "total", "at_or_above", "kept", "count",
	"skipped_deleted", "gallery", "candidates_scanned", NULL,
};

static int is_count_key(const char *k)
{
	for (size_t i = 0; count_keys[i] != NULL; i++)
		if (strcmp(k, count_keys[i]) == 0)
			return 1;
	return 0;
}

static int state_rank(const char *s)
{
	static const char *const order[] = {"ready", "succeeded", "trained", "queued", "pending",
	                                    "running", "building", "materialising", "training",
	                                    "cancelled", "failed", NULL};

	for (int i = 0; order[i] != NULL; i++)
		if (strcmp(s, order[i]) == 0)
			return i;
	return 0;
}

static json_t *compose_job(json_t **vals, size_t n)
{
	char buf[1024];
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && o < sizeof buf - 32; i++) {
		const char *s = json_string_value(vals[i]);
		char num[32] = "";

		if (s == NULL && json_is_integer(vals[i]))
			snprintf(num, sizeof num, "%lld", (long long)json_integer_value(vals[i]));
		o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", i ? "-" : "",
		                      s != NULL ? s : num);
	}
	return json_string(buf);
}

static void merge_into(json_t *dst, json_t **docs, size_t n);

/* Item k of a shard's list arr that matches item like: a named item (a dataset, a filter, a
 * subset...) by its name wherever it is, anything else by position. NULL when absent. */
static json_t *same_item(json_t *arr, size_t k, json_t *like)
{
	const char *name = json_string_value(json_object_get(like, "name"));
	json_t *at = json_array_get(arr, k), *x;
	size_t i;

	if (name == NULL)
		return at;
	if (json_is_string(json_object_get(at, "name")) &&
	    strcmp(json_string_value(json_object_get(at, "name")), name) == 0)
		return at;
	json_array_foreach(arr, i, x)
		if (json_is_string(json_object_get(x, "name")) &&
		    strcmp(json_string_value(json_object_get(x, "name")), name) == 0)
			return x;
	return NULL;
}

/* A step's clusters provenance (label_prov in curate/subset.c) over the shards: "in" and "out"
 * summed per label, and what follows from them computed again as one daemon does. */
static void merge_label_prov(json_t *dst, json_t **vals, size_t n)
{
	size_t maxl = 0;
	json_t *ain = json_array(), *aout = json_array(), *empty = json_array();
	json_int_t count = 0;
	double min_share = 1;

	for (size_t i = 0; i < n; i++)
		if (json_array_size(json_object_get(vals[i], "in")) > maxl)
			maxl = json_array_size(json_object_get(vals[i], "in"));
	for (size_t c = 0; c < maxl; c++) {
		json_int_t in = 0, out = 0;

		for (size_t i = 0; i < n; i++) {
			in += json_integer_value(json_array_get(json_object_get(vals[i], "in"), c));
			out +=
			    json_integer_value(json_array_get(json_object_get(vals[i], "out"), c));
		}
		json_array_append_new(ain, json_integer(in));
		json_array_append_new(aout, json_integer(out));
		if (in == 0)
			continue;
		count++;
		if (out == 0)
			json_array_append_new(empty, json_integer((json_int_t)c));
		if ((double)out / (double)in < min_share)
			min_share = (double)out / (double)in;
	}
	json_object_set_new(dst, "in", ain);
	json_object_set_new(dst, "out", aout);
	json_object_set_new(dst, "count", json_integer(count));
	json_object_set_new(dst, "emptied", json_integer((json_int_t)json_array_size(empty)));
	json_object_set_new(dst, "empty", empty);
	json_object_set_new(dst, "min_kept_share", count ? json_real(min_share) : json_null());
}

static void merge_key(json_t *dst, const char *key, json_t *v, json_t **docs, size_t n)
{
	json_t *vals[256];

	for (size_t i = 0; i < n && i < 256; i++)
		vals[i] = json_object_get(docs[i], key);
	if (strcmp(key, "clusters") == 0 && json_is_object(v) &&
	    json_is_string(json_object_get(v, "label")) &&
	    json_is_array(json_object_get(v, "in")) && json_is_array(json_object_get(v, "out"))) {
		merge_label_prov(v, vals, n);
	} else if (json_is_integer(v) && is_count_key(key)) {
		json_int_t sum = 0;

		for (size_t i = 0; i < n; i++)
			sum += json_integer_value(vals[i]);
		json_object_set_new(dst, key, json_integer(sum));
	} else if ((strcmp(key, "job") == 0 || strcmp(key, "build") == 0) &&
	           (json_is_string(v) || json_is_integer(v))) {
		json_object_set_new(dst, key, compose_job(vals, n));
	} else if (strcmp(key, "state") == 0 && json_is_string(v)) {
		size_t best = 0;

		for (size_t i = 1; i < n; i++)
			if (json_is_string(vals[i]) &&
			    state_rank(json_string_value(vals[i])) >
			            state_rank(json_string_value(vals[best])))
				best = i;
		json_object_set(dst, key, vals[best]);
	} else if (json_is_object(v) || json_is_array(v)) {
		merge_into(v, vals, n);
		if (json_is_string(json_object_get(v, "id")) &&
		    json_is_string(json_object_get(v, "kind")) &&
		    json_is_string(json_object_get(v, "state"))) {
			/* an embedded job: its id composed as the shards' */
			json_t *ids[256];

			for (size_t i = 0; i < n && i < 256; i++)
				ids[i] = json_object_get(vals[i], "id");
			json_object_set_new(v, "id", compose_job(ids, n));
		}
	}
}

/* dst is docs[0] (or its part); docs[i] the same place in shard i's answer. */
static void merge_into(json_t *dst, json_t **docs, size_t n)
{
	if (json_is_object(dst)) {
		const char *key;
		json_t *v;
		void *tmp;

		json_object_foreach_safe(dst, tmp, key, v)
			merge_key(dst, key, v, docs, n);
	} else if (json_is_array(dst)) {
		json_t *sub[256];

		for (size_t k = 0; k < json_array_size(dst); k++) {
			for (size_t i = 0; i < n && i < 256; i++)
				sub[i] = same_item(docs[i], k, json_array_get(dst, k));
			merge_into(json_array_get(dst, k), sub, n);
		}
	}
}

static int is_rule(const char *k)
{
	return strcmp(k, "top_fraction") == 0 || strcmp(k, "bottom_fraction") == 0 ||
	       strcmp(k, "top_k") == 0 || strcmp(k, "bottom_k") == 0;
}

/* A per-cluster cut's provenance ps as one daemon gives a per_cluster step's: the apportionment
 * the router made (the cut's "apportion") and the realised count. */
static void per_cluster_prov(json_t *ps, const json_t *cut)
{
	const json_t *ap = json_object_get(cut, "apportion");

	if (ps == NULL || !json_is_object(ap))
		return;
	json_object_set_new(ps, "per_cluster", json_true());
	json_object_set(ps, "realised", json_object_get(ps, "out"));
	json_object_update(ps, (json_t *)ap);
}

/* A subset as the router stored it shows the client's steps: each "cut" step that has an
 * "origin" is replaced by it, and its provenance says the origin's rule and value. */
static void restore_origins(json_t *v)
{
	json_t *steps = json_object_get(v, "steps"), *x;
	json_t *psteps = json_object_get(json_object_get(v, "provenance"), "steps");
	const char *key;
	size_t i;

	if (json_is_object(v) && json_is_array(steps)) {
		json_array_foreach(steps, i, x) {
			json_t *origin = json_object_get(json_object_get(x, "cut"), "origin");
			json_t *ps = json_array_get(psteps, i);
			json_t *rv;

			if (!json_is_object(origin))
				continue;
			if (json_object_get(json_object_get(x, "cut"), "clusters") != NULL &&
			    json_is_string(json_object_get(ps, "rule")) &&
			    strcmp(json_string_value(json_object_get(ps, "rule")), "cut") == 0)
				per_cluster_prov(ps, json_object_get(x, "cut"));
			json_object_foreach(origin, key, rv) {
				if (is_rule(key) && ps != NULL &&
				    json_is_string(json_object_get(ps, "rule")) &&
				    strcmp(json_string_value(json_object_get(ps, "rule")), "cut") ==
				        0) {
					json_object_set_new(ps, "rule", json_string(key));
					json_object_set(ps, "value", rv);
				}
			}
			json_array_set(steps, i, origin);
		}
	}
	if (json_is_object(v)) {
		json_t *c;

		json_object_foreach(v, key, c)
			if (strcmp(key, "provenance") != 0)
				restore_origins(c);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			restore_origins(x);
	}
}

json_t *rutil_merge(json_t **docs, size_t n)
{
	json_t *out = json_deep_copy(docs[0]);

	if (out != NULL) {
		merge_into(out, docs, n > 256 ? 256 : n);
		restore_origins(out);
	}
	return out;
}

/* Parse every answer; NULL entries for answers that are not JSON. */
static int parse_all(struct fanout_call *c, size_t n, json_t **docs)
{
	int ok = 1;

	for (size_t i = 0; i < n; i++)
		if ((docs[i] = fanout_json(&c[i])) == NULL)
			ok = 0;
	return ok;
}

static void free_docs(json_t **docs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(docs[i]);
}

/* Answer res with the merged JSON of calls c (all 2xx), status status. */
static int answer_merged(struct http_req *r, struct http_res *res, struct fanout_call *c,
                         size_t n, int status)
{
	json_t **docs = calloc(n, sizeof *docs);
	json_t *m;
	struct err e = {0};

	if (docs == NULL)
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	if (status == 204 || c[0].resp_len == 0) {
		free(docs);
		res->status = status;
		return 0;
	}
	if (!parse_all(c, n, docs)) {
		free_docs(docs, n);
		free(docs);
		err_set(&e, ERR_GATEWAY, "bad_shard_answer", "a shard answered with something not JSON");
		return http_problem(res, r, ERR_GATEWAY, &e, NULL);
	}
	m = rutil_merge(docs, n);
	free_docs(docs, n);
	free(docs);
	if (m == NULL)
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	if (status == 202 && json_is_string(json_object_get(m, "job")))
		snprintf(res->location, sizeof res->location, "/v1/jobs/%s",
		         json_string_value(json_object_get(m, "job")));
	return http_json(res, status, m);
}

int rutil_gather_get(struct http_req *r, struct http_res *res,
                     int (*merge)(struct http_req *r, struct http_res *res,
                                  struct fanout_call *c, size_t n, void *ctx),
                     void *ctx)
{
	struct fanout *f = r->d->router;
	size_t n = fanout_map(f)->n;
	struct fanout_call *c = calloc(n, sizeof *c), *bad;
	char *path = rutil_path(r);
	struct err e = {0};

	if (c == NULL || path == NULL) {
		free(c);
		free(path);
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	}
	if (fanout_all(f, c, "GET", path, NULL, 0, NULL, r->request_id, &e) != 0)
		rutil_gateway(res, r, &e);
	else if ((bad = rutil_first_bad(c, n)) != NULL)
		rutil_copy(res, bad);
	else
		merge(r, res, c, n, ctx);
	fanout_calls_free(c, n);
	free(c);
	free(path);
	return 0;
}

static int merged_as_shard0(struct http_req *r, struct http_res *res, struct fanout_call *c,
                            size_t n, void *ctx)
{
	(void)ctx;
	return answer_merged(r, res, c, n, c[0].status);
}

int rutil_merged_get(struct http_req *r, struct http_res *res)
{
	return rutil_gather_get(r, res, merged_as_shard0, NULL);
}

/* ---- definitions on every shard ---- */

int rutil_partial(struct http_req *r, struct http_res *res, struct fanout_call *c, size_t n)
{
	struct err e = {0};
	json_t *shards = json_array();
	struct fanout *f = r->d->router;

	for (size_t i = 0; i < n; i++) {
		json_t *b = fanout_json(&c[i]);

		json_array_append_new(shards,
		        json_pack("{s:I, s:s, s:i, s:o}", "shard", (json_int_t)c[i].shard, "url",
		                  fanout_map(f)->url[c[i].shard], "status", c[i].status, "answer",
		                  b != NULL ? b : json_string(c[i].error)));
	}
	err_set(&e, ERR_GATEWAY, "partial",
	        "%s %s was applied on some shards only (see shards): send the same request again "
	        "to complete it", r->method, r->route);
	return http_problem(res, r, ERR_GATEWAY, &e, json_pack("{s:o}", "shards", shards));
}

int rutil_broadcast_each(struct http_req *r, struct http_res *res, const char *method,
                         const char *path, char *const *bodies, const size_t *lens)
{
	struct fanout *f = r->d->router;
	size_t n = fanout_map(f)->n;
	struct fanout_call *c = calloc(n, sizeof *c);
	const char *ct = http_header(r, "Content-Type");
	struct err e = {0};

	if (c == NULL)
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		c[i] = (struct fanout_call){.shard = i,
		                            .method = method,
		                            .path = path,
		                            .body = lens[i] > 0 ? bodies[i] : NULL,
		                            .body_len = lens[i],
		                            .content_type = ct};
	/* shard 0 alone first: what it refuses (validation) changes nothing anywhere */
	if (fanout_run(f, c, 1, r->request_id, &e) != 0) {
		rutil_gateway(res, r, &e);
	} else if (c[0].status < 200 || c[0].status > 299) {
		rutil_copy(res, &c[0]);
	} else if (n > 1) {
		fanout_run(f, c + 1, n - 1, r->request_id, &e);
		if (rutil_first_bad(c + 1, n - 1) != NULL)
			rutil_partial(r, res, c, n);
		else
			answer_merged(r, res, c, n, c[0].status);
	} else {
		answer_merged(r, res, c, n, c[0].status);
	}
	fanout_calls_free(c, n);
	free(c);
	return 0;
}

int rutil_broadcast_body(struct http_req *r, struct http_res *res, const char *method,
                         const char *path, const char *body, size_t len)
{
	size_t n = fanout_map(r->d->router)->n;
	char **b = calloc(n, sizeof *b);
	size_t *l = calloc(n, sizeof *l);

	if (b == NULL || l == NULL) {
		free(b);
		free(l);
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	}
	for (size_t i = 0; i < n; i++) {
		b[i] = (char *)body;
		l[i] = len;
	}
	rutil_broadcast_each(r, res, method, path, b, l);
	free(b);
	free(l);
	return 0;
}

int rutil_broadcast(struct http_req *r, struct http_res *res)
{
	char *path = rutil_path(r);

	if (path == NULL)
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	rutil_broadcast_body(r, res, r->method, path, r->body, r->body_len);
	free(path);
	return 0;
}

/* ---- ingest split by id ---- */

int rutil_part_add(struct rutil_part *p, const char *s, size_t len, size_t line, int json_form)
{
	if (p->len + len + 2 > p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 65536;
		char *nb;

		while (cap < p->len + len + 2)
			cap *= 2;
		if ((nb = realloc(p->buf, cap)) == NULL)
			return -1;
		p->buf = nb;
		p->cap = cap;
	}
	if (json_form && p->nlines > 0)
		p->buf[p->len++] = ',';
	memcpy(p->buf + p->len, s, len);
	p->len += len;
	if (!json_form)
		p->buf[p->len++] = '\n';
	if (p->nlines == p->lcap) {
		size_t cap = p->lcap ? p->lcap * 2 : 1024;
		size_t *nl = realloc(p->lines, cap * sizeof *nl);

		if (nl == NULL)
			return -1;
		p->lines = nl;
		p->lcap = cap;
	}
	p->lines[p->nlines++] = line;
	return 0;
}

void rutil_errors_remap(json_t *dst, json_t *errs, const struct rutil_part *p)
{
	size_t k;
	json_t *ev;

	json_array_foreach(errs, k, ev) {
		json_int_t l = json_integer_value(json_object_get(ev, "line"));

		if (l >= 1 && (size_t)l <= p->nlines)
			json_object_set_new(ev, "line", json_integer((json_int_t)p->lines[l - 1]));
		json_array_append(dst, ev);
	}
}

void rutil_errors_by_line(json_t *errors)
{
	/* insertion sort: at most 1,000 per shard are listed */
	for (size_t i = 1; i < json_array_size(errors); i++) {
		for (size_t j = i; j > 0; j--) {
			json_t *a = json_array_get(errors, j - 1), *b = json_array_get(errors, j);

			if (json_integer_value(json_object_get(a, "line")) <=
			    json_integer_value(json_object_get(b, "line")))
				break;
			json_incref(a);
			json_array_set(errors, j - 1, b);
			json_array_set_new(errors, j, a);
		}
	}
	while (json_array_size(errors) > 1000)
		json_array_remove(errors, json_array_size(errors) - 1);
}

void rutil_parts_free(struct rutil_part *p, size_t n)
{
	for (size_t i = 0; p != NULL && i < n; i++) {
		free(p[i].buf);
		free(p[i].lines);
	}
	free(p);
}

/* The shard of one record's text: its "id" when it parses, else shard 0 (which rejects it
 * with the code a single daemon gives). */
static size_t record_shard(const struct shardmap *m, const char *s, size_t len)
{
	json_t *o = json_loadb(s, len, 0, NULL);
	const char *id = json_string_value(json_object_get(o, "id"));
	size_t sh = 0;

	if (id != NULL && json_string_length(json_object_get(o, "id")) > 0)
		sh = shardmap_place(m, id, json_string_length(json_object_get(o, "id")));
	json_decref(o);
	return sh;
}

static int split_ndjson(const struct http_req *r, const struct shardmap *m,
                        struct rutil_part *parts)
{
	const char *p = r->body, *end = r->body + r->body_len;
	size_t line = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end;
		size_t k;
		int blank = 1;

		for (const char *q = p; q < le; q++)
			if (*q != ' ' && *q != '\t' && *q != '\r')
				blank = 0;
		if (!blank) {
			line++;
			k = record_shard(m, p, (size_t)(le - p));
			if (rutil_part_add(&parts[k], p, (size_t)(le - p), line, 0) != 0)
				return -1;
		}
		p = nl != NULL ? nl + 1 : end;
	}
	return 0;
}

static int split_json(json_t *recs, const struct shardmap *m, struct rutil_part *parts)
{
	size_t i;
	json_t *v;

	json_array_foreach(recs, i, v) {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		const char *id = json_string_value(json_object_get(v, "id"));
		size_t k = id != NULL && id[0] ? shardmap_place(m, id, strlen(id)) : 0;
		int rc = s != NULL ? rutil_part_add(&parts[k], s, strlen(s), i + 1, 1) : -1;

		free(s);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* Sum the shards' ingest answers, errors back on the client's lines, sorted by line. */
static int ingest_answer(struct http_req *r, struct http_res *res, struct fanout_call *c,
                         struct rutil_part *parts, size_t n)
{
	json_int_t acc = 0, rej = 0;
	json_t *errors = json_array();

	for (size_t i = 0; i < n; i++) {
		json_t *b = fanout_json(&c[i]);
		json_t *errs = json_object_get(b, "errors");

		acc += json_integer_value(json_object_get(b, "accepted"));
		rej += json_integer_value(json_object_get(b, "rejected"));
		rutil_errors_remap(errors, errs, &parts[c[i].shard]);
		json_decref(b);
	}
	rutil_errors_by_line(errors);
	if (acc == 0) {
		struct err e = {0};

		err_set(&e, ERR_INVALID, "no_record_accepted", "no record was accepted");
		return http_problem(res, r, ERR_INVALID, &e,
		                    json_pack("{s:I, s:I, s:o}", "accepted", acc, "rejected", rej,
		                              "errors", errors));
	}
	return http_json(res, 200, json_pack("{s:I, s:I, s:o}", "accepted", acc, "rejected", rej,
	                                     "errors", errors));
}

static int ingest_send(struct http_req *r, struct http_res *res, struct rutil_part *parts,
                       size_t n, const char *path, int json_form)
{
	struct fanout *f = r->d->router;
	struct fanout_call *c = calloc(n, sizeof *c);
	size_t m = 0;
	struct err e = {0};
	struct fanout_call *bad;

	if (c == NULL)
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	for (size_t i = 0; i < n; i++) {
		if (parts[i].nlines == 0)
			continue;
		if (json_form) { /* close {"records": [ ... ]} */
			rutil_part_add(&parts[i], "]}", 2, 0, 0);
			parts[i].nlines--;
		}
		c[m++] = (struct fanout_call){.shard = i, .method = "POST", .path = path,
		                              .body = parts[i].buf, .body_len = parts[i].len,
		                              .content_type = json_form ? "application/json"
		                                                        : "application/x-ndjson"};
	}
	if (fanout_run(f, c, m, r->request_id, &e) != 0) {
		err_set(&e, ERR_GATEWAY, "shard_unreachable", "%s; records sent to the other shards "
		        "may be stored: sending the batch again is safe (upsert)", e.detail);
		rutil_gateway(res, r, &e);
	} else {
		size_t ok = 0;

		bad = NULL;
		for (size_t i = 0; i < m; i++) {
			if ((c[i].status >= 200 && c[i].status <= 299) || c[i].status == 422)
				ok++;
			else if (bad == NULL)
				bad = &c[i];
		}
		if (bad != NULL && ok == 0)
			rutil_copy(res, bad); /* refused everywhere (unknown dataset, ...): as it is */
		else if (bad != NULL)
			rutil_partial(r, res, c, m); /* some parts stored: 502, a resend is safe */
		else
			ingest_answer(r, res, c, parts, m);
	}
	fanout_calls_free(c, m);
	free(c);
	return 0;
}

int rutil_ingest(struct http_req *r, struct http_res *res)
{
	struct fanout *f = r->d->router;
	const struct shardmap *m = fanout_map(f);
	struct rutil_part *parts = calloc(m->n, sizeof *parts);
	char mt[64], *path = rutil_path(r);
	int json_form, rc = 0;
	json_t *body = NULL;

	if (parts == NULL || path == NULL) {
		free(parts);
		free(path);
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	}
	http_media_type(r, mt, sizeof mt);
	json_form = strcmp(mt, "application/json") == 0;
	if (json_form) {
		body = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_array(json_object_get(body, "records")) || json_object_size(body) != 1)
			json_form = -1; /* shard 0 says what is wrong with it */
	} else if (strcmp(mt, "application/x-ndjson") != 0) {
		json_form = -1;
	}
	if (json_form == -1 || r->body_len == 0) {
		rutil_broadcast_body(r, res, "POST", path, r->body, r->body_len); /* refused by shard 0 */
		goto out;
	}
	if (json_form) {
		for (size_t i = 0; i < m->n; i++)
			rutil_part_add(&parts[i], "{\"records\":[", 12, 0, 0), parts[i].nlines = 0,
				parts[i].len = 12;
		rc = split_json(json_object_get(body, "records"), m, parts);
	} else {
		rc = split_ndjson(r, m, parts);
	}
	if (rc != 0)
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
	else
		ingest_send(r, res, parts, m->n, path, json_form);
out:
	rutil_parts_free(parts, m->n);
	free(path);
	json_decref(body);
	return 0;
}

/* ---- jobs: the union of the shards' jobs, composite ids ---- */

static json_t *single_id(size_t shard, size_t n, const char *id)
{
	char buf[1024];
	size_t o = 0;

	for (size_t i = 0; i < n && o < sizeof buf - 40; i++)
		o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", i ? "-" : "",
		                      i == shard ? id : "");
	return json_string(buf);
}

static int created_desc(const void *a, const void *b)
{
	const char *x = json_string_value(json_object_get(*(json_t *const *)a, "created"));
	const char *y = json_string_value(json_object_get(*(json_t *const *)b, "created"));

	return strcmp(y != NULL ? y : "", x != NULL ? x : ""); /* ISO 8601 UTC: text order */
}

/* Sort a JSON array of jobs by "created", newest first (stable enough: ties keep no order). */
static void sort_by_created(json_t *arr)
{
	size_t n = json_array_size(arr);
	json_t **v = malloc((n ? n : 1) * sizeof *v);

	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(arr, i));
	qsort(v, n, sizeof *v, created_desc);
	json_array_clear(arr);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, v[i]);
	free(v);
}

int rutil_jobs_list(struct http_req *r, struct http_res *res)
{
	struct fanout *f = r->d->router;
	size_t n = fanout_map(f)->n;
	struct fanout_call *c = calloc(n, sizeof *c), *bad;
	char *path = rutil_path(r);
	struct err e = {0};
	json_t *all = json_array();

	if (c == NULL || path == NULL) {
		free(c);
		free(path);
		json_decref(all);
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	}
	if (fanout_all(f, c, "GET", path, NULL, 0, NULL, r->request_id, &e) != 0) {
		rutil_gateway(res, r, &e);
	} else if ((bad = rutil_first_bad(c, n)) != NULL) {
		rutil_copy(res, bad);
	} else {
		for (size_t i = 0; i < n; i++) {
			json_t *b = fanout_json(&c[i]), *j;
			size_t k;

			json_array_foreach(json_object_get(b, "jobs"), k, j) {
				const char *id = json_string_value(json_object_get(j, "id"));

				json_object_set_new(j, "id", single_id(i, n, id ? id : ""));
				json_array_append(all, j);
			}
			json_decref(b);
		}
		/* newest first over all shards, at most limit (the shards checked it) */
		const char *ql = http_query(r, "limit");
		size_t limit = ql != NULL ? (size_t)strtoul(ql, NULL, 10) : 100;

		sort_by_created(all);
		while (json_array_size(all) > limit)
			json_array_remove(all, json_array_size(all) - 1);
		http_json(res, 200, json_pack("{s:O}", "jobs", all));
	}
	json_decref(all);
	fanout_calls_free(c, n);
	free(c);
	free(path);
	return 0;
}

/* Split a composite id into n fields (ids[i] "" for none); 0, or -1 when it is not one. */
static int split_job_id(const char *s, size_t n, char ids[][24])
{
	size_t i = 0, any = 0;

	for (;;) {
		size_t len = strcspn(s, "-");

		if (i >= n || len >= 24)
			return -1;
		memcpy(ids[i], s, len);
		ids[i][len] = '\0';
		for (size_t k = 0; k < len; k++)
			if (s[k] < '0' || s[k] > '9')
				return -1;
		any += len > 0;
		i++;
		if (s[len] == '\0')
			break;
		s += len + 1;
	}
	return i == n && any > 0 ? 0 : -1;
}

int rutil_job_one(struct http_req *r, struct http_res *res)
{
	struct fanout *f = r->d->router;
	size_t n = fanout_map(f)->n, m = 0;
	char (*ids)[24] = calloc(n, 24), (*paths)[64] = calloc(n, 64);
	struct fanout_call *c = calloc(n, sizeof *c), *bad;
	json_t **docs = calloc(n, sizeof *docs), *out;
	struct err e = {0};

	if (ids == NULL || paths == NULL || c == NULL || docs == NULL) {
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
		goto done;
	}
	if (split_job_id(r->params[0], n, ids) != 0) {
		err_set(&e, ERR_NOT_FOUND, "job_not_found",
		        "no job '%.64s' (a router's job ids name one job per shard: ID0-ID1-...)",
		        r->params[0]);
		http_problem(res, r, ERR_NOT_FOUND, &e, NULL);
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		if (ids[i][0] == '\0')
			continue;
		snprintf(paths[m], 64, "/v1/jobs/%s", ids[i]);
		c[m] = (struct fanout_call){.shard = i, .method = r->method, .path = paths[m]};
		m++;
	}
	if (fanout_run(f, c, m, r->request_id, &e) != 0) {
		rutil_gateway(res, r, &e);
	} else if ((bad = rutil_first_bad(c, m)) != NULL) {
		rutil_copy(res, bad);
	} else if (!parse_all(c, m, docs)) {
		err_set(&e, ERR_GATEWAY, "bad_shard_answer", "a shard answered with something not JSON");
		http_problem(res, r, ERR_GATEWAY, &e, NULL);
	} else if ((out = rutil_merge(docs, m)) == NULL) {
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
	} else {
		json_object_set_new(out, "id", json_string(r->params[0]));
		http_json(res, c[0].status, out);
	}
	free_docs(docs, m);
	fanout_calls_free(c, m);
done:
	free(ids);
	free(paths);
	free(c);
	free(docs);
	return 0;
}
