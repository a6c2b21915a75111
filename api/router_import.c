/* SPDX-License-Identifier: MIT */
/* router_import: an import split by id into one multipart body per shard
 * (api/router_import.h). */
#include "api/router_import.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/import.h"
#include "api/router_util.h"
#include "cluster/fanout.h"
#include "cluster/shardmap.h"
#include "daemon/daemon.h"
#include "lib/err.h"

/* The boundary of the bodies the router builds (40 characters an array row is not). */
#define RI_BOUNDARY "winnow-router-6b1f0c9e2d7a4e35a8c1f04b97"

struct rimport {
	const struct import_part *meta;
	const struct import_part *arr[IMPORT_MAX_PARTS];
	struct import_npy npy[IMPORT_MAX_PARTS];
	size_t narr;
	const char **lines; /* [2i] start, [2i+1] end of the i-th non-blank metadata line */
	size_t nrec;
	size_t *shard;      /* per record */
};

/* The non-blank metadata lines, as api/import.c counts them. 0 or -1 (out of memory). */
static int meta_lines(struct rimport *x)
{
	const char *p = x->meta->data, *end = x->meta->data + x->meta->len;
	size_t cap = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end, *q = p;

		while (q < le && (*q == ' ' || *q == '\t' || *q == '\r'))
			q++;
		if (q < le) {
			if (x->nrec == cap) {
				size_t nc = cap ? cap * 2 : 1024;
				const char **nl2 = realloc(x->lines, nc * 2 * sizeof *nl2);

				if (nl2 == NULL)
					return -1;
				x->lines = nl2;
				cap = nc;
			}
			x->lines[2 * x->nrec] = p;
			x->lines[2 * x->nrec + 1] = le;
			x->nrec++;
		}
		p = nl != NULL ? nl + 1 : end;
	}
	return 0;
}

/* 1 when the router can split the import: one metadata part with records, parts named
 * space.<name> once each, every array parsed with as many rows as records. Else 0 (shard 0
 * answers the single daemon's problem), -1 when out of memory. */
static int splittable(struct rimport *x, const struct import_part *parts, size_t n)
{
	struct err e = {0};

	for (size_t i = 0; i < n; i++) {
		const struct import_part *pt = &parts[i];

		if (pt->name_len == 8 && memcmp(pt->name, "metadata", 8) == 0) {
			if (x->meta != NULL)
				return 0;
			x->meta = pt;
			continue;
		}
		if (pt->name_len <= 6 || memcmp(pt->name, "space.", 6) != 0)
			return 0;
		for (size_t k = 0; k < x->narr; k++)
			if (x->arr[k]->name_len == pt->name_len &&
			    memcmp(x->arr[k]->name, pt->name, pt->name_len) == 0)
				return 0;
		if (import_npy_parse(pt->data, pt->len, &x->npy[x->narr], &e) != 0)
			return 0;
		x->arr[x->narr++] = pt;
	}
	if (x->meta == NULL)
		return 0;
	if (meta_lines(x) != 0)
		return -1;
	for (size_t k = 0; k < x->narr; k++)
		if (x->npy[k].rows != x->nrec)
			return 0;
	return x->nrec > 0;
}

/* The shard of each record: its id's placement, shard 0 without a readable id. */
static int place_all(struct rimport *x, const struct shardmap *m)
{
	if ((x->shard = calloc(x->nrec ? x->nrec : 1, sizeof *x->shard)) == NULL)
		return -1;
	for (size_t i = 0; i < x->nrec; i++) {
		json_t *o = json_loadb(x->lines[2 * i], (size_t)(x->lines[2 * i + 1] - x->lines[2 * i]),
		                       0, NULL);
		json_t *id = json_object_get(o, "id");

		if (json_is_string(id) && json_string_length(id) > 0)
			x->shard[i] = shardmap_place(m, json_string_value(id), json_string_length(id));
		json_decref(o);
	}
	return 0;
}

/* Append len raw bytes to p. 0, or -1 when out of memory. */
static int put(struct rutil_part *p, const void *s, size_t len)
{
	if (p->len + len > p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 65536;
		char *nb;

		while (cap < p->len + len)
			cap *= 2;
		if ((nb = realloc(p->buf, cap)) == NULL)
			return -1;
		p->buf = nb;
		p->cap = cap;
	}
	memcpy(p->buf + p->len, s, len);
	p->len += len;
	return 0;
}

/* The .npy v1.0 header of a (rows, cols) array of dtype elt, padded to 64 bytes. */
static int put_npy_header(struct rutil_part *p, uint64_t rows, uint64_t cols, unsigned elt)
{
	char dict[160], pre[10] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
	int dl = snprintf(dict, sizeof dict, "{'descr': '<f%u', 'fortran_order': False, "
	                  "'shape': (%llu, %llu), }", elt, (unsigned long long)rows,
	                  (unsigned long long)cols);
	size_t hl = (size_t)dl + 1;

	while ((10 + hl) % 64 != 0)
		hl++;
	memset(dict + dl, ' ', hl - 1 - (size_t)dl);
	dict[hl - 1] = '\n';
	pre[8] = (char)(hl & 0xff);
	pre[9] = (char)(hl >> 8);
	return put(p, pre, 10) != 0 || put(p, dict, hl) != 0 ? -1 : 0;
}

/* Shard k's multipart body: its metadata lines (and their client lines), then its rows of
 * every array. */
static int build(const struct rimport *x, size_t k, struct rutil_part *p)
{
	static const char head[] = "--" RI_BOUNDARY "\r\nContent-Disposition: form-data; "
	                           "name=\"metadata\"\r\nContent-Type: application/x-ndjson\r\n\r\n";
	size_t rows = 0;
	int rc = put(p, head, sizeof head - 1);

	for (size_t i = 0; rc == 0 && i < x->nrec; i++) {
		if (x->shard[i] != k)
			continue;
		rc = rutil_part_add(p, x->lines[2 * i], (size_t)(x->lines[2 * i + 1] - x->lines[2 * i]),
		                    i + 1, 0);
		rows++;
	}
	for (size_t a = 0; rc == 0 && a < x->narr; a++) {
		static const char pre[] = "\r\n--" RI_BOUNDARY "\r\nContent-Disposition: "
		                          "form-data; name=\"";
		static const char post[] = "\"; filename=\"a.npy\"\r\nContent-Type: "
		                           "application/octet-stream\r\n\r\n";
		const struct import_npy *np = &x->npy[a];
		size_t row_bytes = (size_t)np->cols * np->elt;

		rc = put(p, pre, sizeof pre - 1) != 0 ||
		     put(p, x->arr[a]->name, x->arr[a]->name_len) != 0 ||
		     put(p, post, sizeof post - 1) != 0 ||
		     put_npy_header(p, rows, np->cols, np->elt) != 0;
		for (size_t i = 0; rc == 0 && i < x->nrec; i++)
			if (x->shard[i] == k)
				rc = put(p, (const char *)np->data + i * row_bytes, row_bytes);
	}
	if (rc == 0) {
		static const char tail[] = "\r\n--" RI_BOUNDARY "--\r\n";

		rc = put(p, tail, sizeof tail - 1);
	}
	return rc;
}

/* An error's detail names the shard's array row ("part 'space.x' row 4: ..."): make it the
 * client's row, the line's (row i is metadata line i + 1). */
static void client_row(json_t *ev)
{
	const char *d = json_string_value(json_object_get(ev, "detail")), *at, *digits;
	json_int_t line = json_integer_value(json_object_get(ev, "line"));
	char buf[1200];

	if (d == NULL || line < 1 || (at = strstr(d, "' row ")) == NULL)
		return;
	digits = at + 6;
	while (*digits >= '0' && *digits <= '9')
		digits++;
	snprintf(buf, sizeof buf, "%.*s' row %lld%s", (int)(at - d), d, (long long)(line - 1),
	         digits);
	json_object_set_new(ev, "detail", json_string(buf));
}

/* The shards' answers summed, errors on the client's metadata lines (as ingest's). */
static int answer(struct http_req *r, struct http_res *res, struct fanout_call *c, size_t m,
                  struct rutil_part *parts)
{
	json_int_t acc = 0, rej = 0;
	json_t *errors = json_array();
	struct err e = {0};

	for (size_t i = 0; i < m; i++) {
		json_t *b = fanout_json(&c[i]);

		acc += json_integer_value(json_object_get(b, "accepted"));
		rej += json_integer_value(json_object_get(b, "rejected"));
		rutil_errors_remap(errors, json_object_get(b, "errors"), &parts[c[i].shard]);
		json_decref(b);
	}
	rutil_errors_by_line(errors);
	for (size_t i = 0; i < json_array_size(errors); i++)
		client_row(json_array_get(errors, i));
	if (acc == 0) {
		err_set(&e, ERR_INVALID, "no_records_accepted",
		        "none of the %lld records was accepted; see errors", (long long)rej);
		return http_problem(res, r, ERR_INVALID, &e,
		                    json_pack("{s:I, s:I, s:o}", "accepted", acc, "rejected", rej,
		                              "errors", errors));
	}
	return http_json(res, 200, json_pack("{s:I, s:I, s:o}", "accepted", acc, "rejected", rej,
	                                     "errors", errors));
}

/* A shard's answer about its records (200, or a 422 with "accepted"), not a refusal of the
 * request as a whole (a dimension, an unknown space, an unknown dataset). */
static int per_record(const struct fanout_call *c)
{
	json_t *b;
	int yes;

	if (c->status >= 200 && c->status <= 299)
		return 1;
	if (c->status != 422)
		return 0;
	b = fanout_json(c);
	yes = json_object_get(b, "accepted") != NULL;
	json_decref(b);
	return yes;
}

/* Every shard's body at once; the answers merged, or the refusal, or a partial state. */
static int send_all(struct http_req *r, struct http_res *res, const struct rimport *x,
                    struct rutil_part *parts, size_t n, const char *path)
{
	struct fanout_call *c = calloc(n, sizeof *c), *bad = NULL;
	struct err e = {0};
	size_t m = 0, ok = 0;

	if (c == NULL)
		return http_problem(res, r, ERR_NOMEM, NULL, NULL);
	for (size_t k = 0; k < n; k++) {
		int has = 0;

		for (size_t i = 0; i < x->nrec && !has; i++)
			has = x->shard[i] == k;
		if (!has)
			continue;
		if (build(x, k, &parts[k]) != 0) {
			free(c);
			return http_problem(res, r, ERR_NOMEM, NULL, NULL);
		}
		c[m++] = (struct fanout_call){.shard = k, .method = "POST", .path = path,
		                              .body = parts[k].buf, .body_len = parts[k].len,
		                              .content_type = "multipart/form-data; boundary="
		                                              RI_BOUNDARY};
	}
	if (fanout_run(r->d->router, c, m, r->request_id, &e) != 0) {
		rutil_gateway(res, r, &e); /* others may have stored theirs: a resend is safe */
	} else {
		for (size_t i = 0; i < m; i++) {
			if (per_record(&c[i]))
				ok++;
			else if (bad == NULL)
				bad = &c[i];
		}
		if (bad != NULL && ok == 0)
			rutil_copy(res, bad); /* refused everywhere (unknown dataset, a dim): as it is */
		else if (bad != NULL)
			rutil_partial(r, res, c, m);
		else
			answer(r, res, c, m, parts);
	}
	fanout_calls_free(c, m);
	free(c);
	return 0;
}

int rimport_post(struct http_req *r, struct http_res *res)
{
	const struct shardmap *m = fanout_map(r->d->router);
	struct import_part parts[IMPORT_MAX_PARTS];
	struct rimport x = {0};
	struct rutil_part *bodies = calloc(m->n, sizeof *bodies);
	char *path = rutil_path(r);
	struct err e = {0};
	size_t np = 0;
	int rc = 0;

	if (bodies == NULL || path == NULL) {
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
		goto out;
	}
	if (import_multipart_parse(http_header(r, "Content-Type"), r->body, r->body_len, parts,
	                           IMPORT_MAX_PARTS, &np, &e) == 0)
		rc = splittable(&x, parts, np);
	if (rc == 1)
		rc = place_all(&x, m) == 0 ? 1 : -1;
	if (rc < 0)
		http_problem(res, r, ERR_NOMEM, NULL, NULL);
	else if (rc == 0) /* wrong as a whole: shard 0 says how, as one daemon does */
		rutil_forward_one(r, res, 0, path);
	else
		send_all(r, res, &x, bodies, m->n, path);
out:
	rutil_parts_free(bodies, m->n);
	free(x.lines);
	free(x.shard);
	free(path);
	return 0;
}
