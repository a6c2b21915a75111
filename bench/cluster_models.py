#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""cluster_models: the cost of corpus-wide models through a router (issue 18 item 4,
docs/scale.md "Corpus-wide models"), as ratios against one daemon holding every record, run in
this script on the same data (1 daemon; 3 shard daemons and `winnowd --router`, all on this
machine, so the cluster has no more cores than the single daemon: the ratios measure the
router's extra round trips and merges, not a speed-up).

- hubness: PUT of a normaliser (inline banks) until its statistics are ready (and, through the
  router, the first GET that merges the activation sets); the median latency of a DualIS search
  (100 candidates) and of a plain search, router / single.
- color_ngram: PUT until scored (cross-fitted, 2 folds); the size of the shards' partials.
- prototypes: PUT until scored (k-means on the id-hash sample); the size of the partials.
- semdedup: PUT until scored (k-means on the id-hash sample, then the router's dedup stage over
  every shard's pool); the size of a shard's pool partial; the keep counts (checked equal).

--quick: a smaller gallery and corpus (a smoke run)."""

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import curate  # noqa: E402
import textcorpus  # noqa: E402
import wn  # noqa: E402

VSH = 1024


def shard_of(rid, n):
    v = int.from_bytes(hashlib.sha256(rid.encode()).digest()[:8], "big") % VSH
    return v * n // VSH


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def put_and_wait(d, path, body):
    st, hdrs, res = d.json("PUT", path, body)
    assert st == 202, (st, res)
    curate.wait_job(d, curate.job_id((st, hdrs, res)), timeout=600)


def median_latency(d, body, n=50):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        st, _, res = d.json("POST", "/v1/datasets/h/search", body)
        ts.append(time.perf_counter() - t)
        assert st == 200, res
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    n, dim = (4000, 32) if a.quick else (40000, 64)
    rng = np.random.default_rng(1)
    g = unit(rng.standard_normal((n, dim)) + 0.5).astype(np.float32)
    ids = ["r%06d" % i for i in range(n)]
    big = ["--definition-body-limit", "256M"]
    single = wn.Daemon(log_level="info")
    shards = [wn.Daemon(log_level="info", extra_args=big) for _ in range(3)]
    cf = os.path.join(tempfile.mkdtemp(prefix="winnow-bench-"), "shards.json")
    with open(cf, "w") as f:
        json.dump({"virtual_shards": VSH,
                   "shards": [{"url": "http://127.0.0.1:%d" % d.port} for d in shards]}, f)
    router = wn.Daemon(log_level="info", extra_args=["--router", cf])
    try:
        recs = [{"id": ids[i], "embeddings": {"v": curate.emb(g[i])}} for i in range(n)]
        for d in (single, router):
            d.put_dataset("h", {"spaces": {"v": {"dim": dim}}})
            for i in range(0, n, 5000):
                assert d.ingest("h", recs[i:i + 5000])[0] == 200
            put_and_wait(d, "/v1/datasets/h/indexes/v", {"factory": "Flat", "metric": "cosine"})
        qb = unit(rng.standard_normal((200, dim)) + 0.5).astype(np.float32)
        sel = rng.choice(n, 500, replace=False)
        body = {"space": "v", "query_bank": {"vectors": qb.tolist()},
                "gallery_bank": {"vectors": g[sel].tolist(), "ids": [ids[i] for i in sel]}}
        t1 = timed(lambda: put_and_wait(single, "/v1/datasets/h/hubness/n", body))
        t3 = timed(lambda: (put_and_wait(router, "/v1/datasets/h/hubness/n", body),
                            router.get_json("/v1/datasets/h/hubness/n")))
        print("hubness: %d records, banks 200 + 500: statistics ready in %.2f s (single), "
              "%.2f s (router, 3 shards, with the merge of the activation sets): ratio %.2f"
              % (n, t1, t3, t3 / t1))
        q = unit(rng.standard_normal((1, dim)) + 0.5)[0].astype(np.float32).tolist()
        plain = {"vector": q, "space": "v", "limit": 10}
        hub = dict(plain, hubness={"normalizer": "n", "method": "dualis", "candidates": 100})
        ls, lr = median_latency(single, plain), median_latency(router, plain)
        hs, hr = median_latency(single, hub), median_latency(router, hub)
        print("search latency (median of 50): plain %.2f ms single, %.2f ms router (x%.2f); "
              "DualIS over 100 candidates %.2f ms single, %.2f ms router (x%.2f)"
              % (ls * 1e3, lr * 1e3, lr / ls, hs * 1e3, hr * 1e3, hr / hs))
        # prototypes
        params = {"space": "v", "k": 50, "max_points_per_centroid": 64, "seed": 3}
        t1 = timed(lambda: put_and_wait(single, "/v1/datasets/h/filters/pr", {
            "type": "prototypes", "params": dict(params, sample="id_hash")}))
        t3 = timed(lambda: put_and_wait(router, "/v1/datasets/h/filters/pr", {
            "type": "prototypes", "params": params}))
        st, _, raw = shards[0].request("POST", "/v1/datasets/h/filters:partial", json.dumps(
            {"type": "prototypes", "params": dict(params, sample="id_hash")}),
            content_type="application/json")
        print("prototypes: k 50, sample of 3,200: fitted and scored in %.2f s (single), %.2f s "
              "(router): ratio %.2f; a shard's partial %.1f MB"
              % (t1, t3, t3 / t1, len(raw) / 1e6))
        # semdedup: near-duplicates of a tenth of the records, planted with other ids
        sp = {"space": "v", "eps": 0.01, "k": 50, "max_points_per_centroid": 64, "seed": 3}
        nd = n // 10
        dup = unit(g[:nd] + 0.02 * rng.standard_normal((nd, dim))).astype(np.float32)
        for d in (single, router):
            d.put_dataset("s", {"spaces": {"v": {"dim": dim}}})
            rr = recs + [{"id": "d%06d" % i, "embeddings": {"v": curate.emb(dup[i])}}
                         for i in range(nd)]
            for i in range(0, len(rr), 5000):
                assert d.ingest("s", rr[i:i + 5000])[0] == 200
        t1 = timed(lambda: put_and_wait(single, "/v1/datasets/s/filters/dd", {
            "type": "semdedup", "params": dict(sp, sample="id_hash")}))
        t3 = timed(lambda: put_and_wait(router, "/v1/datasets/s/filters/dd", {
            "type": "semdedup", "params": sp}))
        cent = shards[0].get_json("/v1/datasets/s/filters/dd")[2]["params"]["centroids"]
        st, _, raw = shards[0].request("POST", "/v1/datasets/s/filters:partial", json.dumps(
            {"type": "semdedup", "params": dict(sp, centroids=cent)}),
            content_type="application/json")
        kept = []
        for d in (single, router):
            put_and_wait(d, "/v1/datasets/s/subsets/kept", {"steps": [{"filter": "dd",
                                                                        "keep": True}]})
            kept.append(d.get_json("/v1/datasets/s/subsets/kept")[2]["members"])
        assert kept[0] == kept[1], kept
        print("semdedup: %d records, k 50: fitted and scored in %.2f s (single), %.2f s "
              "(router): ratio %.2f; a shard's pool partial %.1f MB; %d kept on both"
              % (n + nd, t1, t3, t3 / t1, len(raw) / 1e6, kept[0]))
        # color_ngram
        src = textcorpus.sources(seed=2)
        per = 300 if a.quick else 2000
        pool = [("p-%s-%d" % (s, i), t) for s, tx in src.items() for i, t in enumerate(tx[:per])]
        down = [("d-%d" % i, t) for i, t in enumerate(src["verb"][per:per + per // 2])]
        for d in (single, router):
            for ds, items in (("pool", pool), ("down", down)):
                d.put_dataset(ds, {"spaces": {"t": {"dim": 2}}, "kinds": ["text"]})
                r = [{"id": rid, "kind": "text", "text": t} for rid, t in items]
                for i in range(0, len(r), 5000):
                    assert d.ingest(ds, r[i:i + 5000])[0] == 200
        cdef = {"type": "color_ngram", "params": {"downstream": "down"}}
        t1 = timed(lambda: put_and_wait(single, "/v1/datasets/pool/filters/c", cdef))
        t3 = timed(lambda: put_and_wait(router, "/v1/datasets/pool/filters/c", cdef))
        st, _, raw = shards[0].request("POST", "/v1/datasets/pool/filters:partial",
                                       json.dumps(cdef), content_type="application/json")
        print("color_ngram: %d pool texts, %d downstream: fitted and scored in %.2f s (single), "
              "%.2f s (router): ratio %.2f; a shard's partial %.1f MB"
              % (len(pool), len(down), t1, t3, t3 / t1, len(raw) / 1e6))
    finally:
        for d in [router, single] + shards:
            d.stop()
            d.close()


if __name__ == "__main__":
    main()
