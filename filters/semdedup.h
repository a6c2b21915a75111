/* SPDX-License-Identifier: MIT */
/* semdedup: the SemDeDup filter type (filters/semdedup.c), its eps sweep, and the
 * order-dependent kernel (exported for the tests and the benchmark). */
#ifndef WINNOW_SEMDEDUP_H
#define WINNOW_SEMDEDUP_H

#include <stddef.h>
#include <stdint.h>

struct err;
struct filter;

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

/* For each of the n eps values (borrowed): kept[i] the records that a semdedup instance f
 * (fitted) would keep at eps[i]; *total the records its fit deduplicated. ERR_INVALID when f
 * is not a fitted semdedup instance. */
int semdedup_sweep(const struct filter *f, const double *eps, size_t n, uint64_t *kept,
                   uint64_t *total);

#endif
