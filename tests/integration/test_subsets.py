# SPDX-License-Identifier: MIT
"""Subsets of issue 3: DataComp selection semantics against an independent numpy computation,
the .npy export byte for byte, slices, provenance counts, per-record decisions, every step
kind, and bad definitions."""

import io
import json

import numpy as np

import curate
import wn
from curate import CLIP, SCHEMA
from wn import assert_eq, assert_problem, test

daemon = wn.Shared(log_level="info")
POOL_N = 100000
_pool = {}


def pool_ds():
    """The 100,000-record pool with clip and basic filters, built once."""
    d = daemon()
    if "p" not in _pool:
        p = curate.Pool(POOL_N, seed=7)
        assert_eq(d.put_dataset("pool", SCHEMA)[0], 201)
        p.ingest(d, "pool")
        curate.wait_job(d, curate.put_filter(d, "pool", "clip", CLIP))
        curate.wait_job(d, curate.put_filter(d, "pool", "basic", {"type": "basic"}))
        _pool["p"] = p
    return d, _pool["p"]


@test
def spec_vector_keeps_one_extra():
    """Spec 1.6: scores [0.31, 0.22, 0.28, 0.35, 0.19, 0.30], f = 0.5 -> {0, 2, 3, 5}."""
    d = daemon()
    scores = [0.31, 0.22, 0.28, 0.35, 0.19, 0.30]
    d.put_dataset("spec", {"spaces": {"i": {"dim": 2}, "t": {"dim": 2}}})
    recs = []
    for k, s in enumerate(scores):
        recs.append({"id": "r%d" % k, "embeddings": {
            "i": curate.emb([1.0, 0.0]), "t": curate.emb([s, np.sqrt(1 - s * s)])}})
    assert_eq(d.ingest("spec", recs)[0], 200)
    curate.wait_job(d, curate.put_filter(
        d, "spec", "clip",
        {"type": "clip_score", "params": {"image_space": "i", "text_space": "t"}}))
    curate.wait_job(d, curate.put_subset(d, "spec", "half",
                                         [{"filter": "clip", "top_fraction": 0.5}]))
    _, body = curate.export(d, "spec", "half", "?format=ids")
    assert_eq(sorted(body.decode().split()), ["r0", "r2", "r3", "r5"], "keep set")
    st, _, sub = d.get_json("/v1/datasets/spec/subsets/half")
    step = sub["provenance"]["steps"][0]
    assert_eq((step["in"], step["out"]), (6, 4), "counts")
    assert abs(step["threshold"] - 0.28) < 1e-6, step
    assert_eq(sub["state"], "ready")
    assert_eq(sub["members"], 4)
    # the scores the daemon computed are numpy's cosines of the same float32 vectors, and
    # their ranking is the intended one (3, 0, 5, 2, 1, 4)
    ref = {}
    for k, s in enumerate(scores):
        x = np.array([1.0, 0.0], np.float32).astype(np.float64)
        t = np.array([s, np.sqrt(1 - s * s)], np.float32).astype(np.float64)
        ref["r%d" % k] = float(np.float32(x.dot(t) / np.sqrt(x.dot(x) * t.dot(t))))
    curate.wait_job(d, curate.put_subset(d, "spec", "all", [{"kind": "text"}]))
    lines, summary = curate.export_ndjson(d, "spec", "all", "?format=ndjson&fields=id,scores")
    assert_eq(summary["count"], 6)
    assert_eq([l["id"] for l in lines], ["r%d" % k for k in range(6)], "row order")
    got = {l["id"]: l["scores"]["clip"] for l in lines}
    for rid, want in ref.items():
        assert abs(got[rid] - want) < 1e-6, (rid, got[rid], want)
    assert_eq(sorted(got, key=lambda r: -got[r]), ["r3", "r0", "r5", "r2", "r1", "r4"], "ranking")
    st, _, dec = d.get_json("/v1/datasets/spec/records/r2/decisions?subset=half")
    assert_eq((dec["member"], dec["steps"][0]["decision"]), (True, "kept"), "r2 at the threshold")
    assert dec["steps"][0].get("stale") in (None, False), dec
    # a new version of the filter: the decisions flag the step as stale, the subset stays
    jid = curate.put_filter(d, "spec", "clip", {"type": "clip_score",
                                                "params": {"image_space": "t", "text_space": "i"}})
    curate.wait_job(d, jid)
    st, _, dec = d.get_json("/v1/datasets/spec/records/r2/decisions?subset=half")
    assert_eq((dec["member"], dec["steps"][0]["stale"]), (True, True), "stale step")
    st, _, sub = d.get_json("/v1/datasets/spec/subsets/half")
    assert_eq((sub["members"], sub["provenance"]["steps"][0]["version"]), (4, 1), "kept as made")


@test
def spec_npy_vector():
    """Spec 1.6: two uids give a 160-byte file with the given data bytes; a short uid is
    left-padded (so it sorts first)."""
    d = daemon()
    d.put_dataset("uids", {"spaces": {"t": {"dim": 2}}})
    u1, u2 = "139e4a9b22a614771f06c700a8ebe150", "6e356964a967af455c8016b75d691203"
    # ingested in the other order: the file is sorted whatever the row order
    assert_eq(d.ingest("uids", [{"id": u2, "kind": "text", "embeddings": {"t": [1, 0]}},
                                {"id": u1, "kind": "text", "embeddings": {"t": [0, 1]}}])[0], 200)
    curate.wait_job(d, curate.put_subset(d, "uids", "two", [{"kind": "text"}]))
    _, npy = curate.export(d, "uids", "two", "?format=npy")
    assert_eq(len(npy), 160, "file size")
    assert_eq(npy[128:].hex(), "7714a6229b4a9e1350e1eba800c7061f45af67a96469356e0312695db716805c",
              "data bytes")
    assert_eq(npy, curate.npy_bytes([u1, u2]), "np.save bytes")
    arr = np.load(io.BytesIO(npy))
    assert_eq(arr.tolist(), [(1413649363202610295, 2235693070683988304),
                             (7941369398997528389, 6665352425310327299)], "values")
    d.ingest("uids", [{"id": "ff", "kind": "text", "embeddings": {"t": [1, 1]}}])
    curate.wait_job(d, curate.put_subset(d, "uids", "three", [{"kind": "text"}]))
    _, npy = curate.export(d, "uids", "three", "?format=npy")
    assert_eq(npy, curate.npy_bytes([u1, u2, "ff"]), "np.save bytes with a short uid")
    assert_eq(np.load(io.BytesIO(npy))[0].tolist(), (0, 255), "the short uid first")


@test
def top_fraction_equals_numpy_on_100k():
    d, p = pool_ds()
    clip = p.clip()
    keep, thr = curate.top_fraction(clip, 0.3)
    # the keep set is only well defined if no score sits within float noise of the cut
    # the keep set is only well defined if no other score sits within float noise of the
    # cut: the scores next to the threshold are more than twice the score tolerance (1e-6)
    # away from it, so no rounding within that tolerance can move a record across the cut
    fin = np.unique(clip[np.isfinite(clip)])
    at = int(np.searchsorted(fin, thr))
    assert_eq(int((clip == thr).sum()), 1, "records at the threshold")
    assert fin[at + 1] - thr > 2e-6 and thr - fin[at - 1] > 2e-6, fin[at - 1:at + 2]
    curate.wait_job(d, curate.put_subset(d, "pool", "top30",
                                         [{"filter": "clip", "top_fraction": 0.3}]))
    in_rows = list(np.array(p.ids)[keep])  # ingest order is row order
    want = sorted(in_rows)
    _, body = curate.export(d, "pool", "top30", "?format=ids")
    got = body.decode().split("\n")
    assert_eq(got[-1], "", "ids end with a line break")
    got = got[:-1]
    assert_eq(len(got), len(want), "member count")
    assert sorted(got) == want, "keep sets differ"
    assert got == in_rows, "ids export not in row order"
    st, _, sub = d.get_json("/v1/datasets/pool/subsets/top30")
    step = sub["provenance"]["steps"][0]
    assert_eq(step["in"], POOL_N)
    assert_eq(step["unscorable"], int((~p.has_txt).sum()))
    assert_eq(step["out"], int(keep.sum()))
    assert abs(step["threshold"] - float(thr)) < 1e-6, (step, thr)
    # the .npy file: np.load gives the dtype, sorted, byte-identical to np.save of the set
    hdrs, npy = curate.export(d, "pool", "top30", "?format=npy")
    assert_eq(npy, curate.npy_bytes(want), "npy bytes")
    arr = np.load(io.BytesIO(npy))
    assert_eq(arr.dtype, np.dtype([("f0", "<u8"), ("f1", "<u8")]), "dtype")
    assert (np.sort(arr) == arr).all(), "not sorted"
    # slices: disjoint, complete, each npy sorted on its own
    parts = []
    for i in range(3):
        _, b = curate.export(d, "pool", "top30", "?format=ids&slices=3&slice_id=%d" % i)
        parts.append(b.decode().split())
        _, nb = curate.export(d, "pool", "top30", "?format=npy&slices=3&slice_id=%d" % i)
        assert_eq(nb, curate.npy_bytes(parts[-1]), "npy slice %d" % i)
    allp = [u for part in parts for u in part]
    assert_eq(len(allp), len(set(allp)), "slices overlap")
    assert_eq(sorted(allp), want, "slices union")
    assert allp == in_rows, "slices are not contiguous parts in row order"
    assert max(map(len, parts)) - min(map(len, parts)) <= 1, [len(x) for x in parts]
    # NDJSON with scores: a summary line last; scores as numpy's
    lines, summary = curate.export_ndjson(d, "pool", "top30",
                                          "?format=ndjson&fields=id,scores,meta")
    assert_eq(summary, {"subset": "top30", "count": len(want), "slices": 1, "slice_id": 0,
                        "skipped_deleted": 0}, "summary")
    assert_eq([l["id"] for l in lines], in_rows, "ndjson rows")
    assert_eq(sorted(lines[0]), ["id", "meta", "scores"], "fields")
    assert_eq(sorted(lines[0]["scores"]), ["basic", "clip"], "every filter's score")
    lines2, summary2 = curate.export_ndjson(
        d, "pool", "top30", "?format=ndjson&fields=id&slices=3&slice_id=2")
    assert_eq((summary2["count"], summary2["slices"], summary2["slice_id"]),
              (len(parts[2]), 3, 2), "slice summary")
    assert_eq([l["id"] for l in lines2], parts[2], "ndjson slice = ids slice")
    index = {u: i for i, u in enumerate(p.ids)}
    worst = max(abs(l["scores"]["clip"] - float(clip[index[l["id"]]])) for l in lines)
    assert worst < 1e-6, worst
    assert all(l["meta"]["n"] == index[l["id"]] % 10 for l in lines[:50])


def basic_reason(p, i):
    """The basic filter's status of record i with the default params (docs/filters.md: the
    first failed predicate, in the table's order)."""
    t, w, h = p.texts[i], int(p.width[i]), int(p.height[i])
    if len(t.split()) < 3:
        return "too_few_words"
    if len(t) < 6:
        return "too_short"
    if min(w, h) < 200:
        return "small_image"
    if max(w, h) / min(w, h) > 3.0:
        return "bad_aspect"
    return "scored"


@test
def two_steps_provenance_and_decisions():
    d, p = pool_ds()
    clip, basic = p.clip(), p.basic()
    keep1, thr = curate.top_fraction(clip, 0.3)
    keep2 = keep1 & (basic == 1)
    curate.wait_job(d, curate.put_subset(d, "pool", "two", [
        {"filter": "clip", "top_fraction": 0.3}, {"filter": "basic", "keep": True}]))
    st, _, sub = d.get_json("/v1/datasets/pool/subsets/two")
    s0, s1 = sub["provenance"]["steps"]
    assert_eq((s0["in"], s0["out"]), (POOL_N, int(keep1.sum())), "step 0")
    assert_eq((s1["in"], s1["out"]), (int(keep1.sum()), int(keep2.sum())), "step 1")
    assert_eq((s0["unscorable"], s1["unscorable"]), (int((~p.has_txt).sum()), 0), "unscorable")
    assert_eq((s0["version"], s1["version"], s1["type"]), (1, 1, "basic"))
    assert_eq(sub["members"], int(keep2.sum()))
    _, body = curate.export(d, "pool", "two", "?format=ids")
    assert_eq(sorted(body.decode().split()), sorted(np.array(p.ids)[keep2]), "members")
    assert_eq((s0["rule"], s0["filter"], s0["type"], s0["value"]),
              ("top_fraction", "clip", "clip_score", 0.3), "step 0 rule")
    assert_eq((s1["rule"], s1["filter"], s1["value"], s1["threshold"]),
              ("keep", "basic", True, 0.5), "step 1 rule")
    assert_eq((sub["provenance"]["pool"], sub["provenance"]["members"]),
              (POOL_N, int(keep2.sum())), "provenance totals")
    reasons = [basic_reason(p, i) for i in range(POOL_N)]
    assert_eq([r == "scored" for r in reasons], (basic == 1).tolist(), "numpy reasons vs basic")

    def decisions(i):
        st, _, dec = d.get_json("/v1/datasets/pool/records/%s/decisions?subset=two" % p.ids[i])
        assert_eq(st, 200, "decisions of %d" % i)
        assert_eq((dec["id"], dec["subset"]), (p.ids[i], "two"))
        assert_eq([x["step"] for x in dec["steps"]], [0, 1])
        for x, rule, filt, value, thr_ in ((dec["steps"][0], "top_fraction", "clip", 0.3, thr),
                                           (dec["steps"][1], "keep", "basic", True, 0.5)):
            assert_eq((x["rule"], x["filter"], x["value"]), (rule, filt, value), "step of %d" % i)
            assert abs(x["threshold"] - float(thr_)) < 1e-6, x
            assert "stale" not in x or x["stale"] is False, x
        return dec

    member = int(np.flatnonzero(keep2)[0])
    dm = decisions(member)
    assert_eq(dm["member"], True)
    assert_eq([(x["status"], x["decision"]) for x in dm["steps"]],
              [("scored", "kept"), ("scored", "kept")], "member")
    assert abs(dm["steps"][0]["score"] - float(clip[member])) < 1e-6
    assert_eq(dm["steps"][1]["score"], 1.0)
    out0 = int(np.flatnonzero(~keep1 & np.isfinite(clip))[0])
    d0 = decisions(out0)
    assert_eq(d0["member"], False)
    assert_eq([x["decision"] for x in d0["steps"]], ["dropped", "not_reached"])
    assert_eq(d0["steps"][0]["status"], "scored")
    assert abs(d0["steps"][0]["score"] - float(clip[out0])) < 1e-6
    # dropped at step 1, one record for each reason the pool produces: the exact reason
    seen = set()
    for i in np.flatnonzero(keep1 & (basic == 0)):
        if reasons[i] in seen:
            continue
        seen.add(reasons[i])
        d1 = decisions(int(i))
        assert_eq(d1["member"], False)
        assert_eq([(x["status"], x["decision"]) for x in d1["steps"]],
                  [("scored", "kept"), (reasons[i], "dropped")], "record %d" % i)
        assert_eq(d1["steps"][1]["score"], 0.0)
    assert_eq(seen, {"too_few_words", "small_image", "bad_aspect"}, "reasons covered")
    missing = int(np.flatnonzero(~p.has_txt)[0])
    st, _, dn = d.get_json("/v1/datasets/pool/records/%s/decisions?subset=two" % p.ids[missing])
    assert_eq((dn["steps"][0]["status"], dn["steps"][0]["decision"]), ("no_vector", "dropped"))
    assert_problem(d.json("GET", "/v1/datasets/pool/records/nope/decisions?subset=two"), 404,
                   "record_not_found")
    assert_problem(d.json("GET", "/v1/datasets/pool/records/%s/decisions?subset=nope" % p.ids[0]),
                   404, "subset_not_found")
    assert_problem(d.json("GET", "/v1/datasets/pool/records/%s/decisions" % p.ids[0]), 400)


@test
def other_steps_match_numpy():
    d, p = pool_ds()
    clip = p.clip()
    ids = np.array(p.ids)
    meta_n = np.arange(POOL_N) % 10
    lang_en = (np.arange(POOL_N) % 3) != 0
    cases = [
        ([{"filter": "clip", "threshold": 0.3}], np.isfinite(clip) & (clip >= np.float32(0.3))),
        ([{"meta": {"lang": "en"}}, {"meta": {"n": {"gte": 5}}}], lang_en & (meta_n >= 5)),
        ([{"meta": {"n": {"in": [1, 2]}}}], np.isin(meta_n, [1, 2])),
        ([{"kind": "text"}], np.zeros(POOL_N, bool)),
        ([{"kind": ["image-text", "text"]}, {"filter": "basic", "keep": False}], p.basic() == 0),
    ]
    bf_keep = None
    fin = clip[np.isfinite(clip)]
    n = int(np.floor(len(fin) * 0.2))
    thr = np.sort(fin)[n]
    bf_keep = np.isfinite(clip) & (clip <= thr)
    cases.append(([{"filter": "clip", "bottom_fraction": 0.2}], bf_keep))
    # top_fraction counts N over the survivors of the earlier steps, not the pool
    en_clip = np.where(lang_en, clip, np.nan)
    keep_en, thr_en = curate.top_fraction(en_clip, 0.5)
    assert_eq(int((en_clip == thr_en).sum()), 1, "ties at the survivors' threshold")
    cases.append(([{"meta": {"lang": "en"}}, {"filter": "clip", "top_fraction": 0.5}], keep_en))
    # top_k / bottom_k: the k best (worst) finite scores; the pool has no ties at these cuts
    order = np.argsort(-np.nan_to_num(clip, nan=-np.inf), kind="stable")
    assert clip[order[999]] != clip[order[1000]]
    top = np.zeros(POOL_N, bool)
    top[order[:1000]] = True
    cases.append(([{"filter": "clip", "top_k": 1000}], top))
    fin_rows = np.flatnonzero(np.isfinite(clip))
    low = np.zeros(POOL_N, bool)
    low[fin_rows[np.argsort(clip[fin_rows], kind="stable")[:500]]] = True
    cases.append(([{"filter": "clip", "bottom_k": 500}], low))
    cases.append(([{"filter": "clip", "top_k": 10 ** 9}], np.isfinite(clip)))
    cases += [
        ([{"meta": {"n": {"lt": 3}}}], meta_n < 3),
        # one operator per key: the daemon answers {"lte": 3, "gt": 1} with 422 bad_step
        ([{"meta": {"n": {"lte": 3}}}, {"meta": {"n": {"gt": 1}}}], (meta_n <= 3) & (meta_n > 1)),
        ([{"meta": {"lang": {"ne": "en"}}}], ~lang_en),
        ([{"meta": {"lang": {"in": ["de", "fr"]}, "n": {"eq": 4}}}], ~lang_en & (meta_n == 4)),
        ([{"meta": {"n": {"exists": True}}}], np.ones(POOL_N, bool)),
        ([{"meta": {"nope": {"exists": True}}}], np.zeros(POOL_N, bool)),
        ([{"meta": {"nope": {"exists": False}}}, {"filter": "basic", "keep": True}],
         p.basic() == 1),
    ]
    for k, (steps, want) in enumerate(cases):
        curate.wait_job(d, curate.put_subset(d, "pool", "c%d" % k, steps))
        _, body = curate.export(d, "pool", "c%d" % k, "?format=ids")
        got = sorted(body.decode().split())
        assert got == sorted(ids[want]), "case %d %s: %d vs %d" % (k, steps, len(got), want.sum())


@test
def top_k_breaks_ties_by_id():
    d = daemon()
    d.put_dataset("ties", {"spaces": {"i": {"dim": 2}, "t": {"dim": 2}}})
    # scores 0.9 (ids b, a), 0.5 x4 (ids d, c, f, e), 0.1
    spec = [("b", 0.9), ("a", 0.9), ("d", 0.5), ("c", 0.5), ("f", 0.5), ("e", 0.5), ("g", 0.1)]
    recs = [{"id": i, "embeddings": {"i": curate.emb([1, 0]),
                                     "t": curate.emb([s, np.sqrt(1 - s * s)])}}
            for i, s in spec]
    d.ingest("ties", recs)
    curate.wait_job(d, curate.put_filter(
        d, "ties", "s", {"type": "clip_score", "params": {"image_space": "i", "text_space": "t"}}))
    curate.wait_job(d, curate.put_subset(d, "ties", "k4", [{"filter": "s", "top_k": 4}]))
    _, body = curate.export(d, "ties", "k4", "?format=ids")
    assert_eq(sorted(body.decode().split()), ["a", "b", "c", "d"], "top_k 4")
    st, _, sub = d.get_json("/v1/datasets/ties/subsets/k4")
    step = sub["provenance"]["steps"][0]
    assert_eq((step["rule"], step["value"], step["in"], step["out"]), ("top_k", 4, 7, 4))
    assert abs(step["threshold"] - 0.5) < 1e-6, step  # the k-th score
    st, _, dec = d.get_json("/v1/datasets/ties/records/e/decisions?subset=k4")
    assert_eq((dec["member"], dec["steps"][0]["decision"]), (False, "dropped"), "a tie left out")
    curate.wait_job(d, curate.put_subset(d, "ties", "b2", [{"filter": "s", "bottom_k": 2}]))
    _, body = curate.export(d, "ties", "b2", "?format=ids")
    assert_eq(sorted(body.decode().split()), ["c", "g"], "bottom_k 2")


@test
def bad_definitions_change_nothing():
    d, p = pool_ds()
    bad = [
        ({"steps": []}, "bad_steps"),
        ({"steps": [{"filter": "clip"}]}, "bad_step"),
        ({"steps": [{"filter": "clip", "top_fraction": 0}]}, "bad_step"),
        ({"steps": [{"filter": "clip", "top_fraction": 1.5}]}, "bad_step"),
        ({"steps": [{"filter": "clip", "top_fraction": 0.3, "threshold": 0.2}]}, "bad_step"),
        ({"steps": [{"filter": "nope", "top_fraction": 0.3}]}, "unknown_filter"),
        ({"steps": [{"filter": "clip", "top_k": -1}]}, "bad_step"),
        ({"steps": [{"kind": "video"}]}, "bad_step"),
        ({"steps": [{"meta": {"n": {"gt": "x"}}}]}, "bad_step"),
        ({"steps": [{"filter": "clip", "top_fraction": 0.3}], "x": 1}, "unknown_field"),
    ]
    for body, code in bad:
        assert_problem(d.json("PUT", "/v1/datasets/pool/subsets/top30", body), 422, code)
    st, _, sub = d.get_json("/v1/datasets/pool/subsets/top30")
    assert_eq(sub["steps"], [{"filter": "clip", "top_fraction": 0.3}], "unchanged")
    assert_problem(d.request("PUT", "/v1/datasets/pool/subsets/x", "{nope"), 400, "malformed_json")
    assert_problem(d.json("GET", "/v1/datasets/pool/subsets/top30:export?format=csv"), 400)
    assert_problem(d.json("GET", "/v1/datasets/pool/subsets/top30:export?slices=2&slice_id=2"), 422)
    assert_problem(d.json("GET", "/v1/datasets/pool/subsets/nope:export"), 404)
    assert_problem(d.json("PUT", "/v1/datasets/nope/subsets/x",
                          {"steps": [{"kind": "text"}]}), 404)


@test
def npy_needs_uids():
    d = daemon()
    d.put_dataset("names", {"spaces": {"t": {"dim": 2}}})
    d.ingest("names", [{"id": "not-hex", "kind": "text", "embeddings": {"t": [1, 0]}}])
    curate.wait_job(d, curate.put_subset(d, "names", "all", [{"kind": "text"}]))
    assert_problem(d.json("GET", "/v1/datasets/names/subsets/all:export?format=npy"), 422,
                   "not_a_uid")
    _, body = curate.export(d, "names", "all", "?format=ids")
    assert_eq(body, b"not-hex\n")


@test
def export_is_a_snapshot_and_skips_deleted():
    d, p = pool_ds()
    curate.wait_job(d, curate.put_subset(d, "pool", "meta1", [{"meta": {"n": 1}}]))
    _, before = curate.export(d, "pool", "meta1", "?format=ids")
    ids = before.decode().split()
    assert_eq(d.request("DELETE", "/v1/datasets/pool/records/%s" % ids[0])[0], 204)
    lines, summary = curate.export_ndjson(d, "pool", "meta1")
    assert_eq(summary["count"], len(ids) - 1)
    assert_eq(summary["skipped_deleted"], 1)
    assert ids[0] not in {l["id"] for l in lines}
    d.ingest("pool", [p.record(p.ids.index(ids[0]))])  # back, with a new row
    st, _, dec = d.get_json("/v1/datasets/pool/records/%s/decisions?subset=meta1" % ids[0])
    assert_eq(dec["steps"][0]["decision"], "not_in_pool")


@test
def export_snapshot_while_ingest_goes_on():
    """An export started before deletes, upserts and new records streams the state of its
    start, whole; the next export sees the changes."""
    d, p = pool_ds()
    curate.wait_job(d, curate.put_subset(d, "pool", "every", [{"kind": "image-text"}]))
    _, body = curate.export(d, "pool", "every", "?format=ids")
    rows = body.decode().split()
    assert_eq(len(rows), POOL_N, "members")
    index = {u: i for i, u in enumerate(p.ids)}
    gone, changed = rows[-3:], rows[-10:-6]
    fresh = ["f%031d" % k for k in range(5)]
    conn = d.connection()
    try:
        conn.request("GET", "/v1/datasets/pool/subsets/every:export?format=ndjson"
                     "&fields=id,text,embeddings&summary=true")
        resp = conn.getresponse()
        assert_eq(resp.status, 200, "export status")
        head = resp.read(1 << 16)  # ~160 of ~100,000 lines: the stream is under way
        for u in gone:
            assert_eq(d.request("DELETE", "/v1/datasets/pool/records/%s" % u)[0], 204, "delete")
        ups = []
        for u in changed:
            r = p.record(index[u])
            r["text"] = "changed while exporting"
            ups.append(r)
        for k, u in enumerate(fresh):
            r = p.record(k)
            r["id"] = u
            ups.append(r)
        st, _, ans = d.ingest("pool", ups)
        assert_eq((st, ans["accepted"]), (200, len(ups)), "ingest during the export")
        rest = resp.read()
    finally:
        conn.close()
    lines = [json.loads(l) for l in (head + rest).decode().splitlines()]
    assert_eq(lines[-1]["summary"]["count"], POOL_N, "snapshot count")
    assert_eq(lines[-1]["summary"]["skipped_deleted"], 0)
    lines = lines[:-1]
    assert_eq([l["id"] for l in lines], rows, "snapshot members")
    for l in lines[-12:]:
        i = index[l["id"]]
        assert_eq(l["text"], p.texts[i], "snapshot text of %s" % l["id"])
        assert_eq(np.array(l["embeddings"]["image"], np.float32).tobytes(), p.img[i].tobytes(),
                  "f32 image vector of %s" % l["id"])
    # afterwards: the deletes are skipped, the upserts show, the new records are not members
    lines, summary = curate.export_ndjson(d, "pool", "every", "?format=ndjson&fields=id,text")
    assert_eq((summary["count"], summary["skipped_deleted"]), (POOL_N - 3, 3), "after")
    assert_eq([l["id"] for l in lines], rows[:-3], "members after")
    assert_eq([l["text"] for l in lines[-7:-3]], ["changed while exporting"] * 4, "upserts")


if __name__ == "__main__":
    wn.main()
