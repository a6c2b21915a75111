#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""adapter: the Cosine Adapter benchmark of issue 7, over HTTP against numpy in this script.

Starts its own winnowd (port 0, a temporary data directory; bench/search.py's Winnowd) and runs:

1. Cranfield (../shared/data/cranfield): 1,400 abstracts and 225 queries embedded with TF-IDF
   (log tf, idf) reduced to --svd-dim by a truncated SVD of the document matrix (numpy, LSA).
   Pairs for the first --train-queries queries: each query's top --candidates documents by
   cosine, labelled with the judgments (grades 1..4 sent as 4..1, unjudged 0, label_cut 2, so
   grades 1..3 are relevant; pairs judged -1 are left out). The adapter is trained by winnowd;
   on the other queries, which it never saw, the search answers with "relevance": {"min": its
   threshold} give precision and recall (over every document of the collection), next to a
   global raw cosine threshold with the same recall and top-K, computed with numpy.
2. Training time for --pairs labelled pairs (1,000 queries x 100 candidates, --dim, hidden 32)
   on synthetic data whose relevance level depends on the query.
3. The added latency of relevance per query at limit 100 (HNSW32 top-100, annotated) and for a
   minimum (the threshold scan, against score_threshold at the same cosine bound), both against
   the same search without relevance; target: under 5% of the search time at limit 100.

Prints one line per measurement and PASS/MISS for the latency target. Exit 0 when everything ran."""

import argparse
import json
import math
import os
import re
import sys
import time
from collections import Counter, defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from search import Winnowd, b64, load  # noqa: E402

CRAN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                    "cranfield")


def read_trec(path):
    """{.I number: text of the .T and .W fields} in file order."""
    out, cur, field = [], None, None
    for line in open(path, encoding="latin-1"):
        if line.startswith(".I"):
            cur = [line.split()[1], []]
            out.append(cur)
            field = None
        elif line.startswith("."):
            field = line[1]
        elif cur is not None and field in ("T", "W"):
            cur[1].append(line)
    return [(i, " ".join(t)) for i, t in out]


def tokens(text):
    return [w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2]


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def embed_cranfield(dim):
    docs = read_trec(os.path.join(CRAN, "cran.all.1400"))
    qrys = read_trec(os.path.join(CRAN, "cran.qry"))
    dt = [Counter(tokens(t)) for _, t in docs]
    qt = [Counter(tokens(t)) for _, t in qrys]
    df = Counter(w for c in dt for w in c)
    vocab = {w: i for i, w in enumerate(sorted(w for w in df if df[w] >= 2))}
    idf = np.zeros(len(vocab))
    for w, i in vocab.items():
        idf[i] = math.log(len(docs) / df[w])

    def mat(cs):
        m = np.zeros((len(cs), len(vocab)))
        for r, c in enumerate(cs):
            for w, n in c.items():
                if w in vocab:
                    m[r, vocab[w]] = (1 + math.log(n)) * idf[vocab[w]]
        return unit(m)

    X, Q = mat(dt), mat(qt)
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    p = vt[:dim].T
    return (X @ p).astype(np.float32), (Q @ p).astype(np.float32), len(vocab)


def read_qrels():
    """{query number 1..225: {doc number: grade}}."""
    q = defaultdict(dict)
    for line in open(os.path.join(CRAN, "cranqrel")):
        a, b, g = line.split()
        q[int(a)][int(b)] = int(g)
    return q


def prf(kept, rel, npos):
    p = rel / kept if kept else 0.0
    r = rel / npos if npos else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def cranfield(w, a):
    t0 = time.time()
    X, Q, nv = embed_cranfield(a.svd_dim)
    qrels = read_qrels()
    print("cranfield: %d docs, %d queries, vocabulary %d, TF-IDF -> SVD %d dims (%.1f s)"
          % (len(X), len(Q), nv, a.svd_dim, time.time() - t0))
    w.call("PUT", "/v1/datasets/cran", {"spaces": {"e": {"dim": a.svd_dim}}})
    lines = [json.dumps({"id": "d%d" % (i + 1), "embeddings": {"e": b64(X[i])}}) for i in range(len(X))]
    w.call("POST", "/v1/datasets/cran/records", ("\n".join(lines) + "\n").encode(),
           ctype="application/x-ndjson")
    S = unit(Q) @ unit(X).T  # query x doc cosines
    ntr = a.train_queries
    pairs = []
    for qi in range(ntr):
        judged = qrels.get(qi + 1, {})
        for di in np.argsort(-S[qi], kind="stable")[:a.candidates]:
            g = judged.get(int(di) + 1, 0)
            if g == -1:
                continue  # judged without a usable grade
            pairs.append(json.dumps({"query": Q[qi].tolist(), "id": "d%d" % (di + 1),
                                     "label": 5 - g if g > 0 else 0}))
    defn = {"space": "e", "family": a.family, "hidden": a.hidden, "label_cut": 2, "seed": 1,
            "weight_decay": a.weight_decay}
    w.call("PUT", "/v1/datasets/cran/adapters/cran", defn)
    res = w.call("POST", "/v1/datasets/cran/adapters/cran/pairs", ("\n".join(pairs) + "\n").encode(),
                 ctype="application/x-ndjson")
    jid = w.call("POST", "/v1/datasets/cran/adapters/cran:train")["job"]
    w.wait_job(jid)
    v = w.call("GET", "/v1/datasets/cran/adapters/cran")
    tr = v["training"]
    ho = tr["held_out"]
    print("cranfield: adapter %s hidden %d trained on %d pairs of %d queries (%d held out for "
          "early stopping) in %.2f s, %d epochs" % (a.family, a.hidden, res["pairs"], ntr,
                                                    tr["queries"]["held_out"], tr["seconds"],
                                                    tr["epochs"]))
    print("cranfield: training report (held-out pairs): adapter P %.3f R %.3f F1 %.3f; raw cosine "
          "at equal recall P %.3f R %.3f; top-%d P %.3f R %.3f"
          % (ho["adapter"]["precision"], ho["adapter"]["recall"], ho["adapter"]["f1"],
             ho["raw_cosine"]["precision"], ho["raw_cosine"]["recall"], ho["top_k"]["k"],
             ho["top_k"]["precision"], ho["top_k"]["recall"]))
    tau = v["threshold"]
    test = [qi for qi in range(ntr, len(Q)) if any(g in (1, 2, 3) for g in qrels.get(qi + 1, {}).values())]
    rel = np.zeros((len(test), len(X)), dtype=bool)
    for r, qi in enumerate(test):
        for dn, g in qrels[qi + 1].items():
            if g in (1, 2, 3):
                rel[r, dn - 1] = True
    npos = int(rel.sum())
    kept = relk = 0
    c = w.conn()
    for r, qi in enumerate(test):
        tok = None
        while True:
            body = {"vector": b64(Q[qi]), "limit": 1000, "relevance": {"adapter": "cran", "min": tau}}
            if tok:
                body["page_token"] = tok
            out = w.call("POST", "/v1/datasets/cran/search", body, conn=c)
            for x in out["results"]:
                kept += 1
                relk += bool(rel[r, int(x["id"][1:]) - 1])
            tok = out["page_token"]
            if tok is None:
                break
    c.close()
    pa, ra, fa = prf(kept, relk, npos)
    print("cranfield: %d test queries (never trained on), %d relevant documents (grades 1-3)"
          % (len(test), npos))
    print("cranfield: adapter threshold %.3f: P %.3f R %.3f F1 %.3f (%d kept)" % (tau, pa, ra, fa, kept))
    s = S[test].ravel()
    lab = rel.ravel()
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(lab[order])
    k = int(np.argmax(tp >= math.ceil(ra * npos - 1e-9)))
    pc, rc, fc = prf(k + 1, int(tp[k]), npos)
    print("cranfield: raw cosine threshold %.3f (same recall, chosen on the test queries): "
          "P %.3f R %.3f F1 %.3f (%d kept)" % (s[order[k]], pc, rc, fc, k + 1))
    print("cranfield: precision ratio adapter / raw cosine at equal recall: %.2f" % (pa / pc if pc else float("nan")))
    # a raw cosine threshold tuned like the adapter's (max F1 on the training queries' candidate
    # pairs), then applied to the test queries: the baseline without hindsight
    st, lt = [], []
    for qi in range(ntr):
        judged = qrels.get(qi + 1, {})
        for di in np.argsort(-S[qi], kind="stable")[:a.candidates]:
            g = judged.get(int(di) + 1, 0)
            if g != -1:
                st.append(S[qi, di])
                lt.append(g in (1, 2, 3))
    st, lt = np.array(st), np.array(lt)
    o = np.argsort(-st, kind="stable")
    tpc = np.cumsum(lt[o])
    f1 = 2 * tpc / (np.arange(1, len(o) + 1) + lt.sum())
    tr_thr = st[o[int(np.argmax(f1))]]
    keep = s >= tr_thr
    p2, r2, f2 = prf(int(keep.sum()), int(lab[keep].sum()), npos)
    print("cranfield: raw cosine threshold %.3f (max F1 on the training queries' pairs, like the "
          "adapter's): P %.3f R %.3f F1 %.3f (%d kept)" % (tr_thr, p2, r2, f2, int(keep.sum())))
    for K in (5, 10, 20):
        top = np.argsort(-S[test], axis=1, kind="stable")[:, :K]
        hit = int(sum(rel[r, top[r]].sum() for r in range(len(test))))
        p, r_, f = prf(K * len(test), hit, npos)
        print("cranfield: top-%d: P %.3f R %.3f F1 %.3f" % (K, p, r_, f))


def synthetic_pairs(x, nq, per, rng):
    """nq queries near data points; each query's top-per documents by cosine, relevant when
    their cosine is above a level that depends on the query."""
    dim = x.shape[1]
    xn = unit(x).astype(np.float32)
    qs = unit(x[rng.integers(0, len(x), nq)] + 0.5 * rng.standard_normal((nq, dim))).astype(np.float32)
    u = unit(rng.standard_normal(dim))
    lines = []
    for a in range(0, nq, 100):
        s = qs[a:a + 100] @ xn.T
        top = np.argsort(-s, axis=1)[:, :per]
        for j in range(len(top)):
            q = qs[a + j]
            cs = s[j, top[j]]
            lv = np.quantile(cs, 0.5 + 0.4 * math.tanh(3 * float(q @ u) * math.sqrt(dim) / 3))
            for di, c in zip(top[j], cs):
                lines.append(json.dumps({"query": q.tolist(), "id": "%d" % di, "label": int(c >= lv)}))
    return lines, qs


def median_ms(v):
    return float(np.median(v) * 1e3)


def latency(w, a, rng):
    x = (rng.standard_normal((a.n, a.dim)) + 2 * rng.standard_normal((64, a.dim))[rng.integers(0, 64, a.n)]).astype(np.float32)
    load(w, "syn", x)
    w.wait_job(w.call("PUT", "/v1/datasets/syn/indexes/e", {"factory": "HNSW32", "metric": "cosine"})["job"])
    lines, _ = synthetic_pairs(x, a.pairs // 100, 100, rng)
    w.call("PUT", "/v1/datasets/syn/adapters/syn", {"space": "e", "family": "linear", "hidden": 32,
                                                     "max_epochs": a.epochs})
    for s in range(0, len(lines), 2000):
        w.call("POST", "/v1/datasets/syn/adapters/syn/pairs", ("\n".join(lines[s:s + 2000]) + "\n").encode(),
               ctype="application/x-ndjson")
    t0 = time.time()
    w.wait_job(w.call("POST", "/v1/datasets/syn/adapters/syn:train")["job"])
    wall = time.time() - t0
    v = w.call("GET", "/v1/datasets/syn/adapters/syn")
    tr = v["training"]
    print("train: %d pairs (%d queries x 100), dim %d, hidden 32: %.2f s in the job (%.2f s wall "
          "with job polling), %d epochs (%.3f s an epoch); held-out adapter P %.3f R %.3f vs raw "
          "cosine P %.3f" % (len(lines), len(lines) // 100, a.dim, tr["seconds"], wall, tr["epochs"],
                              tr["seconds"] / max(tr["epochs"], 1), tr["held_out"]["adapter"]["precision"],
                              tr["held_out"]["adapter"]["recall"], tr["held_out"]["raw_cosine"]["precision"]))
    qs = unit(x[rng.integers(0, len(x), a.queries)] + 0.5 * rng.standard_normal((a.queries, a.dim))).astype(np.float32)
    c = w.conn()
    plain, rel = [], []
    for i, q in enumerate(qs):  # each query twice, which one first alternating (warm caches)
        runs = ((plain, {}), (rel, {"relevance": {"adapter": "syn"}}))
        for arr, extra in (runs if i % 2 == 0 else runs[::-1]):
            t = time.perf_counter()
            w.call("POST", "/v1/datasets/syn/search", dict({"vector": b64(q), "limit": 100}, **extra), conn=c)
            arr.append(time.perf_counter() - t)
    mp, mr = median_ms(plain), median_ms(rel)
    added = median_ms(np.array(rel) - np.array(plain))
    ok = added < 0.05 * mp
    print("latency: top-100 (HNSW32, n %d, dim %d): plain p50 %.3f ms, with relevance p50 %.3f ms: "
          "added (median of per-query differences) %.3f ms = %.1f%% %s (target < 5%%)"
          % (a.n, a.dim, mp, mr, added, 100 * added / mp, "PASS" if ok else "MISS"))
    thr, relm = [], []
    for q in qs[: a.threshold_queries]:
        r = w.call("POST", "/v1/datasets/syn/search:count", {"vector": b64(q), "relevance": {"adapter": "syn", "min": v["threshold"]}}, conn=c)
        bound = r["stats"]["relevance"]["cosine_bound"]
        runs = ((thr, {"score_threshold": bound - 1e-6}),
                (relm, {"relevance": {"adapter": "syn", "min": v["threshold"]}}))
        for arr, body in (runs if len(thr) % 2 == 0 else runs[::-1]):
            t = time.perf_counter()
            w.call("POST", "/v1/datasets/syn/search", dict({"vector": b64(q), "limit": 100}, **body), conn=c)
            arr.append(time.perf_counter() - t)
    c.close()
    mt, mm = median_ms(thr), median_ms(relm)
    added = median_ms(np.array(relm) - np.array(thr))
    print("latency: threshold search (exact scan, n %d): score_threshold at the cosine bound p50 "
          "%.3f ms, relevance min p50 %.3f ms: added %.3f ms = %.1f%% %s (target < 5%%)"
          % (a.n, mt, mm, added, 100 * added / mt, "PASS" if added < 0.05 * mt else "MISS"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", default="build/winnowd")
    ap.add_argument("--svd-dim", type=int, default=128)
    ap.add_argument("--train-queries", type=int, default=150)
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--family", default="linear")
    ap.add_argument("--hidden", type=int, default=8)
    ap.add_argument("--weight-decay", type=float, default=1e-3)
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--pairs", type=int, default=100000)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--threshold-queries", type=int, default=40)
    ap.add_argument("--skip-cranfield", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    a = ap.parse_args()
    w = Winnowd(a.daemon)
    try:
        if not a.skip_cranfield:
            cranfield(w, a)
        if not a.skip_latency:
            latency(w, a, np.random.default_rng(5))
    finally:
        w.close()


if __name__ == "__main__":
    main()
