/* SPDX-License-Identifier: MIT */
/* test_select: unit tests of filters/select against the spec vectors and a qsort oracle.
 *
 * Single-threaded. The 10^7-score timing against qsort is printed, never asserted;
 * SELECT_BENCH_N overrides its size (e.g. a small one under valgrind). */
#include "algo/select.h"

#include "lib/err.h"
#include "tests/harness.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RAND_N 100000

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	/* xorshift64*: fixed seed, so every failure reproduces. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

/* 1 when keep[] has exactly the rows in want[] set. */
static int keep_is(const uint8_t *keep, size_t n, const size_t *want, size_t n_want)
{
	size_t count = 0;

	for (size_t i = 0; i < n_want; i++)
		if (want[i] >= n || keep[want[i]] != 1)
			return 0;
	for (size_t i = 0; i < n; i++) {
		if (keep[i] > 1)
			return 0;
		count += keep[i];
	}
	return count == n_want;
}

static void test_datacomp_vector(void)
{
	const float s[] = {0.31f, 0.22f, 0.28f, 0.35f, 0.19f, 0.30f};
	const size_t want[] = {0, 2, 3, 5};
	uint8_t keep[6];
	float thr = 0.0f;
	size_t kept = 0;

	CHECK_INT(select_top_fraction(s, 6, 0.5, &thr, &kept, keep), 0);
	CHECK(thr == 0.28f);
	CHECK_INT(kept, 4);
	CHECK(keep_is(keep, 6, want, 4));
	/* counting only */
	kept = 0;
	CHECK_INT(select_top_fraction(s, 6, 0.5, NULL, &kept, NULL), 0);
	CHECK_INT(kept, 4);
	/* the threshold rule with the spec's README value */
	CHECK_INT(select_threshold_count(s, 6, 0.28f, &kept, keep), 0);
	CHECK_INT(kept, 4);
	CHECK(keep_is(keep, 6, want, 4));
	CHECK_INT(select_threshold_count(s, 6, 0.30f, &kept, NULL), 0);
	CHECK_INT(kept, 3);
}

static void test_fraction_edges(void)
{
	const float ones[] = {1, 1, 1, 1};
	const float s[] = {0.31f, 0.22f, 0.28f, 0.35f, 0.19f, 0.30f};
	const float nans[] = {NAN, NAN};
	const size_t all4[] = {0, 1, 2, 3};
	uint8_t keep[6];
	float thr = 0.0f;
	size_t kept = 99;

	CHECK_INT(select_top_fraction(ones, 4, 0.5, &thr, &kept, keep), 0);
	CHECK(thr == 1.0f);
	CHECK_INT(kept, 4);
	CHECK(keep_is(keep, 4, all4, 4));
	/* f = 1 keeps all, threshold = min (the reference raises instead) */
	CHECK_INT(select_top_fraction(s, 6, 1.0, &thr, &kept, NULL), 0);
	CHECK(thr == 0.19f);
	CHECK_INT(kept, 6);
	CHECK_INT(select_bottom_fraction(s, 6, 1.0, &thr, &kept, NULL), 0);
	CHECK(thr == 0.35f);
	CHECK_INT(kept, 6);
	/* small f: k = 0, threshold = the max, one row kept */
	CHECK_INT(select_top_fraction(s, 6, 0.1, &thr, &kept, keep), 0);
	CHECK(thr == 0.35f);
	CHECK_INT(kept, 1);
	CHECK_INT(keep[3], 1);
	/* invalid f */
	CHECK_INT(select_top_fraction(s, 6, 0.0, &thr, &kept, NULL), ERR_INVALID);
	CHECK_INT(select_top_fraction(s, 6, -0.5, &thr, &kept, NULL), ERR_INVALID);
	CHECK_INT(select_top_fraction(s, 6, NAN, &thr, &kept, NULL), ERR_INVALID);
	CHECK_INT(select_top_fraction(s, 6, 1.5, &thr, &kept, NULL), ERR_INVALID);
	CHECK_INT(select_bottom_fraction(s, 6, 0.0, &thr, &kept, NULL), ERR_INVALID);
	CHECK_INT(select_threshold_count(s, 6, NAN, &kept, NULL), ERR_INVALID);
	CHECK_INT(select_top_fraction(NULL, 3, 0.5, &thr, &kept, NULL), ERR_INVALID);
	/* N = 0: nothing kept, threshold NaN */
	memset(keep, 7, sizeof(keep));
	CHECK_INT(select_top_fraction(nans, 2, 0.5, &thr, &kept, keep), 0);
	CHECK(isnan(thr));
	CHECK_INT(kept, 0);
	CHECK(keep[0] == 0 && keep[1] == 0);
	CHECK_INT(select_top_fraction(NULL, 0, 0.5, &thr, &kept, NULL), 0);
	CHECK(isnan(thr));
	CHECK_INT(kept, 0);
}

static void test_nan_ignored(void)
{
	/* finite: 0.31 0.22 0.28 0.35 0.19 0.30 at rows 0 2 3 5 6 8; N = 6 */
	const float s[] = {0.31f, NAN, 0.22f, 0.28f, INFINITY, 0.35f, 0.19f, -INFINITY, 0.30f};
	const size_t want[] = {0, 3, 5, 8};
	const size_t want_bottom[] = {2, 3, 6};
	uint8_t keep[9];
	float thr = 0.0f;
	size_t kept = 0;

	CHECK_INT(select_top_fraction(s, 9, 0.5, &thr, &kept, keep), 0);
	CHECK(thr == 0.28f);
	CHECK_INT(kept, 4);
	CHECK(keep_is(keep, 9, want, 4));
	/* bottom: k = 1 -> threshold = 2nd smallest = 0.22, keep <= 0.22 */
	CHECK_INT(select_bottom_fraction(s, 9, 0.25, &thr, &kept, keep), 0);
	CHECK(thr == 0.22f);
	CHECK_INT(kept, 2);
	CHECK(keep[2] == 1 && keep[6] == 1 && keep[7] == 0 && keep[1] == 0);
	/* bottom: k = 2 -> threshold = 3rd smallest = 0.28, keep <= 0.28 */
	CHECK_INT(select_bottom_fraction(s, 9, 0.34, &thr, &kept, keep), 0);
	CHECK(thr == 0.28f);
	CHECK_INT(kept, 3);
	CHECK(keep_is(keep, 9, want_bottom, 3));
	/* threshold -inf keeps the finite rows only */
	CHECK_INT(select_threshold_count(s, 9, -INFINITY, &kept, keep), 0);
	CHECK_INT(kept, 6);
	CHECK(keep[1] == 0 && keep[4] == 0 && keep[7] == 0);
	/* top_k over more than N keeps exactly N */
	CHECK_INT(select_top_k(s, 9, 100, NULL, &kept, keep), 0);
	CHECK_INT(kept, 6);
	CHECK(keep[1] == 0 && keep[4] == 0 && keep[7] == 0 && keep[0] == 1);
	CHECK_INT(select_top_k(s, 9, 0, NULL, &kept, keep), 0);
	CHECK_INT(kept, 0);
	CHECK(keep[5] == 0);
}

static void test_color_vector(void)
{
	const float mean[] = {0.5f, -0.1f, 1.0f, 0.1f, 0.0f, 0.4f};
	const size_t want[] = {2, 0};
	uint8_t keep[6];
	size_t k = 0, kept = 0;

	CHECK_INT(select_color_k(6, 3.0, &k), 0);
	CHECK_INT(k, 2);
	CHECK_INT(select_top_k(mean, 6, k, NULL, &kept, keep), 0);
	CHECK_INT(kept, 2);
	CHECK(keep_is(keep, 6, want, 2));
	CHECK_INT(select_color_k(6, 7.0, &k), 0);
	CHECK_INT(k, 0);
	CHECK_INT(select_color_k(1000, 64.0, &k), 0);
	CHECK_INT(k, 15);
	CHECK_INT(select_color_k(6, 1.0, &k), 0);
	CHECK_INT(k, 6);
	CHECK_INT(select_color_k(6, 0.5, &k), ERR_INVALID);
	CHECK_INT(select_color_k(6, NAN, &k), ERR_INVALID);
	CHECK_INT(select_color_k(6, INFINITY, &k), ERR_INVALID);
	CHECK_INT(select_color_k(6, 3.0, NULL), ERR_INVALID);
}

static void test_ssp_vector(void)
{
	const float d[] = {0.004963f, 0.042174f, 0.105573f, 0.011064f, 0.019419f, 0.142507f};
	const size_t hard[] = {1, 2, 5};
	const size_t easy[] = {0, 3, 4};
	uint8_t keep[6];
	float thr = 0.0f;
	size_t kept = 0;

	CHECK_INT(select_top_k(d, 6, 3, NULL, &kept, keep), 0);
	CHECK_INT(kept, 3);
	CHECK(keep_is(keep, 6, hard, 3));
	CHECK_INT(select_bottom_k(d, 6, 3, NULL, &kept, keep), 0);
	CHECK_INT(kept, 3);
	CHECK(keep_is(keep, 6, easy, 3));
	/* the DataComp-style fraction keeps one extra: k = 3 -> the 4th of each side */
	CHECK_INT(select_bottom_fraction(d, 6, 0.5, &thr, &kept, keep), 0);
	CHECK(thr == 0.042174f);
	CHECK_INT(kept, 4);
}

static void test_top_k_ties(void)
{
	const float s[] = {0.5f, 0.9f, 0.5f, 0.5f, 0.5f, 0.1f};
	const char *const ids[] = {"b", "z", "ab", "abc", "a", "c"};
	const char *const ids_null[] = {"b", "z", NULL, "abc", "a", "c"};
	const char *const ids_same[] = {"x", "z", "x", "x", "x", "c"};
	uint8_t keep[6];
	size_t kept = 0;

	/* by id: 0.9 (row 1), then "a" (4) < "ab" (2) < "abc" (3) < "b" (0) */
	{
		const size_t want[] = {1, 4, 2};

		CHECK_INT(select_top_k(s, 6, 3, ids, &kept, keep), 0);
		CHECK_INT(kept, 3);
		CHECK(keep_is(keep, 6, want, 3));
	}
	{
		const size_t want[] = {1, 4, 2, 3};

		CHECK_INT(select_top_k(s, 6, 4, ids, &kept, keep), 0);
		CHECK_INT(kept, 4);
		CHECK(keep_is(keep, 6, want, 4));
	}
	/* by row when ids is NULL */
	{
		const size_t want[] = {1, 0, 2};

		CHECK_INT(select_top_k(s, 6, 3, NULL, &kept, keep), 0);
		CHECK_INT(kept, 3);
		CHECK(keep_is(keep, 6, want, 3));
	}
	/* equal ids fall back to row */
	{
		const size_t want[] = {1, 0, 2};

		CHECK_INT(select_top_k(s, 6, 3, ids_same, &kept, keep), 0);
		CHECK(keep_is(keep, 6, want, 3));
	}
	/* bottom: 0.1 (row 5), then the 0.5 ties by id: "a" (4) */
	{
		const size_t want[] = {5, 4};

		CHECK_INT(select_bottom_k(s, 6, 2, ids, &kept, keep), 0);
		CHECK_INT(kept, 2);
		CHECK(keep_is(keep, 6, want, 2));
	}
	/* a NULL id among the tied rows is rejected, outputs untouched */
	kept = 77;
	CHECK_INT(select_top_k(s, 6, 3, ids_null, &kept, keep), ERR_INVALID);
	CHECK_INT(kept, 77);
	CHECK_INT(select_top_k(NULL, 3, 1, NULL, &kept, NULL), ERR_INVALID);
	CHECK_INT(select_bottom_k(NULL, 0, 1, NULL, &kept, NULL), 0);
	CHECK_INT(kept, 0);
	/* a NULL id outside the ties is never read */
	{
		const char *const ids_ok[] = {"b", "z", "ab", "abc", "a", NULL};

		CHECK_INT(select_top_k(s, 6, 3, ids_ok, &kept, keep), 0);
		CHECK_INT(kept, 3);
	}
}

/* ---- the qsort oracle ---- */

static const float *ref_scores;
static const char *const *ref_ids;
static int ref_top;

static int cmp_desc(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return x > y ? -1 : x < y;
}

static int cmp_rows(const void *a, const void *b)
{
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	float x = ref_scores[i], y = ref_scores[j];
	int c;

	if (x != y)
		return (ref_top ? x > y : x < y) ? -1 : 1;
	if (ref_ids != NULL) {
		c = strcmp(ref_ids[i], ref_ids[j]);
		if (c != 0)
			return c;
	}
	return i < j ? -1 : i > j;
}

/* DataComp rule by full sort. Returns the threshold; fills keep and *kept. */
static float ref_fraction(const float *s, size_t n, double f, int top, uint8_t *keep,
			  size_t *kept, float *sorted)
{
	size_t m = 0, k;
	float thr;

	for (size_t i = 0; i < n; i++)
		if (isfinite(s[i]))
			sorted[m++] = s[i];
	*kept = 0;
	memset(keep, 0, n);
	if (m == 0)
		return NAN;
	qsort(sorted, m, sizeof(*sorted), cmp_desc);
	k = (size_t)floor((double)m * f);
	if (k >= m)
		k = m - 1;
	thr = top ? sorted[k] : sorted[m - 1 - k];
	for (size_t i = 0; i < n; i++) {
		if (isfinite(s[i]) && (top ? s[i] >= thr : s[i] <= thr)) {
			keep[i] = 1;
			(*kept)++;
		}
	}
	return thr;
}

static void ref_top_k(const float *s, size_t n, size_t k, const char *const *ids, int top,
		      uint8_t *keep, size_t *kept, size_t *rows)
{
	size_t m = 0;

	for (size_t i = 0; i < n; i++)
		if (isfinite(s[i]))
			rows[m++] = i;
	ref_scores = s;
	ref_ids = ids;
	ref_top = top;
	qsort(rows, m, sizeof(*rows), cmp_rows);
	memset(keep, 0, n);
	*kept = k < m ? k : m;
	for (size_t i = 0; i < *kept; i++)
		keep[rows[i]] = 1;
}

static void test_random_vs_qsort(void)
{
	const double fracs[] = {0.0001, 0.01, 0.1, 0.3, 0.5, 0.77, 0.9, 0.99999, 1.0};
	const size_t ks[] = {0, 1, 2, 17, 1000, 33333, 50000, 94000, 99999, 200000};
	float *s = malloc(RAND_N * sizeof(*s));
	float *sorted = malloc(RAND_N * sizeof(*sorted));
	size_t *rows = malloc(RAND_N * sizeof(*rows));
	uint8_t *keep = malloc(RAND_N);
	uint8_t *want = malloc(RAND_N);
	char (*idbuf)[8] = malloc(RAND_N * sizeof(*idbuf));
	const char **ids = malloc(RAND_N * sizeof(*ids));
	int ok = s && sorted && rows && keep && want && idbuf && ids;

	rng_state = 0x9e3779b97f4a7c15ULL;
	for (int round = 0; ok && round < 3; round++) {
		/* round 0: many duplicates; 1: continuous; 2: heavy ties (20 values) */
		for (size_t i = 0; i < RAND_N; i++) {
			uint64_t r = rng_next();

			if (r % 20 == 0)
				s[i] = NAN;
			else if (r % 997 == 1)
				s[i] = (r & 1024) ? INFINITY : -INFINITY;
			else if (round == 0)
				s[i] = (float)((r >> 20) % 5000) / 5000.0f - 0.1f;
			else if (round == 1)
				s[i] = (float)((double)(r >> 11) / 9007199254740992.0);
			else
				s[i] = (float)((r >> 20) % 20);
			/* ids: 1..4 hex digits, so prefixes and equal ids both occur */
			snprintf(idbuf[i], sizeof(idbuf[i]), "%.*x", (int)(1 + (r >> 40) % 4),
				 (unsigned)((r >> 44) % 0x300));
			ids[i] = idbuf[i];
		}
		for (size_t fi = 0; fi < sizeof(fracs) / sizeof(fracs[0]); fi++) {
			for (int top = 0; top < 2; top++) {
				float thr = 0.0f, rthr;
				size_t kept = 0, rkept = 0;
				int rc = top ? select_top_fraction(s, RAND_N, fracs[fi], &thr,
								   &kept, keep)
					     : select_bottom_fraction(s, RAND_N, fracs[fi], &thr,
								      &kept, keep);

				CHECK_INT(rc, 0);
				rthr = ref_fraction(s, RAND_N, fracs[fi], top, want, &rkept,
						    sorted);
				CHECK(thr == rthr);
				CHECK_INT(kept, rkept);
				CHECK(memcmp(keep, want, RAND_N) == 0);
			}
		}
		for (size_t ti = 0; ti < 5; ti++) {
			float t = ti == 0 ? -INFINITY : s[(ti * 7919) % RAND_N];
			size_t kept = 0, rkept = 0;

			if (isnan(t))
				continue;
			CHECK_INT(select_threshold_count(s, RAND_N, t, &kept, keep), 0);
			for (size_t i = 0; i < RAND_N; i++) {
				want[i] = (uint8_t)(isfinite(s[i]) && s[i] >= t);
				rkept += want[i];
			}
			CHECK_INT(kept, rkept);
			CHECK(memcmp(keep, want, RAND_N) == 0);
		}
		for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++) {
			for (int v = 0; v < 4; v++) {
				const char *const *id = (v & 1) ? ids : NULL;
				int top = v >> 1;
				size_t kept = 0, rkept = 0;
				int rc = top ? select_top_k(s, RAND_N, ks[ki], id, &kept, keep)
					     : select_bottom_k(s, RAND_N, ks[ki], id, &kept, keep);

				CHECK_INT(rc, 0);
				ref_top_k(s, RAND_N, ks[ki], id, top, want, &rkept, rows);
				CHECK_INT(kept, rkept);
				CHECK(memcmp(keep, want, RAND_N) == 0);
			}
		}
	}
	free(s);
	free(sorted);
	free(rows);
	free(keep);
	free(want);
	free(idbuf);
	free(ids);
	CHECK(ok);
}

/* Adversarial inputs for quickselect: sorted, reversed, all equal. */
#define ADV_N 20001
static float adv[ADV_N];

static void test_adversarial_orders(void)
{
	float thr = 0.0f;
	size_t kept = 0;

	for (size_t i = 0; i < ADV_N; i++)
		adv[i] = (float)i;
	/* k = 6000: the threshold is the 6001st largest */
	CHECK_INT(select_top_fraction(adv, ADV_N, 0.3, &thr, &kept, NULL), 0);
	CHECK(thr == 14000.0f);
	CHECK_INT(kept, 6001);
	CHECK_INT(select_top_k(adv, ADV_N, 5000, NULL, &kept, NULL), 0);
	CHECK_INT(kept, 5000);
	for (size_t i = 0; i < ADV_N; i++)
		adv[i] = (float)(ADV_N - i);
	CHECK_INT(select_top_fraction(adv, ADV_N, 0.3, &thr, &kept, NULL), 0);
	CHECK(thr == 14001.0f);
	CHECK_INT(kept, 6001);
	CHECK_INT(select_bottom_fraction(adv, ADV_N, 0.3, &thr, &kept, NULL), 0);
	CHECK(thr == 6001.0f);
	CHECK_INT(kept, 6001);
	for (size_t i = 0; i < ADV_N; i++)
		adv[i] = 3.0f;
	CHECK_INT(select_top_fraction(adv, ADV_N, 0.3, &thr, &kept, NULL), 0);
	CHECK(thr == 3.0f);
	CHECK_INT(kept, ADV_N);
	CHECK_INT(select_top_k(adv, ADV_N, 5000, NULL, &kept, NULL), 0);
	CHECK_INT(kept, 5000);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Correctness at a size where the introselect recurses deeply; the timing against a full sort
 * lives in bench/score (SELECT_BENCH_N raises the size here for a manual check). */
static void test_large_vs_qsort(void)
{
	const char *env = getenv("SELECT_BENCH_N");
	size_t n = env != NULL ? (size_t)strtoul(env, NULL, 10) : 300000;
	float *s = malloc((n ? n : 1) * sizeof(*s));
	float *c = malloc((n ? n : 1) * sizeof(*c));
	float thr = 0.0f, q;
	size_t kept = 0;
	double t0, t1, t2;

	CHECK(s != NULL && c != NULL && n > 0);
	rng_state = 12345;
	for (size_t i = 0; i < n; i++)
		s[i] = (float)((double)(rng_next() >> 11) / 9007199254740992.0);
	t0 = now_s();
	CHECK_INT(select_top_fraction(s, n, 0.3, &thr, &kept, NULL), 0);
	t1 = now_s();
	memcpy(c, s, n * sizeof(*c));
	qsort(c, n, sizeof(*c), cmp_desc);
	q = c[(size_t)floor((double)n * 0.3)];
	t2 = now_s();
	printf("select_top_fraction over %zu floats: %.3f s; qsort: %.3f s (%.1fx)\n", n,
	       t1 - t0, t2 - t1, (t2 - t1) / (t1 - t0));
	free(s);
	free(c);
	CHECK(thr == q);
}

/* select_apportion against hand-computed tables: (sizes, total, min_each) -> out, applied. */
static void test_apportion_tables(void)
{
	static const struct {
		uint64_t sizes[8];
		size_t k;
		uint64_t total, min_each;
		uint64_t want[8];
		uint64_t applied;
	} t[] = {
		/* quotas 0.5 x4 and 8: floors 0,0,0,0,8; 2 seats to the remainders 50 (of 100),
		 * ties to the smaller index. Rounding each on its own would keep 1+1+1+1+8 = 12. */
		{{5, 5, 5, 5, 80}, 5, 10, 0, {1, 1, 0, 0, 8}, 0},
		/* minimum 1: c2, c3 lifted; then 8 over (5,5,80): 0 r40, 0 r40, 7 r10 -> c0 gets the
		 * seat, c1 is lifted; then 7 over (5,80): 0 r35, 6 r50 -> c4 gets it, c0 is lifted;
		 * then 6 over 80: 6. */
		{{5, 5, 5, 5, 80}, 5, 10, 1, {1, 1, 1, 1, 6}, 1},
		/* minimum 3 does not fit (3*4 + 3 = 15 > 10), 2 does (2*5 = 10) */
		{{5, 5, 5, 5, 80}, 5, 10, 3, {2, 2, 2, 2, 2}, 2},
		/* 2 rows for 4 clusters: no minimum fits; quotas 0.5 each */
		{{3, 3, 3, 3}, 4, 2, 1, {1, 1, 0, 0}, 0},
		/* minimum 3 lowered to 1 (1+3+3+3 = 10 > 6, 1+2+2+2 = 7 > 6, 1+1+1+1 = 4); quotas
		 * 6/19 r6, 24/19 = 1 r5, 1 r5, 60/19 = 3 r3: the seat goes to c0 */
		{{1, 4, 4, 10}, 4, 6, 3, {1, 1, 1, 3}, 1},
		/* everything, nothing, an empty cluster */
		{{7, 0, 13}, 3, 20, 1, {7, 0, 13}, 1},
		{{7, 0, 13}, 3, 0, 1, {0, 0, 0}, 0},
		/* 3 over (2, 0, 3): 6/5 = 1 r1, 0, 9/5 = 1 r4 -> c2; the minimum holds already */
		{{2, 0, 3}, 3, 3, 1, {1, 0, 2}, 1},
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		uint64_t out[8] = {0}, applied = 99;

		CHECK_INT(select_apportion(t[i].sizes, t[i].k, t[i].total, t[i].min_each, out,
		                           &applied), 0);
		for (size_t c = 0; c < t[i].k; c++)
			if (out[c] != t[i].want[c])
				harness_fail(__FILE__, __LINE__, "table %zu cluster %zu: %llu, want %llu",
				             i, c, (unsigned long long)out[c],
				             (unsigned long long)t[i].want[c]);
		CHECK_INT(applied, t[i].applied);
	}
	{
		uint64_t sz[2] = {1, 2}, out[2] = {5, 5};

		CHECK_INT(select_apportion(sz, 2, 4, 0, out, NULL), ERR_INVALID);
		CHECK_INT(out[0], 5);
		CHECK_INT(select_apportion(NULL, 0, 0, 1, NULL, NULL), 0);
	}
}

/* Random cluster sizes: the sum is exact, no cluster gets more than it has or less than the
 * applied minimum, the applied minimum is the largest that fits, and without a minimum every
 * share is within one of its quota. */
static void test_apportion_random(void)
{
	rng_state = 0x9e3779b97f4a7c15ULL;
	for (int it = 0; it < 2000; it++) {
		size_t k = 1 + rng_next() % 60;
		uint64_t sz[60], out[60], N = 0, T, m = rng_next() % 4, applied, sum = 0, fl = 0;

		for (size_t c = 0; c < k; c++) {
			/* a few big clusters, many small ones, some empty */
			sz[c] = rng_next() % 4 == 0 ? rng_next() % 2000 : rng_next() % 12;
			N += sz[c];
		}
		T = N ? rng_next() % (N + 1) : 0;
		CHECK_INT(select_apportion(sz, k, T, m, out, &applied), 0);
		CHECK(applied <= m);
		for (size_t c = 0; c < k; c++) {
			uint64_t lo = sz[c] < applied ? sz[c] : applied;

			sum += out[c];
			CHECK(out[c] <= sz[c]);
			CHECK(out[c] >= lo);
			fl += sz[c] < applied + 1 ? sz[c] : applied + 1;
			if (applied == 0 && N > 0) {
				/* |out * N - T * n_c| < N */
				uint64_t a = out[c] * N, b = T * sz[c];

				CHECK((a > b ? a - b : b - a) < N);
			}
		}
		CHECK_INT(sum, T);
		if (applied < m)
			CHECK(fl > T);
	}
}

int main(void)
{
	HARNESS_RUN(test_datacomp_vector);
	HARNESS_RUN(test_fraction_edges);
	HARNESS_RUN(test_nan_ignored);
	HARNESS_RUN(test_color_vector);
	HARNESS_RUN(test_ssp_vector);
	HARNESS_RUN(test_top_k_ties);
	HARNESS_RUN(test_random_vs_qsort);
	HARNESS_RUN(test_adversarial_orders);
	HARNESS_RUN(test_large_vs_qsort);
	HARNESS_RUN(test_apportion_tables);
	HARNESS_RUN(test_apportion_random);
	return harness_done();
}
