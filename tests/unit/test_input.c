/* test_input.c - interactive input lines: every accepted form, and a reason for every
 * malformed one. */
#include "cm.h"

#include <string.h>

#include "input.h"

static enum cc_input_kind kind_of(const char *line, struct cc_input *in)
{
    cc_input_parse(line, strlen(line), in);
    return in->kind;
}

static void test_forms(void **state)
{
    (void)state;
    struct cc_input in;
    assert_int_equal(kind_of("{\"type\":\"user_message\",\"payload\":{\"content\":\"hi\"}}", &in),
                     CC_IN_MESSAGE);
    assert_string_equal(in.text, "hi");
    cc_input_clear(&in);
    assert_int_equal(kind_of("{\"type\":\"user_message\",\"payload\":{\"text\":\"yo\"}}", &in),
                     CC_IN_MESSAGE);
    assert_string_equal(in.text, "yo");
    cc_input_clear(&in);
    assert_int_equal(kind_of("{\"type\":\"interrupt\"}", &in), CC_IN_INTERRUPT);
    assert_int_equal(kind_of("{\"type\":\"end_session\"}", &in), CC_IN_END);
    assert_int_equal(kind_of("{\"type\":\"terminate\"}", &in), CC_IN_END);
    assert_int_equal(kind_of("{\"type\":\"stop\"}", &in), CC_IN_END);
    assert_int_equal(kind_of("   \r", &in), CC_IN_NONE);
}

static void test_malformed(void **state)
{
    (void)state;
    struct cc_input in;
    assert_int_equal(kind_of("hello", &in), CC_IN_INVALID);
    assert_non_null(strstr(in.why, "not JSON"));
    assert_int_equal(kind_of("{\"payload\":{}}", &in), CC_IN_INVALID);
    assert_non_null(strstr(in.why, "no \"type\""));
    assert_int_equal(kind_of("{\"type\":\"user_message\",\"payload\":{\"content\":\"\"}}", &in),
                     CC_IN_INVALID);
    assert_non_null(strstr(in.why, "payload.content"));
    assert_int_equal(kind_of("{\"type\":\"user_message\",\"payload\":{\"content\":3}}", &in),
                     CC_IN_INVALID);
    assert_int_equal(kind_of("{\"type\":\"dance\"}", &in), CC_IN_INVALID);
    assert_non_null(strstr(in.why, "\"dance\""));
    assert_int_equal(kind_of("[\"type\"]", &in), CC_IN_INVALID);
    cc_input_clear(&in);
    cc_input_clear(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
