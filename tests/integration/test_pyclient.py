# SPDX-License-Identifier: MIT
"""The Python client (clients/python/winnow) against a real winnowd: every method family,
errors as one WinnowError type (404, 409, 422 with errors[], 413, 401/403, a failed job,
a refused connection), one keep-alive connection that survives the server closing it, the
client without numpy, a Flat cosine search compared with numpy brute force, and a
DataComp-style pipeline end to end (.npy embedding shards + NDJSON metadata in, clip_score,
top 30%, the uid .npy out) checked against numpy."""

import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

import wn
from wn import assert_eq, test

sys.path.insert(0, os.path.join(wn.REPO, "clients", "python"))
import winnow  # noqa: E402
from winnow import WinnowError  # noqa: E402

daemon = wn.Shared(log_level="info")
_state = {}
TIMEOUT = 60 * wn.SLOW


def client():
    d = daemon()
    if _state.get("port") != d.port:
        _state["client"] = winnow.Client("http://%s:%d" % (d.host, d.port))
        _state["port"] = d.port
    return _state["client"]


def raises(fn, status, code):
    """fn() must raise WinnowError with this status and code; returns the error."""
    try:
        fn()
    except WinnowError as e:
        assert_eq((e.status, e.code), (status, code), "WinnowError %s" % e)
        return e
    raise AssertionError("no WinnowError %s %s" % (status, code))


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def cosine(a, b):
    """Row-wise cosine in float64 of the stored values (f16 or f32)."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- errors ------------------------------------------------------------------------------
@test
def errors_carry_the_problem_fields():
    c = client()
    e = raises(lambda: c.get_dataset("nope"), 404, "dataset_not_found")
    assert_eq(e.type, "urn:winnow:problem:dataset_not_found")
    assert e.title and e.detail and e.request_id, vars(e)
    assert "404 dataset_not_found" in str(e) and e.detail in str(e), str(e)
    assert_eq(e.problem["code"], "dataset_not_found")
    c.create_dataset("e", {"v": 4})
    raises(lambda: c.create_dataset("e", {"v": 5}), 409, "dataset_exists")
    raises(lambda: c.create_dataset("bad name!", {}), 422, "invalid_name")
    # 422 with errors[]: no record accepted, line numbers over the whole iterable (3 batches)
    recs = [{"id": "r%d" % i, "embeddings": {"v": [1.0, 2.0, 3.0]}} for i in range(5)]
    e = raises(lambda: c.ingest("e", recs, batch_count=2), 422, "no_records_accepted")
    assert_eq([(x["line"], x["id"], x["code"]) for x in e.errors],
              [(i + 1, "r%d" % i, "dimension_mismatch") for i in range(5)])
    assert "line 1 id 'r0': dimension_mismatch" in str(e), str(e)
    assert_eq(c.get_dataset("e")["records"], 0)
    raises(lambda: c.search("e", [1, 0, 0, 0, 0], space="v"), 422, "dimension_mismatch")
    raises(lambda: c.job("999999"), 404, "job_not_found")
    raises(lambda: c.get_record("e", "missing"), 404, "record_not_found")
    raises(lambda: c.get_filter("e", "nof"), 404, "filter_not_found")
    c.drop_dataset("e")


@test
def unreachable_names_the_url():
    port = free_port()  # nothing listens there any more
    url = "http://127.0.0.1:%d" % port
    c = winnow.Client(url)
    e = raises(c.list_datasets, None, "unreachable")
    assert url in str(e) and "WINNOW_URL" in str(e), str(e)
    old = os.environ.get("WINNOW_URL")
    os.environ["WINNOW_URL"] = url + "/"
    try:
        assert_eq(winnow.Client().url, url)
    finally:
        if old is None:
            del os.environ["WINNOW_URL"]
        else:
            os.environ["WINNOW_URL"] = old
    saved = os.environ.pop("WINNOW_URL", None)
    try:
        assert_eq(winnow.Client().url, "http://127.0.0.1:8080")
    finally:
        if saved is not None:
            os.environ["WINNOW_URL"] = saved


@test
def operations():
    c = client()
    assert c.livez() is True and c.readyz() is True
    assert "winnow_http_requests_total{" in c.metrics()
    doc = c.openapi()
    assert "/v1/datasets/{name}/search" in doc["paths"], sorted(doc["paths"])[:5]


# ---- the connection: keep-alive, reconnect, keys, body limit ------------------------------
@test
def keep_alive_reconnect_keys_and_body_limit():
    keys_dir = tempfile.mkdtemp(prefix="winnow-pyclient-keys-")
    keys = os.path.join(keys_dir, "keys")
    lines = []
    for scope, name, key in (("admin", "ci", "py-admin-key-1"), ("read", "rd", "py-read-key-2")):
        r = subprocess.run([wn.WINNOWD, "hash-key", "--scope", scope, "--name", name, key],
                           capture_output=True, env=wn.child_env(), timeout=TIMEOUT, check=True)
        lines.append(r.stdout.decode().strip())
    with open(keys, "w") as f:
        f.write("\n".join(lines) + "\n")
    with wn.Daemon(api_keys=keys, log_level="info",
                   extra_args=["--timeout", "1", "--body-limit", "64K"]) as d:
        url = "http://%s:%d" % (d.host, d.port)
        admin = winnow.Client(url, key="py-admin-key-1")
        admin.create_dataset("k", {"v": 4})
        for _ in range(40):
            admin.get_dataset("k")
        assert_eq(admin.connections_opened, 1, "one keep-alive connection for 41 requests")
        time.sleep(2.5)  # the daemon closes connections idle for 1 s
        assert_eq(admin.get_dataset("k")["name"], "k")
        assert_eq(admin.connections_opened, 2, "a new connection after the idle close")
        # the same without the idle check: the request fails on the dead connection before
        # any answer, and is sent once more on a new one
        blind = winnow.Client(url, key="py-admin-key-1")
        blind._t._stale = lambda: False
        assert_eq(blind.get_dataset("k")["name"], "k")
        time.sleep(2.5)
        assert_eq(blind.get_dataset("k")["name"], "k")
        assert_eq(blind.connections_opened, 2, "resent on a new connection")
        # the key from WINNOW_KEY; a read key cannot write; no key is a 401
        os.environ["WINNOW_KEY"] = "py-read-key-2"
        try:
            reader = winnow.Client(url)
        finally:
            del os.environ["WINNOW_KEY"]
        assert_eq(reader.get_dataset("k")["name"], "k")
        raises(lambda: reader.create_dataset("k2", {}), 403, "forbidden")
        raises(lambda: winnow.Client(url, key="").list_datasets(), 401, "unauthorized")
        # batches by bytes keep every body under --body-limit; one too large is a 413
        recs = [{"id": "b%04d" % i, "text": "x" * 900, "embeddings": {"v": [i, 1, 2, 3]}}
                for i in range(200)]
        batches = []
        res = admin.ingest("k", recs, batch_bytes=32 << 10, progress=batches.append)
        assert_eq((res["accepted"], res["rejected"]), (200, 0))
        assert res["batches"] >= 200 * 950 // (32 << 10), res
        sizes = np.diff([0] + [b["accepted"] for b in batches])  # progress gets running totals
        assert_eq((int(sizes.sum()), len(batches)), (200, res["batches"]))
        assert sizes.min() > 0 and sizes.max() <= (32 << 10) // 950, sizes
        # 413 is answered before the body is read: a body far larger than the socket
        # buffers fails its send, and the answer is still read
        big = [dict(r, id="big%05d" % i) for i, r in enumerate(recs * 25)]
        e = raises(lambda: admin.ingest("k", big, batch_bytes=1 << 30), 413, "body_too_large")
        assert "65536" in e.detail, e
        assert_eq(admin.get_dataset("k")["records"], 200)
        admin.close()


# ---- datasets, records, signals ----------------------------------------------------------
@test
def datasets_and_ingest_from_dicts():
    c = client()
    ds = c.create_dataset("d", {"a": {"dim": 3, "dtype": "f16"}, "b": 3}, kinds=["text"])
    assert_eq(ds["spaces"], {"a": {"dim": 3, "dtype": "f16"}, "b": {"dim": 3, "dtype": "f32"}})
    assert_eq(c.create_dataset("d", {"a": {"dim": 3, "dtype": "f16"}, "b": 3},
                               kinds=["text"])["name"], "d")
    c.create_dataset("d2", {})
    c.create_dataset("d3", {})
    names = [x["name"] for x in c.list_datasets()]
    assert {"d", "d2", "d3"} <= set(names) and names == sorted(names), names
    assert_eq([x["name"] for x in c.list_datasets(page_size=1)], names, "pages followed")
    c.drop_dataset("d2")
    c.drop_dataset("d3")
    rng = np.random.default_rng(3)
    b = rng.standard_normal((25, 3)).astype(np.float32)
    recs = []
    for i in range(25):
        r = {"id": "r/%02d" % i, "text": "t%d" % i, "meta": {"i": i},
             "embeddings": {"a": b[i].astype(np.float16), "b": b[i]}}
        if i in (4, 17):
            r["embeddings"]["b"] = [1.0, 2.0]            # bad: dim 2
        if i == 11:
            r = '{"id": "raw11", "text": "a raw line", "embeddings": {"b": [1, 2, 3]}}'
        if i == 20:
            r = "{not json"
        recs.append(r)
    seen = []
    res = c.ingest("d", iter(recs), batch_count=7, progress=seen.append)
    assert_eq((res["accepted"], res["rejected"], res["batches"]), (22, 3, 4))
    assert_eq([(e["line"], e["code"]) for e in res["errors"]],
              [(5, "dimension_mismatch"), (18, "dimension_mismatch"), (21, "malformed_json")])
    assert_eq(len(seen), 4)
    got = c.get_record("d", "r/03")
    assert_eq(got["embeddings"]["b"], b[3].tolist(), "f32 round trip")
    assert_eq(got["embeddings"]["a"], b[3].astype(np.float16).astype(np.float64).tolist(),
              "f16 stored values")
    assert_eq(c.get_record("d", "raw11", embeddings=False).get("embeddings"), None)
    assert_eq(c.get_dataset("d")["records"], 22)
    # signals: one merge patch, then a bulk patch, then a bulk patch with a bad line
    v = c.patch_signals("d", "r/03", {"clip_b32": 0.25, "color": {"prior_nll": 4.0}})
    assert_eq(v["signals"], {"clip_b32": 0.25, "color": {"prior_nll": 4.0}})
    assert_eq(c.patch_signals_bulk("d", {"r/03": {"color": None}, "r/05": {"x": 1}}),
              {"patched": 2})
    assert_eq(c.get_record("d", "r/03", embeddings=False)["signals"], {"clip_b32": 0.25})
    e = raises(lambda: c.patch_signals_bulk("d", [{"id": "r/05", "signals": {"x": 2}},
                                                  {"id": "r/06", "signals": {"y": "str"}}]),
               422, "patch_rejected")
    assert_eq([x["line"] for x in e.errors], [2])
    assert_eq(c.get_record("d", "r/05", embeddings=False)["signals"], {"x": 1})
    c.delete_record("d", "r/03")
    raises(lambda: c.get_record("d", "r/03"), 404, "record_not_found")
    c.drop_dataset("d")
    raises(lambda: c.get_dataset("d"), 404, "dataset_not_found")


@test
def ingest_arrays_f16_f32_and_meta():
    c = client()
    c.create_dataset("arr", {"img": {"dim": 8, "dtype": "f16"}, "txt": {"dim": 8}})
    rng = np.random.default_rng(5)
    img = rng.standard_normal((50, 8)).astype(np.float16)
    txt = rng.standard_normal((50, 8)).astype(np.float32)
    ids = ["%032x" % (i * 7919) for i in range(50)]
    meta = [{"text": "caption %d" % i, "url": "http://x/%d.jpg" % i, "meta": {"w": i}}
            for i in range(50)]
    res = c.ingest_arrays("arr", ids, {"img": img, "txt": txt}, meta=meta, batch=16)
    assert_eq((res["accepted"], res["rejected"], res["batches"]), (50, 0, 4))
    for i in (0, 17, 49):
        r = c.get_record("arr", ids[i])
        assert_eq(r["text"], "caption %d" % i)
        assert_eq(r["meta"], {"w": i, "url": "http://x/%d.jpg" % i})
        assert_eq(r["embeddings"]["img"], img[i].astype(np.float64).tolist())
        assert_eq(r["embeddings"]["txt"], txt[i].astype(np.float64).tolist())
    # a f32 array into the f16 space (converted by the daemon) and no meta
    res = c.ingest_arrays("arr", ["x1"], {"img": txt[:1]})
    assert_eq(res["accepted"], 1)
    assert_eq(c.get_record("arr", "x1")["embeddings"]["img"],
              txt[0].astype(np.float16).astype(np.float64).tolist())
    try:
        c.ingest_arrays("arr", ids[:3], {"img": img})
    except ValueError:
        pass
    else:
        raise AssertionError("rows != ids must be a ValueError")
    c.drop_dataset("arr")


# ---- filters, subsets, jobs, exports -----------------------------------------------------
def small_pool(c, name, n=200, seed=9):
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((n, 16))
    img = (shared + rng.standard_normal((n, 16))).astype(np.float32)
    txt = (shared + rng.standard_normal((n, 16))).astype(np.float32)
    ids = ["%032x" % int.from_bytes(rng.bytes(16), "big") for _ in range(n)]
    c.create_dataset(name, {"image": 16, "text": 16})
    meta = [{"text": "a photo of thing %d" % i, "image": {"sha256": ("%04x" % (i % 150)) * 16},
             "meta": {"i": i}} for i in range(n)]
    assert_eq(c.ingest_arrays(name, ids, {"image": img, "text": txt}, meta=meta)["accepted"], n)
    return ids, cosine(img, txt).astype(np.float32)


@test
def filters_subsets_jobs_and_exports():
    c = client()
    ids, s = small_pool(c, "f")
    polls = []
    job = c.put_filter("f", "clip", "clip_score", {"image_space": "image", "text_space": "text"},
                       wait=True, progress=polls.append, timeout=TIMEOUT)
    assert job is not None and polls and all(p["id"] == job for p in polls), polls
    assert_eq(polls[-1]["state"], "succeeded")
    assert_eq((polls[-1]["processed"], polls[-1]["kind"]), (200, "score"))
    assert_eq(c.put_filter("f", "clip", "clip_score",
                           {"image_space": "image", "text_space": "text"}), None)
    assert_eq(c.get_filter("f", "clip")["type"], "clip_score")
    assert_eq([x["name"] for x in c.list_filters("f")], ["clip"])
    st = c.filter_stats("f", "clip", bins=5, threshold=0.5)
    assert_eq((st["count"], st["at_or_above"]), (200, int((s >= np.float32(0.5)).sum())))
    assert_eq(sum(st["histogram"]["counts"]), 200)
    fr = c.filter_record("f", "clip", ids[7])
    assert abs(fr["score"] - float(s[7])) < 1e-6, (fr, s[7])
    assert_eq(c.wait(c.score_filter("f", "clip"), timeout=TIMEOUT)["state"], "succeeded")
    raises(lambda: c.sweep("f", "clip", [0.01]), 422, "bad_filter_type")
    raises(lambda: c.put_filter("f", "x", "no_such_type"), 422, "unknown_filter_type")
    assert "clip_score" in [t["name"] for t in c.filter_types()]

    # a subset: threshold step; exports as npy (array and file), ids, dicts
    sub = c.put_subset("f", "hi", [{"filter": "clip", "threshold": 0.5}], wait=True,
                       timeout=TIMEOUT)
    want = sorted(ids[i] for i in range(200) if s[i] >= np.float32(0.5))
    v = c.get_subset("f", "hi")
    assert_eq((v["state"], v["members"], v["job"]["id"]), ("ready", len(want), sub))
    assert_eq([x["name"] for x in c.list_subsets("f")], ["hi"])
    arr = c.export_npy("f", "hi")
    assert_eq(arr.dtype, np.dtype([("f0", "<u8"), ("f1", "<u8")]))
    assert_eq(winnow.uids_to_hex(arr), want)
    assert_eq(winnow.hex_to_uids(want).tobytes(), arr.tobytes())
    with tempfile.TemporaryDirectory() as tmp:
        path = c.export_npy("f", "hi", os.path.join(tmp, "hi.npy"))
        with open(path, "rb") as f:
            data = f.read()
    assert_eq(len(data), 128 + 16 * len(want))
    assert_eq(np.load(io.BytesIO(data)).tobytes(), arr.tobytes())
    halves = [c.export_npy("f", "hi", slices=2, slice_id=k) for k in (0, 1)]
    assert_eq(sorted(winnow.uids_to_hex(halves[0]) + winnow.uids_to_hex(halves[1])), want)
    assert_eq(sorted(c.export_ids("f", "hi")), want)
    ex = c.export("f", "hi", fields=["scores", "meta"])
    rows = list(ex)
    assert_eq(sorted(r["id"] for r in rows), want)
    assert_eq(ex.summary["count"], len(want))
    for r in rows:
        i = ids.index(r["id"])
        assert abs(r["scores"]["clip"] - float(s[i])) < 1e-6 and r["meta"]["i"] == i, r
    # an export left early drops its connection; the next request works
    with c.export("f", "hi") as it:
        next(it)
    assert_eq(c.get_subset("f", "hi")["members"], len(want))
    dec = c.decisions("f", want[0], "hi")
    assert_eq((dec["member"], dec["steps"][0]["decision"]), (True, "kept"))

    # jobs: list, get, cancel of a finished job, and a job that fails
    assert sub in [j["id"] for j in c.jobs("f")] and sub in [j["id"] for j in c.jobs()]
    assert_eq(c.job(sub)["kind"], "subset")
    raises(lambda: c.cancel_job(sub), 409, "job_finished")
    c.put_filter("f", "dup", "exact_dup", {"key": "image_sha256"}, wait=True, timeout=TIMEOUT)
    c.ingest("f", [{"id": "late", "text": "late one", "image": {"sha256": "%04x" % 1 * 16}}])
    failed = c.put_subset("f", "dd", [{"filter": "dup", "keep": True}])
    e = raises(lambda: c.wait(failed, timeout=TIMEOUT), None, "filter_not_scored")
    assert_eq((e.job["id"], e.job["state"]), (failed, "failed"))
    c.score_filter("f", "dup", wait=True, timeout=TIMEOUT)
    c.put_subset("f", "dd", [{"filter": "dup", "keep": True}], wait=True, timeout=TIMEOUT)
    assert_eq(c.get_subset("f", "dd")["members"], 150)  # 150 distinct sha256 among 201
    c.delete_subset("f", "dd")
    c.delete_filter("f", "dup")
    assert_eq([x["name"] for x in c.list_filters("f")], ["clip"])
    raises(lambda: c.get_subset("f", "dd"), 404, "subset_not_found")
    c.drop_dataset("f")


# ---- indexes and search ------------------------------------------------------------------
@test
def put_index_ef_construction():
    """put_index passes an HNSW graph's ef_construction; without it the daemon's 40 holds."""
    c = client()
    rng = np.random.default_rng(4)
    c.create_dataset("efc", {"v": 8})
    c.ingest_arrays("efc", ["e%d" % i for i in range(60)],
                    {"v": rng.standard_normal((60, 8)).astype(np.float32)})
    c.put_index("efc", "v", "HNSW16", "cosine", wait=True, timeout=TIMEOUT, ef_construction=24)
    assert_eq(c.get_index("efc", "v")["ef_construction"], 24)
    c.put_index("efc", "v", "HNSW16", "cosine", wait=True, timeout=TIMEOUT)
    ix = c.get_index("efc", "v")
    assert_eq((ix["ef_construction"], ix["state"], ix["vectors"]), (40, "ready", 60))
    c.drop_dataset("efc")


@test
def search_equals_numpy_brute_force():
    c = client()
    n, dim = 3000, 24
    rng = np.random.default_rng(21)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    ids = ["s%05d" % i for i in range(n)]
    c.create_dataset("s", {"v": dim})
    c.ingest_arrays("s", ids, {"v": x}, meta=[{"text": "t%d" % i} for i in range(n)])
    job = c.put_index("s", "v", "Flat", "cosine", wait=True, timeout=TIMEOUT)
    assert job is not None
    assert_eq(c.put_index("s", "v", "Flat", "cosine"), None)
    ix = c.get_index("s", "v")
    assert_eq((ix["state"], ix["vectors"]), ("ready", n))
    assert_eq([i["space"] for i in c.list_indexes("s")], ["v"])
    xn = unit(x)
    q = rng.standard_normal((6, dim)).astype(np.float32)
    sims = unit(q) @ xn.T

    def check(ans, k, what):
        want = np.argsort(-sims[k], kind="stable")[:10]
        assert_eq([r["id"] for r in ans["results"]], [ids[i] for i in want], what)
        got = np.array([r["score"] for r in ans["results"]])
        assert np.abs(got - sims[k][want]).max() < 1e-5, (what, got, sims[k][want])

    for k in range(3):
        check(c.search("s", q[k].tolist(), space="v", limit=10), k, "list query %d" % k)
        check(c.search("s", q[k], limit=10), k, "numpy query %d" % k)
    rec = c.search("s", record_id=ids[5], limit=3, with_=["text"])
    assert_eq((rec["results"][0]["id"], rec["results"][0]["text"]), (ids[5], "t5"))
    raw = c.search_batch("s", q, limit=10, with_=["text"])          # raw rows
    js = c.search_batch("s", q.tolist(), limit=10, with_=["text"])  # JSON lists
    assert_eq(raw, js, "raw rows == JSON vectors")
    for k in range(6):
        check(raw[k], k, "raw row %d" % k)
    raw16 = c.search_batch("s", q.astype(np.float16), limit=10)
    sims16 = unit(q.astype(np.float16)) @ xn.T
    for k in range(6):
        want = np.argsort(-sims16[k], kind="stable")[:10]
        assert_eq([r["id"] for r in raw16[k]["results"]], [ids[i] for i in want], "f16 row %d" % k)
    # threshold search over several pages, and count, against numpy
    desc = np.sort(sims[0])[::-1]
    assert desc[130] - desc[131] > 1e-5, "scores too close to put a threshold between"
    t = float((desc[130] + desc[131]) / 2)   # exactly 131 records at or above it
    allr = c.search_all("s", q[0], score_threshold=t, limit=50)   # 3 pages
    got = [r["id"] for r in allr]
    assert_eq(got, [ids[i] for i in np.argsort(-sims[0], kind="stable")[:131]],
              "every page, in order, each record once")
    assert_eq(c.count("s", q[0], score_threshold=t, space="v"), 131)
    both = c.search_all("s", q[:2], score_threshold=t, limit=40)
    assert_eq([r["id"] for r in both[0]], got)
    assert_eq(len(both[1]), c.count("s", q[1], score_threshold=t))
    counts = c.search_batch("s", q[:3], score_threshold=t, count=True)
    assert_eq([a["count"] for a in counts],
              [c.count("s", q[k], score_threshold=t) for k in range(3)])
    big = c.search_batch("s", np.repeat(q[:1], 1100, axis=0), limit=1)  # split in two requests
    assert_eq((len(big), big[-1]["results"][0]["id"]), (1100, ids[int(np.argmax(sims[0]))]))
    # the binary answer: the same results, scores within float rounding (the index's own)
    hits = c.search_hits("s", q, limit=10)
    assert_eq((len(hits), hits.scores.shape, hits.scores.dtype), (6, (6, 10), np.float32))
    for k in range(6):
        assert_eq(hits.ids[k], [r["id"] for r in raw[k]["results"]], "hits query %d" % k)
        assert np.abs(hits.scores[k] - [r["score"] for r in raw[k]["results"]]).max() < 1e-6
    assert_eq(hits.truncated, [True] * 6)
    thr = c.search_hits("s", q[:2], score_threshold=t, limit=200)  # exact scan: exact floats
    assert_eq(thr.ids[0], got)
    assert_eq((int(np.isnan(thr.scores[0]).sum()), thr.truncated[0]), (200 - 131, False))
    assert np.array_equal(thr.scores[0, :131],
                          np.array([r["score"] for r in allr], dtype=np.float32))
    bigh = c.search_hits("s", np.repeat(q[:1], 1100, axis=0), limit=2)  # two requests
    assert_eq((len(bigh), bigh.scores.shape, bigh.ids[-1][0]),
              (1100, (1100, 2), ids[int(np.argmax(sims[0]))]))
    assert_eq(len(c.search_hits("s", q[:0])), 0)
    raises(lambda: c.search_hits("s", q, space="nope"), 422, "bad_query")
    try:
        c.search_hits("s", q, params={"rescore": 1})
        raise AssertionError("params beyond ef_search / nprobe / exact were taken")
    except ValueError:
        pass
    c.delete_index("s", "v")
    assert_eq(c.list_indexes("s"), [])
    c.drop_dataset("s")


# ---- adapters and hubness (thin wrappers) ------------------------------------------------
@test
def adapters_and_hubness():
    c = client()
    rng = np.random.default_rng(33)
    n, dim = 400, 8
    x = rng.standard_normal((n, dim)).astype(np.float32)
    ids = ["h%04d" % i for i in range(n)]
    c.create_dataset("h", {"e": dim})
    c.ingest_arrays("h", ids, {"e": x})
    a = c.put_adapter("h", "rel", space="e", hidden=4, max_epochs=20)
    assert_eq((a["name"], a["state"]), ("rel", "untrained"))
    assert_eq([v["name"] for v in c.list_adapters("h")], ["rel"])
    pairs = []
    xn = unit(x)
    for k in range(40):
        qv = rng.standard_normal(dim).astype(np.float32)
        order = np.argsort(-(xn @ unit(qv)))
        for j, i in enumerate(list(order[:3]) + list(order[-3:])):
            pairs.append({"query": qv, "id": ids[i], "label": 1 if j < 3 else 0})
    res = c.add_pairs("h", "rel", pairs)
    assert_eq((res["accepted"], res["rejected"], res["queries"]), (240, 0, 40))
    e = raises(lambda: c.add_pairs("h", "rel", [{"query": [1.0], "id": ids[0], "label": 1}]),
               422, "no_pairs_accepted")
    assert_eq(e.errors[0]["line"], 1)
    job = c.train_adapter("h", "rel", wait=True, timeout=TIMEOUT)
    v = c.get_adapter("h", "rel")
    assert_eq((v["state"], v["training_job"]["id"]), ("trained", job))
    ans = c.search("h", x[0], limit=5, relevance={"adapter": "rel"})
    assert all(0.0 <= r["relevance"] <= 1.0 for r in ans["results"]), ans
    c.delete_adapter("h", "rel")
    raises(lambda: c.get_adapter("h", "rel"), 404, "adapter_not_found")

    bank = rng.standard_normal((30, dim)).astype(np.float32)
    job = c.put_normalizer("h", "dbn", space="e", query_bank={"vectors": bank}, wait=True,
                           timeout=TIMEOUT)
    assert job is not None
    nz = c.get_normalizer("h", "dbn")
    assert_eq((nz["ready"], nz["query_bank"]), (True, {"vectors": 30}))
    assert_eq([v["name"] for v in c.list_normalizers("h")], ["dbn"])
    rep = c.hubness_report("h", "dbn", {"vectors": bank[:10].tolist()}, k=5)
    assert_eq((rep["queries"], rep["k"]), (10, 5))
    ans = c.search("h", x[1], limit=5, hubness={"normalizer": "dbn", "method": "dualis"})
    assert all("hubness_score" in r for r in ans["results"]), ans
    c.delete_normalizer("h", "dbn")
    assert_eq(c.list_normalizers("h"), [])
    c.drop_dataset("h")


@test
def works_without_numpy():
    """Everything but the numpy helpers: a child process where numpy cannot be imported."""
    d = daemon()
    code = r"""
import sys
sys.modules["numpy"] = None          # any "import numpy" now fails
sys.path.insert(0, %r)
import winnow
c = winnow.Client(%r)
c.create_dataset("nonp", {"v": 3})
r = c.ingest("nonp", ({"id": "%%032x" %% i, "embeddings": {"v": [i, 1.0, 0.5]}} for i in range(1, 40)))
assert r["accepted"] == 39, r
c.put_filter("nonp", "f", "basic", {}, wait=True)
c.put_subset("nonp", "all", [{"kind": "text"}], wait=True)
c.export_npy("nonp", "all", %r)
ans = c.search("nonp", [1.0, 1.0, 0.5], space="v", limit=2)
assert [x["id"] for x in ans["results"]] == ["%%032x" %% 1, "%%032x" %% 2], ans
assert len(c.search_batch("nonp", [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], space="v")) == 2
try:
    c.export_npy("nonp", "all")
except ImportError as e:
    assert "numpy" in str(e)
else:
    raise SystemExit("export_npy without a path must need numpy")
print("OK", c.connections_opened)
"""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "all.npy")
        src = code % (os.path.join(wn.REPO, "clients", "python"),
                      "http://%s:%d" % (d.host, d.port), path)
        p = subprocess.run([sys.executable, "-c", src], capture_output=True, timeout=TIMEOUT)
        assert_eq((p.returncode, p.stdout.decode().strip()), (0, "OK 1"), p.stderr.decode())
        got = np.load(path)
    assert_eq(winnow.uids_to_hex(got), ["%032x" % i for i in range(1, 40)])
    client().drop_dataset("nonp")


# ---- the DataComp-style pipeline ---------------------------------------------------------
@test
def datacomp_pipeline_end_to_end():
    """Shards of embeddings (.npy: f16 image, f32 text) + NDJSON metadata in, clip_score, top
    30% with DataComp's rule, the uid .npy out: equal to the top 30% numpy computes."""
    c = client()
    rng = np.random.default_rng(2024)
    base, dim, copies, fraction = 990, 32, 10, 0.3
    shared = rng.standard_normal((base, dim))
    img = (shared + 1.2 * rng.standard_normal((base, dim))).astype(np.float16)
    txt = (shared + 1.2 * rng.standard_normal((base, dim))).astype(np.float32)
    s0 = cosine(img, txt)
    # copies of the record ranked 296th: identical vectors, identical scores, so the cut of
    # top 30% (k = 300 of 1000) falls on a tie of 11 records, all kept (DataComp keeps ties)
    pick = int(np.argsort(-s0, kind="stable")[295])
    img = np.concatenate([img, np.repeat(img[pick:pick + 1], copies, axis=0)])
    txt = np.concatenate([txt, np.repeat(txt[pick:pick + 1], copies, axis=0)])
    n = base + copies
    uids = ["%032x" % int.from_bytes(rng.bytes(16), "big") for _ in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        shards = np.array_split(np.arange(n), 4)
        for k, rows in enumerate(shards):
            np.save(os.path.join(tmp, "%05d_img.npy" % k), img[rows])
            np.save(os.path.join(tmp, "%05d_txt.npy" % k), txt[rows])
            with open(os.path.join(tmp, "%05d.ndjson" % k), "w") as f:
                for i in rows:
                    f.write(json.dumps({"uid": uids[i], "text": "caption %d" % i,
                                        "url": "https://example.com/%d.jpg" % i}) + "\n")

        # --- the pipeline, as docs/python.md shows it --------------------------------------
        c.create_dataset("pool", {"image": {"dim": dim, "dtype": "f16"},
                                  "text": {"dim": dim, "dtype": "f32"}})
        for k in range(len(shards)):
            im = np.load(os.path.join(tmp, "%05d_img.npy" % k))
            tx = np.load(os.path.join(tmp, "%05d_txt.npy" % k))
            with open(os.path.join(tmp, "%05d.ndjson" % k)) as f:
                meta = [json.loads(line) for line in f]
            res = c.ingest_arrays("pool", [m.pop("uid") for m in meta],
                                  {"image": im, "text": tx}, meta=meta, batch=100)
            assert_eq((res["accepted"], res["rejected"]), (len(meta), 0))
        c.put_filter("pool", "clip", "clip_score", {"image_space": "image", "text_space": "text"},
                     wait=True, timeout=TIMEOUT)
        c.put_subset("pool", "top30", [{"filter": "clip", "top_fraction": fraction}],
                     wait=True, timeout=TIMEOUT)
        out = c.export_npy("pool", "top30", os.path.join(tmp, "top30.npy"))
        with open(out, "rb") as f:
            got_bytes = f.read()
        got = np.load(out)

    # --- the same top 30% computed independently with numpy ----------------------------
    s = cosine(img, txt)
    k = int(np.floor(n * fraction))
    thr = np.sort(s)[::-1][k]                    # the (k+1)-th largest score
    keep = s >= thr
    assert_eq(int(keep.sum()), 295 + 1 + copies, "the 295 above the tie, and all 11 tied")
    assert keep.sum() > k + 1
    others = np.abs(s[~np.isclose(s, thr, rtol=0, atol=1e-12)] - thr)
    assert others.min() > 1e-5, "the test data has scores within float32 rounding of the cut"
    want = np.array(sorted((int(u[:16], 16), int(u[16:], 16))
                           for u, kp in zip(uids, keep) if kp), dtype=[("f0", "<u8"), ("f1", "<u8")])
    buf = io.BytesIO()
    np.save(buf, want)
    assert_eq(got.dtype, want.dtype)
    assert_eq(winnow.uids_to_hex(got), winnow.uids_to_hex(want))
    assert_eq(got_bytes, buf.getvalue(), "byte-identical to np.save")
    prov = c.get_subset("pool", "top30")["provenance"]["steps"][0]
    assert_eq((prov["in"], prov["out"]), (n, 296 + copies))
    assert abs(prov["threshold"] - thr) < 1e-6, (prov, thr)
    # the metadata went where ingest_arrays puts it
    r = c.get_record("pool", uids[3], embeddings=False)
    assert_eq((r["text"], r["meta"]), ("caption 3", {"url": "https://example.com/3.jpg"}))
    c.drop_dataset("pool")


if __name__ == "__main__":
    wn.main()
