#!/usr/bin/env bash
# Installs what is missing (scripts/install-deps.sh, idempotent), builds the project and
# runs every test under ctest.
#   scripts/test.sh            normal build in build/; every test, the runner image's build
#                              (label `image`) too, so it installs with install-deps.sh --image
#   scripts/test.sh --asan     AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/
#   scripts/test.sh --tsan     ThreadSanitizer build in build-tsan/ of the tests labelled
#                              `threaded` (tests/CMakeLists.txt), and only those; any report fails
# Extra arguments after the mode go to ctest (e.g. -R unit).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build
flags=()
target=all
ctest_args=()
deps=(--image)
if [ "${1:-}" = "--asan" ]; then
  dir=build-asan
  flags=(-DLF_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
  deps=()
  ctest_args=(-LE image) # the image holds a normal build: nothing sanitized runs in it
  shift
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
elif [ "${1:-}" = "--tsan" ]; then
  dir=build-tsan
  flags=(-DLF_TSAN=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLF_BENCH=OFF)
  target=threaded_tests
  ctest_args=(-L threaded -LE image)
  deps=()
  shift
  # halt_on_error: the first report fails the test (exit 66), never a warning in a green log.
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
fi
bash scripts/install-deps.sh "${deps[@]}"
cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
cmake --build "$dir" --target "$target"
ctest --test-dir "$dir" --output-on-failure --timeout 900 "${ctest_args[@]}" "$@"
