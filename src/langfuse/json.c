/*
 * json.c - JSON string escaping with UTF-8 repair and redaction, numbers, times; see json.h.
 */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* 1: must be escaped; 2: starts a multi-byte UTF-8 sequence (or is invalid). */
static const uint8_t esc_class[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if invalid (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c >= 0xC2 && c <= 0xDF)
        return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && s[1] < 0xA0)
            return 0; /* overlong */
        if (c == 0xED && s[1] > 0x9F)
            return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90)
            return 0; /* overlong */
        if (c == 0xF4 && s[1] > 0x8F)
            return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

#if defined(__SSE2__)
#include <emmintrin.h>
/*
 * The index of the first byte at or after `i` that needs a closer look: one to escape,
 * a non-ASCII byte, or the start of a redaction needle's two-byte prefix. Sixteen bytes
 * per step; ordinary text is mostly skipped here, which is where the escaper spends its
 * time otherwise. Stops 17 bytes before the end (the pair test reads one byte ahead);
 * the caller's byte loop does the rest.
 */
static size_t scan(const unsigned char *s, size_t i, size_t n, const uint8_t *b0,
                   const uint8_t *b1, int np)
{
    const __m128i space = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'),
                  bslash = _mm_set1_epi8('\\');
    while (i + 17 <= n) {
        __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
        /* signed compare: bytes >= 0x80 are negative, so this also catches non-ASCII */
        __m128i m = _mm_or_si128(_mm_cmplt_epi8(v, space),
                                 _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)));
        if (np) {
            __m128i w = _mm_loadu_si128((const __m128i *)(s + i + 1));
            for (int k = 0; k < np; k++)
                m = _mm_or_si128(m, _mm_and_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8((char)b0[k])),
                                                  _mm_cmpeq_epi8(w, _mm_set1_epi8((char)b1[k]))));
        }
        int mask = _mm_movemask_epi8(m);
        if (mask)
            return i + (size_t)__builtin_ctz((unsigned)mask);
        i += 16;
    }
    return i;
}
#endif

/* Appends the escape sequence of an ASCII byte, escaped a second time if `twice`. */
static void put_escaped(struct lf__buf *b, unsigned char c, int twice)
{
    char seq[8];
    switch (c) {
    case '"': memcpy(seq, "\\\"", 3); break;
    case '\\': memcpy(seq, "\\\\", 3); break;
    case '\n': memcpy(seq, "\\n", 3); break;
    case '\r': memcpy(seq, "\\r", 3); break;
    case '\t': memcpy(seq, "\\t", 3); break;
    case '\b': memcpy(seq, "\\b", 3); break;
    case '\f': memcpy(seq, "\\f", 3); break;
    default: snprintf(seq, sizeof(seq), "\\u%04x", c); break;
    }
    if (!twice) {
        lf__buf_puts(b, seq);
        return;
    }
    for (const char *p = seq; *p; p++) {
        if (*p == '\\')
            lf__buf_append(b, "\\\\", 2);
        else if (*p == '"')
            lf__buf_append(b, "\\\"", 2);
        else
            lf__buf_putc(b, *p);
    }
}

void lf__json_str_body(struct lf__buf *b, const char *s, size_t n,
                       const struct lf__redactor *red, int twice)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0, i = 0;
    /* Reserve the common case up front: plain text grows by nothing. */
    lf__buf_reserve(b, n);
#if defined(__SSE2__)
    const uint8_t *b0 = NULL, *b1 = NULL;
    int np = lf__redact_pairs(red, &b0, &b1);
#endif
    while (i < n) {
#if defined(__SSE2__)
        if (np >= 0) {
            i = scan(u, i, n, b0, b1, np);
            if (i >= n)
                break;
        }
#endif
        unsigned char c = u[i];
        if (!esc_class[c] && !lf__redact_candidate(red, c)) {
            i++;
            continue;
        }
        const char *repl;
        size_t m = red ? lf__redact_at(red, s, n, i, &repl) : 0;
        if (m) {
            lf__buf_append(b, s + run, i - run);
            lf__buf_puts(b, repl); /* plain ASCII: needs no escaping at any depth */
            i += m;
            run = i;
            continue;
        }
        if (esc_class[c] == 0) {
            i++;
            continue;
        }
        if (esc_class[c] == 1) {
            lf__buf_append(b, s + run, i - run);
            put_escaped(b, c, twice);
            run = ++i;
            continue;
        }
        size_t len = utf8_len(u + i, n - i);
        if (len) {
            i += len;
            continue;
        }
        lf__buf_append(b, s + run, i - run);
        lf__buf_append(b, "\xEF\xBF\xBD", 3); /* U+FFFD for one bad byte */
        run = ++i;
    }
    lf__buf_append(b, s + run, n - run);
}

void lf__json_str(struct lf__buf *b, const char *s, size_t n, const struct lf__redactor *red,
                  int twice)
{
    if (twice)
        lf__buf_append(b, "\\\"", 2);
    else
        lf__buf_putc(b, '"');
    lf__json_str_body(b, s, n, red, twice);
    if (twice)
        lf__buf_append(b, "\\\"", 2);
    else
        lf__buf_putc(b, '"');
}

void lf__json_double(struct lf__buf *b, double d)
{
    if (!isfinite(d)) {
        lf__buf_putc(b, '0');
        return;
    }
    if (d == 0) {
        lf__buf_putc(b, '0');
        return;
    }
    /* Fast path, exact: if d is r / 10^k for an integer r below 2^53, print r with k
     * decimals. Both r and 10^k are exact doubles, so IEEE division rounds r / 10^k
     * exactly as a decimal parser rounds the printed text: what is printed reads back as d.
     * Costs are such numbers (0.0036); snprintf and strtod cost ten times more. */
    static const double p10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8,
                                 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16};
    double ad = fabs(d);
    if (ad >= 1e-9 && ad < 1e9) {
        for (int k = 0; k <= 16; k++) {
            double sc = ad * p10[k];
            if (sc >= 9007199254740992.0)
                break;
            double r = nearbyint(sc);
            if (r / p10[k] != ad)
                continue;
            char digits[32], out[48];
            int nd = 0;
            for (uint64_t u = (uint64_t)r; u || nd == 0; u /= 10)
                digits[nd++] = (char)('0' + u % 10);
            for (int a = 0, z = nd - 1; a < z; a++, z--) {
                char t = digits[a];
                digits[a] = digits[z];
                digits[z] = t;
            }
            size_t o = 0;
            if (d < 0)
                out[o++] = '-';
            if (nd <= k) {
                out[o++] = '0';
                out[o++] = '.';
                for (int z = 0; z < k - nd; z++)
                    out[o++] = '0';
                memcpy(out + o, digits, (size_t)nd);
                o += (size_t)nd;
            } else {
                memcpy(out + o, digits, (size_t)(nd - k));
                o += (size_t)(nd - k);
                if (k) {
                    out[o++] = '.';
                    memcpy(out + o, digits + nd - k, (size_t)k);
                    o += (size_t)k;
                }
            }
            lf__buf_append(b, out, o);
            return;
        }
    }
    char tmp[40];
    /* The shortest of %.15g..%.17g that reads back exactly: 0.1 stays "0.1". */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    lf__buf_puts(b, tmp);
}

void lf__iso8601(char out[64], int64_t ns)
{
    time_t sec = (time_t)(ns / 1000000000);
    long usec = (long)((ns % 1000000000) / 1000);
    if (usec < 0) {
        sec -= 1;
        usec += 1000000;
    }
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, usec);
}

void lf__hex(char *out, const uint8_t *bytes, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int lf__unhex(uint8_t *bytes, size_t n, const char *hex)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]);
        int lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);
        if (lo < 0)
            return -1;
        bytes[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

size_t lf__utf8_cut(const char *s, size_t limit)
{
    while (limit > 0 && ((unsigned char)s[limit] & 0xC0) == 0x80)
        limit--;
    return limit;
}
