/* SPDX-License-Identifier: MIT */
/* Tests of index/: the FAISS implementation against the brute-force oracle (Flat: the same
 * ids and scores for cosine, inner product and L2), recall of HNSW and IVF on a mixture of
 * Gaussians, remove, save/load, and the wrappers' checks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/err.h"
#include "index/index.h"
#include "tests/harness.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static double unif(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0;
}

static float gauss(void)
{
	double u = unif() + 1e-12, v = unif();

	return (float)(sqrt(-2 * log(u)) * cos(2 * M_PI * v));
}

/* n vectors of dim d around c random centres (c = 0: plain Gaussian). New. */
static float *mixture(size_t n, uint32_t d, unsigned c, float spread)
{
	float *x = malloc(n * d * sizeof *x), *ctr = malloc((c ? c : 1) * d * sizeof *ctr);

	for (size_t i = 0; x != NULL && ctr != NULL && i < (size_t)(c ? c : 1) * d; i++)
		ctr[i] = c ? gauss() : 0;
	for (size_t i = 0; x != NULL && ctr != NULL && i < n; i++) {
		unsigned k = c ? (unsigned)(unif() * c) % c : 0;

		for (uint32_t j = 0; j < d; j++)
			x[i * d + j] = ctr[k * d + j] + spread * gauss();
	}
	free(ctr);
	return x;
}

static int has_nprobe(const char *factory)
{
	return strstr(factory, "IVF") != NULL;
}

static struct index *build(const struct index_ops *ops, const char *factory,
                           enum index_metric m, const float *x, size_t n, uint32_t d)
{
	struct index *ix = NULL;
	int64_t *ids = malloc(n * sizeof *ids);
	struct err e;

	err_clear(&e);
	for (size_t i = 0; ids != NULL && i < n; i++)
		ids[i] = (int64_t)(i * 3 + 7); /* the caller's ids, not positions */
	if (ids == NULL || index_create(&ix, ops, d, m, factory, &e) != 0 ||
	    index_train(ix, n, x, &e) != 0 || index_add(ix, n, x, ids, &e) != 0) {
		printf("  build %s %s: %s\n", ops->name, factory, e.detail);
		index_free(ix);
		ix = NULL;
	}
	free(ids);
	return ix;
}

/* The build the loader mapped names itself, and the library is the one its name says:
 * build/faiss/lib/libwinnow_faiss.so for "generic", its glibc-hwcaps/x86-64-v3/ for "avx2". */
static void test_faiss_build(void)
{
	const char *library = NULL, *build = index_faiss_build(&library);
	const char *want = strcmp(build, "avx2") == 0 ? "/glibc-hwcaps/x86-64-v3/libwinnow_faiss.so"
	                                              : "/faiss/lib/libwinnow_faiss.so";

	CHECK(strcmp(build, "avx2") == 0 || strcmp(build, "generic") == 0);
	CHECK(library != NULL && library[0] == '/');
	CHECK(strlen(library) > strlen(want) &&
	      strcmp(library + strlen(library) - strlen(want), want) == 0);
	CHECK(index_faiss_build(NULL) == build);
}

static void test_flat_equals_oracle(void)
{
	enum { N = 3000, D = 32, Q = 40, K = 10 };
	float *x = mixture(N, D, 0, 1), *q = mixture(Q, D, 0, 1);

	CHECK(x != NULL && q != NULL);
	for (int m = INDEX_COSINE; m <= INDEX_L2; m++) {
		struct index *a = build(&index_faiss_ops, "Flat", (enum index_metric)m, x, N, D);
		struct index *b = build(&index_flat_ops, "Flat", (enum index_metric)m, x, N, D);
		float sa[Q * K], sb[Q * K];
		int64_t ia[Q * K], ib[Q * K];
		size_t bad_ids = 0, bad_scores = 0;

		CHECK(a != NULL && b != NULL);
		if (a == NULL || b == NULL) {
			index_free(a);
			index_free(b);
			continue;
		}
		CHECK_INT((long long)index_count(a), N);
		CHECK_INT(index_search(a, Q, q, K, sa, ia, NULL), 0);
		CHECK_INT(index_search(b, Q, q, K, sb, ib, NULL), 0);
		for (size_t i = 0; i < Q * K; i++) {
			bad_ids += ia[i] != ib[i];
			bad_scores += fabsf(sa[i] - sb[i]) > 1e-5f * fmaxf(1.0f, fabsf(sb[i]));
			if (i % K > 0) /* best first, higher is better */
				CHECK(sb[i] <= sb[i - 1]);
		}
		if (bad_ids || bad_scores)
			harness_fail(__FILE__, __LINE__, "metric %s: %zu ids and %zu scores differ",
			             index_metric_name((enum index_metric)m), bad_ids, bad_scores);
		if (m == INDEX_L2)
			CHECK(sb[0] <= 0); /* a negated distance */
		if (m == INDEX_COSINE)
			CHECK(sb[0] <= 1.0f + 1e-6f && sb[0] > 0);
		index_free(a);
		index_free(b);
	}
	free(x);
	free(q);
}

/* recall@10 of an approximate index against the oracle. */
static double recall(struct index *ix, struct index *exact, const float *q, size_t nq)
{
	enum { K = 10 };
	float *s = malloc(nq * K * sizeof *s);
	int64_t *a = malloc(nq * K * sizeof *a), *b = malloc(nq * K * sizeof *b);
	size_t hit = 0;

	if (s == NULL || a == NULL || b == NULL || index_search(ix, nq, q, K, s, a, NULL) != 0 ||
	    index_search(exact, nq, q, K, s, b, NULL) != 0) {
		free(s);
		free(a);
		free(b);
		return 0;
	}
	for (size_t i = 0; i < nq; i++)
		for (size_t j = 0; j < K; j++)
			for (size_t l = 0; l < K; l++)
				hit += a[i * K + j] == b[i * K + l];
	free(s);
	free(a);
	free(b);
	return (double)hit / (double)(nq * K);
}

static void test_recall(void)
{
	enum { N = 20000, D = 64, Q = 200 };
	/* one draw, so that the queries come from the same 50 Gaussians as the data */
	float *x = mixture(N + Q, D, 50, 1.5f), *q = x != NULL ? x + (size_t)N * D : NULL;
	struct index *exact = build(&index_flat_ops, "Flat", INDEX_COSINE, x, N, D);
	struct index *hnsw = build(&index_faiss_ops, "HNSW32", INDEX_COSINE, x, N, D);
	struct index *ivf = build(&index_faiss_ops, "IVF128,Flat", INDEX_COSINE, x, N, D);
	double rh, ri;

	CHECK(exact != NULL && hnsw != NULL && ivf != NULL);
	if (exact && hnsw && ivf) {
		CHECK_INT(index_set_param(hnsw, "efSearch", 64, NULL), 0);
		CHECK_INT(index_set_param(ivf, "nprobe", 16, NULL), 0);
		rh = recall(hnsw, exact, q, Q);
		ri = recall(ivf, exact, q, Q);
		printf("  recall@10 on %d x %d-d (50 Gaussians): HNSW32 efSearch=64 %.3f, "
		       "IVF128,Flat nprobe=16 %.3f\n",
		       N, D, rh, ri);
		CHECK(rh >= 0.95);
		CHECK(ri >= 0.95);
		CHECK_INT(index_set_param(ivf, "nprobe", 1, NULL), 0);
		CHECK(recall(ivf, exact, q, Q) < ri); /* the parameter reaches the index */
		CHECK(index_set_param(hnsw, "nonsense", 1, NULL) != 0);
		/* HNSW cannot remove: said, not done silently */
		{
			int64_t id = 7;
			struct err e;

			err_clear(&e);
			CHECK_INT(index_remove(hnsw, 1, &id, NULL, &e), ERR_INVALID);
			CHECK_STR(e.slug, "remove_unsupported");
		}
	}
	index_free(exact);
	index_free(hnsw);
	index_free(ivf);
	free(x);
}

static void test_remove_save_load(void)
{
	enum { N = 500, D = 8, K = 5 };
	float *x = mixture(N, D, 0, 1);
	char dir[] = "/tmp/winnow-test-index-XXXXXX", path[128];
	const struct index_ops *impls[2] = {&index_faiss_ops, &index_flat_ops};

	CHECK(x != NULL && mkdtemp(dir) != NULL);
	for (int w = 0; w < 2; w++) {
		struct index *ix = build(impls[w], "Flat", INDEX_L2, x, N, D), *back = NULL;
		int64_t gone[2] = {7, 7 + 3 * 10}, ids[K], ids2[K];
		float s[K], s2[K];
		size_t removed = 0;

		CHECK(ix != NULL);
		if (ix == NULL)
			continue;
		/* the vector of id 7 finds itself first, at distance 0 */
		CHECK_INT(index_search(ix, 1, x, K, s, ids, NULL), 0);
		CHECK_INT(ids[0], 7);
		CHECK(s[0] == 0.0f);
		CHECK_INT(index_remove(ix, 2, gone, &removed, NULL), 0);
		CHECK_INT((long long)removed, 2);
		CHECK_INT((long long)index_count(ix), N - 2);
		CHECK_INT(index_search(ix, 1, x, K, s, ids, NULL), 0);
		for (int i = 0; i < K; i++)
			CHECK(ids[i] != 7 && ids[i] != 37);
		snprintf(path, sizeof path, "%s/%s.idx", dir, impls[w]->name);
		CHECK_INT(index_save(ix, path, NULL), 0);
		CHECK(access(path, F_OK) == 0);
		CHECK_INT(index_load(&back, impls[w], path, D, INDEX_L2, "Flat", NULL), 0);
		if (back != NULL) {
			CHECK_INT((long long)index_count(back), N - 2);
			CHECK_INT(index_search(back, 1, x, K, s2, ids2, NULL), 0);
			CHECK(memcmp(ids, ids2, sizeof ids) == 0 && memcmp(s, s2, sizeof s) == 0);
			index_free(back);
			back = NULL;
		}
		/* another dimension or metric is refused */
		CHECK(index_load(&back, impls[w], path, D + 1, INDEX_L2, "Flat", NULL) != 0);
		CHECK(back == NULL);
		remove(path);
		index_free(ix);
	}
	rmdir(dir);
	free(x);
}

static void test_wrappers(void)
{
	struct index *ix = NULL;
	struct err e;
	float zero[4] = {0, 0, 0, 0}, one[4] = {1, 0, 0, 0}, s[3];
	int64_t id = 1, ids[3];
	enum index_metric m;

	err_clear(&e);
	CHECK_INT(index_create(&ix, &index_faiss_ops, 4, INDEX_COSINE, "NoSuchIndex", &e),
	          ERR_INVALID);
	CHECK(ix == NULL && e.detail[0] != '\0');
	CHECK_INT(index_create(&ix, &index_flat_ops, 4, INDEX_COSINE, "HNSW32", NULL), ERR_INVALID);
	CHECK_INT(index_create(&ix, &index_flat_ops, 0, INDEX_COSINE, "Flat", NULL), ERR_INVALID);
	CHECK_INT(index_create(&ix, &index_faiss_ops, 4, INDEX_COSINE, "IVF4,Flat", NULL), 0);
	if (ix != NULL) {
		CHECK(!index_is_trained(ix));
		err_clear(&e);
		CHECK_INT(index_add(ix, 1, one, &id, &e), ERR_INVALID);
		CHECK_STR(e.slug, "not_trained");
		index_free(ix);
		ix = NULL;
	}
	CHECK_INT(index_create(&ix, &index_faiss_ops, 4, INDEX_COSINE, "Flat", NULL), 0);
	if (ix != NULL) {
		err_clear(&e);
		CHECK_INT(index_add(ix, 1, zero, &id, &e), ERR_INVALID);
		CHECK_STR(e.slug, "zero_vector");
		CHECK_INT((long long)index_count(ix), 0);
		CHECK_INT(index_add(ix, 1, one, &id, NULL), 0);
		/* fewer results than k: the rest are -1 / -inf */
		CHECK_INT(index_search(ix, 1, one, 3, s, ids, NULL), 0);
		CHECK(ids[0] == 1 && ids[1] == -1 && ids[2] == -1);
		CHECK(s[1] == -INFINITY);
		index_free(ix);
	}
	CHECK(index_impl_find("faiss") == &index_faiss_ops);
	CHECK(index_impl_find("flat") == &index_flat_ops);
	CHECK(index_impl_find("x") == NULL);
	CHECK(index_metric_parse("l2", &m) == 0 && m == INDEX_L2);
	CHECK(index_metric_parse("euclid", &m) == ERR_INVALID);
	index_free(NULL);
}

/* index_exact_scores() names the factories whose FAISS scores are the exact inner products
 * (checked here against the products computed in double) and no others (their scores differ). */
static void test_exact_scores(void)
{
	static const struct {
		const char *factory;
		int exact;
	} cases[] = {
		{"Flat", 1},       {"HNSW32", 1},     {"HNSW16,Flat", 1}, {"IVF8,Flat", 1},
		{"IVF8_HNSW8,Flat", 1}, {"IDMap,Flat", 1}, {"HNSW", 1},  /* HNSW alone: M = 32 */
		{"PCA8,Flat", 0},  {"IVF8,PQ4x4", 0}, {"IVF8,SQ8", 0},    {"HNSW16_SQ8", 0},
		{"SQ8", 0},
	};
	enum { N = 1200, D = 16, Q = 5, K = 4 };
	float *x = mixture(N, D, 8, 0.5f), *q = mixture(Q, D, 0, 1.0f), s[Q * K];
	int64_t ids[Q * K];

	for (size_t c = 0; x != NULL && q != NULL && c < sizeof cases / sizeof cases[0]; c++) {
		struct index *ix = build(&index_faiss_ops, cases[c].factory, INDEX_IP, x, N, D);
		double worst = 0;

		CHECK(ix != NULL);
		if (ix == NULL)
			continue;
		if (has_nprobe(cases[c].factory))
			index_set_param(ix, "nprobe", 8, NULL);
		CHECK_INT(index_exact_scores(ix), cases[c].exact);
		CHECK_INT(index_search(ix, Q, q, K, s, ids, NULL), 0);
		for (size_t i = 0; i < Q * K; i++) {
			const float *v = x + (size_t)((ids[i] - 7) / 3) * D, *qi = q + (i / K) * D;
			double dot = 0;

			for (size_t j = 0; j < D; j++)
				dot += (double)v[j] * qi[j];
			if (fabs(dot - s[i]) > worst)
				worst = fabs(dot - s[i]);
		}
		if (cases[c].exact ? worst > 1e-4 : worst < 1e-4)
			printf("  %s: largest score error %g\n", cases[c].factory, worst);
		CHECK(cases[c].exact ? worst <= 1e-4 : worst >= 1e-4);
		index_free(ix);
	}
	free(x);
	free(q);
}

/* index_can_remove() answers 1 exactly for the factories whose remove works, again and again:
 * after three removes the removed ids are never found, the count is 3 less, and (for the exact
 * ones) every other vector is still its own nearest under L2. The graphs are asked too: FAISS
 * refuses (and prints on stderr). IVF is not asked: its second remove inside IDMap2 aborts. */
static void test_can_remove(void)
{
	static const struct {
		const char *factory;
		int can, exact;
	} cases[] = {
		{"Flat", 1, 1},    {"PCA8,Flat", 1, 1}, {"SQ8", 1, 0},         {"HNSW32", 0, 0},
		{"HNSW16,Flat", 0, 0}, {"HNSW16_SQ8", 0, 0}, {"IVF8,Flat", 0, 0}, {"IVF8_HNSW8,Flat", 0, 0},
		{"IVF8,SQ8", 0, 0}, {"IDMap,IVF8,Flat", 0, 0},
	};
	enum { N = 600, D = 16 };
	float *x = mixture(N, D, 8, 0.5f);
	struct index *fl = x != NULL ? build(&index_flat_ops, "Flat", INDEX_L2, x, N, D) : NULL;
	const int64_t gone[3] = {7 + 3 * 5, 7 + 3 * 6, 7 + 3 * 400}; /* build(): row i has id 7 + 3 i */

	CHECK(fl != NULL);
	CHECK_INT(index_can_remove(fl), 1);
	index_free(fl);
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct index *ix = build(&index_faiss_ops, cases[c].factory, INDEX_L2, x, N, D);
		size_t removed = 99;
		float s[4];
		int64_t ids[4];

		CHECK(ix != NULL);
		CHECK_INT(index_can_remove(ix), cases[c].can);
		if (!cases[c].can) {
			if (strstr(cases[c].factory, "IVF") == NULL)
				CHECK(index_remove(ix, 1, gone, &removed, NULL) != 0);
			index_free(ix);
			continue;
		}
		for (int g = 0; g < 3; g++) { /* one at a time, as deletes come */
			CHECK_INT(index_remove(ix, 1, &gone[g], &removed, NULL), 0);
			CHECK_INT(removed, 1);
		}
		CHECK_INT(index_count(ix), N - 3);
		for (size_t i = 0; i < N; i++) {
			int64_t id = 7 + 3 * (int64_t)i;
			int was_removed = id == gone[0] || id == gone[1] || id == gone[2];

			CHECK_INT(index_search(ix, 1, x + i * D, 4, s, ids, NULL), 0);
			for (int k = 0; k < 4; k++)
				CHECK(ids[k] != gone[0] && ids[k] != gone[1] && ids[k] != gone[2]);
			if (cases[c].exact && !was_removed)
				CHECK_INT(ids[0], id);
		}
		index_free(ix);
	}
	free(x);
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* index/faiss.c's own scan of a Flat index (up to 16 queries, winnow's kernels over FAISS's
 * storage), in 1, 2 and 3 row ranges: the brute-force oracle's ids and scores (to 1e-5) for
 * every metric, one query and several, after removals (the storage moves), and with k
 * beyond the vector count (-1 / -inf past the end); any split gives exactly the one-range
 * answer. index_split_scans() counts the split ones. */
static void test_split_scan(void)
{
	enum { N = 24576, D = 256, Q = 3, K = 10 }; /* 6 Mi floats: room for 3 ranges of 2 Mi */
	float *x = mixture(N, D, 8, 0.5f), *q = mixture(Q, D, 8, 0.5f);
	size_t bigk = N + 3;
	float *sa = malloc(bigk * sizeof *sa), *sb = malloc(bigk * sizeof *sb);
	float *so = malloc(bigk * sizeof *so);
	int64_t *ia = malloc(bigk * sizeof *ia), *ib = malloc(bigk * sizeof *ib);
	int64_t *io = malloc(bigk * sizeof *io);

	CHECK(x != NULL && q != NULL && sa != NULL && sb != NULL && so != NULL && ia != NULL &&
	      ib != NULL && io != NULL);
	for (int m = INDEX_COSINE; m <= INDEX_L2 && x != NULL && io != NULL; m++) {
		struct index *ix = build(&index_faiss_ops, "Flat", (enum index_metric)m, x, N, D);
		struct index *or = build(&index_flat_ops, "Flat", (enum index_metric)m, x, N, D);
		int64_t gone[3] = {7, 7 + 3 * 100, 7 + 3 * (N - 1)};
		uint64_t splits = index_split_scans();
		size_t bad = 0, bad_oracle = 0;

		CHECK(ix != NULL && or != NULL);
		if (ix == NULL || or == NULL) {
			index_free(ix);
			index_free(or);
			continue;
		}
		for (int round = 0; round < 2; round++) {
			if (round == 1) {
				CHECK_INT(index_remove(ix, 3, gone, NULL, NULL), 0);
				CHECK_INT(index_remove(or, 3, gone, NULL, NULL), 0);
			}
			for (size_t nq = 1; nq <= Q; nq++) {
				ix->threads = 1;
				CHECK_INT(index_search(ix, nq, q, K, sa, ia, NULL), 0);
				CHECK_INT(index_search(or, nq, q, K, so, io, NULL), 0);
				for (size_t i = 0; i < nq * K; i++)
					bad_oracle += ia[i] != io[i] ||
					              fabsf(sa[i] - so[i]) > 1e-5f * fmaxf(1.0f, fabsf(so[i]));
				for (unsigned t = 2; t <= 3; t++) {
					ix->threads = t;
					CHECK_INT(index_search(ix, nq, q, K, sb, ib, NULL), 0);
					bad += memcmp(ia, ib, nq * K * sizeof *ia) != 0 ||
					       memcmp(sa, sb, nq * K * sizeof *sa) != 0;
				}
			}
		}
		/* 2 rounds x 3 query counts x (2 and 3 ranges); nq 2 and 3 over 6 Mi floats each
		 * still split in 3 */
		CHECK_INT((long long)(index_split_scans() - splits), 2 * 3 * 2);
		/* k past the end: every vector once, best first, then the empty slots */
		ix->threads = 1;
		CHECK_INT(index_search(ix, 1, q, bigk, sa, ia, NULL), 0);
		ix->threads = 2;
		CHECK_INT(index_search(ix, 1, q, bigk, sb, ib, NULL), 0);
		CHECK_INT(index_search(or, 1, q, bigk, so, io, NULL), 0);
		for (size_t i = 0; i < bigk; i++) {
			bad += ia[i] != ib[i] || sa[i] != sb[i];
			bad += i > 0 && sb[i] > sb[i - 1];
			/* the same score sequence; near-ties may come in another order */
			bad_oracle += !(fabsf(sb[i] - so[i]) <= 1e-5f * fmaxf(1.0f, fabsf(so[i]))) &&
			              !(isinf(sb[i]) && isinf(so[i]));
		}
		CHECK_INT(ib[N - 3 - 1] >= 0, 1);
		CHECK_INT(ib[N - 3], -1);
		CHECK(isinf(sb[bigk - 1]) && sb[bigk - 1] < 0);
		qsort(ib, bigk, sizeof *ib, cmp_id);
		qsort(io, bigk, sizeof *io, cmp_id);
		bad_oracle += memcmp(ib, io, bigk * sizeof *ib) != 0; /* the same ids */
		if (bad || bad_oracle)
			harness_fail(__FILE__, __LINE__,
			             "metric %s: %zu answers differ between splits, %zu from the oracle",
			             index_metric_name((enum index_metric)m), bad, bad_oracle);
		index_free(ix);
		index_free(or);
	}
	free(x);
	free(q);
	free(sa);
	free(sb);
	free(so);
	free(ia);
	free(ib);
	free(io);
}

/* Training runs in a child process: FAISS's SIGFPE on PQ1x64 (2^64 centroids) fails the
 * training with the signal, and this process goes on; a good IVF trains in the child and
 * comes back trained; index_faiss_train_rows judges factory strings before FAISS does. */
static void test_train_isolated(void)
{
	float x[2 * 4] = {1, 0, 0, 0, 0, 1, 0, 0};
	float y[64 * 4];
	struct index *ix = NULL;
	struct err e = {0};
	uint64_t rows = 99;
	float dist[1];
	int64_t id[1];
	int64_t ids[64];

	CHECK_INT(index_create(&ix, &index_faiss_ops, 4, INDEX_L2, "PQ1x64", &e), 0);
	CHECK(!index_is_trained(ix));
	CHECK_INT(index_train(ix, 2, x, &e), ERR_INVALID);
	CHECK_STR(e.slug, "train_crashed");
	CHECK(strstr(e.detail, "signal 8") != NULL);
	CHECK(!index_is_trained(ix));
	index_free(ix);
	ix = NULL;

	for (int i = 0; i < 64; i++) {
		for (int k = 0; k < 4; k++)
			y[i * 4 + k] = (float)((i * 7 + k * 13) % 17) - 8.0f;
		ids[i] = 1000 + i;
	}
	CHECK_INT(index_create(&ix, &index_faiss_ops, 4, INDEX_L2, "IVF4,Flat", &e), 0);
	CHECK_INT(index_train(ix, 64, y, &e), 0);
	CHECK(index_is_trained(ix));
	CHECK_INT(index_add(ix, 64, y, ids, &e), 0);
	CHECK_INT(index_set_param(ix, "nprobe", 4, &e), 0);
	CHECK_INT(index_search(ix, 1, y + 5 * 4, 1, dist, id, &e), 0);
	CHECK_INT(id[0], 1005);
	index_free(ix);

	CHECK_INT(index_faiss_train_rows("HNSW32", &rows, &e), 0);
	CHECK_INT(rows, 0);
	CHECK_INT(index_faiss_train_rows("IVF1024,PQ16x8", &rows, &e), 0);
	CHECK_INT(rows, 1024);
	CHECK_INT(index_faiss_train_rows("OPQ16,IVF64,PQ16x12", &rows, &e), 0);
	CHECK_INT(rows, 4096);
	CHECK_INT(index_faiss_train_rows("PQ8", &rows, &e), 0);
	CHECK_INT(rows, 256);
	memset(&e, 0, sizeof e); /* the first error set stays: start afresh */
	CHECK_INT(index_faiss_train_rows("PQ1x64", &rows, &e), ERR_INVALID);
	CHECK_STR(e.slug, "bad_factory");
	CHECK_INT(index_faiss_train_rows("PQ1x17", &rows, &e), ERR_INVALID);
	CHECK_INT(index_faiss_train_rows("IVF0,Flat", &rows, &e), ERR_INVALID);
	CHECK_INT(index_faiss_train_rows("IVF99999999999999999999,Flat", &rows, &e), ERR_INVALID);
}

int main(void)
{
	HARNESS_RUN(test_faiss_build);
	HARNESS_RUN(test_flat_equals_oracle);
	HARNESS_RUN(test_recall);
	HARNESS_RUN(test_remove_save_load);
	HARNESS_RUN(test_wrappers);
	HARNESS_RUN(test_exact_scores);
	HARNESS_RUN(test_can_remove);
	HARNESS_RUN(test_split_scan);
	HARNESS_RUN(test_train_isolated);
	return harness_done();
}
