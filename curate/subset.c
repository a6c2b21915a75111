/* SPDX-License-Identifier: MIT */
/* subset: step parsing, the materialisation job, provenance, decisions, and the export.
 *
 * Materialisation reads whole row arrays (the live flags, each step's scores and statuses)
 * from one snapshot: 10 million rows cost 10 MB of flags and 50 MB per filter step. Record
 * predicates (kind, meta) read the record bodies of the surviving rows. */
#include "curate/subset.h"

#include <jansson.h>
#include <math.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/npy.h"
#include "core/core.h"
#include "lib/err.h"
#include "lib/jsonnum.h"
#include "core/jobs.h"
#include "filters/filter.h"
#include "curate/instance.h"
#include "algo/select.h"
#include "store/jdoc.h"
#include "store/store.h"
#include "lib/vec.h"

enum rule {
	RULE_TOP_FRACTION,
	RULE_BOTTOM_FRACTION,
	RULE_THRESHOLD,
	RULE_TOP_K,
	RULE_BOTTOM_K,
	RULE_KEEP,
	RULE_KIND,
	RULE_META,
	RULE_CUT,
};

static const char *const rule_names[] = {
	[RULE_TOP_FRACTION] = "top_fraction", [RULE_BOTTOM_FRACTION] = "bottom_fraction",
	[RULE_THRESHOLD] = "threshold",       [RULE_TOP_K] = "top_k",
	[RULE_BOTTOM_K] = "bottom_k",         [RULE_KEEP] = "keep",
	[RULE_KIND] = "kind",                 [RULE_META] = "meta",
	[RULE_CUT] = "cut",
};

struct step {
	enum rule rule;
	char filter[STORE_NAME_MAX + 1];
	double value;      /* fraction, threshold */
	uint64_t k;        /* top_k, bottom_k */
	double tau;        /* top_k {"tau": t}: k = floor(N / tau) at materialisation; 0 = k */
	int keep;          /* keep: 1 keeps score 1, 0 keeps score 0 */
	unsigned kinds;    /* kind: enum store_kind bits */
	const json_t *meta; /* meta: borrowed from the steps JSON */
	int per_cluster;    /* fractions: round(f * N) apportioned to the labels of the filter */
	int64_t min_per_cluster; /* per_cluster: rows kept at least per cluster; -1 = default */
	int cut_below;      /* cut: 1 keeps score < value (0: score > value) */
	const char *id_max; /* cut: rows scored exactly value are kept when their id <= this
	                     * (bytewise); NULL: all of them. Borrowed from the steps JSON */
	const json_t *cut_clusters; /* cut: [[label, score, id_max], ...] per cluster, or NULL */
};

static int64_t now_unix(void)
{
	return (int64_t)time(NULL);
}

static unsigned kind_bit(const char *s)
{
	if (strcmp(s, "image-text") == 0)
		return STORE_KIND_IMAGE_TEXT;
	if (strcmp(s, "text") == 0)
		return STORE_KIND_TEXT;
	return 0;
}

static int meta_cond_valid(const char *key, const json_t *cond, size_t i, struct err *e)
{
	static const char *const ops[] = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "exists"};
	const char *op;
	json_t *v;

	if (!json_is_object(cond))
		return 0; /* a plain value: equality */
	if (json_object_size(cond) != 1)
		return err_set(e, ERR_INVALID, "bad_step",
		               "step %zu: meta '%s' needs exactly one operator", i, key);
	json_object_foreach((json_t *)cond, op, v) {
		size_t k;

		for (k = 0; k < sizeof ops / sizeof ops[0]; k++)
			if (strcmp(op, ops[k]) == 0)
				break;
		if (k == sizeof ops / sizeof ops[0])
			return err_set(e, ERR_INVALID, "bad_step",
			               "step %zu: meta '%s': unknown operator '%s' (eq, ne, gt, gte, "
			               "lt, lte, in, exists)",
			               i, key, op);
		if ((strcmp(op, "gt") == 0 || strcmp(op, "gte") == 0 || strcmp(op, "lt") == 0 ||
		     strcmp(op, "lte") == 0) &&
		    !json_is_number(v))
			return err_set(e, ERR_INVALID, "bad_step",
			               "step %zu: meta '%s': '%s' takes a number", i, key, op);
		if (strcmp(op, "in") == 0 && !json_is_array(v))
			return err_set(e, ERR_INVALID, "bad_step",
			               "step %zu: meta '%s': 'in' takes an array", i, key);
		if (strcmp(op, "exists") == 0 && !json_is_boolean(v))
			return err_set(e, ERR_INVALID, "bad_step",
			               "step %zu: meta '%s': 'exists' takes true or false", i, key);
	}
	return 0;
}

/* Parse steps (borrowed JSON array) into out (SUBSET_MAX_STEPS entries); *n their count. */
/* {"score": t, "keep": "above" | "below", "id_max": id, "origin": any}: the exact form the
 * router gives a global step (docs/scale.md). */
static int cut_parse(const json_t *rv, struct step *s, size_t i, struct err *e)
{
	const char *key, *keep;
	json_t *v;

	if (!json_is_object(rv))
		return err_set(e, ERR_INVALID, "bad_step", "step %zu: cut must be an object", i);
	json_object_foreach((json_t *)rv, key, v) {
		if (strcmp(key, "score") != 0 && strcmp(key, "keep") != 0 &&
		    strcmp(key, "id_max") != 0 && strcmp(key, "origin") != 0 &&
		    strcmp(key, "clusters") != 0 && strcmp(key, "apportion") != 0)
			return err_set(
			    e, ERR_INVALID, "bad_step",
			    "step %zu: cut has score, keep, id_max, clusters, apportion and "
			    "origin, not '%s'",
			    i, key);
	}
	if ((v = json_object_get(rv, "clusters")) != NULL) {
		size_t j;
		json_t *c;

		if (!json_is_array(v) || json_object_get(rv, "score") ||
		    json_object_get(rv, "id_max"))
			return err_set(
			    e, ERR_INVALID, "bad_step",
			    "step %zu: cut.clusters is an array and goes without score and "
			    "id_max",
			    i);
		json_array_foreach(v, j, c) {
			json_t *l = json_array_get(c, 0), *t = json_array_get(c, 1);

			if (json_array_size(c) != 3 || !json_is_integer(l) ||
			    json_integer_value(l) < 0 || json_integer_value(l) > UINT32_MAX - 1 ||
			    !json_is_number(t) || !isfinite(json_number_value(t)) ||
			    !json_is_string(json_array_get(c, 2)))
				return err_set(
				    e, ERR_INVALID, "bad_step",
				    "step %zu: cut.clusters[%zu] must be [label, score, id_max]", i,
				    j);
		}
		s->cut_clusters = v;
		v = json_object_get(rv, "keep");
		if (!json_is_string(v) || (strcmp(json_string_value(v), "above") != 0 &&
		                           strcmp(json_string_value(v), "below") != 0))
			return err_set(e, ERR_INVALID, "bad_step",
			               "step %zu: cut.keep must be \"above\" or \"below\"", i);
		s->cut_below = strcmp(json_string_value(v), "below") == 0;
		return 0;
	}
	v = json_object_get(rv, "score");
	s->value = json_number_value(v);
	if (!json_is_number(v) || !isfinite(s->value))
		return err_set(e, ERR_INVALID, "bad_step", "step %zu: cut.score must be a finite number",
		               i);
	keep = json_string_value(json_object_get(rv, "keep"));
	if (keep == NULL || (strcmp(keep, "above") != 0 && strcmp(keep, "below") != 0))
		return err_set(e, ERR_INVALID, "bad_step",
		               "step %zu: cut.keep must be \"above\" or \"below\"", i);
	s->cut_below = strcmp(keep, "below") == 0;
	v = json_object_get(rv, "id_max");
	if (v != NULL && !json_is_string(v))
		return err_set(e, ERR_INVALID, "bad_step", "step %zu: cut.id_max must be a string", i);
	s->id_max = json_string_value(v);
	return 0;
}

static int steps_parse(const json_t *steps, struct step *out, size_t *n, struct err *e)
{
	size_t i;
	json_t *st;
	int rc;

	if (!json_is_array(steps) || json_array_size(steps) == 0 ||
	    json_array_size(steps) > SUBSET_MAX_STEPS)
		return err_set(e, ERR_INVALID, "bad_steps",
		               "\"steps\" must be an array of 1 to %d steps", SUBSET_MAX_STEPS);
	json_array_foreach(steps, i, st) {
		struct step *s = &out[i];
		const json_t *f = json_object_get(st, "filter");
		const char *key, *rule_key = NULL;
		json_t *v, *rv = NULL;
		size_t nrules = 0;

		memset(s, 0, sizeof *s);
		s->min_per_cluster = -1;
		if (!json_is_object(st))
			return err_set(e, ERR_INVALID, "bad_step", "step %zu is not an object", i);
		json_object_foreach(st, key, v) {
			if (strcmp(key, "filter") == 0)
				continue;
			if (strcmp(key, "per_cluster") == 0) {
				if (!json_is_boolean(v))
					return err_set(e, ERR_INVALID, "bad_step",
					               "step %zu: per_cluster must be true or false", i);
				s->per_cluster = json_is_true(v);
				continue;
			}
			if (strcmp(key, "min_per_cluster") == 0) {
				if (!json_is_integer(v) || json_integer_value(v) < 0)
					return err_set(e, ERR_INVALID, "bad_step",
					               "step %zu: min_per_cluster must be a non-negative "
					               "integer", i);
				s->min_per_cluster = json_integer_value(v);
				continue;
			}
			if (strcmp(key, "recommendation") == 0 && json_is_object(v))
				continue; /* api/recommend.c's record of where top_fraction came from */
			for (size_t r = 0; r < sizeof rule_names / sizeof rule_names[0]; r++) {
				if (strcmp(key, rule_names[r]) == 0) {
					s->rule = (enum rule)r;
					rule_key = key;
					rv = v;
					nrules++;
					goto next_key;
				}
			}
			return err_set(e, ERR_INVALID, "bad_step",
			               "step %zu: unknown field '%s' (top_fraction, bottom_fraction, "
			               "threshold, top_k, bottom_k, keep, kind, meta, cut, per_cluster, "
			               "min_per_cluster)",
			               i, key);
next_key:;
		}
		if (nrules != 1)
			return err_set(e, ERR_INVALID, "bad_step",
			               "step %zu must have exactly one rule, it has %zu", i, nrules);
		if (s->per_cluster && s->rule != RULE_TOP_FRACTION && s->rule != RULE_BOTTOM_FRACTION)
			return err_set(e, ERR_INVALID, "bad_step",
			               "step %zu: per_cluster goes with top_fraction or bottom_fraction",
			               i);
		if (s->min_per_cluster >= 0 && !s->per_cluster)
			return err_set(e, ERR_INVALID, "bad_step",
			               "step %zu: min_per_cluster goes with \"per_cluster\": true", i);
		if (s->rule == RULE_KIND || s->rule == RULE_META) {
			if (f != NULL)
				return err_set(e, ERR_INVALID, "bad_step",
				               "step %zu: '%s' takes no \"filter\"", i, rule_key);
		} else {
			if (!json_is_string(f) || !store_name_valid(json_string_value(f)))
				return err_set(e, ERR_INVALID, "bad_step",
				               "step %zu: '%s' needs \"filter\": the name of a filter", i,
				               rule_key);
			snprintf(s->filter, sizeof s->filter, "%s", json_string_value(f));
		}
		switch (s->rule) {
		case RULE_TOP_FRACTION:
		case RULE_BOTTOM_FRACTION:
			s->value = json_number_value(rv);
			if (!json_is_number(rv) || !(s->value > 0 && s->value <= 1))
				return err_set(e, ERR_INVALID, "bad_step",
				               "step %zu: %s must be a number in (0, 1]", i, rule_key);
			break;
		case RULE_THRESHOLD:
			s->value = json_number_value(rv);
			if (!json_is_number(rv) || !isfinite(s->value))
				return err_set(e, ERR_INVALID, "bad_step",
				               "step %zu: threshold must be a finite number", i);
			break;
		case RULE_TOP_K:
		case RULE_BOTTOM_K:
			if (json_is_object(rv)) {
				/* CoLoR-Filter (spec 2.2): tau candidates per selected record */
				const json_t *tv = json_object_get(rv, "tau");
				size_t k0;

				if (json_object_size(rv) != 1 || !json_is_number(tv) ||
				    select_color_k(0, json_number_value(tv), &k0) != 0)
					return err_set(e, ERR_INVALID, "bad_step",
					               "step %zu: %s {\"tau\": t} needs exactly one finite "
					               "number t >= 1 (k = floor(N / t))",
					               i, rule_key);
				s->tau = json_number_value(tv);
				break;
			}
			if (!json_is_integer(rv) || json_integer_value(rv) < 0)
				return err_set(e, ERR_INVALID, "bad_step",
				               "step %zu: %s must be a non-negative integer", i, rule_key);
			s->k = (uint64_t)json_integer_value(rv);
			break;
		case RULE_CUT:
			if ((rc = cut_parse(rv, s, i, e)) != 0)
				return rc;
			break;
		case RULE_KEEP:
			if (!json_is_boolean(rv))
				return err_set(e, ERR_INVALID, "bad_step",
				               "step %zu: keep must be true or false", i);
			s->keep = json_is_true(rv);
			break;
		case RULE_KIND:
			if (json_is_string(rv)) {
				s->kinds = kind_bit(json_string_value(rv));
			} else if (json_is_array(rv)) {
				size_t k;
				json_t *kv;

				json_array_foreach(rv, k, kv) {
					unsigned b = json_is_string(kv) ? kind_bit(json_string_value(kv)) : 0;

					if (b == 0) {
						s->kinds = 0;
						break;
					}
					s->kinds |= b;
				}
			}
			if (s->kinds == 0)
				return err_set(e, ERR_INVALID, "bad_step",
				               "step %zu: kind must be \"image-text\", \"text\" or a list "
				               "of them",
				               i);
			break;
		case RULE_META:
			if (!json_is_object(rv) || json_object_size(rv) == 0)
				return err_set(e, ERR_INVALID, "bad_step",
				               "step %zu: meta must be an object of conditions", i);
			json_object_foreach(rv, key, v) {
				rc = meta_cond_valid(key, v, i, e);
				if (rc != 0)
					return rc;
			}
			s->meta = rv;
			break;
		}
	}
	*n = json_array_size(steps);
	return 0;
}

/* ---- documents ---- */

static const struct jdoc_kind subset_docs = {STORE_NS_SUBSET, "subset_not_found", "subset"};

static uint64_t doc_u64(const json_t *doc, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(doc, key));
}

static json_t *view_of(struct core *core, const json_t *doc)
{
	json_t *v = json_pack("{s:O, s:O}", "name", json_object_get(doc, "name"), "steps",
	                      json_object_get(doc, "steps"));
	json_t *job = NULL, *prov = json_object_get(doc, "provenance");
	const char *state = prov != NULL && !json_is_null(prov) ? "ready" : "pending";

	if (v == NULL)
		return NULL;
	if (doc_u64(doc, "job") != 0 && jobs_get_json(core->jobs, doc_u64(doc, "job"), &job, NULL) == 0) {
		const char *js = json_string_value(json_object_get(job, "state"));

		if (js != NULL && (strcmp(js, "queued") == 0 || strcmp(js, "running") == 0))
			state = "materialising";
		else if (js != NULL && (strcmp(js, "failed") == 0 || strcmp(js, "cancelled") == 0))
			state = js;
		json_object_set_new(v, "job", job);
	} else {
		json_object_set_new(v, "job", json_null());
	}
	json_object_set_new(v, "state", json_string(state));
	json_object_set_new(v, "created", jdoc_time(json_object_get(doc, "created")));
	json_object_set_new(v, "members", json_object_get(doc, "members") != NULL
	                                          ? json_incref(json_object_get(doc, "members"))
	                                          : json_null());
	json_object_set(v, "provenance", prov != NULL ? prov : json_null());
	return v;
}

/* ---- PUT, GET, list, DELETE ---- */

struct put_ctx {
	struct core *core;
	const struct store_dataset_info *ds;
	const char *name;
	const json_t *steps;
	int created;
	uint64_t job;
	json_t *doc;
};

static int put_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct put_ctx *c = ctx;
	json_t *doc = NULL, *args;
	int rc;

	c->created = 0;
	json_decref(c->doc);
	c->doc = NULL;
	if ((rc = store_txn_dataset(t, c->ds->id, NULL, e)) != 0)
		return rc;
	rc = jdoc_named_txn_get(t, &subset_docs, c->ds->id, c->name, &doc, e);
	if (rc == ERR_NOT_FOUND) {
		err_clear(e);
		c->created = 1;
		doc = json_pack("{s:s, s:I, s:n, s:n, s:{s:I}}", "name", c->name, "created",
		                (json_int_t)now_unix(), "provenance", "members", "arrays", "fate",
		                (json_int_t)0);
	} else if (rc != 0) {
		return rc;
	}
	args = json_pack("{s:O}", "steps", (json_t *)c->steps);
	if (doc == NULL || args == NULL) {
		json_decref(doc);
		json_decref(args);
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	rc = jobs_txn_create(c->core->jobs, t, "subset", c->ds->id, c->ds->name, c->name, args,
	                     &c->job, e);
	json_decref(args);
	if (rc == 0) {
		json_object_set(doc, "steps", (json_t *)c->steps);
		json_object_set_new(doc, "job", json_integer((json_int_t)c->job));
		rc = jdoc_named_txn_put(t, &subset_docs, c->ds->id, c->name, doc, e);
	}
	if (rc == 0)
		c->doc = doc;
	else
		json_decref(doc);
	return rc;
}

/* Every filter a step names exists in the dataset. */
static int steps_check_filters(struct core *core, uint32_t ds, const struct step *st, size_t n,
                               struct err *e)
{
	struct store_reader *r = NULL;
	int rc;

	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct instance_ref ref;

		if (st[i].filter[0] == '\0')
			continue;
		rc = instance_ref_read(r, ds, st[i].filter, &ref, e);
		if (rc == ERR_NOT_FOUND) {
			err_clear(e);
			rc = err_set(e, ERR_INVALID, "unknown_filter",
			             "step %zu names filter '%s', which dataset has not got", i,
			             st[i].filter);
		} else if (rc == 0 && st[i].per_cluster && ref.arr_label == 0) {
			rc = err_set(e, ERR_INVALID, "bad_step",
			             "step %zu: per_cluster needs a filter that labels records with a "
			             "cluster (prototypes, semdedup); '%s' is %s",
			             i, st[i].filter, ref.ops->name);
		}
	}
	store_reader_close(r);
	return rc;
}

int subset_put(struct core *core, const char *dataset, const char *name, const json_t *body,
               json_t **view, uint64_t *job, int *created, struct err *e)
{
	struct store_dataset_info ds;
	struct step st[SUBSET_MAX_STEPS];
	struct put_ctx c = {.core = core, .name = name};
	const char *key;
	json_t *v;
	size_t n;
	int rc;

	if (!store_name_valid(name))
		return err_set(e, ERR_INVALID, "bad_name",
		               "a subset name is 1 to 64 characters of [A-Za-z0-9._-]");
	if (!json_is_object(body))
		return err_set(e, ERR_INVALID, "bad_subset", "the body must be a JSON object");
	json_object_foreach((json_t *)body, key, v) {
		if (strcmp(key, "steps") != 0)
			return err_set(e, ERR_INVALID, "unknown_field",
			               "unknown field '%s' (a subset has \"steps\")", key);
	}
	if ((rc = steps_parse(json_object_get(body, "steps"), st, &n, e)) != 0)
		return rc;
	if ((rc = store_dataset_get(core->store, dataset, &ds, e)) != 0)
		return rc;
	if ((rc = steps_check_filters(core, ds.id, st, n, e)) != 0)
		return rc;
	c.ds = &ds;
	c.steps = json_object_get(body, "steps");
	if ((rc = store_write(core->store, put_fn, &c, e)) != 0)
		return rc;
	jobs_cancel_matching(core->jobs, ds.id, "subset", name, c.job);
	jobs_submit(core->jobs, c.job);
	*view = view_of(core, c.doc);
	json_decref(c.doc);
	*job = c.job;
	*created = c.created;
	return *view != NULL ? 0 : err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
}

/* view_of as a jdoc_view_fn. */
static json_t *named_view(void *ctx, uint32_t ds, const json_t *doc)
{
	(void)ds;
	return view_of(ctx, doc);
}

int subset_get_json(struct core *core, const char *dataset, const char *name, json_t **out,
                    struct err *e)
{
	return jdoc_named_view(core->store, &subset_docs, dataset, name, named_view, core, out, e);
}

int subset_list_json(struct core *core, const char *dataset, json_t **out, struct err *e)
{
	return jdoc_named_list(core->store, &subset_docs, dataset, named_view, core, out, e);
}

/* A subset's membership (its fate array) goes with it (jdoc_cleanup_fn). */
static int drop_fate(void *ctx, struct store_txn *t, uint32_t ds, const char *name,
                     const json_t *doc, struct err *e)
{
	(void)ctx;
	(void)name;
	return store_txn_array_drop(
	    t, ds,
	    (uint32_t)json_integer_value(json_object_get(json_object_get(doc, "arrays"), "fate")),
	    e);
}

int subset_delete(struct core *core, const char *dataset, const char *name, struct err *e)
{
	struct store_dataset_info ds;
	int rc;

	if ((rc = store_dataset_get(core->store, dataset, &ds, e)) != 0)
		return rc;
	jobs_cancel_matching(core->jobs, ds.id, "subset", name, 0);
	return jdoc_named_delete(core->store, &subset_docs, ds.id, name, drop_fate, NULL, e);
}

/* ---- materialisation ---- */

/* Does the record body satisfy every condition of a meta step? */
static int num_cmp_ok(const char *op, double a, double b)
{
	if (strcmp(op, "gt") == 0)
		return a > b;
	if (strcmp(op, "gte") == 0)
		return a >= b;
	if (strcmp(op, "lt") == 0)
		return a < b;
	return a <= b; /* lte */
}

static int meta_match(const json_t *meta_step, const json_t *body)
{
	const json_t *meta = json_object_get(body, "meta");
	const char *key;
	json_t *cond;

	json_object_foreach((json_t *)meta_step, key, cond) {
		const json_t *v = json_is_object(meta) ? json_object_get(meta, key) : NULL;
		const char *op;
		json_t *arg;

		if (!json_is_object(cond)) {
			if (v == NULL || !json_equal((json_t *)v, cond))
				return 0;
			continue;
		}
		json_object_foreach(cond, op, arg) {
			if (strcmp(op, "exists") == 0) {
				if ((v != NULL) != json_is_true(arg))
					return 0;
			} else if (strcmp(op, "eq") == 0) {
				if (v == NULL || !json_equal((json_t *)v, arg))
					return 0;
			} else if (strcmp(op, "ne") == 0) {
				if (v != NULL && json_equal((json_t *)v, arg))
					return 0;
			} else if (strcmp(op, "in") == 0) {
				size_t i;
				json_t *x;
				int hit = 0;

				json_array_foreach(arg, i, x)
					if (v != NULL && json_equal((json_t *)v, x))
						hit = 1;
				if (!hit)
					return 0;
			} else {
				if (!json_is_number(v) ||
				    !num_cmp_ok(op, json_number_value(v), json_number_value(arg)))
					return 0;
			}
		}
	}
	return 1;
}

struct pred_ctx {
	const struct step *st;
	uint8_t *alive;
	uint64_t n;
	uint64_t out;
};

static int pred_fn(void *ctx, uint64_t row, unsigned kind, const char *id, size_t id_len,
                   const char *body, size_t body_len)
{
	struct pred_ctx *c = ctx;
	int keep;

	(void)id;
	(void)id_len;
	if (row >= c->n)
		return 1;
	if (!c->alive[row])
		return 0;
	if (c->st->rule == RULE_KIND) {
		keep = (kind & c->st->kinds) != 0;
	} else {
		json_t *b = json_loadb(body, body_len, 0, NULL);

		keep = b != NULL && meta_match(c->st->meta, b);
		json_decref(b);
	}
	if (keep)
		c->out++;
	else
		c->alive[row] = 0;
	return 0;
}

/* The rows among keep (n entries) tied at score t get their ids, for top_k / bottom_k. */
static int tie_ids(struct store_reader *r, uint32_t ds, const float *cand, uint64_t n, float t,
                   const char **ids, struct err *e)
{
	for (uint64_t i = 0; i < n; i++) {
		const char *id;
		size_t len;
		int rc;

		ids[i] = NULL;
		if (!(cand[i] == t))
			continue;
		if ((rc = store_reader_row(r, ds, i, NULL, &id, &len, NULL, NULL, e)) != 0)
			return rc;
		if ((ids[i] = strndup(id, len)) == NULL)
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	return 0;
}

/* Keep exactly min(k, N) of cand (NaN = not a candidate), ties by id. */
static int select_k(struct store_reader *r, uint32_t ds, const float *cand, uint64_t n,
                    uint64_t k, int top, uint8_t *keep, size_t *kept, float *thr,
                    struct err *e)
{
	const char **ids = NULL;
	float t = NAN;
	int rc;

	/* first pass, ties by row: finds the k-th score */
	rc = top ? select_top_k(cand, n, k, NULL, kept, keep)
	         : select_bottom_k(cand, n, k, NULL, kept, keep);
	if (rc != 0)
		return err_set(e, rc, "select", "selection failed");
	for (uint64_t i = 0; i < n; i++)
		if (keep[i] && (isnan(t) || (top ? cand[i] < t : cand[i] > t)))
			t = cand[i];
	*thr = t;
	if (*kept == 0)
		return 0;
	ids = calloc(n ? n : 1, sizeof *ids);
	if (ids == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if ((rc = tie_ids(r, ds, cand, n, t, ids, e)) == 0) {
		rc = top ? select_top_k(cand, n, k, ids, kept, keep)
		         : select_bottom_k(cand, n, k, ids, kept, keep);
		if (rc != 0)
			rc = err_set(e, rc, "select", "selection failed");
	}
	for (uint64_t i = 0; i < n; i++)
		free((char *)ids[i]);
	free(ids);
	return rc;
}

/* ---- per-cluster selection and the clusters' provenance ---- */

struct run {
	struct store_reader *r;
	uint32_t ds;
	uint64_t n;      /* rows of the dataset */
	uint8_t *alive;  /* 1 while the row is still in the subset */
	uint8_t *keep;   /* the current step's selection */
	uint8_t *status; /* the current step's filter statuses */
	float *score;    /* its scores; NAN for rows out of the running */
	uint32_t *lab;   /* its cluster labels (read when it has them), or NULL */
};

struct cand {
	uint32_t label;
	float score;
	uint64_t row;
};

static int cand_cmp_top(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->label != y->label)
		return x->label < y->label ? -1 : 1;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->row < y->row ? -1 : x->row > y->row;
}

static int cand_cmp_bottom(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->label != y->label)
		return x->label < y->label ? -1 : 1;
	if (x->score != y->score)
		return x->score < y->score ? -1 : 1;
	return x->row < y->row ? -1 : x->row > y->row;
}

struct tied {
	const char *id;
	size_t len;
	uint64_t row;
};

static int tied_cmp(const void *a, const void *b)
{
	const struct tied *x = a, *y = b;
	int c = memcmp(x->id, y->id, x->len < y->len ? x->len : y->len);

	return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* Keep the first w of the m candidates c (one label, sorted best first): those better than the
 * w-th's score all, of those tied with it the smallest ids. *k counts the kept. */
static int keep_head(struct run *x, const struct cand *c, size_t m, uint64_t w, uint8_t *keep,
                     size_t *k)
{
	size_t lo, hi, need;
	struct tied *t;
	int rc = 0;

	if (w > m)
		w = m;
	if (w == 0)
		return 0;
	for (lo = w - 1; lo > 0 && c[lo - 1].score == c[w - 1].score; lo--)
		;
	for (hi = w; hi < m && c[hi].score == c[w - 1].score; hi++)
		;
	for (size_t j = 0; j < lo; j++)
		keep[c[j].row] = 1;
	*k += lo;
	need = w - lo;
	if (hi - lo == need) {
		for (size_t j = lo; j < hi; j++)
			keep[c[j].row] = 1;
		*k += need;
		return 0;
	}
	if ((t = malloc((hi - lo) * sizeof *t)) == NULL)
		return ERR_NOMEM;
	for (size_t j = lo; j < hi && rc == 0; j++) {
		t[j - lo].row = c[j].row;
		rc = store_reader_row(x->r, x->ds, c[j].row, NULL, &t[j - lo].id, &t[j - lo].len,
		                      NULL, NULL, NULL);
	}
	if (rc == 0) {
		qsort(t, hi - lo, sizeof *t, tied_cmp);
		for (size_t j = 0; j < need; j++)
			keep[t[j].row] = 1;
		*k += need;
	}
	free(t);
	return rc;
}

/* Keep T = round(f * N) (half up) of the N finite, labelled scores, apportioned to the labels
 * by largest remainders with a minimum per non-empty label (select_apportion): the highest
 * (top) or the lowest inside every label, ties by the smaller id (bytewise, so the choice does
 * not depend on where a record sits: a router gets the same from its shards). keep gets n entries.
 * The step's provenance ps gets the requested count T, the realised count and the minimum asked for
 * and applied. Rounding every label on its own (round(f * n_c)) kept 598 instead of 600 and emptied
 * 6 clusters on 60,000 records at f = 0.01, k = 100. */
static int select_per_label(struct run *x, const struct step *s, int top, uint8_t *keep,
                            size_t *kept, json_t *ps)
{
	const float *score = x->score;
	const uint32_t *lab = x->lab;
	uint64_t n = x->n;
	uint64_t m = s->min_per_cluster < 0 ? 1 : (uint64_t)s->min_per_cluster, applied = 0, T;
	uint64_t *size = NULL, *want = NULL;
	struct cand *c = NULL;
	uint32_t maxl = 0;
	size_t nc = 0, k = 0;
	int rc;

	for (uint64_t i = 0; i < n; i++) {
		keep[i] = 0;
		if (!isnan(score[i]) && lab[i] != FILTER_NO_LABEL) {
			nc++;
			if (lab[i] + 1 > maxl)
				maxl = lab[i] + 1;
		}
	}
	c = malloc((nc ? nc : 1) * sizeof *c);
	size = calloc(maxl ? maxl : 1, sizeof *size);
	want = calloc(maxl ? maxl : 1, sizeof *want);
	if (c == NULL || size == NULL || want == NULL) {
		rc = ERR_NOMEM;
		goto out;
	}
	nc = 0;
	for (uint64_t i = 0; i < n; i++) {
		if (!isnan(score[i]) && lab[i] != FILTER_NO_LABEL) {
			c[nc++] = (struct cand){lab[i], score[i], i};
			size[lab[i]]++;
		}
	}
	T = (uint64_t)floor(s->value * (double)nc + 0.5);
	if (T > nc)
		T = nc;
	if ((rc = select_apportion(size, maxl, T, m, want, &applied)) != 0)
		goto out;
	qsort(c, nc, sizeof *c, top ? cand_cmp_top : cand_cmp_bottom);
	for (size_t a = 0; a < nc;) {
		size_t end = a;

		while (end < nc && c[end].label == c[a].label)
			end++;
		if ((rc = keep_head(x, c + a, end - a, want[c[a].label], keep, &k)) != 0)
			goto out;
		a = end;
	}
	*kept = k;
	json_object_set_new(ps, "requested", json_integer((json_int_t)T));
	json_object_set_new(ps, "realised", json_integer((json_int_t)k));
	json_object_set_new(ps, "min_per_cluster", json_integer((json_int_t)m));
	json_object_set_new(ps, "min_per_cluster_applied", json_integer((json_int_t)applied));
out:
	free(c);
	free(size);
	free(want);
	return rc;
}

/* What a step did inside each label (cluster): the candidates (finite scores) and the kept
 * rows per label, as arrays indexed by label, with the clusters it emptied and the smallest
 * kept share: the trade-off of a global fraction made visible. NULL when out of memory. */
static json_t *label_prov(const char *name, const float *score, const uint32_t *lab,
                          const uint8_t *keep, uint64_t n)
{
	uint32_t maxl = 0;
	uint64_t *in, *out, emptied = 0, count = 0;
	double min_share = 1;
	json_t *o, *ain, *aout, *empty = json_array();

	for (uint64_t i = 0; i < n; i++)
		if (!isnan(score[i]) && lab[i] != FILTER_NO_LABEL && lab[i] + 1 > maxl)
			maxl = lab[i] + 1;
	in = calloc(maxl ? maxl : 1, sizeof *in);
	out = calloc(maxl ? maxl : 1, sizeof *out);
	ain = json_array();
	aout = json_array();
	o = json_pack("{s:s, s:o, s:o}", "label", name, "in", ain, "out", aout);
	if (in == NULL || out == NULL || o == NULL || empty == NULL) {
		free(in);
		free(out);
		json_decref(o);
		json_decref(empty);
		return NULL;
	}
	for (uint64_t i = 0; i < n; i++) {
		if (isnan(score[i]) || lab[i] == FILTER_NO_LABEL)
			continue;
		in[lab[i]]++;
		out[lab[i]] += keep[i] != 0;
	}
	for (uint32_t c = 0; c < maxl; c++) {
		json_array_append_new(ain, json_integer((json_int_t)in[c]));
		json_array_append_new(aout, json_integer((json_int_t)out[c]));
		if (in[c] == 0)
			continue;
		count++;
		emptied += out[c] == 0;
		if (out[c] == 0)
			json_array_append_new(empty, json_integer((json_int_t)c));
		if ((double)out[c] / (double)in[c] < min_share)
			min_share = (double)out[c] / (double)in[c];
	}
	json_object_set_new(o, "count", json_integer((json_int_t)count));
	json_object_set_new(o, "emptied", json_integer((json_int_t)emptied));
	json_object_set_new(o, "empty", empty);
	json_object_set_new(o, "min_kept_share", count ? json_real(min_share) : json_null());
	free(in);
	free(out);
	return o;
}

struct commit_ctx {
	struct job *job;
	uint32_t ds;
	const char *name;
	const uint8_t *fate;
	uint64_t n;
	json_t *prov;
	uint64_t members;
};

static int commit_fn(void *ctx, struct store_txn *t, struct err *e)
{
	struct commit_ctx *c = ctx;
	json_t *doc = NULL;
	uint64_t arr;
	uint32_t old;
	int rc;

	if ((rc = jdoc_named_txn_get(t, &subset_docs, c->ds, c->name, &doc, e)) != 0)
		return rc;
	if (doc_u64(doc, "job") != job_id(c->job)) {
		json_decref(doc);
		return err_set(e, ERR_CONFLICT, "superseded",
		               "subset '%s' was redefined while this job ran", c->name);
	}
	old = (uint32_t)json_integer_value(json_object_get(json_object_get(doc, "arrays"), "fate"));
	if ((rc = store_txn_counter_next(t, "array", &arr, e)) != 0 ||
	    (old != 0 && (rc = store_txn_array_drop(t, c->ds, old, e)) != 0) ||
	    (c->n > 0 &&
	     (rc = store_txn_array_put(t, c->ds, (uint32_t)arr, 1, 0, c->n, c->fate, e)) != 0))
		goto out;
	json_object_set_new(doc, "arrays", json_pack("{s:I}", "fate", (json_int_t)arr));
	json_object_set(doc, "provenance", c->prov);
	json_object_set_new(doc, "members", json_integer((json_int_t)c->members));
	rc = jdoc_named_txn_put(t, &subset_docs, c->ds, c->name, doc, e);
out:
	json_decref(doc);
	return rc;
}

/* Wait until the scoring jobs created before this job for the step filters are done. */
static int wait_for_scoring(struct job *j, const struct step *st, size_t n)
{
	struct core *core = job_core(j);

	for (;;) {
		unsigned open = 0;

		for (size_t i = 0; i < n; i++)
			if (st[i].filter[0] != '\0')
				open += jobs_count_open(core->jobs, job_ds(j), "score", st[i].filter,
				                        job_id(j));
		if (open == 0)
			return 0;
		if (jobs_should_stop(j))
			return ERR_CANCELLED;
		usleep(100 * 1000);
	}
}

static json_t *num_or_null(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

/* A materialisation that ran but whose result is probably not what was meant is not a
 * silent success: no member at all, a step whose filter could score none of the records that
 * reached it, or a per-cluster step that still left clusters empty (the budget was below one
 * row per cluster, or min_per_cluster was 0). Each becomes a warning of the job (jobs_warn)
 * and of the provenance ("warnings": [{"code", "detail", "step"?}], always present). */
static void warn_if_empty(struct job *j, json_t *prov)
{
	json_t *w = json_array(), *ps;
	size_t k;

	if (w == NULL)
		return;
	json_array_foreach(json_object_get(prov, "steps"), k, ps) {
		json_int_t in = json_integer_value(json_object_get(ps, "in"));
		json_int_t un = json_integer_value(json_object_get(ps, "unscorable"));
		const json_t *empty = json_object_get(json_object_get(ps, "clusters"), "empty");
		const char *f = json_string_value(json_object_get(ps, "filter"));

		if (in > 0 && un == in) {
			char d[160];

			snprintf(d, sizeof d, "filter '%s' could score none of the %lld records that "
			         "reached its step", f ? f : "?", (long long)in);
			json_array_append_new(w, json_pack("{s:s, s:s, s:I}", "code",
			                                   "step_all_unscorable", "detail", d, "step",
			                                   (json_int_t)k));
			jobs_warn(j, "step_all_unscorable", "step %zu: %s", k, d);
		}
		if (json_is_true(json_object_get(ps, "per_cluster")) && json_array_size(empty) > 0) {
			json_array_append_new(
			        w, json_pack("{s:s, s:s, s:I, s:O}", "code", "clusters_emptied", "detail",
			                     "the per-cluster step kept no record of some clusters",
			                     "step", (json_int_t)k, "clusters", empty));
			jobs_warn(j, "clusters_emptied",
			          "step %zu: %zu clusters kept no record (min_per_cluster applied: "
			          "%lld)", k, json_array_size(empty),
			          (long long)json_integer_value(
			                  json_object_get(ps, "min_per_cluster_applied")));
		}
	}
	if (json_integer_value(json_object_get(prov, "members")) == 0) {
		json_array_append_new(w, json_pack("{s:s, s:s}", "code", "empty_subset", "detail",
		                                   "the subset keeps no record"));
		jobs_warn(j, "empty_subset", "the subset keeps no record (of %lld in the pool)",
		          (long long)json_integer_value(json_object_get(prov, "pool")));
	}
	json_object_set_new(prov, "warnings", w);
}

/* One materialisation's arrays, shared by its steps (every array has n entries). */

/* Read step k's filter into x: its instance (*ref), scores and statuses, with every row that
 * is out, unscored or unscorable set to NAN (*unscorable counts the last), and its labels when
 * it has them. A row still pending (ingested since the last scoring) is an ERR_CONFLICT. */
static int step_scores(struct run *x, size_t k, const struct step *s, struct instance_ref *ref,
                       uint64_t *unscorable, struct err *e)
{
	uint64_t pending = 0;
	int rc;

	if ((rc = instance_ref_read(x->r, x->ds, s->filter, ref, e)) != 0) {
		if (rc == ERR_NOT_FOUND)
			rc = err_set(e, ERR_INVALID, "unknown_filter",
			             "step %zu: filter '%s' no longer exists", k, s->filter);
		return rc;
	}
	if ((rc = store_reader_array(x->r, x->ds, ref->arr_score, 4, 0, x->n, x->score, e)) != 0 ||
	    (rc = store_reader_array(x->r, x->ds, ref->arr_status, 1, 0, x->n, x->status, e)) != 0)
		return rc;
	*unscorable = 0;
	for (uint64_t i = 0; i < x->n; i++) {
		if (!x->alive[i]) {
			x->score[i] = NAN;
		} else if (x->status[i] == FILTER_PENDING) {
			pending++;
			x->score[i] = NAN;
		} else if (!filter_status_scored(x->status[i]) || !isfinite(x->score[i])) {
			(*unscorable)++;
			x->score[i] = NAN;
		}
	}
	if (pending > 0)
		return err_set(e, ERR_CONFLICT, "filter_not_scored",
		               "step %zu: filter '%s' has %llu records not scored yet (they "
		               "were ingested after its last scoring and it does not score on "
		               "ingest): POST .../filters/%s:score, then PUT the subset again",
		               k, s->filter, (unsigned long long)pending, s->filter);
	if (ref->arr_label != 0 && ref->ops->label != NULL) {
		if (x->lab == NULL && (x->lab = malloc((x->n ? x->n : 1) * sizeof *x->lab)) == NULL)
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		return store_reader_array(x->r, x->ds, ref->arr_label, 4, 0, x->n, x->lab, e);
	}
	return 0;
}

/* Whether row i (scored v) passes the cut at t with id_max (NULL: every tie). */
static int cut_row(struct run *x, uint64_t i, float v, float t, int below, const char *id_max,
                   int *k, struct err *e)
{
	*k = !isnan(v) && (below ? v < t : v > t);
	if (!isnan(v) && v == t) {
		*k = 1;
		if (id_max != NULL) {
			const char *id;
			size_t len, ml = strlen(id_max);
			int rc, c;

			if ((rc = store_reader_row(x->r, x->ds, i, NULL, &id, &len, NULL, NULL,
			                           e)) != 0)
				return rc;
			c = memcmp(id, id_max, len < ml ? len : ml);
			*k = c < 0 || (c == 0 && len <= ml);
		}
	}
	return 0;
}

/* A per-cluster cut: each labelled row against its cluster's [label, score, id_max]; rows of
 * a cluster not listed, unlabelled or unscored are out. */
static int select_cut_clusters(struct run *x, const struct step *s, size_t *kept, struct err *e)
{
	uint32_t maxl = 0;
	float *thr;
	const char **idm;
	size_t j;
	json_t *c;
	int rc = 0;

	*kept = 0;
	if (x->lab == NULL)
		return err_set(e, ERR_INVALID, "bad_step", "filter '%s' has no clusters",
		               s->filter);
	for (uint64_t i = 0; i < x->n; i++)
		if (!isnan(x->score[i]) && x->lab[i] != FILTER_NO_LABEL && x->lab[i] + 1 > maxl)
			maxl = x->lab[i] + 1;
	thr = malloc((maxl ? maxl : 1) * sizeof *thr);
	idm = calloc(maxl ? maxl : 1, sizeof *idm);
	if (thr == NULL || idm == NULL) {
		free(thr);
		free(idm);
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	json_array_foreach(s->cut_clusters, j, c) {
		json_int_t l = json_integer_value(json_array_get(c, 0));

		if (l < (json_int_t)maxl) {
			thr[l] = (float)json_number_value(json_array_get(c, 1));
			idm[l] = json_string_value(json_array_get(c, 2));
		}
	}
	for (uint64_t i = 0; i < x->n && rc == 0; i++) {
		uint32_t l = x->lab[i];
		int k = 0;

		if (!isnan(x->score[i]) && l != FILTER_NO_LABEL && idm[l] != NULL)
			rc = cut_row(x, i, x->score[i], thr[l], s->cut_below, idm[l], &k, e);
		x->keep[i] = (uint8_t)k;
		*kept += (size_t)k;
	}
	free(thr);
	free(idm);
	return rc;
}

/* A cut step: score beyond the value, or equal to it with an id <= id_max (all when none). */
static int select_cut(struct run *x, const struct step *s, size_t *kept, struct err *e)
{
	float t = (float)s->value;

	if (s->cut_clusters != NULL)
		return select_cut_clusters(x, s, kept, e);
	*kept = 0;
	for (uint64_t i = 0; i < x->n; i++) {
		float v = x->score[i];
		int k = !isnan(v) && (s->cut_below ? v < t : v > t);

		if (!isnan(v) && v == t) {
			k = 1;
			if (s->id_max != NULL) {
				const char *id;
				size_t len, ml = strlen(s->id_max);
				int rc, c;

				if ((rc = store_reader_row(x->r, x->ds, i, NULL, &id, &len, NULL, NULL,
				                           e)) != 0)
					return rc;
				c = memcmp(id, s->id_max, len < ml ? len : ml);
				k = c < 0 || (c == 0 && len <= ml);
			}
		}
		x->keep[i] = (uint8_t)k;
		*kept += (size_t)k;
	}
	return 0;
}

/* Apply step s's rule to the scores in x: x->keep and *kept the selection, *thr the threshold
 * it came to (NAN: none), and the step's "value" in ps. Returns 0 or the selection's code
 * (e may be left unset). */
static int step_select(struct run *x, const struct step *s, json_t *ps, float *thr, size_t *kept,
                       struct err *e)
{
	uint64_t n = x->n;
	float *score = x->score;
	int rc = 0;

	switch (s->rule) {
	case RULE_TOP_FRACTION:
		rc = s->per_cluster ? select_per_label(x, s, 1, x->keep, kept, ps)
		                    : select_top_fraction(score, n, s->value, thr, kept, x->keep);
		json_object_set_new(ps, "value", json_real(s->value));
		break;
	case RULE_BOTTOM_FRACTION:
		rc = s->per_cluster
		         ? select_per_label(x, s, 0, x->keep, kept, ps)
		         : select_bottom_fraction(score, n, s->value, thr, kept, x->keep);
		json_object_set_new(ps, "value", json_real(s->value));
		break;
	case RULE_THRESHOLD:
		*thr = (float)s->value;
		rc = select_threshold_count(score, n, *thr, kept, x->keep);
		json_object_set_new(ps, "value", json_real(s->value));
		break;
	case RULE_TOP_K:
	case RULE_BOTTOM_K: {
		uint64_t k_use = s->k;

		if (s->tau > 0) {
			size_t nfin = 0, kc = 0;

			for (uint64_t i = 0; i < n; i++)
				nfin += !isnan(score[i]);
			if ((rc = select_color_k(nfin, s->tau, &kc)) != 0)
				break;
			k_use = kc;
		}
		rc = select_k(x->r, x->ds, score, n, k_use, s->rule == RULE_TOP_K, x->keep, kept,
		              thr, e);
		if (s->tau > 0)
			json_object_set_new(
			    ps, "value",
			    json_pack("{s:f, s:I}", "tau", s->tau, "k", (json_int_t)k_use));
		else
			json_object_set_new(ps, "value", json_integer((json_int_t)s->k));
		break;
	}
	case RULE_CUT:
		rc = select_cut(x, s, kept, e);
		*thr = s->cut_clusters != NULL ? NAN : (float)s->value;
		json_object_set_new(ps, "value", json_real(s->value));
		break;
	case RULE_KEEP:
		*kept = 0;
		for (uint64_t i = 0; i < n; i++) {
			x->keep[i] = !isnan(score[i]) && ((score[i] >= 0.5f) == (s->keep != 0));
			*kept += x->keep[i];
		}
		*thr = 0.5f;
		json_object_set_new(ps, "value", json_boolean(s->keep));
		break;
	default:
		break;
	}
	return rc;
}

/* Step k (a filter rule): select among the rows still alive, take the others out of x->alive,
 * and record the step's provenance in ps. *kept: the rows it keeps. */
static int step_filter(struct run *x, size_t k, const struct step *s, json_t *ps, size_t *kept,
                       struct err *e)
{
	struct instance_ref ref;
	uint64_t unscorable = 0;
	float thr = NAN;
	int rc;

	if ((rc = step_scores(x, k, s, &ref, &unscorable, e)) != 0)
		return rc;
	json_object_set_new(ps, "filter", json_string(s->filter));
	json_object_set_new(ps, "type", json_string(ref.ops->name));
	json_object_set_new(ps, "version", json_integer((json_int_t)ref.version));
	if (s->per_cluster) {
		if (ref.arr_label == 0 || ref.ops->label == NULL)
			return err_set(e, ERR_INVALID, "bad_step",
			               "step %zu: filter '%s' has no clusters", k, s->filter);
		json_object_set_new(ps, "per_cluster", json_true());
	}
	if ((rc = step_select(x, s, ps, &thr, kept, e)) != 0) {
		if (e == NULL || e->code == 0)
			rc = err_set(e, rc, "select", "step %zu: selection failed", k);
		return rc;
	}
	for (uint64_t i = 0; i < x->n; i++)
		if (x->alive[i] && !x->keep[i])
			x->alive[i] = 0;
	json_object_set_new(ps, "threshold", num_or_null(thr));
	json_object_set_new(ps, "unscorable", json_integer((json_int_t)unscorable));
	if (ref.arr_label != 0 && ref.ops->label != NULL) {
		json_t *lp = label_prov(ref.ops->label, x->score, x->lab, x->keep, x->n);

		if (lp == NULL)
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		json_object_set_new(ps, "clusters", lp);
	}
	return 0;
}

/* Run the steps over x in order: fate[row] becomes the number of the step that took the row
 * out (rows kept stay SUBSET_FATE_KEPT), and each step's provenance goes into psteps.
 * *members: the rows the last step kept (pool when there are no steps). */
static int run_steps(struct job *j, struct run *x, const json_t *steps, const struct step *st,
                     size_t nsteps, uint8_t *fate, json_t *psteps, uint64_t *members, struct err *e)
{
	int rc;

	for (size_t k = 0; k < nsteps; k++) {
		const struct step *s = &st[k];
		uint64_t in = *members;
		size_t kept = 0;
		json_t *ps;

		if (j != NULL && jobs_should_stop(j))
			return ERR_CANCELLED;
		ps = json_pack("{s:I, s:s}", "step", (json_int_t)k, "rule", rule_names[s->rule]);
		json_array_append_new(psteps, ps);
		if (json_object_get(json_array_get(steps, k), "recommendation") != NULL)
			json_object_set(ps, "recommendation",
			                json_object_get(json_array_get(steps, k), "recommendation"));
		if (s->rule == RULE_KIND || s->rule == RULE_META) {
			struct pred_ctx pc = {.st = s, .alive = x->alive, .n = x->n};

			if ((rc = store_reader_rows(x->r, x->ds, 0, pred_fn, &pc, e)) != 0)
				return rc;
			kept = pc.out;
			json_object_set(ps, "value", json_array_get(steps, k) != NULL
			                                     ? json_object_get(json_array_get(steps, k),
			                                                       rule_names[s->rule])
			                                     : json_null());
		} else if ((rc = step_filter(x, k, s, ps, &kept, e)) != 0) {
			return rc;
		}
		for (uint64_t i = 0; i < x->n; i++)
			if (fate[i] == SUBSET_FATE_KEPT && !x->alive[i])
				fate[i] = (uint8_t)(k + 1);
		*members = kept;
		json_object_set_new(ps, "in", json_integer((json_int_t)in));
		json_object_set_new(ps, "out", json_integer((json_int_t)kept));
		if (j != NULL)
			jobs_progress(j, k + 1, nsteps);
	}
	return 0;
}

int subset_job_run(struct job *j, struct err *e)
{
	struct core *core = job_core(j);
	const json_t *steps = json_object_get(job_args(j), "steps");
	struct step st[SUBSET_MAX_STEPS];
	struct store_dataset_info info;
	struct run x = {0};
	uint8_t *fate = NULL;
	json_t *prov = NULL, *psteps;
	uint64_t n = 0, pool = 0, members;
	size_t nsteps;
	int rc;

	if ((rc = steps_parse(steps, st, &nsteps, e)) != 0)
		return rc;
	if ((rc = wait_for_scoring(j, st, nsteps)) != 0)
		return rc;
	if ((rc = store_reader_open(core->store, &x.r, e)) != 0)
		return rc;
	if ((rc = store_reader_dataset(x.r, job_ds(j), &info, e)) != 0)
		goto out;
	n = x.n = info.next_row;
	x.ds = info.id;
	fate = malloc(n ? n : 1);
	x.alive = malloc(n ? n : 1);
	x.keep = malloc(n ? n : 1);
	x.status = malloc(n ? n : 1);
	x.score = malloc((n ? n : 1) * sizeof *x.score);
	psteps = json_array();
	prov = json_pack("{s:o}", "steps", psteps);
	if (fate == NULL || x.alive == NULL || x.keep == NULL || x.status == NULL ||
	    x.score == NULL || prov == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	if ((rc = store_reader_array(x.r, info.id, STORE_ARRAY_LIVE, 1, 0, n, x.alive, e)) != 0)
		goto out;
	for (uint64_t i = 0; i < n; i++) {
		fate[i] = x.alive[i] ? SUBSET_FATE_KEPT : SUBSET_FATE_OUT;
		pool += x.alive[i] != 0;
	}
	jobs_progress(j, 0, nsteps);
	members = pool;
	if ((rc = run_steps(j, &x, steps, st, nsteps, fate, psteps, &members, e)) != 0)
		goto out;
	json_object_set_new(prov, "pool", json_integer((json_int_t)pool));
	json_object_set_new(prov, "members", json_integer((json_int_t)members));
	json_object_set_new(prov, "rows", json_integer((json_int_t)n));
	{
		json_t *now = json_integer(now_unix());

		json_object_set_new(prov, "materialised", jdoc_time(now));
		json_decref(now);
	}
	json_object_set_new(prov, "job", json_integer((json_int_t)job_id(j)));
	warn_if_empty(j, prov);
	store_reader_close(x.r);
	x.r = NULL;
	{
		struct commit_ctx cc = {.job = j, .ds = info.id, .name = job_target(j), .fate = fate,
		                        .n = n, .prov = prov, .members = members};

		rc = store_write(core->store, commit_fn, &cc, e);
	}
out:
	store_reader_close(x.r);
	free(fate);
	free(x.alive);
	free(x.keep);
	free(x.status);
	free(x.score);
	free(x.lab);
	json_decref(prov);
	return rc;
}

int subset_members(struct store_reader *r, uint32_t ds, const char *name, uint64_t nrows,
                   uint8_t **out, struct err *e)
{
	json_t *doc = NULL;
	uint8_t *m;
	uint32_t fate;
	int rc;

	if ((rc = jdoc_named_reader_get(r, &subset_docs, ds, name, &doc, e)) != 0)
		return rc;
	if (!json_is_array(json_object_get(json_object_get(doc, "provenance"), "steps"))) {
		json_decref(doc);
		return err_set(e, ERR_CONFLICT, "not_materialised",
		               "subset '%s' has not been materialised yet", name);
	}
	fate = (uint32_t)json_integer_value(json_object_get(json_object_get(doc, "arrays"), "fate"));
	json_decref(doc);
	if ((m = malloc(nrows ? nrows : 1)) == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if ((rc = store_reader_array(r, ds, fate, 1, 0, nrows, m, e)) != 0) {
		free(m);
		return rc;
	}
	for (uint64_t i = 0; i < nrows; i++)
		m[i] = m[i] == SUBSET_FATE_KEPT;
	*out = m;
	return 0;
}

/* ---- decisions ---- */

int subset_decisions_json(struct core *core, const char *dataset, const char *id, size_t id_len,
                          const char *subset, json_t **out, struct err *e)
{
	struct store_dataset_info ds;
	struct store_reader *r = NULL;
	json_t *doc = NULL, *prov, *psteps, *res = NULL, *arr, *ps;
	uint64_t row;
	uint8_t fate = 0;
	uint32_t fate_arr;
	size_t i;
	int rc;

	if ((rc = store_dataset_get(core->store, dataset, &ds, e)) != 0)
		return rc;
	if ((rc = store_reader_open(core->store, &r, e)) != 0)
		return rc;
	if ((rc = jdoc_named_reader_get(r, &subset_docs, ds.id, subset, &doc, e)) != 0)
		goto out;
	if ((rc = store_reader_find(r, ds.id, id, id_len, &row, e)) != 0) {
		if (rc == ERR_NOT_FOUND)
			rc = err_set(e, ERR_NOT_FOUND, "record_not_found", "no record '%.*s'",
			             (int)(id_len > 200 ? 200 : id_len), id);
		goto out;
	}
	prov = json_object_get(doc, "provenance");
	psteps = json_object_get(prov, "steps");
	if (!json_is_array(psteps)) {
		rc = err_set(e, ERR_CONFLICT, "not_materialised",
		             "subset '%s' has not been materialised yet", subset);
		goto out;
	}
	fate_arr = (uint32_t)json_integer_value(json_object_get(json_object_get(doc, "arrays"), "fate"));
	if ((rc = store_reader_array(r, ds.id, fate_arr, 1, row, 1, &fate, e)) != 0)
		goto out;
	arr = json_array();
	res = json_pack("{s:s#, s:s, s:b, s:o}", "id", id, (int)id_len, "subset", subset, "member",
	                fate == SUBSET_FATE_KEPT, "steps", arr);
	if (res == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	if (fate == SUBSET_FATE_OUT)
		json_object_set_new(res, "note",
		                    json_string("the record was not in the pool when the subset was "
		                                "materialised (ingested since, or re-created)"));
	json_array_foreach(psteps, i, ps) {
		json_t *o = json_pack("{s:I, s:O, s:O}", "step", (json_int_t)i, "rule",
		                      json_object_get(ps, "rule"), "value",
		                      json_object_get(ps, "value") ? json_object_get(ps, "value")
		                                                   : json_null());
		const char *fname = json_string_value(json_object_get(ps, "filter"));
		const char *decision;

		if (fate == SUBSET_FATE_OUT)
			decision = "not_in_pool";
		else if (fate == SUBSET_FATE_KEPT || i + 1 < fate)
			decision = "kept";
		else if (i + 1 == fate)
			decision = "dropped";
		else
			decision = "not_reached";
		json_object_set_new(o, "decision", json_string(decision));
		if (fname != NULL) {
			struct instance_ref ref;
			float sc = NAN;
			uint8_t st = 0;

			json_object_set_new(o, "filter", json_string(fname));
			json_object_set(o, "threshold", json_object_get(ps, "threshold"));
			if (instance_ref_read(r, ds.id, fname, &ref, NULL) == 0 &&
			    store_reader_array(r, ds.id, ref.arr_score, 4, row, 1, &sc, NULL) == 0 &&
			    store_reader_array(r, ds.id, ref.arr_status, 1, row, 1, &st, NULL) == 0) {
				json_object_set_new(o, "score", num_or_null(sc));
				json_object_set_new(o, "status",
				                    json_string(filter_status_name(ref.ops, st)));
				instance_explain_row(r, ds.id, &ds.schema, &ref, row, o);
				if (ref.version != (uint64_t)json_integer_value(json_object_get(ps, "version")))
					json_object_set_new(o, "stale", json_true());
			} else {
				json_object_set_new(o, "score", json_null());
				json_object_set_new(o, "stale", json_true());
			}
		}
		json_array_append_new(arr, o);
	}
	*out = res;
	res = NULL;
out:
	store_reader_close(r);
	json_decref(doc);
	json_decref(res);
	return rc;
}

/* ---- export ---- */

int subset_fields_parse(const char *s, unsigned *out, struct err *e)
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {
		{"id", SUBSET_F_ID},       {"scores", SUBSET_F_SCORES},
		{"text", SUBSET_F_TEXT},   {"meta", SUBSET_F_META},
		{"image", SUBSET_F_IMAGE}, {"embeddings", SUBSET_F_EMBEDDINGS},
		{"kind", SUBSET_F_KIND},
	};
	unsigned bits = 0;

	while (*s != '\0') {
		size_t len = strcspn(s, ","), i;

		for (i = 0; i < sizeof names / sizeof names[0]; i++)
			if (strlen(names[i].name) == len && strncmp(s, names[i].name, len) == 0)
				break;
		if (i == sizeof names / sizeof names[0])
			return err_set(e, ERR_INVALID, "bad_fields",
			               "unknown field '%.*s' in fields (id, kind, scores, text, meta, "
			               "image, embeddings)",
			               (int)(len > 64 ? 64 : len), s);
		bits |= names[i].bit;
		s += len;
		if (*s == ',')
			s++;
	}
	*out = bits | SUBSET_F_ID;
	return 0;
}

struct score_cache {
	struct instance_ref ref;
	uint64_t blk;
	int valid;
	float sc[STORE_ARRAY_ROWS];
	uint8_t st[STORE_ARRAY_ROWS];
};

struct subset_export {
	struct store_reader *r;
	struct store_dataset_info info;
	char name[STORE_NAME_MAX + 1];
	enum subset_format fmt;
	unsigned fields, slices, slice_id;
	int summary;    /* NDJSON: end with the summary line (asked for: loaders would read it) */
	uint64_t *rows; /* the slice's members, in row order */
	size_t nrows, pos;
	uint64_t skipped; /* members deleted since the materialisation */
	char *buf;      /* pending output */
	size_t len, off, cap;
	int done, failed;
	struct score_cache *caches;
	size_t ncaches;
	float *vtmp;
};

static int out_reserve(struct subset_export *x, size_t more)
{
	if (x->len + more <= x->cap)
		return 0;
	size_t ncap = x->cap ? x->cap : 65536;

	while (ncap < x->len + more)
		ncap *= 2;
	char *p = realloc(x->buf, ncap);

	if (p == NULL)
		return ERR_NOMEM;
	x->buf = p;
	x->cap = ncap;
	return 0;
}

static int out_put(struct subset_export *x, const char *s, size_t n)
{
	if (out_reserve(x, n) != 0)
		return ERR_NOMEM;
	memcpy(x->buf + x->len, s, n);
	x->len += n;
	return 0;
}

static int out_json(struct subset_export *x, const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT);
	int rc;

	if (s == NULL)
		return ERR_NOMEM;
	rc = out_put(x, s, jsonnum_shorten(s, strlen(s)));
	if (rc == 0)
		rc = out_put(x, "\n", 1);
	free(s);
	return rc;
}

static int caches_fn(void *ctx, const char *key, size_t key_len, const void *val, size_t len)
{
	struct subset_export *x = ctx;
	struct score_cache *p;
	char name[STORE_NAME_MAX + 1];

	(void)val;
	(void)len;
	if (key_len > STORE_NAME_MAX)
		return 0;
	memcpy(name, key, key_len);
	name[key_len] = '\0';
	p = realloc(x->caches, (x->ncaches + 1) * sizeof *p);
	if (p == NULL)
		return ERR_NOMEM;
	x->caches = p;
	memset(&p[x->ncaches], 0, sizeof *p);
	if (instance_ref_read(x->r, x->info.id, name, &p[x->ncaches].ref, NULL) == 0)
		x->ncaches++;
	return 0;
}

void subset_export_close(struct subset_export *x)
{
	if (x == NULL)
		return;
	store_reader_close(x->r);
	free(x->rows);
	free(x->buf);
	free(x->caches);
	free(x->vtmp);
	free(x);
}

int subset_export_open(struct core *core, const char *dataset, const char *name,
                       enum subset_format fmt, unsigned fields, unsigned slices,
                       unsigned slice_id, int summary, struct subset_export **out,
                       const char **content_type, struct err *e)
{
	struct store_dataset_info ds;
	struct subset_export *x = NULL;
	json_t *doc = NULL;
	uint8_t *fate = NULL, *live = NULL;
	uint64_t members = 0, lo, hi, m = 0;
	uint32_t fate_arr;
	int rc;

	if (slices == 0 || slice_id >= slices)
		return err_set(e, ERR_INVALID, "bad_slice",
		               "slice_id must be below slices (got slices=%u slice_id=%u)", slices,
		               slice_id);
	if ((rc = store_dataset_get(core->store, dataset, &ds, e)) != 0)
		return rc;
	if ((x = calloc(1, sizeof *x)) == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	snprintf(x->name, sizeof x->name, "%s", name);
	x->fmt = fmt;
	x->fields = fields;
	x->slices = slices;
	x->slice_id = slice_id;
	x->summary = summary;
	if ((rc = store_reader_open(core->store, &x->r, e)) != 0)
		goto out;
	if ((rc = store_reader_dataset(x->r, ds.id, &x->info, e)) != 0 ||
	    (rc = jdoc_named_reader_get(x->r, &subset_docs, ds.id, name, &doc, e)) != 0)
		goto out;
	if (!json_is_array(json_object_get(json_object_get(doc, "provenance"), "steps"))) {
		rc = err_set(e, ERR_CONFLICT, "not_materialised",
		             "subset '%s' has not been materialised yet (see its job)", name);
		goto out;
	}
	fate_arr = (uint32_t)json_integer_value(json_object_get(json_object_get(doc, "arrays"), "fate"));
	fate = malloc(x->info.next_row ? x->info.next_row : 1);
	live = malloc(x->info.next_row ? x->info.next_row : 1);
	if (fate == NULL || live == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	if ((rc = store_reader_array(x->r, ds.id, fate_arr, 1, 0, x->info.next_row, fate, e)) !=
	            0 ||
	    (rc = store_reader_array(x->r, ds.id, STORE_ARRAY_LIVE, 1, 0, x->info.next_row, live,
	                             e)) != 0)
		goto out;
	for (uint64_t i = 0; i < x->info.next_row; i++) {
		if (fate[i] != SUBSET_FATE_KEPT)
			continue;
		if (live[i])
			members++;
		else
			x->skipped++;
	}
	/* slice i: members [i*M/s, (i+1)*M/s) in row order */
	lo = members * slice_id / slices;
	hi = members * (slice_id + 1) / slices;
	x->rows = malloc((hi - lo ? hi - lo : 1) * sizeof *x->rows);
	if (x->rows == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	for (uint64_t i = 0; i < x->info.next_row; i++) {
		if (fate[i] != SUBSET_FATE_KEPT || !live[i])
			continue;
		if (m >= lo && m < hi)
			x->rows[x->nrows++] = i;
		m++;
	}
	if (fmt == SUBSET_NPY) {
		uint64_t(*pairs)[2] = malloc((x->nrows ? x->nrows : 1) * sizeof *pairs);
		char hdr[NPY_HEADER_MAX];
		size_t hl;

		if (pairs == NULL) {
			rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
			goto out;
		}
		for (size_t i = 0; i < x->nrows; i++) {
			const char *id;
			size_t len;

			if ((rc = store_reader_row(x->r, ds.id, x->rows[i], NULL, &id, &len, NULL, NULL,
			                           e)) != 0)
				break;
			if (npy_uid_parse(id, len, &pairs[i][0], &pairs[i][1]) != 0) {
				rc = err_set(e, ERR_INVALID, "not_a_uid",
				             "record '%.*s' has an id that is not a DataComp uid (1 to 32 "
				             "hex digits); use format=ids or format=ndjson",
				             (int)(len > 64 ? 64 : len), id);
				break;
			}
		}
		if (rc == 0) {
			npy_sort_uids(pairs, x->nrows);
			hl = npy_header(hdr, sizeof hdr, x->nrows);
			if (out_reserve(x, hl + x->nrows * NPY_RECORD_SIZE) != 0) {
				rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
			} else {
				memcpy(x->buf, hdr, hl);
				x->len = hl + npy_encode_pairs((const uint64_t(*)[2])pairs, x->nrows,
				                               (uint8_t *)x->buf + hl);
			}
		}
		free(pairs);
		if (rc != 0)
			goto out;
		x->pos = x->nrows;
		x->done = 1;
		*content_type = "application/octet-stream";
	} else if (fmt == SUBSET_IDS) {
		*content_type = "text/plain; charset=utf-8";
	} else {
		uint32_t maxdim = 1;

		*content_type = "application/x-ndjson";
		if ((fields & SUBSET_F_SCORES) &&
		    (rc = store_reader_docs(x->r, ds.id, STORE_NS_FILTER, caches_fn, x, e)) != 0) {
			if (rc == ERR_NOMEM)
				rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
			goto out;
		}
		for (unsigned i = 0; i < x->info.schema.nspaces; i++)
			if (x->info.schema.spaces[i].dim > maxdim)
				maxdim = x->info.schema.spaces[i].dim;
		if ((x->vtmp = malloc(maxdim * sizeof(float))) == NULL) {
			rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
			goto out;
		}
	}
out:
	free(fate);
	free(live);
	json_decref(doc);
	if (rc != 0) {
		subset_export_close(x);
		return rc;
	}
	*out = x;
	return 0;
}

static int line_scores(struct subset_export *x, uint64_t row, json_t *obj)
{
	json_t *sc = json_object();

	for (size_t i = 0; i < x->ncaches; i++) {
		struct score_cache *c = &x->caches[i];
		uint64_t blk = row / STORE_ARRAY_ROWS;
		size_t at = (size_t)(row % STORE_ARRAY_ROWS);

		if (!c->valid || c->blk != blk) {
			if (store_reader_array(x->r, x->info.id, c->ref.arr_score, 4,
			                       blk * STORE_ARRAY_ROWS, STORE_ARRAY_ROWS, c->sc, NULL) != 0 ||
			    store_reader_array(x->r, x->info.id, c->ref.arr_status, 1,
			                       blk * STORE_ARRAY_ROWS, STORE_ARRAY_ROWS, c->st, NULL) != 0) {
				json_decref(sc);
				return ERR_STORE;
			}
			c->blk = blk;
			c->valid = 1;
		}
		json_object_set_new(sc, c->ref.name,
		                    filter_status_scored(c->st[at]) && isfinite(c->sc[at])
		                            ? json_real(c->sc[at])
		                            : json_null());
	}
	return json_object_set_new(obj, "scores", sc) == 0 ? 0 : ERR_NOMEM;
}

static int line_embeddings(struct subset_export *x, uint64_t row, json_t *obj)
{
	json_t *emb = json_object();

	for (unsigned s = 0; s < x->info.schema.nspaces; s++) {
		const struct store_space *sp = &x->info.schema.spaces[s];
		const void *data;
		uint64_t present;
		unsigned off = (unsigned)(row % STORE_BLOCK_ROWS);
		json_t *arr;
		int rc = store_reader_block(x->r, x->info.id, s, row / STORE_BLOCK_ROWS, &data,
		                            &present, NULL);

		if (rc == ERR_NOT_FOUND || (rc == 0 && !(present >> off & 1)))
			continue;
		if (rc != 0) {
			json_decref(emb);
			return rc;
		}
		if (sp->dtype == STORE_F16)
			vec_f16_to_f32((const uint16_t *)((const char *)data + store_space_bytes(sp) * off),
			               x->vtmp, sp->dim);
		else
			memcpy(x->vtmp, (const char *)data + store_space_bytes(sp) * off,
			       store_space_bytes(sp));
		arr = json_array();
		for (uint32_t k = 0; k < sp->dim; k++)
			json_array_append_new(arr, json_real(x->vtmp[k]));
		json_object_set_new(emb, sp->name, arr);
	}
	return json_object_set_new(obj, "embeddings", emb) == 0 ? 0 : ERR_NOMEM;
}

static const char *kind_name(unsigned kind)
{
	return kind == STORE_KIND_TEXT ? "text" : "image-text";
}

/* Append the next member's line to the pending output. */
static int next_line(struct subset_export *x)
{
	uint64_t row = x->rows[x->pos++];
	const char *id, *body;
	size_t id_len, body_len;
	unsigned kind;
	json_t *obj, *b = NULL;
	int rc;

	if ((rc = store_reader_row(x->r, x->info.id, row, &kind, &id, &id_len, &body, &body_len,
	                           NULL)) != 0)
		return rc;
	if (x->fmt == SUBSET_IDS) {
		if ((rc = out_put(x, id, id_len)) == 0)
			rc = out_put(x, "\n", 1);
		return rc;
	}
	obj = json_pack("{s:s#}", "id", id, (int)id_len);
	if (obj == NULL)
		return ERR_NOMEM;
	if (x->fields & SUBSET_F_KIND)
		json_object_set_new(obj, "kind", json_string(kind_name(kind)));
	if (x->fields & (SUBSET_F_TEXT | SUBSET_F_META | SUBSET_F_IMAGE)) {
		static const struct {
			unsigned bit;
			const char *key;
		} pick[] = {{SUBSET_F_TEXT, "text"}, {SUBSET_F_META, "meta"}, {SUBSET_F_IMAGE, "image"}};

		b = json_loadb(body, body_len, 0, NULL);
		for (size_t i = 0; i < sizeof pick / sizeof pick[0]; i++) {
			json_t *v = b != NULL ? json_object_get(b, pick[i].key) : NULL;

			if (x->fields & pick[i].bit)
				json_object_set(obj, pick[i].key, v != NULL ? v : json_null());
		}
		json_decref(b);
	}
	if (rc == 0 && (x->fields & SUBSET_F_SCORES))
		rc = line_scores(x, row, obj);
	if (rc == 0 && (x->fields & SUBSET_F_EMBEDDINGS))
		rc = line_embeddings(x, row, obj);
	if (rc == 0)
		rc = out_json(x, obj);
	json_decref(obj);
	return rc;
}

ssize_t subset_export_read(struct subset_export *x, char *buf, size_t max)
{
	size_t n;

	if (x->off == x->len) {
		x->off = x->len = 0;
		if (x->failed || (x->done && x->pos >= x->nrows))
			return x->failed ? -1 : 0;
		while (x->len < 65536 && x->pos < x->nrows) {
			if (next_line(x) != 0) {
				x->failed = 1;
				if (x->fmt == SUBSET_NDJSON) {
					json_t *err = json_pack("{s:{s:s, s:s}}", "error", "code", "export_failed",
					                        "detail", "the export failed while streaming");

					if (err != NULL)
						out_json(x, err);
					json_decref(err);
				}
				break;
			}
		}
		if (x->pos >= x->nrows && !x->done && !x->failed) {
			x->done = 1;
			if (x->fmt == SUBSET_NDJSON && x->summary) {
				json_t *sum = json_pack(
				        "{s:{s:s, s:I, s:I, s:I, s:I}}", "summary", "subset", x->name,
				        "count", (json_int_t)x->nrows, "slices", (json_int_t)x->slices,
				        "slice_id", (json_int_t)x->slice_id, "skipped_deleted",
				        (json_int_t)x->skipped);

				if (sum != NULL)
					out_json(x, sum);
				json_decref(sum);
			}
		}
		if (x->len == 0)
			return x->failed ? -1 : 0;
	}
	n = x->len - x->off < max ? x->len - x->off : max;
	memcpy(buf, x->buf + x->off, n);
	x->off += n;
	return (ssize_t)n;
}

/* ---- the router's probe (docs/scale.md) ---- */

struct probe_args {
	double lo, hi;      /* the range, inclusive */
	uint64_t bins;      /* histogram bins over [lo, hi] by key, 0 = none */
	uint64_t values_max; /* list the values in range when at most this many */
	int has_tie;
	float tie;          /* list the ids of the candidates scored exactly this */
	uint64_t tie_ids;   /* at most this many, smallest first */
	int cluster_sizes;  /* list the candidates per cluster label */
	const json_t *heads; /* [[label, m], ...]: each cluster's best m (score, id) */
	int bottom;          /* heads: the lowest scores are the best */
};

static int probe_cluster_arg(const char *key, const json_t *v, struct probe_args *a, struct err *e)
{
	size_t j;
	json_t *c;

	if (strcmp(key, "cluster_sizes") == 0) {
		if (!json_is_boolean(v))
			return err_set(e, ERR_INVALID, "bad_probe",
			               "cluster_sizes must be true or false");
		a->cluster_sizes = json_is_true(v);
	} else if (strcmp(key, "order") == 0) {
		const char *o = json_string_value(v);

		if (o == NULL || (strcmp(o, "top") != 0 && strcmp(o, "bottom") != 0))
			return err_set(e, ERR_INVALID, "bad_probe",
			               "order must be \"top\" or \"bottom\"");
		a->bottom = strcmp(o, "bottom") == 0;
	} else {
		if (!json_is_array(v))
			return err_set(e, ERR_INVALID, "bad_probe",
			               "cluster_heads must be an array");
		json_array_foreach(v, j, c) {
			json_t *l = json_array_get(c, 0), *m = json_array_get(c, 1);

			if (json_array_size(c) != 2 || !json_is_integer(l) ||
			    json_integer_value(l) < 0 || json_integer_value(l) > UINT32_MAX - 1 ||
			    !json_is_integer(m) || json_integer_value(m) < 0)
				return err_set(e, ERR_INVALID, "bad_probe",
				               "cluster_heads[%zu] must be [label, count]", j);
		}
		a->heads = v;
	}
	return 0;
}

static int probe_args_parse(const json_t *body, struct probe_args *a, struct err *e)
{
	const char *key;
	json_t *v;

	*a = (struct probe_args){.lo = -FLT_MAX, .hi = FLT_MAX};
	json_object_foreach((json_t *)body, key, v) {
		int num = json_is_number(v) && isfinite(json_number_value(v));
		int cnt = json_is_integer(v) && json_integer_value(v) >= 0;

		if (strcmp(key, "steps") == 0 || strcmp(key, "filter") == 0)
			continue;
		if (strcmp(key, "cluster_sizes") == 0 || strcmp(key, "cluster_heads") == 0 ||
		    strcmp(key, "order") == 0) {
			if (probe_cluster_arg(key, v, a, e) != 0)
				return e->code;
			continue;
		}
		if ((strcmp(key, "lo") == 0 || strcmp(key, "hi") == 0 || strcmp(key, "tie_score") == 0)
		    && !num)
			return err_set(e, ERR_INVALID, "bad_probe", "%s must be a finite number", key);
		if ((strcmp(key, "bins") == 0 || strcmp(key, "values_max") == 0 ||
		     strcmp(key, "tie_ids") == 0) && !cnt)
			return err_set(e, ERR_INVALID, "bad_probe", "%s must be a count", key);
		if (strcmp(key, "lo") == 0)
			a->lo = json_number_value(v);
		else if (strcmp(key, "hi") == 0)
			a->hi = json_number_value(v);
		else if (strcmp(key, "bins") == 0)
			a->bins = (uint64_t)json_integer_value(v);
		else if (strcmp(key, "values_max") == 0)
			a->values_max = (uint64_t)json_integer_value(v);
		else if (strcmp(key, "tie_score") == 0)
			a->has_tie = 1, a->tie = (float)json_number_value(v);
		else if (strcmp(key, "tie_ids") == 0)
			a->tie_ids = (uint64_t)json_integer_value(v);
		else
			return err_set(
			    e, ERR_INVALID, "unknown_field",
			    "unknown field '%s' (steps, filter, lo, hi, bins, values_max, "
			    "tie_score, tie_ids, cluster_sizes, cluster_heads, order)",
			    key);
	}
	if (a->bins > 65536 || a->values_max > 1000000 || a->tie_ids > 1000000 || a->lo > a->hi)
		return err_set(e, ERR_INVALID, "bad_probe",
		               "bins at most 65536, values_max and tie_ids at most 1000000, lo <= hi");
	return 0;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static json_t *probe_values(const struct run *x, const struct probe_args *a, uint32_t klo,
                            uint32_t khi);

/* The histogram and the value list of the candidates in [lo, hi] into out. */
static int probe_ranges(const struct run *x, const struct probe_args *a, json_t *out)
{
	uint32_t klo = select_float_key((float)a->lo), khi = select_float_key((float)a->hi);
	uint64_t width = a->bins ? ((uint64_t)khi - klo) / a->bins + 1 : 1, below = 0, above = 0;
	uint64_t in = 0, nfin = 0, *hist = calloc(a->bins ? a->bins : 1, sizeof *hist);
	float mn = NAN, mx = NAN;
	json_t *hj;

	if (hist == NULL)
		return ERR_NOMEM;
	for (uint64_t i = 0; i < x->n; i++) {
		float v = x->score[i];
		uint32_t k;

		if (isnan(v))
			continue;
		nfin++;
		mn = isnan(mn) || v < mn ? v : mn;
		mx = isnan(mx) || v > mx ? v : mx;
		k = select_float_key(v);
		if (k < klo)
			below++;
		else if (k > khi)
			above++;
		else if (in++, a->bins)
			hist[(k - klo) / width]++;
	}
	json_object_set_new(out, "n", json_integer((json_int_t)nfin));
	json_object_set_new(out, "below", json_integer((json_int_t)below));
	json_object_set_new(out, "above", json_integer((json_int_t)above));
	json_object_set_new(out, "in_range", json_integer((json_int_t)in));
	json_object_set_new(out, "min", num_or_null(mn));
	json_object_set_new(out, "max", num_or_null(mx));
	hj = json_array();
	for (uint64_t b = 0; b < a->bins; b++)
		json_array_append_new(hj, json_integer((json_int_t)hist[b]));
	json_object_set_new(out, "bins", hj);
	free(hist);
	json_object_set_new(out, "values", probe_values(x, a, klo, khi));
	return 0;
}

static int key_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* [[score, count], ...] of the distinct scores in [klo, khi] ascending, or null when there are
 * more than values_max of them: one pass with an open-addressing table of at most values_max
 * keys (load 1/2), so O(n) time and O(values_max) memory whatever the range holds. */
static json_t *probe_values(const struct run *x, const struct probe_args *a, uint32_t klo,
                            uint32_t khi)
{
	size_t cap = 16, used = 0;
	uint32_t *keys;
	uint64_t *cnt;
	json_t *arr = NULL;

	while (cap < 2 * a->values_max + 2)
		cap *= 2;
	keys = malloc(cap * sizeof *keys);
	cnt = calloc(cap, sizeof *cnt);
	if (keys == NULL || cnt == NULL)
		goto out;
	for (uint64_t i = 0; i < x->n; i++) {
		uint32_t k;
		size_t h;

		if (isnan(x->score[i]))
			continue;
		k = select_float_key(x->score[i]);
		if (k < klo || k > khi)
			continue;
		for (h = (k * 2654435761u) & (cap - 1); cnt[h] != 0 && keys[h] != k; h = (h + 1) & (cap - 1))
			;
		if (cnt[h] == 0) {
			if (used == a->values_max)
				goto out; /* too many distinct values: null */
			keys[h] = k;
			used++;
		}
		cnt[h]++;
	}
	{
		uint32_t *ks = malloc((used ? used : 1) * sizeof *ks);
		size_t m = 0;

		if (ks == NULL)
			goto out;
		for (size_t h = 0; h < cap; h++)
			if (cnt[h] != 0)
				ks[m++] = keys[h];
		qsort(ks, m, sizeof *ks, key_cmp);
		arr = json_array();
		for (size_t i = 0; i < m; i++) {
			size_t h;

			for (h = (ks[i] * 2654435761u) & (cap - 1); keys[h] != ks[i] || cnt[h] == 0;
			     h = (h + 1) & (cap - 1))
				;
			json_array_append_new(arr, json_pack("[f, I]", (double)select_key_float(ks[i]),
			                                     (json_int_t)cnt[h]));
		}
		free(ks);
	}
out:
	free(keys);
	free(cnt);
	return arr != NULL ? arr : json_null();
}

/* The smallest tie_ids ids among the candidates scored exactly tie, and how many there are. */
static int probe_ties(const struct run *x, const struct probe_args *a, json_t *out, struct err *e)
{
	char **ids = NULL;
	uint64_t m = 0, cap = 0;
	int rc = 0;
	json_t *arr = json_array();

	for (uint64_t i = 0; i < x->n && rc == 0; i++) {
		const char *id;
		size_t len;

		if (isnan(x->score[i]) || x->score[i] != a->tie)
			continue;
		if ((rc = store_reader_row(x->r, x->ds, i, NULL, &id, &len, NULL, NULL, e)) != 0)
			break;
		if (m == cap) {
			char **ni = realloc(ids, (cap = cap ? cap * 2 : 1024) * sizeof *ids);

			if (ni == NULL) {
				rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
				break;
			}
			ids = ni;
		}
		if ((ids[m] = strndup(id, len)) == NULL)
			rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		else
			m++;
	}
	if (rc == 0) {
		if (m > 0)
			qsort(ids, m, sizeof *ids, str_cmp);
		for (uint64_t i = 0; i < m && i < a->tie_ids; i++)
			json_array_append_new(arr, json_string(ids[i]));
		json_object_set_new(out, "tie_count", json_integer((json_int_t)m));
		json_object_set(out, "tie_ids", arr);
	}
	for (uint64_t i = 0; i < m; i++)
		free(ids[i]);
	free(ids);
	json_decref(arr);
	return rc;
}

/* [[label, candidates], ...] of the finite, labelled scores, by label. */
static int probe_cluster_sizes(const struct run *x, json_t *out)
{
	uint32_t maxl = 0;
	uint64_t *size;
	json_t *arr = json_array();

	if (x->lab == NULL) {
		json_decref(arr);
		json_object_set_new(out, "clusters", json_null()); /* a filter without clusters */
		return 0;
	}
	for (uint64_t i = 0; i < x->n; i++)
		if (!isnan(x->score[i]) && x->lab[i] != FILTER_NO_LABEL && x->lab[i] + 1 > maxl)
			maxl = x->lab[i] + 1;
	if ((size = calloc(maxl ? maxl : 1, sizeof *size)) == NULL || arr == NULL) {
		free(size);
		json_decref(arr);
		return ERR_NOMEM;
	}
	for (uint64_t i = 0; i < x->n; i++)
		if (!isnan(x->score[i]) && x->lab[i] != FILTER_NO_LABEL)
			size[x->lab[i]]++;
	for (uint32_t l = 0; l < maxl; l++)
		if (size[l] > 0)
			json_array_append_new(
			    arr, json_pack("[I, I]", (json_int_t)l, (json_int_t)size[l]));
	free(size);
	json_object_set_new(out, "clusters", arr);
	return 0;
}

/* For each [label, m] of a->heads, the m best candidates of the cluster by (score, id bytewise)
 * as [[label, [[score, id], ...]], ...]: the set one daemon's per_cluster step would keep of
 * them (select_per_label), in no particular order. */
static int probe_cluster_heads(struct run *x, const struct probe_args *a, json_t *out)
{
	uint32_t maxl = 0;
	uint64_t *want;
	struct cand *c;
	size_t nc = 0, j, k = 0;
	json_t *h, *arr = json_array();
	int rc = 0;

	for (uint64_t i = 0; x->lab != NULL && i < x->n; i++)
		if (!isnan(x->score[i]) && x->lab[i] != FILTER_NO_LABEL && x->lab[i] + 1 > maxl)
			maxl = x->lab[i] + 1;
	want = calloc(maxl ? maxl : 1, sizeof *want);
	c = malloc((x->n ? x->n : 1) * sizeof *c);
	if (want == NULL || c == NULL || arr == NULL) {
		rc = ERR_NOMEM;
		goto out;
	}
	json_array_foreach(a->heads, j, h) {
		json_int_t l = json_integer_value(json_array_get(h, 0));

		if (l < (json_int_t)maxl)
			want[l] = (uint64_t)json_integer_value(json_array_get(h, 1));
	}
	for (uint64_t i = 0; x->lab != NULL && i < x->n; i++) {
		x->keep[i] = 0;
		if (!isnan(x->score[i]) && x->lab[i] != FILTER_NO_LABEL && want[x->lab[i]] > 0)
			c[nc++] = (struct cand){x->lab[i], x->score[i], i};
	}
	qsort(c, nc, sizeof *c, a->bottom ? cand_cmp_bottom : cand_cmp_top);
	for (size_t s = 0; s < nc && rc == 0;) {
		size_t end = s;
		json_t *list = json_array();

		while (end < nc && c[end].label == c[s].label)
			end++;
		rc = keep_head(x, c + s, end - s, want[c[s].label], x->keep, &k);
		for (size_t i = s; i < end && rc == 0; i++) {
			const char *id;
			size_t len;

			if (!x->keep[c[i].row])
				continue;
			rc = store_reader_row(x->r, x->ds, c[i].row, NULL, &id, &len, NULL, NULL,
			                      NULL);
			if (rc == 0)
				json_array_append_new(
				    list, json_pack("[f, s#]", (double)c[i].score, id, len));
		}
		json_array_append_new(arr, json_pack("[I, o]", (json_int_t)c[s].label, list));
		s = end;
	}
out:
	if (rc == 0)
		json_object_set(out, "heads", arr);
	json_decref(arr);
	free(want);
	free(c);
	return rc;
}

/* Run steps over x (fate unused beyond run_steps' bookkeeping) and read filter's scores. */
static int probe_run(struct core *core, uint32_t ds, struct run *x, const json_t *steps,
                     const char *filter, uint64_t *survivors, uint64_t *unscorable,
                     struct err *e)
{
	struct step st[SUBSET_MAX_STEPS], fs = {.rule = RULE_THRESHOLD};
	struct instance_ref ref;
	size_t nsteps = 0;
	uint8_t *fate = NULL;
	json_t *psteps = json_array();
	int rc;

	if (json_array_size(steps) > 0 && (rc = steps_parse(steps, st, &nsteps, e)) != 0)
		goto out;
	if ((rc = steps_check_filters(core, ds, st, nsteps, e)) != 0)
		goto out;
	for (size_t i = 0; i <= nsteps; i++) {
		const char *fn = i < nsteps ? st[i].filter : filter;

		if (fn[0] != '\0' && jobs_count_open(core->jobs, ds, "score", fn, 0) > 0) {
			rc = err_set(e, ERR_CONFLICT, "filter_scoring",
			             "filter '%s' is being scored: ask again when its job is done", fn);
			goto out;
		}
	}
	if ((fate = malloc(x->n ? x->n : 1)) == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	*survivors = 0;
	for (uint64_t i = 0; i < x->n; i++) {
		fate[i] = x->alive[i] ? SUBSET_FATE_KEPT : SUBSET_FATE_OUT;
		*survivors += x->alive[i] != 0;
	}
	if ((rc = run_steps(NULL, x, steps, st, nsteps, fate, psteps, survivors, e)) != 0)
		goto out;
	snprintf(fs.filter, sizeof fs.filter, "%s", filter);
	rc = step_scores(x, nsteps, &fs, &ref, unscorable, e);
out:
	free(fate);
	json_decref(psteps);
	return rc;
}

int subset_probe(struct core *core, const char *dataset, const json_t *body, json_t **out,
                 struct err *e)
{
	struct store_dataset_info info;
	struct probe_args a;
	struct run x = {0};
	const json_t *steps = json_object_get(body, "steps");
	const char *filter = json_string_value(json_object_get(body, "filter"));
	uint64_t survivors = 0, unscorable = 0;
	json_t *o = NULL;
	int rc;

	if (!json_is_object(body) || filter == NULL || !store_name_valid(filter) ||
	    (steps != NULL && !json_is_array(steps)))
		return err_set(e, ERR_INVALID, "bad_probe",
		               "a probe has \"filter\" (a filter name) and \"steps\" (an array)");
	if ((rc = probe_args_parse(body, &a, e)) != 0)
		return rc;
	if ((rc = store_dataset_get(core->store, dataset, &info, e)) != 0)
		return rc;
	if ((rc = store_reader_open(core->store, &x.r, e)) != 0)
		return rc;
	if ((rc = store_reader_dataset(x.r, info.id, &info, e)) != 0)
		goto out;
	x.n = info.next_row;
	x.ds = info.id;
	x.alive = malloc(x.n ? x.n : 1);
	x.keep = malloc(x.n ? x.n : 1);
	x.status = malloc(x.n ? x.n : 1);
	x.score = malloc((x.n ? x.n : 1) * sizeof *x.score);
	o = json_object();
	if (x.alive == NULL || x.keep == NULL || x.status == NULL || x.score == NULL || o == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	if ((rc = store_reader_array(x.r, info.id, STORE_ARRAY_LIVE, 1, 0, x.n, x.alive, e)) != 0 ||
	    (rc = probe_run(core, info.id, &x, steps, filter, &survivors, &unscorable, e)) != 0)
		goto out;
	json_object_set_new(o, "survivors", json_integer((json_int_t)survivors));
	json_object_set_new(o, "unscorable", json_integer((json_int_t)unscorable));
	if (probe_ranges(&x, &a, o) != 0) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	if (a.has_tie && (rc = probe_ties(&x, &a, o, e)) != 0)
		goto out;
	if (a.heads != NULL && x.lab == NULL) {
		rc = err_set(e, ERR_INVALID, "bad_probe", "filter '%s' has no clusters", filter);
		goto out;
	}
	if ((a.cluster_sizes && probe_cluster_sizes(&x, o) != 0) ||
	    (a.heads != NULL && probe_cluster_heads(&x, &a, o) != 0)) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	*out = o;
	o = NULL;
out:
	store_reader_close(x.r);
	free(x.alive);
	free(x.keep);
	free(x.status);
	free(x.score);
	free(x.lab);
	json_decref(o);
	return rc;
}
