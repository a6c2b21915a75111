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
    # the daemon's own scores are numpy's within 1e-6 (its dot products may round the last
    # bit differently); bin counts depend on the last bit, so the histograms are checked
    # against numpy applied to the daemon's own scores
    curate.wait_job(d, curate.put_subset(d, "f", "all", [{"kind": "image-text"}]))
    lines, _ = curate.export_ndjson(d, "f", "all", "?format=ndjson&fields=id,scores")
    own = np.array([np.nan if l["scores"]["clip"] is None else l["scores"]["clip"]
                    for l in lines])
    assert_eq([l["id"] for l in lines], p.ids, "export rows")
    assert_eq(np.isfinite(own).tolist(), np.isfinite(clip).tolist(), "scorable records")
    assert np.abs(own[np.isfinite(own)] - clip[np.isfinite(clip)]).max() < 1e-6
    assert_eq(own[np.isfinite(own)].astype(np.float32).astype(np.float64).tolist(),
              own[np.isfinite(own)].tolist(), "scores are float32 values")
    # float64 values, as a client gets them from JSON (numpy.histogram of a float32 array
    # computes float32 edges, which can put a score lying on an edge in the other bin)
    f32 = own[np.isfinite(own)]
    assert_eq((s["min"], s["max"]), (float(f32.min()), float(f32.max())), "min, max exactly")
    for q, v in s["quantiles"].items():
        assert abs(v - float(np.quantile(f32, float(q)))) < 1e-6, (q, v)
    counts, edges = np.histogram(f32, bins=7, range=(float(f32.min()), float(f32.max())))
    assert_eq(s["histogram"]["counts"], counts.tolist(), "histogram counts")
    assert np.allclose(s["histogram"]["edges"], edges, atol=1e-6), s["histogram"]["edges"]
    assert_eq(s["at_or_above"], int((f32 >= np.float32(0.25)).sum()), "at_or_above")
    assert_eq((s["filter"], s["version"], s["threshold"], s["reasons"]), ("clip", 1, 0.25, {}))
    assert_eq(sorted(s["quantiles"], key=float),
              ["0.01", "0.05", "0.1", "0.25", "0.5", "0.75", "0.9", "0.95", "0.99"],
              "quantile keys")
    # the defaults: 10 bins, no threshold
    st, _, s10 = d.get_json("/v1/datasets/f/filters/clip/stats")
    counts, edges = np.histogram(f32, bins=10, range=(float(f32.min()), float(f32.max())))
    assert_eq(s10["histogram"]["counts"], counts.tolist(), "default histogram")
    assert_eq(sum(s10["histogram"]["counts"]), len(f32), "every score in a bin")
    assert "at_or_above" not in s10 or s10["at_or_above"] is None, s10
    st, _, s1000 = d.get_json("/v1/datasets/f/filters/clip/stats?bins=1000&threshold=-2")
    counts, _ = np.histogram(f32, bins=1000, range=(float(f32.min()), float(f32.max())))
    assert_eq(s1000["histogram"]["counts"], counts.tolist(), "1000 bins")
    assert_eq(s1000["at_or_above"], len(f32), "everything at or above -2")
    for bins in (71, 141, 997):  # 71 and 141 put a score on an edge with this pool
        st, _, sb = d.get_json("/v1/datasets/f/filters/clip/stats?bins=%d" % bins)
        counts, edges = np.histogram(f32, bins=bins, range=(float(f32.min()), float(f32.max())))
        assert_eq(sb["histogram"]["counts"], counts.tolist(), "%d bins" % bins)
        assert np.abs(np.array(sb["histogram"]["edges"]) - edges).max() < 1e-12, bins
    assert_problem(d.json("GET", "/v1/datasets/f/filters/clip/stats?bins=1001"), 400, "bad_query")
    assert_problem(d.json("GET", "/v1/datasets/f/filters/clip/stats?bins=0"), 400, "bad_query")
    assert_problem(d.json("GET", "/v1/datasets/f/filters/clip/stats?threshold=x"), 400)
    assert_problem(d.json("GET", "/v1/datasets/f/filters/nope/stats"), 404, "filter_not_found")


@test
def definitions_versions_and_validation():
    d, p = pool_ds()
    bad = [
        ({"type": "nope"}, "unknown_filter_type"),
        ({"type": "clip_score", "params": {"image_space": "image"}}, "bad_param"),
        ({"type": "clip_score", "params": {"image_space": "image", "text_space": "x"}},
         "bad_param"),
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
    assert_eq((f["name"], f["cheap"], f["fitted"]), ("clip", True, False), "instance")
    assert isinstance(f["created"], str) and isinstance(f["updated"], str), f
    sc = f["scoring"]
    assert_eq((sc["state"], sc["processed"], sc["total"], sc["error"]), ("succeeded", N, N, None))
    for key in ("rate_per_s", "eta_s"):
        assert key in sc, (key, sc)
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
    # other params of basic: a new version whose scores are the new params' (numpy's count)
    curate.wait_job(d, curate.put_filter(d, "f", "bb", {"type": "basic"}))
    st, _, sb = d.get_json("/v1/datasets/f/filters/bb/stats")
    assert_eq(sb["at_or_above"] if "at_or_above" in sb else None, None)
    st, _, sb = d.get_json("/v1/datasets/f/filters/bb/stats?threshold=1")
    assert_eq(sb["at_or_above"], int(p.basic().sum()), "basic keeps (v1)")
    loose = {"type": "basic", "params": {"min_words": 1, "min_side": 1, "max_aspect": 100}}
    curate.wait_job(d, curate.put_filter(d, "f", "bb", loose))
    st, _, sb = d.get_json("/v1/datasets/f/filters/bb/stats?threshold=1")
    assert_eq((sb["version"], sb["at_or_above"]),
              (2, sum(len(t) >= 6 for t in p.texts)), "basic keeps (v2)")
    # a rejected PUT leaves version 2 as it was
    assert_problem(d.json("PUT", "/v1/datasets/f/filters/bb",
                          {"type": "basic", "params": {"min_words": -1}}), 422, "bad_param")
    st, _, fb = d.get_json("/v1/datasets/f/filters/bb")
    assert_eq((fb["version"], fb["params"]["min_words"], fb["params"]["min_side"]), (2, 1, 1))
    assert_eq(d.request("DELETE", "/v1/datasets/f/filters/bb")[0], 204)
    st, _, lst = d.get_json("/v1/datasets/f/filters")
    assert_eq([x["name"] for x in lst["filters"]], ["clip", "clip2"])
    assert_eq(d.request("DELETE", "/v1/datasets/f/filters/clip2")[0], 204)
    assert_problem(d.json("GET", "/v1/datasets/f/filters/clip2"), 404, "filter_not_found")
    assert_problem(d.json("DELETE", "/v1/datasets/f/filters/clip2"), 404)
    st, _, types = d.get_json("/v1/filter-types")
    names = [t["name"] for t in types["filter_types"]]
    assert_eq(names, sorted(names), "sorted")  # other issues add types
    assert {"basic", "clip_score", "color", "color_ngram", "exact_dup", "prototypes", "semdedup"} <= set(names), names
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
    # later records: clip scores them during the ingest request (no job), dup leaves them
    # pending
    st, _, jobs_before = d.get_json("/v1/datasets/g/jobs?limit=1000")
    assert_eq(d.ingest("g", recs[2000:])[0], 200)
    st, _, sc = d.get_json("/v1/datasets/g/filters/clip/stats")
    assert_eq((sc["count"], sc["pending"]), (3000, 0), "clip scored on ingest")
    st, _, jobs_after = d.get_json("/v1/datasets/g/jobs?limit=1000")
    assert_eq(jobs_after["jobs"], jobs_before["jobs"], "no job for an ingest")
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
    # deleted records are not counted
    st, _, before = d.get_json("/v1/datasets/g/filters/clip/stats")
    assert_eq(d.request("DELETE", "/v1/datasets/g/records/%s" % p.ids[5])[0], 204)
    st, _, after = d.get_json("/v1/datasets/g/filters/clip/stats")
    assert_eq((after["records"], after["count"]), (before["records"] - 1, before["count"] - 1),
              "stats after a delete")
    assert abs(after["max"] - 1.0) < 1e-6, after


# (id, text, width, height, default-param status, status with the loose params below)
BASIC_ROWS = [
    ("ok", "a red bike", 640, 480, "scored", "scored"),
    ("few", "a b", 640, 480, "too_few_words", "scored"),
    ("short", "a b c", 640, 480, "too_short", "scored"),
    ("seven", "ab cd e", 640, 480, "scored", "scored"),       # 3 words, 7 chars
    ("six", "ab c d", 640, 480, "scored", "scored"),          # exactly min_chars
    ("small", "a red bike", 199, 300, "small_image", "scored"),
    ("side", "a red bike", 200, 300, "scored", "scored"),     # exactly min_side
    ("wide", "a red bike", 200, 601, "bad_aspect", "scored"),
    ("tall", "a red bike", 601, 200, "bad_aspect", "scored"),
    ("edge", "a red bike", 200, 600, "scored", "scored"),     # aspect exactly 3
    ("first", "a b", 100, 1000, "too_few_words", "bad_aspect"),  # the first failure wins
    # code points, not bytes: 5 code points in 6 bytes is too short
    ("utf8", "\u00e9 b c", 640, 480, "too_short", "scored"),
    # Unicode whitespace splits words: U+3000 and U+00A0 give 3 words (ASCII splitting, 1)
    ("ideo", "ab\u3000cd\u00a0ef", 640, 480, "scored", "scored"),
    ("tabs", " \tab\n\ncd  ", 640, 480, "too_few_words", "scored"),
    ("one", "abcdefghij", 640, 480, "too_few_words", "too_few_words"),
]
LOOSE = {"min_words": 2, "min_chars": 3, "min_side": 100, "max_aspect": 5.0}


@test
def basic_reasons_through_decisions_and_export():
    d = daemon()
    d.put_dataset("b", {"spaces": {"t": {"dim": 2}}})
    recs = [{"id": i, "text": t, "image": {"url": "file:///x", "width": w, "height": h},
             "embeddings": {"t": [1, 0]}} for i, t, w, h, _, _ in BASIC_ROWS]
    # unscorable: no text, no size, text-only with require_image (default true)
    recs += [{"id": "notext", "image": {"width": 640, "height": 480}},
             {"id": "nosize", "text": "a red bike", "image": {"url": "file:///x"}},
             {"id": "textonly", "kind": "text", "text": "a red bike"}]
    st, _, ans = d.ingest("b", recs)
    assert_eq((st, ans["accepted"]), (200, len(recs)), "ingest")
    curate.wait_job(d, curate.put_filter(d, "b", "basic", {"type": "basic"}))
    curate.wait_job(d, curate.put_filter(d, "b", "loose", {"type": "basic", "params": LOOSE}))
    curate.wait_job(d, curate.put_subset(d, "b", "good", [{"filter": "basic", "keep": True}]))
    want = {r[0]: r[4] for r in BASIC_ROWS}
    want.update(notext="no_field", nosize="no_field", textonly="no_field")
    for rid, status in want.items():
        st, _, dec = d.get_json("/v1/datasets/b/records/%s/decisions?subset=good" % rid)
        assert_eq(dec["steps"][0]["status"], status, rid)
        assert_eq(dec["member"], status == "scored", rid)
    # every score through an export of everything
    curate.wait_job(d, curate.put_subset(d, "b", "all", [{"kind": ["image-text", "text"]}]))
    lines, summary = curate.export_ndjson(d, "b", "all", "?format=ndjson&fields=id,scores")
    assert_eq(summary["count"], len(recs))
    got = {l["id"]: (l["scores"]["basic"], l["scores"]["loose"]) for l in lines}
    for rid, t, w, h, status, loose in BASIC_ROWS:
        assert_eq(got[rid], (1.0 if status == "scored" else 0.0, 1.0 if loose == "scored" else 0.0),
                  "scores of %s" % rid)
    for rid in ("notext", "nosize", "textonly"):
        assert_eq(got[rid], (None, None), "unscorable %s" % rid)
    _, body = curate.export(d, "b", "good", "?format=ids")
    assert_eq(body.decode().split(), [r[0] for r in BASIC_ROWS if r[4] == "scored"], "members")
    st, _, s = d.get_json("/v1/datasets/b/filters/basic/stats")
    counts = {}
    for r in BASIC_ROWS:
        if r[4] != "scored":
            counts[r[4]] = counts.get(r[4], 0) + 1
    assert_eq((s["count"], s["unscorable"], s["reasons"], s["unscorable_by_reason"]),
              (len(BASIC_ROWS), 3, counts, {"no_field": 3}), "basic stats")
    # text-only records are judged on their caption with require_image false
    curate.wait_job(d, curate.put_filter(d, "b", "txt", {"type": "basic",
                                                         "params": {"require_image": False}}))
    lines, _ = curate.export_ndjson(d, "b", "all", "?format=ndjson&fields=id,scores")
    got = {l["id"]: l["scores"]["txt"] for l in lines}
    assert_eq((got["textonly"], got["nosize"], got["few"]), (1.0, None, 0.0), "require_image false")


@test
def exact_dup_keeps_the_smallest_id_of_each_group():
    d = daemon()
    d.put_dataset("dup", {"spaces": {}})
    h = lambda c: c * 64  # noqa: E731
    # groups by image hash (either case): {b, a1, a} -> "a" (a proper prefix first),
    # {z, y} -> "y", {c} alone; "B" < "a" bytewise. Text key: normalised captions.
    rows = [("b", h("1"), "A  Red\tbike "), ("a1", h("1"), "a red bike"), ("a", h("1"), "x y z"),
            ("z", h("e"), "a red bike"), ("y", h("E"), "x  y z"), ("c", h("2"), "other"),
            ("B", h("3"), "a RED bike"), ("aa", h("3"), "\u00e9t\u00e9"),
            ("ab", h("4"), "\u00c9t\u00e9")]
    recs = [{"id": i, "text": t, "image": {"url": "file:///x", "sha256": sha, "width": 300,
                                           "height": 300}} for i, sha, t in rows]
    recs.append({"id": "nohash", "text": "x y z", "image": {"url": "file:///x"}})
    st, _, ans = d.ingest("dup", recs + [
        {"id": "badhash", "text": "q", "image": {"url": "file:///x", "sha256": "xyz"}}])
    assert_eq((st, ans["accepted"], [(e["line"], e["code"]) for e in ans["errors"]]),
              (200, len(recs), [(len(recs) + 1, "invalid_field")]), "ingest")
    curate.wait_job(d, curate.put_filter(d, "dup", "img", {"type": "exact_dup"}))
    curate.wait_job(d, curate.put_filter(d, "dup", "txt", {"type": "exact_dup",
                                                           "params": {"key": "text"}}))
    curate.wait_job(d, curate.put_subset(d, "dup", "all", [{"kind": "image-text"}]))
    lines, _ = curate.export_ndjson(d, "dup", "all", "?format=ndjson&fields=id,scores")
    got = {l["id"]: (l["scores"]["img"], l["scores"]["txt"]) for l in lines}
    # image: a, y, c, B first of their groups; text: "a red bike" x4 -> "B"; "x y z" x3 ->
    # "a"; "other"; the two accented captions differ (only ASCII letters are lower-cased)
    want = {"b": (0.0, 0.0), "a1": (0.0, 0.0), "a": (1.0, 1.0), "z": (0.0, 0.0), "y": (1.0, 0.0),
            "c": (1.0, 1.0), "B": (1.0, 1.0), "aa": (0.0, 1.0), "ab": (1.0, 1.0),
            "nohash": (None, 0.0)}
    assert_eq(got, want, "exact_dup scores")
    st, _, s = d.get_json("/v1/datasets/dup/filters/img/stats")
    assert_eq((s["reasons"], s["unscorable_by_reason"]),
              ({"duplicate": 4}, {"no_field": 1}), "img stats")
    st, _, s = d.get_json("/v1/datasets/dup/filters/txt/stats")
    assert_eq((s["count"], s["reasons"]), (10, {"duplicate": 5}), "txt stats")
    curate.wait_job(d, curate.put_subset(d, "dup", "firsts", [{"filter": "img", "keep": True}]))
    st, _, dec = d.get_json("/v1/datasets/dup/records/b/decisions?subset=firsts")
    assert_eq((dec["steps"][0]["status"], dec["steps"][0]["decision"]), ("duplicate", "dropped"))


if __name__ == "__main__":
    wn.main()
