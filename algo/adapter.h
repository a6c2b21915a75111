/* SPDX-License-Identifier: MIT */
/* adapter: the Cosine Adapter's mathematics (spec section 4): a small network from the query
 * embedding to the parameters of a monotonic mapping of the raw cosine, its training by
 * gradient descent with hand-written gradients, and the evaluation of a global threshold.
 *
 * The network: h = ReLU(W1 q + b1) (hidden units), out = W2 h + b2, where q is the
 * L2-normalised query. alpha = softplus(out[0]) > 0, beta = out[1] (linear and sqrt only).
 * The families, monotone non-decreasing in the cosine s by construction (alpha > 0):
 *   linear: p = sigmoid(alpha * s + beta)
 *   sqrt:   p = sigmoid(alpha * sqrt(max(s, 0)) + beta)
 *   power:  p = max(s, 0) ^ alpha
 * Training: binary cross-entropy (or squared error, the spec's choice for power) over
 * labelled (query, cosine, label) pairs, Adam on mini-batches of queries, a deterministic
 * seed (splitmix64; one thread, a fixed order of operations: the same seed and data give the
 * same weights bit for bit), early stopping on the held-out split's loss (the best epoch's
 * weights are kept). The output biases start at the best query-independent mapping (a 1-d
 * logistic fit, or the best power), so the network learns the per-query departures from the
 * best global cosine cutoff.
 *
 * No state but the structs; everything is thread-safe on distinct objects, and the const
 * functions may run concurrently on one adapter. */
#ifndef WINNOW_ADAPTER_H
#define WINNOW_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

struct err;

#define ADAPTER_HIDDEN_MAX 1024
#define ADAPTER_ALPHA_MIN 1e-6

enum adapter_family { ADAPTER_LINEAR = 0, ADAPTER_SQRT = 1, ADAPTER_POWER = 2 };
enum adapter_loss { ADAPTER_BCE = 0, ADAPTER_MSE = 1 };

struct adapter {
	enum adapter_family family;
	uint32_t dim, hidden;
	unsigned nout; /* 2 (alpha, beta) or 1 (power: alpha) */
	size_t nparam; /* hidden * dim + hidden + nout * hidden + nout */
	double *param; /* the nparam weights in one block; the four below point into it */
	double *w1;    /* hidden x dim, row-major */
	double *b1;    /* hidden */
	double *w2;    /* nout x hidden */
	double *b2;    /* nout */
};

/* Family and loss names ("linear", "sqrt", "power"; "bce", "mse"). parse: 0 or ERR_INVALID. */
int adapter_family_parse(const char *s, enum adapter_family *out);
const char *adapter_family_name(enum adapter_family f);
int adapter_loss_parse(const char *s, enum adapter_loss *out);
const char *adapter_loss_name(enum adapter_loss l);

/* A zeroed adapter. *out new (adapter_free), set only on success. ERR_INVALID for dim 0 or
 * hidden outside 1..ADAPTER_HIDDEN_MAX. */
int adapter_new(struct adapter **out, enum adapter_family family, uint32_t dim, uint32_t hidden,
                struct err *e);
void adapter_free(struct adapter *a);

/* softplus(x) = log(1 + e^x), stable for large |x|; its inverse for y > 0. */
double adapter_softplus(double x);
double adapter_softplus_inv(double y);

/* The mapping p = f(s) of a family with parameters (alpha, beta) (beta unused by power). */
double adapter_map(enum adapter_family f, double alpha, double beta, double s);

/* The smallest cosine s with f(s) >= p_min, in exact arithmetic: -INFINITY when every s
 * passes (p_min <= 0, or a sqrt mapping whose floor already passes), INFINITY when none
 * does. Callers that need the set {s : computed f(s) >= p_min} exactly take the cosines a
 * little below this bound and test the computed f (rounding can move the edge by an ulp). */
double adapter_inverse(enum adapter_family f, double alpha, double beta, double p_min);

/* The network's forward pass for one query q (borrowed, a->dim floats, L2-normalised):
 * *alpha (softplus of the first output, floored at ADAPTER_ALPHA_MIN so that the mapping
 * stays strictly increasing) and *beta (0 for power). */
void adapter_params(const struct adapter *a, const float *q, double *alpha, double *beta);

/* Labelled pairs grouped by query (CSR): query i is q[i * dim ..], its pairs are
 * [qstart[i], qstart[i + 1]) of cos and label. Everything borrowed. */
struct adapter_data {
	size_t nq;
	uint32_t dim;
	const float *q;
	const size_t *qstart; /* nq + 1 entries, qstart[0] = 0 */
	const float *cos;
	const uint8_t *label; /* 0 or 1 */
};

struct adapter_train_opts {
	uint64_t seed;
	enum adapter_loss loss;
	double learning_rate;  /* Adam step size */
	double weight_decay;   /* L2 on W1 and W2 */
	unsigned max_epochs;
	unsigned patience;      /* epochs without a better held-out loss before stopping */
	unsigned batch_queries; /* queries per mini-batch */
	/* Called after each epoch; a non-zero return stops training with that code (cancel). */
	int (*stop)(void *ctx);
	void *stop_ctx;
};

struct adapter_train_result {
	unsigned epochs;      /* epochs run */
	unsigned best_epoch;  /* the epoch whose weights were kept (0 = the initial ones) */
	double init_val_loss; /* held-out loss of the initial (query-independent) mapping */
	double train_loss;    /* at the best epoch */
	double val_loss;      /* at the best epoch */
};

/* Initialise a (any earlier weights are overwritten) from opts->seed and the training data,
 * then train it; the held-out data val decides when to stop. Both need at least one pair.
 * Returns 0, ERR_INVALID (no pairs, dim mismatch), ERR_NOMEM, or stop's code. */
int adapter_train(struct adapter *a, const struct adapter_data *train,
                  const struct adapter_data *val, const struct adapter_train_opts *opts,
                  struct adapter_train_result *res, struct err *e);

/* Mean loss of a over the queries qs[0..nqs) of d (every query when qs is NULL), plus
 * weight_decay / 2 * |W|^2. When grad is not NULL (an adapter of a's shape) it gets the
 * gradient of that loss (overwritten). Exposed for the gradient check. */
double adapter_loss(const struct adapter *a, const struct adapter_data *d, const size_t *qs,
                    size_t nqs, enum adapter_loss loss, double weight_decay,
                    struct adapter *grad);

/* The mapped score of every pair of d (out: borrowed, qstart[nq] entries). */
void adapter_score_pairs(const struct adapter *a, const struct adapter_data *d, float *out);

/* Precision, recall and F1 of a retained set. */
struct adapter_prf {
	double threshold; /* keep score >= threshold (top_k: K) */
	double precision, recall, f1;
	size_t kept, tp, positives;
};

/* How the global threshold is chosen. */
enum adapter_target { ADAPTER_MAX_F1 = 0, ADAPTER_PRECISION = 1, ADAPTER_RECALL = 2 };

/* Choose a threshold on scores (n, borrowed) with labels: ADAPTER_PRECISION, the one with
 * the highest recall whose precision is >= target (the highest-precision one if none
 * reaches it); ADAPTER_RECALL, the highest threshold whose recall is >= target;
 * ADAPTER_MAX_F1, the best F1. Thresholds are score values (keep score >= threshold).
 * *out gets the threshold and its figures. ERR_NOMEM, or ERR_INVALID when n = 0. */
int adapter_choose(const float *scores, const uint8_t *labels, size_t n, enum adapter_target t,
                   double target, struct adapter_prf *out, struct err *e);

/* Figures of keeping scores >= thr. */
void adapter_prf_at(const float *scores, const uint8_t *labels, size_t n, double thr,
                    struct adapter_prf *out);

/* Figures of keeping each query's k pairs of highest cosine (ties: the earlier pair). */
int adapter_prf_top_k(const struct adapter_data *d, size_t k, struct adapter_prf *out,
                      struct err *e);

/* Serialise: *blob new (free()), *len its size; the layout is a header of four u32
 * (magic, family, dim, hidden) and the weights as f64, little-endian. */
int adapter_save(const struct adapter *a, void **blob, size_t *len, struct err *e);

/* Restore from a blob (borrowed, any alignment). *out new. ERR_INVALID for a bad blob. */
int adapter_load(struct adapter **out, const void *blob, size_t len, struct err *e);

#endif
