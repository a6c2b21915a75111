/* SPDX-License-Identifier: MIT */
/* filter: the wrappers every caller goes through; they enforce the plug-in contract once. */
#include "filters/filter.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "store/store.h"

int filter_create(struct filter **out, const struct filter_ops *ops, const json_t *params,
                  const struct store_schema *schema, struct err *e)
{
	struct filter *f;
	json_t *empty = NULL;
	int rc;

	if (ops == NULL || ops->create == NULL || ops->score == NULL || ops->size < sizeof *f ||
	    (ops->label != NULL && ops->score_label == NULL))
		return err_set(e, ERR_INTERNAL, "bad_filter_type", "a filter type is incomplete");
	if (params != NULL && !json_is_object(params))
		return err_set(e, ERR_INVALID, "bad_param", "\"params\" must be a JSON object");
	f = calloc(1, ops->size);
	if (f == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	f->ops = ops;
	if (params == NULL)
		params = empty = json_object();
	rc = ops->create(f, params, schema, e);
	json_decref(empty);
	if (rc == 0 && (f->ninputs > FILTER_MAX_INPUTS))
		rc = err_set(e, ERR_INTERNAL, "bad_filter_type", "filter '%s' declares %u inputs",
		             ops->name, f->ninputs);
	if (rc != 0) {
		filter_free(f);
		return rc;
	}
	*out = f;
	return 0;
}

void filter_free(struct filter *f)
{
	if (f == NULL)
		return;
	if (f->ops->destroy != NULL)
		f->ops->destroy(f);
	json_decref(f->warnings);
	free(f);
}

int filter_check(struct filter *f, struct filter_scan *scan, struct err *e)
{
	return f->ops->check != NULL ? f->ops->check(f, scan, e) : 0;
}

int filter_partial(struct filter *f, struct filter_scan *scan, json_t **out, struct err *e)
{
	if (f->ops->partial == NULL)
		return err_set(e, ERR_INVALID, "no_partial",
		               "filter type '%s' has no corpus-wide partial fit", f->ops->name);
	return f->ops->partial(f, scan, out, e);
}

int filter_warn(struct filter *f, json_t *warning)
{
	if (warning == NULL)
		return ERR_NOMEM;
	if (f->warnings == NULL && (f->warnings = json_array()) == NULL) {
		json_decref(warning);
		return ERR_NOMEM;
	}
	return json_array_append_new(f->warnings, warning) == 0 ? 0 : ERR_NOMEM;
}

int filter_fit(struct filter *f, struct filter_scan *scan, struct err *e)
{
	int rc;

	if (f->ops->fit == NULL)
		return 0;
	json_decref(f->warnings);
	f->warnings = NULL;
	rc = f->ops->fit(f, scan, e);
	if (rc == 0)
		f->fitted = 1;
	return rc;
}

int filter_save(const struct filter *f, void **blob, size_t *len, struct err *e)
{
	*blob = NULL;
	*len = 0;
	if (f->ops->save == NULL || !f->fitted)
		return 0;
	return f->ops->save(f, blob, len, e);
}

int filter_load(struct filter *f, const void *blob, size_t len, struct err *e)
{
	int rc;

	if (f->ops->load == NULL)
		return err_set(e, ERR_INVALID, "no_state", "filter type '%s' has no fitted state",
		               f->ops->name);
	rc = f->ops->load(f, blob, len, e);
	if (rc == 0)
		f->fitted = 1;
	return rc;
}

int filter_status_scored(uint8_t status)
{
	return status == FILTER_SCORED || status >= FILTER_REASON_BASE;
}

int filter_score_batch(const struct filter *f, const struct filter_batch *b, float *scores,
                       uint8_t *status, struct err *e)
{
	return filter_score_batch_labels(f, b, scores, status, NULL, e);
}

int filter_score_batch_labels(const struct filter *f, const struct filter_batch *b,
                              float *scores, uint8_t *status, uint32_t *labels, struct err *e)
{
	int rc;

	if (labels != NULL)
		for (size_t i = 0; i < b->n; i++)
			labels[i] = FILTER_NO_LABEL;
	if (f->ops->needs_fit && !f->fitted) {
		for (size_t i = 0; i < b->n; i++) {
			scores[i] = NAN;
			status[i] = FILTER_UNFITTED;
		}
		return 0;
	}
	if (f->ops->label != NULL && f->ops->score_label != NULL)
		rc = f->ops->score_label(f, b, scores, status, labels, e);
	else
		rc = f->ops->score(f, b, scores, status, e);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < b->n; i++) {
		if (filter_status_scored(status[i])) {
			if (!isfinite(scores[i])) {
				status[i] = FILTER_NOT_FINITE;
				scores[i] = NAN;
			}
		} else {
			if (status[i] == FILTER_PENDING) /* a type may not leave a row pending */
				status[i] = FILTER_EXCLUDED;
			scores[i] = NAN;
		}
		if (labels != NULL && !filter_status_scored(status[i]))
			labels[i] = FILTER_NO_LABEL;
	}
	return 0;
}

int filter_explain(const struct filter *f, uint64_t row, json_t **out, struct err *e)
{
	*out = NULL;
	if (f->ops->explain == NULL || (f->ops->needs_fit && !f->fitted))
		return 0;
	return f->ops->explain(f, row, out, e);
}

int filter_use(struct filter *f, const struct filter *other, struct err *e)
{
	if (f->ops->use == NULL)
		return err_set(e, ERR_INVALID, "no_use", "filter type '%s' uses no other filter",
		               f->ops->name);
	return f->ops->use(f, other, e);
}

int filter_rescore(const struct filter *f, const float *query, uint32_t dim, size_t n,
                   const uint64_t *rows, const float *raw, float *out, struct err *e)
{
	int rc = 0;

	if (f->ops->rescore == NULL) {
		for (size_t i = 0; i < n; i++)
			out[i] = raw[i];
	} else {
		rc = f->ops->rescore(f, query, dim, n, rows, raw, out, e);
	}
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (!isfinite(out[i]))
			out[i] = -INFINITY;
	return rc;
}

const char *filter_status_name(const struct filter_ops *ops, uint8_t status)
{
	static const char *const names[] = {
		[FILTER_PENDING] = "pending",       [FILTER_SCORED] = "scored",
		[FILTER_NO_VECTOR] = "no_vector",   [FILTER_ZERO_VECTOR] = "zero_vector",
		[FILTER_NO_FIELD] = "no_field",     [FILTER_BAD_FIELD] = "bad_field",
		[FILTER_NOT_FINITE] = "not_finite", [FILTER_UNFITTED] = "unfitted",
		[FILTER_EXCLUDED] = "excluded",
	};
	static const char *const reason_n[] = {"reason_0", "reason_1", "reason_2", "reason_3",
	                                       "reason_4", "reason_5", "reason_6", "reason_7"};

	if (status < FILTER_REASON_BASE) {
		if (status < sizeof names / sizeof names[0] && names[status] != NULL)
			return names[status];
		return "unscorable";
	}
	if (ops != NULL && ops->reasons != NULL) {
		size_t i = 0;

		for (; ops->reasons[i] != NULL; i++)
			if (i == (size_t)(status - FILTER_REASON_BASE))
				return ops->reasons[i];
	}
	if ((size_t)(status - FILTER_REASON_BASE) < sizeof reason_n / sizeof reason_n[0])
		return reason_n[status - FILTER_REASON_BASE];
	return "reason";
}

int filter_scan_next(struct filter_scan *scan, const struct filter_batch **b, struct err *e)
{
	return scan->next(scan, b, e);
}

int filter_scan_ext_next(struct filter_scan *scan, const struct filter_batch **b,
                         struct err *e)
{
	return ((struct filter_scan_ext *)scan)->next(scan, b, e);
}

int filter_scan_open_other(struct filter_scan *scan, const char *dataset,
                           struct filter_scan **out, struct err *e)
{
	struct filter_scan_ext *x = (struct filter_scan_ext *)scan;

	if (scan->next != filter_scan_ext_next || x->open_other == NULL)
		return err_set(e, ERR_INVALID, "no_other_datasets",
		               "this fit reads only its own dataset, not '%s'", dataset);
	return x->open_other(scan, dataset, out, e);
}

void filter_scan_close_other(struct filter_scan *scan, struct filter_scan *other)
{
	struct filter_scan_ext *x = (struct filter_scan_ext *)scan;

	if (other != NULL && scan->next == filter_scan_ext_next && x->close_other != NULL)
		x->close_other(other);
}

/* ---- param helpers ---- */

int filter_params_known(const json_t *params, const char *const *allowed, struct err *e)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)params, key, v) {
		size_t i;

		(void)v;
		for (i = 0; allowed[i] != NULL; i++)
			if (strcmp(key, allowed[i]) == 0)
				break;
		if (allowed[i] == NULL) {
			char list[256] = "";

			for (i = 0; allowed[i] != NULL; i++) {
				if (i > 0)
					strncat(list, ", ", sizeof list - strlen(list) - 1);
				strncat(list, allowed[i], sizeof list - strlen(list) - 1);
			}
			return err_set(e, ERR_INVALID, "unknown_param",
			               "unknown param '%s' (this type takes: %s)", key,
			               list[0] ? list : "none");
		}
	}
	return 0;
}

int filter_param_space(const json_t *params, const char *key, const struct store_schema *schema,
                       int required, unsigned *space, struct err *e)
{
	const json_t *v = json_object_get(params, key);
	int idx;

	if (v == NULL)
		return required ? err_set(e, ERR_INVALID, "bad_param",
		                          "param '%s' is required: the name of an embedding space",
		                          key)
		                : 0;
	if (!json_is_string(v))
		return err_set(e, ERR_INVALID, "bad_param", "param '%s' must be a space name", key);
	idx = store_schema_find(schema, json_string_value(v));
	if (idx < 0)
		return err_set(e, ERR_INVALID, "bad_param",
		               "param '%s': the dataset has no space '%s'", key, json_string_value(v));
	*space = (unsigned)idx;
	return 0;
}

int filter_param_number(const json_t *params, const char *key, double min, double max,
                        int integer, double *out, struct err *e)
{
	const json_t *v = json_object_get(params, key);
	double d;

	if (v == NULL)
		return 0;
	if (integer ? !json_is_integer(v) : !json_is_number(v))
		return err_set(e, ERR_INVALID, "bad_param", "param '%s' must be %s", key,
		               integer ? "an integer" : "a number");
	d = json_number_value(v);
	if (!(d >= min && d <= max))
		return err_set(e, ERR_INVALID, "bad_param", "param '%s' must be in [%g, %g], got %g",
		               key, min, max, d);
	*out = d;
	return 0;
}

int filter_param_bool(const json_t *params, const char *key, int *out, struct err *e)
{
	const json_t *v = json_object_get(params, key);

	if (v == NULL)
		return 0;
	if (!json_is_boolean(v))
		return err_set(e, ERR_INVALID, "bad_param", "param '%s' must be true or false", key);
	*out = json_is_true(v);
	return 0;
}

int filter_param_choice(const json_t *params, const char *key, const char *const *choices,
                        unsigned *out, struct err *e)
{
	const json_t *v = json_object_get(params, key);
	const char *s = json_string_value(v);

	if (v == NULL)
		return 0;
	for (unsigned i = 0; s != NULL && choices[i] != NULL; i++) {
		if (strcmp(s, choices[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return err_set(e, ERR_INVALID, "bad_param", "param '%s' must be one of %s%s%s%s%s", key,
	               choices[0], choices[1] ? ", " : "", choices[1] ? choices[1] : "",
	               choices[1] && choices[2] ? ", " : "",
	               choices[1] && choices[2] ? choices[2] : "");
}
