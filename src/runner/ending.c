/*
 * ending.c - the end of a session, under signals.
 *
 * The contract (SPEC.md, Signals): a signal that arrives while the session is already
 * ending, during the final flush or the backend's drain, does not kill the runner: what is
 * not yet delivered is spooled, the exit code is the session's, and one line says so; a
 * second signal, or the flush deadline, ends it at once, still with that code. In a Pod
 * this is what a deletion during the flush does. Signals are taken by a thread of their
 * own with sigwait(): the main thread sits in the library's shutdown and the WebSocket's
 * close, which a handler could not interrupt safely. The session loop leaves SIGTERM and
 * SIGINT blocked (and every other thread blocks them), so none is lost between the two.
 */
#include "ending.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

struct ender {
    pthread_mutex_t mu;
    struct cc_trace *trace; /* NULL once freed */
    struct cc_ws *ws;       /* NULL once finished */
    int rc;
    int signals;
};

static void *take_signals(void *arg)
{
    struct ender *e = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    for (;;) {
        int sig;
        if (sigwait(&set, &sig)) continue;
        const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
        pthread_mutex_lock(&e->mu);
        if (++e->signals == 1) {
            cc_log("%s while the session ends: ending now; telemetry not delivered is spooled "
                   "(again to stop at once)",
                   name);
            cc_trace_hurry(e->trace);
            cc_ws_hurry(e->ws);
        } else {
            cc_log("second signal (%s): stopping at once", name);
            _exit(e->rc); /* the session's own code; the spool's write-ahead files stay */
        }
        pthread_mutex_unlock(&e->mu);
    }
    return NULL;
}

int cc_ending(struct cc_trace *trace, struct cc_ws *ws, const struct cc_outcome *end, int rc,
              int ws_close_ms)
{
    static struct ender e = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0, 0};
    pthread_t thread;
    e.trace = trace;
    e.ws = ws;
    e.rc = rc;
    /* Without the thread (no memory for it), signals stay blocked: the ending runs to its
     * deadlines, never killed by a default action. */
    if (pthread_create(&thread, NULL, take_signals, &e) == 0) pthread_detach(thread);

    cc_ws_drain(ws, ws_close_ms);
    cc_trace_end(trace, end); /* bounded by LANGFUSE_FLUSH_TIMEOUT */
    cc_ws_finish(ws, ws_close_ms);

    pthread_mutex_lock(&e.mu); /* the signal thread uses neither from now on */
    e.trace = NULL;
    e.ws = NULL;
    pthread_mutex_unlock(&e.mu);
    cc_trace_free(trace);
    cc_ws_close(ws, 0);
    return rc;
}
