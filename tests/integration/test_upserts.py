# SPDX-License-Identifier: MIT
"""Issue 16, item 7: upserts never grow an index without bound. A Flat index removes the old
vector of an upserted row (vectors == the live count after any number of rounds); an HNSW
index, which cannot remove, counts the old vectors as dead and is rebuilt in the background
once they pass --index-rebuild-dead percent of its vectors. Searches answer the newest
vectors throughout (compared with numpy)."""

import time

import numpy as np

import curate
import wn
from wn import assert_eq, test

N, D = 2000, 16
SCHEMA = {"spaces": {"v": {"dim": D}}}


def batch(x):
    return [{"id": "r%05d" % i, "embeddings": {"v": curate.emb(x[i])}} for i in range(len(x))]


def unit(x):
    x = x.astype(np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def index(d):
    return d.get_json("/v1/datasets/p/indexes/v")[2]


def check_search(d, x, rng, hnsw=False):
    """Searches find the newest vectors: exactly numpy's top 5 (Flat), 4 of 5 (HNSW)."""
    xn = unit(x)
    for q in rng.standard_normal((3, D)).astype(np.float32):
        body = {"vector": q.tolist(), "limit": 5}
        if hnsw:
            body["params"] = {"ef_search": 256}
        st, _, res = d.json("POST", "/v1/datasets/p/search", body)
        assert_eq(st, 200, "search")
        want = ["r%05d" % i for i in np.argsort(-(xn @ unit(q[None])[0]), kind="stable")[:5]]
        got = [r["id"] for r in res["results"]]
        if hnsw:
            assert len(set(got) & set(want)) >= 4, (got, want)
        else:
            assert_eq(got, want, "Flat search vs numpy")


@test
def flat_upserts_keep_one_vector_a_row():
    rng = np.random.default_rng(1)
    with wn.Daemon(log_level="info") as d:
        d.put_dataset("p", SCHEMA)
        x = rng.standard_normal((N, D)).astype(np.float32)
        d.ingest("p", batch(x))
        curate.wait_job(d, curate.job_id(d.json("PUT", "/v1/datasets/p/indexes/v",
                                                {"factory": "Flat", "metric": "cosine"})))
        for rnd in range(5):
            x = rng.standard_normal((N, D)).astype(np.float32)
            for a in range(0, N, 500):
                assert_eq(d.ingest("p", batch(x)[a:a + 500])[0], 200, "upsert")
            ix = index(d)
            assert_eq((ix["vectors"], ix["stats"]["dead"], ix["stats"]["removes"]),
                      (N, 0, True), "round %d" % rnd)
            check_search(d, x, rng)
        # deletes too
        for i in range(10):
            d.request("DELETE", "/v1/datasets/p/records/r%05d" % i)
        assert_eq(index(d)["vectors"], N - 10, "after deletes")


@test
def hnsw_dead_vectors_trigger_a_rebuild():
    rng = np.random.default_rng(2)
    with wn.Daemon(log_level="info", extra_args=["--index-rebuild-dead", "25"]) as d:
        d.put_dataset("p", SCHEMA)
        x = rng.standard_normal((N, D)).astype(np.float32)
        d.ingest("p", batch(x))
        first = curate.job_id(d.json("PUT", "/v1/datasets/p/indexes/v",
                                     {"factory": "HNSW32", "metric": "cosine"}))
        curate.wait_job(d, first)
        ix = index(d)
        assert_eq((ix["vectors"], ix["stats"]["dead"], ix["stats"]["removes"],
                   ix["stats"]["rebuild_at_percent"]), (N, 0, False, 25), "built")
        # 400 upserts: 20% dead, under the threshold: kept as dead
        x[:400] = rng.standard_normal((400, D)).astype(np.float32)
        d.ingest("p", batch(x)[:400])
        ix = index(d)
        assert_eq((ix["vectors"], ix["stats"]["dead"]), (N + 400, 400), "20% dead")
        assert abs(ix["stats"]["dead_share"] - 400 / (N + 400)) < 1e-9, ix
        check_search(d, x, rng, hnsw=True)
        # 400 more: past 25% of the vectors: a rebuild is queued as the definition's job
        x[400:800] = rng.standard_normal((400, D)).astype(np.float32)
        d.ingest("p", batch(x)[400:800])
        line = d.wait_for_line(lambda l: "event=index_rebuild_dead" in l, timeout=30)
        assert line is not None, d.tail()
        job = wn.logfmt(line)["job"]
        curate.wait_job(d, job)
        ix = index(d)
        assert_eq((ix["state"], ix["vectors"], ix["stats"]["dead"], str(ix["build"]["id"])),
                  ("ready", N, 0, job), "after the rebuild")
        check_search(d, x, rng, hnsw=True)
        # rounds of upserts of every id: the index stays under the threshold's bound
        for rnd in range(3):
            x = rng.standard_normal((N, D)).astype(np.float32)
            for a in range(0, N, 500):
                d.ingest("p", batch(x)[a:a + 500])
            deadline = time.time() + 60 * wn.SLOW
            while True:
                ix = index(d)
                if ix["state"] == "ready" and ix["vectors"] <= N * 1.25 + 500:
                    break
                assert time.time() < deadline, ix
                time.sleep(0.05)
            check_search(d, x, rng, hnsw=True)


if __name__ == "__main__":
    wn.main()
