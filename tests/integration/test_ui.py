# SPDX-License-Identifier: MIT
"""The dashboard (issue 17 item 4, docs/ui.md) in real headless Chromium: winnowd serves /ui/
from the binary with strict headers; every view is rendered by the page's own JavaScript against
a daemon holding a dataset with a clip filter, a semdedup filter, a subset over both, a trained
Cosine Adapter and a hubness normaliser; the DOM (after scripts ran) must show the API's own
numbers, and each view's screenshot must be a non-blank PNG of the window's size. With
--api-keys the page's API calls without the key fail and it says so; with the key they work.

WINNOW_UI_SHOTS=DIR copies the screenshots to DIR (docs/ui holds the committed ones)."""

import hashlib
import html
import json
import os
import shutil
import re
import struct
import subprocess
import tempfile
import urllib.parse
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import curate
import wn
from wn import assert_eq, test

N = 2000
NH = 1200  # gallery of the hubness dataset
W, H = 1280, 900
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")  # scripts/deps.sh installs it
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
    dups, dup_clip = [], []
    for k, sigma in enumerate(np.logspace(-2.5, -0.3, N // 10)):
        r = pool.record(10 * k)
        r["id"] = "dup%04d" % k
        img = (pool.img[10 * k] + sigma * rng.standard_normal(16)).astype(np.float32)
        r["embeddings"]["image"] = curate.emb(img)
        dups.append(r)
        if pool.has_txt[10 * k]:  # the clip score as curate.Pool.clip computes it
            x, t = img.astype(np.float64), pool.txt[10 * k].astype(np.float64)
            dup_clip.append(np.float32((x * t).sum() / np.sqrt((x * x).sum() * (t * t).sum())))
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
    # hubness on planted hubs (as test_hubness.py): 20 gallery vectors share the direction every
    # query is offset along, so raw cosine retrieves them for many queries
    u = rng.standard_normal(16)
    u /= np.linalg.norm(u)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
    gal = unit(rng.standard_normal((NH, 16)) / 4 + 0.5 * u)
    gal[::NH // 20] = unit(rng.standard_normal((20, 16)) / 4 + 2 * u)
    qv = unit(gal[1:NH:3] + 0.7 * rng.standard_normal((len(gal[1:NH:3]), 16)) / 4 + u)
    j(d, "PUT", "/v1/datasets/h", {"spaces": {"v": {"dim": 16}, "q": {"dim": 16}}}, status=201)
    recs = [{"id": "g%04d" % i, "embeddings": {"v": curate.emb(gal[i])}} for i in range(NH)]
    for n, i in enumerate(range(1, NH, 3)):
        recs[i]["embeddings"]["q"] = curate.emb(qv[n])
    assert_eq(d.ingest("h", recs, headers=auth())[0], 200)
    wait(d, j(d, "PUT", "/v1/datasets/h/hubness/hn", {
        "space": "v", "query_bank": {"dataset": "h", "space": "q", "sample": 200}},
        status=202)["job"])
    _g.update(pool=pool, dup_clip=dup_clip)
    return d, _g


# ---- the browser and the screenshots ----------------------------------------------------------
def png_pixels(data):
    """Decode an 8-bit RGB/RGBA non-interlaced PNG into an (h, w, channels) uint8 array.
    Pixel (r, x) depends on (r, x-1), (r-1, x) and (r-1, x-1), so every anti-diagonal
    r + x = d is decoded at once from the previous ones: h + w numpy steps, any filters."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    i, idat, hdr = 8, [], None
    while i < len(data):
        n, = struct.unpack(">I", data[i:i + 4])
        kind, body = data[i + 4:i + 8], data[i + 8:i + 8 + n]
        i += 12 + n
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    w, h, depth, ctype, _, _, interlace = hdr
    assert depth == 8 and ctype in (2, 6) and interlace == 0, hdr
    bpp = 3 if ctype == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(h, 1 + w * bpp)
    ftype = raw[:, 0].astype(np.int32)
    filt = raw[:, 1:].reshape(h, w, bpp).astype(np.int32)
    out = np.zeros((h + 1, w + 1, bpp), np.int32)  # a zero row above, a zero column left
    flat = out.reshape(-1, bpp)
    W = w + 1
    rows = np.arange(h)
    for d in range(h + w - 1):
        r = rows[max(0, d - w + 1):min(h - 1, d) + 1]
        x = d - r
        ia = (r + 1) * W + x          # left
        ib = r * W + x + 1            # up
        a, b = flat[ia], flat[ib]
        c = flat[ib - 1]              # up-left
        t = ftype[r][:, None]
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        pred = np.where(t == 4, np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c)),
               np.where(t == 3, (a + b) >> 1, np.where(t == 2, b, np.where(t == 1, a, 0))))
        flat[ia + 1] = (filt[r, x] + pred) & 255
    return out[1:, 1:].astype(np.uint8)


def check_png(path, what):
    """The screenshot exists, is a PNG of the window's size and is not blank: the area under
    the header holds many colours (text, charts), not one background."""
    with open(path, "rb") as f:
        px = png_pixels(f.read())
    assert_eq(px.shape[:2], (H, W), "%s: screenshot size" % what)
    body = px[60:, :, :3].reshape(-1, 3).astype(np.uint32)
    colours = len(np.unique((body[:, 0] << 16) | (body[:, 1] << 8) | body[:, 2]))
    assert colours > 150, "%s: the screenshot looks blank (%d colours)" % (what, colours)
    return colours


def browse(d, fragment, shot):
    """Load /ui/#fragment in a fresh headless Chromium (a new profile, so a new session
    storage); return the DOM after the scripts ran and write the screenshot to shot."""
    assert CHROMIUM, "no chromium on PATH: scripts/deps.sh installs Debian's chromium"
    prof = tempfile.mkdtemp(prefix="winnow-ui-chromium-")
    try:
        argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--user-data-dir=" + prof, "--window-size=%d,%d" % (W, H),
                "--virtual-time-budget=10000", "--screenshot=" + shot, "--dump-dom",
                "http://%s:%s/ui/#%s" % (d.host, d.port, fragment)]
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=90 * wn.SLOW, env=dict(os.environ, DBUS_SESSION_BUS_ADDRESS="disabled:"))
        assert_eq(r.returncode, 0, "chromium: %s" % r.stderr.decode()[-2000:])
        return r.stdout.decode()
    finally:
        shutil.rmtree(prof, ignore_errors=True)


def k(fragment, key=KEY_ADMIN):
    return fragment + ("&" if "?" in fragment else "?") + "key=" + key


# Every view the test looks at: name -> URL fragment. The key rides in the fragment only in
# this test; the page moves it to sessionStorage and out of the address at once.
SWEEP_EPS = [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.2, 0.3]
BUDGET_TEXT = ["32e6", "128e6", "640e6", "1.28e9"]  # as a user types them
BUDGETS = [float(b) for b in BUDGET_TEXT]
RECOMMEND = {"pool_size": 128000000, "a": 0.025, "d": 0.1,
             "buckets": [{"b": -0.16, "c": 6.727}, {"b": -0.125, "c": 8.545},
                         {"b": -0.10, "c": 5.273}, {"b": -0.085, "c": 2.273}]}
REPORT = {"queries": {"dataset": "h", "space": "q", "sample": 400}, "k": 10, "method": "dualis"}
THRESHOLD = 0.5


def views():
    q = urllib.parse.quote
    return {
        "datasets": k("/"),
        "filter": k("/datasets/p/filters/clip?bins=40&t=%r" % THRESHOLD),
        "sweep": k("/datasets/p/filters/dd?focus=sweep&eps=" + ",".join(map(repr, SWEEP_EPS))),
        "recommend": k("/datasets/p/filters/clip?focus=recommend&budgets=%s&recommend=%s" % (
            q(", ".join(BUDGET_TEXT)), q(json.dumps(RECOMMEND)))),
        "subset": k("/datasets/p/subsets/s"),
        "adapter": k("/datasets/p/adapters/rel"),
        "hubness": k("/datasets/h/hubness/hn?report=" + q(json.dumps(REPORT))),
        "jobs": k("/jobs"),
        "api": k("/api"),
        "nokey": "/",
        "dataset": k("/datasets/p", KEY_READ),  # a read key is enough for every view
    }


def rendered():
    """Every view loaded once (a few browsers at a time: they mostly wait), screenshots
    checked while the others load. Returns {name: dom}."""
    d, g = setup()
    if "dom" in g:
        return d, g
    shots = tempfile.mkdtemp(prefix="winnow-ui-shots-")
    g["shots"], g["dom"], g["colours"] = shots, {}, {}
    with ThreadPoolExecutor(max_workers=3) as pool:
        futs = {name: pool.submit(browse, d, frag, os.path.join(shots, name + ".png"))
                for name, frag in views().items()}
        for name, fut in futs.items():
            g["dom"][name] = fut.result()
            g["colours"][name] = check_png(os.path.join(shots, name + ".png"), name)
    out = os.environ.get("WINNOW_UI_SHOTS")
    if out:
        os.makedirs(out, exist_ok=True)
        for name in views():
            shutil.copy(os.path.join(shots, name + ".png"), os.path.join(out, name + ".png"))
    return d, g


# ---- reading the DOM ----------------------------------------------------------------------------
def by_id(dom, ident):
    """The opening tag and text of the element with id ident."""
    m = re.search(r'<(\w+)([^>]*\bid="%s"[^>]*)>([^<]*)' % re.escape(ident), dom)
    assert m, "no element #%s in the DOM" % ident
    return m.group(2), m.group(3)


def attr(tag, name):
    m = re.search(r'\b%s="([^"]*)"' % re.escape(name), tag)
    assert m, "no %s in %s" % (name, tag)
    return html.unescape(m.group(1))


def values(fragment):
    """data-value of every span.num in a piece of DOM, as floats (None for null)."""
    return [None if v == "null" else float(v)
            for v in re.findall(r'class="num"[^>]*data-value="([^"]*)"', fragment)]


def section(dom, start, end="</table>"):
    i = dom.index(start)
    return dom[i:dom.index(end, i)]


def rows(dom, table_start, key):
    """{key attribute: [data-values of the row]} of the rows of one table."""
    t = section(dom, table_start)
    out = {}
    for m in re.finditer(r'<tr %s="([^"]*)"[^>]*>(.*?)</tr>' % re.escape(key), t):
        out[m.group(1)] = values(m.group(2))
    return out


def close(a, b, what):
    assert abs(a - b) <= 1e-9 * max(1.0, abs(b)), "%s: page %r, API %r" % (what, a, b)


# ---- the tests ----------------------------------------------------------------------------------
@test
def static_files_served_with_strict_headers_and_no_key():
    d = daemon()
    for path, ctype in (("/ui/", "text/html"), ("/ui/index.html", "text/html"),
                        ("/ui/app.js", "text/javascript"), ("/ui/style.css", "text/css")):
        st, hdrs, body = d.request("GET", path)  # no key: the page itself is public
        assert_eq(st, 200, path)
        assert hdrs["content-type"].startswith(ctype + "; charset=utf-8"), (path, hdrs)
        csp = hdrs["content-security-policy"]
        for part in ("default-src 'none'", "script-src 'self'", "connect-src 'self'",
                     "frame-ancestors 'none'"):
            assert part in csp, (path, csp)
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, csp
        assert_eq((hdrs["x-content-type-options"], hdrs["cache-control"]), ("nosniff", "no-cache"))
        with open(os.path.join(wn.REPO, "api", "ui", "index.html" if path == "/ui/" else
                               path[4:]), "rb") as f:
            assert_eq(body, f.read(), "%s is the file in api/ui/" % path)
        etag = hdrs["etag"]
        st, hdrs2, body2 = d.request("GET", path, headers={"If-None-Match": etag})
        assert_eq((st, body2, hdrs2["etag"]), (304, b"", etag), "revalidation of %s" % path)
    # no inline script or style anywhere in the page: the CSP forbids them
    st, _, page = d.request("GET", "/ui/")
    assert b"<script>" not in page and b"style=" not in page and b"onclick" not in page
    wn.assert_problem(d.json("GET", "/ui/nope.js"), 404, "ui_file_not_found")
    wn.assert_problem(d.json("GET", "/ui/../v1/datasets"), 404)
    # while the API itself still wants the key
    wn.assert_problem(d.json("GET", "/v1/datasets"), 401)


@test
def the_page_never_bypasses_keys():
    d, g = rendered()
    dom = g["dom"]["nokey"]
    tag, text = by_id(dom, "auth")
    assert "hidden" not in tag, "the auth banner is hidden"
    assert_eq(attr(tag, "data-status"), "401")
    assert "needs an API key" in text, text
    assert 'id="datasets"' not in dom, "datasets listed without a key"
    assert 'data-view="error"' in dom
    # the read key is enough for the views (they only read); the key left the address
    assert 'data-view="viewDataset"' in g["dom"]["dataset"], g["dom"]["dataset"][-3000:]
    for name, dom in g["dom"].items():
        route = attr(re.search(r"<body[^>]*>", dom).group(0), "data-route")
        assert "key=" not in route, (name, route)
        assert KEY_ADMIN not in dom and KEY_READ not in dom, "%s: the key is in the DOM" % name
    # the daemon saw the page's calls without a key and refused them
    fails = [l for l in d.run_lines() if "status=401" in l and "/v1/datasets" in l]
    assert fails, "no 401 in the daemon's log"


@test
def datasets_and_dataset_views_show_the_api_counts():
    d, g = rendered()
    ds = j(d, "GET", "/v1/datasets")["datasets"]
    dom = g["dom"]["datasets"]
    got = rows(dom, 'id="datasets"', "data-dataset")
    assert_eq(got, {x["name"]: [float(x["records"])] for x in ds})
    assert_eq(sorted(got), ["h", "p"])
    dom = g["dom"]["dataset"]
    assert_eq(float(attr(by_id(dom, "ds-records")[0], "data-value")),
              float(j(d, "GET", "/v1/datasets/p")["records"]))
    for name in ("clip", "dd", "s", "rel"):
        assert '>%s</a>' % name in dom, name


@test
def filter_histogram_and_threshold_match_stats():
    d, g = rendered()
    dom = g["dom"]["filter"]
    st = j(d, "GET", "/v1/datasets/p/filters/clip/stats?bins=40")
    counts = [int(c) for c in re.findall(r'class="hist[^"]*" data-count="(\d+)"', dom)]
    assert_eq(counts, st["histogram"]["counts"], "histogram bins")
    assert_eq(sum(counts), st["count"])
    for ident, key in (("st-records", "records"), ("st-count", "count"),
                       ("st-unscorable", "unscorable"), ("st-min", "min"), ("st-max", "max")):
        close(float(attr(by_id(dom, ident)[0], "data-value")), st[key], ident)
    # the kept count at the slider's threshold is the daemon's own count there
    tag, text = by_id(dom, "kept")
    t = attr(tag, "data-threshold")
    assert_eq(float(t), THRESHOLD, "the threshold from the address")
    assert_eq(attr(tag, "data-source"), "daemon")
    at = j(d, "GET", "/v1/datasets/p/filters/clip/stats?bins=1&threshold=" + t)
    assert_eq(int(attr(tag, "data-value")), at["at_or_above"], "kept at the threshold")
    # and numpy says the same from the scores the daemon was given
    clip = g["pool"].clip()
    assert_eq(at["at_or_above"], int((clip[np.isfinite(clip)] >= np.float32(THRESHOLD)).sum())
              + int(sum(1 for x in g["dup_clip"] if x >= np.float32(THRESHOLD))))
    close(float(attr(by_id(dom, "kept-fraction")[0], "data-value")),
          at["at_or_above"] / st["count"], "kept fraction")
    # bars below the threshold are drawn as dropped
    off = len(re.findall(r'class="hist off"', dom))
    edges = st["histogram"]["edges"]
    assert_eq(off, sum(1 for i in range(40) if edges[i + 1] <= THRESHOLD))


@test
def sweep_curve_matches_the_api():
    d, g = rendered()
    sw = j(d, "POST", "/v1/datasets/p/filters/dd:sweep", {"eps": SWEEP_EPS})["sweep"]
    got = rows(g["dom"]["sweep"], 'id="sweep-table"', "data-eps")
    assert_eq(got, {repr(s["eps"]): [float(s["kept"]), float(s["removed"]), s["kept_fraction"]]
                    for s in sw})
    kept = [s["kept"] for s in sw]
    assert kept == sorted(kept, reverse=True) and kept[0] > kept[-1], kept
    # one point per eps on the curve
    assert_eq(len(re.findall(r'<circle[^>]*class="pt"', g["dom"]["sweep"])), len(SWEEP_EPS))


@test
def recommend_curves_for_several_budgets_match_the_api():
    d, g = rendered()
    dom = g["dom"]["recommend"]
    got = rows(dom, 'id="recommend-table"', "data-budget")
    assert_eq(len(got), len(BUDGETS))
    best = set()
    for n in BUDGETS:
        r = j(d, "POST", "/v1/datasets/p/filters/clip:recommend", dict(RECOMMEND, budget_samples=n))
        row = got["%d" % n]
        assert_eq(row[:2], [float(r["best_m"]), r["keep_fraction"]], "budget %g" % n)
        close(row[2], r["predicted_accuracy"], "accuracy at %g" % n)
        close(row[3], r["threshold"], "threshold at %g" % n)
        assert_eq(row[4], float(r["kept"]))
        best.add(r["best_m"])
    assert len(best) > 1, "the budgets should not all agree: %r" % best
    # a line per budget, every bucket a point, each budget's best marked
    assert_eq(len(re.findall(r'<path[^>]*class="line"', dom)), len(BUDGETS))
    assert_eq(len(re.findall(r'<circle[^>]*class="(?:pt|best)"', dom)), 4 * len(BUDGETS))
    assert_eq(len(re.findall(r'<circle[^>]*class="best"', dom)), len(BUDGETS))


@test
def subset_funnel_per_step_and_per_cluster():
    d, g = rendered()
    s = j(d, "GET", "/v1/datasets/p/subsets/s")
    dom = g["dom"]["subset"]
    prov = s["provenance"]
    assert_eq(float(attr(by_id(dom, "sub-members")[0], "data-value")), float(s["members"]))
    assert_eq(float(attr(by_id(dom, "sub-pool")[0], "data-value")), float(prov["pool"]))
    got = rows(dom, 'id="steps"', "data-step")
    for x in prov["steps"]:
        row = got[str(x["step"])]
        assert_eq(row[1:5], [float(x["in"]), float(x["out"]), float(x["in"] - x["out"]),
                             float(x["unscorable"])], "step %d" % x["step"])
        close(row[0], x["threshold"], "threshold of step %d" % x["step"])
    cl = prov["steps"][1]["clusters"]
    got = rows(dom[dom.index('class="clusters compact"') - 10:], "<table", "data-cluster")
    assert_eq(got, {str(i): [float(a), float(b)] for i, (a, b) in enumerate(zip(cl["in"], cl["out"]))})
    assert_eq(len(re.findall(r'class="funnel-row"', dom)), 1 + len(prov["steps"]))


@test
def adapter_precision_and_recall_match():
    d, g = rendered()
    a = j(d, "GET", "/v1/datasets/p/adapters/rel")
    got = rows(g["dom"]["adapter"], 'id="adapter-metrics"', "data-row")
    ho = a["training"]["held_out"]
    for key, row in (("adapter", "adapter"), ("raw_cosine", "raw"), ("top_k", "top-10")):
        m = ho[key]
        assert_eq(got[row][1:3], [m["precision"], m["recall"]], key)
    close(float(attr(by_id(g["dom"]["adapter"], "ad-threshold")[0], "data-value")),
          a["threshold"], "threshold")


@test
def hubness_before_and_after_match_the_report():
    d, g = rendered()
    r = j(d, "POST", "/v1/datasets/h/hubness/hn:report", REPORT)
    assert r["after"]["skewness"] < r["before"]["skewness"], r  # the planted hubs are tamed
    got = rows(g["dom"]["hubness"], 'id="hubness-table"', "data-key")
    for key in ("skewness", "skewness_retrieved_only", "never_retrieved", "max_n_k"):
        close(got[key][0], r["before"][key], "before " + key)
        close(got[key][1], r["after"][key], "after " + key)
    dom = g["dom"]["hubness"]
    for which in ("before", "after"):
        t = section(dom, 'data-which="%s"' % which)
        assert_eq(values(t), [float(h["n_k"]) for h in r[which]["top_hubs"]], which)


@test
def jobs_view_shows_every_job_and_its_state():
    d, g = rendered()
    jobs = j(d, "GET", "/v1/jobs?limit=50")["jobs"]
    got = re.findall(r'<tr data-job="([^"]*)" data-state="([^"]*)"', g["dom"]["jobs"])
    # the view was taken before the test's own later requests; the jobs were all done
    assert_eq(got, [(x["id"], x["state"]) for x in jobs])
    fr = re.findall(r'class="bar" data-fraction="([^"]*)"', g["dom"]["jobs"])
    assert_eq([float(f) for f in fr],
              [min(1.0, x["processed"] / x["total"]) if x["total"] else 1.0 for x in jobs])


@test
def api_reference_lists_every_operation():
    d, g = rendered()
    doc = j(d, "GET", "/v1/openapi.json")
    want = sorted((m.upper(), p) for p, item in doc["paths"].items() for m in item
                  if m in ("get", "put", "post", "patch", "delete"))
    got = sorted((html.unescape(m), html.unescape(p)) for m, p in re.findall(
        r'<section class="op" data-method="([^"]*)" data-path="([^"]*)"', g["dom"]["api"]))
    assert_eq(got, want)
    for name in doc["components"]["schemas"]:
        assert 'id="schema-%s"' % name in g["dom"]["api"], name


@test
def screenshots_are_distinct_pages():
    d, g = rendered()
    # the same page twice would be a routing bug: every view has its own picture
    sums = {}
    for name in views():
        with open(os.path.join(g["shots"], name + ".png"), "rb") as f:
            sums.setdefault(hashlib.sha256(f.read()).hexdigest(), []).append(name)
    dup = [v for v in sums.values() if len(v) > 1]
    assert not dup, dup


if __name__ == "__main__":
    wn.main()
