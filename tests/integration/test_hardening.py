# SPDX-License-Identifier: MIT
"""Integration tests of the daemon's defences (issue 16): one daemon per port and per data
directory, bounded request memory, per-address connection caps and request deadlines,
TLS, and path hygiene."""

import json
import os
import socket
import subprocess
import tempfile
import time

import wn
from wn import assert_eq, assert_problem, test


def run_second(argv, timeout=30):
    """Run a winnowd that should refuse to start; (exit code, stderr text)."""
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       env=wn.child_env(), timeout=timeout * wn.SLOW)
    return r.returncode, r.stderr.decode("utf-8", "replace")


@test
def a_second_daemon_on_the_same_data_directory_exits():
    with wn.Daemon() as d:
        code, err = run_second([wn.WINNOWD, "--listen", "127.0.0.1:0", "--data-dir", d.data_dir])
        assert code != 0, "second daemon on the same data directory exited 0:\n" + err
        assert "in use by another winnowd" in err and d.data_dir in err, err
        assert "pid %d" % d.proc.pid in err, "the holder's pid is not named:\n" + err
        # the first one still serves, and its data directory is untouched by the attempt
        assert_eq(d.request("GET", "/readyz")[0], 200, "first daemon after the attempt")
    # the lock goes with the process: a restart on the same directory works
    with wn.Daemon() as d:
        d.stop()
        d.start()
        assert_eq(d.request("GET", "/livez")[0], 200, "restart on the same directory")


@test
def a_second_daemon_on_a_busy_port_exits():
    with wn.Daemon() as d:
        other = tempfile.mkdtemp(prefix="winnow-port-")
        try:
            code, err = run_second([wn.WINNOWD, "--listen", "127.0.0.1:%d" % d.port,
                                    "--data-dir", other])
        finally:
            subprocess.run(["rm", "-rf", other])
        assert code != 0, "second daemon on a busy port exited 0:\n" + err
        assert "cannot listen on 127.0.0.1:%d" % d.port in err, err
        assert "in use" in err, err
        # every request still reaches the one daemon that holds the port
        for _ in range(6):
            assert_eq(d.request("GET", "/livez")[0], 200, "first daemon")


# ---- path hygiene, media types, duplicate keys ------------------------------------------------


@test
def nul_and_non_utf8_path_segments_are_400():
    with wn.Daemon() as d:
        assert_eq(d.put_dataset("ab", {"spaces": {"v": {"dim": 2}}})[0], 201, "create ab")
        st, _, body = d.ingest("ab", [{"id": "\u00e9t\u00e9", "embeddings": {"v": [1.0, 0.0]}}])
        assert_eq((st, body["accepted"]), (200, 1), "ingest a UTF-8 id")
        for path in ("/v1/datasets/ab%00x", "/v1/datasets/ab%00", "/v1/datasets/%FF",
                     "/v1/datasets/ab/records/%C0%AF",        # overlong '/'
                     "/v1/datasets/ab/records/%ED%A0%80",     # a UTF-16 surrogate
                     "/v1/datasets/ab/records/x%F4%90%80%80",  # past U+10FFFF
                     "/v1/datasets/ab/records/%E2%82"):       # cut short
            p = assert_problem(d.request("DELETE", path), 400, "invalid_path")
            assert "NUL" in p["detail"], p
            assert_problem(d.request("GET", path), 400, "invalid_path")
        # nothing was deleted; a clean UTF-8 id still resolves
        assert_eq(d.get_json("/v1/datasets/ab")[2]["records"], 1, "ab untouched")
        st, _, rec = d.get_record("ab", "\u00e9t\u00e9")
        assert_eq((st, rec["id"]), (200, "\u00e9t\u00e9"), "UTF-8 id by its percent-encoding")
        # a % that is not an escape is left as it is, as libmicrohttpd does
        assert_problem(d.request("GET", "/v1/datasets/ab/records/100%zz"), 404)


@test
def dataset_put_needs_json_and_duplicate_keys_are_400():
    with wn.Daemon() as d:
        schema = json.dumps({"spaces": {"v": {"dim": 2}}})
        for ct in ("text/plain", "application/x-www-form-urlencoded", None):
            p = assert_problem(d.request("PUT", "/v1/datasets/m", schema, content_type=ct), 415,
                               "unsupported_media_type")
            assert (ct or "(none)") in p["detail"], p
        assert_eq(d.get_json("/v1/datasets/m")[0], 404, "no dataset from a 415")
        dup = '{"spaces": {"v": {"dim": 2}}, "spaces": {"w": {"dim": 3}}}'
        assert_problem(d.request("PUT", "/v1/datasets/m", dup, content_type="application/json"),
                       400, "malformed_json")
        inner = '{"spaces": {"v": {"dim": 2, "dim": 3}}}'
        assert_problem(d.request("PUT", "/v1/datasets/m", inner, content_type="application/json"),
                       400, "malformed_json")
        assert_eq(d.get_json("/v1/datasets/m")[0], 404, "no dataset from a duplicate key")
        assert_eq(d.put_dataset("m", {"spaces": {"v": {"dim": 2}}})[0], 201, "clean schema")
        d.ingest("m", [{"id": "a", "embeddings": {"v": [1.0, 0.0]}}])
        body = '{"vector": [1, 0], "space": "v", "limit": 1, "limit": 5}'
        assert_problem(d.request("POST", "/v1/datasets/m/search", body,
                                 content_type="application/json"), 400, "malformed_json")


# ---- body limits and the memory budget -------------------------------------------------------


def one_record_dataset(d, name, dim):
    assert_eq(d.put_dataset(name, {"spaces": {"v": {"dim": dim}}})[0], 201, "create " + name)


@test
def route_body_limits_name_their_flag():
    import numpy as np
    with wn.Daemon() as d:
        # the default search limit takes 1,024 raw rows of 4,096 float32 (16 MiB)
        dim = 4096
        one_record_dataset(d, "big", dim)
        rng = np.random.default_rng(7)
        x = rng.standard_normal((3, dim)).astype(np.float32)
        st, _, body = d.ingest("big", [{"id": "r%d" % i, "embeddings": {"v": x[i].tolist()}}
                                       for i in range(3)])
        assert_eq((st, body["accepted"]), (200, 3), "ingest")
        q = rng.standard_normal((1024, dim)).astype(np.float32)
        st, _, res = d.json("POST", "/v1/datasets/big/search?space=v&limit=1", q.tobytes(),
                            content_type="application/octet-stream")
        assert_eq(st, 200, "16 MiB of rows: %r" % (res if st != 200 else ""))
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        want = ["r%d" % i for i in np.argmax(qn @ xn.T, axis=1)]
        assert_eq([a["results"][0]["id"] for a in res["queries"]], want, "top-1 of each row")
        # one row more is over it, answered from the headers, before the body is read
        s = hold_request(d, "/v1/datasets/big/search?space=v", (1024 + 1) * dim * 4)
        try:
            st, hdrs, data = read_response(s)
        finally:
            s.close()
        p = assert_problem((st, hdrs, data), 413, "body_too_large")
        assert "16777216" in p["detail"] and "--search-body-limit" in p["detail"], p
        # definitions: 1 MiB
        s = hold_request(d, "/v1/datasets/big/filters/f", (1 << 20) + 1, "application/json",
                         "PUT")
        try:
            st, hdrs, data = read_response(s)
        finally:
            s.close()
        p = assert_problem((st, hdrs, data), 413, "body_too_large")
        assert "1048576" in p["detail"] and "--definition-body-limit" in p["detail"], p
        # an unknown route with a body over the limit: 413 at once too, not a read-and-drop 404
        s = hold_request(d, "/v1/no/such/route", 1 << 30, "application/json")
        try:
            st, hdrs, data = read_response(s)
        finally:
            s.close()
        assert_problem((st, hdrs, data), 413, "body_too_large")
    # the flags move them; --body-limit stays the ceiling of every route
    with wn.Daemon(extra_args=["--search-body-limit", "4K", "--definition-body-limit", "1K",
                               "--body-limit", "2K"]) as d:
        one_record_dataset(d, "s", 2)
        p = assert_problem(d.request("POST", "/v1/datasets/s/search", "[" + "0," * 1200 + "0]",
                                     content_type="application/json"), 413, "body_too_large")
        assert "2048" in p["detail"] and "--body-limit" in p["detail"], p
        p = assert_problem(d.request("PUT", "/v1/datasets/s/filters/f", "x" * 1025,
                                     content_type="application/json"), 413, "body_too_large")
        assert "1024" in p["detail"] and "--definition-body-limit" in p["detail"], p
        st, _, _ = d.request("PUT", "/v1/datasets/s/filters/f", "x" * 1024,
                             content_type="application/json")
        assert_eq(st, 400, "1 KiB definition reaches the handler (not JSON)")


def hold_request(d, path, length, ctype="application/octet-stream", method="POST"):
    """A request whose headers declare length body bytes, of which none are sent yet."""
    s = socket.create_connection((d.host, d.port), timeout=10 * wn.SLOW)
    s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
               % (method, path, ctype, length)).encode())
    return s


def read_response(s):
    """(status, headers, body) of one HTTP/1.1 response on socket s, read to its end."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    n = int(hdrs.get("content-length", "0"))
    while len(body) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, hdrs, body


@test
def memory_budget_refuses_with_503_and_retry_after():
    with wn.Daemon(extra_args=["--memory-limit", "1M"]) as d:
        one_record_dataset(d, "m", 2)
        d.ingest("m", [{"id": "a", "embeddings": {"v": [1.0, 0.0]}}])
        path = "/v1/datasets/m/search?space=v&limit=1"
        # raw rows are charged twice their size: 300 KB holds 600 KB of the 1 MiB
        held = hold_request(d, path, 300 * 1024)
        try:
            time.sleep(0.2 * wn.SLOW)
            st, hdrs, body = d.request("POST", path, b"\0" * (300 * 1024),
                                       content_type="application/octet-stream")
            p = assert_problem((st, hdrs, body), 503, "overloaded")
            assert_eq(hdrs.get("retry-after"), "1", "Retry-After")
            assert "--memory-limit" in p["detail"] and "1048576" in p["detail"], p
            # what fits beside it still runs
            st, _, res = d.json("POST", path, b"\0\0\x80\x3f" * 2,
                                content_type="application/octet-stream")
            assert_eq((st, res["queries"][0]["results"][0]["id"]), (200, "a"), "small search")
            # the held request finishes (its rows are zero vectors: 422), and frees its share
            held.sendall(b"\0" * (300 * 1024))
            st, _, _ = read_response(held)
            assert_eq(st, 422, "the held request's answer")
        finally:
            held.close()
        time.sleep(0.1 * wn.SLOW)
        st, _, _ = d.request("POST", path, b"\0" * (300 * 1024),
                             content_type="application/octet-stream")
        assert_eq(st, 422, "the same body once the budget is free (zero rows: 422)")
        # JSON is charged 25 times its size: 50 KB of JSON does not fit in 1 MiB
        body = '{"vector": [' + ",".join(["0.5"] * 12800) + '], "space": "v"}'
        assert_problem(d.request("POST", "/v1/datasets/m/search", body,
                                 content_type="application/json"), 503, "overloaded")
        # nor chunked (no Content-Length): refused once its parse is charged
        conn = d.connection()
        try:
            conn.request("POST", "/v1/datasets/m/search", body=iter([body.encode()]),
                         headers={"Content-Type": "application/json"}, encode_chunked=True)
            resp = conn.getresponse()
            data = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        assert_problem((resp.status, hdrs, data), 503, "overloaded")
        # and 30 KB of JSON (750 KB charged) does
        small = '{"vector": [1' + ",0" * 1 + '], "space": "v", "limit": 1, "pad": "' + \
            "x" * 30000 + '"}'
        st, _, _ = d.request("POST", "/v1/datasets/m/search", small,
                             content_type="application/json")
        assert st != 503 and st != 413, st


# ---- connection exhaustion ---------------------------------------------------------------------


def write_keys(tmp):
    keys = os.path.join(tmp, "keys")
    r = subprocess.run([wn.WINNOWD, "hash-key", "--scope", "read", "--name", "probe",
                        "probe-key-123"], capture_output=True, env=wn.child_env(),
                       timeout=30 * wn.SLOW)
    assert_eq(r.returncode, 0, "hash-key")
    with open(keys, "w") as f:
        f.write(r.stdout.decode())
    r = subprocess.run([wn.WINNOWD, "hash-key", "--scope", "admin", "--name", "admin",
                        "admin-key-123"], capture_output=True, env=wn.child_env(),
                       timeout=30 * wn.SLOW)
    with open(keys, "a") as f:
        f.write(r.stdout.decode())
    return keys


def timed_request(d, method, path, body=None, headers=None, source="127.0.0.2"):
    """One request from source on a fresh connection: (status, seconds)."""
    import http.client
    t0 = time.monotonic()
    c = http.client.HTTPConnection(d.host, d.port, timeout=5 * wn.SLOW,
                                   source_address=(source, 0))
    try:
        hdrs = dict(headers or {})
        if body is not None:
            body = json.dumps(body)
            hdrs["Content-Type"] = "application/json"
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        r.read()
        return r.status, time.monotonic() - t0
    finally:
        c.close()


@test
def slowloris_is_capped_per_address_and_cut_at_the_deadline():
    import selectors
    tmp = tempfile.mkdtemp(prefix="winnow-slow-")
    keys = write_keys(tmp)
    read = {"Authorization": "Bearer probe-key-123"}
    admin = {"Authorization": "Bearer admin-key-123"}
    deadline = 3
    with wn.Daemon(api_keys=keys, log_level="info",
                   extra_args=["--request-timeout", str(deadline)]) as d:
        assert_eq(d.put_dataset("s", {"spaces": {"v": {"dim": 2}}}, headers=admin)[0], 201, "ds")
        d.ingest("s", [{"id": "a", "embeddings": {"v": [1.0, 0.0]}},
                       {"id": "b", "embeddings": {"v": [0.0, 1.0]}}], headers=admin)
        sel = selectors.DefaultSelector()
        socks = {}  # socket -> [source, t_connect, t_closed]
        plan = [("127.0.0.3", 300), ("127.0.0.4", 50), ("127.0.0.5", 50)]
        t_start = time.monotonic()
        for source, n in plan:
            for _ in range(n):
                s = socket.socket()
                s.bind((source, 0))
                s.settimeout(5 * wn.SLOW)
                s.connect((d.host, d.port))
                s.setblocking(False)
                try:
                    s.send(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
                except OSError:
                    pass
                socks[s] = [source, time.monotonic(), None]
                sel.register(s, selectors.EVENT_READ)
        probes = []
        try:
            end = t_start + deadline + 3 * wn.SLOW
            last_trickle = 0.0
            while time.monotonic() < end:
                now = time.monotonic()
                if now - last_trickle >= 0.5:  # one header byte a connection, every 0.5 s
                    last_trickle = now
                    for s, st in socks.items():
                        if st[2] is None:
                            try:
                                s.send(b"X")
                            except OSError:
                                pass
                    probes.append(("livez",) + timed_request(d, "GET", "/livez"))
                    probes.append(("search",) + timed_request(
                        d, "POST", "/v1/datasets/s/search",
                        {"vector": [1, 0], "space": "v", "limit": 1}, read))
                for key, _ in sel.select(timeout=0.05):
                    s = key.fileobj
                    try:
                        data = s.recv(4096)
                    except OSError:
                        data = b""
                    if not data and socks[s][2] is None:
                        socks[s][2] = time.monotonic()
                        sel.unregister(s)
        finally:
            for s in socks:
                s.close()
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
        # every probe answered, each within 100 ms (3x that under the sanitizers)
        assert len(probes) >= 2 * deadline, probes
        slow = [p for p in probes if p[1] != 200 or p[2] > 0.1 * wn.SLOW]
        assert not slow, "probes not answered within 100 ms: %r" % slow[:10]
        print("note: %d probes during the run, slowest %.1f ms"
              % (len(probes), 1e3 * max(p[2] for p in probes)))
        # per address: beyond 64, closed at once; the 64 admitted are cut at the deadline
        for source, n in plan:
            mine = [v for v in socks.values() if v[0] == source]
            life = sorted((v[2] - v[1]) if v[2] is not None else 1e9 for v in mine)
            at_once = sum(1 for x in life if x < 1.0)
            cut = [x for x in life if x >= 1.0]
            assert_eq(at_once, max(0, n - 64), "closed at once from %s" % source)
            assert_eq(len(cut), min(n, 64), "admitted from %s" % source)
            assert all(deadline - 0.5 <= x <= deadline + 2.0 * wn.SLOW for x in cut), \
                "admitted connections from %s not cut at %d s: %r" % (source, deadline, cut)
        assert d.events("request_timeout"), "no request_timeout log line"


# ---- TLS ---------------------------------------------------------------------------------------


def make_cert(tmp, name):
    """A self-signed certificate for 127.0.0.1 and its key: (cert path, key path)."""
    cert, key = os.path.join(tmp, name + ".crt"), os.path.join(tmp, name + ".key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=" + name,
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       capture_output=True, timeout=60)
    assert_eq(r.returncode, 0, "openssl req: %r" % r.stderr[-300:])
    return cert, key


def curl(url, ca):
    """(curl exit code, HTTP status, body) for GET url trusting only the CA file ca."""
    r = subprocess.run(["curl", "-sS", "--max-time", str(10 * wn.SLOW), "--cacert", ca,
                        "-w", "\n%{http_code}", url], capture_output=True, timeout=60 * wn.SLOW)
    out = r.stdout.decode()
    body, _, code = out.rpartition("\n")
    return r.returncode, code, body


def install(src_cert, src_key, cert, key):
    """Replace the served files the way a certificate renewal does (rename into place)."""
    for src, dst in ((src_cert, cert), (src_key, key)):
        with open(src, "rb") as f:
            data = f.read()
        with open(dst + ".new", "wb") as f:
            f.write(data)
        os.replace(dst + ".new", dst)


@test
def https_with_a_certificate_reloaded_on_sighup():
    import shutil
    import signal
    tmp = tempfile.mkdtemp(prefix="winnow-tls-")
    try:
        c1, k1 = make_cert(tmp, "first")
        c2, k2 = make_cert(tmp, "second")
        cert, key = os.path.join(tmp, "server.crt"), os.path.join(tmp, "server.key")
        install(c1, k1, cert, key)
        with wn.Daemon(extra_args=["--tls-cert", cert, "--tls-key", key], tls_ca=c1) as d:
            url = "https://127.0.0.1:%d/livez" % d.port
            assert_eq(curl(url, c1), (0, "200", '{"status":"ok"}'), "curl over HTTPS")
            code, _, _ = curl(url, c2)
            assert_eq(code, 60, "curl trusting only the second certificate, before the reload")
            r = subprocess.run(["curl", "-sS", "--max-time", "5", "http://127.0.0.1:%d/livez"
                                % d.port], capture_output=True, timeout=30)
            assert r.returncode != 0, "plain HTTP answered on the TLS port"
            kept = d.connection()  # a connection from before the reload keeps its session
            kept.request("GET", "/livez")
            assert_eq(kept.getresponse().read(), b'{"status":"ok"}', "first request on kept")

            install(c2, k2, cert, key)
            d.proc.send_signal(signal.SIGHUP)
            assert d.wait_for_line(lambda l: "event=tls_reload" in l), d.tail()
            assert_eq(curl(url, c2), (0, "200", '{"status":"ok"}'), "curl after the reload")
            code, _, _ = curl(url, c1)
            assert_eq(code, 60, "the first certificate is no longer served")
            kept.request("GET", "/livez")
            assert_eq(kept.getresponse().read(), b'{"status":"ok"}', "kept connection")
            kept.close()

            # a broken file: logged, and the certificate in use stays
            with open(cert, "w") as f:
                f.write("not a certificate\n")
            d.proc.send_signal(signal.SIGHUP)
            line = d.wait_for_line(lambda l: "event=tls_reload" in l and "level=error" in l)
            assert line is not None and "kept the old certificate" in line, d.tail()
            assert_eq(curl(url, c2)[:2], (0, "200"), "still the second certificate")
        # start-up errors: exit non-zero with the reason
        for args, what in ((["--tls-cert", c1], "--tls-key"),
                           (["--tls-cert", c1, "--tls-key", k2], "does not belong"),
                           (["--tls-cert", os.path.join(tmp, "none"), "--tls-key", k1],
                            "cannot read TLS certificate")):
            code, err = run_second([wn.WINNOWD, "--listen", "127.0.0.1:0", "--data-dir",
                                    os.path.join(tmp, "data")] + args)
            assert code != 0, "started with %r" % args
            assert what in err, err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    wn.main()
