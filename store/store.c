/* SPDX-License-Identifier: MIT */
/* store: the LMDB layer; the only code in winnow that calls mdb_*.
 *
 * Owns the LMDB environment of the data directory, its named databases (layout below and
 * in docs/storage.md) and the gate that lets the map grow. Threading: every export may be
 * called from any thread. LMDB serialises writers; readers never block writers. Every
 * transaction, read or write, is held inside the gate (a counter under a mutex, not a
 * pthread_rwlock, because with MDB_NOTLS a reader may be closed by another thread than
 * the one that opened it). Growing the map closes the gate, waits for the open
 * transactions to drain (at most STORE_RESIZE_WAIT_S), remaps, and reopens it.
 * Caveat: a thread that holds a store_reader and then writes can make a resize wait for
 * its own reader; the resize then gives up after the timeout with ERR_UNAVAILABLE.
 *
 * Layout (every key big-endian so byte order is numeric order; ds = u32 dataset id):
 *   meta      "format_version" -> u32, "next_dataset_id" -> u32, "counter.<name>" -> u64
 *   datasets  name -> dataset header (immutable after creation, see hdr_encode)
 *   dsname    ds -> name (finds the header from an id)
 *   dsstat    ds -> {u64 next_row, u64 records}
 *   ids       ds + id bytes -> u64 row
 *   rows      ds + u64 row -> {u8 kind, id bytes}
 *   recs      ds + u64 row -> body
 *   vecs      ds + u16 space + u64 block -> u64 present mask + STORE_BLOCK_ROWS vectors
 *   trash     ds -> (empty): datasets whose keys are being reclaimed
 *   arrays    ds + u32 array + u64 block -> STORE_ARRAY_ROWS elements (array 0: live flags)
 *   docs      ds + u8 namespace + key bytes -> document bytes (ds 0: global)
 * Values are little-endian. Format 2 added arrays and docs; migrate_v1 builds the live
 * arrays of a format 1 directory at open. */
#include "store/store.h"

#include "lib/err.h"
#include "lib/vec.h"

#include <errno.h>
#include <stdatomic.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define STORE_MAXDBS 16
#define STORE_DEFAULT_MAP_SIZE ((size_t)1 << 30)
/* Overridable at build time so that a test build can force tiny transactions. */
#ifndef STORE_CHUNK_RECORDS
#define STORE_CHUNK_RECORDS 8192
#endif
#ifndef STORE_CHUNK_BYTES
#define STORE_CHUNK_BYTES ((size_t)64 << 20)
#endif
#ifndef STORE_RECLAIM_BATCH
#define STORE_RECLAIM_BATCH 10000
#endif
#define STORE_RESIZE_WAIT_S 10
#define STORE_GROW_TRIES 48
#define STORE_HDR_VERSION 1
#define STORE_HDR_FIXED 24
#define STORE_HDR_SPACE 8
#define STORE_HDR_MAX (STORE_HDR_FIXED + STORE_MAX_SPACES * (STORE_HDR_SPACE + STORE_NAME_MAX))
#define STORE_KEY_DS 4
#define STORE_KEY_ROW 12
#define STORE_KEY_BLOCK 14
#define STORE_MASK_BYTES 8
#define STORE_KEY_ARRAY 16 /* ds, array id, block */
#define STORE_ELEM_MAX 16
#define STORE_MIGRATE_BATCH 65536

struct put_req;

struct store {
	MDB_env *env;
	MDB_dbi meta, datasets, dsname, dsstat, ids, rows, recs, vecs, trash, arrays, docs;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned active; /* transactions open in the gate */
	int resizing;    /* a resize waits or runs: the gate is closed */
	int sync_ready;  /* mu and cv initialised */
	/* group commit of concurrent put calls, under mu (see store_put_records) */
	pthread_cond_t gcv;
	struct put_req *ghead, *gtail;
	int gleader;
	char *dir;          /* the data directory, for statvfs when a commit fails */
	atomic_int full;    /* the last write failed for want of space (store_full) */
};

struct store_reader {
	struct store *s;
	MDB_txn *txn;
	MDB_cursor *rows, *recs;
	unsigned char *buf; /* aligned copy of a block LMDB could only give unaligned */
	size_t buf_cap;
};

/* An LMDB failure inside a transaction body: kept apart from struct err so that the
 * wrapper can retry MDB_MAP_FULL without the first-error-wins detail being spent. */
struct lmdb_fail {
	int rc;
	const char *what;
};

typedef int (*txn_body)(struct store *s, MDB_txn *txn, void *arg, struct lmdb_fail *lf,
                        struct err *e);

static int corrupt(struct err *e, const char *what)
{
	return err_set(e, ERR_STORE, "storage_corrupt", "the store is corrupt: %s", what);
}

static int nomem(struct err *e, const char *doing)
{
	return err_set(e, ERR_NOMEM, NULL, "out of memory %s", doing);
}

/* ---- encodings ---------------------------------------------------------------------- */

static void be32_put(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void be64_put(unsigned char *p, uint64_t v)
{
	be32_put(p, (uint32_t)(v >> 32));
	be32_put(p + 4, (uint32_t)v);
}

static uint32_t be32_get(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64_get(const unsigned char *p)
{
	return (uint64_t)be32_get(p) << 32 | be32_get(p + 4);
}

static MDB_val mval(const void *p, size_t n)
{
	MDB_val v;

	v.mv_size = n;
	v.mv_data = (void *)(uintptr_t)p; /* LMDB takes void * but never writes through a key */
	return v;
}

static void key_ds(unsigned char *k, uint32_t ds)
{
	be32_put(k, ds);
}

static void key_row(unsigned char *k, uint32_t ds, uint64_t row)
{
	be32_put(k, ds);
	be64_put(k + 4, row);
}

static void key_block(unsigned char *k, uint32_t ds, unsigned space, uint64_t block)
{
	be32_put(k, ds);
	k[4] = (unsigned char)(space >> 8);
	k[5] = (unsigned char)space;
	be64_put(k + 6, block);
}

/* Dataset header, little-endian:
 *   u8 version, u8 nspaces, u16 0, u32 id, u32 kinds, u32 0, i64 created_unix,
 *   per space: u8 name_len, u8 dtype, u16 0, u32 dim, name bytes. */
static size_t hdr_encode(unsigned char *p, uint32_t id, const struct store_schema *sc,
                         int64_t created)
{
	size_t off = STORE_HDR_FIXED;

	memset(p, 0, STORE_HDR_FIXED);
	p[0] = STORE_HDR_VERSION;
	p[1] = (unsigned char)sc->nspaces;
	vec_le32_put(p + 4, id);
	vec_le32_put(p + 8, sc->kinds);
	vec_le64_put(p + 16, (uint64_t)created);
	for (unsigned i = 0; i < sc->nspaces; i++) {
		const struct store_space *sp = &sc->spaces[i];
		size_t len = strlen(sp->name);

		p[off] = (unsigned char)len;
		p[off + 1] = (unsigned char)sp->dtype;
		p[off + 2] = 0;
		p[off + 3] = 0;
		vec_le32_put(p + off + 4, sp->dim);
		memcpy(p + off + STORE_HDR_SPACE, sp->name, len);
		off += STORE_HDR_SPACE + len;
	}
	return off;
}

static int hdr_decode(const MDB_val *v, struct store_dataset_info *out, struct err *e)
{
	const unsigned char *p = v->mv_data;
	size_t off = STORE_HDR_FIXED;

	if (v->mv_size < STORE_HDR_FIXED || p[0] != STORE_HDR_VERSION || p[1] > STORE_MAX_SPACES)
		goto corrupt;
	out->schema.nspaces = p[1];
	out->id = vec_le32_get(p + 4);
	out->schema.kinds = vec_le32_get(p + 8);
	out->created_unix = (int64_t)vec_le64_get(p + 16);
	for (unsigned i = 0; i < out->schema.nspaces; i++) {
		struct store_space *sp = &out->schema.spaces[i];
		size_t len;

		if (v->mv_size - off < STORE_HDR_SPACE)
			goto corrupt;
		len = p[off];
		if (len == 0 || len > STORE_NAME_MAX || v->mv_size - off - STORE_HDR_SPACE < len)
			goto corrupt;
		if (p[off + 1] != STORE_F32 && p[off + 1] != STORE_F16)
			goto corrupt;
		memset(sp->name, 0, sizeof sp->name);
		memcpy(sp->name, p + off + STORE_HDR_SPACE, len);
		sp->dtype = (enum store_dtype)p[off + 1];
		sp->dim = vec_le32_get(p + off + 4);
		off += STORE_HDR_SPACE + len;
	}
	if (off != v->mv_size)
		goto corrupt;
	return 0;
corrupt:
	return corrupt(e, "a dataset header");
}

/* ---- the gate and the transaction wrappers ------------------------------------------- */

/* The first failure of an attempt wins: once an op fails LMDB marks the transaction bad,
 * and a later op's MDB_BAD_TXN must not hide the MDB_MAP_FULL that the retry looks for. */
static int lmdb_fail(struct lmdb_fail *lf, int rc, const char *what)
{
	if (lf->rc == 0) {
		lf->rc = rc;
		lf->what = what;
	}
	return ERR_STORE;
}

/* A failure that says the disk is full (or the map cannot grow for it). */
static int space_failure(int rc)
{
	return rc == ENOSPC || rc == EDQUOT || rc == EFBIG || rc == MDB_MAP_FULL;
}

/* A commit that failed with EIO on a disk with next to no room left failed for space: some
 * file systems report a full disk at write-back as an I/O error. */
static int nearly_full(const struct store *s)
{
	struct statvfs v;

	return s->dir != NULL && statvfs(s->dir, &v) == 0 &&
	       (uint64_t)v.f_bavail * v.f_frsize < STORE_FULL_MARGIN;
}

static int lmdb_err(struct err *e, const char *op, const struct lmdb_fail *lf)
{
	if (space_failure(lf->rc))
		return err_set(e, ERR_NOSPACE, "insufficient_storage",
		               "%s: the disk holding the data directory is full (%s): nothing was "
		               "written; free space or grow the volume, then retry",
		               op, mdb_strerror(lf->rc));
	return err_set(e, ERR_STORE, "storage_error", "%s: %s: %s", op,
	               lf->what ? lf->what : "lmdb", mdb_strerror(lf->rc));
}

/* lmdb_err for a failure outside a transaction body. */
static int lmdb_err_rc(struct err *e, const char *op, const char *what, int rc)
{
	struct lmdb_fail lf;

	lf.rc = rc;
	lf.what = what;
	return lmdb_err(e, op, &lf);
}

static void gate_enter(struct store *s)
{
	pthread_mutex_lock(&s->mu);
	while (s->resizing)
		pthread_cond_wait(&s->cv, &s->mu);
	s->active++;
	pthread_mutex_unlock(&s->mu);
}

static void gate_leave(struct store *s)
{
	pthread_mutex_lock(&s->mu);
	s->active--;
	if (s->active == 0 && s->resizing)
		pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* Grow the map (adopt = 0: to twice seen, unless another thread already grew it past
 * seen) or adopt the size another process set (adopt = 1, after MDB_MAP_RESIZED). The
 * caller holds no transaction. */
static int gate_resize(struct store *s, size_t seen, int adopt, struct err *e)
{
	struct timespec deadline;
	MDB_envinfo info;
	int rc = 0, mrc = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += STORE_RESIZE_WAIT_S;
	pthread_mutex_lock(&s->mu);
	if (s->resizing) {
		/* Someone else is resizing; once done, the caller's retry sees the result. */
		while (s->resizing)
			if (pthread_cond_timedwait(&s->cv, &s->mu, &deadline) == ETIMEDOUT)
				break;
		pthread_mutex_unlock(&s->mu);
		return 0;
	}
	s->resizing = 1;
	while (s->active > 0)
		if (pthread_cond_timedwait(&s->cv, &s->mu, &deadline) == ETIMEDOUT)
			break;
	if (s->active > 0) {
		rc = err_set(e, ERR_UNAVAILABLE, "store_busy",
		             "the storage map is full and %u open transaction(s) kept it from "
		             "growing for %d s; retry",
		             s->active, STORE_RESIZE_WAIT_S);
		goto out;
	}
	if (adopt) {
		mrc = mdb_env_set_mapsize(s->env, 0);
	} else {
		mdb_env_info(s->env, &info);
		if (info.me_mapsize <= seen) {
			size_t next = seen > SIZE_MAX / 2 ? SIZE_MAX : seen * 2;

			mrc = mdb_env_set_mapsize(s->env, next);
		}
	}
	if (mrc != 0)
		rc = lmdb_err_rc(e, "grow the storage map", "set map size", mrc);
out:
	s->resizing = 0;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* Run body in a write transaction and commit it; on MDB_MAP_FULL grow the map and run
 * body again from scratch (it must not keep state across attempts). An LMDB failure
 * returns ERR_STORE with the cause in *lf and e untouched. */
static int txn_write_raw(struct store *s, txn_body body, void *arg, struct lmdb_fail *lf,
                         struct err *e)
{
	for (unsigned tries = 0;; tries++) {
		MDB_txn *txn = NULL;
		MDB_envinfo info;
		int rc, mrc;

		lf->rc = 0;
		lf->what = NULL;
		gate_enter(s);
		mdb_env_info(s->env, &info);
		mrc = mdb_txn_begin(s->env, NULL, 0, &txn);
		if (mrc != 0) {
			rc = lmdb_fail(lf, mrc, "begin write transaction");
		} else {
			rc = body(s, txn, arg, lf, e);
			if (rc == 0) {
				mrc = mdb_txn_commit(txn);
				if (mrc == EIO && nearly_full(s))
					mrc = ENOSPC;
				if (mrc != 0)
					rc = lmdb_fail(lf, mrc, "commit");
				atomic_store(&s->full, space_failure(mrc));
			} else {
				mdb_txn_abort(txn);
			}
		}
		gate_leave(s);
		if (rc != ERR_STORE || (lf->rc != MDB_MAP_FULL && lf->rc != MDB_MAP_RESIZED) ||
		    tries >= STORE_GROW_TRIES)
			return rc;
		rc = gate_resize(s, info.me_mapsize, lf->rc == MDB_MAP_RESIZED, e);
		if (rc != 0)
			return rc;
	}
}

static int txn_write(struct store *s, const char *op, txn_body body, void *arg, struct err *e)
{
	struct lmdb_fail lf = { 0, NULL };
	int rc = txn_write_raw(s, body, arg, &lf, e);

	if (rc == ERR_STORE && lf.rc != 0)
		rc = lmdb_err(e, op, &lf);
	return rc;
}

/* Begin a read transaction inside the gate; txn_read_end leaves both. */
static int txn_read_begin(struct store *s, MDB_txn **txn, const char *op, struct err *e)
{
	for (unsigned tries = 0;; tries++) {
		int mrc, rc;

		gate_enter(s);
		mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
		if (mrc == 0)
			return 0;
		gate_leave(s);
		if (mrc != MDB_MAP_RESIZED || tries >= STORE_GROW_TRIES)
			return lmdb_err_rc(e, op, "begin read transaction", mrc);
		rc = gate_resize(s, 0, 1, e);
		if (rc != 0)
			return rc;
	}
}

static void txn_read_end(struct store *s, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	gate_leave(s);
}

/* ---- datasets ------------------------------------------------------------------------- */

int store_name_valid(const char *name)
{
	size_t i;

	if (name == NULL)
		return 0;
	for (i = 0; name[i] != '\0'; i++) {
		char c = name[i];

		if (i >= STORE_NAME_MAX)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return i > 0;
}

size_t store_space_bytes(const struct store_space *sp)
{
	return (size_t)sp->dim * (sp->dtype == STORE_F16 ? 2 : 4);
}

int store_schema_find(const struct store_schema *schema, const char *name)
{
	if (schema == NULL || name == NULL)
		return -1;
	for (unsigned i = 0; i < schema->nspaces && i < STORE_MAX_SPACES; i++)
		if (strcmp(schema->spaces[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int schema_check(const struct store_schema *sc, struct err *e)
{
	const unsigned all_kinds = STORE_KIND_IMAGE_TEXT | STORE_KIND_TEXT;

	if (sc->nspaces > STORE_MAX_SPACES)
		return err_set(e, ERR_INVALID, "too_many_spaces", "a dataset has at most %d spaces",
		               STORE_MAX_SPACES);
	if (sc->kinds == 0 || (sc->kinds & ~all_kinds) != 0)
		return err_set(e, ERR_INVALID, "bad_kinds", "record kinds must be a non-empty "
		               "set of the known kinds");
	for (unsigned i = 0; i < sc->nspaces; i++) {
		const struct store_space *sp = &sc->spaces[i];

		if (memchr(sp->name, '\0', sizeof sp->name) == NULL || !store_name_valid(sp->name))
			return err_set(e, ERR_INVALID, "bad_space_name",
			               "space %u: names are 1 to %d characters of [A-Za-z0-9._-]",
			               i, STORE_NAME_MAX);
		if (sp->dim == 0 || sp->dim > STORE_DIM_MAX)
			return err_set(e, ERR_INVALID, "bad_dim",
			               "space '%s': dim must be 1..%d, got %u", sp->name,
			               STORE_DIM_MAX, (unsigned)sp->dim);
		if (sp->dtype != STORE_F32 && sp->dtype != STORE_F16)
			return err_set(e, ERR_INVALID, "bad_dtype", "space '%s': unknown dtype",
			               sp->name);
		for (unsigned j = 0; j < i; j++)
			if (strcmp(sc->spaces[j].name, sp->name) == 0)
				return err_set(e, ERR_INVALID, "duplicate_space",
				               "space '%s' appears twice", sp->name);
	}
	return 0;
}

static int schema_equal(const struct store_schema *a, const struct store_schema *b)
{
	if (a->nspaces != b->nspaces || a->kinds != b->kinds)
		return 0;
	for (unsigned i = 0; i < a->nspaces; i++) {
		const struct store_space *x = &a->spaces[i], *y = &b->spaces[i];

		if (x->dim != y->dim || x->dtype != y->dtype || strcmp(x->name, y->name) != 0)
			return 0;
	}
	return 1;
}

static int stat_get(struct store *s, MDB_txn *txn, uint32_t ds, uint64_t *next_row,
                    uint64_t *records, struct lmdb_fail *lf, struct err *e)
{
	unsigned char k[STORE_KEY_DS];
	MDB_val key, val;
	int mrc;

	key_ds(k, ds);
	key = mval(k, sizeof k);
	mrc = mdb_get(txn, s->dsstat, &key, &val);
	if (mrc == MDB_NOTFOUND)
		return err_set(e, ERR_NOT_FOUND, "dataset_not_found",
		               "dataset %u does not exist (deleted?)", (unsigned)ds);
	if (mrc != 0)
		return lmdb_fail(lf, mrc, "read dataset counters");
	if (val.mv_size != 16)
		return err_set(e, ERR_STORE, "storage_corrupt", "dataset %u: counters corrupt",
		               (unsigned)ds);
	*next_row = vec_le64_get(val.mv_data);
	*records = vec_le64_get((const unsigned char *)val.mv_data + 8);
	return 0;
}

static int stat_put(struct store *s, MDB_txn *txn, uint32_t ds, uint64_t next_row,
                    uint64_t records, struct lmdb_fail *lf)
{
	unsigned char k[STORE_KEY_DS], v[16];
	MDB_val key, val;
	int mrc;

	key_ds(k, ds);
	vec_le64_put(v, next_row);
	vec_le64_put(v + 8, records);
	key = mval(k, sizeof k);
	val = mval(v, sizeof v);
	mrc = mdb_put(txn, s->dsstat, &key, &val, 0);
	return mrc ? lmdb_fail(lf, mrc, "write dataset counters") : 0;
}

/* Fill *info (schema, counters) of dataset ds, or ERR_NOT_FOUND if it is gone. */
static int ds_load(struct store *s, MDB_txn *txn, uint32_t ds, struct store_dataset_info *info,
                   struct lmdb_fail *lf, struct err *e)
{
	unsigned char k[STORE_KEY_DS];
	MDB_val key, name, hdr;
	int rc, mrc;

	memset(info, 0, sizeof *info);
	rc = stat_get(s, txn, ds, &info->next_row, &info->records, lf, e);
	if (rc != 0)
		return rc;
	key_ds(k, ds);
	key = mval(k, sizeof k);
	mrc = mdb_get(txn, s->dsname, &key, &name);
	if (mrc == 0)
		mrc = mdb_get(txn, s->datasets, &name, &hdr);
	if (mrc == MDB_NOTFOUND || (mrc == 0 && name.mv_size > STORE_NAME_MAX))
		return err_set(e, ERR_STORE, "storage_corrupt", "dataset %u: header missing",
		               (unsigned)ds);
	if (mrc != 0)
		return lmdb_fail(lf, mrc, "read dataset header");
	memcpy(info->name, name.mv_data, name.mv_size);
	rc = hdr_decode(&hdr, info, e);
	if (rc == 0 && info->id != ds)
		rc = err_set(e, ERR_STORE, "storage_corrupt", "dataset %u: header names id %u",
		             (unsigned)ds, (unsigned)info->id);
	return rc;
}

struct create_ctx {
	const char *name;
	const struct store_schema *schema;
	int created;
};

static int create_body(struct store *s, MDB_txn *txn, void *arg, struct lmdb_fail *lf,
                       struct err *e)
{
	struct create_ctx *c = arg;
	unsigned char hdr[STORE_HDR_MAX], k[STORE_KEY_DS], idv[4];
	MDB_val key, val, nkey;
	size_t hlen;
	uint32_t id;
	int rc, mrc;

	c->created = 0;
	nkey = mval(c->name, strlen(c->name));
	mrc = mdb_get(txn, s->datasets, &nkey, &val);
	if (mrc == 0) {
		struct store_dataset_info old;

		memset(&old, 0, sizeof old);
		rc = hdr_decode(&val, &old, e);
		if (rc != 0)
			return rc;
		if (!schema_equal(&old.schema, c->schema))
			return err_set(e, ERR_CONFLICT, "dataset_exists",
			               "dataset '%s' exists with a different schema", c->name);
		return 0;
	}
	if (mrc != MDB_NOTFOUND)
		return lmdb_fail(lf, mrc, "read dataset");
	key = mval("next_dataset_id", strlen("next_dataset_id"));
	mrc = mdb_get(txn, s->meta, &key, &val);
	if (mrc != 0)
		return lmdb_fail(lf, mrc, "read next dataset id");
	if (val.mv_size != 4)
		return corrupt(e, "next_dataset_id");
	id = vec_le32_get(val.mv_data);
	if (id == UINT32_MAX)
		return err_set(e, ERR_STORE, "out_of_ids", "no dataset ids left");
	vec_le32_put(idv, id + 1);
	val = mval(idv, sizeof idv);
	if ((mrc = mdb_put(txn, s->meta, &key, &val, 0)) != 0)
		return lmdb_fail(lf, mrc, "write next dataset id");
	hlen = hdr_encode(hdr, id, c->schema, (int64_t)time(NULL));
	val = mval(hdr, hlen);
	if ((mrc = mdb_put(txn, s->datasets, &nkey, &val, 0)) != 0)
		return lmdb_fail(lf, mrc, "write dataset header");
	key_ds(k, id);
	key = mval(k, sizeof k);
	if ((mrc = mdb_put(txn, s->dsname, &key, &nkey, 0)) != 0)
		return lmdb_fail(lf, mrc, "write dataset name");
	rc = stat_put(s, txn, id, 0, 0, lf);
	if (rc == 0)
		c->created = 1;
	return rc;
}

int store_dataset_create(struct store *s, const char *name, const struct store_schema *schema,
                         int *created, struct err *e)
{
	struct create_ctx c = { name, schema, 0 };
	int rc;

	if (!store_name_valid(name))
		return err_set(e, ERR_INVALID, "bad_dataset_name",
		               "dataset names are 1 to %d characters of [A-Za-z0-9._-]",
		               STORE_NAME_MAX);
	if (schema == NULL)
		return err_set(e, ERR_INVALID, "bad_schema", "a dataset needs a schema");
	rc = schema_check(schema, e);
	if (rc == 0)
		rc = txn_write(s, "create dataset", create_body, &c, e);
	if (rc == 0 && created != NULL)
		*created = c.created;
	return rc;
}

static int info_by_name(struct store *s, MDB_txn *txn, const MDB_val *nkey, const MDB_val *hdr,
                        struct store_dataset_info *out, struct lmdb_fail *lf, struct err *e)
{
	struct err sub;
	int rc;

	memset(out, 0, sizeof *out);
	rc = hdr_decode(hdr, out, e);
	if (rc != 0)
		return rc;
	if (nkey->mv_size > STORE_NAME_MAX)
		return corrupt(e, "a dataset name");
	memcpy(out->name, nkey->mv_data, nkey->mv_size);
	err_clear(&sub);
	rc = stat_get(s, txn, out->id, &out->next_row, &out->records, lf, &sub);
	if (rc == ERR_NOT_FOUND) /* a header without counters: corrupt, not absent */
		return err_set(e, ERR_STORE, "storage_corrupt", "dataset '%s' has no counters",
		               out->name);
	if (rc != 0 && sub.code != 0)
		err_set(e, sub.code, sub.slug, "%s", sub.detail);
	return rc;
}

int store_dataset_get(struct store *s, const char *name, struct store_dataset_info *out,
                      struct err *e)
{
	struct store_dataset_info info;
	struct lmdb_fail lf = { 0, NULL };
	MDB_txn *txn = NULL;
	MDB_val nkey, hdr;
	int rc, mrc;

	if (!store_name_valid(name))
		return err_set(e, ERR_NOT_FOUND, "dataset_not_found", "no dataset named '%s'",
		               name ? name : "");
	rc = txn_read_begin(s, &txn, "get dataset", e);
	if (rc != 0)
		return rc;
	nkey = mval(name, strlen(name));
	mrc = mdb_get(txn, s->datasets, &nkey, &hdr);
	if (mrc == MDB_NOTFOUND) {
		rc = err_set(e, ERR_NOT_FOUND, "dataset_not_found", "no dataset named '%s'", name);
		goto out;
	}
	if (mrc != 0) {
		rc = lmdb_fail(&lf, mrc, "read dataset");
		goto out;
	}
	rc = info_by_name(s, txn, &nkey, &hdr, &info, &lf, e);
	if (rc == 0)
		*out = info;
out:
	txn_read_end(s, txn);
	if (rc == ERR_STORE && lf.rc != 0)
		rc = lmdb_err(e, "get dataset", &lf);
	return rc;
}

int store_dataset_list(struct store *s, struct store_dataset_info **out, size_t *n, struct err *e)
{
	struct store_dataset_info *arr = NULL, *grown;
	struct lmdb_fail lf = { 0, NULL };
	MDB_cursor *cur = NULL;
	MDB_txn *txn = NULL;
	MDB_val k, v;
	size_t len = 0, cap = 0;
	int rc, mrc;

	rc = txn_read_begin(s, &txn, "list datasets", e);
	if (rc != 0)
		return rc;
	mrc = mdb_cursor_open(txn, s->datasets, &cur);
	if (mrc != 0) {
		rc = lmdb_fail(&lf, mrc, "open cursor");
		goto out;
	}
	/* LMDB orders keys bytewise, which is strcmp order for names. */
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (len == cap) {
			cap = cap ? cap * 2 : 16;
			grown = realloc(arr, cap * sizeof *arr);
			if (grown == NULL) {
				rc = nomem(e, "listing datasets");
				goto out;
			}
			arr = grown;
		}
		rc = info_by_name(s, txn, &k, &v, &arr[len], &lf, e);
		if (rc != 0)
			goto out;
		len++;
	}
	if (mrc != MDB_NOTFOUND)
		rc = lmdb_fail(&lf, mrc, "iterate datasets");
out:
	mdb_cursor_close(cur);
	txn_read_end(s, txn);
	if (rc != 0) {
		free(arr);
		if (rc == ERR_STORE && lf.rc != 0)
			rc = lmdb_err(e, "list datasets", &lf);
		return rc;
	}
	*out = arr;
	*n = len;
	return 0;
}

struct drop_ctx {
	const char *name;
	uint32_t ds;
};

static int drop_body(struct store *s, MDB_txn *txn, void *arg, struct lmdb_fail *lf,
                     struct err *e)
{
	struct drop_ctx *c = arg;
	struct store_dataset_info info;
	unsigned char k[STORE_KEY_DS];
	MDB_val nkey, hdr, key, empty;
	int rc, mrc;

	nkey = mval(c->name, strlen(c->name));
	mrc = mdb_get(txn, s->datasets, &nkey, &hdr);
	if (mrc == MDB_NOTFOUND)
		return err_set(e, ERR_NOT_FOUND, "dataset_not_found", "no dataset named '%s'",
		               c->name);
	if (mrc != 0)
		return lmdb_fail(lf, mrc, "read dataset");
	memset(&info, 0, sizeof info);
	rc = hdr_decode(&hdr, &info, e);
	if (rc != 0)
		return rc;
	c->ds = info.id;
	key_ds(k, c->ds);
	key = mval(k, sizeof k);
	empty = mval("", 0);
	if ((mrc = mdb_del(txn, s->datasets, &nkey, NULL)) != 0)
		return lmdb_fail(lf, mrc, "delete dataset header");
	mrc = mdb_del(txn, s->dsname, &key, NULL);
	if (mrc == 0 || mrc == MDB_NOTFOUND)
		mrc = mdb_del(txn, s->dsstat, &key, NULL);
	if (mrc != 0 && mrc != MDB_NOTFOUND)
		return lmdb_fail(lf, mrc, "delete dataset counters");
	if ((mrc = mdb_put(txn, s->trash, &key, &empty, 0)) != 0)
		return lmdb_fail(lf, mrc, "mark dataset for reclaim");
	return 0;
}

struct reclaim_ctx {
	uint32_t ds;
	int finished;
};

/* Delete up to STORE_RECLAIM_BATCH keys of the dataset; the last batch also removes
 * it from trash. Re-seeking after each delete keeps the cursor logic trivially right. */
static int reclaim_body(struct store *s, MDB_txn *txn, void *arg, struct lmdb_fail *lf,
                        struct err *e)
{
	struct reclaim_ctx *c = arg;
	MDB_dbi dbis[6] = { s->ids, s->rows, s->recs, s->vecs, s->arrays, s->docs };
	unsigned char pk[STORE_KEY_DS];
	MDB_cursor *cur = NULL;
	size_t deleted = 0;
	MDB_val k, v;
	int rc = 0, mrc;

	(void)e;
	c->finished = 0;
	key_ds(pk, c->ds);
	for (unsigned d = 0; d < 6 && deleted < STORE_RECLAIM_BATCH; d++) {
		mrc = mdb_cursor_open(txn, dbis[d], &cur);
		if (mrc != 0)
			return lmdb_fail(lf, mrc, "open cursor");
		while (deleted < STORE_RECLAIM_BATCH) {
			k = mval(pk, sizeof pk);
			mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
			if (mrc == MDB_NOTFOUND)
				break;
			if (mrc != 0) {
				rc = lmdb_fail(lf, mrc, "seek");
				goto out;
			}
			if (k.mv_size < sizeof pk || memcmp(k.mv_data, pk, sizeof pk) != 0)
				break;
			mrc = mdb_cursor_del(cur, 0);
			if (mrc != 0) {
				rc = lmdb_fail(lf, mrc, "delete");
				goto out;
			}
			deleted++;
		}
		mdb_cursor_close(cur);
		cur = NULL;
	}
	if (deleted < STORE_RECLAIM_BATCH) {
		k = mval(pk, sizeof pk);
		mrc = mdb_del(txn, s->trash, &k, NULL);
		if (mrc != 0 && mrc != MDB_NOTFOUND)
			return lmdb_fail(lf, mrc, "unmark dataset");
		c->finished = 1;
	}
out:
	mdb_cursor_close(cur);
	return rc;
}

static int reclaim(struct store *s, uint32_t ds, struct err *e)
{
	struct reclaim_ctx c = { ds, 0 };
	int rc;

	/* Every batch either deletes keys or finishes, so this ends. */
	do
		rc = txn_write(s, "reclaim deleted dataset", reclaim_body, &c, e);
	while (rc == 0 && !c.finished);
	return rc;
}

int store_dataset_delete(struct store *s, const char *name, struct err *e)
{
	struct drop_ctx c = { name, 0 };
	int rc;

	if (!store_name_valid(name))
		return err_set(e, ERR_NOT_FOUND, "dataset_not_found", "no dataset named '%s'",
		               name ? name : "");
	rc = txn_write(s, "delete dataset", drop_body, &c, e);
	if (rc == 0)
		rc = reclaim(s, c.ds, e);
	return rc;
}

/* ---- row arrays (internal) ----------------------------------------------------------- */

static void key_array(unsigned char *k, uint32_t ds, uint32_t arr, uint64_t block)
{
	be32_put(k, ds);
	be32_put(k + 4, arr);
	be64_put(k + 8, block);
}

/* A block of another size: a caller that changed the element size of an array (the store
 * does not record it), or corruption when no element size fits. */
static int array_bad_block(struct err *e, uint32_t ds, uint32_t arr, size_t got, size_t elem)
{
	size_t had = got / STORE_ARRAY_ROWS;

	if (got % STORE_ARRAY_ROWS == 0 && had >= 1 && had <= STORE_ELEM_MAX)
		return err_set(e, ERR_INVALID, "array_elem_size",
		               "array %u of dataset %u holds %zu-byte elements, not %zu",
		               (unsigned)arr, (unsigned)ds, had, elem);
	return corrupt(e, "a row array block has a bad size");
}

/* Write n elements at rows [first, first + n): whole blocks are put directly, partial ones
 * read-modify-written. buf: scratch of STORE_ARRAY_ROWS * elem bytes. */
static int array_put_txn(struct store *s, MDB_txn *txn, uint32_t ds, uint32_t arr, size_t elem,
                         uint64_t first, size_t n, const void *data, unsigned char *buf,
                         struct lmdb_fail *lf, struct err *e)
{
	const size_t bb = STORE_ARRAY_ROWS * elem;
	const unsigned char *src = data;
	uint64_t row = first, end = first + n;

	while (row < end) {
		uint64_t block = row / STORE_ARRAY_ROWS, b0 = block * STORE_ARRAY_ROWS;
		size_t off = (size_t)(row - b0);
		size_t cnt = (size_t)((end - row) < STORE_ARRAY_ROWS - off ? end - row
		                                                          : STORE_ARRAY_ROWS - off);
		unsigned char k[STORE_KEY_ARRAY];
		MDB_val key, val;
		int mrc;

		key_array(k, ds, arr, block);
		key = mval(k, sizeof k);
		if (cnt < STORE_ARRAY_ROWS) {
			mrc = mdb_get(txn, s->arrays, &key, &val);
			if (mrc == 0) {
				if (val.mv_size != bb)
					return array_bad_block(e, ds, arr, val.mv_size, elem);
				memcpy(buf, val.mv_data, bb);
			} else if (mrc == MDB_NOTFOUND) {
				memset(buf, 0, bb);
			} else {
				return lmdb_fail(lf, mrc, "read row array");
			}
			memcpy(buf + off * elem, src, cnt * elem);
			val = mval(buf, bb);
			mrc = mdb_put(txn, s->arrays, &key, &val, 0);
		} else {
			val = mval(NULL, bb);
			mrc = mdb_put(txn, s->arrays, &key, &val, MDB_RESERVE);
			if (mrc == 0)
				memcpy(val.mv_data, src, bb);
		}
		if (mrc != 0)
			return lmdb_fail(lf, mrc, "write row array");
		src += cnt * elem;
		row += cnt;
	}
	return 0;
}

static int array_get_txn(struct store *s, MDB_txn *txn, uint32_t ds, uint32_t arr, size_t elem,
                         uint64_t first, size_t n, void *out, struct lmdb_fail *lf,
                         struct err *e)
{
	const size_t bb = STORE_ARRAY_ROWS * elem;
	unsigned char *dst = out;
	uint64_t row = first, end = first + n;

	while (row < end) {
		uint64_t block = row / STORE_ARRAY_ROWS, b0 = block * STORE_ARRAY_ROWS;
		size_t off = (size_t)(row - b0);
		size_t cnt = (size_t)((end - row) < STORE_ARRAY_ROWS - off ? end - row
		                                                          : STORE_ARRAY_ROWS - off);
		unsigned char k[STORE_KEY_ARRAY];
		MDB_val key, val;
		int mrc;

		key_array(k, ds, arr, block);
		key = mval(k, sizeof k);
		mrc = mdb_get(txn, s->arrays, &key, &val);
		if (mrc == 0) {
			if (val.mv_size != bb)
				return array_bad_block(e, ds, arr, val.mv_size, elem);
			memcpy(dst, (const unsigned char *)val.mv_data + off * elem, cnt * elem);
		} else if (mrc == MDB_NOTFOUND) {
			memset(dst, 0, cnt * elem);
		} else {
			return lmdb_fail(lf, mrc, "read row array");
		}
		dst += cnt * elem;
		row += cnt;
	}
	return 0;
}

static int array_drop_txn(struct store *s, MDB_txn *txn, uint32_t ds, uint32_t arr,
                          struct lmdb_fail *lf)
{
	unsigned char pk[8];
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int mrc;

	be32_put(pk, ds);
	be32_put(pk + 4, arr);
	if ((mrc = mdb_cursor_open(txn, s->arrays, &cur)) != 0)
		return lmdb_fail(lf, mrc, "open cursor");
	for (;;) {
		k = mval(pk, sizeof pk);
		mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (mrc != 0 || k.mv_size < sizeof pk || memcmp(k.mv_data, pk, sizeof pk) != 0)
			break;
		if ((mrc = mdb_cursor_del(cur, 0)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return mrc != 0 && mrc != MDB_NOTFOUND ? lmdb_fail(lf, mrc, "drop row array") : 0;
}

/* Set the live flag (u8) of rows (n of them, ascending; repeats allowed) to v: one
 * read-modify-write per touched block, and no write for a block that already holds v. */
static int live_set(struct store *s, MDB_txn *txn, uint32_t ds, const uint64_t *rows, size_t n,
                    uint8_t v, struct lmdb_fail *lf, struct err *e)
{
	unsigned char buf[STORE_ARRAY_ROWS];
	size_t i = 0;

	while (i < n) {
		uint64_t block = rows[i] / STORE_ARRAY_ROWS;
		unsigned char k[STORE_KEY_ARRAY];
		MDB_val key, val;
		int mrc, changed = 0;

		key_array(k, ds, STORE_ARRAY_LIVE, block);
		key = mval(k, sizeof k);
		mrc = mdb_get(txn, s->arrays, &key, &val);
		if (mrc == 0) {
			if (val.mv_size != sizeof buf)
				return corrupt(e, "the live array has a bad block size");
			memcpy(buf, val.mv_data, sizeof buf);
		} else if (mrc == MDB_NOTFOUND) {
			memset(buf, 0, sizeof buf);
		} else {
			return lmdb_fail(lf, mrc, "read live array");
		}
		for (; i < n && rows[i] / STORE_ARRAY_ROWS == block; i++) {
			changed |= buf[rows[i] % STORE_ARRAY_ROWS] != v;
			buf[rows[i] % STORE_ARRAY_ROWS] = v;
		}
		if (!changed)
			continue;
		val = mval(NULL, sizeof buf);
		if ((mrc = mdb_put(txn, s->arrays, &key, &val, MDB_RESERVE)) != 0)
			return lmdb_fail(lf, mrc, "write live array");
		memcpy(val.mv_data, buf, sizeof buf);
	}
	return 0;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* ---- records ------------------------------------------------------------------------- */

/* One vector write (or clear, when the record has no vector for the space) of a chunk. */
struct vent {
	uint64_t row;
	size_t rec; /* index in the call's records */
};

struct put_ctx {
	const struct store_record *recs;
	size_t n, start, max, done;
	uint32_t ds;
	unsigned nspaces;
	size_t vbytes[STORE_MAX_SPACES];
	struct vent *ent; /* nspaces runs of cap entries */
	size_t cap;
	unsigned char *block; /* one block being rebuilt */
	uint64_t *live;       /* the chunk's rows, cap entries, for the live array */
	uint64_t *rows_out;   /* the caller's, or NULL */
};

static int vent_cmp(const void *a, const void *b)
{
	const struct vent *x = a, *y = b;

	if (x->row != y->row)
		return x->row < y->row ? -1 : 1;
	return x->rec < y->rec ? -1 : x->rec > y->rec;
}

/* Put a row-keyed value. A new row has the largest row number of its dataset, so when
 * its dataset is also the last in key order MDB_APPEND applies and keeps pages full (a
 * plain put of ascending keys leaves them half empty, doubling the bytes each commit
 * writes). LMDB refuses the append with MDB_KEYEXIST when the key is not the largest;
 * then a plain put does it. */
static int put_row(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val, unsigned flags,
                   int is_new)
{
	MDB_val v = *val;
	int mrc;

	if (is_new) {
		mrc = mdb_put(txn, dbi, key, val, flags | MDB_APPEND);
		if (mrc != MDB_KEYEXIST)
			return mrc;
		*val = v;
	}
	return mdb_put(txn, dbi, key, val, flags);
}

/* Rebuild each block the chunk touches in space sp once: old value (if any) into the
 * buffer, all of the chunk's rows applied in record order (so later duplicates win),
 * one put, or a delete when no row of the block keeps a vector. */
static int put_space(struct store *s, MDB_txn *txn, struct put_ctx *c, unsigned sp,
                     struct vent *ent, size_t cnt, struct lmdb_fail *lf, struct err *e)
{
	size_t vb = c->vbytes[sp], bb = STORE_MASK_BYTES + STORE_BLOCK_ROWS * vb;
	unsigned char *buf = c->block;
	size_t i;

	for (i = 1; i < cnt; i++)
		if (vent_cmp(&ent[i - 1], &ent[i]) > 0)
			break;
	if (i < cnt)
		qsort(ent, cnt, sizeof *ent, vent_cmp);
	i = 0;
	while (i < cnt) {
		uint64_t block = ent[i].row / STORE_BLOCK_ROWS, mask = 0;
		unsigned char k[STORE_KEY_BLOCK];
		MDB_val key, val;
		int existed = 0, mrc;

		key_block(k, c->ds, sp, block);
		key = mval(k, sizeof k);
		mrc = mdb_get(txn, s->vecs, &key, &val);
		if (mrc == 0) {
			if (val.mv_size != bb)
				return err_set(e, ERR_STORE, "storage_corrupt",
				               "dataset %u space %u block %llu has a bad size",
				               (unsigned)c->ds, sp, (unsigned long long)block);
			memcpy(buf, val.mv_data, bb);
			mask = vec_le64_get(buf);
			existed = 1;
		} else if (mrc == MDB_NOTFOUND) {
			memset(buf, 0, bb);
		} else {
			return lmdb_fail(lf, mrc, "read vector block");
		}
		for (; i < cnt && ent[i].row / STORE_BLOCK_ROWS == block; i++) {
			unsigned slot = (unsigned)(ent[i].row % STORE_BLOCK_ROWS);
			const void *src = c->recs[ent[i].rec].vec[sp];
			unsigned char *dst = buf + STORE_MASK_BYTES + slot * vb;

			if (src != NULL) {
				memcpy(dst, src, vb);
				mask |= (uint64_t)1 << slot;
			} else {
				memset(dst, 0, vb);
				mask &= ~((uint64_t)1 << slot);
			}
		}
		if (mask == 0) {
			mrc = existed ? mdb_del(txn, s->vecs, &key, NULL) : 0;
		} else {
			vec_le64_put(buf, mask);
			val = mval(buf, bb);
			mrc = mdb_put(txn, s->vecs, &key, &val, 0);
		}
		if (mrc != 0)
			return lmdb_fail(lf, mrc, "write vector block");
	}
	return 0;
}

static int put_chunk(struct store *s, MDB_txn *txn, void *arg, struct lmdb_fail *lf,
                     struct err *e)
{
	struct put_ctx *c = arg;
	size_t cnt[STORE_MAX_SPACES] = { 0 };
	uint64_t last_block[STORE_MAX_SPACES];
	uint64_t next_row = 0, records = 0;
	unsigned char idk[STORE_KEY_DS + STORE_ID_MAX], rk[STORE_KEY_ROW], rowv[8];
	size_t bytes = 0, i;
	int rc;

	c->done = 0;
	rc = stat_get(s, txn, c->ds, &next_row, &records, lf, e);
	if (rc != 0)
		return rc;
	for (unsigned sp = 0; sp < c->nspaces; sp++)
		last_block[sp] = UINT64_MAX;
	key_ds(idk, c->ds);
	/* Rows, bodies and ids first; vectors are only collected, then written per block. */
	for (i = c->start; i < c->n && i - c->start < c->max && bytes < STORE_CHUNK_BYTES; i++) {
		const struct store_record *r = &c->recs[i];
		MDB_val key, val;
		uint64_t row;
		int is_new, mrc;

		memcpy(idk + STORE_KEY_DS, r->id, r->id_len);
		key = mval(idk, STORE_KEY_DS + r->id_len);
		vec_le64_put(rowv, next_row);
		val = mval(rowv, sizeof rowv);
		/* One lookup for both cases: an existing id hands back its row (this txn's
		 * own earlier writes included, so an in-chunk duplicate gets the same row). */
		mrc = mdb_put(txn, s->ids, &key, &val, MDB_NOOVERWRITE);
		if (mrc == 0) {
			row = next_row++;
			records++;
			is_new = 1;
		} else if (mrc == MDB_KEYEXIST && val.mv_size == 8) {
			row = vec_le64_get(val.mv_data);
			is_new = 0;
		} else {
			return mrc == MDB_KEYEXIST
			               ? corrupt(e, "an id entry")
			               : lmdb_fail(lf, mrc, "write id");
		}
		key_row(rk, c->ds, row);
		key = mval(rk, sizeof rk);
		val = mval(NULL, 1 + r->id_len);
		if ((mrc = put_row(txn, s->rows, &key, &val, MDB_RESERVE, is_new)) != 0)
			return lmdb_fail(lf, mrc, "write row");
		((unsigned char *)val.mv_data)[0] = (unsigned char)r->kind;
		memcpy((unsigned char *)val.mv_data + 1, r->id, r->id_len);
		val = mval(r->body ? r->body : "", r->body ? r->body_len : 0);
		if ((mrc = put_row(txn, s->recs, &key, &val, 0, is_new)) != 0)
			return lmdb_fail(lf, mrc, "write record");
		bytes += 2 * r->id_len + r->body_len + 64;
		c->live[i - c->start] = row;
		if (c->rows_out != NULL)
			c->rows_out[i] = row;
		for (unsigned sp = 0; sp < c->nspaces; sp++) {
			uint64_t block = row / STORE_BLOCK_ROWS;

			/* A new row has no old vector to clear. */
			if (r->vec[sp] == NULL && is_new)
				continue;
			c->ent[sp * c->cap + cnt[sp]].row = row;
			c->ent[sp * c->cap + cnt[sp]].rec = i;
			cnt[sp]++;
			/* Budget a whole block each time the run of blocks changes: exact for
			 * sequential ingest, an overestimate for scattered upserts. */
			if (block != last_block[sp]) {
				bytes += STORE_MASK_BYTES + STORE_BLOCK_ROWS * c->vbytes[sp];
				last_block[sp] = block;
			}
		}
	}
	c->done = i - c->start;
	/* Rows of new records ascend already; scattered upserts need the sort for live_set. */
	for (i = 1; i < c->done && c->live[i - 1] <= c->live[i]; i++)
		;
	if (i < c->done)
		qsort(c->live, c->done, sizeof *c->live, u64_cmp);
	for (unsigned sp = 0; sp < c->nspaces; sp++) {
		if (cnt[sp] == 0)
			continue;
		rc = put_space(s, txn, c, sp, c->ent + sp * c->cap, cnt[sp], lf, e);
		if (rc != 0)
			return rc;
	}
	rc = live_set(s, txn, c->ds, c->live, c->done, 1, lf, e);
	if (rc != 0)
		return rc;
	return stat_put(s, txn, c->ds, next_row, records, lf);
}

/* Read the dataset's header in a read transaction: its schema cannot change, only the
 * dataset can disappear, which every write transaction checks again. */
static int ds_info(struct store *s, uint32_t ds, struct store_dataset_info *info, const char *op,
                   struct err *e)
{
	struct lmdb_fail lf = { 0, NULL };
	MDB_txn *txn = NULL;
	int rc;

	rc = txn_read_begin(s, &txn, op, e);
	if (rc != 0)
		return rc;
	rc = ds_load(s, txn, ds, info, &lf, e);
	txn_read_end(s, txn);
	if (rc == ERR_STORE && lf.rc != 0)
		rc = lmdb_err(e, op, &lf);
	return rc;
}

/* Write every chunk of c, each in its own transaction (smaller chunks on MDB_TXN_FULL). */
static int put_single(struct store *s, struct put_ctx *c, struct err *e)
{
	int rc = 0;

	c->start = 0;
	c->max = STORE_CHUNK_RECORDS;
	while (c->start < c->n) {
		struct lmdb_fail lf = { 0, NULL };

		rc = txn_write_raw(s, put_chunk, c, &lf, e);
		if (rc == ERR_STORE && lf.rc == MDB_TXN_FULL && c->max > 1) {
			c->max /= 2; /* too many dirty pages for one txn: smaller chunks */
			continue;
		}
		if (rc != 0) {
			if (rc == ERR_STORE && lf.rc != 0)
				rc = lmdb_err(e, "write records", &lf);
			return rc;
		}
		c->start += c->done;
	}
	return 0;
}

/* ---- group commit ----
 * Concurrent small calls (ingest requests) share one transaction: the first caller that finds
 * no leader becomes it, takes the queued calls (up to one chunk's budget), writes them all and
 * commits once, then wakes the others. A durable commit costs two fsyncs whatever its size, so
 * N requests in flight pay for one commit instead of N. Each call still returns only after its
 * records are committed. If the shared transaction fails, the leader writes each call on its
 * own, so that one call's error (a deleted dataset, a full transaction) is that call's only. */
struct put_req {
	struct put_ctx c;
	size_t bytes; /* estimated, for the group's budget */
	int rc;
	struct err err;
	int done;
	struct put_req *next;
};

static int group_body(struct store *s, MDB_txn *txn, void *arg, struct lmdb_fail *lf,
                      struct err *e)
{
	for (struct put_req *r = arg; r != NULL; r = r->next) {
		int rc;

		r->c.start = 0;
		r->c.max = STORE_CHUNK_RECORDS;
		if ((rc = put_chunk(s, txn, &r->c, lf, e)) != 0)
			return rc;
		if (r->c.done != r->c.n) /* over a chunk's budget: write it alone */
			return ERR_TOO_LARGE;
	}
	return 0;
}

/* The leader's work: the group in one transaction, else each call alone. */
static void group_write(struct store *s, struct put_req *group)
{
	struct lmdb_fail lf = { 0, NULL };
	struct err e;
	int rc = ERR_INTERNAL;

	if (group->next != NULL) {
		err_clear(&e);
		rc = txn_write_raw(s, group_body, group, &lf, &e);
	}
	for (struct put_req *r = group; r != NULL; r = r->next)
		r->rc = rc == 0 ? 0 : put_single(s, &r->c, &r->err);
}

int store_put_records(struct store *s, uint32_t ds_id, const struct store_record *recs, size_t n,
                      uint64_t *rows_out, struct err *e)
{
	struct store_dataset_info info;
	struct put_req req;
	struct put_ctx *c = &req.c;
	size_t max_vec = 0;
	int rc;

	memset(&req, 0, sizeof req);
	for (size_t i = 0; i < n; i++)
		if (recs[i].id == NULL || recs[i].id_len == 0 || recs[i].id_len > STORE_ID_MAX)
			return err_set(e, ERR_INVALID, "bad_record_id",
			               "record %zu: ids are 1 to %d bytes", i, STORE_ID_MAX);
	rc = ds_info(s, ds_id, &info, "write records", e);
	if (rc != 0 || n == 0)
		return rc;
	c->recs = recs;
	c->n = n;
	c->max = STORE_CHUNK_RECORDS;
	c->ds = ds_id;
	c->nspaces = info.schema.nspaces;
	c->cap = n < STORE_CHUNK_RECORDS ? n : STORE_CHUNK_RECORDS;
	for (unsigned sp = 0; sp < c->nspaces; sp++) {
		c->vbytes[sp] = store_space_bytes(&info.schema.spaces[sp]);
		if (c->vbytes[sp] > max_vec)
			max_vec = c->vbytes[sp];
		req.bytes += n * c->vbytes[sp];
	}
	for (size_t i = 0; i < n; i++)
		req.bytes += 2 * recs[i].id_len + recs[i].body_len + 64;
	c->ent = malloc((c->nspaces ? c->nspaces : 1) * c->cap * sizeof *c->ent);
	c->block = malloc(STORE_MASK_BYTES + STORE_BLOCK_ROWS * max_vec);
	c->live = malloc(c->cap * sizeof *c->live);
	c->rows_out = rows_out;
	if (c->ent == NULL || c->block == NULL || c->live == NULL) {
		rc = nomem(e, "writing records");
		goto out;
	}
	if (n > STORE_CHUNK_RECORDS || req.bytes > STORE_CHUNK_BYTES) {
		rc = put_single(s, c, e); /* a large call commits in chunks of its own */
		goto out;
	}
	pthread_mutex_lock(&s->mu);
	if (s->gtail != NULL)
		s->gtail->next = &req;
	else
		s->ghead = &req;
	s->gtail = &req;
	while (!req.done) {
		struct put_req *group, *last, *r;
		size_t recs_in = 0, bytes_in = 0;

		if (s->gleader) {
			pthread_cond_wait(&s->gcv, &s->mu);
			continue;
		}
		/* lead: take queued calls while they fit in one chunk's budget */
		s->gleader = 1;
		group = last = s->ghead;
		for (r = s->ghead; r != NULL; r = r->next) {
			if (r != group && (recs_in + r->c.n > STORE_CHUNK_RECORDS ||
			                   bytes_in + r->bytes > STORE_CHUNK_BYTES))
				break;
			recs_in += r->c.n;
			bytes_in += r->bytes;
			last = r;
		}
		s->ghead = last->next;
		if (s->ghead == NULL)
			s->gtail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&s->mu);
		group_write(s, group);
		pthread_mutex_lock(&s->mu);
		for (r = group; r != NULL; r = r->next)
			r->done = 1;
		s->gleader = 0;
		pthread_cond_broadcast(&s->gcv);
	}
	pthread_mutex_unlock(&s->mu);
	rc = req.rc;
	if (rc != 0 && e != NULL && req.err.code != 0)
		*e = req.err;
out:
	free(c->ent);
	free(c->block);
	free(c->live);
	return rc;
}

void store_record_out_free(struct store_record_out *r)
{
	if (r == NULL)
		return;
	free(r->body);
	for (unsigned i = 0; i < STORE_MAX_SPACES; i++)
		free(r->vec[i]);
	memset(r, 0, sizeof *r);
}

/* Find the row of id; ERR_NOT_FOUND if none. */
static int row_of(struct store *s, MDB_txn *txn, uint32_t ds, const char *id, size_t id_len,
                  uint64_t *row, struct lmdb_fail *lf, struct err *e)
{
	unsigned char k[STORE_KEY_DS + STORE_ID_MAX];
	MDB_val key, val;
	int mrc;

	if (id == NULL || id_len == 0 || id_len > STORE_ID_MAX)
		return err_set(e, ERR_NOT_FOUND, "record_not_found", "no record with that id");
	key_ds(k, ds);
	memcpy(k + STORE_KEY_DS, id, id_len);
	key = mval(k, STORE_KEY_DS + id_len);
	mrc = mdb_get(txn, s->ids, &key, &val);
	if (mrc == MDB_NOTFOUND)
		return err_set(e, ERR_NOT_FOUND, "record_not_found", "no record with id '%.*s'",
		               (int)(id_len > 64 ? 64 : id_len), id);
	if (mrc != 0)
		return lmdb_fail(lf, mrc, "read id");
	if (val.mv_size != 8)
		return corrupt(e, "an id entry");
	*row = vec_le64_get(val.mv_data);
	return 0;
}

static int get_body(struct store *s, MDB_txn *txn, uint32_t ds, const char *id, size_t id_len,
                    int with_vectors, struct store_record_out *out, struct lmdb_fail *lf,
                    struct err *e)
{
	struct store_dataset_info info;
	unsigned char rk[STORE_KEY_ROW];
	MDB_val key, val;
	int rc, mrc;

	rc = ds_load(s, txn, ds, &info, lf, e);
	if (rc == 0)
		rc = row_of(s, txn, ds, id, id_len, &out->row, lf, e);
	if (rc != 0)
		return rc;
	key_row(rk, ds, out->row);
	key = mval(rk, sizeof rk);
	mrc = mdb_get(txn, s->rows, &key, &val);
	if (mrc != 0 || val.mv_size < 1)
		return mrc && mrc != MDB_NOTFOUND
		               ? lmdb_fail(lf, mrc, "read row")
		               : corrupt(e, "a row entry is missing");
	out->kind = ((const unsigned char *)val.mv_data)[0];
	mrc = mdb_get(txn, s->recs, &key, &val);
	if (mrc != 0)
		return mrc != MDB_NOTFOUND
		               ? lmdb_fail(lf, mrc, "read record")
		               : corrupt(e, "a record body is missing");
	out->body = malloc(val.mv_size + 1);
	if (out->body == NULL)
		return nomem(e, "reading a record");
	memcpy(out->body, val.mv_data, val.mv_size);
	out->body[val.mv_size] = '\0';
	out->body_len = val.mv_size;
	for (unsigned sp = 0; with_vectors && sp < info.schema.nspaces; sp++) {
		size_t vb = store_space_bytes(&info.schema.spaces[sp]);
		unsigned slot = (unsigned)(out->row % STORE_BLOCK_ROWS);
		unsigned char bk[STORE_KEY_BLOCK];

		key_block(bk, ds, sp, out->row / STORE_BLOCK_ROWS);
		key = mval(bk, sizeof bk);
		mrc = mdb_get(txn, s->vecs, &key, &val);
		if (mrc == MDB_NOTFOUND)
			continue;
		if (mrc != 0)
			return lmdb_fail(lf, mrc, "read vector block");
		if (val.mv_size != STORE_MASK_BYTES + STORE_BLOCK_ROWS * vb)
			return corrupt(e, "a vector block has a bad size");
		if (!(vec_le64_get(val.mv_data) >> slot & 1))
			continue;
		out->vec[sp] = malloc(vb);
		if (out->vec[sp] == NULL)
			return nomem(e, "reading a record");
		memcpy(out->vec[sp],
		       (const unsigned char *)val.mv_data + STORE_MASK_BYTES + slot * vb, vb);
	}
	return 0;
}

int store_get_record(struct store *s, uint32_t ds_id, const char *id, size_t id_len,
                     int with_vectors, struct store_record_out *out, struct err *e)
{
	struct store_record_out r;
	struct lmdb_fail lf = { 0, NULL };
	MDB_txn *txn = NULL;
	int rc;

	memset(&r, 0, sizeof r);
	rc = txn_read_begin(s, &txn, "read record", e);
	if (rc != 0)
		return rc;
	rc = get_body(s, txn, ds_id, id, id_len, with_vectors, &r, &lf, e);
	txn_read_end(s, txn);
	if (rc != 0) {
		store_record_out_free(&r);
		if (rc == ERR_STORE && lf.rc != 0)
			rc = lmdb_err(e, "read record", &lf);
		return rc;
	}
	*out = r;
	return 0;
}

struct del_ctx {
	uint32_t ds;
	const char *id;
	size_t id_len;
	unsigned char *buf; /* survives retries; freed by the caller */
	size_t cap;
	uint64_t row; /* out: the deleted record's row */
};

/* Make *buf hold at least n bytes (a scratch buffer kept across calls). 0 or -1. */
static int buf_reserve(unsigned char **buf, size_t *cap, size_t n)
{
	unsigned char *grown;

	if (*cap >= n)
		return 0;
	grown = realloc(*buf, n);
	if (grown == NULL)
		return -1;
	*buf = grown;
	*cap = n;
	return 0;
}

static int del_body(struct store *s, MDB_txn *txn, void *arg, struct lmdb_fail *lf,
                    struct err *e)
{
	struct del_ctx *c = arg;
	struct store_dataset_info info;
	unsigned char idk[STORE_KEY_DS + STORE_ID_MAX], rk[STORE_KEY_ROW];
	MDB_val key, val;
	uint64_t row;
	int rc, mrc;

	rc = ds_load(s, txn, c->ds, &info, lf, e);
	if (rc == 0)
		rc = row_of(s, txn, c->ds, c->id, c->id_len, &row, lf, e);
	if (rc != 0)
		return rc;
	c->row = row;
	key_ds(idk, c->ds);
	memcpy(idk + STORE_KEY_DS, c->id, c->id_len);
	key = mval(idk, STORE_KEY_DS + c->id_len);
	if ((mrc = mdb_del(txn, s->ids, &key, NULL)) != 0)
		return lmdb_fail(lf, mrc, "delete id");
	key_row(rk, c->ds, row);
	key = mval(rk, sizeof rk);
	mrc = mdb_del(txn, s->rows, &key, NULL);
	if (mrc == 0 || mrc == MDB_NOTFOUND)
		mrc = mdb_del(txn, s->recs, &key, NULL);
	if (mrc != 0 && mrc != MDB_NOTFOUND)
		return lmdb_fail(lf, mrc, "delete record");
	for (unsigned sp = 0; sp < info.schema.nspaces; sp++) {
		size_t vb = store_space_bytes(&info.schema.spaces[sp]);
		size_t bb = STORE_MASK_BYTES + STORE_BLOCK_ROWS * vb;
		unsigned slot = (unsigned)(row % STORE_BLOCK_ROWS);
		unsigned char bk[STORE_KEY_BLOCK];
		uint64_t mask;

		key_block(bk, c->ds, sp, row / STORE_BLOCK_ROWS);
		key = mval(bk, sizeof bk);
		mrc = mdb_get(txn, s->vecs, &key, &val);
		if (mrc == MDB_NOTFOUND)
			continue;
		if (mrc != 0)
			return lmdb_fail(lf, mrc, "read vector block");
		if (val.mv_size != bb)
			return corrupt(e, "a vector block has a bad size");
		mask = vec_le64_get(val.mv_data);
		if (!(mask >> slot & 1))
			continue;
		mask &= ~((uint64_t)1 << slot);
		if (mask == 0) {
			mrc = mdb_del(txn, s->vecs, &key, NULL);
		} else {
			if (buf_reserve(&c->buf, &c->cap, bb) != 0)
				return nomem(e, "deleting a record");
			memcpy(c->buf, val.mv_data, bb);
			vec_le64_put(c->buf, mask);
			memset(c->buf + STORE_MASK_BYTES + slot * vb, 0, vb);
			val = mval(c->buf, bb);
			mrc = mdb_put(txn, s->vecs, &key, &val, 0);
		}
		if (mrc != 0)
			return lmdb_fail(lf, mrc, "write vector block");
	}
	rc = live_set(s, txn, c->ds, &row, 1, 0, lf, e);
	if (rc != 0)
		return rc;
	return stat_put(s, txn, c->ds, info.next_row, info.records ? info.records - 1 : 0, lf);
}

int store_delete_record(struct store *s, uint32_t ds_id, const char *id, size_t id_len,
                        uint64_t *row_out, struct err *e)
{
	struct del_ctx c = { ds_id, id, id_len, NULL, 0, 0 };
	int rc;

	rc = txn_write(s, "delete record", del_body, &c, e);
	free(c.buf);
	if (rc == 0 && row_out != NULL)
		*row_out = c.row;
	return rc;
}

/* ---- environment --------------------------------------------------------------------- */

int store_stats(struct store *s, struct store_stats *out)
{
	MDB_envinfo info;
	MDB_stat est, dst;
	MDB_txn *txn = NULL;
	int rc, mrc;

	rc = txn_read_begin(s, &txn, "stats", NULL);
	if (rc != 0)
		return rc;
	mdb_env_info(s->env, &info);
	mrc = mdb_env_stat(s->env, &est);
	if (mrc == 0)
		mrc = mdb_stat(txn, s->datasets, &dst);
	txn_read_end(s, txn);
	if (mrc != 0)
		return ERR_STORE;
	out->map_size = info.me_mapsize;
	out->page_size = est.ms_psize;
	out->used_bytes = ((uint64_t)info.me_last_pgno + 1) * est.ms_psize;
	out->datasets = (unsigned)dst.ms_entries;
	return 0;
}

static int mkdir_p(const char *dir, struct err *e)
{
	char *path = strdup(dir);
	struct stat st;
	int rc = 0;

	if (path == NULL)
		return nomem(e, "creating the data directory");
	/* Each prefix ending before a '/', then the whole path. */
	for (char *p = path + 1;; p++) {
		char c = *p;

		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		if (mkdir(path, 0750) != 0 && errno != EEXIST) {
			rc = err_set(e, ERR_IO, "data_dir", "cannot create data directory %s: %s",
			             path, strerror(errno));
			goto out;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		rc = err_set(e, ERR_IO, "data_dir", "data directory %s is not a directory", dir);
out:
	free(path);
	return rc;
}

static int data_file_exists(const char *dir)
{
	char path[4096];
	struct stat st;

	if ((size_t)snprintf(path, sizeof path, "%s/data.mdb", dir) >= sizeof path)
		return 0;
	return stat(path, &st) == 0 && st.st_size > 0;
}

struct open_ctx {
	const char *dir;
	uint32_t version; /* as found (or created) */
};

static int open_body(struct store *s, MDB_txn *txn, void *arg, struct lmdb_fail *lf,
                     struct err *e)
{
	struct open_ctx *c = arg;
	struct {
		const char *name;
		MDB_dbi *dbi;
	} dbs[] = {
		{ "datasets", &s->datasets }, { "dsname", &s->dsname }, { "dsstat", &s->dsstat },
		{ "ids", &s->ids },           { "rows", &s->rows },     { "recs", &s->recs },
		{ "vecs", &s->vecs },         { "trash", &s->trash },   { "arrays", &s->arrays },
		{ "docs", &s->docs },
	};
	unsigned char v4[4];
	MDB_val key, val;
	uint32_t version;
	int mrc;

	/* meta first: a newer format must be refused before anything is created. */
	if ((mrc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0)
		return lmdb_fail(lf, mrc, "open database meta");
	key = mval("format_version", strlen("format_version"));
	mrc = mdb_get(txn, s->meta, &key, &val);
	if (mrc == MDB_NOTFOUND) {
		vec_le32_put(v4, STORE_FORMAT_VERSION);
		val = mval(v4, sizeof v4);
		if ((mrc = mdb_put(txn, s->meta, &key, &val, 0)) != 0)
			return lmdb_fail(lf, mrc, "write format version");
		version = STORE_FORMAT_VERSION;
	} else if (mrc != 0) {
		return lmdb_fail(lf, mrc, "read format version");
	} else if (val.mv_size != 4) {
		return err_set(e, ERR_STORE, "storage_corrupt",
		               "data directory %s: format_version is corrupt", c->dir);
	} else {
		version = vec_le32_get(val.mv_data);
	}
	if (version > STORE_FORMAT_VERSION)
		return err_set(e, ERR_VERSION, "version_mismatch",
		               "data directory %s was written by a newer winnow (format %u, this "
		               "build reads up to %d)",
		               c->dir, (unsigned)version, STORE_FORMAT_VERSION);
	key = mval("next_dataset_id", strlen("next_dataset_id"));
	mrc = mdb_get(txn, s->meta, &key, &val);
	if (mrc == MDB_NOTFOUND) {
		vec_le32_put(v4, 1); /* ids start at 1 so that 0 never names a dataset */
		val = mval(v4, sizeof v4);
		mrc = mdb_put(txn, s->meta, &key, &val, 0);
	}
	if (mrc != 0)
		return lmdb_fail(lf, mrc, "init next dataset id");
	for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++)
		if ((mrc = mdb_dbi_open(txn, dbs[i].name, MDB_CREATE, dbs[i].dbi)) != 0)
			return lmdb_fail(lf, mrc, "open database");
	c->version = version;
	return 0;
}

/* ---- format migration ------------------------------------------------------------------ */

struct live_ctx {
	uint32_t ds;
	const uint64_t *rows;
	size_t n;
};

static int live_body(struct store *s, MDB_txn *txn, void *arg, struct lmdb_fail *lf,
                     struct err *e)
{
	struct live_ctx *c = arg;

	return live_set(s, txn, c->ds, c->rows, c->n, 1, lf, e);
}

static int live_drop_body(struct store *s, MDB_txn *txn, void *arg, struct lmdb_fail *lf,
                          struct err *e)
{
	struct live_ctx *c = arg;

	(void)e;
	return array_drop_txn(s, txn, c->ds, STORE_ARRAY_LIVE, lf);
}

static int version_body(struct store *s, MDB_txn *txn, void *arg, struct lmdb_fail *lf,
                        struct err *e)
{
	unsigned char v4[4];
	MDB_val key, val;
	int mrc;

	(void)arg;
	(void)e;
	vec_le32_put(v4, STORE_FORMAT_VERSION);
	key = mval("format_version", strlen("format_version"));
	val = mval(v4, sizeof v4);
	mrc = mdb_put(txn, s->meta, &key, &val, 0);
	return mrc ? lmdb_fail(lf, mrc, "write format version") : 0;
}

/* Read up to max live rows of ds from row first on, in one read transaction. */
static int rows_batch(struct store *s, uint32_t ds, uint64_t first, uint64_t *rows, size_t max,
                      size_t *n, struct err *e)
{
	unsigned char k[STORE_KEY_ROW];
	MDB_cursor *cur = NULL;
	MDB_txn *txn = NULL;
	MDB_val key, val;
	int rc, mrc;

	*n = 0;
	if ((rc = txn_read_begin(s, &txn, "migrate", e)) != 0)
		return rc;
	mrc = mdb_cursor_open(txn, s->rows, &cur);
	key_row(k, ds, first);
	key = mval(k, sizeof k);
	for (mrc = mrc ? mrc : mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	     mrc == 0 && *n < max; mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		if (key.mv_size != STORE_KEY_ROW || be32_get(key.mv_data) != ds)
			break;
		rows[(*n)++] = be64_get((const unsigned char *)key.mv_data + 4);
	}
	if (mrc != 0 && mrc != MDB_NOTFOUND)
		rc = lmdb_err_rc(e, "migrate", "iterate rows", mrc);
	mdb_cursor_close(cur);
	txn_read_end(s, txn);
	return rc;
}

/* Format 1 -> 2: build each dataset's live array from its rows, then write the new version
 * last, so that a crash midway simply migrates again. Each dataset's live array is dropped
 * first and rebuilt from scratch, so a rerun is exact even if a format 1 build deleted
 * records in between (setting flags alone would keep theirs at 1). Datasets in trash are
 * left to reclaim_trash, which deletes their arrays with the rest. */
static int migrate_v1(struct store *s, struct err *e)
{
	uint64_t *rows = malloc(STORE_MIGRATE_BATCH * sizeof *rows);
	uint32_t *dss = NULL;
	size_t nds = 0, cap = 0;
	MDB_cursor *cur = NULL;
	MDB_txn *txn = NULL;
	MDB_val k, v;
	int rc, mrc;

	if (rows == NULL)
		return nomem(e, "migrating the data directory");
	if ((rc = txn_read_begin(s, &txn, "migrate", e)) != 0)
		goto out;
	mrc = mdb_cursor_open(txn, s->dsstat, &cur);
	for (mrc = mrc ? mrc : mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != STORE_KEY_DS)
			continue;
		if (nds == cap) {
			uint32_t *g = realloc(dss, (cap = cap ? cap * 2 : 8) * sizeof *g);

			if (g == NULL) {
				rc = nomem(e, "migrating the data directory");
				break;
			}
			dss = g;
		}
		dss[nds++] = be32_get(k.mv_data);
	}
	if (rc == 0 && mrc != MDB_NOTFOUND)
		rc = lmdb_err_rc(e, "migrate", "list datasets", mrc);
	mdb_cursor_close(cur);
	txn_read_end(s, txn);
	for (size_t i = 0; rc == 0 && i < nds; i++) {
		struct live_ctx dc = { dss[i], NULL, 0 };
		uint64_t first = 0;
		size_t n;

		/* A dropped live array is at most 2,500 blocks per 10 million rows: one txn. */
		if ((rc = txn_write(s, "migrate", live_drop_body, &dc, e)) != 0)
			break;
		do {
			struct live_ctx c;

			rc = rows_batch(s, dss[i], first, rows, STORE_MIGRATE_BATCH, &n, e);
			if (rc != 0 || n == 0)
				break;
			c = (struct live_ctx){dss[i], rows, n};
			rc = txn_write(s, "migrate", live_body, &c, e);
			first = rows[n - 1] + 1;
		} while (rc == 0 && n == STORE_MIGRATE_BATCH);
	}
	if (rc == 0)
		rc = txn_write(s, "migrate", version_body, NULL, e);
out:
	free(rows);
	free(dss);
	return rc;
}

/* Finish the reclaim of datasets deleted before a crash. */
static int reclaim_trash(struct store *s, struct err *e)
{
	MDB_cursor *cur = NULL;
	MDB_txn *txn = NULL;
	uint32_t *ids = NULL, *grown;
	size_t len = 0, cap = 0;
	MDB_val k, v;
	int rc, mrc;

	rc = txn_read_begin(s, &txn, "read trash", e);
	if (rc != 0)
		return rc;
	mrc = mdb_cursor_open(txn, s->trash, &cur);
	for (mrc = mrc ? mrc : mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != STORE_KEY_DS)
			continue;
		if (len == cap) {
			cap = cap ? cap * 2 : 8;
			grown = realloc(ids, cap * sizeof *ids);
			if (grown == NULL) {
				rc = nomem(e, "reading the trash");
				break;
			}
			ids = grown;
		}
		ids[len++] = be32_get(k.mv_data);
	}
	if (rc == 0 && mrc != MDB_NOTFOUND)
		rc = lmdb_err_rc(e, "read trash", "iterate", mrc);
	mdb_cursor_close(cur);
	txn_read_end(s, txn);
	for (size_t i = 0; rc == 0 && i < len; i++)
		rc = reclaim(s, ids[i], e);
	free(ids);
	return rc;
}

int store_open(struct store **out, const struct store_config *cfg, struct err *e)
{
	size_t map_size = cfg && cfg->map_size ? cfg->map_size : STORE_DEFAULT_MAP_SIZE;
	struct open_ctx oc;
	struct store *s = NULL;
	pthread_condattr_t ca;
	unsigned readers;
	long ncpu;
	int rc, mrc, dead = 0, existing;

	if (out == NULL || cfg == NULL || cfg->dir == NULL || cfg->dir[0] == '\0')
		return err_set(e, ERR_INVALID, "data_dir", "no data directory given");
	rc = mkdir_p(cfg->dir, e);
	if (rc != 0)
		return rc;
	s = calloc(1, sizeof *s);
	if (s == NULL || (s->dir = strdup(cfg->dir)) == NULL) {
		free(s);
		return nomem(e, "opening the store");
	}
	if (pthread_condattr_init(&ca) != 0) {
		free(s->dir);
		free(s);
		return err_set(e, ERR_NOMEM, NULL, "cannot initialise a condition variable");
	}
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_mutex_init(&s->mu, NULL) != 0 || pthread_cond_init(&s->cv, &ca) != 0 ||
	    pthread_cond_init(&s->gcv, NULL) != 0) {
		pthread_condattr_destroy(&ca);
		free(s->dir);
		free(s); /* a half-initialised pair: nothing worth destroying on Linux */
		return err_set(e, ERR_NOMEM, NULL, "cannot initialise the store's lock");
	}
	pthread_condattr_destroy(&ca);
	s->sync_ready = 1;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	mrc = mdb_env_create(&s->env);
	if (mrc == 0)
		mrc = mdb_env_set_maxdbs(s->env, STORE_MAXDBS);
	/* Reader slots are cheap (64 bytes each in lock.mdb) and running out of them fails
	 * requests, so the default is generous: LMDB's 126 plus 8 per CPU for our threads. */
	readers = cfg->max_readers ? cfg->max_readers : 126 + 8 * (unsigned)(ncpu > 0 ? ncpu : 1);
	if (mrc == 0)
		mrc = mdb_env_set_maxreaders(s->env, readers);
	/* The configured size is the initial one: an existing environment keeps the size
	 * it grew to (LMDB would otherwise shrink the map to the data and regrow it). */
	existing = data_file_exists(cfg->dir);
	if (mrc == 0 && !existing)
		mrc = mdb_env_set_mapsize(s->env, map_size);
	/* MDB_NOTLS: a read transaction (a store_reader) may move between threads, and
	 * reader slots belong to transactions, not threads. Syncs stay on: durability. */
	if (mrc == 0)
		mrc = mdb_env_open(s->env, cfg->dir, MDB_NOTLS, 0640);
	if (mrc == 0 && existing) {
		MDB_envinfo info;

		mdb_env_info(s->env, &info);
		if (info.me_mapsize < map_size)
			mrc = mdb_env_set_mapsize(s->env, map_size);
	}
	if (mrc != 0) {
		rc = err_set(e, ERR_STORE, "storage_error", "open LMDB environment in %s: %s",
		             cfg->dir, mdb_strerror(mrc));
		goto out;
	}
	/* Slots left by a process that died (kill -9) would pin old pages forever. */
	mdb_reader_check(s->env, &dead);
	oc.dir = cfg->dir;
	rc = txn_write(s, "open store", open_body, &oc, e);
	if (rc == 0 && oc.version < 2)
		rc = migrate_v1(s, e);
	if (rc == 0)
		rc = reclaim_trash(s, e);
out:
	if (rc != 0) {
		store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void store_close(struct store *s)
{
	if (s == NULL)
		return;
	if (s->env != NULL)
		mdb_env_close(s->env);
	if (s->sync_ready) {
		pthread_cond_destroy(&s->cv);
		pthread_cond_destroy(&s->gcv);
		pthread_mutex_destroy(&s->mu);
	}
	free(s->dir);
	free(s);
}

/* ---- readers ------------------------------------------------------------------------- */

int store_reader_open(struct store *s, struct store_reader **out, struct err *e)
{
	struct store_reader *r;
	int rc;

	r = calloc(1, sizeof *r);
	if (r == NULL)
		return nomem(e, "opening a reader");
	rc = txn_read_begin(s, &r->txn, "open reader", e);
	if (rc != 0) {
		free(r);
		return rc;
	}
	r->s = s;
	*out = r;
	return 0;
}

void store_reader_close(struct store_reader *r)
{
	if (r == NULL)
		return;
	/* Read-only transactions do not free their cursors. */
	mdb_cursor_close(r->rows);
	mdb_cursor_close(r->recs);
	txn_read_end(r->s, r->txn);
	free(r->buf);
	free(r);
}

int store_reader_rows(struct store_reader *r, uint32_t ds_id, uint64_t first, store_row_fn fn,
                      void *ctx, struct err *e)
{
	unsigned char k[STORE_KEY_ROW];
	MDB_val key, val, rkey, body;
	int rc = 0, mrc;

	if (r->rows == NULL && (mrc = mdb_cursor_open(r->txn, r->s->rows, &r->rows)) != 0)
		return lmdb_err_rc(e, "scan rows", "open cursor", mrc);
	if (r->recs == NULL && (mrc = mdb_cursor_open(r->txn, r->s->recs, &r->recs)) != 0)
		return lmdb_err_rc(e, "scan rows", "open cursor", mrc);
	key_row(k, ds_id, first);
	key = mval(k, sizeof k);
	for (mrc = mdb_cursor_get(r->rows, &key, &val, MDB_SET_RANGE); mrc == 0;
	     mrc = mdb_cursor_get(r->rows, &key, &val, MDB_NEXT)) {
		const unsigned char *kp = key.mv_data;

		if (key.mv_size != STORE_KEY_ROW || be32_get(kp) != ds_id)
			break;
		if (val.mv_size < 2)
			return corrupt(e, "a row entry");
		/* recs has the same keys as rows: MDB_SET on a positioned cursor first looks
		 * at its current page, so this costs little more than a lockstep walk. */
		rkey = key;
		mrc = mdb_cursor_get(r->recs, &rkey, &body, MDB_SET_KEY);
		if (mrc != 0)
			return mrc == MDB_NOTFOUND
			               ? corrupt(e, "a record body is missing")
			               : lmdb_err_rc(e, "scan rows", "read record", mrc);
		rc = fn(ctx, be64_get(kp + 4), ((const unsigned char *)val.mv_data)[0],
		        (const char *)val.mv_data + 1, val.mv_size - 1, body.mv_data, body.mv_size);
		if (rc != 0)
			return rc > 0 ? 0 : rc;
	}
	if (mrc != 0 && mrc != MDB_NOTFOUND)
		return lmdb_err_rc(e, "scan rows", "iterate", mrc);
	return 0;
}

int store_reader_block(struct store_reader *r, uint32_t ds_id, unsigned space, uint64_t block,
                       const void **data, uint64_t *present, struct err *e)
{
	unsigned char k[STORE_KEY_BLOCK];
	const unsigned char *p;
	MDB_val key, val;
	size_t n;
	int mrc;

	if (space >= STORE_MAX_SPACES)
		return ERR_NOT_FOUND;
	key_block(k, ds_id, space, block);
	key = mval(k, sizeof k);
	mrc = mdb_get(r->txn, r->s->vecs, &key, &val);
	/* An empty block is the normal case in a scan: no detail, e stays free. */
	if (mrc == MDB_NOTFOUND)
		return ERR_NOT_FOUND;
	if (mrc != 0)
		return lmdb_err_rc(e, "read vector block", "get", mrc);
	if (val.mv_size <= STORE_MASK_BYTES || (val.mv_size - STORE_MASK_BYTES) % STORE_BLOCK_ROWS)
		return corrupt(e, "a vector block has a bad size");
	p = val.mv_data;
	n = val.mv_size - STORE_MASK_BYTES;
	*present = vec_le64_get(p);
	p += STORE_MASK_BYTES;
	/* Large blocks sit on overflow pages and are 8-aligned; small ones inside a leaf
	 * page may be only 2-aligned, and callers read them as float arrays. */
	if ((uintptr_t)p % 8 != 0) {
		if (buf_reserve(&r->buf, &r->buf_cap, n) != 0)
			return nomem(e, "reading a block");
		memcpy(r->buf, p, n);
		p = r->buf;
	}
	*data = p;
	return 0;
}

int store_reader_dataset(struct store_reader *r, uint32_t ds_id, struct store_dataset_info *out,
                         struct err *e)
{
	struct lmdb_fail lf = { 0, NULL };
	int rc = ds_load(r->s, r->txn, ds_id, out, &lf, e);

	if (rc == ERR_STORE && lf.rc != 0)
		rc = lmdb_err(e, "read dataset", &lf);
	return rc;
}

int store_reader_dataset_named(struct store_reader *r, const char *name,
                               struct store_dataset_info *out, struct err *e)
{
	struct lmdb_fail lf = { 0, NULL };
	MDB_val nkey, hdr;
	int rc, mrc;

	if (!store_name_valid(name))
		return err_set(e, ERR_NOT_FOUND, "dataset_not_found", "no dataset named '%s'",
		               name ? name : "");
	nkey = mval(name, strlen(name));
	mrc = mdb_get(r->txn, r->s->datasets, &nkey, &hdr);
	if (mrc == MDB_NOTFOUND)
		return err_set(e, ERR_NOT_FOUND, "dataset_not_found", "no dataset named '%s'", name);
	if (mrc != 0)
		return lmdb_err_rc(e, "read dataset", "read dataset", mrc);
	rc = info_by_name(r->s, r->txn, &nkey, &hdr, out, &lf, e);
	if (rc == ERR_STORE && lf.rc != 0)
		rc = lmdb_err(e, "read dataset", &lf);
	return rc;
}

int store_reader_find(struct store_reader *r, uint32_t ds_id, const char *id, size_t id_len,
                      uint64_t *row, struct err *e)
{
	struct lmdb_fail lf = { 0, NULL };
	int rc;

	if (id_len == 0 || id_len > STORE_ID_MAX)
		return ERR_NOT_FOUND;
	rc = row_of(r->s, r->txn, ds_id, id, id_len, row, &lf, e);
	if (rc == ERR_STORE && lf.rc != 0)
		rc = lmdb_err(e, "find record", &lf);
	return rc;
}

int store_reader_row(struct store_reader *r, uint32_t ds_id, uint64_t row, unsigned *kind,
                     const char **id, size_t *id_len, const char **body, size_t *body_len,
                     struct err *e)
{
	unsigned char k[STORE_KEY_ROW];
	MDB_val key, val;
	int mrc;

	key_row(k, ds_id, row);
	key = mval(k, sizeof k);
	mrc = mdb_get(r->txn, r->s->rows, &key, &val);
	if (mrc == MDB_NOTFOUND)
		return ERR_NOT_FOUND;
	if (mrc != 0)
		return lmdb_err_rc(e, "read row", "get", mrc);
	if (val.mv_size < 2)
		return corrupt(e, "a row entry");
	if (kind != NULL)
		*kind = ((const unsigned char *)val.mv_data)[0];
	if (id != NULL)
		*id = (const char *)val.mv_data + 1;
	if (id_len != NULL)
		*id_len = val.mv_size - 1;
	if (body != NULL || body_len != NULL) {
		mrc = mdb_get(r->txn, r->s->recs, &key, &val);
		if (mrc != 0)
			return mrc == MDB_NOTFOUND ? corrupt(e, "a record body is missing")
			                           : lmdb_err_rc(e, "read record", "get", mrc);
		if (body != NULL)
			*body = val.mv_data;
		if (body_len != NULL)
			*body_len = val.mv_size;
	}
	return 0;
}

/* ---- row arrays and documents ------------------------------------------------------- */

struct store_txn {
	struct store *s;
	MDB_txn *txn;
	struct lmdb_fail *lf;
	unsigned char *buf; /* scratch for partial array blocks, STORE_ARRAY_ROWS * 16 */
};

struct write_ctx {
	store_txn_fn fn;
	void *ctx;
	unsigned char *buf;
	struct err sub; /* fn's detail, per attempt: a retried attempt must not spend e */
};

/* Any LMDB failure inside fn fails the attempt as ERR_STORE, whatever fn made of it: the
 * transaction is unusable, and MDB_MAP_FULL must reach txn_write_raw to be retried. */
static int write_body(struct store *s, MDB_txn *txn, void *arg, struct lmdb_fail *lf,
                      struct err *e)
{
	struct write_ctx *c = arg;
	struct store_txn t = { s, txn, lf, c->buf };
	int rc;

	(void)e;
	err_clear(&c->sub);
	rc = c->fn(c->ctx, &t, &c->sub);
	return lf->rc != 0 ? ERR_STORE : rc;
}

int store_write(struct store *s, store_txn_fn fn, void *ctx, struct err *e)
{
	struct lmdb_fail lf = { 0, NULL };
	struct write_ctx c;
	int rc;

	memset(&c, 0, sizeof c);
	c.fn = fn;
	c.ctx = ctx;
	c.buf = malloc(STORE_ARRAY_ROWS * STORE_ELEM_MAX);
	if (c.buf == NULL)
		return nomem(e, "a write");
	rc = txn_write_raw(s, write_body, &c, &lf, e);
	if (rc == ERR_STORE && lf.rc != 0)
		rc = lmdb_err(e, "write", &lf);
	else if (rc != 0 && c.sub.code != 0)
		err_set(e, c.sub.code, c.sub.slug, "%s", c.sub.detail);
	free(c.buf);
	return rc;
}

int store_txn_dataset(struct store_txn *t, uint32_t ds_id, struct store_dataset_info *out,
                      struct err *e)
{
	struct store_dataset_info info;

	return ds_load(t->s, t->txn, ds_id, out != NULL ? out : &info, t->lf, e);
}

/* ds_id exists in txn: ERR_NOT_FOUND otherwise. */
static int ds_exists(struct store *s, MDB_txn *txn, uint32_t ds, struct lmdb_fail *lf,
                     struct err *e)
{
	uint64_t next_row, records;

	return stat_get(s, txn, ds, &next_row, &records, lf, e);
}

/* The checks every array access shares: element size, the live array's rules, and a row
 * range that does not wrap (a wrapped end would silently touch nothing). */
static int array_check(uint32_t arr, size_t elem, uint64_t first, size_t n, int writing,
                       struct err *e)
{
	if (elem == 0 || elem > STORE_ELEM_MAX)
		return err_set(e, ERR_INVALID, "bad_array", "array elements are 1 to %d bytes",
		               STORE_ELEM_MAX);
	if (arr == STORE_ARRAY_LIVE && (writing || elem != 1))
		return err_set(e, ERR_INVALID, "bad_array",
		               writing ? "the live array is the store's own"
		                       : "the live array has 1-byte elements");
	if ((uint64_t)n > UINT64_MAX - first)
		return err_set(e, ERR_INVALID, "bad_array", "rows %llu + %zu overflow",
		               (unsigned long long)first, n);
	return 0;
}

int store_txn_array_put(struct store_txn *t, uint32_t ds_id, uint32_t arr, size_t elem_size,
                        uint64_t first, size_t n, const void *data, struct err *e)
{
	int rc;

	if ((rc = array_check(arr, elem_size, first, n, 1, e)) != 0 ||
	    (rc = ds_exists(t->s, t->txn, ds_id, t->lf, e)) != 0)
		return rc;
	return array_put_txn(t->s, t->txn, ds_id, arr, elem_size, first, n, data, t->buf, t->lf, e);
}

int store_txn_array_get(struct store_txn *t, uint32_t ds_id, uint32_t arr, size_t elem_size,
                        uint64_t first, size_t n, void *out, struct err *e)
{
	int rc;

	if ((rc = array_check(arr, elem_size, first, n, 0, e)) != 0)
		return rc;
	return array_get_txn(t->s, t->txn, ds_id, arr, elem_size, first, n, out, t->lf, e);
}

int store_txn_array_drop(struct store_txn *t, uint32_t ds_id, uint32_t arr, struct err *e)
{
	if (arr == STORE_ARRAY_LIVE)
		return err_set(e, ERR_INVALID, "bad_array", "the live array is the store's own");
	return array_drop_txn(t->s, t->txn, ds_id, arr, t->lf);
}

/* Document key: be32 ds, ns, key bytes. Returns the length, or 0 for a bad key. */
static size_t key_doc(unsigned char *k, uint32_t ds, char ns, const char *key, size_t key_len)
{
	if (key_len == 0 || key_len > STORE_DOC_KEY_MAX)
		return 0;
	be32_put(k, ds);
	k[4] = (unsigned char)ns;
	memcpy(k + 5, key, key_len);
	return 5 + key_len;
}

int store_txn_doc_put(struct store_txn *t, uint32_t ds_id, char ns, const char *key,
                      size_t key_len, const void *val, size_t len, struct err *e)
{
	unsigned char k[5 + STORE_DOC_KEY_MAX];
	size_t kl = key_doc(k, ds_id, ns, key, key_len);
	MDB_val mk, mv;
	int rc, mrc;

	if (kl == 0)
		return err_set(e, ERR_INVALID, "bad_key", "document keys are 1 to %d bytes",
		               STORE_DOC_KEY_MAX);
	if (ds_id != 0 && (rc = ds_exists(t->s, t->txn, ds_id, t->lf, e)) != 0)
		return rc;
	mk = mval(k, kl);
	mv = mval(NULL, len);
	mrc = mdb_put(t->txn, t->s->docs, &mk, &mv, MDB_RESERVE);
	if (mrc != 0)
		return lmdb_fail(t->lf, mrc, "write document");
	if (len > 0)
		memcpy(mv.mv_data, val, len);
	return 0;
}

int store_txn_doc_get(struct store_txn *t, uint32_t ds_id, char ns, const char *key,
                      size_t key_len, const void **val, size_t *len, struct err *e)
{
	unsigned char k[5 + STORE_DOC_KEY_MAX];
	size_t kl = key_doc(k, ds_id, ns, key, key_len);
	MDB_val mk, mv;
	int mrc;

	(void)e;
	if (kl == 0)
		return ERR_NOT_FOUND;
	mk = mval(k, kl);
	mrc = mdb_get(t->txn, t->s->docs, &mk, &mv);
	if (mrc == MDB_NOTFOUND)
		return ERR_NOT_FOUND;
	if (mrc != 0)
		return lmdb_fail(t->lf, mrc, "read document");
	*val = mv.mv_data;
	*len = mv.mv_size;
	return 0;
}

int store_txn_doc_del(struct store_txn *t, uint32_t ds_id, char ns, const char *key,
                      size_t key_len, struct err *e)
{
	unsigned char k[5 + STORE_DOC_KEY_MAX];
	size_t kl = key_doc(k, ds_id, ns, key, key_len);
	MDB_val mk;
	int mrc;

	(void)e;
	if (kl == 0)
		return ERR_NOT_FOUND;
	mk = mval(k, kl);
	mrc = mdb_del(t->txn, t->s->docs, &mk, NULL);
	if (mrc == MDB_NOTFOUND)
		return ERR_NOT_FOUND;
	return mrc ? lmdb_fail(t->lf, mrc, "delete document") : 0;
}

int store_txn_find(struct store_txn *t, uint32_t ds_id, const char *id, size_t id_len,
                   uint64_t *row, struct err *e)
{
	return row_of(t->s, t->txn, ds_id, id, id_len, row, t->lf, e);
}

int store_txn_body_get(struct store_txn *t, uint32_t ds_id, uint64_t row, const char **body,
                       size_t *len, struct err *e)
{
	unsigned char rk[STORE_KEY_ROW];
	MDB_val key, val;
	int mrc;

	key_row(rk, ds_id, row);
	key = mval(rk, sizeof rk);
	mrc = mdb_get(t->txn, t->s->recs, &key, &val);
	if (mrc == MDB_NOTFOUND)
		return err_set(e, ERR_NOT_FOUND, "record_not_found", "no record at row %llu",
		               (unsigned long long)row);
	if (mrc != 0)
		return lmdb_fail(t->lf, mrc, "read record");
	*body = val.mv_data;
	*len = val.mv_size;
	return 0;
}

int store_txn_body_put(struct store_txn *t, uint32_t ds_id, uint64_t row, const char *body,
                       size_t len, struct err *e)
{
	unsigned char rk[STORE_KEY_ROW];
	MDB_val key, val;
	int mrc;

	key_row(rk, ds_id, row);
	key = mval(rk, sizeof rk);
	/* only a live row has a body: a patch never resurrects a deleted record */
	mrc = mdb_get(t->txn, t->s->recs, &key, &val);
	if (mrc == MDB_NOTFOUND)
		return err_set(e, ERR_NOT_FOUND, "record_not_found", "no record at row %llu",
		               (unsigned long long)row);
	if (mrc != 0)
		return lmdb_fail(t->lf, mrc, "read record");
	val = mval(body, len);
	mrc = mdb_put(t->txn, t->s->recs, &key, &val, 0);
	if (mrc != 0)
		return lmdb_fail(t->lf, mrc, "write record");
	return 0;
}

int store_txn_counter_next(struct store_txn *t, const char *name, uint64_t *out, struct err *e)
{
	char k[48];
	unsigned char v8[8];
	size_t nl = name != NULL ? strlen(name) : 0;
	MDB_val key, val;
	uint64_t next = 1;
	int mrc;

	if (nl == 0 || nl > 32 || strspn(name, "abcdefghijklmnopqrstuvwxyz_") != nl)
		return err_set(e, ERR_INVALID, "bad_counter", "counter names are [a-z_]{1,32}");
	snprintf(k, sizeof k, "counter.%s", name);
	key = mval(k, strlen(k));
	mrc = mdb_get(t->txn, t->s->meta, &key, &val);
	if (mrc == 0 && val.mv_size != 8)
		return corrupt(e, "a counter"); /* restarting at 1 would reuse ids */
	if (mrc == 0)
		next = vec_le64_get(val.mv_data);
	else if (mrc != MDB_NOTFOUND)
		return lmdb_fail(t->lf, mrc, "read counter");
	vec_le64_put(v8, next + 1);
	val = mval(v8, sizeof v8);
	if ((mrc = mdb_put(t->txn, t->s->meta, &key, &val, 0)) != 0)
		return lmdb_fail(t->lf, mrc, "write counter");
	*out = next;
	return 0;
}

int store_reader_array(struct store_reader *r, uint32_t ds_id, uint32_t arr, size_t elem_size,
                       uint64_t first, size_t n, void *out, struct err *e)
{
	struct lmdb_fail lf = { 0, NULL };
	int rc;

	if ((rc = array_check(arr, elem_size, first, n, 0, e)) != 0)
		return rc;
	rc = array_get_txn(r->s, r->txn, ds_id, arr, elem_size, first, n, out, &lf, e);
	if (rc == ERR_STORE && lf.rc != 0)
		rc = lmdb_err(e, "read row array", &lf);
	return rc;
}

int store_reader_doc_get(struct store_reader *r, uint32_t ds_id, char ns, const char *key,
                         size_t key_len, const void **val, size_t *len, struct err *e)
{
	unsigned char k[5 + STORE_DOC_KEY_MAX];
	size_t kl = key_doc(k, ds_id, ns, key, key_len);
	MDB_val mk, mv;
	int mrc;

	if (kl == 0)
		return ERR_NOT_FOUND;
	mk = mval(k, kl);
	mrc = mdb_get(r->txn, r->s->docs, &mk, &mv);
	if (mrc == MDB_NOTFOUND)
		return ERR_NOT_FOUND;
	if (mrc != 0)
		return lmdb_err_rc(e, "read document", "get", mrc);
	*val = mv.mv_data;
	*len = mv.mv_size;
	return 0;
}

int store_reader_docs(struct store_reader *r, uint32_t ds_id, char ns, store_doc_fn fn,
                      void *ctx, struct err *e)
{
	unsigned char pk[5];
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc = 0, mrc;

	be32_put(pk, ds_id);
	pk[4] = (unsigned char)ns;
	if ((mrc = mdb_cursor_open(r->txn, r->s->docs, &cur)) != 0)
		return lmdb_err_rc(e, "list documents", "open cursor", mrc);
	k = mval(pk, sizeof pk);
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size <= sizeof pk || memcmp(k.mv_data, pk, sizeof pk) != 0)
			break;
		rc = fn(ctx, (const char *)k.mv_data + sizeof pk, k.mv_size - sizeof pk, v.mv_data,
		        v.mv_size);
		if (rc != 0) {
			rc = rc > 0 ? 0 : rc;
			break;
		}
	}
	if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
		rc = lmdb_err_rc(e, "list documents", "iterate", mrc);
	mdb_cursor_close(cur);
	return rc;
}

int store_full(const struct store *s)
{
	return atomic_load(&((struct store *)s)->full);
}
