/* SPDX-License-Identifier: MIT */
/* Tests of lib/jsonnum.c: reals come out in their shortest round-trip form, integers and
 * strings untouched, against jansson's own %.17g output. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "lib/jsonnum.h"
#include "tests/harness.h"

static void check(const char *in, const char *want)
{
	char buf[256];
	size_t n = strlen(in);

	memcpy(buf, in, n + 1);
	n = jsonnum_shorten(buf, n);
	CHECK_INT(n, strlen(want));
	CHECK_STR(buf, want);
}

static void test_tokens(void)
{
	check("0.29999999999999999", "0.3");
	check("[0.10000000000000001,-0.29999999999999999]", "[0.1,-0.3]");
	check("{\"a\":1.0,\"b\":0.5,\"c\":3}", "{\"a\":1.0,\"b\":0.5,\"c\":3}");
	/* integers stay exact, however long */
	check("12345678901234567", "12345678901234567");
	check("1000000000000000000", "1000000000000000000");
	/* a string that looks like a number, and escapes in strings */
	check("{\"x\":\"0.29999999999999999\",\"y\\\"\":0.29999999999999999}",
	      "{\"x\":\"0.29999999999999999\",\"y\\\"\":0.3}");
	/* already shortest at 17 digits: kept */
	check("0.30000000000000004", "0.30000000000000004");
	check("1.0000000000000002", "1.0000000000000002");
	/* exponents */
	check("3.0000000000000001e-05", "3e-05");
	check("1.2344999999999999e+25", "1.2345e+25");
}

/* Every float32 score a search can send, printed by jansson and shortened, reads back as
 * the same double, and is never longer than 17 significant digits. */
static void test_round_trip(void)
{
	unsigned seed = 12345;

	for (int i = 0; i < 20000; i++) {
		double v;
		json_t *a;
		char *s;
		size_t n;

		seed = seed * 1103515245u + 12345u;
		v = (double)(float)((double)(seed >> 8) / (double)(1u << 24) * 2.0 - 1.0);
		if (i % 3 == 0)
			v = (double)(seed >> 4) / 3.0e7;
		a = json_pack("[f]", v);
		s = json_dumps(a, JSON_COMPACT);
		n = jsonnum_shorten(s, strlen(s));
		CHECK(n <= strlen("[") + 24 + strlen("]"));
		CHECK(strtod(s + 1, NULL) == v);
		free(s);
		json_decref(a);
	}
}

int main(void)
{
	HARNESS_RUN(test_tokens);
	HARNESS_RUN(test_round_trip);
	return harness_done();
}
