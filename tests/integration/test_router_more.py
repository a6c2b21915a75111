# SPDX-License-Identifier: MIT
"""Routes the router serves beyond test_router.py (issue 18): 3 shard daemons behind
`winnowd --router` against 1 reference daemon holding the same records.

records:signals: the same batch gives the same records on both sides and equals an independent
merge patch (RFC 7396) in Python, the color filter's scores included; a batch with one bad line
(unknown id, or not a patch) changes nothing on any shard and names the client's line, as one
daemon does; ?dry_run=true checks without writing; a shard that cannot be reached in the
checking round leaves every other shard unchanged; a shard failing after the checks is a 502
partial naming it, and sending the batch again completes it.

records:import: the same multipart import gives the same records and the same answer (errors on
the client's lines and rows) as one daemon; a request wrong as a whole is refused alike.

filters/{f}/stats: the merged statistics equal one daemon's (counts, min, max, quantiles and
histogram exactly, the mean within double rounding) and numpy's quantiles and histogram."""

import copy
import hashlib
import io
import json
import math
import os
import socket
import tempfile
import threading
import uuid

import numpy as np

import curate
import wn
from wn import assert_eq, assert_problem, test

N = 300
VIRTUAL = 1024
_st = {}


def place(rid, n, v=VIRTUAL):
    """The documented placement (docs/scale.md)."""
    h = int.from_bytes(hashlib.sha256(rid.encode()).digest()[:8], "big") % v
    return h * n // v


class _Stop:
    def __init__(self, d):
        self.d = d

    def teardown(self):
        try:
            self.d.stop()
        finally:
            self.d.close()


def _router(urls):
    d = tempfile.mkdtemp(prefix="winnow-rsig-")
    cf = os.path.join(d, "shards.json")
    with open(cf, "w") as f:
        json.dump({"virtual_shards": VIRTUAL, "shards": [{"url": u} for u in urls]}, f)
    return cf


def ids():
    return ["r%03d" % i for i in range(N)]


def triple(x):
    return {"prior_nll": x, "cond_nll": 1.0, "tokens": 4}


def cluster():
    """ref, shards, router, each with dataset s of N records (signals a and c) and a color
    filter on signal a."""
    if "router" in _st:
        return _st["ref"], _st["shards"], _st["router"]
    ref = wn.Daemon()
    shards = [wn.Daemon() for _ in range(3)]
    cf = _router(["http://127.0.0.1:%d" % s.port for s in shards])
    router = wn.Daemon(extra_args=["--router", cf])
    _st.update(ref=ref, shards=shards, router=router)
    for x in [ref] + shards + [router]:
        wn._teardowns.append(("daemon %d stops cleanly" % x.port, _Stop(x)))
    recs = [{"id": rid, "text": "t", "signals": {"a": triple(float(i)), "c": i}}
            for i, rid in enumerate(ids())]
    for d in (ref, router):
        assert_eq(d.put_dataset("s", {"spaces": {}})[0], 201)
        curate.wait_job(d, curate.put_filter(d, "s", "fa", {"type": "color",
                                                           "params": {"signal": "a"}}))
        st, _, body = d.ingest("s", recs)
        assert_eq((st, body["accepted"]), (200, N), "ingest")
    assert all(s.get_json("/v1/datasets/s")[2]["records"] > 0 for s in shards)
    return ref, shards, router


def post(d, lines, query=""):
    body = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    return d.json("POST", "/v1/datasets/s/records:signals" + query, body.encode(),
                  content_type="application/x-ndjson")


def signals_of(d):
    out = {}
    for rid in ids():
        st, _, rec = d.get_record("s", rid, "?embeddings=false")
        assert_eq(st, 200, rid)
        out[rid] = rec.get("signals")
    return out


def scores_of(d):
    out = {}
    for rid in ids():
        st, _, rec = d.get_json("/v1/datasets/s/filters/fa/records/%s" % rid)
        assert_eq(st, 200, rid)
        out[rid] = (rec["score"], rec["status"])
    return out


def merge(target, patch):
    """RFC 7396, independently of the C code."""
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict):
            t = target.get(k)
            if not isinstance(t, dict):
                t = target[k] = {}
            merge(t, v)
        else:
            target[k] = v
    return target


def shards_state(shards):
    """Every shard's records as they are (signals), by id."""
    out = {}
    for s in shards:
        for rid in ids():
            st, _, rec = s.get_record("s", rid, "?embeddings=false")
            if st == 200:
                out[rid] = rec.get("signals")
    return out


@test
def test_signals_through_the_router_equal_one_daemon_and_a_python_merge():
    ref, shards, router = cluster()
    before = signals_of(ref)
    lines = []
    for i, rid in enumerate(ids()):
        if i % 3 == 0:
            lines.append({"id": rid, "signals": {"a": {"prior_nll": 100.0 + i}, "b": 0.5}})
        elif i % 3 == 1:
            lines.append({"id": rid, "signals": {"a": None, "c": None, "d": {"x": 2}}})
        else:
            lines.append({"id": rid, "signals": {"a": {"tokens": 8}}})
    lines.append({"id": "r005", "signals": {"c": 7}})          # a second line for one id: in order
    lines.insert(40, "   ")                                      # a blank line is not counted
    want = copy.deepcopy(before)
    for x in lines:
        if isinstance(x, dict):
            merge(want[x["id"]], x["signals"])
    want = {k: (v or None) for k, v in want.items()}
    for d in (ref, router):
        st, _, body = post(d, lines)
        assert_eq((st, body), (200, {"patched": N + 1}), "port %d" % d.port)
    got_ref, got_router = signals_of(ref), signals_of(router)
    assert_eq(got_ref, want, "one daemon = the Python merge")
    assert_eq(got_router, want, "the router = the Python merge")
    assert_eq(shards_state(shards), want, "the shards hold every record, patched")
    assert_eq(scores_of(router), scores_of(ref), "the color filter rescored alike")
    on = {place(x["id"], 3) for x in lines if isinstance(x, dict)}
    assert_eq(on, {0, 1, 2}, "the batch touched every shard")


@test
def test_a_bad_line_changes_nothing_anywhere_and_names_the_client_line():
    ref, shards, router = cluster()
    before_ref, before = signals_of(ref), shards_state(shards)
    lines = [{"id": rid, "signals": {"z": i}} for i, rid in enumerate(ids())]
    # unknown ids on lines 150 and 250, owned by two different shards: each is found out by
    # its shard in the checking round
    gone = ["gone-%d" % i for i in range(20)]
    g1 = gone[0]
    g2 = next(g for g in gone if place(g, 3) != place(g1, 3))
    lines[149] = {"id": g1, "signals": {"z": 1}}
    lines[249] = {"id": g2, "signals": {"z": 1}}
    answers = [post(d, lines) for d in (ref, router)]
    for st, _, body in answers:
        assert_problem((st, _, body), 422, "patch_rejected")
    (_, _, a), (_, _, b) = answers
    assert_eq([(e["line"], e["code"]) for e in b["errors"]],
              [(e["line"], e["code"]) for e in a["errors"]], "errors as one daemon lists them")
    assert_eq([(e["line"], e["id"]) for e in b["errors"]], [(150, g1), (250, g2)],
              "the client's lines")
    assert_eq((b["rejected"], b["detail"]), (a["rejected"], a["detail"]))
    assert_eq(shards_state(shards), before, "no shard changed")
    assert_eq(signals_of(ref), before_ref, "the reference did not change either")
    # a line that is not a patch: shard 0 answers the whole batch, as one daemon would
    lines = [{"id": rid, "signals": {"z": 1}} for rid in ids()[:20]]
    lines[6] = "{not json"
    lines[11] = {"id": ids()[11], "signals": {"z": "str"}}
    answers = [post(d, lines) for d in (ref, router)]
    for st, _, body in answers:
        assert_problem((st, _, body), 422, "patch_rejected")
    assert_eq([(e["line"], e["code"]) for e in answers[1][2]["errors"]],
              [(7, "malformed_json"), (12, "invalid_field")])
    assert_eq(answers[1][2]["errors"], answers[0][2]["errors"])
    assert_eq(shards_state(shards), before, "no shard changed")
    # an unknown dataset, another media type, a bad dry_run: as one daemon answers
    for path, ct, code in (("/v1/datasets/nosuch/records:signals", "application/x-ndjson", 404),
                           ("/v1/datasets/s/records:signals", "application/json", 415),
                           ("/v1/datasets/s/records:signals?dry_run=maybe",
                            "application/x-ndjson", 400)):
        for d in (ref, router):
            st, _, body = d.json("POST", path, b'{"id": "r001", "signals": {"z": 1}}\n',
                                 content_type=ct)
            assert_problem((st, _, body), code)


@test
def test_dry_run_checks_every_shard_and_writes_nothing():
    ref, shards, router = cluster()
    before = shards_state(shards)
    lines = [{"id": rid, "signals": {"dry": 1}} for rid in ids()]
    for d in (ref, router):
        st, _, body = post(d, lines, "?dry_run=true")
        assert_eq((st, body), (200, {"patched": 0, "dry_run": True, "checked": N}))
    assert_eq(shards_state(shards), before, "nothing written")
    lines[77] = {"id": "gone", "signals": {"dry": 1}}
    answers = [post(d, lines, "?dry_run=true") for d in (ref, router)]
    assert_eq([(x[0], [e["line"] for e in x[2]["errors"]]) for x in answers],
              [(422, [78])] * 2)


class _Unready(wn.Daemon):
    """A router whose shards are not all up: it never becomes ready."""

    def _wait_ready(self):
        return None


@test
def test_an_unreachable_shard_in_the_checking_round_leaves_the_others_unchanged():
    _, shards, _ = cluster()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    cf = _router(["http://127.0.0.1:%d" % shards[0].port, "http://127.0.0.1:%d" % shards[1].port,
                  "http://127.0.0.1:%d" % dead])
    r2 = _Unready(extra_args=["--router", cf, "--shard-timeout", "2"])
    try:
        before = shards_state(shards[:2])
        st, _, body = post(r2, [{"id": rid, "signals": {"u": 1}} for rid in ids()])
        assert_problem((st, _, body), 502, "shard_unreachable")
        assert_eq(shards_state(shards[:2]), before, "the reachable shards did not apply")
    finally:
        r2.stop()
        r2.close()


class _FlakyShard:
    """A stand-in for shard 2 that passes every dry run and fails every real write (500), as a
    shard that dies between the two rounds would."""

    def __init__(self):
        import http.server

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, st, obj):
                data = json.dumps(obj).encode()
                self.send_response(st)
                self.send_header("Content-Type", "application/json" if st < 400
                                 else "application/problem+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {"status": "ready"})

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                n = sum(1 for x in body.split(b"\n") if x.strip())
                if "dry_run=true" in self.path:
                    self._send(200, {"patched": 0, "dry_run": True, "checked": n})
                else:
                    self._send(500, {"type": "about:blank", "title": "boom", "status": 500,
                                     "code": "internal", "detail": "the disk went away"})
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@test
def test_a_shard_failing_after_the_checks_is_a_partial_and_a_resend_completes():
    ref, shards, router = cluster()
    flaky = _FlakyShard()
    cf = _router(["http://127.0.0.1:%d" % shards[0].port, "http://127.0.0.1:%d" % shards[1].port,
                  "http://127.0.0.1:%d" % flaky.port])
    r2 = _Unready(extra_args=["--router", cf])
    lines = [{"id": rid, "signals": {"partial": i}} for i, rid in enumerate(ids())]
    try:
        st, _, body = post(r2, lines)
        assert_problem((st, _, body), 502, "partial")
        assert_eq(sorted((x["shard"], x["status"]) for x in body["shards"]),
                  [(0, 200), (1, 200), (2, 500)])
    finally:
        r2.stop()
        r2.close()
        flaky.close()
    got = shards_state(shards)
    for i, rid in enumerate(ids()):
        has = (got[rid] or {}).get("partial")
        assert_eq(has, i if place(rid, 3) < 2 else None, "applied on shards 0 and 1 only")
    # the same batch again through the real router completes it; nothing is applied twice
    assert_eq(post(router, lines)[:1], (200,))
    assert post(ref, lines)[0] == 200
    assert_eq(shards_state(shards), signals_of(ref), "as one daemon after one batch")


def stats_data():
    """Dataset st (600 records) on both sides: a color filter with ties and 5% unscorable."""
    ref, shards, router = cluster()
    if "st" in _st:
        return ref, shards, router
    rng = np.random.default_rng(7)
    recs = []
    for i in range(600):
        sig = {"a": {"prior_nll": float(rng.integers(0, 50)),
                     "cond_nll": round(float(rng.random()) * 10, 1),
                     "tokens": int(rng.integers(1, 5))}}
        if rng.random() < 0.05:
            sig = {"other": 1}
        recs.append({"id": "st%04d" % i, "text": "t", "signals": sig})
    for d in (ref, router):
        assert_eq(d.put_dataset("st", {"spaces": {}})[0], 201)
        curate.wait_job(d, curate.put_filter(d, "st", "fa", {"type": "color",
                                                            "params": {"signal": "a"}}))
        st, _, body = d.ingest("st", recs)
        assert_eq((st, body["accepted"]), (200, 600), "ingest")
    scores = []
    for r in recs:
        st, _, x = ref.get_json("/v1/datasets/st/filters/fa/records/%s" % r["id"])
        assert_eq(st, 200)
        if x["score"] is not None and x["status"] == "scored":
            scores.append(x["score"])
    _st["st"] = np.array(scores, dtype=np.float64)
    return ref, shards, router


@test
def test_filter_stats_through_the_router_equal_one_daemon_and_numpy():
    ref, shards, router = stats_data()
    scores = _st["st"]
    assert all(s.get_json("/v1/datasets/st/filters/fa/stats")[2]["count"] > 0 for s in shards)
    for query in ("", "?bins=7&threshold=3.5", "?bins=1000", "?bins=4&lo=-20&hi=60"):
        st, _, one = ref.get_json("/v1/datasets/st/filters/fa/stats" + query)
        assert_eq(st, 200, one)
        st, _, via = router.get_json("/v1/datasets/st/filters/fa/stats" + query)
        assert_eq(st, 200, via)
        assert math.isclose(via.pop("mean"), one.pop("mean"), rel_tol=1e-12), query
        assert_eq(via, one, "stats%s" % query)
    st, _, via = router.get_json("/v1/datasets/st/filters/fa/stats?bins=7&threshold=3.5")
    assert_eq((via["count"], via["min"], via["max"]),
              (len(scores), scores.min(), scores.max()))
    assert_eq(via["at_or_above"], int((scores >= 3.5).sum()))
    qs = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99]
    want = np.quantile(scores, qs)
    got = [via["quantiles"]["%g" % q] for q in qs]
    assert np.allclose(got, want, rtol=0, atol=1e-9), (got, want.tolist())
    counts, edges = np.histogram(scores, bins=7)
    assert_eq(via["histogram"]["counts"], counts.tolist(), "numpy's histogram")
    assert np.allclose(via["histogram"]["edges"], edges, rtol=0, atol=1e-12)
    assert_eq(via["unscorable_by_reason"], {"no_field": 600 - len(scores)})
    for path, code in (("/v1/datasets/st/filters/nope/stats", 404),
                       ("/v1/datasets/st/filters/fa/stats?bins=0", 400),
                       ("/v1/datasets/st/filters/fa/stats?lo=1", 400)):
        for d in (ref, router):
            assert_problem(d.get_json(path), code)


def npy_bytes(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def multipart(parts):
    """parts: [(name, bytes)] -> (content type, body), as test_import.py builds them."""
    b = "wnb" + uuid.uuid4().hex
    out = []
    for name, data in parts:
        out.append(b"--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"f\"\r\n"
                   b"Content-Type: application/octet-stream\r\n\r\n" % (b.encode(),
                                                                         name.encode()))
        out.append(data)
        out.append(b"\r\n")
    out.append(b"--%s--\r\n" % b.encode())
    return "multipart/form-data; boundary=%s" % b, b"".join(out)


def post_import(d, ds, parts):
    ctype, body = multipart(parts)
    return d.json("POST", "/v1/datasets/%s/records:import" % ds, body, content_type=ctype)


@test
def test_import_through_the_router_equals_one_daemon():
    ref, shards, router = cluster()
    schema = {"spaces": {"image": {"dim": 8, "dtype": "f16"}, "text": {"dim": 5, "dtype": "f32"}}}
    for d in (ref, router):
        assert_eq(d.put_dataset("im", schema)[0], 201)
    rng = np.random.default_rng(11)
    n = 200
    metas = [{"id": "im-%d" % i, "text": "c %d" % i, "meta": {"n": i}} for i in range(n)]
    img = (rng.standard_normal((n, 8)) * 3).astype(np.float16)
    txt = rng.standard_normal((n, 5)).astype(np.float32)
    lines = [json.dumps(m) for m in metas]
    lines[10] = '{"id": "im-10", "text": '              # not JSON: shard 0 rejects it
    lines[50] = json.dumps({"id": "im-50", "text": 5})  # text not a string
    txt[120, 3] = np.nan                                 # row 120 not finite
    meta = ("\n".join(lines[:30]) + "\n  \n" + "\n".join(lines[30:]) + "\n").encode()
    parts = [("metadata", meta), ("space.image", npy_bytes(img)), ("space.text", npy_bytes(txt))]
    answers = [post_import(d, "im", parts) for d in (ref, router)]
    assert_eq(answers[0][0], 200, answers[0][2])
    assert_eq(answers[1][2], answers[0][2], "the router's answer is one daemon's")
    assert_eq([(e["line"], e["code"]) for e in answers[1][2]["errors"]],
              [(11, "malformed_json"), (51, "invalid_field"), (121, "non_finite")])
    assert "row 120:" in answers[1][2]["errors"][2]["detail"], answers[1][2]["errors"][2]
    assert_eq(answers[1][2]["accepted"], n - 3)
    on = set()
    for i, m in enumerate(metas):
        a = ref.get_record("im", m["id"])
        b = router.get_record("im", m["id"])
        for x in (a, b):
            x[2].pop("row" if x[0] == 200 else "request_id")  # its daemon's own
        assert_eq((b[0], b[2]), (a[0], a[2]), m["id"])
        if a[0] == 200:
            k = place(m["id"], 3)
            on.add(k)
            assert_eq(shards[k].get_record("im", m["id"])[0], 200, "on its shard")
            got = np.array(b[2]["embeddings"]["text"], dtype=np.float32)
            assert got.tobytes() == txt[i].tobytes(), m["id"]
    assert_eq(on, {0, 1, 2})
    # wrong as a whole: shard 0 answers as one daemon, nothing is stored
    for bad in ([("metadata", meta), ("space.text", npy_bytes(txt[:5]))],
                [("metadata", meta), ("space.nope", npy_bytes(txt))],
                [("space.text", npy_bytes(txt))],
                [("metadata", meta), ("space.text", npy_bytes(txt[:, :4].copy()))]):
        one, via = (post_import(d, "im", bad) for d in (ref, router))
        assert_eq((via[0], via[2]["code"]), (one[0], one[2]["code"]), bad[-1][0])
        assert 400 <= via[0] < 500, via
    assert_problem(post_import(router, "nosuch", parts), 404)
    assert_problem(router.json("POST", "/v1/datasets/im/records:import", b"x",
                               content_type="multipart/form-data; boundary=x"), 400)


if __name__ == "__main__":
    wn.main()
