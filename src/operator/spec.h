/*
 * What an AgenticSession asks for, read from either shape people write: the seed's
 * (spec.prompt, interactive, timeout, repos[].url/branch, llmSettings.model) and the
 * ambient-code platform's (spec.initialPrompt, userContext.userId/displayName,
 * inactivityTimeout, environmentVariables, repos[].input.url/branch, displayName). Each
 * field becomes one of the runner's variables (SPEC, "Running it"); what has no runner
 * variable is listed in `ignored`, for the log. Pure: no I/O.
 */
#ifndef CO_SPEC_H
#define CO_SPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The runner's settings for one session. Every string is owned by the struct ("" when
 * unset: the Job then carries an empty value, which the runner reads as unset, exactly as
 * render-job.sh writes it). Free with co_settings_clear. */
struct co_settings {
    char *prompt;       /* INITIAL_PROMPT */
    char *interactive;  /* INTERACTIVE: "true" or "false" */
    char *timeout;      /* TIMEOUT, seconds */
    char *idle_timeout; /* IDLE_TIMEOUT, seconds */
    char *model;        /* LLM_MODEL */
    char *user_id;      /* USER_ID */
    char *user_name;    /* USER_NAME */
    char *repos;        /* SESSION_REPOS: one "URL [BRANCH]" a line */
    json_t *env;        /* spec.environmentVariables kept: [{"name","value"}], in name order */
    char ignored[256];  /* spec fields read but not used, comma-separated, for the log */
    char refused[256];  /* environmentVariables refused (credentials, Langfuse, bad names) */
};

/* Reads session (an AgenticSession object, borrowed) into out. Returns 0, or -1 with one
 * line in err naming the field (a wrong type, a batch session without a prompt, a repo
 * without a URL, a newline in a URL): the session then fails with that message. */
int co_settings_read(const json_t *session, struct co_settings *out, char *err, size_t errlen);
void co_settings_clear(struct co_settings *s); /* NULL-safe; leaves *s zeroed */

/* True for an environment variable a session may not set: the Langfuse keys (LANGFUSE_*),
 * and the model, cloud and backend credentials. (Names the Job itself sets are refused by
 * co_job_build, which knows them.) */
bool co_env_reserved(const char *name);

#endif
