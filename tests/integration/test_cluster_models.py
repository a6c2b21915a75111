# SPDX-License-Identifier: MIT
"""Corpus-wide models over a sharded dataset (issue 18 item 4, docs/scale.md "Corpus-wide
models"): the same records in one daemon and spread over 3 shard daemons (placed as
CLUSTER.md says: SHA-256 of the id, virtual shards, contiguous ranges) must give the same
model.

CoLoR-Filter with built-in n-gram models: each shard counts the n-grams of the texts it holds
(POST .../filters:partial: raw counts of every model, keyed by word hashes), the counts are
summed, and each shard fits from the sums (param "counts"): the models, hence every score, are
bit-identical to one daemon's.

Hubness normalisers: every shard gets the whole banks inline (the gallery bank with the ids of
its items, so that a shard leaves a bank item out of its own statistics exactly as one daemon
does), so log Z_q, log Z_g and r_B of every record are computed exactly where it lives; the
activation sets need the whole gallery: each shard's top-k per bank item (:topk) is merged
(each item's k best over all shards) and sent back (:activation). Compared record by record
with one daemon and with numpy. The merge is done here in Python (the reference), and by the
router when the build has one."""

import base64
import hashlib
import json
import os
import struct
import tempfile
import time

import numpy as np

import curate
import textcorpus
import wn
from wn import assert_eq, assert_problem, test

NSHARDS, VSHARDS = 3, 1024
N, D, NQB, NGB, K = 600, 16, 25, 60, 2
BETA1, BETA2 = 15.0, 10.0
_c = {}


def shard_of(rid):
    """CLUSTER.md: big-endian u64 of the first 8 bytes of SHA-256(id) mod virtual shards, then
    contiguous ranges of virtual shards."""
    v = int.from_bytes(hashlib.sha256(rid.encode()).digest()[:8], "big") % VSHARDS
    return v * NSHARDS // VSHARDS


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def lse(a, axis):
    mx = a.max(axis=axis, keepdims=True)
    return (mx + np.log(np.exp(a - mx).sum(axis=axis, keepdims=True))).squeeze(axis)


def data():
    if _c.get("data"):
        return _c
    rng = np.random.default_rng(18)
    u = unit(rng.standard_normal((1, D)))[0]
    g = unit(rng.standard_normal((N, D)) + 0.6 * u).astype(np.float32)
    ids = ["r%04d" % i for i in range(N)]
    qb = unit(rng.standard_normal((NQB, D)) + u).astype(np.float32)
    gsel = rng.choice(N, NGB, replace=False)  # the gallery bank: records of the gallery
    _c.update(data=True, g=g, ids=ids, qb=qb, gsel=gsel,
              shard=np.array([shard_of(i) for i in ids]))
    return _c


def body():
    c = data()
    return {"space": "v", "beta1": BETA1, "beta2": BETA2, "k": K, "csls_k": 5,
            "query_bank": {"vectors": c["qb"].tolist()},
            "gallery_bank": {"vectors": c["g"][c["gsel"]].tolist(),
                             "ids": [c["ids"][i] for i in c["gsel"]]}}


def start():
    """One daemon with every record, NSHARDS shards with theirs, an index on each."""
    if "single" in _c:
        return _c
    c = data()
    # a fit from merged counts carries them in its definition: more than the default 1 MiB
    big = ["--definition-body-limit", "64M"]
    single = wn.Daemon(log_level="info")
    shards = [wn.Daemon(log_level="info", extra_args=big) for _ in range(NSHARDS)]
    _c.update(single=single, shards=shards)
    recs = [{"id": c["ids"][i], "embeddings": {"v": curate.emb(c["g"][i])}} for i in range(N)]
    for s, d in enumerate([single] + shards):
        d.put_dataset("h", {"spaces": {"v": {"dim": D}}})
        mine = recs if s == 0 else [r for i, r in enumerate(recs) if c["shard"][i] == s - 1]
        assert mine, "a shard without records: pick other ids"
        assert_eq(d.ingest("h", mine)[0], 200)
    return _c


def router():
    """winnowd --router over the shards (started on first use)."""
    if "router" not in _c:
        c = start()
        cf = os.path.join(tempfile.mkdtemp(prefix="winnow-models-"), "shards.json")
        with open(cf, "w") as f:
            json.dump({"virtual_shards": VSHARDS,
                       "shards": [{"url": "http://127.0.0.1:%d" % d.port} for d in c["shards"]]},
                      f)
        _c["router"] = wn.Daemon(log_level="info", extra_args=["--router", cf])
    return _c["router"]


def stop():
    for d in [_c.pop("router", None), _c.pop("single", None)] + _c.pop("shards", []):
        if d is not None:
            d.stop()
            d.close()


def put_normalizer(d, name, b):
    st, hdrs, res = d.json("PUT", "/v1/datasets/h/hubness/%s" % name, b)
    assert_eq(st, 202, "PUT normalizer: %r" % (res,))
    curate.wait_job(d, curate.job_id((st, hdrs, res)))
    return res["normalizer"]["version"]


def merge_topk(parts, k):
    """The reference merge: each bank item's k best entries over all shards, ties by id."""
    out = {}
    for bank in ("query_bank", "gallery_bank"):
        items = zip(*[p[bank] for p in parts])
        out[bank] = [sorted(sum(lists, []), key=lambda x: (-x["score"], x["id"]))[:k]
                     for lists in items]
    return out


def stats(d, name, ids):
    st, _, res = d.json("POST", "/v1/datasets/h/hubness/%s:stats" % name, {"ids": ids})
    assert_eq(st, 200, "stats: %r" % (res,))
    return res


def numpy_stats():
    """Spec 5.4 with the whole gallery: the query bank as given, the gallery bank with its
    self-pairs left out; A_q, A_g from each bank item's top-K."""
    c = data()
    g = c["g"].astype(np.float64)
    sq = unit(c["qb"]) @ g.T                      # NQB x N
    sg = unit(c["g"][c["gsel"]]) @ g.T            # NGB x N
    sg[np.arange(NGB), c["gsel"]] = np.nan
    lzq = lse(BETA1 * sq, 0)
    lzg = lse(np.where(np.isnan(sg), -np.inf, BETA2 * sg), 0)
    rb = np.sort(sq, 0)[::-1][:5].mean(0)
    aq = np.zeros(N, bool)
    aq[np.argsort(-sq, 1)[:, :K].ravel()] = True
    ag = np.zeros(N, bool)
    ag[np.argsort(-np.where(np.isnan(sg), -np.inf, sg), 1)[:, :K].ravel()] = True
    return lzq, lzg, rb, aq, ag


@test
def hubness_shards_match_one_daemon():
    c = start()
    b = body()
    put_normalizer(c["single"], "n", b)
    vers = [put_normalizer(d, "n", b) for d in c["shards"]]
    parts = []
    for d in c["shards"]:
        st, _, res = d.get_json("/v1/datasets/h/hubness/n:topk")
        assert_eq(st, 200, "topk: %r" % (res,))
        assert_eq(res["k"], K)
        assert_eq(len(res["query_bank"]), NQB)
        assert_eq(len(res["gallery_bank"]), NGB)
        parts.append(res)
    merged = merge_topk(parts, K)
    # one daemon's own top-k is the merge's (scores are float32, ties are not expected here)
    st, _, one = c["single"].get_json("/v1/datasets/h/hubness/n:topk")
    assert_eq(st, 200)
    for bank in ("query_bank", "gallery_bank"):
        assert_eq([[x["id"] for x in it] for it in one[bank]],
                  [[x["id"] for x in it] for it in merged[bank]], bank + " top-k")
    in_aq = sorted({x["id"] for it in merged["query_bank"] for x in it})
    in_ag = sorted({x["id"] for it in merged["gallery_bank"] for x in it})
    for d, v in zip(c["shards"], vers):
        st, _, res = d.json("POST", "/v1/datasets/h/hubness/n:activation",
                            {"version": v, "in_aq": in_aq, "in_ag": in_ag})
        assert_eq(st, 200, "activation: %r" % (res,))
        assert_eq(res["activation"], "global")
    one = {s["id"]: s for s in stats(c["single"], "n", c["ids"])["stats"]}
    lzq, lzg, rb, aq, ag = numpy_stats()
    for s, d in enumerate(c["shards"]):
        mine = [c["ids"][i] for i in range(N) if c["shard"][i] == s]
        res = stats(d, "n", mine)
        assert_eq(res["activation"], "global")
        for x in res["stats"]:
            y = one[x["id"]]
            i = int(x["id"][1:])
            for f in ("log_zq", "log_zg", "r_b"):
                # the same float32 arithmetic on the same vectors: equal up to the BLAS
                # kernel's blocking (stated tolerance 1e-5 relative)
                assert abs(x[f] - y[f]) <= 1e-5 * max(1.0, abs(y[f])), (x, y)
            assert_eq((x["in_aq"], x["in_ag"]), (y["in_aq"], y["in_ag"]), x["id"])
            assert abs(x["log_zq"] - lzq[i]) < 1e-4 and abs(x["log_zg"] - lzg[i]) < 1e-4, \
                (x, lzq[i], lzg[i])
            assert abs(x["r_b"] - rb[i]) < 1e-5, (x, rb[i])
            assert_eq((x["in_aq"], x["in_ag"]), (bool(aq[i]), bool(ag[i])), x["id"])
    # the sets are not trivial: some records in, most out
    assert 0 < aq.sum() < N // 4 and 0 < ag.sum() < N // 4, (aq.sum(), ag.sum())


def search(d, body):
    st, _, res = d.json("POST", "/v1/datasets/h/search", body)
    assert_eq(st, 200, "search: %r" % (res,))
    return res


@test
def hubness_through_the_router():
    """PUT through the router, its GET makes the sets global, and every method's search through
    the router ranks as one daemon's: the same ids in the same order, the same scores."""
    c = start()
    rt = router()
    b = body()
    for d in (c["single"], rt):
        put_normalizer(d, "rn", b)
        st, hdrs, res = d.json("PUT", "/v1/datasets/h/indexes/v",
                               {"factory": "Flat", "metric": "cosine"})
        if st == 202:
            curate.wait_job(d, curate.job_id((st, hdrs, res)))
    st, _, view = rt.get_json("/v1/datasets/h/hubness/rn")
    assert_eq(st, 200, view)
    assert_eq(view["activation"], "global")
    assert all(d.get_json("/v1/datasets/h/hubness/rn")[2]["activation"] == "global"
               for d in c["shards"])
    one = stats(c["single"], "rn", c["ids"])["stats"]
    via = stats(rt, "rn", c["ids"])["stats"]
    for x, y in zip(via, one):
        assert_eq(x["id"], y["id"])
        assert_eq((x["in_aq"], x["in_ag"]), (y["in_aq"], y["in_ag"]), x["id"])
        assert abs(x["log_zg"] - y["log_zg"]) <= 1e-5 * max(1, abs(y["log_zg"])), (x, y)
    rng = np.random.default_rng(3)
    queries = unit(rng.standard_normal((8, D)) + 0.8 * c["qb"][:8]).astype(np.float32)
    for m in ("is", "dis", "dualis", "dualdis", "csls"):
        for q in queries:
            req = {"vector": q.tolist(), "space": "v", "limit": 10,
                   "hubness": {"normalizer": "rn", "method": m, "candidates": 50}}
            a, r = search(c["single"], req), search(rt, req)
            assert_eq([x["id"] for x in r["results"]], [x["id"] for x in a["results"]], m)
            for x, y in zip(r["results"], a["results"]):
                assert_eq(x["score"], y["score"], m)
                assert abs(x["hubness_score"] - y["hubness_score"]) <= \
                    1e-5 * max(1, abs(y["hubness_score"])), (m, x, y)
            assert_eq(r["stats"]["candidates_scanned"], 50)
    # a query given as a record (its vector from its shard)
    req = {"record_id": "r0007", "space": "v", "limit": 10,
           "hubness": {"normalizer": "rn", "method": "dis"}}
    a, r = search(c["single"], req), search(rt, req)
    assert_eq([x["id"] for x in r["results"]], [x["id"] for x in a["results"]], "record_id")
    # the re-ranking changed something: not simply the raw order
    raw = search(rt, {"vector": queries[0].tolist(), "space": "v", "limit": 10})
    moved = search(rt, {"vector": queries[0].tolist(), "space": "v", "limit": 10,
                        "hubness": {"normalizer": "rn", "method": "dualis"}})
    assert [x["id"] for x in raw["results"]] != [x["id"] for x in moved["results"]]
    # a bank drawn from a dataset cannot be broadcast: 422, nothing created
    bad = dict(b, gallery_bank={"dataset": "h", "sample": 10})
    assert_problem(rt.json("PUT", "/v1/datasets/h/hubness/bad", bad), 422, "bank_not_inline")
    assert_eq(rt.get_json("/v1/datasets/h/hubness/bad")[0], 404)
    # a batch is not served by the router
    assert_problem(rt.json("POST", "/v1/datasets/h/search", {
        "queries": [queries[0].tolist()], "space": "v",
        "hubness": {"normalizer": "rn"}}), 501, "not_supported_by_router")
    # records ingested through the router make the sets stale; the next search merges again
    new = {"id": "zz-hub", "embeddings": {"v": curate.emb(c["qb"][0])}}
    for d in (c["single"], rt):
        assert_eq(d.ingest("h", [new])[0], 200)
    owner = c["shards"][shard_of("zz-hub")]
    assert_eq(owner.get_json("/v1/datasets/h/hubness/rn")[2]["activation"], "stale")
    req = {"vector": c["qb"][0].tolist(), "space": "v", "limit": 5,
           "hubness": {"normalizer": "rn", "method": "dis"}}
    a, r = search(c["single"], req), search(rt, req)
    assert_eq([x["id"] for x in r["results"]], [x["id"] for x in a["results"]])
    assert_eq(owner.get_json("/v1/datasets/h/hubness/rn")[2]["activation"], "global")
    for d in (c["single"], rt):
        assert_eq(d.json("DELETE", "/v1/datasets/h/records/zz-hub")[0], 204)


@test
def hubness_shard_local_flags_differ():
    """Without the merge a shard's flags come from its own top-k: more records are active
    than in the whole gallery (each shard has its own top-k), so the merge is needed."""
    c = start()
    b = body()
    d = c["shards"][0]
    put_normalizer(d, "local", b)
    mine = [c["ids"][i] for i in range(N) if c["shard"][i] == 0]
    res = stats(d, "local", mine)
    assert_eq(res["activation"], "local")
    _, _, _, aq, _ = numpy_stats()
    local = sum(x["in_aq"] for x in res["stats"])
    glob = sum(bool(aq[int(i[1:])]) for i in mine)
    assert local > glob, (local, glob)


@test
def hubness_activation_errors():
    c = start()
    d = c["shards"][1]
    v = put_normalizer(d, "e", body())
    url = "/v1/datasets/h/hubness/e:activation"
    assert_problem(d.json("POST", url, {"version": v + 1, "in_aq": [], "in_ag": []}), 409,
                   "version_mismatch")
    assert_problem(d.json("POST", url, {"version": v, "in_aq": [1], "in_ag": []}), 422)
    assert_problem(d.json("POST", url, {"version": v, "in_aq": []}), 422)
    assert_problem(d.json("POST", url, {"version": v, "in_aq": [], "in_ag": [], "x": 1}), 422)
    assert_problem(d.json("POST", "/v1/datasets/h/hubness/none:activation",
                          {"version": 1, "in_aq": [], "in_ag": []}), 404)
    assert_problem(d.json("POST", "/v1/datasets/h/hubness/e:stats", {"ids": "r0001"}), 422)
    # a bank's ids must be one per vector
    b = body()
    b["gallery_bank"]["ids"] = b["gallery_bank"]["ids"][:-1]
    assert_problem(d.json("PUT", "/v1/datasets/h/hubness/bad", b), 422, "bad_bank")
    # nothing was changed by the refused requests: the flags are still the shard's own
    mine = [c["ids"][i] for i in range(N) if c["shard"][i] == 1]
    assert_eq(stats(d, "e", mine)["activation"], "local")
    # an empty merge clears every flag, and an ingest afterwards makes the flags stale
    st, _, res = d.json("POST", url, {"version": v, "in_aq": [], "in_ag": []})
    assert_eq(st, 200, res)
    assert not any(x["in_aq"] or x["in_ag"] for x in stats(d, "e", mine)["stats"])
    assert_eq(d.ingest("h", [{"id": "zz-new", "embeddings": {"v": curate.emb(np.ones(D))}}])[0],
              200)
    assert_eq(d.get_json("/v1/datasets/h/hubness/e")[2]["activation"], "stale")
    assert_eq(d.json("DELETE", "/v1/datasets/h/records/zz-new")[0], 204)


TEXT = {"spaces": {"t": {"dim": 2}}, "kinds": ["text"]}


def text_sets():
    """pool (4 sources), down (one source), prior (4 sources), disjoint texts."""
    if "texts" in _c:
        return _c["texts"]
    src = textcorpus.sources(seed=7)
    pool, prior, down = [], [], []
    for s, texts in src.items():
        pool += [("p-%s-%d" % (s, i), t) for i, t in enumerate(texts[:100])]
        prior += [("q-%s-%d" % (s, i), t) for i, t in enumerate(texts[100:160])]
    down = [("d-%d" % i, t) for i, t in enumerate(src["verb"][160:260])]
    _c["texts"] = {"pool": pool, "prior": prior, "down": down}
    return _c["texts"]


def put_texts():
    if "texts_in" in _c:
        return
    c = start()
    sets = text_sets()
    for s, d in enumerate([c["single"]] + c["shards"]):
        for ds, items in sets.items():
            assert_eq(d.put_dataset(ds, TEXT)[0], 201)
            recs = [{"id": rid, "kind": "text", "text": t} for rid, t in items
                    if s == 0 or shard_of(rid) == s - 1]
            st, _, res = d.ingest(ds, recs)
            assert_eq((st, res["rejected"]), (200, 0), "ingest " + ds)
    _c["texts_in"] = True


def merge_counts(parts):
    """The reference merge of color_ngram partials: the counts of each model summed."""
    def add(models):
        out = {}
        for m in models:
            for g, n in m.items():
                out[g] = out.get(g, 0) + n
        return out
    first = parts[0]
    return {"format": first["format"], "order": first["order"],
            "priors": [add([p["priors"][i] for p in parts]) for i in range(len(first["priors"]))],
            "down": add([p["down"] for p in parts])}


def scores(d, name, ds="pool"):
    """Every scored record's score, through a subset of all of them and its export."""
    curate.wait_job(d, curate.put_subset(d, ds, "all_" + name,
                                         [{"filter": name, "top_fraction": 1.0}]))
    lines, _ = curate.export_ndjson(d, ds, "all_" + name, "?format=ndjson&fields=id,scores")
    return {x["id"]: x["scores"][name] for x in lines}


def color_case(name, params):
    put_texts()
    c = _c
    ids = [rid for rid, _ in text_sets()["pool"]]
    definition = {"type": "color_ngram", "params": params}
    curate.wait_job(c["single"], curate.put_filter(c["single"], "pool", name, definition))
    parts = []
    for d in c["shards"]:
        st, _, res = d.json("POST", "/v1/datasets/pool/filters:partial", definition)
        assert_eq(st, 200, "partial: %r" % (res,))
        parts.append(res)
    merged = merge_counts(parts)
    # the shards' counts are disjoint parts: no shard alone has them all
    assert all(len(p["down"]) < len(merged["down"]) for p in parts)
    one = scores(c["single"], name)
    assert len(one) >= 0.95 * len(ids), (len(one), len(ids))  # a few texts are unscorable
    for s, d in enumerate(c["shards"]):
        sp = dict(params, counts=merged)
        curate.wait_job(d, curate.put_filter(d, "pool", name, {"type": "color_ngram",
                                                                "params": sp}))
        mine = [rid for rid in ids if shard_of(rid) == s]
        got = scores(d, name)
        assert_eq(sorted(got), sorted(r for r in mine if r in one), "the shard's scored records")
        for rid in got:
            # the same counts give the same model: the scores are bit-identical
            assert_eq(got[rid], one[rid], rid)
    # and without the merge (a shard fitting on its own texts) they are not
    d = c["shards"][0]
    curate.wait_job(d, curate.put_filter(d, "pool", name + "_local", definition))
    mine = [rid for rid in ids if shard_of(rid) == 0]
    local = scores(d, name + "_local")
    assert sum(local.get(r) != one.get(r) for r in mine) > len(mine) // 2


@test
def color_ngram_cross_fitted_shards_match_one_daemon():
    color_case("cf", {"downstream": "down", "folds": 3})


@test
def color_ngram_named_prior_shards_match_one_daemon():
    color_case("np", {"downstream": "down", "prior": "prior", "order": 4,
                      "reduction": "sum"})


@test
def color_ngram_through_the_router():
    """PUT through the router gathers and sums the counts itself: every shard's scores are the
    single daemon's, bit for bit."""
    put_texts()
    c = _c
    rt = router()
    definition = {"type": "color_ngram", "params": {"downstream": "down", "order": 3}}
    curate.wait_job(c["single"], curate.put_filter(c["single"], "pool", "rc", definition))
    st, hdrs, res = rt.json("PUT", "/v1/datasets/pool/filters/rc", definition)
    assert_eq(st, 202, res)
    curate.wait_job(rt, curate.job_id((st, hdrs, res)))
    one = scores(c["single"], "rc")
    got = {}
    for d in c["shards"]:
        got.update(scores(d, "rc"))
    assert_eq(len(got), len(one))
    assert_eq(got, one, "scores through the router")


@test
def color_ngram_partial_errors():
    put_texts()
    d = _c["shards"][2]
    url = "/v1/datasets/pool/filters:partial"
    assert_problem(d.json("POST", url, {"type": "prototypes", "params": {"k": 2}}), 422)
    assert_problem(d.json("POST", url, {"type": "nope"}), 422, "bad_filter")
    assert_problem(d.json("POST", "/v1/datasets/none/filters:partial",
                          {"type": "color_ngram", "params": {"downstream": "down"}}), 404)
    bad = {"type": "color_ngram", "params": {"downstream": "down", "counts": {"format": "x"}}}
    assert_problem(d.json("PUT", "/v1/datasets/pool/filters/bad", bad), 422, "bad_counts")
    st, _, p = d.json("POST", url, {"type": "color_ngram", "params": {"downstream": "down"}})
    assert_eq(st, 200)
    p["priors"] = p["priors"][:1]  # 2 folds by default
    bad["params"]["counts"] = p
    assert_problem(d.json("PUT", "/v1/datasets/pool/filters/bad", bad), 422, "bad_counts")
    assert_eq(d.get_json("/v1/datasets/pool/filters/bad")[0], 404)


MASK = (1 << 64) - 1


def id_hash(rid, seed):
    """kmeans_id_hash: splitmix64 of FNV-1a-64(id) xor seed * 0x9e3779b97f4a7c15."""
    h = 1469598103934665603
    for b in rid.encode():
        h = ((h ^ b) * 1099511628211) & MASK
    st = (h ^ ((seed & 0xffffffff) * 0x9e3779b97f4a7c15)) & MASK
    z = st = (st + 0x9e3779b97f4a7c15) & MASK
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & MASK
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & MASK
    return z ^ (z >> 31)


@test
def prototypes_shards_match_one_daemon():
    """The k-means sample by id hash is the same set in the same order on one daemon and over
    the shards; the router fits on it and broadcasts the centroids: every score bit-identical,
    and the router's global top_fraction subset is one daemon's."""
    c = start()
    rt = router()
    params = {"space": "v", "k": 6, "seed": 7, "max_points_per_centroid": 40}
    one_params = dict(params, sample="id_hash")
    # the sample: the 240 records with the smallest (hash, id), independently of the C code
    want = sorted((id_hash(i, 7), i) for i in c["ids"])[:6 * 40]
    st, _, part = c["single"].json("POST", "/v1/datasets/h/filters:partial",
                                   {"type": "prototypes", "params": one_params})
    assert_eq(st, 200, part)
    assert_eq([(int(x["h"], 16), x["id"]) for x in part["items"]], want, "the id-hash sample")
    curate.wait_job(c["single"], curate.put_filter(c["single"], "h", "pr",
                                                   {"type": "prototypes", "params": one_params}))
    st, hdrs, res = rt.json("PUT", "/v1/datasets/h/filters/pr",
                            {"type": "prototypes", "params": params})
    assert_eq(st, 202, res)
    curate.wait_job(rt, curate.job_id((st, hdrs, res)))
    one = scores(c["single"], "pr", "h")
    got = {}
    for d in c["shards"]:
        got.update(scores(d, "pr", "h"))
    assert_eq(len(one), N)
    assert_eq(sorted(got), sorted(one), "scored records")
    # the same centroids; a score is one inner product whose BLAS kernel depends on how many
    # records the scoring batch holds (FAISS flat search), so a few differ in the last bit
    diff = [(i, got[i], one[i]) for i in one if got[i] != one[i]]
    assert len(diff) <= N // 50, "%d scores differ, e.g. %r" % (len(diff), diff[:5])
    assert all(abs(a - b) <= 2.5e-7 for _, a, b in diff), diff[:5]
    # the scores are 1 - the cosine to the nearest broadcast centroid (numpy)
    cent = np.array(c["shards"][0].get_json("/v1/datasets/h/filters/pr")[2]["params"]["centroids"])
    cent = unit(cent)
    d_np = 1 - (unit(c["g"]) @ cent.T).max(1)
    assert np.allclose([one[i] for i in c["ids"]], d_np, atol=1e-5)
    # a global selection through the router keeps one daemon's records
    for d in (c["single"], rt):
        curate.wait_job(d, curate.put_subset(d, "h", "hard", [{"filter": "pr",
                                                                "top_fraction": 0.3}]))
    a = curate.export(c["single"], "h", "hard", "?format=ids")[1].decode().split()
    b = curate.export(rt, "h", "hard", "?format=ids")[1].decode().split()
    assert_eq(sorted(b), sorted(a), "hard 30% through the router")
    # a reservoir sample follows the row order: refused through the router
    assert_problem(rt.json("PUT", "/v1/datasets/h/filters/bad", {
        "type": "prototypes", "params": dict(params, sample="reservoir")}), 422,
        "not_exact_on_shards")
    # a partial of a reservoir fit is refused on a shard
    assert_problem(c["shards"][0].json("POST", "/v1/datasets/h/filters:partial", {
        "type": "prototypes", "params": params}), 422, "no_partial")


def sdd_data():
    """Records around 4 directions, with near-duplicates (cosine > 1 - 1e-4) and exact
    duplicates (the same vector under another id: equal distances, broken by id) planted, the
    copies mostly on other shards than their originals."""
    if "sdd" in _c:
        return _c["sdd"]
    rng = np.random.default_rng(4)
    dirs = unit(rng.standard_normal((4, D)))
    base = unit(dirs[rng.integers(0, 4, 300)] + 0.5 * rng.standard_normal((300, D)))
    vecs, ids = list(base.astype(np.float32)), ["s%04d" % i for i in range(300)]
    for j, i in enumerate(rng.choice(300, 80, replace=False)):
        if j < 50:  # near
            v = unit(base[i:i + 1] + 3e-3 * rng.standard_normal((1, D)))[0].astype(np.float32)
        else:  # exact
            v = vecs[i].copy()
        vecs.append(v)
        ids.append(("c%04d" if j % 2 else "t%04d") % j)  # before or after the original's id
        _c.setdefault("sdd_pairs", []).append((ids[i], ids[-1]))
    _c["sdd"] = (np.array(vecs), ids)
    return _c["sdd"]


def sdd_reference(x, ids, cent, eps):
    """SemDeDup in numpy (spec 3.2, hard order, ties by id): the records kept."""
    x, cent = unit(x), unit(cent)
    sims = x @ cent.T
    lab, d = sims.argmax(1), 1 - sims.max(1)
    kept = set()
    for c in set(lab):
        mem = sorted(np.flatnonzero(lab == c), key=lambda i: (-d[i], ids[i]))
        z = x[mem]
        g = np.triu(z @ z.T, 1)
        m = g.max(0) if len(mem) > 1 else np.zeros(1)
        kept.update(ids[mem[j]] for j in range(len(mem)) if not m[j] > 1 - eps)
    return kept


def sdd_explain(d, name, rid):
    st, _, res = d.get_json("/v1/datasets/sd/filters/%s/records/%s" % (name, rid))
    assert_eq(st, 200, res)
    return res


@test
def semdedup_through_the_router_matches_one_daemon():
    """k-means on the id-hash sample (fitted once by the router), every shard's pool
    deduplicated by the router with the filter's own code, the decisions sent back: the same
    keep set, clusters and similarities (bit for bit) as one daemon, and the numpy rule's."""
    c = start()
    rt = router()
    x, ids = sdd_data()
    recs = [{"id": ids[i], "embeddings": {"v": curate.emb(x[i])}} for i in range(len(ids))]
    for s, d in enumerate([c["single"]] + c["shards"]):
        d.put_dataset("sd", {"spaces": {"v": {"dim": D}}})
        mine = recs if s == 0 else [r for r in recs if shard_of(r["id"]) == s - 1]
        assert_eq(d.ingest("sd", mine)[0], 200)
    crossing = [p for p in _c["sdd_pairs"] if shard_of(p[0]) != shard_of(p[1])]
    assert len(crossing) >= 40, len(crossing)
    params = {"space": "v", "eps": 1e-3, "k": 4, "seed": 7, "max_points_per_centroid": 40}
    curate.wait_job(c["single"], curate.put_filter(c["single"], "sd", "dd", {
        "type": "semdedup", "params": dict(params, sample="id_hash")}))
    st, hdrs, res = rt.json("PUT", "/v1/datasets/sd/filters/dd",
                            {"type": "semdedup", "params": params})
    assert_eq(st, 202, res)
    curate.wait_job(rt, curate.job_id((st, hdrs, res)))
    views = [d.get_json("/v1/datasets/sd/filters/dd")[2] for d in c["shards"]]
    assert_eq({v["params"]["given"]["format"] for v in views}, {"semdedup_given/1"})
    assert_eq([v["params"]["given"]["records"] for v in views],
              [sum(1 for r in ids if shard_of(r) == s) for s in range(NSHARDS)])
    st, _, view = rt.get_json("/v1/datasets/sd/filters/dd")
    assert_eq((st, view["params"]["given"]["records"]), (200, len(ids)))  # summed by the router
    one = {rid: sdd_explain(c["single"], "dd", rid) for rid in ids}
    got = {rid: sdd_explain(rt, "dd", rid) for rid in ids}
    for rid in ids:
        a, b = one[rid], got[rid]
        assert_eq((b["score"], b["status"], b["cluster"]), (a["score"], a["status"], a["cluster"]),
                  rid)
        assert_eq(b["explain"]["similarity"], a["explain"]["similarity"], rid)  # bit for bit
        if shard_of(rid) == shard_of(a["explain"].get("duplicate_of", rid)):
            assert_eq(b["explain"].get("duplicate_of"), a["explain"].get("duplicate_of"), rid)
    kept = {rid for rid in ids if one[rid]["score"] == 1.0}
    removed = set(ids) - kept
    # the planted copies are found, across shards too, and an exact copy loses to the smaller id
    assert len(removed) >= 75, len(removed)
    assert sum(1 for p in crossing if set(p) & removed) >= 35
    for a, b in _c["sdd_pairs"][50:]:
        assert_eq(max(a, b) in removed and min(a, b) in kept, True, (a, b))
    # the numpy rule with the broadcast centroids
    cent = np.array(c["shards"][0].get_json("/v1/datasets/sd/filters/dd")[2]["params"]["centroids"])
    assert_eq(sdd_reference(x, ids, cent, 1e-3), kept, "numpy's keep set")
    # a global subset keeping the survivors: one daemon's members
    for d in (c["single"], rt):
        curate.wait_job(d, curate.put_subset(d, "sd", "dedup", [{"filter": "dd", "keep": True}]))
    a = curate.export(c["single"], "sd", "dedup", "?format=ids")[1].decode().split()
    b = curate.export(rt, "sd", "dedup", "?format=ids")[1].decode().split()
    assert_eq(sorted(b), sorted(a), "the deduplicated subset through the router")
    assert_eq(set(a), kept)
    # what the router cannot make exact is refused
    for bad in ({"sample": "reservoir"}, {"prototypes": "pr"}, {"given": {}}):
        assert_problem(rt.json("PUT", "/v1/datasets/sd/filters/bad", {
            "type": "semdedup", "params": dict(params, **bad)}), 422, "not_exact_on_shards")
    # a shard's partial needs the centroids
    assert_problem(c["shards"][0].json("POST", "/v1/datasets/sd/filters:partial", {
        "type": "semdedup", "params": params}), 422, "no_partial")

ADEF = {"space": "v", "family": "linear", "hidden": 8, "seed": 5, "max_epochs": 40}


def adapter_pairs():
    """20 queries, each with 30 records labelled relevant when their cosine passes a
    per-query cutoff (so that the cutoff depends on the query)."""
    c = data()
    rng = np.random.default_rng(44)
    qs = unit(rng.standard_normal((20, D)) + 0.6 * c["g"][:20]).astype(np.float32)
    lines = []
    for i, q in enumerate(qs):
        cos = unit(c["g"]) @ unit(q[None])[0]
        pick = np.argsort(-cos)[:30]
        cut = np.quantile(cos[pick], 0.3 + 0.4 * (q[0] > 0))
        lines += [{"query": q.tolist(), "id": c["ids"][k], "label": int(cos[k] >= cut)}
                  for k in pick]
    return qs, wn.ndjson(lines)


@test
def adapter_weights_copied_to_the_shards():
    """An adapter trained on one daemon (which holds every record, hence every pair) is copied
    through the router with PUT .../weights: every shard then holds the very same weights (the
    base64 blobs equal), and searches with the adapter through the router return one daemon's
    ids, cosines and relevances."""
    c = start()
    rt = router()
    single = c["single"]
    qs, pairs = adapter_pairs()
    for d in (single, rt):
        st, _, v = d.json("PUT", "/v1/datasets/h/adapters/ad", ADEF)
        assert_eq(st, 201, v)
    st, _, res = single.json("POST", "/v1/datasets/h/adapters/ad/pairs", pairs,
                             content_type="application/x-ndjson")
    assert_eq((st, res["rejected"]), (200, 0), res)
    curate.wait_job(single, curate.job_id(single.json("POST", "/v1/datasets/h/adapters/ad:train")))
    # an untrained adapter has no weights to give
    assert_problem(c["shards"][0].get_json("/v1/datasets/h/adapters/ad/weights"), 409,
                   "adapter_untrained")
    st, _, w = single.get_json("/v1/datasets/h/adapters/ad/weights")
    assert_eq((st, w["definition"], w["version"]), (200, dict(w["definition"], **ADEF), 2), w)
    # bad input changes nothing
    assert_problem(rt.json("PUT", "/v1/datasets/h/adapters/ad/weights",
                           dict(w, weights="!!")), 422, "bad_param")
    assert_problem(rt.json("PUT", "/v1/datasets/h/adapters/ad/weights",
                           dict(w, definition=dict(w["definition"], seed=6))), 409,
                   "adapter_changed")
    assert_problem(rt.json("PUT", "/v1/datasets/h/adapters/ad/weights", dict(w, extra=1)), 422,
                   "unknown_param")
    assert_problem(c["shards"][1].json("PUT", "/v1/datasets/h/adapters/ad/weights",
                                       dict(w, weights=w["weights"][:-8])), 422,
                   "bad_adapter_blob")
    # a well-formed blob of another shape (hidden 4, not 8) does not fit the definition
    raw = base64.b64decode(w["weights"])
    h4 = raw[:12] + struct.pack("<I", 4) + bytes(8 * (4 * D + 4 + 2 * 4 + 2))
    assert_problem(c["shards"][1].json("PUT", "/v1/datasets/h/adapters/ad/weights",
                                       dict(w, weights=base64.b64encode(h4).decode())), 422,
                   "bad_param")
    st, _, v = rt.json("PUT", "/v1/datasets/h/adapters/ad/weights", w)
    assert_eq(st, 200, v)
    assert_problem(rt.get_json("/v1/datasets/h/adapters/ad/weights"), 501,
                   "not_supported_by_router")
    for d in c["shards"]:
        st, _, sw = d.get_json("/v1/datasets/h/adapters/ad/weights")
        assert_eq((st, sw["weights"], sw["threshold"]), (200, w["weights"], w["threshold"]))
        assert_eq(sw["training"]["source"], "given")
        assert_eq(d.get_json("/v1/datasets/h/adapters/ad")[2]["state"], "trained")
    rng = np.random.default_rng(45)
    tq = unit(rng.standard_normal((6, D)) + 0.6 * c["g"][20:26]).astype(np.float32)
    for q in tq:
        for rel in ({"adapter": "ad"}, {"adapter": "ad", "min": 0.5}):
            b = {"vector": q.tolist(), "space": "v", "limit": 25, "relevance": rel,
                 "params": {"exact": True}}
            one, via = search(single, b)["results"], search(rt, b)["results"]
            assert_eq([x["id"] for x in via], [x["id"] for x in one], rel)
            assert_eq([(x["score"], x["relevance"]) for x in via],
                      [(x["score"], x["relevance"]) for x in one])
            if "min" in rel:  # the minimum keeps what numpy's cosines and the mapping keep
                assert all(x["relevance"] >= 0.5 for x in one)
    assert len(one) > 0


@test
def adapter_trained_through_the_router_equals_one_daemon():
    """Pairs through the router go to the shard owning their judged record, and
    :train through the router gathers every shard's queries, cosines and labels (:partial),
    trains once with the daemon's code and gives every shard the weights: equal bit for bit
    to one daemon trained on all the pairs (the training order does not depend on where a pair
    lives), the same threshold; searches through the router return one daemon's answers."""
    c = start()
    rt = router()
    single = c["single"]
    qs, pairs = adapter_pairs()
    lines = [json.loads(x) for x in pairs.decode().splitlines() if x.strip()]
    adef = dict(ADEF, seed=9, hidden=6)
    for d in (single, rt):
        assert_eq(d.json("PUT", "/v1/datasets/h/adapters/tr", adef)[0], 201)
    # untrained and without pairs: too few queries, from the router as from one daemon
    assert_problem(rt.json("POST", "/v1/datasets/h/adapters/tr:train"), 422, "too_few_queries")
    assert_problem(rt.json("POST", "/v1/datasets/h/adapters/nope:train"), 404, "adapter_not_found")
    # queries also named by record (of any shard: the router fetches the vector from its
    # owner when the judged record lives elsewhere), and bad lines, on the client's lines
    for k in range(40):
        lines.append({"query": {"record_id": c["ids"][100 + k % 8]}, "id": c["ids"][200 + k],
                      "label": int(k % 3 == 0)})
    lines.insert(7, {"query": {"record_id": "nope"}, "id": c["ids"][5], "label": 1})
    lines.insert(3, {"query": qs[0].tolist(), "id": "missing", "label": 1})
    body = wn.ndjson(lines).replace(b"\n", b"\n{not json\n", 1)
    answers = []
    for d in (single, rt):
        st, _, res = d.json("POST", "/v1/datasets/h/adapters/tr/pairs", body,
                            content_type="application/x-ndjson")
        assert_eq((st, res["accepted"], res["rejected"]), (200, len(lines) - 2, 3), res)
        answers.append([(x["line"], x["code"]) for x in res["errors"]])
    assert_eq(answers[1], answers[0])
    assert_eq(answers[0], [(2, "malformed_json"), (5, "record_not_found"),
                           (10, "record_not_found")])
    assert_eq(sum(d.get_json("/v1/datasets/h/adapters/tr")[2]["pairs"]["count"]
                  for d in c["shards"]), len(lines) - 2)
    for s, d in enumerate(c["shards"]):  # every pair on the shard of its judged record
        st, _, p = d.json("POST", "/v1/datasets/h/adapters/tr:partial")
        assert_eq(p["pairs"], sum(shard_of(x["id"]) == s for x in lines if x["id"] != "missing"
                                  and x["query"] != {"record_id": "nope"}))
    t0 = time.monotonic()
    curate.wait_job(single, curate.job_id(single.json("POST", "/v1/datasets/h/adapters/tr:train")))
    t1 = time.monotonic()
    st, _, v = rt.json("POST", "/v1/datasets/h/adapters/tr:train")
    t2 = time.monotonic()
    assert_eq((st, v["state"]), (200, "trained"), v)
    print("  %d pairs: one daemon's :train (job, polled) %.3f s; through the router over %d "
          "shards %.3f s" % (len(lines) - 2, t1 - t0, NSHARDS, t2 - t1))
    w1 = single.get_json("/v1/datasets/h/adapters/tr/weights")[2]
    for d in c["shards"]:
        ws = d.get_json("/v1/datasets/h/adapters/tr/weights")[2]
        assert_eq((ws["weights"], ws["threshold"]), (w1["weights"], w1["threshold"]))
        for k in ("epochs", "best_epoch", "queries", "pairs", "relevant", "held_out",
                  "train_loss", "held_out_loss"):
            assert_eq(ws["training"][k], w1["training"][k], k)
    rng = np.random.default_rng(46)
    tq = unit(rng.standard_normal((5, D)) + 0.6 * c["g"][30:35]).astype(np.float32)
    kept = []
    for q in tq:
        b = {"vector": q.tolist(), "space": "v", "limit": 200, "params": {"exact": True},
             "relevance": {"adapter": "tr", "min": w1["threshold"]}}
        one, via = search(single, b)["results"], search(rt, b)["results"]
        assert_eq([(x["id"], x["relevance"]) for x in via], [(x["id"], x["relevance"]) for x in one])
        kept.append(len(one))
    assert 0 < sum(kept) < 1000, kept  # the threshold keeps some, not all


@test
def teardown():
    stop()


if __name__ == "__main__":
    wn.main()
