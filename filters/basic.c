/* SPDX-License-Identifier: MIT */
/* basic: DataComp's basic_filter (spec section 1.4) without the language id: caption word
 * count and length, image minimum side and aspect ratio. Score 1 when every predicate holds,
 * else 0 with the first failing predicate as the reason.
 *
 * Counting is Python's, so that results match the reference: len(text) counts code points
 * (UTF-8 decoded), text.split() splits on runs of Unicode whitespace (the characters for which
 * str.isspace() is true: ASCII \t \n \v \f \r space, \x1c-\x1f, U+0085, U+00A0, U+1680,
 * U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000). Cheap (scored on ingest), no fit. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>

#include "lib/err.h"
#include "filters/filter.h"
#include "filters/registry.h"
#include "store/store.h"

enum basic_reason { BASIC_TOO_FEW_WORDS, BASIC_TOO_SHORT, BASIC_SMALL_IMAGE, BASIC_BAD_ASPECT };

static const char *const basic_reasons[] = {"too_few_words", "too_short", "small_image",
                                            "bad_aspect", NULL};

struct basic {
	struct filter base;
	double min_words, min_chars, min_side, max_aspect;
	int require_image;
};

static int basic_create(struct filter *f, const json_t *params, const struct store_schema *schema,
                        struct err *e)
{
	static const char *const known[] = {"min_words", "min_chars", "min_side", "max_aspect",
	                                    "require_image", NULL};
	struct basic *b = (struct basic *)f;
	int rc;

	(void)schema;
	b->min_words = 3;  /* len(text.split()) > 2 */
	b->min_chars = 6;  /* len(text) > 5 */
	b->min_side = 200; /* min(w, h) >= 200 */
	b->max_aspect = 3.0;
	b->require_image = 1;
	if ((rc = filter_params_known(params, known, e)) != 0 ||
	    (rc = filter_param_number(params, "min_words", 0, 1e6, 1, &b->min_words, e)) != 0 ||
	    (rc = filter_param_number(params, "min_chars", 0, 1e9, 1, &b->min_chars, e)) != 0 ||
	    (rc = filter_param_number(params, "min_side", 0, 1e9, 1, &b->min_side, e)) != 0 ||
	    (rc = filter_param_number(params, "max_aspect", 1, 1e9, 0, &b->max_aspect, e)) != 0 ||
	    (rc = filter_param_bool(params, "require_image", &b->require_image, e)) != 0)
		return rc;
	f->needs = FILTER_NEEDS_BODY;
	return 0;
}

static int is_space(uint32_t c)
{
	return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
	       c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
	       c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Decode one UTF-8 sequence at s (len bytes left); *n gets its length. jansson hands out
 * valid UTF-8 only, so the checks just keep a malformed byte from reading past the end. */
static uint32_t utf8_next(const unsigned char *s, size_t len, size_t *n)
{
	uint32_t c = s[0];

	if (c < 0x80 || len < 2) {
		*n = 1;
		return c;
	}
	if ((c & 0xe0) == 0xc0) {
		*n = 2;
		return (c & 0x1f) << 6 | (s[1] & 0x3f);
	}
	if ((c & 0xf0) == 0xe0 && len >= 3) {
		*n = 3;
		return (c & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
	}
	if (len >= 4) {
		*n = 4;
		return (c & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 |
		       (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
	}
	*n = 1;
	return c;
}

/* Python's len(text) and len(text.split()). */
static void text_counts(const char *text, size_t len, uint64_t *chars, uint64_t *words)
{
	const unsigned char *s = (const unsigned char *)text;
	int in_word = 0;

	*chars = 0;
	*words = 0;
	for (size_t i = 0; i < len;) {
		size_t n;
		uint32_t c = utf8_next(s + i, len - i, &n);

		i += n;
		(*chars)++;
		if (is_space(c)) {
			in_word = 0;
		} else if (!in_word) {
			in_word = 1;
			(*words)++;
		}
	}
}

/* An image side: a positive JSON integer (or an integral number). */
static int side_of(const json_t *v, double *out)
{
	double d;

	if (!json_is_number(v))
		return v == NULL ? FILTER_NO_FIELD : FILTER_BAD_FIELD;
	d = json_number_value(v);
	if (!(d > 0) || d != floor(d))
		return FILTER_BAD_FIELD;
	*out = d;
	return 0;
}

static void basic_one(const struct basic *b, const json_t *body, unsigned kind, float *score,
                      uint8_t *status)
{
	const json_t *text = json_object_get(body, "text");
	const json_t *img = json_object_get(body, "image");
	uint64_t chars, words;
	double w = 0, h = 0, lo, hi;
	int need_image = b->require_image || kind == STORE_KIND_IMAGE_TEXT, st;

	*score = NAN;
	if (body == NULL || text == NULL) {
		*status = FILTER_NO_FIELD;
		return;
	}
	if (!json_is_string(text)) {
		*status = FILTER_BAD_FIELD;
		return;
	}
	if (need_image) {
		if (!json_is_object(img)) {
			*status = img == NULL ? FILTER_NO_FIELD : FILTER_BAD_FIELD;
			return;
		}
		if ((st = side_of(json_object_get(img, "width"), &w)) != 0 ||
		    (st = side_of(json_object_get(img, "height"), &h)) != 0) {
			*status = (uint8_t)st;
			return;
		}
	}
	text_counts(json_string_value(text), json_string_length(text), &chars, &words);
	*score = 0;
	if ((double)words < b->min_words) {
		*status = FILTER_REASON_BASE + BASIC_TOO_FEW_WORDS;
		return;
	}
	if ((double)chars < b->min_chars) {
		*status = FILTER_REASON_BASE + BASIC_TOO_SHORT;
		return;
	}
	if (need_image) {
		lo = w < h ? w : h;
		hi = w < h ? h : w;
		if (lo < b->min_side) {
			*status = FILTER_REASON_BASE + BASIC_SMALL_IMAGE;
			return;
		}
		if (hi / lo > b->max_aspect) {
			*status = FILTER_REASON_BASE + BASIC_BAD_ASPECT;
			return;
		}
	}
	*score = 1;
	*status = FILTER_SCORED;
}

static int basic_score(const struct filter *f, const struct filter_batch *b, float *scores,
                       uint8_t *status, struct err *e)
{
	(void)e;
	for (size_t i = 0; i < b->n; i++)
		basic_one((const struct basic *)f, b->bodies[i], b->kinds ? b->kinds[i] : 0,
		          &scores[i], &status[i]);
	return 0;
}

const struct filter_ops basic_filter_ops = {
	.name = "basic",
	.summary = "DataComp basic filter without language id: words, length, image size, aspect "
	           "(DataComp, Gadre et al. 2023; docs/filters.md)",
	.size = sizeof(struct basic),
	.cheap = 1,
	.reasons = basic_reasons,
	.create = basic_create,
	.score = basic_score,
};
