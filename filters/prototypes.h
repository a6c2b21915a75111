/* SPDX-License-Identifier: MIT */
/* prototypes: the SSP prototype filter type (filters/prototypes.c) and what other types may
 * read of an instance: its centroids (semdedup reuses them). */
#ifndef WINNOW_PROTOTYPES_H
#define WINNOW_PROTOTYPES_H

#include <stdint.h>

struct filter;

/* The centroids of a fitted prototypes instance f: *centroids borrowed (valid while f
 * lives), k * dim unit vectors. ERR_INVALID when f is not a fitted prototypes instance. */
int prototypes_centroids(const struct filter *f, const float **centroids, uint32_t *k,
                         uint32_t *dim);

#endif
