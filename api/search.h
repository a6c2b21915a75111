/* SPDX-License-Identifier: MIT */
/* search: the /v1/datasets/{ds}/indexes resource and similarity search (search, :count).
 * Route handlers: each fills res (see api/http.h) and returns 0.
 *
 * A search request comes in two wire formats, both decoded here into the engine's struct
 * search_request (search/query.h), which runs it: a JSON body (docs/api.md), or raw query
 * rows (application/octet-stream: little-endian f32 or f16 values, dim per row) with the
 * other parameters in the query string, answered as a batch. Decoding checks every type and
 * range; what needs the dataset is the engine's to check. */
#ifndef WINNOW_API_SEARCH_H
#define WINNOW_API_SEARCH_H

#include <stddef.h>

#include "search/query.h"

struct err;
struct http_req;
struct http_res;
typedef struct json_t json_t;

int search_indexes_list(struct http_req *r, struct http_res *res);
int search_index_get(struct http_req *r, struct http_res *res);
int search_index_put(struct http_req *r, struct http_res *res);
int search_index_delete(struct http_req *r, struct http_res *res);
int search_post(struct http_req *r, struct http_res *res);
int search_count(struct http_req *r, struct http_res *res);

/* The answer's format Accept asks of a search: the binary one (lib/hits.h) when Accept names
 * it (not through a wildcard) at least as high as JSON, falling back to JSON when JSON is
 * acceptable too; JSON otherwise. */
enum query_answer search_answer_format(const struct http_req *r);

/* A search request being decoded: req, and what its pointers point to that the wire
 * format's own buffers do not hold. Decoding is in two steps: the parameters
 * (search_wire_json, or search_wire_arg per query argument for raw rows), then, once the
 * space's dim is known (query_space_dim), the query vectors (search_wire_vectors). */
struct search_wire {
	struct search_request req;
	const json_t *vector, *vectors; /* the JSON query vectors, borrowed from the body */
	const void *rows;               /* raw query rows (rows_len bytes), borrowed */
	size_t rows_len;
	int f16;            /* the rows are f16 (the query's dtype=f16) */
	const char **names; /* req.with_scores (new) */
	float *q;           /* req.vectors (new) */
};

/* Start decoding a request for dataset (borrowed), a search:count when count. */
void search_wire_init(struct search_wire *w, const char *dataset, int count);

/* The parameters of a JSON body (borrowed until search_wire_free: req's strings point into
 * it). ERR_INVALID with the code and detail the API documents (unknown_field, bad_query, ...),
 * ERR_MALFORMED "bad_page_token" for a page_token that is not a string. */
int search_wire_json(struct search_wire *w, const json_t *body, struct err *e);

/* One query argument of a raw-rows request (value borrowed until search_wire_free; NULL
 * for a bare "?name"): space, limit, score_threshold, metric, subset, with (comma-separated),
 * ef_search, nprobe, exact (true|false), dtype (f32|f16). ERR_INVALID otherwise. */
int search_wire_arg(struct search_wire *w, const char *name, const char *value, struct err *e);

/* Decode the query vectors (JSON "vector" or "vectors", or the rows, borrowed until
 * search_wire_free) for a space of dim values: req.vectors, nq and dim are set. Does
 * nothing for a record_id query. ERR_INVALID (dimension_mismatch, non_finite,
 * invalid_embedding, bad_query) naming the vector or row. */
int search_wire_vectors(struct search_wire *w, uint32_t dim, struct err *e);

void search_wire_free(struct search_wire *w);

#endif
