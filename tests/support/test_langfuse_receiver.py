"""Tests for tests/support/langfuse_receiver.py, the Langfuse test receiver, in both of
its server lines (v3: spans merged into traces; v4: one row per exported span), and for
tests/support/lf_read.py, which reads a session back through the public API.

The receiver runs as a subprocess exactly as the C integration tests use it: port 0,
a ``READY <port>`` line, then HTTP.  Every wait is bounded and every process this
suite starts is terminated.  The replay tests send the request bodies the exporter sent
before its v4 work (tests/fixtures/pre-v4-export) to both server lines.

    python3 -m unittest tests/support/test_langfuse_receiver.py -v
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import os
import signal
import socket
import sys
import time
import unittest
import urllib.parse
from pathlib import Path
from unittest import mock

RECEIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "langfuse_receiver.py")
sys.path.insert(0, os.path.dirname(RECEIVER))
from procs import start_ready, stop_process  # noqa: E402
import lf_read  # noqa: E402
PK, SK = "pk-lf-test", "sk-lf-test-secret-0123"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{PK}:{SK}".encode()).decode()}
START_TIMEOUT_S = 10
HTTP_TIMEOUT_S = 5

TRACE = "0af7651916cd43dd8448eb211c80319c"
ROOT, GEN, TOOL = "b7ad6b7169203331", "c7ad6b7169203331", "d7ad6b7169203331"
T0 = 1_700_000_000_000_000_000  # unix ns


class Receiver:
    """A receiver subprocess; start() waits (bounded) for its READY line.  version None
    starts it without --langfuse-version (its default)."""

    def __init__(self, version=None, public_key=PK, secret_key=SK):
        self.proc = None
        self.port = None
        self.version, self.public_key, self.secret_key = version, public_key, secret_key

    def start(self):
        cmd = [sys.executable, RECEIVER, "--port", "0", "--public-key", self.public_key,
               "--secret-key", self.secret_key]
        if self.version is not None:
            cmd += ["--langfuse-version", str(self.version)]
        self.proc, self.port = start_ready(cmd, timeout=START_TIMEOUT_S)
        return self

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig=signal.SIGTERM, timeout=5) -> int | None:
        return None if self.proc is None else stop_process(self.proc, sig, timeout)


def kv(key, value):
    """An OTLP/JSON attribute from a Python value."""
    if isinstance(value, bool):
        any_value = {"boolValue": value}
    elif isinstance(value, int):
        any_value = {"intValue": str(value)}
    elif isinstance(value, float):
        any_value = {"doubleValue": value}
    elif isinstance(value, list):
        any_value = {"arrayValue": {"values": [{"stringValue": v} for v in value]}}
    else:
        any_value = {"stringValue": value}
    return {"key": key, "value": any_value}


def span(span_id, name, start_ms=0, end_ms=1000, parent=None, attrs=(), status=None,
         trace_id=TRACE):
    out = {"traceId": trace_id, "spanId": span_id, "name": name, "kind": 1,
           "startTimeUnixNano": str(T0 + start_ms * 1_000_000),
           "endTimeUnixNano": str(T0 + end_ms * 1_000_000),
           "attributes": [kv(k, v) for k, v in attrs]}
    if parent:
        out["parentSpanId"] = parent
    if status:
        out["status"] = status
    return out


def export(*spans, scope=None, resource_attrs=(("service.name", "ccrunner"),
                                               ("service.version", "1.2.3"))):
    return {"resourceSpans": [{
        "resource": {"attributes": [kv(k, v) for k, v in resource_attrs]},
        "scopeSpans": [{"scope": scope or {"name": "ccrunner", "version": "0.1.0"},
                        "spans": list(spans)}]}]}


def sample_export():
    """Root span with trace attributes, a generation with usage/cost, a failing tool."""
    root = span(ROOT, "claude-session", 0, 5000, attrs=[
        ("langfuse.trace.name", "fix the build"), ("session.id", "sess-1"),
        ("user.id", "alice"), ("langfuse.trace.tags", ["ci", "nightly"]),
        ("langfuse.trace.public", True), ("langfuse.trace.metadata.repo", "ccrunner"),
        ("langfuse.trace.input", '{"prompt":"hi"}'), ("langfuse.trace.output", "done"),
        ("langfuse.release", "r42"), ("langfuse.environment", "staging")])
    gen = span(GEN, "anthropic.messages", 1000, 3000, parent=ROOT, attrs=[
        ("langfuse.observation.type", "generation"),
        ("langfuse.observation.model.name", "claude-sonnet-4"),
        ("langfuse.observation.model.parameters", '{"max_tokens":1024,"stream":true}'),
        ("langfuse.observation.usage_details",
         '{"input":100,"output":20,"cache_read_input_tokens":50}'),
        ("langfuse.observation.cost_details", '{"input":0.003,"output":0.002,"total":0.005}'),
        ("langfuse.observation.completion_start_time", "2023-11-14T22:13:21.500Z"),
        ("langfuse.observation.input", '[{"role":"user","content":"hi"}]'),
        ("langfuse.observation.metadata.request_id", "req_1"),
        ("langfuse.environment", "staging")])
    tool = span(TOOL, "Bash", 3000, 4000, parent=ROOT, attrs=[
        ("langfuse.observation.type", "tool"), ("langfuse.observation.output", "exit 1"),
        ("langfuse.environment", "staging")],
        status={"code": 2, "message": "command failed"})
    return export(root, gen, tool)


class ReceiverCase(unittest.TestCase):
    """One receiver of server line VERSION for the class, reset before each test, and the
    HTTP helpers the tests share."""
    receiver: Receiver
    VERSION = 3

    @classmethod
    def setUpClass(cls):
        cls.receiver = Receiver(cls.VERSION).start()

    @classmethod
    def tearDownClass(cls):
        cls.receiver.stop()

    def setUp(self):
        self.assertEqual(self.request("POST", "/_test/reset")[0], 200)

    # -- HTTP helpers ---------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT_S):
        conn = http.client.HTTPConnection("127.0.0.1", self.receiver.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read(), resp
        finally:
            conn.close()

    def json_request(self, method, path, obj=None, headers=None, **kw):
        body = None if obj is None else json.dumps(obj).encode()
        status, data, resp = self.request(method, path, body, headers, **kw)
        return status, (json.loads(data) if data else None), resp

    def post_otlp(self, doc, gzipped=False, headers=None):
        body = json.dumps(doc).encode() if not isinstance(doc, bytes) else doc
        hdrs = {**AUTH, "Content-Type": "application/json"}
        if gzipped:
            body = gzip.compress(body)
            hdrs["Content-Encoding"] = "gzip"
        hdrs.update(headers or {})
        status, data, resp = self.request("POST", "/api/public/otel/v1/traces", body, hdrs)
        return status, json.loads(data) if data else None, resp

    def post_batch(self, events, headers=None):
        hdrs = {**AUTH, "Content-Type": "application/json", **(headers or {})}
        return self.json_request("POST", "/api/public/ingestion", {"batch": events}, hdrs)

    def get(self, path):
        status, body, _ = self.json_request("GET", path, headers=AUTH)
        return status, body

    def set_mode(self, **cfg):
        status, body, _ = self.json_request("POST", "/_test/mode", cfg)
        self.assertEqual(status, 200, body)

    def request_log(self):
        return self.json_request("GET", "/_test/requests")[1]

    def stats(self):
        return self.json_request("GET", "/_test/stats")[1]

    def observation(self, trace, obs_id):
        return next(o for o in trace["observations"] if o["id"] == obs_id)


class ReceiverTest(ReceiverCase):
    """The v3 server line: spans merged into traces, the legacy ingestion API, v1 reads."""

    # -- basics ---------------------------------------------------------------------
    def test_health_needs_no_auth(self):
        status, body, _ = self.json_request("GET", "/api/public/health")
        self.assertEqual((status, body), (200, {"status": "OK", "version": "3.x-test"}))

    def test_auth_failures(self):
        bad = {"Authorization": "Basic " + base64.b64encode(f"{PK}:wrong".encode()).decode(),
               "Content-Type": "application/json"}
        for headers in (bad, {"Content-Type": "application/json"}):
            status, body, _ = self.json_request("POST", "/api/public/otel/v1/traces",
                                                sample_export(), headers)
            self.assertEqual(status, 401)
            self.assertIn("message", body)
            status, body, _ = self.json_request("POST", "/api/public/ingestion",
                                                {"batch": []}, headers)
            self.assertEqual(status, 401)
        status, _, _ = self.json_request("GET", f"/api/public/traces/{TRACE}")
        self.assertEqual(status, 401)
        self.assertEqual(self.stats()["traces"], 0)
        self.assertEqual([r["auth_ok"] for r in self.request_log()], [False] * 4)

    # -- OTLP mapping ---------------------------------------------------------------
    def test_otlp_trace_view(self):
        status, body, resp = self.post_otlp(sample_export())
        self.assertEqual((status, body), (200, {}))
        self.assertEqual(resp.getheader("Content-Length"), "2")
        status, trace = self.get(f"/api/public/traces/{TRACE}")
        self.assertEqual(status, 200)
        self.assertEqual(trace["name"], "fix the build")
        self.assertEqual((trace["sessionId"], trace["userId"]), ("sess-1", "alice"))
        self.assertEqual(trace["tags"], ["ci", "nightly"])
        self.assertTrue(trace["public"])
        self.assertEqual((trace["release"], trace["version"]), ("r42", "1.2.3"))
        self.assertEqual(trace["environment"], "staging")
        self.assertEqual(trace["input"], {"prompt": "hi"})  # JSON strings come back parsed
        self.assertEqual(trace["output"], "done")
        self.assertEqual(trace["metadata"]["repo"], "ccrunner")
        self.assertEqual(trace["metadata"]["resourceAttributes"]["service.name"], "ccrunner")
        self.assertEqual(trace["timestamp"], "2023-11-14T22:13:20.000Z")
        self.assertEqual(trace["latency"], 5.0)
        self.assertAlmostEqual(trace["totalCost"], 0.005)
        self.assertEqual(trace["htmlPath"], f"/project/ccrunner-test-project/traces/{TRACE}")
        self.assertEqual(trace["scores"], [])
        self.assertEqual(len(trace["observations"]), 3)  # the root is an observation too

        root = self.observation(trace, ROOT)
        self.assertEqual((root["type"], root["parentObservationId"]), ("SPAN", None))
        gen = self.observation(trace, GEN)
        self.assertEqual(gen["type"], "GENERATION")
        self.assertEqual(gen["parentObservationId"], ROOT)
        self.assertEqual(gen["model"], "claude-sonnet-4")
        self.assertEqual(gen["modelParameters"], {"max_tokens": 1024, "stream": "true"})
        self.assertEqual(gen["usageDetails"],
                         {"input": 100, "output": 20, "cache_read_input_tokens": 50, "total": 170})
        self.assertEqual(gen["costDetails"], {"input": 0.003, "output": 0.002, "total": 0.005})
        self.assertEqual(gen["calculatedTotalCost"], 0.005)
        self.assertEqual((gen["promptTokens"], gen["completionTokens"], gen["totalTokens"]),
                         (100, 20, 170))
        self.assertEqual(gen["completionStartTime"], "2023-11-14T22:13:21.500Z")
        self.assertEqual(gen["timeToFirstToken"], 0.5)
        self.assertEqual(gen["latency"], 2.0)
        self.assertEqual(gen["input"], [{"role": "user", "content": "hi"}])
        self.assertEqual(gen["metadata"]["request_id"], "req_1")
        self.assertNotIn("repo", gen["metadata"])  # trace metadata stays on the trace
        tool = self.observation(trace, TOOL)
        self.assertEqual((tool["type"], tool["level"]), ("TOOL", "ERROR"))
        self.assertEqual(tool["statusMessage"], "command failed")
        self.assertEqual(tool["output"], "exit 1")
        self.assertEqual(tool["usageDetails"], {})
        stats = self.stats()
        self.assertEqual((stats["spans_received"], stats["observations"], stats["traces"]),
                         (3, 3, 1))

    def test_otlp_gzip(self):
        status, _, _ = self.post_otlp(sample_export(), gzipped=True)
        self.assertEqual(status, 200)
        entry = self.request_log()[-1]
        self.assertEqual(entry["content_encoding"], "gzip")
        self.assertLess(entry["wire_bytes"], entry["body_bytes"])
        self.assertEqual(entry["span_ids"], [ROOT, GEN, TOOL])
        self.assertEqual(self.get(f"/api/public/traces/{TRACE}")[1]["name"], "fix the build")

    def test_chunked_request_body_and_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.receiver.port, timeout=HTTP_TIMEOUT_S)
        try:
            body = json.dumps(sample_export()).encode()
            conn.request("POST", "/api/public/otel/v1/traces", body=iter([body[:50], body[50:]]),
                         headers={**AUTH, "Content-Type": "application/json"},
                         encode_chunked=True)
            resp = conn.getresponse()
            self.assertEqual((resp.status, resp.read()), (200, b"{}"))
            for _ in range(3):  # same connection: keep-alive must stay in sync
                conn.request("GET", f"/api/public/traces/{TRACE}", headers=AUTH)
                resp = conn.getresponse()
                self.assertEqual(json.loads(resp.read())["id"], TRACE)
        finally:
            conn.close()

    def test_usage_details_take_precedence_over_gen_ai_usage(self):
        gen = span(GEN, "llm", parent=ROOT, attrs=[
            ("gen_ai.operation.name", "chat"), ("gen_ai.request.model", "m"),
            ("langfuse.observation.usage_details", '{"input":7,"output":3}'),
            ("gen_ai.usage.input_tokens", 1000), ("gen_ai.usage.output_tokens", 1000)])
        self.assertEqual(self.post_otlp(export(span(ROOT, "root"), gen))[0], 200)
        obs = self.get(f"/api/public/observations/{GEN}")[1]
        self.assertEqual(obs["type"], "GENERATION")
        self.assertEqual(obs["usageDetails"], {"input": 7, "output": 3, "total": 10})

    def test_gen_ai_usage_fallback_and_cost(self):
        gen = span(GEN, "llm", parent=ROOT, attrs=[
            ("gen_ai.request.model", "m"), ("gen_ai.usage.input_tokens", 120),
            ("gen_ai.usage.output_tokens", 30), ("gen_ai.usage.cache_read.input_tokens", 20),
            ("gen_ai.usage.cost", 0.25),
            ("langfuse.observation.usage_details", "{not json")])  # invalid: falls back
        self.assertEqual(self.post_otlp(export(span(ROOT, "root"), gen))[0], 200)
        obs = self.get(f"/api/public/observations/{GEN}")[1]
        self.assertEqual(obs["type"], "GENERATION")  # model present
        self.assertEqual(obs["usageDetails"],
                         {"input": 100, "output": 30, "input_cached_tokens": 20, "total": 150})
        self.assertEqual(obs["promptTokens"], 120)  # every key starting with "input"
        self.assertEqual(obs["costDetails"], {"total": 0.25})

    def test_usage_on_span_type_is_stripped(self):
        child = span(GEN, "work", parent=ROOT, attrs=[
            ("langfuse.observation.type", "span"), ("langfuse.observation.model.name", "m"),
            ("langfuse.observation.usage_details", '{"input":5}'),
            ("langfuse.observation.cost_details", '{"total":1.5}')])
        self.assertEqual(self.post_otlp(export(span(ROOT, "root"), child))[0], 200)
        obs = self.get(f"/api/public/observations/{GEN}")[1]
        self.assertEqual((obs["type"], obs["model"], obs["usageDetails"], obs["costDetails"]),
                         ("SPAN", None, {}, {}))
        self.assertEqual(self.get(f"/api/public/traces/{TRACE}")[1]["totalCost"], 0)

    def test_invalid_usage_values_drop_the_observation_silently(self):
        bad = span(GEN, "llm", parent=ROOT, attrs=[
            ("langfuse.observation.type", "generation"),
            ("langfuse.observation.usage_details", '{"input":1.5}')])
        status, _, _ = self.post_otlp(export(span(ROOT, "root"), bad))
        self.assertEqual(status, 200)  # Langfuse answers first, its worker drops later
        dropped = self.request_log()[-1]["dropped"]
        self.assertEqual([(d["span_id"], d["event_type"]) for d in dropped],
                         [(GEN, "generation-create")])
        self.assertEqual(self.get(f"/api/public/observations/{GEN}")[0], 404)
        self.assertEqual(self.stats()["dropped_observations"], 1)
        self.assertEqual(len(self.get(f"/api/public/traces/{TRACE}")[1]["observations"]), 1)

    def test_same_span_id_merges(self):
        first = span(GEN, "llm", 1000, 2000, parent=ROOT, attrs=[
            ("langfuse.observation.type", "generation"),
            ("langfuse.observation.metadata.a", "1"), ("langfuse.observation.input", "q")])
        self.assertEqual(self.post_otlp(export(span(ROOT, "root", 0, 9000), first))[0], 200)
        again = span(GEN, "llm-final", 1500, 4000, parent=ROOT, attrs=[
            ("langfuse.observation.type", "generation"),
            ("langfuse.observation.metadata.b", "2"), ("langfuse.observation.output", "a"),
            ("langfuse.observation.usage_details", '{"input":1,"output":2}')])
        self.assertEqual(self.post_otlp(export(again))[0], 200)
        obs = self.get(f"/api/public/observations/{GEN}")[1]
        self.assertEqual(obs["name"], "llm-final")
        self.assertEqual(obs["startTime"], "2023-11-14T22:13:21.000Z")  # immutable
        self.assertEqual(obs["endTime"], "2023-11-14T22:13:24.000Z")
        self.assertEqual((obs["metadata"]["a"], obs["metadata"]["b"]), (1, 2))
        self.assertEqual((obs["input"], obs["output"]), ("q", "a"))
        self.assertEqual(obs["usageDetails"], {"input": 1, "output": 2, "total": 3})
        deliveries = self.json_request("GET", "/_test/deliveries")[1]
        self.assertEqual(deliveries[GEN], {"delivered": 2, "applied": 2})
        self.assertEqual(self.stats()["duplicates"], 1)

    def test_trace_update_from_child_resets_public(self):
        root = span(ROOT, "root", attrs=[("langfuse.trace.public", True),
                                         ("langfuse.trace.name", "t"), ("langfuse.release", "r1")])
        self.assertEqual(self.post_otlp(export(root))[0], 200)
        child = span(GEN, "child", parent=ROOT, attrs=[("session.id", "s-late")])
        self.assertEqual(self.post_otlp(export(child))[0], 200)
        trace = self.get(f"/api/public/traces/{TRACE}")[1]
        self.assertEqual((trace["name"], trace["sessionId"]), ("t", "s-late"))
        self.assertFalse(trace["public"])  # Langfuse quirk: every trace event writes public
        self.assertIsNone(trace["release"])  # ... and release/version (null unless repeated)

    def test_child_before_root_creates_trace(self):
        child = span(GEN, "child", parent=ROOT, attrs=[("gen_ai.operation.name", "execute_tool"),
                                                       ("gen_ai.tool.name", "Read")])
        self.assertEqual(self.post_otlp(export(child))[0], 200)
        trace = self.get(f"/api/public/traces/{TRACE}")[1]
        self.assertIsNone(trace["name"])  # a shallow trace until the root arrives
        obs = self.observation(trace, GEN)
        self.assertEqual((obs["type"], obs["name"]), ("TOOL", "Read"))
        self.assertEqual(self.post_otlp(export(span(ROOT, "late-root")))[0], 200)
        self.assertEqual(self.get(f"/api/public/traces/{TRACE}")[1]["name"], "late-root")

    # -- OTLP rejections --------------------------------------------------------------
    def test_otlp_validation_rejections(self):
        def with_span(**changes):
            s = span(GEN, "llm", parent=ROOT)
            for key, value in changes.items():
                if value is None:
                    s.pop(key, None)
                else:
                    s[key] = value
            return export(span(ROOT, "root"), s)

        def with_attr(value):
            return with_span(attributes=[{"key": "k", "value": value}])

        cases = {
            "uppercase traceId": with_span(traceId=TRACE.upper()),
            "short traceId": with_span(traceId="abc"),
            "zero traceId": with_span(traceId="0" * 32),
            "missing traceId": with_span(traceId=None),
            "base64 spanId": with_span(spanId="t61rcWkgMzE="),
            "zero spanId": with_span(spanId="0" * 16),
            "bad parentSpanId": with_span(parentSpanId="xyz"),
            "missing name": with_span(name=None),
            "numeric name": with_span(name=5),
            "missing start": with_span(startTimeUnixNano=None),
            "float start": with_span(startTimeUnixNano=1.5),
            "iso start": with_span(endTimeUnixNano="2024-01-01T00:00:00Z"),
            "string kind": with_span(kind="SPAN_KIND_INTERNAL"),
            "bad status": with_span(status={"code": "ERROR"}),
            "attributes object": with_span(attributes={"k": "v"}),
            "attribute without value": with_span(attributes=[{"key": "k"}]),
            "duplicate attribute": with_span(attributes=[kv("k", "a"), kv("k", "b")]),
            "two AnyValue fields": with_attr({"stringValue": "a", "intValue": "1"}),
            "empty AnyValue": with_attr({}),
            "unknown AnyValue field": with_attr({"stringvalue": "a"}),
            "intValue not decimal": with_attr({"intValue": "1.5"}),
            "intValue overflow": with_attr({"intValue": str(2**63)}),
            "doubleValue string": with_attr({"doubleValue": "abc"}),
            "boolValue string": with_attr({"boolValue": "true"}),
            "arrayValue list": with_attr({"arrayValue": [{"stringValue": "a"}]}),
            "kvlist bad entry": with_attr({"kvlistValue": {"values": [{"key": "a"}]}}),
            "bytesValue not base64": with_attr({"bytesValue": "!!!"}),
            "resourceSpans object": {"resourceSpans": {}},
            "scopeSpans object": {"resourceSpans": [{"scopeSpans": {}}]},
            "spans object": {"resourceSpans": [{"scopeSpans": [{"spans": {}}]}]},
            "body is array": [],
        }
        for label, doc in cases.items():
            with self.subTest(label):
                status, body, _ = self.post_otlp(doc)
                self.assertEqual(status, 400, body)
                self.assertIsInstance(body["message"], str)
        status, body, _ = self.post_otlp(with_span(traceId="abc"))
        self.assertIn(GEN, body["message"])  # the message names the span
        self.assertIn("traceId", body["message"])
        self.assertEqual(self.stats()["observations"], 0)  # whole requests rejected
        self.assertEqual(self.post_otlp(b"{not json")[0], 400)
        self.assertEqual(self.post_otlp({})[0], 200)  # an empty export is valid OTLP

    def test_otlp_transport_rejections(self):
        body = json.dumps(sample_export()).encode()
        status, data, _ = self.request("POST", "/api/public/otel/v1/traces", body,
                                       {**AUTH, "Content-Type": "application/x-protobuf"})
        self.assertEqual(status, 415)
        self.assertIn("message", json.loads(data))
        status, _, _ = self.request("POST", "/api/public/otel/v1/traces", body,
                                    {**AUTH, "Content-Type": "text/plain"})
        self.assertEqual(status, 400)
        status, _, _ = self.request("POST", "/api/public/otel/v1/traces", b"not gzip",
                                    {**AUTH, "Content-Type": "application/json",
                                     "Content-Encoding": "gzip"})
        self.assertEqual(status, 400)
        status, _, _ = self.post_otlp(sample_export(), headers={"x-langfuse-ingestion-version": "5"})
        self.assertEqual(status, 400)
        self.assertEqual(self.stats()["observations"], 0)

    def test_langfuse_sdk_scope_needs_matching_public_key(self):
        scope = {"name": "langfuse-sdk", "version": "3.0.0",
                 "attributes": [kv("public_key", "pk-lf-other")]}
        status, body, _ = self.post_otlp(export(span(ROOT, "r"), scope=scope))
        self.assertEqual(status, 403)
        self.assertIn("different public key", body["message"])
        scope["attributes"] = [kv("public_key", PK)]
        self.assertEqual(self.post_otlp(export(span(ROOT, "r"), scope=scope))[0], 200)
        obs = self.get(f"/api/public/observations/{ROOT}")[1]
        self.assertNotIn("attributes", obs["metadata"])  # Langfuse SDK scopes omit it

    # -- ingestion API ----------------------------------------------------------------
    def ingestion_events(self):
        ts = "2024-05-01T10:00:00.000Z"
        return [
            {"id": "ev-trace", "timestamp": ts, "type": "trace-create",
             "body": {"id": "trace-ing", "name": "ingested", "sessionId": "sess-2",
                      "userId": "bob", "metadata": {"a": {"x": 1}}, "tags": ["t1"]}},
            {"id": "ev-gen", "timestamp": ts, "type": "generation-create",
             "body": {"id": "gen-ing", "traceId": "trace-ing", "name": "llm",
                      "startTime": "2024-05-01T10:00:01+02:00", "model": "m",
                      "usageDetails": {"input": 3, "output": 4},
                      "costDetails": {"input": 0.5, "output": 0.25}}},
            {"id": "ev-upd", "timestamp": "2024-05-01T10:00:02Z", "type": "generation-update",
             "body": {"id": "gen-ing", "traceId": "trace-ing",
                      "endTime": "2024-05-01T08:00:03Z", "output": {"text": "hi"}}},
        ]

    def test_ingestion_207_and_read_back(self):
        status, body, _ = self.post_batch(self.ingestion_events())
        self.assertEqual(status, 207)
        self.assertEqual(body["errors"], [])
        self.assertEqual(sorted(s["id"] for s in body["successes"]), ["ev-gen", "ev-trace", "ev-upd"])
        self.assertTrue(all(s["status"] == 201 for s in body["successes"]))
        trace = self.get("/api/public/traces/trace-ing")[1]
        self.assertEqual((trace["name"], trace["metadata"]["a"]), ("ingested", {"x": 1}))
        gen = self.observation(trace, "gen-ing")
        self.assertEqual(gen["startTime"], "2024-05-01T08:00:01.000Z")
        self.assertEqual(gen["output"], {"text": "hi"})
        self.assertEqual(gen["costDetails"], {"input": 0.5, "output": 0.25, "total": 0.75})
        self.assertEqual(trace["totalCost"], 0.75)
        self.assertEqual(self.request_log()[-1]["event_ids"], ["ev-trace", "ev-gen", "ev-upd"])

    def test_ingestion_dedup_by_event_id(self):
        self.assertEqual(self.post_batch(self.ingestion_events())[0], 207)
        status, body, _ = self.post_batch(self.ingestion_events())
        self.assertEqual((status, len(body["successes"]), body["errors"]), (207, 3, []))
        self.assertEqual(self.stats()["duplicates"], 3)
        deliveries = self.json_request("GET", "/_test/deliveries")[1]
        self.assertEqual(deliveries["gen-ing"], {"delivered": 4, "applied": 2})

    def test_ingestion_invalid_events(self):
        ts = "2024-05-01T10:00:00Z"
        good = {"id": "ok-1", "timestamp": ts, "type": "span-create",
                "body": {"id": "span-1", "traceId": "t"}}
        invalid = [
            {"id": "naive", "timestamp": "2024-05-01T10:00:00", "type": "span-create",
             "body": {"id": "s2"}},
            {"id": "type", "timestamp": ts, "type": "trace-update", "body": {"id": "t"}},
            {"id": "noid", "timestamp": ts, "type": "span-create", "body": {"name": "x"}},
            {"id": "upd", "timestamp": ts, "type": "span-update", "body": {"id": "span-1"}},
            {"id": "neg", "timestamp": ts, "type": "generation-create",
             "body": {"id": "g", "usageDetails": {"input": -1}}},
            {"id": "lvl", "timestamp": ts, "type": "event-create",
             "body": {"id": "e", "level": "INFO"}},
            {"id": "env", "timestamp": ts, "type": "trace-create",
             "body": {"id": "t", "environment": "Prod"}},
            {"id": "envnull", "timestamp": ts, "type": "span-create",
             "body": {"id": "s3", "environment": None}},
            {"id": "tags", "timestamp": ts, "type": "trace-create",
             "body": {"id": "t", "tags": "a,b"}},
            {"id": "prompt", "timestamp": ts, "type": "generation-create",
             "body": {"id": "g", "promptName": "p"}},
        ]
        status, body, _ = self.post_batch([good] + invalid)
        self.assertEqual(status, 207)
        self.assertEqual([s["id"] for s in body["successes"]], ["ok-1"])
        self.assertEqual(sorted(e["id"] for e in body["errors"]), sorted(e["id"] for e in invalid))
        for error in body["errors"]:
            self.assertEqual((error["status"], error["message"]), (400, "Invalid request data"))
            self.assertTrue(error["error"])
        self.assertEqual(self.get("/api/public/observations/span-1")[0], 200)
        # An observation does not create its trace row in the ingestion API.
        self.assertEqual(self.get("/api/public/traces/t")[0], 404)
        for bad_body in ({"events": []}, [], {"batch": {}}):
            status, _, _ = self.json_request("POST", "/api/public/ingestion", bad_body,
                                             {**AUTH, "Content-Type": "application/json"})
            self.assertEqual(status, 400)

    def test_reject_events_mode(self):
        self.set_mode(mode="reject_events", ids=["ev-gen"])
        status, body, _ = self.post_batch(self.ingestion_events())
        self.assertEqual(status, 207)
        self.assertEqual([e["id"] for e in body["errors"]], ["ev-gen"])
        self.assertEqual(body["errors"][0]["status"], 400)
        self.assertEqual(len(body["successes"]), 2)
        self.assertEqual(self.get("/api/public/traces/trace-ing")[0], 200)
        self.assertEqual(self.post_otlp(sample_export())[0], 200)  # OTLP stores normally
        self.set_mode(mode="ok")
        status, body, _ = self.post_batch(self.ingestion_events())
        self.assertEqual(body["errors"], [])  # the rejected event can be resent

    # -- failure injection ------------------------------------------------------------
    def test_status_mode_with_count(self):
        self.set_mode(mode="status", status=500, count=2)
        self.assertEqual(self.post_otlp(sample_export())[0], 500)
        self.assertEqual(self.post_batch(self.ingestion_events())[0], 500)
        self.assertEqual(self.post_otlp(sample_export())[0], 200)
        self.assertEqual([r["status"] for r in self.request_log()], [500, 500, 200])
        self.assertEqual(self.stats()["traces"], 1)  # nothing stored while failing

    def test_status_mode_retry_after_and_body(self):
        self.set_mode(mode="status", status=429, retry_after="2")
        status, _, resp = self.post_otlp(sample_export())
        self.assertEqual((status, resp.getheader("Retry-After")), (429, "2"))
        self.set_mode(mode="status", status=503, retry_after="7", body="overloaded", count=1)
        status, data, resp = self.request("POST", "/api/public/ingestion", b'{"batch":[]}',
                                          {**AUTH, "Content-Type": "application/json"})
        self.assertEqual((status, data, resp.getheader("Retry-After")), (503, b"overloaded", "7"))
        for code in (401, 403, 502):
            self.set_mode(mode="status", status=code, retry_after="3")
            status, _, resp = self.post_otlp(sample_export())
            self.assertEqual((status, resp.getheader("Retry-After")), (code, None))
        self.assertEqual(self.stats()["traces"], 0)

    def test_max_body_mode(self):
        doc = export(span(ROOT, "r", attrs=[("pad", "x" * 2000)]))
        plain, packed = len(json.dumps(doc)), len(gzip.compress(json.dumps(doc).encode()))
        self.set_mode(mode="max_body", bytes=(plain + packed) // 2)
        self.assertEqual(self.post_otlp(doc)[0], 413)
        self.assertEqual(self.post_otlp(doc, gzipped=True)[0], 200)  # the wire size counts
        self.assertEqual(self.request_log()[0]["status"], 413)
        self.assertEqual(self.stats()["observations"], 1)

    def test_slow_mode(self):
        self.set_mode(mode="slow", delay_ms=300)
        started = time.monotonic()
        self.assertEqual(self.post_otlp(sample_export())[0], 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.3)

    def test_blackhole_then_ok(self):
        self.set_mode(mode="blackhole")
        with self.assertRaises((socket.timeout, TimeoutError)):
            self.request("POST", "/api/public/otel/v1/traces", json.dumps(sample_export()).encode(),
                         {**AUTH, "Content-Type": "application/json"}, timeout=0.5)
        log = self.request_log()
        self.assertEqual((log[-1]["status"], log[-1]["span_ids"]), (None, [ROOT, GEN, TOOL]))
        self.set_mode(mode="ok")
        self.assertEqual(self.post_otlp(sample_export())[0], 200)
        self.assertEqual(self.stats()["observations"], 3)

    def test_mode_validation(self):
        for cfg in ({"mode": "nope"}, {"mode": "status"}, {"mode": "max_body"},
                    {"mode": "slow", "delay_ms": -1}, {"mode": "reject_events", "ids": "x"}):
            self.assertEqual(self.json_request("POST", "/_test/mode", cfg)[0], 400, cfg)

    # -- read API ---------------------------------------------------------------------
    def test_sessions_and_listing(self):
        other = "1af7651916cd43dd8448eb211c80319c"
        self.assertEqual(self.post_otlp(sample_export())[0], 200)
        second = span("e7ad6b7169203331", "second", 10_000, 11_000, trace_id=other,
                      attrs=[("session.id", "sess-1"), ("langfuse.environment", "staging")])
        self.assertEqual(self.post_otlp(export(second))[0], 200)
        status, listing = self.get("/api/public/traces?sessionId=sess-1&page=1&limit=1")
        self.assertEqual(status, 200)
        self.assertEqual(listing["meta"], {"page": 1, "limit": 1, "totalItems": 2, "totalPages": 2})
        self.assertEqual(listing["data"][0]["id"], other)  # newest first
        self.assertEqual(sorted(listing["data"][0]["observations"]), ["e7ad6b7169203331"])
        status, session = self.get("/api/public/sessions/sess-1")
        self.assertEqual(status, 200)
        self.assertEqual([t["id"] for t in session["traces"]], [TRACE, other])
        self.assertEqual(session["environment"], "staging")
        self.assertEqual(self.get("/api/public/sessions/nope")[0], 404)
        self.assertEqual(self.get("/api/public/traces?userId=alice")[1]["meta"]["totalItems"], 1)
        self.assertEqual(self.get("/api/public/traces?limit=0")[0], 400)

    def test_observations_endpoints(self):
        self.assertEqual(self.post_otlp(sample_export())[0], 200)
        status, page = self.get(f"/api/public/observations?traceId={TRACE}&type=GENERATION")
        self.assertEqual(status, 200)
        self.assertEqual([o["id"] for o in page["data"]], [GEN])
        self.assertEqual(page["meta"]["totalItems"], 1)
        self.assertEqual(self.get(f"/api/public/observations/{TOOL}")[1]["level"], "ERROR")
        self.assertEqual(self.get("/api/public/observations/nope")[0], 404)
        self.assertEqual(self.get("/api/public/traces/nope")[0], 404)

    # -- test endpoints ---------------------------------------------------------------
    def test_raw_log_for_secret_scanning(self):
        doc = export(span(ROOT, "r", attrs=[("marker", "s3cr3t-marker")]))
        self.assertEqual(self.post_otlp(doc, gzipped=True, headers={"X-Probe": "probe-1"})[0], 200)
        status, raw, resp = self.request("GET", "/_test/raw")
        self.assertEqual((status, resp.getheader("Content-Type")), (200, "application/octet-stream"))
        self.assertIn(b"POST /api/public/otel/v1/traces", raw)
        self.assertIn(b"X-Probe: probe-1", raw)
        self.assertIn(b"s3cr3t-marker", raw)  # the body is stored decompressed
        self.assertNotIn(SK.encode(), raw)  # only base64 credentials, never the raw secret

    def test_reset_clears_everything(self):
        self.set_mode(mode="slow", delay_ms=1)
        self.assertEqual(self.post_otlp(sample_export())[0], 200)
        self.request("POST", "/_test/reset")
        self.assertEqual(self.stats(), {"requests": 0, "spans_received": 0, "events_received": 0,
                                        "observations": 0, "traces": 0, "duplicates": 0,
                                        "dropped_observations": 0})
        self.assertEqual(self.json_request("GET", "/_test/mode")[1], {"mode": "ok"})
        self.assertEqual(self.request("GET", "/_test/raw")[1], b"")


V4_HEADER = {"x-langfuse-ingestion-version": "4"}
TRACE2 = "1af7651916cd43dd8448eb211c80319c"
# Attributes a v4-ready exporter puts on every span of a session.
TRACE_ATTRS = (("session.id", "sess-4"), ("user.id", "alice"),
               ("langfuse.trace.name", "fix the build"), ("langfuse.trace.tags", ["ci", "nightly"]),
               ("langfuse.trace.metadata.repo", '"ccrunner"'), ("langfuse.release", "r42"),
               ("langfuse.environment", "staging"))
CORE_KEYS = {"id", "traceId", "startTime", "endTime", "projectId", "parentObservationId", "type"}
ALWAYS_KEYS = {"latency", "timeToFirstToken", "modelId", "inputPrice", "outputPrice", "totalPrice"}
BASIC_KEYS = {"name", "level", "statusMessage", "version", "environment", "userId", "sessionId",
              "isRootObservation", "bookmarked", "public"}
USAGE_KEYS = {"usageDetails", "inputUsage", "outputUsage", "totalUsage", "costDetails",
              "inputCost", "outputCost", "totalCost", "usagePricingTierId",
              "usagePricingTierName"}


def v4_session_export(trace_id=TRACE):
    """A session as a v4-ready exporter sends it: trace attributes on every span, the
    session's input/output on the root observation, usage and cost with the model."""
    root = span(ROOT, "agentic-session", 0, 5000, trace_id=trace_id, attrs=[
        *TRACE_ATTRS, ("langfuse.observation.input", '{"prompt":"hi"}'),
        ("langfuse.observation.output", '"done"'),
        ("langfuse.trace.input", '{"prompt":"hi"}'), ("langfuse.trace.output", '"done"')])
    gen = span(GEN, "model-call", 1000, 3000, parent=ROOT, trace_id=trace_id, attrs=[
        *TRACE_ATTRS, ("langfuse.observation.type", "generation"),
        ("langfuse.observation.model.name", "claude-sonnet-4-5"),
        ("langfuse.observation.usage_details", '{"input":100,"output":20}'),
        ("langfuse.observation.cost_details", '{"input":0.003,"output":0.002,"total":0.005}'),
        ("langfuse.observation.completion_start_time", "2023-11-14T22:13:21.500Z"),
        ("langfuse.observation.input", '[{"role":"user","content":"hi"}]'),
        ("langfuse.observation.metadata.request_id", "req_1")])
    tool = span(TOOL, "Bash", 3000, 4000, parent=ROOT, trace_id=trace_id, attrs=[
        *TRACE_ATTRS, ("langfuse.observation.type", "tool"),
        ("langfuse.observation.output", "exit 1")],
        status={"code": 2, "message": "command failed"})
    return export(root, gen, tool)


class V4ReceiverTest(ReceiverCase):
    """The v4 server line (events_only): one immutable row per exported span, the v2
    observations API, the legacy ingestion and v1 reads switched off."""
    VERSION = 4

    def post_v4(self, doc, headers=None, **kw):
        return self.post_otlp(doc, headers={**V4_HEADER, **(headers or {})}, **kw)

    def v2(self, expect=200, **query):
        status, body = self.get("/api/public/v2/observations?" + urllib.parse.urlencode(query))
        self.assertEqual(status, expect, body)
        return body

    def rows(self, **query):
        """Every row the query matches, following the cursor (bounded)."""
        rows, cursor = [], None
        for _ in range(100):
            page = self.v2(**query, **({"cursor": cursor} if cursor else {}))
            rows.extend(page["data"])
            cursor = page["meta"].get("cursor")
            if not cursor:
                return rows
        self.fail("the cursor never ran out")

    # -- server line ----------------------------------------------------------------
    def test_version_default_and_detection(self):
        self.assertEqual(self.json_request("GET", "/_test/version")[1], {"version": 4})
        self.assertEqual(self.json_request("GET", "/api/public/health")[1]["version"], "4.x-test")
        self.assertEqual(lf_read.server_line(self.receiver.url, PK, SK), 4)
        default = Receiver().start()  # no --langfuse-version: v4
        v3 = Receiver(3).start()
        try:
            for receiver, version in ((default, 4), (v3, 3)):
                conn = http.client.HTTPConnection("127.0.0.1", receiver.port,
                                                  timeout=HTTP_TIMEOUT_S)
                conn.request("GET", "/_test/version")
                self.assertEqual(json.loads(conn.getresponse().read()), {"version": version})
                conn.close()
                self.assertEqual(lf_read.server_line(receiver.url, PK, SK), version)
            conn = http.client.HTTPConnection("127.0.0.1", v3.port, timeout=HTTP_TIMEOUT_S)
            conn.request("GET", "/api/public/v2/observations", headers=AUTH)
            resp = conn.getresponse()
            self.assertEqual((resp.status, json.loads(resp.read())["error"]),
                             (404, "LangfuseNotFoundError"))
            conn.close()
        finally:
            default.stop()
            v3.stop()

    # -- rule 1: every export is a row ------------------------------------------------
    def test_every_export_is_its_own_row(self):
        gen = span(GEN, "model-call", 1000, 2000, parent=ROOT, attrs=[
            ("langfuse.observation.type", "generation"),
            ("langfuse.observation.model.name", "claude-sonnet-4-5"),
            ("langfuse.observation.usage_details", '{"input":100,"output":20}'),
            ("langfuse.observation.cost_details", '{"total":0.005}')])
        self.assertEqual(self.post_v4(export(span(ROOT, "root", 0, 5000), gen))[0], 200)
        self.assertEqual(self.post_v4(export(gen, gen))[0], 200)  # twice more, one request
        copies = self.rows(traceId=TRACE, name="model-call", fields="core,usage")
        self.assertEqual([c["id"] for c in copies], [GEN] * 3)
        self.assertEqual(sum(c["totalUsage"] for c in copies), 3 * 120)
        trace = lf_read.read_trace(self.receiver.url, PK, SK, trace_id=TRACE)
        self.assertAlmostEqual(trace["totalCost"], 3 * 0.005)
        self.assertEqual(len(trace["observations"]), 4)
        stats = self.stats()
        self.assertEqual((stats["rows"], stats["distinct_span_ids"], stats["max_rows_per_span_id"],
                          stats["duplicates"], stats["traces"]), (4, 2, 3, 2, 1))
        self.assertEqual(self.json_request("GET", "/_test/deliveries")[1][GEN],
                         {"delivered": 3, "applied": 3})

    def test_later_export_does_not_change_an_earlier_row(self):
        first = span(GEN, "llm", 1000, 2000, parent=ROOT, attrs=[
            ("langfuse.observation.metadata.a", "1"), ("langfuse.observation.input", "q")])
        again = span(GEN, "llm-final", 1000, 4000, parent=ROOT, attrs=[
            ("langfuse.observation.metadata.b", "2"), ("langfuse.observation.output", "a")])
        self.assertEqual(self.post_v4(export(first))[0], 200)
        self.assertEqual(self.post_v4(export(again))[0], 200)
        rows = {r["name"]: r for r in self.rows(traceId=TRACE, fields="core,basic,io,metadata")}
        self.assertEqual(set(rows), {"llm", "llm-final"})
        self.assertEqual((rows["llm"]["input"], rows["llm"]["output"]), ("q", None))
        self.assertEqual((rows["llm-final"]["input"], rows["llm-final"]["output"]), (None, "a"))
        self.assertNotIn("b", rows["llm"]["metadata"])
        self.assertEqual(rows["llm-final"]["endTime"], "2023-11-14T22:13:24.000Z")

    # -- rules 2 and 3: trace input/output from the root, attributes per row ------------
    def test_trace_input_output_come_from_the_root_observation(self):
        root = span(ROOT, "agentic-session", 0, 5000, attrs=[
            ("langfuse.trace.input", '{"prompt":"trace-level"}'),
            ("langfuse.trace.output", '"trace-level"'),
            ("langfuse.observation.input", '{"prompt":"root"}'),
            ("langfuse.observation.output", '"root done"')])
        child = span(GEN, "child", 1000, 2000, parent=ROOT, attrs=[
            ("langfuse.trace.input", '{"prompt":"from a child"}')])
        self.assertEqual(self.post_v4(export(root, child))[0], 200)
        trace = lf_read.read_trace(self.receiver.url, PK, SK, trace_id=TRACE)
        self.assertEqual((trace["input"], trace["output"]), ({"prompt": "root"}, "root done"))
        rows = {r["id"]: r for r in self.rows(traceId=TRACE, fields="core,io")}
        self.assertEqual(rows[ROOT]["input"], '{"prompt":"root"}')  # v2 io: raw strings
        self.assertIsNone(rows[GEN]["input"])  # langfuse.trace.input is read by nothing

        self.request("POST", "/_test/reset")
        only_trace_level = span(ROOT, "agentic-session", attrs=[
            ("langfuse.trace.input", '{"prompt":"x"}'), ("langfuse.trace.output", '"y"')])
        self.assertEqual(self.post_v4(export(only_trace_level))[0], 200)
        trace = lf_read.read_trace(self.receiver.url, PK, SK, trace_id=TRACE)
        self.assertEqual((trace["input"], trace["output"]), (None, None))

    def test_trace_attributes_belong_to_the_row_that_carried_them(self):
        root = span(ROOT, "agentic-session", 0, 5000, attrs=TRACE_ATTRS)
        child = span(GEN, "child", 1000, 2000, parent=ROOT)  # no trace attributes
        self.assertEqual(self.post_v4(export(root, child))[0], 200)
        fields = "core,basic,metadata,trace_context"
        rows = {r["id"]: r for r in self.rows(traceId=TRACE, fields=fields)}
        self.assertEqual((rows[ROOT]["sessionId"], rows[ROOT]["userId"]), ("sess-4", "alice"))
        self.assertEqual((rows[ROOT]["tags"], rows[ROOT]["release"], rows[ROOT]["traceName"]),
                         (["ci", "nightly"], "r42", "fix the build"))
        self.assertEqual((rows[ROOT]["environment"], rows[ROOT]["metadata"]["repo"]),
                         ("staging", "ccrunner"))
        self.assertEqual((rows[GEN]["sessionId"], rows[GEN]["userId"], rows[GEN]["release"]),
                         ("", "", ""))  # not nullable: absent reads as ""
        self.assertEqual((rows[GEN]["tags"], rows[GEN]["traceName"]), ([], None))
        self.assertEqual(rows[GEN]["environment"], "default")
        self.assertNotIn("repo", rows[GEN]["metadata"])
        self.assertEqual([r["id"] for r in self.rows(sessionId="sess-4")], [ROOT])
        self.assertEqual([r["id"] for r in self.rows(userId="alice")], [ROOT])
        self.assertEqual(self.rows(sessionId="nope"), [])

    # -- rule 4: a model without usage gets guessed numbers ---------------------------
    def test_model_without_usage_gets_tokens_counted_and_priced(self):
        cases = {
            # explicitly a span, Langfuse's model attribute: counted and priced anyway
            "a1": ([("langfuse.observation.type", "span"),
                    ("langfuse.observation.model.name", "claude-sonnet-4-5")], "SPAN"),
            # no type: the GenAI request model alone makes it a generation
            "a2": ([("gen_ai.request.model", "claude-opus-5-5")], "GENERATION"),
        }
        spans = [span(ROOT, "root")]
        for i, (name, (attrs, _type)) in enumerate(cases.items()):
            spans.append(span(f"e{i}ad6b7169203331", name, parent=ROOT, attrs=[
                *attrs, ("langfuse.observation.input", "x" * 40),
                ("langfuse.observation.output", "y" * 8)]))
        self.assertEqual(self.post_v4(export(*spans))[0], 200)
        rows = {r["name"]: r for r in self.rows(traceId=TRACE, fields="core,basic,model,usage")}
        for name, (_attrs, obs_type) in cases.items():
            with self.subTest(name):
                row = rows[name]
                self.assertEqual(row["type"], obs_type)
                # ceil(40 / 4) input and ceil(8 / 4) output tokens at $3 / $15 per million
                self.assertEqual(row["usageDetails"], {"input": 10, "output": 2, "total": 12})
                self.assertAlmostEqual(row["costDetails"]["input"], 10 * 3e-6)
                self.assertAlmostEqual(row["costDetails"]["output"], 2 * 15e-6)
                self.assertAlmostEqual(row["totalCost"], 10 * 3e-6 + 2 * 15e-6)
                self.assertEqual(row["usagePricingTierName"], "Standard")
                self.assertTrue(row["internalModelId"])
                self.assertEqual((row["inputPrice"], row["outputPrice"]), ("0.000003", "0.000015"))
        self.assertIsNone(rows["root"]["modelId"])

    def test_unknown_model_and_given_usage_and_cost(self):
        def gen(span_id, name, *attrs):
            return span(span_id, name, parent=ROOT, attrs=[
                ("langfuse.observation.type", "generation"),
                ("langfuse.observation.input", "x" * 40), *attrs])
        doc = export(
            span(ROOT, "root"),
            gen("a1ad6b7169203331", "unknown", ("langfuse.observation.model.name", "gpt-nope")),
            gen("a2ad6b7169203331", "usage-only",
                ("langfuse.observation.model.name", "claude-sonnet-4-5"),
                ("langfuse.observation.usage_details", '{"input":100,"output":10}')),
            gen("a3ad6b7169203331", "given",
                ("langfuse.observation.model.name", "claude-sonnet-4-5"),
                ("langfuse.observation.usage_details", '{"input":7,"output":3}'),
                ("langfuse.observation.cost_details", '{"input":0.5,"output":0.25}')),
            gen("a4ad6b7169203331", "cost-only",
                ("langfuse.observation.model.name", "claude-sonnet-4-5"),
                ("langfuse.observation.cost_details", '{"total":0.125}')))
        self.assertEqual(self.post_v4(doc)[0], 200)
        rows = {r["name"]: r for r in self.rows(traceId=TRACE, fields="core,basic,model,usage")}
        unknown = rows["unknown"]
        self.assertEqual((unknown["model"], unknown["usageDetails"], unknown["costDetails"],
                          unknown["totalCost"]), ("gpt-nope", {}, {}, 0))
        usage_only = rows["usage-only"]  # usage as given, priced from the model table
        self.assertEqual(usage_only["usageDetails"], {"input": 100, "output": 10, "total": 110})
        self.assertAlmostEqual(usage_only["totalCost"], 100 * 3e-6 + 10 * 15e-6)
        given = rows["given"]  # nothing re-priced, the total derived from input + output
        self.assertEqual(given["usageDetails"], {"input": 7, "output": 3, "total": 10})
        self.assertEqual(given["costDetails"], {"input": 0.5, "output": 0.25, "total": 0.75})
        cost_only = rows["cost-only"]  # given cost: no tokens are counted
        self.assertEqual((cost_only["usageDetails"], cost_only["costDetails"]),
                         ({}, {"total": 0.125}))

    # -- rule 5: the legacy ingestion API refuses observations per event -------------
    def test_legacy_ingestion_refused_per_event(self):
        ts = "2024-05-01T10:00:00.000Z"
        refused = [("trace-create", {"id": "t1", "name": "x"}),
                   ("span-create", {"id": "s1", "traceId": "t1"}),
                   ("span-update", {"id": "s1", "traceId": "t1"}),
                   ("generation-create", {"id": "g1", "traceId": "t1", "model": "m"}),
                   ("agent-create", {"id": "a1", "traceId": "t1"}),
                   ("tool-create", {"id": "o1", "traceId": "t1"}),
                   ("event-create", {"id": "e1", "traceId": "t1"})]
        batch = [{"id": f"ev-{kind}", "timestamp": ts, "type": kind, "body": body}
                 for kind, body in refused]
        batch += [{"id": "ev-score", "timestamp": ts, "type": "score-create",
                   "body": {"name": "quality", "value": 1, "traceId": "t1"}},
                  {"id": "ev-bad-score", "timestamp": ts, "type": "score-create",
                   "body": {"value": 1}},
                  {"id": "ev-log", "timestamp": ts, "type": "sdk-log", "body": {"log": "hi"}}]
        status, body, _ = self.post_batch(batch)
        self.assertEqual(status, 207)
        self.assertEqual(body["successes"], [{"id": "ev-score", "status": 201},
                                             {"id": "ev-log", "status": 201}])
        # The processed events' errors first, then one refusal per refused event, in order.
        self.assertEqual([e["id"] for e in body["errors"]],
                         ["ev-bad-score"] + [f"ev-{kind}" for kind, _ in refused])
        for error in body["errors"][1:]:
            self.assertEqual((error["status"], error["message"]), (400, "Event type not accepted"))
            self.assertIn("is not accepted by /api/public/ingestion when "
                          "LANGFUSE_MIGRATION_V4_WRITE_MODE is events_only", error["error"])
        self.assertTrue(body["errors"][1]["error"].startswith('Event type "trace-create"'))
        stats = self.stats()
        self.assertEqual((stats["rows"], stats["refused_events"], stats["events_received"]),
                         (0, len(refused), len(batch)))
        self.set_mode(mode="reject_events", ids=["ev-score"])  # failure injection still works
        status, body, _ = self.post_batch(batch[-3:-2])
        self.assertEqual((status, body["successes"], [e["id"] for e in body["errors"]]),
                         (207, [], ["ev-score"]))

    # -- rule 6: the v1 reads are gone ------------------------------------------------------
    def test_v1_reads_answer_404(self):
        self.assertEqual(self.post_v4(sample_export())[0], 200)
        for method, path in (("GET", "/api/public/traces"), ("GET", f"/api/public/traces/{TRACE}"),
                             ("GET", "/api/public/traces?sessionId=sess-1"),
                             ("GET", "/api/public/observations"),
                             ("GET", f"/api/public/observations/{GEN}"),
                             ("GET", "/api/public/sessions"),
                             ("GET", "/api/public/sessions/sess-1"),
                             ("GET", "/api/public/scores"), ("POST", "/api/public/traces"),
                             ("POST", "/api/public/generations"), ("PATCH", "/api/public/spans")):
            for headers in (AUTH, {}):  # answered before the credentials are looked at
                with self.subTest(method=method, path=path, auth=bool(headers)):
                    status, body, _ = self.json_request(method, path, {} if method != "GET"
                                                        else None, headers)
                    self.assertEqual(status, 404)
                    self.assertIn("events_only", body["message"])
        self.assertEqual(self.json_request("GET", "/api/public/v2/observations")[0], 401)

    # -- rule 7: GET /api/public/v2/observations --------------------------------------------
    def test_v2_field_groups(self):
        self.assertEqual(self.post_v4(v4_session_export())[0], 200)
        default = self.v2(traceId=TRACE)
        self.assertEqual(default["meta"], {})
        self.assertEqual({tuple(sorted(item)) for item in default["data"]},
                         {tuple(sorted(CORE_KEYS | BASIC_KEYS | ALWAYS_KEYS))})
        usage = self.v2(traceId=TRACE, fields="usage")["data"]
        self.assertEqual(set(usage[0]), CORE_KEYS | USAGE_KEYS | ALWAYS_KEYS)
        self.assertEqual(set(self.v2(traceId=TRACE, fields="bogus")["data"][0]),
                         CORE_KEYS | ALWAYS_KEYS)  # unknown groups are dropped
        every = {r["id"]: r for r in self.rows(traceId=TRACE, fields=",".join((
            "core", "basic", "time", "io", "metadata", "model", "usage", "prompt", "metrics",
            "trace_context")))}
        gen, tool, root = every[GEN], every[TOOL], every[ROOT]
        self.assertEqual((gen["type"], gen["parentObservationId"], gen["model"]),
                         ("GENERATION", ROOT, "claude-sonnet-4-5"))
        self.assertEqual((gen["usageDetails"], gen["costDetails"], gen["totalCost"]),
                         ({"input": 100, "output": 20, "total": 120},
                          {"input": 0.003, "output": 0.002, "total": 0.005}, 0.005))
        self.assertEqual((gen["inputUsage"], gen["outputUsage"], gen["totalUsage"]), (100, 20, 120))
        self.assertEqual((gen["completionStartTime"], gen["timeToFirstToken"], gen["latency"]),
                         ("2023-11-14T22:13:21.500Z", 0.5, 2.0))
        self.assertEqual(gen["input"], '[{"role":"user","content":"hi"}]')
        self.assertEqual((gen["metadata"]["request_id"], gen["metadata"]["repo"]),
                         ("req_1", "ccrunner"))
        self.assertEqual(gen["metadata"]["resourceAttributes.service.name"], "ccrunner")
        self.assertEqual((tool["level"], tool["statusMessage"]), ("ERROR", "command failed"))
        self.assertEqual((root["isRootObservation"], root["parentObservationId"]), (True, None))
        self.assertEqual((root["traceName"], root["tags"], root["release"]),
                         ("fix the build", ["ci", "nightly"], "r42"))
        for field in ("createdAt", "updatedAt"):
            self.assertRegex(root[field], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def test_v2_filters_and_validation(self):
        self.assertEqual(self.post_v4(v4_session_export())[0], 200)
        self.assertEqual(self.post_v4(v4_session_export(TRACE2))[0], 200)

        def ids(**query):
            return sorted((r["traceId"][:1], r["id"]) for r in self.rows(**query))
        self.assertEqual(ids(traceId=TRACE2), [("1", ROOT), ("1", GEN), ("1", TOOL)])
        self.assertEqual(ids(type="TOOL"), [("0", TOOL), ("1", TOOL)])
        self.assertEqual(ids(level="ERROR", traceId=TRACE), [("0", TOOL)])
        self.assertEqual(ids(name="model-call", traceId=TRACE), [("0", GEN)])
        self.assertEqual(ids(parentObservationId=ROOT, traceId=TRACE), [("0", GEN), ("0", TOOL)])
        self.assertEqual(ids(isRootObservation="true"), [("0", ROOT), ("1", ROOT)])
        self.assertEqual(len(ids(isRootObservation="false")), 4)
        self.assertEqual(ids(traceId=TRACE, fromStartTime="2023-11-14T22:13:21.000Z",
                             toStartTime="2023-11-14T22:13:23.000Z"), [("0", GEN)])
        self.assertEqual(ids(environment="staging", traceId=TRACE2), ids(traceId=TRACE2))
        self.assertEqual(ids(environment="prod"), [])
        self.assertEqual(self.v2(limit=0), {"data": [], "meta": {}})
        for bad in ({"limit": "1001"}, {"limit": "-1"}, {"limit": "x"}, {"type": "span"},
                    {"level": "INFO"}, {"isRootObservation": "yes"}, {"fromStartTime": "today"},
                    {"cursor": "!!!"}, {"cursor": base64.b64encode(b'{"x":1}').decode()},
                    {"parseIoAsJson": "true"}):
            with self.subTest(bad):
                self.assertIn("message", self.v2(expect=400, **bad))

    def test_v2_paging(self):
        spans = [span(ROOT, "root", 0, 9000)] + [
            span(f"{i}0ad6b7169203331", f"c{i}", i * 1000, i * 1000 + 500, parent=ROOT)
            for i in range(1, 7)]
        self.assertEqual(self.post_v4(export(*spans))[0], 200)
        pages, cursor = [], None
        for _ in range(10):
            page = self.v2(limit=3, **({"cursor": cursor} if cursor else {}))
            pages.append([r["name"] for r in page["data"]])
            cursor = page["meta"].get("cursor")
            if not cursor:
                break
        # newest first, three a page, an empty meta on the last page
        self.assertEqual(pages, [["c6", "c5", "c4"], ["c3", "c2", "c1"], ["root"]])
        self.assertEqual(self.v2(limit=7)["meta"], {})
        self.assertIn("cursor", self.v2(limit=6)["meta"])

        # Rows are ordered by (start, trace, span id) only: two copies of one span that
        # fall on either side of a page edge lose the second, as on the real server.
        self.request("POST", "/_test/reset")
        twice, once = span(GEN, "twice", 2000, 2500), span(TOOL, "once", 1000, 1500)
        self.assertEqual(self.post_v4(export(twice, twice, once))[0], 200)
        self.assertEqual([r["name"] for r in self.rows(limit=3)], ["twice", "twice", "once"])
        self.assertEqual([r["name"] for r in self.rows(limit=1)], ["twice", "once"])

    # -- rule 8: requests without the v4 header are delayed ---------------------------------
    def test_requests_without_ingestion_version_4_are_delayed(self):
        self.assertEqual(self.post_otlp(v4_session_export())[0], 200)  # no header
        self.assertEqual(self.post_otlp(v4_session_export(TRACE2),
                                        headers={"x-langfuse-ingestion-version": "3"})[0], 200)
        self.assertEqual(self.v2(), {"data": [], "meta": {}})  # stored, not yet visible
        stats = self.stats()
        self.assertEqual((stats["rows"], stats["delayed_rows"], stats["delayed_requests"],
                          stats["observations"], stats["traces"]), (6, 6, 2, 0, 0))
        self.assertEqual([r["delayed"] for r in self.request_log()], [True, True])
        with self.assertRaises(AssertionError):
            lf_read.read_trace(self.receiver.url, PK, SK, session_id="sess-4", timeout=0.3)

        other = "2af7651916cd43dd8448eb211c80319c"
        self.assertEqual(self.post_v4(v4_session_export(other))[0], 200)
        self.assertEqual({r["traceId"] for r in self.rows()}, {other})
        self.assertEqual(self.json_request("POST", "/_test/release-delayed")[1], {"released": 6})
        self.assertEqual(len(self.rows()), 9)
        stats = self.stats()
        self.assertEqual((stats["delayed_rows"], stats["traces"], stats["delayed_requests"]),
                         (0, 3, 2))
        for bad in ("5", "four"):
            status, _, _ = self.post_otlp(sample_export(),
                                          headers={"x-langfuse-ingestion-version": bad})
            self.assertEqual(status, 400, bad)

    # -- rule 9: the test endpoints ---------------------------------------------------------
    def test_failure_injection_and_test_endpoints(self):
        self.set_mode(mode="status", status=503, retry_after="2", count=1)
        status, _, resp = self.post_v4(sample_export())
        self.assertEqual((status, resp.getheader("Retry-After")), (503, "2"))
        self.assertEqual(self.stats()["rows"], 0)  # nothing stored while failing
        self.assertEqual(self.post_v4(sample_export(), headers={"X-Probe": "probe-1"})[0], 200)
        self.set_mode(mode="slow", delay_ms=200)
        started = time.monotonic()
        self.assertEqual(self.post_v4(sample_export())[0], 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.2)
        self.set_mode(mode="max_body", bytes=10)
        self.assertEqual(self.post_v4(sample_export())[0], 413)
        self.set_mode(mode="blackhole")
        with self.assertRaises((socket.timeout, TimeoutError)):
            self.request("POST", "/api/public/otel/v1/traces", json.dumps(sample_export()).encode(),
                         {**AUTH, **V4_HEADER, "Content-Type": "application/json"}, timeout=0.5)
        self.set_mode(mode="ok")
        self.assertEqual([r["status"] for r in self.request_log()], [503, 200, 200, 413, None])
        raw = self.request("GET", "/_test/raw")[1]
        self.assertIn(b"x-langfuse-ingestion-version: 4", raw)
        self.assertIn(b"X-Probe: probe-1", raw)
        self.assertEqual(self.stats()["rows"], 6)
        self.request("POST", "/_test/reset")
        self.assertEqual(self.stats(), {
            "requests": 0, "spans_received": 0, "events_received": 0, "traces": 0,
            "observations": 0, "rows": 0, "delayed_rows": 0, "distinct_span_ids": 0,
            "max_rows_per_span_id": 0, "duplicates": 0, "delayed_requests": 0,
            "refused_events": 0, "dropped_observations": 0})
        self.assertEqual(self.request("GET", "/_test/raw")[1], b"")

    def test_raw_spans_parses_the_raw_log(self):
        body = v4_session_export()
        self.assertEqual(self.post_v4(body, gzipped=True)[0], 200)
        self.assertEqual(self.post_batch([])[0], 207)  # not OTLP: skipped
        spans = lf_read.raw_spans(self.request("GET", "/_test/raw")[1])
        self.assertEqual([s["spanId"] for _, s in spans], [ROOT, GEN, TOOL])
        headers, gen = spans[1]
        self.assertEqual((headers["x-langfuse-ingestion-version"], headers["content-encoding"]),
                         ("4", "gzip"))
        self.assertEqual(gen["attributes"]["langfuse.trace.tags"], ["ci", "nightly"])
        self.assertEqual(gen["attributes"]["session.id"], "sess-4")
        self.assertEqual((gen["parentSpanId"], gen["resource"]["service.name"],
                          gen["scope"]["name"]), (ROOT, "ccrunner", "ccrunner"))


class LfReadTest(unittest.TestCase):
    """lf_read.read_trace gives the same view of a well-exported session on both lines."""

    @classmethod
    def setUpClass(cls):
        cls.receivers = {3: Receiver(3).start()}
        try:
            cls.receivers[4] = Receiver(4).start()
        except BaseException:
            cls.receivers[3].stop()
            raise

    @classmethod
    def tearDownClass(cls):
        for receiver in cls.receivers.values():
            receiver.stop()

    def setUp(self):
        for receiver in self.receivers.values():
            conn = http.client.HTTPConnection("127.0.0.1", receiver.port,
                                              timeout=HTTP_TIMEOUT_S)
            conn.request("POST", "/_test/reset")
            self.assertEqual(conn.getresponse().status, 200)
            conn.close()

    def post(self, version, doc):
        conn = http.client.HTTPConnection("127.0.0.1", self.receivers[version].port,
                                          timeout=HTTP_TIMEOUT_S)
        try:
            conn.request("POST", "/api/public/otel/v1/traces", body=json.dumps(doc).encode(),
                         headers={**AUTH, **V4_HEADER, "Content-Type": "application/json"})
            self.assertEqual(conn.getresponse().status, 200)
        finally:
            conn.close()

    def read(self, version, **kw):
        return lf_read.read_trace(self.receivers[version].url, PK, SK, **kw)

    def test_same_view_on_both_server_lines(self):
        views = {}
        for version in (3, 4):
            self.post(version, v4_session_export())
            views[version] = self.read(version, session_id="sess-4")
        for version, t in views.items():
            with self.subTest(version=version):
                self.assertEqual(t["langfuseVersion"], version)
                self.assertEqual((t["id"], t["name"], t["sessionId"], t["userId"]),
                                 (TRACE, "fix the build", "sess-4", "alice"))
                self.assertEqual((t["input"], t["output"]), ({"prompt": "hi"}, "done"))
                self.assertEqual((t["tags"], t["release"], t["environment"]),
                                 (["ci", "nightly"], "r42", "staging"))
                self.assertEqual(t["metadata"]["repo"], "ccrunner")
                self.assertAlmostEqual(t["totalCost"], 0.005)
                self.assertEqual(t["root"]["id"], ROOT)
        v3, v4 = ({o["id"]: o for o in views[v]["observations"]} for v in (3, 4))
        self.assertEqual(list(v3), list(v4))  # the same observations, in the same order
        for obs_id in v3:
            for field in ("traceId", "type", "name", "parentObservationId", "startTime", "endTime",
                          "input", "output", "level", "statusMessage", "model", "usageDetails",
                          "costDetails", "calculatedTotalCost", "completionStartTime"):
                with self.subTest(obs_id=obs_id, field=field):
                    self.assertEqual(v3[obs_id][field], v4[obs_id][field])
        self.assertEqual(v4[GEN]["metadata"]["request_id"], v3[GEN]["metadata"]["request_id"])

    def test_waits_for_the_root_and_fails_clearly(self):
        for version in (3, 4):
            with self.subTest(version=version):
                child = span(GEN, "child", parent=ROOT, attrs=[("session.id", "sess-4")])
                self.post(version, export(child))  # the root has not arrived
                started = time.monotonic()
                with self.assertRaisesRegex(AssertionError, "no trace with a root observation"):
                    self.read(version, session_id="sess-4", timeout=0.5)
                self.assertLess(time.monotonic() - started, 5)
                with self.assertRaises(AssertionError):
                    self.read(version, session_id="no-such-session", timeout=0.2)

    def test_pages_through_the_cursor(self):
        spans = [span(ROOT, "root", 0, 9000, attrs=[("session.id", "s")])] + [
            span(f"{i}0ad6b7169203331", f"c{i}", i * 100, i * 100 + 50, parent=ROOT,
                 attrs=[("session.id", "s")]) for i in range(1, 6)]
        self.post(4, export(*spans))
        with mock.patch.object(lf_read, "V2_PAGE_LIMIT", 2):
            t = self.read(4, session_id="s")
        self.assertEqual([o["name"] for o in t["observations"]],
                         ["root", "c1", "c2", "c3", "c4", "c5"])


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pre-v4-export"
CAP_PK, CAP_SK = "pk-lf-cap", "sk-lf-cap-secret"


class PreV4ExportReplayTest(unittest.TestCase):
    """The request bodies the exporter sent before its v4 work, replayed with their own
    headers: a v4 server shows each defect they had, a v3 server reads them right."""

    @classmethod
    def setUpClass(cls):
        cls.receivers = {3: Receiver(3, CAP_PK, CAP_SK).start()}
        try:
            cls.receivers[4] = Receiver(4, CAP_PK, CAP_SK).start()
        except BaseException:
            cls.receivers[3].stop()
            raise

    @classmethod
    def tearDownClass(cls):
        for receiver in cls.receivers.values():
            receiver.stop()

    def call(self, version, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.receivers[version].port,
                                          timeout=HTTP_TIMEOUT_S)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, json.loads(data) if data[:1] in (b"{", b"[") else data
        finally:
            conn.close()

    def replay(self, version, raw: bytes) -> list:
        """Sends every recorded request again: its method, path, headers and body (gzipped
        again where it was); returns the (status, answer) of each."""
        self.assertEqual(self.call(version, "POST", "/_test/reset")[0], 200)
        answers = []
        for record in lf_read.raw_requests(raw):
            headers = {k: v for k, v in record["headers"].items()
                       if k not in ("host", "content-length", "connection")}
            body = record["raw_body"]
            if "gzip" in headers.get("content-encoding", ""):
                body = gzip.compress(body)
            answers.append(self.call(version, record["method"], record["path"], body, headers))
        return answers

    def fixtures(self, transport):
        found = sorted(FIXTURES.glob(f"*_{transport}.raw"))
        self.assertEqual(len(found), 4, f"fixtures in {FIXTURES}")
        for path in found:
            result = json.loads(path.with_name(path.stem + ".result.json").read_text())
            yield path.stem, path.read_bytes(), result["payload"]["cost"]

    def test_fixtures_are_what_the_old_exporter_sent(self):
        for name, raw, _cost in self.fixtures("otlp"):
            for headers, _span in lf_read.raw_spans(raw):
                auth = base64.b64decode(headers["authorization"].split()[1]).decode()
                self.assertEqual(auth, f"{CAP_PK}:{CAP_SK}", name)

    def test_v4_catches_each_defect_of_the_old_otlp_export(self):
        v4 = self.receivers[4]
        for name, raw, cc_cost in self.fixtures("otlp"):
            with self.subTest(name):
                spans = [s for _, s in lf_read.raw_spans(raw)]
                trace_id = spans[0]["traceId"]
                session_id = next(s["attributes"]["session.id"] for s in spans
                                  if "session.id" in s["attributes"])
                answers = self.replay(4, raw)
                self.assertEqual([status for status, _ in answers], [200] * len(answers))

                # (f) no request said x-langfuse-ingestion-version: every row is delayed
                self.assertFalse(any("x-langfuse-ingestion-version" in h
                                     for h, _ in lf_read.raw_spans(raw)))
                stats = self.call(4, "GET", "/_test/stats")[1]
                self.assertEqual((stats["delayed_requests"], stats["delayed_rows"],
                                  stats["observations"]), (len(answers), len(spans), 0))
                with self.assertRaises(AssertionError):
                    lf_read.read_trace(v4.url, CAP_PK, CAP_SK, trace_id=trace_id, timeout=0.2)
                self.assertEqual(self.call(4, "POST", "/_test/release-delayed")[1],
                                 {"released": len(spans)})

                # (e) the v1 reads the old tests used answer 404
                for path in (f"/api/public/traces?sessionId={session_id}",
                             f"/api/public/traces/{trace_id}"):
                    self.assertEqual(self.call(4, "GET", path)[0], 404, path)

                # (a) the root set only trace-level input/output, which v4 does not read
                trace = lf_read.read_trace(v4.url, CAP_PK, CAP_SK, trace_id=trace_id)
                roots = [s for s in spans if not s.get("parentSpanId")]
                self.assertTrue(all("langfuse.trace.input" in s["attributes"] and
                                    "langfuse.observation.input" not in s["attributes"]
                                    for s in roots))
                self.assertEqual((trace["input"], trace["output"]), (None, None))

                rows = trace["observations"]
                if "per-query" in name:
                    # (b) model-call spans name a model without usage: counted and priced
                    calls = [o for o in rows if o["name"] == "model-call"]
                    self.assertTrue(calls)
                    self.assertFalse(any("langfuse.observation.usage_details" in s["attributes"]
                                         for s in spans if s["name"] == "model-call"))
                    self.assertTrue(all(o["usageDetails"].get("total", 0) > 0 and
                                        o["calculatedTotalCost"] > 0 for o in calls))
                    self.assertGreater(trace["totalCost"], cc_cost + 1e-6)
                else:
                    # (c) spans exported twice are two rows each: tokens counted twice
                    self.assertGreater(len(rows), len({o["id"] for o in rows}))
                    calls = [o for o in rows if o["type"] == "GENERATION"]
                    once = {o["id"]: o["usageDetails"].get("total", 0) for o in calls}
                    counted = sum(o["usageDetails"].get("total", 0) for o in calls)
                    self.assertGreater(counted, sum(once.values()))
                    self.assertGreater(trace["totalCost"], cc_cost + 1e-6)
                self.assertGreaterEqual(self.call(4, "GET", "/_test/stats")[1]
                                        ["max_rows_per_span_id"], 2)

    def test_v4_refuses_the_old_ingestion_transport_per_event(self):
        for name, raw, _cost in self.fixtures("ingestion"):
            with self.subTest(name):
                records = lf_read.raw_requests(raw)
                events = sum(len(r["body"]["batch"]) for r in records)
                answers = self.replay(4, raw)
                for (status, body), record in zip(answers, records):
                    self.assertEqual((status, body["successes"]), (207, []))
                    self.assertEqual([e["id"] for e in body["errors"]],
                                     [e["id"] for e in record["body"]["batch"]])
                    self.assertEqual({e["message"] for e in body["errors"]},
                                     {"Event type not accepted"})
                stats = self.call(4, "GET", "/_test/stats")[1]
                self.assertEqual((stats["rows"], stats["refused_events"]), (0, events))

    def test_v3_reads_the_same_otlp_export_right(self):
        v3 = self.receivers[3]
        for name, raw, cc_cost in self.fixtures("otlp"):
            with self.subTest(name):
                answers = self.replay(3, raw)
                self.assertEqual([status for status, _ in answers], [200] * len(answers))
                trace_id = lf_read.raw_spans(raw)[0][1]["traceId"]
                trace = lf_read.read_trace(v3.url, CAP_PK, CAP_SK, trace_id=trace_id)
                self.assertAlmostEqual(trace["totalCost"], cc_cost, delta=1e-9)
                self.assertEqual(trace["input"], {"prompt": "do the task"})
                self.assertTrue(trace["output"]["success"])
                self.assertEqual(len(trace["observations"]),
                                 len({o["id"] for o in trace["observations"]}))


class ShutdownTest(unittest.TestCase):
    def test_sigterm_exits_promptly_with_blackholed_connection(self):
        receiver = Receiver().start()
        sock = None
        try:
            conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=HTTP_TIMEOUT_S)
            conn.request("POST", "/_test/mode", body=b'{"mode":"blackhole"}')
            self.assertEqual(conn.getresponse().status, 200)
            conn.close()
            body = b'{"resourceSpans":[]}'
            sock = socket.create_connection(("127.0.0.1", receiver.port), timeout=HTTP_TIMEOUT_S)
            sock.sendall(b"POST /api/public/otel/v1/traces HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            time.sleep(0.3)  # let the receiver read it and start holding
            started = time.monotonic()
            self.assertEqual(receiver.stop(signal.SIGTERM), 0)
            self.assertLess(time.monotonic() - started, 3)
        finally:
            if sock:
                sock.close()
            receiver.stop()

    def test_sigint_exits_zero(self):
        receiver = Receiver().start()
        try:
            self.assertEqual(receiver.stop(signal.SIGINT), 0)
        finally:
            receiver.stop()


if __name__ == "__main__":
    unittest.main()
