/* SPDX-License-Identifier: MIT */
/* adapter: the Cosine Adapter's network, mappings, training and threshold evaluation.
 * Everything is computed in double, on one thread, in a fixed order, so that training is
 * reproducible bit for bit for a seed. See adapter.h for the model. */
#include "algo/adapter.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

#define ADAPTER_MAGIC 0x31414e57u /* "WNA1" */
#define P_EPS 1e-7                /* power + BCE: p is clamped to [P_EPS, 1 - P_EPS] */

static const char *const family_names[] = {"linear", "sqrt", "power"};
static const char *const loss_names[] = {"bce", "mse"};

int adapter_family_parse(const char *s, enum adapter_family *out)
{
	for (unsigned i = 0; s != NULL && i < 3; i++)
		if (strcmp(s, family_names[i]) == 0) {
			*out = (enum adapter_family)i;
			return 0;
		}
	return ERR_INVALID;
}

const char *adapter_family_name(enum adapter_family f)
{
	return (unsigned)f < 3 ? family_names[f] : "?";
}

int adapter_loss_parse(const char *s, enum adapter_loss *out)
{
	for (unsigned i = 0; s != NULL && i < 2; i++)
		if (strcmp(s, loss_names[i]) == 0) {
			*out = (enum adapter_loss)i;
			return 0;
		}
	return ERR_INVALID;
}

const char *adapter_loss_name(enum adapter_loss l)
{
	return (unsigned)l < 2 ? loss_names[l] : "?";
}

/* adapter_new, with the weights zeroed or not (a load overwrites them all). */
static int make(struct adapter **out, enum adapter_family family, uint32_t dim, uint32_t hidden,
                int zero, struct err *e)
{
	struct adapter *a;
	unsigned nout = family == ADAPTER_POWER ? 1 : 2;

	if (dim == 0 || hidden == 0 || hidden > ADAPTER_HIDDEN_MAX || (unsigned)family > 2)
		return err_set(e, ERR_INVALID, "bad_adapter", "hidden must be 1 to %d",
		               ADAPTER_HIDDEN_MAX);
	a = calloc(1, sizeof *a);
	if (a == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	a->family = family;
	a->dim = dim;
	a->hidden = hidden;
	a->nout = nout;
	a->nparam = (size_t)hidden * dim + hidden + (size_t)nout * hidden + nout;
	a->param = zero ? calloc(a->nparam, sizeof *a->param) : malloc(a->nparam * sizeof *a->param);
	if (a->param == NULL) {
		free(a);
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	a->w1 = a->param;
	a->b1 = a->w1 + (size_t)hidden * dim;
	a->w2 = a->b1 + hidden;
	a->b2 = a->w2 + (size_t)nout * hidden;
	*out = a;
	return 0;
}

int adapter_new(struct adapter **out, enum adapter_family family, uint32_t dim, uint32_t hidden,
                struct err *e)
{
	return make(out, family, dim, hidden, 1, e);
}

void adapter_free(struct adapter *a)
{
	if (a == NULL)
		return;
	free(a->param);
	free(a);
}

double adapter_softplus(double x)
{
	return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

double adapter_softplus_inv(double y)
{
	/* log(e^y - 1), written so that large y does not overflow */
	return y > 30 ? y + log1p(-exp(-y)) : log(expm1(y));
}

static double sigmoid(double z)
{
	if (z >= 0)
		return 1 / (1 + exp(-z));
	double ez = exp(z);

	return ez / (1 + ez);
}

double adapter_map(enum adapter_family f, double alpha, double beta, double s)
{
	switch (f) {
	case ADAPTER_LINEAR:
		return sigmoid(alpha * s + beta);
	case ADAPTER_SQRT:
		return sigmoid(alpha * sqrt(s > 0 ? s : 0) + beta);
	default:
		/* explicit at s <= 0: pow(0, alpha) is 0 for alpha > 0, and the floor keeps it so */
		return s > 0 ? pow(s, alpha) : 0;
	}
}

double adapter_inverse(enum adapter_family f, double alpha, double beta, double p_min)
{
	double l, u;

	if (!(p_min > 0))
		return -INFINITY;
	if (f == ADAPTER_POWER) {
		if (p_min > 1)
			return INFINITY;
		return pow(p_min, 1 / alpha);
	}
	if (p_min >= 1)
		return INFINITY;
	l = log(p_min / (1 - p_min));
	u = (l - beta) / alpha;
	if (f == ADAPTER_LINEAR)
		return u;
	return u <= 0 ? -INFINITY : u * u;
}

/* Forward pass: pre (hidden) gets W1 q + b1, h (hidden) its ReLU, out (nout) the outputs. */
static void forward(const struct adapter *a, const float *q, double *pre, double *h, double *out)
{
	for (uint32_t j = 0; j < a->hidden; j++) {
		const double *w = a->w1 + (size_t)j * a->dim;
		double s0 = 0, s1 = 0, s2 = 0, s3 = 0, acc;
		uint32_t k = 0;

		/* four running sums (in a fixed order: training and search agree bit for bit): one
		 * sum would be a chain of dependent adds, the query-time cost of the adapter */
		for (; k + 4 <= a->dim; k += 4) {
			s0 += w[k] * q[k];
			s1 += w[k + 1] * q[k + 1];
			s2 += w[k + 2] * q[k + 2];
			s3 += w[k + 3] * q[k + 3];
		}
		for (; k < a->dim; k++)
			s0 += w[k] * q[k];
		acc = a->b1[j] + ((s0 + s1) + (s2 + s3));
		pre[j] = acc;
		h[j] = acc > 0 ? acc : 0;
	}
	for (unsigned o = 0; o < a->nout; o++) {
		const double *w = a->w2 + (size_t)o * a->hidden;
		double acc = a->b2[o];

		for (uint32_t j = 0; j < a->hidden; j++)
			acc += w[j] * h[j];
		out[o] = acc;
	}
}

static double alpha_of(double raw)
{
	double al = adapter_softplus(raw);

	return al > ADAPTER_ALPHA_MIN ? al : ADAPTER_ALPHA_MIN;
}

void adapter_params(const struct adapter *a, const float *q, double *alpha, double *beta)
{
	double buf[2 * ADAPTER_HIDDEN_MAX], out[2] = {0, 0};

	forward(a, q, buf, buf + ADAPTER_HIDDEN_MAX, out);
	*alpha = alpha_of(out[0]);
	*beta = a->nout > 1 ? out[1] : 0;
}

/* Loss of one pair given the raw first output r (alpha = softplus(r)) and beta; *dr and *db
 * get dL/dr and dL/dbeta. */
static double pair_loss(enum adapter_family f, enum adapter_loss loss, double r, double beta,
                        double s, int y, double *dr, double *db)
{
	double alpha = adapter_softplus(r), dal = sigmoid(r); /* d softplus / dr */
	double L, dalpha = 0;

	*db = 0;
	if (alpha < ADAPTER_ALPHA_MIN) { /* the floor: constant there */
		alpha = ADAPTER_ALPHA_MIN;
		dal = 0;
	}
	if (f != ADAPTER_POWER) {
		double x = f == ADAPTER_LINEAR ? s : sqrt(s > 0 ? s : 0);
		double z = alpha * x + beta, p = sigmoid(z), dz;

		if (loss == ADAPTER_BCE) {
			L = adapter_softplus(z) - y * z; /* -y log p - (1 - y) log(1 - p) */
			dz = p - y;
		} else {
			L = (p - y) * (p - y);
			dz = 2 * (p - y) * p * (1 - p);
		}
		dalpha = dz * x;
		*db = dz;
	} else {
		double ls, p;

		if (s > 1)
			s = 1;
		if (s <= 0) {
			*dr = 0;
			return loss == ADAPTER_BCE ? (y ? -log(P_EPS) : 0) : (double)(y * y);
		}
		ls = log(s);
		p = exp(alpha * ls);
		if (loss == ADAPTER_MSE) {
			L = (p - y) * (p - y);
			dalpha = 2 * (p - y) * p * ls;
		} else if (p < P_EPS || p > 1 - P_EPS) {
			double pc = p < P_EPS ? P_EPS : 1 - P_EPS;

			L = -(y * log(pc) + (1 - y) * log1p(-pc));
		} else {
			L = -(y * alpha * ls + (1 - y) * log1p(-p));
			dalpha = -y * ls + (1 - y) * p * ls / (1 - p);
		}
	}
	*dr = dalpha * dal;
	return L;
}

double adapter_loss(const struct adapter *a, const struct adapter_data *d, const size_t *qs,
                    size_t nqs, enum adapter_loss loss, double weight_decay,
                    struct adapter *grad)
{
	double *pre = malloc(2 * a->hidden * sizeof *pre), *h;
	double total = 0, reg = 0;
	size_t npairs = 0, nq = qs != NULL ? nqs : d->nq;

	if (pre == NULL)
		return NAN;
	h = pre + a->hidden;
	if (grad != NULL)
		memset(grad->param, 0, grad->nparam * sizeof *grad->param);
	for (size_t i = 0; i < nq; i++) {
		size_t qi = qs != NULL ? qs[i] : i;

		npairs += d->qstart[qi + 1] - d->qstart[qi];
	}
	for (size_t i = 0; npairs > 0 && i < nq; i++) {
		size_t qi = qs != NULL ? qs[i] : i;
		const float *q = d->q + qi * d->dim;
		double out[2] = {0, 0}, gr = 0, gb = 0, dout[2];

		forward(a, q, pre, h, out);
		for (size_t p = d->qstart[qi]; p < d->qstart[qi + 1]; p++) {
			double dr, db;

			total += pair_loss(a->family, loss, out[0], a->nout > 1 ? out[1] : 0, d->cos[p],
			                   d->label[p] != 0, &dr, &db);
			gr += dr;
			gb += db;
		}
		if (grad == NULL)
			continue;
		/* backward through out = W2 h + b2 and h = ReLU(W1 q + b1) */
		dout[0] = gr / (double)npairs;
		dout[1] = gb / (double)npairs;
		for (unsigned o = 0; o < a->nout; o++) {
			double *gw = grad->w2 + (size_t)o * a->hidden;

			grad->b2[o] += dout[o];
			for (uint32_t j = 0; j < a->hidden; j++)
				gw[j] += dout[o] * h[j];
		}
		for (uint32_t j = 0; j < a->hidden; j++) {
			double dh = 0, *gw;

			if (!(pre[j] > 0))
				continue;
			for (unsigned o = 0; o < a->nout; o++)
				dh += a->w2[(size_t)o * a->hidden + j] * dout[o];
			if (dh == 0)
				continue;
			grad->b1[j] += dh;
			gw = grad->w1 + (size_t)j * a->dim;
			for (uint32_t k = 0; k < a->dim; k++)
				gw[k] += dh * q[k];
		}
	}
	free(pre);
	if (weight_decay > 0) {
		size_t n1 = (size_t)a->hidden * a->dim, n2 = (size_t)a->nout * a->hidden;

		for (size_t k = 0; k < n1; k++) {
			reg += a->w1[k] * a->w1[k];
			if (grad != NULL)
				grad->w1[k] += weight_decay * a->w1[k];
		}
		for (size_t k = 0; k < n2; k++) {
			reg += a->w2[k] * a->w2[k];
			if (grad != NULL)
				grad->w2[k] += weight_decay * a->w2[k];
		}
	}
	return (npairs > 0 ? total / (double)npairs : 0) + weight_decay / 2 * reg;
}

/* splitmix64: a small, well-mixed generator; the state is the caller's. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static double rng_sym(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) * 0x1.0p-52 - 1.0;
}

/* The best query-independent mapping over the training pairs: its raw first output and
 * beta, as the output biases' starting point. linear, sqrt: a logistic fit of the label on
 * x = s (or sqrt(s)) by damped Newton steps; power: a golden-section search for alpha. */
static void global_fit(const struct adapter *a, const struct adapter_data *d,
                       enum adapter_loss loss, double *r, double *beta)
{
	size_t n = d->qstart[d->nq];

	if (a->family == ADAPTER_POWER) {
		double lo = log(0.01), hi = log(100.0), g = (sqrt(5.0) - 1) / 2;

		for (int it = 0; it < 60; it++) {
			double m1 = hi - g * (hi - lo), m2 = lo + g * (hi - lo), l1 = 0, l2 = 0, dr, db;
			double r1 = adapter_softplus_inv(exp(m1)), r2 = adapter_softplus_inv(exp(m2));

			for (size_t i = 0; i < n; i++) {
				l1 += pair_loss(a->family, loss, r1, 0, d->cos[i], d->label[i] != 0, &dr, &db);
				l2 += pair_loss(a->family, loss, r2, 0, d->cos[i], d->label[i] != 0, &dr, &db);
			}
			if (l1 < l2)
				hi = m2;
			else
				lo = m1;
		}
		*r = adapter_softplus_inv(exp((lo + hi) / 2));
		*beta = 0;
		return;
	}
	double w = 1, b = 0;

	for (int it = 0; it < 50; it++) {
		double g0 = 0, g1 = 0, h00 = 1e-6, h01 = 0, h11 = 1e-6, det, sw, sb;

		for (size_t i = 0; i < n; i++) {
			double s = d->cos[i], x = a->family == ADAPTER_LINEAR ? s : sqrt(s > 0 ? s : 0);
			double p = sigmoid(w * x + b), y = d->label[i] != 0, v = p * (1 - p);

			g0 += (p - y) * x;
			g1 += p - y;
			h00 += v * x * x;
			h01 += v * x;
			h11 += v;
		}
		det = h00 * h11 - h01 * h01;
		if (!(det > 0))
			break;
		sw = (h11 * g0 - h01 * g1) / det;
		sb = (h00 * g1 - h01 * g0) / det;
		/* damped: separable data would send the slope to infinity */
		if (fabs(sw) > 10)
			sb *= 10 / fabs(sw), sw = sw > 0 ? 10 : -10;
		w -= sw;
		b -= sb;
		if (w > 200)
			w = 200;
	}
	if (!(w > 1e-3)) /* no positive trend: start from a gentle slope */
		w = 1e-3;
	*r = adapter_softplus_inv(w);
	*beta = b;
}

int adapter_train(struct adapter *a, const struct adapter_data *train,
                  const struct adapter_data *val, const struct adapter_train_opts *opts,
                  struct adapter_train_result *res, struct err *e)
{
	struct adapter *g = NULL;
	double *m = NULL, *v = NULL, *best = NULL, best_loss, lim1 = sqrt(6.0);
	size_t *order = NULL, nb = opts->batch_queries ? opts->batch_queries : 16;
	uint64_t rng = opts->seed;
	unsigned since = 0;
	uint64_t step = 0;
	int rc = 0;

	memset(res, 0, sizeof *res);
	if (train->dim != a->dim || val->dim != a->dim)
		return err_set(e, ERR_INVALID, "dimension_mismatch", "pairs and adapter differ in dim");
	if (train->nq == 0 || train->qstart[train->nq] == 0 || val->nq == 0 ||
	    val->qstart[val->nq] == 0)
		return err_set(e, ERR_INVALID, "too_few_pairs",
		               "training needs pairs in both the training and the held-out split");
	if ((rc = adapter_new(&g, a->family, a->dim, a->hidden, e)) != 0)
		return rc;
	m = calloc(a->nparam, sizeof *m);
	v = calloc(a->nparam, sizeof *v);
	best = malloc(a->nparam * sizeof *best);
	order = malloc(train->nq * sizeof *order);
	if (m == NULL || v == NULL || best == NULL || order == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	/* W1 ~ U(-sqrt 6, sqrt 6): the query has unit norm (components ~ 1/sqrt(dim)), so this
	 * gives pre-activations of variance ~2 whatever the dim; W2 small, so that the start is
	 * the query-independent fit of the biases */
	for (size_t k = 0; k < (size_t)a->hidden * a->dim; k++)
		a->w1[k] = lim1 * rng_sym(&rng);
	for (uint32_t j = 0; j < a->hidden; j++)
		a->b1[j] = 0;
	for (size_t k = 0; k < (size_t)a->nout * a->hidden; k++)
		a->w2[k] = 0.01 * rng_sym(&rng);
	{
		double r, beta;

		global_fit(a, train, opts->loss, &r, &beta);
		a->b2[0] = r;
		if (a->nout > 1)
			a->b2[1] = beta;
	}
	for (size_t i = 0; i < train->nq; i++)
		order[i] = i;
	best_loss = adapter_loss(a, val, NULL, 0, opts->loss, 0, NULL);
	res->init_val_loss = best_loss;
	memcpy(best, a->param, a->nparam * sizeof *best);
	for (unsigned ep = 1; ep <= opts->max_epochs; ep++) {
		double vl;

		for (size_t i = train->nq; i > 1; i--) { /* Fisher-Yates */
			size_t j = (size_t)(rng_next(&rng) % i), t = order[i - 1];

			order[i - 1] = order[j];
			order[j] = t;
		}
		for (size_t b0 = 0; b0 < train->nq; b0 += nb) {
			size_t cnt = train->nq - b0 < nb ? train->nq - b0 : nb;
			double b1c, b2c;

			adapter_loss(a, train, order + b0, cnt, opts->loss, opts->weight_decay, g);
			step++;
			b1c = 1 - pow(0.9, (double)step);
			b2c = 1 - pow(0.999, (double)step);
			for (size_t k = 0; k < a->nparam; k++) {
				double gk = g->param[k];

				m[k] = 0.9 * m[k] + 0.1 * gk;
				v[k] = 0.999 * v[k] + 0.001 * gk * gk;
				a->param[k] -= opts->learning_rate * (m[k] / b1c) / (sqrt(v[k] / b2c) + 1e-8);
			}
		}
		res->epochs = ep;
		vl = adapter_loss(a, val, NULL, 0, opts->loss, 0, NULL);
		if (vl < best_loss - 1e-9 * fabs(best_loss)) {
			best_loss = vl;
			res->best_epoch = ep;
			memcpy(best, a->param, a->nparam * sizeof *best);
			since = 0;
		} else if (++since >= opts->patience) {
			break;
		}
		if (opts->stop != NULL && (rc = opts->stop(opts->stop_ctx)) != 0)
			goto out;
	}
	memcpy(a->param, best, a->nparam * sizeof *best);
	res->val_loss = best_loss;
	res->train_loss = adapter_loss(a, train, NULL, 0, opts->loss, 0, NULL);
out:
	adapter_free(g);
	free(m);
	free(v);
	free(best);
	free(order);
	return rc;
}

void adapter_score_pairs(const struct adapter *a, const struct adapter_data *d, float *out)
{
	for (size_t i = 0; i < d->nq; i++) {
		double al, be;

		adapter_params(a, d->q + i * d->dim, &al, &be);
		for (size_t p = d->qstart[i]; p < d->qstart[i + 1]; p++)
			out[p] = (float)adapter_map(a->family, al, be, d->cos[p]);
	}
}

static void prf_fill(struct adapter_prf *o, size_t kept, size_t tp, size_t pos)
{
	o->kept = kept;
	o->tp = tp;
	o->positives = pos;
	o->precision = kept > 0 ? (double)tp / (double)kept : 0;
	o->recall = pos > 0 ? (double)tp / (double)pos : 0;
	o->f1 = o->precision + o->recall > 0
	                ? 2 * o->precision * o->recall / (o->precision + o->recall)
	                : 0;
}

void adapter_prf_at(const float *scores, const uint8_t *labels, size_t n, double thr,
                    struct adapter_prf *out)
{
	size_t kept = 0, tp = 0, pos = 0;

	for (size_t i = 0; i < n; i++) {
		pos += labels[i] != 0;
		if (scores[i] >= thr) {
			kept++;
			tp += labels[i] != 0;
		}
	}
	out->threshold = thr;
	prf_fill(out, kept, tp, pos);
}

/* Sorting by score descending, index ascending on ties: the index travels with its key
 * (C11's qsort has no context argument). */
struct kv {
	float k;
	size_t i;
};

static int kv_cmp(const void *x, const void *y)
{
	const struct kv *a = x, *b = y;

	if (a->k != b->k)
		return a->k > b->k ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

static int sort_desc(const float *keys, size_t n, size_t *idx)
{
	struct kv *t = malloc((n ? n : 1) * sizeof *t);

	if (t == NULL)
		return ERR_NOMEM;
	for (size_t i = 0; i < n; i++)
		t[i] = (struct kv){isnan(keys[i]) ? -INFINITY : keys[i], i};
	qsort(t, n, sizeof *t, kv_cmp);
	for (size_t i = 0; i < n; i++)
		idx[i] = t[i].i;
	free(t);
	return 0;
}

int adapter_choose(const float *scores, const uint8_t *labels, size_t n, enum adapter_target t,
                   double target, struct adapter_prf *out, struct err *e)
{
	size_t *idx, pos = 0, kept = 0, tp = 0;
	struct adapter_prf cur, best;
	int have = 0, have_fallback = 0;
	struct adapter_prf fallback;

	if (n == 0)
		return err_set(e, ERR_INVALID, "too_few_pairs", "no pairs to choose a threshold on");
	idx = malloc(n * sizeof *idx);
	if (idx == NULL || sort_desc(scores, n, idx) != 0) {
		free(idx);
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		pos += labels[i] != 0;
	memset(&best, 0, sizeof best);
	memset(&fallback, 0, sizeof fallback);
	for (size_t i = 0; i < n;) {
		float v = scores[idx[i]];

		/* take every pair with this score: a threshold keeps ties together */
		while (i < n && scores[idx[i]] == v) {
			kept++;
			tp += labels[idx[i]] != 0;
			i++;
		}
		cur.threshold = v;
		prf_fill(&cur, kept, tp, pos);
		switch (t) {
		case ADAPTER_PRECISION:
			if (cur.precision >= target && (!have || cur.recall > best.recall)) {
				best = cur;
				have = 1;
			}
			if (!have_fallback || cur.precision > fallback.precision) {
				fallback = cur;
				have_fallback = 1;
			}
			break;
		case ADAPTER_RECALL:
			if (!have && cur.recall >= target) {
				best = cur;
				have = 1;
			}
			fallback = cur; /* the lowest threshold: the most recall there is */
			have_fallback = 1;
			break;
		default:
			if (!have || cur.f1 > best.f1) {
				best = cur;
				have = 1;
			}
		}
	}
	free(idx);
	*out = have ? best : fallback;
	return 0;
}

int adapter_prf_top_k(const struct adapter_data *d, size_t k, struct adapter_prf *out,
                      struct err *e)
{
	size_t kept = 0, tp = 0, pos = 0, n = d->qstart[d->nq];
	size_t *idx = malloc((n ? n : 1) * sizeof *idx);

	if (idx == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	for (size_t i = 0; i < d->nq; i++) {
		size_t a = d->qstart[i], c = d->qstart[i + 1] - a;

		if (sort_desc(d->cos + a, c, idx) != 0) {
			free(idx);
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		}
		for (size_t j = 0; j < c; j++) {
			pos += d->label[a + j] != 0;
			if (j < k) {
				kept++;
				tp += d->label[a + idx[j]] != 0;
			}
		}
	}
	free(idx);
	out->threshold = (double)k;
	prf_fill(out, kept, tp, pos);
	return 0;
}

int adapter_save(const struct adapter *a, void **blob, size_t *len, struct err *e)
{
	uint32_t hdr[4] = {ADAPTER_MAGIC, (uint32_t)a->family, a->dim, a->hidden};
	size_t n = sizeof hdr + a->nparam * sizeof(double);
	unsigned char *b = malloc(n);

	if (b == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	/* host byte order: little-endian on every platform winnow builds for */
	memcpy(b, hdr, sizeof hdr);
	memcpy(b + sizeof hdr, a->param, a->nparam * sizeof(double));
	*blob = b;
	*len = n;
	return 0;
}

int adapter_load(struct adapter **out, const void *blob, size_t len, struct err *e)
{
	uint32_t hdr[4];
	struct adapter *a = NULL;
	int rc;

	if (len < sizeof hdr)
		return err_set(e, ERR_INVALID, "bad_adapter_blob", "adapter weights are truncated");
	memcpy(hdr, blob, sizeof hdr);
	if (hdr[0] != ADAPTER_MAGIC || hdr[1] > 2)
		return err_set(e, ERR_INVALID, "bad_adapter_blob", "not adapter weights");
	if ((rc = make(&a, (enum adapter_family)hdr[1], hdr[2], hdr[3], 0, e)) != 0)
		return rc;
	if (len != sizeof hdr + a->nparam * sizeof(double)) {
		adapter_free(a);
		return err_set(e, ERR_INVALID, "bad_adapter_blob", "adapter weights have the wrong size");
	}
	memcpy(a->param, (const unsigned char *)blob + sizeof hdr, a->nparam * sizeof(double));
	*out = a;
	return 0;
}
