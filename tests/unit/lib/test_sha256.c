/* SPDX-License-Identifier: MIT */
/* test_sha256: FIPS 180-4 vectors, padding boundaries, incremental updates, ct_equal. */
#include "lib/sha256.h"
#include "tests/harness.h"

#include <string.h>

static void hex_of(const uint8_t d[32], char out[65])
{
	static const char digits[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 32; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[64] = '\0';
}

static void test_empty(void)
{
	char hex[65];

	sha256_hex("", 0, hex);
	CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_abc(void)
{
	char hex[65];

	sha256_hex("abc", 3, hex);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_nist_448(void)
{
	const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	char hex[65];

	sha256_hex(m, strlen(m), hex);
	CHECK_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_million_a(void)
{
	struct sha256_ctx c;
	uint8_t chunk[1000], d[32];
	char hex[65];
	int i;

	/* Fed in 1000-byte pieces, as a stream would arrive. */
	memset(chunk, 'a', sizeof chunk);
	sha256_init(&c);
	for (i = 0; i < 1000; i++)
		sha256_update(&c, chunk, sizeof chunk);
	sha256_final(&c, d);
	hex_of(d, hex);
	CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_padding_boundaries(void)
{
	/* 55 bytes: length fits in the last block; 56: it spills; 64: a whole extra block. */
	char m[64], hex[65];

	memset(m, 'a', sizeof m);
	sha256_hex(m, 55, hex);
	CHECK_STR(hex, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
	sha256_hex(m, 56, hex);
	CHECK_STR(hex, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
	sha256_hex(m, 64, hex);
	CHECK_STR(hex, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

static void test_incremental_every_split(void)
{
	uint8_t m[200], d[32];
	char one[65], hex[65];
	size_t split, third;
	int i;

	for (i = 0; i < 200; i++)
		m[i] = (uint8_t)((i * 7 + 3) & 255);
	sha256_hex(m, sizeof m, one);
	/* Expected value computed independently with Python's hashlib. */
	CHECK_STR(one, "2c7e18c942ef065b526a2d4e5546283749cd3ddfb51d8fc71f42717363685f46");
	for (split = 0; split <= sizeof m; split++) {
		struct sha256_ctx c;

		sha256_init(&c);
		sha256_update(&c, m, split);
		sha256_update(&c, m + split, sizeof m - split);
		sha256_final(&c, d);
		hex_of(d, hex);
		CHECK_STR(hex, one);
	}
	/* Three pieces, the middle one empty or short, exercising a partly filled buffer. */
	for (split = 0; split <= sizeof m; split++) {
		struct sha256_ctx c;

		third = split + (sizeof m - split) / 3;
		sha256_init(&c);
		sha256_update(&c, m, split);
		sha256_update(&c, m + split, 0);
		sha256_update(&c, m + split, third - split);
		sha256_update(&c, m + third, sizeof m - third);
		sha256_final(&c, d);
		hex_of(d, hex);
		CHECK_STR(hex, one);
	}
}

static void test_ct_equal(void)
{
	uint8_t a[32], b[32];

	memset(a, 0x5a, sizeof a);
	memcpy(b, a, sizeof b);
	CHECK_INT(sha256_ct_equal(a, b, sizeof a), 1);
	b[31] ^= 1;
	CHECK_INT(sha256_ct_equal(a, b, sizeof a), 0);
	b[31] ^= 1;
	b[0] ^= 0x80;
	CHECK_INT(sha256_ct_equal(a, b, sizeof a), 0);
	CHECK_INT(sha256_ct_equal(a, b, 0), 1);
	CHECK_INT(sha256_ct_equal(a + 1, b + 1, 31), 1);
}

int main(void)
{
	HARNESS_RUN(test_empty);
	HARNESS_RUN(test_abc);
	HARNESS_RUN(test_nist_448);
	HARNESS_RUN(test_million_a);
	HARNESS_RUN(test_padding_boundaries);
	HARNESS_RUN(test_incremental_every_split);
	HARNESS_RUN(test_ct_equal);
	return harness_done();
}
