/* SPDX-License-Identifier: MIT */
/* Tests of the id-hash sample of filters/kmeans.c (param "sample": "id_hash", the sample a
 * cluster's shards and one daemon draw alike): the hash against values computed in Python
 * (tests/integration/test_cluster_models.py has the same function), the sample against a
 * brute-force sort, whatever the order of the offers, and the smallest of the shards' samples
 * equal to one sample of everything. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/kmeans.h"
#include "tests/harness.h"

#define N 1000
#define CAP 50
#define DIM 3

struct rec {
	uint64_t h;
	char id[16];
};

static int rec_cmp(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;

	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	return strcmp(x->id, y->id);
}

static void test_hash_vectors(void)
{
	CHECK(kmeans_id_hash("r0000", 5, 7) == 0xd207899b51ddb14cull);
	CHECK(kmeans_id_hash("", 0, 1234) == 0xf99fb0027db7e851ull);
	CHECK(kmeans_id_hash("abc", 3, 0) == 0xd90ce9636b103e03ull);
	CHECK(kmeans_id_hash("abc", 3, 1) != kmeans_id_hash("abc", 3, 0));
}

/* Offer recs[lo..hi) in the order perm gives to s; vector = (i, h low bits, 1). */
static int offer(struct kmeans_idsample *s, const struct rec *recs, const size_t *perm,
                 size_t lo, size_t hi)
{
	for (size_t j = lo; j < hi; j++) {
		const struct rec *r = &recs[perm[j]];
		float v[DIM] = {(float)perm[j], (float)(r->h & 0xff), 1};

		if (kmeans_idsample_add(s, r->h, r->id, strlen(r->id), v, NULL) != 0)
			return -1;
	}
	return 0;
}

static void test_sample_is_the_smallest(void)
{
	static struct rec recs[N], sorted[N];
	static size_t perm[N];
	struct kmeans_idsample s;
	uint64_t rng = 42;
	float *x = NULL;

	for (size_t i = 0; i < N; i++) {
		snprintf(recs[i].id, sizeof recs[i].id, "id-%zu", i);
		recs[i].h = kmeans_id_hash(recs[i].id, strlen(recs[i].id), 9);
		if (i % 97 == 0 && i > 0) /* equal hashes: the id breaks the tie */
			recs[i].h = recs[i - 1].h;
		perm[i] = i;
	}
	for (size_t i = N - 1; i > 0; i--) { /* a shuffled offer order */
		size_t j = kmeans_rand(&rng) % (i + 1), t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	memcpy(sorted, recs, sizeof sorted);
	qsort(sorted, N, sizeof *sorted, rec_cmp);
	CHECK_INT(kmeans_idsample_init(&s, DIM, CAP, 9, NULL), 0);
	CHECK_INT(offer(&s, recs, perm, 0, N), 0);
	CHECK_INT(s.n, CAP);
	CHECK_INT(kmeans_idsample_sorted(&s, &x, NULL), 0);
	for (size_t i = 0; i < CAP; i++) {
		CHECK_STR(s.id[s.ord[i]], sorted[i].id);
		CHECK(s.h[s.ord[i]] == sorted[i].h);
		CHECK_INT((long long)x[i * DIM + 2], 1);
		CHECK_STR(recs[(size_t)x[i * DIM]].id, sorted[i].id); /* its own vector */
	}
	free(x);
	kmeans_idsample_free(&s);
}

/* Three "shards" each keep their CAP smallest; the CAP smallest of their union is the
 * sample of everything. */
static void test_shards_merge_to_the_whole(void)
{
	static struct rec recs[N], all[3 * CAP];
	static size_t perm[N];
	struct kmeans_idsample s[3];
	size_t m = 0;

	for (size_t i = 0; i < N; i++) {
		snprintf(recs[i].id, sizeof recs[i].id, "r%04zu", i);
		recs[i].h = kmeans_id_hash(recs[i].id, strlen(recs[i].id), 3);
		perm[i] = i;
	}
	for (int k = 0; k < 3; k++) {
		CHECK_INT(kmeans_idsample_init(&s[k], DIM, CAP, 3, NULL), 0);
		for (size_t i = 0; i < N; i++) /* shard k holds every record with i % 3 == k */
			if (i % 3 == (size_t)k)
				CHECK_INT(offer(&s[k], recs, perm, i, i + 1), 0);
		for (size_t i = 0; i < s[k].n; i++) {
			all[m].h = s[k].h[i];
			snprintf(all[m++].id, sizeof all[0].id, "%s", s[k].id[i]);
		}
		kmeans_idsample_free(&s[k]);
	}
	qsort(all, m, sizeof *all, rec_cmp);
	qsort(recs, N, sizeof *recs, rec_cmp);
	for (size_t i = 0; i < CAP; i++)
		CHECK_STR(all[i].id, recs[i].id);
}

int main(void)
{
	HARNESS_RUN(test_hash_vectors);
	HARNESS_RUN(test_sample_is_the_smallest);
	HARNESS_RUN(test_shards_merge_to_the_whole);
	return harness_done();
}
