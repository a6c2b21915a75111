/* SPDX-License-Identifier: MIT */
/* kmeans: spherical k-means and assignment over the FAISS C API (see kmeans.h). */
#include "filters/kmeans.h"

#include <faiss/c_api/Clustering_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "filters/filter.h"

/* Rows per FAISS search call: bounds the k-wide distance buffer FAISS allocates. */
#define ASSIGN_BATCH 16384

struct kmeans_index {
	FaissIndex *ix;
	uint32_t k, dim;
};

static int faiss_fail(struct err *e, int code, const char *slug, const char *what)
{
	const char *m = faiss_get_last_error();

	return err_set(e, code, slug, "%s: %s", what, m != NULL ? m : "FAISS failed");
}

uint64_t kmeans_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

int kmeans_normalise(float *v, uint32_t dim)
{
	double s = 0;

	for (uint32_t i = 0; i < dim; i++)
		s += (double)v[i] * v[i];
	if (!(s > 0) || !isfinite(s))
		return 0;
	s = 1.0 / sqrt(s);
	for (uint32_t i = 0; i < dim; i++)
		v[i] = (float)(v[i] * s);
	return 1;
}

int kmeans_params_parse(const json_t *params, uint32_t dim, struct kmeans_params *p,
                        struct err *e)
{
	const json_t *c = json_object_get(params, "centroids");
	double k = KMEANS_K, niter = KMEANS_NITER, seed = KMEANS_SEED, ppc = KMEANS_MAX_PPC;
	int rc;

	memset(p, 0, sizeof *p);
	if (c != NULL) {
		size_t i, n = json_array_size(c);
		json_t *row;

		if (!json_is_array(c) || n == 0 || n > KMEANS_MAX_K)
			return err_set(e, ERR_INVALID, "bad_param",
			               "param 'centroids' must be a non-empty array of vectors");
		k = (double)n;
		p->given = malloc(n * dim * sizeof *p->given);
		if (p->given == NULL)
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		json_array_foreach(c, i, row) {
			float *v = p->given + i * dim;

			if (!json_is_array(row) || json_array_size(row) != dim) {
				rc = err_set(e, ERR_INVALID, "bad_param",
				             "param 'centroids': entry %zu must be an array of %u numbers",
				             i, dim);
				goto fail;
			}
			for (uint32_t j = 0; j < dim; j++) {
				const json_t *x = json_array_get(row, j);

				if (!json_is_number(x) || !isfinite(json_number_value(x))) {
					rc = err_set(e, ERR_INVALID, "bad_param",
					             "param 'centroids': entry %zu has a value that is not "
					             "a finite number",
					             i);
					goto fail;
				}
				v[j] = (float)json_number_value(x);
			}
			if (!kmeans_normalise(v, dim)) {
				rc = err_set(e, ERR_INVALID, "bad_param",
				             "param 'centroids': entry %zu is a zero vector", i);
				goto fail;
			}
		}
		if (json_object_get(params, "k") != NULL &&
		    (!json_is_integer(json_object_get(params, "k")) ||
		     json_integer_value(json_object_get(params, "k")) != (json_int_t)n)) {
			rc = err_set(e, ERR_INVALID, "bad_param",
			             "param 'k' must equal the number of centroids given (%zu)", n);
			goto fail;
		}
	}
	if ((rc = filter_param_number(params, "k", 1, KMEANS_MAX_K, 1, &k, e)) != 0 ||
	    (rc = filter_param_number(params, "iterations", 1, 10000, 1, &niter, e)) != 0 ||
	    (rc = filter_param_number(params, "seed", 0, 2147483647, 1, &seed, e)) != 0 ||
	    (rc = filter_param_number(params, "max_points_per_centroid", 1, 1 << 24, 1, &ppc,
	                              e)) != 0)
		goto fail;
	{
		static const char *const samples[] = {"reservoir", "id_hash", NULL};
		unsigned smp = 0;

		if ((rc = filter_param_choice(params, "sample", samples, &smp, e)) != 0)
			goto fail;
		p->id_sample = smp == 1;
	}
	p->k = (uint32_t)k;
	p->niter = (int)niter;
	p->seed = (int)seed;
	p->max_ppc = (int)ppc;
	return 0;
fail:
	kmeans_params_free(p);
	return rc;
}

void kmeans_params_free(struct kmeans_params *p)
{
	free(p->given);
	p->given = NULL;
}

int kmeans_sample_init(struct kmeans_sample *s, uint32_t dim, size_t cap, int seed,
                       struct err *e)
{
	memset(s, 0, sizeof *s);
	s->dim = dim;
	s->cap = cap;
	s->rng = (uint64_t)seed * 0x2545f4914f6cdd1dull + 1;
	/* grown on demand: a small pool never allocates the whole capacity */
	s->alloc = cap < 1024 ? (cap ? cap : 1) : 1024;
	s->x = malloc(s->alloc * dim * sizeof *s->x);
	if (s->x == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	return 0;
}

void kmeans_sample_add(struct kmeans_sample *s, const float *v)
{
	size_t at;

	s->seen++;
	if (s->n < s->cap) {
		if (s->n == s->alloc) {
			size_t ncap = s->alloc * 2 < s->cap ? s->alloc * 2 : s->cap;
			float *p = realloc(s->x, ncap * s->dim * sizeof *p);

			if (p == NULL) {
				s->cap = s->n; /* keep what we have: a smaller sample */
				return;
			}
			s->x = p;
			s->alloc = ncap;
		}
		at = s->n++;
	} else {
		uint64_t j = kmeans_rand(&s->rng) % s->seen;

		if (j >= s->cap)
			return;
		at = (size_t)j;
	}
	memcpy(s->x + at * s->dim, v, s->dim * sizeof *v);
}

void kmeans_sample_free(struct kmeans_sample *s)
{
	free(s->x);
	s->x = NULL;
}

uint64_t kmeans_id_hash(const char *id, size_t len, int seed)
{
	uint64_t h = 1469598103934665603ull, st;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)id[i]) * 1099511628211ull;
	st = h ^ ((uint64_t)(uint32_t)seed * 0x9e3779b97f4a7c15ull);
	return kmeans_rand(&st);
}

int kmeans_idsample_init(struct kmeans_idsample *s, uint32_t dim, size_t cap, int seed,
                         struct err *e)
{
	memset(s, 0, sizeof *s);
	s->dim = dim;
	s->cap = cap;
	s->seed = seed;
	return cap == 0 ? err_set(e, ERR_INVALID, "bad_param", "an empty sample") : 0;
}

/* (h, id) of slot a before slot b: -1, 0, 1. */
static int ids_cmp(const struct kmeans_idsample *s, size_t a, size_t b)
{
	if (s->h[a] != s->h[b])
		return s->h[a] < s->h[b] ? -1 : 1;
	return strcmp(s->id[a], s->id[b]);
}

static void heap_down(struct kmeans_idsample *s, size_t at)
{
	for (;;) {
		size_t l = 2 * at + 1, r = l + 1, big = at, t;

		if (l < s->n && ids_cmp(s, s->ord[l], s->ord[big]) > 0)
			big = l;
		if (r < s->n && ids_cmp(s, s->ord[r], s->ord[big]) > 0)
			big = r;
		if (big == at)
			return;
		t = s->ord[at];
		s->ord[at] = s->ord[big];
		s->ord[big] = t;
		at = big;
	}
}

static int idsample_grow(struct kmeans_idsample *s, struct err *e)
{
	size_t nc = s->alloc ? s->alloc * 2 : 256;
	void *a, *b, *c, *d;

	if (nc > s->cap)
		nc = s->cap;
	a = realloc(s->h, nc * sizeof *s->h);
	s->h = a ? a : s->h;
	b = realloc(s->id, nc * sizeof *s->id);
	s->id = b ? b : s->id;
	c = realloc(s->x, nc * s->dim * sizeof *s->x);
	s->x = c ? c : s->x;
	d = realloc(s->ord, nc * sizeof *s->ord);
	s->ord = d ? d : s->ord;
	if (!(a && b && c && d))
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	s->alloc = nc;
	return 0;
}

/* id (len bytes) against the NUL-terminated b, bytewise: <0, 0, >0. */
static int id_cmp(const char *id, size_t len, const char *b)
{
	size_t bl = strlen(b);
	int c = memcmp(id, b, len < bl ? len : bl);

	return c != 0 ? c : (len > bl) - (len < bl);
}

int kmeans_idsample_add(struct kmeans_idsample *s, uint64_t h, const char *id, size_t len,
                        const float *v, struct err *e)
{
	char *copy;
	size_t slot, at;
	int rc;

	if (s->n == s->cap) {
		size_t top = s->ord[0];

		if (h != s->h[top] ? h > s->h[top] : id_cmp(id, len, s->id[top]) >= 0)
			return 0; /* not among the cap smallest */
		if ((copy = strndup(id, len)) == NULL)
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		free(s->id[top]);
		s->h[top] = h;
		s->id[top] = copy;
		memcpy(s->x + top * s->dim, v, s->dim * sizeof *v);
		heap_down(s, 0);
		return 0;
	}
	if (s->n == s->alloc && (rc = idsample_grow(s, e)) != 0)
		return rc;
	if ((copy = strndup(id, len)) == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	slot = s->n;
	s->h[slot] = h;
	s->id[slot] = copy;
	memcpy(s->x + slot * s->dim, v, s->dim * sizeof *v);
	at = s->n++;
	s->ord[at] = slot;
	while (at > 0 && ids_cmp(s, s->ord[(at - 1) / 2], s->ord[at]) < 0) {
		size_t up = (at - 1) / 2, t = s->ord[at];

		s->ord[at] = s->ord[up];
		s->ord[up] = t;
		at = up;
	}
	return 0;
}

struct keyed {
	uint64_t h;
	const char *id;
	size_t slot;
};

static int keyed_cmp(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;

	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	return strcmp(x->id, y->id);
}

int kmeans_idsample_sorted(struct kmeans_idsample *s, float **x, struct err *e)
{
	float *out = malloc((s->n + 1) * s->dim * sizeof *out);
	struct keyed *k = malloc((s->n + 1) * sizeof *k);

	if (out == NULL || k == NULL) {
		free(out);
		free(k);
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	for (size_t i = 0; i < s->n; i++)
		k[i] = (struct keyed){s->h[i], s->id[i], i};
	if (s->n > 1)
		qsort(k, s->n, sizeof *k, keyed_cmp);
	for (size_t i = 0; i < s->n; i++) {
		s->ord[i] = k[i].slot;
		memcpy(out + i * s->dim, s->x + k[i].slot * s->dim, s->dim * sizeof *out);
	}
	free(k);
	*x = out;
	return 0;
}

void kmeans_idsample_free(struct kmeans_idsample *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->id[i]);
	free(s->h);
	free(s->id);
	free(s->x);
	free(s->ord);
	memset(s, 0, sizeof *s);
}

int kmeans_train(const struct kmeans_params *p, uint32_t dim, size_t n, const float *x,
                 float *centroids, struct err *e)
{
	FaissClusteringParameters cp;
	FaissClustering *c = NULL;
	FaissIndexFlatIP *ix = NULL;
	float *cent = NULL;
	size_t size = 0;
	int rc = 0;

	if (n < p->k)
		return err_set(e, ERR_INVALID, "too_few_points",
		               "k-means needs at least k = %u vectors, the pool has %zu", p->k, n);
	faiss_ClusteringParameters_init(&cp);
	cp.niter = p->niter;
	cp.spherical = 1;
	cp.seed = p->seed;
	cp.max_points_per_centroid = p->max_ppc;
	/* min_points_per_centroid only makes FAISS print a warning on stderr (not logfmt)
	 * when a cluster could be thin; the result does not depend on it */
	cp.min_points_per_centroid = 1;
	cp.verbose = 0;
	if (faiss_Clustering_new_with_params(&c, (int)dim, (int)p->k, &cp) != 0 ||
	    faiss_IndexFlatIP_new_with(&ix, (idx_t)dim) != 0) {
		rc = faiss_fail(e, ERR_INTERNAL, "kmeans", "FAISS k-means set-up failed");
		goto out;
	}
	if (faiss_Clustering_train(c, (idx_t)n, x, (FaissIndex *)ix) != 0) {
		rc = faiss_fail(e, ERR_INTERNAL, "kmeans", "FAISS k-means failed");
		goto out;
	}
	faiss_Clustering_centroids(c, &cent, &size);
	if (cent == NULL || size != (size_t)p->k * dim) {
		rc = err_set(e, ERR_INTERNAL, "kmeans", "FAISS returned %zu centroid values", size);
		goto out;
	}
	memcpy(centroids, cent, size * sizeof *cent);
	/* spherical k-means normalises each iteration; normalise again so that a centroid
	 * left empty by FAISS (split from another) is a unit vector too */
	for (uint32_t i = 0; i < p->k; i++)
		kmeans_normalise(centroids + (size_t)i * dim, dim);
out:
	if (ix != NULL)
		faiss_Index_free((FaissIndex *)ix);
	if (c != NULL)
		faiss_Clustering_free(c);
	return rc;
}

int kmeans_index_open(struct kmeans_index **out, const float *centroids, uint32_t k,
                      uint32_t dim, struct err *e)
{
	struct kmeans_index *ix = calloc(1, sizeof *ix);
	FaissIndexFlatIP *fi = NULL;

	if (ix == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if (faiss_IndexFlatIP_new_with(&fi, (idx_t)dim) != 0 ||
	    faiss_Index_add((FaissIndex *)fi, (idx_t)k, centroids) != 0) {
		int rc = faiss_fail(e, ERR_INTERNAL, "kmeans", "FAISS centroid index failed");

		if (fi != NULL)
			faiss_Index_free((FaissIndex *)fi);
		free(ix);
		return rc;
	}
	ix->ix = (FaissIndex *)fi;
	ix->k = k;
	ix->dim = dim;
	*out = ix;
	return 0;
}

void kmeans_index_free(struct kmeans_index *ix)
{
	if (ix == NULL)
		return;
	faiss_Index_free(ix->ix);
	free(ix);
}

int kmeans_assign(const struct kmeans_index *ix, size_t n, const float *x, uint32_t *label,
                  float *sim, struct err *e)
{
	idx_t *lab = malloc((n < ASSIGN_BATCH ? (n ? n : 1) : ASSIGN_BATCH) * sizeof *lab);

	if (lab == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	for (size_t at = 0; at < n; at += ASSIGN_BATCH) {
		size_t bn = n - at < ASSIGN_BATCH ? n - at : ASSIGN_BATCH;

		if (faiss_Index_search(ix->ix, (idx_t)bn, x + at * ix->dim, 1, sim + at, lab) != 0) {
			free(lab);
			return faiss_fail(e, ERR_INTERNAL, "kmeans", "FAISS assignment failed");
		}
		for (size_t i = 0; i < bn; i++)
			label[at + i] = lab[i] < 0 ? FILTER_NO_LABEL : (uint32_t)lab[i];
	}
	free(lab);
	return 0;
}
