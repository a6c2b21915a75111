# SPDX-License-Identifier: MIT
"""Hubness normalisers (issue 8, spec section 5): banks, statistics by a job and on ingest,
hubness-corrected search (IS, DIS, DualIS, DualDIS, CSLS) and the hubness report, all compared
with a numpy computation of the same formulas, on generated data with planted hubs: 20 gallery
items share the direction that every query is offset along (a modality gap), so raw cosine
retrieves them for most queries. DualIS must lower the N_k skewness and raise recall@1 against
raw cosine and against IS."""

import numpy as np

import curate
import wn
from wn import assert_eq, assert_problem, test

N, D, H, NQ, NB = 2000, 32, 20, 500, 30
FIRST = 1900  # ingested before the normaliser; the rest after (statistics on ingest)
BETA = 20.0
daemon = wn.Shared(log_level="info")
_g = {}


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def lse(a, axis):
    mx = a.max(axis=axis, keepdims=True)
    return (mx + np.log(np.exp(a - mx).sum(axis=axis, keepdims=True))).squeeze(axis)


def skew(x, zeros=True):
    x = np.asarray(x, dtype=np.float64)
    if not zeros:
        x = x[x > 0]
    d = x - x.mean()
    return (d ** 3).mean() / (d ** 2).mean() ** 1.5


def gen():
    if _g:
        return _g
    rng = np.random.default_rng(5)
    u = rng.standard_normal(D)
    u /= np.linalg.norm(u)

    def z(n):
        return rng.standard_normal((n, D)) / np.sqrt(D)

    g = unit(z(N) + 0.5 * u)
    hubs = np.arange(0, N, N // H)
    g[hubs] = unit(z(H) + 2 * u)
    g = g.astype(np.float32).astype(np.float64)  # what the daemon stores
    nonhub = np.setdiff1d(np.arange(N), hubs)

    def queries(idx):
        return unit(g[idx] + 0.7 * z(len(idx)) + u).astype(np.float32)

    truth = rng.choice(nonhub, NQ, replace=False)
    _g.update(g=g, hubs=hubs, truth=truth, q=queries(truth), bank=queries(rng.choice(nonhub, NB)),
              ids=["g%04d" % i for i in range(N)])
    # numpy reference statistics (spec 5.4): the query bank as given, the gallery bank is the
    # gallery as it was at the PUT (the first FIRST rows), self-pairs excluded
    qb = unit(_g["bank"].astype(np.float64))
    _g["lzq"] = lse(BETA * (qb @ g.T), 0)
    sg = g[:FIRST] @ g.T
    sg[np.arange(FIRST), np.arange(FIRST)] = -np.inf
    _g["lzg"] = lse(BETA * sg, 0)
    _g["aq"] = np.isin(np.arange(N), np.argmax(qb @ g.T, 1))
    _g["ag"] = np.isin(np.arange(N), np.argmax(sg, 1))
    top = np.sort(qb @ g.T, 0)[::-1]
    _g["rb"] = top[:10].mean(0)
    return _g


def setup():
    d = daemon()
    g = gen()
    if "ready" in g:
        return d, g
    d.put_dataset("h", {"spaces": {"v": {"dim": D}}})
    recs = [{"id": g["ids"][i], "embeddings": {"v": curate.emb(g["g"][i])}} for i in range(N)]
    assert_eq(d.ingest("h", recs[:FIRST])[0], 200)
    curate.wait_job(d, curate.job_id(d.json("PUT", "/v1/datasets/h/indexes/v",
                                            {"factory": "Flat", "metric": "cosine"})))
    resp = d.json("PUT", "/v1/datasets/h/hubness/n", {
        "space": "v", "query_bank": {"vectors": g["bank"].tolist()}, "beta1": BETA,
        "beta2": BETA, "k": 1})
    curate.wait_job(d, curate.job_id(resp))
    assert_eq(d.ingest("h", recs[FIRST:])[0], 200)  # statistics on ingest
    g["ready"] = True
    return d, g


def search(d, body, status=200):
    st, _, res = d.json("POST", "/v1/datasets/h/search", body)
    assert_eq(st, status, "search: %r" % (res,))
    return res


def numpy_scores(g, qv, method, rows):
    """The spec's formulas over the candidate rows (raw top-1 among them gates DIS/DualDIS)."""
    s = g["g"][rows] @ unit(qv[None].astype(np.float64))[0]
    lzq, lzg = g["lzq"][rows], g["lzg"][rows]
    top1 = rows[np.argmax(s)]
    aq, ag = g["aq"][top1], g["ag"][top1]
    if method == "is":
        return BETA * s - lzq
    if method == "dis":
        return BETA * s - lzq if aq else s
    if method == "dualis":
        return 2 * BETA * s - lzq - lzg
    if method == "dualdis":
        fq = np.exp(BETA * s - lzq) if aq else s
        fg = np.exp(BETA * s - lzg) if ag else s
        return fq * fg
    if method == "csls":
        return 2 * s - np.sort(s)[::-1][:10].mean() - g["rb"][rows]
    return s


@test
def normalizer_view_and_job():
    d, g = setup()
    st, _, v = d.get_json("/v1/datasets/h/hubness/n")
    assert_eq(st, 200)
    assert v["ready"] is True, v
    assert_eq(v["query_bank"], {"vectors": NB})
    assert_eq(v["gallery_bank"]["items"], FIRST)  # the default: the gallery itself
    assert v["gallery_bank"]["default"] is True
    assert_eq(v["dualdis_mode"], "reference")
    assert_eq(v["computing"]["state"], "succeeded")
    st, _, lst = d.get_json("/v1/datasets/h/hubness")
    assert_eq([x["name"] for x in lst["normalizers"]], ["n"])
    # the same definition again: 200, no job
    st, _, v2 = d.json("PUT", "/v1/datasets/h/hubness/n", {
        "space": "v", "query_bank": {"vectors": g["bank"].tolist()}, "beta1": BETA,
        "beta2": BETA, "k": 1})
    assert_eq(st, 200, v2)


@test
def scores_equal_numpy_every_method():
    """Whole-gallery (exact) and top-100 searches: the normalised score of every returned
    result equals numpy's, rows ingested after the job included."""
    d, g = setup()
    for method in ("is", "dis", "dualis", "dualdis", "csls"):
        for k in range(6):
            qv = g["q"][k]
            for exact in (True, False):
                body = {"vector": qv.tolist(), "space": "v", "limit": 20,
                        "hubness": {"normalizer": "n", "method": method, "candidates": 100}}
                if exact:
                    body["params"] = {"exact": True}
                res = search(d, body)["results"]
                s_all = g["g"] @ unit(qv[None].astype(np.float64))[0]
                rows = np.arange(N) if exact else np.argsort(-s_all, kind="stable")[:100]
                want = numpy_scores(g, qv, method, rows)
                got_rows = np.array([int(r["id"][1:]) for r in res])
                pos = {r: i for i, r in enumerate(rows)}
                for r, row in zip(res, got_rows):
                    w = want[pos[row]]
                    assert abs(r["hubness_score"] - w) <= 2e-3 * max(1.0, abs(w)), (
                        method, exact, row, r, w)
                    assert abs(r["score"] - s_all[row]) < 1e-5, (r, s_all[row])
                # ranked by the normalised score; the top 20 are numpy's top 20 (up to ties)
                order = np.argsort(-want, kind="stable")[:20]
                assert np.abs(np.sort(want[order]) - np.sort([want[pos[x]] for x in got_rows])).max() \
                    <= 2e-3 * max(1.0, np.abs(want[order]).max()), (method, exact)


@test
def dualis_beats_raw_and_is_on_planted_hubs():
    d, g = setup()
    out = {}
    for method in ("raw", "is", "dualis", "dualdis", "csls"):
        got = []
        for a in range(0, NQ, 250):
            body = {"vectors": g["q"][a:a + 250].tolist(), "space": "v", "limit": 10}
            if method != "raw":
                body["hubness"] = {"normalizer": "n", "method": method}
            res = search(d, body)["queries"]
            got += [[int(r["id"][1:]) for r in q["results"]] for q in res]
        top = np.array(got)
        r1 = float((top[:, 0] == g["truth"]).mean())
        nk = np.bincount(top.ravel(), minlength=N)
        out[method] = (r1, skew(nk), skew(nk, False))
    print("  planted hubs (N=%d, %d hubs, %d queries, top-100 re-rank, beta 20):" % (N, H, NQ))
    for m, (r1, sk, sk0) in out.items():
        print("    %-8s recall@1 %.3f  N_10 skewness %.2f (retrieved only %.2f)" % (m, r1, sk, sk0))
    assert out["dualis"][0] > out["is"][0] > out["raw"][0], out
    assert out["dualis"][1] < out["is"][1] < out["raw"][1], out
    assert out["raw"][0] < 0.6 and out["dualis"][0] > 0.95, out


@test
def report_matches_numpy():
    d, g = setup()
    st, _, rep = d.json("POST", "/v1/datasets/h/hubness/n:report", {
        "queries": {"vectors": g["q"].tolist()}, "k": 10, "method": "dualis", "top": 5})
    assert_eq(st, 200, rep)
    qn = unit(g["q"].astype(np.float64))
    s = qn @ g["g"].T
    o = np.argsort(-s, 1, kind="stable")[:, :100]
    raw_top = o[:, :10]
    m = 2 * BETA * np.take_along_axis(s, o, 1) - g["lzq"][o] - g["lzg"][o]
    norm_top = np.take_along_axis(o, np.argsort(-m, 1, kind="stable")[:, :10], 1)
    for key, top in (("before", raw_top), ("after", norm_top)):
        nk = np.bincount(top.ravel(), minlength=N)
        assert abs(rep[key]["skewness"] - skew(nk)) < 0.05, (key, rep[key], skew(nk))
        assert abs(rep[key]["skewness_retrieved_only"] - skew(nk, False)) < 0.05, key
        assert abs(rep[key]["never_retrieved"] - int((nk == 0).sum())) <= 3, key
        assert_eq(rep[key]["max_n_k"], int(nk.max()), key)
    hub_ids = {g["ids"][h] for h in g["hubs"]}
    assert all(h["id"] in hub_ids for h in rep["before"]["top_hubs"]), rep["before"]
    assert rep["after"]["skewness"] < rep["before"]["skewness"], rep
    assert_eq(rep["queries"], NQ)
    assert_eq(rep["gallery"], N)


@test
def bad_requests_change_nothing():
    d, g = setup()
    q = g["q"][0].tolist()
    cases = [
        ({"vector": q, "space": "v", "hubness": {"normalizer": "n", "method": "qb"}}, 422),
        ({"vector": q, "space": "v", "hubness": {"normalizer": "nope"}}, 404),
        ({"vector": q, "space": "v", "hubness": {"normalizer": "n", "candidates": 0}}, 422),
        ({"vector": q, "space": "v", "hubness": {"normalizer": "n", "x": 1}}, 422),
        ({"vector": q, "space": "v", "score_threshold": 0.5, "hubness": {"normalizer": "n"}}, 422),
    ]
    for body, status in cases:
        assert_problem(d.json("POST", "/v1/datasets/h/search", body), status)
    puts = [
        ({"space": "v", "query_bank": {"vectors": [[1, 2]]}}, 422, "dimension_mismatch"),
        ({"space": "v", "query_bank": {"vectors": [[0] * D]}}, 422, "zero_vector"),
        ({"space": "v"}, 422, "bad_bank"),
        ({"space": "v", "query_bank": {"dataset": "nope"}}, 404, None),
        ({"space": "w", "query_bank": {"vectors": [[1] * D]}}, 422, "bad_param"),
        ({"space": "v", "query_bank": {"vectors": [[1] * D]}, "beta1": -1}, 422, "bad_param"),
        ({"space": "v", "query_bank": {"vectors": [[1] * D]}, "dualdis_mode": "x"}, 422,
         "bad_param"),
    ]
    for body, status, code in puts:
        assert_problem(d.json("PUT", "/v1/datasets/h/hubness/n", body), status, code)
    st, _, v = d.get_json("/v1/datasets/h/hubness/n")
    assert v["ready"] is True and v["version"] == 1, v


@test
def bank_from_dataset_monotone_and_delete():
    d, g = setup()
    # the query bank read from the gallery itself (a sample of 50), monotone DualDIS
    resp = d.json("PUT", "/v1/datasets/h/hubness/m", {
        "space": "v", "query_bank": {"dataset": "h", "space": "v", "sample": 50},
        "gallery_bank": {"dataset": "h", "sample": 200}, "dualdis_mode": "monotone"})
    curate.wait_job(d, curate.job_id(resp))
    st, _, v = d.get_json("/v1/datasets/h/hubness/m")
    assert_eq(v["query_bank"]["items"], 50)
    assert_eq(v["gallery_bank"]["items"], 200)
    res = search(d, {"vector": g["q"][1].tolist(), "space": "v", "limit": 5,
                     "hubness": {"normalizer": "m", "method": "dualdis"}})["results"]
    assert len(res) == 5 and all(r["hubness_score"] is not None for r in res), res
    sc = [r["hubness_score"] for r in res]
    assert sc == sorted(sc, reverse=True), sc
    # the request's dualdis_mode overrides the normalizer's: on "n" (reference) a query whose
    # raw top-1 is in neither activation set ranks by s^2 in reference mode and by s in monotone
    for k in range(NQ):
        qv = g["q"][k]
        s_all = g["g"] @ unit(qv[None].astype(np.float64))[0]
        t1 = int(np.argmax(s_all))
        if not g["aq"][t1] and not g["ag"][t1]:
            break
    else:
        raise AssertionError("no query with an inactive top-1")
    for mode, want in (("reference", s_all ** 2), ("monotone", 2 * BETA * s_all)):
        res = search(d, {"vector": qv.tolist(), "space": "v", "limit": 5, "params": {"exact": True},
                         "hubness": {"normalizer": "n", "method": "dualdis", "dualdis_mode": mode}})
        for r in res["results"]:
            w = want[int(r["id"][1:])]
            assert abs(r["hubness_score"] - w) <= 1e-4 * max(1, abs(w)), (mode, r, w)
    assert_problem(d.json("POST", "/v1/datasets/h/search", {
        "vector": qv.tolist(), "space": "v",
        "hubness": {"normalizer": "n", "dualdis_mode": "x"}}), 422)
    st, _, _ = d.request("DELETE", "/v1/datasets/h/hubness/m")
    assert_eq(st, 204)
    assert_problem(d.json("GET", "/v1/datasets/h/hubness/m"), 404, "normalizer_not_found")


@test
def statistics_survive_a_restart_and_follow_ingest():
    d, g = setup()
    body = {"vector": g["q"][3].tolist(), "space": "v", "limit": 10,
            "hubness": {"normalizer": "n", "method": "dualis"}}
    before = search(d, body)["results"]
    d.restart()
    after = search(d, body)["results"]
    assert_eq([(r["id"], round(r["hubness_score"], 4)) for r in after],
              [(r["id"], round(r["hubness_score"], 4)) for r in before])
    # a new record equal to a query-bank vector: its statistics come on ingest, and it becomes
    # that bank item's top-1, so it enters A_q (DIS then normalises a query whose top-1 it is)
    v = g["bank"][0].astype(np.float64)
    assert_eq(d.ingest("h", [{"id": "new", "embeddings": {"v": curate.emb(v)}}])[0], 200)
    res = search(d, {"vector": v.tolist(), "space": "v", "limit": 100,
                     "hubness": {"normalizer": "n", "method": "dis", "candidates": 100}})["results"]
    new = [r for r in res if r["id"] == "new"]
    assert len(new) == 1 and abs(new[0]["score"] - 1) < 1e-5, res[:3]
    qb = unit(g["bank"].astype(np.float64))
    lzq = np.log(np.exp(BETA * (qb @ unit(v[None])[0])).sum())
    # IS, not the raw 1.0: the row is normalised because "new" is in A_q now
    assert abs(new[0]["hubness_score"] - (BETA - lzq)) < 1e-3, (new[0], BETA - lzq)


if __name__ == "__main__":
    wn.main()
