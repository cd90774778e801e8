/* test_json.c - escaping, UTF-8 repair, double escaping, numbers and times. */
#include "cm.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* Escapes `in` as a JSON string and returns what a JSON parser reads back. */
static char *roundtrip(const char *in, size_t n, int twice)
{
    struct lf__buf b;
    lf__buf_init(&b, 0);
    if (twice) lf__buf_putc(&b, '"');
    lf__json_str(&b, in, n, NULL, twice);
    if (twice) lf__buf_putc(&b, '"');
    json_error_t err;
    json_t *v = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    assert_non_null(v);
    if (twice) {
        /* the outer string holds JSON text: parse it once more */
        json_t *inner = json_loads(json_string_value(v), JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        assert_non_null(inner);
        json_decref(v);
        v = inner;
    }
    assert_true(json_is_string(v));
    char *s = malloc(json_string_length(v) + 1);
    memcpy(s, json_string_value(v), json_string_length(v) + 1);
    json_decref(v);
    lf__buf_free(&b);
    return s;
}

static void test_specials_survive(void **state)
{
    (void)state;
    const char in[] = "quote\" back\\slash\nnl\ttab\rcr\bbs\ffeed\x01\x1f end/";
    char *out = roundtrip(in, sizeof(in) - 1, 0);
    assert_string_equal(out, in);
    free(out);
    out = roundtrip(in, sizeof(in) - 1, 1);
    assert_string_equal(out, in);
    free(out);
}

static void test_valid_utf8_passes(void **state)
{
    (void)state;
    const char in[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf";
    char *out = roundtrip(in, sizeof(in) - 1, 0);
    assert_string_equal(out, in);
    free(out);
}

static void test_invalid_utf8_is_repaired(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *want;
    } cases[] = {
        {"a\xff"
         "b",
         "a\xef\xbf\xbd"
         "b"},                                                                    /* stray byte */
        {"\xc0\x80", "\xef\xbf\xbd\xef\xbf\xbd"},                                 /* overlong NUL */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},                 /* surrogate */
        {"\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd"},                                 /* truncated */
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > 10FFFF */
        {"\x80x", "\xef\xbf\xbdx"}, /* lone continuation */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = roundtrip(cases[i].in, strlen(cases[i].in), 0);
        assert_string_equal(out, cases[i].want);
        free(out);
        out = roundtrip(cases[i].in, strlen(cases[i].in), 1);
        assert_string_equal(out, cases[i].want);
        free(out);
    }
}

static void test_embedded_nul(void **state)
{
    (void)state;
    const char in[] = {'a', '\0', 'b'};
    struct lf__buf b;
    lf__buf_init(&b, 0);
    lf__json_str(&b, in, 3, NULL, 0);
    assert_string_equal(b.data, "\"a\\u0000b\"");
    lf__buf_free(&b);
}

static void test_redaction_inside_strings(void **state)
{
    (void)state;
    struct lf__redactor *r = lf__redactor_new();
    struct lf__buf b;
    lf__buf_init(&b, 0);
    const char in[] = "key=sk-ant-api03-abcdefghijklmnop \"done\"";
    lf__json_str(&b, in, sizeof(in) - 1, r, 0);
    assert_string_equal(b.data, "\"key=[REDACTED] \\\"done\\\"\"");
    lf__buf_free(&b);
    lf__redactor_free(r);
}

/* The escaped body of `in` with `secret` registered. */
static char *with_secret(const char *secret, const char *in, size_t n, int twice)
{
    struct lf__redactor *r0 = lf__redactor_new();
    struct lf__redactor *r = lf__redactor_with(r0, secret, strlen(secret));
    lf__redactor_free(r0);
    struct lf__buf b;
    lf__buf_init(&b, 0);
    lf__buf_putc(&b, '<');
    lf__json_str_body(&b, in, n, r, twice);
    lf__buf_putc(&b, '>');
    lf__redactor_free(r);
    return lf__buf_steal(&b, NULL);
}

static void test_redaction_next_to_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        /* valid neighbours stay; invalid ones are repaired; the secret goes either way */
        {"\xc3\xa9s3cr3t-value\xe6\x97\xa5\xe6\x9c\xac",
         "<\xc3\xa9[REDACTED]\xe6\x97\xa5\xe6\x9c\xac>"},
        {"s3cr3t-value\xf0\x9f\x98\x80", "<[REDACTED]\xf0\x9f\x98\x80>"},
        {"\xf0\x9f\x98\x80s3cr3t-value", "<\xf0\x9f\x98\x80[REDACTED]>"},
        {"\xffs3cr3t-value\xe2\x82", "<\xef\xbf\xbd[REDACTED]\xef\xbf\xbd\xef\xbf\xbd>"},
        {"\xc3s3cr3t-value\xc3", "<\xef\xbf\xbd[REDACTED]\xef\xbf\xbd>"},
        {"\"s3cr3t-value\"\n", "<\\\"[REDACTED]\\\"\\n>"},
        {"s3cr3t-valu\xc3\xa9", "<s3cr3t-valu\xc3\xa9>"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = with_secret("s3cr3t-value", cases[i].in, strlen(cases[i].in), 0);
        assert_string_equal(out, cases[i].want);
        free(out);
    }
    /* twice-escaped, the replacement needs no escaping at either depth */
    const char *in = "\"s3cr3t-value\xc3\xa9\"";
    char *out = with_secret("s3cr3t-value", in, strlen(in), 1);
    assert_string_equal(out, "<\\\\\\\"[REDACTED]\xc3\xa9\\\\\\\">");
    free(out);
    /* A secret that is not valid UTF-8 and begins inside a valid sequence: the sequence is
     * cut (its lead byte repaired) rather than the secret kept. */
    in = "caf\xc3\xa9-not-utf8!";
    out = with_secret("\xa9-not-utf8", in, strlen(in), 0);
    assert_string_equal(out, "<caf\xef\xbf\xbd[REDACTED]!>");
    free(out);
    in = "x\xf0\x9f\x98\x80tail-of-emoji";
    out = with_secret("\x98\x80tail-of-emoji", in, strlen(in), 0);
    assert_string_equal(out, "<x\xef\xbf\xbd\xef\xbf\xbd[REDACTED]>");
    free(out);
}

static void test_doubles_shortest_roundtrip(void **state)
{
    (void)state;
    static const double vals[] = {0.1, 1e-7,     0.30000000000000004, 123456.789,
                                  3.0, -2.5e300, 0.0017464,           5e-324};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        struct lf__buf b;
        lf__buf_init(&b, 0);
        lf__json_double(&b, vals[i]);
        assert_true(strtod(b.data, NULL) == vals[i]);
        lf__buf_free(&b);
    }
    static const struct {
        double v;
        const char *text;
    } exact[] = {{0.1, "0.1"},
                 {0.0036, "0.0036"},
                 {0.0050775, "0.0050775"},
                 {-2.5, "-2.5"},
                 {123456.789, "123456.789"},
                 {42, "42"},
                 {1e-9, "0.000000001"},
                 {NAN, "0"},
                 {INFINITY, "0"},
                 {0, "0"}};
    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
        struct lf__buf b;
        lf__buf_init(&b, 0);
        lf__json_double(&b, exact[i].v);
        assert_string_equal(b.data, exact[i].text);
        lf__buf_free(&b);
    }
    /* every double of a sweep reads back exactly */
    uint64_t x = 88172645463325252u;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v = (double)(x % 100000000) / (double)(1u << (x % 30)) * ((x & 1) ? 1 : -1e-6);
        struct lf__buf b;
        lf__buf_init(&b, 0);
        lf__json_double(&b, v);
        if (strtod(b.data, NULL) != v) fail_msg("%.17g printed as %s", v, b.data);
        lf__buf_free(&b);
    }
}

static void test_times_and_hex(void **state)
{
    (void)state;
    char iso[64];
    lf__iso8601(iso, 1700000000123456789LL);
    assert_string_equal(iso, "2023-11-14T22:13:20.123456Z");
    lf__iso8601(iso, 0);
    assert_string_equal(iso, "1970-01-01T00:00:00.000000Z");
    uint8_t bytes[4] = {0x00, 0xab, 0x10, 0xff}, back[4];
    char hex[9];
    lf__hex(hex, bytes, 4);
    assert_string_equal(hex, "00ab10ff");
    assert_int_equal(lf__unhex(back, 4, "00AB10ff"), 0);
    assert_memory_equal(back, bytes, 4);
    assert_int_equal(lf__unhex(back, 4, "00ab10fg"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_specials_survive),
        cmocka_unit_test(test_valid_utf8_passes),
        cmocka_unit_test(test_invalid_utf8_is_repaired),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_redaction_inside_strings),
        cmocka_unit_test(test_redaction_next_to_utf8),
        cmocka_unit_test(test_doubles_shortest_roundtrip),
        cmocka_unit_test(test_times_and_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
