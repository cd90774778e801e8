/* test_yaml.c - YAML to JSON (src/operator/yaml.c): plain scalars typed by the YAML 1.2 core
 * schema and quoted or block scalars kept as strings, nesting, the kubeconfig's shapes, the
 * standard tags, refusals (anchors and aliases, other tags, what JSON cannot hold, duplicate
 * keys, a second document) with 1-based positions, and the real runner Job template. */
#include "cm.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "yaml.h"

#ifndef CO_SOURCE_DIR
#error "CO_SOURCE_DIR must name the source tree (tests/CMakeLists.txt)"
#endif

static char err[512];

static json_t *load(const char *text)
{
    err[0] = '\0';
    return co_yaml_load(text, strlen(text), err, sizeof err);
}

/* text loaded; the test fails with the error when it does not load. */
static json_t *load_ok(const char *text)
{
    json_t *v = load(text);
    if (!v) fail_msg("did not load: %s\n%s", err, text);
    return v;
}

/* Loading text fails and err holds each of the NULL-terminated fragments. */
static void expect_error(const char *text, ...)
{
    json_t *v = load(text);
    if (v) {
        char *s = json_dumps(v, JSON_ENCODE_ANY);
        fail_msg("loaded %s from:\n%s", s, text);
    }
    va_list ap;
    va_start(ap, text);
    for (const char *frag; (frag = va_arg(ap, const char *));)
        if (!strstr(err, frag)) fail_msg("error \"%s\" lacks \"%s\"", err, frag);
    va_end(ap);
}

static void test_plain_scalars_typed_by_core_schema(void **state)
{
    (void)state;
    json_t *v = load_ok("n1: null\nn2: Null\nn3: NULL\nn4: ~\nn5:\n"
                        "b1: true\nb2: True\nb3: TRUE\nb4: false\nb5: False\nb6: FALSE\n"
                        "i1: 0\ni2: -17\ni3: +42\ni4: 0o17\ni5: 0x1F\ni6: 007\n"
                        "i7: 9223372036854775807\n"
                        "f1: 1.5\nf2: -2e3\nf3: .5\nf4: 1.\nf5: 6.02E+23\n"
                        "s1: yes\ns2: on\ns3: 0b101\ns4: 1_000\ns5: -0x1\ns6: 1.2.3\n"
                        "s7: nulls\ns8: 250m\ns9: 2Gi\ns10: hello world\n");
    for (int i = 1; i <= 5; i++) {
        char k[8];
        snprintf(k, sizeof k, "n%d", i);
        assert_true(json_is_null(json_object_get(v, k)));
    }
    assert_true(json_is_true(json_object_get(v, "b1")));
    assert_true(json_is_true(json_object_get(v, "b2")));
    assert_true(json_is_true(json_object_get(v, "b3")));
    assert_true(json_is_false(json_object_get(v, "b4")));
    assert_true(json_is_false(json_object_get(v, "b5")));
    assert_true(json_is_false(json_object_get(v, "b6")));
    static const struct {
        const char *key;
        json_int_t want;
    } ints[] = {{"i1", 0},
                {"i2", -17},
                {"i3", 42},
                {"i4", 15},
                {"i5", 31},
                {"i6", 7},
                {"i7", 9223372036854775807LL}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        json_t *x = json_object_get(v, ints[i].key);
        if (!json_is_integer(x)) fail_msg("%s is not an integer", ints[i].key);
        assert_true(json_integer_value(x) == ints[i].want);
    }
    static const struct {
        const char *key;
        double want;
    } reals[] = {{"f1", 1.5}, {"f2", -2000.0}, {"f3", 0.5}, {"f4", 1.0}, {"f5", 6.02e23}};
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
        json_t *x = json_object_get(v, reals[i].key);
        if (!json_is_real(x)) fail_msg("%s is not a real", reals[i].key);
        assert_true(json_real_value(x) == reals[i].want);
    }
    static const char *const strs[][2] = {
        {"s1", "yes"},   {"s2", "on"},    {"s3", "0b101"}, {"s4", "1_000"}, {"s5", "-0x1"},
        {"s6", "1.2.3"}, {"s7", "nulls"}, {"s8", "250m"},  {"s9", "2Gi"},   {"s10", "hello world"}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        assert_string_equal(json_string_value(json_object_get(v, strs[i][0])), strs[i][1]);
    json_decref(v);
}

static void test_quoted_and_block_scalars_are_strings(void **state)
{
    (void)state;
    json_t *v = load_ok("a: \"true\"\nb: '12'\nc: \"\"\nd: 'null'\n"
                        "e: |\n  123\n  line two\n"
                        "f: >\n  folded\n  text\n"
                        "g: |-\n  true\n"
                        "h: \"tab\\there\"\n");
    assert_string_equal(json_string_value(json_object_get(v, "a")), "true");
    assert_string_equal(json_string_value(json_object_get(v, "b")), "12");
    assert_string_equal(json_string_value(json_object_get(v, "c")), "");
    assert_string_equal(json_string_value(json_object_get(v, "d")), "null");
    assert_string_equal(json_string_value(json_object_get(v, "e")), "123\nline two\n");
    assert_string_equal(json_string_value(json_object_get(v, "f")), "folded text\n");
    assert_string_equal(json_string_value(json_object_get(v, "g")), "true");
    assert_string_equal(json_string_value(json_object_get(v, "h")), "tab\there");
    json_decref(v);
}

static void test_nesting_and_flow_style(void **state)
{
    (void)state;
    json_t *v = load_ok("top:\n"
                        "  list:\n"
                        "    - name: a\n"
                        "      ports: [80, 443]\n"
                        "    - {name: b, on: true}\n"
                        "    - - deep\n"
                        "      - 2\n"
                        "  empty_map: {}\n"
                        "  empty_list: []\n");
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"top\":{\"empty_list\":[],\"empty_map\":{},\"list\":["
                           "{\"name\":\"a\",\"ports\":[80,443]},{\"name\":\"b\",\"on\":true},"
                           "[\"deep\",2]]}}");
    free(s);
    json_decref(v);
    /* A sequence or a scalar at the top. */
    v = load_ok("- 1\n- two\n");
    assert_int_equal(json_array_size(v), 2);
    json_decref(v);
    v = load_ok("42\n");
    assert_true(json_is_integer(v) && json_integer_value(v) == 42);
    json_decref(v);
}

static void test_kubeconfig_shape(void **state)
{
    (void)state;
    json_t *v = load_ok("apiVersion: v1\n"
                        "kind: Config\n"
                        "clusters:\n"
                        "- cluster:\n"
                        "    certificate-authority-data: LS0tLS1CRUdJTg==\n"
                        "    server: https://127.0.0.1:6443\n"
                        "    insecure-skip-tls-verify: true\n"
                        "  name: kind\n"
                        "contexts:\n"
                        "- context:\n"
                        "    cluster: kind\n"
                        "    user: admin\n"
                        "    namespace: team-a\n"
                        "  name: kind-admin\n"
                        "current-context: kind-admin\n"
                        "preferences: {}\n"
                        "users:\n"
                        "- name: admin\n"
                        "  user:\n"
                        "    token: abc.def\n"
                        "    client-key-data: \"LS0=\"\n");
    json_t *cl = json_object_get(json_array_get(json_object_get(v, "clusters"), 0), "cluster");
    assert_string_equal(json_string_value(json_object_get(cl, "server")), "https://127.0.0.1:6443");
    assert_string_equal(json_string_value(json_object_get(cl, "certificate-authority-data")),
                        "LS0tLS1CRUdJTg==");
    assert_true(json_is_true(json_object_get(cl, "insecure-skip-tls-verify")));
    json_t *ctx = json_object_get(json_array_get(json_object_get(v, "contexts"), 0), "context");
    assert_string_equal(json_string_value(json_object_get(ctx, "namespace")), "team-a");
    assert_string_equal(json_string_value(json_object_get(v, "current-context")), "kind-admin");
    json_t *user = json_object_get(json_array_get(json_object_get(v, "users"), 0), "user");
    assert_string_equal(json_string_value(json_object_get(user, "token")), "abc.def");
    assert_true(json_is_object(json_object_get(v, "preferences")));
    json_decref(v);
}

static void test_standard_tags(void **state)
{
    (void)state;
    json_t *v = load_ok("a: !!str 123\nb: !!str true\nc: !!int \"7\"\nd: !!float 3\n"
                        "e: !!null ''\nf: !!bool \"false\"\ng: ! 12\nh: !!map {x: 1}\n"
                        "i: !!seq [1]\n");
    assert_string_equal(json_string_value(json_object_get(v, "a")), "123");
    assert_string_equal(json_string_value(json_object_get(v, "b")), "true");
    assert_true(json_integer_value(json_object_get(v, "c")) == 7);
    assert_true(json_is_real(json_object_get(v, "d")));
    assert_true(json_real_value(json_object_get(v, "d")) == 3.0);
    assert_true(json_is_null(json_object_get(v, "e")));
    assert_true(json_is_false(json_object_get(v, "f")));
    assert_string_equal(json_string_value(json_object_get(v, "g")), "12");
    assert_true(json_is_object(json_object_get(v, "h")));
    assert_true(json_is_array(json_object_get(v, "i")));
    json_decref(v);
    /* Verbatim form of a standard tag. */
    v = load_ok("a: !<tag:yaml.org,2002:str> 5\n");
    assert_string_equal(json_string_value(json_object_get(v, "a")), "5");
    json_decref(v);
}

static void test_other_tags_refused(void **state)
{
    (void)state;
    expect_error("a: 1\nb: !custom x\n", "line 2:4:", "!custom", "not supported", NULL);
    expect_error("a: !!binary aGVsbG8=\n", "line 1:4:", "binary", NULL);
    expect_error("a: !!timestamp 2001-12-14\n", "timestamp", NULL);
    expect_error("a: !!int abc\n", "line 1:4:", "not a valid int", NULL);
    expect_error("a: !!bool yes\n", "not a valid bool", NULL);
    expect_error("a: !!set {x: null}\n", "line 1:4:", "set", "not supported on a mapping", NULL);
}

static void test_anchors_and_aliases_refused(void **state)
{
    (void)state;
    expect_error("base: &b\n  x: 1\nother: *b\n", "line 1:7:", "anchors", NULL);
    expect_error("a: 1\nb: &s text\n", "line 2:4:", "anchors", NULL);
    expect_error("list:\n  - &i 1\n", "line 2:5:", "anchors", NULL);
    /* An alias is refused where it stands, anchor or not. */
    expect_error("a: *nowhere\n", "line 1:4:", "aliases", NULL);
    /* The billion-laughs shape stops at its first anchor. */
    expect_error("a: &a [\"lol\",\"lol\"]\nb: &b [*a,*a,*a]\nc: &c [*b,*b,*b]\n",
                 "line 1:4:", "anchors", NULL);
}

static void test_errors_name_line_and_column(void **state)
{
    (void)state;
    expect_error("a: 1\nb: 2\na: 3\n", "line 3:1:", "duplicate key \"a\"", NULL);
    expect_error("outer:\n  x: 1\n  x: 2\n", "line 3:3:", "duplicate key \"x\"", NULL);
    /* libyaml's own problem text, with where it was found. */
    expect_error("a: [1, 2\nb: 3\n", "line ", "did not find expected", NULL);
    expect_error("key: value\n  bad: indent\n", "line 2:6:", "mapping values are not allowed",
                 NULL);
    expect_error("a: \"unterminated\n", "line 2:1:", "found unexpected end of stream", NULL);
    expect_error("? [a, b]\n: c\n", "line 1:3:", "a mapping key must be a scalar", NULL);
    expect_error("{ {x: 1}: 2 }\n", "a mapping key must be a scalar", NULL);
    expect_error("a: .inf\n", "line 1:4:", ".inf", "JSON cannot hold", NULL);
    expect_error("a: -.Inf\n", "JSON cannot hold", NULL);
    expect_error("a: .NaN\n", "JSON cannot hold", NULL);
    expect_error("a: 9223372036854775808\n", "line 1:4:", "beyond 64 bits", NULL);
    expect_error("a: 1\n---\nb: 2\n", "line 2:1:", "second document", NULL);
}

static void test_empty_documents_are_null(void **state)
{
    (void)state;
    json_t *v = load_ok("");
    assert_true(json_is_null(v));
    json_decref(v);
    v = load_ok("# only a comment\n");
    assert_true(json_is_null(v));
    json_decref(v);
    v = load_ok("---\n...\n");
    assert_true(json_is_null(v));
    json_decref(v);
}

static void test_file_errors_name_the_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_yaml_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "ok: 1\nok: 2\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    err[0] = '\0';
    assert_null(co_yaml_load_file(path, err, sizeof err));
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "line 2:1: duplicate key"));
    unlink(path);
    assert_null(co_yaml_load_file(path, err, sizeof err));
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "No such file"));
}

static void test_runner_job_template(void **state)
{
    (void)state;
    const char *path = CO_SOURCE_DIR "/deploy/k8s/runner-job.template.yaml";
    json_t *job = co_yaml_load_file(path, err, sizeof err);
    if (!job) fail_msg("%s", err);
    assert_string_equal(json_string_value(json_object_get(job, "kind")), "Job");
    assert_string_equal(json_string_value(json_object_get(job, "apiVersion")), "batch/v1");
    json_t *spec = json_object_get(job, "spec");
    json_t *backoff = json_object_get(spec, "backoffLimit");
    assert_true(json_is_integer(backoff));
    assert_true(json_integer_value(backoff) == 0);
    json_t *pod = json_object_get(json_object_get(spec, "template"), "spec");
    assert_true(json_is_false(json_object_get(pod, "automountServiceAccountToken")));
    json_t *runner = json_array_get(json_object_get(pod, "containers"), 0);
    json_t *limits = json_object_get(json_object_get(runner, "resources"), "limits");
    assert_true(json_is_string(json_object_get(limits, "cpu"))); /* "2", quoted */
    assert_string_equal(json_string_value(json_object_get(limits, "cpu")), "2");
    /* A placeholder is a plain scalar that stays a string. */
    assert_string_equal(json_string_value(json_object_get(runner, "image")), "${IMAGE}");
    json_t *init = json_array_get(json_object_get(pod, "initContainers"), 0);
    const char *script = json_string_value(json_array_get(json_object_get(init, "args"), 0));
    assert_non_null(script);
    assert_true(!strncmp(script, "set -euo pipefail\nwhile read -r url branch; do\n", 47));
    assert_non_null(strstr(script, "done <<< \"$REPOS\"\n"));
    json_decref(job);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_scalars_typed_by_core_schema),
        cmocka_unit_test(test_quoted_and_block_scalars_are_strings),
        cmocka_unit_test(test_nesting_and_flow_style),
        cmocka_unit_test(test_kubeconfig_shape),
        cmocka_unit_test(test_standard_tags),
        cmocka_unit_test(test_other_tags_refused),
        cmocka_unit_test(test_anchors_and_aliases_refused),
        cmocka_unit_test(test_errors_name_line_and_column),
        cmocka_unit_test(test_empty_documents_are_null),
        cmocka_unit_test(test_file_errors_name_the_file),
        cmocka_unit_test(test_runner_job_template),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
