/* SPDX-License-Identifier: MIT */
/* scaling: the data-filtering scaling law (spec section 6), its curve over the top m
 * buckets, and the grid-search fit of the bucket utilities. See scaling.h. */
#include "algo/scaling.h"

#include "lib/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double scaling_linspace(double lo, double hi, unsigned i)
{
	/* numpy: start + arange(num) * step, with the last point set to stop exactly, so the
	 * published c = 6.7272727272727275 is a grid point bit for bit */
	if (i + 1 >= SCALING_GRID)
		return hi;
	return lo + (double)i * ((hi - lo) / (SCALING_GRID - 1));
}

static int bad(double v)
{
	return !isfinite(v);
}

int scaling_mix_error(double a, double d, const double *b, const double *c, size_t k, double c_mult,
                      double s_tot, double n, double *y_out)
{
	double r[SCALING_MAX_BUCKETS], t[SCALING_MAX_BUCKETS];
	double b0 = 0, logy, reps;
	uint64_t K;

	if (b == NULL || c == NULL || y_out == NULL || k == 0 || k > SCALING_MAX_BUCKETS ||
	    bad(a) || a <= 0 || bad(d) || d < 0 || bad(c_mult) || c_mult <= 0 || bad(s_tot) ||
	    s_tot < 1 || bad(n) || n < 0)
		return ERR_INVALID;
	reps = n / s_tot;
	if (!(reps <= SCALING_MAX_REPEATS))
		return ERR_INVALID;
	for (size_t i = 0; i < k; i++) {
		if (bad(b[i]) || b[i] >= 0 || bad(c[i]) || c[i] <= 0)
			return ERR_INVALID;
		b0 += b[i];
		/* b_k = b * 0.5^(k/c), stepped by one factor per epoch: one multiply per bucket
		 * and epoch instead of a pow, and the loop is what bounds a large budget */
		r[i] = exp2(-1.0 / (c[i] * c_mult));
		t[i] = b[i];
	}
	if (n == 0) {
		/* the reference's pw(0, b) = 0 guard: no samples seen leaves the offset */
		*y_out = d;
		return 0;
	}
	b0 /= (double)k;
	/* y0 > 0 since d >= 0, so the rest is a sum of logs */
	logy = log(exp(b0 * log(a * fmin(s_tot, n) / SCALING_N0)) + d);
	K = (uint64_t)floor(reps);
	for (uint64_t e = 1; e <= K; e++) {
		double beff = 0, lr;
		int live = 0;

		for (size_t i = 0; i < k; i++) {
			t[i] *= r[i];
			/* flush before the subnormals, which are slow and no longer matter */
			if (fabs(t[i]) < 1e-300)
				t[i] = 0;
			live |= t[i] != 0;
			beff += t[i];
		}
		if (!live)
			break;
		beff /= (double)k;
		/* min(S(e+1), n) / (S e): (e+1)/e for a full epoch, the partial last one else */
		lr = e < K ? log1p(1.0 / (double)e) : log(reps / (double)e);
		logy += beff * lr;
	}
	*y_out = exp(logy);
	return 0;
}

int scaling_curve(const struct scaling_params *p, double bucket_size, double n, int scale_c,
                  double *y, size_t *best_m)
{
	double tmp[SCALING_MAX_BUCKETS];
	size_t best = 1;
	int rc;

	if (p == NULL || y == NULL || p->nbuckets == 0 || p->nbuckets > SCALING_MAX_BUCKETS)
		return ERR_INVALID;
	for (size_t m = 1; m <= p->nbuckets; m++) {
		rc = scaling_mix_error(p->a, p->d, p->b, p->c, m, scale_c ? (double)m : 1.0,
		                       (double)m * bucket_size, n, &tmp[m - 1]);
		if (rc != 0)
			return rc;
		if (tmp[m - 1] < tmp[best - 1])
			best = m;
	}
	memcpy(y, tmp, p->nbuckets * sizeof *y);
	if (best_m != NULL)
		*best_m = best;
	return 0;
}

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: small, seedable, the same sequence on every platform */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

struct best {
	double loss;
	uint32_t bc; /* ib * SCALING_GRID + ic */
	int set;
};

int scaling_fit(const struct scaling_obs *obs, size_t nobs, size_t nbuckets, double bucket_size,
                const struct scaling_fit_opts *o, struct scaling_fit_result *out)
{
	enum { G = SCALING_GRID };
	int search_a;
	size_t na;
	uint64_t total, evals, rng;
	double *lm = NULL, *lc = NULL, *bl = NULL;
	double agrid[G], bgrid[G], cgrid[G];
	uint32_t *perm = NULL;
	struct best *best = NULL;
	size_t have[SCALING_MAX_BUCKETS] = {0};
	struct scaling_fit_result res;
	int rc = 0;

	if (obs == NULL || o == NULL || out == NULL || nobs == 0 ||
	    nobs > SCALING_MAX_OBSERVATIONS || nbuckets == 0 || nbuckets > SCALING_MAX_BUCKETS ||
	    bad(bucket_size) || bucket_size < 1 || bad(o->d) || o->d < 0 ||
	    o->max_evaluations == 0 || o->max_evaluations > SCALING_MAX_EVALUATIONS)
		return ERR_INVALID;
	search_a = isnan(o->a);
	if (search_a ? bad(o->a_upper) || o->a_upper <= SCALING_A_LO : bad(o->a) || o->a <= 0)
		return ERR_INVALID;
	for (size_t j = 0; j < nobs; j++) {
		if (obs[j].bucket >= nbuckets || bad(obs[j].samples_seen) ||
		    obs[j].samples_seen < 0 ||
		    !(obs[j].samples_seen / bucket_size <= SCALING_MAX_OBS_REPEATS) ||
		    bad(obs[j].error))
			return ERR_INVALID;
		have[obs[j].bucket]++;
	}
	for (size_t i = 0; i < nbuckets; i++)
		if (have[i] == 0)
			return ERR_INVALID;

	na = search_a ? G : 1;
	for (unsigned i = 0; i < G; i++) {
		agrid[i] = search_a ? scaling_linspace(SCALING_A_LO, o->a_upper, i) : o->a;
		bgrid[i] = scaling_linspace(SCALING_B_HI, SCALING_B_LO, i);
		cgrid[i] = scaling_linspace(SCALING_C_LO, SCALING_C_HI, i);
	}
	/* One bucket alone: y = ((a s/N0)^b + d) * exp(b * L(c)), where s = min(S, n) and
	 * L(c) = sum_k 0.5^(k/c) log(ratio_k) does not depend on a or b. Precomputing log(s/N0)
	 * per observation and L per (c, observation) leaves two exp per observation and grid
	 * point. n = 0 has no first term (the pw(0, b) = 0 guard) and L = 0. */
	lm = malloc(nobs * sizeof *lm);
	lc = malloc((size_t)G * nobs * sizeof *lc);
	bl = malloc(nbuckets * sizeof *bl);
	best = calloc(na * nbuckets, sizeof *best);
	if (lm == NULL || lc == NULL || bl == NULL || best == NULL) {
		rc = ERR_NOMEM;
		goto out;
	}
	for (size_t j = 0; j < nobs; j++) {
		double n = obs[j].samples_seen, reps = n / bucket_size;
		uint64_t K = (uint64_t)floor(reps);

		lm[j] = n > 0 ? log(fmin(bucket_size, n) / SCALING_N0) : NAN;
		for (unsigned ic = 0; ic < G; ic++) {
			double L = 0;

			for (uint64_t e = 1; e <= K; e++)
				L += exp2(-(double)e / cgrid[ic]) *
				     (e < K ? log1p(1.0 / (double)e) : log(reps / (double)e));
			lc[(size_t)ic * nobs + j] = L;
		}
	}

	total = (uint64_t)na * G * G;
	evals = total < o->max_evaluations ? total : o->max_evaluations;
	if (evals < total) {
		perm = malloc(total * sizeof *perm);
		if (perm == NULL) {
			rc = ERR_NOMEM;
			goto out;
		}
		for (uint64_t g = 0; g < total; g++)
			perm[g] = (uint32_t)g;
		/* the first evals entries of a Fisher-Yates shuffle: a uniform sample of the grid
		 * without repeats; seed 0 would stall xorshift, so it is mapped to another */
		rng = o->seed != 0 ? o->seed : 0x9e3779b97f4a7c15ULL;
		for (uint64_t i = 0; i < evals; i++) {
			uint64_t j = i + rng_next(&rng) % (total - i);
			uint32_t tmp = perm[i];

			perm[i] = perm[j];
			perm[j] = tmp;
		}
	}
	for (uint64_t g0 = 0; g0 < evals; g0++) {
		uint32_t g = perm != NULL ? perm[g0] : (uint32_t)g0;
		uint32_t ia = g / (G * G), bc = g % (G * G), ib = bc / G, ic = bc % G;
		double la = log(agrid[ia]), bv = bgrid[ib];
		const double *L = lc + (size_t)ic * nobs;

		for (size_t i = 0; i < nbuckets; i++)
			bl[i] = 0;
		for (size_t j = 0; j < nobs; j++) {
			double first = isnan(lm[j]) ? 0 : exp(bv * (la + lm[j]));
			double diff = (first + o->d) * exp(bv * L[j]) - obs[j].error;

			bl[obs[j].bucket] += diff * diff;
		}
		for (size_t i = 0; i < nbuckets; i++) {
			struct best *bp = &best[ia * nbuckets + i];

			/* ties go to the smaller grid index, whatever order the points came in */
			if (!bp->set || bl[i] < bp->loss || (bl[i] == bp->loss && bc < bp->bc)) {
				bp->loss = bl[i];
				bp->bc = bc;
				bp->set = 1;
			}
		}
	}

	memset(&res, 0, sizeof res);
	{
		size_t ia_best = 0;
		double sum_best = INFINITY;

		for (size_t ia = 0; ia < na; ia++) {
			double sum = 0;

			if (!best[ia * nbuckets].set)
				continue;
			for (size_t i = 0; i < nbuckets; i++)
				sum += best[ia * nbuckets + i].loss;
			if (sum < sum_best) {
				sum_best = sum;
				ia_best = ia;
			}
		}
		res.params.a = agrid[ia_best];
		res.params.d = o->d;
		res.params.nbuckets = nbuckets;
		res.residual = sum_best;
		for (size_t i = 0; i < nbuckets; i++) {
			const struct best *bp = &best[ia_best * nbuckets + i];

			res.params.b[i] = bgrid[bp->bc / G];
			res.params.c[i] = cgrid[bp->bc % G];
			res.bucket_residual[i] = bp->loss;
		}
	}
	res.evaluations = evals;
	res.grid_points = total;
	*out = res;
out:
	free(lm);
	free(lc);
	free(bl);
	free(best);
	free(perm);
	return rc;
}
