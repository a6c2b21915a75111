# SPDX-License-Identifier: MIT
"""The SIGKILL test of issue 2: ingest in a bounded loop, kill -9 the daemon at a random
moment (most likely mid-request), check that the LMDB environment is clean with mdb_stat,
restart on the same data directory, and read back every acknowledged record."""

import http.client
import json
import os
import random
import subprocess
import threading
import time

import numpy as np

import wn
from wn import assert_eq, test

ROUNDS = 4
BATCH = 50
DIM = 8
MAX_BATCHES = 5000          # per round; the kill comes long before
CLIENT_SECONDS = 20         # per round, a bound in case the kill never lands
SAMPLE_OLD = 500            # earlier rounds' records re-read after each restart


def lmdb_dir(data_dir):
    for root, _, files in os.walk(data_dir):
        if "data.mdb" in files:
            return root
    raise AssertionError("no data.mdb under %s" % data_dir)


def mdb_stat(data_dir):
    r = subprocess.run(["mdb_stat", "-a", lmdb_dir(data_dir)], capture_output=True,
                       timeout=60 * wn.SLOW)
    if r.returncode != 0:
        raise AssertionError("mdb_stat -a exit %d:\n%s%s" % (r.returncode, r.stdout.decode()[-800:],
                                                           r.stderr.decode()[-800:]))
    return r.stdout.decode()


class Ingester(threading.Thread):
    """Posts NDJSON batches until the daemon disappears; remembers acknowledged records."""

    def __init__(self, d, rnd, rng):
        super().__init__(daemon=True)
        self.d, self.rnd, self.rng = d, rnd, rng
        self.acked = {}    # id -> (text, f32 bytes)
        self.sent = set()  # every id ever sent
        self.errors = []   # unexpected answers while the daemon was alive

    def batch(self, b):
        recs, meta = [], {}
        vecs = self.rng.standard_normal((BATCH, DIM)).astype(np.float32)
        for i in range(BATCH):
            rid = "r%d-b%d-%d" % (self.rnd, b, i)
            text = "round %d batch %d item %d" % (self.rnd, b, i)
            emb = {"dtype": "f32", "b64": wn.b64(vecs[i].astype("<f4").tobytes())}
            recs.append({"id": rid, "text": text, "embeddings": {"v": emb}})
            meta[rid] = (text, vecs[i].tobytes())
        return recs, meta

    def run(self):
        deadline = time.monotonic() + CLIENT_SECONDS * wn.SLOW
        for b in range(MAX_BATCHES):
            if time.monotonic() > deadline:
                break
            recs, meta = self.batch(b)
            self.sent.update(meta)
            try:
                st, _, body = self.d.request("POST", "/v1/datasets/dur/records",
                                             wn.ndjson(recs), content_type="application/x-ndjson")
            except (OSError, http.client.HTTPException):
                return  # killed
            if st != 200:
                self.errors.append((b, st, body[:300]))
                return
            ans = json.loads(body)
            if ans.get("accepted") != BATCH:
                self.errors.append((b, st, ans))
                return
            self.acked.update(meta)


def verify(d, acked, ids):
    """GET every id over one keep-alive connection; text and vector must be exact."""
    conn = d.connection()
    bad = []
    try:
        for rid in ids:
            st, _, data = d.request("GET", "/v1/datasets/dur/records/" + wn.quote(rid), conn=conn)
            if st != 200:
                bad.append((rid, st))
                continue
            rec = json.loads(data)
            text, vec = acked[rid]
            got = np.array(rec.get("embeddings", {}).get("v", []), dtype=np.float64)
            if rec.get("text") != text or got.astype(np.float32).tobytes() != vec:
                bad.append((rid, "content", rec))
            if len(bad) >= 5:
                break
    finally:
        conn.close()
    assert not bad, "acknowledged records missing or wrong after SIGKILL: %r" % bad


@test
def sigkill_keeps_every_acknowledged_record():
    seed = int.from_bytes(os.urandom(4), "little")
    print("note: durability seed %d" % seed)
    rand = random.Random(seed)
    rng = np.random.default_rng(seed)
    acked, sent = {}, set()
    with wn.Daemon() as d:
        assert_eq(d.put_dataset("dur", {"spaces": {"v": {"dim": DIM}}})[0], 201, "create")
        for rnd in range(ROUNDS):
            ing = Ingester(d, rnd, rng)
            ing.start()
            time.sleep(rand.uniform(0.3, 1.5))
            d.kill9()
            ing.join(60 * wn.SLOW)
            assert not ing.is_alive(), "ingest thread did not stop after the kill"
            assert not ing.errors, "round %d: unexpected answers %r" % (rnd, ing.errors[:3])
            assert ing.acked, "round %d: no batch acknowledged before the kill" % rnd
            mdb_stat(d.data_dir)
            acked.update(ing.acked)
            sent |= ing.sent
            d.start()
            verify(d, acked, sorted(ing.acked))
            old = sorted(set(acked) - set(ing.acked))
            verify(d, acked, rand.sample(old, min(SAMPLE_OLD, len(old))))
            st, _, ds = d.get_json("/v1/datasets/dur")
            assert_eq(st, 200, "GET dataset")
            assert len(acked) <= ds["records"] <= len(sent), (
                "round %d: records %d, acknowledged %d, sent %d"
                % (rnd, ds["records"], len(acked), len(sent)))
            assert_eq(ds["rows"], ds["records"], "rows (no deletes, distinct ids)")
        print("note: %d records acknowledged over %d kills" % (len(acked), ROUNDS))


@test
def map_grows_past_its_initial_size():
    dim = 256
    n_batches, per_batch = 6, 400  # ~2.5 MB of vectors into a 1 MiB initial map
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((n_batches * per_batch, dim)).astype(np.float32)
    with wn.Daemon(extra_args=["--map-size", "1M"]) as d:
        assert_eq(d.put_dataset("grow", {"spaces": {"v": {"dim": dim}}})[0], 201, "create")
        for b in range(n_batches):
            recs = [{"id": "g%d" % i, "embeddings": {"v": {
                "dtype": "f32", "b64": wn.b64(vecs[i].astype("<f4").tobytes())}}}
                for i in range(b * per_batch, (b + 1) * per_batch)]
            st, _, body = d.ingest("grow", recs)
            assert_eq((st, body.get("accepted")), (200, per_batch), "batch %d" % b)
        _, text = d.metrics()
        size = [float(l.split()[-1]) for l in text.splitlines()
                if l.startswith("winnow_lmdb_map_size_bytes")]
        assert size and size[0] > 1024 * 1024, "map size did not grow: %r" % size
        d.restart()
        st, _, ds = d.get_json("/v1/datasets/grow")
        assert_eq((st, ds["records"]), (200, n_batches * per_batch), "records after restart")
        for i in (0, 1234, n_batches * per_batch - 1):
            st, _, data = d.request("GET", "/v1/datasets/grow/records/g%d" % i)
            got = np.array(json.loads(data)["embeddings"]["v"], dtype=np.float32)
            assert got.tobytes() == vecs[i].tobytes(), "vector g%d" % i


def get_format_version(data_dir):
    """The hex bytes of meta/format_version, read with mdb_dump."""
    r = subprocess.run(["mdb_dump", "-s", "meta", lmdb_dir(data_dir)], capture_output=True,
                       timeout=60)
    assert_eq(r.returncode, 0, "mdb_dump (%r)" % r.stderr)
    lines = r.stdout.decode().splitlines()
    return lines[lines.index(" " + b"format_version".hex()) + 1].strip()


def set_format_version(data_dir, hexval):
    """Overwrite meta/format_version with mdb_load."""
    dump = ("VERSION=3\nformat=bytevalue\ndatabase=meta\ntype=btree\nHEADER=END\n"
            " %s\n %s\nDATA=END\n" % (b"format_version".hex(), hexval))
    r = subprocess.run(["mdb_load", "-s", "meta", lmdb_dir(data_dir)], input=dump.encode(),
                       capture_output=True, timeout=60)
    assert_eq(r.returncode, 0, "mdb_load (%r)" % r.stderr)


@test
def newer_format_version_is_refused():
    with wn.Daemon() as d:
        assert_eq(d.put_dataset("ver", {"spaces": {}})[0], 201, "create")
        assert_eq(d.ingest("ver", [{"id": "a", "text": "kept"}])[0], 200, "ingest")
        d.stop()
        old = get_format_version(d.data_dir)
        set_format_version(d.data_dir, "ff" * (len(old) // 2))
        r = subprocess.run(d.argv(), stdin=subprocess.DEVNULL, capture_output=True,
                           env=wn.child_env(), timeout=60 * wn.SLOW)
        err = r.stderr.decode()
        assert r.returncode not in (0, None), "winnowd started on a newer format: %d" % r.returncode
        assert "newer" in err and "event=listening" not in err, err[-600:]
        assert not wn.sanitizer_text(err.splitlines()), err[-2000:]
        set_format_version(d.data_dir, old)
        d.start()
        assert_eq(d.get_record("ver", "a")[2].get("text"), "kept", "data intact after refusal")


if __name__ == "__main__":
    wn.main()
