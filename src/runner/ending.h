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

#endif
