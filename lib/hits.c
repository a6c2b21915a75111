/* SPDX-License-Identifier: MIT */
/* hits: the binary search answer (the layout is in hits.h). A part is
 * [u32 flags] then, per result, [f32 score][u32 id length][id bytes]. */
#include "lib/hits.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/vec.h"

static uint32_t f32_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof u);
	return u;
}

void hits_part_begin(struct jtext *t, uint32_t flags)
{
	unsigned char b[4];

	vec_le32_put(b, flags);
	jtext_raw(t, (const char *)b, sizeof b);
}

void hits_part_add(struct jtext *t, const char *id, size_t id_len, float score)
{
	unsigned char b[8];

	if (id_len > UINT32_MAX) {
		t->oom = 1; /* cannot be written: the part is refused whole */
		return;
	}
	vec_le32_put(b, f32_bits(score));
	vec_le32_put(b + 4, (uint32_t)id_len);
	jtext_raw(t, (const char *)b, sizeof b);
	jtext_raw(t, id, id_len);
}

/* Walk part p (n bytes): its results (*count) and id bytes (*ids); -1 if it does not parse. */
static int part_scan(const unsigned char *p, size_t n, uint32_t *count, uint64_t *ids)
{
	size_t at = 4;

	*count = 0;
	*ids = 0;
	if (n < 4)
		return -1;
	while (at < n) {
		uint32_t l;

		if (n - at < 8 || (l = vec_le32_get(p + at + 4)) > n - at - 8)
			return -1;
		at += 8 + l;
		(*count)++;
		*ids += l;
	}
	return 0;
}

int hits_join(char *const *part, const size_t *part_len, size_t nq, uint32_t limit, char **out,
              size_t *len)
{
	uint64_t ids = 0, total;
	size_t slots = nq * limit;
	unsigned char *b, *counts, *flags, *scores, *ends, *idp;
	uint32_t end = 0;

	for (size_t i = 0; i < nq; i++) {
		uint32_t c;
		uint64_t n;

		if (part_scan((const unsigned char *)part[i], part_len[i], &c, &n) != 0 ||
		    c > limit)
			return -1;
		ids += n;
	}
	if (nq > UINT32_MAX || ids > UINT32_MAX || (limit != 0 && slots / limit != nq))
		return -1;
	total = 16 + 8 * (uint64_t)nq + 8 * (uint64_t)slots + ids;
	if ((b = malloc(total + 1)) == NULL) /* + 1: never malloc(0), and room for a NUL */
		return -1;
	memcpy(b, HITS_MAGIC, 4);
	vec_le32_put(b + 4, (uint32_t)nq);
	vec_le32_put(b + 8, limit);
	vec_le32_put(b + 12, (uint32_t)ids);
	counts = b + 16;
	flags = counts + 4 * nq;
	scores = flags + 4 * nq;
	ends = scores + 4 * slots;
	idp = ends + 4 * slots;
	for (size_t i = 0; i < nq; i++) {
		const unsigned char *p = (const unsigned char *)part[i];
		size_t at = 4, j = 0;

		vec_le32_put(flags + 4 * i, vec_le32_get(p));
		for (; at < part_len[i]; j++) {
			uint32_t l = vec_le32_get(p + at + 4);

			memcpy(scores + 4 * (i * limit + j), p + at, 4);
			memcpy(idp + end, p + at + 8, l);
			end += l;
			vec_le32_put(ends + 4 * (i * limit + j), end);
			at += 8 + l;
		}
		vec_le32_put(counts + 4 * i, (uint32_t)j);
		for (; j < limit; j++) {
			vec_le32_put(scores + 4 * (i * limit + j), f32_bits(NAN));
			vec_le32_put(ends + 4 * (i * limit + j), end);
		}
	}
	b[total] = '\0';
	*out = (char *)b;
	*len = (size_t)total;
	return 0;
}

int hits_is(const char *p, size_t n)
{
	return n >= 4 && memcmp(p, HITS_MAGIC, 4) == 0;
}
