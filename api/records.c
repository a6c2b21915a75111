/* SPDX-License-Identifier: MIT */
/* records: ingest (NDJSON or JSON), get and delete of records: the HTTP side.
 *
 * Ingest parses and validates every record first, then writes all accepted ones with
 * one ingest_commit() call (ingest/ingest.h: the store, then every hook), so a 200 means they
 * are all committed. A bad record is listed with its 1-based position and never affects the
 * others. A delete is ingest_delete(): the record and what the hooks keep of it. */
#include "api/records.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/codec.h"
#include "api/http.h"
#include "daemon/daemon.h"
#include "daemon/metrics.h"
#include "ingest/ingest.h"
#include "lib/err.h"
#include "lib/par.h"
#include "store/store.h"

/* At most this many rejections are listed; the counts are always complete. */
#define MAX_LISTED_ERRORS 1000

struct batch {
	const struct store_schema *schema;
	struct codec_record *recs;
	size_t n, cap;
	size_t rejected;
	json_t *errors;
};

static void batch_reject(struct batch *b, size_t line, const char *id, const struct err *e)
{
	b->rejected++;
	if (json_array_size(b->errors) >= MAX_LISTED_ERRORS)
		return;
	json_t *o = json_pack("{s:I, s:s, s:s}", "line", (json_int_t)line, "code", e->slug,
	                      "detail", e->detail);
	if (o != NULL && id != NULL)
		json_object_set_new(o, "id", json_string(id));
	json_array_append_new(b->errors, o);
}

/* Make room for one more record in b. */
static int batch_grow(struct batch *b)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		struct codec_record *nr = realloc(b->recs, cap * sizeof *nr);

		if (nr == NULL)
			return ERR_NOMEM;
		b->recs = nr;
		b->cap = cap;
	}
	return 0;
}

/* Validate one parsed record and keep it. Returns 0, or ERR_NOMEM (the batch fails). */
static int batch_add(struct batch *b, const json_t *obj, size_t line)
{
	struct err e = {0};
	const char *id = NULL;
	int rc;

	if (batch_grow(b) != 0)
		return ERR_NOMEM;
	rc = codec_parse_record(obj, b->schema, &b->recs[b->n], &id, &e);
	if (rc == ERR_NOMEM)
		return rc;
	if (rc != 0) {
		batch_reject(b, line, id, &e);
		return 0;
	}
	b->n++;
	return 0;
}

static void parse_error(struct batch *b, size_t line, const json_error_t *jerr)
{
	struct err e = {0};

	/* jansson refuses numbers beyond double range while parsing. */
	if (strstr(jerr->text, "overflow") != NULL)
		err_set(&e, ERR_INVALID, "non_finite", "a number is out of range: %s", jerr->text);
	else
		err_set(&e, ERR_MALFORMED, "malformed_json", "not JSON: %s (column %d)", jerr->text,
		        jerr->column);
	batch_reject(b, line, NULL, &e);
}

/* One NDJSON line: its bytes and 1-based number among the non-blank lines. */
struct line {
	const char *p;
	size_t len;
	size_t no;
};

static int parse_lines(struct batch *b, const struct line *lines, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct err e = {0};
		json_error_t jerr;
		json_t *obj = NULL;
		const char *id = NULL;
		int rc;

		if (batch_grow(b) != 0)
			return ERR_NOMEM;
		rc = codec_parse_line(lines[i].p, lines[i].len, b->schema, &b->recs[b->n], &obj, &id,
		                      &e);
		if (rc != 1) { /* the fast path handled it */
			if (rc == 0)
				b->n++;
			else if (rc != ERR_NOMEM)
				batch_reject(b, lines[i].no, id, &e);
			json_decref(obj);
			if (rc == ERR_NOMEM)
				return rc;
			continue;
		}
		obj = json_loadb(lines[i].p, lines[i].len, 0, &jerr);
		if (obj == NULL) {
			parse_error(b, lines[i].no, &jerr);
			continue;
		}
		rc = batch_add(b, obj, lines[i].no);
		json_decref(obj);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Parsing is most of ingest's CPU, and libmicrohttpd may put every connection on one
 * worker thread, so a large body is parsed by several threads over contiguous line
 * ranges; merging them in order keeps the answer identical to a sequential parse. */
#define PARSE_MIN_LINES_PER_THREAD 128
#define PARSE_MAX_THREADS 8

struct part {
	struct batch b;
	const struct line *lines;
	size_t n;
	int rc;
};

static void *parse_part(void *arg)
{
	struct part *pt = arg;

	pt->rc = parse_lines(&pt->b, pt->lines, pt->n);
	return NULL;
}

/* Append part's records and errors to b, keeping the error list cap. Takes part's records. */
static void batch_merge(struct batch *b, struct part *pt)
{
	size_t i;
	json_t *v;

	memcpy(b->recs + b->n, pt->b.recs, pt->b.n * sizeof *b->recs);
	b->n += pt->b.n;
	pt->b.n = 0;
	b->rejected += pt->b.rejected;
	json_array_foreach(pt->b.errors, i, v) {
		if (json_array_size(b->errors) >= MAX_LISTED_ERRORS)
			break;
		json_array_append(b->errors, v);
	}
}

static int parse_ndjson(struct batch *b, const char *p, size_t len)
{
	const char *end = p + len;
	struct line *lines = NULL;
	struct part parts[PARSE_MAX_THREADS];
	pthread_t tid[PARSE_MAX_THREADS];
	size_t n = 0, cap = 0, nparts, total = 0;
	size_t cpus = par_cpus();
	int rc = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end;
		const char *q = p;

		while (q < le && (*q == ' ' || *q == '\t' || *q == '\r'))
			q++;
		if (q < le) {
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 1024;
				struct line *nlines = realloc(lines, nc * sizeof *lines);

				if (nlines == NULL) {
					free(lines);
					return ERR_NOMEM;
				}
				lines = nlines;
				cap = nc;
			}
			lines[n].p = p;
			lines[n].len = (size_t)(le - p);
			lines[n].no = n + 1;
			n++;
		}
		p = le + 1;
	}

	nparts = n / PARSE_MIN_LINES_PER_THREAD;
	if (nparts > cpus)
		nparts = cpus;
	if (nparts > PARSE_MAX_THREADS)
		nparts = PARSE_MAX_THREADS;
	if (nparts <= 1) {
		rc = parse_lines(b, lines, n);
		free(lines);
		return rc;
	}
	memset(parts, 0, sizeof parts);
	for (size_t i = 0; i < nparts; i++) {
		size_t lo = n * i / nparts, hi = n * (i + 1) / nparts;

		parts[i].b.schema = b->schema;
		parts[i].b.errors = json_array();
		parts[i].lines = lines + lo;
		parts[i].n = hi - lo;
	}
	/* Part 0 runs here; a part whose thread cannot start runs here too. */
	for (size_t i = 1; i < nparts; i++)
		if (pthread_create(&tid[i], NULL, parse_part, &parts[i]) != 0)
			tid[i] = 0, parse_part(&parts[i]);
	parse_part(&parts[0]);
	for (size_t i = 1; i < nparts; i++)
		if (tid[i] != 0)
			pthread_join(tid[i], NULL);
	for (size_t i = 0; i < nparts; i++) {
		total += parts[i].b.n;
		if (parts[i].rc != 0)
			rc = parts[i].rc;
	}
	if (rc == 0 && total > b->cap) {
		struct codec_record *nr = realloc(b->recs, total * sizeof *nr);

		if (nr == NULL)
			rc = ERR_NOMEM;
		else
			b->recs = nr, b->cap = total;
	}
	for (size_t i = 0; i < nparts; i++) {
		if (rc == 0)
			batch_merge(b, &parts[i]);
		for (size_t j = 0; j < parts[i].b.n; j++)
			codec_record_free(&parts[i].b.recs[j]);
		free(parts[i].b.recs);
		json_decref(parts[i].b.errors);
	}
	free(lines);
	return rc;
}

static int parse_json(struct batch *b, const struct http_req *r, struct err *e)
{
	json_error_t jerr;
	json_t *body, *arr, *v;
	size_t i;
	int rc = 0;

	body = json_loadb(r->body, r->body_len, 0, &jerr);
	if (body == NULL)
		return err_set(e, ERR_MALFORMED, "malformed_json", "the body is not JSON: %s (line %d)",
		               jerr.text, jerr.line);
	arr = json_object_get(body, "records");
	if (!json_is_array(arr)) {
		json_decref(body);
		return err_set(e, ERR_INVALID, "invalid_body",
		               "a JSON body is {\"records\": [...]}; use application/x-ndjson for one record a line");
	}
	json_array_foreach(arr, i, v) {
		if ((rc = batch_add(b, v, i + 1)) != 0)
			break;
	}
	json_decref(body);
	return rc;
}

int records_post(struct http_req *r, struct http_res *res)
{
	struct store_dataset_info ds;
	struct batch b = {0};
	struct err e = {0};
	struct store_record *recs = NULL;
	char mt[64];
	int rc, ndjson;

	http_media_type(r, mt, sizeof mt);
	ndjson = strcmp(mt, "application/x-ndjson") == 0 || strcmp(mt, "application/jsonl") == 0;
	if (!ndjson && strcmp(mt, "application/json") != 0) {
		err_set(&e, ERR_MEDIA_TYPE, "unsupported_media_type",
		        "send records as application/x-ndjson or application/json, not '%s'",
		        mt[0] ? mt : "(none)");
		return http_problem(res, r, ERR_MEDIA_TYPE, &e, NULL);
	}
	if ((rc = store_dataset_get(r->core->store, r->params[0], &ds, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	b.schema = &ds.schema;
	b.errors = json_array();
	rc = ndjson ? parse_ndjson(&b, r->body, r->body_len) : parse_json(&b, r, &e);
	if (rc != 0)
		goto fail;
	if (b.n == 0 && b.rejected == 0) {
		rc = err_set(&e, ERR_MALFORMED, "empty_body", "the body holds no records");
		goto fail;
	}
	if (b.n == 0) {
		metrics_add(r->d->metrics, METRICS_RECORDS_REJECTED, b.rejected);
		err_set(&e, ERR_INVALID, "no_records_accepted",
		        "none of the %zu records was accepted; see errors", b.rejected);
		http_problem(res, r, ERR_INVALID, &e,
		             json_pack("{s:i, s:I, s:O}", "accepted", 0, "rejected",
		                       (json_int_t)b.rejected, "errors", b.errors));
		goto out;
	}
	recs = malloc(b.n * sizeof *recs);
	if (recs == NULL) {
		rc = err_set(&e, ERR_NOMEM, NULL, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < b.n; i++)
		recs[i] = b.recs[i].rec;
	/* committed when it returns 0, and then the answer is 200 whatever a hook did */
	if ((rc = ingest_commit(r->core, &ds, recs, b.n, NULL, &e)) != 0)
		goto fail;
	metrics_add(r->d->metrics, METRICS_RECORDS_INGESTED, b.n);
	metrics_add(r->d->metrics, METRICS_RECORDS_REJECTED, b.rejected);
	http_json(res, 200, json_pack("{s:I, s:I, s:O}", "accepted", (json_int_t)b.n, "rejected",
	                              (json_int_t)b.rejected, "errors", b.errors));
	goto out;
fail:
	http_problem(res, r, rc, &e, NULL);
out:
	for (size_t i = 0; i < b.n; i++)
		codec_record_free(&b.recs[i]);
	free(b.recs);
	free(recs);
	json_decref(b.errors);
	return 0;
}

int records_get(struct http_req *r, struct http_res *res)
{
	struct store_dataset_info ds;
	struct store_record_out out = {0};
	struct err e = {0};
	const char *q = http_query(r, "embeddings");
	int with_vectors = !(q != NULL && (strcmp(q, "false") == 0 || strcmp(q, "0") == 0));
	const char *id = r->params[1];
	json_t *obj;
	int rc;

	if (q != NULL && strcmp(q, "true") != 0 && strcmp(q, "1") != 0 && with_vectors) {
		err_set(&e, ERR_MALFORMED, "bad_query", "embeddings must be true or false, got '%.64s'",
		        q);
		return http_problem(res, r, ERR_MALFORMED, &e, NULL);
	}

	if ((rc = store_dataset_get(r->core->store, r->params[0], &ds, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	rc = store_get_record(r->core->store, ds.id, id, strlen(id), with_vectors, &out, &e);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	obj = codec_record_json(&ds.schema, id, strlen(id), &out, with_vectors, &e);
	store_record_out_free(&out);
	if (obj == NULL)
		return http_problem(res, r, ERR_INTERNAL, &e, NULL);
	return http_json(res, 200, obj);
}

int records_delete(struct http_req *r, struct http_res *res)
{
	struct store_dataset_info ds;
	struct err e = {0};
	const char *id = r->params[1];
	int rc;

	if ((rc = store_dataset_get(r->core->store, r->params[0], &ds, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	rc = ingest_delete(r->core, &ds, id, strlen(id), NULL, &e);
	if (rc != 0)
		return http_problem(res, r, rc, &e, NULL);
	res->status = 204;
	return 0;
}
