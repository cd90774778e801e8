#!/usr/bin/env bash
# Installs the library into a scratch prefix and builds a program against it the way a user
# would: with pkg-config, static and shared.
# Usage: check_install.sh BUILD_DIR SOURCE_DIR [ON]   (ON: the build uses the sanitizers,
# so the program must be built with them too)
set -euo pipefail
build=$1 src=$2
san=""
[ "${3:-OFF}" = "ON" ] && san="-fsanitize=address,undefined"
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig"
test -f "$prefix/include/langfuse/langfuse.h"
cc -std=c17 -Wall -Werror $san "$src/examples/agent_turn.c" -o "$prefix/shared" $(pkg-config --cflags --libs langfuse)
cc -std=c17 -Wall -Werror $san "$src/examples/agent_turn.c" -o "$prefix/static" $(pkg-config --cflags langfuse) \
   "$(pkg-config --variable=libdir langfuse)/liblangfuse.a" $(pkg-config --libs --static langfuse | sed 's/-llangfuse//')
# without LANGFUSE_ENABLED the example refuses with exit 2 and a clear message: it ran
for prog in shared static; do
  set +e
  out=$(env -u LANGFUSE_ENABLED LD_LIBRARY_PATH="$(pkg-config --variable=libdir langfuse)" "$prefix/$prog" 2>&1)
  rc=$?
  set -e
  [ "$rc" -eq 2 ] || { echo "$prog: exit $rc: $out"; exit 1; }
  echo "$out" | grep -q "LANGFUSE_ENABLED" || { echo "$prog: $out"; exit 1; }
done
echo "install: headers, shared and static library and langfuse.pc work"
