/* SPDX-License-Identifier: MIT */
/* sha256: FIPS 180-4 SHA-256, for API key hashes and image/text digests.
 * Pure functions, thread-safe. */
#ifndef WINNOW_SHA256_H
#define WINNOW_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sha256_ctx {
	uint32_t h[8];
	uint64_t len;
	uint8_t buf[64];
	size_t fill;
};

void sha256_init(struct sha256_ctx *c);
void sha256_update(struct sha256_ctx *c, const void *data, size_t len);
void sha256_final(struct sha256_ctx *c, uint8_t out[32]);

/* One-shot digest as 64 lowercase hex digits and a NUL. */
void sha256_hex(const void *data, size_t len, char out[65]);

/* Compare n bytes in time independent of their contents. 1 equal, 0 not. */
int sha256_ct_equal(const void *a, const void *b, size_t n);

#endif
