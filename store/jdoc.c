/* SPDX-License-Identifier: MIT */
/* jdoc: JSON documents over store documents, and the named documents of the services. */
#include "store/jdoc.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/err.h"
#include "store/store.h"

static int parse(const void *v, size_t len, json_t **out, struct err *e)
{
	json_t *doc = json_loadb(v, len, 0, NULL);

	if (!json_is_object(doc)) {
		json_decref(doc);
		return err_set(e, ERR_INTERNAL, "corrupt_document", "a stored document is not JSON");
	}
	*out = doc;
	return 0;
}

int jdoc_txn_getb(struct store_txn *t, uint32_t ds, char ns, const char *key, size_t key_len,
                  json_t **out, struct err *e)
{
	const void *v;
	size_t len;
	int rc = store_txn_doc_get(t, ds, ns, key, key_len, &v, &len, e);

	return rc != 0 ? rc : parse(v, len, out, e);
}

int jdoc_reader_getb(struct store_reader *r, uint32_t ds, char ns, const char *key,
                     size_t key_len, json_t **out, struct err *e)
{
	const void *v;
	size_t len;
	int rc = store_reader_doc_get(r, ds, ns, key, key_len, &v, &len, e);

	return rc != 0 ? rc : parse(v, len, out, e);
}

int jdoc_txn_get(struct store_txn *t, uint32_t ds, char ns, const char *key, json_t **out,
                 struct err *e)
{
	return jdoc_txn_getb(t, ds, ns, key, strlen(key), out, e);
}

int jdoc_reader_get(struct store_reader *r, uint32_t ds, char ns, const char *key,
                    json_t **out, struct err *e)
{
	return jdoc_reader_getb(r, ds, ns, key, strlen(key), out, e);
}

int jdoc_txn_putb(struct store_txn *t, uint32_t ds, char ns, const char *key, size_t key_len,
                  const json_t *doc, struct err *e)
{
	char *s = json_dumps(doc, JSON_COMPACT);
	int rc;

	if (s == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	rc = store_txn_doc_put(t, ds, ns, key, key_len, s, strlen(s), e);
	free(s);
	return rc;
}

int jdoc_txn_put(struct store_txn *t, uint32_t ds, char ns, const char *key, const json_t *doc,
                 struct err *e)
{
	return jdoc_txn_putb(t, ds, ns, key, strlen(key), doc, e);
}

static int list_fn(void *ctx, const char *key, size_t key_len, const void *val, size_t len)
{
	json_t *doc = json_loadb(val, len, 0, NULL);

	(void)key;
	(void)key_len;
	if (doc != NULL && json_array_append_new(ctx, doc) != 0)
		return ERR_NOMEM;
	return 0;
}

int jdoc_reader_list(struct store_reader *r, uint32_t ds, char ns, json_t **out, struct err *e)
{
	json_t *arr = json_array();
	int rc;

	if (arr == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	rc = store_reader_docs(r, ds, ns, list_fn, arr, e);
	if (rc != 0) {
		json_decref(arr);
		return rc == ERR_NOMEM ? err_set(e, ERR_NOMEM, "out_of_memory", "out of memory") : rc;
	}
	*out = arr;
	return 0;
}

int jdoc_txn_drop(struct store_txn *t, uint32_t ds, char ns, const char *key, struct err *e)
{
	int rc = store_txn_doc_del(t, ds, ns, key, strlen(key), e);

	if (rc == ERR_NOT_FOUND) {
		err_clear(e);
		rc = 0;
	}
	return rc;
}

/* ---- named documents ---- */

static int named_missing(int rc, const struct jdoc_kind *k, const char *name, struct err *e)
{
	return rc == ERR_NOT_FOUND ? err_set(e, ERR_NOT_FOUND, k->code, "no %s '%s'", k->what, name)
	                           : rc;
}

int jdoc_named_txn_get(struct store_txn *t, const struct jdoc_kind *k, uint32_t ds,
                       const char *name, json_t **out, struct err *e)
{
	return named_missing(jdoc_txn_get(t, ds, k->ns, name, out, e), k, name, e);
}

int jdoc_named_reader_get(struct store_reader *r, const struct jdoc_kind *k, uint32_t ds,
                          const char *name, json_t **out, struct err *e)
{
	return named_missing(jdoc_reader_get(r, ds, k->ns, name, out, e), k, name, e);
}

int jdoc_named_get(struct store *s, const struct jdoc_kind *k, const char *dataset,
                   const char *name, struct store_dataset_info *info, json_t **out, struct err *e)
{
	struct store_dataset_info ds;
	struct store_reader *r = NULL;
	int rc;

	if ((rc = store_dataset_get(s, dataset, &ds, e)) != 0 ||
	    (rc = store_reader_open(s, &r, e)) != 0)
		return rc;
	rc = jdoc_named_reader_get(r, k, ds.id, name, out, e);
	store_reader_close(r);
	if (rc == 0 && info != NULL)
		*info = ds;
	return rc;
}

int jdoc_named_view(struct store *s, const struct jdoc_kind *k, const char *dataset,
                    const char *name, jdoc_view_fn view, void *ctx, json_t **out, struct err *e)
{
	struct store_dataset_info ds;
	json_t *doc = NULL;
	int rc;

	if ((rc = jdoc_named_get(s, k, dataset, name, &ds, &doc, e)) != 0)
		return rc;
	*out = view(ctx, ds.id, doc);
	json_decref(doc);
	return *out != NULL ? 0 : err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
}

int jdoc_named_list(struct store *s, const struct jdoc_kind *k, const char *dataset,
                    jdoc_view_fn view, void *ctx, json_t **out, struct err *e)
{
	struct store_dataset_info info;
	struct store_reader *r = NULL;
	json_t *docs = NULL, *arr, *doc;
	size_t i;
	int rc;

	if ((rc = store_dataset_get(s, dataset, &info, e)) != 0 ||
	    (rc = store_reader_open(s, &r, e)) != 0)
		return rc;
	rc = jdoc_reader_list(r, info.id, k->ns, &docs, e);
	store_reader_close(r);
	if (rc != 0)
		return rc;
	if ((arr = json_array()) == NULL) {
		json_decref(docs);
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	json_array_foreach(docs, i, doc)
		json_array_append_new(arr, view(ctx, info.id, doc));
	json_decref(docs);
	*out = arr;
	return 0;
}

int jdoc_named_txn_previous(struct store_txn *t, const struct jdoc_kind *k, uint32_t ds,
                            const char *name, json_t **old, uint64_t *version, struct err *e)
{
	int rc = jdoc_named_txn_get(t, k, ds, name, old, e);

	*version = 1;
	if (rc == ERR_NOT_FOUND) {
		err_clear(e);
		*old = NULL;
		return 0;
	}
	if (rc != 0)
		return rc;
	*version = (uint64_t)json_integer_value(json_object_get(*old, "version")) + 1;
	return 0;
}

int jdoc_named_txn_put(struct store_txn *t, const struct jdoc_kind *k, uint32_t ds,
                       const char *name, const json_t *doc, struct err *e)
{
	return jdoc_txn_put(t, ds, k->ns, name, doc, e);
}

struct del_ctx {
	const struct jdoc_kind *k;
	uint32_t ds;
	const char *name;
	jdoc_cleanup_fn cleanup;
	void *ctx;
};

static int del_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct del_ctx *c = ctx;
	json_t *doc = NULL;
	int rc;

	if ((rc = jdoc_named_txn_get(t, c->k, c->ds, c->name, &doc, e)) != 0)
		return rc;
	if (c->cleanup == NULL || (rc = c->cleanup(c->ctx, t, c->ds, c->name, doc, e)) == 0)
		rc = store_txn_doc_del(t, c->ds, c->k->ns, c->name, strlen(c->name), e);
	json_decref(doc);
	return rc;
}

int jdoc_named_delete(struct store *s, const struct jdoc_kind *k, uint32_t ds, const char *name,
                      jdoc_cleanup_fn cleanup, void *ctx, struct err *e)
{
	struct del_ctx c = {.k = k, .ds = ds, .name = name, .cleanup = cleanup, .ctx = ctx};

	return store_write(s, del_fn, &c, e);
}

json_t *jdoc_time(const json_t *v)
{
	char buf[32];
	time_t t;
	struct tm tm;

	if (!json_is_integer(v))
		return json_null();
	t = (time_t)json_integer_value(v);
	gmtime_r(&t, &tm);
	strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}
