/* SPDX-License-Identifier: MIT */
/* search: handlers of indexes and similarity search, and the search request's two wire
 * formats (a JSON body; raw query rows with a query string) decoded into the engine's
 * struct search_request (search/query.h). Stateless and thread-safe. */
#include "api/search.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/resource.h"
#include "daemon/daemon.h"
#include "lib/b64.h"
#include "lib/err.h"
#include "lib/hits.h"
#include "lib/log.h"
#include "lib/vec.h"
#include "search/catalog.h"
#include "search/normalizers.h"
#include "search/query.h"

static const struct resource index_resource = {
	.param = "space",
	.plural = "indexes",
	.deleted = "index_deleted",
	.list = catalog_list_json,
	.get = catalog_get_json,
	.del = catalog_delete,
};

int search_indexes_list(struct http_req *r, struct http_res *res)
{
	return resource_list(r, res, &index_resource);
}

int search_index_get(struct http_req *r, struct http_res *res)
{
	return resource_get(r, res, &index_resource);
}

int search_index_put(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *space = ds ? http_name_param(r, res, 1, "space") : NULL;
	struct err e = {0};
	json_t *body = NULL, *view = NULL;
	uint64_t job = 0;
	int rc, created = 0;

	if (space == NULL || http_body_json(r, res, &body) != 0)
		return 0;
	rc = catalog_put(r->core, ds, space, body, &view, &job, &created, &e);
	json_decref(body);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	if (job == 0)
		return http_json(res, 200, view);
	log_msg(LOG_INFO, "index_put", "dataset=%s space=%s job=%llu", ds, space,
	        (unsigned long long)job);
	return http_accepted(res, job, "index", view);
}

int search_index_delete(struct http_req *r, struct http_res *res)
{
	return resource_delete(r, res, &index_resource);
}

/* ---- the JSON body ---- */

static int bad_query(struct err *e, const char *detail)
{
	return err_set(e, ERR_INVALID, "bad_query", "%s", detail);
}

static int check_fields(const json_t *body, struct err *e)
{
	static const char *const known[] = {"vector", "vectors", "record_id", "query_space", "space",
	                                    "limit", "score_threshold", "with", "params",
	                                    "page_token", "metric", "subset", "rescore",
	                                    "relevance", "hubness", NULL};
	const char *key;
	json_t *val;

	if (!json_is_object(body))
		return bad_query(e, "the body must be a JSON object");
	json_object_foreach((json_t *)body, key, val) {
		size_t i;

		for (i = 0; known[i] != NULL && strcmp(known[i], key) != 0; i++)
			;
		if (known[i] == NULL)
			return err_set(e, ERR_INVALID, "unknown_field", "unknown field '%s'", key);
	}
	return 0;
}

/* metric, limit and score_threshold. */
static int parse_ranking(struct search_request *req, const json_t *body, struct err *e)
{
	const json_t *v;

	if ((v = json_object_get(body, "metric")) != NULL) {
		if (index_metric_parse(json_string_value(v), &req->metric) != 0)
			return bad_query(e, "\"metric\" must be cosine, ip or l2");
		req->has_metric = 1;
	}
	if ((v = json_object_get(body, "limit")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > QUERY_LIMIT_MAX)
			return err_set(e, ERR_INVALID, "bad_query", "\"limit\" must be 1 to %d",
			               QUERY_LIMIT_MAX);
		req->limit = (size_t)json_integer_value(v);
	}
	if ((v = json_object_get(body, "score_threshold")) != NULL) {
		if (!json_is_number(v) || !isfinite(json_number_value(v)))
			return bad_query(e, "\"score_threshold\" must be a number");
		req->has_threshold = 1;
		req->score_threshold = json_number_value(v);
	}
	return 0;
}

/* "relevance": {"adapter": name, "min": x}. */
static int parse_relevance(struct search_request *req, const json_t *body, struct err *e)
{
	const json_t *rv = json_object_get(body, "relevance"), *m;
	const char *name;

	if (rv == NULL)
		return 0;
	name = json_string_value(json_object_get(rv, "adapter"));
	m = json_object_get(rv, "min");
	if (!json_is_object(rv) || name == NULL || json_object_size(rv) != 1u + (m != NULL))
		return bad_query(e, "\"relevance\" is {\"adapter\": name, \"min\": x}");
	if (m != NULL) {
		if (!json_is_number(m) || !(json_number_value(m) >= 0) || !(json_number_value(m) < 1))
			return bad_query(e, "relevance.min must be a number in [0, 1)");
		req->relevance_min = json_number_value(m);
	}
	req->relevance = name;
	return 0;
}

/* "params": {"exact", "ef_search", "nprobe"} (other keys are ignored). */
static int parse_params(struct search_request *req, const json_t *body, struct err *e)
{
	const json_t *v = json_object_get(body, "params"), *x;

	if (v == NULL)
		return 0;
	if (!json_is_object(v))
		return bad_query(e, "\"params\" must be an object");
	req->exact = json_is_true(json_object_get(v, "exact"));
	if ((x = json_object_get(v, "ef_search")) != NULL) {
		if (!json_is_integer(x) || json_integer_value(x) < 1)
			return bad_query(e, "ef_search must be >= 1");
		req->ef_search = json_integer_value(x);
	}
	if ((x = json_object_get(v, "nprobe")) != NULL) {
		if (!json_is_integer(x) || json_integer_value(x) < 1)
			return bad_query(e, "nprobe must be >= 1");
		req->nprobe = json_integer_value(x);
	}
	return 0;
}

/* One name of "with" into its bit; 0 for no such name. */
static unsigned with_bit(const char *s)
{
	static const struct {
		const char *name;
		unsigned bit;
	} bits[] = {{"text", QUERY_WITH_TEXT}, {"meta", QUERY_WITH_META},
	            {"image", QUERY_WITH_IMAGE}, {"kind", QUERY_WITH_KIND}};

	for (size_t i = 0; s != NULL && i < sizeof bits / sizeof bits[0]; i++)
		if (strcmp(s, bits[i].name) == 0)
			return bits[i].bit;
	return 0;
}

static const char with_detail[] =
	"\"with\" takes text, meta, image, kind and {\"scores\": [filter names]}";

/* "with": names and {"scores": [filter names]} (the last such object counts; a name that
 * is not a string stays NULL, and gets no score). */
static int parse_with(struct search_wire *w, const json_t *body, struct err *e)
{
	const json_t *v = json_object_get(body, "with"), *scores = NULL;
	json_t *x;
	size_t i;

	if (v == NULL)
		return 0;
	if (!json_is_array(v))
		return bad_query(e, "\"with\" must be an array");
	json_array_foreach(v, i, x) {
		unsigned bit = with_bit(json_string_value(x));

		if (bit != 0)
			w->req.with |= bit;
		else if (json_is_object(x) && json_is_array(json_object_get(x, "scores")))
			scores = json_object_get(x, "scores");
		else
			return bad_query(e, with_detail);
	}
	if (json_array_size(scores) == 0)
		return 0;
	if ((w->names = calloc(json_array_size(scores), sizeof *w->names)) == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	json_array_foreach(scores, i, x)
		w->names[i] = json_string_value(x);
	w->req.with_scores = w->names;
	w->req.nwith_scores = json_array_size(scores);
	return 0;
}

/* "subset": name and "rescore": {"filter": name, "candidates": n}. */
static int parse_subset_rescore(struct search_request *req, const json_t *body, struct err *e)
{
	const json_t *v = json_object_get(body, "subset"), *rs = json_object_get(body, "rescore");
	const json_t *cand;

	if (v != NULL && !json_is_string(v))
		return bad_query(e, "\"subset\" must be a subset name");
	req->subset = json_string_value(v);
	if (rs == NULL)
		return 0;
	if (!json_is_object(rs) || !json_is_string(json_object_get(rs, "filter")))
		return bad_query(e, "\"rescore\" is {\"filter\": name, \"candidates\": n}");
	req->rescore = json_string_value(json_object_get(rs, "filter"));
	if ((cand = json_object_get(rs, "candidates")) != NULL) {
		if (!json_is_integer(cand) || json_integer_value(cand) < 1 ||
		    json_integer_value(cand) > QUERY_RESCORE_CANDIDATES_MAX)
			return err_set(e, ERR_INVALID, "bad_query", "rescore.candidates must be 1 to %d",
			               QUERY_RESCORE_CANDIDATES_MAX);
		req->rescore_candidates = (size_t)json_integer_value(cand);
	}
	return 0;
}

/* "hubness": {"normalizer": name, "method", "candidates", "dualdis_mode"}. */
static int parse_hubness(struct query_hubness *hb, const json_t *body, struct err *e)
{
	const json_t *spec = json_object_get(body, "hubness"), *cand, *mode;
	const char *name = json_string_value(json_object_get(spec, "normalizer")), *key, *m;
	json_t *val;

	if (spec == NULL)
		return 0;
	if (!json_is_object(spec) || name == NULL)
		return bad_query(e, "\"hubness\" is {\"normalizer\": name, \"method\": \"dualis\", "
		                    "\"candidates\": n}");
	json_object_foreach((json_t *)spec, key, val) {
		if (strcmp(key, "normalizer") != 0 && strcmp(key, "method") != 0 &&
		    strcmp(key, "candidates") != 0 && strcmp(key, "dualdis_mode") != 0)
			return err_set(e, ERR_INVALID, "unknown_field", "hubness: unknown field '%s'", key);
	}
	if (json_object_get(spec, "method") != NULL &&
	    (hubness_method_parse(json_string_value(json_object_get(spec, "method")),
	                          &hb->method) != 0 ||
	     hb->method == HUBNESS_RAW))
		return bad_query(e, "hubness.method must be is, dis, dualis, dualdis or csls");
	if ((cand = json_object_get(spec, "candidates")) != NULL) {
		if (!json_is_integer(cand) || json_integer_value(cand) < 1 ||
		    json_integer_value(cand) > NORMALIZERS_CANDIDATES_MAX)
			return err_set(e, ERR_INVALID, "bad_query", "hubness.candidates must be 1 to %d",
			               NORMALIZERS_CANDIDATES_MAX);
		hb->candidates = (size_t)json_integer_value(cand);
	}
	if ((mode = json_object_get(spec, "dualdis_mode")) != NULL) {
		m = json_string_value(mode);
		if (m == NULL || (strcmp(m, "reference") != 0 && strcmp(m, "monotone") != 0))
			return bad_query(e, "hubness.dualdis_mode must be \"reference\" or \"monotone\"");
		hb->dualdis_mode = strcmp(m, "monotone") == 0 ? HUBNESS_MONOTONE : HUBNESS_REFERENCE;
	}
	hb->normalizer = name;
	return 0;
}

/* The query: exactly one of "vector", "vectors" (decoded later: search_wire_vectors) and
 * "record_id" (with "query_space"); "space" (not a string: the only space) and the page. */
static int parse_query(struct search_wire *w, const json_t *body, struct err *e)
{
	const json_t *rid = json_object_get(body, "record_id"), *t;

	w->vector = json_object_get(body, "vector");
	w->vectors = json_object_get(body, "vectors");
	w->req.space = json_string_value(json_object_get(body, "space"));
	if ((t = json_object_get(body, "page_token")) != NULL &&
	    (w->req.page_token = json_string_value(t)) == NULL)
		return err_set(e, ERR_MALFORMED, "bad_page_token", "page_token is not one of ours");
	if ((w->vector != NULL) + (w->vectors != NULL) + (rid != NULL) != 1)
		return bad_query(e, "give exactly one of \"vector\", \"vectors\" and \"record_id\"");
	if (w->vectors != NULL && (!json_is_array(w->vectors) || json_array_size(w->vectors) == 0 ||
	                           json_array_size(w->vectors) > QUERY_BATCH_MAX))
		return err_set(e, ERR_INVALID, "bad_query", "\"vectors\" is an array of 1 to %d vectors",
		               QUERY_BATCH_MAX);
	w->req.batch = w->vectors != NULL;
	if (rid != NULL) {
		if ((w->req.record_id = json_string_value(rid)) == NULL)
			return bad_query(e, "record_id needs a string id and a query_space of the same "
			                    "dim");
		w->req.query_space = json_string_value(json_object_get(body, "query_space"));
	}
	return 0;
}

void search_wire_init(struct search_wire *w, const char *dataset, int count)
{
	memset(w, 0, sizeof *w);
	query_request_init(&w->req);
	w->req.dataset = dataset;
	w->req.count = count;
}

int search_wire_json(struct search_wire *w, const json_t *body, struct err *e)
{
	int rc;

	if ((rc = check_fields(body, e)) != 0 || (rc = parse_ranking(&w->req, body, e)) != 0 ||
	    (rc = parse_relevance(&w->req, body, e)) != 0 ||
	    (rc = parse_params(&w->req, body, e)) != 0 || (rc = parse_with(w, body, e)) != 0 ||
	    (rc = parse_subset_rescore(&w->req, body, e)) != 0 ||
	    (rc = parse_hubness(&w->req.hubness, body, e)) != 0)
		return rc;
	return parse_query(w, body, e);
}

/* ---- the query vectors ---- */

/* n little-endian f32 values (f16: f16 values) from p into out; the index of the first one
 * that is not finite, or n. */
static size_t le_values(const unsigned char *p, size_t n, int f16, float *out)
{
	for (size_t i = 0; i < n; i++) {
		if (f16) {
			out[i] = vec_f16_to_f32_one((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
		} else {
			uint32_t u = vec_le32_get(p + 4 * i);

			memcpy(&out[i], &u, 4);
		}
		if (!isfinite(out[i]))
			return i;
	}
	return n;
}

/* One query vector from a JSON value: an array of numbers or {"dtype", "b64"}. */
static int parse_vector(const json_t *v, uint32_t dim, float *out, const char *what,
                        struct err *e)
{
	if (json_is_array(v)) {
		size_t i;
		json_t *x;

		if (json_array_size(v) != dim)
			return err_set(e, ERR_INVALID, "dimension_mismatch",
			               "%s has %zu values, the space has dim %u", what,
			               json_array_size(v), (unsigned)dim);
		json_array_foreach(v, i, x) {
			if (!json_is_number(x) || !isfinite(json_number_value(x)))
				return err_set(e, ERR_INVALID, "non_finite",
				               "%s: value %zu is not a finite number", what, i);
			out[i] = (float)json_number_value(x);
		}
		return 0;
	}
	if (json_is_object(v)) {
		const char *dt = json_string_value(json_object_get(v, "dtype"));
		const char *b = json_string_value(json_object_get(v, "b64"));
		size_t esz = dt != NULL && strcmp(dt, "f16") == 0 ? 2 : 4, n;
		unsigned char *raw;

		if (b == NULL || dt == NULL || (strcmp(dt, "f16") != 0 && strcmp(dt, "f32") != 0))
			return err_set(e, ERR_INVALID, "invalid_embedding",
			               "%s: {\"dtype\": \"f32\"|\"f16\", \"b64\": ...}", what);
		raw = malloc(strlen(b) + 4);
		if (raw == NULL)
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		if (b64_decode(b, strlen(b), raw, &n) != 0 || n != dim * esz) {
			free(raw);
			return err_set(e, ERR_INVALID, "invalid_embedding",
			               "%s: bad base64 or not %u %s values", what, (unsigned)dim, dt);
		}
		n = le_values(raw, dim, esz == 2, out);
		free(raw);
		if (n < dim)
			return err_set(e, ERR_INVALID, "non_finite", "%s: value %zu is not finite", what,
			               n);
		return 0;
	}
	return err_set(e, ERR_INVALID, "bad_query", "%s must be an array or {dtype, b64}", what);
}

/* Raw query rows into w->q: 1 to QUERY_BATCH_MAX rows of dim values, every one finite. */
static int rows_decode(struct search_wire *w, uint32_t dim, struct err *e)
{
	size_t esz = w->f16 ? 2 : 4, row = (size_t)dim * esz, n, bad;

	if (w->rows_len == 0 || w->rows_len % row != 0 || w->rows_len / row > QUERY_BATCH_MAX)
		return err_set(e, ERR_INVALID, "bad_query",
		               "the body holds %zu bytes: 1 to %d rows of %u %s values (%zu bytes "
		               "each)",
		               w->rows_len, QUERY_BATCH_MAX, (unsigned)dim, w->f16 ? "f16" : "f32",
		               row);
	n = w->rows_len / row;
	if (w->req.quick_only && n > QUERY_QUICK_QUERIES)
		return QUERY_DEFERRED; /* not quick: the pool decodes them (and finds any error) */
	if ((w->q = malloc(n * dim * sizeof *w->q)) == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if ((bad = le_values(w->rows, n * dim, w->f16, w->q)) < n * dim)
		return err_set(e, ERR_INVALID, "non_finite", "row %zu: value %zu is not a finite number",
		               bad / dim, bad % dim);
	w->req.nq = n;
	w->req.batch = 1; /* rows are answered as a batch, even one */
	return 0;
}

int search_wire_vectors(struct search_wire *w, uint32_t dim, struct err *e)
{
	int rc = 0;

	if (w->rows != NULL) {
		rc = rows_decode(w, dim, e);
	} else if (w->vector != NULL || w->vectors != NULL) {
		size_t n = w->vector != NULL ? 1 : json_array_size(w->vectors);

		if ((w->q = malloc((n * dim + 1) * sizeof *w->q)) == NULL)
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		if (w->vector != NULL)
			rc = parse_vector(w->vector, dim, w->q, "vector", e);
		for (size_t i = 0; w->vector == NULL && rc == 0 && i < n; i++) {
			char what[32];

			snprintf(what, sizeof what, "vectors[%zu]", i);
			rc = parse_vector(json_array_get(w->vectors, i), dim, w->q + i * dim, what, e);
		}
		w->req.nq = n;
	} else {
		return 0; /* a record's vector */
	}
	if (rc == 0) {
		w->req.vectors = w->q;
		w->req.dim = dim;
	}
	return rc;
}

void search_wire_free(struct search_wire *w)
{
	free(w->names);
	free(w->q);
	w->names = NULL;
	w->q = NULL;
}

/* ---- raw query rows with the query string ---- */

/* An integer from query-string text (the whole text, in range). */
static int qs_integer(const char *v, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(v, &end, 10);
	return *v != '\0' && *end == '\0' && errno == 0 ? 0 : -1;
}

/* A finite number from query-string text. */
static int qs_number(const char *v, double *out)
{
	long long i;
	char *end;

	if (qs_integer(v, &i) == 0) {
		*out = (double)i;
		return 0;
	}
	*out = strtod(v, &end);
	return *v != '\0' && *end == '\0' && isfinite(*out) ? 0 : -1;
}

/* "with" as comma-separated names (no score objects in a query string). */
static int qs_with(struct search_request *req, const char *v, struct err *e)
{
	req->with = 0;
	for (const char *p = v; *p != '\0';) {
		size_t n = strcspn(p, ",");
		char name[8] = "";
		unsigned bit = 0;

		if (n < sizeof name) {
			memcpy(name, p, n);
			name[n] = '\0';
			bit = with_bit(name);
		}
		if (bit == 0)
			return bad_query(e, with_detail);
		req->with |= bit;
		p += n + (p[n] == ',');
	}
	return 0;
}

int search_wire_arg(struct search_wire *w, const char *name, const char *value, struct err *e)
{
	struct search_request *req = &w->req;
	const char *v = value != NULL ? value : "";
	long long i;

	if (strcmp(name, "space") == 0 || strcmp(name, "subset") == 0) {
		*(strcmp(name, "space") == 0 ? &req->space : &req->subset) = v;
	} else if (strcmp(name, "metric") == 0) {
		if (index_metric_parse(v, &req->metric) != 0)
			return bad_query(e, "\"metric\" must be cosine, ip or l2");
		req->has_metric = 1;
	} else if (strcmp(name, "limit") == 0) {
		if (qs_integer(v, &i) != 0 || i < 1 || i > QUERY_LIMIT_MAX)
			return err_set(e, ERR_INVALID, "bad_query", "\"limit\" must be 1 to %d",
			               QUERY_LIMIT_MAX);
		req->limit = (size_t)i;
	} else if (strcmp(name, "score_threshold") == 0) {
		if (qs_number(v, &req->score_threshold) != 0)
			return bad_query(e, "\"score_threshold\" must be a number");
		req->has_threshold = 1;
	} else if (strcmp(name, "ef_search") == 0 || strcmp(name, "nprobe") == 0) {
		if (qs_integer(v, &i) != 0 || i < 1)
			return err_set(e, ERR_INVALID, "bad_query", "%s must be >= 1", name);
		*(strcmp(name, "ef_search") == 0 ? &req->ef_search : &req->nprobe) = i;
	} else if (strcmp(name, "exact") == 0) {
		if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
			return bad_query(e, "exact must be true or false");
		req->exact = strcmp(v, "true") == 0;
	} else if (strcmp(name, "with") == 0) {
		return qs_with(req, v, e);
	} else if (strcmp(name, "dtype") == 0) {
		if (strcmp(v, "f32") != 0 && strcmp(v, "f16") != 0)
			return bad_query(e, "dtype must be f32 or f16");
		w->f16 = strcmp(v, "f16") == 0;
	} else {
		return err_set(e, ERR_INVALID, "unknown_field",
		               "unknown query parameter '%s' (a body of vector rows takes space, "
		               "limit, score_threshold, metric, subset, with, ef_search, nprobe, "
		               "exact, dtype)",
		               name);
	}
	return 0;
}

/* ---- the handlers ---- */

struct wire_args {
	struct search_wire *w;
	struct err *e;
};

static int wire_arg(void *ctx, const char *name, const char *value)
{
	struct wire_args *a = ctx;

	return search_wire_arg(a->w, name, value, a->e);
}

/* A JSON body carries its parameters itself: any in the query string would be ignored. */
static int no_query_arg(void *ctx, const char *name, const char *value)
{
	(void)value;
	return err_set(ctx, ERR_MALFORMED, "unknown_parameter",
	               "query parameter '%.64s' goes with raw query rows "
	               "(application/octet-stream); a JSON body carries it as a field",
	               name);
}

/* A JSON body longer than this is not parsed on an HTTP thread (r->quick): it holds a batch
 * or a long vector list (a 1024-d vector as numbers is about 20 KiB). */
#define SEARCH_QUICK_JSON_MAX (64 * 1024)

enum query_answer search_answer_format(const struct http_req *r)
{
	double hq = http_accept_q(r, HITS_MEDIA_TYPE, 0), jq;

	if (hq <= 0)
		return QUERY_ANSWER_JSON;
	jq = http_accept_q(r, "application/json", 1);
	return jq > hq ? QUERY_ANSWER_JSON : jq > 0 ? QUERY_ANSWER_HITS_OR_JSON : QUERY_ANSWER_HITS;
}

/* The query: a JSON body, or raw rows of query vectors (application/octet-stream) with the
 * other parameters in the query string, answered as a batch. On an HTTP thread (r->quick)
 * only a quick search is run (query_run's QUERY_DEFERRED otherwise): the rest is deferred
 * to the work pool, which parses the request again. */
static int run(struct http_req *r, struct http_res *res, int count)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	struct err e = {0};
	struct wire_args args = {NULL, &e};
	struct search_wire w;
	json_t *body = NULL;
	char *out = NULL, mt[64];
	size_t len = 0;
	uint32_t dim = 0;
	int rc;

	if (ds == NULL)
		return 0;
	search_wire_init(&w, ds, count);
	w.req.quick_only = r->quick;
	w.req.hits = search_answer_format(r);
	if (strcmp(http_media_type(r, mt, sizeof mt), "application/octet-stream") == 0) {
		args.w = &w;
		w.rows = r->body != NULL ? r->body : "";
		w.rows_len = r->body_len;
		rc = http_query_each(r, wire_arg, &args);
		if (rc == ERR_INVALID) /* a bad query-string value: a malformed request (400) */
			rc = ERR_MALFORMED;
	} else if ((rc = http_query_each(r, no_query_arg, &e)) != 0) {
		/* answered below */
	} else if (r->quick && r->body_len > SEARCH_QUICK_JSON_MAX) {
		rc = QUERY_DEFERRED;
	} else if (http_body_json(r, res, &body) != 0) {
		return 0;
	} else {
		rc = search_wire_json(&w, body, &e);
	}
	if (rc == 0 && w.req.record_id == NULL &&
	    (rc = query_space_dim(r->core, ds, w.req.space, &dim, &e)) == 0)
		rc = search_wire_vectors(&w, dim, &e);
	if (rc == 0)
		rc = query_run(r->core, &w.req, &out, &len, &e);
	search_wire_free(&w);
	json_decref(body);
	if (rc == QUERY_DEFERRED) {
		res->defer = 1;
		return 0;
	}
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	res->status = 200;
	res->content_type = hits_is(out, len) ? HITS_MEDIA_TYPE : "application/json";
	res->body = out;
	res->len = len;
	return 0;
}

int search_post(struct http_req *r, struct http_res *res)
{
	return run(r, res, 0);
}

int search_count(struct http_req *r, struct http_res *res)
{
	return run(r, res, 1);
}
