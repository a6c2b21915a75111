/* SPDX-License-Identifier: MIT */
/* query: the search engine: a struct search_request run over the index (search/catalog.h) or
 * an exact scan of the vectors in LMDB, rescored, normalised, paged and answered as JSON.
 *
 * The answer is serialised here, not in api/: it is the engine's result format (the same
 * for every wire format a request comes in, and what a router merging the answers of
 * several daemons will read), and a batch's per-query answers are serialised on the
 * threads that computed them. */
#include "search/query.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "curate/instance.h"
#include "curate/subset.h"
#include "filters/filter.h"
#include "filters/scan.h"
#include "index/index.h"
#include "lib/err.h"
#include "lib/hits.h"
#include "lib/jsonnum.h"
#include "lib/jtext.h"
#include "lib/par.h"
#include "lib/vec.h"
#include "search/adapters.h"
#include "search/catalog.h"
#include "search/normalizers.h"
#include "store/store.h"

#define CANDIDATE_FACTOR 4 /* index candidates per wanted result (index_candidates) */

/* How an index's scores relate to the exact ones (usable_index). */
enum { SCORES_CODES = 0, SCORES_EXACT = 1, SCORES_EXACT_LIVE = 2 };

struct hit {
	float score; /* the ranking score: exact, or the rescoring filter's */
	uint64_t row;
	float raw;   /* the exact score, when a filter rescored */
};

/* Ranking: score descending, then row ascending. */
static int hit_cmp(const void *a, const void *b)
{
	const struct hit *x = a, *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->row < y->row ? -1 : x->row > y->row;
}

/* A search_request resolved against its dataset (query_open): what every query of the
 * request shares. Read-only once open, so a batch's threads share it. */
struct query {
	uint32_t ds;
	struct store_dataset_info info;
	unsigned space;
	uint32_t dim;
	enum index_metric metric;
	size_t limit;
	int has_thr, exact, has_after;
	float thr, after_s;
	uint64_t after_row;
	uint64_t hash;  /* of the parameters, for page tokens (token_hash) */
	uint64_t token; /* the hash the request's page_token carries */
	double ef, nprobe; /* 0 = not given */
	unsigned with;
	const struct search_request *req; /* borrowed: with_scores, record_id, names */
	int hits;                         /* answer in lib/hits.h's binary layout */
	uint8_t *members;          /* NULL, or 1 per row of the subset's members (new) */
	struct filter *rescore;    /* NULL, or the filter that rescores the results (new) */
	size_t candidates;         /* results rescored, when rescore is set */
	/* Cosine Adapter relevance (issue 7, search/adapters.h): NULL, or the adapter (new);
	 * rel_min is the minimum relevance (NAN: annotate only), user_thr the request's own
	 * score_threshold (-inf without one), rq the current query's mapping (run_query). */
	struct adapters_model *rel;
	double rel_min;
	float user_thr;
	struct adapters_query rq;
	struct normalizers_query *hub; /* NULL, or the hubness normaliser that rescores (new) */
};

/* Score of x against the query q (qq = |q|^2) for the metric; 0 with *ok = 0 for a row that
 * has no score (a zero vector under cosine). */
static float score_of(const struct query *qr, const float *q, double qq, const float *x, int *ok)
{
	double xq, xx, dummy;

	vec_f32_dot3(x, q, qr->dim, &xq, &xx, &dummy);
	*ok = 1;
	switch (qr->metric) {
	case INDEX_COSINE:
		if (!(xx > 0)) {
			*ok = 0;
			return 0;
		}
		return (float)(xq / sqrt(xx * qq));
	case INDEX_IP:
		return (float)xq;
	default:
		return (float)-(xx + qq - 2 * xq);
	}
}

/* Past the page key (ranked after it)? */
static int after_key(const struct query *qr, float s, uint64_t row)
{
	return !qr->has_after || s < qr->after_s || (s == qr->after_s && row > qr->after_row);
}

struct hits {
	struct hit *v;
	size_t n, cap;
	size_t keep; /* 0: keep all; else keep the best `keep` */
};

static int hits_push(struct hits *h, float s, uint64_t row)
{
	if (h->keep != 0 && h->n == h->keep) {
		/* bounded: replace the worst when better (kept sorted by insertion) */
		struct hit nh = {s, row, s};
		size_t at;

		if (hit_cmp(&nh, &h->v[h->n - 1]) >= 0)
			return 0;
		at = h->n - 1;
		while (at > 0 && hit_cmp(&nh, &h->v[at - 1]) < 0) {
			h->v[at] = h->v[at - 1];
			at--;
		}
		h->v[at] = nh;
		return 0;
	}
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 256;
		struct hit *g = realloc(h->v, cap * sizeof *g);

		if (g == NULL)
			return ERR_NOMEM;
		h->v = g;
		h->cap = cap;
	}
	h->v[h->n++] = (struct hit){s, row, s};
	if (h->keep != 0) { /* insertion sort keeps the bounded buffer ordered */
		for (size_t at = h->n - 1; at > 0 && hit_cmp(&h->v[at], &h->v[at - 1]) < 0; at--) {
			struct hit t = h->v[at];

			h->v[at] = h->v[at - 1];
			h->v[at - 1] = t;
		}
	}
	return 0;
}

/* A filter shape that makes the scan deliver one space's f32 vectors and nothing else. */
static void space_reader(struct filter *f, unsigned space)
{
	memset(f, 0, sizeof *f);
	f->ninputs = 1;
	f->inputs[0] = space;
}

/* Every live row with a vector in the space among rows [lo, hi): exact, complete. Opens
 * its own reader (one snapshot for the range). */
static int exact_range(struct core *core, const struct query *qr, const float *q, uint64_t lo,
                       uint64_t hi, struct hits *h, uint64_t *scanned, struct err *e)
{
	struct store_reader *r = NULL;
	struct scan *sc = NULL;
	struct filter f;
	const struct filter_batch *b;
	double qq = vec_f32_sq_norm(q, qr->dim);
	int rc;

	space_reader(&f, qr->space);
	if ((rc = store_reader_open(core->store, &r, e)) != 0 ||
	    (rc = scan_open(&sc, r, qr->ds, &qr->info.schema, &f, lo, hi, NULL, NULL, e)) != 0)
		goto out;
	while ((rc = scan_next(sc, &b, e)) == 1) {
		for (size_t i = 0; i < b->n; i++) {
			int ok;
			float s;

			if (!b->has_vec[0][i] || (qr->members != NULL && !qr->members[b->rows[i]]))
				continue;
			(*scanned)++;
			s = score_of(qr, q, qq, b->vecs[0] + (size_t)qr->dim * i, &ok);
			if (!ok || (qr->has_thr && s < qr->thr) || !after_key(qr, s, b->rows[i]))
				continue;
			if (hits_push(h, s, b->rows[i]) != 0) {
				rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
				goto out;
			}
		}
	}
out:
	scan_close(sc);
	store_reader_close(r);
	return rc < 0 ? rc : 0;
}

/* One range of a split exact scan, run on its own thread. */
struct exact_part {
	struct core *core;
	const struct query *qr;
	const float *q;
	uint64_t lo, hi, scanned;
	struct hits h;
	int rc;
	struct err e;
};

static void *exact_part_run(void *arg)
{
	struct exact_part *p = arg;

	err_clear(&p->e);
	p->rc = exact_range(p->core, p->qr, p->q, p->lo, p->hi, &p->h, &p->scanned, &p->e);
	return NULL;
}

/* Every live row with a vector in the space: exact, complete. On several threads when the
 * space is large enough (index_scan_begin, --search-threads): ranges of whole blocks, each
 * with its own reader (so a write that commits during the scan may be seen by some ranges
 * and not others, as between two requests), their hits merged into h. */
static int exact_scan(struct core *core, const struct query *qr, const float *q, struct hits *h,
                      uint64_t *scanned, struct err *e)
{
	uint64_t end = qr->info.next_row, blocks = (end + STORE_BLOCK_ROWS - 1) / STORE_BLOCK_ROWS;
	unsigned t = index_scan_begin(core->search_threads, (size_t)end * qr->dim);
	struct exact_part *p = NULL;
	int rc = 0;

	if (t > blocks)
		t = (unsigned)blocks;
	if (t > 1 && (p = calloc(t, sizeof *p)) == NULL)
		t = 1; /* no memory for the split: one range */
	if (t <= 1) {
		rc = exact_range(core, qr, q, 0, end, h, scanned, e);
		goto out;
	}
	for (unsigned i = 0; i < t; i++) {
		p[i] = (struct exact_part){.core = core, .qr = qr, .q = q,
		                           .lo = blocks * i / t * STORE_BLOCK_ROWS,
		                           .hi = i + 1 == t ? end : blocks * (i + 1) / t * STORE_BLOCK_ROWS,
		                           .h = {.keep = h->keep}};
	}
	par_run(exact_part_run, p, sizeof *p, t);
	for (unsigned i = 0; i < t; i++) {
		if (rc == 0 && p[i].rc != 0) {
			rc = p[i].rc;
			if (e != NULL)
				*e = p[i].e;
		}
		*scanned += p[i].scanned;
		for (size_t j = 0; rc == 0 && j < p[i].h.n; j++)
			if (hits_push(h, p[i].h.v[j].score, p[i].h.v[j].row) != 0)
				rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		free(p[i].h.v);
	}
out:
	index_scan_end();
	free(p);
	return rc;
}

/* The name of the query's space (its index's key in the catalog). */
static const char *space_name(const struct query *qr)
{
	return qr->info.schema.spaces[qr->space].name;
}

/* Search nq queries (normalised or not: the index handles the metric) for k candidates
 * each, applying the request's ef_search / nprobe. */
static int index_query(struct core *core, const struct query *qr, size_t nq, const float *q,
                       size_t k, float *sc, int64_t *ids, struct err *e)
{
	return catalog_index_search(core->catalog, qr->ds, space_name(qr), nq, q, k, qr->ef,
	                            qr->nprobe, sc, ids, e);
}

/* Index candidates for one query's top limit + 1 (exact_scores as usable_index gives it). An
 * index that ranks with the exact vectors and holds no dead one (Flat, or an HNSW / IVF-Flat
 * without upserts since its build) ranks as the exact rescoring does, so limit + 1 candidates
 * are enough (deleted rows widen the search in index_candidates). Asking an HNSW for more
 * would also raise its efSearch to that count (FAISS searches with max(efSearch, k)): a
 * client's ef_search below 4 x (limit + 1) would not be the one used (measured: ef_search 10
 * searched as 44). Compressed codes (PQ, SQ) and indexes holding old vectors of upserted rows
 * get CANDIDATE_FACTOR times more, for the exact rescoring to rerank. */
static size_t candidates_per_query(const struct query *qr, int exact_scores)
{
	size_t k = (qr->limit + 1) * (exact_scores == SCORES_EXACT_LIVE && qr->rescore == NULL &&
	                                              qr->hub == NULL
	                                      ? 1
	                                      : CANDIDATE_FACTOR);

	if (qr->rescore != NULL && qr->candidates > k) /* else a second round would widen to it */
		k = qr->candidates;
	if (qr->hub != NULL && normalizers_query_candidates(qr->hub) > k)
		k = normalizers_query_candidates(qr->hub);
	return k;
}

/* The stored vector of row in the query's space into x (or, f32 and aligned, borrowed in
 * place through *v); 0 when the row is deleted or has none. Valid until the next read of r.
 * The block's present bit alone says both: a delete clears it with the live flag
 * (store_delete_record), so the live array is not read (one LMDB lookup a candidate less). */
static int row_vector(struct store_reader *r, const struct query *qr, uint64_t row, float *x,
                      const float **v)
{
	const struct store_space *sp = &qr->info.schema.spaces[qr->space];
	const void *data;
	uint64_t present;
	size_t at = (size_t)sp->dim * (row % STORE_BLOCK_ROWS);

	if (store_reader_block(r, qr->ds, qr->space, row / STORE_BLOCK_ROWS, &data, &present,
	                       NULL) != 0 ||
	    !(present >> (row % STORE_BLOCK_ROWS) & 1))
		return 0;
	if (sp->dtype == STORE_F16) {
		vec_f16_to_f32((const uint16_t *)data + at, x, sp->dim);
		*v = x;
	} else if ((uintptr_t)((const float *)data + at) % _Alignof(float) == 0) {
		*v = (const float *)data + at;
	} else {
		memcpy(x, (const float *)data + at, sp->dim * sizeof *x);
		*v = x;
	}
	return 1;
}

/* Does the index's score of a candidate agree with its exact score? Far apart only when the
 * index holds an older vector of the row (an upsert: HNSW cannot remove the old one). */
static int same_score(float indexed, float exact)
{
	return fabsf(indexed - exact) <= 1e-4f * fmaxf(1.0f, fabsf(exact));
}

/* Is candidate i absent (-1) or a repeat of one before it? (An index may answer a row twice:
 * an upserted row's old and new vectors.) */
static int skip_candidate(const int64_t *ids, size_t i)
{
	if (ids[i] < 0)
		return 1;
	for (size_t j = 0; j < i; j++)
		if (ids[j] == ids[i])
			return 1;
	return 0;
}

/* The first h->keep distinct candidates with the index's scores, for the binary answer from
 * an index that ranks with the exact vectors and holds no dead one (index_candidates). */
static int index_scores(const int64_t *ids, const float *sc, size_t k, struct hits *h,
                        uint64_t *scanned)
{
	h->n = 0;
	for (size_t i = 0; i < k && h->n < h->keep; i++)
		if (!skip_candidate(ids, i) && hits_push(h, sc[i], (uint64_t)ids[i]) != 0)
			return ERR_NOMEM;
	*scanned = h->n;
	return 0;
}

/* A query's index candidates when its batch searched the index at once (search_batch). */
struct precand {
	const float *sc;    /* the index's scores */
	const int64_t *ids; /* the rows, -1 for none */
	size_t k;           /* how many: candidates_per_query() when the batch searched */
};

/* Candidates from the index (or pre, already searched), with exact scores from LMDB;
 * duplicates and deleted rows dropped.
 * An index that scores with the exact vectors (index_exact_scores: Flat, HNSW, IVF-Flat)
 * ranks its candidates as exact rescoring would, so for a top-k search only the first
 * h->keep live candidates are read and their exact scores checked against the index's; if
 * one disagrees (the index holds a stale vector of an upserted row) every candidate is
 * rescored, as always for an index of compressed codes.
 * The binary answer (lib/hits.h) from such an index without dead vectors
 * (SCORES_EXACT_LIVE) takes the index's scores as they are: the same metric on the same
 * vectors, computed by FAISS's kernel, within float rounding (about 1e-7) of the exact ones.
 * Reading each candidate's vector from LMDB to recompute them was a tenth of a 64-query
 * HNSW batch (issue 20). JSON answers stay exact: their page tokens continue on exact
 * scores.
 * When deleted and replaced rows leave fewer than h->keep candidates, the search widens
 * (4 times the candidates each round) until it has them or has seen the whole index: a
 * top-k answer is never short because of deletes. */
static int index_candidates(struct core *core, const struct query *qr,
                            const float *q, const struct precand *pre, int exact_scores,
                            struct store_reader *r, struct hits *h, uint64_t *scanned,
                            struct err *e)
{
	/* the batch's count: an upsert since its search may have changed exact_scores */
	size_t k = pre != NULL ? pre->k : candidates_per_query(qr, exact_scores);
	float *own_sc = NULL, *x = malloc(qr->dim * sizeof *x);
	int64_t *own = NULL;
	const int64_t *ids = pre != NULL ? pre->ids : NULL;
	const float *sc = pre != NULL ? pre->sc : NULL;
	double qq = -1; /* |q|^2, when a candidate is first scored here: the binary answer's
	                 * index scores never need it (2% of a 784-d batch's time, issue 20) */
	int rc = 0, check = exact_scores && qr->rescore == NULL && qr->hub == NULL &&
	                    h->keep != 0;

	if (x == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	for (;;) {
		if (ids == NULL) { /* search here, for k candidates */
			float *ns = realloc(own_sc, k * sizeof *ns);
			int64_t *ni = ns != NULL ? realloc(own, k * sizeof *ni) : NULL;

			own_sc = ns != NULL ? ns : own_sc;
			own = ni != NULL ? ni : own;
			if (ns == NULL || ni == NULL) {
				rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
				goto out;
			}
			if ((rc = index_query(core, qr, 1, q, k, own_sc, own, e)) != 0)
				goto out;
			ids = own;
			sc = own_sc;
		}
		if (check && qr->hits && exact_scores == SCORES_EXACT_LIVE) { /* see above */
			if (index_scores(ids, sc, k, h, scanned) != 0)
				rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
			goto out;
		}
		if (qq < 0)
			qq = vec_f32_sq_norm(q, qr->dim);
		for (int pass = check ? 0 : 1; pass < 2; pass++) {
			int stale = 0;

			h->n = 0;
			*scanned = 0;
			for (size_t i = 0; i < k && !stale && !(pass == 0 && h->n == h->keep); i++) {
				const float *v;
				float s;
				int ok;

				if (skip_candidate(ids, i) || !row_vector(r, qr, (uint64_t)ids[i], x, &v))
					continue;
				(*scanned)++;
				s = score_of(qr, q, qq, v, &ok);
				if (pass == 0 && (!ok || !same_score(sc[i], s)))
					stale = 1;
				else if (ok && hits_push(h, s, (uint64_t)ids[i]) != 0)
					rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
				if (rc != 0)
					goto out;
			}
			if (!stale)
				break;
		}
		if (h->keep == 0 || h->n >= h->keep ||
		    k >= catalog_index_count(core->catalog, qr->ds, space_name(qr)))
			break;
		k *= 4;
		ids = NULL;
	}
out:
	free(own_sc);
	free(own);
	free(x);
	return rc;
}

/* ---- page tokens (the format is in query.h) ---- */

#define FNV_OFFSET 1469598103934665603ull
#define FNV_PRIME 1099511628211ull

static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * FNV_PRIME;
	return h;
}

/* A string, or its absence (distinct from ""), with its length so fields cannot run into
 * each other. */
static uint64_t fnv_str(uint64_t h, const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;
	unsigned char given = s != NULL;

	h = fnv_bytes(h, &given, 1);
	h = fnv_bytes(h, &n, sizeof n);
	return fnv_bytes(h, s != NULL ? s : "", n);
}

static uint64_t fnv_num(uint64_t h, double x)
{
	return fnv_bytes(h, &x, sizeof x);
}

/* What a page token binds to, besides the query vector (token_hash): every parameter that
 * decides which results a page holds and what they carry. search:count has no pages;
 * a batch has none either, and the token of one of its queries continues it as a
 * single-vector request, so neither the vectors nor how many are bound. */
static uint64_t token_bind(const struct search_request *req, const struct query *qr)
{
	uint64_t h = FNV_OFFSET;

	h = fnv_num(h, qr->space);
	h = fnv_num(h, qr->metric);
	h = fnv_num(h, (double)req->limit);
	h = fnv_num(h, req->has_threshold);
	h = fnv_num(h, req->has_threshold ? req->score_threshold : 0);
	h = fnv_num(h, req->exact);
	h = fnv_num(h, (double)req->ef_search);
	h = fnv_num(h, (double)req->nprobe);
	h = fnv_num(h, req->with);
	h = fnv_num(h, (double)req->nwith_scores);
	for (size_t i = 0; i < req->nwith_scores; i++)
		h = fnv_str(h, req->with_scores[i]);
	h = fnv_str(h, req->subset);
	h = fnv_str(h, req->rescore);
	h = fnv_str(h, req->relevance);
	h = fnv_num(h, isnan(req->relevance_min) ? -1 : req->relevance_min);
	h = fnv_str(h, req->hubness.normalizer);
	h = fnv_str(h, req->record_id);
	return fnv_str(h, req->query_space);
}

/* What a page token binds to: the request's parameters (qr->hash) and this query's vector,
 * so the token of any query of a batch continues that query alone (a "vector" request with
 * the same values, in any encoding, and the same parameters). */
static uint64_t token_hash(const struct query *qr, const float *q)
{
	uint64_t h = qr->hash;

	for (uint32_t i = 0; i < qr->dim; i++) {
		uint32_t u;

		memcpy(&u, &q[i], 4);
		h = (h ^ u) * FNV_PRIME;
	}
	return h;
}

/* The token of the page after the hit last (shown) of query q, into tok (size bytes). */
static void token_format(const struct query *qr, const float *q, const struct hit *last,
                         char *tok, size_t size)
{
	uint32_t bits;

	memcpy(&bits, &last->score, 4);
	snprintf(tok, size, "p1.%x.%llu.%llx", (unsigned)bits, (unsigned long long)last->row,
	         (unsigned long long)token_hash(qr, q));
}

/* The page key and binding of token t into qr (checked against the query vector by
 * query_run, once it has the vector). */
/* Digits of base 10 or 16 (lowercase, as token_format writes them) at *p, at most max of
 * them and at least one, into *v; *p moves past them. -1 when there are none or too many. */
static int token_number(const char **p, int base, int max, unsigned long long *v)
{
	int n = 0;

	*v = 0;
	for (; n <= max; n++, (*p)++) {
		int d = **p >= '0' && **p <= '9'                 ? **p - '0'
		        : base == 16 && **p >= 'a' && **p <= 'f' ? **p - 'a' + 10
		                                                 : -1;

		if (d < 0)
			break;
		if (*v > (~0ull - (unsigned)d) / (unsigned)base)
			return -1;
		*v = *v * (unsigned)base + (unsigned)d;
	}
	return n >= 1 && n <= max ? 0 : -1;
}

/* The page key and binding of token t into qr (checked against the query vector by
 * query_run, once it has the vector). Strict: exactly what token_format writes, a finite
 * score, a row the dataset has handed out; anything else is 400 bad_page_token. */
static int token_parse(const char *t, struct query *qr, struct err *e)
{
	unsigned long long sb, row, h;
	const char *p = t;
	uint32_t bits;
	float s;

	if (strncmp(p, "p1.", 3) != 0 || (p += 3, token_number(&p, 16, 8, &sb)) != 0 ||
	    *p++ != '.' || token_number(&p, 10, 20, &row) != 0 || *p++ != '.' ||
	    token_number(&p, 16, 16, &h) != 0 || *p != '\0')
		return err_set(e, ERR_MALFORMED, "bad_page_token", "page_token is not one of ours");
	bits = (uint32_t)sb;
	memcpy(&s, &bits, 4);
	if (!isfinite(s) || row >= qr->info.next_row)
		return err_set(e, ERR_MALFORMED, "bad_page_token",
		               "page_token is not one of ours (its position is not a result)");
	qr->after_s = s;
	qr->after_row = row;
	qr->token = h;
	qr->has_after = 1;
	return 0;
}

/* A new reference to v, or JSON null. */
static json_t *or_null(json_t *v)
{
	return v != NULL ? json_incref(v) : json_null();
}

static json_t *result_json(struct core *core, const struct query *qr, struct store_reader *r,
                           const struct hit *h)
{
	const char *id, *body;
	size_t id_len, body_len;
	unsigned kind;
	json_t *o, *b = NULL;

	if (store_reader_row(r, qr->ds, h->row, &kind, &id, &id_len, &body, &body_len, NULL) != 0)
		return NULL;
	o = json_pack("{s:s#, s:f}", "id", id, (int)id_len, "score",
	              (double)(qr->rescore != NULL || qr->hub != NULL ? h->raw : h->score));
	if (o == NULL)
		return NULL;
	if (qr->rescore != NULL)
		json_object_set_new(o, "rescored", json_real(h->score));
	if (qr->rel != NULL)
		json_object_set_new(o, "relevance", json_real(adapters_score(qr->rel, &qr->rq,
		                                                              h->score)));
	if (qr->hub != NULL) /* -inf (no statistics) is not JSON: null */
		json_object_set_new(o, "hubness_score",
		                    isfinite(h->score) ? json_real(h->score) : json_null());
	if (qr->with & (QUERY_WITH_TEXT | QUERY_WITH_META | QUERY_WITH_IMAGE))
		b = json_loadb(body, body_len, 0, NULL);
	if (qr->with & QUERY_WITH_KIND)
		json_object_set_new(o, "kind",
		                    json_string(kind == STORE_KIND_TEXT ? "text" : "image-text"));
	if (qr->with & QUERY_WITH_TEXT)
		json_object_set_new(o, "text", or_null(json_object_get(b, "text")));
	if (qr->with & QUERY_WITH_META)
		json_object_set_new(o, "meta", or_null(json_object_get(b, "meta")));
	if (qr->with & QUERY_WITH_IMAGE)
		json_object_set_new(o, "image", or_null(json_object_get(b, "image")));
	json_decref(b);
	if (qr->req->nwith_scores > 0) {
		json_t *scores = json_object();

		for (size_t i = 0; i < qr->req->nwith_scores; i++) {
			struct instance_ref ref;
			float s = NAN;
			uint8_t st = 0;
			const char *fn = qr->req->with_scores[i];

			if (fn != NULL && instance_ref_read(r, qr->ds, fn, &ref, NULL) == 0 &&
			    store_reader_array(r, qr->ds, ref.arr_score, 4, h->row, 1, &s, NULL) == 0 &&
			    store_reader_array(r, qr->ds, ref.arr_status, 1, h->row, 1, &st, NULL) == 0 &&
			    filter_status_scored(st) && isfinite(s))
				json_object_set_new(scores, fn, json_real(s));
			else if (fn != NULL)
				json_object_set_new(scores, fn, json_null());
		}
		json_object_set_new(o, "scores", scores);
	}
	(void)core;
	return o;
}

/* ---- Cosine Adapter relevance (issue 7): "relevance": {"adapter": name, "min": x} ----
 * Every result gets its relevance (the adapter's mapping of its cosine). With a minimum, the
 * search is a threshold search: the mapping is monotone in the cosine for each query, so
 * relevance >= min is cosine >= the query's inverse bound, and the exact threshold scan (with
 * its completeness, pages and search:count) runs with that bound; rel_keep then drops the few
 * candidates in the rounding margin whose computed relevance is below min. Results stay
 * ranked by cosine, which is the relevance order within one query. */

static int rel_open(struct core *core, const struct search_request *req, struct query *qr,
                    struct err *e)
{
	struct store_reader *r = NULL;
	int rc;

	qr->rel_min = NAN;
	qr->user_thr = qr->has_thr ? qr->thr : -INFINITY;
	if (req->relevance == NULL)
		return 0;
	if (!isnan(req->relevance_min)) {
		qr->rel_min = req->relevance_min;
		qr->has_thr = 1; /* a threshold search: exact and complete */
		qr->thr = -INFINITY;
	}
	if (req->rescore != NULL)
		return err_set(e, ERR_INVALID, "bad_query",
		               "\"relevance\" and \"rescore\" do not combine");
	if (qr->metric != INDEX_COSINE)
		return err_set(e, ERR_INVALID, "bad_query", "an adapter maps cosines: use metric cosine");
	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	rc = adapters_open(r, qr->ds, req->relevance, space_name(qr), &qr->rel, e);
	store_reader_close(r);
	return rc;
}

/* ---- hubness normalisation (search/normalizers.c): the request's "hubness" object ---- */

/* qr->hub from the request's hubness options (none: NULL). A hubness search ranks by the
 * normalised score over the index's top candidates (or, with params.exact, the whole
 * gallery). */
static int hubness_open(struct core *core, const struct search_request *req, struct query *qr,
                        struct err *e)
{
	const struct query_hubness *hb = &req->hubness;
	struct store_reader *r = NULL;
	int rc;

	if (hb->normalizer == NULL)
		return 0;
	if (req->count || qr->rescore != NULL || qr->rel != NULL || req->page_token != NULL ||
	    qr->has_thr || qr->metric != INDEX_COSINE)
		return err_set(e, ERR_INVALID, "bad_query",
		               "\"hubness\" is for a cosine top-k search: no rescore, relevance, "
		               "score_threshold, page_token or search:count with it");
	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	rc = normalizers_query_open(r, qr->ds, space_name(qr), hb->normalizer, hb->method,
	                            hb->candidates, hb->dualdis_mode, &qr->hub, e);
	store_reader_close(r);
	return rc;
}

/* A copy of qr for query q, with its mapping and its cosine bound. */
static int rel_query(struct query *local, const struct query *qr, const float *q,
                     struct err *e)
{
	int rc;

	*local = *qr;
	if ((rc = adapters_prepare(qr->rel, q, qr->dim, qr->rel_min, &local->rq, e)) != 0)
		return rc;
	if (!isnan(qr->rel_min)) {
		float b = adapters_scan_bound(&local->rq);

		local->thr = b > qr->user_thr ? b : qr->user_thr;
	}
	return 0;
}

/* Drop the hits whose relevance is below the minimum (order kept). */
static void rel_keep(const struct query *qr, struct hits *h)
{
	size_t k = 0;

	if (isnan(qr->rel_min))
		return;
	for (size_t i = 0; i < h->n; i++)
		if (adapters_score(qr->rel, &qr->rq, h->v[i].score) >= qr->rel_min)
			h->v[k++] = h->v[i];
	h->n = k;
}

static json_t *rel_stats(const struct query *qr)
{
	json_t *o = json_pack("{s:s, s:I}", "adapter", qr->rel->name, "version",
	                      (json_int_t)qr->rel->version);

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "min", isnan(qr->rel_min) ? json_null() : json_real(qr->rel_min));
	json_object_set_new(o, "cosine_bound", isnan(qr->rel_min) || !isfinite(qr->rq.cos_min)
	                                               ? json_null()
	                                               : json_real(qr->rq.cos_min));
	return o;
}

/* Rescore the hits of one query (raw cosines) with qr->hub: h->v[i].raw keeps the cosine,
 * .score becomes the normalised score. */
static int hubness_apply(struct core *core, const struct query *qr, struct hits *h,
                         struct err *e)
{
	struct store_reader *r = NULL;
	float *raw = malloc((h->n + 1) * sizeof *raw);
	uint64_t *rows = malloc((h->n + 1) * sizeof *rows);
	double *outs = malloc((h->n + 1) * sizeof *outs);
	int rc;

	if (raw == NULL || rows == NULL || outs == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	for (size_t i = 0; i < h->n; i++) {
		raw[i] = h->v[i].score;
		rows[i] = h->v[i].row;
	}
	if ((rc = store_reader_open(core->store, &r, e)) != 0 ||
	    (rc = normalizers_rescore(qr->hub, r, h->n, rows, raw, outs, e)) != 0)
		goto out;
	for (size_t i = 0; i < h->n; i++) {
		h->v[i].raw = raw[i];
		h->v[i].score = (float)outs[i];
	}
out:
	store_reader_close(r);
	free(raw);
	free(rows);
	free(outs);
	return rc;
}

/* Rescore the hits of query q with the request's filter (it sees the query normalised):
 * .raw keeps the exact score, .score becomes the filter's. */
static int rescore_apply(const struct query *qr, const float *q, struct hits *h, struct err *e)
{
	float *raw = malloc(h->n * sizeof *raw), *nq = malloc(qr->dim * sizeof *nq);
	float *outs = malloc(h->n * sizeof *outs);
	uint64_t *rows = malloc(h->n * sizeof *rows);
	double qq = vec_f32_sq_norm(q, qr->dim);
	int rc;

	if (raw == NULL || nq == NULL || outs == NULL || rows == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	for (uint32_t k = 0; k < qr->dim; k++)
		nq[k] = qq > 0 ? (float)(q[k] / sqrt(qq)) : 0;
	for (size_t i = 0; i < h->n; i++) {
		raw[i] = h->v[i].score;
		rows[i] = h->v[i].row;
	}
	rc = filter_rescore(qr->rescore, nq, qr->dim, h->n, rows, raw, outs, e);
	for (size_t i = 0; rc == 0 && i < h->n; i++) {
		h->v[i].raw = raw[i];
		h->v[i].score = outs[i];
	}
out:
	free(raw);
	free(nq);
	free(outs);
	free(rows);
	return rc;
}

/* 1 when the space's index serves this request: it serves plain top-k of its own metric;
 * thresholds, pages, subsets and exact requests are answered by the exact scan, which is
 * complete. factory gets its factory string; *exact_scores is SCORES_CODES (compressed
 * codes), SCORES_EXACT (index_exact_scores(), but old vectors of upserted rows may rank) or
 * SCORES_EXACT_LIVE (exact, and no dead vector: the index ranks as exact rescoring does). */
static int usable_index(struct core *core, const struct query *qr, int count,
                        char factory[INDEX_FACTORY_MAX + 1], int *exact_scores)
{
	enum index_metric metric;
	uint64_t dead = 0;

	if (qr->exact || qr->has_thr || qr->has_after || count || qr->members != NULL)
		return 0;
	if (!catalog_index_built(core->catalog, qr->ds, space_name(qr), &metric, factory,
	                         exact_scores, &dead) ||
	    metric != qr->metric)
		return 0;
	if (*exact_scores)
		*exact_scores = dead == 0 ? SCORES_EXACT_LIVE : SCORES_EXACT;
	return 1;
}

/* Does a query's answer hold ids and scores only (no fields, filter scores, rescoring,
 * relevance or hubness)? Then plain_answer writes it. */
static int plain(const struct query *qr)
{
	return qr->with == 0 && qr->req->nwith_scores == 0 && qr->rescore == NULL &&
	       qr->rel == NULL && qr->hub == NULL;
}

/* A plain answer (plain()) written as text directly: byte for byte what result_json's
 * objects, json_dumps and jsonnum_shorten make of it (lib/jtext.h; the search tests compare
 * the two), without the tree: a third of the per-query work of a 10-result HNSW search
 * (issue 20). h sorted; *out new. */
static int plain_answer(const struct query *qr, const float *q, struct store_reader *r,
                        const struct hits *h, size_t shown, uint64_t scanned, int use_index,
                        const char *factory, char **out, size_t *len, struct err *e)
{
	struct jtext t = {0};
	size_t n = 0;

	jtext_lit(&t, "{\"results\":[");
	for (size_t i = 0; i < shown; i++) {
		const char *id;
		size_t id_len;

		if (store_reader_row(r, qr->ds, h->v[i].row, NULL, &id, &id_len, NULL, NULL, NULL) != 0)
			continue; /* as result_json: a row gone since its score was read */
		jtext_lit(&t, n++ > 0 ? ",{\"id\":" : "{\"id\":");
		jtext_str(&t, id, id_len);
		jtext_lit(&t, ",\"score\":");
		jtext_real(&t, (double)h->v[i].score);
		jtext_raw(&t, "}", 1);
	}
	jtext_lit(&t, "],\"stats\":{\"candidates_scanned\":");
	jtext_uint(&t, scanned);
	jtext_lit(&t, ",\"returned\":");
	jtext_uint(&t, shown);
	jtext_lit(&t, h->n > qr->limit ? ",\"truncated\":true,\"truncation_reason\":\"limit\""
	                               : ",\"truncated\":false,\"truncation_reason\":null");
	jtext_lit(&t, use_index ? ",\"exact\":false,\"index\":" : ",\"exact\":true,\"index\":null");
	if (use_index)
		jtext_str(&t, factory, strlen(factory));
	jtext_lit(&t, "},\"page_token\":");
	if (h->n > qr->limit) {
		char tok[96];

		token_format(qr, q, &h->v[shown - 1], tok, sizeof tok);
		jtext_str(&t, tok, strlen(tok));
	} else {
		jtext_lit(&t, "null");
	}
	jtext_raw(&t, "}", 1);
	if ((*out = jtext_take(&t, len)) == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	return 0;
}

/* A plain answer as a part of the binary answer (lib/hits.h): ids and scores, and whether
 * more matched than were shown. h sorted; *out new. */
static int hits_answer(const struct query *qr, struct store_reader *r, const struct hits *h,
                       size_t shown, char **out, size_t *len, struct err *e)
{
	struct jtext t = {0};

	hits_part_begin(&t, h->n > qr->limit ? HITS_TRUNCATED : 0);
	for (size_t i = 0; i < shown; i++) {
		const char *id;
		size_t id_len;

		if (store_reader_row(r, qr->ds, h->v[i].row, NULL, &id, &id_len, NULL, NULL, NULL) == 0)
			hits_part_add(&t, id, id_len, h->v[i].score); /* else gone: as plain_answer */
	}
	if ((*out = jtext_take(&t, len)) == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	return 0;
}

/* One query's answer as JSON text (*out new, *len bytes): hits, stats, page token (pre: its
 * index candidates when the caller searched a batch at once; NULL otherwise). One LMDB read
 * transaction serves the candidates' exact scores and the results' records. */
static int run_query(struct core *core, const struct query *qr, const float *q, int count,
                     const struct precand *pre, char **out, size_t *len, struct err *e)
{
	char factory[INDEX_FACTORY_MAX + 1] = "";
	int exact_scores = 0;
	int use_index = usable_index(core, qr, count, factory, &exact_scores), rc;
	struct hits h = {0};
	struct store_reader *r = NULL;
	uint64_t scanned = 0;
	json_t *res = NULL, *arr, *stats;
	size_t shown;
	struct query local;

	if (qr->rel != NULL) {
		/* per query: the relevance bound becomes a cosine bound (see adapters_query) */
		if ((rc = rel_query(&local, qr, q, e)) != 0)
			return rc;
		qr = &local;
	}
	h.keep = qr->has_thr || count ? 0 : qr->limit + 1;
	if (qr->rescore != NULL && h.keep != 0 && h.keep < qr->candidates)
		h.keep = qr->candidates;
	if (qr->hub != NULL) /* exact: the whole gallery is rescored */
		h.keep = qr->exact ? 0 : normalizers_query_candidates(qr->hub) > h.keep
		                                 ? normalizers_query_candidates(qr->hub)
		                                 : h.keep;
	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	rc = use_index ? index_candidates(core, qr, q, pre, exact_scores, r, &h, &scanned, e)
	               : exact_scan(core, qr, q, &h, &scanned, e);
	if (rc != 0)
		goto out;
	if (qr->rescore != NULL && h.n > 0 && !count && (rc = rescore_apply(qr, q, &h, e)) != 0)
		goto out;
	if (qr->rel != NULL)
		rel_keep(qr, &h);
	if (qr->hub != NULL && h.n > 0 && (rc = hubness_apply(core, qr, &h, e)) != 0)
		goto out;
	if (count) {
		res = json_pack("{s:I, s:{s:I, s:b}}", "count", (json_int_t)h.n, "stats",
		                "candidates_scanned", (json_int_t)scanned, "exact", 1);
		if (qr->rel != NULL && res != NULL)
			json_object_set_new(json_object_get(res, "stats"), "relevance",
			                    rel_stats(qr));
		goto out;
	}
	if (h.n > 1) /* h.v is NULL when nothing was kept (qsort wants a pointer) */
		qsort(h.v, h.n, sizeof *h.v, hit_cmp);
	shown = h.n < qr->limit ? h.n : qr->limit;
	if (qr->hits) {
		rc = hits_answer(qr, r, &h, shown, out, len, e);
		goto out;
	}
	if (plain(qr)) {
		rc = plain_answer(qr, q, r, &h, shown, scanned, use_index, factory, out, len, e);
		goto out;
	}
	arr = json_array();
	for (size_t i = 0; i < shown; i++) {
		json_t *o = result_json(core, qr, r, &h.v[i]);

		if (o != NULL)
			json_array_append_new(arr, o);
	}
	stats = json_pack("{s:I, s:I, s:b, s:o, s:b, s:o}", "candidates_scanned",
	                  (json_int_t)scanned, "returned", (json_int_t)shown, "truncated",
	                  h.n > qr->limit, "truncation_reason",
	                  h.n > qr->limit ? json_string("limit") : json_null(), "exact", !use_index,
	                  "index", use_index ? json_string(factory) : json_null());
	if (qr->rel != NULL && stats != NULL)
		json_object_set_new(stats, "relevance", rel_stats(qr));
	res = json_pack("{s:o, s:o}", "results", arr, "stats", stats);
	if (res != NULL && h.n > qr->limit) {
		/* keyset: the last shown result's (score, row) and what the query binds to */
		char tok[96];

		token_format(qr, q, &h.v[shown - 1], tok, sizeof tok);
		json_object_set_new(res, "page_token", json_string(tok));
	} else if (res != NULL) {
		json_object_set_new(res, "page_token", json_null());
	}
out:
	store_reader_close(r);
	free(h.v);
	if (rc == 0 && (count || !plain(qr)) && !qr->hits) {
		if (res == NULL || (*out = json_dumps(res, JSON_COMPACT)) == NULL)
			rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		else
			*len = jsonnum_shorten(*out, strlen(*out));
	}
	json_decref(res);
	return rc;
}

/* A share of a batch: queries i0 .. i1-1, each answer serialised into text[]. */
struct batch_part {
	struct core *core;
	const struct query *qr;
	const float *q;
	const float *csc;    /* the index's scores of cand */
	const int64_t *cand; /* NULL: no index candidates */
	size_t kc, i0, i1;
	int count, rc;
	char **text;
	size_t *len;
	struct err e;
};

static void *batch_part_run(void *arg)
{
	struct batch_part *p = arg;

	for (size_t i = p->i0; i < p->i1 && p->rc == 0; i++) {
		struct precand pre = {.k = p->kc};

		if (p->cand != NULL) {
			pre.sc = p->csc + i * p->kc;
			pre.ids = p->cand + i * p->kc;
		}
		p->rc = run_query(p->core, p->qr, p->q + i * p->qr->dim, p->count,
		                  p->cand != NULL ? &pre : NULL, &p->text[i], &p->len[i], &p->e);
	}
	return NULL;
}

/* The answers of nq queries (text[i]: len[i] bytes) joined into the batch's: the binary
 * answer (qr->hits), or {"queries": [...]} as JSON text. *out new. */
static int batch_join(const struct query *qr, char *const *text, const size_t *len, size_t nq,
                      char **out, size_t *out_len, struct err *e)
{
	static const char head[] = "{\"queries\":[", tail[] = "]}";
	size_t n = sizeof head + sizeof tail;
	char *buf, *w;

	if (qr->hits)
		return hits_join(text, len, nq, (uint32_t)qr->limit, out, out_len) == 0
		               ? 0
		               : err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	for (size_t i = 0; i < nq; i++)
		n += len[i] + 1;
	if ((buf = malloc(n)) == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	w = buf;
	memcpy(w, head, sizeof head - 1);
	w += sizeof head - 1;
	for (size_t i = 0; i < nq; i++) {
		if (i > 0)
			*w++ = ',';
		memcpy(w, text[i], len[i]);
		w += len[i];
	}
	memcpy(w, tail, sizeof tail);
	*out = buf;
	*out_len = (size_t)(w - buf) + sizeof tail - 1;
	return 0;
}

/* The per-query work of a batch (exact scores, records, answer text) spread over the cores:
 * the index search of the whole batch already ran on all of them, and running the rest on
 * one thread left the other idle for about half of a 64-query batch (bench/search.py). In
 * parts of a few queries on the search's own OpenMP team (par_team), each member taking the
 * next part: a thread started per batch cost a clone and a wake-up, and two fixed halves
 * waited for the slower one. *out new: the batch's answer (batch_join), *len its length. */
static int run_batch(struct core *core, const struct query *qr, const float *q, size_t nq,
                     int count, const float *csc, const int64_t *cand, size_t kc, char **out,
                     size_t *len, struct err *e)
{
	enum { QUERIES_PER_PART = 4 };
	size_t parts = (nq + QUERIES_PER_PART - 1) / QUERIES_PER_PART;
	struct batch_part *part = calloc(parts > 0 ? parts : 1, sizeof *part);
	char **text = calloc(nq > 0 ? nq : 1, sizeof *text);
	size_t *lens = calloc(nq > 0 ? nq : 1, sizeof *lens);
	int rc = 0;

	if (part == NULL || text == NULL || lens == NULL) {
		free(part);
		free(text);
		free(lens);
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	for (size_t p = 0; p < parts; p++) {
		size_t i1 = (p + 1) * QUERIES_PER_PART;

		part[p] = (struct batch_part){.core = core, .qr = qr, .q = q, .csc = csc, .cand = cand,
		                              .kc = kc, .i0 = p * QUERIES_PER_PART,
		                              .i1 = i1 < nq ? i1 : nq, .count = count,
		                              .text = text, .len = lens};
	}
	par_team(batch_part_run, part, sizeof part[0], (unsigned)parts, par_cpus());
	for (size_t p = 0; p < parts && rc == 0; p++)
		if (part[p].rc != 0) {
			*e = part[p].e;
			rc = part[p].rc;
		}
	if (rc == 0)
		rc = batch_join(qr, text, lens, nq, out, len, e);
	for (size_t i = 0; i < nq; i++)
		free(text[i]);
	free(part);
	free(text);
	free(lens);
	return rc;
}

/* nq query vectors: one index search for the whole batch (FAISS spreads it over the cores)
 * when the index serves these queries, then the per-query work (run_batch). */
static int search_batch(struct core *core, const struct query *qr, const float *q, size_t nq,
                        int count, char **out, size_t *len, struct err *e)
{
	char factory[INDEX_FACTORY_MAX + 1];
	int exact_scores = 0, rc = 0;
	int64_t *cand = NULL;
	float *csc = NULL;
	size_t kc = 0;

	if (usable_index(core, qr, count, factory, &exact_scores)) {
		kc = candidates_per_query(qr, exact_scores);
		cand = malloc(nq * kc * sizeof *cand);
		csc = malloc(nq * kc * sizeof *csc);
		rc = cand != NULL && csc != NULL
		             ? index_query(core, qr, nq, q, kc, csc, cand, e)
		             : err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	if (rc == 0)
		rc = run_batch(core, qr, q, nq, count, csc, cand, kc, out, len, e);
	free(cand);
	free(csc);
	return rc;
}

/* ---- the request ---- */

void query_request_init(struct search_request *req)
{
	memset(req, 0, sizeof *req);
	req->limit = QUERY_LIMIT_DEFAULT;
	req->metric = INDEX_COSINE;
	req->rescore_candidates = QUERY_RESCORE_CANDIDATES_DEFAULT;
	req->relevance_min = NAN;
	req->hubness.method = HUBNESS_DUALIS;
	req->hubness.candidates = NORMALIZERS_CANDIDATES_DEFAULT;
	req->hubness.dualdis_mode = -1;
}

/* The dataset's info and the schema index of space (NULL: the only one) into *sp. */
static int find_space(struct core *core, const char *dataset, const char *space,
                      struct store_dataset_info *info, int *sp, struct err *e)
{
	int rc;

	if ((rc = store_dataset_get(core->store, dataset, info, e)) != 0)
		return rc;
	if (space == NULL && info->schema.nspaces == 1)
		space = info->schema.spaces[0].name;
	if (space == NULL || (*sp = store_schema_find(&info->schema, space)) < 0)
		return err_set(e, ERR_INVALID, "bad_query",
		               "\"space\" must name a space of the dataset");
	return 0;
}

int query_space_dim(struct core *core, const char *dataset, const char *space, uint32_t *dim,
                    struct err *e)
{
	struct store_dataset_info info;
	int sp = 0, rc;

	if ((rc = find_space(core, dataset, space, &info, &sp, e)) != 0)
		return rc;
	*dim = info.schema.spaces[sp].dim;
	return 0;
}

/* The dataset, the space and the metric: the request's, else its index's (an L2 index is
 * searched by L2), else cosine. */
static int resolve_space(struct core *core, const struct search_request *req, struct query *qr,
                         struct err *e)
{
	int sp = 0, rc;

	if ((rc = find_space(core, req->dataset, req->space, &qr->info, &sp, e)) != 0)
		return rc;
	qr->ds = qr->info.id;
	qr->space = (unsigned)sp;
	qr->dim = qr->info.schema.spaces[sp].dim;
	if (req->vectors != NULL && req->dim != qr->dim)
		return err_set(e, ERR_INVALID, "dimension_mismatch",
		               "the query vectors have %u values, the space has dim %u",
		               (unsigned)req->dim, (unsigned)qr->dim);
	qr->metric = INDEX_COSINE;
	catalog_index_built(core->catalog, qr->ds, space_name(qr), &qr->metric, NULL, NULL, NULL);
	if (req->has_metric)
		qr->metric = req->metric;
	return 0;
}

/* The subset's members and the rescoring filter, from one snapshot. */
static int subset_rescore_open(struct core *core, const struct search_request *req,
                               struct query *qr, struct err *e)
{
	struct store_reader *r = NULL;
	int rc = 0;

	if (req->subset == NULL && req->rescore == NULL)
		return 0;
	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	if (req->subset != NULL)
		rc = subset_members(r, qr->ds, req->subset, qr->info.next_row, &qr->members, e);
	if (rc == 0 && req->rescore != NULL) {
		rc = instance_open(r, qr->ds, &qr->info.schema, req->rescore, &qr->rescore, e);
		qr->candidates = req->rescore_candidates;
	}
	store_reader_close(r);
	if (rc == 0 && qr->rescore != NULL && req->page_token != NULL)
		rc = err_set(e, ERR_INVALID, "bad_query",
		             "a rescored search has no pages: raise rescore.candidates");
	return rc;
}

static void query_free(struct query *qr)
{
	free(qr->members);
	filter_free(qr->rescore);
	adapters_free(qr->rel);
	normalizers_query_free(qr->hub);
}

/* req resolved against its dataset into qr (everything but the query vectors); query_free
 * qr after, whatever this returns. */
static int query_open(struct core *core, const struct search_request *req, struct query *qr,
                      struct err *e)
{
	int rc;

	memset(qr, 0, sizeof *qr);
	qr->req = req;
	if ((rc = resolve_space(core, req, qr, e)) != 0)
		return rc;
	qr->limit = req->limit;
	qr->has_thr = req->has_threshold;
	qr->thr = (float)req->score_threshold;
	if ((rc = rel_open(core, req, qr, e)) != 0)
		return rc;
	if (req->count && !qr->has_thr)
		return err_set(e, ERR_INVALID, "bad_query",
		               "search:count needs \"score_threshold\" or \"relevance\".min");
	qr->exact = req->exact;
	qr->ef = (double)req->ef_search;
	qr->nprobe = (double)req->nprobe;
	qr->with = req->with;
	if ((rc = subset_rescore_open(core, req, qr, e)) != 0 ||
	    (rc = hubness_open(core, req, qr, e)) != 0)
		return rc;
	qr->hits = req->hits != QUERY_ANSWER_JSON && !req->count && plain(qr);
	if (req->hits == QUERY_ANSWER_HITS && !qr->hits)
		return err_set(e, ERR_NOT_ACCEPTABLE, "not_acceptable", HITS_JSON_ONLY,
		               req->count ? "counts (search:count)"
		                          : "results with fields, filter scores, relevance, hubness "
		                            "or rescoring");
	qr->hash = token_bind(req, qr);
	if (req->page_token != NULL && (rc = token_parse(req->page_token, qr, e)) != 0)
		return rc;
	if (req->batch && qr->has_after)
		return err_set(e, ERR_INVALID, "bad_query",
		               "a batch takes no page_token: continue one query with \"vector\" "
		               "and its own token");
	return 0;
}

/* The vector of a record_id query: the record's embedding in query_space (default: space),
 * e.g. its text vector to search images. */
static int record_vector(struct core *core, const struct query *qr, float *q, struct err *e)
{
	const char *id = qr->req->record_id, *qs = qr->req->query_space;
	int qsp = qs != NULL ? store_schema_find(&qr->info.schema, qs) : (int)qr->space;
	struct store_record_out rec = {0};
	int rc;

	if (id == NULL || qsp < 0 || qr->info.schema.spaces[qsp].dim != qr->dim)
		return err_set(e, ERR_INVALID, "bad_query",
		               "record_id needs a string id and a query_space of the same dim");
	if ((rc = store_get_record(core->store, qr->ds, id, strlen(id), 1, &rec, e)) != 0)
		return rc;
	if (rec.vec[qsp] == NULL)
		rc = err_set(e, ERR_INVALID, "no_vector", "record '%s' has no '%s' vector", id,
		             qr->info.schema.spaces[qsp].name);
	else if (qr->info.schema.spaces[qsp].dtype == STORE_F16)
		vec_f16_to_f32(rec.vec[qsp], q, qr->dim);
	else
		memcpy(q, rec.vec[qsp], qr->dim * sizeof *q);
	store_record_out_free(&rec);
	return rc;
}

/* Is the search quick (QUERY_QUICK_*)? The index's cost is bounded by its kind: an HNSW
 * search visits about efSearch x M vectors whatever the size, a Flat one or a scan without
 * an index every vector; IVF lists are of any length, so an IVF search is not quick. */
static int quick(struct core *core, const struct query *qr, size_t nq)
{
	char factory[INDEX_FACTORY_MAX + 1] = "";
	enum index_metric metric;
	int exact_scores = 0, hnsw;
	uint64_t dead = 0, scan;

	if (nq > QUERY_QUICK_QUERIES || qr->limit > QUERY_QUICK_LIMIT || qr->ef > QUERY_QUICK_EF ||
	    qr->req->count || qr->has_thr || qr->has_after || qr->members != NULL ||
	    qr->rescore != NULL || qr->rel != NULL || qr->hub != NULL)
		return 0;
	scan = qr->info.next_row;
	if (!qr->exact &&
	    catalog_index_built(core->catalog, qr->ds, space_name(qr), &metric, factory,
	                        &exact_scores, &dead) &&
	    metric == qr->metric) {
		hnsw = strncmp(factory, "HNSW", 4) == 0;
		if (hnsw && dead * 16 <= catalog_index_count(core->catalog, qr->ds, space_name(qr)))
			return 1;
		if (hnsw || strcmp(factory, "Flat") != 0)
			return 0;
		scan = catalog_index_count(core->catalog, qr->ds, space_name(qr));
	}
	return scan * qr->dim * nq <= QUERY_QUICK_SCAN;
}

/* A cosine query needs a direction: ERR_INVALID "zero_vector" for a query vector (of nq) whose
 * norm is 0 (every score would be 0/0). */
static int check_norms(const struct query *qr, const float *q, size_t nq, struct err *e)
{
	if (qr->metric != INDEX_COSINE)
		return 0;
	for (size_t i = 0; i < nq; i++) {
		double qq = vec_f32_sq_norm(q + i * qr->dim, qr->dim);

		if (!(qq > 0))
			return nq > 1 ? err_set(e, ERR_INVALID, "zero_vector",
			                        "query vector %zu is all zeros: a cosine search needs a "
			                        "direction",
			                        i)
			              : err_set(e, ERR_INVALID, "zero_vector",
			                        "the query vector is all zeros: a cosine search needs a "
			                        "direction");
	}
	return 0;
}

/* One query (a vector or a record's), answered alone. */
static int run_single(struct core *core, const struct query *qr, char **out, size_t *len,
                      struct err *e)
{
	const float *q = qr->req->vectors;
	float *own = NULL;
	int rc = 0;

	if (q == NULL) {
		if ((own = malloc(qr->dim * sizeof *own)) == NULL)
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		rc = record_vector(core, qr, own, e);
		q = own;
	}
	if (rc == 0 && own != NULL) /* given vectors were checked by query_run */
		rc = check_norms(qr, q, 1, e);
	if (rc == 0 && qr->has_after && token_hash(qr, q) != qr->token)
		rc = err_set(e, ERR_MALFORMED, "page_token_mismatch",
		             "page_token was made for a request with other parameters");
	if (rc == 0)
		rc = run_query(core, qr, q, qr->req->count, NULL, out, len, e);
	if (rc == 0 && qr->hits) { /* the binary answer of a batch of one */
		char *part = *out;
		size_t part_len = *len;

		*out = NULL;
		rc = batch_join(qr, &part, &part_len, 1, out, len, e);
		free(part);
	}
	free(own);
	return rc;
}

int query_run(struct core *core, const struct search_request *req, char **out, size_t *len,
              struct err *e)
{
	struct query qr;
	int rc;

	if ((req->vectors == NULL) == (req->record_id == NULL) ||
	    (req->vectors != NULL && (req->nq == 0 || req->nq > QUERY_BATCH_MAX ||
	                              (!req->batch && req->nq != 1))) ||
	    (req->record_id != NULL && req->batch))
		return err_set(e, ERR_INVALID, "bad_query",
		               "give exactly one of \"vector\", \"vectors\" and \"record_id\"");
	if ((rc = query_open(core, req, &qr, e)) == 0 && req->vectors != NULL)
		rc = check_norms(&qr, req->vectors, req->nq, e);
	if (rc == 0 && req->quick_only && !quick(core, &qr, req->vectors != NULL ? req->nq : 1))
		rc = QUERY_DEFERRED;
	else if (rc == 0)
		rc = req->batch ? search_batch(core, &qr, req->vectors, req->nq, req->count, out, len, e)
		                : run_single(core, &qr, out, len, e);
	query_free(&qr);
	return rc;
}
