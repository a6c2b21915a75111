#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""router: what the router costs and gives (issue 18), against one daemon holding the same
records, in this script: 3 shard daemons behind `winnowd --router` on this machine.

Measures, each as router / single-daemon ratio:
- ingest: records/s of N records (NDJSON batches of 25,000, signals only, two cheap filters
  scored on ingest), one client;
- a global subset: PUT top_fraction 0.3 over 20 tied score values until its job is done (the
  router resolves the threshold exactly with subsets:probe round trips first);
- the .npy export of that subset;
- search: p50 latency of single queries over a Flat index (5,000 x 64-d), one client.

On one machine the shards share its cores, so these figures show the router's overhead, not a
cluster's scaling. Prints one line per measurement. Exit 0 when everything ran."""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import wn  # noqa: E402


def ndjson(ids, a, b, lo, hi):
    out = []
    for i in range(lo, hi):
        out.append('{"id": "%s", "signals": {"a": {"prior_nll": %r, "cond_nll": 0, "tokens": 1}, '
                   '"b": {"prior_nll": %r, "cond_nll": 0, "tokens": 1}}}'
                   % (ids[i], float(a[i]), float(b[i])))
    return ("\n".join(out) + "\n").encode()


def wait_job(d, jid):
    while True:
        st, _, j = d.get_json("/v1/jobs/%s" % jid)
        assert st == 200, j
        if j["state"] not in ("queued", "running"):
            assert j["state"] == "succeeded", j
            return
        time.sleep(0.01)


def setup(d, n, batches):
    assert d.put_dataset("p", {"spaces": {}})[0] == 201
    for name, sig in (("fa", "a"), ("fb", "b")):
        st, _, body = d.json("PUT", "/v1/datasets/p/filters/%s" % name,
                             {"type": "color", "params": {"signal": sig}})
        wait_job(d, body["job"])
    t0 = time.perf_counter()
    for body in batches:
        st, _, ans = d.json("POST", "/v1/datasets/p/records", body,
                            content_type="application/x-ndjson")
        assert st == 200, ans
    return n / (time.perf_counter() - t0)


def subset(d):
    t0 = time.perf_counter()
    st, _, body = d.json("PUT", "/v1/datasets/p/subsets/top30",
                         {"steps": [{"filter": "fa", "top_fraction": 0.3}]})
    assert st == 202, body
    wait_job(d, body["job"])
    t_put = time.perf_counter() - t0
    t0 = time.perf_counter()
    st, _, npy = d.request("GET", "/v1/datasets/p/subsets/top30:export?format=npy")
    assert st == 200
    return t_put, time.perf_counter() - t0, npy


def search_p50(d, x, queries):
    assert d.put_dataset("s", {"spaces": {"v": {"dim": x.shape[1]}}})[0] == 201
    recs = [{"id": "s%05d" % i, "embeddings": {"v": x[i].tolist()}} for i in range(len(x))]
    assert d.ingest("s", recs)[0] == 200
    st, _, body = d.json("PUT", "/v1/datasets/s/indexes/v", {"factory": "Flat", "metric": "cosine"})
    wait_job(d, body["job"])
    lat = []
    conn = d.connection()
    for q in queries:
        t0 = time.perf_counter()
        st, _, ans = d.json("POST", "/v1/datasets/s/search",
                            {"vector": q.tolist(), "space": "v", "limit": 10}, conn=conn)
        lat.append(time.perf_counter() - t0)
        assert st == 200, ans
    return float(np.median(lat))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", default=None)
    ap.add_argument("--records", type=int, default=100000)
    args, _ = ap.parse_known_args()
    if args.daemon:
        wn.WINNOWD = os.path.abspath(args.daemon)
    n = args.records
    rng = np.random.default_rng(1)
    ids = ["%032x" % v for v in rng.integers(0, 2**63, n, dtype=np.int64)]
    a = rng.integers(0, 20, n).astype(np.float64)
    b = np.round(rng.random(n) * 50, 2)
    batches = [ndjson(ids, a, b, lo, min(n, lo + 25000)) for lo in range(0, n, 25000)]
    x = rng.standard_normal((5000, 64)).astype(np.float32)
    queries = rng.standard_normal((200, 64)).astype(np.float32)

    single = wn.Daemon(log_level="info")
    shards = [wn.Daemon(log_level="info") for _ in range(3)]
    cf = os.path.join(tempfile.mkdtemp(prefix="winnow-bench-router-"), "shards.json")
    with open(cf, "w") as f:
        json.dump({"shards": [{"url": "http://127.0.0.1:%d" % s.port} for s in shards]}, f)
    router = wn.Daemon(log_level="info", extra_args=["--router", cf])
    try:
        res = {}
        for name, d in (("single", single), ("router", router)):
            rps = setup(d, n, batches)
            t_put, t_npy, npy = subset(d)
            p50 = search_p50(d, x, queries)
            res[name] = (rps, t_put, t_npy, p50, npy)
        assert res["single"][4] == res["router"][4], "the .npy files differ"
        s, r = res["single"], res["router"]
        print("router ingest records=%d single_rps=%.0f router_rps=%.0f ratio=%.2f"
              % (n, s[0], r[0], r[0] / s[0]))
        print("router subset_top_fraction records=%d single_s=%.3f router_s=%.3f ratio=%.2f"
              % (n, s[1], r[1], r[1] / s[1]))
        print("router export_npy members=%d single_s=%.3f router_s=%.3f ratio=%.2f identical=1"
              % ((len(s[4]) - 128) // 16, s[2], r[2], r[2] / s[2]))
        print("router search_p50 vectors=5000 dim=64 single_ms=%.2f router_ms=%.2f ratio=%.2f"
              % (s[3] * 1e3, r[3] * 1e3, r[3] / s[3]))
    finally:
        for d in [router] + shards + [single]:
            d.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
