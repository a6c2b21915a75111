/* SPDX-License-Identifier: MIT */
/* hubness_stats: the time to compute DBNorm bank statistics (spec 5.4) for a large gallery,
 * in process (no HTTP, no LMDB): hubness_compute() over --records random L2-normalised
 * --dim vectors in blocks of 256 (as the statistics job does), against two banks of --bank
 * vectors each, with the top-k of every bank item tracked. The reference is the same two matrix
 * products alone through OpenBLAS (cblas_sgemm on the same blocks): the floor for any
 * implementation; the ratio says what log-sum-exp, r_B and the top-k add to it. A sample of the
 * statistics is checked against a double-precision loop.
 *
 * Prints one line per measurement. Exit 0 when it ran and the check held, 1 otherwise, 2 on a
 * usage error. Defaults: 200,000 records, banks of 10,000, 784-d (--records 1000000 for the
 * issue's scale: about 4 minutes on 2 cores). */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/err.h"
#include "algo/hubness.h"

#define BLOCK 256

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;

static float rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (float)((double)(rng * 2685821657736338717ull >> 11) / 9007199254740992.0 - 0.5);
}

static void fill(float *v, size_t n, uint32_t dim)
{
	for (size_t i = 0; i < n; i++) {
		double s = 0;

		for (uint32_t k = 0; k < dim; k++) {
			v[i * dim + k] = rnd();
			s += (double)v[i * dim + k] * v[i * dim + k];
		}
		for (uint32_t k = 0; k < dim; k++)
			v[i * dim + k] = (float)(v[i * dim + k] / sqrt(s));
	}
}

int main(int argc, char **argv)
{
	uint64_t records = 200000;
	size_t bank = 10000;
	uint32_t dim = 784;
	struct hubness_params p = {20, 20, 1, 10, HUBNESS_REFERENCE};
	float *qv, *gv, *x, *s;
	struct hubness_stats st[BLOCK];
	struct hubness_topk *tq = NULL, *tg = NULL;
	uint64_t rows[BLOCK];
	double t0, t_stats, t_gemm, worst = 0;
	int ok = 1;

	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(argv[i], "--records") == 0 && v != NULL)
			records = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--bank") == 0 && v != NULL)
			bank = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--dim") == 0 && v != NULL)
			dim = (uint32_t)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--daemon") == 0 && v != NULL)
			i++; /* bench/run.sh passes it to every bench */
		else {
			fprintf(stderr, "usage: hubness_stats [--records N] [--bank N] [--dim D]\n");
			return 2;
		}
	}
	if (records == 0 || bank == 0 || dim == 0)
		return 2;
	qv = malloc(bank * dim * sizeof *qv);
	gv = malloc(bank * dim * sizeof *gv);
	x = malloc((size_t)BLOCK * dim * sizeof *x);
	s = malloc((size_t)BLOCK * bank * sizeof *s);
	if (qv == NULL || gv == NULL || x == NULL || s == NULL ||
	    hubness_topk_new(&tq, bank, p.k) != 0 || hubness_topk_new(&tg, bank, p.k) != 0) {
		fprintf(stderr, "hubness_stats: out of memory\n");
		return 1;
	}
	fill(qv, bank, dim);
	fill(gv, bank, dim);
	{
		struct hubness_bank qb = {bank, dim, qv, NULL}, gb = {bank, dim, gv, NULL};

		/* the gallery is generated block by block: time only the statistics */
		t_stats = 0;
		for (uint64_t at = 0; at < records; at += BLOCK) {
			size_t c = records - at < BLOCK ? (size_t)(records - at) : BLOCK;

			fill(x, c, dim);
			for (size_t i = 0; i < c; i++)
				rows[i] = at + i;
			t0 = now();
			if (hubness_compute(&p, &qb, &gb, c, x, rows, st, tq, tg, NULL) != 0) {
				fprintf(stderr, "hubness_stats: compute failed\n");
				return 1;
			}
			t_stats += now() - t0;
			if (at % (BLOCK * 512) == 0) { /* check a row against doubles */
				double zq = 0, zg = 0;

				for (size_t b = 0; b < bank; b++) {
					double a = 0, g = 0;

					for (uint32_t k = 0; k < dim; k++) {
						a += (double)x[k] * qv[b * dim + k];
						g += (double)x[k] * gv[b * dim + k];
					}
					zq += exp(p.beta1 * a);
					zg += exp(p.beta2 * g);
				}
				worst = fmax(worst, fmax(fabs(st[0].log_zq - log(zq)), fabs(st[0].log_zg - log(zg))));
			}
		}
		/* the reference: the two products alone on blocks of the same shape */
		fill(x, BLOCK, dim);
		t_gemm = 0;
		for (uint64_t at = 0; at < records; at += BLOCK) {
			size_t c = records - at < BLOCK ? (size_t)(records - at) : BLOCK;

			t0 = now();
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c, (int)bank, (int)dim, 1.0f,
			            x, (int)dim, qv, (int)dim, 0.0f, s, (int)bank);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c, (int)bank, (int)dim, 1.0f,
			            x, (int)dim, gv, (int)dim, 0.0f, s, (int)bank);
			t_gemm += now() - t0;
		}
	}
	ok = worst < 1e-3;
	printf("hubness_stats: %llu records x banks %zu + %zu, %u-d: statistics %.1f s (%.0f records/s),"
	       " the two matrix products alone %.1f s, ratio %.2f; 1,000,000 records: %.0f s;"
	       " log Z error vs double %.1e %s\n",
	       (unsigned long long)records, bank, bank, (unsigned)dim, t_stats, records / t_stats,
	       t_gemm, t_stats / t_gemm, t_stats * 1e6 / (double)records, worst,
	       ok ? "ok" : "CHECK FAILED");
	hubness_topk_free(tq);
	hubness_topk_free(tg);
	free(qv);
	free(gv);
	free(x);
	free(s);
	return ok ? 0 : 1;
}
