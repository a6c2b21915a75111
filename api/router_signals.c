/* SPDX-License-Identifier: MIT */
/* router_signals: a signals batch split by id, checked on every shard before any shard applies
 * its part (the round of dry runs), then applied everywhere (api/router_signals.h). */
#include "api/router_signals.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/router_util.h"
#include "api/signals.h"
#include "cluster/fanout.h"
#include "cluster/shardmap.h"
#include "daemon/daemon.h"
#include "lib/err.h"

/* The lines split by the shard of their id, each with its client line. Returns the number of
 * lines; -1 when a line is not a valid patch (shard 0 answers such a batch), -2 when out of
 * memory. Blank lines are skipped and not counted, as a daemon does. */
static long split(const struct http_req *r, const struct shardmap *m, struct rutil_part *parts)
{
	const char *q = r->body, *end = r->body + r->body_len;
	long no = 0;

	while (q < end) {
		const char *nl = memchr(q, '\n', (size_t)(end - q));
		const char *le = nl != NULL ? nl : end, *s = q, *id;
		struct err e = {0};
		json_t *obj;
		int rc;

		while (s < le && (*s == ' ' || *s == '\t' || *s == '\r'))
			s++;
		q = nl != NULL ? nl + 1 : end;
		if (s == le)
			continue;
		no++;
		obj = json_loadb(s, (size_t)(le - s), 0, NULL);
		if (obj == NULL || signals_check(obj, 1, &id, &e) != 0) {
			json_decref(obj);
			return -1;
		}
		rc = rutil_part_add(&parts[shardmap_place(m, id, json_string_length(
		                                                        json_object_get(obj, "id")))],
		                    s, (size_t)(le - s), (size_t)no, 0);
		json_decref(obj);
		if (rc != 0)
			return -2;
	}
	return no;
}

/* One call per shard that has lines: its part to path. Returns the number of calls. */
static size_t round_calls(struct rutil_part *parts, size_t n, const char *path,
                          struct fanout_call *c)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (parts[i].nlines > 0)
			c[k++] = (struct fanout_call){.shard = i, .method = "POST", .path = path,
			                              .body = parts[i].buf, .body_len = parts[i].len,
			                              .content_type = "application/x-ndjson"};
	return k;
}

/* The answers of the dry runs: 1 when every shard can apply its part; else res holds the
 * answer (nothing changed anywhere) and 0. A shard's 422 with its errors becomes one 422 over
 * the whole batch, the errors on the client's lines, as one daemon lists them. */
static int checked(struct http_req *r, struct http_res *res, struct fanout_call *c, size_t k,
                   const struct rutil_part *parts, long total)
{
	json_int_t rej = 0;
	json_t *errors;
	struct err e = {0};

	for (size_t i = 0; i < k; i++)
		if (c[i].status != 200 && c[i].status != 422)
			return rutil_copy(res, &c[i]), 0; /* unknown dataset, ...: as it is */
	errors = json_array();
	for (size_t i = 0; i < k; i++) {
		json_t *b = fanout_json(&c[i]);

		if (c[i].status == 422 && !json_is_array(json_object_get(b, "errors"))) {
			json_decref(b);
			json_decref(errors);
			return rutil_copy(res, &c[i]), 0;
		}
		if (c[i].status == 422) {
			rej += json_integer_value(json_object_get(b, "rejected"));
			rutil_errors_remap(errors, json_object_get(b, "errors"), &parts[c[i].shard]);
		}
		json_decref(b);
	}
	if (json_array_size(errors) == 0 && rej == 0) {
		json_decref(errors);
		return 1;
	}
	rutil_errors_by_line(errors);
	err_set(&e, ERR_INVALID, "patch_rejected",
	        "%lld of the %ld patches cannot be applied; nothing was changed (see errors)",
	        (long long)rej, total);
	http_problem(res, r, ERR_INVALID, &e,
	             json_pack("{s:I, s:o}", "rejected", rej, "errors", errors));
	return 0;
}

/* Round 1: every part checked (dry run); round 2: every part applied. */
static int rounds(struct http_req *r, struct http_res *res, struct rutil_part *parts, size_t n,
                  struct fanout_call *c, const char *path, const char *dry, long total,
                  int client_dry)
{
	struct fanout *f = r->d->router;
	struct err e = {0};
	size_t k = round_calls(parts, n, dry, c);
	json_int_t patched = 0;

	if (fanout_run(f, c, k, r->request_id, &e) != 0) {
		rutil_gateway(res, r, &e); /* a dry run: nothing was written */
	} else if (!checked(r, res, c, k, parts, total)) {
		/* answered: nothing was written */
	} else if (client_dry) {
		http_json(res, 200, json_pack("{s:I, s:b, s:I}", "patched", (json_int_t)0, "dry_run", 1,
		                              "checked", (json_int_t)total));
	} else {
		fanout_calls_free(c, k);
		k = round_calls(parts, n, path, c);
		fanout_run(f, c, k, r->request_id, &e); /* a shard without an answer: status 0 */
		if (rutil_first_bad(c, k) != NULL) {
			rutil_partial(r, res, c, k); /* a merge patch is idempotent: a resend completes */
		} else {
			for (size_t i = 0; i < k; i++) {
				json_t *b = fanout_json(&c[i]);

				patched += json_integer_value(json_object_get(b, "patched"));
				json_decref(b);
			}
			http_json(res, 200, json_pack("{s:I}", "patched", patched));
		}
	}
	fanout_calls_free(c, k);
	return 0;
}

int rsignals_post(struct http_req *r, struct http_res *res)
{
	const struct shardmap *m = fanout_map(r->d->router);
	const char *qd = http_query(r, "dry_run");
	struct rutil_part *parts = calloc(m->n, sizeof *parts);
	struct fanout_call *c = calloc(m->n, sizeof *c);
	char *path = rutil_path(r), *dry = NULL, *q, mt[64];
	int client_dry = qd != NULL && (strcmp(qd, "true") == 0 || strcmp(qd, "1") == 0);
	long no = -1;

	if (parts == NULL || c == NULL || path == NULL) {
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
		goto out;
	}
	http_media_type(r, mt, sizeof mt);
	/* a bad query, media type or line, or no line: refused by shard 0 as by one daemon */
	if ((qd != NULL && !client_dry && strcmp(qd, "false") != 0 && strcmp(qd, "0") != 0) ||
	    (strcmp(mt, "application/x-ndjson") != 0 && strcmp(mt, "application/jsonl") != 0) ||
	    r->body_len == 0 || (no = split(r, m, parts)) <= 0) {
		if (no == -2)
			http_problem(res, r, ERR_NOMEM, NULL, NULL);
		else
			rutil_forward_one(r, res, 0, path);
		goto out;
	}
	if ((q = strchr(path, '?')) != NULL)
		*q = '\0';
	if ((dry = malloc(strlen(path) + 16)) == NULL) {
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
		goto out;
	}
	snprintf(dry, strlen(path) + 16, "%s?dry_run=true", path);
	rounds(r, res, parts, m->n, c, path, dry, no, client_dry);
out:
	rutil_parts_free(parts, m->n);
	free(c);
	free(path);
	free(dry);
	return 0;
}
