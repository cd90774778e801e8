/*
 * exporter.h - the exporter thread's entry points used by client.c.
 */
#ifndef LF_EXPORTER_H
#define LF_EXPORTER_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

int lf__exporter_init(struct lf_client *c);
/* The time the exporter needs, before a shutdown's deadline, to spool what is left. */
int64_t lf__exporter_spool_reserve_ns(const struct lf_client *c);
/* Creates the client's HTTP connection state for its host; 0 or -1 with a reason. */
int lf__exporter_connect(struct lf_client *c, char *err, size_t errlen);
void lf__exporter_cleanup(struct lf_client *c);
/* In a forked child: drop the parent's pending batches and HTTP handle (c->http becomes
 * NULL; the child's own is made when its exporter thread starts). */
void lf__exporter_forget_after_fork(struct lf_client *c);
/* Pulls in the abort time of requests in flight so that shutdown ends by `deadline`. */
void lf__exporter_stop_by(struct lf_client *c, int64_t deadline_ns);
/* How long past its deadline shutdown may wait for the exporter to write the spool. */
int64_t lf__exporter_grace_ns(void);
/* Synchronous spool replay on the caller's thread (lf_client_replay_spool). */
int lf__exporter_request_replay(struct lf_client *c, int64_t deadline_ns);

#endif
