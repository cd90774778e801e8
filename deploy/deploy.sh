#!/usr/bin/env bash
# Prepares one namespace for ccrunner sessions, in this order: the namespace, the
# AgenticSession CRD, RBAC (deploy/k8s/rbac.yaml), the namespace's Langfuse configuration
# (deploy/k8s/langfuse-config.yaml) and the operator (deploy/k8s/operator.yaml), which runs
# every AgenticSession applied in the namespace as a Job. Idempotent: every step is
# `kubectl apply`, except the Langfuse keys Secret, which is created only when absent so that
# filled keys survive a re-run. Sessions run without Langfuse, so a failed Langfuse step is a
# warning, not a failure.
#
#   deploy/deploy.sh --image IMAGE [--namespace NS] [--websocket-url URL]
#                    [--permission-mode MODE] [--use-existing-crd] [--dry-run]
#   deploy/deploy.sh --no-operator [--namespace NS] [--use-existing-crd] [--dry-run]
#     --image IMAGE       the runner image (deploy/image/Dockerfile), e.g. REGISTRY/ccrunner:TAG;
#                         the operator runs from it and starts the sessions' Jobs with it
#     --websocket-url URL the platform backend every session streams to, ws:// or wss://,
#                         {namespace} and {name} standing for the session's (the operator's
#                         --websocket-url); default none
#     --permission-mode MODE  Claude Code's permission mode for every session (default
#                         the runner's, acceptEdits)
#     --no-operator       install no operator (one is installed some other way); without an
#                         operator, AgenticSessions in the namespace never run
#     --namespace NS      the sessions' namespace (default ccrunner)
#     --use-existing-crd  leave the cluster's AgenticSession CRD as it is, whoever installed it
#     --dry-run           print what would be applied, in order; needs no cluster and no kubectl
# The CRD agenticsessions.vteam.ambient-code has the name of the ambient-code platform's own:
# deploy.sh applies it only when the cluster has none or has ours (labelled
# app.kubernetes.io/part-of: ccrunner). Any other stops it with exit 1 before it applies
# anything; --use-existing-crd goes on without touching that CRD, and the operator works with
# the schema it finds.
# The CRD and the namespace are cluster-wide: the first run needs a cluster administrator.
# Exit codes: 0 ready (perhaps with a Langfuse warning); 1 a step failed or the CRD is not
# ours; 2 a wrong argument or no kubectl.
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
crd_name=agenticsessions.vteam.ambient-code
ns=ccrunner
image=""
ws_url=""
mode=""
operator=1
use_existing_crd=0
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --namespace) [ $# -ge 2 ] || die "--namespace needs a value"; ns=$2; shift ;;
    --namespace=*) ns=${1#*=} ;;
    --image) [ $# -ge 2 ] || die "--image needs a value"; image=$2; shift ;;
    --image=*) image=${1#*=} ;;
    --websocket-url) [ $# -ge 2 ] || die "--websocket-url needs a value"; ws_url=$2; shift ;;
    --websocket-url=*) ws_url=${1#*=} ;;
    --permission-mode) [ $# -ge 2 ] || die "--permission-mode needs a value"; mode=$2; shift ;;
    --permission-mode=*) mode=${1#*=} ;;
    --no-operator) operator=0 ;;
    --use-existing-crd) use_existing_crd=1 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) die "unknown argument '$1'; see deploy.sh --help" ;;
  esac
  shift
done
[[ $ns =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] && [ ${#ns} -le 63 ] ||
  die "namespace '$ns' is invalid: use at most 63 lowercase letters, digits and '-'"
if [ "$operator" -eq 1 ]; then
  [ -n "$image" ] ||
    die "--image IMAGE is required: the runner image, which the operator runs from (or --no-operator to install none)"
  # Goes into the manifest as is: an image reference's characters only, so nothing can
  # break out of its YAML string.
  if ! [[ $image =~ ^[A-Za-z0-9][A-Za-z0-9._/:@-]*$ && ${#image} -le 512 ]]; then
    die "image '${image//[[:cntrl:]]/?}' is invalid: expected REGISTRY/NAME:TAG or REGISTRY/NAME@sha256:DIGEST"
  fi
  # Both go into the manifest's YAML strings as they are: no quote, backslash or space.
  if [ -n "$ws_url" ] && ! [[ $ws_url =~ ^wss?://[^[:space:][:cntrl:]\"\\]+$ && ${#ws_url} -le 900 ]]; then
    die "--websocket-url '${ws_url//[[:cntrl:]]/?}' is invalid: expected ws://HOST/PATH or wss://HOST/PATH ({namespace} and {name} allowed)"
  fi
  case "$mode" in
    "" | default | acceptEdits | plan | bypassPermissions | dontAsk | auto) ;;
    *) die "--permission-mode '${mode//[[:cntrl:]]/?}' is invalid: use default, acceptEdits, plan, bypassPermissions, dontAsk or auto" ;;
  esac
elif [ -n "$image" ]; then
  die "--image and --no-operator exclude each other: the image is only the operator's"
elif [ -n "$ws_url$mode" ]; then
  die "--websocket-url and --permission-mode are the operator's: they need --image, not --no-operator"
fi
[ "$dry_run" -eq 1 ] || command -v kubectl >/dev/null ||
  die "kubectl not found; install it, or use --dry-run to see the manifests"

namespace_manifest() {
  printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels:\n    app.kubernetes.io/part-of: ccrunner\n' "$ns"
}
# substitute FILE PLACEHOLDER VALUE [PLACEHOLDER VALUE ...]: the file with every PLACEHOLDER
# replaced by its VALUE. The replacement is quoted: bash 5.2 would read an unquoted '&' in it
# as the match.
substitute() {
  local text
  text=$(<"$1")
  shift
  while [ $# -ge 2 ]; do
    text=${text//"$1"/"$2"}
    shift 2
  done
  printf '%s\n' "$text"
}
# rbac.yaml names the namespace once, in the RoleBinding's subject; operator.yaml names the
# image twice, the pod's and the Jobs', and the backend and permission mode once each.
# shellcheck disable=SC2016 # the placeholders themselves, not expansions
rbac_manifest() { substitute "$k8s/rbac.yaml" '${NAMESPACE}' "$ns"; }
# shellcheck disable=SC2016
operator_manifest() {
  substitute "$k8s/operator.yaml" '${IMAGE}' "$image" '${WEBSOCKET_URL}' "$ws_url" \
    '${PERMISSION_MODE}' "$mode"
}

# The labels of the CRD in kubectl's JSON ($1), as "key=value, ...". No JSON parser is needed:
# kubectl sorts keys, so metadata (and its labels) comes before "spec"; quotes inside
# annotation values are escaped, so "labels" and "spec" match only keys; label keys and
# values hold no quotes or braces.
crd_labels() {
  local meta=${1%%\"spec\"*} labels_re='"labels"[[:space:]]*:[[:space:]]*[{]([^}]*)[}]'
  local pair_re='"([^"]+)"[[:space:]]*:[[:space:]]*"([^"]*)"' rest out=""
  [[ $meta =~ $labels_re ]] || return 0
  rest=${BASH_REMATCH[1]}
  while [[ $rest =~ $pair_re ]]; do
    out+="${out:+, }${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"
    rest=${rest#*"${BASH_REMATCH[0]}"}
  done
  printf '%s' "$out"
}

if [ "$dry_run" -eq 1 ]; then
  show() { # show TITLE COMMAND, then the manifest on stdin
    printf -- '---\n# deploy.sh step %s\n# %s\n' "$1" "$2"
    cat
  }
  skip() { # skip TITLE WHY: a step that applies nothing, as comments (no empty document)
    printf -- '# deploy.sh step %s\n# %s\n' "$1" "$2"
  }
  echo "# deploy.sh --dry-run --namespace $ns: the manifests it would apply, in order"
  namespace_manifest | show "1/5: namespace" "kubectl apply -f -"
  if [ "$use_existing_crd" -eq 1 ]; then
    skip "2/5: AgenticSession CRD" "not applied (--use-existing-crd): the cluster's own $crd_name is used as it is"
  else
    show "2/5: AgenticSession CRD" "kubectl get crd $crd_name, then kubectl apply -f deploy/k8s/crd-agenticsession.yaml only if the cluster has none or ours (label app.kubernetes.io/part-of: ccrunner); any other stops deploy.sh" <"$k8s/crd-agenticsession.yaml"
  fi
  rbac_manifest | show "3/5: RBAC" "kubectl apply -n $ns -f - (deploy/k8s/rbac.yaml)"
  show "4/5: Langfuse configuration" "kubectl apply -n $ns (the ConfigMap); kubectl create -n $ns (the Secret, only when absent)" <"$k8s/langfuse-config.yaml"
  if [ "$operator" -eq 1 ]; then
    operator_manifest | show "5/5: operator" "kubectl apply -n $ns -f - (deploy/k8s/operator.yaml)"
  else
    skip "5/5: operator" "not installed (--no-operator): AgenticSessions in $ns do not run until an operator is"
  fi
  exit 0
fi

# The CRD is looked up before anything is applied, so that refusing a CRD that is not ours
# leaves the cluster as it was.
existing=$(kubectl get crd "$crd_name" --ignore-not-found -o json) ||
  fail "could not look up the CRD $crd_name (see kubectl's message above)"
if [ "$use_existing_crd" -eq 1 ]; then
  [ -n "$existing" ] || fail "--use-existing-crd, but the cluster has no CRD $crd_name; run without it to install ours"
elif [ -n "$existing" ]; then
  labels=$(crd_labels "$existing")
  [[ ", $labels," == *", app.kubernetes.io/part-of=ccrunner,"* ]] ||
    fail "the cluster has a CRD $crd_name that deploy.sh did not install (labels: ${labels:-none}; probably the ambient-code platform's); deploy.sh never replaces it: rerun with --use-existing-crd to use it as it is"
fi

echo "deploy: [1/5] namespace $ns" >&2
namespace_manifest | kubectl apply -f - || fail "could not create the namespace $ns (see kubectl's message above)"

if [ "$use_existing_crd" -eq 1 ]; then
  echo "deploy: [2/5] AgenticSession CRD: the cluster's own, left as it is (--use-existing-crd)" >&2
else
  echo "deploy: [2/5] AgenticSession CRD" >&2
  kubectl apply -f "$k8s/crd-agenticsession.yaml" ||
    fail "could not apply the AgenticSession CRD; a cluster administrator must run this once"
fi

echo "deploy: [3/5] RBAC" >&2
rbac_manifest | kubectl apply -n "$ns" -f - || fail "could not apply deploy/k8s/rbac.yaml in $ns"

echo "deploy: [4/5] Langfuse configuration" >&2
langfuse_ok=1
kubectl apply -n "$ns" -f "$k8s/langfuse-config.yaml" -l app.kubernetes.io/component=langfuse-config || langfuse_ok=0
if [ "$langfuse_ok" -eq 1 ] && ! kubectl get secret langfuse-keys -n "$ns" >/dev/null 2>&1; then
  kubectl create --save-config -n "$ns" -f "$k8s/langfuse-config.yaml" -l app.kubernetes.io/component=langfuse-keys || langfuse_ok=0
  [ "$langfuse_ok" -eq 0 ] || echo "deploy: fill the Langfuse keys in the Secret langfuse-keys (deploy/README.md, \"Langfuse keys\")" >&2
fi
if [ "$langfuse_ok" -eq 0 ]; then
  echo "deploy: warning: the Langfuse configuration was not applied in $ns; sessions run untraced until it is (deploy/README.md)" >&2
fi

if [ "$operator" -eq 0 ]; then
  echo "deploy: [5/5] operator: not installed (--no-operator); AgenticSessions in $ns do not run until an operator is" >&2
  echo "deploy: namespace $ns is ready for ccrunner Jobs" >&2
  exit 0
fi
echo "deploy: [5/5] operator ($image)" >&2
operator_manifest | kubectl apply -n "$ns" -f - || fail "could not apply deploy/k8s/operator.yaml in $ns"
echo "deploy: namespace $ns is ready: AgenticSessions applied there run as Jobs (kubectl -n $ns rollout status deployment/ccoperator)" >&2
