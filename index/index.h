/* SPDX-License-Identifier: MIT */
/* index: the narrow vector-index interface, with two implementations: FAISS through its C
 * API (index/faiss.c, any index-factory string) and a brute-force flat search in plain C
 * (index/flat.c), which is the test oracle.
 *
 * How to add an implementation: write index/<name>.c with a const struct index_ops whose
 * instances begin with `struct index base;`, declare it below next to the other two, and
 * add it to the table of index_impl_find() in index/index.c.
 *
 * Scores are always higher-is-better, whatever the metric:
 *   INDEX_COSINE  the inner product of L2-normalised vectors (the wrappers normalise what is
 *                 added and every query; a zero vector is refused);
 *   INDEX_IP      the raw inner product;
 *   INDEX_L2      the negated squared Euclidean distance, -||q - x||^2.
 * Ties are broken by the smaller id in the flat implementation; FAISS's order among equal
 * scores is its own.
 *
 * Ids are the caller's int64 (winnow uses rows). Threading: search may run concurrently on
 * one index; add, remove, set_param and save need exclusive access (the caller's lock). */
#ifndef WINNOW_INDEX_H
#define WINNOW_INDEX_H

#include <stddef.h>
#include <stdint.h>

struct err;

enum index_metric { INDEX_COSINE = 0, INDEX_IP = 1, INDEX_L2 = 2 };

#define INDEX_FACTORY_MAX 128

struct index;

struct index_ops {
	const char *name;
	/* New empty index of dim dimensions (factory: a FAISS index-factory string; the flat
	 * implementation accepts only "Flat"). */
	int (*create)(struct index **out, uint32_t dim, enum index_metric metric,
	              const char *factory, struct err *e);
	/* Train on n vectors (already normalised for cosine). NULL: nothing to train. */
	int (*train)(struct index *ix, size_t n, const float *x, struct err *e);
	int (*is_trained)(const struct index *ix);
	/* Add n vectors (n * dim floats, borrowed) with ids (borrowed). */
	int (*add)(struct index *ix, size_t n, const float *x, const int64_t *ids, struct err *e);
	/* Remove the vectors of n ids; *removed (may be NULL) gets how many were there.
	 * NULL when the index type cannot remove (HNSW): callers filter deleted ids instead. */
	int (*remove)(struct index *ix, size_t n, const int64_t *ids, size_t *removed,
	              struct err *e);
	/* k nearest per query: raw FAISS-convention output (see index_search for the contract);
	 * distances for L2, similarities otherwise. */
	int (*search)(const struct index *ix, size_t nq, const float *q, size_t k, float *dist,
	              int64_t *ids, struct err *e);
	/* Set a search parameter ("nprobe", "efSearch"); ERR_INVALID for one the type lacks. */
	int (*set_param)(struct index *ix, const char *name, double value, struct err *e);
	int (*save)(const struct index *ix, const char *path, struct err *e);
	int (*load)(struct index **out, const char *path, uint32_t dim, enum index_metric metric,
	            struct err *e);
	size_t (*count)(const struct index *ix);
	void (*destroy)(struct index *ix);
};

struct index {
	const struct index_ops *ops;
	uint32_t dim;
	enum index_metric metric;
	char factory[INDEX_FACTORY_MAX + 1];
	/* Threads one search of few queries may scan a Flat index with (index/faiss.c, fewer
	 * while other searches run): 0 = the online CPUs (the default), 1 = FAISS's own scan. */
	unsigned threads;
};

extern const struct index_ops index_faiss_ops;
extern const struct index_ops index_flat_ops;

/* FAISS's process-wide settings: BLAS for Flat searches from the first batch size that
 * index/faiss.c does not scan itself (FAISS's own threshold is 20). Idempotent; winnowd
 * calls it at start-up, before any thread, and every FAISS search calls it again. */
void index_faiss_setup(void);

/* Which build of FAISS the loader mapped: "avx2" (compiled with -mavx2 -mfma -mf16c, from
 * build/faiss/lib/glibc-hwcaps/x86-64-v3/, chosen by glibc on a CPU with x86-64-v3) or
 * "generic" (Debian's libfaiss.a). *library (when library is not NULL) gets the path of the
 * shared library it came from ("" if unknown); both strings are static. */
const char *index_faiss_build(const char **library);

/* The training a FAISS index-factory string needs, judged from the string alone, before
 * FAISS sees any data: *rows gets the fewest training vectors that train it (0 when the
 * type needs no training; otherwise the most of: an IVF's nlist, a PQ's 2^nbits per
 * sub-quantizer, 1). ERR_INVALID (slug "bad_factory") for what FAISS would accept and then
 * fail or crash on: PQ codes of more than 16 bits, more than 2^20 IVF lists, numbers that
 * do not fit. factory is borrowed. */
int index_faiss_train_rows(const char *factory, uint64_t *rows, struct err *e);

/* Split scans: one search reading every vector (a Flat index, an exact scan of the stored
 * vectors) on several threads in row ranges, each range for all of the search's queries.
 * A search brackets itself with index_scan_begin() and index_scan_end(); the answer is the
 * threads to split into, 1 = do not split. cap: the most threads (0 = the online CPUs; the
 * daemon's --search-threads); work: vector values the scan reads times its queries (0 = not
 * a scan: the search only counts as running). Each running search takes one core off cap,
 * and each thread gets at least INDEX_SPLIT_MIN_FLOATS (8 MiB of f32, about 1 ms here). */
#define INDEX_SPLIT_MIN_FLOATS ((size_t)1 << 21)
unsigned index_scan_begin(unsigned cap, size_t work);
void index_scan_end(void);

/* Searches split so far (index_scan_begin answers above 1), for /metrics and tests. */
uint64_t index_split_scans(void);

/* The implementation called name ("faiss", "flat"), or NULL. */
const struct index_ops *index_impl_find(const char *name);

/* Parse "cosine", "ip", "l2". 0 or ERR_INVALID. */
int index_metric_parse(const char *s, enum index_metric *out);
const char *index_metric_name(enum index_metric m);

/* Create an empty index. ERR_INVALID (bad dim, factory the implementation refuses, with
 * FAISS's message as detail). *out new (index_free), set only on success. */
int index_create(struct index **out, const struct index_ops *ops, uint32_t dim,
                 enum index_metric metric, const char *factory, struct err *e);
void index_free(struct index *ix);

/* Train (when the type needs it) on n vectors; cosine inputs are normalised here. */
int index_train(struct index *ix, size_t n, const float *x, struct err *e);
int index_is_trained(const struct index *ix);

/* Add n vectors with ids. For cosine every vector is normalised here; a zero vector is
 * ERR_INVALID (nothing is added). ERR_INVALID when the index is not trained. */
int index_add(struct index *ix, size_t n, const float *x, const int64_t *ids, struct err *e);

/* Remove ids; ERR_INVALID (slug "remove_unsupported") when the type cannot. */
int index_remove(struct index *ix, size_t n, const int64_t *ids, size_t *removed,
                 struct err *e);

/* 1 when index_remove works on ix, again and again: the flat implementation, and FAISS
 * factories over a flat storage ("Flat", "SQ8", "PQ16", "PCA64,Flat", ...). 0 for graphs
 * ("HNSW32", NSG, NNDescent: FAISS refuses, and prints the exception on stderr) and for IVF
 * and IMI ("IVF1024,Flat", ...: inside the IDMap2 of index/faiss.c the second remove translates
 * ids wrongly or aborts the process). Ask before index_remove. */
int index_can_remove(const struct index *ix);

/* The k best of every query (nq * dim floats, normalised here for cosine), as scores
 * (higher is better, see the metric table above) and ids, each nq * k entries (borrowed),
 * best first; slots without a result get id -1 and score -inf. */
int index_search(const struct index *ix, size_t nq, const float *q, size_t k, float *scores,
                 int64_t *ids, struct err *e);

int index_set_param(struct index *ix, const char *name, double value, struct err *e);

/* 1 when the index scores with the vectors it was given (up to float rounding): the flat
 * implementation, and FAISS factories that store vectors as they are ("Flat", "HNSW32",
 * "IVF1024,Flat", "IVF1024_HNSW32,Flat", with or without IDMap); 0 for transforms and
 * compressed codes (PCA, OPQ, PQ, SQ, ...), whose scores are approximations. */
int index_exact_scores(const struct index *ix);
size_t index_count(const struct index *ix);

/* Save to path (written whole to path.tmp, then renamed) / load from it. */
int index_save(const struct index *ix, const char *path, struct err *e);
int index_load(struct index **out, const struct index_ops *ops, const char *path, uint32_t dim,
               enum index_metric metric, const char *factory, struct err *e);

#endif
