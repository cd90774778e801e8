/*
 * The operator's loop: list + watch of AgenticSessions, their Jobs and their Pods into
 * caches, and for every session something changed for, one decision (status.h) carried
 * out against the API server. Single-threaded: the caches, the decisions and the requests
 * all belong to the thread that runs co_operator_run.
 *
 * Restart-safe by construction: nothing is remembered between runs that the API server does
 * not hold. The Job's name is the session's name plus "-job", so a create after a restart
 * meets 409 AlreadyExists and adopts the Job; the status is written with the session's
 * resourceVersion, so a stale write meets 409 Conflict and is decided again on a fresh read.
 */
#ifndef CO_RECONCILE_H
#define CO_RECONCILE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "job.h"
#include "kube.h"

struct co_operator_opts {
    const char *namespace;   /* the one namespace to watch; NULL or "": all of them */
    struct co_job_opts job;  /* what the Jobs get from the operator */
    int64_t start_timeout_s; /* a runner Pod not started after this long fails its session */
};

/* What the health endpoint reads from the loop (health.h). */
struct co_liveness {
    _Atomic int64_t beat_ms; /* CLOCK_MONOTONIC ms of the loop's last turn */
    atomic_bool synced;      /* every cache listed at least once */
};

/* Runs until stop_fd becomes readable (the signal pipe). k and o are borrowed. Returns 0. */
int co_operator_run(struct co_kube *k, const struct co_operator_opts *o, int stop_fd,
                    struct co_liveness *live);

int64_t co_mono_ms(void);

#endif
