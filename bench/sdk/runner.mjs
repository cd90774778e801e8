#!/usr/bin/env node
// A minimal session runner on the Claude Agent SDK (`@anthropic-ai/claude-agent-sdk`):
// what a user would write instead of ccrunner. The peer of ccrunner in the session
// benchmark (bench/run_session_bench.py; see bench/README.md).
//
//   node bench/sdk/runner.mjs [--claude PATH] [--workspace DIR] PROMPT
//
// It runs one prompt through `query()` with the workspace as cwd, permission mode
// acceptEdits, partial messages on and Claude Code's system prompt (the preset), prints every SDK message as one JSON line on
// stdout, and exits 0 when the result has is_error false, 1 otherwise (no result,
// an error result or an exception). The environment is inherited as is (ANTHROPIC_*,
// HOME, ...). --claude makes the SDK start that Claude Code executable instead of
// the one bundled with the SDK, so that the benchmark compares runners on the same CLI.
import { query } from "@anthropic-ai/claude-agent-sdk";
import process from "node:process";

function usage(msg) {
  process.stderr.write(`runner.mjs: ${msg}\nusage: node runner.mjs [--claude PATH] [--workspace DIR] PROMPT\n`);
  process.exit(2);
}

let claude = process.env.CLAUDE_CODE_PATH || undefined;
let workspace = process.cwd();
let prompt;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === "--claude") claude = argv[++i] ?? usage("--claude needs a path");
  else if (a === "--workspace") workspace = argv[++i] ?? usage("--workspace needs a directory");
  else if (a.startsWith("--")) usage(`unknown option ${a}`);
  else if (prompt === undefined) prompt = a;
  else usage("more than one prompt");
}
if (prompt === undefined) usage("missing PROMPT");

// One write per message. The exit code is set through process.exitCode (no process.exit()),
// so Node writes out whatever is still queued for the stdout pipe before it exits.
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

let result = null;
try {
  const q = query({
    prompt,
    options: {
      cwd: workspace,
      permissionMode: "acceptEdits",
      includePartialMessages: true,
      // Claude Code's own system prompt, as the CLI (and ccrunner) use it. Without this the
      // SDK sends `systemPrompt: [""]` in its initialize request and the CLI runs with an
      // (almost) empty system prompt: a different, smaller job.
      systemPrompt: { type: "preset", preset: "claude_code" },
      ...(claude ? { pathToClaudeCodeExecutable: claude } : {}),
      stderr: (data) => process.stderr.write(data),
    },
  });
  for await (const msg of q) {
    out(msg);
    if (msg.type === "result") result = msg;
  }
} catch (err) {
  process.stderr.write(`runner.mjs: ${err && err.stack ? err.stack : err}\n`);
  process.exitCode = 1;
}
if (result === null) {
  if (!process.exitCode) process.stderr.write("runner.mjs: the session ended without a result\n");
  process.exitCode = 1;
} else if (!process.exitCode) {
  process.exitCode = result.is_error ? 1 : 0;
}
