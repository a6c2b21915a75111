/* SPDX-License-Identifier: MIT */
/* test_jdoc: the named documents of store/jdoc.c on a real store in a fresh mkdtemp
 * directory: put, get (by dataset id and by dataset name), the problems naming what is
 * missing, the version a re-PUT gets, listing through a view, and a delete whose cleanup
 * runs in the same transaction (a failing cleanup leaves everything in place). */
#include "store/jdoc.h"

#include "lib/err.h"
#include "store/store.h"
#include "tests/harness.h"

#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmp_root[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void tmp_done(void)
{
	if (tmp_root[0] != '\0')
		nftw(tmp_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	tmp_root[0] = '\0';
}

static const struct jdoc_kind things = {STORE_NS_FILTER, "thing_not_found", "thing"};
/* the same dataset, another namespace: must never show up in things' listings */
static const struct jdoc_kind others = {STORE_NS_SUBSET, "other_not_found", "other"};

/* A fresh store with datasets "a" and "b" (one f32 space of dim 4); *ida, *idb their ids. */
static struct store *fresh(uint32_t *ida, uint32_t *idb)
{
	struct store_config cfg = {NULL, 1u << 24, 0};
	struct store_schema sc;
	struct store_dataset_info info;
	struct store *s = NULL;
	struct err e;

	tmp_done();
	strcpy(tmp_root, "/tmp/winnow-test-jdoc-XXXXXX");
	if (mkdtemp(tmp_root) == NULL)
		return NULL;
	cfg.dir = tmp_root;
	memset(&sc, 0, sizeof sc);
	sc.nspaces = 1;
	strcpy(sc.spaces[0].name, "v");
	sc.spaces[0].dim = 4;
	sc.spaces[0].dtype = STORE_F32;
	sc.kinds = STORE_KIND_TEXT;
	err_clear(&e);
	if (store_open(&s, &cfg, &e) != 0 || store_dataset_create(s, "a", &sc, NULL, &e) != 0 ||
	    store_dataset_create(s, "b", &sc, NULL, &e) != 0 ||
	    store_dataset_get(s, "a", &info, &e) != 0) {
		printf("  setup: %s: %s\n", e.slug, e.detail);
		store_close(s);
		return NULL;
	}
	*ida = info.id;
	if (store_dataset_get(s, "b", &info, &e) != 0) {
		store_close(s);
		return NULL;
	}
	*idb = info.id;
	return s;
}

/* A PUT as the services write it: the previous document decides the version, "n" is the
 * payload. Outputs what jdoc_named_txn_previous said. */
struct put_ctx {
	const struct jdoc_kind *k;
	uint32_t ds;
	const char *name;
	int n;
	int had_old;
	uint64_t version;
};

static int put_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct put_ctx *c = ctx;
	json_t *old = NULL, *doc;
	int rc;

	c->had_old = 0;
	if ((rc = jdoc_named_txn_previous(t, c->k, c->ds, c->name, &old, &c->version, e)) != 0)
		return rc;
	c->had_old = old != NULL;
	json_decref(old);
	doc = json_pack("{s:s, s:I, s:i}", "name", c->name, "version", (json_int_t)c->version, "n",
	                c->n);
	if (doc == NULL)
		return ERR_NOMEM;
	rc = jdoc_named_txn_put(t, c->k, c->ds, c->name, doc, e);
	json_decref(doc);
	return rc;
}

static int put(struct store *s, const struct jdoc_kind *k, uint32_t ds, const char *name, int n,
               struct put_ctx *out)
{
	struct err e;

	memset(out, 0, sizeof *out);
	out->k = k;
	out->ds = ds;
	out->name = name;
	out->n = n;
	err_clear(&e);
	return store_write(s, put_fn, out, &e);
}

static json_t *get(struct store *s, const char *dataset, const char *name)
{
	struct err e;
	json_t *doc = NULL;

	err_clear(&e);
	return jdoc_named_get(s, &things, dataset, name, NULL, &doc, &e) == 0 ? doc : NULL;
}

static long long doc_int(const json_t *doc, const char *key)
{
	return (long long)json_integer_value(json_object_get(doc, key));
}

/* The view the tests list through: name and the dataset id it was called with; "skip" is
 * left out (the view returns NULL). */
static json_t *view(void *ctx, uint32_t ds, const json_t *doc)
{
	const char *name = json_string_value(json_object_get(doc, "name"));

	(*(int *)ctx)++;
	if (name != NULL && strcmp(name, "skip") == 0)
		return NULL;
	return json_pack("{s:s, s:I, s:I}", "name", name, "ds", (json_int_t)ds, "n",
	                 (json_int_t)doc_int(doc, "n"));
}

static void test_put_get_missing(void)
{
	uint32_t a, b;
	struct store *s = fresh(&a, &b);
	struct store_dataset_info info;
	struct put_ctx pc;
	struct err e;
	json_t *doc = NULL;

	CHECK(s != NULL);
	CHECK_INT(put(s, &things, a, "x", 7, &pc), 0);
	CHECK_INT(pc.had_old, 0);
	CHECK_INT(pc.version, 1);
	err_clear(&e);
	memset(&info, 0, sizeof info);
	CHECK_INT(jdoc_named_get(s, &things, "a", "x", &info, &doc, &e), 0);
	CHECK_INT(info.id, a);
	CHECK_STR(json_string_value(json_object_get(doc, "name")), "x");
	CHECK_INT(doc_int(doc, "n"), 7);
	CHECK_INT(doc_int(doc, "version"), 1);
	json_decref(doc);
	doc = NULL;

	/* missing: the kind's code and "no <what> '<name>'" */
	err_clear(&e);
	CHECK_INT(jdoc_named_get(s, &things, "a", "nope", NULL, &doc, &e), ERR_NOT_FOUND);
	CHECK_STR(e.slug, "thing_not_found");
	CHECK_STR(e.detail, "no thing 'nope'");
	CHECK(doc == NULL);
	/* the same name in another dataset or namespace is another document */
	err_clear(&e);
	CHECK_INT(jdoc_named_get(s, &things, "b", "x", NULL, &doc, &e), ERR_NOT_FOUND);
	CHECK_STR(e.detail, "no thing 'x'");
	err_clear(&e);
	{
		struct store_reader *r = NULL;
		int rc;

		CHECK_INT(store_reader_open(s, &r, &e), 0);
		rc = jdoc_named_reader_get(r, &others, a, "x", &doc, &e);
		store_reader_close(r);
		CHECK_INT(rc, ERR_NOT_FOUND);
		CHECK_STR(e.slug, "other_not_found");
		CHECK_STR(e.detail, "no other 'x'");
	}
	/* no such dataset: the store's own problem */
	err_clear(&e);
	CHECK_INT(jdoc_named_get(s, &things, "zz", "x", NULL, &doc, &e), ERR_NOT_FOUND);
	CHECK_STR(e.slug, "dataset_not_found");
	store_close(s);
	tmp_done();
}

static void test_version_bump(void)
{
	uint32_t a, b;
	struct store *s = fresh(&a, &b);
	struct put_ctx pc;
	json_t *doc;

	CHECK(s != NULL);
	for (int i = 1; i <= 3; i++) {
		CHECK_INT(put(s, &things, a, "x", 10 * i, &pc), 0);
		CHECK_INT(pc.had_old, i > 1);
		CHECK_INT(pc.version, i);
		CHECK((doc = get(s, "a", "x")) != NULL);
		CHECK_INT(doc_int(doc, "version"), i);
		CHECK_INT(doc_int(doc, "n"), 10 * i);
		json_decref(doc);
	}
	/* another name, and the same name in another dataset, start at 1 */
	CHECK_INT(put(s, &things, a, "y", 1, &pc), 0);
	CHECK_INT(pc.version, 1);
	CHECK_INT(put(s, &things, b, "x", 1, &pc), 0);
	CHECK_INT(pc.version, 1);
	CHECK((doc = get(s, "a", "x")) != NULL);
	CHECK_INT(doc_int(doc, "version"), 3);
	json_decref(doc);
	store_close(s);
	tmp_done();
}

static void test_list_and_view(void)
{
	uint32_t a, b;
	struct store *s = fresh(&a, &b);
	static const char *const names[] = {"m", "b", "skip", "a", "z"};
	struct put_ctx pc;
	struct err e;
	json_t *arr = NULL, *one = NULL;
	int calls = 0;

	CHECK(s != NULL);
	err_clear(&e);
	CHECK_INT(jdoc_named_list(s, &things, "a", view, &calls, &arr, &e), 0);
	CHECK_INT(json_array_size(arr), 0);
	CHECK_INT(calls, 0);
	json_decref(arr);
	arr = NULL;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		CHECK_INT(put(s, &things, a, names[i], (int)i, &pc), 0);
	CHECK_INT(put(s, &things, b, "in-b", 99, &pc), 0);
	CHECK_INT(put(s, &others, a, "other", 98, &pc), 0);

	/* name order, "skip" left out by its view, nothing of b or of the other namespace */
	CHECK_INT(jdoc_named_list(s, &things, "a", view, &calls, &arr, &e), 0);
	CHECK_INT(calls, 5);
	CHECK_INT(json_array_size(arr), 4);
	{
		static const char *const want[] = {"a", "b", "m", "z"};
		static const int want_n[] = {3, 1, 0, 4};

		for (size_t i = 0; i < 4; i++) {
			json_t *v = json_array_get(arr, i);

			CHECK_STR(json_string_value(json_object_get(v, "name")), want[i]);
			CHECK_INT(doc_int(v, "n"), want_n[i]);
			CHECK_INT(doc_int(v, "ds"), a);
		}
	}
	json_decref(arr);
	arr = NULL;
	CHECK_INT(jdoc_named_list(s, &things, "nope", view, &calls, &arr, &e), ERR_NOT_FOUND);
	CHECK_STR(e.slug, "dataset_not_found");

	/* one view: the dataset id reaches the view; a NULL view is out of memory */
	err_clear(&e);
	CHECK_INT(jdoc_named_view(s, &things, "b", "in-b", view, &calls, &one, &e), 0);
	CHECK_INT(doc_int(one, "ds"), b);
	CHECK_INT(doc_int(one, "n"), 99);
	json_decref(one);
	one = NULL;
	err_clear(&e);
	CHECK_INT(jdoc_named_view(s, &things, "a", "skip", view, &calls, &one, &e), ERR_NOMEM);
	err_clear(&e);
	CHECK_INT(jdoc_named_view(s, &things, "a", "gone", view, &calls, &one, &e), ERR_NOT_FOUND);
	CHECK_STR(e.detail, "no thing 'gone'");
	store_close(s);
	tmp_done();
}

/* The cleanup the delete tests use: drops the blob it derived (STORE_NS_FITTED, same name),
 * remembers the document's "n", and fails with ERR_CONFLICT when asked to. */
struct clean_ctx {
	int calls;
	long long n;
	int fail;
};

static int cleanup(void *ctx, struct store_txn *t, uint32_t ds, const char *name,
                   const json_t *doc, struct err *e)
{
	struct clean_ctx *c = ctx;
	int rc;

	c->calls++;
	c->n = doc_int(doc, "n");
	if ((rc = store_txn_doc_del(t, ds, STORE_NS_FITTED, name, strlen(name), e)) != 0)
		return rc;
	return c->fail ? err_set(e, ERR_CONFLICT, "busy", "not now") : 0;
}

static int blob_fn(void *ctx, struct store_txn *t, struct err *e)
{
	const char *name = ctx;

	return store_txn_doc_put(t, 1, STORE_NS_FITTED, name, strlen(name), "blob", 4, e);
}

/* 1 when dataset ds has a STORE_NS_FITTED document name. */
static int has_blob(struct store *s, uint32_t ds, const char *name)
{
	struct store_reader *r = NULL;
	const void *v;
	size_t len;
	int rc;

	if (store_reader_open(s, &r, NULL) != 0)
		return -1;
	rc = store_reader_doc_get(r, ds, STORE_NS_FITTED, name, strlen(name), &v, &len, NULL);
	store_reader_close(r);
	return rc == 0;
}

static void test_delete(void)
{
	uint32_t a, b;
	struct store *s = fresh(&a, &b);
	struct clean_ctx cc = {0};
	struct put_ctx pc;
	struct err e;
	json_t *doc;

	CHECK(s != NULL);
	CHECK_INT(a, 1); /* blob_fn writes into dataset 1 */
	CHECK_INT(put(s, &things, a, "x", 5, &pc), 0);
	CHECK_INT(put(s, &things, a, "y", 6, &pc), 0);
	err_clear(&e);
	CHECK_INT(store_write(s, blob_fn, "x", &e), 0);
	CHECK_INT(has_blob(s, a, "x"), 1);

	/* a failing cleanup aborts the whole delete: document and blob stay */
	cc.fail = 1;
	err_clear(&e);
	CHECK_INT(jdoc_named_delete(s, &things, a, "x", cleanup, &cc, &e), ERR_CONFLICT);
	CHECK_STR(e.slug, "busy");
	CHECK(cc.calls >= 1);
	CHECK_INT(cc.n, 5);
	CHECK((doc = get(s, "a", "x")) != NULL);
	json_decref(doc);
	CHECK_INT(has_blob(s, a, "x"), 1);

	/* a cleanup that succeeds: both go in one commit, the other document stays */
	cc.fail = 0;
	cc.calls = 0;
	err_clear(&e);
	CHECK_INT(jdoc_named_delete(s, &things, a, "x", cleanup, &cc, &e), 0);
	CHECK_INT(cc.calls, 1);
	CHECK_INT(cc.n, 5);
	CHECK(get(s, "a", "x") == NULL);
	CHECK_INT(has_blob(s, a, "x"), 0);
	CHECK((doc = get(s, "a", "y")) != NULL);
	json_decref(doc);

	/* deleting what is not there: named, and the cleanup is not called */
	cc.calls = 0;
	err_clear(&e);
	CHECK_INT(jdoc_named_delete(s, &things, a, "x", cleanup, &cc, &e), ERR_NOT_FOUND);
	CHECK_STR(e.slug, "thing_not_found");
	CHECK_STR(e.detail, "no thing 'x'");
	CHECK_INT(cc.calls, 0);

	/* no cleanup at all; a re-PUT after a delete starts again at version 1 */
	err_clear(&e);
	CHECK_INT(jdoc_named_delete(s, &things, a, "y", NULL, NULL, &e), 0);
	CHECK(get(s, "a", "y") == NULL);
	CHECK_INT(put(s, &things, a, "y", 7, &pc), 0);
	CHECK_INT(pc.had_old, 0);
	CHECK_INT(pc.version, 1);
	store_close(s);
	tmp_done();
}

static int drop_fn(void *ctx, struct store_txn *t, struct err *e)
{
	return jdoc_txn_drop(t, 1, STORE_NS_FITTED, ctx, e);
}

static void test_txn_drop(void)
{
	uint32_t a, b;
	struct store *s = fresh(&a, &b);
	struct err e;

	CHECK(s != NULL);
	CHECK_INT(a, 1);
	err_clear(&e);
	CHECK_INT(store_write(s, blob_fn, "k", &e), 0);
	CHECK_INT(has_blob(s, a, "k"), 1);
	CHECK_INT(store_write(s, drop_fn, "k", &e), 0);
	CHECK_INT(has_blob(s, a, "k"), 0);
	/* absent is not an error, and leaves no detail behind */
	CHECK_INT(store_write(s, drop_fn, "k", &e), 0);
	CHECK_STR(e.slug, "");
	store_close(s);
	tmp_done();
}

int main(void)
{
	HARNESS_RUN(test_put_get_missing);
	HARNESS_RUN(test_version_bump);
	HARNESS_RUN(test_list_and_view);
	HARNESS_RUN(test_delete);
	HARNESS_RUN(test_txn_drop);
	tmp_done();
	return harness_done();
}
