/* SPDX-License-Identifier: MIT */
/* jsonnum: the shortest round-trip form of the numbers in a JSON text.
 *
 * jansson writes every real with "%.17g", so 0.3 goes out as 0.29999999999999999. This
 * rewrites, in place, each real (a number token with a '.' or an exponent) that has 16 or 17 significant
 * digits to the shortest "%.{15,16,17}g" that strtod reads back as the same double (what
 * Python's repr and JavaScript print); strings and every other token are left as they are.
 * Thread-safe: no state. */
#ifndef WINNOW_JSONNUM_H
#define WINNOW_JSONNUM_H

#include <stddef.h>

/* Shorten the numbers of the JSON text s[0..len) in place (the text never grows); returns
 * the new length and writes a NUL there when there is room (len < the buffer's size is
 * the caller's to know: s[len] must be writable, as it is for json_dumps output). */
size_t jsonnum_shorten(char *s, size_t len);

/* Bytes jsonnum_real may write, its NUL included. */
#define JSONNUM_REAL_MAX 40

/* The text of the real v (finite) into out, NUL-terminated, exactly as jansson's
 * json_dumps writes json_real(v) and jsonnum_shorten then rewrites it; its length. */
size_t jsonnum_real(double v, char out[JSONNUM_REAL_MAX]);

#endif
