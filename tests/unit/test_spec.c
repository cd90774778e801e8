/* test_spec.c - an AgenticSession in the seed's shape and in the platform's becomes the
 * same runner settings; credentials and Langfuse keys cannot be set through it; bad specs
 * are refused with a line naming the field. */
#include "cm.h"

#include <string.h>

#include "spec.h"

static json_t *session(const char *spec_json)
{
    char doc[4096];
    snprintf(doc, sizeof doc,
             "{\"metadata\":{\"name\":\"s1\",\"namespace\":\"ns\",\"uid\":\"u1\"},\"spec\":%s}",
             spec_json);
    json_error_t e;
    json_t *s = json_loads(doc, 0, &e);
    assert_non_null(s);
    return s;
}

static void test_the_seed_shape(void **state)
{
    (void)state;
    json_t *s = session(
        "{\"prompt\":\"Fix it\",\"interactive\":false,\"timeout\":1800,"
        "\"repos\":[{\"url\":\"https://x/a.git\",\"branch\":\"main\"},{\"url\":\"https://x/b\"}],"
        "\"llmSettings\":{\"model\":\"claude-sonnet-4-5\"}}");
    struct co_settings st;
    char err[256];
    assert_int_equal(co_settings_read(s, &st, err, sizeof err), 0);
    assert_string_equal(st.prompt, "Fix it");
    assert_string_equal(st.interactive, "false");
    assert_string_equal(st.timeout, "1800");
    assert_string_equal(st.idle_timeout, "");
    assert_string_equal(st.model, "claude-sonnet-4-5");
    assert_string_equal(st.repos, "https://x/a.git main\nhttps://x/b");
    assert_int_equal(json_array_size(st.env), 0);
    assert_string_equal(st.ignored, "");
    co_settings_clear(&st);
    json_decref(s);
}

static void test_the_platform_shape(void **state)
{
    (void)state;
    json_t *s = session(
        "{\"initialPrompt\":\"Go\",\"interactive\":true,\"timeout\":\"600\",\"inactivityTimeout\":"
        "120,"
        "\"userContext\":{\"userId\":\"u-42\",\"displayName\":\"Ada\",\"groups\":[\"g\"]},"
        "\"displayName\":\"Nice name\",\"llmSettings\":{\"model\":\"m\",\"temperature\":0.7},"
        "\"repos\":[{\"input\":{\"url\":\"https://x/c\",\"branch\":\"dev\"},\"autoPush\":true}],"
        "\"environmentVariables\":{\"ZED\":\"1\",\"ALPHA\":\"two "
        "words\",\"LANGFUSE_SECRET_KEY\":\"x\","
        "\"ANTHROPIC_API_KEY\":\"k\",\"BOT_TOKEN\":\"t\",\"1BAD\":\"v\",\"NUM\":5}}");
    struct co_settings st;
    char err[256];
    assert_int_equal(co_settings_read(s, &st, err, sizeof err), 0);
    assert_string_equal(st.prompt, "Go");
    assert_string_equal(st.interactive, "true");
    assert_string_equal(st.timeout, "600");
    assert_string_equal(st.idle_timeout, "120");
    assert_string_equal(st.user_id, "u-42");
    assert_string_equal(st.user_name, "Ada");
    assert_string_equal(st.repos, "https://x/c dev");
    /* kept in name order; reserved, invalid and non-string ones refused and listed */
    assert_int_equal(json_array_size(st.env), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(st.env, 0), "name")),
                        "ALPHA");
    assert_string_equal(json_string_value(json_object_get(json_array_get(st.env, 0), "value")),
                        "two words");
    assert_string_equal(json_string_value(json_object_get(json_array_get(st.env, 1), "name")),
                        "ZED");
    assert_non_null(strstr(st.refused, "LANGFUSE_SECRET_KEY"));
    assert_non_null(strstr(st.refused, "ANTHROPIC_API_KEY"));
    assert_non_null(strstr(st.refused, "BOT_TOKEN"));
    assert_non_null(strstr(st.refused, "1BAD"));
    assert_non_null(strstr(st.refused, "NUM"));
    assert_non_null(strstr(st.ignored, "spec.displayName"));
    assert_non_null(strstr(st.ignored, "autoPush"));
    assert_non_null(strstr(st.ignored, "temperature"));
    co_settings_clear(&st);
    json_decref(s);
}

static void test_the_seed_name_wins(void **state)
{
    (void)state;
    json_t *s = session("{\"prompt\":\"seed\",\"initialPrompt\":\"platform\"}");
    struct co_settings st;
    char err[256];
    assert_int_equal(co_settings_read(s, &st, err, sizeof err), 0);
    assert_string_equal(st.prompt, "seed");
    co_settings_clear(&st);
    json_decref(s);
}

static void refused(const char *spec, const char *needle)
{
    json_t *s = session(spec);
    struct co_settings st;
    char err[256] = "";
    assert_int_equal(co_settings_read(s, &st, err, sizeof err), -1);
    if (!strstr(err, needle)) fail_msg("error '%s' does not name '%s'", err, needle);
    assert_null(strchr(err, '\n'));
    assert_null(st.prompt); /* cleared */
    json_decref(s);
}

static void test_bad_specs_name_the_field(void **state)
{
    (void)state;
    refused("{}", "spec.prompt");
    refused("{\"interactive\":false}", "spec.prompt");
    refused("{\"prompt\":3}", "spec.prompt");
    refused("{\"prompt\":\"p\",\"timeout\":-5}", "spec.timeout");
    refused("{\"prompt\":\"p\",\"timeout\":\"ten\"}", "spec.timeout");
    refused("{\"prompt\":\"p\",\"interactive\":\"yes\"}", "spec.interactive");
    refused("{\"prompt\":\"p\",\"repos\":[{\"branch\":\"main\"}]}", "spec.repos[0]");
    refused("{\"prompt\":\"p\",\"repos\":[{\"url\":\"https://x y\"}]}", "spec.repos[0]");
    refused("{\"prompt\":\"p\",\"repos\":[{\"url\":\"https://x\\nrm -rf /\"}]}", "spec.repos[0]");
    refused("{\"prompt\":\"p\",\"environmentVariables\":[\"A=1\"]}", "spec.environmentVariables");
    refused("{\"prompt\":\"p\",\"llmSettings\":\"opus\"}", "spec.llmSettings");
    json_t *s = json_pack("{s:{s:s}}", "metadata", "name", "x");
    struct co_settings st;
    char err[256];
    assert_int_equal(co_settings_read(s, &st, err, sizeof err), -1);
    assert_non_null(strstr(err, "spec"));
    json_decref(s);
}

static void test_an_interactive_session_needs_no_prompt(void **state)
{
    (void)state;
    json_t *s = session("{\"interactive\":true}");
    struct co_settings st;
    char err[256];
    assert_int_equal(co_settings_read(s, &st, err, sizeof err), 0);
    assert_string_equal(st.prompt, "");
    co_settings_clear(&st);
    json_decref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_seed_shape),
        cmocka_unit_test(test_the_platform_shape),
        cmocka_unit_test(test_the_seed_name_wins),
        cmocka_unit_test(test_bad_specs_name_the_field),
        cmocka_unit_test(test_an_interactive_session_needs_no_prompt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
