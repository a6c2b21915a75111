# SPDX-License-Identifier: MIT
"""winnow._http: one keep-alive HTTP/1.1 connection to winnowd, reused for every request.

Owns: the http.client connection of one Client. A new TCP connection per request costs about
a millisecond against a local daemon (bench/pyclient.py), more than many requests take, so
the connection is kept open and reused; when the server has closed it (idle timeout, a
restart, a "Connection: close" answer) the next request opens a new one.

Threading: not thread-safe; one Transport (one Client) per thread. A streamed response
holds the connection until it is read to the end or closed.

Caveat: a request that fails on a *reused* connection before any answer byte arrived
(the server had closed it while idle) is sent once more on a new connection. That is the
stale-connection case, in which the server never saw the request; a request that fails on
a fresh connection is never repeated.
"""

import http.client
import json
import select
import socket
import urllib.parse

from .errors import WinnowError

# Errors that mean "this connection is dead", raised by http.client or the socket layer.
_DEAD = (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionResetError,
         ConnectionAbortedError, BrokenPipeError)


class Response:
    """An answer: status, headers (lower-case keys) and either the whole body (data) or, for
    a streamed request, the open http.client response (raw), to be read and then closed."""

    def __init__(self, status, headers, data=None, raw=None, transport=None):
        self.status = status
        self.headers = headers
        self.data = data
        self.raw = raw
        self._transport = transport

    def json(self):
        return json.loads(self.data) if self.data else None

    def close(self, complete=True):
        """End a streamed answer. complete=False (the caller stopped early) drops the
        connection, whose unread bytes would otherwise be taken for the next answer."""
        if self.raw is None:
            return
        raw, self.raw = self.raw, None
        if not complete and not raw.isclosed():
            self._transport.drop()
        else:
            raw.close()


class Transport:
    """The connection and the request loop of one Client."""

    def __init__(self, url, key=None, timeout=300.0):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("winnow: url must be http://host[:port][/prefix], not %r" % url)
        self.url = url
        self.scheme = u.scheme
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.prefix = u.path.rstrip("/")
        self.timeout = timeout
        self.headers = {"Accept": "application/json, application/problem+json;q=0.9, */*;q=0.5",
                        "User-Agent": "winnow-python"}
        if key:
            self.headers["Authorization"] = "Bearer " + key
        self.conn = None
        self.used = False         # the current connection has carried a request already
        self.connections = 0      # connections opened, for tests and the bench

    # ---- connection ----------------------------------------------------------------------
    def _open(self):
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        self.conn = cls(self.host, self.port, timeout=self.timeout)
        self.used = False
        self.connections += 1

    def drop(self):
        """Close the connection; the next request opens a new one."""
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None

    def _stale(self):
        """True when the idle connection is known dead: its socket is readable (EOF or bytes
        nobody asked for) while no request is outstanding."""
        sock = self.conn.sock if self.conn is not None else None
        if sock is None:
            return self.conn is None
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _unreachable(self, exc):
        return WinnowError(code="unreachable", title="winnowd unreachable",
                           detail="cannot connect to %s (%s); is winnowd running there? "
                                  "(set WINNOW_URL or pass url=)" % (self.url, exc))

    # ---- requests ------------------------------------------------------------------------
    def request(self, method, path, body=None, content_type=None, query=None, stream=False,
                headers=None):
        """Send one request; return a Response. A status >= 400 raises WinnowError with the
        problem's fields. stream=True leaves the body unread (Response.raw)."""
        target = self.prefix + path
        if query:
            q = [(k, v) for k, v in query.items() if v is not None]
            if q:
                target += "?" + urllib.parse.urlencode(q, safe=",")
        hdrs = dict(self.headers)
        if headers:
            hdrs.update(headers)
        if content_type is not None:
            hdrs["Content-Type"] = content_type
        if body is not None:
            hdrs["Content-Length"] = str(len(body))
        elif method in ("POST", "PUT", "PATCH"):
            hdrs["Content-Length"] = "0"
        for attempt in (0, 1):
            if self.conn is not None and self.used and self._stale():
                self.drop()
            if self.conn is None:
                self._open()
            reused = self.used
            self.used = True
            try:
                try:
                    self.conn.request(method, target, body=body, headers=hdrs)
                except (BrokenPipeError, ConnectionResetError):
                    # The daemon may have answered and closed before taking the whole body
                    # (413 for a Content-Length over --body-limit): read that answer if it
                    # is there; if not, getresponse() raises and the connection is dead.
                    pass
                raw = self.conn.getresponse()
            except ConnectionRefusedError as exc:
                self.drop()
                raise self._unreachable(exc) from None
            except socket.timeout as exc:
                self.drop()
                raise WinnowError(code="timeout", title="request timed out",
                                  detail="%s %s: no answer from %s within %ss (%s)"
                                         % (method, path, self.url, self.timeout, exc)) from None
            except _DEAD as exc:
                self.drop()
                if reused and attempt == 0:
                    continue
                raise WinnowError(code="unreachable", title="connection lost",
                                  detail="%s %s: %s closed the connection (%s)"
                                         % (method, path, self.url, exc)) from None
            except OSError as exc:
                self.drop()
                raise self._unreachable(exc) from None
            break
        rh = {k.lower(): v for k, v in raw.getheaders()}
        if raw.status >= 400 or not stream:
            try:
                data = raw.read()
            except (OSError, http.client.HTTPException) as exc:
                self.drop()
                raise cut_off(method, path, exc, raw.status) from None
            if raw.will_close:
                self.drop()
            if raw.status >= 400:
                raise _problem(raw.status, rh, data)
            return Response(raw.status, rh, data=data)
        return Response(raw.status, rh, raw=raw, transport=self)

    def close(self):
        self.drop()


def cut_off(method, path, exc, status=None):
    """The WinnowError for an answer whose body stopped arriving: "timeout" when the read
    timed out, else "unreachable" (the connection was lost)."""
    if isinstance(exc, socket.timeout):
        return WinnowError(status=status, code="timeout", title="request timed out",
                           detail="%s %s: the answer stopped arriving (%s)" % (method, path, exc))
    return WinnowError(status=status, code="unreachable", title="connection lost",
                       detail="%s %s: the answer was cut off (%s)" % (method, path, exc))


def _problem(status, headers, data):
    """A WinnowError from an error answer (problem+json, or whatever else came)."""
    rid = headers.get("x-request-id")
    try:
        p = json.loads(data) if data else None
    except ValueError:
        p = None
    if isinstance(p, dict):
        return WinnowError.from_problem(status, p, rid)
    text = data[:300].decode("utf-8", "replace") if data else ""
    return WinnowError(status=status, code="http_%d" % status, title="HTTP %d" % status,
                       detail=text or "HTTP %d without a problem body" % status, request_id=rid)
