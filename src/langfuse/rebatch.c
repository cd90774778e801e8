/*
 * rebatch.c - a batch that a server refused in part, made into the batches it takes:
 *  - 413: the body is split in two (or, a single item, its largest string halved) and both
 *    halves retried; a request never grows past the cap it was refused at.
 *  - 207 (ingestion): read event by event. 4xx events are rejected and counted, 5xx/429
 *    events are resent alone, nothing that succeeded is sent again. Events refused for
 *    their type (a v4 server) are also spooled once, for a v3 server.
 * New batches are compressed like the one they came from and written ahead like any other.
 */
#include "exporter_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "body.h"
#include "gzip.h"
/* The body as plain JSON (decompressed if needed). Caller frees *out. */
static int plain_body(const struct lf__batch *b, size_t cap, char **out, size_t *len)
{
    if (b->gz) return lf__gunzip(b->body, b->len, cap, out, len) ? -1 : 0;
    *out = lf__strndup(b->body, b->len);
    *len = b->len;
    return *out ? 0 : -1;
}

/* A new batch from plain JSON, compressed like the original. */
static struct lf__batch *batch_from_json(const struct lf__batch *like, char *json, size_t len,
                                         uint32_t nrec)
{
    struct lf__batch *b = lf__batch_new();
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
        if (lf__gzip(json, len, LF__GZIP_LEVEL, &gz, &gzlen) == 0) {
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
int lf__rebatch_too_large(struct lf_client *c, struct lf__batch *b)
{
    struct lf__exp *x = c->exp;
    char *json;
    size_t len;
    if (plain_body(b, c->conf.max_request_bytes * 4, &json, &len)) return -1;
    char *a, *bb;
    size_t alen, blen;
    struct lf__batch *na = NULL, *nb = NULL;
    if (lf__body_split(b->endpoint, json, len, &a, &alen, &bb, &blen) == 0) {
        uint32_t ra = records_in(b->endpoint, a, alen), rb = records_in(b->endpoint, bb, blen);
        na = batch_from_json(b, a, alen, ra);
        nb = batch_from_json(b, bb, blen, rb);
    } else if (lf__body_shrink(json, len, &a, &alen) == 0) {
        na = batch_from_json(b, a, alen, b->nrec);
        if (na) lf__count(&c->n.truncated, 1);
    }
    free(json);
    if (!na || (nb == NULL && na->nrec != b->nrec)) {
        lf__batch_free(na);
        lf__batch_free(nb);
        return -1;
    }
    lf__pending_write_ahead(c, na);
    if (nb) lf__pending_write_ahead(c, nb);
    /* Put the parts where b was, in order. */
    lf__pending_unlink_head(x);
    if (nb) {
        nb->next = x->head;
        x->head = nb;
        x->bytes += nb->len;
        if (!x->tail) x->tail = nb;
    }
    na->next = x->head;
    x->head = na;
    x->bytes += na->len;
    if (!x->tail) x->tail = na;
    if (b->spool_fd >= 0) {
        /* A spool file: its content now lives in memory; remove the file once both parts
         * are safely elsewhere (they will be re-spooled if they cannot be sent). */
        lf__spool_done(b->spool_path, b->spool_fd);
        b->spool_fd = -1;
    }
    lf__batch_free(b);
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
    if (plain_body(b, c->conf.max_request_bytes * 4, &json, &len)) return NULL;
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
uint32_t lf__rebatch_multi_status(struct lf_client *c, struct lf__batch *b, const char *resp,
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
            if (ids && id) ids[nretry++] = id;
            continue;
        }
        rejected++;
        if (refused_event_type(st, msg)) {
            if (refused && id) refused[nrefused++] = id;
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
            lf__pending_write_ahead(c, keep);
            /* Not for this run's replay: this server would refuse it again. */
            int replay = c->exp->spooled_this_run;
            lf__pending_spool(c, keep, "refused by a v4 server");
            c->exp->spooled_this_run = replay;
        }
    }
    if (nretry && (*retry = batch_of_events(c, b, ids, nretry))) lf__pending_write_ahead(c, *retry);
    free(ids);
    free(refused);
    json_decref(root);
    return rejected > b->nrec ? b->nrec : rejected;
}
