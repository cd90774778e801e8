"""Tests for the scripted Anthropic API server, and proof that its scenarios drive the real CLI.

Two groups:
- ServerProtocolTests speak HTTP to the server directly: SSE shape, errors, keep-alive,
  queues and routes, the test endpoints, the log. No CLI needed.
- RealCliTests run the real Claude Code CLI (CLAUDE_BIN, default node_modules/.bin/claude
  under the repo root; `npm ci` installs it) against each scenario in scenarios/ and assert
  on its stream-json output. They are skipped, saying why, when the CLI is missing.

Run: cd REPO && python3 -m unittest tests/support/test_anthropic_server.py -v
Every server and CLI process is started with a bounded wait and always stopped.
"""

import http.client
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import start_ready, stop_process  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SERVER = REPO / "tests" / "support" / "anthropic_server.py"
SCENARIOS = REPO / "tests" / "support" / "scenarios"
CLAUDE_BIN = Path(os.environ.get("CLAUDE_BIN") or REPO / "node_modules" / ".bin" / "claude")
MAX_RETRIES = 2  # CLAUDE_CODE_MAX_RETRIES for every CLI run: keeps error scenarios short
CLI_TIMEOUT = 60
USAGE_KEYS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
              "output_tokens")


def load_scenario(name):
    with open(SCENARIOS / f"{name}.json", encoding="utf-8") as f:
        return json.load(f)


def summed_usage(responses):
    """What the CLI should report as a turn's usage: the sum over the successful replies."""
    return {key: sum(r["usage"][key] for r in responses if "usage" in r) for key in USAGE_KEYS}


# --------------------------------------------------------------------------------------------
# Process helpers


class ScriptedServer:
    """The server as a child process on a free port; a context manager that always stops it."""

    def __init__(self, scenario, workdir):
        """scenario: a scenario name in scenarios/, or a dict (written to workdir)."""
        workdir = Path(workdir)
        if isinstance(scenario, dict):
            path = workdir / "scenario.json"
            path.write_text(json.dumps(scenario), encoding="utf-8")
        else:
            path = SCENARIOS / f"{scenario}.json"
        self.log_path = workdir / "server.log"
        self.stderr_path = workdir / "server.stderr"
        self.stderr = open(self.stderr_path, "wb")
        self.cmd = [sys.executable, str(SERVER), "--scenario", str(path), "--port", "0",
                    "--log", str(self.log_path)]
        self.proc = self.port = None

    def __enter__(self):
        try:
            self.proc, self.port = start_ready(self.cmd, stderr=self.stderr, timeout=10)
        except BaseException as e:
            self.stderr.close()
            raise RuntimeError(f"{e}; stderr: {self.stderr_path.read_text(errors='replace')}") from e
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.proc:
            stop_process(self.proc, timeout=5)
        self.stderr.close()

    def stderr_text(self):
        self.stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def connection(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def get(self, path):
        conn = self.connection()
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return json.loads(resp.read())
        finally:
            conn.close()

    def count(self):
        return self.get("/_test/count")

    def post(self, path, obj, headers=None):
        """POST JSON; returns (status, headers, raw body bytes)."""
        conn = self.connection()
        try:
            conn.request("POST", path, body=json.dumps(obj),
                         headers={"Content-Type": "application/json", **(headers or {})})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()


def cli_env(port, home):
    """The environment for an offline CLI run: only our server, no telemetry, few retries."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANTHROPIC_", "CLAUDE_", "CLAUDECODE"))}
    env.update(HOME=str(home), ANTHROPIC_BASE_URL=f"http://127.0.0.1:{port}",
               ANTHROPIC_API_KEY="sk-ant-test", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
               DISABLE_AUTOUPDATER="1", CLAUDE_CODE_MAX_RETRIES=str(MAX_RETRIES))
    return env


CLI_ARGS = ["--output-format", "stream-json", "--verbose", "--input-format", "stream-json",
            "--include-partial-messages", "--permission-mode", "acceptEdits"]


def user_line(text):
    return json.dumps({"type": "user", "message": {"role": "user", "content": text},
                       "parent_tool_use_id": None, "session_id": ""}) + "\n"


class CliRun:
    """The parsed stdout of one CLI run, with the queries the tests need."""

    def __init__(self, returncode, stdout, stderr, elapsed):
        self.returncode = returncode
        self.stderr = stderr
        self.elapsed = elapsed
        self.lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]

    def of_type(self, kind, subtype=None):
        return [m for m in self.lines if m.get("type") == kind
                and (subtype is None or m.get("subtype") == subtype)]

    @property
    def result(self):
        results = self.of_type("result")
        assert len(results) == 1, f"expected one result line, got {len(results)}"
        return results[0]

    def blocks(self, kind, block_type):
        """(line, block) for each content block of that type in assistant/user lines."""
        return [(m, b) for m in self.of_type(kind) for b in m["message"]["content"]
                if isinstance(b, dict) and b.get("type") == block_type]

    def tool_uses(self):
        return [b for _, b in self.blocks("assistant", "tool_use")]

    def tool_results(self):
        return {b["tool_use_id"]: (m, b) for m, b in self.blocks("user", "tool_result")}

    def events(self, event_type):
        return [m["event"] for m in self.of_type("stream_event")
                if m["event"].get("type") == event_type]

    def describe(self):
        return f"exit {self.returncode}, stderr: {self.stderr[-2000:]!r}"


def run_cli_batch(port, prompt, workdir, timeout=CLI_TIMEOUT):
    """One prompt on stdin, stdin closed: the CLI runs the turn and exits."""
    workspace, home = Path(workdir) / "ws", Path(workdir) / "home"
    workspace.mkdir()
    home.mkdir()
    start = time.monotonic()
    proc = subprocess.run([str(CLAUDE_BIN), *CLI_ARGS], cwd=workspace,
                          env=cli_env(port, home), input=user_line(prompt),
                          capture_output=True, text=True, timeout=timeout)
    return CliRun(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


class InteractiveCli:
    """The CLI with stdin kept open, for multi-turn and control requests."""

    def __init__(self, port, workdir):
        workspace, home = Path(workdir) / "ws", Path(workdir) / "home"
        workspace.mkdir()
        home.mkdir()
        self.stderr_path = Path(workdir) / "cli.stderr"
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([str(CLAUDE_BIN), *CLI_ARGS], cwd=workspace,
                                     env=cli_env(port, home), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.lines = queue.Queue()
        self.seen = []
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self):
        for line in self.proc.stdout:
            if line.strip():
                self.lines.put(json.loads(line))
        self.lines.put(None)  # EOF

    def send(self, obj):
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def send_user(self, text):
        self.proc.stdin.write(user_line(text))
        self.proc.stdin.flush()

    def wait_for(self, predicate, timeout=30):
        """Read lines until one matches; returns it. Fails on EOF or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("CLI line not seen in time")
            try:
                msg = self.lines.get(timeout=remaining)
            except queue.Empty:
                raise TimeoutError("CLI line not seen in time") from None
            if msg is None:
                raise EOFError("CLI exited before the expected line")
            self.seen.append(msg)
            if predicate(msg):
                return msg

    def finish(self, timeout=30):
        """Close stdin and wait for the exit code."""
        self.proc.stdin.close()
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        self.pump.join(timeout=5)  # it ends at EOF; then its pipe can be closed
        self.proc.stdout.close()
        self.stderr.close()


def is_type(kind, subtype=None):
    return lambda m: m.get("type") == kind and (subtype is None or m.get("subtype") == subtype)


# --------------------------------------------------------------------------------------------
# The server alone


def parse_sse(raw):
    """[(event, data)] from an SSE body."""
    events = []
    for chunk in raw.decode().split("\n\n"):
        if not chunk.strip():
            continue
        fields = dict(line.split(": ", 1) for line in chunk.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


SIMPLE = {"responses": [
    {"id": "msg_01A", "content": [{"type": "text", "text": "first"}],
     "usage": {"input_tokens": 10, "output_tokens": 2, "cache_read_input_tokens": 30,
               "cache_creation_input_tokens": 40}},
    {"id": "msg_01B", "content": [
        {"type": "thinking", "thinking": "hmm, let me think", "signature": "sig-1"},
        {"type": "tool_use", "id": "toolu_01X", "name": "Bash",
         "input": {"command": "echo hi", "description": "Print hi"}}],
     "json_chunks": 4, "text_chunk_chars": 5},
], "after_end": "error"}

REQUEST = {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
           "messages": [{"role": "user", "content": "hello"},
                        {"role": "system", "content": [{"type": "text", "text": "env"}]}]}
HEADERS = {"x-api-key": "sk-ant-secret", "anthropic-version": "2023-06-01",
           "anthropic-beta": "claude-code-20250219,made-up-beta-2099-01-01"}


class ServerProtocolTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def start(self, scenario):
        server = ScriptedServer(scenario, self.tmp.name).__enter__()
        self.addCleanup(server.stop)
        return server

    def test_streams_message_events_and_accepts_system_role_and_unknown_betas(self):
        server = self.start(SIMPLE)
        status, headers, raw = server.post("/v1/messages?beta=true", REQUEST, HEADERS)
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/event-stream"))
        events = parse_sse(raw)
        names = [name for name, _ in events]
        self.assertEqual(names[:2], ["message_start", "ping"])
        self.assertEqual(names[-2:], ["message_delta", "message_stop"])
        start = events[0][1]["message"]
        self.assertEqual(start["id"], "msg_01A")
        self.assertEqual(start["model"], "claude-sonnet-4-5")
        self.assertEqual(start["usage"], {"input_tokens": 10, "cache_creation_input_tokens": 40,
                                          "cache_read_input_tokens": 30, "output_tokens": 1})
        delta = events[-2][1]
        self.assertEqual(delta["delta"]["stop_reason"], "end_turn")
        self.assertEqual(delta["usage"], {"output_tokens": 2})

    def test_thinking_and_tool_use_stream_in_several_deltas(self):
        server = self.start(SIMPLE)
        server.post("/v1/messages", REQUEST)
        _, _, raw = server.post("/v1/messages", REQUEST)
        deltas = [d["delta"] for name, d in parse_sse(raw) if name == "content_block_delta"]
        thinking = "".join(d["thinking"] for d in deltas if d["type"] == "thinking_delta")
        self.assertEqual(thinking, "hmm, let me think")
        self.assertIn({"type": "signature_delta", "signature": "sig-1"}, deltas)
        pieces = [d["partial_json"] for d in deltas if d["type"] == "input_json_delta"]
        self.assertGreaterEqual(len(pieces), 4)
        self.assertEqual(json.loads("".join(pieces)),
                         {"command": "echo hi", "description": "Print hi"})
        stop = [d for name, d in parse_sse(raw) if name == "message_delta"][0]
        self.assertEqual(stop["delta"]["stop_reason"], "tool_use")

    def test_non_streaming_request_gets_one_message(self):
        server = self.start(SIMPLE)
        status, _, raw = server.post("/v1/messages", dict(REQUEST, stream=False))
        self.assertEqual(status, 200)
        message = json.loads(raw)
        self.assertEqual(message["type"], "message")
        self.assertEqual(message["content"], [{"type": "text", "text": "first"}])
        self.assertEqual(message["usage"]["cache_read_input_tokens"], 30)

    def test_scripted_http_error_has_anthropic_shape_and_headers(self):
        server = self.start({"responses": [{"error": {
            "status": 429, "type": "rate_limit_error", "message": "slow down"},
            "headers": {"retry-after": "7"}}]})
        status, headers, raw = server.post("/v1/messages", REQUEST)
        self.assertEqual(status, 429)
        self.assertEqual(headers["retry-after"], "7")
        body = json.loads(raw)
        self.assertEqual(body["type"], "error")
        self.assertEqual(body["error"], {"type": "rate_limit_error", "message": "slow down"})
        self.assertTrue(body["request_id"].startswith("req_"))

    def test_stream_error_event_ends_the_stream(self):
        server = self.start({"responses": [{
            "content": [{"type": "text", "text": "never finished"}],
            "stream_error": {"type": "overloaded_error", "message": "Overloaded"}}]})
        _, _, raw = server.post("/v1/messages", REQUEST)
        events = parse_sse(raw)
        self.assertEqual(events[-1], ("error", {"type": "error", "error": {
            "type": "overloaded_error", "message": "Overloaded"}}))
        self.assertNotIn("message_stop", [name for name, _ in events])

    def test_disconnect_after_drops_the_connection_mid_body(self):
        server = self.start({"responses": [{"content": [{"type": "text", "text": "cut"}],
                                            "disconnect_after": 3}]})
        conn = server.connection()
        self.addCleanup(conn.close)
        conn.request("POST", "/v1/messages", body=json.dumps(REQUEST))
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        with self.assertRaises(http.client.IncompleteRead):
            resp.read()

    def test_keep_alive_serves_several_requests_on_one_connection(self):
        server = self.start({"responses": [{"content": [{"type": "text", "text": "x"}]}]})
        conn = server.connection()
        self.addCleanup(conn.close)
        for _ in range(3):
            conn.request("POST", "/v1/messages", body=json.dumps(REQUEST))
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(parse_sse(resp.read())[-1][0], "message_stop")
        self.assertEqual(server.count()["model_calls"], 3)

    def test_after_end_repeat_last_gives_fresh_ids(self):
        server = self.start({"responses": [{"id": "msg_01R", "content": [
            {"type": "tool_use", "id": "toolu_01R", "name": "Bash", "input": {}}]}]})
        ids = set()
        for _ in range(3):
            _, _, raw = server.post("/v1/messages", dict(REQUEST, stream=False))
            message = json.loads(raw)
            ids.add((message["id"], message["content"][0]["id"]))
        self.assertEqual(len(ids), 3)

    def test_after_end_error_is_a_403_the_cli_does_not_retry(self):
        server = self.start(SIMPLE)
        for _ in SIMPLE["responses"]:
            server.post("/v1/messages", REQUEST)
        status, _, raw = server.post("/v1/messages", REQUEST)
        self.assertEqual(status, 403)
        self.assertIn("scenario exhausted", json.loads(raw)["error"]["message"])

    def test_agent_header_selects_the_agent_queue(self):
        server = self.start({
            "responses": [{"id": "msg_main", "content": [{"type": "text", "text": "m"}]}],
            "agent_responses": [{"id": "msg_agent", "content": [{"type": "text", "text": "a"}]}]})
        _, _, raw = server.post("/v1/messages", dict(REQUEST, stream=False),
                                {"x-claude-code-agent-id": "a1b2"})
        self.assertEqual(json.loads(raw)["id"], "msg_agent")
        _, _, raw = server.post("/v1/messages", dict(REQUEST, stream=False))
        self.assertEqual(json.loads(raw)["id"], "msg_main")
        self.assertEqual(server.count(), {"model_calls": 2, "main_calls": 1, "agent_calls": 1,
                                          "count_tokens_calls": 0, "requests": 2})

    def test_routes_match_the_latest_prompt_even_after_tool_results(self):
        server = self.start({
            "responses": [{"id": "msg_default", "content": [{"type": "text", "text": "d"}]}],
            "routes": [{"contains": "second question", "responses": [
                {"id": "msg_route", "content": [{"type": "text", "text": "r"}]}]}]})
        after_tool = {"model": "m", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "the second question"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
                {"type": "text", "text": "<system-reminder>noise</system-reminder>"}]}]}
        _, _, raw = server.post("/v1/messages", after_tool)
        self.assertEqual(json.loads(raw)["id"], "msg_route")
        _, _, raw = server.post("/v1/messages", dict(REQUEST, stream=False))
        self.assertEqual(json.loads(raw)["id"], "msg_default")

    def test_replacing_the_scenario_resets_the_cursor(self):
        server = self.start(SIMPLE)
        server.post("/v1/messages", REQUEST)
        status, _, _ = server.post("/_test/scenario", SIMPLE)
        self.assertEqual(status, 200)
        _, _, raw = server.post("/v1/messages", dict(REQUEST, stream=False))
        self.assertEqual(json.loads(raw)["id"], "msg_01A")
        status, _, _ = server.post("/_test/scenario", {"responses": [{"content": []}]})
        self.assertEqual(status, 400)

    def test_count_tokens_models_and_unknown_paths(self):
        server = self.start(SIMPLE)
        status, _, raw = server.post("/v1/messages/count_tokens", REQUEST)
        self.assertEqual(status, 200)
        self.assertGreater(json.loads(raw)["input_tokens"], 0)
        self.assertIn("data", server.get("/v1/models"))
        status, _, raw = server.post("/v1/nonsense", {})
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(raw)["error"]["type"], "not_found_error")
        counts = server.count()
        self.assertEqual((counts["model_calls"], counts["count_tokens_calls"]), (0, 1))

    def test_log_lines_and_request_list_redact_the_api_key(self):
        server = self.start(SIMPLE)
        server.post("/v1/messages?beta=true", REQUEST, HEADERS)
        logged = [json.loads(line) for line in server.log_path.read_text().splitlines()]
        self.assertEqual(logged, server.get("/_test/requests"))
        entry = logged[0]
        self.assertEqual((entry["path"], entry["kind"], entry["queue"], entry["response_index"]),
                         ("/v1/messages?beta=true", "main", "responses", 0))
        self.assertEqual(entry["body"], REQUEST)
        self.assertEqual(entry["headers"]["x-api-key"], "<redacted>")
        self.assertNotIn("sk-ant-secret", server.log_path.read_text())

    def test_sigterm_during_a_slow_stream_exits_promptly(self):
        server = self.start({"responses": [{"content": [{"type": "text", "text": "x" * 50}],
                                            "chunk_delay_ms": 1000, "text_chunk_chars": 1}]})
        conn = server.connection()
        self.addCleanup(conn.close)
        conn.request("POST", "/v1/messages", body=json.dumps(REQUEST))
        conn.getresponse()  # headers arrive; the body would take a minute
        start = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        self.assertEqual(server.proc.wait(timeout=5), 0)
        self.assertLess(time.monotonic() - start, 3)

    def test_every_scenario_file_loads(self):
        for path in sorted(SCENARIOS.glob("*.json")):
            with self.subTest(scenario=path.stem):
                server = self.start(path.stem)
                self.assertGreater(server.port, 0)
                server.stop()


# --------------------------------------------------------------------------------------------
# The real CLI against each scenario


@unittest.skipUnless(CLAUDE_BIN.exists(),
                     f"Claude Code CLI not found at {CLAUDE_BIN}: run `npm ci` in the repo "
                     f"root, or set CLAUDE_BIN")
class RealCliTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.workdir = Path(self.tmp.name)

    def run_scenario(self, name, prompt="please do the task"):
        with ScriptedServer(name, self.workdir) as server:
            run = run_cli_batch(server.port, prompt, self.workdir)
            run.counts = server.count()
            run.requests = server.get("/_test/requests")
        return run

    def assert_success(self, run, scenario, num_turns):
        self.assertEqual(run.returncode, 0, run.describe())
        result = run.result
        self.assertEqual(result["subtype"], "success")
        self.assertFalse(result["is_error"])
        self.assertEqual(result["num_turns"], num_turns)
        final = scenario["responses"][-1]["content"][-1]["text"]
        self.assertEqual(result["result"], final)
        usage = {k: result["usage"][k] for k in USAGE_KEYS}
        self.assertEqual(usage, summed_usage(scenario["responses"]))

    def assert_api_failure(self, run, status):
        self.assertEqual(run.returncode, 1, run.describe())
        result = run.result
        # API failures end as subtype success with is_error: judge by is_error.
        self.assertEqual((result["subtype"], result["is_error"]), ("success", True))
        self.assertEqual(result["api_error_status"], status)
        self.assertEqual(result["terminal_reason"], "api_error")
        retries = run.of_type("system", "api_retry")
        self.assertEqual([r["attempt"] for r in retries], list(range(1, MAX_RETRIES + 1)))
        self.assertTrue(all(r["error_status"] == status for r in retries))
        synthetic = [m for m in run.of_type("assistant")
                     if m["message"]["model"] == "<synthetic>"]
        self.assertEqual(len(synthetic), 1)
        self.assertEqual(run.counts["model_calls"], 1 + MAX_RETRIES)
        return retries

    def test_text(self):
        scenario = load_scenario("text")
        run = self.run_scenario("text")
        self.assert_success(run, scenario, num_turns=1)
        self.assertEqual(run.counts["model_calls"], 1)
        request = run.requests[0]
        self.assertTrue(request["path"].startswith("/v1/messages"))
        self.assertTrue(request["body"]["stream"])
        self.assertIn("system", {m["role"] for m in request["body"]["messages"]})
        init = run.of_type("system", "init")[0]
        self.assertEqual(init["permissionMode"], "acceptEdits")
        deltas = run.events("content_block_delta")
        self.assertEqual("".join(e["delta"]["text"] for e in deltas),
                         scenario["responses"][0]["content"][0]["text"])

    def test_thinking(self):
        scenario = load_scenario("thinking")
        run = self.run_scenario("thinking")
        self.assert_success(run, scenario, num_turns=1)
        [(line, block)] = run.blocks("assistant", "thinking")
        scripted = scenario["responses"][0]["content"][0]
        self.assertEqual(block["thinking"], scripted["thinking"])
        self.assertEqual(block["signature"], scripted["signature"])
        delta_types = {e["delta"]["type"] for e in run.events("content_block_delta")}
        self.assertLessEqual({"thinking_delta", "signature_delta", "text_delta"}, delta_types)

    def test_bash(self):
        scenario = load_scenario("bash")
        run = self.run_scenario("bash")
        self.assert_success(run, scenario, num_turns=2)
        [tool_use] = run.tool_uses()
        self.assertEqual((tool_use["name"], tool_use["input"]["command"]), ("Bash", "echo hi"))
        _, result = run.tool_results()[tool_use["id"]]
        self.assertEqual(result["content"], "hi")
        self.assertFalse(result["is_error"])
        self.assertEqual(run.counts["model_calls"], 2)

    def test_write(self):
        scenario = load_scenario("write")
        run = self.run_scenario("write")
        self.assert_success(run, scenario, num_turns=2)
        [tool_use] = run.tool_uses()
        self.assertEqual(tool_use["name"], "Write")
        _, result = run.tool_results()[tool_use["id"]]
        self.assertFalse(result.get("is_error", False))  # Write results carry no is_error
        written = self.workdir / "ws" / "hello.txt"
        self.assertEqual(written.read_text(), tool_use["input"]["content"])

    def test_two_tools(self):
        scenario = load_scenario("two_tools")
        run = self.run_scenario("two_tools")
        # Two tool uses in one response count 3 in num_turns for 2 API calls.
        self.assert_success(run, scenario, num_turns=3)
        uses = run.tool_uses()
        self.assertEqual(len(uses), 2)
        self.assertEqual(len({line["message"]["id"] for line, _ in
                              run.blocks("assistant", "tool_use")}), 1)
        results = run.tool_results()
        self.assertEqual(sorted(results[u["id"]][1]["content"] for u in uses), ["one", "two"])
        self.assertEqual(run.counts["model_calls"], 2)

    def test_subagent(self):
        scenario = load_scenario("subagent")
        run = self.run_scenario("subagent")
        self.assert_success(run, scenario, num_turns=2)  # usage excludes the subagent's
        self.assertEqual((run.counts["main_calls"], run.counts["agent_calls"]), (2, 2))
        agent_use = next(u for u in run.tool_uses() if u["name"] == "Agent")
        self.assertFalse(agent_use["input"]["run_in_background"])
        inner = [(line, b) for line, b in run.blocks("assistant", "tool_use")
                 if line["parent_tool_use_id"] == agent_use["id"]]
        self.assertEqual([b["input"]["command"] for _, b in inner], ["echo from-subagent"])
        inner_line, inner_result = run.tool_results()[inner[0][1]["id"]]
        self.assertEqual(inner_line["parent_tool_use_id"], agent_use["id"])
        self.assertEqual(inner_result["content"], "from-subagent")
        outer_line, outer_result = run.tool_results()[agent_use["id"]]
        self.assertIsNone(outer_line["parent_tool_use_id"])
        self.assertIn("The command printed: from-subagent", json.dumps(outer_result["content"]))
        # modelUsage (cumulative, cost basis) does include the subagent's calls.
        model_usage = next(iter(run.result["modelUsage"].values()))
        everything = summed_usage(scenario["responses"] + scenario["agent_responses"])
        self.assertEqual(model_usage["inputTokens"], everything["input_tokens"])
        self.assertEqual(model_usage["outputTokens"], everything["output_tokens"])
        agent_requests = [r for r in run.requests if r["kind"] == "agent"]
        self.assertTrue(all(r["headers"].get("x-claude-code-agent-id") for r in agent_requests))

    def test_error_500_then_ok(self):
        scenario = load_scenario("error_500_then_ok")
        run = self.run_scenario("error_500_then_ok")
        self.assert_success(run, {"responses": scenario["responses"][1:]}, num_turns=1)
        [retry] = run.of_type("system", "api_retry")
        self.assertEqual((retry["attempt"], retry["error_status"]), (1, 500))
        self.assertEqual(run.counts["model_calls"], 2)

    def test_error_500(self):
        run = self.run_scenario("error_500")
        self.assert_api_failure(run, 500)

    def test_error_429(self):
        run = self.run_scenario("error_429")
        retries = self.assert_api_failure(run, 429)
        # retry-after: 1 is honoured as a lower bound on the wait.
        self.assertGreaterEqual(retries[0]["retry_delay_ms"], 1000)
        self.assertIn("429", run.result["result"])

    def test_error_401(self):
        run = self.run_scenario("error_401")
        self.assert_api_failure(run, 401)

    def test_max_tokens(self):
        scenario = load_scenario("max_tokens")
        run = self.run_scenario("max_tokens")
        self.assert_success(run, scenario, num_turns=2)
        stops = [e["delta"]["stop_reason"] for e in run.events("message_delta")]
        self.assertEqual(stops, ["max_tokens", "end_turn"])
        resume = [m for m in run.of_type("user") if m.get("isSynthetic")]
        self.assertEqual(len(resume), 1)
        self.assertEqual(run.counts["model_calls"], 2)

    def test_ten_calls(self):
        scenario = load_scenario("ten_calls")
        run = self.run_scenario("ten_calls")
        self.assert_success(run, scenario, num_turns=10)
        self.assertEqual(run.counts["model_calls"], 10)
        uses = run.tool_uses()
        self.assertEqual(sorted(u["name"] for u in uses),
                         ["Bash"] * 3 + ["Read"] * 3 + ["Write"] * 3)
        results = run.tool_results()
        self.assertEqual(set(results), {u["id"] for u in uses})
        self.assertFalse(any(b.get("is_error") for _, b in results.values()))
        for n in (1, 2, 3):
            self.assertTrue((self.workdir / "ws" / f"notes{n}.txt").exists())

    def test_slow(self):
        scenario = load_scenario("slow")
        run = self.run_scenario("slow")
        self.assert_success(run, scenario, num_turns=1)
        self.assertGreaterEqual(len(run.events("content_block_delta")), 30)
        self.assertGreater(run.elapsed, 3)

    def test_slow_interrupted_then_next_turn_succeeds(self):
        with ScriptedServer("slow", self.workdir) as server:
            cli = InteractiveCli(server.port, self.workdir)
            self.addCleanup(cli.stop)
            cli.send_user("tell me slowly")
            cli.wait_for(lambda m: m.get("type") == "stream_event"
                         and m["event"]["type"] == "content_block_delta")
            cli.send({"type": "control_request", "request_id": "int-1",
                      "request": {"subtype": "interrupt"}})
            ack = cli.wait_for(is_type("control_response"))
            self.assertEqual(ack["response"]["subtype"], "success")
            result = cli.wait_for(is_type("result"))
            self.assertEqual((result["subtype"], result["is_error"], result["terminal_reason"]),
                             ("error_during_execution", True, "aborted_streaming"))
            # Swap in a fast script: the process stays usable for the next turn.
            status, _, _ = server.post("/_test/scenario", load_scenario("text"))
            self.assertEqual(status, 200)
            cli.send_user("and now quickly")
            result = cli.wait_for(is_type("result"))
            self.assertFalse(result["is_error"])
            self.assertEqual(cli.finish(), 0)
            self.assertEqual(server.count()["model_calls"], 2)

    def test_routes_answer_each_turn_of_an_interactive_session(self):
        def reply(msg_id, text):
            return {"id": msg_id, "content": [{"type": "text", "text": text}],
                    "usage": {"input_tokens": 5, "output_tokens": 7,
                              "cache_read_input_tokens": 100, "cache_creation_input_tokens": 9}}
        scenario = {"responses": [reply("msg_01Fallback", "fallback")], "after_end": "error",
                    "routes": [{"contains": "apples", "responses": [reply("msg_01Apl", "red")]},
                               {"contains": "pears", "responses": [reply("msg_01Per", "green")]}]}
        with ScriptedServer(scenario, self.workdir) as server:
            cli = InteractiveCli(server.port, self.workdir)
            self.addCleanup(cli.stop)
            answers = []
            for prompt in ("what colour are pears?", "and apples?"):
                cli.send_user(prompt)
                answers.append(cli.wait_for(is_type("result"))["result"])
            self.assertEqual(answers, ["green", "red"])
            self.assertEqual(cli.finish(), 0)
            self.assertEqual(server.count()["model_calls"], 2)


if __name__ == "__main__":
    unittest.main()
