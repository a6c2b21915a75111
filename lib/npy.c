/* SPDX-License-Identifier: MIT */
/* npy: DataComp subset files (.npy v1.0, dtype "u8,u8"): uid parsing, header, sort, encode.
 *
 * Owns nothing; pure functions, thread-safe. The header follows numpy 1.24's
 * numpy/lib/format.py (_write_array_header + _wrap_header) exactly, including its quirks:
 * 21 - digits(n) spare spaces after the dict, and a full 64 bytes of padding when the text
 * would already end on a 64-byte boundary. */
#include "lib/npy.h"

#include "lib/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* numpy's GROWTH_AXIS_MAX_DIGITS: room kept so that the shape can grow in place. */
#define NPY_GROWTH_DIGITS 21
/* numpy's ARRAY_ALIGN: data starts on this boundary so that it can be memory-mapped. */
#define NPY_ALIGN 64
/* Magic (6) + version (2) + u16 header length (2). */
#define NPY_PREFIX 10

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int npy_uid_parse(const char *uid, size_t len, uint64_t *hi, uint64_t *lo)
{
	uint64_t h = 0, l = 0;
	size_t i;

	if (uid == NULL || len == 0 || len > 32)
		return ERR_INVALID;
	/* Shifting the 128-bit value in digit by digit is the same as padding on the left:
	 * leading zeros change nothing. */
	for (i = 0; i < len; i++) {
		int v = hex_value(uid[i]);

		if (v < 0)
			return ERR_INVALID;
		h = (h << 4) | (l >> 60);
		l = (l << 4) | (uint64_t)v;
	}
	*hi = h;
	*lo = l;
	return 0;
}

size_t npy_header(char *buf, size_t size, uint64_t n)
{
	char text[NPY_HEADER_MAX];
	int len, digits;
	size_t hlen, pad, total;

	digits = snprintf(text, sizeof(text), "%llu", (unsigned long long)n);
	len = snprintf(text, sizeof(text),
	               "{'descr': [('f0', '<u8'), ('f1', '<u8')], 'fortran_order': False, "
	               "'shape': (%llu,), }%*s",
	               (unsigned long long)n, NPY_GROWTH_DIGITS - digits, "");
	if (len < 0 || (size_t)len >= sizeof(text))
		return 0;
	hlen = (size_t)len + 1; /* + the final '\n' */
	pad = NPY_ALIGN - (NPY_PREFIX + hlen) % NPY_ALIGN;
	total = NPY_PREFIX + hlen + pad;
	if (total > size)
		return 0;
	memcpy(buf, "\x93NUMPY\x01\x00", 8);
	buf[8] = (char)((hlen + pad) & 0xff);
	buf[9] = (char)((hlen + pad) >> 8);
	memcpy(buf + NPY_PREFIX, text, (size_t)len);
	memset(buf + NPY_PREFIX + len, ' ', pad);
	buf[total - 1] = '\n';
	return total;
}

static int cmp_pair(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	if (x[0] != y[0])
		return x[0] < y[0] ? -1 : 1;
	if (x[1] != y[1])
		return x[1] < y[1] ? -1 : 1;
	return 0;
}

void npy_sort_uids(uint64_t (*pairs)[2], size_t n)
{
	if (n > 1)
		qsort(pairs, n, sizeof(pairs[0]), cmp_pair);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

size_t npy_encode_pairs(const uint64_t (*pairs)[2], size_t n, uint8_t *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		put_le64(out + i * NPY_RECORD_SIZE, pairs[i][0]);
		put_le64(out + i * NPY_RECORD_SIZE + 8, pairs[i][1]);
	}
	return n * NPY_RECORD_SIZE;
}
