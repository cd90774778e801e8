/*
 * spec.c - an AgenticSession's spec, in either shape, as the runner's settings.
 *
 * Where the two shapes name the same thing differently, the seed's name wins when both are
 * present (spec.prompt over spec.initialPrompt, repos[].url over repos[].input.url): a
 * session written for one shape never sets the other's field by accident. Numbers may come
 * as JSON integers or as strings of digits (kubectl users write both). Nothing here can
 * reach the Langfuse keys or the credentials: co_env_reserved() is the one list of what a
 * session's environmentVariables may not set.
 */
#include "spec.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A one-line error, always returning -1. */
__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

/* spec.<name> as a string: a JSON string, or absent ("" then). */
static int get_string(const json_t *obj, const char *key, const char *field, char **out, char *err,
                      size_t errlen)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (v && !json_is_string(v) && !json_is_null(v))
        return fail(err, errlen, "%s must be a string", field);
    *out = dup_or_empty(json_is_string(v) ? json_string_value(v) : NULL);
    return *out ? 0 : fail(err, errlen, "%s: out of memory", field);
}

/* spec.<name> as a count of seconds: a non-negative integer, or a string of digits. */
static int get_seconds(const json_t *obj, const char *key, const char *field, char **out, char *err,
                       size_t errlen)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    char buf[24] = "";
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    } else if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < 20 &&
               strspn(json_string_value(v), "0123456789") == json_string_length(v)) {
        snprintf(buf, sizeof buf, "%s", json_string_value(v));
    } else if (v && !json_is_null(v)) {
        return fail(err, errlen, "%s must be a whole number of seconds", field);
    }
    *out = strdup(buf);
    return *out ? 0 : fail(err, errlen, "%s: out of memory", field);
}

/* Appends name to a comma-separated list, silently stopping at the buffer's end (a log
 * line, not data). */
static void note(char *list, size_t cap, const char *name)
{
    size_t n = strlen(list);
    if (strstr(list, name)) return;
    snprintf(list + n, cap - n, "%s%s", n ? ", " : "", name);
}

bool co_env_reserved(const char *name)
{
    static const char *const exact[] = {
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "BOT_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "GOOGLE_APPLICATION_CREDENTIALS",
    };
    if (strncmp(name, "LANGFUSE_", 9) == 0) return true;
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++)
        if (strcmp(name, exact[i]) == 0) return true;
    return false;
}

/* A name a shell and Kubernetes both take: [A-Za-z_][A-Za-z0-9_]*, at most 255 bytes. */
static bool env_name_ok(const char *s)
{
    if (!*s || strlen(s) > 255 || isdigit((unsigned char)*s)) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_') return false;
    return true;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int read_env(const json_t *spec, struct co_settings *out, char *err, size_t errlen)
{
    const json_t *vars = json_object_get(spec, "environmentVariables");
    out->env = json_array();
    if (!out->env) return fail(err, errlen, "%s: out of memory", "spec.environmentVariables");
    if (!vars || json_is_null(vars)) return 0;
    if (!json_is_object(vars))
        return fail(err, errlen, "%s must be a map of names to strings",
                    "spec.environmentVariables");
    /* jansson iterates in insertion order; sorted names make the Job the same whatever
     * order the API server returned the map in. */
    const char **names = calloc(json_object_size(vars) + 1, sizeof *names);
    if (!names) return fail(err, errlen, "%s: out of memory", "spec.environmentVariables");
    size_t n = 0;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)vars, k, v) names[n++] = k;
    qsort(names, n, sizeof *names, by_name);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        v = json_object_get(vars, names[i]);
        if (!env_name_ok(names[i]) || co_env_reserved(names[i]) || !json_is_string(v)) {
            note(out->refused, sizeof out->refused, names[i]);
            continue;
        }
        if (json_array_append_new(
                out->env, json_pack("{s:s, s:s}", "name", names[i], "value", json_string_value(v))))
            rc = fail(err, errlen, "%s: out of memory", "spec.environmentVariables");
    }
    free(names);
    return rc;
}

/* A URL or branch goes into a "URL BRANCH" line that a shell `read` splits: no whitespace
 * inside, no newline, not empty for a URL. */
static bool word_ok(const char *s)
{
    for (; *s; s++)
        if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s)) return false;
    return true;
}

static int read_repos(const json_t *spec, struct co_settings *out, char *err, size_t errlen)
{
    const json_t *repos = json_object_get(spec, "repos");
    size_t cap = 1, len = 0, i;
    const json_t *r;
    if (repos && !json_is_null(repos) && !json_is_array(repos))
        return fail(err, errlen, "%s must be a list", "spec.repos");
    json_array_foreach(repos, i, r)
    {
        const json_t *in = json_object_get(r, "input"); /* the platform's shape */
        const char *url = json_string_value(json_object_get(r, "url"));
        const char *branch = json_string_value(json_object_get(r, "branch"));
        if (!url && json_is_object(in)) {
            url = json_string_value(json_object_get(in, "url"));
            branch = json_string_value(json_object_get(in, "branch"));
        }
        if (!json_is_object(r) || !url || !*url || !word_ok(url) || (branch && !word_ok(branch))) {
            snprintf(err, errlen,
                     "spec.repos[%zu] needs a url (or input.url) and an optional branch, "
                     "without spaces",
                     i);
            return -1;
        }
        if (json_object_get(r, "autoPush") || json_object_get(r, "output"))
            note(out->ignored, sizeof out->ignored, "spec.repos[].autoPush/output");
        cap += strlen(url) + (branch ? strlen(branch) + 1 : 0) + 1;
    }
    out->repos = malloc(cap);
    if (!out->repos) return fail(err, errlen, "%s: out of memory", "spec.repos");
    out->repos[0] = '\0';
    json_array_foreach(repos, i, r)
    {
        const json_t *in = json_object_get(r, "input");
        const char *url = json_string_value(json_object_get(r, "url"));
        const char *branch = json_string_value(json_object_get(r, "branch"));
        if (!url) {
            url = json_string_value(json_object_get(in, "url"));
            branch = json_string_value(json_object_get(in, "branch"));
        }
        len += (size_t)snprintf(out->repos + len, cap - len, "%s%s%s%s", len ? "\n" : "", url,
                                branch && *branch ? " " : "", branch ? branch : "");
    }
    return 0;
}

int co_settings_read(const json_t *session, struct co_settings *out, char *err, size_t errlen)
{
    static const char *const unused[] = {"displayName",      "activeWorkflow", "autoPushOnComplete",
                                         "mcpServers",       "workflows",      "project",
                                         "resourceOverrides"};
    memset(out, 0, sizeof *out);
    const json_t *spec = json_object_get(session, "spec");
    if (!json_is_object(spec)) {
        fail(err, errlen, "%s is missing or not an object", "spec");
        goto fail;
    }
    const json_t *llm = json_object_get(spec, "llmSettings");
    const json_t *user = json_object_get(spec, "userContext");
    if ((llm && !json_is_object(llm) && !json_is_null(llm)) ||
        (user && !json_is_object(user) && !json_is_null(user))) {
        fail(err, errlen, "%s must be objects", "spec.llmSettings and spec.userContext");
        goto fail;
    }
    const char *prompt_key = json_object_get(spec, "prompt") ? "prompt" : "initialPrompt";
    char field[32];
    snprintf(field, sizeof field, "spec.%s", prompt_key);
    if (get_string(spec, prompt_key, field, &out->prompt, err, errlen) ||
        get_seconds(spec, "timeout", "spec.timeout", &out->timeout, err, errlen) ||
        get_seconds(spec, "inactivityTimeout", "spec.inactivityTimeout", &out->idle_timeout, err,
                    errlen) ||
        get_string(json_is_object(llm) ? llm : NULL, "model", "spec.llmSettings.model", &out->model,
                   err, errlen) ||
        get_string(json_is_object(user) ? user : NULL, "userId", "spec.userContext.userId",
                   &out->user_id, err, errlen) ||
        get_string(json_is_object(user) ? user : NULL, "displayName",
                   "spec.userContext.displayName", &out->user_name, err, errlen) ||
        read_repos(spec, out, err, errlen) || read_env(spec, out, err, errlen))
        goto fail;

    const json_t *inter = json_object_get(spec, "interactive");
    if (inter && !json_is_boolean(inter) && !json_is_null(inter)) {
        fail(err, errlen, "%s must be true or false", "spec.interactive");
        goto fail;
    }
    out->interactive = strdup(json_is_true(inter) ? "true" : "false");
    if (!out->interactive) {
        fail(err, errlen, "%s: out of memory", "spec");
        goto fail;
    }
    if (!json_is_true(inter) && !out->prompt[0]) {
        fail(err, errlen, "%s",
             "a batch session needs spec.prompt (or spec.initialPrompt); set it, or set "
             "spec.interactive: true");
        goto fail;
    }
    for (size_t i = 0; i < sizeof unused / sizeof *unused; i++)
        if (json_object_get(spec, unused[i])) {
            snprintf(field, sizeof field, "spec.%s", unused[i]);
            note(out->ignored, sizeof out->ignored, field);
        }
    if (json_is_object(llm) &&
        (json_object_get(llm, "temperature") || json_object_get(llm, "maxTokens")))
        note(out->ignored, sizeof out->ignored, "spec.llmSettings.temperature/maxTokens");
    return 0;
fail:
    co_settings_clear(out);
    return -1;
}

void co_settings_clear(struct co_settings *s)
{
    if (!s) return;
    free(s->prompt);
    free(s->interactive);
    free(s->timeout);
    free(s->idle_timeout);
    free(s->model);
    free(s->user_id);
    free(s->user_name);
    free(s->repos);
    json_decref(s->env);
    memset(s, 0, sizeof *s);
}
