/* SPDX-License-Identifier: MIT */
/* recommend: the :recommend verb of a filter (see recommend.h and docs/filters.md).
 *
 * The request is checked whole before anything is computed: every bad field becomes one
 * entry of the 422's errors[] ({field, code, detail}), so a caller fixes them in one round.
 * The answer is computed from one read of the filter's scores; nothing is written. */
#include "api/recommend.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo/scaling.h"
#include "algo/select.h"
#include "api/http.h"
#include "curate/instance.h"
#include "daemon/daemon.h"
#include "lib/err.h"

#define DEFAULT_BUCKETS 10
#define DEFAULT_A_UPPER 0.1
#define DEFAULT_SEED    1

struct rq {
	const char *prefix; /* before every field name: "" or "steps[2].recommend." */
	double n;
	size_t nb; /* the layout: bucket_count */
	double pool;
	int pool_given;
	int scale_c;
	int fitted;
	double a; /* NaN: not given */
	double d;
	struct scaling_params given;
	struct scaling_obs *obs;
	size_t nobs;
	size_t fit_buckets; /* 1 + the largest observed bucket */
	double a_upper;
	uint64_t seed, max_eval;
	json_t *errors;
};

static void bad(struct rq *q, const char *field, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void bad(struct rq *q, const char *field, const char *code, const char *fmt, ...)
{
	char detail[256], full[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	snprintf(full, sizeof full, "%s%s", q->prefix, field);
	json_array_append_new(
	    q->errors, json_pack("{s:s, s:s, s:s}", "field", full, "code", code, "detail", detail));
}

/* A finite number at key of o, or NaN with an error naming field when it is there but not
 * one; absent: NaN and *present 0. */
static double number(struct rq *q, const json_t *o, const char *key, const char *field,
                     int *present)
{
	const json_t *v = json_object_get(o, key);

	*present = v != NULL;
	if (v == NULL)
		return NAN;
	if (!json_is_number(v) || !isfinite(json_number_value(v))) {
		bad(q, field, "not_a_number", "%s must be a finite number", field);
		return NAN;
	}
	return json_number_value(v);
}

static void unknown_keys(struct rq *q, const json_t *o, const char *const *known,
                         const char *prefix)
{
	const char *k;
	json_t *v;

	json_object_foreach ((json_t *)o, k, v) {
		size_t i;
		char field[96];

		for (i = 0; known[i] != NULL && strcmp(known[i], k) != 0; i++)
			;
		if (known[i] != NULL)
			continue;
		snprintf(field, sizeof field, "%s%s", prefix, k);
		bad(q, field, "unknown_field", "unknown field '%s'", field);
	}
}

static void parse_buckets(struct rq *q, const json_t *arr)
{
	size_t i;
	json_t *v;

	if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > q->nb) {
		bad(q, "buckets", "bad_bucket_count",
		    "buckets must be an array of 1 to bucket_count (%zu) objects {b, c}, the top "
		    "buckets of the ranking first",
		    q->nb);
		return;
	}
	q->given.nbuckets = json_array_size(arr);
	json_array_foreach (arr, i, v) {
		static const char *const known[] = {"b", "c", NULL};
		char prefix[32], fb[40], fc[40];
		int has_b, has_c;
		double b, c;

		snprintf(prefix, sizeof prefix, "buckets[%zu].", i);
		snprintf(fb, sizeof fb, "buckets[%zu].b", i);
		snprintf(fc, sizeof fc, "buckets[%zu].c", i);
		if (!json_is_object(v)) {
			snprintf(fb, sizeof fb, "buckets[%zu]", i);
			bad(q, fb, "not_an_object", "%s must be an object {b, c}", fb);
			continue;
		}
		unknown_keys(q, v, known, prefix);
		b = number(q, v, "b", fb, &has_b);
		c = number(q, v, "c", fc, &has_c);
		if (!has_b)
			bad(q, fb, "missing_field", "%s is required", fb);
		else if (b >= 0)
			bad(q, fb, "out_of_range", "%s must be < 0 (a bucket's utility), got %g",
			    fb, b);
		if (!has_c)
			bad(q, fc, "missing_field", "%s is required", fc);
		else if (c <= 0)
			bad(q, fc, "out_of_range",
			    "%s must be > 0 (a half-life in repetitions), got %g", fc, c);
		q->given.b[i] = b;
		q->given.c[i] = c;
	}
}

static void parse_observations(struct rq *q, const json_t *arr)
{
	int seen[SCALING_MAX_BUCKETS] = {0};
	size_t i;
	json_t *v;

	if (!json_is_array(arr) || json_array_size(arr) == 0 ||
	    json_array_size(arr) > SCALING_MAX_OBSERVATIONS) {
		bad(q, "observations", "bad_observation_count",
		    "observations must be an array of 1 to %d objects {bucket, samples_seen, "
		    "error}",
		    SCALING_MAX_OBSERVATIONS);
		return;
	}
	q->obs = calloc(json_array_size(arr), sizeof *q->obs);
	if (q->obs == NULL)
		return; /* the caller answers 500 */
	q->nobs = json_array_size(arr);
	json_array_foreach (arr, i, v) {
		static const char *const known[] = {"bucket", "samples_seen", "error", NULL};
		const json_t *bk = json_object_get(v, "bucket");
		char prefix[40], f[64];
		int has;

		snprintf(prefix, sizeof prefix, "observations[%zu].", i);
		if (!json_is_object(v)) {
			snprintf(f, sizeof f, "observations[%zu]", i);
			bad(q, f, "not_an_object",
			    "%s must be an object {bucket, samples_seen, error}", f);
			continue;
		}
		unknown_keys(q, v, known, prefix);
		snprintf(f, sizeof f, "%sbucket", prefix);
		if (!json_is_integer(bk) || json_integer_value(bk) < 0 ||
		    (size_t)json_integer_value(bk) >= q->nb) {
			bad(q, f, "out_of_range",
			    "%s must be an integer from 0 (the top bucket) to bucket_count - 1 "
			    "(%zu)",
			    f, q->nb - 1);
		} else {
			q->obs[i].bucket = (size_t)json_integer_value(bk);
			seen[q->obs[i].bucket] = 1;
			if (q->obs[i].bucket + 1 > q->fit_buckets)
				q->fit_buckets = q->obs[i].bucket + 1;
		}
		snprintf(f, sizeof f, "%ssamples_seen", prefix);
		q->obs[i].samples_seen = number(q, v, "samples_seen", f, &has);
		if (!has)
			bad(q, f, "missing_field", "%s is required", f);
		else if (q->obs[i].samples_seen < 0)
			bad(q, f, "out_of_range", "%s must be >= 0", f);
		snprintf(f, sizeof f, "%serror", prefix);
		q->obs[i].error = number(q, v, "error", f, &has);
		if (!has)
			bad(q, f, "missing_field", "%s is required", f);
	}
	/* the curve keeps a prefix of the ranking, so the fitted buckets must be one */
	for (size_t b = 0; b < q->fit_buckets; b++)
		if (!seen[b]) {
			bad(q, "observations", "bucket_gap",
			    "bucket %zu has no observations but bucket %zu has: observe every "
			    "bucket "
			    "from the top one down",
			    b, q->fit_buckets - 1);
			break;
		}
}

static void parse_fit(struct rq *q, const json_t *fit)
{
	static const char *const known[] = {"a_upper", "seed", "max_evaluations", NULL};
	const json_t *v;
	int has;

	if (fit == NULL)
		return;
	if (!json_is_object(fit)) {
		bad(q, "fit", "not_an_object",
		    "fit must be an object {a_upper, seed, max_evaluations}");
		return;
	}
	if (!q->fitted)
		bad(q, "fit", "fit_without_observations", "fit goes with observations");
	unknown_keys(q, fit, known, "fit.");
	q->a_upper = number(q, fit, "a_upper", "fit.a_upper", &has);
	if (!has)
		q->a_upper = DEFAULT_A_UPPER;
	else if (!(q->a_upper > SCALING_A_LO))
		bad(q, "fit.a_upper", "out_of_range",
		    "fit.a_upper must be > %g (the a grid's start)", SCALING_A_LO);
	v = json_object_get(fit, "seed");
	if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 0))
		bad(q, "fit.seed", "out_of_range", "fit.seed must be an integer >= 0");
	else if (v != NULL)
		q->seed = (uint64_t)json_integer_value(v);
	v = json_object_get(fit, "max_evaluations");
	if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 1 ||
	                  json_integer_value(v) > SCALING_MAX_EVALUATIONS))
		bad(q, "fit.max_evaluations", "out_of_range",
		    "fit.max_evaluations must be an integer from 1 to %d", SCALING_MAX_EVALUATIONS);
	else if (v != NULL)
		q->max_eval = (uint64_t)json_integer_value(v);
}

/* Everything that does not need the dataset. */
static void parse(struct rq *q, const json_t *body)
{
	static const char *const known[] = {
	    "budget_samples", "bucket_count", "pool_size", "scale_c", "a", "d",
	    "buckets",        "observations", "fit",       NULL};
	const json_t *v, *bk, *ob;
	int has;

	q->a = NAN;
	q->scale_c = 1;
	q->nb = DEFAULT_BUCKETS;
	q->a_upper = DEFAULT_A_UPPER;
	q->seed = DEFAULT_SEED;
	q->max_eval = SCALING_MAX_EVALUATIONS;
	if (!json_is_object(body)) {
		bad(q, "", "not_an_object", "the recommendation request must be a JSON object");
		return;
	}
	unknown_keys(q, body, known, "");
	q->n = number(q, body, "budget_samples", "budget_samples", &has);
	if (!has)
		bad(q, "budget_samples", "missing_field",
		    "budget_samples (the training budget in samples seen) is required");
	else if (q->n < 0)
		bad(q, "budget_samples", "out_of_range", "budget_samples must be >= 0");
	v = json_object_get(body, "bucket_count");
	if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 1 ||
	                  json_integer_value(v) > SCALING_MAX_BUCKETS))
		bad(q, "bucket_count", "out_of_range",
		    "bucket_count must be an integer from 1 to %d", SCALING_MAX_BUCKETS);
	else if (v != NULL)
		q->nb = (size_t)json_integer_value(v);
	q->pool = number(q, body, "pool_size", "pool_size", &q->pool_given);
	v = json_object_get(body, "scale_c");
	if (v != NULL && !json_is_boolean(v))
		bad(q, "scale_c", "not_a_boolean", "scale_c must be true or false");
	else if (v != NULL)
		q->scale_c = json_is_true(v);
	q->d = number(q, body, "d", "d", &has);
	if (!has)
		bad(q, "d", "missing_field",
		    "d (the error offset) is required; the fit holds it fixed");
	else if (!isnan(q->d) && !(q->d >= 0 && q->d < 1))
		bad(q, "d", "out_of_range", "d must be in [0, 1), got %g", q->d);
	q->a = number(q, body, "a", "a", &has);
	if (has && !isnan(q->a) && !(q->a > 0))
		bad(q, "a", "out_of_range", "a must be > 0, got %g", q->a);
	bk = json_object_get(body, "buckets");
	ob = json_object_get(body, "observations");
	if ((bk == NULL) == (ob == NULL)) {
		bad(q, bk ? "observations" : "buckets", "one_of",
		    "give either buckets [{b, c}] (parameters) or observations [{bucket, "
		    "samples_seen, error}] (to fit them), not %s",
		    bk ? "both" : "neither");
		return;
	}
	q->fitted = ob != NULL;
	if (!q->fitted && !has)
		bad(q, "a", "missing_field", "a is required with buckets");
	if (q->fitted)
		parse_observations(q, ob);
	else
		parse_buckets(q, bk);
	parse_fit(q, json_object_get(body, "fit"));
}

/* Checks that need the pool size. */
static void check_pool(struct rq *q, double S)
{
	if (!(S >= 1)) {
		bad(q, "pool_size", "out_of_range",
		    "pool_size / bucket_count must be >= 1 sample a bucket, got %g", S);
		return;
	}
	if (!(q->n / S <= SCALING_MAX_REPEATS))
		bad(q, "budget_samples", "budget_too_large",
		    "budget_samples / bucket size (%g) is %g repetitions; the bound is %g", S,
		    q->n / S, SCALING_MAX_REPEATS);
	for (size_t i = 0; q->fitted && i < q->nobs; i++)
		if (!(q->obs[i].samples_seen / S <= SCALING_MAX_OBS_REPEATS)) {
			char f[64];

			snprintf(f, sizeof f, "observations[%zu].samples_seen", i);
			bad(q, f, "out_of_range",
			    "%s is %g repetitions of a bucket (%g samples); the bound for a "
			    "small-scale run is %g",
			    f, q->obs[i].samples_seen / S, S, SCALING_MAX_OBS_REPEATS);
		}
}

/* One point of the curve: keep the top m of nb buckets. */
static json_t *point(size_t m, size_t nb, double y, const float *vals, size_t nv)
{
	double f = (double)m / (double)nb;
	json_t *o = json_pack("{s:I, s:f, s:f, s:f}", "m", (json_int_t)m, "keep_fraction", f,
	                      "predicted_error", y, "predicted_accuracy", 1 - y);
	float thr = NAN;
	size_t kept = 0;

	if (o == NULL)
		return NULL;
	/* the threshold a subset step {"top_fraction": f} applies (DataComp semantics) */
	if (nv > 0 && select_top_fraction(vals, nv, f, &thr, &kept, NULL) == 0) {
		json_object_set_new(o, "threshold", json_real(thr));
		json_object_set_new(o, "kept", json_integer((json_int_t)kept));
	} else {
		json_object_set_new(o, "threshold", json_null());
		json_object_set_new(o, "kept", json_integer(0));
	}
	return o;
}

static json_t *warnings(const struct rq *q, const struct scaling_params *p)
{
	json_t *w = json_array();
	char s[256];

	for (size_t i = 1; i < p->nbuckets; i++)
		if (p->b[i] < p->b[i - 1]) {
			snprintf(
			    s, sizeof s,
			    "bucket %zu has a better utility (b %g) than bucket %zu (b %g): the "
			    "filter's ranking does not order these buckets by utility; the curve "
			    "still keeps a prefix of the ranking",
			    i, p->b[i], i - 1, p->b[i - 1]);
			json_array_append_new(w, json_string(s));
		}
	for (size_t i = 0; q->fitted && i < p->nbuckets; i++)
		if (p->b[i] == SCALING_B_LO || p->b[i] == SCALING_B_HI || p->c[i] == SCALING_C_LO ||
		    p->c[i] == SCALING_C_HI) {
			snprintf(s, sizeof s,
			         "bucket %zu: the fitted b %g or c %g is at the edge of its grid "
			         "(b in [%g, %g], c in [%g, %g]): the true value may lie outside",
			         i, p->b[i], p->c[i], SCALING_B_LO, SCALING_B_HI, SCALING_C_LO,
			         SCALING_C_HI);
			json_array_append_new(w, json_string(s));
		}
	if (q->fitted && isnan(q->a) && (p->a == SCALING_A_LO || p->a == q->a_upper)) {
		snprintf(s, sizeof s, "the fitted a %g is at the edge of its grid [%g, %g]", p->a,
		         SCALING_A_LO, q->a_upper);
		json_array_append_new(w, json_string(s));
	}
	return w;
}

/* The answer to body (borrowed) for filter name of dataset. ERR_INVALID with *errors (new,
 * non-empty) when fields are bad; other codes with e set; *out new on success. */
static int compute(struct core *core, const char *dataset, const char *name, const json_t *body,
                   const char *prefix, json_t **out_json, json_t **errors, struct err *e)
{
	struct rq q;
	struct scaling_params p;
	struct scaling_fit_result fr;
	json_t *out = NULL, *bj, *curve;
	float *vals = NULL;
	size_t nv = 0, best = 1;
	uint64_t version = 0;
	double S, y[SCALING_MAX_BUCKETS];
	int rc;

	memset(&q, 0, sizeof q);
	q.prefix = prefix;
	q.errors = json_array();
	if (q.errors == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	parse(&q, body);
	if (q.fitted && q.obs == NULL && json_array_size(q.errors) == 0) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	if (json_array_size(q.errors) > 0)
		goto invalid;
	if ((rc = instance_scores(core, dataset, name, &vals, &nv, &version, e)) != 0)
		goto out;
	if (!q.pool_given) {
		if (nv == 0) {
			rc = err_set(
			    e, ERR_CONFLICT, "no_scores",
			    "filter '%s' has no scores yet: wait for its scoring job, or give "
			    "pool_size",
			    name);
			goto out;
		}
		q.pool = (double)nv;
	}
	S = q.pool / (double)q.nb;
	check_pool(&q, S);
	if (json_array_size(q.errors) > 0)
		goto invalid;

	if (q.fitted) {
		struct scaling_fit_opts o = {.d = q.d,
		                             .a = q.a,
		                             .a_upper = q.a_upper,
		                             .seed = q.seed,
		                             .max_evaluations = q.max_eval};

		if ((rc = scaling_fit(q.obs, q.nobs, q.fit_buckets, S, &o, &fr)) != 0) {
			err_set(e, rc, rc == ERR_NOMEM ? "out_of_memory" : "internal",
			        "the fit failed");
			goto out;
		}
		p = fr.params;
	} else {
		p = q.given;
		p.a = q.a;
		p.d = q.d;
	}
	if ((rc = scaling_curve(&p, S, q.n, q.scale_c, y, &best)) != 0) {
		err_set(e, rc, "internal", "the curve could not be computed");
		goto out;
	}

	curve = json_array();
	for (size_t m = 1; m <= p.nbuckets; m++)
		json_array_append_new(curve, point(m, q.nb, y[m - 1], vals, nv));
	bj = json_array();
	for (size_t i = 0; i < p.nbuckets; i++)
		json_array_append_new(bj, json_pack("{s:I, s:f, s:f}", "bucket", (json_int_t)i, "b",
		                                    p.b[i], "c", p.c[i]));
	out =
	    json_pack("{s:s, s:I, s:f, s:I, s:f, s:s, s:f, s:I, s:b, "
	              "s:{s:s, s:f, s:f, s:o}, s:o}",
	              "filter", name, "version", (json_int_t)version, "budget_samples", q.n,
	              "bucket_count", (json_int_t)q.nb, "pool_size", q.pool, "pool_size_source",
	              q.pool_given ? "given" : "scores", "bucket_size", S, "scored", (json_int_t)nv,
	              "scale_c", q.scale_c, "parameters", "source", q.fitted ? "fitted" : "given",
	              "a", p.a, "d", p.d, "buckets", bj, "curve", curve);
	if (out == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	{
		json_t *bp = json_array_get(curve, best - 1);

		json_object_set_new(out, "best_m", json_integer((json_int_t)best));
		json_object_set(out, "keep_fraction", json_object_get(bp, "keep_fraction"));
		json_object_set(out, "predicted_error", json_object_get(bp, "predicted_error"));
		json_object_set(out, "predicted_accuracy",
		                json_object_get(bp, "predicted_accuracy"));
		json_object_set(out, "threshold", json_object_get(bp, "threshold"));
		json_object_set(out, "kept", json_object_get(bp, "kept"));
	}
	if (q.fitted) {
		json_t *br = json_array();

		for (size_t i = 0; i < p.nbuckets; i++)
			json_array_append_new(br, json_real(fr.bucket_residual[i]));
		json_object_set_new(
		    out, "fit",
		    json_pack("{s:f, s:f, s:I, s:I, s:I, s:I, s:s, s:o}", "residual", fr.residual,
		              "rmse", sqrt(fr.residual / (double)q.nobs), "observations",
		              (json_int_t)q.nobs, "evaluations", (json_int_t)fr.evaluations,
		              "grid_points", (json_int_t)fr.grid_points, "seed", (json_int_t)q.seed,
		              "a", isnan(q.a) ? "searched" : "fixed", "bucket_residuals", br));
		if (isnan(q.a))
			json_object_set_new(json_object_get(out, "fit"), "a_upper",
			                    json_real(q.a_upper));
	}
	json_object_set_new(out, "warnings", warnings(&q, &p));
	*out_json = out;
	rc = 0;
	goto out;

invalid:
	err_set(e, ERR_INVALID, "invalid_recommend_request",
	        "%zu invalid field(s) (see errors), the first: %s: %s", json_array_size(q.errors),
	        json_string_value(json_object_get(json_array_get(q.errors, 0), "field")),
	        json_string_value(json_object_get(json_array_get(q.errors, 0), "detail")));
	*errors = q.errors;
	q.errors = NULL;
	rc = ERR_INVALID;
out:
	free(vals);
	free(q.obs);
	json_decref(q.errors);
	return rc;
}

int recommend_post(struct http_req *r, struct http_res *res)
{
	const char *ds = http_name_param(r, res, 0, "dataset");
	const char *name = ds ? http_name_param(r, res, 1, "filter") : NULL;
	struct err e = {0};
	json_t *body = NULL, *out = NULL, *errors = NULL;
	int rc;

	if (name == NULL || http_body_json(r, res, &body) != 0)
		return 0;
	rc = compute(r->core, ds, name, body, "", &out, &errors, &e);
	json_decref(body);
	if (rc != 0)
		return http_problem(res, r, rc, &e,
		                    errors != NULL ? json_pack("{s:o}", "errors", errors) : NULL);
	return http_json(res, 200, out);
}

int recommend_resolve_steps(struct core *core, const char *dataset, json_t *body, json_t **errors,
                            struct err *e)
{
	json_t *steps = json_object_get(body, "steps"), *st;
	size_t i;

	if (!json_is_array(steps))
		return 0; /* subset_put says what is wrong */
	json_array_foreach (steps, i, st) {
		json_t *req = json_object_get(st, "recommend"), *f, *ans = NULL;
		char prefix[48];
		int rc;

		if (req == NULL || !json_is_object(st))
			continue;
		f = json_object_get(st, "filter");
		if (!json_is_string(f))
			return 0; /* subset_put: "recommend" is not a rule it knows, nor a filter */
		if (json_object_get(st, "top_fraction") != NULL)
			return err_set(e, ERR_INVALID, "bad_step",
			               "step %zu must have exactly one rule: recommend gives the "
			               "top_fraction",
			               i);
		snprintf(prefix, sizeof prefix, "steps[%zu].recommend.", i);
		if ((rc = compute(core, dataset, json_string_value(f), req, prefix, &ans, errors,
		                  e)) != 0)
			return rc;
		/* the step becomes the top fraction it recommends; the inputs and the curve stay
		 * in the definition and the materialisation's provenance */
		json_object_set_new(ans, "request", json_incref(req));
		json_object_set(st, "top_fraction", json_object_get(ans, "keep_fraction"));
		json_object_set_new(st, "recommendation", ans);
		json_object_del(st, "recommend");
	}
	return 0;
}
