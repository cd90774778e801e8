"""The runner image, built for real and run: scripts/build-image.sh builds
deploy/image/Dockerfile with buildah (on the Debian bases it makes with mmdebstrap, cached),
then the image's own programs run inside it (buildah run, chroot isolation, the host's
network so that loopback reaches the test servers):

* a real session: the image's entrypoint (tini, ccrunner) and the image's claude, against the
  scripted model server and the Langfuse test receiver started here on 127.0.0.1; its exit
  code, its message stream, the file the agent wrote, the termination message, and the
  trace read back from the receiver;
* ccoperator --help;
* the user the image runs as (10001) and the directories it owns;
* the image's size, and what fills it (printed; bounded).

Needs root, buildah and mmdebstrap (scripts/install-deps.sh --image). Without them the test
fails: it never skips. A cold build (no cached bases or layers) takes minutes; a warm one
repeats the compile only. Environment:
  IMAGE_TAG        the tag built and tested (default localhost/ccrunner:image-test)
  IMAGE_CA_BUNDLE  the CA bundle the build trusts (build-image.sh --ca-bundle); default this
                   machine's /etc/ssl/certs/ca-certificates.crt, so that a TLS proxy's CA
                   trusted here is trusted by the build's npm ci and apt as well
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUPPORT = REPO / "tests" / "support"
sys.path.insert(0, str(SUPPORT))
from procs import start_ready, stop_process  # noqa: E402
import lf_read  # noqa: E402

TAG = os.environ.get("IMAGE_TAG", "localhost/ccrunner:image-test")
CA_BUNDLE = os.environ.get("IMAGE_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
PK, SK = "pk-lf-image-test", "sk-lf-image-test-secret"
UID = "10001"
# The image holds ccrunner, claude (a native binary of about 360 MB), git and its perl, and
# the slim base: about 540 MB. A bound with room for a larger CLI release, not for a second
# copy of it or a Node.js runtime.
MAX_IMAGE_MB = 700


def buildah(*args, check=True, timeout=120, **kw):
    r = subprocess.run(["buildah", *args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"buildah {' '.join(args[:3])}... exited {r.returncode}: {r.stderr[-2000:]}")
    return r


class ImageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = [t for t in ("buildah", "mmdebstrap") if shutil.which(t) is None]
        if missing:
            raise AssertionError(f"{' and '.join(missing)} not installed: the image cannot be "
                                 "built (run scripts/install-deps.sh --image)")
        if os.geteuid() != 0:
            raise AssertionError("the image build needs root (buildah's chroot isolation)")
        cmd = ["bash", str(REPO / "scripts" / "build-image.sh"), "--tag", TAG]
        if CA_BUNDLE and os.path.exists(CA_BUNDLE):
            cmd += ["--ca-bundle", CA_BUNDLE]
        start = time.monotonic()
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=3000)
        cls.build_s = time.monotonic() - start
        if r.returncode != 0:
            raise AssertionError(f"build-image.sh exited {r.returncode}:\n{r.stdout[-3000:]}\n"
                                 f"{r.stderr[-3000:]}")
        print(f"\nimage: {TAG} built in {cls.build_s:.0f} s", file=sys.stderr)
        cls.config = json.loads(buildah("inspect", "--type", "image", TAG).stdout)["OCIv1"]["config"]
        cls.ctr = buildah("from", "--pull=never", "--quiet", TAG).stdout.strip()

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "ctr", None):
            buildah("rm", cls.ctr, check=False)

    def run_in(self, *argv, env=None, user=True, timeout=120):
        """argv in the test's container, as the image's user unless user=False (then as the
        image's configured user, which is the point of the check)."""
        args = ["run", "--isolation", "chroot", "--network", "host"]
        if user:
            args += ["--user", f"{UID}:{UID}"]
        for k, v in (env or {}).items():
            args += ["--env", f"{k}={v}"]
        return buildah(*args, self.ctr, "--", *argv, check=False, timeout=timeout)

    def test_user_and_directories(self):
        self.assertEqual(self.config.get("User"), f"{UID}:{UID}")
        r = self.run_in("id", "-u", user=False)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, UID), r.stderr)
        r = self.run_in("stat", "-c", "%n %u:%g %A", "/workspace", "/var/spool/ccrunner", "/home/runner")
        self.assertEqual(r.returncode, 0, r.stderr)
        for line in r.stdout.splitlines():
            name, owner, mode = line.split()
            self.assertEqual(owner, f"{UID}:{UID}", line)
            self.assertTrue(mode.startswith("drwx"), line)
        # Writable by the user: the session's files and the telemetry spool go there.
        r = self.run_in("sh", "-c", "touch /workspace/.w /var/spool/ccrunner/.w && rm /workspace/.w /var/spool/ccrunner/.w")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_ccoperator_help(self):
        r = self.run_in("/usr/local/bin/ccoperator", "--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^usage: ccoperator ")

    def test_no_ca_bundle_or_build_tools_in_the_image(self):
        # The build secret is mounted for its RUN steps only; the build stage stays behind.
        r = self.run_in("sh", "-c", "ls /run/secrets 2>/dev/null; command -v node npm cc cmake; echo END")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "END", r.stdout)  # END alone: it ran, found nothing

    def test_session_traced(self):
        """A real session through the image's entrypoint, traced to the receiver."""
        entry = self.config.get("Entrypoint")
        self.assertEqual(entry, ["/usr/bin/tini", "--", "/usr/local/bin/ccrunner"])
        work = Path(tempfile.mkdtemp(prefix="image-test-"))
        servers = []
        try:
            recv, rport = start_ready([sys.executable, str(SUPPORT / "langfuse_receiver.py"),
                                       "--port", "0", "--public-key", PK, "--secret-key", SK])
            servers.append(recv)
            model, mport = start_ready([sys.executable, str(SUPPORT / "anthropic_server.py"),
                                        "--port", "0", "--scenario",
                                        str(SUPPORT / "scenarios" / "demo.json"),
                                        "--log", str(work / "requests.jsonl")])
            servers.append(model)
            langfuse = f"http://127.0.0.1:{rport}"
            session = f"image-{os.getpid()}"
            env = {
                "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{mport}",
                "ANTHROPIC_API_KEY": "sk-ant-image-test",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "LANGFUSE_ENABLED": "true", "LANGFUSE_HOST": langfuse,
                "LANGFUSE_PUBLIC_KEY": PK, "LANGFUSE_SECRET_KEY": SK,
                "USER_ID": "image-user", "NAMESPACE": "image", "PROJECT_NAME": "image",
                "SESSION_ID": session,
                "TERMINATION_LOG": "/workspace/termination-log",
                # chroot isolation has no PID namespace: tini is not PID 1 here, as it is in a
                # Pod, so it registers as the subreaper that reaps the tools' orphans instead.
                "TINI_SUBREAPER": "1",
            }
            r = self.run_in(*entry, "Write NOTES.md, then summarise the build log", env=env,
                            timeout=300)
            self.assertEqual(r.returncode, 0, f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")

            envs = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
            self.assertEqual([e["seq"] for e in envs], list(range(1, len(envs) + 1)))
            msgs = [e["payload"] for e in envs if e["type"] == "agent.message"]
            tools = [m["tool_name"] for m in msgs if m["type"] == "tool_use"]
            self.assertEqual(tools, ["Bash", "Write", "Bash"], msgs)
            results = [m for m in msgs if m["type"] == "result"]
            self.assertEqual(len(results), 1, msgs)
            self.assertEqual(results[0]["subtype"], "success")
            self.assertAlmostEqual(results[0]["cost"], 0.047323, places=6)
            status = [e["payload"] for e in envs if e["type"] == "status.update"]
            self.assertEqual(status[-1]["phase"], "Completed", status)

            # What the agent did happened in the image's workspace, as its user.
            cat = self.run_in("sh", "-c", "stat -c %u NOTES.md && cat NOTES.md && cat termination-log")
            self.assertEqual(cat.returncode, 0, cat.stderr)
            lines = cat.stdout.splitlines()
            self.assertEqual(lines[0], UID)
            self.assertIn("Written by the ccrunner demo session.", cat.stdout)
            ending = json.loads(lines[-1])
            self.assertTrue(ending["success"], ending)
            self.assertEqual(ending["session_id"], session)

            trace = lf_read.read_trace(langfuse, PK, SK, session_id=session, timeout=30)
            self.assertEqual(trace["name"], "agentic-session")
            self.assertEqual(trace["userId"], "image-user")
            self.assertEqual(trace["id"], ending["trace_id"])
            self.assertAlmostEqual(trace["totalCost"], 0.047323, places=6)
            names = sorted(o["name"] for o in trace["observations"])
            self.assertEqual(names.count("model-call"), 4, names)
            for tool in ("Write", "Bash"):
                self.assertIn(tool, names)
            errors = [o for o in trace["observations"] if o.get("level") == "ERROR"]
            self.assertEqual([o["name"] for o in errors], ["Bash"], errors)
        finally:
            for p in servers:
                stop_process(p)
            shutil.rmtree(work, ignore_errors=True)
            self.run_in("sh", "-c", "rm -rf /workspace/* /workspace/.[!.]* /home/runner/.[!.]*")

    def test_size_and_what_fills_it(self):
        mount = buildah("mount", self.ctr).stdout.strip()
        try:
            du = subprocess.run(["du", "-x", "-m", "-d", "3", mount], capture_output=True,
                                text=True, check=True).stdout
        finally:
            buildah("umount", self.ctr, check=False)
        sizes = {}
        for line in du.splitlines():
            mb, path = line.split("\t", 1)
            sizes["/" + os.path.relpath(path, mount).lstrip(".")] = int(mb)
        total = sizes["/"]
        parts = ["/usr/local/bin", "/usr/lib/x86_64-linux-gnu", "/usr/share/perl",
                 "/usr/lib/git-core", "/usr/bin", "/usr/share", "/var"]
        print(f"image: {TAG} {total} MB unpacked; " +
              ", ".join(f"{p} {sizes.get(p, 0)} MB" for p in parts), file=sys.stderr)
        self.assertLess(total, MAX_IMAGE_MB, sorted(sizes.items(), key=lambda kv: -kv[1])[:15])
        # The CLI is most of it; the slim base kept no man pages, docs or locales.
        self.assertGreater(sizes["/usr/local/bin"], total / 2)
        for p in ("/usr/share/man", "/usr/share/locale"):
            self.assertLessEqual(sizes.get(p, 0), 1, p)


if __name__ == "__main__":
    unittest.main()
