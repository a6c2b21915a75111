# SPDX-License-Identifier: MIT
"""CoLoR-Filter (issue 5) over HTTP: the color filter from pushed signals against numpy,
signals patched onto existing records (one by PATCH, many by NDJSON), all or nothing,
durable across a SIGKILL, rescoring of the patched rows, and the selections (top_k with
tau, top_fraction, threshold) on color scores against independent numpy rules."""

import json
import math

import numpy as np

import curate
import wn
from curate import CLIP, SCHEMA
from wn import assert_eq, assert_problem, test

daemon = wn.Shared(log_level="info")
N = 3000
COLOR = {"type": "color", "params": {}}
_st = {}


def triples(n, seed):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, 200, n)
    prior = np.round(rng.gamma(4.0, 1.0, n) * tokens, 3)
    cond = np.round(prior - rng.normal(0.1, 0.5, n) * tokens, 3)
    cond = np.maximum(cond, 0)
    return prior, cond, tokens


def mean_scores(prior, cond, tokens):
    return ((prior - cond) / tokens).astype(np.float32)


def setup():
    """A pool whose first half carries signals at ingest; the second half gets them later."""
    d = daemon()
    if "p" in _st:
        return d, _st["p"]
    p = curate.Pool(N, seed=5)
    prior, cond, tokens = triples(N, 6)
    assert_eq(d.put_dataset("c", SCHEMA)[0], 201)
    recs = []
    for i in range(N):
        r = p.record(i)
        if i < N // 2:
            r["signals"] = {"color": {"prior_nll": float(prior[i]), "cond_nll": float(cond[i]),
                                      "tokens": int(tokens[i])}, "other": 1.5}
        recs.append(r)
    st, _, body = d.ingest("c", recs)
    assert_eq((st, body["accepted"]), (200, N), "ingest")
    curate.wait_job(d, curate.put_filter(d, "c", "color", COLOR))
    curate.wait_job(d, curate.put_filter(d, "c", "csum", {"type": "color",
                                                          "params": {"reduction": "sum"}}))
    curate.wait_job(d, curate.put_filter(d, "c", "clip", CLIP))
    # a costly type that reads bodies: a signals patch must not leave it pending
    curate.wait_job(d, curate.put_filter(d, "c", "dup", {"type": "exact_dup",
                                                         "params": {"key": "text"}}))
    _st["p"] = p
    _st["sig"] = (prior, cond, tokens)
    return d, p


def scores_of(d, filt):
    """Every record's score of filt, in row order, from an export of all records."""
    curate.wait_job(d, curate.put_subset(d, "c", "all", [{"kind": ["image-text", "text"]}]))
    lines, _ = curate.export_ndjson(d, "c", "all", "?format=ndjson&fields=id,scores")
    return ([l["id"] for l in lines],
            np.array([np.nan if l["scores"][filt] is None else l["scores"][filt]
                      for l in lines]))


@test
def scores_from_ingested_signals():
    d, p = setup()
    prior, cond, tokens = _st["sig"]
    h = N // 2
    ids, s = scores_of(d, "color")
    assert_eq(ids, p.ids, "rows")
    want = mean_scores(prior, cond, tokens)
    assert np.all(np.isfinite(s[:h])) and np.all(np.isnan(s[h:])), "scored = has signals"
    assert np.abs(s[:h] - want[:h]).max() < 1e-6, np.abs(s[:h] - want[:h]).max()
    _, ssum = scores_of(d, "csum")
    assert np.abs(ssum[:h] - (prior - cond)[:h]).max() < 1e-3
    st, _, stats = d.get_json("/v1/datasets/c/filters/color/stats")
    assert_eq((stats["count"], stats["unscorable"], stats["unscorable_by_reason"]),
              (h, N - h, {"no_field": N - h}), "stats")


@test
def patch_one_record():
    d, p = setup()
    rid = p.ids[N - 1]
    before = d.get_record("c", rid)[2]
    body = {"signals": {"color": {"prior_nll": 40, "cond_nll": 30, "tokens": 20}}}
    st, _, rec = d.json("PATCH", "/v1/datasets/c/records/" + rid, json.dumps(body),
                        content_type="application/merge-patch+json")
    assert_eq(st, 200, "patch")
    assert_eq(rec["signals"], body["signals"], "signals in the answer")
    after = d.get_record("c", rid)[2]
    # nothing else changed: text, image, meta, vectors, row
    for k in ("text", "image", "meta", "embeddings", "kind"):
        assert_eq(after.get(k), before.get(k), k)
    # a merge patch changes one field, keeps the rest; null removes a key
    st, _, rec = d.json("PATCH", "/v1/datasets/c/records/" + rid,
                        {"signals": {"color": {"cond_nll": 35}, "clip_b32": 0.3}})
    assert_eq(st, 200)
    assert_eq(rec["signals"], {"color": {"prior_nll": 40, "cond_nll": 35, "tokens": 20},
                               "clip_b32": 0.3})
    # the cheap filters that read bodies rescored the record; clip keeps its score
    ids, s = scores_of(d, "color")
    assert abs(s[N - 1] - 0.25) < 1e-7, s[N - 1]
    _, clip = scores_of(d, "clip")
    want = p.clip()
    assert abs(clip[N - 1] - want[N - 1]) < 1e-6 or (math.isnan(clip[N - 1])
                                                     and math.isnan(want[N - 1]))
    st, _, rec = d.json("PATCH", "/v1/datasets/c/records/" + rid,
                        {"signals": {"color": None, "clip_b32": None}})
    assert_eq(st, 200)
    assert "signals" not in rec, rec
    _, s = scores_of(d, "color")
    assert math.isnan(s[N - 1])


@test
def patch_one_rejects():
    d, p = setup()
    path = "/v1/datasets/c/records/" + p.ids[0]
    before = d.get_record("c", p.ids[0])[2]
    for body, code in (
            ({"signals": {"color": {"prior_nll": "x"}}}, "invalid_field"),
            ({"signals": {"color": [1, 2]}}, "invalid_field"),
            ({"signals": {}}, "invalid_field"),
            ({"text": "new text", "signals": {"a": 1}}, "invalid_field"),
            ({"id": p.ids[0], "signals": {"a": 1}}, "invalid_field"),
            ([1], "invalid_body")):
        assert_problem(d.json("PATCH", path, body), 422, code)
    assert_problem(d.request("PATCH", path, b"{nope", content_type="application/json"), 400,
                   "malformed_json")
    assert_problem(d.request("PATCH", path, b"{}", content_type="text/plain"), 415)
    assert_problem(d.json("PATCH", "/v1/datasets/c/records/nope", {"signals": {"a": 1}}), 404,
                   "record_not_found")
    assert_problem(d.json("PATCH", "/v1/datasets/zz/records/x", {"signals": {"a": 1}}), 404)
    assert_eq(d.get_record("c", p.ids[0])[2], before, "nothing changed")


def bulk(d, lines):
    return d.json("POST", "/v1/datasets/c/records:signals",
                  "".join(l if isinstance(l, str) else json.dumps(l) + "\n" for l in lines),
                  content_type="application/x-ndjson")


@test
def patch_bulk_all_or_nothing():
    d, p = setup()
    prior, cond, tokens = _st["sig"]
    h = N // 2
    good = [{"id": p.ids[i], "signals": {"color": {"prior_nll": float(prior[i]),
                                                   "cond_nll": float(cond[i]),
                                                   "tokens": int(tokens[i])}}}
            for i in range(h, N)]
    ids0, s0 = scores_of(d, "color")
    # a bad line anywhere: 422 listing it, nothing changed
    bad = list(good)
    bad[7] = "{not json\n"
    bad[100] = {"id": p.ids[h + 100], "signals": {"color": {"tokens": "many"}}}
    pr = assert_problem(bulk(d, bad), 422, "patch_rejected")
    assert_eq([(e["line"], e["code"]) for e in pr["errors"]],
              [(8, "malformed_json"), (101, "invalid_field")], "errors")
    # an unknown id: found inside the transaction, which is then abandoned
    bad = list(good)
    bad[500] = {"id": "no-such-id", "signals": {"a": 1}}
    pr = assert_problem(bulk(d, bad), 422, "patch_rejected")
    assert_eq([(e["line"], e["code"], e["id"]) for e in pr["errors"]],
              [(501, "record_not_found", "no-such-id")], "errors")
    # a merge that leaves invalid signals (a number merged under an object is fine; an object
    # merged onto a number turns it into an object of numbers, also fine) - and the empty body
    assert_problem(bulk(d, ["\n", "  \n"]), 400, "empty_body")
    assert_problem(d.json("POST", "/v1/datasets/c/records:signals", {"id": "x"}), 415)
    _, s1 = scores_of(d, "color")
    assert_eq(np.isnan(s1).tolist(), np.isnan(s0).tolist(), "no score changed")
    assert "signals" not in d.get_record("c", p.ids[h + 3], "?embeddings=false")[2]
    # the good batch: every record patched, scored, durable
    st, _, body = bulk(d, good)
    assert_eq((st, body), (200, {"patched": N - h}), "bulk patch")
    _, s = scores_of(d, "color")
    want = mean_scores(prior, cond, tokens)
    assert np.all(np.isfinite(s)), "every record scored"
    assert np.abs(s - want).max() < 1e-6
    # the records ingested with signals kept their other signal
    assert_eq(d.get_record("c", p.ids[0], "?embeddings=false")[2]["signals"]["other"], 1.5)
    # exact_dup reads no signals: still complete, no refit needed
    st, _, dup = d.get_json("/v1/datasets/c/filters/dup/stats")
    assert_eq((dup["pending"], dup["records"]), (0, N), "exact_dup after the patch")


@test
def patch_survives_sigkill():
    d, p = setup()
    st, _, _ = bulk(d, [{"id": p.ids[5], "signals": {"color": {"prior_nll": 9, "cond_nll": 1,
                                                              "tokens": 2}}}])
    assert_eq(st, 200)
    before = d.get_record("c", p.ids[5])[2]
    d.kill9()
    d.start()
    rec = d.get_record("c", p.ids[5])[2]
    assert_eq(rec["signals"]["color"], {"prior_nll": 9, "cond_nll": 1, "tokens": 2})
    assert_eq(rec["embeddings"], before["embeddings"], "vectors kept")
    _, s = scores_of(d, "color")
    assert_eq(float(s[5]), 4.0, "the patched score was committed before the 200")
    # restore record 5 for the selection tests
    prior, cond, tokens = _st["sig"]
    st, _, _ = bulk(d, [{"id": p.ids[5], "signals": {"color": {
        "prior_nll": float(prior[5]), "cond_nll": float(cond[5]), "tokens": int(tokens[5])}}}])
    assert_eq(st, 200)


def np_top_k(scores, ids, k):
    """Independent rule: highest scores first, ties by smaller id (bytewise)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], ids[i].encode()))
    return set(order[:k])


@test
def select_top_k_tau():
    d, p = setup()
    prior, cond, tokens = _st["sig"]
    s = mean_scores(prior, cond, tokens)
    ids = p.ids
    for tau in (7, 16, 2.5):
        k = math.floor(N / tau)
        jid = curate.put_subset(d, "c", "t%d" % int(tau * 10), [{"filter": "color",
                                                              "top_k": {"tau": tau}}])
        curate.wait_job(d, jid)
        lines, summ = curate.export_ndjson(d, "c", "t%d" % int(tau * 10),
                                           "?format=ndjson&fields=id")
        got = {ids.index(l["id"]) for l in lines}
        assert_eq(len(got), k, "k = floor(N / tau)")
        assert_eq(got, np_top_k(s.tolist(), ids, k), "tau %s" % tau)
        st, _, sub = d.get_json("/v1/datasets/c/subsets/t%d" % int(tau * 10))
        assert_eq(sub["provenance"]["steps"][0]["value"], {"tau": tau, "k": k}, "provenance")
    for bad in ({"tau": 0.5}, {"tau": "7"}, {"tau": 7, "x": 1}, {}, {"k": 3}):
        assert_problem(d.json("PUT", "/v1/datasets/c/subsets/bad",
                              {"steps": [{"filter": "color", "top_k": bad}]}), 422, "bad_step")


@test
def select_fraction_and_threshold():
    d, p = setup()
    prior, cond, tokens = _st["sig"]
    s = mean_scores(prior, cond, tokens).astype(np.float64)
    curate.wait_job(d, curate.put_subset(d, "c", "f3", [{"filter": "color",
                                                        "top_fraction": 0.3}]))
    lines, _ = curate.export_ndjson(d, "c", "f3", "?format=ndjson&fields=id")
    got = sorted(p.ids.index(l["id"]) for l in lines)
    keep, _ = curate.top_fraction(s, 0.3)
    assert_eq(got, np.nonzero(keep)[0].tolist(), "top_fraction 0.3")
    curate.wait_job(d, curate.put_subset(d, "c", "th", [{"filter": "color", "threshold": 0.2}]))
    lines, _ = curate.export_ndjson(d, "c", "th", "?format=ndjson&fields=id")
    got = sorted(p.ids.index(l["id"]) for l in lines)
    assert_eq(got, [i for i in range(N) if np.float32(s[i]) >= np.float32(0.2)], "threshold")


@test
def spec_vector_over_http():
    d = daemon()
    prior = [[2, 3, 2.5, 2.5], [1, 1.2, .8, 1], [4, 4.2, 3.8, 4], [2.2, 2, 2.4, 2.2],
             [3, 3, 3, 3], [1.5, 1.7, 1.6, 1.6]]
    cond = [[1.5, 2.5, 2, 2], [1.1, 1.3, .9, 1.1], [3, 3.2, 2.8, 3], [2.1, 1.9, 2.3, 2.1],
            [2.9, 3.1, 3, 3], [1.1, 1.3, 1.2, 1.2]]
    assert_eq(d.put_dataset("spec", {"spaces": {"t": {"dim": 2}}, "kinds": ["text"]})[0], 201)
    recs = [{"id": "s%d" % i, "kind": "text", "text": "x",
             "signals": {"color": {"prior_nll": sum(prior[i]), "cond_nll": sum(cond[i]),
                                   "tokens": 4}}} for i in range(6)]
    assert_eq(d.ingest("spec", recs)[0], 200)
    curate.wait_job(d, curate.put_filter(d, "spec", "color", COLOR))
    curate.wait_job(d, curate.put_subset(d, "spec", "k", [{"filter": "color",
                                                          "top_k": {"tau": 3}}]))
    lines, _ = curate.export_ndjson(d, "spec", "k", "?format=ndjson&fields=id,scores")
    assert_eq(sorted(l["id"] for l in lines), ["s0", "s2"], "select {2, 0}")
    assert_eq(sorted(round(l["scores"]["color"], 6) for l in lines), [0.5, 1.0])


if __name__ == "__main__":
    wn.main()
