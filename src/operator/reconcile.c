/*
 * reconcile.c - the operator's loop (the guarantees are in reconcile.h).
 *
 * Three caches, filled by list + watch: AgenticSessions, the runner Jobs and their Pods
 * (both selected by the template's label app.kubernetes.io/component=runner). A watch
 * resumes from the last resourceVersion seen; when it ends it is reopened from there, and
 * when the API server says that version is gone (410, or an ERROR event) the kind is listed
 * again. Every change marks the session it concerns "dirty"; dirty sessions are decided
 * (status.c) only once all three caches are listed, so that a Job is never created for want
 * of having seen it. Every ten seconds every unfinished session is looked at again: that
 * is how a Pod that never starts reaches its deadline.
 *
 * API errors are retried per session with backoff doubling from 0.5 s to 30 s; a list or
 * watch that fails is retried the same way. Requests are bounded (REQUEST_MS): the loop,
 * and so /healthz, never waits on a dead API server for longer.
 */
#include "reconcile.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "spec.h"
#include "status.h"

#define REQUEST_MS 10000
#define RESYNC_MS 10000
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define CONFLICT_RETRIES 5
#define RUNNER_SELECTOR "labelSelector=app.kubernetes.io%2Fcomponent%3Drunner"
#define SESSION_LABEL "vteam.ambient-code/agentic-session"

int64_t co_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One kind's cache: every object by "namespace/name". */
struct cache {
    const char *kind; /* for logs: "AgenticSession", "Job", "Pod" */
    char path[256];   /* the collection, with the selector if any */
    json_t *items;    /* "ns/name" -> object */
    char rv[64];      /* resourceVersion to watch from; "" until listed */
    struct co_watch *watch;
    int64_t opened_ms; /* when watch was opened */
    bool listed;       /* listed since the last 410 or start */
    int64_t retry_at;  /* CLOCK_MONOTONIC ms before which not to list/watch again */
    int backoff_ms;
};

/* A session's retry state, by "ns/name" in op->retries: {"at": ms, "backoff": ms}. */
struct op {
    struct co_kube *k;
    const struct co_operator_opts *o;
    struct cache sessions, jobs, pods;
    json_t *dirty;            /* "ns/name" -> true: sessions to decide */
    json_t *retries;          /* "ns/name" -> {"at", "backoff", "conflicts"} */
    bool keep_retry;          /* the session being decided set its retry state: keep it */
    struct co_liveness *live; /* beaten per loop turn and per session decided */
    json_t *pod_index;        /* pods_by_job(), during a pass over many sessions; else NULL */
    int64_t resync_at;
};

static const char *meta_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

static void key_of(const json_t *obj, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", meta_str(obj, "namespace") ? meta_str(obj, "namespace") : "",
             meta_str(obj, "name") ? meta_str(obj, "name") : "");
}

/*
 * What is kept of a Job or Pod: the metadata that names and links it, and its status, which
 * is all that the decisions (status.c) and pod_of() read. Its spec and managedFields, most
 * of its bytes, are let go: a whole Job and Pod cost about 63 KiB of memory per session.
 * The values are shared with `obj`, not copied.
 */
static json_t *slim(const json_t *obj)
{
    static const char *const keep[] = {"name",
                                       "namespace",
                                       "uid",
                                       "labels",
                                       "ownerReferences",
                                       "creationTimestamp",
                                       "resourceVersion",
                                       "deletionTimestamp"};
    const json_t *meta = json_object_get(obj, "metadata");
    json_t *out = json_object(), *m = json_object();
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        json_t *v = json_object_get(meta, keep[i]);
        if (v) json_object_set(m, keep[i], v);
    }
    json_object_set_new(out, "metadata", m);
    json_t *st = json_object_get(obj, "status");
    if (st) json_object_set(out, "status", st);
    return out;
}

/* Puts an object into its cache under key: a session whole, a Job or Pod slimmed. */
static void cache_put(struct op *op, struct cache *c, json_t *items, const char *key, json_t *obj)
{
    if (c == &op->sessions)
        json_object_set(items, key, obj);
    else
        json_object_set_new(items, key, slim(obj));
}

/* The session a Job or Pod belongs to, by its label (both carry the template's). */
static void mark_owner(struct op *op, const json_t *obj)
{
    const char *ns = meta_str(obj, "namespace");
    const char *s = json_string_value(json_object_get(
        json_object_get(json_object_get(obj, "metadata"), "labels"), SESSION_LABEL));
    char key[512];
    if (!ns || !s) return;
    snprintf(key, sizeof key, "%s/%s", ns, s);
    json_object_set_new(op->dirty, key, json_true());
}

static void mark(struct op *op, struct cache *c, const json_t *obj)
{
    char key[512];
    if (c == &op->sessions) {
        key_of(obj, key, sizeof key);
        json_object_set_new(op->dirty, key, json_true());
    } else {
        mark_owner(op, obj);
    }
}

static void backoff(struct cache *c)
{
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (c->backoff_ms > BACKOFF_MAX_MS) c->backoff_ms = BACKOFF_MAX_MS;
    c->retry_at = co_mono_ms() + c->backoff_ms;
}

/* Lists c whole (following "continue"), replaces its items, marks what changed. */
static int list(struct op *op, struct cache *c)
{
    json_t *items = json_object();
    char path[1024], cont[512] = "";
    const char *rv = NULL;
    struct co_response r = {0};
    for (;;) {
        snprintf(path, sizeof path, "%s%slimit=500%s%s", c->path, strchr(c->path, '?') ? "&" : "?",
                 cont[0] ? "&continue=" : "", cont);
        if (co_kube_request(op->k, "GET", path, NULL, NULL, REQUEST_MS, &r) || r.status != 200 ||
            !json_is_array(json_object_get(r.body, "items"))) {
            co_log("listing %ss failed: %s%s (HTTP %ld); retrying", c->kind, r.err,
                   r.err[0] ? "" : "unexpected answer", r.status);
            goto fail;
        }
        size_t i;
        json_t *it;
        json_array_foreach(json_object_get(r.body, "items"), i, it)
        {
            char key[512];
            /* A list's items carry neither kind nor apiVersion; the status update needs them. */
            if (c == &op->sessions) {
                json_object_set_new(it, "kind", json_string("AgenticSession"));
                json_object_set_new(it, "apiVersion", json_string("vteam.ambient-code/v1alpha1"));
            }
            key_of(it, key, sizeof key);
            cache_put(op, c, items, key, it);
        }
        rv = json_string_value(
            json_object_get(json_object_get(r.body, "metadata"), "resourceVersion"));
        snprintf(c->rv, sizeof c->rv, "%s", rv ? rv : "");
        const char *next =
            json_string_value(json_object_get(json_object_get(r.body, "metadata"), "continue"));
        if (!next || !*next) break;
        if (strlen(next) >= sizeof cont) { /* not expected from any API server */
            co_log("listing %ss failed: a continue token of %zu bytes", c->kind, strlen(next));
            goto fail;
        }
        snprintf(cont, sizeof cont, "%s", next);
        co_response_clear(&r);
    }
    co_response_clear(&r);
    /* Whatever was there before or is there now may have changed while we were not
     * watching. */
    const char *key;
    json_t *v;
    json_object_foreach(c->items, key, v) mark(op, c, v);
    json_object_foreach(items, key, v) mark(op, c, v);
    json_decref(c->items);
    c->items = items;
    c->listed = true;
    c->backoff_ms = 0;
    return 0;
fail:
    co_response_clear(&r);
    json_decref(items);
    backoff(c);
    return -1;
}

static void open_watch(struct op *op, struct cache *c)
{
    char path[1024], err[256];
    /* Servers end a watch after timeoutSeconds; 5 to 10 minutes, spread as client-go does,
     * so that many operators do not all come back at once. */
    snprintf(path, sizeof path,
             "%s%swatch=1&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%d", c->path,
             strchr(c->path, '?') ? "&" : "?", c->rv, 300 + rand() % 300);
    c->watch = co_watch_open(op->k, path, c, err, sizeof err);
    c->opened_ms = co_mono_ms();
    if (!c->watch) {
        co_log("watching %ss failed: %s; retrying", c->kind, err);
        backoff(c);
    }
}

/* One watch event into its cache. */
static void apply_event(struct op *op, struct cache *c, json_t *ev)
{
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *obj = json_object_get(ev, "object");
    const char *rv = meta_str(obj, "resourceVersion");
    char key[512];
    if (!type || !json_is_object(obj)) return;
    if (!strcmp(type, "ERROR")) {
        long code = (long)json_integer_value(json_object_get(obj, "code"));
        const char *msg = json_string_value(json_object_get(obj, "message"));
        co_log("the %s watch ended: %s (%ld)%s", c->kind, msg ? msg : "error", code,
               code == 410 ? "; listing again" : "");
        if (code == 410) c->listed = false;
        co_watch_close(c->watch);
        c->watch = NULL;
        if (code != 410) backoff(c);
        return;
    }
    if (rv) snprintf(c->rv, sizeof c->rv, "%s", rv);
    if (!strcmp(type, "BOOKMARK")) return;
    key_of(obj, key, sizeof key);
    if (c == &op->sessions) {
        json_object_set_new(obj, "kind", json_string("AgenticSession"));
        if (!json_object_get(obj, "apiVersion"))
            json_object_set_new(obj, "apiVersion", json_string("vteam.ambient-code/v1alpha1"));
    }
    if (!strcmp(type, "DELETED")) {
        json_object_del(c->items, key);
        if (c == &op->sessions) json_object_del(op->retries, key);
    } else {
        cache_put(op, c, c->items, key, obj);
    }
    mark(op, c, obj);
}

/* The job a Pod belongs to, "ns/job", from its label; false when it has none. */
static bool pod_job_key(const json_t *p, char *out, size_t cap)
{
    const char *n = meta_str(p, "namespace");
    const char *j = json_string_value(
        json_object_get(json_object_get(json_object_get(p, "metadata"), "labels"), "job-name"));
    if (!n || !j) return false;
    snprintf(out, cap, "%s/%s", n, j);
    return true;
}

/* Whether Pod a is newer than Pod b (NULL: older than any). */
static bool newer(const json_t *a, const json_t *b)
{
    const char *ta = meta_str(a, "creationTimestamp"), *tb = meta_str(b, "creationTimestamp");
    return !b || (ta && tb && strcmp(ta, tb) > 0);
}

/* The newest Pod of each Job, by "ns/job": made once for a pass over many sessions, so that
 * a pass costs one walk over the Pods, not one per session. */
static json_t *pods_by_job(struct op *op)
{
    json_t *index = json_object();
    const char *key;
    json_t *p;
    char jk[512];
    json_object_foreach(op->pods.items, key, p)
    {
        if (pod_job_key(p, jk, sizeof jk) && newer(p, json_object_get(index, jk)))
            json_object_set(index, jk, p);
    }
    return index;
}

/* The newest Pod of the Job ns/job, or NULL. */
static const json_t *pod_of(struct op *op, const char *ns, const char *job)
{
    char want[512], jk[512];
    snprintf(want, sizeof want, "%s/%s", ns, job);
    if (op->pod_index) return json_object_get(op->pod_index, want);
    const char *key;
    const json_t *p, *best = NULL;
    json_object_foreach(op->pods.items, key, p)
    {
        if (pod_job_key(p, jk, sizeof jk) && !strcmp(jk, want) && newer(p, best)) best = p;
    }
    return best;
}

/* Schedules the session key again after a backoff (or after `fixed_ms` when non-zero). */
static void retry_later(struct op *op, const char *key, int fixed_ms)
{
    op->keep_retry = true;
    /* Dirty, so that the loop wakes for it at `at` (decide_dirty() holds it until then). */
    json_object_set_new(op->dirty, key, json_true());
    json_t *r = json_object_get(op->retries, key);
    int b = (int)json_integer_value(json_object_get(r, "backoff"));
    b = fixed_ms ? fixed_ms
                 : (b ? (b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2) : BACKOFF_MIN_MS);
    json_object_set_new(op->retries, key,
                        json_pack("{s:I, s:i, s:i}", "at", (json_int_t)(co_mono_ms() + b),
                                  "backoff", fixed_ms ? 0 : b, "conflicts",
                                  (int)json_integer_value(json_object_get(r, "conflicts"))));
}

static void fresh_read(struct op *op, const char *key, const char *ns, const char *name)
{
    char path[768];
    struct co_response r = {0};
    snprintf(path, sizeof path,
             "/apis/vteam.ambient-code/v1alpha1/namespaces/%s/agenticsessions/%s", ns, name);
    if (co_kube_request(op->k, "GET", path, NULL, NULL, REQUEST_MS, &r) == 0 && r.status == 200 &&
        json_is_object(r.body)) {
        json_object_set(op->sessions.items, key, r.body);
        json_object_set_new(op->dirty, key, json_true());
    } else if (r.status == 404) {
        json_object_del(op->sessions.items, key);
    } else {
        retry_later(op, key, 0);
    }
    co_response_clear(&r);
}

/* Writes status for the session (PUT .../status with its resourceVersion). Returns 0 when
 * written, 1 when it must be decided again (conflict: re-read; or gone), -1 on error. */
static int write_status(struct op *op, const char *key, const json_t *session, json_t *status)
{
    const char *ns = meta_str(session, "namespace"), *name = meta_str(session, "name");
    char path[768];
    snprintf(path, sizeof path,
             "/apis/vteam.ambient-code/v1alpha1/namespaces/%s/agenticsessions/%s/status", ns, name);
    json_t *body = json_deep_copy(session);
    json_object_set(body, "status", status);
    struct co_response r = {0};
    int rc = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        co_kube_request(op->k, "PUT", path, body, NULL, REQUEST_MS, &r);
        if (r.status == 422 && attempt == 0) {
            /* The CRD found in the cluster (the platform's, say) may refuse what ours
             * declares: write the phase and times without the runner's outcome. */
            co_log("%s: the API server refused the status (%s); writing it without the "
                   "runner's outcome",
                   key, r.err);
            json_t *st = json_object_get(body, "status");
            json_object_del(st, "cost");
            json_object_del(st, "usage");
            json_object_del(st, "turns");
            json_object_del(st, "traceId");
            co_response_clear(&r);
            continue;
        }
        break;
    }
    if (r.status == 200 && json_is_object(r.body)) {
        json_object_set_new(r.body, "kind", json_string("AgenticSession"));
        json_object_set(op->sessions.items, key, r.body);
        json_t *rt = json_object_get(op->retries, key);
        if (rt) json_object_set_new(rt, "conflicts", json_integer(0));
        rc = 0;
    } else if (r.status == 409) {
        json_t *rt = json_object_get(op->retries, key);
        int n = (int)json_integer_value(json_object_get(rt, "conflicts")) + 1;
        if (!rt)
            json_object_set_new(op->retries, key,
                                rt = json_pack("{s:I, s:i}", "at", (json_int_t)0, "backoff", 0));
        json_object_set_new(rt, "conflicts", json_integer(n));
        op->keep_retry = true;
        if (n > CONFLICT_RETRIES) {
            co_log("%s: %d conflicts in a row writing the status; backing off", key, n);
            json_object_set_new(rt, "conflicts", json_integer(0));
            retry_later(op, key, 0);
        } else {
            fresh_read(op, key, ns, name);
        }
        rc = 1;
    } else if (r.status == 404) {
        json_object_del(op->sessions.items, key);
        rc = 1;
    } else {
        co_log("%s: writing the status failed: %s (HTTP %ld); retrying", key, r.err, r.status);
        retry_later(op, key, 0);
    }
    co_response_clear(&r);
    json_decref(body);
    return rc;
}

static void create_job(struct op *op, const char *key, const json_t *session, const char *spec_err)
{
    struct co_settings s;
    char err[512] = "", refused[256] = "";
    const char *ns = meta_str(session, "namespace");
    if (spec_err) return; /* decided as Failed instead */
    if (co_settings_read(session, &s, err, sizeof err)) return;
    json_t *job = co_job_build(session, &s, &op->o->job, refused, sizeof refused, err, sizeof err);
    if (s.ignored[0]) co_log("%s: not used by ccrunner: %s", key, s.ignored);
    if (s.refused[0] || refused[0])
        co_log("%s: environmentVariables not set (reserved or invalid names): %s%s%s", key,
               s.refused, s.refused[0] && refused[0] ? ", " : "", refused);
    co_settings_clear(&s);
    if (!job) {
        co_log("%s: cannot build its Job: %s", key, err);
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "/apis/batch/v1/namespaces/%s/jobs", ns);
    struct co_response r = {0};
    co_kube_request(op->k, "POST", path, job, NULL, REQUEST_MS, &r);
    char jkey[512];
    key_of(job, jkey, sizeof jkey);
    if (r.status == 201 || r.status == 200) {
        co_log("%s: created Job %s", key, meta_str(job, "name"));
        cache_put(op, &op->jobs, op->jobs.items, jkey, r.body);
        json_object_set_new(op->dirty, key, json_true());
    } else if (r.status == 409) {
        /* It exists (we made it before a restart, or someone else did): look at it. */
        co_response_clear(&r);
        snprintf(path, sizeof path, "/apis/batch/v1/namespaces/%s/jobs/%s", ns,
                 meta_str(job, "name"));
        co_kube_request(op->k, "GET", path, NULL, NULL, REQUEST_MS, &r);
        if (r.status == 200 && json_is_object(r.body)) {
            co_log("%s: Job %s already exists; adopting it", key, meta_str(job, "name"));
            cache_put(op, &op->jobs, op->jobs.items, jkey, r.body);
            json_object_set_new(op->dirty, key, json_true());
        } else {
            retry_later(op, key, 0);
        }
    } else {
        co_log("%s: creating Job %s failed: %s (HTTP %ld); retrying", key, meta_str(job, "name"),
               r.err, r.status);
        retry_later(op, key, 0);
    }
    co_response_clear(&r);
    json_decref(job);
}

static void delete_job(struct op *op, const char *key, const char *ns, const char *job)
{
    char path[512];
    snprintf(path, sizeof path, "/apis/batch/v1/namespaces/%s/jobs/%s?propagationPolicy=Background",
             ns, job);
    struct co_response r = {0};
    co_kube_request(op->k, "DELETE", path, NULL, NULL, REQUEST_MS, &r);
    if (r.status != 200 && r.status != 202 && r.status != 404)
        co_log("%s: deleting Job %s failed: %s (HTTP %ld)", key, job, r.err, r.status);
    co_response_clear(&r);
}

static void decide(struct op *op, const char *key)
{
    json_t *session = json_object_get(op->sessions.items, key);
    /* A pass over many slow sessions is work, not a hang: /healthz must say so. */
    atomic_store(&op->live->beat_ms, co_mono_ms());
    if (!session || json_object_get(json_object_get(session, "metadata"), "deletionTimestamp")) {
        json_object_del(op->retries, key); /* nothing more to retry */
        return; /* gone or going: garbage collection removes its Job and stops its Pod */
    }
    json_incref(session);
    op->keep_retry = false;
    const char *ns = meta_str(session, "namespace"), *name = meta_str(session, "name");
    char job_name[CO_JOB_NAME_MAX + 1] = "", jkey[512], err[512] = "";
    struct co_settings s;
    const char *spec_err = NULL;
    if (co_settings_read(session, &s, err, sizeof err) == 0)
        co_settings_clear(&s);
    else
        spec_err = err;
    if (!spec_err && co_job_name(name, job_name, sizeof job_name)) {
        snprintf(err, sizeof err,
                 "the name is %zu characters; its Job \"<name>-job\" needs at most 59",
                 strlen(name));
        spec_err = err;
    }
    snprintf(jkey, sizeof jkey, "%s/%s", ns, job_name);
    const json_t *job = job_name[0] ? json_object_get(op->jobs.items, jkey) : NULL;
    struct co_observed in = {
        .session = session,
        .job = job,
        .pod = job ? pod_of(op, ns, job_name) : NULL,
        .spec_error = spec_err,
        .now = (int64_t)time(NULL),
        .start_timeout_s = op->o->start_timeout_s,
    };
    struct co_decision d;
    if (co_decide(&in, &d)) {
        co_log("%s: out of memory deciding its status", key);
        retry_later(op, key, 0);
        goto done;
    }
    if (d.action == CO_ACT_CREATE_JOB) {
        create_job(op, key, session, spec_err);
    } else if (d.action == CO_ACT_WAIT) {
        /* Said once per wait, looked at again every second (an event may end it sooner). */
        if (!json_object_get(op->retries, key)) co_log("%s: %s", key, d.why);
        retry_later(op, key, 1000);
    }
    if (d.status && write_status(op, key, session, d.status) == 0) {
        if (strcmp(d.from, d.to)) co_log("%s: %s -> %s: %s", key, d.from, d.to, d.why);
        if (d.action == CO_ACT_DELETE_JOB) delete_job(op, key, ns, job_name);
    }
    json_decref(d.status);
done:
    if (!op->keep_retry) json_object_del(op->retries, key);
    json_decref(session);
}

/* Decides every dirty session whose retry time has come. */
static void decide_dirty(struct op *op)
{
    int64_t now = co_mono_ms();
    json_t *batch = op->dirty;
    op->dirty = json_object();
    const char *key;
    json_t *v;
    /* The Pods do not change during a pass (events are read between passes). */
    if (json_object_size(batch) > 1) op->pod_index = pods_by_job(op);
    json_object_foreach(batch, key, v)
    {
        json_t *r = json_object_get(op->retries, key);
        if (r && json_integer_value(json_object_get(r, "at")) > now) {
            json_object_set_new(op->dirty, key, json_true()); /* not yet */
            continue;
        }
        decide(op, key);
    }
    json_decref(op->pod_index);
    op->pod_index = NULL;
    json_decref(batch);
}

/* Every unfinished session, again: deadlines, and retries whose time has come. */
static void resync(struct op *op)
{
    const char *key;
    json_t *s;
    json_object_foreach(op->sessions.items, key, s)
    {
        const char *phase =
            json_string_value(json_object_get(json_object_get(s, "status"), "phase"));
        if (!co_phase_terminal(phase)) json_object_set_new(op->dirty, key, json_true());
    }
    op->resync_at = co_mono_ms() + RESYNC_MS;
}

static void cache_init(struct cache *c, const char *kind, const char *api, const char *ns,
                       const char *plural, const char *selector)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->items = json_object();
    if (ns && *ns)
        snprintf(c->path, sizeof c->path, "%s/namespaces/%s/%s%s%s", api, ns, plural,
                 selector ? "?" : "", selector ? selector : "");
    else
        snprintf(c->path, sizeof c->path, "%s/%s%s%s", api, plural, selector ? "?" : "",
                 selector ? selector : "");
}

int co_operator_run(struct co_kube *k, const struct co_operator_opts *o, int stop_fd,
                    struct co_liveness *live)
{
    struct op op = {.k = k, .o = o, .dirty = json_object(), .retries = json_object(), .live = live};
    cache_init(&op.sessions, "AgenticSession", "/apis/vteam.ambient-code/v1alpha1", o->namespace,
               "agenticsessions", NULL);
    cache_init(&op.jobs, "Job", "/apis/batch/v1", o->namespace, "jobs", RUNNER_SELECTOR);
    cache_init(&op.pods, "Pod", "/api/v1", o->namespace, "pods", RUNNER_SELECTOR);
    /* Jobs and Pods first: a session is decided only with its Job known. */
    struct cache *caches[] = {&op.jobs, &op.pods, &op.sessions};
    bool was_synced = false;
    srand((unsigned)time(NULL));
    for (;;) {
        int64_t now = co_mono_ms(), next = now + 1000;
        atomic_store(&live->beat_ms, now);
        for (size_t i = 0; i < 3; i++) {
            struct cache *c = caches[i];
            if (c->watch) continue;
            if (now < c->retry_at) {
                if (c->retry_at < next) next = c->retry_at;
                continue;
            }
            if (!c->listed && list(&op, c)) continue;
            open_watch(&op, c);
        }
        bool synced = op.jobs.listed && op.pods.listed && op.sessions.listed;
        if (synced && !was_synced) {
            co_log("watching %zu AgenticSession(s), %zu Job(s), %zu Pod(s)%s%s",
                   json_object_size(op.sessions.items), json_object_size(op.jobs.items),
                   json_object_size(op.pods.items),
                   o->namespace && *o->namespace ? " in " : " in all namespaces",
                   o->namespace && *o->namespace ? o->namespace : "");
            was_synced = true;
            atomic_store(&live->synced, true);
        }
        if (synced) {
            if (now >= op.resync_at) resync(&op);
            decide_dirty(&op);
            /* Earliest retry among dirty sessions. */
            const char *key;
            json_t *v;
            json_object_foreach(op.dirty, key, v)
            {
                int64_t at =
                    json_integer_value(json_object_get(json_object_get(op.retries, key), "at"));
                if (at < next) next = at;
            }
            if (op.resync_at < next) next = op.resync_at;
        }
        now = co_mono_ms();
        int wait = next > now ? (int)(next - now) : 0;
        struct co_watch *w = NULL;
        json_t *ev = NULL;
        enum co_wait_kind got = co_kube_wait(k, wait, stop_fd, &w, &ev);
        if (got == CO_WAIT_EVENT) {
            apply_event(&op, co_watch_user(w), ev);
            json_decref(ev);
        } else if (got == CO_WAIT_ENDED) {
            struct cache *c = co_watch_user(w);
            long st = co_watch_status(w);
            if (st == 410) {
                c->listed = false;
            } else if (st != 200 || co_mono_ms() - c->opened_ms < 1000) {
                /* An error, or a stream closed as soon as opened (a proxy's idle cut, a
                 * server going down): not in a tight loop. */
                co_log("the %s watch ended: %s (HTTP %ld); retrying", c->kind,
                       co_watch_error(w)[0] ? co_watch_error(w) : "closed", st);
                backoff(c);
            }
            if (c->watch == w) c->watch = NULL;
            co_watch_close(w);
        } else {
            char b;
            if (stop_fd >= 0 && read(stop_fd, &b, 1) == 1) break; /* stop_fd is non-blocking */
        }
    }
    for (size_t i = 0; i < 3; i++) {
        co_watch_close(caches[i]->watch);
        json_decref(caches[i]->items);
    }
    json_decref(op.dirty);
    json_decref(op.retries);
    return 0;
}
