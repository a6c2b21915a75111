/* SPDX-License-Identifier: MIT */
/* semdedup: the SemDeDup filter type (filters/semdedup.c), its eps sweep, and the
 * order-dependent kernel (exported for the tests and the benchmark). */
#ifndef WINNOW_SEMDEDUP_H
#define WINNOW_SEMDEDUP_H

#include <stddef.h>
#include <stdint.h>

struct err;
struct filter;
typedef struct json_t json_t;

#define SEMDEDUP_NONE UINT32_MAX

/* The spec 3.2 rule's core for one chunk of m unit vectors z (borrowed, m * dim, row-major,
 * in processing order): maxsim[j] = max(0, max over i < j of z_i . z_j) and arg[j] the first
 * such i attaining it (SEMDEDUP_NONE when maxsim[j] is 0: j = 0, or no earlier item with a
 * positive cosine). Item j is a duplicate at eps iff maxsim[j] > 1 - eps; removed items
 * count as earlier items, as in the reference. Blocked Gram products (cblas_sgemm on
 * 512 x 512 tiles): O(m^2 dim) time, O(1) extra memory beyond one tile. maxsim and arg are
 * borrowed outputs of m entries. */
int semdedup_earlier_max(const float *z, size_t m, uint32_t dim, float *maxsim, uint32_t *arg,
                         struct err *e);

/* The order inside a cluster (param "order"). */
enum semdedup_order { SEMDEDUP_HARD, SEMDEDUP_EASY, SEMDEDUP_RANDOM };

/* One record of the dedup stage: id (borrowed), v (borrowed: its unit vector of dim floats),
 * cluster and sim (its cosine to that cluster's centroid) in; maxsim (the highest cosine to an
 * earlier record of its cluster chunk, 0 for none) and earlier (that record's index in the
 * array, SIZE_MAX for none) out. */
struct semdedup_rec {
	const char *id;
	const float *v;
	uint32_t cluster;
	float sim;
	float maxsim;
	size_t earlier;
};

/* What a dedup stage saw. */
struct semdedup_stats {
	size_t clusters, largest, chunks;
};

/* The dedup stage of the fit, shared by one daemon's fit and a router's (docs/scale.md): the n
 * records sorted by (cluster, then the order's key: 1 - sim descending for hard, ascending for
 * easy, kmeans_id_hash(id, seed) for random; then the id bytewise), each cluster cut into chunks
 * of at most max_cluster consecutive records, semdedup_earlier_max on each. Every key is a
 * function of the record alone, never of a row number, so the same records give the same
 * answer wherever they are stored. */
int semdedup_dedup(struct semdedup_rec *r, size_t n, uint32_t dim, unsigned order, int seed,
                   uint64_t max_cluster, struct semdedup_stats *st, struct err *e);

/* The cosine of unit vectors a and b (dim floats each) as the fit computes it: a sum in double,
 * in index order, rounded to float once (independent of any batching). */
float semdedup_cos(const float *a, const float *b, uint32_t dim);

/* The dedup params of a semdedup definition's params (borrowed): order, seed and
 * max_cluster_size with their defaults. ERR_INVALID naming a bad one. */
int semdedup_dedup_params(const json_t *params, unsigned *order, int *seed, uint64_t *max_cluster,
                          struct err *e);

/* For each of the n eps values (borrowed): kept[i] the records that a semdedup instance f
 * (fitted) would keep at eps[i]; *total the records its fit deduplicated. ERR_INVALID when f
 * is not a fitted semdedup instance. */
int semdedup_sweep(const struct filter *f, const double *eps, size_t n, uint64_t *kept,
                   uint64_t *total);

#endif
