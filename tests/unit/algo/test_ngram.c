/* SPDX-License-Identifier: MIT */
/* Tests of algo/ngram.c: the tokeniser, a proper distribution (every p(. | h) sums to 1
 * over the vocabulary plus <unk>) on a small corpus and on WordNet glosses, save and load,
 * the memory budget, and held-out perplexity against IRSTLM's modified shift-beta (the same
 * three-discount interpolated Kneser-Ney) trained on the same text with the same order. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/err.h"
#include "algo/ngram.h"
#include "tests/harness.h"

struct ids {
	uint32_t v[4096];
	size_t n;
	struct ngram_vocab *voc;
	int add; /* 1: add unknown words to the vocabulary */
	int err;
};

static void on_token(void *ctx, uint64_t h)
{
	struct ids *t = ctx;

	if (t->n >= sizeof t->v / sizeof t->v[0])
		return;
	if (t->add) {
		if (ngram_vocab_add(t->voc, h, &t->v[t->n], NULL) != 0)
			t->err = 1;
	} else {
		t->v[t->n] = ngram_vocab_get(t->voc, h);
	}
	t->n++;
}

static void tokens(struct ids *t, const char *s, int add)
{
	t->n = 0;
	t->add = add;
	ngram_tokenize(s, strlen(s), on_token, t);
}

struct hashes {
	uint64_t h[16];
	size_t n;
};

static void on_hash(void *ctx, uint64_t h)
{
	struct hashes *x = ctx;

	if (x->n < 16)
		x->h[x->n++] = h;
}

static void test_tokenize(void)
{
	static const char *const want[] = {"don", "'", "t", "panic", "!", "caf\xc3\xa9", "42x",
	                                   ",", "a"};
	struct hashes x = {0};
	const char *text = "  Don't PANIC!\tCaf\xc3\xa9 42x,a\n";

	CHECK_INT(ngram_tokenize(text, strlen(text), on_hash, &x), 9);
	for (size_t i = 0; i < 9; i++)
		CHECK(x.h[i] == ngram_word_hash(want[i], strlen(want[i])));
	x.n = 0;
	CHECK_INT(ngram_tokenize(" \t\r\n", 4, on_hash, &x), 0);
}

/* Sum of p(w | hist) over every id of V: the words, </s> and <unk> (not <s>). */
static double prob_sum(const struct ngram_model *m, const struct ngram_vocab *v,
                       const uint32_t *hist, size_t hlen)
{
	uint32_t V = ngram_vocab_size(v);
	double s = ngram_model_prob(m, V, hist, hlen, NGRAM_UNK) +
	           ngram_model_prob(m, V, hist, hlen, NGRAM_EOS);

	for (uint32_t w = NGRAM_EOS + 1; w < NGRAM_EOS + 1 + (V - 2); w++)
		s += ngram_model_prob(m, V, hist, hlen, w);
	return s;
}

static const char *const small_corpus[] = {
	"the cat sat on the mat", "the dog sat on the log", "a cat and a dog",
	"the cat saw the dog", "on the mat the cat sat", "the the the cat",
	"dogs and cats and mats", "a log on a mat", "the cat sat", "the dog sat on the cat",
};

static void test_sums_to_one_small(void)
{
	struct ngram_mem mem = {0};
	struct ngram_vocab *v = NULL;
	struct ids t = {0};

	CHECK_INT(ngram_vocab_new(&v, &mem, NULL), 0);
	t.voc = v;
	for (unsigned order = 2; order <= NGRAM_MAX_ORDER; order++) {
		struct ngram_model *m = NULL;
		uint32_t hist[8];

		CHECK_INT(ngram_model_new(&m, order, &mem, NULL), 0);
		for (size_t i = 0; i < sizeof small_corpus / sizeof small_corpus[0]; i++) {
			tokens(&t, small_corpus[i], 1);
			CHECK(!t.err);
			CHECK_INT(ngram_model_add(m, t.v, t.n, NULL), 0);
		}
		CHECK_INT(ngram_model_finish(m, NULL), 0);
		/* contexts: empty, <s>, <s> the, seen "the cat", unseen "dog the", with <unk> */
		tokens(&t, "the cat sat on", 0);
		hist[0] = NGRAM_BOS;
		memcpy(hist + 1, t.v, 4 * sizeof *hist);
		CHECK_NEAR(prob_sum(m, v, hist, 0), 1.0, 1e-9);
		for (size_t h = 1; h <= 5; h++)
			CHECK_NEAR(prob_sum(m, v, hist, h), 1.0, 1e-9);
		tokens(&t, "dog the", 0);
		CHECK_NEAR(prob_sum(m, v, t.v, 2), 1.0, 1e-9);
		hist[0] = NGRAM_UNK;
		hist[1] = t.v[1];
		CHECK_NEAR(prob_sum(m, v, hist, 2), 1.0, 1e-9);
		/* the discounts are in range; a seen continuation beats an unseen one */
		for (unsigned k = 1; k <= order; k++) {
			double d[3];

			ngram_model_discounts(m, k, d);
			CHECK(d[0] >= 0 && d[0] <= 1 && d[1] >= 0 && d[1] <= 2 && d[2] >= 0 &&
			      d[2] <= 3);
		}
		tokens(&t, "the cat sat mat", 0);
		CHECK(ngram_model_prob(m, ngram_vocab_size(v), t.v, 2, t.v[2]) >
		      ngram_model_prob(m, ngram_vocab_size(v), t.v, 2, t.v[3]));
		ngram_model_free(m);
	}
	ngram_vocab_free(v);
	CHECK_INT(mem.used, 0);
}

/* ---- raw counts summed across models (a cluster's shards): the same finished model ---- */

static struct ngram_model *raw_dst;

static int add_back(void *ctx, unsigned k, const uint32_t *ids, uint32_t count)
{
	(void)ctx;
	return ngram_model_add_raw(raw_dst, ids, k, count, NULL);
}

static void test_raw_counts_sum(void)
{
	struct ngram_mem mem = {0};
	struct ngram_vocab *v = NULL;
	struct ids t = {0};
	size_t ns = sizeof small_corpus / sizeof small_corpus[0];

	CHECK_INT(ngram_vocab_new(&v, &mem, NULL), 0);
	t.voc = v;
	for (size_t i = 0; i < ns; i++) /* the vocabulary first: ids shared by every model */
		tokens(&t, small_corpus[i], 1);
	for (unsigned order = 2; order <= NGRAM_MAX_ORDER; order++) {
		struct ngram_model *whole = NULL, *part[3] = {NULL}, *sum = NULL;
		uint32_t V = ngram_vocab_size(v), hist[3] = {0};

		CHECK_INT(ngram_model_new(&whole, order, &mem, NULL), 0);
		CHECK_INT(ngram_model_new(&sum, order, &mem, NULL), 0);
		for (int k = 0; k < 3; k++)
			CHECK_INT(ngram_model_new(&part[k], order, &mem, NULL), 0);
		for (size_t i = 0; i < ns; i++) {
			tokens(&t, small_corpus[i], 0);
			CHECK_INT(ngram_model_add(whole, t.v, t.n, NULL), 0);
			CHECK_INT(ngram_model_add(part[i % 3], t.v, t.n, NULL), 0);
			if (i == 0) /* a sentence on two shards counts twice, as in one model */
				CHECK_INT(ngram_model_add(part[1], t.v, t.n, NULL), 0);
		}
		tokens(&t, small_corpus[0], 0);
		CHECK_INT(ngram_model_add(whole, t.v, t.n, NULL), 0);
		raw_dst = sum;
		for (int k = 0; k < 3; k++)
			CHECK_INT(ngram_model_raw_each(part[k], add_back, NULL), 0);
		CHECK_INT(ngram_model_finish(whole, NULL), 0);
		CHECK_INT(ngram_model_finish(sum, NULL), 0);
		CHECK_INT(ngram_model_add_raw(sum, hist, 2, 1, NULL), ERR_INVALID); /* finished */
		for (unsigned k = 1; k <= order; k++) {
			double a[3], b[3];

			CHECK_INT(ngram_model_count(sum, k), ngram_model_count(whole, k));
			ngram_model_discounts(whole, k, a);
			ngram_model_discounts(sum, k, b);
			CHECK(memcmp(a, b, sizeof a) == 0);
		}
		/* every p(w | h) over 2-word histories of known words and <s>: bit-identical */
		for (uint32_t h0 = NGRAM_BOS; h0 < V + 2; h0++)
			for (uint32_t h1 = NGRAM_EOS + 1; h1 < V + 2; h1 += 3)
				for (uint32_t w = NGRAM_UNK; w < V + 2; w++) {
					hist[0] = h0;
					hist[1] = h1;
					CHECK(ngram_model_prob(whole, V, hist, 2, w) ==
					      ngram_model_prob(sum, V, hist, 2, w));
				}
		for (int k = 0; k < 3; k++)
			ngram_model_free(part[k]);
		ngram_model_free(whole);
		ngram_model_free(sum);
	}
	ngram_vocab_free(v);
	CHECK_INT(mem.used, 0);
}

/* ---- WordNet glosses ---- */

#define GLOSS_FILE "/usr/share/wordnet/data.noun"

struct corpus {
	char **s;
	size_t n;
};

static int read_glosses(struct corpus *c, size_t max)
{
	FILE *f = fopen(GLOSS_FILE, "r");
	char line[16384];

	c->s = calloc(max, sizeof *c->s);
	c->n = 0;
	if (f == NULL || c->s == NULL) {
		if (f != NULL)
			fclose(f);
		return -1;
	}
	while (c->n < max && fgets(line, sizeof line, f) != NULL) {
		char *g = strstr(line, "| ");

		if (line[0] == ' ' || g == NULL)
			continue;
		g += 2;
		g[strcspn(g, "\n")] = '\0';
		c->s[c->n++] = strdup(g);
	}
	fclose(f);
	return 0;
}

static void free_corpus(struct corpus *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->s[i]);
	free(c->s);
}

/* The tokens of s as text, lower-cased, separated by spaces (what IRSTLM reads). */
static void write_tokens(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	int first = 1;

	fputs("<s>", f);
	for (size_t i = 0; p[i] != '\0';) {
		if (isspace(p[i])) {
			i++;
			continue;
		}
		fputc(' ', f);
		if (isalnum(p[i]) || p[i] >= 0x80) {
			while (p[i] != '\0' && (isalnum(p[i]) || p[i] >= 0x80))
				fputc(tolower(p[i++]), f);
		} else {
			fputc(p[i++], f);
		}
		first = 0;
	}
	(void)first;
	fputs(" </s>\n", f);
}

#define TRAIN 20000
#define TEST 2000

static void test_wordnet_and_irstlm(void)
{
	struct corpus c;
	struct ngram_mem mem = {.budget = (size_t)256 << 20};
	struct ngram_vocab *v = NULL;
	struct ngram_model *m = NULL, *m2 = NULL;
	struct ngram_vocab *v2 = NULL;
	struct ngram_buf buf = {0};
	struct ids t = {0};
	char dir[] = "/tmp/winnow-ngram-XXXXXX", path[128], cmd[512];
	FILE *ftr, *fte, *pp;
	double nll = 0, ours, theirs = -1;
	size_t ntok = 0, nsent = 0, off = 0;

	if (access(GLOSS_FILE, R_OK) != 0) {
		fprintf(stderr, "skip: %s missing (scripts/deps.sh installs wordnet-base)\n",
		        GLOSS_FILE);
		return;
	}
	CHECK_INT(read_glosses(&c, TRAIN + TEST), 0);
	CHECK_INT((long long)c.n, TRAIN + TEST);
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/train.txt", dir);
	ftr = fopen(path, "w");
	snprintf(path, sizeof path, "%s/test.txt", dir);
	fte = fopen(path, "w");
	CHECK(ftr != NULL && fte != NULL);
	CHECK_INT(ngram_vocab_new(&v, &mem, NULL), 0);
	CHECK_INT(ngram_model_new(&m, 3, &mem, NULL), 0);
	t.voc = v;
	for (size_t i = 0; i < TRAIN; i++) {
		tokens(&t, c.s[i], 1);
		CHECK(!t.err);
		CHECK_INT(ngram_model_add(m, t.v, t.n, NULL), 0);
		write_tokens(ftr, c.s[i]);
	}
	CHECK_INT(ngram_model_finish(m, NULL), 0);
	CHECK(mem.peak <= mem.budget);
	/* held-out sentences without out-of-vocabulary words: both tools then score exactly
	 * the same events (IRSTLM's OOV penalty depends on its dictionary upper bound) */
	for (size_t i = TRAIN; i < TRAIN + TEST; i++) {
		uint32_t seq[4098];
		double ps[4098];
		int oov = 0;

		tokens(&t, c.s[i], 0);
		for (size_t j = 0; j < t.n; j++)
			oov |= t.v[j] == NGRAM_UNK;
		if (oov)
			continue;
		write_tokens(fte, c.s[i]);
		seq[0] = NGRAM_BOS;
		memcpy(seq + 1, t.v, t.n * sizeof *seq);
		seq[t.n + 1] = NGRAM_EOS;
		ngram_model_seq_probs(m, ngram_vocab_size(v), seq, t.n + 2, ps);
		for (size_t j = 1; j <= t.n + 1; j++) {
			size_t h = j < 2 ? j : 2;
			double q = ngram_model_prob(m, ngram_vocab_size(v), seq + j - h, h, seq[j]);

			/* the sentence scan and the one-position query agree exactly */
			CHECK(q == ps[j]);
			nll -= log(q);
			ntok++;
		}
		nsent++;
	}
	fclose(ftr);
	fclose(fte);
	CHECK(nsent > 300);
	ours = exp(nll / (double)ntok);
	/* a proper distribution on real text: a few contexts over the whole vocabulary */
	{
		uint32_t hist[2];

		tokens(&t, "a member of the", 0);
		hist[0] = NGRAM_BOS;
		CHECK_NEAR(prob_sum(m, v, hist, 1), 1.0, 1e-6);
		CHECK_NEAR(prob_sum(m, v, t.v + 1, 2), 1.0, 1e-6);
		CHECK_NEAR(prob_sum(m, v, t.v + 2, 2), 1.0, 1e-6);
		CHECK_NEAR(prob_sum(m, v, t.v, 1), 1.0, 1e-6);
	}
	/* save and load give the same probabilities */
	CHECK_INT(ngram_vocab_save(v, &buf, NULL), 0);
	CHECK_INT(ngram_model_save(m, &buf, NULL), 0);
	CHECK_INT(ngram_vocab_load(&v2, buf.p, buf.len, &off, &mem, NULL), 0);
	CHECK_INT(ngram_model_load(&m2, buf.p, buf.len, &off, &mem, NULL), 0);
	CHECK_INT(off, buf.len);
	CHECK_INT(ngram_vocab_size(v2), ngram_vocab_size(v));
	tokens(&t, c.s[TRAIN + 7], 0);
	for (size_t j = 2; j < t.n; j++)
		CHECK(ngram_model_prob(m, ngram_vocab_size(v), t.v + j - 2, 2, t.v[j]) ==
		      ngram_model_prob(m2, ngram_vocab_size(v2), t.v + j - 2, 2, t.v[j]));
	/* a truncated blob is refused */
	{
		struct ngram_model *m3 = NULL;
		struct err e = {0};
		size_t o2 = 0;
		struct ngram_vocab *v3 = NULL;

		CHECK_INT(ngram_vocab_load(&v3, buf.p, buf.len, &o2, &mem, NULL), 0);
		CHECK_INT(ngram_model_load(&m3, buf.p, buf.len - 100, &o2, &mem, &e), ERR_INVALID);
		CHECK(m3 == NULL);
		ngram_vocab_free(v3);
	}
	snprintf(cmd, sizeof cmd,
	         "/usr/lib/irstlm/bin/tlm -tr=%s/train.txt -n=3 -lm=msb -ps=no -te=%s/test.txt "
	         "2>&1",
	         dir, dir);
	if (access("/usr/lib/irstlm/bin/tlm", X_OK) == 0 && (pp = popen(cmd, "r")) != NULL) {
		char line[1024];

		while (fgets(line, sizeof line, pp) != NULL) {
			const char *q = strstr(line, " PP=");

			if (q != NULL)
				theirs = atof(q + 4);
		}
		pclose(pp);
		fprintf(stderr, "held-out perplexity, order 3, %zu sentences, %zu tokens: "
		        "winnow %.2f, IRSTLM msb %.2f (ratio %.4f)\n",
		        nsent, ntok, ours, theirs, ours / theirs);
		CHECK(theirs > 0);
		/* Measured: winnow 189.97, IRSTLM 200.17 (ratio 0.949). IRSTLM reserves a
		 * Witten-Bell estimate of the OOV mass in its unigram distribution (tlm prints
		 * "Witten-Bell estimate of OOV freq: 0.069", about V / (N + V)) even with no OOV
		 * in the test text, and no option turns it off; winnow gives <unk> only its share of
		 * the uniform floor. Every in-vocabulary word pays that ~7% at the unigram level, so
		 * winnow is expected a few percent lower on in-vocabulary text. A real error in the
		 * smoothing (a missing discount, raw counts for lower orders, a wrong gamma) moves
		 * perplexity by far more: IRSTLM's own shift-beta without the modified discounts
		 * is 206, Witten-Bell 240. So: no more than 5% above IRSTLM, no more than 8%
		 * below. */
		CHECK(ours / theirs < 1.05);
		CHECK(ours / theirs > 0.92);
	} else {
		fprintf(stderr, "skip: IRSTLM (Debian irstlm) missing; perplexity %.2f\n", ours);
	}
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK_INT(system(cmd), 0);
	ngram_model_free(m);
	ngram_model_free(m2);
	ngram_vocab_free(v);
	ngram_vocab_free(v2);
	free(buf.p);
	free_corpus(&c);
}

static void test_budget(void)
{
	struct ngram_mem mem = {.budget = 64 << 10};
	struct ngram_vocab *v = NULL;
	struct ngram_model *m = NULL;
	struct err e = {0};
	int rc = 0;

	CHECK_INT(ngram_vocab_new(&v, &mem, NULL), 0);
	CHECK_INT(ngram_model_new(&m, 3, &mem, NULL), 0);
	for (uint32_t i = 0; i < 100000 && rc == 0; i++) {
		uint32_t ids[3] = {i + 10, i * 7 + 11, i * 13 + 12};

		rc = ngram_model_add(m, ids, 3, &e);
	}
	CHECK_INT(rc, ERR_TOO_LARGE);
	CHECK_STR(e.slug, "memory_budget");
	CHECK(mem.peak <= mem.budget);
	ngram_model_free(m);
	ngram_vocab_free(v);
	CHECK_INT(mem.used, 0);
	CHECK_INT(ngram_model_new(&m, 6, &mem, &e), ERR_INVALID);
	CHECK_INT(ngram_model_new(&m, 1, &mem, &e), ERR_INVALID);
}

int main(void)
{
	HARNESS_RUN(test_tokenize);
	HARNESS_RUN(test_sums_to_one_small);
	HARNESS_RUN(test_budget);
	HARNESS_RUN(test_raw_counts_sum);
	HARNESS_RUN(test_wordnet_and_irstlm);
	return harness_done();
}
