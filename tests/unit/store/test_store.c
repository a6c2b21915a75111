/* SPDX-License-Identifier: MIT */
/* test_store: the LMDB layer end to end, each test in a fresh mkdtemp directory:
 * datasets, upserts, deletes, snapshot readers, vector blocks, map growth under
 * concurrent readers, chunking, reopen and format version, dataset delete and reclaim,
 * and a printed (not asserted) ingest timing. Some tests open the environment with LMDB
 * directly to look at or tamper with the raw keys. */
#include "store/store.h"

#include "lib/err.h"
#include "lib/vec.h"
#include "tests/harness.h"

#include <ftw.h>
#include <lmdb.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define D0 8 /* space 0: f32 */
#define D1 4 /* space 1: f16 */

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

/* A failed CHECK returns before its test's tmp_done: the next tmp_dir (or main) cleans up. */
static const char *tmp_dir(void)
{
	tmp_done();
	strcpy(tmp_root, "/tmp/winnow-test-store-XXXXXX");
	return mkdtemp(tmp_root);
}

static struct store *open_at(const char *dir, size_t map_size)
{
	struct store_config cfg = { dir, map_size, 0 };
	struct store *s = NULL;
	struct err e;

	err_clear(&e);
	if (store_open(&s, &cfg, &e) != 0)
		printf("  store_open: %s: %s\n", e.slug, e.detail);
	return s;
}

static struct store_schema schema2(void)
{
	struct store_schema sc;

	memset(&sc, 0, sizeof sc);
	sc.nspaces = 2;
	strcpy(sc.spaces[0].name, "image");
	sc.spaces[0].dim = D0;
	sc.spaces[0].dtype = STORE_F32;
	strcpy(sc.spaces[1].name, "text");
	sc.spaces[1].dim = D1;
	sc.spaces[1].dtype = STORE_F16;
	sc.kinds = STORE_KIND_IMAGE_TEXT | STORE_KIND_TEXT;
	return sc;
}

/* Records with deterministic content; record k of generation g. */
struct batch {
	size_t n;
	struct store_record *recs;
	char (*ids)[40];
	char (*bodies)[64];
	float *v0;
	uint16_t *v1;
};

static float v0_val(size_t k, unsigned g, unsigned j)
{
	return (float)k + (float)j * 0.125f + (float)g * 1000.0f;
}

static uint16_t v1_val(size_t k, unsigned g, unsigned j)
{
	return vec_f32_to_f16_one((float)(k % 2048) + (float)j * 0.25f + (float)g);
}

static void batch_free(struct batch *b)
{
	free(b->recs);
	free(b->ids);
	free(b->bodies);
	free(b->v0);
	free(b->v1);
	memset(b, 0, sizeof *b);
}

/* Records first .. first+n-1 of generation g, both vectors present. */
static int batch_make(struct batch *b, size_t n, size_t first, unsigned g)
{
	memset(b, 0, sizeof *b);
	b->n = n;
	b->recs = calloc(n, sizeof *b->recs);
	b->ids = calloc(n, sizeof *b->ids);
	b->bodies = calloc(n, sizeof *b->bodies);
	b->v0 = calloc(n * D0, sizeof *b->v0);
	b->v1 = calloc(n * D1, sizeof *b->v1);
	if (!b->recs || !b->ids || !b->bodies || !b->v0 || !b->v1) {
		batch_free(b);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		size_t k = first + i;
		struct store_record *r = &b->recs[i];

		snprintf(b->ids[i], sizeof b->ids[i], "rec-%07zu", k);
		snprintf(b->bodies[i], sizeof b->bodies[i], "{\"k\":%zu,\"g\":%u}", k, g);
		for (unsigned j = 0; j < D0; j++)
			b->v0[i * D0 + j] = v0_val(k, g, j);
		for (unsigned j = 0; j < D1; j++)
			b->v1[i * D1 + j] = v1_val(k, g, j);
		r->id = b->ids[i];
		r->id_len = strlen(b->ids[i]);
		r->kind = STORE_KIND_IMAGE_TEXT;
		r->body = b->bodies[i];
		r->body_len = strlen(b->bodies[i]);
		r->vec[0] = &b->v0[i * D0];
		r->vec[1] = &b->v1[i * D1];
	}
	return 0;
}

/* 1 when record k of generation g reads back as written (vec0/vec1 as expected). */
static int record_ok(struct store *s, uint32_t ds, size_t k, unsigned g, uint64_t row,
                     int want0, int want1)
{
	struct store_record_out out;
	char id[40], body[64];
	float e0[D0];
	uint16_t e1[D1];
	int ok;

	snprintf(id, sizeof id, "rec-%07zu", k);
	snprintf(body, sizeof body, "{\"k\":%zu,\"g\":%u}", k, g);
	for (unsigned j = 0; j < D0; j++)
		e0[j] = v0_val(k, g, j);
	for (unsigned j = 0; j < D1; j++)
		e1[j] = v1_val(k, g, j);
	if (store_get_record(s, ds, id, strlen(id), 1, &out, NULL) != 0)
		return 0;
	ok = out.row == row && out.kind == STORE_KIND_IMAGE_TEXT && out.body_len == strlen(body) &&
	     memcmp(out.body, body, out.body_len) == 0 && out.body[out.body_len] == '\0' &&
	     (want0 ? out.vec[0] != NULL && memcmp(out.vec[0], e0, sizeof e0) == 0
	            : out.vec[0] == NULL) &&
	     (want1 ? out.vec[1] != NULL && memcmp(out.vec[1], e1, sizeof e1) == 0
	            : out.vec[1] == NULL);
	store_record_out_free(&out);
	return ok;
}

static uint32_t make_dataset(struct store *s, const char *name)
{
	struct store_schema sc = schema2();
	struct store_dataset_info info;

	if (store_dataset_create(s, name, &sc, NULL, NULL) != 0 ||
	    store_dataset_get(s, name, &info, NULL) != 0)
		return 0;
	return info.id;
}

/* Collects rows and ids that store_reader_rows visits. */
struct visit {
	size_t n, cap, stop_after;
	uint64_t *rows;
	char last_id[40];
};

static int visit_fn(void *ctx, uint64_t row, unsigned kind, const char *id, size_t id_len,
                    const char *body, size_t body_len)
{
	(void)kind;
	struct visit *v = ctx;

	(void)body;
	if (body_len == 0 || id_len >= sizeof v->last_id)
		return ERR_INTERNAL;
	if (v->n < v->cap)
		v->rows[v->n] = row;
	v->n++;
	memcpy(v->last_id, id, id_len);
	v->last_id[id_len] = '\0';
	return v->stop_after && v->n >= v->stop_after ? 1 : 0;
}

static size_t count_rows(struct store *s, uint32_t ds)
{
	struct store_reader *r = NULL;
	struct visit v;

	memset(&v, 0, sizeof v);
	if (store_reader_open(s, &r, NULL) != 0)
		return (size_t)-1;
	if (store_reader_rows(r, ds, 0, visit_fn, &v, NULL) != 0)
		v.n = (size_t)-1;
	store_reader_close(r);
	return v.n;
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_names_and_helpers(void)
{
	struct store_schema sc = schema2();
	char long_name[80];

	memset(long_name, 'a', sizeof long_name);
	long_name[64] = '\0';
	CHECK(store_name_valid("laion-2b_en.v1"));
	CHECK(store_name_valid(long_name));
	long_name[64] = 'a';
	long_name[65] = '\0';
	CHECK(!store_name_valid(long_name));
	CHECK(!store_name_valid(""));
	CHECK(!store_name_valid(NULL));
	CHECK(!store_name_valid("a/b"));
	CHECK(!store_name_valid("a b"));
	CHECK(!store_name_valid("caf\xc3\xa9"));
	CHECK_INT(store_space_bytes(&sc.spaces[0]), D0 * 4);
	CHECK_INT(store_space_bytes(&sc.spaces[1]), D1 * 2);
	CHECK_INT(store_schema_find(&sc, "text"), 1);
	CHECK_INT(store_schema_find(&sc, "image"), 0);
	CHECK_INT(store_schema_find(&sc, "audio"), -1);
}

static void test_dataset_create(void)
{
	struct store_schema sc = schema2(), other = schema2();
	struct store_dataset_info info, *list = NULL;
	struct store_stats st;
	struct store *s;
	struct err e;
	size_t n = 0;
	int created = -1;
	time_t now = time(NULL);

	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	err_clear(&e);
	CHECK_INT(store_dataset_create(s, "zeta", &sc, &created, &e), 0);
	CHECK_INT(created, 1);
	CHECK_INT(store_dataset_create(s, "zeta", &sc, &created, &e), 0);
	CHECK_INT(created, 0);
	other.spaces[1].dim = D1 + 1;
	CHECK_INT(store_dataset_create(s, "zeta", &other, &created, &e), ERR_CONFLICT);
	CHECK_INT(e.code, ERR_CONFLICT);
	CHECK_STR(e.slug, "dataset_exists");
	other = schema2();
	other.spaces[0].dtype = STORE_F16;
	CHECK_INT(store_dataset_create(s, "zeta", &other, NULL, NULL), ERR_CONFLICT);
	other = schema2();
	other.kinds = STORE_KIND_TEXT;
	CHECK_INT(store_dataset_create(s, "zeta", &other, NULL, NULL), ERR_CONFLICT);
	CHECK_INT(store_dataset_create(s, "bad/name", &sc, NULL, NULL), ERR_INVALID);
	other = schema2();
	other.spaces[1].dim = 0;
	CHECK_INT(store_dataset_create(s, "x", &other, NULL, NULL), ERR_INVALID);
	strcpy(other.spaces[1].name, "image");
	other.spaces[1].dim = 3;
	CHECK_INT(store_dataset_create(s, "x", &other, NULL, NULL), ERR_INVALID);
	CHECK_INT(store_dataset_create(s, "alpha", &sc, &created, NULL), 0);
	CHECK_INT(created, 1);
	CHECK_INT(store_dataset_create(s, "mid", &sc, NULL, NULL), 0);

	CHECK_INT(store_dataset_list(s, &list, &n, NULL), 0);
	CHECK_INT(n, 3);
	CHECK_STR(list[0].name, "alpha");
	CHECK_STR(list[1].name, "mid");
	CHECK_STR(list[2].name, "zeta");
	CHECK(list[0].id != list[1].id && list[1].id != list[2].id && list[0].id != list[2].id);
	free(list);

	memset(&info, 0xa5, sizeof info);
	CHECK_INT(store_dataset_get(s, "zeta", &info, NULL), 0);
	CHECK_STR(info.name, "zeta");
	CHECK_INT(info.id, 1); /* the first dataset created */
	CHECK_INT(info.records, 0);
	CHECK_INT(info.next_row, 0);
	CHECK(info.created_unix >= now - 5 && info.created_unix <= now + 5);
	CHECK_INT(info.schema.nspaces, 2);
	CHECK_STR(info.schema.spaces[0].name, "image");
	CHECK_INT(info.schema.spaces[0].dim, D0);
	CHECK_INT(info.schema.spaces[0].dtype, STORE_F32);
	CHECK_STR(info.schema.spaces[1].name, "text");
	CHECK_INT(info.schema.spaces[1].dim, D1);
	CHECK_INT(info.schema.spaces[1].dtype, STORE_F16);
	CHECK_INT(info.schema.kinds, STORE_KIND_IMAGE_TEXT | STORE_KIND_TEXT);
	err_clear(&e);
	CHECK_INT(store_dataset_get(s, "nope", &info, &e), ERR_NOT_FOUND);
	CHECK_STR(e.slug, "dataset_not_found");
	CHECK_INT(store_stats(s, &st), 0);
	CHECK_INT(st.datasets, 3);
	CHECK(st.page_size >= 4096 && st.used_bytes > 0 && st.used_bytes <= st.map_size);
	store_close(s);
	tmp_done();
}

static void test_put_get(void)
{
	struct store_dataset_info info;
	struct store_record_out out;
	struct batch b;
	struct store *s;
	struct visit v;
	uint32_t ds;
	uint64_t rows[1000];
	struct err e;

	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	ds = make_dataset(s, "d");
	CHECK(ds != 0);
	CHECK_INT(batch_make(&b, 1000, 0, 0), 0);
	b.recs[500].vec[1] = NULL;
	b.recs[501].vec[0] = NULL;
	b.recs[502].vec[0] = NULL;
	b.recs[502].vec[1] = NULL;
	CHECK_INT(store_put_records(s, ds, b.recs, b.n, NULL, NULL), 0);
	for (size_t k = 0; k < 1000; k++)
		CHECK(record_ok(s, ds, k, 0, k, k != 501 && k != 502, k != 500 && k != 502));
	CHECK_INT(store_get_record(s, ds, "rec-0000007", 11, 0, &out, NULL), 0);
	CHECK(out.vec[0] == NULL && out.vec[1] == NULL && out.row == 7 && out.body != NULL);
	store_record_out_free(&out);
	store_record_out_free(&out); /* freeing twice is harmless: the struct was zeroed */
	err_clear(&e);
	CHECK_INT(store_get_record(s, ds, "rec-9999999", 11, 1, &out, &e), ERR_NOT_FOUND);
	CHECK_STR(e.slug, "record_not_found");
	CHECK_INT(store_get_record(s, ds + 100, "rec-0000007", 11, 1, &out, NULL), ERR_NOT_FOUND);
	CHECK_INT(store_put_records(s, ds + 100, b.recs, 1, NULL, NULL), ERR_NOT_FOUND);
	CHECK_INT(store_dataset_get(s, "d", &info, NULL), 0);
	CHECK_INT(info.records, 1000);
	CHECK_INT(info.next_row, 1000);

	memset(&v, 0, sizeof v);
	v.rows = rows;
	v.cap = 1000;
	{
		struct store_reader *r = NULL;

		CHECK_INT(store_reader_open(s, &r, NULL), 0);
		CHECK_INT(store_reader_rows(r, ds, 0, visit_fn, &v, NULL), 0);
		CHECK_INT(v.n, 1000);
		for (size_t i = 0; i < 1000; i++)
			CHECK_INT(rows[i], i);
		CHECK_STR(v.last_id, "rec-0000999");
		/* From row 990, stopping after 3. */
		memset(&v, 0, sizeof v);
		v.rows = rows;
		v.cap = 1000;
		v.stop_after = 3;
		CHECK_INT(store_reader_rows(r, ds, 990, visit_fn, &v, NULL), 0);
		CHECK_INT(v.n, 3);
		CHECK_INT(rows[0], 990);
		CHECK_INT(rows[2], 992);
		CHECK_STR(v.last_id, "rec-0000992");
		store_reader_close(r);
	}
	batch_free(&b);
	store_close(s);
	tmp_done();
}

static void test_upsert(void)
{
	struct store_dataset_info info;
	struct store_record_out out;
	struct store_record dup[4];
	struct batch b, g1;
	struct store *s;
	uint32_t ds;

	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	ds = make_dataset(s, "d");
	CHECK(ds != 0);
	CHECK_INT(batch_make(&b, 10, 0, 0), 0);
	CHECK_INT(batch_make(&g1, 10, 0, 1), 0);
	CHECK_INT(store_put_records(s, ds, b.recs, b.n, NULL, NULL), 0);
	/* Record 3 again (generation 1) without an image vector: keeps row 3, text
	 * replaced, image gone. Record 4 again with both. */
	g1.recs[3].vec[0] = NULL;
	CHECK_INT(store_put_records(s, ds, &g1.recs[3], 2, NULL, NULL), 0);
	CHECK(record_ok(s, ds, 3, 1, 3, 0, 1));
	CHECK(record_ok(s, ds, 4, 1, 4, 1, 1));
	CHECK(record_ok(s, ds, 5, 0, 5, 1, 1));
	CHECK_INT(store_dataset_get(s, "d", &info, NULL), 0);
	CHECK_INT(info.records, 10);
	CHECK_INT(info.next_row, 10);

	/* Duplicates in one call: a new id twice (last wins, one row) and an existing id
	 * whose last copy drops a vector the first copy set. */
	dup[0] = g1.recs[0];   /* rec-0000000 gen 1, both vectors */
	dup[0].id = "new-id";
	dup[0].id_len = 6;
	dup[1] = g1.recs[6];   /* rec-0000006 gen 1, both */
	dup[2] = b.recs[7];    /* rec-0000007 gen 0 (a new id for dup[3]'s slot) */
	dup[2].id = "new-id";
	dup[2].id_len = 6;
	dup[2].vec[1] = NULL;
	dup[3] = g1.recs[6];
	dup[3].vec[1] = NULL;  /* rec-0000006 gen 1, image only */
	CHECK_INT(store_put_records(s, ds, dup, 4, NULL, NULL), 0);
	CHECK_INT(store_dataset_get(s, "d", &info, NULL), 0);
	CHECK_INT(info.records, 11);
	CHECK_INT(info.next_row, 11);
	CHECK(record_ok(s, ds, 6, 1, 6, 1, 0));
	CHECK_INT(store_get_record(s, ds, "new-id", 6, 1, &out, NULL), 0);
	CHECK_INT(out.row, 10);
	CHECK(out.body_len == b.recs[7].body_len && memcmp(out.body, b.recs[7].body, out.body_len) == 0);
	CHECK(out.vec[0] != NULL && memcmp(out.vec[0], b.recs[7].vec[0], D0 * 4) == 0);
	CHECK(out.vec[1] == NULL);
	store_record_out_free(&out);
	CHECK_INT(count_rows(s, ds), 11);
	batch_free(&b);
	batch_free(&g1);
	store_close(s);
	tmp_done();
}

static void test_delete_record(void)
{
	struct store_dataset_info info;
	struct store_reader *r = NULL;
	struct store_record_out out;
	struct batch b;
	struct store *s;
	struct visit v;
	const void *data;
	uint64_t present, rows[200];
	uint32_t ds;
	struct err e;

	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	ds = make_dataset(s, "d");
	CHECK(ds != 0);
	CHECK_INT(batch_make(&b, 100, 0, 0), 0);
	CHECK_INT(store_put_records(s, ds, b.recs, b.n, rows, NULL), 0);
	{
		uint64_t row = UINT64_MAX;

		CHECK_INT(store_delete_record(s, ds, "rec-0000042", 11, &row, NULL), 0);
		CHECK_INT(row, rows[42]); /* the row it had, for the layers keyed by row */
		CHECK_INT(row, 42);
	}
	err_clear(&e);
	CHECK_INT(store_get_record(s, ds, "rec-0000042", 11, 1, &out, &e), ERR_NOT_FOUND);
	CHECK_INT(e.code, ERR_NOT_FOUND);
	CHECK_INT(store_delete_record(s, ds, "rec-0000042", 11, NULL, NULL), ERR_NOT_FOUND);
	CHECK_INT(store_delete_record(s, ds + 1, "rec-0000041", 11, NULL, NULL), ERR_NOT_FOUND);
	CHECK_INT(store_dataset_get(s, "d", &info, NULL), 0);
	CHECK_INT(info.records, 99);
	CHECK_INT(info.next_row, 100);
	CHECK(record_ok(s, ds, 41, 0, 41, 1, 1));
	CHECK(record_ok(s, ds, 43, 0, 43, 1, 1));

	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(store_reader_block(r, ds, 0, 0, &data, &present, NULL), 0);
	CHECK_INT(present, ~((uint64_t)1 << 42));
	for (unsigned j = 0; j < D0; j++)
		CHECK(((const float *)data)[42 * D0 + j] == 0.0f);
	store_reader_close(r);
	r = NULL;

	/* Re-insert: a new row, never the deleted one. */
	CHECK_INT(store_put_records(s, ds, &b.recs[42], 1, NULL, NULL), 0);
	CHECK(record_ok(s, ds, 42, 0, 100, 1, 1));
	memset(&v, 0, sizeof v);
	v.rows = rows;
	v.cap = 200;
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(store_reader_rows(r, ds, 0, visit_fn, &v, NULL), 0);
	CHECK_INT(v.n, 100);
	CHECK_INT(rows[41], 41);
	CHECK_INT(rows[42], 43); /* 42 skipped */
	CHECK_INT(rows[99], 100);
	CHECK_INT(store_reader_block(r, ds, 0, 1, &data, &present, NULL), 0);
	CHECK_INT(present, ((uint64_t)1 << 37) - 1); /* rows 64..100 */
	store_reader_close(r);
	r = NULL;

	/* Deleting every vector of block 1 (rows 64..100) deletes the block. */
	for (size_t k = 64; k < 100; k++)
		CHECK_INT(store_delete_record(s, ds, b.recs[k].id, b.recs[k].id_len, NULL, NULL), 0);
	CHECK_INT(store_delete_record(s, ds, "rec-0000042", 11, NULL, NULL), 0);
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	err_clear(&e);
	CHECK_INT(store_reader_block(r, ds, 0, 1, &data, &present, &e), ERR_NOT_FOUND);
	CHECK_INT(store_reader_block(r, ds, 1, 1, &data, &present, &e), ERR_NOT_FOUND);
	CHECK_INT(e.code, 0); /* an empty block is normal: no detail spent */
	store_reader_close(r);
	CHECK_INT(store_dataset_get(s, "d", &info, NULL), 0);
	CHECK_INT(info.records, 63);
	CHECK_INT(count_rows(s, ds), 63);
	batch_free(&b);
	store_close(s);
	tmp_done();
}

static void test_reader_snapshot(void)
{
	struct store_reader *r = NULL, *r2 = NULL;
	struct batch b;
	struct store *s;
	struct visit v;
	const void *data;
	uint64_t present, rows[32];
	uint32_t ds;

	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	ds = make_dataset(s, "d");
	CHECK(ds != 0);
	CHECK_INT(batch_make(&b, 20, 0, 0), 0);
	CHECK_INT(store_put_records(s, ds, b.recs, 10, NULL, NULL), 0);
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(store_put_records(s, ds, &b.recs[10], 10, NULL, NULL), 0);
	CHECK_INT(store_delete_record(s, ds, "rec-0000003", 11, NULL, NULL), 0);
	memset(&v, 0, sizeof v);
	v.rows = rows;
	v.cap = 32;
	CHECK_INT(store_reader_rows(r, ds, 0, visit_fn, &v, NULL), 0);
	CHECK_INT(v.n, 10);
	CHECK_INT(rows[3], 3);
	CHECK_INT(store_reader_block(r, ds, 0, 0, &data, &present, NULL), 0);
	CHECK_INT(present, 0x3ff);
	CHECK_INT(store_reader_open(s, &r2, NULL), 0);
	CHECK_INT(store_reader_block(r2, ds, 0, 0, &data, &present, NULL), 0);
	CHECK_INT(present, 0xffff7);
	store_reader_close(r2);
	store_reader_close(r);
	CHECK_INT(count_rows(s, ds), 19);
	batch_free(&b);
	store_close(s);
	tmp_done();
}

static void test_reader_block(void)
{
	struct store_reader *r = NULL;
	struct batch b;
	struct store *s;
	const void *data;
	uint64_t present;
	uint32_t ds;

	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	ds = make_dataset(s, "d");
	CHECK(ds != 0);
	CHECK_INT(batch_make(&b, 80, 0, 0), 0);
	for (size_t k = 1; k < 80; k += 2)
		b.recs[k].vec[1] = NULL; /* text vectors on even rows only */
	CHECK_INT(store_put_records(s, ds, b.recs, b.n, NULL, NULL), 0);
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(store_reader_block(r, ds, 0, 0, &data, &present, NULL), 0);
	CHECK_INT(present, UINT64_MAX);
	for (size_t k = 60; k < 64; k++)
		CHECK(memcmp((const float *)data + k * D0, &b.v0[k * D0], D0 * 4) == 0);
	CHECK_INT(store_reader_block(r, ds, 0, 1, &data, &present, NULL), 0);
	CHECK_INT(present, 0xffff);
	for (size_t k = 64; k <= 70; k++)
		CHECK(memcmp((const float *)data + (k - 64) * D0, &b.v0[k * D0], D0 * 4) == 0);
	for (size_t k = 80; k < 128; k++) /* absent rows are zero */
		for (unsigned j = 0; j < D0; j++)
			CHECK(((const float *)data)[(k - 64) * D0 + j] == 0.0f);
	CHECK_INT(store_reader_block(r, ds, 1, 0, &data, &present, NULL), 0);
	CHECK_INT(present, 0x5555555555555555ull);
	for (size_t k = 60; k < 64; k++) {
		const uint16_t *h = (const uint16_t *)data + k * D1;

		if (k % 2 == 0)
			CHECK(memcmp(h, &b.v1[k * D1], D1 * 2) == 0);
		else
			CHECK(h[0] == 0 && h[1] == 0 && h[2] == 0 && h[3] == 0);
	}
	CHECK_INT(store_reader_block(r, ds, 1, 1, &data, &present, NULL), 0);
	CHECK_INT(present, 0x5555);
	for (size_t k = 64; k <= 70; k += 2)
		CHECK(memcmp((const uint16_t *)data + (k - 64) * D1, &b.v1[k * D1], D1 * 2) == 0);
	CHECK_INT(store_reader_block(r, ds, 0, 2, &data, &present, NULL), ERR_NOT_FOUND);
	CHECK_INT(store_reader_block(r, ds, 2, 0, &data, &present, NULL), ERR_NOT_FOUND);
	store_reader_close(r);
	batch_free(&b);
	store_close(s);
	tmp_done();
}

/* A 512-d f32 space: 2 KiB per vector, 128 KiB per block. */
static uint32_t make_wide(struct store *s, const char *name)
{
	struct store_schema sc;
	struct store_dataset_info info;

	memset(&sc, 0, sizeof sc);
	sc.nspaces = 1;
	strcpy(sc.spaces[0].name, "wide");
	sc.spaces[0].dim = 512;
	sc.spaces[0].dtype = STORE_F32;
	sc.kinds = STORE_KIND_TEXT;
	if (store_dataset_create(s, name, &sc, NULL, NULL) != 0 ||
	    store_dataset_get(s, name, &info, NULL) != 0)
		return 0;
	return info.id;
}

/* Put records first..first+n-1 into a wide dataset; vector j of record k = k + j/1024. */
static int put_wide(struct store *s, uint32_t ds, size_t first, size_t n, float *vecs,
                    struct store_record *recs, char (*ids)[16])
{
	for (size_t i = 0; i < n; i++) {
		size_t k = first + i;

		for (unsigned j = 0; j < 512; j++)
			vecs[i * 512 + j] = (float)k + (float)j / 1024.0f;
		snprintf(ids[i], sizeof ids[i], "w%zu", k);
		memset(&recs[i], 0, sizeof recs[i]);
		recs[i].id = ids[i];
		recs[i].id_len = strlen(ids[i]);
		recs[i].kind = STORE_KIND_TEXT;
		recs[i].body = "{}";
		recs[i].body_len = 2;
		recs[i].vec[0] = &vecs[i * 512];
	}
	return store_put_records(s, ds, recs, n, NULL, NULL);
}

static int wide_ok(struct store *s, uint32_t ds, size_t k)
{
	struct store_record_out out;
	char id[16];
	int ok = 1;

	snprintf(id, sizeof id, "w%zu", k);
	if (store_get_record(s, ds, id, strlen(id), 1, &out, NULL) != 0)
		return 0;
	if (out.row != k || out.vec[0] == NULL)
		ok = 0;
	for (unsigned j = 0; ok && j < 512; j++)
		ok = ((const float *)out.vec[0])[j] == (float)k + (float)j / 1024.0f;
	store_record_out_free(&out);
	return ok;
}

static void test_map_growth(void)
{
	struct store_record *recs = malloc(1000 * sizeof *recs);
	char (*ids)[16] = malloc(1000 * sizeof *ids);
	float *vecs = malloc(1000 * 512 * sizeof *vecs);
	struct store_stats st;
	struct store *s;
	uint64_t grown;
	uint32_t ds;

	CHECK(recs && ids && vecs);
	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 1 << 20);
	CHECK(s != NULL);
	CHECK_INT(store_stats(s, &st), 0);
	CHECK_INT(st.map_size, 1 << 20);
	ds = make_wide(s, "w");
	CHECK(ds != 0);
	/* 11 calls x 1000 x 2 KiB = 22 MiB of vectors. */
	for (size_t c = 0; c < 11; c++)
		CHECK_INT(put_wide(s, ds, c * 1000, 1000, vecs, recs, ids), 0);
	for (size_t k = 0; k < 11000; k += 97)
		CHECK(wide_ok(s, ds, k));
	CHECK(wide_ok(s, ds, 10999));
	CHECK_INT(count_rows(s, ds), 11000);
	CHECK_INT(store_stats(s, &st), 0);
	CHECK(st.map_size >= (uint64_t)32 << 20);
	CHECK(st.used_bytes >= (uint64_t)22 << 20 && st.used_bytes <= st.map_size);
	store_close(s);
	/* Reopening with the small initial size keeps the grown map and the data. */
	grown = st.map_size;
	s = open_at(tmp_root, 1 << 20);
	CHECK(s != NULL);
	CHECK_INT(store_stats(s, &st), 0);
	CHECK_INT(st.map_size, grown);
	CHECK_INT(put_wide(s, ds, 11000, 1000, vecs, recs, ids), 0);
	CHECK(wide_ok(s, ds, 11999));
	CHECK(wide_ok(s, ds, 5));
	store_close(s);
	free(recs);
	free(ids);
	free(vecs);
	tmp_done();
}

/* Readers hammer the store while a writer forces several map resizes. */
struct hammer {
	struct store *s;
	uint32_t ds;
	atomic_int done;
};

struct hammer_thread {
	struct hammer *h;
	size_t reads, errors; /* this thread's own counts */
};

static void *hammer_reader(void *arg)
{
	struct hammer_thread *ht = arg;
	struct hammer *h = ht->h;

	/* Bounded: stops when the writer is done, or after a fixed number of rounds. The
	 * yield lets the writer run under valgrind's one-thread-at-a-time scheduler. */
	for (size_t i = 0; i < 500000 && !atomic_load(&h->done); i++) {
		struct store_reader *r = NULL;
		const void *data;
		uint64_t present;
		int rc;

		if (!wide_ok(h->s, h->ds, i % 500))
			ht->errors++;
		if (store_reader_open(h->s, &r, NULL) != 0) {
			ht->errors++;
			continue;
		}
		/* Blocks 0..6 are full (rows 0..447 of the first 500). */
		rc = store_reader_block(r, h->ds, 0, i % 7, &data, &present, NULL);
		if (rc != 0 || present != UINT64_MAX ||
		    ((const float *)data)[0] != (float)((i % 7) * 64))
			ht->errors++;
		store_reader_close(r);
		ht->reads++;
		sched_yield();
	}
	return NULL;
}

/* The writer of test_resize_waits. */
struct grower {
	struct store *s;
	uint32_t ds;
	atomic_int finished;
	int rc;
};

static void *grower_main(void *arg)
{
	struct grower *g = arg;
	struct store_record *recs = malloc(2000 * sizeof *recs);
	char (*ids)[16] = malloc(2000 * sizeof *ids);
	float *vecs = malloc(2000 * 512 * sizeof *vecs);

	g->rc = recs && ids && vecs ? put_wide(g->s, g->ds, 0, 2000, vecs, recs, ids) : -1;
	atomic_store(&g->finished, 1);
	free(recs);
	free(ids);
	free(vecs);
	return NULL;
}

/* A write that must grow the map waits while a reader is open, and then goes through;
 * the reader meanwhile still reads its snapshot. */
static void test_resize_waits(void)
{
	struct store_reader *r = NULL;
	struct store_stats st;
	struct grower g;
	struct visit v;
	pthread_t t;
	struct timespec pause = { 0, 200 * 1000 * 1000 };

	CHECK(tmp_dir() != NULL);
	memset(&g, 0, sizeof g);
	g.s = open_at(tmp_root, 1 << 20);
	CHECK(g.s != NULL);
	g.ds = make_wide(g.s, "w");
	CHECK(g.ds != 0);
	atomic_init(&g.finished, 0);
	CHECK_INT(store_reader_open(g.s, &r, NULL), 0);
	CHECK_INT(pthread_create(&t, NULL, grower_main, &g), 0);
	nanosleep(&pause, NULL);
	/* 4 MiB of vectors cannot fit the 1 MiB map, and the map cannot grow under r. */
	CHECK_INT(atomic_load(&g.finished), 0);
	memset(&v, 0, sizeof v);
	CHECK_INT(store_reader_rows(r, g.ds, 0, visit_fn, &v, NULL), 0);
	CHECK_INT(v.n, 0);
	store_reader_close(r);
	pthread_join(t, NULL);
	CHECK_INT(g.rc, 0);
	CHECK_INT(count_rows(g.s, g.ds), 2000);
	CHECK(wide_ok(g.s, g.ds, 1999));
	CHECK_INT(store_stats(g.s, &st), 0);
	CHECK(st.map_size >= (uint64_t)4 << 20);
	store_close(g.s);
	tmp_done();
}

static void test_concurrent_growth(void)
{
	struct store_record *recs = malloc(500 * sizeof *recs);
	char (*ids)[16] = malloc(500 * sizeof *ids);
	float *vecs = malloc(500 * 512 * sizeof *vecs);
	struct hammer h;
	struct hammer_thread ht[2];
	struct store_stats st;
	pthread_t t[2];
	int rc = 0;

	CHECK(recs && ids && vecs);
	CHECK(tmp_dir() != NULL);
	memset(&h, 0, sizeof h);
	memset(ht, 0, sizeof ht);
	h.s = open_at(tmp_root, 1 << 20);
	CHECK(h.s != NULL);
	h.ds = make_wide(h.s, "w");
	CHECK(h.ds != 0);
	CHECK_INT(put_wide(h.s, h.ds, 0, 500, vecs, recs, ids), 0);
	atomic_init(&h.done, 0);
	ht[0].h = ht[1].h = &h;
	CHECK_INT(pthread_create(&t[0], NULL, hammer_reader, &ht[0]), 0);
	CHECK_INT(pthread_create(&t[1], NULL, hammer_reader, &ht[1]), 0);
	for (size_t c = 1; c < 20 && rc == 0; c++)
		rc = put_wide(h.s, h.ds, c * 500, 500, vecs, recs, ids);
	atomic_store(&h.done, 1);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	CHECK_INT(rc, 0);
	printf("  concurrent: %zu + %zu reader rounds during growth\n", ht[0].reads, ht[1].reads);
	CHECK_INT(ht[0].errors + ht[1].errors, 0);
	CHECK(ht[0].reads > 0 && ht[1].reads > 0);
	CHECK_INT(store_stats(h.s, &st), 0);
	CHECK(st.map_size >= (uint64_t)16 << 20);
	CHECK(wide_ok(h.s, h.ds, 9999));
	store_close(h.s);
	free(recs);
	free(ids);
	free(vecs);
	tmp_done();
}

static void test_big_call(void)
{
	struct store_dataset_info info;
	struct store_reader *r = NULL;
	uint64_t *rows = malloc(20000 * sizeof *rows);
	struct batch b;
	struct store *s;
	struct visit v;
	uint32_t ds;

	CHECK(rows != NULL);
	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	ds = make_dataset(s, "d");
	CHECK(ds != 0);
	CHECK_INT(batch_make(&b, 20000, 0, 0), 0);
	CHECK_INT(store_put_records(s, ds, b.recs, b.n, NULL, NULL), 0);
	CHECK_INT(store_dataset_get(s, "d", &info, NULL), 0);
	CHECK_INT(info.records, 20000);
	CHECK_INT(info.next_row, 20000);
	memset(&v, 0, sizeof v);
	v.rows = rows;
	v.cap = 20000;
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(store_reader_rows(r, ds, 0, visit_fn, &v, NULL), 0);
	store_reader_close(r);
	CHECK_INT(v.n, 20000);
	for (size_t i = 0; i < 20000; i++)
		CHECK_INT(rows[i], i);
	/* Around the chunk boundaries (8192, 16384) and the ends. */
	CHECK(record_ok(s, ds, 0, 0, 0, 1, 1));
	CHECK(record_ok(s, ds, 8191, 0, 8191, 1, 1));
	CHECK(record_ok(s, ds, 8192, 0, 8192, 1, 1));
	CHECK(record_ok(s, ds, 16384, 0, 16384, 1, 1));
	CHECK(record_ok(s, ds, 19999, 0, 19999, 1, 1));
	/* Same call again: all upserts, nothing new. */
	CHECK_INT(store_put_records(s, ds, b.recs, b.n, NULL, NULL), 0);
	CHECK_INT(store_dataset_get(s, "d", &info, NULL), 0);
	CHECK_INT(info.records, 20000);
	CHECK_INT(info.next_row, 20000);
	CHECK(record_ok(s, ds, 12345, 0, 12345, 1, 1));
	batch_free(&b);
	free(rows);
	store_close(s);
	tmp_done();
}

/* Set meta/format_version with LMDB directly. */
static int poke_version(const char *dir, uint32_t version)
{
	unsigned char v[4] = { (unsigned char)version, (unsigned char)(version >> 8),
		               (unsigned char)(version >> 16), (unsigned char)(version >> 24) };
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_val key = { 14, "format_version" }, val = { 4, v };
	int rc;

	rc = mdb_env_create(&env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(env, 16);
	if (rc == 0)
		rc = mdb_env_open(env, dir, 0, 0640);
	if (rc == 0)
		rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "meta", 0, &dbi);
	if (rc == 0)
		rc = mdb_put(txn, dbi, &key, &val, 0);
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else if (txn != NULL)
		mdb_txn_abort(txn);
	mdb_env_close(env);
	return rc;
}

static void test_reopen_and_version(void)
{
	struct store_config cfg;
	struct store_dataset_info *list = NULL;
	struct batch b;
	struct store *s;
	struct err e;
	char sub[128];
	size_t n = 0;
	uint32_t ds;

	CHECK(tmp_dir() != NULL);
	/* mkdir -p of a nested data directory */
	snprintf(sub, sizeof sub, "%s/a/b/data", tmp_root);
	s = open_at(sub, 0);
	CHECK(s != NULL);
	ds = make_dataset(s, "kept");
	CHECK(ds != 0);
	CHECK_INT(batch_make(&b, 100, 0, 0), 0);
	b.recs[9].vec[0] = NULL;
	CHECK_INT(store_put_records(s, ds, b.recs, b.n, NULL, NULL), 0);
	store_close(s);

	s = open_at(sub, 0);
	CHECK(s != NULL);
	CHECK_INT(store_dataset_list(s, &list, &n, NULL), 0);
	CHECK_INT(n, 1);
	CHECK_STR(list[0].name, "kept");
	CHECK_INT(list[0].records, 100);
	free(list);
	for (size_t k = 0; k < 100; k++)
		CHECK(record_ok(s, ds, k, 0, k, k != 9, 1));
	CHECK_INT(make_dataset(s, "second"), ds + 1);
	store_close(s);

	CHECK_INT(poke_version(sub, 99), 0);
	memset(&cfg, 0, sizeof cfg);
	cfg.dir = sub;
	err_clear(&e);
	s = NULL;
	CHECK_INT(store_open(&s, &cfg, &e), ERR_VERSION);
	CHECK(s == NULL);
	CHECK_INT(e.code, ERR_VERSION);
	CHECK(strstr(e.detail, "newer winnow") != NULL);
	CHECK(strstr(e.detail, "format 99") != NULL);
	CHECK(strstr(e.detail, sub) != NULL);
	/* Back to the current version: opens again, data intact. */
	CHECK_INT(poke_version(sub, STORE_FORMAT_VERSION), 0);
	s = open_at(sub, 0);
	CHECK(s != NULL);
	CHECK(record_ok(s, ds, 50, 0, 50, 1, 1));
	store_close(s);
	batch_free(&b);
	tmp_done();
}

/* Count keys starting with the 4-byte prefix of ds in the named DBs, with LMDB directly. */
static long raw_count(const char *dir, uint32_t ds)
{
	static const char *const names[] = { "ids", "rows", "recs", "vecs", "dsstat", "dsname",
		                             "trash", "arrays", "docs" };
	unsigned char pk[4] = { (unsigned char)(ds >> 24), (unsigned char)(ds >> 16),
		                (unsigned char)(ds >> 8), (unsigned char)ds };
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	long count = 0;

	if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 16) != 0 ||
	    mdb_env_open(env, dir, MDB_RDONLY, 0640) != 0 ||
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0) {
		mdb_env_close(env);
		return -1;
	}
	for (size_t i = 0; i < sizeof names / sizeof names[0] && count >= 0; i++) {
		MDB_cursor *cur = NULL;
		MDB_dbi dbi;
		MDB_val k = { 4, pk }, v;
		int rc;

		if (mdb_dbi_open(txn, names[i], 0, &dbi) != 0 || mdb_cursor_open(txn, dbi, &cur) != 0) {
			count = -1;
			break;
		}
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		     rc == 0 && k.mv_size >= 4 && memcmp(k.mv_data, pk, 4) == 0 && count < 1000000;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
			count++;
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return count;
}

static void test_dataset_delete(void)
{
	struct store_dataset_info info;
	struct store_record_out out;
	struct batch b;
	struct store *s;
	struct err e;
	uint32_t ds, ds2, keep;

	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	keep = make_dataset(s, "keep");
	ds = make_dataset(s, "d");
	CHECK(ds != 0 && keep != 0);
	CHECK_INT(batch_make(&b, 300, 0, 0), 0);
	CHECK_INT(store_put_records(s, ds, b.recs, b.n, NULL, NULL), 0);
	CHECK_INT(store_put_records(s, keep, b.recs, 10, NULL, NULL), 0);
	CHECK_INT(store_dataset_delete(s, "d", NULL), 0);
	err_clear(&e);
	CHECK_INT(store_dataset_get(s, "d", &info, &e), ERR_NOT_FOUND);
	CHECK_INT(store_dataset_delete(s, "d", NULL), ERR_NOT_FOUND);
	CHECK_INT(store_put_records(s, ds, b.recs, 1, NULL, NULL), ERR_NOT_FOUND);
	CHECK_INT(store_get_record(s, ds, "rec-0000001", 11, 1, &out, NULL), ERR_NOT_FOUND);
	CHECK_INT(count_rows(s, ds), 0);
	ds2 = make_dataset(s, "d");
	CHECK(ds2 != 0 && ds2 != ds);
	CHECK_INT(store_dataset_get(s, "d", &info, NULL), 0);
	CHECK_INT(info.records, 0);
	CHECK_INT(store_get_record(s, ds2, "rec-0000001", 11, 1, &out, NULL), ERR_NOT_FOUND);
	CHECK_INT(count_rows(s, ds2), 0);
	CHECK_INT(count_rows(s, keep), 10);
	store_close(s);
	CHECK_INT(raw_count(tmp_root, ds), 0);
	CHECK_INT(raw_count(tmp_root, keep), 10 + 10 + 10 + 2 + 1 + 1 + 1); /* + live block */
	batch_free(&b);
	tmp_done();
}

/* A crash after the delete's first commit leaves the dataset in trash: open finishes. */
static void test_reclaim_on_open(void)
{
	struct batch b;
	struct store *s;
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi datasets, dsname, dsstat, trash;
	unsigned char k[4];
	MDB_val key = { 4, k }, name = { 1, "d" }, empty = { 0, "" };
	uint32_t ds;
	int rc;

	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	ds = make_dataset(s, "d");
	CHECK(ds != 0);
	CHECK_INT(batch_make(&b, 150, 0, 0), 0);
	CHECK_INT(store_put_records(s, ds, b.recs, b.n, NULL, NULL), 0);
	store_close(s);
	CHECK_INT(raw_count(tmp_root, ds), 150 * 3 + 3 * 2 + 1 + 1 + 1); /* + live block */

	k[0] = (unsigned char)(ds >> 24);
	k[1] = (unsigned char)(ds >> 16);
	k[2] = (unsigned char)(ds >> 8);
	k[3] = (unsigned char)ds;
	rc = mdb_env_create(&env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(env, 16);
	if (rc == 0)
		rc = mdb_env_open(env, tmp_root, 0, 0640);
	if (rc == 0)
		rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "datasets", 0, &datasets);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "dsname", 0, &dsname);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "dsstat", 0, &dsstat);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "trash", 0, &trash);
	if (rc == 0)
		rc = mdb_del(txn, datasets, &name, NULL);
	if (rc == 0)
		rc = mdb_del(txn, dsname, &key, NULL);
	if (rc == 0)
		rc = mdb_del(txn, dsstat, &key, NULL);
	if (rc == 0)
		rc = mdb_put(txn, trash, &key, &empty, 0);
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else if (txn != NULL)
		mdb_txn_abort(txn);
	mdb_env_close(env);
	CHECK_INT(rc, 0);
	CHECK_INT(raw_count(tmp_root, ds), 150 * 3 + 3 * 2 + 1 + 1);

	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	store_close(s);
	CHECK_INT(raw_count(tmp_root, ds), 0);
	batch_free(&b);
	tmp_done();
}

/* ---- row arrays, documents, store_write ---- */

struct arr_put {
	uint32_t ds, arr;
	size_t elem;
	uint64_t first;
	size_t n;
	const void *data;
	unsigned calls;
};

static int arr_put_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct arr_put *c = ctx;

	c->calls++;
	return store_txn_array_put(t, c->ds, c->arr, c->elem, c->first, c->n, c->data, e);
}

static int drop_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct arr_put *c = ctx;

	return store_txn_array_drop(t, c->ds, c->arr, e);
}

static int arr_put(struct store *s, uint32_t ds, uint32_t arr, size_t elem, uint64_t first,
                   size_t n, const void *data)
{
	struct arr_put c = { ds, arr, elem, first, n, data, 0 };

	return store_write(s, arr_put_fn, &c, NULL);
}

static void test_arrays(void)
{
	struct store *s;
	struct store_reader *r = NULL;
	float f[40], got[60];
	uint8_t u[5] = { 1, 2, 3, 4, 5 }, ub[8];
	uint64_t q[3] = { 7, 8, 9 }, qb[4];
	uint32_t ds;

	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	if (s == NULL)
		return;
	ds = make_dataset(s, "arr");
	for (int i = 0; i < 40; i++)
		f[i] = (float)i + 0.5f;
	/* rows 4076..4115 cross the block boundary at 4096 */
	CHECK_INT(arr_put(s, ds, 5, 4, STORE_ARRAY_ROWS - 20, 40, f), 0);
	CHECK_INT(arr_put(s, ds, 6, 1, 2, 5, u), 0);
	CHECK_INT(arr_put(s, ds, 7, 8, 100000, 3, q), 0);
	CHECK_INT(arr_put(s, ds, STORE_ARRAY_LIVE, 1, 0, 5, u), ERR_INVALID);
	CHECK_INT(arr_put(s, ds, 5, 17, 0, 1, f), ERR_INVALID);
	CHECK_INT(arr_put(s, ds + 9, 5, 4, 0, 1, f), ERR_NOT_FOUND);
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(store_reader_array(r, ds, 5, 4, STORE_ARRAY_ROWS - 30, 60, got, NULL), 0);
	for (int i = 0; i < 60; i++)
		CHECK(got[i] == (i < 10 || i >= 50 ? 0.0f : (float)(i - 10) + 0.5f));
	CHECK_INT(store_reader_array(r, ds, 6, 1, 0, 8, ub, NULL), 0);
	CHECK(ub[0] == 0 && ub[1] == 0 && ub[2] == 1 && ub[6] == 5 && ub[7] == 0);
	CHECK_INT(store_reader_array(r, ds, 7, 8, 99999, 4, qb, NULL), 0);
	CHECK(qb[0] == 0 && qb[1] == 7 && qb[3] == 9);
	/* a snapshot: a later write is not seen */
	f[0] = -1;
	CHECK_INT(arr_put(s, ds, 5, 4, STORE_ARRAY_ROWS - 20, 1, f), 0);
	CHECK_INT(store_reader_array(r, ds, 5, 4, STORE_ARRAY_ROWS - 20, 1, got, NULL), 0);
	CHECK(got[0] == 0.5f);
	store_reader_close(r);
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(store_reader_array(r, ds, 5, 4, STORE_ARRAY_ROWS - 20, 1, got, NULL), 0);
	CHECK(got[0] == -1);
	store_reader_close(r);
	/* drop: reads as zeros again, other arrays untouched */
	{
		struct arr_put c = { ds, 5, 4, 0, 0, NULL, 0 };

		CHECK_INT(store_write(s, drop_fn, &c, NULL), 0);
	}
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(store_reader_array(r, ds, 5, 4, STORE_ARRAY_ROWS - 20, 40, got, NULL), 0);
	for (int i = 0; i < 40; i++)
		CHECK(got[i] == 0);
	CHECK_INT(store_reader_array(r, ds, 6, 1, 0, 8, ub, NULL), 0);
	CHECK(ub[2] == 1);
	store_reader_close(r);
	store_close(s);
	tmp_done();
}

static void test_live_array(void)
{
	struct store *s;
	struct store_reader *r = NULL;
	struct batch b;
	uint64_t rows[6];
	uint8_t live[110];
	uint32_t ds;

	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	if (s == NULL)
		return;
	ds = make_dataset(s, "live");
	CHECK_INT(batch_make(&b, 100, 0, 0), 0);
	CHECK_INT(store_put_records(s, ds, b.recs, 100, NULL, NULL), 0);
	CHECK_INT(store_delete_record(s, ds, "rec-0000042", 11, NULL, NULL), 0);
	/* rows_out: an upsert keeps its row, a new id gets the next, a duplicate the same */
	{
		struct store_record two[6] = { b.recs[5], b.recs[0], b.recs[0], b.recs[0], b.recs[0],
			                       b.recs[0] };
		struct batch nb;

		CHECK_INT(batch_make(&nb, 2, 500, 1), 0);
		two[1] = nb.recs[0];
		two[2] = nb.recs[1];
		two[3] = b.recs[42]; /* re-created: a new row */
		two[4] = nb.recs[0];
		two[5] = b.recs[7];
		CHECK_INT(store_put_records(s, ds, two, 6, rows, NULL), 0);
		CHECK_INT(rows[0], 5);
		CHECK_INT(rows[1], 100);
		CHECK_INT(rows[2], 101);
		CHECK_INT(rows[3], 102);
		CHECK_INT(rows[4], 100);
		CHECK_INT(rows[5], 7);
		batch_free(&nb);
	}
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(store_reader_array(r, ds, STORE_ARRAY_LIVE, 1, 0, 110, live, NULL), 0);
	for (int i = 0; i < 110; i++)
		CHECK_INT(live[i], i != 42 && i < 103);
	{
		const char *id;
		size_t len;
		unsigned kind;
		uint64_t row;

		CHECK_INT(store_reader_find(r, ds, "rec-0000500", 11, &row, NULL), 0);
		CHECK_INT(row, 100);
		CHECK_INT(store_reader_find(r, ds, "nope", 4, &row, NULL), ERR_NOT_FOUND);
		CHECK_INT(store_reader_row(r, ds, 102, &kind, &id, &len, NULL, NULL, NULL), 0);
		CHECK(len == 11 && memcmp(id, "rec-0000042", 11) == 0);
		CHECK_INT(kind, STORE_KIND_IMAGE_TEXT);
		CHECK_INT(store_reader_row(r, ds, 42, NULL, NULL, NULL, NULL, NULL, NULL),
		          ERR_NOT_FOUND);
	}
	store_reader_close(r);
	batch_free(&b);
	store_close(s);
	tmp_done();
}

struct doc_op {
	uint32_t ds;
	char ns;
	const char *key, *val;
	int del;
};

static int doc_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct doc_op *c = ctx;

	if (c->del)
		return store_txn_doc_del(t, c->ds, c->ns, c->key, strlen(c->key), e);
	return store_txn_doc_put(t, c->ds, c->ns, c->key, strlen(c->key), c->val, strlen(c->val),
	                         e);
}

static int doc_do(struct store *s, uint32_t ds, char ns, const char *key, const char *val,
                  int del)
{
	struct doc_op c = { ds, ns, key, val, del };

	return store_write(s, doc_fn, &c, NULL);
}

static int collect_docs(void *ctx, const char *key, size_t key_len, const void *val,
                        size_t len)
{
	char *out = ctx;

	strncat(out, key, key_len);
	strcat(out, "=");
	strncat(out, val, len);
	strcat(out, ";");
	return 0;
}

static int counter_fn(void *ctx, struct store_txn *t, struct err *e)
{
	uint64_t *v = ctx;

	return store_txn_counter_next(t, "job", v, e);
}

static void test_docs_and_counters(void)
{
	struct store *s;
	struct store_reader *r = NULL;
	char out[256] = "";
	const void *v;
	size_t len;
	uint64_t c1 = 0, c2 = 0, c3 = 0;
	uint32_t ds;

	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	if (s == NULL)
		return;
	ds = make_dataset(s, "docs");
	CHECK_INT(doc_do(s, ds, 'f', "zeta", "{\"z\":1}", 0), 0);
	CHECK_INT(doc_do(s, ds, 'f', "alpha", "{\"a\":1}", 0), 0);
	CHECK_INT(doc_do(s, ds, 's', "other", "x", 0), 0);
	CHECK_INT(doc_do(s, 0, 'j', "g", "global", 0), 0);
	CHECK_INT(doc_do(s, ds + 5, 'f', "k", "v", 0), ERR_NOT_FOUND);
	CHECK_INT(doc_do(s, ds, 'f', "", "v", 0), ERR_INVALID);
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(doc_do(s, ds, 'f', "alpha", "{\"a\":2}", 0), 0); /* after the snapshot */
	CHECK_INT(store_reader_docs(r, ds, 'f', collect_docs, out, NULL), 0);
	CHECK_STR(out, "alpha={\"a\":1};zeta={\"z\":1};");
	CHECK_INT(store_reader_doc_get(r, 0, 'j', "g", 1, &v, &len, NULL), 0);
	CHECK(len == 6 && memcmp(v, "global", 6) == 0);
	CHECK_INT(store_reader_doc_get(r, ds, 'f', "nope", 4, &v, &len, NULL), ERR_NOT_FOUND);
	store_reader_close(r);
	CHECK_INT(doc_do(s, ds, 'f', "zeta", NULL, 1), 0);
	CHECK_INT(doc_do(s, ds, 'f', "zeta", NULL, 1), ERR_NOT_FOUND);
	out[0] = '\0';
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(store_reader_docs(r, ds, 'f', collect_docs, out, NULL), 0);
	CHECK_STR(out, "alpha={\"a\":2};");
	store_reader_close(r);
	CHECK_INT(store_write(s, counter_fn, &c1, NULL), 0);
	CHECK_INT(store_write(s, counter_fn, &c2, NULL), 0);
	store_close(s);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK_INT(store_write(s, counter_fn, &c3, NULL), 0);
	CHECK(c1 == 1 && c2 == 2 && c3 == 3);
	/* a dataset delete takes its arrays and documents along */
	CHECK_INT(arr_put(s, ds, 9, 4, 0, 1, "abcd"), 0);
	store_close(s);
	CHECK(raw_count(tmp_root, ds) > 0);
	s = open_at(tmp_root, 0);
	CHECK_INT(store_dataset_delete(s, "docs", NULL), 0);
	store_close(s);
	CHECK_INT(raw_count(tmp_root, ds), 0);
	s = open_at(tmp_root, 0);
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(store_reader_doc_get(r, 0, 'j', "g", 1, &v, &len, NULL), 0); /* global stays */
	store_reader_close(r);
	store_close(s);
	tmp_done();
}

/* store_write grows the map and runs the callback again from the start. */
static void test_write_growth(void)
{
	size_t n = 3 * 1024 * 1024; /* 12 MB of f32 into a 1 MiB map */
	float *f = malloc(n * sizeof *f), *got = malloc(n * sizeof *got);
	struct store *s;
	struct store_reader *r = NULL;
	struct arr_put c;
	uint32_t ds;
	size_t bad = 0;

	CHECK(f != NULL && got != NULL && tmp_dir() != NULL);
	s = open_at(tmp_root, (size_t)1 << 20);
	CHECK(s != NULL);
	if (s == NULL || f == NULL || got == NULL) {
		free(f);
		free(got);
		return;
	}
	ds = make_dataset(s, "grow");
	for (size_t i = 0; i < n; i++)
		f[i] = (float)i;
	c = (struct arr_put){ ds, 3, 4, 10, n, f, 0 };
	CHECK_INT(store_write(s, arr_put_fn, &c, NULL), 0);
	CHECK(c.calls > 1);
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(store_reader_array(r, ds, 3, 4, 10, n, got, NULL), 0);
	store_reader_close(r);
	for (size_t i = 0; i < n; i++)
		bad += got[i] != (float)i;
	CHECK_INT((long long)bad, 0);
	store_close(s);
	free(f);
	free(got);
	tmp_done();
}

/* A format 1 directory (no live arrays) is migrated at open. */
static int wipe_arrays_v1(const char *dir)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	int rc;

	rc = mdb_env_create(&env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(env, 16);
	if (rc == 0)
		rc = mdb_env_open(env, dir, 0, 0640);
	if (rc == 0)
		rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "arrays", 0, &dbi);
	if (rc == 0)
		rc = mdb_drop(txn, dbi, 0);
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else if (txn != NULL)
		mdb_txn_abort(txn);
	mdb_env_close(env);
	return rc == 0 ? poke_version(dir, 1) : rc;
}

static void test_migrate_v1(void)
{
	struct store *s;
	struct store_reader *r = NULL;
	struct batch b;
	uint8_t live[5000];
	uint32_t ds;
	size_t bad = 0;

	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	if (s == NULL)
		return;
	ds = make_dataset(s, "old");
	CHECK_INT(batch_make(&b, 4500, 0, 0), 0);
	CHECK_INT(store_put_records(s, ds, b.recs, b.n, NULL, NULL), 0);
	CHECK_INT(store_delete_record(s, ds, "rec-0004100", 11, NULL, NULL), 0);
	store_close(s);
	CHECK_INT(wipe_arrays_v1(tmp_root), 0);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(store_reader_array(r, ds, STORE_ARRAY_LIVE, 1, 0, 5000, live, NULL), 0);
	store_reader_close(r);
	for (size_t i = 0; i < 5000; i++)
		bad += live[i] != (i < 4500 && i != 4100);
	CHECK_INT((long long)bad, 0);
	store_close(s);
	/* the version was written: opening again does not migrate (nothing to see but no
	 * error), and a newer build's check still holds */
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	store_close(s);
	batch_free(&b);
	tmp_done();
}

/* ---- edges of arrays, store_write and the live array ---- */

/* Several operations in one transaction: a partial put, the transaction's own read of it,
 * a second partial put into the same block. */
struct rmw {
	uint32_t ds;
	float got[3];
	int rc_elem, rc_wrap, rc_live_get, rc_live_drop, rc_counter;
};

static int rmw_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct rmw *c = ctx;
	const float a[2] = { 1.5f, 2.5f }, b = 9.0f;
	uint8_t live[4];
	uint64_t v;
	int rc;

	memset(c->got, 0, sizeof c->got);
	if ((rc = store_txn_array_put(t, c->ds, 11, 4, 4095, 2, a, e)) != 0 ||
	    (rc = store_txn_array_get(t, c->ds, 11, 4, 4094, 3, c->got, e)) != 0 ||
	    (rc = store_txn_array_put(t, c->ds, 11, 4, 4097, 1, &b, e)) != 0)
		return rc;
	/* refusals; none may spend the detail of a committed call */
	c->rc_elem = store_txn_array_put(t, c->ds, 11, 8, 0, 1, &v, NULL);
	c->rc_wrap = store_txn_array_put(t, c->ds, 11, 4, UINT64_MAX - 1, 3, a, NULL);
	c->rc_live_get = store_txn_array_get(t, c->ds, STORE_ARRAY_LIVE, 4, 0, 1, live, NULL);
	c->rc_live_drop = store_txn_array_drop(t, c->ds, STORE_ARRAY_LIVE, NULL);
	c->rc_counter = store_txn_counter_next(t, "Bad-Name", &v, NULL);
	return 0;
}

static void test_array_edges(void)
{
	struct store *s;
	struct store_reader *r = NULL;
	struct rmw c;
	struct err e;
	float got[6];
	uint32_t ds;

	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	ds = make_dataset(s, "edges");
	CHECK(ds != 0);
	memset(&c, 0, sizeof c);
	c.ds = ds;
	err_clear(&e);
	CHECK_INT(store_write(s, rmw_fn, &c, &e), 0);
	CHECK_INT(e.code, 0);
	CHECK(c.got[0] == 0.0f && c.got[1] == 1.5f && c.got[2] == 2.5f);
	CHECK_INT(c.rc_elem, ERR_INVALID);
	CHECK_INT(c.rc_wrap, ERR_INVALID);
	CHECK_INT(c.rc_live_get, ERR_INVALID);
	CHECK_INT(c.rc_live_drop, ERR_INVALID);
	CHECK_INT(c.rc_counter, ERR_INVALID);
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(store_reader_array(r, ds, 11, 4, 4094, 6, got, NULL), 0);
	CHECK(got[0] == 0.0f && got[1] == 1.5f && got[2] == 2.5f && got[3] == 9.0f &&
	      got[4] == 0.0f && got[5] == 0.0f);
	/* the element size is the caller's promise: another one is refused, with the slug */
	err_clear(&e);
	CHECK_INT(store_reader_array(r, ds, 11, 2, 0, 1, got, &e), ERR_INVALID);
	CHECK_STR(e.slug, "array_elem_size");
	store_reader_close(r);
	store_close(s);
	tmp_done();
}

/* fn turns every failure into its own code: MDB_MAP_FULL must still be retried, and the
 * detail fn wrote on a failed attempt must not reach the caller of a successful call. */
struct masking {
	struct arr_put p;
	unsigned failures;
};

static int masking_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct masking *c = ctx;
	int rc;

	c->p.calls++;
	rc = store_txn_array_put(t, c->p.ds, c->p.arr, c->p.elem, c->p.first, c->p.n, c->p.data,
	                         e);
	if (rc != 0) {
		c->failures++;
		return err_set(e, ERR_INTERNAL, "masked", "the put failed");
	}
	return 0;
}

static void test_write_retry_masked(void)
{
	size_t n = 1024 * 1024; /* 4 MB of u32 into a 1 MiB map */
	uint32_t *v = malloc(n * sizeof *v), *got = malloc(n * sizeof *got);
	struct store *s = NULL;
	struct store_reader *r = NULL;
	struct masking c;
	struct err e;
	size_t bad = 0;
	uint32_t ds;

	CHECK(v != NULL && got != NULL && tmp_dir() != NULL);
	s = open_at(tmp_root, (size_t)1 << 20);
	CHECK(s != NULL);
	ds = make_dataset(s, "masked");
	CHECK(ds != 0);
	for (size_t i = 0; i < n; i++)
		v[i] = (uint32_t)(i * 2654435761u);
	memset(&c, 0, sizeof c);
	c.p = (struct arr_put){ ds, 4, 4, 3, n, v, 0 };
	err_clear(&e);
	CHECK_INT(store_write(s, masking_fn, &c, &e), 0);
	CHECK(c.failures >= 1 && c.p.calls == c.failures + 1);
	CHECK_INT(e.code, 0);
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(store_reader_array(r, ds, 4, 4, 3, n, got, NULL), 0);
	CHECK_INT(store_reader_array(r, ds, 4, 4, 0, 3, got, NULL), 0); /* overwrites 0..2 */
	store_reader_close(r);
	for (size_t i = 0; i < 3; i++)
		bad += got[i] != 0;
	for (size_t i = 3; i < n; i++)
		bad += got[i] != v[i];
	CHECK_INT((long long)bad, 0);
	/* a failure that is not a full map comes back with fn's own code and the detail fn's
	 * e holds (the first set there: the put's) */
	c.p.ds = ds + 50;
	c.failures = 0;
	err_clear(&e);
	CHECK_INT(store_write(s, masking_fn, &c, &e), ERR_INTERNAL);
	CHECK_INT(c.failures, 1);
	CHECK_INT(e.code, ERR_NOT_FOUND);
	CHECK_STR(e.slug, "dataset_not_found");
	store_close(s);
	free(v);
	free(got);
	tmp_done();
}

/* Upserts in descending, block-scattered row order and deletes in several blocks. */
static void test_live_scattered(void)
{
	enum { N = 9000 };
	struct store *s;
	struct store_reader *r = NULL;
	struct batch b;
	struct store_record up[5];
	uint64_t rows[5];
	const size_t pick[5] = { 8999, 4096, 4095, 17, 8192 };
	uint8_t *live = malloc(N + 10);
	size_t bad = 0;
	uint32_t ds;

	CHECK(live != NULL && tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	ds = make_dataset(s, "scatter");
	CHECK(ds != 0);
	CHECK_INT(batch_make(&b, N, 0, 0), 0);
	CHECK_INT(store_put_records(s, ds, b.recs, N, NULL, NULL), 0);
	CHECK_INT(store_delete_record(s, ds, b.recs[4095].id, 11, NULL, NULL), 0);
	CHECK_INT(store_delete_record(s, ds, b.recs[8192].id, 11, NULL, NULL), 0);
	CHECK_INT(store_delete_record(s, ds, b.recs[100].id, 11, NULL, NULL), 0);
	for (size_t i = 0; i < 5; i++)
		up[i] = b.recs[pick[i]];
	/* 4095 and 8192 come back with new rows N and N + 1; the others keep theirs */
	CHECK_INT(store_put_records(s, ds, up, 5, rows, NULL), 0);
	CHECK_INT(rows[0], 8999);
	CHECK_INT(rows[1], 4096);
	CHECK_INT(rows[2], N);
	CHECK_INT(rows[3], 17);
	CHECK_INT(rows[4], N + 1);
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(store_reader_array(r, ds, STORE_ARRAY_LIVE, 1, 0, N + 10, live, NULL), 0);
	store_reader_close(r);
	for (size_t i = 0; i < N + 10; i++)
		bad += live[i] != (i != 4095 && i != 8192 && i != 100 && i < N + 2);
	CHECK_INT((long long)bad, 0);
	batch_free(&b);
	store_close(s);
	free(live);
	tmp_done();
}

/* Pointers from store_reader_rows stay valid after later calls on the reader. */
struct gather {
	size_t n;
	const char *id[8], *body[8];
	size_t id_len[8], body_len[8];
};

static int gather_fn(void *ctx, uint64_t row, unsigned kind, const char *id, size_t id_len,
                     const char *body, size_t body_len)
{
	struct gather *g = ctx;

	(void)row;
	if (kind != STORE_KIND_IMAGE_TEXT)
		return ERR_INTERNAL;
	g->id[g->n] = id;
	g->id_len[g->n] = id_len;
	g->body[g->n] = body;
	g->body_len[g->n] = body_len;
	return ++g->n == 8 ? 1 : 0;
}

static void test_reader_pointers(void)
{
	struct store *s;
	struct store_reader *r = NULL;
	struct store_dataset_info info;
	struct gather g;
	struct batch b;
	const char *id, *body;
	size_t id_len, body_len;
	const void *data;
	uint64_t present, row;
	uint32_t ds;

	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	ds = make_dataset(s, "ptr");
	CHECK(ds != 0);
	CHECK_INT(batch_make(&b, 200, 0, 0), 0);
	CHECK_INT(store_put_records(s, ds, b.recs, b.n, NULL, NULL), 0);
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	memset(&g, 0, sizeof g);
	CHECK_INT(store_reader_rows(r, ds, 0, gather_fn, &g, NULL), 0);
	CHECK_INT(g.n, 8);
	/* more traffic on the reader: another scan, row reads, blocks, a dataset read */
	{
		struct gather g2;

		memset(&g2, 0, sizeof g2);
		CHECK_INT(store_reader_rows(r, ds, 150, gather_fn, &g2, NULL), 0);
		CHECK(g2.id_len[0] == 11 && memcmp(g2.id[0], "rec-0000150", 11) == 0);
	}
	CHECK_INT(store_reader_row(r, ds, 199, NULL, &id, &id_len, &body, &body_len, NULL), 0);
	CHECK(id_len == 11 && memcmp(id, "rec-0000199", 11) == 0);
	CHECK_INT(store_reader_block(r, ds, 0, 2, &data, &present, NULL), 0);
	CHECK_INT(store_reader_block(r, ds, 1, 1, &data, &present, NULL), 0);
	CHECK_INT(store_reader_find(r, ds, "rec-0000123", 11, &row, NULL), 0);
	CHECK_INT(row, 123);
	CHECK_INT(store_reader_dataset(r, ds, &info, NULL), 0);
	CHECK_INT(info.records, 200);
	CHECK_STR(info.name, "ptr");
	CHECK_INT(store_reader_dataset(r, ds + 7, &info, NULL), ERR_NOT_FOUND);
	for (size_t i = 0; i < 8; i++) {
		CHECK(g.id_len[i] == b.recs[i].id_len &&
		      memcmp(g.id[i], b.recs[i].id, g.id_len[i]) == 0);
		CHECK(g.body_len[i] == b.recs[i].body_len &&
		      memcmp(g.body[i], b.recs[i].body, g.body_len[i]) == 0);
	}
	CHECK(body_len == b.recs[199].body_len && memcmp(body, b.recs[199].body, body_len) == 0);
	store_reader_close(r);
	batch_free(&b);
	store_close(s);
	tmp_done();
}

/* A re-created dataset (new id) sees none of the old one's arrays and documents; an empty
 * document value is a document. */
static void test_recreate_sees_nothing(void)
{
	struct store *s;
	struct store_reader *r = NULL;
	const float one = 1.0f;
	float got[2];
	char out[64] = "";
	const void *v;
	size_t len = 99;
	uint32_t ds, ds2;

	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	ds = make_dataset(s, "again");
	CHECK(ds != 0);
	CHECK_INT(arr_put(s, ds, 9, 4, 1, 1, &one), 0);
	CHECK_INT(doc_do(s, ds, 'f', "k", "", 0), 0);
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(store_reader_doc_get(r, ds, 'f', "k", 1, &v, &len, NULL), 0);
	CHECK_INT(len, 0);
	store_reader_close(r);
	CHECK_INT(store_dataset_delete(s, "again", NULL), 0);
	ds2 = make_dataset(s, "again");
	CHECK(ds2 != 0 && ds2 != ds);
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(store_reader_array(r, ds2, 9, 4, 0, 2, got, NULL), 0);
	CHECK(got[0] == 0.0f && got[1] == 0.0f);
	CHECK_INT(store_reader_array(r, ds, 9, 4, 0, 2, got, NULL), 0);
	CHECK(got[1] == 0.0f);
	CHECK_INT(store_reader_docs(r, ds2, 'f', collect_docs, out, NULL), 0);
	CHECK_STR(out, "");
	CHECK_INT(store_reader_doc_get(r, ds, 'f', "k", 1, &v, &len, NULL), ERR_NOT_FOUND);
	store_reader_close(r);
	store_close(s);
	tmp_done();
}

/* Read meta/format_version, or -1. */
static long raw_version(const char *dir)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_val key = { 14, "format_version" }, val;
	long version = -1;

	if (mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 16) == 0 &&
	    mdb_env_open(env, dir, MDB_RDONLY, 0640) == 0 &&
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0 &&
	    mdb_dbi_open(txn, "meta", 0, &dbi) == 0 && mdb_get(txn, dbi, &key, &val) == 0 &&
	    val.mv_size == 4) {
		const unsigned char *p = val.mv_data;

		version = (long)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		                 (uint32_t)p[3] << 24);
	}
	if (txn != NULL)
		mdb_txn_abort(txn);
	mdb_env_close(env);
	return version;
}

/* Set byte row % 4096 of the live block of ds to 1 with LMDB directly: a stale flag such
 * as a format 1 build's delete after an interrupted migration would leave. */
static int raw_live_set(const char *dir, uint32_t ds, uint64_t row)
{
	unsigned char k[16] = { 0 }, blk[STORE_ARRAY_ROWS];
	uint64_t block = row / STORE_ARRAY_ROWS;
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_val key = { sizeof k, k }, val;
	int rc;

	for (int i = 0; i < 4; i++)
		k[i] = (unsigned char)(ds >> (24 - 8 * i));
	for (int i = 0; i < 8; i++)
		k[8 + i] = (unsigned char)(block >> (56 - 8 * i));
	rc = mdb_env_create(&env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(env, 16);
	if (rc == 0)
		rc = mdb_env_open(env, dir, 0, 0640);
	if (rc == 0)
		rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "arrays", 0, &dbi);
	if (rc == 0)
		rc = mdb_get(txn, dbi, &key, &val);
	if (rc == 0 && val.mv_size != sizeof blk)
		rc = -1;
	if (rc == 0) {
		memcpy(blk, val.mv_data, sizeof blk);
		blk[row % STORE_ARRAY_ROWS] = 1;
		val.mv_size = sizeof blk;
		val.mv_data = blk;
		rc = mdb_put(txn, dbi, &key, &val, 0);
	}
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else if (txn != NULL)
		mdb_txn_abort(txn);
	mdb_env_close(env);
	return rc;
}

/* Migration writes version 2, and a rerun (version still 1) rebuilds exactly. */
static void test_migrate_rerun(void)
{
	struct store *s;
	struct store_reader *r = NULL;
	struct batch b;
	uint8_t live[300];
	uint32_t ds;
	size_t bad = 0;

	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	ds = make_dataset(s, "rerun");
	CHECK(ds != 0);
	CHECK_INT(batch_make(&b, 250, 0, 0), 0);
	CHECK_INT(store_put_records(s, ds, b.recs, b.n, NULL, NULL), 0);
	CHECK_INT(store_delete_record(s, ds, "rec-0000007", 11, NULL, NULL), 0);
	store_close(s);
	CHECK_INT(raw_version(tmp_root), 2);
	CHECK_INT(raw_live_set(tmp_root, ds, 7), 0);
	CHECK_INT(raw_live_set(tmp_root, ds, 260), 0);
	CHECK_INT(poke_version(tmp_root, 1), 0);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	CHECK_INT(store_reader_open(s, &r, NULL), 0);
	CHECK_INT(store_reader_array(r, ds, STORE_ARRAY_LIVE, 1, 0, 300, live, NULL), 0);
	store_reader_close(r);
	store_close(s);
	for (size_t i = 0; i < 300; i++)
		bad += live[i] != (i < 250 && i != 7);
	CHECK_INT((long long)bad, 0);
	CHECK_INT(raw_version(tmp_root), 2);
	batch_free(&b);
	tmp_done();
}

/* Group commit: concurrent small calls share transactions; every call returns only its own
 * outcome (a call into a deleted dataset fails alone), and every record is there. */
struct putter {
	struct store *s;
	uint32_t ds;
	size_t first, calls, per;
	int bad;  /* put into a dataset that does not exist */
	int fails, wrong_rows;
};

static void *putter_main(void *arg)
{
	struct putter *p = arg;

	for (size_t c = 0; c < p->calls; c++) {
		struct batch b;
		uint64_t rows[64];
		struct err e;
		int rc;

		if (batch_make(&b, p->per, p->first + c * p->per, 0) != 0) {
			p->fails++;
			continue;
		}
		err_clear(&e);
		rc = store_put_records(p->s, p->bad ? p->ds + 1000 : p->ds, b.recs, b.n, rows, &e);
		if (p->bad ? rc != ERR_NOT_FOUND || e.code != ERR_NOT_FOUND : rc != 0)
			p->fails++;
		for (size_t i = 1; !p->bad && rc == 0 && i < b.n; i++)
			if (rows[i] != rows[i - 1] + 1) /* one call's new records get consecutive rows */
				p->wrong_rows++;
		batch_free(&b);
	}
	return NULL;
}

static void test_group_commit(void)
{
	enum { THREADS = 6, CALLS = 40, PER = 25 };
	struct putter p[THREADS];
	pthread_t th[THREADS];
	struct store *s;
	uint32_t ds;
	size_t missing = 0;

	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	if (s == NULL)
		return;
	ds = make_dataset(s, "group");
	for (int t = 0; t < THREADS; t++) {
		p[t] = (struct putter){ s, ds, (size_t)t * CALLS * PER, CALLS, PER, t == 3, 0, 0 };
		pthread_create(&th[t], NULL, putter_main, &p[t]);
	}
	for (int t = 0; t < THREADS; t++) {
		pthread_join(th[t], NULL);
		CHECK_INT(p[t].fails, 0);
		CHECK_INT(p[t].wrong_rows, 0);
	}
	CHECK_INT(count_rows(s, ds), (THREADS - 1) * CALLS * PER);
	for (int t = 0; t < THREADS; t++) {
		for (size_t k = p[t].first; k < p[t].first + CALLS * PER; k += 7) {
			struct store_record_out out;
			char id[40];

			snprintf(id, sizeof id, "rec-%07zu", k);
			if (store_get_record(s, ds, id, strlen(id), 0, &out, NULL) == 0)
				store_record_out_free(&out);
			else if (t != 3)
				missing++;
		}
	}
	CHECK_INT((long long)missing, 0);
	store_close(s);
	tmp_done();
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* 50,000 records with two 768-d f16 vectors and 32-hex-digit ids, in calls of 1000:
 * the timing is printed, not asserted. */
static void test_ingest_timing(void)
{
	enum { N = 50000, BATCH = 1000, DIM = 768 };
	struct store_record *recs = calloc(BATCH, sizeof *recs);
	uint16_t *va = malloc((size_t)BATCH * DIM * 2), *vb = malloc((size_t)BATCH * DIM * 2);
	char (*ids)[33] = malloc(BATCH * sizeof *ids);
	char (*bodies)[160] = malloc(BATCH * sizeof *bodies);
	struct store_schema sc;
	struct store_dataset_info info;
	struct store_record_out out;
	struct store *s;
	double t0, t;
	uint32_t ds;
	int rc = 0;

	CHECK(recs && va && vb && ids && bodies);
	CHECK(tmp_dir() != NULL);
	s = open_at(tmp_root, 0);
	CHECK(s != NULL);
	memset(&sc, 0, sizeof sc);
	sc.nspaces = 2;
	strcpy(sc.spaces[0].name, "image");
	strcpy(sc.spaces[1].name, "text");
	sc.spaces[0].dim = sc.spaces[1].dim = DIM;
	sc.spaces[0].dtype = sc.spaces[1].dtype = STORE_F16;
	sc.kinds = STORE_KIND_IMAGE_TEXT;
	CHECK_INT(store_dataset_create(s, "bench", &sc, NULL, NULL), 0);
	CHECK_INT(store_dataset_get(s, "bench", &info, NULL), 0);
	ds = info.id;
	for (size_t i = 0; i < (size_t)BATCH * DIM; i++) {
		va[i] = vec_f32_to_f16_one((float)(i % 97) / 97.0f - 0.5f);
		vb[i] = vec_f32_to_f16_one((float)(i % 89) / 89.0f - 0.5f);
	}
	t0 = now_s();
	for (size_t c = 0; c < N / BATCH && rc == 0; c++) {
		for (size_t i = 0; i < BATCH; i++) {
			uint64_t k = c * BATCH + i;

			snprintf(ids[i], sizeof ids[i], "%016llx%016llx",
			         (unsigned long long)(k * 0x9e3779b97f4a7c15ull),
			         (unsigned long long)k);
			snprintf(bodies[i], sizeof bodies[i],
			         "{\"url\":\"https://example.com/img/%llu.jpg\",\"caption\":"
			         "\"a photo of item %llu\",\"width\":512,\"height\":384}",
			         (unsigned long long)k, (unsigned long long)k);
			recs[i].id = ids[i];
			recs[i].id_len = 32;
			recs[i].kind = STORE_KIND_IMAGE_TEXT;
			recs[i].body = bodies[i];
			recs[i].body_len = strlen(bodies[i]);
			recs[i].vec[0] = va + i * DIM;
			recs[i].vec[1] = vb + i * DIM;
		}
		rc = store_put_records(s, ds, recs, BATCH, NULL, NULL);
	}
	t = now_s() - t0;
	CHECK_INT(rc, 0);
	printf("  ingest: %d records x 2 x 768-d f16 in calls of %d: %.2f s, %.0f records/s\n", N,
	       BATCH, t, N / t);
	CHECK_INT(store_dataset_get(s, "bench", &info, NULL), 0);
	CHECK_INT(info.records, N);
	CHECK_INT(store_get_record(s, ds, ids[BATCH - 1], 32, 1, &out, NULL), 0);
	CHECK_INT(out.row, N - 1);
	CHECK(out.vec[1] != NULL && memcmp(out.vec[1], vb + (BATCH - 1) * DIM, DIM * 2) == 0);
	store_record_out_free(&out);
	store_close(s);
	free(recs);
	free(va);
	free(vb);
	free(ids);
	free(bodies);
	tmp_done();
}

int main(void)
{
	HARNESS_RUN(test_names_and_helpers);
	HARNESS_RUN(test_dataset_create);
	HARNESS_RUN(test_put_get);
	HARNESS_RUN(test_upsert);
	HARNESS_RUN(test_delete_record);
	HARNESS_RUN(test_reader_snapshot);
	HARNESS_RUN(test_reader_block);
	HARNESS_RUN(test_map_growth);
	HARNESS_RUN(test_concurrent_growth);
	HARNESS_RUN(test_resize_waits);
	HARNESS_RUN(test_big_call);
	HARNESS_RUN(test_reopen_and_version);
	HARNESS_RUN(test_dataset_delete);
	HARNESS_RUN(test_reclaim_on_open);
	HARNESS_RUN(test_arrays);
	HARNESS_RUN(test_live_array);
	HARNESS_RUN(test_docs_and_counters);
	HARNESS_RUN(test_write_growth);
	HARNESS_RUN(test_migrate_v1);
	HARNESS_RUN(test_array_edges);
	HARNESS_RUN(test_write_retry_masked);
	HARNESS_RUN(test_live_scattered);
	HARNESS_RUN(test_reader_pointers);
	HARNESS_RUN(test_recreate_sees_nothing);
	HARNESS_RUN(test_migrate_rerun);
	HARNESS_RUN(test_group_commit);
	HARNESS_RUN(test_ingest_timing);
	tmp_done();
	return harness_done();
}
