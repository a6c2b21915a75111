/* SPDX-License-Identifier: MIT */
/* signals: JSON merge patches (RFC 7396) of the "signals" of existing records.
 *
 * A patch is {"signals": {...}}: each key of it is merged into the record's signals, objects
 * recursively, and a null removes the key (so {"color": null} drops a triple and
 * {"color": {"tokens": 12}} replaces one field). The merged signals must be valid as at
 * ingest (numbers, or objects of numbers). Nothing else of the record changes: its text,
 * image, meta, kind, row and vectors stay as they are.
 *
 * All or nothing: every line of a bulk patch is checked first, and the bodies are rewritten
 * in one LMDB transaction, which fails as a whole when any id is unknown. A signals batch is
 * usually one scorer's output over one pool; applying a part of it would leave scores of two
 * scorer versions side by side with nothing to tell them apart. A 200 means every record
 * was patched and the patch is durable. With ?dry_run=true every patch is checked the same way
 * (in a write transaction that is then abandoned) and nothing is written: the router checks a
 * batch on every shard this way before any shard applies its part (api/router_signals.c).
 *
 * The transaction runs through ingest_patch(): after the commit, the cheap filters that read
 * bodies score the patched records again, as ingest does. Threading: one request per thread;
 * the store serialises the writes. */
#include "api/signals.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/codec.h"
#include "api/http.h"
#include "daemon/daemon.h"
#include "ingest/ingest.h"
#include "lib/err.h"
#include "store/store.h"

/* At most this many problems are listed; the count is always complete. */
#define MAX_LISTED_ERRORS 1000

struct item {
	const char *id; /* borrowed from obj */
	size_t id_len;
	json_t *obj;    /* the parsed line: {"id", "signals"} */
	size_t line;    /* 1-based */
};

struct patch {
	uint32_t ds;
	struct item *items;
	size_t n;
	/* out of the transaction: rows per item, the problems */
	uint64_t *rows;
	json_t *errors;
	size_t nerrors;
	int dry_run; /* check every patch, write none (the transaction is abandoned) */
};

static void add_error(json_t *errors, size_t *count, size_t line, const char *id,
                      const struct err *e)
{
	json_t *o;

	(*count)++;
	if (json_array_size(errors) >= MAX_LISTED_ERRORS)
		return;
	o = json_pack("{s:I, s:s, s:s}", "line", (json_int_t)line, "code", e->slug, "detail",
	              e->detail);
	if (o != NULL && id != NULL)
		json_object_set_new(o, "id", json_string(id));
	json_array_append_new(errors, o);
}

int signals_merge(json_t *target, const json_t *patch)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)patch, k, v) {
		if (json_is_null(v)) {
			json_object_del(target, k);
		} else if (json_is_object(v)) {
			json_t *t = json_object_get(target, k);

			if (!json_is_object(t)) {
				t = json_object();
				if (t == NULL || json_object_set_new(target, k, t) != 0)
					return ERR_NOMEM;
			}
			if (signals_merge(t, v) != 0)
				return ERR_NOMEM;
		} else if (json_object_set(target, k, v) != 0) {
			return ERR_NOMEM;
		}
	}
	return 0;
}

/* A patch's signals: an object whose values are numbers, null, or objects of numbers and
 * nulls (what a merge patch of valid signals may hold). */
static int check_patch_signals(const json_t *sig, struct err *e)
{
	const char *k, *k2;
	json_t *v, *v2;

	if (!json_is_object(sig) || json_object_size(sig) == 0)
		return err_set(e, ERR_INVALID, "invalid_field",
		               "\"signals\" must be an object with at least one key");
	json_object_foreach((json_t *)sig, k, v) {
		if (json_is_number(v) || json_is_null(v))
			continue;
		if (!json_is_object(v))
			return err_set(e, ERR_INVALID, "invalid_field",
			               "signals.%.64s must be a number, an object of numbers, or null", k);
		json_object_foreach(v, k2, v2) {
			if (!json_is_number(v2) && !json_is_null(v2))
				return err_set(e, ERR_INVALID, "invalid_field",
				               "signals.%.64s.%.64s must be a number or null", k, k2);
		}
	}
	return 0;
}

int signals_check(const json_t *obj, int with_id, const char **id_out, struct err *e)
{
	const char *k;
	json_t *v, *jid = json_object_get(obj, "id");

	*id_out = NULL;
	if (!json_is_object(obj))
		return err_set(e, ERR_INVALID, "invalid_body", "a patch must be a JSON object");
	if (with_id) {
		if (!json_is_string(jid) || json_string_length(jid) == 0 ||
		    json_string_length(jid) > STORE_ID_MAX)
			return err_set(e, ERR_INVALID, "invalid_id",
			               "\"id\" must be a string of 1 to %d bytes", STORE_ID_MAX);
		*id_out = json_string_value(jid);
	}
	json_object_foreach((json_t *)obj, k, v) {
		if (strcmp(k, "signals") != 0 && !(with_id && strcmp(k, "id") == 0))
			return err_set(e, ERR_INVALID, "invalid_field",
			               "unknown field '%s': a patch carries %s\"signals\" only (send "
			               "other changes as a new version of the record)",
			               k, with_id ? "\"id\" and " : "");
	}
	if (json_object_get(obj, "signals") == NULL)
		return err_set(e, ERR_INVALID, "invalid_field", "the patch has no \"signals\"");
	return check_patch_signals(json_object_get(obj, "signals"), e);
}

/* The record's body with the item's signals merged in, as JSON text (new), or NULL with e. */
static char *patched_body(const char *body, size_t len, const json_t *sig, struct err *e)
{
	json_t *b = json_loadb(body, len, 0, NULL), *cur;
	char *out = NULL;

	if (b == NULL) {
		err_set(e, ERR_INTERNAL, "corrupt", "a stored record body is not JSON");
		return NULL;
	}
	cur = json_object_get(b, "signals");
	if (!json_is_object(cur)) {
		cur = json_object();
		json_object_set_new(b, "signals", cur);
	}
	if (signals_merge(cur, sig) != 0) {
		err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	/* an emptied object of one signal, then an empty signals object, are dropped */
	{
		const char *k;
		json_t *v, *tmp;

		json_object_foreach_safe(cur, tmp, k, v) {
			if (json_is_object(v) && json_object_size(v) == 0)
				json_object_del(cur, k);
		}
	}
	if (json_object_size(cur) == 0)
		json_object_del(b, "signals");
	else if (codec_check_signals(cur, e) != 0)
		goto out;
	out = json_dumps(b, JSON_COMPACT);
	if (out == NULL)
		err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
out:
	json_decref(b);
	return out;
}

static int patch_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct patch *p = ctx;
	int rc;

	/* may run again after a map resize: start clean */
	json_array_clear(p->errors);
	p->nerrors = 0;
	if ((rc = store_txn_dataset(t, p->ds, NULL, e)) != 0)
		return rc;
	for (size_t i = 0; i < p->n; i++) {
		struct item *it = &p->items[i];
		struct err ie = {0};
		const char *body;
		size_t len;
		char *nb;

		rc = store_txn_find(t, p->ds, it->id, it->id_len, &p->rows[i], &ie);
		if (rc == 0)
			rc = store_txn_body_get(t, p->ds, p->rows[i], &body, &len, &ie);
		if (rc == ERR_NOT_FOUND || rc == ERR_INVALID) {
			add_error(p->errors, &p->nerrors, it->line, it->id, &ie);
			continue;
		}
		if (rc != 0)
			return err_set(e, rc, ie.slug, "%s", ie.detail);
		nb = patched_body(body, len, json_object_get(it->obj, "signals"), &ie);
		if (nb == NULL) {
			if (ie.code != ERR_INVALID)
				return err_set(e, ie.code, ie.slug, "%s", ie.detail);
			add_error(p->errors, &p->nerrors, it->line, it->id, &ie);
			continue;
		}
		rc = p->nerrors == 0 && !p->dry_run
		             ? store_txn_body_put(t, p->ds, p->rows[i], nb, strlen(nb), e)
		             : 0;
		free(nb);
		if (rc != 0)
			return rc;
	}
	/* a dry run that found nothing wrong: abandon the transaction all the same */
	if (p->nerrors == 0 && p->dry_run)
		return err_set(e, ERR_CANCELLED, "dry_run", "a dry run writes nothing");
	/* any problem: abort, so that nothing changes */
	return p->nerrors == 0 ? 0
	                       : err_set(e, ERR_INVALID, "patch_rejected",
	                                 "%zu of the %zu patches cannot be applied; nothing was "
	                                 "changed (see errors)",
	                                 p->nerrors, p->n);
}

/* Apply p in one transaction, then rescore. On a rejected patch, fills res with a 422 (or 404
 * for a single unknown record) listing the problems. Returns 0 when the patch committed. */
static int apply(struct http_req *r, struct http_res *res, const struct store_dataset_info *ds,
                 struct patch *p, int single)
{
	struct err e = {0};
	int rc;

	p->ds = ds->id;
	p->rows = malloc((p->n ? p->n : 1) * sizeof *p->rows);
	if (p->rows == NULL) {
		err_set(&e, ERR_NOMEM, "out_of_memory", "out of memory");
		http_problem(res, r, ERR_NOMEM, &e, NULL);
		return ERR_NOMEM;
	}
	/* commits, then rescores (ingest/ingest.h) */
	rc = ingest_patch(r->core, ds, patch_fn, p, p->rows, p->n, &e);
	if (rc == ERR_CANCELLED && p->dry_run && p->nerrors == 0)
		return 0; /* every patch applies; nothing was written */
	if (rc != 0) {
		if (single && p->nerrors == 1) {
			const char *code = json_string_value(
			        json_object_get(json_array_get(p->errors, 0), "code"));
			const char *detail = json_string_value(
			        json_object_get(json_array_get(p->errors, 0), "detail"));
			int c = code != NULL && strcmp(code, "record_not_found") == 0 ? ERR_NOT_FOUND
			                                                             : ERR_INVALID;

			err_clear(&e); /* the transaction's summary gives way to the one problem */
			err_set(&e, c, code ? code : "invalid_field", "%s", detail ? detail : "");
			http_problem(res, r, c, &e, NULL);
		} else {
			http_problem(res, r, rc, &e,
			             p->nerrors > 0
			                     ? json_pack("{s:I, s:O}", "rejected",
			                                 (json_int_t)p->nerrors, "errors", p->errors)
			                     : NULL);
		}
		return rc;
	}
	return 0;
}

int signals_patch_one(struct http_req *r, struct http_res *res)
{
	struct store_dataset_info ds;
	struct store_record_out out = {0};
	struct patch p = {0};
	struct item it = {0};
	struct err e = {0};
	const char *id = r->params[1], *dummy;
	json_t *obj = NULL, *view;
	char mt[64];
	int rc;

	http_media_type(r, mt, sizeof mt);
	if (strcmp(mt, "application/json") != 0 && strcmp(mt, "application/merge-patch+json") != 0) {
		err_set(&e, ERR_MEDIA_TYPE, "unsupported_media_type",
		        "send a patch as application/merge-patch+json or application/json, not '%s'",
		        mt[0] ? mt : "(none)");
		return http_problem(res, r, ERR_MEDIA_TYPE, &e, NULL);
	}
	if ((rc = store_dataset_get(r->core->store, r->params[0], &ds, &e)) != 0)
		return http_problem(res, r, rc, &e, NULL);
	if (http_body_json(r, res, &obj) != 0)
		return 0;
	if ((rc = signals_check(obj, 0, &dummy, &e)) != 0) {
		json_decref(obj);
		return http_problem(res, r, rc, &e, NULL);
	}
	it = (struct item){.id = id, .id_len = strlen(id), .obj = obj, .line = 1};
	p.items = &it;
	p.n = 1;
	p.errors = json_array();
	rc = apply(r, res, &ds, &p, 1);
	json_decref(obj);
	json_decref(p.errors);
	free(p.rows);
	if (rc != 0)
		return 0;
	rc = store_get_record(r->core->store, ds.id, id, strlen(id), 0, &out, &e);
	if (rc != 0) /* deleted in between: the patch did commit */
		return http_json(res, 200, json_pack("{s:s, s:b}", "id", id, "patched", 1));
	view = codec_record_json(&ds.schema, id, strlen(id), &out, 0, &e);
	store_record_out_free(&out);
	if (view == NULL)
		return http_problem(res, r, ERR_INTERNAL, &e, NULL);
	return http_json(res, 200, view);
}

int signals_patch_bulk(struct http_req *r, struct http_res *res)
{
	struct store_dataset_info ds;
	struct patch p = {0};
	struct err e = {0};
	json_t *errors = json_array();
	size_t nbad = 0, cap = 0, no = 0;
	const char *q = r->body, *end = r->body + r->body_len;
	const char *qd = http_query(r, "dry_run");
	char mt[64];
	int rc;

	if (qd != NULL && strcmp(qd, "true") != 0 && strcmp(qd, "1") != 0 &&
	    strcmp(qd, "false") != 0 && strcmp(qd, "0") != 0) {
		err_set(&e, ERR_MALFORMED, "bad_query", "dry_run must be true or false, got '%.64s'",
		        qd);
		http_problem(res, r, ERR_MALFORMED, &e, NULL);
		goto out;
	}
	p.dry_run = qd != NULL && (strcmp(qd, "true") == 0 || strcmp(qd, "1") == 0);
	http_media_type(r, mt, sizeof mt);
	if (strcmp(mt, "application/x-ndjson") != 0 && strcmp(mt, "application/jsonl") != 0) {
		err_set(&e, ERR_MEDIA_TYPE, "unsupported_media_type",
		        "send patches as application/x-ndjson, one {\"id\", \"signals\"} a line, "
		        "not '%s'",
		        mt[0] ? mt : "(none)");
		http_problem(res, r, ERR_MEDIA_TYPE, &e, NULL);
		goto out;
	}
	if ((rc = store_dataset_get(r->core->store, r->params[0], &ds, &e)) != 0) {
		http_problem(res, r, rc, &e, NULL);
		goto out;
	}
	while (q < end) {
		const char *nl = memchr(q, '\n', (size_t)(end - q));
		const char *le = nl != NULL ? nl : end;
		const char *s = q;
		json_error_t jerr;
		json_t *obj;
		const char *id;
		struct err le_e = {0};

		while (s < le && (*s == ' ' || *s == '\t' || *s == '\r'))
			s++;
		q = le + 1;
		if (s == le)
			continue;
		no++;
		obj = json_loadb(s, (size_t)(le - s), 0, &jerr);
		if (obj == NULL) {
			err_set(&le_e, ERR_MALFORMED, "malformed_json", "not JSON: %s (column %d)",
			        jerr.text, jerr.column);
			add_error(errors, &nbad, no, NULL, &le_e);
			continue;
		}
		if (signals_check(obj, 1, &id, &le_e) != 0) {
			add_error(errors, &nbad, no, id, &le_e);
			json_decref(obj);
			continue;
		}
		if (p.n == cap) {
			size_t nc = cap ? cap * 2 : 256;
			struct item *ni = realloc(p.items, nc * sizeof *ni);

			if (ni == NULL) {
				json_decref(obj);
				err_set(&e, ERR_NOMEM, "out_of_memory", "out of memory");
				http_problem(res, r, ERR_NOMEM, &e, NULL);
				goto out;
			}
			p.items = ni;
			cap = nc;
		}
		p.items[p.n++] = (struct item){.id = id, .id_len = strlen(id), .obj = obj, .line = no};
	}
	if (no == 0) {
		err_set(&e, ERR_MALFORMED, "empty_body", "the body holds no patches");
		http_problem(res, r, ERR_MALFORMED, &e, NULL);
		goto out;
	}
	if (nbad > 0) {
		err_set(&e, ERR_INVALID, "patch_rejected",
		        "%zu of the %zu lines are not valid patches; nothing was changed (see errors)",
		        nbad, no);
		http_problem(res, r, ERR_INVALID, &e,
		             json_pack("{s:I, s:O}", "rejected", (json_int_t)nbad, "errors", errors));
		goto out;
	}
	p.errors = json_array();
	if (apply(r, res, &ds, &p, 0) == 0)
		http_json(res, 200,
		          p.dry_run ? json_pack("{s:I, s:b, s:I}", "patched", (json_int_t)0, "dry_run", 1,
		                                "checked", (json_int_t)p.n)
		                    : json_pack("{s:I}", "patched", (json_int_t)p.n));
out:
	for (size_t i = 0; i < p.n; i++)
		json_decref(p.items[i].obj);
	free(p.items);
	free(p.rows);
	json_decref(p.errors);
	json_decref(errors);
	return 0;
}
