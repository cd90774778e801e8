/*
 * main.c - ccrunner: run one AgenticSession on the Claude Code CLI (SPEC.md).
 *
 * Order of business: every prerequisite is checked before anything runs (exit 2 with one
 * line naming the cause and the fix), then the message stream and the backend WebSocket are
 * set up, the session runs, and what is still queued for the backend gets a bounded chance
 * to leave before exit.
 */
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "ending.h"
#include "guard.h"
#include "message_stream.h"
#include "options.h"
#include "session.h"
#include "trace.h"
#include "ws.h"

#ifndef CC_VERSION
#define CC_VERSION "0.0.0"
#endif

#define MAX_LINE (256u << 20) /* longest Claude Code stdout line relayed */
#define WS_QUEUE (64u << 20)  /* bytes kept for the backend while disconnected */
#define WS_CLOSE_MS 5000      /* what the backend may add to the end of a session */

static void ws_sink(void *ctx, const char *json, size_t len)
{
    cc_ws_send(ctx, json, len);
}

/* "session-" and 12 hex digits from the kernel's random source (the clock if that fails). */
static void make_session_id(char *out, size_t len)
{
    unsigned char b[6] = {0};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, b, sizeof b) != (ssize_t)sizeof b) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long long x =
            (unsigned long long)ts.tv_nsec ^ ((unsigned long long)getpid() << 30);
        for (int i = 0; i < 6; i++)
            b[i] = (unsigned char)(x >> (8 * i));
    }
    if (fd >= 0) close(fd);
    snprintf(out, len, "session-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
}

int main(int argc, char **argv)
{
    struct cc_options o;
    char err[512], claude[PATH_MAX], self[PATH_MAX], sid[64];

    if (argc > 0 && strcmp(argv[0], CC_GUARD_ARGV0) == 0) /* ccrunner started itself (child.c) */
        return cc_guard_main(argc, argv);
    /* Blocks of 256 KiB and more come from mmap, always: a big line's buffers go back to the
     * system when freed and grow by mremap without a copy. glibc's default raises this
     * threshold after the first big free, and a 10 MB line would then cost its copies on
     * the heap for the rest of the session (bench/run_memory_bench.py, big lines). */
    mallopt(M_MMAP_THRESHOLD, 256 << 10);
    switch (cc_options_parse(&o, argc, argv, err, sizeof err)) {
    case CC_OPT_HELP:
        fputs(cc_options_usage(), stdout);
        return 0;
    case CC_OPT_VERSION:
        printf("ccrunner %s\n", CC_VERSION);
        return 0;
    case CC_OPT_OK:
        break;
    default:
        fprintf(stderr, "ccrunner: error: %s\n", err);
        return 2;
    }
    if (cc_options_check(&o, err, sizeof err) != CC_OPT_OK) {
        fprintf(stderr, "ccrunner: error: %s\n", err);
        return 2;
    }
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    if (cc_child_find_claude(&o, n > 0 ? self : NULL, claude, sizeof claude, err, sizeof err)) {
        fprintf(stderr, "ccrunner: error: %s\n", err);
        return 2;
    }
    if (!o.session_id) {
        make_session_id(sid, sizeof sid);
        o.session_id = sid;
    }
    signal(SIGPIPE, SIG_IGN);

    struct cc_out out;
    struct cc_ws *ws = NULL;
    cc_out_init(&out, stdout, o.output);
    if (o.websocket_url) {
        if (!(ws = cc_ws_start(o.websocket_url, o.bot_token, WS_QUEUE, err, sizeof err))) {
            fprintf(stderr, "ccrunner: error: %s\n", err);
            return 2;
        }
        out.sink = ws_sink;
        out.sink_ctx = ws;
    }

    /* Tracing starts after every check: a session that cannot run leaves no trace. */
    struct cc_trace *trace = cc_trace_start(&o, o.session_id);
    struct cc_session_config cfg = {
        .opt = &o,
        .claude_exe = claude,
        .session_id = o.session_id,
        .out = &out,
        .ws = ws,
        .input_fd = o.interactive ? STDIN_FILENO : -1,
        .max_line = MAX_LINE,
        .grace_ms = 10000,
        .interrupt_wait_ms = 10000,
        .trace = trace,
    };
    struct cc_outcome end;
    char trace_id[33];
    int rc = cc_session_run(&cfg, &end);
    cc_trace_id(trace, trace_id); /* before cc_ending() ends the trace */
    rc = cc_ending(trace, ws, &end, rc, WS_CLOSE_MS);
    cc_termination_write(o.termination_log, &end, trace_id, o.session_id);
    return rc;
}
