"""Tests for tests/support/langfuse_receiver.py, the Langfuse test receiver.

The receiver runs as a subprocess exactly as the C integration tests use it: port 0,
a ``READY <port>`` line, then HTTP.  Every wait is bounded and every process this
suite starts is terminated.

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

RECEIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "langfuse_receiver.py")
sys.path.insert(0, os.path.dirname(RECEIVER))
from procs import start_ready, stop_process  # noqa: E402
PK, SK = "pk-lf-test", "sk-lf-test-secret-0123"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{PK}:{SK}".encode()).decode()}
START_TIMEOUT_S = 10
HTTP_TIMEOUT_S = 5

TRACE = "0af7651916cd43dd8448eb211c80319c"
ROOT, GEN, TOOL = "b7ad6b7169203331", "c7ad6b7169203331", "d7ad6b7169203331"
T0 = 1_700_000_000_000_000_000  # unix ns


class Receiver:
    """A receiver subprocess; start() waits (bounded) for its READY line."""

    def __init__(self):
        self.proc = None
        self.port = None

    def start(self):
        self.proc, self.port = start_ready(
            [sys.executable, RECEIVER, "--port", "0", "--public-key", PK, "--secret-key", SK],
            timeout=START_TIMEOUT_S)
        return self

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


class ReceiverTest(unittest.TestCase):
    receiver: Receiver

    @classmethod
    def setUpClass(cls):
        cls.receiver = Receiver().start()

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
