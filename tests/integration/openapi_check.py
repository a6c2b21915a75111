# SPDX-License-Identifier: MIT
"""openapi_check: checks one HTTP response against api/openapi.json (standard library only).

wn.Daemon.request calls check() on every response the integration tests receive (unless env
WINNOW_OPENAPI_CHECK is "0"), so the document cannot drift from what the daemon answers:
the route and status must be documented, the Content-Type must be one of the documented
media types, and a JSON body must validate against the documented schema. A small
JSON-Schema subset is enough for this document: type (with type arrays for nullable),
enum, const, properties, required, additionalProperties, items, prefixItems, oneOf, anyOf,
allOf, not, $ref into the document, minimum/maximum (and exclusive), min/maxItems,
min/maxLength, pattern, minProperties, patternProperties. `format` and unknown keywords are ignored, as
JSON Schema says annotations are.

A mismatch raises OpenAPIMismatch (an AssertionError, so it fails the test) naming the
method, path, status and the JSON pointer of the failing part of the body.

If env WINNOW_OPENAPI_TALLY names a file, the number of responses checked by this process
is appended to it at exit (so a full run can report its total). If env WINNOW_OPENAPI_LOG
names a file, mismatches are appended there instead of raised. With WINNOW_OPENAPI_STRICT=1 an
object schema that lists properties allows no others (finds fields the document lacks)."""

import atexit
import json
import os
import re
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
DOC_PATH = os.path.join(HERE, "..", "..", "api", "openapi.json")

_doc = None
_routes = None
checked = 0


class OpenAPIMismatch(AssertionError):
    pass


def enabled():
    return os.environ.get("WINNOW_OPENAPI_CHECK", "1") != "0"


def _load():
    global _doc, _routes
    if _doc is None:
        with open(DOC_PATH, encoding="utf-8") as f:
            _doc = json.load(f)
        _routes = []
        for tmpl in _doc.get("paths", {}):
            # A parameter is one path segment, so it stops at '/'; the ':verb' suffixes
            # are literal text, and the most literal template wins (below).
            rx = "".join("[^/]+" if part.startswith("{") else re.escape(part)
                         for part in re.split(r"(\{[^}]+\})", tmpl))
            literal = len(re.sub(r"\{[^}]+\}", "", tmpl))
            _routes.append((re.compile("^" + rx + "$"), literal, tmpl))
    return _doc


def match_path(path):
    """The document's path template for a request path (query string ignored), or None."""
    _load()
    p = urlsplit(path).path
    best = None
    for rx, literal, tmpl in _routes:
        if rx.match(p) and (best is None or literal > best[0]):
            best = (literal, tmpl)
    return best[1] if best else None


def resolve(node):
    """Follows $ref (local '#/...' pointers) until a node without one."""
    doc = _load()
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise OpenAPIMismatch("unsupported $ref %r" % ref)
        node = doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        seen += 1
        if seen > 50:
            raise OpenAPIMismatch("$ref loop at %r" % ref)
    return node


def _ptr(base, key):
    return base + "/" + str(key).replace("~", "~0").replace("/", "~1")


def _type_ok(value, t):
    if t == "null":
        return value is None
    if t == "boolean":
        return isinstance(value, bool)
    if t == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or \
            (isinstance(value, float) and value.is_integer())
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "string":
        return isinstance(value, str)
    if t == "array":
        return isinstance(value, list)
    if t == "object":
        return isinstance(value, dict)
    return False


def errors(value, schema, ptr=""):
    """The list of (JSON pointer, message) where value fails schema; empty when it validates."""
    if schema is True or schema is None:
        return []
    if schema is False:
        return [(ptr or "/", "no value allowed here")]
    if "$ref" in schema:
        base = resolve({"$ref": schema["$ref"]})
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        errs = errors(value, base, ptr)
        return errs + (errors(value, rest, ptr) if rest else [])
    out = []
    where = ptr or "/"
    t = schema.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        if schema.get("nullable") is True:
            types = types + ["null"]
        if not any(_type_ok(value, x) for x in types):
            return [(where, "expected type %s, got %s" % (t, _short(value)))]
    if "enum" in schema and value not in schema["enum"]:
        out.append((where, "%s not in enum %s" % (_short(value), schema["enum"])))
    if "const" in schema and value != schema["const"]:
        out.append((where, "%s != const %r" % (_short(value), schema["const"])))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append((where, "%r < minimum %r" % (value, schema["minimum"])))
        if "maximum" in schema and value > schema["maximum"]:
            out.append((where, "%r > maximum %r" % (value, schema["maximum"])))
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            out.append((where, "%r <= exclusiveMinimum %r" % (value, schema["exclusiveMinimum"])))
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            out.append((where, "%r >= exclusiveMaximum %r" % (value, schema["exclusiveMaximum"])))
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.append((where, "string shorter than %d" % schema["minLength"]))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append((where, "string longer than %d" % schema["maxLength"]))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append((where, "%r does not match %r" % (value, schema["pattern"])))
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            out.append((where, "fewer than %d items" % schema["minItems"]))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append((where, "more than %d items" % schema["maxItems"]))
        prefix = schema.get("prefixItems", [])
        for i, v in enumerate(value):
            if i < len(prefix):
                out += errors(v, prefix[i], _ptr(ptr, i))
            elif "items" in schema:
                out += errors(v, schema["items"], _ptr(ptr, i))
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for k in schema.get("required", []):
            if k not in value:
                out.append((_ptr(ptr, k), "required property missing"))
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            out.append((where, "fewer than %d properties" % schema["minProperties"]))
        pats = [(re.compile(p), s) for p, s in schema.get("patternProperties", {}).items()]
        # Open by default, as JSON Schema says; WINNOW_OPENAPI_STRICT closes every object
        # schema that lists properties, to find the fields the daemon sends undocumented.
        extra = schema.get("additionalProperties", not (props and _strict()))
        for k, v in value.items():
            matched = False
            if k in props:
                out += errors(v, props[k], _ptr(ptr, k))
                matched = True
            for rx, s in pats:
                if rx.search(k):
                    out += errors(v, s, _ptr(ptr, k))
                    matched = True
            if not matched:
                if extra is False:
                    out.append((_ptr(ptr, k), "property not allowed (additionalProperties: false)"))
                elif isinstance(extra, dict):
                    out += errors(v, extra, _ptr(ptr, k))
    for s in schema.get("allOf", []):
        out += errors(value, s, ptr)
    if "anyOf" in schema:
        alts = [errors(value, s, ptr) for s in schema["anyOf"]]
        if all(alts):
            out.append((where, "matches none of anyOf: " + _best(alts)))
    if "oneOf" in schema:
        alts = [errors(value, s, ptr) for s in schema["oneOf"]]
        n = sum(1 for a in alts if not a)
        if n == 0:
            out.append((where, "matches none of oneOf: " + _best(alts)))
        elif n > 1:
            out.append((where, "matches %d of oneOf (exactly one wanted)" % n))
    if "not" in schema and not errors(value, schema["not"], ptr):
        out.append((where, "matches a 'not' schema"))
    return out


def _strict():
    return os.environ.get("WINNOW_OPENAPI_STRICT", "0") != "0"


def _best(alts):
    # The alternative that failed least says most about what was meant.
    a = min(alts, key=len)
    return "; ".join("%s: %s" % e for e in a[:3])


def _short(value):
    s = json.dumps(value)
    return s if len(s) <= 60 else s[:57] + "..."


def _media_match(got, documented):
    for m in documented:
        if m == got or m == "*/*":
            return m
        if m.endswith("/*") and got.split("/")[0] == m.split("/")[0]:
            return m
    return None


def _is_json(media):
    return media == "application/json" or media.endswith("+json")


def response_object(method, path, status):
    """(template or None, the response object (resolved)) the document gives for this answer.
    A route or method the document does not have gets the Problem response (what the daemon
    answers to a made-up path: 404, or 405 for a method the path lacks)."""
    doc = _load()
    tmpl = match_path(path)
    m = "get" if method.lower() == "head" else method.lower()
    op = doc["paths"].get(tmpl, {}).get(m) if tmpl else None
    if op is None:
        return tmpl, resolve({"$ref": "#/components/responses/Problem"})
    rs = op.get("responses", {})
    for key in (str(status), "%dXX" % (status // 100), "default"):
        if key in rs:
            return tmpl, resolve(rs[key])
    raise OpenAPIMismatch("%s %s (%s): status %d is not documented (has %s)"
                          % (method, path, tmpl, status, sorted(rs)))


def check(method, path, status, headers, body):
    """Checks one response; headers have lower-case keys, body is bytes. Raises
    OpenAPIMismatch on the first mismatch, or, when env WINNOW_OPENAPI_LOG names a file,
    appends the mismatch there and goes on (to collect every gap of a run at once)."""
    global checked
    checked += 1
    log = os.environ.get("WINNOW_OPENAPI_LOG")
    try:
        check_one(method, path, status, headers, body)
    except OpenAPIMismatch as e:
        if not log:
            raise
        with open(log, "a", encoding="utf-8") as f:
            f.write(str(e) + "\n")


def check_one(method, path, status, headers, body):
    """check() without the counting and the log: always raises OpenAPIMismatch on a mismatch."""
    tmpl, resp = response_object(method, path, status)
    where = "%s %s (%s) -> %d" % (method, path, tmpl or "undocumented route", status)
    content = resp.get("content")
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if not content:
        if body:
            raise OpenAPIMismatch("%s: documented without content, got %d bytes of %r"
                                  % (where, len(body), ctype))
        return
    if method.upper() == "HEAD":
        return
    media = _media_match(ctype, content)
    if media is None:
        raise OpenAPIMismatch("%s: Content-Type %r is not documented (has %s)"
                              % (where, ctype, sorted(content)))
    schema = content[media].get("schema")
    if not schema or not _is_json(ctype):
        return
    try:
        value = json.loads(body)
    except ValueError as e:
        raise OpenAPIMismatch("%s: body is not JSON (%s): %r" % (where, e, body[:80]))
    errs = errors(value, schema)
    if errs:
        raise OpenAPIMismatch("%s: body does not match the schema at %s"
                              % (where, "; ".join("%s: %s" % e for e in errs[:5])))


def _tally():
    out = os.environ.get("WINNOW_OPENAPI_TALLY")
    if out and checked:
        with open(out, "a", encoding="utf-8") as f:
            f.write("%d\n" % checked)


atexit.register(_tally)
