"""ccrunner's Langfuse trace, end to end: the real CLI, the scripted model server and the
Langfuse test receiver, asserted through the receiver's Langfuse-shaped read API (what a
person reading the trace in Langfuse sees)."""

import json
import socket
import sys
import time
import unittest
import urllib.request
import base64
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_ccrunner import (API_KEY, BOT_TOKEN, REPO, CcrunnerTest,  # noqa: E402
                           start_ready, stop_process)

RECEIVER = REPO / "tests" / "support" / "langfuse_receiver.py"
PK, SK = "pk-lf-integration-1234", "sk-lf-integration-secret-5678"


class Receiver:
    def __init__(self):
        self.proc, self.port = start_ready([sys.executable, str(RECEIVER), "--port", "0",
                                            "--public-key", PK, "--secret-key", SK])
        self.url = f"http://127.0.0.1:{self.port}"

    def get(self, path):
        auth = base64.b64encode(f"{PK}:{SK}".encode()).decode()
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Basic {auth}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
            return json.loads(body) if body[:1] in (b"{", b"[") else body

    def session_trace(self, session_id, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            listed = self.get(f"/api/public/traces?sessionId={session_id}")["data"]
            if listed:
                return self.get(f"/api/public/traces/{listed[0]['id']}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no trace for session {session_id}")
            time.sleep(0.1)

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


class TraceTests(CcrunnerTest):
    def setUp(self):
        super().setUp()
        self.rx = Receiver()
        self.addCleanup(self.rx.stop)
        self.spool = self.dir / "spool"

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
        sub = self.obs(t, "subagent-calls")
        self.assertEqual(len(sub), 1, "the subagent's unstreamed calls")
        self.assertEqual(sub[0]["parentObservationId"], agent["id"])
        self.assertGreater(tokens(sub[0]), 0)
        nested = [o for o in t["observations"] if o["parentObservationId"] == agent["id"] and o["type"] == "TOOL"]
        self.assertTrue(nested, "the subagent's tools nest under its Agent tool use")
        self.assertAlmostEqual(t["totalCost"], run.stream.of("result")[-1]["cost"], places=12)

    def test_interactive_one_query_per_message(self):
        stdin = "".join(json.dumps({"type": "user_message", "payload": {"content": c}}) + "\n"
                        for c in ("first", "second"))
        run = self.run_cc("-i", "--session-id", "s-int", stdin=stdin, env=self.lf_env())
        self.assertEqual(run.code, 0, run.describe())
        t = self.rx.session_trace("s-int")
        self.assertEqual(sorted(q["input"] for q in self.obs(t, "claude-query")), ["first", "second"])
        self.assertAlmostEqual(t["totalCost"], run.stream.of("result")[-1]["cost"], places=12)
        self.assertEqual(t["output"]["turns"], 2)

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

    def test_langfuse_down_changes_nothing_and_the_spool_delivers_later(self):
        dead = f"http://127.0.0.1:{free_port()}"
        off = self.run_cc("--session-id", "s-off", "hello")
        self.use("text")
        down = self.run_cc("--session-id", "s-down", "hello", env=self.lf_env(host=dead))
        self.assertEqual(down.code, 0, down.describe())
        self.assertEqual(down.stream.codes(), off.stream.codes())
        self.assertLess(down.elapsed, off.elapsed + 6, "at most the flush deadline (5 s) more")
        self.assertTrue(list(self.spool.glob("lf-*")), "undelivered telemetry is spooled")
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
        both = self.run_cc("--session-id", "s-both", "hello", env=env)
        self.assertEqual(both.code, 0, both.describe())
        self.assertEqual(both.stream.codes(), off.stream.codes())
        self.assertGreater(both.elapsed, off.elapsed + 3, "the black hole holds the flush")
        self.assertLess(both.elapsed, off.elapsed + 7.5, "5 s + 5 s would mean they added up")

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
        self.assertEqual(self.rx.get("/api/public/traces")["data"], [])

    def test_no_secret_anywhere(self):
        self.use("bash")
        env = self.lf_env(BOT_TOKEN=BOT_TOKEN, GITHUB_TOKEN="ghp_integrationSecret0123456789")
        run = self.run_cc("--session-id", "s-sec", "run echo hi", env=env)
        self.assertEqual(run.code, 0, run.describe())
        self.rx.session_trace("s-sec")
        stored = self.rx.raw().decode(errors="replace") + json.dumps(self.rx.session_trace("s-sec"))
        for secret in (API_KEY, SK, BOT_TOKEN, "ghp_integrationSecret0123456789"):
            self.assertNotIn(secret, stored)
            self.assertNotIn(secret, run.stdout)
            self.assertNotIn(secret, run.stderr)


if __name__ == "__main__":
    unittest.main()
