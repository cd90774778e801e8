/*
 * client.c - the client's life cycle: creation, the exporter thread's start, flush and
 * shutdown, fork handling, secrets and statistics. The queue and the record pool, which
 * the recording threads touch, are queue.c's.
 *
 * Fork: a child inherits the client's memory but not its exporter thread. The atfork child
 * handler resets the locks, forgets the parent's queue (the parent sends it) and lets the
 * next record start a fresh exporter; the parent's libcurl handle is never touched in the
 * child, since its sockets belong to the parent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "config.h"
#include "exporter.h"
#include "internal.h"
#include "json.h"

/* ---- global client list, for fork handling ---------------------------------------- */

static pthread_mutex_t clients_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lf_client *clients;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int fork_gen;

static void atfork_prepare(void)
{
    pthread_mutex_lock(&clients_mu);
    for (struct lf_client *c = clients; c; c = c->next_client) {
        pthread_mutex_lock(&c->red_mu);
        pthread_mutex_lock(&c->pool_mu);
        pthread_mutex_lock(&c->mu);
    }
}

static void atfork_parent(void)
{
    for (struct lf_client *c = clients; c; c = c->next_client) {
        pthread_mutex_unlock(&c->mu);
        pthread_mutex_unlock(&c->pool_mu);
        pthread_mutex_unlock(&c->red_mu);
    }
    pthread_mutex_unlock(&clients_mu);
}

static void atfork_child(void)
{
    fork_gen++;
    lf__ids_after_fork();
    for (struct lf_client *c = clients; c; c = c->next_client) {
        pthread_mutex_init(&c->mu, NULL);
        pthread_mutex_init(&c->red_mu, NULL);
        pthread_mutex_init(&c->pool_mu, NULL);
        lf__cond_init(&c->wake);
        lf__cond_init(&c->done);
        /* The parent delivers what it had queued; the child starts empty. The records'
         * memory is the child's copy and is released here. */
        struct lf_obs *r = c->head;
        while (r) {
            struct lf_obs *next = r->next;
            lf__rec_free(r);
            r = next;
        }
        c->head = c->tail = NULL;
        c->qcount = c->qbytes = 0;
        c->done_below = c->enq_seq;
        c->flushing = 0;
        c->thread_running = 0;
        lf__exporter_forget_after_fork(c);
    }
    pthread_mutex_init(&clients_mu, NULL);
}

static void global_init(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* ---- redactor ------------------------------------------------------------------------ */

struct lf__redactor *lf__redactor_get(struct lf_client *c)
{
    pthread_mutex_lock(&c->red_mu);
    struct lf__redactor *r = lf__redactor_ref(c->red);
    pthread_mutex_unlock(&c->red_mu);
    return r;
}

int lf_client_add_secret(lf_client *c, const char *value)
{
    if (!c || !value) return LF_ERR_INVALID;
    size_t len = strlen(value);
    if (len < LF__SECRET_MIN) return LF_ERR_INVALID;
    pthread_mutex_lock(&c->red_mu);
    struct lf__redactor *old = c->red, *nr = old ? lf__redactor_with(old, value, len) : NULL;
    if (nr) c->red = nr;
    pthread_mutex_unlock(&c->red_mu);
    if (nr) {
        lf__redactor_free(old); /* the client's reference; users of it keep theirs */
        return LF_OK;
    }
    /* The value cannot be kept out of what is exported: export nothing more. */
    if (c->enabled) {
        c->enabled = 0;
        lf__log(c, LF_LOG_ERROR,
                "out of memory registering a secret: tracing is off for "
                "this client, so that the value cannot leave");
    }
    return LF_ERR_NOMEM;
}

/* ---- life cycle ------------------------------------------------------------------------ */

static char *dup_or_null(const char *s, int *oom)
{
    if (!s) return NULL;
    char *d = lf__strdup(s);
    if (!d) *oom = 1;
    return d;
}

static void conf_free(struct lf__conf *k)
{
    free(k->public_key);
    lf__free_secret(k->secret_key);
    free(k->host);
    free(k->environment);
    free(k->release);
    free(k->service_name);
    free(k->spool_dir);
    free(k->orphan_message);
}

static int conf_copy(struct lf__conf *k, const struct lf_config *cfg)
{
    int oom = 0;
    memset(k, 0, sizeof(*k));
    k->public_key = dup_or_null(cfg->public_key, &oom);
    k->secret_key = dup_or_null(cfg->secret_key, &oom);
    k->environment = dup_or_null(cfg->environment, &oom);
    k->release = dup_or_null(cfg->release, &oom);
    k->service_name = dup_or_null(cfg->service_name ? cfg->service_name : "liblangfuse", &oom);
    k->spool_dir = dup_or_null(cfg->spool_dir && *cfg->spool_dir ? cfg->spool_dir : NULL, &oom);
    k->orphan_message = dup_or_null(cfg->orphan_message ? cfg->orphan_message
                                                        : "the program ended without ending "
                                                          "this trace",
                                    &oom);
    if (cfg->host) {
        /* Accept a trailing slash: "http://h:3000/" and "http://h:3000" mean one server. */
        size_t n = strlen(cfg->host);
        while (n && cfg->host[n - 1] == '/')
            n--;
        k->host = lf__strndup(cfg->host, n);
        if (!k->host) oom = 1;
    }
    k->transport = cfg->transport;
    k->sample_bound = lf__sample_bound(cfg->sample_rate, &k->sample_all);
    k->flush_at = cfg->flush_at;
    k->flush_interval_ms = cfg->flush_interval_ms;
    k->request_timeout_ms = cfg->request_timeout_ms;
    k->flush_timeout_ms = cfg->flush_timeout_ms;
    k->max_retries = cfg->max_retries;
    k->max_queue_bytes = cfg->max_queue_bytes;
    k->max_request_bytes = cfg->max_request_bytes;
    k->max_event_bytes = cfg->max_event_bytes;
    k->spool_max_bytes = cfg->spool_max_bytes;
    k->gzip = cfg->gzip;
    k->spool_replay = cfg->spool_replay;
    k->mask_messages = cfg->mask_messages;
    k->mask = cfg->mask;
    k->mask_ud = cfg->mask_ud;
    k->debug = cfg->debug;
    k->log = cfg->log;
    k->log_ud = cfg->log_ud;
    return oom ? LF_ERR_NOMEM : LF_OK;
}

int lf__client_ensure_exporter_locked(struct lf_client *c)
{
    if (c->thread_running && c->fork_gen == fork_gen) return 0;
    if (!c->http) {
        /* After fork: the child's connection, made here rather than in the atfork handler.
         * Without one the exporter spools everything (it says so). */
        char err[256];
        c->http = lf__http_new(&c->http_opts, err, sizeof(err));
    }
    c->fork_gen = fork_gen;
    if (pthread_create(&c->thread, NULL, lf__exporter_main, c) != 0) return -1;
    c->thread_running = 1;
    c->stopped = 0;
    return 0;
}

lf_client *lf_client_new(const struct lf_config *caller)
{
    pthread_once(&global_once, global_init);
    struct lf_config full;
    const struct lf_config *cfg = &full;
    int unset = caller && lf__config_import(&full, caller);
    if (!caller || unset) lf__config_defaults(&full);
    if (unset) full.enabled = 0; /* said below, once the client can log */
    struct lf_client *c = lf__calloc(1, sizeof(*c));
    if (!c) return NULL;
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->red_mu, NULL);
    pthread_mutex_init(&c->pool_mu, NULL);
    lf__cond_init(&c->wake);
    lf__cond_init(&c->done);
    c->stopped = 1;
    if (conf_copy(&c->conf, cfg)) goto fail_conf;
    c->pool_max =
        c->conf.max_queue_bytes / 4 < (2u << 20) ? c->conf.max_queue_bytes / 4 : (2u << 20);
    c->red = lf__redactor_new();
    if (!c->red) goto fail_conf;
    if (lf__exporter_init(c)) goto fail_red;

    if (unset)
        lf__log(c, LF_LOG_WARN,
                "tracing off: struct lf_config was not set up by "
                "lf_config_init()");
    if (!cfg->enabled) return c;
    char why[256];
    if (lf__config_check(cfg, why, sizeof(why))) {
        lf__log(c, LF_LOG_WARN, "tracing off: %s", why);
        return c;
    }
    /* Keys too short to register (LF_ERR_INVALID) are test keys; only memory matters. */
    if (lf_client_add_secret(c, cfg->secret_key) == LF_ERR_NOMEM ||
        lf_client_add_secret(c, cfg->public_key) == LF_ERR_NOMEM)
        goto fail_exporter;
    if (lf__exporter_connect(c, why, sizeof(why))) {
        lf__log(c, LF_LOG_WARN, "tracing off: %s", why);
        return c;
    }
    pthread_mutex_lock(&clients_mu);
    c->next_client = clients;
    clients = c;
    pthread_mutex_unlock(&clients_mu);

    pthread_mutex_lock(&c->mu);
    int started = lf__client_ensure_exporter_locked(c);
    pthread_mutex_unlock(&c->mu);
    if (started) {
        lf__log(c, LF_LOG_WARN, "tracing off: cannot start the exporter thread (%s)",
                strerror(errno));
        return c;
    }
    c->enabled = 1;
    lf__log(c, LF_LOG_DEBUG, "client started: %s, transport %s, spool %s", c->conf.host,
            c->conf.transport == LF_TRANSPORT_OTLP ? "otlp" : "ingestion",
            c->conf.spool_dir ? c->conf.spool_dir : "(none)");
    return c;

fail_exporter:
    lf__exporter_cleanup(c);
    lf__free_secret(c->userpwd);
fail_red:
    lf__redactor_free(c->red);
fail_conf:
    conf_free(&c->conf);
    free(c);
    return NULL;
}

lf_client *lf_client_new_from_env(void)
{
    struct lf_config cfg;
    char err[256];
    lf_config_init(&cfg);
    cfg.enabled = 0; /* only LANGFUSE_ENABLED switches the env-configured client on */
    if (lf_config_from_env(&cfg, err, sizeof(err))) {
        lf_client *c;
        cfg.enabled = 0;
        c = lf_client_new(&cfg);
        lf__log(c, LF_LOG_WARN, "tracing off: %s", err);
        return c;
    }
    return lf_client_new(&cfg);
}

int lf_client_enabled(const lf_client *c)
{
    return c && c->enabled;
}

/* ---- flush and shutdown -------------------------------------------------------------- */

/* Waits until every record enqueued before the call is finished or the deadline passed.
 * Called with c->mu held. */
static int wait_finished_locked(struct lf_client *c, int64_t deadline)
{
    uint64_t target = c->enq_seq;
    c->flushing++;
    pthread_cond_signal(&c->wake);
    int rc = LF_OK;
    while (c->done_below < target && !c->stopped) {
        if (lf__mono_ns() >= deadline) {
            rc = LF_ERR_TIMEOUT;
            break;
        }
        lf__cond_wait_until(&c->done, &c->mu, deadline);
    }
    if (c->done_below < target) rc = LF_ERR_TIMEOUT;
    c->flushing--;
    return rc;
}

/* Exports that ended anywhere but at the server. */
static uint64_t undelivered(struct lf_client *c)
{
    return atomic_load(&c->n.spooled) + atomic_load(&c->n.spool_dropped) +
           atomic_load(&c->n.rejected) + atomic_load(&c->n.dropped_queue) +
           atomic_load(&c->n.dropped_nomem);
}

int lf_client_flush(lf_client *c, int timeout_ms)
{
    if (!c || !c->enabled) return LF_ERR_DISABLED;
    int64_t deadline =
        lf__mono_ns() + (int64_t)(timeout_ms < 0 ? c->conf.flush_timeout_ms : timeout_ms) * 1000000;
    uint64_t lost = undelivered(c);
    pthread_mutex_lock(&c->mu);
    int rc = wait_finished_locked(c, deadline);
    pthread_mutex_unlock(&c->mu);
    return rc ? rc : undelivered(c) != lost ? LF_ERR_HTTP : LF_OK;
}

int lf_client_shutdown(lf_client *c, int timeout_ms)
{
    if (!c) return LF_ERR_DISABLED;
    int64_t deadline =
        lf__mono_ns() + (int64_t)(timeout_ms < 0 ? c->conf.flush_timeout_ms : timeout_ms) * 1000000;
    pthread_mutex_lock(&c->mu);
    if (!c->thread_running || c->fork_gen != fork_gen) {
        c->enabled = 0;
        c->stopping = 1;
        pthread_mutex_unlock(&c->mu);
        return LF_ERR_DISABLED;
    }
    uint64_t lost = undelivered(c);
    if (c->hurried) {
        int64_t soon = lf__mono_ns() + lf__exporter_spool_reserve_ns(c);
        deadline = soon < deadline ? soon : deadline;
    }
    c->stopping = 1;
    c->stop_deadline_ns = deadline;
    lf__exporter_stop_by(c, deadline);
    pthread_cond_signal(&c->wake);
    int64_t hard = deadline + lf__exporter_grace_ns();
    int rc = wait_finished_locked(c, hard);
    c->enabled = 0;
    /* The deadline is hard: the thread is joined only once it said it stopped. One that
     * has not by then (a write or an allocation that would not return on a starved
     * machine) is left to finish on its own, detached, and the client is kept for it. */
    while (!c->stopped && lf__mono_ns() < hard)
        lf__cond_wait_until(&c->done, &c->mu, hard);
    int stopped = c->stopped;
    pthread_mutex_unlock(&c->mu);
    if (stopped) {
        pthread_join(c->thread, NULL);
    } else {
        pthread_detach(c->thread);
        c->abandoned = 1;
        lf__log(c, LF_LOG_WARN,
                "the exporter did not stop by the shutdown deadline; it is "
                "left to finish on its own");
        rc = LF_ERR_TIMEOUT;
    }
    pthread_mutex_lock(&c->mu);
    c->thread_running = 0;
    pthread_mutex_unlock(&c->mu);
    if (rc == LF_OK && undelivered(c) != lost)
        rc = atomic_load(&c->n.spooled) ? LF_ERR_TIMEOUT : LF_ERR_HTTP;
    return rc;
}

void lf_client_hurry(lf_client *c)
{
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->hurried = 1;
    if (c->stopping && c->thread_running) {
        int64_t soon = lf__mono_ns() + lf__exporter_spool_reserve_ns(c);
        if (soon < c->stop_deadline_ns) {
            c->stop_deadline_ns = soon;
            lf__exporter_stop_by(c, soon);
            atomic_store(&c->abort_at_ns, lf__mono_ns()); /* give up what is in flight */
        }
        pthread_cond_broadcast(&c->wake);
    }
    pthread_mutex_unlock(&c->mu);
}

void lf_client_free(lf_client *c)
{
    if (!c) return;
    lf_client_shutdown(c, -1);
    if (c->abandoned)
        return; /* its exporter still runs and uses it: kept, the one leak by design */
    pthread_mutex_lock(&clients_mu);
    for (struct lf_client **p = &clients; *p; p = &(*p)->next_client)
        if (*p == c) {
            *p = c->next_client;
            break;
        }
    pthread_mutex_unlock(&clients_mu);
    struct lf_obs *r = c->head;
    while (r) {
        struct lf_obs *next = r->next;
        lf__rec_free(r);
        r = next;
    }
    lf__exporter_cleanup(c);
    while (c->pool) {
        struct lf_obs *p = c->pool;
        c->pool = p->next;
        lf__rec_free(p);
    }
    lf__redactor_free(c->red);
    lf__free_secret(c->userpwd);
    conf_free(&c->conf);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->red_mu);
    pthread_mutex_destroy(&c->pool_mu);
    pthread_cond_destroy(&c->wake);
    pthread_cond_destroy(&c->done);
    free(c);
}

static void read_stats(const lf_client *c, struct lf_stats *out);

void lf_client_stats_size(const lf_client *c, struct lf_stats *caller, size_t size)
{
    /* Filled whole here, copied out as far as the caller's struct goes. */
    struct lf_stats full, *out = &full;
    memset(out, 0, sizeof(*out));
    if (c) read_stats(c, out);
    memcpy(caller, out, size < sizeof(full) ? size : sizeof(full));
}

static void read_stats(const lf_client *c, struct lf_stats *out)
{
    struct lf_client *m = (struct lf_client *)c;
    out->recorded = atomic_load(&m->n.recorded);
    out->delivered = atomic_load(&m->n.delivered);
    out->dropped_queue = atomic_load(&m->n.dropped_queue);
    out->dropped_nomem = atomic_load(&m->n.dropped_nomem);
    out->dropped_closed = atomic_load(&m->n.dropped_closed);
    out->rejected = atomic_load(&m->n.rejected);
    out->spooled = atomic_load(&m->n.spooled);
    out->spool_dropped = atomic_load(&m->n.spool_dropped);
    out->replayed = atomic_load(&m->n.replayed);
    out->truncated = atomic_load(&m->n.truncated);
    out->spilled = atomic_load(&m->n.spilled);
    out->requests = atomic_load(&m->n.requests);
    out->retries = atomic_load(&m->n.retries);
    out->queue_peak_bytes = atomic_load(&m->n.queue_peak_bytes);
    out->last_http_status = atomic_load(&m->n.last_http_status);
    pthread_mutex_lock(&m->mu);
    out->queue_bytes = m->qbytes;
    pthread_mutex_unlock(&m->mu);
}

int lf_client_replay_spool(lf_client *c, int timeout_ms)
{
    if (!c || !c->enabled) return LF_ERR_DISABLED;
    int64_t deadline =
        lf__mono_ns() + (int64_t)(timeout_ms < 0 ? c->conf.flush_timeout_ms : timeout_ms) * 1000000;
    return lf__exporter_request_replay(c, deadline);
}

const char *lf_version(void)
{
    return LF_VERSION_STRING;
}

const char *lf_strerror(int err)
{
    switch (err) {
    case LF_OK:
        return "success";
    case LF_ERR_NOMEM:
        return "out of memory";
    case LF_ERR_INVALID:
        return "invalid argument or configuration value";
    case LF_ERR_DISABLED:
        return "the client is disabled";
    case LF_ERR_TIMEOUT:
        return "the deadline passed before everything was delivered";
    case LF_ERR_IO:
        return "a file could not be read or written";
    case LF_ERR_HTTP:
        return "the server refused the data or could not be reached";
    case LF_ERR_PARSE:
        return "malformed input";
    default:
        return "unknown error";
    }
}
