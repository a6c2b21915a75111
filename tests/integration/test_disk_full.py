# SPDX-License-Identifier: MIT
"""Issue 16, item 8: a full disk is a 507 insufficient_storage problem that changes nothing,
/readyz says degraded (reads and searches still answer) until a write commits again, and
nothing acknowledged is lost. The data directory lives on a small tmpfs the test mounts
(root only, as CI runs) and fills with a file it removes to free the space again."""

import os
import subprocess
import tempfile

import wn
from wn import assert_eq, assert_problem, test

SCHEMA = {"spaces": {"v": {"dim": 4}}}
PAD = "x" * 16000


def batch(start, n):
    return [{"id": "r%06d" % i, "text": PAD, "embeddings": {"v": [1.0, float(i), 0.0, 0.0]}}
            for i in range(start, start + n)]


@test
def a_full_disk_is_507_and_degraded_then_recovers():
    mnt = tempfile.mkdtemp(prefix="winnow-full-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", mnt], check=True)
    try:
        data = os.path.join(mnt, "data")
        filler = os.path.join(mnt, "filler")
        with wn.Daemon(tmpdir=data, extra_args=["--map-size", "1M"], log_level="info") as d:
            d.put_dataset("p", SCHEMA)
            st, _, body = d.ingest("p", batch(0, 50))
            assert_eq((st, body["accepted"]), (200, 50), "before the disk fills")
            # leave about 2 MiB free, then ingest until a write fails for space
            free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
            with open(filler, "wb") as f:
                f.write(b"\0" * max(0, free - (2 << 20)))
            acked, failed, start = 50, None, 50
            for _ in range(200):
                st, h, body = d.ingest("p", batch(start, 20))
                if st != 200:
                    failed = (st, h, body)
                    break
                acked, start = start + 20, start + 20
            assert failed is not None, "the disk never filled"
            st, h, p = failed
            assert_eq((st, p["code"], p["status"], h["content-type"]),
                      (507, "insufficient_storage", 507, "application/problem+json"), "the answer")
            assert "disk" in p["detail"], p
            # the failed batch changed nothing; everything acknowledged is there
            st, _, _ = d.get_record("p", "r%06d" % start)
            assert_eq(st, 404, "a record of the failed batch")
            st, _, r = d.get_record("p", "r%06d" % (acked - 1))
            assert_eq(st, 200, "the last acknowledged record")
            st, _, ds = d.get_json("/v1/datasets/p")
            assert_eq(ds["records"], acked, "records")
            st, _, rz = d.get_json("/readyz")
            assert_eq((st, rz["status"], rz["reasons"]), (200, "degraded", ["storage_full"]), "readyz")
            assert "winnow_storage_full 1" in d.metrics()[1], "metric"
            # space again: the next write commits, and /readyz is ready
            os.unlink(filler)
            st, _, body = d.ingest("p", batch(start, 20))
            assert_eq((st, body["accepted"]), (200, 20), "after freeing space")
            st, _, rz = d.get_json("/readyz")
            assert_eq((st, rz["status"]), (200, "ready"), "readyz after")
            assert "winnow_storage_full 0" in d.metrics()[1], "metric after"
            d.kill9()
            d.start()
            st, _, ds = d.get_json("/v1/datasets/p")
            assert_eq(ds["records"], acked + 20, "records after kill -9")
    finally:
        subprocess.run(["umount", "-l", mnt])
        os.rmdir(mnt)


if __name__ == "__main__":
    wn.main()
