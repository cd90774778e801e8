// Tracing benchmark peer: the OpenTelemetry-based Langfuse JS SDK
// (`@langfuse/tracing` + `@langfuse/otel`'s LangfuseSpanProcessor on a
// NodeTracerProvider from `@opentelemetry/sdk-trace-node`), default settings.
//
//   node bench/js/langfuse_otel.mjs --host http://127.0.0.1:PORT --mode yield|burst
//
// Prints one JSON line on stdout (see workload.mjs `report`); everything else
// goes to stderr. The trace is the root observation (an OTel root span) whose
// trace-level input/output are set with setTraceIO; its span id is not one of
// the 12,000 observations.
import { diag, DiagConsoleLogger, DiagLogLevel } from "@opentelemetry/api";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { LangfuseSpanProcessor } from "@langfuse/otel";
import { startObservation } from "@langfuse/tracing";
import * as W from "./workload.mjs";

const args = W.parseArgs(process.argv.slice(2));
const spans = args.spans;
const total = spans * W.OBSERVATIONS_PER_SPAN;

for (const k of ["log", "info", "debug", "warn"]) console[k] = (...a) => console.error(...a);
// --diag: OTel's own warnings (e.g. "Dropped N spans because maxQueueSize reached")
// are silent unless a diag logger is installed; users get them only if they do this.
if (args.diag) diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.WARN);

const processor = new LangfuseSpanProcessor({
  publicKey: W.PUBLIC_KEY,
  secretKey: W.SECRET_KEY,
  baseUrl: args.host,
});
const provider = new NodeTracerProvider({ spanProcessors: [processor] });
provider.register();

const recordMs = new Float64Array(total);
const now = () => performance.now();

const cpuStart = process.cpuUsage();
const wallStart = now();

const root = startObservation(W.TRACE_NAME);
root.setTraceIO({ input: W.text("trace-in", 0, 500) });

for (let i = 0; i < spans; i++) {
  const n = i * W.OBSERVATIONS_PER_SPAN;
  let t0 = now();
  const span = root.startObservation(W.SPAN_NAME);
  let spanMs = now() - t0;

  for (let c = 1; c < W.OBSERVATIONS_PER_SPAN; c++) {
    const k = n + c;
    if (c % 2 === 1) {
      const input = W.text("in", k, W.GEN_INPUT_LEN);
      const output = W.text("out", k, W.GEN_OUTPUT_LEN);
      const usageDetails = { ...W.USAGE };
      const costDetails = { ...W.COST };
      t0 = now();
      const gen = span.startObservation(
        W.GENERATION_NAME,
        { model: W.MODEL, input },
        { asType: "generation" },
      );
      gen.update({ output, usageDetails, costDetails });
      gen.end();
      recordMs[k] = now() - t0;
    } else {
      const output = W.text("tool", k, W.TOOL_OUTPUT_LEN);
      t0 = now();
      const tool = span.startObservation(
        W.TOOL_NAME,
        { input: { command: W.TOOL_INPUT.command } },
        { asType: "tool" },
      );
      tool.update({ output });
      tool.end();
      recordMs[k] = now() - t0;
    }
  }

  t0 = now();
  span.end();
  recordMs[n] = spanMs + (now() - t0);

  if (args.mode === "yield") await W.sleep(W.YIELD_MS);
}

root.setTraceIO({ output: W.text("trace-out", 0, 500) });
root.end();

const shutdownStart = now();
// provider.shutdown() rejects when the final export fails (e.g. ECONNREFUSED);
// the loss then shows in the sink's count, so report it and carry on.
let shutdownError = null;
try {
  await provider.shutdown();
} catch (err) {
  shutdownError = err;
}
const shutdownMs = now() - shutdownStart;
if (shutdownError) console.error(`[langfuse-js-otel] provider.shutdown() rejected: ${shutdownError?.message ?? shutdownError}`);
const cpuEnd = process.cpuUsage();
const recordSumMs = recordMs.reduce((a, b) => a + b, 0);

console.error(
  `[langfuse-js-otel] mode=${args.mode} wall=${(now() - wallStart).toFixed(0)}ms ` +
    `record_mean=${((recordSumMs * 1000) / total).toFixed(1)}us record_sum=${recordSumMs.toFixed(0)}ms ` +
    `shutdown=${shutdownMs.toFixed(0)}ms`,
);
W.report({ client: "langfuse-js-otel", mode: args.mode, recordMs, cpuStart, cpuEnd, shutdownMs });
