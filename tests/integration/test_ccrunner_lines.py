"""ccrunner end to end on the lines Claude Code prints that a strict JSON decoder refuses:
every line the CLI itself would read (what JavaScript's JSON.parse reads) is relayed and
traced with its text whole, and no line, whatever it holds, can leave a session waiting.

The first test runs the real CLI (npm, 2.1.328) against the scripted model server, with the
WebSocket backend and the Langfuse test receiver (Langfuse v4) on loopback. The others put
a stand-in for the CLI in its place (written into the test's directory), because the real one
never prints a line that cannot be decoded at all: they show what becomes of such a line.
Run by ctest with CCRUNNER set to the binary under test.
"""

import json
import sys
import textwrap
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_ccrunner import BOT_TOKEN, Backend, CcrunnerTest, Live, is_type  # noqa: E402
from test_ccrunner_trace import Receiver, PK, SK  # noqa: E402

LONE = "\ufffd"  # what a lone surrogate reads as
FIRST = f"first: lone high [{LONE}] nul [\x00] lone low [{LONE}] pair [\U0001F600] end"
FINAL = f"final: lone high [{LONE}] nul [\x00] lone low [{LONE}] pair [\U0001F600] end"
TOOL_OUTPUT = f"a\x00b [{LONE}{LONE}{LONE}] c [{LONE}]"


class WholeTextTests(CcrunnerTest):
    def test_lone_surrogates_and_nul_are_relayed_and_traced_whole(self):
        """The scenario lone_surrogate_nul: the scripted model's two texts hold a lone high
        and a lone low surrogate, an escaped NUL and a surrogate pair; its Bash tool use
        prints a NUL byte and bytes that are not UTF-8 (ED A0 BD, FF). The server's SSE JSON
        comes from Python's json.dumps, which writes the str's lone surrogates as the escapes
        "\\ud83d" and "\\ude00" and the NUL as "\\u0000".

        What the real CLI 2.1.328 printed on its stdout (run by hand, captured in
        tests/fixtures/claude-code-2.1.328-escapes/): the lone surrogates as those same
        escapes (JSON.stringify escapes a lone surrogate), in the text_delta stream events,
        in the assistant lines and in the result line's "result"; the NUL as "\\u0000"; the
        pair as raw UTF-8. The tool result came as "a\\u0000b [...] c [...]" with four U+FFFD
        as raw UTF-8 (the CLI reads the tool's output bytes with replacement, one U+FFFD per
        maximal invalid subpart: ED A0 BD gives three). Exit code 0, nothing on stderr.
        jansson refuses each line holding \\ud83d; before the fix the result line was dropped
        and this batch session waited for ever.

        Expected: the session ends with exit 0; on stdout, on the WebSocket and in the trace
        every text is whole, each lone surrogate U+FFFD, the NUL kept (and sent as \\u0000)."""
        self.use("lone_surrogate_nul")
        rx = Receiver()
        self.addCleanup(rx.stop)
        backend = Backend(token=BOT_TOKEN)
        self.addCleanup(backend.stop)
        env = self.env(LANGFUSE_ENABLED="true", LANGFUSE_HOST=rx.url, LANGFUSE_PUBLIC_KEY=PK,
                       LANGFUSE_SECRET_KEY=SK, LANGFUSE_SPOOL_DIR=str(self.dir / "spool"),
                       USER_ID="alice", WEBSOCKET_URL=backend.url, BOT_TOKEN=BOT_TOKEN)
        run = self.run_cc("--session-id", "s-whole", "say it", env=env)  # bounded: RUN_TIMEOUT
        self.assertEqual(run.code, 0, run.describe())
        self.assertEqual(run.stream.codes(),
                         ["status:Running", "running", "sys", "text", "tool_use", "tool_result",
                          "text", "result", "status:Completed"], run.describe())
        self.assertEqual([p["content"] for p in run.stream.of("text")], [FIRST, FINAL])
        self.assertEqual(run.stream.of("tool_result")[0]["content"], TOOL_OUTPUT)
        self.assertFalse(run.stream.of("result")[0]["is_error"])
        self.assertIn('nul [\\u0000] lone low', run.stdout)  # the NUL travels escaped
        self.assertNotIn("could not be decoded", run.stderr)
        # the WebSocket got the same envelopes
        self.assertEqual([f["json"] for f in backend.frames()], run.stream.envs)

        t = rx.session_trace("s-whole")
        self.assertEqual(t["output"], {"success": True, "turns": 1, "interactive": False})
        query = [o for o in t["observations"] if o["name"] == "claude-query"]
        self.assertEqual([q["output"] for q in query], [FINAL])
        bash = [o for o in t["observations"] if o["name"] == "Bash"]
        self.assertEqual([b["output"] for b in bash], [TOOL_OUTPUT])
        calls = sorted((o for o in t["observations"] if o["name"] == "model-call"),
                       key=lambda o: o["startTime"])
        texts = [[b["text"] for b in c["output"] if b["type"] == "text"] for c in calls]
        self.assertEqual(texts, [[FIRST], [FINAL]])


# A stand-in for the CLI: answers a user turn with the lines the test gives it (one JSON
# string each, written as is), waits for a control_response when a line asks for one, and
# exits 0 when its stdin closes, as the CLI does.
FAKE_CLI = textwrap.dedent("""\
    #!/usr/bin/env python3
    import json, sys
    script = json.load(open(sys.argv[0] + ".json"))
    out = sys.stdout.buffer
    for line in sys.stdin:
        if json.loads(line).get("type") != "user":
            continue
        for item in script:
            out.write(item["line"].encode("latin-1") + b"\\n")
            out.flush()
            while item.get("wait_answer"):
                answer = json.loads(sys.stdin.readline() or "null")
                if answer is None:
                    sys.exit(3)
                if answer.get("type") == "control_response":
                    sys.stderr.write("answered: " + json.dumps(answer) + "\\n")
                    break
    """)

INIT = json.dumps({"type": "system", "subtype": "init", "session_id": "fake",
                   "model": "fake-model", "permissionMode": "acceptEdits",
                   "claude_code_version": "0.0.0-fake"})


def deep(n=3000):
    """Arrays nested deeper than jansson reads (2048 levels); JSON.parse reads them."""
    return "[" * n + "]" * n


def result_line(text, is_error=False, extra=""):
    """A result line as the CLI writes it: "type" after the text."""
    return ('{"duration_api_ms":5,"total_cost_usd":0.001,"usage":{"input_tokens":3,'
            f'"output_tokens":2}},"modelUsage":{{}},"permission_denials":{extra or "[]"},'
            f'"is_error":{json.dumps(is_error)},"num_turns":1,"subtype":"success",'
            f'"result":{json.dumps(text)},"type":"result","duration_ms":7,"uuid":"u-1"}}')


class UnreadableLineTests(CcrunnerTest):
    def fake(self, *items):
        """Points CLAUDE_CODE_PATH at the stand-in CLI, scripted with `items`."""
        path = self.dir / "fake-claude"
        path.write_text(FAKE_CLI)
        path.chmod(0o755)
        Path(str(path) + ".json").write_text(json.dumps(list(items)))
        return self.env(CLAUDE_CODE_PATH=str(path))

    def test_a_result_that_cannot_be_read_ends_the_turn_as_failed(self):
        """A result line nested deeper than jansson reads: the session does not wait for a
        result that will not come; the turn ends as failed, saying why, and it exits 1."""
        env = self.fake({"line": INIT},
                        {"line": "this is not JSON \u00ff\x01 at all"},
                        {"line": result_line("done", extra=deep())})
        run = self.run_cc("go", env=env, timeout=30)
        self.assertEqual(run.code, 1, run.describe())
        self.assertEqual(run.stream.codes(),
                         ["status:Running", "running", "sys", "sys", "error", "result!",
                          "status:Failed"], run.describe())
        skipped = run.stream.system()[1]
        self.assertIn("could not be decoded and was skipped", skipped)
        error = run.stream.of("error")[0]["content"]
        self.assertIn("Claude Code's result line could not be read: column", error)
        self.assertIn("maximum parsing depth", error)
        self.assertIn("Session failed: Claude Code's result line could not be read",
                      run.stream.final_status()["message"])
        # each such line once on stderr, with a bounded, printable excerpt
        self.assertEqual(run.stderr.count("this is not JSON \\xff\\x01 at all"), 1, run.stderr)
        self.assertEqual(run.stderr.count("ccrunner: Claude Code's result line could not be read: "
                                          "column"), 1, run.stderr)
        longest = max(len(line) for line in run.stderr.splitlines())
        self.assertLess(longest, 800, "an excerpt is bounded (the line has 6000 brackets)")

    def test_results_jansson_refuses_but_javascript_reads(self):
        """A result holding an integer beyond 64 bits, a number beyond a double and a raw
        byte that is not UTF-8: decoded as JavaScript would, the session succeeds."""
        line = result_line("big [X]").replace('"num_turns":1', '"num_turns":1,'
                                               '"big":100000000000000000000,"inf":1e400')
        line = line.replace("X", "\u00ff")  # written as the single byte FF (latin-1)
        env = self.fake({"line": INIT}, {"line": line})
        run = self.run_cc("go", env=env, timeout=30)
        self.assertEqual(run.code, 0, run.describe())
        self.assertEqual(run.stream.codes(), ["status:Running", "running", "sys", "result",
                                              "status:Completed"], run.describe())

    def test_a_control_request_that_cannot_be_read_is_answered(self):
        """A permission question nested deeper than jansson reads: it is answered with an
        error under its request id, so the CLI does not wait for ever; the turn goes on."""
        ask = ('{"type":"control_request","request_id":"req-deep-1","request":'
               f'{{"subtype":"can_use_tool","tool_name":"Bash","input":{{"x":{deep()}}}}}}}')
        env = self.fake({"line": INIT}, {"line": ask, "wait_answer": True},
                        {"line": result_line("after the answer")})
        live = Live(["--workspace", str(self.ws), "-i"], env)
        self.addCleanup(lambda: live.proc.poll() is None and live.proc.kill())
        live.say("go")
        live.wait_for(is_type("agent.message", "result"), timeout=30, what="the turn's result")
        live.finish(timeout=30)
        self.assertEqual(live.code, 0, live.stderr)
        answered = [json.loads(line.split("answered: ", 1)[1])
                    for line in live.stderr.splitlines() if "answered: " in line]
        self.assertEqual(len(answered), 1, live.stderr)
        response = answered[0]["response"]
        self.assertEqual((response["subtype"], response["request_id"]), ("error", "req-deep-1"))
        self.assertIn("control request could not be read", response["error"])


if __name__ == "__main__":
    unittest.main()
