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
 * Then the outcome's last word, for the Pod's status: cc_termination_write().
 */
#include "ending.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "claude_stream.h"
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

void cc_termination_write(const char *path, const struct cc_outcome *end, const char *trace_id,
                          const char *session_id)
{
    if (!path) {
        if (access("/dev/termination-log", W_OK) != 0) return; /* not in a Pod */
        path = "/dev/termination-log";
    }
    json_t *usage = json_pack("{s:I, s:I, s:I, s:I}", "input_tokens", (json_int_t)end->usage.in,
                              "output_tokens", (json_int_t)end->usage.out,
                              "cache_read_input_tokens", (json_int_t)end->usage.cr,
                              "cache_creation_input_tokens", (json_int_t)end->usage.cw);
    json_t *doc = json_pack("{s:b, s:s?, s:f, s:i, s:o, s:s?, s:s?}", "success", !end->failed,
                            "error", end->failed && end->message[0] ? end->message : NULL, "cost",
                            end->cost_usd, "turns", end->turns, "usage", usage, "trace_id",
                            trace_id && trace_id[0] ? trace_id : NULL, "session_id", session_id);
    size_t len = 0;
    /* the message is at most 511 bytes and the rest is short: well under Kubernetes' 4 KiB */
    char *line = cc_json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(15), 1, &len);
    json_decref(doc);
    int fd = line ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    if (line) line[len++] = '\n';
    if (fd < 0 || write(fd, line, len) != (ssize_t)len)
        cc_log("could not write the session's outcome to %s: %s", path,
               line ? strerror(errno) : "out of memory");
    if (fd >= 0) close(fd);
    free(line);
}
