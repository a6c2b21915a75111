# SPDX-License-Identifier: MIT
"""The dashboard (issue 17 item 4, docs/ui.md) in real headless Chromium: winnowd serves /ui/
from the binary with strict headers; every view is rendered by the page's own JavaScript against
a daemon holding a dataset with a clip filter, a semdedup filter, a subset over both, a trained
Cosine Adapter and a hubness normaliser; the DOM (after scripts ran) must show the API's own
numbers, and each view's screenshot must be a non-blank PNG of the window's size. With
--api-keys the page's API calls without the key fail and it says so; with the key they work.

WINNOW_UI_SHOTS=DIR copies the screenshots to DIR (docs/ui holds the committed ones)."""

import hashlib
import html.parser
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time
import zlib

import numpy as np

import curate
import wn
from wn import assert_eq, test

N = 2000
W, H = 1280, 900
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
KEY_ADMIN, KEY_READ = "ui-admin-key-0123456789", "ui-read-key-0123456789"
KEYS_DIR = tempfile.mkdtemp(prefix="winnow-ui-keys-")
KEYS_FILE = os.path.join(KEYS_DIR, "keys")
with open(KEYS_FILE, "w") as _f:  # the keys file format: SCOPE SHA256_HEX NAME
    for _scope, _k in (("admin", KEY_ADMIN), ("read", KEY_READ)):
        _f.write("%s %s ui-%s\n" % (_scope, hashlib.sha256(_k.encode()).hexdigest(), _scope))
daemon = wn.Shared(log_level="info", api_keys=KEYS_FILE)
_g = {}


def auth(key=KEY_ADMIN):
    return {"Authorization": "Bearer " + key}


def j(d, method, path, body=None, status=200):
    st, hdrs, res = d.json(method, path, body, headers=auth())
    assert_eq(st, status, "%s %s: %r" % (method, path, res))
    return res


def wait(d, jid, timeout=60):
    deadline = time.time() + timeout * wn.SLOW
    while time.time() < deadline:
        v = j(d, "GET", "/v1/jobs/%s" % jid)
        if v["state"] not in ("queued", "running"):
            assert_eq(v["state"], "succeeded", v)
            return v
        time.sleep(0.02)
    raise AssertionError("job %s did not finish" % jid)


def setup():
    d = daemon()
    if _g:
        return d, _g
    pool = curate.Pool(N, seed=3)
    j(d, "PUT", "/v1/datasets/p", curate.SCHEMA, status=201)
    for a in range(0, N, 1000):
        st, _, body = d.ingest("p", [pool.record(i) for i in range(a, min(N, a + 1000))],
                               headers=auth())
        assert_eq(st, 200, body)
    # near-duplicates for semdedup: every 10th record's image vector again, moved by noise
    # from tiny to large so that the eps sweep removes more of them as eps grows
    rng = np.random.default_rng(9)
    dups = []
    for k, sigma in enumerate(np.logspace(-2.5, -0.3, N // 10)):
        r = pool.record(10 * k)
        r["id"] = "dup%04d" % k
        r["embeddings"]["image"] = curate.emb(pool.img[10 * k] + sigma * rng.standard_normal(16))
        dups.append(r)
    assert_eq(d.ingest("p", dups, headers=auth())[0], 200)
    wait(d, j(d, "PUT", "/v1/datasets/p/filters/clip", curate.CLIP, status=202)["job"])
    wait(d, j(d, "PUT", "/v1/datasets/p/filters/dd", {"type": "semdedup", "params": {
        "space": "image", "eps": 0.001, "k": 4, "seed": 1}}, status=202)["job"])
    wait(d, j(d, "PUT", "/v1/datasets/p/subsets/s", {"steps": [
        {"filter": "clip", "top_fraction": 0.5}, {"filter": "dd", "keep": True}]},
        status=202)["job"])
    # an adapter: a record's text vector as the query, its own image relevant, 4 others not
    j(d, "PUT", "/v1/datasets/p/adapters/rel", {"space": "image", "hidden": 8, "max_epochs": 40},
      status=201)
    lines = []
    for q in range(60):
        lines.append({"query": {"record_id": pool.ids[q], "space": "text"}, "id": pool.ids[q],
                      "label": 1})
        for o in rng.choice(np.arange(100, N), 4, replace=False):
            lines.append({"query": {"record_id": pool.ids[q], "space": "text"},
                          "id": pool.ids[int(o)], "label": 0})
    st, _, res = d.json("POST", "/v1/datasets/p/adapters/rel/pairs", wn.ndjson(lines),
                        headers=auth(), content_type="application/x-ndjson")
    assert_eq((st, res["rejected"]), (200, 0), res)
    wait(d, j(d, "POST", "/v1/datasets/p/adapters/rel:train", status=202)["job"])
    wait(d, j(d, "PUT", "/v1/datasets/p/hubness/hn", {
        "space": "image", "query_bank": {"dataset": "p", "space": "text", "sample": 300}},
        status=202)["job"])
    _g.update(pool=pool)
    return d, _g
