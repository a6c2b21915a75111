/* SPDX-License-Identifier: MIT */
/* router_search: scatter a search to every shard, merge exactly, carry per-shard cursors. */
#include "api/router_search.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/router_models.h"
#include "api/router_util.h"
#include "api/search.h"
#include "cluster/fanout.h"
#include "cluster/shardmap.h"
#include "daemon/daemon.h"
#include "lib/b64.h"
#include "lib/err.h"
#include "lib/hits.h"
#include "lib/jtext.h"
#include "search/query.h"

#define TOKEN_PREFIX "r1."

/* Per shard cursor. */
struct cursor {
	json_t *tok; /* the shard's token the page starts from (string), or NULL: from the top */
	size_t skip; /* results of that page already shown */
	int done;    /* nothing more on this shard */
};

static int token_decode(const char *s, struct cursor *cur, size_t n)
{
	size_t len, out_len = 0;
	uint8_t *buf;
	json_t *doc, *arr;
	int rc = -1;

	if (strncmp(s, TOKEN_PREFIX, 3) != 0)
		return -1;
	s += 3;
	len = strlen(s);
	if ((buf = malloc(b64_decoded_max(len) + 1)) == NULL)
		return -1;
	if (b64_decode(s, len, buf, &out_len) == 0 &&
	    (doc = json_loadb((const char *)buf, out_len, 0, NULL)) != NULL) {
		arr = json_object_get(doc, "s");
		if (json_array_size(arr) == n) {
			rc = 0;
			for (size_t i = 0; i < n; i++) {
				json_t *e = json_array_get(arr, i), *t = json_array_get(e, 0);

				if (json_array_size(e) != 3 || !json_is_integer(json_array_get(e, 1)) ||
				    !(json_is_string(t) || json_is_null(t))) {
					rc = -1;
					break;
				}
				cur[i].tok = json_is_string(t) ? json_incref(t) : NULL;
				cur[i].skip = (size_t)json_integer_value(json_array_get(e, 1));
				cur[i].done = json_is_true(json_array_get(e, 2));
			}
		}
		json_decref(doc);
	}
	free(buf);
	return rc;
}

static json_t *token_encode(const struct cursor *cur, size_t n)
{
	json_t *arr = json_array(), *doc;
	char *s, *b, *out;
	size_t blen;

	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("[O, I, b]", cur[i].tok ? cur[i].tok : json_null(),
		                                     (json_int_t)cur[i].skip, cur[i].done));
	doc = json_pack("{s:o}", "s", arr);
	s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (s == NULL)
		return NULL;
	b = b64_encode(s, strlen(s), &blen);
	free(s);
	if (b == NULL)
		return NULL;
	out = malloc(blen + 4);
	if (out != NULL)
		snprintf(out, blen + 4, "%s%s", TOKEN_PREFIX, b);
	free(b);
	doc = out != NULL ? json_string(out) : NULL;
	free(out);
	return doc;
}

/* Merge one query's answers (ans[i]: shard i's, NULL when done) with cursors cur: the merged
 * answer (new); cur advanced. */
static json_t *merge_one(json_t **ans, struct cursor *cur, size_t n, size_t limit)
{
	size_t *pos = calloc(n, sizeof *pos), shown = 0;
	json_t *results = json_array(), *stats = NULL, *out, *tok = NULL;
	json_t *st[256];
	size_t nst = 0;
	int more = 0;

	for (size_t i = 0; i < n; i++)
		pos[i] = cur[i].done ? 0 : cur[i].skip;
	for (;;) {
		size_t best = n;
		double bs = 0;
		int blocked = 0;

		for (size_t i = 0; i < n; i++) {
			json_t *rs = json_object_get(ans[i], "results");
			double s;

			if (cur[i].done || ans[i] == NULL)
				continue;
			if (pos[i] >= json_array_size(rs)) {
				/* a shard that has more but nothing left here: stop the page */
				if (json_is_string(json_object_get(ans[i], "page_token")))
					blocked = 1;
				continue;
			}
			s = json_number_value(json_object_get(json_array_get(rs, pos[i]), "score"));
			if (best == n || s > bs) {
				best = i;
				bs = s;
			}
		}
		if (blocked || best == n || shown == limit)
			break;
		json_array_append(results, json_array_get(json_object_get(ans[best], "results"),
		                                          pos[best]));
		pos[best]++;
		shown++;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *rs, *nt;

		if (cur[i].done || ans[i] == NULL)
			continue;
		rs = json_object_get(ans[i], "results");
		nt = json_object_get(ans[i], "page_token");
		if (nst < 256 && json_is_object(json_object_get(ans[i], "stats")))
			st[nst++] = json_object_get(ans[i], "stats");
		if (pos[i] >= json_array_size(rs)) {
			/* the shard's page is used up: its next page, or the end */
			json_decref(cur[i].tok);
			cur[i].tok = json_is_string(nt) ? json_incref(nt) : NULL;
			cur[i].skip = 0;
			cur[i].done = !json_is_string(nt);
		} else {
			cur[i].skip = pos[i];
		}
		if (!cur[i].done)
			more = 1;
	}
	if (nst > 0)
		stats = rutil_merge(st, nst);
	if (stats == NULL)
		stats = json_object();
	json_object_set_new(stats, "returned", json_integer((json_int_t)shown));
	json_object_set_new(stats, "truncated", json_boolean(more));
	json_object_set_new(stats, "truncation_reason", more ? json_string("limit") : json_null());
	if (more)
		tok = token_encode(cur, n);
	out = json_pack("{s:o, s:o, s:o}", "results", results, "stats", stats, "page_token",
	                tok != NULL ? tok : json_null());
	free(pos);
	return out;
}

static void cursors_free(struct cursor *cur, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(cur[i].tok);
}

/* The record's vector in the space, from its shard, for a record_id query: replaces
 * record_id (and query_space) in body by "vector". */
static int resolve_record(struct http_req *r, struct http_res *res, json_t *body)
{
	struct fanout *f = r->d->router;
	const char *id = json_string_value(json_object_get(body, "record_id"));
	const char *sp = json_string_value(json_object_get(body, "query_space"));
	struct fanout_call c = {0};
	char path[2048];
	struct err e = {0};
	json_t *rec, *embs, *v = NULL;

	if (id == NULL)
		return 0;
	if (sp == NULL)
		sp = json_string_value(json_object_get(body, "space"));
	snprintf(path, sizeof path, "/v1/datasets/%s/records/", r->params[0]);
	{
		size_t o = strlen(path);

		for (const char *p = id; *p && o < sizeof path - 4; p++) {
			unsigned char ch = (unsigned char)*p;

			if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.')
				path[o++] = (char)ch;
			else
				o += (size_t)snprintf(path + o, sizeof path - o, "%%%02X", ch);
		}
		path[o] = '\0';
	}
	c.shard = shardmap_place(fanout_map(f), id, strlen(id));
	c.method = "GET";
	c.path = path;
	if (fanout_run(f, &c, 1, r->request_id, &e) != 0) {
		rutil_gateway(res, r, &e);
		return -1;
	}
	if (c.status != 200) {
		rutil_copy(res, &c);
		fanout_calls_free(&c, 1);
		return -1;
	}
	rec = fanout_json(&c);
	fanout_calls_free(&c, 1);
	embs = json_object_get(rec, "embeddings");
	if (sp != NULL)
		v = json_object_get(embs, sp);
	else if (json_object_size(embs) == 1)
		v = json_object_iter_value(json_object_iter(embs));
	if (!json_is_array(v)) {
		json_decref(rec);
		return 0; /* the shards give the error for a record_id they cannot use */
	}
	json_object_set(body, "vector", v);
	json_object_del(body, "record_id");
	json_object_del(body, "query_space");
	json_decref(rec);
	return 0;
}

static int not_supported(struct http_req *r, struct http_res *res, const char *what)
{
	struct err e = {0};

	err_set(&e, ERR_NOT_SUPPORTED, "not_supported_by_router",
	        "a search with '%s' is not served by a router (its scores depend on each shard's "
	        "own statistics); send it to a shard", what);
	return http_problem(res, r, ERR_NOT_SUPPORTED, &e, NULL);
}

/* One round: body (new per shard with its page_token) to every live shard; ans[i] parsed. */
static int scatter(struct http_req *r, struct http_res *res, json_t *body, struct cursor *cur,
                   const char *path, json_t **ans, int raw)
{
	struct fanout *f = r->d->router;
	size_t n = fanout_map(f)->n, m = 0;
	struct fanout_call *c = calloc(n, sizeof *c), *bad;
	char **bodies = calloc(n, sizeof *bodies);
	struct err e = {0};
	int rc = -1;

	if (c == NULL || bodies == NULL) {
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (cur[i].done)
			continue;
		if (!raw) {
			if (cur[i].tok != NULL)
				json_object_set(body, "page_token", cur[i].tok);
			else
				json_object_del(body, "page_token");
			bodies[i] = json_dumps(body, JSON_COMPACT);
		}
		c[m++] = (struct fanout_call){
			.shard = i, .method = "POST", .path = path,
			.body = raw ? r->body : bodies[i],
			.body_len = raw ? r->body_len : (bodies[i] ? strlen(bodies[i]) : 0),
			.content_type = raw ? "application/octet-stream" : "application/json"};
	}
	if (fanout_run(f, c, m, r->request_id, &e) != 0) {
		rutil_gateway(res, r, &e);
	} else if ((bad = rutil_first_bad(c, m)) != NULL) {
		rutil_copy(res, bad);
	} else {
		rc = 0;
		for (size_t k = 0; k < m; k++)
			if ((ans[c[k].shard] = fanout_json(&c[k])) == NULL)
				rc = -1;
		if (rc != 0) {
			err_set(&e, ERR_GATEWAY, "bad_shard_answer", "a shard's answer is not JSON");
			http_problem(res, r, ERR_GATEWAY, &e, NULL);
		}
	}
	fanout_calls_free(c, m);
out:
	for (size_t i = 0; bodies != NULL && i < n; i++)
		free(bodies[i]);
	free(bodies);
	free(c);
	return rc;
}

static size_t limit_of(struct http_req *r, json_t *body)
{
	const char *q = http_query(r, "limit");
	json_t *l = json_object_get(body, "limit");

	if (q != NULL)
		return (size_t)strtoull(q, NULL, 10);
	return json_is_integer(l) ? (size_t)json_integer_value(l) : 10;
}

/* A batch (vectors or raw rows): every query merged on its own, from the top. */
static json_t *merge_batch(json_t **ans, size_t n, size_t limit)
{
	json_t *qs = json_array();
	size_t nq = json_array_size(json_object_get(ans[0], "queries"));
	struct cursor *cur = calloc(n, sizeof *cur);
	json_t **one = calloc(n, sizeof *one);

	for (size_t q = 0; cur != NULL && one != NULL && q < nq; q++) {
		memset(cur, 0, n * sizeof *cur);
		for (size_t i = 0; i < n; i++)
			one[i] = json_array_get(json_object_get(ans[i], "queries"), q);
		json_array_append_new(qs, merge_one(one, cur, n, limit));
		cursors_free(cur, n);
	}
	free(cur);
	free(one);
	return json_pack("{s:o}", "queries", qs);
}

/* The merged answer out (one query's, or a batch's) in the binary format of lib/hits.h, with
 * limit slots per query: 0 and *bin new; 1 when a result carries more than id and score
 * (the binary answer cannot hold it); -1 out of memory. The scores are the shards' exact
 * ones (their JSON answers), where one daemon's binary answer from an exact index carries
 * the index's (search/query.c: index_candidates). */
static int hits_of(json_t *out, size_t limit, char **bin, size_t *len)
{
	json_t *qs = json_object_get(out, "queries"), *one, *x;
	size_t nq = qs != NULL ? json_array_size(qs) : 1, j;
	char **part = calloc(nq ? nq : 1, sizeof *part);
	size_t *plen = calloc(nq ? nq : 1, sizeof *plen);
	int rc = part != NULL && plen != NULL ? 0 : -1;

	for (size_t i = 0; rc == 0 && i < nq; i++) {
		struct jtext t = {0};

		one = qs != NULL ? json_array_get(qs, i) : out;
		hits_part_begin(&t, json_is_true(json_object_get(json_object_get(one, "stats"),
		                                                 "truncated"))
		                            ? HITS_TRUNCATED
		                            : 0);
		json_array_foreach(json_object_get(one, "results"), j, x) {
			const char *id = json_string_value(json_object_get(x, "id"));

			if (json_object_size(x) != 2 || id == NULL) {
				rc = 1;
				break;
			}
			hits_part_add(&t, id, json_string_length(json_object_get(x, "id")),
			              (float)json_number_value(json_object_get(x, "score")));
		}
		part[i] = jtext_take(&t, &plen[i]);
		if (rc == 0 && part[i] == NULL)
			rc = -1;
	}
	if (rc == 0 && hits_join(part, plen, nq, (uint32_t)limit, bin, len) != 0)
		rc = -1;
	for (size_t i = 0; part != NULL && i < nq; i++)
		free(part[i]);
	free(part);
	free(plen);
	return rc;
}

/* 406 for a client that accepts the binary answer only (QUERY_ANSWER_HITS) and asked for
 * what it cannot hold; 0 (nothing done) otherwise. */
static int json_only(struct http_req *r, struct http_res *res, const char *what)
{
	struct err e = {0};

	if (search_answer_format(r) != QUERY_ANSWER_HITS)
		return 0;
	err_set(&e, ERR_NOT_ACCEPTABLE, "not_acceptable", HITS_JSON_ONLY, what);
	http_problem(res, r, ERR_NOT_ACCEPTABLE, &e, NULL);
	return 1;
}

/* Answer out (taken) in the format the client asked for (search_answer_format). */
static void answer(struct http_req *r, struct http_res *res, json_t *out, size_t limit)
{
	int rc = 1;
	char *bin = NULL;
	size_t len = 0;

	if (search_answer_format(r) == QUERY_ANSWER_JSON ||
	    (rc = hits_of(out, limit, &bin, &len)) == 1) {
		if (rc == 1 && json_only(r, res, "results with fields or relevance")) {
			json_decref(out);
			return;
		}
		http_json(res, 200, out);
		return;
	}
	json_decref(out);
	if (rc != 0) {
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
		return;
	}
	res->status = 200;
	res->content_type = HITS_MEDIA_TYPE;
	res->body = bin;
	res->len = len;
}

int rsearch_post(struct http_req *r, struct http_res *res)
{
	struct fanout *f = r->d->router;
	size_t n = fanout_map(f)->n;
	struct cursor *cur = calloc(n, sizeof *cur);
	json_t **ans = calloc(n, sizeof *ans), *body = NULL, *out = NULL;
	char mt[64], *path = rutil_path(r);
	int raw;
	struct err e = {0};

	if (cur == NULL || ans == NULL || path == NULL) {
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
		goto out;
	}
	raw = strcmp(http_media_type(r, mt, sizeof mt), "application/octet-stream") == 0;
	if (!raw) {
		if (http_body_json(r, res, &body) != 0)
			goto out;
		/* relevance: every shard holds the same weights (PUT .../weights through the
		 * router), and a relevance is monotone in the cosine "score" the merge ranks by */
		if (json_object_get(body, "rescore")) {
			not_supported(r, res, "rescore");
			goto out;
		}
		if (json_is_string(json_object_get(body, "page_token")) &&
		    token_decode(json_string_value(json_object_get(body, "page_token")), cur, n) != 0) {
			err_set(&e, ERR_MALFORMED, "bad_page_token", "page_token is not one of ours");
			http_problem(res, r, ERR_MALFORMED, &e, NULL);
			goto out;
		}
		if (resolve_record(r, res, body) != 0)
			goto out;
		if (json_object_get(body, "hubness") != NULL) {
			if (!json_only(r, res, "results with hubness"))
				rmodels_hubness_search(r, res, body); /* corpus-wide statistics */
			goto out;
		}
	}
	if (scatter(r, res, body, cur, path, ans, raw) != 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (ans[i] != NULL) {
			out = json_object_get(ans[i], "queries") != NULL
			              ? merge_batch(ans, n, limit_of(r, body))
			              : merge_one(ans, cur, n, limit_of(r, body));
			break;
		}
	if (out == NULL)
		out = json_pack("{s:[], s:{s:I, s:b, s:n}, s:n}", "results", "stats", "returned",
		                (json_int_t)0, "truncated", 0, "truncation_reason", "page_token");
	answer(r, res, out, limit_of(r, body));
out:
	for (size_t i = 0; ans != NULL && i < n; i++)
		json_decref(ans[i]);
	if (cur != NULL)
		cursors_free(cur, n);
	free(cur);
	free(ans);
	free(path);
	json_decref(body);
	return 0;
}

int rsearch_count(struct http_req *r, struct http_res *res)
{
	struct fanout *f = r->d->router;
	size_t n = fanout_map(f)->n;
	struct cursor *cur = calloc(n, sizeof *cur);
	json_t **ans = calloc(n, sizeof *ans), *body = NULL, *out;
	char mt[64], *path = rutil_path(r);
	int raw;

	if (cur == NULL || ans == NULL || path == NULL) {
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
		goto out;
	}
	if (json_only(r, res, "counts (search:count)"))
		goto out;
	raw = strcmp(http_media_type(r, mt, sizeof mt), "application/octet-stream") == 0;
	if (!raw) {
		if (http_body_json(r, res, &body) != 0)
			goto out;
		if (json_object_get(body, "hubness")) {
			not_supported(r, res, "hubness");
			goto out;
		}
		if (resolve_record(r, res, body) != 0)
			goto out;
	}
	if (scatter(r, res, body, cur, path, ans, raw) != 0)
		goto out;
	out = rutil_merge(ans, n); /* counts (and candidates_scanned) summed */
	http_json(res, 200, out != NULL ? out : json_object());
out:
	for (size_t i = 0; ans != NULL && i < n; i++)
		json_decref(ans[i]);
	free(cur);
	free(ans);
	free(path);
	json_decref(body);
	return 0;
}
