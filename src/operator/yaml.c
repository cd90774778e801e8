/*
 * yaml.c - YAML text to a jansson tree; see yaml.h.
 *
 * libyaml does the parsing; this file walks its event stream with an explicit stack (no
 * recursion, so a deeply nested text costs memory, bounded by CO_YAML_MAX_DEPTH, never the
 * C stack) and types each plain scalar by the YAML 1.2 core schema. What it guarantees:
 * the result is exactly one JSON value (null for an empty text), mapping keys are scalars
 * and unique, quoted and block scalars stay strings, and everything JSON cannot hold
 * (anchors and aliases, non-standard tags, .inf and .nan, integers beyond 64 bits, a second
 * document) is an error, never a silent approximation. Every error is one line:
 * "line L:C: what" with 1-based positions, prefixed with the file's name by
 * co_yaml_load_file.
 */
#include "yaml.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Nesting deeper than this is refused: neither of the operator's texts comes close. */
#define CO_YAML_MAX_DEPTH 256
/* A YAML file read by co_yaml_load_file is at most this big (a kubeconfig is kilobytes). */
#define CO_YAML_MAX_FILE (16u << 20)

/* One open collection: the value being built and, in a mapping, the key waiting for its
 * value (NULL when the next scalar is a key). */
struct frame {
    json_t *value;        /* an object or array, owned by the stack until attached to its parent */
    char *key;            /* mapping only: the pending key, owned */
    size_t key_len;       /* its length (a key may hold a NUL from a "\0" escape) */
    yaml_mark_t key_mark; /* where the pending key is, for a duplicate-key error */
};

struct builder {
    struct frame stack[CO_YAML_MAX_DEPTH];
    int depth;     /* frames in use */
    json_t *root;  /* the document's value once complete, owned */
    int documents; /* documents started */
    char *err;
    size_t errlen;
};

static void set_err(struct builder *b, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(struct builder *b, yaml_mark_t m, const char *fmt, ...)
{
    if (!b->err || !b->errlen) return;
    int n = snprintf(b->err, b->errlen, "line %zu:%zu: ", m.line + 1, m.column + 1);
    if (n < 0 || (size_t)n >= b->errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err + n, b->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* ---- plain scalar typing (YAML 1.2 core schema, section 10.3.2) ----------------------- */

enum scalar_kind { SK_NULL, SK_BOOL, SK_INT, SK_FLOAT, SK_STR };

static bool is_one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (!strcmp(s, *words)) return true;
    return false;
}

static bool all_digits(const char *s, int base)
{
    if (!*s) return false;
    for (; *s; s++) {
        int c = (unsigned char)*s;
        bool ok = base == 8 ? (c >= '0' && c <= '7')
                  : base == 16
                      ? ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
                      : (c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool is_core_float(const char *s)
{
    if (*s == '-' || *s == '+') s++;
    size_t int_digits = strspn(s, "0123456789");
    s += int_digits;
    size_t frac_digits = 0;
    if (*s == '.') {
        s++;
        frac_digits = strspn(s, "0123456789");
        s += frac_digits;
    }
    if (int_digits == 0 && frac_digits == 0) return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+') s++;
        size_t exp_digits = strspn(s, "0123456789");
        if (!exp_digits) return false;
        s += exp_digits;
    }
    return *s == '\0';
}

static enum scalar_kind classify(const char *s, size_t len)
{
    static const char *const nulls[] = {"null", "Null", "NULL", "~", NULL};
    static const char *const bools[] = {"true", "True", "TRUE", "false", "False", "FALSE", NULL};
    static const char *const specials[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf",
                                           "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
                                           ".NaN",  ".NAN",  NULL};
    if (len == 0) return SK_NULL;
    if (strlen(s) != len) return SK_STR; /* a NUL inside: no number or keyword has one */
    if (is_one_of(s, nulls)) return SK_NULL;
    if (is_one_of(s, bools)) return SK_BOOL;
    const char *d = s;
    if (*d == '-' || *d == '+') d++;
    if (all_digits(d, 10)) return SK_INT;
    if (!strncmp(s, "0o", 2) && all_digits(s + 2, 8)) return SK_INT;
    if (!strncmp(s, "0x", 2) && all_digits(s + 2, 16)) return SK_INT;
    if (is_one_of(s, specials) || is_core_float(s)) return SK_FLOAT;
    return SK_STR;
}

/* The JSON value of a plain scalar of kind k, or NULL with err set. */
static json_t *typed_scalar(struct builder *b, yaml_mark_t m, const char *s, size_t len,
                            enum scalar_kind k)
{
    switch (k) {
    case SK_NULL:
        return json_null();
    case SK_BOOL:
        return json_boolean(s[0] == 't' || s[0] == 'T');
    case SK_INT: {
        int base = 10;
        const char *digits = s;
        if (!strncmp(s, "0o", 2))
            base = 8, digits = s + 2;
        else if (!strncmp(s, "0x", 2))
            base = 16, digits = s + 2;
        errno = 0;
        char *end = NULL;
        long long v = strtoll(digits, &end, base);
        if (errno == ERANGE || *end) {
            set_err(b, m, "the integer %.40s is beyond 64 bits; quote it to make it a string", s);
            return NULL;
        }
        return json_integer((json_int_t)v);
    }
    case SK_FLOAT: {
        if (strchr(s, 'n') || strchr(s, 'N') || strchr(s, 'i') || strchr(s, 'I')) {
            set_err(b, m, "%s is a YAML float that JSON cannot hold; quote it to make it a string",
                    s);
            return NULL;
        }
        errno = 0;
        double v = strtod(s, NULL);
        if (errno == ERANGE && isinf(v)) {
            set_err(b, m, "the number %.40s is beyond a double's range", s);
            return NULL;
        }
        return json_real(v);
    }
    case SK_STR:
        break;
    }
    return json_stringn(s, len);
}

/* The tags this reader knows, by libyaml's expanded form of the !! shorthand. */
#define TAG_PREFIX "tag:yaml.org,2002:"

/* The value of a scalar event, honouring its style and tag; NULL with err set. */
static json_t *scalar_value(struct builder *b, const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    yaml_mark_t m = ev->start_mark;
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    enum scalar_kind want = plain ? classify(s, len) : SK_STR;

    if (tag && !strcmp(tag, "!")) { /* the non-specific tag: a string, as if quoted */
        want = SK_STR;
    } else if (tag) {
        static const struct {
            const char *name;
            enum scalar_kind kind;
        } std_tags[] = {{TAG_PREFIX "str", SK_STR},
                        {TAG_PREFIX "null", SK_NULL},
                        {TAG_PREFIX "bool", SK_BOOL},
                        {TAG_PREFIX "int", SK_INT},
                        {TAG_PREFIX "float", SK_FLOAT}};
        size_t i;
        for (i = 0; i < sizeof std_tags / sizeof std_tags[0]; i++)
            if (!strcmp(tag, std_tags[i].name)) break;
        if (i == sizeof std_tags / sizeof std_tags[0]) {
            set_err(b, m,
                    "the tag %.80s is not supported (only !!str, !!int, !!float, !!bool, "
                    "!!null, !!map, !!seq)",
                    tag);
            return NULL;
        }
        if (std_tags[i].kind != SK_STR) {
            /* !!int "12" and the like: the text must be one of the kind, quoted or not. */
            enum scalar_kind k = classify(s, len);
            if (k != std_tags[i].kind && !(k == SK_INT && std_tags[i].kind == SK_FLOAT)) {
                set_err(b, m, "%.40s is not a valid %s", s, tag + strlen(TAG_PREFIX));
                return NULL;
            }
            if (std_tags[i].kind == SK_FLOAT && k == SK_INT) {
                json_t *iv = typed_scalar(b, m, s, len, SK_INT);
                if (!iv) return NULL;
                json_t *rv = json_real((double)json_integer_value(iv));
                json_decref(iv);
                return rv;
            }
        }
        want = std_tags[i].kind;
    }
    json_t *v = typed_scalar(b, m, s, len, want);
    if (!v && want == SK_STR) set_err(b, m, "out of memory");
    return v;
}

/* Attaches v (taking ownership) to the open collection, or makes it the root. A mapping has
 * its key pending here: on_scalar takes scalar keys and on_start refuses the others. */
static int attach(struct builder *b, const yaml_event_t *ev, json_t *v)
{
    if (b->depth == 0) {
        b->root = v;
        return 0;
    }
    struct frame *f = &b->stack[b->depth - 1];
    int rc;
    if (json_is_array(f->value)) {
        rc = json_array_append_new(f->value, v);
    } else {
        assert(f->key);
        rc = json_object_setn_new(f->value, f->key, f->key_len, v);
        free(f->key);
        f->key = NULL;
    }
    if (rc) set_err(b, ev->start_mark, "out of memory, or a key that is not valid UTF-8");
    return rc ? -1 : 0;
}

static int on_scalar(struct builder *b, const yaml_event_t *ev)
{
    if (ev->data.scalar.anchor) {
        set_err(b, ev->start_mark, "anchors (&%.40s) are not supported", ev->data.scalar.anchor);
        return -1;
    }
    struct frame *f = b->depth ? &b->stack[b->depth - 1] : NULL;
    if (f && json_is_object(f->value) && !f->key) {
        /* A key: its text as written (a key "1" or "true" stays that string). */
        const char *s = (const char *)ev->data.scalar.value;
        size_t len = ev->data.scalar.length;
        if (json_object_getn(f->value, s, len)) {
            set_err(b, ev->start_mark, "duplicate key \"%.80s\"", s);
            return -1;
        }
        f->key = malloc(len + 1);
        if (!f->key) {
            set_err(b, ev->start_mark, "out of memory");
            return -1;
        }
        memcpy(f->key, s, len + 1);
        f->key_len = len;
        f->key_mark = ev->start_mark;
        return 0;
    }
    json_t *v = scalar_value(b, ev);
    if (!v) return -1;
    return attach(b, ev, v);
}

static int on_start(struct builder *b, const yaml_event_t *ev)
{
    bool mapping = ev->type == YAML_MAPPING_START_EVENT;
    const yaml_char_t *anchor =
        mapping ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    const char *tag =
        (const char *)(mapping ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
    if (anchor) {
        set_err(b, ev->start_mark, "anchors (&%.40s) are not supported", anchor);
        return -1;
    }
    if (tag && strcmp(tag, "!") != 0 &&
        strcmp(tag, mapping ? TAG_PREFIX "map" : TAG_PREFIX "seq")) {
        set_err(b, ev->start_mark, "the tag %.80s is not supported on a %s", tag,
                mapping ? "mapping" : "sequence");
        return -1;
    }
    struct frame *parent = b->depth ? &b->stack[b->depth - 1] : NULL;
    if (parent && json_is_object(parent->value) && !parent->key) {
        set_err(b, ev->start_mark, "a mapping key must be a scalar (it is a %s here)",
                mapping ? "mapping" : "sequence");
        return -1;
    }
    if (b->depth == CO_YAML_MAX_DEPTH) {
        set_err(b, ev->start_mark, "nested more than %d levels deep", CO_YAML_MAX_DEPTH);
        return -1;
    }
    json_t *v = mapping ? json_object() : json_array();
    if (!v) {
        set_err(b, ev->start_mark, "out of memory");
        return -1;
    }
    b->stack[b->depth++] = (struct frame){.value = v};
    return 0;
}

static int on_end(struct builder *b, const yaml_event_t *ev)
{
    struct frame f = b->stack[--b->depth];
    free(f.key); /* NULL: libyaml pairs every key with a value (an empty one at least) */
    return attach(b, ev, f.value);
}

/* Feeds one event to the builder. 0 on success, -1 with err set. */
static int on_event(struct builder *b, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->documents > 1) {
            set_err(b, ev->start_mark, "a second document: one YAML document is read");
            return -1;
        }
        return 0;
    case YAML_ALIAS_EVENT:
        set_err(b, ev->start_mark, "aliases (*%.40s) are not supported", ev->data.alias.anchor);
        return -1;
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        return on_start(b, ev);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return on_end(b, ev);
    default: /* stream start/end, document end, no event */
        return 0;
    }
}

static json_t *load(const char *text, size_t len, char *err, size_t errlen)
{
    struct builder *b = calloc(1, sizeof *b);
    yaml_parser_t parser;
    bool parser_ok = false;
    if (err && errlen) err[0] = '\0';
    if (!b) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return NULL;
    }
    b->err = err;
    b->errlen = errlen;
    if (!yaml_parser_initialize(&parser)) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        goto fail;
    }
    parser_ok = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            yaml_mark_t m = parser.problem_mark;
            if (parser.context)
                set_err(b, m, "%s (%s at line %zu:%zu)", parser.problem ? parser.problem : "error",
                        parser.context, parser.context_mark.line + 1,
                        parser.context_mark.column + 1);
            else
                set_err(b, m, "%s", parser.problem ? parser.problem : "a YAML syntax error");
            goto fail;
        }
        int rc = on_event(b, &ev);
        bool end = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
        if (rc) goto fail;
        if (end) break;
    }
    yaml_parser_delete(&parser);
    json_t *root = b->root ? b->root : json_null(); /* no document at all: null */
    free(b);
    return root;

fail:
    if (parser_ok) yaml_parser_delete(&parser);
    while (b->depth > 0) {
        struct frame *f = &b->stack[--b->depth];
        free(f->key);
        json_decref(f->value);
    }
    json_decref(b->root);
    free(b);
    return NULL;
}

json_t *co_yaml_load(const char *text, size_t len, char *err, size_t errlen)
{
    return load(text, len, err, errlen);
}

json_t *co_yaml_load_file(const char *path, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0, cap = 0;
    json_t *v = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (len == cap) {
            if (cap > CO_YAML_MAX_FILE) { /* read one byte more than the bound: too big */
                snprintf(err, errlen, "%s: larger than %u MiB; is it the right file?", path,
                         CO_YAML_MAX_FILE >> 20);
                goto done;
            }
            size_t ncap = cap ? cap * 2 : 16384;
            if (ncap > CO_YAML_MAX_FILE + 1) ncap = CO_YAML_MAX_FILE + 1;
            char *n = malloc(ncap);
            if (!n) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto done;
            }
            /* Grown by copy, not realloc, so no secret is left behind in a freed block. */
            if (text) memcpy(n, text, len);
            if (text) explicit_bzero(text, len);
            free(text);
            text = n;
            cap = ncap;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: a read error", path);
        goto done;
    }
    char inner[512];
    v = load(text, len, inner, sizeof inner);
    if (!v) snprintf(err, errlen, "%s: %s", path, inner);
done:
    /* A kubeconfig holds tokens and keys: the copy is wiped before it is freed. */
    if (text) explicit_bzero(text, len);
    free(text);
    fclose(f);
    return v;
}
