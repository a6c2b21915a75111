/* SPDX-License-Identifier: MIT */
/* router_subsets: exact global subsets and merged exports. */
#include "api/router_subsets.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/router_util.h"
#include "cluster/fanout.h"
#include "cluster/gselect.h"
#include "cluster/shardmap.h"
#include "daemon/daemon.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/npy.h"

int rsubsets_put(struct http_req *r, struct http_res *res)
{
	json_t *body = NULL, *rewritten = NULL, *problem = NULL;
	struct err e = {0};
	unsigned rounds = 0;
	int status = 0, rc;
	char *path, *s;

	if (http_body_json(r, res, &body) != 0)
		return 0;
	if ((path = rutil_path(r)) == NULL) {
		json_decref(body);
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	}
	if (!json_is_array(json_object_get(body, "steps"))) {
		/* shard 0 refuses it with the single daemon's problem */
		rutil_broadcast_body(r, res, "PUT", path, r->body, r->body_len);
		goto out;
	}
	rc = gselect_rewrite(r->d->router, r->params[0], json_object_get(body, "steps"),
	                     r->request_id, &rewritten, &rounds, &problem, &status, &e);
	if (rc != 0) {
		rutil_problem(res, r, problem, status, rc, &e);
		goto out;
	}
	json_object_update(body, rewritten);
	s = json_dumps(body, JSON_COMPACT);
	if (s == NULL) {
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
		goto out;
	}
	log_msg(LOG_INFO, "router_subset", "dataset=%s subset=%s probe_rounds=%u", r->params[0],
	        r->params[1], rounds);
	rutil_broadcast_body(r, res, "PUT", path, s, strlen(s));
	free(s);
out:
	json_decref(problem);
	json_decref(rewritten);
	json_decref(body);
	free(path);
	return 0;
}

static uint64_t le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* One .npy from the shards' .npy parts: the union of their uids, sorted. */
static int merge_npy(struct http_req *r, struct http_res *res, struct fanout_call *c, size_t n)
{
	size_t total = 0, k = 0, hl;
	uint64_t (*pairs)[2];
	struct err e = {0};

	for (size_t i = 0; i < n; i++) {
		const unsigned char *b = (const unsigned char *)c[i].resp;

		if (c[i].resp_len < 10 || memcmp(b, "\x93NUMPY", 6) != 0 ||
		    (hl = 10 + (size_t)(b[8] | b[9] << 8)) > c[i].resp_len ||
		    (c[i].resp_len - hl) % NPY_RECORD_SIZE != 0) {
			err_set(&e, ERR_GATEWAY, "bad_shard_answer", "shard %zu's .npy is not one", i);
			return http_problem(res, r, ERR_GATEWAY, &e, NULL);
		}
		total += (c[i].resp_len - hl) / NPY_RECORD_SIZE;
	}
	if ((pairs = malloc((total ? total : 1) * sizeof *pairs)) == NULL ||
	    (res->body = malloc(NPY_HEADER_MAX + total * NPY_RECORD_SIZE)) == NULL) {
		free(pairs);
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	}
	for (size_t i = 0; i < n; i++) {
		const unsigned char *b = (const unsigned char *)c[i].resp;

		hl = 10 + (size_t)(b[8] | b[9] << 8);
		for (size_t o = hl; o + NPY_RECORD_SIZE <= c[i].resp_len; o += NPY_RECORD_SIZE, k++) {
			pairs[k][0] = le64(b + o);
			pairs[k][1] = le64(b + o + 8);
		}
	}
	npy_sort_uids(pairs, total);
	hl = npy_header(res->body, NPY_HEADER_MAX, total);
	res->len = hl + npy_encode_pairs((const uint64_t(*)[2])pairs, total,
	                                 (uint8_t *)res->body + hl);
	free(pairs);
	res->status = 200;
	res->content_type = "application/octet-stream";
	return 0;
}

/* The counts of one shard's export summary added to sum. */
static void sum_counts(json_t *sum, const json_t *shard_sum)
{
	static const char *const keys[] = {"count", "skipped_deleted"};

	for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
		json_object_set_new(sum, keys[k],
		                    json_integer(json_integer_value(json_object_get(sum, keys[k])) +
		                                 json_integer_value(json_object_get(shard_sum, keys[k]))));
}

/* NDJSON or ids: the shards' parts one after the other (shard order); with summary=true one
 * summary line at the end, counts summed. */
static int concat_lines(struct http_req *r, struct http_res *res, struct fanout_call *c,
                        size_t n, int summary)
{
	size_t total = 0, o = 0;
	json_t *sum = NULL;

	for (size_t i = 0; i < n; i++)
		total += c[i].resp_len + 1;
	if ((res->body = malloc(total + 256)) == NULL)
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	for (size_t i = 0; i < n; i++) {
		size_t len = c[i].resp_len;

		if (summary && len > 0) {
			/* the last line is the shard's summary */
			size_t s = len - 1;
			json_t *line, *shard_sum;

			while (s > 0 && c[i].resp[s - 1] != '\n')
				s--;
			line = json_loadb(c[i].resp + s, len - s, 0, NULL);
			shard_sum = json_object_get(line, "summary");
			if (sum == NULL && shard_sum != NULL)
				sum = json_deep_copy(shard_sum);
			else if (shard_sum != NULL)
				sum_counts(sum, shard_sum);
			json_decref(line);
			len = s;
		}
		memcpy(res->body + o, c[i].resp, len);
		o += len;
	}
	if (sum != NULL) {
		json_t *wrap = json_pack("{s:o}", "summary", sum);
		char *line = wrap != NULL ? json_dumps(wrap, JSON_COMPACT) : NULL;
		char *nb = line ? realloc(res->body, o + strlen(line) + 2) : NULL;

		if (nb != NULL) {
			res->body = nb;
			o += (size_t)sprintf(res->body + o, "%s\n", line);
		}
		free(line);
		json_decref(wrap);
	}
	res->len = o;
	res->status = 200;
	res->content_type = c[0].resp_type[0] ? (strstr(c[0].resp_type, "ndjson")
	                                                 ? "application/x-ndjson"
	                                                 : "text/plain; charset=utf-8")
	                                      : "application/x-ndjson";
	return 0;
}

/* The shards' parts of an export as one: .npy merged, NDJSON/ids concatenated. */
static int merge_export(struct http_req *r, struct http_res *res, struct fanout_call *c,
                        size_t n, void *ctx)
{
	const char *fmt = http_query(r, "format"), *summary = http_query(r, "summary");

	(void)ctx;
	if (fmt != NULL && strcmp(fmt, "npy") == 0) {
		merge_npy(r, res, c, n);
		if (res->status == 200)
			res->disposition = "attachment; filename=\"subset.npy\"";
		return 0;
	}
	return concat_lines(r, res, c, n, summary != NULL && strcmp(summary, "true") == 0);
}

int rsubsets_export(struct http_req *r, struct http_res *res)
{
	return rutil_gather_get(r, res, merge_export, NULL);
}
