"""Read a traced session back the way a Langfuse user would: through the public API only.

The integration tests and benchmarks call ``read_trace()`` against the test receiver
(tests/support/langfuse_receiver.py) or a real server, of either line:

* Langfuse v3: the trace is a row of its own, read with ``GET /api/public/traces?sessionId=``
  and ``GET /api/public/traces/{id}`` (the view returned as the server gives it).
* Langfuse v4 (observations first): there is no trace row and the v1 trace reads answer 404.
  A trace is the set of observation rows that share a trace id, read with
  ``GET /api/public/v2/observations`` (every field group, paged with its cursor).  The rows
  are folded into the v1 trace view the tests already assert on, the way the v4 server's
  own trace view (eventsTracesAggregation in packages/shared/.../event-query-builder.ts)
  folds them:
    - input, output and metadata: the root row's (parentObservationId null; the latest
      written if the root was exported more than once);
    - name: the latest ``langfuse.trace.name`` on any row, else the root's name; sessionId,
      userId, tags, release, version, environment: the latest non-empty value on any row;
    - totalCost: the sum over *all* rows, so a span exported twice costs twice.
  Each row stays its own observation: duplicates show up as two observations with one id.
  ``root`` is the root row itself, for asserting what the root carries without the fold.

The server line is told by ``GET /api/public/v2/observations``: a v3 server answers it 404.

Standard library only.  Every wait is bounded by ``timeout``.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request

V2_ALL_GROUPS = "core,basic,time,io,metadata,model,usage,prompt,metrics,trace_context"
V2_PAGE_LIMIT = 1000  # the server's maximum; fewer pages, fewer rows lost at page edges
POLL_INTERVAL_S = 0.1


def _parse_json_prioritised(text):
    """Langfuse's read rule: a string comes back JSON-parsed when it is JSON."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _none_if_empty(value):
    """v4 string columns are not nullable: an absent value reads as "" (v1 gave null)."""
    return None if value == "" else value


class _Api:
    """GET requests with Basic auth; every answer comes back as (status, JSON or None)."""

    def __init__(self, base_url, public_key, secret_key, timeout):
        self.base_url = base_url.rstrip("/")
        token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}
        self.timeout = timeout

    def get(self, path, **query):
        url = self.base_url + path
        query = {k: v for k, v in query.items() if v is not None}
        if query:
            url += "?" + urllib.parse.urlencode(query)
        request = urllib.request.Request(url, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, body = err.code, err.read()
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, None

    def ok(self, path, **query):
        status, body = self.get(path, **query)
        if status != 200:
            raise AssertionError(f"GET {self.base_url}{path} {query} answered {status}: {body}")
        return body


def server_line(base_url, public_key, secret_key, timeout=10) -> int:
    """3 or 4: which Langfuse server line answers at base_url."""
    status, body = _Api(base_url, public_key, secret_key, timeout).get(
        "/api/public/v2/observations", limit=1, fields="core")
    if status == 200:
        return 4
    if status == 404:
        return 3
    raise AssertionError(f"cannot tell the Langfuse server line at {base_url}: "
                         f"GET /api/public/v2/observations answered {status}: {body}")


def read_trace(base_url, public_key, secret_key, session_id=None, trace_id=None,
               timeout=10) -> dict:
    """The trace of a session (its newest trace) or of a trace id, as the v1 trace view:
    ``id, name, sessionId, userId, input, output, tags, metadata, release, environment,
    totalCost, observations`` (each with ``id, traceId, type, name, parentObservationId,
    startTime, endTime, input, output, metadata, level, statusMessage, model, usageDetails,
    costDetails, calculatedTotalCost, completionStartTime``), plus ``root`` and
    ``langfuseVersion``.  Polls until the trace has a root observation; AssertionError when
    it has none within timeout."""
    if (session_id is None) == (trace_id is None):
        raise ValueError("read_trace needs exactly one of session_id and trace_id")
    deadline = time.monotonic() + timeout
    api = _Api(base_url, public_key, secret_key, timeout)
    line = server_line(base_url, public_key, secret_key, timeout)
    reader = _read_v3 if line == 3 else _read_v4
    seen = "nothing"
    while True:
        trace, seen = reader(api, session_id, trace_id)
        if trace is not None:
            trace["langfuseVersion"] = line
            return trace
        if time.monotonic() >= deadline:
            what = f"session {session_id!r}" if session_id is not None else f"trace {trace_id!r}"
            raise AssertionError(f"no trace with a root observation for {what} at {base_url} "
                                 f"(Langfuse v{line}) within {timeout} s; found {seen}")
        time.sleep(POLL_INTERVAL_S)


# -- Langfuse v3 ------------------------------------------------------------------------

def _read_v3(api, session_id, trace_id):
    if trace_id is None:
        listed = api.ok("/api/public/traces", sessionId=session_id)["data"]
        if not listed:
            return None, "no trace"
        trace_id = listed[0]["id"]  # newest first
    status, trace = api.get(f"/api/public/traces/{urllib.parse.quote(trace_id, safe='')}")
    if status == 404:
        return None, "no trace"
    if status != 200:
        raise AssertionError(f"GET trace {trace_id} answered {status}: {trace}")
    roots = [o for o in trace["observations"] if o.get("parentObservationId") is None]
    if not roots:
        count = len(trace["observations"])
        return None, f"trace {trace_id} without a root among {count} observations"
    trace["root"] = roots[0]
    return trace, ""


# -- Langfuse v4 ------------------------------------------------------------------------

def _v2_rows(api, **filters):
    """Every row the filters match, following the cursor."""
    rows, cursor = [], None
    while True:
        page = api.ok("/api/public/v2/observations", limit=V2_PAGE_LIMIT, cursor=cursor,
                      **filters)
        rows.extend(page["data"])
        cursor = page["meta"].get("cursor")
        if not cursor or not page["data"]:
            return rows


def _observation(item: dict) -> dict:
    """A v2 item under the v1 observation names (and the v2 extras kept)."""
    return {
        "id": item["id"], "traceId": item["traceId"], "type": item["type"].upper(),
        "name": item.get("name"), "parentObservationId": item["parentObservationId"],
        "startTime": item["startTime"], "endTime": item["endTime"],
        "input": _parse_json_prioritised(item.get("input")),
        "output": _parse_json_prioritised(item.get("output")),
        "metadata": item.get("metadata") or {}, "level": item.get("level"),
        "statusMessage": _none_if_empty(item.get("statusMessage")),
        "model": _none_if_empty(item.get("model")),
        "modelParameters": item.get("modelParameters"),
        "usageDetails": item.get("usageDetails") or {},
        "costDetails": item.get("costDetails") or {},
        "calculatedTotalCost": item.get("totalCost") or 0,
        "promptTokens": item.get("inputUsage", 0), "completionTokens": item.get("outputUsage", 0),
        "totalTokens": item.get("totalUsage", 0),
        "completionStartTime": item.get("completionStartTime"),
        "latency": item.get("latency"), "timeToFirstToken": item.get("timeToFirstToken"),
        "environment": item.get("environment"), "version": _none_if_empty(item.get("version")),
        "sessionId": _none_if_empty(item.get("sessionId")),
        "userId": _none_if_empty(item.get("userId")),
        "traceName": item.get("traceName"), "tags": item.get("tags") or [],
        "release": _none_if_empty(item.get("release")),
        "isRootObservation": item.get("isRootObservation"),
        "createdAt": item.get("createdAt"), "updatedAt": item.get("updatedAt"),
    }


def _latest(rows, field):
    """The value of field on the most recently written row that has it non-empty."""
    for row in reversed(rows):
        if row.get(field) not in (None, "", []):
            return row[field]
    return None


def _read_v4(api, session_id, trace_id):
    if trace_id is None:
        in_session = _v2_rows(api, sessionId=session_id, fields="core")
        if not in_session:
            return None, "no observation with that session id"
        first_start = {}
        for row in in_session:
            first_start[row["traceId"]] = min(first_start.get(row["traceId"], row["startTime"]),
                                              row["startTime"])
        trace_id = max(first_start, key=lambda t: (first_start[t], t))  # the newest trace
    items = _v2_rows(api, traceId=trace_id, fields=V2_ALL_GROUPS)
    observations = sorted((_observation(i) for i in items),
                          key=lambda o: (o["startTime"], o["id"]))
    by_write = sorted(observations, key=lambda o: o["updatedAt"] or "")
    roots = [o for o in by_write if o["parentObservationId"] is None]
    if not roots:
        return None, f"trace {trace_id} without a root among {len(observations)} observations"
    root = roots[-1]
    # langfuse.trace.name of any row first; a root row's traceName falls back to its own name.
    named = [o for o in by_write if o["traceName"] and not (
        o["parentObservationId"] is None and o["traceName"] == o["name"])]
    trace = {
        "id": trace_id,
        "name": _latest(named, "traceName") or root["traceName"],
        "timestamp": min(o["startTime"] for o in observations),
        "sessionId": _latest(by_write, "sessionId"), "userId": _latest(by_write, "userId"),
        "tags": _latest(by_write, "tags") or [], "release": _latest(by_write, "release"),
        "version": _latest(by_write, "version"),
        "environment": _latest(by_write, "environment") or "default",
        "input": root["input"], "output": root["output"], "metadata": root["metadata"],
        "totalCost": sum(o["calculatedTotalCost"] for o in observations),
        "observations": observations, "root": root,
    }
    return trace, ""


# -- raw exports (/_test/raw) -----------------------------------------------------------

_REQUEST_LINE = re.compile(rb"\n\n(?=[A-Z]+ \S+ HTTP/1\.[01]\r\n)")


def raw_requests(raw_bytes: bytes) -> list[dict]:
    """The records of ``GET /_test/raw`` (request line, headers, blank line, decoded body,
    blank lines), each as {"method", "path", "headers" (lower-case names), "body" (the
    parsed JSON, or the bytes when it is not JSON), "raw_body" (the body's bytes)}."""
    records, pos, decoder = [], 0, json.JSONDecoder()
    while True:
        while pos < len(raw_bytes) and raw_bytes[pos:pos + 1] in (b"\r", b"\n"):
            pos += 1
        if pos >= len(raw_bytes):
            return records
        head_end = raw_bytes.find(b"\r\n\r\n", pos)
        if head_end < 0:
            raise ValueError(f"raw record at byte {pos} has no end of headers")
        lines = raw_bytes[pos:head_end].decode("latin-1").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = head_end + 4
        # surrogateescape keeps one character per undecodable byte, so the JSON's length
        # in characters maps back to its length in bytes.
        rest = raw_bytes[start:].decode("utf-8", "surrogateescape")
        try:
            body, used = decoder.raw_decode(rest)
            pos = start + len(rest[:used].encode("utf-8", "surrogateescape"))
            raw_body = raw_bytes[start:pos]
        except ValueError:
            match = _REQUEST_LINE.search(raw_bytes, start)
            end = match.start() if match else len(raw_bytes)
            body = raw_body = raw_bytes[start:end].rstrip(b"\n")
            pos = end
        records.append({"method": method, "path": path, "headers": headers, "body": body,
                        "raw_body": raw_body})


def _plain(value: dict):
    """An OTLP AnyValue as a Python value."""
    if "arrayValue" in value:
        return [_plain(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return {kv["key"]: _plain(kv["value"]) for kv in value["kvlistValue"].get("values", [])}
    if "intValue" in value:
        return int(value["intValue"])
    for key in ("stringValue", "boolValue", "doubleValue", "bytesValue"):
        if key in value:
            return value[key]
    return None


def attributes(items) -> dict:
    """An OTLP attribute list as {key: plain value}."""
    return {item["key"]: _plain(item["value"]) for item in items or []}


def raw_spans(raw_bytes: bytes) -> list[tuple[dict, dict]]:
    """Every span of the OTLP requests in ``GET /_test/raw`` output, in the order sent, as
    (request headers with lower-case names, span): the span's own fields with its
    ``attributes`` as a plain dict, plus ``resource`` (its resource's attributes) and
    ``scope`` (name and version)."""
    spans = []
    for record in raw_requests(raw_bytes):
        body = record["body"]
        if not isinstance(body, dict) or "resourceSpans" not in body:
            continue
        for rs in body.get("resourceSpans") or []:
            resource = attributes((rs.get("resource") or {}).get("attributes"))
            for ss in rs.get("scopeSpans") or []:
                scope = ss.get("scope") or {}
                for span in ss.get("spans") or []:
                    flat = {**span, "attributes": attributes(span.get("attributes")),
                            "resource": resource,
                            "scope": {"name": scope.get("name"), "version": scope.get("version")}}
                    spans.append((record["headers"], flat))
    return spans
