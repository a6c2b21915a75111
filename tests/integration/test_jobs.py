# SPDX-License-Identifier: MIT
"""Jobs of issue 3: the job resource, cancel, and a scoring job killed with SIGKILL midway
that resumes from its checkpoint and ends with the same scores as an uninterrupted run."""

import re
import time

import numpy as np

import curate
import wn
from curate import CLIP, SCHEMA
from wn import assert_eq, assert_problem, test

N = 60000
CHUNK = 4096
TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def scores_of(d, ds, filt="clip"):
    """Every record's score of filt, through a subset of everything and an NDJSON export."""
    curate.wait_job(d, curate.put_subset(d, ds, "all", [{"kind": ["image-text", "text"]}]))
    lines, summary = curate.export_ndjson(d, ds, "all", "?format=ndjson&fields=id,scores")
    return {l["id"]: l["scores"][filt] for l in lines}


@test
def sigkill_midway_resumes_from_checkpoint():
    pool = curate.Pool(N, seed=11)
    slow = ["--job-chunk", str(CHUNK), "--job-throttle-ms", str(60)]
    with wn.Daemon(extra_args=slow, log_level="info") as d:
        d.put_dataset("p", SCHEMA)
        pool.ingest(d, "p")
        jid = curate.put_filter(d, "p", "clip", CLIP)
        deadline = time.time() + 60 * wn.SLOW
        while time.time() < deadline:
            st, _, j = d.get_json("/v1/jobs/%s" % jid)
            if j["state"] == "running" and j["processed"] >= 2 * CHUNK:
                break
            assert j["state"] in ("queued", "running"), j
            time.sleep(0.01)
        assert j["processed"] < N, "the job finished before the kill: %r" % j
        d.kill9()
        # restarted without the throttle: the job resumes from its last committed chunk
        d.extra_args = ["--job-chunk", str(CHUNK)]
        d.start()
        j = curate.wait_job(d, jid)
        assert_eq(j["resumes"], 1, "resumes")
        assert j["resumed_at"] >= 2 * CHUNK and j["resumed_at"] % CHUNK == 0, j
        assert_eq((j["processed"], j["total"], j["error"]), (N, N, None), "progress")
        assert TS.fullmatch(j["finished"]) and j["created"] <= j["started"] <= j["finished"], j
        st, _, f = d.get_json("/v1/datasets/p/filters/clip")
        assert_eq((f["version"], f["scoring"]["state"]), (1, "succeeded"), "the filter after")
        st, _, stats = d.get_json("/v1/datasets/p/filters/clip/stats")
        assert_eq((stats["count"], stats["unscorable"], stats["pending"]),
                  (int(pool.has_txt.sum()), int((~pool.has_txt).sum()), 0), "stats after")
        got = scores_of(d, "p")
    # an uninterrupted run on the same records
    with wn.Daemon(log_level="info") as d2:
        d2.put_dataset("p", SCHEMA)
        pool.ingest(d2, "p")
        curate.wait_job(d2, curate.put_filter(d2, "p", "clip", CLIP))
        want = scores_of(d2, "p")
    assert_eq(len(got), N)
    assert got == want, "scores differ after the resume"
    ref = pool.clip()
    idx = {u: i for i, u in enumerate(pool.ids)}
    for u, s in list(got.items())[:2000]:
        r = ref[idx[u]]
        assert (s is None and np.isnan(r)) or abs(s - float(r)) < 1e-6, (u, s, r)


@test
def job_resource_and_cancel():
    pool = curate.Pool(30000, seed=3)
    with wn.Daemon(extra_args=["--job-chunk", "4096", "--job-throttle-ms", "200"],
                   log_level="info") as d:
        d.put_dataset("p", SCHEMA)
        pool.ingest(d, "p")
        j1 = curate.put_filter(d, "p", "clip", CLIP)
        # a second job queues behind the first (one job thread)
        j2 = curate.put_filter(d, "p", "basic", {"type": "basic"})
        st, _, q = d.get_json("/v1/jobs/%s" % j2)
        assert_eq(q["state"], "queued")
        st, _, c = d.json("DELETE", "/v1/jobs/%s" % j2)
        assert_eq((st, c["state"]), (202, "cancelled"), "queued job cancelled at once")
        deadline = time.time() + 30 * wn.SLOW
        while time.time() < deadline:
            st, _, r = d.get_json("/v1/jobs/%s" % j1)
            if r["state"] == "running" and r["rate_per_s"] is not None:
                break
            assert_eq(r["state"] in ("queued", "running"), True, "state %r" % r)
            time.sleep(0.01)
        for key in ("id", "kind", "dataset", "target", "state", "processed", "total",
                    "rate_per_s", "eta_s", "created", "started", "finished", "error"):
            assert key in r, (key, r)
        assert_eq((r["id"], r["kind"], r["dataset"], r["target"], r["total"], r["error"],
                   r["finished"]), (j1, "score", "p", "clip", 30000, None, None))
        assert 0 < r["processed"] < 30000 and r["processed"] % 4096 == 0, r
        # 4096 rows and a 200 ms pause after each chunk: c chunks done took at least
        # (c - 1) pauses, which bounds the measured rate
        chunks = r["processed"] // 4096
        assert r["rate_per_s"] > 0, r
        if chunks >= 2:
            assert r["rate_per_s"] <= r["processed"] / ((chunks - 1) * 0.2) * 1.05, r
        assert r["eta_s"] is not None, r
        eta = (30000 - r["processed"]) / r["rate_per_s"]
        assert abs(r["eta_s"] - eta) <= 0.05 * eta + 0.01, (r, eta)
        assert TS.fullmatch(r["created"]) and TS.fullmatch(r["started"]), r
        assert r["created"] <= r["started"], r
        st, _, _ = d.json("DELETE", "/v1/jobs/%s" % j1)
        assert_eq(st, 202)
        r = curate.wait_job(d, j1, states=("cancelled",))
        assert r["processed"] < 30000, r
        assert TS.fullmatch(r["finished"]) and r["started"] <= r["finished"], r
        assert_problem(d.json("DELETE", "/v1/jobs/%s" % j1), 409, "job_finished")
        assert_problem(d.json("GET", "/v1/jobs/99999"), 404, "job_not_found")
        assert_problem(d.json("GET", "/v1/jobs/abc"), 404)
        st, _, lst = d.get_json("/v1/jobs")
        ids = [j["id"] for j in lst["jobs"]]
        assert_eq(ids[:2], [j2, j1], "newest first")
        st, _, dl = d.get_json("/v1/datasets/p/jobs?limit=1")
        assert_eq(len(dl["jobs"]), 1)
        # the filter shows the cancelled job; :score starts a new one that finishes
        st, _, f = d.get_json("/v1/datasets/p/filters/clip")
        assert_eq(f["scoring"]["state"], "cancelled")
        j3 = curate.job_id(d.json("POST", "/v1/datasets/p/filters/clip:score"))
        d.stop()
        d.extra_args = []
        d.start()
        curate.wait_job(d, j3)
        st, _, stats = d.get_json("/v1/datasets/p/filters/clip/stats")
        assert_eq((stats["count"] + stats["unscorable"], stats["pending"]), (30000, 0))


@test
def subset_waits_for_the_scoring_job_before_it():
    """PUT filter then PUT subset at once, on a slow job runner with two job threads: the
    subset is computed from every score, as numpy's keep set."""
    pool = curate.Pool(20000, seed=8)
    clip = pool.clip()
    keep, thr = curate.top_fraction(clip, 0.3)
    fin = np.unique(clip[np.isfinite(clip)])
    at = int(np.searchsorted(fin, thr))
    assert fin[at + 1] - thr > 2e-6 and thr - fin[at - 1] > 2e-6, "scores too close to the cut"
    with wn.Daemon(extra_args=["--job-chunk", "4096", "--job-throttle-ms", "50",
                               "--job-threads", "2"], log_level="info") as d:
        d.put_dataset("p", SCHEMA)
        pool.ingest(d, "p")
        fj = curate.put_filter(d, "p", "clip", CLIP)
        sj = curate.put_subset(d, "p", "top", [{"filter": "clip", "top_fraction": 0.3}])
        s = curate.wait_job(d, sj)
        f = curate.wait_job(d, fj)
        assert f["finished"] <= s["finished"], (f, s)
        _, body = curate.export(d, "p", "top", "?format=ids")
        assert_eq(body.decode().split(), list(np.array(pool.ids)[keep]), "members")


@test
def dataset_delete_cancels_its_jobs():
    pool = curate.Pool(20000, seed=5)
    with wn.Daemon(extra_args=["--job-chunk", "4096", "--job-throttle-ms", "200"],
                   log_level="info") as d:
        d.put_dataset("p", SCHEMA)
        pool.ingest(d, "p")
        jid = curate.put_filter(d, "p", "clip", CLIP)
        assert_eq(d.request("DELETE", "/v1/datasets/p")[0], 204)
        j = curate.wait_job(d, jid, states=("cancelled", "failed"))
        assert j["state"] in ("cancelled", "failed"), j
        assert_problem(d.json("GET", "/v1/datasets/p/filters/clip"), 404)


@test
def finished_jobs_are_pruned_oldest_first():
    with wn.Daemon(extra_args=["--job-history", "10"], log_level="info") as d:
        d.put_dataset("h", {"spaces": {"t": {"dim": 2}}})
        d.ingest("h", [{"id": "x", "kind": "text", "embeddings": {"t": [1, 0]}}])
        ids = []
        for k in range(25):
            ids.append(curate.put_subset(d, "h", "s%d" % k, [{"kind": "text"}]))
            curate.wait_job(d, ids[-1])
        st, _, lst = d.get_json("/v1/jobs?limit=10000")
        have = [j["id"] for j in lst["jobs"]]
        # at most 10 kept plus the slack of a tenth before a prune; always the newest
        assert 10 <= len(have) <= 11, have
        assert_eq(have, ids[::-1][:len(have)], "the newest are kept")
        assert_problem(d.json("GET", "/v1/jobs/%s" % ids[0]), 404, "job_not_found")
        d.restart()  # at start-up the history is cut to 10
        st, _, lst = d.get_json("/v1/jobs?limit=10000")
        assert_eq([j["id"] for j in lst["jobs"]], ids[::-1][:10], "after a restart")


if __name__ == "__main__":
    wn.main()
