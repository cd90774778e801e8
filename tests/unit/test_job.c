/* test_job.c - the Job from the real, compiled-in template: every placeholder filled (none
 * left, none inside a longer value), the owner reference and namespace set, the session's
 * own environment appended but never over what the Job sets, values that YAML would
 * retype (a prompt "true", a timeout "0600") kept as strings. */
#include "cm.h"

#include <string.h>

#include "job.h"

static json_t *session(void)
{
    json_error_t e;
    json_t *s =
        json_loads("{\"apiVersion\":\"vteam.ambient-code/v1alpha1\",\"kind\":\"AgenticSession\","
                   "\"metadata\":{\"name\":\"fix-1\",\"namespace\":\"team\",\"uid\":\"u-1\"},"
                   "\"spec\":{\"prompt\":\"true\",\"timeout\":\"0600\",\"interactive\":false,"
                   "\"environmentVariables\":{\"MY_FLAG\":\"on\",\"SESSION_ID\":\"hijack\"}}}",
                   0, &e);
    assert_non_null(s);
    return s;
}

static const char *env_value(const json_t *container, const char *name)
{
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(container, "env"), i, e)
    {
        if (!strcmp(json_string_value(json_object_get(e, "name")), name))
            return json_string_value(json_object_get(e, "value"));
    }
    return NULL;
}

/* No "${" placeholder of render-job.sh's left anywhere in v. */
static void no_placeholder(const json_t *v)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strstr(s, "${") &&
            strchr(s, '\n') == NULL) /* the clone script's own ${...} are multi-line */
            fail_msg("placeholder left: %s", s);
    }
    const char *k;
    const json_t *x;
    size_t i;
    if (json_is_object(v)) json_object_foreach((json_t *)v, k, x) no_placeholder(x);
    if (json_is_array(v)) json_array_foreach(v, i, x) no_placeholder(x);
}

static void test_the_job_of_a_session(void **state)
{
    (void)state;
    json_t *s = session();
    struct co_settings st;
    char err[256] = "", refused[256] = "";
    assert_int_equal(co_settings_read(s, &st, err, sizeof err), 0);
    struct co_job_opts o = {"registry/ccrunner:1", "anthropic-api-key", "ccrunner-bot-token", NULL,
                            NULL};
    json_t *job = co_job_build(s, &st, &o, refused, sizeof refused, err, sizeof err);
    if (!job) fail_msg("%s", err);
    no_placeholder(job);
    const json_t *meta = json_object_get(job, "metadata");
    assert_string_equal(json_string_value(json_object_get(job, "kind")), "Job");
    assert_string_equal(json_string_value(json_object_get(meta, "name")), "fix-1-job");
    assert_string_equal(json_string_value(json_object_get(meta, "namespace")), "team");
    const json_t *owner = json_array_get(json_object_get(meta, "ownerReferences"), 0);
    assert_string_equal(json_string_value(json_object_get(owner, "uid")), "u-1");
    assert_string_equal(json_string_value(json_object_get(owner, "kind")), "AgenticSession");
    assert_true(json_is_true(json_object_get(owner, "controller")));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(job, "spec"), "backoffLimit")), 0);
    const json_t *pod =
        json_object_get(json_object_get(json_object_get(job, "spec"), "template"), "spec");
    const json_t *runner = json_array_get(json_object_get(pod, "containers"), 0);
    assert_string_equal(json_string_value(json_object_get(runner, "image")), "registry/ccrunner:1");
    assert_string_equal(env_value(runner, "INITIAL_PROMPT"), "true");
    assert_string_equal(env_value(runner, "TIMEOUT"), "0600");
    assert_string_equal(env_value(runner, "SESSION_ID"), "fix-1");
    assert_string_equal(env_value(runner, "INTERACTIVE"), "false");
    assert_string_equal(env_value(runner, "MY_FLAG"), "on");
    assert_string_equal(env_value(runner, "WEBSOCKET_URL"), ""); /* none: stdout only */
    assert_string_equal(env_value(runner, "PERMISSION_MODE"), "");
    assert_string_equal(refused, "SESSION_ID");
    const json_t *key = json_object_get(
        json_object_get(json_array_get(json_object_get(runner, "env"), 0), "valueFrom"),
        "fieldRef");
    assert_string_equal(json_string_value(json_object_get(key, "fieldPath")), "metadata.namespace");
    json_decref(job);
    co_settings_clear(&st);
    json_decref(s);
}

/* --websocket-url and --permission-mode reach every runner, the URL made the session's. */
static void test_the_backend_and_the_permission_mode(void **state)
{
    (void)state;
    json_t *s = session();
    struct co_settings st;
    char err[256] = "", refused[256] = "";
    assert_int_equal(co_settings_read(s, &st, err, sizeof err), 0);
    struct co_job_opts o = {"registry/ccrunner:1", "anthropic-api-key", "ccrunner-bot-token",
                            "wss://backend.example/api/projects/{namespace}/sessions/{name}/ws",
                            "plan"};
    json_t *job = co_job_build(s, &st, &o, refused, sizeof refused, err, sizeof err);
    if (!job) fail_msg("%s", err);
    const json_t *runner = json_array_get(
        json_object_get(
            json_object_get(json_object_get(json_object_get(job, "spec"), "template"), "spec"),
            "containers"),
        0);
    assert_string_equal(env_value(runner, "WEBSOCKET_URL"),
                        "wss://backend.example/api/projects/team/sessions/fix-1/ws");
    assert_string_equal(env_value(runner, "PERMISSION_MODE"), "plan");
    json_decref(job);
    /* a URL longer than the Job can hold is one line, not a cut URL */
    char long_url[1100] = "ws://h/";
    memset(long_url + 7, 'p', 1050);
    long_url[1057] = '\0';
    o.websocket_url = long_url;
    assert_null(co_job_build(s, &st, &o, refused, sizeof refused, err, sizeof err));
    assert_non_null(strstr(err, "WebSocket URL"));
    co_settings_clear(&st);
    json_decref(s);

    assert_null(co_job_check_websocket_url("ws://b/{namespace}/{name}"));
    assert_null(co_job_check_websocket_url("wss://b/x"));
    assert_non_null(co_job_check_websocket_url("http://b/x"));
    assert_non_null(co_job_check_websocket_url("ws://b/{session}"));
}

static void test_names(void **state)
{
    (void)state;
    char out[CO_JOB_NAME_MAX + 1];
    char name[61];
    assert_int_equal(co_job_name("a", out, sizeof out), 0);
    assert_string_equal(out, "a-job");
    memset(name, 'x', 59), name[59] = '\0';
    assert_int_equal(co_job_name(name, out, sizeof out), 0);
    assert_int_equal(strlen(out), 63);
    memset(name, 'x', 60), name[60] = '\0';
    assert_int_equal(co_job_name(name, out, sizeof out), -1);
}

static void test_the_template_parses_and_has_the_runner(void **state)
{
    (void)state;
    char err[256] = "";
    const json_t *t = co_job_template(err, sizeof err);
    if (!t) fail_msg("%s", err);
    assert_string_equal(json_string_value(json_object_get(t, "apiVersion")), "batch/v1");
    const json_t *pod =
        json_object_get(json_object_get(json_object_get(t, "spec"), "template"), "spec");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(pod, "containers"), 0), "name")),
                        "runner");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_job_of_a_session),
        cmocka_unit_test(test_the_backend_and_the_permission_mode),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_the_template_parses_and_has_the_runner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
