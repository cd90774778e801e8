/*
 * status.c - the session's status from its Job and Pod (the rules are in status.h).
 *
 * The outcome fields (cost, usage, turns, traceId) come from the runner's termination
 * message, one JSON line Kubernetes copies into the container's terminated state. They are
 * checked against the CRD's schema here: an API server refuses a whole status update for
 * one bad field (422), and a status without them is worth more than none.
 */
#include "status.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* How long a Job's end may run ahead of its Pod's in the caches before the session ends
 * without the runner's outcome. */
#define CO_POD_LAG_S 30

bool co_phase_terminal(const char *phase)
{
    return phase &&
           (!strcmp(phase, "Completed") || !strcmp(phase, "Failed") || !strcmp(phase, "Stopped"));
}

static int rank(const char *phase)
{
    if (!phase || !*phase || !strcmp(phase, "Pending") || !strcmp(phase, "Creating")) return 0;
    if (!strcmp(phase, "Running") || !strcmp(phase, "Stopping")) return 1;
    return 2;
}

void co_rfc3339(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int64_t co_parse_rfc3339(const char *s)
{
    struct tm tm = {0};
    const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!end) return -1;
    if (*end == '.')
        for (end++; isdigit((unsigned char)*end); end++)
            continue;
    if (strcmp(end, "Z") != 0) return -1; /* the API server writes UTC */
    return (int64_t)timegm(&tm);
}

static const char *str(const json_t *v, const char *key)
{
    return json_string_value(json_object_get(v, key));
}

/* The condition of type `type` with status "True" in obj.status.conditions, or NULL. */
static const json_t *condition(const json_t *obj, const char *type)
{
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(json_object_get(obj, "status"), "conditions"), i, c)
    {
        const char *t = str(c, "type"), *s = str(c, "status");
        if (t && s && !strcmp(t, type) && !strcmp(s, "True")) return c;
    }
    return NULL;
}

/* The runner container's status in the Pod, or NULL. */
static const json_t *runner_status(const json_t *pod)
{
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(json_object_get(pod, "status"), "containerStatuses"), i,
                       c) if (str(c, "name") && !strcmp(str(c, "name"), "runner")) return c;
    return NULL;
}

/* The first container (init containers first) waiting for a reason: its reason and message. */
static bool waiting(const json_t *pod, const char **reason, const char **message)
{
    static const char *const lists[] = {"initContainerStatuses", "containerStatuses"};
    for (size_t l = 0; l < 2; l++) {
        size_t i;
        const json_t *c;
        json_array_foreach(json_object_get(json_object_get(pod, "status"), lists[l]), i, c)
        {
            const json_t *w = json_object_get(json_object_get(c, "state"), "waiting");
            if (w && str(w, "reason") && strcmp(str(w, "reason"), "PodInitializing") &&
                strcmp(str(w, "reason"), "ContainerCreating")) {
                *reason = str(w, "reason");
                *message = str(w, "message") ? str(w, "message") : "";
                return true;
            }
        }
    }
    return false;
}

/* An init container (the repositories' clone) that ended in failure: a copy of its
 * terminated state with its name added (caller frees), or NULL. */
static json_t *failed_init(const json_t *pod)
{
    json_t *found;
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(json_object_get(pod, "status"), "initContainerStatuses"), i,
                       c)
    {
        const json_t *t = json_object_get(json_object_get(c, "state"), "terminated");
        if (t && json_integer_value(json_object_get(t, "exitCode")) != 0) {
            found = json_deep_copy(t);
            json_object_set(found, "name", json_object_get(c, "name"));
            return found;
        }
    }
    return NULL;
}

/*
 * The last non-empty line of a container's termination message that is not the runner's
 * outcome: its log's tail (terminationMessagePolicy FallbackToLogsOnError), where a program
 * that stopped early said why ("ccrunner: error: ...", git's "fatal: ..."). At most
 * LAST_LINE_MAX bytes, not cutting a UTF-8 character; "" when there is none.
 */
#define LAST_LINE_MAX 300
static const char *last_line(const char *msg, char *out, size_t cap)
{
    out[0] = '\0';
    if (!msg) return out;
    const char *end = msg + strlen(msg);
    while (end > msg && isspace((unsigned char)end[-1]))
        end--;
    const char *start = end;
    while (start > msg && start[-1] != '\n')
        start--;
    while (start < end && isspace((unsigned char)*start))
        start++;
    size_t n = (size_t)(end - start);
    if (n > LAST_LINE_MAX) n = LAST_LINE_MAX;
    if (n >= cap) n = cap - 1;
    while (n > 0 && n < (size_t)(end - start) && ((unsigned char)start[n] & 0xC0) == 0x80)
        n--; /* start[n] continues a character: cut before that character */
    memcpy(out, start, n);
    out[n] = '\0';
    return out;
}

/* ": line" when the terminated state's message is a log's tail, else "". */
static const char *said(const json_t *terminated, char *buf, size_t cap)
{
    const char *msg = str(terminated, "message");
    json_t *doc = msg ? json_loads(msg, 0, NULL) : NULL;
    bool outcome = json_is_object(doc);
    json_decref(doc);
    char line[LAST_LINE_MAX + 1];
    if (outcome || !*last_line(msg, line, sizeof line)) return "";
    snprintf(buf, cap, ": %s", line);
    return buf;
}

/* Copies what the termination message holds, where it fits the CRD's schema, into st. */
static void take_outcome(json_t *st, const json_t *terminated, const char **error)
{
    const char *msg = str(terminated, "message");
    json_t *doc = msg ? json_loads(msg, 0, NULL) : NULL;
    const json_t *v;
    if (!json_is_object(doc)) {
        json_decref(doc);
        return;
    }
    if (json_is_number(v = json_object_get(doc, "cost")) && json_number_value(v) >= 0)
        json_object_set_new(st, "cost", json_real(json_number_value(v)));
    if (json_is_integer(v = json_object_get(doc, "turns")) && json_integer_value(v) >= 0)
        json_object_set(st, "turns", (json_t *)v);
    const char *id = str(doc, "trace_id");
    if (id && strlen(id) == 32 && strspn(id, "0123456789abcdef") == 32)
        json_object_set_new(st, "traceId", json_string(id));
    if (json_is_object(v = json_object_get(doc, "usage"))) {
        json_t *usage = json_object();
        const char *k;
        const json_t *n;
        json_object_foreach((json_t *)v, k, n) if (json_is_integer(n) && json_integer_value(n) >= 0)
            json_object_set(usage, k, (json_t *)n);
        json_object_set_new(st, "usage", usage);
    }
    static _Thread_local char copy[512];
    if (str(doc, "error")) {
        snprintf(copy, sizeof copy, "%s", str(doc, "error"));
        *error = copy;
    }
    json_decref(doc);
}

/* Cuts an incomplete UTF-8 character off the end of s (left by a cut to a buffer's size):
 * jansson refuses a string that is not valid UTF-8, and the message would be lost. */
static void utf8_trim(char *s)
{
    size_t n = strlen(s), lead = n;
    while (lead > 0 && n - lead < 4 && ((unsigned char)s[lead - 1] & 0xC0) == 0x80)
        lead--;
    if (lead == 0) return;
    unsigned char c = (unsigned char)s[lead - 1];
    size_t want = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (n - (lead - 1) < want) s[lead - 1] = '\0';
}

/* Sets phase and message in st, and the decision's log fields. */
static void go(json_t *st, struct co_decision *out, const char *phase, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void go(json_t *st, struct co_decision *out, const char *phase, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->why, sizeof out->why, fmt, ap);
    va_end(ap);
    utf8_trim(out->why);
    snprintf(out->to, sizeof out->to, "%s", phase);
    json_object_set_new(st, "phase", json_string(phase));
    json_object_set_new(st, "message", json_string(out->why));
}

static void set_time_once(json_t *st, const char *key, const char *when, int64_t now)
{
    char buf[32];
    if (json_is_string(json_object_get(st, key))) return;
    if (!when || co_parse_rfc3339(when) < 0) {
        co_rfc3339(now, buf, sizeof buf);
        when = buf;
    }
    json_object_set_new(st, key, json_string(when));
}

/* The session's end, from the Job's terminal condition or the Pod's terminal phase. */
static void finish(json_t *st, struct co_decision *out, const struct co_observed *in,
                   bool succeeded, const json_t *job_cond)
{
    const json_t *rs = runner_status(in->pod);
    const json_t *term = json_object_get(json_object_get(rs, "state"), "terminated");
    const char *error = NULL;
    json_t *init;
    char buf[LAST_LINE_MAX + 3];
    take_outcome(st, term, &error);
    const char *when = str(json_object_get(in->job, "status"), "completionTime");
    if (!when) when = str(term, "finishedAt");
    set_time_once(st, "completionTime", when, in->now);
    if (succeeded) {
        go(st, out, "Completed", "the session succeeded");
    } else if (error) {
        go(st, out, "Failed", "%s", error);
    } else if (term) {
        go(st, out, "Failed", "the runner exited with code %lld (%s)%s",
           (long long)json_integer_value(json_object_get(term, "exitCode")),
           str(term, "reason") ? str(term, "reason") : "no reason given",
           said(term, buf, sizeof buf));
    } else if ((init = failed_init(in->pod))) {
        go(st, out, "Failed", "the init container %s exited with code %lld (%s)%s",
           str(init, "name"), (long long)json_integer_value(json_object_get(init, "exitCode")),
           str(init, "reason") ? str(init, "reason") : "no reason given",
           said(init, buf, sizeof buf));
        json_decref(init);
    } else {
        go(st, out, "Failed", "the Job failed: %s",
           job_cond && str(job_cond, "message") ? str(job_cond, "message") : "no reason given");
    }
}

/* True while the Job says it has ended but the Pod observed is not terminal yet, for at most
 * CO_POD_LAG_S after the Job's end. A Pod that is gone is not waited for. */
static bool pod_lags(const struct co_observed *in, const char *pphase)
{
    const json_t *c = condition(in->job, "Complete");
    if (!c) c = condition(in->job, "Failed");
    if (!c || !in->pod || (pphase && (!strcmp(pphase, "Succeeded") || !strcmp(pphase, "Failed"))))
        return false;
    const char *when = str(json_object_get(in->job, "status"), "completionTime");
    int64_t ended = co_parse_rfc3339(when ? when : str(c, "lastTransitionTime"));
    return ended >= 0 && in->now - ended < CO_POD_LAG_S;
}

int co_decide(const struct co_observed *in, struct co_decision *out)
{
    memset(out, 0, sizeof *out);
    const json_t *cur = json_object_get(in->session, "status");
    const char *phase = str(cur, "phase");
    snprintf(out->from, sizeof out->from, "%s", phase && *phase ? phase : "(none)");
    snprintf(out->to, sizeof out->to, "%s", out->from);
    if (co_phase_terminal(phase)) return 0;

    json_t *st = json_is_object(cur) ? json_deep_copy(cur) : json_object();
    if (!st) return -1;
    const char *session = str(json_object_get(in->session, "metadata"), "name");
    const char *uid = str(json_object_get(in->session, "metadata"), "uid");
    const char *job_name = str(json_object_get(in->job, "metadata"), "name");
    const char *had_job = str(cur, "jobName");
    const json_t *jstatus = json_object_get(in->job, "status");
    const json_t *cond;

    if (in->spec_error) {
        set_time_once(st, "completionTime", NULL, in->now);
        go(st, out, "Failed", "the session's spec is invalid: %s", in->spec_error);
    } else if (!in->job && had_job && *had_job) {
        set_time_once(st, "completionTime", NULL, in->now);
        go(st, out, "Failed", "its Job %s was deleted before the session ended", had_job);
    } else if (!in->job) {
        out->action = CO_ACT_CREATE_JOB;
        json_decref(st);
        return 0;
    } else {
        /* Whose Job is it? Ours (our uid as controller), an earlier session's of the same
         * name (garbage collection will remove it), or no one's (adopt it only if it is
         * labelled for this session, as render-job.sh labels the Jobs it renders). */
        const json_t *ctl = NULL, *ref;
        size_t i;
        json_array_foreach(json_object_get(json_object_get(in->job, "metadata"), "ownerReferences"),
                           i, ref) if (json_is_true(json_object_get(ref, "controller"))) ctl = ref;
        const char *label = str(json_object_get(json_object_get(in->job, "metadata"), "labels"),
                                "vteam.ambient-code/agentic-session");
        if (ctl && (!str(ctl, "uid") || strcmp(str(ctl, "uid"), uid ? uid : ""))) {
            if (str(ctl, "kind") && !strcmp(str(ctl, "kind"), "AgenticSession") &&
                str(ctl, "name") && session && !strcmp(str(ctl, "name"), session)) {
                out->action = CO_ACT_WAIT;
                snprintf(out->why, sizeof out->why,
                         "the Job %s of an earlier session of this name is still being removed",
                         job_name);
                json_decref(st);
                return 0;
            }
            set_time_once(st, "completionTime", NULL, in->now);
            go(st, out, "Failed", "a Job named %s already exists and belongs to %s %s", job_name,
               str(ctl, "kind") ? str(ctl, "kind") : "another object",
               str(ctl, "name") ? str(ctl, "name") : "");
        } else if (!ctl && (!label || !session || strcmp(label, session))) {
            set_time_once(st, "completionTime", NULL, in->now);
            go(st, out, "Failed", "a Job named %s already exists and is not this session's",
               job_name);
        } else {
            json_object_set_new(st, "jobName", json_string(job_name));
            const char *pphase = str(json_object_get(in->pod, "status"), "phase");
            const char *reason = NULL, *message = NULL;
            int64_t created =
                co_parse_rfc3339(str(json_object_get(in->job, "metadata"), "creationTimestamp"));
            bool late = created >= 0 && in->now - created >= in->start_timeout_s;
            if (pod_lags(in, pphase)) {
                /* The Job has ended but the Pod in hand has not: its terminal state, with the
                 * runner's outcome, is on its way through the Pod watch (a watch per kind, no
                 * order between them). Its event decides again; a bound keeps a lost one
                 * from holding the session. */
                out->action = CO_ACT_WAIT;
                snprintf(out->why, sizeof out->why,
                         "its Job has ended; waiting for the Pod's final state");
                json_decref(st);
                return 0;
            } else if ((cond = condition(in->job, "Complete")) ||
                       (pphase && !strcmp(pphase, "Succeeded"))) {
                set_time_once(st, "startTime", str(jstatus, "startTime"), in->now);
                finish(st, out, in, true, cond);
            } else if ((cond = condition(in->job, "Failed")) ||
                       (pphase && !strcmp(pphase, "Failed"))) {
                set_time_once(st, "startTime", str(jstatus, "startTime"), in->now);
                finish(st, out, in, false, cond);
            } else if (pphase && !strcmp(pphase, "Running")) {
                set_time_once(st, "startTime", str(json_object_get(in->pod, "status"), "startTime"),
                              in->now);
                go(st, out, "Running", "the runner Pod %s is running",
                   str(json_object_get(in->pod, "metadata"), "name"));
            } else if (in->pod && waiting(in->pod, &reason, &message) &&
                       (!strcmp(reason, "ImagePullBackOff") ||
                        !strcmp(reason, "InvalidImageName") ||
                        !strcmp(reason, "ErrImageNeverPull") || late)) {
                out->action = CO_ACT_DELETE_JOB;
                set_time_once(st, "completionTime", NULL, in->now);
                go(st, out, "Failed", "the runner Pod cannot start: %s: %s", reason, message);
            } else if (late) {
                const json_t *c;
                static const char no_pod[] = "no Pod was created";
                const char *why = no_pod;
                json_array_foreach(
                    json_object_get(json_object_get(in->pod, "status"), "conditions"), i,
                    c) if (str(c, "type") && !strcmp(str(c, "type"), "PodScheduled") &&
                           str(c, "status") && !strcmp(str(c, "status"), "False")) why =
                    str(c, "message") ? str(c, "message") : "the Pod cannot be scheduled";
                if (in->pod && why == no_pod) why = "the Pod did not start";
                out->action = CO_ACT_DELETE_JOB;
                set_time_once(st, "completionTime", NULL, in->now);
                go(st, out, "Failed", "the runner did not start within %lld s: %s",
                   (long long)in->start_timeout_s, why);
            } else if (reason) {
                go(st, out, "Pending", "waiting for the runner Pod: %s: %s", reason, message);
            } else {
                go(st, out, "Pending", "the Job %s is created; waiting for its Pod to run",
                   job_name);
            }
        }
    }
    /* A phase never goes back: an older observation (a watch event late after a relist)
     * must not undo a newer status. */
    if (rank(out->to) < rank(phase)) {
        json_decref(st);
        snprintf(out->to, sizeof out->to, "%s", out->from);
        out->action = CO_ACT_NONE;
        return 0;
    }
    if (json_equal(st, cur)) {
        json_decref(st);
        return 0;
    }
    out->status = st;
    return 0;
}
