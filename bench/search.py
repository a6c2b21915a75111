#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""search: the search benchmarks of issues 4 and 20, over HTTP against in-process references.

Parts (--parts, default http,sweep; see bench/README.md):
- http: the cost of one request from Python (keep-alive or not, raw rows or JSON, http.client,
  requests, the project's client) against a 1-record dataset.
- sweep: recall@10 against batch QPS and single-query p50 over a sweep of efSearch / ef, on
  fashion-mnist (cosine): hnswlib, FAISS from python3-faiss, FAISS from winnowd's own library
  (ctypes) and winnowd over HTTP (raw rows answered in the binary format and in JSON); ratios
  at matched recall; a PNG plot (matplotlib).
- workloads: the issue-4 table, described below.

The workloads part:

Starts its own winnowd (port 0, a temporary data directory), loads a dataset, builds an index
through the API, and measures single queries (one client, sequential: p50/p99 latency; several
clients: QPS) and batches of 64, each next to Debian's python3-faiss doing the same
search in this process on the same index type and data, plus recall@10 against exact search.
Workloads: N random 768-d vectors from a mixture of Gaussians (Flat and HNSW32, cosine), and
fashion-mnist-784-euclidean from Debian's dataset-fashion-mnist (60,000 train images as the base,
test images as queries, L2). Query vectors go as base64 f32, as a client should send them.

Batches go three ways: one client sending JSON "vectors" (base64 f32), one client sending raw
f32 rows (application/octet-stream), and --clients concurrent clients sending raw rows; the
in-process side searches the same batches of 64 one after another with FAISS on every core.

A single query over a Flat index: FAISS (in-process here) scans it with a scalar loop on one
thread in Debian's build; winnowd scans FAISS's storage with its own AVX2 kernels on
--search-threads threads (default the CPU count; 1 = one thread), so its p50 is far below
in-process. The cost of HTTP itself shows on the HNSW workloads.

Threshold searches (complete: every record at or above the score; winnowd scans the stored
vectors exactly) are timed once per dataset before any index exists, against numpy computing
the same scores, threshold and sorted set in this script.

Prints one line per measurement and PASS/MISS per target: batch QPS over HTTP >= 80% of
in-process (several concurrent clients, as for single queries); single-query p50 <=
in-process p50 + 0.5 ms. Exit 0 when everything ran."""

import argparse
import base64
import gzip
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

import faiss
import numpy as np

FMNIST = "/usr/share/datasets/fashion-mnist"


class Winnowd:
    def __init__(self, path, search_threads=0):
        self.dir = tempfile.mkdtemp(prefix="winnow-bench-search-")
        extra = ["--search-threads", str(search_threads)] if search_threads > 0 else []
        self.proc = subprocess.Popen([path, "--listen", "127.0.0.1:0", "--data-dir", self.dir,
                                      "--log-level", "info", "--map-size", "8G"] + extra,
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self.port = None
        deadline = time.time() + 30
        while time.time() < deadline and self.port is None:
            line = self.proc.stderr.readline().decode()
            m = re.search(r"event=listening addr=\S+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
        if self.port is None:
            raise SystemExit("winnowd did not start")
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for _ in self.proc.stderr:
            pass

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)

    def call(self, method, path, body=None, conn=None, ctype="application/json"):
        c = conn or self.conn()
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        c.request(method, path, body=data, headers={"Content-Type": ctype} if data else {})
        r = c.getresponse()
        out = r.read()
        if conn is None:
            c.close()
        if r.status >= 300 and r.status != 202:
            raise SystemExit("%s %s: %d %s" % (method, path, r.status, out[:300]))
        return json.loads(out) if out else None

    def wait_job(self, jid):
        while True:
            j = self.call("GET", "/v1/jobs/%s" % jid)
            if j["state"] not in ("queued", "running"):
                if j["state"] != "succeeded":
                    raise SystemExit("job %s: %r" % (jid, j))
                return
            time.sleep(0.2)

    def close(self):
        self.proc.terminate()
        self.proc.wait(60)
        shutil.rmtree(self.dir, ignore_errors=True)


def b64(v):
    return {"dtype": "f32", "b64": base64.b64encode(np.asarray(v, "<f4").tobytes()).decode()}


def load(w, name, x):
    w.call("PUT", "/v1/datasets/" + name, {"spaces": {"e": {"dim": int(x.shape[1])}}})
    c = w.conn()
    for a in range(0, len(x), 2000):
        lines = [json.dumps({"id": "%d" % i, "embeddings": {"e": b64(x[i])}})
                 for i in range(a, min(len(x), a + 2000))]
        w.call("POST", "/v1/datasets/%s/records" % name, ("\n".join(lines) + "\n").encode(), conn=c,
               ctype="application/x-ndjson")
    c.close()


def pct(v, p):
    return float(np.percentile(np.asarray(v) * 1e3, p))


def http_single(w, name, q, k):
    """Single queries over HTTP, one client, one after another: latencies and the ids."""
    c = w.conn()
    lat, ids = [], []
    for v in q:
        t0 = time.perf_counter()
        r = w.call("POST", "/v1/datasets/%s/search" % name, {"vector": b64(v), "limit": k}, conn=c)
        lat.append(time.perf_counter() - t0)
        ids.append([int(x["id"]) for x in r["results"]])
    c.close()
    return lat, ids


def batch_run(search, q):
    """search(rows) -> one id list per row, on q in batches of 64, one after another: the ids
    of every query, and queries per second."""
    ids = []
    t0 = time.perf_counter()
    for a in range(0, len(q), 64):
        ids += search(q[a:a + 64])
    return ids, len(q) / (time.perf_counter() - t0)


def single_run(search, qs):
    """search(one row) for each query, one after another: latencies."""
    lat = []
    for v in qs:
        t0 = time.perf_counter()
        search(v[None])
        lat.append(time.perf_counter() - t0)
    return lat


def inproc_single(ix, qs, k):
    """The same single queries in-process, one after another: latencies."""
    return single_run(lambda r: ix.search(r, k), qs)


def http_qps(w, name, q, k, clients):
    per = [q[i::clients] for i in range(clients)]
    done = [0] * clients

    def run(i):
        c = w.conn()
        for v in per[i]:
            w.call("POST", "/v1/datasets/%s/search" % name, {"vector": b64(v), "limit": k}, conn=c)
            done[i] += 1
        c.close()

    th = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in th:
        t.start()
    for t in th:
        t.join()
    return sum(done) / (time.perf_counter() - t0)


def http_batch(w, name, q, k, clients=1, raw=True):
    """Batches of 64 queries from `clients` concurrent clients: raw little-endian f32 rows
    (application/octet-stream, parameters in the query string) or, raw=False, JSON "vectors"
    of base64 f32. Returns queries per second."""
    parts = [q[a:a + 64] for a in range(0, len(q), 64)]

    def run(i):
        c = w.conn()
        for p in parts[i::clients]:
            if raw:
                w.call("POST", "/v1/datasets/%s/search?limit=%d" % (name, k),
                       np.ascontiguousarray(p, "<f4").tobytes(), conn=c,
                       ctype="application/octet-stream")
            else:
                w.call("POST", "/v1/datasets/%s/search" % name,
                       {"vectors": [b64(v) for v in p], "limit": k}, conn=c)
        c.close()

    th = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in th:
        t.start()
    for t in th:
        t.join()
    return len(q) / (time.perf_counter() - t0)


def inproc_batches(ix, q, k):
    """The in-process reference for batches: the same batches of 64, one after another, FAISS
    on every core. Returns queries per second."""
    t0 = time.perf_counter()
    for a in range(0, len(q), 64):
        ix.search(q[a:a + 64], k)
    return len(q) / (time.perf_counter() - t0)


def threshold(w, name, x, q, metric, nq=50, above=100):
    """Complete threshold searches (every record at or above a score; winnowd answers them with
    an exact scan of the stored vectors) over HTTP, one client, against numpy in this process
    computing the same scores and the same sorted set. The threshold of each query is set so
    that `above` records pass."""
    xs = np.ascontiguousarray(x, dtype=np.float32)
    if metric == "cosine":
        xs = xs / np.linalg.norm(xs, axis=1, keepdims=True)
    xx = (xs.astype(np.float64) ** 2).sum(axis=1) if metric == "l2" else None
    c = w.conn()
    lat, rlat, bad = [], [], 0
    for v in q[:nq]:
        v32 = np.asarray(v, dtype=np.float32)
        if metric == "cosine":
            v32 = v32 / np.linalg.norm(v32)
        t0 = time.perf_counter()
        s = xs @ v32 if metric != "l2" else -(xx + float(v32 @ v32) - 2 * (xs @ v32))
        top = np.sort(s)[::-1]
        thr = float(top[above - 1] + top[above]) / 2
        hit = np.flatnonzero(s >= thr)
        hit = hit[np.argsort(-s[hit], kind="stable")]
        rlat.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        r = w.call("POST", "/v1/datasets/%s/search" % name,
                   {"vector": b64(v), "limit": 1000, "score_threshold": thr,
                    "metric": metric}, conn=c)
        lat.append(time.perf_counter() - t0)
        bad += sorted(int(h["id"]) for h in r["results"]) != sorted(hit.tolist())
    c.close()
    print("%s threshold searches (exact scan, %d above, %s): %d queries, %d answers differ from "
          "numpy" % (name, above, metric, nq, bad))
    print("  p50 %.3f ms p99 %.3f ms; numpy in-process (scores, threshold, sort) p50 %.3f ms; "
          "ratio %.2f" % (pct(lat, 50), pct(lat, 99), pct(rlat, 50), pct(lat, 50) / pct(rlat, 50)))
    sys.stdout.flush()


def recall(ids, gt, k):
    return float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(ids, gt)]))


def mark(ok):
    return "PASS" if ok else "MISS"


def workload(w, name, x, q, factory, metric, clients, k=10):
    xs, qs = x, q
    if metric == "cosine":
        xs = x / np.linalg.norm(x, axis=1, keepdims=True)
        qs = q / np.linalg.norm(q, axis=1, keepdims=True)
    t0 = time.time()
    jid = w.call("PUT", "/v1/datasets/%s/indexes/e" % name, {"factory": factory, "metric": metric})["job"]
    w.wait_job(jid)
    build = time.time() - t0
    ref = faiss.index_factory(x.shape[1], factory,
                              faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT)
    t0 = time.time()
    if not ref.is_trained:
        ref.train(np.ascontiguousarray(xs, dtype=np.float32))
    ref.add(np.ascontiguousarray(xs, dtype=np.float32))
    ref_build = time.time() - t0
    # the same search parameters as winnowd's defaults (search/catalog.c default_params), so
    # that both sides search the same index the same way
    for param, value in (("efSearch", 64), ("nprobe", 16)):
        try:
            faiss.ParameterSpace().set_index_parameter(ref, param, value)
        except RuntimeError:
            pass
    exact = faiss.IndexFlatL2(x.shape[1]) if metric == "l2" else faiss.IndexFlatIP(x.shape[1])
    exact.add(np.ascontiguousarray(xs, dtype=np.float32))
    qs32 = np.ascontiguousarray(qs, dtype=np.float32)
    _, gt = exact.search(qs32, k)
    # single queries alternate in blocks of 50 between HTTP and in-process, so that a slower or
    # faster stretch of the machine (other tenants of the host share its memory bandwidth, which
    # a Flat search is bound by) falls on both sides; not query by query: FAISS's OpenMP threads
    # spin for a while after each search and would slow the other process's next one
    lat, rlat, ids = [], [], []
    for a in range(0, len(q), 50):
        la, ia = http_single(w, name, q[a:a + 50], k)
        lat += la
        ids += ia
        rlat += inproc_single(ref, qs32[a:a + 50], k)
    qps = http_qps(w, name, q, k, clients)
    # the batch reference runs before and after the HTTP batches; its mean is the reference
    before = inproc_batches(ref, qs32, k)
    bjson = http_batch(w, name, q, k, 1, raw=False)
    braw1 = http_batch(w, name, q, k, 1)
    bqps = http_batch(w, name, q, k, clients)
    after = inproc_batches(ref, qs32, k)
    rbqps = (before + after) / 2
    _, rids = ref.search(qs32, k)
    p50, p99, r50, r99 = pct(lat, 50), pct(lat, 99), pct(rlat, 50), pct(rlat, 99)
    print("%s %s %s: %d vectors x %d-d, %d queries; build %.1f s (in-process %.1f s)"
          % (name, factory, metric, len(x), x.shape[1], len(q), build, ref_build))
    print("  recall@10: winnow %.3f, in-process faiss %.3f" % (recall(ids, gt, k), recall(rids, gt, k)))
    print("  single query, 1 client: p50 %.3f ms p99 %.3f ms; in-process p50 %.3f ms p99 %.3f ms; "
          "p50 %+.3f ms  %s (target <= +0.5 ms)" % (p50, p99, r50, r99, p50 - r50, mark(p50 - r50 <= 0.5)))
    print("  single queries, %d clients: %.0f QPS; in-process %.0f QPS (one thread, sequential)"
          % (clients, qps, 1.0 / np.mean(rlat)))
    print("  batches of 64, in-process (FAISS on every core, sequential): %.0f QPS (%.0f before, "
          "%.0f after the HTTP runs)" % (rbqps, before, after))
    print("    one client, JSON base64 vectors: %.0f QPS, ratio %.2f" % (bjson, bjson / rbqps))
    print("    one client, f32 rows: %.0f QPS, ratio %.2f" % (braw1, braw1 / rbqps))
    print("    %d clients, f32 rows: %.0f QPS, ratio %.2f  %s (target >= 0.80)"
          % (clients, bqps, bqps / rbqps, mark(bqps / rbqps >= 0.8)))
    sys.stdout.flush()


# ---- recall-QPS sweep against hnswlib and FAISS (issue 20) -------------------------------

SWEEP_EF = (10, 16, 24, 32, 48, 64, 128, 256)
TARGETS = (0.95, 0.99)


HITS = "application/vnd.winnow.hits"


def hits_ids(data):
    """The ids of each query of a binary answer (application/vnd.winnow.hits, docs/api.md)."""
    nq, limit = (int(v) for v in np.frombuffer(data, "<u4", 2, 4))
    at = 16 + 8 * nq
    counts = np.frombuffer(data, "<u4", nq, 16).tolist()
    ends = np.frombuffer(data, "<u4", nq * limit, at + 4 * nq * limit).tolist()
    blob = data[at + 8 * nq * limit:]
    out, start = [], 0
    for i in range(nq):
        one = []
        for e in ends[i * limit:i * limit + counts[i]]:
            one.append(int(blob[start:e]))
            start = e
        out.append(one)
    return out


def raw_search(w, c, name, rows, k, ef, binary):
    """One raw-rows search (application/octet-stream) on the keep-alive connection c, answered
    in the binary format (binary) or in JSON: the ids of each query's results."""
    path = "/v1/datasets/%s/search?limit=%d&ef_search=%d" % (name, k, ef)
    body = np.ascontiguousarray(rows, "<f4").tobytes()
    if not binary:
        r = w.call("POST", path, body, conn=c, ctype="application/octet-stream")
        return [[int(x["id"]) for x in one["results"]] for one in r["queries"]]
    c.request("POST", path, body=body, headers={"Content-Type": "application/octet-stream",
                                                "Accept": HITS})
    r = c.getresponse()
    data = r.read()
    if r.status != 200:
        raise SystemExit("POST %s: %d %s" % (path, r.status, data[:300]))
    return hits_ids(data)


def side_winnowd(w, name, k, binary):
    """The winnowd side of the sweep: (batch(q, ef) -> (ids, qps), single(q, ef) -> lats)."""
    def batch(q, ef):
        c = w.conn()
        try:
            return batch_run(lambda r: raw_search(w, c, name, r, k, ef, binary), q)
        finally:
            c.close()

    def single(q, ef):
        c = w.conn()
        try:
            return single_run(lambda r: raw_search(w, c, name, r, k, ef, binary), q)
        finally:
            c.close()
    return batch, single


def side_faiss(ix, k, threads, set_ef):
    """An in-process FAISS side (python3-faiss, or CFaiss: winnowd's library); set_ef(ef)
    sets its efSearch."""
    def batch(q, ef):
        set_ef(ef)
        return batch_run(lambda r: ix.search(r, k)[1].tolist(), q)

    def single(q, ef):
        set_ef(ef)
        faiss.omp_set_num_threads(1)  # one query: one thread (a team only waits on itself)
        try:
            return inproc_single(ix, q, k)
        finally:
            faiss.omp_set_num_threads(threads)
    return batch, single


class CFaiss:
    """FAISS through its C API from the library winnowd runs (build/faiss/lib, found through
    the daemon's RUNPATH; the loader picks the AVX2 build on a CPU that has it), loaded by
    ctypes with RTLD_LOCAL beside python3-faiss: the same FAISS code as the daemon's, in
    process. HNSW32 over inner product (the vectors are normalised)."""

    def __init__(self, daemon, x, factory="HNSW32", ef_construction=0):
        import ctypes
        out = subprocess.run(["readelf", "-d", daemon], capture_output=True, text=True,
                             check=True).stdout
        m = re.search(r"(?:RUNPATH|RPATH).*\[([^\]]+)\]", out)
        if m is None:
            raise OSError("no RUNPATH in %s" % daemon)
        lib = None
        for d in m.group(1).split(":"):
            for cand in (os.path.join(d, "glibc-hwcaps", "x86-64-v3", "libwinnow_faiss.so"),
                         os.path.join(d, "libwinnow_faiss.so")):
                if lib is None and os.path.exists(cand) and (
                        "x86-64-v3" not in cand or "avx2" in open("/proc/cpuinfo").read()):
                    lib = cand
        if lib is None:
            raise OSError("libwinnow_faiss.so not found next to %s" % daemon)
        self.ct = ctypes
        self.c = c = ctypes.CDLL(lib, mode=os.RTLD_LOCAL | os.RTLD_NOW)
        c.winnow_faiss_build.restype = ctypes.c_char_p
        self.build = c.winnow_faiss_build().decode()
        self.ix, self.ps = ctypes.c_void_p(), ctypes.c_void_p()
        assert c.faiss_index_factory(ctypes.byref(self.ix), x.shape[1], factory.encode(), 0) == 0
        assert c.faiss_ParameterSpace_new(ctypes.byref(self.ps)) == 0
        if ef_construction > 0:
            assert c.faiss_ParameterSpace_set_index_parameter(
                self.ps, self.ix, b"efConstruction", ctypes.c_double(ef_construction)) == 0
        x = np.ascontiguousarray(x, dtype=np.float32)
        assert c.faiss_Index_add(self.ix, ctypes.c_int64(len(x)),
                                 x.ctypes.data_as(ctypes.c_void_p)) == 0

    def set_ef(self, ef):
        self.c.faiss_ParameterSpace_set_index_parameter(self.ps, self.ix, b"efSearch",
                                                        self.ct.c_double(ef))

    def search(self, q, k):
        q = np.ascontiguousarray(q, dtype=np.float32)
        dist = np.empty((len(q), k), dtype=np.float32)
        ids = np.empty((len(q), k), dtype=np.int64)
        vp = self.ct.c_void_p
        assert self.c.faiss_Index_search(self.ix, self.ct.c_int64(len(q)),
                                         q.ctypes.data_as(vp), self.ct.c_int64(k),
                                         dist.ctypes.data_as(vp), ids.ctypes.data_as(vp)) == 0
        return dist, ids


def side_hnswlib(ix, k, threads):
    def batch(q, ef):
        ix.set_ef(ef)
        return batch_run(lambda r: ix.knn_query(r, k=k, num_threads=threads)[0].tolist(), q)

    def single(q, ef):
        ix.set_ef(ef)
        return single_run(lambda r: ix.knn_query(r, k=k, num_threads=1), q)
    return batch, single


def sweep_curves(sides, q, qsingle, gt, k, efs, repeat):
    """recall@k, batch QPS and single-query p50 of every side at each ef: {label: [points]},
    ef ascending. The sides take turns at each ef, `repeat` times, and each keeps its best
    batch QPS and best p50: the machine is shared, and a busy stretch should fall on no side
    alone."""
    curves = {label: [] for label in sides}
    for label, (batch, _) in sides.items():
        batch(q[:256], efs[0])  # warm up: caches, threads, the daemon's connection path
    for ef in efs:
        for rep in range(repeat):
            for label, (batch, single) in sides.items():
                ids, qps = batch(q, ef)
                lat = single(qsingle, ef)
                pt = {"ef": ef, "recall": recall(ids, gt, k), "qps": qps, "p50": pct(lat, 50),
                      "p99": pct(lat, 99)}
                if rep == 0:
                    curves[label].append(pt)
                else:
                    old = curves[label][-1]
                    old["qps"], old["p50"] = max(old["qps"], qps), min(old["p50"], pt["p50"])
                    old["p99"] = min(old["p99"], pt["p99"])
        for label in sides:
            pt = curves[label][-1]
            print("  %-52s ef %4d: recall@%d %.4f, batch(64) %7.0f QPS, single p50 %.3f ms "
                  "p99 %.3f ms" % (label, ef, k, pt["recall"], pt["qps"], pt["p50"], pt["p99"]))
        sys.stdout.flush()
    return curves


def at_recall(curve, target):
    """The cheapest measured point at or above target recall (None if none reaches it), and
    the batch QPS and p50 linearly interpolated in recall between the neighbouring points."""
    above = [p for p in curve if p["recall"] >= target]
    if not above:
        return None
    hi = min(above, key=lambda p: p["ef"])
    lo = [p for p in curve if p["ef"] < hi["ef"]]
    interp = dict(hi)
    if lo and lo[-1]["recall"] < target < hi["recall"]:
        a, t = lo[-1], (target - lo[-1]["recall"]) / (hi["recall"] - lo[-1]["recall"])
        interp = {key: a[key] + t * (hi[key] - a[key]) for key in ("qps", "p50")}
    return {"ef": hi["ef"], "recall": hi["recall"], "qps": interp["qps"], "p50": interp["p50"],
            "point_qps": hi["qps"], "point_p50": hi["p50"]}


def http_cost(w, k=10):
    """What one request costs over HTTP from Python, against a 1-record dataset (the search
    itself is nothing): p50 of GET /readyz, of a 1-row search as raw f32 and as JSON, each on
    a keep-alive connection and on a new connection per request; `requests` and the project's
    client when present. Returns {label: p50 ms}."""
    w.call("PUT", "/v1/datasets/tiny", {"spaces": {"e": {"dim": 8}}})
    v = np.arange(8, dtype=np.float32) + 1
    w.call("POST", "/v1/datasets/tiny/records",
           (json.dumps({"id": "1", "embeddings": {"e": b64(v)}}) + "\n").encode(),
           ctype="application/x-ndjson")
    raw_body = v.astype("<f4").tobytes()
    jbody = json.dumps({"vector": b64(v), "limit": k}).encode()
    cases = [("GET /readyz", "GET", "/readyz", None, None),
             ("search, 1 raw f32 row", "POST", "/v1/datasets/tiny/search?limit=%d" % k, raw_body,
              "application/octet-stream"),
             ("search, JSON base64 vector", "POST", "/v1/datasets/tiny/search", jbody,
              "application/json")]
    n, out = 2000, {}

    def run(label, fn):
        for _ in range(200):
            fn()
        lat = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            lat.append(time.perf_counter() - t0)
        out[label] = pct(lat, 50)
        print("  %-52s p50 %.3f ms  p99 %.3f ms" % (label, pct(lat, 50), pct(lat, 99)))

    def one(c, method, path, body, ctype):
        c.request(method, path, body=body, headers={"Content-Type": ctype} if ctype else {})
        r = c.getresponse()
        data = r.read()
        assert r.status == 200, (r.status, data[:200])
        return data

    print("HTTP cost from Python (1-record dataset: the search itself is nothing), %d requests "
          "each:" % n)
    for label, method, path, body, ctype in cases:
        c = w.conn()
        run("http.client keep-alive: " + label, lambda: json.loads(one(c, method, path, body, ctype)))
        c.close()
        if label.startswith("search, 1 raw"):
            c = w.conn()

            def binary():
                c.request(method, path, body=body, headers={"Content-Type": ctype, "Accept": HITS})
                r = c.getresponse()
                data = r.read()
                assert r.status == 200, (r.status, data[:200])
                return hits_ids(data)
            run("http.client keep-alive: %s, binary answer" % label, binary)
            c.close()

        def fresh():
            cc = w.conn()
            json.loads(one(cc, method, path, body, ctype))
            cc.close()
        run("http.client new connection: " + label, fresh)
    try:
        import requests
        s = requests.Session()
        url = "http://127.0.0.1:%d/v1/datasets/tiny/search?limit=%d" % (w.port, k)
        hdr = {"Content-Type": "application/octet-stream"}
        run("requests.Session keep-alive: search, 1 raw f32 row",
            lambda: s.post(url, data=raw_body, headers=hdr).json())
        s2 = requests.Session()
        s2.trust_env = False  # no proxy / .netrc look-up on every request
        run("requests.Session, trust_env=False: search, 1 raw f32 row",
            lambda: s2.post(url, data=raw_body, headers=hdr).json())
        run("requests.post (new connection): search, 1 raw f32 row",
            lambda: requests.post(url, data=raw_body, headers=hdr).json())
    except ImportError:
        print("  requests: not installed (apt-get install python3-requests), skipped")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients",
                                    "python"))
    try:
        import winnow
        cl = winnow.Client("http://127.0.0.1:%d" % w.port)
        run("winnow.Client.search (1-D numpy vector)", lambda: cl.search("tiny", v, limit=k))
        run("winnow.Client.search_batch (1 row)", lambda: cl.search_batch("tiny", v[None], limit=k))
        run("winnow.Client.search_hits (1 row, binary answer)",
            lambda: cl.search_hits("tiny", v[None], limit=k))
    except ImportError as exc:
        print("  winnow client: %s, skipped" % exc)
    sys.stdout.flush()
    return out


def plot_sweep(curves, path, title):
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    styles = (("JSON answer", "tab:orange", "v"), ("winnowd HNSW", "tab:red", "o"), ("python3-faiss", "tab:blue", "s"),
              ("winnowd's", "tab:purple", "D"), ("hnswlib", "tab:green", "^"))
    for label, curve in curves.items():
        col, mk = next(((c, m) for key, c, m in styles if key in label), ("black", "x"))
        r = [p["recall"] for p in curve]
        axes[0].plot(r, [p["qps"] for p in curve], marker=mk, color=col, label=label)
        axes[1].plot(r, [p["p50"] for p in curve], marker=mk, color=col, label=label)
    axes[0].set_ylabel("batch QPS (batches of 64, higher is better)")
    axes[1].set_ylabel("single-query p50 latency, ms (lower is better)")
    for ax in axes:
        ax.set_xlabel("recall@10")
        ax.grid(True, alpha=0.3)
        for t in TARGETS:
            ax.axvline(t, color="grey", ls=":", lw=1)
        ax.legend(fontsize=8)
    ticks = [0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999]
    for ax in axes:  # recall on a logit scale: 0.9, 0.99 and 0.999 equally apart
        ax.set_xscale("logit")
        ax.set_yscale("log")
        ax.set_xticks(ticks)
        ax.set_xticklabels([("%g" % t) for t in ticks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    import textwrap
    fig.suptitle("\n".join(textwrap.wrap(title, 130)), fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    with open(os.path.splitext(path)[0] + ".json", "w") as f:
        json.dump({"title": title, "curves": curves}, f, indent=1)
    print("plot: %s (and its points in %s.json)" % (path, os.path.splitext(path)[0]))


def sweep(w, a, base, test, k=10):
    """Recall@10 against batch QPS and single-query p50 over a sweep of efSearch / ef: winnowd
    HNSW32 over HTTP (raw f32 rows, keep-alive; binary and JSON answers), FAISS HNSW32 and
    hnswlib (M 16) in this process on the same normalised vectors (cosine), all on a.threads
    threads. Prints the curves, the ratios at matched recall and writes the plot."""
    import hnswlib
    threads = a.threads
    faiss.omp_set_num_threads(threads)
    x = base / np.linalg.norm(base, axis=1, keepdims=True)
    rng = np.random.default_rng(7)
    sel = rng.choice(len(test), min(a.sweep_queries, len(test)), replace=False)
    q = np.ascontiguousarray(test[sel] / np.linalg.norm(test[sel], axis=1, keepdims=True),
                             dtype=np.float32)
    qsingle = q[:a.single_queries]
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    gt = exact.search(q, k)[1].tolist()
    name = "fmsweep"
    t0 = time.time()
    load(w, name, x)
    jid = w.call("PUT", "/v1/datasets/%s/indexes/e" % name,
                 {"factory": "HNSW32", "metric": "cosine",
                  "ef_construction": a.ef_construction})["job"]
    w.wait_job(jid)
    wb = time.time() - t0
    t0 = time.time()
    fx = faiss.index_factory(x.shape[1], "HNSW32", faiss.METRIC_INNER_PRODUCT)
    fx.hnsw.efConstruction = a.ef_construction
    fx.add(x)
    fb = time.time() - t0
    t0 = time.time()
    hx = hnswlib.Index(space="ip", dim=x.shape[1])
    hx.init_index(max_elements=len(x), M=16, ef_construction=200, random_seed=100)
    hx.add_items(x, np.arange(len(x)), num_threads=threads)
    hb = time.time() - t0
    cx, cb = None, 0.0
    try:
        t0 = time.time()
        cx = CFaiss(a.daemon, x, ef_construction=a.ef_construction)
        cb = time.time() - t0
    except (OSError, AssertionError) as exc:
        print("sweep: winnowd's FAISS library not loaded (%s); its in-process curve skipped" % exc)
    print("sweep: fashion-mnist 60,000 x 784 normalised (cosine), %d queries (random test "
          "images; single-query p50 over the first %d), %d threads; FAISS and winnowd graphs "
          "built with efConstruction %d, hnswlib's with 200; builds: winnowd HNSW32 %.1f s "
          "(load + index), python3-faiss HNSW32 %.1f s, hnswlib M16 %.1f s, winnowd's FAISS "
          "(%s) in process %.1f s"
          % (len(q), len(qsingle), threads, a.ef_construction, wb, fb, hb,
             cx.build if cx else "-", cb))
    sides = {"hnswlib M16 (in process)": side_hnswlib(hx, k, threads),
             "FAISS HNSW32 (python3-faiss, in process)":
                 side_faiss(fx, k, threads, lambda ef: setattr(fx.hnsw, "efSearch", ef))}
    if cx is not None:
        sides["FAISS HNSW32 (winnowd's %s build, in process)" % cx.build] = side_faiss(cx, k, threads,
                                                                                    cx.set_ef)
    sides["winnowd HNSW32 (HTTP, raw f32, binary answer)"] = side_winnowd(w, name, k, True)
    sides["winnowd HNSW32 (HTTP, raw f32, JSON answer)"] = side_winnowd(w, name, k, False)
    print("best of %d turns at each ef:" % a.repeat)
    curves = sweep_curves(sides, q, qsingle, gt, k, SWEEP_EF, a.repeat)
    return curves


def report_sweep(curves, http, plot, title):
    labels = list(curves)
    ref = labels[0]
    cost = http.get("http.client keep-alive: search, 1 raw f32 row")
    print("matched recall (cheapest point at/above the target; QPS and p50 interpolated "
          "linearly in recall); ratios against %s:" % ref)
    for t in TARGETS:
        r = at_recall(curves[ref], t)
        for label in labels:
            m = at_recall(curves[label], t)
            if m is None:
                print("  recall %.2f %-44s not reached" % (t, label))
                continue
            line = ("  recall %.2f %-44s ef %3d (recall %.4f): batch %6.0f QPS, p50 %.3f ms"
                    % (t, label, m["ef"], m["recall"], m["qps"], m["p50"]))
            if r is not None and label != ref:
                line += "; batch ratio %.2f, p50 ratio %.2f" % (m["qps"] / r["qps"],
                                                                 m["p50"] / r["p50"])
                if label.startswith("winnowd"):
                    goal = 1.3 * r["p50"] + (cost or 0)
                    line += ("  [p50 %s (goal <= 1.3 x %.3f + HTTP %.3f = %.3f ms); batch %s "
                             "(goal >= 0.80)]" % (mark(m["p50"] <= goal), r["p50"], cost or 0,
                                                  goal, mark(m["qps"] / r["qps"] >= 0.8)))
            print(line)
    same = [c for c in labels if c.startswith("FAISS") and "winnowd's" in c]
    wl = [c for c in labels if c.startswith("winnowd")]
    if same and wl:
        print("winnowd over HTTP against the same FAISS code in process (%s), same efSearch:"
              % same[0])
        for pw, pf in zip(curves[wl[0]], curves[same[0]]):
            print("  ef %4d: single p50 %.3f - %.3f = %+.3f ms; batch QPS ratio %.2f"
                  % (pw["ef"], pw["p50"], pf["p50"], pw["p50"] - pf["p50"], pw["qps"] / pf["qps"]))
    if plot:
        plot_sweep(curves, plot, title)
    sys.stdout.flush()


def idx_images(path):
    with gzip.open(path) as f:
        data = f.read()
    n, rows, cols = int.from_bytes(data[4:8], "big"), int.from_bytes(data[8:12], "big"), \
        int.from_bytes(data[12:16], "big")
    return np.frombuffer(data, np.uint8, offset=16).reshape(n, rows * cols).astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", default="build/winnowd")
    ap.add_argument("--parts", default="http,sweep",
                    help="comma-separated: http (the cost of one request from Python), sweep "
                    "(recall-QPS curves against hnswlib and FAISS on fashion-mnist), workloads "
                    "(the issue-4 table: --n synthetic vectors and fashion-mnist, Flat and "
                    "HNSW32, against FAISS at winnowd's defaults)")
    ap.add_argument("--n", type=int, default=200000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--skip-fmnist", action="store_true")
    ap.add_argument("--factories", default="Flat,HNSW32")
    ap.add_argument("--search-threads", type=int, default=0,
                    help="winnowd --search-threads (default: its own, the CPU count; 1 = "
                    "FAISS's one-thread scan of a Flat index for a single query, as in-process)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads of FAISS and hnswlib in the sweep (default the CPU count, "
                    "as winnowd uses)")
    ap.add_argument("--ef-construction", type=int, default=40,
                    help="efConstruction of the FAISS and winnowd graphs in the sweep (default "
                    "winnowd's and FAISS's 40; hnswlib keeps its own 200)")
    ap.add_argument("--sweep-queries", type=int, default=2000)
    ap.add_argument("--single-queries", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=5,
                    help="turns of every side at each ef in the sweep (the best counts)")
    ap.add_argument("--plot", default="docs/perf/search_recall_qps.png",
                    help="where the sweep writes its PNG ('' for none)")
    ap.add_argument("--label", default="",
                    help="added to the plot's title (e.g. the FAISS build)")
    a = ap.parse_args()
    parts = set(p for p in a.parts.split(",") if p)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    w = Winnowd(a.daemon, a.search_threads)
    try:
        http = http_cost(w) if "http" in parts else {}
        if "sweep" in parts and os.path.isdir(FMNIST):
            base = idx_images(FMNIST + "/train-images-idx3-ubyte.gz")
            test = idx_images(FMNIST + "/t10k-images-idx3-ubyte.gz")
            curves = sweep(w, a, base, test)
            title = ("fashion-mnist 60,000 x 784, cosine, %d queries, %d threads; winnowd over "
                     "HTTP (raw f32 rows, keep-alive; binary and JSON answers)%s" % (min(a.sweep_queries, len(test)),
                                                            a.threads,
                                                            "; " + a.label if a.label else ""))
            report_sweep(curves, http, a.plot, title)
        elif "sweep" in parts:
            print("sweep: %s missing (apt-get install dataset-fashion-mnist)" % FMNIST)
        if "workloads" in parts:
            workloads(w, a)
    finally:
        w.close()


def workloads(w, a):
    """The issue-4 table: threshold searches and each factory, synthetic and fashion-mnist."""
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((100, a.dim)).astype(np.float32)
    pick = rng.integers(0, 100, a.n + a.queries)
    allx = centres[pick] + 0.7 * rng.standard_normal((a.n + a.queries, a.dim)).astype(np.float32)
    x, q = allx[:a.n], allx[a.n:]
    t0 = time.time()
    load(w, "syn", x)
    print("loaded %d x %d-d in %.1f s" % (a.n, a.dim, time.time() - t0))
    threshold(w, "syn", x, q, "cosine")
    for f in [f for f in a.factories.split(",") if f]:
        workload(w, "syn", x, q, f, "cosine", a.clients)
    if not a.skip_fmnist and os.path.isdir(FMNIST):
        base = idx_images(FMNIST + "/train-images-idx3-ubyte.gz")
        test = idx_images(FMNIST + "/t10k-images-idx3-ubyte.gz")[:a.queries]
        load(w, "fmnist", base)
        threshold(w, "fmnist", base, test, "l2")
        for f in [f for f in a.factories.split(",") if f]:
            workload(w, "fmnist", base, test, f, "l2", a.clients)
    elif not a.skip_fmnist:
        print("fashion-mnist: %s missing (apt-get install dataset-fashion-mnist)" % FMNIST)

if __name__ == "__main__":
    main()
