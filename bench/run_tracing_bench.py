#!/usr/bin/env python3
"""Tracing benchmark driver: liblangfuse vs the Langfuse JS SDKs, side by side.

Runs every client in each mode against one local sink (bench/sink.py), resets
the sink before each run and reads its /stats after, and prints a table of the
medians over the runs. See bench/README.md for what each figure means.

    python3 bench/run_tracing_bench.py [--runs 5] [--json runs.json]

Clients (each run as `PROGRAM --host http://127.0.0.1:PORT --mode yield|burst`,
printing one JSON line on stdout):
  liblangfuse       build/bench/lf_bench            (skipped with a note if not built)
  langfuse-js-v3    node bench/js/langfuse_v3.mjs   (`langfuse` 3.x)
  langfuse-js-otel  node bench/js/langfuse_otel.mjs (@langfuse/tracing + @langfuse/otel)
Stdlib only.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))
from procs import start_ready, stop_process  # noqa: E402
JS = BENCH / "js"
EXPECTED_OBSERVATIONS = 12_000
MODES = ("yield", "burst")
CLIENTS = ("liblangfuse", "langfuse-js-v3", "langfuse-js-otel")
BASELINE = "liblangfuse"
JS_PACKAGES = (
    "langfuse",
    "@langfuse/tracing",
    "@langfuse/otel",
    "@opentelemetry/sdk-trace-node",
    "@opentelemetry/exporter-trace-otlp-http",
)
METRICS = ("record_us_median", "record_us_p99", "cpu_ms_per_1000", "peak_rss_mib", "shutdown_ms")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ setup


def ensure_js_deps(npm):
    missing = [p for p in JS_PACKAGES if not (JS / "node_modules" / p / "package.json").is_file()]
    if not missing:
        return None
    if not npm:
        return "npm not found; cannot install %s" % ", ".join(missing)
    log("installing JS dependencies: npm ci --prefix bench/js (missing: %s)" % ", ".join(missing))
    r = subprocess.run(
        [npm, "ci", "--prefix", str(JS), "--no-audit", "--no-fund"],
        cwd=ROOT,
        stdout=sys.stderr,
        stderr=sys.stderr,
    )
    if r.returncode != 0:
        return "npm ci failed (exit %d)" % r.returncode
    return None


class Sink:
    def __init__(self, latency_ms=0.0):
        try:
            self.proc, self.port = start_ready(
                [sys.executable, str(BENCH / "sink.py"), "--latency-ms", str(latency_ms)],
                stderr=sys.stderr)
        except (RuntimeError, TimeoutError) as e:
            raise SystemExit("sink did not start: %s" % e)
        self.url = "http://127.0.0.1:%d" % self.port

    def _call(self, method, path):
        req = urllib.request.Request(self.url + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def reset(self):
        self._call("POST", "/reset")

    def stats(self):
        return self._call("GET", "/stats")

    def settled_stats(self, quiet=0.3, limit=10.0):
        """/stats once nothing has changed for `quiet` seconds (requests still in flight
        when the client exited are counted if they arrive), or after `limit` seconds."""
        start = time.monotonic()
        last = self.stats()
        stable_since = time.monotonic()
        while time.monotonic() - start < limit:
            time.sleep(0.1)
            cur = self.stats()
            key = lambda s: (s["requests"], s["bytes"], s["observations_unique"])
            if key(cur) != key(last):
                last, stable_since = cur, time.monotonic()
            elif time.monotonic() - stable_since >= quiet:
                return cur
        return last

    def close(self):
        stop_process(self.proc, timeout=5)


def child_env():
    """The caller's environment less anything that would change the SDKs' defaults."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("LANGFUSE_") or k.startswith("OTEL_") or k == "NODE_OPTIONS")
    }
    return env


# ------------------------------------------------------------------ runs


def run_one(cmd, sink, client, mode, timeout):
    sink.reset()
    t0 = time.monotonic()
    rec = {"client": client, "mode": mode, "cmd": cmd}
    try:
        p = subprocess.run(
            cmd + ["--host", sink.url, "--mode", mode],
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        rec["exit_code"] = p.returncode
        out, err = p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rec["exit_code"] = None
        rec["error"] = "timed out after %ss" % timeout
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
    rec["wall_s"] = round(time.monotonic() - t0, 3)
    rec["stderr_tail"] = err[-3000:]
    result = None
    for line in reversed(out.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and "client" in obj:
                result = obj
                break
    rec["result"] = result
    if result is None and "error" not in rec:
        rec["error"] = "no JSON result line on stdout (exit %s)" % rec["exit_code"]
    stats = sink.settled_stats()
    rec["sink"] = stats
    rec["lost"] = EXPECTED_OBSERVATIONS - stats["observations_unique"]
    rec["trace_arrived"] = bool(stats.get("root_spans_unique") or stats.get("trace_create_events"))
    if result is not None:
        if result.get("observations") != EXPECTED_OBSERVATIONS:
            rec["warning"] = "client reported %s observations, expected %d" % (
                result.get("observations"),
                EXPECTED_OBSERVATIONS,
            )
        if result.get("client") != client or result.get("mode") != mode:
            rec["warning"] = "client reported client=%r mode=%r" % (result.get("client"), result.get("mode"))
    return rec


def median_of(runs, key):
    vals = [r["result"][key] for r in runs if r.get("result") and isinstance(r["result"].get(key), (int, float))]
    return statistics.median(vals) if vals else None


def summarize(runs_by):
    summary = {}
    for (client, mode), runs in runs_by.items():
        ok = [r for r in runs if r.get("result")]
        s = {m: median_of(ok, m) for m in METRICS}
        losts = [r["lost"] for r in runs]
        s["lost"] = statistics.median(losts) if losts else None
        s["lost_min"] = min(losts) if losts else None
        s["lost_max"] = max(losts) if losts else None
        s["runs"] = len(runs)
        s["ok_runs"] = len(ok)
        s["trace_arrived"] = sum(1 for r in runs if r["trace_arrived"])
        summary[(client, mode)] = s
    return summary


def fmt(v, digits=1):
    if v is None:
        return "-"
    return ("%." + str(digits) + "f") % float(v)


def ratio(v, base):
    if v is None or base in (None, 0):
        return ""
    return " (x%.1f)" % (v / base) if v / base < 100 else " (x%.0f)" % (v / base)


def print_table(summary, clients, modes, out=sys.stdout):
    cols = [
        ("client", 17),
        ("mode", 6),
        ("runs", 5),
        ("record us med", 18),
        ("record us p99", 18),
        ("cpu ms/1k obs", 18),
        ("peak RSS MiB", 17),
        ("shutdown ms", 18),
        ("lost (median)", 21),
        ("trace", 6),
    ]
    head = " ".join(name.ljust(w) for name, w in cols)
    print(head, file=out)
    print("-" * len(head), file=out)
    for mode in modes:
        for client in clients:
            s = summary.get((client, mode))
            if s is None:
                continue
            b = summary.get((BASELINE, mode)) if client != BASELINE else None
            cell = lambda m, d: fmt(s[m], d) + (ratio(s[m], b[m]) if b else "")
            if s["lost"] is None:
                lost = "-"
            else:
                lost = "%d (%.1f%%)" % (s["lost"], 100.0 * s["lost"] / EXPECTED_OBSERVATIONS)
                if s["lost_min"] != s["lost_max"]:
                    lost += " %d..%d" % (s["lost_min"], s["lost_max"])
            row = [
                client,
                mode,
                "%d/%d" % (s["ok_runs"], s["runs"]),
                cell("record_us_median", 1),
                cell("record_us_p99", 1),
                cell("cpu_ms_per_1000", 1),
                cell("peak_rss_mib", 1),
                cell("shutdown_ms", 1),
                lost,
                "%d/%d" % (s["trace_arrived"], s["runs"]),
            ]
            print(" ".join(str(v).ljust(w) for v, (_, w) in zip(row, cols)), file=out)
    print("", file=out)
    print(
        "Medians over runs. (xN) = ratio to liblangfuse in the same mode (lower is better for all).\n"
        "lost = %d - unique observations the sink received (min..max over runs when they differ);\n"
        "trace = runs in which the trace itself reached the sink (trace-create event or OTLP root span)."
        % EXPECTED_OBSERVATIONS,
        file=out,
    )


def main():
    ap = argparse.ArgumentParser(description="liblangfuse tracing benchmark driver")
    ap.add_argument("--runs", type=int, default=5, help="runs per client and mode (default 5)")
    ap.add_argument("--json", metavar="FILE", help="write the raw runs as JSON to FILE")
    ap.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated subset of %s" % ",".join(CLIENTS))
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of yield,burst")
    ap.add_argument("--lf-bench", default=str(ROOT / "build" / "bench" / "lf_bench"), help="path of the C program")
    ap.add_argument("--timeout", type=float, default=300, help="seconds allowed per run (default 300)")
    ap.add_argument(
        "--sink-latency-ms",
        type=float,
        default=0.0,
        help="make the sink delay each ingest response (simulated server latency; default 0 = answer at once)",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="echo each run's stderr")
    args = ap.parse_args()

    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for c in clients:
        if c not in CLIENTS:
            ap.error("unknown client %r" % c)
    for m in modes:
        if m not in MODES:
            ap.error("unknown mode %r" % m)

    notes = []
    commands = {}
    node = shutil.which("node")
    npm = shutil.which("npm")
    if "liblangfuse" in clients:
        lf = Path(args.lf_bench)
        if lf.is_file() and os.access(lf, os.X_OK):
            commands["liblangfuse"] = [str(lf)]
        else:
            notes.append("liblangfuse skipped: %s is not built (build the bench target first)" % lf)
    js_clients = [c for c in clients if c.startswith("langfuse-js")]
    if js_clients:
        problem = "node not found" if not node else ensure_js_deps(npm)
        if problem:
            notes.append("JS clients skipped: %s" % problem)
        else:
            if "langfuse-js-v3" in clients:
                commands["langfuse-js-v3"] = [node, str(JS / "langfuse_v3.mjs")]
            if "langfuse-js-otel" in clients:
                commands["langfuse-js-otel"] = [node, str(JS / "langfuse_otel.mjs")]
    for n in notes:
        log("note: " + n)
    order = [c for c in clients if c in commands]
    if not order:
        log("nothing to run")
        return 1

    sink = Sink(args.sink_latency_ms)
    if args.sink_latency_ms:
        notes.append("sink latency %.0f ms per ingest request (not the default fast sink)" % args.sink_latency_ms)
    log("sink on %s; %d run(s) each of %s x %s" % (sink.url, args.runs, ", ".join(order), ", ".join(modes)))
    runs_by = {(c, m): [] for c in order for m in modes}
    all_runs = []
    try:
        # Interleave clients and modes within each round so slow drift of the
        # machine affects all of them alike.
        for i in range(args.runs):
            for mode in modes:
                for client in order:
                    rec = run_one(commands[client], sink, client, mode, args.timeout)
                    rec["run"] = i + 1
                    runs_by[(client, mode)].append(rec)
                    all_runs.append(rec)
                    r = rec.get("result") or {}
                    log(
                        "run %d/%d %-16s %-5s record_med=%s cpu/1k=%s rss=%s shutdown=%s lost=%d requests=%d %s%s"
                        % (
                            i + 1,
                            args.runs,
                            client,
                            mode,
                            r.get("record_us_median"),
                            r.get("cpu_ms_per_1000"),
                            r.get("peak_rss_mib"),
                            r.get("shutdown_ms"),
                            rec["lost"],
                            rec["sink"]["requests"],
                            rec.get("error", ""),
                            (" " + rec["warning"]) if rec.get("warning") else "",
                        )
                    )
                    if args.verbose or rec.get("error"):
                        for line in rec["stderr_tail"].splitlines()[-15:]:
                            log("    | " + line)
    finally:
        sink.close()

    summary = summarize(runs_by)
    print()
    print_table(summary, order, modes)
    for n in notes:
        print("note: " + n)
    if args.json:
        doc = {
            "expected_observations": EXPECTED_OBSERVATIONS,
            "runs_per_client_mode": args.runs,
            "notes": notes,
            "sink_latency_ms": args.sink_latency_ms,
            "machine": {"nproc": os.cpu_count(), "platform": sys.platform},
            "versions": js_versions(node),
            "summary": [dict(client=c, mode=m, **s) for (c, m), s in summary.items()],
            "runs": all_runs,
        }
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        log("raw runs written to %s" % args.json)
    return 0


def js_versions(node):
    out = {}
    try:
        out["node"] = subprocess.run([node or "node", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    for p in JS_PACKAGES + ("@opentelemetry/sdk-trace-base", "@opentelemetry/api", "langfuse-core", "@langfuse/core"):
        f = JS / "node_modules" / p / "package.json"
        try:
            out[p] = json.loads(f.read_text())["version"]
        except (OSError, ValueError, KeyError):
            pass
    return out


if __name__ == "__main__":
    sys.exit(main())
