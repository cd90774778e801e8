"""ccrunner under the faults a demanding user makes: signals while the session ends, a
runner killed outright, a failing model API, big prompts. The real CLI, the scripted model
server and the Langfuse test receiver (Langfuse v4) on loopback. Run by ctest with CCRUNNER
set to the binary under test."""

import gzip
import json
import os
import signal
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_ccrunner import CCRUNNER, REPO, CcrunnerTest, Live, is_type  # noqa: E402
from procs import run_for_peak_rss  # noqa: E402
from test_ccrunner_trace import PK, SK, Receiver  # noqa: E402
import lf_read  # noqa: E402


def journal_text(path):
    """A journal file's body as text ("" if it is being replaced)."""
    try:
        raw = path.read_bytes()
        return (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode(errors="replace")
    except (OSError, EOFError):
        return ""


class FaultTests(CcrunnerTest):
    def setUp(self):
        super().setUp()
        self.rx = Receiver()
        self.addCleanup(lambda: self.rx.stop())
        self.spool = self.dir / "spool"

    def lf_env(self, **extra):
        return self.env(**{"LANGFUSE_ENABLED": "true", "LANGFUSE_HOST": self.rx.url,
                           "LANGFUSE_PUBLIC_KEY": PK, "LANGFUSE_SECRET_KEY": SK,
                           "LANGFUSE_SPOOL_DIR": str(self.spool), "USER_ID": "alice", **extra})

    def batch(self, sid, env, *args):
        return Live(["--workspace", str(self.ws), "--session-id", sid, *args, "run echo hi"], env,
                    stdin=open(os.devnull))

    def test_a_signal_during_the_final_flush_spools_and_keeps_the_exit_code(self):
        """Langfuse a black hole, the session done: SIGTERM during the final flush ends the
        runner soon with the session's own code (not 143), one line on stderr, and what was
        not delivered spooled, so that the next run delivers the whole trace."""
        self.use("bash")
        self.rx.post("/_test/mode", {"mode": "blackhole"})
        live = self.batch("s-flush-sig", self.lf_env(LANGFUSE_FLUSH_TIMEOUT="20"))
        self.addCleanup(lambda: live.proc.poll() is None and live.proc.kill())
        live.wait_for(is_type("status.update"), what="the start")
        live.wait_for(lambda e: e["type"] == "status.update" and e["payload"]["phase"] == "Completed",
                      what="the session's last message")
        sent = time.monotonic()
        live.proc.send_signal(signal.SIGTERM)
        live.finish(timeout=30)
        took = time.monotonic() - sent
        self.assertEqual(live.code, 0, live.stderr)  # the session succeeded: 0, not 143
        self.assertLess(took, 10, "ended by the signal, not by the 20 s flush deadline")
        said = [l for l in live.stderr.splitlines() if "SIGTERM" in l]
        self.assertEqual(len(said), 1, live.stderr)
        self.assertIn("spooled", said[0])
        self.assertTrue(list(self.spool.glob("lf-*")), "what was not delivered is spooled")

        self.rx.post("/_test/mode", {"mode": "ok"})
        self.use("text")
        nxt = self.run_cc("--session-id", "s-flush-next", "hello", env=self.lf_env())
        self.assertEqual(nxt.code, 0, nxt.describe())
        t = self.rx.session_trace("s-flush-sig")
        self.assertEqual(t["output"]["success"], True)
        self.assertEqual(len(self.obs(t, "model-call")), 2)

    def test_a_second_signal_ends_the_runner_at_once_with_the_sessions_code(self):
        self.use("error_500")
        self.rx.post("/_test/mode", {"mode": "blackhole"})
        live = self.batch("s-two-sigs", self.lf_env(LANGFUSE_FLUSH_TIMEOUT="20"))
        self.addCleanup(lambda: live.proc.poll() is None and live.proc.kill())
        live.wait_for(lambda e: e["type"] == "status.update" and e["payload"]["phase"] == "Failed",
                      what="the session's last message")
        live.proc.send_signal(signal.SIGTERM)
        live.proc.send_signal(signal.SIGINT)
        live.finish(timeout=30)
        self.assertEqual(live.code, 1, live.stderr)  # the failed session's code
        self.assertIn("second signal", live.stderr)

    def obs(self, trace, name):
        return [o for o in trace["observations"] if o["name"] == name]

    def test_a_killed_runner_is_completed_by_the_next_run(self):
        """kill -9 of the runner mid-session: what ended a flush interval before is in
        Langfuse or the spool, and the next run with that spool completes the session: its
        root at level ERROR, saying the runner ended without closing it."""
        self.use("slow")
        live = self.batch("s-killed", self.lf_env())
        self.addCleanup(lambda: live.proc.poll() is None and live.proc.kill())
        live.wait_for(is_type("agent.running"), what="the turn")
        deadline = time.monotonic() + 20  # the root's journal, up to date within a flush interval
        while not any("run echo hi" in journal_text(p) for p in self.spool.glob("lf-open-*")):
            self.assertLess(time.monotonic(), deadline, "no up-to-date journal of the open session")
            time.sleep(0.1)
        live.proc.kill()
        live.finish(timeout=30)
        self.use("text")
        nxt = self.run_cc("--session-id", "s-after-kill", "hello", env=self.lf_env())
        self.assertEqual(nxt.code, 0, nxt.describe())
        t = self.rx.session_trace("s-killed")
        root = t["root"]
        self.assertEqual(root["level"], "ERROR")
        self.assertEqual(root["statusMessage"], "the runner ended without closing the session")
        self.assertEqual(t["input"], {"prompt": "run echo hi"})

    def test_a_failing_api_says_why_on_stderr(self):
        self.use("error_500")
        run = self.run_cc("hello")
        self.assertEqual(run.code, 1, run.describe())
        lines = [l for l in run.stderr.splitlines() if l.startswith("ccrunner: session failed:")]
        self.assertEqual(len(lines), 1, run.stderr)
        self.assertIn("HTTP 500", lines[0])

    def test_an_empty_langfuse_host_is_said(self):
        run = self.run_cc("hello", env=self.lf_env(LANGFUSE_HOST=""))
        self.assertEqual(run.code, 0, run.describe())
        said = [l for l in run.stderr.splitlines() if "LANGFUSE_HOST" in l]
        self.assertEqual(len(said), 1, run.stderr)
        self.assertTrue(said[0].startswith("ccrunner: langfuse: "), said)

    def test_a_prompt_past_the_argument_limit_comes_from_a_file_or_stdin(self):
        big = "Summarise this. " + "x" * (300 << 10)  # over the kernel's 128 KiB per argument
        path = self.dir / "prompt.txt"
        path.write_text(big)
        for how, args, stdin in (("file", ["--prompt-file", str(path)], None),
                                 ("stdin", ["--prompt-file", "-"], big),
                                 ("env", [], None)):
            with self.subTest(how=how):
                env = self.env(INITIAL_PROMPT_FILE=str(path)) if how == "env" else None
                run = self.run_cc(*args, env=env, stdin=stdin)
                self.assertEqual(run.code, 0, run.describe())
                main = [r for r in self.server.get("/_test/requests") if r["kind"] == "main"]
                users = [m for m in main[-1]["body"]["messages"] if m["role"] == "user"]
                self.assertTrue(any(big in json.dumps(m["content"]) for m in users),
                                "the whole prompt reached the model")

    def test_a_10_mb_write_costs_the_runner_under_three_lines(self):
        """A Write whose content is 10 MB, traced: the file is written whole, the trace has
        the tool use (its input cut visibly) and the calls' usage and cost, and the runner's
        own peak RSS stays under 3 x its largest line + 16 MiB (memory, not time: a loaded
        machine cannot move it). Under the sanitizers, whose shadow memory and quarantine
        multiply every allocation, only the bound is not checked."""
        content = "".join(f"line {i:07d} of a big file\n" for i in range(400_000))  # 10.4 MB
        sc = json.loads((REPO / "tests/support/scenarios/write.json").read_text())
        first = sc["responses"][0]
        first["content"] = first["content"][1:]  # the Write alone
        first["content"][0]["input"]["content"] = content
        first["json_chunks"] = len(content) // 4096
        # What a model could really have said (its output cap), not size / 4: Claude Code
        # compacts (an extra call) when the usage says that its context is full.
        first["usage"]["output_tokens"] = 32000
        self.use(sc)
        argv = [str(CCRUNNER), "--workspace", str(self.ws), "--session-id", "s-big-write",
                "write the file"]
        code, out, err, peak = run_for_peak_rss(argv, self.lf_env(), timeout=120)
        self.assertEqual(code, 0, err.decode(errors="replace")[-2000:])
        self.assertEqual((self.ws / "hello.txt").read_text(), content)
        t = self.rx.session_trace("s-big-write")
        write = self.obs(t, "Write")
        self.assertEqual(len(write), 1)
        self.assertIn("...[truncated ", json.dumps(write[0]["input"]))
        envs = [json.loads(l) for l in out.splitlines()]
        result = [e["payload"] for e in envs if e["payload"].get("type") == "result"][-1]
        self.assertGreater(result["cost"], 0)
        self.assertAlmostEqual(t["totalCost"], result["cost"], places=12)
        line = max(len(l) for l in out.splitlines())
        self.assertGreater(line, len(content))
        if os.environ.get("CCRUNNER_SANITIZED") != "1":
            self.assertLess(peak, 3 * line + (16 << 20),
                            f"peak RSS {peak / 2**20:.1f} MiB for a {line / 2**20:.1f} MiB line")


if __name__ == "__main__":
    unittest.main()
