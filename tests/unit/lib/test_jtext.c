/* SPDX-License-Identifier: MIT */
/* Tests of lib/jtext.c (and jsonnum_real): the text written directly is byte for byte what
 * jansson's json_dumps(JSON_COMPACT) and jsonnum_shorten make of the same values. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/jsonnum.h"
#include "lib/jtext.h"
#include "tests/harness.h"

/* What the daemon's jansson path writes for the value v: dumps, then shorten. */
static char *jansson_text(json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	json_decref(v);
	if (s != NULL)
		jsonnum_shorten(s, strlen(s));
	return s;
}

static void same_real(double v)
{
	char *want = jansson_text(json_real(v)), got[JSONNUM_REAL_MAX];
	size_t n = jsonnum_real(v, got);

	CHECK(want != NULL);
	CHECK_INT(n, strlen(got));
	if (want != NULL && strcmp(got, want) != 0)
		fprintf(stderr, "  %.17g: jsonnum_real %s, jansson %s\n", v, got, want);
	CHECK_STR(got, want);
	free(want);
}

static void test_reals(void)
{
	static const double fixed[] = {0.0, -0.0, 1.0, -1.0, 0.5, 0.3, 0.1, 3.0, 1e20, 1e21, 1e-5,
	                               3e-05, 1.2345e25, 123456789.0, 1e-300, 5e-324, 1.7e308,
	                               0.1f, 0.3f, -0.87654321f, 1e-7f, 12345.678f, 1e15, 1e16,
	                               1e17, 0.30000000000000004, 2.5e-8};
	unsigned seed = 777;

	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		same_real(fixed[i]);
	/* float32 scores (cosines, inner products, L2 distances) and plain doubles */
	for (int i = 0; i < 30000; i++) {
		double v;

		seed = seed * 1103515245u + 12345u;
		v = (double)(seed >> 8) / (double)(1u << 24);
		switch (i % 4) {
		case 0: v = (double)(float)(v * 2.0 - 1.0); break;
		case 1: v = (double)(float)(v * 4000.0); break;
		case 2: v = (double)(float)ldexp(v, (int)(seed % 80) - 40); break;
		default: v = v * 1e6 / 7.0; break;
		}
		same_real(v);
	}
}

static void same_str(const char *s, size_t n)
{
	char *want = jansson_text(json_stringn(s, n)), *got;
	struct jtext t = {0};
	size_t len = 0;

	jtext_str(&t, s, n);
	got = jtext_take(&t, &len);
	CHECK(want != NULL && got != NULL);
	CHECK_INT(len, strlen(want));
	CHECK_STR(got, want);
	free(want);
	free(got);
}

static void test_strings(void)
{
	char all[128];

#define SAME_STR(lit) same_str(lit, sizeof lit - 1)
	SAME_STR("");
	SAME_STR("r00017");
	SAME_STR("a\"b\\c/d");
	SAME_STR("tab\there\nnew\rret\bbs\fff");
	SAME_STR("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	same_str("nul\0inside", 11); /* a NUL inside an id: \u0000 */
#undef SAME_STR
	for (int i = 1; i < 128; i++)
		all[i - 1] = (char)i;
	same_str(all, 127); /* every ASCII byte, controls and DEL included */
}

static void test_buffer(void)
{
	struct jtext t = {0};
	size_t len = 1;
	char *s = jtext_take(&t, &len);

	CHECK(s != NULL && s[0] == '\0' && len == 0); /* nothing written: "" */
	free(s);
	for (int i = 0; i < 1000; i++) { /* grows past its first size */
		jtext_lit(&t, i == 0 ? "[" : ",");
		jtext_uint(&t, (uint64_t)i * 1000003u);
	}
	jtext_raw(&t, "]", 1);
	s = jtext_take(&t, &len);
	CHECK(s != NULL);
	if (s != NULL) {
		json_error_t err;
		json_t *a = json_loads(s, 0, &err);

		CHECK_INT(len, strlen(s));
		CHECK(a != NULL && json_array_size(a) == 1000);
		CHECK(json_integer_value(json_array_get(a, 999)) == (json_int_t)999 * 1000003);
		json_decref(a);
	}
	free(s);
	CHECK(t.p == NULL && t.len == 0);
	/* JSON has no NaN or infinity: null, as for a score that has none */
	jtext_real(&t, NAN);
	jtext_raw(&t, ",", 1);
	jtext_real(&t, -INFINITY);
	s = jtext_take(&t, &len);
	CHECK(s != NULL && strcmp(s, "null,null") == 0);
	free(s);
}

int main(void)
{
	HARNESS_RUN(test_reals);
	HARNESS_RUN(test_strings);
	HARNESS_RUN(test_buffer);
	return harness_done();
}
