/*
 * queue.c - the queue and the record pool: what the recording threads touch.
 *
 * The queue is a mutex-guarded singly linked list of records with a byte count. Enqueueing
 * is O(1) under the lock and signals the exporter only when a batch threshold is crossed,
 * so a burst of recording costs one uncontended lock per observation. Past
 * max_queue_bytes a record is dropped and counted: memory stays bounded whatever the
 * network does. Finished records come back to a small pool (lf__obs_recycle), so that a
 * steady stream of observations allocates nothing.
 */
#include <string.h>

#include "alloc.h"
#include "http.h"
#include "internal.h"
#include "invariant.h"

/* ---- the queue --------------------------------------------------------------------------- */

void lf__enqueue(struct lf_client *c, struct lf_obs *r)
{
    size_t size = lf__rec_size(r);
    pthread_mutex_lock(&c->mu);
    if (c->stopping || !c->enabled) {
        pthread_mutex_unlock(&c->mu);
        atomic_fetch_add(&c->n.dropped_closed, 1);
        lf__rec_free(r);
        return;
    }
    size_t held = atomic_load_explicit(&c->held_bytes, memory_order_relaxed);
    if (c->qbytes + held + size > c->conf.max_queue_bytes) {
        pthread_mutex_unlock(&c->mu);
        atomic_fetch_add(&c->n.dropped_queue, 1);
        lf__rec_free(r);
        lf__log_once(c, LF__REPORT_QUEUE_FULL, LF_LOG_WARN,
                     "queue full (%zu bytes): dropping observations until the exporter catches "
                     "up; the count is in the statistics",
                     c->conf.max_queue_bytes);
        return;
    }
    if (lf__client_ensure_exporter_locked(c)) {
        pthread_mutex_unlock(&c->mu);
        atomic_fetch_add(&c->n.dropped_closed, 1);
        lf__rec_free(r);
        return;
    }
    LF_INVARIANT(!c->head == !c->tail && !c->head == !c->qcount);
    r->next = NULL;
    r->qseq = c->enq_seq++;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->qcount++;
    c->qbytes += size;
    size_t qbytes = c->qbytes + held;
    int kick =
        c->qcount == (size_t)c->conf.flush_at ||
        (qbytes >= c->conf.max_request_bytes / 2 && qbytes - size < c->conf.max_request_bytes / 2);
    int spill = 0;
    if (c->spill_at && qbytes >= c->spill_at && !c->spill_signaled) {
        c->spill_signaled = 1;
        atomic_store(&c->spill_wanted, 1);
        kick = spill = 1;
    }
    if (kick) pthread_cond_signal(&c->wake);
    /* Under the lock, which every writer of the peak holds: a read-then-write outside it
     * could let a smaller value overwrite a larger one. */
    if (qbytes > atomic_load_explicit(&c->n.queue_peak_bytes, memory_order_relaxed))
        atomic_store_explicit(&c->n.queue_peak_bytes, qbytes, memory_order_relaxed);
    pthread_mutex_unlock(&c->mu);
    /* The exporter may be waiting on the network: one wake-up byte makes it spill now. This
     * happens once per crossing of the mark, never per record. */
    if (spill) lf__http_wakeup(c->http);
    atomic_fetch_add_explicit(&c->n.recorded, 1, memory_order_relaxed);
}

/* ---- the record pool ------------------------------------------------------------------ */

#define POOL_REC_CAP 4096 /* largest data buffer kept for reuse; larger ones are freed */

struct lf_obs *lf__obs_alloc(struct lf_client *c)
{
    struct lf_obs *o;
    /* Always under the lock: an unlocked peek at c->pool was a data race (ThreadSanitizer
     * said so), and an uncontended lock costs tens of nanoseconds. */
    pthread_mutex_lock(&c->pool_mu);
    o = c->pool;
    if (o) {
        c->pool = o->next;
        c->pool_bytes -= lf__rec_size(o);
    }
    pthread_mutex_unlock(&c->pool_mu);
    if (o) {
        unsigned char *data = o->data;
        uint32_t cap = o->cap;
        memset(o, 0, sizeof(*o));
        o->data = data;
        o->cap = cap;
        return o;
    }
    o = lf__malloc(sizeof(*o));
    if (o) memset(o, 0, sizeof(*o));
    return o;
}

void lf__obs_recycle(struct lf_client *c, struct lf_obs *list)
{
    struct lf_obs *excess = NULL;
    if (list) {
        pthread_mutex_lock(&c->pool_mu);
        while (list) {
            struct lf_obs *r = list;
            list = r->next;
            size_t sz = lf__rec_size(r);
            /* Only small buffers: a record counts its capacity in the queue (it is memory
             * held), so a big one reused for a small span would count, and spill, as big. */
            if (c->pool_bytes + sz <= c->pool_max && r->cap <= POOL_REC_CAP) {
                r->next = c->pool;
                c->pool = r;
                c->pool_bytes += sz;
            } else {
                r->next = excess;
                excess = r;
            }
        }
        pthread_mutex_unlock(&c->pool_mu);
    }
    while (excess) {
        struct lf_obs *r = excess;
        excess = r->next;
        lf__rec_free(r);
    }
}
