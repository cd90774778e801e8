#!/usr/bin/env bash
# Prints the runner Job of one session: deploy/k8s/runner-job.template.yaml with its
# ${NAME} placeholders filled from the environment. Every value is written as a YAML
# double-quoted string, so a prompt with quotes, colons or newlines, or a value such as
# "true", stays one string; envsubst replaces only the names listed here, in one pass, so
# a "$" inside a value is never expanded.
#
#   SESSION_NAME=fix-1 IMAGE=REGISTRY/ccrunner:TAG INITIAL_PROMPT="Fix the test" \
#     deploy/render-job.sh | kubectl -n NS apply -f -
#
# Variables (empty means unset for ccrunner):
#   SESSION_NAME      required; the AgenticSession's name (SESSION_ID): at most 59 lowercase
#                     letters, digits and '-'. The Job is SESSION_NAME-job, the name
#                     ccoperator gives a session's Job.
#   IMAGE             required; the runner image (deploy/image/Dockerfile)
#   INITIAL_PROMPT    the first prompt; required by ccrunner unless INTERACTIVE=true
#   INTERACTIVE       true or false (default false)
#   TIMEOUT           whole-session limit in seconds (default none)
#   IDLE_TIMEOUT      an interactive session's idle limit in seconds (default ccrunner's)
#   LLM_MODEL, PERMISSION_MODE, USER_ID, USER_NAME, WEBSOCKET_URL   as in ccrunner --help
#   SESSION_REPOS     repositories to clone into the workspace, one "URL [BRANCH]" a line
#   ANTHROPIC_SECRET  the Secret holding ANTHROPIC_API_KEY (default anthropic-api-key)
#   BOT_TOKEN_SECRET  the Secret holding BOT_TOKEN (default ccrunner-bot-token; optional)
set -euo pipefail

die() {
  echo "render-job: error: $*" >&2
  exit 2
}
case "${1:-}" in
  -h | --help)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
    exit 0
    ;;
  "") ;;
  *) die "unexpected argument '$1'; values come from the environment (see --help)" ;;
esac
command -v envsubst >/dev/null || die "envsubst not found; install it (Debian: gettext-base)"
template="$(dirname "$0")/k8s/runner-job.template.yaml"

# The Job is named <session>-job; a Job's name must fit in a 63-character label (its pods
# carry it in the job-name label), which leaves 59 for the session.
[ -n "${SESSION_NAME:-}" ] || die "SESSION_NAME is not set; set it to the AgenticSession's name"
[[ ${SESSION_NAME} =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] && [ ${#SESSION_NAME} -le 59 ] ||
  die "SESSION_NAME=$SESSION_NAME is invalid: use at most 59 lowercase letters, digits and '-'"
[ -n "${IMAGE:-}" ] || die "IMAGE is not set; set it to the runner image, e.g. REGISTRY/ccrunner:TAG"
# shellcheck disable=SC2034 # read through ${!n} below, like every placeholder
JOB_NAME="$SESSION_NAME-job"
: "${INTERACTIVE:=false}" "${ANTHROPIC_SECRET:=anthropic-api-key}" "${BOT_TOKEN_SECRET:=ccrunner-bot-token}"

# YAML double-quoted scalar of variable $1, in REPLY: escape backslash, quote, newline, CR
# and tab; refuse the other control characters, which no prompt needs and YAML rejects.
quote() {
  local s=${!1:-}
  [[ ! ${s//[$'\n\r\t']/} =~ [[:cntrl:]] ]] || die "$1 contains a control character"
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  REPLY="\"$s\""
}

names=(JOB_NAME SESSION_NAME IMAGE INITIAL_PROMPT INTERACTIVE TIMEOUT IDLE_TIMEOUT LLM_MODEL
  PERMISSION_MODE USER_ID USER_NAME WEBSOCKET_URL SESSION_REPOS ANTHROPIC_SECRET BOT_TOKEN_SECRET)
format=""
for n in "${names[@]}"; do
  quote "$n"
  export "$n=$REPLY"
  format+="\${$n} "
done
envsubst "$format" <"$template"
