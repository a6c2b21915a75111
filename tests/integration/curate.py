# SPDX-License-Identifier: MIT
"""curate: helpers shared by the filter, subset and job tests: generated pools of records
with float32 embeddings sent as base64 (so the daemon sees exactly numpy's values), job
polling, and independent numpy implementations of the spec's selection rules."""

import io
import json
import time

import numpy as np

import wn

SCHEMA = {"spaces": {"image": {"dim": 16, "dtype": "f32"}, "text": {"dim": 16, "dtype": "f32"}},
          "kinds": ["image-text", "text"]}
CLIP = {"type": "clip_score", "params": {"image_space": "image", "text_space": "text"}}


def uid(rng):
    return "%032x" % int.from_bytes(rng.bytes(16), "big")


def emb(v):
    return {"dtype": "f32", "b64": wn.b64(np.asarray(v, dtype="<f4").tobytes())}


class Pool:
    """n records: ids (uids), image and text vectors (float32, some text vectors missing),
    texts and image sizes chosen so that the basic filter has known outcomes."""

    def __init__(self, n, seed=1, dim=16, missing=0.005):
        rng = np.random.default_rng(seed)
        self.n = n
        self.ids = []
        seen = set()
        while len(self.ids) < n:
            u = uid(rng)
            if u not in seen:
                seen.add(u)
                self.ids.append(u)
        shared = rng.standard_normal((n, dim)).astype(np.float32)
        self.img = (shared + 0.9 * rng.standard_normal((n, dim))).astype(np.float32)
        self.txt = (shared + 0.9 * rng.standard_normal((n, dim))).astype(np.float32)
        self.has_txt = rng.random(n) >= missing
        words = rng.integers(1, 6, n)
        self.texts = [" ".join(["word%d" % (i % 7)] * int(w)) for i, w in enumerate(words)]
        self.width = rng.integers(150, 700, n)
        self.height = rng.integers(150, 700, n)

    def record(self, i):
        r = {"id": self.ids[i], "text": self.texts[i],
             "image": {"url": "file:///p/%d.jpg" % i, "width": int(self.width[i]),
                       "height": int(self.height[i])},
             "meta": {"n": int(i % 10), "lang": "en" if i % 3 else "de"},
             "embeddings": {"image": emb(self.img[i])}}
        if self.has_txt[i]:
            r["embeddings"]["text"] = emb(self.txt[i])
        return r

    def ingest(self, d, ds, batch=5000, conn=None):
        for a in range(0, self.n, batch):
            st, _, body = d.ingest(ds, [self.record(i) for i in range(a, min(self.n, a + batch))],
                                   conn=conn)
            assert st == 200, (st, body)
            assert body["rejected"] == 0, body

    def clip(self):
        """The spec's score in float64 from the float32 vectors, stored as float32; NaN where
        the text vector is missing."""
        x = self.img.astype(np.float64)
        t = self.txt.astype(np.float64)
        s = (x * t).sum(1) / np.sqrt((x * x).sum(1) * (t * t).sum(1))
        s = s.astype(np.float32)
        s[~self.has_txt] = np.nan
        return s

    def basic(self):
        """1/0 per record with the default params (spec 1.4 without language id)."""
        out = np.zeros(self.n, dtype=np.float32)
        for i in range(self.n):
            t = self.texts[i]
            w, h = int(self.width[i]), int(self.height[i])
            ok = len(t.split()) > 2 and len(t) > 5 and min(w, h) >= 200 and \
                max(w, h) / min(w, h) <= 3.0
            out[i] = 1.0 if ok else 0.0
        return out


def top_fraction(scores, f):
    """Spec section 0 over the finite scores: n = floor(N f), thr = the (n+1)-th largest,
    keep score >= thr. Returns (keep mask, thr)."""
    fin = scores[np.isfinite(scores)]
    n = int(np.floor(len(fin) * f))
    thr = np.sort(fin)[::-1][min(n, len(fin) - 1)]
    keep = np.isfinite(scores) & (scores >= thr)
    return keep, thr


def apportion(sizes, total, min_each=1):
    """The per-cluster counts of a per_cluster step (issue 19), in Python integers: largest
    remainders (Hamilton) of total over sizes, every non-empty cluster lifted to at least
    min(m, size) with m the largest value <= min_each that the total allows, the clusters not
    lifted sharing the rest by largest remainders again until none is below its minimum.
    Returns (counts, m)."""
    m = min_each
    while m > 0 and sum(min(m, n) for n in sizes) > total:
        m -= 1
    fixed = {}
    while True:
        free = [c for c in range(len(sizes)) if c not in fixed]
        t = total - sum(fixed.values())
        n = sum(sizes[c] for c in free)
        out = {c: (t * sizes[c] // n if n else 0) for c in free}
        left = t - sum(out.values())
        for c in sorted(free, key=lambda c: (-(t * sizes[c] % n if n else 0), c))[:left]:
            out[c] += 1
        low = [c for c in free if out[c] < min(m, sizes[c])]
        if not low:
            break
        for c in low:
            fixed[c] = min(m, sizes[c])
    out.update(fixed)
    return [out[c] for c in range(len(sizes))], m


def npy_bytes(uids):
    """What DataComp's pipeline saves for a list of uids (spec 1.1)."""
    arr = np.array([(int(u[:16], 16), int(u[16:32], 16)) for u in sorted(u.rjust(32, "0") for u in uids)],
                   dtype=[("f0", "<u8"), ("f1", "<u8")])
    arr.sort()
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def job_id(resp):
    """The job id of a 202 answer, checking Location."""
    st, hdrs, body = resp
    assert st == 202, (st, body)
    jid = body["job"]
    assert hdrs.get("location") == "/v1/jobs/%s" % jid, hdrs
    return jid


def wait_job(d, jid, states=("succeeded",), timeout=60):
    """Poll until the job reaches a final state; assert it is one of states. Returns it."""
    deadline = time.time() + timeout * wn.SLOW
    while time.time() < deadline:
        st, _, j = d.get_json("/v1/jobs/%s" % jid)
        assert st == 200, (st, j)
        if j["state"] not in ("queued", "running"):
            assert j["state"] in states, j
            return j
        time.sleep(0.02)
    raise AssertionError("job %s still %s after %ss" % (jid, j["state"], timeout * wn.SLOW))


def put_filter(d, ds, name, definition):
    return job_id(d.json("PUT", "/v1/datasets/%s/filters/%s" % (ds, name), definition))


def put_subset(d, ds, name, steps):
    return job_id(d.json("PUT", "/v1/datasets/%s/subsets/%s" % (ds, name), {"steps": steps}))


def export(d, ds, subset, query=""):
    st, hdrs, body = d.request("GET", "/v1/datasets/%s/subsets/%s:export%s" % (ds, subset, query))
    assert st == 200, (st, body[:300])
    return hdrs, body


def export_ndjson(d, ds, subset, query="?format=ndjson"):
    """The members and the summary line, asked for (summary=true: not sent by default)."""
    _, body = export(d, ds, subset, query + ("&" if "?" in query else "?") + "summary=true")
    lines = [json.loads(l) for l in body.decode().splitlines()]
    assert lines and "summary" in lines[-1], lines[-1:]
    return lines[:-1], lines[-1]["summary"]
