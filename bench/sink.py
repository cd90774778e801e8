#!/usr/bin/env python3
"""A fast local Langfuse sink for the tracing benchmark (Python 3 stdlib only).

Listens on 127.0.0.1 (port 0 = any free port unless --port is given), prints
``READY <port>`` on stdout once it accepts connections, and serves:

  POST /api/public/otel/v1/traces   OTLP/HTTP traces: JSON (application/json) or
                                    protobuf (application/x-protobuf), plain or
                                    Content-Encoding gzip/deflate. Counts unique
                                    span ids. Like Langfuse, a missing/malformed
                                    traceId/spanId or non-list attributes in any
                                    span rejects the whole request with 400.
                                    Success: 200 with body ``{}``.
  POST /api/public/ingestion        legacy batch ingestion ``{"batch":[...]}``.
                                    Counts unique observation ids among
                                    ``<type>-create`` / ``<type>-update`` events of
                                    observation types. Answers 207 with every event
                                    a success (an event without id/type/body is
                                    reported in ``errors``); 400 if the body is not
                                    ``{"batch":[...]}``.
  GET  /stats                       {"observations_unique","traces","requests",
                                    "bytes", ...extra counters}
  POST /reset                       clears all counters.

Every ingest request needs an ``Authorization: Basic ...`` header (any key is
accepted); without one it gets 401, as from Langfuse.

Counting rules. ``observations_unique`` counts distinct observation ids: OTLP
span ids of spans that have a parent, and ``id`` of observation events. An OTLP
span without a parent is the trace's root: it stands for the trace itself and
is counted in ``root_spans_unique``, not in ``observations_unique``. ``traces``
counts distinct trace ids seen anywhere (OTLP trace ids, ``trace-create`` ids,
``traceId`` of observation events). ``requests`` and ``bytes`` count ingest
requests (both endpoints, any outcome) and their bodies as received on the wire
(compressed size if compressed).

The server is a single asyncio event loop with a hand-written HTTP/1.1 parser
(keep-alive, pipelining, chunked bodies, ``Expect: 100-continue``) and a large
listen backlog, so that thousands of concurrent connections (the v3 JS SDK opens
one per batch) are accepted without stalls. Requests are decoded synchronously
in the loop; a 1 MB OTLP JSON batch takes ~10 ms.
"""

import argparse
import asyncio
import base64
import binascii
import gzip
import json
import signal
import sys
import time
import zlib

OBSERVATION_TYPES = frozenset(
    (
        "span",
        "generation",
        "event",
        "agent",
        "tool",
        "chain",
        "retriever",
        "embedding",
        "evaluator",
        "guardrail",
    )
)

MAX_HEADER = 64 * 1024
MAX_BODY = 256 * 1024 * 1024

OTLP_PATH = "/api/public/otel/v1/traces"
INGESTION_PATH = "/api/public/ingestion"


class BadRequest(Exception):
    pass


class Stats:
    def __init__(self):
        self.reset()

    def reset(self):
        self.obs_ids = set()
        self.root_ids = set()
        self.trace_ids = set()
        self.requests = 0
        self.bytes = 0
        self.decoded_bytes = 0
        self.otlp_requests = 0
        self.ingestion_requests = 0
        self.spans_received = 0
        self.events_received = 0
        self.observation_events = 0
        self.trace_create_events = 0
        self.bad_requests = 0
        self.unauthorized = 0
        self.content_types = {}
        self.content_encodings = {}
        self.user_agents = {}
        self.peak_connections = 0
        self.connections_opened = 0
        self.first_request_at = None
        self.last_request_at = None
        self.handle_seconds = 0.0

    def as_dict(self):
        return {
            "observations_unique": len(self.obs_ids),
            "traces": len(self.trace_ids),
            "requests": self.requests,
            "bytes": self.bytes,
            "root_spans_unique": len(self.root_ids),
            "decoded_bytes": self.decoded_bytes,
            "otlp_requests": self.otlp_requests,
            "ingestion_requests": self.ingestion_requests,
            "spans_received": self.spans_received,
            "events_received": self.events_received,
            "observation_events": self.observation_events,
            "trace_create_events": self.trace_create_events,
            "bad_requests": self.bad_requests,
            "unauthorized": self.unauthorized,
            "content_types": self.content_types,
            "content_encodings": self.content_encodings,
            "user_agents": self.user_agents,
            "connections_opened": self.connections_opened,
            "peak_connections": self.peak_connections,
            "ingest_window_s": (
                round(self.last_request_at - self.first_request_at, 3)
                if self.first_request_at is not None
                else None
            ),
            "handle_seconds": round(self.handle_seconds, 3),
        }


STATS = Stats()
OPEN_CONNECTIONS = 0
LATENCY_S = 0.0  # --latency-ms: simulated server latency for ingest endpoints


# ---------------------------------------------------------------- OTLP/JSON

_HEX = frozenset("0123456789abcdefABCDEF")


def _norm_id(value, nbytes):
    """Return the id as lowercase hex, or None if malformed. OTLP/JSON says hex;
    the generic protobuf JSON mapping would give base64, which we also accept."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) == 2 * nbytes and _HEX.issuperset(value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != nbytes:
        return None
    return raw.hex()


def _get(d, camel, snake):
    v = d.get(camel)
    if v is None:
        v = d.get(snake)
    return v


def parse_otlp_json(data):
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest("invalid JSON: %s" % e)
    if not isinstance(doc, dict):
        raise BadRequest("body is not an object")
    out = []  # (trace_hex, span_hex, parent_hex_or_None)
    for rs in _get(doc, "resourceSpans", "resource_spans") or ():
        if not isinstance(rs, dict):
            raise BadRequest("resourceSpans entry is not an object")
        scopes = _get(rs, "scopeSpans", "scope_spans")
        if scopes is None:
            scopes = _get(rs, "instrumentationLibrarySpans", "instrumentation_library_spans")
        for ss in scopes or ():
            if not isinstance(ss, dict):
                raise BadRequest("scopeSpans entry is not an object")
            for sp in ss.get("spans") or ():
                if not isinstance(sp, dict):
                    raise BadRequest("span is not an object")
                tid = _norm_id(_get(sp, "traceId", "trace_id"), 16)
                sid = _norm_id(_get(sp, "spanId", "span_id"), 8)
                if tid is None or sid is None or tid == "0" * 32 or sid == "0" * 16:
                    raise BadRequest("missing or malformed traceId/spanId")
                attrs = sp.get("attributes")
                if attrs is not None and not isinstance(attrs, list):
                    raise BadRequest("attributes is not a list")
                p = _get(sp, "parentSpanId", "parent_span_id")
                parent = _norm_id(p, 8) if p else None
                if parent == "0" * 16:
                    parent = None
                out.append((tid, sid, parent))
    return out


# ------------------------------------------------------------ OTLP/protobuf
# ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
# ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2;
#                 string schema_url = 3; }      (field 1000: old ILS, also read)
# ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; ... }
# Span { bytes trace_id = 1; bytes span_id = 2; string trace_state = 3;
#        bytes parent_span_id = 4; ... repeated KeyValue attributes = 9; ... }


def _varint(buf, i, end):
    result = 0
    shift = 0
    while True:
        if i >= end:
            raise BadRequest("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise BadRequest("varint too long")


def _fields(buf, i, end):
    """Yield (field_number, wire_type, value_or_start, stop) for a message."""
    while i < end:
        key, i = _varint(buf, i, end)
        fn, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i, end)
            yield fn, 0, v, i
        elif wt == 2:
            ln, i = _varint(buf, i, end)
            j = i + ln
            if j > end:
                raise BadRequest("truncated length-delimited field")
            yield fn, 2, i, j
            i = j
        elif wt == 1:
            i += 8
            if i > end:
                raise BadRequest("truncated fixed64")
            yield fn, 1, None, i
        elif wt == 5:
            i += 4
            if i > end:
                raise BadRequest("truncated fixed32")
            yield fn, 5, None, i
        else:
            raise BadRequest("unsupported wire type %d" % wt)


def parse_otlp_protobuf(data):
    buf = memoryview(data)
    out = []
    for fn, wt, s, e in _fields(buf, 0, len(buf)):
        if fn != 1 or wt != 2:
            continue
        for fn2, wt2, s2, e2 in _fields(buf, s, e):
            if wt2 != 2 or fn2 not in (2, 1000):
                continue
            for fn3, wt3, s3, e3 in _fields(buf, s2, e2):
                if fn3 != 2 or wt3 != 2:
                    continue
                tid = sid = parent = None
                for fn4, wt4, s4, e4 in _fields(buf, s3, e3):
                    if wt4 != 2:
                        continue
                    if fn4 == 1:
                        tid = bytes(buf[s4:e4])
                    elif fn4 == 2:
                        sid = bytes(buf[s4:e4])
                    elif fn4 == 4:
                        parent = bytes(buf[s4:e4])
                if (
                    tid is None
                    or sid is None
                    or len(tid) != 16
                    or len(sid) != 8
                    or not any(tid)
                    or not any(sid)
                ):
                    raise BadRequest("missing or malformed trace_id/span_id")
                if parent is not None and (len(parent) != 8 or not any(parent)):
                    parent = None
                out.append((tid.hex(), sid.hex(), parent.hex() if parent else None))
    return out


# ------------------------------------------------------------------ handlers


def _decode_body(headers, body):
    enc = headers.get("content-encoding", "").strip().lower()
    if enc:
        STATS.content_encodings[enc] = STATS.content_encodings.get(enc, 0) + 1
    try:
        if enc in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if enc == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
    except (OSError, EOFError, zlib.error) as e:
        raise BadRequest("cannot decode %s body: %s" % (enc, e))
    if enc in ("", "identity"):
        return body
    raise BadRequest("unsupported content-encoding %r" % enc)


def handle_otlp(headers, body):
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    STATS.content_types[ctype] = STATS.content_types.get(ctype, 0) + 1
    data = _decode_body(headers, body)
    STATS.decoded_bytes += len(data)
    if "protobuf" in ctype:
        spans = parse_otlp_protobuf(data)
    elif "json" in ctype or data[:1] in (b"{", b" ", b"\n"):
        spans = parse_otlp_json(data)
    else:
        spans = parse_otlp_protobuf(data)
    STATS.otlp_requests += 1
    STATS.spans_received += len(spans)
    obs, roots, traces = STATS.obs_ids, STATS.root_ids, STATS.trace_ids
    for tid, sid, parent in spans:
        traces.add(tid)
        if parent is None:
            roots.add(sid)
        else:
            obs.add(sid)
    return 200, b"{}"


def handle_ingestion(headers, body):
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    STATS.content_types[ctype] = STATS.content_types.get(ctype, 0) + 1
    data = _decode_body(headers, body)
    STATS.decoded_bytes += len(data)
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest("invalid JSON: %s" % e)
    batch = doc.get("batch") if isinstance(doc, dict) else None
    if not isinstance(batch, list):
        raise BadRequest('body is not {"batch":[...]}')
    STATS.ingestion_requests += 1
    STATS.events_received += len(batch)
    successes = []
    errors = []
    obs, traces = STATS.obs_ids, STATS.trace_ids
    for ev in batch:
        ev_id = ev.get("id") if isinstance(ev, dict) else None
        typ = ev.get("type") if isinstance(ev, dict) else None
        bod = ev.get("body") if isinstance(ev, dict) else None
        if not isinstance(ev_id, str) or not isinstance(typ, str) or not isinstance(bod, dict):
            errors.append(
                {
                    "id": ev_id if isinstance(ev_id, str) else "",
                    "status": 400,
                    "message": "Invalid request data",
                    "error": "event needs string id, string type and object body",
                }
            )
            continue
        kind, _, action = typ.rpartition("-")
        if action in ("create", "update"):
            if kind in OBSERVATION_TYPES:
                oid = bod.get("id")
                if isinstance(oid, str) and oid:
                    obs.add(oid)
                    STATS.observation_events += 1
                tid = bod.get("traceId")
                if isinstance(tid, str) and tid:
                    traces.add(tid)
            elif kind == "trace":
                tid = bod.get("id")
                if isinstance(tid, str) and tid:
                    traces.add(tid)
                STATS.trace_create_events += 1
        successes.append({"id": ev_id, "status": 201})
    return 207, json.dumps({"successes": successes, "errors": errors}).encode()


def _authorized(headers):
    auth = headers.get("authorization", "")
    return auth[:6].lower() == "basic " and len(auth) > 6


def route(method, path, headers, body):
    """Return (status, body_bytes)."""
    path = path.split("?", 1)[0]
    if path in (OTLP_PATH, INGESTION_PATH):
        if method != "POST":
            return 405, b'{"message":"method not allowed"}'
        now = time.monotonic()
        STATS.requests += 1
        STATS.bytes += len(body)
        if STATS.first_request_at is None:
            STATS.first_request_at = now
        STATS.last_request_at = now
        ua = headers.get("user-agent", "")[:60]
        STATS.user_agents[ua] = STATS.user_agents.get(ua, 0) + 1
        if not _authorized(headers):
            STATS.unauthorized += 1
            return 401, b'{"message":"Unauthorized"}'
        t0 = time.perf_counter()
        try:
            if path == OTLP_PATH:
                return handle_otlp(headers, body)
            return handle_ingestion(headers, body)
        except BadRequest as e:
            STATS.bad_requests += 1
            return 400, json.dumps({"message": "Invalid request", "error": str(e)}).encode()
        finally:
            STATS.handle_seconds += time.perf_counter() - t0
    if path == "/stats" and method == "GET":
        return 200, json.dumps(STATS.as_dict()).encode()
    if path == "/reset" and method == "POST":
        STATS.reset()
        return 200, b'{"ok":true}'
    if path in ("/health", "/api/public/health") and method == "GET":
        return 200, b'{"status":"OK"}'
    return 404, b'{"message":"not found"}'


REASONS = {
    100: "Continue",
    200: "OK",
    207: "Multi-Status",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
}


class HttpProtocol(asyncio.Protocol):

    def connection_made(self, transport):
        global OPEN_CONNECTIONS
        self.transport = transport
        self.buf = bytearray()
        self.closed = False
        OPEN_CONNECTIONS += 1
        STATS.connections_opened += 1
        if OPEN_CONNECTIONS > STATS.peak_connections:
            STATS.peak_connections = OPEN_CONNECTIONS
        self._continue_sent = False

    def connection_lost(self, exc):
        global OPEN_CONNECTIONS
        OPEN_CONNECTIONS -= 1
        self.closed = True

    def data_received(self, data):
        self.buf += data
        while not self.closed:
            if not self._try_one():
                break

    def _send(self, status, body, keep_alive, ctype=b"application/json", delay=0.0):
        head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
            status,
            REASONS.get(status, "Status").encode(),
            ctype,
            len(body),
            b"" if keep_alive else b"Connection: close\r\n",
        )
        if not keep_alive:
            self.closed = True
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._write, head + body, keep_alive)
        else:
            self._write(head + body, keep_alive)

    def _write(self, data, keep_alive):
        if self.transport.is_closing():
            return
        self.transport.write(data)
        if not keep_alive:
            self.transport.close()

    def _try_one(self):
        """Handle one complete request from self.buf; return False if more data is needed."""
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEADER:
                self._send(431, b"{}", False)
            return False
        try:
            head = bytes(buf[:end]).decode("latin-1")
            lines = head.split("\r\n")
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            self._send(400, b'{"message":"bad request line"}', False)
            return False
        headers = {}
        for line in lines[1:]:
            k, sep, v = line.partition(":")
            if sep:
                headers[k.strip().lower()] = v.strip()
        pos = end + 4
        te = headers.get("transfer-encoding", "").lower()
        if "chunked" in te:
            body = bytearray()
            i = pos
            while True:
                nl = buf.find(b"\r\n", i)
                if nl < 0:
                    self._maybe_continue(headers)
                    return False
                try:
                    size = int(bytes(buf[i:nl]).split(b";", 1)[0].strip() or b"0", 16)
                except ValueError:
                    self._send(400, b'{"message":"bad chunk size"}', False)
                    return False
                i = nl + 2
                if size == 0:
                    # trailers: until an empty line
                    while True:
                        nl = buf.find(b"\r\n", i)
                        if nl < 0:
                            return False
                        if nl == i:
                            i = nl + 2
                            break
                        i = nl + 2
                    break
                if len(buf) < i + size + 2:
                    self._maybe_continue(headers)
                    return False
                body += buf[i : i + size]
                if len(body) > MAX_BODY:
                    self._send(413, b'{"message":"body too large"}', False)
                    return False
                i += size + 2
            body = bytes(body)
            consumed = i
        else:
            try:
                clen = int(headers.get("content-length", "0") or "0")
            except ValueError:
                self._send(400, b'{"message":"bad content-length"}', False)
                return False
            if clen > MAX_BODY:
                self._send(413, b'{"message":"body too large"}', False)
                return False
            if len(buf) < pos + clen:
                self._maybe_continue(headers)
                return False
            body = bytes(buf[pos : pos + clen])
            consumed = pos + clen
        del buf[:consumed]
        self._continue_sent = False
        conn = headers.get("connection", "").lower()
        keep_alive = (
            "close" not in conn if version.upper() == "HTTP/1.1" else "keep-alive" in conn
        )
        status, resp = route(method.upper(), target, headers, body)
        delay = LATENCY_S if target.split("?", 1)[0] in (OTLP_PATH, INGESTION_PATH) else 0.0
        self._send(status, resp, keep_alive, delay=delay)
        return True

    def _maybe_continue(self, headers):
        if not self._continue_sent and headers.get("expect", "").lower() == "100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._continue_sent = True


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="delay every ingest response by this much (simulates a remote server; default 0)",
    )
    args = ap.parse_args()
    global LATENCY_S
    LATENCY_S = max(0.0, args.latency_ms) / 1000.0
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        HttpProtocol, args.host, args.port, backlog=4096, reuse_address=True
    )
    port = server.sockets[0].getsockname()[1]
    print("READY %d" % port, flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    async with server:
        await stop.wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    sys.exit(0)
