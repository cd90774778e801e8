/*
 * pending.c - the batches waiting to go, in order, and where they are kept besides memory:
 * each one's write-ahead copy in the spool, the spool itself (batches given up, replayed by
 * a later run), and the backlog of records taken from the queue and the spill file it goes
 * to when the queue passes its memory mark. See exporter_int.h for the other pieces.
 */
#include "exporter_int.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "invariant.h"
#include "exporter.h"
#include "journal.h"
/* Collects a finished record for the pool (see lf_client.pool). */
void lf__exp_release_rec(void *ud, struct lf_obs *r)
{
    struct lf__exp *x = ((struct lf_client *)ud)->exp;
    r->next = x->done_recs;
    x->done_recs = r;
}

void lf__exp_return_recs(struct lf_client *c)
{
    struct lf_obs *list = c->exp->done_recs;
    c->exp->done_recs = NULL;
    lf__obs_recycle(c, list);
}

/* A zeroed batch holding no spool file; NULL when memory ran out. */
struct lf__batch *lf__batch_new(void)
{
    struct lf__batch *b = lf__calloc(1, sizeof(*b));
    if (b) b->spool_fd = -1;
    return b;
}

void lf__batch_free(struct lf__batch *b)
{
    if (!b) return;
    if (b->spool_fd >= 0) lf__spool_release(b->spool_fd);
    free(b->body);
    free(b->spool_path);
    free(b);
}

void lf__pending_append(struct lf__exp *x, struct lf__batch *b)
{
    LF_INVARIANT(b->spool_fd < 0 || b->spool_path); /* a claim is on a file with a name */
    b->next = NULL;
    if (x->tail)
        x->tail->next = b;
    else
        x->head = b;
    x->tail = b;
    x->bytes += b->len;
}

void lf__pending_unlink_head(struct lf__exp *x)
{
    struct lf__batch *b = x->head;
    LF_INVARIANT(b && x->bytes >= b->len); /* bytes counts every pending batch's body */
    x->head = b->next;
    if (!x->head) x->tail = NULL;
    x->bytes -= b->len;
}

/* The head batch is done with for good (delivered or refused): drop it, and its spool file
 * if it came from one. */
void lf__pending_retire(struct lf_client *c, struct lf__batch *b)
{
    lf__pending_unlink_head(c->exp);
    if (b->spool_path && b->spool_fd >= 0) {
        lf__spool_done(b->spool_path, b->spool_fd);
        b->spool_fd = -1;
    }
    lf__batch_free(b);
}

/* Records below this qseq are finished: none is queued, spilled or pending. Called with
 * c->mu. */
uint64_t lf__pending_finished_below(struct lf_client *c)
{
    uint64_t low = c->head ? c->head->qseq : c->enq_seq;
    if (c->exp->bl_head && c->exp->bl_head->qseq < low) low = c->exp->bl_head->qseq;
    if (c->exp->spill.nrec && c->exp->spill.head_qseq < low) low = c->exp->spill.head_qseq;
    for (struct lf__batch *b = c->exp->head; b; b = b->next)
        if (b->qseq_min < low) low = b->qseq_min;
    return low;
}

/* Moves the queue to the backlog: O(1) under the lock. Called with c->mu held. */
void lf__exp_detach_queue_locked(struct lf_client *c)
{
    struct lf__exp *x = c->exp;
    if (!c->head) return;
    if (x->bl_tail)
        x->bl_tail->next = c->head;
    else
        x->bl_head = c->head;
    x->bl_tail = c->tail;
    x->bl_bytes += c->qbytes;
    atomic_store(&c->held_bytes, x->bl_bytes);
    c->head = c->tail = NULL;
    c->qcount = 0;
    c->qbytes = 0;
}

/* Moves the whole queue to the spill file when the recording side asked for it (the queue
 * passed its memory mark). */
void lf__exporter_service(struct lf_client *c)
{
    struct lf__exp *x = c->exp;
    if (!atomic_load_explicit(&c->spill_wanted, memory_order_relaxed)) return;
    /* Check the file before taking anything: without one, the records stay in memory and
     * the memory cap alone bounds the queue. */
    int usable = lf__spill_usable(&x->spill);
    pthread_mutex_lock(&c->mu);
    if (!usable)
        c->spill_at = 0;
    else
        lf__exp_detach_queue_locked(c);
    c->spill_signaled = 0;
    atomic_store(&c->spill_wanted, 0);
    pthread_mutex_unlock(&c->mu);
    if (!usable || !x->bl_head) return;
    struct lf_obs *list = x->bl_head;
    x->bl_head = x->bl_tail = NULL;
    x->bl_bytes = 0;
    atomic_store(&c->held_bytes, 0);
    uint64_t dropped = 0;
    uint64_t n = lf__spill_write(&x->spill, list, &dropped, lf__exp_release_rec, c);
    lf__exp_return_recs(c);
    lf__count(&c->n.spilled, n);
    if (dropped) {
        lf__count(&c->n.dropped_queue, dropped);
        lf__log_once(c, LF__REPORT_SPILL, LF_LOG_WARN,
                     "the spill file in %s is full or failing (%s); %llu observations dropped",
                     x->spill.dir, x->spill.failed ? "cannot be created" : "cap reached",
                     (unsigned long long)dropped);
    }
}

/*
 * Write-ahead: from the moment a batch is made until it is delivered or refused, it is also
 * a file in the spool, claimed by this process. A process killed mid-flight (SIGKILL, the
 * OOM killer) thus leaves everything it had encoded for the next run, which is within a
 * flush interval of when it was recorded. The copy is not fsynced (it is there for a killed
 * process, and the page cache outlives one); one that is to stay is made durable when its
 * batch is given up. Costs a file create, rename and unlink per request.
 */
void lf__pending_write_ahead(struct lf_client *c, struct lf__batch *b)
{
    struct lf__exp *x = c->exp;
    struct lf__spool_held held;
    char err[256];
    uint64_t evicted = 0;
    if (!c->conf.spool_dir || b->spool_path || !b->body) return;
    if (lf__spool_write(&x->spool, b->endpoint, b->body, b->len, b->gz, b->nrec, &evicted, &held,
                        err, sizeof(err))) {
        lf__log(c, LF_LOG_DEBUG, "no write-ahead copy of %u observations: %s", b->nrec, err);
        return;
    }
    if (evicted) {
        lf__count(&c->n.spool_dropped, evicted);
        lf__log(c, LF_LOG_WARN, "spool full (%zu bytes): dropped the %llu oldest observations",
                c->conf.spool_max_bytes, (unsigned long long)evicted);
    }
    b->spool_path = lf__strdup(held.path);
    if (!b->spool_path) {
        lf__spool_done(held.path, held.fd);
        return;
    }
    b->spool_fd = held.fd;
    b->ahead = 1;
}

/* Moves a batch to the spool (or counts it lost without one) and frees it. */
void lf__pending_spool(struct lf_client *c, struct lf__batch *b, const char *why)
{
    struct lf__exp *x = c->exp;
    if (b->ahead) {
        /* Already in the spool: made durable, and left for a later run. */
        lf__spool_sync(c->conf.spool_dir, b->spool_fd);
        lf__count(&c->n.spooled, b->nrec);
        x->spooled_this_run = 1;
        lf__log(c, LF_LOG_DEBUG, "%s; %u observations stay spooled in %s", why, b->nrec,
                b->spool_path);
        lf__batch_free(b);
        return;
    }
    if (b->spool_path) {
        /* An earlier run's spool file: leave it for a later run. */
        lf__batch_free(b);
        return;
    }
    if (!c->conf.spool_dir) {
        lf__count(&c->n.spool_dropped, b->nrec);
        lf__log_once(c, LF__REPORT_SPOOL, LF_LOG_WARN,
                     "%s; no spool directory is set (LANGFUSE_SPOOL_DIR), so %u observations "
                     "are lost, and later ones will be too",
                     why, b->nrec);
        lf__batch_free(b);
        return;
    }
    char err[256];
    uint64_t evicted = 0;
    if (lf__spool_write(&x->spool, b->endpoint, b->body, b->len, b->gz, b->nrec, &evicted, NULL,
                        err, sizeof(err))) {
        lf__count(&c->n.spool_dropped, b->nrec);
        lf__log(c, LF_LOG_WARN, "%s; spooling %u observations failed, they are lost: %s", why,
                b->nrec, err);
    } else {
        lf__count(&c->n.spooled, b->nrec);
        x->spooled_this_run = 1;
        lf__log(c, LF_LOG_DEBUG, "%s; spooled %u observations to %s", why, b->nrec,
                c->conf.spool_dir);
    }
    if (evicted) {
        lf__count(&c->n.spool_dropped, evicted);
        lf__log(c, LF_LOG_WARN, "spool full (%zu bytes): dropped the %llu oldest observations",
                c->conf.spool_max_bytes, (unsigned long long)evicted);
    }
    lf__batch_free(b);
}

/* Queues spool files (taking their paths and claims) unless already queued. */
static void queue_entries(struct lf__exp *x, struct lf__spool_entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int dup = 0;
        for (struct lf__batch *b = x->head; b && !dup; b = b->next)
            dup = b->spool_path && strcmp(b->spool_path, v[i].path) == 0;
        if (dup) continue;
        struct lf__batch *b = lf__batch_new();
        if (!b) break;
        b->endpoint = v[i].endpoint;
        b->gz = v[i].gz;
        b->nrec = v[i].nrec;
        b->qseq_min = UINT64_MAX;
        b->spool_path = v[i].path;
        b->spool_fd = v[i].fd;
        v[i].path = NULL;
        v[i].fd = -1;
        lf__pending_append(x, b);
    }
}

/* Queues the spool files not queued yet, and then the journals of dead processes, adopted
 * now (newest, so last). */
void lf__pending_queue_spool_files(struct lf_client *c)
{
    struct lf__exp *x = c->exp;
    struct lf__spool_entry *v, *adopted;
    size_t n, nadopted;
    if (!c->conf.spool_dir) return;
    if (lf__spool_list(c->conf.spool_dir, &v, &n) == 0) {
        queue_entries(x, v, n);
        lf__spool_entries_free(v, n);
    }
    lf__spool_adopt_journals(c->conf.spool_dir, &adopted, &nadopted);
    if (nadopted)
        lf__log(c, LF_LOG_INFO,
                "%zu traces of a process that died with their roots open are "
                "completed from its journal",
                nadopted);
    queue_entries(x, adopted, nadopted);
    lf__spool_entries_free(adopted, nadopted);
}

/* Spools the pending batches beyond the memory cap (oldest first), so a long outage costs
 * disk, not memory. */
void lf__pending_bound(struct lf_client *c)
{
    struct lf__exp *x = c->exp;
    while (x->head && x->bytes > c->conf.max_queue_bytes) {
        struct lf__batch *b = x->head;
        lf__pending_unlink_head(x);
        lf__pending_spool(c, b, "the server is not keeping up");
    }
}

/*
 * Shutdown's deadline passed: what is still queued, spilled, or encoded but not sent, is
 * counted lost (spool_dropped) rather than let shutdown overrun. Encoding and spooling a
 * big backlog takes longer than the spool reserve (measured: 60,000 spilled observations,
 * 350 ms of work after the abort, for a 250 ms reserve), and the caller was promised the
 * deadline. Unsent spool files stay on disk for the next run. Called without c->mu.
 */
void lf__pending_abandon_rest(struct lf_client *c)
{
    struct lf__exp *x = c->exp;
    uint64_t n = 0;
    pthread_mutex_lock(&c->mu);
    lf__exp_detach_queue_locked(c);
    pthread_mutex_unlock(&c->mu);
    while (x->bl_head) {
        struct lf_obs *r = x->bl_head;
        x->bl_head = r->next;
        lf__rec_free(r);
        n++;
    }
    x->bl_tail = NULL;
    x->bl_bytes = 0;
    atomic_store(&c->held_bytes, 0);
    n += lf__spill_discard(&x->spill);
    while (x->head) {
        struct lf__batch *b = x->head;
        lf__pending_unlink_head(x);
        if (b->ahead) /* its write-ahead copy stays for the next run */
            lf__count(&c->n.spooled, b->nrec);
        else if (!b->spool_path)
            n += b->nrec;
        lf__batch_free(b);
    }
    if (!n) return;
    lf__count(&c->n.spool_dropped, n);
    lf__log(c, LF_LOG_WARN,
            "the shutdown deadline passed before %llu observations could be "
            "sent or spooled; they are lost",
            (unsigned long long)n);
}

int lf__pending_has_spool_files(const struct lf__exp *x)
{
    for (const struct lf__batch *b = x->head; b; b = b->next)
        if (b->spool_path && !b->ahead) return 1;
    return 0;
}
