/* SPDX-License-Identifier: MIT */
/* select: selection primitives over score arrays (keep top/bottom fraction, threshold, top-k).
 *
 * Owns nothing: pure functions over a caller's array of float scores indexed by row. Scores
 * are "higher is better" unless a function says otherwise. Thread-safe (no state); the
 * fraction and k functions allocate a temporary copy of the finite scores.
 *
 * Unscorable rows: a score that is not finite (NaN, +inf, -inf) is never kept and is never a
 * candidate for a threshold. Everywhere below, N = the number of finite scores among the n
 * given, not n.
 *
 * Cost: thresholds come from an introselect (median-of-3 quickselect with a 3-way partition,
 * falling back to a median-of-medians pivot after a partition that shrank the range by less
 * than a quarter), so every function here is O(n) time and O(N) extra memory, except the
 * id tie-break of select_top_k/select_bottom_k, which sorts the rows tied at the threshold.
 *
 * keep arrays: where a function takes `uint8_t *keep` (borrowed, n entries, may be NULL to
 * only count), it writes keep[i] = 1 for every kept row and 0 for every other row. */
#ifndef WINNOW_SELECT_H
#define WINNOW_SELECT_H

#include <stddef.h>
#include <stdint.h>

/* Keep the top fraction f with DataComp semantics (spec section 0, 1.3): k = floor(N*f),
 * threshold = the (k+1)-th largest finite score (index k of the descending order), keep
 * every finite score >= threshold, i.e. at least k+1 rows (one extra, plus all ties).
 * f must be in (0, 1]. f = 1 (or any f with floor(N*f) >= N) keeps every finite score with
 * threshold = the smallest finite score; the reference raises an index error there instead.
 * N = 0: returns 0 with *thr_out = NaN and *kept_out = 0.
 * scores: borrowed, n entries (may be NULL only when n == 0). thr_out, kept_out, keep: borrowed
 * outputs, each may be NULL.
 * Returns 0, ERR_INVALID (f NaN, <= 0 or > 1; scores NULL with n > 0; outputs untouched),
 * ERR_NOMEM (outputs untouched). */
int select_top_fraction(const float *scores, size_t n, double f, float *thr_out,
			size_t *kept_out, uint8_t *keep);

/* Mirror of select_top_fraction for "lowest is wanted" (e.g. SSP easy examples): k =
 * floor(N*f), threshold = the (k+1)-th smallest finite score, keep every finite score <=
 * threshold. f = 1 keeps all with threshold = the largest finite score. Same arguments,
 * ownership and return codes as select_top_fraction. */
int select_bottom_fraction(const float *scores, size_t n, double f, float *thr_out,
			   size_t *kept_out, uint8_t *keep);

/* Keep every finite score >= t (spec 1.3 `--threshold`). t may be +-inf but not NaN.
 * scores: borrowed, n entries (NULL only when n == 0). kept_out, keep: borrowed outputs, may
 * be NULL. Returns 0 or ERR_INVALID (t NaN, scores NULL with n > 0; outputs untouched). */
int select_threshold_count(const float *scores, size_t n, float t, size_t *kept_out,
			   uint8_t *keep);

/* Keep exactly min(k, N) finite scores: the highest first; among equal scores the smaller id
 * (bytewise as strcmp: unsigned bytes, a proper prefix sorts first), then the smaller row;
 * with ids == NULL, the smaller row. Deterministic for any input.
 * ids: borrowed, NULL or n non-NULL NUL-terminated strings. kept_out, keep: borrowed outputs,
 * may be NULL. Returns 0, ERR_INVALID (scores NULL with n > 0, a NULL entry in ids among
 * the rows tied at the threshold; outputs untouched), ERR_NOMEM (outputs untouched). */
int select_top_k(const float *scores, size_t n, size_t k, const char *const *ids,
		 size_t *kept_out, uint8_t *keep);

/* Mirror of select_top_k: keep exactly min(k, N) finite scores, the lowest first; ties as in
 * select_top_k (smaller id, then smaller row). Same arguments and return codes. */
int select_bottom_k(const float *scores, size_t n, size_t k, const char *const *ids,
		    size_t *kept_out, uint8_t *keep);

/* CoLoR-Filter's selection size (spec 2.2): *k_out = floor(N / tau), N being the number of
 * finite scores the caller will pass to select_top_k. tau is the number of candidates per
 * selected row and must be finite and >= 1. k_out: borrowed, required.
 * Returns 0 or ERR_INVALID (tau NaN, inf or < 1, k_out NULL; *k_out untouched). */
int select_color_k(size_t n_finite, double tau, size_t *k_out);

/* Apportion total kept rows among k groups (clusters) of sizes[c] rows, for a per-cluster
 * fraction: out[c] rows of group c, with sum(out) == total exactly (the global round(f * N)
 * the caller asks for, where rounding every group on its own would not add up).
 *
 * Largest remainders (Hamilton): group c's quota is total * sizes[c] / N (N = sum of sizes);
 * it gets floor(quota), and the seats left over go one each to the groups with the largest
 * fractional parts, ties to the smaller index. Computed in integers (quota remainders are
 * (total * sizes[c]) mod N), so the result does not depend on floating-point rounding.
 *
 * A minimum per group: every non-empty group gets at least min(m, sizes[c]) rows, where m is
 * min_each lowered to the largest value the budget allows (sum of min(m, sizes[c]) <= total;
 * m = 0 when total is below the number of non-empty groups). A group whose Hamilton share is
 * below its minimum gets the minimum instead, and the groups not so raised share what is left
 * by largest remainders again (repeated until no share is below its minimum), so the minimum
 * only changes the groups it lifts and the total stays exact.
 *
 * sizes: borrowed, k entries; out: borrowed output, k entries; *min_applied gets m (may be
 * NULL). Returns 0, ERR_INVALID (total > N, N >= 2^32, sizes or out NULL with k > 0; outputs
 * untouched), ERR_NOMEM (outputs untouched). */
int select_apportion(const uint64_t *sizes, size_t k, uint64_t total, uint64_t min_each,
                     uint64_t *out, uint64_t *min_applied);

/* The order-preserving key of a float: a < b (as floats, not NaN) exactly when
 * select_float_key(a) < select_float_key(b); -0 and +0 share the key of +0. Used to bin scores
 * by their representable values (the router's global selection, docs/scale.md). */
uint32_t select_float_key(float v);

/* The float of a key (the inverse of select_float_key; never -0). */
float select_key_float(uint32_t k);

#endif
