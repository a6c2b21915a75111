/* SPDX-License-Identifier: MIT */
/* gselect: exact global selection over the shards (docs/scale.md). Rewrites a subset's steps so
 * that each shard, materialising its own records, keeps exactly what one daemon holding every
 * record would keep: every step whose rule depends on the whole pool (top_fraction,
 * bottom_fraction, top_k, bottom_k, top_k {"tau"}) becomes a shard-side "cut" step with the
 * global threshold (and, for k rules, the id at which the ties stop), found from the shards'
 * POST .../subsets:probe answers; steps are resolved in order, each over the survivors of the
 * rewritten steps before it. Other steps pass unchanged.
 *
 * The value at a global rank: per-shard histograms over [lo, hi] in float key order
 * (select_float_key) narrow the range holding the rank (4,096 bins a round, so at most 4
 * rounds over 2^32 keys), until every shard can list its values in the range (at most 4,096
 * each), from which the exact value follows. Ties of a k rule: each shard lists its smallest
 * tied ids (as many as still needed), the router takes the needed-th smallest of the union.
 *
 * per_cluster fractions: the shards' cluster sizes summed, apportioned once (select_apportion),
 * each cluster's want[c]-th best by (score, id) found from the shards' own want[c] best, and the
 * step sent as a cut with one [label, score, id_max] per cluster. */
#ifndef WINNOW_GSELECT_H
#define WINNOW_GSELECT_H

#include <stddef.h>
#include <stdint.h>

struct err;
struct fanout;
typedef struct json_t json_t;

/* Rewrite steps (borrowed) of a subset of dataset into *out (new, {"steps": [...]}).
 * *rounds gets the probe round trips used. ERR_NOT_SUPPORTED (a step the router cannot make exact:
 * recommend; slug not_supported_by_router), ERR_GATEWAY (a shard unreachable), or
 * the error a shard answered (e.g. unknown filter): *shard_problem gets that answer (new),
 * with the status in *status. */
int gselect_rewrite(struct fanout *f, const char *dataset, const json_t *steps,
                    const char *request_id, json_t **out, unsigned *rounds,
                    json_t **shard_problem, int *status, struct err *e);

/* The finite score of filter at ascending index q (0-based) among every record of dataset
 * over the shards (the order statistic one daemon's sorted scores hold at q), with the count of
 * scores below it and equal to it. Errors as gselect_rewrite (ERR_GATEWAY shards_changed when
 * the counts moved between rounds). */
int gselect_value_at(struct fanout *f, const char *dataset, const char *filter, uint64_t q,
                     const char *request_id, float *v, uint64_t *less, uint64_t *equal,
                     json_t **shard_problem, int *status, struct err *e);

#endif
