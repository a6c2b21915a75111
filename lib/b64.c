/* SPDX-License-Identifier: MIT */
/* b64: RFC 4648 base64 encode and strict decode (standard alphabet), table-driven.
 *
 * Owns only constant tables; pure functions, thread-safe. Decode is on the ingest hot path
 * (two 768-d f16 vectors per record), so the main loop is branch-free: invalid characters
 * map to 0xff and are OR-ed into one flag that is tested once after the loop; on error the
 * output bytes are garbage, which is fine because the caller discards them. */
#include "lib/b64.h"

#include "lib/err.h"

#include <stdlib.h>
#include <string.h>

static const char b64_alphabet[64] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

#define X 0xff
/* Sextet of each byte; X for every byte outside the alphabet, '=' included (padding is
 * recognised by position before the table is consulted). */
static const uint8_t b64_sextet[256] = {
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  62, X,  X,  X,  63,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, X,  X,  X,  X,  X,  X,
	X,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, X,  X,  X,  X,  X,
	X,  26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
	X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
};
#undef X

size_t b64_decoded_max(size_t len)
{
	/* A short last group of 2 or 3 characters carries 1 or 2 bytes. */
	return len / 4 * 3 + (len % 4 > 1 ? len % 4 - 1 : 0);
}

int b64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t tail, full, i;
	unsigned bad = 0;
	uint8_t *o = out;
	uint32_t a, b, c, d;

	if (len % 4 == 1)
		return ERR_MALFORMED;
	/* tail = the data characters of the last, short group (0, 2 or 3). */
	tail = len % 4;
	if (tail == 0 && len > 0 && s[len - 1] == '=') {
		tail = s[len - 2] == '=' ? 2 : 3;
		len -= 4 - tail;
	}
	full = len - tail;
	/* Two groups per step: 8 sextets assembled in 64 bits, stored as 6 bytes. */
	for (i = 0; i + 8 <= full; i += 8) {
		uint32_t e, f, g, h;
		uint64_t v;

		a = b64_sextet[s[i]];
		b = b64_sextet[s[i + 1]];
		c = b64_sextet[s[i + 2]];
		d = b64_sextet[s[i + 3]];
		e = b64_sextet[s[i + 4]];
		f = b64_sextet[s[i + 5]];
		g = b64_sextet[s[i + 6]];
		h = b64_sextet[s[i + 7]];
		bad |= a | b | c | d | e | f | g | h;
		v = (uint64_t)a << 42 | (uint64_t)b << 36 | (uint64_t)c << 30 | (uint64_t)d << 24 |
		    (uint64_t)e << 18 | (uint64_t)f << 12 | (uint64_t)g << 6 | (uint64_t)h;
		o[0] = (uint8_t)(v >> 40);
		o[1] = (uint8_t)(v >> 32);
		o[2] = (uint8_t)(v >> 24);
		o[3] = (uint8_t)(v >> 16);
		o[4] = (uint8_t)(v >> 8);
		o[5] = (uint8_t)v;
		o += 6;
	}
	if (i < full) {
		uint32_t v;

		a = b64_sextet[s[i]];
		b = b64_sextet[s[i + 1]];
		c = b64_sextet[s[i + 2]];
		d = b64_sextet[s[i + 3]];
		bad |= a | b | c | d;
		v = a << 18 | b << 12 | c << 6 | d;
		o[0] = (uint8_t)(v >> 16);
		o[1] = (uint8_t)(v >> 8);
		o[2] = (uint8_t)v;
		o += 3;
	}
	if (tail >= 2) {
		a = b64_sextet[s[full]];
		b = b64_sextet[s[full + 1]];
		c = tail == 3 ? b64_sextet[s[full + 2]] : 0;
		bad |= a | b | c;
		/* The bits past the last whole byte must be zero (RFC 4648 3.5), so that every
		 * byte string has exactly one accepted encoding. */
		if (tail == 2)
			bad |= (b & 0x0f) ? 0x80 : 0;
		else
			bad |= (c & 0x03) ? 0x80 : 0;
		*o++ = (uint8_t)(a << 2 | b >> 4);
		if (tail == 3)
			*o++ = (uint8_t)(b << 4 | c >> 2);
	}
	if (bad & 0x80)
		return ERR_MALFORMED;
	*out_len = (size_t)(o - out);
	return 0;
}

char *b64_encode(const void *in, size_t len, size_t *out_len)
{
	const uint8_t *p = in;
	size_t n, i;
	char *out, *o;

	if (len > (SIZE_MAX - 1) / 4 * 3)
		return NULL;
	n = (len + 2) / 3 * 4;
	out = malloc(n + 1);
	if (out == NULL)
		return NULL;
	o = out;
	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		o[0] = b64_alphabet[v >> 18];
		o[1] = b64_alphabet[(v >> 12) & 63];
		o[2] = b64_alphabet[(v >> 6) & 63];
		o[3] = b64_alphabet[v & 63];
		o += 4;
	}
	if (len - i == 1) {
		o[0] = b64_alphabet[p[i] >> 2];
		o[1] = b64_alphabet[(p[i] & 3) << 4];
		o[2] = '=';
		o[3] = '=';
		o += 4;
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];

		o[0] = b64_alphabet[v >> 10];
		o[1] = b64_alphabet[(v >> 4) & 63];
		o[2] = b64_alphabet[(v & 15) << 2];
		o[3] = '=';
		o += 4;
	}
	*o = '\0';
	if (out_len != NULL)
		*out_len = n;
	return out;
}
