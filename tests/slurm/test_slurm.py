# SPDX-License-Identifier: MIT
"""`make test-slurm`: deploy/slurm/ for real on a throw-away single-node Slurm that this test
starts (tests/slurm/minislurm.sh: munged, slurmctld, slurmd, all in a temp dir, ports
WINNOW_TEST_SLURM_PORT and the next, default 18410) and stops.

  1. cluster.sh start 3: a 3-task shard array on the one node (ports 18420-18422); task 0
     starts the router (port 18430) once the 3 shards registered; shards.json names them.
  2. pipeline.sh: create -> ingest (3 slices, an array) -> score (clip_score) -> select (top 30%)
     -> export (.npy), as jobs chained with --dependency=afterok; every job must COMPLETE.
  3. The exported .npy must equal, byte for byte, the one a single winnowd (started here, the
     same CLI calls) exports for the same 3,000 records, and numpy's own top 30% of them; the
     records must lie on the shards that the contract's placement rule names.
  4. A pipeline whose score step fails: the steps after it never run (afterok; the test's
     slurm.conf has kill_invalid_depend, so they end CANCELLED).
  5. cluster.sh stop: the jobs end, the shards' ports close, the registrations go.
Not part of `make test` (needs slurm-wlm and munge: scripts/slurm-deps.sh, and root)."""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import curate  # noqa: E402
import wn  # noqa: E402
from wn import assert_eq, test  # noqa: E402

SLURM = os.path.join(wn.REPO, "deploy", "slurm")
BIN = os.path.dirname(wn.WINNOWD)
CLI = os.environ.get("WINNOW_CLI") or os.path.join(BIN, "winnow")
CTLD_PORT = int(os.environ.get("WINNOW_TEST_SLURM_PORT", "18410"))
SHARD_PORT = CTLD_PORT + 10
ROUTER_PORT = CTLD_PORT + 20
N_SHARDS, N_RECORDS, N_SLICES = 3, 3000, 3
SHARD_KEY = "winnow-slurm-test-shard-key"
STEPS = [{"filter": "clip", "top_fraction": 0.3}]
ST = {}  # state shared by the tests, in order


def sh(*args, env=None, timeout=120, check=True):
    p = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=timeout, check=False)
    out, err = p.stdout.decode(), p.stderr.decode()
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(args), p.returncode, out, err))
    return out


def slurm_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WINNOW_", "SLURM_"))}
    env.update(SLURM_CONF=os.path.join(ST["slurm"], "slurm.conf"), WINNOW_SLURM_DIR=ST["cluster"],
               WINNOW_SLURM_BIN=BIN, WINNOW_SLURM_HOST="127.0.0.1",
               WINNOW_SLURM_PORT=str(SHARD_PORT), WINNOW_SLURM_ROUTER_PORT=str(ROUTER_PORT),
               WINNOW_SLURM_DATA=os.path.join(ST["tmp"], "node-local"), WINNOW_SLURM_WAIT="120",
               WINNOW_SLURM_SHARD_KEYS=ST["keys"], WINNOW_SHARD_KEY=SHARD_KEY)
    env.update(extra)
    return env


def job_state(jid):
    """JobState of every task of job jid (an array gives one per task)."""
    out = sh("scontrol", "-o", "show", "job", str(jid), env=slurm_env())
    states = []
    for line in out.splitlines():
        kv = dict(f.split("=", 1) for f in line.split() if "=" in f)
        states.append(kv.get("JobState"))
    return states


def wait_jobs(jids, timeout=300):
    """Wait until no job of jids is pending or running; their final states."""
    end = time.monotonic() + timeout
    while True:
        states = {j: job_state(j) for j in jids}
        if all(s not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING")
               for ss in states.values() for s in ss):
            return states
        if time.monotonic() > end:
            raise AssertionError("jobs still running after %d s: %s" % (timeout, states))
        time.sleep(0.5)


def port_open(port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def placement(rid, n, virtual=1024):
    """docs/scale.md: the shard of a record id."""
    v = int.from_bytes(hashlib.sha256(rid.encode()).digest()[:8], "big") % virtual
    return v * n // virtual


def pipeline_env(ds, out, filter_def):
    return slurm_env(WINNOW_PIPELINE_DATASET=ds, WINNOW_PIPELINE_SCHEMA=json.dumps(curate.SCHEMA),
                     WINNOW_PIPELINE_SLICES=ST["slices"], WINNOW_PIPELINE_FILTER="clip",
                     WINNOW_PIPELINE_FILTER_DEF=json.dumps(filter_def),
                     WINNOW_PIPELINE_SUBSET="top30", WINNOW_PIPELINE_STEPS=json.dumps(STEPS),
                     WINNOW_PIPELINE_OUTPUT=out)


def cli(url, *args, key=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WINNOW_")}
    return sh(CLI, "--url", url, "-q", *args, *(["--key", key] if key else []), env=env,
              timeout=300)


@test
def slurm_starts():
    for b in ("munged", "slurmctld", "slurmd"):
        assert shutil.which(b) or os.path.exists("/usr/sbin/" + b), \
            "%s missing: run scripts/slurm-deps.sh" % b
    ST["tmp"] = tempfile.mkdtemp(prefix="winnow-slurm-")
    ST["slurm"] = os.path.join(ST["tmp"], "slurm")
    ST["cluster"] = os.path.join(ST["tmp"], "cluster")
    ST["slices"] = os.path.join(ST["tmp"], "slices")
    os.makedirs(ST["slices"])
    # the shards admit only the router's key (WINNOW_SHARD_KEY), even on loopback
    ST["keys"] = os.path.join(ST["tmp"], "shard-keys")
    with open(ST["keys"], "w") as f:
        f.write("admin %s router\n" % hashlib.sha256(SHARD_KEY.encode()).hexdigest())
    sh(os.path.join(HERE, "minislurm.sh"), "up", ST["slurm"], str(CTLD_PORT), timeout=60)
    ST["up"] = True
    out = sh("sinfo", "-h", "-N", "-o", "%N %c %t", env=slurm_env())
    assert out.split()[:2] == ["localhost", "2"], out


@test
def reference_single_daemon():
    """The same data through one winnowd and the same CLI calls: the expected .npy."""
    pool = curate.Pool(N_RECORDS, seed=18)
    ST["pool"] = pool
    per = (N_RECORDS + N_SLICES - 1) // N_SLICES
    for s in range(N_SLICES):
        with open(os.path.join(ST["slices"], "slice-%02d.ndjson" % s), "w") as f:
            for i in range(s * per, min(N_RECORDS, (s + 1) * per)):
                f.write(json.dumps(pool.record(i)) + "\n")
    ST["ref"] = os.path.join(ST["tmp"], "single.npy")
    with wn.Daemon() as d:
        url = "http://127.0.0.1:%d" % d.port
        cli(url, "create", "pool", json.dumps(curate.SCHEMA))
        for s in sorted(os.listdir(ST["slices"])):
            cli(url, "ingest", "pool", os.path.join(ST["slices"], s))
        cli(url, "filter", "put", "pool", "clip", json.dumps(curate.CLIP), "--wait")
        cli(url, "subset", "put", "pool", "top30", json.dumps(STEPS), "--wait")
        cli(url, "export", "pool", "top30", "-o", ST["ref"], "--format", "npy")
        d.stop()
    keep, _ = curate.top_fraction(pool.clip(), 0.3)
    with open(ST["ref"], "rb") as f:
        assert_eq(f.read(), curate.npy_bytes(np.array(pool.ids)[keep]), "numpy's top 30%")


@test
def shard_array_and_router_start():
    out = sh(os.path.join(SLURM, "cluster.sh"), "start", str(N_SHARDS), env=slurm_env())
    ST["jobs"] = out.split()
    url = sh(os.path.join(SLURM, "cluster.sh"), "url", "120", env=slurm_env(), timeout=150).strip()
    assert_eq(url, "http://127.0.0.1:%d" % ROUTER_PORT)
    ST["router"] = url
    assert_eq(job_state(ST["jobs"][0]), ["RUNNING"] * N_SHARDS)
    with open(os.path.join(ST["cluster"], "shards.json")) as f:
        cluster = json.load(f)
    want = ["http://127.0.0.1:%d" % (SHARD_PORT + i) for i in range(N_SHARDS)]
    assert_eq([s["url"] for s in cluster["shards"]], want)
    assert_eq(cluster["virtual_shards"], 1024)
    for i in range(N_SHARDS):
        assert os.path.isdir(os.path.join(ST["tmp"], "node-local", "winnow-shard-%d" % i))
    ready = json.loads(sh("curl", "-fsS", url + "/readyz?verbose"))
    assert ready, ready


@test
def pipeline_as_dependent_jobs_equals_one_daemon():
    out = os.path.join(ST["tmp"], "cluster.npy")
    jids = sh(os.path.join(SLURM, "pipeline.sh"), env=pipeline_env("pool", out, curate.CLIP)).split()
    assert_eq(len(jids), 5, "create, ingest, score, select, export")
    # each job waits on the one before it
    for before, after in zip(jids, jids[1:]):
        dep = sh("scontrol", "-o", "show", "job", after, env=slurm_env())
        assert ("afterok:%s" % before) in dep, dep[:400]
    states = wait_jobs(jids, timeout=600)
    assert_eq(states, {j: ["COMPLETED"] * (N_SLICES if k == 1 else 1) for k, j in enumerate(jids)},
              "job states; logs in %s" % os.path.join(ST["cluster"], "logs"))
    with open(out, "rb") as f, open(ST["ref"], "rb") as g:
        assert f.read() == g.read(), "the cluster's .npy differs from the single daemon's"
    # the records lie where the placement rule says, and nowhere else
    counts = [0] * N_SHARDS
    for rid in ST["pool"].ids:
        counts[placement(rid, N_SHARDS)] += 1
    got = [json.loads(cli("http://127.0.0.1:%d" % (SHARD_PORT + i), "dataset", "pool",
                          key=SHARD_KEY))["records"] for i in range(N_SHARDS)]
    assert_eq(got, counts, "records per shard")
    rid = ST["pool"].ids[7]
    owner = placement(rid, N_SHARDS)
    for i in range(N_SHARDS):
        for key, rc in ((SHARD_KEY, 0 if i == owner else 1), (None, 1)):
            p = subprocess.run([CLI, "--url", "http://127.0.0.1:%d" % (SHARD_PORT + i), "-q",
                                "get", "pool", rid, "--no-embeddings"]
                               + (["--key", key] if key else []), capture_output=True, timeout=30)
            assert_eq(p.returncode, rc, "record %s on shard %d, key %s: %s" % (rid, i, key, p.stderr))
            if key is None:
                assert b"401" in p.stderr, p.stderr


@test
def a_failed_step_stops_the_chain():
    out = os.path.join(ST["tmp"], "never.npy")
    bad = {"type": "clip_score", "params": {"image_space": "nope", "text_space": "text"}}
    jids = sh(os.path.join(SLURM, "pipeline.sh"), env=pipeline_env("pool2", out, bad)).split()
    states = wait_jobs(jids, timeout=600)
    assert_eq([states[j][0] for j in jids[:3]], ["COMPLETED", "COMPLETED", "FAILED"])
    # minislurm.sh sets kill_invalid_depend: the jobs that can never run are cancelled (without
    # it they stay pending with reason DependencyNeverSatisfied)
    assert_eq([states[j][0] for j in jids[3:]], ["CANCELLED", "CANCELLED"], "select, export never run")
    assert not os.path.exists(out)


@test
def cluster_stops():
    sh(os.path.join(SLURM, "cluster.sh"), "stop", env=slurm_env())
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if not any(s in ("RUNNING", "COMPLETING") for s in job_state(ST["jobs"][0])) and \
                not any(port_open(p) for p in list(range(SHARD_PORT, SHARD_PORT + N_SHARDS)) +
                        [ROUTER_PORT]):
            break
        time.sleep(0.5)
    assert not any(port_open(p) for p in range(SHARD_PORT, SHARD_PORT + N_SHARDS + 1)), "ports open"
    assert not port_open(ROUTER_PORT), "router port open"
    assert_eq(sorted(os.listdir(os.path.join(ST["cluster"], "shards"))), [], "registrations")
    assert not os.path.exists(os.path.join(ST["cluster"], "router.url"))
    ST.pop("jobs")
    # the shards and the router (task 0's log) stopped cleanly: no sanitizer report, no error
    logs = os.path.join(ST["cluster"], "logs")
    for name in sorted(os.listdir(logs)):
        if name.startswith("shard-"):
            with open(os.path.join(logs, name), errors="replace") as f:
                lines = f.read().splitlines()
            assert_eq(wn.sanitizer_text(lines), [], name)
            # task 0 runs the router too: two clean stops in its log
            assert_eq(len([l for l in lines if "event=stopped" in l]),
                      2 if name == "shard-0.log" else 1, "%s: clean stops" % name)


def teardown():
    if ST.get("jobs"):
        subprocess.run(["scancel"] + ST["jobs"], env=slurm_env(), check=False)
    if ST.get("up"):
        subprocess.run([os.path.join(HERE, "minislurm.sh"), "down", ST["slurm"]], check=False)
    if ST.get("tmp") and not os.environ.get("WINNOW_TEST_KEEP"):
        shutil.rmtree(ST["tmp"], ignore_errors=True)


if __name__ == "__main__":
    try:
        wn.main()
    finally:
        teardown()
