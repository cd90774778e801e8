/*
 * journal.c - traces whose root is still open, kept recoverable on disk.
 *
 * Each observation is exported once, when it ends, so a trace's root goes out last: a
 * process killed before that (SIGKILL, the OOM killer, a crash) would leave a trace with no
 * root, no input, no output and no error to say what happened. So while a root is open the
 * exporter keeps a journal of it in the spool: the root as it would be exported if the
 * process died now (level ERROR, the configured orphan message, ending at the latest end
 * time of the trace's observations), rewritten within a flush interval of each change and
 * claimed with flock() by this process. When the root itself is encoded (and so written
 * ahead, see exporter.c), the journal is removed. A journal nobody holds belongs to a
 * process that died: the next client with that spool adopts it as an ordinary spool file,
 * and the trace is completed when it is delivered.
 *
 * Threads: lf_trace_start() links new traces into c->new_traces under c->mu; everything
 * else here runs on the exporter thread, on a list only it touches.
 */
#include "journal.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "encode.h"
#include "json.h"
#include "spool.h"
#include "trace.h"

void lf__journal_open(struct lf_client *c, struct lf__trace *t)
{
    if (!c->conf.spool_dir) return;
    pthread_mutex_lock(&c->mu);
    t->next_open = c->new_traces;
    c->new_traces = lf__trace_ref(t); /* journaled within a flush interval (exporter.c) */
    pthread_mutex_unlock(&c->mu);
}

/* Moves the traces started since the last cycle into the exporter's own list. */
static void take_new(struct lf_client *c, struct lf__trace **open)
{
    pthread_mutex_lock(&c->mu);
    struct lf__trace *t = c->new_traces;
    c->new_traces = NULL;
    pthread_mutex_unlock(&c->mu);
    while (t) {
        struct lf__trace *next = t->next_open;
        t->next_open = *open;
        *open = t;
        t = next;
    }
}

void lf__journal_note_roots(struct lf_client *c, struct lf__trace **open, const struct lf_obs *list)
{
    take_new(c, open);
    for (const struct lf_obs *r = list; r; r = r->next) {
        if (!(r->flags & LF__REC_ROOT)) continue;
        for (struct lf__trace *t = *open; t; t = t->next_open)
            if (!memcmp(t->trace_id, r->trace_id, 16) && !memcmp(t->span_id, r->span_id, 8))
                t->root_out = 1;
    }
}

/* The root as it would be exported if the process died now; NULL without memory. */
static struct lf_obs *stand_in(struct lf_client *c, struct lf__trace *t, uint64_t *version)
{
    struct lf_obs *r = lf__calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->client = c;
    memcpy(r->trace_id, t->trace_id, 16);
    memcpy(r->span_id, t->span_id, 8);
    r->type = LF_OBS_SPAN;
    r->flags = LF__REC_ROOT | LF__REC_ENDED;
    uint8_t error = LF_LEVEL_ERROR;
    struct lf__field f;
    int rc = lf__trace_copy_to(t, r, version);
    pthread_mutex_lock(&t->mu);
    r->start_ns = t->start_ns;
    r->end_ns = t->last_end_ns > t->start_ns ? t->last_end_ns : t->start_ns;
    pthread_mutex_unlock(&t->mu);
    if (lf__rec_last(r, LF__T_NAME, &f))
        rc |= lf__rec_put(r, LF__F_NAME, LF__V_STR, NULL, 0, f.val, f.vlen);
    if (!lf__rec_last(r, LF__T_OUTPUT, &f)) /* the trace's output (v4 reads the root's) */
        rc |= lf__rec_put(r, LF__F_OUTPUT, LF__V_STR, NULL, 0, c->conf.orphan_message,
                          strlen(c->conf.orphan_message));
    rc |= lf__rec_put(r, LF__F_LEVEL, LF__V_INT, NULL, 0, &error, 1);
    rc |= lf__rec_put(r, LF__F_STATUS, LF__V_STR, NULL, 0, c->conf.orphan_message,
                      strlen(c->conf.orphan_message));
    if (rc) {
        lf__rec_free(r);
        return NULL;
    }
    return r;
}

/* Writes (or rewrites) t's journal. */
static void write_journal(struct lf_client *c, struct lf__trace *t)
{
    uint64_t version = 0;
    struct lf_obs *r = stand_in(c, t, &version);
    if (!r) return;
    struct lf__encoder enc;
    struct lf__body body;
    uint64_t truncated = 0, dropped = 0;
    struct lf__redactor *red = lf__redactor_get(c);
    struct lf__enc e = {&c->conf, red, lf_now_ns(), NULL, NULL};
    lf__encoder_init(&enc);
    if (lf__encode_body(&enc, &e, &r, &body, &truncated, &dropped) == 0 && body.nrec) {
        char hex[33];
        lf__hex(hex, t->trace_id, 16);
        if (lf__spool_journal_write(c->conf.spool_dir, hex, c->conf.transport, body.gz, body.data,
                                    body.len, &t->journal_fd, &t->journal_path) == 0)
            t->journaled = version;
        free(body.data);
    }
    lf__rec_free(r); /* what the encoder left of the list, if anything */
    lf__encoder_free(&enc);
    lf__redactor_free(red);
}

void lf__journal_update(struct lf_client *c, struct lf__trace **open)
{
    take_new(c, open);
    for (struct lf__trace **p = open; *p;) {
        struct lf__trace *t = *p;
        if (t->root_out) {
            lf__spool_journal_remove(&t->journal_fd, &t->journal_path);
            *p = t->next_open;
            lf__trace_unref(t);
            continue;
        }
        pthread_mutex_lock(&t->mu);
        uint64_t version = t->version;
        pthread_mutex_unlock(&t->mu);
        if (version != t->journaled) write_journal(c, t);
        p = &t->next_open;
    }
}

void lf__journal_close(struct lf_client *c, struct lf__trace **open)
{
    take_new(c, open);
    while (*open) {
        struct lf__trace *t = *open;
        *open = t->next_open;
        if (t->root_out)
            lf__spool_journal_remove(&t->journal_fd, &t->journal_path);
        else
            lf__spool_journal_release(&t->journal_fd, &t->journal_path); /* an orphan now */
        lf__trace_unref(t);
    }
}
