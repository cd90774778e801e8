/*
 * The runner Job of one AgenticSession. Its shape is deploy/k8s/runner-job.template.yaml,
 * compiled in (embed.cmake) and filled with the same placeholders deploy/render-job.sh
 * fills, so that the two cannot drift; then this file adds what only an operator knows:
 * the namespace, the owner reference (deleting the session deletes the Job, and its Pod
 * gets SIGTERM) and the session's own environmentVariables.
 */
#ifndef CO_JOB_H
#define CO_JOB_H

#include <jansson.h>
#include <stddef.h>

#include "spec.h"

/* The operator's side of a Job: strings borrowed for the call. */
struct co_job_opts {
    const char *image;            /* the runner image */
    const char *anthropic_secret; /* the Secret holding ANTHROPIC_API_KEY */
    const char *bot_token_secret; /* the Secret holding BOT_TOKEN */
    /* The backend's WebSocket URL for every runner, "{namespace}" and "{name}" standing for
     * the session's; NULL or "": the runners stream to stdout only. */
    const char *websocket_url;
    const char *permission_mode; /* Claude Code's, for every runner; NULL: the runner's */
};

/* Whether a --websocket-url template is usable: ws:// or wss://, placeholders known. NULL,
 * or why not. */
const char *co_job_check_websocket_url(const char *tpl);

/* A Job's name must fit a 63-character label (job-name on its Pod): "<session>-job". */
#define CO_JOB_NAME_MAX 63

/* Writes "<session>-job" into out (at least CO_JOB_NAME_MAX + 1 bytes). -1 when the
 * session's name is too long for it (over 59 characters). */
int co_job_name(const char *session, char *out, size_t cap);

/* The Job for session (borrowed) with settings s, a new object the caller frees; NULL with
 * one line in err. Environment variables of s->env that the Job already sets are not added,
 * and are appended to refused (comma-separated, for the log). */
json_t *co_job_build(const json_t *session, const struct co_settings *s,
                     const struct co_job_opts *o, char *refused, size_t refcap, char *err,
                     size_t errlen);

/* The embedded template, parsed once (borrowed; NULL with err if it does not parse). */
const json_t *co_job_template(char *err, size_t errlen);

#endif
