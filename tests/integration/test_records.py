# SPDX-License-Identifier: MIT
"""Integration tests of /v1/datasets/{name}/records: NDJSON and JSON ingest, bit-exact
vectors (f32 and f16, JSON arrays and base64), upsert, delete, a large batch, per-line
rejections and whole-request errors. One daemon shared by the file."""

import json
import threading

import numpy as np

import wn
from wn import assert_eq, assert_problem, assert_status, b64, test

daemon = wn.Shared()
rng = np.random.default_rng(20261128)

CLIP = 16  # f32 space
HALF = 8   # f16 space
SCHEMA = {"spaces": {"clip": {"dim": CLIP, "dtype": "f32"}, "half": {"dim": HALF, "dtype": "f16"}}}
RECORD_KEYS = {"id", "kind", "text", "image", "meta", "signals", "row", "embeddings"}

F32_EDGES = np.array([0.0, -0.0, 1.0, -1.0, 1e-45, 1.1754942e-38, 1.17549435e-38, 3.4028235e38,
                      -3.4028235e38, 0.1, 1 / 3, 16777217.0, 1e-7, 123456.789, np.pi, np.e],
                     dtype=np.float32)


def rand_f32(n):
    """float32 values of many magnitudes and both signs (printing must keep every bit)."""
    mant = rng.standard_normal(n)
    scale = 10.0 ** rng.integers(-20, 20, n)
    return (mant * scale).astype(np.float32)


def as_json(arr):
    """JSON numbers for a float32/float16 array: repr() of each value as a double."""
    return [float(x) for x in np.asarray(arr, dtype=np.float64)]


def f32_b64(arr):
    return {"dtype": "f32", "b64": b64(np.asarray(arr, dtype="<f4").tobytes())}


def f16_b64(arr):
    return {"dtype": "f16", "b64": b64(np.asarray(arr, dtype="<f2").tobytes())}


def same_f32(returned, expected):
    """The returned JSON numbers equal expected bit for bit once read as float32."""
    got = np.array(returned, dtype=np.float64).astype(np.float32)
    return got.tobytes() == np.asarray(expected, dtype=np.float32).tobytes()


def get_vectors(d, ds, rid):
    """GET the record; returns (record, embeddings parsed with ints as floats so -0 keeps
    its sign)."""
    path = "/v1/datasets/%s/records/%s" % (wn.quote(ds), wn.quote(rid))
    st, hdrs, data = d.request("GET", path)
    assert_status((st, hdrs, data), 200, "GET " + path)
    assert_eq(hdrs.get("content-type", "").split(";")[0], "application/json", "content type")
    rec = json.loads(data)
    emb = json.loads(data, parse_int=float).get("embeddings")
    return rec, emb


def check_vec(emb, space, expected):
    assert space in emb, "space %s missing: %r" % (space, emb)
    if not same_f32(emb[space], expected):
        raise AssertionError("space %s: expected %r, got %r"
                             % (space, as_json(expected), emb[space]))


def new_dataset(name, schema=None):
    d = daemon()
    st, _, body = d.put_dataset(name, schema or SCHEMA)
    assert st == 201, (name, st, body)
    return d


def ingest_ok(d, ds, records, accepted=None):
    st, _, body = d.ingest(ds, records)
    n = len(records) if accepted is None else accepted
    if st != 200 or body.get("accepted") != n or body.get("rejected") != len(records) - n:
        raise AssertionError("ingest into %s: %d %r" % (ds, st, body))
    return body


def count(d, ds):
    st, _, body = d.get_json("/v1/datasets/" + wn.quote(ds))
    assert_eq(st, 200, "GET dataset " + ds)
    return body["records"], body["rows"]


@test
def ndjson_record_round_trips():
    d = new_dataset("rt")
    clip = np.concatenate([F32_EDGES[:8], rand_f32(CLIP - 8)])
    rec = {
        "id": "rec-1",
        "text": "a photo of a cat \u00e9\u4e2d\U0001F408 \"quoted\" \\ back\nslash\ttab",
        "image": {"url": "https://example.com/cat.jpg?x=1&y=2", "sha256": "ab" * 32,
                  "width": 640, "height": 480},
        "meta": {"source": "cc", "n": 3, "f": 0.25, "neg": -7, "big": 9007199254740993,
                 "nested": {"list": [1, "two", None, True, False, 2.5e-3]}, "empty": {}},
        "signals": {"clip_score": 0.3125, "lm": {"loss": 2.5, "ppl": 12.75}},
        "embeddings": {"clip": as_json(clip)},
    }
    body = ingest_ok(d, "rt", [rec])
    assert_eq(body["errors"], [], "errors")
    got, emb = get_vectors(d, "rt", "rec-1")
    assert_eq(set(got), RECORD_KEYS, "record keys")
    assert_eq(got["id"], "rec-1", "id")
    assert_eq(got["kind"], "image-text", "kind defaults to image-text with an image")
    for key in ("text", "image", "meta", "signals"):
        assert_eq(got[key], rec[key], key)
    assert_eq(got["row"], 0, "first row")
    assert_eq(set(emb), {"clip"}, "embedding spaces")
    check_vec(emb, "clip", clip)


@test
def f32_edge_values_are_bit_exact():
    d = new_dataset("edges")
    recs = [{"id": "json", "embeddings": {"clip": as_json(F32_EDGES)}},
            {"id": "b64", "embeddings": {"clip": f32_b64(F32_EDGES)}}]
    ingest_ok(d, "edges", recs)
    for rid in ("json", "b64"):
        got, emb = get_vectors(d, "edges", rid)
        assert_eq(got["kind"], "text", "kind defaults to text without an image")
        check_vec(emb, "clip", F32_EDGES)


@test
def f32_random_values_are_bit_exact():
    d = new_dataset("f32rand")
    vecs = [rand_f32(CLIP) for _ in range(40)]
    recs = []
    for i, v in enumerate(vecs):
        emb = as_json(v) if i % 2 == 0 else f32_b64(v)
        recs.append({"id": "v%d" % i, "embeddings": {"clip": emb}})
    ingest_ok(d, "f32rand", recs)
    for i, v in enumerate(vecs):
        check_vec(get_vectors(d, "f32rand", "v%d" % i)[1], "clip", v)


@test
def f16_space_stores_f16_rounding():
    d = new_dataset("half")
    edges = np.array([0.1, 1 / 3, 2049.0, 2051.0, 65504.0, 65519.0, 6e-8, -0.0],
                     dtype=np.float32)
    rand = (rng.standard_normal(HALF) * 100).astype(np.float32)
    halfs = (rng.standard_normal(HALF) * 10).astype(np.float16)
    recs = [
        {"id": "json-edges", "embeddings": {"half": as_json(edges)}},
        {"id": "json-rand", "embeddings": {"half": as_json(rand)}},
        {"id": "b64-f16", "embeddings": {"half": f16_b64(halfs)}},
        {"id": "b64-f32", "embeddings": {"half": f32_b64(rand)}},
        # An f16 vector into the f32 space keeps its exact values.
        {"id": "f16-into-f32", "embeddings": {"clip": f16_b64(np.resize(halfs, CLIP))}},
    ]
    ingest_ok(d, "half", recs)
    expect = {"json-edges": ("half", edges.astype(np.float16)),
              "json-rand": ("half", rand.astype(np.float16)),
              "b64-f16": ("half", halfs),
              "b64-f32": ("half", rand.astype(np.float16)),
              "f16-into-f32": ("clip", np.resize(halfs, CLIP))}
    for rid, (space, want) in expect.items():
        check_vec(get_vectors(d, "half", rid)[1], space, want.astype(np.float32))
    # 2049 -> 2048, 2051 -> 2052 (ties to even), 65519 -> 65504, 6e-8 -> 2^-24.
    got = get_vectors(d, "half", "json-edges")[1]["half"]
    assert same_f32(got[2:7], [2048.0, 2052.0, 65504.0, 65504.0, 2.0 ** -24]), got
    assert np.signbit(np.float32(got[7])), "f16 -0.0 keeps its sign: %r" % got[7]


@test
def f16_overflow_and_f32_overflow_are_non_finite():
    d = new_dataset("ovf")
    big = np.full(HALF, 1.0, dtype=np.float32)
    big[3] = 65520.0
    recs = [
        {"id": "ok", "embeddings": {"half": as_json(np.ones(HALF))}},
        {"id": "h-json", "embeddings": {"half": as_json(big)}},
        {"id": "h-b64", "embeddings": {"half": f32_b64(big)}},
        {"id": "f-json", "embeddings": {"clip": [1e39] + [0.0] * (CLIP - 1)}},
    ]
    body = ingest_ok(d, "ovf", recs, accepted=1)
    got = sorted((e["line"], e["code"], e.get("id")) for e in body["errors"])
    assert_eq(got, [(2, "non_finite", "h-json"), (3, "non_finite", "h-b64"),
                    (4, "non_finite", "f-json")], "errors")
    for rid in ("h-json", "h-b64", "f-json"):
        assert_problem(d.get_record("ovf", rid), 404)


@test
def embeddings_false_leaves_them_out():
    d = new_dataset("noemb")
    v = rand_f32(CLIP)
    rec = {"id": "x", "text": "hello", "meta": {"a": 1}, "embeddings": {"clip": as_json(v)}}
    ingest_ok(d, "noemb", [rec])
    st, _, got = d.get_record("noemb", "x", "?embeddings=false")
    assert_eq(st, 200, "status")
    assert_eq(got, {"id": "x", "kind": "text", "text": "hello", "meta": {"a": 1}, "row": 0},
              "record without embeddings")
    st, _, got = d.get_record("noemb", "x", "?embeddings=true")
    assert_eq(st, 200, "status")
    assert same_f32(got["embeddings"]["clip"], v), got


@test
def json_ingest():
    d = new_dataset("jsonin")
    v = rand_f32(CLIP)
    recs = [{"id": "j1", "text": "one", "embeddings": {"clip": as_json(v)}},
            {"id": "j2", "text": "two", "embeddings": {"half": f16_b64(np.ones(HALF))}},
            {"id": "j3", "kind": "image-text", "text": "three",
             "image": {"url": "u", "sha256": "0" * 64, "width": 1, "height": 2}}]
    st, hdrs, body = d.json("POST", "/v1/datasets/jsonin/records", {"records": recs})
    assert_eq((st, body), (200, {"accepted": 3, "rejected": 0, "errors": []}), "answer")
    assert_eq(hdrs.get("content-type", "").split(";")[0], "application/json", "content type")
    check_vec(get_vectors(d, "jsonin", "j1")[1], "clip", v)
    got = d.get_record("jsonin", "j3")[2]
    assert_eq((got["kind"], got["text"], got["image"]),
              ("image-text", "three", recs[2]["image"]), "j3")
    # A bad element of the array is reported with its 1-based position.
    recs = [{"id": "j4"}, {"id": "j5", "embeddings": {"clip": [1.0]}}]
    st, _, body = d.json("POST", "/v1/datasets/jsonin/records", {"records": recs})
    assert_eq((st, body["accepted"], body["rejected"]), (200, 1, 1), "mixed JSON batch")
    assert_eq([(e["line"], e["code"], e.get("id")) for e in body["errors"]],
              [(2, "dimension_mismatch", "j5")], "errors")
    assert_eq(count(d, "jsonin"), (4, 4), "records, rows")


@test
def upsert_keeps_row_and_replaces():
    d = new_dataset("ups")
    v1, v2, h1 = rand_f32(CLIP), rand_f32(CLIP), rng.standard_normal(HALF).astype(np.float16)
    ingest_ok(d, "ups", [{"id": "a", "text": "first"}, {"id": "b"}])
    ingest_ok(d, "ups", [{"id": "x", "text": "old", "meta": {"m": 1}, "signals": {"s": 1},
                          "embeddings": {"clip": as_json(v1), "half": f16_b64(h1)}}])
    old, emb = get_vectors(d, "ups", "x")
    assert_eq(old["row"], 2, "row of x")
    assert_eq(set(emb), {"clip", "half"}, "spaces before")
    ingest_ok(d, "ups", [{"id": "x", "text": "new", "embeddings": {"clip": f32_b64(v2)}}])
    new, emb = get_vectors(d, "ups", "x")
    assert_eq(new["row"], old["row"], "row kept")
    assert_eq(new["text"], "new", "text replaced")
    assert "meta" not in new and "signals" not in new, "old fields gone: %r" % new
    assert_eq(set(emb), {"clip"}, "spaces after (half removed)")
    check_vec(emb, "clip", v2)
    assert_eq(count(d, "ups"), (3, 3), "records, rows")
    # Duplicates inside one batch: the later line wins, one row.
    ingest_ok(d, "ups", [{"id": "dup", "text": "1"}, {"id": "dup", "text": "2"}])
    got = d.get_record("ups", "dup")[2]
    assert_eq((got["text"], got["row"]), ("2", 3), "duplicate in batch")
    assert_eq(count(d, "ups"), (4, 4), "records, rows")


@test
def delete_then_404_and_reinsert_gets_new_row():
    d = new_dataset("del")
    ingest_ok(d, "del", [{"id": "r%d" % i, "text": str(i)} for i in range(3)])
    assert_eq([d.get_record("del", "r%d" % i)[2]["row"] for i in range(3)], [0, 1, 2], "rows")
    st, _, body = d.request("DELETE", "/v1/datasets/del/records/r1")
    assert_eq((st, body), (204, b""), "DELETE")
    assert_problem(d.get_record("del", "r1"), 404)
    assert_problem(d.request("DELETE", "/v1/datasets/del/records/r1"), 404)
    assert_problem(d.request("DELETE", "/v1/datasets/del/records/never"), 404)
    assert_eq(count(d, "del"), (2, 3), "records, rows after delete")
    ingest_ok(d, "del", [{"id": "r1", "text": "again"}])
    got = d.get_record("del", "r1")[2]
    assert_eq((got["text"], got["row"]), ("again", 3), "re-inserted record")
    assert_eq(count(d, "del"), (3, 4), "records, rows after re-insert")
    assert_eq(d.get_record("del", "r2")[2]["row"], 2, "others keep their rows")


@test
def ids_with_special_characters():
    d = new_dataset("ids")
    ids = ["a/b", "sp ace", "\u00fc\u00f1\u00ed", "q?x=1&y", "hash#1", "pct%41", "plus+",
           "0123456789abcdef0123456789abcdef", "x" * 256, "a//b/", "~tilde.dot-"]
    ingest_ok(d, "ids", [{"id": rid, "text": rid} for rid in ids])
    for rid in ids:
        st, _, got = d.get_record("ids", rid)
        assert_eq((st, got.get("id"), got.get("text")), (200, rid, rid), "GET %r" % rid)
    for rid in ids:
        st = d.request("DELETE", "/v1/datasets/ids/records/" + wn.quote(rid))[0]
        assert_eq(st, 204, "DELETE %r" % rid)
    assert_eq(count(d, "ids")[0], 0, "all deleted")


@test
def id_length_is_counted_in_bytes():
    d = new_dataset("idbytes")
    ok, long_ = "\u00fc" * 128, "\u00fc" * 129  # 256 and 258 bytes of UTF-8
    st, _, body = d.ingest("idbytes", [{"id": ok}, {"id": long_}])
    assert_eq((st, body["accepted"]), (200, 1), "status, accepted")
    assert_eq([(e["line"], e["code"]) for e in body["errors"]], [(2, "invalid_id")], "errors")
    assert_eq(d.get_record("idbytes", ok)[2].get("id"), ok, "256-byte id readable")


@test
def rows_are_not_reused_by_other_ids():
    d = new_dataset("rows")
    ingest_ok(d, "rows", [{"id": "a"}, {"id": "b"}, {"id": "c"}])
    for rid in ("a", "b"):
        assert_eq(d.request("DELETE", "/v1/datasets/rows/records/" + rid)[0], 204, "delete")
    ingest_ok(d, "rows", [{"id": "x"}, {"id": "y"}])
    assert_eq([d.get_record("rows", r)[2]["row"] for r in ("c", "x", "y")], [2, 3, 4], "rows")
    assert_eq(count(d, "rows"), (3, 5), "records, rows")


@test
def concurrent_upserts_of_the_same_ids():
    d = new_dataset("race")
    ids = ["same-%d" % i for i in range(10)]
    errors = []

    def writer(t):
        try:
            for k in range(15):
                recs = [{"id": rid, "text": "t%d-%d" % (t, k)} for rid in ids]
                st, _, body = d.ingest("race", recs)
                if st != 200 or body.get("accepted") != len(ids):
                    errors.append((t, k, st, body))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append((t, repr(exc)))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120 * wn.SLOW)
        assert not th.is_alive(), "writer did not finish"
    assert not errors, errors[:3]
    assert_eq(count(d, "race"), (10, 10), "records, rows")
    rows = sorted(d.get_record("race", rid)[2]["row"] for rid in ids)
    assert_eq(rows, list(range(10)), "each id has one row")


@test
def big_ndjson_batch():
    d = new_dataset("big")
    n = 2000
    vecs = rand_f32(n * CLIP).reshape(n, CLIP)
    recs = []
    for i in range(n):
        emb = as_json(vecs[i]) if i % 2 else f32_b64(vecs[i])
        recs.append({"id": "%032x" % (i * 2654435761), "text": "caption %d" % i,
                     "meta": {"i": i}, "embeddings": {"clip": emb}})
    body = ingest_ok(d, "big", recs)
    assert_eq(body["errors"], [], "errors")
    assert_eq(count(d, "big"), (n, n), "records, rows")
    for i in rng.choice(n, 12, replace=False):
        got, emb = get_vectors(d, "big", recs[i]["id"])
        assert_eq((got["text"], got["meta"]), ("caption %d" % i, {"i": int(i)}), "record")
        check_vec(emb, "clip", vecs[i])



@test
def big_batch_with_scattered_rejections():
    """A batch large enough to be parsed by several threads keeps line numbers and order."""
    d = new_dataset("scatter")
    n = 1500
    bad_at = set(range(7, n, 97)) | {n}
    lines = []
    for i in range(1, n + 1):
        if i in bad_at:
            lines.append({"id": "bad-%d" % i, "embeddings": {"clip": [1.0]}})
        else:
            lines.append({"id": "ok-%d" % i, "embeddings": {"clip": as_json(rand_f32(CLIP))}})
    body = ingest_ok(d, "scatter", lines, accepted=n - len(bad_at))
    assert_eq(body["accepted"], n - len(bad_at), "accepted")
    assert_eq(body["rejected"], len(bad_at), "rejected")
    assert_eq([(e["line"], e["id"], e["code"]) for e in body["errors"]],
              [(i, "bad-%d" % i, "dimension_mismatch") for i in sorted(bad_at)], "errors")
    assert_eq(count(d, "scatter"), (n - len(bad_at), n - len(bad_at)), "records, rows")
    st, _, _ = d.get_record("scatter", "bad-7")
    assert_eq(st, 404, "bad record absent")
    st, _, rec = d.get_record("scatter", "ok-1500" if n not in bad_at else "ok-1499")
    assert_eq(st, 200, "last good record present")

def mixed_lines():
    """(line bytes or dict, expected code or None for a good line, id if known)."""
    good = lambda rid: {"id": rid, "text": "good " + rid,
                        "embeddings": {"clip": as_json(rand_f32(CLIP))}}
    nan = np.zeros(CLIP, dtype=np.float32)
    nan[5] = np.nan
    inf_line = ('{"id": "b-inf", "embeddings": {"clip": [1e999%s]}}'
                % (", 0.5" * (CLIP - 1))).encode()
    return [
        (good("g1"), None, "g1"),
        ({"text": "no id"}, "missing_id", None),
        (good("i" * 256), None, "i" * 256),
        ({"id": "i" * 257, "text": "long id"}, "invalid_id", None),
        ({"id": "b-space", "embeddings": {"nope": [1.0, 2.0]}}, "unknown_space", "b-space"),
        ({"id": "b-dim", "embeddings": {"clip": [1.0, 2.0, 3.0]}}, "dimension_mismatch",
         "b-dim"),
        (good("g2"), None, "g2"),
        # The number does not parse as a double, so the id may stay unknown.
        (inf_line, "non_finite", None),
        ({"id": "b-nan", "embeddings": {"clip": f32_b64(nan)}}, "non_finite", "b-nan"),
        ({"id": "b-b64", "embeddings": {"clip": {"dtype": "f32", "b64": "!!!!"}}},
         "invalid_embedding", "b-b64"),
        ({"id": "b-len", "embeddings": {"clip": {"dtype": "f32",
                                                 "b64": b64(b"\0" * (4 * CLIP + 2))}}},
         "invalid_embedding", "b-len"),
        ({"id": "b-elem", "embeddings": {"clip": ["x"] * CLIP}}, "invalid_embedding", "b-elem"),
        (b'{"id": "b-utf8", "text": "bad \xff byte"}', "malformed_json", None),
        ({"id": "b-meta", "meta": [1, 2]}, "invalid_field", "b-meta"),
        ({"id": "b-kind", "kind": "video"}, "invalid_kind", "b-kind"),
        (b"this is not json", "malformed_json", None),
        ({"id": "g3", "embeddings": {"half": f16_b64(np.ones(HALF))}}, None, "g3"),
        # A bad line that would overwrite a good record leaves it untouched.
        ({"id": "keep", "text": "overwritten", "embeddings": {"clip": [0.0]}},
         "dimension_mismatch", "keep"),
        (good("g4"), None, "g4"),
    ]


@test
def mixed_batch_rejects_only_bad_lines():
    d = new_dataset("mixed")
    ingest_ok(d, "mixed", [{"id": "keep", "text": "original"}])
    lines = mixed_lines()
    st, _, body = d.ingest("mixed", [l for l, _, _ in lines])
    assert_eq(st, 200, "status")
    good = [rid for _, code, rid in lines if code is None]
    bad = [(i + 1, code, rid) for i, (_, code, rid) in enumerate(lines) if code is not None]
    assert_eq((body["accepted"], body["rejected"]), (len(good), len(bad)), "counts")
    got = sorted((e["line"], e["code"]) for e in body["errors"])
    assert_eq(got, [(line, code) for line, code, _ in bad], "errors (line, code)")
    for e in body["errors"]:
        assert isinstance(e.get("detail"), str) and e["detail"], e
        want = [rid for line, _, rid in bad if line == e["line"]][0]
        if want is not None:
            assert_eq(e.get("id"), want, "id of line %d" % e["line"])
    for rid in good:
        assert_eq(d.get_record("mixed", rid)[0], 200, "good %s readable" % rid[:20])
    for _, _, rid in bad:
        if rid is not None and rid != "keep":
            assert_problem(d.get_record("mixed", rid), 404)
    for rid in ("i" * 257, "b-utf8", "b-inf"):
        assert_problem(d.get_record("mixed", rid), 404)
    assert_eq(d.get_record("mixed", "keep")[2]["text"], "original", "keep untouched")
    assert_eq(count(d, "mixed"), (1 + len(good), 1 + len(good)), "records, rows")


@test
def more_invalid_fields():
    d = new_dataset("fields")
    cases = [
        ({"id": 123}, "invalid_id"),
        ({"id": ""}, "invalid_id"),
        ({"id": "t-int", "text": 5}, "invalid_field"),
        ({"id": "w0", "image": {"url": "u", "sha256": "0" * 64, "width": 0, "height": 1}},
         "invalid_field"),
        ({"id": "wstr", "image": {"url": "u", "sha256": "0" * 64, "width": "640",
                                  "height": 1}}, "invalid_field"),
        ({"id": "sha", "image": {"url": "u", "sha256": "xyz", "width": 1, "height": 1}},
         "invalid_field"),
        ({"id": "sig", "signals": {"a": "high"}}, "invalid_field"),
        ({"id": "sig2", "signals": {"a": {"k": "v"}}}, "invalid_field"),
        ({"id": "meta-str", "meta": "m"}, "invalid_field"),
    ]
    st, _, body = d.ingest("fields", [c for c, _ in cases] + [{"id": "fine"}])
    assert_eq((st, body["accepted"]), (200, 1), "status, accepted")
    got = sorted((e["line"], e["code"]) for e in body["errors"])
    assert_eq(got, [(i + 1, code) for i, (_, code) in enumerate(cases)], "errors")
    assert_eq(count(d, "fields"), (1, 1), "records, rows")


@test
def kind_not_accepted_by_schema():
    d = new_dataset("textkind", {"spaces": {}, "kinds": ["text"]})
    img = {"url": "u", "sha256": "0" * 64, "width": 1, "height": 1}
    st, _, body = d.ingest("textkind", [{"id": "t", "text": "ok"},
                                        {"id": "i", "image": img},
                                        {"id": "k", "kind": "image-text", "image": img}])
    assert_eq((st, body["accepted"]), (200, 1), "status, accepted")
    assert_eq(sorted((e["line"], e["code"]) for e in body["errors"]),
              [(2, "invalid_kind"), (3, "invalid_kind")], "errors")


@test
def all_bad_batch_is_422():
    d = new_dataset("allbad")
    lines = [{"text": "no id"}, {"id": "d", "embeddings": {"clip": [1.0]}}, b"{nope"]
    p = assert_problem(d.ingest("allbad", lines), 422)
    got = sorted((e["line"], e["code"]) for e in p.get("errors", []))
    assert_eq(got, [(1, "missing_id"), (2, "dimension_mismatch"), (3, "malformed_json")],
              "errors")
    p = assert_problem(d.ingest("allbad", [b"garbage"]), 422)
    assert_eq([(e["line"], e["code"]) for e in p["errors"]], [(1, "malformed_json")], "errors")
    p = assert_problem(d.json("POST", "/v1/datasets/allbad/records", {"records": [{"x": 1}]}),
                       422)
    assert_eq([(e["line"], e["code"]) for e in p["errors"]], [(1, "missing_id")], "errors")
    assert_eq(count(d, "allbad"), (0, 0), "nothing written")


@test
def blank_lines_are_ignored():
    d = new_dataset("blank")
    body = b'\n{"id": "a"}\n\n{"id": "b"}\n\n\n{"id": "c"}'
    st, _, ans = d.json("POST", "/v1/datasets/blank/records", body,
                        content_type="application/x-ndjson")
    assert_eq((st, ans), (200, {"accepted": 3, "rejected": 0, "errors": []}), "answer")
    assert_eq(count(d, "blank"), (3, 3), "records, rows")
    # CRLF line ends (\r is JSON whitespace).
    body = b'{"id": "d"}\r\n{"id": "e"}\r\n'
    st, _, ans = d.json("POST", "/v1/datasets/blank/records", body,
                        content_type="application/x-ndjson")
    assert_eq((st, ans), (200, {"accepted": 2, "rejected": 0, "errors": []}), "CRLF answer")
    assert_eq(d.get_record("blank", "e")[2]["id"], "e", "CRLF record id")


@test
def content_types():
    d = new_dataset("ctype")
    line = b'{"id": "c1"}\n'
    for ctype in ("text/plain", "application/xml", "application/octet-stream"):
        assert_problem(d.request("POST", "/v1/datasets/ctype/records", line,
                                 content_type=ctype), 415)
    assert_problem(d.request("POST", "/v1/datasets/ctype/records", line), 415)
    st, _, body = d.json("POST", "/v1/datasets/ctype/records", line,
                         content_type="application/x-ndjson; charset=utf-8")
    assert_eq((st, body["accepted"]), (200, 1), "media type with a parameter")
    st, _, body = d.json("POST", "/v1/datasets/ctype/records", b'{"records": [{"id": "c2"}]}',
                         content_type="Application/JSON")
    assert_eq((st, body["accepted"]), (200, 1), "media type is case-insensitive")
    assert_eq(count(d, "ctype"), (2, 2), "records, rows")


@test
def unknown_dataset_is_404():
    d = daemon()
    assert_problem(d.ingest("no-such", [{"id": "a"}]), 404)
    assert_problem(d.get_record("no-such", "a"), 404)
    assert_problem(d.request("DELETE", "/v1/datasets/no-such/records/a"), 404)
    assert_problem(d.get_json("/v1/datasets/no-such"), 404)


@test
def empty_or_malformed_body_is_400():
    d = new_dataset("empty")
    for ctype in ("application/x-ndjson", "application/json"):
        assert_problem(d.request("POST", "/v1/datasets/empty/records", b"", content_type=ctype),
                       400)
    for raw in (b"{", b"not json", b'{"records": [{"id": "a"}'):
        assert_problem(d.request("POST", "/v1/datasets/empty/records", raw,
                                 content_type="application/json"), 400)
    assert_eq(count(d, "empty"), (0, 0), "nothing written")


if __name__ == "__main__":
    wn.main()
