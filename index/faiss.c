/* SPDX-License-Identifier: MIT */
/* faiss: the index interface over the FAISS C API (build/faiss/libfaiss_c.a, made by
 * `make deps` from Debian's faiss source). Any index-factory string works ("Flat",
 * "HNSW32", "IVF1024,Flat", "IVF4096,PQ32", ...); it is wrapped in IDMap2 so that every
 * type takes the caller's ids. Cosine and inner product use METRIC_INNER_PRODUCT, L2 uses
 * METRIC_L2 (squared distances, negated by the wrapper).
 *
 * FAISS reports errors through return codes and faiss_get_last_error() (thread-local);
 * each is turned into an ERR_INVALID or ERR_INTERNAL with FAISS's message. */
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/err.h"
#include "index/index.h"

struct faiss {
	struct index base;
	FaissIndex *ix;
};

static int faiss_fail(struct err *e, int code, const char *slug, const char *what)
{
	const char *m = faiss_get_last_error();

	return err_set(e, code, slug, "%s: %s", what, m != NULL ? m : "FAISS failed");
}

static int fx_create(struct index **out, uint32_t dim, enum index_metric metric,
                     const char *factory, struct err *e)
{
	struct faiss *f = calloc(1, sizeof *f);
	char desc[INDEX_FACTORY_MAX + 16];

	if (f == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	snprintf(desc, sizeof desc, "%s%s", strncmp(factory, "IDMap", 5) == 0 ? "" : "IDMap2,",
	         factory);
	if (faiss_index_factory(&f->ix, (int)dim, desc,
	                        metric == INDEX_L2 ? METRIC_L2 : METRIC_INNER_PRODUCT) != 0) {
		free(f);
		return faiss_fail(e, ERR_INVALID, "bad_factory", "FAISS refused the index factory");
	}
	*out = &f->base;
	return 0;
}

static int fx_train(struct index *ix, size_t n, const float *x, struct err *e)
{
	struct faiss *f = (struct faiss *)ix;

	if (faiss_Index_train(f->ix, (idx_t)n, x) != 0)
		return faiss_fail(e, ERR_INVALID, "train_failed", "training failed");
	return 0;
}

static int fx_is_trained(const struct index *ix)
{
	return faiss_Index_is_trained(((const struct faiss *)ix)->ix);
}

static int fx_add(struct index *ix, size_t n, const float *x, const int64_t *ids, struct err *e)
{
	struct faiss *f = (struct faiss *)ix;

	if (faiss_Index_add_with_ids(f->ix, (idx_t)n, x, (const idx_t *)ids) != 0)
		return faiss_fail(e, ERR_INTERNAL, "index_add", "adding to the index failed");
	return 0;
}

static int fx_remove(struct index *ix, size_t n, const int64_t *ids, size_t *removed,
                     struct err *e)
{
	struct faiss *f = (struct faiss *)ix;
	FaissIDSelectorBatch *sel = NULL;
	size_t gone = 0;

	if (faiss_IDSelectorBatch_new(&sel, n, (const idx_t *)ids) != 0)
		return faiss_fail(e, ERR_NOMEM, "out_of_memory", "id selector");
	if (faiss_Index_remove_ids(f->ix, (const FaissIDSelector *)sel, &gone) != 0) {
		faiss_IDSelector_free((FaissIDSelector *)sel);
		return faiss_fail(e, ERR_INVALID, "remove_unsupported",
		                  "this index type cannot remove vectors");
	}
	faiss_IDSelector_free((FaissIDSelector *)sel);
	if (removed != NULL)
		*removed = gone;
	return 0;
}

static int fx_search(const struct index *ix, size_t nq, const float *q, size_t k, float *dist,
                     int64_t *ids, struct err *e)
{
	const struct faiss *f = (const struct faiss *)ix;

	if (faiss_Index_search(f->ix, (idx_t)nq, q, (idx_t)k, dist, (idx_t *)ids) != 0)
		return faiss_fail(e, ERR_INTERNAL, "index_search", "search failed");
	return 0;
}

static int fx_set_param(struct index *ix, const char *name, double value, struct err *e)
{
	struct faiss *f = (struct faiss *)ix;
	FaissParameterSpace *ps = NULL;
	int rc = 0;

	if (faiss_ParameterSpace_new(&ps) != 0)
		return faiss_fail(e, ERR_NOMEM, "out_of_memory", "parameter space");
	if (faiss_ParameterSpace_set_index_parameter(ps, f->ix, name, value) != 0)
		rc = faiss_fail(e, ERR_INVALID, "bad_param", "FAISS refused the parameter");
	faiss_ParameterSpace_free(ps);
	return rc;
}

static int fx_save(const struct index *ix, const char *path, struct err *e)
{
	if (faiss_write_index_fname(((const struct faiss *)ix)->ix, path) != 0)
		return faiss_fail(e, ERR_IO, "index_save", "cannot write the index");
	return 0;
}

static int fx_load(struct index **out, const char *path, uint32_t dim, enum index_metric metric,
                   struct err *e)
{
	struct faiss *f = calloc(1, sizeof *f);
	FaissMetricType want = metric == INDEX_L2 ? METRIC_L2 : METRIC_INNER_PRODUCT;

	if (f == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if (faiss_read_index_fname(path, 0, &f->ix) != 0) {
		free(f);
		return faiss_fail(e, ERR_INVALID, "index_corrupt", "cannot read the index file");
	}
	if ((uint32_t)faiss_Index_d(f->ix) != dim || faiss_Index_metric_type(f->ix) != want) {
		faiss_Index_free(f->ix);
		free(f);
		return err_set(e, ERR_INVALID, "index_corrupt",
		               "%s holds an index of another dimension or metric", path);
	}
	*out = &f->base;
	return 0;
}

static size_t fx_count(const struct index *ix)
{
	return (size_t)faiss_Index_ntotal(((const struct faiss *)ix)->ix);
}

static void fx_destroy(struct index *ix)
{
	struct faiss *f = (struct faiss *)ix;

	faiss_Index_free(f->ix);
	free(f);
}

const struct index_ops index_faiss_ops = {
	.name = "faiss",
	.create = fx_create,
	.train = fx_train,
	.is_trained = fx_is_trained,
	.add = fx_add,
	.remove = fx_remove,
	.search = fx_search,
	.set_param = fx_set_param,
	.save = fx_save,
	.load = fx_load,
	.count = fx_count,
	.destroy = fx_destroy,
};
