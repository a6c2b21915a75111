/* SPDX-License-Identifier: MIT */
/* ngram: interpolated modified Kneser-Ney n-gram models over hashed tables (see ngram.h).
 *
 * A table is open addressing with linear probing over fixed-width slots of u32 words: the key
 * (k word ids) then the value. Key word 0 marks an empty slot; no id is 0. Capacity is a
 * power of two, grown (doubled) at a load of 3/4, so a probe sequence stays short. */
#include "algo/ngram.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/vec.h"

struct tab {
	uint32_t kw, vw; /* key and value words per slot */
	uint64_t cap;    /* slots: 0 or a power of two */
	uint64_t n;      /* used slots */
	uint32_t *s;
	struct ngram_mem *mem;
};

struct ngram_vocab {
	struct tab t; /* key: the 63-bit word hash as 2 words (first | 1 != 0); value: id */
	uint32_t next_id;
};

/* Value words of an n-gram of an order below the top: its count, then its statistics as the
 * context of the next order (sum of the counts that follow it, how many of them are 1, 2,
 * 3+). Keeping both in one entry lets a scan of a sentence reuse the entry it found for the
 * n-gram ending at the previous position as the context of the current one. */
#define NG_W 5

struct ngram_model {
	unsigned order;
	uint32_t *uni;   /* NG_W words per word id: the unigrams, dense */
	uint64_t nuni;   /* ids covered */
	struct tab grams[NGRAM_MAX_ORDER + 1]; /* [k >= 2]: key k ids; NG_W words (1 at the top) */
	uint64_t ctx1[4]; /* the empty context of order 1: sum, n1, n2, n3+ */
	double d[NGRAM_MAX_ORDER + 1][3]; /* discounts D1, D2, D3+ per order */
	int finished;
	struct ngram_mem *mem;
};

/* ---- tables ---- */

static uint64_t key_hash(const uint32_t *k, unsigned kw)
{
	uint64_t h = 0x9e3779b97f4a7c15ull * (kw + 1);

	for (unsigned i = 0; i < kw; i++) {
		h = (h ^ k[i]) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	h *= 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 29);
}

static size_t tab_bytes(const struct tab *t, uint64_t cap)
{
	return (size_t)cap * (t->kw + t->vw) * sizeof(uint32_t);
}

static void tab_init(struct tab *t, unsigned kw, unsigned vw, struct ngram_mem *mem)
{
	memset(t, 0, sizeof *t);
	t->kw = kw;
	t->vw = vw;
	t->mem = mem;
}

static void tab_free(struct tab *t)
{
	if (t->s != NULL && t->mem != NULL)
		t->mem->used -= tab_bytes(t, t->cap);
	free(t->s);
	t->s = NULL;
	t->cap = t->n = 0;
}

/* The slot of key, or where it would go (an empty slot). */
static uint32_t *tab_slot(const struct tab *t, const uint32_t *key)
{
	uint64_t mask = t->cap - 1, i = key_hash(key, t->kw) & mask;
	unsigned w = t->kw + t->vw;

	for (;;) {
		uint32_t *s = t->s + i * w;

		if (s[0] == 0 || memcmp(s, key, t->kw * sizeof *key) == 0)
			return s;
		i = (i + 1) & mask;
	}
}

static uint32_t *tab_find(const struct tab *t, const uint32_t *key)
{
	uint32_t *s;

	if (t->cap == 0)
		return NULL;
	s = tab_slot(t, key);
	return s[0] == 0 ? NULL : s + t->kw;
}

static int tab_resize(struct tab *t, uint64_t cap, struct err *e)
{
	size_t nb = tab_bytes(t, cap);
	unsigned w = t->kw + t->vw;
	struct tab nt = *t;

	if (t->mem != NULL && t->mem->budget != 0 && t->mem->used + nb > t->mem->budget)
		return err_set(e, ERR_TOO_LARGE, "memory_budget",
		               "the n-gram tables need more than the memory budget of %zu MiB (a "
		               "table of %llu slots would not fit): raise memory_mb, lower the order "
		               "or train on less text",
		               t->mem->budget >> 20, (unsigned long long)cap);
	nt.s = calloc((size_t)cap, (size_t)w * sizeof(uint32_t));
	if (nt.s == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory (%zu bytes)", nb);
	nt.cap = cap;
	if (t->mem != NULL) {
		t->mem->used += nb;
		if (t->mem->used > t->mem->peak)
			t->mem->peak = t->mem->used;
	}
	for (uint64_t i = 0; i < t->cap; i++) {
		const uint32_t *s = t->s + i * w;

		if (s[0] != 0)
			memcpy(tab_slot(&nt, s), s, w * sizeof *s);
	}
	nt.n = t->n;
	tab_free(t);
	*t = nt;
	return 0;
}

/* The value of key, inserted (zeroed) when absent. */
static int tab_upsert(struct tab *t, const uint32_t *key, uint32_t **val, struct err *e)
{
	uint32_t *s;
	int rc;

	if ((t->n + 1) * 4 > t->cap * 3 &&
	    (rc = tab_resize(t, t->cap ? t->cap * 2 : 1024, e)) != 0)
		return rc;
	s = tab_slot(t, key);
	if (s[0] == 0) {
		memcpy(s, key, t->kw * sizeof *key);
		t->n++;
	}
	*val = s + t->kw;
	return 0;
}

/* ---- tokens ---- */

uint64_t ngram_word_hash(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a finaliser for the low bits */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	return h ^ (h >> 33);
}

static int word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c >= 0x80;
}

size_t ngram_tokenize(const char *text, size_t len, void (*fn)(void *ctx, uint64_t h), void *ctx)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t n = 0;

	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];

		if (c == ' ' || (c >= '\t' && c <= '\r')) {
			i++;
			continue;
		}
		if (word_byte(c)) {
			/* FNV-1a over the lower-cased bytes, as ngram_word_hash */
			uint64_t h = 0xcbf29ce484222325ull;

			for (; i < len && word_byte(s[i]); i++) {
				unsigned char b = s[i];

				if (b >= 'A' && b <= 'Z')
					b = (unsigned char)(b - 'A' + 'a');
				h = (h ^ b) * 0x100000001b3ull;
			}
			h ^= h >> 33;
			h *= 0xff51afd7ed558ccdull;
			fn(ctx, h ^ (h >> 33));
		} else {
			fn(ctx, ngram_word_hash((const char *)s + i, 1));
			i++;
		}
		n++;
	}
	return n;
}

/* ---- vocabulary ---- */

int ngram_vocab_new(struct ngram_vocab **out, struct ngram_mem *mem, struct err *e)
{
	struct ngram_vocab *v = calloc(1, sizeof *v);

	if (v == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	tab_init(&v->t, 2, 1, mem);
	v->next_id = NGRAM_EOS + 1;
	*out = v;
	return 0;
}

void ngram_vocab_free(struct ngram_vocab *v)
{
	if (v == NULL)
		return;
	tab_free(&v->t);
	free(v);
}

static void vocab_key(uint64_t h, uint32_t k[2])
{
	k[0] = (uint32_t)(h >> 32) | 1u; /* never 0: 0 marks an empty slot */
	k[1] = (uint32_t)h;
}

int ngram_vocab_add(struct ngram_vocab *v, uint64_t h, uint32_t *id, struct err *e)
{
	uint32_t k[2], *val;
	int rc;

	vocab_key(h, k);
	if ((rc = tab_upsert(&v->t, k, &val, e)) != 0)
		return rc;
	if (*val == 0) {
		if (v->next_id == UINT32_MAX)
			return err_set(e, ERR_TOO_LARGE, "memory_budget", "over 2^32 words");
		*val = v->next_id++;
	}
	*id = *val;
	return 0;
}

uint32_t ngram_vocab_get(const struct ngram_vocab *v, uint64_t h)
{
	uint32_t k[2], *val;

	vocab_key(h, k);
	val = tab_find(&v->t, k);
	return val != NULL ? *val : NGRAM_UNK;
}

uint32_t ngram_vocab_size(const struct ngram_vocab *v)
{
	return (uint32_t)(v->t.n + 2); /* the words, </s>, <unk> */
}

/* ---- models ---- */

int ngram_model_new(struct ngram_model **out, unsigned order, struct ngram_mem *mem,
                    struct err *e)
{
	struct ngram_model *m;

	if (order < 2 || order > NGRAM_MAX_ORDER)
		return err_set(e, ERR_INVALID, "bad_param", "the order must be 2 to %d",
		               NGRAM_MAX_ORDER);
	m = calloc(1, sizeof *m);
	if (m == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	m->order = order;
	m->mem = mem;
	for (unsigned k = 2; k <= order; k++)
		tab_init(&m->grams[k], k, k < order ? NG_W : 1, mem);
	*out = m;
	return 0;
}

void ngram_model_free(struct ngram_model *m)
{
	if (m == NULL)
		return;
	for (unsigned k = 2; k <= m->order; k++)
		tab_free(&m->grams[k]);
	if (m->uni != NULL && m->mem != NULL)
		m->mem->used -= (size_t)m->nuni * NG_W * sizeof(uint32_t);
	free(m->uni);
	free(m);
}

unsigned ngram_model_order(const struct ngram_model *m)
{
	return m->order;
}

uint64_t ngram_model_count(const struct ngram_model *m, unsigned k)
{
	uint64_t n = 0;

	if (k == 1) {
		for (uint64_t i = 0; i < m->nuni; i++)
			n += m->uni[i * NG_W] != 0;
		return n;
	}
	return k >= 2 && k <= m->order ? m->grams[k].n : 0;
}

void ngram_model_discounts(const struct ngram_model *m, unsigned k, double d[3])
{
	for (int i = 0; i < 3; i++)
		d[i] = k >= 1 && k <= m->order ? m->d[k][i] : 0;
}

int ngram_model_raw_each(const struct ngram_model *m,
                         int (*fn)(void *ctx, unsigned k, const uint32_t *ids, uint32_t count),
                         void *ctx)
{
	for (unsigned k = 2; k <= m->order && !m->finished; k++) {
		const struct tab *t = &m->grams[k];
		unsigned w = t->kw + t->vw;

		for (uint64_t i = 0; i < t->cap; i++) {
			const uint32_t *s = t->s + i * w;
			int rc;

			if (s[0] != 0 && s[k] != 0 && (rc = fn(ctx, k, s, s[k])) != 0)
				return rc;
		}
	}
	return 0;
}

int ngram_model_add_raw(struct ngram_model *m, const uint32_t *ids, unsigned k, uint32_t count,
                        struct err *e)
{
	uint32_t *val;
	int rc;

	if (m->finished || k < 2 || k > m->order)
		return err_set(e, ERR_INVALID, "bad_counts",
		               "an n-gram of order %u for a model of order %u", k, m->order);
	for (unsigned i = 0; i < k; i++)
		if (ids[i] == 0)
			return err_set(e, ERR_INVALID, "bad_counts", "word id 0 in an n-gram");
	if (count == 0) /* an entry of count 0 would read as a context only */
		return 0;
	if ((rc = tab_upsert(&m->grams[k], ids, &val, e)) != 0)
		return rc;
	val[0] = val[0] + count < val[0] ? UINT32_MAX : val[0] + count;
	return 0;
}

void ngram_vocab_each(const struct ngram_vocab *v, void (*fn)(void *ctx, uint64_t h, uint32_t id),
                      void *ctx)
{
	for (uint64_t i = 0; i < v->t.cap; i++) {
		const uint32_t *s = v->t.s + i * 3;

		if (s[0] != 0)
			fn(ctx, (uint64_t)s[0] << 32 | s[1], s[2]);
	}
}

/* The unigram entry of id, the array grown to hold it. */
static int uni_at(struct ngram_model *m, uint32_t id, uint32_t **out, struct err *e)
{
	if (id >= m->nuni) {
		uint64_t n = m->nuni ? m->nuni : 1024;
		size_t ob = (size_t)m->nuni * NG_W * sizeof(uint32_t), nb;
		uint32_t *p;

		while (n <= id)
			n *= 2;
		nb = (size_t)n * NG_W * sizeof(uint32_t);
		if (m->mem != NULL && m->mem->budget != 0 && m->mem->used - ob + nb > m->mem->budget)
			return err_set(e, ERR_TOO_LARGE, "memory_budget",
			               "the n-gram tables need more than the memory budget of %zu MiB",
			               m->mem->budget >> 20);
		p = realloc(m->uni, nb);
		if (p == NULL)
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		memset(p + m->nuni * NG_W, 0, nb - ob);
		m->uni = p;
		m->nuni = n;
		if (m->mem != NULL) {
			m->mem->used += nb - ob;
			if (m->mem->used > m->mem->peak)
				m->mem->peak = m->mem->used;
		}
	}
	*out = m->uni + (size_t)id * NG_W;
	return 0;
}

static const uint32_t *uni_get(const struct ngram_model *m, uint32_t id)
{
	return id < m->nuni ? m->uni + (size_t)id * NG_W : NULL;
}

int ngram_model_add(struct ngram_model *m, const uint32_t *ids, size_t n, struct err *e)
{
	uint32_t key[NGRAM_MAX_ORDER], *val;
	unsigned N = m->order;
	int rc;

	/* position i of <s> w1 .. wn </s> (1..n+1): the n-gram ending there, cut at <s> (so of
	 * order 2 at least) */
	for (size_t i = 1; i <= n + 1; i++) {
		size_t start = i + 1 > N ? i + 1 - N : 0;
		unsigned k = (unsigned)(i - start + 1);

		for (unsigned j = 0; j < k; j++) {
			size_t pos = start + j;

			key[j] = pos == 0 ? NGRAM_BOS : pos == n + 1 ? NGRAM_EOS : ids[pos - 1];
		}
		if ((rc = tab_upsert(&m->grams[k], key, &val, e)) != 0)
			return rc;
		if (val[0] < UINT32_MAX)
			val[0]++;
	}
	return 0;
}

static double discount_of(const double d[3], uint32_t a)
{
	return a == 1 ? d[0] : a == 2 ? d[1] : d[2];
}

/* Add count a to the context statistics c (sum, n1, n2, n3+ at c[1..4]). */
static void ctx_add(uint32_t *c, uint32_t a)
{
	c[1] = c[1] + a < c[1] ? UINT32_MAX : c[1] + a;
	c[a == 1 ? 2 : a == 2 ? 3 : 4]++;
}

/* Chen & Goodman: Y = n1 / (n1 + 2 n2), D1 = 1 - 2Y n2/n1, D2 = 2 - 3Y n3/n2,
 * D3+ = 3 - 4Y n4/n3; a count of counts that is 0 (tiny corpora) falls back to the middle
 * of the allowed range, and every discount stays in [0, c] so that no probability goes
 * negative. */
static void discounts(double d[3], const uint64_t cc[5])
{
	double n1 = (double)cc[1], n2 = (double)cc[2], n3 = (double)cc[3], n4 = (double)cc[4];
	double y = n1 + 2 * n2 > 0 ? n1 / (n1 + 2 * n2) : 0.5;
	double d1 = n1 > 0 ? 1 - 2 * y * n2 / n1 : 0.5;
	double d2 = n2 > 0 ? 2 - 3 * y * n3 / n2 : 1.0;
	double d3 = n3 > 0 ? 3 - 4 * y * n4 / n3 : 1.5;

	d[0] = d1 < 0 ? 0 : d1 > 1 ? 1 : d1;
	d[1] = d2 < 0 ? 0 : d2 > 2 ? 2 : d2;
	d[2] = d3 < 0 ? 0 : d3 > 3 ? 3 : d3;
}

int ngram_model_finish(struct ngram_model *m, struct err *e)
{
	unsigned N = m->order;
	uint64_t cc[5];
	uint32_t *val;
	int rc;

	/* continuation counts: each distinct n-gram of order k adds 1 to its suffix of order
	 * k - 1, from the top down so that order k is complete before it is read; the suffix
	 * never begins with <s>, which is only ever first */
	for (unsigned k = N; k >= 2; k--) {
		const struct tab *t = &m->grams[k];
		unsigned w = t->kw + t->vw;

		for (uint64_t i = 0; i < t->cap; i++) {
			const uint32_t *s = t->s + i * w;

			if (s[0] == 0)
				continue;
			rc = k > 2 ? tab_upsert(&m->grams[k - 1], s + 1, &val, e)
			           : uni_at(m, s[1], &val, e);
			if (rc != 0)
				return rc;
			val[0]++;
		}
	}
	/* context statistics (into the entry of the context, one order down) and counts of
	 * counts; an entry made only as a context has count 0 and is no n-gram */
	for (unsigned k = 2; k <= N; k++) {
		const struct tab *t = &m->grams[k];
		unsigned w = t->kw + t->vw;

		memset(cc, 0, sizeof cc);
		for (uint64_t i = 0; i < t->cap; i++) {
			const uint32_t *s = t->s + i * w;
			uint32_t a = s[k];

			if (s[0] == 0 || a == 0)
				continue;
			if (a <= 4)
				cc[a]++;
			rc = k > 2 ? tab_upsert(&m->grams[k - 1], s, &val, e) : uni_at(m, s[0], &val, e);
			if (rc != 0)
				return rc;
			ctx_add(val, a);
		}
		discounts(m->d[k], cc);
	}
	memset(cc, 0, sizeof cc);
	memset(m->ctx1, 0, sizeof m->ctx1);
	for (uint64_t id = 0; id < m->nuni; id++) {
		uint32_t a = m->uni[id * NG_W];

		if (a == 0)
			continue;
		if (a <= 4)
			cc[a]++;
		m->ctx1[0] += a;
		m->ctx1[a == 1 ? 1 : a == 2 ? 2 : 3]++;
	}
	discounts(m->d[1], cc);
	m->finished = 1;
	return 0;
}

/* One interpolation step: the lower-order p, the count a of (h w), the context stats c. */
static double step(const double d[3], uint32_t a, const uint32_t *c, double p)
{
	double num = a > 0 ? a - discount_of(d, a) : 0;
	double g = d[0] * c[2] + d[1] * c[3] + d[2] * c[4];

	return (num + g * p) / (double)c[1];
}

static double unigram(const struct ngram_model *m, uint32_t V, uint32_t w, const uint32_t *u)
{
	const double *d = m->d[1];
	uint32_t a = u != NULL ? u[0] : 0;
	double num = a > 0 ? a - discount_of(d, a) : 0;
	double g = d[0] * m->ctx1[1] + d[1] * m->ctx1[2] + d[2] * m->ctx1[3];

	(void)w;
	if (m->ctx1[0] == 0)
		return 1.0 / V;
	return (num + g / V) / (double)m->ctx1[0];
}

double ngram_model_prob(const struct ngram_model *m, uint32_t V, const uint32_t *hist,
                        size_t hlen, uint32_t w)
{
	uint32_t key[NGRAM_MAX_ORDER];
	unsigned N = m->order, maxk = hlen + 1 < N ? (unsigned)hlen + 1 : N;
	double p = unigram(m, V, w, uni_get(m, w));

	for (unsigned k = 2; k <= maxk; k++) {
		const uint32_t *c, *g;

		/* key = the last k - 1 history ids, then w; the context is key[0..k-2] */
		memcpy(key, hist + hlen - (k - 1), (k - 1) * sizeof *key);
		key[k - 1] = w;
		c = k == 2 ? uni_get(m, key[0]) : tab_find(&m->grams[k - 1], key);
		if (c == NULL || c[1] == 0)
			break; /* an unseen context: no longer one can have been seen either */
		g = tab_find(&m->grams[k], key);
		p = step(m->d[k], g != NULL ? g[0] : 0, c, p);
	}
	return p;
}

#define PREFETCH 16

/* Prefetch the first slot of every n-gram lookup of positions [j, j + PREFETCH). */
static void prefetch(const struct ngram_model *m, const uint32_t *seq, size_t j, size_t len)
{
	for (size_t i = j; i < len && i < j + PREFETCH; i++) {
		for (unsigned k = 2; k <= m->order && k <= i + 1; k++) {
			const struct tab *t = &m->grams[k];

			if (t->cap != 0)
				__builtin_prefetch(t->s + (key_hash(seq + i + 1 - k, k) & (t->cap - 1)) *
				                                  (t->kw + t->vw));
		}
		if (seq[i] < m->nuni)
			__builtin_prefetch(m->uni + (size_t)seq[i] * NG_W);
	}
}

void ngram_model_seq_probs(const struct ngram_model *m, uint32_t V, const uint32_t *seq,
                           size_t len, double *p)
{
	/* prev[k]: the entry of the k-gram ending at the previous position (NULL: none), which
	 * is the context of order k + 1 now */
	const uint32_t *prev[NGRAM_MAX_ORDER + 1] = {0}, *cur[NGRAM_MAX_ORDER + 1];
	unsigned N = m->order;

	if (len == 0)
		return;
	prev[1] = uni_get(m, seq[0]);
	for (size_t j = 1; j < len; j++) {
		uint32_t w = seq[j];
		double q;

		/* The tables are far larger than the caches: every lookup is a miss. Ask for the
		 * slots of the next PREFETCH positions at once, so that the misses overlap. */
		if ((j - 1) % PREFETCH == 0)
			prefetch(m, seq, j, len);

		memset(cur, 0, sizeof cur);
		cur[1] = uni_get(m, w);
		q = unigram(m, V, w, cur[1]);
		for (unsigned k = 2; k <= N && k <= j + 1; k++) {
			const uint32_t *c = prev[k - 1], *g;

			if (c == NULL || c[1] == 0)
				break;
			g = tab_find(&m->grams[k], seq + j + 1 - k);
			q = step(m->d[k], g != NULL ? g[0] : 0, c, q);
			cur[k] = g;
		}
		p[j] = q;
		memcpy(prev, cur, sizeof prev);
	}
}

/* ---- serialisation ---- */

#define VOCAB_MAGIC 0x31564e57u /* "WNV1" */
#define MODEL_MAGIC 0x314d4e57u /* "WNM1" */

static int buf_put(struct ngram_buf *b, const void *p, size_t n, struct err *e)
{
	if (b->len + n > b->cap) {
		size_t nc = b->cap ? b->cap : 4096;
		uint8_t *q;

		while (nc < b->len + n)
			nc *= 2;
		q = realloc(b->p, nc);
		if (q == NULL)
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		b->p = q;
		b->cap = nc;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static int put_u64(struct ngram_buf *b, uint64_t v, struct err *e)
{
	uint8_t x[8];

	vec_le64_put(x, v);
	return buf_put(b, x, 8, e);
}

static int get_u64(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
	if (*off > len || len - *off < 8)
		return -1;
	*v = vec_le64_get(p + *off);
	*off += 8;
	return 0;
}

static int bad(struct err *e, const char *what)
{
	return err_set(e, ERR_INVALID, "bad_state", "n-gram state: %s", what);
}

/* A table as its used slots only (little-endian u32 words); load rehashes them. */
static int tab_save(const struct tab *t, struct ngram_buf *b, struct err *e)
{
	unsigned w = t->kw + t->vw;
	int rc;

	if ((rc = put_u64(b, t->n, e)) != 0)
		return rc;
	for (uint64_t i = 0; i < t->cap; i++) {
		const uint32_t *s = t->s + i * w;
		uint8_t x[4 * (NGRAM_MAX_ORDER + 4)];

		if (s[0] == 0)
			continue;
		for (unsigned j = 0; j < w; j++)
			for (int q = 0; q < 4; q++)
				x[4 * j + (unsigned)q] = (uint8_t)(s[j] >> (8 * q));
		if ((rc = buf_put(b, x, 4 * w, e)) != 0)
			return rc;
	}
	return 0;
}

static int tab_load(struct tab *t, const uint8_t *p, size_t len, size_t *off, struct err *e)
{
	unsigned w = t->kw + t->vw;
	uint64_t n, cap = 1024;
	int rc;

	if (get_u64(p, len, off, &n) != 0 || n > (len - *off) / (4 * w))
		return bad(e, "a table is cut short");
	while (n * 4 > cap * 3)
		cap *= 2;
	if (n > 0 && (rc = tab_resize(t, cap, e)) != 0)
		return rc;
	for (uint64_t i = 0; i < n; i++) {
		uint32_t s[NGRAM_MAX_ORDER + 4], *slot;

		for (unsigned j = 0; j < w; j++) {
			const uint8_t *q = p + *off + 4 * j;

			s[j] = vec_le32_get(q);
		}
		*off += 4 * w;
		if (s[0] == 0)
			return bad(e, "an empty key");
		slot = tab_slot(t, s);
		if (slot[0] != 0)
			return bad(e, "a repeated key");
		memcpy(slot, s, w * sizeof *s);
		t->n++;
	}
	return 0;
}

int ngram_vocab_save(const struct ngram_vocab *v, struct ngram_buf *b, struct err *e)
{
	int rc;

	if ((rc = put_u64(b, VOCAB_MAGIC, e)) != 0 || (rc = put_u64(b, v->next_id, e)) != 0)
		return rc;
	return tab_save(&v->t, b, e);
}

int ngram_vocab_load(struct ngram_vocab **out, const uint8_t *p, size_t len, size_t *off,
                     struct ngram_mem *mem, struct err *e)
{
	struct ngram_vocab *v = NULL;
	uint64_t magic, next;
	int rc;

	if (get_u64(p, len, off, &magic) != 0 || magic != VOCAB_MAGIC ||
	    get_u64(p, len, off, &next) != 0 || next < NGRAM_EOS + 1 || next > UINT32_MAX)
		return bad(e, "no vocabulary header");
	if ((rc = ngram_vocab_new(&v, mem, e)) != 0)
		return rc;
	v->next_id = (uint32_t)next;
	if ((rc = tab_load(&v->t, p, len, off, e)) != 0 ||
	    (v->t.n != next - (NGRAM_EOS + 1) && (rc = bad(e, "vocabulary size")) != 0)) {
		ngram_vocab_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

int ngram_model_save(const struct ngram_model *m, struct ngram_buf *b, struct err *e)
{
	uint64_t nz = 0;
	int rc;

	if (!m->finished)
		return err_set(e, ERR_INTERNAL, "unfinished", "an unfinished model cannot be saved");
	if ((rc = put_u64(b, MODEL_MAGIC, e)) != 0 || (rc = put_u64(b, m->order, e)) != 0)
		return rc;
	for (int i = 0; i < 4; i++)
		if ((rc = put_u64(b, m->ctx1[i], e)) != 0)
			return rc;
	for (unsigned k = 1; k <= m->order; k++)
		for (int i = 0; i < 3; i++) {
			uint64_t bits;

			memcpy(&bits, &m->d[k][i], 8);
			if ((rc = put_u64(b, bits, e)) != 0)
				return rc;
		}
	/* the unigrams: the entries that are not all zero, as (id, NG_W words) */
	for (uint64_t id = 0; id < m->nuni; id++)
		for (unsigned j = 0; j < NG_W; j++)
			if (m->uni[id * NG_W + j] != 0) {
				nz++;
				break;
			}
	if ((rc = put_u64(b, nz, e)) != 0)
		return rc;
	for (uint64_t id = 0; id < m->nuni; id++) {
		const uint32_t *u = m->uni + id * NG_W;
		uint8_t x[4 * (NG_W + 1)];
		int any = 0;

		for (unsigned j = 0; j < NG_W; j++)
			any |= u[j] != 0;
		if (!any)
			continue;
		for (unsigned j = 0; j <= NG_W; j++) {
			uint32_t v = j == 0 ? (uint32_t)id : u[j - 1];

			for (int q = 0; q < 4; q++)
				x[4 * j + (unsigned)q] = (uint8_t)(v >> (8 * q));
		}
		if ((rc = buf_put(b, x, sizeof x, e)) != 0)
			return rc;
	}
	for (unsigned k = 2; k <= m->order; k++)
		if ((rc = tab_save(&m->grams[k], b, e)) != 0)
			return rc;
	return 0;
}

int ngram_model_load(struct ngram_model **out, const uint8_t *p, size_t len, size_t *off,
                     struct ngram_mem *mem, struct err *e)
{
	struct ngram_model *m = NULL;
	uint64_t magic, order, nz;
	int rc;

	if (get_u64(p, len, off, &magic) != 0 || magic != MODEL_MAGIC ||
	    get_u64(p, len, off, &order) != 0 || order < 2 || order > NGRAM_MAX_ORDER)
		return bad(e, "no model header");
	if ((rc = ngram_model_new(&m, (unsigned)order, mem, e)) != 0)
		return rc;
	for (int i = 0; i < 4; i++)
		if (get_u64(p, len, off, &m->ctx1[i]) != 0) {
			rc = bad(e, "a model is cut short");
			goto fail;
		}
	for (unsigned k = 1; k <= m->order; k++)
		for (int i = 0; i < 3; i++) {
			uint64_t bits;

			if (get_u64(p, len, off, &bits) != 0) {
				rc = bad(e, "a model is cut short");
				goto fail;
			}
			memcpy(&m->d[k][i], &bits, 8);
			if (!(m->d[k][i] >= 0 && m->d[k][i] <= i + 1)) {
				rc = bad(e, "a discount out of range");
				goto fail;
			}
		}
	if (get_u64(p, len, off, &nz) != 0 || nz > (len - *off) / (4 * (NG_W + 1))) {
		rc = bad(e, "a model is cut short");
		goto fail;
	}
	for (uint64_t i = 0; i < nz; i++) {
		uint32_t id = vec_le32_get(p + *off), *u;

		if ((rc = uni_at(m, id, &u, e)) != 0)
			goto fail;
		for (unsigned j = 0; j < NG_W; j++)
			u[j] = vec_le32_get(p + *off + 4 * (j + 1));
		*off += 4 * (NG_W + 1);
	}
	for (unsigned k = 2; k <= m->order; k++)
		if ((rc = tab_load(&m->grams[k], p, len, off, e)) != 0)
			goto fail;
	m->finished = 1;
	*out = m;
	return 0;
fail:
	ngram_model_free(m);
	return rc;
}
