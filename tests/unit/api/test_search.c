/* SPDX-License-Identifier: MIT */
/* test_search: the search request's two wire formats (api/search.c). The same query sent as a
 * JSON body and as raw rows with a query string decodes into equal struct search_requests;
 * bad requests get their documented code, slug and detail. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/search.h"
#include "lib/b64.h"
#include "lib/err.h"
#include "lib/vec.h"
#include "tests/harness.h"

#define DIM 4

/* Exact in f16 too, so the f16 paths decode to the same floats. */
static const float rows[2][DIM] = {{0.5f, -1.25f, 3.0f, 0.125f}, {2.0f, -0.75f, 1.0f, 0.0f}};

static int same_str(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Every field of two requests (strings by value, vectors by their floats). */
static int same_request(const struct search_request *a, const struct search_request *b)
{
	if (!same_str(a->dataset, b->dataset) || !same_str(a->space, b->space) ||
	    a->nq != b->nq || a->dim != b->dim || (a->vectors == NULL) != (b->vectors == NULL) ||
	    !same_str(a->record_id, b->record_id) || !same_str(a->query_space, b->query_space) ||
	    a->batch != b->batch || a->count != b->count || a->limit != b->limit ||
	    a->has_threshold != b->has_threshold || a->score_threshold != b->score_threshold ||
	    a->has_metric != b->has_metric || a->metric != b->metric || a->exact != b->exact ||
	    a->ef_search != b->ef_search || a->nprobe != b->nprobe || a->with != b->with ||
	    a->nwith_scores != b->nwith_scores || !same_str(a->subset, b->subset) ||
	    !same_str(a->rescore, b->rescore) || a->rescore_candidates != b->rescore_candidates ||
	    !same_str(a->relevance, b->relevance) ||
	    !(a->relevance_min == b->relevance_min ||
	      (isnan(a->relevance_min) && isnan(b->relevance_min))) ||
	    !same_str(a->hubness.normalizer, b->hubness.normalizer) ||
	    !same_str(a->page_token, b->page_token))
		return 0;
	return a->vectors == NULL ||
	       memcmp(a->vectors, b->vectors, a->nq * a->dim * sizeof *a->vectors) == 0;
}

/* The request borrows from the body: *body (new) lives until the caller is done. */
static int from_json(struct search_wire *w, const char *text, json_t **body, struct err *e)
{
	int rc;

	if ((*body = json_loads(text, 0, NULL)) == NULL)
		return -100;
	rc = search_wire_json(w, *body, e);
	return rc == 0 ? search_wire_vectors(w, DIM, e) : rc;
}

/* args: "name=value" pairs, NULL-terminated; bytes: the body. */
static int from_rows(struct search_wire *w, const char *const *args, const void *bytes,
                     size_t len, struct err *e)
{
	int rc = 0;

	w->rows = bytes;
	w->rows_len = len;
	for (size_t i = 0; rc == 0 && args[i] != NULL; i++) {
		char name[64];
		const char *eq = strchr(args[i], '=');

		snprintf(name, sizeof name, "%.*s", (int)(eq - args[i]), args[i]);
		rc = search_wire_arg(w, name, eq + 1, e);
	}
	return rc == 0 ? search_wire_vectors(w, DIM, e) : rc;
}

static void f32_rows(unsigned char *out)
{
	for (size_t i = 0; i < 2 * DIM; i++) {
		uint32_t u;

		memcpy(&u, &rows[i / DIM][i % DIM], 4);
		vec_le32_put(out + 4 * i, u);
	}
}

static void f16_rows(unsigned char *out)
{
	for (size_t i = 0; i < 2 * DIM; i++) {
		uint16_t h = vec_f32_to_f16_one(rows[i / DIM][i % DIM]);

		out[2 * i] = (unsigned char)(h & 0xff);
		out[2 * i + 1] = (unsigned char)(h >> 8);
	}
}

static void json_and_rows_build_equal_requests(void)
{
	static const char *const args[] = {
		"space=image", "limit=7",      "score_threshold=0.25", "metric=ip", "subset=s",
		"with=text,kind", "ef_search=32", "nprobe=4",          "exact=true", NULL};
	const char *text = "{\"vectors\": [[0.5, -1.25, 3, 0.125], [2, -0.75, 1, 0]],"
	                   " \"space\": \"image\", \"limit\": 7, \"score_threshold\": 0.25,"
	                   " \"metric\": \"ip\", \"subset\": \"s\", \"with\": [\"kind\", \"text\"],"
	                   " \"params\": {\"ef_search\": 32, \"nprobe\": 4, \"exact\": true}}";
	unsigned char raw[2 * DIM * 4];
	struct search_wire a, b;
	struct err e = {0};
	json_t *body = NULL;
	int ok;

	f32_rows(raw);
	search_wire_init(&a, "ds", 1);
	search_wire_init(&b, "ds", 1);
	CHECK_INT(from_json(&a, text, &body, &e), 0);
	CHECK_INT(from_rows(&b, args, raw, sizeof raw, &e), 0);
	ok = same_request(&a.req, &b.req);
	/* and what they decoded is the query itself */
	ok = ok && a.req.nq == 2 && a.req.dim == DIM && a.req.batch && a.req.count &&
	     a.req.limit == 7 && a.req.score_threshold == 0.25 && a.req.metric == INDEX_IP &&
	     a.req.with == (QUERY_WITH_TEXT | QUERY_WITH_KIND) && a.req.ef_search == 32 &&
	     a.req.exact && memcmp(a.req.vectors, rows, sizeof rows) == 0;
	search_wire_free(&a);
	search_wire_free(&b);
	json_decref(body);
	CHECK(ok);
}

static void f16_b64_and_f16_rows_agree(void)
{
	static const char *const args[] = {"dtype=f16", NULL};
	unsigned char raw[2 * DIM * 2];
	char *b0, *b1, text[512];
	struct search_wire a, b;
	struct err e = {0};
	json_t *body = NULL;
	int ok;

	f16_rows(raw);
	b0 = b64_encode(raw, DIM * 2, NULL);
	b1 = b64_encode(raw + DIM * 2, DIM * 2, NULL);
	CHECK(b0 != NULL && b1 != NULL);
	snprintf(text, sizeof text,
	         "{\"vectors\": [{\"dtype\": \"f16\", \"b64\": \"%s\"}, {\"dtype\": \"f16\", "
	         "\"b64\": \"%s\"}]}",
	         b0, b1);
	free(b0);
	free(b1);
	search_wire_init(&a, "ds", 0);
	search_wire_init(&b, "ds", 0);
	CHECK_INT(from_json(&a, text, &body, &e), 0);
	CHECK_INT(from_rows(&b, args, raw, sizeof raw, &e), 0);
	ok = same_request(&a.req, &b.req) && a.req.nq == 2 && a.req.space == NULL &&
	     a.req.limit == QUERY_LIMIT_DEFAULT && !a.req.has_threshold && !a.req.has_metric &&
	     memcmp(a.req.vectors, rows, sizeof rows) == 0;
	search_wire_free(&a);
	search_wire_free(&b);
	json_decref(body);
	CHECK(ok);
}

static void json_options(void)
{
	const char *text =
		"{\"record_id\": \"r1\", \"query_space\": \"text\", \"page_token\": \"p1.0.0.0\","
		" \"with\": [{\"scores\": [\"aes\", 5]}], \"rescore\": {\"filter\": \"f\", "
		"\"candidates\": 50}, \"relevance\": {\"adapter\": \"ad\", \"min\": 0.5},"
		" \"hubness\": {\"normalizer\": \"n\", \"method\": \"csls\", \"candidates\": 20,"
		" \"dualdis_mode\": \"monotone\"}}";
	struct search_wire w;
	struct err e = {0};
	json_t *body = NULL;
	int ok;

	search_wire_init(&w, "ds", 0);
	CHECK_INT(from_json(&w, text, &body, &e), 0);
	ok = w.req.vectors == NULL && same_str(w.req.record_id, "r1") &&
	     same_str(w.req.query_space, "text") && same_str(w.req.page_token, "p1.0.0.0") &&
	     w.req.nwith_scores == 2 && same_str(w.req.with_scores[0], "aes") &&
	     w.req.with_scores[1] == NULL && same_str(w.req.rescore, "f") &&
	     w.req.rescore_candidates == 50 && same_str(w.req.relevance, "ad") &&
	     w.req.relevance_min == 0.5 && same_str(w.req.hubness.normalizer, "n") &&
	     w.req.hubness.method == HUBNESS_CSLS && w.req.hubness.candidates == 20 &&
	     w.req.hubness.dualdis_mode == HUBNESS_MONOTONE && !w.req.batch;
	search_wire_free(&w);
	json_decref(body);
	CHECK(ok);
}

static const struct {
	const char *json;
	int code;
	const char *slug, *detail; /* detail: NULL = not checked */
} json_cases[] = {
	{"[]", ERR_INVALID, "bad_query", "the body must be a JSON object"},
	{"{\"vector\": [1,2,3,4], \"x\": 1}", ERR_INVALID, "unknown_field", "unknown field 'x'"},
	{"{\"vector\": [1,2,3,4], \"limit\": 0}", ERR_INVALID, "bad_query",
	 "\"limit\" must be 1 to 1000"},
	{"{\"vector\": [1,2,3,4], \"limit\": 1001}", ERR_INVALID, "bad_query", NULL},
	{"{\"vector\": [1,2,3,4], \"limit\": 2.0}", ERR_INVALID, "bad_query", NULL},
	{"{\"vector\": [1,2,3,4], \"metric\": \"dot\"}", ERR_INVALID, "bad_query",
	 "\"metric\" must be cosine, ip or l2"},
	{"{\"vector\": [1,2,3,4], \"score_threshold\": \"x\"}", ERR_INVALID, "bad_query",
	 "\"score_threshold\" must be a number"},
	{"{\"vector\": [1,2,3,4], \"params\": {\"ef_search\": 0}}", ERR_INVALID, "bad_query",
	 "ef_search must be >= 1"},
	{"{\"vector\": [1,2,3,4], \"with\": [\"txt\"]}", ERR_INVALID, "bad_query", NULL},
	{"{\"vector\": [1,2,3,4], \"relevance\": {\"adapter\": \"a\", \"min\": 1}}", ERR_INVALID,
	 "bad_query", "relevance.min must be a number in [0, 1)"},
	{"{\"vector\": [1,2,3,4], \"rescore\": {\"filter\": \"f\", \"candidates\": 0}}",
	 ERR_INVALID, "bad_query", "rescore.candidates must be 1 to 100000"},
	{"{\"vector\": [1,2,3,4], \"hubness\": {\"normalizer\": \"n\", \"k\": 1}}", ERR_INVALID,
	 "unknown_field", "hubness: unknown field 'k'"},
	{"{\"vector\": [1,2,3,4], \"hubness\": {\"normalizer\": \"n\", \"method\": \"raw\"}}",
	 ERR_INVALID, "bad_query", NULL},
	{"{\"vector\": [1,2,3,4], \"page_token\": 5}", ERR_MALFORMED, "bad_page_token", NULL},
	{"{\"space\": \"image\"}", ERR_INVALID, "bad_query",
	 "give exactly one of \"vector\", \"vectors\" and \"record_id\""},
	{"{\"vector\": [1,2,3,4], \"record_id\": \"r\"}", ERR_INVALID, "bad_query", NULL},
	{"{\"vectors\": []}", ERR_INVALID, "bad_query",
	 "\"vectors\" is an array of 1 to 1024 vectors"},
	{"{\"record_id\": 7}", ERR_INVALID, "bad_query", NULL},
	/* the vectors, against dim 4 */
	{"{\"vector\": [1,2,3]}", ERR_INVALID, "dimension_mismatch",
	 "vector has 3 values, the space has dim 4"},
	{"{\"vectors\": [[1,2,3,4], [1,2,\"x\",4]]}", ERR_INVALID, "non_finite",
	 "vectors[1]: value 2 is not a finite number"},
	{"{\"vector\": {\"dtype\": \"f32\", \"b64\": \"AAAA\"}}", ERR_INVALID, "invalid_embedding",
	 "vector: bad base64 or not 4 f32 values"},
	{"{\"vector\": {\"dtype\": \"f64\", \"b64\": \"AAAA\"}}", ERR_INVALID, "invalid_embedding",
	 NULL},
	{"{\"vector\": \"x\"}", ERR_INVALID, "bad_query", "vector must be an array or {dtype, b64}"},
};

static void json_errors(void)
{
	for (size_t i = 0; i < sizeof json_cases / sizeof json_cases[0]; i++) {
		struct search_wire w;
		struct err e = {0};
		json_t *body = NULL;
		int rc;

		search_wire_init(&w, "ds", 0);
		rc = from_json(&w, json_cases[i].json, &body, &e);
		search_wire_free(&w);
		json_decref(body);
		if (rc != json_cases[i].code || strcmp(e.slug, json_cases[i].slug) != 0 ||
		    (json_cases[i].detail != NULL && strcmp(e.detail, json_cases[i].detail) != 0))
			harness_fail(__FILE__, __LINE__, "%s: %d %s \"%s\"", json_cases[i].json, rc,
			             e.slug, e.detail);
	}
}

static void rows_errors(void)
{
	static const struct {
		const char *arg;
		size_t len;
		const char *slug;
	} cases[] = {
		{"space=image", 2 * DIM * 4 - 4, "bad_query"}, /* not a whole row */
		{"space=image", 0, "bad_query"},               /* no rows */
		{"bogus=1", 2 * DIM * 4, "unknown_field"},
		{"page_token=p1.0.0.0", 2 * DIM * 4, "unknown_field"},
		{"dtype=f64", 2 * DIM * 4, "bad_query"},
		{"exact=yes", 2 * DIM * 4, "bad_query"},
		{"limit=lots", 2 * DIM * 4, "bad_query"},
		{"limit=10.0", 2 * DIM * 4, "bad_query"},
		{"score_threshold=inf", 2 * DIM * 4, "bad_query"},
		{"nprobe=0", 2 * DIM * 4, "bad_query"},
		{"with=text,,meta", 2 * DIM * 4, "bad_query"},
		{"metric=dot", 2 * DIM * 4, "bad_query"},
	};
	unsigned char raw[2 * DIM * 4], nan_row[2 * DIM * 4];
	uint32_t qnan = 0x7fc00000u;

	f32_rows(raw);
	memcpy(nan_row, raw, sizeof raw);
	vec_le32_put(nan_row + 4 * (DIM + 2), qnan);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *args[] = {cases[i].arg, NULL};
		struct search_wire w;
		struct err e = {0};
		int rc;

		search_wire_init(&w, "ds", 0);
		rc = from_rows(&w, args, raw, cases[i].len, &e);
		search_wire_free(&w);
		if (rc != ERR_INVALID || strcmp(e.slug, cases[i].slug) != 0)
			harness_fail(__FILE__, __LINE__, "%s (%zu bytes): %d %s", cases[i].arg,
			             cases[i].len, rc, e.slug);
	}
	{
		const char *args[] = {NULL};
		struct search_wire w;
		struct err e = {0};
		int rc;

		search_wire_init(&w, "ds", 0);
		rc = from_rows(&w, args, nan_row, sizeof nan_row, &e);
		search_wire_free(&w);
		CHECK_INT(rc, ERR_INVALID);
		CHECK_STR(e.detail, "row 1: value 2 is not a finite number");
	}
}

int main(void)
{
	HARNESS_RUN(json_and_rows_build_equal_requests);
	HARNESS_RUN(f16_b64_and_f16_rows_agree);
	HARNESS_RUN(json_options);
	HARNESS_RUN(json_errors);
	HARNESS_RUN(rows_errors);
	return harness_done();
}
