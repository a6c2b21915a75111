/* SPDX-License-Identifier: MIT */
/* subset: materialised selections over filter scores and record fields, their provenance,
 * per-record decisions, and the snapshot export (NDJSON, ids, DataComp .npy).
 *
 * A subset is a document (namespace STORE_NS_SUBSET, key = its name) with the steps as given, the
 * provenance of its last materialisation, and the id of its `fate` row array (u8 per row):
 * SUBSET_FATE_OUT (0) for a row that was not a live record then, k (1..SUBSET_MAX_STEPS)
 * for a record dropped at step k, SUBSET_FATE_KEPT for a member. A materialisation job
 * computes a new fate array and swaps it in with the provenance in one transaction, so a
 * subset is always readable: the previous materialisation until the new one commits.
 *
 * Steps (each applies to the records the previous steps kept):
 *   {"filter": F, "top_fraction": f}      DataComp: k = floor(N f), keep score >= the
 *                                          (k+1)-th largest (spec section 0)
 *   {"filter": F, "bottom_fraction": f}   the mirror: keep score <= the (k+1)-th smallest
 *   {"filter": F, "threshold": t}         keep score >= t
 *   {"filter": F, "top_k": k}             exactly min(k, N): highest first, ties by smaller id
 *   {"filter": F, "top_k": {"tau": t}}    CoLoR-Filter (spec 2.2): k = floor(N / t), t >= 1
 *   {"filter": F, "bottom_k": k}          exactly min(k, N): lowest first, ties by smaller id
 *   {"filter": F, "keep": true|false}     0/1 filters: keep score 1 (true) or 0 (false)
 *   {"kind": "image-text" | "text" | [..]}
 *   {"meta": {"key": value | {"eq"|"ne"|"gt"|"gte"|"lt"|"lte": v} | {"in": [..]} |
 *             {"exists": bool}, ...}}     every key must match
 * N is the number of survivors with a finite score; a survivor the filter could not score
 * is dropped at that step (counted as "unscorable").
 *
 * Threading: any thread; the export object belongs to one thread at a time. */
#ifndef WINNOW_SUBSET_H
#define WINNOW_SUBSET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct core;
struct err;
struct job;
struct store_reader;
typedef struct json_t json_t;

#define SUBSET_MAX_STEPS 32
#define SUBSET_FATE_OUT 0
#define SUBSET_FATE_KEPT 255

/* Validate body {"steps": [...]} (borrowed) and start a materialisation job: *job its id,
 * *created 1 when the subset is new. *view new (the subset as GET shows it).
 * ERR_NOT_FOUND (dataset), ERR_INVALID (steps, unknown filters: with a detail). */
int subset_put(struct core *core, const char *dataset, const char *name, const json_t *body,
               json_t **view, uint64_t *job, int *created, struct err *e);

/* The router's probe (docs/scale.md, POST .../subsets:probe): apply body's "steps" (may be
 * empty) as a materialisation would, then describe filter's finite scores among the survivors:
 * {"survivors", "unscorable", "n", "min", "max", "below" (< lo), "above" (> hi), "in_range",
 * "bins" (counts over [lo, hi] in bins of equal width in select_float_key order), "values"
 * ([[score, count], ...] ascending when at most values_max distinct scores are in range,
 * else null), and with tie_score
 * "tie_count" and "tie_ids" (the smallest tie_ids ids scored exactly tie_score, bytewise)}.
 * *out new. ERR_NOT_FOUND (dataset), ERR_INVALID (body, steps, unknown filter), ERR_CONFLICT
 * (a filter still pending or being scored). */
int subset_probe(struct core *core, const char *dataset, const json_t *body, json_t **out,
                 struct err *e);

/* name, steps, state, job, provenance (null until materialised). *out new. */
int subset_get_json(struct core *core, const char *dataset, const char *name, json_t **out,
                    struct err *e);
int subset_list_json(struct core *core, const char *dataset, json_t **out, struct err *e);
int subset_delete(struct core *core, const char *dataset, const char *name, struct err *e);

/* For record id: for each step, its score, the step's threshold and the decision (kept,
 * dropped, not_reached). *out new. ERR_NOT_FOUND (dataset, record, subset), ERR_CONFLICT
 * when the subset was never materialised. */
int subset_decisions_json(struct core *core, const char *dataset, const char *id, size_t id_len,
                          const char *subset, json_t **out, struct err *e);

/* Membership of subset name in the reader's snapshot: *out new (free()), nrows bytes, 1 for
 * the members among rows [0, nrows) (as materialised; deleted records are not filtered here).
 * ERR_NOT_FOUND (slug subset_not_found), ERR_CONFLICT (not_materialised). */
int subset_members(struct store_reader *r, uint32_t ds, const char *name, uint64_t nrows,
                   uint8_t **out, struct err *e);

/* The job kind "subset". */
int subset_job_run(struct job *j, struct err *e);

/* ---- export ---- */

enum subset_format { SUBSET_NDJSON, SUBSET_IDS, SUBSET_NPY };

/* What an NDJSON line holds (bits). */
enum subset_field {
	SUBSET_F_ID = 1u << 0,
	SUBSET_F_SCORES = 1u << 1,
	SUBSET_F_TEXT = 1u << 2,
	SUBSET_F_META = 1u << 3,
	SUBSET_F_IMAGE = 1u << 4,
	SUBSET_F_EMBEDDINGS = 1u << 5,
	SUBSET_F_KIND = 1u << 6,
};

/* Parse a comma-separated field list ("id,scores,text"). ERR_INVALID for an unknown name. */
int subset_fields_parse(const char *s, unsigned *out, struct err *e);

struct subset_export;

/* Open an export of subset name: one snapshot (a read transaction held until close).
 * Members are split into slices contiguous parts in row order; slice_id picks one (0-based;
 * slices 1 = everything). For SUBSET_NPY every member id must be a DataComp uid (1..32 hex
 * digits): ERR_INVALID otherwise, before anything is sent; the file holds the slice's uids
 * sorted. summary: an NDJSON export ends with a {"summary": ...} line (asked for, since a
 * loader would read it as a member). *content_type gets a static string. *out new
 * (subset_export_close). */
int subset_export_open(struct core *core, const char *dataset, const char *name,
                       enum subset_format fmt, unsigned fields, unsigned slices,
                       unsigned slice_id, int summary, struct subset_export **out,
                       const char **content_type, struct err *e);

/* Copy up to max bytes of the export into buf: the count (> 0), 0 at the end, -1 on an
 * error (after which the stream ends; NDJSON exports write an error line first). */
ssize_t subset_export_read(struct subset_export *x, char *buf, size_t max);

void subset_export_close(struct subset_export *x);

#endif
