#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang and runs each for a while (default 15 s).
#   scripts/fuzz.sh [SECONDS]
# New inputs that found coverage stay in build-fuzz/corpus/. Any finding (crash, leak,
# out-of-memory, timeout) or a harness that does not run fails the script; libFuzzer writes
# the input to build-fuzz/ (crash-*, leak-*, oom-*, timeout-*) and the log to build-fuzz/NAME.log.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
CC=clang cmake -S . -B build-fuzz -G Ninja -DLF_FUZZ=ON -DLF_TESTS=OFF -DLF_BENCH=OFF >/dev/null
cmake --build build-fuzz --target fuzz_http fuzz_json fuzz_body fuzz_spill fuzz_names
for name in http json body spill names; do
  mkdir -p "build-fuzz/corpus/$name"
  echo "fuzz: $name for ${secs}s"
  if ! (cd build-fuzz && "./fuzz/fuzz_$name" -max_total_time="$secs" -print_final_stats=1 \
      "corpus/$name" "../fuzz/corpus/$name" >"$name.log" 2>&1); then
    grep -E "ERROR|SUMMARY" "build-fuzz/$name.log" || tail -20 "build-fuzz/$name.log"
    echo "fuzz: $name failed (build-fuzz/$name.log)" >&2
    exit 1
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "build-fuzz/$name.log"
done
echo "fuzz: no findings"
