// Shared workload definition for the tracing benchmark peers.
//
// Every peer (bench/js/langfuse_v3.mjs, bench/js/langfuse_otel.mjs and the C
// program build/bench/lf_bench) must produce exactly the same observations
// with exactly the same strings. The text generator below is specified so that
// it can be ported bit for bit to C:
//
//   * PRNG: xorshift32, state starts at 0x2545F491, one step is
//       x ^= x << 13; x ^= x >> 17 (logical); x ^= x << 5   (all mod 2^32)
//     and the step's result is the new state.
//   * CORPUS: start with the empty string; repeat until its length is >= 4096:
//       w = WORDS[next() % 64]; append w;
//       then append ". " if next() % 10 == 0, else " ".
//     Truncate to exactly 4096 characters. (ASCII only.)
//   * text(label, n, len): prefix = label + "#" + n + " " (n in decimal);
//     off = (n * 131) % 2048; result = prefix + CORPUS[off .. off + len - len(prefix))
//     so the result is exactly `len` characters.
//
// `node bench/js/workload.mjs --selftest` prints the corpus digest and sample
// strings, to check a port against.
//
// Observation order and counters: span i (0-based, 0..SPANS-1) uses counter
// n = 6*i; its children are, in this order:
//   generation (n+1), tool (n+2), generation (n+3), tool (n+4), generation (n+5)
// i.e. the model/tool/model/tool/model loop of an agent turn.
//   generation k: name "llm-call", model "claude-sonnet-4-5",
//                 input  = text("in",  k, 500)   (a plain string)
//                 output = text("out", k, 500)   (a plain string)
//                 usage  = USAGE, cost = COST (below)
//   tool k:       type tool (span where the SDK has no tool type), name "Bash",
//                 input  = {"command":"ls -la"}
//                 output = text("tool", k, 1024)  (a plain string)
//   span i:       name "turn", no input/output; started before its children,
//                 ended after them.
// The trace: name "bench-trace", input = text("trace-in", 0, 500); after all
// spans its output is set to text("trace-out", 0, 500); then the client is
// shut down.

import { createHash } from "node:crypto";

export const SPANS = 2000;
export const GENERATIONS_PER_SPAN = 3;
export const TOOLS_PER_SPAN = 2;
export const OBSERVATIONS_PER_SPAN = 1 + GENERATIONS_PER_SPAN + TOOLS_PER_SPAN;
export const OBSERVATIONS = SPANS * OBSERVATIONS_PER_SPAN; // 12,000

export const PUBLIC_KEY = "pk-lf-bench";
export const SECRET_KEY = "sk-lf-bench";

export const TRACE_NAME = "bench-trace";
export const SPAN_NAME = "turn";
export const GENERATION_NAME = "llm-call";
export const TOOL_NAME = "Bash";
export const MODEL = "claude-sonnet-4-5";
export const GEN_INPUT_LEN = 500;
export const GEN_OUTPUT_LEN = 500;
export const TOOL_OUTPUT_LEN = 1024;
export const TOOL_INPUT = Object.freeze({ command: "ls -la" });
export const YIELD_MS = 1;

// Anthropic usage keys as Langfuse prices them (see LANGFUSE.md, "Usage and cost").
export const USAGE = Object.freeze({
  input: 1200,
  output: 80,
  cache_read_input_tokens: 300,
  cache_creation_input_tokens: 50,
});
// Claude Sonnet 4.5 list prices: $3 / $15 / $0.30 / $3.75 per million tokens.
export const COST = Object.freeze({
  input: 0.0036,
  output: 0.0012,
  cache_read_input_tokens: 0.00009,
  cache_creation_input_tokens: 0.0001875,
  total: 0.0050775,
});

const WORDS = [
  "the", "agent", "reads", "a", "file", "and", "then", "runs", "tests", "for",
  "every", "module", "in", "project", "while", "model", "thinks", "about", "next", "step",
  "shell", "command", "returns", "output", "with", "some", "errors", "that", "need", "fixing",
  "before", "commit", "is", "made", "on", "branch", "user", "asked", "to", "refactor",
  "parser", "so", "it", "handles", "large", "inputs", "without", "copying", "memory", "twice",
  "build", "passes", "now", "but", "one", "flaky", "test", "still", "times", "out",
  "under", "load", "we", "retry",
];
if (WORDS.length !== 64) throw new Error("WORDS must have 64 entries");

export const CORPUS_LEN = 4096;

function buildCorpus() {
  let x = 0x2545f491 >>> 0;
  const next = () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
  const parts = [];
  let len = 0;
  while (len < CORPUS_LEN) {
    const w = WORDS[next() % 64];
    const sep = next() % 10 === 0 ? ". " : " ";
    parts.push(w, sep);
    len += w.length + sep.length;
  }
  return parts.join("").slice(0, CORPUS_LEN);
}

export const CORPUS = buildCorpus();

export function text(label, n, len) {
  const prefix = `${label}#${n} `;
  const off = (n * 131) % 2048;
  return prefix + CORPUS.slice(off, off + len - prefix.length);
}

// ---- command line and measurement helpers shared by the JS peers ----

export function parseArgs(argv) {
  const args = { host: null, mode: null, spans: SPANS, diag: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--host") args.host = argv[++i];
    else if (a === "--mode") args.mode = argv[++i];
    else if (a === "--spans") args.spans = Number(argv[++i]); // debugging only
    else if (a === "--diag") args.diag = true; // debugging only: SDK warnings to stderr
    else throw new Error(`unknown argument ${a}`);
  }
  if (!args.host) throw new Error("--host URL is required");
  if (args.mode !== "yield" && args.mode !== "burst") throw new Error("--mode yield|burst is required");
  if (!Number.isInteger(args.spans) || args.spans < 1) throw new Error("--spans must be a positive integer");
  args.host = args.host.replace(/\/+$/, "");
  return args;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Nearest-rank percentile over a Float64Array (sorted in place).
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function median(sorted) {
  const n = sorted.length;
  if (n === 0) return NaN;
  return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

const round = (v, d) => Math.round(v * 10 ** d) / 10 ** d;

// recordMs: Float64Array of per-observation recording times in milliseconds.
// cpuStart: process.cpuUsage() at workload start; cpuEnd: after shutdown.
export function report({ client, mode, recordMs, cpuStart, cpuEnd, shutdownMs }) {
  const us = Float64Array.from(recordMs, (ms) => ms * 1000).sort();
  const cpuUs = cpuEnd.user - cpuStart.user + (cpuEnd.system - cpuStart.system);
  const n = us.length;
  const line = {
    client,
    mode,
    observations: n,
    record_us_median: round(median(us), 2),
    record_us_p99: round(percentile(us, 99), 2),
    cpu_ms_per_1000: round(cpuUs / 1000 / (n / 1000), 2),
    peak_rss_mib: round(process.resourceUsage().maxRSS / 1024, 1),
    shutdown_ms: round(shutdownMs, 1),
  };
  process.stdout.write(JSON.stringify(line) + "\n");
  return line;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href &&
    process.argv.includes("--selftest")) {
  const sha = (s) => createHash("sha256").update(s).digest("hex");
  console.log(`corpus_len ${CORPUS.length}`);
  console.log(`corpus_sha256 ${sha(CORPUS)}`);
  console.log(`corpus_head ${JSON.stringify(CORPUS.slice(0, 80))}`);
  for (const [label, n, len] of [["in", 1, 500], ["out", 1, 500], ["tool", 2, 1024], ["in", 11999, 500], ["trace-out", 0, 500]]) {
    const t = text(label, n, len);
    console.log(`text(${JSON.stringify(label)},${n},${len}) len ${t.length} sha256 ${sha(t)} head ${JSON.stringify(t.slice(0, 40))}`);
  }
}
