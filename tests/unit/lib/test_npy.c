/* SPDX-License-Identifier: MIT */
/* test_npy: the spec 1.6 uid and .npy vectors, the exact numpy 1.24 header for small and
 * huge counts, uid padding and rejections, sort order and byte order.
 *
 * Also a helper for tests/integration/test_npy_numpy.py, which compares against numpy:
 *   test_npy --emit N SEED   writes to stdout the .npy of N uids drawn with splitmix64
 *                            (per uid: hi = draw >> (draw & 63), lo = draw; the uid text is
 *                            "%llx%016llx" of (hi, lo), so short uids occur), parsed,
 *                            sorted and encoded by this module;
 *   test_npy --header N      writes only the preamble for N records.
 * Without arguments it runs the unit tests. */
#include "lib/npy.h"
#include "lib/err.h"
#include "tests/harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EMIT_MAX 10000000ull /* bounds the --emit buffers (160 MB) */

static uint64_t prng_state;

static uint64_t prng(void)
{
	uint64_t z = (prng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static const char header_small[] =
	"\x93NUMPY\x01\x00\x76\x00{'descr': [('f0', '<u8'), ('f1', '<u8')], 'fortran_order': False, "
	"'shape': (2,), }                                   \n";

static int parse_str(const char *s, uint64_t *hi, uint64_t *lo)
{
	return npy_uid_parse(s, strlen(s), hi, lo);
}

static void test_spec_uids(void)
{
	uint64_t hi = 0, lo = 0;

	CHECK_INT(parse_str("139e4a9b22a614771f06c700a8ebe150", &hi, &lo), 0);
	CHECK(hi == 1413649363202610295ull);
	CHECK(lo == 2235693070683988304ull);
	CHECK_INT(parse_str("6e356964a967af455c8016b75d691203", &hi, &lo), 0);
	CHECK(hi == 7941369398997528389ull);
	CHECK(lo == 6665352425310327299ull);
	/* Case does not matter. */
	CHECK_INT(parse_str("6E356964A967AF455C8016B75D691203", &hi, &lo), 0);
	CHECK(hi == 7941369398997528389ull);
	CHECK(lo == 6665352425310327299ull);
	CHECK_INT(parse_str("ffffffffffffffffffffffffffffffff", &hi, &lo), 0);
	CHECK(hi == UINT64_MAX && lo == UINT64_MAX);
}

static void test_short_uids(void)
{
	uint64_t hi = 7, lo = 7;

	CHECK_INT(parse_str("1", &hi, &lo), 0);
	CHECK(hi == 0 && lo == 1);
	CHECK_INT(parse_str("abc", &hi, &lo), 0);
	CHECK(hi == 0 && lo == 0xabc);
	CHECK_INT(parse_str("ffffffffffffffff", &hi, &lo), 0); /* 16 digits: all in f1 */
	CHECK(hi == 0 && lo == UINT64_MAX);
	CHECK_INT(parse_str("10000000000000000", &hi, &lo), 0); /* 17 digits: one into f0 */
	CHECK(hi == 1 && lo == 0);
	CHECK_INT(parse_str("00000000000000000000000000000000", &hi, &lo), 0);
	CHECK(hi == 0 && lo == 0);
	/* len, not the NUL, ends the uid. */
	CHECK_INT(npy_uid_parse("12zz", 2, &hi, &lo), 0);
	CHECK(hi == 0 && lo == 0x12);
}

static void test_rejections(void)
{
	static const char *const bad[] = {
		"",  "139e4a9b22a614771f06c700a8ebe1501", "0x12", " 12", "12 ", "g", "-1", "+1",
		"12:", "1f06c700a8ebe15G",
	};
	uint64_t hi = 42, lo = 43;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse_str(bad[i], &hi, &lo) != ERR_INVALID)
			harness_fail(__FILE__, __LINE__, "accepted \"%s\"", bad[i]);
	}
	CHECK_INT(npy_uid_parse("12\0" "3", 4, &hi, &lo), ERR_INVALID);
	CHECK_INT(npy_uid_parse(NULL, 0, &hi, &lo), ERR_INVALID);
	CHECK(hi == 42 && lo == 43); /* untouched on failure */
}

static void test_header_small(void)
{
	static const char zero[] =
		"{'descr': [('f0', '<u8'), ('f1', '<u8')], 'fortran_order': False, 'shape': (0,), }";
	char buf[NPY_HEADER_MAX], spaces[NPY_HEADER_MAX];
	uint64_t n;

	memset(spaces, ' ', sizeof(spaces));
	CHECK_INT(npy_header(buf, sizeof(buf), 2), 128);
	CHECK_INT(sizeof(header_small) - 1, 128);
	CHECK(memcmp(buf, header_small, 128) == 0);
	for (n = 0; n < 1000; n += 37) {
		CHECK_INT(npy_header(buf, sizeof(buf), n), 128);
		CHECK_INT((unsigned char)buf[8], 0x76);
		CHECK_INT((unsigned char)buf[9], 0x00);
		CHECK_INT(buf[127], '\n');
	}
	CHECK_INT(npy_header(buf, sizeof(buf), 0), 128);
	CHECK(memcmp(buf + 10, zero, sizeof(zero) - 1) == 0);
	CHECK(memcmp(buf + 10 + sizeof(zero) - 1, spaces, 127 - 10 - (sizeof(zero) - 1)) == 0);
}

static void test_header_large(void)
{
	/* numpy 1.24 pads the shape to 21 digits, so even the largest count keeps 118. */
	static const char tail[] = "'shape': (18446744073709551615,), }                \n";
	char buf[NPY_HEADER_MAX + 8];

	CHECK_INT(npy_header(buf, sizeof(buf), UINT64_MAX), 128);
	CHECK_INT((unsigned char)buf[8], 0x76);
	CHECK(memcmp(buf + 128 - (sizeof(tail) - 1), tail, sizeof(tail) - 1) == 0);
	CHECK_INT(npy_header(buf, sizeof(buf), 10000000000ull), 128);
	CHECK(memcmp(buf + 76, "'shape': (10000000000,), }", 26) == 0);
	/* Too small a buffer: nothing written. */
	memset(buf, 'x', sizeof(buf));
	CHECK_INT(npy_header(buf, 127, 1), 0);
	CHECK_INT(buf[0], 'x');
}

static void test_two_record_file(void)
{
	static const uint8_t data[32] = {
		0x77, 0x14, 0xa6, 0x22, 0x9b, 0x4a, 0x9e, 0x13, 0x50, 0xe1, 0xeb,
		0xa8, 0x00, 0xc7, 0x06, 0x1f, 0x45, 0xaf, 0x67, 0xa9, 0x64, 0x69,
		0x35, 0x6e, 0x03, 0x12, 0x69, 0x5d, 0xb7, 0x16, 0x80, 0x5c,
	};
	uint64_t pairs[2][2];
	uint8_t file[NPY_HEADER_MAX + 32];
	size_t h;

	/* Given in the reverse order: the sort must put 139e... first. */
	CHECK_INT(parse_str("6e356964a967af455c8016b75d691203", &pairs[0][0], &pairs[0][1]), 0);
	CHECK_INT(parse_str("139e4a9b22a614771f06c700a8ebe150", &pairs[1][0], &pairs[1][1]), 0);
	npy_sort_uids(pairs, 2);
	h = npy_header((char *)file, sizeof(file), 2);
	CHECK_INT(h, 128);
	CHECK_INT(npy_encode_pairs((const uint64_t(*)[2])pairs, 2, file + h), 32);
	CHECK_INT(h + 32, 160);
	CHECK(memcmp(file, header_small, 128) == 0);
	CHECK(memcmp(file + 128, data, 32) == 0);
}

static void test_encode_byte_order(void)
{
	const uint64_t pairs[1][2] = {{0x0102030405060708ull, 0xf0e0d0c0b0a09080ull}};
	static const uint8_t want[16] = {8, 7, 6, 5, 4, 3, 2, 1,
	                                 0x80, 0x90, 0xa0, 0xb0, 0xc0, 0xd0, 0xe0, 0xf0};
	uint8_t out[17];

	out[16] = 0xee;
	CHECK_INT(npy_encode_pairs(pairs, 1, out), 16);
	CHECK(memcmp(out, want, 16) == 0);
	CHECK_INT(out[16], 0xee); /* nothing past n * 16 */
	CHECK_INT(npy_encode_pairs(pairs, 0, out), 0);
}

static void test_sort(void)
{
	uint64_t small[6][2] = {{5, 1}, {2, 9}, {5, 0}, {UINT64_MAX, 0}, {2, 9}, {0, UINT64_MAX}};
	static const uint64_t want[6][2] = {{0, UINT64_MAX}, {2, 9}, {2, 9},
	                                    {5, 0},          {5, 1}, {UINT64_MAX, 0}};
	enum { N = 5000 };
	static uint64_t big[N][2];
	uint64_t sum0 = 0, sum1 = 0, after0 = 0, after1 = 0;
	size_t i;

	npy_sort_uids(small, 6);
	CHECK(memcmp(small, want, sizeof(want)) == 0);
	npy_sort_uids(small, 0); /* no-op */
	prng_state = 99;
	for (i = 0; i < N; i++) {
		big[i][0] = prng() & 0xf; /* many f0 ties: f1 must decide */
		big[i][1] = prng();
		sum0 += big[i][0];
		sum1 += big[i][1];
	}
	npy_sort_uids(big, N);
	for (i = 0; i < N; i++) {
		after0 += big[i][0];
		after1 += big[i][1];
		if (i > 0 && (big[i - 1][0] > big[i][0] ||
		              (big[i - 1][0] == big[i][0] && big[i - 1][1] > big[i][1]))) {
			harness_fail(__FILE__, __LINE__, "out of order at %zu", i);
			return;
		}
	}
	CHECK(sum0 == after0 && sum1 == after1); /* a permutation, not an overwrite */
}

static int parse_count(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

/* --emit N SEED: see the file comment. Returns the process exit status. */
static int emit(uint64_t n, uint64_t seed)
{
	uint64_t(*pairs)[2] = NULL;
	uint8_t *data = NULL;
	char head[NPY_HEADER_MAX], uid[40];
	size_t h, i, len;
	int rc = 1;

	pairs = malloc(n ? n * sizeof(*pairs) : 1);
	data = malloc(n ? n * NPY_RECORD_SIZE : 1);
	if (pairs == NULL || data == NULL)
		goto out;
	prng_state = seed;
	for (i = 0; i < n; i++) {
		uint64_t d = prng();
		uint64_t hi = d >> (d & 63), lo = prng();

		snprintf(uid, sizeof(uid), "%llx%016llx", (unsigned long long)hi,
		         (unsigned long long)lo);
		len = strlen(uid);
		if (npy_uid_parse(uid, len, &pairs[i][0], &pairs[i][1]) != 0)
			goto out;
	}
	npy_sort_uids(pairs, n);
	h = npy_header(head, sizeof(head), n);
	len = npy_encode_pairs((const uint64_t(*)[2])pairs, n, data);
	if (h == 0 || fwrite(head, 1, h, stdout) != h || fwrite(data, 1, len, stdout) != len ||
	    fflush(stdout) != 0)
		goto out;
	rc = 0;
out:
	free(pairs);
	free(data);
	return rc;
}

int main(int argc, char **argv)
{
	uint64_t n, seed;
	char head[NPY_HEADER_MAX];
	size_t h;

	if (argc == 4 && strcmp(argv[1], "--emit") == 0) {
		if (parse_count(argv[2], &n) != 0 || parse_count(argv[3], &seed) != 0 ||
		    n > EMIT_MAX) {
			fprintf(stderr, "usage: %s --emit N SEED (N <= %llu)\n", argv[0], EMIT_MAX);
			return 2;
		}
		return emit(n, seed);
	}
	if (argc == 3 && strcmp(argv[1], "--header") == 0) {
		if (parse_count(argv[2], &n) != 0) {
			fprintf(stderr, "usage: %s --header N\n", argv[0]);
			return 2;
		}
		h = npy_header(head, sizeof(head), n);
		return h != 0 && fwrite(head, 1, h, stdout) == h && fflush(stdout) == 0 ? 0 : 1;
	}
	HARNESS_RUN(test_spec_uids);
	HARNESS_RUN(test_short_uids);
	HARNESS_RUN(test_rejections);
	HARNESS_RUN(test_header_small);
	HARNESS_RUN(test_header_large);
	HARNESS_RUN(test_two_record_file);
	HARNESS_RUN(test_encode_byte_order);
	HARNESS_RUN(test_sort);
	return harness_done();
}
