/* SPDX-License-Identifier: MIT */
/* Tests of the semdedup filter (spec 3.2): the spec's test vector (hard order, M, the keep
 * sets at two eps), the kernel against a brute-force loop of the rule (chunked tiles,
 * removed items still counting), the orders, the chunk bound, reuse of a prototypes
 * filter's centroids, the state round trip, explain, the sweep, bad params. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "filters/filter.h"
#include "filters/kmeans.h"
#include "filters/registry.h"
#include "filters/semdedup.h"
#include "store/store.h"
#include "tests/harness.h"

static struct store_schema schema1(uint32_t dim)
{
	struct store_schema s;

	memset(&s, 0, sizeof s);
	s.nspaces = 2;
	s.kinds = STORE_KIND_IMAGE_TEXT | STORE_KIND_TEXT;
	snprintf(s.spaces[0].name, sizeof s.spaces[0].name, "emb");
	snprintf(s.spaces[1].name, sizeof s.spaces[1].name, "other");
	s.spaces[0].dim = dim;
	s.spaces[1].dim = dim;
	return s;
}

static struct filter *make(const char *type, const char *params, const struct store_schema *sc,
                           int *rc, struct err *e)
{
	struct filter *f = NULL;
	json_t *p = params ? json_loads(params, 0, NULL) : NULL;

	err_clear(e);
	*rc = filter_create(&f, registry_find(type), p, sc, e);
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

/* Record ids in row order (a semdedup breaks ties in its order by id). */
static const char *const ids6[] = {"r0", "r1", "r2", "r3", "r4", "r5"};

/* The spec's four points, one cluster whose centroid is their normalised mean. */
static const char *const spec_centroid = "[[0.988316, 0.152421]]";
static float spec_x[] = {1, 0, 1, .02f, 1, .30f, 1, .31f};

static struct filter *spec_filter(double eps, const char *order, struct err *e)
{
	struct store_schema sc = schema1(2);
	char p[256];
	int rc;
	uint8_t has[] = {1, 1, 1, 1};
	uint64_t rows[] = {0, 1, 2, 3};
	struct filter_batch b = {
	    .n = 4, .rows = rows, .vecs = {spec_x}, .has_vec = {has}, .dims = {2}, .ids = ids6};
	struct mem_scan ms = {.base = {mem_next}, .b = &b, .n = 1};
	struct filter *f;

	snprintf(p, sizeof p, "{\"space\":\"emb\",\"eps\":%g,\"order\":\"%s\",\"centroids\":%s}",
	         eps, order, spec_centroid);
	f = make("semdedup", p, &sc, &rc, e);
	if (f == NULL)
		return NULL;
	if (filter_fit(f, &ms.base, e) != 0) {
		filter_free(f);
		return NULL;
	}
	return f;
}

static int keep_mask(struct filter *f, struct err *e)
{
	uint8_t has[] = {1, 1, 1, 1};
	uint64_t rows[] = {0, 1, 2, 3};
	struct filter_batch b = {
	    .n = 4, .rows = rows, .vecs = {spec_x}, .has_vec = {has}, .dims = {2}, .ids = ids6};
	float s[4];
	uint8_t st[4];
	uint32_t l[4];
	int mask = 0;

	if (filter_score_batch_labels(f, &b, s, st, l, e) != 0)
		return -1;
	for (int i = 0; i < 4; i++) {
		if (l[i] != 0)
			return -1;
		if (s[i] == 1 && st[i] == FILTER_SCORED)
			mask |= 1 << i;
		else if (!(s[i] == 0 && st[i] == FILTER_REASON_BASE))
			return -1;
	}
	return mask;
}

static void test_spec_vector(void)
{
	struct err e;
	struct filter *f = spec_filter(1e-4, "hard", &e), *g;
	/* M in the hard order [0, 3, 2, 1] */
	static const double m[] = {0, 0.95515733, 0.99995815, 0.99980006};
	static const int order[] = {0, 3, 2, 1};
	json_t *x = NULL;

	CHECK(f != NULL);
	CHECK_INT(keep_mask(f, &e), (1 << 0) | (1 << 1) | (1 << 3)); /* remove {2} */
	for (int i = 0; i < 4; i++) {
		CHECK_INT(filter_explain(f, (uint64_t)order[i], &x, &e), 0);
		CHECK(x != NULL);
		CHECK_NEAR(json_real_value(json_object_get(x, "similarity")), m[i], 2e-7);
		CHECK_INT(json_integer_value(json_object_get(x, "cluster")), 0);
		json_decref(x);
		x = NULL;
	}
	/* 2 duplicates 3 (its only earlier items are 0 and 3) */
	CHECK_INT(filter_explain(f, 2, &x, &e), 0);
	CHECK(json_is_true(json_object_get(x, "duplicate")));
	CHECK_INT(json_integer_value(json_object_get(x, "duplicate_of_row")), 3);
	CHECK_NEAR(json_real_value(json_object_get(x, "threshold")), 1 - 1e-4, 1e-12);
	json_decref(x);
	CHECK_INT(filter_explain(f, 1, &x, &e), 0);
	CHECK(json_is_false(json_object_get(x, "duplicate")));
	/* its nearest earlier item is 0: cos((1,0), (1,.02)) = 0.99980006 */
	CHECK_INT(json_integer_value(json_object_get(x, "most_similar_earlier_row")), 0);
	CHECK(json_object_get(x, "most_similar_earlier_row") != NULL);
	json_decref(x);
	CHECK_INT(filter_explain(f, 0, &x, &e), 0); /* the first has no earlier item */
	CHECK(json_object_get(x, "most_similar_earlier_row") == NULL);
	json_decref(x);
	/* eps = 1e-3: remove {2, 1}, keep {0, 3} */
	g = spec_filter(1e-3, "hard", &e);
	CHECK(g != NULL);
	CHECK_INT(keep_mask(g, &e), (1 << 0) | (1 << 3));
	CHECK_INT(filter_explain(g, 1, &x, &e), 0);
	CHECK(json_is_true(json_object_get(x, "duplicate")));
	CHECK_INT(json_integer_value(json_object_get(x, "duplicate_of_row")), 0);
	CHECK(json_object_get(x, "duplicate_of_row") != NULL);
	json_decref(x);
	/* the sweep reads the same M: 1e-4 keeps 3, 1e-3 and 0.03 keep 2, 0.05 keeps 1 (0.955 > 0.95) */
	{
		double eps[] = {1e-4, 1e-3, 0.03, 0.05};
		uint64_t kept[4], total = 0;

		CHECK_INT(semdedup_sweep(f, eps, 4, kept, &total), 0);
		CHECK_INT(total, 4);
		CHECK_INT(kept[0], 3);
		CHECK_INT(kept[1], 2);
		CHECK_INT(kept[2], 2);
		CHECK_INT(kept[3], 1);
	}
	filter_free(f);
	filter_free(g);
	/* easy order [1, 2, 3, 0] at 1e-3: 2 keeps (cos to 1: 0.963), 3 goes (0.99996 to 2),
	 * 0 goes (0.9998 to 1): the survivors are the easy ones */
	f = spec_filter(1e-3, "easy", &e);
	CHECK(f != NULL);
	CHECK_INT(keep_mask(f, &e), (1 << 1) | (1 << 2));
	filter_free(f);
}

/* The rule, brute force in doubles: for j in order, M = max(0, max_{i<j} cos). */
static void brute(const float *z, size_t m, uint32_t d, double *M, uint32_t *arg)
{
	for (size_t j = 0; j < m; j++) {
		M[j] = 0;
		arg[j] = SEMDEDUP_NONE;
		for (size_t i = 0; i < j; i++) {
			double s = 0;

			for (uint32_t k = 0; k < d; k++)
				s += (double)z[i * d + k] * z[j * d + k];
			if (s > M[j]) {
				M[j] = s;
				arg[j] = (uint32_t)i;
			}
		}
	}
}

/* 1300 items (three tiles, a partial one): planted near-duplicate chains so that removed
 * items matter, checked against the brute force. */
static void test_kernel(void)
{
	enum { M = 1300, D = 24 };
	float *z = malloc(M * D * sizeof *z), ms[M];
	double bm[M];
	uint32_t arg[M], barg[M];
	uint64_t st = 3;
	struct err e;
	size_t dups = 0;

	for (size_t j = 0; j < M; j++) {
		/* every 5th item starts a group; the others are a small step from the previous */
		for (int k = 0; k < D; k++) {
			double u = (double)(kmeans_rand(&st) >> 11) / 9007199254740992.0 - 0.5;

			z[j * D + k] = j % 5 == 0 ? (float)u : z[(j - 1) * D + k] + (float)(0.02 * u);
		}
		kmeans_normalise(z + j * D, D);
	}
	CHECK_INT(semdedup_earlier_max(z, M, D, ms, arg, &e), 0);
	brute(z, M, D, bm, barg);
	for (size_t j = 0; j < M; j++) {
		CHECK_NEAR(ms[j], bm[j], 1e-5);
		if (bm[j] > 0.999)
			dups++;
		/* the argmax agrees unless two earlier items tie within float rounding */
		if (arg[j] != barg[j]) {
			double s = 0;

			for (int k = 0; k < D; k++)
				s += (double)z[arg[j] * D + k] * z[j * D + k];
			CHECK_NEAR(s, bm[j], 1e-5);
		}
	}
	CHECK(dups > 500); /* the chains are there */
	free(z);
}

/* Two clusters, a chunk bound of 2: dedup happens only inside each chunk of the order. */
static void test_chunks_and_use(void)
{
	struct store_schema sc = schema1(2);
	struct err e;
	int rc;
	/* cluster 0 (around (1,0)): three identical points; cluster 1: two identical points */
	float x[] = {1, 0, 1, 0, 1, 0, 0, 1, 0, 1};
	uint8_t has[] = {1, 1, 1, 1, 1};
	uint64_t rows[] = {0, 1, 2, 3, 4};
	struct filter_batch b = {
	    .n = 5, .rows = rows, .vecs = {x}, .has_vec = {has}, .dims = {2}, .ids = ids6};
	struct mem_scan ms = {.base = {mem_next}, .b = &b, .n = 1};
	struct filter *f = make("semdedup",
	                        "{\"space\":\"emb\",\"eps\":0.01,\"centroids\":[[1,0],[0,1]],"
	                        "\"max_cluster_size\":2}",
	                        &sc, &rc, &e),
	              *p, *u, *g;
	float s[5];
	uint8_t st[5];
	uint32_t l[5];
	void *blob = NULL;
	size_t len = 0;

	CHECK_INT(rc, 0);
	CHECK_INT(filter_fit(f, &ms.base, &e), 0);
	CHECK_INT(filter_score_batch_labels(f, &b, s, st, l, &e), 0);
	/* cluster 0 in row order (ties): chunks [0,1] and [2]: 1 removed, 2 kept */
	CHECK(s[0] == 1 && s[1] == 0 && s[2] == 1 && s[3] == 1 && s[4] == 0);
	CHECK(l[0] == 0 && l[2] == 0 && l[3] == 1 && l[4] == 1);
	/* the state round trip (a restart) gives the same scores */
	CHECK_INT(filter_save(f, &blob, &len, &e), 0);
	CHECK_INT(len, 24 + 5 * 16);
	g = make("semdedup",
	         "{\"space\":\"emb\",\"eps\":0.01,\"centroids\":[[1,0],[0,1]],\"max_cluster_size\":2}",
	         &sc, &rc, &e);
	CHECK_INT(filter_load(g, blob, len, &e), 0);
	{
		float s2[5];
		uint8_t st2[5];

		CHECK_INT(filter_score_batch(g, &b, s2, st2, &e), 0);
		CHECK(memcmp(s, s2, sizeof s) == 0 && memcmp(st, st2, sizeof st) == 0);
	}
	CHECK_INT(filter_load(g, blob, len - 3, &e), ERR_INVALID);
	/* a row the fit never saw (ingested later) is "unfitted"; no vector is "no_vector" */
	{
		float y[] = {1, 0, 0, 0};
		uint8_t h2[] = {1, 0};
		uint64_t r2[] = {9, 10};
		struct filter_batch b2 = {
		    .n = 2, .rows = r2, .vecs = {y}, .has_vec = {h2}, .dims = {2}, .ids = ids6};

		CHECK_INT(filter_score_batch(g, &b2, s, st, &e), 0);
		CHECK_INT(st[0], FILTER_UNFITTED);
		CHECK_INT(st[1], FILTER_NO_VECTOR);
	}
	free(blob);
	filter_free(g);
	filter_free(f);

	/* reuse: the centroids of a prototypes instance */
	p = make("prototypes", "{\"space\":\"emb\",\"centroids\":[[1,0],[0,1]]}", &sc, &rc, &e);
	u = make("semdedup", "{\"space\":\"emb\",\"eps\":0.01,\"prototypes\":\"proto\"}", &sc, &rc,
	         &e);
	CHECK_INT(rc, 0);
	CHECK_STR(u->uses, "proto");
	CHECK_INT(filter_use(u, p, &e), 0);
	ms.at = 0;
	CHECK_INT(filter_fit(u, &ms.base, &e), 0);
	CHECK_INT(filter_score_batch_labels(u, &b, s, st, l, &e), 0);
	CHECK(s[0] == 1 && s[1] == 0 && s[2] == 0 && s[3] == 1 && s[4] == 0);
	/* a semdedup cannot use another semdedup, nor a prototypes filter of another space */
	CHECK_INT(filter_use(u, u, &e), ERR_INVALID);
	filter_free(p);
	p = make("prototypes", "{\"space\":\"other\",\"centroids\":[[1,0],[0,1]]}", &sc, &rc, &e);
	CHECK_INT(filter_use(u, p, &e), ERR_INVALID);
	filter_free(p);
	/* nor an unfitted one */
	p = make("prototypes", "{\"space\":\"emb\",\"k\":2}", &sc, &rc, &e);
	CHECK_INT(filter_use(u, p, &e), ERR_INVALID);
	CHECK_STR(e.slug, "not_fitted");
	filter_free(p);
	filter_free(u);
}

/* k-means inside the fit: two far-apart groups, each of 3 copies of a point. */
static void test_fit_kmeans(void)
{
	struct store_schema sc = schema1(2);
	struct err e;
	int rc;
	float x[] = {1, 0, 1, 0.001f, 1, -0.001f, -1, 0, -1, 0.001f, -1, -0.001f};
	uint8_t has[] = {1, 1, 1, 1, 1, 1};
	uint64_t rows[] = {0, 1, 2, 3, 4, 5};
	struct filter_batch b = {
	    .n = 6, .rows = rows, .vecs = {x}, .has_vec = {has}, .dims = {2}, .ids = ids6};
	struct mem_scan ms = {.base = {mem_next}, .b = &b, .n = 1};
	struct filter *f = make("semdedup", "{\"space\":\"emb\",\"eps\":0.01,\"k\":2}", &sc, &rc, &e);
	float s[6];
	uint8_t st[6];
	uint32_t l[6];
	int kept = 0;

	CHECK_INT(rc, 0);
	CHECK_INT(filter_fit(f, &ms.base, &e), 0);
	CHECK_INT(filter_score_batch_labels(f, &b, s, st, l, &e), 0);
	for (int i = 0; i < 6; i++)
		kept += s[i] == 1;
	CHECK_INT(kept, 2); /* one per group */
	CHECK(l[0] == l[1] && l[1] == l[2] && l[3] == l[4] && l[4] == l[5] && l[0] != l[3]);
	filter_free(f);
}

/* order "random": three identical points, so the survivor is the first of the shuffle; the
 * same seed gives the same survivor, and the seeds between them pick each of the three. */
static int random_survivor(int seed, struct err *e)
{
	struct store_schema sc = schema1(2);
	float x[] = {1, 0, 1, 0, 1, 0};
	uint8_t has[] = {1, 1, 1};
	uint64_t rows[] = {0, 1, 2};
	struct filter_batch b = {
	    .n = 3, .rows = rows, .vecs = {x}, .has_vec = {has}, .dims = {2}, .ids = ids6};
	struct mem_scan ms = {.base = {mem_next}, .b = &b, .n = 1};
	char p[160];
	int rc, who = -1, kept = 0;
	struct filter *f;
	float s[3];
	uint8_t st[3];

	snprintf(p, sizeof p,
	         "{\"space\":\"emb\",\"eps\":0.01,\"order\":\"random\",\"seed\":%d,"
	         "\"centroids\":[[1,0]]}",
	         seed);
	f = make("semdedup", p, &sc, &rc, e);
	if (f == NULL || filter_fit(f, &ms.base, e) != 0 ||
	    filter_score_batch(f, &b, s, st, e) != 0) {
		filter_free(f);
		return -1;
	}
	for (int i = 0; i < 3; i++)
		if (s[i] == 1) {
			who = i;
			kept++;
		}
	filter_free(f);
	return kept == 1 ? who : -2;
}

static void test_random_order(void)
{
	struct err e;
	int seen[3] = {0};

	for (int seed = 1; seed <= 30; seed++) {
		int w = random_survivor(seed, &e);

		CHECK(w >= 0);
		CHECK_INT(random_survivor(seed, &e), w);
		seen[w]++;
	}
	CHECK(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
}

/* Ties in the order go to the smaller id, whatever the rows: three identical points whose ids
 * run against their rows, then through semdedup_dedup directly (what a router calls). */
static void test_id_ties(void)
{
	struct store_schema sc = schema1(2);
	static const char *const ids[] = {"c", "a", "b"};
	float x[] = {1, 0, 1, 0, 1, 0};
	uint8_t has[] = {1, 1, 1};
	uint64_t rows[] = {0, 1, 2};
	struct filter_batch b = {
	    .n = 3, .rows = rows, .vecs = {x}, .has_vec = {has}, .dims = {2}, .ids = ids};
	struct mem_scan ms = {.base = {mem_next}, .b = &b, .n = 1};
	struct err e;
	int rc;
	struct filter *f = make(
	    "semdedup", "{\"space\":\"emb\",\"eps\":0.01,\"centroids\":[[1,0]]}", &sc, &rc, &e);
	float s[3];
	uint8_t st[3];
	struct semdedup_rec r[3];
	struct semdedup_stats sst;

	CHECK_INT(rc, 0);
	CHECK_INT(filter_fit(f, &ms.base, &e), 0);
	CHECK_INT(filter_score_batch(f, &b, s, st, &e), 0);
	CHECK(s[0] == 0 && s[1] == 1 && s[2] == 0);
	filter_free(f);
	for (int i = 0; i < 3; i++)
		r[i] = (struct semdedup_rec){.id = ids[i], .v = x + 2 * i, .cluster = 0, .sim = 1};
	CHECK_INT(semdedup_dedup(r, 3, 2, SEMDEDUP_HARD, 1234, 100, &sst, &e), 0);
	CHECK(r[1].earlier == SIZE_MAX && r[2].earlier == 1 && r[0].earlier == 1);
	CHECK(r[0].maxsim == 1 && r[2].maxsim == 1 && r[1].maxsim == 0);
	CHECK_INT(sst.clusters, 1);
	CHECK_INT(semdedup_cos(x, x + 2, 2) == 1.0f, 1);
}

static void test_params(void)
{
	struct store_schema sc = schema1(2);
	struct err e;
	int rc;
	static const char *const bad[] = {
		"{\"space\":\"emb\"}",
		"{\"space\":\"emb\",\"eps\":0}",
		"{\"space\":\"emb\",\"eps\":1}",
		"{\"space\":\"emb\",\"eps\":\"x\"}",
		"{\"space\":\"emb\",\"eps\":0.1,\"order\":\"sideways\"}",
		"{\"space\":\"emb\",\"eps\":0.1,\"max_cluster_size\":1}",
		"{\"space\":\"emb\",\"eps\":0.1,\"prototypes\":\"p\",\"k\":3}",
		"{\"space\":\"emb\",\"eps\":0.1,\"prototypes\":\"p\",\"centroids\":[[1,0]]}",
		"{\"space\":\"emb\",\"eps\":0.1,\"prototypes\":5}",
		"{\"eps\":0.1}",
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct filter *f = make("semdedup", bad[i], &sc, &rc, &e);

		CHECK(f == NULL);
		CHECK_INT(rc, ERR_INVALID);
		CHECK(e.detail[0] != '\0');
	}
}

int main(void)
{
	HARNESS_RUN(test_spec_vector);
	HARNESS_RUN(test_kernel);
	HARNESS_RUN(test_chunks_and_use);
	HARNESS_RUN(test_fit_kmeans);
	HARNESS_RUN(test_random_order);
	HARNESS_RUN(test_id_ties);
	HARNESS_RUN(test_params);
	return harness_done();
}
