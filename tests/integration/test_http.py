# SPDX-License-Identifier: MIT
"""Integration tests of the HTTP layer and operations: request ids, 404/405, body limit,
keep-alive, concurrency, /livez /readyz /metrics, the OpenAPI document, request logs,
graceful shutdown, `winnowd -n` and configuration sources."""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

import wn
from wn import assert_eq, assert_problem, test

daemon = wn.Shared()

CONTRACT_ROUTES = {
    "/livez": {"get"},
    "/readyz": {"get"},
    "/metrics": {"get"},
    "/v1/openapi.json": {"get"},
    "/v1/datasets": {"get"},
    "/v1/datasets/{name}": {"get", "put", "delete"},
    "/v1/datasets/{name}/records": {"post"},
    "/v1/datasets/{name}/records/{id}": {"get", "delete"},
    "/v1/datasets/{name}/records/{id}/decisions": {"get"},
    "/v1/datasets/{name}/filters": {"get"},
    "/v1/datasets/{name}/filters/{filter}": {"get", "put", "delete"},
    "/v1/datasets/{name}/filters/{filter}/stats": {"get"},
    "/v1/datasets/{name}/filters/{filter}:score": {"post"},
    "/v1/datasets/{name}/jobs": {"get"},
    "/v1/datasets/{name}/subsets": {"get"},
    "/v1/datasets/{name}/subsets/{subset}": {"get", "put", "delete"},
    "/v1/datasets/{name}/subsets/{subset}:export": {"get"},
    "/v1/datasets/{name}/indexes": {"get"},
    "/v1/datasets/{name}/indexes/{space}": {"get", "put", "delete"},
    "/v1/datasets/{name}/search": {"post"},
    "/v1/datasets/{name}/search:count": {"post"},
    "/v1/filter-types": {"get"},
    "/v1/jobs": {"get"},
    "/v1/jobs/{id}": {"get", "delete"},
}
RECORDS_ROUTE = "/v1/datasets/{name}/records"


def schema(dim=4):
    return {"spaces": {"v": {"dim": dim}}}


def record(rid, i=0):
    return {"id": rid, "text": "text %d" % i, "embeddings": {"v": [i, 0.5, -1.0, 2.0]}}


def ensure_dataset(d, name):
    st = d.put_dataset(name, schema())[0]
    assert st in (200, 201), st


# ---- request ids, routing ------------------------------------------------------------------
@test
def request_id_echoed_and_generated():
    d = daemon()
    st, hdrs, _ = d.request("GET", "/livez", headers={"X-Request-Id": "abc-123_X.y"})
    assert_eq((st, hdrs.get("x-request-id")), (200, "abc-123_X.y"), "echo")
    ids = set()
    for path in ("/livez", "/readyz", "/v1/datasets", "/nope"):
        rid = d.request("GET", path)[1].get("x-request-id")
        assert rid and len(rid) <= 128, "generated id for %s: %r" % (path, rid)
        ids.add(rid)
    assert_eq(len(ids), 4, "generated ids are distinct")
    long_id = "x" * 300
    rid = d.request("GET", "/livez", headers={"X-Request-Id": long_id})[1].get("x-request-id")
    assert rid and rid != long_id and len(rid) <= 128, "over-long id replaced: %r" % rid


@test
def unknown_route_is_404():
    d = daemon()
    for path in ("/", "/nope", "/v1", "/v2/datasets", "/v1/datasets/x/unknown",
                 "/livez/extra", "/v1/datasets/x/records-y"):
        assert_problem(d.request("GET", path), 404)


@test
def wrong_method_is_405_with_allow():
    d = daemon()
    cases = [("POST", "/livez", {"GET"}), ("DELETE", "/metrics", {"GET"}),
             ("PUT", "/v1/datasets", {"GET"}),
             ("PATCH", "/v1/datasets/x", {"GET", "PUT", "DELETE"}),
             ("GET", "/v1/datasets/x/records", {"POST"}),
             ("PUT", "/v1/datasets/x/records/y", {"GET", "DELETE", "PATCH"})]
    for method, path, allow in cases:
        resp = d.request(method, path, body=b"" if method in ("POST", "PUT", "PATCH") else None)
        try:
            assert_problem(resp, 405)
        except AssertionError as exc:
            raise AssertionError("%s %s: %s" % (method, path, exc)) from None
        got = {m.strip() for m in resp[1].get("allow", "").split(",") if m.strip()}
        assert_eq(got, allow, "Allow of %s %s" % (method, path))


# ---- body limit ----------------------------------------------------------------------------
def ndjson_of_size(n):
    head, tail = b'{"id": "big", "text": "', b'"}\n'
    return head + b"x" * (n - len(head) - len(tail)) + tail


def chunked(data, size=256):
    for i in range(0, len(data), size):
        yield data[i:i + size]


@test
def body_over_limit_is_413():
    with wn.Daemon(extra_args=["--body-limit", "1K"]) as d:
        ensure_dataset(d, "bl")
        path = "/v1/datasets/bl/records"
        st, _, body = d.json("POST", path, ndjson_of_size(1024),
                             content_type="application/x-ndjson")
        assert_eq((st, body["accepted"]), (200, 1), "1024 bytes accepted")
        for n in (1025, 2000, 64 * 1024):
            assert_problem(d.request("POST", path, ndjson_of_size(n),
                                     content_type="application/x-ndjson"), 413)
        big_schema = json.dumps({"spaces": {"s%02d" % i: {"dim": 1000 + i} for i in range(16)},
                                 "kinds": ["text"] * 100}).encode()
        assert len(big_schema) > 1024
        assert_problem(d.request("PUT", "/v1/datasets/bl2", big_schema,
                                 content_type="application/json"), 413)
        # Without Content-Length (chunked), the limit holds too.
        conn = d.connection()
        try:
            conn.request("POST", path, body=chunked(ndjson_of_size(4000)),
                         headers={"Content-Type": "application/x-ndjson"}, encode_chunked=True)
            resp = conn.getresponse()
            data = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        assert_problem((resp.status, hdrs, data), 413)
        assert_eq(d.get_json("/v1/datasets/bl")[2]["records"], 1, "nothing else written")
        assert_eq(d.get_json("/v1/datasets/bl2")[0], 404, "bl2 not created")
        assert_eq(d.request("GET", "/livez")[0], 200, "still serving")


# ---- connections ---------------------------------------------------------------------------
@test
def keep_alive_200_requests_on_one_connection():
    d = daemon()
    ensure_dataset(d, "ka")
    conn = d.connection()
    sock = None
    try:
        for i in range(200):
            step = i % 5
            if step == 0:
                st, hdrs, body = d.ingest("ka", [record("k%d" % i, i)], conn=conn)
                ok = st == 200 and body["accepted"] == 1
            elif step == 1:
                st, hdrs, body = d.get_record("ka", "k%d" % (i - 1), conn=conn)
                ok = st == 200 and body["id"] == "k%d" % (i - 1)
            elif step == 2:
                st, hdrs, body = d.json("GET", "/livez", conn=conn)
                ok = st == 200 and body == {"status": "ok"}
            elif step == 3:
                st, hdrs, body = d.json("GET", "/v1/datasets/ka", conn=conn)
                ok = st == 200 and body["records"] == i // 5 + 1
            else:
                st, hdrs, body = d.json("GET", "/v1/datasets/ka/records/missing", conn=conn)
                ok = st == 404
            assert ok, "request %d: %d %r" % (i, st, body)
            assert hdrs.get("connection", "").lower() != "close", "request %d closed" % i
            if sock is None:
                sock = conn.sock
            assert conn.sock is sock and sock is not None, "connection was reopened at %d" % i
    finally:
        conn.close()
    assert_eq(d.get_json("/v1/datasets/ka")[2]["records"], 40, "records")


@test
def concurrent_clients():
    d = daemon()
    ensure_dataset(d, "conc")
    nthreads, nreq = 8, 50
    failures = []

    def client(t):
        try:
            for i in range(nreq // 2):
                rid = "t%d-%d" % (t, i)
                st, _, body = d.ingest("conc", [record(rid, i)])
                if st != 200 or body["accepted"] != 1:
                    failures.append((rid, "POST", st, body))
                st, _, body = d.get_record("conc", rid)
                if st != 200 or body["id"] != rid or body["text"] != "text %d" % i:
                    failures.append((rid, "GET", st, body))
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append((t, "exception", repr(exc)))

    threads = [threading.Thread(target=client, args=(t,)) for t in range(nthreads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120 * wn.SLOW)
        assert not th.is_alive(), "client thread did not finish"
    assert not failures, failures[:5]
    assert_eq(d.get_json("/v1/datasets/conc")[2]["records"], nthreads * nreq // 2, "records")


@test
def idle_connection_closed_after_timeout():
    with wn.Daemon(extra_args=["--timeout", "1"]) as d:
        s = socket.create_connection((d.host, d.port), timeout=10 * wn.SLOW)
        try:
            t0 = time.monotonic()
            try:
                data = s.recv(1024)
            except ConnectionResetError:
                data = b""
            elapsed = time.monotonic() - t0
        finally:
            s.close()
        assert_eq(data, b"", "idle connection closed without data")
        assert 0.5 <= elapsed <= 5 * wn.SLOW, "closed after %.2fs with --timeout 1" % elapsed
        assert_eq(d.request("GET", "/livez")[0], 200, "still serving")


# ---- operations ----------------------------------------------------------------------------
@test
def livez_and_readyz():
    d = daemon()
    for path, want in (("/livez", {"status": "ok"}), ("/readyz", {"status": "ready"})):
        st, hdrs, body = d.json("GET", path)
        assert_eq((st, body), (200, want), path)
        assert_eq(hdrs.get("content-type", "").split(";")[0], "application/json", "type")


def parse_metrics(text):
    """[(name, {labels}, value)] of the sample lines; asserts every line is well formed."""
    out = []
    label_re = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([a-zA-Z_:][\w:]*)(\{.*\})?\s+(\S+)(\s+\d+)?", line)
        assert m, "bad metrics line %r" % line
        labels = dict(label_re.findall(m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def sample(samples, name, **labels):
    vals = [v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in labels.items())]
    assert len(vals) == 1, "%s %r: %d samples" % (name, labels, len(vals))
    return vals[0]


@test
def metrics_after_traffic():
    with wn.Daemon() as d:
        ensure_dataset(d, "m")
        good = [record("secret-id-%04d" % i, i) for i in range(7)]
        bad = [{"id": "secret-bad-%d" % i, "embeddings": {"v": [1.0]}} for i in range(3)]
        assert_eq(d.ingest("m", good[:4])[2]["accepted"], 4, "batch 1")
        assert_eq(d.ingest("m", good[4:] + bad[:2])[2]["accepted"], 3, "batch 2")
        assert_eq(d.ingest("m", bad[2:])[0], 422, "batch 3")
        for rid in ("secret-id-0001", "secret-id-0002"):
            assert_eq(d.get_record("m", rid)[0], 200, "GET " + rid)
        assert_eq(d.get_record("m", "secret-missing")[0], 404, "GET missing")
        assert_eq(d.request("GET", "/secret-path-xyz")[0], 404, "unknown route")
        # a request is counted when libmicrohttpd reports it complete, just after the client
        # has its answer: wait (bounded) until the last GET above is in the counters
        deadline = time.time() + 5 * wn.SLOW
        while True:
            hdrs, text = d.metrics()
            if any(n == "winnow_http_requests_total" and l.get("status") == "404" and
                   l.get("route", "").startswith("/v1/datasets/{name}/records/{id")
                   for n, l, _ in parse_metrics(text)) or time.time() > deadline:
                break
            time.sleep(0.02)
        ctype = hdrs.get("content-type", "")
        assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype
        assert "secret" not in text, "an id or raw path leaked into /metrics"
        for name, kind in (("winnow_http_requests_total", "counter"),
                           ("winnow_http_request_duration_seconds", "histogram"),
                           ("winnow_records_ingested_total", "counter"),
                           ("winnow_records_rejected_total", "counter"),
                           ("winnow_lmdb_used_bytes", "gauge"),
                           ("winnow_lmdb_map_size_bytes", "gauge"),
                           ("winnow_datasets", "gauge")):
            assert "# TYPE %s %s" % (name, kind) in text, "no TYPE line for " + name
        s = parse_metrics(text)
        req = "winnow_http_requests_total"
        assert_eq(sample(s, req, method="POST", route=RECORDS_ROUTE, status="200"), 2, "POST 200")
        assert_eq(sample(s, req, method="POST", route=RECORDS_ROUTE, status="422"), 1, "POST 422")
        assert_eq(sample(s, req, method="PUT", route="/v1/datasets/{name}", status="201"), 1,
                  "PUT 201")
        gets = [(l["route"], l["status"], v) for n, l, v in s
                if n == req and l.get("method") == "GET"
                and l.get("route", "").startswith("/v1/datasets/{name}/records/{id")]
        assert_eq(sorted((st, v) for _, st, v in gets), [("200", 2), ("404", 1)], "GET record")
        hist = "winnow_http_request_duration_seconds"
        lab = {"method": "POST", "route": RECORDS_ROUTE}
        assert_eq(sample(s, hist + "_count", **lab), 3, "histogram count")
        assert_eq(sample(s, hist + "_bucket", le="+Inf", **lab), 3, "+Inf bucket")
        assert sample(s, hist + "_sum", **lab) > 0, "histogram sum"
        buckets = sorted(((float(l["le"]), v) for n, l, v in s if n == hist + "_bucket"
                          and l.get("method") == "POST" and l.get("route") == RECORDS_ROUTE))
        counts = [v for _, v in buckets]
        assert_eq(counts, sorted(counts), "buckets are cumulative")
        assert_eq(sample(s, "winnow_records_ingested_total"), 7, "ingested")
        assert_eq(sample(s, "winnow_records_rejected_total"), 3, "rejected")
        used = sample(s, "winnow_lmdb_used_bytes")
        size = sample(s, "winnow_lmdb_map_size_bytes")
        assert 0 < used <= size, (used, size)
        assert_eq(sample(s, "winnow_datasets"), 1, "datasets")


@test
def openapi_lists_every_route():
    d = daemon()
    st, hdrs, doc = d.json("GET", "/v1/openapi.json")
    assert_eq(st, 200, "status")
    assert_eq(hdrs.get("content-type", "").split(";")[0], "application/json", "type")
    assert str(doc.get("openapi", "")).startswith("3.1"), doc.get("openapi")
    assert isinstance(doc.get("info"), dict) and doc["info"].get("title"), doc.get("info")
    paths = doc.get("paths", {})
    for path, methods in CONTRACT_ROUTES.items():
        assert path in paths, "path %s missing from openapi.json (has %s)" % (path, sorted(paths))
        have = {m for m in paths[path] if m in ("get", "put", "post", "delete", "patch", "head")}
        assert methods <= have, "%s: methods %s, expected %s" % (path, have, methods)
        for m in methods:
            assert paths[path][m].get("responses"), "%s %s has no responses" % (m, path)
    # Every operation: a unique operationId, tags from the declared list, a summary, and
    # every response either with content, a $ref, or a 204/304 (no content by definition).
    declared = {t["name"] for t in doc.get("tags", [])}
    seen = {}
    for path, item in paths.items():
        for m, op in item.items():
            if m not in ("get", "put", "post", "delete", "patch", "head"):
                continue
            where = "%s %s" % (m.upper(), path)
            oid = op.get("operationId")
            assert isinstance(oid, str) and re.fullmatch(r"[a-z][A-Za-z0-9]*", oid), \
                "%s: operationId %r is not camelCase" % (where, oid)
            assert oid not in seen, "operationId %s on both %s and %s" % (oid, seen[oid], where)
            seen[oid] = where
            tags = op.get("tags")
            assert tags and set(tags) <= declared, "%s: tags %r (declared %s)" % (
                where, tags, sorted(declared))
            assert op.get("summary"), "%s has no summary" % where
            for st, r in op["responses"].items():
                if st.startswith("4"):
                    assert r.get("$ref") == "#/components/responses/Problem" or \
                        "application/problem+json" in r.get("content", {}), \
                        "%s %s is not a problem" % (where, st)
                assert st in ("204", "304") or "$ref" in r or r.get("content"), \
                    "%s %s has no content" % (where, st)
    assert len(seen) >= sum(len(v) for v in CONTRACT_ROUTES.values()), len(seen)


@test
def openapi_check_catches_mismatches():
    """The response validator wn.Daemon.request runs is not a no-op: it rejects a wrong
    value, a missing required property, an undocumented status and Content-Type, naming
    the JSON pointer; and it accepts what the daemon really answers."""
    import openapi_check as oc
    ok = {"content-type": "application/json"}
    oc.check_one("GET", "/livez", 200, ok, b'{"status": "ok"}')
    job = {"id": "7", "kind": "score", "dataset": "d", "target": "f", "state": "running",
           "processed": 5, "total": 10, "rate_per_s": None, "eta_s": 1.5,
           "created": "2026-01-01T00:00:00Z", "started": None, "finished": None,
           "error": None, "resumes": 0, "warnings": []}
    oc.check_one("GET", "/v1/jobs/7", 200, ok, json.dumps(job).encode())
    cases = [
        (("GET", "/livez", 200, ok, b'{"status": "no"}'), "/status"),
        (("GET", "/v1/jobs/7", 200, ok, json.dumps(dict(job, kind="nope")).encode()), "/kind"),
        (("GET", "/v1/jobs/7", 200, ok, json.dumps(dict(job, resumes=-1)).encode()),
         "/resumes: -1 < minimum 0"),
        (("GET", "/v1/jobs/7", 200, ok,
          json.dumps({k: v for k, v in job.items() if k != "state"}).encode()),
         "/state: required property missing"),
        (("GET", "/v1/datasets/x/filters/f/stats", 299, ok, b'{}'), "status 299"),
        (("GET", "/livez", 200, {"content-type": "text/html"}, b"<p>"), "text/html"),
        (("GET", "/no/such/route", 404, ok, b'{}'), "application/json"),
        (("GET", "/no/such/route", 404, {"content-type": "application/problem+json"},
          b'{"type": "about:blank", "title": "Not found", "status": 404, "detail": "x"}'),
         "/code"),
        (("DELETE", "/v1/datasets/x", 204, ok, b'{}'), "without content"),
    ]
    for args, want in cases:
        try:
            oc.check_one(*args)
        except oc.OpenAPIMismatch as e:
            assert want in str(e), (want, str(e))
        else:
            raise AssertionError("no mismatch for %r" % (args,))
    # the ':verb' templates win over the plain parameter they also match
    assert_eq(oc.match_path("/v1/datasets/a/filters/b:score?x=1"),
              "/v1/datasets/{name}/filters/{filter}:score", "template")
    assert_eq(oc.match_path("/v1/datasets/a/filters/b"), "/v1/datasets/{name}/filters/{filter}",
              "template")
    assert_eq(oc.errors(3, {"type": ["integer", "null"], "maximum": 2}), [("/", "3 > maximum 2")],
              "maximum")
    assert_eq(oc.errors(None, {"type": ["integer", "null"]}), [], "nullable")
    assert_eq(oc.errors({"a": [1, "x"]}, {"properties": {"a": {"items": {"type": "integer"}}}}),
              [("/a/1", 'expected type integer, got "x"')], "pointer")


@test
def request_log_lines():
    d = daemon()
    d.request("GET", "/v1/datasets/no-such-ds", headers={"X-Request-Id": "log-probe-1"})

    def is_probe(line):
        f = wn.logfmt(line)
        return f.get("event") == "request" and f.get("request_id") == "log-probe-1"

    line = d.wait_for_line(is_probe, timeout=10)
    assert line is not None, "no event=request line with request_id=log-probe-1"
    f = wn.logfmt(line)
    assert_eq((f.get("method"), f.get("route"), f.get("status")),
              ("GET", "/v1/datasets/{name}", "404"), "request log fields")
    assert float(f.get("duration_ms", "-1")) >= 0, line
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", f.get("ts", "")), line
    assert f.get("level") in ("debug", "info", "warn", "error"), line


# ---- shutdown ------------------------------------------------------------------------------
@test
def sigterm_and_sigint_exit_0():
    for sig in (signal.SIGTERM, signal.SIGINT):
        with wn.Daemon() as d:
            assert_eq(d.request("GET", "/livez")[0], 200, "livez")
            assert_eq(d.stop(sig), 0, "exit code")
            assert d.events("stopped"), "no event=stopped line:\n" + d.tail()
            assert not d.running()


def blocked_signals(pid, tid):
    with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
        m = re.search(r"(?m)^SigBlk:\s*([0-9a-fA-F]+)", f.read())
    return int(m.group(1), 16)


@test
def every_thread_blocks_or_forwards_shutdown_signals():
    """SIGTERM/SIGINT/SIGHUP must end in main()'s sigwait(): a thread that leaves them
    unblocked (OpenBLAS starts one before main) takes the signal, so the process must catch
    them (a handler that forwards to main) rather than die by the default action."""
    d = daemon()
    pid = d.proc.pid
    with open("/proc/%d/status" % pid) as f:
        caught = int([l for l in f if l.startswith("SigCgt:")][0].split()[1], 16)
    bad = []
    for tid in sorted(os.listdir("/proc/%d/task" % pid)):
        if int(tid) == pid:
            continue  # main: sigwait() unblocks the set it waits for while it waits
        try:
            mask = blocked_signals(pid, tid)
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                comm = f.read().strip()
        except OSError:
            continue  # the thread ended meanwhile
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
            bit = 1 << (sig - 1)
            if not mask & bit and not caught & bit:
                bad.append("thread %s (%s) neither blocks nor catches %s"
                           % (tid, comm, sig.name))
    assert not bad, "; ".join(bad)


@test
def sigterm_always_shuts_down_cleanly():
    """The behaviour the mask exists for: repeated starts, each stopped by SIGTERM at once,
    all exit 0 through the clean shutdown (event=stopped)."""
    for i in range(8):
        with wn.Daemon() as d:
            assert_eq(d.request("GET", "/livez")[0], 200, "serving")
            code = d.stop()
            assert_eq(code, 0, "exit code of run %d" % i)
            assert d.events("stopped"), "no event=stopped in run %d" % i


@test
def sighup_does_not_stop_the_daemon():
    with wn.Daemon() as d:
        for _ in range(3):
            d.proc.send_signal(signal.SIGHUP)
            time.sleep(0.1)
        assert d.running(), "SIGHUP ended winnowd:\n" + d.tail()
        assert_eq(d.request("GET", "/livez")[0], 200, "still serving")


def raw_post(d, path, body, ctype):
    """A socket with the request line, headers and the first half of body already sent."""
    s = socket.create_connection((d.host, d.port), timeout=wn.HTTP_TIMEOUT)
    head = ("POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            "\r\n" % (path, d.host, d.port, ctype, len(body))).encode()
    half = len(body) // 2
    s.sendall(head + body[:half])
    return s, body[half:]


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    need = int(m.group(1)) if m else 0
    while len(rest) < need:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, rest


@test
def sigterm_finishes_in_flight_request():
    with wn.Daemon() as d:
        ensure_dataset(d, "inflight")
        recs = [record("f%d" % i, i) for i in range(500)]
        s, rest = raw_post(d, "/v1/datasets/inflight/records", wn.ndjson(recs),
                           "application/x-ndjson")
        try:
            time.sleep(0.3 * wn.SLOW)
            d.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3 * wn.SLOW)
            # A new client is refused or told 503 while shutting down, never served.
            probe = http.client.HTTPConnection(d.host, d.port, timeout=2 * wn.SLOW)
            try:
                probe.request("GET", "/v1/datasets")
                st = probe.getresponse().status
                assert st == 503, "new request during shutdown got %d" % st
            except OSError:
                pass
            finally:
                probe.close()
            s.sendall(rest)
            status, body = read_response(s)
        finally:
            s.close()
        assert_eq(status, 200, "in-flight request status (body %r)" % body[:200])
        assert_eq(json.loads(body)["accepted"], 500, "accepted")
        d.check_clean(d.wait(30 * wn.SLOW))
        d.start()
        assert_eq(d.get_json("/v1/datasets/inflight")[2]["records"], 500, "after restart")


# ---- command line and configuration ---------------------------------------------------------
def run_winnowd(args, env=None, timeout=30):
    """Run winnowd to completion (for -n and friends); no sanitizer report allowed."""
    r = subprocess.run([wn.WINNOWD] + args, stdin=subprocess.DEVNULL, capture_output=True,
                       env=wn.child_env(env), timeout=timeout * wn.SLOW)
    bad = wn.sanitizer_text(r.stderr.decode("utf-8", "replace").splitlines())
    assert not bad, "sanitizer report from winnowd %s:\n%s" % (" ".join(args), "\n".join(bad))
    return r


def config_value(text, key):
    m = re.search(r'(?m)^\s*"?%s"?\s*[=:]\s*"?([^"\s,]*)' % re.escape(key), text)
    return m.group(1) if m else None


@test
def check_config_flag():
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        r = run_winnowd(["-n", "--listen", "127.0.0.1:0", "--data-dir", data,
                         "--threads", "3", "--body-limit", "2M"])
        out = r.stdout.decode()
        assert_eq(r.returncode, 0, "exit code (stderr %r)" % r.stderr[-300:])
        assert_eq(config_value(out, "listen"), "127.0.0.1:0", "listen in -n output:\n" + out)
        assert_eq(config_value(out, "data-dir"), data, "data-dir in -n output")
        assert_eq(config_value(out, "threads"), "3", "threads in -n output")
        for bad in (["--threads", "x"], ["--listen", "nowhere"], ["--log-level", "loud"],
                    ["--body-limit", "12Q"], ["--no-such-flag"]):
            r = run_winnowd(["-n", "--data-dir", data] + bad)
            assert_eq(r.returncode, 2, "exit code of -n %s" % " ".join(bad))
            assert r.stderr.strip(), "no message on stderr for %s" % bad
        r = run_winnowd(["-n", "--data-dir", data, "--threads", "x"])
        assert "threads" in r.stderr.decode(), r.stderr
        r = run_winnowd(["--help"])
        assert_eq(r.returncode, 0, "--help exit code")
        assert "--listen" in (r.stdout + r.stderr).decode(), "usage names --listen"


@test
def config_precedence():
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "winnow.conf")
        with open(conf, "w") as f:
            f.write("# a comment\n\nthreads = 3\nlisten = 127.0.0.1:7001\n"
                    "data-dir = %s/fromfile\n" % tmp)
        r = run_winnowd(["-n", "--config", conf])
        out = r.stdout.decode()
        assert_eq(r.returncode, 0, "exit code (stderr %r)" % r.stderr[-300:])
        assert_eq((config_value(out, "threads"), config_value(out, "listen"),
                   config_value(out, "data-dir")), ("3", "127.0.0.1:7001", tmp + "/fromfile"),
                  "config file values")
        env = {"WINNOW_THREADS": "4", "WINNOW_DATA_DIR": tmp + "/fromenv"}
        out = run_winnowd(["-n", "--config", conf], env).stdout.decode()
        assert_eq((config_value(out, "threads"), config_value(out, "data-dir")),
                  ("4", tmp + "/fromenv"), "env over file")
        out = run_winnowd(["-n", "--config", conf, "--threads", "5"], env).stdout.decode()
        assert_eq(config_value(out, "threads"), "5", "flag over env")
        env["WINNOW_CONFIG"] = conf
        out = run_winnowd(["-n"], env).stdout.decode()
        assert_eq(config_value(out, "listen"), "127.0.0.1:7001", "WINNOW_CONFIG")
        bad = os.path.join(tmp, "bad.conf")
        with open(bad, "w") as f:
            f.write("threads = 2\n# fine so far\nbogus-key = 1\n")
        r = run_winnowd(["-n", "--config", bad])
        assert_eq(r.returncode, 2, "unknown key in the config file")
        assert "bogus-key" in r.stderr.decode(), r.stderr
        r = run_winnowd(["-n", "--config", os.path.join(tmp, "missing.conf")])
        assert_eq(r.returncode, 2, "missing config file")


def ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


@test
def ipv6_loopback_listen():
    if not ipv6_loopback():
        print("note: no IPv6 loopback here; [::1] check not run")
        return
    with wn.Daemon(listen="[::1]:0") as d:
        assert_eq(d.host, "::1", "host from the listening line")
        assert_eq(d.json("GET", "/livez")[2], {"status": "ok"}, "livez over IPv6")
        assert_eq(d.put_dataset("v6", schema())[0], 201, "a write from ::1 (loopback)")


@test
def winnow_listen_env_is_respected():
    with wn.Daemon(listen=None, env={"WINNOW_LISTEN": "127.0.0.1:0"}) as d:
        assert d.host == "127.0.0.1" and d.port > 0, (d.host, d.port)
        assert_eq(d.json("GET", "/livez")[2], {"status": "ok"}, "livez")
        assert_eq(d.put_dataset("envds", schema())[0], 201, "create")


if __name__ == "__main__":
    wn.main()
