/*
 * The session's status, decided from what is observed: the AgenticSession, its Job and the
 * Job's Pod. Pure (no I/O, the time is an input), so every transition is unit-tested:
 *   no Job yet                     -> create it (the status follows once it exists)
 *   Job, no running Pod            -> Pending
 *   Pod running                    -> Running, startTime
 *   Job Complete / Pod Succeeded   -> Completed, completionTime, the runner's outcome
 *   Job Failed / Pod Failed        -> Failed, the reason
 *   Pod that cannot start          -> Failed (an image that cannot be pulled at once; a
 *                                     missing Secret or no node after start_timeout_s), and
 *                                     the Job is deleted so that it stops trying
 *   Job deleted under a session    -> Failed
 * A phase never goes back (Pending < Running < Completed/Failed), and a terminal phase is
 * never changed: after an operator restart the same observation gives the same status.
 */
#ifndef CO_STATUS_H
#define CO_STATUS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* What is known of one session; all borrowed. */
struct co_observed {
    const json_t *session;   /* the AgenticSession */
    const json_t *job;       /* the Job named <session>-job, or NULL */
    const json_t *pod;       /* that Job's newest Pod, or NULL */
    const char *spec_error;  /* the spec could not be read (co_settings_read's err), or NULL */
    int64_t now;             /* Unix seconds */
    int64_t start_timeout_s; /* a Pod not started after this long fails the session */
};

enum co_action {
    CO_ACT_NONE,       /* write the status, if any, and that is all */
    CO_ACT_CREATE_JOB, /* create the Job; decide again once it exists */
    CO_ACT_DELETE_JOB, /* write the (terminal) status, then delete the Job */
    CO_ACT_WAIT,       /* the Job's name is held by another object: wait, look again later */
};

struct co_decision {
    enum co_action action;
    json_t *status;        /* the new status to write, or NULL when the current one is right;
                            * caller frees */
    char from[16], to[16]; /* the phase before and after, for the log line */
    char why[512];         /* what was seen, for the log line and status.message */
};

/* Decides; out->status is NULL or new. Never fails except out of memory (-1). */
int co_decide(const struct co_observed *in, struct co_decision *out);

/* True for Completed, Failed and the platform's Stopped. */
bool co_phase_terminal(const char *phase);

/* RFC 3339 UTC ("2026-12-06T18:16:57Z") of t into out (at least 21 bytes). */
void co_rfc3339(int64_t t, char *out, size_t cap);
/* The reverse; -1 when s is not such a time. */
int64_t co_parse_rfc3339(const char *s);

#endif
