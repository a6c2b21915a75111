/* SPDX-License-Identifier: MIT */
/* score: the clip_score scoring benchmark and the top_fraction selection benchmark.
 *
 * In one process, against the store API (no HTTP): fills a fresh store with N records of
 * two D-dimensional f16 embeddings (the DataComp layout), then times
 *   - a plain sequential read of the same vector bytes through the store's block reader
 *     (summing 64-bit words on the same number of threads): the memory-bandwidth limit;
 *   - instance_score_range() with the clip_score filter over all rows (the scoring job's
 *     inner loop: snapshot reads, f16 -> f32, one-pass dot and norms);
 *   - numpy doing the same computation on the same vectors (f16 -> f32, row dots, norms),
 *     run by /usr/bin/python3 on the raw vector files this bench writes;
 * and, on M random scores, select_top_fraction(0.3) against a full qsort of them.
 * Each timing is the best of --repeat runs. The scores are checked against a double-precision
 * computation and against numpy's; the selection's threshold against the sort's.
 *
 * Prints one line per measurement and PASS/MISS per target. Exit 0 when every measurement ran
 * and every check held (targets may be missed), 1 otherwise, 2 on a usage error. */
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "ingest/ingest.h"
#include "lib/err.h"
#include "filters/filter.h"
#include "curate/instance.h"
#include "filters/registry.h"
#include "algo/select.h"
#include "store/store.h"
#include "lib/vec.h"

#define TARGET_SEQ_RATIO 0.50   /* scoring rate / sequential read rate */
#define TARGET_NUMPY_RATIO 1.0  /* numpy time / our time */
#define TARGET_SORT_RATIO 5.0   /* sort time / selection time */

struct opts {
	uint64_t records;
	uint32_t dim;
	uint64_t scores;
	unsigned threads;
	unsigned repeat;
	int keep;
	const char *python;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;

static uint64_t next_u64(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Uniform in [-1, 1). */
static float next_f(void)
{
	return (float)((double)(next_u64() >> 11) / 4503599627370496.0 - 1.0);
}

static int rm_fn(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void usage(void)
{
	fprintf(stderr, "usage: score [--records N] [--dim D] [--scores M] [--threads T] "
	                "[--repeat R] [--python PATH] [--keep] [--daemon PATH (ignored)]\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){.records = 1000000, .dim = 768, .scores = 10000000, .repeat = 3,
	                   .python = "/usr/bin/python3"};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--keep") == 0) {
			o->keep = 1;
			continue;
		}
		if (v == NULL) {
			usage();
			return 2;
		}
		i++;
		if (strcmp(a, "--records") == 0)
			o->records = strtoull(v, NULL, 10);
		else if (strcmp(a, "--dim") == 0)
			o->dim = (uint32_t)strtoul(v, NULL, 10);
		else if (strcmp(a, "--scores") == 0)
			o->scores = strtoull(v, NULL, 10);
		else if (strcmp(a, "--threads") == 0)
			o->threads = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(a, "--repeat") == 0)
			o->repeat = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(a, "--python") == 0)
			o->python = v;
		else if (strcmp(a, "--daemon") != 0) {
			usage();
			return 2;
		}
	}
	if (o->records == 0 || o->dim == 0 || o->dim > 4096 || o->scores == 0 ||
	    o->repeat == 0) {
		usage();
		return 2;
	}
	return 0;
}

/* ---- fill ---- */

/* The records go in through ingest_commit(), as the daemon's ingest writes them: the hooks run
 * (here no filter, index or normaliser is defined yet, so they only look). */
static int fill(struct core *core, const struct store_dataset_info *ds, const struct opts *o,
                const char *dir)
{
	const size_t batch = 4096;
	size_t vb = (size_t)o->dim * 2;
	uint16_t *img = malloc(batch * vb), *txt = malloc(batch * vb);
	struct store_record *recs = calloc(batch, sizeof *recs);
	char (*ids)[33] = malloc(batch * sizeof *ids);
	char path[4200];
	FILE *fi, *ft;
	int rc = 0;

	snprintf(path, sizeof path, "%s/img.f16", dir);
	fi = fopen(path, "wb");
	snprintf(path, sizeof path, "%s/txt.f16", dir);
	ft = fopen(path, "wb");
	if (img == NULL || txt == NULL || recs == NULL || ids == NULL || fi == NULL || ft == NULL) {
		rc = ERR_NOMEM;
		goto out;
	}
	for (uint64_t at = 0; at < o->records && rc == 0; at += batch) {
		size_t n = o->records - at < batch ? (size_t)(o->records - at) : batch;

		for (size_t i = 0; i < n; i++) {
			float shared[4096];

			/* correlated image and text vectors, so that scores spread like CLIP's */
			for (uint32_t k = 0; k < o->dim; k++)
				shared[k] = next_f();
			for (uint32_t k = 0; k < o->dim; k++) {
				img[i * o->dim + k] = vec_f32_to_f16_one(shared[k] + 0.8f * next_f());
				txt[i * o->dim + k] = vec_f32_to_f16_one(shared[k] + 0.8f * next_f());
			}
			snprintf(ids[i], sizeof ids[i], "%016llx%016llx",
			         (unsigned long long)next_u64(), (unsigned long long)(at + i));
			recs[i] = (struct store_record){.id = ids[i], .id_len = 32,
			                                .kind = STORE_KIND_IMAGE_TEXT, .body = "{}",
			                                .body_len = 2};
			recs[i].vec[0] = img + i * o->dim;
			recs[i].vec[1] = txt + i * o->dim;
		}
		if (fwrite(img, vb, n, fi) != n || fwrite(txt, vb, n, ft) != n)
			rc = ERR_IO;
		else
			rc = ingest_commit(core, ds, recs, n, NULL, NULL);
	}
out:
	if (fi != NULL && fclose(fi) != 0)
		rc = ERR_IO;
	if (ft != NULL && fclose(ft) != 0)
		rc = ERR_IO;
	free(img);
	free(txt);
	free(recs);
	free(ids);
	return rc;
}

/* ---- the sequential read reference ---- */

struct seq {
	struct store *s;
	uint32_t ds;
	uint64_t b0, b1; /* blocks */
	uint64_t sum;
	uint64_t bytes;
	int rc;
};

/* The reference read: sum the block's 64-bit words with AVX2 when the CPU has it (four
 * independent lanes), so that the limit is the memory, not the loop. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *w, size_t n)
{
	__m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256();
	uint64_t t[4], s = 0;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		a = _mm256_add_epi64(a, _mm256_loadu_si256((const __m256i *)(w + i)));
		b = _mm256_add_epi64(b, _mm256_loadu_si256((const __m256i *)(w + i + 4)));
	}
	_mm256_storeu_si256((__m256i *)t, _mm256_add_epi64(a, b));
	for (; i < n; i++)
		s += w[i];
	return s + t[0] + t[1] + t[2] + t[3];
}
#endif

static uint64_t sum_words(const uint64_t *w, size_t n)
{
	uint64_t s = 0;

#if defined(__x86_64__) && defined(__GNUC__)
	if (__builtin_cpu_supports("avx2"))
		return sum_avx2(w, n);
#endif
	for (size_t i = 0; i < n; i++)
		s += w[i];
	return s;
}

static void *seq_main(void *arg)
{
	struct seq *q = arg;
	struct store_reader *r = NULL;

	if ((q->rc = store_reader_open(q->s, &r, NULL)) != 0)
		return NULL;
	for (uint64_t b = q->b0; b < q->b1; b++) {
		for (unsigned sp = 0; sp < 2; sp++) {
			const void *data;
			uint64_t present;

			if ((q->rc = store_reader_block(r, q->ds, sp, b, &data, &present, NULL)) != 0)
				goto out;
			(void)present;
			/* a block holds 64 vectors, absent ones zeroed */
			q->sum += sum_words(data, q->bytes / 8);
		}
	}
out:
	store_reader_close(r);
	return NULL;
}

static double seq_read(struct store *s, uint32_t ds, const struct opts *o, unsigned nt,
                       uint64_t *sum)
{
	uint64_t blocks = (o->records + STORE_BLOCK_ROWS - 1) / STORE_BLOCK_ROWS;
	struct seq q[16];
	pthread_t th[16];
	double t0 = now();

	*sum = 0;
	for (unsigned i = 0; i < nt; i++) {
		q[i] = (struct seq){.s = s, .ds = ds, .b0 = blocks * i / nt,
		                    .b1 = blocks * (i + 1) / nt,
		                    .bytes = (size_t)STORE_BLOCK_ROWS * o->dim * 2};
		pthread_create(&th[i], NULL, seq_main, &q[i]);
	}
	for (unsigned i = 0; i < nt; i++) {
		pthread_join(th[i], NULL);
		*sum += q[i].sum;
		if (q[i].rc != 0)
			return -1;
	}
	return now() - t0;
}

/* ---- numpy ---- */

static int run_numpy(const struct opts *o, const char *dir, double *secs)
{
	char cmd[8192];
	FILE *p;
	int rc;

	snprintf(cmd, sizeof cmd,
	         "%s -c '\n"
	         "import numpy as np, time, sys\n"
	         "n, d, rep = %llu, %u, %u\n"
	         "a = np.fromfile(\"%s/img.f16\", dtype=np.float16).reshape(n, d)\n"
	         "b = np.fromfile(\"%s/txt.f16\", dtype=np.float16).reshape(n, d)\n"
	         "best = 1e9\n"
	         "for _ in range(rep):\n"
	         "    t0 = time.perf_counter()\n"
	         "    s = np.empty(n, np.float32)\n"
	         "    for i in range(0, n, 65536):\n"
	         "        x = a[i:i+65536].astype(np.float32); y = b[i:i+65536].astype(np.float32)\n"
	         "        s[i:i+65536] = np.einsum(\"ij,ij->i\", x, y) / "
	         "(np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))\n"
	         "    best = min(best, time.perf_counter() - t0)\n"
	         "s.tofile(\"%s/numpy.f32\")\n"
	         "print(best)\n"
	         "'",
	         o->python, (unsigned long long)o->records, o->dim, o->repeat, dir, dir, dir);
	p = popen(cmd, "r");
	if (p == NULL)
		return ERR_IO;
	rc = fscanf(p, "%lf", secs) == 1 ? 0 : ERR_IO;
	if (pclose(p) != 0)
		rc = ERR_IO;
	return rc;
}

/* ---- selection ---- */

static int cmp_desc(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x < y) - (x > y);
}

static int bench_select(const struct opts *o, int *ok)
{
	float *v = malloc(o->scores * sizeof *v), *c = malloc(o->scores * sizeof *c);
	double best_sel = 1e9, best_sort = 1e9;
	float thr = 0, q = 0;
	size_t kept = 0;

	if (v == NULL || c == NULL) {
		free(v);
		free(c);
		return ERR_NOMEM;
	}
	for (uint64_t i = 0; i < o->scores; i++)
		v[i] = next_f() * 0.3f + 0.2f;
	for (unsigned r = 0; r < o->repeat; r++) {
		double t0 = now(), t1, t2;

		select_top_fraction(v, o->scores, 0.3, &thr, &kept, NULL);
		t1 = now();
		memcpy(c, v, o->scores * sizeof *c);
		qsort(c, o->scores, sizeof *c, cmp_desc);
		t2 = now();
		if (t1 - t0 < best_sel)
			best_sel = t1 - t0;
		if (t2 - t1 < best_sort)
			best_sort = t2 - t1;
		q = c[(size_t)floor((double)o->scores * 0.3)];
	}
	if (thr != q) {
		printf("select check FAILED: threshold %.9g, sort says %.9g\n", thr, q);
		*ok = 0;
	}
	printf("select top_fraction 0.3 of %llu scores: %.3f s; qsort of them: %.3f s; "
	       "sort/select %.1fx  %s (target >= %.0fx)\n",
	       (unsigned long long)o->scores, best_sel, best_sort, best_sort / best_sel,
	       best_sort / best_sel >= TARGET_SORT_RATIO ? "PASS" : "MISS", TARGET_SORT_RATIO);
	free(v);
	free(c);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	char dir[] = "/tmp/winnow-bench-score-XXXXXX";
	struct store *s = NULL;
	struct store_config sc = {0};
	struct store_schema schema = {0};
	struct store_dataset_info info;
	struct filter *f = NULL;
	json_t *params = NULL;
	float *scores = NULL, *np = NULL;
	uint8_t *status = NULL;
	double t_seq = 1e9, t_score = 1e9, t_score1 = 1e9, t_numpy = 0, gb;
	uint64_t sum = 0;
	unsigned nt;
	int rc, ok = 1;

	if ((rc = parse(argc, argv, &o)) != 0)
		return rc;
	nt = o.threads ? o.threads : instance_score_threads();
	if (nt > 16)
		nt = 16;
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	sc.dir = dir;
	sc.map_size = (size_t)o.records * o.dim * 4 * 2 + ((size_t)1 << 30);
	schema.nspaces = 2;
	schema.kinds = STORE_KIND_IMAGE_TEXT;
	schema.spaces[0] = (struct store_space){.name = "image", .dim = o.dim, .dtype = STORE_F16};
	schema.spaces[1] = (struct store_space){.name = "text", .dim = o.dim, .dtype = STORE_F16};
	if ((rc = store_open(&s, &sc, NULL)) != 0 ||
	    (rc = store_dataset_create(s, "bench", &schema, NULL, NULL)) != 0 ||
	    (rc = store_dataset_get(s, "bench", &info, NULL)) != 0)
		goto out;
	printf("filling %llu records of two %u-d f16 embeddings...\n",
	       (unsigned long long)o.records, o.dim);
	fflush(stdout);
	{
		double t0 = now();

		struct core core = {.store = s};

		if ((rc = fill(&core, &info, &o, dir)) != 0)
			goto out;
		printf("filled in %.1f s\n", now() - t0);
	}
	params = json_pack("{s:s, s:s}", "image_space", "image", "text_space", "text");
	if ((rc = filter_create(&f, registry_find("clip_score"), params, &info.schema, NULL)) != 0)
		goto out;
	scores = malloc(o.records * sizeof *scores);
	status = malloc(o.records);
	np = malloc(o.records * sizeof *np);
	if (scores == NULL || status == NULL || np == NULL) {
		rc = ERR_NOMEM;
		goto out;
	}
	gb = (double)o.records * o.dim * 2 * 2 / 1e9;
	for (unsigned r = 0; r < o.repeat + 1; r++) { /* the first run warms the page cache */
		double t = seq_read(s, info.id, &o, nt, &sum);

		if (t < 0) {
			rc = ERR_STORE;
			goto out;
		}
		if (r > 0 && t < t_seq)
			t_seq = t;
	}
	for (unsigned r = 0; r < o.repeat; r++) {
		double t0 = now();

		if ((rc = instance_score_range(s, info.id, &info.schema, f, 0, o.records, scores,
		                               status, nt, NULL, NULL)) != 0)
			goto out;
		if (now() - t0 < t_score)
			t_score = now() - t0;
		t0 = now();
		if ((rc = instance_score_range(s, info.id, &info.schema, f, 0, o.records, scores,
		                               status, 1, NULL, NULL)) != 0)
			goto out;
		if (now() - t0 < t_score1)
			t_score1 = now() - t0;
	}
	/* check: a double-precision cosine of every 997th record, from the files */
	{
		char path[4200];
		FILE *fi, *ft;
		uint16_t *a = malloc((size_t)o.dim * 2), *b = malloc((size_t)o.dim * 2);
		double worst = 0;

		snprintf(path, sizeof path, "%s/img.f16", dir);
		fi = fopen(path, "rb");
		snprintf(path, sizeof path, "%s/txt.f16", dir);
		ft = fopen(path, "rb");
		for (uint64_t i = 0; fi && ft && a && b && i < o.records; i += 997) {
			double ab = 0, aa = 0, bb = 0;

			fseek(fi, (long)(i * o.dim * 2), SEEK_SET);
			fseek(ft, (long)(i * o.dim * 2), SEEK_SET);
			if (fread(a, 2, o.dim, fi) != o.dim || fread(b, 2, o.dim, ft) != o.dim)
				break;
			for (uint32_t k = 0; k < o.dim; k++) {
				double x = vec_f16_to_f32_one(a[k]), y = vec_f16_to_f32_one(b[k]);

				ab += x * y;
				aa += x * x;
				bb += y * y;
			}
			if (status[i] != FILTER_SCORED) {
				worst = INFINITY;
				break;
			}
			if (fabs(ab / sqrt(aa * bb) - scores[i]) > worst)
				worst = fabs(ab / sqrt(aa * bb) - scores[i]);
		}
		if (fi)
			fclose(fi);
		if (ft)
			fclose(ft);
		free(a);
		free(b);
		printf("check against double precision (every 997th record): max |diff| %.2e  %s\n",
		       worst, worst < 1e-5 ? "ok" : "FAILED");
		if (!(worst < 1e-5))
			ok = 0;
	}
	if (run_numpy(&o, dir, &t_numpy) != 0) {
		printf("numpy: could not run %s\n", o.python);
		ok = 0;
	} else {
		char path[4200];
		FILE *fp;
		double worst = 0;

		snprintf(path, sizeof path, "%s/numpy.f32", dir);
		fp = fopen(path, "rb");
		if (fp == NULL || fread(np, sizeof *np, o.records, fp) != o.records) {
			ok = 0;
		} else {
			for (uint64_t i = 0; i < o.records; i++)
				if (fabs((double)np[i] - scores[i]) > worst)
					worst = fabs((double)np[i] - scores[i]);
		}
		if (fp)
			fclose(fp);
		printf("check against numpy (all records): max |diff| %.2e  %s\n", worst,
		       worst < 1e-5 ? "ok" : "FAILED");
		if (!(worst < 1e-5))
			ok = 0;
	}
	printf("sequential read of the vector bytes (%u threads): %.3f s, %.2f GB/s "
	       "(checksum %llx)\n",
	       nt, t_seq, gb / t_seq, (unsigned long long)sum);
	printf("clip_score (%u threads): %.3f s, %.0f records/s, %.2f GB/s of embeddings; "
	       "%.0f%% of the sequential read rate  %s (target >= %.0f%%)\n",
	       nt, t_score, (double)o.records / t_score, gb / t_score, 100 * t_seq / t_score,
	       t_seq / t_score >= TARGET_SEQ_RATIO ? "PASS" : "MISS", 100 * TARGET_SEQ_RATIO);
	printf("clip_score (1 thread): %.3f s, %.0f records/s, %.2f GB/s\n", t_score1,
	       (double)o.records / t_score1, gb / t_score1);
	if (t_numpy > 0)
		printf("numpy (1 thread, f16->f32, einsum, norms): %.3f s; numpy/winnow %.2fx "
		       "(1 thread: %.2fx)  %s (target > %.0fx)\n",
		       t_numpy, t_numpy / t_score, t_numpy / t_score1,
		       t_numpy / t_score > TARGET_NUMPY_RATIO ? "PASS" : "MISS", TARGET_NUMPY_RATIO);
	rc = bench_select(&o, &ok);
out:
	if (rc != 0) {
		fprintf(stderr, "score: failed: %s\n", err_str(rc));
		ok = 0;
	}
	filter_free(f);
	json_decref(params);
	free(scores);
	free(status);
	free(np);
	store_close(s);
	if (!o.keep)
		nftw(dir, rm_fn, 16, FTW_DEPTH | FTW_PHYS);
	else
		printf("kept %s\n", dir);
	return ok ? 0 : 1;
}
