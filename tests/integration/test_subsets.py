# SPDX-License-Identifier: MIT
"""Subsets of issue 3: DataComp selection semantics against an independent numpy computation,
the .npy export byte for byte, slices, provenance counts, per-record decisions, every step
kind, and bad definitions."""

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
        d, "spec", "clip", {"type": "clip_score", "params": {"image_space": "i", "text_space": "t"}}))
    curate.wait_job(d, curate.put_subset(d, "spec", "half", [{"filter": "clip", "top_fraction": 0.5}]))
    _, body = curate.export(d, "spec", "half", "?format=ids")
    assert_eq(sorted(body.decode().split()), ["r0", "r2", "r3", "r5"], "keep set")
    st, _, sub = d.get_json("/v1/datasets/spec/subsets/half")
    step = sub["provenance"]["steps"][0]
    assert_eq((step["in"], step["out"]), (6, 4), "counts")
    assert abs(step["threshold"] - 0.28) < 1e-6, step
    assert_eq(sub["state"], "ready")
    assert_eq(sub["members"], 4)


@test
def top_fraction_equals_numpy_on_100k():
    d, p = pool_ds()
    clip = p.clip()
    keep, thr = curate.top_fraction(clip, 0.3)
    # the keep set is only well defined if no score sits within float noise of the cut
    fin = np.sort(clip[np.isfinite(clip)])
    near = fin[np.abs(fin - thr) < 1e-6]
    assert len(near) == 1, "scores within 1e-6 of the threshold: %r" % near
    curate.wait_job(d, curate.put_subset(d, "pool", "top30", [{"filter": "clip", "top_fraction": 0.3}]))
    want = sorted(np.array(p.ids)[keep])
    _, body = curate.export(d, "pool", "top30", "?format=ids")
    got = sorted(body.decode().split())
    assert_eq(len(got), len(want), "member count")
    assert got == want, "keep sets differ"
    st, _, sub = d.get_json("/v1/datasets/pool/subsets/top30")
    step = sub["provenance"]["steps"][0]
    assert_eq(step["in"], POOL_N)
    assert_eq(step["unscorable"], int((~p.has_txt).sum()))
    assert_eq(step["out"], int(keep.sum()))
    assert abs(step["threshold"] - float(thr)) < 1e-6, (step, thr)
    # the .npy file: np.load gives the dtype, sorted, byte-identical to np.save of the set
    hdrs, npy = curate.export(d, "pool", "top30", "?format=npy")
    assert_eq(npy, curate.npy_bytes(want), "npy bytes")
    import io
    arr = np.load(io.BytesIO(npy))
    assert_eq(arr.dtype, np.dtype([("f0", "<u8"), ("f1", "<u8")]), "dtype")
    assert (np.sort(arr) == arr).all(), "not sorted"
    # slices: disjoint, complete, each npy sorted on its own
    parts, npy_parts = [], []
    for i in range(3):
        _, b = curate.export(d, "pool", "top30", "?format=ids&slices=3&slice_id=%d" % i)
        parts.append(b.decode().split())
        _, nb = curate.export(d, "pool", "top30", "?format=npy&slices=3&slice_id=%d" % i)
        assert_eq(nb, curate.npy_bytes(parts[-1]), "npy slice %d" % i)
    allp = [u for part in parts for u in part]
    assert_eq(len(allp), len(set(allp)), "slices overlap")
    assert_eq(sorted(allp), want, "slices union")
    assert max(map(len, parts)) - min(map(len, parts)) <= 1, [len(x) for x in parts]
    # NDJSON with scores: a summary line last; scores as numpy's
    lines, summary = curate.export_ndjson(d, "pool", "top30", "?format=ndjson&fields=id,scores,meta")
    assert_eq(summary["count"], len(want))
    index = {u: i for i, u in enumerate(p.ids)}
    worst = max(abs(l["scores"]["clip"] - float(clip[index[l["id"]]])) for l in lines)
    assert worst < 1e-6, worst
    assert all(l["meta"]["n"] == index[l["id"]] % 10 for l in lines[:50])


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
    assert_eq(s1["unscorable"], 0)
    assert_eq((s0["version"], s1["version"], s1["type"]), (1, 1, "basic"))
    assert_eq(sub["members"], int(keep2.sum()))
    _, body = curate.export(d, "pool", "two", "?format=ids")
    assert_eq(sorted(body.decode().split()), sorted(np.array(p.ids)[keep2]), "members")
    member = int(np.flatnonzero(keep2)[0])
    out0 = int(np.flatnonzero(~keep1 & np.isfinite(clip))[0])
    out1 = int(np.flatnonzero(keep1 & (basic == 0))[0])
    st, _, dm = d.get_json("/v1/datasets/pool/records/%s/decisions?subset=two" % p.ids[member])
    assert_eq(st, 200)
    assert_eq(dm["member"], True)
    assert_eq([x["decision"] for x in dm["steps"]], ["kept", "kept"])
    assert abs(dm["steps"][0]["score"] - float(clip[member])) < 1e-6
    st, _, d0 = d.get_json("/v1/datasets/pool/records/%s/decisions?subset=two" % p.ids[out0])
    assert_eq([x["decision"] for x in d0["steps"]], ["dropped", "not_reached"])
    assert d0["steps"][0]["score"] < d0["steps"][0]["threshold"], d0
    st, _, d1 = d.get_json("/v1/datasets/pool/records/%s/decisions?subset=two" % p.ids[out1])
    assert_eq([x["decision"] for x in d1["steps"]], ["kept", "dropped"])
    assert_eq(d1["steps"][1]["score"], 0.0)
    assert d1["steps"][1]["status"] in ("too_few_words", "too_short", "small_image", "bad_aspect"), d1
    missing = int(np.flatnonzero(~p.has_txt)[0])
    st, _, dn = d.get_json("/v1/datasets/pool/records/%s/decisions?subset=two" % p.ids[missing])
    assert_eq((dn["steps"][0]["status"], dn["steps"][0]["decision"]), ("no_vector", "dropped"))
    assert_problem(d.json("GET", "/v1/datasets/pool/records/nope/decisions?subset=two"), 404,
                   "record_not_found")
    assert_problem(d.json("GET", "/v1/datasets/pool/records/%s/decisions?subset=nope" % p.ids[0]),
                   404, "subset_not_found")
    assert_problem(d.json("GET", "/v1/datasets/pool/records/%s/decisions" % p.ids[0]), 422)


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
    recs = [{"id": i, "embeddings": {"i": curate.emb([1, 0]), "t": curate.emb([s, np.sqrt(1 - s * s)])}}
            for i, s in spec]
    d.ingest("ties", recs)
    curate.wait_job(d, curate.put_filter(
        d, "ties", "s", {"type": "clip_score", "params": {"image_space": "i", "text_space": "t"}}))
    curate.wait_job(d, curate.put_subset(d, "ties", "k4", [{"filter": "s", "top_k": 4}]))
    _, body = curate.export(d, "ties", "k4", "?format=ids")
    assert_eq(sorted(body.decode().split()), ["a", "b", "c", "d"], "top_k 4")
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
    assert_problem(d.json("GET", "/v1/datasets/pool/subsets/top30:export?format=csv"), 422)
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


if __name__ == "__main__":
    wn.main()
