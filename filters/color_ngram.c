/* SPDX-License-Identifier: MIT */
/* color_ngram: CoLoR-Filter (spec section 2) entirely inside winnow, for text: the fit trains
 * word n-gram models (algo/ngram.c: interpolated modified Kneser-Ney) and every text record
 * is scored by its conditional loss reduction, no signals needed.
 *
 * The prior. A record must never be scored by models fitted on its own text: an n-gram model
 * memorises the rare n-grams of its training text, so a prior fitted on the pool it scores
 * gives every record an unfairly low loss, and adding downstream text dilutes exactly those
 * memorised n-grams. So either (param "prior") the prior is trained on a named dataset that
 * is not scored, or (the default) it is cross-fitted: the pool is split into K folds by a
 * hash of the record id (fold = hash64(id) mod K, so a record's fold never changes), and the
 * records of fold k are scored with a prior trained on the other K - 1 folds.
 *
 * The conditional. The paper fine-tunes the prior on downstream data. Here the conditional is
 * the interpolation p_cond = lambda p_down + (1 - lambda) p_prior of the prior with a model
 * trained on the downstream dataset alone, rather than one model trained on the union of
 * both texts: (1) it is what fine-tuning does to a model, a move of its mass toward the
 * downstream text that keeps what the prior knows; (2) the downstream weight is lambda,
 * whatever the sizes (in a union, 1 MB of downstream text next to 100 MB of pool text would
 * change the counts by 1%, and the score would be mostly noise); (3) the downstream model is
 * small and shared by every fold, where a union needs one more full-size model per fold.
 *
 * Scores (param "output"): "color" (default) = L_prior - L_cond, the conditional loss
 * reduction, with L the mean (or, reduction "sum", the summed) negative log-likelihood in
 * nats over the record's n + 1 predictions (its words and </s>); "cond", "prior" and "down"
 * give -L of one model alone (higher = more likely), to compare rankings.
 *
 * Overlap (issue 19). Naming as prior the pool itself, or a dataset that shares records with
 * it, is the very trap cross-fitting avoids, and a downstream dataset that shares records with
 * the pool makes the filter select the downstream data itself. Measured on a genre-selection
 * task (order 3, top 10%): enrichment 5.65 with a disjoint prior, 6.17 cross-fitted, 2.48 with
 * the pool as its own prior. So the prior and the downstream dataset are compared with the
 * pool: a record is shared when its text (its token sequence, so case and spacing do not
 * matter) is also the text of a record of the pool. Not its id: datasets often number their
 * records on their own ("verb-0" of a prior and "verb-0" of the pool are different texts),
 * and what a model memorises is the text, whatever the id. A share above CNG_MAX_OVERLAP of the
 * smaller of the two datasets' text records is refused (ERR_INVALID, slug
 * prior_overlaps_pool, naming the param, the count and the share) unless the param
 * "allow_overlap" is true; an accepted overlap (allowed, or small) becomes a warning of the
 * instance (filter_warn). check runs this before the instance is stored (PUT answers 422);
 * fit runs it again on the data it trains on (the datasets may have changed since), reading
 * the pool once more only when the prior is named (cross-fitting reads it anyway).
 *
 * Not cheap (records ingested later are pending until :score, which refits) and fitted; the
 * models are saved as the instance's fitted state in LMDB, so a restart does not refit.
 * Unscorable: no text (no_field), text not a string or without a token (bad_field).
 * Threading: score only reads the instance. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "filters/filter.h"
#include "algo/ngram.h"
#include "filters/registry.h"
#include "store/store.h"
#include "lib/vec.h"

#define CNG_MAGIC 0x31474e43u /* "CNG1" */
#define CNG_MAX_FOLDS 16
#define CNG_MAX_OVERLAP 0.01 /* of the smaller dataset's text records */
#define CNG_COUNTS_FORMAT "color_ngram_counts/1" /* param "counts", the partials */

enum cng_output { CNG_COLOR, CNG_COND, CNG_PRIOR, CNG_DOWN };

struct color_ngram {
	struct filter base;
	/* params */
	char downstream[STORE_NAME_MAX + 1];
	char prior[STORE_NAME_MAX + 1]; /* "" = cross-fitting */
	unsigned folds, order, output, sum;
	int allow_overlap;
	double lambda;
	size_t budget;
	/* fitted state; mem is charged by every table of it (new per fit or load) */
	struct ngram_mem *mem;
	struct ngram_vocab *vocab;
	struct ngram_model *priors[CNG_MAX_FOLDS]; /* folds of them, or 1 with a named prior */
	unsigned npriors;
	struct ngram_model *down;
	json_t *counts; /* param "counts": the merged partials of a cluster's shards, or NULL */
};

static int name_param(const json_t *params, const char *key, int required, char *out,
                      struct err *e)
{
	const json_t *v = json_object_get(params, key);

	if (v == NULL)
		return required ? err_set(e, ERR_INVALID, "bad_param",
		                          "param '%s' is required: the name of a dataset", key)
		                : 0;
	if (!json_is_string(v) || !store_name_valid(json_string_value(v)))
		return err_set(e, ERR_INVALID, "bad_param", "param '%s' must be a dataset name", key);
	snprintf(out, STORE_NAME_MAX + 1, "%s", json_string_value(v));
	return 0;
}

/* Param "counts" (borrowed): the shape of a merged partial for these params. */
static int counts_check(const struct color_ngram *c, const json_t *counts, struct err *e)
{
	const json_t *priors = json_object_get(counts, "priors");
	size_t want = c->prior[0] != '\0' ? 1 : c->folds;

	if (!json_is_object(counts) ||
	    !json_is_string(json_object_get(counts, "format")) ||
	    strcmp(json_string_value(json_object_get(counts, "format")), CNG_COUNTS_FORMAT) != 0)
		return err_set(e, ERR_INVALID, "bad_counts",
		               "param 'counts' must be the merged partials of the shards "
		               "(format \"%s\")", CNG_COUNTS_FORMAT);
	if (json_integer_value(json_object_get(counts, "order")) != (json_int_t)c->order ||
	    !json_is_array(priors) || json_array_size(priors) != want ||
	    !json_is_object(json_object_get(counts, "down")))
		return err_set(e, ERR_INVALID, "bad_counts",
		               "param 'counts' must hold order %u, %zu prior models and the "
		               "downstream model, as the partials of these params", c->order, want);
	for (size_t i = 0; i < want; i++)
		if (!json_is_object(json_array_get(priors, i)))
			return err_set(e, ERR_INVALID, "bad_counts",
			               "param 'counts': priors[%zu] must be an object", i);
	return 0;
}

static int cng_create(struct filter *f, const json_t *params, const struct store_schema *schema,
                      struct err *e)
{
	static const char *const known[] = {"downstream", "prior",     "folds",
	                                    "order",      "lambda",    "memory_mb",
	                                    "output",     "reduction", "allow_overlap",
	                                    "counts",     NULL};
	static const char *const outputs[] = {"color", "cond", "prior", "down", NULL};
	static const char *const reductions[] = {"mean", "sum", NULL};
	struct color_ngram *c = (struct color_ngram *)f;
	double folds = 2, order = 3, mb = 2048;
	int rc;

	(void)schema;
	c->lambda = 0.5;
	c->output = CNG_COLOR;
	if ((rc = filter_params_known(params, known, e)) != 0 ||
	    (rc = name_param(params, "downstream", 1, c->downstream, e)) != 0 ||
	    (rc = name_param(params, "prior", 0, c->prior, e)) != 0 ||
	    (rc = filter_param_number(params, "folds", 2, CNG_MAX_FOLDS, 1, &folds, e)) != 0 ||
	    (rc = filter_param_number(params, "order", 3, NGRAM_MAX_ORDER, 1, &order, e)) != 0 ||
	    (rc = filter_param_number(params, "lambda", 0, 1, 0, &c->lambda, e)) != 0 ||
	    (rc = filter_param_number(params, "memory_mb", 16, 1 << 20, 1, &mb, e)) != 0 ||
	    (rc = filter_param_choice(params, "output", outputs, &c->output, e)) != 0 ||
	    (rc = filter_param_choice(params, "reduction", reductions, &c->sum, e)) != 0 ||
	    (rc = filter_param_bool(params, "allow_overlap", &c->allow_overlap, e)) != 0)
		return rc;
	if (!(c->lambda > 0 && c->lambda < 1))
		return err_set(e, ERR_INVALID, "bad_param",
		               "param 'lambda' must be in (0, 1): the downstream model's weight in "
		               "the conditional");
	if (c->prior[0] != '\0' && json_object_get(params, "folds") != NULL)
		return err_set(e, ERR_INVALID, "bad_param",
		               "params 'prior' and 'folds' exclude each other: a named prior is not "
		               "cross-fitted");
	if (c->prior[0] != '\0' && strcmp(c->prior, c->downstream) == 0)
		return err_set(e, ERR_INVALID, "bad_param",
		               "'prior' and 'downstream' name the same dataset");
	c->folds = (unsigned)folds;
	c->order = (unsigned)order;
	c->budget = (size_t)mb << 20;
	if (json_object_get(params, "counts") != NULL) {
		if ((rc = counts_check(c, json_object_get(params, "counts"), e)) != 0)
			return rc;
		c->counts = json_incref(json_object_get(params, "counts"));
	}
	f->needs = FILTER_NEEDS_BODY | FILTER_NEEDS_ID;
	return 0;
}

static void cng_clear(struct color_ngram *c)
{
	for (unsigned i = 0; i < c->npriors; i++)
		ngram_model_free(c->priors[i]);
	ngram_model_free(c->down);
	ngram_vocab_free(c->vocab);
	free(c->mem);
	c->npriors = 0;
	c->down = NULL;
	c->vocab = NULL;
	c->mem = NULL;
}

static void cng_destroy(struct filter *f)
{
	cng_clear((struct color_ngram *)f);
	json_decref(((struct color_ngram *)f)->counts);
}

static unsigned fold_of(const char *id, unsigned k)
{
	return (unsigned)(ngram_word_hash(id, strlen(id)) % k);
}

/* ---- text to ids ---- */

struct toks {
	uint32_t *v;
	size_t n, cap;
	struct ngram_vocab *add; /* adding unknown words (fit) */
	const struct ngram_vocab *get; /* neither add nor get: only the sequence hash */
	uint64_t seq; /* a hash of the token hashes so far: the text's overlap key */
	int rc;
	struct err *e;
};

static void on_tok(void *ctx, uint64_t h)
{
	struct toks *t = ctx;
	uint32_t id;

	if (t->rc != 0)
		return;
	t->seq = (t->seq ^ h) * 0x9e3779b97f4a7c15ull;
	t->seq ^= t->seq >> 29;
	if (t->n == t->cap) {
		size_t nc = t->cap ? t->cap * 2 : 256;
		uint32_t *p = realloc(t->v, nc * sizeof *p);

		if (p == NULL) {
			t->rc = err_set(t->e, ERR_NOMEM, "out_of_memory", "out of memory");
			return;
		}
		t->v = p;
		t->cap = nc;
	}
	if (t->add != NULL) {
		if ((t->rc = ngram_vocab_add(t->add, h, &id, t->e)) != 0)
			return;
	} else if (t->get != NULL) {
		id = ngram_vocab_get(t->get, h);
	} else {
		id = NGRAM_UNK;
	}
	t->v[t->n++] = id;
}

/* The record's text, or an unscorable status. */
static int text_of(const json_t *body, const char **s, size_t *len)
{
	const json_t *t = json_object_get(body, "text");

	if (t == NULL)
		return FILTER_NO_FIELD;
	if (!json_is_string(t))
		return FILTER_BAD_FIELD;
	*s = json_string_value(t);
	*len = json_string_length(t);
	return 0;
}

/* ---- overlap of a prior or downstream dataset with the pool ---- */

/* A set of 64-bit keys: open addressing, linear probing, 0 marks an empty slot. */
struct keyset {
	uint64_t *v;
	size_t cap, n;
};

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x != 0 ? x : 1;
}

static int keyset_has(const struct keyset *s, uint64_t k)
{
	if (s->cap == 0)
		return 0;
	for (size_t i = k & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
		if (s->v[i] == k)
			return 1;
		if (s->v[i] == 0)
			return 0;
	}
}

static int keyset_add(struct keyset *s, uint64_t k, struct err *e)
{
	size_t i;

	if (2 * (s->n + 1) > s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 1024;
		uint64_t *v = calloc(cap, sizeof *v);

		if (v == NULL)
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		for (size_t j = 0; j < s->cap; j++) {
			if (s->v[j] == 0)
				continue;
			for (i = s->v[j] & (cap - 1); v[i] != 0; i = (i + 1) & (cap - 1))
				;
			v[i] = s->v[j];
		}
		free(s->v);
		s->v = v;
		s->cap = cap;
	}
	for (i = k & (s->cap - 1); s->v[i] != 0; i = (i + 1) & (s->cap - 1))
		if (s->v[i] == k)
			return 0;
	s->v[i] = k;
	s->n++;
	return 0;
}

/* The pool's keys, and the counts of the dataset compared with it. */
struct overlap {
	struct keyset keys; /* the text keys of the pool's text records */
	uint64_t pool_n;    /* the pool's text records */
	int build;          /* 1: records add their keys; 0: records are looked up */
	uint64_t n, shared; /* the compared dataset: text records, and those the pool has */
};

static uint64_t text_key(const struct toks *t)
{
	return mix64(t->seq ^ (uint64_t)t->n ^ 0x74657874ull);
}

/* Record one text record (its tokens in t) in ov. */
static int overlap_note(struct overlap *ov, const struct toks *t, struct err *e)
{
	if (ov->build) {
		ov->pool_n++;
		return keyset_add(&ov->keys, text_key(t), e);
	}
	ov->n++;
	ov->shared += keyset_has(&ov->keys, text_key(t));
	return 0;
}

/* After a dataset was compared (ov->n, ov->shared): refuse it, or note a warning. param is
 * "prior" or "downstream"; dataset its name. Resets the counts. */
static int overlap_verdict(struct filter *f, const char *param, const char *dataset,
                           struct overlap *ov, struct err *e)
{
	const struct color_ngram *c = (const struct color_ngram *)f;
	uint64_t base = ov->n < ov->pool_n ? ov->n : ov->pool_n, shared = ov->shared;
	double share = base ? (double)shared / (double)base : 0;
	int over = share > CNG_MAX_OVERLAP;
	char detail[400];

	ov->n = ov->shared = 0;
	if (shared == 0)
		return 0;
	snprintf(detail, sizeof detail,
	         "%s dataset '%s' shares %llu texts with the pool it scores: %.2f%% of the "
	         "text records of the smaller of the two (%llu)",
	         param, dataset, (unsigned long long)shared, 100 * share,
	         (unsigned long long)base);
	if (over && !c->allow_overlap)
		return err_set(e, ERR_INVALID, "prior_overlaps_pool",
		               "%s, above the %g%% allowed: a model fitted on the records it scores "
		               "inflates their scores (leave out 'prior' to cross-fit, use disjoint "
		               "data, or set \"allow_overlap\": true)",
		               detail, 100 * CNG_MAX_OVERLAP);
	snprintf(detail + strlen(detail), sizeof detail - strlen(detail), "%s",
	         over ? "; allowed by \"allow_overlap\": the scores of those records are inflated"
	              : "; below the 1% refused");
	return filter_warn(f, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:f}", "code",
	                                "prior_overlaps_pool", "detail", detail, "param", param,
	                                "dataset", dataset, "shared", (json_int_t)shared,
	                                "records", (json_int_t)base, "share", share));
}

/* ---- fit ---- */

/* Train the nmodels models on every text record scan gives; by_fold: a record of fold k
 * (of nmodels folds) trains every model but models[k]. */
static int train(struct filter_scan *scan, struct ngram_model **models, unsigned nmodels,
                 int by_fold, struct toks *t, struct overlap *ov, struct err *e)
{
	const struct filter_batch *b;
	int rc;

	while ((rc = filter_scan_next(scan, &b, e)) == 1) {
		for (size_t i = 0; i < b->n; i++) {
			const char *s;
			size_t len;
			unsigned fold = by_fold ? fold_of(b->ids[i], nmodels) : nmodels;

			if (text_of(b->bodies[i], &s, &len) != 0)
				continue;
			t->n = 0;
			t->seq = 0;
			ngram_tokenize(s, len, on_tok, t);
			if (t->rc != 0)
				return t->rc;
			if (t->n == 0)
				continue;
			if (ov != NULL && (rc = overlap_note(ov, t, e)) != 0)
				return rc;
			for (unsigned k = 0; k < nmodels; k++)
				if (k != fold && (rc = ngram_model_add(models[k], t->v, t->n, e)) != 0)
					return rc;
		}
	}
	return rc;
}

/* The new fitted state of a fit, built beside the old one (which it replaces on success). */
static void nc_free(struct color_ngram *nc)
{
	for (unsigned i = 0; i < nc->npriors; i++)
		ngram_model_free(nc->priors[i]);
	ngram_model_free(nc->down);
	ngram_vocab_free(nc->vocab);
	free(nc->mem);
	memset(nc, 0, sizeof *nc);
}

/* Empty models and vocabulary in nc (zeroed by the caller) for c's params. */
static int nc_new(const struct color_ngram *c, struct color_ngram *nc, struct err *e)
{
	int rc;

	nc->npriors = c->prior[0] != '\0' ? 1 : c->folds;
	if ((nc->mem = calloc(1, sizeof *nc->mem)) == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	nc->mem->budget = c->budget;
	if ((rc = ngram_vocab_new(&nc->vocab, nc->mem, e)) != 0)
		return rc;
	for (unsigned i = 0; i < nc->npriors; i++)
		if ((rc = ngram_model_new(&nc->priors[i], c->order, nc->mem, e)) != 0)
			return rc;
	return ngram_model_new(&nc->down, c->order, nc->mem, e);
}

/* Count the texts this daemon holds into nc (new, unfinished): the pool (cross-fitted) or
 * the named prior, and the downstream dataset; the overlap checks on the way. */
static int count_texts(struct filter *f, struct filter_scan *scan, struct color_ngram *nc,
                       struct err *e)
{
	struct color_ngram *c = (struct color_ngram *)f;
	struct filter_scan *other = NULL;
	struct toks t = {.e = e}, kt = {.e = e};
	struct overlap ov = {.build = 1};
	int rc;

	if ((rc = nc_new(c, nc, e)) != 0)
		goto out;
	t.add = nc->vocab;
	if (c->prior[0] == '\0') {
		/* cross-fitting: the pool itself, fold k kept out of prior k */
		if ((rc = train(scan, nc->priors, nc->npriors, 1, &t, &ov, e)) != 0)
			goto out;
		ov.build = 0;
	} else {
		/* the pool's keys only (its words stay out of the vocabulary) */
		if ((rc = train(scan, NULL, 0, 0, &kt, &ov, e)) != 0)
			goto out;
		ov.build = 0;
		if ((rc = filter_scan_open_other(scan, c->prior, &other, e)) != 0 ||
		    (rc = train(other, nc->priors, 1, 0, &t, &ov, e)) != 0 ||
		    (rc = overlap_verdict(f, "prior", c->prior, &ov, e)) != 0)
			goto out;
		filter_scan_close_other(scan, other);
		other = NULL;
	}
	if ((rc = filter_scan_open_other(scan, c->downstream, &other, e)) == 0 &&
	    (rc = train(other, &nc->down, 1, 0, &t, &ov, e)) == 0)
		rc = overlap_verdict(f, "downstream", c->downstream, &ov, e);
out:
	filter_scan_close_other(scan, other);
	free(t.v);
	free(kt.v);
	free(ov.keys.v);
	return rc;
}

/* ---- raw counts as JSON: {"format", "order", "priors": [{ngram: count}], "down": {...}};
 * an n-gram is its words joined by spaces, each "<s>", "</s>" or the word's 64-bit hash in
 * 16 hex digits (texts never leave the daemon, only hashes of words) ---- */

struct to_json {
	const uint64_t *hash; /* by word id */
	uint32_t nids;
	json_t *obj;
};

static void rev_fn(void *ctx, uint64_t h, uint32_t id)
{
	struct to_json *tj = ctx;

	if (id < tj->nids)
		((uint64_t *)tj->hash)[id] = h;
}

static int gram_fn(void *ctx, unsigned k, const uint32_t *ids, uint32_t count)
{
	struct to_json *tj = ctx;
	char key[NGRAM_MAX_ORDER * 17 + 1], *at = key;

	for (unsigned j = 0; j < k; j++) {
		if (j > 0)
			*at++ = ' ';
		if (ids[j] == NGRAM_BOS || ids[j] == NGRAM_EOS)
			at += sprintf(at, "%s", ids[j] == NGRAM_BOS ? "<s>" : "</s>");
		else
			at += sprintf(at, "%016llx",
			              (unsigned long long)(ids[j] < tj->nids ? tj->hash[ids[j]] : 0));
	}
	return json_object_set_new(tj->obj, key, json_integer((json_int_t)count)) == 0 ? 0
	                                                                               : ERR_NOMEM;
}

static json_t *model_json(const struct ngram_model *m, struct to_json *tj)
{
	tj->obj = json_object();
	if (tj->obj != NULL && ngram_model_raw_each(m, gram_fn, tj) != 0) {
		json_decref(tj->obj);
		tj->obj = NULL;
	}
	return tj->obj;
}

static int cng_partial(struct filter *f, struct filter_scan *scan, json_t **out, struct err *e)
{
	struct color_ngram *c = (struct color_ngram *)f;
	struct color_ngram nc;
	struct to_json tj = {0};
	json_t *priors = NULL, *v = NULL;
	int rc;

	memset(&nc, 0, sizeof nc);
	if ((rc = count_texts(f, scan, &nc, e)) != 0)
		goto out;
	tj.nids = ngram_vocab_size(nc.vocab) + 2; /* ids run 4 .. words + 3 */
	if ((tj.hash = calloc(tj.nids, sizeof *tj.hash)) == NULL ||
	    (priors = json_array()) == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	ngram_vocab_each(nc.vocab, rev_fn, &tj);
	for (unsigned i = 0; i < nc.npriors; i++)
		if (json_array_append_new(priors, model_json(nc.priors[i], &tj)) != 0) {
			rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
			goto out;
		}
	v = json_pack("{s:s, s:I, s:O, s:o?}", "format", CNG_COUNTS_FORMAT, "order",
	              (json_int_t)c->order, "priors", priors, "down", model_json(nc.down, &tj));
	if (v == NULL || json_object_get(v, "down") == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	*out = v;
	v = NULL;
out:
	json_decref(v);
	json_decref(priors);
	free((void *)tj.hash);
	nc_free(&nc);
	return rc;
}

/* One word of an n-gram key (len bytes at s) as an id of v (added). */
static int key_word(const char *s, size_t len, struct ngram_vocab *v, uint32_t *id,
                    struct err *e)
{
	uint64_t h = 0;

	if (len == 3 && memcmp(s, "<s>", 3) == 0) {
		*id = NGRAM_BOS;
		return 0;
	}
	if (len == 4 && memcmp(s, "</s>", 4) == 0) {
		*id = NGRAM_EOS;
		return 0;
	}
	if (len != 16)
		goto bad;
	for (size_t i = 0; i < 16; i++) {
		char ch = s[i];
		unsigned d = ch >= '0' && ch <= '9' ? (unsigned)(ch - '0')
		             : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10) : 16;

		if (d == 16)
			goto bad;
		h = h << 4 | d;
	}
	return ngram_vocab_add(v, h, id, e);
bad:
	return err_set(e, ERR_INVALID, "bad_counts",
	               "param 'counts': a word of an n-gram must be <s>, </s> or 16 hex digits");
}

/* The raw counts of one model (a JSON object, borrowed) into m, words into v. */
static int model_from_json(const json_t *obj, struct ngram_model *m, struct ngram_vocab *v,
                           struct err *e)
{
	const char *key;
	json_t *val;

	json_object_foreach((json_t *)obj, key, val) {
		uint32_t ids[NGRAM_MAX_ORDER];
		unsigned k = 0;
		int rc;

		if (!json_is_integer(val) || json_integer_value(val) < 1)
			return err_set(e, ERR_INVALID, "bad_counts",
			               "param 'counts': the count of '%s' must be a positive integer",
			               key);
		for (const char *s = key;; k++) {
			size_t len = strcspn(s, " ");

			if (k == NGRAM_MAX_ORDER)
				return err_set(e, ERR_INVALID, "bad_counts",
				               "param 'counts': n-gram '%s' is too long", key);
			if ((rc = key_word(s, len, v, &ids[k], e)) != 0)
				return rc;
			if (s[len] == '\0') {
				k++;
				break;
			}
			s += len + 1;
		}
		rc = ngram_model_add_raw(m, ids, k,
		                         json_integer_value(val) > UINT32_MAX
		                                 ? UINT32_MAX
		                                 : (uint32_t)json_integer_value(val),
		                         e);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* nc (new) from the merged counts of param "counts" (checked in shape by create). */
static int counts_load(const struct color_ngram *c, struct color_ngram *nc, struct err *e)
{
	const json_t *priors = json_object_get(c->counts, "priors");
	int rc;

	if ((rc = nc_new(c, nc, e)) != 0)
		return rc;
	for (unsigned i = 0; i < nc->npriors; i++)
		if ((rc = model_from_json(json_array_get(priors, i), nc->priors[i], nc->vocab, e)) !=
		    0)
			return rc;
	return model_from_json(json_object_get(c->counts, "down"), nc->down, nc->vocab, e);
}

static int cng_fit(struct filter *f, struct filter_scan *scan, struct err *e)
{
	struct color_ngram *c = (struct color_ngram *)f;
	struct color_ngram nc; /* the new state: replaces the old one only on success */
	int rc;

	memset(&nc, 0, sizeof nc);
	/* merged counts (a cluster): the data was read by the shards' partials */
	rc = c->counts != NULL ? counts_load(c, &nc, e) : count_texts(f, scan, &nc, e);
	if (rc != 0)
		goto out;
	for (unsigned i = 0; i < nc.npriors; i++)
		if ((rc = ngram_model_finish(nc.priors[i], e)) != 0)
			goto out;
	if ((rc = ngram_model_finish(nc.down, e)) != 0)
		goto out;
	if (ngram_model_count(nc.down, 1) == 0) {
		rc = err_set(e, ERR_INVALID, "empty_downstream",
		             "dataset '%s' holds no text to train the downstream model on",
		             c->downstream);
		goto out;
	}
	for (unsigned i = 0; i < nc.npriors; i++)
		if (ngram_model_count(nc.priors[i], 1) == 0) {
			rc = err_set(e, ERR_INVALID, "empty_prior",
			             "no text to train the prior on (%s)",
			             c->prior[0] ? c->prior : "a fold of the pool is everything");
			goto out;
		}
	cng_clear(c);
	c->mem = nc.mem;
	c->vocab = nc.vocab;
	c->npriors = nc.npriors;
	memcpy(c->priors, nc.priors, sizeof c->priors);
	c->down = nc.down;
	memset(&nc, 0, sizeof nc);
out:
	nc_free(&nc);
	return rc;
}

/* Before the instance is stored: the overlap of the prior and downstream datasets with the
 * pool, without training anything. A dataset that does not exist is left to the fit, which
 * fails the scoring job with dataset_not_found as it always has. */
static int cng_check(struct filter *f, struct filter_scan *scan, struct err *e)
{
	struct color_ngram *c = (struct color_ngram *)f;
	const char *param[2] = {"prior", "downstream"}, *name[2] = {c->prior, c->downstream};
	struct filter_scan *other = NULL;
	struct toks t = {.e = e};
	struct overlap ov = {.build = 1};
	int rc;

	if ((rc = train(scan, NULL, 0, 0, &t, &ov, e)) != 0)
		goto out;
	ov.build = 0;
	for (int k = 0; k < 2; k++) {
		if (name[k][0] == '\0')
			continue;
		rc = filter_scan_open_other(scan, name[k], &other, e);
		if (rc == ERR_NOT_FOUND) {
			err_clear(e);
			rc = 0;
			continue;
		}
		if (rc != 0 || (rc = train(other, NULL, 0, 0, &t, &ov, e)) != 0 ||
		    (rc = overlap_verdict(f, param[k], name[k], &ov, e)) != 0)
			goto out;
		filter_scan_close_other(scan, other);
		other = NULL;
	}
out:
	filter_scan_close_other(scan, other);
	free(t.v);
	free(ov.keys.v);
	return rc;
}

/* ---- state ---- */

static int cng_save(const struct filter *f, void **blob, size_t *len, struct err *e)
{
	const struct color_ngram *c = (const struct color_ngram *)f;
	struct ngram_buf b = {0};
	uint8_t hdr[16];
	int rc;

	memset(hdr, 0, sizeof hdr);
	for (int i = 0; i < 4; i++) {
		hdr[i] = (uint8_t)(CNG_MAGIC >> (8 * i));
		hdr[4 + i] = (uint8_t)(c->npriors >> (8 * i));
		hdr[8 + i] = (uint8_t)(c->order >> (8 * i));
	}
	b.p = malloc(sizeof hdr);
	if (b.p == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	memcpy(b.p, hdr, sizeof hdr);
	b.len = b.cap = sizeof hdr;
	if ((rc = ngram_vocab_save(c->vocab, &b, e)) != 0)
		goto fail;
	for (unsigned i = 0; i < c->npriors; i++)
		if ((rc = ngram_model_save(c->priors[i], &b, e)) != 0)
			goto fail;
	if ((rc = ngram_model_save(c->down, &b, e)) != 0)
		goto fail;
	*blob = b.p;
	*len = b.len;
	return 0;
fail:
	free(b.p);
	return rc;
}

static int cng_load(struct filter *f, const void *blob, size_t len, struct err *e)
{
	struct color_ngram *c = (struct color_ngram *)f;
	struct color_ngram nc;
	const uint8_t *p = blob;
	size_t off = 16;
	int rc;

	memset(&nc, 0, sizeof nc);
	if (len < 16 || vec_le32_get(p) != CNG_MAGIC)
		return err_set(e, ERR_INVALID, "bad_state", "color_ngram state: bad header");
	nc.npriors = vec_le32_get(p + 4);
	if (nc.npriors < 1 || nc.npriors > CNG_MAX_FOLDS || vec_le32_get(p + 8) != c->order ||
	    nc.npriors != (c->prior[0] ? 1u : c->folds))
		return err_set(e, ERR_INVALID, "bad_state",
		               "color_ngram state: made for other params");
	if ((nc.mem = calloc(1, sizeof *nc.mem)) == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if ((rc = ngram_vocab_load(&nc.vocab, p, len, &off, nc.mem, e)) != 0)
		goto fail;
	for (unsigned i = 0; i < nc.npriors; i++)
		if ((rc = ngram_model_load(&nc.priors[i], p, len, &off, nc.mem, e)) != 0) {
			nc.npriors = i;
			goto fail;
		}
	if ((rc = ngram_model_load(&nc.down, p, len, &off, nc.mem, e)) != 0)
		goto fail;
	if (off != len) {
		rc = err_set(e, ERR_INVALID, "bad_state", "color_ngram state: trailing bytes");
		goto fail;
	}
	cng_clear(c);
	c->mem = nc.mem;
	c->vocab = nc.vocab;
	c->npriors = nc.npriors;
	memcpy(c->priors, nc.priors, sizeof c->priors);
	c->down = nc.down;
	return 0;
fail:
	for (unsigned i = 0; i < nc.npriors; i++)
		ngram_model_free(nc.priors[i]);
	ngram_model_free(nc.down);
	ngram_vocab_free(nc.vocab);
	free(nc.mem);
	return rc;
}

/* ---- score ---- */

static int cng_score(const struct filter *f, const struct filter_batch *b, float *scores,
                     uint8_t *status, struct err *e)
{
	const struct color_ngram *c = (const struct color_ngram *)f;
	struct toks t = {.get = c->vocab, .e = e};
	uint32_t V = ngram_vocab_size(c->vocab), *seq = NULL;
	double *pp = NULL, *pd = NULL;
	size_t seq_cap = 0;
	int rc = 0;

	for (size_t i = 0; i < b->n; i++) {
		const struct ngram_model *prior;
		const char *s;
		size_t len, n;
		double lp = 0, lc = 0, ld = 0, v;
		int st;

		scores[i] = NAN;
		if ((st = text_of(b->bodies[i], &s, &len)) != 0) {
			status[i] = (uint8_t)st;
			continue;
		}
		t.n = 0;
		ngram_tokenize(s, len, on_tok, &t);
		if ((rc = t.rc) != 0)
			break;
		if (t.n == 0) {
			status[i] = FILTER_BAD_FIELD;
			continue;
		}
		n = t.n;
		if (n + 2 > seq_cap) {
			uint32_t *q = realloc(seq, (n + 2) * sizeof *q);
			double *a = q != NULL ? realloc(pp, (n + 2) * sizeof *a) : NULL;
			double *d = a != NULL ? realloc(pd, (n + 2) * sizeof *d) : NULL;

			seq = q != NULL ? q : seq;
			pp = a != NULL ? a : pp;
			pd = d != NULL ? d : pd;
			if (d == NULL) {
				rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
				break;
			}
			seq_cap = n + 2;
		}
		seq[0] = NGRAM_BOS;
		memcpy(seq + 1, t.v, n * sizeof *seq);
		seq[n + 1] = NGRAM_EOS;
		prior = c->priors[c->npriors > 1 ? fold_of(b->ids[i], c->npriors) : 0];
		ngram_model_seq_probs(prior, V, seq, n + 2, pp);
		ngram_model_seq_probs(c->down, V, seq, n + 2, pd);
		for (size_t j = 1; j <= n + 1; j++) {
			lp -= log(pp[j]);
			lc -= log(c->lambda * pd[j] + (1 - c->lambda) * pp[j]);
			if (c->output == CNG_DOWN)
				ld -= log(pd[j]);
		}
		switch (c->output) {
		case CNG_COND:
			v = -lc;
			break;
		case CNG_PRIOR:
			v = -lp;
			break;
		case CNG_DOWN:
			v = -ld;
			break;
		default:
			v = lp - lc;
			break;
		}
		scores[i] = (float)(c->sum ? v : v / (double)(n + 1));
		status[i] = FILTER_SCORED;
	}
	free(t.v);
	free(seq);
	free(pp);
	free(pd);
	return rc;
}

const struct filter_ops color_ngram_filter_ops = {
	.name = "color_ngram",
	.summary = "CoLoR-Filter with built-in n-gram models (modified Kneser-Ney), cross-fitted "
	           "or with a named prior (Brandfonbrener et al. 2024; docs/filters.md)",
	.size = sizeof(struct color_ngram),
	.cheap = 0,
	.needs_fit = 1,
	.create = cng_create,
	.fit = cng_fit,
	.save = cng_save,
	.load = cng_load,
	.score = cng_score,
	.destroy = cng_destroy,
	.check = cng_check,
	.partial = cng_partial,
};
