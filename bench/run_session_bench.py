#!/usr/bin/env python3
"""Session benchmark driver: bare `claude` vs ccrunner vs a runner on the Claude Agent SDK.

Every contender runs the same scripted session (tests/support/scenarios/ten_calls.json:
10 model calls, 9 tool uses) on the real Claude Code CLI, against one local scripted
model server (tests/support/anthropic_server.py), side by side in one run, interleaved
round by round after a warm-up round. The table gives per contender the wall time of the
whole run and its ratio to bare `claude`, and the CPU time and peak RSS of the runner's
own process (its `claude` child excluded). See bench/README.md, "Session benchmark".

    python3 bench/run_session_bench.py [--runs 5] [--json FILE]
    python3 bench/run_session_bench.py --tracing [--runs 5]     the tracing benchmark (below)
    python3 bench/run_session_bench.py --enrichment             the enrichment benchmark (below)

--scenario may be given more than once (or as a comma list): every round then runs every
contender on every scenario (one model server each), and the summary has a block per
scenario; ratios and paired differences compare runs of the same round and scenario.

--tracing: ccrunner with tracing off (the baseline), on against a live Langfuse test receiver
(`traced`), and on against a receiver that never answers (`blackhole`, the default flush
deadline), each started here on 127.0.0.1. Adds the "end tail" figure: the time from the
last line on stdout to the process's exit, which is where the final flush happens.

--enrichment: what Claude Code's own telemetry (src/runner/otel.c, merged into the trace)
costs. Bare `claude`, `traced` (tracing on against a live receiver, the enrichment on) and
`notel` (the same with CCRUNNER_CLAUDE_TELEMETRY=off), on ten_calls.json and
subagent.json, 11 rounds, order rotated (each unless given). Per scenario: the wall
medians and ratios to `claude`, the runner's own CPU, what the enrichment adds (traced -
notel, as medians and as the median of the per-round differences), own peak RSS, and the
issue's targets.

Every ccrunner run is given its session id (SESSION_ID); a run traced to the live receiver
has its trace read back (tests/support/lf_read.py) and fails unless its model calls carry
the cost_source its setting implies (src/runner/trace.c): `claude-code-telemetry` on every
one, one per model call, with the enrichment on; none of them with it off.

Contenders (a list: add one to CONTENDERS, or derive one with --variant):
  claude    node_modules/.bin/claude in stream-json mode, driven as ccrunner drives it
  ccrunner  build/ccrunner --claude node_modules/.bin/claude  (skipped if not built)
  agent-sdk node bench/sdk/runner.mjs, on @anthropic-ai/claude-agent-sdk (same CLI binary)

How the runner's own figures are taken (Linux): the driver PTRACE_SEIZEs the process it
started with only PTRACE_O_TRACEEXIT, so the process stops once, at exit, before its
memory is released; there it reads the process CPU clock (clock_getcpuclockid: all its
threads, none of its children, ns) and VmHWM from /proc/PID/status (the high-water mark
of its own address space since its exec), then detaches. Stdlib only (ctypes for
ptrace).
"""

import argparse
import ctypes
import ctypes.util
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SDK_DIR = BENCH / "sdk"
SERVER = ROOT / "tests" / "support" / "anthropic_server.py"
SCENARIOS = ROOT / "tests" / "support" / "scenarios"
DEFAULT_SCENARIO = SCENARIOS / "ten_calls.json"
SUBAGENT_SCENARIO = SCENARIOS / "subagent.json"
DEFAULT_CLAUDE = ROOT / "node_modules" / ".bin" / "claude"
DEFAULT_CCRUNNER = ROOT / "build" / "ccrunner"
sys.path.insert(0, str(ROOT / "tests" / "support"))
from procs import start_ready, stop_process  # noqa: E402
import lf_read  # noqa: E402
DEFAULT_PROMPT = "Check the shell, then write notes1.txt to notes3.txt and read each one back."
BASELINE = "claude"
# What the (first) scenario makes every run do (scenario_facts), filled in main(); with
# several scenarios each has its own, passed along (run_one's `expected`).
EXPECTED = {}
# Targets from the issue, checked for ccrunner.
TARGET_WALL_RATIO = 1.01
TARGET_RSS_MIB = 8.0
# A run during which other programs took more CPU than this fraction of its wall time is
# flagged (see foreign_cpu_ms).
FOREIGN_CPU_FRACTION = 0.10
# The environment of every contender is the caller's less these prefixes (so that nothing
# of the caller's Claude/Anthropic/Langfuse/ccrunner setup leaks in), plus OFFLINE_ENV.
STRIPPED_ENV_PREFIXES = ("ANTHROPIC_", "CLAUDE_", "LANGFUSE_", "OTEL_", "VERTEX_", "CLOUD_ML_", "CCRUNNER_")
STRIPPED_ENV = {"NODE_OPTIONS", "USE_VERTEX_AI", "GOOGLE_APPLICATION_CREDENTIALS", "INITIAL_PROMPT",
                "PROMPT", "INTERACTIVE", "LLM_MODEL", "WORKSPACE_PATH", "SESSION_ID", "TIMEOUT",
                "PERMISSION_MODE", "SYSTEM_PROMPT", "WEBSOCKET_URL", "BOT_TOKEN",
                "AGENTIC_SESSION_NAME", "AGENTIC_SESSION_NAMESPACE", "NAMESPACE"}
OFFLINE_ENV = {
    "HOME": "{home}",
    "ANTHROPIC_BASE_URL": "{base_url}",
    "ANTHROPIC_API_KEY": "sk-test",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
}
CLAUDE_FLAGS = ["--output-format", "stream-json", "--verbose", "--input-format", "stream-json",
                "--include-partial-messages", "--permission-mode", "acceptEdits"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ contenders


@dataclass
class Contender:
    """One way of running the session. Strings in argv, env and requires are templates:
    {claude} {ccrunner} {node} {sdk_dir} {root} {workspace} {home} {prompt} {base_url} {port}.
    An env value of None removes that variable. stdin is "none" (stdin is /dev/null),
    "prompt-until-result" (the prompt as one stream-json user line, stdin closed once the
    `result` line is on stdout: what ccrunner does with the CLI) or "prompt-then-close" (the
    same line, stdin closed at once: what the Agent SDK does with a string prompt)."""

    name: str
    description: str
    argv: list
    env: dict = field(default_factory=dict)
    stdin: str = "none"
    requires: list = field(default_factory=list)  # [(path template, what to do if missing)]


CONTENDERS = [
    Contender(
        name="claude",
        description="bare Claude Code CLI, stream-json, prompt on stdin, stdin closed after the result",
        argv=["{claude}"] + CLAUDE_FLAGS,
        stdin="prompt-until-result",
        requires=[("{claude}", "run `npm ci` in the project root")],
    ),
    Contender(
        name="ccrunner",
        description="build/ccrunner, tracing off (LANGFUSE_ENABLED unset)",
        argv=["{ccrunner}", "--claude", "{claude}", "--workspace", "{workspace}", "{prompt}"],
        requires=[("{ccrunner}", "build it first: cmake --build build")],
    ),
    Contender(
        name="agent-sdk",
        description="node bench/sdk/runner.mjs: query() of @anthropic-ai/claude-agent-sdk on the same CLI",
        argv=["{node}", "{sdk_dir}/runner.mjs", "--claude", "{claude}", "--workspace", "{workspace}",
              "{prompt}"],
        requires=[("{node}", "install Node.js 20+"),
                  ("{sdk_dir}/node_modules/@anthropic-ai/claude-agent-sdk/package.json",
                   "run `npm ci --prefix bench/sdk`")],
    ),
    # Not run by default: bare claude with stdin closed right after the prompt (as the SDK
    # does), to check that the baseline does not depend on when stdin is closed.
    Contender(
        name="claude-close-early",
        description="bare Claude Code CLI, stream-json, stdin closed right after the prompt",
        argv=["{claude}"] + CLAUDE_FLAGS,
        stdin="prompt-then-close",
        requires=[("{claude}", "run `npm ci` in the project root")],
    ),
]
DEFAULT_CONTENDERS = ("claude", "ccrunner", "agent-sdk")


_VARIANT_SPLIT = re.compile(r":(?=[A-Za-z_][A-Za-z0-9_]*=|-[A-Za-z_][A-Za-z0-9_]*(?::|$))")


def parse_variant(spec, by_name):
    """NAME:BASE[:KEY=VALUE|:-KEY ...], e.g. ccrunner-traced:ccrunner:LANGFUSE_ENABLED=true:-USER_ID.
    A new entry starts at a colon followed by KEY= or -KEY, so values may hold colons (URLs)."""
    head = spec.split(":", 2)
    if len(head) < 2 or not head[0] or head[1] not in by_name:
        raise ValueError("--variant %r: want NAME:BASE[:KEY=VALUE|:-KEY ...] with BASE one of %s"
                         % (spec, ", ".join(by_name)))
    base = by_name[head[1]]
    env = dict(base.env)
    items = _VARIANT_SPLIT.split(":" + head[2])[1:] if len(head) == 3 else []
    if len(head) == 3 and not items:
        raise ValueError("--variant %r: %r is neither KEY=VALUE nor -KEY" % (spec, head[2]))
    for item in items:
        if item.startswith("-"):
            env[item[1:]] = None
        else:
            k, _, v = item.partition("=")
            env[k] = v
    return Contender(name=head[0], description="%s with %s" % (base.name, " ".join(items) or "no change"),
                     argv=list(base.argv), env=env, stdin=base.stdin, requires=list(base.requires))


# ------------------------------------------------------------------ Langfuse receivers (--tracing)

RECEIVER = ROOT / "tests" / "support" / "langfuse_receiver.py"
LF_KEYS = ("pk-lf-bench", "sk-lf-bench")
# Targets from the tracing issue, checked for the `traced` and `blackhole` variants.
TARGET_TRACED_RATIO = 1.01
TARGET_FLUSH_MS = 50.0
DEFAULT_FLUSH_TIMEOUT_MS = 5000.0


class Receiver:
    """tests/support/langfuse_receiver.py on a free loopback port, optionally a black hole."""

    def __init__(self, mode=None):
        self.proc, port = start_ready([sys.executable, str(RECEIVER), "--port", "0", "--public-key",
                                       LF_KEYS[0], "--secret-key", LF_KEYS[1]])
        self.url = "http://127.0.0.1:%d" % port
        if mode:
            req = urllib.request.Request(self.url + "/_test/mode", data=json.dumps(mode).encode(),
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=10).read()

    def stats(self):
        return json.loads(urllib.request.urlopen(self.url + "/_test/stats", timeout=10).read())

    def wire(self):
        """(requests, bytes on the wire, JSON bytes) of every request it received."""
        reqs = json.loads(urllib.request.urlopen(self.url + "/_test/requests", timeout=10).read())
        return (len(reqs), sum(r.get("wire_bytes") or 0 for r in reqs),
                sum(r.get("body_bytes") or 0 for r in reqs))

    def close(self):
        stop_process(self.proc)


def tracing_variants(live, hole):
    common = ":LANGFUSE_ENABLED=true:LANGFUSE_PUBLIC_KEY=%s:LANGFUSE_SECRET_KEY=%s" % LF_KEYS
    return ["traced:ccrunner" + common + ":LANGFUSE_HOST=" + live.url,
            "blackhole:ccrunner" + common + ":LANGFUSE_HOST=" + hole.url]


def enrichment_variants(live):
    """`traced`: tracing on against the live receiver, the enrichment on (the default);
    `notel`: the same with the enrichment off."""
    common = ":LANGFUSE_ENABLED=true:LANGFUSE_PUBLIC_KEY=%s:LANGFUSE_SECRET_KEY=%s" % LF_KEYS
    return ["traced:ccrunner" + common + ":LANGFUSE_HOST=" + live.url,
            "notel:traced:CCRUNNER_CLAUDE_TELEMETRY=off"]


def print_wire(receiver, sessions, out=sys.stdout, what="traced session"):
    """What tracing sends per session: the export-once figure (Langfuse v4 issue)."""
    if sessions:
        n, wire, body = receiver.wire()
        print("sent per %s: %.1f requests, %.0f bytes on the wire (gzip), %.0f bytes of JSON"
              % (what, n / sessions, wire / sessions, body / sessions), file=out)


def print_delivered(delivered, out=sys.stdout, what="traced runs"):
    got, want = delivered
    print("traces delivered to the live receiver: %d of %d %s (warm-up included): %s"
          % (got, want, what, "PASS" if got == want else "FAIL, traces were lost"), file=out)


def print_tracing_targets(summary, delivered, out=sys.stdout):
    base, on, hole = summary.get("ccrunner"), summary.get("traced"), summary.get("blackhole")
    if not (base and on and base["ok_runs"] and on["ok_runs"]):
        return
    r, n = on["ratio_median_of_rounds"], len(on["ratio_per_round"])
    if r is not None:
        verdict = "not enough runs (need >= 5)" if n < 5 else "PASS" if r <= TARGET_TRACED_RATIO else "FAIL"
        print("target: traced wall vs tracing off x%.4f (%+.2f%%), median of %d per-round ratios "
              "(range %.3f..%.3f); <= x%.2f: %s" % (r, (r - 1) * 100, n, min(on["ratio_per_round"]),
                                                     max(on["ratio_per_round"]), TARGET_TRACED_RATIO, verdict),
              file=out)
    cpu = on["cpu_ms_median"] - base["cpu_ms_median"]
    print("tracing's own CPU: %+.1f ms per session (medians), %.2f%% of tracing off's median wall; the wall "
          "ratio above carries the machine's noise, this does not" % (cpu, cpu / base["wall_ms_median"] * 100),
          file=out)
    flush = on["tail_ms_median"] - base["tail_ms_median"]
    print("target: final flush (end tail traced - off, medians) %.1f ms; <= %.0f ms: %s"
          % (flush, TARGET_FLUSH_MS, "PASS" if flush <= TARGET_FLUSH_MS else "FAIL"), file=out)
    if hole and hole["ok_runs"]:
        late = hole["tail_ms_max"] - base["tail_ms_median"]
        print("bound: black hole end tail max %.0f ms over tracing off; <= the flush deadline %.0f ms (+%.0f): %s"
              % (late, DEFAULT_FLUSH_TIMEOUT_MS, TARGET_FLUSH_MS,
                 "PASS" if late <= DEFAULT_FLUSH_TIMEOUT_MS + TARGET_FLUSH_MS else "FAIL"), file=out)
    if delivered is not None:  # None: said once for all the scenarios (print_delivered)
        print_delivered(delivered, out)


# ------------------------------------------------------------------ the enrichment (--enrichment)

# Targets from the enrichment issue, checked for `traced` (the enrichment on) against
# `notel` (off) and bare `claude`, per scenario.
TARGET_ENRICHMENT_MS = 50.0
TARGET_ENRICHED_RATIO = 1.05  # the seed's bar: traced, enrichment on, vs bare claude
MIN_ENRICHMENT_ROUNDS = 11
ENRICHMENT_CONTENDERS = ("claude", "traced", "notel")
ENRICHMENT_SCENARIOS = (DEFAULT_SCENARIO, SUBAGENT_SCENARIO)
# A model call's metadata cost_source (src/runner/trace.c, SOURCE_EXACT / SOURCE_SHARE).
COST_SOURCE_TELEMETRY = "claude-code-telemetry"
COST_SOURCE_SHARE = "apportioned"
TELEMETRY_OFF_VALUES = ("off", "false", "0")  # CCRUNNER_CLAUDE_TELEMETRY (trace.c)
TRACE_READ_TIMEOUT_S = 10.0


def check_trace(url, session_id, expected, telemetry):
    """The session's trace read back from the receiver as a Langfuse user would
    (lf_read): where its model calls' numbers came from. `telemetry`: whether the
    enrichment was on. Returns (facts, problems); facts: the model-call observations
    (spans per-query, generations per-call or a subagent's), their cost_source counts,
    the `subagent-calls` remainders (calls no report covered) and the claude-query's
    cost_source."""
    try:
        t = lf_read.read_trace(url, *LF_KEYS, session_id=session_id, timeout=TRACE_READ_TIMEOUT_S)
    except (AssertionError, OSError, ValueError) as e:
        return {}, ["trace not read from the receiver: %s" % str(e)[:300]]
    obs = t["observations"]
    source = lambda o: str((o.get("metadata") or {}).get("cost_source"))
    calls = [o for o in obs if o.get("name") == "model-call"]
    sources = {}
    for o in calls:
        sources[source(o)] = sources.get(source(o), 0) + 1
    facts = {"model_calls": len(calls), "cost_source": sources,
             "subagent_calls_remainders": sum(1 for o in obs if o.get("name") == "subagent-calls"),
             "query_cost_source": sorted({source(o) for o in obs if o.get("name") == "claude-query"})}
    said = ", ".join("%s x%d" % kv for kv in sorted(sources.items())) or "no model calls"
    problems = []
    if telemetry:
        if sources.keys() != {COST_SOURCE_TELEMETRY} or len(calls) != expected["model_calls"] \
                or facts["subagent_calls_remainders"]:
            problems.append("trace: model calls not (all) from Claude Code's telemetry: %d model-call "
                            "observations (expected %d) with cost_source %s, %d subagent-calls remainders"
                            % (len(calls), expected["model_calls"], said, facts["subagent_calls_remainders"]))
    elif COST_SOURCE_TELEMETRY in sources or COST_SOURCE_TELEMETRY in facts["query_cost_source"]:
        problems.append("trace: numbers from Claude Code's telemetry with the enrichment off: cost_source %s"
                        % said)
    return facts, problems


def cost_sources(runs, order):
    """Per contender, over the runs whose trace was read: {"runs": n, cost_source: model
    calls with it, "subagent-calls": remainders (apportioned; calls no report covered)}."""
    out = {}
    for c in order:
        seen = [r["trace"] for r in runs if r["contender"] == c and r.get("trace")]
        if seen:
            d = out[c] = {"runs": len(seen)}
            for t in seen:
                for k, v in t["cost_source"].items():
                    d[k] = d.get(k, 0) + v
                if t["subagent_calls_remainders"]:
                    d["subagent-calls"] = d.get("subagent-calls", 0) + t["subagent_calls_remainders"]
    return out


def print_cost_sources(sources, out=sys.stdout):
    if sources:
        print("cost_source of the model calls in the traces read back: %s"
              % "; ".join("%s %s (%d runs)" % (c, ", ".join("%s x%d" % (k, v) for k, v in sorted(d.items())
                                                           if k != "runs") or "none", d["runs"])
                          for c, d in sources.items()), file=out)


def enrichment_figures(runs, summary, on="traced", off="notel", base="claude"):
    """What the enrichment costs on one scenario's measured runs: `on` vs `off`, both vs
    `base`. The paired figures are medians of the per-round differences (on - off, both
    successful in the same round): the machine's drift cancels out of them."""
    s_on, s_off, s_base = summary.get(on), summary.get(off), summary.get(base)
    if not (s_on and s_off and s_on["ok_runs"] and s_off["ok_runs"]):
        return None
    ok = {(r["contender"], r["round"]): r for r in runs if r["ok"]}
    rounds = [t for t in dict.fromkeys(r["round"] for r in runs) if (on, t) in ok and (off, t) in ok]
    paired_wall = [round(ok[(on, t)]["wall_ms"] - ok[(off, t)]["wall_ms"], 3) for t in rounds]
    paired_cpu = [round(ok[(on, t)]["cpu_ms"] - ok[(off, t)]["cpu_ms"], 3) for t in rounds]
    f = {
        "wall_ms_median": {c: summary[c]["wall_ms_median"] for c in (base, on, off) if c in summary},
        "cpu_ms_median": {c: summary[c]["cpu_ms_median"] for c in (on, off)},
        "peak_rss_mib_median": {c: summary[c]["peak_rss_mib_median"] for c in (base, on, off) if c in summary},
        "peak_rss_mib_max": {c: summary[c]["peak_rss_mib_max"] for c in (base, on, off) if c in summary},
        "adds_wall_ms_medians": s_on["wall_ms_median"] - s_off["wall_ms_median"],
        "adds_wall_ms_paired_median": med(paired_wall),
        "adds_wall_ms_paired": paired_wall,
        "adds_cpu_ms_medians": s_on["cpu_ms_median"] - s_off["cpu_ms_median"],
        "adds_cpu_ms_paired_median": med(paired_cpu),
        "paired_rounds": len(rounds),
        "cost_source": cost_sources(runs, (on, off)),
    }
    if s_base and s_base["ok_runs"]:
        for c, s in ((on, s_on), (off, s_off)):
            f["ratio_%s_median_of_rounds" % c] = s["ratio_median_of_rounds"]
            f["ratio_%s_per_round" % c] = s["ratio_per_round"]
            f["ratio_%s_of_medians" % c] = s["ratio_of_medians"]
    return f


def print_enrichment(f, summary, on="traced", off="notel", base="claude", out=sys.stdout):
    if f is None:
        print("enrichment: no figures (%s and %s need successful runs)" % (on, off), file=out)
        return
    walls = ", ".join("%s %s" % (c, fmt(v, 0)) for c, v in f["wall_ms_median"].items())
    ratios = []
    for c in (on, off):
        r, per = f.get("ratio_%s_median_of_rounds" % c), f.get("ratio_%s_per_round" % c) or []
        if r is not None:
            ratios.append("%s x%.4f (%.3f..%.3f)" % (c, r, min(per), max(per)))
    print("enrichment: wall ms medians %s; x %s, medians of the per-round ratios: %s"
          % (walls, base, ", ".join(ratios) or "-"), file=out)
    paired = f["adds_wall_ms_paired"]
    print("enrichment adds per session: wall %+.1f ms (medians %s - %s), %+.1f ms paired (median of %d per-round "
          "differences, range %+.0f..%+.0f); runner's own CPU %+.1f ms (medians %s %s, %s %s), %+.1f ms paired"
          % (f["adds_wall_ms_medians"], on, off, f["adds_wall_ms_paired_median"] or 0, len(paired),
             min(paired, default=0), max(paired, default=0), f["adds_cpu_ms_medians"], on,
             fmt(f["cpu_ms_median"][on]), off, fmt(f["cpu_ms_median"][off]), f["adds_cpu_ms_paired_median"] or 0),
          file=out)
    print("own peak RSS MiB med / max: %s" % ", ".join(
        "%s %s / %s" % (c, fmt(v, 2), fmt(f["peak_rss_mib_max"][c], 2)) for c, v in f["peak_rss_mib_median"].items()),
        file=out)
    print_cost_sources(f["cost_source"], out)
    n = f["paired_rounds"]
    few = "not enough runs (need >= %d)" % MIN_ENRICHMENT_ROUNDS
    if paired:
        a = f["adds_wall_ms_paired_median"]
        print("target: enrichment adds %+.1f ms per session (median of %d paired per-round differences %s - %s); "
              "<= %.0f ms: %s" % (a, n, on, off, TARGET_ENRICHMENT_MS,
                                  few if n < MIN_ENRICHMENT_ROUNDS else "PASS" if a <= TARGET_ENRICHMENT_MS else "FAIL"),
              file=out)
    r, per = f.get("ratio_%s_median_of_rounds" % on), f.get("ratio_%s_per_round" % on) or []
    if r is not None:
        print("target: %s wall vs bare %s x%.4f (%+.2f%%), median of %d per-round ratios (range %.3f..%.3f); "
              "<= x%.2f: %s" % (on, base, r, (r - 1) * 100, len(per), min(per), max(per), TARGET_ENRICHED_RATIO,
                                few if len(per) < MIN_ENRICHMENT_ROUNDS else
                                "PASS" if r <= TARGET_ENRICHED_RATIO else "FAIL"), file=out)
    m = f["peak_rss_mib_max"][on]
    print("target: %s own peak RSS max %.2f MiB over %d runs; < %.0f MiB (%d bytes): %s"
          % (on, m, summary[on]["ok_runs"], TARGET_RSS_MIB, TARGET_RSS_MIB * 1024 * 1024,
             "PASS" if m < TARGET_RSS_MIB else "FAIL"), file=out)


# ------------------------------------------------------------------ the model server


class ModelServer:
    def __init__(self, scenario_path, log_path=None):
        self.scenario_bytes = Path(scenario_path).read_bytes()
        cmd = [sys.executable, str(SERVER), "--scenario", str(scenario_path), "--port", "0"]
        if log_path:
            cmd += ["--log", str(log_path)]
        try:
            self.proc, self.port = start_ready(cmd, stderr=subprocess.PIPE, timeout=20)
        except (RuntimeError, TimeoutError) as e:
            raise SystemExit("model server did not start: %s" % e)
        self.url = "http://127.0.0.1:%d" % self.port
        # Keep draining its stderr so that it can never block on a full pipe.
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def _call(self, method, path, body=None):
        req = urllib.request.Request(self.url + path, method=method, data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def reset(self):
        """Rewind the script (POST /_test/scenario with the same scenario)."""
        self._call("POST", "/_test/scenario", self.scenario_bytes)

    def count(self):
        return self._call("GET", "/_test/count")

    def close(self):
        stop_process(self.proc, timeout=5)


# ------------------------------------------------------------------ measuring one process

_libc = None
PTRACE_CONT = 7
PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_O_TRACEEXIT = 0x40
PTRACE_O_EXITKILL = 0x100000
PTRACE_EVENT_EXIT = 6
WALL = 0x40000000  # __WALL
CLK_TCK = os.sysconf("SC_CLK_TCK")


def libc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        _libc.ptrace.restype = ctypes.c_long
        _libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        _libc.clock_getcpuclockid.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    return _libc


def ptrace(req, pid, addr=0, data=0):
    if libc().ptrace(req, pid, ctypes.c_void_p(addr), ctypes.c_void_p(data)) == -1:
        e = ctypes.get_errno()
        raise OSError(e, "ptrace(%d): %s" % (req, os.strerror(e)))


def machine_busy_ms():
    """CPU time all CPUs spent busy since boot (user, nice, system, irq, softirq, steal), ms."""
    try:
        f = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return sum(int(f[i]) for i in (1, 2, 3, 6, 7, 8)) * 1000 / CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def proc_cpu_ms(pid):
    try:
        s = Path("/proc/%d/stat" % pid).read_text()
        f = s[s.rindex(")") + 2:].split()
        return (int(f[11]) + int(f[12])) * 1000 / CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def own_usage(pid):
    """CPU and memory of process `pid` itself (all its threads, none of its children), read
    from outside while it is alive: process CPU clock (ns), utime/stime (clock ticks), VmHWM
    and VmRSS (KiB). Missing entries when a source could not be read."""
    u = {}
    cid = ctypes.c_int()
    try:
        if libc().clock_getcpuclockid(pid, ctypes.byref(cid)) == 0:
            u["cpu_ns"] = time.clock_gettime_ns(cid.value)
    except OSError:
        pass
    try:
        s = Path("/proc/%d/stat" % pid).read_text()
        f = s[s.rindex(")") + 2:].split()  # f[0] is field 3 (state)
        u["utime_ms"] = int(f[11]) * 1000 / CLK_TCK  # field 14
        u["stime_ms"] = int(f[12]) * 1000 / CLK_TCK  # field 15
    except (OSError, ValueError, IndexError):
        pass
    try:
        for line in Path("/proc/%d/status" % pid).read_text().splitlines():
            if line.startswith(("VmHWM:", "VmRSS:", "Threads:")):
                k, v = line.split(":", 1)
                u[k] = int(v.split()[0])
    except (OSError, ValueError):
        pass
    return u


class Poller(threading.Thread):
    """Fallback when ptrace is not allowed: sample own_usage every `interval` s and keep the
    last complete sample. Under-counts by what happens after the last sample (VmHWM is a
    kernel-kept high-water mark, so only a new peak in the last interval is missed)."""

    def __init__(self, pid, interval):
        super().__init__(daemon=True)
        self.pid, self.interval, self.last, self.stop = pid, interval, {}, threading.Event()
        self.samples = 0

    def run(self):
        while not self.stop.is_set():
            u = own_usage(self.pid)
            if "VmHWM" in u and "cpu_ns" in u:
                self.last = u
                self.samples += 1
            self.stop.wait(self.interval)


def measure(argv, env, cwd, stdin_mode, stdin_line, timeout, use_ptrace, poll_interval):
    """Run argv to completion; return a dict with wall time, exit status, output and the
    process's own CPU/RSS (see own_usage), taken at its exit stop under ptrace."""
    rec = {}
    out_lines = []
    last_line_at = [None]
    err_chunks = []
    result_seen = threading.Event()
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, cwd=cwd, env=env, start_new_session=True,
                         stdin=subprocess.PIPE if stdin_mode != "none" else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    traced = False
    if use_ptrace:
        try:
            ptrace(PTRACE_SEIZE, p.pid, 0, PTRACE_O_TRACEEXIT | PTRACE_O_EXITKILL)
            traced = True
        except OSError as e:
            rec["ptrace_error"] = str(e)
    poller = None
    if not traced:
        poller = Poller(p.pid, poll_interval)
        poller.start()

    def read_stdout():
        for raw in p.stdout:
            line = raw.decode("utf-8", "replace")
            out_lines.append(line)
            last_line_at[0] = time.perf_counter()
            if stdin_mode == "prompt-until-result" and not result_seen.is_set() and '"result"' in line:
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if obj.get("type") == "result":
                    result_seen.set()
                    try:
                        p.stdin.close()
                    except OSError:
                        pass

    def read_stderr():
        for raw in p.stderr:
            err_chunks.append(raw)

    readers = [threading.Thread(target=read_stdout, daemon=True), threading.Thread(target=read_stderr, daemon=True)]
    for t in readers:
        t.start()
    if stdin_mode in ("prompt-until-result", "prompt-then-close"):
        try:
            p.stdin.write(stdin_line.encode() + b"\n")
            p.stdin.flush()
            if stdin_mode == "prompt-then-close":
                p.stdin.close()
        except OSError as e:
            rec["stdin_error"] = str(e)

    timed_out = threading.Event()

    def kill():
        timed_out.set()
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.start()
    at_exit = None
    signal_stops = 0
    try:
        while True:
            pid, status, ru = os.wait4(p.pid, WALL)
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                break
            if not os.WIFSTOPPED(status):
                continue
            event = status >> 16
            try:
                if event == PTRACE_EVENT_EXIT:
                    # Stopped inside exit(), before its memory is released: final figures.
                    t_stop = time.perf_counter()
                    at_exit = own_usage(p.pid)
                    ptrace(PTRACE_DETACH, p.pid)
                    rec["exit_stop_ms"] = round((time.perf_counter() - t_stop) * 1000, 3)
                elif event:
                    ptrace(PTRACE_CONT, p.pid)  # group-stop or another event: just go on
                else:
                    signal_stops += 1  # signal-delivery-stop: deliver the signal as is
                    ptrace(PTRACE_CONT, p.pid, 0, os.WSTOPSIG(status))
            except OSError as e:  # e.g. killed meanwhile (timeout): keep waiting for the exit
                rec.setdefault("ptrace_error", str(e))
    finally:
        timer.cancel()
    t_end = time.perf_counter()
    wall = t_end - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if poller is not None:
        poller.stop.set()
        poller.join()
    for t in readers:
        t.join(30)
    if p.stdin and not p.stdin.closed:
        try:
            p.stdin.close()
        except OSError:
            pass

    rec["wall_ms"] = round(wall * 1000, 3)
    # from the last line on stdout to the exit: ccrunner's teardown, the final flush included
    rec["tail_ms"] = round((t_end - last_line_at[0]) * 1000, 3) if last_line_at[0] else None
    rec["exit_code"] = p.returncode
    if timed_out.is_set():
        rec["error"] = "timed out after %ss (killed)" % timeout
    usage = at_exit if at_exit is not None else (poller.last if poller else {})
    rec["method"] = "ptrace-exit-stop" if at_exit is not None else ("poll" if poller else "none")
    if poller:
        rec["poll_samples"] = poller.samples
    rec["signal_stops"] = signal_stops
    if "cpu_ns" in usage:
        rec["cpu_ms"] = round(usage["cpu_ns"] / 1e6, 3)
    elif "utime_ms" in usage:
        rec["cpu_ms"] = usage["utime_ms"] + usage["stime_ms"]
    rec["utime_ms"] = usage.get("utime_ms")
    rec["stime_ms"] = usage.get("stime_ms")
    rec["peak_rss_kib"] = usage.get("VmHWM")
    rec["threads_at_exit"] = usage.get("Threads")
    # wait4()'s rusage, for reference only: on Linux it is the process *and* every
    # descendant it waited for (claude, tool shells), and ru_maxrss is the largest of them
    # (or the driver's own RSS at fork, which survives exec).
    rec["tree_cpu_ms"] = round((ru.ru_utime + ru.ru_stime) * 1000, 3)
    rec["tree_maxrss_kib"] = ru.ru_maxrss
    rec["stdout_lines"] = len(out_lines)
    rec["stdout_bytes"] = sum(len(x) for x in out_lines)
    rec["stderr_tail"] = b"".join(err_chunks).decode("utf-8", "replace")[-3000:]
    rec["_stdout"] = out_lines
    return rec


# ------------------------------------------------------------------ one run


def find_result(lines):
    """The session's result: a CLI/SDK `result` line, or a ccrunner envelope whose payload
    is the result message."""
    for line in reversed(lines):
        if '"result"' not in line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        msg = obj if obj.get("type") == "result" else obj.get("payload")
        if isinstance(msg, dict) and msg.get("type") == "result" and "is_error" in msg:
            return {k: msg.get(k) for k in ("is_error", "subtype", "num_turns", "duration_ms")}
    return None


def scenario_facts(path):
    """What a run of the scenario must do. Model calls: the main thread's and the
    subagents' (agent_responses), as the model server counts them."""
    sc = json.loads(Path(path).read_text())
    responses = sc.get("responses", []) + sc.get("agent_responses", [])
    tools = [b for r in responses for b in r.get("content", []) if b.get("type") == "tool_use"]
    files = sorted({b["input"]["file_path"] for b in tools if b["name"] == "Write"})
    return {"model_calls": len(responses), "tool_uses": len(tools), "written_files": files}


def run_one(contender, ctx_base, server, args, scratch, tag, expected=None, scenario=None):
    """One run of `contender` on `server`'s scenario; `expected`: its scenario_facts
    (default EXPECTED), `scenario`: its name, kept in the record."""
    expected = EXPECTED if expected is None else expected
    work = Path(tempfile.mkdtemp(prefix="%s-%s-" % (tag, contender.name), dir=scratch))
    ws, home = work / "ws", work / "home"
    ws.mkdir()
    home.mkdir()
    ctx = dict(ctx_base, workspace=str(ws), home=str(home))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(STRIPPED_ENV_PREFIXES) and k not in STRIPPED_ENV}
    for k, v in list(OFFLINE_ENV.items()) + list(contender.env.items()):
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v.format(**ctx)
    # A runner's session gets a known id, so that its trace can be found; every ccrunner
    # contender gets one, traced or not, so that they differ in tracing only.
    sid = None
    if contender.argv[:1] == ["{ccrunner}"] and "SESSION_ID" not in contender.env:
        sid = env["SESSION_ID"] = "bench-%s-%s-%s-%s" % (scenario or "session", tag, contender.name,
                                                        uuid.uuid4().hex[:8])
    live = getattr(args, "live_url", None)
    to_live = bool(live and sid and env.get("LANGFUSE_HOST") == live
                   and env.get("LANGFUSE_ENABLED", "").lower() in ("1", "true", "yes", "on"))
    argv = [a.format(**ctx) for a in contender.argv]
    stdin_line = json.dumps({"type": "user", "message": {"role": "user", "content": args.prompt},
                             "parent_tool_use_id": None, "session_id": ""})
    server.reset()
    load = os.getloadavg()[0]
    before = server.count()
    busy0, server0, self0 = machine_busy_ms(), proc_cpu_ms(server.proc.pid), time.process_time()
    rec = measure(argv, env, str(ws), contender.stdin, stdin_line, args.timeout,
                  not args.no_ptrace, args.poll_ms / 1000)
    busy1, server1, self1 = machine_busy_ms(), proc_cpu_ms(server.proc.pid), time.process_time()
    after = server.count()
    out = rec.pop("_stdout")
    rec = {"contender": contender.name, "round": tag, **({"scenario": scenario} if scenario else {}),
           "loadavg_1m_before": load, **rec}
    if sid:
        rec["session_id"] = sid
    # CPU the machine spent during the run on anything but this session (the contender's
    # tree, the model server, this driver): other programs competing with the session.
    if None not in (busy0, busy1, server0, server1):
        rec["server_cpu_ms"] = server1 - server0
        rec["driver_cpu_ms"] = round((self1 - self0) * 1000, 1)
        rec["foreign_cpu_ms"] = round(busy1 - busy0 - rec["tree_cpu_ms"] - rec["server_cpu_ms"]
                                      - rec["driver_cpu_ms"], 1)
    rec["model_calls"] = after["model_calls"] - before["model_calls"]
    rec["requests"] = after["requests"] - before["requests"]
    rec["result"] = find_result(out)
    missing = [f for f in expected["written_files"] if not (ws / f).is_file()]
    problems = []
    if rec.get("error"):
        problems.append(rec["error"])
    if rec["exit_code"] != 0:
        problems.append("exit code %s" % rec["exit_code"])
    if rec["model_calls"] != expected["model_calls"]:
        problems.append("%d model calls, expected exactly %d" % (rec["model_calls"], expected["model_calls"]))
    if rec["result"] is None:
        problems.append("no result message on stdout")
    elif rec["result"]["is_error"]:
        problems.append("result is_error=true (%s)" % rec["result"].get("subtype"))
    if missing:
        problems.append("files not written: %s" % ", ".join(missing))
    if rec.get("cpu_ms") is None or rec.get("peak_rss_kib") is None:
        problems.append("own CPU/RSS not measured (%s)" % rec.get("ptrace_error", rec["method"]))
    if to_live:
        # Read back after the measured part: the reading is in no figure. A run that did
        # not end well may have left no trace; its other problems say why.
        rec["trace_expected"] = True
        telemetry = env.get("CCRUNNER_CLAUDE_TELEMETRY") not in TELEMETRY_OFF_VALUES
        if rec["exit_code"] == 0 and not rec.get("error"):
            rec["trace"], trace_problems = check_trace(live, sid, expected, telemetry)
            problems += trace_problems
    rec["ok"] = not problems
    rec["problems"] = problems
    if args.keep:
        rec["scratch"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return rec


# ------------------------------------------------------------------ summary


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def summarize(order, runs, baseline, expected=None):
    """Per contender, the figures of `runs` (one scenario's); `expected` its
    scenario_facts (default EXPECTED)."""
    expected = EXPECTED if expected is None else expected
    by = {c: [r for r in runs if r["contender"] == c] for c in order}
    base_by_round = {r["round"]: r for r in by.get(baseline, []) if r["ok"]}
    summary = {}
    for c in order:
        all_runs = by[c]
        ok = [r for r in all_runs if r["ok"]]
        s = {
            "runs": len(all_runs),
            "ok_runs": len(ok),
            "wall_ms_median": med([r["wall_ms"] for r in ok]),
            "wall_ms_min": min((r["wall_ms"] for r in ok), default=None),
            "wall_ms_max": max((r["wall_ms"] for r in ok), default=None),
            "cpu_ms_median": med([r["cpu_ms"] for r in ok]),
            "tail_ms_median": med([r.get("tail_ms") for r in ok]),
            "tail_ms_max": max((r["tail_ms"] for r in ok if r.get("tail_ms") is not None), default=None),
            "tree_cpu_ms_median": med([r["tree_cpu_ms"] for r in ok]),
            "peak_rss_mib_median": med([r["peak_rss_kib"] / 1024 for r in ok]),
            "peak_rss_mib_max": max((r["peak_rss_kib"] / 1024 for r in ok), default=None),
            "foreign_cpu_ms_median": med([r.get("foreign_cpu_ms") for r in ok]),
            "foreign_cpu_ms_max": max((r["foreign_cpu_ms"] for r in ok if r.get("foreign_cpu_ms") is not None),
                                      default=None),
            "model_calls": sorted({r["model_calls"] for r in all_runs}),
            "model_calls_ok": sum(1 for r in all_runs if r["model_calls"] == expected["model_calls"]),
        }
        per_round = [r["wall_ms"] / base_by_round[r["round"]]["wall_ms"]
                     for r in ok if r["round"] in base_by_round]
        s["ratio_per_round"] = [round(x, 4) for x in per_round]
        s["ratio_median_of_rounds"] = med(per_round)
        bmed = med([r["wall_ms"] for r in base_by_round.values()])
        s["ratio_of_medians"] = s["wall_ms_median"] / bmed if s["wall_ms_median"] and bmed else None
        summary[c] = s
    return summary


def fmt(v, d=1):
    return "-" if v is None else ("%." + str(d) + "f") % v


def print_table(order, summary, baseline, out=sys.stdout, expected=None, legend=True):
    """The table of summarize()'s figures; `legend`: and what the columns mean (print_legend)."""
    expected = EXPECTED if expected is None else expected
    rows = []
    for c in order:
        s = summary[c]
        if c == baseline:
            ratio = "1 (baseline)"
        elif s["ratio_of_medians"] is None:
            ratio = "-"
        else:
            ratio = "%.3f / %.3f" % (s["ratio_of_medians"], s["ratio_median_of_rounds"])
            if len(s["ratio_per_round"]) > 1:
                ratio += " (%.3f..%.3f)" % (min(s["ratio_per_round"]), max(s["ratio_per_round"]))
        calls = "%d: %d/%d" % (expected["model_calls"], s["model_calls_ok"], s["runs"])
        if s["model_calls_ok"] != s["runs"]:
            calls += " (saw %s)" % ",".join(map(str, s["model_calls"]))
        rows.append([c, "%d/%d" % (s["ok_runs"], s["runs"]), fmt(s["wall_ms_median"], 0),
                     "%s..%s" % (fmt(s["wall_ms_min"], 0), fmt(s["wall_ms_max"], 0)), ratio,
                     fmt(s["cpu_ms_median"], 1), fmt(s["tree_cpu_ms_median"], 0),
                     "%s / %s" % (fmt(s["tail_ms_median"], 1), fmt(s["tail_ms_max"], 1)),
                     "%s / %s" % (fmt(s["peak_rss_mib_median"], 1), fmt(s["peak_rss_mib_max"], 1)), calls,
                     "%s / %s" % (fmt(s["foreign_cpu_ms_median"], 0), fmt(s["foreign_cpu_ms_max"], 0))])
    head = ["contender", "ok", "wall ms", "min..max", "x %s: medians / rounds (range)" % baseline, "own CPU ms",
            "tree CPU ms", "end tail ms med / max", "own peak RSS MiB med / max", "model calls", "foreign CPU ms med / max"]
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()
    print(line(head), file=out)
    print("-" * len(line(head)), file=out)
    for r in rows:
        print(line(r), file=out)
    if legend:
        print("", file=out)
        print_legend(baseline, out)


def print_legend(baseline, out=sys.stdout):
    print("Medians over the successful measured runs (warm-up excluded).\n"
          "x %s: median wall / %s's median wall; then the median (and range) of the per-round\n"
          "  ratios, each run divided by %s's run in the same round.\n"
          "end tail: from the last line on stdout to the exit (a runner's teardown and final flush).\n"
          "own CPU ms / own peak RSS: the contender's own process only (bare claude: claude itself; a runner:\n"
          "  without its claude child), read at its exit: process CPU clock (all threads), VmHWM.\n"
          "tree CPU ms: the process plus every descendant it waited for (claude, tool shells), from wait4().\n"
          "foreign CPU ms: CPU the machine spent during the run on other programs (all busy CPU time less the\n"
          "  tree, the model server and this driver); far from 0 means something competed with the session."
          % (baseline, baseline, baseline), file=out)


def print_targets(summary, out=sys.stdout):
    s = summary.get("ccrunner")
    if not s or not s["ok_runs"]:
        return
    r = s["ratio_median_of_rounds"]
    n = len(s["ratio_per_round"])
    if r is not None:
        verdict = ("not enough runs (need >= 5)" if n < 5 else "PASS" if r <= TARGET_WALL_RATIO else "FAIL")
        print("target: ccrunner wall vs bare claude x%.4f (%+.2f%%), median of %d per-round ratios "
              "(range %.3f..%.3f); <= x%.2f: %s"
              % (r, (r - 1) * 100, n, min(s["ratio_per_round"]), max(s["ratio_per_round"]),
                 TARGET_WALL_RATIO, verdict), file=out)
    m = s["peak_rss_mib_max"]
    print("target: ccrunner own peak RSS max %.2f MiB over %d runs; < %.0f MiB: %s"
          % (m, s["ok_runs"], TARGET_RSS_MIB, "PASS" if m < TARGET_RSS_MIB else "FAIL"), file=out)


# ------------------------------------------------------------------ main


def versions(ctx):
    v = {"python": sys.version.split()[0]}
    for key, cmd in (("claude", [ctx["claude"], "--version"]), ("node", [ctx["node"], "--version"]),
                     ("ccrunner", [ctx["ccrunner"], "--version"])):
        try:
            v[key] = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
    for p in ("@anthropic-ai/claude-agent-sdk",):
        try:
            v[p] = json.loads((SDK_DIR / "node_modules" / p / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            pass
    return v


def ensure_sdk_deps(npm):
    if (SDK_DIR / "node_modules" / "@anthropic-ai" / "claude-agent-sdk" / "package.json").is_file():
        return None
    if not npm:
        return "npm not found"
    log("installing the Agent SDK: npm ci --prefix bench/sdk")
    r = subprocess.run([npm, "ci", "--prefix", str(SDK_DIR), "--no-audit", "--no-fund"], cwd=ROOT,
                       stdout=sys.stderr, stderr=sys.stderr)
    return None if r.returncode == 0 else "npm ci --prefix bench/sdk failed (exit %d)" % r.returncode


def main(argv=None):
    names = [c.name for c in CONTENDERS]
    ap = argparse.ArgumentParser(description="session benchmark: bare claude vs ccrunner vs an Agent SDK runner")
    ap.add_argument("--runs", type=int, default=None, help="measured rounds (default 5; 11 with --enrichment)")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up rounds, not counted (default 1)")
    ap.add_argument("--json", metavar="FILE", help="write the raw runs and the summary as JSON to FILE")
    ap.add_argument("--tracing", action="store_true",
                    help="the tracing benchmark: ccrunner off vs traced vs blackhole (see the top of this file)")
    ap.add_argument("--enrichment", action="store_true",
                    help="the enrichment benchmark: claude vs traced vs notel (CCRUNNER_CLAUDE_TELEMETRY=off) on "
                         "ten_calls.json and subagent.json, 11 rounds, rotated (see the top of this file)")
    ap.add_argument("--contenders", default=None,
                    help="comma-separated list, in run order (default %s; known: %s)"
                    % (",".join(DEFAULT_CONTENDERS), ",".join(names)))
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:BASE[:KEY=VALUE|:-KEY...]",
                    help="add a contender: BASE with more environment (-KEY removes KEY); repeatable, "
                         "e.g. ccrunner-traced:ccrunner:LANGFUSE_ENABLED=true:LANGFUSE_HOST=http://127.0.0.1:3000")
    ap.add_argument("--rotate", action=argparse.BooleanOptionalAction, default=None,
                    help="rotate the order of the contenders from round to round (default off; on with --enrichment)")
    ap.add_argument("--claude", default=str(DEFAULT_CLAUDE), help="Claude Code CLI (default node_modules/.bin/claude)")
    ap.add_argument("--ccrunner", default=str(DEFAULT_CCRUNNER), help="ccrunner binary (default build/ccrunner)")
    ap.add_argument("--scenario", action="append", default=None, metavar="FILE[,FILE...]",
                    help="scenario file; repeatable or a comma list: all are run in the same rounds "
                         "(default ten_calls.json; with --enrichment ten_calls.json,subagent.json)")
    ap.add_argument("--prompt", default=DEFAULT_PROMPT, help="the prompt (the scripted model ignores it)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds allowed per run (default 300)")
    ap.add_argument("--no-ptrace", action="store_true", help="sample /proc instead of stopping the process at exit")
    ap.add_argument("--poll-ms", type=float, default=5, help="sampling interval without ptrace (default 5 ms)")
    ap.add_argument("--server-log", metavar="FILE", help="model server request log (with several scenarios: "
                                                          "FILE.NAME, one per scenario)")
    ap.add_argument("--keep", action="store_true", help="keep each run's workspace and HOME (paths in --json)")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo each run's stderr tail")
    args = ap.parse_args(argv)
    if args.tracing and args.enrichment:
        ap.error("--tracing and --enrichment are two benchmarks: give one")
    if args.runs is None:
        args.runs = MIN_ENRICHMENT_ROUNDS if args.enrichment else 5
    if args.rotate is None:
        args.rotate = args.enrichment
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    if args.scenario:
        args.scenarios = [x.strip() for arg in args.scenario for x in arg.split(",") if x.strip()]
    else:
        args.scenarios = [str(p) for p in (ENRICHMENT_SCENARIOS if args.enrichment else (DEFAULT_SCENARIO,))]
    stems = [Path(x).stem for x in args.scenarios]
    if not stems:
        ap.error("--scenario: no file given")
    if len(set(stems)) != len(stems):
        ap.error("--scenario: two scenarios with one name (%s)" % ", ".join(stems))
    args.scenario = args.scenarios[0]  # as before for one scenario

    global BASELINE
    receivers = []
    args.live_url = None
    if args.tracing:
        BASELINE = "ccrunner"
        args.contenders = args.contenders or "ccrunner"
        receivers = [Receiver(), Receiver({"mode": "blackhole"})]
        args.variant = tracing_variants(*receivers) + args.variant
    elif args.enrichment:
        BASELINE = "claude"
        args.contenders = args.contenders or ",".join(ENRICHMENT_CONTENDERS)
        receivers = [Receiver()]
        args.variant = enrichment_variants(receivers[0]) + args.variant
    if receivers:
        args.live_url = receivers[0].url
    args.contenders = args.contenders or ",".join(DEFAULT_CONTENDERS)
    try:
        return run_all(args, ap, receivers)
    finally:
        for r in receivers:
            r.close()


def rel(path):
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(path)


def run_all(args, ap, receivers):
    by_name = {c.name: c for c in CONTENDERS}
    for spec in args.variant:
        try:
            v = parse_variant(spec, by_name)
        except ValueError as e:
            ap.error(str(e))
        by_name[v.name] = v
    wanted = [c.strip() for c in args.contenders.split(",") if c.strip()]
    wanted += [v.split(":", 1)[0] for v in args.variant if v.split(":", 1)[0] not in wanted]
    for c in wanted:
        if c not in by_name:
            ap.error("unknown contender %r (known: %s)" % (c, ", ".join(by_name)))
    scenario_paths = getattr(args, "scenarios", None) or [args.scenario]
    for sp in scenario_paths:
        if not Path(sp).is_file():
            ap.error("--scenario: %s not found" % sp)

    node = shutil.which("node") or "node"
    ctx_base = {"claude": str(Path(args.claude).resolve()), "ccrunner": str(Path(args.ccrunner).resolve()),
                "node": node, "sdk_dir": str(SDK_DIR), "root": str(ROOT), "prompt": args.prompt}
    notes = []
    if any("{sdk_dir}" in a for c in wanted for a in by_name[c].argv):
        problem = ensure_sdk_deps(shutil.which("npm"))
        if problem:
            notes.append("Agent SDK deps: " + problem)
    order = []
    for c in wanted:
        missing = [(p.format(**ctx_base, workspace="", home="", base_url="", port=""), hint)
                   for p, hint in by_name[c].requires]
        missing = [(p, hint) for p, hint in missing if not (Path(p).exists() or shutil.which(p))]
        if missing:
            notes.append("%s skipped: %s not found (%s)" % (c, missing[0][0], missing[0][1]))
        else:
            order.append(c)
    for n in notes:
        log("note: " + n)
    if BASELINE not in order:
        log("note: the baseline (%s) is not run: no ratios" % BASELINE)
    if not order:
        log("nothing to run")
        return 1

    multi = len(scenario_paths) > 1
    scenarios = [{"name": Path(sp).stem, "path": sp, "expected": scenario_facts(sp)} for sp in scenario_paths]
    EXPECTED.clear()
    EXPECTED.update(scenarios[0]["expected"])
    scratch = Path(tempfile.mkdtemp(prefix="session-bench-"))
    runs, warmups = [], []
    try:
        for sc in scenarios:
            slog = args.server_log and (args.server_log + "." + sc["name"] if multi else args.server_log)
            sc["server"] = server = ModelServer(sc["path"], slog)
            sc["ctx"] = dict(ctx_base, port=str(server.port), base_url=server.url)
            log("model server on %s; scenario %s (%d model calls, %d tool uses)"
                % (server.url, Path(sc["path"]).name, sc["expected"]["model_calls"], sc["expected"]["tool_uses"]))
        log("%d warm-up + %d measured round(s) of %s%s%s"
            % (args.warmup, args.runs, ", ".join(order), ", order rotated" if args.rotate else "",
               " on each of %s" % ", ".join(sc["name"] for sc in scenarios) if multi else ""))
        rounds = [("warmup%d" % (i + 1), True) for i in range(args.warmup)] + \
                 [(i + 1, False) for i in range(args.runs)]
        for idx, (tag, is_warmup) in enumerate(rounds):
            seq = order[idx % len(order):] + order[:idx % len(order)] if args.rotate else order
            for sc in scenarios:
                for c in seq:
                    try:
                        rec = run_one(by_name[c], sc["ctx"], sc["server"], args, scratch, str(tag),
                                      sc["expected"], sc["name"])
                    except Exception as e:  # a broken run must not lose the others
                        import traceback
                        rec = {"contender": c, "round": str(tag), "scenario": sc["name"], "ok": False,
                               "wall_ms": 0, "tree_cpu_ms": 0, "model_calls": -1, "exit_code": None,
                               "method": "none", "problems": ["driver error: %r" % e],
                               "stderr_tail": traceback.format_exc()}
                    (warmups if is_warmup else runs).append(rec)
                    log("%-8s %s%-11s wall=%7.0fms own_cpu=%7.1fms own_rss=%6.1fMiB tree_cpu=%6.0fms "
                        "foreign_cpu=%5.0fms calls=%d exit=%s%s %s"
                        % ("warm-up" if is_warmup else "run %s" % tag, "%-10s " % sc["name"] if multi else "", c,
                           rec["wall_ms"], rec.get("cpu_ms") or -1, (rec.get("peak_rss_kib") or 0) / 1024,
                           rec["tree_cpu_ms"], rec.get("foreign_cpu_ms", -1), rec["model_calls"], rec["exit_code"],
                           " cost_source=%s" % ",".join("%s:%d" % kv for kv in sorted(rec["trace"]["cost_source"]
                                                                                    .items()))
                           if rec.get("trace") else "",
                           "ok" if rec["ok"] else "FAILED: " + "; ".join(rec["problems"])))
                    if args.verbose or not rec["ok"]:
                        for line in rec["stderr_tail"].splitlines()[-15:]:
                            log("    | " + line)
    finally:
        for sc in scenarios:
            if sc.get("server"):
                sc["server"].close()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)

    for sc in scenarios:
        sc["runs"] = [r for r in runs if r.get("scenario") == sc["name"]]
        sc["summary"] = summarize(order, sc["runs"], BASELINE, sc["expected"])
        if args.enrichment:
            sc["enrichment"] = enrichment_figures(sc["runs"], sc["summary"], base=BASELINE)
    to_live = [r for r in runs + warmups if r.get("trace_expected")]
    delivered = (receivers[0].stats()["traces"], len(to_live)) if receivers else None
    print()
    for sc in scenarios:
        if multi:
            print("== %s: %d model calls, %d tool uses" % (Path(sc["path"]).name, sc["expected"]["model_calls"],
                                                         sc["expected"]["tool_uses"]))
        print_table(order, sc["summary"], BASELINE, expected=sc["expected"], legend=not multi)
        print()
        if args.enrichment:
            print_enrichment(sc["enrichment"], sc["summary"], base=BASELINE)
        elif args.tracing:
            print_tracing_targets(sc["summary"], None if multi else delivered)
            print_cost_sources(cost_sources(sc["runs"], order))
        else:
            print_targets(sc["summary"])
            print_cost_sources(cost_sources(sc["runs"], order))
        if multi:
            print()
    if multi:
        print_legend(BASELINE)
        print()
    lost = 0
    if receivers:
        if multi or args.enrichment:
            print_delivered(delivered, what="runs traced to it")
        print_wire(receivers[0], len(to_live),
                   what="traced session" if args.tracing else "session traced to it (all contenders and scenarios)")
        lost = delivered[1] - delivered[0]
    busy = [r for r in runs if r["ok"] and r.get("foreign_cpu_ms") is not None
            and r["foreign_cpu_ms"] > FOREIGN_CPU_FRACTION * r["wall_ms"]]
    if busy:
        notes.append("other programs used the CPU during %d of %d successful runs (foreign CPU above %d%% of the "
                     "run's wall time; median of those %.0f ms): their wall times are suspect; if they are many, "
                     "rerun on an idle machine" % (len(busy), len(runs), FOREIGN_CPU_FRACTION * 100,
                                                   statistics.median(r["foreign_cpu_ms"] for r in busy)))
    failed = [r for r in runs + warmups if not r["ok"]]
    methods = sorted({r["method"] for r in runs})
    if methods != ["ptrace-exit-stop"]:
        notes.append("own CPU/RSS method: %s (ptrace not used or failed: %s)"
                     % (",".join(methods), next((r["ptrace_error"] for r in runs if "ptrace_error" in r), "-")))
    for n in notes:
        print("note: " + n)
    if failed:
        print("FAILED RUNS: %d (see above); they are left out of the figures" % len(failed))
    if args.json:
        doc = {}
        if not multi:  # the single-scenario layout, as it always was
            doc.update(scenario=rel(args.scenario), expected=EXPECTED)
        doc.update({
            "preset": "enrichment" if args.enrichment else "tracing" if args.tracing else None,
            "prompt": args.prompt,
            "runs_per_contender": args.runs,
            "warmup_rounds": args.warmup,
            "rotate": bool(args.rotate),
            "baseline": BASELINE,
            "contenders": [{"name": c, "description": by_name[c].description, "argv": by_name[c].argv,
                            "env": by_name[c].env, "stdin": by_name[c].stdin} for c in order],
            "notes": notes,
            "machine": {"nproc": os.cpu_count(), "platform": sys.platform, "kernel": os.uname().release},
            "versions": versions(ctx_base),
        })
        if not multi:
            doc["summary"] = scenarios[0]["summary"]
            if args.enrichment:
                doc["enrichment"] = scenarios[0]["enrichment"]
        # Every scenario's figures; the runs carry their scenario's name.
        doc["scenarios"] = [{"name": sc["name"], "scenario": rel(sc["path"]), "expected": sc["expected"],
                             "summary": sc["summary"], **({"enrichment": sc["enrichment"]} if args.enrichment else {})}
                            for sc in scenarios]
        if delivered:
            doc["traces_delivered"] = {"got": delivered[0], "runs_traced_to_live_receiver": delivered[1]}
        doc.update(runs=runs, warmup_runs=warmups)
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        log("raw runs written to %s" % args.json)
    return 1 if failed or lost else 0


if __name__ == "__main__":
    sys.exit(main())
