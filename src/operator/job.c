/*
 * job.c - the runner Job, from the one template render-job.sh also fills.
 *
 * render-job.sh substitutes ${NAME} placeholders as whole YAML values (each value written
 * as a double-quoted string), so here a placeholder is a string value that is exactly
 * "${NAME}" for a known NAME, and it becomes the value as a string. A known placeholder
 * inside a longer string would be substituted by envsubst but not here: the template may
 * not have one, and fill() refuses it rather than let the two renderings differ (a unit
 * test runs the real template). Other "${...}" (the clone script's shell expansions) are
 * left alone, as envsubst, given the list of names, leaves them.
 */
#include "job.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "yaml.h"

extern const char co_job_template_text[];
extern const size_t co_job_template_len;

int co_job_name(const char *session, char *out, size_t cap)
{
    if (strlen(session) + 4 > CO_JOB_NAME_MAX || cap < CO_JOB_NAME_MAX + 1) return -1;
    snprintf(out, cap, "%s-job", session);
    return 0;
}

const json_t *co_job_template(char *err, size_t errlen)
{
    static json_t *tpl; /* parsed once; the operator is single-threaded */
    if (!tpl) tpl = co_yaml_load(co_job_template_text, co_job_template_len, err, errlen);
    return tpl;
}

struct placeholder {
    const char *name;
    const char *value;
};

/* Replaces every whole-string placeholder in v, recursively. -1 (err set) on a known
 * placeholder inside a longer string. */
static int fill(json_t *v, const struct placeholder *ph, size_t n, char *err, size_t errlen)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        for (size_t i = 0; i < n; i++) {
            char whole[64];
            snprintf(whole, sizeof whole, "${%s}", ph[i].name);
            if (strcmp(s, whole) == 0) return json_string_set(v, ph[i].value) ? -1 : 0;
            if (strstr(s, whole)) {
                snprintf(err, errlen,
                         "the Job template has %s inside a longer value; placeholders must be "
                         "whole values",
                         whole);
                return -1;
            }
        }
        return 0;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) if (fill(x, ph, n, err, errlen)) return -1;
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) if (fill(x, ph, n, err, errlen)) return -1;
    }
    return 0;
}

/* The container named "runner" of the Job's Pod template (borrowed), or NULL. */
static bool named(const json_t *v, const char *name)
{
    const char *n = json_string_value(json_object_get(v, "name"));
    return n && strcmp(n, name) == 0;
}

static json_t *runner_container(json_t *job)
{
    json_t *pod = json_object_get(json_object_get(job, "spec"), "template");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(json_object_get(pod, "spec"), "containers"), i,
                       c) if (named(c, "runner")) return c;
    return NULL;
}

static bool has_env(const json_t *env, const char *name)
{
    size_t i;
    const json_t *e;
    json_array_foreach(env, i, e) if (named(e, name)) return true;
    return false;
}

/*
 * The template's placeholders, replaced in expand_url(). Names are safe in a URL as they
 * are: a namespace and a session's name are DNS labels or subdomains (lowercase letters,
 * digits, '-' and '.').
 */
static const char *const url_vars[] = {"{namespace}", "{name}"};

const char *co_job_check_websocket_url(const char *tpl)
{
    if (strncmp(tpl, "ws://", 5) && strncmp(tpl, "wss://", 6))
        return "must start with ws:// or wss://";
    for (const char *p = strchr(tpl, '{'); p; p = strchr(p + 1, '{')) {
        bool known = false;
        for (size_t i = 0; i < sizeof url_vars / sizeof *url_vars; i++)
            known |= !strncmp(p, url_vars[i], strlen(url_vars[i]));
        if (!known) return "knows only the placeholders {namespace} and {name}";
    }
    return NULL;
}

/* tpl with {namespace} and {name} replaced; -1 when it does not fit out. */
static int expand_url(const char *tpl, const char *ns, const char *name, char *out, size_t cap)
{
    size_t n = 0;
    while (*tpl) {
        const char *put = NULL;
        size_t skip = 1;
        if (!strncmp(tpl, url_vars[0], strlen(url_vars[0])))
            put = ns, skip = strlen(url_vars[0]);
        else if (!strncmp(tpl, url_vars[1], strlen(url_vars[1])))
            put = name, skip = strlen(url_vars[1]);
        size_t len = put ? strlen(put) : 1;
        if (n + len >= cap) return -1;
        memcpy(out + n, put ? put : tpl, len);
        n += len;
        tpl += skip;
    }
    out[n] = '\0';
    return 0;
}

json_t *co_job_build(const json_t *session, const struct co_settings *s,
                     const struct co_job_opts *o, char *refused, size_t refcap, char *err,
                     size_t errlen)
{
    const json_t *meta = json_object_get(session, "metadata");
    const char *name = json_string_value(json_object_get(meta, "name"));
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    const char *uid = json_string_value(json_object_get(meta, "uid"));
    const char *api = json_string_value(json_object_get(session, "apiVersion"));
    char job_name[CO_JOB_NAME_MAX + 1];
    err[0] = '\0';
    if (!name || !ns || !uid) {
        snprintf(err, errlen, "the session has no metadata.name, namespace or uid");
        return NULL;
    }
    if (co_job_name(name, job_name, sizeof job_name)) {
        snprintf(err, errlen,
                 "the session's name is %zu characters; its Job \"<name>-job\" needs at most 59",
                 strlen(name));
        return NULL;
    }
    const json_t *tpl = co_job_template(err, errlen);
    if (!tpl) return NULL;
    char ws_url[1024] = "";
    if (o->websocket_url && *o->websocket_url &&
        expand_url(o->websocket_url, ns, name, ws_url, sizeof ws_url)) {
        snprintf(err, errlen, "the WebSocket URL for this session is over %zu bytes",
                 sizeof ws_url - 1);
        return NULL;
    }
    const struct placeholder ph[] = {
        {"JOB_NAME", job_name},
        {"SESSION_NAME", name},
        {"IMAGE", o->image},
        {"INITIAL_PROMPT", s->prompt},
        {"INTERACTIVE", s->interactive},
        {"TIMEOUT", s->timeout},
        {"IDLE_TIMEOUT", s->idle_timeout},
        {"LLM_MODEL", s->model},
        {"PERMISSION_MODE", o->permission_mode ? o->permission_mode : ""},
        {"USER_ID", s->user_id},
        {"USER_NAME", s->user_name},
        {"WEBSOCKET_URL", ws_url},
        {"SESSION_REPOS", s->repos},
        {"ANTHROPIC_SECRET", o->anthropic_secret},
        {"BOT_TOKEN_SECRET", o->bot_token_secret},
    };
    json_t *job = json_deep_copy(tpl);
    if (!job || fill(job, ph, sizeof ph / sizeof *ph, err, errlen)) goto fail;

    json_t *jmeta = json_object_get(job, "metadata");
    if (!json_is_object(jmeta) || json_object_set_new(jmeta, "namespace", json_string(ns)) ||
        json_object_set_new(jmeta, "ownerReferences",
                            json_pack("[{s:s, s:s, s:s, s:s, s:b, s:b}]", "apiVersion",
                                      api ? api : "vteam.ambient-code/v1alpha1", "kind",
                                      "AgenticSession", "name", name, "uid", uid, "controller", 1,
                                      "blockOwnerDeletion", 1)))
        goto fail;

    json_t *runner = runner_container(job);
    json_t *env = json_object_get(runner, "env");
    if (!json_is_array(env)) {
        snprintf(err, errlen, "the Job template has no container \"runner\" with an env list");
        goto fail;
    }
    size_t i;
    json_t *e;
    json_array_foreach(s->env, i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        if (has_env(env, n)) {
            size_t len = strlen(refused);
            snprintf(refused + len, refcap - len, "%s%s", len ? ", " : "", n);
        } else if (json_array_append_new(env, json_deep_copy(e))) {
            goto fail;
        }
    }
    return job;
fail:
    if (!err[0]) snprintf(err, errlen, "out of memory building the Job");
    json_decref(job);
    return NULL;
}
