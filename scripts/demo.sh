#!/usr/bin/env bash
# The offline demo: installs what is missing, builds, then runs one real Claude Code session
# through ccrunner with tracing on, against two local stand-ins started here on 127.0.0.1:
# the scripted model server (tests/support/scenarios/demo.json: the agent lists the
# workspace, writes a file, runs a command that fails, sums up) and the Langfuse-compatible
# receiver. It prints the session's messages as ccrunner shows them, then the trace the
# receiver recorded, read back through its Langfuse-shaped API as a tree.
#
#   bash scripts/demo.sh                 the session in the default layout (per-query)
#   LANGFUSE_GENERATIONS=per-call bash scripts/demo.sh     one generation per model call
#   DEMO_BUILD_DIR=DIR     use the binaries already built in DIR; install and build nothing
#                          (how the test suite runs this script)
set -euo pipefail
cd "$(dirname "$0")/.."


build=${DEMO_BUILD_DIR:-}
if [ -z "$build" ]; then
  build=build
  bash scripts/install-deps.sh
  cmake -S . -B build -G Ninja >/dev/null
  cmake --build build >/dev/null
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

# Starts a server that prints "READY <port>" once it listens; sets $port.
start() {
  local name=$1
  shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q '^READY' "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  port=$(awk '/^READY/ {print $2}' "$work/$name.out")
  [ -n "$port" ] || { echo "demo: the $name did not start:" >&2; cat "$work/$name.err" >&2; exit 1; }
}

export LANGFUSE_PUBLIC_KEY=pk-lf-demo LANGFUSE_SECRET_KEY=sk-lf-demo-secret
start "Langfuse receiver" python3 tests/support/langfuse_receiver.py --port 0 \
  --public-key "$LANGFUSE_PUBLIC_KEY" --secret-key "$LANGFUSE_SECRET_KEY"
langfuse="http://127.0.0.1:$port"
start "model server" python3 tests/support/anthropic_server.py --port 0 \
  --scenario tests/support/scenarios/demo.json

mkdir "$work/workspace" "$work/home"
session="demo-$(date +%H%M%S)"
echo "== The session, as ccrunner shows it (--output text) =="
# The agent's HOME is a fresh directory, so nothing of this machine's Claude Code set-up
# (settings, credentials) takes part; the API key is a dummy the local server accepts.
env HOME="$work/home" ANTHROPIC_BASE_URL="http://127.0.0.1:$port" ANTHROPIC_API_KEY=sk-ant-demo \
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
  LANGFUSE_ENABLED=true LANGFUSE_HOST="$langfuse" LANGFUSE_SPOOL_DIR="$work/spool" \
  USER_ID=demo-user NAMESPACE=demo PROJECT_NAME=demo \
  "$build/ccrunner" --workspace "$work/workspace" --session-id "$session" --output text \
  "Write NOTES.md, then summarise the build log"

echo
echo "== What Langfuse shows for session $session =="
"$build/lftrace" --host "$langfuse" --session "$session"
echo
echo "Against a real Langfuse: set LANGFUSE_HOST and the keys, then"
echo "  $(cd "$build" && pwd)/lftrace --session ID     (or lftrace FILE... on the spool's files)"
