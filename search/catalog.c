/* SPDX-License-Identifier: MIT */
/* catalog: index definitions, builds, ingest updates, index files, and the built indexes'
 * locked search for the query engine (search/query.c).
 *
 * Entries (one per built dataset space) live until catalog_close, so a pointer found under
 * the catalog mutex stays valid; the index inside is swapped under the entry's write lock. */
#include "search/catalog.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "lib/err.h"
#include "core/jobs.h"
#include "lib/log.h"
#include "filters/filter.h"
#include "filters/scan.h"
#include "index/index.h"
#include "store/jdoc.h"
#include "store/store.h"
#include "lib/thp.h"
#include "lib/vec.h"

/* An index of fewer vectors is not rebuilt for its dead ones: a rebuild costs more. */
#define DEAD_REBUILD_MIN 1000
#define TRAIN_MAX 65536     /* vectors a training sample holds at most */
/* Search parameters an index gets unless a request asks otherwise. FAISS's own defaults
 * (efSearch 16, nprobe 1) gave recall@10 of 0.86 (HNSW32, 50,000 x 768-d) and far less for IVF
 * in bench/search.py; these reach 0.95 and more on the tests' mixtures (docs/performance.md). */
#define DEFAULT_EF_SEARCH 64
#define DEFAULT_NPROBE 16
/* efConstruction of an HNSW build unless its definition says otherwise: FAISS's own. hnswlib's
 * 200 was measured against it (fashion-mnist 60,000 x 784-d, HNSW32, AVX2 FAISS, 64-query
 * batches, both graphs searched in turn three times): recall@10 0.99 at about 4,400 QPS with
 * either (efSearch 32 on the 40 graph, about 50 on the 200 one), for a build of 29 s instead of
 * 14 s; so 40 (docs/performance.md). A definition stored before the field existed was built
 * with it too. */
#define DEFAULT_EF_CONSTRUCTION 40
#define EF_CONSTRUCTION_MAX 4096

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
	/* Upserts and deletes: rows below `high` may already have a vector in ix. An index that
	 * can remove drops the old vector; one that cannot (HNSW, IVF) keeps it as `dead` (an
	 * upper bound: a record that gains its first vector in an upsert counts too) until a
	 * rebuild, queued once the dead pass --index-rebuild-dead percent of the vectors. */
	uint64_t high;
	uint64_t dead;
	uint64_t rebuild_job; /* queued for the dead, not installed yet; 0 = none */
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

	if ((rc = jdoc_txn_get(t, m->ds, STORE_NS_INDEX, m->space, &doc, e)) != 0)
		return rc == ERR_NOT_FOUND ? 0 : rc; /* deleted meanwhile: nothing to mark */
	if (m->saved != NULL)
		json_object_set(doc, "saved", (json_t *)m->saved);
	else
		json_object_del(doc, "saved");
	rc = jdoc_txn_put(t, m->ds, STORE_NS_INDEX, m->space, doc, e);
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

/* Memory of at least this many bytes is put on huge pages after an index is installed. */
#define HUGE_PAGES_MIN (8u << 20)

/* Put the process's large anonymous memory, the index just installed in it, on transparent
 * huge pages (lib/thp.h), unless --index-huge-pages 0. An HNSW search reads vectors at random
 * across the index; with 4 KiB pages nearly each is a TLB miss (fashion-mnist, HNSW32: 64-query
 * batches 15 to 20% faster on 2 MiB pages, docs/performance.md). */
static void huge_pages(struct core *core, const char *after)
{
	struct thp_result t;

	if (!core->index_huge_pages || thp_advise(HUGE_PAGES_MIN, &t) != 0)
		return;
	log_msg(LOG_INFO, "huge_pages", "after=%s advised_mb=%llu collapsed_mb=%llu anon_huge_mb=%llu",
	        after, (unsigned long long)(t.advised_bytes >> 20),
	        (unsigned long long)(t.collapsed_bytes >> 20), (unsigned long long)(t.huge_bytes >> 20));
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
	en->high = ds->next_row;
	en->dead = 0;
	pthread_rwlock_unlock(&en->lock);
	log_msg(LOG_INFO, "index_loaded", "dataset=%s space=%s vectors=%zu", ds->name, space,
	        index_count(ix));
	huge_pages(c->core, "index_loaded");
	return 1;
}

/* ---- definitions ---- */

static const struct jdoc_kind index_docs = {STORE_NS_INDEX, "index_not_found", "index on space"};

/* The efConstruction an index document builds with: its "ef_construction", else (HNSW, a
 * definition stored before the field) the default; 0 for a factory without a graph. */
static long long doc_ef_construction(const json_t *doc)
{
	const char *f = json_string_value(json_object_get(doc, "factory"));
	const json_t *v = json_object_get(doc, "ef_construction");

	if (f == NULL || strstr(f, "HNSW") == NULL)
		return 0;
	return json_is_integer(v) ? (long long)json_integer_value(v) : DEFAULT_EF_CONSTRUCTION;
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
	uint64_t dead = 0;
	int built = 0, removes = 0;

	if (v == NULL)
		return NULL;
	if (en != NULL) {
		pthread_rwlock_rdlock(&en->lock);
		if (en->ix != NULL && en->version ==
		                              (uint64_t)json_integer_value(json_object_get(doc, "version"))) {
			built = 1;
			count = index_count(en->ix);
			dead = en->dead;
			removes = index_can_remove(en->ix);
		}
		pthread_rwlock_unlock(&en->lock);
	}
	if (doc_ef_construction(doc) > 0)
		json_object_set_new(v, "ef_construction",
		                    json_integer((json_int_t)doc_ef_construction(doc)));
	json_object_set_new(v, "state", json_string(built ? "ready" : "building"));
	json_object_set_new(v, "vectors", json_integer((json_int_t)count));
	/* vectors of upserted or deleted rows an index keeps until a rebuild (HNSW, IVF) */
	json_object_set_new(v, "stats",
	                    json_pack("{s:I, s:f, s:b, s:i}", "dead", (json_int_t)dead, "dead_share",
	                              count > 0 ? (double)dead / (double)count : 0.0, "removes",
	                              removes, "rebuild_at_percent",
	                              (int)core->index_rebuild_dead));
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
	long long ef_construction; /* 0: not an HNSW factory */
	int unchanged, created;
	uint64_t job;
	json_t *doc;
};

static int put_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct put_ctx *c = ctx;
	json_t *old = NULL, *args;
	uint64_t version;
	int rc;

	c->unchanged = c->created = 0;
	json_decref(c->doc);
	c->doc = NULL;
	if ((rc = store_txn_dataset(t, c->ds->id, NULL, e)) != 0)
		return rc;
	rc = jdoc_named_txn_previous(t, &index_docs, c->ds->id, c->space, &old, &version, e);
	if (rc != 0)
		return rc;
	if (old == NULL) {
		c->created = 1;
	} else {
		const char *f = json_string_value(json_object_get(old, "factory"));
		const char *m = json_string_value(json_object_get(old, "metric"));

		if (f && m && strcmp(f, c->factory) == 0 && strcmp(m, c->metric) == 0 &&
		    doc_ef_construction(old) == c->ef_construction) {
			c->unchanged = 1;
			c->doc = old;
			return 0;
		}
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
	if (c->doc != NULL && c->ef_construction > 0)
		json_object_set_new(c->doc, "ef_construction", json_integer(c->ef_construction));
	if (c->doc == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	return jdoc_named_txn_put(t, &index_docs, c->ds->id, c->space, c->doc, e);
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
		if (strcmp(key, "factory") != 0 && strcmp(key, "metric") != 0 &&
		    strcmp(key, "ef_construction") != 0)
			return err_set(e, ERR_INVALID, "unknown_field",
			               "unknown field '%s' (an index has \"factory\", \"metric\" and, "
			               "for HNSW, \"ef_construction\")",
			               key);
	}
	c.factory = json_string_value(json_object_get(body, "factory"));
	c.metric = json_object_get(body, "metric") ? json_string_value(json_object_get(body, "metric"))
	                                           : "cosine";
	if (c.factory == NULL)
		return err_set(e, ERR_INVALID, "bad_index",
		               "\"factory\" must be a FAISS index-factory string, e.g. \"HNSW32\"");
	if (c.metric == NULL || index_metric_parse(c.metric, &m) != 0)
		return err_set(e, ERR_INVALID, "bad_index", "\"metric\" must be cosine, ip or l2");
	v = json_object_get(body, "ef_construction");
	if (strstr(c.factory, "HNSW") == NULL) {
		if (v != NULL)
			return err_set(e, ERR_INVALID, "bad_index",
			               "\"ef_construction\" is for HNSW graphs; '%s' has none", c.factory);
	} else if (v == NULL) {
		c.ef_construction = DEFAULT_EF_CONSTRUCTION;
	} else if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	           json_integer_value(v) > EF_CONSTRUCTION_MAX) {
		return err_set(e, ERR_INVALID, "bad_index",
		               "\"ef_construction\" must be an integer from 1 to %d (default %d)",
		               EF_CONSTRUCTION_MAX, DEFAULT_EF_CONSTRUCTION);
	} else {
		c.ef_construction = (long long)json_integer_value(v);
	}
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

/* view_of as a jdoc_view_fn. */
static json_t *named_view(void *ctx, uint32_t ds, const json_t *doc)
{
	return view_of(ctx, ds, doc);
}

int catalog_get_json(struct core *core, const char *dataset, const char *space, json_t **out,
                     struct err *e)
{
	return jdoc_named_view(core->store, &index_docs, dataset, space, named_view, core, out, e);
}

int catalog_list_json(struct core *core, const char *dataset, json_t **out, struct err *e)
{
	return jdoc_named_list(core->store, &index_docs, dataset, named_view, core, out, e);
}

int catalog_delete(struct core *core, const char *dataset, const char *space, struct err *e)
{
	struct store_dataset_info ds;
	struct entry *en;
	int rc;

	/* the built index is not in the store: it goes below, once the definition is gone */
	if ((rc = store_dataset_get(core->store, dataset, &ds, e)) != 0 ||
	    (rc = jdoc_named_delete(core->store, &index_docs, ds.id, space, NULL, NULL, e)) != 0)
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
	if (n > 0 && index_can_remove(en->ix)) /* no second copy of an upserted row */
		index_remove(en->ix, n, (const int64_t *)en->pending, NULL, NULL);
	else /* the build may have read these rows before their upsert: the old vectors are dead */
		en->dead += n;
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

struct queue_ctx {
	struct core *core;
	uint32_t ds;
	const char *dataset, *space;
	const json_t *args;
	uint64_t job;
};

/* Queue the rebuild and make it the definition's job, so that the index's `build` names
 * the job that builds (and then built) what is served. */
static int queue_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct queue_ctx *q = ctx;
	json_t *doc = NULL;
	int rc;

	if ((rc = jobs_txn_create(q->core->jobs, t, "index", q->ds, q->dataset, q->space, q->args,
	                          &q->job, e)) != 0 ||
	    (rc = jdoc_txn_get(t, q->ds, STORE_NS_INDEX, q->space, &doc, e)) != 0)
		return rc;
	json_object_set_new(doc, "job", json_integer((json_int_t)q->job));
	rc = jdoc_txn_put(t, q->ds, STORE_NS_INDEX, q->space, doc, e);
	json_decref(doc);
	return rc;
}

/* Queue a (re)build of dataset ds_id's index of space (args: its version) as the job of its
 * definition; an older unfinished build of it is superseded. 0 and *job, or an error. */
static int queue_build(struct core *core, uint32_t ds_id, const char *dataset, const char *space,
                       const json_t *args, uint64_t *job)
{
	struct queue_ctx q = {core, ds_id, dataset, space, args, 0};
	int rc = store_write(core->store, queue_fn, &q, NULL);

	if (rc != 0)
		return rc;
	jobs_cancel_matching(core->jobs, ds_id, "index", space, q.job);
	jobs_submit(core->jobs, q.job);
	*job = q.job;
	return 0;
}

/* Rows among ids[0..m) that may already have a vector in the index (below en->high) are
 * upserts: an index that can remove drops the old vector first, so the index holds one a row;
 * one that cannot counts it dead. The caller holds en->lock for writing. */
static void replace_old(struct entry *en, const int64_t *ids, size_t m)
{
	size_t old = 0;
	int64_t *olds = NULL;

	for (size_t i = 0; i < m; i++)
		old += (uint64_t)ids[i] < en->high;
	if (old > 0 && index_can_remove(en->ix) && (olds = malloc(old * sizeof *olds)) != NULL) {
		size_t k = 0;

		for (size_t i = 0; i < m; i++)
			if ((uint64_t)ids[i] < en->high)
				olds[k++] = ids[i];
		index_remove(en->ix, k, olds, NULL, NULL);
		free(olds);
	} else if (old > 0 && !index_can_remove(en->ix)) {
		en->dead += old;
	}
	for (size_t i = 0; i < m; i++)
		if ((uint64_t)ids[i] >= en->high)
			en->high = (uint64_t)ids[i] + 1;
}

/* 1 when the dead vectors of an index that cannot remove pass --index-rebuild-dead percent
 * of its vectors (and there are enough vectors to care) and no such rebuild is queued; the
 * caller then queues one with queue_dead_rebuild. The caller holds en->lock. */
static int dead_rebuild_due(const struct core *core, struct entry *en)
{
	size_t count;

	if (en->ix == NULL || core->index_rebuild_dead == 0 || en->rebuild_job != 0 ||
	    en->building > 0 || index_can_remove(en->ix))
		return 0;
	count = index_count(en->ix);
	if (count < DEAD_REBUILD_MIN ||
	    en->dead * 100 < (uint64_t)core->index_rebuild_dead * count)
		return 0;
	en->rebuild_job = UINT64_MAX; /* claimed: queue_dead_rebuild sets the job */
	return 1;
}

/* Queue a rebuild of en's definition (same version: the build replaces the index with one
 * of the live vectors only) as its job, off the entry's lock. */
static void queue_dead_rebuild(struct core *core, struct entry *en, uint32_t ds_id)
{
	struct store_dataset_info all;
	struct store_reader *r = NULL;
	json_t *doc = NULL, *args = NULL;
	uint64_t job = 0;
	int ok = 0;

	if (store_reader_open(core->store, &r, NULL) == 0 &&
	    store_reader_dataset(r, ds_id, &all, NULL) == 0 &&
	    jdoc_reader_get(r, ds_id, STORE_NS_INDEX, en->space, &doc, NULL) == 0 &&
	    (args = json_pack("{s:O}", "version", json_object_get(doc, "version"))) != NULL) {
		store_reader_close(r);
		r = NULL;
		ok = queue_build(core, ds_id, all.name, en->space, args, &job) == 0;
	}
	store_reader_close(r);
	json_decref(args);
	json_decref(doc);
	pthread_rwlock_wrlock(&en->lock);
	en->rebuild_job = ok ? job : 0;
	pthread_rwlock_unlock(&en->lock);
	if (ok)
		log_msg(LOG_INFO, "index_rebuild_dead", "dataset=%s space=%s dead=%llu job=%llu",
		        all.name, en->space, (unsigned long long)en->dead, (unsigned long long)job);
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
	int sp, rc, again;

	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		goto done;
	if ((rc = store_reader_dataset(r, job_ds(j), &info, e)) != 0 ||
	    (rc = jdoc_named_reader_get(r, &index_docs, job_ds(j), space, &doc, e)) != 0)
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
	                       json_string_value(json_object_get(doc, "factory")), e)) != 0 ||
	    (doc_ef_construction(doc) > 0 &&
	     (rc = index_set_param(ix, "efConstruction", (double)doc_ef_construction(doc),
	                           e)) != 0))
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
		en->high = info.next_row;
		en->dead = 0;
		if (en->rebuild_job == job_id(j))
			en->rebuild_job = 0;
		ix = NULL;
		index_free(old);
	}
	if (store_dataset_get(core->store, info.name, &now, NULL) == 0 && now.id == info.id &&
	    now.next_row > info.next_row)
		rc = feed(core, NULL, info.id, &info.schema, (unsigned)sp, info.next_row, now.next_row,
		          en->ix, NULL, NULL, &added, e);
	if (now.next_row > en->high)
		en->high = now.next_row;
	{
		int rc2 = readd_pending(core, en, &info.schema, (unsigned)sp, info.next_row, &readded, e);

		rc = rc != 0 ? rc : rc2;
	}
	/* upserts during the build may have left it past the threshold already */
	again = rc == 0 && dead_rebuild_due(core, en);
	pthread_rwlock_unlock(&en->lock);
	if (again)
		queue_dead_rebuild(core, en, info.id);
	en = NULL; /* this build's count on the entry ended in readd_pending */
	if (rc == 0) {
		log_msg(LOG_INFO, "index_built", "dataset=%s space=%s vectors=%llu readded=%llu",
		        info.name, space, (unsigned long long)added, (unsigned long long)readded);
		huge_pages(core, "index_built");
	}
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
		int rebuild;

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
		if (en->ix != NULL && m > 0)
			replace_old(en, ids, m);
		if (en->ix != NULL && m > 0 && index_add(en->ix, m, buf, ids, NULL) != 0) {
			for (size_t i = 0; i < m; i++) /* one bad (zero) vector must not cost the rest */
				index_add(en->ix, 1, buf + i * dim, &ids[i], NULL);
		}
		rebuild = dead_rebuild_due(core, en);
		pthread_rwlock_unlock(&en->lock);
		if (rebuild)
			queue_dead_rebuild(core, en, ds_id);
		free(buf);
		free(ids);
	}
}

void catalog_on_delete(struct core *core, uint32_t ds_id, const struct store_schema *schema,
                       uint64_t row)
{
	struct catalog *c = core->catalog;
	const int64_t id = (int64_t)row;

	if (c == NULL)
		return;
	for (unsigned sp = 0; sp < schema->nspaces; sp++) {
		struct entry *en = entry_find(c, ds_id, schema->spaces[sp].name, 0);
		struct err e = {0};
		int rebuild;

		if (en == NULL)
			continue;
		/* The others keep the vector: search reads every candidate's liveness, and widens
		 * past the deleted ones (index_candidates, search/query.c): never answered. */
		pthread_rwlock_wrlock(&en->lock);
		if (en->ix != NULL && index_can_remove(en->ix) &&
		    index_remove(en->ix, 1, &id, NULL, &e) != 0)
			log_msg(LOG_WARN, "index_remove", "dataset_id=%u space=%s row=%llu msg=\"%s\"",
			        (unsigned)ds_id, en->space, (unsigned long long)row, e.detail);
		else if (en->ix != NULL && !index_can_remove(en->ix) && row < en->high)
			en->dead++;
		rebuild = dead_rebuild_due(core, en);
		pthread_rwlock_unlock(&en->lock);
		if (rebuild)
			queue_dead_rebuild(core, en, ds_id);
	}
}

/* ---- open / close ---- */

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
		rc = jdoc_reader_list(r, all[i].id, STORE_NS_INDEX, &docs, e);
		store_reader_close(r);
		json_array_foreach(docs, k, doc) {
			json_t *args;

			if (load_saved(c, &all[i], doc))
				continue;
			const char *space = json_string_value(json_object_get(doc, "space"));
			uint64_t job = 0, *grown;

			args = json_pack("{s:O}", "version", json_object_get(doc, "version"));
			/* a build left unfinished by the last process is superseded by this one */
			if (space == NULL || args == NULL ||
			    queue_build(c->core, all[i].id, all[i].name, space, args, &job) != 0) {
				json_decref(args);
				continue;
			}
			json_decref(args);
			grown = realloc(c->startup, (c->nstartup + 1) * sizeof *grown);
			if (grown != NULL) {
				c->startup = grown;
				c->startup[c->nstartup++] = job;
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

size_t catalog_building(struct catalog *c)
{
	size_t open = 0;

	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->nstartup;) {
		json_t *j = NULL;
		const char *st;
		int running = 0;

		if (jobs_get_json(c->core->jobs, c->startup[i], &j, NULL) == 0) {
			st = json_string_value(json_object_get(j, "state"));
			running = st != NULL && (strcmp(st, "queued") == 0 || strcmp(st, "running") == 0);
			json_decref(j);
		}
		if (running) {
			open++;
			i++;
		} else { /* finished (or pruned long ago): forget it */
			c->startup[i] = c->startup[--c->nstartup];
		}
	}
	pthread_mutex_unlock(&c->mu);
	return open;
}

/* ---- the built indexes, for the query engine ---- */

int catalog_index_built(struct catalog *c, uint32_t ds_id, const char *space,
                        enum index_metric *metric, char factory[INDEX_FACTORY_MAX + 1],
                        int *exact_scores, uint64_t *dead)
{
	struct entry *en = entry_find(c, ds_id, space, 0);
	int built = 0;

	if (en == NULL)
		return 0;
	pthread_rwlock_rdlock(&en->lock);
	if ((built = en->ix != NULL)) {
		if (metric != NULL)
			*metric = en->ix->metric;
		if (factory != NULL)
			snprintf(factory, INDEX_FACTORY_MAX + 1, "%s", en->ix->factory);
		if (exact_scores != NULL)
			*exact_scores = index_exact_scores(en->ix);
		if (dead != NULL)
			*dead = en->dead;
	}
	pthread_rwlock_unlock(&en->lock);
	return built;
}

int catalog_index_search(struct catalog *c, uint32_t ds_id, const char *space, size_t nq,
                         const float *q, size_t k, double ef_search, double nprobe, float *sc,
                         int64_t *ids, struct err *e)
{
	struct entry *en = entry_find(c, ds_id, space, 0);
	int rc = 0;

	if (en == NULL)
		return err_set(e, ERR_UNAVAILABLE, "index_gone", "the index went away");
	if (ef_search > 0 || nprobe > 0) {
		pthread_rwlock_wrlock(&en->lock); /* parameters live in the index */
		if (en->ix == NULL)
			rc = err_set(e, ERR_UNAVAILABLE, "index_gone", "the index went away");
		else if ((ef_search > 0 && !has_param(en->ix, "efSearch")) ||
		         (nprobe > 0 && !has_param(en->ix, "nprobe")))
			rc = err_set(e, ERR_INVALID, "bad_param",
			             "index '%s' has no such search parameter (ef_search is for HNSW, "
			             "nprobe for IVF)",
			             en->ix->factory);
		if (rc == 0 && ef_search > 0)
			rc = index_set_param(en->ix, "efSearch", ef_search, e);
		if (rc == 0 && nprobe > 0)
			rc = index_set_param(en->ix, "nprobe", nprobe, e);
		if (rc == 0)
			rc = index_search(en->ix, nq, q, k, sc, ids, e);
		if (en->ix != NULL)
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

size_t catalog_index_count(struct catalog *c, uint32_t ds_id, const char *space)
{
	struct entry *en = entry_find(c, ds_id, space, 0);
	size_t n;

	if (en == NULL)
		return 0;
	pthread_rwlock_rdlock(&en->lock);
	n = en->ix != NULL ? index_count(en->ix) : 0;
	pthread_rwlock_unlock(&en->lock);
	return n;
}
