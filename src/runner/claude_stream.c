/*
 * claude_stream.c - parsing Claude Code's stdout lines and composing its stdin lines.
 *
 * Decoding reads a line as Claude Code means it, which is as JavaScript reads it (see
 * cc_msg_parse and "the line as JavaScript reads it" below), and is lenient about shape: any
 * key may be missing, any type may be new, and readers return NULL or 0 rather than fail,
 * because the CLI adds fields and message types between releases. A line that cannot be
 * decoded is reported with jansson's column, and when it was a result or a control request
 * it is replaced by a stand-in, so that no such line can leave a session waiting.
 */
#include "claude_stream.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *type;
    enum cc_msg_kind kind;
} kinds[] = {
    {"system", CC_MSG_SYSTEM},
    {"assistant", CC_MSG_ASSISTANT},
    {"user", CC_MSG_USER},
    {"stream_event", CC_MSG_STREAM_EVENT},
    {"result", CC_MSG_RESULT},
    {"control_request", CC_MSG_CONTROL_REQUEST},
    {"control_response", CC_MSG_CONTROL_RESPONSE},
};

struct dump_buf {
    char *p;
    size_t len, cap, extra;
};

static int dump_append(const char *data, size_t n, void *ud)
{
    struct dump_buf *b = ud;
    if (n + 1 + b->extra > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (n + 1 + b->extra > cap - b->len)
            cap *= 2; /* by doubling: with big blocks mmapped (main.c), realloc is an mremap */
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

char *cc_json_dumps(const json_t *v, size_t flags, size_t extra, size_t *len)
{
    struct dump_buf b = {NULL, 0, 0, extra};
    if (!v || json_dump_callback(v, dump_append, &b, flags) || dump_append("", 0, &b)) {
        free(b.p);
        return NULL;
    }
    b.p[b.len] = '\0';
    if (len) *len = b.len;
    return b.p;
}

const char *cc_json_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* What a failed result's subtype means to a user, or NULL for one not known here. */
static const char *subtype_text(const char *subtype)
{
    if (strcmp(subtype, "error_max_turns") == 0)
        return "Claude Code reached the maximum number of turns (--max-turns)";
    if (strcmp(subtype, "error_max_budget_usd") == 0) return "Claude Code reached its budget limit";
    if (strcmp(subtype, "error_during_execution") == 0)
        return "the turn was interrupted or failed during execution";
    return NULL;
}

void cc_result_describe(const struct cc_result *r, char *buf, size_t len)
{
    if (r->api_error_status)
        snprintf(buf, len, "the model API failed with HTTP %lld", r->api_error_status);
    else if (r->subtype && strcmp(r->subtype, "success") != 0 && subtype_text(r->subtype))
        snprintf(buf, len, "%s (%s)", subtype_text(r->subtype), r->subtype);
    else if (r->subtype && strcmp(r->subtype, "success") != 0)
        snprintf(buf, len, "the turn ended with %s%s%s", r->subtype, r->terminal_reason ? ": " : "",
                 r->terminal_reason ? r->terminal_reason : "");
    else
        snprintf(buf, len, "%.200s", r->result ? r->result : "the turn failed");
}

const char *cc_json_str_or(const json_t *obj, const char *key, const char *def)
{
    const char *v = cc_json_str(obj, key);
    return v ? v : def;
}

long long cc_json_int(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v)) return (long long)json_integer_value(v);
    if (json_is_real(v)) return (long long)json_real_value(v);
    return 0;
}

double cc_json_num(const json_t *obj, const char *key)
{
    return json_number_value(json_object_get(obj, key));
}

/* ---- the line as JavaScript reads it ----------------------------------------------------
 *
 * Claude Code writes its lines with JSON.stringify and would read them with JSON.parse;
 * jansson is stricter in a few places, and a line it refuses used to be dropped (a result
 * among them, which left a batch session waiting for ever). Jansson keeps U+0000 in strings
 * (JSON_ALLOW_NUL); everything else is done by rewriting the line into text jansson accepts
 * with the same meaning, before a second parse:
 * - "\udXXX" escapes of a lone UTF-16 surrogate: JavaScript strings may hold one (a surrogate
 *   pair cut in two), JSON.stringify escapes it, JSON.parse reads it back. UTF-8 cannot hold
 *   it: it becomes "\ufffd", as liblangfuse and any UTF-8 encoder replace it. A proper pair of
 *   escapes stays a pair.
 * - "\u0000" inside an object key: jansson refuses it there (only there); "\ufffd".
 * - an integer beyond 64 bits (JSON.stringify(1e20) writes "100000000000000000000"): ".0" is
 *   appended, so that jansson reads the real number JavaScript reads.
 * - a number beyond a double's range: JSON.parse reads Infinity, which JSON.stringify writes
 *   as null: null.
 * - bytes that are not UTF-8: a reader decoding with replacement (TextDecoder, which is how
 *   JavaScript would read such a stream) sees one U+FFFD for each maximal invalid subpart.
 * - a raw control character inside a string: JSON.parse refuses it (and JSON.stringify
 *   never writes one), but keeping it as an escaped character keeps the text whole and costs
 *   nothing.
 * An escape is rewritten into one of the same length, so jansson's column still points into
 * the line up to the first byte or number rewritten. What still fails is nesting deeper than
 * jansson's 2048 levels, and lines that are not JSON.
 * A line jansson accepts at once, nearly every line, costs one parse and no copy.
 * Written by hand because jansson has no lenient mode and no JSON library reads exactly what
 * JSON.parse reads; a rewrite of the rare refused line keeps jansson for everything else.
 * (liblangfuse repairs UTF-8 the same way, but the runner sees only its public API.)
 */

/* An output buffer that grows; a failed allocation is remembered and ends the rewrite. */
struct fixbuf {
    char *p;
    size_t len, cap;
    int oom;
    int changed; /* something was rewritten */
};

static void fb_put(struct fixbuf *b, const void *s, size_t n)
{
    if (b->oom || n == 0) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void fb_fix(struct fixbuf *b, const char *s, size_t n)
{
    fb_put(b, s, n);
    b->changed = 1;
}

/* Length of the valid UTF-8 sequence at s (n > 0 bytes left), or 0 with *bad = the length
 * of the maximal invalid subpart that one U+FFFD replaces (at least 1). RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t need, i;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c == 0xE0)
        need = 2, lo = 0xA0;
    else if (c == 0xED)
        need = 2, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF)
        need = 2;
    else if (c == 0xF0)
        need = 3, lo = 0x90;
    else if (c == 0xF4)
        need = 3, hi = 0x8F;
    else if (c >= 0xF1 && c <= 0xF3)
        need = 3;
    else {
        *bad = 1;
        return 0;
    }
    for (i = 1; i <= need && i < n && s[i] >= lo && s[i] <= hi; i++)
        lo = 0x80, hi = 0xBF;
    if (i == need + 1) return i;
    *bad = i;
    return 0;
}

/* The value of the 4 hex digits at s[i..i+3], or -1. */
static long hex4(const char *s, size_t n, size_t i)
{
    long v = 0;
    if (i + 4 > n) return -1;
    for (size_t k = i; k < i + 4; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && is_ws(s[i]))
        i++;
    return i;
}

/* Index of the closing quote of the string opening at s[i], or n when it is not closed. */
static size_t string_end(const char *s, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i;
    }
    return n;
}

/* Copies the string token opening at s[i], rewritten; returns the index after it. */
static size_t fix_string(struct fixbuf *b, const char *s, size_t n, size_t i)
{
    size_t end = string_end(s, n, i), k = skip_ws(s, n, end + 1);
    int key = end < n && k < n && s[k] == ':';
    size_t j = i + 1;
    fb_put(b, "\"", 1);
    while (j < end) {
        unsigned char c = (unsigned char)s[j];
        long v = c == '\\' && j + 1 < end && s[j + 1] == 'u' ? hex4(s, end, j + 2) : -1;
        if (v >= 0xD800 && v <= 0xDBFF) {
            long lo = j + 7 < end && s[j + 6] == '\\' && s[j + 7] == 'u' ? hex4(s, end, j + 8) : -1;
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                fb_put(b, s + j, 12); /* a proper pair */
                j += 12;
            } else {
                fb_fix(b, "\\ufffd", 6);
                j += 6;
            }
        } else if ((v >= 0xDC00 && v <= 0xDFFF) || (v == 0 && key)) {
            fb_fix(b, "\\ufffd", 6);
            j += 6;
        } else if (v >= 0) {
            fb_put(b, s + j, 6);
            j += 6;
        } else if (c == '\\') {
            fb_put(b, s + j, j + 1 < end ? 2 : 1); /* any other escape: jansson judges it */
            j += 2;
        } else if (c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            fb_fix(b, c == 0 && key ? "\\ufffd" : esc, 6);
            j++;
        } else if (c >= 0x80) {
            size_t bad = 0, len = utf8_seq((const unsigned char *)s + j, end - j, &bad);
            if (len)
                fb_put(b, s + j, len);
            else
                fb_fix(b, "\xEF\xBF\xBD", 3);
            j += len ? len : bad;
        } else {
            fb_put(b, s + j, 1);
            j++;
        }
    }
    if (end < n) fb_put(b, "\"", 1);
    return end < n ? end + 1 : n;
}

/* Copies the number token at s[i], rewritten when jansson would refuse its value. */
static size_t fix_number(struct fixbuf *b, const char *s, size_t n, size_t i)
{
    size_t j = i;
    int real = 0;
    while (j < n && ((s[j] >= '0' && s[j] <= '9') || s[j] == '-' || s[j] == '+' || s[j] == '.' ||
                     s[j] == 'e' || s[j] == 'E')) {
        real |= s[j] == '.' || s[j] == 'e' || s[j] == 'E';
        j++;
    }
    char small[64], *t = j - i < sizeof small ? small : malloc(j - i + 1);
    if (!t) {
        b->oom = 1;
        return n;
    }
    memcpy(t, s + i, j - i);
    t[j - i] = '\0';
    int inf = isinf(strtod(t, NULL)), big = 0;
    if (!real && !inf) {
        errno = 0;
        (void)strtoll(t, NULL, 10);
        big = errno == ERANGE;
    }
    if (t != small) free(t);
    if (inf)
        fb_fix(b, "null", 4);
    else
        fb_put(b, s + i, j - i);
    if (big) fb_fix(b, ".0", 2);
    return j;
}

/* The line rewritten as above, or NULL when there was nothing to rewrite (or no memory).
 * Caller frees. */
static char *fix_line(const char *s, size_t n, size_t *out_len)
{
    struct fixbuf b = {0};
    size_t i = 0;
    b.p = malloc(n + n / 16 + 64);
    b.cap = b.p ? n + n / 16 + 64 : 0;
    while (i < n && !b.oom) {
        char c = s[i];
        if (c == '"')
            i = fix_string(&b, s, n, i);
        else if (c == '-' || (c >= '0' && c <= '9'))
            i = fix_number(&b, s, n, i);
        else
            fb_put(&b, s + i++, 1);
    }
    if (b.oom || !b.changed) {
        free(b.p);
        return NULL;
    }
    *out_len = b.len;
    return b.p;
}

/* ---- lines that cannot be decoded ------------------------------------------------------- */

/* The printable form of the character or byte at s[0] (n > 0 bytes left) in unit[8]; its
 * length there, and in *used the bytes of s it stands for. */
static size_t excerpt_unit(const char *s, size_t n, char unit[8], size_t *used)
{
    size_t bad = 0, len = utf8_seq((const unsigned char *)s, n, &bad);
    unsigned char c = (unsigned char)s[0];
    *used = len ? len : 1;
    if (len == 1 && c >= 0x20 && c < 0x7F && c != '\\') {
        unit[0] = (char)c;
        return 1;
    }
    if (len > 1) {
        memcpy(unit, s, len);
        return len;
    }
    if (c == '\\') {
        memcpy(unit, "\\\\", 2);
        return 2;
    }
    return (size_t)snprintf(unit, 8, "\\x%02x", c);
}

void cc_excerpt(char *out, size_t outlen, const char *s, size_t n)
{
    size_t total = 0, used = 0, i, step;
    char unit[8];
    if (outlen == 0) return;
    for (i = 0; i < n; i += step) /* does all of it fit? */
        total += excerpt_unit(s + i, n - i, unit, &step);
    size_t room = total < outlen ? outlen - 1 : outlen > 4 ? outlen - 4 : 0; /* "..." */
    for (i = 0; i < n; i += step) {
        size_t ulen = excerpt_unit(s + i, n - i, unit, &step);
        if (used + ulen > room) break;
        memcpy(out + used, unit, ulen);
        used += ulen;
    }
    if (i < n && used + 4 <= outlen) {
        memcpy(out + used, "...", 3);
        used += 3;
    }
    out[used] = '\0';
}

/* The "type" and "request_id" strings at the top level of (part of) a line, found by
 * walking its structure without decoding it. Only plain values are taken (printable ASCII,
 * no escapes): Claude Code's types and request ids are. */
struct top {
    char type[32];
    char request_id[128];
};

static void take_plain(char *dst, size_t size, const char *s, size_t n)
{
    if (dst[0] || n >= size) return;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7E || s[i] == '\\') return;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static void scan_top(const char *s, size_t n, struct top *t)
{
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '{' || s[i] == '[')
            depth++;
        else if (s[i] == '}' || s[i] == ']')
            depth--;
        if (s[i] != '"') continue;
        size_t end = string_end(s, n, i), colon = skip_ws(s, n, end + 1);
        if (depth == 1 && colon < n && s[colon] == ':') {
            size_t v = skip_ws(s, n, colon + 1),
                   vend = v < n && s[v] == '"' ? string_end(s, n, v) : n;
            if (vend < n) {
                const char *key = s + i + 1;
                size_t klen = end - i - 1;
                if (klen == 4 && memcmp(key, "type", 4) == 0)
                    take_plain(t->type, sizeof t->type, s + v + 1, vend - v - 1);
                else if (klen == 10 && memcmp(key, "request_id", 10) == 0)
                    take_plain(t->request_id, sizeof t->request_id, s + v + 1, vend - v - 1);
                end = vend;
            }
        }
        i = end;
    }
}

/* The usage object's token counts, and which were given. */
static unsigned decode_usage(const json_t *u, struct cc_usage *out)
{
    static const char *const keys[] = {"input_tokens", "output_tokens", "cache_read_input_tokens",
                                       "cache_creation_input_tokens"};
    long long *f[] = {&out->in, &out->out, &out->cr, &out->cw};
    unsigned has = 0;
    for (int i = 0; i < 4; i++) {
        json_t *v = json_object_get(u, keys[i]);
        if (json_is_integer(v)) {
            *f[i] = json_integer_value(v);
            has |= 1u << i;
        }
    }
    return has;
}

/* The content blocks of an assistant or user line; -1 when out of memory. */
static int decode_blocks(struct cc_msg *m, json_t *message)
{
    json_t *content = json_object_get(message, "content"), *b;
    size_t i, n = json_array_size(content);
    if (!n) return 0;
    m->blocks = calloc(n, sizeof *m->blocks);
    if (!m->blocks) return -1;
    json_array_foreach(content, i, b)
    {
        struct cc_block *k = &m->blocks[m->nblocks++];
        const char *type = cc_json_str(b, "type");
        k->raw = b;
        k->id = "";
        k->name = "";
        if (!type) continue;
        if (strcmp(type, "text") == 0 || strcmp(type, "thinking") == 0) {
            k->kind = strcmp(type, "text") == 0 ? CC_BLOCK_TEXT : CC_BLOCK_THINKING;
            k->text = json_object_get(b, type);
            if (!json_is_string(k->text)) k->text = NULL;
        } else if (strcmp(type, "tool_use") == 0) {
            k->kind = CC_BLOCK_TOOL_USE;
            k->id = cc_json_str_or(b, "id", "");
            k->name = cc_json_str_or(b, "name", "");
            k->input = json_object_get(b, "input");
        } else if (strcmp(type, "tool_result") == 0) {
            k->kind = CC_BLOCK_TOOL_RESULT;
            k->id = cc_json_str_or(b, "tool_use_id", "");
            k->is_error = json_is_true(json_object_get(b, "is_error"));
            k->text = cc_tool_result_text(json_object_get(b, "content"));
            if (!k->text) return -1;
        }
    }
    return 0;
}

static void decode_sse(struct cc_msg *m, const json_t *ev)
{
    const char *type = cc_json_str(ev, "type");
    struct cc_sse *e = &m->sse;
    if (!type) return;
    if (strcmp(type, "message_start") == 0) {
        json_t *msg = json_object_get(ev, "message");
        e->kind = CC_SSE_MESSAGE_START;
        e->msg_id = cc_json_str_or(msg, "id", "");
        e->model = cc_json_str_or(msg, "model", "");
        e->usage_has = decode_usage(json_object_get(msg, "usage"), &e->usage);
    } else if (strcmp(type, "content_block_delta") == 0) {
        e->kind = CC_SSE_BLOCK_DELTA;
    } else if (strcmp(type, "message_delta") == 0) {
        e->kind = CC_SSE_MESSAGE_DELTA;
        e->usage_has = decode_usage(json_object_get(ev, "usage"), &e->usage);
        e->stop_reason = cc_json_str(json_object_get(ev, "delta"), "stop_reason");
    } else if (strcmp(type, "message_stop") == 0) {
        e->kind = CC_SSE_MESSAGE_STOP;
    }
}

/* -1 when out of memory. */
static int decode_result(struct cc_msg *m)
{
    const json_t *o = m->root;
    struct cc_result *r = &m->result;
    r->is_error = json_is_true(json_object_get(o, "is_error"));
    r->subtype = m->subtype;
    r->result = cc_json_str(o, "result");
    r->result_len = r->result ? json_string_length(json_object_get(o, "result")) : 0;
    r->stop_reason = cc_json_str(o, "stop_reason");
    r->terminal_reason = cc_json_str(o, "terminal_reason");
    r->total_cost_usd = cc_json_num(o, "total_cost_usd");
    r->duration_ms = cc_json_int(o, "duration_ms");
    r->duration_api_ms = cc_json_int(o, "duration_api_ms");
    r->num_turns = cc_json_int(o, "num_turns");
    r->api_error_status = cc_json_int(o, "api_error_status");
    r->usage = json_object_get(o, "usage");
    if (!json_is_object(r->usage)) r->usage = NULL;
    decode_usage(r->usage, &r->turn_usage);
    r->session_id = cc_json_str(o, "session_id");
    json_t *mu = json_object_get(o, "modelUsage"), *v;
    const char *model;
    if (!json_is_object(mu) || !json_object_size(mu)) return 0;
    r->models = calloc(json_object_size(mu), sizeof *r->models);
    if (!r->models) return -1;
    json_object_foreach(mu, model, v)
    {
        struct cc_model_usage *x = &r->models[r->nmodels++];
        x->model = model;
        x->u = (struct cc_usage){cc_json_int(v, "inputTokens"), cc_json_int(v, "outputTokens"),
                                 cc_json_int(v, "cacheReadInputTokens"),
                                 cc_json_int(v, "cacheCreationInputTokens")};
        x->cost_usd = cc_json_num(v, "costUSD");
    }
    return 0;
}

static void decode_system(struct cc_msg *m)
{
    const json_t *o = m->root;
    struct cc_system *y = &m->sys;
    y->version = cc_json_str(o, "claude_code_version");
    y->session_id = cc_json_str(o, "session_id");
    y->model = cc_json_str(o, "model");
    y->permission_mode = cc_json_str(o, "permissionMode");
    y->tool_use_id = cc_json_str(o, "tool_use_id");
    y->task_id = cc_json_str(o, "task_id");
    y->error_status = cc_json_int(o, "error_status");
    y->retry_delay_ms = cc_json_int(o, "retry_delay_ms");
    y->attempt = cc_json_int(o, "attempt");
    y->max_retries = cc_json_int(o, "max_retries");
    y->error = cc_json_str(o, "error");
    y->tool_name = cc_json_str(o, "tool_name");
    y->message = cc_json_str(o, "message");
}

/* Fills the typed fields from m->root; -1 when out of memory (m is then cleared). */
static int decode(struct cc_msg *m)
{
    json_t *type = json_object_get(m->root, "type");
    int rc = 0;
    /* a type holding U+0000 is no type this runner knows */
    m->type = json_is_string(type) && strlen(json_string_value(type)) == json_string_length(type)
                  ? json_string_value(type)
                  : "";
    m->subtype = cc_json_str(m->root, "subtype");
    m->parent_tool_use_id = cc_json_str(m->root, "parent_tool_use_id");
    m->agent_id = cc_json_str(m->root, "agent_id");
    m->kind = CC_MSG_UNKNOWN;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(m->type, kinds[i].type) == 0) {
            m->kind = kinds[i].kind;
            break;
        }
    switch (m->kind) {
    case CC_MSG_ASSISTANT:
    case CC_MSG_USER: {
        json_t *message = json_object_get(m->root, "message");
        m->msg_id = cc_json_str(message, "id");
        m->request_id = cc_json_str(m->root, "request_id");
        m->api_error = json_is_true(json_object_get(m->root, "is_api_error_message"));
        rc = json_is_object(message) ? decode_blocks(m, message) : 0;
        break;
    }
    case CC_MSG_STREAM_EVENT:
        decode_sse(m, json_object_get(m->root, "event"));
        break;
    case CC_MSG_RESULT:
        rc = decode_result(m);
        break;
    case CC_MSG_SYSTEM:
        decode_system(m);
        break;
    case CC_MSG_CONTROL_REQUEST: {
        json_t *req = json_object_get(m->root, "request");
        m->ctl.request_id = cc_json_str(m->root, "request_id");
        m->ctl.subtype = cc_json_str(req, "subtype");
        m->ctl.tool_name = cc_json_str(req, "tool_name");
        break;
    }
    case CC_MSG_CONTROL_RESPONSE: {
        json_t *resp = json_object_get(m->root, "response");
        m->ctl.request_id = cc_json_str(resp, "request_id");
        m->ctl.subtype = cc_json_str(resp, "subtype");
        m->ctl.error = cc_json_str(resp, "error");
        break;
    }
    default:
        break;
    }
    if (rc) cc_msg_clear(m);
    return rc;
}

/* Cuts a UTF-8 sequence that snprintf() cut short off the end of s (jansson takes valid
 * UTF-8 only). */
static void utf8_trim(char *s)
{
    size_t n = strlen(s), k = n, bad;
    while (k > 0 && ((unsigned char)s[k - 1] & 0xC0) == 0x80)
        k--;
    if (k > 0 && (unsigned char)s[k - 1] >= 0x80 &&
        utf8_seq((const unsigned char *)s + k - 1, n - k + 1, &bad) != n - k + 1)
        s[k - 1] = '\0';
}

int cc_msg_standin(struct cc_msg *m, const char *head, size_t head_len, const char *tail,
                   size_t tail_len, const char *why)
{
    struct top t = {{0}, {0}};
    memset(m, 0, sizeof *m);
    scan_top(head, head_len, &t);
    /* Claude Code writes "type" first on every line but a result, which writes it after
     * its text; inside a string the quotes would be escaped, so this is structure. */
    size_t lead = skip_ws(head, head_len, 0);
    if (!t.type[0] && lead < head_len && head[lead] == '{' &&
        memmem(tail, tail_len, "\"type\":\"result\"", 15))
        strcpy(t.type, "result");
    if (strcmp(t.type, "result") == 0) {
        snprintf(m->damage, sizeof m->damage, "Claude Code's result line could not be read: %s",
                 why);
        utf8_trim(m->damage);
        m->root =
            json_pack("{s:s, s:b, s:s}", "type", "result", "is_error", 1, "result", m->damage);
    } else if (strcmp(t.type, "control_request") == 0 && t.request_id[0]) {
        snprintf(m->damage, sizeof m->damage, "Claude Code's control request could not be read: %s",
                 why);
        utf8_trim(m->damage);
        m->root = json_pack("{s:s, s:s, s:{}}", "type", "control_request", "request_id",
                            t.request_id, "request");
    }
    if (!m->root) {
        memset(m, 0, sizeof *m);
        return 0;
    }
    return decode(m) == 0;
}

int cc_msg_parse(struct cc_msg *m, const char *line, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    memset(m, 0, sizeof *m);
    m->root = json_loadb(line, len, JSON_ALLOW_NUL, &je);
    if (!m->root) {
        size_t fixed_len = 0;
        char *fixed = fix_line(line, len, &fixed_len);
        if (fixed) m->root = json_loadb(fixed, fixed_len, JSON_ALLOW_NUL, &je);
        free(fixed);
    }
    if (!m->root) {
        char what[200];
        cc_excerpt(what, sizeof what, je.text, strlen(je.text)); /* "near" quotes the line */
        snprintf(err, errlen, "column %d: %s", je.column, what);
        return cc_msg_standin(m, line, len, line, len, err) ? 1 : -1;
    }
    if (!json_is_object(m->root)) {
        snprintf(err, errlen, "not a JSON object");
        cc_msg_clear(m);
        return -1;
    }
    if (decode(m)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void cc_msg_clear(struct cc_msg *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->nblocks; i++)
        if (m->blocks[i].kind == CC_BLOCK_TOOL_RESULT) json_decref(m->blocks[i].text);
    free(m->blocks);
    free(m->result.models);
    json_decref(m->root);
    memset(m, 0, sizeof *m);
}

/* Serializes and appends the newline; steals `doc`. */
static char *line_of(json_t *doc)
{
    size_t n;
    char *line = cc_json_dumps(doc, JSON_COMPACT, 1, &n);
    json_decref(doc);
    if (line) {
        line[n] = '\n';
        line[n + 1] = '\0';
    }
    return line;
}

char *cc_stdin_user_turn(const char *text)
{
    return line_of(json_pack("{s:s, s:{s:s, s:s}, s:n, s:s}", "type", "user", "message", "role",
                             "user", "content", text, "parent_tool_use_id", "session_id", ""));
}

char *cc_stdin_interrupt(const char *request_id)
{
    return line_of(json_pack("{s:s, s:s, s:{s:s}}", "type", "control_request", "request_id",
                             request_id, "request", "subtype", "interrupt"));
}

char *cc_stdin_control_response(const char *request_id, const json_t *response, const char *error)
{
    json_t *inner;
    if (error)
        inner = json_pack("{s:s, s:s, s:s}", "subtype", "error", "request_id", request_id, "error",
                          error);
    else
        inner = json_pack("{s:s, s:s, s:o}", "subtype", "success", "request_id", request_id,
                          "response", response ? json_deep_copy(response) : json_object());
    if (!inner) return NULL;
    return line_of(json_pack("{s:s, s:o}", "type", "control_response", "response", inner));
}

char *cc_stdin_answer_control(const struct cc_msg *m)
{
    const char *id = m->ctl.request_id, *sub = m->ctl.subtype;
    if (!id) return NULL; /* nothing to answer to */
    if (m->damage[0]) return cc_stdin_control_response(id, NULL, m->damage);
    if (sub && strcmp(sub, "can_use_tool") == 0) {
        char msg[300];
        snprintf(msg, sizeof msg,
                 "ccrunner runs unattended and cannot ask for permission to use %.100s; "
                 "allow it with --permission-mode (PERMISSION_MODE)",
                 m->ctl.tool_name ? m->ctl.tool_name : "this tool");
        json_t *deny = json_pack("{s:s, s:s}", "behavior", "deny", "message", msg);
        char *line = cc_stdin_control_response(id, deny, NULL);
        json_decref(deny);
        return line;
    }
    char msg[200];
    snprintf(msg, sizeof msg, "ccrunner does not support control request %.100s",
             sub ? sub : "(no subtype)");
    return cc_stdin_control_response(id, NULL, msg);
}

/* The text of a tool result's content as a new string value: the string, or the text blocks
 * of a list joined by newlines (images and other blocks are named, not inlined). */
json_t *cc_tool_result_text(json_t *content)
{
    if (json_is_string(content)) return json_incref(content);
    char *out = NULL;
    size_t len = 0, n;
    FILE *f = open_memstream(&out, &len);
    if (!f) return NULL;
    size_t i;
    json_t *b;
    json_array_foreach(content, i, b)
    {
        const char *t = cc_json_str(b, "type");
        if (i > 0) fputc('\n', f);
        json_t *text = json_object_get(b, "text");
        if (t && strcmp(t, "text") == 0 && json_is_string(text)) {
            n = json_string_length(text);
            fwrite(json_string_value(text), 1, n, f);
        } else
            fprintf(f, "[%s]", t ? t : "content");
    }
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    json_t *s = json_stringn(out, len);
    free(out);
    return s;
}
