#!/usr/bin/env bash
# lftrace reads request bodies from disk (as the spool keeps them) and prints the trace as a
# tree: names, types, model, tokens, cost, errors, nesting, and the totals at the top.
# Usage: check_lftrace.sh LFTRACE
set -euo pipefail
lftrace=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
t=0123456789abcdef0123456789abcdef
cat > "$dir/body.json" <<JSON
{"resourceSpans":[{"resource":{"attributes":[]},"scopeSpans":[{"scope":{"name":"liblangfuse"},"spans":[
 {"traceId":"$t","spanId":"1111111111111111","name":"agentic-session","kind":1,
  "startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000002500000000",
  "attributes":[{"key":"langfuse.trace.name","value":{"stringValue":"agentic-session"}},
                {"key":"session.id","value":{"stringValue":"sess-9"}},
                {"key":"user.id","value":{"stringValue":"alice"}}]},
 {"traceId":"$t","spanId":"2222222222222222","parentSpanId":"1111111111111111","name":"claude-query","kind":1,
  "startTimeUnixNano":"1700000000100000000","endTimeUnixNano":"1700000002000000000",
  "attributes":[{"key":"langfuse.observation.type","value":{"stringValue":"generation"}},
                {"key":"langfuse.observation.model.name","value":{"stringValue":"claude-sonnet-4-5"}},
                {"key":"langfuse.observation.usage_details","value":{"stringValue":"{\"input\":1200,\"output\":80}"}},
                {"key":"langfuse.observation.cost_details","value":{"stringValue":"{\"total\":0.0048}"}}]},
 {"traceId":"$t","spanId":"4444444444444444","parentSpanId":"2222222222222222","name":"model-call","kind":1,
  "startTimeUnixNano":"1700000000200000000","endTimeUnixNano":"1700000000900000000",
  "attributes":[{"key":"langfuse.observation.metadata.usage","value":{"stringValue":"{\"input\":1200,\"output\":80}"}},
                {"key":"langfuse.observation.metadata.cost_usd","value":{"doubleValue":0.0048}}]},
 {"traceId":"$t","spanId":"3333333333333333","parentSpanId":"2222222222222222","name":"Write","kind":1,
  "startTimeUnixNano":"1700000001000000000","endTimeUnixNano":"1700000001500000000",
  "attributes":[{"key":"langfuse.observation.type","value":{"stringValue":"tool"}},
                {"key":"langfuse.observation.level","value":{"stringValue":"ERROR"}},
                {"key":"langfuse.observation.status_message","value":{"stringValue":"permission denied\\n\\nby the policy"}}]}
]}]}]}
JSON
gzip -c "$dir/body.json" > "$dir/lf-00000001700000000000-1-1-r3.otlp.json.gz"
out=$("$lftrace" "$dir/lf-00000001700000000000-1-1-r3.otlp.json.gz")
echo "$out"
expect() { grep -qF -- "$1" <<<"$out" || { echo "lftrace: missing: $1" >&2; exit 1; }; }
expect "trace agentic-session  $t"
expect "session sess-9  user alice"
expect "2.500 s  \$0.004800  tokens in 1200 out 80  4 observations, 1 errors"
expect "└─ agentic-session [span]  2.500 s"
expect "   └─ claude-query [generation claude-sonnet-4-5]  1.900 s  tokens: input 1200, output 80  \$0.004800"
# a span's own numbers (in metadata) are shown as part of its generation's, not added again
expect "      ├─ model-call [span]  0.700 s  (tokens: input 1200, output 80; \$0.004800)"
expect "      └─ Write [tool]  0.500 s  ERROR: permission denied | by the policy"
# the same trace read back from the test receiver playing each server line (v4: observations
# only, v3: traces), by a session id that must be escaped in the URL: lftrace finds the line
# itself and prints the same tree from both (only the root carries session.id: v4 lists only
# the root under the session, and the tree holds the whole trace all the same)
support=$(cd "$(dirname "$0")/../support" && pwd)
sed 's/"sess-9"/"sess 9\&x#1"/' "$dir/body.json" >"$dir/odd.json"
rxs=()
trap 'kill "${rxs[@]}" 2>/dev/null; rm -rf "$dir"' EXIT
for v in 4 3; do
  python3 "$support/langfuse_receiver.py" --port 0 --langfuse-version $v \
    --public-key pk-lf-t --secret-key sk-lf-t >"$dir/rx$v.out" 2>/dev/null &
  rxs+=($!)
  for _ in $(seq 100); do grep -q '^READY' "$dir/rx$v.out" && break; sleep 0.1; done
  host="http://127.0.0.1:$(awk '/^READY/ {print $2}' "$dir/rx$v.out")"
  python3 - "$host" "$dir/odd.json" <<'PY'
import base64, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/api/public/otel/v1/traces", data=open(sys.argv[2], "rb").read(),
                             headers={"Content-Type": "application/json",
                                      "x-langfuse-ingestion-version": "4",
                                      "Authorization": "Basic " + base64.b64encode(b"pk-lf-t:sk-lf-t").decode()})
urllib.request.urlopen(req, timeout=10).read()
PY
  LANGFUSE_PUBLIC_KEY=pk-lf-t LANGFUSE_SECRET_KEY=sk-lf-t \
    "$lftrace" -v --host "$host" --session "sess 9&x#1" >"$dir/tree$v" 2>"$dir/err$v"
  LANGFUSE_PUBLIC_KEY=pk-lf-t LANGFUSE_SECRET_KEY=sk-lf-t \
    "$lftrace" --host "$host" "$t" >>"$dir/tree$v"
  out=$(cat "$dir/tree$v")
  echo "$out"
  grep -q "Langfuse v$v" "$dir/err$v" || { echo "lftrace: v$v not found:" >&2; cat "$dir/err$v" >&2; exit 1; }
  expect "session sess 9&x#1  user alice"
  expect "2.500 s  \$0.004800  tokens in 1200 out 80  4 observations, 1 errors"
  expect "      ├─ model-call [span]  0.700 s  (tokens: input 1200, output 80; \$0.004800)"
  expect "      └─ Write [tool]  0.500 s  ERROR: permission denied | by the policy"
done
diff "$dir/tree3" "$dir/tree4" || { echo "lftrace: the v4 and v3 trees differ" >&2; exit 1; }
# a file that is not a body: one clear line, exit 1
echo "not json" > "$dir/bad.json"
if "$lftrace" "$dir/bad.json" 2>"$dir/err"; then echo "lftrace accepted garbage" >&2; exit 1; fi
grep -q "bad.json: not JSON" "$dir/err"
echo "lftrace: ok"
