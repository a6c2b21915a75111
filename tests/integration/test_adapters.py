# SPDX-License-Identifier: MIT
"""Cosine Adapters (issue 7): definitions, NDJSON pairs, the training job and its held-out
report, relevance in search (annotation, a minimum that is complete, paged and counted),
deterministic training, a restart that keeps the adapter, and bad input.

The benchmark: every query's relevant documents sit at a cosine level of their own (a function
of the query), so no single raw cosine cutoff separates them; on queries that were never part
of the training pairs the adapter's global threshold beats the best raw cosine threshold of the
same recall on precision, computed here with numpy from the search answers."""

import math

import numpy as np

import curate
import wn
from wn import assert_eq, assert_problem, test

D = 32
NQ_TRAIN, NQ_TEST = 400, 50
NREL, NIRR = 8, 16
daemon = wn.Shared(log_level="info")
_g = {}


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def level(q):
    """The cosine around which query q's relevant documents sit: 0.15 .. 0.75."""
    return 0.45 + 0.3 * math.tanh(1.5 * q[0] * math.sqrt(D))


def at_cosine(rng, q, c):
    """A unit vector whose cosine with unit q is c."""
    r = rng.standard_normal(D)
    r -= r.dot(q) * q
    r /= np.linalg.norm(r)
    return c * q + math.sqrt(1 - c * c) * r


def data():
    d = daemon()
    if "q" in _g:
        return d, _g
    rng = np.random.default_rng(7)
    qs = unit(rng.standard_normal((NQ_TRAIN + NQ_TEST, D)))
    docs, judged = [], []  # judged[i] = [(doc index, label)]
    for i, q in enumerate(qs):
        lv, row = level(q), []
        for j in range(NREL + NIRR):
            rel = j < NREL
            c = float(np.clip(lv + (0.05 if rel else -0.05) + 0.015 * rng.standard_normal(), -0.99, 0.99))
            row.append((len(docs), int(rel)))
            docs.append(at_cosine(rng, q, c))
        judged.append(row)
    docs = np.array(docs, dtype=np.float32)
    d.put_dataset("a", {"spaces": {"e": {"dim": D}, "other": {"dim": 4}}})
    recs = [{"id": "d%05d" % i, "embeddings": {"e": curate.emb(docs[i])}} for i in range(len(docs))]
    # the training queries are records too, so that pairs can name them by record_id
    recs += [{"id": "q%03d" % i, "embeddings": {"e": curate.emb(qs[i].astype(np.float32))}}
             for i in range(NQ_TRAIN)]
    for a in range(0, len(recs), 2500):
        assert_eq(d.ingest("a", recs[a:a + 2500])[0], 200)
    _g.update(q=qs.astype(np.float32), docs=docs, judged=judged)
    return d, _g


def pairs_ndjson(g, queries, by_record=False, graded=False):
    lines = []
    for i in queries:
        for k, lab in g["judged"][i]:
            q = {"record_id": "q%03d" % i} if by_record else g["q"][i].tolist()
            lab = (3 if lab else k % 2) if graded else lab  # graded: relevant 3, others 0 or 1
            lines.append({"query": q, "id": "d%05d" % k, "label": lab})
    return wn.ndjson(lines)


def post_pairs(d, name, body, status=200):
    st, _, res = d.json("POST", "/v1/datasets/a/adapters/%s/pairs" % name, body,
                        content_type="application/x-ndjson")
    assert_eq(st, status, "pairs: %r" % (res,))
    return res


def train(d, name):
    jid = curate.job_id(d.json("POST", "/v1/datasets/a/adapters/%s:train" % name))
    curate.wait_job(d, jid)
    st, _, v = d.get_json("/v1/datasets/a/adapters/%s" % name)
    assert_eq((st, v["state"]), (200, "trained"), v)
    return v


def search(d, body, status=200, path="search"):
    st, _, res = d.json("POST", "/v1/datasets/a/" + path, body)
    assert_eq(st, status, "search: %r" % (res,))
    return res


def all_pages(d, body):
    """Every result of a threshold search, following page tokens."""
    out, tok = [], None
    for _ in range(500):
        b = dict(body, **({"page_token": tok} if tok else {}))
        res = search(d, b)
        out += res["results"]
        tok = res["page_token"]
        if tok is None:
            assert_eq(res["stats"]["truncated"], False)
            return out
        assert_eq(res["stats"]["truncated"], True)
    raise AssertionError("too many pages")


def trained_adapter():
    d, g = data()
    if "view" not in _g:
        st, _, v = d.json("PUT", "/v1/datasets/a/adapters/lin",
                          {"space": "e", "family": "linear", "hidden": 16, "seed": 3})
        assert_eq((st, v["version"], v["state"]), (201, 1, "untrained"), v)
        # half the pairs with query vectors, half naming the query record: the same queries
        res = post_pairs(d, "lin", pairs_ndjson(g, range(0, NQ_TRAIN // 2)))
        assert_eq((res["accepted"], res["rejected"]), (NQ_TRAIN // 2 * (NREL + NIRR), 0))
        res = post_pairs(d, "lin", pairs_ndjson(g, range(NQ_TRAIN // 2, NQ_TRAIN), by_record=True))
        assert_eq(res["pairs"], NQ_TRAIN * (NREL + NIRR))
        _g["view"] = train(d, "lin")
    return d, g, _g["view"]


@test
def spec_vector_through_the_definition():
    """The spec's linear mapping and inversion, as the search applies it: relevance =
    sigmoid(alpha s + beta), and the cosine bound of min 0.5 is (logit(0.5) - beta) / alpha."""
    for (a, b), cos, want, bound in (((10, -6), (0.62, 0.55), (0.5498, 0.3775), 0.6),
                                     ((20, -8), (0.45, 0.38), (0.7311, 0.4013), 0.4)):
        got = [1 / (1 + math.exp(-(a * s + b))) for s in cos]
        assert all(abs(x - y) < 5e-5 for x, y in zip(got, want)), got
        assert abs((0 - b) / a - bound) < 1e-12


@test
def training_report_and_benchmark():
    d, g, v = trained_adapter()
    tr = v["training"]
    assert_eq(v["version"], 2, "a training is a new version")
    assert_eq(tr["queries"]["train"] + tr["queries"]["held_out"], NQ_TRAIN, "distinct queries")
    assert_eq(tr["pairs"]["train"] + tr["pairs"]["held_out"], NQ_TRAIN * (NREL + NIRR))
    assert_eq(tr["relevant"]["train"] + tr["relevant"]["held_out"], NQ_TRAIN * NREL)
    assert tr["held_out_loss"] < tr["initial_held_out_loss"], tr
    ho = tr["held_out"]
    print("  report (held-out pairs): adapter P %.3f R %.3f F1 %.3f at %.3f; raw cosine P %.3f "
          "R %.3f at %.3f; top-%d P %.3f R %.3f" % (
              ho["adapter"]["precision"], ho["adapter"]["recall"], ho["adapter"]["f1"],
              ho["adapter"]["threshold"], ho["raw_cosine"]["precision"], ho["raw_cosine"]["recall"],
              ho["raw_cosine"]["threshold"], ho["top_k"]["k"], ho["top_k"]["precision"],
              ho["top_k"]["recall"]))
    assert ho["raw_cosine"]["recall"] >= ho["adapter"]["recall"]
    assert ho["adapter"]["precision"] > ho["raw_cosine"]["precision"] + 0.2, ho
    assert_eq(v["threshold"], ho["adapter"]["threshold"])
    # The benchmark on queries never seen in training, from search answers: the adapter's
    # global threshold vs the best raw cosine threshold with at least its recall (numpy).
    tau = v["threshold"]
    kept_a, rel_a, cos_all, lab_all = 0, 0, [], []
    for i in range(NQ_TRAIN, NQ_TRAIN + NQ_TEST):
        judged = dict(("d%05d" % k, lab) for k, lab in g["judged"][i])
        res = all_pages(d, {"vector": g["q"][i].tolist(), "space": "e", "limit": 1000,
                            "relevance": {"adapter": "lin", "min": tau}})
        got = [r["id"] for r in res if r["id"] in judged]
        kept_a += len(got)
        rel_a += sum(judged[x] for x in got)
        s = unit(g["docs"][[k for k, _ in g["judged"][i]]]) @ unit(g["q"][i])
        cos_all += s.tolist()
        lab_all += [lab for _, lab in g["judged"][i]]
    npos = NQ_TEST * NREL
    pa, ra = rel_a / max(kept_a, 1), rel_a / npos
    cos_all, lab_all = np.array(cos_all), np.array(lab_all)
    order = np.argsort(-cos_all, kind="stable")
    tp = np.cumsum(lab_all[order])
    k = int(np.argmax(tp >= math.ceil(ra * npos - 1e-9)))  # the highest cutoff with recall >= ra
    pc, rc = tp[k] / (k + 1), tp[k] / npos
    print("  held-out queries (%d, never trained on): adapter P %.3f R %.3f; raw cosine "
          "cutoff %.3f P %.3f R %.3f" % (NQ_TEST, pa, ra, cos_all[order[k]], pc, rc))
    assert ra > 0.8, ra
    assert pa > pc + 0.2, (pa, pc)


@test
def relevance_in_search_is_exact_complete_and_counted():
    d, g, v = trained_adapter()
    q = g["q"][NQ_TRAIN + 3]
    x = unit(g["docs"])
    s_all = x @ unit(q)
    # annotation only: top-10 by cosine, each with its relevance; logit(relevance) is affine
    # in the cosine (the linear family) and increasing
    res = search(d, {"vector": q.tolist(), "space": "e", "limit": 1000,
                     "relevance": {"adapter": "lin"}})
    rs = res["results"]
    assert_eq(len(rs), 1000)
    assert_eq((res["stats"]["relevance"]["adapter"], res["stats"]["relevance"]["version"]), ("lin", v["version"]))
    assert [r["relevance"] for r in rs] == sorted((r["relevance"] for r in rs), reverse=True)
    rs = [r for r in rs if 1e-6 < r["relevance"] < 1 - 1e-6]  # not saturated
    assert len(rs) >= 5, len(rs)
    sc = np.array([r["score"] for r in rs])
    lg = np.array([math.log(r["relevance"] / (1 - r["relevance"])) for r in rs])
    alpha, beta = np.polyfit(sc, lg, 1)
    assert alpha > 0 and np.abs(alpha * sc + beta - lg).max() < 1e-4, (alpha, beta)
    # a minimum: exactly the records whose relevance reaches it, in cosine order, paged
    mn = 0.5
    got = all_pages(d, {"vector": q.tolist(), "space": "e", "limit": 50,
                        "relevance": {"adapter": "lin", "min": mn}})
    bound = (math.log(mn / (1 - mn)) - beta) / alpha
    want = {("d%05d" % i) for i in np.nonzero(s_all >= bound)[0] if abs(s_all[i] - bound) > 1e-5}
    near = {("d%05d" % i) for i in np.nonzero(np.abs(s_all - bound) <= 1e-5)[0]}
    ids = [r["id"] for r in got if r["id"].startswith("d")]
    assert want <= set(ids) <= want | near, (len(want), len(ids))
    assert all(r["relevance"] >= mn for r in got)
    assert [r["score"] for r in got] == sorted((r["score"] for r in got), reverse=True)
    res = search(d, {"vector": q.tolist(), "space": "e", "relevance": {"adapter": "lin", "min": mn}},
                 path="search:count")
    assert_eq(res["count"], len(got))
    assert abs(res["stats"]["relevance"]["cosine_bound"] - bound) < 1e-4
    # with a score_threshold too: both must hold
    st = bound + 0.05
    both = all_pages(d, {"vector": q.tolist(), "space": "e", "limit": 1000, "score_threshold": st,
                         "relevance": {"adapter": "lin", "min": mn}})
    assert_eq(len(both), sum(1 for r in got if r["score"] >= st))
    # batch queries: each query its own bound
    res = search(d, {"vectors": [g["q"][i].tolist() for i in range(NQ_TRAIN, NQ_TRAIN + 3)],
                     "space": "e", "limit": 1000, "relevance": {"adapter": "lin", "min": 0.9}})
    bounds = [qq["stats"]["relevance"]["cosine_bound"] for qq in res["queries"]]
    assert len(set(round(b, 6) for b in bounds)) == 3, bounds
    for qq, b in zip(res["queries"], bounds):
        assert all(r["score"] >= b - 1e-5 and r["relevance"] >= 0.9 for r in qq["results"])


@test
def graded_labels_other_families_and_determinism():
    d, g, _ = trained_adapter()
    ids = range(0, 60)
    for name in ("g1", "g2"):
        st, _, v = d.json("PUT", "/v1/datasets/a/adapters/" + name,
                          {"space": "e", "family": "sqrt", "hidden": 8, "label_cut": 2, "seed": 5,
                           "max_epochs": 40, "target": {"precision": 0.9}})
        assert_eq(st, 201, v)
        post_pairs(d, name, pairs_ndjson(g, ids, graded=True))
    v1, v2 = train(d, "g1"), train(d, "g2")
    t1, t2 = v1["training"], v2["training"]
    assert_eq(t1["relevant"]["train"] + t1["relevant"]["held_out"], 60 * NREL, "label_cut 2")
    for k in ("held_out", "epochs", "best_epoch", "held_out_loss", "train_loss"):
        assert_eq(t1[k], t2[k], "same seed, same " + k)
    assert_eq(v1["threshold"], v2["threshold"])
    assert t1["held_out"]["adapter"]["precision"] >= 0.9 or t1["held_out"]["adapter"]["kept"] > 0
    q = g["q"][NQ_TRAIN].tolist()
    r1 = search(d, {"vector": q, "space": "e", "relevance": {"adapter": "g1"}})["results"]
    r2 = search(d, {"vector": q, "space": "e", "relevance": {"adapter": "g2"}})["results"]
    assert_eq([r["relevance"] for r in r1], [r["relevance"] for r in r2])
    # another seed gives another network
    d.json("PUT", "/v1/datasets/a/adapters/g2",
           {"space": "e", "family": "sqrt", "hidden": 8, "label_cut": 2, "seed": 6,
            "max_epochs": 40, "target": {"precision": 0.9}})
    v2 = train(d, "g2")
    r2 = search(d, {"vector": q, "space": "e", "relevance": {"adapter": "g2"}})["results"]
    assert [r["relevance"] for r in r1] != [r["relevance"] for r in r2]
    # power: relevance = max(s, 0) ^ alpha, so log(relevance) / log(s) is one alpha per query
    d.json("PUT", "/v1/datasets/a/adapters/pw", {"space": "e", "family": "power", "hidden": 8,
                                                  "max_epochs": 30})
    post_pairs(d, "pw", pairs_ndjson(g, range(0, 40)))
    train(d, "pw")
    rs = search(d, {"vector": q, "space": "e", "relevance": {"adapter": "pw"}})["results"]
    al = [math.log(r["relevance"]) / math.log(r["score"]) for r in rs if 0 < r["score"] < 1]
    assert max(al) - min(al) < 1e-4 and al[0] > 0, al


@test
def versions_list_delete_and_restart():
    d, g, v = trained_adapter()
    st, _, lst = d.get_json("/v1/datasets/a/adapters")
    assert_eq(st, 200)
    assert {"lin"} <= {a["name"] for a in lst["adapters"]}
    q = g["q"][NQ_TRAIN + 1].tolist()
    body = {"vector": q, "space": "e", "limit": 50, "relevance": {"adapter": "lin", "min": 0.3}}
    before = search(d, body)
    # the same definition again changes nothing
    st, _, v2 = d.json("PUT", "/v1/datasets/a/adapters/lin",
                       {"space": "e", "family": "linear", "hidden": 16, "seed": 3})
    assert_eq((st, v2["version"], v2["state"]), (200, v["version"], "trained"))
    d.restart()
    st, _, v3 = d.get_json("/v1/datasets/a/adapters/lin")
    assert_eq((st, v3["version"], v3["threshold"], v3["training"]), (200, v["version"],
                                                                      v["threshold"], v["training"]))
    after = search(d, body)
    assert_eq(after["results"], before["results"], "the adapter survives a restart")
    # a changed definition: a new version without weights (pairs kept: same space)
    d.json("PUT", "/v1/datasets/a/adapters/tmp", {"space": "e", "hidden": 4})
    post_pairs(d, "tmp", pairs_ndjson(g, range(0, 10)))
    train(d, "tmp")
    st, _, t = d.json("PUT", "/v1/datasets/a/adapters/tmp", {"space": "e", "hidden": 5})
    assert_eq((st, t["version"], t["state"], t["pairs"]["count"]), (200, 3, "untrained", 240))
    assert_problem(d.json("POST", "/v1/datasets/a/search",
                          {"vector": q, "space": "e", "relevance": {"adapter": "tmp"}}), 422,
                   "adapter_untrained")
    st, _, t = d.json("PUT", "/v1/datasets/a/adapters/tmp", {"space": "other", "hidden": 5})
    assert_eq((t["version"], t["pairs"]["count"]), (4, 0), "another space drops the pairs")
    assert_eq(d.request("DELETE", "/v1/datasets/a/adapters/tmp")[0], 204)
    assert_problem(d.json("GET", "/v1/datasets/a/adapters/tmp"), 404, "adapter_not_found")
    assert_problem(d.json("POST", "/v1/datasets/a/search",
                          {"vector": q, "space": "e", "relevance": {"adapter": "tmp"}}), 404,
                   "adapter_not_found")


@test
def bad_input():
    d, g, _ = trained_adapter()
    q = g["q"][0].tolist()
    for body, code in (({"space": "nope"}, "bad_param"), ({"space": "e", "family": "cubic"}, "bad_param"),
                       ({"space": "e", "hidden": 0}, "bad_param"), ({"space": "e", "x": 1}, "unknown_param"),
                       ({"space": "e", "target": {"precision": 2}}, "bad_param")):
        assert_problem(d.json("PUT", "/v1/datasets/a/adapters/bad", body), 422, code)
    assert_problem(d.json("GET", "/v1/datasets/a/adapters/bad"), 404)
    d.json("PUT", "/v1/datasets/a/adapters/bad", {"space": "e"})
    assert_problem(d.json("POST", "/v1/datasets/a/adapters/bad:train"), 422, "no_pairs")
    lines = wn.ndjson([{"query": q[:-1], "id": "d00000", "label": 1},
                       {"query": q, "id": "nope", "label": 1},
                       {"query": q, "id": "d00000", "label": "yes"},
                       {"query": {"record_id": "q000", "space": "other"}, "id": "d00000", "label": 1},
                       {"query": q, "id": "d00001", "label": 0}]) + b"not json\n"
    res = post_pairs(d, "bad", lines)
    assert_eq((res["accepted"], res["rejected"]), (1, 5))
    assert_eq([(x["line"], x["code"]) for x in res["errors"]],
              [(1, "dimension_mismatch"), (2, "record_not_found"), (3, "bad_label"),
               (4, "bad_query"), (6, "malformed_json")])
    p = assert_problem(d.json("POST", "/v1/datasets/a/adapters/bad/pairs", lines.split(b"\n")[0] + b"\n",
                              content_type="application/x-ndjson"), 422, "no_pairs_accepted")
    assert_eq(p["rejected"], 1)
    assert_problem(d.json("POST", "/v1/datasets/a/adapters/bad/pairs", {"a": 1}), 415)
    # one query only: nothing to hold out
    jid = curate.job_id(d.json("POST", "/v1/datasets/a/adapters/bad:train"))
    j = curate.wait_job(d, jid, states=("failed",))
    assert_eq(j["error"]["code"], "too_few_queries")
    for rel, status, code in (({"adapter": "lin", "min": 1}, 422, "bad_query"),
                              ({"adapter": "lin", "min": -0.1}, 422, "bad_query"),
                              ({"adapter": "lin", "x": 1}, 422, "bad_query"),
                              ({"min": 0.5}, 422, "bad_query"),
                              ({"adapter": "none"}, 404, "adapter_not_found")):
        assert_problem(d.json("POST", "/v1/datasets/a/search",
                              {"vector": q, "space": "e", "relevance": rel}), status, code)
    assert_problem(d.json("POST", "/v1/datasets/a/search",
                          {"vector": [0.0] * 4, "space": "other", "relevance": {"adapter": "lin"}}),
                   422, "space_mismatch")
    assert_problem(d.json("POST", "/v1/datasets/a/search",
                          {"vector": [0.0] * D, "space": "e", "relevance": {"adapter": "lin"}}),
                   422, "zero_vector")
    assert_problem(d.json("POST", "/v1/datasets/a/search",
                          {"vector": q, "space": "e", "metric": "ip", "relevance": {"adapter": "lin"}}),
                   422, "bad_query")
    assert_problem(d.json("POST", "/v1/datasets/a/search:count",
                          {"vector": q, "space": "e", "relevance": {"adapter": "lin"}}), 422,
                   "bad_query")


if __name__ == "__main__":
    wn.main()
