/* SPDX-License-Identifier: MIT */
/* jtext: JSON text written directly into a growing buffer, byte for byte as jansson's
 * json_dumps(JSON_COMPACT) writes the same values and jsonnum_shorten then rewrites them.
 * For the hot answers (a search's ids and scores) where building a jansson tree, dumping it
 * and reparsing its numbers cost more than the search around them. Not thread-safe per
 * buffer; no state besides it. */
#ifndef WINNOW_JTEXT_H
#define WINNOW_JTEXT_H

#include <stddef.h>
#include <stdint.h>

struct jtext {
	char *p;         /* NUL-terminated text so far (NULL before the first byte) */
	size_t len, cap;
	int oom;         /* 1 once an allocation failed: the text is incomplete */
};

/* n bytes of s as they are (JSON punctuation, keys known to need no escape). */
void jtext_raw(struct jtext *t, const char *s, size_t n);

/* The NUL-terminated s as they are. */
void jtext_lit(struct jtext *t, const char *s);

/* s[0..n) (UTF-8) as a JSON string: quoted, with '"', '\\' and control characters escaped
 * as jansson escapes them. */
void jtext_str(struct jtext *t, const char *s, size_t n);

/* The real v as jsonnum_real writes it; null when it is not finite. */
void jtext_real(struct jtext *t, double v);

/* An unsigned integer. */
void jtext_uint(struct jtext *t, uint64_t v);

/* The text (new: free() it) and *len its length; NULL (everything freed) after an
 * allocation failed. t is empty after. */
char *jtext_take(struct jtext *t, size_t *len);

#endif
