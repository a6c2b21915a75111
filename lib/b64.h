/* SPDX-License-Identifier: MIT */
/* b64: RFC 4648 base64 (standard alphabet, '=' padding) for embeddings on the wire.
 * Pure functions, thread-safe. */
#ifndef WINNOW_B64_H
#define WINNOW_B64_H

#include <stddef.h>
#include <stdint.h>

/* Upper bound of the decoded size of len base64 characters. */
size_t b64_decoded_max(size_t len);

/* Decode len characters of in into out (room for b64_decoded_max(len) bytes).
 * Accepts padded or unpadded input; rejects any other character (no whitespace), bad
 * padding and non-zero trailing bits. Returns 0 and sets *out_len, or ERR_MALFORMED. */
int b64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len);

/* Encode len bytes as padded base64. Returns a new NUL-terminated string (free()) and
 * sets *out_len (may be NULL), or NULL when out of memory. */
char *b64_encode(const void *in, size_t len, size_t *out_len);

#endif
