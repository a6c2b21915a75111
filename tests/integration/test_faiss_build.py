# SPDX-License-Identifier: MIT
"""FAISS's two builds (issue 20): winnowd links libwinnow_faiss.so, which glibc's loader takes
from build/faiss/lib/glibc-hwcaps/x86-64-v3/ (the AVX2 build) on a CPU with x86-64-v3 and
from build/faiss/lib/ (the generic build) otherwise. The daemon reports which one it mapped
(the start-up log, /readyz?verbose, /metrics). With the AVX2 features masked
(GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2) it runs the generic build; both builds answer an
HNSW search at a high ef_search with numpy's exact neighbours. The AVX2 build carries winnow's
HNSW prefetch patch (scripts/faiss-avx2.patch): searching one saved graph at a low
ef_search, it answers as the unpatched generic build does. Unless its environment sets
OMP_WAIT_POLICY, winnowd runs itself again with OMP_WAIT_POLICY=passive (cmd/winnowd.c)."""

import os
import re
import subprocess

import numpy as np

import curate
import wn
from wn import assert_eq, test

N, D, K, NQ = 1500, 24, 10, 20
MASK = {"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2"}
HWCAPS = os.path.join("glibc-hwcaps", "x86-64-v3", "libwinnow_faiss.so")


def cpu_has_v3():
    """Whether glibc's loader searches x86-64-v3 library directories on this CPU."""
    if not os.path.exists("/lib64/ld-linux-x86-64.so.2"):
        return False  # not x86-64: only the generic build exists
    out = subprocess.run(["/lib64/ld-linux-x86-64.so.2", "--help"], capture_output=True,
                         text=True, check=False).stdout
    return re.search(r"^\s*x86-64-v3 \(supported", out, re.M) is not None


def reported(d):
    """(readyz's faiss_build, the metric's build label, the log's build and library)."""
    st, _, ready = d.get_json("/readyz?verbose")
    assert_eq(st, 200)
    _, text = d.metrics()
    labels = re.findall(r'^winnow_faiss_build_info\{build="([^"]*)"\} 1$', text, re.M)
    assert_eq(len(labels), 1, "one winnow_faiss_build_info series")
    logged = d.events("faiss")
    assert_eq(len(logged), 1, "one faiss line at start-up")
    return ready["faiss_build"], labels[0], logged[0]["build"], logged[0]["library"]


_data = {}


def gallery():
    if not _data:
        rng = np.random.default_rng(20)
        _data["x"] = rng.standard_normal((N, D)).astype(np.float32)
        _data["q"] = rng.standard_normal((NQ, D)).astype(np.float32)
    return _data["x"], _data["q"]


def hnsw_ids(d):
    """The ids an HNSW32 index over the gallery answers for each query (ef_search 512)."""
    x, q = gallery()
    d.put_dataset("g", {"spaces": {"v": {"dim": D, "dtype": "f32"}}})
    assert_eq(d.ingest("g", [{"id": "r%04d" % i, "embeddings": {"v": curate.emb(x[i])}}
                             for i in range(N)])[0], 200)
    curate.wait_job(d, curate.job_id(d.json("PUT", "/v1/datasets/g/indexes/v",
                                            {"factory": "HNSW32", "metric": "l2"})))
    out = []
    for v in q:
        st, _, res = d.json("POST", "/v1/datasets/g/search",
                            {"vector": v.tolist(), "space": "v", "limit": K,
                             "params": {"ef_search": 512}})
        assert_eq(st, 200, res)
        assert_eq(res["stats"]["index"], "HNSW32")
        out.append([int(r["id"][1:]) for r in res["results"]])
    return out


def numpy_ids():
    x, q = gallery()
    d2 = ((q[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(axis=2)
    return np.argsort(d2, axis=1, kind="stable")[:, :K].tolist()


_seen = {}


@test
def masked_features_run_the_generic_build():
    with wn.Daemon(env=MASK) as d:
        ready, metric, logged, library = reported(d)
        assert_eq((ready, metric, logged), ("generic", "generic", "generic"))
        assert library.endswith("/faiss/lib/libwinnow_faiss.so"), library
        assert os.path.isabs(library), library
        _seen["generic_lib"] = library
        _seen["generic"] = hnsw_ids(d)
    assert_eq(_seen["generic"], numpy_ids(), "generic HNSW ids vs numpy")


@test
def this_cpu_runs_the_avx2_build():
    assert "generic_lib" in _seen, "needs masked_features_run_the_generic_build"
    avx2_lib = os.path.join(os.path.dirname(_seen["generic_lib"]), HWCAPS)
    if not cpu_has_v3() or os.environ.get("WINNOW_FAISS_AVX2") == "0":
        want, want_lib = "generic", _seen["generic_lib"]
    else:
        assert os.path.isfile(avx2_lib), (
            "%s is missing: the AVX2 build has not finished (make deps-wait)" % avx2_lib)
        want, want_lib = "avx2", avx2_lib
    with wn.Daemon() as d:
        ready, metric, logged, library = reported(d)
        assert_eq((ready, metric, logged, library), (want, want, want, want_lib))
        ids = hnsw_ids(d)
    assert_eq(ids, numpy_ids(), "%s HNSW ids vs numpy" % want)
    assert_eq(ids, _seen["generic"], "%s HNSW ids vs the generic build's" % want)


@test
def prefetch_patch_searches_as_the_generic_build():
    """One cosine HNSW32 graph (built by the generic build, saved at a clean stop), searched by
    both builds at ef_search 16, where the search is approximate and its path through the graph
    decides the answer: the patched AVX2 build visits the same neighbours in the same order, so
    it answers with the same ids. (Their dot-product kernels round differently: a query whose
    answer sits on a near-tie may differ, so 1 in 10 is allowed to.)"""
    x, q = gallery()
    rng = np.random.default_rng(21)
    qs = rng.standard_normal((200, D)).astype(np.float32)

    def answers(d):
        out = []
        for v in qs:
            st, _, res = d.json("POST", "/v1/datasets/c/search",
                                {"vector": v.tolist(), "space": "v", "limit": K,
                                 "params": {"ef_search": 16}})
            assert_eq((st, res["stats"]["index"]), (200, "HNSW32"), res)
            out.append([r["id"] for r in res["results"]])
        return out

    with wn.Daemon(env=MASK) as g:
        g.put_dataset("c", {"spaces": {"v": {"dim": D, "dtype": "f32"}}})
        assert_eq(g.ingest("c", [{"id": "r%04d" % i, "embeddings": {"v": curate.emb(x[i])}}
                                 for i in range(N)])[0], 200)
        curate.wait_job(g, curate.job_id(g.json("PUT", "/v1/datasets/c/indexes/v",
                                                {"factory": "HNSW32", "metric": "cosine"})))
        generic = answers(g)
        data_dir, g.own_dir = g.data_dir, False  # keep the data (and the graph) for the next
    try:
        with wn.Daemon(tmpdir=data_dir) as a:
            assert a.events("index_loaded"), "the saved graph is loaded, not rebuilt"
            patched = answers(a)
    finally:
        import shutil
        shutil.rmtree(data_dir, ignore_errors=True)
    same = sum(p == gen for p, gen in zip(patched, generic))
    print("queries answered alike by the two builds: %d of %d" % (same, len(qs)))
    assert same >= 0.9 * len(qs), same
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    exact = np.argsort(-(qs / np.linalg.norm(qs, axis=1, keepdims=True)) @ xn.T, axis=1,
                       kind="stable")[:, :K]
    recall = [np.mean([len(set(int(i[1:]) for i in got[j]) & set(exact[j].tolist())) / K
                       for j in range(len(qs))]) for got in (generic, patched)]
    print("recall@10 at ef_search 16: generic %.3f, patched %.3f" % tuple(recall))
    assert recall[0] > 0.5 and abs(recall[0] - recall[1]) < 0.02, recall


def environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return dict(kv.split("=", 1) for kv in f.read().decode().split("\0") if "=" in kv)


@test
def openmp_waits_passively_unless_told():
    """Without OMP_WAIT_POLICY winnowd re-executes itself with "passive" (same pid, still
    named winnowd, the same arguments); a policy the environment gives is kept."""
    for given, want in ((None, "passive"), ("active", "active")):
        with wn.Daemon(env={"OMP_WAIT_POLICY": given}) as d:
            pid = d.proc.pid
            assert_eq(environ(pid).get("OMP_WAIT_POLICY"), want, "the daemon's environment")
            with open("/proc/%d/comm" % pid) as f:
                assert_eq(f.read().strip(), "winnowd")
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                assert_eq(f.read().split(b"\0")[:-1], [a.encode() for a in d.argv()])
            assert_eq(d.events("faiss")[0]["omp_wait_policy"], want)
            assert_eq(d.get_json("/readyz")[0], 200)


if __name__ == "__main__":
    wn.main()

