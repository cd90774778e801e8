#!/usr/bin/env python3
"""Memory benchmark: ccrunner's own peak RSS under big lines and long sessions.

Two requirements from the issue tracker, measured on the real Claude Code CLI against the
scripted model server (tests/support/anthropic_server.py) and, with tracing on, the Langfuse
test receiver (tests/support/langfuse_receiver.py), both started here on 127.0.0.1:

1. Big lines: ccrunner's own peak RSS < 3 x the largest line Claude Code printed + 16 MiB,
   for (a) a 10 MB text reply and (b) a Write tool use whose `content` is 10 MB, with
   tracing off and on (LANGFUSE_GENERATIONS=per-query and per-call). Each traced run's trace
   is read back from the receiver (tests/support/lf_read.py) and must carry the model
   calls' tokens and a cost equal to Claude Code's.
2. Long sessions: with tracing on, ccrunner's own peak RSS is flat with the number of model
   calls: at most 1 MiB more for 3,000 calls than for 30. N model calls in one turn (N - 1
   `Read`s of a small file, then a text), and interactively N turns of one call each (user
   messages on stdin, the next sent when ccrunner says `agent.waiting`); tracing off, per-query
   and per-call.

The peak RSS is taken by run_session_bench.measure(): the runner is PTRACE_SEIZEd with
PTRACE_O_TRACEEXIT and its VmHWM read at its exit stop (its claude child excluded). See
bench/README.md, "Memory benchmark".

    python3 bench/run_memory_bench.py                       everything (~50 min on 2 cores)
    python3 bench/run_memory_bench.py --part long --calls 30,300 --layouts per-query

Prints the figures with PASS/FAIL against the targets; exits non-zero only when a run failed
(wrong exit code, model calls, result, file or trace), never because a target was missed.
Stdlib only, Linux.
"""

import argparse
import hashlib
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import run_session_bench as rsb  # noqa: E402  (also puts tests/support on sys.path)
from run_session_bench import LF_KEYS, ROOT, Receiver, find_result, measure  # noqa: E402
from procs import start_ready, stop_process  # noqa: E402
import lf_read  # noqa: E402

SUPPORT = ROOT / "tests" / "support"
DEFAULT_CLAUDE = ROOT / "node_modules" / ".bin" / "claude"
DEFAULT_CCRUNNER = ROOT / "build" / "ccrunner"
MIB = 1 << 20
# Targets from the issue.
BIG_LINE_FACTOR = 3
BIG_LINE_SLACK = 16 * MIB
FLAT_KIB = 1024          # at most this much more peak RSS ...
FLAT_FROM, FLAT_TO = 30, 3000  # ... for FLAT_TO model calls than for FLAT_FROM
LAYOUTS = ("off", "per-query", "per-call")
# Every model call's usage in the long sessions: constant and small, so that Claude Code
# never thinks its context is full (it would compact, an extra model call).
CALL_USAGE = {"input_tokens": 3, "cache_creation_input_tokens": 120, "cache_read_input_tokens": 17500,
              "output_tokens": 30}
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
LF_USAGE_KEYS = ("input", "output", "cache_read_input_tokens", "cache_creation_input_tokens")
SMALL_FILE = "small.txt"
BIG_FILE = "big.txt"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ scenarios


def filler(size):
    """`size` bytes of distinct text lines (each numbered, so nothing repeats a whole line)."""
    words = ("the runner relays every line claude code prints and keeps only what a trace "
             "needs while the model streams its answer to the session").split()
    lines, total, i = [], 0, 0
    while total < size:
        line = "%07d %s\n" % (i, " ".join(words[(i + k) % len(words)] for k in range(11)))
        lines.append(line)
        total += len(line)
        i += 1
    return "".join(lines)[:size]


def response(rid, blocks, usage=None, **extra):
    r = {"id": "msg_mem%06d" % rid, "content": blocks, "usage": dict(usage or CALL_USAGE)}
    r.update(extra)
    return r


# The big replies' usage: what a model could really send (its output cap), not size / 4: Claude
# Code compacts the conversation (an extra model call) when the usage says its context is full.
BIG_USAGE = {"input_tokens": 4, "cache_creation_input_tokens": 5187, "cache_read_input_tokens": 12044,
             "output_tokens": 32000}


def big_text_scenario(size, chunk):
    text = filler(size)
    usage = BIG_USAGE
    return {"description": "one %d-byte text reply" % size,
            "responses": [response(0, [{"type": "text", "text": text}], usage, text_chunk_chars=chunk)],
            "after_end": "error"}


def big_write_scenario(size, chunk):
    content = filler(size)
    usage = BIG_USAGE
    tool = {"type": "tool_use", "id": "toolu_mem000000", "name": "Write",
            "input": {"file_path": BIG_FILE, "content": content}}
    return {"description": "a Write of a %d-byte file, then a text" % size,
            "responses": [response(0, [tool], usage, json_chunks=max(3, size // chunk)),
                          response(1, [{"type": "text", "text": "Wrote %s." % BIG_FILE}],
                                   {"input_tokens": 1, "cache_creation_input_tokens": 168,
                                    "cache_read_input_tokens": 17237, "output_tokens": 9})],
            "after_end": "error"}


def one_turn_scenario(n):
    """n model calls in one turn: n - 1 Reads of a small file (no process spawned: the CLI
    reads it itself; about as fast as Glob and the smallest growth of the request), a text."""
    rs = [response(i, [{"type": "tool_use", "id": "toolu_mem%06d" % i, "name": "Read",
                        "input": {"file_path": SMALL_FILE}}]) for i in range(n - 1)]
    rs.append(response(n - 1, [{"type": "text", "text": "Read it %d times." % (n - 1)}]))
    return {"description": "%d model calls in one turn" % n, "responses": rs, "after_end": "error"}


def turns_scenario(n):
    """n turns of one model call each (a short text reply)."""
    return {"description": "%d turns of one call" % n,
            "responses": [response(i, [{"type": "text", "text": "Reply %d." % (i + 1)}]) for i in range(n)],
            "after_end": "error"}


def scenario_tokens(sc):
    """Per response: its four token counts added up."""
    return [sum(r["usage"].get(k, 0) for k in USAGE_KEYS) for r in sc["responses"]]


# ------------------------------------------------------------------ the model server


class ModelServer:
    """tests/support/anthropic_server.py, loaded as a module so that its request log keeps no
    bodies: in a 3,000-call turn the CLI re-sends the whole conversation every call (up to
    ~0.8 MB a request, ~1.3 GB in all), which the server would otherwise keep parsed in
    memory. Nothing else changes: the counts and the replies are the server's own."""

    CODE = ("import sys; sys.path.insert(0, %r); import anthropic_server as a; add = a.RequestLog.add; "
            "a.RequestLog.add = lambda self, e: add(self, dict(e, body=None)); sys.exit(a.main(sys.argv[1:]))")

    def __init__(self, scenario_path):
        self.proc, self.port = start_ready([sys.executable, "-c", self.CODE % str(SUPPORT), "--scenario",
                                            str(scenario_path), "--port", "0"], timeout=30)
        self.url = "http://127.0.0.1:%d" % self.port

    def _call(self, method, path, body=None):
        req = urllib.request.Request(self.url + path, method=method, data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def load(self, scenario_bytes):
        """Replace the script (and rewind it)."""
        self._call("POST", "/_test/scenario", scenario_bytes)

    def model_calls(self):
        return self._call("GET", "/_test/count")["model_calls"]

    def close(self):
        stop_process(self.proc, timeout=5)


# ------------------------------------------------------------------ interactive input


class Conversation:
    """Drives an interactive ccrunner through two FIFOs, because measure() only writes one
    line: the runner is started as `sh -c 'exec ccrunner ... <IN >OUT'` (the same process,
    so measure()'s ptrace and VmHWM are the runner's), a user message is written to IN each
    time the runner prints `agent.waiting`, and IN is closed (end of stdin: the session ends)
    after the last result. Only what the figures need is kept of OUT: the largest line and
    the results. Both FIFOs are opened O_RDWR here first, so no open() ever blocks."""

    def __init__(self, directory, turns):
        self.turns = turns
        self.in_path, self.out_path = directory / "stdin.fifo", directory / "stdout.fifo"
        os.mkfifo(self.in_path)
        os.mkfifo(self.out_path)
        self.in_fd = os.open(self.in_path, os.O_RDWR)
        self.out_fd = os.open(self.out_path, os.O_RDWR | os.O_NONBLOCK)
        self.sent = 0
        self.results = []     # (is_error, cost) of every result
        self.queued = 0       # "Message queued" system messages: a message sent too early
        self.max_line = 0
        self.lines = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)

    def wrap(self, argv):
        return ["/bin/sh", "-c", 'i=$1 o=$2; shift 2; exec "$@" <"$i" >"$o"', "sh",
                str(self.in_path), str(self.out_path)] + list(argv)

    def start(self):
        self.thread.start()

    def _send_next(self):
        if self.sent < self.turns:
            self.sent += 1
            msg = {"type": "user_message", "payload": {"content": "Turn %d: say something." % self.sent}}
            os.write(self.in_fd, (json.dumps(msg) + "\n").encode())
        elif self.in_fd is not None:
            os.close(self.in_fd)  # end of stdin: the session ends after its last turn
            self.in_fd = None

    def _line(self, line):
        self.lines += 1
        self.max_line = max(self.max_line, len(line) + 1)
        if b'"agent.waiting"' in line[:120]:
            self._send_next()
        elif b'"result"' in line:
            try:
                env = json.loads(line)
            except ValueError:
                return
            p = env.get("payload") or {}
            if env.get("type") == "agent.message" and p.get("type") == "result":
                self.results.append((p.get("is_error"), p.get("cost")))
        elif b"Message queued" in line:
            self.queued += 1

    def _read(self):
        buf = b""
        while True:
            ready, _, _ = select.select([self.out_fd], [], [], 0.2)
            chunk = b""
            if ready:
                try:
                    chunk = os.read(self.out_fd, 1 << 16)
                except BlockingIOError:
                    pass
            if not chunk and self.stop.is_set():
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                self._line(line)

    def close(self):
        """After the runner exited: drain what it wrote, stop the reader, close the FIFOs."""
        self.stop.set()
        self.thread.join(30)
        for fd in (self.in_fd, self.out_fd):
            if fd is not None:
                os.close(fd)
        self.in_fd = None


# ------------------------------------------------------------------ one run


class Bench:
    def __init__(self, args):
        self.args = args
        self.scratch = Path(tempfile.mkdtemp(prefix="memory-bench-"))
        self.claude = str(Path(args.claude).resolve())
        # A copy, so that a rebuild of build/ during the hour this can take (other people's
        # builds in a shared tree) cannot change what is measured halfway through.
        src = Path(args.ccrunner).resolve()
        self.ccrunner = str(self.scratch / "ccrunner")
        shutil.copy2(src, self.ccrunner)
        self.binary = {"path": str(src), "mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(
            src.stat().st_mtime)), "sha256": hashlib.sha256(Path(self.ccrunner).read_bytes()).hexdigest()}
        empty = self.scratch / "empty.json"
        empty.write_text(json.dumps(turns_scenario(1)))
        self.server = ModelServer(empty)
        self.receiver = None
        self.seq = 0
        self.runs = []

    def close(self):
        self.server.close()
        if self.receiver:
            self.receiver.close()
        if not self.args.keep:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def receiver_url(self):
        if self.receiver is None:
            self.receiver = Receiver()
        return self.receiver.url

    def reset_receiver(self):
        """Forget the traces read so far: a 3,000-call trace is thousands of rows, which the
        receiver would otherwise keep and scan on every later read."""
        req = urllib.request.Request(self.receiver_url() + "/_test/reset", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=30).read()

    def env(self, home, layout, work):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(rsb.STRIPPED_ENV_PREFIXES) and k not in rsb.STRIPPED_ENV}
        env.update({k: v.format(home=home, base_url=self.server.url) for k, v in rsb.OFFLINE_ENV.items()})
        if layout != "off":
            env.update({"LANGFUSE_ENABLED": "true", "LANGFUSE_HOST": self.receiver_url(),
                        "LANGFUSE_PUBLIC_KEY": LF_KEYS[0], "LANGFUSE_SECRET_KEY": LF_KEYS[1],
                        "LANGFUSE_GENERATIONS": layout, "LANGFUSE_SPOOL_DIR": str(work / "spool")})
        return env

    def run(self, part, name, scenario, layout, turns=1, contender="ccrunner", check_file=None):
        """One session of `scenario` (part "interactive": `turns` user messages on stdin), or
        with contender "claude" bare claude on it; returns its record: measured (the session
        went right), ok (and so did its trace), problems, peak RSS, largest line, ..."""
        self.seq += 1
        sid = "mem-%d-%s-%s" % (self.seq, name, layout)
        work = self.scratch / sid
        ws, home = work / "ws", work / "home"
        ws.mkdir(parents=True)
        home.mkdir()
        (ws / SMALL_FILE).write_text("a small file the agent reads\n")
        sc_bytes = json.dumps(scenario).encode()
        self.server.load(sc_bytes)
        expected_calls = len(scenario["responses"])
        timeout = self.args.timeout or 120 + 0.5 * expected_calls
        if layout != "off" and contender == "ccrunner":
            self.reset_receiver()
        env = self.env(str(home), layout, work)
        interactive = part == "interactive"
        rec = {"part": part, "scenario": name, "layout": layout, "contender": contender, "session_id": sid,
               "calls_expected": expected_calls, "turns_expected": turns}
        conv = None
        if contender == "claude":  # bare CLI, to measure the lines it prints
            argv = [self.claude] + rsb.CLAUDE_FLAGS
            line = json.dumps({"type": "user", "message": {"role": "user", "content": "Do the task."},
                               "parent_tool_use_id": None, "session_id": ""})
            mode = "prompt-until-result"
        else:
            argv = [self.ccrunner, "--claude", self.claude, "--workspace", str(ws), "--session-id", sid,
                    "--permission-mode", "acceptEdits"]
            argv += ["-i"] if interactive else ["Do the task."]
            line, mode = "", "none"
            if interactive:
                conv = Conversation(work, turns)
                argv = conv.wrap(argv)
        before = self.server.model_calls()
        log("run %-3d %-11s %-11s %-9s %-8s calls=%d ..." % (self.seq, part, name, layout, contender,
                                                            expected_calls))
        if conv:
            conv.start()
        try:
            m = measure(argv, env, str(ws), mode, line, timeout, True, 0.005)
        finally:
            if conv:
                conv.close()
        out = m.pop("_stdout")
        rec.update({k: m.get(k) for k in ("wall_ms", "exit_code", "method", "peak_rss_kib", "cpu_ms",
                                           "threads_at_exit", "error", "ptrace_error")})
        rec["model_calls"] = self.server.model_calls() - before
        problems = []
        if m.get("error"):
            problems.append(m["error"])
        if m["exit_code"] != 0:
            problems.append("exit code %s" % m["exit_code"])
        if rec["model_calls"] != expected_calls:
            problems.append("%d model calls, expected %d" % (rec["model_calls"], expected_calls))
        if rec["peak_rss_kib"] is None:
            problems.append("own peak RSS not measured (%s)" % m.get("ptrace_error", m["method"]))
        cost = None
        if conv:
            rec["max_line"], rec["stdout_lines"] = conv.max_line, conv.lines
            rec["results"] = len(conv.results)
            if len(conv.results) != turns or any(e is not False for e, _ in conv.results):
                problems.append("%d results (%d with is_error), expected %d good ones"
                                % (len(conv.results), sum(1 for e, _ in conv.results if e is not False), turns))
            if conv.queued:
                problems.append("%d messages were queued (sent during a turn)" % conv.queued)
            cost = conv.results[-1][1] if conv.results else None
        else:
            rec["max_line"] = max((len(x.encode()) for x in out), default=0)
            rec["stdout_lines"] = len(out)
            res = find_result(out)
            if res is None:
                problems.append("no result on stdout")
            elif res["is_error"]:
                problems.append("result is_error (%s)" % res.get("subtype"))
            cost = last_cost(out)
        if check_file:
            path, size = check_file
            got = (ws / path).stat().st_size if (ws / path).is_file() else None
            if got != size:
                problems.append("%s is %s bytes, expected %d" % (path, got, size))
        # The session itself went right: its peak RSS is a figure, whatever the trace says.
        rec["measured"] = not problems
        if layout != "off" and contender == "ccrunner" and not problems:
            rec["trace_problems"] = self.check_trace(rec, sid, scenario, layout, turns, cost)
            problems += rec["trace_problems"]
        rec["ok"] = not problems
        rec["problems"] = problems
        if not rec["ok"]:
            rec["stderr_tail"] = m.get("stderr_tail", "")[-2000:]
        log("        %s wall=%.1fs own_peak_rss=%.1fMiB max_line=%d %s"
            % (sid, (rec["wall_ms"] or 0) / 1000, (rec["peak_rss_kib"] or 0) / 1024, rec["max_line"],
               "ok" if rec["ok"] else "FAILED: " + "; ".join(problems)))
        if not rec["ok"] or self.args.verbose:
            for ln in m.get("stderr_tail", "").splitlines()[-12:]:
                log("    | " + ln)
        if not self.args.keep:
            shutil.rmtree(work, ignore_errors=True)
        self.runs.append(rec)
        return rec

    def check_trace(self, rec, sid, scenario, layout, turns, cost):
        """The session's trace as Langfuse shows it: the layout's generations carry every
        model call's tokens, and the trace costs what Claude Code said (total_cost_usd)."""
        try:
            t = lf_read.read_trace(self.receiver_url(), *LF_KEYS, session_id=sid,
                                   timeout=self.args.trace_timeout)
        except (AssertionError, OSError, ValueError) as e:
            return ["trace not read from the receiver: %s" % str(e)[:300]]
        gens = [o for o in t["observations"] if o["type"] == "GENERATION"]
        want_name, want_count = ("claude-query", turns) if layout == "per-query" else \
            ("model-call", len(scenario["responses"]))
        mine = [o for o in gens if o["name"] == want_name]
        tokens = sum(sum((o.get("usageDetails") or {}).get(k, 0) for k in LF_USAGE_KEYS) for o in gens)
        want_tokens = sum(scenario_tokens(scenario))
        names = {}
        for o in t["observations"]:
            key = "%s %s" % (o["type"], o["name"])
            names[key] = names.get(key, 0) + 1
        per_call = sorted(scenario_tokens(scenario))
        calls = [o for o in t["observations"] if o["name"] == "model-call"]
        call_tokens = sorted(sum((o.get("usageDetails") or {}).get(k, 0) for k in LF_USAGE_KEYS) for o in calls)
        # Where the tokens are when they are not on the model calls (per-call layout only:
        # per-query model-call spans carry none).
        if layout == "per-call" and call_tokens != per_call:
            rec["calls_off"] = sum(1 for a, b in zip(call_tokens, per_call) if a != b) + abs(len(calls) - len(per_call))
        rec["trace"] = {"observations": len(t["observations"]), "by_type_and_name": names,
                        "generations": len(gens), "tokens": tokens, "total_cost": t.get("totalCost"),
                        "result_cost": cost}
        problems = []
        if len(mine) != want_count or len(gens) != want_count:
            odd = [o for o in gens if o["name"] != want_name]
            problems.append("trace: %d %s generations of %d generations, expected %d (observations: %s; %s)"
                            % (len(mine), want_name, len(gens), want_count,
                               ", ".join("%d %s" % (v, k) for k, v in sorted(names.items())),
                               "; ".join("%s usage %s" % (o["name"], json.dumps(o.get("usageDetails")))
                                         for o in odd[:3])))
        if rec.get("calls_off"):
            problems.append("trace: %d model-call generations without their call's exact tokens"
                            % rec["calls_off"])
        if tokens != want_tokens:
            problems.append("trace: %d tokens on its generations, the model calls had %d" % (tokens, want_tokens))
        if not t.get("totalCost") or cost is None or abs(t["totalCost"] - cost) > 1e-9 * max(1.0, cost):
            problems.append("trace: total cost %r, Claude Code's %r" % (t.get("totalCost"), cost))
        if any(not (o.get("costDetails") or {}).get("total") for o in mine):
            problems.append("trace: a %s without its cost" % want_name)
        return problems


def last_cost(lines):
    for line in reversed(lines):
        if '"result"' in line:
            try:
                p = json.loads(line).get("payload") or {}
            except ValueError:
                continue
            if p.get("type") == "result":
                return p.get("cost")
    return None


# ------------------------------------------------------------------ the two parts


def big_lines(bench, args, layouts):
    size, chunk = args.big_mb * 1000 * 1000, args.chunk
    cases = [("text-10MB" if args.big_mb == 10 else "text", big_text_scenario(size, chunk), None),
             ("write-10MB" if args.big_mb == 10 else "write", big_write_scenario(size, chunk), (BIG_FILE, size))]
    rows = []
    for name, sc, check in cases:
        claude = bench.run("big-lines", name, sc, "off", contender="claude", check_file=check)
        for layout in layouts:
            r = bench.run("big-lines", name, sc, layout, check_file=check)
            rows.append((name, layout, claude, r))
    print()
    print("== Big lines: own peak RSS < %d x largest line + %d MiB (text reply and Write content %d MB, "
          "chunks of %d bytes)" % (BIG_LINE_FACTOR, BIG_LINE_SLACK // MIB, args.big_mb, chunk))
    head = ["scenario", "layout", "claude's largest line", "ccrunner's largest line", "own peak RSS",
            "bound", "target", "trace (tokens, cost)", "wall"]
    table = []
    for name, layout, claude, r in rows:
        line = claude["max_line"] if claude["measured"] else None
        bound = BIG_LINE_FACTOR * line + BIG_LINE_SLACK if line else None
        rss = r["peak_rss_kib"] * 1024 if r["peak_rss_kib"] else None
        if not r["measured"]:
            verdict = "run FAILED"
        elif bound is None:
            verdict = "no bound (claude run failed)"
        else:
            verdict = "PASS" if rss < bound else "FAIL"
        tr = r.get("trace")
        table.append([name, layout, mib(line), mib(r["max_line"]), mib(rss), mib(bound), verdict,
                      "-" if layout == "off" else ("%d tok, $%.6f: ok" % (tr["tokens"], tr["total_cost"])
                                                   if r["ok"] and tr else "FAILED"),
                      "%.1f s" % ((r["wall_ms"] or 0) / 1000)])
    print_table(head, table)
    print("claude's largest line: the longest stdout line of bare claude run with the same scenario and the\n"
          "  flags ccrunner gives it (the runner's input); own peak RSS: ccrunner's VmHWM at its exit.")


def long_sessions(bench, args, layouts, parts):
    calls = args.calls
    results = {}
    for part in parts:
        for layout in layouts:
            for n in calls:
                reps = []
                for _ in range(args.repeat):
                    if part == "one-turn":
                        reps.append(bench.run(part, "calls-%d" % n, one_turn_scenario(n), layout))
                    else:
                        reps.append(bench.run("interactive", "turns-%d" % n, turns_scenario(n), layout, turns=n))
                results[(part, layout, n)] = reps
    print()
    print("== Long sessions: own peak RSS flat with the number of model calls: at most %d KiB more for %d "
          "calls than for %d (tracing on)" % (FLAT_KIB, FLAT_TO, FLAT_FROM))
    head = ["session", "layout", "calls", "own peak RSS KiB", "MiB", "+KiB vs %d" % calls[0],
            "KiB per extra call", "wall", "s per call", "own CPU", "trace"]
    table, verdicts = [], []
    for part in parts:
        for layout in layouts:
            base = rss_of(results[(part, layout, calls[0])])
            for n in calls:
                reps = results[(part, layout, n)]
                rss = rss_of(reps)
                ok = [r for r in reps if r["measured"]]
                wall = statistics.median(r["wall_ms"] for r in ok) / 1000 if ok else None
                cpu = statistics.median(r["cpu_ms"] or 0 for r in ok) / 1000 if ok else None
                extra = rss - base if rss is not None and base is not None else None
                per = extra / (n - calls[0]) if extra is not None and n != calls[0] else None
                bad_traces = sum(1 for r in reps if r.get("trace_problems"))
                trace = "-" if layout == "off" else ("FAILED" if bad_traces else "ok" if ok else "-")
                table.append([part, layout, n, "-" if rss is None else "%d" % rss,
                              "-" if rss is None else "%.2f" % (rss / 1024),
                              "-" if extra is None or n == calls[0] else "%+d" % extra,
                              "-" if per is None else "%.3f" % per,
                              "-" if wall is None else "%.1f s" % wall,
                              "-" if wall is None else "%.3f" % (wall / n),
                              "-" if cpu is None else "%.2f s" % cpu,
                              trace + ("" if len(ok) == len(reps) else " (%d/%d sessions ok)" % (len(ok), len(reps)))])
            verdicts.append(flat_verdict(part, layout, calls, results))
    print_table(head, table)
    print("own peak RSS: ccrunner's VmHWM at its exit%s; one-turn: N model calls in one turn (N-1 Reads, a text);\n"
          "  interactive: N turns of one call, each a user message on stdin. s per call: wall / N.\n"
          "  own CPU: ccrunner's own process (all threads, not claude)."
          % (" (median of %d runs)" % args.repeat if args.repeat > 1 else ""))
    for v in verdicts:
        print(v)


def rss_of(reps):
    vals = [r["peak_rss_kib"] for r in reps if r["measured"]]
    return statistics.median(vals) if vals else None


def flat_verdict(part, layout, calls, results):
    lo, hi = calls[0], calls[-1]
    a, b = rss_of(results[(part, layout, lo)]), rss_of(results[(part, layout, hi)])
    what = "target: %s %s: " % (part, layout)
    if a is None or b is None or hi == lo:
        return what + "no figure (failed runs or a single N)"
    extra = b - a
    if any(r.get("trace_problems") for n in (lo, hi) for r in results[(part, layout, n)]):
        what += "(the trace check FAILED, see below; the memory figure stands) "
    if (lo, hi) == (FLAT_FROM, FLAT_TO):
        return what + "%d calls %+d KiB over %d calls; <= %d KiB: %s%s" % (
            hi, extra, lo, FLAT_KIB, "PASS" if extra <= FLAT_KIB else "FAIL",
            "" if layout != "off" else " (tracing off: for reference, the target is for tracing on)")
    projected = extra / (hi - lo) * (FLAT_TO - FLAT_FROM)
    return what + "%d calls %+d KiB over %d calls, projected to %d vs %d: %+.0f KiB; <= %d KiB: %s (projected)" % (
        hi, extra, lo, FLAT_TO, FLAT_FROM, projected, FLAT_KIB, "PASS" if projected <= FLAT_KIB else "FAIL")


# ------------------------------------------------------------------ output


def mib(nbytes):
    return "-" if nbytes is None else "%.2f MiB" % (nbytes / MIB)


def print_table(head, rows, out=sys.stdout):
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    fmt = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    print(fmt(head), file=out)
    print("-" * len(fmt(head)), file=out)
    for r in rows:
        print(fmt(r), file=out)
    out.flush()


def versions(claude, ccrunner):
    v = {"python": sys.version.split()[0]}
    for key, cmd in (("claude", [claude, "--version"]), ("ccrunner", [ccrunner, "--version"])):
        try:
            v[key] = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as e:
            v[key] = "unknown (%s)" % e
    try:
        v["git_head"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                                       text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return v


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("all", "big", "long"), default="all",
                    help="big lines, long sessions, or both (default)")
    ap.add_argument("--calls", default="30,300,3000",
                    help="long sessions: the numbers of model calls, first the base (default 30,300,3000)")
    ap.add_argument("--sessions", default="one-turn,interactive",
                    help="long sessions: one-turn, interactive or both (default)")
    ap.add_argument("--layouts", default=",".join(LAYOUTS),
                    help="off (tracing off), per-query, per-call (LANGFUSE_GENERATIONS); default all three")
    ap.add_argument("--big-mb", type=int, default=10, help="big lines: the text and the Write content, MB (10)")
    ap.add_argument("--chunk", type=int, default=4096,
                    help="big lines: bytes per streamed text_delta / input_json_delta (default 4096)")
    ap.add_argument("--repeat", type=int, default=1, help="long sessions: runs per point, median (default 1)")
    ap.add_argument("--timeout", type=float, help="seconds per run (default 120 + 0.5 per model call)")
    ap.add_argument("--trace-timeout", type=float, default=60, help="seconds to wait for a trace (default 60)")
    ap.add_argument("--claude", default=str(DEFAULT_CLAUDE), help="Claude Code CLI (default node_modules/.bin/claude)")
    ap.add_argument("--ccrunner", default=str(DEFAULT_CCRUNNER), help="ccrunner (default build/ccrunner)")
    ap.add_argument("--json", metavar="FILE", help="write every run's record here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (workspaces, HOMEs, scenarios)")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo each run's stderr tail")
    args = ap.parse_args(argv)
    try:
        args.calls = [int(x) for x in args.calls.split(",") if x.strip()]
    except ValueError:
        ap.error("--calls wants numbers separated by commas")
    if not args.calls or min(args.calls) < 2 or args.calls != sorted(set(args.calls)):
        ap.error("--calls wants increasing numbers >= 2 (the first is the base)")
    layouts = [x.strip() for x in args.layouts.split(",") if x.strip()]
    sessions = [x.strip() for x in args.sessions.split(",") if x.strip()]
    if not layouts or any(x not in LAYOUTS for x in layouts):
        ap.error("--layouts: some of %s" % ",".join(LAYOUTS))
    if not sessions or any(x not in ("one-turn", "interactive") for x in sessions):
        ap.error("--sessions: one-turn, interactive")
    if args.repeat < 1 or args.big_mb < 1 or args.chunk < 1:
        ap.error("--repeat, --big-mb and --chunk must be >= 1")
    for path, hint in ((args.claude, "run `npm ci`"), (args.ccrunner, "cmake --build build")):
        if not Path(path).exists():
            ap.error("%s not found (%s)" % (path, hint))

    t0 = time.monotonic()
    bench = Bench(args)
    log("model server on %s; scratch %s; measuring a copy of %s (built %s, sha256 %s)"
        % (bench.server.url, bench.scratch, bench.binary["path"], bench.binary["mtime"],
           bench.binary["sha256"][:16]))
    v = versions(args.claude, bench.ccrunner)
    try:
        if args.part in ("all", "big"):
            big_lines(bench, args, layouts)
        if args.part in ("all", "long"):
            long_sessions(bench, args, layouts, sessions)
    finally:
        bench.close()
    failed = [r for r in bench.runs if not r["ok"]]
    print()
    print("claude %s; %s; ccrunner %s (%s, built %s, sha256 %s); %d runs in %.0f s"
          % (v.get("claude"), "work tree at git HEAD %s" % v.get("git_head", "?")[:12], v.get("ccrunner"), bench.binary["path"],
             bench.binary["mtime"], bench.binary["sha256"][:16], len(bench.runs), time.monotonic() - t0))
    methods = sorted({r["method"] for r in bench.runs if r.get("method")})
    if methods != ["ptrace-exit-stop"]:
        print("note: own RSS method %s (ptrace not used or failed)" % ",".join(methods))
    if failed:
        print("FAILED RUNS: %d: %s" % (len(failed), "; ".join("%s %s: %s" % (r["session_id"], r["contender"],
                                                                           ", ".join(r["problems"]))
                                                            for r in failed)))
    if args.json:
        Path(args.json).write_text(json.dumps({"versions": v, "binary": bench.binary, "args": vars(args),
                                               "runs": bench.runs},
                                              indent=1, default=str) + "\n")
        log("runs written to %s" % args.json)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
