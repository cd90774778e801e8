#!/usr/bin/env bash
# Installs what is missing (scripts/install-deps.sh, idempotent), builds the project and
# runs every test under ctest.
#   scripts/test.sh            normal build in build/
#   scripts/test.sh --asan     AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/
# Extra arguments after the mode go to ctest (e.g. -R unit).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build
flags=()
if [ "${1:-}" = "--asan" ]; then
  dir=build-asan
  flags=(-DLF_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
  shift
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
bash scripts/install-deps.sh
cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
cmake --build "$dir"
ctest --test-dir "$dir" --output-on-failure --timeout 900 "$@"
