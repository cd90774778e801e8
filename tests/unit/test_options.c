/* test_options.c - ccrunner's options and environment: precedence, aliases, and one clear
 * line for every bad value or missing prerequisite. */
#include "cm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "testutil.h"

static const char *vars[] = {"INITIAL_PROMPT",
                             "PROMPT",
                             "INTERACTIVE",
                             "LLM_MODEL",
                             "WORKSPACE_PATH",
                             "SESSION_ID",
                             "AGENTIC_SESSION_NAME",
                             "TIMEOUT",
                             "IDLE_TIMEOUT",
                             "PERMISSION_MODE",
                             "SYSTEM_PROMPT",
                             "CLAUDE_CODE_PATH",
                             "ANTHROPIC_API_KEY",
                             "ANTHROPIC_BASE_URL",
                             "USE_VERTEX_AI",
                             "CLAUDE_CODE_USE_VERTEX",
                             "VERTEX_PROJECT_ID",
                             "ANTHROPIC_VERTEX_PROJECT_ID",
                             "VERTEX_LOCATION",
                             "CLOUD_ML_REGION",
                             "GOOGLE_APPLICATION_CREDENTIALS",
                             "AGENTIC_SESSION_NAMESPACE",
                             "NAMESPACE",
                             "PROJECT_NAME",
                             "USER_ID",
                             "USER_NAME",
                             "WEBSOCKET_URL",
                             "BOT_TOKEN",
                             "INITIAL_PROMPT_FILE",
                             NULL};

static int clean(void **state)
{
    (void)state;
    for (int i = 0; vars[i]; i++)
        unsetenv(vars[i]);
    return 0;
}

static int parse(struct cc_options *o, char *err, int argc, ...)
{
    char *argv[32] = {"ccrunner"};
    va_list ap;
    va_start(ap, argc);
    for (int i = 1; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    return cc_options_parse(o, argc, argv, err, 256);
}

static void test_defaults_and_env(void **state)
{
    (void)state;
    struct cc_options o;
    char err[256];
    assert_int_equal(parse(&o, err, 1), CC_OPT_OK);
    assert_string_equal(o.workspace, ".");
    assert_string_equal(o.permission_mode, "acceptEdits");
    assert_string_equal(o.vertex_location, "us-east5");
    assert_false(o.interactive);
    assert_true(o.timeout_s == 0);
    assert_true(o.idle_timeout_s == 3600);
    setenv("PROMPT", "from alias", 1);
    setenv("AGENTIC_SESSION_NAME", "sess-a", 1);
    setenv("NAMESPACE", "team-a", 1);
    setenv("INTERACTIVE", "yes", 1);
    setenv("TIMEOUT", "90.5", 1);
    setenv("IDLE_TIMEOUT", "120", 1);
    setenv("CLAUDE_CODE_USE_VERTEX", "1", 1);
    setenv("ANTHROPIC_VERTEX_PROJECT_ID", "proj", 1);
    setenv("CLOUD_ML_REGION", "europe-west4", 1);
    assert_int_equal(parse(&o, err, 1), CC_OPT_OK);
    assert_string_equal(o.prompt, "from alias");
    assert_string_equal(o.session_id, "sess-a");
    assert_string_equal(o.namespace_name, "team-a");
    assert_true(o.interactive);
    assert_true(o.timeout_s == 90.5);
    assert_true(o.idle_timeout_s == 120);
    assert_true(o.use_vertex);
    assert_string_equal(o.vertex_project, "proj");
    assert_string_equal(o.vertex_location, "europe-west4");
    /* the main names win over the aliases */
    setenv("INITIAL_PROMPT", "main", 1);
    setenv("SESSION_ID", "sess-main", 1);
    setenv("AGENTIC_SESSION_NAMESPACE", "ns-main", 1);
    assert_int_equal(parse(&o, err, 1), CC_OPT_OK);
    assert_string_equal(o.prompt, "main");
    assert_string_equal(o.session_id, "sess-main");
    assert_string_equal(o.namespace_name, "ns-main");
}

static void test_flags_win_over_env(void **state)
{
    (void)state;
    setenv("INITIAL_PROMPT", "env prompt", 1);
    setenv("LLM_MODEL", "env-model", 1);
    setenv("TIMEOUT", "10", 1);
    struct cc_options o;
    char err[256];
    assert_int_equal(parse(&o, err, 13, "--model", "claude-sonnet-4-5", "--timeout=30", "-i",
                           "--add-dir", "/tmp", "--add-dir=/var", "--output", "text", "--max-turns",
                           "7", "the prompt"),
                     CC_OPT_OK);
    assert_string_equal(o.prompt, "the prompt");
    assert_string_equal(o.model, "claude-sonnet-4-5");
    assert_true(o.timeout_s == 30);
    assert_true(o.interactive);
    assert_int_equal(o.n_add_dirs, 2);
    assert_string_equal(o.add_dirs[1], "/var");
    assert_int_equal(o.output, CC_OUTPUT_TEXT);
    assert_int_equal(o.max_turns, 7);
    assert_int_equal(parse(&o, err, 3, "-p", "dash p"), CC_OPT_OK);
    assert_string_equal(o.prompt, "dash p");
    assert_int_equal(parse(&o, err, 3, "--", "-starts with a dash"), CC_OPT_OK);
    assert_string_equal(o.prompt, "-starts with a dash");
    assert_int_equal(parse(&o, err, 2, "--help"), CC_OPT_HELP);
    assert_int_equal(parse(&o, err, 2, "--version"), CC_OPT_VERSION);
}

static void test_bad_values_one_clear_line(void **state)
{
    (void)state;
    struct cc_options o;
    char err[256];
    static const struct {
        const char *env, *value, *flag, *flagval, *expect;
    } cases[] = {
        {"TIMEOUT", "abc", NULL, NULL, "TIMEOUT=abc"},
        {"TIMEOUT", "10s", NULL, NULL, "TIMEOUT=10s"},
        {"IDLE_TIMEOUT", "never", NULL, NULL, "IDLE_TIMEOUT=never"},
        {NULL, NULL, "--idle-timeout", "0", "--idle-timeout=0"},
        {"INTERACTIVE", "maybe", NULL, NULL, "INTERACTIVE=maybe"},
        {"USE_VERTEX_AI", "perhaps", NULL, NULL, "USE_VERTEX_AI=perhaps"},
        {"PERMISSION_MODE", "yolo", NULL, NULL, "permission mode=yolo"},
        {NULL, NULL, "--timeout", "-5", "--timeout=-5"},
        {NULL, NULL, "--max-turns", "0", "--max-turns=0"},
        {NULL, NULL, "--output", "xml", "--output=xml"},
        {NULL, NULL, "--bogus", "x", "unknown option --bogus"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        clean(NULL);
        if (cases[i].env) setenv(cases[i].env, cases[i].value, 1);
        int rc =
            cases[i].flag ? parse(&o, err, 3, cases[i].flag, cases[i].flagval) : parse(&o, err, 1);
        assert_int_equal(rc, CC_OPT_USAGE);
        if (!strstr(err, cases[i].expect))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].expect);
        assert_null(strchr(err, '\n'));
    }
    assert_int_equal(parse(&o, err, 2, "--model"), CC_OPT_USAGE);
    assert_non_null(strstr(err, "--model needs a value"));
    assert_int_equal(parse(&o, err, 3, "one", "two"), CC_OPT_USAGE);
    assert_non_null(strstr(err, "more than one prompt"));
}

static void test_prerequisites(void **state)
{
    (void)state;
    struct cc_options o;
    char err[256];
    assert_int_equal(parse(&o, err, 1), CC_OPT_OK);
    assert_int_equal(cc_options_check(&o, err, sizeof(err)), CC_OPT_USAGE);
    assert_non_null(strstr(err, "no prompt"));
    assert_int_equal(parse(&o, err, 2, "hello"), CC_OPT_OK);
    assert_int_equal(cc_options_check(&o, err, sizeof(err)), CC_OPT_USAGE);
    assert_non_null(strstr(err, "ANTHROPIC_API_KEY"));
    setenv("ANTHROPIC_API_KEY", "sk-ant-test", 1);
    assert_int_equal(parse(&o, err, 4, "--workspace", "/nonexistent/ws", "hello"), CC_OPT_OK);
    assert_int_equal(cc_options_check(&o, err, sizeof(err)), CC_OPT_USAGE);
    assert_non_null(strstr(err, "/nonexistent/ws"));
    char *dir = tu_mkdtemp("cc-ws");
    assert_int_equal(parse(&o, err, 4, "--workspace", dir, "hello"), CC_OPT_OK);
    assert_int_equal(cc_options_check(&o, err, sizeof(err)), CC_OPT_OK);
    assert_int_equal(parse(&o, err, 6, "--workspace", dir, "--add-dir", "/nonexistent/x", "hi"),
                     CC_OPT_OK);
    assert_int_equal(cc_options_check(&o, err, sizeof(err)), CC_OPT_USAGE);
    setenv("WEBSOCKET_URL", "http://backend", 1);
    assert_int_equal(parse(&o, err, 4, "--workspace", dir, "hi"), CC_OPT_OK);
    assert_int_equal(cc_options_check(&o, err, sizeof(err)), CC_OPT_USAGE);
    assert_non_null(strstr(err, "ws://"));
    unsetenv("WEBSOCKET_URL");
    /* Vertex: the project is required, credentials must be readable */
    unsetenv("ANTHROPIC_API_KEY");
    setenv("USE_VERTEX_AI", "true", 1);
    assert_int_equal(parse(&o, err, 4, "--workspace", dir, "hi"), CC_OPT_OK);
    assert_int_equal(cc_options_check(&o, err, sizeof(err)), CC_OPT_USAGE);
    assert_non_null(strstr(err, "VERTEX_PROJECT_ID"));
    setenv("VERTEX_PROJECT_ID", "p", 1);
    setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/creds.json", 1);
    assert_int_equal(parse(&o, err, 4, "--workspace", dir, "hi"), CC_OPT_OK);
    assert_int_equal(cc_options_check(&o, err, sizeof(err)), CC_OPT_USAGE);
    assert_non_null(strstr(err, "GOOGLE_APPLICATION_CREDENTIALS"));
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    assert_int_equal(parse(&o, err, 4, "--workspace", dir, "hi"), CC_OPT_OK);
    assert_int_equal(cc_options_check(&o, err, sizeof(err)), CC_OPT_OK);
    /* interactive needs no prompt */
    unsetenv("USE_VERTEX_AI");
    setenv("ANTHROPIC_API_KEY", "k", 1);
    assert_int_equal(parse(&o, err, 4, "--workspace", dir, "-i"), CC_OPT_OK);
    assert_int_equal(cc_options_check(&o, err, sizeof(err)), CC_OPT_OK);
    tu_rmrf(dir);
    free(dir);
}

/* A prompt past the kernel's 128 KiB limit on one argument comes from a file (or stdin);
 * flags win over env, and the prompt is given once. */
static void test_prompt_file(void **state)
{
    (void)state;
    struct cc_options o;
    char err[256];
    char *dir = tu_mkdtemp("cc-opt-prompt");
    char path[512];
    snprintf(path, sizeof path, "%s/prompt.txt", dir);
    size_t n = 300000; /* over 128 KiB */
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    FILE *f = fopen(path, "w");
    fputs(big, f);
    fclose(f);
    assert_int_equal(parse(&o, err, 3, "--prompt-file", path), CC_OPT_OK);
    assert_non_null(o.prompt);
    assert_int_equal(strlen(o.prompt), n);
    assert_memory_equal(o.prompt, big, n);
    setenv("INITIAL_PROMPT_FILE", path, 1);
    assert_int_equal(parse(&o, err, 1), CC_OPT_OK);
    assert_int_equal(strlen(o.prompt), n);
    assert_int_equal(parse(&o, err, 2, "a flag prompt wins"), CC_OPT_OK);
    assert_string_equal(o.prompt, "a flag prompt wins");
    setenv("INITIAL_PROMPT", "x", 1);
    assert_int_equal(parse(&o, err, 1), CC_OPT_USAGE);
    assert_non_null(strstr(err, "give the prompt once"));
    unsetenv("INITIAL_PROMPT");
    unsetenv("INITIAL_PROMPT_FILE");
    assert_int_equal(parse(&o, err, 5, "-p", "x", "--prompt-file", path), CC_OPT_USAGE);
    assert_non_null(strstr(err, "give the prompt once"));
    assert_int_equal(parse(&o, err, 3, "--prompt-file", "/no/such/file"), CC_OPT_USAGE);
    assert_non_null(strstr(err, "/no/such/file"));
    assert_int_equal(parse(&o, err, 4, "-i", "--prompt-file", "-"), CC_OPT_USAGE);
    assert_non_null(strstr(err, "interactive"));
    free(big);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults_and_env, clean),
        cmocka_unit_test_setup(test_flags_win_over_env, clean),
        cmocka_unit_test_setup(test_bad_values_one_clear_line, clean),
        cmocka_unit_test_setup(test_prerequisites, clean),
        cmocka_unit_test_setup(test_prompt_file, clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
