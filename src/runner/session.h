/*
 * session.h - one AgenticSession: the loop that drives Claude Code, relays its messages,
 * takes interactive input, and ends the session on every path (result, end of input,
 * idle limit, timeout, signal, crash) with a status and an exit code (SPEC.md).
 */
#ifndef CC_SESSION_H
#define CC_SESSION_H

#include "message_stream.h"
#include "options.h"
#include "trace.h"
#include "ws.h"

struct cc_session_config {
    const struct cc_options *opt;
    const char *claude_exe; /* resolved path of claude */
    const char *session_id; /* the AgenticSession name (given or generated) */
    struct cc_out *out;     /* the message stream; borrowed */
    struct cc_ws *ws;       /* the backend, or NULL; borrowed (input is read from it) */
    int input_fd;           /* interactive input lines (stdin), or -1 */
    size_t max_line;        /* longest Claude Code stdout line kept */
    int grace_ms;           /* after stdin is closed: how long claude may take to exit */
    int interrupt_wait_ms;  /* after an interrupt on timeout/signal: how long to wait for
                             * the turn's result before stopping claude */
    struct cc_trace *trace; /* the Langfuse trace, or NULL; borrowed */
};

/* Runs the session to its end. Returns the exit code: 0 success, 1 failure, 2 when
 * Claude Code could not be started. Installs SIGTERM/SIGINT handlers for its duration, and
 * returns with both signals blocked in the calling thread, for cc_ending() to take. */
int cc_session_run(const struct cc_session_config *cfg, struct cc_outcome *end);

#endif
