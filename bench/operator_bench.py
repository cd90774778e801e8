#!/usr/bin/env python3
"""Operator benchmark: what ccoperator costs idle, and how fast it answers a burst of sessions.

The real operator (src/operator/) runs against the Kubernetes API stand-in
(tests/support/kube_apiserver.py, `--no-kubelet`: Jobs are stored, no Pods are run), both
started here on 127.0.0.1, a fresh pair in every round. A round:

1. Idle. The stand-in holds no session. Once the operator logs "watching 0
   AgenticSession(s)" (it has listed sessions, Jobs and Pods and opened its watches), its
   usage is read, again --idle seconds later (default 10): CPU time as utime+stime from
   /proc/PID/stat (10 ms clock ticks, so an idle figure moves in steps of 60 ms/min over
   10 s) and from the process CPU clock (clock_getcpuclockid: ns, every thread), both in ms
   per minute; VmRSS and VmHWM from /proc/PID/status. The idle window includes the
   stand-in's watch bookmarks (every 5 s on each of the operator's three watches) and,
   about once in 10 s, the operator's resync.
2. Burst. --sessions AgenticSessions (default 100; spec {"prompt": "x"}) are POSTed at once
   from a pool of --workers threads (default 20) to .../namespaces/bench/agenticsessions, on
   connections opened and used once beforehand (kept alive, as kubectl's or client-go's are;
   the stand-in listens with socketserver's backlog of 5, which 100 new connections at once
   overflow). From the first POST the driver GETs the namespace's Job list and session list
   every 20 ms and takes the time at which every Job `<name>-job` exists, and at which
   every session has status.phase "Pending" and status.jobName `<name>-job`. Then it waits
   until the operator is quiet (its CPU clock grows less than QUIET_CPU_MS in
   QUIET_WINDOW_S: its status writes come back to it as watch events, which it decides
   again) and reads the CPU the burst cost (from just before the first POST), VmHWM, VmRSS,
   and RSS per session = (VmHWM after the burst - VmRSS idle) / sessions.

Each round is checked: exactly one Job per session (one POST each, one "created Job" log
line each), no POST refused, every session Pending with its Job, the operator alive and
exiting 0 on SIGTERM. Also reported, to judge a round by: the operator's requests per
session (the stand-in's /_test/requests, by user agent); the time of a kept-alive request
to the stand-in (a warning when it is over STALL_MS: before it set TCP_NODELAY, each took
44 ms, Nagle's algorithm against the client's delayed ACK, and the burst took 9 s instead of
0.5 s); the CPU time the stand-in took (a Python process: it bounds the latencies more than
the operator does), this driver, and everything else on the machine (its busy time from
/proc/stat less those three and the operator) up to all Pending: on a shared machine a
round with much of the latter is noisy.

    python3 bench/operator_bench.py [--ccoperator build/ccoperator] [--rounds 5]
        [--sessions 100] [--workers 20] [--idle 10] [--timeout 120]

Prints the medians, min and max over the rounds side by side with each round's figure.
Every wait is bounded; on any failure the driver stops what it started, prints the
operator's log tail and exits 1. Stdlib only (ctypes for the CPU clock), Linux.
"""

import argparse
import ctypes
import ctypes.util
import http.client
import json
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))
from procs import read_line, stop_process  # noqa: E402

APISERVER = ROOT / "tests" / "support" / "kube_apiserver.py"
DEFAULT_CCOPERATOR = Path(os.environ.get("CCOPERATOR") or ROOT / "build" / "ccoperator")
TOKEN = "operator-bench-token-0123456789"
IMAGE = "registry.example/ccrunner:bench"
NAMESPACE = "bench"
SESSIONS = "/apis/vteam.ambient-code/v1alpha1/namespaces/%s/agenticsessions" % NAMESPACE
JOBS = "/apis/batch/v1/namespaces/%s/jobs" % NAMESPACE
POLL_S = 0.020           # the Job and session lists are read this often during the burst
START_TIMEOUT_S = 30     # the stand-in listening, the operator synced
QUIET_WINDOW_S = 0.5     # the operator is quiet after the burst when, over this window, ...
QUIET_CPU_MS = 2.0       # ... its CPU clock grew by less than this
QUIET_TIMEOUT_S = 30
REQUEST_TIMEOUT_S = 30   # one HTTP request of the driver
RTT_PROBES = 5           # GET /version on a kept-alive connection, before the burst ...
STALL_MS = 20.0          # ... whose median above this is a stand-in that stalls requests
CLK_TCK = os.sysconf("SC_CLK_TCK")
KIB = 1024

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.clock_getcpuclockid.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_int)]


class BenchError(Exception):
    """A round could not be measured: the message says why."""


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ what a process uses


def usage(pid):
    """Process `pid`'s own CPU and memory (all its threads, none of its children): stat_ms
    (utime+stime, clock ticks), clock_ms (the process CPU clock), VmRSS and VmHWM (KiB)."""
    u = {}
    try:
        s = Path("/proc/%d/stat" % pid).read_text()
        f = s[s.rindex(")") + 2:].split()  # f[0] is field 3 (state)
        u["stat_ms"] = (int(f[11]) + int(f[12])) * 1000 / CLK_TCK  # fields 14 and 15
        for line in Path("/proc/%d/status" % pid).read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                u[k] = int(v.split()[0])
    except (OSError, ValueError, IndexError) as e:
        raise BenchError("cannot read /proc/%d: %s (has it exited?)" % (pid, e))
    cid = ctypes.c_int()
    if _libc.clock_getcpuclockid(pid, ctypes.byref(cid)) != 0:
        raise BenchError("clock_getcpuclockid(%d) failed" % pid)
    u["clock_ms"] = time.clock_gettime_ns(cid.value) / 1e6
    return u


def machine_busy_ms():
    """CPU time all CPUs spent busy since boot (user, nice, system, irq, softirq, steal), ms."""
    f = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return sum(int(f[i]) for i in (1, 2, 3, 6, 7, 8)) * 1000 / CLK_TCK


def cpu_snapshot(op_pid, api_pid):
    """The CPU figures of a moment: the operator's usage, the stand-in's CPU clock, this
    driver's CPU (all its threads), the machine's busy time, the monotonic clock."""
    return {"op": usage(op_pid), "api": usage(api_pid)["clock_ms"],
            "self": time.process_time() * 1000, "busy": machine_busy_ms(),
            "t": time.monotonic()}


# ------------------------------------------------------------------ the two processes


class StandIn:
    """The API stand-in as a child process (its log in tmp/apiserver.log)."""

    def __init__(self, tmp):
        self.stderr = open(tmp / "apiserver.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(APISERVER), "--port", "0", "--no-kubelet", "--token", TOKEN],
            stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL)
        try:
            line = read_line(self.proc.stdout, START_TIMEOUT_S).decode(errors="replace")
        except TimeoutError:
            self.stop()
            raise BenchError("the API stand-in did not say where it listens within %ds"
                             % START_TIMEOUT_S)
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if not m:
            self.stop()
            raise BenchError("the API stand-in said %r (log: %s)" % (line, tmp / "apiserver.log"))
        self.url = m.group(1)

    def connect(self):
        """A kept-alive connection, proven by one request. The burst is sent on connections
        opened beforehand, as a client such as kubectl or client-go keeps its own: the
        stand-in (Python's socketserver) listens with a backlog of 5, and 100 connections
        opened at once overflow it (connections reset)."""
        c = http.client.HTTPConnection(self.url.split("//", 1)[1], timeout=REQUEST_TIMEOUT_S)
        self.call("GET", "/version", conn=c)
        return c

    def call(self, method, path, body=None, conn=None):
        """(status, parsed JSON body) on conn (a kept-alive connection) or a new one; HTTP
        errors are returned, not raised."""
        c = conn or http.client.HTTPConnection(self.url.split("//", 1)[1],
                                               timeout=REQUEST_TIMEOUT_S)
        headers = {"Authorization": "Bearer " + TOKEN, "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            c.request(method, path, body=data, headers=headers)
            r = c.getresponse()
            raw = r.read()
            return r.status, json.loads(raw) if raw[:1] in (b"{", b"[") else raw
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise BenchError("%s %s: %s" % (method, path, e))
        finally:
            if conn is None:
                c.close()

    def ok(self, method, path, body=None, conn=None):
        status, out = self.call(method, path, body, conn)
        if status >= 300:
            raise BenchError("%s %s: HTTP %d %s" % (method, path, status, str(out)[:300]))
        return out

    def stop(self):
        stop_process(self.proc, timeout=15)
        self.stderr.close()


class Operator:
    """ccoperator as a child process, on a kubeconfig pointing at the stand-in (its log in
    tmp/operator.log)."""

    def __init__(self, binary, tmp, url):
        kubeconfig = tmp / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: bench\n"
            "clusters:\n- name: stand-in\n  cluster:\n    server: %s\n"
            "users:\n- name: op\n  user:\n    token: %s\n"
            "contexts:\n- name: bench\n  context:\n    cluster: stand-in\n    user: op\n"
            % (url, TOKEN))
        self.log_path = tmp / "operator.log"
        self.log = open(self.log_path, "wb")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp)}
        self.proc = subprocess.Popen([str(binary), "--kubeconfig", str(kubeconfig), "--image",
                                      IMAGE, "--health", "127.0.0.1:0"],
                                     stdout=subprocess.DEVNULL, stderr=self.log, env=env,
                                     stdin=subprocess.DEVNULL)

    def text(self):
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self):
        if self.proc.poll() is not None:
            raise BenchError("the operator exited (%s)" % self.proc.returncode)

    def tail(self, n=15):
        return "\n".join(self.text().splitlines()[-n:])

    def wait_log(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.text()):
                return
            self.alive()
            time.sleep(0.05)
        raise BenchError("no operator log line like %r within %gs" % (pattern, timeout))

    def stop(self):
        code = stop_process(self.proc, signal.SIGTERM, timeout=15)
        self.log.close()
        return code


# ------------------------------------------------------------------ one round


def idle(op, seconds):
    u0 = usage(op.proc.pid)
    time.sleep(seconds)
    op.alive()
    u1 = usage(op.proc.pid)
    per_min = 60000 / (seconds * 1000)
    return {"idle_stat_ms_min": (u1["stat_ms"] - u0["stat_ms"]) * per_min,
            "idle_clock_ms_min": (u1["clock_ms"] - u0["clock_ms"]) * per_min,
            "idle_rss_kib": u1["VmRSS"], "idle_hwm_kib": u1["VmHWM"]}


def session_body(name):
    return {"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession",
            "metadata": {"name": name}, "spec": {"prompt": "x"}}


def burst(api, op, n, workers, timeout):
    """Posts n sessions at once, polls until every Job exists and every session is Pending,
    then until the operator is quiet. Returns the round's burst figures."""
    names = ["bench-%03d" % i for i in range(n)]
    jobs_wanted = {nm + "-job" for nm in names}
    posted_at = {}

    conns = queue.Queue()
    opened = []

    def post(name):
        c = conns.get()
        try:
            status, out = api.call("POST", SESSIONS, session_body(name), conn=c)
        finally:
            conns.put(c)
        posted_at[name] = time.monotonic()
        if status != 201:
            raise BenchError("POST session %s: HTTP %d %s" % (name, status, str(out)[:300]))

    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        for _ in range(min(workers, n) + 1):
            opened.append(api.connect())
        poll = opened[0]
        for c in opened[1:]:
            conns.put(c)
        rtts = []
        for _ in range(RTT_PROBES):
            t = time.monotonic()
            api.ok("GET", "/version", conn=poll)
            rtts.append((time.monotonic() - t) * 1000)
        # The pool's threads exist before the burst: submit starts none.
        list(pool.map(lambda _: time.sleep(0.05), range(workers)))
        before = cpu_snapshot(op.proc.pid, api.proc.pid)
        t0 = time.monotonic()  # the first POST starts here
        futures = [pool.submit(post, nm) for nm in names]
        t_jobs = t_pending = None
        jobs_seen = pending_seen = 0
        deadline = t0 + timeout
        tick = t0
        while t_jobs is None or t_pending is None:
            now = time.monotonic()
            if now > deadline:
                raise BenchError("after %gs: %d of %d Jobs, %d sessions Pending with their Job, "
                                 "%d POSTs answered" % (timeout, jobs_seen, n, pending_seen,
                                                        len(posted_at)))
            for f in futures:
                if f.done() and f.exception():
                    raise f.exception()
            op.alive()
            if t_jobs is None:
                items = api.ok("GET", JOBS, conn=poll)["items"]
                jobs_seen = len({j["metadata"]["name"] for j in items} & jobs_wanted)
                if jobs_seen == n:
                    t_jobs = time.monotonic()
            if t_pending is None:
                items = api.ok("GET", SESSIONS, conn=poll)["items"]
                pending_seen = sum(1 for s in items
                                   if (s.get("status") or {}).get("phase") == "Pending"
                                   and (s.get("status") or {}).get("jobName")
                                   == s["metadata"]["name"] + "-job")
                if pending_seen == n:
                    t_pending = time.monotonic()
            if t_pending is not None and (t_jobs is None or t_jobs > t_pending):
                # A session gets its jobName only once the operator has its Job: every Job
                # existed when every session was Pending (the Job list, read first in the
                # tick, may have missed the last one by a few ms).
                t_jobs = t_pending
            tick += POLL_S
            time.sleep(max(0.0, tick - time.monotonic()))
        for f in futures:
            f.result(timeout=REQUEST_TIMEOUT_S)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        for c in opened:
            c.close()
    t_posted = max(posted_at.values())
    at_pending = cpu_snapshot(op.proc.pid, api.proc.pid)

    # Quiet: the operator has decided everything its own status writes sent back.
    last = usage(op.proc.pid)["clock_ms"]
    quiet_deadline = time.monotonic() + QUIET_TIMEOUT_S
    while True:
        time.sleep(QUIET_WINDOW_S)
        op.alive()
        cur = usage(op.proc.pid)["clock_ms"]
        if cur - last < QUIET_CPU_MS:
            break
        if time.monotonic() > quiet_deadline:
            raise BenchError("the operator did not go quiet within %gs after the burst (%.0f ms "
                             "CPU in the last %.1f s)" % (QUIET_TIMEOUT_S, cur - last,
                                                           QUIET_WINDOW_S))
        last = cur
    after = cpu_snapshot(op.proc.pid, api.proc.pid)
    # What the CPU figures cover: first POST to all Pending (the stand-in, the others) and to
    # quiet (the operator).
    span = lambda a, b, k: b[k] - a[k]  # noqa: E731
    others = (span(before, at_pending, "busy") - span(before["op"], at_pending["op"], "clock_ms")
              - span(before, at_pending, "api") - span(before, at_pending, "self"))
    return {
        "posted_ms": (t_posted - t0) * 1000,
        "jobs_ms": (t_jobs - t0) * 1000,
        "pending_ms": (t_pending - t0) * 1000,
        "burst_stat_ms": after["op"]["stat_ms"] - before["op"]["stat_ms"],
        "burst_clock_ms": after["op"]["clock_ms"] - before["op"]["clock_ms"],
        "quiet_ms": (after["t"] - t0) * 1000,
        "after_hwm_kib": after["op"]["VmHWM"],
        "after_rss_kib": after["op"]["VmRSS"],
        "standin_ms": at_pending["api"] - before["api"],
        "driver_ms": at_pending["self"] - before["self"],
        "others_ms": max(0.0, others),
        "standin_rtt_ms": statistics.median(rtts),
    }


def check(api, op, n):
    """After the burst: one Job per session, one Job POST and one "created Job" log line
    each; returns the operator's requests by kind (those answered >= 400 counted)."""
    jobs = api.ok("GET", JOBS)["items"]
    if len(jobs) != n:
        raise BenchError("%d Jobs in %s for %d sessions" % (len(jobs), NAMESPACE, n))
    reqs = [r for r in api.ok("GET", "/_test/requests")
            if str(r.get("agent") or "").startswith("ccoperator")]
    kinds = {"job_posts": 0, "status_puts": 0, "other": 0, "errors": 0}
    for r in reqs:
        p = r.get("path", "")
        if r.get("method") == "POST" and p.endswith("/jobs"):
            kinds["job_posts"] += 1
        elif r.get("method") == "PUT" and p.endswith("/status"):
            kinds["status_puts"] += 1
        else:
            kinds["other"] += 1
        if int(r.get("status") or 0) >= 400:
            kinds["errors"] += 1
    if kinds["job_posts"] != n:
        raise BenchError("the operator POSTed %d Jobs for %d sessions" % (kinds["job_posts"], n))
    created = len(re.findall(r": created Job ", op.text()))
    if created != n:
        raise BenchError("the operator logged %d 'created Job' lines for %d sessions"
                         % (created, n))
    return {"requests_per_session": len(reqs) / n, "status_puts": kinds["status_puts"],
            "other_requests": kinds["other"], "failed_requests": kinds["errors"]}


def one_round(args, k):
    """One fresh stand-in and operator: idle, then the burst. Returns the round's figures."""
    with tempfile.TemporaryDirectory(prefix="operator-bench-") as d:
        tmp = Path(d)
        api = op = None
        try:
            api = StandIn(tmp)
            op = Operator(args.ccoperator, tmp, api.url)
            op.wait_log(r"watching 0 AgenticSession\(s\)", START_TIMEOUT_S)
            r = idle(op, args.idle)
            r.update(burst(api, op, args.sessions, args.workers, args.timeout))
            r.update(check(api, op, args.sessions))
            r["rss_per_session_kib"] = (r["after_hwm_kib"] - r["idle_rss_kib"]) / args.sessions
            r["burst_ms_per_session"] = r["burst_clock_ms"] / args.sessions
            op.alive()
            code = op.stop()
            op = None
            if code != 0:
                raise BenchError("the operator exited %s on SIGTERM" % code)
            return r
        except BaseException:
            if op is not None:
                log("round %d failed; the operator's log, its last lines:\n%s"
                    % (k, op.tail(30) or "(empty)"))
            raise
        finally:
            if op is not None:
                op.stop()
            if api is not None:
                api.stop()


# ------------------------------------------------------------------ the table

# (key, label, format): the rows, in the order printed.
ROWS = [
    ("idle_stat_ms_min", "idle CPU ms/min, utime+stime", "%.0f"),
    ("idle_clock_ms_min", "idle CPU ms/min, CPU clock", "%.1f"),
    ("idle_rss_kib", "idle RSS MiB (VmRSS)", "mib"),
    ("idle_hwm_kib", "idle peak RSS MiB (VmHWM)", "mib"),
    ("posted_ms", "burst: all POSTs answered ms", "%.0f"),
    ("jobs_ms", "burst: all Jobs exist ms", "%.0f"),
    ("pending_ms", "burst: all Pending + jobName ms", "%.0f"),
    ("burst_stat_ms", "burst CPU ms, utime+stime", "%.0f"),
    ("burst_clock_ms", "burst CPU ms, CPU clock", "%.1f"),
    ("burst_ms_per_session", "burst CPU ms per session", "%.2f"),
    ("after_hwm_kib", "peak RSS after MiB (VmHWM)", "mib"),
    ("after_rss_kib", "RSS after MiB (VmRSS)", "mib"),
    ("rss_per_session_kib", "RSS per session KiB", "%.1f"),
    ("requests_per_session", "operator requests per session", "%.2f"),
    ("standin_rtt_ms", "stand-in request ms (kept-alive)", "%.2f"),
    ("standin_ms", "stand-in CPU ms to all Pending", "%.0f"),
    ("driver_ms", "driver CPU ms to all Pending", "%.0f"),
    ("others_ms", "others' CPU ms to all Pending", "%.0f"),
]


def fmt(v, f):
    return "%.2f" % (v / KIB) if f == "mib" else f % v


def print_table(rounds, args, out=sys.stdout):
    """The median, min..max and every round's figure, side by side."""
    head = ["", "median", "min..max"] + ["r%d" % (i + 1) for i in range(len(rounds))]
    rows = []
    for key, label, f in ROWS:
        vals = [r[key] for r in rounds]
        rows.append([label, fmt(statistics.median(vals), f),
                     "%s..%s" % (fmt(min(vals), f), fmt(max(vals), f))]
                    + [fmt(v, f) for v in vals])
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "  ".join(  # noqa: E731
        (c.ljust(w) if i == 0 else c.rjust(w)) for i, (c, w) in enumerate(zip(r, widths)))
    print(line(head), file=out)
    print("-" * len(line(head)), file=out)
    for r in rows:
        print(line(r), file=out)
    print("\n%d rounds, each a fresh stand-in (--no-kubelet) and operator; %d sessions POSTed "
          "from %d threads on\nkept-alive connections; idle over %gs after sync; times from the "
          "first POST, lists polled every\n%d ms; burst CPU up to quiet. RSS per session = (peak "
          "RSS after - idle RSS) / sessions.\nOthers' CPU: the machine's busy time less the "
          "operator, the stand-in and this driver (a noisy\nround shows here)."
          % (len(rounds), args.sessions, min(args.workers, args.sessions), args.idle,
             POLL_S * 1000), file=out)
    print("operator requests per round: %d Job POSTs, status PUTs %s, other %s, answered >= 400: "
          "%s" % (args.sessions, "/".join(str(r["status_puts"]) for r in rounds),
                  "/".join(str(r["other_requests"]) for r in rounds),
                  "/".join(str(r["failed_requests"]) for r in rounds)), file=out)
    slow = max(r["standin_rtt_ms"] for r in rounds)
    if slow > STALL_MS:
        print("WARNING: a kept-alive request to the stand-in took %.0f ms (median of %d): it "
              "stalls every request\n(Nagle's algorithm and delayed ACKs?), and the latencies "
              "above measure that, not the operator." % (slow, RTT_PROBES), file=out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ccoperator", type=Path, default=DEFAULT_CCOPERATOR,
                    help="the binary (default $CCOPERATOR or build/ccoperator)")
    ap.add_argument("--sessions", type=int, default=100, help="sessions per burst (100)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds, each fresh (5)")
    ap.add_argument("--workers", type=int, default=20, help="POSTing threads (20)")
    ap.add_argument("--idle", type=float, default=10.0, help="idle window, seconds (10)")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="bound on the burst, seconds (120)")
    ap.add_argument("--json", type=Path, help="also write every round's figures here")
    args = ap.parse_args()
    if args.sessions < 1 or args.rounds < 1 or args.workers < 1 or args.idle <= 0:
        ap.error("--sessions, --rounds, --workers and --idle must be positive")
    args.ccoperator = args.ccoperator.resolve()
    if not os.access(args.ccoperator, os.X_OK):
        ap.error("%s is not an executable: build it (cmake --build build --target ccoperator) "
                 "or pass --ccoperator" % args.ccoperator)
    log("ccoperator: %s; %d rounds of %d sessions" % (args.ccoperator, args.rounds, args.sessions))
    rounds = []
    try:
        for k in range(1, args.rounds + 1):
            r = one_round(args, k)
            rounds.append(r)
            log("round %d: jobs %5.0f ms, pending %5.0f ms, burst CPU %4.0f ms, idle %5.1f ms/min, "
                "peak %.2f MiB, others' CPU %5.0f ms"
                % (k, r["jobs_ms"], r["pending_ms"], r["burst_clock_ms"], r["idle_clock_ms_min"],
                   r["after_hwm_kib"] / KIB, r["others_ms"]))
    except BenchError as e:
        log("operator_bench: %s" % e)
        return 1
    except KeyboardInterrupt:
        log("operator_bench: interrupted")
        return 1
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "rounds": rounds}, indent=1))
    print_table(rounds, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
