/* SPDX-License-Identifier: MIT */
/* adapters: Cosine Adapters in the store, their pairs, the training job, and the search
 * side (open a trained adapter, map cosines, invert a minimum relevance to a cosine bound).
 * See adapters.h for the documents; algo/adapter.c holds the mathematics. */
#include "search/adapters.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "lib/err.h"
#include "core/jobs.h"
#include "algo/adapter.h"
#include "store/jdoc.h"
#include "store/store.h"
#include "lib/b64.h"
#include "lib/vec.h"

#define PAIRS_MAGIC 0x31514e57u /* "WNQ1" */
#define MAX_LISTED_ERRORS 1000
#define KEY_MAX (STORE_NAME_MAX + 16)

/* The weights blob starts with what search needs besides the weights, so that opening an
 * adapter for a query reads one blob and parses no JSON (host order, copied with memcpy). */
struct wprefix {
	uint64_t version;
	double threshold;
	char space[STORE_NAME_MAX + 8]; /* NUL-terminated */
};

/* One pair as stored in a batch blob (16 bytes, host order, copied with memcpy). */
struct pair_rec {
	uint64_t row;
	uint32_t q;
	float label;
};

static int64_t now_unix(void)
{
	return (int64_t)time(NULL);
}

static const struct jdoc_kind adapter_docs = {STORE_NS_ADAPTER, "adapter_not_found", "adapter"};

static int name_check(const char *name, struct err *e)
{
	if (!store_name_valid(name))
		return err_set(e, ERR_INVALID, "bad_name",
		               "an adapter name is 1 to 64 characters of [A-Za-z0-9._-]");
	return 0;
}

static uint64_t doc_u64(const json_t *doc, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(doc, key));
}

static void batch_key(const char *name, uint64_t seq, char key[KEY_MAX])
{
	snprintf(key, KEY_MAX, "%s/%010llu", name, (unsigned long long)seq);
}

/* Delete the pair batches 1..doc.batches of adapter name. */
static int drop_pairs(struct store_txn *t, uint32_t ds, const char *name, const json_t *doc,
                      struct err *e)
{
	char key[KEY_MAX];
	int rc = 0;

	for (uint64_t s = 1; rc == 0 && s <= doc_u64(doc, "batches"); s++) {
		batch_key(name, s, key);
		rc = jdoc_txn_drop(t, ds, STORE_NS_ADAPTER_PAIRS, key, e);
	}
	return rc;
}

/* ---- the definition ---- */

static int num_field(const json_t *body, const char *key, double lo, double hi, int integer,
                     double *out, struct err *e)
{
	const json_t *v = json_object_get(body, key);

	if (v == NULL)
		return 0;
	if (!json_is_number(v) || (integer && !json_is_integer(v)) ||
	    !(json_number_value(v) >= lo && json_number_value(v) <= hi))
		return err_set(e, ERR_INVALID, "bad_param", "\"%s\" must be %s from %g to %g", key,
		               integer ? "an integer" : "a number", lo, hi);
	*out = json_number_value(v);
	return 0;
}

/* The full definition (defaults filled in, so that two PUTs compare as JSON) from body. */
static int parse_definition(const json_t *body, const struct store_schema *schema,
                            json_t **out, struct err *e)
{
	static const char *const known[] = {
	        "space",        "family",        "hidden",     "loss",       "label_cut",
	        "seed",         "learning_rate", "weight_decay", "max_epochs", "patience",
	        "batch_queries", "val_fraction", "target",     "top_k",      NULL};
	const char *key, *space, *fam = "linear", *loss;
	enum adapter_family f;
	enum adapter_loss l;
	double hidden = 32, cut = 0.5, seed = 1, lr = 0.01, wd = 1e-4, epochs = 200, patience = 10;
	double bq = 16, vf = 0.2, topk = 10, tval = 0;
	const char *tkind = "f1";
	const json_t *v;
	json_t *val;
	int rc;

	if (!json_is_object(body))
		return err_set(e, ERR_INVALID, "bad_adapter", "the body must be a JSON object");
	json_object_foreach((json_t *)body, key, val) {
		size_t i;

		for (i = 0; known[i] != NULL && strcmp(known[i], key) != 0; i++)
			;
		if (known[i] == NULL)
			return err_set(e, ERR_INVALID, "unknown_param", "unknown field '%s'", key);
	}
	space = json_string_value(json_object_get(body, "space"));
	if (space == NULL && schema->nspaces == 1)
		space = schema->spaces[0].name;
	if (space == NULL || store_schema_find(schema, space) < 0)
		return err_set(e, ERR_INVALID, "bad_param", "\"space\" must name a space of the dataset");
	if ((v = json_object_get(body, "family")) != NULL)
		fam = json_string_value(v);
	if (adapter_family_parse(fam, &f) != 0)
		return err_set(e, ERR_INVALID, "bad_param",
		               "\"family\" must be \"linear\", \"sqrt\" or \"power\"");
	/* the spec's losses: BCE on the sigmoid forms, squared error on the power form */
	loss = f == ADAPTER_POWER ? "mse" : "bce";
	if ((v = json_object_get(body, "loss")) != NULL)
		loss = json_string_value(v);
	if (adapter_loss_parse(loss, &l) != 0)
		return err_set(e, ERR_INVALID, "bad_param", "\"loss\" must be \"bce\" or \"mse\"");
	if ((rc = num_field(body, "hidden", 1, ADAPTER_HIDDEN_MAX, 1, &hidden, e)) != 0 ||
	    (rc = num_field(body, "label_cut", -1e9, 1e9, 0, &cut, e)) != 0 ||
	    (rc = num_field(body, "seed", 0, 9007199254740991.0, 1, &seed, e)) != 0 ||
	    (rc = num_field(body, "learning_rate", 1e-6, 1, 0, &lr, e)) != 0 ||
	    (rc = num_field(body, "weight_decay", 0, 1, 0, &wd, e)) != 0 ||
	    (rc = num_field(body, "max_epochs", 1, 100000, 1, &epochs, e)) != 0 ||
	    (rc = num_field(body, "patience", 1, 100000, 1, &patience, e)) != 0 ||
	    (rc = num_field(body, "batch_queries", 1, 1000000, 1, &bq, e)) != 0 ||
	    (rc = num_field(body, "val_fraction", 0.01, 0.9, 0, &vf, e)) != 0 ||
	    (rc = num_field(body, "top_k", 1, 100000, 1, &topk, e)) != 0)
		return rc;
	/* the trainer keeps five copies of the weights (them, the gradient, Adam's two moments,
	 * the best epoch's) in doubles: bound them to 2^24 weights, 128 MB a copy */
	if ((double)hidden * schema->spaces[store_schema_find(schema, space)].dim > 16777216.0)
		return err_set(e, ERR_INVALID, "bad_param",
		               "\"hidden\" x the space's dim must be at most 16777216");
	if ((v = json_object_get(body, "target")) != NULL) {
		const json_t *p = json_object_get(v, "precision"), *r = json_object_get(v, "recall");

		if (!json_is_object(v) || json_object_size(v) != 1 || (p == NULL && r == NULL) ||
		    !json_is_number(p ? p : r) || !(json_number_value(p ? p : r) > 0) ||
		    !(json_number_value(p ? p : r) <= 1))
			return err_set(e, ERR_INVALID, "bad_param",
			               "\"target\" is {\"precision\": x} or {\"recall\": x}, 0 < x <= 1 "
			               "(without it the threshold maximises F1)");
		tkind = p != NULL ? "precision" : "recall";
		tval = json_number_value(p ? p : r);
	}
	*out = json_pack("{s:s, s:s, s:I, s:s, s:f, s:I, s:f, s:f, s:I, s:I, s:I, s:f, s:I}",
	                 "space", space, "family", adapter_family_name(f), "hidden",
	                 (json_int_t)hidden, "loss", adapter_loss_name(l), "label_cut", cut, "seed",
	                 (json_int_t)seed, "learning_rate", lr, "weight_decay", wd, "max_epochs",
	                 (json_int_t)epochs, "patience", (json_int_t)patience, "batch_queries",
	                 (json_int_t)bq, "val_fraction", vf, "top_k", (json_int_t)topk);
	if (*out == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	json_object_set_new(*out, "target",
	                    strcmp(tkind, "f1") == 0 ? json_pack("{s:s}", "maximise", "f1")
	                                             : json_pack("{s:f}", tkind, tval));
	return 0;
}

/* ---- views ---- */

static json_t *view_of(struct core *core, const json_t *doc)
{
	json_t *v = json_pack("{s:O, s:O, s:O}", "name", json_object_get(doc, "name"), "version",
	                      json_object_get(doc, "version"), "definition",
	                      json_object_get(doc, "definition"));
	const json_t *tr = json_object_get(doc, "training");
	json_t *job = NULL;
	const char *state = tr != NULL ? "trained" : "untrained";

	if (v == NULL)
		return NULL;
	json_object_set_new(v, "pairs", json_pack("{s:I, s:I, s:I}", "count",
	                                          (json_int_t)doc_u64(doc, "pairs"), "queries",
	                                          (json_int_t)doc_u64(doc, "queries"), "batches",
	                                          (json_int_t)doc_u64(doc, "batches")));
	if (doc_u64(doc, "job") != 0 && jobs_get_json(core->jobs, doc_u64(doc, "job"), &job, NULL) == 0) {
		const char *js = json_string_value(json_object_get(job, "state"));

		if (js != NULL && (strcmp(js, "queued") == 0 || strcmp(js, "running") == 0))
			state = "training";
		json_object_set_new(v, "training_job", job);
	} else {
		json_object_set_new(v, "training_job", json_null());
	}
	json_object_set_new(v, "state", json_string(state));
	json_object_set_new(v, "threshold", json_incref(json_object_get(doc, "threshold")
	                                                       ? json_object_get(doc, "threshold")
	                                                       : json_null()));
	json_object_set_new(v, "training", tr != NULL ? json_incref((json_t *)tr) : json_null());
	json_object_set_new(v, "created", jdoc_time(json_object_get(doc, "created")));
	json_object_set_new(v, "updated", jdoc_time(json_object_get(doc, "updated")));
	return v;
}

/* ---- PUT, GET, list, DELETE ---- */

struct put_ctx {
	uint32_t ds;
	const char *name;
	const json_t *def;
	json_t *doc; /* out: the document as written (or found) */
	int created, unchanged;
};

static int put_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct put_ctx *c = ctx;
	json_t *old = NULL, *doc = NULL;
	uint64_t version;
	int rc;

	c->created = c->unchanged = 0;
	json_decref(c->doc);
	c->doc = NULL;
	rc = jdoc_named_txn_previous(t, &adapter_docs, c->ds, c->name, &old, &version, e);
	if (rc != 0)
		return rc;
	if (old == NULL) {
		c->created = 1;
		doc = json_pack("{s:s, s:O, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "name", c->name,
		                "definition", (json_t *)c->def, "version", (json_int_t)version,
		                "pairs", (json_int_t)0, "queries", (json_int_t)0, "batches",
		                (json_int_t)0, "job", (json_int_t)0, "created",
		                (json_int_t)now_unix(), "updated", (json_int_t)now_unix());
	} else if (json_equal(json_object_get(old, "definition"), (json_t *)c->def)) {
		c->unchanged = 1;
		c->doc = old;
		return 0;
	} else {
		const char *os = json_string_value(
		        json_object_get(json_object_get(old, "definition"), "space"));
		const char *ns = json_string_value(json_object_get(c->def, "space"));

		doc = json_deep_copy(old);
		if (doc == NULL)
			goto nomem;
		/* new definition: a new version without weights; pairs of another space go */
		if (os == NULL || ns == NULL || strcmp(os, ns) != 0) {
			if ((rc = drop_pairs(t, c->ds, c->name, old, e)) != 0)
				goto out;
			json_object_set_new(doc, "pairs", json_integer(0));
			json_object_set_new(doc, "queries", json_integer(0));
			json_object_set_new(doc, "batches", json_integer(0));
		}
		if ((rc = jdoc_txn_drop(t, c->ds, STORE_NS_ADAPTER_WEIGHTS, c->name, e)) != 0)
			goto out;
		json_object_del(doc, "training");
		json_object_del(doc, "threshold");
		json_object_set(doc, "definition", (json_t *)c->def);
		json_object_set_new(doc, "version", json_integer((json_int_t)version));
		json_object_set_new(doc, "updated", json_integer(now_unix()));
	}
	if (doc == NULL)
		goto nomem;
	if ((rc = jdoc_named_txn_put(t, &adapter_docs, c->ds, c->name, doc, e)) != 0)
		goto out;
	c->doc = doc;
	doc = NULL;
out:
	json_decref(old);
	json_decref(doc);
	return rc;
nomem:
	rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	goto out;
}

int adapters_put(struct core *core, const char *dataset, const char *name, const json_t *body,
                  json_t **view, int *created, struct err *e)
{
	struct store_dataset_info ds;
	struct put_ctx c = {.name = name};
	json_t *def = NULL;
	int rc;

	if ((rc = name_check(name, e)) != 0 ||
	    (rc = store_dataset_get(core->store, dataset, &ds, e)) != 0 ||
	    (rc = parse_definition(body, &ds.schema, &def, e)) != 0)
		return rc;
	c.ds = ds.id;
	c.def = def;
	rc = store_write(core->store, put_fn, &c, e);
	json_decref(def);
	if (rc != 0) {
		json_decref(c.doc);
		return rc;
	}
	if (!c.unchanged && !c.created) /* a training of the old definition cannot commit */
		jobs_cancel_matching(core->jobs, ds.id, "adapter_train", name, 0);
	*view = view_of(core, c.doc);
	*created = c.created;
	json_decref(c.doc);
	return *view != NULL ? 0 : err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
}

/* view_of as a jdoc_view_fn. */
static json_t *named_view(void *ctx, uint32_t ds, const json_t *doc)
{
	(void)ds;
	return view_of(ctx, doc);
}

int adapters_get_json(struct core *core, const char *dataset, const char *name, json_t **out,
                      struct err *e)
{
	return jdoc_named_view(core->store, &adapter_docs, dataset, name, named_view, core, out, e);
}

int adapters_list_json(struct core *core, const char *dataset, json_t **out, struct err *e)
{
	return jdoc_named_list(core->store, &adapter_docs, dataset, named_view, core, out, e);
}

/* An adapter's pair batches and weights go with it (jdoc_cleanup_fn). */
static int drop_derived(void *ctx, struct store_txn *t, uint32_t ds, const char *name,
                        const json_t *doc, struct err *e)
{
	int rc;

	(void)ctx;
	if ((rc = drop_pairs(t, ds, name, doc, e)) != 0)
		return rc;
	return jdoc_txn_drop(t, ds, STORE_NS_ADAPTER_WEIGHTS, name, e);
}

int adapters_delete(struct core *core, const char *dataset, const char *name, struct err *e)
{
	struct store_dataset_info ds;
	int rc;

	if ((rc = store_dataset_get(core->store, dataset, &ds, e)) != 0 ||
	    (rc = jdoc_named_delete(core->store, &adapter_docs, ds.id, name, drop_derived, NULL,
	                            e)) != 0)
		return rc;
	jobs_cancel_matching(core->jobs, ds.id, "adapter_train", name, 0);
	return 0;
}

/* ---- pairs ---- */

/* The f32 vector of row in space index sp (dim floats into out). ERR_NOT_FOUND: none. */
static int read_vec(struct store_reader *r, uint32_t ds, const struct store_schema *schema,
                    unsigned sp, uint64_t row, float *out)
{
	const struct store_space *s = &schema->spaces[sp];
	const void *data;
	uint64_t present;
	size_t at = (size_t)(row % STORE_BLOCK_ROWS) * s->dim;

	if (store_reader_block(r, ds, sp, row / STORE_BLOCK_ROWS, &data, &present, NULL) != 0 ||
	    !(present >> (row % STORE_BLOCK_ROWS) & 1))
		return ERR_NOT_FOUND;
	if (s->dtype == STORE_F16)
		vec_f16_to_f32((const uint16_t *)data + at, out, s->dim);
	else
		memcpy(out, (const float *)data + at, s->dim * sizeof *out);
	return 0;
}

static uint64_t hash_vec(const float *v, uint32_t dim)
{
	const unsigned char *p = (const unsigned char *)v;
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < (size_t)dim * sizeof *v; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/* Distinct query vectors: an open-addressing table over a growing array. */
struct qset {
	uint32_t dim;
	float *v;
	size_t n, cap;
	size_t *slot; /* index + 1, 0 = empty */
	size_t nslot;
};

static void qset_free(struct qset *s)
{
	free(s->v);
	free(s->slot);
}

/* The index of vector x (borrowed) in s, adding it when new. -1 on no memory. */
static long long qset_add(struct qset *s, const float *x)
{
	size_t h;

	if (2 * (s->n + 1) > s->nslot) {
		size_t ns = s->nslot ? s->nslot * 2 : 1024;
		size_t *sl = calloc(ns, sizeof *sl);

		if (sl == NULL)
			return -1;
		for (size_t i = 0; i < s->n; i++) {
			size_t k = (size_t)hash_vec(s->v + i * s->dim, s->dim) & (ns - 1);

			while (sl[k] != 0)
				k = (k + 1) & (ns - 1);
			sl[k] = i + 1;
		}
		free(s->slot);
		s->slot = sl;
		s->nslot = ns;
	}
	h = (size_t)hash_vec(x, s->dim) & (s->nslot - 1);
	while (s->slot[h] != 0) {
		size_t i = s->slot[h] - 1;

		if (memcmp(s->v + i * s->dim, x, s->dim * sizeof *x) == 0)
			return (long long)i;
		h = (h + 1) & (s->nslot - 1);
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		float *g = realloc(s->v, cap * s->dim * sizeof *g);

		if (g == NULL)
			return -1;
		s->v = g;
		s->cap = cap;
	}
	memcpy(s->v + s->n * s->dim, x, s->dim * sizeof *x);
	s->slot[h] = s->n + 1;
	return (long long)s->n++;
}

struct pairs_ctx {
	uint32_t ds;
	const char *name, *space;
	const void *blob;
	size_t blob_len, np, nq;
	uint64_t pairs, queries; /* out: totals */
};

static int pairs_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct pairs_ctx *c = ctx;
	json_t *doc = NULL;
	const char *sp;
	char key[KEY_MAX];
	uint64_t seq;
	int rc;

	if ((rc = jdoc_named_txn_get(t, &adapter_docs, c->ds, c->name, &doc, e)) != 0)
		return rc;
	sp = json_string_value(json_object_get(json_object_get(doc, "definition"), "space"));
	if (sp == NULL || strcmp(sp, c->space) != 0) {
		json_decref(doc);
		return err_set(e, ERR_CONFLICT, "adapter_changed",
		               "the adapter's space changed while the pairs were read");
	}
	seq = doc_u64(doc, "batches") + 1;
	batch_key(c->name, seq, key);
	c->pairs = doc_u64(doc, "pairs") + c->np;
	c->queries = doc_u64(doc, "queries") + c->nq;
	json_object_set_new(doc, "batches", json_integer((json_int_t)seq));
	json_object_set_new(doc, "pairs", json_integer((json_int_t)c->pairs));
	json_object_set_new(doc, "queries", json_integer((json_int_t)c->queries));
	json_object_set_new(doc, "updated", json_integer(now_unix()));
	if ((rc = store_txn_doc_put(t, c->ds, STORE_NS_ADAPTER_PAIRS, key, strlen(key), c->blob,
	                            c->blob_len, e)) == 0)
		rc = jdoc_txn_put(t, c->ds, STORE_NS_ADAPTER, c->name, doc, e);
	json_decref(doc);
	return rc;
}

static void reject(json_t *errors, size_t *rejected, size_t line, const struct err *le)
{
	(*rejected)++;
	if (json_array_size(errors) < MAX_LISTED_ERRORS)
		json_array_append_new(errors, json_pack("{s:I, s:s, s:s}", "line", (json_int_t)line,
		                                        "code", le->slug, "detail", le->detail));
}

/* One line into (query vector in qv, doc row, label). */
static int parse_pair(const json_t *o, struct store_reader *r, const struct store_dataset_info *ds,
                      unsigned sp, float *qv, uint64_t *row, float *label, struct err *le)
{
	const struct store_schema *schema = &ds->schema;
	uint32_t dim = schema->spaces[sp].dim;
	const json_t *q = json_object_get(o, "query"), *lb = json_object_get(o, "label");
	const char *id = json_string_value(json_object_get(o, "id")), *key;
	json_t *val;

	if (!json_is_object(o))
		return err_set(le, ERR_INVALID, "bad_pair", "a line is a JSON object");
	json_object_foreach((json_t *)o, key, val) {
		if (strcmp(key, "query") != 0 && strcmp(key, "id") != 0 && strcmp(key, "label") != 0)
			return err_set(le, ERR_INVALID, "unknown_field", "unknown field '%s'", key);
	}
	if (id == NULL)
		return err_set(le, ERR_INVALID, "bad_pair", "\"id\" must be a record id");
	if (!json_is_number(lb) || !isfinite(json_number_value(lb)))
		return err_set(le, ERR_INVALID, "bad_label", "\"label\" must be a finite number");
	*label = (float)json_number_value(lb);
	if (json_is_array(q)) {
		size_t i;
		json_t *x;

		if (json_array_size(q) != dim)
			return err_set(le, ERR_INVALID, "dimension_mismatch",
			               "the query has %zu values, space '%s' has dim %u",
			               json_array_size(q), schema->spaces[sp].name, (unsigned)dim);
		json_array_foreach(q, i, x) {
			if (!json_is_number(x) || !isfinite(json_number_value(x)))
				return err_set(le, ERR_INVALID, "non_finite",
				               "query value %zu is not a finite number", i);
			qv[i] = (float)json_number_value(x);
		}
	} else if (json_is_object(q) && json_is_string(json_object_get(q, "record_id"))) {
		const char *qid = json_string_value(json_object_get(q, "record_id"));
		const char *qs = json_string_value(json_object_get(q, "space"));
		int qsp = qs != NULL ? store_schema_find(schema, qs) : (int)sp;
		uint64_t qrow;

		if (qsp < 0 || schema->spaces[qsp].dim != dim)
			return err_set(le, ERR_INVALID, "bad_query",
			               "the query's \"space\" must be a space of dim %u", (unsigned)dim);
		if (store_reader_find(r, ds->id, qid, strlen(qid), &qrow, NULL) != 0)
			return err_set(le, ERR_INVALID, "record_not_found", "no record '%s'", qid);
		if (read_vec(r, ds->id, schema, (unsigned)qsp, qrow, qv) != 0)
			return err_set(le, ERR_INVALID, "no_vector", "record '%s' has no '%s' vector",
			               qid, schema->spaces[qsp].name);
	} else {
		return err_set(le, ERR_INVALID, "bad_query",
		               "\"query\" is an array of numbers or {\"record_id\", \"space\"}");
	}
	{
		double nn = 0;

		for (uint32_t k = 0; k < dim; k++)
			nn += (double)qv[k] * qv[k];
		if (!(nn > 0))
			return err_set(le, ERR_INVALID, "zero_vector", "the query vector is zero");
	}
	if (store_reader_find(r, ds->id, id, strlen(id), row, NULL) != 0)
		return err_set(le, ERR_INVALID, "record_not_found", "no record '%s'", id);
	{
		float *dv = malloc(dim * sizeof *dv);
		int rc = dv != NULL ? read_vec(r, ds->id, schema, sp, *row, dv) : ERR_NOMEM;

		free(dv);
		if (rc == ERR_NOMEM)
			return err_set(le, ERR_NOMEM, "out_of_memory", "out of memory");
		if (rc != 0)
			return err_set(le, ERR_INVALID, "no_vector", "record '%s' has no '%s' vector", id,
			               schema->spaces[sp].name);
	}
	return 0;
}

int adapters_pairs_add(struct core *core, const char *dataset, const char *name,
                        const char *body, size_t len, json_t **out, struct err *e)
{
	struct store_dataset_info ds;
	struct store_reader *r = NULL;
	json_t *doc = NULL, *errors = json_array();
	struct qset qs = {0};
	struct pair_rec *pr = NULL;
	size_t np = 0, cap = 0, rejected = 0, line = 0;
	float *qv = NULL;
	unsigned char *blob = NULL;
	const char *space;
	int sp, rc;
	struct pairs_ctx c = {.name = name};

	if (errors == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if ((rc = jdoc_named_get(core->store, &adapter_docs, dataset, name, &ds, &doc, e)) != 0)
		goto out;
	space = json_string_value(json_object_get(json_object_get(doc, "definition"), "space"));
	if (space == NULL || (sp = store_schema_find(&ds.schema, space)) < 0) {
		rc = err_set(e, ERR_INTERNAL, "bad_adapter", "the adapter's space is gone");
		goto out;
	}
	qs.dim = ds.schema.spaces[sp].dim;
	qv = malloc(qs.dim * sizeof *qv);
	if (qv == NULL || (rc = store_reader_open(core->store, &r, e)) != 0) {
		rc = rc ? rc : err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	for (const char *p = body, *end = body + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct err le = {0};
		json_error_t jerr;
		json_t *o;
		uint64_t row = 0;
		float label = 0;
		int blank = 1;

		line++;
		for (size_t i = 0; i < n && blank; i++)
			blank = p[i] == ' ' || p[i] == '\t' || p[i] == '\r';
		if (!blank) {
			o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
			if (o == NULL) {
				err_set(&le, ERR_MALFORMED, "malformed_json", "not JSON: %s", jerr.text);
				reject(errors, &rejected, line, &le);
			} else if ((rc = parse_pair(o, r, &ds, (unsigned)sp, qv, &row, &label, &le)) != 0) {
				json_decref(o);
				if (rc == ERR_NOMEM)
					goto nomem;
				rc = 0;
				reject(errors, &rejected, line, &le);
			} else {
				long long qi = qset_add(&qs, qv);

				json_decref(o);
				if (qi < 0)
					goto nomem;
				if (np == cap) {
					size_t nc = cap ? cap * 2 : 1024;
					struct pair_rec *g = realloc(pr, nc * sizeof *g);

					if (g == NULL)
						goto nomem;
					pr = g;
					cap = nc;
				}
				pr[np++] = (struct pair_rec){row, (uint32_t)qi, label};
			}
		}
		p += n + 1;
	}
	store_reader_close(r);
	r = NULL;
	if (np > 0) {
		uint32_t hdr[4] = {PAIRS_MAGIC, qs.dim, (uint32_t)qs.n, (uint32_t)np};
		size_t qb = qs.n * qs.dim * sizeof(float);

		c.blob_len = sizeof hdr + qb + np * sizeof *pr;
		blob = malloc(c.blob_len);
		if (blob == NULL)
			goto nomem;
		memcpy(blob, hdr, sizeof hdr);
		memcpy(blob + sizeof hdr, qs.v, qb);
		memcpy(blob + sizeof hdr + qb, pr, np * sizeof *pr);
		c.ds = ds.id;
		c.space = space;
		c.blob = blob;
		c.np = np;
		c.nq = qs.n;
		if ((rc = store_write(core->store, pairs_fn, &c, e)) != 0)
			goto out;
	} else {
		c.pairs = doc_u64(doc, "pairs");
		c.queries = doc_u64(doc, "queries");
	}
	*out = json_pack("{s:I, s:I, s:O, s:I, s:I}", "accepted", (json_int_t)np, "rejected",
	                 (json_int_t)rejected, "errors", errors, "pairs", (json_int_t)c.pairs,
	                 "queries", (json_int_t)c.queries);
	rc = *out != NULL ? 0 : err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	goto out;
nomem:
	rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
out:
	store_reader_close(r);
	json_decref(doc);
	json_decref(errors);
	qset_free(&qs);
	free(pr);
	free(qv);
	free(blob);
	return rc;
}

/* ---- training ---- */

struct train_ctx {
	struct core *core;
	uint32_t ds;
	const char *dataset, *name;
	uint64_t job;
};

static int train_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct train_ctx *c = ctx;
	json_t *doc = NULL, *args = NULL;
	int rc;

	c->job = 0;
	if ((rc = jdoc_named_txn_get(t, &adapter_docs, c->ds, c->name, &doc, e)) != 0)
		return rc;
	if (doc_u64(doc, "pairs") == 0) {
		json_decref(doc);
		return err_set(e, ERR_INVALID, "no_pairs",
		               "adapter '%s' has no pairs: POST them to .../pairs first", c->name);
	}
	args = json_pack("{s:O}", "definition", json_object_get(doc, "definition"));
	rc = args ? jobs_txn_create(c->core->jobs, t, "adapter_train", c->ds, c->dataset, c->name,
	                            args, &c->job, e)
	          : err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	json_decref(args);
	if (rc == 0) {
		json_object_set_new(doc, "job", json_integer((json_int_t)c->job));
		rc = jdoc_txn_put(t, c->ds, STORE_NS_ADAPTER, c->name, doc, e);
	}
	json_decref(doc);
	return rc;
}

int adapters_train(struct core *core, const char *dataset, const char *name, uint64_t *job,
                    json_t **view, struct err *e)
{
	struct store_dataset_info ds;
	struct train_ctx c = {.core = core, .dataset = dataset, .name = name};
	int rc;

	if ((rc = store_dataset_get(core->store, dataset, &ds, e)) != 0)
		return rc;
	c.ds = ds.id;
	if ((rc = store_write(core->store, train_fn, &c, e)) != 0)
		return rc;
	/* one training at a time: an older one is superseded */
	jobs_cancel_matching(core->jobs, ds.id, "adapter_train", name, c.job);
	jobs_submit(core->jobs, c.job);
	*job = c.job;
	return adapters_get_json(core, dataset, name, view, e);
}

/* The pairs of one snapshot, resolved to (query, cosine, label). */
struct gathered {
	struct qset qs;   /* distinct queries as given */
	uint32_t *pq;     /* query of each pair */
	float *cos;
	uint8_t *label;
	size_t n, cap, skipped;
};

static void gathered_free(struct gathered *g)
{
	qset_free(&g->qs);
	free(g->pq);
	free(g->cos);
	free(g->label);
}

static int gather(struct store_reader *r, const struct store_dataset_info *ds, unsigned sp,
                  const char *name, const json_t *doc, double cut, struct gathered *g,
                  struct err *e)
{
	uint32_t dim = ds->schema.spaces[sp].dim;
	float *dv = malloc(dim * sizeof *dv);
	uint32_t *map = NULL;
	char key[KEY_MAX];
	int rc = 0;

	g->qs.dim = dim;
	if (dv == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	for (uint64_t s = 1; rc == 0 && s <= doc_u64(doc, "batches"); s++) {
		const unsigned char *b;
		const void *val;
		size_t len, qb;
		uint32_t hdr[4];

		batch_key(name, s, key);
		if (store_reader_doc_get(r, ds->id, STORE_NS_ADAPTER_PAIRS, key, strlen(key), &val,
		                         &len, NULL) != 0)
			continue;
		b = val;
		if (len < sizeof hdr)
			continue;
		memcpy(hdr, b, sizeof hdr);
		qb = (size_t)hdr[2] * hdr[1] * sizeof(float);
		if (hdr[0] != PAIRS_MAGIC || hdr[1] != dim ||
		    len != sizeof hdr + qb + (size_t)hdr[3] * sizeof(struct pair_rec))
			continue;
		free(map);
		map = malloc((hdr[2] ? hdr[2] : 1) * sizeof *map);
		if (map == NULL) {
			rc = ERR_NOMEM;
			break;
		}
		/* each batch's queries into the global set (a query sent twice is one query) */
		for (uint32_t i = 0; i < hdr[2]; i++) {
			float *qv = dv;
			long long qi;

			memcpy(qv, b + sizeof hdr + (size_t)i * dim * sizeof(float), dim * sizeof(float));
			if ((qi = qset_add(&g->qs, qv)) < 0) {
				rc = ERR_NOMEM;
				break;
			}
			map[i] = (uint32_t)qi;
		}
		for (uint32_t i = 0; rc == 0 && i < hdr[3]; i++) {
			struct pair_rec p;
			const float *q;
			double qq = 0, xx = 0, xq = 0;

			memcpy(&p, b + sizeof hdr + qb + (size_t)i * sizeof p, sizeof p);
			if (p.q >= hdr[2] || read_vec(r, ds->id, &ds->schema, sp, p.row, dv) != 0) {
				g->skipped++; /* deleted since, or lost its vector */
				continue;
			}
			q = g->qs.v + (size_t)map[p.q] * dim;
			for (uint32_t k = 0; k < dim; k++) {
				qq += (double)q[k] * q[k];
				xx += (double)dv[k] * dv[k];
				xq += (double)dv[k] * q[k];
			}
			if (!(xx > 0) || !(qq > 0)) {
				g->skipped++;
				continue;
			}
			if (g->n == g->cap) {
				size_t nc = g->cap ? g->cap * 2 : 4096;
				uint32_t *a1 = realloc(g->pq, nc * sizeof *a1);
				float *a2;
				uint8_t *a3;

				if (a1 != NULL)
					g->pq = a1;
				a2 = realloc(g->cos, nc * sizeof *a2);
				if (a2 != NULL)
					g->cos = a2;
				a3 = realloc(g->label, nc);
				if (a3 != NULL)
					g->label = a3;
				if (a1 == NULL || a2 == NULL || a3 == NULL) {
					rc = ERR_NOMEM;
					break;
				}
				g->cap = nc;
			}
			g->pq[g->n] = map[p.q];
			g->cos[g->n] = (float)(xq / sqrt(qq * xx));
			g->label[g->n] = p.label >= cut;
			g->n++;
		}
	}
	free(map);
	free(dv);
	return rc == ERR_NOMEM ? err_set(e, ERR_NOMEM, "out_of_memory", "out of memory") : rc;
}

/* ---- a shard-independent order ---- */

struct qref {
	const float *v;
	size_t dim, idx;
};

static int qref_cmp(const void *a, const void *b)
{
	const struct qref *x = a, *y = b;
	int c = memcmp(x->v, y->v, x->dim * sizeof(float));

	return c != 0 ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

struct pref {
	uint32_t q;
	float cos;
	uint8_t label;
};

static int pref_cmp(const void *a, const void *b)
{
	const struct pref *x = a, *y = b;

	if (x->q != y->q)
		return x->q < y->q ? -1 : 1;
	if (x->cos != y->cos)
		return x->cos < y->cos ? -1 : 1;
	return (x->label > y->label) - (x->label < y->label);
}

/* Put g's queries in the order of their bytes and each query's pairs by (cosine, label): the
 * order the pairs arrived in, or the shard they live on, then changes nothing in a training. */
static int canon(struct gathered *g)
{
	size_t nq = g->qs.n, dim = g->qs.dim;
	struct qref *qr = malloc((nq ? nq : 1) * sizeof *qr);
	size_t *inv = malloc((nq ? nq : 1) * sizeof *inv);
	float *v = malloc((nq ? nq : 1) * dim * sizeof *v);
	struct pref *pr = malloc((g->n ? g->n : 1) * sizeof *pr);

	if (qr == NULL || inv == NULL || v == NULL || pr == NULL) {
		free(qr);
		free(inv);
		free(v);
		free(pr);
		return ERR_NOMEM;
	}
	for (size_t i = 0; i < nq; i++)
		qr[i] = (struct qref){g->qs.v + i * dim, dim, i};
	qsort(qr, nq, sizeof *qr, qref_cmp);
	for (size_t i = 0; i < nq; i++) {
		memcpy(v + i * dim, qr[i].v, dim * sizeof *v);
		inv[qr[i].idx] = i;
	}
	for (size_t i = 0; i < g->n; i++)
		pr[i] = (struct pref){(uint32_t)inv[g->pq[i]], g->cos[i], g->label[i]};
	qsort(pr, g->n, sizeof *pr, pref_cmp);
	for (size_t i = 0; i < g->n; i++) {
		g->pq[i] = pr[i].q;
		g->cos[i] = pr[i].cos;
		g->label[i] = pr[i].label;
	}
	free(g->qs.v);
	g->qs.v = v;
	g->qs.cap = nq;
	free(g->qs.slot); /* rebuilt by the next qset_add */
	g->qs.slot = NULL;
	g->qs.nslot = 0;
	free(qr);
	free(inv);
	free(pr);
	return 0;
}

/* One split in CSR form, with its own normalised query copies. */
struct split {
	float *q, *cos;
	uint8_t *label;
	size_t *qstart;
	struct adapter_data d;
};

static void split_free(struct split *s)
{
	free(s->q);
	free(s->cos);
	free(s->label);
	free(s->qstart);
}

/* Queries with in_split[qi] == which, in ascending query order, pairs in g's order. */
static int split_make(const struct gathered *g, const uint8_t *in_split, uint8_t which,
                      struct split *s)
{
	uint32_t dim = g->qs.dim;
	size_t nq = 0, np = 0, *pos = NULL, *cnt = calloc(g->qs.n + 1, sizeof *cnt);

	memset(s, 0, sizeof *s);
	if (cnt == NULL)
		return ERR_NOMEM;
	for (size_t i = 0; i < g->n; i++)
		if (in_split[g->pq[i]] == which)
			cnt[g->pq[i]]++;
	for (size_t qi = 0; qi < g->qs.n; qi++)
		if (in_split[qi] == which && cnt[qi] > 0)
			nq++, np += cnt[qi];
	s->q = malloc((nq ? nq : 1) * dim * sizeof *s->q);
	s->cos = malloc((np ? np : 1) * sizeof *s->cos);
	s->label = malloc(np ? np : 1);
	s->qstart = malloc((nq + 1) * sizeof *s->qstart);
	pos = malloc((g->qs.n + 1) * sizeof *pos);
	if (!s->q || !s->cos || !s->label || !s->qstart || !pos) {
		free(cnt);
		free(pos);
		return ERR_NOMEM;
	}
	nq = 0;
	np = 0;
	for (size_t qi = 0; qi < g->qs.n; qi++) {
		const float *src = g->qs.v + qi * dim;
		double nn = 0;

		pos[qi] = SIZE_MAX;
		if (in_split[qi] != which || cnt[qi] == 0)
			continue;
		for (uint32_t k = 0; k < dim; k++)
			nn += (double)src[k] * src[k];
		for (uint32_t k = 0; k < dim; k++)
			s->q[nq * dim + k] = (float)(src[k] / sqrt(nn));
		s->qstart[nq] = np;
		pos[qi] = np;
		np += cnt[qi];
		nq++;
	}
	s->qstart[nq] = np;
	for (size_t i = 0; i < g->n; i++) {
		uint32_t qi = g->pq[i];

		if (pos[qi] == SIZE_MAX)
			continue;
		s->cos[pos[qi]] = g->cos[i];
		s->label[pos[qi]] = g->label[i];
		pos[qi]++;
	}
	s->d = (struct adapter_data){nq, dim, s->q, s->qstart, s->cos, s->label};
	free(cnt);
	free(pos);
	return 0;
}

static json_t *prf_json(const struct adapter_prf *p, const char *thr_key, int integer)
{
	json_t *o = json_pack("{s:f, s:f, s:f, s:I, s:I}", "precision", p->precision, "recall",
	                      p->recall, "f1", p->f1, "kept", (json_int_t)p->kept,
	                      "relevant_kept", (json_int_t)p->tp);

	if (o != NULL)
		json_object_set_new(o, thr_key,
		                    integer ? json_integer((json_int_t)p->threshold)
		                            : json_real(p->threshold));
	return o;
}

struct stop_ctx {
	struct job *j;
	uint64_t epoch, max;
};

/* After each epoch: progress in epochs, and the cancel check. */
static int job_stop(void *ctx)
{
	struct stop_ctx *s = ctx;

	if (s->j == NULL) /* a router's training */
		return 0;
	jobs_progress(s->j, ++s->epoch, s->max);
	return jobs_should_stop(s->j) ? ERR_CANCELLED : 0;
}

struct commit_ctx {
	uint32_t ds;
	const char *name;
	const json_t *def;
	unsigned char *blob; /* a struct wprefix (filled in here), then the weights */
	size_t len;
	json_t *training;
	double threshold;
};

static int commit_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct commit_ctx *c = ctx;
	json_t *doc = NULL;
	int rc;

	if ((rc = jdoc_named_txn_get(t, &adapter_docs, c->ds, c->name, &doc, e)) != 0)
		return rc;
	if (!json_equal(json_object_get(doc, "definition"), (json_t *)c->def)) {
		json_decref(doc);
		return err_set(e, ERR_CONFLICT, "adapter_changed",
		               "the adapter's definition changed during training");
	}
	json_object_set_new(doc, "version", json_integer((json_int_t)doc_u64(doc, "version") + 1));
	json_object_set(doc, "training", c->training);
	json_object_set_new(json_object_get(doc, "training"), "version",
	                    json_integer((json_int_t)doc_u64(doc, "version")));
	json_object_set_new(doc, "threshold", json_real(c->threshold));
	json_object_set_new(doc, "updated", json_integer(now_unix()));
	{
		struct wprefix wp;

		memset(&wp, 0, sizeof wp);
		wp.version = doc_u64(doc, "version");
		wp.threshold = c->threshold;
		snprintf(wp.space, sizeof wp.space, "%s",
		         json_string_value(json_object_get(c->def, "space")));
		memcpy(c->blob, &wp, sizeof wp);
	}
	if ((rc = store_txn_doc_put(t, c->ds, STORE_NS_ADAPTER_WEIGHTS, c->name, strlen(c->name),
	                            c->blob, c->len, e)) == 0)
		rc = jdoc_txn_put(t, c->ds, STORE_NS_ADAPTER, c->name, doc, e);
	json_decref(doc);
	return rc;
}

/* The held-out queries of a training: *out new (nq bytes, 1 = held out), a seeded permutation
 * of the definition's val_fraction of them (at least 1, at most nq - 1), so that a split is
 * reproducible. nq >= 2. */
static int pick_held_out(const json_t *def, size_t nq, uint8_t **out, struct err *e)
{
	uint64_t st =
	    (uint64_t)json_integer_value(json_object_get(def, "seed")) ^ 0x5eedf00dcafe1234ull;
	size_t nval =
	    (size_t)ceil(json_number_value(json_object_get(def, "val_fraction")) * (double)nq);
	uint8_t *in_val = calloc(nq, 1);
	size_t *perm = malloc(nq * sizeof *perm);

	if (in_val == NULL || perm == NULL) {
		free(in_val);
		free(perm);
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	if (nval < 1)
		nval = 1;
	if (nval > nq - 1)
		nval = nq - 1;
	for (size_t i = 0; i < nq; i++)
		perm[i] = i;
	for (size_t i = nq; i > 1; i--) {
		uint64_t z = (st += 0x9e3779b97f4a7c15ull);
		size_t k, tmp;

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		k = (size_t)(z % i);
		tmp = perm[i - 1];
		perm[i - 1] = perm[k];
		perm[k] = tmp;
	}
	for (size_t i = 0; i < nval; i++)
		in_val[perm[i]] = 1;
	free(perm);
	*out = in_val;
	return 0;
}

/* The optimiser's options from the definition; stop (borrowed for the training) lets a
 * cancel or shutdown end it between epochs. */
static struct adapter_train_opts train_opts(const json_t *def, enum adapter_loss loss,
                                            struct stop_ctx *stop)
{
	return (struct adapter_train_opts){
	    .seed = (uint64_t)json_integer_value(json_object_get(def, "seed")),
	    .loss = loss,
	    .learning_rate = json_number_value(json_object_get(def, "learning_rate")),
	    .weight_decay = json_number_value(json_object_get(def, "weight_decay")),
	    .max_epochs = (unsigned)json_integer_value(json_object_get(def, "max_epochs")),
	    .patience = (unsigned)json_integer_value(json_object_get(def, "patience")),
	    .batch_queries = (unsigned)json_integer_value(json_object_get(def, "batch_queries")),
	    .stop = job_stop,
	    .stop_ctx = stop};
}

/* The held-out report: the trained adapter a at the definition's target (*pa, whose threshold
 * is the adapter's), a raw cosine cutoff with the same recall (*pc), and top-k by cosine
 * (*pk). */
static int held_out_report(const struct adapter *a, const json_t *def, const struct split *va,
                           struct adapter_prf *pa, struct adapter_prf *pc, struct adapter_prf *pk,
                           struct err *e)
{
	const json_t *tg = json_object_get(def, "target");
	enum adapter_target tk = json_object_get(tg, "precision") ? ADAPTER_PRECISION
	                         : json_object_get(tg, "recall")  ? ADAPTER_RECALL
	                                                          : ADAPTER_MAX_F1;
	double tv = tk == ADAPTER_PRECISION ? json_number_value(json_object_get(tg, "precision"))
	            : tk == ADAPTER_RECALL  ? json_number_value(json_object_get(tg, "recall"))
	                                    : 0;
	size_t nv = va->qstart[va->d.nq];
	float *sc = malloc(nv * sizeof *sc);
	int rc;

	if (sc == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	adapter_score_pairs(a, &va->d, sc);
	if ((rc = adapter_choose(sc, va->label, nv, tk, tv, pa, e)) == 0 &&
	    (rc = adapter_choose(va->cos, va->label, nv, ADAPTER_RECALL, pa->recall, pc, e)) == 0)
		rc = adapter_prf_top_k(
		    &va->d, (size_t)json_integer_value(json_object_get(def, "top_k")), pk, e);
	free(sc);
	return rc;
}

/* The weights document of a: room for a struct wprefix (commit_fn fills it in), then
 * adapter_save's blob. *blob new (free), *len its bytes. */
static int weights_blob(const struct adapter *a, void **blob, size_t *len, struct err *e)
{
	void *ab = NULL;
	size_t al = 0;
	int rc;

	if ((rc = adapter_save(a, &ab, &al, e)) != 0)
		return rc;
	*len = sizeof(struct wprefix) + al;
	*blob = malloc(*len);
	if (*blob != NULL)
		memcpy((unsigned char *)*blob + sizeof(struct wprefix), ab, al);
	free(ab);
	return *blob != NULL ? 0 : err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
}

/* The "training" report of the adapter's document (new, NULL when out of memory). */
static json_t *training_json(uint64_t jid, const struct adapter_train_result *res,
                             const struct timespec *t0, const struct split *tr,
                             const struct split *va, const struct gathered *g,
                             const struct adapter_prf *pa, const struct adapter_prf *pc,
                             const struct adapter_prf *pk)
{
	struct timespec t1;
	size_t ptr = 0, pva = 0;
	json_t *training;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (size_t i = 0; i < tr->qstart[tr->d.nq]; i++)
		ptr += tr->label[i];
	for (size_t i = 0; i < va->qstart[va->d.nq]; i++)
		pva += va->label[i];
	training =
	    json_pack("{s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:{s:I, s:I}, s:{s:I, s:I, s:I}, "
	              "s:{s:I, s:I}}",
	              "job", (json_int_t)jid, "epochs", (json_int_t)res->epochs, "best_epoch",
	              (json_int_t)res->best_epoch, "initial_held_out_loss", res->init_val_loss,
	              "train_loss", res->train_loss, "held_out_loss", res->val_loss, "seconds",
	              (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9,
	              "queries", "train", (json_int_t)tr->d.nq, "held_out", (json_int_t)va->d.nq,
	              "pairs", "train", (json_int_t)tr->qstart[tr->d.nq], "held_out",
	              (json_int_t)va->qstart[va->d.nq], "skipped", (json_int_t)g->skipped,
	              "relevant", "train", (json_int_t)ptr, "held_out", (json_int_t)pva);
	if (training != NULL)
		json_object_set_new(training, "held_out",
		                    json_pack("{s:o, s:o, s:o}", "adapter",
		                              prf_json(pa, "threshold", 0), "raw_cosine",
		                              prf_json(pc, "threshold", 0), "top_k",
		                              prf_json(pk, "k", 1)));
	return training;
}

/* Train an adapter of definition def (borrowed) on g (put in canonical order here): *out new,
 * *training new (the report; "job" is jid), *thr the threshold. j (may be NULL) gets the
 * progress and may cancel. */
static int fit(const json_t *def, struct gathered *g, struct job *j, uint64_t jid,
               struct adapter **out, json_t **training, double *thr, struct err *e)
{
	struct split tr, va;
	struct adapter *a = NULL;
	uint8_t *in_val = NULL;
	enum adapter_family fam;
	enum adapter_loss loss;
	struct adapter_train_opts o;
	struct adapter_train_result res;
	struct adapter_prf pa, pc, pk;
	struct stop_ctx stop = {0};
	struct timespec t0;
	int rc;

	memset(&tr, 0, sizeof tr);
	memset(&va, 0, sizeof va);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (adapter_family_parse(json_string_value(json_object_get(def, "family")), &fam) != 0 ||
	    adapter_loss_parse(json_string_value(json_object_get(def, "loss")), &loss) != 0)
		return err_set(e, ERR_INVALID, "bad_adapter", "the adapter's definition is not valid");
	if (g->qs.n < 2)
		return err_set(e, ERR_INVALID, "too_few_queries",
		               "training needs pairs of at least 2 distinct queries (one held out)");
	if (canon(g) != 0)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if ((rc = pick_held_out(def, g->qs.n, &in_val, e)) != 0)
		goto out;
	if (split_make(g, in_val, 0, &tr) != 0 || split_make(g, in_val, 1, &va) != 0) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	if ((rc = adapter_new(&a, fam, g->qs.dim,
	                      (uint32_t)json_integer_value(json_object_get(def, "hidden")), e)) != 0)
		goto out;
	o = train_opts(def, loss, &stop);
	stop.j = j;
	stop.max = o.max_epochs;
	if (j != NULL)
		jobs_progress(j, 0, o.max_epochs);
	if ((rc = adapter_train(a, &tr.d, &va.d, &o, &res, e)) != 0)
		goto out;
	if (j != NULL)
		jobs_progress(j, o.max_epochs, o.max_epochs);
	if ((rc = held_out_report(a, def, &va, &pa, &pc, &pk, e)) != 0)
		goto out;
	*training = training_json(jid, &res, &t0, &tr, &va, g, &pa, &pc, &pk);
	if (*training == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	*thr = pa.threshold;
	*out = a;
	a = NULL;
out:
	split_free(&tr);
	split_free(&va);
	adapter_free(a);
	free(in_val);
	return rc;
}

int adapters_job_train(struct job *j, struct err *e)
{
	struct core *core = job_core(j);
	const json_t *def = json_object_get(job_args(j), "definition");
	const char *name = job_target(j);
	struct store_dataset_info ds;
	struct store_reader *r = NULL;
	struct gathered g;
	struct adapter *a = NULL;
	json_t *doc = NULL, *training = NULL;
	void *blob = NULL;
	size_t blen = 0;
	double thr = 0;
	int sp, rc;

	memset(&g, 0, sizeof g);
	if (def == NULL)
		return err_set(e, ERR_INTERNAL, "bad_job", "the training job has no definition");
	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	if ((rc = store_reader_dataset(r, job_ds(j), &ds, e)) != 0 ||
	    (rc = jdoc_named_reader_get(r, &adapter_docs, ds.id, name, &doc, e)) != 0)
		goto out;
	if (!json_equal(json_object_get(doc, "definition"), (json_t *)def)) {
		rc = err_set(e, ERR_CONFLICT, "adapter_changed", "the adapter's definition changed");
		goto out;
	}
	sp = store_schema_find(&ds.schema, json_string_value(json_object_get(def, "space")));
	if (sp < 0) {
		rc = err_set(e, ERR_INVALID, "bad_adapter", "the adapter's space is gone");
		goto out;
	}
	rc = gather(r, &ds, (unsigned)sp, name, doc,
	            json_number_value(json_object_get(def, "label_cut")), &g, e);
	store_reader_close(r); /* the rest needs no snapshot; never write while holding a reader */
	r = NULL;
	if (rc != 0 || (rc = fit(def, &g, j, job_id(j), &a, &training, &thr, e)) != 0 ||
	    (rc = weights_blob(a, &blob, &blen, e)) != 0)
		goto out;
	{
		struct commit_ctx cc = {ds.id, name, def, blob, blen, training, thr};

		rc = store_write(core->store, commit_fn, &cc, e);
	}
out:
	store_reader_close(r);
	json_decref(doc);
	json_decref(training);
	gathered_free(&g);
	adapter_free(a);
	free(blob);
	return rc;
}

/* ---- search ---- */

int adapters_open(struct store_reader *r, uint32_t ds_id, const char *name, const char *space,
                   struct adapters_model **out, struct err *e)
{
	struct adapters_model *rl = NULL;
	struct wprefix wp;
	const void *val;
	size_t len;
	int rc;

	if (!store_name_valid(name))
		return err_set(e, ERR_INVALID, "bad_query", "relevance.adapter must be an adapter name");
	if (store_reader_doc_get(r, ds_id, STORE_NS_ADAPTER_WEIGHTS, name, strlen(name), &val, &len,
	                         NULL) != 0 ||
	    len < sizeof wp) {
		/* no weights: say whether the adapter is missing or untrained */
		json_t *doc = NULL;

		if ((rc = jdoc_named_reader_get(r, &adapter_docs, ds_id, name, &doc, e)) != 0)
			return rc;
		json_decref(doc);
		return err_set(e, ERR_INVALID, "adapter_untrained",
		               "adapter '%s' is not trained: POST .../adapters/%s:train", name, name);
	}
	memcpy(&wp, val, sizeof wp);
	wp.space[sizeof wp.space - 1] = '\0';
	if (strcmp(wp.space, space) != 0)
		return err_set(e, ERR_INVALID, "space_mismatch",
		               "adapter '%s' maps cosines of space '%s', the search is in '%s'", name,
		               wp.space, space);
	rl = calloc(1, sizeof *rl);
	if (rl == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if ((rc = adapter_load(&rl->a, (const unsigned char *)val + sizeof wp, len - sizeof wp, e)) !=
	    0) {
		free(rl);
		return rc;
	}
	snprintf(rl->name, sizeof rl->name, "%s", name);
	rl->version = wp.version;
	rl->threshold = wp.threshold;
	*out = rl;
	return 0;
}

void adapters_free(struct adapters_model *rl)
{
	if (rl == NULL)
		return;
	adapter_free(rl->a);
	free(rl);
}

int adapters_prepare(const struct adapters_model *rl, const float *q, uint32_t dim, double min,
                      struct adapters_query *out, struct err *e)
{
	float *qn;
	double nn = 0;

	if (dim != rl->a->dim)
		return err_set(e, ERR_INVALID, "dimension_mismatch", "the adapter has dim %u, not %u",
		               (unsigned)rl->a->dim, (unsigned)dim);
	for (uint32_t k = 0; k < dim; k++)
		nn += (double)q[k] * q[k];
	if (!(nn > 0))
		return err_set(e, ERR_INVALID, "zero_vector", "relevance needs a non-zero query");
	qn = malloc(dim * sizeof *qn);
	if (qn == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	for (uint32_t k = 0; k < dim; k++)
		qn[k] = (float)(q[k] / sqrt(nn));
	adapter_params(rl->a, qn, &out->alpha, &out->beta);
	free(qn);
	out->min = min;
	out->cos_min = isnan(min) ? -INFINITY
	                          : adapter_inverse(rl->a->family, out->alpha, out->beta, min);
	return 0;
}

double adapters_score(const struct adapters_model *rl, const struct adapters_query *rq, float s)
{
	return adapter_map(rl->a->family, rq->alpha, rq->beta, s);
}

float adapters_scan_bound(const struct adapters_query *rq)
{
	/* cosines lie in [-1, 1]: a bound outside [-2, 2] is all or nothing (and a double that
	 * large must not be cast to float) */
	if (isnan(rq->min) || !(rq->cos_min >= -2))
		return -INFINITY;
	if (rq->cos_min > 2)
		return INFINITY;
	/* 1e-6 below the exact edge: far more than the rounding of the mapping's evaluation */
	return nextafterf((float)(rq->cos_min - 1e-6), -INFINITY);
}

/* ---- weights copied between daemons ---- */

int adapters_weights_get(struct core *core, const char *dataset, const char *name, json_t **out,
                         struct err *e)
{
	struct store_dataset_info ds;
	struct store_reader *r = NULL;
	json_t *doc = NULL;
	struct wprefix wp;
	const void *val;
	size_t len;
	char *b64 = NULL;
	int rc;

	if ((rc = jdoc_named_get(core->store, &adapter_docs, dataset, name, &ds, &doc, e)) != 0)
		return rc;
	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		goto out;
	if (store_reader_doc_get(r, ds.id, STORE_NS_ADAPTER_WEIGHTS, name, strlen(name), &val, &len,
	                         NULL) != 0 ||
	    len < sizeof wp) {
		rc = err_set(e, ERR_CONFLICT, "adapter_untrained",
		             "adapter '%s' is not trained: POST .../adapters/%s:train", name, name);
		goto out;
	}
	memcpy(&wp, val, sizeof wp);
	b64 = b64_encode((const unsigned char *)val + sizeof wp, len - sizeof wp, NULL);
	*out = b64 == NULL ? NULL
	                   : json_pack("{s:s, s:I, s:O, s:f, s:O, s:s}", "name", name, "version",
	                               (json_int_t)wp.version, "definition",
	                               json_object_get(doc, "definition"), "threshold",
	                               wp.threshold, "training",
	                               json_object_get(doc, "training") ? json_object_get(doc, "training")
	                                                                : json_null(),
	                               "weights", b64);
	rc = *out != NULL ? 0 : err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
out:
	store_reader_close(r);
	json_decref(doc);
	free(b64);
	return rc;
}

/* The adapter of the weights body (borrowed), checked against the definition def (borrowed)
 * and the space's dim. *out new. */
static int given_adapter(const json_t *body, const json_t *def, uint32_t dim,
                         struct adapter **out, struct err *e)
{
	const char *w = json_string_value(json_object_get(body, "weights"));
	struct adapter *a = NULL;
	enum adapter_family fam;
	uint8_t *raw;
	size_t rl = 0;
	int rc;

	if (w == NULL)
		return err_set(e, ERR_INVALID, "bad_param",
		               "\"weights\" must be the base64 string GET .../weights gives");
	raw = malloc(b64_decoded_max(strlen(w)) + 1);
	if (raw == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if (b64_decode(w, strlen(w), raw, &rl) != 0) {
		free(raw);
		return err_set(e, ERR_INVALID, "bad_param", "\"weights\" is not base64");
	}
	rc = adapter_load(&a, raw, rl, e);
	free(raw);
	if (rc != 0)
		return rc;
	if (adapter_family_parse(json_string_value(json_object_get(def, "family")), &fam) != 0 ||
	    fam != a->family || a->dim != dim ||
	    a->hidden != (uint32_t)json_integer_value(json_object_get(def, "hidden"))) {
		adapter_free(a);
		return err_set(e, ERR_INVALID, "bad_param",
		               "the weights' family, dim or hidden do not fit the adapter's definition");
	}
	*out = a;
	return 0;
}

int adapters_weights_put(struct core *core, const char *dataset, const char *name,
                         const json_t *body, json_t **view, struct err *e)
{
	static const char *const known[] = {"name",      "version", "definition",
	                                    "threshold", "training", "weights", NULL};
	struct store_dataset_info ds;
	const json_t *def = json_object_get(body, "definition"), *tr = json_object_get(body, "training");
	const json_t *th = json_object_get(body, "threshold");
	json_t *doc = NULL, *training = NULL, *val;
	struct adapter *a = NULL;
	void *blob = NULL;
	size_t blen = 0;
	const char *key;
	int sp, rc;

	if (!json_is_object(body))
		return err_set(e, ERR_INVALID, "bad_adapter", "the body must be a JSON object");
	json_object_foreach((json_t *)body, key, val) {
		size_t i;

		for (i = 0; known[i] != NULL && strcmp(known[i], key) != 0; i++)
			;
		if (known[i] == NULL)
			return err_set(e, ERR_INVALID, "unknown_param", "unknown field '%s'", key);
	}
	if (!json_is_number(th) || !isfinite(json_number_value(th)) || !json_is_object(tr) ||
	    !json_is_object(def))
		return err_set(e, ERR_INVALID, "bad_param",
		               "\"definition\", \"threshold\" and \"training\" are required, as GET "
		               ".../weights gives them");
	if ((rc = jdoc_named_get(core->store, &adapter_docs, dataset, name, &ds, &doc, e)) != 0)
		return rc;
	if (!json_equal(json_object_get(doc, "definition"), (json_t *)def)) {
		rc = err_set(e, ERR_CONFLICT, "adapter_changed",
		             "the weights were trained for another definition of adapter '%s'", name);
		goto out;
	}
	sp = store_schema_find(&ds.schema, json_string_value(json_object_get(def, "space")));
	if (sp < 0) {
		rc = err_set(e, ERR_INVALID, "bad_adapter", "the adapter's space is gone");
		goto out;
	}
	if ((rc = given_adapter(body, def, ds.schema.spaces[sp].dim, &a, e)) != 0 ||
	    (rc = weights_blob(a, &blob, &blen, e)) != 0)
		goto out;
	training = json_deep_copy(tr);
	if (training == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	json_object_set_new(training, "source", json_string("given"));
	{
		struct commit_ctx cc = {ds.id, name, def, blob, blen, training, json_number_value(th)};

		rc = store_write(core->store, commit_fn, &cc, e);
	}
	if (rc == 0)
		rc = adapters_get_json(core, dataset, name, view, e);
out:
	json_decref(doc);
	json_decref(training);
	adapter_free(a);
	free(blob);
	return rc;
}

/* ---- training over the shards of a router ---- */

static char *b64_of(const void *p, size_t len)
{
	return b64_encode(len ? p : "", len, NULL);
}

int adapters_partial(struct core *core, const char *dataset, const char *name, json_t **out,
                     struct err *e)
{
	struct store_dataset_info ds;
	struct store_reader *r = NULL;
	struct gathered g;
	json_t *doc = NULL;
	const json_t *def;
	char *sq = NULL, *sp_ = NULL, *sc = NULL, *sl = NULL;
	int sp, rc;

	memset(&g, 0, sizeof g);
	if ((rc = jdoc_named_get(core->store, &adapter_docs, dataset, name, &ds, &doc, e)) != 0)
		return rc;
	def = json_object_get(doc, "definition");
	sp = store_schema_find(&ds.schema, json_string_value(json_object_get(def, "space")));
	if (sp < 0) {
		rc = err_set(e, ERR_INVALID, "bad_adapter", "the adapter's space is gone");
		goto out;
	}
	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		goto out;
	rc = gather(r, &ds, (unsigned)sp, name, doc,
	            json_number_value(json_object_get(def, "label_cut")), &g, e);
	if (rc != 0)
		goto out;
	sq = b64_of(g.qs.v, g.qs.n * g.qs.dim * sizeof(float));
	sp_ = b64_of(g.pq, g.n * sizeof *g.pq);
	sc = b64_of(g.cos, g.n * sizeof *g.cos);
	sl = b64_of(g.label, g.n);
	*out = sq && sp_ && sc && sl
	           ? json_pack("{s:O, s:I, s:I, s:I, s:I, s:s, s:s, s:s, s:s}", "definition", def,
	                       "dim", (json_int_t)g.qs.dim, "queries", (json_int_t)g.qs.n, "pairs",
	                       (json_int_t)g.n, "skipped", (json_int_t)g.skipped, "query_vectors",
	                       sq, "pair_queries", sp_, "cosines", sc, "relevant", sl)
	           : NULL;
	rc = *out != NULL ? 0 : err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
out:
	store_reader_close(r);
	json_decref(doc);
	gathered_free(&g);
	free(sq);
	free(sp_);
	free(sc);
	free(sl);
	return rc;
}

/* Field key of part (a base64 string) decoded into *out (new), which must be want bytes. */
static int part_bytes(const json_t *part, const char *key, size_t want, void **out)
{
	const char *s = json_string_value(json_object_get(part, key));
	size_t len = 0;
	uint8_t *b;

	if (s == NULL)
		return ERR_INVALID;
	b = malloc(b64_decoded_max(strlen(s)) + 1);
	if (b == NULL)
		return ERR_NOMEM;
	if (b64_decode(s, strlen(s), b, &len) != 0 || len != want) {
		free(b);
		return ERR_INVALID;
	}
	*out = b;
	return 0;
}

/* Append part (a shard's adapters_partial) to g. */
static int part_add(struct gathered *g, const json_t *part)
{
	size_t nq = (size_t)json_integer_value(json_object_get(part, "queries"));
	size_t np = (size_t)json_integer_value(json_object_get(part, "pairs")), dim = g->qs.dim;
	float *qv = NULL, *cs = NULL;
	uint32_t *pq = NULL, *map = NULL;
	uint8_t *lb = NULL;
	int rc;

	if ((rc = part_bytes(part, "query_vectors", nq * dim * sizeof *qv, (void **)&qv)) != 0 ||
	    (rc = part_bytes(part, "pair_queries", np * sizeof *pq, (void **)&pq)) != 0 ||
	    (rc = part_bytes(part, "cosines", np * sizeof *cs, (void **)&cs)) != 0 ||
	    (rc = part_bytes(part, "relevant", np, (void **)&lb)) != 0)
		goto out;
	map = malloc((nq ? nq : 1) * sizeof *map);
	if (map == NULL || g->n + np < g->n) {
		rc = ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < nq; i++) {
		long long qi = qset_add(&g->qs, qv + i * dim);

		if (qi < 0) {
			rc = ERR_NOMEM;
			goto out;
		}
		map[i] = (uint32_t)qi;
	}
	{
		size_t nc = g->n + np;
		uint32_t *a1 = realloc(g->pq, (nc ? nc : 1) * sizeof *a1);
		float *a2;
		uint8_t *a3;

		if (a1 != NULL)
			g->pq = a1;
		a2 = realloc(g->cos, (nc ? nc : 1) * sizeof *a2);
		if (a2 != NULL)
			g->cos = a2;
		a3 = realloc(g->label, nc ? nc : 1);
		if (a3 != NULL)
			g->label = a3;
		if (a1 == NULL || a2 == NULL || a3 == NULL) {
			rc = ERR_NOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < np; i++) {
		if (pq[i] >= nq || !isfinite(cs[i])) {
			rc = ERR_INVALID;
			goto out;
		}
		g->pq[g->n] = map[pq[i]];
		g->cos[g->n] = cs[i];
		g->label[g->n] = lb[i] != 0;
		g->n++;
	}
	g->skipped += (size_t)json_integer_value(json_object_get(part, "skipped"));
out:
	free(qv);
	free(pq);
	free(cs);
	free(lb);
	free(map);
	return rc;
}

int adapters_fit_partials(json_t *const *parts, size_t n, json_t **weights, struct err *e)
{
	const json_t *def = n > 0 ? json_object_get(parts[0], "definition") : NULL;
	struct gathered g;
	struct adapter *a = NULL;
	json_t *training = NULL;
	void *ab = NULL;
	char *wb = NULL;
	size_t al = 0;
	double thr = 0;
	int rc = 0;

	memset(&g, 0, sizeof g);
	if (!json_is_object(def))
		return err_set(e, ERR_GATEWAY, "bad_partial", "a shard's pairs have no definition");
	g.qs.dim = (uint32_t)json_integer_value(json_object_get(parts[0], "dim"));
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (!json_equal(json_object_get(parts[i], "definition"), (json_t *)def) ||
		    json_integer_value(json_object_get(parts[i], "dim")) != (json_int_t)g.qs.dim) {
			rc = err_set(e, ERR_CONFLICT, "adapter_differs",
			             "the shards hold different definitions of the adapter: PUT it "
			             "through the router");
			break;
		}
		if ((rc = part_add(&g, parts[i])) == ERR_NOMEM)
			rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		else if (rc != 0)
			rc = err_set(e, ERR_GATEWAY, "bad_partial",
			             "shard %zu sent pairs that do not fit together", i);
	}
	if (rc != 0 || (rc = fit(def, &g, NULL, 0, &a, &training, &thr, e)) != 0 ||
	    (rc = adapter_save(a, &ab, &al, e)) != 0)
		goto out;
	wb = b64_of(ab, al);
	*weights = wb == NULL ? NULL
	                      : json_pack("{s:O, s:f, s:O, s:s}", "definition", def, "threshold",
	                                  thr, "training", training, "weights", wb);
	rc = *weights != NULL ? 0 : err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
out:
	gathered_free(&g);
	adapter_free(a);
	json_decref(training);
	free(ab);
	free(wb);
	return rc;
}
