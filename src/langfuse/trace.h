/*
 * trace.h - what every observation of a trace carries: the trace's attributes.
 *
 * Langfuse v4 reads trace attributes (session id, user id, trace name, tags, trace metadata,
 * release, environment) per observation, not per trace: a span without them belongs to no
 * session. So they cannot live on the root alone. Each trace has one shared, reference
 * counted attribute set; the trace setters write into it from any observation of the trace,
 * and lf_obs_end() copies it into the ending observation's record. An observation thus
 * carries the attributes as they were when it ended; what is set later reaches only the
 * observations that end later (the root, normally last, carries the final set).
 *
 * The set holds one entry per attribute (per key for metadata, per value for tags): a
 * setter called again replaces the entry, so its size is bounded by what is set, not by how
 * often. Trace input and output are in the set too but are copied to the root only (v4
 * ignores them elsewhere, and they can be large).
 *
 * Threads: handles of one trace may be used on different threads, so the set has its own
 * lock, held for a memcpy-sized moment per setter and per lf_obs_end().
 */
#ifndef LF_TRACE_H
#define LF_TRACE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

struct lf__trace {
    pthread_mutex_t mu;
    atomic_uint refs;
    /* The entries, in a record of their own: only its data, len and cap are used, so the
     * record format and its reader serve here too. Under mu. */
    struct lf_obs set;
    /* The root, as the journal needs it (journal.c): set once by lf_trace_start. */
    uint8_t trace_id[16], span_id[8];
    int64_t start_ns;
    int64_t last_end_ns; /* the latest end of an observation of the trace; under mu */
    uint64_t version;    /* bumped by every change a journal shows; under mu */
    /* The exporter's (journal.c), once the trace is in its list of open traces: */
    struct lf__trace *next_open; /* c->new_traces (under c->mu), then the exporter's list */
    int root_out;                /* its root was encoded, and so is on its way or spooled */
    uint64_t journaled;          /* the version its journal file shows; 0: no file */
    int journal_fd;              /* the claim on that file; -1: none */
    char *journal_path;          /* that file (owned); NULL: none */
};

/* A new, empty set with one reference (the root's); NULL when memory ran out. */
struct lf__trace *lf__trace_new(void);
/* The root's identity, for the journal. */
void lf__trace_set_root(struct lf__trace *t, const uint8_t trace_id[16], const uint8_t span_id[8],
                        int64_t start_ns);
/* Another reference (a new observation of the trace). Returns `t`. */
struct lf__trace *lf__trace_ref(struct lf__trace *t);
/* Drops a reference; the last one frees the set. Accepts NULL. */
void lf__trace_unref(struct lf__trace *t);
/* Sets one attribute (an LF__T_* tag) to `val` followed by `more` (mlen bytes, may be 0),
 * replacing the entry with the same tag and key; a tag (LF__T_TAG) already present is not
 * added twice. 0, or -1 when memory ran out (the set is unchanged then). */
int lf__trace_put(struct lf__trace *t, uint8_t tag, uint8_t kind, const char *key, size_t klen,
                  const void *val, size_t vlen, const void *more, size_t mlen);
/* Appends the set's entries to record `r` (trace input and output only if `r` is a root),
 * and notes r's end time as the trace's latest. 0, or -1 when memory ran out (r then
 * carries what fitted). *version (if not NULL) receives the set's version. */
int lf__trace_copy_to(struct lf__trace *t, struct lf_obs *r, uint64_t *version);

#endif
