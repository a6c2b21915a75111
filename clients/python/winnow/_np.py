# SPDX-License-Identifier: MIT
"""winnow._np: the numpy side of the client, imported only when a numpy helper is used.

Owns nothing. numpy is optional for the package: every function here imports it on first
call, so `import winnow` and every method that does not take or return arrays work without it.
"""

import base64
import io

_np = None


def np():
    """The numpy module, imported on first use; a clear ImportError when it is missing."""
    global _np
    if _np is None:
        try:
            import numpy  # noqa: PLC0415 - lazily on purpose
        except ImportError as exc:  # pragma: no cover - depends on the machine
            raise ImportError("winnow: this helper needs numpy (pip install numpy); the rest "
                              "of the client works without it") from exc
        _np = numpy
    return _np


def is_array(x):
    """True for a numpy array, without importing numpy when the caller never did."""
    return type(x).__module__ == "numpy" and hasattr(x, "dtype") and hasattr(x, "tobytes")


def wire_dtype(arr):
    """"f16" for a float16 array (sent as is: half the bytes), else "f32"."""
    return "f16" if arr.dtype == np().float16 else "f32"


def le_rows(arr, dtype=None):
    """arr as a C-contiguous little-endian f16 or f32 array (dtype "f16"/"f32", default
    wire_dtype(arr)); other float or int types are converted to f32."""
    n = np()
    dtype = dtype or wire_dtype(arr)
    want = n.dtype("<f2" if dtype == "f16" else "<f4")
    return n.ascontiguousarray(arr, dtype=want)


def b64_vector(vec):
    """{"dtype", "b64"} of one vector (a 1-D array), as ingest and search take it."""
    dt = wire_dtype(vec)
    return {"dtype": dt, "b64": base64.b64encode(le_rows(vec, dt).tobytes()).decode("ascii")}


def b64_text_rows(arr):
    """(dtype, [base64 text of each row]) of a 2-D array, converted once. When a row is a
    multiple of 3 bytes (768-d f16 or f32 rows are), the whole array is encoded in one call and
    cut into rows, which is exact (base64 maps 3 bytes to 4 characters) and several times
    faster than a call per row."""
    dt = wire_dtype(arr)
    a = le_rows(arr, dt)
    raw = a.tobytes()
    n = a.shape[0]
    step = a.shape[1] * a.itemsize if n else 0
    if step % 3 == 0:
        text = base64.b64encode(raw).decode("ascii")
        w = step // 3 * 4
        return dt, [text[i * w:(i + 1) * w] for i in range(n)]
    enc = base64.b64encode
    return dt, [enc(raw[i * step:(i + 1) * step]).decode("ascii") for i in range(n)]


def b64_rows(arr):
    """The {"dtype", "b64"} objects of every row of a 2-D array."""
    dt, rows = b64_text_rows(arr)
    return [{"dtype": dt, "b64": r} for r in rows]


def load_npy(data):
    """np.load of .npy bytes (the subset export)."""
    return np().load(io.BytesIO(data), allow_pickle=False)


def uids_to_hex(arr):
    """The 32-hex-digit uids of a DataComp subset array ([('f0','<u8'),('f1','<u8')])."""
    return ["%016x%016x" % (int(a), int(b)) for a, b in zip(arr["f0"], arr["f1"])]


def hex_to_uids(uids):
    """A sorted DataComp subset array from uid strings (1 to 32 hex digits, left-padded to
    32 as DataComp's resharder does): the array np.save would write for the same uids."""
    n = np()
    padded = sorted(u.rjust(32, "0").lower() for u in uids)
    return n.array([(int(u[:16], 16), int(u[16:], 16)) for u in padded],
                   dtype=[("f0", "<u8"), ("f1", "<u8")])


HITS_MEDIA_TYPE = "application/vnd.winnow.hits"


class Hits:
    """A binary search answer (application/vnd.winnow.hits, docs/api.md): for query i,
    ids[i] (a list of str, best first), scores[i, :len(ids[i])] (scores is a float32 array of
    shape (queries, limit), NaN past each query's results) and truncated[i] (more matched
    than were shown)."""

    def __init__(self, ids, scores, truncated):
        self.ids = ids
        self.scores = scores
        self.truncated = truncated

    def __len__(self):
        return len(self.ids)

    def __repr__(self):
        return "Hits(%d queries, limit %d)" % (len(self.ids), self.scores.shape[1])


def decode_hits(data):
    """A Hits from the bytes of a binary answer; ValueError when they are not one."""
    n = np()
    if len(data) < 16 or data[:4] != b"WNH1":
        raise ValueError("winnow: not a binary search answer (application/vnd.winnow.hits)")
    nq, limit, id_bytes = (int(v) for v in n.frombuffer(data, "<u4", 3, 4))
    at = 16
    need = at + 8 * nq + 8 * nq * limit + id_bytes
    if len(data) != need:
        raise ValueError("winnow: a binary answer of %d bytes, its header says %d"
                         % (len(data), need))
    counts = n.frombuffer(data, "<u4", nq, at).tolist()
    flags = n.frombuffer(data, "<u4", nq, at + 4 * nq)
    at += 8 * nq
    scores = n.frombuffer(data, "<f4", nq * limit, at).reshape(nq, limit).astype(n.float32)
    ends = n.frombuffer(data, "<u4", nq * limit, at + 4 * nq * limit).tolist()
    blob = data[at + 8 * nq * limit:]
    ids = []
    for i in range(nq):
        row = ends[i * limit:i * limit + counts[i]]
        start = ends[i * limit - 1] if i > 0 and limit > 0 else 0
        one = []
        for e in row:
            one.append(blob[start:e].decode("utf-8"))
            start = e
        ids.append(one)
    return Hits(ids, scores, [bool(f & 1) for f in flags.tolist()])


def concat_hits(parts):
    """One Hits of several answers' (the pieces of a batch split at the daemon's bound)."""
    if len(parts) == 1:
        return parts[0]
    n = np()
    ids, truncated = [], []
    for p in parts:
        ids += p.ids
        truncated += p.truncated
    return Hits(ids, n.concatenate([p.scores for p in parts]), truncated)
