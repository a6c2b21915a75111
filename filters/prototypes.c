/* SPDX-License-Identifier: MIT */
/* prototypes: the self-supervised prototype metric of Sorscher et al. 2022 (spec 3.1). The
 * score is the cosine distance of a record's (L2-normalised) vector to the nearest of k
 * centroids, d = 1 - cos(x, c_nearest): higher = harder, so top_fraction keeps the hard
 * records (data-abundant regime) and bottom_fraction the easy ones (data-scarce). The nearest
 * centroid is kept per row as the label "cluster" (a subset step can then keep the same
 * fraction inside every cluster: "per_cluster").
 *
 * The centroids are either given in params ("centroids", e.g. DataComp's precomputed ones:
 * the filter is fitted from its params) or fitted: spherical k-means (filters/kmeans.c,
 * FAISS) on a seeded reservoir sample of at most k * max_points_per_centroid vectors of the
 * space, so a large pool is never held in memory. Fitted centroids are the filter's saved
 * state (a blob with the version); records ingested later are scored on ingest (cheap)
 * against the same centroids until the next :score refits.
 *
 * Threading: score only reads the instance (the FAISS flat index is read-only there). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "filters/filter.h"
#include "filters/kmeans.h"
#include "filters/prototypes.h"
#include "filters/registry.h"
#include "store/store.h"
#include "lib/vec.h"

#define PRO_MAGIC "WNPRO1\n"
#define PRO_HDR 16 /* magic (7) + pad (1) + u32 k + u32 dim */

struct prototypes {
	struct filter base;
	uint32_t dim;
	struct kmeans_params kp;
	float *centroids; /* k * dim unit vectors once fitted */
	uint32_t k;
	struct kmeans_index *ix;
};

static int pro_set(struct prototypes *p, float *centroids, uint32_t k, struct err *e)
{
	struct kmeans_index *ix = NULL;
	int rc;

	if ((rc = kmeans_index_open(&ix, centroids, k, p->dim, e)) != 0) {
		free(centroids);
		return rc;
	}
	kmeans_index_free(p->ix);
	free(p->centroids);
	p->ix = ix;
	p->centroids = centroids;
	p->k = k;
	return 0;
}

static int pro_create(struct filter *f, const json_t *params, const struct store_schema *schema,
                      struct err *e)
{
	static const char *const known[] = {"space", "k", "iterations", "seed",
	                                    "max_points_per_centroid", "centroids", "sample", NULL};
	struct prototypes *p = (struct prototypes *)f;
	unsigned space = 0;
	int rc;

	if ((rc = filter_params_known(params, known, e)) != 0 ||
	    (rc = filter_param_space(params, "space", schema, 1, &space, e)) != 0)
		return rc;
	p->dim = schema->spaces[space].dim;
	if ((rc = kmeans_params_parse(params, p->dim, &p->kp, e)) != 0)
		return rc;
	f->ninputs = 1;
	f->inputs[0] = space;
	if (p->kp.id_sample)
		f->needs |= FILTER_NEEDS_ID;
	if (p->kp.given != NULL) {
		float *c = p->kp.given;

		p->kp.given = NULL;
		if ((rc = pro_set(p, c, p->kp.k, e)) != 0)
			return rc;
		f->fitted = 1; /* nothing to fit: the job only scores */
	}
	return 0;
}

/* The id-hash sample of the records scan gives (s initialised by the caller). */
static int id_sample(struct prototypes *p, struct filter_scan *scan, struct kmeans_idsample *s,
                     struct err *e)
{
	const struct filter_batch *b;
	float *v = malloc(p->dim * sizeof *v);
	int rc;

	if (v == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	while ((rc = filter_scan_next(scan, &b, e)) == 1)
		for (size_t i = 0; i < b->n; i++) {
			size_t len = strlen(b->ids[i]);

			if (!b->has_vec[0][i])
				continue;
			memcpy(v, b->vecs[0] + i * p->dim, p->dim * sizeof *v);
			if (kmeans_normalise(v, p->dim) &&
			    (rc = kmeans_idsample_add(s, kmeans_id_hash(b->ids[i], len, p->kp.seed),
			                              b->ids[i], len, v, e)) != 0)
				goto out;
		}
out:
	free(v);
	return rc < 0 ? rc : 0;
}

/* Fit on the id-hash sample (param "sample": "id_hash"): the centroids are normalised once
 * more, as a router's centroids are when a shard reads them from its params, so that one
 * daemon and a cluster score with the same floats. */
static int pro_fit_ids(struct prototypes *p, struct filter_scan *scan, struct err *e)
{
	struct kmeans_idsample s;
	float *x = NULL, *cent = NULL;
	int rc;

	if ((rc = kmeans_idsample_init(&s, p->dim, (size_t)p->kp.k * (size_t)p->kp.max_ppc,
	                               p->kp.seed, e)) != 0)
		return rc;
	if ((rc = id_sample(p, scan, &s, e)) != 0 ||
	    (rc = kmeans_idsample_sorted(&s, &x, e)) != 0)
		goto out;
	if ((cent = malloc((size_t)p->kp.k * p->dim * sizeof *cent)) == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	if ((rc = kmeans_train(&p->kp, p->dim, s.n, x, cent, e)) != 0)
		goto out;
	for (uint32_t i = 0; i < p->kp.k; i++)
		kmeans_normalise(cent + (size_t)i * p->dim, p->dim);
	rc = pro_set(p, cent, p->kp.k, e);
	cent = NULL;
out:
	free(cent);
	free(x);
	kmeans_idsample_free(&s);
	return rc;
}

/* The partial of a fit over the shards of a cluster: this daemon's id-hash sample,
 * {"format": "kmeans_sample/1", "dim", "cap", "items": [{"id", "h", "v"}, ...]} in (h, id)
 * order, h the hash in 16 hex digits. */
static int pro_partial(struct filter *f, struct filter_scan *scan, json_t **out, struct err *e)
{
	struct prototypes *p = (struct prototypes *)f;
	struct kmeans_idsample s;
	json_t *items = NULL;
	float *x = NULL;
	int rc;

	if (!p->kp.id_sample || p->kp.given != NULL || p->centroids != NULL)
		return err_set(e, ERR_INVALID, "no_partial",
		               "a prototypes partial is the id-hash sample of a fit: params "
		               "\"sample\": \"id_hash\" and no \"centroids\"");
	if ((rc = kmeans_idsample_init(&s, p->dim, (size_t)p->kp.k * (size_t)p->kp.max_ppc,
	                               p->kp.seed, e)) != 0)
		return rc;
	if ((rc = id_sample(p, scan, &s, e)) != 0 || (rc = kmeans_idsample_sorted(&s, &x, e)) != 0)
		goto out;
	items = json_array();
	for (size_t i = 0; items != NULL && i < s.n; i++) {
		size_t slot = s.ord[i];
		json_t *v = json_array();
		char hex[17];

		for (uint32_t j = 0; v != NULL && j < p->dim; j++)
			json_array_append_new(v, json_real(x[i * p->dim + j]));
		snprintf(hex, sizeof hex, "%016llx", (unsigned long long)s.h[slot]);
		json_array_append_new(items, json_pack("{s:s, s:s, s:o?}", "id", s.id[slot], "h", hex,
		                                       "v", v));
	}
	*out = items != NULL ? json_pack("{s:s, s:I, s:I, s:O}", "format", "kmeans_sample/1",
	                                 "dim", (json_int_t)p->dim, "cap",
	                                 (json_int_t)s.cap, "items", items)
	                     : NULL;
	if (*out == NULL)
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
out:
	json_decref(items);
	free(x);
	kmeans_idsample_free(&s);
	return rc;
}

static int pro_fit(struct filter *f, struct filter_scan *scan, struct err *e)
{
	struct prototypes *p = (struct prototypes *)f;
	struct kmeans_sample s;
	const struct filter_batch *b;
	float *v = malloc(p->dim * sizeof *v), *cent = NULL;
	size_t cap = (size_t)p->kp.k * (size_t)p->kp.max_ppc;
	int rc;

	if (v == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if (p->kp.id_sample) {
		free(v);
		return pro_fit_ids(p, scan, e);
	}
	if ((rc = kmeans_sample_init(&s, p->dim, cap, p->kp.seed, e)) != 0) {
		free(v);
		return rc;
	}
	while ((rc = filter_scan_next(scan, &b, e)) == 1) {
		for (size_t i = 0; i < b->n; i++) {
			if (!b->has_vec[0][i])
				continue;
			memcpy(v, b->vecs[0] + i * p->dim, p->dim * sizeof *v);
			if (kmeans_normalise(v, p->dim))
				kmeans_sample_add(&s, v);
		}
	}
	if (rc < 0)
		goto out;
	cent = malloc((size_t)p->kp.k * p->dim * sizeof *cent);
	if (cent == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	/* the new centroids replace the old ones only on success */
	if ((rc = kmeans_train(&p->kp, p->dim, s.n, s.x, cent, e)) != 0)
		goto out;
	rc = pro_set(p, cent, p->kp.k, e);
	cent = NULL;
out:
	free(cent);
	free(v);
	kmeans_sample_free(&s);
	return rc;
}

static int pro_save(const struct filter *f, void **blob, size_t *len, struct err *e)
{
	const struct prototypes *p = (const struct prototypes *)f;
	size_t n = PRO_HDR + (size_t)p->k * p->dim * 4;
	uint8_t *q = malloc(n);

	if (q == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	memset(q, 0, PRO_HDR);
	memcpy(q, PRO_MAGIC, 7);
	vec_le32_put(q + 8, p->k);
	vec_le32_put(q + 12, p->dim);
	/* little-endian f32, the only byte order winnow runs on (as the vector blocks) */
	memcpy(q + PRO_HDR, p->centroids, (size_t)p->k * p->dim * 4);
	*blob = q;
	*len = n;
	return 0;
}

static int pro_load(struct filter *f, const void *blob, size_t len, struct err *e)
{
	struct prototypes *p = (struct prototypes *)f;
	const uint8_t *q = blob;
	uint32_t k, dim;
	float *c;

	if (len < PRO_HDR || memcmp(q, PRO_MAGIC, 7) != 0)
		return err_set(e, ERR_INVALID, "bad_state", "prototypes state: bad header");
	k = vec_le32_get(q + 8);
	dim = vec_le32_get(q + 12);
	if (dim != p->dim || k == 0 || k > KMEANS_MAX_K || len != PRO_HDR + (size_t)k * dim * 4)
		return err_set(e, ERR_INVALID, "bad_state", "prototypes state: bad size");
	if ((c = malloc((size_t)k * dim * sizeof *c)) == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	memcpy(c, q + PRO_HDR, (size_t)k * dim * 4);
	return pro_set(p, c, k, e);
}

static int pro_score_label(const struct filter *f, const struct filter_batch *b, float *scores,
                           uint8_t *status, uint32_t *labels, struct err *e)
{
	const struct prototypes *p = (const struct prototypes *)f;
	float *x = malloc((b->n ? b->n : 1) * p->dim * sizeof *x);
	float *sim = malloc((b->n ? b->n : 1) * sizeof *sim);
	uint32_t *lab = malloc((b->n ? b->n : 1) * sizeof *lab);
	size_t *at = malloc((b->n ? b->n : 1) * sizeof *at);
	size_t m = 0;
	int rc = 0;

	if (x == NULL || sim == NULL || lab == NULL || at == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	for (size_t i = 0; i < b->n; i++) {
		scores[i] = NAN;
		status[i] = b->has_vec[0][i] ? FILTER_ZERO_VECTOR : FILTER_NO_VECTOR;
		if (labels != NULL)
			labels[i] = FILTER_NO_LABEL;
		if (!b->has_vec[0][i])
			continue;
		memcpy(x + m * p->dim, b->vecs[0] + i * p->dim, p->dim * sizeof *x);
		if (kmeans_normalise(x + m * p->dim, p->dim))
			at[m++] = i;
	}
	if (m > 0 && (rc = kmeans_assign(p->ix, m, x, lab, sim, e)) != 0)
		goto out;
	for (size_t j = 0; j < m; j++) {
		scores[at[j]] = 1.0f - sim[j];
		status[at[j]] = FILTER_SCORED;
		if (labels != NULL)
			labels[at[j]] = lab[j];
	}
out:
	free(x);
	free(sim);
	free(lab);
	free(at);
	return rc;
}

static int pro_score(const struct filter *f, const struct filter_batch *b, float *scores,
                     uint8_t *status, struct err *e)
{
	return pro_score_label(f, b, scores, status, NULL, e);
}

static void pro_destroy(struct filter *f)
{
	struct prototypes *p = (struct prototypes *)f;

	kmeans_index_free(p->ix);
	free(p->centroids);
	kmeans_params_free(&p->kp);
}

int prototypes_centroids(const struct filter *f, const float **centroids, uint32_t *k,
                         uint32_t *dim)
{
	const struct prototypes *p = (const struct prototypes *)f;

	if (f->ops != &prototypes_filter_ops || !f->fitted || p->centroids == NULL)
		return ERR_INVALID;
	*centroids = p->centroids;
	*k = p->k;
	*dim = p->dim;
	return 0;
}

const struct filter_ops prototypes_filter_ops = {
	.name = "prototypes",
	.summary = "cosine distance to the nearest k-means centroid (SSP prototypes; higher = "
	           "harder), cluster per record (Sorscher et al. 2022; docs/filters.md)",
	.size = sizeof(struct prototypes),
	.cheap = 1,
	.needs_fit = 1,
	.reasons = NULL,
	.create = pro_create,
	.fit = pro_fit,
	.save = pro_save,
	.load = pro_load,
	.score = pro_score,
	.destroy = pro_destroy,
	.label = "cluster",
	.score_label = pro_score_label,
	.partial = pro_partial,
};
