/* SPDX-License-Identifier: MIT */
/* kmeans: spherical k-means and nearest-centroid assignment through the FAISS C API, shared
 * by the prototypes and semdedup filters (spec section 3): the params that configure it, a
 * seeded reservoir sample for large pools, training (faiss_Clustering with spherical = 1 over
 * an IndexFlatIP, as python's faiss.Kmeans(spherical=True) does) and an assignment index.
 *
 * Vectors given to kmeans_train and kmeans_assign must be L2-normalised (kmeans_normalise);
 * centroids are unit vectors, so an inner product is a cosine.
 *
 * Threading: kmeans_assign may be called concurrently on one index (FAISS flat search only
 * reads it); everything else belongs to one thread at a time. */
#ifndef WINNOW_KMEANS_H
#define WINNOW_KMEANS_H

#include <stddef.h>
#include <stdint.h>

struct err;
typedef struct json_t json_t;

/* Defaults (documented in docs/filters.md): k = 1000 (spec 3.1), FAISS's own niter (25),
 * seed (1234) and max_points_per_centroid (256, i.e. train on at most k * 256 points). */
#define KMEANS_K 1000
#define KMEANS_NITER 25
#define KMEANS_SEED 1234
#define KMEANS_MAX_PPC 256
#define KMEANS_MAX_K 1000000

struct kmeans_params {
	uint32_t k;
	int niter, seed, max_ppc;
	int id_sample; /* param "sample": 0 "reservoir" (by row order), 1 "id_hash" */
	/* k * dim unit vectors from params "centroids" (new; kmeans_params_free), or NULL */
	float *given;
};

/* Read "k", "iterations", "seed", "max_points_per_centroid" and "centroids" (an array of
 * arrays of dim numbers; normalised here; k then defaults to their count and must equal it)
 * from params (borrowed). ERR_INVALID naming the param. On success p owns p->given. */
int kmeans_params_parse(const json_t *params, uint32_t dim, struct kmeans_params *p,
                        struct err *e);
void kmeans_params_free(struct kmeans_params *p);

/* L2-normalise v (dim floats) in place; 0 when its norm is 0 or not finite (v untouched). */
int kmeans_normalise(float *v, uint32_t dim);

/* A reservoir sample (Vitter's algorithm R, seeded) of at most cap vectors of dim floats,
 * for training on a pool larger than k * max_points_per_centroid without holding it. */
struct kmeans_sample {
	uint32_t dim;
	size_t cap, n;  /* capacity, vectors held */
	size_t alloc;   /* vectors x has room for (grows up to cap) */
	uint64_t seen;  /* vectors offered */
	uint64_t rng;
	float *x;       /* cap * dim */
};
int kmeans_sample_init(struct kmeans_sample *s, uint32_t dim, size_t cap, int seed,
                       struct err *e);
/* Offer one vector (borrowed, dim floats). */
void kmeans_sample_add(struct kmeans_sample *s, const float *v);
void kmeans_sample_free(struct kmeans_sample *s);

/* The id-hash sample (param "sample": "id_hash"): the cap vectors whose records have the
 * smallest kmeans_id_hash (ties by id), in that order. It depends only on the records, never
 * on their rows, so the shards of a cluster can each keep their own cap smallest and a router
 * keep the cap smallest of those: the very sample one daemon holding every record draws. */
struct kmeans_idsample {
	uint32_t dim;
	size_t cap, n, alloc;
	uint64_t *h;  /* n hashes: a max-heap on (h, id) while adding; sorted by kmeans_idsample_sort */
	char **id;    /* n ids (new) */
	float *x;     /* n * dim */
	size_t *ord;  /* heap position -> slot of h/id/x */
	int seed;
};

/* splitmix64 of seed and FNV-1a of the id's bytes (len). */
uint64_t kmeans_id_hash(const char *id, size_t len, int seed);

int kmeans_idsample_init(struct kmeans_idsample *s, uint32_t dim, size_t cap, int seed,
                         struct err *e);
/* Offer the record id (len bytes) with vector v (dim floats, borrowed) and hash h. */
int kmeans_idsample_add(struct kmeans_idsample *s, uint64_t h, const char *id, size_t len,
                        const float *v, struct err *e);
/* Order the sample by (hash, id): s->ord[i] is the slot of the i-th; *x (new, n * dim) gets
 * the vectors in that order. */
int kmeans_idsample_sorted(struct kmeans_idsample *s, float **x, struct err *e);
void kmeans_idsample_free(struct kmeans_idsample *s);

/* Spherical k-means of the n unit vectors x (borrowed, n * dim) with p's k, niter, seed and
 * max_ppc (FAISS subsamples beyond k * max_ppc points). centroids (borrowed, k * dim) gets
 * unit vectors. ERR_INVALID (slug too_few_points) when n < k; ERR_INTERNAL with FAISS's
 * message when it fails. */
int kmeans_train(const struct kmeans_params *p, uint32_t dim, size_t n, const float *x,
                 float *centroids, struct err *e);

/* An IndexFlatIP over k centroids (copied). *out new (kmeans_index_free). */
struct kmeans_index;
int kmeans_index_open(struct kmeans_index **out, const float *centroids, uint32_t k,
                      uint32_t dim, struct err *e);
void kmeans_index_free(struct kmeans_index *ix);

/* For each of the n unit vectors x (borrowed, n * dim): label[i] the nearest centroid (the
 * highest inner product, FAISS's tie rule) and sim[i] that inner product. */
int kmeans_assign(const struct kmeans_index *ix, size_t n, const float *x, uint32_t *label,
                  float *sim, struct err *e);

/* splitmix64: the seeded generator used for samples and shuffles. */
uint64_t kmeans_rand(uint64_t *state);

#endif
