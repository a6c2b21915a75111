# SPDX-License-Identifier: MIT
"""winnow.errors: WinnowError, the one exception the client raises.

Every failure a caller can act on arrives as a WinnowError: an RFC 9457 problem from winnowd
(its fields copied onto the exception), a server that cannot be reached (code "unreachable"),
a request that timed out ("timeout"), a job that failed or was cancelled while waited for
(the job's own error code, or "job_cancelled"), and a wait that ran out of time
("wait_timeout"). Wrong argument types are still TypeError/ValueError: they are bugs in the
caller, not conditions to handle.
"""

__all__ = ["WinnowError"]


class WinnowError(Exception):
    """An error answer of winnowd, or a condition the client reports the same way.

    Attributes (None when the answer did not carry them):
      status   HTTP status (int); None when no answer came (unreachable, timeout)
      code     stable machine string, e.g. "dimension_mismatch", "unreachable"
      title    short human summary
      detail   the human explanation
      errors   list of per-line or per-field problems (dicts with line/id/code/detail)
      type     the problem type URI ("urn:winnow:problem:<code>")
      request_id  the daemon's X-Request-Id, to find the request in its log
      problem  the whole problem object as received (a dict), extra fields included
      job      the job dict, for errors raised by Client.wait()
    """

    def __init__(self, status=None, code=None, title=None, detail=None, errors=None,
                 type=None, request_id=None, problem=None, job=None):  # noqa: A002
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.errors = errors if errors is not None else []
        self.type = type
        self.request_id = request_id
        self.problem = problem if problem is not None else {}
        self.job = job
        super().__init__(self._text())

    @classmethod
    def from_problem(cls, status, problem, request_id=None):
        """A WinnowError from a parsed problem+json body (a dict) and the HTTP status."""
        if not isinstance(problem, dict):
            problem = {}
        errs = problem.get("errors")
        return cls(status=problem.get("status", status) if isinstance(problem.get("status"), int)
                   else status,
                   code=problem.get("code"), title=problem.get("title"),
                   detail=problem.get("detail"),
                   errors=errs if isinstance(errs, list) else [],
                   type=problem.get("type"),
                   request_id=problem.get("request_id", request_id), problem=problem)

    def _text(self):
        head = []
        if self.status is not None:
            head.append(str(self.status))
        if self.code:
            head.append(self.code)
        text = " ".join(head) or "winnow error"
        if self.detail:
            text += ": " + self.detail
        elif self.title:
            text += ": " + self.title
        if self.errors:
            shown = []
            for e in self.errors[:3]:
                if isinstance(e, dict):
                    where = []
                    if e.get("line") is not None:
                        where.append("line %s" % e["line"])
                    if e.get("id") is not None:
                        where.append("id %r" % e["id"])
                    if e.get("field") is not None:
                        where.append("field %s" % e["field"])
                    msg = e.get("code") or ""
                    if e.get("detail"):
                        msg += (": " if msg else "") + e["detail"]
                    shown.append(("%s: %s" % (" ".join(where), msg)) if where else msg)
                else:
                    shown.append(str(e))
            more = len(self.errors) - len(shown)
            text += " [" + "; ".join(shown) + ("; %d more" % more if more > 0 else "") + "]"
        return text

    def __str__(self):
        return self._text()
