/* SPDX-License-Identifier: MIT */
/* select: keep-top/bottom-fraction, threshold and top-k selection over score arrays.
 *
 * Owns only the temporary copy of the finite scores each call makes. No state, thread-safe.
 * The threshold comes from an introselect, never a full sort: the benchmark runs it over
 * 10^7 scores. Caveat: a tie-break by id sorts the rows tied at the threshold, so a column of
 * millions of equal scores with ids costs O(m log m) in the tie count m. */
#include "algo/select.h"

#include "lib/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Below this size a range is finished by insertion sort. */
#define SMALL_RANGE 16

static void insertion_sort(float *a, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		float v = a[i];
		size_t j = i;

		while (j > 0 && a[j - 1] > v) {
			a[j] = a[j - 1];
			j--;
		}
		a[j] = v;
	}
}

static float median3(float x, float y, float z)
{
	if (x > y) {
		float t = x;

		x = y;
		y = t;
	}
	/* now x <= y */
	if (z <= x)
		return x;
	if (z >= y)
		return y;
	return z;
}

static float kth_smallest(float *a, size_t n, size_t k);

/* Median-of-medians pivot: guarantees that at most about 7/10 of the range lies strictly on
 * either side, which is what keeps the whole selection linear after a bad median-of-3.
 * Permutes a. */
static float mom_pivot(float *a, size_t n)
{
	size_t groups = 0;

	for (size_t i = 0; i < n; i += 5) {
		size_t len = n - i < 5 ? n - i : 5;
		float t;

		insertion_sort(a + i, len);
		t = a[groups];
		a[groups] = a[i + len / 2];
		a[i + len / 2] = t;
		groups++;
	}
	return kth_smallest(a, groups, groups / 2);
}

/* The k-th smallest (0-based) of a[0..n), k < n, all finite. Permutes a. */
static float kth_smallest(float *a, size_t n, size_t k)
{
	size_t lo = 0, hi = n;
	int use_mom = 0;

	while (hi - lo > SMALL_RANGE) {
		size_t len = hi - lo, lt = lo, i = lo, gt = hi;
		float p;

		if (use_mom)
			p = mom_pivot(a + lo, len);
		else
			p = median3(a[lo], a[lo + len / 2], a[hi - 1]);
		/* 3-way partition: [lo,lt) < p, [lt,gt) == p, [gt,hi) > p. Equal keys all land in
		 * the middle, so a column of duplicates ends the search in one pass. */
		while (i < gt) {
			float v = a[i];

			if (v < p) {
				a[i++] = a[lt];
				a[lt++] = v;
			} else if (v > p) {
				a[i] = a[--gt];
				a[gt] = v;
			} else {
				i++;
			}
		}
		if (k < lt)
			hi = lt;
		else if (k >= gt)
			lo = gt;
		else
			return p;
		/* A partition that kept more than 3/4 of the range was a bad pivot: the next
		 * one is a median of medians, so each bad step is paid for by a guaranteed
		 * good one and the total stays O(n). */
		use_mom = (hi - lo) > len - len / 4;
	}
	insertion_sort(a + lo, hi - lo);
	return a[k];
}

/* Copy the finite scores into a new array. *out is new (free it), NULL when N == 0. */
static int copy_finite(const float *scores, size_t n, float **out, size_t *n_finite)
{
	float *c = NULL;
	size_t m = 0;

	for (size_t i = 0; i < n; i++)
		m += isfinite(scores[i]) ? 1 : 0;
	if (m > 0) {
		c = malloc(m * sizeof(*c));
		if (c == NULL)
			return ERR_NOMEM;
		m = 0;
		for (size_t i = 0; i < n; i++)
			if (isfinite(scores[i]))
				c[m++] = scores[i];
	}
	*out = c;
	*n_finite = m;
	return 0;
}

/* Write keep/kept for "finite and on the kept side of thr" (>= when top, <= otherwise). */
static size_t mark_side(const float *scores, size_t n, float thr, int top, uint8_t *keep)
{
	size_t kept = 0;

	for (size_t i = 0; i < n; i++) {
		float v = scores[i];
		int in = isfinite(v) && (top ? v >= thr : v <= thr);

		if (keep != NULL)
			keep[i] = (uint8_t)in;
		kept += (size_t)in;
	}
	return kept;
}

static int fraction(const float *scores, size_t n, double f, int top, float *thr_out,
		    size_t *kept_out, uint8_t *keep)
{
	float *c = NULL;
	size_t m = 0, k, kept;
	float thr;
	int rc;

	if (isnan(f) || f <= 0.0 || f > 1.0 || (scores == NULL && n > 0))
		return ERR_INVALID;
	rc = copy_finite(scores, n, &c, &m);
	if (rc != 0)
		goto out;
	if (m == 0) {
		thr = NAN;
	} else {
		double kd = floor((double)m * f);

		/* f = 1 (or rounding that reaches N) has no (k+1)-th score: keep all. */
		k = kd >= (double)m ? m - 1 : (size_t)kd;
		thr = kth_smallest(c, m, top ? m - 1 - k : k);
	}
	kept = m == 0 ? 0 : mark_side(scores, n, thr, top, keep);
	if (m == 0 && keep != NULL)
		memset(keep, 0, n);
	if (thr_out != NULL)
		*thr_out = thr;
	if (kept_out != NULL)
		*kept_out = kept;
out:
	free(c);
	return rc;
}

int select_top_fraction(const float *scores, size_t n, double f, float *thr_out,
			size_t *kept_out, uint8_t *keep)
{
	return fraction(scores, n, f, 1, thr_out, kept_out, keep);
}

int select_bottom_fraction(const float *scores, size_t n, double f, float *thr_out,
			   size_t *kept_out, uint8_t *keep)
{
	return fraction(scores, n, f, 0, thr_out, kept_out, keep);
}

int select_threshold_count(const float *scores, size_t n, float t, size_t *kept_out,
			   uint8_t *keep)
{
	size_t kept;

	if (isnan(t) || (scores == NULL && n > 0))
		return ERR_INVALID;
	kept = mark_side(scores, n, t, 1, keep);
	if (kept_out != NULL)
		*kept_out = kept;
	return 0;
}

struct tie {
	const char *id;
	size_t row;
};

static int tie_cmp(const void *pa, const void *pb)
{
	const struct tie *a = pa, *b = pb;
	int c = strcmp(a->id, b->id);

	if (c != 0)
		return c;
	return a->row < b->row ? -1 : a->row > b->row;
}

static int top_k(const float *scores, size_t n, size_t k, const char *const *ids, int top,
		 size_t *kept_out, uint8_t *keep)
{
	float *c = NULL;
	struct tie *ties = NULL;
	size_t m = 0, strict = 0, n_ties = 0, want, kept = 0;
	float thr = 0.0f;
	int rc;

	if (scores == NULL && n > 0)
		return ERR_INVALID;
	rc = copy_finite(scores, n, &c, &m);
	if (rc != 0)
		goto out;
	want = k < m ? k : m;
	if (want > 0 && want < m) {
		thr = kth_smallest(c, m, top ? m - want : want - 1);
		for (size_t i = 0; i < n; i++) {
			float v = scores[i];

			if (!isfinite(v))
				continue;
			if (top ? v > thr : v < thr)
				strict++;
			else if (v == thr)
				n_ties++;
		}
	}
	/* Rows strictly better than thr are all kept; want - strict of the ties are kept. */
	if (ids != NULL && want > 0 && want < m) {
		size_t j = 0;

		ties = malloc(n_ties * sizeof(*ties));
		if (ties == NULL) {
			rc = ERR_NOMEM;
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			if (isfinite(scores[i]) && scores[i] == thr) {
				if (ids[i] == NULL) {
					rc = ERR_INVALID;
					goto out;
				}
				ties[j].id = ids[i];
				ties[j].row = i;
				j++;
			}
		}
		qsort(ties, n_ties, sizeof(*ties), tie_cmp);
	}
	if (keep != NULL)
		memset(keep, 0, n);
	if (want == m) {
		kept = mark_side(scores, n, top ? -INFINITY : INFINITY, top, keep);
	} else if (want > 0) {
		size_t tie_quota = want - strict;

		for (size_t i = 0; i < n; i++) {
			float v = scores[i];
			int in;

			if (!isfinite(v))
				continue;
			in = top ? v > thr : v < thr;
			if (!in && v == thr && ties == NULL && tie_quota > 0) {
				in = 1;
				tie_quota--;
			}
			if (in && keep != NULL)
				keep[i] = 1;
			kept += (size_t)in;
		}
		for (size_t j = 0; ties != NULL && j < tie_quota; j++) {
			if (keep != NULL)
				keep[ties[j].row] = 1;
			kept++;
		}
	}
	if (kept_out != NULL)
		*kept_out = kept;
out:
	free(ties);
	free(c);
	return rc;
}

int select_top_k(const float *scores, size_t n, size_t k, const char *const *ids,
		 size_t *kept_out, uint8_t *keep)
{
	return top_k(scores, n, k, ids, 1, kept_out, keep);
}

int select_bottom_k(const float *scores, size_t n, size_t k, const char *const *ids,
		    size_t *kept_out, uint8_t *keep)
{
	return top_k(scores, n, k, ids, 0, kept_out, keep);
}

int select_color_k(size_t n_finite, double tau, size_t *k_out)
{
	if (k_out == NULL || !isfinite(tau) || tau < 1.0)
		return ERR_INVALID;
	*k_out = (size_t)floor((double)n_finite / tau);
	return 0;
}

/* ---- apportionment (per-cluster fractions) ---- */

struct seat {
	uint64_t rem;
	size_t c;
};

static int seat_cmp(const void *pa, const void *pb)
{
	const struct seat *a = pa, *b = pb;

	if (a->rem != b->rem)
		return a->rem > b->rem ? -1 : 1;
	return a->c < b->c ? -1 : a->c > b->c;
}

/* sum over c of min(m, sizes[c]) */
static uint64_t floor_sum(const uint64_t *sizes, size_t k, uint64_t m)
{
	uint64_t s = 0;

	for (size_t c = 0; c < k; c++)
		s += sizes[c] < m ? sizes[c] : m;
	return s;
}

int select_apportion(const uint64_t *sizes, size_t k, uint64_t total, uint64_t min_each,
                     uint64_t *out, uint64_t *min_applied)
{
	uint64_t N = 0, big = 0, m, lo, hi;
	uint8_t *fixed = NULL;
	struct seat *seats = NULL;
	uint64_t *res = NULL;
	int changed;

	if (k > 0 && (sizes == NULL || out == NULL))
		return ERR_INVALID;
	for (size_t c = 0; c < k; c++) {
		N += sizes[c];
		big = sizes[c] > big ? sizes[c] : big;
		if (N >= (uint64_t)1 << 32)
			return ERR_INVALID; /* total * sizes[c] must fit in 64 bits */
	}
	if (total > N)
		return ERR_INVALID;
	/* the largest m <= min_each the budget allows: floor_sum grows with m up to the largest
	 * size, where it reaches N */
	lo = 0;
	hi = min_each < big ? min_each : big;
	if (floor_sum(sizes, k, min_each) <= total)
		lo = hi = min_each;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo + 1) / 2;

		if (floor_sum(sizes, k, mid) <= total)
			lo = mid;
		else
			hi = mid - 1;
	}
	m = lo;
	if (k == 0) {
		if (min_applied != NULL)
			*min_applied = m;
		return 0;
	}
	fixed = calloc(k, 1);
	seats = malloc(k * sizeof *seats);
	res = malloc(k * sizeof *res);
	if (fixed == NULL || seats == NULL || res == NULL) {
		free(fixed);
		free(seats);
		free(res);
		return ERR_NOMEM;
	}
	/* Each round lifts at least one more group to its minimum, so at most k rounds; a lifted
	 * group takes more than its quota, so the budget per remaining row only falls and the
	 * rounds never ask a group for more rows than it has. */
	do {
		uint64_t t = total, n = 0, given = 0;
		size_t ns = 0;

		for (size_t c = 0; c < k; c++) {
			if (fixed[c])
				t -= res[c];
			else
				n += sizes[c];
		}
		for (size_t c = 0; c < k; c++) {
			if (fixed[c])
				continue;
			res[c] = n ? t * sizes[c] / n : 0;
			given += res[c];
			seats[ns++] = (struct seat){n ? t * sizes[c] % n : 0, c};
		}
		qsort(seats, ns, sizeof *seats, seat_cmp);
		for (size_t i = 0; i < ns && given < t; i++, given++)
			res[seats[i].c]++;
		changed = 0;
		for (size_t c = 0; c < k; c++) {
			uint64_t want = sizes[c] < m ? sizes[c] : m;

			if (!fixed[c] && res[c] < want) {
				fixed[c] = 1;
				res[c] = want;
				changed = 1;
			}
		}
	} while (changed);
	memcpy(out, res, k * sizeof *out);
	if (min_applied != NULL)
		*min_applied = m;
	free(fixed);
	free(seats);
	free(res);
	return 0;
}

uint32_t select_float_key(float v)
{
	uint32_t b;

	if (v == 0.0f)
		v = 0.0f; /* -0 is +0 */
	memcpy(&b, &v, sizeof b);
	return (b & 0x80000000u) ? ~b : b | 0x80000000u;
}

float select_key_float(uint32_t k)
{
	uint32_t b = (k & 0x80000000u) ? k & 0x7fffffffu : ~k;
	float v;

	memcpy(&v, &b, sizeof v);
	return v;
}
