#!/usr/bin/env bash
# The offline demo: installs what is missing, builds, starts the local Langfuse-compatible
# receiver, traces a fake agent turn into it with liblangfuse, and prints the trace that
# the receiver recorded, read back through its Langfuse-shaped API.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build -G Ninja >/dev/null
cmake --build build >/dev/null

work=$(mktemp -d)
rx_pid=""
cleanup() {
  [ -n "$rx_pid" ] && kill "$rx_pid" 2>/dev/null && wait "$rx_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

export LANGFUSE_PUBLIC_KEY=pk-lf-demo LANGFUSE_SECRET_KEY=sk-lf-demo-secret
python3 tests/support/langfuse_receiver.py --port 0 \
  --public-key "$LANGFUSE_PUBLIC_KEY" --secret-key "$LANGFUSE_SECRET_KEY" >"$work/rx.out" 2>"$work/rx.err" &
rx_pid=$!
for _ in $(seq 100); do grep -q '^READY' "$work/rx.out" 2>/dev/null && break; sleep 0.1; done
port=$(awk '/^READY/ {print $2}' "$work/rx.out")
[ -n "$port" ] || { echo "demo: the receiver did not start" >&2; cat "$work/rx.err" >&2; exit 1; }

export LANGFUSE_ENABLED=true LANGFUSE_HOST="http://127.0.0.1:$port"
trace_id=$(build/examples/agent_turn)
echo
echo "What Langfuse shows for trace $trace_id:"
echo
build/lftrace "$trace_id"
