/* SPDX-License-Identifier: MIT */
/* catalog: index definitions, builds, ingest updates and exact-scored search.
 *
 * Entries (one per built dataset space) live until catalog_close, so a pointer found under
 * the catalog mutex stays valid; the index inside is swapped under the entry's write lock.
 * Search ranks by (score descending, row ascending): rows are the records' insertion order,
 * so pages are stable. */
#include "search/catalog.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/b64.h"
#include "core/core.h"
#include "lib/err.h"
#include "core/jobs.h"
#include "lib/log.h"
#include "lib/par.h"
#include "filters/filter.h"
#include "search/normalizers.h"
#include "curate/instance.h"
#include "search/adapters.h"
#include "curate/subset.h"
#include "filters/scan.h"
#include "index/index.h"
#include "store/jdoc.h"
#include "store/store.h"
#include "lib/vec.h"

#define TRAIN_MAX 65536     /* vectors a training sample holds at most */
#define LIMIT_MAX 1000
#define CANDIDATE_FACTOR 4 /* index candidates per wanted result (index_candidates) */
/* Search parameters an index gets unless a request asks otherwise. FAISS's own defaults
 * (efSearch 16, nprobe 1) gave recall@10 of 0.86 (HNSW32, 50,000 x 768-d) and far less for IVF
 * in bench/search.py; these reach 0.95 and more on the tests' mixtures (docs/performance.md). */
#define DEFAULT_EF_SEARCH 64
#define DEFAULT_NPROBE 16

/* Does the index type have the search parameter? (Asking FAISS to set one it lacks makes
 * its C API print the exception on stderr.) */
static int has_param(const struct index *ix, const char *name)
{
	return strcmp(name, "efSearch") == 0 ? strstr(ix->factory, "HNSW") != NULL
	                                     : strstr(ix->factory, "IVF") != NULL;
}

/* Give ix the default search parameters (those its type has). */
static void default_params(struct index *ix)
{
	if (has_param(ix, "efSearch"))
		index_set_param(ix, "efSearch", DEFAULT_EF_SEARCH, NULL);
	if (has_param(ix, "nprobe"))
		index_set_param(ix, "nprobe", DEFAULT_NPROBE, NULL);
}

struct entry {
	uint32_t ds;
	char space[STORE_NAME_MAX + 1];
	uint64_t version;
	struct index *ix; /* NULL until built */
	int clean;        /* the saved file and its document match ix: cleared before an ingest */
	/* Builds running for this space, and the rows ingested with a vector meanwhile: a build
	 * may have read such a row before its upsert, so it adds them again when it installs. */
	unsigned building;
	uint64_t *pending;
	size_t npending, cap_pending;
	int pending_lost; /* out of memory while noting one: the next build says so */
	pthread_rwlock_t lock;
	struct entry *next;
};

struct catalog {
	struct core *core;
	pthread_mutex_t mu;
	struct entry *head;
	uint64_t *startup; /* the start-up rebuild jobs not yet seen finished, under mu */
	size_t nstartup;
};

static struct entry *entry_find(struct catalog *c, uint32_t ds, const char *space, int create)
{
	struct entry *en;

	pthread_mutex_lock(&c->mu);
	for (en = c->head; en != NULL; en = en->next)
		if (en->ds == ds && strcmp(en->space, space) == 0)
			break;
	if (en == NULL && create && (en = calloc(1, sizeof *en)) != NULL) {
		en->ds = ds;
		snprintf(en->space, sizeof en->space, "%s", space);
		pthread_rwlock_init(&en->lock, NULL);
		en->next = c->head;
		c->head = en;
	}
	pthread_mutex_unlock(&c->mu);
	return en;
}

/* <data dir>/indexes/<dataset id>-<space>.idx */
static int index_path(const struct core *core, uint32_t ds, const char *space, char *out,
                      size_t size, int mkdirs)
{
	int n = snprintf(out, size, "%s/indexes", core->data_dir);

	if (n < 0 || (size_t)n >= size)
		return ERR_INVALID;
	if (mkdirs)
		mkdir(out, 0750);
	n = snprintf(out, size, "%s/indexes/%u-%s.idx", core->data_dir, (unsigned)ds, space);
	return n < 0 || (size_t)n >= size ? ERR_INVALID : 0;
}

/* ---- saved state ----
 * An index is saved at a clean shutdown; its document then holds "saved": {"version",
 * "vectors"}. The first ingest into the dataset after the index was loaded or saved removes
 * that mark *before* its records are committed, so after a crash the mark can only be there
 * if the file matches LMDB; otherwise start-up rebuilds from LMDB. */

struct mark_ctx {
	uint32_t ds;
	const char *space;
	const json_t *saved; /* NULL: remove the mark */
};

static int mark_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct mark_ctx *m = ctx;
	json_t *doc = NULL;
	int rc;

	if ((rc = jdoc_txn_get(t, m->ds, 'x', m->space, &doc, e)) != 0)
		return rc == ERR_NOT_FOUND ? 0 : rc; /* deleted meanwhile: nothing to mark */
	if (m->saved != NULL)
		json_object_set(doc, "saved", (json_t *)m->saved);
	else
		json_object_del(doc, "saved");
	rc = jdoc_txn_put(t, m->ds, 'x', m->space, doc, e);
	json_decref(doc);
	return rc;
}

void catalog_before_ingest(struct core *core, uint32_t ds_id)
{
	struct catalog *c = core->catalog;
	struct entry *en;

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	en = c->head;
	pthread_mutex_unlock(&c->mu);
	for (; en != NULL; en = en->next) {
		int clean;

		if (en->ds != ds_id)
			continue;
		/* clean only goes from 1 to 0 while requests run: peek, then act under the lock */
		pthread_rwlock_rdlock(&en->lock);
		clean = en->clean;
		pthread_rwlock_unlock(&en->lock);
		if (!clean)
			continue;
		pthread_rwlock_wrlock(&en->lock);
		if (en->clean) {
			struct mark_ctx m = {en->ds, en->space, NULL};

			if (store_write(core->store, mark_fn, &m, NULL) == 0)
				en->clean = 0;
		}
		pthread_rwlock_unlock(&en->lock);
	}
}

void catalog_save(struct catalog *c)
{
	struct entry *en;

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	en = c->head;
	pthread_mutex_unlock(&c->mu);
	for (; en != NULL; en = en->next) {
		char path[4096];
		struct err e = {0};

		pthread_rwlock_wrlock(&en->lock);
		if (en->ix != NULL && !en->clean &&
		    index_path(c->core, en->ds, en->space, path, sizeof path, 1) == 0) {
			json_t *saved = json_pack("{s:I, s:I}", "version", (json_int_t)en->version,
			                          "vectors", (json_int_t)index_count(en->ix));
			struct mark_ctx m = {en->ds, en->space, saved};

			if (saved != NULL && index_save(en->ix, path, &e) == 0 &&
			    store_write(c->core->store, mark_fn, &m, &e) == 0) {
				en->clean = 1;
				log_msg(LOG_INFO, "index_saved", "dataset_id=%u space=%s vectors=%zu",
				        (unsigned)en->ds, en->space, index_count(en->ix));
			} else {
				log_msg(LOG_WARN, "index_save", "dataset_id=%u space=%s msg=\"%s\"",
				        (unsigned)en->ds, en->space, e.detail);
			}
			json_decref(saved);
		}
		pthread_rwlock_unlock(&en->lock);
	}
}

/* Load the saved index of doc when its mark says it matches; 1 when installed. */
static int load_saved(struct catalog *c, const struct store_dataset_info *ds, const json_t *doc)
{
	const json_t *saved = json_object_get(doc, "saved");
	const char *space = json_string_value(json_object_get(doc, "space"));
	const char *factory = json_string_value(json_object_get(doc, "factory"));
	uint64_t version = (uint64_t)json_integer_value(json_object_get(doc, "version"));
	struct index *ix = NULL;
	struct entry *en;
	enum index_metric m;
	char path[4096];
	int sp;

	if (saved == NULL || space == NULL || factory == NULL ||
	    (uint64_t)json_integer_value(json_object_get(saved, "version")) != version ||
	    (sp = store_schema_find(&ds->schema, space)) < 0 ||
	    index_metric_parse(json_string_value(json_object_get(doc, "metric")), &m) != 0 ||
	    index_path(c->core, ds->id, space, path, sizeof path, 0) != 0 ||
	    index_load(&ix, &index_faiss_ops, path, ds->schema.spaces[sp].dim, m, factory, NULL) != 0)
		return 0;
	if (index_count(ix) != (size_t)json_integer_value(json_object_get(saved, "vectors")) ||
	    (en = entry_find(c, ds->id, space, 1)) == NULL) {
		index_free(ix);
		return 0;
	}
	default_params(ix);
	ix->threads = c->core->search_threads;
	pthread_rwlock_wrlock(&en->lock);
	index_free(en->ix);
	en->ix = ix;
	en->version = version;
	en->clean = 1;
	pthread_rwlock_unlock(&en->lock);
	log_msg(LOG_INFO, "index_loaded", "dataset=%s space=%s vectors=%zu", ds->name, space,
	        index_count(ix));
	return 1;
}

/* ---- definitions ---- */

static int not_found(int rc, const char *space, struct err *e)
{
	return rc == ERR_NOT_FOUND ? err_set(e, ERR_NOT_FOUND, "index_not_found",
	                                     "no index on space '%s'", space)
	                           : rc;
}

static json_t *view_of(struct core *core, uint32_t ds, const json_t *doc)
{
	const char *space = json_string_value(json_object_get(doc, "space"));
	struct entry *en = space ? entry_find(core->catalog, ds, space, 0) : NULL;
	json_t *v = json_pack("{s:O, s:O, s:O, s:O}", "space", json_object_get(doc, "space"),
	                      "factory", json_object_get(doc, "factory"), "metric",
	                      json_object_get(doc, "metric"), "version",
	                      json_object_get(doc, "version"));
	json_t *job = NULL;
	uint64_t jid = (uint64_t)json_integer_value(json_object_get(doc, "job"));
	size_t count = 0;
	int built = 0;

	if (v == NULL)
		return NULL;
	if (en != NULL) {
		pthread_rwlock_rdlock(&en->lock);
		if (en->ix != NULL && en->version ==
		                              (uint64_t)json_integer_value(json_object_get(doc, "version"))) {
			built = 1;
			count = index_count(en->ix);
		}
		pthread_rwlock_unlock(&en->lock);
	}
	json_object_set_new(v, "state", json_string(built ? "ready" : "building"));
	json_object_set_new(v, "vectors", json_integer((json_int_t)count));
	if (jid != 0 && jobs_get_json(core->jobs, jid, &job, NULL) == 0) {
		const char *js = json_string_value(json_object_get(job, "state"));

		if (!built && js != NULL && strcmp(js, "failed") == 0)
			json_object_set_new(v, "state", json_string("failed"));
		json_object_set_new(v, "build", job);
	} else {
		json_object_set_new(v, "build", json_null());
	}
	return v;
}

struct put_ctx {
	struct core *core;
	const struct store_dataset_info *ds;
	const char *space, *factory, *metric;
	int unchanged, created;
	uint64_t job;
	json_t *doc;
};

static int put_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct put_ctx *c = ctx;
	json_t *old = NULL, *args;
	uint64_t version = 1;
	int rc;

	c->unchanged = c->created = 0;
	json_decref(c->doc);
	c->doc = NULL;
	if ((rc = store_txn_dataset(t, c->ds->id, NULL, e)) != 0)
		return rc;
	rc = jdoc_txn_get(t, c->ds->id, 'x', c->space, &old, e);
	if (rc == ERR_NOT_FOUND) {
		c->created = 1;
	} else if (rc != 0) {
		return rc;
	} else {
		const char *f = json_string_value(json_object_get(old, "factory"));
		const char *m = json_string_value(json_object_get(old, "metric"));

		if (f && m && strcmp(f, c->factory) == 0 && strcmp(m, c->metric) == 0) {
			c->unchanged = 1;
			c->doc = old;
			return 0;
		}
		version = (uint64_t)json_integer_value(json_object_get(old, "version")) + 1;
		json_decref(old);
	}
	args = json_pack("{s:I}", "version", (json_int_t)version);
	rc = args ? jobs_txn_create(c->core->jobs, t, "index", c->ds->id, c->ds->name, c->space, args,
	                            &c->job, e)
	          : ERR_NOMEM;
	json_decref(args);
	if (rc != 0)
		return rc;
	c->doc = json_pack("{s:s, s:s, s:s, s:I, s:I}", "space", c->space, "factory", c->factory,
	                   "metric", c->metric, "version", (json_int_t)version, "job",
	                   (json_int_t)c->job);
	if (c->doc == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	return jdoc_txn_put(t, c->ds->id, 'x', c->space, c->doc, e);
}

/* An index that needs training needs `need` vectors at least (index_faiss_train_rows); with
 * fewer FAISS fails or, for some types, crashes. ERR_INVALID "too_few_rows" naming both. */
static int check_train_rows(const char *factory, int trained, uint64_t need, uint64_t have,
                            struct err *e)
{
	if (trained)
		return 0;
	need = need > 0 ? need : 1;
	if (have >= need)
		return 0;
	return err_set(e, ERR_INVALID, "too_few_rows",
	               "the index '%s' is trained on the space's vectors and needs at least %llu; "
	               "there are %llu (ingest more records first, or choose a factory that "
	               "needs no training, such as \"Flat\" or \"HNSW32\")",
	               factory, (unsigned long long)need, (unsigned long long)have);
}

int catalog_put(struct core *core, const char *dataset, const char *space, const json_t *body,
                json_t **view, uint64_t *job, int *created, struct err *e)
{
	struct store_dataset_info ds;
	struct put_ctx c = {.core = core, .space = space};
	enum index_metric m = INDEX_COSINE;
	struct index *probe = NULL;
	const char *key;
	json_t *v;
	uint64_t need = 0;
	int sp, rc, trained;

	if (!json_is_object(body))
		return err_set(e, ERR_INVALID, "bad_index", "the body must be a JSON object");
	json_object_foreach((json_t *)body, key, v) {
		if (strcmp(key, "factory") != 0 && strcmp(key, "metric") != 0)
			return err_set(e, ERR_INVALID, "unknown_field",
			               "unknown field '%s' (an index has \"factory\" and \"metric\")", key);
	}
	c.factory = json_string_value(json_object_get(body, "factory"));
	c.metric = json_object_get(body, "metric") ? json_string_value(json_object_get(body, "metric"))
	                                           : "cosine";
	if (c.factory == NULL)
		return err_set(e, ERR_INVALID, "bad_index",
		               "\"factory\" must be a FAISS index-factory string, e.g. \"HNSW32\"");
	if (c.metric == NULL || index_metric_parse(c.metric, &m) != 0)
		return err_set(e, ERR_INVALID, "bad_index", "\"metric\" must be cosine, ip or l2");
	if ((rc = store_dataset_get(core->store, dataset, &ds, e)) != 0)
		return rc;
	if ((sp = store_schema_find(&ds.schema, space)) < 0)
		return err_set(e, ERR_NOT_FOUND, "space_not_found", "dataset '%s' has no space '%s'",
		               dataset, space);
	/* FAISS judges the factory string now, so that a bad one is a 422, not a failed job;
	 * what it would accept and then crash on, or cannot train on this many rows, too */
	if ((rc = index_faiss_train_rows(c.factory, &need, e)) != 0 ||
	    (rc = index_create(&probe, &index_faiss_ops, ds.schema.spaces[sp].dim, m, c.factory,
	                       e)) != 0)
		return rc;
	trained = index_is_trained(probe);
	index_free(probe);
	if ((rc = check_train_rows(c.factory, trained, need, ds.records, e)) != 0)
		return rc;
	c.ds = &ds;
	if ((rc = store_write(core->store, put_fn, &c, e)) != 0) {
		json_decref(c.doc);
		return rc;
	}
	if (!c.unchanged) {
		jobs_cancel_matching(core->jobs, ds.id, "index", space, c.job);
		jobs_submit(core->jobs, c.job);
	}
	*view = view_of(core, ds.id, c.doc);
	json_decref(c.doc);
	*job = c.unchanged ? 0 : c.job;
	*created = c.created;
	return *view ? 0 : err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
}

int catalog_get_json(struct core *core, const char *dataset, const char *space, json_t **out,
                     struct err *e)
{
	struct store_dataset_info ds;
	struct store_reader *r = NULL;
	json_t *doc = NULL;
	int rc;

	if ((rc = store_dataset_get(core->store, dataset, &ds, e)) != 0 ||
	    (rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	rc = not_found(jdoc_reader_get(r, ds.id, 'x', space, &doc, e), space, e);
	store_reader_close(r);
	if (rc != 0)
		return rc;
	*out = view_of(core, ds.id, doc);
	json_decref(doc);
	return *out ? 0 : err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
}

/* view_of for jdoc_list_views. */
static json_t *list_view(void *ctx, uint32_t ds, const json_t *doc)
{
	return view_of(ctx, ds, doc);
}

int catalog_list_json(struct core *core, const char *dataset, json_t **out, struct err *e)
{
	return jdoc_list_views(core->store, dataset, 'x', list_view, core, out, e);
}

struct del_ctx {
	uint32_t ds;
	const char *space;
};

static int del_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct del_ctx *c = ctx;

	return not_found(store_txn_doc_del(t, c->ds, 'x', c->space, strlen(c->space), e), c->space,
	                 e);
}

int catalog_delete(struct core *core, const char *dataset, const char *space, struct err *e)
{
	struct store_dataset_info ds;
	struct del_ctx c = {.space = space};
	struct entry *en;
	int rc;

	if ((rc = store_dataset_get(core->store, dataset, &ds, e)) != 0)
		return rc;
	c.ds = ds.id;
	if ((rc = store_write(core->store, del_fn, &c, e)) != 0)
		return rc;
	jobs_cancel_matching(core->jobs, ds.id, "index", space, 0);
	if ((en = entry_find(core->catalog, ds.id, space, 0)) != NULL) {
		char path[4096];

		pthread_rwlock_wrlock(&en->lock);
		index_free(en->ix);
		en->ix = NULL;
		en->version = 0;
		en->clean = 0;
		if (index_path(core, ds.id, space, path, sizeof path, 0) == 0)
			unlink(path);
		pthread_rwlock_unlock(&en->lock);
	}
	return 0;
}

void catalog_drop_dataset(struct catalog *c, uint32_t ds_id)
{
	struct entry *en;

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	for (en = c->head; en != NULL; en = en->next) {
		if (en->ds != ds_id)
			continue;
		pthread_rwlock_wrlock(&en->lock);
		index_free(en->ix);
		en->ix = NULL;
		en->version = 0;
		en->clean = 0;
		pthread_rwlock_unlock(&en->lock);
		{
			char path[4096];

			if (index_path(c->core, en->ds, en->space, path, sizeof path, 0) == 0)
				unlink(path);
		}
	}
	pthread_mutex_unlock(&c->mu);
}

/* ---- building ---- */

/* A filter shape that makes the scan deliver one space's f32 vectors and nothing else. */
static void space_reader(struct filter *f, unsigned space)
{
	memset(f, 0, sizeof *f);
	f->ninputs = 1;
	f->inputs[0] = space;
}

static int stop_fn(void *ctx, uint64_t next_row)
{
	(void)next_row;
	return ctx != NULL && jobs_should_stop(ctx) ? ERR_CANCELLED : 0;
}

/* Add n vectors (with their row ids) to ix; *added counts what went in. A zero vector
 * cannot be normalised for cosine: it is skipped, not the build. */
static void feed_add(struct index *ix, size_t n, const float *x, const int64_t *ids,
                     uint32_t dim, uint64_t *added)
{
	struct err e2 = {0};

	if (n == 0)
		return;
	if (index_add(ix, n, x, ids, &e2) == 0) {
		*added += n;
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (index_add(ix, 1, x + i * dim, &ids[i], NULL) == 0)
			(*added)++;
}

/* Add the vectors of live rows in [lo, hi) to ix (the caller holds what it must), or, with
 * sample != NULL, copy up to TRAIN_MAX of them there instead (*ns counts).
 * Vectors go to FAISS in large pieces, not one scan batch (64 rows) at a time: FAISS's HNSW
 * inserts the points of one add level by level, and splitting the add lowers recall. Measured
 * with python3-faiss (IDMap2,HNSW32, efSearch 64, recall@10, bench/search.py's mixture of
 * Gaussians): 100,000 x 768-d, 64-vector adds 0.902 (and twice the build time), 43,690-vector
 * adds (128 MiB) 0.927, one add 0.940; 200,000 x 768-d, 43,690-vector adds 0.854, one add
 * 0.929. So an HNSW index gets its vectors in one add up to --index-build-memory (4 GiB: a
 * second copy of the vectors for the time of the build), in pieces of that size beyond;
 * other types (Flat, IVF), whose result does not depend on it, in 128 MiB pieces. */
static int feed(struct core *core, struct job *j, uint32_t ds, const struct store_schema *schema,
                unsigned space, uint64_t lo, uint64_t hi, struct index *ix, float *sample,
                size_t *ns, uint64_t *added, struct err *e)
{
	enum { FEED_BYTES = 128u << 20 };
	struct store_reader *r = NULL;
	struct scan *sc = NULL;
	struct filter f;
	const struct filter_batch *b;
	uint32_t dim = schema->spaces[space].dim;
	uint64_t piece = ix != NULL && has_param(ix, "efSearch") ? core->index_build_memory
	                                                          : FEED_BYTES;
	size_t limit = (size_t)(piece / ((uint64_t)dim * sizeof(float))), cap = 0, m = 0;
	float *buf = NULL;
	int64_t *ids = NULL;
	int rc;

	if (limit < STORE_BLOCK_ROWS)
		limit = STORE_BLOCK_ROWS;
	space_reader(&f, space);
	if ((rc = store_reader_open(core->store, &r, e)) != 0 ||
	    (rc = scan_open(&sc, r, ds, schema, &f, lo, hi, stop_fn, j, e)) != 0)
		goto out;
	while ((rc = scan_next(sc, &b, e)) == 1) {
		for (size_t i = 0; i < b->n; i++) {
			if (!b->has_vec[0][i])
				continue;
			if (sample != NULL) {
				if (*ns < TRAIN_MAX)
					memcpy(sample + *ns * dim, b->vecs[0] + i * dim, dim * sizeof(float));
				(*ns)++;
				continue;
			}
			if (m == limit) {
				feed_add(ix, m, buf, ids, dim, added);
				m = 0;
			}
			if (m == cap) { /* grow to the piece size as rows come */
				size_t nc = cap == 0 ? STORE_BLOCK_ROWS : cap * 2 < limit ? cap * 2 : limit;
				float *nb = realloc(buf, nc * dim * sizeof *nb);
				int64_t *ni = nb != NULL ? realloc(ids, nc * sizeof *ni) : NULL;

				buf = nb != NULL ? nb : buf;
				ids = ni != NULL ? ni : ids;
				if (nb == NULL || ni == NULL) {
					rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
					goto out;
				}
				cap = nc;
			}
			memcpy(buf + m * dim, b->vecs[0] + i * dim, dim * sizeof(float));
			ids[m++] = (int64_t)b->rows[i];
		}
		if (j != NULL && b->n > 0)
			jobs_progress(j, b->rows[b->n - 1] + 1, hi);
	}
	if (rc == 0)
		feed_add(ix, m, buf, ids, dim, added);
out:
	scan_close(sc);
	store_reader_close(r);
	free(buf);
	free(ids);
	return rc < 0 ? rc : 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* One build on the entry is over: the last one drops the noted rows. The caller holds
 * en->lock for writing. */
static void build_over(struct entry *en)
{
	if (--en->building == 0) {
		free(en->pending);
		en->pending = NULL;
		en->npending = en->cap_pending = 0;
		en->pending_lost = 0;
	}
}

/* A build installs: add again the rows below `end` (what the build read) ingested while it
 * ran, from LMDB as they are now, in runs of consecutive rows; rows from `end` on come with
 * the catch-up. Ends this build's count on the entry. The caller holds en->lock for
 * writing. *readded counts the vectors. */
static int readd_pending(struct core *core, struct entry *en, const struct store_schema *schema,
                         unsigned space, uint64_t end, uint64_t *readded, struct err *e)
{
	size_t n = 0;
	int rc = 0;

	if (en->npending > 0)
		qsort(en->pending, en->npending, sizeof *en->pending, cmp_u64);
	for (size_t i = 0; i < en->npending; i++) /* unique, below end */
		if (en->pending[i] < end && (n == 0 || en->pending[n - 1] != en->pending[i]))
			en->pending[n++] = en->pending[i];
	for (size_t i = 0; rc == 0 && i < n;) {
		size_t k = i + 1;

		while (k < n && en->pending[k] == en->pending[k - 1] + 1)
			k++;
		rc = feed(core, NULL, en->ds, schema, space, en->pending[i], en->pending[k - 1] + 1, en->ix,
		          NULL, NULL, readded, e);
		i = k;
	}
	if (en->pending_lost)
		log_msg(LOG_WARN, "index_upserts_unknown",
		        "space=%s: out of memory while noting the rows ingested during the build; "
		        "vectors upserted meanwhile may be missing until the index is rebuilt",
		        en->space);
	build_over(en);
	return rc;
}

int catalog_job_build(struct job *j, struct err *e)
{
	struct core *core = job_core(j);
	struct catalog *c = core->catalog;
	const char *space = job_target(j);
	uint64_t version = (uint64_t)json_integer_value(json_object_get(job_args(j), "version"));
	struct store_dataset_info info, now;
	struct store_reader *r = NULL;
	struct index *ix = NULL;
	struct entry *en = NULL;
	json_t *doc = NULL;
	enum index_metric m;
	uint64_t added = 0, readded = 0;
	int sp, rc;

	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		goto done;
	if ((rc = store_reader_dataset(r, job_ds(j), &info, e)) != 0 ||
	    (rc = not_found(jdoc_reader_get(r, job_ds(j), 'x', space, &doc, e), space, e)) != 0)
		goto done;
	store_reader_close(r);
	r = NULL;
	if ((uint64_t)json_integer_value(json_object_get(doc, "version")) != version) {
		rc = err_set(e, ERR_CONFLICT, "superseded", "index '%s' was redefined", space);
		goto done;
	}
	sp = store_schema_find(&info.schema, space);
	if (sp < 0 || index_metric_parse(json_string_value(json_object_get(doc, "metric")), &m) != 0) {
		rc = err_set(e, ERR_INVALID, "bad_index", "index '%s' has a bad definition", space);
		goto done;
	}
	/* from here on, rows ingested into the space are noted for the install (readd_pending);
	 * the feed's reader opens after this, so anything committed before is read */
	if ((en = entry_find(c, info.id, space, 1)) == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto done;
	}
	pthread_rwlock_wrlock(&en->lock);
	en->building++;
	pthread_rwlock_unlock(&en->lock);
	if ((rc = index_create(&ix, &index_faiss_ops, info.schema.spaces[sp].dim, m,
	                       json_string_value(json_object_get(doc, "factory")), e)) != 0)
		goto done;
	if (!index_is_trained(ix)) {
		float *sample = malloc((size_t)TRAIN_MAX * info.schema.spaces[sp].dim * sizeof(float));
		const char *factory = json_string_value(json_object_get(doc, "factory"));
		size_t ns = 0;
		uint64_t need = 0;

		if (sample == NULL) {
			rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
			goto done;
		}
		rc = feed(core, j, info.id, &info.schema, (unsigned)sp, 0, info.next_row, NULL, sample,
		          &ns, &added, e);
		/* the rows may have gone since the PUT judged them (deletes, or an old definition) */
		if (rc == 0 && (rc = index_faiss_train_rows(factory, &need, e)) == 0)
			rc = check_train_rows(factory, 0, need, ns, e);
		if (rc == 0)
			rc = index_train(ix, ns < TRAIN_MAX ? ns : TRAIN_MAX, sample, e);
		free(sample);
		if (rc != 0)
			goto done;
	}
	if ((rc = feed(core, j, info.id, &info.schema, (unsigned)sp, 0, info.next_row, ix, NULL, NULL,
	               &added, e)) != 0)
		goto done;
	default_params(ix);
	ix->threads = core->search_threads;
	/* install, then catch up with what was ingested meanwhile: the rows appended since the
	 * build read the dataset, and the rows below that upserted while it ran (ingest adds to
	 * the installed index from now on; a row added twice is found once: search drops
	 * duplicate rows, and scores are checked against the stored vectors) */
	pthread_rwlock_wrlock(&en->lock);
	{
		struct index *old = en->ix;

		en->ix = ix;
		en->version = version;
		en->clean = 0;
		ix = NULL;
		index_free(old);
	}
	if (store_dataset_get(core->store, info.name, &now, NULL) == 0 && now.id == info.id &&
	    now.next_row > info.next_row)
		rc = feed(core, NULL, info.id, &info.schema, (unsigned)sp, info.next_row, now.next_row,
		          en->ix, NULL, NULL, &added, e);
	{
		int rc2 = readd_pending(core, en, &info.schema, (unsigned)sp, info.next_row, &readded, e);

		rc = rc != 0 ? rc : rc2;
	}
	pthread_rwlock_unlock(&en->lock);
	en = NULL; /* this build's count on the entry ended in readd_pending */
	if (rc == 0)
		log_msg(LOG_INFO, "index_built", "dataset=%s space=%s vectors=%llu readded=%llu",
		        info.name, space, (unsigned long long)added, (unsigned long long)readded);
done:
	if (en != NULL) { /* a build that does not install */
		pthread_rwlock_wrlock(&en->lock);
		build_over(en);
		pthread_rwlock_unlock(&en->lock);
	}
	store_reader_close(r);
	index_free(ix);
	json_decref(doc);
	return rc;
}

/* ---- ingest ---- */

/* Note rows ingested while a build runs (the caller holds en->lock for writing). */
static void note_pending(struct entry *en, const int64_t *rows, size_t n)
{
	if (en->npending + n > en->cap_pending) {
		size_t cap = en->cap_pending ? en->cap_pending : 256;
		uint64_t *g;

		while (cap < en->npending + n)
			cap *= 2;
		if ((g = realloc(en->pending, cap * sizeof *g)) == NULL) {
			en->pending_lost = 1;
			return;
		}
		en->pending = g;
		en->cap_pending = cap;
	}
	for (size_t i = 0; i < n; i++)
		en->pending[en->npending++] = (uint64_t)rows[i];
}

void catalog_on_ingest(struct core *core, uint32_t ds_id, const struct store_schema *schema,
                       const struct store_record *recs, const uint64_t *rows, size_t n)
{
	struct catalog *c = core->catalog;
	struct entry *en;

	if (c == NULL)
		return;
	for (unsigned sp = 0; sp < schema->nspaces; sp++) {
		uint32_t dim = schema->spaces[sp].dim;
		float *buf;
		int64_t *ids;
		size_t m = 0;

		en = entry_find(c, ds_id, schema->spaces[sp].name, 0);
		if (en == NULL)
			continue;
		buf = malloc(n * dim * sizeof *buf);
		ids = malloc(n * sizeof *ids);
		for (size_t i = 0; buf != NULL && ids != NULL && i < n; i++) {
			if (recs[i].vec[sp] == NULL)
				continue;
			if (schema->spaces[sp].dtype == STORE_F16)
				vec_f16_to_f32(recs[i].vec[sp], buf + m * dim, dim);
			else
				memcpy(buf + m * dim, recs[i].vec[sp], dim * sizeof(float));
			ids[m++] = (int64_t)rows[i];
		}
		pthread_rwlock_wrlock(&en->lock);
		if (en->building > 0)
			note_pending(en, ids, m);
		if (en->ix != NULL && m > 0 && index_add(en->ix, m, buf, ids, NULL) != 0) {
			for (size_t i = 0; i < m; i++) /* one bad (zero) vector must not cost the rest */
				index_add(en->ix, 1, buf + i * dim, &ids[i], NULL);
		}
		pthread_rwlock_unlock(&en->lock);
		free(buf);
		free(ids);
	}
}

/* ---- open / close ---- */

struct queue_ctx {
	struct core *core;
	uint32_t ds;
	const char *dataset, *space;
	const json_t *args;
	uint64_t job;
};

static int queue_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct queue_ctx *q = ctx;

	return jobs_txn_create(q->core->jobs, t, "index", q->ds, q->dataset, q->space, q->args,
	                       &q->job, e);
}

/* Queue a rebuild of every defined index of every dataset; remember the jobs for /readyz. */
static int queue_rebuilds(struct catalog *c, struct err *e)
{
	struct store_dataset_info *all = NULL;
	size_t n = 0;
	int rc = store_dataset_list(c->core->store, &all, &n, e);

	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct store_reader *r = NULL;
		json_t *docs = NULL, *doc;
		size_t k;

		if ((rc = store_reader_open(c->core->store, &r, e)) != 0)
			break;
		rc = jdoc_reader_list(r, all[i].id, 'x', &docs, e);
		store_reader_close(r);
		json_array_foreach(docs, k, doc) {
			json_t *args;

			if (load_saved(c, &all[i], doc))
				continue;
			args = json_pack("{s:O}", "version", json_object_get(doc, "version"));
			struct queue_ctx q = {c->core, all[i].id, all[i].name,
			                      json_string_value(json_object_get(doc, "space")), args, 0};
			uint64_t *grown;

			if (q.space == NULL || args == NULL ||
			    store_write(c->core->store, queue_fn, &q, NULL) != 0) {
				json_decref(args);
				continue;
			}
			json_decref(args);
			/* a build left unfinished by the last process is superseded by this one */
			jobs_cancel_matching(c->core->jobs, all[i].id, "index", q.space, q.job);
			jobs_submit(c->core->jobs, q.job);
			grown = realloc(c->startup, (c->nstartup + 1) * sizeof *grown);
			if (grown != NULL) {
				c->startup = grown;
				c->startup[c->nstartup++] = q.job;
			}
		}
		json_decref(docs);
	}
	free(all);
	return rc;
}

int catalog_open(struct catalog **out, struct core *core, struct err *e)
{
	struct catalog *c = calloc(1, sizeof *c);

	if (c == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	c->core = core;
	pthread_mutex_init(&c->mu, NULL);
	*out = c;
	return 0;
}

int catalog_start(struct catalog *c, struct err *e)
{
	int rc = queue_rebuilds(c, e);

	if (rc == 0 && c->nstartup > 0)
		log_msg(LOG_INFO, "indexes_rebuild", "count=%zu", c->nstartup);
	return rc;
}

void catalog_close(struct catalog *c)
{
	struct entry *en;

	if (c == NULL)
		return;
	while ((en = c->head) != NULL) {
		c->head = en->next;
		index_free(en->ix);
		free(en->pending);
		pthread_rwlock_destroy(&en->lock);
		free(en);
	}
	free(c->startup);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

int catalog_ready(struct catalog *c)
{
	pthread_mutex_lock(&c->mu);
	while (c->nstartup > 0) {
		json_t *j = NULL;
		const char *st;
		int open;

		if (jobs_get_json(c->core->jobs, c->startup[c->nstartup - 1], &j, NULL) != 0) {
			c->nstartup--; /* gone (pruned): finished long ago */
			continue;
		}
		st = json_string_value(json_object_get(j, "state"));
		open = st != NULL && (strcmp(st, "queued") == 0 || strcmp(st, "running") == 0);
		json_decref(j);
		if (open)
			break;
		c->nstartup--;
	}
	pthread_mutex_unlock(&c->mu);
	return c->nstartup == 0;
}

/* ---- search ---- */

struct hit {
	float score; /* the ranking score: exact, or the rescoring filter's */
	uint64_t row;
	float raw;   /* the exact score, when a filter rescored */
};

/* Ranking: score descending, then row ascending. */
static int hit_cmp(const void *a, const void *b)
{
	const struct hit *x = a, *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->row < y->row ? -1 : x->row > y->row;
}

enum with_bits { WITH_TEXT = 1, WITH_META = 2, WITH_IMAGE = 4, WITH_KIND = 8 };

struct query {
	uint32_t ds;
	struct store_dataset_info info;
	unsigned space;
	uint32_t dim;
	enum index_metric metric;
	size_t limit;
	int has_thr, exact, has_after;
	float thr, after_s;
	uint64_t after_row;
	uint64_t hash;  /* of the parameters, for page tokens (token_hash) */
	uint64_t token; /* the hash the request's page_token carries */
	double ef, nprobe; /* 0 = not given */
	unsigned with;
	const json_t *with_scores; /* filter names, borrowed from the body */
	uint8_t *members;          /* NULL, or 1 per row of the subset's members (new) */
	struct filter *rescore;    /* NULL, or the filter that rescores the results (new) */
	size_t candidates;         /* results rescored, when rescore is set */
	/* Cosine Adapter relevance (issue 7, search/adapters.h): NULL, or the adapter (new);
	 * rel_min is the minimum relevance (NAN: annotate only), user_thr the request's own
	 * score_threshold (-inf without one), rq the current query's mapping (run_query). */
	struct adapters_model *rel;
	double rel_min;
	float user_thr;
	struct adapters_query rq;
	struct normalizers_query *hub; /* NULL, or the hubness normaliser that rescores (new) */
};

/* Score of x against the query q (qq = |q|^2) for the metric; 0 with *ok = 0 for a row that
 * has no score (a zero vector under cosine). */
static float score_of(const struct query *qr, const float *q, double qq, const float *x, int *ok)
{
	double xq, xx, dummy;

	vec_f32_dot3(x, q, qr->dim, &xq, &xx, &dummy);
	*ok = 1;
	switch (qr->metric) {
	case INDEX_COSINE:
		if (!(xx > 0)) {
			*ok = 0;
			return 0;
		}
		return (float)(xq / sqrt(xx * qq));
	case INDEX_IP:
		return (float)xq;
	default:
		return (float)-(xx + qq - 2 * xq);
	}
}

/* Past the page key (ranked after it)? */
static int after_key(const struct query *qr, float s, uint64_t row)
{
	return !qr->has_after || s < qr->after_s || (s == qr->after_s && row > qr->after_row);
}

struct hits {
	struct hit *v;
	size_t n, cap;
	size_t keep; /* 0: keep all; else keep the best `keep` */
};

static int hits_push(struct hits *h, float s, uint64_t row)
{
	if (h->keep != 0 && h->n == h->keep) {
		/* bounded: replace the worst when better (kept sorted by insertion) */
		struct hit nh = {s, row, s};
		size_t at;

		if (hit_cmp(&nh, &h->v[h->n - 1]) >= 0)
			return 0;
		at = h->n - 1;
		while (at > 0 && hit_cmp(&nh, &h->v[at - 1]) < 0) {
			h->v[at] = h->v[at - 1];
			at--;
		}
		h->v[at] = nh;
		return 0;
	}
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 256;
		struct hit *g = realloc(h->v, cap * sizeof *g);

		if (g == NULL)
			return ERR_NOMEM;
		h->v = g;
		h->cap = cap;
	}
	h->v[h->n++] = (struct hit){s, row, s};
	if (h->keep != 0) { /* insertion sort keeps the bounded buffer ordered */
		for (size_t at = h->n - 1; at > 0 && hit_cmp(&h->v[at], &h->v[at - 1]) < 0; at--) {
			struct hit t = h->v[at];

			h->v[at] = h->v[at - 1];
			h->v[at - 1] = t;
		}
	}
	return 0;
}

/* Every live row with a vector in the space among rows [lo, hi): exact, complete. Opens
 * its own reader (one snapshot for the range). */
static int exact_range(struct core *core, const struct query *qr, const float *q, uint64_t lo,
                       uint64_t hi, struct hits *h, uint64_t *scanned, struct err *e)
{
	struct store_reader *r = NULL;
	struct scan *sc = NULL;
	struct filter f;
	const struct filter_batch *b;
	double qq = 0;
	int rc;

	for (uint32_t k = 0; k < qr->dim; k++)
		qq += (double)q[k] * q[k];
	space_reader(&f, qr->space);
	if ((rc = store_reader_open(core->store, &r, e)) != 0 ||
	    (rc = scan_open(&sc, r, qr->ds, &qr->info.schema, &f, lo, hi, NULL, NULL, e)) != 0)
		goto out;
	while ((rc = scan_next(sc, &b, e)) == 1) {
		for (size_t i = 0; i < b->n; i++) {
			int ok;
			float s;

			if (!b->has_vec[0][i] || (qr->members != NULL && !qr->members[b->rows[i]]))
				continue;
			(*scanned)++;
			s = score_of(qr, q, qq, b->vecs[0] + (size_t)qr->dim * i, &ok);
			if (!ok || (qr->has_thr && s < qr->thr) || !after_key(qr, s, b->rows[i]))
				continue;
			if (hits_push(h, s, b->rows[i]) != 0) {
				rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
				goto out;
			}
		}
	}
out:
	scan_close(sc);
	store_reader_close(r);
	return rc < 0 ? rc : 0;
}

/* One range of a split exact scan, run on its own thread. */
struct exact_part {
	struct core *core;
	const struct query *qr;
	const float *q;
	uint64_t lo, hi, scanned;
	struct hits h;
	int rc;
	struct err e;
};

static void *exact_part_run(void *arg)
{
	struct exact_part *p = arg;

	err_clear(&p->e);
	p->rc = exact_range(p->core, p->qr, p->q, p->lo, p->hi, &p->h, &p->scanned, &p->e);
	return NULL;
}

/* Every live row with a vector in the space: exact, complete. On several threads when the
 * space is large enough (index_scan_begin, --search-threads): ranges of whole blocks, each
 * with its own reader (so a write that commits during the scan may be seen by some ranges
 * and not others, as between two requests), their hits merged into h. */
static int exact_scan(struct core *core, const struct query *qr, const float *q, struct hits *h,
                      uint64_t *scanned, struct err *e)
{
	uint64_t end = qr->info.next_row, blocks = (end + STORE_BLOCK_ROWS - 1) / STORE_BLOCK_ROWS;
	unsigned t = index_scan_begin(core->search_threads, (size_t)end * qr->dim);
	struct exact_part *p = NULL;
	int rc = 0;

	if (t > blocks)
		t = (unsigned)blocks;
	if (t > 1 && (p = calloc(t, sizeof *p)) == NULL)
		t = 1; /* no memory for the split: one range */
	if (t <= 1) {
		rc = exact_range(core, qr, q, 0, end, h, scanned, e);
		goto out;
	}
	for (unsigned i = 0; i < t; i++) {
		p[i] = (struct exact_part){.core = core, .qr = qr, .q = q,
		                           .lo = blocks * i / t * STORE_BLOCK_ROWS,
		                           .hi = i + 1 == t ? end : blocks * (i + 1) / t * STORE_BLOCK_ROWS,
		                           .h = {.keep = h->keep}};
	}
	par_run(exact_part_run, p, sizeof *p, t);
	for (unsigned i = 0; i < t; i++) {
		if (rc == 0 && p[i].rc != 0) {
			rc = p[i].rc;
			if (e != NULL)
				*e = p[i].e;
		}
		*scanned += p[i].scanned;
		for (size_t j = 0; rc == 0 && j < p[i].h.n; j++)
			if (hits_push(h, p[i].h.v[j].score, p[i].h.v[j].row) != 0)
				rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		free(p[i].h.v);
	}
out:
	index_scan_end();
	free(p);
	return rc;
}

/* Candidates from the index, rescored exactly from LMDB (deleted rows dropped). */
/* Search nq queries (normalised or not: the wrapper handles the metric) for k candidates
 * each, applying the request's ef_search / nprobe. */
static int index_query(struct entry *en, const struct query *qr, size_t nq, const float *q,
                       size_t k, float *sc, int64_t *ids, struct err *e)
{
	int rc = 0;

	if (qr->ef > 0 || qr->nprobe > 0) {
		pthread_rwlock_wrlock(&en->lock); /* parameters live in the index */
		if ((qr->ef > 0 && !has_param(en->ix, "efSearch")) ||
		    (qr->nprobe > 0 && !has_param(en->ix, "nprobe")))
			rc = err_set(e, ERR_INVALID, "bad_param",
			             "index '%s' has no such search parameter (ef_search is for HNSW, "
			             "nprobe for IVF)",
			             en->ix->factory);
		if (rc == 0 && qr->ef > 0)
			rc = index_set_param(en->ix, "efSearch", qr->ef, e);
		if (rc == 0 && qr->nprobe > 0)
			rc = index_set_param(en->ix, "nprobe", qr->nprobe, e);
		if (rc == 0)
			rc = index_search(en->ix, nq, q, k, sc, ids, e);
		default_params(en->ix); /* the next request starts from the defaults again */
		pthread_rwlock_unlock(&en->lock);
	} else {
		pthread_rwlock_rdlock(&en->lock);
		rc = en->ix != NULL ? index_search(en->ix, nq, q, k, sc, ids, e)
		                    : err_set(e, ERR_UNAVAILABLE, "index_gone", "the index went away");
		pthread_rwlock_unlock(&en->lock);
	}
	return rc;
}

static size_t candidates_per_query(const struct query *qr)
{
	size_t k = (qr->limit + 1) * CANDIDATE_FACTOR;

	if (qr->rescore != NULL && qr->candidates > k) /* else a second round would widen to it */
		k = qr->candidates;
	if (qr->hub != NULL && normalizers_query_candidates(qr->hub) > k)
		k = normalizers_query_candidates(qr->hub);
	return k;
}

/* The stored vector of row in the query's space into x (or, f32 and aligned, borrowed in
 * place through *v); 0 when the row is deleted or has none. Valid until the next read of r. */
static int row_vector(struct store_reader *r, const struct query *qr, uint64_t row, float *x,
                      const float **v)
{
	const struct store_space *sp = &qr->info.schema.spaces[qr->space];
	const void *data;
	uint64_t present;
	uint8_t live = 0;
	size_t at = (size_t)sp->dim * (row % STORE_BLOCK_ROWS);

	if (store_reader_array(r, qr->ds, STORE_ARRAY_LIVE, 1, row, 1, &live, NULL) != 0 || !live ||
	    store_reader_block(r, qr->ds, qr->space, row / STORE_BLOCK_ROWS, &data, &present,
	                       NULL) != 0 ||
	    !(present >> (row % STORE_BLOCK_ROWS) & 1))
		return 0;
	if (sp->dtype == STORE_F16) {
		vec_f16_to_f32((const uint16_t *)data + at, x, sp->dim);
		*v = x;
	} else if ((uintptr_t)((const float *)data + at) % _Alignof(float) == 0) {
		*v = (const float *)data + at;
	} else {
		memcpy(x, (const float *)data + at, sp->dim * sizeof *x);
		*v = x;
	}
	return 1;
}

/* Does the index's score of a candidate agree with its exact score? Far apart only when the
 * index holds an older vector of the row (an upsert: HNSW cannot remove the old one). */
static int same_score(float indexed, float exact)
{
	return fabsf(indexed - exact) <= 1e-4f * fmaxf(1.0f, fabsf(exact));
}

/* Vectors in the entry's index (deleted and replaced ones included), 0 when it went away. */
static size_t entry_count(struct entry *en)
{
	size_t n;

	pthread_rwlock_rdlock(&en->lock);
	n = en->ix != NULL ? index_count(en->ix) : 0;
	pthread_rwlock_unlock(&en->lock);
	return n;
}

/* Candidates from the index (or pre_ids / pre_sc, k of them, already searched), with exact
 * scores from LMDB; duplicates and deleted rows dropped.
 * An index that scores with the exact vectors (index_exact_scores: Flat, HNSW, IVF-Flat)
 * ranks its candidates as exact rescoring would, so for a top-k search only the first
 * h->keep live candidates are read and their exact scores checked against the index's; if
 * one disagrees (the index holds a stale vector of an upserted row) every candidate is
 * rescored, as always for an index of compressed codes.
 * When deleted and replaced rows leave fewer than h->keep candidates, the search widens
 * (4 times the candidates each round) until it has them or has seen the whole index: a
 * top-k answer is never short because of deletes. */
static int index_candidates(struct core *core, struct entry *en, const struct query *qr,
                            const float *q, const float *pre_sc, const int64_t *pre_ids,
                            int exact_scores, struct hits *h, uint64_t *scanned, struct err *e)
{
	size_t k = candidates_per_query(qr);
	float *own_sc = NULL, *x = malloc(qr->dim * sizeof *x);
	int64_t *own = NULL;
	const int64_t *ids = pre_ids;
	const float *sc = pre_sc;
	struct store_reader *r = NULL;
	double qq = 0;
	int rc = 0, check = exact_scores && qr->rescore == NULL && qr->hub == NULL &&
	                    h->keep != 0;

	if (x == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < qr->dim; i++)
		qq += (double)q[i] * q[i];
	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		goto out;
	for (;;) {
		if (ids == NULL) { /* search here, for k candidates */
			float *ns = realloc(own_sc, k * sizeof *ns);
			int64_t *ni = ns != NULL ? realloc(own, k * sizeof *ni) : NULL;

			own_sc = ns != NULL ? ns : own_sc;
			own = ni != NULL ? ni : own;
			if (ns == NULL || ni == NULL) {
				rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
				goto out;
			}
			if ((rc = index_query(en, qr, 1, q, k, own_sc, own, e)) != 0)
				goto out;
			ids = own;
			sc = own_sc;
		}
		for (int pass = check ? 0 : 1; pass < 2; pass++) {
			int stale = 0;

			h->n = 0;
			*scanned = 0;
			for (size_t i = 0; i < k && !stale && !(pass == 0 && h->n == h->keep); i++) {
				int dup = 0, ok;
				const float *v;
				float s;

				if (ids[i] < 0)
					continue;
				for (size_t j = 0; j < i && !dup; j++)
					dup = ids[j] == ids[i];
				if (dup || !row_vector(r, qr, (uint64_t)ids[i], x, &v))
					continue;
				(*scanned)++;
				s = score_of(qr, q, qq, v, &ok);
				if (pass == 0 && (!ok || !same_score(sc[i], s)))
					stale = 1;
				else if (ok && hits_push(h, s, (uint64_t)ids[i]) != 0)
					rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
				if (rc != 0)
					goto out;
			}
			if (!stale)
				break;
		}
		if (h->keep == 0 || h->n >= h->keep || k >= entry_count(en))
			break;
		k *= 4;
		ids = NULL;
	}
out:
	store_reader_close(r);
	free(own_sc);
	free(own);
	free(x);
	return rc;
}

/* n little-endian f32 values (f16: f16 values) from p into out; the index of the first one
 * that is not finite, or n. */
static size_t le_values(const unsigned char *p, size_t n, int f16, float *out)
{
	for (size_t i = 0; i < n; i++) {
		if (f16) {
			out[i] = vec_f16_to_f32_one((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
		} else {
			uint32_t u = vec_le32_get(p + 4 * i);

			memcpy(&out[i], &u, 4);
		}
		if (!isfinite(out[i]))
			return i;
	}
	return n;
}

/* One query vector from a JSON value: an array of numbers or {"dtype", "b64"}. */
static int parse_vector(const json_t *v, uint32_t dim, float *out, const char *what,
                        struct err *e)
{
	if (json_is_array(v)) {
		size_t i;
		json_t *x;

		if (json_array_size(v) != dim)
			return err_set(e, ERR_INVALID, "dimension_mismatch",
			               "%s has %zu values, the space has dim %u", what,
			               json_array_size(v), (unsigned)dim);
		json_array_foreach(v, i, x) {
			if (!json_is_number(x) || !isfinite(json_number_value(x)))
				return err_set(e, ERR_INVALID, "non_finite",
				               "%s: value %zu is not a finite number", what, i);
			out[i] = (float)json_number_value(x);
		}
		return 0;
	}
	if (json_is_object(v)) {
		const char *dt = json_string_value(json_object_get(v, "dtype"));
		const char *b = json_string_value(json_object_get(v, "b64"));
		size_t esz = dt != NULL && strcmp(dt, "f16") == 0 ? 2 : 4, n;
		unsigned char *raw;

		if (b == NULL || dt == NULL || (strcmp(dt, "f16") != 0 && strcmp(dt, "f32") != 0))
			return err_set(e, ERR_INVALID, "invalid_embedding",
			               "%s: {\"dtype\": \"f32\"|\"f16\", \"b64\": ...}", what);
		raw = malloc(strlen(b) + 4);
		if (raw == NULL)
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		if (b64_decode(b, strlen(b), raw, &n) != 0 || n != dim * esz) {
			free(raw);
			return err_set(e, ERR_INVALID, "invalid_embedding",
			               "%s: bad base64 or not %u %s values", what, (unsigned)dim, dt);
		}
		n = le_values(raw, dim, esz == 2, out);
		free(raw);
		if (n < dim)
			return err_set(e, ERR_INVALID, "non_finite", "%s: value %zu is not finite", what,
			               n);
		return 0;
	}
	return err_set(e, ERR_INVALID, "bad_query", "%s must be an array or {dtype, b64}", what);
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* What a page token binds to: the request's parameters (qr->hash) and this query's vector,
 * so the token of any query of a batch continues that query alone (a "vector" request with
 * the same values, in any encoding, and the same parameters). */
static uint64_t token_hash(const struct query *qr, const float *q)
{
	uint64_t h = qr->hash;

	for (uint32_t i = 0; i < qr->dim; i++) {
		uint32_t u;

		memcpy(&u, &q[i], 4);
		h = (h ^ u) * 1099511628211ull;
	}
	return h;
}

/* A new reference to v, or JSON null. */
static json_t *or_null(json_t *v)
{
	return v != NULL ? json_incref(v) : json_null();
}

static json_t *result_json(struct core *core, const struct query *qr, struct store_reader *r,
                           const struct hit *h)
{
	const char *id, *body;
	size_t id_len, body_len;
	unsigned kind;
	json_t *o, *b = NULL;

	if (store_reader_row(r, qr->ds, h->row, &kind, &id, &id_len, &body, &body_len, NULL) != 0)
		return NULL;
	o = json_pack("{s:s#, s:f}", "id", id, (int)id_len, "score",
	              (double)(qr->rescore != NULL || qr->hub != NULL ? h->raw : h->score));
	if (o == NULL)
		return NULL;
	if (qr->rescore != NULL)
		json_object_set_new(o, "rescored", json_real(h->score));
	if (qr->rel != NULL)
		json_object_set_new(o, "relevance", json_real(adapters_score(qr->rel, &qr->rq,
		                                                              h->score)));
	if (qr->hub != NULL) /* -inf (no statistics) is not JSON: null */
		json_object_set_new(o, "hubness_score",
		                    isfinite(h->score) ? json_real(h->score) : json_null());
	if (qr->with & (WITH_TEXT | WITH_META | WITH_IMAGE))
		b = json_loadb(body, body_len, 0, NULL);
	if (qr->with & WITH_KIND)
		json_object_set_new(o, "kind",
		                    json_string(kind == STORE_KIND_TEXT ? "text" : "image-text"));
	if (qr->with & WITH_TEXT)
		json_object_set_new(o, "text", or_null(json_object_get(b, "text")));
	if (qr->with & WITH_META)
		json_object_set_new(o, "meta", or_null(json_object_get(b, "meta")));
	if (qr->with & WITH_IMAGE)
		json_object_set_new(o, "image", or_null(json_object_get(b, "image")));
	json_decref(b);
	if (json_array_size(qr->with_scores) > 0) {
		json_t *scores = json_object(), *name;
		size_t i;

		json_array_foreach(qr->with_scores, i, name) {
			struct instance_ref ref;
			float s = NAN;
			uint8_t st = 0;
			const char *fn = json_string_value(name);

			if (fn != NULL && instance_ref_read(r, qr->ds, fn, &ref, NULL) == 0 &&
			    store_reader_array(r, qr->ds, ref.arr_score, 4, h->row, 1, &s, NULL) == 0 &&
			    store_reader_array(r, qr->ds, ref.arr_status, 1, h->row, 1, &st, NULL) == 0 &&
			    filter_status_scored(st) && isfinite(s))
				json_object_set_new(scores, fn, json_real(s));
			else if (fn != NULL)
				json_object_set_new(scores, fn, json_null());
		}
		json_object_set_new(o, "scores", scores);
	}
	(void)core;
	return o;
}

/* ---- Cosine Adapter relevance (issue 7): "relevance": {"adapter": name, "min": x} ----
 * Every result gets its relevance (the adapter's mapping of its cosine). With a minimum, the
 * search is a threshold search: the mapping is monotone in the cosine for each query, so
 * relevance >= min is cosine >= the query's inverse bound, and the exact threshold scan (with
 * its completeness, pages and search:count) runs with that bound; rel_keep then drops the few
 * candidates in the rounding margin whose computed relevance is below min. Results stay
 * ranked by cosine, which is the relevance order within one query. */

static int rel_parse(struct core *core, const json_t *body, struct query *qr, struct err *e)
{
	const json_t *rv = json_object_get(body, "relevance"), *m;
	struct store_reader *r = NULL;
	const char *name;
	int rc;

	qr->rel_min = NAN;
	qr->user_thr = qr->has_thr ? qr->thr : -INFINITY;
	if (rv == NULL)
		return 0;
	name = json_string_value(json_object_get(rv, "adapter"));
	m = json_object_get(rv, "min");
	if (!json_is_object(rv) || name == NULL ||
	    json_object_size(rv) != 1u + (m != NULL))
		return err_set(e, ERR_INVALID, "bad_query",
		               "\"relevance\" is {\"adapter\": name, \"min\": x}");
	if (m != NULL) {
		if (!json_is_number(m) || !(json_number_value(m) >= 0) ||
		    !(json_number_value(m) < 1))
			return err_set(e, ERR_INVALID, "bad_query",
			               "relevance.min must be a number in [0, 1)");
		qr->rel_min = json_number_value(m);
		qr->has_thr = 1; /* a threshold search: exact and complete */
		qr->thr = -INFINITY;
	}
	if (json_object_get(body, "rescore") != NULL)
		return err_set(e, ERR_INVALID, "bad_query",
		               "\"relevance\" and \"rescore\" do not combine");
	if (qr->metric != INDEX_COSINE)
		return err_set(e, ERR_INVALID, "bad_query", "an adapter maps cosines: use metric cosine");
	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	rc = adapters_open(r, qr->ds, name, qr->info.schema.spaces[qr->space].name, &qr->rel, e);
	store_reader_close(r);
	return rc;
}

/* ---- hubness normalisation (search/normalizers.c): the request's "hubness" object ---- */

/* qr->hub from body's "hubness" (absent: NULL). A hubness search ranks by the normalised
 * score over the index's top candidates (or, with params.exact, the whole gallery). */
static int hubness_parse(struct core *core, const json_t *body, int count, struct query *qr,
                         struct err *e)
{
	const json_t *spec = json_object_get(body, "hubness");
	struct store_reader *r = NULL;
	int rc;

	if (spec == NULL)
		return 0;
	if (count || qr->rescore != NULL || qr->rel != NULL ||
	    json_object_get(body, "page_token") != NULL || qr->has_thr ||
	    qr->metric != INDEX_COSINE)
		return err_set(e, ERR_INVALID, "bad_query",
		               "\"hubness\" is for a cosine top-k search: no rescore, relevance, "
		               "score_threshold, page_token or search:count with it");
	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	rc = normalizers_query_open(r, qr->ds, qr->space, qr->info.schema.spaces[qr->space].name, spec,
	                        &qr->hub, e);
	store_reader_close(r);
	return rc;
}

/* A copy of qr for query q, with its mapping and its cosine bound. */
static int rel_query(struct query *local, const struct query *qr, const float *q,
                     struct err *e)
{
	int rc;

	*local = *qr;
	if ((rc = adapters_prepare(qr->rel, q, qr->dim, qr->rel_min, &local->rq, e)) != 0)
		return rc;
	if (!isnan(qr->rel_min)) {
		float b = adapters_scan_bound(&local->rq);

		local->thr = b > qr->user_thr ? b : qr->user_thr;
	}
	return 0;
}

/* Drop the hits whose relevance is below the minimum (order kept). */
static void rel_keep(const struct query *qr, struct hits *h)
{
	size_t k = 0;

	if (isnan(qr->rel_min))
		return;
	for (size_t i = 0; i < h->n; i++)
		if (adapters_score(qr->rel, &qr->rq, h->v[i].score) >= qr->rel_min)
			h->v[k++] = h->v[i];
	h->n = k;
}

static json_t *rel_stats(const struct query *qr)
{
	json_t *o = json_pack("{s:s, s:I}", "adapter", qr->rel->name, "version",
	                      (json_int_t)qr->rel->version);

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "min", isnan(qr->rel_min) ? json_null() : json_real(qr->rel_min));
	json_object_set_new(o, "cosine_bound", isnan(qr->rel_min) || !isfinite(qr->rq.cos_min)
	                                               ? json_null()
	                                               : json_real(qr->rq.cos_min));
	return o;
}

/* Rescore the hits of one query (raw cosines) with qr->hub: h->v[i].raw keeps the cosine,
 * .score becomes the normalised score. */
static int hubness_apply(struct core *core, const struct query *qr, struct hits *h,
                         struct err *e)
{
	struct store_reader *r = NULL;
	float *raw = malloc((h->n + 1) * sizeof *raw);
	uint64_t *rows = malloc((h->n + 1) * sizeof *rows);
	double *outs = malloc((h->n + 1) * sizeof *outs);
	int rc;

	if (raw == NULL || rows == NULL || outs == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	for (size_t i = 0; i < h->n; i++) {
		raw[i] = h->v[i].score;
		rows[i] = h->v[i].row;
	}
	if ((rc = store_reader_open(core->store, &r, e)) != 0 ||
	    (rc = normalizers_rescore(qr->hub, r, h->n, rows, raw, outs, e)) != 0)
		goto out;
	for (size_t i = 0; i < h->n; i++) {
		h->v[i].raw = raw[i];
		h->v[i].score = (float)outs[i];
	}
out:
	store_reader_close(r);
	free(raw);
	free(rows);
	free(outs);
	return rc;
}

/* Parse the request into qr (everything but the query vectors). */
static int parse_request(struct core *core, const char *dataset, const json_t *body, int count,
                         struct query *qr, struct err *e)
{
	static const char *const known[] = {"vector", "vectors", "record_id", "query_space", "space",
	                                    "limit", "score_threshold", "with", "params",
	                                    "page_token", "metric", "subset", "rescore",
	                                    "relevance",
	                                    "hubness", NULL};
	const json_t *v;
	const char *key, *space;
	json_t *val;
	int rc, sp;

	memset(qr, 0, sizeof *qr);
	if (!json_is_object(body))
		return err_set(e, ERR_INVALID, "bad_query", "the body must be a JSON object");
	json_object_foreach((json_t *)body, key, val) {
		size_t i;

		for (i = 0; known[i] != NULL && strcmp(known[i], key) != 0; i++)
			;
		if (known[i] == NULL)
			return err_set(e, ERR_INVALID, "unknown_field", "unknown field '%s'", key);
	}
	if ((rc = store_dataset_get(core->store, dataset, &qr->info, e)) != 0)
		return rc;
	qr->ds = qr->info.id;
	space = json_string_value(json_object_get(body, "space"));
	if (space == NULL && qr->info.schema.nspaces == 1)
		space = qr->info.schema.spaces[0].name;
	if (space == NULL || (sp = store_schema_find(&qr->info.schema, space)) < 0)
		return err_set(e, ERR_INVALID, "bad_query",
		               "\"space\" must name a space of the dataset");
	qr->space = (unsigned)sp;
	qr->dim = qr->info.schema.spaces[sp].dim;
	qr->metric = INDEX_COSINE;
	{
		/* without "metric", the space's index decides (an L2 index is searched by L2) */
		struct entry *en = entry_find(core->catalog, qr->ds, space, 0);

		if (en != NULL) {
			pthread_rwlock_rdlock(&en->lock);
			if (en->ix != NULL)
				qr->metric = en->ix->metric;
			pthread_rwlock_unlock(&en->lock);
		}
	}
	if ((v = json_object_get(body, "metric")) != NULL &&
	    index_metric_parse(json_string_value(v), &qr->metric) != 0)
		return err_set(e, ERR_INVALID, "bad_query", "\"metric\" must be cosine, ip or l2");
	qr->limit = 10;
	if ((v = json_object_get(body, "limit")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > LIMIT_MAX)
			return err_set(e, ERR_INVALID, "bad_query", "\"limit\" must be 1 to %d",
			               LIMIT_MAX);
		qr->limit = (size_t)json_integer_value(v);
	}
	if ((v = json_object_get(body, "score_threshold")) != NULL) {
		if (!json_is_number(v) || !isfinite(json_number_value(v)))
			return err_set(e, ERR_INVALID, "bad_query", "\"score_threshold\" must be a number");
		qr->has_thr = 1;
		qr->thr = (float)json_number_value(v);
	}
	if ((rc = rel_parse(core, body, qr, e)) != 0)
		return rc;
	if (count && !qr->has_thr)
		return err_set(e, ERR_INVALID, "bad_query",
		               "search:count needs \"score_threshold\" or \"relevance\".min");
	if ((v = json_object_get(body, "params")) != NULL) {
		const json_t *x;

		if (!json_is_object(v))
			return err_set(e, ERR_INVALID, "bad_query", "\"params\" must be an object");
		qr->exact = json_is_true(json_object_get(v, "exact"));
		if ((x = json_object_get(v, "ef_search")) != NULL) {
			if (!json_is_integer(x) || json_integer_value(x) < 1)
				return err_set(e, ERR_INVALID, "bad_query", "ef_search must be >= 1");
			qr->ef = (double)json_integer_value(x);
		}
		if ((x = json_object_get(v, "nprobe")) != NULL) {
			if (!json_is_integer(x) || json_integer_value(x) < 1)
				return err_set(e, ERR_INVALID, "bad_query", "nprobe must be >= 1");
			qr->nprobe = (double)json_integer_value(x);
		}
	}
	if ((v = json_object_get(body, "with")) != NULL) {
		size_t i;
		json_t *w;

		if (!json_is_array(v))
			return err_set(e, ERR_INVALID, "bad_query", "\"with\" must be an array");
		json_array_foreach(v, i, w) {
			const char *s = json_string_value(w);

			if (s != NULL && strcmp(s, "text") == 0)
				qr->with |= WITH_TEXT;
			else if (s != NULL && strcmp(s, "meta") == 0)
				qr->with |= WITH_META;
			else if (s != NULL && strcmp(s, "image") == 0)
				qr->with |= WITH_IMAGE;
			else if (s != NULL && strcmp(s, "kind") == 0)
				qr->with |= WITH_KIND;
			else if (json_is_object(w) && json_is_array(json_object_get(w, "scores")))
				qr->with_scores = json_object_get(w, "scores");
			else
				return err_set(e, ERR_INVALID, "bad_query",
				               "\"with\" takes text, meta, image, kind and "
				               "{\"scores\": [filter names]}");
		}
	}
	if ((v = json_object_get(body, "subset")) != NULL || json_object_get(body, "rescore")) {
		struct store_reader *r = NULL;
		const json_t *rs = json_object_get(body, "rescore");

		if (v != NULL && !json_is_string(v))
			return err_set(e, ERR_INVALID, "bad_query", "\"subset\" must be a subset name");
		if (rs != NULL && (!json_is_object(rs) ||
		                   !json_is_string(json_object_get(rs, "filter"))))
			return err_set(e, ERR_INVALID, "bad_query",
			               "\"rescore\" is {\"filter\": name, \"candidates\": n}");
		if ((rc = store_reader_open(core->store, &r, e)) != 0)
			return rc;
		if (v != NULL)
			rc = subset_members(r, qr->ds, json_string_value(v), qr->info.next_row,
			                    &qr->members, e);
		if (rc == 0 && rs != NULL) {
			const json_t *cand = json_object_get(rs, "candidates");

			rc = instance_open(r, qr->ds, &qr->info.schema,
			                   json_string_value(json_object_get(rs, "filter")), &qr->rescore, e);
			qr->candidates = 100;
			if (rc == 0 && cand != NULL) {
				if (!json_is_integer(cand) || json_integer_value(cand) < 1 ||
				    json_integer_value(cand) > 100000)
					rc = err_set(e, ERR_INVALID, "bad_query",
					             "rescore.candidates must be 1 to 100000");
				else
					qr->candidates = (size_t)json_integer_value(cand);
			}
		}
		store_reader_close(r);
		if (rc != 0)
			return rc;
		if (qr->rescore != NULL && json_object_get(body, "page_token") != NULL)
			return err_set(e, ERR_INVALID, "bad_query",
			               "a rescored search has no pages: raise rescore.candidates");
	}
	if ((rc = hubness_parse(core, body, count, qr, e)) != 0)
		return rc;
	/* the page token binds to the parameters (everything but the token and the query
	 * vectors, which token_hash adds per query) */
	{
		static const char *const unbound[] = {"page_token", "vector", "vectors", NULL};
		json_t *params = json_object();
		char *canon = NULL;

		json_object_foreach((json_t *)body, key, val) {
			size_t i;

			for (i = 0; unbound[i] != NULL && strcmp(unbound[i], key) != 0; i++)
				;
			if (unbound[i] == NULL && params != NULL)
				json_object_set(params, key, val);
		}
		if (params != NULL)
			canon = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(params);
		if (canon == NULL)
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		qr->hash = fnv1a(canon);
		free(canon);
	}
	if ((v = json_object_get(body, "page_token")) != NULL) {
		const char *t = json_string_value(v);
		unsigned long long sb, row, h;
		uint32_t bits;

		if (t == NULL || sscanf(t, "p1.%llx.%llu.%llx", &sb, &row, &h) != 3 ||
		    sb > 0xffffffffull)
			return err_set(e, ERR_MALFORMED, "bad_page_token", "page_token is not one of ours");
		bits = (uint32_t)sb;
		memcpy(&qr->after_s, &bits, 4);
		qr->after_row = row;
		qr->token = h; /* checked against the query vector by catalog_search */
		qr->has_after = 1;
	}
	return 0;
}

/* One query: hits, stats, page token. */
/* The entry whose index serves this request, or NULL: the index serves plain top-k;
 * thresholds, pages, subsets and exact requests are answered by the exact scan, which is
 * complete. factory gets its factory string, *exact_scores index_exact_scores(). */
static struct entry *usable_index(struct core *core, const struct query *qr, int count,
                                  char factory[INDEX_FACTORY_MAX + 1], int *exact_scores)
{
	struct entry *en = entry_find(core->catalog, qr->ds, qr->info.schema.spaces[qr->space].name, 0);
	int ok = 0;

	if (en == NULL || qr->exact || qr->has_thr || qr->has_after || count || qr->members != NULL)
		return NULL;
	pthread_rwlock_rdlock(&en->lock);
	ok = en->ix != NULL && en->ix->metric == qr->metric;
	if (ok) {
		snprintf(factory, INDEX_FACTORY_MAX + 1, "%s", en->ix->factory);
		*exact_scores = index_exact_scores(en->ix);
	}
	pthread_rwlock_unlock(&en->lock);
	return ok ? en : NULL;
}

/* One query (pre_sc, pre_ids: its index candidates when the caller searched a batch at
 * once; NULL otherwise). */
static int run_query(struct core *core, const struct query *qr, const float *q, int count,
                     const float *pre_sc, const int64_t *pre_ids, json_t **out, struct err *e)
{
	char factory[INDEX_FACTORY_MAX + 1] = "";
	int exact_scores = 0;
	struct entry *en = usable_index(core, qr, count, factory, &exact_scores);
	struct hits h = {0};
	struct store_reader *r = NULL;
	uint64_t scanned = 0;
	int use_index = en != NULL, rc;
	json_t *res = NULL, *arr, *stats;
	size_t shown;
	struct query local;

	if (qr->rel != NULL) {
		/* per query: the relevance bound becomes a cosine bound (see adapters_query) */
		if ((rc = rel_query(&local, qr, q, e)) != 0)
			return rc;
		qr = &local;
	}
	h.keep = qr->has_thr || count ? 0 : qr->limit + 1;
	if (qr->rescore != NULL && h.keep != 0 && h.keep < qr->candidates)
		h.keep = qr->candidates;
	if (qr->hub != NULL) /* exact: the whole gallery is rescored */
		h.keep = qr->exact ? 0 : normalizers_query_candidates(qr->hub) > h.keep
		                                 ? normalizers_query_candidates(qr->hub)
		                                 : h.keep;
	rc = use_index ? index_candidates(core, en, qr, q, pre_sc, pre_ids, exact_scores, &h, &scanned,
	                                  e)
	               : exact_scan(core, qr, q, &h, &scanned, e);
	if (rc != 0)
		goto out;
	if (qr->rescore != NULL && h.n > 0 && !count) {
		float *raw = malloc(h.n * sizeof *raw), *nq = malloc(qr->dim * sizeof *nq);
		float *outs = malloc(h.n * sizeof *outs);
		uint64_t *rows = malloc(h.n * sizeof *rows);
		double qq = 0;

		for (uint32_t k = 0; k < qr->dim; k++)
			qq += (double)q[k] * q[k];
		if (raw == NULL || nq == NULL || outs == NULL || rows == NULL) {
			rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		} else {
			for (uint32_t k = 0; k < qr->dim; k++)
				nq[k] = qq > 0 ? (float)(q[k] / sqrt(qq)) : 0;
			for (size_t i = 0; i < h.n; i++) {
				raw[i] = h.v[i].score;
				rows[i] = h.v[i].row;
			}
			rc = filter_rescore(qr->rescore, nq, qr->dim, h.n, rows, raw, outs, e);
			for (size_t i = 0; rc == 0 && i < h.n; i++) {
				h.v[i].raw = raw[i];
				h.v[i].score = outs[i];
			}
		}
		free(raw);
		free(nq);
		free(outs);
		free(rows);
		if (rc != 0)
			goto out;
	}
	if (qr->rel != NULL)
		rel_keep(qr, &h);
	if (qr->hub != NULL && h.n > 0 && (rc = hubness_apply(core, qr, &h, e)) != 0)
		goto out;
	if (count) {
		res = json_pack("{s:I, s:{s:I, s:b}}", "count", (json_int_t)h.n, "stats",
		                "candidates_scanned", (json_int_t)scanned, "exact", 1);
		if (qr->rel != NULL && res != NULL)
			json_object_set_new(json_object_get(res, "stats"), "relevance",
			                    rel_stats(qr));
		goto out;
	}
	qsort(h.v, h.n, sizeof *h.v, hit_cmp);
	shown = h.n < qr->limit ? h.n : qr->limit;
	arr = json_array();
	if ((rc = store_reader_open(core->store, &r, e)) != 0) {
		json_decref(arr);
		goto out;
	}
	for (size_t i = 0; i < shown; i++) {
		json_t *o = result_json(core, qr, r, &h.v[i]);

		if (o != NULL)
			json_array_append_new(arr, o);
	}
	store_reader_close(r);
	stats = json_pack("{s:I, s:I, s:b, s:o, s:b, s:o}", "candidates_scanned",
	                  (json_int_t)scanned, "returned", (json_int_t)shown, "truncated",
	                  h.n > qr->limit, "truncation_reason",
	                  h.n > qr->limit ? json_string("limit") : json_null(), "exact", !use_index,
	                  "index", use_index ? json_string(factory) : json_null());
	if (qr->rel != NULL && stats != NULL)
		json_object_set_new(stats, "relevance", rel_stats(qr));
	res = json_pack("{s:o, s:o}", "results", arr, "stats", stats);
	if (res != NULL && h.n > qr->limit) {
		/* keyset: the last shown result's (score, row) and what the query binds to */
		char tok[96];
		uint32_t bits;

		memcpy(&bits, &h.v[shown - 1].score, 4);
		snprintf(tok, sizeof tok, "p1.%x.%llu.%llx", (unsigned)bits,
		         (unsigned long long)h.v[shown - 1].row,
		         (unsigned long long)token_hash(qr, q));
		json_object_set_new(res, "page_token", json_string(tok));
	} else if (res != NULL) {
		json_object_set_new(res, "page_token", json_null());
	}
out:
	free(h.v);
	if (rc == 0 && res == NULL)
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if (rc == 0)
		*out = res;
	return rc;
}

/* A share of a batch: queries i0 .. i1-1, each answer serialised into text[]. */
struct batch_part {
	struct core *core;
	const struct query *qr;
	const float *q;
	const float *csc;    /* the index's scores of cand */
	const int64_t *cand; /* NULL: no index candidates */
	size_t kc, i0, i1;
	int count, rc;
	char **text;
	struct err e;
};

static void *batch_part_run(void *arg)
{
	struct batch_part *p = arg;

	for (size_t i = p->i0; i < p->i1 && p->rc == 0; i++) {
		json_t *one = NULL;

		p->rc = run_query(p->core, p->qr, p->q + i * p->qr->dim, p->count,
		                  p->cand != NULL ? p->csc + i * p->kc : NULL,
		                  p->cand != NULL ? p->cand + i * p->kc : NULL, &one, &p->e);
		if (p->rc == 0 && (p->text[i] = json_dumps(one, JSON_COMPACT)) == NULL)
			p->rc = err_set(&p->e, ERR_NOMEM, "out_of_memory", "out of memory");
		json_decref(one);
	}
	return NULL;
}

/* The per-query work of a batch (exact scores, records, JSON text) spread over the cores:
 * the index search of the whole batch already ran on all of them, and running the rest on
 * one thread left the other idle for about half of a 64-query batch (bench/search.py).
 * *out new: {"queries": [...]} as JSON text, *len its length. */
static int run_batch(struct core *core, const struct query *qr, const float *q, size_t nq,
                     int count, const float *csc, const int64_t *cand, size_t kc, char **out,
                     size_t *len, struct err *e)
{
	enum { PARTS_MAX = 8, QUERIES_PER_PART_MIN = 4 };
	static const char head[] = "{\"queries\":[", tail[] = "]}";
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t parts = cpus > 1 ? (size_t)cpus : 1, started = 0, n = sizeof head + sizeof tail;
	struct batch_part part[PARTS_MAX];
	pthread_t th[PARTS_MAX];
	char **text = calloc(nq, sizeof *text), *buf = NULL;
	int rc = 0;

	if (text == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if (parts > PARTS_MAX)
		parts = PARTS_MAX;
	if (parts > nq / QUERIES_PER_PART_MIN)
		parts = nq / QUERIES_PER_PART_MIN > 0 ? nq / QUERIES_PER_PART_MIN : 1;
	for (size_t p = 0; p < parts; p++) {
		part[p] = (struct batch_part){.core = core, .qr = qr, .q = q, .csc = csc, .cand = cand,
		                              .kc = kc, .i0 = nq * p / parts,
		                              .i1 = nq * (p + 1) / parts, .count = count,
		                              .text = text};
		/* part 0 runs on this thread; a part whose thread cannot start runs here too */
		if (p > 0 && pthread_create(&th[p], NULL, batch_part_run, &part[p]) == 0)
			started |= (size_t)1 << p;
	}
	batch_part_run(&part[0]);
	for (size_t p = 1; p < parts; p++) {
		if (started >> p & 1)
			pthread_join(th[p], NULL);
		else
			batch_part_run(&part[p]);
	}
	for (size_t p = 0; p < parts && rc == 0; p++)
		if (part[p].rc != 0) {
			*e = part[p].e;
			rc = part[p].rc;
		}
	for (size_t i = 0; rc == 0 && i < nq; i++)
		n += strlen(text[i]) + 1;
	if (rc == 0 && (buf = malloc(n)) == NULL)
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if (rc == 0) {
		char *w = buf;

		memcpy(w, head, sizeof head - 1);
		w += sizeof head - 1;
		for (size_t i = 0; i < nq; i++) {
			size_t m = strlen(text[i]);

			if (i > 0)
				*w++ = ',';
			memcpy(w, text[i], m);
			w += m;
		}
		memcpy(w, tail, sizeof tail);
		*out = buf;
		*len = (size_t)(w - buf) + sizeof tail - 1;
	}
	for (size_t i = 0; i < nq; i++)
		free(text[i]);
	free(text);
	return rc;
}

static void query_free(struct query *qr)
{
	free(qr->members);
	filter_free(qr->rescore);
	adapters_free(qr->rel);
	normalizers_query_free(qr->hub);
}

/* nq query vectors: one index search for the whole batch (FAISS spreads it over the cores)
 * when the index serves these queries, then the per-query work (run_batch). */
static int search_batch(struct core *core, const struct query *qr, const float *q, size_t nq,
                        int count, char **out, size_t *len, struct err *e)
{
	size_t kc = candidates_per_query(qr);
	char factory[INDEX_FACTORY_MAX + 1];
	int exact_scores = 0, rc = 0;
	struct entry *en = usable_index(core, qr, count, factory, &exact_scores);
	int64_t *cand = NULL;
	float *csc = NULL;

	if (en != NULL) {
		cand = malloc(nq * kc * sizeof *cand);
		csc = malloc(nq * kc * sizeof *csc);
		rc = cand != NULL && csc != NULL
		             ? index_query(en, qr, nq, q, kc, csc, cand, e)
		             : err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	if (rc == 0)
		rc = run_batch(core, qr, q, nq, count, csc, cand, kc, out, len, e);
	free(cand);
	free(csc);
	return rc;
}

/* Raw query rows (application/octet-stream) into nq * dim floats; every value finite. */
static int rows_decode(const struct catalog_rows *rows, uint32_t dim, float **out, size_t *nq,
                       struct err *e)
{
	size_t esz = rows->f16 ? 2 : 4, row = (size_t)dim * esz, n, bad;
	float *q;

	if (rows->len == 0 || rows->len % row != 0 || rows->len / row > CATALOG_BATCH_MAX)
		return err_set(e, ERR_INVALID, "bad_query",
		               "the body holds %zu bytes: 1 to %d rows of %u %s values (%zu bytes "
		               "each)",
		               rows->len, CATALOG_BATCH_MAX, (unsigned)dim, rows->f16 ? "f16" : "f32",
		               row);
	n = rows->len / row;
	if ((q = malloc(n * dim * sizeof *q)) == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if ((bad = le_values(rows->data, n * dim, rows->f16, q)) < n * dim) {
		free(q);
		return err_set(e, ERR_INVALID, "non_finite", "row %zu: value %zu is not a finite number",
		               bad / dim, bad % dim);
	}
	*out = q;
	*nq = n;
	return 0;
}

/* The vector of a record_id query: the record's embedding in query_space (default: space),
 * e.g. its text vector to search images. */
static int record_vector(struct core *core, const struct query *qr, const json_t *body,
                         const json_t *rid, float *q, struct err *e)
{
	const char *id = json_string_value(rid);
	const char *qs = json_string_value(json_object_get(body, "query_space"));
	int qsp = qs != NULL ? store_schema_find(&qr->info.schema, qs) : (int)qr->space;
	struct store_record_out rec = {0};
	int rc;

	if (id == NULL || qsp < 0 || qr->info.schema.spaces[qsp].dim != qr->dim)
		return err_set(e, ERR_INVALID, "bad_query",
		               "record_id needs a string id and a query_space of the same dim");
	if ((rc = store_get_record(core->store, qr->ds, id, strlen(id), 1, &rec, e)) != 0)
		return rc;
	if (rec.vec[qsp] == NULL)
		rc = err_set(e, ERR_INVALID, "no_vector", "record '%s' has no '%s' vector", id,
		             qr->info.schema.spaces[qsp].name);
	else if (qr->info.schema.spaces[qsp].dtype == STORE_F16)
		vec_f16_to_f32(rec.vec[qsp], q, qr->dim);
	else
		memcpy(q, rec.vec[qsp], qr->dim * sizeof *q);
	store_record_out_free(&rec);
	return rc;
}

int catalog_search(struct core *core, const char *dataset, const json_t *body,
                   const struct catalog_rows *rows, int count, char **out, size_t *len,
                   struct err *e)
{
	json_t *one = NULL;
	struct query qr;
	const json_t *vec = json_object_get(body, "vector"), *vecs = json_object_get(body, "vectors");
	const json_t *rid = json_object_get(body, "record_id");
	float *q = NULL;
	size_t nq = 0;
	int rc;

	if ((rc = parse_request(core, dataset, body, count, &qr, e)) != 0)
		goto out;
	if ((vec != NULL) + (vecs != NULL) + (rid != NULL) + (rows != NULL) != 1) {
		rc = err_set(e, ERR_INVALID, "bad_query",
		             rows != NULL ? "a body of vector rows takes no \"vector\", \"vectors\" "
		                            "or \"record_id\""
		                          : "give exactly one of \"vector\", \"vectors\" and "
		                            "\"record_id\"");
		goto out;
	}
	if (vecs != NULL || rows != NULL) {
		json_t *vi;
		size_t i;

		if (qr.has_after) {
			rc = err_set(e, ERR_INVALID, "bad_query",
			             "a batch takes no page_token: continue one query with \"vector\" "
			             "and its own token");
			goto out;
		}
		if (rows != NULL) {
			if ((rc = rows_decode(rows, qr.dim, &q, &nq, e)) != 0)
				goto out;
		} else {
			if (!json_is_array(vecs) || json_array_size(vecs) == 0 ||
			    json_array_size(vecs) > CATALOG_BATCH_MAX) {
				rc = err_set(e, ERR_INVALID, "bad_query",
				             "\"vectors\" is an array of 1 to %d vectors", CATALOG_BATCH_MAX);
				goto out;
			}
			nq = json_array_size(vecs);
			if ((q = malloc(nq * qr.dim * sizeof *q)) == NULL) {
				rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
				goto out;
			}
			json_array_foreach(vecs, i, vi) {
				char what[32];

				snprintf(what, sizeof what, "vectors[%zu]", i);
				if ((rc = parse_vector(vi, qr.dim, q + i * qr.dim, what, e)) != 0)
					goto out;
			}
		}
		rc = search_batch(core, &qr, q, nq, count, out, len, e);
		goto out;
	}
	if ((q = malloc(qr.dim * sizeof *q)) == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	rc = vec != NULL ? parse_vector(vec, qr.dim, q, "vector", e)
	                 : record_vector(core, &qr, body, rid, q, e);
	if (rc == 0 && qr.has_after && token_hash(&qr, q) != qr.token)
		rc = err_set(e, ERR_MALFORMED, "page_token_mismatch",
		             "page_token was made for a request with other parameters");
	if (rc == 0)
		rc = run_query(core, &qr, q, count, NULL, NULL, &one, e);
	if (rc == 0 && (*out = json_dumps(one, JSON_COMPACT)) == NULL)
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if (rc == 0)
		*len = strlen(*out);
	json_decref(one);
out:
	free(q);
	query_free(&qr);
	return rc;
}
