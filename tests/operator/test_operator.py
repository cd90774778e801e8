"""ccoperator end to end: the real operator against the Kubernetes API stand-in
(tests/support/kube_apiserver.py), whose kubelet runs each Job's container as the real
ccrunner with the real Claude Code CLI, against the scripted model server, tracing into the
Langfuse test receiver. All on loopback; every wait bounded.

What a user sees is asserted: the AgenticSession's status (phase, times, cost, usage,
turns, traceId), the Job the operator made (the same as deploy/render-job.sh renders), the
trace in Langfuse, the operator's log lines, the processes left behind. Every object the
operator sends to the API server is validated against Kubernetes' schemas (node's
kubernetes-models) and the CRD (validate_requests.mjs).

Environment: CCOPERATOR and CCRUNNER, the binaries under test.
"""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "support"))
sys.path.insert(0, str(REPO / "tests" / "integration"))
from procs import read_line, stop_process  # noqa: E402
from test_anthropic_server import CLAUDE_BIN, ScriptedServer  # noqa: E402
from test_ccrunner import Backend  # noqa: E402
from test_ccrunner_trace import PK, SK, Receiver  # noqa: E402
import lf_read  # noqa: E402

CCOPERATOR = Path(os.environ.get("CCOPERATOR") or REPO / "build" / "ccoperator").resolve()
CCRUNNER = Path(os.environ.get("CCRUNNER") or REPO / "build" / "ccrunner").resolve()
APISERVER = REPO / "tests" / "support" / "kube_apiserver.py"
NODE_DEPLOY = REPO / "tests" / "deploy"
IMAGE = "registry.example/ccrunner:test"
API_KEY = "sk-ant-api03-operator-test-KEY-0123456789"
TOKEN = "operator-test-token-0123456789"
SESSIONS = "/apis/vteam.ambient-code/v1alpha1/namespaces/{ns}/agenticsessions"
JOBS = "/apis/batch/v1/namespaces/{ns}/jobs"
SESSION_WAIT = 150  # a real CLI session on a loaded 2-core machine, plus the operator's turns


def crd_json(tmp):
    """The CRD as JSON (node's yaml package, which the deploy tests install)."""
    out = tmp / "crd.json"
    subprocess.run(["node", "--input-type=module", "-e",
                    "import {parse} from 'yaml'; import {readFileSync, writeFileSync} from 'node:fs';"
                    f"writeFileSync({json.dumps(str(out))}, JSON.stringify(parse(readFileSync("
                    f"{json.dumps(str(REPO / 'deploy/k8s/crd-agenticsession.yaml'))}, 'utf8'))))"],
                   cwd=NODE_DEPLOY, check=True, timeout=60)
    return out


def yaml_to_json(text):
    r = subprocess.run(["node", "--input-type=module", "-e",
                        "import {parse} from 'yaml'; let s='';"
                        "process.stdin.on('data', d => s += d).on('end', () =>"
                        " process.stdout.write(JSON.stringify(parse(s))));"],
                       cwd=NODE_DEPLOY, input=text, capture_output=True, text=True, timeout=60,
                       check=True)
    return json.loads(r.stdout)


class Api:
    """The stand-in API server, as a child process, spoken to over HTTP."""

    def __init__(self, tmp, crd):
        self.stderr = open(tmp / "apiserver.log", "wb")
        env_args = []
        for kv in (f"CLAUDE_CODE_PATH={CLAUDE_BIN}", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
                   "CLAUDE_CODE_MAX_RETRIES=1", "DISABLE_AUTOUPDATER=1"):
            env_args += ["--image-env", f"{IMAGE}={kv}"]
        cmd = [sys.executable, str(APISERVER), "--port", "0", "--token", TOKEN,
               "--image", f"{IMAGE}={json.dumps([str(CCRUNNER)])}", *env_args,
               "--crd-json", str(crd), "--max-grace", "20", "--workdir", str(tmp / "kubelet")]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr,
                                     stdin=subprocess.DEVNULL)
        line = read_line(self.proc.stdout, 20).decode()
        m = re.search(r"(http://127\.0\.0\.1:\d+)", line) or re.search(r"READY (\d+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"the API stand-in said {line!r}")
        self.url = m.group(1) if m.group(1).startswith("http") else f"http://127.0.0.1:{m.group(1)}"

    def call(self, method, path, body=None, ctype="application/json", auth=True):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
        if body is not None:
            req.add_header("Content-Type", ctype)
        if auth:
            req.add_header("Authorization", f"Bearer {TOKEN}")
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                data = r.read()
                return r.status, json.loads(data) if data[:1] in (b"{", b"[") else data
        except urllib.error.HTTPError as e:
            data = e.read()
            return e.code, json.loads(data) if data[:1] == b"{" else data

    def ok(self, method, path, body=None, **kw):
        status, out = self.call(method, path, body, **kw)
        if status >= 300:
            raise AssertionError(f"{method} {path}: {status} {out}")
        return out

    def stop(self):
        stop_process(self.proc, timeout=30)
        self.stderr.close()


class Operator:
    def __init__(self, tmp, kubeconfig, *args, name="operator"):
        self.log_path = tmp / f"{name}.log"
        self.log = open(self.log_path, "ab")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp)}
        self.proc = subprocess.Popen([str(CCOPERATOR), "--kubeconfig", str(kubeconfig),
                                      "--image", IMAGE, "--health", "127.0.0.1:0", *args],
                                     stdout=subprocess.DEVNULL, stderr=self.log, env=env,
                                     stdin=subprocess.DEVNULL)

    def text(self):
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text())
            if m:
                return m
            if self.proc.poll() is not None:
                raise AssertionError(f"the operator exited ({self.proc.returncode}):\n{self.text()}")
            time.sleep(0.05)
        raise AssertionError(f"no log line like {pattern!r} within {timeout}s:\n{self.text()}")

    def stop(self, sig=signal.SIGTERM):
        code = stop_process(self.proc, sig, timeout=15)
        self.log.close()
        return code


class OperatorTest(unittest.TestCase):
    scenario = "text"
    namespace = "team"
    with_langfuse = True
    chunk_delay_ms = 0

    @classmethod
    def setUpClass(cls):
        cls.class_tmp = tempfile.TemporaryDirectory(prefix="ccoperator-crd-")
        cls.crd = crd_json(Path(cls.class_tmp.name))

    @classmethod
    def tearDownClass(cls):
        cls.class_tmp.cleanup()

    def setUp(self):
        if not CCOPERATOR.exists() or not CCRUNNER.exists() or not CLAUDE_BIN.exists():
            self.fail(f"missing {CCOPERATOR}, {CCRUNNER} or {CLAUDE_BIN}: build, and npm ci")
        self.tmpd = tempfile.TemporaryDirectory(prefix="ccoperator-it-")
        self.addCleanup(self.tmpd.cleanup)
        self.tmp = Path(self.tmpd.name)
        # Every session of a test gets the same script: the server repeats it.
        scenario = json.loads((REPO / f"tests/support/scenarios/{self.scenario}.json").read_text())
        scenario["after_end"] = "repeat_last"
        for r in scenario["responses"]:  # long enough to act on a running session when loaded
            r["chunk_delay_ms"] = max(r.get("chunk_delay_ms", 0), self.chunk_delay_ms)
        self.model = ScriptedServer(scenario, self.tmp)
        self.model.__enter__()
        self.addCleanup(self.model.stop)
        self.receiver = Receiver()
        self.addCleanup(self.receiver.stop)
        self.api = Api(self.tmp, self.crd)
        self.addCleanup(self.api.stop)
        self.kubeconfig = self.tmp / "kubeconfig"
        self.kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
            f"clusters:\n- name: stand-in\n  cluster:\n    server: {self.api.url}\n"
            f"users:\n- name: op\n  user:\n    token: {TOKEN}\n"
            f"contexts:\n- name: test\n  context:\n    cluster: stand-in\n    user: op\n"
            f"    namespace: {self.namespace}\n")
        self.namespace_setup(self.namespace)
        self.operators = []

    def namespace_setup(self, ns, langfuse=None):
        langfuse = self.with_langfuse if langfuse is None else langfuse
        self.api.ok("POST", f"/api/v1/namespaces/{ns}/secrets", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "anthropic-api-key"},
            "stringData": {"ANTHROPIC_API_KEY": API_KEY}})
        # What the namespace's configuration gives every runner (deploy/k8s/langfuse-config.yaml),
        # here also pointing the runner at the scripted model server.
        data = {"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{self.model.port}"}
        if langfuse:
            data.update(LANGFUSE_HOST=self.receiver.url, LANGFUSE_ENABLED="true")
            self.api.ok("POST", f"/api/v1/namespaces/{ns}/secrets", {
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "langfuse-keys"},
                "stringData": {"LANGFUSE_PUBLIC_KEY": PK, "LANGFUSE_SECRET_KEY": SK}})
        self.api.ok("POST", f"/api/v1/namespaces/{ns}/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "langfuse-config"},
            "data": data})

    def operator(self, *args, **kw):
        op = Operator(self.tmp, self.kubeconfig, "--start-timeout", "10", *args, **kw)
        self.operators.append(op)
        self.addCleanup(lambda: op.proc.poll() is None and op.stop())
        return op

    def apply(self, name, spec, ns=None):
        return self.api.ok("POST", SESSIONS.format(ns=ns or self.namespace), {
            "apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
            "metadata": {"name": name}, "spec": spec})

    def session(self, name, ns=None):
        return self.api.ok("GET", SESSIONS.format(ns=ns or self.namespace) + f"/{name}")

    def wait_phase(self, name, phases, timeout=SESSION_WAIT, ns=None):
        deadline = time.monotonic() + timeout
        s = None
        while time.monotonic() < deadline:
            s = self.session(name, ns)
            if (s.get("status") or {}).get("phase") in phases:
                return s
            time.sleep(0.1)
        logs = "\n".join(op.text() for op in self.operators)
        raise AssertionError(f"{name} never reached {phases}: {s.get('status') if s else None}\n{logs}")

    def git_repo(self):
        """A local repository with one commit on main, as a file:// URL: the Job's init
        container clones it for real."""
        repo = self.tmp / "project"
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo)]
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, timeout=30)
        (repo / "README.md").write_text("hello\n")
        subprocess.run([*git, "add", "README.md"], check=True, timeout=30)
        subprocess.run([*git, "commit", "-q", "-m", "first"], check=True, timeout=30)
        return f"file://{repo}"

    def requests(self):
        return self.api.ok("GET", "/_test/requests")

    def validate_requests(self):
        """Every object the operator sent, against Kubernetes' schemas and the CRD."""
        sent = [r for r in self.requests() if r.get("method") in ("POST", "PUT", "PATCH")
                and not r["path"].startswith("/_test/") and r.get("agent", "ccoperator").startswith("ccoperator")]
        path = self.tmp / "sent.json"
        path.write_text(json.dumps(sent))
        r = subprocess.run(["node", str(REPO / "tests/operator/validate_requests.mjs"), str(path)],
                           cwd=NODE_DEPLOY, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return sent


class BatchTests(OperatorTest):
    def test_a_batch_session_completes_with_the_cost_of_its_trace(self):
        op = self.operator()
        op.wait_log(r"watching 0 AgenticSession")
        self.apply("fix-1", {"prompt": "say hello", "interactive": False, "timeout": 300,
                             "llmSettings": {"model": "claude-sonnet-4-5"}})
        s = self.wait_phase("fix-1", ("Completed", "Failed"))
        st = s["status"]
        self.assertEqual(st["phase"], "Completed", st)
        self.assertEqual(st["jobName"], "fix-1-job")
        for k in ("startTime", "completionTime"):
            self.assertRegex(st[k], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertLessEqual(st["startTime"], st["completionTime"])
        self.assertEqual(st["turns"], 1)
        self.assertRegex(st["traceId"], r"^[0-9a-f]{32}$")
        self.assertGreater(st["usage"]["output_tokens"], 0)
        trace = self.receiver.session_trace("fix-1", timeout=30)
        self.assertEqual(trace["id"], st["traceId"])
        self.assertAlmostEqual(st["cost"], trace["totalCost"], places=12)
        self.assertGreater(st["cost"], 0)
        # one log line per transition, in order
        log = op.text()
        self.assertRegex(log, r"team/fix-1: created Job fix-1-job")
        moves = re.findall(r"team/fix-1: (\S+) -> (\S+):", log)
        self.assertEqual(moves[0], ("(none)", "Pending"), log)
        self.assertEqual(moves[-1][1], "Completed", log)
        self.assertEqual(len(moves), len(set(moves)), log)
        self.validate_requests()

    def test_the_job_is_the_one_render_job_renders(self):
        """One definition of the Job's shape: the operator's Job equals render-job.sh's for
        the same session, apart from what only an operator knows."""
        op = self.operator()
        op.wait_log(r"watching")
        spec = {"prompt": 'a "quoted" prompt: with colons\nand a newline', "interactive": False,
                "timeout": 900, "repos": [{"url": "https://example.com/a.git", "branch": "dev"}],
                "llmSettings": {"model": "claude-sonnet-4-5"}}
        self.apply("drift", spec)
        s = self.wait_phase("drift", ("Pending", "Running", "Completed", "Failed"), timeout=60)
        job = self.api.ok("GET", JOBS.format(ns="team") + "/drift-job")
        env = dict(os.environ, SESSION_NAME="drift", IMAGE=IMAGE, INITIAL_PROMPT=spec["prompt"],
                   INTERACTIVE="false", TIMEOUT="900", LLM_MODEL="claude-sonnet-4-5",
                   SESSION_REPOS="https://example.com/a.git dev")
        for k in ("IDLE_TIMEOUT", "USER_ID", "USER_NAME", "PERMISSION_MODE", "WEBSOCKET_URL"):
            env.pop(k, None)
        rendered = subprocess.run(["bash", str(REPO / "deploy/render-job.sh")], env=env,
                                  capture_output=True, text=True, timeout=30)
        self.assertEqual(rendered.returncode, 0, rendered.stderr)
        want = yaml_to_json(rendered.stdout)
        got = json.loads(json.dumps(job))
        owner = got["metadata"].pop("ownerReferences")
        self.assertEqual(owner[0]["uid"], s["metadata"]["uid"])
        for k in ("namespace", "uid", "resourceVersion", "creationTimestamp", "generation",
                  "managedFields"):
            got["metadata"].pop(k, None)
        got.pop("status", None)
        self.assertEqual(got, want)

    def test_the_platform_shape_runs_unchanged(self):
        op = self.operator()
        op.wait_log(r"watching")
        self.apply("plat-1", {
            "initialPrompt": "say hello", "interactive": False, "timeout": 300,
            "inactivityTimeout": 120, "displayName": "A friendly name",
            "userContext": {"userId": "u-42", "displayName": "Ada"},
            "llmSettings": {"model": "claude-sonnet-4-5", "temperature": 0.7},
            "environmentVariables": {"MY_FLAG": "on", "LANGFUSE_SECRET_KEY": "stolen",
                                     "ANTHROPIC_API_KEY": "stolen"},
            "repos": [{"input": {"url": self.git_repo(), "branch": "main"}, "autoPush": True}]})
        s = self.wait_phase("plat-1", ("Completed", "Failed"))
        self.assertEqual(s["status"]["phase"], "Completed", s["status"])
        job = self.api.ok("GET", JOBS.format(ns="team") + "/plat-1-job")
        runner = job["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in runner["env"]}
        self.assertEqual(env["USER_ID"], "u-42")
        self.assertEqual(env["USER_NAME"], "Ada")
        self.assertEqual(env["IDLE_TIMEOUT"], "120")
        self.assertEqual(env["MY_FLAG"], "on")
        self.assertIsNone(env.get("LANGFUSE_SECRET_KEY"))
        self.assertNotEqual(env.get("ANTHROPIC_API_KEY"), "stolen")
        self.assertEqual([e["name"] for e in runner["env"]].count("ANTHROPIC_API_KEY"), 1)
        # the init container cloned the repository into the workspace the runner worked in
        workspaces = list((self.tmp / "kubelet").rglob("project/README.md"))
        self.assertEqual(len(workspaces), 1, "the repository was not cloned")
        trace = self.receiver.session_trace("plat-1", timeout=30)
        self.assertEqual(trace["userId"], "u-42")
        log = op.text()
        self.assertRegex(log, r"team/plat-1: not used by ccrunner: .*spec\.displayName")
        self.assertRegex(log, r"team/plat-1: environmentVariables not set .*ANTHROPIC_API_KEY")
        self.validate_requests()


class FailureTests(OperatorTest):
    scenario = "error_500"

    def test_a_failing_session_fails_with_the_reason(self):
        op = self.operator()
        op.wait_log(r"watching")
        self.apply("broken", {"prompt": "say hello"})
        s = self.wait_phase("broken", ("Completed", "Failed"))
        st = s["status"]
        self.assertEqual(st["phase"], "Failed", st)
        self.assertTrue(st["message"], st)
        self.assertNotIn("exited with code", st["message"])  # the runner's own words
        self.assertIn("completionTime", st)
        self.assertRegex(op.text(), r"team/broken: Running -> Failed: |team/broken: Pending -> Failed: ")

    def test_a_runner_that_stops_early_says_why_in_the_status(self):
        # No key in the namespace: the runner stops before the session with one line on
        # stderr and no outcome; the log's tail (FallbackToLogsOnError) says why.
        self.api.ok("DELETE", "/api/v1/namespaces/team/secrets/anthropic-api-key")
        op = self.operator()
        op.wait_log(r"watching")
        self.apply("nokey", {"prompt": "say hello"})
        st = self.wait_phase("nokey", ("Completed", "Failed"))["status"]
        self.assertEqual(st["phase"], "Failed", st)
        self.assertRegex(st["message"], r"^the runner exited with code 2 \(Error\): ccrunner: error: "
                                        r"no model credentials: set ANTHROPIC_API_KEY", st)
        self.assertRegex(op.text(), r"team/nokey: \w+ -> Failed: the runner exited with code 2 .*ANTHROPIC")

    def test_a_spec_without_a_prompt_fails_at_once(self):
        op = self.operator()
        op.wait_log(r"watching")
        self.apply("noprompt", {"interactive": False})
        s = self.wait_phase("noprompt", ("Failed",), timeout=30)
        self.assertIn("spec.prompt", s["status"]["message"])
        status, _ = self.api.call("GET", JOBS.format(ns="team") + "/noprompt-job")
        self.assertEqual(status, 404)

    def test_an_image_that_cannot_be_pulled(self):
        op = self.operator("--image", "registry.example/nope:1")
        op.wait_log(r"watching")
        self.apply("nopull", {"prompt": "say hello"})
        s = self.wait_phase("nopull", ("Completed", "Failed"), timeout=60)
        self.assertEqual(s["status"]["phase"], "Failed")
        self.assertIn("ImagePullBackOff", s["status"]["message"])
        deadline = time.monotonic() + 30
        while self.api.call("GET", JOBS.format(ns="team") + "/nopull-job")[0] != 404:
            self.assertLess(time.monotonic(), deadline, "the Job was not deleted")
            time.sleep(0.1)


class LifecycleTests(OperatorTest):
    scenario = "slow"
    chunk_delay_ms = 250  # about 12 s of streaming

    def runner_pids(self, name):
        """ccrunner and claude processes of session `name` (by SESSION_ID in their env)."""
        pids = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                env = (d / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"SESSION_ID={name}".encode() in env or f"AGENTIC_SESSION_NAME={name}".encode() in env:
                pids.append(int(d.name))
        return pids

    def test_a_deleted_session_leaves_no_process_behind(self):
        op = self.operator()
        op.wait_log(r"watching")
        self.apply("gone", {"prompt": "say hello", "interactive": True})
        self.wait_phase("gone", ("Running",), timeout=60)
        deadline = time.monotonic() + 60
        while not self.runner_pids("gone"):
            self.assertLess(time.monotonic(), deadline, "no runner process seen")
            time.sleep(0.1)
        self.api.ok("DELETE", SESSIONS.format(ns="team") + "/gone")
        deadline = time.monotonic() + 60
        while self.runner_pids("gone") or \
                self.api.call("GET", JOBS.format(ns="team") + "/gone-job")[0] != 404:
            self.assertLess(time.monotonic(), deadline,
                            f"left behind: {self.runner_pids('gone')}")
            time.sleep(0.1)

    def test_a_job_deleted_by_hand_fails_its_session(self):
        op = self.operator()
        op.wait_log(r"watching")
        self.apply("byhand", {"prompt": "say hello"})
        self.wait_phase("byhand", ("Running",), timeout=60)
        self.api.ok("DELETE", JOBS.format(ns="team") + "/byhand-job?propagationPolicy=Background")
        s = self.wait_phase("byhand", ("Completed", "Failed"), timeout=60)
        self.assertEqual(s["status"]["phase"], "Failed", s["status"])
        self.assertIn("byhand-job was deleted", s["status"]["message"])
        self.assertRegex(op.text(), r"team/byhand: Running -> Failed: its Job byhand-job was deleted")

    def test_an_operator_restarted_mid_session_makes_no_second_job(self):
        op = self.operator()
        op.wait_log(r"watching")
        self.apply("restart", {"prompt": "say hello"})
        self.wait_phase("restart", ("Running",), timeout=60)
        uid = self.api.ok("GET", JOBS.format(ns="team") + "/restart-job")["metadata"]["uid"]
        op.stop(signal.SIGKILL)
        op2 = self.operator(name="operator2")
        op2.wait_log(r"watching 1 AgenticSession")
        s = self.wait_phase("restart", ("Completed", "Failed"))
        self.assertEqual(s["status"]["phase"], "Completed", s["status"])
        self.assertEqual(self.api.ok("GET", JOBS.format(ns="team") + "/restart-job")["metadata"]["uid"], uid)
        creates = [r for r in self.requests() if r["method"] == "POST" and r["path"].endswith("/jobs")]
        self.assertEqual(len(creates), 1, creates)
        self.assertNotRegex(op2.text(), r"created Job")

    def test_the_api_server_dropping_and_expiring_watches(self):
        op = self.operator()
        op.wait_log(r"watching")
        self.apply("drops", {"prompt": "say hello"})
        self.wait_phase("drops", ("Running",), timeout=60)
        before = len(op.text())
        # A write none of the operator's watches sees moves the version past all of theirs
        # (a bookmark may just have brought them up to date), then the history is forgotten.
        self.api.ok("POST", "/api/v1/namespaces/team/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrelated"}})
        self.api.ok("POST", "/_test/compact")
        self.api.ok("POST", "/_test/drop-watches")
        # Dropped: each watch comes back; from a version the history no longer holds it gets
        # 410, and the operator lists that kind again (said only after the drop; an event
        # between the two calls may bring one watch up to date, so not necessarily all three).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
                re.search(r"watch ended: .*; retrying", op.text()[before:])
                and re.search(r"\(410\); listing again", op.text()[before:])):
            time.sleep(0.1)
        self.assertRegex(op.text()[before:], r"watch ended: .*; retrying")
        self.assertRegex(op.text()[before:], r"\(410\); listing again")
        s = self.wait_phase("drops", ("Completed", "Failed"))
        self.assertEqual(s["status"]["phase"], "Completed", s["status"])
        self.assertEqual(op.proc.poll(), None)

    def test_conflicts_and_errors_are_retried(self):
        op = self.operator()
        op.wait_log(r"watching")
        self.api.ok("POST", "/_test/fail?path=/jobs$&status=500&count=2")
        self.api.ok("POST", "/_test/conflict?path=/status$&count=3")
        self.apply("retry", {"prompt": "say hello"})
        s = self.wait_phase("retry", ("Completed", "Failed"))
        self.assertEqual(s["status"]["phase"], "Completed", s["status"])
        self.assertRegex(op.text(), r"creating Job retry-job failed: .*HTTP 500")


class OperatorProcessTests(OperatorTest):
    scenario = "text"

    def test_health_and_a_clean_stop(self):
        op = self.operator()
        m = op.wait_log(r"health on port (\d+)")
        port = int(m.group(1))
        op.wait_log(r"watching")
        for path in ("/healthz", "/readyz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                self.assertEqual(r.status, 200)
        self.assertEqual(op.stop(signal.SIGTERM), 0)
        self.assertIn("stopping", op.text())

    def test_bad_configuration_is_one_line_and_exit_2(self):
        for args, needle in (([], "RUNNER_IMAGE"),
                             (["--image", "x", "--kubeconfig", str(self.tmp / "none")], "none"),
                             (["--image", "x", "--start-timeout", "soon"], "--start-timeout"),
                             (["--image", "x", "--bogus"], "--bogus")):
            env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.tmp)}
            if "--kubeconfig" not in args:
                args = [*args, "--kubeconfig", str(self.kubeconfig)]
            r = subprocess.run([str(CCOPERATOR), *args], env=env, capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            lines = r.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertIn(needle, lines[0])

    def test_one_namespace_or_all(self):
        self.namespace_setup("other")
        op = self.operator("--namespace", "team")
        op.wait_log(r"watching")
        self.apply("elsewhere", {"prompt": "say hello"}, ns="other")
        self.apply("here", {"prompt": "say hello"})
        self.wait_phase("here", ("Completed",))
        self.assertIsNone(self.session("elsewhere", ns="other").get("status"))
        op.stop()
        op_all = self.operator(name="operator-all")
        op_all.wait_log(r"all namespaces")
        s = self.wait_phase("elsewhere", ("Completed", "Failed"), ns="other")
        self.assertEqual(s["status"]["phase"], "Completed", s["status"])


class BackendTests(OperatorTest):
    def test_every_runner_streams_to_the_backend_with_the_bot_token(self):
        bot = "bot-token-for-the-backend-0123"
        backend = Backend(token=bot)
        self.addCleanup(backend.stop)
        self.api.ok("POST", "/api/v1/namespaces/team/secrets", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ccrunner-bot-token"},
            "stringData": {"BOT_TOKEN": bot}})
        op = self.operator("--websocket-url",
                           f"ws://127.0.0.1:{backend.port}/api/projects/{{namespace}}/sessions/{{name}}/ws",
                           "--permission-mode", "plan")
        op.wait_log(r"watching")
        self.apply("streamed", {"prompt": "say hello"})
        s = self.wait_phase("streamed", ("Completed", "Failed"))
        self.assertEqual(s["status"]["phase"], "Completed", s["status"])
        conns = backend.call("GET", "/_test/connections")
        self.assertEqual([c["path"] for c in conns["connections"]],
                         ["/api/projects/team/sessions/streamed/ws"], conns)
        self.assertEqual(conns["connections"][0]["authorization"], f"Bearer {bot}")
        frames = [f["json"] for f in backend.frames()]
        started = [f for f in frames if f and f["type"] == "system.message"]
        self.assertIn("permission mode plan", started[0]["payload"]["message"])
        self.assertEqual([f["payload"]["phase"] for f in frames if f and f["type"] == "status.update"],
                         ["Running", "Completed"])

    def test_a_bad_backend_url_or_mode_is_one_line_and_exit_2(self):
        for args, needle in ((["--websocket-url", "http://backend/ws"], "ws://"),
                             (["--websocket-url", "ws://b/{session}"], "{namespace}"),
                             (["--permission-mode", "yolo"], "permission mode")):
            env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.tmp)}
            r = subprocess.run([str(CCOPERATOR), "--image", "x", "--kubeconfig", str(self.kubeconfig),
                                *args], env=env, capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            self.assertIn(needle, r.stderr)


class NoLangfuseTests(OperatorTest):
    with_langfuse = False

    def test_a_session_without_langfuse_runs_untraced(self):
        op = self.operator()
        op.wait_log(r"watching")
        self.apply("plain", {"prompt": "say hello"})
        s = self.wait_phase("plain", ("Completed", "Failed"))
        self.assertEqual(s["status"]["phase"], "Completed", s["status"])
        self.assertNotIn("traceId", s["status"])
        self.assertGreater(s["status"]["cost"], 0)
        self.assertEqual(list(lf_read.raw_requests(self.receiver.raw())), [])


if __name__ == "__main__":
    unittest.main()
