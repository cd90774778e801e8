/*
 * redact.c - secret and token-shape redaction; see redact.h.
 *
 * The token shapes are ten fixed prefixes: at a candidate position we try them in turn.
 * The escaper's scan finds candidates by three of their bytes (the probes), and a table
 * of their two-byte beginnings turns most other positions away for lf__redact_append().
 *
 * Registered secrets are found by sampling (q-gram sampling, the idea behind Wu-Manber's
 * hashed blocks). Every secret is at least `stride` + GRAM - 1 bytes long, so an
 * occurrence of it starting at q covers the one multiple p of `stride` in [q, q + stride),
 * and the GRAM bytes at p are the secret's bytes at offset p - q < stride. The index holds
 * every secret's first `stride` grams (4-byte windows) with their offsets. At each multiple
 * of `stride`, a one-hash Bloom filter of those grams turns nearly every position away in a
 * multiply and a load; a hit is verified by a binary search for the gram and a compare of
 * the whole secret at p - off. That is one hash per `stride` bytes (a service-account key
 * makes it ~20: its PEM's last line is its shortest secret) whatever the number of secrets,
 * apart from the escaper's SIMD scan. (Before, each secret added its two-byte beginning to
 * that scan, which gave up past 24 and fell back to a byte loop: 3-5x slower with a
 * service-account key registered, bench/escape_bench.)
 *
 * Hand-written rather than Hyperscan/Vectorscan, which would find these needles too: that
 * is a large C++ dependency compiling a database per secret set, where this is a hundred
 * lines whose next-match position the escaper folds into its own single pass.
 *
 * Costs admitted: a short secret shortens the stride for all (LF__SECRET_MIN gives 3); a
 * sampled hit of a gram many secrets share (a common prefix) verifies each of them; and
 * the index is rebuilt whole when a secret is added, O(secrets x stride), as the redactor
 * is copied whole anyway to stay immutable.
 */
#include "redact.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "invariant.h"

enum { SET_NONE = 0, SET_KEY, SET_ALNUM, SET_BEARER };

#define GRAM 4        /* bytes hashed at a sampled position */
#define STRIDE_MAX 32 /* longer secrets index only their first STRIDE_MAX grams */
#define BLOOM_MAX 22  /* the gram bitmap holds at most 2^22 bits (512 KiB) */
_Static_assert(LF__SECRET_MIN >= GRAM, "a registered secret must hold one gram");

struct shape {
    const char *lit; /* the literal prefix */
    size_t litlen;
    size_t at;       /* lit[at] is the probe's third byte: the one that makes it rare */
    int set;         /* charset of the token after the prefix */
    size_t min_tail; /* shortest token tail that counts as a match */
    const char *repl;
};

struct secret {
    char *val;  /* owned copy; wiped when freed */
    size_t len; /* >= LF__SECRET_MIN */
};

struct gram {
    uint32_t w;      /* the GRAM bytes, as memcpy'd into a uint32_t */
    uint32_t off;    /* where in the secret they start: 0 .. stride - 1 */
    uint32_t secret; /* index into secrets[] */
};

struct lf__redactor {
    uint8_t first[256];  /* nonzero where some shape starts with that byte */
    uint64_t pair[1024]; /* bit (b0 << 8 | b1) set where some shape starts with b0 b1 */
    struct lf__redact_probes probes;
    struct secret *secrets;
    size_t nsecrets;
    size_t stride;      /* sampling step: shortest secret - GRAM + 1, at most STRIDE_MAX */
    struct gram *grams; /* nsecrets * stride, sorted by (w, off, secret) */
    size_t ngrams;
    uint64_t *bloom; /* one-hash Bloom filter: bit hash(w) set for every gram's w;
                        2^(32 - shift) bits */
    unsigned shift;
    atomic_uint refs;
};

/* The probe bytes (`at`) are picked by hand: "sk-", "gh?_", "gi????_", "Bea" and "bea"
 * are rare in prose and code, where "sk", "gh", "gi" and "be" are everywhere. */
static const struct shape shapes[] = {
    {"sk-ant-", 7, 2, SET_KEY, 8, LF__REDACTED},
    {"sk-lf-", 6, 2, SET_KEY, 8, LF__REDACTED},
    {"ghp_", 4, 3, SET_ALNUM, 20, LF__REDACTED},
    {"gho_", 4, 3, SET_ALNUM, 20, LF__REDACTED},
    {"ghu_", 4, 3, SET_ALNUM, 20, LF__REDACTED},
    {"ghs_", 4, 3, SET_ALNUM, 20, LF__REDACTED},
    {"ghr_", 4, 3, SET_ALNUM, 20, LF__REDACTED},
    {"github_pat_", 11, 6, SET_KEY, 20, LF__REDACTED},
    {"Bearer ", 7, 2, SET_BEARER, 8, "Bearer " LF__REDACTED},
    {"bearer ", 7, 2, SET_BEARER, 8, "bearer " LF__REDACTED},
};
#define NSHAPES (sizeof(shapes) / sizeof(shapes[0]))

static int has_pair(const struct lf__redactor *r, unsigned char c0, unsigned char c1)
{
    unsigned idx = (unsigned)c0 << 8 | c1;
    return r->pair[idx >> 6] >> (idx & 63) & 1;
}

/* Every shape is at least two bytes long, so the pair filter rejects nearly every
 * candidate position in ordinary text ("s" is common, "sk" is not) before any compare. */
static void mark(struct lf__redactor *r, const struct shape *sh)
{
    unsigned char c0 = (unsigned char)sh->lit[0], c1 = (unsigned char)sh->lit[1],
                  c2 = (unsigned char)sh->lit[sh->at];
    unsigned idx = (unsigned)c0 << 8 | c1;
    LF_INVARIANT(sh->at >= 2 && sh->at < sh->litlen && sh->at < LF__PROBE_REACH);
    r->first[c0] = 1;
    r->pair[idx >> 6] |= (uint64_t)1 << (idx & 63);
    struct lf__redact_probes *p = &r->probes;
    for (int k = 0; k < p->n; k++)
        if (p->b0[k] == c0 && p->b1[k] == c1 && p->at[k] == sh->at && p->b2[k] == c2) return;
    LF_INVARIANT(p->n < LF__PROBES_MAX);
    p->b0[p->n] = c0;
    p->b1[p->n] = c1;
    p->at[p->n] = (uint8_t)sh->at;
    p->b2[p->n] = c2;
    p->n++;
}

const struct lf__redact_probes *lf__redact_probes(const struct lf__redactor *r)
{
    return r ? &r->probes : NULL;
}

const uint8_t *lf__redact_firsts(const struct lf__redactor *r)
{
    static const uint8_t none[256];
    return r ? r->first : none;
}

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

/* ---- the gram index ------------------------------------------------------------------------ */

static uint32_t load_gram(const char *p)
{
    uint32_t w;
    memcpy(&w, p, GRAM);
    return w;
}

static uint32_t gram_hash(const struct lf__redactor *r, uint32_t w)
{
    return (uint32_t)(w * 0x9E3779B1u) >> r->shift; /* Fibonacci hashing: the top bits */
}

static int bloom_has(const struct lf__redactor *r, uint32_t w)
{
    uint32_t h = gram_hash(r, w);
    return r->bloom[h >> 6] >> (h & 63) & 1;
}

static int gram_cmp(const void *a, const void *b)
{
    const struct gram *x = a, *y = b;
    if (x->w != y->w) return x->w < y->w ? -1 : 1;
    if (x->off != y->off) return x->off < y->off ? -1 : 1;
    return x->secret < y->secret ? -1 : x->secret > y->secret;
}

/* The first index of grams[] whose w is not below `w`. */
static size_t gram_lower(const struct lf__redactor *r, uint32_t w)
{
    size_t lo = 0, hi = r->ngrams;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->grams[mid].w < w)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Builds stride, grams and bloom from secrets[]; 0, or -1 when out of memory. */
static int build_index(struct lf__redactor *r)
{
    size_t shortest = SIZE_MAX;
    for (size_t k = 0; k < r->nsecrets; k++)
        shortest = r->secrets[k].len < shortest ? r->secrets[k].len : shortest;
    LF_INVARIANT(shortest >= LF__SECRET_MIN && r->nsecrets <= UINT32_MAX);
    r->stride = shortest - GRAM + 1 < STRIDE_MAX ? shortest - GRAM + 1 : STRIDE_MAX;
    if (r->nsecrets > SIZE_MAX / sizeof(struct gram) / r->stride) return -1;
    r->ngrams = r->nsecrets * r->stride;
    r->grams = lf__malloc(r->ngrams * sizeof(struct gram));
    if (!r->grams) return -1;
    size_t g = 0;
    for (size_t k = 0; k < r->nsecrets; k++)
        for (size_t off = 0; off < r->stride; off++)
            r->grams[g++] =
                (struct gram){load_gram(r->secrets[k].val + off), (uint32_t)off, (uint32_t)k};
    qsort(r->grams, r->ngrams, sizeof(struct gram), gram_cmp);
    /* 64 bits or more per gram: a sampled position holding no secret's gram passes the
     * bitmap under 2% of the time (and then costs a binary search). 4 KiB at least. */
    unsigned bits = 15;
    while (bits < BLOOM_MAX && ((size_t)1 << bits) < r->ngrams * 64)
        bits++;
    r->shift = 32 - bits;
    r->bloom = lf__calloc((size_t)1 << (bits - 6), sizeof(uint64_t));
    if (!r->bloom) return -1;
    for (size_t k = 0; k < r->ngrams; k++) {
        uint32_t h = gram_hash(r, r->grams[k].w);
        r->bloom[h >> 6] |= (uint64_t)1 << (h & 63);
    }
    return 0;
}

/* The smallest q >= i where a secret indexed under gram w at offset p - q occurs; SIZE_MAX
 * if none. */
static size_t verify(const struct lf__redactor *r, const char *s, size_t n, size_t i, size_t p,
                     uint32_t w)
{
    size_t best = SIZE_MAX;
    for (size_t k = gram_lower(r, w); k < r->ngrams && r->grams[k].w == w; k++) {
        const struct gram *g = &r->grams[k];
        const struct secret *sec = &r->secrets[g->secret];
        if (g->off > p - i) continue; /* starts before i */
        size_t q = p - g->off;
        if (q < best && sec->len <= n - q && memcmp(s + q, sec->val, sec->len) == 0) best = q;
    }
    return best;
}

size_t lf__redact_next(const struct lf__redactor *r, const char *s, size_t n, size_t i)
{
    if (!r || !r->nsecrets) return n;
    size_t stride = r->stride;
    /* Samples are the multiples of stride. An occurrence starting at q is seen at the one
     * sample in [q, q + stride), so the samples from the first one at or after i see every
     * occurrence at or after i, in order of their windows (p - stride, p]. */
    for (size_t p = (i + stride - 1) / stride * stride; p < n && n - p >= GRAM; p += stride) {
        uint32_t w = load_gram(s + p);
        if (!bloom_has(r, w)) continue;
        size_t q = verify(r, s, n, i, p, w);
        if (q != SIZE_MAX) return q;
    }
    return n;
}

/* ---- redactors ------------------------------------------------------------------------------ */

struct lf__redactor *lf__redactor_new(void)
{
    struct lf__redactor *r = lf__calloc(1, sizeof(*r));
    if (!r) return NULL;
    atomic_init(&r->refs, 1);
    for (size_t i = 0; i < NSHAPES; i++)
        mark(r, &shapes[i]);
    return r;
}

struct lf__redactor *lf__redactor_with(const struct lf__redactor *r, const char *secret, size_t len)
{
    LF_INVARIANT(len >= LF__SECRET_MIN);
    struct lf__redactor *d = lf__calloc(1, sizeof(*d));
    if (!d) return NULL;
    atomic_init(&d->refs, 1);
    memcpy(d->first, r->first, sizeof(d->first));
    memcpy(d->pair, r->pair, sizeof(d->pair));
    d->probes = r->probes;
    d->secrets = lf__calloc(r->nsecrets + 1, sizeof(struct secret));
    if (!d->secrets) goto fail;
    /* Order does not matter: lf__redact_at() takes the longest match. */
    for (size_t k = 0; k <= r->nsecrets; k++) {
        const char *v = k < r->nsecrets ? r->secrets[k].val : secret;
        size_t n = k < r->nsecrets ? r->secrets[k].len : len;
        char *copy = lf__malloc(n);
        if (!copy) goto fail;
        memcpy(copy, v, n);
        d->secrets[k] = (struct secret){copy, n};
        d->nsecrets = k + 1;
    }
    if (build_index(d)) goto fail;
    return d;
fail:
    lf__redactor_free(d);
    return NULL;
}

struct lf__redactor *lf__redactor_ref(struct lf__redactor *r)
{
    if (r) atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

void lf__redactor_free(struct lf__redactor *r)
{
    if (!r) return;
    unsigned before = atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel);
    LF_INVARIANT(before > 0);
    if (before != 1) return;
    /* the copies are secrets, and the grams pieces of them */
    for (size_t k = 0; k < r->nsecrets; k++) {
        explicit_bzero(r->secrets[k].val, r->secrets[k].len);
        free(r->secrets[k].val);
    }
    if (r->grams) explicit_bzero(r->grams, r->ngrams * sizeof(struct gram));
    free(r->grams);
    free(r->bloom);
    free(r->secrets);
    free(r);
}

/* ---- matching -------------------------------------------------------------------------------- */

/* The longest needle at s[i]: its length (0: none), its replacement in *repl. */
static size_t match_at(const struct lf__redactor *r, const char *s, size_t n, size_t i,
                       const char **repl)
{
    if (i + 1 >= n) return 0;
    size_t best = 0;
    if (has_pair(r, (unsigned char)s[i], (unsigned char)s[i + 1])) {
        for (size_t k = 0; k < NSHAPES; k++) {
            const struct shape *sh = &shapes[k];
            if (sh->lit[0] != s[i] || sh->lit[1] != s[i + 1] || sh->litlen > n - i ||
                memcmp(s + i, sh->lit, sh->litlen) != 0)
                continue;
            size_t end = i + sh->litlen;
            while (end < n && in_set(sh->set, (unsigned char)s[end]))
                end++;
            if (end - i - sh->litlen >= sh->min_tail && end - i > best) {
                best = end - i;
                *repl = sh->repl;
            }
        }
    }
    /* a secret starting here is indexed under its first gram, at offset 0 (sorted first) */
    if (r->nsecrets && n - i >= LF__SECRET_MIN) {
        uint32_t w = load_gram(s + i);
        if (bloom_has(r, w)) {
            for (size_t k = gram_lower(r, w);
                 k < r->ngrams && r->grams[k].w == w && r->grams[k].off == 0; k++) {
                const struct secret *sec = &r->secrets[r->grams[k].secret];
                if (sec->len > best && sec->len <= n - i &&
                    memcmp(s + i, sec->val, sec->len) == 0) {
                    best = sec->len;
                    *repl = LF__REDACTED;
                }
            }
        }
    }
    return best;
}

size_t lf__redact_at(const struct lf__redactor *r, const char *s, size_t n, size_t i,
                     const char **repl)
{
    size_t m = r ? match_at(r, s, n, i, repl) : 0;
    if (!m) return 0;
    /* Needles that start inside the match and reach past it are covered too: replacing the
     * first alone would leave the rest of an overlapping occurrence in the clear ("ab-cd"
     * and "cd-ef" registered, "ab-cd-ef" written). Matches are rare; this is O(match). */
    size_t end = i + m;
    for (size_t j = i + 1; j < end; j++) {
        const char *ignored;
        size_t mj = match_at(r, s, n, j, &ignored);
        if (j + mj > end) end = j + mj;
    }
    return end - i;
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
