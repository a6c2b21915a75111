/* SPDX-License-Identifier: MIT */
/* exact_dup: exact duplicates by image sha256 or by normalised caption text. Of every group of
 * records with the same key, the first in id order (bytewise, as strcmp on unsigned bytes; a
 * proper prefix first) is kept (score 1); the others score 0 with the reason "duplicate".
 *
 * The key is 16 bytes: the first half of the image's sha256 (param key "image_sha256", the
 * default: 64 hex digits in the record's image.sha256) or of the sha256 of the normalised
 * text (key "text": ASCII letters lower-cased, every run of ASCII whitespace made one space,
 * leading and trailing whitespace dropped). 128 bits: a collision among 10^10 records has a
 * probability below 10^-18.
 *
 * Fitted (needs_fit): the fit reads every record and keeps, per key, the row of the record
 * that is kept, sorted by key (24 bytes per distinct key). Not cheap: which record is first
 * can change when one is added, so records ingested later stay pending until the filter is
 * scored again (POST .../filters/{name}:score refits). A record scored after the fit whose key
 * the fit never saw is the first of its key (score 1); one whose key it saw is kept only if
 * it is that key's recorded row. Threading: score only reads the instance. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/sha256.h"
#include "filters/filter.h"
#include "filters/registry.h"

#define DUP_MAGIC "WNDUP1\n"
#define DUP_HDR 16 /* magic (7) + pad (1) + u64 count */
#define DUP_ENTRY 24

enum dup_key { DUP_IMAGE_SHA256, DUP_TEXT };

static const char *const dup_reasons[] = {"duplicate", NULL};

struct dup_entry {
	uint8_t key[16];
	uint64_t row;
};

struct exact_dup {
	struct filter base;
	unsigned key; /* enum dup_key */
	struct dup_entry *keep; /* sorted by key; the fitted state */
	size_t nkeep;
};

static int dup_create(struct filter *f, const json_t *params, const struct store_schema *schema,
                      struct err *e)
{
	static const char *const known[] = {"key", NULL};
	static const char *const keys[] = {"image_sha256", "text", NULL};
	struct exact_dup *d = (struct exact_dup *)f;
	int rc;

	(void)schema;
	d->key = DUP_IMAGE_SHA256;
	if ((rc = filter_params_known(params, known, e)) != 0 ||
	    (rc = filter_param_choice(params, "key", keys, &d->key, e)) != 0)
		return rc;
	f->needs = FILTER_NEEDS_BODY | FILTER_NEEDS_ID;
	return 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The record's key into out; 0, or an unscorable status. */
static int key_of(const struct exact_dup *d, const json_t *body, uint8_t out[16])
{
	if (d->key == DUP_IMAGE_SHA256) {
		const json_t *img = json_object_get(body, "image");
		const json_t *h = json_is_object(img) ? json_object_get(img, "sha256") : NULL;
		const char *s = json_string_value(h);

		if (h == NULL)
			return FILTER_NO_FIELD;
		if (s == NULL || json_string_length(h) != 64)
			return FILTER_BAD_FIELD;
		for (int i = 0; i < 64; i++)
			if (hexval(s[i]) < 0)
				return FILTER_BAD_FIELD;
		for (int i = 0; i < 16; i++)
			out[i] = (uint8_t)(hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]));
		return 0;
	} else {
		const json_t *t = json_object_get(body, "text");
		const char *s = json_string_value(t);
		struct sha256_ctx c;
		uint8_t dig[32];
		size_t len = json_string_length(t);
		int pending_space = 0, any = 0;

		if (t == NULL)
			return FILTER_NO_FIELD;
		if (s == NULL)
			return FILTER_BAD_FIELD;
		sha256_init(&c);
		for (size_t i = 0; i < len; i++) {
			unsigned char ch = (unsigned char)s[i];

			if (ch == ' ' || (ch >= '\t' && ch <= '\r')) {
				pending_space = any;
				continue;
			}
			if (pending_space)
				sha256_update(&c, " ", 1);
			pending_space = 0;
			any = 1;
			if (ch >= 'A' && ch <= 'Z')
				ch = (unsigned char)(ch - 'A' + 'a');
			sha256_update(&c, &ch, 1);
		}
		sha256_final(&c, dig);
		memcpy(out, dig, 16);
		return 0;
	}
}

/* ---- fit ---- */

struct seen {
	uint8_t key[16];
	char *id;
	size_t id_len;
	uint64_t row;
};

static int id_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	if (c != 0)
		return c;
	return al < bl ? -1 : al > bl;
}

static int seen_cmp(const void *x, const void *y)
{
	const struct seen *a = x, *b = y;
	int c = memcmp(a->key, b->key, 16);

	if (c != 0)
		return c;
	c = id_cmp(a->id, a->id_len, b->id, b->id_len);
	if (c != 0)
		return c;
	return a->row < b->row ? -1 : a->row > b->row;
}

static int dup_fit(struct filter *f, struct filter_scan *scan, struct err *e)
{
	struct exact_dup *d = (struct exact_dup *)f;
	struct seen *v = NULL;
	struct dup_entry *keep = NULL;
	size_t n = 0, cap = 0, nkeep = 0;
	const struct filter_batch *b;
	int rc;

	/* The new table replaces the old one only on success: a cancelled or failed refit
	 * leaves the previous fitted state (and f->fitted) consistent. */
	while ((rc = filter_scan_next(scan, &b, e)) == 1) {
		for (size_t i = 0; i < b->n; i++) {
			uint8_t k[16];

			if (key_of(d, b->bodies[i], k) != 0)
				continue;
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 1024;
				struct seen *g = realloc(v, ncap * sizeof *g);

				if (g == NULL) {
					rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
					goto out;
				}
				v = g;
				cap = ncap;
			}
			memcpy(v[n].key, k, 16);
			v[n].id_len = strlen(b->ids[i]);
			v[n].id = malloc(v[n].id_len + 1);
			if (v[n].id == NULL) {
				rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
				goto out;
			}
			memcpy(v[n].id, b->ids[i], v[n].id_len + 1);
			v[n].row = b->rows[i];
			n++;
		}
	}
	if (rc < 0)
		goto out;
	qsort(v, n, sizeof *v, seen_cmp);
	keep = malloc((n ? n : 1) * sizeof *keep);
	if (keep == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && memcmp(v[i].key, v[i - 1].key, 16) == 0)
			continue;
		memcpy(keep[nkeep].key, v[i].key, 16);
		keep[nkeep].row = v[i].row;
		nkeep++;
	}
	free(d->keep);
	d->keep = keep;
	d->nkeep = nkeep;
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(v[i].id);
	free(v);
	return rc;
}

/* ---- state ---- */

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static int dup_save(const struct filter *f, void **blob, size_t *len, struct err *e)
{
	const struct exact_dup *d = (const struct exact_dup *)f;
	size_t n = DUP_HDR + d->nkeep * DUP_ENTRY;
	uint8_t *p = malloc(n);

	if (p == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	memset(p, 0, DUP_HDR);
	memcpy(p, DUP_MAGIC, 7);
	put_u64(p + 8, d->nkeep);
	for (size_t i = 0; i < d->nkeep; i++) {
		memcpy(p + DUP_HDR + i * DUP_ENTRY, d->keep[i].key, 16);
		put_u64(p + DUP_HDR + i * DUP_ENTRY + 16, d->keep[i].row);
	}
	*blob = p;
	*len = n;
	return 0;
}

static int dup_load(struct filter *f, const void *blob, size_t len, struct err *e)
{
	struct exact_dup *d = (struct exact_dup *)f;
	const uint8_t *p = blob;
	uint64_t n;
	struct dup_entry *k;

	if (len < DUP_HDR || memcmp(p, DUP_MAGIC, 7) != 0)
		return err_set(e, ERR_INVALID, "bad_state", "exact_dup state: bad header");
	n = get_u64(p + 8);
	if (n > (len - DUP_HDR) / DUP_ENTRY || len != DUP_HDR + n * DUP_ENTRY)
		return err_set(e, ERR_INVALID, "bad_state", "exact_dup state: bad length");
	k = malloc((n ? n : 1) * sizeof *k);
	if (k == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	for (uint64_t i = 0; i < n; i++) {
		memcpy(k[i].key, p + DUP_HDR + i * DUP_ENTRY, 16);
		k[i].row = get_u64(p + DUP_HDR + i * DUP_ENTRY + 16);
		if (i > 0 && memcmp(k[i - 1].key, k[i].key, 16) >= 0) {
			free(k);
			return err_set(e, ERR_INVALID, "bad_state", "exact_dup state: not sorted");
		}
	}
	free(d->keep);
	d->keep = k;
	d->nkeep = (size_t)n;
	return 0;
}

/* ---- score ---- */

static int dup_score(const struct filter *f, const struct filter_batch *b, float *scores,
                     uint8_t *status, struct err *e)
{
	const struct exact_dup *d = (const struct exact_dup *)f;

	(void)e;
	for (size_t i = 0; i < b->n; i++) {
		uint8_t k[16];
		size_t lo = 0, hi = d->nkeep;
		int st = key_of(d, b->bodies[i], k);

		if (st != 0) {
			status[i] = (uint8_t)st;
			scores[i] = NAN;
			continue;
		}
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (memcmp(d->keep[mid].key, k, 16) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < d->nkeep && memcmp(d->keep[lo].key, k, 16) == 0 &&
		    d->keep[lo].row != b->rows[i]) {
			scores[i] = 0;
			status[i] = FILTER_REASON_BASE + 0; /* duplicate */
		} else {
			scores[i] = 1;
			status[i] = FILTER_SCORED;
		}
	}
	return 0;
}

static void dup_destroy(struct filter *f)
{
	free(((struct exact_dup *)f)->keep);
}

const struct filter_ops exact_dup_filter_ops = {
	.name = "exact_dup",
	.summary = "exact duplicates by image sha256 or normalised text; the first id is kept",
	.size = sizeof(struct exact_dup),
	.cheap = 0,
	.needs_fit = 1,
	.reasons = dup_reasons,
	.create = dup_create,
	.fit = dup_fit,
	.save = dup_save,
	.load = dup_load,
	.score = dup_score,
	.destroy = dup_destroy,
};
