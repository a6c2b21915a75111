/* SPDX-License-Identifier: MIT */
/* jdoc: JSON documents over store documents. */
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

int jdoc_list_views(struct store *s, const char *dataset, char ns,
                    json_t *(*view)(void *ctx, uint32_t ds, const json_t *doc), void *ctx,
                    json_t **out, struct err *e)
{
	struct store_dataset_info info;
	struct store_reader *r = NULL;
	json_t *docs = NULL, *arr, *doc;
	size_t i;
	int rc;

	if ((rc = store_dataset_get(s, dataset, &info, e)) != 0 ||
	    (rc = store_reader_open(s, &r, e)) != 0)
		return rc;
	rc = jdoc_reader_list(r, info.id, ns, &docs, e);
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
