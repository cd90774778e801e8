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

#include <stddef.h>
#include <stdint.h>

struct lf_obs;
struct lf__trace;

/* A new, empty set with one reference (the root's); NULL when memory ran out. */
struct lf__trace *lf__trace_new(void);
/* Another reference (a new observation of the trace). Returns `t`. */
struct lf__trace *lf__trace_ref(struct lf__trace *t);
/* Drops a reference; the last one frees the set. Accepts NULL. */
void lf__trace_unref(struct lf__trace *t);
/* Sets one attribute (an LF__T_* tag) to `val` followed by `more` (mlen bytes, may be 0),
 * replacing the entry with the same tag and key; a tag (LF__T_TAG) already present is not
 * added twice. 0, or -1 when memory ran out (the set is unchanged then). */
int lf__trace_put(struct lf__trace *t, uint8_t tag, uint8_t kind, const char *key, size_t klen,
                  const void *val, size_t vlen, const void *more, size_t mlen);
/* Appends the set's entries to record `r` (trace input and output only if `r` is a root).
 * 0, or -1 when memory ran out (r then carries what fitted). */
int lf__trace_copy_to(struct lf__trace *t, struct lf_obs *r);

#endif
