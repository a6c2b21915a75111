/* SPDX-License-Identifier: MIT */
/* jsonnum: shortest round-trip numbers in JSON text (see jsonnum.h). One pass: copy the
 * text down over itself, skipping strings, and reformat number tokens that carry more
 * digits than their double needs. */
#include "lib/jsonnum.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Significant digits of a number token p[0..n): digits of the mantissa without leading
 * zeros. */
static int significant(const char *p, size_t n)
{
	int d = 0, lead = 1;

	for (size_t i = 0; i < n && p[i] != 'e' && p[i] != 'E'; i++) {
		if (p[i] < '0' || p[i] > '9')
			continue;
		if (lead && p[i] == '0')
			continue;
		lead = 0;
		d++;
	}
	return d;
}

/* The shortest form of v, shorter than n bytes, into out (>= 32 bytes); its length, or 0
 * when there is none (keep the n-byte form). */
static size_t shortest_of(double v, size_t n, char *out)
{
	for (int prec = 15; prec < 17; prec++) {
		int k = snprintf(out, 32, "%.*g", prec, v);

		if (k > 0 && (size_t)k < n && strtod(out, NULL) == v) {
			/* keep a real looking like a real: "1e+20" and "0.5" are, "3" is not */
			if (strpbrk(out, ".eEn") == NULL) {
				if ((size_t)k + 2 >= n)
					return 0;
				memcpy(out + k, ".0", 3);
				k += 2;
			}
			return (size_t)k;
		}
	}
	return 0;
}

/* The shortest form of the double the token p[0..n) means into out (>= 32 bytes); its length,
 * or 0 to keep the token (no shorter form, or not a number strtod takes whole). */
static size_t shortest(const char *p, size_t n, char *out)
{
	char tok[64], *end;
	double v;

	if (n >= sizeof tok)
		return 0;
	memcpy(tok, p, n);
	tok[n] = '\0';
	v = strtod(tok, &end);
	if (*end != '\0')
		return 0;
	return shortest_of(v, n, out);
}

size_t jsonnum_real(double v, char out[JSONNUM_REAL_MAX])
{
	char tok[JSONNUM_REAL_MAX], *x;
	int n = snprintf(tok, sizeof tok, "%.17g", v);
	size_t k;

	if (n <= 0 || (size_t)n + 3 > sizeof tok) { /* not finite, or no room: what %.17g gave */
		snprintf(out, JSONNUM_REAL_MAX, "%s", n > 0 ? tok : "0.0");
		return strlen(out);
	}
	/* jansson's dtostr: a '.' or an exponent always; the exponent without '+' or leading 0s */
	if (strchr(tok, '.') == NULL && strchr(tok, 'e') == NULL) {
		memcpy(tok + n, ".0", 3);
		n += 2;
	}
	if ((x = strchr(tok, 'e')) != NULL) {
		char *start = x + 1 + (x[1] == '-'), *end = x + 2;

		while (*end == '0')
			end++;
		memmove(start, end, strlen(end) + 1);
		n = (int)strlen(tok);
	}
	/* then jsonnum_shorten's rule for the token */
	if (significant(tok, (size_t)n) > 15 && (k = shortest_of(v, (size_t)n, out)) > 0)
		return k;
	memcpy(out, tok, (size_t)n + 1);
	return (size_t)n;
}

size_t jsonnum_shorten(char *s, size_t len)
{
	size_t r = 0, w = 0;

	while (r < len) {
		char c = s[r];

		if (c == '"') { /* a string, escapes included, copied as it is */
			s[w++] = s[r++];
			while (r < len && s[r] != '"') {
				if (s[r] == '\\' && r + 1 < len)
					s[w++] = s[r++];
				s[w++] = s[r++];
			}
			if (r < len)
				s[w++] = s[r++];
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			size_t start = r, k;
			char buf[32];

			while (r < len && (s[r] == '-' || s[r] == '+' || s[r] == '.' || s[r] == 'e' ||
			                   s[r] == 'E' || (s[r] >= '0' && s[r] <= '9')))
				r++;
			/* integers are exact as they are: only reals (a '.' or an exponent) change */
			if (memchr(s + start, '.', r - start) == NULL &&
			    memchr(s + start, 'e', r - start) == NULL &&
			    memchr(s + start, 'E', r - start) == NULL)
				k = 0;
			else if (significant(s + start, r - start) <= 15)
				k = 0;
			else
				k = shortest(s + start, r - start, buf);
			if (k > 0) {
				memcpy(s + w, buf, k);
				w += k;
			} else {
				memmove(s + w, s + start, r - start);
				w += r - start;
			}
		} else {
			s[w++] = s[r++];
		}
	}
	if (w < len)
		s[w] = '\0';
	return w;
}
