/* SPDX-License-Identifier: MIT */
/* flat: exact search by brute force in plain C, the oracle the FAISS implementation is
 * tested against. Owns a growing array of vectors and their ids; search scans all of them
 * (one dot product or squared distance per vector, in double) and keeps the k best per query
 * in a small sorted buffer, ties by the smaller id. Remove swaps the last vector in. Save and
 * load use a small binary file (magic, dim, count, ids, vectors; little-endian host order
 * is assumed, which is what winnow runs on). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "index/index.h"

#define FLAT_MAGIC "WNFLAT1\n"

struct flat {
	struct index base;
	float *x;
	int64_t *ids;
	size_t n, cap;
};

static int flat_create(struct index **out, uint32_t dim, enum index_metric metric,
                       const char *factory, struct err *e)
{
	struct flat *f;

	(void)dim;
	(void)metric;
	if (strcmp(factory, "Flat") != 0)
		return err_set(e, ERR_INVALID, "bad_factory",
		               "the brute-force index only does \"Flat\", not \"%s\"", factory);
	if ((f = calloc(1, sizeof *f)) == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	*out = &f->base;
	return 0;
}

static int grow(struct flat *f, size_t need, uint32_t dim)
{
	size_t cap = f->cap ? f->cap : 1024;
	float *x;
	int64_t *ids;

	if (need <= f->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	x = realloc(f->x, cap * dim * sizeof *x);
	if (x == NULL)
		return ERR_NOMEM;
	f->x = x;
	ids = realloc(f->ids, cap * sizeof *ids);
	if (ids == NULL)
		return ERR_NOMEM;
	f->ids = ids;
	f->cap = cap;
	return 0;
}

static int flat_add(struct index *ix, size_t n, const float *x, const int64_t *ids,
                    struct err *e)
{
	struct flat *f = (struct flat *)ix;

	if (grow(f, f->n + n, ix->dim) != 0)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	memcpy(f->x + f->n * ix->dim, x, n * ix->dim * sizeof *x);
	memcpy(f->ids + f->n, ids, n * sizeof *ids);
	f->n += n;
	return 0;
}

static int flat_remove(struct index *ix, size_t n, const int64_t *ids, size_t *removed,
                       struct err *e)
{
	struct flat *f = (struct flat *)ix;
	size_t gone = 0;

	(void)e;
	for (size_t i = 0; i < f->n;) {
		int hit = 0;

		for (size_t k = 0; k < n && !hit; k++)
			hit = f->ids[i] == ids[k];
		if (!hit) {
			i++;
			continue;
		}
		f->n--;
		f->ids[i] = f->ids[f->n];
		memmove(f->x + i * ix->dim, f->x + f->n * ix->dim, ix->dim * sizeof *f->x);
		gone++;
	}
	if (removed != NULL)
		*removed = gone;
	return 0;
}

/* Is (s, id) better than (t, jd)? Higher similarity or lower distance; ties: smaller id. */
static int better(int dist, double s, int64_t id, double t, int64_t jd)
{
	if (s != t)
		return dist ? s < t : s > t;
	return id < jd;
}

static int flat_search(const struct index *ix, size_t nq, const float *q, size_t k,
                       float *out, int64_t *ids, struct err *e)
{
	const struct flat *f = (const struct flat *)ix;
	int dist = ix->metric == INDEX_L2;
	double *best = malloc(k * sizeof *best);

	if (best == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	for (size_t qi = 0; qi < nq; qi++) {
		const float *qv = q + qi * ix->dim;
		int64_t *bid = ids + qi * k;
		size_t have = 0;

		for (size_t i = 0; i < f->n; i++) {
			const float *xv = f->x + i * ix->dim;
			double s = 0;
			size_t at;

			for (uint32_t d = 0; d < ix->dim; d++) {
				if (dist) {
					double t = (double)qv[d] - xv[d];

					s += t * t;
				} else {
					s += (double)qv[d] * xv[d];
				}
			}
			if (have == k && !better(dist, s, f->ids[i], best[k - 1], bid[k - 1]))
				continue;
			at = have < k ? have++ : k - 1;
			while (at > 0 && better(dist, s, f->ids[i], best[at - 1], bid[at - 1])) {
				best[at] = best[at - 1];
				bid[at] = bid[at - 1];
				at--;
			}
			best[at] = s;
			bid[at] = f->ids[i];
		}
		for (size_t j = 0; j < k; j++) {
			out[qi * k + j] = j < have ? (float)best[j] : (dist ? INFINITY : -INFINITY);
			if (j >= have)
				bid[j] = -1;
		}
	}
	free(best);
	return 0;
}

static int flat_save(const struct index *ix, const char *path, struct err *e)
{
	const struct flat *f = (const struct flat *)ix;
	FILE *fp = fopen(path, "wb");
	uint64_t hdr[2] = {ix->dim, f->n};
	int ok;

	if (fp == NULL)
		return err_set(e, ERR_IO, "index_save", "cannot write %s", path);
	ok = fwrite(FLAT_MAGIC, 8, 1, fp) == 1 && fwrite(hdr, sizeof hdr, 1, fp) == 1 &&
	     (f->n == 0 || (fwrite(f->ids, sizeof *f->ids, f->n, fp) == f->n &&
	                    fwrite(f->x, sizeof *f->x * ix->dim, f->n, fp) == f->n));
	if (fclose(fp) != 0 || !ok)
		return err_set(e, ERR_IO, "index_save", "cannot write %s", path);
	return 0;
}

static int flat_load(struct index **out, const char *path, uint32_t dim, enum index_metric metric,
                     struct err *e)
{
	struct flat *f = NULL;
	FILE *fp = fopen(path, "rb");
	char magic[8];
	uint64_t hdr[2];
	int rc = 0;

	(void)metric;
	if (fp == NULL)
		return err_set(e, ERR_NOT_FOUND, "index_missing", "no index file %s", path);
	if (fread(magic, 8, 1, fp) != 1 || memcmp(magic, FLAT_MAGIC, 8) != 0 ||
	    fread(hdr, sizeof hdr, 1, fp) != 1 || hdr[0] != dim) {
		rc = err_set(e, ERR_INVALID, "index_corrupt", "%s is not a flat index of dim %u", path,
		             (unsigned)dim);
		goto out;
	}
	if ((f = calloc(1, sizeof *f)) == NULL || grow(f, hdr[1] ? hdr[1] : 1, dim) != 0) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	f->base.dim = dim;
	if (hdr[1] > 0 && (fread(f->ids, sizeof *f->ids, hdr[1], fp) != hdr[1] ||
	                   fread(f->x, sizeof *f->x * dim, hdr[1], fp) != hdr[1])) {
		rc = err_set(e, ERR_INVALID, "index_corrupt", "%s is truncated", path);
		goto out;
	}
	f->n = hdr[1];
out:
	fclose(fp);
	if (rc != 0) {
		if (f != NULL) {
			free(f->x);
			free(f->ids);
			free(f);
		}
		return rc;
	}
	*out = &f->base;
	return 0;
}

static size_t flat_count(const struct index *ix)
{
	return ((const struct flat *)ix)->n;
}

static void flat_destroy(struct index *ix)
{
	struct flat *f = (struct flat *)ix;

	free(f->x);
	free(f->ids);
	free(f);
}

const struct index_ops index_flat_ops = {
	.name = "flat",
	.create = flat_create,
	.add = flat_add,
	.remove = flat_remove,
	.search = flat_search,
	.save = flat_save,
	.load = flat_load,
	.count = flat_count,
	.destroy = flat_destroy,
};
