#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""router_more: the cost of the routes tests/integration/test_router_more.py checks, through a
router, as ratios against one daemon holding every record, run in this script on the same data
(1 daemon; 3 shard daemons and `winnowd --router`, all on this machine, so the cluster has no
more cores than the single daemon: the ratios measure the router's extra work and round trips).

- signals: one records:signals batch patching every record (the router: a dry run on every
  shard, then the batch applied), best of --repeat.
- stats: GET .../filters/{f}/stats (the router: two stats rounds and the probes of at most 18
  order statistics), median of --repeat.
- import: one records:import of every record (NDJSON metadata, one f32 .npy), best of --repeat
  into a fresh dataset.

--n records (default 100,000); --quick: 10,000."""

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
import uuid

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import curate  # noqa: E402
import wn  # noqa: E402

DIM = 32


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def multipart(parts):
    b = "wnb" + uuid.uuid4().hex
    out = []
    for name, data in parts:
        out.append(b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n"
                   % (b.encode(), name.encode()))
        out.append(data)
        out.append(b"\r\n")
    out.append(b"--%s--\r\n" % b.encode())
    return "multipart/form-data; boundary=%s" % b, b"".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    n = 10000 if a.quick else a.n
    rng = np.random.default_rng(1)
    ids = ["r%07d" % i for i in range(n)]
    single = wn.Daemon()
    shards = [wn.Daemon() for _ in range(3)]
    d = tempfile.mkdtemp(prefix="winnow-bench-rmore-")
    cf = os.path.join(d, "shards.json")
    with open(cf, "w") as f:
        json.dump({"shards": [{"url": "http://127.0.0.1:%d" % s.port} for s in shards]}, f)
    router = wn.Daemon(extra_args=["--router", cf])
    sides = {"single": single, "router": router}
    prior = rng.integers(0, 1000, n)
    recs = "".join('{"id": "%s", "text": "t", "signals": {"a": {"prior_nll": %d, "cond_nll": 1, '
                   '"tokens": 4}}}\n' % (ids[i], prior[i]) for i in range(n)).encode()
    patch = "".join('{"id": "%s", "signals": {"a": {"cond_nll": %d}, "b": 1}}\n'
                    % (ids[i], (i * 7) % 13) for i in range(n)).encode()
    meta = "".join('{"id": "m%07d", "text": "t"}\n' % i for i in range(n)).encode()
    buf = io.BytesIO()
    np.save(buf, rng.standard_normal((n, DIM)).astype(np.float32))
    ctype, body = multipart([("metadata", meta), ("space.v", buf.getvalue())])
    out = {}
    try:
        for name, x in sides.items():
            assert x.put_dataset("p", {"spaces": {}})[0] == 201
            curate.wait_job(x, curate.put_filter(x, "p", "fa", {"type": "color",
                                                               "params": {"signal": "a"}}))
            st, _, res = x.json("POST", "/v1/datasets/p/records", recs,
                                content_type="application/x-ndjson")
            assert st == 200 and res["accepted"] == n, (st, res)

            def sig():
                st, _, res = x.json("POST", "/v1/datasets/p/records:signals", patch,
                                    content_type="application/x-ndjson")
                assert st == 200 and res["patched"] == n, (st, res)
            sig_t = min(timed(sig) for _ in range(a.repeat))

            def stats():
                st, _, res = x.get_json("/v1/datasets/p/filters/fa/stats?bins=20")
                assert st == 200 and res["count"] == n, (st, res)
            stats_t = statistics.median(timed(stats) for _ in range(max(a.repeat, 5)))
            imp = []
            for k in range(a.repeat):
                ds = "i%d" % k
                assert x.put_dataset(ds, {"spaces": {"v": {"dim": DIM}}})[0] == 201

                def imp1():
                    st, _, res = x.json("POST", "/v1/datasets/%s/records:import" % ds, body,
                                        content_type=ctype)
                    assert st == 200 and res["accepted"] == n, (st, res)
                imp.append(timed(imp1))
            out[name] = {"signals_s": sig_t, "stats_s": stats_t, "import_s": min(imp)}
    finally:
        for x in [router] + shards + [single]:
            x.stop()
            x.close()
    print("%d records, 3 shards + router vs 1 daemon on the same machine" % n)
    for k, what in (("signals_s", "records:signals, every record (best of %d)" % a.repeat),
                    ("stats_s", "filters/fa/stats?bins=20 (median)"),
                    ("import_s", "records:import, %d dims f32 (best of %d)" % (DIM, a.repeat))):
        s, r = out["single"][k], out["router"][k]
        print("%-48s single %8.3f s  router %8.3f s  x%.2f" % (what, s, r, r / s))


if __name__ == "__main__":
    main()
