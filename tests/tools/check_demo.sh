#!/usr/bin/env bash
# Runs scripts/demo.sh on already-built binaries (DEMO_BUILD_DIR) and checks that it showed
# the session and the trace a person would want to see: the query with its exact cost and
# tokens, each model call and tool, and the failed tool marked ERROR.
set -euo pipefail
out=$(bash scripts/demo.sh 2>&1) || { echo "$out"; echo "demo: failed" >&2; exit 1; }
echo "$out"
expect() { grep -qF -- "$1" <<<"$out" || { echo "demo: missing: $1" >&2; exit 1; }; }
expect "result: success"
expect "status Completed: Session completed"
expect "trace agentic-session"
expect "user demo-user"
expect "\$0.047323  tokens in 69944 out 307  9 observations, 1 errors"
expect "claude-query [generation claude-opus-5-5]"
expect "output 307, cache-read 64277, cache-write 5660, total 70251  \$0.047323"
expect "Write [tool]"
expect "Bash [tool]"
expect "ERROR: Exit code 1 | cat: build.log: No such file or directory"
[ "$(grep -c 'model-call \[span\]' <<<"$out")" = 4 ] || { echo "demo: expected 4 model calls" >&2; exit 1; }
echo "demo: ok"
