/* SPDX-License-Identifier: MIT */
/* test_codec: the record and schema wire format, from tables of (input, expected). */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "api/codec.h"
#include "lib/err.h"
#include "lib/vec.h"
#include "tests/harness.h"

static const struct store_schema schema = {
	.nspaces = 2,
	.spaces = {{"image", 4, STORE_F16}, {"text", 3, STORE_F32}},
	.kinds = STORE_KIND_IMAGE_TEXT | STORE_KIND_TEXT,
};

static int parse(const char *text, struct codec_record *r, struct err *e)
{
	json_error_t jerr;
	json_t *obj = json_loads(text, JSON_ALLOW_NUL, &jerr);
	int rc;

	if (obj == NULL)
		return -100;
	rc = codec_parse_record(obj, &schema, r, NULL, e);
	json_decref(obj);
	return rc;
}

static const struct {
	const char *json;
	const char *slug; /* NULL = accepted */
} record_cases[] = {
	{"{\"id\":\"a\"}", NULL},
	{"{\"text\":\"x\"}", "missing_id"},
	{"{\"id\":7}", "invalid_id"},
	{"{\"id\":\"\"}", "invalid_id"},
	{"{\"id\":\"a\\u0000b\"}", "invalid_id"},
	{"{\"id\":\"a\",\"kind\":\"video\"}", "invalid_kind"},
	{"{\"id\":\"a\",\"text\":5}", "invalid_field"},
	{"{\"id\":\"a\",\"meta\":[]}", "invalid_field"},
	{"{\"id\":\"a\",\"colour\":1}", "invalid_field"},
	{"{\"id\":\"a\",\"image\":{\"width\":0}}", "invalid_field"},
	{"{\"id\":\"a\",\"image\":{\"sha256\":\"abc\"}}", "invalid_field"},
	{"{\"id\":\"a\",\"signals\":{\"x\":\"high\"}}", "invalid_field"},
	{"{\"id\":\"a\",\"signals\":{\"x\":{\"y\":[1]}}}", "invalid_field"},
	{"{\"id\":\"a\",\"embeddings\":{\"audio\":[1]}}", "unknown_space"},
	{"{\"id\":\"a\",\"embeddings\":{\"text\":[1,2]}}", "dimension_mismatch"},
	{"{\"id\":\"a\",\"embeddings\":{\"text\":[1,2,\"3\"]}}", "invalid_embedding"},
	{"{\"id\":\"a\",\"embeddings\":{\"text\":[1,2,1e300]}}", "non_finite"},
	{"{\"id\":\"a\",\"embeddings\":{\"image\":[1,2,3,70000]}}", "non_finite"},
	{"{\"id\":\"a\",\"embeddings\":{\"text\":{\"dtype\":\"f32\",\"b64\":\"!!!!\"}}}",
	 "invalid_embedding"},
	/* 8 bytes = 2 f32 values for a 3-d space */
	{"{\"id\":\"a\",\"embeddings\":{\"text\":{\"dtype\":\"f32\",\"b64\":\"AACAPwAAAEA=\"}}}",
	 "dimension_mismatch"},
	/* f32 NaN 0x7fc00000 three times */
	{"{\"id\":\"a\",\"embeddings\":{\"text\":{\"dtype\":\"f32\",\"b64\":\"AADAfwAAwH8AAMB/\"}}}",
	 "non_finite"},
	{"{\"id\":\"a\",\"embeddings\":{\"text\":{\"dtype\":\"f64\",\"b64\":\"AAAA\"}}}",
	 "invalid_embedding"},
	{"{\"id\":\"a\",\"embeddings\":{\"image\":{\"dtype\":\"f16\",\"b64\":\"ADwAAAAAAAA=\"},"
	 "\"text\":[0.5,0.25,1]}}",
	 NULL},
};

static void test_rejections(void)
{
	for (size_t i = 0; i < sizeof record_cases / sizeof record_cases[0]; i++) {
		struct codec_record r;
		struct err e = {0};
		int rc = parse(record_cases[i].json, &r, &e);

		if (record_cases[i].slug == NULL) {
			if (rc != 0)
				harness_fail(__FILE__, __LINE__, "case %zu rejected: %s", i, e.detail);
			CHECK_INT(rc, 0);
			codec_record_free(&r);
		} else {
			if (rc == 0 || strcmp(e.slug, record_cases[i].slug) != 0)
				harness_fail(__FILE__, __LINE__, "case %zu: want %s, got rc %d slug %s",
				             i, record_cases[i].slug, rc, e.slug);
			CHECK(rc != 0);
			CHECK_STR(e.slug, record_cases[i].slug);
		}
	}
}

/* The ingest fast path gives what jansson + codec_parse_record give: same outcome, same
 * slug, same bytes; lines it does not handle answer 1. */
static void test_fast_path_agrees(void)
{
	static const char *const extra[] = {
		"{ \"embeddings\" : { \"text\" : [ 1 , -2.5e-1 , 3E2 ] } , \"id\" : \"w\" }",
		"{\"id\":\"o\",\"embeddings\":{\"image\":{\"b64\":\"ADwAAAAAAAA=\",\"dtype\":\"f16\"}}}",
		"{\"id\":\"e\",\"embeddings\":{}}",
		"{\"id\":\"z\",\"embeddings\":{\"text\":[-0.0,0,1e-45]}}",
		"{\"id\":\"m\",\"embeddings\":{\"text\":[-0,123456789012345678,-1E+2]}}",
		"{\"id\":\"big\",\"embeddings\":{\"text\":[1,2,17777777777777777777777777]}}",
		"{\"id\":\"d\",\"embeddings\":{\"text\":[1,2,3],\"text\":[4,5,6]}}",
		"{\"id\":\"s\",\"embeddings\":{\"text\":[1,2,\"3\"]}}",
		"{\"id\":\"x\",\"embeddings\":{\"text\":[1,2,0x3]}}",
		"{\"id\":\"t\",\"embeddings\":{\"text\":[1,2,3]}} trailing",
		"{\"id\":\"u\",\"embeddings\":{\"text\":[1,2,3]},\"embeddings\":{}}",
		"{\"id\":\"v\",\"text\":\"caf\\u00e9 \\\"q\\\"\",\"embeddings\":{\"text\":[1,2,3]},\"meta\":{\"a\":[1,{\"b\":\"}\"}]}}",
	};
	size_t nr = sizeof record_cases / sizeof record_cases[0];
	size_t handled = 0;

	for (size_t i = 0; i < nr + sizeof extra / sizeof extra[0]; i++) {
		const char *line = i < nr ? record_cases[i].json : extra[i - nr];
		struct codec_record fast, slow;
		struct err ef = {0}, es = {0};
		json_t *obj = NULL, *sobj;
		const char *id = NULL;
		int rf, rs;

		rf = codec_parse_line(line, strlen(line), &schema, &fast, &obj, &id, &ef);
		sobj = json_loads(line, 0, NULL);
		rs = sobj != NULL ? codec_parse_record(sobj, &schema, &slow, NULL, &es) : -100;
		json_decref(sobj);
		if (rf == 1) {
			if (rs == 0)
				codec_record_free(&slow);
			continue;
		}
		handled++;
		if (rf != rs || strcmp(ef.slug, es.slug) != 0)
			harness_fail(__FILE__, __LINE__, "line %zu: fast %d %s, slow %d %s", i, rf,
			             ef.slug, rs, es.slug);
		CHECK_INT(rf, rs);
		if (rf == 0) {
			CHECK_STR(fast.rec.id, slow.rec.id);
			CHECK_STR(fast.rec.body, slow.rec.body);
			CHECK_INT(fast.rec.kind, slow.rec.kind);
			for (unsigned k = 0; k < schema.nspaces; k++) {
				CHECK((fast.rec.vec[k] == NULL) == (slow.rec.vec[k] == NULL));
				if (fast.rec.vec[k] != NULL)
					CHECK(memcmp(fast.rec.vec[k], slow.rec.vec[k],
					             store_space_bytes(&schema.spaces[k])) == 0);
			}
			codec_record_free(&fast);
			codec_record_free(&slow);
		}
		json_decref(obj);
	}
	/* Most of the table has the common shape: the fast path must take it. */
	printf("  fast path handled %zu lines\n", handled);
	CHECK_INT(handled, 12); /* 1e300 and the 26-digit integer go to jansson */
}

static void test_vectors_converted(void)
{
	struct codec_record r;
	struct err e = {0};
	uint16_t h[4];
	float f[3];

	/* image (f16 space) from a JSON array; text (f32 space) from base64 f16 [1, 0, 0]. */
	CHECK_INT(parse("{\"id\":\"v\",\"embeddings\":{\"image\":[1, 0.1, -2, 65504],"
	                "\"text\":{\"dtype\":\"f16\",\"b64\":\"ADwAAAAA\"}}}",
	                &r, &e),
	          0);
	memcpy(h, r.rec.vec[0], sizeof h);
	CHECK_INT(h[0], 0x3c00);
	CHECK_INT(h[1], 0x2e66);
	CHECK_INT(h[2], 0xc000);
	CHECK_INT(h[3], 0x7bff);
	memcpy(f, r.rec.vec[1], sizeof f);
	CHECK(f[0] == 1.0f && f[1] == 0.0f && f[2] == 0.0f);
	CHECK_INT(r.rec.kind, STORE_KIND_TEXT);
	CHECK_STR(r.rec.id, "v");
	codec_record_free(&r);
}

static void test_body_and_kind(void)
{
	struct codec_record r;
	struct err e = {0};

	CHECK_INT(parse("{\"id\":\"k\",\"text\":\"hi\",\"image\":{\"width\":3,\"height\":4},"
	                "\"meta\":{\"a\":1}}",
	                &r, &e),
	          0);
	CHECK_INT(r.rec.kind, STORE_KIND_IMAGE_TEXT);
	CHECK(r.rec.vec[0] == NULL && r.rec.vec[1] == NULL);
	CHECK(strstr(r.rec.body, "\"text\":\"hi\"") != NULL);
	CHECK(strstr(r.rec.body, "\"id\"") == NULL);
	CHECK(strstr(r.rec.body, "\"meta\":{\"a\":1}") != NULL);
	codec_record_free(&r);
}

static void test_schema(void)
{
	static const struct {
		const char *json;
		const char *slug;
	} cases[] = {
		{"{\"spaces\":{\"a\":{\"dim\":8,\"dtype\":\"f16\"}},\"kinds\":[\"text\"]}", NULL},
		{"{}", NULL},
		{"{\"spaces\":{\"a\":{\"dim\":0}}}", "invalid_dim"},
		{"{\"spaces\":{\"a\":{\"dim\":65537}}}", "invalid_dim"},
		{"{\"spaces\":{\"a\":{\"dim\":8,\"dtype\":\"f64\"}}}", "invalid_dtype"},
		{"{\"spaces\":{\"a b\":{\"dim\":8}}}", "invalid_space_name"},
		{"{\"kinds\":[\"video\"]}", "invalid_kinds"},
		{"{\"kinds\":[]}", "invalid_kinds"},
		{"{\"space\":{}}", "invalid_schema"},
		{"[]", "invalid_schema"},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct store_schema s;
		struct err e = {0};
		json_t *obj = json_loads(cases[i].json, 0, NULL);
		int rc;

		CHECK(obj != NULL);
		rc = codec_parse_schema(obj, &s, &e);
		json_decref(obj);
		if (cases[i].slug == NULL) {
			CHECK_INT(rc, 0);
		} else {
			if (rc == 0 || strcmp(e.slug, cases[i].slug) != 0)
				harness_fail(__FILE__, __LINE__, "schema case %zu: want %s got %s", i,
				             cases[i].slug, e.slug);
			CHECK(rc != 0);
		}
	}
	{
		struct store_schema s;
		char spaces[2048] = "{\"spaces\":{";
		json_t *obj;

		for (int i = 0; i < 17; i++)
			snprintf(spaces + strlen(spaces), sizeof spaces - strlen(spaces),
			         "%s\"s%d\":{\"dim\":2}", i ? "," : "", i);
		strcat(spaces, "}}");
		obj = json_loads(spaces, 0, NULL);
		CHECK(obj != NULL);
		struct err e = {0};
		CHECK_INT(codec_parse_schema(obj, &s, &e), ERR_INVALID);
		json_decref(obj);
		CHECK_STR(e.slug, "too_many_spaces");
	}
}

static void test_record_json_roundtrip(void)
{
	static const float v[3] = {0.1f, -3.4028235e38f, 1.17549435e-38f};
	struct store_record_out out = {0};
	struct err e = {0};
	json_t *obj, *arr;
	char body[] = "{\"text\":\"t\"}";

	out.row = 7;
	out.kind = STORE_KIND_TEXT;
	out.body = body;
	out.body_len = strlen(body);
	out.vec[1] = (void *)v;
	obj = codec_record_json(&schema, "r1", 2, &out, 1, &e);
	CHECK(obj != NULL);
	/* Serialise and parse back, as a client would, then compare bits. */
	char *s = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	obj = json_loads(s, 0, NULL);
	free(s);
	arr = json_object_get(json_object_get(obj, "embeddings"), "text");
	CHECK(json_array_size(arr) == 3);
	for (size_t i = 0; i < 3; i++) {
		float back = (float)json_number_value(json_array_get(arr, i));

		CHECK(memcmp(&back, &v[i], 4) == 0);
	}
	CHECK_INT(json_integer_value(json_object_get(obj, "row")), 7);
	CHECK_STR(json_string_value(json_object_get(obj, "id")), "r1");
	CHECK_STR(json_string_value(json_object_get(obj, "kind")), "text");
	json_decref(obj);
}

int main(void)
{
	HARNESS_RUN(test_rejections);
	HARNESS_RUN(test_fast_path_agrees);
	HARNESS_RUN(test_vectors_converted);
	HARNESS_RUN(test_body_and_kind);
	HARNESS_RUN(test_schema);
	HARNESS_RUN(test_record_json_roundtrip);
	return harness_done();
}
