/*
 * trace.h - the Langfuse trace of a session (SPEC.md, "The trace of a session"), recorded
 * through liblangfuse's public API only.
 *
 * The session loop reports what happens (a prompt sent, each Claude Code message, the end);
 * this module turns it into one trace `agentic-session`, a `claude-query` per prompt, an
 * observation per model call and per tool use, with usage and cost that add up exactly to
 * Claude Code's own totals. Recording only copies bytes into the library's queue; nothing
 * here waits on the network except cc_trace_end(), bounded by LANGFUSE_FLUSH_TIMEOUT.
 */
#ifndef CC_TRACE_H
#define CC_TRACE_H

#include <stdint.h>

#include "options.h"
#include "claude_stream.h"

struct cc_trace;

/* How a session ended: filled by cc_session_run(), read by cc_trace_end(). */
struct cc_outcome {
    int failed;
    char message[512];          /* the final status message */
    double cost_usd;            /* Claude Code's total_cost_usd at its last result */
    int turns;                  /* turns that ended with a result */
    struct cc_usage usage;      /* the results' token counts, summed */
    const char *exception_type; /* on failure: Timeout, Signal, ClaudeCodeExit, TurnError,
                                   StartError */
};

/* Starts tracing when LANGFUSE_ENABLED says so; NULL when tracing is off (a bad or
 * incomplete configuration gives one warning on stderr and NULL: the session runs). */
struct cc_trace *cc_trace_start(const struct cc_options *o, const char *session_id);

/* A prompt went to Claude Code: a new claude-query. */
void cc_trace_prompt(struct cc_trace *t, const char *text);

/* The running turn was interrupted: `why` becomes its status message, level WARNING, or
 * ERROR when the interrupt `fails` the session (timeout, signal). */
void cc_trace_interrupt(struct cc_trace *t, const char *why, int fails);

/* What Claude Code's environment needs so that its own telemetry reaches the trace
 * (NULL-terminated "NAME=value" strings, owned by t), or NULL. */
const char *const *cc_trace_child_env(const struct cc_trace *t);

/* Readable when Claude Code's telemetry has events waiting (poll it), or -1: then call
 * cc_trace_otel(). */
int cc_trace_fd(const struct cc_trace *t);
void cc_trace_otel(struct cc_trace *t);

/* Milliseconds until a closing turn stops waiting for its last events, or -1: the session
 * loop calls cc_trace_tick() by then (and may call it any time). */
int cc_trace_due_ms(const struct cc_trace *t);
void cc_trace_tick(struct cc_trace *t);

/* Every message Claude Code printed, in order. */
void cc_trace_claude(struct cc_trace *t, const struct cc_msg *m);

/* Ends the trace and flushes within the flush deadline (a cc_trace_hurry() from another
 * thread cuts that short). Accepts NULL. */
void cc_trace_end(struct cc_trace *t, const struct cc_outcome *how);

/* Cuts the final flush short, in progress or to come: what is not delivered is spooled
 * (lf_client_hurry). Thread-safe while t lives. Accepts NULL. */
void cc_trace_hurry(struct cc_trace *t);

/* The session's trace id, 32 hex digits, or "" without a trace (tracing off, or not
 * sampled). Valid until cc_trace_end(). */
void cc_trace_id(const struct cc_trace *t, char out[33]);

/* Frees t (after cc_trace_end). Accepts NULL. */
void cc_trace_free(struct cc_trace *t);

#endif
