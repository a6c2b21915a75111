/* SPDX-License-Identifier: MIT */
/* npy: the DataComp subset file, a numpy .npy v1.0 of dtype "u8,u8" (uid hi64, lo64), sorted.
 *
 * Owns nothing: pure functions over caller buffers, thread-safe. The header is byte-for-byte
 * what numpy 1.24's np.save writes; since numpy 1.24 reserves room for 21 shape digits
 * (GROWTH_AXIS_MAX_DIGITS), the preamble is 128 bytes for every uint64 record count. */
#ifndef WINNOW_NPY_H
#define WINNOW_NPY_H

#include <stddef.h>
#include <stdint.h>

/* Room that npy_header() ever needs (the preamble is 128 bytes for every n). */
#define NPY_HEADER_MAX 128

/* Bytes per record in the data part: f0 then f1, each little-endian uint64. */
#define NPY_RECORD_SIZE 16

/* Parse a DataComp uid: len (1..32) hex digits of uid (either case, no prefix, no NUL needed),
 * left-padded with '0' to 32 digits as DataComp's resharder does, then split into
 * *hi = digits 0..15 (field f0) and *lo = digits 16..31 (field f1). uid is borrowed.
 * Returns 0, or ERR_INVALID for an empty uid, more than 32 digits or a non-hex character;
 * *hi and *lo are written only on success. */
int npy_uid_parse(const char *uid, size_t len, uint64_t *hi, uint64_t *lo);

/* Write into buf (borrowed, size bytes) the .npy v1.0 preamble numpy's np.save writes for
 * a structured array of dtype [('f0', '<u8'), ('f1', '<u8')] and shape (n,): magic,
 * version 1.0, u16 LE header length, the dict text padded with spaces and a final '\n' to
 * a multiple of 64 bytes. Returns the bytes written (128), or 0 when size is too small
 * (NPY_HEADER_MAX always suffices); nothing is written then. */
size_t npy_header(char *buf, size_t size, uint64_t n);

/* Sort n (f0, f1) pairs ascending by f0, then f1, in place: the order of the 32-digit hex
 * uids, which the resharder's searchsorted needs. qsort(), so O(n log n), no allocation,
 * not stable (equal pairs are identical, so stability does not matter). pairs is borrowed. */
void npy_sort_uids(uint64_t (*pairs)[2], size_t n);

/* Write n pairs as n * NPY_RECORD_SIZE bytes into out (borrowed, room for that many):
 * f0 then f1, each little-endian whatever the host's byte order. Returns n * 16. */
size_t npy_encode_pairs(const uint64_t (*pairs)[2], size_t n, uint8_t *out);

#endif
