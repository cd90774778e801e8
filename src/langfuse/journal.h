/*
 * journal.h - traces whose root is still open, kept recoverable on disk; see journal.c.
 */
#ifndef LF_JOURNAL_H
#define LF_JOURNAL_H

#include "internal.h"

struct lf__trace;

/* Called by lf_trace_start(): the trace is journaled from the exporter's next cycle (when
 * the client has a spool). Takes a reference. */
void lf__journal_open(struct lf_client *c, struct lf__trace *t);
/* Exporter, before encoding `list`: marks the open traces whose root is in it. */
void lf__journal_note_roots(struct lf_client *c, struct lf__trace **open,
                            const struct lf_obs *list);
/* Exporter, after encoding: writes the journals of open traces that changed, removes those
 * of traces whose root went out. */
void lf__journal_update(struct lf_client *c, struct lf__trace **open);
/* Exporter, as it stops: releases every journal (those of roots still open stay on disk,
 * orphans for the next client to adopt) and drops the references. */
void lf__journal_close(struct lf_client *c, struct lf__trace **open);

#endif
