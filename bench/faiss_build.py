# SPDX-License-Identifier: MIT
"""faiss_build: FAISS's generic build against its AVX2 build (issue 20), in-process.

Both builds of libwinnow_faiss.so (scripts/deps.sh: build/faiss/lib/ and its
glibc-hwcaps/x86-64-v3/) are loaded by path through ctypes, each in a child process of its
own (they define the same symbols), and run the same work through FAISS's C API: an HNSW32
index over Fashion-MNIST's train images (784-d, raw pixels, L2; --base of them), its build
time, then --queries single-query searches of the test images at efSearch 64 (one query per
call, the daemon's case), timed one by one. The ids are compared with numpy's exact
neighbours (recall@10). Prints one line per build and the AVX2/generic ratios.

Usage: bench/faiss_build.py [--daemon build/winnowd] [--base 20000] [--queries 1000]
(the libraries are found through the daemon's RUNPATH)."""

import argparse
import ctypes
import gzip
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

FMNIST = "/usr/share/datasets/fashion-mnist"
K, EF = 10, 64


def images(name, n):
    with gzip.open(os.path.join(FMNIST, name)) as f:
        raw = f.read()
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 784)[:n].astype(np.float32)


def child(lib, base, queries):
    """Run in a child: build and search with the library at lib; print a JSON line."""
    c = ctypes.CDLL(lib)
    c.winnow_faiss_build.restype = ctypes.c_char_p
    x, q = images("train-images-idx3-ubyte.gz", base), images("t10k-images-idx3-ubyte.gz", queries)
    ix, ps = ctypes.c_void_p(), ctypes.c_void_p()
    assert c.faiss_index_factory(ctypes.byref(ix), 784, b"HNSW32", 1) == 0  # METRIC_L2
    t0 = time.perf_counter()
    assert c.faiss_Index_add(ix, ctypes.c_int64(base), x.ctypes.data_as(ctypes.c_void_p)) == 0
    build_s = time.perf_counter() - t0
    assert c.faiss_ParameterSpace_new(ctypes.byref(ps)) == 0
    c.faiss_ParameterSpace_set_index_parameter(ps, ix, b"efSearch", ctypes.c_double(EF))
    dist = np.zeros(K, dtype=np.float32)
    ids = np.zeros((queries, K), dtype=np.int64)
    lat = []
    for i in range(queries):
        row = q[i]
        t0 = time.perf_counter()
        c.faiss_Index_search(ix, ctypes.c_int64(1), row.ctypes.data_as(ctypes.c_void_p),
                             ctypes.c_int64(K), dist.ctypes.data_as(ctypes.c_void_p),
                             ids[i].ctypes.data_as(ctypes.c_void_p))
        lat.append(time.perf_counter() - t0)
    print(json.dumps({"build": c.winnow_faiss_build().decode(), "build_s": build_s,
                      "p50_ms": 1e3 * float(np.median(lat)), "mean_ms": 1e3 * float(np.mean(lat)),
                      "ids": ids.tolist()}))


def runpath(daemon):
    out = subprocess.run(["readelf", "-d", daemon], capture_output=True, text=True, check=True)
    m = re.search(r"(?:RUNPATH|RPATH).*\[([^\]]+)\]", out.stdout)
    if m is None:
        raise SystemExit("faiss_build: %s has no RUNPATH" % daemon)
    return m.group(1).split(":")[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", default="build/winnowd")
    ap.add_argument("--base", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--child")
    a, _ = ap.parse_known_args()
    if a.child:
        child(a.child, a.base, a.queries)
        return
    if not os.path.isdir(FMNIST):
        print("faiss_build: SKIP (dataset-fashion-mnist is not installed)")
        return
    d = runpath(a.daemon)
    libs = [os.path.join(d, "libwinnow_faiss.so"),
            os.path.join(d, "glibc-hwcaps", "x86-64-v3", "libwinnow_faiss.so")]
    if not os.path.isfile(libs[1]):
        print("faiss_build: SKIP (no AVX2 build yet: make deps-wait)")
        return
    x = images("train-images-idx3-ubyte.gz", a.base).astype(np.float64)
    q = images("t10k-images-idx3-ubyte.gz", a.queries).astype(np.float64)
    d2 = (q * q).sum(1)[:, None] - 2 * q @ x.T + (x * x).sum(1)[None, :]
    truth = np.argsort(d2, axis=1)[:, :K]
    res = []
    for lib in libs:
        out = subprocess.run([sys.executable, __file__, "--child", lib, "--base", str(a.base),
                              "--queries", str(a.queries)], capture_output=True, text=True,
                             check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        r = json.loads(out.stdout)
        ids = np.array(r["ids"])
        r["recall"] = float(np.mean([len(set(ids[i]) & set(truth[i])) / K
                                     for i in range(a.queries)]))
        res.append(r)
        print("faiss_build: %-7s HNSW32 fashion-mnist base %d: build %.2f s, search (1 query, "
              "efSearch %d) p50 %.3f ms mean %.3f ms, recall@%d %.4f"
              % (r["build"], a.base, r["build_s"], EF, r["p50_ms"], r["mean_ms"], K, r["recall"]))
    g, v = res
    same = float(np.mean(np.array(g["ids"]) == np.array(v["ids"])))
    print("faiss_build: avx2/generic build %.2fx, search p50 %.2fx, mean %.2fx; same ids %.4f"
          % (v["build_s"] / g["build_s"], v["p50_ms"] / g["p50_ms"], v["mean_ms"] / g["mean_ms"],
             same))


if __name__ == "__main__":
    main()
