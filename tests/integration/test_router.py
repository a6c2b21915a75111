# SPDX-License-Identifier: MIT
"""The router (issue 18 items 1-3): 3 shard daemons behind `winnowd --router` against 1 reference
daemon holding the same records. Placement against a Python reimplementation of the documented
hash; ingest split by id with the client's line numbers; exact global selection (top_fraction
with ties, top_k with id tie-breaks, bottom rules, tau, threshold, chained steps) giving the same
members and byte-identical .npy as one daemon, and equal to numpy; search merged exactly (Flat
index and exact scan), threshold pages walking every result once, search:count summed; an
unreachable shard answered 502 naming it; routes the router does not serve answered 501."""

import hashlib
import json
import os
import socket
import tempfile
import threading
import time

import numpy as np

import curate
import wn
from wn import assert_eq, assert_problem, test

N = 100000          # records of the selection pool
NS = 3000           # records of the search dataset
D = 16
VIRTUAL = 1024
_st = {}


def place(rid, n, v=VIRTUAL):
    """The documented placement (docs/scale.md), independently of the C code."""
    h = int.from_bytes(hashlib.sha256(rid.encode()).digest()[:8], "big") % v
    return h * n // v


def cluster():
    if "router" in _st:
        return _st["ref"], _st["shards"], _st["router"]
    ref = wn.Daemon(log_level="info")
    shards = [wn.Daemon(log_level="info") for _ in range(3)]
    d = tempfile.mkdtemp(prefix="winnow-router-")
    cf = os.path.join(d, "shards.json")
    with open(cf, "w") as f:
        json.dump({"virtual_shards": VIRTUAL,
                   "shards": [{"url": "http://127.0.0.1:%d" % s.port} for s in shards]}, f)
    router = wn.Daemon(log_level="info", extra_args=["--router", cf])
    _st.update(ref=ref, shards=shards, router=router, dir=d)
    for x in [ref] + shards + [router]:
        wn._teardowns.append(("daemon %d stops cleanly" % x.port, _Stop(x)))
    return ref, shards, router


class _Stop:
    def __init__(self, d):
        self.d = d

    def teardown(self):
        try:
            self.d.stop()
        finally:
            self.d.close()


def pool():
    """100,000 uids; signal a: 20 integer values (heavy ties), b: 2 decimals; 1% without a."""
    if "ids" in _st:
        return _st["ids"], _st["a"], _st["b"]
    rng = np.random.default_rng(18)
    ids = ["%032x" % x for x in rng.integers(0, 2**63, N, dtype=np.int64)]
    a = rng.integers(0, 20, N).astype(np.float64)
    a[rng.random(N) < 0.01] = np.nan
    b = np.round(rng.random(N) * 50, 2)
    _st.update(ids=ids, a=a, b=b)
    return ids, a, b


def ndjson(lo, hi):
    """Records lo..hi as NDJSON bytes (formatted directly: json.dumps per record is slow)."""
    ids, a, b = pool()
    out = []
    for i in range(lo, hi):
        sb = '"b": {"prior_nll": %r, "cond_nll": 0, "tokens": 1}' % float(b[i])
        sa = "" if np.isnan(a[i]) else \
            ', "a": {"prior_nll": %r, "cond_nll": 0, "tokens": 1}' % float(a[i])
        out.append('{"id": "%s", "text": "t", "signals": {%s%s}}' % (ids[i], sb, sa))
    return ("\n".join(out) + "\n").encode()


def loaded():
    ref, shards, router = cluster()
    if _st.get("loaded"):
        return ref, shards, router
    for d in (ref, router):
        assert_eq(d.put_dataset("p", {"spaces": {}})[0], 201)
        for name, sig in (("fa", "a"), ("fb", "b")):
            curate.wait_job(d, curate.put_filter(d, "p", name, {"type": "color",
                                                                "params": {"signal": sig}}))
    step = min(N, 25000)
    for lo in range(0, N, step):
        body = ndjson(lo, lo + step)
        answers = {}

        def send(d):
            answers[d.port] = d.json("POST", "/v1/datasets/p/records", body,
                                     content_type="application/x-ndjson")
        ts = [threading.Thread(target=send, args=(d,)) for d in (ref, router)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for d in (ref, router):
            st, _, ans = answers[d.port]
            assert_eq((st, ans["accepted"], ans["rejected"]), (200, step, 0), "ingest")
    _st["loaded"] = True
    return ref, shards, router


@test
def test_placement_matches_the_documented_hash():
    ref, shards, router = loaded()
    ids, _, _ = pool()
    counts = [s.get_json("/v1/datasets/p")[2]["records"] for s in shards]
    want = np.bincount([place(i, 3) for i in ids], minlength=3).tolist()
    assert_eq(counts, want, "records per shard")
    for rid in ids[:30]:
        k = place(rid, 3)
        for j, s in enumerate(shards):
            st = s.request("GET", "/v1/datasets/p/records/%s" % rid)[0]
            assert_eq(st, 200 if j == k else 404, "record %s on shard %d" % (rid, j))
    st, _, ds = router.get_json("/v1/datasets/p")
    assert_eq((st, ds["records"]), (200, N), "the router sums the shards")
    st, _, rec = router.get_json("/v1/datasets/p/records/%s" % ids[7])
    assert_eq((st, rec["id"]), (200, ids[7]))


@test
def test_ingest_errors_keep_the_client_line_numbers():
    _, _, router = cluster()
    assert_eq(router.put_dataset("e", {"spaces": {"v": {"dim": 2}}})[0], 201)
    recs = [{"id": "x%d" % i, "embeddings": {"v": [1, i]}} for i in range(40)]
    recs[12] = {"id": "bad12", "embeddings": {"v": [1, 2, 3]}}
    recs[33] = "{not json"
    recs.insert(20, {"embeddings": {"v": [1, 1]}})  # no id: line 21
    st, _, body = router.ingest("e", recs)
    assert_eq((st, body["accepted"], body["rejected"]), (200, 38, 3))
    assert_eq([(e["line"], e["code"]) for e in body["errors"]],
              [(13, "dimension_mismatch"), (21, "missing_id"), (35, "malformed_json")])
    st, _, body = router.ingest("e", [{"id": "y", "embeddings": {"v": [1]}}])
    assert_problem((st, _, body), 422)
    st, _, body = router.ingest("nosuch", [{"id": "y%d" % i} for i in range(30)])
    assert_problem((st, _, body), 404)
    recs = [{"id": "j%d" % i, "embeddings": {"v": [i, 1]}} for i in range(9)]
    recs[4]["embeddings"]["v"] = [1, 2, 3]
    st, _, body = router.json("POST", "/v1/datasets/e/records",
                              json.dumps({"records": recs}).encode(),
                              content_type="application/json")
    assert_eq((st, body["accepted"], [(e["line"], e["code"]) for e in body["errors"]]),
              (200, 8, [(5, "dimension_mismatch")]), "JSON form: line = index + 1")
    assert_eq(router.get_json("/v1/datasets/e")[2]["records"], 38 + 8)


@test
def test_probe_describes_the_survivors_scores():
    ref, _, _ = loaded()
    _, a, b = pool()
    keep = ~np.isnan(a) & (a.astype(np.float32) >= 10)
    fb = b.astype(np.float32)[keep]
    st, _, p = ref.json("POST", "/v1/datasets/p/subsets:probe",
                        {"steps": [{"filter": "fa", "threshold": 10}], "filter": "fb",
                         "lo": 10.0, "hi": 20.0, "bins": 7, "values_max": 100000,
                         "tie_score": float(fb[0]), "tie_ids": 3})
    assert_eq(st, 200, p)
    assert_eq((p["survivors"], p["n"]), (int(keep.sum()), int(keep.sum())))
    assert_eq((p["below"], p["above"]), (int((fb < 10).sum()), int((fb > 20).sum())))
    assert_eq(sum(p["bins"]), p["in_range"])
    key = lambda v: np.where(np.asarray(v, np.float32) >= 0,
                             np.asarray(v, np.float32).view(np.uint32) | np.uint32(2**31),
                             ~np.asarray(v, np.float32).view(np.uint32)).astype(np.int64)
    klo, khi = int(key([10.0])[0]), int(key([20.0])[0])
    kin = key(fb[(fb >= 10) & (fb <= 20)])
    want_bins = np.bincount((kin - klo) // ((khi - klo) // 7 + 1), minlength=7).tolist()
    assert_eq(p["bins"], want_bins, "histogram by float key")
    vals, counts = np.unique(fb[(fb >= 10) & (fb <= 20)], return_counts=True)
    assert_eq([(np.float32(v), c) for v, c in p["values"]], list(zip(vals, counts)))
    ids, _, _ = pool()
    tied = sorted(ids[i] for i in np.nonzero(keep)[0] if np.float32(b[i]) == fb[0])
    assert_eq((p["tie_count"], p["tie_ids"]), (len(tied), tied[:3]))
    st, _, p = ref.json("POST", "/v1/datasets/p/subsets:probe",
                        {"filter": "fb", "values_max": 10})
    assert_eq((st, p["values"], p["n"]), (200, None, N))


def both_subsets(name, steps):
    ref, _, router = loaded()
    for d in (ref, router):
        curate.wait_job(d, curate.put_subset(d, "p", name, steps))
    a = curate.export(ref, "p", name, "?format=npy")[1]
    b = curate.export(router, "p", name, "?format=npy")[1]
    ids_ref = sorted(curate.export(ref, "p", name, "?format=ids")[1].decode().split())
    ids_rt = sorted(curate.export(router, "p", name, "?format=ids")[1].decode().split())
    assert_eq(len(ids_rt), len(ids_ref), "%s: members" % name)
    assert ids_rt == ids_ref, "%s: member sets differ" % name
    assert a == b, "%s: .npy differs (%d vs %d bytes)" % (name, len(a), len(b))
    st, _, view = router.get_json("/v1/datasets/p/subsets/%s" % name)
    assert_eq((st, view["state"], view["provenance"]["members"]), (200, "ready", len(ids_ref)))
    want = ref.get_json("/v1/datasets/p/subsets/%s" % name)[2]
    assert_eq(view["steps"], want["steps"], "the client's steps")
    keys = ("rule", "filter", "threshold", "unscorable", "in", "out")
    assert_eq([{k: p.get(k) for k in keys} for p in view["provenance"]["steps"]],
              [{k: p.get(k) for k in keys} for p in want["provenance"]["steps"]], "provenance")
    return set(ids_ref)


def numpy_top_fraction(scores, f, top=True):
    ids, _, _ = pool()
    fin = ~np.isnan(scores)
    s = np.sort(scores[fin])
    n = len(s)
    k = min(int(np.floor(n * f)), n - 1)
    if top:
        t = s[n - 1 - k]
        keep = fin & (scores >= t)
    else:
        t = s[k]
        keep = fin & (scores <= t)
    return {ids[i] for i in np.nonzero(keep)[0]}


def numpy_top_k(scores, k, top=True):
    ids, _, _ = pool()
    order = sorted((i for i in range(N) if not np.isnan(scores[i])),
                   key=lambda i: ((-scores[i] if top else scores[i]), ids[i].encode()))
    return {ids[i] for i in order[:k]}


@test
def test_top_fraction_with_ties_equals_one_daemon_and_numpy():
    _, a, _ = pool()
    got = both_subsets("tf", [{"filter": "fa", "top_fraction": 0.3}])
    rounds = [int(e["probe_rounds"]) for e in _st["router"].events("router_subset")
              if e.get("subset") == "tf"]
    assert_eq(rounds, [2], "probe round trips: N, then one histogram round that lists values")
    want = numpy_top_fraction(a.astype(np.float32), 0.3)
    ref, _, router = loaded()
    lines, summary = curate.export_ndjson(router, "p", "tf", "?format=ndjson&fields=id,scores")
    ref_summary = curate.export_ndjson(ref, "p", "tf")[1]
    assert_eq((summary["count"], summary["skipped_deleted"]),
              (ref_summary["count"], ref_summary["skipped_deleted"]), "summary summed")
    assert_eq({l["id"] for l in lines}, got, "NDJSON members")
    assert all(l["scores"]["fa"] is not None for l in lines)
    assert_eq(len(got), len(want))
    assert got == want, "top_fraction 0.3 differs from numpy"


@test
def test_top_k_and_bottom_rules_with_ties_break_by_id():
    _, a, _ = pool()
    got = both_subsets("tk", [{"filter": "fa", "top_k": 12345}])
    assert got == numpy_top_k(a.astype(np.float32), 12345), "top_k differs from numpy"
    ref, _, router = loaded()
    ids, _, _ = pool()
    for rid in ids[:12]:
        q = "/v1/datasets/p/records/%s/decisions?subset=tk" % rid
        da, db = ref.get_json(q), router.get_json(q)
        assert_eq((db[0], db[2]), (da[0], da[2]), "decisions of %s" % rid)
    got = both_subsets("bk", [{"filter": "fa", "bottom_k": 777}])
    assert got == numpy_top_k(a.astype(np.float32), 777, top=False), "bottom_k differs"
    got = both_subsets("bf", [{"filter": "fa", "bottom_fraction": 0.1}])
    assert got == numpy_top_fraction(a.astype(np.float32), 0.1, top=False), "bottom_fraction"
    both_subsets("tau", [{"filter": "fb", "top_k": {"tau": 7}}])
    both_subsets("all", [{"filter": "fa", "top_fraction": 1}])
    both_subsets("none", [{"filter": "fa", "top_k": 0}])


@test
def test_threshold_and_chained_steps():
    _, a, _ = pool()
    got = both_subsets("th", [{"filter": "fa", "threshold": 7}])
    ids, _, _ = pool()
    assert got == {ids[i] for i in range(N) if a[i] >= 7}
    both_subsets("chain", [{"filter": "fa", "top_fraction": 0.5}, {"filter": "fb", "top_k": 3000},
                           {"filter": "fa", "bottom_fraction": 0.4}])


@test
def test_filter_stats_over_100k_records_equal_one_daemon():
    """33,000 scores a shard: the order statistics take several probe rounds each."""
    ref, _, router = loaded()
    for f in ("fa", "fb"):
        st, _, one = ref.get_json("/v1/datasets/p/filters/%s/stats?bins=50&threshold=10" % f)
        assert_eq(st, 200, one)
        st, _, via = router.get_json("/v1/datasets/p/filters/%s/stats?bins=50&threshold=10" % f)
        assert_eq(st, 200, via)
        assert abs(via.pop("mean") - one.pop("mean")) <= 1e-12 * abs(one["max"]), f
        assert_eq(via, one, f)


@test
def test_router_refuses_what_it_cannot_make_exact():
    ref, _, router = loaded()
    # per_cluster is served (below); over a filter without clusters, one daemon's 422
    bad = {"steps": [{"filter": "fa", "top_fraction": 0.3, "per_cluster": True}]}
    st, _, one = ref.json("PUT", "/v1/datasets/p/subsets/x", bad)
    assert_problem((st, _, one), 422, "bad_step")
    st, _, body = router.json("PUT", "/v1/datasets/p/subsets/x", bad)
    assert_problem((st, _, body), 422, "bad_step")
    assert_eq(body["detail"], one["detail"])
    st, _, body = router.json("PUT", "/v1/datasets/p/subsets/x",
                              {"steps": [{"filter": "nope", "top_fraction": 0.3}]})
    assert_eq(st, 422, body)
    st, _, body = router.json("POST", "/v1/datasets/p/filters/fa:sweep", {"thresholds": [1]})
    assert_problem((st, _, body), 501, "not_supported_by_router")


PK = 8          # clusters of the per_cluster pool
NPC = 3000      # its records


def per_cluster_pool():
    """Dataset "pc" on the reference and through the router: record i of cluster c is e_c plus
    v * e_(c+1 mod PK) with v one of four values, so its prototypes score against the one-hot
    centroids, 1 - 1/sqrt(1 + v^2), is exact in any kernel (one product by 1, the rest by 0) and
    ties in large groups; cluster sizes skewed (one cluster of 6 records)."""
    ref, _, router = cluster()
    if "pc" in _st:
        return ref, router, _st["pc"]
    rng = np.random.default_rng(42)
    lab = rng.choice(PK, NPC, p=[0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.05, 0.0])
    lab[:6] = PK - 1
    v = rng.choice([0.0, 0.25, 0.5, 0.75], NPC)
    x = np.eye(PK, dtype=np.float32)[lab]
    x[np.arange(NPC), (lab + 1) % PK] = v
    ids = ["%016x" % z for z in rng.integers(0, 2**62, NPC, dtype=np.int64)]
    recs = [{"id": ids[i], "embeddings": {"emb": curate.emb(x[i])}} for i in range(NPC)]
    for d in (ref, router):
        assert_eq(d.put_dataset("pc", {"spaces": {"emb": {"dim": PK, "dtype": "f32"}}})[0], 201)
        st, _, body = d.ingest("pc", recs)
        assert_eq((st, body.get("accepted"), body.get("rejected")), (200, NPC, 0), body)
        curate.wait_job(d, curate.put_filter(d, "pc", "ssp", {"type": "prototypes", "params": {
            "space": "emb", "centroids": np.eye(PK).tolist()}}))
    score = 1 - 1 / np.sqrt(1 + v.astype(np.float64) ** 2)
    _st["pc"] = (ids, lab, score)
    return ref, router, _st["pc"]


def per_cluster_expected(ids, lab, score, alive, f, top, m=1):
    """The members of a per_cluster step, in Python: round(f N) apportioned (curate.apportion),
    then inside each cluster the best by score, ties by the smaller id."""
    cand = [i for i in range(len(ids)) if alive[i]]
    sizes = [sum(1 for i in cand if lab[i] == c) for c in range(PK)]
    want, _ = curate.apportion(sizes, int(np.floor(f * len(cand) + 0.5)), m)
    keep, split = set(), 0
    for c in range(PK):
        rows = sorted((i for i in cand if lab[i] == c),
                      key=lambda i: ((-score[i] if top else score[i]), ids[i]))
        keep |= {ids[i] for i in rows[:want[c]]}
        w = want[c]
        split += 0 < w < len(rows) and score[rows[w - 1]] == score[rows[w]]
    assert split > 0, "no cluster's cut falls inside a tie"
    return keep


@test
def test_per_cluster_steps_through_the_router_equal_one_daemon_and_python():
    ref, router, (ids, lab, score) = per_cluster_pool()
    every = np.ones(NPC, bool)
    cases = [("pt", [{"filter": "ssp", "top_fraction": 0.3, "per_cluster": True}],
              per_cluster_expected(ids, lab, score, every, 0.3, True)),
             # the rule's key after per_cluster: the provenance still names the rule
             ("pb", [{"per_cluster": True, "min_per_cluster": 3, "filter": "ssp",
                      "bottom_fraction": 0.01}],
              per_cluster_expected(ids, lab, score, every, 0.01, False, 3))]
    # a chain: a global cut first, then per_cluster over its survivors
    first = {ids[i] for i in range(NPC) if score[i] > 0.01}
    alive = np.array([i in first for i in ids])
    cases.append(("pc2", [{"filter": "ssp", "threshold": 0.01},
                          {"filter": "ssp", "top_fraction": 0.45, "per_cluster": True}],
                  per_cluster_expected(ids, lab, score, alive, 0.45, True)))
    for name, steps, want in cases:
        got = {}
        for d in (ref, router):
            curate.wait_job(d, curate.put_subset(d, "pc", name, steps))
            _, body = curate.export(d, "pc", name, "?format=ids")
            got[d.port] = set(body.decode().split())
        assert_eq(got[ref.port], want, name + ": one daemon against Python")
        assert_eq(got[router.port], want, name + ": the router against Python")
        st, _, sub = router.get_json("/v1/datasets/pc/subsets/" + name)
        assert_eq((st, sub["steps"]), (200, steps), name)
        one = ref.get_json("/v1/datasets/pc/subsets/" + name)[2]
        # the provenance: the apportionment, the realised count and the clusters' counts summed
        assert_eq(sub["provenance"]["steps"], one["provenance"]["steps"], name)


def search_data():
    ref, _, router = cluster()
    if "sx" in _st:
        return ref, router, _st["sx"]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((NS, D)).astype(np.float32)
    x[100:110] = x[5]  # equal vectors: equal scores
    for d in (ref, router):
        assert_eq(d.put_dataset("s", {"spaces": {"v": {"dim": D}}})[0], 201)
        recs = [{"id": "s%05d" % i, "embeddings": {"v": curate.emb(x[i])}} for i in range(NS)]
        assert_eq(d.ingest("s", recs)[0], 200)
        curate.wait_job(d, curate.job_id(d.json("PUT", "/v1/datasets/s/indexes/v",
                                                {"factory": "Flat", "metric": "cosine"})))
    _st["sx"] = x
    return ref, router, x


def scores_ids(body):
    return [(r["id"], round(r["score"], 5)) for r in body["results"]]


@test
def test_search_top_k_equals_one_daemon():
    ref, router, x = search_data()
    rng = np.random.default_rng(3)
    for q in list(rng.standard_normal((4, D)).astype(np.float32)) + [x[5]]:
        for params in ({}, {"params": {"exact": True}}):
            body = dict({"vector": q.tolist(), "space": "v", "limit": 25}, **params)
            a = ref.json("POST", "/v1/datasets/s/search", body)
            b = router.json("POST", "/v1/datasets/s/search", body)
            assert_eq((a[0], b[0]), (200, 200))
            sa, sb = scores_ids(a[2]), scores_ids(b[2])
            assert_eq([s for _, s in sb], [s for _, s in sa], "scores in order")
            assert_eq({i for i, _ in sb}, {i for i, _ in sa}, "ids")
            assert_eq(b[2]["stats"]["returned"], 25)
    qs = rng.standard_normal((3, D)).astype(np.float32)
    a = ref.json("POST", "/v1/datasets/s/search", {"vectors": qs.tolist(), "space": "v", "limit": 7})
    b = router.json("POST", "/v1/datasets/s/search", {"vectors": qs.tolist(), "space": "v",
                                                      "limit": 7})
    raw = router.json("POST", "/v1/datasets/s/search?space=v&limit=7", qs.astype("<f4").tobytes(),
                      content_type="application/octet-stream")
    assert_eq((a[0], b[0], raw[0]), (200, 200, 200))
    for qa, qb, qr in zip(a[2]["queries"], b[2]["queries"], raw[2]["queries"]):
        assert_eq(scores_ids(qb), scores_ids(qa), "batch query")
        assert_eq(scores_ids(qr), scores_ids(qa), "raw rows query")
    st, _, b = router.json("POST", "/v1/datasets/s/search",
                           {"record_id": "s00005", "space": "v", "limit": 12})
    assert_eq(st, 200, b)
    assert_eq({r["id"] for r in b["results"][:11]},
              {"s00005"} | {"s%05d" % i for i in range(100, 110)}, "record_id query")


@test
def test_binary_answers_through_the_router():
    """Accept: application/vnd.winnow.hits through the router: its merged answer in the binary
    layout, the same results as one daemon's (whose Flat index gives its own scores, within
    float rounding) and the very floats of the router's JSON answer (exact scores)."""
    ref, router, x = search_data()
    qs = np.random.default_rng(5).standard_normal((4, D)).astype(np.float32)
    rb = qs.astype("<f4").tobytes()
    hdr = {"Accept": wn.HITS}
    got = {}
    for name, d in (("ref", ref), ("router", router)):
        st, h, data = d.request("POST", "/v1/datasets/s/search?space=v&limit=9", rb, headers=hdr,
                                content_type="application/octet-stream")
        assert_eq((st, h["content-type"]), (200, wn.HITS), name)
        got[name] = wn.decode_hits(data)
    js = router.json("POST", "/v1/datasets/s/search?space=v&limit=9", rb,
                     content_type="application/octet-stream")[2]["queries"]
    for (ia, sa, ta), (ib, sb, tb), j in zip(got["ref"], got["router"], js):
        assert_eq(set(ib), set(ia), "ids")
        assert np.abs(np.sort(sa) - np.sort(sb)).max() < 1e-6, (sa, sb)
        assert_eq((ib, sb.tolist(), tb), ([r["id"] for r in j["results"]],
                                          [float(np.float32(r["score"])) for r in j["results"]],
                                          j["stats"]["truncated"]))
    # a single JSON query is a batch of one; what the binary answer cannot hold is a 406
    st, h, data = router.request("POST", "/v1/datasets/s/search",
                                 {"vector": qs[0].tolist(), "space": "v", "limit": 9}, headers=hdr)
    assert_eq((st, wn.decode_hits(data)[0][0]), (200, got["router"][0][0]))
    assert_problem(router.json("POST", "/v1/datasets/s/search?space=v&with=meta", rb, headers=hdr,
                               content_type="application/octet-stream"), 406, "not_acceptable")
    assert_problem(router.json("POST", "/v1/datasets/s/search:count?space=v&score_threshold=0.5",
                               rb, headers=hdr, content_type="application/octet-stream"),
                   406, "not_acceptable")


@test
def test_threshold_pages_walk_every_result_once():
    ref, router, x = search_data()
    q = np.random.default_rng(4).standard_normal(D).astype(np.float32)
    body = {"vector": q.tolist(), "space": "v", "score_threshold": 0.2, "limit": 37}
    want = {}
    tok = None
    while True:
        b = dict(body, **({"page_token": tok} if tok else {}))
        st, _, page = ref.json("POST", "/v1/datasets/s/search", b)
        assert_eq(st, 200, page)
        want.update((r["id"], r["score"]) for r in page["results"])
        tok = page["page_token"]
        if not tok:
            break
    got, tok, pages, last = [], None, 0, 2.0
    while True:
        b = dict(body, **({"page_token": tok} if tok else {}))
        st, _, page = router.json("POST", "/v1/datasets/s/search", b)
        assert_eq(st, 200, page)
        for r in page["results"]:
            assert r["score"] <= last + 1e-7, "descending across pages"
            last = r["score"]
        got += [r["id"] for r in page["results"]]
        pages += 1
        tok = page["page_token"]
        assert_eq(page["stats"]["truncated"], tok is not None)
        if not tok:
            break
    assert_eq(len(got), len(set(got)), "no result twice")
    assert_eq(set(got), set(want), "every result")
    assert pages > 1, pages
    u = x.astype(np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
    qq = q.astype(np.float64) / np.linalg.norm(q)
    assert_eq(len(got), int(np.sum(u @ qq >= 0.2 - 1e-6)), "numpy count")
    st, _, c = router.json("POST", "/v1/datasets/s/search:count", body)
    assert_eq((st, c["count"]), (200, len(want)), "search:count sums")
    st, _, _ = router.json("POST", "/v1/datasets/s/search", dict(body, page_token="r1.xx"))
    assert_eq(st, 400)


@test
def test_jobs_are_composite_and_summed():
    _, shards, router = loaded()
    st, _, jobs = router.get_json("/v1/jobs")
    assert_eq(st, 200)
    assert all(j["id"].count("-") == 2 for j in jobs["jobs"]), jobs["jobs"][:2]
    created = [j["created"] for j in jobs["jobs"]]
    assert_eq(created, sorted(created, reverse=True), "newest first over the shards")
    assert_eq(len(router.get_json("/v1/jobs?limit=2")[2]["jobs"]), 2)
    jid = curate.put_subset(router, "p", "j", [{"filter": "fb", "threshold": 10}])
    j = curate.wait_job(router, jid)
    parts = jid.split("-")
    assert_eq(len(parts), 3)
    total = sum(shards[i].get_json("/v1/jobs/%s" % parts[i])[2]["total"] for i in range(3))
    assert_eq(j["total"], total)
    assert_eq(router.get_json("/v1/jobs/12")[0], 404)


@test
def test_unreachable_or_silent_shard_is_a_502_naming_it():
    _, shards, _ = cluster()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    silent = socket.socket()  # accepts connections (backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    cf = os.path.join(_st["dir"], "dead.json")
    with open(cf, "w") as f:
        json.dump({"shards": [{"url": "http://127.0.0.1:%d" % shards[0].port},
                              {"url": "http://127.0.0.1:%d" % dead},
                              {"url": "http://127.0.0.1:%d" % silent.getsockname()[1]}]}, f)
    # /readyz is not ready with a dead shard, so start without waiting for it
    r = _start_unready(cf)
    try:
        t0 = time.monotonic()
        st, _, body = r.get_json("/v1/datasets/p")
        took = time.monotonic() - t0
        assert_problem((st, _, body), 502, "shard_unreachable")
        assert ("127.0.0.1:%d" % dead) in body["detail"], body
        assert took < 10, "bounded by --shard-timeout 1: %.1fs" % took
        st, _, body = r.get_json("/readyz")
        assert_eq(st, 503)
        assert_eq([x["status"] for x in body["shards"]], ["ready", "unreachable", "unreachable"])
        st, _, body = r.json("POST", "/v1/datasets/p/search:count",
                             {"vector": [0] * 4, "score_threshold": 0.5})
        assert_problem((st, _, body), 502, "shard_unreachable")
    finally:
        silent.close()
        r.stop()
        r.close()


def _start_unready(cf):
    class Unready(wn.Daemon):
        def _wait_ready(self):
            return None
    return Unready(log_level="info", extra_args=["--router", cf, "--shard-timeout", "1"])


@test
def test_definitions_all_or_partial_and_a_retry_completes():
    _, shards, router = cluster()
    # shard 2 already has "z" with another schema: shard 0 takes the PUT, shard 2 refuses it
    assert_eq(shards[2].put_dataset("z", {"spaces": {"w": {"dim": 3}}})[0], 201)
    st, _, body = router.put_dataset("z", {"spaces": {"v": {"dim": 2}}})
    assert_problem((st, _, body), 502, "partial")
    assert_eq([x["status"] for x in body["shards"]], [201, 201, 409])
    assert_eq(shards[2].request("DELETE", "/v1/datasets/z")[0], 204)
    st, _, body = router.put_dataset("z", {"spaces": {"v": {"dim": 2}}})
    assert_eq(st, 200, body)  # shard 0 has it already (PUT is idempotent)
    assert all(s.get_json("/v1/datasets/z")[2]["spaces"] == {"v": {"dim": 2, "dtype": "f32"}}
               for s in shards)
    # refused by shard 0: nothing changes anywhere
    st, _, body = router.put_dataset("z", {"spaces": {"v": {"dim": 5}}})
    assert_problem((st, _, body), 409)
    st, _, body = router.json("PUT", "/v1/datasets/p/filters/proto",
                              {"type": "exact_dup", "params": {"space": "x"}})
    assert_problem((st, _, body), 501, "not_supported_by_router")
    assert_eq(shards[0].get_json("/v1/datasets/p/filters/proto")[0], 404)


@test
def test_a_second_router_over_the_same_shards_answers_the_same():
    _, _, router = loaded()
    r2 = wn.Daemon(log_level="info",
                   extra_args=["--router", os.path.join(_st["dir"], "shards.json")])
    try:
        for path in ("/v1/datasets/p", "/v1/datasets/p/subsets/tf", "/v1/datasets/p/filters"):
            a, b = router.get_json(path), r2.get_json(path)
            assert_eq((a[0], a[2]), (b[0], b[2]), path)
    finally:
        r2.stop()
        r2.close()


@test
def test_python_client_and_cli_work_through_the_router():
    import subprocess
    import sys
    sys.path.insert(0, os.path.join(wn.REPO, "clients", "python"))
    import winnow
    ref, _, router = loaded()
    c = winnow.Client("http://127.0.0.1:%d" % router.port)
    c.put_subset("p", "py", [{"filter": "fa", "top_k": 5000}], wait=True)
    got = c.export_npy("p", "py")
    curate.wait_job(ref, curate.put_subset(ref, "p", "py", [{"filter": "fa", "top_k": 5000}]))
    want = curate.export(ref, "p", "py", "?format=npy")[1]
    arr = np.load(__import__("io").BytesIO(want))
    assert_eq((len(got), list(got[:3])), (len(arr), list(arr[:3])), "client export_npy")
    cli = [os.path.join(os.path.dirname(wn.WINNOWD), "winnow"), "--quiet", "--url",
           "http://127.0.0.1:%d" % router.port]
    out = os.path.join(_st["dir"], "cli.npy")
    for args in (["subset", "put", "p", "cli", '[{"filter": "fa", "top_k": 5000}]', "--wait"],
                 ["export", "p", "cli", "-o", out, "--format", "npy"]):
        p = subprocess.run(cli + args, capture_output=True, text=True, timeout=120)
        assert_eq(p.returncode, 0, p.stderr)
    with open(out, "rb") as f:
        assert f.read() == want, "the CLI's .npy through the router"


@test
def test_bad_cluster_file_exits_2():
    cf = os.path.join(tempfile.mkdtemp(prefix="winnow-router-"), "c.json")
    with open(cf, "w") as f:
        json.dump({"shards": [{"url": "http://127.0.0.1:1"}], "replicas": 2}, f)
    import subprocess
    p = subprocess.run([wn.WINNOWD, "--router", cf, "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=30)
    assert_eq(p.returncode, 2)
    assert "unknown field 'replicas'" in p.stderr, p.stderr


if __name__ == "__main__":
    wn.main()
