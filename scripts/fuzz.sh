#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang and runs each for a while (default 15 s).
#   scripts/fuzz.sh [SECONDS]
# New inputs that found coverage stay in build-fuzz/corpus/; crashes fail the script and are
# written to build-fuzz/ as crash-*.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
CC=clang cmake -S . -B build-fuzz -G Ninja -DLF_FUZZ=ON -DLF_TESTS=OFF -DLF_BENCH=OFF >/dev/null
cmake --build build-fuzz --target fuzz_http fuzz_json fuzz_body fuzz_spill fuzz_names
for name in http json body spill names; do
  mkdir -p "build-fuzz/corpus/$name"
  echo "fuzz: $name for ${secs}s"
  (cd build-fuzz && "./fuzz/fuzz_$name" -max_total_time="$secs" -print_final_stats=1 \
      "corpus/$name" "../fuzz/corpus/$name" 2>&1 | grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|ERROR|SUMMARY" || true)
  ls build-fuzz/crash-* >/dev/null 2>&1 && { echo "fuzz: $name crashed" >&2; exit 1; }
done
echo "fuzz: no crashes"
