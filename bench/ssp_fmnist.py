#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ssp_fmnist: the per-cluster observation of issue 6 on Fashion-MNIST, through winnowd.

Ingests the 60,000 training images of Debian's dataset-fashion-mnist (784 pixels as an f32
vector, L2-normalised by the filter; the class in meta), fits a `prototypes` filter (k = 100,
seed 1234), and for each keep fraction f materialises four subsets: keep-easy and keep-hard,
each global (bottom_fraction / top_fraction) and per cluster ("per_cluster": true). For each it
prints the smallest share of a class that is kept, the clusters the step emptied (from the
subset's provenance), and the test accuracy of a downstream classifier trained on the subset:
1-nearest-neighbour on the normalised pixels (exact, python3-faiss IndexFlatIP) over the 10,000
test images. The reference numbers of the issue (a different classifier) are: global keep-easy
at f <= 0.3 keeps 0% of some classes, per-cluster keep-easy at least 6% of every class; at
f = 0.01 per-cluster keep-easy beats keep-hard by about 13 points, keep-hard wins from f >= 0.1.
This script prints what winnow's selection gives with its own classifier; it checks nothing."""

import argparse
import base64
import gzip
import http.client
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time

import faiss
import numpy as np

FMNIST = "/usr/share/datasets/fashion-mnist"


def idx(path, images):
    with gzip.open(path) as f:
        data = f.read()
    n = int.from_bytes(data[4:8], "big")
    if images:
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, 784).astype(np.float32)
    return np.frombuffer(data, np.uint8, offset=8).astype(np.int64)


class Winnowd:
    def __init__(self, path):
        self.dir = tempfile.mkdtemp(prefix="winnow-bench-ssp-")
        self.proc = subprocess.Popen([path, "--listen", "127.0.0.1:0", "--data-dir", self.dir,
                                      "--log-level", "info"],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self.port = None
        deadline = time.time() + 30
        while time.time() < deadline and self.port is None:
            m = re.search(r"event=listening addr=\S+:(\d+)", self.proc.stderr.readline().decode())
            if m:
                self.port = int(m.group(1))
        if self.port is None:
            raise SystemExit("winnowd did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def call(self, method, path, body=None, ctype="application/json", raw=False):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        c.request(method, path, body=data, headers={"Content-Type": ctype} if data else {})
        r = c.getresponse()
        out = r.read()
        c.close()
        if r.status >= 300 and r.status != 202:
            raise SystemExit("%s %s: %d %s" % (method, path, r.status, out[:300]))
        return out if raw else (json.loads(out) if out else None)

    def wait(self, jid):
        while True:
            j = self.call("GET", "/v1/jobs/%s" % jid)
            if j["state"] not in ("queued", "running"):
                if j["state"] != "succeeded":
                    raise SystemExit("job %r" % j)
                return
            time.sleep(0.05)

    def close(self):
        self.proc.terminate()
        self.proc.wait(60)
        shutil.rmtree(self.dir, ignore_errors=True)


def knn_accuracy(xtr, ytr, xte, yte):
    ix = faiss.IndexFlatIP(xtr.shape[1])
    ix.add(xtr)
    _, nn = ix.search(xte, 1)
    return float((ytr[nn[:, 0]] == yte).mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", default="build/winnowd")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--fractions", default="0.01,0.03,0.1,0.3,0.5")
    a, _ = ap.parse_known_args()
    try:
        x = idx(FMNIST + "/train-images-idx3-ubyte.gz", True)
        y = idx(FMNIST + "/train-labels-idx1-ubyte.gz", False)
        xt = idx(FMNIST + "/t10k-images-idx3-ubyte.gz", True)
        yt = idx(FMNIST + "/t10k-labels-idx1-ubyte.gz", False)
    except OSError:
        print("ssp_fmnist: %s missing (apt-get install dataset-fashion-mnist)" % FMNIST)
        return
    faiss.normalize_L2(x)
    faiss.normalize_L2(xt)
    w = Winnowd(a.daemon)
    try:
        w.call("PUT", "/v1/datasets/fm", {"spaces": {"px": {"dim": 784}}})
        for s in range(0, len(x), 5000):
            lines = ['{"id":"%d","meta":{"class":%d},"embeddings":{"px":{"dtype":"f32","b64":"%s"}}}'
                     % (i, y[i], base64.b64encode(x[i].tobytes()).decode())
                     for i in range(s, min(len(x), s + 5000))]
            w.call("POST", "/v1/datasets/fm/records", ("\n".join(lines) + "\n").encode(),
                   ctype="application/x-ndjson")
        t0 = time.time()
        j = w.call("PUT", "/v1/datasets/fm/filters/ssp", {"type": "prototypes", "params": {
            "space": "px", "k": a.k, "seed": 1234}})
        w.wait(j["job"])
        print("ssp_fmnist: 60,000 x 784, prototypes k=%d fitted and scored in %.1f s; "
              "1-NN accuracy on all: %.4f" % (a.k, time.time() - t0, knn_accuracy(x, y, xt, yt)))
        print("%-6s %-10s %-11s %8s %16s %10s %9s"
              % ("f", "keep", "selection", "kept", "min class share", "emptied", "1-NN acc"))
        for f in [float(v) for v in a.fractions.split(",")]:
            for keep, rule in (("easy", "bottom_fraction"), ("hard", "top_fraction")):
                for pc in (False, True):
                    step = {"filter": "ssp", rule: f}
                    if pc:
                        step["per_cluster"] = True
                    name = "s%s%s%d" % (keep, "pc" if pc else "g", int(f * 1000))
                    j = w.call("PUT", "/v1/datasets/fm/subsets/" + name, {"steps": [step]})
                    w.wait(j["job"])
                    sub = w.call("GET", "/v1/datasets/fm/subsets/" + name)
                    ids = w.call("GET", "/v1/datasets/fm/subsets/%s:export?format=ids" % name,
                                 raw=True).decode().split()
                    sel = np.array(sorted(int(i) for i in ids))
                    share = np.bincount(y[sel], minlength=10) / np.bincount(y, minlength=10)
                    cl = sub["provenance"]["steps"][0]["clusters"]
                    print("%-6g %-10s %-11s %8d %15.1f%% %10d %9.4f"
                          % (f, keep, "per_cluster" if pc else "global", len(sel),
                             100 * share.min(), cl["emptied"],
                             knn_accuracy(x[sel], y[sel], xt, yt)))
    finally:
        w.close()


if __name__ == "__main__":
    main()
