# SPDX-License-Identifier: MIT
"""Operations a user trips on (issue 17, item 6): JSON log lines (--log-format json), job
metrics by kind and state in /metrics, and the paged dataset list."""

import json
import os
import re
import subprocess
import tempfile
import time

import curate
import wn
from curate import CLIP, SCHEMA
from wn import assert_eq, assert_problem, test


@test
def log_format_json_writes_one_object_a_line():
    data = tempfile.mkdtemp(prefix="winnow-it-")
    p = subprocess.Popen([wn.WINNOWD, "--listen", "127.0.0.1:0", "--data-dir", data,
                          "--log-format", "json", "--log-level", "info"],
                         stderr=subprocess.PIPE, env=wn.child_env())
    lines = []
    try:
        deadline = time.time() + wn.START_TIMEOUT
        while time.time() < deadline:
            line = p.stderr.readline().decode()
            if not line:
                break
            lines.append(line)
            if '"event":"listening"' in line:
                break
        p.terminate()
        _, rest = p.communicate(timeout=30 * wn.SLOW)
        lines += rest.decode().splitlines(True)
    finally:
        if p.poll() is None:
            p.kill()
    assert_eq(p.returncode, 0, "exit")
    objs = [json.loads(l) for l in lines if not l.startswith("WARNING")]
    assert len(objs) >= 3, lines
    for o in objs:
        assert set(("ts", "level", "event")) <= set(o), o
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", o["ts"]), o
    listening = [o for o in objs if o["event"] == "listening"][0]
    assert isinstance(listening["threads"], int) and listening["data_dir"] == data, listening
    assert [o for o in objs if o["event"] == "stopped"], objs
    # a value with spaces and quotes stays one string
    auth = [o for o in objs if o["event"] == "auth"][0]
    assert auth["msg"].startswith("no API keys file"), auth
    # a bad format is a start-up error
    r = subprocess.run([wn.WINNOWD, "--log-format", "xml", "-n"], capture_output=True,
                       env=wn.child_env())
    assert r.returncode == 2 and b"--log-format" in r.stderr, r


def metric(text, name, labels):
    want = "%s{%s}" % (name, ",".join('%s="%s"' % kv for kv in labels.items()))
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    raise AssertionError("no %s in /metrics" % want)


@test
def job_metrics_count_by_kind_and_state():
    pool = curate.Pool(5000, seed=3)
    with wn.Daemon(log_level="info") as d:
        d.put_dataset("p", SCHEMA)
        pool.ingest(d, "p")
        _, text = d.metrics()
        assert_eq(metric(text, "winnow_jobs", {"kind": "score", "state": "succeeded"}), 0, "before")
        curate.wait_job(d, curate.put_filter(d, "p", "clip", CLIP))
        curate.wait_job(d, curate.put_subset(d, "p", "top", [{"filter": "clip", "top_fraction": 0.5}]))
        _, text = d.metrics()
        assert_eq(metric(text, "winnow_jobs", {"kind": "score", "state": "succeeded"}), 1, "score")
        assert_eq(metric(text, "winnow_jobs", {"kind": "subset", "state": "succeeded"}), 1, "subset")
        assert_eq(metric(text, "winnow_jobs", {"kind": "index", "state": "running"}), 0, "index")
        assert_eq(metric(text, "winnow_job_units_processed_total", {"kind": "score"}), 5000, "rows")
        assert "# TYPE winnow_jobs gauge" in text and "# TYPE winnow_job_units_processed_total counter" in text


@test
def the_dataset_list_pages_by_name():
    with wn.Daemon(log_level="info") as d:
        names = ["e", "a", "d", "c", "b"]
        for n in names:
            d.put_dataset(n, {"spaces": {"v": {"dim": 2}}})
        st, _, body = d.get_json("/v1/datasets")
        assert_eq(([x["name"] for x in body["datasets"]], "next_page_token" in body),
                  (sorted(names), False), "one page")
        seen, token, pages = [], None, 0
        while True:
            q = "?page_size=2" + ("&page_token=" + token if token else "")
            st, _, body = d.get_json("/v1/datasets" + q)
            assert_eq(st, 200, "page")
            seen += [x["name"] for x in body["datasets"]]
            pages += 1
            token = body.get("next_page_token")
            if token is None:
                break
            if pages == 1:
                d.put_dataset("aa", {"spaces": {"v": {"dim": 2}}})  # before the cursor: not shown
        assert_eq((seen, pages), (["a", "b", "c", "d", "e"], 3), "pages")
        assert_problem(d.request("GET", "/v1/datasets?page_size=0"), 400, "bad_page_size")
        assert_problem(d.request("GET", "/v1/datasets?page_size=-1"), 400, "bad_page_size")
        assert_problem(d.request("GET", "/v1/datasets?page_size=1001"), 400, "bad_page_size")
        assert_problem(d.request("GET", "/v1/datasets?page_token=zz"), 400, "bad_page_token")


@test
def exports_end_without_a_summary_unless_asked_and_reals_are_shortest():
    pool = curate.Pool(300, seed=8)
    with wn.Daemon(log_level="info") as d:
        d.put_dataset("p", SCHEMA)
        pool.ingest(d, "p")
        curate.wait_job(d, curate.put_filter(d, "p", "clip", CLIP))
        curate.wait_job(d, curate.put_subset(d, "p", "all", [{"kind": ["image-text", "text"]}]))
        _, body = curate.export(d, "p", "all", "?format=ndjson&fields=id,scores")
        lines = [json.loads(l) for l in body.decode().splitlines()]
        assert_eq(len(lines), 300, "one line a member, nothing else")
        assert all(set(l) == {"id", "scores"} for l in lines), lines[-1]
        _, body = curate.export(d, "p", "all", "?format=ndjson&summary=true")
        last = json.loads(body.decode().splitlines()[-1])
        assert_eq(last["summary"]["count"], 300, "summary when asked")
        assert_problem(d.request("GET", "/v1/datasets/p/subsets/all:export?summary=maybe"),
                       400, "bad_query")
        assert_problem(d.request("GET", "/v1/datasets/p/subsets/all:export?format=ids&summary=true"),
                       400, "bad_query")
        # a threshold of 0.3 echoes as 0.3, not 0.29999999999999999
        st, _, stats = d.get_json("/v1/datasets/p/filters/clip/stats?threshold=0.3")
        raw = d.request("GET", "/v1/datasets/p/filters/clip/stats?threshold=0.3")[2].decode()
        assert '"threshold":0.3,' in raw and "0.29999999999999999" not in raw, raw[-200:]
        # a float32 score keeps the digits of its exact double (used as a threshold it must
        # select the same records), and every real reads back as the value the daemon holds
        assert_eq(stats["threshold"], 0.3, "threshold")


@test
def unknown_or_invalid_query_parameters_are_400_everywhere():
    """Issue 16 item 6: a parameter a route does not take, or a value it cannot read, is a 400
    naming it; nothing is ignored, nothing changes."""
    with wn.Daemon(log_level="info") as d:
        d.put_dataset("p", {"spaces": {"v": {"dim": 2}}})
        d.ingest("p", [{"id": "a", "embeddings": {"v": [1.0, 0.0]}}])
        cases = [("GET", "/v1/datasets/p?verbose=1", "unknown_parameter"),
                 ("GET", "/v1/datasets?limit=5", "unknown_parameter"),
                 ("DELETE", "/v1/datasets/p?force=true", "unknown_parameter"),
                 ("GET", "/v1/datasets/p/records/a?embeddings=maybe", "bad_query"),
                 ("GET", "/v1/datasets/p/records/a?embedings=false", "unknown_parameter"),
                 ("GET", "/v1/jobs?limit=-1", "bad_query"),
                 ("GET", "/v1/jobs?limit=lots", "bad_query"),
                 ("GET", "/v1/datasets/p/jobs?limit=0", "bad_query")]
        for method, path, code in cases:
            p = assert_problem(d.request(method, path), 400, code)
            assert path.split("?")[1].split("=")[0] in p["detail"] or code == "bad_query", p
        # a JSON search carries its parameters in the body
        st, _, body = d.json("POST", "/v1/datasets/p/search?limit=5", {"vector": [1, 0]})
        assert_eq((st, body["code"]), (400, "unknown_parameter"), "JSON search with a query")
        # nothing was deleted, the good forms answer
        st, _, r = d.get_record("p", "a", "?embeddings=false")
        assert_eq((st, "embeddings" in r), (200, False), "embeddings=false")
        assert_eq(d.get_json("/v1/jobs?limit=5")[0], 200, "limit=5")


@test
def page_tokens_are_parsed_strictly():
    """A page token is exactly what the daemon wrote: trailing bytes, a NaN score, a row the
    dataset never had, signs, spaces or capitals are a 400 bad_page_token."""
    with wn.Daemon(log_level="info") as d:
        d.put_dataset("p", {"spaces": {"v": {"dim": 2}}})
        d.ingest("p", [{"id": "r%d" % i, "embeddings": {"v": [1.0, i / 10]}} for i in range(10)])
        body = {"vector": [1, 0], "score_threshold": -1, "limit": 3}
        st, _, res = d.json("POST", "/v1/datasets/p/search", body)
        assert_eq(st, 200, "first page")
        tok = res["page_token"]
        assert re.fullmatch(r"p1\.[0-9a-f]{1,8}\.[0-9]+\.[0-9a-f]{1,16}", tok), tok
        st, _, res2 = d.json("POST", "/v1/datasets/p/search", dict(body, page_token=tok))
        assert_eq(st, 200, "the token as written")
        head, sb, row, h = tok.split(".")
        bad = [tok + "x", tok + " ", " " + tok, "p1.7fc00000.%s.%s" % (row, h),
               "p1.7f800000.%s.%s" % (row, h), "p1.%s.999999.%s" % (sb, h),
               "p1.%s.-1.%s" % (sb, h), "p1.%s.%s.%s" % (sb.upper() + "A", row, h),
               "p1.%s.%s" % (sb, row), "p2.%s.%s.%s" % (sb, row, h), "",
               "p1.%s.%s.%s" % (sb, row, "f" * 17)]
        for t in bad:
            p = assert_problem(d.json("POST", "/v1/datasets/p/search", dict(body, page_token=t)),
                               400, "bad_page_token")
            assert "not one of ours" in p["detail"], (t, p)


if __name__ == "__main__":
    wn.main()
