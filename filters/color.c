/* SPDX-License-Identifier: MIT */
/* color: the CoLoR-Filter score (spec section 2.1) from losses computed elsewhere. Each record
 * carries, in its body, the summed negative log-likelihoods (natural log) of its text under
 * the prior model and under the conditional (downstream-finetuned) model, and the number of
 * scored tokens:
 *
 *   "signals": {"color": {"prior_nll": 41.5, "cond_nll": 38.2, "tokens": 12}}
 *
 * score = prior_nll / tokens - cond_nll / tokens (reduction "mean", the default: the
 * reference's per-token mean, i.e. the per-token log-likelihood ratio), or
 * prior_nll - cond_nll (reduction "sum"). Higher is better: the conditional model likes the
 * record more than the prior does. The param "signal" names another key under "signals" (two
 * scorers can push their triples side by side).
 *
 * Unscorable: no signals object or no entry for the signal, or a field missing (no_field);
 * a field that is not a finite number, a negative NLL, tokens not a positive integer
 * (zero tokens included: there is no mean of nothing) (bad_field).
 *
 * Cheap (scored on ingest and when signals are patched), no fit. Threading: score only reads
 * the instance. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"
#include "filters/filter.h"
#include "filters/registry.h"
#include "store/store.h"

enum color_reduction { COLOR_MEAN, COLOR_SUM };

struct color {
	struct filter base;
	unsigned reduction; /* enum color_reduction */
	char signal[STORE_NAME_MAX + 1];
};

static int color_create(struct filter *f, const json_t *params, const struct store_schema *schema,
                        struct err *e)
{
	static const char *const known[] = {"reduction", "signal", NULL};
	static const char *const reductions[] = {"mean", "sum", NULL};
	struct color *c = (struct color *)f;
	const json_t *sig = json_object_get(params, "signal");
	int rc;

	(void)schema;
	c->reduction = COLOR_MEAN;
	snprintf(c->signal, sizeof c->signal, "color");
	if ((rc = filter_params_known(params, known, e)) != 0 ||
	    (rc = filter_param_choice(params, "reduction", reductions, &c->reduction, e)) != 0)
		return rc;
	if (sig != NULL) {
		if (!json_is_string(sig) || !store_name_valid(json_string_value(sig)))
			return err_set(e, ERR_INVALID, "bad_param",
			               "param 'signal' must be a key under \"signals\": 1 to 64 "
			               "characters of [A-Za-z0-9._-]");
		snprintf(c->signal, sizeof c->signal, "%s", json_string_value(sig));
	}
	f->needs = FILTER_NEEDS_BODY;
	return 0;
}

/* A field of the triple: 0 with *out, or an unscorable status. */
static int field(const json_t *o, const char *key, double *out)
{
	const json_t *v = json_object_get(o, key);

	if (v == NULL)
		return FILTER_NO_FIELD;
	if (!json_is_number(v) || !isfinite(json_number_value(v)))
		return FILTER_BAD_FIELD;
	*out = json_number_value(v);
	return 0;
}

static void color_one(const struct color *c, const json_t *body, float *score, uint8_t *status)
{
	const json_t *sig = json_object_get(body, "signals");
	const json_t *o = json_object_get(sig, c->signal);
	double prior = 0, cond = 0, tokens = 0;
	int st;

	*score = NAN;
	if (o == NULL) {
		*status = FILTER_NO_FIELD;
		return;
	}
	if (!json_is_object(o)) {
		*status = FILTER_BAD_FIELD;
		return;
	}
	if ((st = field(o, "prior_nll", &prior)) != 0 || (st = field(o, "cond_nll", &cond)) != 0 ||
	    (st = field(o, "tokens", &tokens)) != 0) {
		*status = (uint8_t)st;
		return;
	}
	if (prior < 0 || cond < 0 || !(tokens >= 1) || tokens != floor(tokens)) {
		*status = FILTER_BAD_FIELD;
		return;
	}
	/* (p - c) / n rather than p/n - c/n: one rounding less, same value in exact arithmetic */
	*score = (float)(c->reduction == COLOR_SUM ? prior - cond : (prior - cond) / tokens);
	*status = FILTER_SCORED;
}

static int color_score(const struct filter *f, const struct filter_batch *b, float *scores,
                       uint8_t *status, struct err *e)
{
	(void)e;
	for (size_t i = 0; i < b->n; i++)
		color_one((const struct color *)f, b->bodies[i], &scores[i], &status[i]);
	return 0;
}

const struct filter_ops color_filter_ops = {
	.name = "color",
	.summary = "CoLoR-Filter: prior minus conditional NLL per token, from pushed signals "
	           "(Brandfonbrener et al. 2024; docs/filters.md)",
	.size = sizeof(struct color),
	.cheap = 1,
	.create = color_create,
	.score = color_score,
};
