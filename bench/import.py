#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""import: bulk import (.npy arrays + NDJSON metadata, multipart) against NDJSON ingest with
base64 vectors, on the same records.

Generates --records records from a fixed seed: an id, a caption, a small meta object, a
--dim f16 "image" embedding and a --dim f32 "text" embedding. Then, each against a fresh
winnowd of its own (port 0, a temporary data directory, the default durable commits):

  (a) POST .../records, application/x-ndjson, each vector {"dtype", "b64"} (f16 and f32);
  (b) POST .../records:import, multipart/form-data: the metadata lines plus one .npy part
      per space (the rows' raw bytes), what `winnow import` and Client.import_npy send.

Both send --batch records a request on one keep-alive connection, one request at a time.
A body is built just before its request (so the bodies never all sit in memory); "wire" is
the time from sending a body to its answer (the daemon's parse, checks and commit), "total"
adds the client's building of the bodies (base64 and JSON for (a); slicing the arrays for (b)).
Prints records/s for each, and the ratio (b)/(a). Exit 0 when both ran and every record was
accepted."""

import argparse
import base64
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np


class Winnowd:
    """One winnowd on 127.0.0.1:0 with a temporary data directory."""

    def __init__(self, path):
        self.dir = tempfile.mkdtemp(prefix="winnow-bench-import-")
        self.proc = subprocess.Popen([path, "--listen", "127.0.0.1:0", "--data-dir", self.dir,
                                      "--log-level", "info"],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self.port = None
        deadline = time.time() + 30
        while time.time() < deadline and self.port is None:
            line = self.proc.stderr.readline().decode()
            if not line:
                break
            if "event=listening" in line:
                self.port = int(line.split("addr=")[1].split()[0].rsplit(":", 1)[1])
        if self.port is None:
            self.close()
            raise SystemExit("import: winnowd did not start")
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            if b"level=warn" in line or b"level=error" in line:
                sys.stderr.write(line.decode(errors="replace"))

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)
        shutil.rmtree(self.dir, ignore_errors=True)


def npy_header(elt, rows, cols):
    d = "{'descr': '<f%d', 'fortran_order': False, 'shape': (%d, %d), }" % (elt, rows, cols)
    total = (10 + len(d) + 1 + 63) // 64 * 64
    hlen = total - 10
    return (b"\x93NUMPY\x01\x00" + bytes((hlen & 0xFF, hlen >> 8)) + d.encode()
            + b" " * (hlen - len(d) - 1) + b"\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--daemon", default=os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "build", "winnowd"))
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch", type=int, default=2000)
    args = ap.parse_args()

    rng = np.random.default_rng(17)
    n, dim = args.records, args.dim
    img = (rng.standard_normal((n, dim), dtype=np.float32) / np.sqrt(dim)).astype(np.float16)
    txt = rng.standard_normal((n, dim), dtype=np.float32) / np.float32(np.sqrt(dim))
    metas = [{"id": "%032x" % (i * 2654435761 % (1 << 127)), "kind": "image-text",
              "text": "a photo of thing number %d on a plain background" % i,
              "image": {"url": "https://example.com/img/%d.jpg" % i, "width": 640,
                        "height": 480},
              "meta": {"shard": i // 10000, "source": "bench"}} for i in range(n)]
    meta_lines = [json.dumps(m, separators=(",", ":")).encode() for m in metas]
    schema = json.dumps({"spaces": {"image": {"dim": dim, "dtype": "f16"},
                                    "text": {"dim": dim, "dtype": "f32"}}})

    def body_ndjson(a, b):
        out = []
        for i in range(a, b):
            out.append(b'%s,"embeddings":{"image":{"dtype":"f16","b64":"%s"},'
                       b'"text":{"dtype":"f32","b64":"%s"}}}'
                       % (meta_lines[i][:-1], base64.b64encode(img[i].tobytes()),
                          base64.b64encode(txt[i].tobytes())))
        return b"\n".join(out) + b"\n", "application/x-ndjson", "/records"

    boundary = "winnow-bench-" + os.urandom(8).hex()

    def body_import(a, b):
        bd = boundary.encode()
        parts = [b"--%s\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n" % bd,
                 b"\n".join(meta_lines[a:b]), b"\n\r\n"]
        for name, arr in (("image", img), ("text", txt)):
            parts += [b"--%s\r\nContent-Disposition: form-data; name=\"space.%s\"\r\n\r\n"
                      % (bd, name.encode()), npy_header(arr.dtype.itemsize, b - a, dim),
                      arr[a:b].tobytes(), b"\r\n"]
        parts.append(b"--%s--\r\n" % bd)
        return (b"".join(parts), "multipart/form-data; boundary=" + boundary,
                "/records:import")

    results = {}
    ok = True
    for label, build in (("ndjson-b64", body_ndjson), ("import-npy", body_import)):
        d = Winnowd(args.daemon)
        try:
            c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=600)
            c.request("PUT", "/v1/datasets/bench", schema, {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            assert r.status == 201, r.status
            wire = 0.0
            sent = 0
            accepted = 0
            t0 = time.perf_counter()
            for a in range(0, n, args.batch):
                b = min(n, a + args.batch)
                body, ctype, suffix = build(a, b)
                sent += len(body)
                t1 = time.perf_counter()
                c.request("POST", "/v1/datasets/bench" + suffix, body,
                          {"Content-Type": ctype})
                r = c.getresponse()
                ans = r.read()
                wire += time.perf_counter() - t1
                if r.status != 200:
                    print("import: %s: HTTP %d %s" % (label, r.status, ans[:300]))
                    ok = False
                    break
                accepted += json.loads(ans)["accepted"]
            total = time.perf_counter() - t0
            c.close()
        finally:
            d.close()
        ok = ok and accepted == n
        results[label] = (n / wire, n / total, sent)
        print("%-11s %7d records  wire %8.0f records/s  total %8.0f records/s  %.1f MiB sent"
              % (label, accepted, n / wire, n / total, sent / 2**20))
    if len(results) == 2:
        a, b = results["ndjson-b64"], results["import-npy"]
        print("import/ndjson ratio: wire %.2fx, total %.2fx, bytes %.2fx"
              % (b[0] / a[0], b[1] / a[1], b[2] / a[2]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
