/* SPDX-License-Identifier: MIT */
/* ngram: word n-gram language models with interpolated modified Kneser-Ney smoothing
 * (Chen & Goodman 1998), counted in compact hashed tables under a memory budget; the
 * tokeniser and the hashed vocabulary they share. Used by the color_ngram filter.
 *
 * Tokenisation (ngram_tokenize): ASCII letters are lower-cased; a token is a maximal run of
 * ASCII letters and digits and bytes >= 0x80 (so a UTF-8 word stays whole); every other byte
 * that is not ASCII whitespace (punctuation) is a token of its own. "Don't panic!" gives
 * "don", "'", "t", "panic", "!". A word is known by a 64-bit hash of its bytes, never by its
 * text, so the vocabulary costs 16 bytes a word.
 *
 * Vocabulary: ids 1 <unk>, 2 <s>, 3 </s>, then the words in the order first seen (id 0 marks
 * an empty table slot). One vocabulary is shared by every model of a filter. The models
 * predict over V = every word of the vocabulary, </s> and <unk> (not <s>): V = words + 2.
 *
 * A model of order N (2..NGRAM_MAX_ORDER) is trained on sentences (one record = one
 * sentence <s> w1 .. wn </s>; the n + 1 predictions w1 .. wn, </s> are scored). Counting
 * follows KenLM and SRILM: the highest order keeps raw counts, a lower-order n-gram keeps its
 * continuation count (the number of distinct words seen before it), except an n-gram that
 * begins with <s>, which has no left context and keeps its raw count. Discounts D1, D2, D3+
 * per order come from the counts of counts (Chen & Goodman's estimates, clamped to [0, c]).
 * p(w | h) = (a(hw) - D(a(hw)))+ / a(h.) + gamma(h) p(w | h'), gamma(h) = (D1 N1(h.) +
 * D2 N2(h.) + D3+ N3+(h.)) / a(h.); an unseen context backs off to h' with weight 1; the
 * unigram level interpolates with the uniform 1 / V. So every p(. | h) sums to 1 over V.
 *
 * Memory: every table of a group of models (and the vocabulary) is charged to one
 * struct ngram_mem; a table that would grow past the budget fails the build with
 * ERR_TOO_LARGE (slug memory_budget) instead of swapping. Unigrams are a dense array of 20
 * bytes per word id; an n-gram of order k below the top costs 4 (k + 5) bytes a slot (its
 * count and its statistics as a context), at the top 4 (k + 1), at a load of at most 3/4
 * (a table doubles when it passes 3/4, so between 3/8 and 3/4).
 *
 * Threading: building is single-threaded; once finished (or loaded), a model and the
 * vocabulary are read-only and may be queried from any number of threads. */
#ifndef WINNOW_NGRAM_H
#define WINNOW_NGRAM_H

#include <stddef.h>
#include <stdint.h>

struct err;

#define NGRAM_MAX_ORDER 5
#define NGRAM_UNK 1u
#define NGRAM_BOS 2u
#define NGRAM_EOS 3u

struct ngram_mem {
	size_t used;   /* bytes charged now */
	size_t peak;   /* the most ever charged */
	size_t budget; /* bytes allowed; 0 = no limit */
};

struct ngram_vocab;
struct ngram_model;

/* Split text (len bytes, borrowed) into tokens; fn(ctx, hash) gets each token's 64-bit
 * hash in order. Returns the number of tokens. */
size_t ngram_tokenize(const char *text, size_t len, void (*fn)(void *ctx, uint64_t h),
                      void *ctx);

/* The hash ngram_tokenize gives the token of bytes s (len bytes, already lower-cased). */
uint64_t ngram_word_hash(const char *s, size_t len);

/* A new empty vocabulary charged to mem (borrowed for its life). *out set on success. */
int ngram_vocab_new(struct ngram_vocab **out, struct ngram_mem *mem, struct err *e);
void ngram_vocab_free(struct ngram_vocab *v);

/* The id of word hash h, added when absent. ERR_TOO_LARGE when the budget is spent. */
int ngram_vocab_add(struct ngram_vocab *v, uint64_t h, uint32_t *id, struct err *e);

/* The id of word hash h, or NGRAM_UNK. */
uint32_t ngram_vocab_get(const struct ngram_vocab *v, uint64_t h);

/* V: the size of the predicted vocabulary (words + </s> + <unk>). */
uint32_t ngram_vocab_size(const struct ngram_vocab *v);

/* A new empty model of order (2..NGRAM_MAX_ORDER) charged to mem. */
int ngram_model_new(struct ngram_model **out, unsigned order, struct ngram_mem *mem,
                    struct err *e);
void ngram_model_free(struct ngram_model *m);

/* Count one sentence of n word ids (borrowed; no <s> or </s>, which are added). */
int ngram_model_add(struct ngram_model *m, const uint32_t *ids, size_t n, struct err *e);

/* Turn the raw counts into the smoothed model (continuation counts, context statistics,
 * discounts). After this the model only answers queries. */
int ngram_model_finish(struct ngram_model *m, struct err *e);

/* p(w | hist) with hist the hlen previous ids, oldest first (only the last order - 1 are
 * used; a sentence's history starts with NGRAM_BOS). V from ngram_vocab_size. */
double ngram_model_prob(const struct ngram_model *m, uint32_t V, const uint32_t *hist,
                        size_t hlen, uint32_t w);

/* p[j] = p(seq[j] | seq[.. j - 1]) for j = 1 .. len - 1 (p[0] is not written): seq (borrowed,
 * len ids) is a whole sentence, NGRAM_BOS first. The same values as ngram_model_prob, with
 * one table lookup per order and position instead of two: the entry found for the n-gram
 * ending at one position holds its statistics as the context of the next. */
void ngram_model_seq_probs(const struct ngram_model *m, uint32_t V, const uint32_t *seq,
                           size_t len, double *p);

unsigned ngram_model_order(const struct ngram_model *m);

/* ---- raw counts, for a fit merged across the shards of a cluster ----
 * Before ngram_model_finish a model holds only raw counts, of the n-grams of orders 2..order
 * that end at each position of its sentences (cut at <s>). Everything finish derives
 * (continuation counts, context statistics, discounts) is a function of them, so the counts
 * of the same sentences spread over several models, summed, finish into the same model. */

/* fn(ctx, k, ids, count) for every raw n-gram of an unfinished model (ids: k word ids,
 * borrowed for the call); a non-zero return stops the walk and is returned. */
int ngram_model_raw_each(const struct ngram_model *m,
                         int (*fn)(void *ctx, unsigned k, const uint32_t *ids, uint32_t count),
                         void *ctx);

/* Add count to the raw n-gram ids (k of them, 2..order, borrowed) of an unfinished model
 * (saturating at 2^32 - 1). ERR_INVALID for a finished model or a bad k, ERR_TOO_LARGE. */
int ngram_model_add_raw(struct ngram_model *m, const uint32_t *ids, unsigned k, uint32_t count,
                        struct err *e);

/* The word hash a vocabulary keeps for id (as ngram_vocab_add takes it back: the same id
 * for the same word), by a walk: fn(ctx, hash, id) for every word. */
void ngram_vocab_each(const struct ngram_vocab *v, void (*fn)(void *ctx, uint64_t h, uint32_t id),
                      void *ctx);

/* The discounts D1, D2, D3+ of order k (1..order), for tests and logs. */
void ngram_model_discounts(const struct ngram_model *m, unsigned k, double d[3]);

/* Distinct n-grams of order k (1..order) in the model. */
uint64_t ngram_model_count(const struct ngram_model *m, unsigned k);

/* ---- serialisation: a byte buffer that grows ---- */
struct ngram_buf {
	uint8_t *p;
	size_t len, cap;
};

/* Append the vocabulary / a finished model to b. ERR_NOMEM. */
int ngram_vocab_save(const struct ngram_vocab *v, struct ngram_buf *b, struct err *e);
int ngram_model_save(const struct ngram_model *m, struct ngram_buf *b, struct err *e);

/* Read what save wrote from p (len bytes, borrowed) at *off, advancing *off. The result is
 * charged to mem. ERR_INVALID (slug bad_state) for anything malformed. */
int ngram_vocab_load(struct ngram_vocab **out, const uint8_t *p, size_t len, size_t *off,
                     struct ngram_mem *mem, struct err *e);
int ngram_model_load(struct ngram_model **out, const uint8_t *p, size_t len, size_t *off,
                     struct ngram_mem *mem, struct err *e);

#endif
