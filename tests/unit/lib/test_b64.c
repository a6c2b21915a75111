/* SPDX-License-Identifier: MIT */
/* test_b64: RFC 4648 vectors both ways, unpadded input, strict rejections, random round
 * trips against a bit-by-bit reference encoder, and a (printed, not asserted) decode rate. */
#include "lib/b64.h"
#include "lib/err.h"
#include "tests/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const rfc_plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *const rfc_coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                        "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};

static uint64_t prng_state;

static uint64_t prng(void)
{
	uint64_t z = (prng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Decode a NUL-terminated string; returns the b64_decode code, bytes in out. */
static int dec(const char *s, uint8_t *out, size_t *n)
{
	return b64_decode(s, strlen(s), out, n);
}

/* The reference: walk the input bit by bit, 6 bits per character, pad to 4. */
static void ref_encode(const uint8_t *in, size_t len, char *out)
{
	static const char alpha[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t bits = len * 8, bit, k = 0;

	for (bit = 0; bit < bits; bit += 6) {
		unsigned v = 0, j;

		for (j = 0; j < 6; j++) {
			size_t b = bit + j;

			v <<= 1;
			if (b < bits)
				v |= (in[b / 8] >> (7 - b % 8)) & 1u;
		}
		out[k++] = alpha[v];
	}
	while (k % 4)
		out[k++] = '=';
	out[k] = '\0';
}

static void test_rfc_encode(void)
{
	char got[16];
	size_t i, n;

	for (i = 0; i < sizeof rfc_plain / sizeof rfc_plain[0]; i++) {
		char *s = b64_encode(rfc_plain[i], strlen(rfc_plain[i]), &n);

		CHECK(s != NULL);
		snprintf(got, sizeof got, "%s", s);
		free(s);
		CHECK_INT(n, strlen(rfc_coded[i]));
		CHECK_STR(got, rfc_coded[i]);
	}
}

static void test_rfc_decode(void)
{
	uint8_t out[16];
	size_t i, n;

	for (i = 0; i < sizeof rfc_plain / sizeof rfc_plain[0]; i++) {
		n = 99;
		CHECK_INT(dec(rfc_coded[i], out, &n), 0);
		CHECK_INT(n, strlen(rfc_plain[i]));
		CHECK(memcmp(out, rfc_plain[i], n) == 0);
	}
}

static void test_unpadded(void)
{
	static const char *const coded[] = {"Zg", "Zm8", "Zm9vYg", "Zm9vYmE"};
	static const char *const plain[] = {"f", "fo", "foob", "fooba"};
	uint8_t out[16];
	size_t i, n;

	for (i = 0; i < 4; i++) {
		CHECK_INT(dec(coded[i], out, &n), 0);
		CHECK_INT(n, strlen(plain[i]));
		CHECK(memcmp(out, plain[i], n) == 0);
	}
	/* Every byte value in both places of a one-byte tail. */
	CHECK_INT(dec("/w", out, &n), 0);
	CHECK_INT(n, 1);
	CHECK_INT(out[0], 0xff);
	CHECK_INT(dec("+/8", out, &n), 0);
	CHECK_INT(n, 2);
	CHECK_INT(out[0], 0xfb);
	CHECK_INT(out[1], 0xff);
}

static void test_rejects(void)
{
	static const char *const bad[] = {
		"Zg=",       /* padding without a whole group */
		"Zh==",      /* non-zero trailing bits, one byte */
		"Zm9=",      /* non-zero trailing bits, two bytes */
		"Zh",        /* the same, unpadded */
		"Zm9",       /* the same, unpadded */
		"Z",         /* a lone sextet is never a byte */
		"Zm9vZ",     /* the same after a whole group */
		"Zm9v!",     /* a character outside the alphabet */
		"Zm 9v",     /* whitespace is not skipped */
		"Zm9v\n",    /* nor newlines */
		"Zg===",     /* too much padding */
		"Z===",      /* three pad characters */
		"====",      /* nothing but padding */
		"Zg==Zm9v",  /* padding in the middle */
		"Zm=v",      /* '=' inside a group */
		"Zm9v-_8A",  /* the URL-safe alphabet is another encoding */
		"Zm9vYmFy\xc3\xa9", /* non-ASCII */
	};
	uint8_t out[32];
	size_t i, n;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		n = 77;
		if (dec(bad[i], out, &n) != ERR_MALFORMED)
			CHECK_STR(bad[i], "(rejected)");
		CHECK_INT(n, 77); /* untouched on failure */
	}
}

/* A bad character is caught wherever it sits: in the 8-wide loop, the 4-wide step, the tail. */
static void test_reject_every_position(void)
{
	uint8_t raw[40], out[64];
	char *s;
	size_t len, pos, n;

	memset(raw, 0xa5, sizeof raw);
	s = b64_encode(raw, sizeof raw, &len); /* 40 bytes -> 56 chars, "=" at the end */
	CHECK(s != NULL);
	CHECK_INT(len, 56);
	for (pos = 0; pos < len; pos++) {
		char keep = s[pos];
		int rc;

		s[pos] = '*';
		rc = b64_decode(s, len, out, &n);
		s[pos] = keep;
		if (rc != ERR_MALFORMED)
			break;
	}
	if (pos < len) {
		free(s);
		CHECK_INT(pos, len); /* a bad character at pos was accepted */
	}
	CHECK_INT(b64_decode(s, len, out, &n), 0);
	CHECK_INT(n, 40);
	CHECK(memcmp(out, raw, 40) == 0);
	free(s);
}

static void test_decoded_max(void)
{
	CHECK_INT(b64_decoded_max(0), 0);
	CHECK_INT(b64_decoded_max(2), 1);
	CHECK_INT(b64_decoded_max(3), 2);
	CHECK_INT(b64_decoded_max(4), 3);
	CHECK_INT(b64_decoded_max(6), 4);
	CHECK_INT(b64_decoded_max(8), 6);
	CHECK_INT(b64_decoded_max(2048), 1536);
}

static void test_random_round_trips(void)
{
	uint8_t raw[300] = {0}, out[300];
	char ref[404], got[404];
	size_t len, i, n, elen;

	prng_state = 42;
	for (len = 0; len <= 300; len++) {
		char *s;

		for (i = 0; i < len; i++)
			raw[i] = (uint8_t)prng();
		s = b64_encode(raw, len, &elen);
		CHECK(s != NULL);
		ref_encode(raw, len, ref);
		snprintf(got, sizeof got, "%s", s);
		free(s);
		CHECK_INT(elen, (len + 2) / 3 * 4);
		CHECK_INT(strlen(got), elen);
		CHECK_STR(got, ref);
		n = 999;
		CHECK_INT(b64_decode(got, elen, out, &n), 0);
		CHECK_INT(n, len);
		CHECK(memcmp(out, raw, len) == 0);
		/* The same without its padding. */
		while (elen > 0 && got[elen - 1] == '=')
			elen--;
		CHECK(b64_decoded_max(elen) >= len);
		n = 999;
		CHECK_INT(b64_decode(got, elen, out, &n), 0);
		CHECK_INT(n, len);
		CHECK(memcmp(out, raw, len) == 0);
	}
}

/* Not asserted (machines and sanitizers differ); the ingest path wants > 1 GB/s. */
static void test_decode_rate(void)
{
	size_t raw_len = 1536 * 4096, elen, n = 0;
	uint8_t *raw = malloc(raw_len), *out = malloc(raw_len);
	struct timespec t0, t1;
	char *s = NULL;
	double sec;
	size_t i;
	int rep, rc = 0;

	CHECK(raw != NULL && out != NULL);
	prng_state = 7;
	for (i = 0; i < raw_len; i++)
		raw[i] = (uint8_t)prng();
	s = b64_encode(raw, raw_len, &elen);
	if (s == NULL)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (rep = 0; rep < 8; rep++)
		rc |= b64_decode(s, elen, out, &n);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	sec = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("  decode: %.0f MB/s of base64 in\n", 8.0 * (double)elen / sec / 1e6);
out:
	free(raw);
	free(out);
	free(s);
	CHECK(s != NULL);
	CHECK_INT(rc, 0);
	CHECK_INT(n, raw_len);
}

int main(void)
{
	HARNESS_RUN(test_rfc_encode);
	HARNESS_RUN(test_rfc_decode);
	HARNESS_RUN(test_unpadded);
	HARNESS_RUN(test_rejects);
	HARNESS_RUN(test_reject_every_position);
	HARNESS_RUN(test_decoded_max);
	HARNESS_RUN(test_random_round_trips);
	HARNESS_RUN(test_decode_rate);
	return harness_done();
}
