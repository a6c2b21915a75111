#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""memory: peak RSS of winnowd under concurrent maximum-size request bodies (issue 16), next to
the memory budget (--memory-limit) that bounds them.

For each budget (--limits: "default" is the daemon's own, a quarter of physical memory) and
each body kind, starts a fresh winnowd (port 0, a temporary data directory), creates a dataset
with one 4,096-d space and three records, then sends --clients (8) bodies of the search route's
maximum size (--search-body-limit, 16 MiB) at once, each on its own connection, while a thread
samples the daemon's VmRSS every 2 ms; VmHWM at the end is the peak. Body kinds:

  json   {"space": "v", "vector": [0, 0, ...]}: 8.4 million numbers, the worst case for the
         JSON parse (a jansson node of 40 bytes or more per 2 bytes of text); refused by the
         handler after the parse (422, the vector has the wrong length): the parse is the work.
  rows   1,024 raw float32 rows of 4,096 (application/octet-stream): a real batch search.

Prints one line per run: statuses (200/422 = served, 503 = refused as overloaded), baseline RSS
after start-up, peak RSS, the peak above the baseline, and the budget; PASS when the peak above
the baseline stays under the budget. Exit 0 when everything ran."""

import argparse
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

DIM = 4096
MAX_BODY = 16 << 20


def rss_kib(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Winnowd:
    def __init__(self, path, extra):
        self.dir = tempfile.mkdtemp(prefix="winnow-bench-memory-")
        self.proc = subprocess.Popen([path, "--listen", "127.0.0.1:0", "--data-dir", self.dir,
                                      "--log-level", "warn"] + extra,
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self.port = None
        self.limit = None
        # warn level: the listening line is info; ask the daemon for its port via -n instead
        deadline = time.time() + 30
        while time.time() < deadline and self.port is None:
            try:
                out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
            except FileNotFoundError:
                out = ""
            for line in out.splitlines():
                if "pid=%d," % self.proc.pid in line:
                    m = re.search(r"127\.0\.0\.1:(\d+)", line)
                    if m:
                        self.port = int(m.group(1))
            if self.port is None:
                time.sleep(0.05)
        if self.port is None:
            self.close()
            raise RuntimeError("winnowd did not listen")
        threading.Thread(target=self._drain, daemon=True).start()
        while time.time() < deadline:
            try:
                if self.call("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("winnowd not ready")

    def _drain(self):
        for line in iter(self.proc.stderr.readline, b""):
            sys.stderr.write("  winnowd: " + line.decode(errors="replace"))

    def call(self, method, path, body=None, ctype="application/json"):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            c.request(method, path, body=body, headers={"Content-Type": ctype} if body else {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def bodies(kind):
    if kind == "json":
        head, tail = b'{"space": "v", "vector": [', b"]}"
        n = (MAX_BODY - len(head) - len(tail) + 1) // 2
        body = head + b",".join([b"0"] * n) + tail
        assert len(body) <= MAX_BODY, len(body)
        return body, "application/json", "/v1/datasets/m/search"
    rows = np.random.default_rng(1).standard_normal((1024, DIM)).astype("<f4").tobytes()
    assert len(rows) == MAX_BODY
    return rows, "application/octet-stream", "/v1/datasets/m/search?space=v&limit=10"


def run(daemon, limit, kind, clients):
    extra = [] if limit == "default" else ["--memory-limit", limit]
    w = Winnowd(daemon, extra)
    try:
        cfg = subprocess.run([daemon, "-n", "--data-dir", w.dir] + extra, capture_output=True,
                             text=True).stdout
        budget = re.search(r"^memory-limit = (\S+)", cfg, re.M).group(1)
        st, _ = w.call("PUT", "/v1/datasets/m", b'{"spaces": {"v": {"dim": %d}}}' % DIM)
        assert st == 201, st
        x = np.random.default_rng(2).standard_normal((3, DIM)).astype(np.float32)
        nd = b"\n".join(b'{"id": "r%d", "embeddings": {"v": [%s]}}'
                        % (i, ",".join("%.6g" % v for v in x[i]).encode()) for i in range(3))
        st, _ = w.call("POST", "/v1/datasets/m/records", nd + b"\n", "application/x-ndjson")
        assert st == 200, st
        body, ctype, path = bodies(kind)
        time.sleep(0.3)
        base = rss_kib(w.proc.pid)
        peak = [base]
        done = threading.Event()

        def sample():
            while not done.is_set():
                try:
                    peak[0] = max(peak[0], rss_kib(w.proc.pid))
                except OSError:
                    return
                time.sleep(0.002)

        statuses = []
        lock = threading.Lock()
        go = threading.Barrier(clients)

        def client():
            go.wait()
            st, _ = w.call("POST", path, body, ctype)
            with lock:
                statuses.append(st)

        sampler = threading.Thread(target=sample)
        sampler.start()
        t0 = time.monotonic()
        ts = [threading.Thread(target=client) for _ in range(clients)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        secs = time.monotonic() - t0
        done.set()
        sampler.join()
        hwm = max(peak[0], rss_kib(w.proc.pid, "VmHWM"))
        counts = {s: statuses.count(s) for s in sorted(set(statuses))}
        over = (hwm - base) * 1024
        budget_b = parse_size(budget)
        ok = over <= budget_b
        print("memory kind=%s clients=%d body_bytes=%d limit=%s statuses=%s baseline_rss=%.0fMiB "
              "peak_rss=%.0fMiB peak_over_baseline=%.0fMiB seconds=%.2f %s"
              % (kind, clients, len(body), budget,
                 ",".join("%d:%d" % kv for kv in counts.items()), base / 1024, hwm / 1024,
                 over / 2**20, secs, "PASS" if ok else "MISS"))
        sys.stdout.flush()
    finally:
        w.close()


def parse_size(s):
    mul = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    return int(s[:-1]) * mul[s[-1]] if s[-1] in mul else int(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--daemon", default="build/winnowd")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--limits", default="default,1G",
                    help="comma-separated --memory-limit values; default = the daemon's own")
    ap.add_argument("--kinds", default="json,rows")
    args, _ = ap.parse_known_args()
    for limit in args.limits.split(","):
        for kind in args.kinds.split(","):
            run(args.daemon, limit, kind, args.clients)
    return 0


if __name__ == "__main__":
    sys.exit(main())
