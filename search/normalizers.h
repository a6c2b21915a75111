/* SPDX-License-Identifier: MIT */
/* normalizers: named hubness normalisers of a dataset space (spec 5.4): their banks, the per-row
 * statistics in the store, the statistics job, statistics on ingest, query-time rescoring
 * and the hubness report. The arithmetic is algo/hubness.c.
 *
 * A normaliser is a document (namespace STORE_NS_NORMALIZER, key = its name: space, betas, k, the
 * banks' definitions, version, ready, the id of its row array) plus two binary documents: the bank
 * vectors, L2-normalised (namespace STORE_NS_NORMALIZER_BANKS), and the top-k of every bank item
 * over the gallery (namespace STORE_NS_NORMALIZER_TOPK, the activation sets). Its row array holds
 * one struct hubness_stats per gallery row (16 bytes: log Z_q, log Z_g, r_B, flags).
 *
 * A PUT resolves the banks at once (vectors given inline, or read from a dataset space,
 * optionally a subset, sampled evenly), stores them, allocates a fresh row array and starts
 * a job ("hubness") that computes every row's statistics; the normaliser is "ready" when
 * that job commits its last chunk, and searches refuse it before (409). Records ingested
 * into a ready normaliser's space get their statistics in the ingest request; the top-k
 * sets are merged and the flags of rows that enter or leave them rewritten.
 *
 * Caveats: a deleted record leaves the activation sets, but the bank items it was in hold k - 1
 * (not the next best row) until a later ingest offers one; an upsert that changes a vector keeps
 * its old top-k entries. Threading: every function may be called from any thread; the store
 * serialises writes. */
#ifndef WINNOW_HUBNORM_H
#define WINNOW_HUBNORM_H

#include <stddef.h>
#include <stdint.h>

#include "algo/hubness.h"

struct core;
struct err;
struct job;
struct store_reader;
struct store_record;
struct store_schema;
typedef struct json_t json_t;

#define HUBNORM_DEFAULT_SAMPLE 10000 /* default gallery bank: this many gallery records */
#define HUBNORM_BANK_MAX 200000      /* items per bank */

/* PUT .../hubness/{name} with body (borrowed). Same definition as now: *job = 0, nothing
 * changes. Otherwise the banks are resolved and a statistics job created (*job).
 * *view new. ERR_NOT_FOUND (dataset, bank dataset or subset), ERR_INVALID (with detail). */
int normalizers_put(struct core *core, const char *dataset, const char *name, const json_t *body,
                json_t **view, uint64_t *job, int *created, struct err *e);
int normalizers_get_json(struct core *core, const char *dataset, const char *name, json_t **out,
                     struct err *e);
int normalizers_list_json(struct core *core, const char *dataset, json_t **out, struct err *e);
int normalizers_delete(struct core *core, const char *dataset, const char *name, struct err *e);

/* The job kind "hubness". */
int normalizers_job_run(struct job *j, struct err *e);

/* After ingest committed recs at rows (borrowed, n each) into dataset ds_id: statistics of
 * the new vectors for every ready normaliser of their space. Errors are logged, never fail
 * the ingest (the rows then keep no statistics and rank by their raw score). */
void normalizers_on_ingest(struct core *core, uint32_t ds_id, const struct store_schema *schema,
                       const struct store_record *recs, const uint64_t *rows, size_t n);

/* After the delete of the record at row of dataset ds_id committed: in one transaction, every
 * normaliser of the dataset forgets the row: its statistics are zeroed (flags 0: not computed,
 * as for a row without a vector) and it leaves the activation sets (the top-k of every bank
 * item; the item then holds k - 1 until a later ingest offers a row). The banks are a
 * sample fixed at the PUT: a deleted record that is a bank item stays one. Errors are logged;
 * nothing reads the statistics of a row that is not live. */
void normalizers_on_delete(struct core *core, uint32_t ds_id, uint64_t row);

/* ---- A gallery sharded over a cluster (docs/scale.md, "Corpus-wide models") ----
 * Every statistic of a row but its activation flags depends only on the row and the banks, so
 * a shard given the whole banks (inline, with "ids") computes them exactly. The activation
 * sets are the union of every bank item's top-k over the WHOLE gallery: each shard exports
 * its own top-k (normalizers_topk_json), the router keeps each item's k best of all shards and
 * sends the sets back (normalizers_activation). */

#define NORMALIZERS_STATS_MAX 10000 /* ids per :stats request */

/* GET .../hubness/{name}:topk: this daemon's top-k of every bank item, *out new:
 * {"normalizer", "version", "k", "query_bank": [[{"id", "score"}, ...], ...], "gallery_bank"}.
 * ERR_NOT_FOUND, ERR_CONFLICT (not ready). */
int normalizers_topk_json(struct core *core, const char *dataset, const char *name, json_t **out,
                          struct err *e);

/* POST .../hubness/{name}:activation with {"version", "in_aq": [ids], "in_ag": [ids]}
 * (borrowed): the flags of every row are rewritten from these sets (ids of other shards are
 * skipped) and the normaliser's "activation" becomes "global" (an ingest then makes it
 * "stale"). *out new (the view plus "activation_rows"). ERR_INVALID, ERR_NOT_FOUND,
 * ERR_CONFLICT (not ready, or another version). */
int normalizers_activation(struct core *core, const char *dataset, const char *name,
                           const json_t *body, json_t **out, struct err *e);

/* POST .../hubness/{name}:stats with {"ids": [...]} (borrowed, up to NORMALIZERS_STATS_MAX):
 * *out new {"normalizer", "version", "activation", "stats": [{"id", "log_zq", "log_zg",
 * "r_b", "in_aq", "in_ag"} or null, ...]}. ERR_INVALID, ERR_NOT_FOUND, ERR_CONFLICT. */
int normalizers_stats_json(struct core *core, const char *dataset, const char *name,
                           const json_t *body, json_t **out, struct err *e);

/* ---- Search ---- */
struct normalizers_query;

/* Query-time options: the candidates a search rescores by default and at most. */
#define NORMALIZERS_CANDIDATES_DEFAULT 100
#define NORMALIZERS_CANDIDATES_MAX 100000

/* Open normaliser name (borrowed) of ds_id, over the space named space_name, for a search
 * that rescores candidates (1 to NORMALIZERS_CANDIDATES_MAX) by method (not HUBNESS_RAW),
 * DualDIS in dualdis_mode (an enum hubness_dualdis_mode, or -1 for the normaliser's own),
 * reading through r: *out new (normalizers_query_free). ERR_NOT_FOUND, ERR_INVALID (a
 * normaliser of another space), ERR_CONFLICT (not ready). The request's options are
 * checked by the wire format that decodes them (api/search.c). */
int normalizers_query_open(struct store_reader *r, uint32_t ds_id, const char *space_name,
                           const char *name, enum hubness_method method, size_t candidates,
                           int dualdis_mode, struct normalizers_query **out, struct err *e);
void normalizers_query_free(struct normalizers_query *q);

/* Candidates the query wants rescored (at least 100 by default). */
size_t normalizers_query_candidates(const struct normalizers_query *q);

/* Rescore n candidates of one query: rows and raw cosines (borrowed, n), out (n) gets the
 * normalised scores, higher is better. Rows without statistics keep their raw score's rank
 * under CSLS and get -inf under the ratio methods. r: a reader of the dataset. */
int normalizers_rescore(const struct normalizers_query *q, struct store_reader *r, size_t n,
                    const uint64_t *rows, const float *raw, double *out, struct err *e);

/* ---- Report ---- */

/* POST .../hubness/{name}:report with {"queries": bank-like spec, "k": 10, "candidates":
 * 100, "method": "dualis", "top": 10} (borrowed): N_k and its skewness before and after the
 * normaliser, over exact brute-force top candidates. *out new. */
int normalizers_report(struct core *core, const char *dataset, const char *name, const json_t *body,
                   json_t **out, struct err *e);

#endif
