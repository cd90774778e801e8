#!/usr/bin/env bash
# Prepares one namespace for ccrunner sessions, in this order: the namespace, the
# AgenticSession CRD, RBAC (deploy/k8s/rbac.yaml) and the namespace's Langfuse configuration
# (deploy/k8s/langfuse-config.yaml). Idempotent: every step is `kubectl apply`, except the
# Langfuse keys Secret, which is created only when absent so that filled keys survive a
# re-run. Sessions run without Langfuse, so a failed Langfuse step is a warning, not a failure.
#
#   deploy/deploy.sh [--namespace NS] [--dry-run]
#     --namespace NS  the sessions' namespace (default ccrunner)
#     --dry-run       print what would be applied, in order; needs no cluster and no kubectl
# The CRD and the namespace are cluster-wide: the first run needs a cluster administrator.
set -euo pipefail

die() { # a wrong argument or a missing tool: exit 2
  echo "deploy: error: $*" >&2
  exit 2
}
fail() { # a step the cluster refused: exit 1
  echo "deploy: error: $*" >&2
  exit 1
}
k8s="$(cd "$(dirname "$0")" && pwd)/k8s"
ns=ccrunner
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --namespace) [ $# -ge 2 ] || die "--namespace needs a value"; ns=$2; shift ;;
    --namespace=*) ns=${1#*=} ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) die "unknown argument '$1'; see deploy.sh --help" ;;
  esac
  shift
done
[[ $ns =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] && [ ${#ns} -le 63 ] ||
  die "namespace '$ns' is invalid: use at most 63 lowercase letters, digits and '-'"
[ "$dry_run" -eq 1 ] || command -v kubectl >/dev/null ||
  die "kubectl not found; install it, or use --dry-run to see the manifests"

namespace_manifest() {
  printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels:\n    app.kubernetes.io/part-of: ccrunner\n' "$ns"
}
# rbac.yaml names the namespace once, in the RoleBinding's subject.
rbac_manifest() {
  # shellcheck disable=SC2016 # the placeholder itself, not an expansion
  local text placeholder='${NAMESPACE}'
  text=$(<"$k8s/rbac.yaml")
  printf '%s\n' "${text//"$placeholder"/$ns}"
}

if [ "$dry_run" -eq 1 ]; then
  show() { # show TITLE COMMAND, then the manifest on stdin
    printf -- '---\n# deploy.sh step %s\n# %s\n' "$1" "$2"
    cat
  }
  echo "# deploy.sh --dry-run --namespace $ns: the manifests it would apply, in order"
  namespace_manifest | show "1/4: namespace" "kubectl apply -f -"
  show "2/4: AgenticSession CRD" "kubectl apply -f deploy/k8s/crd-agenticsession.yaml" <"$k8s/crd-agenticsession.yaml"
  rbac_manifest | show "3/4: RBAC" "kubectl apply -n $ns -f - (deploy/k8s/rbac.yaml)"
  show "4/4: Langfuse configuration" "kubectl apply -n $ns (the ConfigMap); kubectl create -n $ns (the Secret, only when absent)" <"$k8s/langfuse-config.yaml"
  exit 0
fi

echo "deploy: [1/4] namespace $ns" >&2
namespace_manifest | kubectl apply -f - || fail "could not create the namespace $ns (see kubectl's message above)"
echo "deploy: [2/4] AgenticSession CRD" >&2
kubectl apply -f "$k8s/crd-agenticsession.yaml" ||
  fail "could not apply the AgenticSession CRD; a cluster administrator must run this once"
echo "deploy: [3/4] RBAC" >&2
rbac_manifest | kubectl apply -n "$ns" -f - || fail "could not apply deploy/k8s/rbac.yaml in $ns"

echo "deploy: [4/4] Langfuse configuration" >&2
langfuse_ok=1
kubectl apply -n "$ns" -f "$k8s/langfuse-config.yaml" -l app.kubernetes.io/component=langfuse-config || langfuse_ok=0
if [ "$langfuse_ok" -eq 1 ] && ! kubectl get secret langfuse-keys -n "$ns" >/dev/null 2>&1; then
  kubectl create --save-config -n "$ns" -f "$k8s/langfuse-config.yaml" -l app.kubernetes.io/component=langfuse-keys || langfuse_ok=0
  [ "$langfuse_ok" -eq 0 ] || echo "deploy: fill the Langfuse keys in the Secret langfuse-keys (deploy/README.md, \"Langfuse keys\")" >&2
fi
if [ "$langfuse_ok" -eq 0 ]; then
  echo "deploy: warning: the Langfuse configuration was not applied in $ns; sessions run untraced until it is (deploy/README.md)" >&2
fi
echo "deploy: namespace $ns is ready for ccrunner Jobs" >&2
