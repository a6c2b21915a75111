#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""hubness: the hubness-reduction benchmark of issue 8 (spec section 5), over HTTP against a
numpy reference computed in this script.

Fashion-MNIST from Debian's dataset-fashion-mnist, L2-normalised pixels: the 60,000 train images
are the gallery and the banks (query bank: an even sample of 10,000; gallery bank: an even sample
of 20,000; self-pairs excluded), the 10,000 test images are the queries. For raw cosine, CSLS
(K = 10), IS, DIS and DualIS at beta 5, 10, 20, 50 it prints the N_10 skewness (with and without
never-retrieved items) and the 1-NN label accuracy, re-ranking the top 100 raw candidates and
over the whole gallery (numpy). The daemon answers the same 10,000 queries for raw and for every
method at beta 20 (top-100 re-rank, Flat cosine index): its figures are printed next to numpy's.

Then: the time of the statistics job (both banks) and its extrapolation to 1,000,000 records
(the job is linear in the gallery), next to numpy doing the same products and log-sum-exps in
process; and the added latency of a DualIS search over 100 and 1,000 candidates against a plain
search, with numpy's cost of the same rescoring in process.

--quick uses 10,000 train images and 2,000 queries (a smoke run)."""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from search import FMNIST, Winnowd, b64, idx_images, load, pct  # noqa: E402

BETAS = (5, 10, 20, 50)


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def labels(path):
    import gzip
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)


def skew(c, zeros=True):
    c = np.asarray(c, np.float64)
    if not zeros:
        c = c[c > 0]
    d = c - c.mean()
    return float((d ** 3).mean() / (d ** 2).mean() ** 1.5)


def even(n, want):
    """The daemon's even sample of rows 0..n-1."""
    if n <= want:
        return np.arange(n)
    return (np.arange(want) * n // want).astype(np.int64)


def bank_stats(x, bank_rows, betas, csls_k=10):
    """log Z per beta, r_B and the activation set of a bank drawn from the gallery x."""
    n = len(x)
    lz = {b: np.empty(n) for b in betas}
    rb = np.empty(n)
    best = np.full(len(bank_rows), -np.inf)
    arg = np.zeros(len(bank_rows), np.int64)
    bx = x[bank_rows]
    for a in range(0, n, 5000):
        s = bx @ x[a:a + 5000].T  # bank x chunk
        cols = np.arange(a, min(n, a + 5000))
        self_ = bank_rows[:, None] == cols[None, :]
        s[self_] = -np.inf
        for b in betas:
            t = b * s.astype(np.float64)
            mx = t.max(0)
            lz[b][a:a + 5000] = mx + np.log(np.exp(t - mx).sum(0))
        rb[a:a + 5000] = -np.partition(-s, csls_k - 1, axis=0)[:csls_k].mean(0)
        m = s.max(1)
        upd = m > best
        arg[upd] = a + s.argmax(1)[upd]
        best[upd] = m[upd]
    act = np.zeros(n, bool)
    act[arg] = True
    return lz, rb, act


def evaluate(q, x, ql, xl, lzq, lzg, rb, aq, k=10, cand=100):
    """N_10 counts and 1-NN hits per (method, beta, mode)."""
    n = len(x)
    counts, hits = {}, {}

    for a in range(0, len(q), 1000):
        s = (q[a:a + 1000] @ x.T).astype(np.float64)
        rows = np.arange(len(s))[:, None]
        o = np.argsort(-s, 1)[:, :cand]  # raw top-100, best first
        so = s[rows, o]
        top1 = o[:, 0]
        rg = so[:, :10].mean(1, keepdims=True)
        ql_chunk = ql[a:a + 1000]

        def topk(m):
            p = np.argpartition(-m, k, 1)[:, :k]
            return np.take_along_axis(p, np.argsort(-np.take_along_axis(m, p, 1), 1), 1)

        def rerank(m):
            return np.take_along_axis(o, np.argsort(-m, 1, kind="stable")[:, :k], 1)

        variants = [("raw", 0, so, s), ("csls", 0, 2 * so - rg - rb[o], 2 * s - rg - rb[None])]
        for b in BETAS:
            isc = b * so - lzq[b][o]
            isw = b * s - lzq[b][None]
            act = aq[top1][:, None]
            variants += [("is", b, isc, isw), ("dis", b, np.where(act, isc, so), None),
                         ("dualis", b, isc + b * so - lzg[b][o], isw + b * s - lzg[b][None])]
        for name, b, mc, mw in variants:
            top = rerank(mc)
            key = (name, b, "top100")
            counts.setdefault(key, np.zeros(n, np.int64))
            np.add.at(counts[key], top.ravel(), 1)
            hits[key] = hits.get(key, 0) + int((xl[top[:, 0]] == ql_chunk).sum())
            if name == "dis":  # whole gallery: the row is IS or raw
                mw = np.where(aq[top1][:, None], b * s - lzq[b][None], s)
            top = topk(mw)
            key = (name, b, "whole")
            counts.setdefault(key, np.zeros(n, np.int64))
            np.add.at(counts[key], top.ravel(), 1)
            hits[key] = hits.get(key, 0) + int((xl[top[:, 0]] == ql_chunk).sum())
    return counts, hits


def daemon_pass(w, q, method, k=10, cand=100):
    """Top-10 ids for every query through POST .../search (batches of 500)."""
    c = w.conn()
    out = []
    for a in range(0, len(q), 500):
        body = {"vectors": [b64(v) for v in q[a:a + 500]], "limit": k}
        if method is not None:
            body["hubness"] = {"normalizer": method[1], "method": method[0], "candidates": cand}
        r = w.call("POST", "/v1/datasets/fm/search", body, conn=c)
        out += [[int(x["id"]) for x in one["results"]] for one in r["queries"]]
    c.close()
    return np.array(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", default="build/winnowd")
    ap.add_argument("--quick", action="store_true")
    args, _ = ap.parse_known_args()
    if not os.path.exists(os.path.join(FMNIST, "train-images-idx3-ubyte.gz")):
        print("hubness: SKIP (dataset-fashion-mnist is not installed)")
        return 0
    x = unit(idx_images(os.path.join(FMNIST, "train-images-idx3-ubyte.gz")))
    q = unit(idx_images(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")))
    xl = labels(os.path.join(FMNIST, "train-labels-idx1-ubyte.gz"))
    ql = labels(os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz"))
    if args.quick:
        x, xl, q, ql = x[:10000], xl[:10000], q[:2000], ql[:2000]
    n = len(x)
    qrows, grows = even(n, 10000), even(n, 20000)
    print("hubness: fashion-mnist gallery %d, queries %d, query bank %d, gallery bank %d"
          % (n, len(q), len(qrows), len(grows)))
    sys.stdout.flush()

    t0 = time.perf_counter()
    lzq, rb, aq = bank_stats(x, qrows, BETAS)
    lzg, _, _ = bank_stats(x, grows, BETAS)
    t_np_stats = (time.perf_counter() - t0) / len(BETAS)  # one beta's share, roughly
    counts, hits = evaluate(q, x, ql, xl, lzq, lzg, rb, aq)
    print("numpy reference (N_10 skewness with zeros / retrieved only, 1-NN accuracy):")
    print("  %-8s %-5s %-7s %8s %8s %8s" % ("method", "beta", "mode", "skew", "skew>0", "1-NN"))
    for key in sorted(counts, key=lambda t: (t[2], t[0] != "raw", t[0], t[1])):
        c = counts[key]
        print("  %-8s %-5s %-7s %8.2f %8.2f %7.1f%%" % (key[0], key[1] or "-", key[2], skew(c),
                                                        skew(c, False), 100 * hits[key] / len(q)))
    sys.stdout.flush()

    w = Winnowd(args.daemon)
    try:
        load(w, "fm", x.astype(np.float32))
        w.wait_job(w.call("PUT", "/v1/datasets/fm/indexes/e",
                          {"factory": "Flat", "metric": "cosine"})["job"])
        t0 = time.perf_counter()
        r = w.call("PUT", "/v1/datasets/fm/hubness/b20", {
            "space": "e", "beta1": 20, "beta2": 20,
            "query_bank": {"dataset": "fm", "space": "e", "sample": 10000},
            "gallery_bank": {"dataset": "fm", "space": "e", "sample": 20000}})
        w.wait_job(r["job"])
        t_job = time.perf_counter() - t0
        print("statistics job: %d records x (%d + %d) bank items, 784-d: %.1f s (%.0f records/s);"
              " numpy in process %.1f s; ratio %.2f; 1,000,000 records with banks of 10,000 +"
              " 10,000 (linear): %.0f s"
              % (n, len(qrows), len(grows), t_job, n / t_job, t_np_stats, t_job / t_np_stats,
                 t_job * 1e6 / n * 20000 / (len(qrows) + len(grows))))
        print("daemon, 10,000 queries through HTTP, top-100 re-rank (numpy in brackets):")
        for m in (None, ("csls", "b20"), ("is", "b20"), ("dis", "b20"), ("dualis", "b20"),
                  ("dualdis", "b20")):
            top = daemon_pass(w, q.astype(np.float32), m)
            c = np.bincount(top.ravel(), minlength=n)
            acc = float((xl[top[:, 0]] == ql).mean())
            name = "raw" if m is None else m[0]
            key = (name, 0 if name in ("raw", "csls") else 20, "top100")
            ref = ("(%.2f, %.1f%%)" % (skew(counts[key]), 100 * hits[key] / len(q))
                   if key in counts else "")
            print("  %-8s skew %.2f  skew>0 %.2f  1-NN %.1f%% %s"
                  % (name, skew(c), skew(c, False), 100 * acc, ref))
            sys.stdout.flush()
        # added latency of DualIS rescoring, single queries
        c = w.conn()
        qs = q[:200].astype(np.float32)
        res = {}
        for label, body in (("plain", {}),
                            ("dualis100", {"hubness": {"normalizer": "b20", "method": "dualis",
                                                       "candidates": 100}}),
                            ("plain100", {"limit": 100}),
                            ("dualis1000", {"hubness": {"normalizer": "b20", "method": "dualis",
                                                        "candidates": 1000}}),
                            ("plain1000", {"limit": 1000})):
            lat = []
            for v in qs:
                b = dict({"vector": b64(v), "limit": 10}, **body)
                t0 = time.perf_counter()
                w.call("POST", "/v1/datasets/fm/search", b, conn=c)
                lat.append(time.perf_counter() - t0)
            res[label] = pct(lat, 50)
        c.close()
        for m in (100, 1000):
            rows = np.random.default_rng(1).choice(n, m, replace=False)
            t0 = time.perf_counter()
            for _ in range(200):
                s = x[rows] @ qs[0]
                sc = 40 * s - lzq[20][rows] - lzg[20][rows]
                np.argsort(-sc)[:10]
            t_np = (time.perf_counter() - t0) / 200 * 1e3
            print("dualis rescoring of %d candidates: p50 %.2f ms vs plain top-10 %.2f ms "
                  "(added %.2f ms; plain top-%d %.2f ms); numpy rescoring in process %.3f ms"
                  % (m, res["dualis%d" % m], res["plain"], res["dualis%d" % m] - res["plain"], m,
                     res["plain%d" % m], t_np))
    finally:
        w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
