/*
 * exporter.c - the exporter thread: batching, sending, retrying, spooling.
 *
 * One thread per client. It sleeps until a batch threshold is crossed (flush_at records or
 * half a request's bytes), the flush interval passes, a flush or shutdown is asked, or a
 * retry falls due. It then takes the whole queue in one step, encodes it into gzip bodies
 * of at most max_request_bytes ("pending batches"; the raw records are freed at once, so
 * a backlog is held compressed), and sends them in order.
 *
 * Outcomes of a request:
 *  - 2xx: delivered. A 207 (ingestion) is read event by event: 4xx events are rejected and
 *    counted, 5xx/429 events are resent alone, nothing that succeeded is sent again. Events
 *    refused for their type (a v4 server) are also spooled once, for a v3 server.
 *  - 413: the body is split in two (or, a single item, its largest string halved) and
 *    both halves retried; a request never grows past the cap it was refused at.
 *  - 400: rejected, counted, reported once with the server's reason. Never retried.
 *  - 401, 403, 404: the server will not take anything from this configuration. Reported
 *    once; from then on everything goes to the spool, where a later run with a fixed
 *    configuration delivers it.
 *  - 408, 429, 5xx, no answer: retried after exponential backoff with jitter (Retry-After
 *    wins when given), the same bytes and so the same ids; after max_retries, spooled.
 *    Later batches wait behind the failing one, so a struggling server is not hammered.
 *
 * Shutdown has a deadline. Requests in flight are aborted at (deadline - reserve), and
 * whatever is left is written to the spool in the reserve, so the whole shutdown ends by
 * the deadline. If the last attempt got no answer at all (a dead or black-holed server),
 * shutdown does not try again: it spools at once, costing the program milliseconds.
 */
#include "exporter.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "body.h"
#include "encode.h"
#include "gzip.h"
#include "http.h"
#include "journal.h"
#include "spill.h"
#include "spool.h"

#define BACKOFF_BASE_MS 500
#define BACKOFF_CAP_MS 30000
#define RETRY_AFTER_CAP_MS 60000
#define GZIP_LEVEL 1

struct lf__batch {
    struct lf__batch *next;
    int endpoint;        /* LF_TRANSPORT_* */
    char *body;          /* wire bytes, owned; NULL for a spool file not read yet */
    size_t len;
    int gz;
    uint32_t nrec;
    uint64_t qseq_min;   /* flush accounting; UINT64_MAX for spool files */
    int attempts;
    int64_t next_try;    /* CLOCK_MONOTONIC ns */
    char *spool_path;    /* on disk as this file (owned); deleted once delivered or refused */
    int spool_fd;        /* its claim while held, else -1 */
    int ahead;           /* the file is this run's write-ahead copy, not an earlier run's */
};

struct lf__exp {
    struct lf__batch *head, *tail;
    size_t bytes;            /* wire bytes of pending batches */
    int blocked;             /* 401/403/404 seen: spool everything */
    atomic_int last_no_answer; /* the last failed attempt got no HTTP answer */
    int spooled_this_run;    /* replay the spool after the next success */
    int64_t last_take;
    struct lf__encoder enc;
    struct lf__spill spill;
    struct lf__spool spool;  /* the spool's size as this writer knows it; see spool.h */
    /* Records taken from the queue but not encoded yet, oldest first. Taking the whole
     * queue at once keeps the queue lock held for nanoseconds, so recording threads never
     * wait on the exporter; their bytes stay counted in c->held_bytes. */
    struct lf_obs *bl_head, *bl_tail;
    size_t bl_bytes;
    struct lf_obs *done_recs; /* finished records, returned to the pool in one go */
    struct lf__trace *open;   /* traces whose root is open, with their journals */
    int64_t last_journal;     /* when their journals were last brought up to date */
};

/* Collects a finished record for the pool (see lf_client.pool). */
static void release_rec(void *ud, struct lf_obs *r)
{
    struct lf__exp *x = ((struct lf_client *)ud)->exp;
    r->next = x->done_recs;
    x->done_recs = r;
}

static void return_recs(struct lf_client *c)
{
    struct lf_obs *list = c->exp->done_recs;
    c->exp->done_recs = NULL;
    lf__obs_recycle(c, list);
}


int lf__exporter_connect(struct lf_client *c, char *err, size_t errlen)
{
    size_t n = strlen(c->conf.public_key) + strlen(c->conf.secret_key) + 2;
    c->userpwd = lf__malloc(n);
    if (!c->userpwd) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(c->userpwd, n, "%s:%s", c->conf.public_key, c->conf.secret_key);
    c->http_opts = (struct lf__http_opts){c->conf.host, c->userpwd, &c->abort_at_ns,
                                          lf__exporter_service, c};
    c->spill_at = c->conf.max_queue_bytes / 8;
    c->http = lf__http_new(&c->http_opts, err, errlen);
    return c->http ? 0 : -1;
}

int lf__exporter_init(struct lf_client *c)
{
    c->exp = lf__calloc(1, sizeof(struct lf__exp));
    if (!c->exp)
        return -1;
    lf__encoder_init(&c->exp->enc);
    lf__spool_init(&c->exp->spool, c->conf.spool_dir, c->conf.spool_max_bytes);
    lf__spill_init(&c->exp->spill, c->conf.spool_dir, c->conf.spool_max_bytes > (256u << 20)
                                                          ? c->conf.spool_max_bytes
                                                          : (256u << 20));
    return 0;
}

/* A zeroed batch holding no spool file; NULL when memory ran out. */
static struct lf__batch *batch_new(void)
{
    struct lf__batch *b = lf__calloc(1, sizeof(*b));
    if (b)
        b->spool_fd = -1;
    return b;
}

static void batch_free(struct lf__batch *b)
{
    if (!b)
        return;
    if (b->spool_fd >= 0)
        lf__spool_release(b->spool_fd);
    free(b->body);
    free(b->spool_path);
    free(b);
}

void lf__exporter_cleanup(struct lf_client *c)
{
    struct lf__exp *x = c->exp;
    if (!x)
        return;
    while (x->head) {
        struct lf__batch *b = x->head;
        x->head = b->next;
        batch_free(b);
    }
    while (x->bl_head) {
        struct lf_obs *r = x->bl_head;
        x->bl_head = r->next;
        lf__rec_free(r);
    }
    lf__http_free(c->http);
    c->http = NULL;
    lf__encoder_free(&x->enc);
    lf__spill_close(&x->spill);
    free(x);
    c->exp = NULL;
}

void lf__exporter_forget_after_fork(struct lf_client *c)
{
    struct lf__exp *x = c->exp;
    /* The parent sends these; in the child they are only memory. */
    while (x->head) {
        struct lf__batch *b = x->head;
        x->head = b->next;
        if (b->spool_fd >= 0)
            b->spool_fd = -1; /* the parent's lock; closing our copy would be harmless, but
                                leaving it keeps the parent's claim unambiguous */
        batch_free(b);
    }
    x->tail = NULL;
    x->bytes = 0;
    /* The backlog and the spill file's records are the parent's to send. */
    while (x->bl_head) {
        struct lf_obs *r = x->bl_head;
        x->bl_head = r->next;
        lf__rec_free(r);
    }
    x->bl_tail = NULL;
    x->bl_bytes = 0;
    atomic_store(&c->held_bytes, 0);
    lf__spill_close(&x->spill);
    x->spill.nrec = 0;
    x->spill.wpos = x->spill.rpos = 0;
    /* The parent's connection stays the parent's. The child's own is made when its
     * exporter starts (start_thread_locked), not here: an atfork child handler should do
     * only async-signal-safe work, and a new client means a pipe, allocations and, for
     * https, libcurl's initialisation. */
    lf__http_abandon(c->http);
    c->http = NULL;
}

int64_t lf__exporter_spool_reserve_ns(const struct lf_client *c)
{
    int64_t r = (int64_t)c->conf.flush_timeout_ms * 1000000 / 5;
    return r < 250000000 ? r : 250000000;
}

void lf__exporter_stop_by(struct lf_client *c, int64_t deadline_ns)
{
    /* A server that did not answer the last attempt will not answer this one: an attempt in
     * flight is cut short at once and its data spooled. */
    int64_t at = atomic_load(&c->exp->last_no_answer) ? lf__mono_ns()
                                                      : deadline_ns - lf__exporter_spool_reserve_ns(c);
    atomic_store(&c->abort_at_ns, at);
}

int64_t lf__exporter_grace_ns(void)
{
    return 50000000; /* thread wake-up and join; the spool is written inside the deadline */
}

/* ---- accounting -------------------------------------------------------------------- */

static void count(atomic_uint_fast64_t *n, uint64_t v)
{
    atomic_fetch_add_explicit(n, v, memory_order_relaxed);
}

static void append(struct lf__exp *x, struct lf__batch *b)
{
    b->next = NULL;
    if (x->tail)
        x->tail->next = b;
    else
        x->head = b;
    x->tail = b;
    x->bytes += b->len;
}

static void unlink_head(struct lf__exp *x)
{
    struct lf__batch *b = x->head;
    x->head = b->next;
    if (!x->head)
        x->tail = NULL;
    x->bytes -= b->len;
}

/* Records below this qseq are finished: none is queued, spilled or pending. Called with
 * c->mu. */
static uint64_t finished_below(struct lf_client *c)
{
    uint64_t low = c->head ? c->head->qseq : c->enq_seq;
    if (c->exp->bl_head && c->exp->bl_head->qseq < low)
        low = c->exp->bl_head->qseq;
    if (c->exp->spill.nrec && c->exp->spill.head_qseq < low)
        low = c->exp->spill.head_qseq;
    for (struct lf__batch *b = c->exp->head; b; b = b->next)
        if (b->qseq_min < low)
            low = b->qseq_min;
    return low;
}

/* ---- spilling --------------------------------------------------------------------------- */

/*
 * Moves the whole queue to the spill file when the recording side asked for it (the queue
 * passed its memory mark). Called wherever the exporter waits or works: its main loop,
 * every few records while encoding, and from the HTTP client's wait.
 */
/* Moves the queue to the backlog: O(1) under the lock. Called with c->mu held. */
static void detach_queue_locked(struct lf_client *c)
{
    struct lf__exp *x = c->exp;
    if (!c->head)
        return;
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

void lf__exporter_service(void *arg)
{
    struct lf_client *c = arg;
    struct lf__exp *x = c->exp;
    if (!atomic_load_explicit(&c->spill_wanted, memory_order_relaxed))
        return;
    /* Check the file before taking anything: without one, the records stay in memory and
     * the memory cap alone bounds the queue. */
    int usable = lf__spill_usable(&x->spill);
    pthread_mutex_lock(&c->mu);
    if (!usable)
        c->spill_at = 0;
    else
        detach_queue_locked(c);
    c->spill_signaled = 0;
    atomic_store(&c->spill_wanted, 0);
    pthread_mutex_unlock(&c->mu);
    if (!usable || !x->bl_head)
        return;
    struct lf_obs *list = x->bl_head;
    x->bl_head = x->bl_tail = NULL;
    x->bl_bytes = 0;
    atomic_store(&c->held_bytes, 0);
    uint64_t dropped = 0;
    uint64_t n = lf__spill_write(&x->spill, list, &dropped, release_rec, c);
    return_recs(c);
    count(&c->n.spilled, n);
    if (dropped) {
        count(&c->n.dropped_queue, dropped);
        lf__log_once(c, LF__REPORT_SPILL, LF_LOG_WARN,
                     "the spill file in %s is full or failing (%s); %llu observations dropped",
                     x->spill.dir, x->spill.failed ? "cannot be created" : "cap reached",
                     (unsigned long long)dropped);
    }
}

/* ---- spooling ------------------------------------------------------------------------- */

/*
 * Write-ahead: from the moment a batch is made until it is delivered or refused, it is also
 * a file in the spool, claimed by this process. A process killed mid-flight (SIGKILL, the
 * OOM killer) thus leaves everything it had encoded for the next run, which is within a
 * flush interval of when it was recorded. The copy is not fsynced (it is there for a killed
 * process, and the page cache outlives one); one that is to stay is made durable when its
 * batch is given up. Costs a file create, rename and unlink per request.
 */
static void write_ahead(struct lf_client *c, struct lf__batch *b)
{
    struct lf__exp *x = c->exp;
    struct lf__spool_held held;
    char err[256];
    uint64_t evicted = 0;
    if (!c->conf.spool_dir || b->spool_path || !b->body)
        return;
    if (lf__spool_write(&x->spool, b->endpoint, b->body, b->len, b->gz, b->nrec, &evicted,
                        &held, err, sizeof(err))) {
        lf__log(c, LF_LOG_DEBUG, "no write-ahead copy of %u observations: %s", b->nrec, err);
        return;
    }
    if (evicted) {
        count(&c->n.spool_dropped, evicted);
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
static void spool_batch(struct lf_client *c, struct lf__batch *b, const char *why)
{
    struct lf__exp *x = c->exp;
    if (b->ahead) {
        /* Already in the spool: made durable, and left for a later run. */
        lf__spool_sync(c->conf.spool_dir, b->spool_fd);
        count(&c->n.spooled, b->nrec);
        x->spooled_this_run = 1;
        lf__log(c, LF_LOG_DEBUG, "%s; %u observations stay spooled in %s", why, b->nrec,
                b->spool_path);
        batch_free(b);
        return;
    }
    if (b->spool_path) {
        /* An earlier run's spool file: leave it for a later run. */
        batch_free(b);
        return;
    }
    if (!c->conf.spool_dir) {
        count(&c->n.spool_dropped, b->nrec);
        lf__log_once(c, LF__REPORT_SPOOL, LF_LOG_WARN,
                     "%s; no spool directory is set (LANGFUSE_SPOOL_DIR), so %u observations "
                     "are lost, and later ones will be too",
                     why, b->nrec);
        batch_free(b);
        return;
    }
    char err[256];
    uint64_t evicted = 0;
    if (lf__spool_write(&x->spool, b->endpoint, b->body, b->len, b->gz, b->nrec, &evicted, NULL,
                        err, sizeof(err))) {
        count(&c->n.spool_dropped, b->nrec);
        lf__log(c, LF_LOG_WARN, "%s; spooling %u observations failed, they are lost: %s", why,
                b->nrec, err);
    } else {
        count(&c->n.spooled, b->nrec);
        x->spooled_this_run = 1;
        lf__log(c, LF_LOG_DEBUG, "%s; spooled %u observations to %s", why, b->nrec,
                c->conf.spool_dir);
    }
    if (evicted) {
        count(&c->n.spool_dropped, evicted);
        lf__log(c, LF_LOG_WARN, "spool full (%zu bytes): dropped the %llu oldest observations",
                c->conf.spool_max_bytes, (unsigned long long)evicted);
    }
    batch_free(b);
}

/* Queues spool files (taking their paths and claims) unless already queued. */
static void queue_entries(struct lf__exp *x, struct lf__spool_entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int dup = 0;
        for (struct lf__batch *b = x->head; b && !dup; b = b->next)
            dup = b->spool_path && strcmp(b->spool_path, v[i].path) == 0;
        if (dup)
            continue;
        struct lf__batch *b = batch_new();
        if (!b)
            break;
        b->endpoint = v[i].endpoint;
        b->gz = v[i].gz;
        b->nrec = v[i].nrec;
        b->qseq_min = UINT64_MAX;
        b->spool_path = v[i].path;
        b->spool_fd = v[i].fd;
        v[i].path = NULL;
        v[i].fd = -1;
        append(x, b);
    }
}

/* Queues the spool files not queued yet, and then the journals of dead processes, adopted
 * now (newest, so last). */
static void queue_spool_files(struct lf_client *c)
{
    struct lf__exp *x = c->exp;
    struct lf__spool_entry *v, *adopted;
    size_t n, nadopted;
    if (!c->conf.spool_dir)
        return;
    if (lf__spool_list(c->conf.spool_dir, &v, &n) == 0) {
        queue_entries(x, v, n);
        lf__spool_entries_free(v, n);
    }
    lf__spool_adopt_journals(c->conf.spool_dir, &adopted, &nadopted);
    if (nadopted)
        lf__log(c, LF_LOG_INFO, "%zu traces of a process that died with their roots open are "
                                "completed from its journal", nadopted);
    queue_entries(x, adopted, nadopted);
    lf__spool_entries_free(adopted, nadopted);
}

/* ---- encoding -------------------------------------------------------------------------- */

static void encode_records(struct lf_client *c, struct lf_obs *list)
{
    struct lf__exp *x = c->exp;
    struct lf__redactor *red = lf__redactor_get(c);
    struct lf__enc e = {&c->conf, red, lf_now_ns(), lf__exporter_service, c, release_rec};
    while (list) {
        struct lf__body body;
        uint64_t truncated = 0, dropped = 0;
        uint64_t qmin = list->qseq;
        if (lf__encode_body(&x->enc, &e, &list, &body, &truncated, &dropped)) {
            count(&c->n.dropped_nomem, dropped);
            /* Out of memory: lose a stretch rather than spin. */
            struct lf_obs *r = list;
            uint64_t n = 0;
            while (r && n < 1024) {
                struct lf_obs *next = r->next;
                lf__rec_free(r);
                r = next;
                n++;
            }
            list = r;
            count(&c->n.dropped_nomem, n);
            continue;
        }
        count(&c->n.truncated, truncated);
        if (dropped) {
            count(&c->n.rejected, dropped);
            lf__log(c, LF_LOG_WARN, "%llu observations could not be cut down to %zu bytes and "
                    "were dropped", (unsigned long long)dropped, c->conf.max_event_bytes);
        }
        if (!body.nrec) {
            free(body.data);
            continue;
        }
        struct lf__batch *b = batch_new();
        if (!b) {
            count(&c->n.dropped_nomem, body.nrec);
            free(body.data);
            continue;
        }
        b->endpoint = c->conf.transport;
        b->nrec = body.nrec;
        b->qseq_min = qmin;
        b->body = body.data;
        b->len = body.len;
        b->gz = body.gz;
        write_ahead(c, b);
        append(x, b);
    }
    lf__redactor_free(red);
    return_recs(c);
}

/* ---- sending --------------------------------------------------------------------------- */

static int64_t backoff_ns(int attempts, long retry_after_ms)
{
    if (retry_after_ms >= 0)
        return (int64_t)(retry_after_ms < RETRY_AFTER_CAP_MS ? retry_after_ms : RETRY_AFTER_CAP_MS) *
               1000000;
    int64_t ms = BACKOFF_BASE_MS;
    for (int i = 1; i < attempts && ms < BACKOFF_CAP_MS; i++)
        ms *= 2;
    if (ms > BACKOFF_CAP_MS)
        ms = BACKOFF_CAP_MS;
    uint8_t r[2];
    lf__random_bytes(r, 2);
    /* "equal jitter": half fixed, half random, so retries of many clients spread out */
    return (ms / 2 + (ms / 2) * ((r[0] << 8 | r[1]) / 65535.0)) * 1000000;
}

/* The body as plain JSON (decompressed if needed). Caller frees *out. */
static int plain_body(const struct lf__batch *b, size_t cap, char **out, size_t *len)
{
    if (b->gz)
        return lf__gunzip(b->body, b->len, cap, out, len) ? -1 : 0;
    *out = lf__strndup(b->body, b->len);
    *len = b->len;
    return *out ? 0 : -1;
}

/* A new batch from plain JSON, compressed like the original. */
static struct lf__batch *batch_from_json(const struct lf__batch *like, char *json, size_t len,
                                         uint32_t nrec)
{
    struct lf__batch *b = batch_new();
    if (!b) {
        free(json);
        return NULL;
    }
    b->endpoint = like->endpoint;
    b->nrec = nrec;
    b->qseq_min = like->qseq_min;
    b->attempts = like->attempts;
    if (like->gz) {
        char *gz;
        size_t gzlen;
        if (lf__gzip(json, len, GZIP_LEVEL, &gz, &gzlen) == 0) {
            free(json);
            b->body = gz;
            b->len = gzlen;
            b->gz = 1;
            return b;
        }
    }
    b->body = json;
    b->len = len;
    return b;
}

/* Records in a part of a body: observation items, not counting trace-create events. */
static uint32_t records_in(int endpoint, const char *json, size_t len)
{
    if (endpoint == LF_TRANSPORT_OTLP) {
        long n = lf__body_count(endpoint, json, len);
        return n > 0 ? (uint32_t)n : 0;
    }
    json_error_t err;
    json_t *root = json_loadb(json, len, JSON_ALLOW_NUL, &err);
    size_t i;
    json_t *ev;
    uint32_t n = 0;
    json_array_foreach(json_object_get(root, "batch"), i, ev)
    {
        const char *t = json_string_value(json_object_get(ev, "type"));
        n += t && strcmp(t, "trace-create") != 0;
    }
    json_decref(root);
    return n;
}

/* Replaces batch `b` (the head) by the batches made from it by a 413; 0 if it could be
 * split or shrunk. */
static int handle_too_large(struct lf_client *c, struct lf__batch *b)
{
    struct lf__exp *x = c->exp;
    char *json;
    size_t len;
    if (plain_body(b, c->conf.max_request_bytes * 4, &json, &len))
        return -1;
    char *a, *bb;
    size_t alen, blen;
    struct lf__batch *na = NULL, *nb = NULL;
    if (lf__body_split(b->endpoint, json, len, &a, &alen, &bb, &blen) == 0) {
        uint32_t ra = records_in(b->endpoint, a, alen), rb = records_in(b->endpoint, bb, blen);
        na = batch_from_json(b, a, alen, ra);
        nb = batch_from_json(b, bb, blen, rb);
    } else if (lf__body_shrink(json, len, &a, &alen) == 0) {
        na = batch_from_json(b, a, alen, b->nrec);
        if (na)
            count(&c->n.truncated, 1);
    }
    free(json);
    if (!na || (nb == NULL && na->nrec != b->nrec)) {
        batch_free(na);
        batch_free(nb);
        return -1;
    }
    write_ahead(c, na);
    if (nb)
        write_ahead(c, nb);
    /* Put the parts where b was, in order. */
    unlink_head(x);
    if (nb) {
        nb->next = x->head;
        x->head = nb;
        x->bytes += nb->len;
        if (!x->tail)
            x->tail = nb;
    }
    na->next = x->head;
    x->head = na;
    x->bytes += na->len;
    if (!x->tail)
        x->tail = na;
    if (b->spool_fd >= 0) {
        /* A spool file: its content now lives in memory; remove the file once both parts
         * are safely elsewhere (they will be re-spooled if they cannot be sent). */
        lf__spool_done(b->spool_path, b->spool_fd);
        b->spool_fd = -1;
    }
    batch_free(b);
    return 0;
}

/* A new batch of the events of `b` whose ids are listed, or NULL (no memory, no such
 * event). */
static struct lf__batch *batch_of_events(struct lf_client *c, const struct lf__batch *b,
                                         const char **ids, size_t n)
{
    char *json, *sub;
    size_t len, sublen;
    struct lf__batch *out = NULL;
    if (plain_body(b, c->conf.max_request_bytes * 4, &json, &len))
        return NULL;
    if (lf__body_filter_events(json, len, ids, n, &sub, &sublen) == 0) {
        uint32_t nrec = records_in(b->endpoint, sub, sublen);
        out = batch_from_json(b, sub, sublen, nrec ? nrec : (uint32_t)n);
    }
    free(json);
    return out;
}

/* What a Langfuse v4 server answers, per event, to observation events on the legacy
 * endpoint: it takes only scores and SDK logs there. */
static int refused_event_type(json_int_t status, const char *msg)
{
    return status == 400 && msg && strstr(msg, "Event type not accepted");
}

/*
 * Reads a 207 answer. Returns records rejected; rebuilds a batch of retryable events into
 * *retry (or NULL). Events a v4 server refuses for their type (the legacy API is for v3)
 * are counted rejected, said once, and spooled for a server that takes them; refused again
 * from the spool, they are dropped, so nothing is re-sent forever.
 */
static uint32_t handle_multi_status(struct lf_client *c, struct lf__batch *b, const char *resp,
                                    struct lf__batch **retry)
{
    *retry = NULL;
    json_error_t err;
    json_t *root = resp ? json_loads(resp, 0, &err) : NULL;
    json_t *errors = json_object_get(root, "errors");
    uint32_t rejected = 0;
    size_t i, nretry = 0, nrefused = 0, nerr = json_array_size(errors);
    json_t *e;
    const char **ids = lf__calloc(nerr + 1, sizeof(char *));
    const char **refused = lf__calloc(nerr + 1, sizeof(char *));
    json_array_foreach(errors, i, e)
    {
        const char *id = json_string_value(json_object_get(e, "id"));
        json_int_t st = json_integer_value(json_object_get(e, "status"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        if (st == 429 || st >= 500) {
            if (ids && id)
                ids[nretry++] = id;
            continue;
        }
        rejected++;
        if (refused_event_type(st, msg)) {
            if (refused && id)
                refused[nrefused++] = id;
            continue;
        }
        lf__log_once(c, LF__REPORT_400, LF_LOG_WARN,
                     "the server rejected an event (status %d): %.300s; such events are "
                     "dropped, the count is in the statistics",
                     (int)st, msg ? msg : "no reason given");
    }
    if (nrefused) {
        lf__log_once(c, LF__REPORT_LEGACY, LF_LOG_WARN,
                     "the server refuses the legacy ingestion API (it is a Langfuse v4 server; "
                     "LANGFUSE_TRANSPORT=ingestion is for v3 and older): set "
                     "LANGFUSE_TRANSPORT=otlp. What it refused is spooled, not re-sent here");
        struct lf__batch *keep =
            b->spool_path && !b->ahead ? NULL : batch_of_events(c, b, refused, nrefused);
        if (keep) {
            write_ahead(c, keep);
            /* Not for this run's replay: this server would refuse it again. */
            int replay = c->exp->spooled_this_run;
            spool_batch(c, keep, "refused by a v4 server");
            c->exp->spooled_this_run = replay;
        }
    }
    if (nretry && (*retry = batch_of_events(c, b, ids, nretry)))
        write_ahead(c, *retry);
    free(ids);
    free(refused);
    json_decref(root);
    return rejected > b->nrec ? b->nrec : rejected;
}

static const char *body_excerpt(const struct lf__http_result *res, char *out, size_t n)
{
    if (!res->body || !res->body_len)
        return "no reason given";
    size_t k = 0;
    for (size_t i = 0; i < res->body_len && k + 1 < n; i++) {
        char ch = res->body[i];
        out[k++] = (ch == '\n' || ch == '\r' || ch == '\t') ? ' ' : ch;
    }
    out[k] = '\0';
    return out;
}

enum outcome { SENT, RETRY_LATER, GIVE_UP, REQUEUED };

/* The head batch is done with for good (delivered or refused): drop it, and its spool file
 * if it came from one. */
static void retire_head(struct lf_client *c, struct lf__batch *b)
{
    unlink_head(c->exp);
    if (b->spool_path && b->spool_fd >= 0) {
        lf__spool_done(b->spool_path, b->spool_fd);
        b->spool_fd = -1;
    }
    batch_free(b);
}

/* Sends the head batch once and settles it. */
static enum outcome send_head(struct lf_client *c, int stopping)
{
    struct lf__exp *x = c->exp;
    struct lf__batch *b = x->head;
    struct lf__http_result res;
    char excerpt[320];

    if (b->spool_path && !b->body) {
        if (b->spool_fd < 0)
            b->spool_fd = lf__spool_claim(b->spool_path);
        if (b->spool_fd < 0 ||
            lf__spool_read(b->spool_fd, c->conf.max_request_bytes * 2, &b->body, &b->len)) {
            lf__log(c, LF_LOG_DEBUG, "spool file %s: gone, or another process has it",
                    b->spool_path);
            unlink_head(x);
            batch_free(b);
            return SENT;
        }
        x->bytes += b->len;
    }
    const char *url = b->endpoint == LF_TRANSPORT_OTLP ? "/api/public/otel/v1/traces"
                                                       : "/api/public/ingestion";
    count(&c->n.requests, 1);
    if (b->attempts)
        count(&c->n.retries, 1);
    b->attempts++;
    int got = lf__http_post(c->http, url, b->body, b->len, b->gz, c->conf.request_timeout_ms, &res);
    int st = got == 0 ? res.status : 0;
    if (st)
        atomic_store(&c->n.last_http_status, st);
    lf__log(c, LF_LOG_DEBUG, "POST %s: %u observations, %zu bytes: %d %s", url, b->nrec, b->len,
            st, st ? "" : res.error);

    if (st >= 200 && st < 300) {
        uint32_t rejected = 0;
        struct lf__batch *retry = NULL;
        if (st == 207 && b->endpoint == LF_TRANSPORT_INGESTION)
            rejected = handle_multi_status(c, b, res.body, &retry);
        uint32_t later = retry ? retry->nrec : 0;
        uint32_t ok = b->nrec > rejected + later ? b->nrec - rejected - later : 0;
        count(&c->n.rejected, rejected);
        count(&c->n.delivered, ok);
        if (b->spool_path && !b->ahead)
            count(&c->n.replayed, ok);
        x->last_no_answer = 0;
        retire_head(c, b);
        if (retry) {
            retry->next = x->head;
            x->head = retry;
            if (!x->tail)
                x->tail = retry;
            x->bytes += retry->len;
            retry->next_try = lf__mono_ns() + backoff_ns(retry->attempts, -1);
        }
        lf__http_result_free(&res);
        if (x->spooled_this_run && !stopping) {
            x->spooled_this_run = 0;
            queue_spool_files(c); /* the server is back: deliver what we spooled */
        }
        return SENT;
    }
    if (st == 413) {
        lf__log_once(c, LF__REPORT_413, LF_LOG_INFO,
                     "the server refused a %zu-byte request as too large; splitting requests",
                     b->len);
        lf__http_result_free(&res);
        if (handle_too_large(c, b) == 0)
            return REQUEUED;
        count(&c->n.rejected, b->nrec);
        lf__log(c, LF_LOG_WARN, "an observation is too large for the server even when cut "
                "down; dropped");
        retire_head(c, b);
        return SENT;
    }
    if (st == 400 || (st >= 402 && st < 500 && st != 403 && st != 404 && st != 405 &&
                      st != 408 && st != 415 && st != 429)) {
        count(&c->n.rejected, b->nrec);
        lf__log_once(c, LF__REPORT_400, LF_LOG_WARN,
                     "the server rejected %u observations (HTTP %d): %s; not retried", b->nrec,
                     st, body_excerpt(&res, excerpt, sizeof(excerpt)));
        lf__http_result_free(&res);
        retire_head(c, b);
        return SENT;
    }
    if (st == 401 || st == 403 || st == 404 || st == 405 || st == 415) {
        x->blocked = 1;
        lf__log_once(c, LF__REPORT_BLOCKED, LF_LOG_WARN,
                     "the server refused the data (HTTP %d: %s); check LANGFUSE_HOST and the "
                     "keys. Nothing more is sent this run; it is spooled for a later one",
                     st, body_excerpt(&res, excerpt, sizeof(excerpt)));
        lf__http_result_free(&res);
        return GIVE_UP;
    }
    /* 408, 429, 5xx, or no answer at all */
    x->last_no_answer = st == 0;
    if (b->attempts > c->conf.max_retries || (stopping && res.aborted)) {
        lf__log(c, LF_LOG_WARN, "giving up on %u observations after %d attempts (%s%s)",
                b->nrec, b->attempts, st ? "HTTP " : "", st ? "error status" : res.error);
        lf__http_result_free(&res);
        return GIVE_UP;
    }
    b->next_try = lf__mono_ns() + backoff_ns(b->attempts, res.retry_after_ms);
    lf__log(c, LF_LOG_DEBUG, "will retry in %lld ms",
            (long long)((b->next_try - lf__mono_ns()) / 1000000));
    lf__http_result_free(&res);
    return RETRY_LATER;
}

/*
 * Shutdown's deadline passed: what is still queued, spilled, or encoded but not sent, is
 * counted lost (spool_dropped) rather than let shutdown overrun. Encoding and spooling a
 * big backlog takes longer than the spool reserve (measured: 60,000 spilled observations,
 * 350 ms of work after the abort, for a 250 ms reserve), and the caller was promised the
 * deadline. Unsent spool files stay on disk for the next run. Called without c->mu.
 */
static void abandon_rest(struct lf_client *c)
{
    struct lf__exp *x = c->exp;
    uint64_t n = 0;
    pthread_mutex_lock(&c->mu);
    detach_queue_locked(c);
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
        unlink_head(x);
        if (b->ahead) /* its write-ahead copy stays for the next run */
            count(&c->n.spooled, b->nrec);
        else if (!b->spool_path)
            n += b->nrec;
        batch_free(b);
    }
    if (!n)
        return;
    count(&c->n.spool_dropped, n);
    lf__log(c, LF_LOG_WARN, "the shutdown deadline passed before %llu observations could be "
            "sent or spooled; they are lost", (unsigned long long)n);
}

/* Sends what is due. With `stopping`, everything goes out or to the spool by `deadline`. */
static void process_pending(struct lf_client *c, int stopping, int64_t deadline)
{
    struct lf__exp *x = c->exp;
    int64_t spool_by = deadline - lf__exporter_spool_reserve_ns(c);
    while (x->head) {
        struct lf__batch *b = x->head;
        int64_t now = lf__mono_ns();
        int give_up = x->blocked;
        if (stopping && now >= deadline) {
            abandon_rest(c); /* each spool write fsyncs twice: a slow disk could overrun */
            return;
        }
        if (stopping) {
            if (b->spool_path && !b->body) {
                /* unsent spool files stay where they are */
                unlink_head(x);
                batch_free(b);
                continue;
            }
            /* A server that did not answer at all will not answer now either. */
            give_up = give_up || now >= spool_by || x->last_no_answer;
        } else if (b->next_try > now) {
            return;
        }
        if (!give_up) {
            /* Only shutdown sets an abort time (lf__exporter_stop_by); never clear it here,
             * or a shutdown racing with this send would lose its deadline. */
            if (stopping && !atomic_load(&c->abort_at_ns))
                atomic_store(&c->abort_at_ns, spool_by);
            enum outcome o = send_head(c, stopping);
            if (o == SENT || o == REQUEUED)
                continue;
            if (o == RETRY_LATER && !stopping)
                return;
            if (o == RETRY_LATER && stopping && x->head == b && b->next_try < spool_by &&
                !x->last_no_answer) {
                /* the server answers: one more try now if the deadline allows */
                b->next_try = 0;
                continue;
            }
        }
        unlink_head(x);
        spool_batch(c, b, stopping ? "shutdown deadline" : "the server did not accept the data");
    }
}

/* Spools the pending batches beyond the memory cap (oldest first), so a long outage costs
 * disk, not memory. */
static void bound_pending(struct lf_client *c)
{
    struct lf__exp *x = c->exp;
    while (x->head && x->bytes > c->conf.max_queue_bytes) {
        struct lf__batch *b = x->head;
        unlink_head(x);
        spool_batch(c, b, "the server is not keeping up");
    }
}

/* When the exporter must look again by itself. With an empty queue that is one interval
 * from now: the recording path signals only when a batch fills, so an idle exporter ticks
 * once per interval to pick up a trickle, costing one wake-up per second. */
/*
 * The next records to encode, about one request's worth: the spill file's first (they are
 * older), else the front of the queue. Taking a bounded slice rather than the whole queue
 * keeps what the exporter holds in memory bounded too. Records of the spill file that could
 * not be read back are added to *lost, for the caller to report once it has let go of the
 * lock. Called with c->mu held.
 */
static struct lf_obs *take(struct lf_client *c, uint64_t *lost)
{
    struct lf__exp *x = c->exp;
    size_t want = c->conf.max_request_bytes;
    if (x->spill.nrec) {
        pthread_mutex_unlock(&c->mu);
        struct lf_obs *list = lf__spill_read(&x->spill, want, lost, lf__exporter_service, c);
        pthread_mutex_lock(&c->mu);
        return list;
    }
    detach_queue_locked(c);
    struct lf_obs *head = x->bl_head, *last = NULL, *r = head;
    size_t bytes = 0;
    while (r && (bytes < want || !last)) {
        bytes += lf__rec_size(r);
        last = r;
        r = r->next;
    }
    if (!last)
        return NULL;
    x->bl_head = r;
    if (!r)
        x->bl_tail = NULL;
    last->next = NULL;
    x->bl_bytes -= bytes;
    atomic_store(&c->held_bytes, x->bl_bytes);
    return head;
}

static int64_t next_due(struct lf_client *c, int64_t now)
{
    struct lf__exp *x = c->exp;
    int64_t interval = (int64_t)c->conf.flush_interval_ms * 1000000;
    int64_t t = c->qcount ? x->last_take + interval : now + interval;
    if (x->head && !x->blocked && x->head->next_try < t)
        t = x->head->next_try;
    return t;
}

static int work_ready(struct lf_client *c, int64_t now)
{
    struct lf__exp *x = c->exp;
    if (c->stopping)
        return 1;
    if (c->qcount && (c->flushing || c->qcount >= (size_t)c->conf.flush_at ||
                      c->qbytes >= c->conf.max_request_bytes / 2 ||
                      now - x->last_take >= (int64_t)c->conf.flush_interval_ms * 1000000))
        return 1;
    if (x->head && (x->blocked || x->head->next_try <= now))
        return 1;
    if ((x->spill.nrec || x->bl_head) && (!x->head || x->blocked))
        return 1; /* a backlog: encode it as soon as the line is free */
    /* A trace started, or an open trace's attributes changed, with nothing ended since: its
     * journal is brought up to date within a flush interval all the same (a wake-up per
     * trace start would cut every batch short). */
    if ((x->open || c->new_traces) &&
        now - x->last_journal >= (int64_t)c->conf.flush_interval_ms * 1000000)
        return 1;
    return c->replay_ticket != c->replay_taken || atomic_load(&c->spill_wanted);
}

static int spool_batches_pending(const struct lf__exp *x)
{
    for (const struct lf__batch *b = x->head; b; b = b->next)
        if (b->spool_path && !b->ahead)
            return 1;
    return 0;
}

void *lf__exporter_main(void *arg)
{
    struct lf_client *c = arg;
    struct lf__exp *x = c->exp;

    /* Signals belong to the application's threads. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);

    if (!c->http)
        lf__log(c, LF_LOG_ERROR, "no HTTP connection state (out of memory?); everything will be "
                "spooled");
    x->blocked = x->blocked || !c->http;
    if (c->conf.spool_replay)
        queue_spool_files(c);
    x->last_take = x->last_journal = lf__mono_ns();

    pthread_mutex_lock(&c->mu);
    for (;;) {
        int64_t now = lf__mono_ns();
        while (!work_ready(c, now)) {
            int64_t due = next_due(c, now);
            lf__cond_wait_until(&c->wake, &c->mu, due > now + 1000000 ? due : now + 1000000);
            now = lf__mono_ns();
        }
        pthread_mutex_unlock(&c->mu);
        lf__exporter_service(c);
        pthread_mutex_lock(&c->mu);
        int stopping = c->stopping;
        int64_t deadline = c->stop_deadline_ns;
        int late = stopping && lf__mono_ns() >= deadline;
        uint64_t lost = 0;
        struct lf_obs *list = late ? NULL : take(c, &lost);
        int replay = c->replay_ticket != c->replay_taken;
        c->replay_taken = c->replay_ticket;
        pthread_mutex_unlock(&c->mu);

        if (lost) {
            /* Logged without c->mu: the log callback is the user's code, free to call
             * lf_client_stats(), and lf__log takes red_mu, which atfork_prepare takes
             * before mu. */
            count(&c->n.dropped_nomem, lost);
            lf__log(c, LF_LOG_WARN, "the spill file could not be read back: %llu observations "
                    "lost", (unsigned long long)lost);
        }
        if (late)
            abandon_rest(c);
        if (c->conf.spool_dir)
            lf__journal_note_roots(c, &x->open, list);
        if (list) {
            x->last_take = now;
            encode_records(c, list);
        }
        if (c->conf.spool_dir) {
            lf__journal_update(c, &x->open); /* after the roots' write-ahead copies */
            x->last_journal = lf__mono_ns();
        }
        if (replay && !x->blocked)
            queue_spool_files(c);
        bound_pending(c);
        process_pending(c, stopping, deadline);

        pthread_mutex_lock(&c->mu);
        c->done_below = finished_below(c);
        if (!spool_batches_pending(x))
            c->replay_done = c->replay_taken;
        pthread_cond_broadcast(&c->done);
        if (stopping && !c->head && !x->head && !x->spill.nrec && !x->bl_head)
            break;
    }
    pthread_mutex_unlock(&c->mu);
    lf__journal_close(c, &x->open);
    pthread_mutex_lock(&c->mu);
    c->stopped = 1;
    atomic_store(&c->abort_at_ns, 0);
    pthread_cond_broadcast(&c->done);
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int lf__exporter_request_replay(struct lf_client *c, int64_t deadline_ns)
{
    if (!c->conf.spool_dir)
        return LF_OK;
    pthread_mutex_lock(&c->mu);
    uint64_t ticket = ++c->replay_ticket;
    pthread_cond_signal(&c->wake);
    while (c->replay_done < ticket && !c->stopped && lf__mono_ns() < deadline_ns)
        lf__cond_wait_until(&c->done, &c->mu, deadline_ns);
    pthread_mutex_unlock(&c->mu);
    struct lf__spool_entry *v;
    size_t n;
    if (lf__spool_list(c->conf.spool_dir, &v, &n))
        return LF_ERR_IO;
    lf__spool_entries_free(v, n);
    if (n == 0)
        return LF_OK;
    return lf__mono_ns() >= deadline_ns ? LF_ERR_TIMEOUT : LF_ERR_HTTP;
}
