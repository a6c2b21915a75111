/* SPDX-License-Identifier: MIT */
/* Tests of the color filter (filters/color.c): the spec section 2.5 test vector (mean and sum
 * scores, the tau = 3 selection), unscorable records and params. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "filters/filter.h"
#include "filters/registry.h"
#include "algo/select.h"
#include "store/store.h"
#include "tests/harness.h"

static struct filter *make(const char *params, int *rc, struct err *e)
{
	struct filter *f = NULL;
	json_t *p = params ? json_loads(params, 0, NULL) : NULL;
	struct store_schema sc;

	memset(&sc, 0, sizeof sc);
	sc.kinds = STORE_KIND_TEXT;
	err_clear(e);
	*rc = filter_create(&f, registry_find("color"), p, &sc, e);
	json_decref(p);
	return f;
}

/* Score n bodies (JSON texts) with f. */
static int score_bodies(const struct filter *f, const char *const *texts, size_t n,
                        float *scores, uint8_t *status)
{
	json_t *bodies[16] = {0};
	uint64_t rows[16];
	struct filter_batch b = {.n = n, .rows = rows, .bodies = bodies};
	int rc;

	for (size_t i = 0; i < n; i++) {
		rows[i] = i;
		bodies[i] = json_loads(texts[i], 0, NULL);
	}
	rc = filter_score_batch(f, &b, scores, status, NULL);
	for (size_t i = 0; i < n; i++)
		json_decref(bodies[i]);
	return rc;
}

/* Spec 2.5: per-token NLL of 6 sequences, 4 scored tokens each. The records carry the sums,
 * as an offline scorer pushes them. */
static const double prior_tok[6][4] = {{2, 3, 2.5, 2.5}, {1, 1.2, .8, 1}, {4, 4.2, 3.8, 4},
                                       {2.2, 2, 2.4, 2.2}, {3, 3, 3, 3},    {1.5, 1.7, 1.6, 1.6}};
static const double cond_tok[6][4] = {{1.5, 2.5, 2, 2}, {1.1, 1.3, .9, 1.1}, {3, 3.2, 2.8, 3},
                                      {2.1, 1.9, 2.3, 2.1}, {2.9, 3.1, 3, 3}, {1.1, 1.3, 1.2, 1.2}};

static void spec_bodies(char buf[6][160], const char *texts[6])
{
	for (int i = 0; i < 6; i++) {
		double p = 0, c = 0;

		for (int t = 0; t < 4; t++) {
			p += prior_tok[i][t];
			c += cond_tok[i][t];
		}
		snprintf(buf[i], 160,
		         "{\"text\": \"r%d\", \"signals\": {\"color\": {\"prior_nll\": %.17g, "
		         "\"cond_nll\": %.17g, \"tokens\": 4}}}",
		         i, p, c);
		texts[i] = buf[i];
	}
}

static void test_spec_vector(void)
{
	static const double mean[6] = {0.5, -0.1, 1.0, 0.1, 0.0, 0.4};
	static const double sum[6] = {2, -0.4, 4, 0.4, 0, 1.6};
	char buf[6][160];
	const char *texts[6];
	float s[6];
	uint8_t st[6], keep[6];
	size_t k = 99, kept = 0;
	struct err e;
	int rc;
	struct filter *f = make(NULL, &rc, &e);

	CHECK_INT(rc, 0);
	spec_bodies(buf, texts);
	CHECK_INT(score_bodies(f, texts, 6, s, st), 0);
	for (int i = 0; i < 6; i++) {
		CHECK_INT(st[i], FILTER_SCORED);
		CHECK_NEAR(s[i], mean[i], 1e-6);
	}
	/* tau = 3: k = floor(6 / 3) = 2, the selected set is {2, 0} */
	CHECK_INT(select_color_k(6, 3.0, &k), 0);
	CHECK_INT(k, 2);
	CHECK_INT(select_top_k(s, 6, k, NULL, &kept, keep), 0);
	CHECK_INT(kept, 2);
	for (int i = 0; i < 6; i++)
		CHECK_INT(keep[i], i == 0 || i == 2);
	filter_free(f);

	f = make("{\"reduction\": \"sum\"}", &rc, &e);
	CHECK_INT(rc, 0);
	CHECK_INT(score_bodies(f, texts, 6, s, st), 0);
	for (int i = 0; i < 6; i++) {
		CHECK_INT(st[i], FILTER_SCORED);
		CHECK_NEAR(s[i], sum[i], 1e-5);
	}
	CHECK_INT(select_top_k(s, 6, k, NULL, &kept, keep), 0);
	for (int i = 0; i < 6; i++)
		CHECK_INT(keep[i], i == 0 || i == 2); /* same order here (spec 2.5) */
	filter_free(f);
}

/* Mean and sum rank variable-length records differently (spec 2.1). */
static void test_mean_vs_sum(void)
{
	static const char *const texts[] = {
		"{\"signals\": {\"color\": {\"prior_nll\": 30, \"cond_nll\": 20, \"tokens\": 100}}}",
		"{\"signals\": {\"color\": {\"prior_nll\": 3, \"cond_nll\": 1, \"tokens\": 4}}}",
	};
	float s[2];
	uint8_t st[2];
	struct err e;
	int rc;
	struct filter *f = make("{\"reduction\": \"mean\"}", &rc, &e);

	CHECK_INT(rc, 0);
	CHECK_INT(score_bodies(f, texts, 2, s, st), 0);
	CHECK_NEAR(s[0], 0.1, 1e-7);
	CHECK_NEAR(s[1], 0.5, 1e-7);
	filter_free(f);
	f = make("{\"reduction\": \"sum\"}", &rc, &e);
	CHECK_INT(rc, 0);
	CHECK_INT(score_bodies(f, texts, 2, s, st), 0);
	CHECK_NEAR(s[0], 10, 1e-6);
	CHECK_NEAR(s[1], 2, 1e-6);
	filter_free(f);
}

static void test_unscorable(void)
{
	static const struct {
		const char *body;
		const char *status;
	} rows[] = {
		{"{\"text\": \"no signals\"}", "no_field"},
		{"{\"signals\": {\"clip\": 0.3}}", "no_field"},
		{"{\"signals\": {\"color\": 1.5}}", "bad_field"},
		{"{\"signals\": {\"color\": {\"prior_nll\": 3, \"tokens\": 4}}}", "no_field"},
		{"{\"signals\": {\"color\": {\"cond_nll\": 3, \"tokens\": 4}}}", "no_field"},
		{"{\"signals\": {\"color\": {\"prior_nll\": 3, \"cond_nll\": 2}}}", "no_field"},
		{"{\"signals\": {\"color\": {\"prior_nll\": 3, \"cond_nll\": 2, \"tokens\": 0}}}",
		 "bad_field"},
		{"{\"signals\": {\"color\": {\"prior_nll\": 0, \"cond_nll\": 0, \"tokens\": 0}}}",
		 "bad_field"},
		{"{\"signals\": {\"color\": {\"prior_nll\": 3, \"cond_nll\": 2, \"tokens\": -2}}}",
		 "bad_field"},
		{"{\"signals\": {\"color\": {\"prior_nll\": 3, \"cond_nll\": 2, \"tokens\": 2.5}}}",
		 "bad_field"},
		{"{\"signals\": {\"color\": {\"prior_nll\": -3, \"cond_nll\": 2, \"tokens\": 2}}}",
		 "bad_field"},
		{"{\"signals\": {\"color\": {\"prior_nll\": \"3\", \"cond_nll\": 2, \"tokens\": 2}}}",
		 "bad_field"},
		{"{\"signals\": {\"color\": {\"prior_nll\": 3, \"cond_nll\": null, \"tokens\": 2}}}",
		 "bad_field"},
		/* an integral float token count and zero losses are fine */
		{"{\"signals\": {\"color\": {\"prior_nll\": 0, \"cond_nll\": 0, \"tokens\": 2.0}}}",
		 "scored"},
		/* a huge difference overflows float: the wrapper makes it not_finite */
		{"{\"signals\": {\"color\": {\"prior_nll\": 1e300, \"cond_nll\": 0, \"tokens\": 1}}}",
		 "not_finite"},
	};
	size_t n = sizeof rows / sizeof rows[0];
	const char *texts[16];
	float s[16];
	uint8_t st[16];
	struct err e;
	int rc;
	struct filter *f = make(NULL, &rc, &e);

	CHECK_INT(rc, 0);
	for (size_t i = 0; i < n; i++)
		texts[i] = rows[i].body;
	CHECK_INT(score_bodies(f, texts, n, s, st), 0);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(filter_status_name(f->ops, st[i]), rows[i].status) != 0)
			fprintf(stderr, "row %zu: %s\n", i, filter_status_name(f->ops, st[i]));
		CHECK_STR(filter_status_name(f->ops, st[i]), rows[i].status);
		CHECK(filter_status_scored(st[i]) ? s[i] == 0 : isnan(s[i]));
	}
	/* a NULL body (the scan could not parse it) is no_field */
	{
		json_t *bodies[1] = {NULL};
		uint64_t row = 0;
		struct filter_batch b = {.n = 1, .rows = &row, .bodies = bodies};

		CHECK_INT(filter_score_batch(f, &b, s, st, NULL), 0);
		CHECK_INT(st[0], FILTER_NO_FIELD);
	}
	filter_free(f);
}

static void test_params(void)
{
	static const char *const bad[] = {
		"{\"reduction\": \"median\"}", "{\"reduction\": 1}", "{\"signal\": 3}",
		"{\"signal\": \"\"}",          "{\"signal\": \"a/b\"}", "{\"tau\": 3}",
	};
	static const char *const texts[] = {
		"{\"signals\": {\"lm2\": {\"prior_nll\": 8, \"cond_nll\": 6, \"tokens\": 4}, "
		"\"color\": {\"prior_nll\": 1, \"cond_nll\": 1, \"tokens\": 1}}}",
	};
	float s[1];
	uint8_t st[1];
	struct err e;
	int rc;
	struct filter *f;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		f = make(bad[i], &rc, &e);
		CHECK_INT(rc, ERR_INVALID);
		CHECK(f == NULL);
		CHECK(strstr(e.detail, "param") != NULL);
	}
	f = make("{\"signal\": \"lm2\"}", &rc, &e);
	CHECK_INT(rc, 0);
	CHECK(f->ops->cheap && !f->ops->needs_fit && (f->needs & FILTER_NEEDS_BODY));
	CHECK_INT(score_bodies(f, texts, 1, s, st), 0);
	CHECK_INT(st[0], FILTER_SCORED);
	CHECK_NEAR(s[0], 0.5, 1e-7);
	filter_free(f);
}

int main(void)
{
	HARNESS_RUN(test_spec_vector);
	HARNESS_RUN(test_mean_vs_sum);
	HARNESS_RUN(test_unscorable);
	HARNESS_RUN(test_params);
	return harness_done();
}
