/*
 * exporter.c - the exporter thread's loop: taking, encoding, sending, settling.
 *
 * One thread per client. It sleeps until a batch threshold is crossed (flush_at records or
 * half a request's bytes), the flush interval passes, a flush or shutdown is asked, or a
 * retry falls due. It then takes the whole queue in one step, encodes it into gzip bodies
 * of at most max_request_bytes ("pending batches"; the raw records are freed at once, so
 * a backlog is held compressed), and sends them in order.
 *
 * What each answer means is outcome.c's table: delivered (a 207 read event by event, and
 * a 413 split, by rebatch.c); rejected (400 and the like: counted, reported once with the
 * server's reason, never retried); blocked (401, 403, 404: reported once, and from then on
 * everything goes to the spool, for a later run with a fixed configuration); or retried
 * after exponential backoff with jitter (408, 429, 5xx, no answer; Retry-After wins), the
 * same bytes and so the same ids, and spooled after max_retries. Later batches wait behind
 * a failing one, so a struggling server is not hammered. The batches themselves, their
 * spool files and the spill file are pending.c's (exporter_int.h).
 *
 * Nothing it calls holds it for long or calls back into it: a request is stepped
 * (http.h), a body encoded and the spill file read a few dozen records at a time, and
 * between two steps the exporter moves the queue to the spill file if the recording side
 * asked it to (lf__exporter_service), so that a burst during a slow request costs disk,
 * not memory.
 *
 * Shutdown has a deadline. Requests in flight are aborted at (deadline - reserve), and
 * whatever is left is written to the spool in the reserve, so the whole shutdown ends by
 * the deadline. If the last attempt got no answer at all (a dead or black-holed server),
 * shutdown does not try again: it spools at once, costing the program milliseconds.
 */
#include "exporter.h"

#include "exporter_int.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "http.h"
#include "invariant.h"
#include "journal.h"
#include "outcome.h"

int lf__exporter_connect(struct lf_client *c, char *err, size_t errlen)
{
    size_t n = strlen(c->conf.public_key) + strlen(c->conf.secret_key) + 2;
    c->userpwd = lf__malloc(n);
    if (!c->userpwd) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(c->userpwd, n, "%s:%s", c->conf.public_key, c->conf.secret_key);
    c->http_opts = (struct lf__http_opts){c->conf.host, c->userpwd, &c->abort_at_ns};
    c->spill_at = c->conf.max_queue_bytes / 8;
    c->http = lf__http_new(&c->http_opts, err, errlen);
    return c->http ? 0 : -1;
}

int lf__exporter_init(struct lf_client *c)
{
    c->exp = lf__calloc(1, sizeof(struct lf__exp));
    if (!c->exp) return -1;
    lf__encoder_init(&c->exp->enc);
    lf__spool_init(&c->exp->spool, c->conf.spool_dir, c->conf.spool_max_bytes);
    lf__spill_init(&c->exp->spill, c->conf.spool_dir,
                   c->conf.spool_max_bytes > (256u << 20) ? c->conf.spool_max_bytes : (256u << 20));
    return 0;
}

void lf__exporter_cleanup(struct lf_client *c)
{
    struct lf__exp *x = c->exp;
    if (!x) return;
    while (x->head) {
        struct lf__batch *b = x->head;
        x->head = b->next;
        lf__batch_free(b);
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
        lf__batch_free(b);
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
    int64_t at = atomic_load(&c->exp->last_no_answer)
                     ? lf__mono_ns()
                     : deadline_ns - lf__exporter_spool_reserve_ns(c);
    atomic_store(&c->abort_at_ns, at);
}

int64_t lf__exporter_grace_ns(void)
{
    return 50000000; /* thread wake-up and join; the spool is written inside the deadline */
}

/* ---- encoding -------------------------------------------------------------------------- */

static void encode_records(struct lf_client *c, struct lf_obs *list)
{
    struct lf__exp *x = c->exp;
    struct lf__redactor *red = lf__redactor_get(c);
    struct lf__enc e = {&c->conf, red, lf_now_ns(), lf__exp_release_rec, c};
    while (list) {
        struct lf__body body;
        uint64_t truncated = 0, dropped = 0;
        uint64_t qmin = list->qseq;
        /* A few dozen records at a time, spilling between them if the queue asks to; and
         * once more before compressing, which takes a while. */
        lf__encode_begin(&x->enc, &e);
        int rc;
        while ((rc = lf__encode_some(&x->enc, &e, &list, 32, &truncated, &dropped)) == 1)
            lf__exporter_service(c);
        if (rc == 0) {
            lf__exporter_service(c);
            rc = lf__encode_end(&x->enc, &e, &body, &dropped);
        }
        if (rc) {
            lf__count(&c->n.dropped_nomem, dropped);
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
            lf__count(&c->n.dropped_nomem, n);
            continue;
        }
        lf__count(&c->n.truncated, truncated);
        if (dropped) {
            lf__count(&c->n.rejected, dropped);
            lf__log(c, LF_LOG_WARN,
                    "%llu observations could not be cut down to %zu bytes and "
                    "were dropped",
                    (unsigned long long)dropped, c->conf.max_event_bytes);
        }
        if (!body.nrec) {
            free(body.data);
            continue;
        }
        struct lf__batch *b = lf__batch_new();
        if (!b) {
            lf__count(&c->n.dropped_nomem, body.nrec);
            free(body.data);
            continue;
        }
        b->endpoint = c->conf.transport;
        b->nrec = body.nrec;
        b->qseq_min = qmin;
        b->body = body.data;
        b->len = body.len;
        b->gz = body.gz;
        lf__pending_write_ahead(c, b);
        lf__pending_append(x, b);
    }
    lf__redactor_free(red);
    lf__exp_return_recs(c);
}

/* ---- sending --------------------------------------------------------------------------- */

/* The backoff rule (outcome.c) with a random jitter. */
static int64_t backoff_ns(int attempts, long retry_after_ms)
{
    uint8_t r[2];
    lf__random_bytes(r, 2);
    return lf__backoff_ns(attempts, retry_after_ms, (unsigned)(r[0] << 8 | r[1]));
}

static const char *body_excerpt(const struct lf__http_result *res, char *out, size_t n)
{
    if (!res->body || !res->body_len) return "no reason given";
    size_t k = 0;
    for (size_t i = 0; i < res->body_len && k + 1 < n; i++) {
        char ch = res->body[i];
        out[k++] = (ch == '\n' || ch == '\r' || ch == '\t') ? ' ' : ch;
    }
    out[k] = '\0';
    return out;
}

enum outcome { SENT, RETRY_LATER, GIVE_UP, REQUEUED };

/* Sends the head batch once and settles it. */
/* A delivered batch: counted (a 207's events one by one), retired, and its retryable
 * events queued first; the spool replayed if this run spooled anything. */
static enum outcome settle_delivered(struct lf_client *c, struct lf__batch *b,
                                     const struct lf__http_result *res, int stopping)
{
    struct lf__exp *x = c->exp;
    uint32_t rejected = 0;
    struct lf__batch *retry = NULL;
    if (res->status == 207 && b->endpoint == LF_TRANSPORT_INGESTION)
        rejected = lf__rebatch_multi_status(c, b, res->body, &retry);
    uint32_t later = retry ? retry->nrec : 0;
    uint32_t ok = b->nrec > rejected + later ? b->nrec - rejected - later : 0;
    lf__count(&c->n.rejected, rejected);
    lf__count(&c->n.delivered, ok);
    if (b->spool_path && !b->ahead) lf__count(&c->n.replayed, ok);
    x->last_no_answer = 0;
    lf__pending_retire(c, b);
    if (retry) {
        retry->next = x->head;
        x->head = retry;
        if (!x->tail) x->tail = retry;
        x->bytes += retry->len;
        retry->next_try = lf__mono_ns() + backoff_ns(retry->attempts, -1);
    }
    if (x->spooled_this_run && !stopping) {
        x->spooled_this_run = 0;
        lf__pending_queue_spool_files(c); /* the server is back: deliver what we spooled */
    }
    return SENT;
}

/* The head batch read from its spool file if it is one not read yet; 0, or -1 when the
 * file is gone or another process has it (the batch is then dropped from the line). */
static int load_spooled(struct lf_client *c, struct lf__batch *b)
{
    struct lf__exp *x = c->exp;
    if (!b->spool_path || b->body) return 0;
    if (b->spool_fd < 0) b->spool_fd = lf__spool_claim(b->spool_path);
    if (b->spool_fd < 0 ||
        lf__spool_read(b->spool_fd, c->conf.max_request_bytes * 2, &b->body, &b->len)) {
        lf__log(c, LF_LOG_DEBUG, "spool file %s: gone, or another process has it", b->spool_path);
        lf__pending_unlink_head(x);
        lf__batch_free(b);
        return -1;
    }
    x->bytes += b->len;
    return 0;
}

/* Sends the head batch once and settles it by what the answer means (outcome.c). */
static enum outcome send_head(struct lf_client *c, int stopping)
{
    struct lf__exp *x = c->exp;
    struct lf__batch *b = x->head;
    struct lf__http_result res;
    char excerpt[320];
    enum outcome o = SENT;

    if (load_spooled(c, b)) return SENT;
    const char *url =
        b->endpoint == LF_TRANSPORT_OTLP ? "/api/public/otel/v1/traces" : "/api/public/ingestion";
    lf__count(&c->n.requests, 1);
    if (b->attempts) lf__count(&c->n.retries, 1);
    b->attempts++;
    enum lf__http_step step = LF__HTTP_FAILED;
    if (lf__http_begin(c->http, url, b->body, b->len, b->gz, c->conf.request_timeout_ms, &res) == 0)
        while ((step = lf__http_step(c->http, &res)) == LF__HTTP_AGAIN)
            lf__exporter_service(c); /* a slow request does not hold up spilling */
    int st = step == LF__HTTP_DONE ? res.status : 0;
    if (st) atomic_store(&c->n.last_http_status, st);
    lf__log(c, LF_LOG_DEBUG, "POST %s: %u observations, %zu bytes: %d %s", url, b->nrec, b->len, st,
            st ? "" : res.error);

    switch (lf__outcome_of(st)) {
    case LF__OUT_DELIVERED:
        o = settle_delivered(c, b, &res, stopping);
        break;
    case LF__OUT_TOO_LARGE:
        lf__log_once(c, LF__REPORT_413, LF_LOG_INFO,
                     "the server refused a %zu-byte request as too large; splitting requests",
                     b->len);
        if (lf__rebatch_too_large(c, b) == 0) {
            o = REQUEUED;
            break;
        }
        lf__count(&c->n.rejected, b->nrec);
        lf__log(c, LF_LOG_WARN,
                "an observation is too large for the server even when cut "
                "down; dropped");
        lf__pending_retire(c, b);
        break;
    case LF__OUT_REJECTED:
        lf__count(&c->n.rejected, b->nrec);
        lf__log_once(c, LF__REPORT_400, LF_LOG_WARN,
                     "the server rejected %u observations (HTTP %d): %s; not retried", b->nrec, st,
                     body_excerpt(&res, excerpt, sizeof(excerpt)));
        lf__pending_retire(c, b);
        break;
    case LF__OUT_BLOCKED:
        x->blocked = 1;
        lf__log_once(c, LF__REPORT_BLOCKED, LF_LOG_WARN,
                     "the server refused the data (HTTP %d: %s); check LANGFUSE_HOST and the "
                     "keys. Nothing more is sent this run; it is spooled for a later one",
                     st, body_excerpt(&res, excerpt, sizeof(excerpt)));
        o = GIVE_UP;
        break;
    case LF__OUT_RETRY:
        x->last_no_answer = st == 0;
        if (b->attempts > c->conf.max_retries || (stopping && res.aborted)) {
            lf__log(c, LF_LOG_WARN, "giving up on %u observations after %d attempts (%s%s)",
                    b->nrec, b->attempts, st ? "HTTP " : "", st ? "error status" : res.error);
            o = GIVE_UP;
            break;
        }
        b->next_try = lf__mono_ns() + backoff_ns(b->attempts, res.retry_after_ms);
        lf__log(c, LF_LOG_DEBUG, "will retry in %lld ms",
                (long long)((b->next_try - lf__mono_ns()) / 1000000));
        o = RETRY_LATER;
        break;
    }
    lf__http_result_free(&res);
    return o;
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
            lf__pending_abandon_rest(
                c); /* each spool write fsyncs twice: a slow disk could overrun */
            return;
        }
        if (stopping) {
            if (b->spool_path && !b->body) {
                /* unsent spool files stay where they are */
                lf__pending_unlink_head(x);
                lf__batch_free(b);
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
            if (stopping && !atomic_load(&c->abort_at_ns)) atomic_store(&c->abort_at_ns, spool_by);
            enum outcome o = send_head(c, stopping);
            if (o == SENT || o == REQUEUED) continue;
            if (o == RETRY_LATER && !stopping) return;
            if (o == RETRY_LATER && stopping && x->head == b && b->next_try < spool_by &&
                !x->last_no_answer) {
                /* the server answers: one more try now if the deadline allows */
                b->next_try = 0;
                continue;
            }
        }
        lf__pending_unlink_head(x);
        lf__pending_spool(c, b,
                          stopping ? "shutdown deadline" : "the server did not accept the data");
    }
}

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
        /* A few dozen records at a time, spilling between them if the queue asks to (the
         * spill file is appended to only: what is being read stays put). */
        struct lf_obs *list = NULL, **tail = &list;
        size_t got = 0;
        while (x->spill.nrec && got < want) {
            *tail = lf__spill_read(&x->spill, want - got, 64, lost);
            for (; *tail; tail = &(*tail)->next)
                got += lf__rec_size(*tail);
            lf__exporter_service(c);
        }
        pthread_mutex_lock(&c->mu);
        return list;
    }
    lf__exp_detach_queue_locked(c);
    struct lf_obs *head = x->bl_head, *last = NULL, *r = head;
    size_t bytes = 0;
    while (r && (bytes < want || !last)) {
        bytes += lf__rec_size(r);
        last = r;
        r = r->next;
    }
    if (!last) return NULL;
    x->bl_head = r;
    if (!r) x->bl_tail = NULL;
    last->next = NULL;
    x->bl_bytes -= bytes;
    atomic_store(&c->held_bytes, x->bl_bytes);
    return head;
}

/* When the exporter must look again by itself. With an empty queue that is one interval
 * from now: the recording path signals only when a batch fills, so an idle exporter ticks
 * once per interval to pick up a trickle, costing one wake-up per second. */
static int64_t next_due(struct lf_client *c, int64_t now)
{
    struct lf__exp *x = c->exp;
    int64_t interval = (int64_t)c->conf.flush_interval_ms * 1000000;
    int64_t t = c->qcount ? x->last_take + interval : now + interval;
    if (x->head && !x->blocked && x->head->next_try < t) t = x->head->next_try;
    return t;
}

static int work_ready(struct lf_client *c, int64_t now)
{
    struct lf__exp *x = c->exp;
    if (c->stopping) return 1;
    if (c->qcount && (c->flushing || c->qcount >= (size_t)c->conf.flush_at ||
                      c->qbytes >= c->conf.max_request_bytes / 2 ||
                      now - x->last_take >= (int64_t)c->conf.flush_interval_ms * 1000000))
        return 1;
    if (x->head && (x->blocked || x->head->next_try <= now)) return 1;
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

void *lf__exporter_main(void *arg)
{
    struct lf_client *c = arg;
    struct lf__exp *x = c->exp;

    /* Signals belong to the application's threads. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);

    if (!c->http)
        lf__log(c, LF_LOG_ERROR,
                "no HTTP connection state (out of memory?); everything will be "
                "spooled");
    x->blocked = x->blocked || !c->http;
    if (c->conf.spool_replay) lf__pending_queue_spool_files(c);
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
            lf__count(&c->n.dropped_nomem, lost);
            lf__log(c, LF_LOG_WARN,
                    "the spill file could not be read back: %llu observations "
                    "lost",
                    (unsigned long long)lost);
        }
        if (late) lf__pending_abandon_rest(c);
        if (c->conf.spool_dir) lf__journal_note_roots(c, &x->open, list);
        if (list) {
            x->last_take = now;
            encode_records(c, list);
        }
        if (c->conf.spool_dir) {
            lf__journal_update(c, &x->open); /* after the roots' write-ahead copies */
            x->last_journal = lf__mono_ns();
        }
        if (replay && !x->blocked) lf__pending_queue_spool_files(c);
        lf__pending_bound(c);
        process_pending(c, stopping, deadline);
        LF_INVARIANT(!x->head == !x->tail);

        pthread_mutex_lock(&c->mu);
        c->done_below = lf__pending_finished_below(c);
        if (!lf__pending_has_spool_files(x)) c->replay_done = c->replay_taken;
        pthread_cond_broadcast(&c->done);
        if (stopping && !c->head && !x->head && !x->spill.nrec && !x->bl_head) break;
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
    if (!c->conf.spool_dir) return LF_OK;
    pthread_mutex_lock(&c->mu);
    uint64_t ticket = ++c->replay_ticket;
    pthread_cond_signal(&c->wake);
    while (c->replay_done < ticket && !c->stopped && lf__mono_ns() < deadline_ns)
        lf__cond_wait_until(&c->done, &c->mu, deadline_ns);
    pthread_mutex_unlock(&c->mu);
    struct lf__spool_entry *v;
    size_t n;
    if (lf__spool_list(c->conf.spool_dir, &v, &n)) return LF_ERR_IO;
    lf__spool_entries_free(v, n);
    if (n == 0) return LF_OK;
    return lf__mono_ns() >= deadline_ns ? LF_ERR_TIMEOUT : LF_ERR_HTTP;
}
