# SPDX-License-Identifier: MIT
"""wn: the shared helper of the integration tests.

Owns: Daemon (one winnowd process on 127.0.0.1 with a free port and a temporary data
directory, its stderr collected by a reader thread), small HTTP/JSON helpers, a tiny test
registry (@test, main()) that prints "ok   name" / "FAIL name" and ends with the exact
line "N passed, N failed".

Caveats: every wait is bounded; timeouts are multiplied by SLOW: 3 when the suite runs under
the sanitizers (env WINNOW_TEST_SANITIZE non-empty), WINNOW_TEST_SLOW when set (valgrind,
whose FAISS builds run 20 to 50 times slower). A Daemon used as a context manager
is stopped with SIGTERM (exit 0 and a clean stderr are asserted) when its block ends
normally, and killed when the block raises.
"""

import base64
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

import openapi_check

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WINNOWD = os.environ.get("WINNOWD") or os.path.join(REPO, "build", "winnowd")
SLOW = int(os.environ.get("WINNOW_TEST_SLOW") or (3 if os.environ.get("WINNOW_TEST_SANITIZE") else 1))
START_TIMEOUT = 30 * SLOW
HTTP_TIMEOUT = 30 * SLOW

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")

_LISTEN_RE = re.compile(r"\bevent=listening\b.*\baddr=(\S+)")
_LOGFMT_RE = re.compile(r'(\w[\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)')

# Daemons alive right now, and the stderr tails of daemons closed by a failing block, so
# that a failing test can show the daemon's last log lines.
_live = []
_failed_tails = []


class DaemonError(AssertionError):
    """The daemon did not start, or did not stop cleanly."""


def logfmt(line):
    """Parse one logfmt line into a dict (quoted values unquoted)."""
    out = {}
    for key, val in _LOGFMT_RE.findall(line):
        if val.startswith('"') and val.endswith('"') and len(val) >= 2:
            val = re.sub(r"\\(.)", r"\1", val[1:-1])
        out[key] = val
    return out


def child_env(extra=None):
    """The environment for a winnowd child: ours without WINNOW_* settings, plus extra (a
    value of None removes that variable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WINNOW_")}
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def sanitizer_text(lines):
    """The lines that carry a sanitizer report, if any."""
    return [l for l in lines if any(m in l for m in SANITIZER_MARKS)]


class Daemon:
    """One winnowd process. Its data directory survives restart() and is removed by close()
    (only when this object created it)."""

    def __init__(self, tmpdir=None, api_keys=None, extra_args=(), env=None,
                 listen="127.0.0.1:0", log_level="debug", tls_ca=None):
        self.own_dir = tmpdir is None
        self.tls_ca = tls_ca  # a CA file: talk HTTPS, trusting it (name checks off)
        self.data_dir = tmpdir if tmpdir is not None else tempfile.mkdtemp(prefix="winnow-it-")
        self.api_keys = api_keys
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.listen = listen
        self.log_level = log_level
        self.proc = None
        self.lines = []       # every stderr line of every run, decoded
        self.run_start = 0    # index in lines where the current run began
        self.host = None
        self.port = None
        self._cond = threading.Condition()
        self._reader = None
        try:
            self.start()
        except BaseException:
            self.close()
            raise

    # ---- process control -------------------------------------------------------------
    def argv(self):
        args = [WINNOWD]
        if self.listen is not None:
            args += ["--listen", self.listen]
        args += ["--data-dir", self.data_dir]
        if self.log_level is not None:
            args += ["--log-level", self.log_level]
        if self.api_keys is not None:
            args += ["--api-keys", self.api_keys]
        return args + self.extra_args

    def start(self):
        if self.proc is not None:
            raise DaemonError("start() while running")
        with self._cond:
            self.run_start = len(self.lines)
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=child_env(self.env))
        _live.append(self)
        self._reader = threading.Thread(target=self._read_stderr, args=(self.proc,),
                                        daemon=True)
        self._reader.start()
        try:
            self._wait_listening()
            self._wait_ready()
        except BaseException:
            self._force_kill()
            raise

    def _read_stderr(self, proc):
        for raw in iter(proc.stderr.readline, b""):
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        proc.stderr.close()
        with self._cond:
            self._cond.notify_all()

    def _wait_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        seen = self.run_start
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    m = _LISTEN_RE.search(line)
                    if m:
                        host, _, port = m.group(1).rpartition(":")
                        self.host = host.strip("[]")
                        self.port = int(port)
                        return
                seen = len(self.lines)
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise DaemonError("winnowd exited with %s before listening:\n%s"
                                      % (self.proc.returncode, self.tail()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DaemonError("no event=listening line within %ds:\n%s"
                                      % (START_TIMEOUT, self.tail()))
                self._cond.wait(min(left, 0.2))

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DaemonError("winnowd exited with %s while starting:\n%s"
                                  % (self.proc.returncode, self.tail()))
            try:
                last = self.request("GET", "/readyz")[0]
                if last == 200:
                    return
            except (OSError, http.client.HTTPException) as exc:
                last = exc
            time.sleep(0.05)
        raise DaemonError("GET /readyz not 200 within %ds (last: %r)" % (START_TIMEOUT, last))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def run_lines(self):
        """stderr lines of the current (or last) run."""
        with self._cond:
            return list(self.lines[self.run_start:])

    def tail(self, n=30):
        with self._cond:
            return "\n".join(self.lines[-n:])

    def events(self, name):
        """Parsed log lines of the current run whose event is name."""
        return [logfmt(l) for l in self.run_lines() if logfmt(l).get("event") == name]

    def wait_for_line(self, pred, timeout=10):
        """Wait (bounded) until a stderr line of this run satisfies pred; return it or None."""
        deadline = time.monotonic() + timeout * SLOW
        with self._cond:
            while True:
                for line in self.lines[self.run_start:]:
                    if pred(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.2))

    def _finish(self, timeout):
        """Wait for the process and its stderr reader; return the exit code."""
        proc = self.proc
        try:
            code = proc.wait(timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            self._reader.join(10 * SLOW)
            self.proc = None
            if self in _live:
                _live.remove(self)
        return code

    def wait(self, timeout):
        """Wait for an exit that something else caused; returns the exit code."""
        try:
            return self._finish(timeout)
        except subprocess.TimeoutExpired:
            raise DaemonError("winnowd did not exit within %ss:\n%s" % (timeout, self.tail()))

    def stop(self, sig=signal.SIGTERM, timeout=None, check=True):
        """Send sig and wait for the exit. With check, assert exit code 0 and a stderr free
        of sanitizer reports. Returns the exit code."""
        if self.proc is None:
            raise DaemonError("stop() while not running")
        timeout = timeout if timeout is not None else 30 * SLOW
        self.proc.send_signal(sig)
        try:
            code = self._finish(timeout)
        except subprocess.TimeoutExpired:
            raise DaemonError("winnowd did not exit within %ss of signal %d:\n%s"
                              % (timeout, sig, self.tail()))
        if check:
            self.check_clean(code)
        return code

    def check_clean(self, code=0):
        bad = sanitizer_text(self.run_lines())
        if bad:
            raise DaemonError("sanitizer report in winnowd stderr:\n%s\n...\n%s"
                              % ("\n".join(bad[:5]), self.tail(60)))
        if code != 0:
            raise DaemonError("winnowd exit code %s, expected 0:\n%s" % (code, self.tail()))

    def kill9(self):
        """SIGKILL, wait; asserts that no sanitizer report was printed before the kill."""
        if self.proc is None:
            raise DaemonError("kill9() while not running")
        self.proc.kill()
        self._finish(30 * SLOW)
        bad = sanitizer_text(self.run_lines())
        if bad:
            raise DaemonError("sanitizer report before SIGKILL:\n%s" % "\n".join(bad[:5]))

    def restart(self):
        """Stop cleanly if running, then start again on the same data directory."""
        if self.proc is not None:
            self.stop()
        self.start()

    def _force_kill(self):
        if self.proc is not None:
            try:
                self.proc.kill()
                self._finish(30 * SLOW)
            except Exception:  # noqa: BLE001 - best effort on an error path
                self.proc = None

    def close(self):
        """Kill if still running and remove the data directory we created."""
        self._force_kill()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            _failed_tails.append((self.proc.pid if self.proc else None, self.tail(15)))
        try:
            if exc_type is None and self.proc is not None:
                self.stop()
        finally:
            self.close()
        return False

    # ---- HTTP ----------------------------------------------------------------------------
    def connection(self, timeout=None):
        """A new keep-alive connection, for tests that reuse one."""
        if self.tls_ca is not None:
            import ssl
            ctx = ssl.create_default_context(cafile=self.tls_ca)
            ctx.check_hostname = False
            return http.client.HTTPSConnection(self.host, self.port, context=ctx,
                                               timeout=timeout or HTTP_TIMEOUT)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout or HTTP_TIMEOUT)

    def request(self, method, path, body=None, headers=None, content_type=None, conn=None):
        """One request on a fresh connection (or on conn). body: bytes, str, or a JSON-able
        object (dict/list, sent as application/json). Returns (status, headers with
        lower-case keys, body bytes). The response is checked against api/openapi.json
        (openapi_check; off with WINNOW_OPENAPI_CHECK=0): a mismatch fails the test."""
        hdrs = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            if content_type is None:
                content_type = "application/json"
        if isinstance(body, str):
            body = body.encode("utf-8")
        if content_type is not None:
            hdrs["Content-Type"] = content_type
        own = conn is None
        c = self.connection() if own else conn
        try:
            c.request(method, path, body=body, headers=hdrs)
            resp = c.getresponse()
            data = resp.read()
            rh = {k.lower(): v for k, v in resp.getheaders()}
            if openapi_check.enabled():
                openapi_check.check(method, path, resp.status, rh, data)
            return resp.status, rh, data
        finally:
            if own:
                c.close()

    def json(self, method, path, body=None, headers=None, content_type=None, conn=None):
        """request() with the body parsed as JSON (None when empty)."""
        status, hdrs, data = self.request(method, path, body, headers, content_type, conn)
        return status, hdrs, (json.loads(data) if data else None)

    def get_json(self, path, headers=None):
        return self.json("GET", path, headers=headers)

    def put_dataset(self, name, schema, headers=None):
        return self.json("PUT", "/v1/datasets/" + quote(name), schema, headers=headers)

    def ingest(self, name, records, headers=None, conn=None):
        """POST records (dicts, or raw lines as bytes/str) as NDJSON."""
        return self.json("POST", "/v1/datasets/%s/records" % quote(name), ndjson(records),
                         headers=headers, content_type="application/x-ndjson", conn=conn)

    def get_record(self, name, rid, query="", headers=None, conn=None):
        path = "/v1/datasets/%s/records/%s%s" % (quote(name), quote(rid), query)
        return self.json("GET", path, headers=headers, conn=conn)

    def metrics(self, headers=None):
        status, hdrs, data = self.request("GET", "/metrics", headers=headers)
        if status != 200:
            raise AssertionError("GET /metrics: %d %r" % (status, data[:300]))
        return hdrs, data.decode("utf-8")


# ---- payload helpers ---------------------------------------------------------------------
def quote(s):
    """Percent-encode a path segment (every reserved character, '/' included)."""
    if isinstance(s, bytes):
        return urllib.parse.quote_from_bytes(s, safe="")
    return urllib.parse.quote(s, safe="")


def ndjson(records):
    """NDJSON bytes of records: dicts are dumped, bytes/str lines are used as given."""
    out = []
    for r in records:
        if isinstance(r, bytes):
            out.append(r)
        elif isinstance(r, str):
            out.append(r.encode("utf-8"))
        else:
            out.append(json.dumps(r, ensure_ascii=False).encode("utf-8"))
    return b"\n".join(out) + b"\n"


def b64(data):
    return base64.b64encode(data).decode("ascii")


HITS = "application/vnd.winnow.hits"  # the binary search answer (lib/hits.h)


def decode_hits(data):
    """The binary answer (lib/hits.h), read here on its own: [(ids, scores, truncated)]."""
    import numpy as np
    assert_eq(data[:4], b"WNH1")
    nq, limit, nid = np.frombuffer(data, "<u4", 3, 4).tolist()
    at = 16
    assert_eq(len(data), at + 8 * nq + 8 * nq * limit + nid, "answer length")
    counts = np.frombuffer(data, "<u4", nq, at)
    flags = np.frombuffer(data, "<u4", nq, at + 4 * nq)
    at += 8 * nq
    scores = np.frombuffer(data, "<f4", nq * limit, at).reshape(nq, limit)
    ends = np.frombuffer(data, "<u4", nq * limit, at + 4 * nq * limit).reshape(nq, limit)
    ids = data[at + 8 * nq * limit:]
    out, start = [], 0
    for i in range(nq):
        c = int(counts[i])
        assert np.isnan(scores[i, c:]).all() and (ends[i, c:] == (ends[i, c - 1] if c else start)).all()
        one = []
        for e in ends[i, :c].tolist():
            one.append(ids[start:e].decode())
            start = e
        out.append((one, scores[i, :c].copy(), bool(flags[i] & 1)))
    return out


def assert_eq(actual, expected, what=""):
    if actual != expected:
        raise AssertionError("%s: expected %r, got %r" % (what or "value", expected, actual))


def assert_status(resp, status, what=""):
    if resp[0] != status:
        body = resp[2]
        if isinstance(body, bytes):
            body = body[:500]
        raise AssertionError("%sexpected HTTP %d, got %d: %r"
                             % (what + ": " if what else "", status, resp[0], body))


def assert_problem(resp, status, code=None):
    """resp from request() or json(): an RFC 9457 problem with our extensions. Returns the
    parsed problem object."""
    st, hdrs, body = resp
    assert_status(resp, status)
    ctype = hdrs.get("content-type", "")
    assert_eq(ctype.split(";")[0].strip(), "application/problem+json", "problem content type")
    p = json.loads(body) if isinstance(body, (bytes, str)) else body
    assert isinstance(p, dict), p
    for key, typ in (("type", str), ("title", str), ("status", int), ("detail", str),
                     ("code", str), ("request_id", str)):
        if not isinstance(p.get(key), typ):
            raise AssertionError("problem field %r missing or not %s: %r" % (key, typ.__name__, p))
    assert_eq(p["status"], st, "problem status")
    assert re.fullmatch(r"[a-z][a-z0-9_]*", p["code"]), p["code"]
    assert_eq(p["type"], "urn:winnow:problem:" + p["code"], "problem type")
    assert p["title"] and p["detail"], p
    assert_eq(p["request_id"], hdrs.get("x-request-id"), "problem request_id vs X-Request-Id")
    if code is not None:
        assert_eq(p["code"], code, "problem code")
    return p


# ---- the test registry -------------------------------------------------------------------
_tests = []
_teardowns = []


def test(fn):
    """Register fn as a test; tests run in definition order."""
    _tests.append(fn)
    return fn


class Shared:
    """A daemon started on first use and shared by the tests of one file; main() stops it
    at the end as a test of its own (exit 0, clean stderr)."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.d = None
        self.setup = None

    def __call__(self):
        died = None
        if self.d is not None and not self.d.running():
            code = self.d.proc.poll() if self.d.proc is not None else None
            died = "shared daemon died (exit %s); restarted on a new data directory:\n%s" % (
                code, self.d.tail(40))
            self.d.close()
            self.d = None
        if self.d is None:
            self.d = Daemon(**self.kwargs)
            if not any(t[1] is self for t in _teardowns):
                _teardowns.append(("shared daemon exits cleanly on SIGTERM", self))
            if self.setup is not None:
                self.setup(self.d)
        if died is not None:
            raise DaemonError(died)
        return self.d

    def teardown(self):
        if self.d is None:
            return
        d, self.d = self.d, None
        try:
            if d.proc is None:
                raise DaemonError("shared daemon is not running at the end:\n%s" % d.tail())
            d.stop()
        finally:
            d.close()


def _report_failure(name):
    print("FAIL %s" % name)
    for line in traceback.format_exc().rstrip().splitlines():
        print("  " + line)
    tails = _failed_tails[:] + [(d.proc.pid if d.proc else None, d.tail(15)) for d in _live]
    del _failed_tails[:]
    for pid, tail in tails:
        print("  -- last winnowd stderr lines (pid %s):" % pid)
        for line in tail.splitlines():
            print("  | " + line)


def main():
    """Run every registered test (argv may name a subset), print the summary line, exit."""
    only = set(sys.argv[1:])
    passed = failed = 0
    for fn in _tests:
        if only and fn.__name__ not in only:
            continue
        t0 = time.monotonic()
        try:
            fn()
        except Exception:  # noqa: BLE001 - a test failure of any kind
            _report_failure(fn.__name__)
            failed += 1
        else:
            print("ok   %s (%.2fs)" % (fn.__name__, time.monotonic() - t0))
            passed += 1
        sys.stdout.flush()
    for name, shared in _teardowns:
        try:
            shared.teardown()
        except Exception:  # noqa: BLE001
            _report_failure(name)
            failed += 1
        else:
            print("ok   %s" % name)
            passed += 1
    for d in list(_live):
        d.close()
    print("%d passed, %d failed" % (passed, failed))
    sys.stdout.flush()
    sys.exit(1 if failed else 0)
