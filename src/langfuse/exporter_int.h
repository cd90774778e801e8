/*
 * exporter_int.h - what the exporter's files share, and only they: the pending batches and
 * the exporter's state. Only the exporter thread touches any of it.
 *
 *   exporter.c  the loop: wait, take, encode, send, settle each answer
 *   outcome.c   what an HTTP answer means, and the backoff rule (pure)
 *   pending.c   the batches waiting to go, their spool files (write-ahead, spooling,
 *               replay), the backlog and the spill file
 *   rebatch.c   a batch a server refused in part, re-encoded (a 413's split, a 207's events)
 */
#ifndef LF_EXPORTER_INT_H
#define LF_EXPORTER_INT_H

#include <stdatomic.h>
#include <stdint.h>

#include "encode.h"
#include "internal.h"
#include "spill.h"
#include "spool.h"

#define LF__GZIP_LEVEL 1 /* for re-encoded bodies, as the encoder's (encode.c) */

struct lf__batch {
    struct lf__batch *next;
    int endpoint; /* LF_TRANSPORT_* */
    char *body;   /* wire bytes, owned; NULL for a spool file not read yet */
    size_t len;
    int gz;
    uint32_t nrec;
    uint64_t qseq_min; /* flush accounting; UINT64_MAX for spool files */
    int attempts;
    int64_t next_try; /* CLOCK_MONOTONIC ns */
    char *spool_path; /* on disk as this file (owned); deleted once delivered or refused */
    int spool_fd;     /* its claim while held, else -1 */
    int ahead;        /* the file is this run's write-ahead copy, not an earlier run's */
};

struct lf__exp {
    struct lf__batch *head, *tail;
    size_t bytes;              /* wire bytes of pending batches */
    int blocked;               /* 401/403/404 seen: spool everything */
    atomic_int last_no_answer; /* the last failed attempt got no HTTP answer */
    int spooled_this_run;      /* replay the spool after the next success */
    int64_t last_take;
    struct lf__encoder enc;
    struct lf__spill spill;
    struct lf__spool spool; /* the spool's size as this writer knows it; see spool.h */
    /* Records taken from the queue but not encoded yet, oldest first. Taking the whole
     * queue at once keeps the queue lock held for nanoseconds, so recording threads never
     * wait on the exporter; their bytes stay counted in c->held_bytes. */
    struct lf_obs *bl_head, *bl_tail;
    size_t bl_bytes;
    struct lf_obs *done_recs; /* finished records, returned to the pool in one go */
    struct lf__trace *open;   /* traces whose root is open, with their journals */
    int64_t last_journal;     /* when their journals were last brought up to date */
};

static inline void lf__count(atomic_uint_fast64_t *n, uint64_t v)
{
    atomic_fetch_add_explicit(n, v, memory_order_relaxed);
}

/* ---- pending.c ---- */

/* A finished record, collected for the pool (lf__enc's release hook); and the collected
 * records given back to the pool in one go. */
void lf__exp_release_rec(void *ud, struct lf_obs *r);
void lf__exp_return_recs(struct lf_client *c);
/* A zeroed batch holding no spool file (spool_fd -1); NULL when memory ran out. */
struct lf__batch *lf__batch_new(void);
/* Frees a batch and releases its spool file's claim (the file stays). Accepts NULL. */
void lf__batch_free(struct lf__batch *b);
void lf__pending_append(struct lf__exp *x, struct lf__batch *b);
/* Unlinks the head batch (the caller keeps it). */
void lf__pending_unlink_head(struct lf__exp *x);
void lf__pending_retire(struct lf_client *c, struct lf__batch *b);
uint64_t lf__pending_finished_below(struct lf_client *c);
void lf__exp_detach_queue_locked(struct lf_client *c);
/* Serves urgent work, a spill the queue asked for; the exporter calls it wherever it works
 * or waits: its loop, between steps of a request, between records it encodes or reads. */
void lf__exporter_service(struct lf_client *c);
void lf__pending_write_ahead(struct lf_client *c, struct lf__batch *b);
void lf__pending_spool(struct lf_client *c, struct lf__batch *b, const char *why);
void lf__pending_queue_spool_files(struct lf_client *c);
void lf__pending_bound(struct lf_client *c);
void lf__pending_abandon_rest(struct lf_client *c);
/* Whether spool files of earlier runs (not this run's write-ahead copies) are queued. */
int lf__pending_has_spool_files(const struct lf__exp *x);

/* ---- rebatch.c ---- */

/* Replaces batch `b` (the head) by the batches made from it after a 413; 0 if it could be
 * split or shrunk, -1 if not (b is then left as it was). */
int lf__rebatch_too_large(struct lf_client *c, struct lf__batch *b);
/* Reads a 207 answer to `b`: returns the records rejected, and the events to retry as a
 * new batch in *retry (or NULL). */
uint32_t lf__rebatch_multi_status(struct lf_client *c, struct lf__batch *b, const char *resp,
                                  struct lf__batch **retry);

#endif
