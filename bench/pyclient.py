#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""pyclient: what the Python client's connection and wire choices cost per request.

Starts its own winnowd (port 0, a temporary data directory), ingests --records records of a
--dim f32 space with the client (ingest_arrays: base64 f32, --batch records a request), builds a
Flat cosine index, then times against that one daemon:

  1. a small request (GET /v1/datasets/NAME) on one keep-alive connection, then the same
     with a new TCP connection for every request (the client's connection closed after each);
  2. a one-query search (limit 10, base64 f32 vector), keep-alive and new connection;
  3. a batch of 64 queries three ways: JSON number lists, JSON base64 f32 vectors, and raw f32
     rows (application/octet-stream, what Client.search_batch sends for a numpy array), over
     a small dataset (--gallery records, Flat) so that the wire, not the scan, is what differs.

Each figure is the mean and p50 over --requests requests (batches: --batches) in one
sequential client, after a warm-up; the ways compared are timed in turns, request by request,
so that other load on the machine weighs on each alike. Prints one line per measurement and PASS/MISS for the
claims docs/python.md makes: keep-alive is cheaper than a new connection per request, and
raw rows are cheaper than JSON for a batch. Exit 0 when everything ran."""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "clients", "python"))
import winnow  # noqa: E402
from winnow import _np as wnp  # noqa: E402


class Winnowd:
    """One winnowd on 127.0.0.1:0 with a temporary data directory."""

    def __init__(self, path):
        self.dir = tempfile.mkdtemp(prefix="winnow-bench-pyclient-")
        self.proc = subprocess.Popen([path, "--listen", "127.0.0.1:0", "--data-dir", self.dir,
                                      "--log-level", "info"],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self.port = None
        deadline = time.time() + 30
        while time.time() < deadline and self.port is None:
            line = self.proc.stderr.readline().decode()
            if not line:
                break
            if "event=listening" in line:
                self.port = int(line.split("addr=")[1].split()[0].rsplit(":", 1)[1])
        if self.port is None:
            self.close()
            raise SystemExit("pyclient: winnowd did not start")
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace")
            if "level=warn" in line or "level=error" in line:
                sys.stderr.write("winnowd: " + line)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


def stats(ts):
    ts = sorted(ts)
    return sum(ts) / len(ts), ts[len(ts) // 2]


def timed(fn, n, fresh=None):
    """Mean and p50 seconds of n calls of fn (fresh() runs before each, untimed)."""
    ts = []
    for _ in range(n):
        if fresh is not None:
            fresh()
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return stats(ts)


def interleaved(n, *ways):
    """(mean, p50) of each way, timed in turns (way 1, way 2, ..., way 1, ...) so that a
    machine whose load swings (other jobs on the cores) weighs on every way alike. A way is
    (fn, fresh): fresh() runs untimed before each call of fn."""
    ts = [[] for _ in ways]
    for _ in range(n):
        for k, (fn, fresh) in enumerate(ways):
            if fresh is not None:
                fresh()
            t0 = time.perf_counter()
            fn()
            ts[k].append(time.perf_counter() - t0)
    return [stats(t) for t in ts]


def line(what, mean, p50, per=""):
    print("pyclient %s: %.3f ms/request mean, %.3f ms p50%s" % (what, mean * 1e3, p50 * 1e3, per))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", default="build/winnowd")
    ap.add_argument("--records", type=int, default=10000)
    ap.add_argument("--gallery", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--batches", type=int, default=100)
    a, _ = ap.parse_known_args()  # run.sh passes every bench the same extra arguments

    d = Winnowd(a.daemon)
    ok = True
    try:
        c = winnow.Client("http://127.0.0.1:%d" % d.port)
        rng = np.random.default_rng(7)
        x = rng.standard_normal((a.records, a.dim)).astype(np.float32)
        ids = ["%032x" % i for i in range(a.records)]
        c.create_dataset("b", {"v": a.dim})
        t0 = time.perf_counter()
        res = c.ingest_arrays("b", ids, {"v": x}, batch=a.batch)
        dt = time.perf_counter() - t0
        assert res["accepted"] == a.records, res
        print("pyclient ingest_arrays: %d records of %d-d f32 in %.2f s = %.0f rec/s (%d per request)"
              % (a.records, a.dim, dt, a.records / dt, a.batch))
        c.put_index("b", "v", "Flat", "cosine", wait=True)

        def drop():
            c.close()

        q1 = rng.standard_normal(a.dim).astype(np.float32)
        small = lambda: c.get_dataset("b")  # noqa: E731
        one = lambda: c.search("b", q1, limit=10)  # noqa: E731
        timed(small, 200)
        ka, nc = interleaved(a.requests, (small, None), (small, drop))
        line("GET keep-alive", *ka)
        line("GET new connection", *nc)
        timed(one, 50)
        ska, snc = interleaved(a.requests // 4, (one, None), (one, drop))
        line("search 1 query keep-alive", *ska)
        line("search 1 query new connection", *snc)
        extra = nc[0] - ka[0]
        good = extra > 0
        ok &= good
        print("pyclient keep-alive saves %.3f ms a request (GET), %.3f ms (search): %s"
              % (extra * 1e3, (snc[0] - ska[0]) * 1e3, "PASS" if good else "MISS"))

        c.create_dataset("w", {"v": a.dim})
        c.ingest_arrays("w", ids[:a.gallery], {"v": x[:a.gallery]}, batch=a.batch)
        c.put_index("w", "v", "Flat", "cosine", wait=True)
        qb = rng.standard_normal((64, a.dim)).astype(np.float32)
        path = "/v1/datasets/w/search"
        lists = qb.tolist()
        b64 = wnp.b64_rows(qb)
        as_lists = lambda: c._json("POST", path, {"vectors": lists, "limit": 10})  # noqa: E731
        as_b64 = lambda: c._json("POST", path, {"vectors": b64, "limit": 10})  # noqa: E731
        as_raw = lambda: c.search_batch("w", qb, limit=10)  # noqa: E731
        assert as_raw() == as_b64()["queries"] == as_lists()["queries"]
        forms = (("JSON lists", as_lists), ("JSON base64", as_b64), ("raw rows", as_raw))
        for _, fn in forms:
            timed(fn, 5)
        results = dict(zip([f[0] for f in forms],
                           interleaved(a.batches, *[(fn, None) for _, fn in forms])))
        for name, _ in forms:
            line("batch of 64 %s" % name, *results[name],
                 per=", %.3f ms a query" % (results[name][0] / 64 * 1e3))
        good = results["raw rows"][0] < results["JSON base64"][0] < results["JSON lists"][0]
        ok &= good
        print("pyclient raw rows < JSON base64 < JSON lists for a batch: %s"
              % ("PASS" if good else "MISS"))
        assert c.connections_opened >= a.requests, c.connections_opened  # drop() took effect
        c.close()
    finally:
        d.close()
    return 0  # a MISS is reported, not a failure (bench/README.md)


if __name__ == "__main__":
    sys.exit(main())
