/* SPDX-License-Identifier: MIT */
/* scaling: the data-filtering scaling law of Goyal et al. 2024 (spec section 6): predicted
 * error of a model trained for n samples seen on the union of the top m equal buckets of a
 * score ranking, with the utility of each bucket decaying as it is repeated; the best m
 * for a budget; and the grid-search fit of the per-bucket utilities from small-scale runs.
 *
 * Model (spec 6.1): for a pool of S unique samples and K = floor(n/S) repetitions,
 *   y = (a*min(S,n)/N0)^b_0 + d,  then for k = 1..K:  y *= (min(S(k+1), n) / (S k))^b_k
 * with b_k = mean_i b_i * 0.5^(k/c_i) over the pool's buckets. d is added before the
 * repetition factors, so later epochs shrink it too (as the reference does). n = 0 gives d.
 * The repetition factors are summed in log space.
 *
 * Ordering: "the top m buckets" are the first m of the caller's array, i.e. of the filter's
 * ranking. Spec 6.2 sorts the buckets by b first; a score threshold can only realise a
 * prefix of the ranking, so this module keeps the ranking order and the caller says so
 * when the fitted b are not ascending.
 *
 * Pure computation over caller-owned values: no store, no JSON, no state; thread-safe. */
#ifndef WINNOW_SCALING_H
#define WINNOW_SCALING_H

#include <stddef.h>
#include <stdint.h>

#define SCALING_N0               100000.0  /* the reference's sample normaliser */
#define SCALING_MAX_BUCKETS      100       /* buckets in a layout */
#define SCALING_MAX_REPEATS      1000000.0 /* bound on n / S (spec 6.3), keeps the loop bounded */
#define SCALING_GRID             100       /* points per axis of the fit's grid (spec 6.2) */
#define SCALING_MAX_EVALUATIONS  100000    /* the reference's evaluation cap (spec 6.2) */
#define SCALING_MAX_OBSERVATIONS 200       /* observations given to a fit */
#define SCALING_MAX_OBS_REPEATS  1000.0    /* samples_seen / bucket_size of one observation */
#define SCALING_B_HI             (-0.005)  /* b grid: linspace(-0.005, -0.5, 100) */
#define SCALING_B_LO             (-0.5)
#define SCALING_C_LO             1.0 /* c grid: linspace(1, 10, 100) */
#define SCALING_C_HI             10.0
#define SCALING_A_LO             1e-4 /* a grid: linspace(1e-4, a_upper, 100) */

/* Utility parameters: a and d shared, (b, c) per bucket, buckets in ranking order. */
struct scaling_params {
	double a, d;
	size_t nbuckets; /* 1..SCALING_MAX_BUCKETS */
	double b[SCALING_MAX_BUCKETS];
	double c[SCALING_MAX_BUCKETS];
};

/* Predicted error after n samples seen on a pool of s_tot unique samples made of k equal
 * buckets with utilities b[i] < 0 and half-lives c[i] * c_mult > 0 (b, c borrowed, k
 * entries each), scale a > 0 and offset d >= 0. *y_out (borrowed) gets the error.
 * Returns 0, or ERR_INVALID (a parameter out of its range or not finite, k == 0,
 * s_tot < 1, n < 0, n / s_tot > SCALING_MAX_REPEATS; *y_out untouched). */
int scaling_mix_error(double a, double d, const double *b, const double *c, size_t k, double c_mult,
                      double s_tot, double n, double *y_out);

/* The curve of spec 6.2 steps 4-5 for p (borrowed): y[m-1] (borrowed, p->nbuckets entries)
 * gets the predicted error of keeping the top m buckets of bucket_size samples each (pool
 * m * bucket_size) for m = 1..p->nbuckets, with c_i multiplied by m when scale_c is
 * nonzero (the reference's behaviour, spec 6.2 step 4); *best_m (borrowed, may be NULL)
 * the m with the least error, the smaller m on a tie. Returns 0 or ERR_INVALID (as
 * scaling_mix_error for any m; outputs untouched). */
int scaling_curve(const struct scaling_params *p, double bucket_size, double n, int scale_c,
                  double *y, size_t *best_m);

/* One observed run: error after samples_seen samples of bucket alone (bucket_size
 * unique samples, no c scaling: one bucket is one pool). */
struct scaling_obs {
	size_t bucket;
	double samples_seen, error;
};

struct scaling_fit_opts {
	double d;                 /* fixed offset (spec 6.2: d fixed), >= 0 */
	double a;                 /* fixed a > 0, or NaN to search linspace(1e-4, a_upper, 100) */
	double a_upper;           /* > 1e-4 when a is searched */
	uint64_t seed;            /* shuffles the grid when it has more points than the cap */
	uint64_t max_evaluations; /* 1..SCALING_MAX_EVALUATIONS */
};

struct scaling_fit_result {
	struct scaling_params params;
	double residual; /* sum over observations of (y_pred - y_obs)^2 */
	double bucket_residual[SCALING_MAX_BUCKETS];
	uint64_t evaluations; /* grid points evaluated */
	uint64_t grid_points; /* points in the whole grid: 100^2, or 100^3 when a is searched */
};

/* Fit (b_i, c_i) for buckets 0..nbuckets-1 and, unless fixed, a, by the grid search of spec
 * 6.2 over the grids above. One evaluation is one grid point (a, b, c) scored against every
 * bucket's observations: the loss is a sum of per-bucket terms, so each a keeps each
 * bucket's best (b, c) among the points evaluated at that a, and the a whose sum of those
 * is least wins (ties: the first grid value). When the grid has at most max_evaluations
 * points every point is evaluated (the result does not depend on the seed); otherwise the
 * first max_evaluations points of a Fisher-Yates shuffle seeded by seed (xorshift64*) are.
 * obs (borrowed, nobs entries, 1..SCALING_MAX_OBSERVATIONS) must cover every bucket
 * 0..nbuckets-1, with samples_seen >= 0, samples_seen / bucket_size <= SCALING_MAX_OBS_REPEATS
 * (small-scale runs; the bound keeps the fit's cost at about nobs * 100 * repeats exp2 plus
 * two exp per observation and evaluation) and a finite error. *out (borrowed) gets the
 * result. Returns 0, ERR_INVALID (an argument out of range, a bucket without observations;
 * *out untouched), ERR_NOMEM. */
int scaling_fit(const struct scaling_obs *obs, size_t nobs, size_t nbuckets, double bucket_size,
                const struct scaling_fit_opts *o, struct scaling_fit_result *out);

/* The i-th value (0..SCALING_GRID-1) of linspace(lo, hi, SCALING_GRID), computed as numpy
 * does (lo + i * step, the last point exactly hi). */
double scaling_linspace(double lo, double hi, unsigned i);

#endif
