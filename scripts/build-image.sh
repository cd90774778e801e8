#!/usr/bin/env bash
# Builds the runner image (deploy/image/Dockerfile) without a Docker engine or a registry:
# buildah builds it (chroot isolation, as root) on base images made here with mmdebstrap
# from Debian's own mirror, under the names the Dockerfile asks for:
#   debian:bookworm        variant minbase, merged /usr, Docker's apt settings (no
#                          translations, gzipped lists, no package caches)
#   debian:bookworm-slim   the same, and without docs (copyrights kept), man pages, info and
#                          locales, by dpkg path-exclude rules kept in the image, as Docker's
#                          slim does
# The bases are made once and reused: each is also tagged localhost/ccrunner-base:NAME-KEY,
# KEY a hash of the recipe below and the mirrors, and is remade when the recipe changes,
# when it is older than --base-max-age days (security updates), or with --refresh-bases.
# buildah caches the build's layers (--layers), so a rebuild after a source change repeats
# only the compile and the copy of ccrunner and ccoperator. The image is written in Docker's
# format (docker load, every registry).
#
# Installs nothing itself: `scripts/install-deps.sh --image` installs buildah, mmdebstrap
# and uidmap. Run from anywhere; needs root.
#
#   scripts/build-image.sh [--tag TAG] [--ca-bundle FILE] [--export FILE] ...
#
# TLS through a proxy with its own CA: --ca-bundle FILE (a PEM bundle, typically the host's
# /etc/ssl/certs/ca-certificates.crt) reaches the build's RUN steps as the build secret
# `ca_bundle`, mounted at /run/secrets/ca_bundle for that step only: apt (for https sources)
# and npm ci trust it. It is in no layer of the image. HTTP(S)_PROXY variables of the
# caller's environment reach the RUN steps too (buildah's default).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/build-image.sh [options]
Builds deploy/image/Dockerfile with buildah on locally made Debian 12 base images.
  --tag TAG              the image's name (default ccrunner:dev)
  --ca-bundle FILE       PEM CA bundle the build's apt and npm trust (a TLS proxy's CA);
                         passed as the build secret ca_bundle, never stored in the image
  --export FILE          also write the image to FILE, for `docker load` / `skopeo copy`
  --export-format FMT    docker (docker-archive, the default) or oci (oci-archive)
  --mirror URL           Debian mirror of the bases (default http://deb.debian.org/debian)
  --security-mirror URL  (default http://deb.debian.org/debian-security)
  --base-max-age DAYS    remake a base older than this (default 7)
  --refresh-bases        remake both bases now
  --bases-only           make the bases, build nothing
  -h, --help             this text
Needs root, buildah and mmdebstrap (scripts/install-deps.sh --image).
EOF
}

die() {
  echo "build-image: $*" >&2
  exit 1
}
usage_error() {
  echo "build-image: $* (see --help)" >&2
  exit 2
}

tag=ccrunner:dev
ca_bundle=""
export_file=""
export_format=docker
mirror=http://deb.debian.org/debian
security_mirror=http://deb.debian.org/debian-security
max_age_days=7
refresh=0
bases_only=0
while (($#)); do
  case $1 in
    -h | --help)
      usage
      exit 0
      ;;
    --refresh-bases) refresh=1 ;;
    --bases-only) bases_only=1 ;;
    --tag | --ca-bundle | --export | --export-format | --mirror | --security-mirror | --base-max-age)
      (($# >= 2)) || usage_error "$1 needs a value"
      case $1 in
        --tag) tag=$2 ;;
        --ca-bundle) ca_bundle=$2 ;;
        --export) export_file=$2 ;;
        --export-format) export_format=$2 ;;
        --mirror) mirror=$2 ;;
        --security-mirror) security_mirror=$2 ;;
        --base-max-age) max_age_days=$2 ;;
      esac
      shift
      ;;
    *) usage_error "unknown argument: $1" ;;
  esac
  shift
done
[ -n "$tag" ] || usage_error "--tag is empty"
[[ $max_age_days =~ ^[0-9]+$ ]] || usage_error "--base-max-age takes whole days, not '$max_age_days'"
case $export_format in docker | oci) ;; *) usage_error "--export-format is docker or oci, not '$export_format'" ;; esac
if [ -n "$ca_bundle" ]; then
  [ -r "$ca_bundle" ] || usage_error "--ca-bundle $ca_bundle is not a readable file"
  grep -q -- '-----BEGIN CERTIFICATE-----' "$ca_bundle" || usage_error "--ca-bundle $ca_bundle holds no PEM certificate"
  ca_bundle=$(realpath "$ca_bundle")
fi
# FILE arguments are the caller's; everything else is the repository's.
[ -z "$export_file" ] || export_file=$(realpath -m "$export_file")
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || die "needs root (buildah's chroot isolation, mmdebstrap's root mode)"
for tool in buildah mmdebstrap; do
  command -v "$tool" >/dev/null || die "$tool is not installed: run scripts/install-deps.sh --image"
done

# ---- the base images ----------------------------------------------------------------------
# deploy/image/base/docker-apt.conf: Docker's apt settings, written after mmdebstrap's own apt
# runs, as debuerreotype does (and the binary caches that the merged-usr hook's apt run left
# are removed, which mmdebstrap's clean-up does not do). slim-dpkg.cfg: the slim variant's dpkg path filter, in force
# from the first package unpacked.
sources=(
  "deb $mirror bookworm main"
  "deb $mirror bookworm-updates main"
  "deb $security_mirror bookworm-security main"
)
# What the image config of Docker's Debian images holds.
base_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# The mmdebstrap arguments of one base (slim or full), one a line.
recipe() {
  # shellcheck disable=SC2016 # "$1" is the hook's: mmdebstrap passes it the new root
  printf '%s\n' --variant=minbase --format=tar --skip=output/dev \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    '--customize-hook=upload deploy/image/base/docker-apt.conf /etc/apt/apt.conf.d/docker' \
    '--customize-hook=rm -f "$1"/var/cache/apt/*.bin'
  if [ "$1" = slim ]; then
    echo --dpkgopt=deploy/image/base/slim-dpkg.cfg
  fi
}

# The creation time of an image, in seconds since the epoch; nothing if there is no image.
created() {
  local when
  when=$(buildah inspect --type image --format '{{.OCIv1.Created}}' "$1" 2>/dev/null) || return 0
  date -d "${when% [A-Z]*}" +%s 2>/dev/null || true
}

# Makes (or reuses) the base image NAME; $2 is "slim" or "full".
make_base() {
  local name=$1 kind=$2 key cached age tar ctr log
  mapfile -t args < <(recipe "$kind")
  key=$(cat <(printf '%s\n' "$kind" "${args[@]}" "${sources[@]}" "$base_path") \
    deploy/image/base/docker-apt.conf deploy/image/base/slim-dpkg.cfg | sha256sum | cut -c1-12)
  cached=localhost/ccrunner-base:$kind-$key
  age=$(created "$cached")
  if [ "$refresh" -eq 0 ] && [ -n "$age" ] && (($(date +%s) - age < max_age_days * 86400)); then
    buildah tag "$cached" "$name"
    echo "build-image: $name: cached ($cached, made $(date -d "@$age" '+%F %T'))" >&2
    return
  fi
  echo "build-image: $name: mmdebstrap ($kind) from $mirror" >&2
  tar=$(mktemp --suffix=.tar)
  # shellcheck disable=SC2064 # expand now: the names are local
  trap "rm -f '$tar' '$tar.log'" EXIT
  log=$tar.log
  if ! mmdebstrap --quiet "${args[@]//deploy\/image\//$PWD/deploy/image/}" bookworm "$tar" \
    "${sources[@]}" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "mmdebstrap failed making $name (its last lines above)"
  fi
  rm -f "$log"
  ctr=$(buildah from --pull=never scratch)
  if buildah add --quiet "$ctr" "$tar" / >/dev/null &&
    buildah config --env PATH="$base_path" --cmd '["bash"]' "$ctr" &&
    buildah commit --quiet --rm "$ctr" "$cached" >/dev/null; then
    :
  else
    buildah rm "$ctr" >/dev/null 2>&1 || true
    die "could not import the $name tarball into buildah"
  fi
  rm -f "$tar" "$log"
  trap - EXIT
  buildah tag "$cached" "$name"
  # The bases of the previous recipes are no longer used.
  buildah images --format '{{.Name}}:{{.Tag}}' | grep -E "^localhost/ccrunner-base:$kind-" |
    grep -vxF "$cached" | xargs -r buildah rmi >/dev/null 2>&1 || true
}

make_base docker.io/library/debian:bookworm full
make_base docker.io/library/debian:bookworm-slim slim
((bases_only == 0)) || exit 0

# ---- the image ------------------------------------------------------------------------------
build=(buildah bud --isolation chroot --layers --force-rm --pull=never --format docker
  --ignorefile deploy/image/Dockerfile.dockerignore -f deploy/image/Dockerfile -t "$tag")
[ -z "$ca_bundle" ] || build+=(--secret "id=ca_bundle,src=$ca_bundle")
start=$(date +%s)
"${build[@]}" . || die "buildah bud failed (above)"
echo "build-image: built $tag in $(($(date +%s) - start)) s" >&2
buildah images --format '{{.Name}}:{{.Tag}} {{.ID}} {{.Size}}' "$tag"

if [ -n "$export_file" ]; then
  buildah push --quiet "$tag" "$export_format-archive:$export_file:$tag" ||
    die "could not write $export_file"
  echo "build-image: wrote $export_file ($export_format-archive, $(du -h "$export_file" | cut -f1))" >&2
fi
