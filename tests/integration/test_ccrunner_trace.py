"""ccrunner's Langfuse trace, end to end: the real CLI, the scripted model server and the
Langfuse test receiver, asserted through Langfuse's public read API (what a person reading
the trace in Langfuse sees). The receiver plays Langfuse v4, the line users run today, unless
a test says v3; every trace read is also checked against v4's rules on what was exported
(check_export): each observation once, trace attributes on every span, no model without its
usage and cost."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import unittest
import urllib.request
import base64
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_ccrunner import (API_KEY, BOT_TOKEN, CCRUNNER, REPO, CcrunnerTest, Live,  # noqa: E402
                           children_of, is_type)
from procs import start_ready, stop_process  # noqa: E402
import lf_read  # noqa: E402

RECEIVER = REPO / "tests" / "support" / "langfuse_receiver.py"
PK, SK = "pk-lf-integration-1234", "sk-lf-integration-secret-5678"


MODEL_ATTRS = ("langfuse.observation.model.name", "gen_ai.request.model", "gen_ai.response.model")


class Receiver:
    def __init__(self, version=4):
        self.version = version
        self.proc, self.port = start_ready([sys.executable, str(RECEIVER), "--port", "0",
                                            "--public-key", PK, "--secret-key", SK,
                                            "--langfuse-version", str(version)])
        self.url = f"http://127.0.0.1:{self.port}"

    def get(self, path):
        auth = base64.b64encode(f"{PK}:{SK}".encode()).decode()
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Basic {auth}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
            return json.loads(body) if body[:1] in (b"{", b"[") else body

    def session_trace(self, session_id, timeout=10):
        """The session's trace as Langfuse shows it, once its root is in; checked against
        what v4 needs of the export."""
        t = lf_read.read_trace(self.url, PK, SK, session_id=session_id, timeout=timeout)
        self.check_export(t)
        return t

    def session_rows(self, session_id):
        """The observations Langfuse v4 lists for a session now (no wait for the root)."""
        return self.get("/api/public/v2/observations?limit=1000&fields=core,basic,io"
                        f"&sessionId={session_id}")["data"]

    def check_export(self, t):
        """Langfuse v4's rules on what was sent for trace t: every observation once (v4 keeps
        each copy, counting its tokens and cost again), every span with the trace's
        attributes (v4 reads them per observation), the root with the trace's input and
        output, a model only beside its usage and cost (v4 prices the rest itself), and
        every request on the real-time path."""
        if self.version == 4:
            ids = [o["id"] for o in t["observations"]]
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise AssertionError(f"observations exported more than once: {dup}")
        if t["input"] is None or t["output"] is None:
            raise AssertionError(f"the root carries no trace input/output: {t['root' if 'root' in t else 'id']}")
        raw = self.raw()
        if not any(r["path"].endswith("/otel/v1/traces") for r in lf_read.raw_requests(raw)):
            return  # the legacy transport: no spans (v3 only)
        spans = [(h, sp) for h, sp in lf_read.raw_spans(raw) if sp["traceId"] == t["id"]]
        if not spans:
            raise AssertionError(f"no span of trace {t['id']} in the raw export")
        for headers, sp in spans:
            a, what = sp["attributes"], f"span {sp['name']} {sp['spanId']}"
            if headers.get("x-langfuse-ingestion-version") != "4":
                raise AssertionError(f"{what}: sent without x-langfuse-ingestion-version: 4")
            for key, want in (("session.id", t["sessionId"]), ("user.id", t["userId"]),
                              ("langfuse.trace.name", "agentic-session")):
                if a.get(key) != want:
                    raise AssertionError(f"{what}: {key} is {a.get(key)!r}, not {want!r}")
            if "claude-code" not in (a.get("langfuse.trace.tags") or []):
                raise AssertionError(f"{what}: no trace tags")
            if "langfuse.trace.metadata.workspace" not in a:
                raise AssertionError(f"{what}: no trace metadata")
            if any(k in a for k in MODEL_ATTRS) and not (
                    a.get("langfuse.observation.usage_details") and a.get("langfuse.observation.cost_details")):
                raise AssertionError(f"{what}: names a model without its usage and cost: {a}")

    def post(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    def raw(self):
        return self.get("/_test/raw")

    def stop(self):
        stop_process(self.proc)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tokens(obs):
    u = obs.get("usageDetails") or {}
    return sum(u.get(k, 0) for k in ("input", "output", "cache_read_input_tokens",
                                     "cache_creation_input_tokens"))


def usage_tokens(usage):
    return sum(usage.get(k, 0) for k in ("input_tokens", "output_tokens", "cache_read_input_tokens",
                                         "cache_creation_input_tokens"))


def usage_tuple(u):
    """(input, output, cache read, cache write) of an API usage or a Langfuse usageDetails."""
    return (u.get("input_tokens", u.get("input", 0)), u.get("output_tokens", u.get("output", 0)),
            u.get("cache_read_input_tokens", 0), u.get("cache_creation_input_tokens", 0))


def call_usage(obs):
    """A model call's usage: a generation's usageDetails, or a per-query span's metadata."""
    if obs.get("usageDetails"):
        return obs["usageDetails"]
    md = obs["metadata"]
    if "usage" in md:
        return json.loads(md["usage"]) if isinstance(md["usage"], str) else md["usage"]
    return {k[len("usage."):]: v for k, v in md.items() if k.startswith("usage.")}  # v4 flattens


def scenario(name):
    return json.loads((REPO / "tests" / "support" / "scenarios" / f"{name}.json").read_text())


class TraceTests(CcrunnerTest):
    def setUp(self):
        super().setUp()
        self.rx = Receiver()
        self.addCleanup(lambda: self.rx.stop())
        self.spool = self.dir / "spool"

    def on_v3(self):
        """From here on, the receiver plays Langfuse v3 (the test's second server line)."""
        self.rx.stop()
        self.rx = Receiver(version=3)

    def lf_env(self, host=None, **extra):
        return self.env(**{"LANGFUSE_ENABLED": "true", "LANGFUSE_HOST": host or self.rx.url,
                           "LANGFUSE_PUBLIC_KEY": PK, "LANGFUSE_SECRET_KEY": SK,
                           "LANGFUSE_SPOOL_DIR": str(self.spool), "USER_ID": "alice",
                           "NAMESPACE": "team-a", "PROJECT_NAME": "proj-a", **extra})

    def obs(self, trace, name=None, type_=None):
        return [o for o in trace["observations"]
                if (name is None or o["name"] == name) and (type_ is None or o["type"] == type_)]

    def test_batch_trace_per_query(self):
        self.use("bash")
        run = self.run_cc("--session-id", "s-batch", "run echo hi", env=self.lf_env())
        self.assertEqual(run.code, 0, run.describe())
        t = self.rx.session_trace("s-batch")
        self.assertEqual((t["name"], t["sessionId"], t["userId"]), ("agentic-session", "s-batch", "alice"))
        self.assertEqual(t["input"], {"prompt": "run echo hi"})
        self.assertEqual(t["output"], {"success": True, "turns": 1, "interactive": False})
        self.assertTrue({"claude-code", "namespace:team-a", "model:claude-opus-5-5"} <= set(t["tags"]))
        md = t["metadata"]
        for key, want in (("namespace", "team-a"), ("project", "proj-a"), ("workspace", str(self.ws)),
                          ("claude_code_version", "2.1.328"), ("model", "claude-opus-5-5")):
            self.assertEqual(str(md.get(key)).strip('"'), want, md)
        self.assertIn("claude_session_id", md)
        result = run.stream.of("result")[0]
        # exactness: what Langfuse adds up is Claude Code's own total
        self.assertAlmostEqual(t["totalCost"], result["cost"], places=12)
        q = self.obs(t, "claude-query")
        self.assertEqual(len(q), 1)
        q = q[0]
        self.assertEqual(q["type"], "GENERATION")
        self.assertEqual(q["input"], "run echo hi")
        self.assertEqual(q["output"], "The command printed: hi")
        self.assertEqual(tokens(q), sum(v for k, v in result["usage"].items()
                                        if k in ("input_tokens", "output_tokens",
                                                 "cache_read_input_tokens",
                                                 "cache_creation_input_tokens")))
        calls = self.obs(t, "model-call")
        self.assertEqual(len(calls), 2)
        self.assertTrue(all(c["parentObservationId"] == q["id"] and c["type"] == "SPAN" for c in calls))
        self.assertTrue(all("time_to_first_token_ms" in c["metadata"] for c in calls), calls)
        bash = self.obs(t, "Bash")[0]
        self.assertEqual((bash["type"], bash["parentObservationId"]), ("TOOL", q["id"]))
        self.assertEqual(bash["input"]["command"], "echo hi")
        self.assertEqual(bash["output"], "hi")

    def test_the_outcome_goes_to_the_termination_log(self):
        """One JSON line at exit for the Pod's status (TERMINATION_LOG, else
        /dev/termination-log): Claude Code's numbers, the trace's id, and on failure why."""
        self.use("bash")
        path = self.dir / "termination-log"
        run = self.run_cc("--session-id", "s-term", "run echo hi",
                          env=self.lf_env(TERMINATION_LOG=str(path)))
        self.assertEqual(run.code, 0, run.describe())
        text = path.read_text()
        self.assertTrue(text.endswith("\n") and text.count("\n") == 1, text)
        self.assertLess(len(text), 4096)
        out = json.loads(text)
        result = run.stream.of("result")[0]
        t = self.rx.session_trace("s-term")
        self.assertEqual(out["success"], True)
        self.assertIsNone(out["error"])
        self.assertAlmostEqual(out["cost"], result["cost"], places=12)
        self.assertEqual(out["turns"], 1)
        self.assertEqual(out["usage"], {k: result["usage"][k] for k in (
            "input_tokens", "output_tokens", "cache_read_input_tokens",
            "cache_creation_input_tokens")})
        self.assertEqual((out["trace_id"], out["session_id"]), (t["id"], "s-term"))

        self.use("error_500")
        run = self.run_cc("--session-id", "s-term-fail", "hello",
                          env=self.env(TERMINATION_LOG=str(path)))
        self.assertEqual(run.code, 1, run.describe())
        out = json.loads(path.read_text())
        self.assertEqual(out["success"], False)
        self.assertIn("HTTP 500", out["error"])
        self.assertIsNone(out["trace_id"])  # tracing off
        self.assertEqual(out["session_id"], "s-term-fail")

    def test_per_call_layout_and_subagent(self):
        self.use("subagent")
        run = self.run_cc("--session-id", "s-sub", "use an agent",
                          env=self.lf_env(LANGFUSE_GENERATIONS="per-call"))
        self.assertEqual(run.code, 0, run.describe())
        t = self.rx.session_trace("s-sub")
        q = self.obs(t, "claude-query")[0]
        self.assertEqual(q["type"], "AGENT")
        calls = self.obs(t, "model-call")
        self.assertTrue(calls and all(c["type"] == "GENERATION" and c["calculatedTotalCost"] > 0
                                      and c["completionStartTime"] for c in calls), calls)
        agent = [o for o in t["observations"] if o["name"] in ("Agent", "Task")][0]
        # Claude Code's own telemetry: each subagent call a generation of its own, under the
        # Agent tool use, with exact numbers; nothing left for a remainder
        sub = [c for c in calls if c["parentObservationId"] == agent["id"]]
        self.assertEqual(len(sub), 2, "the subagent's two calls")
        self.assertEqual(self.obs(t, "subagent-calls"), [])
        self.assertTrue(all(str(c["metadata"].get("cost_source")).strip('"') == "claude-code-telemetry"
                            for c in calls), calls)
        nested = [o for o in t["observations"] if o["parentObservationId"] == agent["id"] and o["type"] == "TOOL"]
        self.assertTrue(nested, "the subagent's tools nest under its Agent tool use")
        self.assertAlmostEqual(t["totalCost"], run.stream.of("result")[-1]["cost"], places=12)

    def test_without_telemetry_the_subagent_is_one_remainder(self):
        """CCRUNNER_CLAUDE_TELEMETRY=off (or an older CLI): a subagent's calls are one
        remainder generation from the turn's modelUsage, totals still exact."""
        self.use("subagent")
        run = self.run_cc("--session-id", "s-sub-off", "use an agent",
                          env=self.lf_env(LANGFUSE_GENERATIONS="per-call",
                                          CCRUNNER_CLAUDE_TELEMETRY="off"))
        self.assertEqual(run.code, 0, run.describe())
        self.assertIn("CCRUNNER_CLAUDE_TELEMETRY", run.stderr)
        t = self.rx.session_trace("s-sub-off")
        agent = [o for o in t["observations"] if o["name"] in ("Agent", "Task")][0]
        sub = self.obs(t, "subagent-calls")
        self.assertEqual(len(sub), 1, "the subagent's unstreamed calls")
        self.assertEqual(sub[0]["parentObservationId"], agent["id"])
        self.assertGreater(tokens(sub[0]), 0)
        self.assertEqual(str(sub[0]["metadata"].get("cost_source")).strip('"'), "apportioned")
        self.assertAlmostEqual(t["totalCost"], run.stream.of("result")[-1]["cost"], places=12)

    def test_every_call_has_what_the_api_served(self):
        """Per call, subagent calls included: the tokens of every model call in the trace
        are those the model API served for that call, and the costs add up to Claude Code's
        own total; in both layouts."""
        sc = scenario("subagent")
        served = sorted(usage_tuple(r["usage"]) for r in sc["responses"] + sc["agent_responses"])
        for layout in ("per-query", "per-call"):
            with self.subTest(layout=layout):
                sid = f"s-percall-{layout}"
                self.use("subagent")
                run = self.run_cc("--session-id", sid, "use an agent",
                                  env=self.lf_env(LANGFUSE_GENERATIONS=layout))
                self.assertEqual(run.code, 0, run.describe())
                t = self.rx.session_trace(sid)
                calls = self.obs(t, "model-call")
                got = sorted(usage_tuple(call_usage(c)) for c in calls)
                self.assertEqual(got, served, calls)
                self.assertAlmostEqual(t["totalCost"], run.stream.of("result")[-1]["cost"], places=12)
                # time to first token from the request (the event's), not the first stream byte
                self.assertTrue(all(c.get("completionStartTime") or
                                    "time_to_first_token_ms" in c["metadata"] for c in calls))

    def test_interactive_one_query_per_message(self):
        stdin = "".join(json.dumps({"type": "user_message", "payload": {"content": c}}) + "\n"
                        for c in ("first", "second"))
        for layout in ("per-query", "per-call"):
            with self.subTest(layout=layout):
                sid = f"s-int-{layout}"
                run = self.run_cc("-i", "--session-id", sid, stdin=stdin,
                                  env=self.lf_env(LANGFUSE_GENERATIONS=layout))
                self.assertEqual(run.code, 0, run.describe())
                t = self.rx.session_trace(sid)
                queries = self.obs(t, "claude-query")
                self.assertEqual(sorted(q["input"] for q in queries), ["first", "second"])
                calls = self.obs(t, "model-call")
                self.assertEqual(len(calls), 2)
                self.assertEqual({c["parentObservationId"] for c in calls}, {q["id"] for q in queries})
                self.assertAlmostEqual(t["totalCost"], run.stream.of("result")[-1]["cost"], places=12)
                self.assertEqual(t["output"], {"success": True, "turns": 2, "interactive": True})

    def test_a_finished_turn_is_exported_while_the_session_goes_on(self):
        live = Live(["--workspace", str(self.ws), "-i", "--session-id", "s-live"], self.lf_env())
        self.addCleanup(lambda: live.proc.poll() is None and live.proc.kill())
        live.say("first")
        live.wait_for(lambda e: e["type"] == "agent.message" and e["payload"]["type"] == "result")
        deadline = time.monotonic() + 10  # the flush interval (1 s) with a loaded machine's slack
        while not [r for r in self.rx.session_rows("s-live") if r["name"] == "claude-query"]:
            self.assertLess(time.monotonic(), deadline, "the first turn was not exported in 10 s")
            time.sleep(0.2)
        self.assertIsNone(live.proc.poll(), "the session is still running")
        rows = self.rx.session_rows("s-live")
        q = [r for r in rows if r["name"] == "claude-query"]
        self.assertEqual(len(q), 1, "exported once, when it ended")
        self.assertEqual((json.loads(q[0]["input"]), json.loads(q[0]["output"])),  # JSON text
                         ("first", scenario("text")["responses"][0]["content"][0]["text"]))
        self.assertEqual(len([r for r in rows if r["name"] == "model-call"]), 1)
        self.assertEqual([r for r in rows if r["parentObservationId"] is None], [],
                         "the root goes out at the end, once")
        live.say("second")
        live.finish(timeout=30)
        self.assertEqual(live.code, 0, live.stderr)
        t = self.rx.session_trace("s-live")
        self.assertEqual(len(self.obs(t, "claude-query")), 2)

    def test_a_user_interrupt_is_a_warning_on_its_query(self):
        self.use("slow")
        live = Live(["--workspace", str(self.ws), "-i", "--session-id", "s-intr"], self.lf_env())
        self.addCleanup(lambda: live.proc.poll() is None and live.proc.kill())
        live.say("slow one")
        live.wait_for(is_type("agent.running"))
        time.sleep(0.8)  # mid-stream
        live.send({"type": "interrupt"})
        live.wait_for(is_type("agent.message", "result"), timeout=20)
        self.use(scenario("text"))
        live.say("after the interrupt")
        live.wait_for(lambda e: sum(1 for x in live.envs if is_type("agent.message", "result")(x)) == 2)
        live.send({"type": "end_session"})
        live.finish()
        self.assertEqual(live.code, 0, live.stderr)
        t = self.rx.session_trace("s-intr")
        self.assertEqual(t["output"], {"success": True, "turns": 2, "interactive": True})
        first, second = sorted(self.obs(t, "claude-query"), key=lambda q: q["startTime"])
        self.assertEqual((first["level"], first["statusMessage"]),
                         ("WARNING", "interrupted: the user asked for it"))
        self.assertEqual(second["level"], "DEFAULT")
        self.assertAlmostEqual(t["totalCost"], live.stream.of("result")[-1]["cost"], places=12)

    def test_tokens_and_cost_equal_what_claude_code_accounted(self):
        """modelUsage counts a subagent's calls, which Claude Code does not stream: Langfuse's
        sums hold them once, in both layouts, and equal every token the model server served."""
        sc = scenario("subagent")
        served = sum(usage_tokens(r["usage"]) for r in sc["responses"] + sc["agent_responses"])
        for version, layout in ((4, "per-query"), (4, "per-call"), (3, "per-query"), (3, "per-call")):
            if version == 3 and self.rx.version == 4:
                self.on_v3()
            with self.subTest(layout=layout, langfuse=version):
                sid = f"s-exact-{layout}-v{version}"
                self.use("subagent")
                before = self.server.count()
                run = self.run_cc("--session-id", sid, "use an agent",
                                  env=self.lf_env(LANGFUSE_GENERATIONS=layout))
                self.assertEqual(run.code, 0, run.describe())
                after = self.server.count()
                self.assertEqual((after["main_calls"] - before["main_calls"],
                                  after["agent_calls"] - before["agent_calls"]),
                                 (len(sc["responses"]), len(sc["agent_responses"])))
                t = self.rx.session_trace(sid)
                gens = self.obs(t, type_="GENERATION")
                self.assertEqual(sum(tokens(g) for g in gens), served, gens)
                result = run.stream.of("result")[-1]
                self.assertLess(usage_tokens(result["usage"]), served, "the result leaves out the subagent")
                self.assertAlmostEqual(t["totalCost"], result["cost"], places=12)
                self.assertAlmostEqual(sum(g["calculatedTotalCost"] for g in gens), result["cost"], places=12)

    def test_failed_session_is_an_error_trace(self):
        self.use("error_500")
        run = self.run_cc("--session-id", "s-err", "hello", env=self.lf_env())
        self.assertEqual(run.code, 1, run.describe())
        t = self.rx.session_trace("s-err")
        self.assertFalse(t["output"]["success"])
        self.assertIn("HTTP 500", t["output"]["error"])
        self.assertEqual(str(t["metadata"]["exception_type"]).strip('"'), "TurnError")
        root = self.obs(t, "agentic-session")[0]
        self.assertEqual(root["level"], "ERROR")
        q = self.obs(t, "claude-query")[0]
        self.assertEqual(q["level"], "ERROR")
        self.assertIn("HTTP 500", q["statusMessage"])

    def assert_failed_trace(self, sid, exception_type, says):
        t = self.rx.session_trace(sid)
        self.assertEqual(t["output"]["success"], False, t["output"])
        self.assertIn(says, t["output"]["error"])
        self.assertEqual(str(t["metadata"]["exception_type"]).strip('"'), exception_type)
        root = self.obs(t, "agentic-session")[0]
        self.assertEqual(root["level"], "ERROR")
        self.assertIn(says, root["statusMessage"])
        self.assertTrue(all(q["level"] == "ERROR" for q in self.obs(t, "claude-query")), t)
        open_ = [o for o in t["observations"] if not o.get("endTime") and o["type"] != "EVENT"]
        self.assertEqual(open_, [], "everything ended")
        return t

    def test_each_session_failure_says_what_happened(self):
        with self.subTest(failure="the model API refuses the key after start"):
            self.use("error_401")
            run = self.run_cc("--session-id", "s-401", "hello", env=self.lf_env())
            self.assertEqual(run.code, 1, run.describe())
            self.assert_failed_trace("s-401", "TurnError", "401")
        with self.subTest(failure="timeout"):
            self.use("slow")
            run = self.run_cc("--session-id", "s-timeout", "--timeout", "1.5", "take your time",
                              env=self.lf_env())
            self.assertEqual(run.code, 1, run.describe())
            t = self.assert_failed_trace("s-timeout", "Timeout", "timed out after 1.5 s")
            self.assertIn("interrupted: Session timed out", self.obs(t, "claude-query")[0]["statusMessage"])
        for sig, kill_what, exc, says in ((signal.SIGTERM, "ccrunner", "Signal", "Session interrupted by SIGTERM"),
                                          (signal.SIGKILL, "claude", "ClaudeCodeExit", "Claude Code")):
            with self.subTest(failure=f"{sig.name} to {kill_what}"):
                self.use("slow")
                sid = f"s-{kill_what}"
                live = Live(["--workspace", str(self.ws), "--session-id", sid, "take your time"],
                            self.lf_env(), stdin=subprocess.DEVNULL)
                self.addCleanup(lambda p=live.proc: p.poll() is None and p.kill())
                live.wait_for(is_type("agent.running"))
                time.sleep(0.5)  # mid-stream
                for pid in ([live.proc.pid] if kill_what == "ccrunner" else children_of(live.proc.pid)):
                    os.kill(pid, sig)
                live.finish(timeout=30)
                self.assertEqual(live.code, 1, live.stderr)
                self.assert_failed_trace(sid, exc, says)

    def run_tail(self, sid, prompt, env):
        """A batch run, and how long it took from its last message to its exit: what
        tracing adds to a session (the final flush, bounded by LANGFUSE_FLUSH_TIMEOUT).
        Timed on the run alone: two runs of the CLI differ by more than a flush under load."""
        run = Live(["--workspace", str(self.ws), "--session-id", sid, prompt], env,
                   stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: run.proc.poll() is None and run.proc.kill())
        run.wait_for(lambda e: e["type"] == "status.update" and e["payload"]["phase"] != "Running",
                     timeout=120, what="the session's last message")
        last = time.monotonic()
        run.finish(timeout=60)
        return run, time.monotonic() - last

    def test_langfuse_failures_change_nothing_and_lose_nothing(self):
        """Each way Langfuse can fail: the session is what it is with tracing off, its end is
        late by at most LANGFUSE_FLUSH_TIMEOUT, and the whole trace reaches Langfuse, now or
        through the spool with the next run."""
        self.use("bash")
        off = self.run_cc("--session-id", "s-ref", "run echo hi")
        self.assertEqual(off.code, 0, off.describe())
        # slow: answered well inside the 2 s flush deadline, also on a loaded machine (a request
        # that the deadline cuts off after the server took it is spooled and sent again, which
        # Langfuse v4 would keep twice until its table merges the copies)
        modes = {"slow": {"mode": "slow", "delay_ms": 500},
                 "500": {"mode": "status", "status": 500},
                 "429": {"mode": "status", "status": 429, "retry_after": "1"},
                 "401": {"mode": "status", "status": 401},
                 "black hole": {"mode": "blackhole"}}
        for name, mode in modes.items():
            with self.subTest(langfuse=name):
                sid = "s-lf-" + name.replace(" ", "-")
                self.use("bash")
                self.rx.post("/_test/mode", mode)
                run, tail = self.run_tail(sid, "run echo hi",
                                          self.lf_env(LANGFUSE_FLUSH_TIMEOUT="2"))
                self.rx.post("/_test/mode", {"mode": "ok"})
                self.assertEqual(run.code, 0, run.stderr)
                self.assertEqual(run.stream.codes(), off.stream.codes())
                self.assertLess(tail, 2 + 1.5, "the flush deadline (2 s) holds")
                self.use("text")
                nxt = self.run_cc("--session-id", sid + "-next", "hello", env=self.lf_env())
                self.assertEqual(nxt.code, 0, nxt.describe())
                t = self.rx.session_trace(sid)
                self.assertEqual(t["output"]["success"], True, t["output"])
                self.assertEqual(len(self.obs(t, "model-call")), 2)
                self.assertEqual(self.obs(t, "Bash")[0]["output"], "hi")
                self.assertAlmostEqual(t["totalCost"], run.stream.of("result")[0]["cost"], places=12)

    def test_ingestion_transport_is_for_v3(self):
        """On a v4 server the legacy API is refused: one line says so, the session is as it
        would be, what was refused is spooled (and delivered by a run against a v3 server)."""
        self.use("bash")
        off = self.run_cc("--session-id", "s-ingest-off", "run echo hi")
        self.use("bash")
        run = self.run_cc("--session-id", "s-ingest-v4", "run echo hi",
                          env=self.lf_env(LANGFUSE_TRANSPORT="ingestion"))
        self.assertEqual(run.code, 0, run.describe())
        self.assertEqual(run.stream.codes(), off.stream.codes())
        said = [l for l in run.stderr.splitlines() if "LANGFUSE_TRANSPORT=otlp" in l]
        self.assertEqual(len(said), 1, run.stderr)
        self.assertIn("legacy", said[0])
        self.assertEqual(self.rx.get("/_test/stats")["rows"], 0)
        self.assertTrue(list(self.spool.glob("lf-*")), "what was refused is spooled")

        self.on_v3()
        self.use("bash")
        run = self.run_cc("--session-id", "s-ingest", "run echo hi",
                          env=self.lf_env(LANGFUSE_TRANSPORT="ingestion"))
        self.assertEqual(run.code, 0, run.describe())
        paths = {r["path"] for r in self.rx.get("/_test/requests")}
        self.assertEqual(paths, {"/api/public/ingestion"})
        t = self.rx.session_trace("s-ingest")
        self.assertEqual((t["name"], t["userId"]), ("agentic-session", "alice"))
        self.assertEqual(t["output"], {"success": True, "turns": 1, "interactive": False})
        q = self.obs(t, "claude-query")[0]
        result = run.stream.of("result")[0]
        self.assertEqual((q["type"], q["input"]), ("GENERATION", "run echo hi"))
        self.assertAlmostEqual(t["totalCost"], result["cost"], places=12)
        self.assertEqual(tokens(q), usage_tokens(result["usage"]))
        self.assertEqual(len(self.obs(t, "model-call")), 2)
        self.assertEqual(self.obs(t, "Bash")[0]["input"]["command"], "echo hi")
        # the v4 server's refusals, spooled, reach the v3 server with this run
        self.assertEqual(self.rx.session_trace("s-ingest-v4")["output"]["success"], True)
        self.assertEqual(list(self.spool.glob("lf-*")), [])

    def test_masked_messages_leave_no_text(self):
        self.use("demo")
        run = self.run_cc("--session-id", "s-mask", "Write NOTES.md, then summarise the build log",
                          env=self.lf_env(LANGFUSE_MASK_MESSAGES="true"))
        self.assertEqual(run.code, 0, run.describe())
        t = self.rx.session_trace("s-mask")
        stored = self.rx.raw().decode(errors="replace") + json.dumps(t)
        for text in ("NOTES", "build.log", "Written by the ccrunner demo", "workspace is empty",
                     "ls -a", "No such file"):
            self.assertNotIn(text, stored)
        failed = [o for o in t["observations"] if o["type"] == "TOOL" and o["level"] == "ERROR"]
        self.assertEqual(len(failed), 1, "the failure itself is still shown")
        self.assertAlmostEqual(t["totalCost"], run.stream.of("result")[0]["cost"], places=12)

    def test_langfuse_down_changes_nothing_and_the_spool_delivers_later(self):
        dead = f"http://127.0.0.1:{free_port()}"
        off = self.run_cc("--session-id", "s-off", "hello")
        self.use("text")
        down, tail = self.run_tail("s-down", "hello", self.lf_env(host=dead))
        self.assertEqual(down.code, 0, down.stderr)
        self.assertEqual(down.stream.codes(), off.stream.codes())
        self.assertLess(tail, 5 + 1.5, "at most the flush deadline (5 s) more")
        spooled = sorted(self.spool.glob("lf-*"))
        self.assertTrue(spooled, "undelivered telemetry is spooled")
        # and can be read without any server: lftrace prints the spooled trace as a tree
        tree = subprocess.run([str(CCRUNNER.parent / "lftrace"), *map(str, spooled)],
                              capture_output=True, text=True, timeout=30)
        self.assertEqual(tree.returncode, 0, tree.stderr)
        self.assertIn("session s-down  user alice", tree.stdout)
        self.assertIn("claude-query [generation claude-opus-5-5]", tree.stdout)
        # the next run, with Langfuse up, delivers the spooled trace too
        self.use("text")
        up = self.run_cc("--session-id", "s-next", "hello", env=self.lf_env())
        self.assertEqual(up.code, 0, up.describe())
        self.rx.session_trace("s-next")
        t = self.rx.session_trace("s-down")
        self.assertEqual(t["output"]["success"], True)

    def test_dead_backend_and_dead_langfuse_overlap_at_the_end(self):
        """A black-hole Langfuse and an unreachable backend each cost their 5 s deadline, at
        the same time, not one after the other."""
        off = self.run_cc("--session-id", "s-off2", "hello")
        self.rx.post("/_test/mode", {"mode": "blackhole"})
        env = self.lf_env(WEBSOCKET_URL=f"ws://127.0.0.1:{free_port()}/ws", BOT_TOKEN=BOT_TOKEN)
        both, tail = self.run_tail("s-both", "hello", env)
        self.assertEqual(both.code, 0, both.stderr)
        self.assertEqual(both.stream.codes(), off.stream.codes())
        self.assertGreater(tail, 4.5, "the black hole holds the flush its 5 s")
        self.assertLess(tail, 5 + 2.5, "5 s + 5 s would mean they added up")

    def test_misconfigured_langfuse_is_one_warning(self):
        for extra, says in (({"LANGFUSE_SECRET_KEY": ""}, "LANGFUSE_SECRET_KEY"),
                            ({"LANGFUSE_FLUSH_TIMEOUT": "soon"}, "LANGFUSE_FLUSH_TIMEOUT")):
            with self.subTest(extra=extra):
                env = self.lf_env(**extra)
                if not extra.get("LANGFUSE_SECRET_KEY", True):
                    del env["LANGFUSE_SECRET_KEY"]
                run = self.run_cc("say hello", env=env)
                self.assertEqual(run.code, 0, run.describe())
                self.assertEqual(run.stream.final_status()["phase"], "Completed")
                warnings = [l for l in run.stderr.splitlines() if says in l]
                self.assertEqual(len(warnings), 1, run.stderr)
        self.assertEqual(self.rx.get("/_test/stats")["rows"], 0)

    def test_no_secret_anywhere(self):
        """Secret values never leave in telemetry, logs or the stream: not from the
        environment, and not when the prompt itself carries them (a pasted key)."""
        gh = "ghp_integrationSecret0123456789"
        gkey = "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCintegration\\n-----END PRIVATE KEY-----\\n"
        creds = self.dir / "sa.json"
        creds.write_text(json.dumps({"type": "service_account", "project_id": "p",
                                     "private_key_id": "0123456789abcdef0123456789abcdef01234567",
                                     "private_key": gkey.replace("\\n", "\n")}))
        secrets = (API_KEY, SK, BOT_TOKEN, gh, "0123456789abcdef0123456789abcdef01234567",
                   "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCintegration")
        env = self.lf_env(BOT_TOKEN=BOT_TOKEN, GITHUB_TOKEN=gh, LANGFUSE_DEBUG="true",
                          GOOGLE_APPLICATION_CREDENTIALS=str(creds))
        for sid, prompt in (("s-sec", "run echo hi"),
                            ("s-sec-pasted", "run echo hi; keys: " + " ".join(secrets))):
            with self.subTest(prompt=prompt[:20]):
                self.use("bash")
                run = self.run_cc("--session-id", sid, prompt, env=env)
                self.assertEqual(run.code, 0, run.describe())
                stored = self.rx.raw().decode(errors="replace") + json.dumps(self.rx.session_trace(sid))
                for secret in secrets:
                    self.assertNotIn(secret, stored)
                    self.assertNotIn(secret, run.stderr)
                    if sid == "s-sec":
                        self.assertNotIn(secret, run.stdout)

if __name__ == "__main__":
    unittest.main()
