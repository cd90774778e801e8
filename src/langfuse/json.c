/*
 * json.c - JSON string escaping with UTF-8 repair and redaction, numbers, times; see json.h.
 */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "invariant.h"

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
    if (c >= 0xC2 && c <= 0xDF) return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && s[1] > 0x9F) return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0; /* overlong */
        if (c == 0xF4 && s[1] > 0x8F) return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

#if defined(__SSE2__)
#include <emmintrin.h>

/* Nonzero if a token shape may begin at p: some probe's three bytes are there. */
static int probe_hit(const struct lf__redact_probes *pr, const unsigned char *p)
{
    for (int k = 0; k < pr->n; k++)
        if (p[0] == pr->b0[k] && p[1] == pr->b1[k] && p[pr->at[k]] == pr->b2[k]) return 1;
    return 0;
}

/*
 * The index of the first byte in [i, lim) that needs a closer look: one to escape, a
 * non-ASCII byte, or where a token shape may begin; lim if there is none (lim is where the
 * next registered secret starts, which lf__redact_next() found). Sixteen bytes per step;
 * ordinary text is mostly skipped here, which is where the escaper spends its time
 * otherwise. The shapes' first two bytes are compared in the vectors, their third byte
 * here too, so that "be" or "gh" in prose does not leave the loop. Stops 16 +
 * LF__PROBE_REACH - 1 bytes before the end (the probes read ahead); the caller's byte loop
 * does the rest.
 */
static size_t scan(const unsigned char *s, size_t i, size_t lim, size_t n,
                   const struct lf__redact_probes *pr, const __m128i *p0, const __m128i *p1)
{
    const __m128i space = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'),
                  bslash = _mm_set1_epi8('\\');
    int np = pr ? pr->n : 0;
    while (i < lim && i + 16 + LF__PROBE_REACH - 1 <= n) {
        __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
        /* signed compare: bytes >= 0x80 are negative, so this also catches non-ASCII */
        __m128i e = _mm_or_si128(_mm_cmplt_epi8(v, space),
                                 _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)));
        unsigned emask = (unsigned)_mm_movemask_epi8(e);
        if (np) {
            __m128i w = _mm_loadu_si128((const __m128i *)(s + i + 1)), m = _mm_setzero_si128();
            for (int k = 0; k < np; k++)
                m = _mm_or_si128(m,
                                 _mm_and_si128(_mm_cmpeq_epi8(v, p0[k]), _mm_cmpeq_epi8(w, p1[k])));
            unsigned pmask = (unsigned)_mm_movemask_epi8(m);
            if (emask) pmask &= (emask & (0u - emask)) - 1; /* those before the first escape */
            for (; pmask; pmask &= pmask - 1) {
                size_t j = i + (size_t)__builtin_ctz(pmask);
                if (probe_hit(pr, s + j)) return j < lim ? j : lim;
            }
        }
        if (emask) {
            i += (size_t)__builtin_ctz(emask);
            return i < lim ? i : lim;
        }
        i += 16;
    }
    return i < lim ? i : lim;
}
#endif

/* Appends the escape sequence of an ASCII byte, escaped a second time if `twice`. */
static void put_escaped(struct lf__buf *b, unsigned char c, int twice)
{
    static const char hex[] = "0123456789abcdef";
    char seq[6] = {'\\'};
    size_t len = 2;
    switch (c) {
    case '"':
        seq[1] = '"';
        break;
    case '\\':
        seq[1] = '\\';
        break;
    case '\n':
        seq[1] = 'n';
        break;
    case '\r':
        seq[1] = 'r';
        break;
    case '\t':
        seq[1] = 't';
        break;
    case '\b':
        seq[1] = 'b';
        break;
    case '\f':
        seq[1] = 'f';
        break;
    default:
        memcpy(seq + 1, "u00", 3);
        seq[4] = hex[c >> 4];
        seq[5] = hex[c & 15];
        len = 6;
        break;
    }
    if (!twice) {
        lf__buf_append(b, seq, len);
        return;
    }
    for (size_t k = 0; k < len; k++) {
        if (seq[k] == '\\')
            lf__buf_append(b, "\\\\", 2);
        else if (seq[k] == '"')
            lf__buf_append(b, "\\\"", 2);
        else
            lf__buf_putc(b, seq[k]);
    }
}

void lf__json_str_body(struct lf__buf *b, const char *s, size_t n, const struct lf__redactor *red,
                       int twice)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0, i = 0;
    /* Reserve the common case up front: plain text grows by nothing. */
    lf__buf_reserve(b, n);
    /* Where the next registered secret starts (n: nowhere); looked up again once a
     * replacement has covered it. */
    size_t secret = lf__redact_next(red, s, n, 0);
    const uint8_t *first = lf__redact_firsts(red);
#if defined(__SSE2__)
    /* the probes' first two bytes, broadcast to vectors once per string, not per block */
    const struct lf__redact_probes *pr = lf__redact_probes(red);
    __m128i p0[LF__PROBES_MAX], p1[LF__PROBES_MAX];
    for (int k = 0; pr && k < pr->n; k++) {
        p0[k] = _mm_set1_epi8((char)pr->b0[k]);
        p1[k] = _mm_set1_epi8((char)pr->b1[k]);
    }
#endif
    while (i < n) {
        if (secret < i) secret = lf__redact_next(red, s, n, i);
#if defined(__SSE2__)
        i = scan(u, i, secret, n, pr, p0, p1);
        if (i >= n) break;
#endif
        unsigned char c = u[i];
        /* A needle can start here only if a shape starts with c or a secret starts here. */
        if (i == secret || first[c]) {
            const char *repl;
            size_t m = lf__redact_at(red, s, n, i, &repl);
            if (m) {
                lf__buf_append(b, s + run, i - run);
                lf__buf_puts(b, repl); /* plain ASCII: needs no escaping at any depth */
                i += m;
                run = i;
                continue;
            }
            LF_INVARIANT(i != secret); /* lf__redact_next() promised a match here */
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
        /* A secret that is not valid UTF-8 may begin inside a valid sequence: the sequence
         * is then cut there, its bytes repaired one by one, so that the secret is not. */
        size_t len = utf8_len(u + i, n - i);
        if (len && secret - i >= len) {
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
    static const double p10[] = {1e0, 1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7, 1e8,
                                 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16};
    double ad = fabs(d);
    if (ad >= 1e-9 && ad < 1e9) {
        for (int k = 0; k <= 16; k++) {
            double sc = ad * p10[k];
            if (sc >= 9007199254740992.0) break;
            double r = nearbyint(sc);
            if (r / p10[k] != ad) continue;
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
            if (d < 0) out[o++] = '-';
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
        if (strtod(tmp, NULL) == d) break;
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
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int lf__unhex(uint8_t *bytes, size_t n, const char *hex)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]);
        int lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);
        if (lo < 0) return -1;
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
