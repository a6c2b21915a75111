/* SPDX-License-Identifier: MIT */
/* Tests of the filter framework (filters/filter.c, registry.c, template.c) and of the
 * clip_score, basic and exact_dup types, from tables of (params, input, expected). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "filters/filter.h"
#include "filters/registry.h"
#include "store/store.h"
#include "lib/vec.h"
#include "tests/harness.h"

static struct store_schema schema2(uint32_t dim)
{
	struct store_schema s;

	memset(&s, 0, sizeof s);
	s.nspaces = 3;
	s.kinds = STORE_KIND_IMAGE_TEXT | STORE_KIND_TEXT;
	snprintf(s.spaces[0].name, sizeof s.spaces[0].name, "image");
	snprintf(s.spaces[1].name, sizeof s.spaces[1].name, "text");
	snprintf(s.spaces[2].name, sizeof s.spaces[2].name, "small");
	s.spaces[0].dim = dim;
	s.spaces[1].dim = dim;
	s.spaces[2].dim = dim + 1;
	return s;
}

static struct filter *make(const char *type, const char *params, const struct store_schema *sc,
                           int *rc, struct err *e)
{
	struct filter *f = NULL;
	json_t *p = params ? json_loads(params, 0, NULL) : NULL;

	err_clear(e);
	*rc = filter_create(&f, registry_find(type), p, sc, e);
	json_decref(p);
	return f;
}

static void test_registry(void)
{
	size_t n;
	const struct filter_ops *const *t = registry_table(&n);

	CHECK(n >= 3); /* one line per type in registry.c; other tests check each type */
	for (size_t i = 0; i < n; i++) {
		CHECK(t[i]->name != NULL && t[i]->create != NULL && t[i]->score != NULL);
		CHECK(t[i]->summary != NULL && t[i]->size >= sizeof(struct filter));
		if (i > 0)
			CHECK(strcmp(t[i - 1]->name, t[i]->name) < 0);
		CHECK(registry_find(t[i]->name) == t[i]);
	}
	CHECK(registry_find("nope") == NULL);
	CHECK(registry_find("") == NULL);
	CHECK(registry_find(NULL) == NULL);
}

static void test_clip_vector(void)
{
	struct store_schema sc = schema2(2);
	struct err e;
	int rc;
	struct filter *f = make("clip_score", "{\"image_space\":\"image\",\"text_space\":\"text\"}",
	                        &sc, &rc, &e);
	/* spec 1.6: img (3,4), txt (4,3) -> 0.96; then a missing text vector, a zero image */
	float img[] = {3, 4, 1, 0, 0, 0, -1, 0}, txt[] = {4, 3, 0, 0, 5, 5, 1, 0};
	uint8_t has_img[] = {1, 1, 1, 1}, has_txt[] = {1, 0, 1, 1};
	uint64_t rows[] = {0, 1, 2, 3};
	struct filter_batch b = {.n = 4, .rows = rows};
	float s[4];
	uint8_t st[4];

	CHECK_INT(rc, 0);
	if (f == NULL)
		return;
	CHECK_INT(f->ninputs, 2);
	b.vecs[0] = img;
	b.vecs[1] = txt;
	b.has_vec[0] = has_img;
	b.has_vec[1] = has_txt;
	b.dims[0] = b.dims[1] = 2;
	CHECK_INT(filter_score_batch(f, &b, s, st, NULL), 0);
	CHECK_INT(st[0], FILTER_SCORED);
	CHECK_NEAR(s[0], 0.96, 1e-7);
	CHECK_INT(st[1], FILTER_NO_VECTOR);
	CHECK(isnan(s[1]));
	CHECK_INT(st[2], FILTER_ZERO_VECTOR);
	CHECK(isnan(s[2]));
	CHECK_INT(st[3], FILTER_SCORED);
	CHECK_NEAR(s[3], -1.0, 1e-7);
	CHECK(f->needs & FILTER_ACCEPTS_F16);
	/* the same rows as halves (both sides, then one side): the same scores */
	{
		uint16_t himg[8], htxt[8];
		float s2[4];
		uint8_t st2[4];

		vec_f32_to_f16(img, himg, 8);
		vec_f32_to_f16(txt, htxt, 8);
		b.vecs[0] = b.vecs[1] = NULL;
		b.f16[0] = himg;
		b.f16[1] = htxt;
		CHECK_INT(filter_score_batch(f, &b, s2, st2, NULL), 0);
		CHECK(memcmp(st, st2, sizeof st) == 0);
		CHECK_NEAR(s2[0], 0.96, 1e-7);
		CHECK_NEAR(s2[3], -1.0, 1e-7);
		b.vecs[1] = txt;
		b.f16[1] = NULL;
		CHECK_INT(filter_score_batch(f, &b, s2, st2, NULL), 0);
		CHECK(memcmp(st, st2, sizeof st) == 0);
		CHECK_NEAR(s2[0], 0.96, 1e-7);
	}
	filter_free(f);
}

/* A full batch of 64 rows of 768-d vectors (the scan's shape), as f32 and as f16, against a
 * double-precision cosine of the same values. */
static void test_clip_768(void)
{
	enum { N = 64, D = 768 };
	static float img[N * D], txt[N * D];
	static uint16_t himg[N * D], htxt[N * D];
	uint8_t has[N];
	uint64_t rows[N];
	float s[N];
	uint8_t st[N];
	uint32_t x = 2463534242u;
	struct store_schema sc = schema2(D);
	struct err e;
	int rc;
	struct filter *f = make("clip_score", "{\"image_space\":\"image\",\"text_space\":\"text\"}",
	                        &sc, &rc, &e);
	struct filter_batch b = {.n = N, .rows = rows};
	double worst = 0, worst16 = 0;

	CHECK(f != NULL);
	if (f == NULL)
		return;
	for (size_t i = 0; i < (size_t)N * D; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		img[i] = (float)((double)(x >> 8) / (1 << 24) - 0.5);
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		/* correlated with the image so that the cosines are not all near 0 */
		txt[i] = img[i] * (float)(i % 7) / 7.0f +
		         (float)((double)(x >> 8) / (1 << 24) - 0.5);
	}
	vec_f32_to_f16(img, himg, (size_t)N * D);
	vec_f32_to_f16(txt, htxt, (size_t)N * D);
	for (int i = 0; i < N; i++) {
		has[i] = 1;
		rows[i] = (uint64_t)i;
	}
	b.has_vec[0] = b.has_vec[1] = has;
	b.dims[0] = b.dims[1] = D;
	for (int pass = 0; pass < 2; pass++) {
		b.vecs[0] = pass ? NULL : img;
		b.vecs[1] = pass ? NULL : txt;
		b.f16[0] = pass ? himg : NULL;
		b.f16[1] = pass ? htxt : NULL;
		CHECK_INT(filter_score_batch(f, &b, s, st, NULL), 0);
		for (int i = 0; i < N; i++) {
			double ab = 0, aa = 0, bb = 0, ref;

			for (int k = 0; k < D; k++) {
				size_t at = (size_t)i * D + (size_t)k;
				double p = pass ? vec_f16_to_f32_one(himg[at]) : img[at];
				double q = pass ? vec_f16_to_f32_one(htxt[at]) : txt[at];

				ab += p * q;
				aa += p * p;
				bb += q * q;
			}
			ref = ab / sqrt(aa * bb);
			CHECK_INT(st[i], FILTER_SCORED);
			if (pass)
				worst16 = fmax(worst16, fabs(s[i] - ref));
			else
				worst = fmax(worst, fabs(s[i] - ref));
		}
	}
	/* the cosine is in [-1, 1]: absolute 1e-6 is ~1e-6 relative to |x||t| */
	CHECK(worst < 1e-6);
	CHECK(worst16 < 1e-6);
	CHECK(s[N - 1] > 0.1); /* the correlation shows */
	filter_free(f);
}

static void test_clip_params(void)
{
	static const struct {
		const char *params;
		const char *slug;
	} bad[] = {
		{"{}", "bad_param"},
		{"{\"image_space\":\"image\"}", "bad_param"},
		{"{\"image_space\":\"image\",\"text_space\":\"nope\"}", "bad_param"},
		{"{\"image_space\":\"image\",\"text_space\":\"image\"}", "bad_param"},
		{"{\"image_space\":\"image\",\"text_space\":\"small\"}", "bad_param"},
		{"{\"image_space\":\"image\",\"text_space\":\"text\",\"x\":1}", "unknown_param"},
		{"{\"image_space\":3,\"text_space\":\"text\"}", "bad_param"},
	};
	struct store_schema sc = schema2(4);
	struct err e;
	int rc;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct filter *f = make("clip_score", bad[i].params, &sc, &rc, &e);

		CHECK(f == NULL);
		CHECK_INT(rc, ERR_INVALID);
		CHECK_STR(e.slug, bad[i].slug);
	}
	{
		json_t *arr = json_array();
		struct filter *f = NULL;

		CHECK_INT(filter_create(&f, &clip_score_filter_ops, arr, &sc, &e), ERR_INVALID);
		json_decref(arr);
	}
}

/* basic over a table of (text, width, height, kind) -> (score, status name). */
static void test_basic_table(void)
{
	static const struct {
		const char *body;
		unsigned kind;
		float score;
		const char *status;
	} rows[] = {
		{"{\"text\":\"a red bike\",\"image\":{\"width\":200,\"height\":600}}",
		 1, 1, "scored"},
		{"{\"text\":\"a b\",\"image\":{\"width\":640,\"height\":480}}",
		 1, 0, "too_few_words"},
		{"{\"text\":\"a b c\",\"image\":{\"width\":640,\"height\":480}}",
		 1, 0, "too_short"},
		{"{\"text\":\"abcdefgh\",\"image\":{\"width\":640,\"height\":480}}", 1, 0,
		 "too_few_words"},
		{"{\"text\":\"\",\"image\":{\"width\":640,\"height\":480}}", 1, 0,
		 "too_few_words"},
		/* runs of whitespace, leading and trailing: 3 words, 11 code points */
		{"{\"text\":\"  a  b\\n\\r\\u000bc \",\"image\":{\"width\":640,\"height\":480}}", 1,
		 1, "scored"},
		/* U+00A0, U+0085 and \x1c split; U+200B (zero width space) does not */
		{"{\"text\":\"one\\u00a0two\\u0085three\","
		 "\"image\":{\"width\":640,\"height\":480}}",
		 1, 1, "scored"},
		{"{\"text\":\"one\\u001ctwo\\u2009three\","
		 "\"image\":{\"width\":640,\"height\":480}}",
		 1, 1, "scored"},
		{"{\"text\":\"one\\u200btwo\\u200bthree\","
		 "\"image\":{\"width\":640,\"height\":480}}",
		 1, 0, "too_few_words"},
		/* the first failing predicate wins */
		{"{\"text\":\"ab cd\",\"image\":{\"width\":100,\"height\":900}}", 1, 0,
		 "too_few_words"},
		{"{\"text\":\"a b c\",\"image\":{\"width\":100,\"height\":900}}", 1, 0,
		 "too_short"},
		{"{\"text\":\"a red bike\",\"image\":{\"width\":100,\"height\":900}}", 1, 0,
		 "small_image"},
		{"{\"text\":\"a red bike\",\"image\":{\"width\":600,\"height\":200}}", 1, 1,
		 "scored"},
		{"{\"text\":\"a red bike\",\"image\":{\"width\":601,\"height\":200}}", 1, 0,
		 "bad_aspect"},
		{"{\"text\":\"a red bike\",\"image\":{\"width\":200,\"height\":200}}", 1, 1,
		 "scored"},
		{"{\"text\":\"a red bike\",\"image\":{\"width\":\"640\",\"height\":480}}", 1, NAN,
		 "bad_field"},
		{"{\"text\":\"a red bike\",\"image\":{\"width\":-640,\"height\":480}}", 1, NAN,
		 "bad_field"},
		{"{\"text\":\"a red bike\",\"image\":\"x.jpg\"}", 1, NAN, "bad_field"},
		{"{\"text\":\"ab cd e\",\"image\":{\"width\":640,\"height\":480}}", 1, 1, "scored"},
		/* 5 code points but 8 bytes: Python's len counts code points */
		{"{\"text\":\"\\u00e9 \\u00e9 \\u00e9\",\"image\":{\"width\":640,\"height\":480}}",
		 1, 0, "too_short"},
		{"{\"text\":\"\\u00e9\\u00e9 \\u00e9 \\u00e9\\u00e9\",\"image\":{\"width\":640,"
		 "\"height\":480}}",
		 1, 1, "scored"},
		/* U+3000 and tabs are whitespace for str.split() */
		{"{\"text\":\"one\\u3000two\\tthree\","
		 "\"image\":{\"width\":640,\"height\":480}}", 1, 1,
		 "scored"},
		{"{\"text\":\"onetwo\\u00adthree\",\"image\":{\"width\":640,\"height\":480}}", 1, 0,
		 "too_few_words"},
		{"{\"text\":\"a red bike\",\"image\":{\"width\":199,\"height\":300}}", 1, 0,
		 "small_image"},
		{"{\"text\":\"a red bike\",\"image\":{\"width\":200,\"height\":601}}", 1, 0,
		 "bad_aspect"},
		{"{\"text\":\"a b\",\"image\":{\"width\":10,\"height\":10}}",
		 1, 0, "too_few_words"},
		{"{\"image\":{\"width\":640,\"height\":480}}", 1, NAN, "no_field"},
		{"{\"text\":5,\"image\":{\"width\":640,\"height\":480}}", 1, NAN, "bad_field"},
		{"{\"text\":\"a red bike\"}", 1, NAN, "no_field"},
		{"{\"text\":\"a red bike\",\"image\":{\"width\":640}}", 1, NAN, "no_field"},
		{"{\"text\":\"a red bike\",\"image\":{\"width\":0,\"height\":5}}",
		 1, NAN, "bad_field"},
		{"{\"text\":\"a red bike\",\"image\":{\"width\":2.5,\"height\":5}}", 1, NAN,
		 "bad_field"},
		{"{\"text\":\"a red bike\"}", 2, NAN, "no_field"}, /* require_image defaults on */
	};
	struct store_schema sc = schema2(2);
	struct err e;
	int rc;
	struct filter *f = make("basic", NULL, &sc, &rc, &e);
	struct filter *g = make("basic", "{\"require_image\":false}", &sc, &rc, &e);
	size_t n = sizeof rows / sizeof rows[0];

	CHECK(f != NULL && g != NULL);
	if (f == NULL || g == NULL)
		return;
	CHECK(f->needs & FILTER_NEEDS_BODY);
	for (size_t i = 0; i < n; i++) {
		json_t *body = json_loads(rows[i].body, 0, NULL);
		uint64_t row = i;
		unsigned kind = rows[i].kind;
		struct filter_batch b = {.n = 1, .rows = &row, .kinds = &kind, .bodies = &body};
		float s;
		uint8_t st;

		CHECK(body != NULL);
		CHECK_INT(filter_score_batch(f, &b, &s, &st, NULL), 0);
		if (strcmp(filter_status_name(f->ops, st), rows[i].status) != 0)
			harness_fail(__FILE__, __LINE__, "row %zu: status %s, expected %s", i,
			             filter_status_name(f->ops, st), rows[i].status);
		if (isnan(rows[i].score))
			CHECK(isnan(s));
		else
			CHECK(s == rows[i].score);
		json_decref(body);
	}
	/* require_image false: a text record is judged on its text only; an image-text record
	 * still needs its size */
	{
		json_t *body[3] = {json_loads("{\"text\":\"a red bike\"}", 0, NULL),
		                   json_loads("{\"text\":\"a b\"}", 0, NULL),
		                   json_loads("{\"text\":\"a red bike\"}", 0, NULL)};
		uint64_t row[3] = {0, 1, 2};
		unsigned kind[3] = {STORE_KIND_TEXT, STORE_KIND_TEXT, STORE_KIND_IMAGE_TEXT};
		struct filter_batch b = {.n = 3, .rows = row, .kinds = kind, .bodies = body};
		float s[3];
		uint8_t st[3];

		CHECK_INT(filter_score_batch(g, &b, s, st, NULL), 0);
		CHECK_INT(st[0], FILTER_SCORED);
		CHECK(s[0] == 1);
		CHECK_STR(filter_status_name(g->ops, st[1]), "too_few_words");
		CHECK(s[1] == 0);
		CHECK_INT(st[2], FILTER_NO_FIELD);
		CHECK(isnan(s[2]));
		for (int i = 0; i < 3; i++)
			json_decref(body[i]);
	}
	filter_free(f);
	filter_free(g);
}

static void test_basic_params(void)
{
	static const struct {
		const char *params;
		const char *slug; /* NULL: accepted */
	} cases[] = {
		{"{\"min_words\":-1}", "bad_param"},
		{"{\"min_words\":2.5}", "bad_param"},
		{"{\"min_chars\":\"6\"}", "bad_param"},
		{"{\"min_side\":null}", "bad_param"},
		{"{\"max_aspect\":0.5}", "bad_param"},
		{"{\"require_image\":1}", "bad_param"},
		{"{\"min_word\":2}", "unknown_param"},
		{"{\"min_words\":1,\"min_chars\":0,\"min_side\":10,\"max_aspect\":1.5,"
		 "\"require_image\":false}",
		 NULL},
	};
	struct store_schema sc = schema2(2);
	struct err e;
	int rc;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct filter *f = make("basic", cases[i].params, &sc, &rc, &e);

		if (cases[i].slug == NULL) {
			CHECK_INT(rc, 0);
		} else {
			CHECK(f == NULL);
			CHECK_INT(rc, ERR_INVALID);
			CHECK_STR(e.slug, cases[i].slug);
		}
		filter_free(f);
	}
	/* the unknown key is named in the detail */
	make("basic", "{\"min_word\":2}", &sc, &rc, &e);
	CHECK(strstr(e.detail, "'min_word'") != NULL);
	/* params change the thresholds: 1 word of 1 char on a 10x15 image is kept */
	{
		struct filter *f = make("basic", cases[7].params, &sc, &rc, &e);
		json_t *body = json_loads("{\"text\":\"x\",\"image\":{\"width\":10,\"height\":15}}",
		                          0, NULL);
		uint64_t row = 0;
		unsigned kind = STORE_KIND_IMAGE_TEXT;
		struct filter_batch b = {.n = 1, .rows = &row, .kinds = &kind, .bodies = &body};
		float s;
		uint8_t st;

		CHECK(f != NULL);
		if (f != NULL) {
			CHECK_INT(filter_score_batch(f, &b, &s, &st, NULL), 0);
			CHECK_INT(st, FILTER_SCORED);
			CHECK(s == 1);
		}
		filter_free(f);
		json_decref(body);
	}
}

/* A struct filter_scan over in-memory batches, for fits. */
struct mem_scan {
	struct filter_scan base;
	const struct filter_batch *b;
	size_t n, at;
};

static int mem_next(struct filter_scan *s, const struct filter_batch **b, struct err *e)
{
	struct mem_scan *m = (struct mem_scan *)s;

	(void)e;
	if (m->at >= m->n)
		return 0;
	*b = &m->b[m->at++];
	return 1;
}

static int fail_next(struct filter_scan *s, const struct filter_batch **b, struct err *e)
{
	(void)s;
	(void)b;
	return err_set(e, ERR_CANCELLED, "cancelled", "the job was cancelled");
}

static void test_exact_dup(void)
{
	/* rows 0..5; keys: A (ids "b", "a"), B (id "c"), A (id "ab"), none, B (id "c0") */
	static const char *const ids[] = {"b", "a", "c", "ab", "x", "c0"};
	static const char *const bodies[] = {
		"{\"image\":{\"sha256\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}}",
		"{\"image\":{\"sha256\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}",
		"{\"image\":{\"sha256\":\"0123456789abcdef0123456789abcdef"
		"0123456789abcdef0123456789abcdef\"}}",
		"{\"image\":{\"sha256\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}",
		"{\"image\":{}}",
		"{\"image\":{\"sha256\":\"0123456789abcdef0123456789abcdef"
		"0123456789abcdef0123456789abcdef\"}}",
	};
	/* expected: "a" keeps A (row 1), "c" keeps B (row 2) */
	static const float want[] = {0, 1, 1, 0, NAN, 0};
	struct store_schema sc = schema2(2);
	uint64_t rows[6] = {0, 1, 2, 3, 4, 5};
	json_t *js[6];
	struct filter_batch b[2];
	struct mem_scan ms;
	struct err e;
	float s[6];
	uint8_t st[6];
	void *blob = NULL;
	size_t len = 0;
	int rc;
	struct filter *f = make("exact_dup", NULL, &sc, &rc, &e), *g;

	CHECK(f != NULL);
	if (f == NULL)
		return;
	for (int i = 0; i < 6; i++)
		js[i] = json_loads(bodies[i], 0, NULL);
	b[0] = (struct filter_batch){.n = 3, .rows = rows, .ids = ids, .bodies = js};
	b[1] = (struct filter_batch){.n = 3, .rows = rows + 3, .ids = ids + 3, .bodies = js + 3};
	/* unfitted: every row says so */
	CHECK_INT(filter_score_batch(f, &b[0], s, st, NULL), 0);
	CHECK_INT(st[0], FILTER_UNFITTED);
	ms = (struct mem_scan){{mem_next}, b, 2, 0};
	CHECK_INT(filter_fit(f, &ms.base, &e), 0);
	CHECK(f->fitted);
	for (int k = 0; k < 2; k++)
		CHECK_INT(filter_score_batch(f, &b[k], s + 3 * k, st + 3 * k, NULL), 0);
	for (int i = 0; i < 6; i++) {
		if (isnan(want[i])) {
			CHECK(isnan(s[i]));
			CHECK_STR(filter_status_name(f->ops, st[i]), "no_field");
		} else {
			CHECK(s[i] == want[i]);
			CHECK_STR(filter_status_name(f->ops, st[i]),
			          want[i] == 1 ? "scored" : "duplicate");
		}
	}
	/* save -> load gives the same scores */
	CHECK_INT(filter_save(f, &blob, &len, &e), 0);
	CHECK(blob != NULL && len == 16 + 2 * 24);
	g = make("exact_dup", "{\"key\":\"image_sha256\"}", &sc, &rc, &e);
	CHECK(g != NULL);
	if (g != NULL && blob != NULL) {
		float s2[6];
		uint8_t st2[6];

		CHECK_INT(filter_load(g, blob, len, &e), 0);
		for (int k = 0; k < 2; k++)
			CHECK_INT(filter_score_batch(g, &b[k], s2 + 3 * k, st2 + 3 * k, NULL), 0);
		CHECK(memcmp(st, st2, sizeof st) == 0);
		CHECK_INT(filter_load(g, blob, len - 1, &e), ERR_INVALID);
		((unsigned char *)blob)[0] ^= 1;
		CHECK_INT(filter_load(g, blob, len, &e), ERR_INVALID);
	}
	free(blob);
	filter_free(g);
	/* after the fit: a new row with a key the fit saw is a duplicate, a new key is the first
	 * of its key; malformed hashes are bad_field, a text-only body no_field */
	{
		static const char *const later[] = {
			"{\"image\":{\"sha256\":\"aAaAaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}",
			"{\"image\":{\"sha256\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
			"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}}",
			"{\"image\":{\"sha256\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}",
			"{\"image\":{\"sha256\":\"gaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}",
			"{\"image\":{\"sha256\":7}}",
			"{\"text\":\"a red bike\"}",
		};
		static const char *const lids[] = {"0", "zz", "q", "r", "s", "t"};
		static const char *const want_st[] = {"duplicate", "scored",    "bad_field",
		                                      "bad_field", "bad_field", "no_field"};
		uint64_t lrows[6] = {10, 11, 12, 13, 14, 15};
		json_t *lj[6];
		struct filter_batch lb = {.n = 6, .rows = lrows, .ids = lids, .bodies = lj};

		for (int i = 0; i < 6; i++)
			lj[i] = json_loads(later[i], 0, NULL);
		CHECK_INT(filter_score_batch(f, &lb, s, st, NULL), 0);
		for (int i = 0; i < 6; i++)
			CHECK_STR(filter_status_name(f->ops, st[i]), want_st[i]);
		CHECK(s[0] == 0 && s[1] == 1 && isnan(s[2]));
		for (int i = 0; i < 6; i++)
			json_decref(lj[i]);
	}
	/* a refit that fails keeps the fitted table */
	{
		struct filter_scan fail = {fail_next};

		CHECK_INT(filter_fit(f, &fail, &e), ERR_CANCELLED);
		CHECK(f->fitted);
		CHECK_INT(filter_score_batch(f, &b[0], s, st, NULL), 0);
		CHECK(s[0] == 0 && s[1] == 1 && s[2] == 1);
	}
	filter_free(f);
	for (int i = 0; i < 6; i++)
		json_decref(js[i]);
	make("exact_dup", "{\"key\":\"url\"}", &sc, &rc, &e);
	CHECK_INT(rc, ERR_INVALID);
	CHECK_STR(e.slug, "bad_param");
	make("exact_dup", "{\"key\":\"text\",\"field\":1}", &sc, &rc, &e);
	CHECK_STR(e.slug, "unknown_param");
}

/* Blobs that load must reject: wrong magic, a count that disagrees with the length (also one
 * that would overflow count * 24), keys out of order. */
static void test_exact_dup_blobs(void)
{
	struct store_schema sc = schema2(2);
	struct err e;
	int rc;
	struct filter *f = make("exact_dup", NULL, &sc, &rc, &e);
	uint8_t blob[16 + 2 * 24];

	CHECK(f != NULL);
	if (f == NULL)
		return;
	memset(blob, 0, sizeof blob);
	memcpy(blob, "WNDUP1\n", 7);
	blob[8] = 2;
	blob[16] = 1; /* key 0100.. < key 0200.. */
	blob[16 + 24] = 2;
	CHECK_INT(filter_load(f, blob, sizeof blob, &e), 0);
	CHECK_INT(filter_load(f, blob, 16, &e), ERR_INVALID); /* count 2, no entries */
	CHECK_STR(e.slug, "bad_state");
	CHECK_INT(filter_load(f, blob, 15, &e), ERR_INVALID);
	blob[8] = 1;
	CHECK_INT(filter_load(f, blob, sizeof blob, &e), ERR_INVALID);
	memset(blob + 8, 0xff, 8); /* 2^64 - 1 entries */
	CHECK_INT(filter_load(f, blob, sizeof blob, &e), ERR_INVALID);
	memset(blob + 8, 0, 8);
	blob[8] = 2;
	blob[16 + 24] = 1; /* equal keys */
	CHECK_INT(filter_load(f, blob, sizeof blob, &e), ERR_INVALID);
	blob[16 + 24] = 2;
	blob[6] = '2'; /* another version */
	CHECK_INT(filter_load(f, blob, sizeof blob, &e), ERR_INVALID);
	filter_free(f);
}

static void test_exact_dup_text(void)
{
	static const char *const ids[] = {"2", "1", "3"};
	static const char *const bodies[] = {"{\"text\":\"  A  red\\tBike \"}",
	                                     "{\"text\":\"a red bike\"}",
	                                     "{\"text\":\"a red bikes\"}"};
	struct store_schema sc = schema2(2);
	uint64_t rows[3] = {0, 1, 2};
	json_t *js[3];
	struct filter_batch b;
	struct mem_scan ms;
	struct err e;
	float s[3];
	uint8_t st[3];
	int rc;
	struct filter *f = make("exact_dup", "{\"key\":\"text\"}", &sc, &rc, &e);

	CHECK(f != NULL);
	if (f == NULL)
		return;
	for (int i = 0; i < 3; i++)
		js[i] = json_loads(bodies[i], 0, NULL);
	b = (struct filter_batch){.n = 3, .rows = rows, .ids = ids, .bodies = js};
	ms = (struct mem_scan){{mem_next}, &b, 1, 0};
	CHECK_INT(filter_fit(f, &ms.base, &e), 0);
	CHECK_INT(filter_score_batch(f, &b, s, st, NULL), 0);
	CHECK(s[0] == 0 && s[1] == 1 && s[2] == 1); /* "1" < "2": row 1 is kept */
	filter_free(f);
	for (int i = 0; i < 3; i++)
		json_decref(js[i]);
}

/* A type that breaks the contract: NaN with FILTER_SCORED, a finite score with an
 * unscorable status, and FILTER_PENDING. */
static int bad_create(struct filter *f, const json_t *p, const struct store_schema *s,
                      struct err *e)
{
	(void)f;
	(void)p;
	(void)s;
	(void)e;
	return 0;
}

static int bad_score(const struct filter *f, const struct filter_batch *b, float *scores,
                     uint8_t *status, struct err *e)
{
	(void)f;
	(void)b;
	(void)e;
	scores[0] = NAN;
	status[0] = FILTER_SCORED;
	scores[1] = 0.5f;
	status[1] = FILTER_NO_FIELD;
	scores[2] = INFINITY;
	status[2] = FILTER_REASON_BASE;
	scores[3] = 0.25f;
	status[3] = FILTER_PENDING;
	return 0;
}

static const struct filter_ops bad_ops = {
	.name = "bad", .summary = "", .size = sizeof(struct filter), .create = bad_create,
	.score = bad_score,
};

static void test_contract(void)
{
	struct filter *f = NULL;
	struct store_schema sc = schema2(2);
	uint64_t rows[4] = {0, 1, 2, 3};
	struct filter_batch b = {.n = 4, .rows = rows};
	float s[4], out[4];
	const float raw[4] = {0.1f, NAN, 0.3f, INFINITY};
	uint8_t st[4];

	CHECK_INT(filter_create(&f, &bad_ops, NULL, &sc, NULL), 0);
	if (f == NULL)
		return;
	CHECK_INT(filter_score_batch(f, &b, s, st, NULL), 0);
	CHECK_INT(st[0], FILTER_NOT_FINITE);
	CHECK(isnan(s[0]));
	CHECK_INT(st[1], FILTER_NO_FIELD);
	CHECK(isnan(s[1]));
	CHECK_INT(st[2], FILTER_NOT_FINITE);
	CHECK_INT(st[3], FILTER_EXCLUDED);
	CHECK(isnan(s[3]));
	/* no rescore method: raw passes through, non-finite becomes -inf */
	CHECK_INT(filter_rescore(f, NULL, 0, 4, rows, raw, out, NULL), 0);
	CHECK(out[0] == 0.1f && out[2] == 0.3f && out[1] == -INFINITY && out[3] == -INFINITY);
	CHECK_INT(filter_load(f, "", 0, NULL), ERR_INVALID);
	filter_free(f);
	filter_free(NULL);
	CHECK_STR(filter_status_name(NULL, FILTER_PENDING), "pending");
	CHECK_STR(filter_status_name(NULL, FILTER_ZERO_VECTOR), "zero_vector");
	CHECK_STR(filter_status_name(&basic_filter_ops, FILTER_REASON_BASE + 3), "bad_aspect");
	CHECK_STR(filter_status_name(NULL, FILTER_REASON_BASE + 1), "reason_1");
	CHECK(filter_status_scored(FILTER_SCORED) && filter_status_scored(FILTER_REASON_BASE));
	CHECK(!filter_status_scored(FILTER_PENDING) && !filter_status_scored(FILTER_NO_VECTOR));
}

static void test_template(void)
{
	struct store_schema sc = schema2(2);
	struct filter *f = NULL, *g = NULL;
	json_t *p = json_loads("{\"value\":0.75}", 0, NULL);
	uint64_t rows[3] = {4, 5, 9};
	struct filter_batch b = {.n = 3, .rows = rows};
	struct mem_scan ms = {{mem_next}, &b, 1, 0};
	float s[3];
	uint8_t st[3];
	void *blob = NULL;
	size_t len = 0;

	CHECK_INT(filter_create(&f, &template_filter_ops, p, &sc, NULL), 0);
	json_decref(p);
	if (f == NULL)
		return;
	CHECK_INT(filter_score_batch(f, &b, s, st, NULL), 0);
	CHECK(s[0] == 0.75f && st[2] == FILTER_SCORED);
	CHECK_INT(filter_fit(f, &ms.base, NULL), 0);
	CHECK_INT(filter_save(f, &blob, &len, NULL), 0);
	CHECK_INT((long long)len, 8);
	CHECK_INT(filter_create(&g, &template_filter_ops, NULL, &sc, NULL), 0);
	if (g != NULL && blob != NULL) {
		CHECK_INT(filter_load(g, blob, len, NULL), 0);
		CHECK(g->fitted);
		CHECK_INT(filter_score_batch(g, &b, s, st, NULL), 0);
		CHECK(s[1] == 0.5f); /* its own default value */
	}
	free(blob);
	filter_free(f);
	filter_free(g);
}

int main(void)
{
	HARNESS_RUN(test_registry);
	HARNESS_RUN(test_clip_vector);
	HARNESS_RUN(test_clip_768);
	HARNESS_RUN(test_clip_params);
	HARNESS_RUN(test_basic_table);
	HARNESS_RUN(test_basic_params);
	HARNESS_RUN(test_exact_dup);
	HARNESS_RUN(test_exact_dup_text);
	HARNESS_RUN(test_exact_dup_blobs);
	HARNESS_RUN(test_contract);
	HARNESS_RUN(test_template);
	return harness_done();
}
