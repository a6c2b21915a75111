# SPDX-License-Identifier: MIT
"""Filters of issue 3 over HTTP: instances, versions, validation, scoring on ingest versus
pending, statistics against numpy, exact_dup, and the filter-types listing."""

import numpy as np

import curate
import wn
from curate import CLIP, SCHEMA
from wn import assert_eq, assert_problem, test

daemon = wn.Shared(log_level="info")
N = 20000
_pool = {}


def pool_ds():
    d = daemon()
    if "p" not in _pool:
        p = curate.Pool(N, seed=21, missing=0.01)
        assert_eq(d.put_dataset("f", SCHEMA)[0], 201)
        p.ingest(d, "f")
        curate.wait_job(d, curate.put_filter(d, "f", "clip", CLIP))
        _pool["p"] = p
    return d, _pool["p"]


@test
def stats_match_numpy():
    d, p = pool_ds()
    clip = p.clip()
    fin = clip[np.isfinite(clip)].astype(np.float64)
    st, _, s = d.get_json("/v1/datasets/f/filters/clip/stats?bins=7&threshold=0.25")
    assert_eq(st, 200)
    assert_eq((s["records"], s["count"], s["unscorable"], s["pending"]),
              (N, len(fin), int((~p.has_txt).sum()), 0), "counts")
    assert_eq(s["unscorable_by_reason"], {"no_vector": int((~p.has_txt).sum())})
    assert abs(s["min"] - fin.min()) < 1e-6 and abs(s["max"] - fin.max()) < 1e-6, s
    assert abs(s["mean"] - fin.mean()) < 1e-6, (s["mean"], fin.mean())
    f32 = clip[np.isfinite(clip)]
    for q, v in s["quantiles"].items():
        assert abs(v - float(np.quantile(f32, float(q)))) < 1e-6, (q, v)
    counts, edges = np.histogram(f32, bins=7, range=(float(f32.min()), float(f32.max())))
    assert_eq(s["histogram"]["counts"], counts.tolist(), "histogram counts")
    assert np.allclose(s["histogram"]["edges"], edges, atol=1e-6), s["histogram"]["edges"]
    assert_eq(s["at_or_above"], int((f32 >= np.float32(0.25)).sum()), "at_or_above")
    assert_problem(d.json("GET", "/v1/datasets/f/filters/clip/stats?bins=0"), 422, "bad_query")
    assert_problem(d.json("GET", "/v1/datasets/f/filters/clip/stats?threshold=x"), 422)
    assert_problem(d.json("GET", "/v1/datasets/f/filters/nope/stats"), 404, "filter_not_found")


@test
def definitions_versions_and_validation():
    d, p = pool_ds()
    bad = [
        ({"type": "nope"}, "unknown_filter_type"),
        ({"type": "clip_score", "params": {"image_space": "image"}}, "bad_param"),
        ({"type": "clip_score", "params": {"image_space": "image", "text_space": "x"}}, "bad_param"),
        ({"type": "clip_score", "params": dict(CLIP["params"], extra=1)}, "unknown_param"),
        ({"type": "basic", "params": {"min_side": "big"}}, "bad_param"),
        ({"type": "exact_dup", "params": {"key": "url"}}, "bad_param"),
        ({"type": "basic", "whatever": 1}, "unknown_field"),
        ({"params": {}}, "bad_filter"),
    ]
    for body, code in bad:
        assert_problem(d.json("PUT", "/v1/datasets/f/filters/clip", body), 422, code)
    assert_problem(d.request("PUT", "/v1/datasets/f/filters/clip", "{"), 400, "malformed_json")
    assert_problem(d.json("PUT", "/v1/datasets/nope/filters/clip", CLIP), 404)
    st, _, f = d.get_json("/v1/datasets/f/filters/clip")
    assert_eq((f["type"], f["version"], f["params"]), ("clip_score", 1, CLIP["params"]))
    assert_eq(f["scoring"]["state"], "succeeded")
    # the same definition: 200, nothing changes
    st, _, same = d.json("PUT", "/v1/datasets/f/filters/clip", CLIP)
    assert_eq((st, same["version"]), (200, 1))
    # other params: a new version, a new scoring job; the old scores are replaced
    swapped = {"type": "clip_score", "params": {"image_space": "text", "text_space": "image"}}
    curate.wait_job(d, curate.put_filter(d, "f", "clip2", CLIP))
    jid = curate.put_filter(d, "f", "clip2", swapped)
    curate.wait_job(d, jid)
    st, _, f2 = d.get_json("/v1/datasets/f/filters/clip2")
    assert_eq((f2["version"], f2["params"]), (2, swapped["params"]))
    st, _, s2 = d.get_json("/v1/datasets/f/filters/clip2/stats")
    assert_eq(s2["count"], int(p.has_txt.sum()))
    st, _, lst = d.get_json("/v1/datasets/f/filters")
    assert_eq([x["name"] for x in lst["filters"]], ["clip", "clip2"])
    assert_eq(d.request("DELETE", "/v1/datasets/f/filters/clip2")[0], 204)
    assert_problem(d.json("GET", "/v1/datasets/f/filters/clip2"), 404, "filter_not_found")
    assert_problem(d.json("DELETE", "/v1/datasets/f/filters/clip2"), 404)
    st, _, types = d.get_json("/v1/filter-types")
    names = [t["name"] for t in types["filter_types"]]
    assert_eq(names, ["basic", "clip_score", "exact_dup"])
    dup = [t for t in types["filter_types"] if t["name"] == "exact_dup"][0]
    assert_eq((dup["cheap"], dup["fits"], dup["reasons"]), (False, True, ["duplicate"]))


@test
def ingest_scores_cheap_filters_and_marks_others_pending():
    d = daemon()
    d.put_dataset("g", SCHEMA)
    p = curate.Pool(3000, seed=4, missing=0)
    recs = [p.record(i) for i in range(3000)]
    # duplicates: every 10th record has the image hash of record 0 (ids sort after it)
    for i in range(0, 3000, 10):
        recs[i]["image"]["sha256"] = "ab" * 32
    d.ingest("g", recs[:2000])
    curate.wait_job(d, curate.put_filter(d, "g", "clip", CLIP))
    curate.wait_job(d, curate.put_filter(d, "g", "dup", {"type": "exact_dup"}))
    st, _, s = d.get_json("/v1/datasets/g/filters/dup/stats")
    # records without an image hash are unscorable (no_field); hashed ones: first id kept
    group = sorted(p.ids[i] for i in range(0, 2000, 10))
    assert_eq(s["reasons"], {"duplicate": len(group) - 1}, "duplicates")
    assert_eq(s["unscorable_by_reason"], {"no_field": 2000 - len(group)})
    st, _, f = d.get_json("/v1/datasets/g/filters/dup")
    assert_eq((f["version"], f["fitted"]), (2, True), "a fit bumps the version")
    curate.wait_job(d, curate.put_subset(d, "g", "kept", [{"filter": "dup", "keep": True}]))
    _, body = curate.export(d, "g", "kept", "?format=ids")
    assert_eq(body.decode().split(), [group[0]], "the smallest id is kept")
    # later records: clip scores them during the ingest request, dup leaves them pending
    assert_eq(d.ingest("g", recs[2000:])[0], 200)
    st, _, sc = d.get_json("/v1/datasets/g/filters/clip/stats")
    assert_eq((sc["count"], sc["pending"]), (3000, 0), "clip scored on ingest")
    st, _, sd = d.get_json("/v1/datasets/g/filters/dup/stats")
    assert_eq(sd["pending"], 1000, "dup pending")
    jid = curate.put_subset(d, "g", "kept2", [{"filter": "dup", "keep": True}])
    j = curate.wait_job(d, jid, states=("failed",))
    assert_eq(j["error"]["code"], "filter_not_scored")
    curate.wait_job(d, curate.job_id(d.json("POST", "/v1/datasets/g/filters/dup:score")))
    st, _, sd = d.get_json("/v1/datasets/g/filters/dup/stats")
    group = sorted(p.ids[i] for i in range(0, 3000, 10))
    assert_eq((sd["pending"], sd["reasons"]), (0, {"duplicate": len(group) - 1}))
    # clip scores on ingest match numpy; an upsert with a new text vector is rescored
    lines, _ = curate.export_ndjson(d, "g", "kept", "?format=ndjson&fields=id,scores")
    ref = p.clip()
    i0 = p.ids.index(lines[0]["id"])
    assert abs(lines[0]["scores"]["clip"] - float(ref[i0])) < 1e-6
    up = p.record(i0)
    up["embeddings"]["text"] = curate.emb(p.img[i0])  # now identical: cosine 1
    d.ingest("g", [up])
    lines, _ = curate.export_ndjson(d, "g", "kept", "?format=ndjson&fields=id,scores")
    assert abs(lines[0]["scores"]["clip"] - 1.0) < 1e-6, lines[0]


@test
def basic_reasons_through_decisions():
    d = daemon()
    d.put_dataset("b", {"spaces": {"t": {"dim": 2}}})
    rows = [("ok", "a red bike", 640, 480, "scored"), ("few", "a b", 640, 480, "too_few_words"),
            ("short", "a b c", 640, 480, "too_short"), ("small", "a red bike", 199, 300, "small_image"),
            ("wide", "a red bike", 200, 601, "bad_aspect"), ("edge", "a red bike", 200, 600, "scored")]
    d.ingest("b", [{"id": i, "text": t, "image": {"width": w, "height": h},
                    "embeddings": {"t": [1, 0]}} for i, t, w, h, _ in rows])
    curate.wait_job(d, curate.put_filter(d, "b", "basic", {"type": "basic"}))
    curate.wait_job(d, curate.put_subset(d, "b", "good", [{"filter": "basic", "keep": True}]))
    for rid, _, _, _, status in rows:
        st, _, dec = d.get_json("/v1/datasets/b/records/%s/decisions?subset=good" % rid)
        assert_eq(dec["steps"][0]["status"], status, rid)
        assert_eq(dec["member"], status == "scored", rid)


if __name__ == "__main__":
    wn.main()
