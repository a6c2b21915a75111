# SPDX-License-Identifier: MIT
"""The command-line client (build/winnow, env WINNOW_CLI) against a real winnowd.

Without a terminal (subprocess with pipes): the answers on stdout, exit codes by cause,
problems on stderr with their code, and no control characters on stderr. Under a
pseudo-terminal (tmux): the progress bar of a slow job (percent, rate, ETA) and of an
ingest, redrawn in place on one line. And a DataComp-style pipeline run with the CLI
only, its outputs checked against numpy: the top-30% uids of the exported .npy, and a
threshold search followed through its page tokens."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import numpy as np

import curate
import wn
from curate import CLIP, SCHEMA
from wn import assert_eq, test

CLI = os.environ.get("WINNOW_CLI") or os.path.join(wn.REPO, "build", "winnow")
CONTROL = re.compile(r"[\r\x1b\x00-\x08\x0b\x0c\x0e-\x1f]")

shared = wn.Shared(log_level="info")


def run(d, *args, stdin=None, env=None, timeout=120):
    """Run the CLI against daemon d without a terminal. Returns (rc, stdout, stderr); asserts
    that stderr holds no control characters (no bar, no escape codes)."""
    url = "http://%s:%d" % (d.host, d.port) if d is not None else None
    e = wn.child_env(env or {})
    if url is not None:
        e["WINNOW_URL"] = url
    p = subprocess.run([CLI] + list(args), input=stdin, capture_output=True,
                       env=e, timeout=timeout * wn.SLOW)
    out, err = p.stdout.decode(), p.stderr.decode()
    assert not CONTROL.search(err), "control characters on stderr: %r" % err[:500]
    bad = wn.sanitizer_text(err.splitlines())
    assert not bad, "sanitizer report from the CLI:\n" + err[-3000:]
    return p.returncode, out, err


def ok(d, *args, **kw):
    """run() that must exit 0; returns stdout parsed as JSON (None when empty)."""
    rc, out, err = run(d, *args, **kw)
    assert rc == 0, (args, rc, out[:500], err[:2000])
    return json.loads(out) if out.strip() else None


def pool_file(pool, path, lines=None):
    """Write pool's records as NDJSON; lines (index -> text) replaces some lines."""
    with open(path, "w") as f:
        for i in range(pool.n):
            if lines and i in lines:
                f.write(lines[i] + "\n")
            else:
                f.write(json.dumps(pool.record(i)) + "\n")


@test
def basics_without_a_terminal():
    d = shared()
    ok(d, "create", "b", json.dumps({"spaces": {"t": {"dim": 2}}}))
    rc, out, err = run(d, "create", "b", json.dumps({"spaces": {"t": {"dim": 3}}}))
    assert_eq(rc, 1, "a daemon error exits 1")
    assert "HTTP 409 dataset_exists" in err and "request" in err, err
    rc, out, err = run(d, "ingest", "b", "-", stdin=b'{"id": "x", "embeddings": {"t": [1, 0]}}\n'
                       b'\n{"id": "y", "embeddings": {"t": [1]}}\n')
    assert_eq(rc, 6, "ingest with a rejected line exits 6")
    s = json.loads(out)
    assert_eq((s["accepted"], s["rejected"], s["batches"], s["lines"]), (1, 1, 1, 3))
    assert_eq([(e["line"], e["id"], e["code"]) for e in s["errors"]],
              [(3, "y", "dimension_mismatch")], "the blank line counts in the file's numbering")
    assert "line 3 id y dimension_mismatch" in err, err
    # a batch whose every line is rejected (the daemon's 422) is reported the same way and
    # the ingest goes on with the next batch
    rc, out, err = run(d, "ingest", "b", "-", "--batch-bytes", "40",
                       stdin=b'{"id": "z1", "embeddings": {"t": [1]}}\n'
                       b'{"id": "z2", "embeddings": {"t": [1, 1]}}\n')
    s = json.loads(out)
    assert_eq((rc, s["accepted"], s["rejected"], s["batches"]), (6, 1, 1, 2))
    assert_eq([(e["line"], e["id"]) for e in s["errors"]], [(1, "z1")])
    assert "winnow: batch 1, lines 1-1: 0 accepted, 1 rejected" in err, err
    assert_eq(run(d, "delete", "b", "z2")[0], 0)
    assert_eq(ok(d, "get", "b", "x")["embeddings"]["t"], [1.0, 0.0])
    assert "embeddings" not in ok(d, "get", "b", "x", "--no-embeddings")
    assert_eq(ok(d, "dataset", "b")["records"], 1)
    ok(d, "create", "b2", json.dumps({"spaces": {"t": {"dim": 2}}}))
    want = [x["name"] for x in d.get_json("/v1/datasets?page_size=1000")[2]["datasets"]]
    assert "b" in want and "b2" in want, want
    assert_eq([x["name"] for x in ok(d, "datasets")["datasets"]], want)
    assert_eq([x["name"] for x in ok(d, "datasets", "--limit", "1")["datasets"]], want,
              "every page of one dataset")
    ok(d, "drop", "b2")
    rc, out, err = run(d, "get", "b", "nope")
    assert_eq(rc, 1)
    assert "HTTP 404 record_not_found" in err, err
    # ids with reserved characters reach the daemon intact
    ok(d, "ingest", "b", "-", stdin=b'{"id": "a/b?c d%", "embeddings": {"t": [0, 1]}}\n')
    assert_eq(ok(d, "get", "b", "a/b?c d%")["id"], "a/b?c d%")
    assert_eq(run(d, "delete", "b", "a/b?c d%")[0], 0)
    # signals, one record and many
    ok(d, "signal", "b", "x", '{"clip_b32": 0.25}')
    with tempfile.NamedTemporaryFile("w", suffix=".ndjson", delete=False) as f:
        f.write('{"id": "x", "signals": {"other": 2}}\n')
    try:
        assert_eq(ok(d, "signals", "b", f.name), {"patched": 1})
    finally:
        os.unlink(f.name)
    assert_eq(ok(d, "get", "b", "x")["signals"], {"clip_b32": 0.25, "other": 2})
    assert_eq(ok(d, "health"), {"status": "ready"})
    # usage errors exit 2 before anything is sent
    for args in (["bogus"], ["filter"], ["get", "b"], ["get", "b", "x", "--wait"],
                 ["search", "b", "--space", "t"], ["export", "b", "s", "--format", "csv"],
                 ["ingest", "b", "/nonexistent.ndjson"], ["create", "c", "{not json"]):
        rc, out, err = run(d, *args)
        assert_eq(rc, 2, "usage error %r" % args)
        assert err.startswith("winnow: "), (args, err)
    assert_eq(run(d, "dataset", "c")[0], 1, "nothing created by a bad create")
    rc, out, err = run(None, "--help")
    assert_eq(rc, 0)
    for verb in ("filter put", "subset put", "export", "why", "index put", "search", "adapter train",
                 "hubness report", "signals", "jobs", "wait", "cancel", "health"):
        assert "  " + verb in out, verb
    assert "Exit status" in out and "6  ingest" in out, out
    ok(d, "drop", "b")
    assert_eq(run(d, "dataset", "b")[0], 1)


@test
def unreachable_daemon_names_winnow_url():
    rc, out, err = run(None, "datasets", env={"WINNOW_URL": "http://127.0.0.1:9"})
    assert_eq(rc, 3, "not reachable exits 3")
    assert "not reachable at http://127.0.0.1:9" in err and "WINNOW_URL" in err and "--url" in err, err
    rc, out, err = run(None, "--url", "ftp://x", "datasets")
    assert_eq(rc, 2)


@test
def datacomp_pipeline_with_the_cli_only():
    """create, ingest in batches (a bad line reported with its file line, fixed, resumed
    with --from-line), clip_score --wait, top 30% --wait, export npy; the uids equal
    numpy's top 30% (DataComp: k = floor(N f), keep score >= the (k+1)-th largest)."""
    d = shared()
    n, bad = 3000, 1234
    pool = curate.Pool(n, seed=21)
    tmp = tempfile.mkdtemp(prefix="winnow-cli-")
    try:
        src = os.path.join(tmp, "pool.ndjson")
        good = json.dumps(pool.record(bad))
        pool_file(pool, src, {bad: good.replace('"embeddings"', '"embedings"')})
        ok(d, "create", "dc", json.dumps(SCHEMA))
        # 64 KiB batches: records are ~400 bytes, so about 160 lines a batch
        rc, out, err = run(d, "ingest", "dc", src, "--batch-bytes", "64K")
        assert_eq(rc, 6, "exit status with a rejected line: " + err[-500:])
        s = json.loads(out)
        size = os.path.getsize(src)
        assert s["batches"] >= size // 65536, s
        assert_eq((s["accepted"], s["rejected"], s["lines"]), (n - 1, 1, n))
        assert_eq([(e["line"], e["id"], e["code"]) for e in s["errors"]],
                  [(bad + 1, pool.ids[bad], "invalid_field")], "the file's line number")
        assert re.search(r"^  line %d id %s invalid_field" % (bad + 1, pool.ids[bad]), err, re.M), err
        reports = re.findall(r"^winnow: batch (\d+), lines (\d+)-(\d+): (\d+) accepted, (\d+) "
                             r"rejected$", err, re.M)
        assert_eq(len(reports), s["batches"])
        # the batches cover the file in order, without gaps or overlaps
        assert_eq(int(reports[0][1]), 1)
        for a, b in zip(reports, reports[1:]):
            assert_eq(int(b[1]), int(a[2]) + 1)
        assert_eq(int(reports[-1][2]), n)
        # fix the line and resume from it: the lines before are not sent again
        pool_file(pool, src)
        s = ok(d, "ingest", "dc", src, "--from-line", str(bad + 1), "--batch-bytes", "256K")
        assert_eq((s["accepted"], s["rejected"], s["from_line"]), (n - bad, 0, bad + 1))
        assert_eq(ok(d, "dataset", "dc")["records"], n)

        clip_def = os.path.join(tmp, "clip.json")
        with open(clip_def, "w") as f:
            json.dump(CLIP, f)
        f = ok(d, "filter", "put", "dc", "clip", "@" + clip_def, "--wait")
        assert_eq((f["name"], f["scoring"]["state"], f["scoring"]["processed"]),
                  ("clip", "succeeded", n))
        st = ok(d, "filter", "stats", "dc", "clip", "--bins", "5", "--threshold", "0.5")
        clip = pool.clip()
        fin = clip[np.isfinite(clip)]
        assert_eq((st["count"], len(st["histogram"]["counts"])), (len(fin), 5))
        assert_eq(st["at_or_above"], int((fin >= np.float32(0.5)).sum()))
        sub = ok(d, "subset", "put", "dc", "top30", '[{"filter": "clip", "top_fraction": 0.3}]',
                 "--wait")
        keep, thr = curate.top_fraction(clip, 0.3)
        assert_eq((sub["state"], sub["members"]), ("ready", int(keep.sum())))
        out_npy = os.path.join(tmp, "top30.npy")
        s = ok(d, "export", "dc", "top30", "-o", out_npy, "--format", "npy")
        assert_eq((s["file"], s["format"], s["count"]), (out_npy, "npy", int(keep.sum())))
        assert not os.path.exists(out_npy + ".part")
        got = np.load(out_npy)
        want = np.array(sorted((int(u[:16], 16), int(u[16:], 16))
                               for u in np.array(pool.ids)[keep]),
                        dtype=[("f0", "<u8"), ("f1", "<u8")])
        assert_eq(got.dtype, want.dtype)
        assert np.array_equal(got, want), "the .npy uids are not numpy's top 30%"
        with open(out_npy, "rb") as fh:
            assert_eq(fh.read(), curate.npy_bytes(np.array(pool.ids)[keep]), "np.save bytes")
        # NDJSON in two slices: disjoint, together the members, row order
        ids = []
        for i in range(2):
            p = os.path.join(tmp, "s%d.ndjson" % i)
            s = ok(d, "export", "dc", "top30", "-o", p, "--fields", "id,scores", "--slices", "2",
                   "--slice", str(i))
            lines = [json.loads(l) for l in open(p)]
            assert "summary" not in lines[-1], lines[-1]  # a file a loader can read as is
            assert_eq(len(lines), s["count"])
            ids += [l["id"] for l in lines]
        assert_eq(ids, list(np.array(pool.ids)[keep]), "slices")
        # ids to stdout, and to a file
        rc, out, err = run(d, "export", "dc", "top30", "--format", "ids")
        assert_eq((rc, out.split()), (0, ids))
        p = os.path.join(tmp, "top30.ids")
        s = ok(d, "export", "dc", "top30", "--format", "ids", "-o", p)
        assert_eq((s["count"], open(p).read().split()), (len(ids), ids))
        # why: a member and a record below the cut
        out_i = int(np.flatnonzero(np.isfinite(clip) & ~keep)[0])
        w = ok(d, "why", "dc", pool.ids[out_i], "--subset", "top30")
        assert_eq((w["member"], w["steps"][0]["decision"]), (False, "dropped"))
        w = ok(d, "why", "dc", ids[0], "--subset", "top30")
        assert_eq((w["member"], w["steps"][0]["decision"]), (True, "kept"))

        # a threshold search followed through its page tokens: numpy's set, each hit once
        x = pool.img.astype(np.float64)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        qs = pool.img[[5, 17]].astype("<f4")
        qfile = os.path.join(tmp, "q.f32")
        qs.tofile(qfile)
        cos = (qs.astype(np.float64) / np.linalg.norm(qs, axis=1, keepdims=True)) @ x.T
        # a threshold in a gap of the scores near the 300th best of both queries, so
        # that float rounding cannot move a record across it
        u = np.sort(cos.ravel())[::-1]
        i = 300 + int(np.argmax(u[300:400] - u[301:401] > 2e-5))
        assert u[i] - u[i + 1] > 2e-5
        thr_s = round(float(u[i] + u[i + 1]) / 2, 7)
        assert np.abs(cos - thr_s).min() > 5e-6, "a score too close to the threshold"
        r = ok(d, "search", "dc", "--space", "image", "--vector-file", qfile, "--threshold",
               str(thr_s), "--limit", "40", "--all")
        assert_eq(len(r["queries"]), 2)
        for qi, ans in enumerate(r["queries"]):
            want_ids = set(np.array(pool.ids)[cos[qi] >= thr_s])
            got_ids = [h["id"] for h in ans["results"]]
            assert len(want_ids) > 80, "too few hits to need pages"
            assert_eq(len(got_ids), len(set(got_ids)), "every hit once")
            assert_eq(set(got_ids), want_ids, "query %d" % qi)
            assert_eq((ans["count"], ans["pages"]), (len(want_ids), -(-len(want_ids) // 40)))
            sc = [h["score"] for h in ans["results"]]
            assert sc == sorted(sc, reverse=True), "pages in score order"
        # one row, as a JSON vector and as a raw file: the same hits; count agrees
        qfile1 = os.path.join(tmp, "q1.f32")
        qs[:1].tofile(qfile1)
        r1 = ok(d, "search", "dc", "--space", "image", "--vector-file", qfile1, "--threshold",
                str(thr_s), "--limit", "40", "--all")
        rj = ok(d, "search", "dc", "--space", "image", "--vector", json.dumps(qs[0].tolist()),
                "--threshold", str(thr_s), "--limit", "40", "--all")
        assert_eq([h["id"] for h in r1["results"]], [h["id"] for h in rj["results"]])
        assert_eq([h["id"] for h in r1["results"]],
                  [h["id"] for h in r["queries"][0]["results"]])
        c = ok(d, "count", "dc", "--space", "image", "--vector-file", qfile1, "--threshold",
               str(thr_s))
        assert_eq(c["queries"][0]["count"] if "queries" in c else c["count"],
                  int((cos[0] >= thr_s).sum()))
        # without --all: the first page and its token
        p1 = ok(d, "search", "dc", "--space", "image", "--record", pool.ids[5], "--threshold",
                str(thr_s), "--limit", "40")
        assert_eq((len(p1["results"]), p1["stats"]["truncated"]), (40, True))
        assert isinstance(p1["page_token"], str)

        # an index with --wait, then the subset-restricted search
        ix = ok(d, "index", "put", "dc", "image", "Flat", "--metric", "cosine", "--wait")
        assert_eq((ix["state"], ix["vectors"]), ("ready", n))
        assert_eq([i["space"] for i in ok(d, "index", "list", "dc")["indexes"]], ["image"])
        hits = ok(d, "search", "dc", "--space", "image", "--record", pool.ids[5], "--limit", "5",
                  "--subset", "top30")
        members = set(ids)
        assert all(h["id"] in members for h in hits["results"]), hits
        # jobs: the dataset's, newest first
        js = ok(d, "jobs", "--dataset", "dc")["jobs"]
        assert_eq([j["kind"] for j in js[:3]], ["index", "subset", "score"])
        assert_eq(ok(d, "job", js[0]["id"])["state"], "succeeded")
        rc, out, err = run(d, "cancel", js[0]["id"])
        assert_eq(rc, 1)
        assert "job_finished" in err, err
        assert_eq(ok(d, "wait", js[1]["id"])["state"], "succeeded")
        # an HNSW graph with its build parameter; a bad one is the daemon's 422
        ix = ok(d, "index", "put", "dc", "image", "HNSW16", "--ef-construction", "48", "--wait")
        assert_eq((ix["state"], ix["factory"], ix["ef_construction"]), ("ready", "HNSW16", 48))
        rc, out, err = run(d, "index", "put", "dc", "image", "HNSW16", "--ef-construction", "0")
        assert rc != 0 and "bad_index" in err, (rc, err)
        ok(d, "drop", "dc")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def ingest_stops_at_a_refused_batch_and_resumes():
    """A daemon with a 64 KiB body limit: small batches pass; a line larger than the limit
    is refused (413), the ingest stops there and names the line to resume from; the lines
    before it are stored, and --from-line after it finishes the file."""
    pool = curate.Pool(600, seed=9)
    tmp = tempfile.mkdtemp(prefix="winnow-cli-")
    try:
        src = os.path.join(tmp, "p.ndjson")
        big = dict(pool.record(400), meta={"pad": "x" * 70000})
        pool_file(pool, src, {400: json.dumps(big)})
        with wn.Daemon(extra_args=["--body-limit", "64K"], log_level="info") as d:
            ok(d, "create", "p", json.dumps(SCHEMA))
            rc, out, err = run(d, "ingest", "p", src, "--batch-bytes", "32K")
            assert_eq(rc, 1, "a refused batch exits 1: " + err[-800:])
            assert "HTTP 413 body_too_large" in err, err
            assert "resume with --from-line 401" in err, err
            s = json.loads(out)
            assert_eq((s["accepted"], s["rejected"], s["resume_from_line"]), (400, 0, 401))
            assert_eq(ok(d, "dataset", "p")["records"], 400)
            s = ok(d, "ingest", "p", src, "--batch-bytes", "32K", "--from-line", "402")
            assert_eq((s["accepted"], s["from_line"], s["lines"]), (199, 402, 600))
            assert_eq(ok(d, "dataset", "p")["records"], 599)
            assert_eq(run(d, "get", "p", pool.ids[400])[0], 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def wait_reports_failed_jobs():
    """A subset over a filter with pending records fails its job: --wait exits 4 with the
    job's error code; wait on an unknown job is the daemon's 404 (exit 1)."""
    d = shared()
    ok(d, "create", "w", json.dumps({"spaces": {"t": {"dim": 2}}}))
    ok(d, "ingest", "w", "-", stdin=b'{"id": "x", "text": "a b c", "embeddings": {"t": [1, 0]}}\n')
    f = ok(d, "filter", "put", "w", "dd", '{"type": "exact_dup", "params": {"key": "text"}}',
           "--wait")
    assert_eq(f["scoring"]["state"], "succeeded")
    # exact_dup leaves later records pending until :score
    ok(d, "ingest", "w", "-", stdin=b'{"id": "y", "text": "a b c", "embeddings": {"t": [0, 1]}}\n')
    rc, out, err = run(d, "subset", "put", "w", "s", '[{"filter": "dd", "keep": true}]', "--wait")
    assert_eq(rc, 4, "a failed job exits 4: " + err)
    assert re.search(r"^winnow: job \d+ failed: filter_not_scored: ", err, re.M), err
    assert_eq(out, "")
    f = ok(d, "filter", "score", "w", "dd", "--wait")
    assert_eq(f["scoring"]["state"], "succeeded")
    sub = ok(d, "subset", "put", "w", "s", '{"steps": [{"filter": "dd", "keep": true}]}', "--wait")
    assert_eq((sub["state"], sub["members"]), ("ready", 1))
    rc, out, err = run(d, "wait", "999999")
    assert_eq(rc, 1)
    assert "HTTP 404 job_not_found" in err, err
    ok(d, "drop", "w")


@test
def recommend_prints_the_table():
    """filter recommend: the JSON answer by default, with --table one row per number of top
    buckets kept (the daemon's own figures) and the best one marked."""
    d = shared()
    rng = np.random.default_rng(4)
    ok(d, "create", "rc", json.dumps({"spaces": {"image": {"dim": 4}, "text": {"dim": 4}}}))
    lines = "".join(json.dumps({"id": "r%d" % i, "embeddings": {
        "image": rng.standard_normal(4).tolist(), "text": rng.standard_normal(4).tolist()}}) + "\n"
        for i in range(300))
    ok(d, "ingest", "rc", "-", stdin=lines.encode())
    ok(d, "filter", "put", "rc", "clip",
       '{"type": "clip_score", "params": {"image_space": "image", "text_space": "text"}}', "--wait")
    body = json.dumps({"budget_samples": 128000000, "pool_size": 128000000, "a": 0.025, "d": 0.1,
                       "buckets": [{"b": -0.16, "c": 6.727}, {"b": -0.125, "c": 8.545}]})
    ans = ok(d, "filter", "recommend", "rc", "clip", body)
    assert_eq(ans["best_m"], 2, "best m")
    rc, out, err = run(d, "filter", "recommend", "rc", "clip", body, "--table")
    assert_eq(rc, 0, err)
    rows = [l.split() for l in out.splitlines()[2:] if l.strip() and l.split()[0] in ("*", "1", "2")]
    assert_eq(len(rows), 2, out)
    for pt, row in zip(ans["curve"], rows):
        best = row[0] == "*"
        cols = row[1:] if best else row
        assert_eq((int(cols[0]), best), (pt["m"], pt["m"] == ans["best_m"]), out)
        assert_eq(int(cols[3]), pt["kept"], "kept")
        assert abs(float(cols[4]) - pt["predicted_error"]) < 5e-6, (cols, pt)
        assert abs(float(cols[5]) - pt["predicted_accuracy"]) < 5e-6, (cols, pt)
    rc, out, err = run(d, "filter", "recommend", "rc", "clip", '{"budget_samples": 10}', "--table")
    assert_eq(rc, 1, err)
    assert "invalid_recommend_request" in err and "missing_field" in err, err
    ok(d, "drop", "rc")


@test
def adapters_and_hubness_verbs():
    """An adapter trained from a pairs file (--wait), used in a search; a hubness
    normaliser computed (--wait), listed, reported and deleted."""
    d = shared()
    rng = np.random.default_rng(5)
    n, dim = 400, 8
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    ok(d, "create", "ah", json.dumps({"spaces": {"v": {"dim": dim}}}))
    ok(d, "ingest", "ah", "-", stdin=wn.ndjson(
        {"id": "r%d" % i, "kind": "text", "embeddings": {"v": curate.emb(vecs[i])}}
        for i in range(n)))
    tmp = tempfile.mkdtemp(prefix="winnow-cli-")
    try:
        # 40 queries; a record is relevant to a query when their cosine is above 0.3
        qs = rng.standard_normal((40, dim)).astype(np.float32)
        cos = (qs / np.linalg.norm(qs, axis=1, keepdims=True)) @ \
              (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).T
        pairs = os.path.join(tmp, "pairs.ndjson")
        with open(pairs, "w") as f:
            for qi in range(40):
                for ri in rng.choice(n, 20, replace=False):
                    f.write(json.dumps({"query": qs[qi].tolist(), "id": "r%d" % ri,
                                        "label": int(cos[qi, ri] > 0.3)}) + "\n")
        a = ok(d, "adapter", "put", "ah", "rel", '{"space": "v", "hidden": 8, "max_epochs": 30}')
        assert_eq(a["name"], "rel")
        s = ok(d, "adapter", "pairs", "ah", "rel", pairs)
        assert_eq((s["accepted"], s["rejected"], s["queries"]), (800, 0, 40))
        a = ok(d, "adapter", "train", "ah", "rel", "--wait")
        assert_eq(a["state"], "trained")
        assert_eq(a["training"]["pairs"]["train"] + a["training"]["pairs"]["held_out"], 800)
        assert_eq([x["name"] for x in ok(d, "adapter", "list", "ah")["adapters"]], ["rel"])
        assert_eq(ok(d, "adapter", "get", "ah", "rel")["version"], a["version"])
        rc, out, err = run(d, "search", "ah", "--space", "v", "--record", "r0", "--limit", "3")
        assert_eq(rc, 0)
        assert_eq(len(json.loads(out)["results"]), 3)
        assert_eq(run(d, "adapter", "delete", "ah", "rel")[0], 0)
        assert_eq(run(d, "adapter", "get", "ah", "rel")[0], 1)
        # hubness: a query bank inline, computed by a job
        body = os.path.join(tmp, "hub.json")
        with open(body, "w") as f:
            json.dump({"space": "v", "query_bank": {"vectors": qs.tolist()}}, f)
        h = ok(d, "hubness", "put", "ah", "dbn", "@" + body, "--wait")
        assert_eq((h["name"], h["ready"]), ("dbn", True))
        assert_eq([x["name"] for x in ok(d, "hubness", "list", "ah")["normalizers"]], ["dbn"])
        r = ok(d, "hubness", "report", "ah", "dbn",
               json.dumps({"queries": {"vectors": qs[:10].tolist()}, "k": 5}))
        assert_eq((r["queries"], r["k"], r["gallery"]), (10, 5, n))
        assert_eq(run(d, "hubness", "delete", "ah", "dbn")[0], 0)
        ok(d, "drop", "ah")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- under a terminal ---------------------------------------------------------------------

class Tmux:
    """A private tmux server (its own socket) with one 120x30 session running bash."""

    def __init__(self):
        self.sock = "winnow-test-%d" % os.getpid()
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "120", "-y", "30",
                  "env -i PATH=/usr/bin:/bin TERM=xterm HOME=%s bash --norc --noprofile"
                  % tempfile.gettempdir())

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.sock] + list(args), capture_output=True,
                              timeout=30, check=True).stdout.decode()

    def send(self, line):
        self.tmux("send-keys", "-t", "t", line, "Enter")

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "t")

    def wait_for(self, pattern, timeout=60):
        deadline = time.monotonic() + timeout * wn.SLOW
        while time.monotonic() < deadline:
            s = self.screen()
            m = re.search(pattern, s)
            if m:
                return s, m
            time.sleep(0.05)
        raise AssertionError("no %r on the terminal:\n%s" % (pattern, self.screen()))

    def close(self):
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True, timeout=30)


@test
def progress_bar_on_a_terminal():
    n = 60000
    pool = curate.Pool(n, seed=4)
    tmp = tempfile.mkdtemp(prefix="winnow-cli-tty-")
    t = None
    try:
        src = os.path.join(tmp, "p.ndjson")
        pool_file(pool, src)
        with wn.Daemon(extra_args=["--job-chunk", "4096", "--job-throttle-ms", "50"],
                       log_level="info") as d:
            url = "http://%s:%d" % (d.host, d.port)
            w = "%s --url %s" % (CLI, url)
            t = Tmux()
            ok(d, "create", "p", json.dumps(SCHEMA))
            # ingest: a bar of bytes and lines, redrawn on one line; the batch reports above it
            t.send("%s ingest p %s --batch-bytes 4M >%s/ingest.out; echo EXIT1=$?"
                   % (w, src, tmp))
            screen, _ = t.wait_for(r"EXIT1=\d+")
            assert "EXIT1=0" in screen, screen
            bars = [l for l in screen.splitlines() if "MiB/s" in l]
            assert_eq(len(bars), 1, "one bar line, redrawn in place:\n" + screen)
            assert re.search(r"\] 100%  [\d.]+ MiB/[\d.]+ MiB  60000 lines  [\d.]+ MiB/s", bars[0]), bars
            assert re.search(r"^winnow: batch \d+, lines \d+-60000: \d+ accepted, 0 rejected$",
                             screen, re.M), screen
            assert_eq(json.load(open(os.path.join(tmp, "ingest.out")))["accepted"], n)
            t.send("clear")
            # a slow scoring job (15 chunks of 4096, 50 ms apart): the bar shows its percent,
            # rate and ETA while it runs
            t.send("%s filter put p clip '%s' --wait >%s/put.out; echo EXIT2=$?"
                   % (w, json.dumps(CLIP), tmp))
            seen = set()
            deadline = time.monotonic() + 60 * wn.SLOW
            while time.monotonic() < deadline:
                s = t.screen()
                m = re.search(r"\[[#.]{20}\] +(\d+)%  (\d+)/60000  ([\d.]+k?) rec/s  ETA (\d+)s", s)
                if m and 0 < int(m.group(1)) < 100:
                    seen.add(int(m.group(1)))
                    assert_eq(int(m.group(1)), int(m.group(2)) * 100 // n, "percent of processed")
                if re.search(r"EXIT2=\d", s):
                    break
                time.sleep(0.03)
            screen = t.screen()
            assert "EXIT2=0" in screen, screen
            assert len(seen) >= 2, "the bar did not move: %r\n%s" % (seen, screen)
            bars = [l for l in screen.splitlines() if "rec/s" in l]
            assert_eq(len(bars), 1, "one bar line:\n" + screen)
            # finished: the last measured rate stays, the ETA says done
            assert re.search(r"\[#{20}\] 100%  60000/60000  [\d.]+k? rec/s  done  score p/clip",
                             bars[0]), bars
            assert_eq(json.load(open(os.path.join(tmp, "put.out")))["scoring"]["state"],
                      "succeeded")
            # wait on a job started elsewhere, and --quiet: nothing on the terminal
            jid = curate.job_id(d.json("POST", "/v1/datasets/p/filters/clip:score"))
            t.send("clear")
            t.send("%s wait %s >/dev/null; echo EXIT3=$?" % (w, jid))
            screen, _ = t.wait_for(r"EXIT3=\d+")
            assert "EXIT3=0" in screen and "100%" in screen, screen
            jid = curate.job_id(d.json("POST", "/v1/datasets/p/filters/clip:score"))
            t.send("clear")
            t.send("%s --quiet wait %s >/dev/null; echo EXIT4=$?" % (w, jid))
            screen, _ = t.wait_for(r"EXIT4=\d+")
            assert "EXIT4=0" in screen and "%" not in screen and "rec/s" not in screen, screen
            # the same wait without a terminal: one plain summary line
            jid = curate.job_id(d.json("POST", "/v1/datasets/p/filters/clip:score"))
            rc, out, err = run(d, "wait", jid)
            assert_eq((rc, json.loads(out)["state"]), (0, "succeeded"))
            assert re.fullmatch(r"winnow: job %s succeeded: 60000/60000 processed(, \S+ rec/s)?\n"
                                % jid, err), err
    finally:
        if t is not None:
            t.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    wn.main()
