/* SPDX-License-Identifier: MIT */
/* instance: filter instances in the store, the scoring job, scoring on ingest, statistics.
 *
 * The scoring job works in chunks of CHUNK_ROWS rows: the chunk is scored from a snapshot
 * by up to SCORE_THREADS threads (each its own reader and scan over a slice of the chunk),
 * then its scores, statuses and the job's checkpoint are committed in one transaction. A
 * restarted job begins at the first row after its last committed chunk. */
#include "curate/instance.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "lib/err.h"
#include "core/jobs.h"
#include "lib/par.h"
#include "filters/filter.h"
#include "filters/registry.h"
#include "filters/scan.h"
#include "filters/semdedup.h"
#include "store/jdoc.h"
#include "store/store.h"
#include "lib/vec.h"

#define CHUNK_ROWS ((uint64_t)STORE_ARRAY_ROWS * 32) /* stats read this many rows at a time */
#define SCORE_THREADS 8

/* ---- documents ---- */

static int64_t now_unix(void)
{
	return (int64_t)time(NULL);
}

static const struct jdoc_kind filter_docs = {STORE_NS_FILTER, "filter_not_found", "filter"};

static uint32_t doc_arr(const json_t *doc, const char *which)
{
	return (uint32_t)json_integer_value(json_object_get(json_object_get(doc, "arrays"), which));
}

static uint64_t doc_u64(const json_t *doc, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(doc, key));
}

static int ref_from_doc(const json_t *doc, const char *name, struct instance_ref *out,
                        struct err *e)
{
	const char *type = json_string_value(json_object_get(doc, "type"));

	memset(out, 0, sizeof *out);
	snprintf(out->name, sizeof out->name, "%s", name);
	out->ops = type != NULL ? registry_find(type) : NULL;
	if (out->ops == NULL)
		return err_set(e, ERR_INTERNAL, "unknown_filter_type",
		               "filter '%s' has type '%s', which this build does not know", name,
		               type ? type : "?");
	out->version = doc_u64(doc, "version");
	out->arr_score = doc_arr(doc, "score");
	out->arr_status = doc_arr(doc, "status");
	out->arr_label = doc_arr(doc, "label");
	return 0;
}

int instance_ref_read(struct store_reader *r, uint32_t ds_id, const char *name,
                      struct instance_ref *out, struct err *e)
{
	json_t *doc = NULL;
	int rc;

	if ((rc = jdoc_named_reader_get(r, &filter_docs, ds_id, name, &doc, e)) != 0)
		return rc;
	rc = ref_from_doc(doc, name, out, e);
	json_decref(doc);
	return rc;
}

/* The registered type of a document, or NULL. */
static const struct filter_ops *type_ops(const json_t *doc)
{
	const char *type = json_string_value(json_object_get(doc, "type"));

	return type != NULL ? registry_find(type) : NULL;
}

/* The dataset by name; ERR_NOT_FOUND with a detail. */
static int dataset_get(struct core *core, const char *dataset, struct store_dataset_info *ds,
                       struct err *e)
{
	return store_dataset_get(core->store, dataset, ds, e);
}

static int name_check(const char *name, struct err *e)
{
	if (!store_name_valid(name))
		return err_set(e, ERR_INVALID, "bad_name",
		               "a filter name is 1 to 64 characters of [A-Za-z0-9._-]");
	return 0;
}

/* Create a live instance of the doc's type and params for schema. */
static int make_filter(const json_t *doc, const struct store_schema *schema,
                       struct filter **out, struct err *e)
{
	const char *type = json_string_value(json_object_get(doc, "type"));
	const struct filter_ops *ops = type != NULL ? registry_find(type) : NULL;

	if (ops == NULL)
		return err_set(e, ERR_INTERNAL, "unknown_filter_type",
		               "this build does not know filter type '%s'", type ? type : "?");
	return filter_create(out, ops, json_object_get(doc, "params"), schema, e);
}

int instance_open(struct store_reader *r, uint32_t ds_id, const struct store_schema *schema,
                  const char *name, struct filter **out, struct err *e)
{
	struct filter *f = NULL;
	json_t *doc = NULL;
	const void *blob;
	size_t len;
	int rc;

	if ((rc = jdoc_named_reader_get(r, &filter_docs, ds_id, name, &doc, e)) != 0)
		return rc;
	rc = make_filter(doc, schema, &f, e);
	json_decref(doc);
	if (rc == 0 && f->ops->fit != NULL &&
	    store_reader_doc_get(r, ds_id, STORE_NS_FITTED, name, strlen(name), &blob, &len,
	                         NULL) == 0)
		rc = filter_load(f, blob, len, e);
	if (rc != 0) {
		filter_free(f);
		return rc;
	}
	*out = f;
	return 0;
}

/* ---- explain, sweep ---- */

void instance_explain_row(struct store_reader *r, uint32_t ds_id,
                          const struct store_schema *schema, const struct instance_ref *ref,
                          uint64_t row, json_t *o)
{
	struct filter *f = NULL;
	json_t *x = NULL;

	if (ref->ops->label != NULL && ref->arr_label != 0) {
		uint32_t lab = FILTER_NO_LABEL;
		uint8_t st = FILTER_PENDING;

		/* an element never written reads as 0, a valid label: trust it only for a row
		 * that was scored */
		if (store_reader_array(r, ds_id, ref->arr_status, 1, row, 1, &st, NULL) != 0 ||
		    !filter_status_scored(st))
			lab = FILTER_NO_LABEL;
		else if (store_reader_array(r, ds_id, ref->arr_label, 4, row, 1, &lab, NULL) != 0)
			lab = FILTER_NO_LABEL;
		json_object_set_new(o, ref->ops->label,
		                    lab == FILTER_NO_LABEL ? json_null() : json_integer((json_int_t)lab));
	}
	if (ref->ops->explain == NULL || instance_open(r, ds_id, schema, ref->name, &f, NULL) != 0)
		return;
	if (filter_explain(f, row, &x, NULL) == 0 && x != NULL) {
		const char *key;
		json_t *v;
		json_t *ids = json_object();

		json_object_foreach(x, key, v) {
			size_t kl = strlen(key);
			const char *id;
			size_t len;

			if (kl > 4 && strcmp(key + kl - 4, "_row") == 0 && json_is_integer(v) &&
			    store_reader_row(r, ds_id, (uint64_t)json_integer_value(v), NULL, &id, &len,
			                     NULL, NULL, NULL) == 0) {
				char name[64];

				snprintf(name, sizeof name, "%.*s", (int)(kl - 4), key);
				json_object_set_new(ids, name, json_stringn(id, len));
			}
		}
		json_object_update(x, ids);
		json_decref(ids);
		json_object_set_new(o, "explain", x);
	}
	filter_free(f);
}

int instance_record_json(struct core *core, const char *dataset, const char *name,
                         const char *id, size_t id_len, json_t **out, struct err *e)
{
	struct store_dataset_info ds;
	struct store_reader *r = NULL;
	struct instance_ref ref;
	uint64_t row;
	float sc = NAN;
	uint8_t st = FILTER_PENDING;
	json_t *o;
	int rc;

	if ((rc = dataset_get(core, dataset, &ds, e)) != 0)
		return rc;
	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	if ((rc = instance_ref_read(r, ds.id, name, &ref, e)) != 0)
		goto out;
	if ((rc = store_reader_find(r, ds.id, id, id_len, &row, e)) != 0) {
		if (rc == ERR_NOT_FOUND) {
			err_clear(e);
			rc = err_set(e, ERR_NOT_FOUND, "record_not_found", "no record '%.*s'",
			             (int)(id_len > 200 ? 200 : id_len), id);
		}
		goto out;
	}
	if ((rc = store_reader_array(r, ds.id, ref.arr_score, 4, row, 1, &sc, e)) != 0 ||
	    (rc = store_reader_array(r, ds.id, ref.arr_status, 1, row, 1, &st, e)) != 0)
		goto out;
	o = json_pack("{s:s, s:s, s:I, s:s#, s:o, s:s}", "filter", name, "type", ref.ops->name,
	              "version", (json_int_t)ref.version, "id", id, (int)id_len, "score",
	              isfinite(sc) ? json_real(sc) : json_null(), "status",
	              filter_status_name(ref.ops, st));
	if (o == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	instance_explain_row(r, ds.id, &ds.schema, &ref, row, o);
	*out = o;
out:
	store_reader_close(r);
	return rc;
}

#define SWEEP_MAX 256

int instance_sweep_json(struct core *core, const char *dataset, const char *name,
                        const json_t *body, json_t **out, struct err *e)
{
	const json_t *list = json_object_get(body, "eps");
	struct store_dataset_info ds;
	struct store_reader *r = NULL;
	struct instance_ref ref;
	struct filter *f = NULL;
	double eps[SWEEP_MAX];
	uint64_t kept[SWEEP_MAX], total = 0;
	size_t n = json_array_size(list), i;
	const char *key;
	json_t *v, *arr;
	int rc;

	if (!json_is_object(body))
		return err_set(e, ERR_INVALID, "bad_sweep", "the body must be a JSON object");
	json_object_foreach((json_t *)body, key, v) {
		if (strcmp(key, "eps") != 0)
			return err_set(e, ERR_INVALID, "unknown_field",
			               "unknown field '%s' (a sweep has \"eps\")", key);
	}
	if (!json_is_array(list) || n == 0 || n > SWEEP_MAX)
		return err_set(e, ERR_INVALID, "bad_sweep",
		               "\"eps\" must be an array of 1 to %d numbers in (0, 1)", SWEEP_MAX);
	json_array_foreach(list, i, v) {
		eps[i] = json_number_value(v);
		if (!json_is_number(v) || !(eps[i] > 0 && eps[i] < 1))
			return err_set(e, ERR_INVALID, "bad_sweep",
			               "eps[%zu] must be a number in (0, 1)", i);
	}
	if ((rc = dataset_get(core, dataset, &ds, e)) != 0)
		return rc;
	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	if ((rc = instance_ref_read(r, ds.id, name, &ref, e)) != 0)
		goto out;
	if (ref.ops != &semdedup_filter_ops) {
		rc = err_set(e, ERR_INVALID, "bad_filter_type",
		             "filter '%s' is a %s filter; only semdedup filters sweep eps", name,
		             ref.ops->name);
		goto out;
	}
	if ((rc = instance_open(r, ds.id, &ds.schema, name, &f, e)) != 0)
		goto out;
	if (!f->fitted || semdedup_sweep(f, eps, n, kept, &total) != 0) {
		rc = err_set(e, ERR_CONFLICT, "not_fitted",
		             "filter '%s' has not been fitted yet (its scoring job fits it)", name);
		goto out;
	}
	arr = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:f, s:I, s:I, s:f}", "eps", eps[i], "kept",
		                                     (json_int_t)kept[i], "removed",
		                                     (json_int_t)(total - kept[i]), "kept_fraction",
		                                     total ? (double)kept[i] / (double)total : 0.0));
	*out = json_pack("{s:s, s:I, s:I, s:o}", "filter", name, "version", (json_int_t)ref.version,
	                 "records", (json_int_t)total, "sweep", arr);
	if (*out == NULL)
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
out:
	filter_free(f);
	store_reader_close(r);
	return rc;
}

/* ---- PUT ---- */

/* What an instance derives from its document: its row arrays and its fitted state. Dropped by
 * a delete (jdoc_cleanup_fn) and by a PUT that changes the type or params. */
static int drop_derived(void *ctx, struct store_txn *t, uint32_t ds, const char *name,
                        const json_t *doc, struct err *e)
{
	int rc;

	(void)ctx;
	if ((rc = store_txn_array_drop(t, ds, doc_arr(doc, "score"), e)) != 0 ||
	    (rc = store_txn_array_drop(t, ds, doc_arr(doc, "status"), e)) != 0 ||
	    (doc_arr(doc, "label") != 0 &&
	     (rc = store_txn_array_drop(t, ds, doc_arr(doc, "label"), e)) != 0))
		return rc;
	return jdoc_txn_drop(t, ds, STORE_NS_FITTED, name, e);
}

struct put_ctx {
	struct core *core;
	const struct store_dataset_info *ds;
	const char *name;
	const char *type;
	const json_t *params;
	/* out */
	int unchanged, created;
	uint64_t job;
	json_t *doc;
};

static int put_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct put_ctx *c = ctx;
	json_t *old = NULL, *doc = NULL;
	uint64_t a1, a2, a3 = 0, version = 1;
	const struct filter_ops *ops = registry_find(c->type);
	int64_t created = now_unix();
	int rc;

	c->unchanged = c->created = 0;
	c->job = 0;
	json_decref(c->doc);
	c->doc = NULL;
	if ((rc = store_txn_dataset(t, c->ds->id, NULL, e)) != 0)
		return rc;
	rc = jdoc_named_txn_previous(t, &filter_docs, c->ds->id, c->name, &old, &version, e);
	if (rc != 0)
		return rc;
	if (old == NULL) {
		c->created = 1;
	} else {
		const char *otype = json_string_value(json_object_get(old, "type"));

		if (otype != NULL && strcmp(otype, c->type) == 0 &&
		    json_equal(json_object_get(old, "params"), (json_t *)c->params)) {
			c->unchanged = 1;
			c->doc = old;
			return 0;
		}
		created = json_integer_value(json_object_get(old, "created"));
		if ((rc = drop_derived(NULL, t, c->ds->id, c->name, old, e)) != 0)
			goto out;
	}
	if ((rc = store_txn_counter_next(t, "array", &a1, e)) != 0 ||
	    (rc = store_txn_counter_next(t, "array", &a2, e)) != 0 ||
	    (ops != NULL && ops->label != NULL &&
	     (rc = store_txn_counter_next(t, "array", &a3, e)) != 0))
		goto out;
	{
		json_t *args = json_pack("{s:I, s:I, s:I}", "arr_score", (json_int_t)a1, "arr_status",
		                         (json_int_t)a2, "arr_label", (json_int_t)a3);

		rc = args ? jobs_txn_create(c->core->jobs, t, "score", c->ds->id, c->ds->name, c->name,
		                            args, &c->job, e)
		          : ERR_NOMEM;
		json_decref(args);
		if (rc != 0)
			goto out;
	}
	doc = json_pack("{s:s, s:s, s:O, s:I, s:{s:I, s:I}, s:I, s:I, s:b, s:I}", "name", c->name,
	                "type", c->type, "params", (json_t *)c->params, "version",
	                (json_int_t)version, "arrays", "score", (json_int_t)a1, "status",
	                (json_int_t)a2, "created", (json_int_t)created, "updated",
	                (json_int_t)now_unix(), "fitted", 0, "job", (json_int_t)c->job);
	if (doc == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	if (a3 != 0)
		json_object_set_new(json_object_get(doc, "arrays"), "label",
		                    json_integer((json_int_t)a3));
	if ((rc = jdoc_named_txn_put(t, &filter_docs, c->ds->id, c->name, doc, e)) != 0)
		goto out;
	c->doc = doc;
	doc = NULL;
out:
	json_decref(old);
	json_decref(doc);
	return rc;
}

/* The warnings of the instance's last fit (fit_commit_fn): a new array, empty when none. */
static json_t *doc_warnings(const json_t *doc)
{
	const json_t *w = json_object_get(doc, "warnings");

	return json_is_array(w) ? json_incref((json_t *)w) : json_array();
}

int instance_check(struct core *core, const char *dataset, const json_t *body, struct err *e)
{
	const json_t *type = json_object_get(body, "type"), *params = json_object_get(body, "params");
	const struct filter_ops *ops = json_is_string(type) ? registry_find(json_string_value(type))
	                                                   : NULL;
	struct store_dataset_info ds;
	struct store_reader *r = NULL;
	struct filter *f = NULL;
	struct scan *sc = NULL;
	struct err ignored = {0};
	int rc;

	if (ops == NULL || ops->check == NULL || (params != NULL && !json_is_object(params)))
		return 0;
	if (dataset_get(core, dataset, &ds, &ignored) != 0 ||
	    filter_create(&f, ops, params, &ds.schema, &ignored) != 0)
		return 0;
	if ((rc = store_reader_open(core->store, &r, e)) == 0 &&
	    (rc = store_reader_dataset(r, ds.id, &ds, e)) == 0 &&
	    (rc = scan_open(&sc, r, ds.id, &ds.schema, f, 0, ds.next_row, NULL, NULL, e)) == 0)
		rc = filter_check(f, scan_base(sc), e);
	scan_close(sc);
	store_reader_close(r);
	filter_free(f);
	return rc;
}

int instance_partial(struct core *core, const char *dataset, const json_t *body, json_t **out,
                     struct err *e)
{
	const json_t *type = json_object_get(body, "type"), *params = json_object_get(body, "params");
	const struct filter_ops *ops = json_is_string(type) ? registry_find(json_string_value(type))
	                                                   : NULL;
	struct store_dataset_info ds;
	struct store_reader *r = NULL;
	struct filter *f = NULL;
	struct scan *sc = NULL;
	int rc;

	if (!json_is_object(body) || ops == NULL || (params != NULL && !json_is_object(params)))
		return err_set(e, ERR_INVALID, "bad_filter",
		               "the body must be a filter definition {\"type\", \"params\"} of a "
		               "known type");
	if ((rc = dataset_get(core, dataset, &ds, e)) != 0 ||
	    (rc = filter_create(&f, ops, params, &ds.schema, e)) != 0)
		return rc;
	if ((rc = store_reader_open(core->store, &r, e)) == 0 &&
	    (rc = store_reader_dataset(r, ds.id, &ds, e)) == 0 &&
	    (rc = scan_open(&sc, r, ds.id, &ds.schema, f, 0, ds.next_row, NULL, NULL, e)) == 0)
		rc = filter_partial(f, scan_base(sc), out, e);
	scan_close(sc);
	store_reader_close(r);
	filter_free(f);
	return rc;
}

/* The params as a view shows them (new): a cluster's merged n-gram counts (color_ngram's
 * "counts", megabytes) summed up as their format, order and n-gram count per model; a
 * router's semdedup decisions ("given") as their format and record count. */
static json_t *params_view(const json_t *params)
{
	const json_t *c = json_object_get(params, "counts"), *m;
	const json_t *g = json_object_get(params, "given");
	json_t *p, *sizes;
	size_t i;

	if (json_is_object(g) && (p = json_copy((json_t *)params)) != NULL) {
		/* a router's semdedup decisions (a record each) summed up */
		json_object_set_new(
		    p, "given",
		    json_pack("{s:O, s:I}", "format", json_object_get(g, "format"), "records",
		              (json_int_t)json_array_size(json_object_get(g, "ids"))));
		return p;
	}
	if (!json_is_object(c) || !json_is_array(json_object_get(c, "priors")))
		return json_incref((json_t *)params);
	if ((p = json_copy((json_t *)params)) == NULL || (sizes = json_array()) == NULL) {
		json_decref(p);
		return NULL;
	}
	json_array_foreach (json_object_get(c, "priors"), i, m)
		json_array_append_new(sizes, json_integer((json_int_t)json_object_size(m)));
	json_object_set_new(p, "counts",
	                    json_pack("{s:O, s:O, s:o, s:I}", "format", json_object_get(c, "format"),
	                              "order", json_object_get(c, "order"), "prior_ngrams", sizes,
	                              "down_ngrams",
	                              (json_int_t)json_object_size(json_object_get(c, "down"))));
	return p;
}

static json_t *view_of(struct core *core, const json_t *doc)
{
	json_t *v = json_pack("{s:O, s:O, s:o?, s:O, s:O}", "name", json_object_get(doc, "name"),
	                      "type", json_object_get(doc, "type"), "params",
	                      params_view(json_object_get(doc, "params")), "version",
	                      json_object_get(doc, "version"), "fitted",
	                      json_object_get(doc, "fitted"));
	const struct filter_ops *ops =
	        type_ops(doc);
	char tbuf[32];
	time_t tt;
	struct tm tm;
	json_t *job = NULL;

	if (v == NULL)
		return NULL;
	json_object_set_new(v, "cheap", json_boolean(ops != NULL && ops->cheap));
	tt = (time_t)json_integer_value(json_object_get(doc, "created"));
	gmtime_r(&tt, &tm);
	strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(v, "created", json_string(tbuf));
	tt = (time_t)json_integer_value(json_object_get(doc, "updated"));
	gmtime_r(&tt, &tm);
	strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(v, "updated", json_string(tbuf));
	if (doc_u64(doc, "job") != 0 && jobs_get_json(core->jobs, doc_u64(doc, "job"), &job, NULL) == 0)
		json_object_set_new(v, "scoring", job);
	else
		json_object_set_new(v, "scoring", json_null());
	json_object_set_new(v, "warnings", doc_warnings(doc));
	return v;
}

int instance_put(struct core *core, const char *dataset, const char *name, const json_t *body,
                 json_t **view, uint64_t *job, int *created, struct err *e)
{
	struct store_dataset_info ds;
	struct put_ctx c = {.core = core, .name = name};
	const json_t *type, *params;
	struct filter *f = NULL;
	const char *key;
	json_t *val;
	int rc;

	if ((rc = name_check(name, e)) != 0)
		return rc;
	if (!json_is_object(body))
		return err_set(e, ERR_INVALID, "bad_filter", "the body must be a JSON object");
	json_object_foreach((json_t *)body, key, val) {
		if (strcmp(key, "type") != 0 && strcmp(key, "params") != 0)
			return err_set(e, ERR_INVALID, "unknown_field",
			               "unknown field '%s' (a filter has \"type\" and \"params\")", key);
	}
	type = json_object_get(body, "type");
	params = json_object_get(body, "params");
	if (!json_is_string(type))
		return err_set(e, ERR_INVALID, "bad_filter", "\"type\" must be a string");
	if (registry_find(json_string_value(type)) == NULL)
		return err_set(e, ERR_INVALID, "unknown_filter_type",
		               "unknown filter type '%s' (GET /v1/filter-types lists them)",
		               json_string_value(type));
	if (params != NULL && !json_is_object(params))
		return err_set(e, ERR_INVALID, "bad_param", "\"params\" must be a JSON object");
	if ((rc = dataset_get(core, dataset, &ds, e)) != 0)
		return rc;
	rc = filter_create(&f, registry_find(json_string_value(type)), params, &ds.schema, e);
	filter_free(f);
	if (rc != 0)
		return rc;
	c.ds = &ds;
	c.type = json_string_value(type);
	c.params = params != NULL ? json_incref((json_t *)params) : json_object();
	rc = store_write(core->store, put_fn, &c, e);
	if (rc == 0 && !c.unchanged) {
		/* older scoring jobs of the instance are superseded (their chunks would be
		 * refused anyway: the arrays changed) */
		jobs_cancel_matching(core->jobs, ds.id, "score", name, c.job);
		jobs_submit(core->jobs, c.job);
	}
	json_decref((json_t *)c.params);
	if (rc != 0) {
		json_decref(c.doc);
		return rc;
	}
	*view = view_of(core, c.doc);
	json_decref(c.doc);
	*job = c.job;
	*created = c.created;
	return *view != NULL ? 0 : err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
}

/* ---- GET, list, DELETE, rescore ---- */

/* view_of as a jdoc_view_fn. */
static json_t *named_view(void *ctx, uint32_t ds, const json_t *doc)
{
	(void)ds;
	return view_of(ctx, doc);
}

int instance_get_json(struct core *core, const char *dataset, const char *name, json_t **out,
                      struct err *e)
{
	return jdoc_named_view(core->store, &filter_docs, dataset, name, named_view, core, out, e);
}

int instance_list_json(struct core *core, const char *dataset, json_t **out, struct err *e)
{
	return jdoc_named_list(core->store, &filter_docs, dataset, named_view, core, out, e);
}

int instance_delete(struct core *core, const char *dataset, const char *name, struct err *e)
{
	struct store_dataset_info ds;
	int rc;

	if ((rc = dataset_get(core, dataset, &ds, e)) != 0 ||
	    (rc = jdoc_named_delete(core->store, &filter_docs, ds.id, name, drop_derived, NULL,
	                            e)) != 0)
		return rc;
	jobs_cancel_matching(core->jobs, ds.id, "score", name, 0);
	return 0;
}

struct rescore_ctx {
	struct core *core;
	const struct store_dataset_info *ds;
	const char *name;
	uint64_t job;
};

static int rescore_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct rescore_ctx *c = ctx;
	json_t *doc = NULL, *args;
	int rc;

	if ((rc = jdoc_named_txn_get(t, &filter_docs, c->ds->id, c->name, &doc, e)) != 0)
		return rc;
	args = json_pack("{s:I, s:I, s:I}", "arr_score", (json_int_t)doc_arr(doc, "score"),
	                 "arr_status", (json_int_t)doc_arr(doc, "status"), "arr_label",
	                 (json_int_t)doc_arr(doc, "label"));
	rc = args ? jobs_txn_create(c->core->jobs, t, "score", c->ds->id, c->ds->name, c->name, args,
	                            &c->job, e)
	          : ERR_NOMEM;
	json_decref(args);
	if (rc == 0) {
		json_object_set_new(doc, "job", json_integer((json_int_t)c->job));
		rc = jdoc_named_txn_put(t, &filter_docs, c->ds->id, c->name, doc, e);
	}
	json_decref(doc);
	return rc;
}

int instance_rescore(struct core *core, const char *dataset, const char *name, uint64_t *job,
                     struct err *e)
{
	struct store_dataset_info ds;
	struct rescore_ctx c = {.core = core, .name = name};
	int rc;

	if ((rc = dataset_get(core, dataset, &ds, e)) != 0)
		return rc;
	c.ds = &ds;
	if ((rc = store_write(core->store, rescore_fn, &c, e)) != 0)
		return rc;
	jobs_cancel_matching(core->jobs, ds.id, "score", name, c.job);
	jobs_submit(core->jobs, c.job);
	*job = c.job;
	return 0;
}

/* ---- scoring a range of rows ---- */

struct part {
	struct store *store;
	uint32_t ds;
	const struct store_schema *schema;
	const struct filter *f;
	uint64_t lo, hi;  /* rows of this part */
	uint64_t base;    /* row of scores[0] */
	float *scores;    /* the chunk's arrays */
	uint8_t *status;
	uint32_t *labels; /* may be NULL */
	struct job *job;  /* for stop checks, may be NULL */
	int rc;
	struct err e;
};

static int part_stop(void *ctx, uint64_t next_row)
{
	struct part *p = ctx;

	(void)next_row;
	return p->job != NULL && jobs_should_stop(p->job) ? ERR_CANCELLED : 0;
}

static void *part_main(void *arg)
{
	struct part *p = arg;
	struct store_reader *r = NULL;
	struct scan *sc = NULL;
	const struct filter_batch *b;
	int rc;

	if ((rc = store_reader_open(p->store, &r, &p->e)) != 0)
		goto out;
	if ((rc = scan_open(&sc, r, p->ds, p->schema, p->f, p->lo, p->hi, part_stop, p, &p->e)) !=
	    0)
		goto out;
	while ((rc = scan_next(sc, &b, &p->e)) == 1) {
		float s[STORE_BLOCK_ROWS];
		uint8_t st[STORE_BLOCK_ROWS];
		uint32_t lb[STORE_BLOCK_ROWS];

		if ((rc = filter_score_batch_labels(p->f, b, s, st, p->labels ? lb : NULL, &p->e)) !=
		    0)
			goto out;
		for (size_t j = 0; j < b->n; j++) {
			p->scores[b->rows[j] - p->base] = s[j];
			p->status[b->rows[j] - p->base] = st[j];
			if (p->labels != NULL)
				p->labels[b->rows[j] - p->base] = lb[j];
		}
	}
out:
	scan_close(sc);
	store_reader_close(r);
	p->rc = rc < 0 ? rc : 0;
	return NULL;
}

unsigned instance_score_threads(void)
{
	unsigned n = par_cpus();

	return n > SCORE_THREADS ? SCORE_THREADS : n;
}

int instance_score_range(struct store *s, uint32_t ds, const struct store_schema *schema,
                         const struct filter *f, uint64_t lo, uint64_t hi, float *scores,
                         uint8_t *status, unsigned threads, struct job *job, struct err *e)
{
	return instance_score_range_labels(s, ds, schema, f, lo, hi, scores, status, NULL,
	                                   threads, job, e);
}

int instance_score_range_labels(struct store *s, uint32_t ds, const struct store_schema *schema,
                                const struct filter *f, uint64_t lo, uint64_t hi,
                                float *scores, uint8_t *status, uint32_t *labels,
                                unsigned threads, struct job *job, struct err *e)
{
	struct part parts[SCORE_THREADS];
	unsigned nt = threads == 0 ? instance_score_threads() : threads, used = 0;
	uint64_t n = hi - lo, per;
	int rc = 0;

	for (uint64_t i = 0; i < n; i++) {
		scores[i] = NAN;
		status[i] = FILTER_PENDING;
		if (labels != NULL)
			labels[i] = FILTER_NO_LABEL;
	}
	if (nt > SCORE_THREADS)
		nt = SCORE_THREADS;
	if (n < 4 * STORE_BLOCK_ROWS)
		nt = 1;
	/* slices on block boundaries, so that no two threads convert the same block */
	per = (n + nt - 1) / nt;
	per = (per + STORE_BLOCK_ROWS - 1) / STORE_BLOCK_ROWS * STORE_BLOCK_ROWS;
	for (unsigned i = 0; i < nt && lo + per * i < hi; i++) {
		uint64_t a = lo + per * i, b = a + per < hi ? a + per : hi;

		parts[i] = (struct part){.store = s, .ds = ds, .schema = schema, .f = f, .lo = a,
		                         .hi = b, .base = lo, .scores = scores, .status = status,
		                         .labels = labels, .job = job};
		used = i + 1;
	}
	par_run(part_main, parts, sizeof parts[0], used);
	for (unsigned i = 0; i < used; i++) {
		if (parts[i].rc != 0 && rc == 0) {
			rc = parts[i].rc;
			if (e != NULL && parts[i].e.code != 0)
				*e = parts[i].e;
		}
	}
	return rc;
}

/* ---- the scoring job ---- */

struct chunk_ctx {
	struct job *job;
	uint32_t ds;
	const char *name;
	uint32_t arr_score, arr_status, arr_label;
	uint64_t lo, hi, total;
	const float *scores;
	const uint8_t *status;
	const uint32_t *labels;
	json_t *checkpoint;
};

/* The instance still has the arrays the job scores into; ERR_CONFLICT otherwise. */
static int txn_current(struct store_txn *t, uint32_t ds, const char *name, uint32_t a1,
                       uint32_t a2, json_t **doc_out, struct err *e)
{
	json_t *doc = NULL;
	int rc;

	if ((rc = jdoc_named_txn_get(t, &filter_docs, ds, name, &doc, e)) != 0)
		return rc;
	if (doc_arr(doc, "score") != a1 || doc_arr(doc, "status") != a2) {
		json_decref(doc);
		return err_set(e, ERR_CONFLICT, "superseded",
		               "filter '%s' was replaced while this job ran", name);
	}
	if (doc_out != NULL)
		*doc_out = doc;
	else
		json_decref(doc);
	return 0;
}

static int chunk_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct chunk_ctx *c = ctx;
	size_t n = (size_t)(c->hi - c->lo);
	int rc;

	if ((rc = txn_current(t, c->ds, c->name, c->arr_score, c->arr_status, NULL, e)) != 0)
		return rc;
	if (n > 0 &&
	    ((rc = store_txn_array_put(t, c->ds, c->arr_score, 4, c->lo, n, c->scores, e)) != 0 ||
	     (rc = store_txn_array_put(t, c->ds, c->arr_status, 1, c->lo, n, c->status, e)) != 0 ||
	     (c->arr_label != 0 &&
	      (rc = store_txn_array_put(t, c->ds, c->arr_label, 4, c->lo, n, c->labels, e)) != 0)))
		return rc;
	return jobs_txn_checkpoint(c->job, t, c->checkpoint, c->hi, c->total, e);
}

struct fit_ctx {
	struct job *job;
	uint32_t ds;
	const char *name;
	uint32_t arr_score, arr_status;
	const void *blob;
	size_t len;
	const json_t *warnings; /* the fit's (filter_warn), or NULL */
	uint64_t version; /* out: the new version */
	json_t *checkpoint;
};

static int fit_commit_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct fit_ctx *c = ctx;
	json_t *doc = NULL;
	int rc;

	if ((rc = txn_current(t, c->ds, c->name, c->arr_score, c->arr_status, &doc, e)) != 0)
		return rc;
	c->version = doc_u64(doc, "version") + 1;
	json_object_set_new(doc, "version", json_integer((json_int_t)c->version));
	json_object_set_new(doc, "fitted", json_true());
	json_object_set_new(doc, "updated", json_integer(now_unix()));
	if (c->warnings != NULL)
		json_object_set(doc, "warnings", (json_t *)c->warnings);
	else
		json_object_del(doc, "warnings");
	json_object_set_new(c->checkpoint, "fitted_version", json_integer((json_int_t)c->version));
	if ((rc = store_txn_doc_put(t, c->ds, STORE_NS_FITTED, c->name, strlen(c->name), c->blob,
	                            c->len, e)) == 0 &&
	    (rc = jdoc_named_txn_put(t, &filter_docs, c->ds, c->name, doc, e)) == 0)
		rc = jobs_txn_checkpoint(c->job, t, c->checkpoint, 0, 0, e);
	json_decref(doc);
	return rc;
}

static int stop_fn(void *ctx, uint64_t next_row)
{
	(void)next_row;
	return jobs_should_stop(ctx) ? ERR_CANCELLED : 0;
}

/* Hand f the state of the instance it uses (f->uses), once that instance's scoring jobs
 * created before this job are done (they may be fitting it). */
static int job_use(struct job *j, struct filter *f, const struct store_dataset_info *info,
                   struct err *e)
{
	struct core *core = job_core(j);
	struct store_reader *r = NULL;
	struct filter *other = NULL;
	int rc;

	while (jobs_count_open(core->jobs, info->id, "score", f->uses, job_id(j)) > 0) {
		if (jobs_should_stop(j))
			return ERR_CANCELLED;
		usleep(100 * 1000);
	}
	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	rc = instance_open(r, info->id, &info->schema, f->uses, &other, e);
	store_reader_close(r);
	if (rc == ERR_NOT_FOUND) {
		err_clear(e);
		return err_set(e, ERR_INVALID, "unknown_filter",
		               "filter '%s' that this one uses does not exist", f->uses);
	}
	if (rc == 0)
		rc = filter_use(f, other, e);
	filter_free(other);
	return rc;
}

/* Fit f on the whole dataset and commit the fitted state (a new version). */
static int job_fit(struct job *j, struct filter *f, const struct store_dataset_info *info,
                   const char *name, uint32_t a1, uint32_t a2, struct err *e)
{
	struct store_reader *r = NULL;
	struct scan *sc = NULL;
	struct fit_ctx fc = {.job = j, .ds = info->id, .name = name, .arr_score = a1,
	                     .arr_status = a2};
	void *blob = NULL;
	size_t len = 0;
	int rc;

	if (f->uses[0] != '\0' && (rc = job_use(j, f, info, e)) != 0)
		return rc;
	if ((rc = store_reader_open(job_core(j)->store, &r, e)) != 0)
		return rc;
	rc = scan_open(&sc, r, info->id, &info->schema, f, 0, info->next_row, stop_fn, j, e);
	if (rc == 0)
		rc = filter_fit(f, scan_base(sc), e);
	scan_close(sc);
	store_reader_close(r);
	if (rc == 0)
		rc = filter_save(f, &blob, &len, e);
	if (rc != 0)
		return rc;
	{
		size_t i;
		json_t *w;

		json_array_foreach(f->warnings, i, w)
			jobs_warn(j, json_string_value(json_object_get(w, "code")), "%s",
			          json_string_value(json_object_get(w, "detail")));
	}
	fc.warnings = f->warnings;
	fc.blob = blob != NULL ? blob : "";
	fc.len = len;
	fc.checkpoint = json_pack("{s:I}", "next", (json_int_t)0);
	rc = fc.checkpoint ? store_write(job_core(j)->store, fit_commit_fn, &fc, e) : ERR_NOMEM;
	json_decref(fc.checkpoint);
	if (rc == 0)
		jobs_progress(j, 0, 0);
	free(blob);
	return rc;
}

int instance_job_score(struct job *j, struct err *e)
{
	struct core *core = job_core(j);
	const char *name = job_target(j);
	uint32_t a1 = (uint32_t)json_integer_value(json_object_get(job_args(j), "arr_score"));
	uint32_t a2 = (uint32_t)json_integer_value(json_object_get(job_args(j), "arr_status"));
	uint32_t a3 = (uint32_t)json_integer_value(json_object_get(job_args(j), "arr_label"));
	const json_t *cp = job_checkpoint(j);
	struct store_dataset_info info;
	struct store_reader *r = NULL;
	struct filter *f = NULL;
	json_t *doc = NULL;
	float *scores = NULL;
	uint8_t *status = NULL;
	uint32_t *labels = NULL;
	uint64_t next = cp ? (uint64_t)json_integer_value(json_object_get(cp, "next")) : 0;
	uint64_t fitted_version =
	        cp ? (uint64_t)json_integer_value(json_object_get(cp, "fitted_version")) : 0;
	uint64_t chunk;
	int rc;

	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	if ((rc = store_reader_dataset(r, job_ds(j), &info, e)) != 0 ||
	    (rc = jdoc_named_reader_get(r, &filter_docs, job_ds(j), name, &doc, e)) != 0)
		goto out;
	if (doc_arr(doc, "score") != a1 || doc_arr(doc, "status") != a2) {
		rc = err_set(e, ERR_CONFLICT, "superseded",
		             "filter '%s' was replaced before this job ran", name);
		goto out;
	}
	if ((rc = make_filter(doc, &info.schema, &f, e)) != 0)
		goto out;
	if (f->ops->fit != NULL && fitted_version != 0 &&
	    fitted_version == doc_u64(doc, "version")) {
		const void *blob;
		size_t len;

		/* resuming after the fit was committed: load that state */
		if ((rc = store_reader_doc_get(r, job_ds(j), STORE_NS_FITTED, name, strlen(name),
		                               &blob, &len, e)) != 0 ||
		    (rc = filter_load(f, blob, len, e)) != 0)
			goto out;
	}
	store_reader_close(r);
	r = NULL;
	if (f->ops->fit != NULL && !f->fitted) {
		if ((rc = job_fit(j, f, &info, name, a1, a2, e)) != 0)
			goto out;
		next = 0;
	}
	fitted_version = f->ops->fit != NULL ? doc_u64(doc, "version") : 0;
	if (f->ops->fit != NULL) {
		/* job_fit bumped the version; read it back for the checkpoint */
		json_t *d2 = NULL;

		if ((rc = store_reader_open(core->store, &r, e)) != 0 ||
		    (rc = jdoc_named_reader_get(r, &filter_docs, job_ds(j), name, &d2, e)) != 0)
			goto out;
		fitted_version = doc_u64(d2, "version");
		json_decref(d2);
		store_reader_close(r);
		r = NULL;
	}
	chunk = core_chunk_rows(core, CHUNK_ROWS);
	scores = malloc(chunk * sizeof *scores);
	status = malloc(chunk);
	labels = a3 != 0 ? malloc(chunk * sizeof *labels) : NULL;
	if (scores == NULL || status == NULL || (a3 != 0 && labels == NULL)) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	jobs_progress(j, next, info.next_row);
	while (next < info.next_row || next == 0) {
		uint64_t hi = next + chunk;
		struct chunk_ctx cc = {.job = j, .ds = info.id, .name = name, .arr_score = a1,
		                       .arr_status = a2, .arr_label = a3, .lo = next,
		                       .total = info.next_row, .scores = scores, .status = status,
		                       .labels = labels};

		if (hi > info.next_row)
			hi = info.next_row;
		cc.hi = hi;
		if (jobs_should_stop(j)) {
			rc = ERR_CANCELLED;
			goto out;
		}
		if (hi > next &&
		    (rc = instance_score_range_labels(core->store, info.id, &info.schema, f, next, hi,
		                                      scores, status, labels, 0, j, e)) != 0)
			goto out;
		cc.checkpoint = json_pack("{s:I, s:I}", "next", (json_int_t)hi, "fitted_version",
		                          (json_int_t)fitted_version);
		rc = cc.checkpoint ? store_write(core->store, chunk_fn, &cc, e) : ERR_NOMEM;
		json_decref(cc.checkpoint);
		if (rc != 0)
			goto out;
		jobs_progress(j, cc.hi, cc.total); /* committed: now it may be shown */
		next = hi;
		if (hi >= info.next_row)
			break;
		core_throttle(core);
	}
out:
	store_reader_close(r);
	filter_free(f);
	json_decref(doc);
	free(scores);
	free(status);
	free(labels);
	return rc;
}

/* ---- scoring on ingest ---- */

struct ingest_inst {
	char name[STORE_NAME_MAX + 1];
	struct filter *f; /* NULL: mark pending */
	uint32_t arr_score, arr_status, arr_label;
};

struct ingest_ctx {
	struct ingest_inst *v;
	size_t n, cap;
	const struct store_schema *schema;
	struct store_reader *r;
	uint32_t ds;
	int rc;
	struct err *e;
};

static int ingest_list_fn(void *ctx, const char *key, size_t key_len, const void *val,
                          size_t len)
{
	struct ingest_ctx *c = ctx;
	struct ingest_inst *ii;
	json_t *doc = json_loadb(val, len, 0, NULL);
	const struct filter_ops *ops;

	if (doc == NULL || key_len > STORE_NAME_MAX)
		goto out;
	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 8;
		struct ingest_inst *p = realloc(c->v, ncap * sizeof *p);

		if (p == NULL) {
			c->rc = ERR_NOMEM;
			json_decref(doc);
			return 1;
		}
		c->v = p;
		c->cap = ncap;
	}
	ii = &c->v[c->n++];
	memset(ii, 0, sizeof *ii);
	memcpy(ii->name, key, key_len);
	ii->arr_score = doc_arr(doc, "score");
	ii->arr_status = doc_arr(doc, "status");
	ii->arr_label = doc_arr(doc, "label");
	ops = type_ops(doc);
	/* a type may be fitted by its params alone (given centroids): no blob to load then */
	if (ops != NULL && ops->cheap && make_filter(doc, c->schema, &ii->f, NULL) == 0 &&
	    ops->fit != NULL && !ii->f->fitted) {
		const void *blob;
		size_t blen;

		if (store_reader_doc_get(c->r, c->ds, STORE_NS_FITTED, key, key_len, &blob, &blen, NULL) != 0 ||
		    filter_load(ii->f, blob, blen, NULL) != 0) {
			filter_free(ii->f);
			ii->f = NULL;
		}
	}
out:
	json_decref(doc);
	return 0;
}

/* One run of consecutive rows among the ingested records. */
struct run {
	uint64_t row;
	size_t first, n; /* into the sorted order */
};

struct ingest_write {
	struct ingest_ctx *ic;
	const uint64_t *rows_sorted;
	float **scores;   /* per instance, n entries in sorted order */
	uint8_t **status;
	uint32_t **labels; /* per instance with a label array, else NULL */
	struct run *runs;
	size_t nruns;
};

static int ingest_write_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct ingest_write *w = ctx;
	int rc;

	for (size_t i = 0; i < w->ic->n; i++) {
		struct ingest_inst *ii = &w->ic->v[i];

		for (size_t k = 0; k < w->nruns; k++) {
			struct run *ru = &w->runs[k];

			if ((rc = store_txn_array_put(t, w->ic->ds, ii->arr_score, 4, ru->row, ru->n,
			                              w->scores[i] + ru->first, e)) != 0 ||
			    (rc = store_txn_array_put(t, w->ic->ds, ii->arr_status, 1, ru->row, ru->n,
			                              w->status[i] + ru->first, e)) != 0 ||
			    (ii->arr_label != 0 &&
			     (rc = store_txn_array_put(t, w->ic->ds, ii->arr_label, 4, ru->row, ru->n,
			                               w->labels[i] + ru->first, e)) != 0))
				return rc == ERR_NOT_FOUND ? 0 : rc; /* the dataset went away */
		}
	}
	return 0;
}

struct order {
	uint64_t row;
	size_t idx;
};

static int order_cmp(const void *a, const void *b)
{
	const struct order *x = a, *y = b;

	if (x->row != y->row)
		return x->row < y->row ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx; /* later duplicate last */
}

/* The instances of ds_id into ic (cheap ones with a live filter, the others to mark pending). */
static int ingest_list(struct core *core, struct ingest_ctx *ic, struct err *e)
{
	int rc;

	if ((rc = store_reader_open(core->store, &ic->r, e)) != 0)
		return rc;
	rc = store_reader_docs(ic->r, ic->ds, STORE_NS_FILTER, ingest_list_fn, ic, e);
	store_reader_close(ic->r);
	ic->r = NULL;
	if (rc == 0 && ic->rc != 0)
		rc = err_set(e, ic->rc, "out_of_memory", "out of memory");
	return rc;
}

/* rows (n) in ascending order into ord and rsorted, a duplicate id of the call kept once (its
 * last record), and their runs of consecutive rows into w->runs. Returns the distinct rows. */
static size_t ingest_order(const uint64_t *rows, size_t n, struct order *ord, uint64_t *rsorted,
                           struct ingest_write *w)
{
	size_t m = 0;

	for (size_t i = 0; i < n; i++)
		ord[i] = (struct order){rows[i], i};
	qsort(ord, n, sizeof *ord, order_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && ord[i + 1].row == ord[i].row)
			continue;
		ord[m] = ord[i];
		rsorted[m++] = ord[i].row;
	}
	for (size_t i = 0; i < m; i++) {
		if (w->nruns > 0 && w->runs[w->nruns - 1].row + w->runs[w->nruns - 1].n == rsorted[i]) {
			w->runs[w->nruns - 1].n++;
			continue;
		}
		w->runs[w->nruns++] = (struct run){rsorted[i], i, 1};
	}
	w->rows_sorted = rsorted;
	return m;
}

/* Every instance's results for m rows, all pending until scored. 0 or ERR_NOMEM. */
static int ingest_results_alloc(struct ingest_write *w, size_t m)
{
	const struct ingest_ctx *ic = w->ic;

	for (size_t i = 0; i < ic->n; i++) {
		w->scores[i] = malloc(m * sizeof(float));
		w->status[i] = malloc(m);
		if (ic->v[i].arr_label != 0 && (w->labels[i] = malloc(m * sizeof(uint32_t))) == NULL)
			return ERR_NOMEM;
		if (w->scores[i] == NULL || w->status[i] == NULL)
			return ERR_NOMEM;
		for (size_t k = 0; k < m; k++) {
			w->scores[i][k] = NAN;
			w->status[i][k] = FILTER_PENDING;
			if (w->labels[i] != NULL)
				w->labels[i][k] = FILTER_NO_LABEL;
		}
	}
	return 0;
}

/* Free what an ingest or patch write gathered: the opened filters and the per-filter arrays
 * (w->labels is NULL for a patch, which writes no labels). */
static void write_release(struct ingest_ctx *ic, struct ingest_write *w)
{
	for (size_t i = 0; i < ic->n; i++) {
		filter_free(ic->v[i].f);
		if (w->scores != NULL)
			free(w->scores[i]);
		if (w->status != NULL)
			free(w->status[i]);
		if (w->labels != NULL)
			free(w->labels[i]);
	}
	free(ic->v);
	free(w->scores);
	free(w->status);
	free(w->labels);
	free(w->runs);
}

/* Score bn (at most STORE_BLOCK_ROWS) of the ingested records with f: the records recs[ord[q].idx]
 * at rows[q], from their own vectors (not the store). scores, status, labels (may be NULL) get
 * bn results; a failure leaves them for the caller to mark pending. */
static int ingest_score_block(const struct filter *f, const struct store_schema *schema,
                              const struct store_record *recs, const struct order *ord,
                              const uint64_t *rows, size_t bn, float *scores, uint8_t *status,
                              uint32_t *labels)
{
	struct filter_batch b = {.n = bn, .rows = rows};
	unsigned kinds[STORE_BLOCK_ROWS];
	const char *ids[STORE_BLOCK_ROWS];
	char *idbuf[STORE_BLOCK_ROWS] = {0};
	json_t *bodies[STORE_BLOCK_ROWS] = {0};
	uint8_t has[FILTER_MAX_INPUTS][STORE_BLOCK_ROWS];
	float *vb[FILTER_MAX_INPUTS] = {0};
	int brc = 0;

	for (unsigned k = 0; k < f->ninputs; k++) {
		const struct store_space *sp = &schema->spaces[f->inputs[k]];

		vb[k] = calloc((size_t)sp->dim * bn, sizeof(float));
		if (vb[k] == NULL) {
			brc = ERR_NOMEM;
			continue;
		}
		for (size_t q = 0; q < bn; q++) {
			const void *src = recs[ord[q].idx].vec[f->inputs[k]];

			has[k][q] = src != NULL;
			if (src == NULL)
				continue;
			if (sp->dtype == STORE_F16)
				vec_f16_to_f32(src, vb[k] + (size_t)sp->dim * q, sp->dim);
			else
				memcpy(vb[k] + (size_t)sp->dim * q, src, (size_t)sp->dim * sizeof(float));
		}
		b.vecs[k] = vb[k];
		b.has_vec[k] = has[k];
		b.dims[k] = sp->dim;
	}
	for (size_t q = 0; q < bn; q++) {
		const struct store_record *rec = &recs[ord[q].idx];

		kinds[q] = rec->kind;
		ids[q] = "";
		if (f->needs & FILTER_NEEDS_ID) {
			idbuf[q] = strndup(rec->id, rec->id_len);
			if (idbuf[q] == NULL)
				brc = ERR_NOMEM;
			else
				ids[q] = idbuf[q];
		}
		if (f->needs & FILTER_NEEDS_BODY)
			bodies[q] = json_loadb(rec->body, rec->body_len, 0, NULL);
	}
	if (f->needs & (FILTER_NEEDS_BODY | FILTER_NEEDS_ID)) {
		b.kinds = kinds;
		b.ids = (f->needs & FILTER_NEEDS_ID) ? ids : NULL;
		b.bodies = (f->needs & FILTER_NEEDS_BODY) ? bodies : NULL;
	}
	if (brc == 0)
		brc = filter_score_batch_labels(f, &b, scores, status, labels, NULL);
	for (size_t q = 0; q < bn; q++) {
		free(idbuf[q]);
		json_decref(bodies[q]);
	}
	for (unsigned k = 0; k < f->ninputs; k++)
		free(vb[k]);
	return brc;
}

int instance_on_ingest(struct core *core, uint32_t ds_id, const struct store_schema *schema,
                       const struct store_record *recs, const uint64_t *rows, size_t n,
                       struct err *e)
{
	struct ingest_ctx ic = {.schema = schema, .ds = ds_id, .e = e};
	struct ingest_write w = {.ic = &ic};
	struct order *ord = NULL;
	uint64_t *rsorted = NULL;
	size_t m; /* distinct rows */
	int rc;

	if (n == 0)
		return 0;
	if ((rc = ingest_list(core, &ic, e)) != 0 || ic.n == 0)
		goto out;
	ord = malloc(n * sizeof *ord);
	rsorted = malloc(n * sizeof *rsorted);
	w.scores = calloc(ic.n, sizeof *w.scores);
	w.status = calloc(ic.n, sizeof *w.status);
	w.labels = calloc(ic.n, sizeof *w.labels);
	w.runs = malloc(n * sizeof *w.runs);
	if (ord == NULL || rsorted == NULL || w.scores == NULL || w.status == NULL ||
	    w.labels == NULL || w.runs == NULL)
		goto nomem;
	m = ingest_order(rows, n, ord, rsorted, &w);
	if (ingest_results_alloc(&w, m) != 0)
		goto nomem;
	/* score the cheap ones in batches of one vector block's size */
	for (size_t i = 0; i < ic.n; i++) {
		const struct filter *f = ic.v[i].f;

		if (f == NULL)
			continue;
		for (size_t at = 0; at < m; at += STORE_BLOCK_ROWS) {
			size_t bn = m - at < STORE_BLOCK_ROWS ? m - at : STORE_BLOCK_ROWS;
			uint32_t *labels = w.labels[i] ? w.labels[i] + at : NULL;

			if (ingest_score_block(f, schema, recs, ord + at, rsorted + at, bn,
			                       w.scores[i] + at, w.status[i] + at, labels) == 0)
				continue;
			for (size_t q = 0; q < bn; q++) { /* leave this batch pending */
				w.scores[i][at + q] = NAN;
				w.status[i][at + q] = FILTER_PENDING;
				if (labels != NULL)
					labels[q] = FILTER_NO_LABEL;
			}
		}
	}
	rc = store_write(core->store, ingest_write_fn, &w, e);
	goto out;
nomem:
	rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
out:
	write_release(&ic, &w);
	free(ord);
	free(rsorted);
	return rc;
}

/* ---- scoring after a signals patch ---- */

struct patch_list {
	struct ingest_ctx *ic;
	unsigned char *mode; /* per instance: 0 keep, 1 rescore, 2 mark pending */
	size_t cap;
};

static int patch_list_fn(void *ctx, const char *key, size_t key_len, const void *val,
                         size_t len)
{
	struct patch_list *pl = ctx;
	struct ingest_ctx *c = pl->ic;
	struct ingest_inst *ii;
	json_t *doc = json_loadb(val, len, 0, NULL);
	struct filter *f = NULL;
	unsigned char mode = 0;

	if (doc == NULL || key_len > STORE_NAME_MAX || make_filter(doc, c->schema, &f, NULL) != 0)
		goto out;
	/* A patch changes signals only. The cheap types that read bodies are scored again (for
	 * those that ignore signals, to the same result); the costly ones of this build read no
	 * signals, so their scores stay valid and a signals push does not force a refit. */
	if ((f->needs & FILTER_NEEDS_BODY) && f->ops->cheap)
		mode = 1;
	if (mode == 1 && f->ops->fit != NULL) {
		const void *blob;
		size_t blen;

		if (store_reader_doc_get(c->r, c->ds, STORE_NS_FITTED, key, key_len, &blob, &blen, NULL) == 0 &&
		    filter_load(f, blob, blen, NULL) != 0)
			mode = 2; /* a state that does not load: better pending than wrong */
	}
	if (mode == 0)
		goto out;
	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 8;
		struct ingest_inst *p = realloc(c->v, ncap * sizeof *p);
		unsigned char *m = realloc(pl->mode, ncap);

		if (p != NULL)
			c->v = p;
		if (m != NULL)
			pl->mode = m;
		if (p == NULL || m == NULL) {
			c->rc = ERR_NOMEM;
			filter_free(f);
			json_decref(doc);
			return 1;
		}
		c->cap = ncap;
	}
	ii = &c->v[c->n];
	memset(ii, 0, sizeof *ii);
	memcpy(ii->name, key, key_len);
	ii->arr_score = doc_arr(doc, "score");
	ii->arr_status = doc_arr(doc, "status");
	ii->f = mode == 1 ? f : NULL;
	if (mode == 1)
		f = NULL;
	pl->mode[c->n++] = mode;
out:
	filter_free(f);
	json_decref(doc);
	return 0;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Rows closer than this are scored as one range: a scan reads whole vector blocks anyway,
 * and scoring a few rows in between is cheaper than opening a scan per row. */
#define PATCH_GAP STORE_BLOCK_ROWS

int instance_on_patch(struct core *core, uint32_t ds_id, const struct store_schema *schema,
                      const uint64_t *rows, size_t n, struct err *e)
{
	struct ingest_ctx ic = {.schema = schema, .ds = ds_id, .e = e};
	struct patch_list pl = {.ic = &ic};
	struct ingest_write w = {.ic = &ic};
	uint64_t *rs = NULL;
	float *tmp_s = NULL;
	uint8_t *tmp_st = NULL;
	size_t m = 0, tmp_cap = 0;
	int rc;

	if (n == 0)
		return 0;
	if ((rc = store_reader_open(core->store, &ic.r, e)) != 0)
		return rc;
	rc = store_reader_docs(ic.r, ds_id, STORE_NS_FILTER, patch_list_fn, &pl, e);
	store_reader_close(ic.r);
	ic.r = NULL;
	if (rc == 0 && ic.rc != 0)
		rc = err_set(e, ic.rc, "out_of_memory", "out of memory");
	if (rc != 0 || ic.n == 0)
		goto out;
	rs = malloc(n * sizeof *rs);
	w.scores = calloc(ic.n, sizeof *w.scores);
	w.status = calloc(ic.n, sizeof *w.status);
	w.runs = malloc(n * sizeof *w.runs);
	if (rs == NULL || w.scores == NULL || w.status == NULL || w.runs == NULL)
		goto nomem;
	memcpy(rs, rows, n * sizeof *rs);
	qsort(rs, n, sizeof *rs, u64_cmp);
	for (size_t i = 0; i < n; i++)
		if (m == 0 || rs[m - 1] != rs[i])
			rs[m++] = rs[i];
	for (size_t i = 0; i < m; i++) {
		if (w.nruns > 0 && w.runs[w.nruns - 1].row + w.runs[w.nruns - 1].n == rs[i]) {
			w.runs[w.nruns - 1].n++;
			continue;
		}
		w.runs[w.nruns++] = (struct run){rs[i], i, 1};
	}
	w.rows_sorted = rs;
	for (size_t i = 0; i < ic.n; i++) {
		w.scores[i] = malloc(m * sizeof(float));
		w.status[i] = malloc(m);
		if (w.scores[i] == NULL || w.status[i] == NULL)
			goto nomem;
		for (size_t k = 0; k < m; k++) {
			w.scores[i][k] = NAN;
			w.status[i][k] = FILTER_PENDING;
		}
	}
	for (size_t i = 0; i < ic.n; i++) {
		struct filter *f = ic.v[i].f;

		if (f == NULL)
			continue; /* pending */
		/* ranges of rows at most PATCH_GAP apart, each scored from one snapshot */
		for (size_t a = 0; a < m;) {
			size_t b = a + 1;
			uint64_t lo, hi;

			while (b < m && rs[b] - rs[b - 1] <= PATCH_GAP)
				b++;
			lo = rs[a];
			hi = rs[b - 1] + 1;
			if (hi - lo > tmp_cap) {
				float *ns = realloc(tmp_s, (size_t)(hi - lo) * sizeof *ns);
				uint8_t *nst = ns != NULL ? realloc(tmp_st, (size_t)(hi - lo)) : NULL;

				if (ns != NULL)
					tmp_s = ns;
				if (nst != NULL)
					tmp_st = nst;
				if (ns == NULL || nst == NULL)
					goto nomem;
				tmp_cap = (size_t)(hi - lo);
			}
			if ((rc = instance_score_range(core->store, ds_id, schema, f, lo, hi, tmp_s, tmp_st,
			                               0, NULL, e)) != 0)
				goto out;
			for (size_t k = a; k < b; k++) {
				w.scores[i][k] = tmp_s[rs[k] - lo];
				w.status[i][k] = tmp_st[rs[k] - lo];
			}
			a = b;
		}
	}
	rc = store_write(core->store, ingest_write_fn, &w, e);
	goto out;
nomem:
	rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
out:
	free(pl.mode);
	write_release(&ic, &w);
	free(rs);
	free(tmp_s);
	free(tmp_st);
	return rc;
}

/* ---- forgetting a deleted record ---- */

struct delete_ctx {
	uint32_t ds;
	uint64_t row;
	json_t *names; /* the instances' names, listed from a snapshot */
};

static int delete_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct delete_ctx *c = ctx;
	const float nan = NAN;
	const uint8_t pending = FILTER_PENDING;
	const uint32_t no_label = FILTER_NO_LABEL;
	size_t i;
	json_t *name;
	int rc = 0;

	json_array_foreach(c->names, i, name) {
		json_t *doc = NULL;
		uint32_t label;

		if (!json_is_string(name))
			continue;
		/* the arrays as they are now: an instance replaced since the listing has new ones,
		 * and one deleted since has none to write into */
		rc = jdoc_txn_get(t, c->ds, STORE_NS_FILTER, json_string_value(name), &doc, e);
		if (rc == ERR_NOT_FOUND) {
			err_clear(e);
			rc = 0;
			continue;
		}
		if (rc != 0)
			return rc;
		label = doc_arr(doc, "label");
		if (doc_arr(doc, "score") == 0 || doc_arr(doc, "status") == 0) {
			json_decref(doc);
			continue; /* damaged: nothing of ours to clear */
		}
		if ((rc = store_txn_array_put(t, c->ds, doc_arr(doc, "score"), 4, c->row, 1, &nan,
		                              e)) != 0 ||
		    (rc = store_txn_array_put(t, c->ds, doc_arr(doc, "status"), 1, c->row, 1,
		                              &pending, e)) != 0 ||
		    (label != 0 &&
		     (rc = store_txn_array_put(t, c->ds, label, 4, c->row, 1, &no_label, e)) != 0)) {
			json_decref(doc);
			return rc == ERR_NOT_FOUND ? 0 : rc; /* the dataset went away */
		}
		json_decref(doc);
	}
	return rc;
}

int instance_on_delete(struct core *core, uint32_t ds_id, uint64_t row, struct err *e)
{
	struct delete_ctx c = {.ds = ds_id, .row = row};
	struct store_reader *r = NULL;
	json_t *docs = NULL, *doc;
	size_t i;
	int rc;

	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	rc = jdoc_reader_list(r, ds_id, STORE_NS_FILTER, &docs, e);
	store_reader_close(r);
	if (rc != 0)
		return rc;
	if (json_array_size(docs) == 0) {
		json_decref(docs);
		return 0;
	}
	if ((c.names = json_array()) == NULL) {
		json_decref(docs);
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	json_array_foreach(docs, i, doc)
		json_array_append(c.names, json_object_get(doc, "name"));
	json_decref(docs);
	rc = store_write(core->store, delete_fn, &c, e);
	json_decref(c.names);
	return rc;
}

/* ---- statistics ---- */

/* Sort floats ascending: LSD radix sort on order-preserving u32 keys (NaN excluded by the
 * caller). O(n), two buffers. */
static int sort_floats(float *v, size_t n)
{
	uint32_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
	size_t count[256];

	if (a == NULL || b == NULL) {
		free(a);
		free(b);
		return ERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t u;

		memcpy(&u, &v[i], 4);
		a[i] = (u & 0x80000000u) ? ~u : u | 0x80000000u;
	}
	for (unsigned shift = 0; shift < 32; shift += 8) {
		size_t sum = 0;

		memset(count, 0, sizeof count);
		for (size_t i = 0; i < n; i++)
			count[(a[i] >> shift) & 0xff]++;
		for (unsigned k = 0; k < 256; k++) {
			size_t c = count[k];

			count[k] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			b[count[(a[i] >> shift) & 0xff]++] = a[i];
		{
			uint32_t *t = a;

			a = b;
			b = t;
		}
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t u = (a[i] & 0x80000000u) ? a[i] & 0x7fffffffu : ~a[i];

		memcpy(&v[i], &u, 4);
	}
	free(a);
	free(b);
	return 0;
}

/* The finite scores of the live scored rows of filter ref, in row order, into *vals (new,
 * rows entries at most; free() it), *nv of them; counts (256 entries, may be NULL) gets how
 * many live rows have each status. */
static int scores_read(struct store_reader *r, uint32_t ds, const struct instance_ref *ref,
                       uint64_t rows, float **vals, size_t *nv, uint64_t *counts, struct err *e)
{
	float *v = malloc((rows ? rows : 1) * sizeof *v), *sc = malloc(CHUNK_ROWS * sizeof *sc);
	uint8_t *st = malloc(CHUNK_ROWS), *live = malloc(CHUNK_ROWS);
	size_t n_ok = 0;
	int rc = 0;

	if (v == NULL || sc == NULL || st == NULL || live == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	for (uint64_t lo = 0; lo < rows; lo += CHUNK_ROWS) {
		size_t n = (size_t)(rows - lo < CHUNK_ROWS ? rows - lo : CHUNK_ROWS);

		if ((rc = store_reader_array(r, ds, STORE_ARRAY_LIVE, 1, lo, n, live, e)) != 0 ||
		    (rc = store_reader_array(r, ds, ref->arr_score, 4, lo, n, sc, e)) != 0 ||
		    (rc = store_reader_array(r, ds, ref->arr_status, 1, lo, n, st, e)) != 0)
			goto out;
		for (size_t i = 0; i < n; i++) {
			if (!live[i])
				continue;
			if (counts != NULL)
				counts[st[i]]++;
			if (filter_status_scored(st[i]) && isfinite(sc[i]))
				v[n_ok++] = sc[i];
		}
	}
out:
	free(sc);
	free(st);
	free(live);
	if (rc != 0) {
		free(v);
		return rc;
	}
	*vals = v;
	*nv = n_ok;
	return 0;
}

int instance_stats_json(struct core *core, const char *dataset, const char *name,
                        unsigned bins, double threshold, const double *range, json_t **out,
                        struct err *e)
{
	static const double qs[] = {0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99};
	struct store_dataset_info ds, info;
	struct store_reader *r = NULL;
	struct instance_ref ref;
	uint64_t counts[256] = {0};
	float *vals = NULL;
	size_t nv = 0;
	uint64_t live_n = 0, at_or_above = 0;
	double sum = 0;
	json_t *res = NULL, *unscorable, *reasons, *quant, *hist, *doc = NULL;
	int rc;

	if ((rc = dataset_get(core, dataset, &ds, e)) != 0)
		return rc;
	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	if ((rc = store_reader_dataset(r, ds.id, &info, e)) != 0 ||
	    (rc = instance_ref_read(r, ds.id, name, &ref, e)) != 0 ||
	    (rc = jdoc_named_reader_get(r, &filter_docs, ds.id, name, &doc, e)) != 0)
		goto out;
	if ((rc = scores_read(r, ds.id, &ref, info.next_row, &vals, &nv, counts, e)) != 0)
		goto out;
	for (size_t s = 0; s < 256; s++)
		live_n += counts[s];
	for (size_t i = 0; i < nv; i++) {
		sum += vals[i];
		if (!isnan(threshold) && (double)vals[i] >= threshold)
			at_or_above++;
	}
	store_reader_close(r);
	r = NULL;
	if ((rc = sort_floats(vals, nv)) != 0) {
		rc = err_set(e, rc, "out_of_memory", "out of memory");
		goto out;
	}
	unscorable = json_object();
	reasons = json_object();
	{
		uint64_t un = 0;

		for (unsigned s = FILTER_NO_VECTOR; s < FILTER_REASON_BASE; s++) {
			if (counts[s] == 0)
				continue;
			un += counts[s];
			json_object_set_new(unscorable, filter_status_name(ref.ops, (uint8_t)s),
			                    json_integer((json_int_t)counts[s]));
		}
		for (unsigned s = FILTER_REASON_BASE; s < 256; s++)
			if (counts[s] != 0)
				json_object_set_new(reasons, filter_status_name(ref.ops, (uint8_t)s),
				                    json_integer((json_int_t)counts[s]));
		res = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "filter", name, "version",
		                (json_int_t)ref.version, "records", (json_int_t)live_n, "count",
		                (json_int_t)nv, "unscorable", (json_int_t)un, "pending",
		                (json_int_t)counts[FILTER_PENDING], "unscorable_by_reason",
		                unscorable, "reasons", reasons);
	}
	if (res == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	quant = json_object();
	hist = json_pack("{s:[], s:[]}", "edges", "counts");
	if (nv > 0) {
		double lo = range ? range[0] : vals[0], hi = range ? range[1] : vals[nv - 1];
		json_t *edges = json_object_get(hist, "edges"), *hc = json_object_get(hist, "counts");
		uint64_t *hcount = calloc(bins, sizeof *hcount);

		json_object_set_new(res, "min", json_real(vals[0]));
		json_object_set_new(res, "max", json_real(vals[nv - 1]));
		json_object_set_new(res, "mean", json_real(sum / (double)nv));
		for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
			/* numpy's default ("linear") quantile */
			double pos = qs[k] * (double)(nv - 1);
			size_t i0 = (size_t)floor(pos);
			size_t i1 = i0 + 1 < nv ? i0 + 1 : i0;
			double v = vals[i0] + (pos - (double)i0) * ((double)vals[i1] - vals[i0]);
			char key[16];

			snprintf(key, sizeof key, "%g", qs[k]);
			json_object_set_new(quant, key, json_real(v));
		}
		if (hcount != NULL) {
			/* numpy.histogram: equal-width bins over [min, max], the last one closed */
			double width = (hi - lo) / bins;

			for (size_t i = 0; i < nv; i++) {
				size_t bi;

				if ((double)vals[i] < lo || (double)vals[i] > hi)
					continue; /* outside a given range */
				bi = width > 0 ? (size_t)(((double)vals[i] - lo) / width) : 0;
				if (bi >= bins)
					bi = bins - 1;
				hcount[bi]++;
			}
			for (unsigned k = 0; k <= bins; k++)
				json_array_append_new(edges, json_real(lo + (hi - lo) * k / bins));
			for (unsigned k = 0; k < bins; k++)
				json_array_append_new(hc, json_integer((json_int_t)hcount[k]));
			free(hcount);
		}
	} else {
		json_object_set_new(res, "min", json_null());
		json_object_set_new(res, "max", json_null());
		json_object_set_new(res, "mean", json_null());
	}
	json_object_set_new(res, "quantiles", quant);
	json_object_set_new(res, "histogram", hist);
	json_object_set_new(res, "warnings", doc_warnings(doc));
	if (!isnan(threshold)) {
		json_object_set_new(res, "threshold", json_real(threshold));
		json_object_set_new(res, "at_or_above", json_integer((json_int_t)at_or_above));
	}
	*out = res;
	res = NULL;
out:
	store_reader_close(r);
	json_decref(res);
	json_decref(doc);
	free(vals);
	return rc;
}

int instance_scores(struct core *core, const char *dataset, const char *name, float **vals_out,
                    size_t *n_out, uint64_t *version, struct err *e)
{
	struct store_dataset_info ds, info;
	struct store_reader *r = NULL;
	struct instance_ref ref;
	float *vals = NULL;
	size_t nv = 0;
	int rc;

	if ((rc = dataset_get(core, dataset, &ds, e)) != 0)
		return rc;
	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	if ((rc = store_reader_dataset(r, ds.id, &info, e)) != 0 ||
	    (rc = instance_ref_read(r, ds.id, name, &ref, e)) != 0)
		goto out;
	if ((rc = scores_read(r, ds.id, &ref, info.next_row, &vals, &nv, NULL, e)) != 0)
		goto out;
	*vals_out = vals;
	vals = NULL;
	*n_out = nv;
	if (version != NULL)
		*version = ref.version;
out:
	store_reader_close(r);
	free(vals);
	return rc;
}
