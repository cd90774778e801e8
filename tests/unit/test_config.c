/* test_config.c - LANGFUSE_* variables, their errors, and what a bad config does. */
#include "cm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "langfuse/langfuse.h"

int lf__config_check(const struct lf_config *cfg, char *errbuf, size_t errlen);

static const char *vars[] = {"LANGFUSE_ENABLED",        "LANGFUSE_PUBLIC_KEY",
                             "LANGFUSE_SECRET_KEY",     "LANGFUSE_HOST",
                             "LANGFUSE_BASE_URL",       "LANGFUSE_TRANSPORT",
                             "LANGFUSE_SAMPLE_RATE",    "LANGFUSE_TRACING_ENVIRONMENT",
                             "LANGFUSE_RELEASE",        "LANGFUSE_FLUSH_AT",
                             "LANGFUSE_FLUSH_INTERVAL", "LANGFUSE_TIMEOUT",
                             "LANGFUSE_FLUSH_TIMEOUT",  "LANGFUSE_SPOOL_DIR",
                             "LANGFUSE_MASK_MESSAGES",  "LANGFUSE_DEBUG",
                             "LANGFUSE_MAX_QUEUE_BYTES"};

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    return 0;
}

static void test_defaults(void **state)
{
    (void)state;
    struct lf_config c;
    char err[256];
    lf_config_init(&c);
    assert_int_equal(lf_config_from_env(&c, err, sizeof(err)), LF_OK);
    assert_string_equal(c.host, "http://langfuse-web.langfuse.svc.cluster.local:3000");
    assert_int_equal(c.transport, LF_TRANSPORT_OTLP);
    assert_true(c.sample_rate == 1.0);
    assert_null(c.public_key);
    assert_int_equal(c.gzip, 1);
}

static void test_every_variable(void **state)
{
    (void)state;
    setenv("LANGFUSE_ENABLED", "yes", 1);
    setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-1", 1);
    setenv("LANGFUSE_SECRET_KEY", "sk-lf-1", 1);
    setenv("LANGFUSE_BASE_URL", "http://base:1", 1);
    setenv("LANGFUSE_TRANSPORT", "ingestion", 1);
    setenv("LANGFUSE_SAMPLE_RATE", "0.25", 1);
    setenv("LANGFUSE_TRACING_ENVIRONMENT", "staging", 1);
    setenv("LANGFUSE_RELEASE", "v9", 1);
    setenv("LANGFUSE_FLUSH_AT", "10", 1);
    setenv("LANGFUSE_FLUSH_INTERVAL", "0.5", 1);
    setenv("LANGFUSE_TIMEOUT", "3", 1);
    setenv("LANGFUSE_FLUSH_TIMEOUT", "2.5", 1);
    setenv("LANGFUSE_SPOOL_DIR", "/var/spool/lf", 1);
    setenv("LANGFUSE_MASK_MESSAGES", "TRUE", 1);
    setenv("LANGFUSE_DEBUG", "0", 1);
    setenv("LANGFUSE_MAX_QUEUE_BYTES", "1048576", 1);
    struct lf_config c;
    char err[256];
    lf_config_init(&c);
    c.enabled = 0;
    assert_int_equal(lf_config_from_env(&c, err, sizeof(err)), LF_OK);
    assert_int_equal(c.enabled, 1);
    assert_string_equal(c.public_key, "pk-lf-1");
    assert_string_equal(c.secret_key, "sk-lf-1");
    assert_string_equal(c.host, "http://base:1");
    assert_int_equal(c.transport, LF_TRANSPORT_INGESTION);
    assert_true(c.sample_rate == 0.25);
    assert_string_equal(c.environment, "staging");
    assert_string_equal(c.release, "v9");
    assert_int_equal(c.flush_at, 10);
    assert_int_equal(c.flush_interval_ms, 500);
    assert_int_equal(c.request_timeout_ms, 3000);
    assert_int_equal(c.flush_timeout_ms, 2500);
    assert_string_equal(c.spool_dir, "/var/spool/lf");
    assert_int_equal(c.mask_messages, 1);
    assert_int_equal(c.debug, 0);
    assert_int_equal(c.max_queue_bytes, 1048576);
    /* LANGFUSE_HOST wins over LANGFUSE_BASE_URL */
    setenv("LANGFUSE_HOST", "https://host:2", 1);
    assert_int_equal(lf_config_from_env(&c, err, sizeof(err)), LF_OK);
    assert_string_equal(c.host, "https://host:2");
    assert_int_equal(lf__config_check(&c, err, sizeof(err)), LF_OK);
}

static void test_bad_values_name_the_variable(void **state)
{
    (void)state;
    static const struct {
        const char *var, *value;
    } bad[] = {
        {"LANGFUSE_ENABLED", "maybe"},      {"LANGFUSE_TRANSPORT", "grpc"},
        {"LANGFUSE_SAMPLE_RATE", "1.5"},    {"LANGFUSE_SAMPLE_RATE", "half"},
        {"LANGFUSE_FLUSH_AT", "0"},         {"LANGFUSE_FLUSH_AT", "2.5"},
        {"LANGFUSE_FLUSH_INTERVAL", "10s"}, {"LANGFUSE_TIMEOUT", "-1"},
        {"LANGFUSE_FLUSH_TIMEOUT", "abc"},  {"LANGFUSE_MASK_MESSAGES", "2"},
        {"LANGFUSE_DEBUG", "loud"},         {"LANGFUSE_MAX_QUEUE_BYTES", "12"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        clear_env(NULL);
        setenv(bad[i].var, bad[i].value, 1);
        struct lf_config c;
        char err[256];
        lf_config_init(&c);
        assert_int_equal(lf_config_from_env(&c, err, sizeof(err)), LF_ERR_INVALID);
        assert_non_null(strstr(err, bad[i].var));
        assert_non_null(strstr(err, bad[i].value));
        assert_null(strchr(err, '\n'));
    }
}

static void test_check(void **state)
{
    (void)state;
    struct lf_config c;
    char err[256];
    lf_config_init(&c);
    assert_int_equal(lf__config_check(&c, err, sizeof(err)), LF_ERR_INVALID);
    assert_non_null(strstr(err, "LANGFUSE_PUBLIC_KEY"));
    c.public_key = "pk";
    assert_int_equal(lf__config_check(&c, err, sizeof(err)), LF_ERR_INVALID);
    assert_non_null(strstr(err, "LANGFUSE_SECRET_KEY"));
    c.secret_key = "sk";
    c.host = "ftp://x";
    assert_int_equal(lf__config_check(&c, err, sizeof(err)), LF_ERR_INVALID);
    assert_non_null(strstr(err, "LANGFUSE_HOST"));
    c.host = "http://x";
    c.max_event_bytes = c.max_request_bytes;
    assert_int_equal(lf__config_check(&c, err, sizeof(err)), LF_ERR_INVALID);
}

struct logged {
    int lines;
    char last[512];
};

static void capture(void *ud, enum lf_log_level level, const char *msg)
{
    struct logged *l = ud;
    (void)level;
    l->lines++;
    snprintf(l->last, sizeof(l->last), "%s", msg);
}

static void test_missing_keys_disable_with_one_warning(void **state)
{
    (void)state;
    struct logged l = {0};
    struct lf_config c;
    lf_config_init(&c);
    c.log = capture;
    c.log_ud = &l;
    lf_client *cl = lf_client_new(&c);
    assert_non_null(cl);
    assert_false(lf_client_enabled(cl));
    assert_int_equal(l.lines, 1);
    assert_non_null(strstr(l.last, "LANGFUSE_PUBLIC_KEY"));
    /* every call is a harmless no-op */
    lf_obs *t = lf_trace_start(cl, "x", NULL);
    assert_null(t);
    lf_obs_set_input_string(t, "ignored");
    lf_obs_end(lf_obs_start(t, LF_OBS_SPAN, "child"));
    assert_int_equal(lf_client_flush(cl, 10), LF_ERR_DISABLED);
    lf_client_free(cl);
    assert_int_equal(l.lines, 1);
}

static void test_bad_env_disables_client(void **state)
{
    (void)state;
    setenv("LANGFUSE_ENABLED", "true", 1);
    setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-1", 1);
    setenv("LANGFUSE_SECRET_KEY", "sk-lf-1", 1);
    setenv("LANGFUSE_TIMEOUT", "soon", 1);
    lf_client *cl = lf_client_new_from_env();
    assert_non_null(cl);
    assert_false(lf_client_enabled(cl));
    lf_client_free(cl);
    /* and without LANGFUSE_ENABLED the env client stays off */
    clear_env(NULL);
    setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-1", 1);
    setenv("LANGFUSE_SECRET_KEY", "sk-lf-1", 1);
    cl = lf_client_new_from_env();
    assert_false(lf_client_enabled(cl));
    lf_client_free(cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_every_variable, clear_env),
        cmocka_unit_test_setup(test_bad_values_name_the_variable, clear_env),
        cmocka_unit_test_setup(test_check, clear_env),
        cmocka_unit_test_setup(test_missing_keys_disable_with_one_warning, clear_env),
        cmocka_unit_test_setup(test_bad_env_disables_client, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
