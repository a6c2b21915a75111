/* SPDX-License-Identifier: MIT */
/* index: the wrappers every caller goes through. They own the metric's conventions
 * (normalising for cosine, turning distances into higher-is-better scores) so that each
 * implementation only does its search. */
#include "index/index.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/par.h"
#include "lib/vec.h"

/* Sorted by name. */
static const struct index_ops *const impls[] = {&index_faiss_ops, &index_flat_ops};

const struct index_ops *index_impl_find(const char *name)
{
	for (size_t i = 0; name != NULL && i < sizeof impls / sizeof impls[0]; i++)
		if (strcmp(impls[i]->name, name) == 0)
			return impls[i];
	return NULL;
}

int index_metric_parse(const char *s, enum index_metric *out)
{
	static const char *const names[] = {"cosine", "ip", "l2"};

	for (int i = 0; s != NULL && i < 3; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum index_metric)i;
			return 0;
		}
	}
	return ERR_INVALID;
}

const char *index_metric_name(enum index_metric m)
{
	return m == INDEX_COSINE ? "cosine" : m == INDEX_IP ? "ip" : "l2";
}

/* "<prefix><digits>" exactly; "HNSW" alone too (FAISS's M 32). */
static int prefix_number(const char *tok, size_t len, const char *prefix)
{
	size_t n = strlen(prefix), i;

	if (len < n || strncmp(tok, prefix, n) != 0 || (len == n && strcmp(prefix, "HNSW") != 0))
		return 0;
	for (i = n; i < len && tok[i] >= '0' && tok[i] <= '9'; i++)
		;
	return i == len;
}

int index_exact_scores(const struct index *ix)
{
	char buf[INDEX_FACTORY_MAX + 1], *tok, *save = NULL;
	int exact = 1, stored = 0;

	if (ix->ops == &index_flat_ops)
		return 1;
	snprintf(buf, sizeof buf, "%s", ix->factory);
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		const char *hnsw = strstr(tok, "_HNSW");
		size_t len = strlen(tok);

		stored = 0;
		if (strcmp(tok, "IDMap") == 0 || strcmp(tok, "IDMap2") == 0)
			continue;
		if (strcmp(tok, "Flat") == 0 || prefix_number(tok, len, "HNSW")) {
			stored = 1; /* the vectors themselves */
			continue;
		}
		if (prefix_number(tok, len, "IVF") ||
		    (hnsw != NULL && prefix_number(tok, (size_t)(hnsw - tok), "IVF") &&
		     prefix_number(hnsw + 1, strlen(hnsw + 1), "HNSW")))
			continue; /* a coarse quantiser: the next token says how vectors are stored */
		exact = 0;    /* a transform (PCA, OPQ, ...) or a compressed code (PQ, SQ, ...) */
	}
	return exact && stored;
}

int index_can_remove(const struct index *ix)
{
	char buf[INDEX_FACTORY_MAX + 1], *tok, *save = NULL;

	if (ix->ops->remove == NULL)
		return 0;
	if (ix->ops == &index_flat_ops)
		return 1;
	snprintf(buf, sizeof buf, "%s", ix->factory);
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		/* A graph cannot remove. An IVF can, but not under the IDMap2 that index/faiss.c
		 * puts around every index: IDMap compacts its id map as if the inner index renumbered
		 * its vectors, which only the flat storages do, so from the second remove on it
		 * translates ids wrongly (another vector goes, or FAISS asserts and aborts). */
		if (strncmp(tok, "HNSW", 4) == 0 || strncmp(tok, "NSG", 3) == 0 ||
		    strncmp(tok, "NNDescent", 9) == 0 || strstr(tok, "IVF") != NULL ||
		    strncmp(tok, "IMI", 3) == 0)
			return 0;
	}
	return 1;
}

int index_create(struct index **out, const struct index_ops *ops, uint32_t dim,
                 enum index_metric metric, const char *factory, struct err *e)
{
	struct index *ix = NULL;
	int rc;

	if (dim == 0 || dim > 65536)
		return err_set(e, ERR_INVALID, "bad_dim", "an index needs 1 to 65536 dimensions");
	if (factory == NULL || factory[0] == '\0' || strlen(factory) > INDEX_FACTORY_MAX)
		return err_set(e, ERR_INVALID, "bad_factory",
		               "an index factory string is 1 to %d characters", INDEX_FACTORY_MAX);
	if ((rc = ops->create(&ix, dim, metric, factory, e)) != 0)
		return rc;
	ix->ops = ops;
	ix->dim = dim;
	ix->metric = metric;
	ix->threads = 0;
	snprintf(ix->factory, sizeof ix->factory, "%s", factory);
	*out = ix;
	return 0;
}

void index_free(struct index *ix)
{
	if (ix != NULL)
		ix->ops->destroy(ix);
}

/* x normalised for cosine into a new buffer (or x itself for other metrics: *tmp NULL).
 * One division a vector, not one a component: a 64-query batch of 784-d rows spent 2% of
 * the daemon's time here, before the search could start (issue 20). */
static int prepared(const struct index *ix, size_t n, const float *x, const float **out,
                    float **tmp, struct err *e)
{
	*tmp = NULL;
	*out = x;
	if (ix->metric != INDEX_COSINE || n == 0)
		return 0;
	*tmp = malloc(n * ix->dim * sizeof **tmp);
	if (*tmp == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	for (size_t i = 0; i < n; i++) {
		const float *v = x + i * ix->dim;
		float *o = *tmp + i * ix->dim;
		double ss = vec_f32_sq_norm(v, ix->dim), inv;

		if (!(ss > 0) || !isfinite(ss)) {
			free(*tmp);
			*tmp = NULL;
			return err_set(e, ERR_INVALID, "zero_vector",
			               "vector %zu has norm 0 (or is not finite): no cosine", i);
		}
		inv = 1.0 / sqrt(ss);
		for (uint32_t k = 0; k < ix->dim; k++)
			o[k] = (float)(v[k] * inv);
	}
	*out = *tmp;
	return 0;
}

int index_train(struct index *ix, size_t n, const float *x, struct err *e)
{
	const float *v;
	float *tmp;
	int rc;

	if (ix->ops->train == NULL)
		return 0;
	if ((rc = prepared(ix, n, x, &v, &tmp, e)) != 0)
		return rc;
	rc = ix->ops->train(ix, n, v, e);
	free(tmp);
	return rc;
}

int index_is_trained(const struct index *ix)
{
	return ix->ops->is_trained == NULL || ix->ops->is_trained(ix);
}

int index_add(struct index *ix, size_t n, const float *x, const int64_t *ids, struct err *e)
{
	const float *v;
	float *tmp;
	int rc;

	if (!index_is_trained(ix))
		return err_set(e, ERR_INVALID, "not_trained", "the index '%s' needs training first",
		               ix->factory);
	if ((rc = prepared(ix, n, x, &v, &tmp, e)) != 0)
		return rc;
	rc = n > 0 ? ix->ops->add(ix, n, v, ids, e) : 0;
	free(tmp);
	return rc;
}

int index_remove(struct index *ix, size_t n, const int64_t *ids, size_t *removed,
                 struct err *e)
{
	if (ix->ops->remove == NULL)
		return err_set(e, ERR_INVALID, "remove_unsupported",
		               "index '%s' cannot remove vectors", ix->factory);
	return ix->ops->remove(ix, n, ids, removed, e);
}

int index_search(const struct index *ix, size_t nq, const float *q, size_t k, float *scores,
                 int64_t *ids, struct err *e)
{
	const float *v;
	float *tmp;
	int rc;

	if (k == 0 || nq == 0)
		return 0;
	if ((rc = prepared(ix, nq, q, &v, &tmp, e)) != 0)
		return rc;
	rc = ix->ops->search(ix, nq, v, k, scores, ids, e);
	free(tmp);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < nq * k; i++) {
		if (ids[i] < 0)
			scores[i] = -INFINITY;
		else if (ix->metric == INDEX_L2)
			scores[i] = -scores[i];
	}
	return 0;
}

/* Searches running in this process now, and the split ones so far. */
static atomic_uint searching;
static atomic_ullong split_scans;

unsigned index_scan_begin(unsigned cap, size_t work)
{
	unsigned busy = atomic_fetch_add(&searching, 1), t = cap;

	if (t == 0)
		t = par_cpus();
	t = t > busy ? t - busy : 1;
	if (work / t < INDEX_SPLIT_MIN_FLOATS)
		t = (unsigned)(work / INDEX_SPLIT_MIN_FLOATS);
	if (t < 2)
		return 1;
	atomic_fetch_add(&split_scans, 1);
	return t;
}

void index_scan_end(void)
{
	atomic_fetch_sub(&searching, 1);
}

uint64_t index_split_scans(void)
{
	return atomic_load(&split_scans);
}

int index_set_param(struct index *ix, const char *name, double value, struct err *e)
{
	if (ix->ops->set_param == NULL)
		return err_set(e, ERR_INVALID, "bad_param", "index '%s' has no parameter '%s'",
		               ix->factory, name);
	return ix->ops->set_param(ix, name, value, e);
}

size_t index_count(const struct index *ix)
{
	return ix->ops->count(ix);
}

int index_save(const struct index *ix, const char *path, struct err *e)
{
	char tmp[4096];
	int rc;

	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		return err_set(e, ERR_INVALID, "bad_path", "index path too long");
	if ((rc = ix->ops->save(ix, tmp, e)) != 0) {
		remove(tmp);
		return rc;
	}
	if (rename(tmp, path) != 0) {
		remove(tmp);
		return err_set(e, ERR_IO, "index_save", "cannot rename %s to %s", tmp, path);
	}
	return 0;
}

int index_load(struct index **out, const struct index_ops *ops, const char *path, uint32_t dim,
               enum index_metric metric, const char *factory, struct err *e)
{
	struct index *ix = NULL;
	int rc = ops->load(&ix, path, dim, metric, e);

	if (rc != 0)
		return rc;
	ix->ops = ops;
	ix->dim = dim;
	ix->metric = metric;
	ix->threads = 0;
	snprintf(ix->factory, sizeof ix->factory, "%s", factory ? factory : "");
	*out = ix;
	return 0;
}
