/* SPDX-License-Identifier: MIT */
/* jtext: see jtext.h. */
#include "lib/jtext.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/jsonnum.h"

/* Room for n more bytes and a NUL; 0, or 1 with t->oom set. */
static int room(struct jtext *t, size_t n)
{
	size_t cap;
	char *p;

	if (t->oom)
		return 1;
	if (t->len + n < t->cap)
		return 0;
	cap = t->cap > 0 ? t->cap : 256;
	while (t->len + n >= cap)
		cap *= 2;
	if ((p = realloc(t->p, cap)) == NULL) {
		t->oom = 1;
		return 1;
	}
	t->p = p;
	t->cap = cap;
	return 0;
}

void jtext_raw(struct jtext *t, const char *s, size_t n)
{
	if (room(t, n) != 0)
		return;
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
}

void jtext_lit(struct jtext *t, const char *s)
{
	jtext_raw(t, s, strlen(s));
}

void jtext_str(struct jtext *t, const char *s, size_t n)
{
	size_t run = 0;

	jtext_raw(t, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		jtext_raw(t, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': jtext_raw(t, "\\\"", 2); break;
		case '\\': jtext_raw(t, "\\\\", 2); break;
		case '\b': jtext_raw(t, "\\b", 2); break;
		case '\f': jtext_raw(t, "\\f", 2); break;
		case '\n': jtext_raw(t, "\\n", 2); break;
		case '\r': jtext_raw(t, "\\r", 2); break;
		case '\t': jtext_raw(t, "\\t", 2); break;
		default:
			snprintf(esc, sizeof esc, "\\u%04X", c);
			jtext_raw(t, esc, 6);
		}
	}
	jtext_raw(t, s + run, n - run);
	jtext_raw(t, "\"", 1);
}

void jtext_real(struct jtext *t, double v)
{
	char buf[JSONNUM_REAL_MAX];

	if (!isfinite(v)) { /* JSON has no NaN or infinity (jansson refuses them too) */
		jtext_raw(t, "null", 4);
		return;
	}
	jtext_raw(t, buf, jsonnum_real(v, buf));
}

void jtext_uint(struct jtext *t, uint64_t v)
{
	char buf[24];
	int n = snprintf(buf, sizeof buf, "%" PRIu64, v);

	jtext_raw(t, buf, (size_t)n);
}

char *jtext_take(struct jtext *t, size_t *len)
{
	char *p = t->p;

	if (t->oom || p == NULL) {
		free(p);
		p = t->oom ? NULL : calloc(1, 1);
	}
	if (p != NULL && len != NULL)
		*len = t->oom ? 0 : t->len;
	memset(t, 0, sizeof *t);
	return p;
}
