/*
 * body.c - splitting, shrinking and filtering encoded bodies with jansson; see body.h.
 */
#include "body.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "langfuse/langfuse.h"

static json_t *load(const char *json, size_t len)
{
    json_error_t err;
    return json_loadb(json, len, JSON_ALLOW_NUL, &err);
}

static int append(const char *p, size_t n, void *ud)
{
    lf__buf_append(ud, p, n);
    return lf__buf_failed(ud) ? -1 : 0;
}

/* json_dumps() would do, but jansson 2.14 does not always notice its own allocation
 * failures: under the allocation-failure test it wrote an object key without its closing
 * quote and reported success. So the text is read back before it is used: these bodies are
 * re-encoded only on a 413 or a 207, and a body that is not JSON would be refused whole.
 * (Its parser has the same weakness: a string it reads while an allocation fails may lose
 * a character. That costs a character of one value, never the body.) */
static int dump(json_t *v, char **out, size_t *out_len)
{
    struct lf__buf b;
    lf__buf_init(&b, 0);
    int rc = json_dump_callback(v, append, &b, JSON_COMPACT) || lf__buf_failed(&b) || !b.data;
    json_t *back = rc ? NULL : load(b.data, b.len);
    if (!back) {
        lf__buf_free(&b);
        return -1;
    }
    json_decref(back);
    *out = lf__buf_steal(&b, out_len);
    return 0;
}

/* The item array of a body: the spans of the first scope, or the event batch. */
static json_t *items(int endpoint, json_t *root)
{
    if (endpoint == LF_TRANSPORT_INGESTION) return json_object_get(root, "batch");
    json_t *rs = json_array_get(json_object_get(root, "resourceSpans"), 0);
    json_t *ss = json_array_get(json_object_get(rs, "scopeSpans"), 0);
    return json_object_get(ss, "spans");
}

long lf__body_count(int endpoint, const char *json, size_t len)
{
    json_t *root = load(json, len);
    if (!root) return -1;
    long n = -1;
    if (endpoint == LF_TRANSPORT_INGESTION) {
        json_t *a = items(endpoint, root);
        n = json_is_array(a) ? (long)json_array_size(a) : -1;
    } else {
        /* all spans of all resources and scopes */
        size_t i, j;
        json_t *rs, *ss;
        n = 0;
        json_array_foreach(json_object_get(root, "resourceSpans"), i, rs)
            json_array_foreach(json_object_get(rs, "scopeSpans"), j, ss) n +=
            (long)json_array_size(json_object_get(ss, "spans"));
    }
    json_decref(root);
    return n;
}

int lf__body_split(int endpoint, const char *json, size_t len, char **a, size_t *alen, char **b,
                   size_t *blen)
{
    int rc = -1;
    json_t *root = load(json, len);
    json_t *copy = root ? json_deep_copy(root) : NULL;
    if (!copy) goto out;
    json_t *ia = items(endpoint, root), *ib = items(endpoint, copy);
    size_t n = json_array_size(ia);
    if (!json_is_array(ia) || n < 2) goto out;
    size_t half = n / 2;
    /* first half stays in root, second half in copy */
    while (json_array_size(ia) > half)
        json_array_remove(ia, half);
    for (size_t i = 0; i < half; i++)
        json_array_remove(ib, 0);
    if (dump(root, a, alen)) goto out;
    if (dump(copy, b, blen)) {
        free(*a);
        *a = NULL;
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    json_decref(copy);
    return rc;
}

static void largest_string(json_t *v, json_t **best, size_t *best_len, json_t **parent,
                           const char **key, size_t *index, json_t *p, const char *k, size_t idx)
{
    if (json_is_string(v)) {
        if (json_string_length(v) > *best_len) {
            *best = v;
            *best_len = json_string_length(v);
            *parent = p;
            *key = k;
            *index = idx;
        }
    } else if (json_is_object(v)) {
        const char *kk;
        json_t *item;
        json_object_foreach(v, kk, item)
            largest_string(item, best, best_len, parent, key, index, v, kk, 0);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
            largest_string(item, best, best_len, parent, key, index, v, NULL, i);
    }
}

int lf__body_shrink(const char *json, size_t len, char **out, size_t *out_len)
{
    json_t *root = load(json, len);
    if (!root) return -1;
    json_t *best = NULL, *parent = NULL;
    size_t best_len = 0, index = 0;
    const char *key = NULL;
    largest_string(root, &best, &best_len, &parent, &key, &index, NULL, NULL, 0);
    int rc = -1;
    if (best && best_len > 64) {
        const char *s = json_string_value(best);
        size_t keep = best_len / 2;
        while (keep && ((unsigned char)s[keep] & 0xC0) == 0x80)
            keep--;
        char marker[64];
        int m = snprintf(marker, sizeof(marker), "...[truncated %zu bytes]", best_len - keep);
        char *t = lf__malloc(keep + (size_t)m + 1);
        if (t) {
            memcpy(t, s, keep);
            memcpy(t + keep, marker, (size_t)m + 1);
            json_t *nv = json_stringn(t, keep + (size_t)m);
            free(t);
            if (nv) {
                if (key)
                    json_object_set_new(parent, key, nv);
                else
                    json_array_set_new(parent, index, nv);
                rc = dump(root, out, out_len);
            }
        }
    }
    json_decref(root);
    return rc;
}

int lf__body_filter_events(const char *json, size_t len, const char *const *ids, size_t n,
                           char **out, size_t *out_len)
{
    json_t *root = load(json, len);
    if (!root) return -1;
    json_t *batch = json_object_get(root, "batch");
    int rc = -1;
    if (json_is_array(batch)) {
        for (size_t i = json_array_size(batch); i-- > 0;) {
            const char *id = json_string_value(json_object_get(json_array_get(batch, i), "id"));
            int keep = 0;
            for (size_t k = 0; id && k < n && !keep; k++)
                keep = strcmp(id, ids[k]) == 0;
            if (!keep) json_array_remove(batch, i);
        }
        rc = dump(root, out, out_len);
    }
    json_decref(root);
    return rc;
}
