/*
 * ending.h - the end of a session: the backend's drain and the final flush, under signals.
 */
#ifndef CC_ENDING_H
#define CC_ENDING_H

#include "session.h"
#include "trace.h"
#include "ws.h"

/*
 * Ends the session whose outcome is `end` and exit code `rc`: drains the backend while the
 * trace flushes (the two deadlines overlap), then closes and frees both. Expects SIGTERM
 * and SIGINT blocked in the calling thread (cc_session_run leaves them so). A first signal
 * meanwhile cuts both short, spooling what telemetry is not delivered, with one line on
 * stderr; a second ends the process at once. Either way the process's exit code is `rc`,
 * which this returns.
 */
int cc_ending(struct cc_trace *trace, struct cc_ws *ws, const struct cc_outcome *end, int rc,
              int ws_close_ms);

/*
 * The session's outcome in one JSON line (SPEC.md: success, error, cost, turns, usage,
 * trace_id, session_id; at most 4 KiB), written to `path` if given, else to
 * /dev/termination-log when that is writable: Kubernetes puts it in the Pod's status, where
 * the operator reads it. Best effort: a file that cannot be written costs one line on
 * stderr, never the exit code.
 */
void cc_termination_write(const char *path, const struct cc_outcome *end, const char *trace_id,
                          const char *session_id);

#endif
