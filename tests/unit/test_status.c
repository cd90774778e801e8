/* test_status.c - every transition of a session's status, from the Job and Pod observed;
 * deciding again on the written status changes nothing (restart-safe); a phase never goes
 * back; the runner's outcome is copied only where it fits the CRD. */
#include "cm.h"

#include <string.h>

#include "status.h"

#define T0 1765000000 /* the Job's creation */

static json_t *J(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (!v) fail_msg("bad test JSON at %d: %s", e.position, e.text);
    return v;
}

static json_t *session(const char *status)
{
    char doc[2048];
    snprintf(doc, sizeof doc,
             "{\"metadata\":{\"name\":\"s1\",\"namespace\":\"ns\",\"uid\":\"u1\"},\"spec\":{"
             "\"prompt\":\"p\"}%s%s}",
             status ? ",\"status\":" : "", status ? status : "");
    return J(doc);
}

static json_t *job(const char *owner_uid, const char *status)
{
    char doc[2048], ts[32];
    co_rfc3339(T0, ts, sizeof ts);
    snprintf(doc, sizeof doc,
             "{\"metadata\":{\"name\":\"s1-job\",\"namespace\":\"ns\",\"creationTimestamp\":\"%s\","
             "\"labels\":{\"vteam.ambient-code/agentic-session\":\"s1\"}%s%s%s},\"status\":%s}",
             ts,
             owner_uid ? ",\"ownerReferences\":[{\"kind\":\"AgenticSession\",\"name\":\"s1\","
                         "\"controller\":true,\"uid\":\""
                       : "",
             owner_uid ? owner_uid : "", owner_uid ? "\"}]" : "", status ? status : "{}");
    return J(doc);
}

static json_t *pod(const char *status)
{
    char doc[4096];
    snprintf(doc, sizeof doc, "{\"metadata\":{\"name\":\"s1-job-abcde\"},\"status\":%s}", status);
    return J(doc);
}

struct run {
    struct co_decision d;
    const char *phase, *message;
};

static struct run decide(json_t *s, json_t *j, json_t *p, int64_t now)
{
    struct co_observed in = {.session = s, .job = j, .pod = p, .now = now, .start_timeout_s = 600};
    struct run r;
    assert_int_equal(co_decide(&in, &r.d), 0);
    r.phase = json_string_value(json_object_get(r.d.status, "phase"));
    r.message = json_string_value(json_object_get(r.d.status, "message"));
    return r;
}

/* Deciding again with the status just decided writes nothing: what a restarted operator,
 * or the next watch event, sees. */
static void settled(json_t *s, json_t *j, json_t *p, int64_t now, struct run *r)
{
    json_object_set(s, "status", r->d.status);
    struct co_observed in = {
        .session = s, .job = j, .pod = p, .now = now + 5, .start_timeout_s = 600};
    struct co_decision again;
    assert_int_equal(co_decide(&in, &again), 0);
    assert_null(again.status);
    assert_int_equal(again.action, CO_ACT_NONE);
}

static void test_a_new_session_gets_its_job(void **state)
{
    (void)state;
    json_t *s = session(NULL);
    struct run r = decide(s, NULL, NULL, T0);
    assert_int_equal(r.d.action, CO_ACT_CREATE_JOB);
    assert_null(r.d.status);
    json_decref(s);
    s = session("{\"phase\":\"Pending\"}"); /* the platform's backend writes Pending first */
    r = decide(s, NULL, NULL, T0);
    assert_int_equal(r.d.action, CO_ACT_CREATE_JOB);
    json_decref(s);
}

static void test_pending_running_completed(void **state)
{
    (void)state;
    json_t *s = session(NULL), *j = job("u1", NULL);
    struct run r = decide(s, j, NULL, T0 + 1);
    assert_string_equal(r.phase, "Pending");
    assert_string_equal(json_string_value(json_object_get(r.d.status, "jobName")), "s1-job");
    assert_string_equal(r.d.to, "Pending");
    assert_string_equal(r.d.from, "(none)");
    settled(s, j, NULL, T0 + 1, &r);
    json_decref(r.d.status);

    json_t *p = pod("{\"phase\":\"Running\",\"startTime\":\"2025-12-06T05:46:50Z\"}");
    r = decide(s, j, p, T0 + 10);
    assert_string_equal(r.phase, "Running");
    assert_string_equal(json_string_value(json_object_get(r.d.status, "startTime")),
                        "2025-12-06T05:46:50Z");
    settled(s, j, p, T0 + 10, &r);
    json_decref(r.d.status);
    json_decref(p);
    json_decref(j);

    j = job("u1", "{\"succeeded\":1,\"completionTime\":\"2025-12-06T05:50:00Z\",\"conditions\":"
                  "[{\"type\":\"Complete\",\"status\":\"True\"}]}");
    p = pod("{\"phase\":\"Succeeded\",\"containerStatuses\":[{\"name\":\"runner\",\"state\":{"
            "\"terminated\":"
            "{\"exitCode\":0,\"reason\":\"Completed\",\"message\":\"{\\\"success\\\":true,"
            "\\\"cost\\\":0.000105,"
            "\\\"turns\\\":1,\\\"usage\\\":{\\\"input_tokens\\\":10,\\\"output_tokens\\\":5,"
            "\\\"odd\\\":-1},"
            "\\\"trace_id\\\":\\\"0123456789abcdef0123456789abcdef\\\",\\\"session_id\\\":"
            "\\\"s1\\\"}\\n\"}}}]}");
    r = decide(s, j, p, T0 + 300);
    assert_string_equal(r.phase, "Completed");
    assert_string_equal(r.d.from, "Running");
    assert_true(json_real_value(json_object_get(r.d.status, "cost")) == 0.000105);
    assert_int_equal(json_integer_value(json_object_get(r.d.status, "turns")), 1);
    assert_string_equal(json_string_value(json_object_get(r.d.status, "traceId")),
                        "0123456789abcdef0123456789abcdef");
    json_t *u = json_object_get(r.d.status, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "input_tokens")), 10);
    assert_null(json_object_get(u, "odd")); /* the CRD says minimum 0 */
    assert_string_equal(json_string_value(json_object_get(r.d.status, "completionTime")),
                        "2025-12-06T05:50:00Z");
    assert_string_equal(json_string_value(json_object_get(r.d.status, "startTime")),
                        "2025-12-06T05:46:50Z"); /* kept */
    json_object_set(s, "status", r.d.status);
    /* terminal: nothing changes it, even the Job going away */
    struct run after = decide(s, NULL, NULL, T0 + 400);
    assert_null(after.d.status);
    assert_int_equal(after.d.action, CO_ACT_NONE);
    json_decref(r.d.status);
    json_decref(p);
    json_decref(j);
    json_decref(s);
}

static void test_the_pod_may_lag_the_job(void **state)
{
    (void)state;
    json_t *s = session("{\"phase\":\"Running\",\"jobName\":\"s1-job\"}");
    char ended[32], doc[512];
    co_rfc3339(T0 + 100, ended, sizeof ended);
    snprintf(doc, sizeof doc,
             "{\"succeeded\":1,\"completionTime\":\"%s\",\"conditions\":[{\"type\":\"Complete\","
             "\"status\":\"True\"}]}",
             ended);
    json_t *j = job("u1", doc);
    json_t *p = pod("{\"phase\":\"Running\"}"); /* the Pod watch has not caught up */
    struct run r = decide(s, j, p, T0 + 105);
    assert_int_equal(r.d.action, CO_ACT_WAIT);
    assert_null(r.d.status);
    /* a bounded wait: then the session ends without the runner's outcome */
    r = decide(s, j, p, T0 + 131);
    assert_string_equal(r.phase, "Completed");
    assert_null(json_object_get(r.d.status, "cost"));
    json_decref(r.d.status);
    /* a Pod that is gone is not waited for */
    r = decide(s, j, NULL, T0 + 105);
    assert_string_equal(r.phase, "Completed");
    json_decref(r.d.status);
    json_decref(p);
    json_decref(j);
    json_decref(s);
}

static void test_a_failed_runner_says_why(void **state)
{
    (void)state;
    json_t *s = session("{\"phase\":\"Running\",\"jobName\":\"s1-job\"}");
    json_t *j = job("u1", "{\"failed\":1,\"conditions\":[{\"type\":\"Failed\",\"status\":\"True\","
                          "\"message\":\"Job has reached the specified backoff limit\"}]}");
    json_t *p = pod(
        "{\"phase\":\"Failed\",\"containerStatuses\":[{\"name\":\"runner\",\"state\":{"
        "\"terminated\":"
        "{\"exitCode\":1,\"reason\":\"Error\",\"message\":\"{\\\"success\\\":false,\\\"error\\\":"
        "\\\"the API failed: 500\\\",\\\"cost\\\":0,\\\"trace_id\\\":\\\"NOT-HEX\\\"}\"}}}]}");
    struct run r = decide(s, j, p, T0 + 60);
    assert_string_equal(r.phase, "Failed");
    assert_string_equal(r.message, "the API failed: 500");
    assert_null(json_object_get(r.d.status, "traceId"));
    assert_non_null(json_object_get(r.d.status, "completionTime"));
    json_decref(r.d.status);
    json_decref(p);
    /* no termination message: the exit code and reason */
    p = pod("{\"phase\":\"Failed\",\"containerStatuses\":[{\"name\":\"runner\",\"state\":{"
            "\"terminated\":"
            "{\"exitCode\":137,\"reason\":\"OOMKilled\"}}}]}");
    r = decide(s, j, p, T0 + 60);
    assert_string_equal(r.message, "the runner exited with code 137 (OOMKilled)");
    json_decref(r.d.status);
    /* stopped before its outcome: the log's tail (FallbackToLogsOnError), its last line */
    json_decref(p);
    p = pod("{\"phase\":\"Failed\",\"containerStatuses\":[{\"name\":\"runner\",\"state\":{"
            "\"terminated\":{\"exitCode\":2,\"reason\":\"Error\",\"message\":"
            "\"starting\\nccrunner: error: no ANTHROPIC_API_KEY\\n\\n\"}}}]}");
    r = decide(s, j, p, T0 + 60);
    assert_string_equal(
        r.message, "the runner exited with code 2 (Error): ccrunner: error: no ANTHROPIC_API_KEY");
    json_decref(r.d.status);
    /* a long line is cut, never inside a character */
    json_decref(p);
    char long_msg[1300] = "";
    for (int i = 0; i < 200; i++)
        strcat(long_msg, "\u00e9"); /* 2 bytes in UTF-8: 400 bytes */
    char text[2000];
    snprintf(text, sizeof text,
             "{\"phase\":\"Failed\",\"containerStatuses\":[{\"name\":\"runner\",\"state\":{"
             "\"terminated\":{\"exitCode\":1,\"reason\":\"Error\",\"message\":\"x%s\"}}}]}",
             long_msg);
    p = pod(text);
    r = decide(s, j, p, T0 + 60);
    assert_non_null(r.message); /* jansson takes valid UTF-8 only */
    json_decref(r.d.status);
    json_decref(p);
    /* the runner's own error, longer than a status message holds: cut, still UTF-8 */
    char err_json[3000];
    snprintf(err_json, sizeof err_json,
             "{\"phase\":\"Failed\",\"containerStatuses\":[{\"name\":\"runner\",\"state\":{"
             "\"terminated\":{\"exitCode\":1,\"reason\":\"Error\",\"message\":"
             "\"{\\\"error\\\":\\\"%s%s\\\"}\"}}}]}",
             long_msg, long_msg);
    p = pod(err_json);
    r = decide(s, j, p, T0 + 60);
    assert_non_null(r.message);
    assert_true(strlen(r.message) >= 500 && strlen(r.message) < 512);
    json_decref(r.d.status);
    json_decref(p);
    p = pod(text);
    r = decide(s, j, p, T0 + 60);
    const char *tail = strstr(r.message, "(Error): x");
    assert_non_null(tail);
    assert_int_equal(strlen(tail + strlen("(Error): ")), 299); /* "x" and 149 characters */
    json_decref(r.d.status);
    /* the repositories' clone failed: the init container says so */
    json_decref(p);
    p = pod("{\"phase\":\"Failed\",\"initContainerStatuses\":[{\"name\":\"clone-repos\",\"state\":"
            "{\"terminated\":{\"exitCode\":128,\"reason\":\"Error\",\"message\":\"Cloning into "
            "'x'...\\nfatal: repository 'https://example.invalid/x' not found\\n\"}}}],"
            "\"containerStatuses\":"
            "[{\"name\":\"runner\",\"state\":{\"waiting\":{\"reason\":\"PodInitializing\"}}}]}");
    r = decide(s, j, p, T0 + 60);
    assert_string_equal(r.message, "the init container clone-repos exited with code 128 (Error): "
                                   "fatal: repository 'https://example.invalid/x' not found");
    json_decref(r.d.status);
    /* no Pod left: the Job's own reason */
    r = decide(s, j, NULL, T0 + 60);
    assert_string_equal(r.message, "the Job failed: Job has reached the specified backoff limit");
    json_decref(r.d.status);
    json_decref(p);
    json_decref(j);
    json_decref(s);
}

static void test_a_pod_that_cannot_start(void **state)
{
    (void)state;
    json_t *s = session("{\"phase\":\"Pending\",\"jobName\":\"s1-job\"}"), *j = job("u1", NULL);
    json_t *p = pod(
        "{\"phase\":\"Pending\",\"containerStatuses\":[{\"name\":\"runner\",\"state\":{\"waiting\":"
        "{\"reason\":\"ImagePullBackOff\",\"message\":\"Back-off pulling image "
        "\\\"nope:1\\\"\"}}}]}");
    struct run r = decide(s, j, p, T0 + 30);
    assert_string_equal(r.phase, "Failed");
    assert_int_equal(r.d.action, CO_ACT_DELETE_JOB);
    assert_non_null(strstr(r.message, "ImagePullBackOff"));
    assert_non_null(strstr(r.message, "nope:1"));
    json_decref(r.d.status);
    json_decref(p);

    /* A missing Secret may still be created: Pending, with the reason, until the deadline */
    p = pod(
        "{\"phase\":\"Pending\",\"containerStatuses\":[{\"name\":\"runner\",\"state\":{\"waiting\":"
        "{\"reason\":\"CreateContainerConfigError\",\"message\":\"secret \\\"k\\\" not "
        "found\"}}}]}");
    r = decide(s, j, p, T0 + 30);
    assert_string_equal(r.phase, "Pending");
    assert_int_equal(r.d.action, CO_ACT_NONE);
    assert_non_null(strstr(r.message, "secret \"k\" not found"));
    json_decref(r.d.status);
    r = decide(s, j, p, T0 + 600);
    assert_string_equal(r.phase, "Failed");
    assert_int_equal(r.d.action, CO_ACT_DELETE_JOB);
    json_decref(r.d.status);
    json_decref(p);

    /* unschedulable past the deadline */
    p = pod(
        "{\"phase\":\"Pending\",\"conditions\":[{\"type\":\"PodScheduled\",\"status\":\"False\","
        "\"reason\":\"Unschedulable\",\"message\":\"0/3 nodes are available\"}]}");
    r = decide(s, j, p, T0 + 601);
    assert_string_equal(r.phase, "Failed");
    assert_non_null(strstr(r.message, "0/3 nodes are available"));
    json_decref(r.d.status);
    json_decref(p);
    /* the scheduler's own words, even when they begin as the default text does */
    p = pod("{\"phase\":\"Pending\",\"conditions\":[{\"type\":\"PodScheduled\",\"status\":"
            "\"False\",\"reason\":\"Unschedulable\",\"message\":\"no nodes available to "
            "schedule pods\"}]}");
    r = decide(s, j, p, T0 + 601);
    assert_non_null(strstr(r.message, "no nodes available to schedule pods"));
    json_decref(r.d.status);
    json_decref(p);
    /* no Pod at all past the deadline */
    r = decide(s, j, NULL, T0 + 601);
    assert_string_equal(r.phase, "Failed");
    assert_non_null(strstr(r.message, "no Pod was created"));
    json_decref(r.d.status);
    json_decref(j);
    json_decref(s);
}

static void test_a_deleted_job_fails_the_session(void **state)
{
    (void)state;
    json_t *s = session("{\"phase\":\"Running\",\"jobName\":\"s1-job\"}");
    struct run r = decide(s, NULL, NULL, T0);
    assert_string_equal(r.phase, "Failed");
    assert_int_equal(r.d.action, CO_ACT_NONE);
    assert_non_null(strstr(r.message, "s1-job was deleted"));
    json_decref(r.d.status);
    json_decref(s);
}

static void test_a_phase_never_goes_back(void **state)
{
    (void)state;
    json_t *s = session(
        "{\"phase\":\"Running\",\"jobName\":\"s1-job\",\"startTime\":\"2025-12-06T05:46:50Z\"}");
    json_t *j = job("u1", NULL);
    struct run r = decide(s, j, NULL, T0 + 5); /* the Pod not (yet) in the cache */
    assert_null(r.d.status);
    assert_string_equal(r.d.to, "Running");
    json_decref(j);
    json_decref(s);
}

static void test_whose_job(void **state)
{
    (void)state;
    json_t *s = session(NULL);
    /* an earlier session of the same name: wait for garbage collection */
    json_t *j = job("old-uid", NULL);
    struct run r = decide(s, j, NULL, T0);
    assert_int_equal(r.d.action, CO_ACT_WAIT);
    assert_null(r.d.status);
    json_decref(j);
    /* unowned, labelled for this session (render-job.sh): adopted */
    j = job(NULL, NULL);
    r = decide(s, j, NULL, T0);
    assert_string_equal(r.phase, "Pending");
    json_decref(r.d.status);
    /* unowned and labelled for another session: refused */
    json_object_set_new(json_object_get(json_object_get(j, "metadata"), "labels"),
                        "vteam.ambient-code/agentic-session", json_string("other"));
    r = decide(s, j, NULL, T0);
    assert_string_equal(r.phase, "Failed");
    assert_non_null(strstr(r.message, "is not this session's"));
    json_decref(r.d.status);
    json_decref(j);
    json_decref(s);
}

static void test_a_bad_spec_fails_at_once(void **state)
{
    (void)state;
    json_t *s = session(NULL);
    struct co_observed in = {.session = s,
                             .spec_error = "spec.timeout must be a whole number of seconds",
                             .now = T0,
                             .start_timeout_s = 600};
    struct co_decision d;
    assert_int_equal(co_decide(&in, &d), 0);
    assert_int_equal(d.action, CO_ACT_NONE);
    assert_string_equal(json_string_value(json_object_get(d.status, "phase")), "Failed");
    assert_non_null(
        strstr(json_string_value(json_object_get(d.status, "message")), "spec.timeout"));
    json_decref(d.status);
    json_decref(s);
}

static void test_times(void **state)
{
    (void)state;
    char buf[32];
    co_rfc3339(T0, buf, sizeof buf);
    assert_string_equal(buf, "2025-12-06T05:46:40Z");
    assert_int_equal(co_parse_rfc3339(buf), T0);
    assert_int_equal(co_parse_rfc3339("2025-12-06T05:46:50.123456Z"),
                     co_parse_rfc3339("2025-12-06T05:46:50Z"));
    assert_int_equal(co_parse_rfc3339("2025-12-06T05:46:50+01:00"), -1);
    assert_int_equal(co_parse_rfc3339("yesterday"), -1);
    assert_int_equal(co_parse_rfc3339(NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_new_session_gets_its_job),
        cmocka_unit_test(test_pending_running_completed),
        cmocka_unit_test(test_the_pod_may_lag_the_job),
        cmocka_unit_test(test_a_failed_runner_says_why),
        cmocka_unit_test(test_a_pod_that_cannot_start),
        cmocka_unit_test(test_a_deleted_job_fails_the_session),
        cmocka_unit_test(test_a_phase_never_goes_back),
        cmocka_unit_test(test_whose_job),
        cmocka_unit_test(test_a_bad_spec_fails_at_once),
        cmocka_unit_test(test_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
