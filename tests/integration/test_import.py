# SPDX-License-Identifier: MIT
"""Integration tests of POST /v1/datasets/{name}/records:import: an NDJSON metadata part and
one .npy part per space (written by numpy), sent as multipart/form-data over plain HTTP, by
the CLI (`winnow import`) and by the Python client (Client.import_npy). Every record read back
equals the arrays bit for bit (f16 round trip, f32 arrays rounded into an f16 space as numpy
rounds them) and the metadata; whole-request errors are problems naming the part, per-line
errors are rejections with their line numbers. One daemon shared by the file."""

import io
import json
import os
import subprocess
import sys
import tempfile
import uuid

import numpy as np

import wn
from wn import assert_eq, assert_problem, assert_status, test

sys.path.insert(0, os.path.join(wn.REPO, "clients", "python"))

daemon = wn.Shared()
rng = np.random.default_rng(20261206)
CLI = os.environ.get("WINNOW_CLI") or os.path.join(wn.REPO, "build", "winnow")

IMG = 24  # f16 space
TXT = 12  # f32 space
SCHEMA = {"spaces": {"image": {"dim": IMG, "dtype": "f16"}, "text": {"dim": TXT, "dtype": "f32"}}}


def npy_bytes(arr, **kw):
    buf = io.BytesIO()
    np.save(buf, arr, **kw)
    return buf.getvalue()


def multipart(parts, boundary=None):
    """parts: [(name, bytes)] -> (content type, body)."""
    b = boundary or "wnb" + uuid.uuid4().hex
    out = []
    for name, data in parts:
        ctype = "application/x-ndjson" if name == "metadata" else "application/octet-stream"
        out.append(b"--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                   b"Content-Type: %s\r\n\r\n" % (b.encode(), name.encode(), name.encode(),
                                                   ctype.encode()))
        out.append(data)
        out.append(b"\r\n")
    out.append(b"--%s--\r\n" % b.encode())
    return "multipart/form-data; boundary=%s" % b, b"".join(out)


def post_import(d, ds, parts, boundary=None):
    ctype, body = multipart(parts, boundary)
    return d.json("POST", "/v1/datasets/%s/records:import" % wn.quote(ds), body,
                  content_type=ctype)


def meta_lines(metas):
    return "".join(json.dumps(m) + "\n" for m in metas).encode()


def make_records(n, prefix):
    metas = [{"id": "%s-%d" % (prefix, i), "text": "caption %d" % i,
              "meta": {"n": i, "src": prefix}} for i in range(n)]
    img = (rng.standard_normal((n, IMG)) * 3).astype(np.float16)
    txt = rng.standard_normal((n, TXT)).astype(np.float32)
    return metas, img, txt


def fresh(d, name):
    st, _, _ = d.json("DELETE", "/v1/datasets/" + name)
    assert st in (204, 404), st
    assert_status(d.put_dataset(name, SCHEMA), 201)


def check_back(d, ds, metas, img16, txt32):
    """Every record equals its metadata and its array rows bit for bit."""
    for i, m in enumerate(metas):
        st, _, rec = d.get_record(ds, m["id"])
        assert_eq(st, 200, "GET " + m["id"])
        assert_eq(rec["text"], m["text"], "text")
        assert_eq(rec["meta"], m["meta"], "meta")
        emb = rec["embeddings"]
        got_img = np.array(emb["image"], dtype=np.float64).astype(np.float16)
        assert got_img.tobytes() == np.asarray(img16[i], dtype=np.float16).tobytes(), (i, "image")
        got_txt = np.array(emb["text"], dtype=np.float64).astype(np.float32)
        assert got_txt.tobytes() == np.asarray(txt32[i], dtype=np.float32).tobytes(), (i, "text")


@test
def http_import_f16_and_f32():
    d = daemon()
    fresh(d, "imp")
    metas, img, txt = make_records(300, "h")
    st, _, ans = post_import(d, "imp", [("metadata", meta_lines(metas)),
                                        ("space.image", npy_bytes(img)),
                                        ("space.text", npy_bytes(txt))])
    assert_eq(st, 200, ans)
    assert_eq(ans, {"accepted": 300, "rejected": 0, "errors": []})
    check_back(d, "imp", metas, img, txt)
    assert_eq(d.get_json("/v1/datasets/imp")[2]["records"], 300, "count")


@test
def http_f32_array_into_f16_space_and_alignment():
    """An f32 array for the f16 space is rounded as numpy's astype(float16) rounds; odd
    metadata lengths put the array data at every byte alignment in the body."""
    d = daemon()
    fresh(d, "imp32")
    for pad in range(4):
        metas, _, txt = make_records(7, "a%d" % pad)
        for m in metas:
            m["text"] += "x" * pad
        img32 = rng.standard_normal((7, IMG)).astype(np.float32) * 100
        st, _, ans = post_import(d, "imp32", [("metadata", meta_lines(metas)),
                                              ("space.image", npy_bytes(img32)),
                                              ("space.text", npy_bytes(txt.astype(np.float16)))])
        assert_eq(st, 200, ans)
        assert_eq(ans["accepted"], 7)
        check_back(d, "imp32", metas, img32.astype(np.float16),
                   txt.astype(np.float16).astype(np.float32))


@test
def http_metadata_embeddings_for_other_space_and_upsert():
    d = daemon()
    fresh(d, "impmix")
    metas, img, txt = make_records(5, "m")
    for i, m in enumerate(metas):
        m["embeddings"] = {"text": [float(x) for x in txt[i]]}
    st, _, ans = post_import(d, "impmix", [("metadata", meta_lines(metas)),
                                           ("space.image", npy_bytes(img))])
    assert_eq(st, 200, ans)
    assert_eq(ans["accepted"], 5)
    check_back(d, "impmix", [{k: v for k, v in m.items() if k != "embeddings"} for m in metas],
               img, txt)
    # again with new arrays: an upsert, the count stays 5
    img2 = (img.astype(np.float32) + 1).astype(np.float16)
    st, _, ans = post_import(d, "impmix", [("metadata", meta_lines(metas)),
                                           ("space.image", npy_bytes(img2))])
    assert_eq(st, 200, ans)
    check_back(d, "impmix", [{k: v for k, v in m.items() if k != "embeddings"} for m in metas],
               img2, txt)
    assert_eq(d.get_json("/v1/datasets/impmix")[2]["records"], 5, "count after upsert")
    # the same space in the line and as a part: that record is rejected
    metas[2]["embeddings"] = {"image": [0.0] * IMG}
    st, _, ans = post_import(d, "impmix", [("metadata", meta_lines(metas)),
                                           ("space.image", npy_bytes(img))])
    assert_eq(st, 200, ans)
    assert_eq((ans["accepted"], ans["rejected"]), (4, 1))
    assert_eq((ans["errors"][0]["line"], ans["errors"][0]["code"]), (3, "invalid_field"))


@test
def http_bad_line_and_nan_row_rejected_with_line_numbers():
    d = daemon()
    fresh(d, "imprej")
    metas, img, txt = make_records(6, "r")
    lines = [json.dumps(m) for m in metas]
    lines[1] = '{"id": "r-1", "text": '          # not JSON
    lines[3] = json.dumps({"id": "r-3", "text": 5})  # text not a string
    txt[4, 7] = np.nan
    st, _, ans = post_import(d, "imprej", [("metadata", ("\n".join(lines) + "\n").encode()),
                                           ("space.image", npy_bytes(img)),
                                           ("space.text", npy_bytes(txt))])
    assert_eq(st, 200, ans)
    assert_eq((ans["accepted"], ans["rejected"]), (3, 3))
    got = [(e["line"], e["code"]) for e in ans["errors"]]
    assert_eq(got, [(2, "malformed_json"), (4, "invalid_field"), (5, "non_finite")])
    assert "space.text" in ans["errors"][2]["detail"] and "row 4" in ans["errors"][2]["detail"]
    assert_eq(ans["errors"][2]["id"], "r-4")
    kept = [metas[i] for i in (0, 2, 5)]
    check_back(d, "imprej", kept, img[[0, 2, 5]], txt[[0, 2, 5]])
    for i in (1, 3, 4):
        assert_eq(d.get_record("imprej", "r-%d" % i)[0], 404, "rejected r-%d" % i)
    # a request whose only record is rejected is a 422 with the same errors
    one = [("metadata", meta_lines(metas[4:5])), ("space.text", npy_bytes(txt[4:5]))]
    p = assert_problem(post_import(d, "imprej", one), 422, "no_records_accepted")
    assert_eq((p["accepted"], p["rejected"], p["errors"][0]["code"]), (0, 1, "non_finite"))
    # a finite f32 value beyond float16 overflows the f16 space
    big = np.full((1, IMG), 1e6, dtype=np.float32)
    p = assert_problem(post_import(d, "imprej", [("metadata", meta_lines(metas[:1])),
                                                 ("space.image", npy_bytes(big))]),
                       422, "no_records_accepted")
    assert "overflows float16" in p["errors"][0]["detail"], p


def whole_request_error(parts, status, code, words, ds="imperr"):
    d = daemon()
    before = d.get_json("/v1/datasets/" + ds)[2]["records"]
    p = assert_problem(post_import(d, ds, parts), status, code)
    for w in words:
        assert w in p["detail"], (w, p["detail"])
    assert_eq(d.get_json("/v1/datasets/" + ds)[2]["records"], before, "nothing stored")
    return p


@test
def http_whole_request_errors():
    d = daemon()
    fresh(d, "imperr")
    metas, img, txt = make_records(4, "e")
    meta = ("metadata", meta_lines(metas))
    good_img = ("space.image", npy_bytes(img))
    bad_magic = b"\x93NUMPX" + npy_bytes(txt)[6:]
    whole_request_error([meta, good_img, ("space.text", bad_magic)], 422, "invalid_npy",
                        ["space.text", "magic"])
    whole_request_error([meta, good_img, ("space.text", npy_bytes(txt[:3]))], 422,
                        "row_count_mismatch", ["space.text", "3 rows", "4 records"])
    whole_request_error([meta, ("space.image", npy_bytes(img[:, :IMG - 1]))], 422,
                        "dimension_mismatch", ["space.image", str(IMG - 1), str(IMG)])
    whole_request_error([meta, ("space.text", npy_bytes(np.asfortranarray(txt)))], 422,
                        "invalid_npy", ["space.text", "fortran_order"])
    whole_request_error([meta, ("space.text", npy_bytes(txt.astype(np.float64)))], 422,
                        "invalid_npy", ["space.text", "<f8"])
    whole_request_error([meta, ("space.text", npy_bytes(txt.astype(">f4")))], 422,
                        "invalid_npy", ["space.text", ">f4"])
    whole_request_error([meta, ("space.text", npy_bytes(txt.reshape(-1)))], 422,
                        "invalid_npy", ["space.text", "1 dimensions"])
    whole_request_error([meta, ("space.text", npy_bytes(txt)[:-3])], 422, "invalid_npy",
                        ["space.text", "data bytes"])
    whole_request_error([meta, good_img, ("labels", b"x")], 422, "unknown_part", ["'labels'"])
    whole_request_error([meta, ("space.audio", npy_bytes(txt))], 422, "unknown_space",
                        ["space.audio"])
    whole_request_error([meta, good_img, good_img], 422, "duplicate_part", ["space.image"])
    whole_request_error([good_img], 422, "missing_metadata", ["metadata"])
    whole_request_error([("metadata", b"\n\n"), ("space.image", npy_bytes(img[:0]))], 400,
                        "empty_body", ["metadata"])
    # versions 2.0 and 3.0 parse; 4.0 does not
    for ver in ((2, 0), (3, 0)):
        st, _, ans = post_import(d, "imperr", [meta, ("space.text", _npy_version(txt, ver))])
        assert_eq((st, ans["accepted"]), (200, 4), ver)
    v4 = bytearray(npy_bytes(txt))
    v4[6] = 4
    whole_request_error([meta, ("space.text", bytes(v4))], 422, "invalid_npy", ["4.0"])
    # not multipart, no boundary, a truncated body
    p = assert_problem(d.request("POST", "/v1/datasets/imperr/records:import", b"{}",
                                 content_type="application/json"), 415, "unsupported_media_type")
    p = assert_problem(d.request("POST", "/v1/datasets/imperr/records:import", b"x",
                                 content_type="multipart/form-data"), 415, "unsupported_media_type")
    ctype, body = multipart([meta, good_img])
    p = assert_problem(d.request("POST", "/v1/datasets/imperr/records:import",
                                 body[:len(body) // 2], content_type=ctype), 400,
                       "malformed_multipart")
    assert_problem(d.request("POST", "/v1/datasets/nosuch/records:import", body,
                             content_type=ctype), 404)


def _npy_version(arr, ver):
    import numpy.lib.format as fmt
    buf = io.BytesIO()
    fmt.write_array(buf, arr, version=ver)
    return buf.getvalue()


def cli(d, *args):
    env = dict(os.environ, WINNOW_URL="http://%s:%d" % (d.host, d.port))
    env.pop("WINNOW_KEY", None)
    return subprocess.run([CLI] + list(args), capture_output=True, timeout=120 * wn.SLOW,
                          env=env)


@test
def cli_import_in_batches_with_file_line_numbers():
    d = daemon()
    fresh(d, "impcli")
    metas, img, txt = make_records(250, "c")
    lines = [json.dumps(m) for m in metas]
    lines[100] = json.dumps({"id": "c-100", "kind": "video"})  # rejected: bad kind
    tmp = tempfile.mkdtemp(prefix="winnow-imp-")
    meta_path = os.path.join(tmp, "meta.ndjson")
    with open(meta_path, "w") as f:
        # a blank line first: file lines are one more than record numbers from here on
        f.write("\n" + "\n".join(lines) + "\n")
    np.save(os.path.join(tmp, "img.npy"), img.astype(np.float32))  # f32 into the f16 space
    np.save(os.path.join(tmp, "txt.npy"), txt)
    p = cli(d, "import", "impcli", "--metadata", meta_path,
            "--space", "image=" + os.path.join(tmp, "img.npy"),
            "--space", "text=" + os.path.join(tmp, "txt.npy"), "--batch", "60")
    assert_eq(p.returncode, 6, p.stderr)  # some lines rejected
    summary = json.loads(p.stdout)
    assert_eq((summary["accepted"], summary["rejected"], summary["batches"]), (249, 1, 5))
    assert_eq((summary["errors"][0]["line"], summary["errors"][0]["code"]), (102, "invalid_kind"))
    err = p.stderr.decode()
    assert "batch 1, lines 2-61: 60 accepted, 0 rejected" in err, err
    assert "batch 2, lines 62-121: 59 accepted, 1 rejected" in err, err
    assert "line 102 id c-100 invalid_kind" in err, err
    kept = [m for i, m in enumerate(metas) if i != 100]
    idx = [i for i in range(250) if i != 100]
    check_back(d, "impcli", kept, img[idx], txt[idx])
    # --from-line resumes: the rows follow the records
    fresh(d, "impcli")
    p = cli(d, "import", "impcli", "--metadata", meta_path, "-q",
            "--space", "image=" + os.path.join(tmp, "img.npy"),
            "--space", "text=" + os.path.join(tmp, "txt.npy"), "--from-line", "200")
    assert_eq(p.returncode, 0, p.stderr)
    assert_eq(p.stderr, b"")
    assert_eq(json.loads(p.stdout)["accepted"], 52)
    check_back(d, "impcli", metas[198:], img[198:], txt[198:])
    assert_eq(d.get_record("impcli", "c-197")[0], 404)
    # mismatched row counts are found before anything is sent
    np.save(os.path.join(tmp, "short.npy"), txt[:249])
    p = cli(d, "import", "impcli", "--metadata", meta_path,
            "--space", "text=" + os.path.join(tmp, "short.npy"))
    assert_eq(p.returncode, 2, p.stderr)
    assert b"250 records, the arrays have 249 rows" in p.stderr, p.stderr
    p = cli(d, "import", "impcli", "--metadata", meta_path,
            "--space", "image=" + os.path.join(tmp, "img.npy"),
            "--space", "text=" + os.path.join(tmp, "short.npy"))
    assert_eq(p.returncode, 2, p.stderr)
    assert b"249 rows" in p.stderr and b"250" in p.stderr, p.stderr
    with open(os.path.join(tmp, "bad.npy"), "wb") as f:
        f.write(npy_bytes(np.asfortranarray(txt)))
    p = cli(d, "import", "impcli", "--metadata", meta_path,
            "--space", "text=" + os.path.join(tmp, "bad.npy"))
    assert_eq(p.returncode, 2, p.stderr)
    assert b"fortran_order" in p.stderr, p.stderr
    # the daemon's whole-request problem: exit 1 with its code
    p = cli(d, "import", "impcli", "--metadata", meta_path,
            "--space", "audio=" + os.path.join(tmp, "txt.npy"))
    assert_eq(p.returncode, 1, p.stderr)
    assert b"unknown_space" in p.stderr, p.stderr
    assert_eq(d.get_json("/v1/datasets/impcli")[2]["records"], 52, "nothing more stored")
    subprocess.run(["rm", "-rf", tmp])


@test
def python_client_import_npy_arrays_and_paths():
    import winnow
    d = daemon()
    fresh(d, "imppy")
    metas, img, txt = make_records(90, "p")
    metas[10]["text"] = 7  # rejected: text not a string
    c = winnow.Client("http://%s:%d" % (d.host, d.port))
    seen = []
    res = c.import_npy("imppy", metas, {"image": img, "text": txt}, batch=40,
                       progress=lambda r: seen.append(r["accepted"]))
    assert_eq((res["accepted"], res["rejected"], res["batches"]), (89, 1, 3))
    assert_eq(seen, [39, 79, 89])
    assert_eq((res["errors"][0]["line"], res["errors"][0]["code"]), (11, "invalid_field"))
    keep = [i for i in range(90) if i != 10]
    check_back(d, "imppy", [metas[i] for i in keep], img[keep], txt[keep])
    # paths: NDJSON file and .npy files read without numpy (f32 into the f16 space, and a
    # version 2.0 file)
    fresh(d, "imppy")
    tmp = tempfile.mkdtemp(prefix="winnow-imppy-")
    metas[10]["text"] = "ok"
    meta_path = os.path.join(tmp, "m.ndjson")
    with open(meta_path, "w") as f:
        f.write("".join(json.dumps(m) + "\n\n" for m in metas))  # blank lines between
    img32 = rng.standard_normal((90, IMG)).astype(np.float32)
    np.save(os.path.join(tmp, "img.npy"), img32)
    with open(os.path.join(tmp, "txt.npy"), "wb") as f:
        f.write(_npy_version(txt, (2, 0)))
    res = c.import_npy("imppy", meta_path, {"image": os.path.join(tmp, "img.npy"),
                                             "text": os.path.join(tmp, "txt.npy")},
                       batch_bytes=8 << 10)
    assert_eq((res["accepted"], res["rejected"]), (90, 0))
    assert res["batches"] >= 3, res["batches"]  # about 21 KiB in batches under 8 KiB
    check_back(d, "imppy", metas, img32.astype(np.float16), txt)
    # a row count mismatch is found before anything is sent
    try:
        c.import_npy("imppy", metas[:5], {"text": txt})
        raise AssertionError("no ValueError")
    except ValueError as e:
        assert "5 records" in str(e) and "90 rows" in str(e), e
    bad = os.path.join(tmp, "fortran.npy")
    np.save(bad, np.asfortranarray(txt))
    try:
        c.import_npy("imppy", metas, {"text": bad})
        raise AssertionError("no ValueError")
    except ValueError as e:
        assert "C-order" in str(e) and "fortran_order" in str(e), e
    # the daemon's problems raise WinnowError with its code
    try:
        c.import_npy("imppy", metas, {"audio": txt})
        raise AssertionError("no WinnowError")
    except winnow.WinnowError as e:
        assert_eq((e.status, e.code), (422, "unknown_space"))
    c.close()
    subprocess.run(["rm", "-rf", tmp])


@test
def cli_import_progress_bar_on_a_terminal():
    """stderr on a pseudo-terminal: a redrawn bar that ends at 100%, with the batch lines."""
    import pty
    import threading
    d = daemon()
    fresh(d, "imptty")
    metas, img, _ = make_records(600, "t")
    tmp = tempfile.mkdtemp(prefix="winnow-imptty-")
    with open(os.path.join(tmp, "m.ndjson"), "w") as f:
        f.write("".join(json.dumps(m) + "\n" for m in metas))
    np.save(os.path.join(tmp, "img.npy"), img)
    master, slave = pty.openpty()
    env = dict(os.environ, WINNOW_URL="http://%s:%d" % (d.host, d.port))
    p = subprocess.Popen([CLI, "import", "imptty", "--metadata", os.path.join(tmp, "m.ndjson"),
                          "--space", "image=" + os.path.join(tmp, "img.npy"), "--batch", "200"],
                         stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    chunks = []

    def reader():
        while True:
            try:
                b = os.read(master, 4096)
            except OSError:
                return
            if not b:
                return
            chunks.append(b)
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    out, _ = p.communicate(timeout=60 * wn.SLOW)
    t.join(10)
    os.close(master)
    err = b"".join(chunks).decode(errors="replace")
    assert_eq(p.returncode, 0, err)
    assert_eq(json.loads(out)["accepted"], 600)
    assert "\r[####################] 100%" in err, err
    assert "\x1b[K" in err, err
    for k, (a, b) in enumerate(((1, 200), (201, 400), (401, 600)), 1):
        assert "winnow: batch %d, lines %d-%d: 200 accepted, 0 rejected" % (k, a, b) in err, err
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    wn.main()
