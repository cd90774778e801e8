"""The telemetry receiver (src/runner/otel.c) with the real Claude Code CLI (npm, 2.1.328).

otel_probe (tests/support/otel_probe.c) runs the receiver and prints the environment it hands
out and every event it decodes; the CLI runs with that environment against the scripted
model server. Every model call the server answered must come back as an event, subagent calls
included, with the request ids stream-json shows, costs adding up exactly to the CLI's
total_cost_usd and tokens to its modelUsage, and in time: before a batch run exits, within a
second of a turn's result while an interactive CLI runs. Run by ctest with OTEL_PROBE set;
skipped, saying why, when the CLI is not installed.
"""

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "support"))
from test_anthropic_server import CLAUDE_BIN, ScriptedServer  # noqa: E402

PROBE = Path(os.environ.get("OTEL_PROBE") or REPO / "build" / "tests" / "otel_probe")
RUN_TIMEOUT = 90
SLACK_MS = 300  # a loaded machine's wake-up and scheduling (testutil.h's TU_SLACK_MS)


def now_ms():
    return int(time.time() * 1000)


class Lines:
    """A pipe read line by line in a thread, so a wait can be bounded (a select() on a
    buffered pipe misses lines already in its buffer)."""

    def __init__(self, stream):
        self.queue = queue.Queue()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream):
        for line in stream:
            self.queue.put(line)
        self.queue.put(None)

    def get(self, timeout):
        """The next line; None at the end; queue.Empty after timeout seconds."""
        return self.queue.get(timeout=timeout)


class Probe:
    """otel_probe as a context manager: .env is what it prints, .events grows as lines come."""

    def __init__(self):
        self.proc = subprocess.Popen([str(PROBE), "300"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.env, self.events, self.stats = {}, [], None
        self.lock = threading.Lock()
        self.lines = Lines(self.proc.stdout)
        try:
            while True:
                line = self.lines.get(10)
                if line and line.startswith("ENV "):
                    name, value = line[4:].rstrip("\n").split("=", 1)
                    self.env[name] = value
                elif line and line.startswith("READY "):
                    self.port = int(line.split()[1])
                    break
                else:
                    raise RuntimeError(f"otel_probe said {line!r}: {self.proc.stderr.read()}")
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while (line := self.lines.get(None)) is not None:
            j = json.loads(line)
            with self.lock:
                if "stats" in j:
                    self.stats = j["stats"]
                else:
                    self.events.append(j)

    def requests(self):
        with self.lock:
            return [e for e in self.events if e["kind"] == "api_request"]

    def wait_for(self, pred, timeout):
        """Polls pred() every 20 ms until true or timeout seconds; the last value."""
        end = time.monotonic() + timeout
        while True:
            v = pred()
            if v or time.monotonic() > end:
                return v
            time.sleep(0.02)

    def finish(self):
        """Ends the probe (stdin closed); returns its stats."""
        self.proc.stdin.close()
        self.proc.wait(10)
        self.reader.join(10)
        return self.stats

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.lines.thread.join(10)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            f.close()


def claude_env(model_port, home, probe_env, **extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANTHROPIC_", "CLAUDE", "OTEL_"))}
    env.update(HOME=str(home), ANTHROPIC_BASE_URL=f"http://127.0.0.1:{model_port}",
               ANTHROPIC_API_KEY="sk-test", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
               DISABLE_AUTOUPDATER="1")
    env.update(probe_env)
    env.update(extra)
    return env


def lines_of(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def result_of(lines):
    results = [m for m in lines if m.get("type") == "result"]
    assert results, "no result line"
    return results[-1]


@unittest.skipUnless(CLAUDE_BIN.exists(), f"the Claude Code CLI is not installed ({CLAUDE_BIN}): "
                     "run `npm ci` in the repository")
@unittest.skipUnless(PROBE.exists(), f"otel_probe is not built ({PROBE})")
class RealCliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="otel-it-")
        self.dir = Path(self.tmp.name)
        (self.dir / "home").mkdir()

    def tearDown(self):
        self.tmp.cleanup()

    def run_batch(self, server, probe, **extra):
        """One `claude -p` run; returns (stream-json lines, exit code, exit time in ms)."""
        proc = subprocess.run(
            [str(CLAUDE_BIN), "-p", "Do the thing.", "--output-format", "stream-json",
             "--verbose", "--model", "claude-sonnet-4-5"],
            env=claude_env(server.port, self.dir / "home", probe.env, **extra),
            cwd=self.dir, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        return lines_of(proc.stdout), proc.returncode, now_ms(), proc.stderr

    def check_sums(self, events, result):
        """Costs add up to total_cost_usd exactly (in emission order), tokens to modelUsage."""
        events = sorted(events, key=lambda e: e["sequence"])
        cost = 0.0
        for e in events:
            cost += e["cost_usd"]
        self.assertEqual(cost, result["total_cost_usd"])
        usage = result["modelUsage"]
        for ours, theirs in (("input_tokens", "inputTokens"), ("output_tokens", "outputTokens"),
                             ("cache_read_tokens", "cacheReadInputTokens"),
                             ("cache_creation_tokens", "cacheCreationInputTokens")):
            self.assertEqual(sum(e[ours] for e in events),
                             sum(m[theirs] for m in usage.values()), ours)

    def test_every_call_subagent_calls_included(self):
        with ScriptedServer("subagent", self.dir) as server, Probe() as probe:
            lines, code, exit_ms, err = self.run_batch(server, probe)
            stats = probe.finish()
            self.assertEqual(code, 0, err)
            requests = server.get("/_test/requests")
        calls = [r for r in requests if r["kind"] in ("main", "agent")]
        self.assertEqual(len(calls), 4)
        events = probe.requests()
        self.assertEqual(len(events), len(calls), events)

        # Main-thread calls: the request ids of stream-json's main-thread assistant lines.
        main = [e for e in events if not e["agent_id"]]
        self.assertEqual(len(main), sum(r["kind"] == "main" for r in calls))
        main_ids = {m["request_id"] for m in lines
                    if m.get("type") == "assistant" and m.get("parent_tool_use_id") is None
                    and m.get("request_id")}
        self.assertEqual({e["request_id"] for e in main}, main_ids)
        for e in main:
            self.assertEqual(e["query_source"], "sdk")

        # Subagent calls: the agent id the CLI sent in x-claude-code-agent-id.
        sub = [e for e in events if e["agent_id"]]
        header_ids = {{k.lower(): v for k, v in r["headers"].items()}["x-claude-code-agent-id"]
                      for r in calls if r["kind"] == "agent"}
        self.assertEqual(len(sub), sum(r["kind"] == "agent" for r in calls))
        self.assertEqual({e["agent_id"] for e in sub}, header_ids)
        for e in sub:
            self.assertTrue(e["query_source"].startswith("agent:"), e)

        result = result_of(lines)
        session = {e["session_id"] for e in events}
        self.assertEqual(session, {result["session_id"]})
        for e in events:
            self.assertTrue(e["request_id"].startswith("req_"), e)
            self.assertEqual(e["model"], "claude-sonnet-4-5")
            self.assertGreater(e["cost_usd"], 0)
            self.assertGreaterEqual(e["ttft_ms"], 0)
            self.assertGreaterEqual(e["duration_ms"], e["ttft_ms"])
            self.assertTrue(e["prompt_id"])
        self.check_sums(events, result)

        # Batch mode: the CLI waits for its last export to be answered before it exits.
        last = max(e["received_ms"] for e in events)
        print(f"\nbatch: last event taken {exit_ms - last} ms before the CLI's exit was seen",
              file=sys.stderr)
        self.assertLessEqual(last, exit_ms + SLACK_MS)
        self.assertEqual((stats["unauthorized"], stats["bad"], stats["dropped"]), (0, 0, 0))
        self.assertGreaterEqual(stats["requests"], 1)

    def test_retried_500_then_ok(self):
        with ScriptedServer("error_500_then_ok", self.dir) as server, Probe() as probe:
            lines, code, _, err = self.run_batch(server, probe)
            probe.finish()
            self.assertEqual(code, 0, err)
            self.assertEqual(server.count()["main_calls"], 2)
        # One event: the answered call. The retried attempt has none (the CLI's choice).
        self.assertEqual([e["kind"] for e in probe.events], ["api_request"])
        ids = {m["request_id"] for m in lines if m.get("type") == "assistant"}
        self.assertEqual({probe.events[0]["request_id"]}, ids)
        self.check_sums(probe.events, result_of(lines))

    def test_retries_exhausted(self):
        with ScriptedServer("error_500", self.dir) as server, Probe() as probe:
            lines, code, _, err = self.run_batch(server, probe, CLAUDE_CODE_MAX_RETRIES="2")
            probe.finish()
            self.assertEqual(code, 1, err)
            self.assertEqual(server.count()["main_calls"], 3)
        kinds = [e["kind"] for e in probe.events]
        self.assertEqual(kinds, ["api_error", "api_retries_exhausted"])
        error, exhausted = probe.events
        self.assertEqual((error["status_code"], error["attempt"]), (500, 3))
        self.assertEqual(error["error"], "Internal server error")
        self.assertTrue(error["request_id"].startswith("req_"))
        self.assertEqual((exhausted["status_code"], exhausted["attempt"]), (500, 3))
        self.assertGreater(exhausted["duration_ms"], 0)
        self.assertTrue(result_of(lines)["is_error"])

    def test_interactive_events_arrive_while_it_runs(self):
        with ScriptedServer("subagent", self.dir) as server, Probe() as probe:
            proc = subprocess.Popen(
                [str(CLAUDE_BIN), "--output-format", "stream-json", "--verbose",
                 "--input-format", "stream-json", "--model", "claude-sonnet-4-5"],
                env=claude_env(server.port, self.dir / "home", probe.env),
                cwd=self.dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True)
            out = Lines(proc.stdout)
            try:
                proc.stdin.write(json.dumps({
                    "type": "user", "message": {"role": "user", "content": "Do the thing."},
                    "parent_tool_use_id": None, "session_id": ""}) + "\n")
                proc.stdin.flush()
                result_ms = None
                while result_ms is None:
                    line = out.get(RUN_TIMEOUT)
                    self.assertTrue(line, "the CLI ended before its result")
                    if json.loads(line).get("type") == "result":
                        result_ms = now_ms()
                # The CLI still runs, waiting for the next turn: the events come anyway.
                self.assertTrue(probe.wait_for(lambda: len(probe.requests()) == 4, 5),
                                probe.events)
                self.assertIsNone(proc.poll())
                last = max(e["received_ms"] for e in probe.requests())
                print(f"\ninteractive: last event taken {last - result_ms} ms after the "
                      f"turn's result", file=sys.stderr)
                self.assertLessEqual(last - result_ms, 1000 + SLACK_MS)
            finally:
                proc.stdin.close()
                proc.wait(RUN_TIMEOUT)
                out.thread.join(10)
                proc.stdout.close()
            stats = probe.finish()
        self.assertEqual(len(probe.requests()), 4)
        self.assertEqual((stats["unauthorized"], stats["bad"], stats["dropped"]), (0, 0, 0))

    def test_wrong_token_is_refused_quietly(self):
        with ScriptedServer("text", self.dir) as server, Probe() as probe:
            env = dict(probe.env)
            env["OTEL_EXPORTER_OTLP_HEADERS"] = "Authorization=Bearer not-the-token"
            probe.env = env
            lines, code, _, err = self.run_batch(server, probe)
            stats = probe.finish()
        self.assertEqual(code, 0)
        self.assertEqual(err, "")  # the CLI says nothing about a refused export
        self.assertFalse(result_of(lines)["is_error"])
        self.assertEqual(probe.events, [])
        self.assertGreaterEqual(stats["unauthorized"], 1)
        self.assertEqual(stats["requests"], 0)


if __name__ == "__main__":
    unittest.main()
