/*
 * trace.c - the attribute set a trace's observations share; see trace.h.
 */
#include "trace.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "record.h"

struct lf__trace *lf__trace_new(void)
{
    struct lf__trace *t = lf__calloc(1, sizeof(*t));
    if (!t) return NULL;
    pthread_mutex_init(&t->mu, NULL);
    atomic_init(&t->refs, 1);
    t->journal_fd = -1;
    return t;
}

void lf__trace_set_root(struct lf__trace *t, const uint8_t trace_id[16], const uint8_t span_id[8],
                        int64_t start_ns)
{
    memcpy(t->trace_id, trace_id, sizeof(t->trace_id));
    memcpy(t->span_id, span_id, sizeof(t->span_id));
    t->start_ns = start_ns;
}

struct lf__trace *lf__trace_ref(struct lf__trace *t)
{
    if (t) atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void lf__trace_unref(struct lf__trace *t)
{
    if (!t) return;
    unsigned before = atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel);
    assert(before > 0);
    if (before != 1) return;
    assert(t->journal_fd < 0 && !t->journal_path); /* journal.c released it first */
    pthread_mutex_destroy(&t->mu);
    free(t->set.data);
    free(t);
}

/* Removes the entry that ends at `end` and starts at `start` (a setter replacing it). */
static void drop_entry(struct lf_obs *set, uint32_t start, uint32_t end)
{
    assert(start < end && end <= set->len);
    memmove(set->data + start, set->data + end, set->len - end);
    set->len -= end - start;
}

int lf__trace_put(struct lf__trace *t, uint8_t tag, uint8_t kind, const char *key, size_t klen,
                  const void *val, size_t vlen, const void *more, size_t mlen)
{
    assert(tag >= LF__T_NAME && tag < LF__TAG_MAX);
    struct lf__field f;
    uint32_t pos = 0;
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    t->version++;
    while (1) {
        uint32_t at = pos;
        if (!lf__rec_next(&t->set, &pos, &f)) break;
        if (f.tag != tag || f.klen != klen || (klen && memcmp(f.key, key, klen))) continue;
        if (tag == LF__T_TAG) {
            if (f.vlen == vlen && !memcmp(f.val, val, vlen)) goto out; /* already tagged */
            continue;
        }
        /* Append first and remove the old entry after, so that a failed allocation
         * leaves the previous value in place. */
        rc = lf__rec_put2(&t->set, tag, kind, key, klen, val, vlen, more, mlen);
        if (rc == 0) drop_entry(&t->set, at, pos);
        goto out;
    }
    rc = lf__rec_put2(&t->set, tag, kind, key, klen, val, vlen, more, mlen);
out:
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int lf__trace_copy_to(struct lf__trace *t, struct lf_obs *r, uint64_t *version)
{
    int root = (r->flags & LF__REC_ROOT) != 0, rc = 0;
    struct lf__field f;
    uint32_t pos = 0;
    pthread_mutex_lock(&t->mu);
    if ((r->flags & LF__REC_ENDED) && r->end_ns > t->last_end_ns) {
        t->last_end_ns = r->end_ns;
        t->version++;
    }
    if (version) *version = t->version;
    while (lf__rec_next(&t->set, &pos, &f)) {
        if (!root && (f.tag == LF__T_INPUT || f.tag == LF__T_OUTPUT)) continue;
        if (lf__rec_put(r, f.tag, f.kind, f.key, f.klen, f.val, f.vlen)) rc = -1;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}
