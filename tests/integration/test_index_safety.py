# SPDX-License-Identifier: MIT
"""Issue 16, item 1: no admin request can crash the daemon or lock it in a crash loop.

Index definitions FAISS would accept and then crash on or cannot train are refused before
the 202 (PQ with 64-bit codes, IVF with fewer rows than lists, a factory FAISS refuses);
a training crash inside FAISS fails the build job, not the process (the unit test of
index/faiss.c trains PQ1x64 directly); a job that was running at two consecutive crashes
fails with crash_loop at the next start instead of running a third time."""

import time

import numpy as np

import curate
import wn
from curate import CLIP, SCHEMA
from wn import assert_eq, assert_problem, test

SPACE = {"spaces": {"v": {"dim": 8}}}


def records(n, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    return [{"id": "r%05d" % i, "embeddings": {"v": [float(t) for t in x[i]]}} for i in range(n)]


def put_index(d, factory, metric="l2"):
    return d.request("PUT", "/v1/datasets/p/indexes/v", {"factory": factory, "metric": metric})


@test
def untrainable_factories_are_refused_before_the_job():
    with wn.Daemon(log_level="info") as d:
        d.put_dataset("p", SPACE)
        st, _, body = d.ingest("p", records(2))
        assert_eq((st, body["accepted"]), (200, 2), "ingest")
        # PQ with 64-bit codes: FAISS accepts the string and divides by zero in training
        r = put_index(d, "PQ1x64")
        p = assert_problem(r, 422, "bad_factory")
        assert "64 bits" in p["detail"], p
        # IVF with more lists than rows, PQ with more centroids than rows
        p = assert_problem(put_index(d, "IVF64,Flat"), 422, "too_few_rows")
        assert "at least 64" in p["detail"] and "there are 2" in p["detail"], p
        p = assert_problem(put_index(d, "PQ2x8"), 422, "too_few_rows")
        assert "at least 256" in p["detail"], p
        # a factory string FAISS itself refuses
        assert_problem(put_index(d, "NoSuchIndex12"), 422, "bad_factory")
        # nothing was defined, no job was queued, the daemon answers
        st, _, lst = d.get_json("/v1/datasets/p/indexes")
        assert_eq((st, lst["indexes"]), (200, []), "no index defined")
        st, _, jobs = d.get_json("/v1/jobs")
        assert_eq([j for j in jobs["jobs"] if j["kind"] == "index"], [], "no index job")
        # with enough rows the same IVF trains and answers
        st, _, body = d.ingest("p", records(300, seed=2))
        assert_eq(st, 200, "more rows")
        st, h, v = d.json("PUT", "/v1/datasets/p/indexes/v", {"factory": "IVF16,Flat", "metric": "l2"})
        assert_eq(st, 202, "IVF16 on 300 rows")
        j = curate.wait_job(d, h["location"].rsplit("/", 1)[1])
        assert_eq(j["state"], "succeeded", "the IVF build")
        st, _, v = d.get_json("/v1/datasets/p/indexes/v")
        assert_eq((v["state"], v["vectors"]), ("ready", 300), "the IVF index (r00000, r00001 upserted)")


@test
def a_redefinition_is_judged_on_the_rows_there_are_now():
    with wn.Daemon(log_level="info") as d:
        d.put_dataset("p", SPACE)
        d.ingest("p", records(20))
        st, h, _ = d.json("PUT", "/v1/datasets/p/indexes/v", {"factory": "IVF16,Flat", "metric": "l2"})
        assert_eq(st, 202, "IVF16 on 20 rows")
        j = curate.wait_job(d, h["location"].rsplit("/", 1)[1])
        assert_eq(j["state"], "succeeded", "the first build")
        for i in range(10):
            st, _, _ = d.request("DELETE", "/v1/datasets/p/records/r%05d" % i)
            assert_eq(st, 204, "delete")
        # the same definition again (another metric): judged again at the PUT
        p = assert_problem(put_index(d, "IVF16,Flat", metric="ip"), 422, "too_few_rows")
        assert "there are 10" in p["detail"], p
        st, _, _ = d.get_json("/livez")
        assert_eq(st, 200, "alive")


def slow_scoring_job(d):
    """A scoring job on 60,000 records that commits 4,096 rows every 60 ms or so."""
    pool = curate.Pool(60000, seed=5)
    d.put_dataset("p", SCHEMA)
    pool.ingest(d, "p")
    return curate.put_filter(d, "p", "clip", CLIP)


def wait_running(d, jid, at_least=1):
    deadline = time.time() + 60 * wn.SLOW
    while time.time() < deadline:
        st, _, j = d.get_json("/v1/jobs/%s" % jid)
        if j["state"] == "running" and j["processed"] >= at_least:
            return j
        assert j["state"] in ("queued", "running"), j
        time.sleep(0.01)
    raise AssertionError("job %s never ran: %r" % (jid, j))


@test
def a_job_running_at_two_crashes_in_a_row_fails_with_crash_loop():
    slow = ["--job-chunk", "4096", "--job-throttle-ms", "80"]
    with wn.Daemon(extra_args=slow, log_level="info") as d:
        jid = slow_scoring_job(d)
        wait_running(d, jid, 4096)
        d.kill9()                       # crash 1: the job resumes
        d.start()
        j = wait_running(d, jid, 2 * 4096)
        assert_eq(j["resumes"], 1, "resumed once")
        d.kill9()                       # crash 2 in a row while it ran: not resumed again
        d.start()
        j = curate.wait_job(d, jid, states=("failed",))
        assert_eq((j["state"], j["error"]["code"]), ("failed", "crash_loop"), "after two crashes")
        assert d.events("job_crash_loop"), d.tail()
        st, _, _ = d.get_json("/readyz")
        assert_eq(st, 200, "ready")


@test
def a_clean_shutdown_between_crashes_resets_the_count():
    slow = ["--job-chunk", "4096", "--job-throttle-ms", "80"]
    with wn.Daemon(extra_args=slow, log_level="info") as d:
        jid = slow_scoring_job(d)
        wait_running(d, jid, 4096)
        d.kill9()                       # crash
        d.start()
        wait_running(d, jid, 2 * 4096)
        d.stop()                        # a clean stop: the job stays running, count reset
        d.start()
        wait_running(d, jid, 3 * 4096)
        d.kill9()                       # one crash after the clean stop: resumes
        d.extra_args = ["--job-chunk", "4096"]
        d.start()
        j = curate.wait_job(d, jid)
        assert_eq((j["state"], j["error"]), ("succeeded", None), "resumed to the end")
        assert_eq(j["resumes"], 3, "three resumes")


@test
def searches_answer_exactly_while_an_index_rebuilds_and_readyz_stays_ready():
    """After a kill -9 the index is rebuilt by a job; with one job thread held by a resumed
    scoring job the rebuild waits, and meanwhile /readyz is 200 and searches are exact."""
    slow = ["--job-chunk", "4096", "--job-throttle-ms", "80", "--job-threads", "1"]
    pool = curate.Pool(60000, seed=9)
    with wn.Daemon(extra_args=slow, log_level="info") as d:
        d.put_dataset("p", SCHEMA)
        pool.ingest(d, "p")
        st, h, _ = d.json("PUT", "/v1/datasets/p/indexes/image", {"factory": "Flat", "metric": "cosine"})
        first = h["location"].rsplit("/", 1)[1]
        curate.wait_job(d, first)
        jid = curate.put_filter(d, "p", "clip", CLIP)
        wait_running(d, jid, 4096)
        d.kill9()                       # the index was never saved: it is rebuilt at start
        d.start()
        st, _, rz = d.get_json("/readyz")
        assert_eq((st, rz["status"], rz["indexes_building"]), (200, "ready", 1), "readyz")
        st, _, ix = d.get_json("/v1/datasets/p/indexes/image")
        assert_eq(ix["state"], "building", "index state")
        rebuild = str(ix["build"]["id"])
        assert rebuild != first, ix     # build names the rebuild, not the first build
        img = pool.img.astype(np.float64)
        img /= np.linalg.norm(img, axis=1, keepdims=True)
        for k in range(3):
            q = img[k * 7]
            st, _, res = d.json("POST", "/v1/datasets/p/search",
                                {"vector": q.tolist(), "space": "image", "limit": 5})
            assert_eq(st, 200, "search while building")
            assert_eq((res["stats"]["exact"], res["stats"]["index"]), (True, None), "exact")
            want = [pool.ids[i] for i in np.argsort(-(img @ q), kind="stable")[:5]]
            assert_eq([r["id"] for r in res["results"]], want, "results vs numpy")
        # the scoring job ends, the rebuild runs, the index serves again
        curate.wait_job(d, jid, timeout=120)
        curate.wait_job(d, rebuild, timeout=120)
        st, _, ix = d.get_json("/v1/datasets/p/indexes/image")
        assert_eq((ix["state"], str(ix["build"]["id"])), ("ready", rebuild), "after")
        st, _, rz = d.get_json("/readyz")
        assert_eq(rz, {"status": "ready"}, "readyz after")


if __name__ == "__main__":
    wn.main()
