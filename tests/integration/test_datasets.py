# SPDX-License-Identifier: MIT
"""Integration tests of /v1/datasets: create (idempotent, conflicting, invalid), names,
list, get with counts, delete and re-create. One daemon shared by the file."""

import datetime
import re

import wn
from wn import assert_eq, assert_problem, assert_status, test

daemon = wn.Shared()

SCHEMA = {"spaces": {"image": {"dim": 4, "dtype": "f16"}, "text": {"dim": 3}},
          "kinds": ["image-text", "text"]}
SCHEMA_OUT = {"image": {"dim": 4, "dtype": "f16"}, "text": {"dim": 3, "dtype": "f32"}}
DATASET_KEYS = {"name", "spaces", "kinds", "records", "rows", "created_at"}
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def parse_rfc3339(s):
    assert RFC3339.fullmatch(s), "created_at not RFC 3339: %r" % s
    s = s.replace("Z", "+00:00")
    if "." in s:
        head, tail = s.split(".", 1)
        frac, zone = tail[:-6], tail[-6:]
        s = "%s.%s%s" % (head, (frac + "000000")[:6], zone)
    return datetime.datetime.fromisoformat(s)


def check_dataset(obj, name, spaces, kinds, records, rows):
    assert_eq(set(obj), DATASET_KEYS, "dataset object keys")
    assert_eq(obj["name"], name, "name")
    assert_eq(obj["spaces"], spaces, "spaces")
    assert_eq(obj["kinds"], kinds, "kinds")
    assert_eq(obj["records"], records, "records")
    assert_eq(obj["rows"], rows, "rows")
    created = parse_rfc3339(obj["created_at"])
    now = datetime.datetime.now(datetime.timezone.utc)
    age = (now - created).total_seconds()
    assert -5 < age < 3600, "created_at %s is not about now (%s)" % (obj["created_at"], now)


def text_record(rid, vec=(0.5, -1.0, 2.0)):
    return {"id": rid, "text": "t " + rid, "embeddings": {"text": list(vec)}}


@test
def create_returns_201_and_the_dataset():
    d = daemon()
    st, hdrs, body = d.put_dataset("ds1", SCHEMA)
    assert_status((st, hdrs, body), 201)
    assert_eq(hdrs.get("content-type", "").split(";")[0], "application/json", "content type")
    check_dataset(body, "ds1", SCHEMA_OUT, ["image-text", "text"], 0, 0)
    st, _, got = d.get_json("/v1/datasets/ds1")
    assert_eq(st, 200, "GET status")
    assert_eq(got, body, "GET equals the PUT answer")


@test
def create_defaults_and_empty_spaces():
    d = daemon()
    st, _, body = d.put_dataset("nospaces", {"spaces": {}})
    assert_eq(st, 201, "status")
    check_dataset(body, "nospaces", {}, ["image-text", "text"], 0, 0)
    st, _, body = d.put_dataset("textonly", {"spaces": {"t": {"dim": 1}}, "kinds": ["text"]})
    assert_eq(st, 201, "status")
    check_dataset(body, "textonly", {"t": {"dim": 1, "dtype": "f32"}}, ["text"], 0, 0)


@test
def put_same_schema_again_is_200():
    d = daemon()
    st, _, first = d.put_dataset("idem", SCHEMA)
    assert_eq(st, 201, "first PUT")
    st, _, again = d.put_dataset("idem", SCHEMA)
    assert_eq(st, 200, "second PUT")
    assert_eq(again, first, "same dataset object")
    # The default dtype spelled out is the same schema.
    explicit = {"spaces": {"image": {"dim": 4, "dtype": "f16"},
                           "text": {"dim": 3, "dtype": "f32"}},
                "kinds": ["image-text", "text"]}
    st, _, again = d.put_dataset("idem", explicit)
    assert_eq(st, 200, "PUT with explicit f32")
    assert_eq(again, first, "same dataset object")


@test
def put_other_schema_is_409():
    d = daemon()
    assert_eq(d.put_dataset("conf", SCHEMA)[0], 201, "create")
    others = [
        {"spaces": {"image": {"dim": 4, "dtype": "f16"}, "text": {"dim": 5}},
         "kinds": ["image-text", "text"]},
        {"spaces": {"image": {"dim": 4, "dtype": "f32"}, "text": {"dim": 3}},
         "kinds": ["image-text", "text"]},
        {"spaces": {"image": {"dim": 4, "dtype": "f16"}}, "kinds": ["image-text", "text"]},
        {"spaces": {"image": {"dim": 4, "dtype": "f16"}, "text": {"dim": 3}}, "kinds": ["text"]},
    ]
    for other in others:
        p = assert_problem(d.put_dataset("conf", other), 409)
        assert p["code"] != "", p
    st, _, body = d.get_json("/v1/datasets/conf")
    assert_eq(st, 200, "GET after conflicts")
    check_dataset(body, "conf", SCHEMA_OUT, ["image-text", "text"], 0, 0)


@test
def invalid_schemas_are_422():
    d = daemon()
    many = {"spaces": {"s%02d" % i: {"dim": 2} for i in range(17)}}
    bad = {
        "dim0": {"spaces": {"a": {"dim": 0}}},
        "dim70000": {"spaces": {"a": {"dim": 70000}}},
        "dimneg": {"spaces": {"a": {"dim": -3}}},
        "dimfrac": {"spaces": {"a": {"dim": 2.5}}},
        "dimstr": {"spaces": {"a": {"dim": "4"}}},
        "nodim": {"spaces": {"a": {"dtype": "f32"}}},
        "f64": {"spaces": {"a": {"dim": 4, "dtype": "f64"}}},
        "video": {"spaces": {"a": {"dim": 4}}, "kinds": ["video"]},
        "spaces17": many,
        "spacename": {"spaces": {"a b": {"dim": 4}}},
        "spacename2": {"spaces": {"x" * 65: {"dim": 4}}},
        "spacename3": {"spaces": {"": {"dim": 4}}},
    }
    for name, schema in bad.items():
        try:
            assert_problem(d.put_dataset("bad-" + name, schema), 422)
        except AssertionError as exc:
            raise AssertionError("schema %s: %s" % (name, exc)) from None
        assert_eq(d.get_json("/v1/datasets/bad-" + name)[0], 404, "bad-%s not created" % name)


@test
def schema_limits_are_accepted():
    d = daemon()
    sixteen = {"spaces": {"s%02d" % i: {"dim": 2} for i in range(16)}}
    st, _, body = d.put_dataset("sixteen", sixteen)
    assert_eq(st, 201, "16 spaces")
    assert_eq(len(body["spaces"]), 16, "spaces")
    st, _, body = d.put_dataset("bigdim", {"spaces": {"A.b_c-9": {"dim": 65536, "dtype": "f16"}}})
    assert_eq(st, 201, "dim 65536")
    assert_eq(body["spaces"], {"A.b_c-9": {"dim": 65536, "dtype": "f16"}}, "spaces")


@test
def invalid_dataset_names_are_422():
    d = daemon()
    for name in ("a b", "x" * 65, "\u00fc", "a%b", "a:b", "a+b"):
        try:
            assert_problem(d.put_dataset(name, SCHEMA), 422, "invalid_name")
        except AssertionError as exc:
            raise AssertionError("name %r: %s" % (name, exc)) from None
    names = [o["name"] for o in d.get_json("/v1/datasets")[2]["datasets"]]
    assert "a b" not in names and "x" * 65 not in names and "\u00fc" not in names, names


@test
def valid_name_edges_are_accepted():
    d = daemon()
    for name in ("x" * 64, "A.b_c-9", "-", "..."):
        st, _, body = d.put_dataset(name, {"spaces": {}})
        assert_eq(st, 201, "PUT %r" % name)
        assert_eq(body["name"], name, "name")
        assert_eq(d.get_json("/v1/datasets/" + wn.quote(name))[0], 200, "GET %r" % name)


@test
def list_is_sorted_by_name():
    d = daemon()
    mine = ["zeta", "alpha", "mid.1", "mid-0", "mid_2", "b9", "b10"]
    for name in mine:
        assert_eq(d.put_dataset(name, {"spaces": {}})[0], 201, "create " + name)
    st, hdrs, body = d.get_json("/v1/datasets")
    assert_eq(st, 200, "list")
    assert_eq(set(body), {"datasets"}, "list keys")
    names = [o["name"] for o in body["datasets"]]
    assert_eq(names, sorted(names), "sorted")
    assert_eq(len(names), len(set(names)), "no duplicates")
    for name in mine:
        assert name in names, name
    for o in body["datasets"]:
        assert_eq(set(o), DATASET_KEYS, "dataset object keys in list")


@test
def get_counts_after_ingest():
    d = daemon()
    assert_eq(d.put_dataset("counts", SCHEMA)[0], 201, "create")
    recs = [text_record("r%d" % i) for i in range(5)]
    st, _, body = d.ingest("counts", recs)
    assert_eq((st, body["accepted"], body["rejected"]), (200, 5, 0), "ingest")
    st, _, body = d.get_json("/v1/datasets/counts")
    check_dataset(body, "counts", SCHEMA_OUT, ["image-text", "text"], 5, 5)
    # Upsert keeps counts; delete lowers records, not rows.
    assert_eq(d.ingest("counts", [text_record("r1", (1, 2, 3))])[2]["accepted"], 1, "upsert")
    assert_eq(d.request("DELETE", "/v1/datasets/counts/records/r3")[0], 204, "delete r3")
    body = d.get_json("/v1/datasets/counts")[2]
    assert_eq((body["records"], body["rows"]), (4, 5), "records, rows after delete")
    listed = [o for o in d.get_json("/v1/datasets")[2]["datasets"] if o["name"] == "counts"]
    assert_eq(listed, [body], "list entry equals GET")


@test
def delete_then_404():
    d = daemon()
    assert_eq(d.put_dataset("gone", SCHEMA)[0], 201, "create")
    assert_eq(d.ingest("gone", [text_record("a")])[0], 200, "ingest")
    st, hdrs, body = d.request("DELETE", "/v1/datasets/gone")
    assert_eq(st, 204, "DELETE status")
    assert_eq(body, b"", "204 body")
    assert_problem(d.get_json("/v1/datasets/gone"), 404)
    assert_problem(d.request("DELETE", "/v1/datasets/gone"), 404)
    assert_problem(d.get_record("gone", "a"), 404)
    assert_problem(d.ingest("gone", [text_record("b")]), 404)
    names = [o["name"] for o in d.get_json("/v1/datasets")[2]["datasets"]]
    assert "gone" not in names, names
    assert_problem(d.request("DELETE", "/v1/datasets/never-was"), 404)
    assert_problem(d.get_json("/v1/datasets/never-was"), 404)


@test
def recreate_after_delete_is_empty():
    d = daemon()
    assert_eq(d.put_dataset("again", SCHEMA)[0], 201, "create")
    st, _, body = d.ingest("again", [text_record("r%d" % i) for i in range(3)])
    assert_eq(body["accepted"], 3, "ingest")
    assert_eq(d.request("DELETE", "/v1/datasets/again")[0], 204, "delete")
    st, _, body = d.put_dataset("again", SCHEMA)
    assert_eq(st, 201, "re-create")
    check_dataset(body, "again", SCHEMA_OUT, ["image-text", "text"], 0, 0)
    for i in range(3):
        assert_problem(d.get_record("again", "r%d" % i), 404)
    st, _, body = d.ingest("again", [text_record("new")])
    assert_eq(body["accepted"], 1, "ingest after re-create")
    assert_eq(d.get_record("again", "new")[2]["row"], 0, "first row of the new dataset")
    # Deleted and re-created with another schema: allowed, no 409.
    assert_eq(d.request("DELETE", "/v1/datasets/again")[0], 204, "delete")
    other = {"spaces": {"v": {"dim": 2}}, "kinds": ["text"]}
    st, _, body = d.put_dataset("again", other)
    assert_eq(st, 201, "re-create with another schema")
    check_dataset(body, "again", {"v": {"dim": 2, "dtype": "f32"}}, ["text"], 0, 0)


@test
def non_json_body_is_400():
    d = daemon()
    for raw in (b"not json", b"{", b'{"spaces": {"a": {"dim": 2}}'):
        assert_problem(d.request("PUT", "/v1/datasets/nj", raw, content_type="application/json"),
                       400)
    assert_problem(d.get_json("/v1/datasets/nj"), 404)


@test
def problem_bodies_are_complete():
    d = daemon()
    resp = d.request("GET", "/v1/datasets/nope", headers={"X-Request-Id": "probe-42"})
    p = assert_problem(resp, 404)
    assert_eq(p["request_id"], "probe-42", "request_id echoes X-Request-Id")
    assert_eq(p["type"], "urn:winnow:problem:" + p["code"], "type")


if __name__ == "__main__":
    wn.main()
