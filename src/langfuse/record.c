/*
 * record.c - append-only tagged fields of an observation export; see record.h.
 */
#include "record.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "invariant.h"

#define ENTRY_HDR 10u /* tag, kind, u32 klen, u32 vlen */

/* The offset of p in r's data, or -1 when p lies elsewhere (compared as integers: p may
 * point into another object). */
static ptrdiff_t own_offset(const struct lf_obs *r, const void *p)
{
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)r->data;
    return r->data && a >= lo && a < lo + r->len ? (ptrdiff_t)(a - lo) : -1;
}

int lf__rec_put(struct lf_obs *r, uint8_t tag, uint8_t kind, const char *key, size_t klen,
                const void *val, size_t vlen)
{
    return lf__rec_put2(r, tag, kind, key, klen, val, vlen, NULL, 0);
}

int lf__rec_put2(struct lf_obs *r, uint8_t tag, uint8_t kind, const char *key, size_t klen,
                 const void *val, size_t vlen, const void *more, size_t mlen)
{
    LF_INVARIANT(tag > 0 && tag < LF__TAG_MAX);
    if (klen > UINT32_MAX / 4 || vlen > UINT32_MAX / 4 || mlen > UINT32_MAX / 4) return -1;
    size_t total = vlen + mlen;
    size_t need = (size_t)r->len + ENTRY_HDR + klen + total;
    if (need > UINT32_MAX / 2) return -1;
    if (need > r->cap) {
        /* Grow to half again what is needed (at least double): a generation with a prompt
         * and an answer settles in two or three allocations instead of five. */
        size_t ncap = r->cap ? (size_t)r->cap * 2 : 256;
        if (ncap < need + need / 2) ncap = need + need / 2;
        /* A key or value read from this record (lf__rec_last) moves with its data. */
        ptrdiff_t ko = own_offset(r, key), vo = own_offset(r, val), mo = own_offset(r, more);
        unsigned char *p = lf__realloc(r->data, ncap);
        if (!p) return -1;
        r->data = p;
        r->cap = (uint32_t)ncap;
        if (ko >= 0) key = (const char *)p + ko;
        if (vo >= 0) val = p + vo;
        if (mo >= 0) more = p + mo;
    }
    unsigned char *w = r->data + r->len;
    uint32_t k32 = (uint32_t)klen, v32 = (uint32_t)total;
    w[0] = tag;
    w[1] = kind;
    memcpy(w + 2, &k32, 4);
    memcpy(w + 6, &v32, 4);
    if (klen) memcpy(w + ENTRY_HDR, key, klen);
    if (vlen) memcpy(w + ENTRY_HDR + klen, val, vlen);
    if (mlen) memcpy(w + ENTRY_HDR + klen + vlen, more, mlen);
    r->len = (uint32_t)need;
    return 0;
}

int lf__rec_next(const struct lf_obs *r, uint32_t *pos, struct lf__field *f)
{
    if (*pos >= r->len) return 0;
    const unsigned char *p = r->data + *pos;
    LF_INVARIANT(*pos + ENTRY_HDR <= r->len);
    f->tag = p[0];
    f->kind = p[1];
    memcpy(&f->klen, p + 2, 4);
    memcpy(&f->vlen, p + 6, 4);
    f->key = (const char *)p + ENTRY_HDR;
    f->val = f->key + f->klen;
    *pos += ENTRY_HDR + f->klen + f->vlen;
    LF_INVARIANT(*pos <= r->len);
    return 1;
}

int lf__rec_last(const struct lf_obs *r, uint8_t tag, struct lf__field *f)
{
    struct lf__field cur;
    uint32_t pos = 0;
    int found = 0;
    while (lf__rec_next(r, &pos, &cur))
        if (cur.tag == tag) {
            *f = cur;
            found = 1;
        }
    return found;
}

int lf__rec_superseded(const struct lf_obs *r, uint32_t pos, const struct lf__field *f)
{
    struct lf__field cur;
    while (lf__rec_next(r, &pos, &cur))
        if (cur.tag == f->tag && cur.klen == f->klen && memcmp(cur.key, f->key, f->klen) == 0)
            return 1;
    return 0;
}

int lf__rec_has_trace_fields(const struct lf_obs *r)
{
    struct lf__field f;
    uint32_t pos = 0;
    while (lf__rec_next(r, &pos, &f))
        if (f.tag >= LF__T_NAME) return 1;
    return 0;
}

int64_t lf__field_i64(const struct lf__field *f)
{
    int64_t v = 0;
    if (f->vlen == sizeof(v)) memcpy(&v, f->val, sizeof(v));
    return v;
}

double lf__field_dbl(const struct lf__field *f)
{
    double v = 0;
    if (f->vlen == sizeof(v)) memcpy(&v, f->val, sizeof(v));
    return v;
}

size_t lf__rec_size(const struct lf_obs *r)
{
    return sizeof(*r) + r->cap;
}

void lf__rec_free(struct lf_obs *r)
{
    if (!r) return;
    free(r->data);
    free(r);
}

const char *lf__obs_type_name(unsigned type)
{
    static const char *const names[] = {"span",      "generation", "event",     "agent",
                                        "tool",      "chain",      "retriever", "evaluator",
                                        "embedding", "guardrail"};
    return type < sizeof(names) / sizeof(names[0]) ? names[type] : "span";
}

const char *lf__level_name(int level)
{
    static const char *const names[] = {"DEFAULT", "DEBUG", "WARNING", "ERROR"};
    return level >= 0 && level <= 3 ? names[level] : "DEFAULT";
}
