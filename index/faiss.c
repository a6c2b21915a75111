/* SPDX-License-Identifier: MIT */
/* faiss: the index interface over the FAISS C API (libwinnow_faiss.so, made by `make deps`
 * from Debian's faiss source in a generic and an AVX2 build, which glibc's loader chooses
 * between by the CPU: index_faiss_build()). Any index-factory string works ("Flat",
 * "HNSW32", "IVF1024,Flat", "IVF4096,PQ32", ...); it is wrapped in IDMap2 so that every
 * type takes the caller's ids. Cosine and inner product use METRIC_INNER_PRODUCT, L2 uses
 * METRIC_L2 (squared distances, negated by the wrapper).
 *
 * FAISS reports errors through return codes and faiss_get_last_error() (thread-local);
 * each is turned into an ERR_INVALID or ERR_INTERNAL with FAISS's message.
 *
 * Flat scans of a few queries: FAISS scans a Flat index for fewer than 20 queries with one
 * thread per query and, in the generic build (no AVX2), a scalar distance loop: one query over
 * 200,000 x 768-d takes 70 ms on one core while the others idle. For up to 8 queries this
 * file scans FAISS's flat storage itself (its vectors, in place, and its id map) with
 * winnow's vector kernels (store/vec: AVX2+FMA when the CPU has them), in row ranges on
 * several threads (index.threads, less the searches already running: index_scan_begin),
 * and merges the ranges' top k. The same neighbours, scores equal to float rounding (the
 * sums are added in another order). Larger batches are FAISS's, with BLAS (SCAN_MAX_QUERIES). */
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/utils/distances_c.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/par.h"
#include "index/index.h"
#include "lib/vec.h"

struct faiss {
	struct index base;
	FaissIndex *ix;
};

static int faiss_fail(struct err *e, int code, const char *slug, const char *what)
{
	const char *m = faiss_get_last_error();

	return err_set(e, code, slug, "%s: %s", what, m != NULL ? m : "FAISS failed");
}

static int fx_create(struct index **out, uint32_t dim, enum index_metric metric,
                     const char *factory, struct err *e)
{
	struct faiss *f = calloc(1, sizeof *f);
	char desc[INDEX_FACTORY_MAX + 16];

	if (f == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	snprintf(desc, sizeof desc, "%s%s", strncmp(factory, "IDMap", 5) == 0 ? "" : "IDMap2,",
	         factory);
	if (faiss_index_factory(&f->ix, (int)dim, desc,
	                        metric == INDEX_L2 ? METRIC_L2 : METRIC_INNER_PRODUCT) != 0) {
		free(f);
		return faiss_fail(e, ERR_INVALID, "bad_factory", "FAISS refused the index factory");
	}
	*out = &f->base;
	return 0;
}

/* Training runs in a child process. FAISS does not survive every factory string it accepts:
 * "PQ1x64" divides by zero in its random generator (SIGFPE), and an assertion inside a
 * k-means aborts; in the daemon that would kill the process and, the build job resuming at
 * every start, every restart after it. The child trains its copy of the index and sends it
 * back through a pipe ('K' and the index in FAISS's own format) or FAISS's message ('E' and
 * the text); the parent reads the trained index and replaces its own. A child killed by a
 * signal fails the training with the signal's name, and the daemon goes on.
 *
 * The child runs OpenMP with one thread: GNU libgomp's thread pool does not survive fork()
 * (a parallel region in the child waits for the parent's workers forever), a team of one
 * never asks it. The heavy part of FAISS's k-means is BLAS, whose threads OpenBLAS restarts
 * after a fork by itself. The child calls nothing but FAISS and _exit(). */
static int train_child(FaissIndex *ix, size_t n, const float *x, int fd)
{
	FILE *out = fdopen(fd, "wb");
	int ok;

	static const int deadly[] = {SIGFPE, SIGSEGV, SIGBUS, SIGILL, SIGABRT};

	if (out == NULL)
		return 1;
	/* die by the signal itself (a sanitizer's handler would report and exit 1 instead) */
	for (size_t i = 0; i < sizeof deadly / sizeof deadly[0]; i++)
		signal(deadly[i], SIG_DFL);
	omp_set_num_threads(1);
	if (faiss_Index_train(ix, (idx_t)n, x) != 0) {
		const char *m = faiss_get_last_error();

		fputc('E', out);
		fputs(m != NULL ? m : "FAISS failed", out);
		ok = fflush(out) == 0;
	} else {
		ok = fputc('K', out) != EOF && faiss_write_index(ix, out) == 0 && fflush(out) == 0;
	}
	fclose(out);
	return ok ? 0 : 1;
}

/* The parent's side: read what the child sent, then reap it. */
static int train_read(struct faiss *f, FILE *in, pid_t pid, struct err *e)
{
	FaissIndex *trained = NULL;
	char msg[512];
	int tag = fgetc(in), status = 0, rc = 0;
	size_t n;

	if (tag == 'K') {
		if (faiss_read_index(in, 0, &trained) != 0)
			trained = NULL;
	} else if (tag == 'E') {
		n = fread(msg, 1, sizeof msg - 1, in);
		msg[n] = '\0';
		rc = err_set(e, ERR_INVALID, "train_failed", "training failed: %s", msg);
	}
	fclose(in);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (rc != 0) {
		faiss_Index_free(trained);
		return rc;
	}
	if (WIFSIGNALED(status)) {
		faiss_Index_free(trained);
		return err_set(e, ERR_INVALID, "train_crashed",
		               "FAISS crashed while training this index (signal %d, %s): the factory "
		               "string or the training data is one FAISS cannot train; the daemon "
		               "is unaffected",
		               WTERMSIG(status), strsignal(WTERMSIG(status)));
	}
	if (trained == NULL || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		faiss_Index_free(trained);
		return err_set(e, ERR_INTERNAL, "train_failed",
		               "training failed: the training process ended without an index");
	}
	faiss_Index_free(f->ix);
	f->ix = trained;
	return 0;
}

static int fx_train(struct index *ix, size_t n, const float *x, struct err *e)
{
	struct faiss *f = (struct faiss *)ix;
	int fds[2];
	pid_t pid;
	FILE *in;

	if (pipe2(fds, O_CLOEXEC) != 0)
		return err_set(e, ERR_IO, "train_failed", "pipe: %s", strerror(errno));
	fflush(NULL);
	if ((pid = fork()) < 0) {
		close(fds[0]);
		close(fds[1]);
		return err_set(e, ERR_NOMEM, "train_failed", "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		close(fds[0]);
		_exit(train_child(f->ix, n, x, fds[1]));
	}
	close(fds[1]);
	if ((in = fdopen(fds[0], "rb")) == NULL) {
		close(fds[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	}
	return train_read(f, in, pid, e);
}

/* The number after a prefix at p ("IVF1024" -> 1024), or -1 when there is none; *end after it. */
static long long factory_number(const char *p, const char **end)
{
	long long v = 0;

	if (*p < '0' || *p > '9')
		return -1;
	while (*p >= '0' && *p <= '9') {
		if (v > 100000000LL)
			return -2; /* too large for any index */
		v = v * 10 + (*p++ - '0');
	}
	*end = p;
	return v;
}

enum { PQ_NBITS_MAX = 16, IVF_NLIST_MAX = 1 << 20 };

int index_faiss_train_rows(const char *factory, uint64_t *rows, struct err *e)
{
	uint64_t need = 0;
	const char *p = factory;

	while (p != NULL && *p != '\0') {
		const char *end = p;
		long long v;

		/* every component starts after a comma or at the beginning */
		if (strncmp(p, "IVF", 3) == 0 && (v = factory_number(p + 3, &end)) != -1) {
			if (v < 1 || v > IVF_NLIST_MAX)
				return err_set(e, ERR_INVALID, "bad_factory",
				               "'%s': an IVF index takes 1 to %d lists", factory,
				               IVF_NLIST_MAX);
			need = need > (uint64_t)v ? need : (uint64_t)v;
		} else if ((strncmp(p, "PQ", 2) == 0 || strncmp(p, "OPQ", 3) == 0) &&
		           (v = factory_number(p + (p[0] == 'O' ? 3 : 2), &end)) != -1) {
			long long nbits = 8;

			if (v < 1)
				return err_set(e, ERR_INVALID, "bad_factory",
				               "'%s': a PQ needs at least one sub-quantizer", factory);
			if (p[0] == 'P' && *end == 'x' && (nbits = factory_number(end + 1, &end)) < 1)
				return err_set(e, ERR_INVALID, "bad_factory",
				               "'%s': PQ<M>x<bits> takes 1 to %d bits", factory,
				               PQ_NBITS_MAX);
			if (nbits > PQ_NBITS_MAX)
				return err_set(e, ERR_INVALID, "bad_factory",
				               "'%s': PQ codes of %lld bits a sub-quantizer; FAISS trains "
				               "1 to %d (2^bits centroids each)",
				               factory, nbits, PQ_NBITS_MAX);
			if (p[0] == 'P')
				need = need > (1ull << nbits) ? need : 1ull << nbits;
		}
		p = strchr(p, ',');
		if (p != NULL)
			p++;
	}
	*rows = need;
	return 0;
}

static int fx_is_trained(const struct index *ix)
{
	return faiss_Index_is_trained(((const struct faiss *)ix)->ix);
}

static int fx_add(struct index *ix, size_t n, const float *x, const int64_t *ids, struct err *e)
{
	struct faiss *f = (struct faiss *)ix;

	if (faiss_Index_add_with_ids(f->ix, (idx_t)n, x, (const idx_t *)ids) != 0)
		return faiss_fail(e, ERR_INTERNAL, "index_add", "adding to the index failed");
	return 0;
}

static int fx_remove(struct index *ix, size_t n, const int64_t *ids, size_t *removed,
                     struct err *e)
{
	struct faiss *f = (struct faiss *)ix;
	FaissIDSelectorBatch *sel = NULL;
	size_t gone = 0;

	if (faiss_IDSelectorBatch_new(&sel, n, (const idx_t *)ids) != 0)
		return faiss_fail(e, ERR_NOMEM, "out_of_memory", "id selector");
	if (faiss_Index_remove_ids(f->ix, (const FaissIDSelector *)sel, &gone) != 0) {
		faiss_IDSelector_free((FaissIDSelector *)sel);
		return faiss_fail(e, ERR_INVALID, "remove_unsupported",
		                  "this index type cannot remove vectors");
	}
	faiss_IDSelector_free((FaissIDSelector *)sel);
	if (removed != NULL)
		*removed = gone;
	return 0;
}

/* Up to this many queries a Flat search is winnow's scan; from one more FAISS's search,
 * which uses BLAS from there (its threshold is set to that once; FAISS's default of 20 left
 * 17 to 19 queries to its scalar one-thread-per-query loop). Measured over HTTP, 200,000 x
 * 768-d, ms per query: winnow's scan 15.8 (1 query), 6.8 (4), 6.1 (8), 5.9 (16); BLAS 14.3
 * (4), 7.4 (8), 3.1 (16), 3.3 (17), 4.1 (20), 1.8 (64); FAISS's scalar loop 37.7 (17). */
enum { SCAN_MAX_QUERIES = 8 };

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_after_scan(void)
{
	faiss_set_distance_compute_blas_threshold(SCAN_MAX_QUERIES + 1);
}

void index_faiss_setup(void)
{
	pthread_once(&blas_once, blas_after_scan);
}

/* Defined by each build of libwinnow_faiss.so (scripts/deps.sh, scripts/faiss-avx2.sh):
 * "generic" or "avx2", the flags its FAISS was compiled with. A function, not a string: an
 * executable keeps its own copy of a library's data (a copy relocation), and dladdr() would
 * name the executable. */
const char *winnow_faiss_build(void);

const char *index_faiss_build(const char **library)
{
	Dl_info info;
	void *sym;

	if (library != NULL) {
		sym = dlsym(RTLD_DEFAULT, "winnow_faiss_build");
		*library = sym != NULL && dladdr(sym, &info) != 0 && info.dli_fname != NULL
		                   ? info.dli_fname
		                   : "";
	}
	return winnow_faiss_build();
}

/* One candidate: its score made higher-is-better (the negated distance for L2), and its
 * position in the flat storage. */
struct cand {
	float v;
	int64_t pos;
};

/* a ranks below b: lower score, or the same score and a later position. */
static int worse(const struct cand *a, const struct cand *b)
{
	return a->v < b->v || (a->v == b->v && a->pos > b->pos);
}

/* A bounded min-heap (the worst kept candidate at the root) of up to k candidates. */
static void heap_offer(struct cand *h, size_t *n, size_t k, struct cand c)
{
	size_t i;

	if (*n < k) {
		for (i = (*n)++; i > 0 && worse(&c, &h[(i - 1) / 2]); i = (i - 1) / 2)
			h[i] = h[(i - 1) / 2];
		h[i] = c;
		return;
	}
	if (!worse(&h[0], &c))
		return;
	for (i = 0;;) {
		size_t l = 2 * i + 1, m = l;

		if (l >= *n)
			break;
		if (l + 1 < *n && worse(&h[l + 1], &h[l]))
			m = l + 1;
		if (!worse(&h[m], &c))
			break;
		h[i] = h[m];
		i = m;
	}
	h[i] = c;
}

struct split {
	const float *xb, *q;
	size_t d, nq, k, lo, hi; /* k: the heaps' size, at most the range's rows */
	int l2;
	struct cand *heaps; /* nq heaps of k */
	size_t *lens;       /* nq */
};

static void *split_scan(void *arg)
{
	struct split *s = arg;

	for (size_t r = s->lo; r < s->hi; r++) {
		const float *y = s->xb + r * s->d;

		for (size_t qi = 0; qi < s->nq; qi++) {
			const float *x = s->q + qi * s->d;
			float v = s->l2 ? (float)-vec_f32_l2sq(x, y, s->d) : (float)vec_f32_dot(x, y, s->d);
			struct cand c = {v, (int64_t)r};

			heap_offer(s->heaps + qi * s->k, &s->lens[qi], s->k, c);
		}
	}
	return NULL;
}

static int by_rank(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	return worse(y, x) ? -1 : worse(x, y) ? 1 : 0;
}

/* The flat storage under an IDMap/IDMap2 wrapper, its id map and metric; 0 when the index
 * is something else (or a metric other than inner product and L2). */
static int flat_parts(FaissIndex *ix, const float **xb, const idx_t **idmap, size_t *n, int *l2)
{
	FaissIndexIDMap2 *m2 = faiss_IndexIDMap2_cast(ix);
	FaissIndexIDMap *m1 = m2 == NULL ? faiss_IndexIDMap_cast(ix) : NULL;
	FaissIndex *sub = m2 != NULL ? faiss_IndexIDMap2_sub_index(m2)
	                  : m1 != NULL ? faiss_IndexIDMap_sub_index(m1) : NULL;
	FaissIndexFlat *flat = sub != NULL ? faiss_IndexFlat_cast(sub) : NULL;
	FaissMetricType mt;
	idx_t *map = NULL;
	float *x = NULL;
	size_t nmap = 0, nx = 0;

	if (flat == NULL)
		return 0;
	mt = faiss_Index_metric_type(sub);
	if (mt != METRIC_INNER_PRODUCT && mt != METRIC_L2)
		return 0;
	if (m2 != NULL)
		faiss_IndexIDMap2_id_map(m2, &map, &nmap);
	else
		faiss_IndexIDMap_id_map(m1, &map, &nmap);
	faiss_IndexFlat_xb(flat, &x, &nx);
	*n = (size_t)faiss_Index_ntotal(sub);
	if (nmap != *n || nx / (size_t)faiss_Index_d(sub) != *n)
		return 0;
	*xb = x;
	*idmap = map;
	*l2 = mt == METRIC_L2;
	return 1;
}

/* The scan of a Flat index's storage: t threads over row ranges (the caller's thread takes
 * the first; t may be 1), merged into FAISS's output convention (distances for L2, ids from
 * the map, -1 past the end). */
static int flat_scan(const float *xb, const idx_t *idmap, size_t n, int l2, size_t d,
                     unsigned t, size_t nq, const float *q, size_t k, float *dist, int64_t *ids,
                     struct err *e)
{
	struct split *s = calloc(t, sizeof *s);
	size_t *lens = calloc((size_t)t * nq, sizeof *lens), kept = 0, at = 0;
	struct cand *all = NULL, *m = NULL;
	int rc = 0;

	for (unsigned i = 0; s != NULL && i < t; i++) {
		s[i] = (struct split){.xb = xb, .q = q, .d = d, .nq = nq, .l2 = l2,
		                      .lo = n * i / t, .hi = n * (i + 1) / t};
		s[i].k = k < s[i].hi - s[i].lo ? k : s[i].hi - s[i].lo;
		kept += s[i].k;
	}
	if (s == NULL || lens == NULL ||
	    (all = malloc((kept * nq + 1) * sizeof *all)) == NULL ||
	    (m = malloc((kept + 1) * sizeof *m)) == NULL) {
		rc = err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
		goto out;
	}
	for (unsigned i = 0; i < t; at += s[i].k * nq, i++) {
		s[i].heaps = all + at;
		s[i].lens = lens + (size_t)i * nq;
	}
	par_run(split_scan, s, sizeof *s, t);
	for (size_t qi = 0; qi < nq; qi++) {
		size_t got = 0;

		for (unsigned i = 0; i < t; i++) {
			memcpy(m + got, s[i].heaps + qi * s[i].k, s[i].lens[qi] * sizeof *m);
			got += s[i].lens[qi];
		}
		qsort(m, got, sizeof *m, by_rank);
		for (size_t j = 0; j < k; j++) {
			dist[qi * k + j] = j < got ? (l2 ? -m[j].v : m[j].v) : l2 ? INFINITY : -INFINITY;
			ids[qi * k + j] = j < got ? idmap[m[j].pos] : -1;
		}
	}
out:
	free(s);
	free(all);
	free(m);
	free(lens);
	return rc;
}

static int fx_search(const struct index *ix, size_t nq, const float *q, size_t k, float *dist,
                     int64_t *ids, struct err *e)
{
	const struct faiss *f = (const struct faiss *)ix;
	const float *xb = NULL;
	const idx_t *idmap = NULL;
	size_t n = 0;
	int l2 = 0, flat = nq <= SCAN_MAX_QUERIES && flat_parts(f->ix, &xb, &idmap, &n, &l2), rc = 0;
	unsigned t = index_scan_begin(ix->threads, flat ? n * ix->dim * nq : 0);

	index_faiss_setup();
	if (flat) {
		rc = flat_scan(xb, idmap, n, l2, ix->dim, t, nq, q, k, dist, ids, e);
	} else {
		/* FAISS's graph and IVF searches parallelise over queries, but open an OpenMP team
		 * of every core even for one query: each member allocates its own visited table
		 * (one byte per vector) and the caller waits on a barrier for members that had
		 * nothing to do (0.3 to 1 ms a query on a busy 2-core machine). A team no larger
		 * than the batch; omp_set_num_threads() is this thread's setting only. */
		int team = omp_get_max_threads();

		if (nq < (size_t)team)
			omp_set_num_threads((int)nq);
		if (faiss_Index_search(f->ix, (idx_t)nq, q, (idx_t)k, dist, (idx_t *)ids) != 0)
			rc = faiss_fail(e, ERR_INTERNAL, "index_search", "search failed");
		if (nq < (size_t)team)
			omp_set_num_threads(team);
	}
	index_scan_end();
	return rc;
}

static int fx_set_param(struct index *ix, const char *name, double value, struct err *e)
{
	struct faiss *f = (struct faiss *)ix;
	FaissParameterSpace *ps = NULL;
	int rc = 0;

	if (faiss_ParameterSpace_new(&ps) != 0)
		return faiss_fail(e, ERR_NOMEM, "out_of_memory", "parameter space");
	if (faiss_ParameterSpace_set_index_parameter(ps, f->ix, name, value) != 0)
		rc = faiss_fail(e, ERR_INVALID, "bad_param", "FAISS refused the parameter");
	faiss_ParameterSpace_free(ps);
	return rc;
}

static int fx_save(const struct index *ix, const char *path, struct err *e)
{
	if (faiss_write_index_fname(((const struct faiss *)ix)->ix, path) != 0)
		return faiss_fail(e, ERR_IO, "index_save", "cannot write the index");
	return 0;
}

static int fx_load(struct index **out, const char *path, uint32_t dim, enum index_metric metric,
                   struct err *e)
{
	struct faiss *f = calloc(1, sizeof *f);
	FaissMetricType want = metric == INDEX_L2 ? METRIC_L2 : METRIC_INNER_PRODUCT;

	if (f == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if (faiss_read_index_fname(path, 0, &f->ix) != 0) {
		free(f);
		return faiss_fail(e, ERR_INVALID, "index_corrupt", "cannot read the index file");
	}
	if ((uint32_t)faiss_Index_d(f->ix) != dim || faiss_Index_metric_type(f->ix) != want) {
		faiss_Index_free(f->ix);
		free(f);
		return err_set(e, ERR_INVALID, "index_corrupt",
		               "%s holds an index of another dimension or metric", path);
	}
	*out = &f->base;
	return 0;
}

static size_t fx_count(const struct index *ix)
{
	return (size_t)faiss_Index_ntotal(((const struct faiss *)ix)->ix);
}

static void fx_destroy(struct index *ix)
{
	struct faiss *f = (struct faiss *)ix;

	faiss_Index_free(f->ix);
	free(f);
}

const struct index_ops index_faiss_ops = {
	.name = "faiss",
	.create = fx_create,
	.train = fx_train,
	.is_trained = fx_is_trained,
	.add = fx_add,
	.remove = fx_remove,
	.search = fx_search,
	.set_param = fx_set_param,
	.save = fx_save,
	.load = fx_load,
	.count = fx_count,
	.destroy = fx_destroy,
};
