/*
 * encode.c - what both wire formats share: values, masking, truncation, body packing.
 *
 * Truncation keeps an observation that is too large instead of losing it: the largest
 * value is cut (at a UTF-8 boundary, with a visible "...[truncated N bytes]" marker) and the
 * observation encoded again, up to LF__MAX_LIMITS times, each time cutting whichever value
 * is now largest. Ids, times, names, usage and cost are never cut. Re-encoding costs a few
 * passes over one oversized observation, which is rare, and keeps the common path simple.
 */
#include "encode.h"

#include <jansson.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <libdeflate.h>

#include "alloc.h"
#include "json.h"

int lf__enc_is_last(const struct lf_obs *r, uint32_t next_pos, const struct lf__field *f)
{
    return !lf__rec_superseded(r, next_pos, f);
}

static int limit_of(const struct lf__limits *lim, uint32_t pos, uint32_t *limit)
{
    for (int i = 0; lim && i < lim->n; i++)
        if (lim->pos[i] == pos) {
            *limit = lim->limit[i];
            return 1;
        }
    return 0;
}

/* Cut point at most `limit` that does not split a UTF-8 sequence. */
/* A jansson tree written with our escaper, so strings inside JSON values are redacted and
 * escaped exactly like every other string. */
static void write_tree(struct lf__buf *out, json_t *v, const struct lf__redactor *red, int twice)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *item;
        int first = 1;
        lf__buf_putc(out, '{');
        json_object_foreach(v, k, item)
        {
            if (!first) lf__buf_putc(out, ',');
            first = 0;
            lf__json_str(out, k, strlen(k), red, twice);
            lf__buf_putc(out, ':');
            write_tree(out, item, red, twice);
        }
        lf__buf_putc(out, '}');
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *item;
        lf__buf_putc(out, '[');
        json_array_foreach(v, i, item)
        {
            if (i) lf__buf_putc(out, ',');
            write_tree(out, item, red, twice);
        }
        lf__buf_putc(out, ']');
        break;
    }
    case JSON_STRING:
        lf__json_str(out, json_string_value(v), json_string_length(v), red, twice);
        break;
    case JSON_INTEGER:
        lf__buf_put_i64(out, (int64_t)json_integer_value(v));
        break;
    case JSON_REAL:
        lf__json_double(out, json_real_value(v));
        break;
    case JSON_TRUE:
        lf__buf_puts(out, "true");
        break;
    case JSON_FALSE:
        lf__buf_puts(out, "false");
        break;
    default:
        lf__buf_puts(out, "null");
        break;
    }
}

/* Writes a string value as JSON text (a quoted string), optionally carried inside another
 * string, with the truncation marker inside the quotes. */
static void put_string_value(struct lf__buf *out, const char *s, size_t n, size_t cut,
                             const struct lf__redactor *red, enum lf__vmode mode)
{
    int in_str = mode == LF__VM_JSON_IN_STR;
    if (in_str)
        lf__buf_append(out, "\"\\\"", 3);
    else
        lf__buf_putc(out, '"');
    lf__json_str_body(out, s, cut, red, in_str);
    if (cut < n) lf__buf_printf(out, "...[truncated %zu bytes]", n - cut);
    if (in_str)
        lf__buf_append(out, "\\\"\"", 3);
    else
        lf__buf_putc(out, '"');
}

static void put_json_value(struct lf__buf *out, const char *s, size_t n,
                           const struct lf__redactor *red, enum lf__vmode mode)
{
    if (mode == LF__VM_JSON_IN_STR) {
        /* Langfuse parses the string; text that is not JSON stays a string there, which is
         * what the API promises, so no validation is needed on this path. */
        lf__json_str(out, s, n, red, 0);
        return;
    }
    json_error_t err;
    json_t *v = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (v) {
        write_tree(out, v, red, 0);
        json_decref(v);
    } else {
        put_string_value(out, s, n, n, red, mode);
    }
}

static void put_scalar(struct lf__buf *out, const struct lf__field *f, enum lf__vmode mode)
{
    int in_str = mode == LF__VM_JSON_IN_STR;
    if (in_str) lf__buf_putc(out, '"');
    if (f->kind == LF__V_INT)
        lf__buf_put_i64(out, lf__field_i64(f));
    else if (f->kind == LF__V_DBL)
        lf__json_double(out, lf__field_dbl(f));
    else
        lf__buf_puts(out, f->vlen && f->val[0] ? "true" : "false");
    if (in_str) lf__buf_putc(out, '"');
}

void lf__enc_value(const struct lf__enc *e, struct lf__buf *out, uint32_t pos,
                   const struct lf__field *f, const char *field, const struct lf__limits *lim,
                   enum lf__vmode mode)
{
    const char *s = f->val;
    size_t n = f->vlen;
    int kind = f->kind;
    char *masked = NULL;

    if (field && e->conf->mask_messages && strcmp(field, "metadata") != 0) {
        s = LF__MASKED;
        n = strlen(s);
        kind = LF__V_STR;
    } else if (field && e->conf->mask) {
        struct lf__buf text;
        lf__buf_init(&text, 0);
        if (kind == LF__V_STR)
            lf__json_str(&text, s, n, NULL, 0);
        else if (kind == LF__V_JSON)
            lf__buf_append(&text, s, n);
        else
            put_scalar(&text, f, LF__VM_JSON);
        if (!lf__buf_failed(&text) && text.data)
            masked = e->conf->mask(e->conf->mask_ud, field, text.data, text.len);
        lf__buf_free(&text);
        if (masked) {
            s = masked;
            n = strlen(masked);
            kind = LF__V_JSON;
        }
    }

    uint32_t limit;
    size_t cut = n;
    if (limit_of(lim, pos, &limit) && limit < n) cut = lf__utf8_cut(s, limit);

    if (kind == LF__V_STR || (kind == LF__V_JSON && cut < n))
        put_string_value(out, s, n, cut, e->red, mode);
    else if (kind == LF__V_JSON)
        put_json_value(out, s, n, e->red, mode);
    else
        put_scalar(out, f, mode);
    free(masked);
}

void lf__enc_map(struct lf__buf *out, const struct lf_obs *r, uint8_t tag)
{
    struct lf__field f;
    uint32_t pos = 0;
    int first = 1;
    lf__buf_putc(out, '{');
    while (lf__rec_next(r, &pos, &f)) {
        if (f.tag != tag || !lf__enc_is_last(r, pos, &f)) continue;
        if (!first) lf__buf_putc(out, ',');
        first = 0;
        lf__json_str(out, f.key, f.klen, NULL, 0);
        lf__buf_putc(out, ':');
        if (f.kind == LF__V_DBL)
            lf__json_double(out, lf__field_dbl(&f));
        else
            lf__buf_put_i64(out, lf__field_i64(&f));
    }
    lf__buf_putc(out, '}');
}

int lf__enc_tags(struct lf__buf *out, const struct lf_obs *r, const struct lf__redactor *red,
                 const char *pre, const char *post)
{
    struct lf__field f, g;
    uint32_t pos = 0;
    int n = 0;
    while (lf__rec_next(r, &pos, &f)) {
        if (f.tag != LF__T_TAG) continue;
        uint32_t p2 = 0;
        int dup = 0;
        while (!dup && lf__rec_next(r, &p2, &g) && p2 < pos)
            dup = g.tag == LF__T_TAG && g.vlen == f.vlen && !memcmp(g.val, f.val, f.vlen);
        if (dup) continue;
        if (n++) lf__buf_putc(out, ',');
        lf__buf_puts(out, pre);
        lf__json_str(out, f.val, f.vlen, red, 0);
        lf__buf_puts(out, post);
    }
    return n;
}

/* ---- packing ----------------------------------------------------------------------------- */

static int is_cuttable(uint8_t tag)
{
    return tag == LF__F_INPUT || tag == LF__F_OUTPUT || tag == LF__F_META || tag == LF__F_STATUS ||
           tag == LF__F_MODEL_PARAMS || tag == LF__T_INPUT || tag == LF__T_OUTPUT ||
           tag == LF__T_META;
}

static void encode_one(const struct lf__enc *e, struct lf__buf *out, const struct lf_obs *r,
                       const struct lf__limits *lim)
{
    if (e->conf->transport == LF_TRANSPORT_OTLP)
        lf__otlp_span(e, out, r, lim);
    else
        lf__ingest_events(e, out, r, lim);
}

/* Encodes `r` into `tmp` within max_event_bytes. Returns 1 if it fits untouched, 2 if it
 * fits after truncation, 0 if it cannot fit, -1 when memory ran out. */
static int encode_fitted(const struct lf__enc *e, struct lf__buf *tmp, const struct lf_obs *r)
{
    struct lf__limits lim = {.n = 0};
    size_t cap = e->conf->max_event_bytes;
    lf__buf_reset(tmp);
    encode_one(e, tmp, r, NULL);
    if (tmp->oom) return -1;
    if (!tmp->toobig && tmp->len <= cap) return 1;
    for (int round = 0; round < 3 * LF__MAX_LIMITS; round++) {
        size_t excess = tmp->toobig ? cap : tmp->len - cap;
        /* The value that is largest now, counting the cuts already made. */
        struct lf__field f;
        uint32_t pos = 0, best_pos = 0;
        size_t best = 0;
        while (1) {
            uint32_t at = pos;
            if (!lf__rec_next(r, &pos, &f)) break;
            if (!is_cuttable(f.tag)) continue;
            uint32_t l;
            size_t eff = limit_of(&lim, at, &l) && l < f.vlen ? l : f.vlen;
            if (eff > best) {
                best = eff;
                best_pos = at;
            }
        }
        if (best == 0) return 0;
        size_t keep = best > excess + 64 ? best - excess - 64 : 0;
        int slot = -1;
        for (int i = 0; i < lim.n; i++)
            if (lim.pos[i] == best_pos) slot = i;
        if (slot < 0) {
            if (lim.n == LF__MAX_LIMITS) return 0;
            slot = lim.n++;
            lim.pos[slot] = best_pos;
        }
        lim.limit[slot] = (uint32_t)keep;
        lf__buf_reset(tmp);
        encode_one(e, tmp, r, &lim);
        if (tmp->oom) return -1;
        if (!tmp->toobig && tmp->len <= cap) return 2;
    }
    return 0;
}

void lf__encoder_init(struct lf__encoder *enc)
{
    memset(enc, 0, sizeof(*enc));
    lf__buf_init(&enc->tmp, 0);
    lf__buf_init(&enc->out, 0);
}

void lf__encoder_free(struct lf__encoder *enc)
{
    if (!enc) return;
    if (enc->compressor) libdeflate_free_compressor(enc->compressor);
    free(enc->gz);
    lf__buf_free(&enc->tmp);
    lf__buf_free(&enc->out);
    memset(enc, 0, sizeof(*enc));
}

/* Compresses enc->out into a new exact-size allocation; 0, or -1 when memory ran out. */
static int compress_body(struct lf__encoder *enc, struct lf__body *body)
{
    if (!enc->compressor) {
        /* level 1: the exporter's CPU matters more than the last few percent of size */
        enc->compressor = libdeflate_alloc_compressor(1);
        if (!enc->compressor) return -1;
    }
    size_t bound = libdeflate_gzip_compress_bound(enc->compressor, enc->out.len);
    if (bound > enc->gz_cap) {
        char *g = lf__realloc(enc->gz, bound);
        if (!g) return -1;
        enc->gz = g;
        enc->gz_cap = bound;
    }
    size_t n = libdeflate_gzip_compress(enc->compressor, enc->out.data, enc->out.len, enc->gz,
                                        enc->gz_cap);
    if (!n) return -1;
    body->data = lf__malloc(n);
    if (!body->data) return -1;
    memcpy(body->data, enc->gz, n);
    body->len = n;
    body->gz = 1;
    return 0;
}

static void release(const struct lf__enc *e, struct lf_obs *r)
{
    if (e->release)
        e->release(e->ud, r);
    else
        lf__rec_free(r);
}

static const size_t suffix = 128; /* room for the closing brackets and metadata */

void lf__encode_begin(struct lf__encoder *enc, const struct lf__enc *e)
{
    lf__buf_reset(&enc->out);
    enc->out.max = e->conf->max_request_bytes;
    enc->tmp.max = e->conf->max_event_bytes + 1; /* +1: an overflow is detected, not cut */
    if (e->conf->transport == LF_TRANSPORT_OTLP)
        lf__otlp_begin(e, &enc->out);
    else
        lf__ingest_begin(&enc->out);
    enc->head = enc->out.len;
    enc->n = 0;
}

/* Out of memory: records already consumed are lost with the partial body; count them. */
static int lost_body(struct lf__encoder *enc, uint64_t *dropped)
{
    *dropped += enc->n;
    enc->n = 0;
    return LF_ERR_NOMEM;
}

int lf__encode_some(struct lf__encoder *enc, const struct lf__enc *e, struct lf_obs **list,
                    unsigned max, uint64_t *truncated, uint64_t *dropped)
{
    size_t cap = e->conf->max_request_bytes;
    for (unsigned done = 0; *list; done++) {
        if (done == max) return 1;
        struct lf_obs *r = *list;
        int fit = encode_fitted(e, &enc->tmp, r);
        if (fit < 0) return lost_body(enc, dropped);
        if (fit == 0) {
            (*dropped)++;
            *list = r->next;
            release(e, r);
            continue;
        }
        if (enc->out.len + 1 + enc->tmp.len + suffix > cap && enc->n > 0) return 0;
        if (enc->out.len > enc->head) lf__buf_putc(&enc->out, ',');
        lf__buf_append(&enc->out, enc->tmp.data, enc->tmp.len);
        if (lf__buf_failed(&enc->out)) return lost_body(enc, dropped);
        if (fit == 2 || (r->flags & LF__REC_CUT))
            (*truncated)++; /* once per observation, wherever it was cut */
        enc->n++;
        *list = r->next;
        release(e, r);
    }
    return 0;
}

int lf__encode_end(struct lf__encoder *enc, const struct lf__enc *e, struct lf__body *body,
                   uint64_t *dropped)
{
    memset(body, 0, sizeof(*body));
    if (e->conf->transport == LF_TRANSPORT_OTLP)
        lf__otlp_end(&enc->out);
    else
        lf__ingest_end(&enc->out);
    if (lf__buf_failed(&enc->out)) return lost_body(enc, dropped);
    if (e->conf->gzip) {
        if (compress_body(enc, body)) goto nomem;
    } else {
        body->data = lf__malloc(enc->out.len + 1);
        if (!body->data) goto nomem;
        memcpy(body->data, enc->out.data, enc->out.len + 1);
        body->len = enc->out.len;
    }
    body->nrec = enc->n;
    return LF_OK;
nomem:
    memset(body, 0, sizeof(*body));
    return lost_body(enc, dropped);
}

int lf__encode_body(struct lf__encoder *enc, const struct lf__enc *e, struct lf_obs **list,
                    struct lf__body *body, uint64_t *truncated, uint64_t *dropped)
{
    lf__encode_begin(enc, e);
    int rc = lf__encode_some(enc, e, list, UINT_MAX, truncated, dropped);
    if (rc < 0) {
        memset(body, 0, sizeof(*body));
        return rc;
    }
    return lf__encode_end(enc, e, body, dropped);
}
