/* SPDX-License-Identifier: MIT */
/* semdedup: SemDeDup (Abbas et al. 2023; spec 3.2), semantic near-duplicate removal inside
 * k-means clusters.
 *
 * The fit reads every record's vector of the space (L2-normalised), clusters them (centroids
 * given in params, taken from a prototypes instance named by "prototypes", or spherical
 * k-means through FAISS over the whole pool, which FAISS subsamples to k *
 * max_points_per_centroid as python's faiss.Kmeans does), assigns each to its nearest
 * centroid, orders each cluster by the distance 1 - cos to its centroid (computed per record
 * in double, so no batching changes it; "hard": farthest first, the default; "easy": nearest
 * first; "random": the order of a seeded hash of the id; ties by id, so that the order is the
 * same wherever the records are stored), and
 * computes for every record M = the largest cosine to an EARLIER record of its cluster
 * (semdedup_earlier_max). A record is a duplicate iff M > 1 - eps. Removed records count as
 * earlier records: this is the reference's order-dependent rule, not connected components.
 * A cluster larger than max_cluster_size is cut into contiguous chunks of its order, each
 * deduplicated on its own (the reference's advance_semdedup.py), which bounds the work per
 * chunk to max_cluster_size^2 * dim / 2 multiply-adds.
 *
 * The fitted state keeps, per row of the fit's snapshot, the cluster, M and the earlier
 * record attaining it (16 bytes a row): scoring is a lookup (score 1 keep, 0 duplicate with
 * the reason "duplicate"), the sweep counts M against any eps without a refit, and explain
 * names the earlier record and the similarity. Not cheap: the rule depends on the whole
 * cluster, so records ingested later stay pending until POST :score refits; a record the fit
 * did not see is scored "unfitted".
 *
 * Over the shards of a cluster (docs/scale.md): with "centroids" given, the partial is this
 * daemon's pool (cluster, cosine, unit vector per record); a router runs semdedup_dedup over
 * every shard's pool and sends each shard its records' decisions as the param "given", which
 * the fit then only applies. With "sample": "id_hash" one daemon fits k-means on the same
 * id-hash sample as a router (filters/prototypes.c), so it gives the same answer.
 *
 * Threading: score, explain and sweep only read the instance. */
#include <cblas.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/err.h"
#include "lib/log.h"
#include "filters/filter.h"
#include "filters/kmeans.h"
#include "filters/prototypes.h"
#include "filters/registry.h"
#include "filters/semdedup.h"
#include "store/store.h"
#include "lib/vec.h"

#define SDD_MAGIC "WNSDD1\n"
#define SDD_HDR 24 /* magic (7) + pad (1) + u64 rows + u32 k + u32 clusters used */
#define SDD_ROW 16 /* u32 cluster + f32 M + u64 earlier row */
#define SDD_TILE 512
#define SDD_MAX_CLUSTER 10000000 /* the reference's largest_cluster_size_to_process */
#define SDD_NO_ROW UINT64_MAX

static const char *const sdd_reasons[] = {"duplicate", NULL};
static const char *const sdd_orders[] = {"hard", "easy", "random", NULL};

struct semdedup {
	struct filter base;
	uint32_t dim;
	double eps;
	unsigned order; /* enum semdedup_order */
	uint64_t max_cluster;
	struct kmeans_params kp;
	float *centroids; /* from params or a prototypes instance (use); NULL: fit k-means */
	uint32_t k;
	json_t *given; /* param "given": a router's decisions for this shard's records, or NULL */
	/* fitted state, indexed by row < nrows */
	uint64_t nrows;
	uint32_t nclusters; /* clusters with at least one record */
	uint32_t *cluster;  /* FILTER_NO_LABEL: not in the fit */
	float *maxsim;
	uint64_t *earlier;
};

/* The rule, compared in double: M > 1 - eps (strict). */
static int is_dup_m(float m, double eps)
{
	return (double)m > 1.0 - eps;
}

/* ---- the kernel ---- */

int semdedup_earlier_max(const float *z, size_t m, uint32_t dim, float *maxsim, uint32_t *arg,
                         struct err *e)
{
	float *g;

	for (size_t j = 0; j < m; j++) {
		maxsim[j] = 0;
		arg[j] = SEMDEDUP_NONE;
	}
	if (m < 2)
		return 0;
	g = malloc((size_t)SDD_TILE * SDD_TILE * sizeof *g);
	if (g == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	for (size_t jb = 0; jb < m; jb += SDD_TILE) {
		size_t bj = m - jb < SDD_TILE ? m - jb : SDD_TILE;

		/* rows (earlier items) in increasing tiles, so the first maximum wins */
		for (size_t ib = 0; ib <= jb; ib += SDD_TILE) {
			size_t bi = m - ib < SDD_TILE ? m - ib : SDD_TILE;

			if (ib + bi > jb + bj)
				bi = jb + bj - ib;
			/* G[i][j] = z_(ib+i) . z_(jb+j); a diagonal tile needs only its upper
			 * triangle (i < j), which ssyrk computes with half the work, as numpy's
			 * Z @ Z.T does */
			if (ib == jb)
				cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)bj, (int)dim, 1.0f,
				            z + jb * dim, (int)dim, 0.0f, g, (int)bj);
			else
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)bi, (int)bj,
				            (int)dim, 1.0f, z + ib * dim, (int)dim, z + jb * dim, (int)dim,
				            0.0f, g, (int)bj);
			for (size_t i = 0; i < bi; i++) {
				const float *gr = g + i * bj;
				size_t gi = ib + i;

				for (size_t j = 0; j < bj; j++) {
					size_t gj = jb + j;

					if (gi < gj && gr[j] > maxsim[gj]) {
						maxsim[gj] = gr[j];
						arg[gj] = (uint32_t)gi;
					}
				}
			}
		}
	}
	free(g);
	return 0;
}

/* ---- params ---- */

/* Param "given" (borrowed; NULL: none): {"format": "semdedup_given/1", "ids": [...],
 * "cluster": [...], "m": [...], "earlier": [id or null, ...]}, arrays of one length. */
static int given_parse(struct semdedup *s, const json_t *g, struct err *e)
{
	static const char *const arrays[] = {"ids", "cluster", "m", "earlier"};
	const char *fmt = json_string_value(json_object_get(g, "format"));
	size_t n = json_array_size(json_object_get(g, "ids")), i;
	json_t *x;

	if (g == NULL)
		return 0;
	for (size_t a = 0; a < 4 && fmt != NULL; a++)
		if (!json_is_array(json_object_get(g, arrays[a])) ||
		    json_array_size(json_object_get(g, arrays[a])) != n)
			fmt = NULL;
	json_array_foreach (json_object_get(g, "ids"), i, x) {
		const json_t *er = json_array_get(json_object_get(g, "earlier"), i);

		if (!json_is_string(x) || (!json_is_string(er) && !json_is_null(er)) ||
		    !json_is_integer(json_array_get(json_object_get(g, "cluster"), i)) ||
		    !json_is_number(json_array_get(json_object_get(g, "m"), i)))
			fmt = NULL;
	}
	if (fmt == NULL || strcmp(fmt, "semdedup_given/1") != 0)
		return err_set(e, ERR_INVALID, "bad_param",
		               "param 'given' must be a router's decisions: {\"format\": "
		               "\"semdedup_given/1\", \"ids\", \"cluster\", \"m\", \"earlier\"}, "
		               "arrays of one length");
	s->given = json_incref((json_t *)g);
	return 0;
}

static int sdd_create(struct filter *f, const json_t *params, const struct store_schema *schema,
                      struct err *e)
{
	static const char *const known[] = {"space", "eps", "order", "seed", "k", "iterations",
	                                    "max_points_per_centroid", "centroids", "prototypes",
	                                    "max_cluster_size", "sample", "given", NULL};
	struct semdedup *s = (struct semdedup *)f;
	const json_t *pro = json_object_get(params, "prototypes");
	unsigned space = 0;
	double eps = NAN, mc = SDD_MAX_CLUSTER;
	int rc;

	s->order = SEMDEDUP_HARD;
	if ((rc = filter_params_known(params, known, e)) != 0 ||
	    (rc = filter_param_space(params, "space", schema, 1, &space, e)) != 0 ||
	    (rc = filter_param_number(params, "eps", 0, 1, 0, &eps, e)) != 0 ||
	    (rc = filter_param_choice(params, "order", sdd_orders, &s->order, e)) != 0 ||
	    (rc = filter_param_number(params, "max_cluster_size", 2, 1e12, 1, &mc, e)) != 0)
		return rc;
	if (isnan(eps) || !(eps > 0 && eps < 1))
		return err_set(e, ERR_INVALID, "bad_param",
		               "param 'eps' is required: a number in (0, 1); a record is removed "
		               "when its cosine to an earlier record of its cluster exceeds 1 - eps");
	s->eps = eps;
	s->max_cluster = (uint64_t)mc;
	s->dim = schema->spaces[space].dim;
	f->ninputs = 1;
	f->inputs[0] = space;
	f->needs |= FILTER_NEEDS_ID; /* ties in the order are broken by id */
	if ((rc = given_parse(s, json_object_get(params, "given"), e)) != 0)
		return rc;
	if (pro != NULL) {
		static const char *const clash[] = {"centroids", "k", "iterations",
		                                    "max_points_per_centroid", NULL};

		if (!json_is_string(pro) || !store_name_valid(json_string_value(pro)))
			return err_set(e, ERR_INVALID, "bad_param",
			               "param 'prototypes' must name a prototypes filter of the dataset");
		for (size_t i = 0; clash[i] != NULL; i++)
			if (json_object_get(params, clash[i]) != NULL)
				return err_set(e, ERR_INVALID, "bad_param",
				               "param '%s' cannot be given with 'prototypes' (the "
				               "centroids are that filter's)",
				               clash[i]);
		snprintf(f->uses, sizeof f->uses, "%s", json_string_value(pro));
	}
	if ((rc = kmeans_params_parse(params, s->dim, &s->kp, e)) != 0)
		return rc;
	if (s->kp.given != NULL) {
		s->centroids = s->kp.given;
		s->kp.given = NULL;
		s->k = s->kp.k;
	}
	return 0;
}

static int sdd_use(struct filter *f, const struct filter *other, struct err *e)
{
	struct semdedup *s = (struct semdedup *)f;
	const float *c;
	uint32_t k, dim;
	float *copy;

	if (other->ops != &prototypes_filter_ops)
		return err_set(e, ERR_INVALID, "bad_param",
		               "param 'prototypes': filter '%s' is a %s filter, not prototypes",
		               f->uses, other->ops->name);
	if (other->inputs[0] != f->inputs[0])
		return err_set(e, ERR_INVALID, "bad_param",
		               "param 'prototypes': filter '%s' clusters another space", f->uses);
	if (prototypes_centroids(other, &c, &k, &dim) != 0)
		return err_set(e, ERR_INVALID, "not_fitted",
		               "prototypes filter '%s' has no centroids yet (its fit failed or has "
		               "not run)",
		               f->uses);
	if ((copy = malloc((size_t)k * dim * sizeof *copy)) == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	memcpy(copy, c, (size_t)k * dim * sizeof *copy);
	free(s->centroids);
	s->centroids = copy;
	s->k = k;
	return 0;
}

/* ---- fit ---- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

float semdedup_cos(const float *a, const float *b, uint32_t dim)
{
	double s = 0;

	for (uint32_t i = 0; i < dim; i++)
		s += (double)a[i] * (double)b[i];
	return (float)s;
}

int semdedup_dedup_params(const json_t *params, unsigned *order, int *seed, uint64_t *max_cluster,
                          struct err *e)
{
	double sd = KMEANS_SEED, mc = SDD_MAX_CLUSTER;
	int rc;

	*order = SEMDEDUP_HARD;
	if ((rc = filter_param_choice(params, "order", sdd_orders, order, e)) != 0 ||
	    (rc = filter_param_number(params, "seed", 0, 2147483647, 1, &sd, e)) != 0 ||
	    (rc = filter_param_number(params, "max_cluster_size", 2, 1e12, 1, &mc, e)) != 0)
		return rc;
	*seed = (int)sd;
	*max_cluster = (uint64_t)mc;
	return 0;
}

struct item {
	uint32_t cluster;
	float key;      /* the sort key inside the cluster: ascending */
	uint64_t tie;   /* 0, or the id hash for "random" */
	const char *id; /* the last tie-break: bytewise */
	size_t idx;     /* into the records */
};

static int item_cmp(const void *a, const void *b)
{
	const struct item *x = a, *y = b;

	if (x->cluster != y->cluster)
		return x->cluster < y->cluster ? -1 : 1;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	if (x->tie != y->tie)
		return x->tie < y->tie ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* it[i] for record i, sorted into the order the dedup visits them: by cluster, then the
 * configured order inside it, then the id. */
static void items_order(const struct semdedup_rec *r, size_t n, unsigned order, int seed,
                        struct item *it)
{
	for (size_t i = 0; i < n; i++) {
		float d = 1.0f - r[i].sim;

		it[i] = (struct item){.cluster = r[i].cluster, .id = r[i].id, .idx = i};
		if (order == SEMDEDUP_HARD)
			it[i].key = -d;
		else if (order == SEMDEDUP_EASY)
			it[i].key = d;
		else /* a shuffle seeded by seed, a function of the id (not of the row) */
			it[i].tie = kmeans_id_hash(r[i].id, strlen(r[i].id), seed);
	}
	qsort(it, n, sizeof *it, item_cmp);
}

int semdedup_dedup(struct semdedup_rec *r, size_t n, uint32_t dim, unsigned order, int seed,
                   uint64_t max_cluster, struct semdedup_stats *st, struct err *e)
{
	struct item *it = malloc((n ? n : 1) * sizeof *it);
	float *z = NULL, *ms = NULL;
	uint32_t *arg = NULL;
	size_t zcap = 0;
	int rc = 0;

	memset(st, 0, sizeof *st);
	if (it == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	items_order(r, n, order, seed, it);
	for (size_t a = 0; a < n;) {
		size_t end = a;

		while (end < n && it[end].cluster == it[a].cluster)
			end++;
		st->clusters++;
		if (end - a > st->largest)
			st->largest = end - a;
		for (size_t c0 = a; c0 < end; c0 += max_cluster) {
			size_t m = end - c0 < max_cluster ? end - c0 : (size_t)max_cluster;

			st->chunks++;
			if (m > zcap) {
				float *nz = realloc(z, m * dim * sizeof *nz);
				float *nm = nz ? realloc(ms, m * sizeof *nm) : NULL;
				uint32_t *na = nm ? realloc(arg, m * sizeof *na) : NULL;

				if (nz != NULL)
					z = nz;
				if (nm != NULL)
					ms = nm;
				if (na == NULL) {
					rc =
					    err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
					goto out;
				}
				arg = na;
				zcap = m;
			}
			for (size_t j = 0; j < m; j++)
				memcpy(z + j * dim, r[it[c0 + j].idx].v, dim * sizeof *z);
			if ((rc = semdedup_earlier_max(z, m, dim, ms, arg, e)) != 0)
				goto out;
			for (size_t j = 0; j < m; j++) {
				struct semdedup_rec *x = &r[it[c0 + j].idx];

				x->maxsim = ms[j];
				x->earlier =
				    arg[j] == SEMDEDUP_NONE ? SIZE_MAX : it[c0 + arg[j]].idx;
			}
		}
		a = end;
	}
out:
	free(it);
	free(z);
	free(ms);
	free(arg);
	return rc;
}

/* The fit's pool: every scanned record with a non-zero vector, normalised, in scan order. */
struct pool {
	float *x;       /* n vectors of dim floats */
	uint64_t *rows; /* their rows */
	char **ids;     /* their ids (new) */
	size_t n, cap;
	uint64_t nrows; /* 1 + the highest row scanned (with a vector or not) */
};

static void pool_free(struct pool *p)
{
	for (size_t i = 0; p->ids != NULL && i < p->n; i++)
		free(p->ids[i]);
	free(p->ids);
	free(p->x);
	free(p->rows);
}

static int pool_grow(const struct semdedup *s, struct pool *p, struct err *e)
{
	size_t ncap = p->cap ? p->cap * 2 : 4096;
	float *nx = realloc(p->x, ncap * s->dim * sizeof *nx);
	uint64_t *nr = nx ? realloc(p->rows, ncap * sizeof *nr) : NULL;
	char **ni = nr ? realloc(p->ids, ncap * sizeof *ni) : NULL;

	if (nx != NULL)
		p->x = nx;
	if (nr != NULL)
		p->rows = nr;
	if (ni == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	p->ids = ni;
	p->cap = ncap;
	return 0;
}

/* Read the scan into p (zeroed by the caller). */
static int pool_read(const struct semdedup *s, struct filter_scan *scan, struct pool *p,
                     struct err *e)
{
	const struct filter_batch *b;
	int rc;

	while ((rc = filter_scan_next(scan, &b, e)) == 1) {
		for (size_t i = 0; i < b->n; i++) {
			if (b->rows[i] + 1 > p->nrows)
				p->nrows = b->rows[i] + 1;
			if (!b->has_vec[0][i])
				continue;
			if (p->n == p->cap && (rc = pool_grow(s, p, e)) != 0)
				return rc;
			memcpy(p->x + p->n * s->dim, b->vecs[0] + i * s->dim,
			       s->dim * sizeof *p->x);
			if (!kmeans_normalise(p->x + p->n * s->dim, s->dim))
				continue;
			if ((p->ids[p->n] = strdup(b->ids[i])) == NULL)
				return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
			p->rows[p->n++] = b->rows[i];
		}
	}
	return rc < 0 ? rc : 0;
}

/* What the fit found, per row (nrows entries each). */
struct dedup_out {
	uint32_t *cl; /* cluster, FILTER_NO_LABEL for rows outside the pool */
	float *msr;   /* the highest cosine to an earlier item of its cluster (0: none) */
	uint64_t *er; /* that earlier item's row, SDD_NO_ROW for none */
	uint32_t nclusters;
	size_t largest, chunks;
};

static int out_alloc(struct dedup_out *o, uint64_t nrows, struct err *e)
{
	o->cl = malloc((nrows ? nrows : 1) * sizeof *o->cl);
	o->msr = malloc((nrows ? nrows : 1) * sizeof *o->msr);
	o->er = malloc((nrows ? nrows : 1) * sizeof *o->er);
	if (o->cl == NULL || o->msr == NULL || o->er == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	for (uint64_t r = 0; r < nrows; r++) {
		o->cl[r] = FILTER_NO_LABEL;
		o->msr[r] = 0;
		o->er[r] = SDD_NO_ROW;
	}
	return 0;
}

/* k-means on the id-hash sample of the pool (param "sample": "id_hash"), the centroids
 * normalised once more as a shard normalises the router's (filters/prototypes.c does the
 * same): cent (k * dim) gets them. */
static int train_ids(const struct semdedup *s, const struct pool *p, float *cent, struct err *e)
{
	struct kmeans_idsample smp;
	float *x = NULL;
	int rc;

	if ((rc = kmeans_idsample_init(&smp, s->dim, (size_t)s->kp.k * (size_t)s->kp.max_ppc,
	                               s->kp.seed, e)) != 0)
		return rc;
	for (size_t i = 0; i < p->n && rc == 0; i++) {
		size_t len = strlen(p->ids[i]);

		rc = kmeans_idsample_add(&smp, kmeans_id_hash(p->ids[i], len, s->kp.seed),
		                         p->ids[i], len, p->x + i * s->dim, e);
	}
	if (rc == 0 && (rc = kmeans_idsample_sorted(&smp, &x, e)) == 0 &&
	    (rc = kmeans_train(&s->kp, s->dim, smp.n, x, cent, e)) == 0)
		for (uint32_t i = 0; i < s->kp.k; i++)
			kmeans_normalise(cent + (size_t)i * s->dim, s->dim);
	free(x);
	kmeans_idsample_free(&smp);
	return rc;
}

/* The centroids (*cent new when fitted here, *use the ones to assign with) and every pool
 * record's cluster (lab) and cosine to it (sim, semdedup_cos: independent of the batching). */
static int cluster_pool(const struct semdedup *s, const struct pool *p, float **cent, uint32_t *k,
                        uint32_t *lab, float *sim, struct err *e)
{
	struct kmeans_index *ix = NULL;
	const float *use = s->centroids;
	int rc = 0;

	*k = s->k;
	*cent = NULL;
	if (use == NULL) {
		*k = s->kp.k;
		if ((*cent = malloc((size_t)*k * s->dim * sizeof **cent)) == NULL)
			return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		rc = s->kp.id_sample ? train_ids(s, p, *cent, e)
		                     : kmeans_train(&s->kp, s->dim, p->n, p->x, *cent, e);
		if (rc != 0)
			return rc;
		use = *cent;
	}
	if (p->n > 0 && ((rc = kmeans_index_open(&ix, use, *k, s->dim, e)) != 0 ||
	                 (rc = kmeans_assign(ix, p->n, p->x, lab, sim, e)) != 0)) {
		kmeans_index_free(ix);
		return rc;
	}
	kmeans_index_free(ix);
	for (size_t i = 0; i < p->n; i++)
		sim[i] = semdedup_cos(p->x + i * s->dim, use + (size_t)lab[i] * s->dim, s->dim);
	return 0;
}

/* The dedup stage on one daemon: o from the pool's clusters. */
static int dedup_pool(const struct semdedup *s, const struct pool *p, const uint32_t *lab,
                      const float *sim, struct dedup_out *o, struct err *e)
{
	struct semdedup_rec *r = malloc((p->n ? p->n : 1) * sizeof *r);
	struct semdedup_stats st;
	int rc;

	if (r == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	for (size_t i = 0; i < p->n; i++)
		r[i] = (struct semdedup_rec){
		    .id = p->ids[i], .v = p->x + i * s->dim, .cluster = lab[i], .sim = sim[i]};
	if ((rc = semdedup_dedup(r, p->n, s->dim, s->order, s->kp.seed, s->max_cluster, &st, e)) ==
	    0) {
		for (size_t i = 0; i < p->n; i++) {
			uint64_t row = p->rows[i];

			o->cl[row] = r[i].cluster;
			o->msr[row] = r[i].maxsim;
			o->er[row] = r[i].earlier == SIZE_MAX ? SDD_NO_ROW : p->rows[r[i].earlier];
		}
		o->nclusters = (uint32_t)st.clusters;
		o->largest = st.largest;
		o->chunks = st.chunks;
	}
	free(r);
	return rc;
}

/* ---- the router's decisions (param "given") ---- */

static int idx_cmp(const void *a, const void *b, void *ids)
{
	char *const *v = ids;

	return strcmp(v[*(const size_t *)a], v[*(const size_t *)b]);
}

/* The pool index of id (ord: the pool's indexes sorted by id), or SIZE_MAX. */
static size_t pool_find(const struct pool *p, const size_t *ord, const char *id)
{
	size_t lo = 0, hi = p->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(p->ids[ord[mid]], id);

		if (c == 0)
			return ord[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return SIZE_MAX;
}

/* o from the router's decisions for this shard's records: every given id of the pool gets
 * its cluster, M and earlier record (a row when that record is here, else none). Records the
 * decisions do not name stay unfitted (ingested after the router's fit). */
static int given_apply(const struct semdedup *s, const struct pool *p, struct dedup_out *o,
                       struct err *e)
{
	const json_t *ids = json_object_get(s->given, "ids"),
	             *cl = json_object_get(s->given, "cluster");
	const json_t *m = json_object_get(s->given, "m"),
	             *er = json_object_get(s->given, "earlier");
	size_t *ord = malloc((p->n ? p->n : 1) * sizeof *ord);
	uint32_t maxc = 0;

	if (ord == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	for (size_t i = 0; i < p->n; i++)
		ord[i] = i;
	qsort_r(ord, p->n, sizeof *ord, idx_cmp, p->ids);
	for (size_t i = 0; i < json_array_size(ids); i++) {
		size_t at = pool_find(p, ord, json_string_value(json_array_get(ids, i)));
		const char *eid = json_string_value(json_array_get(er, i));
		size_t ea = eid != NULL ? pool_find(p, ord, eid) : SIZE_MAX;
		uint64_t row;

		if (at == SIZE_MAX)
			continue;
		row = p->rows[at];
		o->cl[row] = (uint32_t)json_integer_value(json_array_get(cl, i));
		o->msr[row] = (float)json_number_value(json_array_get(m, i));
		o->er[row] = ea == SIZE_MAX ? SDD_NO_ROW : p->rows[ea];
		if (o->cl[row] + 1 > maxc)
			maxc = o->cl[row] + 1;
	}
	o->nclusters = maxc; /* the highest cluster + 1 (the log only) */
	free(ord);
	return 0;
}

static int sdd_fit(struct filter *f, struct filter_scan *scan, struct err *e)
{
	struct semdedup *s = (struct semdedup *)f;
	struct pool p = {0};
	struct dedup_out o = {0};
	float *sim = NULL, *cent = NULL;
	uint32_t *lab = NULL;
	uint32_t k = s->k;
	double t0 = now_s(), t_read, t_assign;
	int rc;

	if ((rc = pool_read(s, scan, &p, e)) != 0 || (rc = out_alloc(&o, p.nrows, e)) != 0)
		goto out;
	t_read = now_s();
	if (s->given != NULL) {
		t_assign = t_read;
		rc = given_apply(s, &p, &o, e);
	} else {
		lab = malloc((p.n ? p.n : 1) * sizeof *lab);
		sim = malloc((p.n ? p.n : 1) * sizeof *sim);
		if (lab == NULL || sim == NULL)
			rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		else
			rc = cluster_pool(s, &p, &cent, &k, lab, sim, e);
		t_assign = now_s();
		if (rc == 0)
			rc = dedup_pool(s, &p, lab, sim, &o, e);
	}
	if (rc != 0)
		goto out;
	{
		uint64_t dups = 0;

		for (size_t i = 0; i < p.n; i++)
			dups += o.cl[p.rows[i]] != FILTER_NO_LABEL &&
			        is_dup_m(o.msr[p.rows[i]], s->eps);
		/* the stage times, for operators and bench/dedup.py */
		log_msg(LOG_INFO, "semdedup_fit",
		        "records=%zu k=%u clusters=%u largest=%zu chunks=%zu removed=%llu given=%d "
		        "read_s=%.3f assign_s=%.3f dedup_s=%.3f",
		        p.n, k, o.nclusters, o.largest, o.chunks, (unsigned long long)dups,
		        s->given != NULL, t_read - t0, t_assign - t_read, now_s() - t_assign);
	}
	/* success: the new state replaces the old one */
	free(s->cluster);
	free(s->maxsim);
	free(s->earlier);
	s->cluster = o.cl;
	s->maxsim = o.msr;
	s->earlier = o.er;
	s->nrows = p.nrows;
	s->nclusters = o.nclusters;
	s->k = k;
	o.cl = NULL;
	o.msr = NULL;
	o.er = NULL;
out:
	pool_free(&p);
	free(cent);
	free(lab);
	free(sim);
	free(o.cl);
	free(o.msr);
	free(o.er);
	return rc;
}

/* The partial of a fit over the shards of a cluster (docs/scale.md): with the centroids given,
 * every record of this daemon's pool as {"id", "c": its cluster, "s": its cosine to it, "v":
 * its unit vector}, {"format": "semdedup_pool/1", "dim", "items": [...]}: what the router's
 * dedup stage needs. */
static int sdd_partial(struct filter *f, struct filter_scan *scan, json_t **out, struct err *e)
{
	struct semdedup *s = (struct semdedup *)f;
	struct pool p = {0};
	float *sim = NULL, *cent = NULL;
	uint32_t *lab = NULL, k;
	json_t *items = NULL;
	int rc;

	*out = NULL;
	if (s->centroids == NULL || s->given != NULL)
		return err_set(
		    e, ERR_INVALID, "no_partial",
		    "a semdedup partial is the pool of a fit with the params 'centroids' "
		    "given (and no 'given')");
	if ((rc = pool_read(s, scan, &p, e)) != 0)
		goto out;
	lab = malloc((p.n ? p.n : 1) * sizeof *lab);
	sim = malloc((p.n ? p.n : 1) * sizeof *sim);
	if (lab == NULL || sim == NULL || (items = json_array()) == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	if ((rc = cluster_pool(s, &p, &cent, &k, lab, sim, e)) != 0)
		goto out;
	for (size_t i = 0; i < p.n; i++) {
		json_t *v = json_array();

		for (uint32_t j = 0; v != NULL && j < s->dim; j++)
			json_array_append_new(v, json_real(p.x[i * s->dim + j]));
		if (json_array_append_new(items, json_pack("{s:s, s:I, s:f, s:o?}", "id", p.ids[i],
		                                           "c", (json_int_t)lab[i], "s",
		                                           (double)sim[i], "v", v)) != 0) {
			rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
			goto out;
		}
	}
	*out = json_pack("{s:s, s:I, s:O}", "format", "semdedup_pool/1", "dim", (json_int_t)s->dim,
	                 "items", items);
	if (*out == NULL)
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
out:
	json_decref(items);
	pool_free(&p);
	free(cent);
	free(lab);
	free(sim);
	return rc;
}

/* ---- state ---- */

static int sdd_save(const struct filter *f, void **blob, size_t *len, struct err *e)
{
	const struct semdedup *s = (const struct semdedup *)f;
	size_t n = SDD_HDR + (size_t)s->nrows * SDD_ROW;
	uint8_t *q = malloc(n), *p;

	if (q == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	memset(q, 0, SDD_HDR);
	memcpy(q, SDD_MAGIC, 7);
	vec_le64_put(q + 8, s->nrows);
	vec_le32_put(q + 16, s->k);
	vec_le32_put(q + 20, s->nclusters);
	p = q + SDD_HDR;
	for (uint64_t r = 0; r < s->nrows; r++, p += SDD_ROW) {
		uint32_t u;

		memcpy(&u, &s->maxsim[r], 4);
		vec_le32_put(p, s->cluster[r]);
		vec_le32_put(p + 4, u);
		vec_le64_put(p + 8, s->earlier[r]);
	}
	*blob = q;
	*len = n;
	return 0;
}

static int sdd_load(struct filter *f, const void *blob, size_t len, struct err *e)
{
	struct semdedup *s = (struct semdedup *)f;
	const uint8_t *q = blob, *p;
	uint64_t n;
	uint32_t *cl;
	float *ms;
	uint64_t *er;

	if (len < SDD_HDR || memcmp(q, SDD_MAGIC, 7) != 0)
		return err_set(e, ERR_INVALID, "bad_state", "semdedup state: bad header");
	n = vec_le64_get(q + 8);
	if (n > (len - SDD_HDR) / SDD_ROW || len != SDD_HDR + n * SDD_ROW)
		return err_set(e, ERR_INVALID, "bad_state", "semdedup state: bad length");
	cl = malloc((n ? n : 1) * sizeof *cl);
	ms = malloc((n ? n : 1) * sizeof *ms);
	er = malloc((n ? n : 1) * sizeof *er);
	if (cl == NULL || ms == NULL || er == NULL) {
		free(cl);
		free(ms);
		free(er);
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	p = q + SDD_HDR;
	for (uint64_t r = 0; r < n; r++, p += SDD_ROW) {
		uint32_t u = vec_le32_get(p + 4);

		cl[r] = vec_le32_get(p);
		memcpy(&ms[r], &u, 4);
		er[r] = vec_le64_get(p + 8);
	}
	free(s->cluster);
	free(s->maxsim);
	free(s->earlier);
	s->cluster = cl;
	s->maxsim = ms;
	s->earlier = er;
	s->nrows = n;
	s->k = vec_le32_get(q + 16);
	s->nclusters = vec_le32_get(q + 20);
	return 0;
}

/* ---- score, explain, sweep ---- */

static int is_dup(const struct semdedup *s, uint64_t r, double eps)
{
	return is_dup_m(s->maxsim[r], eps);
}

static int sdd_score_label(const struct filter *f, const struct filter_batch *b, float *scores,
                           uint8_t *status, uint32_t *labels, struct err *e)
{
	const struct semdedup *s = (const struct semdedup *)f;

	(void)e;
	for (size_t i = 0; i < b->n; i++) {
		uint64_t r = b->rows[i];

		if (labels != NULL)
			labels[i] = FILTER_NO_LABEL;
		if (r < s->nrows && s->cluster[r] != FILTER_NO_LABEL) {
			int dup = is_dup(s, r, s->eps);

			scores[i] = dup ? 0.0f : 1.0f;
			status[i] = dup ? FILTER_REASON_BASE + 0 : FILTER_SCORED;
			if (labels != NULL)
				labels[i] = s->cluster[r];
			continue;
		}
		scores[i] = NAN;
		if (!b->has_vec[0][i]) {
			status[i] = FILTER_NO_VECTOR;
		} else {
			double nn = 0;

			for (uint32_t d = 0; d < s->dim; d++)
				nn += (double)b->vecs[0][i * s->dim + d] * b->vecs[0][i * s->dim + d];
			/* a vector the fit did not see: ingested after it */
			status[i] = nn > 0 ? FILTER_UNFITTED : FILTER_ZERO_VECTOR;
		}
	}
	return 0;
}

static int sdd_score(const struct filter *f, const struct filter_batch *b, float *scores,
                     uint8_t *status, struct err *e)
{
	return sdd_score_label(f, b, scores, status, NULL, e);
}

static int sdd_explain(const struct filter *f, uint64_t row, json_t **out, struct err *e)
{
	const struct semdedup *s = (const struct semdedup *)f;
	json_t *o;

	*out = NULL;
	if (row >= s->nrows || s->cluster[row] == FILTER_NO_LABEL)
		return 0;
	o = json_pack("{s:I, s:f, s:f, s:b}", "cluster", (json_int_t)s->cluster[row], "similarity",
	              (double)s->maxsim[row], "threshold", 1.0 - s->eps, "duplicate",
	              is_dup(s, row, s->eps));
	if (o == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if (s->earlier[row] != SDD_NO_ROW)
		json_object_set_new(o,
		                    is_dup(s, row, s->eps) ? "duplicate_of_row"
		                                           : "most_similar_earlier_row",
		                    json_integer((json_int_t)s->earlier[row]));
	*out = o;
	return 0;
}

int semdedup_sweep(const struct filter *f, const double *eps, size_t n, uint64_t *kept,
                   uint64_t *total)
{
	const struct semdedup *s = (const struct semdedup *)f;
	uint64_t t = 0;

	if (f->ops != &semdedup_filter_ops || !f->fitted)
		return ERR_INVALID;
	for (size_t i = 0; i < n; i++)
		kept[i] = 0;
	for (uint64_t r = 0; r < s->nrows; r++) {
		if (s->cluster[r] == FILTER_NO_LABEL)
			continue;
		t++;
		for (size_t i = 0; i < n; i++)
			kept[i] += !is_dup(s, r, eps[i]);
	}
	*total = t;
	return 0;
}

static void sdd_destroy(struct filter *f)
{
	struct semdedup *s = (struct semdedup *)f;

	kmeans_params_free(&s->kp);
	json_decref(s->given);
	free(s->centroids);
	free(s->cluster);
	free(s->maxsim);
	free(s->earlier);
}

const struct filter_ops semdedup_filter_ops = {
    .name = "semdedup",
    .summary = "SemDeDup: 0 for a record whose cosine to an earlier record of its k-means "
               "cluster exceeds 1 - eps, else 1 (Abbas et al. 2023; docs/filters.md)",
    .size = sizeof(struct semdedup),
    .cheap = 0,
    .needs_fit = 1,
    .reasons = sdd_reasons,
    .create = sdd_create,
    .fit = sdd_fit,
    .save = sdd_save,
    .load = sdd_load,
    .score = sdd_score,
    .destroy = sdd_destroy,
    .label = "cluster",
    .score_label = sdd_score_label,
    .explain = sdd_explain,
    .use = sdd_use,
    .partial = sdd_partial,
};
