/* SPDX-License-Identifier: MIT */
/* normalizers: hubness normalisers in the store, their statistics job, statistics on ingest,
 * query-time rescoring and the hubness report. See normalizers.h for the model.
 *
 * The job works in chunks of rows (the configured job chunk): it reads the chunk's vectors
 * from a snapshot, computes their statistics against both banks with one matrix product per
 * bank and block (algo/hubness.c), and commits the chunk's stats, the top-k state and
 * its checkpoint in one transaction. The activation flags need every row's similarities, so
 * they are written by the last commit, which also marks the normaliser ready; if records
 * arrived meanwhile, the job goes on with them first. */
#include "search/normalizers.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "lib/err.h"
#include "core/jobs.h"
#include "lib/log.h"
#include "algo/hubness.h"
#include "curate/subset.h"
#include "store/jdoc.h"
#include "store/store.h"
#include "lib/vec.h"

#define BLOB_MAGIC 0x31425548u  /* "HUB1" */
#define BLOCK 256               /* gallery vectors per matrix product */
#define CHUNK_DEFAULT ((uint64_t)STORE_ARRAY_ROWS * 32)
#define CANDIDATES_DEFAULT NORMALIZERS_CANDIDATES_DEFAULT
#define CANDIDATES_MAX NORMALIZERS_CANDIDATES_MAX

/* ---- small helpers ---- */

static int64_t now_unix(void)
{
	return (int64_t)time(NULL);
}

static const struct jdoc_kind normalizer_docs = {STORE_NS_NORMALIZER, "normalizer_not_found",
                                                 "hubness normalizer"};

static uint64_t doc_u64(const json_t *doc, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(doc, key));
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void normalise(float *v, uint32_t dim, int *zero)
{
	double n = vec_f32_norm(v, dim);

	*zero = !(n > 0);
	for (uint32_t i = 0; i < dim && !*zero; i++)
		v[i] = (float)(v[i] / n);
}

/* A bank in memory: vectors (new, n * dim, L2-normalised) and gallery rows (new). */
struct bank {
	size_t n;
	uint32_t dim;
	float *vecs;
	uint64_t *rows;
};

static void bank_clear(struct bank *b)
{
	free(b->vecs);
	free(b->rows);
	memset(b, 0, sizeof *b);
}

static struct hubness_bank bank_view(const struct bank *b)
{
	return (struct hubness_bank){b->n, b->dim, b->vecs, b->rows};
}

/* Vector of row (live, present in space sp) into x as f32: 0, or 1 when absent. */
static int read_row(struct store_reader *r, uint32_t ds, unsigned sp,
                    const struct store_space *space, uint64_t row, float *x)
{
	const void *data;
	uint64_t present;
	uint8_t live = 0;
	size_t at = row % STORE_BLOCK_ROWS;

	if (store_reader_array(r, ds, STORE_ARRAY_LIVE, 1, row, 1, &live, NULL) != 0 || !live)
		return 1;
	if (store_reader_block(r, ds, sp, row / STORE_BLOCK_ROWS, &data, &present, NULL) != 0 ||
	    !(present >> at & 1))
		return 1;
	if (space->dtype == STORE_F16)
		vec_f16_to_f32((const uint16_t *)data + (size_t)space->dim * at, x, space->dim);
	else
		memcpy(x, (const float *)data + (size_t)space->dim * at, space->dim * sizeof *x);
	return 0;
}

/* Rows [lo, hi) of ds that are live and have a vector in sp (and are members, when members
 * is not NULL): *rows new, *n. */
static int eligible_rows(struct store_reader *r, uint32_t ds, unsigned sp, uint64_t lo,
                         uint64_t hi, const uint8_t *members, uint64_t **rows, size_t *n,
                         struct err *e)
{
	size_t cap = 1024, m = 0;
	uint64_t *v = malloc(cap * sizeof *v);

	if (v == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	for (uint64_t blk = lo / STORE_BLOCK_ROWS; blk * STORE_BLOCK_ROWS < hi; blk++) {
		const void *data;
		uint64_t present;
		uint8_t live[STORE_BLOCK_ROWS];
		int rc = store_reader_block(r, ds, sp, blk, &data, &present, e);

		if (rc == ERR_NOT_FOUND) {
			err_clear(e);
			continue;
		}
		if (rc != 0 ||
		    (rc = store_reader_array(r, ds, STORE_ARRAY_LIVE, 1, blk * STORE_BLOCK_ROWS,
		                             STORE_BLOCK_ROWS, live, e)) != 0) {
			free(v);
			return rc;
		}
		for (unsigned i = 0; i < STORE_BLOCK_ROWS; i++) {
			uint64_t row = blk * STORE_BLOCK_ROWS + i;

			if (row < lo || row >= hi || !(present >> i & 1) || !live[i] ||
			    (members != NULL && !members[row]))
				continue;
			if (m == cap) {
				uint64_t *g = realloc(v, (cap *= 2) * sizeof *v);

				if (g == NULL) {
					free(v);
					return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
				}
				v = g;
			}
			v[m++] = row;
		}
	}
	*rows = v;
	*n = m;
	return 0;
}

/* ---- banks ---- */

/* The gallery rows of an inline bank's ids (borrowed; NULL: none): an id that is a record of
 * the gallery dataset ds names the row whose self-pair is excluded (5.4 d), as for a bank
 * sampled from the gallery; other ids (records of other shards of a cluster) name none. */
static int bank_ids(const char *what, const json_t *ids, size_t nv, struct store_reader *r,
                    uint32_t ds, struct bank *b, struct err *e)
{
	size_t i;
	json_t *one;

	if (ids == NULL)
		return 0;
	if (!json_is_array(ids) || json_array_size(ids) != nv)
		return err_set(e, ERR_INVALID, "bad_bank",
		               "%s.ids must be an array of %zu record ids, one per vector", what, nv);
	json_array_foreach (ids, i, one) {
		const char *id = json_string_value(one);
		uint64_t row;
		int rc;

		if (id == NULL)
			return err_set(e, ERR_INVALID, "bad_bank", "%s.ids[%zu] must be a string",
			               what, i);
		rc = store_reader_find(r, ds, id, json_string_length(one), &row, e);
		if (rc == ERR_NOT_FOUND)
			err_clear(e);
		else if (rc != 0)
			return rc;
		else
			b->rows[i] = row;
	}
	return 0;
}

/* A bank given as vectors (vecs, already known to be present): each must have dim finite
 * numbers and not be zero; normalised into b; with ids (borrowed, may be NULL), an item that
 * is a gallery record of ds (read through r) is left out of its own statistics.
 * *def new: {"vectors": n} (and "ids": true). */
static int bank_from_vectors(const char *what, const json_t *vecs, const json_t *ids,
                             struct store_reader *r, uint32_t ds, uint32_t dim, struct bank *b,
                             json_t **def, struct err *e)
{
	size_t i, nv = json_array_size(vecs);
	json_t *one;
	int rc;

	if (!json_is_array(vecs) || nv == 0 || nv > HUBNORM_BANK_MAX)
		return err_set(e, ERR_INVALID, "bad_bank",
		               "%s.vectors must be an array of 1 to %d vectors", what,
		               HUBNORM_BANK_MAX);
	b->vecs = malloc(nv * dim * sizeof *b->vecs);
	b->rows = malloc(nv * sizeof *b->rows);
	if (b->vecs == NULL || b->rows == NULL) {
		bank_clear(b);
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	json_array_foreach (vecs, i, one) {
		float *x = b->vecs + i * dim;
		int zero;

		if (!json_is_array(one) || json_array_size(one) != dim) {
			bank_clear(b);
			return err_set(e, ERR_INVALID, "dimension_mismatch",
			               "%s.vectors[%zu] must have %u numbers", what, i,
			               (unsigned)dim);
		}
		for (uint32_t k = 0; k < dim; k++) {
			json_t *xv = json_array_get(one, k);

			if (!json_is_number(xv) || !isfinite(json_number_value(xv))) {
				bank_clear(b);
				return err_set(e, ERR_INVALID, "non_finite",
				               "%s.vectors[%zu][%u] is not a finite number", what,
				               i, (unsigned)k);
			}
			x[k] = (float)json_number_value(xv);
		}
		normalise(x, dim, &zero);
		if (zero) {
			bank_clear(b);
			return err_set(e, ERR_INVALID, "zero_vector",
			               "%s.vectors[%zu] is a zero vector (no cosine)", what, i);
		}
		b->rows[i] = UINT64_MAX;
	}
	b->n = nv;
	if ((rc = bank_ids(what, ids, nv, r, ds, b, e)) != 0) {
		bank_clear(b);
		return rc;
	}
	*def = json_pack("{s:I}", "vectors", (json_int_t)nv);
	if (*def != NULL && ids != NULL)
		json_object_set_new(*def, "ids", json_true());
	return *def ? 0 : ERR_NOMEM;
}

/* A bank sampled from a dataset (spec: dataset, space, subset, sample; NULL: the default,
 * a sample of the gallery space sp of ds itself): its live vectors, evenly sampled down,
 * normalised, zero vectors left out. *def new: where they came from and how many. */
static int bank_from_dataset(struct core *core, struct store_reader *r, const char *what,
                             const json_t *spec, uint32_t ds, unsigned sp, uint32_t dim,
                             struct bank *b, json_t **def, struct err *e)
{
	const char *bds = spec != NULL ? json_string_value(json_object_get(spec, "dataset")) : NULL;
	const char *bsp = spec != NULL ? json_string_value(json_object_get(spec, "space")) : NULL;
	const json_t *sub = spec != NULL ? json_object_get(spec, "subset") : NULL;
	const json_t *smp = spec != NULL ? json_object_get(spec, "sample") : NULL;
	struct store_dataset_info info;
	uint8_t *members = NULL;
	uint64_t *all = NULL;
	size_t nall = 0, want;
	float *x = NULL;
	int bsi, rc = 0;

	if (spec != NULL && bds == NULL)
		return err_set(e, ERR_INVALID, "bad_bank", "%s.dataset must be a dataset name",
		               what);
	if (bds != NULL) {
		if ((rc = store_dataset_get(core->store, bds, &info, e)) != 0)
			return rc;
	} else if ((rc = store_reader_dataset(r, ds, &info, e)) != 0) {
		return rc;
	}
	bsi = bsp != NULL ? store_schema_find(&info.schema, bsp)
	                  : (bds == NULL ? (int)sp : (info.schema.nspaces == 1 ? 0 : -1));
	if (bsi < 0)
		return err_set(e, ERR_INVALID, "bad_bank", "%s.space must name a space of '%s'",
		               what, info.name);
	if (info.schema.spaces[bsi].dim != dim)
		return err_set(e, ERR_INVALID, "dimension_mismatch",
		               "%s: space '%s' has dim %u, the gallery space %u", what,
		               info.schema.spaces[bsi].name, (unsigned)info.schema.spaces[bsi].dim,
		               (unsigned)dim);
	want = spec == NULL ? HUBNORM_DEFAULT_SAMPLE : HUBNORM_BANK_MAX;
	if (smp != NULL) {
		if (!json_is_integer(smp) || json_integer_value(smp) < 1 ||
		    json_integer_value(smp) > HUBNORM_BANK_MAX)
			return err_set(e, ERR_INVALID, "bad_bank", "%s.sample must be 1 to %d",
			               what, HUBNORM_BANK_MAX);
		want = (size_t)json_integer_value(smp);
	}
	if (sub != NULL &&
	    (!json_is_string(sub) || (rc = subset_members(r, info.id, json_string_value(sub),
	                                                  info.next_row, &members, e)) != 0))
		return rc != 0
		           ? rc
		           : err_set(e, ERR_INVALID, "bad_bank", "%s.subset must be a name", what);
	rc = eligible_rows(r, info.id, (unsigned)bsi, 0, info.next_row, members, &all, &nall, e);
	free(members);
	if (rc != 0)
		return rc;
	if (nall == 0) {
		free(all);
		return err_set(e, ERR_INVALID, "empty_bank", "%s: no vectors in '%s' space '%s'",
		               what, info.name, info.schema.spaces[bsi].name);
	}
	if (nall > want) {
		/* an even sample: deterministic, spread over the whole row range */
		for (size_t i = 0; i < want; i++)
			all[i] = all[(size_t)((double)i * nall / want)];
		nall = want;
	}
	b->vecs = malloc(nall * dim * sizeof *b->vecs);
	b->rows = malloc(nall * sizeof *b->rows);
	x = malloc(dim * sizeof *x);
	if (b->vecs == NULL || b->rows == NULL || x == NULL) {
		free(all);
		free(x);
		bank_clear(b);
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	for (size_t i = 0; i < nall; i++) {
		int zero = 1;

		if (read_row(r, info.id, (unsigned)bsi, &info.schema.spaces[bsi], all[i], x) == 0)
			normalise(x, dim, &zero);
		if (zero)
			continue;
		memcpy(b->vecs + b->n * dim, x, dim * sizeof *x);
		/* a bank item from the gallery itself: its self-pair is excluded (5.4 d) */
		b->rows[b->n++] = info.id == ds && (unsigned)bsi == sp ? all[i] : UINT64_MAX;
	}
	free(all);
	free(x);
	if (b->n == 0) {
		bank_clear(b);
		return err_set(e, ERR_INVALID, "empty_bank", "%s: only zero vectors", what);
	}
	*def = json_pack("{s:s, s:s, s:I}", "dataset", info.name, "space",
	                 info.schema.spaces[bsi].name, "items", (json_int_t)b->n);
	if (*def != NULL && sub != NULL)
		json_object_set(*def, "subset", (json_t *)sub);
	if (*def != NULL && spec == NULL)
		json_object_set_new(*def, "default", json_true());
	return *def ? 0 : ERR_NOMEM;
}

/* The bank given by spec (borrowed) for a gallery of (ds, sp, dim), read through r (a
 * snapshot of core->store). spec NULL: the default gallery bank, a sample of the gallery.
 * def gets a JSON definition to store (new; the vectors of an inline bank left out). */
static int bank_resolve(struct core *core, struct store_reader *r, const char *what,
                        const json_t *spec, uint32_t ds, unsigned sp, uint32_t dim,
                        struct bank *b, json_t **def, struct err *e)
{
	const json_t *vecs = spec != NULL ? json_object_get(spec, "vectors") : NULL;
	const char *key;
	json_t *val;

	memset(b, 0, sizeof *b);
	b->dim = dim;
	if (spec != NULL && !json_is_object(spec))
		return err_set(e, ERR_INVALID, "bad_bank",
		               "%s must be {\"vectors\": [[...]]} or {\"dataset\", \"space\", "
		               "\"subset\", \"sample\"}",
		               what);
	if (spec != NULL)
		json_object_foreach((json_t *)spec, key, val) {
			if (strcmp(key, vecs != NULL ? "vectors" : "dataset") != 0 &&
			    (vecs == NULL || strcmp(key, "ids") != 0) &&
			    (vecs != NULL || (strcmp(key, "space") != 0 && strcmp(key, "subset") != 0 &&
			                      strcmp(key, "sample") != 0)))
				return err_set(e, ERR_INVALID, "bad_bank", "%s: unknown field '%s'", what,
				               key);
		}
	if (vecs != NULL)
		return bank_from_vectors(what, vecs, json_object_get(spec, "ids"), r, ds, dim, b,
		                         def, e);
	return bank_from_dataset(core, r, what, spec, ds, sp, dim, b, def, e);
}

/* Blob 'H': u32 magic, u32 dim, u64 nq, u64 ng, then each bank's vectors and rows. */
static int banks_pack(const struct bank *q, const struct bank *g, void **out, size_t *len)
{
	size_t n = 24 + (q->n + g->n) * ((size_t)q->dim * 4 + 8);
	unsigned char *p = malloc(n), *at = p;
	uint32_t hdr[2] = {BLOB_MAGIC, q->dim};
	uint64_t cnt[2] = {q->n, g->n};

	if (p == NULL)
		return ERR_NOMEM;
	memcpy(at, hdr, 8);
	memcpy(at + 8, cnt, 16);
	at += 24;
	memcpy(at, q->vecs, q->n * q->dim * 4);
	at += q->n * q->dim * 4;
	memcpy(at, q->rows, q->n * 8);
	at += q->n * 8;
	memcpy(at, g->vecs, g->n * g->dim * 4);
	at += g->n * g->dim * 4;
	memcpy(at, g->rows, g->n * 8);
	*out = p;
	*len = n;
	return 0;
}

/* The banks from blob (borrowed): copies, so they outlive the reader. */
static int banks_unpack(const void *blob, size_t len, struct bank *q, struct bank *g,
                        struct err *e)
{
	const unsigned char *p = blob;
	uint32_t hdr[2];
	uint64_t cnt[2];
	struct bank *bs[2] = {q, g};

	memset(q, 0, sizeof *q);
	memset(g, 0, sizeof *g);
	if (len < 24)
		goto bad;
	memcpy(hdr, p, 8);
	memcpy(cnt, p + 8, 16);
	if (hdr[0] != BLOB_MAGIC || cnt[0] > HUBNORM_BANK_MAX || cnt[1] > HUBNORM_BANK_MAX ||
	    len != 24 + (cnt[0] + cnt[1]) * ((size_t)hdr[1] * 4 + 8))
		goto bad;
	p += 24;
	for (int i = 0; i < 2; i++) {
		struct bank *b = bs[i];

		b->n = cnt[i];
		b->dim = hdr[1];
		b->vecs = malloc(b->n * b->dim * 4 + 4);
		b->rows = malloc(b->n * 8 + 8);
		if (b->vecs == NULL || b->rows == NULL) {
			bank_clear(q);
			bank_clear(g);
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		}
		memcpy(b->vecs, p, b->n * b->dim * 4);
		p += b->n * b->dim * 4;
		memcpy(b->rows, p, b->n * 8);
		p += b->n * 8;
	}
	return 0;
bad:
	return err_set(e, ERR_INTERNAL, "bad_bank_blob", "the stored banks do not parse");
}

/* Blob 'T': u64 n, u32 k, then scores (n * k f32) and rows (n * k u64); q then g. */
static int topk_pack(const struct hubness_topk *q, const struct hubness_topk *g, void **out,
                     size_t *len)
{
	const struct hubness_topk *ts[2] = {q, g};
	size_t n = 0;
	unsigned char *p, *at;

	for (int i = 0; i < 2; i++)
		n += 12 + ts[i]->n * ts[i]->k * 12;
	if ((p = malloc(n)) == NULL)
		return ERR_NOMEM;
	at = p;
	for (int i = 0; i < 2; i++) {
		uint64_t nn = ts[i]->n;
		uint32_t k = ts[i]->k;

		memcpy(at, &nn, 8);
		memcpy(at + 8, &k, 4);
		at += 12;
		memcpy(at, ts[i]->score, nn * k * 4);
		at += nn * k * 4;
		memcpy(at, ts[i]->row, nn * k * 8);
		at += nn * k * 8;
	}
	*out = p;
	*len = n;
	return 0;
}

static int topk_unpack(const void *blob, size_t len, struct hubness_topk *q,
                       struct hubness_topk *g, struct err *e)
{
	const unsigned char *p = blob, *end = p + len;
	struct hubness_topk *ts[2] = {q, g};

	for (int i = 0; i < 2; i++) {
		uint64_t nn;
		uint32_t k;

		if (end - p < 12)
			goto bad;
		memcpy(&nn, p, 8);
		memcpy(&k, p + 8, 4);
		p += 12;
		if (nn != ts[i]->n || k != ts[i]->k || (size_t)(end - p) < nn * k * 12)
			goto bad;
		memcpy(ts[i]->score, p, nn * k * 4);
		p += nn * k * 4;
		memcpy(ts[i]->row, p, nn * k * 8);
		p += nn * k * 8;
	}
	return 0;
bad:
	return err_set(e, ERR_INTERNAL, "bad_topk_blob", "the stored top-k state does not parse");
}

/* ---- parameters ---- */

static int params_of(const json_t *doc, struct hubness_params *p)
{
	const char *mode = json_string_value(json_object_get(doc, "dualdis_mode"));

	p->beta1 = json_number_value(json_object_get(doc, "beta1"));
	p->beta2 = json_number_value(json_object_get(doc, "beta2"));
	p->k = (unsigned)json_integer_value(json_object_get(doc, "k"));
	p->csls_k = (unsigned)json_integer_value(json_object_get(doc, "csls_k"));
	p->dualdis_mode = mode != NULL && strcmp(mode, "monotone") == 0 ? HUBNESS_MONOTONE
	                                                                 : HUBNESS_REFERENCE;
	return p->k >= 1 && p->csls_k >= 1 ? 0 : -1;
}

static int num_param(const json_t *body, const char *key, double dflt, double lo, double hi,
                     int integer, double *out, struct err *e)
{
	const json_t *v = json_object_get(body, key);

	*out = dflt;
	if (v == NULL)
		return 0;
	if (!json_is_number(v) || (integer && !json_is_integer(v)) || !(json_number_value(v) >= lo) ||
	    !(json_number_value(v) <= hi))
		return err_set(e, ERR_INVALID, "bad_param", "\"%s\" must be %s from %g to %g", key,
		               integer ? "an integer" : "a number", lo, hi);
	*out = json_number_value(v);
	return 0;
}

/* ---- PUT ---- */

struct put_ctx {
	struct core *core;
	const struct store_dataset_info *ds;
	const char *name;
	json_t *def;      /* the definition to store (borrowed) */
	const void *blob; /* the banks */
	size_t len;
	uint64_t hash;
	/* out */
	json_t *doc;
	uint64_t job;
	int created, unchanged;
};

static int put_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct put_ctx *c = ctx;
	json_t *old = NULL, *doc = NULL, *args = NULL;
	uint64_t arr, version = 1;
	int64_t created = now_unix();
	int rc;

	c->unchanged = c->created = 0;
	c->job = 0;
	json_decref(c->doc);
	c->doc = NULL;
	if ((rc = store_txn_dataset(t, c->ds->id, NULL, e)) != 0)
		return rc;
	rc = jdoc_named_txn_previous(t, &normalizer_docs, c->ds->id, c->name, &old, &version, e);
	if (rc != 0)
		return rc;
	if (old == NULL) {
		c->created = 1;
	} else {
		if (doc_u64(old, "hash") == c->hash) {
			c->unchanged = 1;
			c->doc = old;
			return 0;
		}
		created = json_integer_value(json_object_get(old, "created"));
		if ((rc = store_txn_array_drop(t, c->ds->id, (uint32_t)doc_u64(old, "array"), e)) != 0)
			goto out;
	}
	rc = jdoc_txn_drop(t, c->ds->id, STORE_NS_NORMALIZER_TOPK, c->name, e);
	if (rc != 0 || (rc = store_txn_counter_next(t, "array", &arr, e)) != 0 ||
	    (rc = store_txn_doc_put(t, c->ds->id, STORE_NS_NORMALIZER_BANKS, c->name,
	                            strlen(c->name), c->blob, c->len, e)) != 0)
		goto out;
	args = json_pack("{s:I}", "array", (json_int_t)arr);
	if (args == NULL || (rc = jobs_txn_create(c->core->jobs, t, "hubness", c->ds->id, c->ds->name,
	                                          c->name, args, &c->job, e)) != 0) {
		rc = rc ? rc : ERR_NOMEM;
		goto out;
	}
	doc = json_deep_copy(c->def);
	if (doc == NULL) {
		rc = ERR_NOMEM;
		goto out;
	}
	json_object_set_new(doc, "name", json_string(c->name));
	json_object_set_new(doc, "version", json_integer((json_int_t)version));
	json_object_set_new(doc, "array", json_integer((json_int_t)arr));
	json_object_set_new(doc, "hash", json_integer((json_int_t)c->hash));
	json_object_set_new(doc, "ready", json_false());
	json_object_set_new(doc, "created", json_integer(created));
	json_object_set_new(doc, "updated", json_integer(now_unix()));
	json_object_set_new(doc, "job", json_integer((json_int_t)c->job));
	if ((rc = jdoc_named_txn_put(t, &normalizer_docs, c->ds->id, c->name, doc, e)) != 0)
		goto out;
	c->doc = doc;
	doc = NULL;
out:
	json_decref(args);
	json_decref(old);
	json_decref(doc);
	return rc;
}

/* "activation": where the flags come from: "local" (this daemon's own top-k sets), "global"
 * (a cluster's merged sets, POST :activation) or "stale" (global, then records arrived). */
static void x_activation(json_t *v, const json_t *doc)
{
	const json_t *a = json_object_get(doc, "activation");

	json_object_set_new(v, "activation", a != NULL ? json_copy((json_t *)a) : json_string("local"));
}

static json_t *view_of(struct core *core, const json_t *doc)
{
	static const char *const keys[] = {"name", "space", "beta1", "beta2", "k", "csls_k",
	                                   "dualdis_mode", "query_bank", "gallery_bank",
	                                   "version", "ready", NULL};
	json_t *v = json_object(), *job = NULL;

	if (v == NULL)
		return NULL;
	for (int i = 0; keys[i] != NULL; i++) {
		json_t *x = json_object_get(doc, keys[i]);

		json_object_set(v, keys[i], x != NULL ? x : json_null());
	}
	x_activation(v, doc);
	json_object_set_new(v, "created", jdoc_time(json_object_get(doc, "created")));
	json_object_set_new(v, "updated", jdoc_time(json_object_get(doc, "updated")));
	if (doc_u64(doc, "job") != 0 && jobs_get_json(core->jobs, doc_u64(doc, "job"), &job, NULL) == 0)
		json_object_set_new(v, "computing", job);
	else
		json_object_set_new(v, "computing", json_null());
	return v;
}

int normalizers_put(struct core *core, const char *dataset, const char *name, const json_t *body,
                json_t **view, uint64_t *job, int *created, struct err *e)
{
	static const char *const known[] = {"space", "query_bank", "gallery_bank", "beta1",
	                                    "beta2", "k", "csls_k", "dualdis_mode", NULL};
	struct store_dataset_info ds;
	struct put_ctx c = {.core = core, .name = name};
	struct store_reader *r = NULL;
	struct bank qb = {0}, gb = {0};
	json_t *qdef = NULL, *gdef = NULL, *val;
	const char *key, *space, *mode;
	double b1, b2, k, ck;
	void *blob = NULL;
	char *canon = NULL;
	int rc, sp;

	if (!store_name_valid(name))
		return err_set(e, ERR_INVALID, "bad_name",
		               "a normalizer name is 1 to 64 characters of [A-Za-z0-9._-]");
	if (!json_is_object(body))
		return err_set(e, ERR_INVALID, "bad_normalizer", "the body must be a JSON object");
	json_object_foreach((json_t *)body, key, val) {
		int i;

		for (i = 0; known[i] != NULL && strcmp(known[i], key) != 0; i++)
			;
		if (known[i] == NULL)
			return err_set(e, ERR_INVALID, "unknown_field", "unknown field '%s'", key);
	}
	if ((rc = num_param(body, "beta1", 20, 1e-6, 1000, 0, &b1, e)) != 0 ||
	    (rc = num_param(body, "beta2", 20, 1e-6, 1000, 0, &b2, e)) != 0 ||
	    (rc = num_param(body, "k", 1, 1, 100, 1, &k, e)) != 0 ||
	    (rc = num_param(body, "csls_k", 10, 1, 64, 1, &ck, e)) != 0)
		return rc;
	mode = json_string_value(json_object_get(body, "dualdis_mode"));
	if (json_object_get(body, "dualdis_mode") != NULL &&
	    (mode == NULL || (strcmp(mode, "reference") != 0 && strcmp(mode, "monotone") != 0)))
		return err_set(e, ERR_INVALID, "bad_param",
		               "\"dualdis_mode\" must be \"reference\" or \"monotone\"");
	if (json_object_get(body, "query_bank") == NULL)
		return err_set(e, ERR_INVALID, "bad_bank", "\"query_bank\" is required");
	if ((rc = store_dataset_get(core->store, dataset, &ds, e)) != 0)
		return rc;
	space = json_string_value(json_object_get(body, "space"));
	if (space == NULL && ds.schema.nspaces == 1)
		space = ds.schema.spaces[0].name;
	if (space == NULL || (sp = store_schema_find(&ds.schema, space)) < 0)
		return err_set(e, ERR_INVALID, "bad_param", "\"space\" must name a space of '%s'",
		               dataset);
	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	rc = bank_resolve(core, r, "query_bank", json_object_get(body, "query_bank"), ds.id,
	                  (unsigned)sp, ds.schema.spaces[sp].dim, &qb, &qdef, e);
	if (rc == 0)
		rc = bank_resolve(core, r, "gallery_bank", json_object_get(body, "gallery_bank"), ds.id,
		                  (unsigned)sp, ds.schema.spaces[sp].dim, &gb, &gdef, e);
	store_reader_close(r);
	if (rc != 0)
		goto out;
	c.def = json_pack("{s:s, s:f, s:f, s:i, s:i, s:s, s:O, s:O}", "space", space, "beta1", b1,
	                  "beta2", b2, "k", (int)k, "csls_k", (int)ck, "dualdis_mode",
	                  mode != NULL ? mode : "reference", "query_bank", qdef, "gallery_bank",
	                  gdef);
	canon = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
	if (c.def == NULL || canon == NULL || banks_pack(&qb, &gb, &blob, &c.len) != 0) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	/* the same request again changes nothing (a bank read from a dataset is not read
	 * again: DELETE and PUT to resample it) */
	c.hash = fnv1a(canon) & 0x7fffffffffffffffull;
	c.blob = blob;
	c.ds = &ds;
	rc = store_write(core->store, put_fn, &c, e);
	if (rc == 0 && !c.unchanged) {
		jobs_cancel_matching(core->jobs, ds.id, "hubness", name, c.job);
		jobs_submit(core->jobs, c.job);
	}
	if (rc == 0) {
		*view = view_of(core, c.doc);
		*job = c.job;
		*created = c.created;
		rc = *view != NULL ? 0 : err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
out:
	json_decref(c.doc);
	json_decref(c.def);
	json_decref(qdef);
	json_decref(gdef);
	free(canon);
	free(blob);
	bank_clear(&qb);
	bank_clear(&gb);
	return rc;
}

/* view_of as a jdoc_view_fn. */
static json_t *named_view(void *ctx, uint32_t ds, const json_t *doc)
{
	(void)ds;
	return view_of(ctx, doc);
}

int normalizers_get_json(struct core *core, const char *dataset, const char *name, json_t **out,
                         struct err *e)
{
	return jdoc_named_view(core->store, &normalizer_docs, dataset, name, named_view, core, out,
	                       e);
}

int normalizers_list_json(struct core *core, const char *dataset, json_t **out, struct err *e)
{
	return jdoc_named_list(core->store, &normalizer_docs, dataset, named_view, core, out, e);
}

/* A normaliser's row array, banks and top-k state go with it (jdoc_cleanup_fn). */
static int drop_derived(void *ctx, struct store_txn *t, uint32_t ds, const char *name,
                        const json_t *doc, struct err *e)
{
	int rc;

	(void)ctx;
	if ((rc = store_txn_array_drop(t, ds, (uint32_t)doc_u64(doc, "array"), e)) != 0 ||
	    (rc = jdoc_txn_drop(t, ds, STORE_NS_NORMALIZER_BANKS, name, e)) != 0)
		return rc;
	return jdoc_txn_drop(t, ds, STORE_NS_NORMALIZER_TOPK, name, e);
}

int normalizers_delete(struct core *core, const char *dataset, const char *name, struct err *e)
{
	struct store_dataset_info ds;
	int rc;

	if ((rc = store_dataset_get(core->store, dataset, &ds, e)) != 0 ||
	    (rc = jdoc_named_delete(core->store, &normalizer_docs, ds.id, name, drop_derived, NULL,
	                            e)) != 0)
		return rc;
	jobs_cancel_matching(core->jobs, ds.id, "hubness", name, 0);
	return 0;
}

/* ---- the statistics job ---- */

/* What a job or an ingest needs of a normaliser: its doc, params, banks, top-k state. */
struct loaded {
	json_t *doc;
	struct hubness_params p;
	unsigned space;
	uint32_t arr;
	struct bank qb, gb;
	struct hubness_topk *tq, *tg;
};

static void loaded_free(struct loaded *l)
{
	json_decref(l->doc);
	bank_clear(&l->qb);
	bank_clear(&l->gb);
	hubness_topk_free(l->tq);
	hubness_topk_free(l->tg);
	memset(l, 0, sizeof *l);
}

/* Load normaliser name of ds through r; with_topk: the stored top-k state too (an empty one
 * when there is none yet). */
static int load(struct store_reader *r, uint32_t ds, const struct store_schema *schema,
                const char *name, int with_topk, struct loaded *l, struct err *e)
{
	const void *blob;
	size_t len;
	int rc, sp;

	memset(l, 0, sizeof *l);
	if ((rc = jdoc_named_reader_get(r, &normalizer_docs, ds, name, &l->doc, e)) != 0)
		return rc;
	sp = store_schema_find(schema, json_string_value(json_object_get(l->doc, "space")));
	if (sp < 0 || params_of(l->doc, &l->p) != 0) {
		rc = err_set(e, ERR_INTERNAL, "bad_normalizer", "normalizer '%s' is damaged", name);
		goto fail;
	}
	l->space = (unsigned)sp;
	l->arr = (uint32_t)doc_u64(l->doc, "array");
	if ((rc = store_reader_doc_get(r, ds, STORE_NS_NORMALIZER_BANKS, name, strlen(name), &blob,
	                               &len, e)) != 0 ||
	    (rc = banks_unpack(blob, len, &l->qb, &l->gb, e)) != 0)
		goto fail;
	if (l->qb.dim != schema->spaces[sp].dim) {
		rc = err_set(e, ERR_INTERNAL, "bad_normalizer", "normalizer '%s': bank dim", name);
		goto fail;
	}
	if (!with_topk)
		return 0;
	if (hubness_topk_new(&l->tq, l->qb.n, l->p.k) != 0 ||
	    hubness_topk_new(&l->tg, l->gb.n, l->p.k) != 0) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto fail;
	}
	rc = store_reader_doc_get(r, ds, STORE_NS_NORMALIZER_TOPK, name, strlen(name), &blob, &len,
	                          e);
	if (rc == ERR_NOT_FOUND) {
		err_clear(e);
		return 0;
	}
	if (rc == 0 && (rc = topk_unpack(blob, len, l->tq, l->tg, e)) == 0)
		return 0;
fail:
	loaded_free(l);
	return rc;
}

/* Statistics of rows (n, borrowed) read through r: st (n) and offers to the trackers.
 * Rows without a vector get zeroed stats (flags 0: not computed). */
static int compute_rows(struct store_reader *r, uint32_t ds, const struct store_schema *schema,
                        const struct loaded *l, const uint64_t *rows, size_t n,
                        struct hubness_stats *st, struct hubness_topk *tq,
                        struct hubness_topk *tg, struct err *e)
{
	const struct store_space *space = &schema->spaces[l->space];
	uint32_t dim = space->dim;
	float *x = malloc((size_t)BLOCK * dim * sizeof *x);
	uint64_t brow[BLOCK];
	size_t bat[BLOCK];
	struct hubness_bank qv = bank_view(&l->qb), gv = bank_view(&l->gb);
	struct hubness_stats bst[BLOCK];
	int rc = 0;

	if (x == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	memset(st, 0, n * sizeof *st);
	for (size_t at = 0; at < n && rc == 0;) {
		size_t c = 0;

		for (; at < n && c < BLOCK; at++) {
			int zero = 1;

			if (read_row(r, ds, l->space, space, rows[at], x + c * dim) == 0)
				normalise(x + c * dim, dim, &zero);
			if (zero)
				continue;
			brow[c] = rows[at];
			bat[c++] = at;
		}
		if (c > 0 && (rc = hubness_compute(&l->p, &qv, &gv, c, x, brow, bst, tq, tg, e)) == 0)
			for (size_t i = 0; i < c; i++)
				st[bat[i]] = bst[i];
	}
	free(x);
	return rc;
}

struct chunk_ctx {
	struct job *job;
	uint32_t ds;
	const char *name;
	uint32_t arr;
	uint64_t lo, hi, total;
	const struct hubness_stats *st;
	const void *tblob;
	size_t tlen;
	json_t *checkpoint;
	const struct hubness_topk *tq, *tg; /* final: the activation sets */
	int final;
	int grew; /* out (final): records arrived, not finished yet */
};

/* Flags of every row in the sets (the stats elements read, or-ed, written back). */
static int txn_set_flags(struct store_txn *t, uint32_t ds, uint32_t arr,
                         const struct hubness_topk *tk, uint32_t bit, struct err *e)
{
	uint64_t *rows = NULL;
	size_t n = 0;
	int rc;

	if (hubness_topk_rows(tk, &rows, &n) != 0)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct hubness_stats s;

		if ((rc = store_txn_array_get(t, ds, arr, sizeof s, rows[i], 1, &s, e)) != 0 ||
		    (s.flags |= bit,
		     rc = store_txn_array_put(t, ds, arr, sizeof s, rows[i], 1, &s, e)) != 0) {
			free(rows);
			return rc;
		}
	}
	free(rows);
	return 0;
}

static int chunk_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct chunk_ctx *c = ctx;
	struct store_dataset_info info;
	json_t *doc = NULL;
	int rc;

	c->grew = 0;
	if ((rc = store_txn_dataset(t, c->ds, &info, e)) != 0 ||
	    (rc = jdoc_named_txn_get(t, &normalizer_docs, c->ds, c->name, &doc, e)) != 0)
		return rc;
	if (doc_u64(doc, "array") != c->arr) {
		json_decref(doc);
		return err_set(e, ERR_CONFLICT, "superseded",
		               "normalizer '%s' was replaced while this job ran", c->name);
	}
	if (c->hi > c->lo &&
	    (rc = store_txn_array_put(t, c->ds, c->arr, sizeof *c->st, c->lo, (size_t)(c->hi - c->lo),
	                              c->st, e)) != 0)
		goto out;
	if ((rc = store_txn_doc_put(t, c->ds, STORE_NS_NORMALIZER_TOPK, c->name, strlen(c->name),
	                            c->tblob, c->tlen, e)) != 0)
		goto out;
	if (c->final && info.next_row > c->hi) {
		c->grew = 1; /* records arrived while the job ran: they come first */
	} else if (c->final) {
		if ((rc = txn_set_flags(t, c->ds, c->arr, c->tq, HUBNESS_IN_AQ, e)) != 0 ||
		    (rc = txn_set_flags(t, c->ds, c->arr, c->tg, HUBNESS_IN_AG, e)) != 0)
			goto out;
		json_object_set_new(doc, "ready", json_true());
		json_object_set_new(doc, "updated", json_integer(now_unix()));
		if ((rc = jdoc_txn_put(t, c->ds, STORE_NS_NORMALIZER, c->name, doc, e)) != 0)
			goto out;
	}
	rc = jobs_txn_checkpoint(c->job, t, c->checkpoint, c->hi, c->total, e);
out:
	json_decref(doc);
	return rc;
}

int normalizers_job_run(struct job *j, struct err *e)
{
	struct core *core = job_core(j);
	const char *name = job_target(j);
	uint32_t arr = (uint32_t)json_integer_value(json_object_get(job_args(j), "array"));
	const json_t *cp = job_checkpoint(j);
	uint64_t next = cp ? (uint64_t)json_integer_value(json_object_get(cp, "next")) : 0;
	uint64_t chunk = core_chunk_rows(core, CHUNK_DEFAULT);
	struct store_dataset_info info;
	struct store_reader *r = NULL;
	struct loaded l = {0};
	struct hubness_stats *st = NULL;
	uint64_t *rows = NULL;
	int rc;

	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	if ((rc = store_reader_dataset(r, job_ds(j), &info, e)) != 0 ||
	    (rc = load(r, info.id, &info.schema, name, next > 0, &l, e)) != 0)
		goto out;
	if (l.arr != arr) {
		rc = err_set(e, ERR_CONFLICT, "superseded",
		             "normalizer '%s' was replaced before this job ran", name);
		goto out;
	}
	if (l.tq == NULL && (hubness_topk_new(&l.tq, l.qb.n, l.p.k) != 0 ||
	                     hubness_topk_new(&l.tg, l.gb.n, l.p.k) != 0)) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	st = malloc(chunk * sizeof *st);
	rows = malloc(chunk * sizeof *rows);
	if (st == NULL || rows == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	for (;;) {
		uint64_t hi = next + chunk;
		struct chunk_ctx cc = {.job = j, .ds = info.id, .name = name, .arr = arr, .lo = next};
		void *tblob = NULL;

		if (jobs_should_stop(j)) {
			rc = ERR_CANCELLED;
			goto out;
		}
		/* a fresh snapshot per chunk: rows ingested meanwhile are seen */
		store_reader_close(r);
		if ((rc = store_reader_open(core->store, &r, e)) != 0 ||
		    (rc = store_reader_dataset(r, info.id, &info, e)) != 0)
			goto out;
		if (hi > info.next_row)
			hi = info.next_row;
		if (hi < next)
			hi = next;
		for (uint64_t i = next; i < hi; i++)
			rows[i - next] = i;
		jobs_progress(j, next, info.next_row);
		if (hi > next && (rc = compute_rows(r, info.id, &info.schema, &l, rows,
		                                    (size_t)(hi - next), st, l.tq, l.tg, e)) != 0)
			goto out;
		store_reader_close(r);
		r = NULL;
		if (topk_pack(l.tq, l.tg, &tblob, &cc.tlen) != 0) {
			rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
			goto out;
		}
		cc.hi = hi;
		cc.total = info.next_row;
		cc.st = st;
		cc.tblob = tblob;
		cc.tq = l.tq;
		cc.tg = l.tg;
		cc.final = hi >= info.next_row;
		cc.checkpoint = json_pack("{s:I}", "next", (json_int_t)hi);
		rc = cc.checkpoint ? store_write(core->store, chunk_fn, &cc, e) : ERR_NOMEM;
		json_decref(cc.checkpoint);
		free(tblob);
		if (rc != 0)
			goto out;
		jobs_progress(j, hi, info.next_row); /* committed: now it may be shown */
		next = hi;
		if (cc.final && !cc.grew)
			break;
		core_throttle(core);
	}
out:
	store_reader_close(r);
	loaded_free(&l);
	free(st);
	free(rows);
	return rc;
}

/* ---- statistics on ingest ---- */

struct ingest_ctx {
	uint32_t ds;
	const char *name;
	uint32_t arr;
	const uint64_t *rows;
	size_t n;
	struct hubness_stats *st;        /* n, the new rows' stats (flags set here) */
	const struct hubness_topk *nq, *ng; /* the batch's own top-k */
	unsigned k;
	size_t nbq, nbg;
};

/* Flags of row under the sets. */
static uint32_t flags_of(const struct hubness_topk *tq, const struct hubness_topk *tg,
                         uint64_t row)
{
	return (hubness_topk_contains(tq, row) ? HUBNESS_IN_AQ : 0) |
	       (hubness_topk_contains(tg, row) ? HUBNESS_IN_AG : 0);
}

/* 1 when the activation flags were set by POST :activation (a cluster's merged sets). */
static int activation_global(const json_t *doc)
{
	const char *a = json_string_value(json_object_get(doc, "activation"));

	return a != NULL && strcmp(a, "local") != 0;
}

/* Ingest into a normaliser whose flags are a cluster's: the new rows' statistics without
 * flags, their offers merged into the local top-k, and the normaliser marked "stale" (its
 * flags wait for the next merge). */
static int ingest_global(const struct ingest_ctx *c, struct store_txn *t, json_t *doc,
                         struct err *e)
{
	struct hubness_topk *mq = NULL, *mg = NULL;
	const void *blob;
	void *tblob = NULL;
	size_t len, tlen;
	int rc;

	if (hubness_topk_new(&mq, c->nbq, c->k) != 0 || hubness_topk_new(&mg, c->nbg, c->k) != 0) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	if ((rc = store_txn_doc_get(t, c->ds, STORE_NS_NORMALIZER_TOPK, c->name, strlen(c->name),
	                            &blob, &len, e)) != 0 ||
	    (rc = topk_unpack(blob, len, mq, mg, e)) != 0)
		goto out;
	hubness_topk_merge(mq, c->nq);
	hubness_topk_merge(mg, c->ng);
	for (size_t i = 0; i < c->n && rc == 0; i++)
		rc = store_txn_array_put(t, c->ds, c->arr, sizeof c->st[i], c->rows[i], 1, &c->st[i],
		                         e);
	if (rc == 0 && topk_pack(mq, mg, &tblob, &tlen) != 0)
		rc = ERR_NOMEM;
	if (rc == 0)
		rc = store_txn_doc_put(t, c->ds, STORE_NS_NORMALIZER_TOPK, c->name, strlen(c->name),
		                       tblob, tlen, e);
	if (rc == 0) {
		json_object_set_new(doc, "activation", json_string("stale"));
		rc = jdoc_txn_put(t, c->ds, STORE_NS_NORMALIZER, c->name, doc, e);
	}
out:
	free(tblob);
	hubness_topk_free(mq);
	hubness_topk_free(mg);
	return rc;
}

static int ingest_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct ingest_ctx *c = ctx;
	struct hubness_topk *oq = NULL, *og = NULL, *mq = NULL, *mg = NULL;
	json_t *doc = NULL;
	const void *blob;
	size_t len;
	void *tblob = NULL;
	size_t tlen;
	uint64_t *rq = NULL, *rg = NULL;
	size_t nrq = 0, nrg = 0;
	int rc;

	if ((rc = jdoc_txn_get(t, c->ds, STORE_NS_NORMALIZER, c->name, &doc, e)) != 0)
		return rc;
	if (doc_u64(doc, "array") != c->arr || !json_is_true(json_object_get(doc, "ready"))) {
		json_decref(doc);
		return 0; /* replaced meanwhile: its job covers these rows */
	}
	if (activation_global(doc)) {
		/* the flags came from a cluster's merged sets: the local top-k still follows the
		 * rows (the next merge reads it), the flags wait for that merge */
		rc = ingest_global(c, t, doc, e);
		json_decref(doc);
		return rc;
	}
	json_decref(doc);
	if (hubness_topk_new(&oq, c->nbq, c->k) != 0 || hubness_topk_new(&og, c->nbg, c->k) != 0 ||
	    hubness_topk_new(&mq, c->nbq, c->k) != 0 || hubness_topk_new(&mg, c->nbg, c->k) != 0) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	if ((rc = store_txn_doc_get(t, c->ds, STORE_NS_NORMALIZER_TOPK, c->name, strlen(c->name),
	                            &blob, &len, e)) != 0 ||
	    (rc = topk_unpack(blob, len, oq, og, e)) != 0 ||
	    (rc = topk_unpack(blob, len, mq, mg, e)) != 0)
		goto out;
	hubness_topk_merge(mq, c->nq);
	hubness_topk_merge(mg, c->ng);
	/* rows that entered or left a set get their flags rewritten */
	if (hubness_topk_rows(oq, &rq, &nrq) != 0 || hubness_topk_rows(og, &rg, &nrg) != 0) {
		rc = ERR_NOMEM;
		goto out;
	}
	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		const uint64_t *v = pass ? rg : rq;
		size_t nv = pass ? nrg : nrq;

		for (size_t i = 0; i < nv && rc == 0; i++) {
			struct hubness_stats s;
			uint32_t f = flags_of(mq, mg, v[i]);

			if ((rc = store_txn_array_get(t, c->ds, c->arr, sizeof s, v[i], 1, &s, e)) != 0)
				break;
			if ((s.flags & (HUBNESS_IN_AQ | HUBNESS_IN_AG)) != f) {
				s.flags = (s.flags & ~(HUBNESS_IN_AQ | HUBNESS_IN_AG)) | f;
				rc = store_txn_array_put(t, c->ds, c->arr, sizeof s, v[i], 1, &s, e);
			}
		}
	}
	for (size_t i = 0; i < c->n && rc == 0; i++) {
		struct hubness_stats s = c->st[i];

		if (s.flags & HUBNESS_COMPUTED)
			s.flags |= flags_of(mq, mg, c->rows[i]);
		rc = store_txn_array_put(t, c->ds, c->arr, sizeof s, c->rows[i], 1, &s, e);
	}
	if (rc == 0 && topk_pack(mq, mg, &tblob, &tlen) != 0)
		rc = ERR_NOMEM;
	if (rc == 0)
		rc = store_txn_doc_put(t, c->ds, STORE_NS_NORMALIZER_TOPK, c->name, strlen(c->name),
		                       tblob, tlen, e);
out:
	free(tblob);
	free(rq);
	free(rg);
	hubness_topk_free(oq);
	hubness_topk_free(og);
	hubness_topk_free(mq);
	hubness_topk_free(mg);
	return rc;
}

struct names {
	char (*v)[STORE_NAME_MAX + 1];
	size_t n;
};

static int list_fn(void *ctx, const char *key, size_t key_len, const void *val, size_t len)
{
	struct names *ns = ctx;
	void *g;

	(void)val;
	(void)len;
	if (key_len > STORE_NAME_MAX)
		return 0;
	if ((g = realloc(ns->v, (ns->n + 1) * sizeof *ns->v)) == NULL)
		return ERR_NOMEM;
	ns->v = g;
	memcpy(ns->v[ns->n], key, key_len);
	ns->v[ns->n++][key_len] = '\0';
	return 0;
}

void normalizers_on_ingest(struct core *core, uint32_t ds_id, const struct store_schema *schema,
                       const struct store_record *recs, const uint64_t *rows, size_t n)
{
	struct store_reader *r = NULL;
	struct names ns = {0};
	struct err e = {0};

	if (n == 0 || store_reader_open(core->store, &r, &e) != 0)
		return;
	if (store_reader_docs(r, ds_id, STORE_NS_NORMALIZER, list_fn, &ns, &e) != 0 || ns.n == 0) {
		store_reader_close(r);
		free(ns.v);
		return;
	}
	for (size_t i = 0; i < ns.n; i++) {
		struct loaded l = {0};
		struct hubness_topk *bq = NULL, *bg = NULL;
		struct hubness_stats *st = NULL;
		uint64_t *mine = NULL;
		size_t m = 0;
		int rc;

		err_clear(&e);
		if (load(r, ds_id, schema, ns.v[i], 0, &l, &e) != 0)
			continue;
		if (!json_is_true(json_object_get(l.doc, "ready"))) {
			loaded_free(&l);
			continue; /* its job reaches these rows */
		}
		mine = malloc(n * sizeof *mine);
		st = malloc(n * sizeof *st);
		rc = mine && st ? 0 : ERR_NOMEM;
		for (size_t k = 0; rc == 0 && k < n; k++)
			if (recs[k].vec[l.space] != NULL)
				mine[m++] = rows[k];
		if (rc == 0 && m > 0 &&
		    (rc = hubness_topk_new(&bq, l.qb.n, l.p.k)) == 0 &&
		    (rc = hubness_topk_new(&bg, l.gb.n, l.p.k)) == 0 &&
		    (rc = compute_rows(r, ds_id, schema, &l, mine, m, st, bq, bg, &e)) == 0) {
			struct ingest_ctx c = {.ds = ds_id, .name = ns.v[i], .arr = l.arr, .rows = mine,
			                       .n = m, .st = st, .nq = bq, .ng = bg, .k = l.p.k,
			                       .nbq = l.qb.n, .nbg = l.gb.n};

			/* the reader must be closed before writing (a map resize waits for it) */
			store_reader_close(r);
			r = NULL;
			rc = store_write(core->store, ingest_fn, &c, &e);
			if (store_reader_open(core->store, &r, &e) != 0)
				r = NULL;
		}
		if (rc != 0)
			log_msg(LOG_WARN, "hubness_ingest", "normalizer=%s error=%s detail=\"%s\"",
			        ns.v[i], err_str(rc), e.detail);
		hubness_topk_free(bq);
		hubness_topk_free(bg);
		free(mine);
		free(st);
		loaded_free(&l);
		if (r == NULL)
			break;
	}
	store_reader_close(r);
	free(ns.v);
}

/* ---- forgetting a deleted record ---- */

struct delete_ctx {
	uint32_t ds;
	uint64_t row;
	const struct names *ns;
};

/* The stored top-k sets of normaliser name without row. Their sizes come from the blob itself,
 * so the banks need not be loaded. */
static int delete_topk(struct store_txn *t, uint32_t ds, const char *name, uint64_t row,
                       struct err *e)
{
	struct hubness_topk *tq = NULL, *tg = NULL;
	const unsigned char *p;
	const void *blob;
	size_t len, at, gone;
	void *nb = NULL;
	uint64_t nq, ng;
	uint32_t kq, kg;
	int rc;

	rc = store_txn_doc_get(t, ds, STORE_NS_NORMALIZER_TOPK, name, strlen(name), &blob, &len, e);
	if (rc == ERR_NOT_FOUND) { /* its job has not committed a chunk yet */
		err_clear(e);
		return 0;
	}
	if (rc != 0)
		return rc;
	p = blob;
	if (len < 12)
		return err_set(e, ERR_INTERNAL, "bad_topk_blob", "the stored top-k state does not parse");
	memcpy(&nq, p, 8);
	memcpy(&kq, p + 8, 4);
	at = 12 + (size_t)nq * kq * 12;
	if (len < at + 12 || nq > HUBNORM_BANK_MAX || kq == 0)
		return err_set(e, ERR_INTERNAL, "bad_topk_blob", "the stored top-k state does not parse");
	memcpy(&ng, p + at, 8);
	memcpy(&kg, p + at + 8, 4);
	if (ng > HUBNORM_BANK_MAX || kg == 0)
		return err_set(e, ERR_INTERNAL, "bad_topk_blob", "the stored top-k state does not parse");
	if (hubness_topk_new(&tq, (size_t)nq, kq) != 0 || hubness_topk_new(&tg, (size_t)ng, kg) != 0) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	if ((rc = topk_unpack(blob, len, tq, tg, e)) != 0)
		goto out;
	gone = hubness_topk_remove(tq, row) + hubness_topk_remove(tg, row);
	if (gone == 0)
		goto out;
	if (topk_pack(tq, tg, &nb, &len) != 0) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	rc = store_txn_doc_put(t, ds, STORE_NS_NORMALIZER_TOPK, name, strlen(name), nb, len, e);
out:
	free(nb);
	hubness_topk_free(tq);
	hubness_topk_free(tg);
	return rc;
}

static int delete_fn(void *ctx, struct store_txn *t, struct err *e)
{
	const struct delete_ctx *c = ctx;
	const struct hubness_stats none = {0};
	int rc = 0;

	for (size_t i = 0; i < c->ns->n && rc == 0; i++) {
		const char *name = c->ns->v[i];
		json_t *doc = NULL;
		uint32_t arr;

		rc = jdoc_txn_get(t, c->ds, STORE_NS_NORMALIZER, name, &doc, e);
		if (rc == ERR_NOT_FOUND) { /* deleted since the listing */
			err_clear(e);
			rc = 0;
			continue;
		}
		if (rc != 0)
			break;
		arr = (uint32_t)doc_u64(doc, "array");
		json_decref(doc);
		if (arr != 0)
			rc = store_txn_array_put(t, c->ds, arr, sizeof none, c->row, 1, &none, e);
		if (rc == 0)
			rc = delete_topk(t, c->ds, name, c->row, e);
	}
	return rc == ERR_NOT_FOUND ? 0 : rc; /* the dataset went away */
}

void normalizers_on_delete(struct core *core, uint32_t ds_id, uint64_t row)
{
	struct store_reader *r = NULL;
	struct names ns = {0};
	struct err e = {0};
	int rc;

	if (store_reader_open(core->store, &r, &e) != 0)
		return;
	rc = store_reader_docs(r, ds_id, STORE_NS_NORMALIZER, list_fn, &ns, &e);
	store_reader_close(r);
	if (rc == 0 && ns.n > 0) {
		struct delete_ctx c = {.ds = ds_id, .row = row, .ns = &ns};

		rc = store_write(core->store, delete_fn, &c, &e);
	}
	if (rc != 0)
		log_msg(LOG_WARN, "hubness_delete", "dataset_id=%u row=%llu error=%s detail=\"%s\"",
		        (unsigned)ds_id, (unsigned long long)row, err_str(rc), e.detail);
	free(ns.v);
}

/* ---- a gallery sharded over a cluster: the activation sets merged by the router ---- */

/* A ready normaliser's doc and its dataset, read through r. ERR_CONFLICT when not ready. */
static int ready_doc(struct store_reader *r, const char *dataset, const char *name,
                     struct store_dataset_info *info, json_t **doc, struct err *e)
{
	int rc;

	if ((rc = store_reader_dataset_named(r, dataset, info, e)) != 0 ||
	    (rc = jdoc_named_reader_get(r, &normalizer_docs, info->id, name, doc, e)) != 0)
		return rc;
	if (json_is_true(json_object_get(*doc, "ready")))
		return 0;
	json_decref(*doc);
	*doc = NULL;
	return err_set(e, ERR_CONFLICT, "normalizer_not_ready",
	               "normalizer '%s' is still computing its statistics (see its job)", name);
}

/* One bank's top-k as [[{"id", "score"}, ...], ...] (empty slots and rows gone left out). */
static json_t *topk_json(struct store_reader *r, uint32_t ds, const struct hubness_topk *t)
{
	json_t *all = json_array();

	for (size_t b = 0; all != NULL && b < t->n; b++) {
		json_t *one = json_array();

		for (unsigned i = 0; one != NULL && i < t->k; i++) {
			uint64_t row = t->row[b * t->k + i];
			const char *id;
			size_t id_len;

			if (row == UINT64_MAX ||
			    store_reader_row(r, ds, row, NULL, &id, &id_len, NULL, NULL, NULL) != 0)
				continue;
			json_array_append_new(one, json_pack("{s:s%, s:f}", "id", id, id_len, "score",
			                                     (double)t->score[b * t->k + i]));
		}
		if (one == NULL || json_array_append_new(all, one) != 0) {
			json_decref(all);
			return NULL;
		}
	}
	return all;
}

int normalizers_topk_json(struct core *core, const char *dataset, const char *name, json_t **out,
                          struct err *e)
{
	struct store_reader *r = NULL;
	struct store_dataset_info info;
	struct loaded l = {0};
	json_t *doc = NULL;
	int rc;

	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	if ((rc = ready_doc(r, dataset, name, &info, &doc, e)) != 0 ||
	    (rc = load(r, info.id, &info.schema, name, 1, &l, e)) != 0)
		goto out;
	*out = json_pack("{s:s, s:O, s:I, s:o, s:o}", "normalizer", name, "version",
	                 json_object_get(doc, "version"), "k", (json_int_t)l.p.k, "query_bank",
	                 topk_json(r, info.id, l.tq), "gallery_bank", topk_json(r, info.id, l.tg));
	if (*out == NULL)
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
out:
	loaded_free(&l);
	json_decref(doc);
	store_reader_close(r);
	return rc;
}

struct activation_ctx {
	uint32_t ds;
	const char *name;
	uint64_t version;
	const json_t *sets[2]; /* in_aq, in_ag: arrays of record ids (borrowed) */
	json_t *doc;           /* out: the normaliser */
	size_t found[2];       /* out: ids of each set that are records here */
};

/* Flag bit of every row named in ids (an array of record ids), or-ed into marks. */
static int mark_ids(struct store_txn *t, uint32_t ds, const json_t *ids, uint8_t bit,
                    uint8_t *marks, uint64_t nrows, size_t *found, struct err *e)
{
	size_t i;
	json_t *one;

	json_array_foreach (ids, i, one) {
		uint64_t row;
		int rc = store_txn_find(t, ds, json_string_value(one), json_string_length(one), &row,
		                        e);

		if (rc == ERR_NOT_FOUND) { /* a record of another shard */
			err_clear(e);
			continue;
		}
		if (rc != 0)
			return rc;
		if (row < nrows) {
			*found += !(marks[row] & bit);
			marks[row] |= bit;
		}
	}
	return 0;
}

static int activation_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct activation_ctx *c = ctx;
	struct store_dataset_info info;
	struct hubness_stats st[STORE_ARRAY_ROWS];
	uint8_t *marks = NULL;
	uint32_t arr;
	int rc;

	json_decref(c->doc);
	c->doc = NULL;
	c->found[0] = c->found[1] = 0;
	if ((rc = store_txn_dataset(t, c->ds, &info, e)) != 0 ||
	    (rc = jdoc_named_txn_get(t, &normalizer_docs, c->ds, c->name, &c->doc, e)) != 0)
		return rc;
	if (!json_is_true(json_object_get(c->doc, "ready")))
		return err_set(e, ERR_CONFLICT, "normalizer_not_ready",
		               "normalizer '%s' is still computing its statistics", c->name);
	if (doc_u64(c->doc, "version") != c->version)
		return err_set(e, ERR_CONFLICT, "version_mismatch",
		               "normalizer '%s' is at version %llu, not %llu", c->name,
		               (unsigned long long)doc_u64(c->doc, "version"),
		               (unsigned long long)c->version);
	arr = (uint32_t)doc_u64(c->doc, "array");
	if ((marks = calloc(info.next_row + 1, 1)) == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	for (int s = 0; s < 2 && rc == 0; s++)
		rc = mark_ids(t, c->ds, c->sets[s], s ? HUBNESS_IN_AG : HUBNESS_IN_AQ, marks,
		              info.next_row, &c->found[s], e);
	/* every computed row's flags rewritten from the sets, a block of the array at a time */
	for (uint64_t lo = 0; lo < info.next_row && rc == 0; lo += STORE_ARRAY_ROWS) {
		size_t n = (size_t)(info.next_row - lo < STORE_ARRAY_ROWS ? info.next_row - lo
		                                                          : STORE_ARRAY_ROWS);
		int dirty = 0;

		if ((rc = store_txn_array_get(t, c->ds, arr, sizeof *st, lo, n, st, e)) != 0)
			break;
		for (size_t i = 0; i < n; i++) {
			uint32_t f = st[i].flags & HUBNESS_COMPUTED ? marks[lo + i] : 0;

			if ((st[i].flags & (HUBNESS_IN_AQ | HUBNESS_IN_AG)) != f) {
				st[i].flags = (st[i].flags & ~(HUBNESS_IN_AQ | HUBNESS_IN_AG)) | f;
				dirty = 1;
			}
		}
		if (dirty)
			rc = store_txn_array_put(t, c->ds, arr, sizeof *st, lo, n, st, e);
	}
	free(marks);
	if (rc != 0)
		return rc;
	json_object_set_new(c->doc, "activation", json_string("global"));
	json_object_set_new(c->doc, "updated", json_integer(now_unix()));
	return jdoc_txn_put(t, c->ds, STORE_NS_NORMALIZER, c->name, c->doc, e);
}

/* The "in_aq" / "in_ag" arrays of body: record ids, each a string. */
static int activation_sets(const json_t *body, const json_t *sets[2], struct err *e)
{
	static const char *const keys[2] = {"in_aq", "in_ag"};

	for (int s = 0; s < 2; s++) {
		size_t i;
		json_t *one;

		sets[s] = json_object_get(body, keys[s]);
		if (!json_is_array(sets[s]))
			return err_set(e, ERR_INVALID, "bad_param",
			               "\"%s\" must be an array of record ids", keys[s]);
		json_array_foreach (sets[s], i, one)
			if (!json_is_string(one))
				return err_set(e, ERR_INVALID, "bad_param",
				               "\"%s\"[%zu] must be a record id", keys[s], i);
	}
	return 0;
}

int normalizers_activation(struct core *core, const char *dataset, const char *name,
                           const json_t *body, json_t **out, struct err *e)
{
	struct activation_ctx c = {.name = name};
	struct store_dataset_info info;
	const json_t *ver = json_object_get(body, "version");
	const char *key;
	json_t *val;
	int rc;

	if (!json_is_object(body))
		return err_set(e, ERR_INVALID, "bad_param", "the body must be a JSON object");
	json_object_foreach((json_t *)body, key, val)
		if (strcmp(key, "version") != 0 && strcmp(key, "in_aq") != 0 &&
		    strcmp(key, "in_ag") != 0)
			return err_set(e, ERR_INVALID, "unknown_field", "unknown field '%s'", key);
	if (!json_is_integer(ver) || json_integer_value(ver) < 1)
		return err_set(e, ERR_INVALID, "bad_param",
		               "\"version\" must be the normalizer's version (an integer)");
	if ((rc = activation_sets(body, c.sets, e)) != 0 ||
	    (rc = store_dataset_get(core->store, dataset, &info, e)) != 0)
		return rc;
	c.ds = info.id;
	c.version = (uint64_t)json_integer_value(ver);
	rc = store_write(core->store, activation_fn, &c, e);
	if (rc == 0) {
		*out = view_of(core, c.doc);
		if (*out != NULL)
			json_object_set_new(*out, "activation_rows",
			                    json_pack("{s:I, s:I}", "in_aq", (json_int_t)c.found[0],
			                              "in_ag", (json_int_t)c.found[1]));
		else
			rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	json_decref(c.doc);
	return rc;
}

/* The statistics of one record as JSON, null when it has none (no vector, absent). */
static json_t *stats_one(struct store_reader *r, uint32_t ds, uint32_t arr, const json_t *id)
{
	struct hubness_stats st;
	uint64_t row;

	if (store_reader_find(r, ds, json_string_value(id), json_string_length(id), &row, NULL) != 0 ||
	    store_reader_array(r, ds, arr, sizeof st, row, 1, &st, NULL) != 0 ||
	    !(st.flags & HUBNESS_COMPUTED))
		return json_null();
	return json_pack("{s:O, s:f, s:f, s:f, s:b, s:b}", "id", id, "log_zq", (double)st.log_zq,
	                 "log_zg", (double)st.log_zg, "r_b", (double)st.r_b, "in_aq",
	                 (st.flags & HUBNESS_IN_AQ) != 0, "in_ag", (st.flags & HUBNESS_IN_AG) != 0);
}

int normalizers_stats_json(struct core *core, const char *dataset, const char *name,
                           const json_t *body, json_t **out, struct err *e)
{
	const json_t *ids = json_object_get(body, "ids");
	struct store_reader *r = NULL;
	struct store_dataset_info info;
	json_t *doc = NULL, *v = NULL, *one;
	size_t i;
	int rc;

	if (!json_is_object(body) || json_object_size(body) != 1 || !json_is_array(ids) ||
	    json_array_size(ids) > NORMALIZERS_STATS_MAX)
		return err_set(e, ERR_INVALID, "bad_param",
		               "the body must be {\"ids\": [...]}, 0 to %d record ids",
		               NORMALIZERS_STATS_MAX);
	json_array_foreach (ids, i, one)
		if (!json_is_string(one))
			return err_set(e, ERR_INVALID, "bad_param", "\"ids\"[%zu] must be a record id",
			               i);
	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	if ((rc = ready_doc(r, dataset, name, &info, &doc, e)) != 0)
		goto out;
	v = json_array();
	json_array_foreach (ids, i, one)
		if (v != NULL && json_array_append_new(
		                     v, stats_one(r, info.id, (uint32_t)doc_u64(doc, "array"), one)) != 0)
			break;
	*out = v != NULL && i == json_array_size(ids)
	           ? json_pack("{s:s, s:O, s:O}", "normalizer", name, "version",
	                       json_object_get(doc, "version"), "stats", v)
	           : NULL;
	if (*out != NULL)
		x_activation(*out, doc);
	else
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
out:
	json_decref(v);
	json_decref(doc);
	store_reader_close(r);
	return rc;
}

/* ---- search ---- */

struct normalizers_query {
	struct hubness_params p;
	enum hubness_method m;
	uint32_t ds, arr;
	size_t candidates;
};

int normalizers_query_open(struct store_reader *r, uint32_t ds_id, const char *space_name,
                           const char *name, enum hubness_method method, size_t candidates,
                           int dualdis_mode, struct normalizers_query **out, struct err *e)
{
	struct normalizers_query *q;
	json_t *doc = NULL;
	int rc;

	if ((q = calloc(1, sizeof *q)) == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	q->m = method;
	q->candidates = candidates;
	if ((rc = jdoc_named_reader_get(r, &normalizer_docs, ds_id, name, &doc, e)) != 0)
		goto fail;
	if (strcmp(json_string_value(json_object_get(doc, "space")), space_name) != 0) {
		rc = err_set(e, ERR_INVALID, "bad_query", "normalizer '%s' is for space '%s'", name,
		             json_string_value(json_object_get(doc, "space")));
		goto fail;
	}
	if (!json_is_true(json_object_get(doc, "ready"))) {
		rc = err_set(e, ERR_CONFLICT, "normalizer_not_ready",
		             "normalizer '%s' is still computing its statistics (see its job)", name);
		goto fail;
	}
	params_of(doc, &q->p);
	if (dualdis_mode >= 0) /* the request's wins */
		q->p.dualdis_mode = (enum hubness_dualdis_mode)dualdis_mode;
	q->ds = ds_id;
	q->arr = (uint32_t)doc_u64(doc, "array");
	json_decref(doc);
	*out = q;
	return 0;
fail:
	json_decref(doc);
	free(q);
	return rc;
}

void normalizers_query_free(struct normalizers_query *q)
{
	free(q);
}

size_t normalizers_query_candidates(const struct normalizers_query *q)
{
	return q->candidates;
}

int normalizers_rescore(const struct normalizers_query *q, struct store_reader *r, size_t n,
                    const uint64_t *rows, const float *raw, double *out, struct err *e)
{
	struct hubness_stats *st = malloc((n + 1) * sizeof *st);
	size_t top1 = 0;
	int rc = 0;

	if (st == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = store_reader_array(r, q->ds, q->arr, sizeof *st, rows[i], 1, &st[i], e);
		if (raw[i] > raw[top1])
			top1 = i;
	}
	if (rc == 0) {
		hubness_rescore(&q->p, q->m, n, raw, st, top1, hubness_topk_mean(raw, n, q->p.csls_k),
		                out);
		/* a row without statistics (no vector when computed) cannot be normalised */
		for (size_t i = 0; i < n; i++)
			if (!(st[i].flags & HUBNESS_COMPUTED) || !isfinite(out[i]))
				out[i] = -INFINITY;
	}
	free(st);
	return rc;
}

/* ---- report ---- */

struct scored {
	double s;
	uint64_t row;
};

static int scored_cmp(const void *a, const void *b)
{
	const struct scored *x = a, *y = b;

	if (x->s != y->s)
		return x->s > y->s ? -1 : 1;
	return x->row < y->row ? -1 : x->row > y->row;
}

/* N_k summary: skewness with and without zeros, the top hubs. */
static json_t *nk_json(struct store_reader *r, uint32_t ds, const uint32_t *counts,
                       const uint64_t *grows, size_t ng, size_t top)
{
	struct scored *v = malloc((ng + 1) * sizeof *v);
	json_t *hubs = json_array(), *o;
	size_t never = 0;
	uint32_t mx = 0;

	if (v == NULL || hubs == NULL) {
		free(v);
		json_decref(hubs);
		return NULL;
	}
	for (size_t i = 0; i < ng; i++) {
		v[i] = (struct scored){counts[i], grows[i]};
		never += counts[i] == 0;
		mx = counts[i] > mx ? counts[i] : mx;
	}
	qsort(v, ng, sizeof *v, scored_cmp);
	for (size_t i = 0; i < top && i < ng && v[i].s > 0; i++) {
		const char *id;
		size_t id_len;

		if (store_reader_row(r, ds, v[i].row, NULL, &id, &id_len, NULL, NULL, NULL) == 0)
			json_array_append_new(hubs, json_pack("{s:s#, s:i}", "id", id, (int)id_len, "n_k",
			                                      (int)v[i].s));
	}
	free(v);
	o = json_pack("{s:f, s:f, s:I, s:I, s:o}", "skewness", hubness_skewness(counts, ng, 1),
	              "skewness_retrieved_only", hubness_skewness(counts, ng, 0), "never_retrieved",
	              (json_int_t)never, "max_n_k", (json_int_t)mx, "top_hubs", hubs);
	return o;
}

/* The body of a report request: k (neighbours), candidates (at least k), top (hubs listed)
 * and the method (*m; not raw). "queries" must be there; bank_resolve reads it. */
static int report_args(const json_t *body, double *kk, double *cand, double *topn,
                       enum hubness_method *m, struct err *e)
{
	const char *key, *method;
	json_t *val;
	int rc;

	if (!json_is_object(body))
		return err_set(e, ERR_INVALID, "bad_report", "the body must be a JSON object");
	json_object_foreach((json_t *)body, key, val) {
		if (strcmp(key, "queries") != 0 && strcmp(key, "k") != 0 &&
		    strcmp(key, "candidates") != 0 && strcmp(key, "method") != 0 &&
		    strcmp(key, "top") != 0)
			return err_set(e, ERR_INVALID, "unknown_field", "unknown field '%s'", key);
	}
	if ((rc = num_param(body, "k", 10, 1, 1000, 1, kk, e)) != 0 ||
	    (rc = num_param(body, "candidates", CANDIDATES_DEFAULT, 1, CANDIDATES_MAX, 1, cand,
	                    e)) != 0 ||
	    (rc = num_param(body, "top", 10, 0, 1000, 1, topn, e)) != 0)
		return rc;
	*m = HUBNESS_DUALIS;
	method = json_string_value(json_object_get(body, "method"));
	if (json_object_get(body, "method") != NULL &&
	    (hubness_method_parse(method, m) != 0 || *m == HUBNESS_RAW))
		return err_set(e, ERR_INVALID, "bad_report",
		               "\"method\" must be is, dis, dualis, dualdis or csls");
	if (json_object_get(body, "queries") == NULL)
		return err_set(e, ERR_INVALID, "bad_report", "\"queries\" is required");
	if (*cand < *kk)
		*cand = *kk;
	return 0;
}

/* The index of row in grows (sorted, ng entries): the first entry not below it. */
static size_t gallery_index(const uint64_t *grows, size_t ng, uint64_t row)
{
	size_t lo = 0, hi = ng;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (grows[mid] < row)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* A report's gallery in memory, and each query's top k before and after normalisation. */
struct report {
	const struct normalizers_query *hq;
	const struct bank *qs;          /* the queries */
	size_t ng, k, nc;               /* gallery size, neighbours, candidates (k <= nc <= ng) */
	const uint64_t *grows;          /* the gallery's rows, sorted */
	const float *g;                 /* their vectors, normalised (zero: none) */
	const struct hubness_stats *st; /* their statistics */
	uint64_t *top_raw, *top_norm;   /* qs->n * k rows each (out) */
};

/* Fill x->top_raw and x->top_norm: for each query, the k nearest gallery rows by cosine, and
 * the k best of its nc nearest once rescored with the normaliser's statistics. */
static int report_rank(struct report *x, struct err *e)
{
	size_t ng = x->ng, nc = x->nc, k = x->k;
	const struct bank *qs = x->qs;
	struct scored *sc = malloc(ng * sizeof *sc);
	float *cs = malloc(nc * sizeof *cs);
	struct hubness_stats *cst = malloc(nc * sizeof *cst);
	double *outs = malloc(nc * sizeof *outs);
	uint64_t *crow = malloc(nc * sizeof *crow);
	struct scored *rr = malloc(nc * sizeof *rr);
	int rc = 0;

	if (sc == NULL || cs == NULL || cst == NULL || outs == NULL || crow == NULL || rr == NULL)
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	for (size_t qi = 0; rc == 0 && qi < qs->n; qi++) {
		const float *q = qs->vecs + qi * qs->dim;

		for (size_t i = 0; i < ng; i++)
			sc[i] = (struct scored){vec_f32_dot(x->g + i * qs->dim, q, qs->dim),
			                        x->grows[i]};
		qsort(sc, ng, sizeof *sc, scored_cmp);
		for (size_t i = 0; i < k; i++)
			x->top_raw[qi * k + i] = (uint64_t)(sc[i].row);
		for (size_t i = 0; i < nc; i++) {
			cs[i] = (float)sc[i].s;
			crow[i] = sc[i].row;
			cst[i] = x->st[gallery_index(x->grows, ng, crow[i])];
		}
		hubness_rescore(&x->hq->p, x->hq->m, nc, cs, cst, 0,
		                hubness_topk_mean(cs, nc, x->hq->p.csls_k), outs);
		for (size_t i = 0; i < nc; i++)
			rr[i] = (struct scored){
			    (cst[i].flags & HUBNESS_COMPUTED) && isfinite(outs[i]) ? outs[i]
			                                                           : -INFINITY,
			    crow[i]};
		qsort(rr, nc, sizeof *rr, scored_cmp);
		for (size_t i = 0; i < k; i++)
			x->top_norm[qi * k + i] = rr[i].row;
	}
	free(sc);
	free(cs);
	free(cst);
	free(outs);
	free(crow);
	free(rr);
	return rc;
}

/* The report of x: how often each gallery item is among the queries' k nearest before and
 * after (cnt: 2 * ng counters, zeroed), with the top hubs of each. New, NULL when out of
 * memory. */
static json_t *report_json(struct store_reader *r, const char *name, const struct report *x,
                           double cand, size_t topn, uint32_t *cnt)
{
	json_t *before, *after;

	for (int pass = 0; pass < 2; pass++) {
		const uint64_t *tp = pass ? x->top_norm : x->top_raw;
		uint32_t *c = cnt + (size_t)pass * x->ng;

		for (size_t i = 0; i < x->qs->n * x->k; i++) {
			size_t lo = gallery_index(x->grows, x->ng, tp[i]);

			if (lo < x->ng && x->grows[lo] == tp[i])
				c[lo]++;
		}
	}
	before = nk_json(r, x->hq->ds, cnt, x->grows, x->ng, topn);
	after = nk_json(r, x->hq->ds, cnt + x->ng, x->grows, x->ng, topn);
	return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:o}", "normalizer", name, "method",
	                 hubness_method_name(x->hq->m), "k", (json_int_t)x->k, "candidates",
	                 (json_int_t)cand, "queries", (json_int_t)x->qs->n, "gallery",
	                 (json_int_t)x->ng, "before", before ? before : json_null(), "after",
	                 after ? after : json_null());
}

int normalizers_report(struct core *core, const char *dataset, const char *name, const json_t *body,
                       json_t **out, struct err *e)
{
	struct store_dataset_info ds;
	struct store_reader *r = NULL;
	struct loaded l = {0};
	struct normalizers_query hq = {0};
	struct bank qs = {0};
	struct report x = {.hq = &hq, .qs = &qs};
	json_t *qdef = NULL;
	uint64_t *grows = NULL, *top_raw = NULL, *top_norm = NULL;
	float *g = NULL;
	struct hubness_stats *st = NULL;
	uint32_t *cnt = NULL;
	size_t ng = 0;
	double kk, cand, topn;
	int rc;

	if ((rc = report_args(body, &kk, &cand, &topn, &hq.m, e)) != 0)
		return rc;
	if ((rc = store_dataset_get(core->store, dataset, &ds, e)) != 0 ||
	    (rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	if ((rc = load(r, ds.id, &ds.schema, name, 0, &l, e)) != 0)
		goto out;
	if (!json_is_true(json_object_get(l.doc, "ready"))) {
		rc = err_set(e, ERR_CONFLICT, "normalizer_not_ready",
		             "normalizer '%s' is still computing its statistics", name);
		goto out;
	}
	hq.p = l.p;
	hq.ds = ds.id;
	hq.arr = l.arr;
	if ((rc = bank_resolve(core, r, "queries", json_object_get(body, "queries"), ds.id, l.space,
	                       l.qb.dim, &qs, &qdef, e)) != 0)
		goto out;
	/* the gallery in memory, normalised: the report is exact (brute force), so the
	 * measure does not depend on an index's recall */
	if ((rc = eligible_rows(r, ds.id, l.space, 0, ds.next_row, NULL, &grows, &ng, e)) != 0)
		goto out;
	if (ng == 0) {
		rc = err_set(e, ERR_INVALID, "empty_gallery", "the gallery space has no vectors");
		goto out;
	}
	if (kk > ng)
		kk = (double)ng;
	if (cand > ng)
		cand = (double)ng;
	g = malloc(ng * l.qb.dim * sizeof *g);
	st = malloc(ng * sizeof *st);
	cnt = calloc(2 * ng, sizeof *cnt);
	top_raw = malloc(qs.n * (size_t)kk * sizeof *top_raw);
	top_norm = malloc(qs.n * (size_t)kk * sizeof *top_norm);
	if (g == NULL || st == NULL || cnt == NULL || top_raw == NULL || top_norm == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	for (size_t i = 0; i < ng; i++) {
		int zero = 1;

		if (read_row(r, ds.id, l.space, &ds.schema.spaces[l.space], grows[i],
		             g + i * l.qb.dim) == 0)
			normalise(g + i * l.qb.dim, l.qb.dim, &zero);
		if (zero)
			memset(g + i * l.qb.dim, 0, l.qb.dim * sizeof *g);
		if ((rc = store_reader_array(r, ds.id, l.arr, sizeof *st, grows[i], 1, &st[i], e)) != 0)
			goto out;
	}
	x.ng = ng;
	x.k = (size_t)kk;
	x.nc = (size_t)cand;
	x.grows = grows;
	x.g = g;
	x.st = st;
	x.top_raw = top_raw;
	x.top_norm = top_norm;
	if ((rc = report_rank(&x, e)) != 0)
		goto out;
	if ((*out = report_json(r, name, &x, cand, (size_t)topn, cnt)) == NULL)
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
out:
	store_reader_close(r);
	loaded_free(&l);
	bank_clear(&qs);
	json_decref(qdef);
	free(grows);
	free(top_raw);
	free(top_norm);
	free(g);
	free(st);
	free(cnt);
	return rc;
}
