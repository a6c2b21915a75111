/* SPDX-License-Identifier: MIT */
/* hits: the binary search answer, media type application/vnd.winnow.hits, for callers that
 * want ids and scores without JSON (docs/api.md, "Binary answers"). Every integer is a
 * little-endian u32, every score a little-endian IEEE f32 (the engine's own score, so the
 * answer is as exact as the JSON one):
 *
 *   "WNH1"  u32 nq  u32 limit  u32 id_bytes
 *   u32 count[nq]           results of each query (0 to limit)
 *   u32 flags[nq]           HITS_TRUNCATED: more matches than shown (JSON's "truncated")
 *   f32 score[nq * limit]   query i's results at [i * limit, i * limit + count[i]); NaN after
 *   u32 id_end[nq * limit]  where each id ends in the id bytes (a slot after count[i]
 *                           repeats the previous end: an empty id)
 *   id bytes                every id (UTF-8), one after another, id_bytes in all
 *
 * Fixed strides, so a reader takes scores as one (nq, limit) array. An answer is made of
 * one part per query (hits_part_*), joined in order (hits_join). Stateless; a part is not
 * thread-safe, distinct parts are. */
#ifndef WINNOW_HITS_H
#define WINNOW_HITS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/jtext.h"

#define HITS_MEDIA_TYPE "application/vnd.winnow.hits"
#define HITS_MAGIC      "WNH1" /* the first 4 bytes */
#define HITS_TRUNCATED  1u

/* The detail of a 406 not_acceptable for what the binary answer cannot hold; its %s names
 * what that is ("counts (search:count)", ...). */
#define HITS_JSON_ONLY                                                                             \
	"%s come in JSON only: the binary answer (" HITS_MEDIA_TYPE ") holds ids and "             \
	"scores; accept application/json"

/* Start a query's part (t empty) with its flags. */
void hits_part_begin(struct jtext *t, uint32_t flags);

/* Add a result to the part: its id (id_len bytes, at most UINT32_MAX) and score. */
void hits_part_add(struct jtext *t, const char *id, size_t id_len, float score);

/* The answer of nq parts (part[i]: part_len[i] bytes, as hits_part_* wrote them) with limit
 * slots per query: *out new (free()), *len bytes. -1 when out of memory or a part holds more
 * than limit results or does not parse (nothing allocated). */
int hits_join(char *const *part, const size_t *part_len, size_t nq, uint32_t limit, char **out,
              size_t *len);

/* Is the answer p (n bytes) a binary one? (JSON text never starts with "WNH1".) */
int hits_is(const char *p, size_t n);

#endif
