# SPDX-License-Identifier: MIT
"""Integration tests of API keys: `winnowd hash-key`, 401 / 403 problems, read and admin
scopes, open /livez and /readyz, and the loopback-only default without a keys file."""

import hashlib
import http.client
import os
import socket
import subprocess
import tempfile

import wn
from wn import assert_eq, assert_problem, test

ADMIN_KEY = "ci-admin-key-7f3a9c"
READ_KEY = "ci-read-key-41b2e0"
KEYS_DIR = tempfile.mkdtemp(prefix="winnow-keys-")
KEYS_FILE = os.path.join(KEYS_DIR, "keys")


def hash_key(*args):
    r = subprocess.run([wn.WINNOWD, "hash-key"] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, env=wn.child_env(), timeout=30 * wn.SLOW)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def write_keys_file():
    lines = ["# winnow keys for the integration tests", ""]
    for scope, name, key in (("admin", "ci", ADMIN_KEY), ("read", "reader", READ_KEY)):
        code, out, err = hash_key("--scope", scope, "--name", name, key)
        assert_eq(code, 0, "hash-key exit code (stderr %r)" % err)
        lines.append(out.strip())
    with open(KEYS_FILE, "w") as f:
        f.write("\n".join(lines) + "\n")


def bearer(key):
    return {"Authorization": "Bearer " + key}


ADMIN = bearer(ADMIN_KEY)
READ = bearer(READ_KEY)


def setup(d):
    st = d.put_dataset("secure", {"spaces": {"v": {"dim": 2}}}, headers=ADMIN)[0]
    assert_eq(st, 201, "create with the admin key")
    st, _, body = d.ingest("secure", [{"id": "r1", "embeddings": {"v": [1.0, 2.0]}}],
                           headers=ADMIN)
    assert_eq((st, body["accepted"]), (200, 1), "ingest with the admin key")


_shared = wn.Shared(api_keys=KEYS_FILE)
_shared.setup = setup


def daemon():
    """The shared daemon with the keys file (written first if missing)."""
    if not os.path.exists(KEYS_FILE):
        write_keys_file()
    return _shared()


@test
def hash_key_prints_the_keys_file_line():
    code, out, _ = hash_key("--scope", "admin", "--name", "ci", ADMIN_KEY)
    assert_eq((code, out), (0, "admin %s ci\n" % hashlib.sha256(ADMIN_KEY.encode()).hexdigest()),
              "hash-key admin")
    code, out, _ = hash_key("--scope", "read", "--name", "reader", READ_KEY)
    assert_eq((code, out), (0, "read %s reader\n" % hashlib.sha256(READ_KEY.encode()).hexdigest()),
              "hash-key read")
    code, out, _ = hash_key("--scope", "read", READ_KEY)
    assert_eq((code, out), (0, "read %s\n" % hashlib.sha256(READ_KEY.encode()).hexdigest()),
              "hash-key without a name")
    code, out, err = hash_key("--scope", "root", "k")
    assert_eq(code, 2, "bad scope exit code")
    assert err.strip(), "bad scope: no message on stderr"


def check_401(resp, what):
    try:
        assert_problem(resp, 401)
    except AssertionError as exc:
        raise AssertionError("%s: %s" % (what, exc)) from None
    www = resp[1].get("www-authenticate", "")
    assert www.lower().startswith("bearer"), "%s: WWW-Authenticate %r" % (what, www)


@test
def missing_or_wrong_key_is_401():
    d = daemon()
    for headers, what in (({}, "no header"), (bearer("wrong-key"), "unknown key"),
                          (bearer(ADMIN_KEY + "x"), "key with a suffix"),
                          (bearer(ADMIN_KEY[:-1]), "key prefix"),
                          ({"Authorization": "Basic " + ADMIN_KEY}, "Basic scheme"),
                          ({"Authorization": "Bearer"}, "no key"),
                          ({"Authorization": "Bearer "}, "empty key"),
                          ({"Authorization": ADMIN_KEY}, "no scheme"),
                          ({"Authorization": "Bearer " +
                            hashlib.sha256(ADMIN_KEY.encode()).hexdigest()}, "the hash")):
        for method, path in (("GET", "/v1/datasets"), ("GET", "/v1/datasets/secure"),
                             ("GET", "/v1/datasets/secure/records/r1"), ("GET", "/metrics"),
                             ("GET", "/v1/openapi.json"), ("PUT", "/v1/datasets/secure"),
                             ("DELETE", "/v1/datasets/secure/records/r1")):
            check_401(d.request(method, path, headers=headers), "%s %s, %s" % (method, path, what))
    st, _, body = d.get_record("secure", "r1", headers=ADMIN)
    assert_eq((st, body.get("id")), (200, "r1"), "record still there")


@test
def read_key_reads_but_cannot_write():
    d = daemon()
    for path in ("/v1/datasets", "/v1/datasets/secure", "/v1/datasets/secure/records/r1",
                 "/v1/openapi.json", "/metrics"):
        assert_eq(d.request("GET", path, headers=READ)[0], 200, "GET %s with a read key" % path)
    writes = [
        ("PUT", "/v1/datasets/secure", {"spaces": {"v": {"dim": 2}}}, None),
        ("PUT", "/v1/datasets/other", {"spaces": {}}, None),
        ("POST", "/v1/datasets/secure/records", b'{"id": "r2"}\n', "application/x-ndjson"),
        ("DELETE", "/v1/datasets/secure/records/r1", None, None),
        ("DELETE", "/v1/datasets/secure", None, None),
    ]
    for method, path, body, ctype in writes:
        resp = d.request(method, path, body, headers=READ, content_type=ctype)
        try:
            assert_problem(resp, 403)
        except AssertionError as exc:
            raise AssertionError("%s %s with a read key: %s" % (method, path, exc)) from None
    st, _, body = d.get_json("/v1/datasets/secure", headers=READ)
    assert_eq((st, body["records"]), (200, 1), "nothing changed")
    assert_eq(d.get_json("/v1/datasets/other", headers=READ)[0], 404, "other not created")
    assert_eq(d.get_record("secure", "r2", headers=READ)[0], 404, "r2 not written")


@test
def admin_key_does_everything():
    d = daemon()
    h = ADMIN
    assert_eq(d.put_dataset("adm", {"spaces": {"v": {"dim": 2}}}, headers=h)[0], 201, "PUT")
    st, _, body = d.ingest("adm", [{"id": "a", "embeddings": {"v": [0.5, 0.25]}}], headers=h)
    assert_eq((st, body["accepted"]), (200, 1), "POST records")
    assert_eq(d.get_record("adm", "a", headers=h)[2]["embeddings"], {"v": [0.5, 0.25]}, "GET")
    assert_eq(d.get_json("/v1/datasets", headers=h)[0], 200, "list")
    assert_eq(d.request("GET", "/metrics", headers=h)[0], 200, "metrics")
    assert_eq(d.request("DELETE", "/v1/datasets/adm/records/a", headers=h)[0], 204, "DELETE rec")
    assert_eq(d.request("DELETE", "/v1/datasets/adm", headers=h)[0], 204, "DELETE dataset")
    lower = {"Authorization": "bearer " + ADMIN_KEY}
    assert_eq(d.get_json("/v1/datasets", headers=lower)[0], 200, "scheme is case-insensitive")


@test
def probes_are_open_and_metrics_is_not():
    d = daemon()
    assert_eq(d.json("GET", "/livez")[:3:2], (200, {"status": "ok"}), "livez")
    assert_eq(d.json("GET", "/readyz")[:3:2], (200, {"status": "ready"}), "readyz")
    check_401(d.request("GET", "/metrics"), "/metrics without a key")
    assert_eq(d.request("GET", "/metrics", headers=READ)[0], 200, "/metrics with a read key")


@test
def keys_never_logged():
    d = daemon()
    d.request("GET", "/v1/datasets", headers=bearer("leaky-wrong-key"))
    d.request("GET", "/v1/datasets", headers=READ)
    log = "\n".join(d.run_lines())
    for key in (ADMIN_KEY, READ_KEY, "leaky-wrong-key"):
        assert key not in log, "key %r appears in the log" % key


@test
def bad_keys_file_is_refused():
    bad = os.path.join(KEYS_DIR, "bad-keys")
    with open(bad, "w") as f:
        f.write("# ok\nadmin %s ci\nsuperuser %s x\n" % ("a" * 64, "b" * 64))
    for path, what in ((bad, "a bad scope on line 3"),
                       (os.path.join(KEYS_DIR, "missing"), "a missing file")):
        r = subprocess.run([wn.WINNOWD, "-n", "--api-keys", path, "--data-dir", KEYS_DIR],
                           stdin=subprocess.DEVNULL, capture_output=True, env=wn.child_env(),
                           timeout=30 * wn.SLOW)
        assert_eq(r.returncode, 2, "winnowd -n with %s" % what)
        assert r.stderr.strip(), "no message for %s" % what
    r = subprocess.run([wn.WINNOWD, "-n", "--api-keys", bad, "--data-dir", KEYS_DIR],
                       capture_output=True, env=wn.child_env(), timeout=30 * wn.SLOW)
    assert ":3" in r.stderr.decode(), "the message names line 3: %r" % r.stderr
    try:
        wn.Daemon(api_keys=bad).close()
    except wn.DaemonError:
        pass
    else:
        raise AssertionError("winnowd started with a bad keys file")


def non_loopback_address():
    """An address of this machine that is not loopback, or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))
        addr = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if addr.startswith("127.") or addr == "0.0.0.0" else addr


def remote_status(port, addr):
    """Status of GET /v1/datasets from addr to addr:port, or None if the connection was
    refused or closed without an answer."""
    conn = http.client.HTTPConnection(addr, port, timeout=10 * wn.SLOW)
    try:
        conn.request("GET", "/v1/datasets")
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


@test
def non_loopback_listen_needs_keys_or_insecure_no_auth():
    # Without keys, a non-loopback address is refused at start (exit 2, nothing bound).
    data = tempfile.mkdtemp(prefix="winnow-noauth-")
    try:
        for listen in ("0.0.0.0:0", "[::]:0"):
            r = subprocess.run([wn.WINNOWD, "--listen", listen, "--data-dir", data],
                               stdin=subprocess.DEVNULL, capture_output=True,
                               env=wn.child_env(), timeout=30 * wn.SLOW)
            err = r.stderr.decode()
            assert_eq(r.returncode, 2, "exit code for %s without keys (stderr %r)" % (listen, err))
            assert "not a loopback address" in err and "--insecure-no-auth" in err, err
    finally:
        import shutil
        shutil.rmtree(data, ignore_errors=True)
    addr = non_loopback_address()
    for flag in ("--insecure-no-auth", "--allow-remote"):
        with wn.Daemon(listen="0.0.0.0:0", extra_args=[flag]) as d:
            warn = d.events("insecure_no_auth")
            assert_eq(len(warn), 1, "warning logged at start with %s" % flag)
            assert_eq(warn[0].get("level"), "warn", "level of the warning")
            st, _, body = d.json("GET", "/readyz?verbose")
            assert_eq(st, 200, "readyz")
            assert_eq(body.get("warnings"), ["insecure_no_auth"], "readyz?verbose warnings")
            assert_eq(d.json("GET", "/readyz")[2], {"status": "ready"}, "plain readyz")
            if addr is not None:
                assert_eq(remote_status(d.port, addr), 200, "remote client with %s" % flag)
    if addr is None:
        print("note: no non-loopback address on this machine; remote checks not run")
        return
    if not os.path.exists(KEYS_FILE):
        write_keys_file()
    with wn.Daemon(listen="0.0.0.0:0", api_keys=KEYS_FILE) as d:
        assert_eq(remote_status(d.port, addr), 401, "remote client with keys file, no key")
        assert_eq(d.json("GET", "/readyz?verbose")[2].get("warnings"), [],
                  "no warning with a keys file")


if __name__ == "__main__":
    try:
        wn.main()
    finally:
        import shutil
        shutil.rmtree(KEYS_DIR, ignore_errors=True)
