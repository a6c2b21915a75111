/* SPDX-License-Identifier: MIT */
/* query: the similarity search engine. It runs a struct search_request, built by api/ from
 * whatever wire format the request came in (a JSON body, or raw f32/f16 rows with the other
 * parameters in the query string), and answers with JSON text.
 *
 * Search is exact-scored: candidates from the index (or every record, for an exact search, a
 * threshold search, a page after the first, a subset, or a space without a usable index) are
 * scored from the vectors in LMDB, so scores are the true ones whatever the index type, and
 * a threshold search is complete. Results rank by (score descending, row ascending); rows
 * are the records' insertion order, so pages are stable.
 *
 * Page tokens are the engine's: it makes them and checks them. A token is
 * "p1.<score bits, hex>.<row>.<binding, hex>": the keyset (score, row) of the last result
 * shown, and a hash of the request's parameters (everything but the vectors, the token and
 * search:count) mixed with that query's vector, so the token of any query of a batch
 * continues that query alone, as a single-vector request with the same values (in any
 * encoding) and the same parameters. A token that does not parse is ERR_MALFORMED
 * "bad_page_token"; one made for other parameters is ERR_MALFORMED "page_token_mismatch".
 *
 * Threading: every function is thread-safe; a batch spreads its per-query work over the
 * cores (query.c: run_batch). */
#ifndef WINNOW_QUERY_H
#define WINNOW_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "algo/hubness.h"
#include "index/index.h"

struct core;
struct err;

#define QUERY_BATCH_MAX                  1024 /* query vectors of one request at most */
#define QUERY_LIMIT_MAX                  1000 /* results per query at most */
#define QUERY_LIMIT_DEFAULT              10
#define QUERY_RESCORE_CANDIDATES_DEFAULT 100
#define QUERY_RESCORE_CANDIDATES_MAX     100000

/* A quick search (search_request.quick_only): at most QUERY_QUICK_QUERIES query vectors,
 * QUERY_QUICK_LIMIT results each and efSearch QUERY_QUICK_EF; no threshold, page, count,
 * subset, rescoring, relevance or hubness; and either a built HNSW index (without dead
 * vectors beyond 1 in 16) or a scan of at most QUERY_QUICK_SCAN multiply-adds (no index,
 * or a Flat one). Such a search takes well under a millisecond. */
#define QUERY_QUICK_QUERIES 4
#define QUERY_QUICK_LIMIT   100
#define QUERY_QUICK_EF      1024
#define QUERY_QUICK_SCAN    (1u << 20)
/* query_run's answer to a quick_only request that is not quick: nothing was done. */
#define QUERY_DEFERRED 1

/* What results carry besides id and score (search_request.with). */
enum query_with {
	QUERY_WITH_TEXT = 1,
	QUERY_WITH_META = 2,
	QUERY_WITH_IMAGE = 4,
	QUERY_WITH_KIND = 8
};

/* The answer's format (search_request.hits). The binary one (lib/hits.h) holds ids and
 * scores: a search whose results carry more (with, filter scores, relevance, hubness,
 * rescoring) or search:count is answered in JSON, or refused (QUERY_ANSWER_HITS). */
enum query_answer {
	QUERY_ANSWER_JSON = 0,
	QUERY_ANSWER_HITS,         /* binary, else ERR_NOT_ACCEPTABLE */
	QUERY_ANSWER_HITS_OR_JSON  /* binary when it can hold the answer, else JSON */
};

/* Hubness normalisation of the results (search/normalizers.h): normalizer NULL for none. */
struct query_hubness {
	const char *normalizer;
	enum hubness_method method; /* HUBNESS_DUALIS by default; never HUBNESS_RAW */
	size_t candidates;          /* 1 to NORMALIZERS_CANDIDATES_MAX */
	int dualdis_mode;           /* -1: the normaliser's; else enum hubness_dualdis_mode */
};

/* One search request, as the wire formats decode it: every value is checked for its type
 * and range already (what needs the dataset, e.g. that the space exists or the subset is
 * one, is checked by query_run). Every pointer is borrowed for the duration of query_run.
 * query_request_init gives the defaults. */
struct search_request {
	const char *dataset;
	const char *space; /* NULL: the dataset's only space */
	/* The query: nq vectors of dim finite floats each (query_space_dim tells dim), or the
	 * vector of record record_id in query_space (NULL: space); vectors NULL then. */
	const float *vectors;
	size_t nq; /* 1 to QUERY_BATCH_MAX */
	uint32_t dim;
	const char *record_id;
	const char *query_space;
	int batch;    /* answer as a batch, {"queries": [...]}, even of one query */
	int count;    /* search:count: the number of matches only */
	size_t limit; /* 1 to QUERY_LIMIT_MAX */
	int has_threshold;
	double score_threshold; /* finite */
	int has_metric;         /* else the space's index decides (cosine without one) */
	enum index_metric metric;
	int exact;                      /* params.exact: score every record, never the index */
	long long ef_search;            /* params.ef_search, >= 1; 0: the index's default */
	long long nprobe;               /* params.nprobe, >= 1; 0: the index's default */
	unsigned with;                  /* enum query_with bits */
	const char *const *with_scores; /* names of filters whose scores results carry */
	size_t nwith_scores;
	const char *subset;        /* NULL, or only the subset's members are searched */
	const char *rescore;       /* NULL, or the filter that rescores the candidates */
	size_t rescore_candidates; /* 1 to QUERY_RESCORE_CANDIDATES_MAX */
	const char *relevance;     /* NULL, or the Cosine Adapter whose relevance results carry */
	double relevance_min;      /* NAN: annotate only; else in [0, 1): a threshold search */
	struct query_hubness hubness;
	const char *page_token; /* NULL, or the opaque token of the previous page */
	int quick_only;         /* 1: run only a quick search; else answer QUERY_DEFERRED */
	enum query_answer hits; /* QUERY_ANSWER_JSON by default */
};

/* Fill req with the defaults: no query, limit 10, no threshold, no options. */
void query_request_init(struct search_request *req);

/* The dimension of space (NULL: the only one) of dataset, that the query vectors must have
 * (the wire formats need it to decode them). ERR_NOT_FOUND for no such dataset,
 * ERR_INVALID "bad_query" for no such space. */
int query_space_dim(struct core *core, const char *dataset, const char *space, uint32_t *dim,
                    struct err *e);

/* Run req. *out new (free()), the answer as JSON text (*len bytes, NUL-terminated):
 * {"results": [...], "stats": {...}, "page_token": ...} or {"count": n, "stats": {...}},
 * or for a batch {"queries": [one of those per query]}; with req->hits, the binary answer
 * of lib/hits.h (a single query is a batch of one there; hits_is tells the two apart) as
 * req->hits asks, and ERR_NOT_ACCEPTABLE for QUERY_ANSWER_HITS when it cannot hold the
 * answer.
 * ERR_NOT_FOUND (dataset, subset, filter, adapter, normaliser, record), ERR_MALFORMED for a
 * bad or mismatched page token, ERR_INVALID for a request that does not fit the dataset or
 * combines options that do not combine (with a detail), ERR_CONFLICT (a normaliser not
 * ready), ERR_UNAVAILABLE (the index went away), ERR_NOMEM. QUERY_DEFERRED (positive)
 * when req->quick_only and the search is not quick (QUERY_QUICK_*): nothing was run and
 * *out is untouched; errors of the request itself are still answered. */
int query_run(struct core *core, const struct search_request *req, char **out, size_t *len,
              struct err *e);

#endif
