#!/usr/bin/env bash
# Installs the Debian packages named in a list file (one a line, `#` comments) without
# recommends, then drops apt's lists and downloaded .debs so that the image layer keeps only
# the packages. A CA bundle at /run/secrets/ca_bundle (the Dockerfile's optional build secret,
# for a TLS proxy with its own CA) is what apt trusts for https sources.
# The Dockerfile runs it; the tests run it with --simulate (apt-get -s: no root, no change)
# so that the list the image installs is the list that was checked.
#   install-packages.sh [--simulate] LIST
set -euo pipefail
simulate=0
if [ "${1:-}" = "--simulate" ]; then
  simulate=1
  shift
fi
[ $# -eq 1 ] && [ -r "$1" ] || { echo "install-packages: usage: install-packages.sh [--simulate] LIST (a readable file)" >&2; exit 2; }
mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$1")
[ ${#packages[@]} -gt 0 ] || { echo "install-packages: $1 names no package" >&2; exit 2; }

if [ "$simulate" -eq 1 ]; then
  # An empty dpkg status makes apt plan the install onto a bare system, as in a fresh image,
  # and from the package lists of this machine's Debian sources only.
  status=$(mktemp)
  trap 'rm -f "$status"' EXIT
  apt-get install -s -o Dir::State::status="$status" --no-install-recommends "${packages[@]}"
  exit
fi
export DEBIAN_FRONTEND=noninteractive
apt=(apt-get)
[ ! -r /run/secrets/ca_bundle ] || apt+=(-o Acquire::https::CAInfo=/run/secrets/ca_bundle)
"${apt[@]}" update -q
"${apt[@]}" install -y -q --no-install-recommends "${packages[@]}"
apt-get clean
rm -rf /var/lib/apt/lists/*
