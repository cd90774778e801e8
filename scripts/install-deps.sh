#!/usr/bin/env bash
# Installs everything the project needs on Debian 12: the build toolchain and libraries
# from Debian's packages, and the pinned Claude Code CLI from npm (package-lock.json).
# Idempotent; safe to run again. Needs root (or sudo) for apt-get.
#   install-deps.sh           what the build and the tests need
#   install-deps.sh --image   also what scripts/build-image.sh needs (buildah, mmdebstrap, ...)
#                             for the runner image's test (ctest label `image`): only
#                             scripts/test.sh's normal mode, whose ctest run includes that
#                             test, asks for it; the --asan and --tsan runs do not pay for it
set -euo pipefail
cd "$(dirname "$0")/.."
image=0
case ${1:-} in
  --image) image=1 ;;
  "") ;;
  *) echo "install-deps: usage: install-deps.sh [--image]" >&2; exit 2 ;;
esac

packages=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev clang-format
  libjansson-dev libcurl4-openssl-dev libwebsockets-dev zlib1g-dev libcmocka-dev libdeflate-dev libyaml-dev
  python3 python3-websockets ca-certificates openssl gettext-base
)
# The runner image's runtime packages: tests/deploy runs its entrypoint and checks its
# libraries here, and simulates its installs from apt's package lists (so those must exist).
mapfile -t -O ${#packages[@]} packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' deploy/image/runtime-packages.txt)
# The image build: buildah (chroot isolation needs no runc), mmdebstrap for the Debian base
# images with the archive keyring it verifies them by, uidmap (buildah's dependency).
((image == 0)) || packages+=(buildah mmdebstrap uidmap debian-archive-keyring)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from Debian or from the machine image (which bundles npm and conflicts
# with Debian's npm package): only a machine without npm gets Debian's.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if ((${#missing[@]})) || ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: installing ${missing[*]}" >&2
  $sudo apt-get update -q
  ((${#missing[@]} == 0)) || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The real Claude Code CLI, pinned by package-lock.json; the tests drive it offline.
if [ ! -x node_modules/.bin/claude ] || ! node_modules/.bin/claude --version 2>/dev/null | grep -q "$(node -p 'require("./package.json").dependencies["@anthropic-ai/claude-code"]')"; then
  echo "install-deps: npm ci (Claude Code CLI)" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi

# The deploy tests' validators (kubernetes-models, ajv, yaml), pinned by tests/deploy/package-lock.json.
if [ tests/deploy/package-lock.json -nt tests/deploy/node_modules/.package-lock.json ]; then
  echo "install-deps: npm ci --prefix tests/deploy (manifest validators)" >&2
  npm ci --prefix tests/deploy --no-audit --no-fund --loglevel=error
fi
