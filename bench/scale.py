#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""scale: a sharded winnow (3 shards + the router, on loopback) against one winnowd on the same
machine and the same data (docs/scale.md, "Figures").

Both sides get the same N records (default 30,000) of DataComp's shape: an `image` and a `text`
space of 768-d f16 (base64 in NDJSON), and run, timed:
  ingest    POST .../records, batches of --batch records, --clients concurrent clients
  scoring   PUT a clip_score filter, wait for its job
  selection PUT a subset {"filter": "clip", "top_fraction": 0.3}, wait (through the router: the
            exact global selection, probes then the shards' cut)
  export    GET the subset's .npy (both must be byte-identical: checked)
  index     PUT a Flat index on `image` (cosine), wait
  search    --queries single queries (limit 10, one client): p50 latency and QPS
Prints one line per measurement with both rates and the ratio cluster/single, and the per-shard
rates (records per second of one shard) that the extrapolation in docs/scale.md starts from. All
processes share this machine's cores, so the cluster does not run faster here: the ratio measures
the router's overhead, not the speed-up of N machines. Exit 0 when everything ran and the exports
match."""

import argparse
import base64
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np


class Proc:
    """One winnowd (a shard, a single daemon, or the router with router=FILE)."""

    def __init__(self, path, router=None, threads=None):
        self.dir = tempfile.mkdtemp(prefix="winnow-bench-scale-")
        args = [path, "--listen", "127.0.0.1:0", "--data-dir", self.dir, "--map-size", "4G"]
        if router:
            args += ["--router", router]
        if threads:
            args += ["--threads", str(threads)]
        self.proc = subprocess.Popen(args + ["--log-level", "info"], stderr=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL)
        self.port = None
        deadline = time.time() + 30
        while time.time() < deadline and self.port is None:
            m = re.search(r"event=listening addr=\S+:(\d+)", self.proc.stderr.readline().decode())
            if m:
                self.port = int(m.group(1))
        if self.port is None:
            raise SystemExit("winnowd did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
        self.url = "http://127.0.0.1:%d" % self.port

    def call(self, method, path, body=None, conn=None, ctype="application/json"):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        c.request(method, path, body=data, headers={"Content-Type": ctype} if data else {})
        r = c.getresponse()
        out = r.read()
        if conn is None:
            c.close()
        if r.status >= 300:
            raise SystemExit("%s %s: %d %s" % (method, path, r.status, out[:300]))
        return out

    def disk(self):
        """Bytes allocated on disk under the data directory (LMDB, index files)."""
        total = 0
        for root, _, files in os.walk(self.dir):
            for f in files:
                total += os.stat(os.path.join(root, f)).st_blocks * 512
        return total

    def cpu(self):
        """CPU seconds (user + system) the process has used."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def make_batches(n, dim, batch, seed=7):
    rng = np.random.default_rng(seed)
    ids = ["%032x" % int.from_bytes(rng.bytes(16), "big") for _ in range(n)]
    batches = []
    for s in range(0, n, batch):
        m = min(batch, n - s)
        shared = rng.standard_normal((m, dim)).astype(np.float32)
        img = (shared + rng.standard_normal((m, dim))).astype("<f2")
        txt = (shared + rng.standard_normal((m, dim))).astype("<f2")
        lines = []
        for i in range(m):
            lines.append(json.dumps({"id": ids[s + i], "embeddings": {
                "image": {"dtype": "f16", "b64": base64.b64encode(img[i].tobytes()).decode()},
                "text": {"dtype": "f16", "b64": base64.b64encode(txt[i].tobytes()).decode()}}}))
        batches.append(("\n".join(lines) + "\n").encode())
    queries = rng.standard_normal((512, dim)).astype("<f4")
    return batches, queries


def cli(winnow, url, *args):
    p = subprocess.run([winnow, "--url", url, "-q"] + list(args), capture_output=True, timeout=3600,
                       env={k: v for k, v in os.environ.items() if not k.startswith("WINNOW_")})
    if p.returncode != 0:
        raise SystemExit("winnow %s: %s" % (" ".join(args[:3]), p.stderr.decode()[-400:]))
    return p.stdout


def run_side(target, winnow, batches, queries, a, dim, procs):
    """The workload against one URL; {measure: seconds}, {measure: [CPU seconds of each of
    procs]} and the exported .npy bytes."""
    r = {}
    cpu = {}

    def timed(name, fn):
        c0 = [p.cpu() for p in procs]
        t0 = time.perf_counter()
        fn()
        r[name] = time.perf_counter() - t0
        cpu[name] = [p.cpu() - c for p, c in zip(procs, c0)]

    schema = {"spaces": {"image": {"dim": dim, "dtype": "f16"}, "text": {"dim": dim, "dtype": "f16"}}}
    target.call("PUT", "/v1/datasets/pool", schema)
    todo = list(range(len(batches)))
    lock = threading.Lock()

    def client():
        c = http.client.HTTPConnection("127.0.0.1", target.port, timeout=600)
        while True:
            with lock:
                if not todo:
                    break
                i = todo.pop()
            target.call("POST", "/v1/datasets/pool/records", batches[i], conn=c,
                        ctype="application/x-ndjson")
        c.close()

    def ingest():
        ts = [threading.Thread(target=client) for _ in range(a.clients)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    timed("ingest", ingest)
    r["disk"] = sum(p.disk() for p in procs)
    clip = json.dumps({"type": "clip_score", "params": {"image_space": "image", "text_space": "text"}})
    timed("scoring", lambda: cli(winnow, target.url, "filter", "put", "pool", "clip", clip, "--wait"))
    timed("selection", lambda: cli(winnow, target.url, "subset", "put", "pool", "top30",
                                       '[{"filter": "clip", "top_fraction": 0.3}]', "--wait"))
    out = {}
    timed("export", lambda: out.setdefault("npy", target.call(
        "GET", "/v1/datasets/pool/subsets/top30:export?format=npy")))
    timed("index", lambda: cli(winnow, target.url, "index", "put", "pool", "image", "Flat",
                                   "--metric", "cosine", "--wait"))
    c = http.client.HTTPConnection("127.0.0.1", target.port, timeout=600)
    lat = []
    for q in queries[:a.queries]:
        body = {"space": "image", "limit": 10,
                "vector": {"dtype": "f32", "b64": base64.b64encode(q.tobytes()).decode()}}
        t0 = time.perf_counter()
        target.call("POST", "/v1/datasets/pool/search", body, conn=c)
        lat.append(time.perf_counter() - t0)
    c.close()
    r["search_p50"] = float(np.median(lat))
    r["search"] = sum(lat)
    return r, cpu, out["npy"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--daemon", default="build/winnowd")
    ap.add_argument("--records", type=int, default=30000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--shards", type=int, default=3)
    ap.add_argument("--queries", type=int, default=200)
    a = ap.parse_args()
    winnow = os.path.join(os.path.dirname(os.path.abspath(a.daemon)), "winnow")
    n = a.records
    batches, queries = make_batches(n, a.dim, a.batch)
    mb = sum(map(len, batches)) / 1e6
    print("scale: %d records, 2 spaces of %d-d f16 (%.0f MB of NDJSON), %d shards on loopback, "
          "%d CPUs" % (n, a.dim, mb, a.shards, os.cpu_count()))

    single = Proc(a.daemon)
    try:
        rs, cs, npy_s = run_side(single, winnow, batches, queries, a, a.dim, [single])
    finally:
        single.close()

    shards = [Proc(a.daemon) for _ in range(a.shards)]
    tmp = tempfile.mkdtemp(prefix="winnow-bench-scale-cluster-")
    router = None
    try:
        cfile = os.path.join(tmp, "shards.json")
        with open(cfile, "w") as f:
            json.dump({"shards": [{"url": s.url} for s in shards]}, f)
        router = Proc(a.daemon, router=cfile)
        rc, cc, npy_c = run_side(router, winnow, batches, queries, a, a.dim, [router] + shards)
    finally:
        for p in ([router] if router else []) + shards:
            p.close()
        shutil.rmtree(tmp, ignore_errors=True)

    same = npy_s == npy_c
    print("%-10s %12s %12s %8s  %s" % ("measure", "single", "cluster", "ratio", "unit"))
    for k, unit in (("ingest", "records/s"), ("scoring", "records/s"), ("selection", "records/s"),
                    ("export", "records/s"), ("index", "records/s"), ("search", "queries/s")):
        count = a.queries if k == "search" else n
        s, c = count / rs[k], count / rc[k]
        print("%-10s %12.0f %12.0f %8.2f  %s" % (k, s, c, c / s, unit))
    print("%-10s %12.2f %12.2f %8.2f  %s" % ("search_p50", rs["search_p50"] * 1e3,
                                             rc["search_p50"] * 1e3,
                                             rc["search_p50"] / rs["search_p50"], "ms"))
    print("per-shard rates (cluster rate / %d shards, records/s): %s" % (a.shards, " ".join(
        "%s=%.0f" % (k, n / rc[k] / a.shards) for k in ("ingest", "scoring", "selection", "index"))))
    print("CPU ms per 1,000 records: single daemon | router + sum of the shards")
    for k in ("ingest", "scoring", "selection", "export", "index"):
        print("  %-10s %8.1f | %8.1f + %8.1f" % (k, cs[k][0] * 1e6 / n, cc[k][0] * 1e6 / n,
                                                sum(cc[k][1:]) * 1e6 / n))
    print("disk after ingest: single %.0f bytes/record, cluster %.0f bytes/record (vectors alone: %d)"
          % (rs["disk"] / n, rc["disk"] / n, 2 * 2 * a.dim))
    print("exports identical: %s (%d bytes)" % ("yes" if same else "NO", len(npy_s)))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
