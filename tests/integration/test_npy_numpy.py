# SPDX-License-Identifier: MIT
"""Integration test of lib/npy against numpy itself: the .npy bytes that the C module writes
(through the `test_npy --emit N SEED` / `--header N` modes of the unit-test binary) must equal
what np.save writes for the same uids, byte for byte, and np.load must read them back as a
sorted [('f0','<u8'),('f1','<u8')] array. Needs no daemon; the binary is
build/tests/lib/test_npy (build/san/tests/lib/test_npy when WINNOW_TEST_SANITIZE is set)."""

import io
import os
import subprocess

import numpy as np

import wn
from wn import assert_eq, test

BIN = os.path.join(wn.REPO, "build", "san" if os.environ.get("WINNOW_TEST_SANITIZE") else "",
                   "tests", "lib", "test_npy")
TIMEOUT = 60 * wn.SLOW
M64 = (1 << 64) - 1
DTYPE = np.dtype([("f0", "<u8"), ("f1", "<u8")])


def run(*args):
    """stdout of the C helper; fails on a non-zero exit or any stderr output."""
    if not os.path.exists(BIN):
        raise AssertionError("%s missing: run `make %s` first"
                             % (BIN, os.path.relpath(BIN, wn.REPO)))
    p = subprocess.run([BIN] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=TIMEOUT, check=False)
    assert_eq(p.returncode, 0, "exit of %s %s: %s" % (BIN, args, p.stderr.decode(errors="replace")))
    assert_eq(p.stderr, b"", "stderr of %s" % (args,))
    return p.stdout


class SplitMix64:
    """The PRNG of tests/unit/lib/test_npy.c."""

    def __init__(self, seed):
        self.s = seed & M64

    def __call__(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)


def uids(n, seed):
    """The uid strings the C helper draws: "%x%016x" of (d >> (d & 63), next draw), so many
    are shorter than 32 digits."""
    rng = SplitMix64(seed)
    out = []
    for _ in range(n):
        d = rng()
        out.append("%x%016x" % (d >> (d & 63), rng()))
    return out


def reference(us):
    """np.save bytes of the subset file as DataComp builds it: left-pad to 32, split, sort."""
    padded = sorted(u.rjust(32, "0") for u in us)  # hex order == (f0, f1) order
    arr = np.array([(int(u[:16], 16), int(u[16:], 16)) for u in padded], dtype="u8,u8")
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


class _HeaderOnly(Exception):
    pass


class _FirstWrite:
    """A file object that keeps np.save's first write (the header) and then stops it."""

    def __init__(self):
        self.first = None

    def write(self, data):
        if self.first is not None:
            raise _HeaderOnly()
        self.first = bytes(data)
        return len(data)


def numpy_header(n):
    """The preamble np.save writes for n records, without materializing n records. numpy
    cannot even describe an array of 2**59 or more 16-byte records; beyond that, ask its
    public header writer (the one np.save calls) directly."""
    if n >= 1 << 59:
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {
            "descr": np.lib.format.dtype_to_descr(np.dtype("u8,u8")),
            "fortran_order": False, "shape": (n,)})
        return buf.getvalue()
    arr = np.broadcast_to(np.zeros(1, dtype="u8,u8"), (n,))
    f = _FirstWrite()
    try:
        np.save(f, arr)
    except _HeaderOnly:
        pass
    assert f.first is not None, "np.save wrote nothing"
    return f.first


def check_emit(n, seed):
    got = run("--emit", n, seed)
    want = reference(uids(n, seed))
    assert_eq(len(got), len(want), "length for N=%d" % n)
    if got != want:
        i = next(i for i in range(len(got)) if got[i] != want[i])
        raise AssertionError("N=%d seed=%d: first difference at byte %d: %r vs %r"
                             % (n, seed, i, got[i:i + 16], want[i:i + 16]))
    arr = np.load(io.BytesIO(got))
    assert_eq(arr.dtype, DTYPE, "dtype")
    assert_eq(arr.shape, (n,), "shape")
    assert np.array_equal(arr, np.sort(arr, order=["f0", "f1"])), "not sorted by (f0, f1)"
    return arr


@test
def emit_matches_np_save_small():
    for n in (0, 1, 2, 3, 17, 64):
        check_emit(n, 20261128 + n)


@test
def emit_matches_np_save_large():
    arr = check_emit(100000, 7)
    # The draw makes short uids (f0 == 0) and full ones; both must be present.
    assert (arr["f0"] == 0).any() and (arr["f0"] > (1 << 60)).any(), "uid lengths not mixed"


@test
def emit_two_spec_uids_is_160_bytes():
    # Spec 1.6: the 2-record file is 160 bytes with this data part (computed by numpy here).
    arr = np.array(sorted([(1413649363202610295, 2235693070683988304),
                           (7941369398997528389, 6665352425310327299)]), dtype="u8,u8")
    buf = io.BytesIO()
    np.save(buf, arr)
    data = buf.getvalue()
    assert_eq(len(data), 160, "numpy file size")
    assert_eq(data[128:].hex(), "7714a6229b4a9e1350e1eba800c7061f"
                                "45af67a96469356e0312695db716805c", "numpy data bytes")
    assert_eq(run("--header", 2), data[:128], "C header for N=2")


@test
def header_matches_numpy_for_any_count():
    for n in (0, 1, 9, 10, 999, 10 ** 6, 10 ** 10, 10 ** 15, (1 << 59) - 1, 1 << 59,
              2 ** 63 - 1, 10 ** 19, M64):
        want = numpy_header(n)
        assert_eq(run("--header", n), want, "header for N=%d" % n)
        assert_eq(len(want) % 64, 0, "numpy alignment for N=%d" % n)


@test
def header_parses_back():
    for n in (0, 5, 10 ** 10, M64):
        f = io.BytesIO(run("--header", n))
        assert_eq(np.lib.format.read_magic(f), (1, 0), "version")
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        assert_eq((shape, fortran, dtype), ((n,), False, DTYPE), "header fields for N=%d" % n)
        assert_eq(f.tell(), 128, "data offset")


@test
def emit_rejects_bad_arguments():
    for args in (("--emit", "-1", "1"), ("--emit", "x", "1"), ("--emit", "100000000", "1"),
                 ("--header", "18446744073709551616")):
        p = subprocess.run([BIN] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=TIMEOUT, check=False)
        assert_eq(p.returncode, 2, "exit for %s" % (args,))
        assert_eq(p.stdout, b"", "stdout for %s" % (args,))


if __name__ == "__main__":
    wn.main()
