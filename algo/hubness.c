/* SPDX-License-Identifier: MIT */
/* hubness: IS, DIS, CSLS, DualIS, DualDIS, bank statistics and the hubness measure
 * (spec section 5). Pure computation; see hubness.h. */
#include "algo/hubness.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

double hubness_logsumexp(const float *s, size_t n, double beta)
{
	double mx = -INFINITY, sum = 0;

	for (size_t i = 0; i < n; i++)
		if (!isnan(s[i]) && beta * s[i] > mx)
			mx = beta * s[i];
	if (mx == -INFINITY)
		return -INFINITY;
	/* shift by the largest term: exp never overflows, the largest term is exactly 1. Each
	 * term in float (expf is about twice as fast as exp, and the statistics are stored as
	 * floats), the sum in double */
	{
		float fb = (float)beta, fm = (float)mx;

		for (size_t i = 0; i < n; i++)
			if (!isnan(s[i]))
				sum += expf(fb * s[i] - fm);
	}
	return mx + log(sum);
}

double hubness_topk_mean(const float *s, size_t n, unsigned k)
{
	/* k is small (10): keep the best k in a sorted little buffer */
	float best[64];
	unsigned kk = k < 64 ? k : 64, have = 0;
	double sum = 0;

	if (kk == 0)
		return NAN;
	for (size_t i = 0; i < n; i++) {
		unsigned at;

		if (isnan(s[i]))
			continue;
		if (have == kk && s[i] <= best[kk - 1])
			continue;
		at = have < kk ? have++ : kk - 1;
		while (at > 0 && best[at - 1] < s[i]) {
			best[at] = best[at - 1];
			at--;
		}
		best[at] = s[i];
	}
	if (have == 0)
		return NAN;
	for (unsigned i = 0; i < have; i++)
		sum += best[i];
	return sum / have;
}

void hubness_stats_from_sims(const struct hubness_params *p, const float *sq, size_t nq,
                             const float *sg, size_t ng, struct hubness_stats *out)
{
	out->log_zq = (float)hubness_logsumexp(sq, nq, p->beta1);
	out->log_zg = (float)hubness_logsumexp(sg, ng, p->beta2);
	out->r_b = (float)hubness_topk_mean(sq, nq, p->csls_k);
	out->flags = HUBNESS_COMPUTED;
}

int hubness_topk_new(struct hubness_topk **out, size_t n, unsigned k)
{
	struct hubness_topk *t = calloc(1, sizeof *t);

	if (t == NULL || k == 0)
		goto fail;
	t->n = n;
	t->k = k;
	t->score = malloc((n * k + 1) * sizeof *t->score);
	t->row = malloc((n * k + 1) * sizeof *t->row);
	if (t->score == NULL || t->row == NULL)
		goto fail;
	for (size_t i = 0; i < n * k; i++) {
		t->score[i] = -INFINITY;
		t->row[i] = UINT64_MAX;
	}
	*out = t;
	return 0;
fail:
	hubness_topk_free(t);
	return ERR_NOMEM;
}

void hubness_topk_free(struct hubness_topk *t)
{
	if (t == NULL)
		return;
	free(t->score);
	free(t->row);
	free(t);
}

void hubness_topk_offer(struct hubness_topk *t, const float *s, uint64_t row)
{
	unsigned k = t->k;

	for (size_t b = 0; b < t->n; b++) {
		float *sc = t->score + b * k;
		uint64_t *rw = t->row + b * k;
		unsigned at;

		/* ranked by score, then lower row: the same order as search results */
		if (isnan(s[b]) || s[b] < sc[k - 1] || (s[b] == sc[k - 1] && row >= rw[k - 1]))
			continue;
		at = k - 1;
		while (at > 0 && (sc[at - 1] < s[b] || (sc[at - 1] == s[b] && rw[at - 1] > row))) {
			sc[at] = sc[at - 1];
			rw[at] = rw[at - 1];
			at--;
		}
		sc[at] = s[b];
		rw[at] = row;
	}
}

void hubness_topk_merge(struct hubness_topk *dst, const struct hubness_topk *src)
{
	unsigned k = dst->k;

	for (size_t b = 0; b < dst->n && b < src->n; b++)
		for (unsigned i = 0; i < src->k; i++) {
			float s = src->score[b * src->k + i];
			uint64_t row = src->row[b * src->k + i];
			float *sc = dst->score + b * k;
			uint64_t *rw = dst->row + b * k;
			unsigned at;

			if (row == UINT64_MAX)
				continue;
			/* the row already there (an upsert): its old entry goes, the new one is placed */
			for (at = 0; at < k && rw[at] != row; at++)
				;
			for (; at < k; at++) {
				sc[at] = at + 1 < k ? sc[at + 1] : -INFINITY;
				rw[at] = at + 1 < k ? rw[at + 1] : UINT64_MAX;
			}
			if (s < sc[k - 1] || (s == sc[k - 1] && row >= rw[k - 1]))
				continue;
			at = k - 1;
			while (at > 0 && (sc[at - 1] < s || (sc[at - 1] == s && rw[at - 1] > row))) {
				sc[at] = sc[at - 1];
				rw[at] = rw[at - 1];
				at--;
			}
			sc[at] = s;
			rw[at] = row;
		}
}

size_t hubness_topk_remove(struct hubness_topk *t, uint64_t row)
{
	unsigned k = t->k;
	size_t items = 0;

	for (size_t b = 0; b < t->n; b++) {
		float *sc = t->score + b * k;
		uint64_t *rw = t->row + b * k;
		unsigned at;

		for (at = 0; at < k && rw[at] != row; at++)
			;
		if (at == k)
			continue;
		items++;
		for (; at < k; at++) {
			sc[at] = at + 1 < k ? sc[at + 1] : -INFINITY;
			rw[at] = at + 1 < k ? rw[at + 1] : UINT64_MAX;
		}
	}
	return items;
}

int hubness_topk_contains(const struct hubness_topk *t, uint64_t row)
{
	for (size_t i = 0; i < t->n * t->k; i++)
		if (t->row[i] == row)
			return 1;
	return 0;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int hubness_topk_rows(const struct hubness_topk *t, uint64_t **rows, size_t *n)
{
	uint64_t *v = malloc((t->n * t->k + 1) * sizeof *v);
	size_t m = 0, w = 0;

	if (v == NULL)
		return ERR_NOMEM;
	for (size_t i = 0; i < t->n * t->k; i++)
		if (t->row[i] != UINT64_MAX)
			v[m++] = t->row[i];
	qsort(v, m, sizeof *v, u64_cmp);
	for (size_t i = 0; i < m; i++)
		if (w == 0 || v[w - 1] != v[i])
			v[w++] = v[i];
	*rows = v;
	*n = w;
	return 0;
}

/* Similarities of the c gallery vectors to the bank (c x n, row-major), self-pairs NaN. */
static void bank_sims(const struct hubness_bank *b, size_t c, const float *x,
                      const uint64_t *rows, float *s)
{
	if (b->n == 0 || c == 0)
		return;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c, (int)b->n, (int)b->dim, 1.0f,
	            x, (int)b->dim, b->vecs, (int)b->dim, 0.0f, s, (int)b->n);
	if (b->rows == NULL)
		return;
	/* a bank item that is this gallery item would dominate its Z with s = 1 (spec 5.4 d) */
	for (size_t i = 0; i < c; i++)
		for (size_t j = 0; j < b->n; j++)
			if (b->rows[j] == rows[i])
				s[i * b->n + j] = NAN;
}

int hubness_compute(const struct hubness_params *p, const struct hubness_bank *qb,
                    const struct hubness_bank *gb, size_t c, const float *x, const uint64_t *rows,
                    struct hubness_stats *out, struct hubness_topk *tq, struct hubness_topk *tg,
                    struct err *e)
{
	float *sq = malloc((c * qb->n + 1) * sizeof *sq);
	float *sg = malloc((c * gb->n + 1) * sizeof *sg);
	int rc = 0;

	if (sq == NULL || sg == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory for %zu x %zu similarities",
		             c, qb->n + gb->n);
		goto out;
	}
	bank_sims(qb, c, x, rows, sq);
	bank_sims(gb, c, x, rows, sg);
	for (size_t i = 0; i < c; i++) {
		hubness_stats_from_sims(p, sq + i * qb->n, qb->n, sg + i * gb->n, gb->n, &out[i]);
		if (tq != NULL)
			hubness_topk_offer(tq, sq + i * qb->n, rows[i]);
		if (tg != NULL)
			hubness_topk_offer(tg, sg + i * gb->n, rows[i]);
	}
out:
	free(sq);
	free(sg);
	return rc;
}

void hubness_rescore(const struct hubness_params *p, enum hubness_method m, size_t n,
                     const float *s, const struct hubness_stats *st, size_t top1, double r_g,
                     double *out)
{
	int aq = n > 0 && (st[top1].flags & HUBNESS_IN_AQ) != 0;
	int ag = n > 0 && (st[top1].flags & HUBNESS_IN_AG) != 0;

	for (size_t i = 0; i < n; i++) {
		double x = s[i], isq = p->beta1 * x - st[i].log_zq, isg = p->beta2 * x - st[i].log_zg;

		switch (m) {
		case HUBNESS_IS:
			out[i] = isq;
			break;
		case HUBNESS_DIS:
			out[i] = aq ? isq : x;
			break;
		case HUBNESS_DUALIS:
			out[i] = isq + isg;
			break;
		case HUBNESS_DUALDIS:
			if (p->dualdis_mode == HUBNESS_MONOTONE)
				out[i] = (p->beta1 + p->beta2) * x - (aq ? st[i].log_zq : 0) -
				         (ag ? st[i].log_zg : 0);
			else /* the reference code: an inactive factor is the raw cosine */
				out[i] = (aq ? exp(isq) : x) * (ag ? exp(isg) : x);
			break;
		case HUBNESS_CSLS:
			out[i] = 2 * x - r_g - st[i].r_b;
			break;
		default:
			out[i] = x;
			break;
		}
	}
}

static const char *const method_names[] = {"is", "dis", "dualis", "dualdis", "csls", "raw"};

int hubness_method_parse(const char *name, enum hubness_method *out)
{
	for (unsigned i = 0; name != NULL && i < sizeof method_names / sizeof *method_names; i++)
		if (strcmp(name, method_names[i]) == 0) {
			*out = (enum hubness_method)i;
			return 0;
		}
	return -1;
}

const char *hubness_method_name(enum hubness_method m)
{
	return (unsigned)m < sizeof method_names / sizeof *method_names ? method_names[m] : "?";
}

void hubness_occurrence(const uint64_t *top, size_t nq, unsigned k, uint32_t *counts,
                        size_t ngallery)
{
	memset(counts, 0, ngallery * sizeof *counts);
	for (size_t i = 0; i < nq * k; i++)
		if (top[i] < ngallery)
			counts[top[i]]++;
}

double hubness_skewness(const uint32_t *counts, size_t n, int with_zeros)
{
	double mu = 0, m2 = 0, m3 = 0;
	size_t m = 0;

	for (size_t i = 0; i < n; i++)
		if (with_zeros || counts[i] > 0) {
			mu += counts[i];
			m++;
		}
	if (m == 0)
		return 0;
	mu /= (double)m;
	for (size_t i = 0; i < n; i++)
		if (with_zeros || counts[i] > 0) {
			double d = counts[i] - mu;

			m2 += d * d;
			m3 += d * d * d;
		}
	m2 /= (double)m;
	m3 /= (double)m;
	return m2 > 0 ? m3 / pow(m2, 1.5) : 0;
}
