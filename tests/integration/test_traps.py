# SPDX-License-Identifier: MIT
"""Curation defaults that protect users from the known traps (issue 19) over HTTP: a
per-cluster fraction keeps exactly round(f * N) records with at least one per cluster
(largest-remainder apportionment, min_per_cluster), and says so in its provenance; a subset
that keeps nothing, or a step whose filter can score none of its records, finishes with
warnings in its job and its provenance instead of a silent success. (The CoLoR-Filter prior
overlap checks are in test_color_ngram.py, next to the text corpora they need.)"""

import numpy as np

import curate
import wn
from curate import emb
from wn import assert_eq, assert_problem, test

daemon = wn.Shared(log_level="info")
K = 20
SIZES = [5] * 10 + [95] * 10  # 1,000 records: ten small clusters and ten large ones
_st = {}


def clusters_ds():
    """Dataset "cl": record i of cluster c is e_c plus small noise on the other axes, so that
    the filter with the one-hot centroids puts it in cluster c; prototypes filter "ssp"."""
    d = daemon()
    if "x" in _st:
        return d, _st["x"], _st["lab"], _st["ids"]
    rng = np.random.default_rng(19)
    lab = np.repeat(np.arange(K), SIZES)
    x = np.eye(K, dtype=np.float32)[lab] + 0.2 * rng.random((len(lab), K), dtype=np.float32)
    x[np.arange(len(lab)), lab] = 1.0
    ids = ["c%02d-%03d" % (c, i) for i, c in enumerate(lab)]
    assert_eq(d.put_dataset("cl", {"spaces": {"emb": {"dim": K, "dtype": "f32"}}})[0], 201)
    st, _, body = d.ingest("cl", [{"id": ids[i], "embeddings": {"emb": emb(x[i])}}
                                  for i in range(len(ids))])
    assert_eq((st, body["rejected"]), (200, 0))
    curate.wait_job(d, curate.put_filter(d, "cl", "ssp", {"type": "prototypes", "params": {
        "space": "emb", "centroids": np.eye(K).tolist()}}))
    _st.update(x=x, lab=lab, ids=ids)
    return d, x, lab, ids


def materialise(d, name, steps):
    j = curate.wait_job(d, curate.put_subset(d, "cl", name, steps))
    _, body = curate.export(d, "cl", name, "?format=ids")
    st, _, sub = d.get_json("/v1/datasets/cl/subsets/" + name)
    assert_eq(st, 200)
    return j, sub, set(body.decode().split())


@test
def per_cluster_keeps_round_f_n_with_one_per_cluster():
    d, x, lab, ids = clusters_ds()
    z = x.astype(np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
    dist = 1 - z[np.arange(len(lab)), lab]
    # f = 0.05: rounding each cluster alone keeps round(0.25) = 0 of every small cluster
    # (ten empty clusters); quotas 0.25 and 4.75, each small cluster lifted to 1, the 40 rows
    # left over the large ones: 4 each. kept = 50 = round(0.05 * 1000).
    # f = 0.045: round(f * n_c) would keep 0 and 4 (40 of 45); the apportionment: quotas
    # 0.225 (remainder 225/1000) and 4.275 (275/1000): 4 + 1 for the first five large ones by
    # remainder; the small ones lifted to 1; then 35 over 950 rows: 3.5 each, floors 30 and
    # the 5 seats left to the first five by index: 4, 4, 4, 4, 4, 3, 3, 3, 3, 3.
    for f, want, name in ((0.05, [1] * 10 + [4] * 10, "pc50"),
                          (0.045, [1] * 10 + [4] * 5 + [3] * 5, "pc45")):
        j, sub, kept = materialise(d, name, [{"filter": "ssp", "top_fraction": f,
                                              "per_cluster": True}])
        ps = sub["provenance"]["steps"][0]
        cl = ps["clusters"]
        assert_eq((ps["requested"], ps["realised"], ps["out"], len(kept)),
                  (int(np.floor(f * 1000 + 0.5)),) * 4, "kept == round(f N)")
        assert_eq((ps["min_per_cluster"], ps["min_per_cluster_applied"]), (1, 1))
        assert_eq((cl["in"], cl["out"], cl["emptied"], cl["empty"]), (SIZES, want, 0, []))
        assert_eq((j["warnings"], sub["provenance"]["warnings"]), ([], []), "no warning")
        # inside each cluster, the hardest (largest distance) rows
        for c in range(K):
            idx = np.nonzero(lab == c)[0]
            top = idx[np.argsort(-dist[idx], kind="stable")[:want[c]]]
            assert_eq({i for i in kept if i.startswith("c%02d-" % c)},
                      {ids[i] for i in top}, "cluster %d" % c)
    # min_per_cluster 0: plain largest remainders: the 10 seats over the floors (0 and 4) go
    # to the large clusters (remainder 750 against 250): ten empty clusters, and warnings
    j, sub, kept = materialise(d, "pc0", [{"filter": "ssp", "top_fraction": 0.05,
                                           "per_cluster": True, "min_per_cluster": 0}])
    ps = sub["provenance"]["steps"][0]
    assert_eq((ps["out"], ps["min_per_cluster_applied"], ps["clusters"]["out"]),
              (50, 0, [0] * 10 + [5] * 10))
    assert_eq(ps["clusters"]["empty"], list(range(10)))
    assert_eq([w["code"] for w in j["warnings"]], ["clusters_emptied"])
    w = sub["provenance"]["warnings"]
    assert_eq((len(w), w[0]["code"], w[0]["step"], w[0]["clusters"]),
              (1, "clusters_emptied", 0, list(range(10))))
    # a budget below one row per cluster: 10 rows for 20 clusters, no minimum applies;
    # quotas 0.05 (r50) and 0.95 (r950): the ten large clusters get one each
    j, sub, kept = materialise(d, "pc10", [{"filter": "ssp", "bottom_fraction": 0.01,
                                            "per_cluster": True, "min_per_cluster": 3}])
    ps = sub["provenance"]["steps"][0]
    assert_eq((ps["requested"], ps["out"], ps["min_per_cluster"], ps["min_per_cluster_applied"]),
              (10, 10, 3, 0))
    assert_eq(ps["clusters"]["out"], [0] * 10 + [1] * 10)
    assert_eq([w["code"] for w in j["warnings"]], ["clusters_emptied"])
    # a minimum of 2 fits a budget of 50 (10 * 2 + 10 * 2 = 40 <= 50)
    j, sub, kept = materialise(d, "pc2", [{"filter": "ssp", "top_fraction": 0.05,
                                           "per_cluster": True, "min_per_cluster": 2}])
    ps = sub["provenance"]["steps"][0]
    assert_eq((ps["out"], ps["min_per_cluster_applied"], ps["clusters"]["out"]),
              (50, 2, [2] * 10 + [3] * 10))
    # bad definitions
    for step in ({"filter": "ssp", "top_fraction": 0.1, "min_per_cluster": 1},
                 {"filter": "ssp", "top_fraction": 0.1, "per_cluster": True,
                  "min_per_cluster": -1},
                 {"filter": "ssp", "top_fraction": 0.1, "per_cluster": True,
                  "min_per_cluster": 1.5}):
        assert_problem(d.json("PUT", "/v1/datasets/cl/subsets/bad", {"steps": [step]}), 422,
                       "bad_step")
    assert_eq(d.get_json("/v1/datasets/cl/subsets/bad")[0], 404)


@test
def empty_subset_and_unscorable_step_warn():
    d, x, lab, ids = clusters_ds()
    # above every distance: nothing kept
    j, sub, kept = materialise(d, "none", [{"filter": "ssp", "threshold": 2}])
    assert_eq((j["state"], sub["members"], kept), ("succeeded", 0, set()))
    assert_eq([w["code"] for w in j["warnings"]], ["empty_subset"])
    assert "keeps no record" in j["warnings"][0]["detail"], j["warnings"]
    assert_eq([w["code"] for w in sub["provenance"]["warnings"]], ["empty_subset"])
    # records without text or image: the basic filter scores none of them
    curate.wait_job(d, curate.put_filter(d, "cl", "basic", {"type": "basic"}))
    j, sub, kept = materialise(d, "unsc", [{"filter": "ssp", "top_fraction": 0.5},
                                           {"filter": "basic", "keep": True}])
    assert_eq([w["code"] for w in j["warnings"]], ["step_all_unscorable", "empty_subset"])
    w = sub["provenance"]["warnings"][0]
    assert_eq((w["code"], w["step"]), ("step_all_unscorable", 1))
    assert "'basic'" in w["detail"] and "501" in w["detail"], w
    # the warnings stay with the job after a restart
    d.restart()
    st, _, j2 = d.get_json("/v1/jobs/%s" % j["id"])
    assert_eq(j2["warnings"], j["warnings"])
    # a subset that keeps something has none
    j, sub, kept = materialise(d, "some", [{"filter": "ssp", "top_fraction": 0.5}])
    assert_eq((j["warnings"], sub["provenance"]["warnings"], len(kept)), ([], [], 501))


if __name__ == "__main__":
    wn.main()
