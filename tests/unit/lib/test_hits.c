/* SPDX-License-Identifier: MIT */
/* Tests of lib/hits.c: the binary search answer's layout, byte for byte, from parts. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/hits.h"
#include "lib/vec.h"
#include "tests/harness.h"

static float f32_at(const char *p)
{
	uint32_t u = vec_le32_get((const unsigned char *)p);
	float f;

	memcpy(&f, &u, sizeof f);
	return f;
}

static uint32_t u32_at(const char *p)
{
	return vec_le32_get((const unsigned char *)p);
}

/* Two queries, limit 3: one with 2 results (truncated), one with none; every field where
 * hits.h puts it. */
static void test_layout(void)
{
	struct jtext a = {0}, b = {0};
	char *part[2], *out = NULL;
	size_t len[2], n = 0;
	const char *scores, *ends, *ids;

	hits_part_begin(&a, HITS_TRUNCATED);
	hits_part_add(&a, "abc", 3, 0.75f);
	hits_part_add(&a, "d\0e", 3, -2.5f); /* ids are bytes: a NUL inside is kept */
	hits_part_begin(&b, 0);
	part[0] = jtext_take(&a, &len[0]);
	part[1] = jtext_take(&b, &len[1]);
	CHECK(hits_join(part, len, 2, 3, &out, &n) == 0);
	CHECK_INT(n, 16 + 8 * 2 + 8 * 2 * 3 + 6);
	CHECK(hits_is(out, n));
	CHECK(memcmp(out, "WNH1", 4) == 0);
	CHECK_INT(u32_at(out + 4), 2);
	CHECK_INT(u32_at(out + 8), 3);
	CHECK_INT(u32_at(out + 12), 6);
	CHECK_INT(u32_at(out + 16), 2); /* counts */
	CHECK_INT(u32_at(out + 20), 0);
	CHECK_INT(u32_at(out + 24), HITS_TRUNCATED); /* flags */
	CHECK_INT(u32_at(out + 28), 0);
	scores = out + 32;
	CHECK(f32_at(scores) == 0.75f);
	CHECK(f32_at(scores + 4) == -2.5f);
	for (int i = 2; i < 6; i++)
		CHECK(isnan(f32_at(scores + 4 * i)));
	ends = scores + 4 * 6;
	static const uint32_t want_ends[] = {3, 6, 6, 6, 6, 6};
	for (int i = 0; i < 6; i++)
		CHECK_INT(u32_at(ends + 4 * i), want_ends[i]);
	ids = ends + 4 * 6;
	CHECK(memcmp(ids, "abcd\0e", 6) == 0);
	free(out);
	free(part[0]);
	free(part[1]);
}

/* A part with more results than the limit, or cut short, is refused with nothing made. */
static void test_refused(void)
{
	struct jtext a = {0};
	char *part, *out = NULL;
	size_t len, n = 0;

	hits_part_begin(&a, 0);
	hits_part_add(&a, "x", 1, 1.0f);
	hits_part_add(&a, "y", 1, 0.5f);
	part = jtext_take(&a, &len);
	CHECK(hits_join(&part, &len, 1, 1, &out, &n) == -1);
	CHECK(out == NULL);
	len -= 1; /* the last id cut short */
	CHECK(hits_join(&part, &len, 1, 2, &out, &n) == -1);
	len = 2; /* not even the flags */
	CHECK(hits_join(&part, &len, 1, 2, &out, &n) == -1);
	CHECK(out == NULL);
	CHECK(!hits_is("{\"queries\":[]}", 14));
	CHECK(!hits_is("WNH", 3));
	free(part);
}

/* No queries at all: the header alone. */
static void test_empty(void)
{
	char *out = NULL;
	size_t n = 0;

	CHECK(hits_join(NULL, NULL, 0, 10, &out, &n) == 0);
	CHECK_INT(n, 16);
	CHECK_INT(u32_at(out + 4), 0);
	CHECK_INT(u32_at(out + 8), 10);
	free(out);
}

int main(void)
{
	HARNESS_RUN(test_layout);
	HARNESS_RUN(test_refused);
	HARNESS_RUN(test_empty);
	return harness_done();
}
