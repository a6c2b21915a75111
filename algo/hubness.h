/* SPDX-License-Identifier: MIT */
/* hubness: the arithmetic of hubness reduction (spec section 5): inverted softmax (IS),
 * dynamic IS (DIS), CSLS, DBNorm's dual inverted softmax (DualIS) and its dynamic variant
 * (DualDIS), the per-gallery-item bank statistics they need, and the hubness measure
 * (k-occurrence N_k, its skewness, the top hubs).
 *
 * Everything here is pure computation over caller-owned arrays: no store, no JSON. The
 * statistics are kept in log form (log-sum-exp), so beta 50 over a bank of a million never
 * overflows; IS and DualIS scores are returned in log form too (the same ranking as the
 * ratios, and no underflow to ties). Threading: no shared state; a hubness_topk belongs to
 * one thread at a time. */
#ifndef WINNOW_HUBNESS_H
#define WINNOW_HUBNESS_H

#include <stddef.h>
#include <stdint.h>

struct err;

enum hubness_method {
	HUBNESS_IS = 0,
	HUBNESS_DIS = 1,
	HUBNESS_DUALIS = 2,
	HUBNESS_DUALDIS = 3,
	HUBNESS_CSLS = 4,
	HUBNESS_RAW = 5, /* no correction (for reports) */
};

/* DualDIS with an inactive factor: the reference code's raw cosine (spec 5.4 c), or
 * exp(beta * s), which keeps the row's ranking monotone in s. */
enum hubness_dualdis_mode { HUBNESS_REFERENCE = 0, HUBNESS_MONOTONE = 1 };

/* Activation flags of a gallery item: in A_q (the top-k of some query-bank item), in A_g
 * (the top-k of some gallery-bank item). */
#define HUBNESS_IN_AQ 1u
#define HUBNESS_IN_AG 2u

/* The statistics of one gallery item, stored per row (16 bytes, one row-array element). */
struct hubness_stats {
	float log_zq; /* log sum_b exp(beta1 * s(b, g)) over the query bank */
	float log_zg; /* log sum_g' exp(beta2 * s(g', g)) over the gallery bank, self excluded */
	float r_b;    /* mean of g's csls_k highest similarities to the query bank (CSLS) */
	uint32_t flags; /* HUBNESS_IN_AQ | HUBNESS_IN_AG; bit 31 set once computed */
};
#define HUBNESS_COMPUTED 0x80000000u

struct hubness_params {
	double beta1, beta2; /* inverse temperatures (multipliers), > 0 */
	unsigned k;          /* activation sets from each bank item's top-k, >= 1 */
	unsigned csls_k;     /* K of CSLS (r_G and r_B), >= 1 */
	enum hubness_dualdis_mode dualdis_mode;
};

/* log sum_i exp(beta * s[i]) over the n entries, skipping NaN ones (excluded pairs);
 * -inf when none is left. */
double hubness_logsumexp(const float *s, size_t n, double beta);

/* Mean of the K largest non-NaN entries of s (n of them); of all when fewer; NaN for none. */
double hubness_topk_mean(const float *s, size_t n, unsigned k);

/* The statistics of one gallery item from its similarities to the query bank (sq, nq of
 * them) and to the gallery bank (sg, ng). A NaN similarity is an excluded self-pair.
 * flags are set to HUBNESS_COMPUTED (activation comes from hubness_topk). */
void hubness_stats_from_sims(const struct hubness_params *p, const float *sq, size_t nq,
                             const float *sg, size_t ng, struct hubness_stats *out);

/* ---- Activation sets: every bank item's top-k gallery items ---- */
struct hubness_topk {
	size_t n;        /* bank items */
	unsigned k;
	float *score;    /* n * k, best first; -inf while empty */
	uint64_t *row;   /* n * k */
};

/* *out new (hubness_topk_free), n bank items with k slots each. ERR_NOMEM. */
int hubness_topk_new(struct hubness_topk **out, size_t n, unsigned k);
void hubness_topk_free(struct hubness_topk *t);

/* Offer gallery row `row` with similarities s (n entries, one per bank item; NaN =
 * excluded) to every bank item's top-k. Ties keep the lower row first. */
void hubness_topk_offer(struct hubness_topk *t, const float *s, uint64_t row);

/* Merge src into dst (the same bank, the same k): dst keeps each item's k best of both. */
void hubness_topk_merge(struct hubness_topk *dst, const struct hubness_topk *src);

/* Take row out of every bank item's top-k (a deleted gallery item): the entries after it move
 * up and the last slot empties (-inf), so the item holds k - 1 until a row is offered or
 * merged into it. Returns the bank items it was removed from. */
size_t hubness_topk_remove(struct hubness_topk *t, uint64_t row);

/* 1 when row is in some bank item's top-k (the activation set). */
int hubness_topk_contains(const struct hubness_topk *t, uint64_t row);

/* The rows of the activation set, sorted, without duplicates: *rows new (free()), *n. */
int hubness_topk_rows(const struct hubness_topk *t, uint64_t **rows, size_t *n);

/* ---- Bank statistics for a block of gallery vectors ---- */

/* A bank: n L2-normalised vectors (borrowed, n * dim floats); rows[i] is the gallery row
 * the item is (so that its self-pair is excluded), or UINT64_MAX; rows may be NULL. */
struct hubness_bank {
	size_t n;
	uint32_t dim;
	const float *vecs;
	const uint64_t *rows;
};

/* Statistics of c gallery vectors x (c * dim floats, L2-normalised, borrowed) at rows (c):
 * out[c] gets log Z over both banks and r_B; the top-k trackers tq / tg (NULL to skip) are
 * offered every row. One matrix product per bank (OpenBLAS). ERR_NOMEM. */
int hubness_compute(const struct hubness_params *p, const struct hubness_bank *qb,
                    const struct hubness_bank *gb, size_t c, const float *x, const uint64_t *rows,
                    struct hubness_stats *out, struct hubness_topk *tq, struct hubness_topk *tg,
                    struct err *e);

/* ---- Query time ---- */

/* Rescore one query's n candidates: raw cosines s (n), their stats st (n), the index of the
 * raw top-1 among them (the row's argmax, which gates DIS and DualDIS), and r_G = the mean
 * of the query's csls_k highest gallery similarities (CSLS only). out (n) gets:
 *   is       beta1 s - log Z_q                          (log of IS)
 *   dis      the IS log form if the top-1 is in A_q, else s
 *   dualis   (beta1 + beta2) s - log Z_q - log Z_g      (log of DualIS)
 *   dualdis  reference: F_q * F_g with F = IS or raw s (ratio form, as the reference code);
 *            monotone: (beta1 + beta2) s - a_q log Z_q - a_g log Z_g
 *   csls     2 s - r_G - r_B
 *   raw      s */
void hubness_rescore(const struct hubness_params *p, enum hubness_method m, size_t n,
                     const float *s, const struct hubness_stats *st, size_t top1, double r_g,
                     double *out);

/* Method from its API name ("is", "dis", "dualis", "dualdis", "csls", "raw"): 0 or -1. */
int hubness_method_parse(const char *name, enum hubness_method *out);
const char *hubness_method_name(enum hubness_method m);

/* ---- The hubness measure (spec 5.5) ---- */

/* N_k: counts[g] (ngallery entries, zeroed here) = how many of the nq queries have g among
 * their top-k; top (nq * k gallery indexes, borrowed; entries >= ngallery are ignored). */
void hubness_occurrence(const uint64_t *top, size_t nq, unsigned k, uint32_t *counts,
                        size_t ngallery);

/* Population skewness E[(N - mu)^3] / sigma^3 (scipy.stats.skew, bias=True) of counts (n).
 * with_zeros = 0 leaves out the items never retrieved (DBNorm's get_skewness). 0 when the
 * variance is zero or nothing is left. */
double hubness_skewness(const uint32_t *counts, size_t n, int with_zeros);

#endif
