#!/usr/bin/env python3
"""A scripted Anthropic Messages API server for driving the real Claude Code CLI in tests.

The CLI is pointed at this server with ANTHROPIC_BASE_URL. Each model call the CLI makes
(`POST /v1/messages`) is answered with the next response of a *scenario*, a JSON file that
scripts what "the model" says, so tests get deterministic tool uses, usage numbers, errors
and slow streams without any network. Python 3.11 standard library only.

    python3 tests/support/anthropic_server.py --scenario FILE --port 0 [--log FILE]

Binds 127.0.0.1, prints exactly `READY <port>` on stdout once it accepts connections, and
runs until SIGTERM or SIGINT.

Endpoints
---------
POST /v1/messages[?...]            next scripted response: SSE when the body has
                                   "stream": true, else one JSON message
POST /v1/messages/count_tokens     {"input_tokens": N}, estimated from the body size
GET  /v1/models, /v1/models/ID     a small plausible model list
GET  /_test/requests               JSON list of every logged request (see --log)
GET  /_test/count                  {"model_calls", "main_calls", "agent_calls",
                                    "count_tokens_calls", "requests"}
POST /_test/scenario               body is a scenario: replaces the script, resets cursors
anything else                      404 with Anthropic's error JSON (and logged, so a test
                                   can see what the CLI asked for)

Scenario format
---------------
{
  "description": "free text",
  "responses":       [RESPONSE, ...],   # main-thread model calls, in order
  "agent_responses": [RESPONSE, ...],   # calls carrying `x-claude-code-agent-id` (subagents);
                                        # when absent, subagent calls use "responses"
  "routes": [                           # optional, checked first: when the latest human
    {"contains": "TEXT",                # prompt (last user message with a text block that is
     "responses": [RESPONSE, ...],      # not a <system-reminder>) contains TEXT, the call is
     "after_end": "repeat_last"}        # answered from this route's own queue
  ],
  "after_end": "repeat_last"            # what a queue does once used up: "repeat_last"
}                                       # (default; repeats get fresh ids), "error" (HTTP
                                        # 403 "scenario exhausted", which the CLI does not
                                        # retry), or a RESPONSE object to give every time.
                                        # Routes may set their own after_end.

RESPONSE, a successful model reply:
{
  "id": "msg_...",                  # default generated; repeats of a response get a suffix
  "model": "...",                   # default: the request's model
  "content": [                      # blocks, streamed in order
    {"type": "text", "text": "..."},
    {"type": "thinking", "thinking": "...", "signature": "..."},
    {"type": "tool_use", "id": "toolu_...", "name": "Bash", "input": {...}}
    # any other block type is sent whole in content_block_start
  ],
  "stop_reason": "end_turn" | "tool_use" | "max_tokens" | ...,
                                    # default: "tool_use" if a tool_use block, else "end_turn"
  "usage": {"input_tokens": N, "output_tokens": N,
            "cache_read_input_tokens": N, "cache_creation_input_tokens": N},
                                    # missing numbers are estimated from the sizes
  "delay_ms": 0,                    # wait before sending the response headers
  "chunk_delay_ms": 0,              # wait between SSE events (slow streams)
  "text_chunk_chars": 40,           # size of each text_delta / thinking_delta
  "json_chunks": 3,                 # number of input_json_delta pieces per tool_use
  "headers": {"name": "value"},     # extra response headers
  "stream_error": {"type": "overloaded_error", "message": "..."},
  "stream_error_after": N,          # with stream_error: send N events (ping included), then
                                    # an SSE `error` event, and end the stream (default 4:
                                    # after the first block's first delta)
  "disconnect_after": N             # send N events, then drop the connection abruptly
}
stream_error and disconnect_after apply to streaming requests only; a "stream": false
request gets the whole message (the CLI falls back to one after an SSE error event).
RESPONSE, an HTTP error:
{
  "error": {"status": 500, "type": "api_error", "message": "...",
            "body": {...}},         # "body" optional: replaces the standard error JSON
  "headers": {"retry-after": "0"},
  "delay_ms": 0
}
The standard error body is Anthropic's: {"type":"error","error":{"type","message"},
"request_id"}.

Request log
-----------
Every request except /_test/* is logged as one JSON line (flushed at once) to --log and kept
for GET /_test/requests: {"n", "t", "method", "path", "headers" (x-api-key and authorization
values replaced by "<redacted>"), "body" (parsed JSON or null), "kind" ("main" | "agent" |
"count_tokens" | "other"), "queue" (which queue answered: "responses", "agent_responses",
"route:TEXT"), "response_index" (index in that queue; null when after_end answered),
"status"}. A model call is logged when it is answered, before any streaming delay, so counts
are current during slow streams.

How Claude Code 2.1.328 reacts (observed; worth knowing when writing a scenario)
------------------------------------------------------------------------------
- 500, 529, 429 and 401 are retried CLAUDE_CODE_MAX_RETRIES times with backoff of about
  0.6 s, 1.2 s, ...; retry-after is honoured when longer than the backoff, never shorter.
- 400 and 422 make it re-send up to 5 more times with fewer betas/tools; 403 and 413 end
  the turn after one call.
- An SSE `error` event makes it re-send the call once with "stream": false; a dropped
  connection is retried (streaming) like a 5xx.
- Subagent calls carry `x-claude-code-agent-id`; the main thread's never do.
"""

import argparse
import copy
import hashlib
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

AGENT_HEADER = "x-claude-code-agent-id"
REDACTED_HEADERS = {"x-api-key", "authorization", "proxy-authorization"}
DEFAULT_TEXT_CHUNK_CHARS = 40
DEFAULT_JSON_CHUNKS = 3
# Rough bytes-per-token ratio used wherever a scenario leaves a usage number out.
BYTES_PER_TOKEN = 4


class ScenarioError(ValueError):
    """A scenario file that cannot be served."""


# --------------------------------------------------------------------------------------------
# Scenario: the script and its cursors


def validate_response(resp, where):
    """Reject obvious mistakes early, so a bad scenario fails at load, not mid-test."""
    if not isinstance(resp, dict):
        raise ScenarioError(f"{where}: a response must be an object")
    if "error" in resp:
        err = resp["error"]
        if not isinstance(err, dict) or not isinstance(err.get("status"), int):
            raise ScenarioError(f"{where}: error needs an integer status")
        return
    content = resp.get("content")
    if not isinstance(content, list) or not content:
        raise ScenarioError(f"{where}: content must be a non-empty list of blocks")
    for i, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind is None:
            raise ScenarioError(f"{where}.content[{i}]: block without type")
        if kind == "tool_use" and not all(k in block for k in ("id", "name", "input")):
            raise ScenarioError(f"{where}.content[{i}]: tool_use needs id, name and input")


class ResponseQueue:
    """An ordered list of responses served in turn; after_end says what comes after it."""

    def __init__(self, name, responses, after_end):
        if isinstance(after_end, dict):
            validate_response(after_end, f"{name}.after_end")
        elif after_end not in ("repeat_last", "error"):
            raise ScenarioError(f"{name}: after_end must be repeat_last, error or a response")
        if not isinstance(responses, list):
            raise ScenarioError(f"{name}: must be a list of responses")
        for i, resp in enumerate(responses):
            validate_response(resp, f"{name}[{i}]")
        self.name = name
        self.responses = responses
        self.after_end = after_end
        self.served = 0

    def take(self):
        """Return (index, response, repeat) for the next call.

        index is the position in the list, or None once the list is used up and the answer
        comes from after_end; repeat counts servings past the end (0 for the first serving
        of each listed response), so repeated replies can get fresh ids.
        """
        self.served += 1
        if self.served <= len(self.responses):
            return self.served - 1, self.responses[self.served - 1], 0
        repeat = self.served - len(self.responses)
        if self.after_end == "repeat_last" and self.responses:
            return len(self.responses) - 1, self.responses[-1], repeat
        if isinstance(self.after_end, dict):
            return None, self.after_end, repeat
        return None, exhausted_response(self.name, len(self.responses)), repeat


def exhausted_response(queue_name, scripted):
    """The reply once a queue with after_end "error" is used up.

    403 because the CLI gives up on it after one call: 5xx, 429 and 401 are retried with
    backoff, and 400/422 make it re-send the request up to five times with fewer betas.
    """
    return {"error": {"status": 403, "type": "permission_error",
                      "message": f"ccrunner test server: scenario exhausted "
                                 f"({queue_name}: {scripted} responses scripted)"}}


class Scenario:
    """The loaded script. All access goes through one lock: handler threads share it."""

    def __init__(self, data):
        if not isinstance(data, dict) or not isinstance(data.get("responses"), list):
            raise ScenarioError('a scenario is an object with a "responses" list')
        after_end = data.get("after_end", "repeat_last")
        self.main = ResponseQueue("responses", data["responses"], after_end)
        self.agent = None
        if "agent_responses" in data:
            self.agent = ResponseQueue("agent_responses", data["agent_responses"], after_end)
        self.routes = []
        for i, route in enumerate(data.get("routes", [])):
            text = route.get("contains")
            if not isinstance(text, str) or not text:
                raise ScenarioError(f"routes[{i}]: contains must be a non-empty string")
            queue = ResponseQueue(f"route:{text}", route.get("responses", []),
                                  route.get("after_end", after_end))
            self.routes.append((text, queue))
        self.lock = threading.Lock()

    def next_response(self, is_agent, prompt):
        """Pick the queue for this call and take its next response.

        Returns (queue_name, index, response, repeat) as ResponseQueue.take does.
        """
        with self.lock:
            queue = self.main
            for text, route_queue in self.routes:
                if prompt is not None and text in prompt:
                    queue = route_queue
                    break
            else:
                if is_agent and self.agent is not None:
                    queue = self.agent
            index, resp, repeat = queue.take()
            return queue.name, index, resp, repeat


def latest_prompt(body):
    """The newest human-written text in the request, for routes.

    Tool results and CLI-injected <system-reminder> blocks are skipped, so every call of
    one turn (including those after tool results) routes by the prompt that started it.
    A synthetic prompt the CLI adds itself (the max_tokens "Output token limit hit" note)
    does count as the latest prompt.
    """
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [b.get("text", "") for b in content or []
                 if isinstance(b, dict) and b.get("type") == "text"
                 and not b.get("text", "").lstrip().startswith("<system-reminder>")]
        if texts:
            return "\n".join(texts)
    return None


# --------------------------------------------------------------------------------------------
# Building responses


def estimate_tokens(value):
    return max(1, len(json.dumps(value, ensure_ascii=False)) // BYTES_PER_TOKEN)


def pseudo_id(prefix, seed):
    """A realistic-looking, deterministic id (msg_01..., toolu_01...) from a seed string."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    digest = hashlib.sha256(seed.encode()).digest()
    return prefix + "01" + "".join(alphabet[b % len(alphabet)] for b in digest[:22])


def materialize(resp, request_body, queue_name, index, repeat):
    """Fill in defaults for one serving of a scripted reply: ids, model, usage, stop_reason.

    A response served again (after_end "repeat_last") gets fresh message and tool_use ids,
    because the CLI keys messages and tool results by id and must not see duplicates.
    """
    resp = copy.deepcopy(resp)
    suffix = f"_r{repeat}" if repeat else ""
    seed = f"{queue_name}/{'end' if index is None else index}"
    resp["id"] = (resp.get("id") or pseudo_id("msg_", seed)) + suffix
    for block in resp["content"]:
        if block.get("type") == "tool_use" and suffix:
            block["id"] += suffix
    resp["model"] = resp.get("model") or request_body.get("model") or "claude-sonnet-4-5"
    if not resp.get("stop_reason"):
        has_tool = any(b.get("type") == "tool_use" for b in resp["content"])
        resp["stop_reason"] = "tool_use" if has_tool else "end_turn"
    usage = dict(resp.get("usage") or {})
    usage.setdefault("input_tokens", estimate_tokens(request_body.get("messages", [])))
    usage.setdefault("cache_creation_input_tokens", 0)
    usage.setdefault("cache_read_input_tokens", 0)
    usage.setdefault("output_tokens", estimate_tokens(resp["content"]))
    resp["usage"] = usage
    return resp


def message_json(resp):
    """The non-streaming Messages API reply."""
    return {
        "id": resp["id"], "type": "message", "role": "assistant", "model": resp["model"],
        "content": resp["content"], "stop_reason": resp["stop_reason"],
        "stop_sequence": None, "usage": resp["usage"],
    }


def split_text(text, size):
    size = max(1, int(size))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def split_json(obj, pieces):
    """Split a tool input's JSON text into pieces, as the API streams it (first one empty)."""
    text = json.dumps(obj, ensure_ascii=False)
    pieces = max(1, int(pieces))
    step = max(1, -(-len(text) // pieces))
    return [""] + [text[i:i + step] for i in range(0, len(text), step)]


def block_events(index, block, resp):
    """SSE events for one content block: start, deltas, stop."""
    kind = block["type"]
    chunk_chars = resp.get("text_chunk_chars", DEFAULT_TEXT_CHUNK_CHARS)
    events = []

    def delta(d):
        events.append(("content_block_delta",
                       {"type": "content_block_delta", "index": index, "delta": d}))

    if kind == "text":
        start = {"type": "text", "text": ""}
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
    elif kind == "tool_use":
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
    else:
        start = block  # e.g. redacted_thinking: sent whole, no deltas
    events.append(("content_block_start",
                   {"type": "content_block_start", "index": index, "content_block": start}))
    if kind == "text":
        for piece in split_text(block["text"], chunk_chars):
            delta({"type": "text_delta", "text": piece})
    elif kind == "thinking":
        for piece in split_text(block.get("thinking", ""), chunk_chars):
            delta({"type": "thinking_delta", "thinking": piece})
        signature = block.get("signature") or pseudo_id("sig", block.get("thinking", ""))
        delta({"type": "signature_delta", "signature": signature})
    elif kind == "tool_use":
        for piece in split_json(block["input"], resp.get("json_chunks", DEFAULT_JSON_CHUNKS)):
            delta({"type": "input_json_delta", "partial_json": piece})
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def sse_events(resp):
    """The whole SSE stream for one reply, as (event name, data) pairs."""
    usage = resp["usage"]
    start_usage = {
        "input_tokens": usage["input_tokens"],
        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
        # The real API reports a tiny output count at message_start; the final count comes
        # in message_delta. Clients that sum the start values get it wrong, as with the API.
        "output_tokens": 1,
    }
    events = [("message_start", {"type": "message_start", "message": {
        "id": resp["id"], "type": "message", "role": "assistant", "model": resp["model"],
        "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}}),
        ("ping", {"type": "ping"})]
    for index, block in enumerate(resp["content"]):
        events.extend(block_events(index, block, resp))
    events.append(("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": resp["stop_reason"], "stop_sequence": None},
        "usage": {"output_tokens": usage["output_tokens"]}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def error_body(err, request_id):
    if "body" in err:
        return err["body"]
    return {"type": "error",
            "error": {"type": err.get("type", "api_error"),
                      "message": err.get("message", "scripted error")},
            "request_id": request_id}


# --------------------------------------------------------------------------------------------
# Request log


class RequestLog:
    """Every non-test request, in memory for /_test/requests and as JSON lines on disk."""

    def __init__(self, path):
        self.entries = []
        self.lock = threading.Lock()
        self.file = open(path, "a", encoding="utf-8") if path else None

    def add(self, entry):
        with self.lock:
            entry["n"] = len(self.entries) + 1
            self.entries.append(entry)
            if self.file:
                self.file.write(json.dumps(entry, ensure_ascii=False) + "\n")
                self.file.flush()

    def snapshot(self):
        with self.lock:
            return list(self.entries)

    def counts(self):
        entries = self.snapshot()
        kinds = [e["kind"] for e in entries]
        return {"model_calls": kinds.count("main") + kinds.count("agent"),
                "main_calls": kinds.count("main"), "agent_calls": kinds.count("agent"),
                "count_tokens_calls": kinds.count("count_tokens"), "requests": len(entries)}


# --------------------------------------------------------------------------------------------
# HTTP


class ClientGone(Exception):
    """The client closed the connection mid-response (e.g. the CLI was interrupted)."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response has a length or is chunked
    server_version = "ccrunner-anthropic-test/1"

    # Quiet: the JSON log is the record; stderr noise would bury test output.
    def log_message(self, fmt, *args):
        pass

    # ---- plumbing

    def read_body(self):
        """The request body as JSON, or None. Always read whole, so keep-alive stays in sync."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            return None

    def send_json(self, status, obj, extra_headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra_headers or {}).items():
            self.send_header(name, str(value))
        self.end_headers()
        self.wfile.write(data)

    def write_chunk(self, data):
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ClientGone() from exc

    def log_request_entry(self, method, path, body, kind, **extra):
        headers = {k: ("<redacted>" if k.lower() in REDACTED_HEADERS else v)
                   for k, v in self.headers.items()}
        entry = {"t": time.time(), "method": method, "path": path, "headers": headers,
                 "body": body, "kind": kind}
        entry.update(extra)
        self.server.request_log.add(entry)

    def request_id(self):
        return pseudo_id("req_", f"{time.time_ns()}/{threading.get_ident()}")

    # ---- verbs

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/_test/requests":
            return self.send_json(200, self.server.request_log.snapshot())
        if path == "/_test/count":
            return self.send_json(200, self.server.request_log.counts())
        if path == "/v1/models":
            self.log_request_entry("GET", self.path, None, "other", status=200)
            return self.send_json(200, {"data": MODELS, "has_more": False,
                                        "first_id": MODELS[0]["id"],
                                        "last_id": MODELS[-1]["id"]})
        if path.startswith("/v1/models/"):
            self.log_request_entry("GET", self.path, None, "other", status=200)
            model_id = path.rsplit("/", 1)[1]
            return self.send_json(200, {"type": "model", "id": model_id,
                                        "display_name": model_id,
                                        "created_at": "2025-01-01T00:00:00Z"})
        self.log_request_entry("GET", self.path, None, "other", status=404)
        self.not_found()

    def do_HEAD(self):
        self.log_request_entry("HEAD", self.path, None, "other", status=200)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        path = urlsplit(self.path).path
        body = self.read_body()
        if path == "/_test/scenario":
            return self.replace_scenario(body)
        if path == "/v1/messages/count_tokens":
            tokens = estimate_tokens(body) if body is not None else 0
            self.log_request_entry("POST", self.path, body, "count_tokens", status=200)
            return self.send_json(200, {"input_tokens": tokens})
        if path == "/v1/messages":
            return self.messages(body)
        self.log_request_entry("POST", self.path, body, "other", status=404)
        self.not_found()

    def do_PUT(self):
        self.read_body()
        self.log_request_entry("PUT", self.path, None, "other", status=404)
        self.not_found()

    do_DELETE = do_PUT
    do_PATCH = do_PUT

    def not_found(self):
        self.send_json(404, {"type": "error", "error": {
            "type": "not_found_error", "message": f"no such endpoint: {self.path}"},
            "request_id": self.request_id()})

    def replace_scenario(self, body):
        try:
            self.server.scenario = Scenario(body)
        except ScenarioError as exc:
            return self.send_json(400, {"ok": False, "error": str(exc)})
        self.send_json(200, {"ok": True})

    # ---- the model

    def messages(self, body):
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self.log_request_entry("POST", self.path, body, "main", status=400)
            return self.send_json(400, {"type": "error", "error": {
                "type": "invalid_request_error",
                "message": "body must be JSON with a messages list"},
                "request_id": self.request_id()})
        is_agent = self.headers.get(AGENT_HEADER) is not None
        scenario = self.server.scenario
        queue, index, resp, repeat = scenario.next_response(is_agent, latest_prompt(body))
        status = resp["error"]["status"] if "error" in resp else 200
        self.log_request_entry("POST", self.path, body, "agent" if is_agent else "main",
                               queue=queue, response_index=index, status=status)
        if resp.get("delay_ms"):
            time.sleep(resp["delay_ms"] / 1000)
        request_id = self.request_id()
        headers = {"request-id": request_id, **resp.get("headers", {})}
        if "error" in resp:
            return self.send_json(status, error_body(resp["error"], request_id), headers)
        resp = materialize(resp, body, queue, index, repeat)
        if not body.get("stream"):
            return self.send_json(200, message_json(resp), headers)
        try:
            self.stream(resp, headers)
        except ClientGone:
            self.close_connection = True

    def stream(self, resp, headers):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.end_headers()

        events = sse_events(resp)
        error_at = None
        if "stream_error" in resp:
            # Default: after message_start, ping, the first block's start and first delta.
            error_at = resp.get("stream_error_after", 4)
        disconnect_at = resp.get("disconnect_after")
        delay = resp.get("chunk_delay_ms", 0) / 1000
        for n, (name, data) in enumerate(events):
            if n == disconnect_at:
                # Abrupt end: no terminating chunk, so the client sees a broken body.
                self.close_connection = True
                return
            if n == error_at:
                err = {"type": "error", "error": resp["stream_error"]}
                self.write_chunk(f"event: error\ndata: {json.dumps(err)}\n\n".encode())
                break
            if n and delay:
                time.sleep(delay)
            self.write_chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        self.write_chunk(b"")  # terminating zero-length chunk


MODELS = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
          for m in ("claude-opus-5-5", "claude-sonnet-4-5", "claude-haiku-4-5")]


class Server(ThreadingHTTPServer):
    daemon_threads = True  # a stream stuck in a delay must not keep the process alive
    allow_reuse_address = True

    def __init__(self, port, scenario, request_log):
        super().__init__(("127.0.0.1", port), Handler)
        self.scenario = scenario
        self.request_log = request_log

    def handle_error(self, request, client_address):
        # A client hanging up mid-reply (an interrupted CLI) is routine, not worth a trace.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def load_scenario(path):
    with open(path, encoding="utf-8") as f:
        return Scenario(json.load(f))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", required=True, help="scenario JSON file")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--log", help="append one JSON line per request here")
    args = parser.parse_args(argv)
    try:
        scenario = load_scenario(args.scenario)
    except (OSError, ValueError) as exc:
        print(f"anthropic_server: cannot load scenario {args.scenario}: {exc}",
              file=sys.stderr)
        return 2

    server = Server(args.port, scenario, RequestLog(args.log))
    stop = threading.Event()
    # serve_forever runs in a thread so the main thread can wait on the signal and call
    # shutdown(), which would deadlock if called from the serving thread itself.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    print(f"READY {server.server_address[1]}", flush=True)
    while not stop.wait(0.2):  # a timed wait keeps the main thread responsive to signals
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
