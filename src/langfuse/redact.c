/*
 * redact.c - secret and token-shape redaction; see redact.h.
 *
 * Needles are few (a handful of shapes plus the registered secrets), so at each candidate
 * byte we try them in turn; the first-byte table keeps candidates rare in ordinary text.
 */
#include "redact.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

enum { SET_NONE = 0, SET_KEY, SET_ALNUM, SET_BEARER };

struct needle {
    const char *lit; /* the literal prefix (the whole value for a registered secret) */
    size_t litlen;
    int set;         /* charset of the token after the prefix; SET_NONE: literal only */
    size_t min_tail; /* shortest token tail that counts as a match */
    const char *repl;
    char *owned;     /* registered secrets own their copy */
};

struct lf__redactor {
    uint8_t first[256];   /* nonzero where some needle starts with that byte */
    uint64_t pair[1024];  /* bit (b0 << 8 | b1) set where some needle starts with b0 b1 */
    uint8_t b0[LF__MAX_PAIRS], b1[LF__MAX_PAIRS]; /* the distinct pairs, for SIMD scans */
    int npairs;           /* -1: more than LF__MAX_PAIRS */
    struct needle *needles;
    size_t n;
    atomic_uint refs;
};

/* Every needle is at least two bytes long, so the pair filter rejects nearly every
 * candidate position in ordinary text ("s" is common, "sk" is not) before any compare. */
static void mark(struct lf__redactor *r, const char *lit)
{
    unsigned b0 = (unsigned char)lit[0], b1 = (unsigned char)lit[1];
    unsigned idx = b0 << 8 | b1;
    r->first[b0] = 1;
    if (!(r->pair[idx >> 6] >> (idx & 63) & 1) && r->npairs >= 0) {
        if (r->npairs == LF__MAX_PAIRS) {
            r->npairs = -1;
        } else {
            r->b0[r->npairs] = (uint8_t)b0;
            r->b1[r->npairs] = (uint8_t)b1;
            r->npairs++;
        }
    }
    r->pair[idx >> 6] |= (uint64_t)1 << (idx & 63);
}

int lf__redact_pairs(const struct lf__redactor *r, const uint8_t **b0, const uint8_t **b1)
{
    if (!r)
        return 0;
    *b0 = r->b0;
    *b1 = r->b1;
    return r->npairs;
}

static const struct needle shapes[] = {
    {"sk-ant-", 7, SET_KEY, 8, LF__REDACTED, NULL},
    {"sk-lf-", 6, SET_KEY, 8, LF__REDACTED, NULL},
    {"ghp_", 4, SET_ALNUM, 20, LF__REDACTED, NULL},
    {"gho_", 4, SET_ALNUM, 20, LF__REDACTED, NULL},
    {"ghu_", 4, SET_ALNUM, 20, LF__REDACTED, NULL},
    {"ghs_", 4, SET_ALNUM, 20, LF__REDACTED, NULL},
    {"ghr_", 4, SET_ALNUM, 20, LF__REDACTED, NULL},
    {"github_pat_", 11, SET_KEY, 20, LF__REDACTED, NULL},
    {"Bearer ", 7, SET_BEARER, 8, "Bearer " LF__REDACTED, NULL},
    {"bearer ", 7, SET_BEARER, 8, "bearer " LF__REDACTED, NULL},
};

static int in_set(int set, unsigned char c)
{
    int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    switch (set) {
    case SET_ALNUM:
        return alnum;
    case SET_KEY:
        return alnum || c == '-' || c == '_';
    case SET_BEARER:
        return alnum || c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '/' ||
               c == '=';
    default:
        return 0;
    }
}

static struct lf__redactor *alloc_with(size_t n)
{
    struct lf__redactor *r = lf__calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->needles = lf__calloc(n, sizeof(struct needle));
    if (!r->needles) {
        free(r);
        return NULL;
    }
    atomic_init(&r->refs, 1);
    return r;
}

struct lf__redactor *lf__redactor_new(void)
{
    size_t n = sizeof(shapes) / sizeof(shapes[0]);
    struct lf__redactor *r = alloc_with(n);
    if (!r)
        return NULL;
    memcpy(r->needles, shapes, sizeof(shapes));
    r->n = n;
    for (size_t i = 0; i < n; i++)
        mark(r, shapes[i].lit);
    return r;
}

struct lf__redactor *lf__redactor_with(const struct lf__redactor *r, const char *secret,
                                       size_t len)
{
    struct lf__redactor *d = alloc_with(r->n + 1);
    if (!d)
        return NULL;
    char *copy = lf__strndup(secret, len);
    if (!copy) {
        lf__redactor_free(d);
        return NULL;
    }
    memcpy(d->first, r->first, sizeof(d->first));
    memcpy(d->pair, r->pair, sizeof(d->pair));
    memcpy(d->b0, r->b0, sizeof(d->b0));
    memcpy(d->b1, r->b1, sizeof(d->b1));
    d->npairs = r->npairs;
    for (size_t i = 0; i < r->n; i++) {
        d->needles[i] = r->needles[i];
        if (r->needles[i].owned) {
            d->needles[i].owned = lf__strdup(r->needles[i].owned);
            if (!d->needles[i].owned) {
                d->n = i;
                free(copy);
                lf__redactor_free(d);
                return NULL;
            }
            d->needles[i].lit = d->needles[i].owned;
        }
    }
    /* Order does not matter: lf__redact_at() takes the longest match. */
    d->needles[r->n] = (struct needle){copy, len, SET_NONE, 0, LF__REDACTED, copy};
    d->n = r->n + 1;
    mark(d, secret);
    return d;
}

struct lf__redactor *lf__redactor_ref(struct lf__redactor *r)
{
    if (r)
        atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

void lf__redactor_free(struct lf__redactor *r)
{
    if (!r)
        return;
    unsigned before = atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel);
    assert(before > 0);
    if (before != 1)
        return;
    for (size_t i = 0; i < r->n; i++)
        lf__free_secret(r->needles[i].owned); /* the copy is a secret */
    free(r->needles);
    free(r);
}

int lf__redact_candidate(const struct lf__redactor *r, unsigned char c)
{
    return r && r->first[c];
}

size_t lf__redact_at(const struct lf__redactor *r, const char *s, size_t n, size_t i,
                     const char **repl)
{
    if (!r || i + 1 >= n)
        return 0;
    unsigned idx = (unsigned)(unsigned char)s[i] << 8 | (unsigned char)s[i + 1];
    if (!(r->pair[idx >> 6] >> (idx & 63) & 1))
        return 0;
    size_t best = 0;
    for (size_t k = 0; k < r->n; k++) {
        const struct needle *nd = &r->needles[k];
        if (nd->lit[0] != s[i] || nd->lit[1] != s[i + 1] || nd->litlen > n - i ||
            memcmp(s + i, nd->lit, nd->litlen) != 0)
            continue;
        size_t end = i + nd->litlen;
        if (nd->set != SET_NONE) {
            while (end < n && in_set(nd->set, (unsigned char)s[end]))
                end++;
            if (end - i - nd->litlen < nd->min_tail)
                continue;
        }
        if (end - i > best) {
            best = end - i;
            *repl = nd->repl;
        }
    }
    return best;
}

void lf__redact_append(const struct lf__redactor *r, struct lf__buf *out, const char *s, size_t n)
{
    size_t run = 0, i = 0;
    while (i < n) {
        const char *repl;
        size_t m = lf__redact_at(r, s, n, i, &repl);
        if (!m) {
            i++;
            continue;
        }
        lf__buf_append(out, s + run, i - run);
        lf__buf_puts(out, repl);
        i += m;
        run = i;
    }
    lf__buf_append(out, s + run, n - run);
}

char *lf__redact_dup(const struct lf__redactor *r, const char *s)
{
    struct lf__buf b;
    lf__buf_init(&b, 0);
    lf__redact_append(r, &b, s, strlen(s));
    if (lf__buf_failed(&b) || !b.data) {
        lf__buf_free(&b);
        return b.oom ? NULL : lf__strdup("");
    }
    return lf__buf_steal(&b, NULL);
}
