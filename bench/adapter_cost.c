/* SPDX-License-Identifier: MIT */
/* adapter_cost: what relevance adds to one search, measured in-process without HTTP noise.
 *
 * Per query, a search with "relevance" does: load the adapter's weights from their blob
 * (adapter_load; a copy of hidden x dim doubles), the network's forward pass and the inverse
 * bound (adapters_prepare, adapters_scan_bound), and one mapping per result
 * (adapters_score). This times exactly those calls for dim 768 and hidden 32 (the sizes of
 * bench/adapter.py), 100 results, and prints them next to the reference the same work is
 * compared with in docs/performance.md: the exact cosine of 100 candidates (the rescoring that
 * every search at limit 100 does) computed here with a plain loop. Ignores --daemon (bench/run.sh
 * passes it). Exit 0 when it ran. */
#include "algo/adapter.h"
#include "search/adapters.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DIM 768
#define HIDDEN 32
#define RESULTS 100
#define REPS 2000

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(void)
{
	struct adapter *a = NULL;
	void *blob = NULL;
	size_t len;
	float *q = malloc(DIM * sizeof *q), *x = malloc((size_t)RESULTS * DIM * sizeof *x);
	float cos[RESULTS];
	uint64_t s = 12345;
	double t0, t_load = 0, t_prep = 0, t_map = 0, t_ref = 0, sink = 0;

	if (q == NULL || x == NULL || adapter_new(&a, ADAPTER_LINEAR, DIM, HIDDEN, NULL) != 0)
		return 1;
	for (size_t k = 0; k < a->nparam; k++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		a->param[k] = ((double)(s >> 11) * 0x1.0p-53 - 0.5) * 0.1;
	}
	for (size_t k = 0; k < (size_t)RESULTS * DIM; k++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		x[k] = (float)((double)(s >> 11) * 0x1.0p-53 - 0.5);
	}
	for (size_t k = 0; k < DIM; k++)
		q[k] = x[k] + 0.1f;
	if (adapter_save(a, &blob, &len, NULL) != 0)
		return 1;
	for (int rep = 0; rep < REPS; rep++) {
		struct adapters_model rl = {0};
		struct adapters_query rq;

		t0 = now();
		if (adapter_load(&rl.a, blob, len, NULL) != 0)
			return 1;
		t_load += now() - t0;
		t0 = now();
		if (adapters_prepare(&rl, q, DIM, 0.5, &rq, NULL) != 0)
			return 1;
		sink += adapters_scan_bound(&rq);
		t_prep += now() - t0;
		/* the reference: exact cosines of RESULTS candidates, as every search rescores them */
		t0 = now();
		for (int i = 0; i < RESULTS; i++) {
			double xq = 0, xx = 0, qq = 0;

			for (int k = 0; k < DIM; k++) {
				xq += (double)x[(size_t)i * DIM + k] * q[k];
				xx += (double)x[(size_t)i * DIM + k] * x[(size_t)i * DIM + k];
				qq += (double)q[k] * q[k];
			}
			cos[i] = (float)(xq / sqrt(xx * qq));
		}
		t_ref += now() - t0;
		t0 = now();
		for (int i = 0; i < RESULTS; i++)
			sink += adapters_score(&rl, &rq, cos[i]);
		t_map += now() - t0;
		adapter_free(rl.a);
	}
	printf("adapter_cost: dim %d, hidden %d, %d results, %d reps (sink %g)\n", DIM, HIDDEN, RESULTS,
	       REPS, sink);
	printf("adapter_cost: load weights %.1f us, forward pass + bound %.1f us, %d mappings %.1f us: "
	       "total %.1f us a query\n",
	       1e6 * t_load / REPS, 1e6 * t_prep / REPS, RESULTS, 1e6 * t_map / REPS,
	       1e6 * (t_load + t_prep + t_map) / REPS);
	printf("adapter_cost: reference, exact cosines of %d candidates (plain loop): %.1f us; "
	       "ratio %.2f\n",
	       RESULTS, 1e6 * t_ref / REPS, (t_load + t_prep + t_map) / t_ref);
	free(blob);
	free(q);
	free(x);
	adapter_free(a);
	return 0;
}
