// Tracing benchmark peer: Langfuse JS SDK v3 (`langfuse` on npm), default settings.
//
//   node bench/js/langfuse_v3.mjs --host http://127.0.0.1:PORT --mode yield|burst
//
// Prints one JSON line on stdout (see workload.mjs `report`); everything else
// goes to stderr. v3 has no tool observation type: tools are spans named "Bash".
import { Langfuse } from "langfuse";
import * as W from "./workload.mjs";

const args = W.parseArgs(process.argv.slice(2));
const spans = args.spans;
const total = spans * W.OBSERVATIONS_PER_SPAN;

// Route every console.* the SDK does to stderr so stdout carries only the JSON line.
for (const k of ["log", "info", "debug", "warn"]) console[k] = (...a) => console.error(...a);

const langfuse = new Langfuse({
  publicKey: W.PUBLIC_KEY,
  secretKey: W.SECRET_KEY,
  baseUrl: args.host,
});
// The SDK already prints "error" events to stderr; count them, and the
// "warning" (failed flush after retries) and "retry" events, for the stderr summary.
const counts = { error: 0, warning: 0, retry: 0 };
for (const ev of Object.keys(counts)) {
  langfuse.on(ev, (payload) => {
    counts[ev]++;
    if (args.diag && ev !== "error") console.error(`[langfuse-js-v3] ${ev}:`, String(payload?.message ?? payload).slice(0, 300));
  });
}

const recordMs = new Float64Array(total);
const now = () => performance.now();

const cpuStart = process.cpuUsage();
const wallStart = now();

const trace = langfuse.trace({ name: W.TRACE_NAME, input: W.text("trace-in", 0, 500) });

for (let i = 0; i < spans; i++) {
  const n = i * W.OBSERVATIONS_PER_SPAN;
  let t0 = now();
  const span = trace.span({ name: W.SPAN_NAME });
  let spanMs = now() - t0;

  for (let c = 1; c < W.OBSERVATIONS_PER_SPAN; c++) {
    const k = n + c;
    if (c % 2 === 1) {
      const input = W.text("in", k, W.GEN_INPUT_LEN);
      const output = W.text("out", k, W.GEN_OUTPUT_LEN);
      const usage = { ...W.USAGE };
      const cost = { ...W.COST };
      t0 = now();
      const gen = span.generation({ name: W.GENERATION_NAME, model: W.MODEL, input });
      gen.end({ output, usageDetails: usage, costDetails: cost });
      recordMs[k] = now() - t0;
    } else {
      const output = W.text("tool", k, W.TOOL_OUTPUT_LEN);
      t0 = now();
      const tool = span.span({ name: W.TOOL_NAME, input: { command: W.TOOL_INPUT.command } });
      tool.end({ output });
      recordMs[k] = now() - t0;
    }
  }

  t0 = now();
  span.end();
  recordMs[n] = spanMs + (now() - t0);

  if (args.mode === "yield") await W.sleep(W.YIELD_MS);
}

trace.update({ output: W.text("trace-out", 0, 500) });

const shutdownStart = now();
try {
  await langfuse.shutdownAsync(); // documented never to reject; guarded all the same
} catch (err) {
  console.error(`[langfuse-js-v3] shutdownAsync() rejected: ${err?.message ?? err}`);
}
const shutdownMs = now() - shutdownStart;
const cpuEnd = process.cpuUsage();
const recordSumMs = recordMs.reduce((a, b) => a + b, 0);

console.error(
  `[langfuse-js-v3] mode=${args.mode} wall=${(now() - wallStart).toFixed(0)}ms ` +
    `record_mean=${((recordSumMs * 1000) / total).toFixed(1)}us record_sum=${recordSumMs.toFixed(0)}ms ` +
    `shutdown=${shutdownMs.toFixed(0)}ms sdk_events=${JSON.stringify(counts)}`,
);
W.report({ client: "langfuse-js-v3", mode: args.mode, recordMs, cpuStart, cpuEnd, shutdownMs });
