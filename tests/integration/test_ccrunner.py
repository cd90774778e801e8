"""ccrunner end to end: the real binary driving the real Claude Code CLI (npm, 2.1.328)
against the scripted Anthropic server, and a real WebSocket backend, all on loopback.

Every test asserts what a user sees: the message stream on stdout (and on the WebSocket),
stderr, exit codes, files in the workspace. Run by ctest with CCRUNNER set to the binary
under test; skipped, saying why, when the CLI is not installed.
"""

import errno
import json
import os
import re
import select
import selectors
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "support"))
from procs import read_line, start_ready, stop_process  # noqa: E402
from test_anthropic_server import CLAUDE_BIN, ScriptedServer  # noqa: E402

CCRUNNER = Path(os.environ.get("CCRUNNER") or REPO / "build" / "ccrunner").resolve()
WS_BACKEND = REPO / "tests" / "support" / "ws_backend.py"
API_KEY = "sk-ant-api03-integration-secret-KEY-0123456789"
BOT_TOKEN = "bot-token-integration-secret-9876543210"
RUN_TIMEOUT = 90
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def base_env(port, home, **extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANTHROPIC_", "CLAUDE", "LANGFUSE_", "INITIAL_PROMPT",
                                "PROMPT", "INTERACTIVE", "WORKSPACE_PATH", "SESSION_ID",
                                "TIMEOUT", "IDLE_TIMEOUT", "WEBSOCKET_URL", "BOT_TOKEN",
                                "PERMISSION_MODE", "LLM_MODEL", "USE_VERTEX_AI", "VERTEX_"))}
    env.update(HOME=str(home), ANTHROPIC_BASE_URL=f"http://127.0.0.1:{port}",
               ANTHROPIC_API_KEY=API_KEY, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
               CLAUDE_CODE_MAX_RETRIES="1", CLAUDE_CODE_PATH=str(CLAUDE_BIN))
    env.update(extra)
    return env


class Stream:
    """The parsed message stream, with the checks every run must pass."""

    def __init__(self, text):
        self.text = text
        self.envs = [json.loads(line) for line in text.splitlines() if line.strip()]

    def check(self, tc):
        for i, e in enumerate(self.envs, 1):
            tc.assertEqual(set(e), {"seq", "type", "timestamp", "payload"}, e)
            tc.assertEqual(e["seq"], i, "seq must count from 1 with no gaps")
            tc.assertRegex(e["timestamp"], TS)
            tc.assertIsInstance(e["payload"], dict)

    def codes(self):
        """Short names: status:Running, running, waiting, sys, text, tool_use, ... result!"""
        out = []
        for e in self.envs:
            p, t = e["payload"], e["type"]
            if t == "status.update":
                out.append("status:" + p["phase"])
            elif t == "agent.running":
                out.append("running")
            elif t == "agent.waiting":
                out.append("waiting")
            elif t == "system.message":
                out.append("sys")
            else:
                out.append(p["type"] + ("!" if p.get("is_error") else ""))
        return out

    def of(self, ptype):
        return [e["payload"] for e in self.envs
                if e["type"] == "agent.message" and e["payload"]["type"] == ptype]

    def system(self):
        return [e["payload"]["message"] for e in self.envs if e["type"] == "system.message"]

    def final_status(self):
        return [e["payload"] for e in self.envs if e["type"] == "status.update"][-1]


class Run:
    def __init__(self, proc, stdout, stderr, elapsed):
        self.code = proc.returncode
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed
        self.stream = Stream(stdout if not stdout.startswith("[") else "")

    def describe(self):
        return f"exit {self.code}\nstdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-3000:]}"


class Backend:
    """tests/support/ws_backend.py on a free port."""

    def __init__(self, token=None):
        cmd = [sys.executable, str(WS_BACKEND), "--port", "0"]
        if token:
            cmd += ["--token", token]
        self.proc, self.port = start_ready(cmd)
        self.url = f"ws://127.0.0.1:{self.port}/ws/session"

    def call(self, method, path, body=None, timeout=70):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def frames(self):
        return self.call("GET", "/_test/frames")["frames"]

    def stop(self):
        stop_process(self.proc)


class Live:
    """An interactive ccrunner: write input lines, wait (bounded) for envelopes."""

    def __init__(self, args, env, stdin=subprocess.PIPE):
        self.proc = subprocess.Popen([str(CCRUNNER), *args], env=env, stdin=stdin,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buf = b""
        self.envs = []
        self.start = time.monotonic()

    def send(self, obj):
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def say(self, text):
        self.send({"type": "user_message", "payload": {"content": text}})

    def _pump(self, timeout):
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if sel.select(timeout):
                chunk = self.proc.stdout.read()
                if chunk:
                    self.buf += chunk
                    *lines, self.buf = self.buf.split(b"\n")
                    self.envs += [json.loads(l) for l in lines if l.strip()]
                    return True
        return False

    def wait_for(self, pred, timeout=30, what="an envelope"):
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for e in self.envs[seen:]:
                if pred(e):
                    return e
            seen = len(self.envs)
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and not self._pump(0.2)):
                raise AssertionError(f"no {what} within {timeout}s; got {self.codes()}")
            self._pump(min(left, 0.5))

    def count(self, pred):
        return sum(1 for e in self.envs if pred(e))

    def codes(self):
        return Stream("\n".join(json.dumps(e) for e in self.envs)).codes()

    def finish(self, timeout=60):
        """Closes stdin (communicate does), waits for the exit, collects the rest."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"ccrunner did not exit within {timeout}s: {err.decode()[-2000:]}")
        self.buf += out
        self.envs += [json.loads(l) for l in self.buf.split(b"\n") if l.strip()]
        self.buf = b""
        self.stderr = err.decode(errors="replace")
        self.code = self.proc.returncode
        self.elapsed = time.monotonic() - self.start
        self.stream = Stream("\n".join(json.dumps(e) for e in self.envs))
        return self


def is_type(t, ptype=None):
    return lambda e: e["type"] == t and (ptype is None or e["payload"].get("type") == ptype)


def children_of(pid):
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        # A process reaped between kill() and this read is gone: ESRCH or ENOENT.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"


def descendants(pid):
    """Every process below pid, parents before children."""
    out = []
    for kid in children_of(pid):
        out += [kid] + descendants(kid)
    return out


def claude_under(ccrunner_pid):
    """(guard, claude): ccrunner's one child is ccrunner-guard, and claude is the guard's
    child running the CLI (orphaned tools may be the guard's children too)."""
    guards = children_of(ccrunner_pid)
    if len(guards) != 1:
        raise AssertionError(f"ccrunner has children {guards}, not one guard")
    cmdline = Path(f"/proc/{guards[0]}/cmdline").read_bytes().split(b"\0")
    if cmdline[0] != b"ccrunner-guard":
        raise AssertionError(f"ccrunner's child is {cmdline[:1]}, not ccrunner-guard")
    claude = [p for p in children_of(guards[0])
              if os.path.realpath(f"/proc/{p}/exe") == os.path.realpath(CLAUDE_BIN)]
    if len(claude) != 1:
        raise AssertionError(f"the guard runs {claude}, not one claude")
    return guards[0], claude[0]


def wait_gone(pids, timeout):
    """Polls (5 ms) until none of pids is alive; returns (still alive, seconds waited). A
    process that is not our child can only be watched, not waited for."""
    start = time.monotonic()
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() - start < timeout:
        time.sleep(0.005)
        left = [p for p in left if alive(p)]
    return left, time.monotonic() - start


def kill_all(pids):
    """tearDown's hammer for whatever a failed test left running."""
    for p in pids:
        if alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass


def wait_pid_file(path, proc, timeout=30):
    """The pid a tool wrote to path (atomically, by rename); bounded, and ends early if proc
    (ccrunner) exits first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no {path.name} within {timeout}s (ccrunner exit {proc.poll()})")
        time.sleep(0.02)
    return int(path.read_text())


@unittest.skipUnless(CLAUDE_BIN.exists(), f"Claude Code CLI not installed at {CLAUDE_BIN} (npm ci)")
@unittest.skipUnless(CCRUNNER.exists(), f"ccrunner not built at {CCRUNNER}")
class CcrunnerTest(unittest.TestCase):
    scenario = "text"  # every test starts on this one; text repeats for multi-turn tests

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ccrunner-it-")
        self.dir = Path(self.tmp.name)
        self.ws = self.dir / "ws"
        self.home = self.dir / "home"
        self.ws.mkdir()
        self.home.mkdir()
        scenario = self.scenario
        if scenario == "text":
            scenario = json.loads((REPO / "tests/support/scenarios/text.json").read_text())
            scenario["after_end"] = "repeat_last"
        self.server = ScriptedServer(scenario, self.dir)
        self.server.__enter__()
        self.addCleanup(self.tmp.cleanup)
        self.addCleanup(self.server.stop)

    def env(self, **extra):
        return base_env(self.server.port, self.home, **extra)

    def use(self, scenario):
        """Switches the server to a scenario (a name in scenarios/ or a dict)."""
        if isinstance(scenario, str):
            scenario = json.loads((REPO / "tests/support/scenarios" / f"{scenario}.json").read_text())
        status, _, body = self.server.post("/_test/scenario", scenario)
        self.assertEqual(status, 200, body)

    def run_cc(self, *args, env=None, stdin=None, timeout=RUN_TIMEOUT):
        start = time.monotonic()
        proc = subprocess.run([str(CCRUNNER), "--workspace", str(self.ws), *args],
                              env=env or self.env(), input=stdin, capture_output=True,
                              timeout=timeout, text=True)
        run = Run(proc, proc.stdout, proc.stderr, time.monotonic() - start)
        run.stream.check(self)
        return run

    def live(self, *args, env=None, **kw):
        live = Live(["--workspace", str(self.ws), "-i", *args], env or self.env(), **kw)
        self.addCleanup(lambda: live.proc.poll() is None and live.proc.kill())
        return live

    def model_calls(self):
        return self.server.count()["model_calls"]


class BatchTests(CcrunnerTest):
    def test_text_session(self):
        run = self.run_cc("say hello")
        self.assertEqual(run.code, 0, run.describe())
        self.assertEqual(run.stream.codes(),
                         ["status:Running", "running", "sys", "text", "result", "status:Completed"])
        first = run.stream.envs[0]["payload"]["message"]
        self.assertIn("started (batch)", first)
        result = run.stream.of("result")[0]
        self.assertRegex(result["content"], r"^Session completed in \d+ms$")
        self.assertEqual(result["subtype"], "success")
        self.assertFalse(result["is_error"])
        self.assertEqual(result["num_turns"], 1)
        self.assertGreater(result["cost"], 0)
        self.assertGreater(result["usage"]["input_tokens"], 0)
        self.assertEqual(self.model_calls(), 1)
        self.assertIn("Claude Code 2.1.328 started", run.stream.system()[0])

    def test_bash_tool(self):
        self.use("bash")
        run = self.run_cc("run echo hi")
        self.assertEqual(run.code, 0, run.describe())
        use = run.stream.of("tool_use")[0]
        self.assertEqual((use["tool_name"], use["content"]), ("Bash", "Using tool: Bash"))
        self.assertEqual(use["tool_input"]["command"], "echo hi")
        res = run.stream.of("tool_result")[0]
        self.assertEqual((res["content"], res["is_error"], res["tool_use_id"]),
                         ("hi", False, use["tool_use_id"]))

    def test_write_creates_the_file_in_the_workspace(self):
        self.use("write")
        run = self.run_cc("write the file")
        self.assertEqual(run.code, 0, run.describe())
        use = run.stream.of("tool_use")[0]
        self.assertEqual(use["tool_name"], "Write")
        path = self.ws / Path(use["tool_input"]["file_path"]).name
        self.assertTrue(path.exists(), f"{path} not written; {run.describe()}")
        self.assertEqual(path.read_text(), use["tool_input"]["content"])

    def test_two_tools_thinking_and_max_tokens(self):
        self.use("two_tools")
        run = self.run_cc("two tools")
        self.assertEqual(run.code, 0, run.describe())
        self.assertEqual(len(run.stream.of("tool_use")), 2)
        self.assertEqual(len(run.stream.of("tool_result")), 2)
        self.use("thinking")
        run = self.run_cc("think")
        self.assertEqual(run.code, 0, run.describe())
        self.assertTrue(run.stream.of("thinking")[0]["content"])
        self.use("max_tokens")
        before = self.model_calls()
        run = self.run_cc("long")
        self.assertEqual(run.code, 0, run.describe())
        self.assertEqual(self.model_calls() - before, 2)  # the CLI continues after max_tokens

    def test_subagent_messages_are_nested(self):
        self.use("subagent")
        run = self.run_cc("use an agent")
        self.assertEqual(run.code, 0, run.describe())
        agent_use = [u for u in run.stream.of("tool_use") if u["tool_name"] in ("Agent", "Task")]
        self.assertTrue(agent_use, run.describe())
        nested = [e["payload"] for e in run.stream.envs
                  if e["payload"].get("parent_tool_use_id") == agent_use[0]["tool_use_id"]]
        self.assertTrue(nested, "the subagent's messages name the tool use that started it")

    def test_retry_then_success(self):
        self.use("error_500_then_ok")
        run = self.run_cc("hello")
        self.assertEqual(run.code, 0, run.describe())
        self.assertTrue(any("HTTP 500" in m and "retrying" in m for m in run.stream.system()),
                        run.describe())
        self.assertEqual(run.stream.final_status()["phase"], "Completed")

    def test_api_errors_fail_the_session(self):
        for scenario, status in (("error_500", "500"), ("error_429", "429"), ("error_401", "401")):
            with self.subTest(scenario=scenario):
                self.use(scenario)
                run = self.run_cc("hello")
                self.assertEqual(run.code, 1, run.describe())
                errors = run.stream.of("error")
                self.assertTrue(errors and errors[0]["content"].startswith("Error: "), run.describe())
                self.assertEqual(run.stream.codes()[-2:], ["result!", "status:Failed"])
                self.assertIn(f"HTTP {status}", run.stream.final_status()["message"])

    def test_text_output(self):
        run = self.run_cc("--output", "text", "say hello")  # (Stream is empty: not JSON)
        self.assertEqual(run.code, 0, run.stderr)
        lines = run.stdout.splitlines()
        self.assertTrue(all(re.match(r"^\[\d\d:\d\d:\d\d\] ", l) for l in lines), run.stdout)
        self.assertIn("status Running", lines[0])
        self.assertTrue(any("assistant: " in l for l in lines))
        self.assertTrue(any(re.search(r"result: success in \d+ ms, 1 turns, \$", l) for l in lines))
        self.assertIn("status Completed", lines[-1])

    def test_secrets_do_not_reach_the_agent(self):
        """The agent can run `env`: the backend token and Langfuse keys are not there."""
        self.use({"responses": [
            {"content": [{"type": "tool_use", "id": "toolu_env", "name": "Bash",
                          "input": {"command": "env", "description": "show env"}}]},
            {"content": [{"type": "text", "text": "done"}]}]})
        env = self.env(BOT_TOKEN=BOT_TOKEN, LANGFUSE_SECRET_KEY="sk-lf-integration-secret",
                       LANGFUSE_PUBLIC_KEY="pk-lf-integration")
        # bypassPermissions as root needs IS_SANDBOX, which ccrunner sets for a session
        run = self.run_cc("--permission-mode", "bypassPermissions", "show env", env=env)
        self.assertEqual(run.code, 0, run.describe())
        out = run.stream.of("tool_result")[0]["content"]
        self.assertIn("ANTHROPIC_BASE_URL=", out)  # the command ran
        for secret in (BOT_TOKEN, "sk-lf-integration-secret", "pk-lf-integration"):
            self.assertNotIn(secret, out)
            self.assertNotIn(secret, run.stderr)


class FailureTests(CcrunnerTest):
    scenario = "slow"

    def test_timeout_interrupts_and_fails(self):
        run = self.run_cc("--timeout", "1.5", "take your time")
        self.assertEqual(run.code, 1, run.describe())
        self.assertLess(run.elapsed, 15)
        status = run.stream.final_status()
        self.assertEqual(status["phase"], "Failed")
        self.assertIn("timed out after 1.5 s", status["message"])
        self.assertIn("timed out", run.stream.of("error")[0]["content"])
        # the interrupt reached Claude Code: its turn ended with an interrupted result
        results = run.stream.of("result")
        self.assertEqual(results[0]["subtype"], "error_during_execution", run.describe())

    def test_sigterm_ends_cleanly(self):
        live = Live(["--workspace", str(self.ws), "take your time"], self.env(), stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: live.proc.poll() is None and live.proc.kill())
        live.wait_for(is_type("agent.running"))
        guard, claude = claude_under(live.proc.pid)
        time.sleep(0.5)  # the model is mid-stream now (the reply takes ~4 s)
        live.proc.send_signal(signal.SIGTERM)
        live.finish(timeout=20)
        self.assertEqual(live.code, 1, live.stderr)
        live.stream.check(self)
        self.assertEqual(live.stream.final_status(),
                         {"phase": "Failed", "message": "Session interrupted by SIGTERM"})
        self.assertIn("SIGTERM received", live.stderr)
        self.assertFalse(alive(guard), "the guard must be reaped")
        self.assertFalse(alive(claude), "claude must be gone")
        self.assertLess(live.elapsed, 15)

    def test_claude_dying_mid_turn(self):
        live = Live(["--workspace", str(self.ws), "take your time"], self.env(), stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: live.proc.poll() is None and live.proc.kill())
        live.wait_for(is_type("agent.running"))
        _, claude = claude_under(live.proc.pid)
        time.sleep(0.5)
        os.kill(claude, signal.SIGKILL)  # claude, not its guard: the guard reports its death
        live.finish(timeout=20)
        self.assertEqual(live.code, 1, live.stderr)
        live.stream.check(self)
        status = live.stream.final_status()
        self.assertEqual(status["phase"], "Failed")
        self.assertIn("Claude Code exited unexpectedly during a turn (killed by signal 9", status["message"])


BYPASS = ("--permission-mode", "bypassPermissions")  # the Bash tool runs without asking


class NothingOutlivesTheSessionTests(CcrunnerTest):
    """SPEC, Signals: within 1 s of ccrunner's death by any cause, Claude Code and every
    process its tools started are gone; when a session ends, nothing the agent started is
    left. Claude Code's Bash tool runs each command in a session of its own, out of reach of
    a signal to claude's process group; a daemon a tool leaves would belong to init."""

    def test_kill_9_of_ccrunner_mid_tool_takes_the_agent_with_it(self):
        self.use("long_tool")
        live = Live(["--workspace", str(self.ws), *BYPASS, "run the long command"], self.env(),
                    stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: live.proc.poll() is None and live.proc.kill())
        tool = wait_pid_file(self.ws / "tool.pid", live.proc)
        agent = descendants(live.proc.pid)  # guard, claude, the tool's shell, the tool
        self.addCleanup(kill_all, agent)
        self.assertIn(tool, agent)
        start = time.monotonic()
        live.proc.kill()
        live.proc.communicate(timeout=10)
        left, _ = wait_gone(agent, 3)  # SPEC: 1 s; typically 20-50 ms, the bound is for load
        took = time.monotonic() - start
        self.assertEqual(left, [], f"still running {took:.2f} s after ccrunner was killed")

    def test_a_finished_session_leaves_no_daemon_behind(self):
        self.use("daemon_tool")
        run = self.run_cc(*BYPASS, "start the daemon")
        daemon = int((self.ws / "daemon.pid").read_text())  # written before the tool returned
        self.addCleanup(kill_all, [daemon])
        self.assertEqual(run.code, 0, run.describe())
        self.assertEqual(run.stream.of("tool_result")[0]["is_error"], False, run.describe())
        self.assertEqual(run.stream.final_status()["phase"], "Completed")
        self.assertFalse(alive(daemon), "the daemon a tool started must end with the session")

    def test_sigterm_or_timeout_mid_tool_leaves_nothing_behind(self):
        for end in ("SIGTERM", "timeout"):
            with self.subTest(end=end):
                self.use("long_tool")
                (self.ws / "tool.pid").unlink(missing_ok=True)
                # long enough for the tool to start on a loaded machine, short of its 60 s
                extra = ["--timeout", "15"] if end == "timeout" else []
                live = Live(["--workspace", str(self.ws), *BYPASS, *extra, "run the long command"],
                            self.env(), stdin=subprocess.DEVNULL)
                self.addCleanup(lambda p=live.proc: p.poll() is None and p.kill())
                tool = wait_pid_file(self.ws / "tool.pid", live.proc)
                agent = descendants(live.proc.pid)
                self.addCleanup(kill_all, agent)
                self.assertIn(tool, agent)
                if end == "SIGTERM":
                    live.proc.send_signal(signal.SIGTERM)
                live.finish(timeout=30)
                self.assertEqual(live.code, 1, live.stderr)
                self.assertIn("timed out" if end == "timeout" else "SIGTERM",
                              live.stream.final_status()["message"])
                # ccrunner has reaped the guard, which reaped everything below it first
                self.assertEqual([p for p in agent if alive(p)], [])


GUARD_RUNNER = """
import os, sys
# A stand-in for ccrunner: starts the guard, says its pid, waits.
pid = os.posix_spawn(sys.argv[1], ["ccrunner-guard", str(os.getpid()), "-1", "/bin/sh", "-c",
                                   sys.argv[2]], os.environ)
print(pid, flush=True)
os.waitpid(pid, 0)
"""

# "claude" for the guard tests: starts a daemon in a session of its own (it reports its pid
# through a FIFO, so it runs before claude goes on), prints "DAEMON CLAUDE".
WITH_DAEMON = "mkfifo f; setsid sh -c 'echo $$ > f; exec sleep 60' & read d < f; echo $d $$; "


@unittest.skipUnless(CCRUNNER.exists(), f"ccrunner not built at {CCRUNNER}")
class GuardTests(unittest.TestCase):
    """ccrunner-guard alone (src/runner/guard.c), sh playing Claude Code; this test process
    plays ccrunner, except where a stand-in is killed. No CLI needed."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ccrunner-guard-")
        self.addCleanup(self.tmp.cleanup)
        self.pids = []
        self.addCleanup(lambda: kill_all(self.pids))

    def guard(self, script, exe="/bin/sh", report_fd=-1, runner=None, **kw):
        argv = ["ccrunner-guard", str(runner or os.getpid()), str(report_fd), exe, "-c", script]
        kw.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(argv, executable=str(CCRUNNER), cwd=self.tmp.name,
                                stdout=subprocess.PIPE, **kw)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        self.addCleanup(proc.stdout.close)
        if proc.stdin:
            self.addCleanup(proc.stdin.close)
        return proc

    def pids_line(self, proc):
        pids = [int(x) for x in read_line(proc.stdout, 10).split()]
        self.pids += pids
        return pids

    def test_exits_as_claude_did(self):
        for script, code in (("exit 0", 0), ("exit 7", 7), ("kill -SEGV $$", -signal.SIGSEGV),
                             ("kill -KILL $$", -signal.SIGKILL)):
            with self.subTest(claude=script):
                proc = self.guard(script)
                proc.wait(10)
                self.assertEqual(proc.returncode, code)

    def test_what_claude_leaves_behind_ends_with_it(self):
        proc = self.guard(WITH_DAEMON + "read go; exit 3", stdin=subprocess.PIPE)
        daemon, claude = self.pids_line(proc)
        self.assertNotEqual(os.getsid(daemon), os.getsid(claude))
        proc.stdin.close()  # claude reads EOF and exits 3
        proc.wait(10)
        self.assertEqual(proc.returncode, 3)
        self.assertFalse(alive(daemon), "killed and reaped before the guard exited")

    def test_runner_death_ends_everything_at_once(self):
        runner = subprocess.Popen([sys.executable, "-c", GUARD_RUNNER, str(CCRUNNER),
                                   WITH_DAEMON + "exec sleep 60"], cwd=self.tmp.name,
                                  stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: runner.poll() is None and (runner.kill(), runner.wait()))
        self.addCleanup(runner.stdout.close)
        guard, = self.pids_line(runner)
        daemon, claude = self.pids_line(runner)
        start = time.monotonic()
        runner.kill()
        runner.wait(10)
        left, _ = wait_gone([guard, claude, daemon], 3)
        self.assertEqual(left, [], f"still running {time.monotonic() - start:.2f} s after the runner died")

    def test_signals(self):
        # claude traps SIGTERM and exits 42: the guard exits 42 only if it outlived the signal
        trap = "trap 'exit 42' TERM; echo $$; sleep 60 & wait"
        with self.subTest("SIGTERM from the runner to the group: claude's alone"):
            proc = self.guard(trap, process_group=0)  # a group of its own, as ccrunner's
            self.pids_line(proc)
            os.killpg(proc.pid, signal.SIGTERM)
            self.assertEqual(proc.wait(10), 42)
        with self.subTest("SIGTERM from anyone else to the guard: forwarded to claude"):
            proc = self.guard(trap)
            self.pids_line(proc)
            subprocess.run(["kill", "-TERM", str(proc.pid)], check=True, timeout=10)
            self.assertEqual(proc.wait(10), 42)
        with self.subTest("SIGUSR1 from someone else is no kill request; from the runner it is"):
            proc = self.guard(trap, process_group=0)
            self.pids_line(proc)
            subprocess.run(["kill", "-USR1", str(proc.pid)], check=True, timeout=10)
            os.killpg(proc.pid, signal.SIGTERM)  # dequeued after SIGUSR1 (lower numbers first)
            self.assertEqual(proc.wait(10), 42)
            proc = self.guard(trap)
            claude, = self.pids_line(proc)
            proc.send_signal(signal.SIGUSR1)
            self.assertEqual(proc.wait(10), -signal.SIGKILL)
            self.assertFalse(alive(claude))

    def test_start_is_reported(self):
        cases = (("/bin/sh", os.getpid(), (0, 0), 0),
                 ("/nonexistent/claude", os.getpid(), (5, errno.ENOENT), 127),  # CC_GUARD_EXEC
                 ("/bin/sh", os.getpid() + 1, (3, errno.ESRCH), 127))  # not its parent: ORPHANED
        for exe, runner, report, code in cases:
            with self.subTest(exe=exe, runner=runner):
                r, w = os.pipe()
                try:
                    proc = self.guard("exit 0", exe=exe, report_fd=w, runner=runner, pass_fds=(w,))
                    os.close(w)
                    w = -1
                    got = b""
                    while len(got) < 8 and select.select([r], [], [], 10)[0]:
                        chunk = os.read(r, 8 - len(got))
                        if not chunk:
                            break
                        got += chunk
                finally:
                    os.close(r)
                    if w >= 0:
                        os.close(w)
                self.assertEqual(struct.unpack("ii", got), report)
                self.assertEqual(proc.wait(10), code)

    def test_a_claude_that_cannot_run_fails_the_start(self):
        bad = Path(self.tmp.name) / "claude"
        bad.write_bytes(b"\x7fELF not really\n")
        bad.chmod(0o755)
        env = base_env(9, self.tmp.name, CLAUDE_CODE_PATH=str(bad))
        proc = subprocess.run([str(CCRUNNER), "--workspace", self.tmp.name, "hi"], env=env,
                              capture_output=True, text=True, timeout=20)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn(f"cannot start {bad}: Exec format error", proc.stderr)
        self.assertEqual(Stream(proc.stdout).final_status()["phase"], "Failed")


class PrerequisiteTests(unittest.TestCase):
    """Exit 2, one stderr line naming the cause and the fix, nothing run, nothing on stdout."""

    def check(self, args, env_changes, expect):
        with tempfile.TemporaryDirectory() as d:
            env = base_env(9, d, **{k: v for k, v in env_changes.items() if v is not None})
            for k, v in env_changes.items():
                if v is None:
                    env.pop(k, None)
            proc = subprocess.run([str(CCRUNNER), *args], env=env, capture_output=True,
                                  text=True, timeout=20, cwd=d)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertEqual(proc.stdout, "")
        lines = proc.stderr.splitlines()
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertIn(expect, lines[0])
        self.assertTrue(lines[0].startswith("ccrunner: error: "))

    @unittest.skipUnless(CCRUNNER.exists(), "ccrunner not built")
    def test_each_prerequisite(self):
        cases = [
            (["hi"], {"ANTHROPIC_API_KEY": None}, "ANTHROPIC_API_KEY"),
            (["hi"], {"TIMEOUT": "abc"}, "TIMEOUT=abc"),
            (["--workspace", "/nonexistent/ws", "hi"], {}, "/nonexistent/ws"),
            (["--claude", "/nonexistent/claude", "hi"], {}, "CLAUDE_CODE_PATH"),
            (["hi"], {"CLAUDE_CODE_PATH": "/nonexistent/claude"}, "/nonexistent/claude"),
            (["--output", "xml", "hi"], {}, "--output"),
            ([], {}, "no prompt"),
            (["hi"], {"USE_VERTEX_AI": "true", "ANTHROPIC_API_KEY": None}, "VERTEX_PROJECT_ID"),
            (["hi"], {"WEBSOCKET_URL": "http://example"}, "WEBSOCKET_URL"),
            (["-i"], {"IDLE_TIMEOUT": "soon"}, "IDLE_TIMEOUT=soon"),
        ]
        for args, env, expect in cases:
            with self.subTest(args=args, env=env):
                self.check(args, env, expect)


class InteractiveTests(CcrunnerTest):
    def test_two_turns_then_end(self):
        live = self.live()
        live.wait_for(is_type("agent.waiting"))
        live.say("first question")
        live.wait_for(is_type("agent.message", "result"))
        live.wait_for(lambda e: e["type"] == "agent.waiting" and e["seq"] > 3)
        live.say("second question")
        live.wait_for(lambda e: live.count(is_type("agent.message", "result")) == 2)
        live.send({"type": "end_session"})
        live.finish()
        self.assertEqual(live.code, 0, live.stderr)
        live.stream.check(self)
        self.assertEqual(live.stream.codes(),
                         ["status:Running", "waiting", "running", "sys", "text", "result",
                          "waiting", "running", "text", "result", "waiting", "status:Completed"])
        self.assertEqual(self.model_calls(), 2)

    def test_first_prompt_and_end_of_input(self):
        """Lines piped in: each is a turn, in order; EOF ends the session after them."""
        lines = "".join(json.dumps({"type": "user_message", "payload": {"content": t}}) + "\n"
                        for t in ("one", "two", "three"))
        run = self.run_cc("-i", "zero", stdin=lines)
        self.assertEqual(run.code, 0, run.describe())
        self.assertEqual(len(run.stream.of("result")), 4)
        self.assertEqual(run.stream.codes().count("running"), 4)
        self.assertEqual(self.model_calls(), 4)

    def test_malformed_input_is_reported_and_the_session_goes_on(self):
        stdin = ('not json\n{"type":"dance"}\n{"type":"user_message","payload":{}}\n'
                 '{"type":"user_message","payload":{"text":"ok"}}\n')
        run = self.run_cc("-i", stdin=stdin)
        self.assertEqual(run.code, 0, run.describe())
        ignored = [m for m in run.stream.system() if m.startswith("Ignored input from stdin")]
        self.assertEqual(len(ignored), 3, run.stream.system())
        self.assertIn("not JSON", ignored[0])
        self.assertIn('"dance"', ignored[1])
        self.assertEqual(len(run.stream.of("result")), 1)

    def test_message_during_a_turn_waits_for_its_result(self):
        self.use("slow")
        live = self.live()
        live.say("slow one")
        live.wait_for(is_type("agent.running"))
        live.say("second")
        live.wait_for(lambda e: e["type"] == "system.message" and "queued" in e["payload"]["message"])
        live.wait_for(lambda e: live.count(is_type("agent.message", "result")) == 2, timeout=40)
        live.send({"type": "end_session"})
        live.finish()
        self.assertEqual(live.code, 0, live.stderr)
        codes = live.stream.codes()
        first_result = codes.index("result")
        self.assertEqual(codes.count("running"), 2)
        self.assertGreater(codes.index("running", codes.index("running") + 1), first_result,
                           f"the second turn must start after the first's result: {codes}")
        self.assertEqual(self.model_calls(), 2)

    def test_interrupt_then_go_on(self):
        self.use("slow")
        live = self.live()
        live.say("slow one")
        live.wait_for(is_type("agent.running"))
        time.sleep(0.8)  # mid-stream
        live.send({"type": "interrupt"})
        res = live.wait_for(is_type("agent.message", "result"), timeout=20)
        self.assertEqual(res["payload"]["subtype"], "error_during_execution")
        text = json.loads((REPO / "tests/support/scenarios/text.json").read_text())
        self.use(text)
        live.say("after the interrupt")
        live.wait_for(lambda e: live.count(is_type("agent.message", "result")) == 2)
        live.send({"type": "end_session"})
        live.finish()
        self.assertEqual(live.code, 0, "a user's interrupt does not fail the session\n" + live.stderr)
        self.assertIn("Interrupting the current turn", live.stream.system())
        self.assertEqual(live.stream.final_status()["phase"], "Completed")

    def test_idle_limit(self):
        live = self.live("--idle-timeout", "1")  # stdin stays open: no end of input
        live.wait_for(is_type("status.update"), timeout=5)
        live.wait_for(lambda e: e["type"] == "status.update" and e["seq"] > 1, timeout=10)
        live.finish(timeout=20)
        self.assertEqual(live.code, 0, live.stderr)
        self.assertTrue(any("idle limit" in m for m in live.stream.system()))
        self.assertEqual(live.stream.final_status()["message"],
                         "Session completed (ended at the idle limit)")
        self.assertLess(live.elapsed, 10)


class WebSocketTests(CcrunnerTest):
    def setUp(self):
        super().setUp()
        self.backend = Backend(token=BOT_TOKEN)
        self.addCleanup(self.backend.stop)

    def ws_env(self, **extra):
        return self.env(**{"WEBSOCKET_URL": self.backend.url, "BOT_TOKEN": BOT_TOKEN, **extra})

    def test_same_envelopes_as_stdout_with_bearer_token(self):
        self.use("bash")
        run = self.run_cc("run echo hi", env=self.ws_env())
        self.assertEqual(run.code, 0, run.describe())
        frames = [f["json"] for f in self.backend.frames()]
        self.assertEqual(frames, run.stream.envs)
        conns = self.backend.call("GET", "/_test/connections")["connections"]
        self.assertEqual(conns[0]["authorization"], f"Bearer {BOT_TOKEN}")
        self.assertEqual(conns[0]["path"], "/ws/session")

    def test_interactive_input_from_the_backend(self):
        live = self.live(env=self.ws_env(), stdin=subprocess.DEVNULL)
        self.backend.call("GET", "/_test/wait?frames=2&timeout=20")  # Running, waiting
        self.backend.call("POST", "/_test/send", {"json": {"type": "user_message",
                                                           "payload": {"content": "hi from the backend"}}})
        live.wait_for(is_type("agent.message", "result"))
        self.backend.call("POST", "/_test/send", {"text": "garbage"})
        live.wait_for(lambda e: e["type"] == "system.message" and "from the backend" in e["payload"]["message"])
        self.backend.call("POST", "/_test/send", {"json": {"type": "end_session"}})
        live.finish()
        self.assertEqual(live.code, 0, live.stderr)
        self.assertEqual([f["json"] for f in self.backend.frames()], live.stream.envs)

    def test_reconnects_and_delivers_everything_in_order(self):
        self.use("slow")
        live = Live(["--workspace", str(self.ws), "take your time"], self.ws_env(),
                    stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: live.proc.poll() is None and live.proc.kill())
        live.wait_for(is_type("agent.running"))
        self.backend.call("GET", "/_test/wait?frames=2&timeout=20")
        self.backend.call("POST", "/_test/refuse", {"seconds": 2})
        self.backend.call("POST", "/_test/drop")
        live.finish(timeout=60)
        self.assertEqual(live.code, 0, live.stderr)
        self.backend.call("GET", f"/_test/wait?frames={len(live.envs)}&timeout=10")
        frames = self.backend.frames()
        seqs = [f["json"]["seq"] for f in frames]
        self.assertEqual(seqs, list(range(1, len(live.envs) + 1)),
                         "every message delivered once, in order, after the reconnect")
        conns = self.backend.call("GET", "/_test/connections")
        self.assertGreaterEqual(len(conns["connections"]), 2)
        self.assertTrue(conns["rejected"], "reconnect attempts were refused for 2 s")
        self.assertIn("backend closed the connection", live.stderr)

    def test_backend_down_costs_the_session_nothing_but_a_bounded_end(self):
        self.backend.stop()
        run = self.run_cc("say hello", env=self.ws_env())
        self.assertEqual(run.code, 0, run.describe())
        self.assertEqual(run.stream.final_status()["phase"], "Completed")
        self.assertIn("cannot connect to the backend", run.stderr)
        self.assertIn("not delivered to the backend", run.stderr)
        self.assertLess(run.elapsed, 20)

    def test_wrong_token_is_refused_and_reported(self):
        run = self.run_cc("say hello", env=self.ws_env(BOT_TOKEN="wrong-token"))
        self.assertEqual(run.code, 0, run.describe())
        self.assertEqual(self.backend.frames(), [])
        self.assertIn("cannot connect to the backend", run.stderr)
        self.assertNotIn("wrong-token", run.stderr + run.stdout)


if __name__ == "__main__":
    unittest.main()
