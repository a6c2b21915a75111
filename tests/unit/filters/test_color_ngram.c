/* SPDX-License-Identifier: MIT */
/* Tests of filters/color_ngram.c through the filter interface, over in-memory scans: no
 * record is scored by a prior fitted on its own text (cross-fitting), the conditional is the
 * stated interpolation, save and load give the same scores, params. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "filters/filter.h"
#include "algo/ngram.h"
#include "filters/registry.h"
#include "store/store.h"
#include "tests/harness.h"

/* An in-memory dataset: ids and texts. */
struct mem_ds {
	const char *name;
	const char *const *ids;
	const char *const *texts;
	size_t n;
};

struct mem_scan {
	struct filter_scan_ext base;
	const struct mem_ds *ds, *others;
	size_t nothers, at;
	struct filter_batch b;
	uint64_t rows[64];
	const char *ids[64];
	json_t *bodies[64];
};

static void mem_clear(struct mem_scan *s)
{
	for (size_t i = 0; i < s->b.n; i++)
		json_decref(s->bodies[i]);
	s->b.n = 0;
}

static int mem_next(struct filter_scan *base, const struct filter_batch **b, struct err *e)
{
	struct mem_scan *s = (struct mem_scan *)base;

	(void)e;
	mem_clear(s);
	while (s->at < s->ds->n && s->b.n < 64) {
		size_t i = s->at++, j = s->b.n++;

		s->rows[j] = i;
		s->ids[j] = s->ds->ids[i];
		s->bodies[j] = json_pack("{s:s}", "text", s->ds->texts[i]);
	}
	if (s->b.n == 0)
		return 0;
	s->b.rows = s->rows;
	s->b.ids = s->ids;
	s->b.bodies = s->bodies;
	*b = &s->b;
	return 1;
}

static int mem_open_other(struct filter_scan *base, const char *name, struct filter_scan **out,
                          struct err *e);

static void mem_close_other(struct filter_scan *base)
{
	mem_clear((struct mem_scan *)base);
	free(base);
}

static struct mem_scan *mem_scan_new(const struct mem_ds *ds, const struct mem_ds *others,
                                     size_t nothers)
{
	struct mem_scan *s = calloc(1, sizeof *s);

	s->base.base.next = filter_scan_ext_next;
	s->base.next = mem_next;
	s->base.open_other = mem_open_other;
	s->base.close_other = mem_close_other;
	s->ds = ds;
	s->others = others;
	s->nothers = nothers;
	return s;
}

static int mem_open_other(struct filter_scan *base, const char *name, struct filter_scan **out,
                          struct err *e)
{
	struct mem_scan *s = (struct mem_scan *)base;

	for (size_t i = 0; i < s->nothers; i++)
		if (strcmp(s->others[i].name, name) == 0) {
			*out = &mem_scan_new(&s->others[i], s->others, s->nothers)->base.base;
			return 0;
		}
	return err_set(e, ERR_NOT_FOUND, "dataset_not_found", "no dataset named '%s'", name);
}

static struct filter *make(const char *params, int *rc, struct err *e)
{
	struct filter *f = NULL;
	json_t *p = json_loads(params, 0, NULL);
	struct store_schema sc;

	memset(&sc, 0, sizeof sc);
	sc.kinds = STORE_KIND_TEXT;
	err_clear(e);
	*rc = filter_create(&f, registry_find("color_ngram"), p, &sc, e);
	json_decref(p);
	return f;
}

static int fit(struct filter *f, const struct mem_ds *pool, const struct mem_ds *others,
               size_t nothers, struct err *e)
{
	struct mem_scan *s = mem_scan_new(pool, others, nothers);
	int rc;

	if (others == NULL) /* a plain scan: it offers no other dataset */
		s->base.base.next = mem_next;
	rc = filter_fit(f, &s->base.base, e);

	mem_clear(s);
	free(s);
	return rc;
}

/* Score every record of ds with f. */
static int score_all(const struct filter *f, const struct mem_ds *ds, float *out, uint8_t *st)
{
	struct mem_scan *s = mem_scan_new(ds, NULL, 0);
	const struct filter_batch *b;
	size_t at = 0;
	int rc;

	while ((rc = mem_next(&s->base.base, &b, NULL)) == 1) {
		if ((rc = filter_score_batch(f, b, out + at, st + at, NULL)) != 0)
			break;
		at += b->n;
	}
	mem_clear(s);
	free(s);
	return rc;
}

#define NPOOL 40

static const char *const texts[NPOOL] = {
	"the cat sat on the mat", "a dog ran in the park", "the bird sang a song",
	"stocks fell sharply on monday", "the market rallied after the news",
	"a cat chased the dog", "the park was full of dogs", "investors sold their shares",
	"the song was sung by a bird", "bonds rose as stocks fell", "the mat was red",
	"the dog slept on the mat", "shares of the bank fell", "a bird in the hand",
	"the cat and the bird", "prices rose in the market", "the dog barked at the cat",
	"the bank raised its rates", "a song for the park", "the cat slept in the sun",
	"rates fell and stocks rose", "the bird flew over the park", "the fund sold bonds",
	"a red mat for the cat", "the market was calm", "dogs and cats in the sun",
	"traders bought shares", "the bird and the song", "the bank sold its fund",
	"a dog in the sun", "bonds and stocks and shares", "the cat saw a bird",
	"the park and the song", "the fund raised prices", "the sun over the park",
	"stocks rose on tuesday", "the dog and the bird sang", "markets fell on friday",
	"a cat on a mat in the sun", "the bank and the market",
};

static const char *const down_texts[] = {
	"the cat sat in the sun", "a dog and a cat", "the bird sang in the park",
	"the dog ran to the cat", "a cat and a bird",
};

static const char *ids[NPOOL];
static char idbuf[NPOOL][16];

static void pool_ids(void)
{
	for (int i = 0; i < NPOOL; i++) {
		snprintf(idbuf[i], sizeof idbuf[i], "r%02d", i);
		ids[i] = idbuf[i];
	}
}

static void test_cross_fitting(void)
{
	static const char *const down_ids[] = {"d0", "d1", "d2", "d3", "d4"};
	struct mem_ds others[1] = {{"down", down_ids, down_texts, 5}};
	struct mem_ds pool = {"pool", ids, texts, NPOOL};
	const char *texts2[NPOOL + 8];
	const char *ids2[NPOOL + 8];
	char extra_ids[8][16];
	struct mem_ds pool2 = {"pool", ids2, texts2, NPOOL + 8};
	float s1[NPOOL + 8], s2[NPOOL + 8];
	uint8_t st[NPOOL + 8];
	struct err e;
	int rc, target = 3, same = -1, other = -1;
	struct filter *f;

	pool_ids();
	/* the prior's NLL of record 3 ("stocks fell sharply on monday") */
	f = make("{\"downstream\": \"down\", \"output\": \"prior\"}", &rc, &e);
	CHECK_INT(rc, 0);
	CHECK_INT(fit(f, &pool, others, 1, &e), 0);
	CHECK_INT(score_all(f, &pool, s1, st), 0);
	for (int i = 0; i < NPOOL; i++)
		CHECK_INT(st[i], FILTER_SCORED);
	/* copies of record 3's text under ids of its own fold and of the other fold */
	memcpy(texts2, texts, sizeof texts);
	memcpy(ids2, ids, sizeof ids);
	for (int k = 0, n = 0; n < 8 && k < 1000; k++) {
		char id[16];
		unsigned fold;

		snprintf(id, sizeof id, "x%d", k);
		fold = (unsigned)(ngram_word_hash(id, strlen(id)) % 2);
		if (fold == (unsigned)(ngram_word_hash(ids[target], 3) % 2) ? n >= 4 : n < 4)
			continue;
		snprintf(extra_ids[n], sizeof extra_ids[n], "%s", id);
		ids2[NPOOL + n] = extra_ids[n];
		texts2[NPOOL + n] = texts[target];
		n++;
	}
	/* n < 4: 4 copies in record 3's own fold; then 4 in the other fold. Score with the
	 * copies of the own fold only, then with all. */
	pool2.n = NPOOL + 4;
	CHECK_INT(fit(f, &pool2, others, 1, &e), 0);
	CHECK_INT(score_all(f, &pool2, s2, st), 0);
	same = (int)(s2[target] == s1[target]);
	/* its own fold's copies never reach the prior that scores it */
	CHECK(same);
	pool2.n = NPOOL + 8;
	CHECK_INT(fit(f, &pool2, others, 1, &e), 0);
	CHECK_INT(score_all(f, &pool2, s2, st), 0);
	other = (int)(s2[target] > s1[target] + 1.0f);
	/* the other fold's copies do: the text becomes far more likely */
	CHECK(other);
	filter_free(f);
}

static void test_interpolation_and_state(void)
{
	static const char *const down_ids[] = {"d0", "d1", "d2", "d3", "d4"};
	static const char *const prior_ids[] = {"p0", "p1", "p2", "p3", "p4", "p5"};
	static const char *const prior_texts[] = {
		"the market fell", "a cat in the park", "the bank sold bonds",
		"the bird sang", "stocks and shares", "the dog ran",
	};
	struct mem_ds others[2] = {{"down", down_ids, down_texts, 5},
	                           {"prior", prior_ids, prior_texts, 6}};
	struct mem_ds pool = {"pool", ids, texts, NPOOL};
	float sc[NPOOL], sp[NPOOL], sd[NPOOL], s2[NPOOL], ss[NPOOL];
	uint8_t st[NPOOL];
	struct filter *fc, *fp, *fd, *fs, *g;
	void *blob = NULL;
	size_t len = 0;
	struct err e;
	int rc;

	pool_ids();
	fc = make("{\"downstream\": \"down\", \"prior\": \"prior\", \"lambda\": 0.3}", &rc, &e);
	fp = make("{\"downstream\": \"down\", \"prior\": \"prior\", \"lambda\": 0.3, \"output\": "
	          "\"prior\"}", &rc, &e);
	fd = make("{\"downstream\": \"down\", \"prior\": \"prior\", \"lambda\": 0.3, \"output\": "
	          "\"down\"}", &rc, &e);
	fs = make("{\"downstream\": \"down\", \"prior\": \"prior\", \"lambda\": 0.3, "
	          "\"reduction\": \"sum\"}", &rc, &e);
	CHECK(fc != NULL && fp != NULL && fd != NULL && fs != NULL);
	/* unfitted: every record is unfitted */
	CHECK_INT(score_all(fc, &pool, sc, st), 0);
	CHECK_INT(st[0], FILTER_UNFITTED);
	CHECK_INT(fit(fc, &pool, others, 2, &e), 0);
	CHECK_INT(fit(fp, &pool, others, 2, &e), 0);
	CHECK_INT(fit(fd, &pool, others, 2, &e), 0);
	CHECK_INT(fit(fs, &pool, others, 2, &e), 0);
	CHECK_INT(score_all(fc, &pool, sc, st), 0);
	CHECK_INT(score_all(fp, &pool, sp, st), 0);
	CHECK_INT(score_all(fd, &pool, sd, st), 0);
	CHECK_INT(score_all(fs, &pool, ss, st), 0);
	/* a one-word record: 2 predictions (the word, </s>); with per-position probabilities
	 * pp = exp(-2 Lp) ... only the mean is observable, so check the bound instead:
	 * log(lambda pd + (1 - lambda) pp) >= (1 - lambda) log pp + lambda log pd (Jensen),
	 * so the score is >= lambda (Lp - Ld) per record, and >= log(1 - lambda) */
	for (int i = 0; i < NPOOL; i++) {
		double lp = -sp[i], ld = -sd[i];

		CHECK(sc[i] >= 0.3 * (lp - ld) - 1e-5);
		CHECK(sc[i] >= log(0.7) - 1e-5); /* log(lambda pd/pp + 1 - lambda) > log 0.7 */
	}
	/* sum = mean x (words + 1): "the cat sat on the mat" has 6 words */
	CHECK_NEAR(ss[0], sc[0] * 7, 1e-4);
	/* downstream-like records (cats, dogs, birds) rank above finance */
	CHECK(sc[0] > sc[3] && sc[5] > sc[7] && sc[16] > sc[12]);
	/* save, load into a fresh instance: identical scores */
	CHECK_INT(filter_save(fc, &blob, &len, &e), 0);
	CHECK(blob != NULL && len > 16);
	g = make("{\"downstream\": \"down\", \"prior\": \"prior\", \"lambda\": 0.3}", &rc, &e);
	CHECK_INT(filter_load(g, blob, len, &e), 0);
	CHECK_INT(score_all(g, &pool, s2, st), 0);
	for (int i = 0; i < NPOOL; i++)
		CHECK(s2[i] == sc[i]);
	/* a blob for other params (cross-fitting: 2 priors) or cut short is refused */
	filter_free(g);
	g = make("{\"downstream\": \"down\"}", &rc, &e);
	CHECK_INT(filter_load(g, blob, len, &e), ERR_INVALID);
	filter_free(g);
	g = make("{\"downstream\": \"down\", \"prior\": \"prior\", \"lambda\": 0.3}", &rc, &e);
	CHECK_INT(filter_load(g, blob, len - 1, &e), ERR_INVALID);
	CHECK_INT(filter_load(g, blob, 10, &e), ERR_INVALID);
	filter_free(g);
	free(blob);
	filter_free(fc);
	filter_free(fp);
	filter_free(fd);
	filter_free(fs);
}

static void test_unscorable_and_errors(void)
{
	static const char *const down_ids[] = {"d0"};
	static const char *const one[] = {"a b c"};
	struct mem_ds others[1] = {{"down", down_ids, one, 1}};
	struct mem_ds pool = {"pool", ids, texts, NPOOL};
	struct mem_ds empty_down[1] = {{"down", down_ids, one, 0}};
	json_t *bodies[4];
	uint64_t rows[4] = {0, 1, 2, 3};
	const char *bids[4] = {"a", "b", "c", "d"};
	struct filter_batch b = {.n = 4, .rows = rows, .ids = bids, .bodies = bodies};
	float s[4];
	uint8_t st[4];
	struct err e;
	int rc;
	struct filter *f;

	pool_ids();
	f = make("{\"downstream\": \"down\"}", &rc, &e);
	CHECK_INT(fit(f, &pool, NULL, 0, &e), ERR_INVALID); /* a source without others */
	CHECK_STR(e.slug, "no_other_datasets");
	err_clear(&e);
	CHECK_INT(fit(f, &pool, others, 0, &e), ERR_NOT_FOUND); /* no dataset "down" */
	CHECK_STR(e.slug, "dataset_not_found");
	err_clear(&e);
	CHECK_INT(fit(f, &pool, empty_down, 1, &e), ERR_INVALID);
	CHECK_STR(e.slug, "empty_downstream");
	CHECK(!f->fitted);
	CHECK_INT(fit(f, &pool, others, 1, &e), 0);
	bodies[0] = json_pack("{s:s}", "text", "an unseen sentence entirely");
	bodies[1] = json_pack("{s:i}", "text", 3);
	bodies[2] = json_pack("{}");
	bodies[3] = json_pack("{s:s}", "text", "  \t ");
	CHECK_INT(filter_score_batch(f, &b, s, st, NULL), 0);
	CHECK_INT(st[0], FILTER_SCORED);
	CHECK(isfinite(s[0]));
	CHECK_INT(st[1], FILTER_BAD_FIELD);
	CHECK_INT(st[2], FILTER_NO_FIELD);
	CHECK_INT(st[3], FILTER_BAD_FIELD);
	for (int i = 0; i < 4; i++)
		json_decref(bodies[i]);
	filter_free(f);
}

/* Issue 19: a prior or downstream dataset sharing texts with the pool. 200 pool texts, a prior
 * of 300 others plus k pool texts in upper case with other spacing: k = 2 is 1.0% of the
 * smaller dataset (200), not above the 1% refused: accepted with a warning; k = 3 (1.5%) is
 * refused by check and by fit, unless allow_overlap. */
#define OV_POOL 200
#define OV_PRIOR 300

static char ov_text[OV_POOL + OV_PRIOR + 3][64];
static char ov_id[OV_POOL + OV_PRIOR + 3][16];
static const char *ov_texts[OV_POOL + OV_PRIOR + 3], *ov_ids[OV_POOL + OV_PRIOR + 3];

static int check_with(struct filter *f, const struct mem_ds *pool, const struct mem_ds *others,
                      size_t n, struct err *e)
{
	struct mem_scan *s = mem_scan_new(pool, others, n);
	int rc = filter_check(f, &s->base.base, e);

	mem_clear(s);
	free(s);
	return rc;
}

static void test_overlap(void)
{
	static const char *const dids[] = {"d0", "d1", "d2"};
	struct mem_ds pool = {"pool", ov_ids, ov_texts, OV_POOL};
	struct mem_ds others[3];
	struct err e;
	struct filter *f;
	const json_t *w;
	int rc;

	for (int i = 0; i < OV_POOL + OV_PRIOR; i++) {
		snprintf(ov_text[i], sizeof ov_text[i], "%s text number w%d of the %s",
		         i < OV_POOL ? "pool" : "prior", i, i % 2 ? "day" : "night");
		snprintf(ov_id[i], sizeof ov_id[i], "x%d", i);
	}
	for (int k = 0; k < 3; k++) { /* pool texts 0..2 again: upper case, other spacing */
		char *q = ov_text[OV_POOL + OV_PRIOR + k];

		q[0] = q[1] = ' ';
		memcpy(q + 2, ov_text[k], strlen(ov_text[k]) + 1);
		for (char *c = q; *c; c++)
			*c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
		snprintf(ov_id[OV_POOL + OV_PRIOR + k], sizeof ov_id[0], "copy%d", k);
	}
	for (int i = 0; i < OV_POOL + OV_PRIOR + 3; i++) {
		ov_texts[i] = ov_text[i];
		ov_ids[i] = ov_id[i];
	}
	/* the prior datasets: texts OV_POOL .. OV_POOL + OV_PRIOR + k (the last k the copies) */
	others[0] = (struct mem_ds){"down", dids, down_texts, 3};
	others[1] = (struct mem_ds){"p2", ov_ids + OV_POOL, ov_texts + OV_POOL, OV_PRIOR + 2};
	others[2] = (struct mem_ds){"p3", ov_ids + OV_POOL, ov_texts + OV_POOL, OV_PRIOR + 3};

	f = make("{\"downstream\": \"down\", \"prior\": \"p2\"}", &rc, &e);
	CHECK_INT(rc, 0);
	CHECK_INT(check_with(f, &pool, others, 3, &e), 0);
	CHECK_INT(fit(f, &pool, others, 3, &e), 0);
	CHECK_INT(json_array_size(f->warnings), 1);
	w = json_array_get(f->warnings, 0);
	CHECK_STR(json_string_value(json_object_get(w, "code")), "prior_overlaps_pool");
	CHECK_STR(json_string_value(json_object_get(w, "param")), "prior");
	CHECK_INT(json_integer_value(json_object_get(w, "shared")), 2);
	CHECK_INT(json_integer_value(json_object_get(w, "records")), OV_POOL);
	CHECK_NEAR(json_real_value(json_object_get(w, "share")), 0.01, 1e-12);
	filter_free(f);

	f = make("{\"downstream\": \"down\", \"prior\": \"p3\"}", &rc, &e);
	CHECK_INT(check_with(f, &pool, others, 3, &e), ERR_INVALID);
	CHECK_STR(e.slug, "prior_overlaps_pool");
	CHECK(strstr(e.detail, "prior dataset 'p3' shares 3 texts") != NULL);
	CHECK(strstr(e.detail, "1.50%") != NULL);
	err_clear(&e);
	CHECK_INT(fit(f, &pool, others, 3, &e), ERR_INVALID);
	CHECK_STR(e.slug, "prior_overlaps_pool");
	CHECK(!f->fitted);
	filter_free(f);

	f = make("{\"downstream\": \"down\", \"prior\": \"p3\", \"allow_overlap\": true}", &rc, &e);
	CHECK_INT(check_with(f, &pool, others, 3, &e), 0);
	CHECK_INT(fit(f, &pool, others, 3, &e), 0);
	CHECK_INT(json_array_size(f->warnings), 1); /* check's warning was cleared by the fit */
	CHECK_INT(json_integer_value(json_object_get(json_array_get(f->warnings, 0), "shared")), 3);
	filter_free(f);

	/* the pool as downstream (cross-fitted): refused; no prior and no overlap: no warning */
	f = make("{\"downstream\": \"pool\"}", &rc, &e);
	{
		struct mem_ds with_pool[2] = {others[0], pool};

		CHECK_INT(check_with(f, &pool, with_pool, 2, &e), ERR_INVALID);
		CHECK(strstr(e.detail, "downstream dataset 'pool' shares 200 texts") != NULL);
		err_clear(&e);
	}
	filter_free(f);
	f = make("{\"downstream\": \"down\"}", &rc, &e);
	CHECK_INT(check_with(f, &pool, others, 3, &e), 0);
	CHECK_INT(fit(f, &pool, others, 3, &e), 0);
	CHECK(f->warnings == NULL);
	filter_free(f);
	/* an unknown dataset is left to the fit */
	f = make("{\"downstream\": \"nowhere\"}", &rc, &e);
	CHECK_INT(check_with(f, &pool, others, 3, &e), 0);
	filter_free(f);
}

int main(void)
{
	HARNESS_RUN(test_cross_fitting);
	HARNESS_RUN(test_interpolation_and_state);
	HARNESS_RUN(test_unscorable_and_errors);
	HARNESS_RUN(test_overlap);
	return harness_done();
}
