/* SPDX-License-Identifier: MIT */
/* test_adapter: unit tests of filters/adapter: the spec's test vector (spec section 4), the
 * inverse of every mapping, a finite-difference check of the hand-written gradients for
 * every family and loss, reproducible training, a small query-dependent benchmark, threshold
 * choice against hand-computed figures, and the blob round trip. Single-threaded. */
#include "algo/adapter.h"

#include "lib/err.h"
#include "tests/harness.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 88172645463325252ull;

static double urand(void)
{
	/* xorshift64*: fixed seed, so every failure reproduces */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (double)((rng_state * 2685821657736338717ull) >> 11) * 0x1.0p-53;
}

static double nrand(void)
{
	double u = urand() + 1e-12, v = urand();

	return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/* Spec section 4's table, tau = 0.5, and the power and softplus lines under it. */
static void test_spec_vector(void)
{
	CHECK_NEAR(adapter_map(ADAPTER_LINEAR, 10, -6, 0.62), 0.5498, 5e-5);
	CHECK_NEAR(adapter_map(ADAPTER_LINEAR, 10, -6, 0.55), 0.3775, 5e-5);
	CHECK_NEAR(adapter_map(ADAPTER_LINEAR, 20, -8, 0.45), 0.7311, 5e-5);
	CHECK_NEAR(adapter_map(ADAPTER_LINEAR, 20, -8, 0.38), 0.4013, 5e-5);
	/* kept at tau = 0.5: 0.62 only for q1, 0.45 only for q2 */
	CHECK(adapter_map(ADAPTER_LINEAR, 10, -6, 0.62) >= 0.5);
	CHECK(adapter_map(ADAPTER_LINEAR, 10, -6, 0.55) < 0.5);
	CHECK(adapter_map(ADAPTER_LINEAR, 20, -8, 0.45) >= 0.5);
	CHECK(adapter_map(ADAPTER_LINEAR, 20, -8, 0.38) < 0.5);
	/* the per-query cosine bounds: 0.6 for q1, 0.4 for q2 (a raw 0.5 keeps both of q1's) */
	CHECK_NEAR(adapter_inverse(ADAPTER_LINEAR, 10, -6, 0.5), 0.6, 1e-12);
	CHECK_NEAR(adapter_inverse(ADAPTER_LINEAR, 20, -8, 0.5), 0.4, 1e-12);
	CHECK_NEAR(adapter_map(ADAPTER_POWER, 1.5, 0, 0.62), 0.4882, 5e-5);
	CHECK_NEAR(adapter_map(ADAPTER_POWER, 1.5, 0, 0.55), 0.4079, 5e-5);
	CHECK_NEAR(adapter_map(ADAPTER_POWER, 0.8, 0, 0.45), 0.5279, 5e-5);
	CHECK_NEAR(adapter_softplus(2.0), 2.126928, 5e-7);
	CHECK_NEAR(adapter_softplus_inv(adapter_softplus(2.0)), 2.0, 1e-12);
	CHECK_NEAR(adapter_softplus_inv(adapter_softplus(-8.0)), -8.0, 1e-9);
	CHECK_NEAR(adapter_softplus_inv(adapter_softplus(50.0)), 50.0, 1e-9);
	/* sqrt: sigmoid(4 * sqrt(0.25) - 1) = sigmoid(1) */
	CHECK_NEAR(adapter_map(ADAPTER_SQRT, 4, -1, 0.25), 1 / (1 + exp(-1.0)), 1e-12);
	CHECK_NEAR(adapter_map(ADAPTER_SQRT, 4, -1, -0.3), 1 / (1 + exp(1.0)), 1e-12);
	CHECK(adapter_map(ADAPTER_POWER, 2, 0, -0.3) == 0);
}

/* For every family: f(inverse(p)) = p at the edge, monotone, and the edge cases. */
static void test_inverse(void)
{
	for (int it = 0; it < 300; it++) {
		enum adapter_family f = (enum adapter_family)(it % 3);
		double al = 0.2 + 40 * urand(), be = -20 + 25 * urand(), pm = 0.01 + 0.98 * urand();
		double s = adapter_inverse(f, al, be, pm);

		for (double x = -1; x <= 1; x += 0.01) /* monotone non-decreasing */
			CHECK(adapter_map(f, al, be, x + 0.01) >= adapter_map(f, al, be, x));
		if (isinf(s) && s < 0) {
			CHECK(f == ADAPTER_SQRT && adapter_map(f, al, be, -1) >= pm);
			continue;
		}
		CHECK(isfinite(s));
		CHECK_NEAR(adapter_map(f, al, be, s), pm, 1e-9);
		CHECK(adapter_map(f, al, be, s + 1e-7) >= pm);
		CHECK(adapter_map(f, al, be, s - 1e-7) < pm);
	}
	CHECK(adapter_inverse(ADAPTER_LINEAR, 3, 1, 0) == -INFINITY);
	CHECK(adapter_inverse(ADAPTER_LINEAR, 3, 1, 1) == INFINITY);
	CHECK(adapter_inverse(ADAPTER_POWER, 3, 0, 1.5) == INFINITY);
	CHECK_NEAR(adapter_inverse(ADAPTER_POWER, 3, 0, 1), 1, 0);
}

/* Random pairs for nq queries of dim d, npq pairs each; storage owned by the caller. */
struct set {
	float *q, *cos;
	uint8_t *label;
	size_t *qstart;
	struct adapter_data d;
};

static void set_free(struct set *s)
{
	free(s->q);
	free(s->cos);
	free(s->label);
	free(s->qstart);
}

/* Each query's relevant documents sit around its own cosine level (a function of the
 * query's first coordinates), so one global cosine cutoff cannot separate them. */
static int set_make(struct set *s, size_t nq, uint32_t dim, size_t npq)
{
	memset(s, 0, sizeof *s);
	s->q = malloc(nq * dim * sizeof *s->q);
	s->cos = malloc(nq * npq * sizeof *s->cos);
	s->label = malloc(nq * npq);
	s->qstart = malloc((nq + 1) * sizeof *s->qstart);
	if (!s->q || !s->cos || !s->label || !s->qstart)
		return -1;
	for (size_t i = 0; i < nq; i++) {
		double nn = 0, level;

		for (uint32_t k = 0; k < dim; k++) {
			s->q[i * dim + k] = (float)nrand();
			nn += (double)s->q[i * dim + k] * s->q[i * dim + k];
		}
		for (uint32_t k = 0; k < dim; k++)
			s->q[i * dim + k] = (float)(s->q[i * dim + k] / sqrt(nn));
		level = 0.5 + 0.35 * tanh(3 * s->q[i * dim]); /* 0.15 .. 0.85 */
		s->qstart[i] = i * npq;
		for (size_t j = 0; j < npq; j++) {
			int rel = j % 4 == 0;
			double c = level + (rel ? 0.06 : -0.06) + 0.03 * nrand();

			s->cos[i * npq + j] = (float)c;
			s->label[i * npq + j] = (uint8_t)rel;
		}
	}
	s->qstart[nq] = nq * npq;
	s->d = (struct adapter_data){nq, dim, s->q, s->qstart, s->cos, s->label};
	return 0;
}

/* Analytic gradients against central differences, every parameter, every family and loss. */
static void test_gradient_check(void)
{
	struct set s;
	struct adapter *a = NULL, *g = NULL;

	CHECK(set_make(&s, 6, 5, 7) == 0);
	for (int c = 0; c < 6; c++) {
		enum adapter_family f = (enum adapter_family)(c % 3);
		enum adapter_loss l = c < 3 ? ADAPTER_BCE : ADAPTER_MSE;
		double worst = 0;

		CHECK(adapter_new(&a, f, 5, 4, NULL) == 0);
		CHECK(adapter_new(&g, f, 5, 4, NULL) == 0);
		for (size_t k = 0; k < a->nparam; k++)
			a->param[k] = nrand();
		a->b1[0] = a->b1[1] = 1.5; /* keep some units active */
		a->b2[0] = 1.0;
		adapter_loss(a, &s.d, NULL, 0, l, 0.01, g);
		for (size_t k = 0; k < a->nparam; k++) {
			double keep = a->param[k], h = 1e-6, lp, lm, num, err;

			a->param[k] = keep + h;
			lp = adapter_loss(a, &s.d, NULL, 0, l, 0.01, NULL);
			a->param[k] = keep - h;
			lm = adapter_loss(a, &s.d, NULL, 0, l, 0.01, NULL);
			a->param[k] = keep;
			num = (lp - lm) / (2 * h);
			err = fabs(num - g->param[k]) / fmax(1e-4, fabs(num) + fabs(g->param[k]));
			if (err > worst)
				worst = err;
		}
		printf("  gradient check %s/%s: worst relative error %.2e\n", adapter_family_name(f),
		       adapter_loss_name(l), worst);
		adapter_free(a);
		adapter_free(g);
		a = g = NULL;
		CHECK(worst < 1e-5);
	}
	set_free(&s);
}

static struct adapter_train_opts opts_default(uint64_t seed, enum adapter_loss l)
{
	return (struct adapter_train_opts){.seed = seed,
	                                   .loss = l,
	                                   .learning_rate = 0.01,
	                                   .weight_decay = 1e-4,
	                                   .max_epochs = 60,
	                                   .patience = 8,
	                                   .batch_queries = 16};
}

/* Same seed, same weights bit for bit; another seed, other weights. */
static void test_deterministic(void)
{
	struct set tr, va;
	struct adapter *a = NULL, *b = NULL;
	struct adapter_train_opts o = opts_default(7, ADAPTER_BCE);
	struct adapter_train_result r1, r2;

	o.max_epochs = 5;
	CHECK(set_make(&tr, 40, 8, 12) == 0);
	CHECK(set_make(&va, 10, 8, 12) == 0);
	CHECK(adapter_new(&a, ADAPTER_LINEAR, 8, 8, NULL) == 0);
	CHECK(adapter_new(&b, ADAPTER_LINEAR, 8, 8, NULL) == 0);
	CHECK(adapter_train(a, &tr.d, &va.d, &o, &r1, NULL) == 0);
	CHECK(adapter_train(b, &tr.d, &va.d, &o, &r2, NULL) == 0);
	CHECK(memcmp(a->param, b->param, a->nparam * sizeof(double)) == 0);
	CHECK(r1.val_loss == r2.val_loss && r1.epochs == r2.epochs);
	o.seed = 8;
	CHECK(adapter_train(b, &tr.d, &va.d, &o, &r2, NULL) == 0);
	CHECK(memcmp(a->param, b->param, a->nparam * sizeof(double)) != 0);
	adapter_free(a);
	adapter_free(b);
	set_free(&tr);
	set_free(&va);
}

/* Query-dependent relevance levels: on held-out queries the adapter's precision at its
 * threshold beats the best raw cosine cutoff with (at least) the same recall. */
static void test_learns_levels(void)
{
	struct set tr, va;
	struct adapter *a = NULL;
	struct adapter_train_result r;
	struct adapter_prf pa, pc;
	float *sc;

	CHECK(set_make(&tr, 300, 16, 16) == 0);
	CHECK(set_make(&va, 100, 16, 16) == 0);
	for (int f = 0; f < 3; f++) {
		struct adapter_train_opts o =
		        opts_default(1, f == ADAPTER_POWER ? ADAPTER_MSE : ADAPTER_BCE);

		o.max_epochs = 150;
		CHECK(adapter_new(&a, (enum adapter_family)f, 16, 16, NULL) == 0);
		CHECK(adapter_train(a, &tr.d, &va.d, &o, &r, NULL) == 0);
		CHECK(r.val_loss < r.init_val_loss);
		sc = malloc(va.qstart[va.d.nq] * sizeof *sc);
		CHECK(sc != NULL);
		adapter_score_pairs(a, &va.d, sc);
		CHECK(adapter_choose(sc, va.label, va.qstart[va.d.nq], ADAPTER_MAX_F1, 0, &pa, NULL) ==
		      0);
		CHECK(adapter_choose(va.cos, va.label, va.qstart[va.d.nq], ADAPTER_RECALL, pa.recall,
		                     &pc, NULL) == 0);
		printf("  %s: %u epochs (best %u), loss %.4f -> %.4f; adapter P %.3f R %.3f, "
		       "raw cosine P %.3f R %.3f\n",
		       adapter_family_name(a->family), r.epochs, r.best_epoch, r.init_val_loss,
		       r.val_loss, pa.precision, pa.recall, pc.precision, pc.recall);
		free(sc);
		adapter_free(a);
		a = NULL;
		CHECK(pc.recall >= pa.recall);
		CHECK(pa.precision > pc.precision + 0.15);
	}
	set_free(&tr);
	set_free(&va);
}

/* Hand-computed: scores 0.9 0.8 0.8 0.5 0.3 with labels 1 0 1 1 0 (3 positives). */
static void test_choose(void)
{
	const float sc[] = {0.5f, 0.8f, 0.9f, 0.3f, 0.8f};
	const uint8_t lb[] = {1, 0, 1, 0, 1};
	struct adapter_prf p;
	struct set s;

	/* thresholds: 0.9 P 1 R 1/3; 0.8 P 2/3 R 2/3; 0.5 P 3/4 R 1; 0.3 P 3/5 R 1 */
	CHECK(adapter_choose(sc, lb, 5, ADAPTER_MAX_F1, 0, &p, NULL) == 0);
	CHECK_NEAR(p.threshold, 0.5, 1e-7);
	CHECK_NEAR(p.precision, 0.75, 1e-12);
	CHECK_NEAR(p.f1, 2 * 0.75 / 1.75, 1e-12);
	CHECK(adapter_choose(sc, lb, 5, ADAPTER_PRECISION, 0.9, &p, NULL) == 0);
	CHECK_NEAR(p.threshold, 0.9, 1e-7);
	CHECK_INT(p.kept, 1);
	CHECK(adapter_choose(sc, lb, 5, ADAPTER_PRECISION, 0.7, &p, NULL) == 0);
	CHECK_NEAR(p.threshold, 0.5, 1e-7);
	CHECK(adapter_choose(sc, lb, 5, ADAPTER_RECALL, 0.6, &p, NULL) == 0);
	CHECK_NEAR(p.threshold, 0.8, 1e-7);
	CHECK_INT(p.tp, 2);
	CHECK(adapter_choose(sc, lb, 5, ADAPTER_PRECISION, 1.5, &p, NULL) == 0); /* unreachable */
	CHECK_NEAR(p.precision, 1, 0);
	adapter_prf_at(sc, lb, 5, 0.8, &p);
	CHECK_INT(p.kept, 3);
	CHECK_INT(p.tp, 2);
	CHECK(adapter_choose(sc, lb, 0, ADAPTER_MAX_F1, 0, &p, NULL) == ERR_INVALID);
	/* top-k: two queries, cosines as scores */
	{
		float c[] = {0.1f, 0.9f, 0.5f, 0.7f, 0.2f};
		uint8_t l[] = {1, 1, 0, 0, 1};
		size_t qs[] = {0, 3, 5};
		float q[2] = {1, 0};

		memset(&s, 0, sizeof s);
		s.d = (struct adapter_data){2, 1, q, qs, c, l};
		CHECK(adapter_prf_top_k(&s.d, 1, &p, NULL) == 0);
		CHECK_INT(p.kept, 2); /* 0.9 (rel) and 0.7 (not) */
		CHECK_INT(p.tp, 1);
		CHECK_INT(p.positives, 3);
	}
}

static void test_blob(void)
{
	struct adapter *a = NULL, *b = NULL;
	void *blob = NULL;
	size_t len;
	unsigned char junk[8] = {0};

	CHECK(adapter_new(&a, ADAPTER_SQRT, 3, 2, NULL) == 0);
	for (size_t k = 0; k < a->nparam; k++)
		a->param[k] = nrand();
	CHECK(adapter_save(a, &blob, &len, NULL) == 0);
	CHECK(adapter_load(&b, blob, len, NULL) == 0);
	CHECK(b->family == ADAPTER_SQRT && b->dim == 3 && b->hidden == 2);
	CHECK(memcmp(a->param, b->param, a->nparam * sizeof(double)) == 0);
	adapter_free(b);
	b = NULL;
	CHECK(adapter_load(&b, blob, len - 1, NULL) == ERR_INVALID);
	CHECK(adapter_load(&b, junk, sizeof junk, NULL) == ERR_INVALID);
	CHECK(adapter_new(&b, ADAPTER_SQRT, 3, 0, NULL) == ERR_INVALID);
	free(blob);
	adapter_free(a);
	adapter_free(NULL);
}

int main(void)
{
	HARNESS_RUN(test_spec_vector);
	HARNESS_RUN(test_inverse);
	HARNESS_RUN(test_gradient_check);
	HARNESS_RUN(test_deterministic);
	HARNESS_RUN(test_learns_levels);
	HARNESS_RUN(test_choose);
	HARNESS_RUN(test_blob);
	return harness_done();
}
