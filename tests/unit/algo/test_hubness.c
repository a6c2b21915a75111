/* SPDX-License-Identifier: MIT */
/* test_hubness: unit tests of filters/hubness against the spec 5.6 test vectors (Z values,
 * IS, DIS, DualIS, DualDIS, CSLS, skewness) and a brute-force double-precision oracle for
 * the bank statistics computed from vectors (matrix product, self-pair exclusion, top-k).
 * Single-threaded. */
#include "algo/hubness.h"

#include "lib/err.h"
#include "tests/harness.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Spec 5.6: beta = beta1 = beta2 = 20, k = 1. */
static const float S[2][4] = {{.30f, .28f, .10f, .05f}, {.25f, .27f, .24f, .20f}};
static const float QB[3][4] = {{.35f, .20f, .10f, 0}, {.33f, .22f, .12f, .02f},
                               {.10f, .15f, .30f, .05f}};
static const float GB[2][4] = {{.60f, .20f, .30f, .10f}, {.55f, .25f, .20f, .10f}};

static const struct hubness_params P = {20, 20, 1, 2, HUBNESS_REFERENCE};

/* The stats of the 4 gallery items and the activation flags from the banks' top-1. */
static int spec_stats(struct hubness_stats st[4])
{
	struct hubness_topk *tq = NULL, *tg = NULL;

	if (hubness_topk_new(&tq, 3, 1) != 0 || hubness_topk_new(&tg, 2, 1) != 0)
		return -1;
	for (unsigned g = 0; g < 4; g++) {
		float sq[3] = {QB[0][g], QB[1][g], QB[2][g]}, sg[2] = {GB[0][g], GB[1][g]};

		hubness_stats_from_sims(&P, sq, 3, sg, 2, &st[g]);
		hubness_topk_offer(tq, sq, g);
		hubness_topk_offer(tg, sg, g);
	}
	for (unsigned g = 0; g < 4; g++)
		st[g].flags |= (hubness_topk_contains(tq, g) ? HUBNESS_IN_AQ : 0) |
		               (hubness_topk_contains(tg, g) ? HUBNESS_IN_AG : 0);
	hubness_topk_free(tq);
	hubness_topk_free(tg);
	return 0;
}

static size_t argmax(const double *v, size_t n)
{
	size_t b = 0;

	for (size_t i = 1; i < n; i++)
		if (v[i] > v[b])
			b = i;
	return b;
}

/* Relative tolerance: the spec prints 6 significant digits, floats hold about 7. */
#define CHECK_REL(a, b, rel) CHECK_NEAR((a), (b), fabs((double)(b)) * (rel) + 1e-9)

static void test_spec_z(void)
{
	static const double zq[4] = {1839.117404, 156.134556, 421.841026, 5.210107};
	static const double zg[4] = {222628.933134, 203.011309, 458.026944, 14.778112};
	struct hubness_stats st[4];

	CHECK_INT(spec_stats(st), 0);
	for (unsigned g = 0; g < 4; g++) {
		CHECK_REL(exp(st[g].log_zq), zq[g], 1e-5);
		CHECK_REL(exp(st[g].log_zg), zg[g], 1e-5);
	}
	/* A_q = {0, 2}, A_g = {0} */
	CHECK_INT(st[0].flags, HUBNESS_COMPUTED | HUBNESS_IN_AQ | HUBNESS_IN_AG);
	CHECK_INT(st[1].flags, HUBNESS_COMPUTED);
	CHECK_INT(st[2].flags, HUBNESS_COMPUTED | HUBNESS_IN_AQ);
	CHECK_INT(st[3].flags, HUBNESS_COMPUTED);
	/* CSLS r_B (K = 2) */
	CHECK_NEAR(st[0].r_b, 0.34, 1e-6);
	CHECK_NEAR(st[1].r_b, 0.21, 1e-6);
	CHECK_NEAR(st[2].r_b, 0.21, 1e-6);
	CHECK_NEAR(st[3].r_b, 0.035, 1e-6);
}

/* One method over both test rows: out[2][4] and the argmax per row. */
static int rows_of(enum hubness_method m, const struct hubness_params *p, double out[2][4],
                   size_t am[2])
{
	struct hubness_stats st[4];

	if (spec_stats(st) != 0)
		return -1;
	for (unsigned q = 0; q < 2; q++) {
		size_t top1 = 0;
		double rg = hubness_topk_mean(S[q], 4, p->csls_k);

		for (size_t g = 1; g < 4; g++)
			if (S[q][g] > S[q][top1])
				top1 = g;
		hubness_rescore(p, m, 4, S[q], st, top1, rg, out[q]);
		am[q] = argmax(out[q], 4);
	}
	return 0;
}

static void test_spec_is(void)
{
	static const double want[2][4] = {{0.21936, 1.732009, 0.017516, 0.521732},
	                                  {0.080698, 1.418049, 0.288048, 10.479277}};
	double out[2][4];
	size_t am[2];

	CHECK_INT(rows_of(HUBNESS_IS, &P, out, am), 0);
	for (unsigned q = 0; q < 2; q++)
		for (unsigned g = 0; g < 4; g++)
			CHECK_REL(exp(out[q][g]), want[q][g], 2e-5);
	CHECK_INT(am[0], 1);
	CHECK_INT(am[1], 3); /* the anti-hub */
}

static void test_spec_dis(void)
{
	double out[2][4], is[2][4];
	size_t am[2], ami[2];

	CHECK_INT(rows_of(HUBNESS_DIS, &P, out, am), 0);
	CHECK_INT(rows_of(HUBNESS_IS, &P, is, ami), 0);
	for (unsigned g = 0; g < 4; g++) {
		CHECK_NEAR(out[0][g], is[0][g], 1e-12); /* row 1: top-1 item 0 is in A_q */
		CHECK_NEAR(out[1][g], S[1][g], 1e-7);   /* row 2: top-1 item 1 is not: raw */
	}
	CHECK_INT(am[0], 1);
	CHECK_INT(am[1], 1);
}

static void test_spec_dualis(void)
{
	static const double want[2][4] = {{0.000398, 2.307166, 0.000283, 0.095967},
	                                  {0.000054, 1.54654, 0.076417, 38.715983}};
	static const double log1[4] = {-7.830303, 0.83602, -8.171557, -2.343747};
	double out[2][4];
	size_t am[2];

	CHECK_INT(rows_of(HUBNESS_DUALIS, &P, out, am), 0);
	for (unsigned q = 0; q < 2; q++)
		for (unsigned g = 0; g < 4; g++) /* the spec rounds to 6 decimals: 0.000054 */
			CHECK_NEAR(exp(out[q][g]), want[q][g], fabs(want[q][g]) * 2e-5 + 6e-7);
	for (unsigned g = 0; g < 4; g++)
		CHECK_NEAR(out[0][g], log1[g], 2e-5);
	CHECK_INT(am[0], 1);
	CHECK_INT(am[1], 3);
}

static void test_spec_dualdis(void)
{
	static const double sq[4] = {0.0625, 0.0729, 0.0576, 0.04};
	double out[2][4], dual[2][4];
	size_t am[2], amd[2];
	struct hubness_params mono = P;

	CHECK_INT(rows_of(HUBNESS_DUALDIS, &P, out, am), 0);
	CHECK_INT(rows_of(HUBNESS_DUALIS, &P, dual, amd), 0);
	for (unsigned g = 0; g < 4; g++) {
		CHECK_REL(out[0][g], exp(dual[0][g]), 1e-9); /* both factors active */
		CHECK_NEAR(out[1][g], sq[g], 1e-7);           /* neither: s^2 */
	}
	CHECK_INT(am[0], 1);
	CHECK_INT(am[1], 1);
	/* monotone: row 2 has neither factor active, so it is (b1 + b2) s: ranked by s */
	mono.dualdis_mode = HUBNESS_MONOTONE;
	CHECK_INT(rows_of(HUBNESS_DUALDIS, &mono, out, am), 0);
	for (unsigned g = 0; g < 4; g++) {
		CHECK_NEAR(out[0][g], dual[0][g], 1e-9);
		CHECK_NEAR(out[1][g], 40.0 * S[1][g], 1e-5);
	}
	CHECK_INT(am[1], 1);
}

static void test_dualdis_reference_flips_negative(void)
{
	/* reference mode with no active factor ranks by s^2: -0.5 beats 0.3 (spec 5.4 c);
	 * monotone keeps 0.3 first */
	float s[2] = {0.3f, -0.5f};
	struct hubness_stats st[2] = {{1, 1, 0, HUBNESS_COMPUTED}, {1, 1, 0, HUBNESS_COMPUTED}};
	struct hubness_params p = P;
	double out[2];

	hubness_rescore(&p, HUBNESS_DUALDIS, 2, s, st, 0, 0, out);
	CHECK(out[1] > out[0]);
	p.dualdis_mode = HUBNESS_MONOTONE;
	hubness_rescore(&p, HUBNESS_DUALDIS, 2, s, st, 0, 0, out);
	CHECK(out[0] > out[1]);
}

static void test_spec_csls(void)
{
	static const double want[2][4] = {{-0.03, 0.06, -0.30, -0.225}, {-0.10, 0.07, 0.01, 0.105}};
	double out[2][4];
	size_t am[2];

	CHECK_INT(rows_of(HUBNESS_CSLS, &P, out, am), 0);
	for (unsigned q = 0; q < 2; q++)
		for (unsigned g = 0; g < 4; g++)
			CHECK_NEAR(out[q][g], want[q][g], 1e-6);
	CHECK_INT(am[0], 1);
	CHECK_INT(am[1], 3);
	CHECK_NEAR(hubness_topk_mean(S[0], 4, 2), 0.29, 1e-7);
	CHECK_NEAR(hubness_topk_mean(S[1], 4, 2), 0.26, 1e-7);
}

static void test_spec_skewness(void)
{
	/* all 5 queries (2 test + 3 bank), k = 1: top-1 items 0, 1, 0, 0, 2 */
	static const uint64_t top[5] = {0, 1, 0, 0, 2};
	uint32_t n[4];

	hubness_occurrence(top, 5, 1, n, 4);
	CHECK_INT(n[0], 3);
	CHECK_INT(n[1], 1);
	CHECK_INT(n[2], 1);
	CHECK_INT(n[3], 0);
	CHECK_NEAR(hubness_skewness(n, 4, 1), 0.652024, 1e-6);
	CHECK_NEAR(hubness_skewness(n, 4, 0), 0.707107, 1e-6);
	n[0] = n[1] = n[2] = n[3] = 2; /* no spread: 0, not NaN */
	CHECK_NEAR(hubness_skewness(n, 4, 1), 0, 0);
}

static void test_logsumexp_large(void)
{
	/* beta 50 over a million s = 1: log(1e6) + 50, where a naive sum overflows float */
	size_t n = 1000000;
	float *s = malloc(n * sizeof *s);

	CHECK(s != NULL);
	for (size_t i = 0; i < n; i++)
		s[i] = 1.0f;
	s[7] = NAN; /* excluded */
	CHECK_NEAR(hubness_logsumexp(s, n, 50), 50 + log((double)(n - 1)), 1e-9);
	CHECK(isinf(hubness_logsumexp(s, 0, 50)));
	free(s);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (double)(rng_state * 2685821657736338717ULL >> 11) / 9007199254740992.0 - 0.5;
}

static void normalise(float *v, unsigned d)
{
	double n = 0;

	for (unsigned i = 0; i < d; i++)
		n += (double)v[i] * v[i];
	for (unsigned i = 0; i < d; i++)
		v[i] = (float)(v[i] / sqrt(n));
}

/* hubness_compute (OpenBLAS) against a brute-force double loop, with the gallery bank drawn
 * from the gallery (self-pairs excluded) and a separate query bank. */
static void test_compute_vs_bruteforce(void)
{
	enum { D = 24, NG = 300, NQ = 40, NB = 30, C = 64 };
	float *g = malloc(sizeof(float) * NG * D), *qb = malloc(sizeof(float) * NQ * D);
	float *gbv = malloc(sizeof(float) * NB * D);
	uint64_t rows[NG], gbrows[NB];
	struct hubness_stats st[NG];
	struct hubness_topk *tq = NULL, *tg = NULL;
	struct hubness_params p = {7.5, 12, 2, 10, HUBNESS_REFERENCE};
	struct hubness_bank bq = {NQ, D, NULL, NULL}, bg = {NB, D, NULL, gbrows};

	CHECK(g != NULL && qb != NULL && gbv != NULL);
	for (size_t i = 0; i < NG; i++) {
		for (unsigned k = 0; k < D; k++)
			g[i * D + k] = (float)rnd();
		normalise(g + i * D, D);
		rows[i] = 1000 + i;
	}
	for (size_t i = 0; i < NQ; i++) {
		for (unsigned k = 0; k < D; k++)
			qb[i * D + k] = (float)rnd();
		normalise(qb + i * D, D);
	}
	for (size_t i = 0; i < NB; i++) { /* every 10th gallery item */
		memcpy(gbv + i * D, g + i * 10 * D, sizeof(float) * D);
		gbrows[i] = rows[i * 10];
	}
	bq.vecs = qb;
	bg.vecs = gbv;
	CHECK_INT(hubness_topk_new(&tq, NQ, p.k), 0);
	CHECK_INT(hubness_topk_new(&tg, NB, p.k), 0);
	for (size_t at = 0; at < NG; at += C) {
		size_t c = NG - at < C ? NG - at : C;

		CHECK_INT(hubness_compute(&p, &bq, &bg, c, g + at * D, rows + at, st + at, tq, tg, NULL),
		          0);
	}
	for (size_t i = 0; i < NG; i++) {
		double zq = 0, zg = 0, sims[NQ];

		for (size_t b = 0; b < NQ; b++) {
			double s = 0;

			for (unsigned k = 0; k < D; k++)
				s += (double)g[i * D + k] * qb[b * D + k];
			sims[b] = s;
			zq += exp(p.beta1 * s);
		}
		for (size_t b = 0; b < NB; b++) {
			double s = 0;

			if (gbrows[b] == rows[i])
				continue;
			for (unsigned k = 0; k < D; k++)
				s += (double)g[i * D + k] * gbv[b * D + k];
			zg += exp(p.beta2 * s);
		}
		CHECK_NEAR(st[i].log_zq, log(zq), 1e-4);
		CHECK_NEAR(st[i].log_zg, log(zg), 1e-4);
		{
			/* r_B: mean of the 10 largest */
			double top = 0;

			for (unsigned t = 0; t < 10; t++) {
				size_t bi = 0;

				for (size_t b = 1; b < NQ; b++)
					if (sims[b] > sims[bi])
						bi = b;
				top += sims[bi];
				sims[bi] = -INFINITY;
			}
			CHECK_NEAR(st[i].r_b, top / 10, 1e-5);
		}
	}
	/* top-2 of gallery bank item 0 never contains itself */
	CHECK(tg->row[0] != gbrows[0] && tg->row[1] != gbrows[0]);
	CHECK(tg->score[0] >= tg->score[1]);
	{
		uint64_t *ar = NULL;
		size_t na = 0;

		CHECK_INT(hubness_topk_rows(tq, &ar, &na), 0);
		CHECK(na >= 2 && na <= NQ * 2);
		for (size_t i = 1; i < na; i++)
			CHECK(ar[i - 1] < ar[i]);
		for (size_t i = 0; i < na; i++)
			CHECK(hubness_topk_contains(tq, ar[i]));
		free(ar);
	}
	hubness_topk_free(tq);
	hubness_topk_free(tg);
	free(g);
	free(qb);
	free(gbv);
}

static void test_topk_merge(void)
{
	/* one bank item, k = 3: dst has rows 10 (0.9), 11 (0.5), 12 (0.4) */
	struct hubness_topk *dst = NULL, *src = NULL;
	float s;

	CHECK_INT(hubness_topk_new(&dst, 1, 3), 0);
	CHECK_INT(hubness_topk_new(&src, 1, 3), 0);
	s = 0.9f, hubness_topk_offer(dst, &s, 10);
	s = 0.5f, hubness_topk_offer(dst, &s, 11);
	s = 0.4f, hubness_topk_offer(dst, &s, 12);
	s = 0.1f, hubness_topk_offer(dst, &s, 13); /* not in the top 3 */
	CHECK(!hubness_topk_contains(dst, 13));
	/* an upsert of row 10 to 0.3: its old entry goes, it ranks last */
	s = 0.3f, hubness_topk_offer(src, &s, 10);
	hubness_topk_merge(dst, src);
	CHECK_INT(dst->row[0], 11);
	CHECK_INT(dst->row[1], 12);
	CHECK_INT(dst->row[2], 10);
	CHECK_NEAR(dst->score[2], 0.3, 1e-7);
	/* row 20 at 0.7 enters first and pushes row 10 out */
	hubness_topk_free(src);
	CHECK_INT(hubness_topk_new(&src, 1, 3), 0);
	s = 0.7f, hubness_topk_offer(src, &s, 20);
	hubness_topk_merge(dst, src);
	CHECK_INT(dst->row[0], 20);
	CHECK_INT(dst->row[1], 11);
	CHECK_INT(dst->row[2], 12);
	CHECK(!hubness_topk_contains(dst, 10));
	/* ties: the lower row first */
	hubness_topk_free(src);
	CHECK_INT(hubness_topk_new(&src, 1, 3), 0);
	s = 0.5f, hubness_topk_offer(src, &s, 5);
	hubness_topk_merge(dst, src);
	CHECK_INT(dst->row[1], 5);
	CHECK_INT(dst->row[2], 11);
	hubness_topk_free(dst);
	hubness_topk_free(src);
}

/* A deleted row leaves every item's top-k it was in; the rest move up and the freed last slot
 * takes the next row offered. */
static void test_topk_remove(void)
{
	/* two bank items, k = 3: item 0 has rows 10, 11, 12; item 1 has 12, 13, 14 */
	struct hubness_topk *t = NULL;
	const float s10[2] = {0.9f, 0.0f}, s11[2] = {0.5f, 0.0f}, s12[2] = {0.4f, 0.9f},
	            s13[2] = {0.0f, 0.8f}, s14[2] = {0.0f, 0.7f}, s15[2] = {0.2f, 0.1f};
	uint64_t *rows = NULL;
	size_t n = 0;

	CHECK_INT(hubness_topk_new(&t, 2, 3), 0);
	hubness_topk_offer(t, s10, 10);
	hubness_topk_offer(t, s11, 11);
	hubness_topk_offer(t, s12, 12);
	hubness_topk_offer(t, s13, 13);
	hubness_topk_offer(t, s14, 14);
	CHECK_INT(hubness_topk_remove(t, 12), 2);
	CHECK_INT(hubness_topk_remove(t, 12), 0);
	CHECK_INT(hubness_topk_remove(t, 99), 0);
	CHECK_INT(t->row[0], 10);
	CHECK_INT(t->row[1], 11);
	CHECK_INT(t->row[2], UINT64_MAX);
	CHECK(t->score[2] == -INFINITY);
	CHECK_INT(t->row[3], 13);
	CHECK_INT(t->row[4], 14);
	CHECK_INT(t->row[5], UINT64_MAX);
	CHECK(!hubness_topk_contains(t, 12));
	CHECK_INT(hubness_topk_rows(t, &rows, &n), 0);
	CHECK_INT(n, 4);
	free(rows);
	/* row 15 (0.2, 0.1) now makes both lists, last */
	hubness_topk_offer(t, s15, 15);
	CHECK_INT(t->row[2], 15);
	CHECK_INT(t->row[5], 15);
	hubness_topk_free(t);
}

static void test_method_names(void)
{
	enum hubness_method m;

	CHECK_INT(hubness_method_parse("dualdis", &m), 0);
	CHECK_INT(m, HUBNESS_DUALDIS);
	CHECK_STR(hubness_method_name(HUBNESS_CSLS), "csls");
	CHECK_INT(hubness_method_parse("DualIS", &m), -1);
	CHECK_INT(hubness_method_parse(NULL, &m), -1);
}

int main(void)
{
	HARNESS_RUN(test_spec_z);
	HARNESS_RUN(test_spec_is);
	HARNESS_RUN(test_spec_dis);
	HARNESS_RUN(test_spec_dualis);
	HARNESS_RUN(test_spec_dualdis);
	HARNESS_RUN(test_dualdis_reference_flips_negative);
	HARNESS_RUN(test_spec_csls);
	HARNESS_RUN(test_spec_skewness);
	HARNESS_RUN(test_logsumexp_large);
	HARNESS_RUN(test_compute_vs_bruteforce);
	HARNESS_RUN(test_topk_merge);
	HARNESS_RUN(test_topk_remove);
	HARNESS_RUN(test_method_names);
	return harness_done();
}
