/*
 * internal.h - the client object shared by the library's modules.
 *
 * Ownership: the caller's threads own observation handles until lf_obs_end() links them
 * into the queue; from then on the exporter thread owns them. The queue fields and the
 * flush bookkeeping are guarded by `mu`; counters are atomics so that lf_client_stats()
 * never blocks the exporter. Configuration is immutable after lf_client_new().
 */
#ifndef LF_INTERNAL_H
#define LF_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "langfuse/langfuse.h"
#include "record.h"
#include "http.h"
#include "redact.h"

struct lf__exp;
struct lf__http;

struct lf__conf {
    char *public_key, *secret_key, *host, *environment, *release, *service_name, *spool_dir;
    char *orphan_message;
    enum lf_transport transport;
    uint64_t sample_bound; /* trace ids whose low 64 bits are below this are sampled */
    int sample_all;
    int flush_at, flush_interval_ms, request_timeout_ms, flush_timeout_ms, max_retries;
    size_t max_queue_bytes, max_request_bytes, max_event_bytes, spool_max_bytes;
    int gzip, spool_replay, mask_messages, debug;
    lf_mask_fn mask;
    void *mask_ud;
    lf_log_fn log;
    void *log_ud;
};

struct lf__counters {
    atomic_uint_fast64_t recorded, delivered, dropped_queue, dropped_nomem, dropped_closed,
        rejected, spooled, spool_dropped, replayed, truncated, requests, retries;
    atomic_uint_fast64_t spilled;
    atomic_uint_fast64_t queue_peak_bytes;
    atomic_int last_http_status;
};

/* Problems reported once per client (lf__log_once), then only counted. */
enum lf__report {
    LF__REPORT_400,
    LF__REPORT_BLOCKED,
    LF__REPORT_413,
    LF__REPORT_SPOOL,
    LF__REPORT_SPILL,
    LF__REPORT_QUEUE_FULL,
    LF__REPORT_LEGACY,
    LF__SLOTS
};

struct lf_client {
    struct lf__conf conf;
    atomic_int enabled;    /* configured and not shut down; read without the lock */
    struct lf__http *http; /* created with the client (in a forked child: when its exporter
                              starts); used by the exporter thread only */
    struct lf__http_opts http_opts;
    char *userpwd; /* "public:secret", wiped when freed */

    pthread_mutex_t mu;
    pthread_cond_t wake; /* exporter: work arrived, a flush or stop was asked */
    pthread_cond_t done; /* flushers: done_below advanced or the exporter stopped */
    struct lf_obs *head, *tail;
    size_t qcount, qbytes;
    struct lf__trace *new_traces; /* started since the exporter's last cycle (journal.c) */
    uint64_t enq_seq;             /* sequence number of the next enqueued record */
    uint64_t done_below;          /* every record with qseq below this is finished */
    int flushing;                 /* number of threads in flush */
    int stopping;                 /* shutdown asked: exporter drains and exits */
    int hurried;                  /* lf_client_hurry(): shutdown's deadline is as short as can be */
    int stopped;                  /* exporter exited */
    int abandoned;                /* shutdown's deadline passed with the exporter still running:
                                     it was detached, and lf_client_free() keeps the client */
    int64_t stop_deadline_ns;
    int thread_running;
    pthread_t thread;
    int fork_gen; /* the fork generation the thread belongs to */

    atomic_size_t held_bytes; /* bytes the exporter holds taken but not yet encoded */
    size_t spill_at;          /* queue + held bytes that make the exporter spill; 0: never */
    int spill_signaled;       /* the exporter was told about the current crossing */
    atomic_int spill_wanted;  /* read by the exporter wherever it waits or works */
    /* lf_client_replay_spool() takes a ticket; the exporter queues the spool's files for the
     * tickets asked so far (replay_taken) and, once none of them is pending, says they are
     * served (replay_done). */
    uint64_t replay_ticket, replay_taken, replay_done;
    struct lf__exp *exp; /* the exporter's own state, touched only by its thread */

    atomic_llong abort_at_ns; /* in-flight HTTP gives up at this time; 0: no limit */

    /* Finished records kept for reuse: the exporter gives them back here, recording takes
     * them from here. Freeing on the exporter what recording threads allocated makes both
     * fight over one malloc arena lock (measured: 24 us per free during a burst); reuse
     * takes malloc out of the steady state. Bounded by pool_max bytes. */
    pthread_mutex_t pool_mu;
    struct lf_obs *pool;
    size_t pool_bytes, pool_max;

    pthread_mutex_t red_mu; /* guards `red` swaps; users take a reference under it */
    struct lf__redactor *red;

    struct lf__counters n;
    struct lf_client *next_client;  /* global list, for fork handling */
    int reported_status[LF__SLOTS]; /* once-only reports, by enum lf__report */
};

/* ids.c: clocks and condition variables on CLOCK_MONOTONIC, so that deadlines do not move
 * when the wall clock is set. */
void lf__cond_init(pthread_cond_t *cv);
/* Waits on cv until signalled or the CLOCK_MONOTONIC time `deadline_ns`. */
int lf__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ns);
int64_t lf__mono_ns(void);

/* ids.c */
void lf__random_bytes(uint8_t *out, size_t n);
/* In a forked child: the random source is the child's own from now on. */
void lf__ids_after_fork(void);
int lf__sampled(const struct lf__conf *conf, const uint8_t trace_id[16]);
uint64_t lf__sample_bound(double rate, int *all);

/* log.c: formats, redacts with the client's secrets and hands the line to the sink. */
void lf__log(struct lf_client *c, enum lf_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Logs once per client per `slot` (an enum lf__report). */
void lf__log_once(struct lf_client *c, int slot, enum lf_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* queue.c */
void lf__enqueue(struct lf_client *c, struct lf_obs *r);
/* A record from the pool (fields zeroed, its data buffer kept), or a new one; NULL when
 * memory ran out. */
struct lf_obs *lf__obs_alloc(struct lf_client *c);
/* Gives a list of finished records (linked by ->next) back to the pool; what the pool
 * cannot take is freed. */
void lf__obs_recycle(struct lf_client *c, struct lf_obs *list);

/* client.c */
/* Starts the client's exporter thread unless it runs (in this process: after a fork the
 * child's is started here). 0, or -1 if the thread cannot start. Called with c->mu held. */
int lf__client_ensure_exporter_locked(struct lf_client *c);
/* A reference to the current redactor (NULL if none), to be dropped with
 * lf__redactor_free() when done: one replaced meanwhile stays valid until then. */
struct lf__redactor *lf__redactor_get(struct lf_client *c);

/* exporter.c */
void *lf__exporter_main(void *arg);
int lf__replay_spool_now(struct lf_client *c, int64_t deadline_ns);

#endif
