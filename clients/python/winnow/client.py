# SPDX-License-Identifier: MIT
"""winnow.client: Client, the Python face of every winnowd route (docs/api.md, docs/python.md).

Owns: one Transport (one keep-alive connection). Methods map one to one onto routes, take
and return plain dicts as the API defines them, and raise WinnowError for every error answer.
Methods that start a job return its id (from the Location header) and take wait=True.

Threading: a Client is not thread-safe (one connection); use one per thread.
Caveats: numpy is imported only by the methods that take or return arrays.
"""

import base64
import http.client
import json
import os
import time
import urllib.parse

from . import _np
from ._http import Transport, cut_off
from .errors import WinnowError

DEFAULT_URL = "http://127.0.0.1:8080"

# Record fields of the ingest format; ingest_arrays moves any other metadata key into "meta".
_RECORD_FIELDS = ("kind", "text", "image", "meta", "signals")
# Search params the raw-rows form carries in its query string (with space, limit,
# score_threshold, metric, subset and plain "with" names).
_RAW_PARAMS = ("ef_search", "nprobe", "exact")
_BATCH_MAX = 1024           # query rows per search request (the daemon's bound)
_TERMINAL = ("succeeded", "failed", "cancelled")


def _q(segment):
    """Percent-encode one path segment (ids may hold '/', '?', spaces...)."""
    return urllib.parse.quote(str(segment), safe="")


def _dumps(obj):
    # ensure_ascii (the default) is about 3 times faster than ensure_ascii=False on long
    # strings, and the daemon reads \u escapes back to the same text
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def _jsonable_embeddings(rec):
    """rec, with numpy vectors in "embeddings" replaced by {"dtype", "b64"} (a new dict only
    when something changed)."""
    emb = rec.get("embeddings") if isinstance(rec, dict) else None
    if not isinstance(emb, dict) or not any(_np.is_array(v) for v in emb.values()):
        return rec
    out = dict(rec)
    out["embeddings"] = {k: (_np.b64_vector(v) if _np.is_array(v) else v) for k, v in emb.items()}
    return out


def _job_of(view):
    """The job dict a resource view names as the one bringing it up to date."""
    if not isinstance(view, dict):
        return None
    for key in ("scoring", "build", "computing", "job", "training_job"):
        j = view.get(key)
        if isinstance(j, dict) and j.get("id") is not None:
            return j
    return None


def _npy_header(elt, rows, cols):
    """The .npy v1.0 preamble np.save writes for a C-order (rows, cols) <f2/<f4 array."""
    d = "{'descr': '<f%d', 'fortran_order': False, 'shape': (%d, %d), }" % (elt, rows, cols)
    total = (10 + len(d) + 1 + 63) // 64 * 64
    hlen = total - 10
    return (b"\x93NUMPY\x01\x00" + bytes((hlen & 0xFF, hlen >> 8)) + d.encode("ascii")
            + b" " * (hlen - len(d) - 1) + b"\n")


class _ArraySource:
    """The rows of one space for import_npy: a numpy array (converted to <f2 or <f4), or an
    .npy file read by slices without numpy (its header parsed here, as the daemon does)."""

    def __init__(self, arr):
        self.f = None
        if _np.is_array(arr):
            if arr.ndim != 2:
                raise ValueError("winnow: an array to import must be 2-D, got shape %r"
                                 % (arr.shape,))
            self.arr = _np.le_rows(arr)
            self.rows, self.cols = self.arr.shape
            self.elt = self.arr.dtype.itemsize
        else:
            self.arr = None
            self.f = open(arr, "rb")
            try:
                self._header(arr)
            except BaseException:
                self.f.close()
                raise
        self.row_bytes = self.cols * self.elt

    def _header(self, path):
        import ast
        pre = self.f.read(12)
        if len(pre) < 12 or pre[:6] != b"\x93NUMPY" or pre[6] not in (1, 2, 3):
            raise ValueError("winnow: %s is not an .npy file of version 1, 2 or 3" % path)
        if pre[6] == 1:
            hlen, start = int.from_bytes(pre[8:10], "little"), 10
        else:
            hlen, start = int.from_bytes(pre[8:12], "little"), 12
        self.f.seek(start)
        try:
            hdr = ast.literal_eval(self.f.read(hlen).decode("latin-1"))
        except (ValueError, SyntaxError):
            hdr = None
        if not isinstance(hdr, dict) or hdr.get("descr") not in ("<f2", "<f4") \
                or hdr.get("fortran_order") is not False or len(hdr.get("shape", ())) != 2:
            raise ValueError("winnow: %s must be a C-order 2-D <f2 or <f4 array, got %r"
                             % (path, hdr))
        self.rows, self.cols = hdr["shape"]
        self.elt = 2 if hdr["descr"] == "<f2" else 4
        self.start = start + hlen

    def rows_bytes(self, a, b):
        if self.arr is not None:
            return self.arr[a:b].tobytes()
        self.f.seek(self.start + a * self.row_bytes)
        data = self.f.read((b - a) * self.row_bytes)
        if len(data) != (b - a) * self.row_bytes:
            raise ValueError("winnow: %s is truncated" % self.f.name)
        return data

    def close(self):
        if self.f is not None:
            self.f.close()


class Export:
    """An iterator over a subset's NDJSON export, one dict per member. The summary line (and
    only it) is kept in .summary, not yielded; an error line raises WinnowError. Stopping
    early (close(), or leaving a `with` block) drops the connection."""

    def __init__(self, resp):
        self._resp = resp
        self.summary = None
        self._done = False

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        raw = self._resp.raw
        while True:
            try:
                line = raw.readline() if raw is not None else b""
            except (OSError, http.client.HTTPException) as exc:
                self._done = True
                self._resp.close(complete=False)
                raise cut_off("GET", "export", exc, 200) from None
            if not line:
                self._done = True
                self._resp.close(complete=True)
                raise StopIteration
            line = line.strip()
            if not line:
                continue
            obj = json.loads(line)
            if isinstance(obj, dict) and "id" not in obj:
                if set(obj) == {"summary"}:
                    self.summary = obj["summary"]
                    continue
                if set(obj) == {"error"}:
                    self._done = True
                    self._resp.close(complete=False)
                    err = obj["error"] if isinstance(obj["error"], dict) else {}
                    raise WinnowError.from_problem(err.get("status", 500), err)
            return obj

    def close(self):
        if not self._done:
            self._done = True
            self._resp.close(complete=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class Client:
    """A winnowd client over one keep-alive connection.

    url: the daemon's base URL (default $WINNOW_URL, else http://127.0.0.1:8080);
    key: an API key sent as "Authorization: Bearer" (default $WINNOW_KEY, else none);
    timeout: seconds a request may wait for each answer read (default 300).
    """

    def __init__(self, url=None, key=None, timeout=300.0):
        self.url = (url or os.environ.get("WINNOW_URL") or DEFAULT_URL).rstrip("/")
        key = key if key is not None else os.environ.get("WINNOW_KEY") or None
        self._t = Transport(self.url, key, timeout)

    def close(self):
        """Close the connection (a later request opens a new one)."""
        self._t.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return "winnow.Client(%r)" % self.url

    @property
    def connections_opened(self):
        """How many TCP connections this client has opened (1 while keep-alive holds)."""
        return self._t.connections

    # ---- plumbing ------------------------------------------------------------------------
    def _json(self, method, path, body=None, query=None):
        data = None if body is None else _dumps(body).encode("utf-8")
        r = self._t.request(method, path, data, "application/json" if data is not None else None,
                            query)
        return r.json()

    def _started(self, method, path, body=None, wait=False, timeout=None, progress=None,
                 query=None):
        """A request that may start a job: the id of the job that brings the resource up to
        date (the one the answer's Location names; for an unchanged definition, the job
        still running from before), or None when nothing is left to do."""
        data = None if body is None else _dumps(body).encode("utf-8")
        r = self._t.request(method, path, data, "application/json" if data is not None else None,
                            query)
        loc = r.headers.get("location", "")
        job = loc.rsplit("/", 1)[-1] if "/v1/jobs/" in loc else None
        if job is None:
            j = _job_of(r.json())
            if j is not None and j.get("state") not in _TERMINAL:
                job = str(j["id"])
        if job is not None and wait:
            self.wait(job, timeout=timeout, progress=progress)
        return job

    @staticmethod
    def _ds(dataset):
        return "/v1/datasets/" + _q(dataset)

    # ---- operations ----------------------------------------------------------------------
    def livez(self):
        """True when the daemon answers GET /livez with 200."""
        return self._t.request("GET", "/livez").status == 200

    def readyz(self):
        """True when GET /readyz answers 200 (storage open, indexes loaded); False on 503."""
        try:
            return self._t.request("GET", "/readyz").status == 200
        except WinnowError as e:
            if e.status == 503:
                return False
            raise

    def metrics(self):
        """The Prometheus text of GET /metrics."""
        return self._t.request("GET", "/metrics").data.decode("utf-8")

    def openapi(self):
        """The OpenAPI document the daemon serves (a dict)."""
        return self._json("GET", "/v1/openapi.json")

    def filter_types(self):
        """The filter types (GET /v1/filter-types): a list of dicts."""
        return self._json("GET", "/v1/filter-types")["filter_types"]

    # ---- datasets ------------------------------------------------------------------------
    def create_dataset(self, name, spaces=None, kinds=None):
        """PUT a dataset. spaces: {"image": {"dim": 768, "dtype": "f16"}, ...} (an int is
        taken as {"dim": n}); kinds: e.g. ["image-text", "text"]. Idempotent for the same
        schema; another schema raises WinnowError 409 dataset_exists. Returns the dataset."""
        body = {"spaces": {k: ({"dim": v} if isinstance(v, int) else v)
                           for k, v in (spaces or {}).items()}}
        if kinds is not None:
            body["kinds"] = list(kinds)
        return self._json("PUT", self._ds(name), body)

    def get_dataset(self, name):
        """The dataset object (schema, live records, rows, created_at)."""
        return self._json("GET", self._ds(name))

    def list_datasets(self, page_size=None):
        """Every dataset, sorted by name. A daemon that pages the list answers page_size
        (or its default) at a time with a next_page_token; the pages are followed."""
        out, query = [], {"page_size": page_size}
        while True:
            page = self._json("GET", "/v1/datasets", query=query)
            out.extend(page.get("datasets", []))
            token = page.get("next_page_token")
            if not token:
                return out
            query = {"page_size": page_size, "page_token": token}

    def drop_dataset(self, name):
        """DELETE a dataset with all its records."""
        self._t.request("DELETE", self._ds(name))

    # ---- records -------------------------------------------------------------------------
    def ingest(self, dataset, records, batch_bytes=8 << 20, batch_count=10000, progress=None):
        """Ingest records (an iterable of dicts, or of NDJSON lines as str/bytes) in NDJSON
        batches of at most batch_count records and about batch_bytes bytes (a record larger
        than that goes alone). Numpy vectors in a record's "embeddings" are sent as base64.

        Returns {"accepted", "rejected", "errors", "batches"}, the per-batch answers merged:
        each error's "line" is the record's 1-based position in the whole iterable.
        progress(result_so_far) is called after each batch. Raises WinnowError 422
        no_records_accepted (with every error) when records were sent and none was accepted;
        any other error answer stops the ingest and raises (earlier batches stay committed:
        ingest is an upsert, so sending everything again is safe)."""
        total = {"accepted": 0, "rejected": 0, "errors": [], "batches": 0}
        lines, positions, size = [], [], 0
        path = self._ds(dataset) + "/records"
        last = None

        def flush():
            nonlocal last
            body = b"\n".join(lines) + b"\n"
            try:
                res = self._t.request("POST", path, body, "application/x-ndjson").json()
            except WinnowError as e:
                if e.code != "no_records_accepted":
                    raise
                last = e
                res = {"accepted": 0, "rejected": e.problem.get("rejected", len(lines)),
                       "errors": e.errors}
            total["accepted"] += res.get("accepted", 0)
            total["rejected"] += res.get("rejected", 0)
            for err in res.get("errors", []):
                err = dict(err)
                ln = err.get("line")
                if isinstance(ln, int) and 1 <= ln <= len(positions):
                    err["line"] = positions[ln - 1]
                total["errors"].append(err)
            total["batches"] += 1
            if progress is not None:
                progress(dict(total, errors=list(total["errors"])))

        for pos, rec in enumerate(records, 1):
            if isinstance(rec, str):
                rec = rec.encode("utf-8")
            if isinstance(rec, bytes):
                line = rec.strip(b"\r\n")
                if not line.strip():
                    continue    # the daemon skips blank lines; positions keep counting them
            else:
                line = _dumps(_jsonable_embeddings(rec)).encode("utf-8")
            if lines and (len(lines) >= batch_count or size + len(line) + 1 > batch_bytes):
                flush()
                lines, positions, size = [], [], 0
            lines.append(line)
            positions.append(pos)
            size += len(line) + 1
        if lines:
            flush()
        if total["accepted"] == 0 and total["rejected"] > 0 and last is not None:
            raise WinnowError(status=422, code="no_records_accepted", title=last.title,
                              detail="none of the %d records was accepted; see errors"
                                     % total["rejected"],
                              errors=total["errors"], type=last.type,
                              request_id=last.request_id, problem=dict(last.problem, **total))
        return total

    def ingest_arrays(self, dataset, ids, vectors, meta=None, batch=2048, progress=None):
        """Ingest records from numpy arrays: ids (a sequence of N str), vectors ({space: array
        of shape (N, dim)}, float16 sent as f16, anything else as f32, base64 little-endian)
        and meta (None, or N dicts: "kind", "text", "image", "meta", "signals" are taken as
        the record's fields, any other key goes into the record's "meta"). Every record gets a
        vector in every space given: records that lack one go in another call without that
        space. batch: records per request. Returns what ingest() returns."""
        n = len(ids)
        for space, arr in vectors.items():
            if not _np.is_array(arr) or arr.ndim != 2 or arr.shape[0] != n:
                raise ValueError("winnow: vectors[%r] must be a 2-D numpy array of %d rows"
                                 % (space, n))
        if meta is not None and len(meta) != n:
            raise ValueError("winnow: meta has %d entries for %d ids" % (len(meta), n))

        keys = {s: _dumps(s) for s in vectors}

        def gen():
            # Lines are written as text around the base64 (which needs no escaping), so
            # json.dumps never walks the long vector strings.
            for a in range(0, n, batch):
                b = min(n, a + batch)
                enc = {s: _np.b64_text_rows(arr[a:b]) for s, arr in vectors.items()}
                for i in range(a, b):
                    rec = {"id": str(ids[i])}
                    if meta is not None and meta[i]:
                        extra = {}
                        for k, v in meta[i].items():
                            if k in _RECORD_FIELDS:
                                rec[k] = v
                            elif k == "id":
                                if str(v) != rec["id"]:
                                    raise ValueError("winnow: meta[%d] has id %r for id %r"
                                                     % (i, v, rec["id"]))
                            else:
                                extra[k] = v
                        if extra:
                            rec["meta"] = dict(rec.get("meta") or {}, **extra)
                    emb = ",".join('%s:{"dtype":"%s","b64":"%s"}' % (keys[s], dt, rows[i - a])
                                   for s, (dt, rows) in enc.items())
                    yield ('%s,"embeddings":{%s}}' % (_dumps(rec)[:-1], emb)).encode("ascii")
        return self.ingest(dataset, gen(), batch_bytes=1 << 62, batch_count=batch,
                           progress=progress)

    def import_npy(self, dataset, metadata, spaces, batch=None, batch_bytes=32 << 20,
                   progress=None):
        """Bulk import (POST .../records:import): records from NDJSON metadata plus one
        embedding array per space, sent as multipart batches with the arrays' raw bytes (no
        base64). metadata: a path to an NDJSON file, or an iterable of dicts (or of NDJSON
        lines as str/bytes); record i (blank lines skipped) is row i of every array. spaces:
        {space: a 2-D numpy array (float16 sent as f16, other types as f32) or a path to an
        .npy file (<f2 or <f4, C order, read without numpy)}. batch: records per request
        (default: as many as fit in batch_bytes).

        Returns {"accepted", "rejected", "errors", "batches"} like ingest(): each error's
        "line" is the record's 1-based line in the file (a path) or position in the iterable.
        progress(result_so_far) is called after each batch. Raises ValueError, before
        anything is sent when it can tell (a path, a list), when the metadata and the arrays
        do not have one record count, and WinnowError as ingest() does."""
        srcs = {name: _ArraySource(arr) for name, arr in spaces.items()}
        if not srcs:
            raise ValueError("winnow: import_npy needs at least one array in spaces")
        rows = {s.rows for s in srcs.values()}
        if len(rows) != 1:
            raise ValueError("winnow: the arrays have different row counts: %s"
                             % {k: s.rows for k, s in srcs.items()})
        rows = rows.pop()
        row_bytes = sum(s.row_bytes for s in srcs.values())
        own = isinstance(metadata, (str, bytes, os.PathLike))
        if own:
            with open(metadata, "rb") as f:
                n = sum(1 for ln in f if ln.strip())
            if n != rows:
                raise ValueError("winnow: %s has %d records, the arrays have %d rows"
                                 % (metadata, n, rows))
        elif hasattr(metadata, "__len__") and len(metadata) != rows:
            raise ValueError("winnow: metadata has %d records, the arrays have %d rows"
                             % (len(metadata), rows))
        total = {"accepted": 0, "rejected": 0, "errors": [], "batches": 0}
        path = self._ds(dataset) + "/records:import"
        boundary = "winnow-" + os.urandom(16).hex()
        ctype = "multipart/form-data; boundary=" + boundary
        last = None
        lines, positions = [], []
        state = {"first": 0, "size": 0}

        def flush():
            nonlocal last
            a, b = state["first"], state["first"] + len(lines)
            parts = [b"--%s\r\nContent-Disposition: form-data; name=\"metadata\"\r\n"
                     b"Content-Type: application/x-ndjson\r\n\r\n" % boundary.encode(),
                     b"\n".join(lines), b"\n\r\n"]
            for name, src in srcs.items():
                parts.append(b"--%s\r\nContent-Disposition: form-data; name=\"space.%s\"\r\n"
                             b"Content-Type: application/octet-stream\r\n\r\n"
                             % (boundary.encode(), name.encode("utf-8")))
                parts.append(_npy_header(src.elt, b - a, src.cols))
                parts.append(src.rows_bytes(a, b))
                parts.append(b"\r\n")
            parts.append(b"--%s--\r\n" % boundary.encode())
            try:
                res = self._t.request("POST", path, b"".join(parts), ctype).json()
            except WinnowError as e:
                if e.code != "no_records_accepted":
                    raise
                last = e
                res = {"accepted": 0, "rejected": e.problem.get("rejected", len(lines)),
                       "errors": e.errors}
            total["accepted"] += res.get("accepted", 0)
            total["rejected"] += res.get("rejected", 0)
            for err in res.get("errors", []):
                err = dict(err)
                ln = err.get("line")
                if isinstance(ln, int) and 1 <= ln <= len(positions):
                    err["line"] = positions[ln - 1]
                total["errors"].append(err)
            total["batches"] += 1
            if progress is not None:
                progress(dict(total, errors=list(total["errors"])))

        f = open(metadata, "rb") if own else None
        try:
            rec_no = 0
            for pos, rec in enumerate(f if own else metadata, 1):
                if isinstance(rec, str):
                    rec = rec.encode("utf-8")
                if isinstance(rec, bytes):
                    line = rec.strip(b"\r\n")
                    if not line.strip():
                        continue
                else:
                    line = _dumps(_jsonable_embeddings(rec)).encode("utf-8")
                if rec_no >= rows:
                    raise ValueError("winnow: metadata record %d (line %d) has no row: the "
                                     "arrays have %d rows" % (rec_no + 1, pos, rows))
                if lines and ((batch is not None and len(lines) >= batch) or
                              state["size"] + len(line) + 1 + row_bytes + 1024 > batch_bytes):
                    flush()
                    lines, positions = [], []
                    state["first"], state["size"] = rec_no, 0
                lines.append(line)
                positions.append(pos)
                state["size"] += len(line) + 1 + row_bytes
                rec_no += 1
            if lines:
                flush()
            if rec_no != rows:
                raise ValueError("winnow: metadata has %d records, the arrays have %d rows"
                                 % (rec_no, rows))
        finally:
            if f is not None:
                f.close()
            for src in srcs.values():
                src.close()
        if total["accepted"] == 0 and total["rejected"] > 0 and last is not None:
            raise WinnowError(status=422, code="no_records_accepted", title=last.title,
                              detail="none of the %d records was accepted; see errors"
                                     % total["rejected"],
                              errors=total["errors"], type=last.type,
                              request_id=last.request_id, problem=dict(last.problem, **total))
        return total

    def get_record(self, dataset, record_id, embeddings=True):
        """One record as stored (with "row"; embeddings as number lists unless
        embeddings=False)."""
        return self._json("GET", "%s/records/%s" % (self._ds(dataset), _q(record_id)),
                          query=None if embeddings else {"embeddings": "false"})

    def delete_record(self, dataset, record_id):
        self._t.request("DELETE", "%s/records/%s" % (self._ds(dataset), _q(record_id)))

    # ---- signals -------------------------------------------------------------------------
    def patch_signals(self, dataset, record_id, signals):
        """Merge-patch one record's signals (null removes a key); returns the record."""
        body = _dumps({"signals": signals}).encode("utf-8")
        return self._t.request("PATCH", "%s/records/%s" % (self._ds(dataset), _q(record_id)),
                               body, "application/merge-patch+json").json()

    def patch_signals_bulk(self, dataset, patches):
        """Patch many records' signals in one all-or-nothing request. patches: {id: signals}
        or an iterable of {"id", "signals"}. Returns {"patched": n}; one bad line raises
        WinnowError 422 patch_rejected and changes nothing."""
        if isinstance(patches, dict):
            patches = ({"id": k, "signals": v} for k, v in patches.items())
        body = b"\n".join(_dumps(p).encode("utf-8") for p in patches) + b"\n"
        return self._t.request("POST", self._ds(dataset) + "/records:signals", body,
                               "application/x-ndjson").json()

    # ---- filters -------------------------------------------------------------------------
    def put_filter(self, dataset, name, type, params=None, wait=False, timeout=None,  # noqa: A002
                   progress=None):
        """Create or change a filter instance; returns the scoring job's id (None when the
        same definition is already scored). wait=True waits for it (see wait())."""
        return self._started("PUT", "%s/filters/%s" % (self._ds(dataset), _q(name)),
                             {"type": type, "params": params or {}}, wait, timeout, progress)

    def get_filter(self, dataset, name):
        return self._json("GET", "%s/filters/%s" % (self._ds(dataset), _q(name)))

    def list_filters(self, dataset):
        return self._json("GET", self._ds(dataset) + "/filters")["filters"]

    def delete_filter(self, dataset, name):
        self._t.request("DELETE", "%s/filters/%s" % (self._ds(dataset), _q(name)))

    def score_filter(self, dataset, name, wait=False, timeout=None, progress=None):
        """Score every record again (after fitting again); returns the job id."""
        return self._started("POST", "%s/filters/%s:score" % (self._ds(dataset), _q(name)),
                             None, wait, timeout, progress)

    def filter_stats(self, dataset, name, bins=None, threshold=None):
        """Count, quantiles, histogram (bins), and with threshold the count at or above it."""
        return self._json("GET", "%s/filters/%s/stats" % (self._ds(dataset), _q(name)),
                          query={"bins": bins, "threshold": threshold})

    def filter_record(self, dataset, name, record_id):
        """One record's score, status and explanation under one filter."""
        return self._json("GET", "%s/filters/%s/records/%s"
                          % (self._ds(dataset), _q(name), _q(record_id)))

    def sweep(self, dataset, name, eps):
        """How many records each eps keeps (a fitted semdedup filter)."""
        return self._json("POST", "%s/filters/%s:sweep" % (self._ds(dataset), _q(name)),
                          {"eps": list(eps)})

    # ---- subsets -------------------------------------------------------------------------
    def put_subset(self, dataset, name, steps, wait=False, timeout=None, progress=None):
        """Materialise a subset from its steps (docs/api.md, Subsets); returns the job id."""
        return self._started("PUT", "%s/subsets/%s" % (self._ds(dataset), _q(name)),
                             {"steps": list(steps)}, wait, timeout, progress)

    def get_subset(self, dataset, name):
        return self._json("GET", "%s/subsets/%s" % (self._ds(dataset), _q(name)))

    def list_subsets(self, dataset):
        return self._json("GET", self._ds(dataset) + "/subsets")["subsets"]

    def delete_subset(self, dataset, name):
        self._t.request("DELETE", "%s/subsets/%s" % (self._ds(dataset), _q(name)))

    def decisions(self, dataset, record_id, subset):
        """What each step of a subset did to one record."""
        return self._json("GET", "%s/records/%s/decisions" % (self._ds(dataset), _q(record_id)),
                          query={"subset": subset})

    def _export(self, dataset, subset, fmt, slices, slice_id, fields=None):
        query = {"format": fmt, "slices": slices, "slice_id": slice_id,
                 "fields": ",".join(fields) if fields else None}
        if fmt == "ndjson":  # the summary line is asked for; Export keeps it apart
            query["summary"] = "true"
        return self._t.request("GET", "%s/subsets/%s:export" % (self._ds(dataset), _q(subset)),
                               query=query, stream=True)

    def export_npy(self, dataset, subset, path=None, slices=None, slice_id=None):
        """The subset's DataComp uid file (.npy of dtype [('f0','<u8'),('f1','<u8')], sorted).
        With path, the bytes are streamed into that file (no numpy needed) and the path is
        returned; without, the array (numpy). Members whose id is not a uid: WinnowError 422
        not_a_uid."""
        resp = self._export(dataset, subset, "npy", slices, slice_id)
        complete = False
        try:
            if path is not None:
                with open(path, "wb") as f:
                    while True:
                        chunk = resp.raw.read(1 << 20)
                        if not chunk:
                            break
                        f.write(chunk)
                complete = True
                return path
            data = resp.raw.read()
            complete = True
        finally:
            resp.close(complete)
        return _np.load_npy(data)

    def export_ids(self, dataset, subset, slices=None, slice_id=None):
        """The members' ids, in row order (a list of str)."""
        resp = self._export(dataset, subset, "ids", slices, slice_id)
        try:
            data = resp.raw.read()
        except BaseException:
            resp.close(False)
            raise
        resp.close(True)
        return [l for l in data.decode("utf-8").split("\n") if l]

    def export(self, dataset, subset, fields=None, slices=None, slice_id=None):
        """The members as dicts, streamed (an Export iterator: iterate it, or use it in a
        `with` block when you may stop early). fields: e.g. ["text", "meta", "scores"]."""
        return Export(self._export(dataset, subset, "ndjson", slices, slice_id, fields))

    # ---- indexes -------------------------------------------------------------------------
    def put_index(self, dataset, space, factory="Flat", metric="cosine", wait=False,
                  timeout=None, progress=None, ef_construction=None):
        """Define (and build, as a job) the index of one space; returns the build job's id
        (None when the same definition is already built). ef_construction: HNSW factories
        only (the daemon's default is 40, FAISS's)."""
        body = {"factory": factory, "metric": metric}
        if ef_construction is not None:
            body["ef_construction"] = ef_construction
        return self._started("PUT", "%s/indexes/%s" % (self._ds(dataset), _q(space)),
                             body, wait, timeout, progress)

    def get_index(self, dataset, space):
        return self._json("GET", "%s/indexes/%s" % (self._ds(dataset), _q(space)))

    def list_indexes(self, dataset):
        return self._json("GET", self._ds(dataset) + "/indexes")["indexes"]

    def delete_index(self, dataset, space):
        self._t.request("DELETE", "%s/indexes/%s" % (self._ds(dataset), _q(space)))

    # ---- search --------------------------------------------------------------------------
    @staticmethod
    def _search_body(space, limit, score_threshold, metric, with_, params, subset, rescore,
                     relevance, hubness, query_space=None, page_token=None):
        body = {}
        if isinstance(with_, str):
            with_ = [with_]
        for k, v in (("space", space), ("limit", limit), ("score_threshold", score_threshold),
                     ("metric", metric), ("with", with_), ("params", params),
                     ("subset", subset), ("rescore", rescore), ("relevance", relevance),
                     ("hubness", hubness), ("query_space", query_space),
                     ("page_token", page_token)):
            if v is not None:
                body[k] = v
        return body

    @staticmethod
    def _vector_json(v):
        if _np.is_array(v):
            return _np.b64_vector(v.reshape(-1))
        return [float(x) for x in v]

    def search(self, dataset, vector=None, record_id=None, space=None, limit=None,
               score_threshold=None, metric=None, with_=None, params=None, subset=None,
               rescore=None, relevance=None, hubness=None, query_space=None, page_token=None,
               count=False):
        """One query: a vector (list of floats or a 1-D numpy array, sent as base64) or a
        record_id (its vector in query_space, default space). with_ is the API's "with"
        (["text", "meta", {"scores": ["clip"]}]). Returns the answer: {"results", "stats",
        "page_token"} ({"count", "stats"} with count=True, which is search:count)."""
        body = self._search_body(space, limit, score_threshold, metric, with_, params, subset,
                                 rescore, relevance, hubness, query_space, page_token)
        if (vector is None) == (record_id is None):
            raise ValueError("winnow: give exactly one of vector and record_id")
        if vector is not None:
            body["vector"] = self._vector_json(vector)
        else:
            body["record_id"] = record_id
        return self._json("POST", self._ds(dataset) + ("/search:count" if count else "/search"),
                          body)

    def search_batch(self, dataset, vectors, space=None, limit=None, score_threshold=None,
                     metric=None, with_=None, params=None, subset=None, rescore=None,
                     relevance=None, hubness=None, count=False):
        """Many queries: vectors is a 2-D numpy array (float16 rows are sent as f16, anything
        else as f32) or a list of lists. Returns one answer per row, in order. Batches over
        1,024 rows are split. A numpy array whose options all fit in a query string (space,
        limit, score_threshold, metric, subset, with_ of plain field names, params ef_search /
        nprobe / exact) takes the fast path: the rows as application/octet-stream."""
        n = len(vectors)
        if n == 0:
            return []
        if isinstance(with_, str):
            with_ = [with_]
        raw = (_np.is_array(vectors) and vectors.ndim == 2 and rescore is None and
               relevance is None and hubness is None and
               all(isinstance(w, str) for w in (with_ or ())) and
               all(k in _RAW_PARAMS for k in (params or {})))
        path = self._ds(dataset) + ("/search:count" if count else "/search")
        out = []
        for a in range(0, n, _BATCH_MAX):
            chunk = vectors[a:a + _BATCH_MAX]
            if raw:
                res = self._raw_rows(path, chunk, space, limit, score_threshold, metric,
                                     subset, with_, params).json()
            else:
                body = self._search_body(space, limit, score_threshold, metric, with_, params,
                                         subset, rescore, relevance, hubness)
                if _np.is_array(chunk):
                    body["vectors"] = _np.b64_rows(chunk)
                else:
                    body["vectors"] = [self._vector_json(v) for v in chunk]
                res = self._json("POST", path, body)
            out.extend(res["queries"])
        return out

    def search_hits(self, dataset, vectors, space=None, limit=None, score_threshold=None,
                    metric=None, subset=None, params=None):
        """Many queries, answered in the binary format (application/vnd.winnow.hits): the
        fastest way to search from Python (docs/python.md). vectors is a 2-D numpy array
        (float16 rows are sent as f16, anything else as f32). Returns a Hits: .ids (one list
        of str per query, best first), .scores (float32 array of shape (queries, limit), NaN
        past each query's results) and .truncated. Results carry ids and scores only, and no
        page token (search() continues a query); from an exact index (Flat, HNSW, IVF-Flat
        without dead vectors) the scores are the index's, within float rounding of the JSON
        answer's exact ones."""
        n = _np.np()
        vectors = n.asarray(vectors)
        if vectors.ndim != 2:
            raise ValueError("winnow: search_hits takes a 2-D array of query rows")
        if len(vectors) == 0:
            return _np.Hits([], n.zeros((0, limit or 10), n.float32), [])
        if any(k not in _RAW_PARAMS for k in (params or {})):
            raise ValueError("winnow: search_hits takes params %s" % ", ".join(_RAW_PARAMS))
        path = self._ds(dataset) + "/search"
        parts = []
        for a in range(0, len(vectors), _BATCH_MAX):
            res = self._raw_rows(path, vectors[a:a + _BATCH_MAX], space, limit,
                                 score_threshold, metric, subset, None, params,
                                 accept=_np.HITS_MEDIA_TYPE)
            parts.append(_np.decode_hits(res.data))
        return _np.concat_hits(parts)

    def _raw_rows(self, path, chunk, space, limit, score_threshold, metric, subset, with_,
                  params, accept=None):
        """POST the rows of chunk (a 2-D array: f16 as f16, else f32) as
        application/octet-stream, the other options in the query string; the Response."""
        dt = _np.wire_dtype(chunk)
        q = {"space": space, "limit": limit, "score_threshold": score_threshold,
             "metric": metric, "subset": subset, "with": ",".join(with_) if with_ else None,
             "dtype": "f16" if dt == "f16" else None}
        for k, v in (params or {}).items():
            q[k] = ("true" if v else "false") if isinstance(v, bool) else v
        return self._t.request("POST", path, _np.le_rows(chunk, dt).tobytes(),
                               "application/octet-stream", q,
                               headers={"Accept": accept} if accept else None)

    def search_all(self, dataset, vector, score_threshold, space=None, limit=1000, **opts):
        """Every record at or above score_threshold for one query (a vector or 1-D array), the
        page tokens followed: a list of results, best first. A 2-D array gives one such list
        per row (the first pages in raw-rows batches, then each query continued alone).
        opts: metric, with_, params, subset, relevance."""
        if _np.is_array(vector) and vector.ndim == 2:
            firsts = self.search_batch(dataset, vector, space=space, limit=limit,
                                       score_threshold=score_threshold, **opts)
            out = []
            for row, first in zip(vector, firsts):
                out.append(self._follow(dataset, row, first, space, limit, score_threshold,
                                        opts))
            return out
        first = self.search(dataset, vector, space=space, limit=limit,
                            score_threshold=score_threshold, **opts)
        return self._follow(dataset, vector, first, space, limit, score_threshold, opts)

    def _follow(self, dataset, vector, page, space, limit, score_threshold, opts):
        results = list(page["results"])
        while page.get("page_token"):
            page = self.search(dataset, vector, space=space, limit=limit,
                               score_threshold=score_threshold, page_token=page["page_token"],
                               **opts)
            results.extend(page["results"])
        return results

    def count(self, dataset, vector=None, score_threshold=None, **opts):
        """search:count for one query (vector or record_id=...): how many records score at or
        above score_threshold. Returns the number."""
        return self.search(dataset, vector, score_threshold=score_threshold, count=True,
                           **opts)["count"]

    # ---- adapters ------------------------------------------------------------------------
    def put_adapter(self, dataset, name, definition=None, **fields):
        """Define a Cosine Adapter (definition dict and/or keyword fields: space, family,
        hidden, target, ...). Returns the adapter."""
        body = dict(definition or {}, **fields)
        return self._json("PUT", "%s/adapters/%s" % (self._ds(dataset), _q(name)), body)

    def get_adapter(self, dataset, name):
        return self._json("GET", "%s/adapters/%s" % (self._ds(dataset), _q(name)))

    def list_adapters(self, dataset):
        return self._json("GET", self._ds(dataset) + "/adapters")["adapters"]

    def delete_adapter(self, dataset, name):
        self._t.request("DELETE", "%s/adapters/%s" % (self._ds(dataset), _q(name)))

    def add_pairs(self, dataset, name, pairs):
        """Labelled pairs ({"query": vector or {"record_id", "space"}, "id", "label"}; a numpy
        query is sent as a list) as NDJSON. Returns {"accepted", "rejected", "errors",
        "pairs", "queries"}."""
        def line(p):
            if _np.is_array(p.get("query")):
                p = dict(p, query=[float(x) for x in p["query"]])
            return _dumps(p).encode("utf-8")
        body = b"\n".join(line(p) for p in pairs) + b"\n"
        return self._t.request("POST", "%s/adapters/%s/pairs" % (self._ds(dataset), _q(name)),
                               body, "application/x-ndjson").json()

    def train_adapter(self, dataset, name, wait=False, timeout=None, progress=None):
        """Train the adapter (a job); returns the job id."""
        return self._started("POST", "%s/adapters/%s:train" % (self._ds(dataset), _q(name)),
                             None, wait, timeout, progress)

    # ---- hubness normalizers -------------------------------------------------------------
    def put_normalizer(self, dataset, name, definition=None, wait=False, timeout=None,
                       progress=None, **fields):
        """Define a hubness normalizer (space, query_bank, gallery_bank, beta1, beta2, k...;
        a bank's "vectors" may be a 2-D numpy array). Returns the statistics job's id (None
        when unchanged and computed)."""
        body = dict(definition or {}, **fields)
        for bank in ("query_bank", "gallery_bank"):
            b = body.get(bank)
            if isinstance(b, dict) and _np.is_array(b.get("vectors")):
                body[bank] = dict(b, vectors=b["vectors"].astype("float64").tolist())
        return self._started("PUT", "%s/hubness/%s" % (self._ds(dataset), _q(name)), body,
                             wait, timeout, progress)

    def get_normalizer(self, dataset, name):
        return self._json("GET", "%s/hubness/%s" % (self._ds(dataset), _q(name)))

    def list_normalizers(self, dataset):
        return self._json("GET", self._ds(dataset) + "/hubness")["normalizers"]

    def delete_normalizer(self, dataset, name):
        self._t.request("DELETE", "%s/hubness/%s" % (self._ds(dataset), _q(name)))

    def hubness_report(self, dataset, name, queries, k=None, candidates=None, method=None,
                       top=None):
        """N_k skewness before and after the normalizer over a query bank (a bank dict)."""
        body = {"queries": queries}
        for key, v in (("k", k), ("candidates", candidates), ("method", method), ("top", top)):
            if v is not None:
                body[key] = v
        return self._json("POST", "%s/hubness/%s:report" % (self._ds(dataset), _q(name)), body)

    # ---- jobs ----------------------------------------------------------------------------
    def job(self, job_id):
        """One job: state, processed, total, rate_per_s, eta_s, error..."""
        return self._json("GET", "/v1/jobs/" + _q(job_id))

    def jobs(self, dataset=None, limit=None):
        """Jobs, newest first (of one dataset when given)."""
        path = (self._ds(dataset) + "/jobs") if dataset is not None else "/v1/jobs"
        return self._json("GET", path, query={"limit": limit})["jobs"]

    def cancel_job(self, job_id):
        """Cancel a job (a finished one: WinnowError 409 job_finished); returns the job."""
        return self._json("DELETE", "/v1/jobs/" + _q(job_id))

    def wait(self, job_id, timeout=None, progress=None, interval=0.05, max_interval=1.0):
        """Poll a job until it ends; progress(job) is called with the job dict after every
        poll. Returns the final job dict when it succeeded. Raises WinnowError: the job's own
        error code when it failed, "job_cancelled" when cancelled, "wait_timeout" after
        timeout seconds (the job keeps running)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            j = self.job(job_id)
            if progress is not None:
                progress(j)
            state = j.get("state")
            if state == "succeeded":
                return j
            if state in ("failed", "cancelled"):
                err = j.get("error") or {}
                code = err.get("code") or ("job_cancelled" if state == "cancelled"
                                           else "job_failed")
                raise WinnowError(code=code, title="job %s %s" % (job_id, state),
                                  detail="job %s (%s of %s) %s: %s"
                                         % (job_id, j.get("kind"), j.get("target"), state,
                                            err.get("detail") or state),
                                  job=j)
            if deadline is not None and time.monotonic() >= deadline:
                raise WinnowError(code="wait_timeout", title="job still running",
                                  detail="job %s is still %s after %ss" % (job_id, state, timeout),
                                  job=j)
            pause = interval
            if deadline is not None:
                pause = max(0.0, min(pause, deadline - time.monotonic()))
            time.sleep(pause)
            interval = min(max_interval, interval * 1.5)


def b64(data):
    """Base64 text of bytes (for callers building records by hand)."""
    return base64.b64encode(data).decode("ascii")
