#!/usr/bin/env bash
# Checks that every C file in git follows .clang-format (Debian 12's clang-format 14, which
# scripts/install-deps.sh installs); lists the files that do not, and fails. To fix them:
#   git ls-files '*.c' '*.h' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/.."
bad=()
while IFS= read -r f; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files '*.c' '*.h')
if ((${#bad[@]})); then
  echo "check-format: not formatted as .clang-format says (clang-format -i FILE):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "check-format: $(git ls-files '*.c' '*.h' | wc -l) files formatted"
