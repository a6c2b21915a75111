/* SPDX-License-Identifier: MIT */
/* Tests of the prototypes filter (spec 3.1) and of filters/kmeans.c: the spec's test vector,
 * the fit (FAISS spherical k-means) against well-separated planted clusters, a refit with the
 * same seed, the state round trip, the reservoir sample, and bad params. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "filters/filter.h"
#include "filters/kmeans.h"
#include "filters/prototypes.h"
#include "filters/registry.h"
#include "store/store.h"
#include "tests/harness.h"

static struct store_schema schema1(uint32_t dim)
{
	struct store_schema s;

	memset(&s, 0, sizeof s);
	s.nspaces = 1;
	s.kinds = STORE_KIND_IMAGE_TEXT | STORE_KIND_TEXT;
	snprintf(s.spaces[0].name, sizeof s.spaces[0].name, "emb");
	s.spaces[0].dim = dim;
	return s;
}

static struct filter *make(const char *params, const struct store_schema *sc, int *rc,
                           struct err *e)
{
	struct filter *f = NULL;
	json_t *p = params ? json_loads(params, 0, NULL) : NULL;

	err_clear(e);
	*rc = filter_create(&f, registry_find("prototypes"), p, sc, e);
	json_decref(p);
	return f;
}

struct mem_scan {
	struct filter_scan base;
	const struct filter_batch *b;
	size_t n, at;
};

static int mem_next(struct filter_scan *s, const struct filter_batch **b, struct err *e)
{
	struct mem_scan *m = (struct mem_scan *)s;

	(void)e;
	if (m->at >= m->n)
		return 0;
	*b = &m->b[m->at++];
	return 1;
}

/* spec 3.1: fixed centroids (1,0), (0,1); d and labels exactly as the spec lists them */
static void test_spec_vector(void)
{
	struct store_schema sc = schema1(2);
	struct err e;
	int rc;
	struct filter *f = make("{\"space\":\"emb\",\"centroids\":[[1,0],[0,1]]}", &sc, &rc, &e);
	float x[] = {1, .1f, 1, .3f, 1, -.5f, .15f, 1, -.2f, 1, .6f, 1, 0, 0};
	uint8_t has[] = {1, 1, 1, 1, 1, 1, 1};
	uint64_t rows[] = {0, 1, 2, 3, 4, 5, 6};
	struct filter_batch b = {.n = 7, .rows = rows, .vecs = {x}, .has_vec = {has}, .dims = {2}};
	static const double d[] = {0.004963, 0.042174, 0.105573, 0.011064, 0.019419, 0.142507};
	static const uint32_t lab[] = {0, 0, 0, 1, 1, 1};
	float s[7];
	uint8_t st[7];
	uint32_t l[7];

	CHECK_INT(rc, 0);
	CHECK(f != NULL && f->fitted); /* fitted by its params */
	CHECK_STR(f->ops->label, "cluster");
	CHECK_INT(filter_score_batch_labels(f, &b, s, st, l, &e), 0);
	for (int i = 0; i < 6; i++) {
		CHECK_INT(st[i], FILTER_SCORED);
		CHECK_NEAR(s[i], d[i], 5e-7);
		CHECK_INT(l[i], lab[i]);
	}
	CHECK_INT(st[6], FILTER_ZERO_VECTOR);
	CHECK_INT(l[6], FILTER_NO_LABEL);
	CHECK(isnan(s[6]));
	/* filter_score_batch without labels gives the same scores */
	{
		float s2[7];
		uint8_t st2[7];

		CHECK_INT(filter_score_batch(f, &b, s2, st2, &e), 0);
		CHECK(memcmp(s, s2, 6 * sizeof *s) == 0);
	}
	filter_free(f);
}

/* Three planted clusters on the unit sphere in 8-d: the fit finds their centres, labels
 * agree with the planted ones up to a permutation, a refit with the same seed gives the same
 * centroids bit for bit, and the saved state restores them. */
static void test_fit(void)
{
	enum { D = 8, N = 600, K = 3 };
	struct store_schema sc = schema1(D);
	struct err e;
	int rc;
	struct filter *f = make("{\"space\":\"emb\",\"k\":3,\"iterations\":20,\"seed\":7}", &sc,
	                        &rc, &e), *g = NULL, *h = NULL;
	float *x = malloc(N * D * sizeof *x);
	uint8_t *has = malloc(N);
	uint64_t *rows = malloc(N * sizeof *rows), st = 42;
	struct filter_batch b[3];
	struct mem_scan ms = {.base = {mem_next}, .b = b, .n = 3};
	float s[N], s2[N];
	uint8_t stt[N];
	uint32_t l[N], l2[N], map[K] = {FILTER_NO_LABEL, FILTER_NO_LABEL, FILTER_NO_LABEL};
	void *blob = NULL, *blob2 = NULL;
	size_t len = 0, len2 = 0;
	const float *c;
	uint32_t k, dim;

	CHECK_INT(rc, 0);
	CHECK(!f->fitted);
	for (int i = 0; i < N; i++) {
		int t = i % K;

		for (int j = 0; j < D; j++) {
			double u = (double)(kmeans_rand(&st) >> 11) / 9007199254740992.0 - 0.5;

			x[i * D + j] = (float)((j == t ? 3.0 : 0.0) + 0.2 * u);
		}
		has[i] = 1;
		rows[i] = (uint64_t)i;
	}
	for (int k3 = 0; k3 < 3; k3++)
		b[k3] = (struct filter_batch){.n = N / 3, .rows = rows + k3 * (N / 3),
		                              .vecs = {x + k3 * (N / 3) * D},
		                              .has_vec = {has + k3 * (N / 3)}, .dims = {D}};
	/* unfitted: every row says so */
	CHECK_INT(filter_score_batch_labels(f, &b[0], s, stt, l, &e), 0);
	CHECK_INT(stt[0], FILTER_UNFITTED);
	CHECK_INT(filter_fit(f, &ms.base, &e), 0);
	CHECK(f->fitted);
	CHECK_INT(prototypes_centroids(f, &c, &k, &dim), 0);
	CHECK_INT(k, 3);
	CHECK_INT(dim, D);
	for (int t = 0; t < K; t++) {
		/* each centroid is a unit vector close to one axis */
		double nn = 0, best = 0;

		for (int j = 0; j < D; j++) {
			nn += (double)c[t * D + j] * c[t * D + j];
			if (c[t * D + j] > best)
				best = c[t * D + j];
		}
		CHECK_NEAR(nn, 1.0, 1e-5);
		CHECK(best > 0.99);
	}
	for (int k3 = 0; k3 < 3; k3++)
		CHECK_INT(filter_score_batch_labels(f, &b[k3], s + k3 * (N / 3), stt + k3 * (N / 3),
		                                    l + k3 * (N / 3), &e),
		          0);
	for (int i = 0; i < N; i++) {
		CHECK_INT(stt[i], FILTER_SCORED);
		CHECK(l[i] < K);
		if (map[i % K] == FILTER_NO_LABEL)
			map[i % K] = l[i];
		CHECK_INT(l[i], map[i % K]); /* the planted partition, relabelled */
		CHECK(s[i] >= 0 && s[i] < 0.05);
	}
	CHECK(map[0] != map[1] && map[1] != map[2] && map[0] != map[2]);
	/* refit with the same seed: the same centroids */
	CHECK_INT(filter_save(f, &blob, &len, &e), 0);
	g = make("{\"space\":\"emb\",\"k\":3,\"iterations\":20,\"seed\":7}", &sc, &rc, &e);
	ms.at = 0;
	CHECK_INT(filter_fit(g, &ms.base, &e), 0);
	CHECK_INT(filter_save(g, &blob2, &len2, &e), 0);
	CHECK_INT(len, len2);
	CHECK(memcmp(blob, blob2, len) == 0);
	CHECK_INT(len, 16 + 3 * D * 4);
	/* the state restores the same scores (a restart) */
	h = make("{\"space\":\"emb\",\"k\":3,\"iterations\":20,\"seed\":7}", &sc, &rc, &e);
	CHECK_INT(filter_load(h, blob, len, &e), 0);
	for (int k3 = 0; k3 < 3; k3++)
		CHECK_INT(filter_score_batch_labels(h, &b[k3], s2 + k3 * (N / 3), stt + k3 * (N / 3),
		                                    l2 + k3 * (N / 3), &e),
		          0);
	CHECK(memcmp(s, s2, sizeof s) == 0);
	CHECK(memcmp(l, l2, sizeof l) == 0);
	/* bad blobs are refused and leave the state alone */
	CHECK_INT(filter_load(h, blob, len - 1, &e), ERR_INVALID);
	CHECK_INT(filter_load(h, "WNPRO1\n", 7, &e), ERR_INVALID);
	filter_free(f);
	filter_free(g);
	filter_free(h);
	free(blob);
	free(blob2);
	free(x);
	free(has);
	free(rows);
}

/* Fewer vectors than k: a clear error, the filter stays unfitted. */
static void test_too_few(void)
{
	struct store_schema sc = schema1(2);
	struct err e;
	int rc;
	struct filter *f = make("{\"space\":\"emb\",\"k\":5}", &sc, &rc, &e);
	float x[] = {1, 0, 0, 1};
	uint8_t has[] = {1, 1};
	uint64_t rows[] = {0, 1};
	struct filter_batch b = {.n = 2, .rows = rows, .vecs = {x}, .has_vec = {has}, .dims = {2}};
	struct mem_scan ms = {.base = {mem_next}, .b = &b, .n = 1};

	CHECK_INT(rc, 0);
	CHECK_INT(filter_fit(f, &ms.base, &e), ERR_INVALID);
	CHECK_STR(e.slug, "too_few_points");
	CHECK(!f->fitted);
	filter_free(f);
}

static void test_sample(void)
{
	struct kmeans_sample s;
	struct err e;
	float v[2];
	int seen[1000] = {0};

	CHECK_INT(kmeans_sample_init(&s, 2, 100, 1, &e), 0);
	for (int i = 0; i < 1000; i++) {
		v[0] = (float)i;
		v[1] = 0;
		kmeans_sample_add(&s, v);
	}
	CHECK_INT(s.n, 100);
	CHECK_INT(s.seen, 1000);
	for (size_t i = 0; i < s.n; i++) {
		int at = (int)s.x[2 * i];

		CHECK(at >= 0 && at < 1000 && !seen[at]); /* distinct members */
		seen[at] = 1;
	}
	{
		/* a uniform sample reaches past the first 100 and into the last 500 */
		int late = 0;

		for (int i = 500; i < 1000; i++)
			late += seen[i];
		CHECK(late > 20 && late < 80);
	}
	kmeans_sample_free(&s);
}

static void test_params(void)
{
	struct store_schema sc = schema1(2);
	struct err e;
	int rc;
	static const char *const bad[] = {
		"{}",
		"{\"space\":\"nope\"}",
		"{\"space\":\"emb\",\"k\":0}",
		"{\"space\":\"emb\",\"k\":2.5}",
		"{\"space\":\"emb\",\"iterations\":0}",
		"{\"space\":\"emb\",\"seed\":-1}",
		"{\"space\":\"emb\",\"max_points_per_centroid\":0}",
		"{\"space\":\"emb\",\"centroids\":[]}",
		"{\"space\":\"emb\",\"centroids\":[[1,0,0]]}",
		"{\"space\":\"emb\",\"centroids\":[[0,0]]}",
		"{\"space\":\"emb\",\"centroids\":[[1,\"a\"]]}",
		"{\"space\":\"emb\",\"centroids\":[[1,0]],\"k\":2}",
		"{\"space\":\"emb\",\"what\":1}",
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct filter *f = make(bad[i], &sc, &rc, &e);

		CHECK(f == NULL);
		CHECK_INT(rc, ERR_INVALID);
		CHECK(e.detail[0] != '\0');
	}
}

int main(void)
{
	HARNESS_RUN(test_spec_vector);
	HARNESS_RUN(test_fit);
	HARNESS_RUN(test_too_few);
	HARNESS_RUN(test_sample);
	HARNESS_RUN(test_params);
	return harness_done();
}
