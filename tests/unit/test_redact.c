/* test_redact.c - token shapes, registered secrets, and no false positives; both ways a
 * string is redacted (lf__redact_dup, and the JSON escaper, which skips ahead by SIMD scan
 * and by sampling and so could miss what a byte-by-byte search finds). */
#include "cm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "json.h"
#include "redact.h"

static char *red(const struct lf__redactor *r, const char *s)
{
    char *out = lf__redact_dup(r, s);
    assert_non_null(out);
    return out;
}

static void expect(const struct lf__redactor *r, const char *in, const char *want)
{
    char *out = red(r, in);
    assert_string_equal(out, want);
    free(out);
}

static void test_token_shapes(void **state)
{
    (void)state;
    struct lf__redactor *r = lf__redactor_new();
    expect(r, "x sk-ant-api03-AbC_dEf-123456789 y", "x [REDACTED] y");
    expect(r, "sk-lf-1234abcd-5678-90ef", "[REDACTED]");
    expect(r, "token ghp_0123456789abcdefghijABCDEFGHIJ012345.", "token [REDACTED].");
    expect(r, "github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "[REDACTED]");
    expect(r, "Authorization: Bearer eyJhbGciOi.JIUzI1NiJ9-x_y",
           "Authorization: Bearer [REDACTED]");
    lf__redactor_free(r);
}

static void test_no_false_positives(void **state)
{
    (void)state;
    struct lf__redactor *r = lf__redactor_new();
    const char *plain[] = {"skeleton sketch sk-ant- short",
                           "ghost_writer ghp_short",
                           "Bearer of news",
                           "sk-lf-",
                           "the bearer token: none",
                           "Bearer abc"};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        expect(r, plain[i], plain[i]);
    lf__redactor_free(r);
}

static void test_registered_secrets(void **state)
{
    (void)state;
    struct lf__redactor *r0 = lf__redactor_new();
    struct lf__redactor *r1 = lf__redactor_with(r0, "hunter2-xyz", 11);
    struct lf__redactor *r2 = lf__redactor_with(r1, "hunter2-xyz-longer", 18);
    lf__redactor_free(r0);
    lf__redactor_free(r1);
    /* the longer secret wins where both match; the shorter still applies alone */
    expect(r2, "a hunter2-xyz-longer b hunter2-xyz c", "a [REDACTED] b [REDACTED] c");
    expect(r2, "hunter2-xy", "hunter2-xy");
    lf__redactor_free(r2);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    struct lf__redactor *r = lf__redactor_new();
    /* Fail the first allocation, then the second, ... until adding the secret needs no
     * failed one: every failure is a NULL (and leaves r as it was), and then it works. (This
     * once tried four points and asserted only where one had failed: it held whether or not
     * an allocation ever failed, or the secret was ever added.) */
    long failures = 0;
    struct lf__redactor *r2 = NULL;
    for (long n = 0; n < 100; n++) {
        lf__alloc_fail_after(n, 0);
        r2 = lf__redactor_with(r, "secret-value", 12);
        long failed = lf__alloc_failures();
        lf__alloc_fail_after(-1, 0);
        if (!failed) break;
        failures++;
        assert_null(r2);
        expect(r, "a secret-value b", "a secret-value b");
    }
    assert_true(failures > 0);
    assert_non_null(r2);
    expect(r2, "a secret-value b", "a [REDACTED] b");
    lf__redactor_free(r2);
    lf__redactor_free(r);
}

/* ---- the escaper against a brute-force reference ------------------------------------------- */

static uint64_t rng = 0x243F6A8885A308D3u;

static uint32_t rnd(uint32_t below)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)((rng >> 11) % below);
}

static void random_alnum(char *out, size_t n)
{
    static const char an[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    for (size_t i = 0; i < n; i++)
        out[i] = an[rnd(sizeof(an) - 1)];
    out[n] = '\0';
}

struct secrets {
    char *v[512];
    size_t n;
};

static struct lf__redactor *with_all(const struct secrets *k)
{
    struct lf__redactor *r = lf__redactor_new();
    for (size_t i = 0; i < k->n; i++) {
        struct lf__redactor *r2 = lf__redactor_with(r, k->v[i], strlen(k->v[i]));
        assert_non_null(r2);
        lf__redactor_free(r);
        r = r2;
    }
    return r;
}

static void free_secrets(struct secrets *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i]);
    k->n = 0;
}

static size_t longest_at(const struct secrets *k, const char *s, size_t n, size_t i)
{
    size_t best = 0;
    for (size_t j = 0; j < k->n; j++) {
        size_t len = strlen(k->v[j]);
        if (len > best && len <= n - i && memcmp(s + i, k->v[j], len) == 0) best = len;
    }
    return best;
}

/* What redaction must give, found the slow way: at each byte the longest secret, and the
 * replacement extended over every secret starting inside it that reaches further. The
 * texts hold no token shape, and the secrets are ASCII, so no secret starts inside a UTF-8
 * sequence. */
static char *reference(const struct secrets *k, const char *s, size_t n)
{
    struct lf__buf b;
    lf__buf_init(&b, 0);
    for (size_t i = 0; i < n;) {
        size_t m = longest_at(k, s, n, i);
        if (!m) {
            lf__buf_putc(&b, s[i++]);
            continue;
        }
        size_t end = i + m;
        for (size_t j = i + 1; j < end; j++) {
            size_t mj = longest_at(k, s, n, j);
            if (j + mj > end) end = j + mj;
        }
        lf__buf_puts(&b, LF__REDACTED);
        i = end;
    }
    return lf__buf_steal(&b, NULL);
}

/* The escaped body of s[0..n), read from a block of exactly n bytes: under AddressSanitizer
 * a scan that reads past the end fails. */
static char *escaped(const struct lf__redactor *r, const char *s, size_t n)
{
    char *exact = malloc(n ? n : 1);
    assert_non_null(exact);
    memcpy(exact, s, n);
    struct lf__buf b;
    lf__buf_init(&b, 0);
    lf__buf_putc(&b, '"'); /* never empty */
    lf__json_str_body(&b, exact, n, r, 0);
    free(exact);
    return lf__buf_steal(&b, NULL);
}

/* Both redaction paths give what the reference gives, and no secret is left. */
static void check_text(const struct lf__redactor *r, const struct secrets *k, const char *s)
{
    size_t n = strlen(s);
    char *want = reference(k, s, n);
    char *got = red(r, s);
    if (strcmp(got, want) != 0)
        fail_msg("lf__redact_dup\n  of   %s\n  gave %s\n  want %s", s, got, want);
    free(got);
    char *esc_want = escaped(NULL, want, strlen(want));
    char *esc_got = escaped(r, s, n);
    if (strcmp(esc_got, esc_want) != 0)
        fail_msg("lf__json_str_body\n  of   %s\n  gave %s\n  want %s", s, esc_got, esc_want);
    for (size_t j = 0; j < k->n; j++)
        if (strstr(esc_got, k->v[j])) fail_msg("secret %s left in %s", k->v[j], esc_got);
    free(esc_want);
    free(esc_got);
    free(want);
}

/* Filler with what makes the escaper stop (escapes, UTF-8, the shapes' first bytes) and
 * no token shape. */
static const char *const filler[] = {"the ",
                                     "sk ",
                                     "gh",
                                     "be ",
                                     "Be",
                                     "git ",
                                     "\"",
                                     "\n",
                                     "\\",
                                     "\t",
                                     "x",
                                     "  ",
                                     "\xc3\xa9",
                                     "\xe6\x97\xa5\xe6\x9c\xac",
                                     "\xf0\x9f\x98\x80",
                                     "-",
                                     "_",
                                     "0123"};

static void put_filler(struct lf__buf *b, size_t bytes)
{
    size_t until = b->len + bytes;
    while (b->len < until)
        lf__buf_puts(b, filler[rnd(sizeof(filler) / sizeof(filler[0]))]);
}

static void test_many_secrets(void **state)
{
    (void)state;
    /* 300 secrets of 6 to 90 bytes; some extend or begin another, some overlap another */
    struct secrets k = {.n = 0};
    char tmp[256];
    while (k.n < 300) {
        size_t len = 6 + rnd(85);
        random_alnum(tmp, len);
        uint32_t how = rnd(8);
        if (how == 0 && k.n) { /* an earlier secret plus more */
            snprintf(tmp, sizeof(tmp), "%s%.*s", k.v[rnd((uint32_t)k.n)], (int)(1 + rnd(8)),
                     "ABCDEFGH");
        } else if (how == 1 && k.n) { /* an earlier secret's end, continued */
            const char *e = k.v[rnd((uint32_t)k.n)];
            size_t el = strlen(e);
            snprintf(tmp, sizeof(tmp), "%s%s", e + el - 3 - rnd((uint32_t)(el - 3)), "zz9Q");
        }
        if (strlen(tmp) >= LF__SECRET_MIN) k.v[k.n++] = strdup(tmp);
    }
    struct lf__redactor *r = with_all(&k);
    for (int t = 0; t < 60; t++) {
        struct lf__buf text;
        lf__buf_init(&text, 0);
        int pieces = 1 + (int)rnd(40);
        for (int p = 0; p < pieces; p++) {
            if (rnd(3)) put_filler(&text, rnd(70));
            lf__buf_puts(&text, k.v[rnd((uint32_t)k.n)]);
        }
        put_filler(&text, rnd(40));
        check_text(r, &k, text.data);
        lf__buf_free(&text);
    }
    lf__redactor_free(r);
    free_secrets(&k);
}

static void test_secrets_sharing_prefixes(void **state)
{
    (void)state;
    struct secrets k = {.n = 0};
    char tmp[128];
    /* 200 secrets whose first 24 bytes (more than the sampling stride) are all alike */
    for (int i = 0; i < 200; i++) {
        snprintf(tmp, sizeof(tmp), "sharedprefix0123456789AB%0*d", 1 + i % 7, i);
        k.v[k.n++] = strdup(tmp);
    }
    k.v[k.n++] = strdup("sharedprefix0123456789ABC"); /* a prefix of none, longer than some */
    struct lf__redactor *r = with_all(&k);
    check_text(r, &k, "sharedprefix0123456789AB");  /* no secret: one byte short */
    check_text(r, &k, "sharedprefix0123456789AB0"); /* the shortest */
    check_text(r, &k, "a sharedprefix0123456789AB0000199 b sharedprefix0123456789AB42 c");
    check_text(r, &k, "sharedprefix0123456789ABsharedprefix0123456789AB7sharedprefix0123456789ABC");
    for (int t = 0; t < 40; t++) {
        struct lf__buf text;
        lf__buf_init(&text, 0);
        for (int p = 0; p < 10; p++) {
            put_filler(&text, rnd(20));
            lf__buf_puts(&text, k.v[rnd((uint32_t)k.n)]);
            if (rnd(2)) /* and a near miss */
                lf__buf_append(&text, k.v[rnd((uint32_t)k.n)], 12 + rnd(12));
        }
        check_text(r, &k, text.data);
        lf__buf_free(&text);
    }
    lf__redactor_free(r);
    free_secrets(&k);
}

/* A secret at every offset from a string's start, of a SIMD block and of the sampling
 * grid, followed by every length of tail, with escapes and UTF-8 before and after it. */
static void test_secret_at_every_offset(void **state)
{
    (void)state;
    static const char head[] = "ab\"c\xc3\xa9 d\nefghijklmnopqrstuvwxyz0123456789\\ABCDEFGH"
                               "\xe2\x82\xac IJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    static const char tail[] = "\xc3\xa9\"tail text\n with 0123 \xf0\x9f\x98\x80 and more tail";
    static const size_t lens[][2] = {{6, 64}, {24, 64}, {13, 40}};
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
        struct secrets k = {.n = 0};
        char tmp[128];
        for (int j = 0; j < 2; j++) {
            random_alnum(tmp, lens[l][j]);
            k.v[k.n++] = strdup(tmp);
        }
        struct lf__redactor *r = with_all(&k);
        for (size_t j = 0; j < k.n; j++) {
            for (size_t off = 0; off <= 80; off++) {
                for (size_t after = 0; after <= 40; after++) {
                    /* head and tail cut at a character boundary */
                    size_t hcut = off, tcut = after;
                    while (hcut > 0 && ((unsigned char)head[hcut] & 0xC0) == 0x80)
                        hcut--;
                    while (tcut > 0 && ((unsigned char)tail[tcut] & 0xC0) == 0x80)
                        tcut--;
                    struct lf__buf text;
                    lf__buf_init(&text, 0);
                    lf__buf_append(&text, head, hcut);
                    lf__buf_puts(&text, k.v[j]);
                    lf__buf_append(&text, tail, tcut);
                    check_text(r, &k, text.data);
                    lf__buf_free(&text);
                }
            }
        }
        lf__redactor_free(r);
        free_secrets(&k);
    }
}

/* Each token shape at every offset of a block, after text that makes the scan stop. */
static void test_shapes_at_every_offset(void **state)
{
    (void)state;
    static const struct {
        const char *token, *repl;
    } cases[] = {
        {"sk-ant-api03-AbC_dEf-12345678", LF__REDACTED},
        {"sk-lf-1234abcd-5678", LF__REDACTED},
        {"ghp_0123456789abcdefghijKLMN", LF__REDACTED},
        {"gho_0123456789abcdefghijKLMN", LF__REDACTED},
        {"ghu_0123456789abcdefghijKLMN", LF__REDACTED},
        {"ghs_0123456789abcdefghijKLMN", LF__REDACTED},
        {"ghr_0123456789abcdefghijKLMN", LF__REDACTED},
        {"github_pat_11ABCDEFG0123456789_abc", LF__REDACTED},
        {"Bearer eyJhbGciOi.JIUzI1NiJ9-x_y", "Bearer " LF__REDACTED},
        {"bearer eyJhbGciOi.JIUzI1NiJ9-x_y", "bearer " LF__REDACTED},
        /* the shortest matches: an escape 14 or 15 bytes on lies in the same SIMD block */
        {"sk-lf-12345678", LF__REDACTED},
        {"sk-ant-abcdefgh", LF__REDACTED},
        {"Bearer abcdefgh", "Bearer " LF__REDACTED},
    };
    struct lf__redactor *r = lf__redactor_new();
    static const char head[] = "be gh sk \"gi\"\n Be\xc3\xa9 bea sk- gh_ git_hub Bea ghz_ 01234";
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (size_t off = 0; off + 1 < sizeof(head); off++) {
            if (((unsigned char)head[off] & 0xC0) == 0x80) continue;
            for (size_t tail = 0; tail <= 24; tail += 2) {
                char in[256], want[256];
                /* escapes just after the token: the scan must not jump to them past it */
                static const char rest[] = "\"rest\"\tof the line\n\\ plain ok";
                snprintf(in, sizeof(in), "%.*s%s%.*s", (int)off, head, cases[c].token, (int)tail,
                         rest);
                snprintf(want, sizeof(want), "%.*s%s%.*s", (int)off, head, cases[c].repl, (int)tail,
                         rest);
                expect(r, in, want);
                char *got = escaped(r, in, strlen(in)), *w = escaped(NULL, want, strlen(want));
                if (strcmp(got, w) != 0)
                    fail_msg("lf__json_str_body\n  of   %s\n  gave %s\n  want %s", in, got, w);
                free(got);
                free(w);
            }
        }
    }
    /* a shape's first bytes near the end: the scan must not read past it for the rest */
    static const char *const starts[] = {"s",     "sk", "sk-", "g",   "gh", "ghp", "gi",
                                         "githu", "B",  "Be",  "Bea", "be", "bear"};
    for (size_t st = 0; st < sizeof(starts) / sizeof(starts[0]); st++) {
        for (size_t len = 0; len <= 40; len++) {
            char in[64];
            snprintf(in, sizeof(in), "%.*s%s", (int)len, "0123456789abcdefghijklmnopqrstuvwxyz0123",
                     starts[st]);
            expect(r, in, in);
            char *got = escaped(r, in, strlen(in)), *w = escaped(NULL, in, strlen(in));
            assert_string_equal(got, w);
            free(got);
            free(w);
        }
    }
    lf__redactor_free(r);
}

static void test_overlapping_occurrences(void **state)
{
    (void)state;
    struct secrets k = {.n = 2, .v = {strdup("ab12-cd34"), strdup("cd34-ef56")}};
    struct lf__redactor *r = with_all(&k);
    check_text(r, &k, "x ab12-cd34-ef56 y");
    check_text(r, &k, "ab12-cd34-ef56ab12-cd34-ef56");
    check_text(r, &k, "ab12-cd3 cd34-ef5 ab12-cd34 cd34-ef56");
    /* a token shape that ends where a registered secret, begun inside it, goes on */
    struct lf__redactor *r2 = lf__redactor_with(r, "12345678;and-more", 17);
    assert_non_null(r2);
    expect(r2, "auth: Bearer abcdefgh12345678;and-more end", "auth: Bearer [REDACTED] end");
    lf__redactor_free(r2);
    lf__redactor_free(r);
    free_secrets(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_shapes),
        cmocka_unit_test(test_no_false_positives),
        cmocka_unit_test(test_registered_secrets),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_many_secrets),
        cmocka_unit_test(test_secrets_sharing_prefixes),
        cmocka_unit_test(test_secret_at_every_offset),
        cmocka_unit_test(test_shapes_at_every_offset),
        cmocka_unit_test(test_overlapping_occurrences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
