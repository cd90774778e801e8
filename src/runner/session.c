/*
 * session.c - the session loop.
 *
 * One thread, one poll(): Claude Code's stdout, stderr and stdin pipes, its pidfd, the
 * interactive input (stdin or the WebSocket's inbound queue), and a self-pipe for signals.
 * Every wait is bounded by a deadline computed each round (session timeout, idle limit,
 * interrupt and reaping escalation), so no path can hang.
 *
 * Turn discipline (reference/CLAUDE-CODE.md): a user line sent during a turn would be
 * folded into that turn, so messages that arrive during a turn wait in `queue` until its
 * result. End of session is a queue item too: it takes effect after what was asked before.
 */
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "clock.h"
#include "input.h"
#include "lines.h"
#include "log.h"
#include "claude_stream.h"

#define TAIL_LINES 8 /* stderr lines kept for a crash report */
#define TAIL_WIDTH 300
#define QUEUE_MAX 1000 /* user messages waiting for a turn to end */
#define INPUT_MAX (1u << 20)

enum phase {
    PH_RUNNING,  /* turns are taken */
    PH_STOPPING, /* timeout or signal: an interrupt is out, waiting for the result */
    PH_CLOSING,  /* stdin closed: waiting for claude to exit */
    PH_DONE,
};

struct item {
    struct item *next;
    char *text; /* NULL: end of session */
};

struct session {
    const struct cc_session_config *cfg;
    const struct cc_options *o;
    struct cc_out *out;
    struct cc_child child;
    struct cc_lines out_lines, err_lines, in_lines;
    enum phase phase;

    char tail[TAIL_LINES][TAIL_WIDTH]; /* last stderr lines, a ring */
    int tail_n;

    char *wbuf; /* bytes for claude's stdin not yet written */
    size_t wlen, wcap;

    struct item *q_head, *q_tail;
    int q_len;
    int turn_active;
    int interrupt_sent;   /* for the current turn */
    int user_interrupted; /* ... by the user (its error result does not fail the session) */
    int results;
    struct cc_outcome *end; /* filled as results come, and at the end */
    int last_error;         /* the last result had is_error, not caused by the user */
    char last_error_text[300];
    int input_eof;
    int undecodable; /* lines from Claude Code that could not be decoded */

    char fail[512];        /* set: the session failed, this says why */
    const char *exception; /* ... and its kind (struct cc_outcome) */
    long long start_ms, deadline_ms, idle_since_ms, stop_deadline_ms, close_deadline_ms;
    int term_sent, kill_sent;
    unsigned req_seq;
    int ended_idle;
};

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    (void)!write(sig_pipe[1], &b, 1);
    errno = saved;
}

/* Records why the session failed (the first reason wins) and tells the user. */
static void fail(struct session *s, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct session *s, const char *kind, const char *fmt, ...)
{
    if (s->fail[0]) return;
    s->exception = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->fail, sizeof s->fail, fmt, ap);
    va_end(ap);
    cc_out_error(s->out, "%s", s->fail);
}

/* ---- claude's stdin ------------------------------------------------------------------ */

static void flush_stdin(struct session *s)
{
    while (s->wlen > 0 && s->child.in_fd >= 0) {
        ssize_t n = write(s->child.in_fd, s->wbuf, s->wlen);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                /* EPIPE: claude is gone; its exit is noticed through the pidfd. */
                s->wlen = 0;
                cc_child_close_stdin(&s->child);
            }
            return;
        }
        memmove(s->wbuf, s->wbuf + n, s->wlen - (size_t)n);
        s->wlen -= (size_t)n;
    }
}

/* Queues one line (takes ownership) for claude's stdin. */
static int send_line(struct session *s, char *line)
{
    if (!line) {
        fail(s, "OutOfMemory", "out of memory composing a message for Claude Code");
        return -1;
    }
    size_t n = strlen(line);
    if (s->child.in_fd < 0) {
        free(line);
        return -1;
    }
    if (s->wlen + n > s->wcap) {
        size_t cap = s->wcap ? s->wcap : 4096;
        while (cap < s->wlen + n)
            cap *= 2;
        char *b = realloc(s->wbuf, cap);
        if (!b) {
            free(line);
            fail(s, "OutOfMemory", "out of memory composing a message for Claude Code");
            return -1;
        }
        s->wbuf = b;
        s->wcap = cap;
    }
    memcpy(s->wbuf + s->wlen, line, n);
    s->wlen += n;
    free(line);
    flush_stdin(s);
    return 0;
}

/* Interrupts the running turn; `why` goes on its trace, `fails` when the session fails
 * with it (timeout, signal) rather than going on (the user asked). */
static void send_interrupt(struct session *s, const char *why, int fails)
{
    char id[32];
    if (!s->turn_active || s->interrupt_sent) return;
    snprintf(id, sizeof id, "ccrunner-interrupt-%u", ++s->req_seq);
    if (send_line(s, cc_stdin_interrupt(id)) == 0) {
        s->interrupt_sent = 1;
        s->user_interrupted = !fails;
        cc_trace_interrupt(s->cfg->trace, why, fails);
    }
}

/* ---- the turn queue ------------------------------------------------------------------ */

static int enqueue(struct session *s, char *text)
{
    struct item *it = malloc(sizeof *it);
    if (!it) {
        free(text);
        return -1;
    }
    it->next = NULL;
    it->text = text;
    if (s->q_tail)
        s->q_tail->next = it;
    else
        s->q_head = it;
    s->q_tail = it;
    s->q_len++;
    return 0;
}

static void begin_closing(struct session *s)
{
    if (s->phase >= PH_CLOSING) return;
    s->phase = PH_CLOSING;
    s->wlen = 0; /* nothing more for claude */
    cc_child_close_stdin(&s->child);
    s->close_deadline_ms = cc_mono_ms() + s->cfg->grace_ms;
}

/* Starts the next queued turn, or ends the session at an end-of-session item. */
static void next_turn(struct session *s)
{
    while (!s->turn_active && s->phase == PH_RUNNING && s->q_head) {
        struct item *it = s->q_head;
        s->q_head = it->next;
        if (!s->q_head) s->q_tail = NULL;
        s->q_len--;
        char *text = it->text;
        free(it);
        if (!text) {
            begin_closing(s);
            return;
        }
        int rc = send_line(s, cc_stdin_user_turn(text));
        if (rc == 0) cc_trace_prompt(s->cfg->trace, text);
        free(text);
        if (rc == 0) {
            s->turn_active = 1;
            s->interrupt_sent = s->user_interrupted = 0;
            cc_out_running(s->out);
        }
    }
}

/* A turn ended or the session became idle: take the next message or wait for one. */
static void after_turn(struct session *s)
{
    if (s->phase != PH_RUNNING) return;
    if (!s->o->interactive) {
        begin_closing(s);
        return;
    }
    next_turn(s);
    if (!s->turn_active && s->phase == PH_RUNNING) {
        s->idle_since_ms = cc_mono_ms();
        cc_out_waiting(s->out);
    }
}

/* ---- what claude prints -------------------------------------------------------------- */

static void on_result(struct session *s, const struct cc_msg *m)
{
    const struct cc_result r = m->result;
    s->results++;
    if (!m->damage[0]) { /* a stand-in knows no numbers; the next result carries them */
        s->end->cost_usd = r.total_cost_usd;
        s->end->usage.in += r.turn_usage.in;
        s->end->usage.out += r.turn_usage.out;
        s->end->usage.cr += r.turn_usage.cr;
        s->end->usage.cw += r.turn_usage.cw;
    }
    if (!s->turn_active)
        return; /* a turn Claude Code started by itself (a background agent finished) */
    s->turn_active = 0;
    s->end->turns++;
    s->last_error = r.is_error && !s->user_interrupted;
    if (s->last_error) cc_result_describe(&r, s->last_error_text, sizeof s->last_error_text);
    if (s->phase == PH_STOPPING)
        begin_closing(s);
    else
        after_turn(s);
}

/* A line from Claude Code that could not be decoded: once on stderr, with a bounded
 * excerpt, saying what became of it (`standin`: the stand-in's damage, NULL: skipped); the
 * first line skipped is said in the message stream too (it should never happen). */
static void report_undecodable(struct session *s, const char *line, size_t len, const char *err,
                               const char *standin)
{
    char excerpt[240];
    cc_excerpt(excerpt, sizeof excerpt, line, len);
    if (standin) {
        cc_log("%s; the line (%zu bytes): %s", standin, len, excerpt);
        return;
    }
    cc_log("Claude Code printed a line of %zu bytes that could not be decoded (%s); it was "
           "skipped: %s",
           len, err, excerpt);
    if (!s->undecodable++)
        cc_out_system(s->out,
                      "A message from Claude Code could not be decoded and was skipped "
                      "(%s); the log has an excerpt",
                      err);
}

static int on_claude_line(void *ctx, char *line, size_t len)
{
    struct session *s = ctx;
    struct cc_msg m;
    char err[200];
    int rc;
    if (!line) {
        const char *head, *tail;
        size_t head_len, tail_len;
        cc_log("Claude Code printed a line of %zu bytes, over the %zu-byte limit; it was skipped",
               len, s->cfg->max_line);
        cc_out_system(s->out,
                      "A message from Claude Code of %zu bytes was too long to relay "
                      "and was skipped",
                      len);
        /* a result or a control request still ends its turn or gets its answer */
        snprintf(err, sizeof err, "its %zu bytes are over the %zu-byte limit", len,
                 s->cfg->max_line);
        cc_lines_skipped(&s->out_lines, &head, &head_len, &tail, &tail_len);
        rc = cc_msg_standin(&m, head, head_len, tail, tail_len, err) ? 1 : -1;
        if (rc > 0) cc_log("%s", m.damage);
    } else {
        rc = cc_msg_parse(&m, line, len, err, sizeof err);
        if (rc != 0) report_undecodable(s, line, len, err, rc > 0 ? m.damage : NULL);
    }
    if (rc < 0) return 0;
    switch (m.kind) {
    case CC_MSG_CONTROL_REQUEST: {
        char *answer = cc_stdin_answer_control(&m);
        if (answer) send_line(s, answer);
        break;
    }
    case CC_MSG_CONTROL_RESPONSE: {
        if (m.ctl.subtype && strcmp(m.ctl.subtype, "error") == 0)
            cc_log("Claude Code refused a control request: %.300s",
                   m.ctl.error ? m.ctl.error : "no reason");
        break;
    }
    default:
        cc_trace_claude(s->cfg->trace, &m);
        cc_out_claude(s->out, &m);
        if (m.kind == CC_MSG_RESULT) on_result(s, &m);
        break;
    }
    cc_msg_clear(&m);
    return 0;
}

static int on_stderr_line(void *ctx, char *line, size_t len)
{
    struct session *s = ctx;
    if (!line) {
        cc_log("claude: (a stderr line of %zu bytes, skipped)", len);
        return 0;
    }
    fprintf(stderr, "ccrunner: claude: %s\n", line);
    snprintf(s->tail[s->tail_n % TAIL_LINES], TAIL_WIDTH, "%s", line);
    s->tail_n++;
    return 0;
}

/* The last stderr lines, joined with " | ", for an error message. */
static void stderr_tail(const struct session *s, char *buf, size_t len)
{
    size_t used = 0;
    int first = s->tail_n > TAIL_LINES ? s->tail_n - TAIL_LINES : 0;
    buf[0] = '\0';
    for (int i = first; i < s->tail_n && used < len; i++) {
        const char *l = s->tail[i % TAIL_LINES];
        if (!*l) continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? " | " : "", l);
        if (n < 0) break;
        used += (size_t)n;
    }
}

/* Reads what a pipe has; at EOF closes it and flushes the partial line. */
static void drain(struct session *s, int *fd, struct cc_lines *lines, cc_line_fn fn)
{
    static char buf[1 << 16];
    for (;;) {
        ssize_t n = read(*fd, buf, sizeof buf);
        if (n > 0) {
            cc_lines_feed(lines, buf, (size_t)n, fn, s);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        cc_lines_finish(lines, fn, s);
        close(*fd);
        *fd = -1;
        return;
    }
}

/* ---- interactive input --------------------------------------------------------------- */

static void on_input(struct session *s, const char *line, size_t len, const char *from)
{
    struct cc_input in;
    cc_input_parse(line, len, &in);
    switch (in.kind) {
    case CC_IN_NONE:
        break;
    case CC_IN_INVALID:
        cc_out_system(s->out, "Ignored input from %s: %s", from, in.why);
        break;
    case CC_IN_MESSAGE:
        if (s->phase != PH_RUNNING) {
            cc_out_system(s->out, "Ignored a user message: the session is ending");
        } else if (s->q_len >= QUEUE_MAX) {
            cc_out_system(s->out,
                          "Ignored a user message: %d messages already wait for the "
                          "current turn",
                          QUEUE_MAX);
        } else {
            if (s->turn_active)
                cc_out_system(s->out, "Message queued: it will be sent when the current turn "
                                      "ends");
            enqueue(s, in.text);
            in.text = NULL;
            next_turn(s);
        }
        break;
    case CC_IN_INTERRUPT:
        if (s->turn_active && !s->interrupt_sent) {
            send_interrupt(s, "the user asked for it", 0);
            cc_out_system(s->out, "Interrupting the current turn");
        } else {
            cc_out_system(s->out, "Nothing to interrupt: no turn is running");
        }
        break;
    case CC_IN_END:
        if (s->phase == PH_RUNNING) {
            enqueue(s, NULL);
            next_turn(s);
        }
        break;
    }
    cc_input_clear(&in);
}

static int on_stdin_line(void *ctx, char *line, size_t len)
{
    struct session *s = ctx;
    if (!line)
        cc_out_system(s->out, "Ignored input: a line of %zu bytes is over the %u-byte limit", len,
                      INPUT_MAX);
    else
        on_input(s, line, len, "stdin");
    return 0;
}

static void read_input(struct session *s, int fd)
{
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
        cc_lines_feed(&s->in_lines, buf, (size_t)n, on_stdin_line, s);
        return;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    cc_lines_finish(&s->in_lines, on_stdin_line, s);
    s->input_eof = 1;
    /* Without a backend, the end of stdin is the end of the conversation; with one, input
     * comes from the WebSocket and stdin is usually closed from the start. */
    if (!s->cfg->ws && s->phase == PH_RUNNING) {
        enqueue(s, NULL);
        next_turn(s);
    }
}

static void read_ws(struct session *s)
{
    char *msg;
    size_t len;
    while ((msg = cc_ws_recv(s->cfg->ws, &len))) {
        on_input(s, msg, len, "the backend");
        free(msg);
    }
}

/* ---- ending -------------------------------------------------------------------------- */

/* Timeout or signal: interrupt the turn and wait (bounded) for its result. */
static void stop(struct session *s)
{
    if (s->phase != PH_RUNNING) return;
    if (s->turn_active) {
        s->phase = PH_STOPPING;
        send_interrupt(s, s->fail, 1);
        s->stop_deadline_ms = cc_mono_ms() + s->cfg->interrupt_wait_ms;
    } else {
        begin_closing(s);
    }
}

static void on_signal_byte(struct session *s)
{
    unsigned char sig;
    while (read(sig_pipe[0], &sig, 1) == 1) {
        if (s->phase <= PH_STOPPING) {
            fail(s, "Signal", "Session interrupted by %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
            cc_log("%s received: interrupting Claude Code and ending the session (again to stop "
                   "at once)",
                   sig == SIGINT ? "SIGINT" : "SIGTERM");
            stop(s);
        } else if (!s->kill_sent) {
            cc_log("second signal: stopping Claude Code now");
            cc_child_signal(&s->child, SIGKILL);
            s->kill_sent = 1;
        }
    }
}

/* The loop is over: from here on the end of the session (ending.c) takes SIGTERM and
 * SIGINT. They are blocked in this thread before the last status goes out (a supervisor
 * reacts to it), and one that the handler caught since the loop last looked is raised
 * again, so that it stays pending for the end's signal thread rather than be lost. */
static void hand_over_signals(void)
{
    sigset_t ending;
    unsigned char sig;
    sigemptyset(&ending);
    sigaddset(&ending, SIGTERM);
    sigaddset(&ending, SIGINT);
    pthread_sigmask(SIG_BLOCK, &ending, NULL);
    while (read(sig_pipe[0], &sig, 1) == 1)
        raise(sig);
}

/* When the idle limit ends the session, or 0 while it does not apply (batch, a turn
 * running, messages waiting). */
static long long idle_deadline(const struct session *s)
{
    if (!s->o->interactive || s->phase != PH_RUNNING || s->turn_active || s->q_head ||
        s->o->idle_timeout_s <= 0)
        return 0;
    return s->idle_since_ms + (long long)(s->o->idle_timeout_s * 1000);
}

/* Deadlines: timeout, idle limit, the interrupt's answer, claude's exit. */
static void check_deadlines(struct session *s, long long now)
{
    if (s->deadline_ms && now >= s->deadline_ms && s->phase == PH_RUNNING) {
        fail(s, "Timeout",
             "Session timed out after %g s (TIMEOUT); the running turn was interrupted",
             s->o->timeout_s);
        stop(s);
    }
    if (idle_deadline(s) && now >= idle_deadline(s)) {
        cc_out_system(s->out, "No user message for %g s (the idle limit); ending the session",
                      s->o->idle_timeout_s);
        s->ended_idle = 1;
        begin_closing(s);
    }
    if (s->phase == PH_STOPPING && now >= s->stop_deadline_ms) {
        cc_log("Claude Code did not end the turn within %d ms of the interrupt",
               s->cfg->interrupt_wait_ms);
        begin_closing(s);
    }
    if (s->phase == PH_CLOSING && now >= s->close_deadline_ms) {
        if (!s->term_sent) {
            cc_log("Claude Code did not exit %d ms after its input closed; sending SIGTERM",
                   s->cfg->grace_ms);
            cc_child_signal(&s->child, SIGTERM);
            s->term_sent = 1;
            s->close_deadline_ms = now + 5000;
        } else if (!s->kill_sent) {
            cc_log("Claude Code ignored SIGTERM; sending SIGKILL");
            cc_child_signal(&s->child, SIGKILL);
            s->kill_sent = 1;
            s->close_deadline_ms = now + 5000;
        }
    }
}

static int next_timeout(const struct session *s, long long now)
{
    long long t = -1;
#define CONSIDER(when)                                                                             \
    do {                                                                                           \
        long long d_ = (when)-now;                                                                 \
        if (d_ < 0) d_ = 0;                                                                        \
        if (t < 0 || d_ < t) t = d_;                                                               \
    } while (0)
    if (s->deadline_ms && s->phase == PH_RUNNING) CONSIDER(s->deadline_ms);
    if (idle_deadline(s)) CONSIDER(idle_deadline(s));
    if (s->phase == PH_STOPPING) CONSIDER(s->stop_deadline_ms);
    if (s->phase == PH_CLOSING) CONSIDER(s->close_deadline_ms);
    if (s->child.pidfd < 0 && !s->child.exited)
        CONSIDER(now + 50); /* no pidfd: look at the child every 50 ms */
    if (cc_trace_due_ms(s->cfg->trace) >= 0) CONSIDER(now + cc_trace_due_ms(s->cfg->trace));
#undef CONSIDER
    if (t > 60000) t = 60000;
    return (int)t;
}

/* The child is gone and its pipes are drained: decide how the session ended. */
static int conclude(struct session *s, struct cc_outcome *end)
{
    char how[128], tail[1200];
    int status = s->child.status;
    cc_child_describe(status, how, sizeof how);
    if (!s->fail[0] && s->phase == PH_RUNNING) {
        /* claude ended on its own: a crash unless it was between turns with input done */
        stderr_tail(s, tail, sizeof tail);
        if (s->turn_active || !s->o->interactive)
            fail(s, "ClaudeCodeExit", "Claude Code exited unexpectedly during a turn (%s)%s%s", how,
                 tail[0] ? ": " : "", tail);
        else
            fail(s, "ClaudeCodeExit", "Claude Code exited unexpectedly between turns (%s)%s%s", how,
                 tail[0] ? ": " : "", tail);
    }
    if (!s->fail[0] && !s->o->interactive && s->results == 0) {
        stderr_tail(s, tail, sizeof tail);
        fail(s, "ClaudeCodeExit", "Claude Code ended without a result (%s)%s%s", how,
             tail[0] ? ": " : "", tail);
    }
    /* A failure is said on stderr too, in one line: someone reading the Pod's log (or a
     * terminal) sees why without reading the message stream. */
    if (s->fail[0]) {
        cc_out_status(s->out, "Failed", s->fail);
        end->failed = 1;
        end->exception_type = s->exception;
        snprintf(end->message, sizeof end->message, "%s", s->fail);
        cc_log("session failed: %s", s->fail);
        return 1;
    }
    if (s->last_error) {
        snprintf(end->message, sizeof end->message, "Session failed: %s", s->last_error_text);
        cc_out_status(s->out, "Failed", end->message);
        end->failed = 1;
        end->exception_type = "TurnError";
        cc_log("session failed: %s", s->last_error_text);
        return 1;
    }
    snprintf(end->message, sizeof end->message, "%s",
             s->ended_idle ? "Session completed (ended at the idle limit)" : "Session completed");
    cc_out_status(s->out, "Completed", end->message);
    return 0;
}

static void free_queue(struct session *s)
{
    while (s->q_head) {
        struct item *it = s->q_head;
        s->q_head = it->next;
        free(it->text);
        free(it);
    }
    s->q_tail = NULL;
    s->q_len = 0;
}

int cc_session_run(const struct cc_session_config *cfg, struct cc_outcome *end)
{
    struct session s;
    char err[512];
    struct sigaction sa, old_term, old_int;
    int rc;

    memset(&s, 0, sizeof s);
    memset(end, 0, sizeof *end);
    s.end = end;
    s.cfg = cfg;
    s.o = cfg->opt;
    s.out = cfg->out;
    s.child.pidfd = s.child.in_fd = s.child.out_fd = s.child.err_fd = -1;
    cc_lines_init(&s.out_lines, cfg->max_line);
    cc_lines_init(&s.err_lines, 1 << 16);
    cc_lines_init(&s.in_lines, INPUT_MAX);

    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK)) {
        cc_log("cannot create a pipe: %s", strerror(errno));
        return 2;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGINT, &sa, &old_int);

    s.start_ms = s.idle_since_ms = cc_mono_ms();
    if (s.o->timeout_s > 0) s.deadline_ms = s.start_ms + (long long)(s.o->timeout_s * 1000);
    char msg[300];
    snprintf(msg, sizeof msg, "Session %s started (%s)", cfg->session_id,
             s.o->interactive ? "interactive" : "batch");
    cc_out_status(s.out, "Running", msg);
    if (cc_child_start(&s.child, cfg->claude_exe, s.o, cc_trace_child_env(cfg->trace), err,
                       sizeof err) < 0) {
        cc_out_error(s.out, "%s", err);
        cc_out_status(s.out, "Failed", err);
        cc_log("%s", err);
        end->failed = 1;
        end->exception_type = "StartError";
        snprintf(end->message, sizeof end->message, "%s", err);
        rc = 2;
        goto out;
    }
    if (s.o->prompt && *s.o->prompt) {
        char *p = strdup(s.o->prompt);
        if (p) enqueue(&s, p);
        next_turn(&s);
    } else {
        after_turn(&s); /* interactive with no first prompt: wait for one */
    }

    while (s.child.out_fd >= 0 || s.child.err_fd >= 0 || !s.child.exited) {
        struct pollfd p[8];
        int n = 0, i_out = -1, i_err = -1, i_in = -1, i_sig, i_pid = -1, i_input = -1, i_ws = -1;
        int i_tel = -1;
        if (s.child.out_fd >= 0)
            p[i_out = n++] = (struct pollfd){.fd = s.child.out_fd, .events = POLLIN};
        if (s.child.err_fd >= 0)
            p[i_err = n++] = (struct pollfd){.fd = s.child.err_fd, .events = POLLIN};
        if (s.child.in_fd >= 0 && s.wlen > 0)
            p[i_in = n++] = (struct pollfd){.fd = s.child.in_fd, .events = POLLOUT};
        p[i_sig = n++] = (struct pollfd){.fd = sig_pipe[0], .events = POLLIN};
        if (s.child.pidfd >= 0 && !s.child.exited)
            p[i_pid = n++] = (struct pollfd){.fd = s.child.pidfd, .events = POLLIN};
        if (s.o->interactive && cfg->input_fd >= 0 && !s.input_eof && s.phase == PH_RUNNING)
            p[i_input = n++] = (struct pollfd){.fd = cfg->input_fd, .events = POLLIN};
        if (s.o->interactive && cfg->ws && s.phase == PH_RUNNING)
            p[i_ws = n++] = (struct pollfd){.fd = cc_ws_fd(cfg->ws), .events = POLLIN};
        if (cc_trace_fd(cfg->trace) >= 0) /* Claude Code's own telemetry */
            p[i_tel = n++] = (struct pollfd){.fd = cc_trace_fd(cfg->trace), .events = POLLIN};

        long long now = cc_mono_ms();
        int r = poll(p, (nfds_t)n, next_timeout(&s, now));
        if (r < 0 && errno != EINTR) {
            cc_log("poll failed: %s", strerror(errno));
            break;
        }
        if (r > 0) {
            if (p[i_sig].revents) on_signal_byte(&s);
            if (i_out >= 0 && p[i_out].revents)
                drain(&s, &s.child.out_fd, &s.out_lines, on_claude_line);
            if (i_err >= 0 && p[i_err].revents)
                drain(&s, &s.child.err_fd, &s.err_lines, on_stderr_line);
            if (i_in >= 0 && p[i_in].revents) flush_stdin(&s);
            if (i_input >= 0 && p[i_input].revents) read_input(&s, cfg->input_fd);
            if (i_ws >= 0 && p[i_ws].revents) read_ws(&s);
            if (i_pid >= 0 && p[i_pid].revents) cc_child_poll(&s.child);
            if (i_tel >= 0 && p[i_tel].revents) cc_trace_otel(cfg->trace);
        }
        cc_trace_tick(cfg->trace); /* turns whose last events are overdue close now */
        if (s.child.pidfd < 0) cc_child_poll(&s.child);
        /* claude is gone: whatever it wrote is in the pipes; read it all, then stop. A
         * grandchild holding the pipes open must not keep the session alive. */
        if (s.child.exited) {
            if (s.child.out_fd >= 0) drain(&s, &s.child.out_fd, &s.out_lines, on_claude_line);
            if (s.child.err_fd >= 0) drain(&s, &s.child.err_fd, &s.err_lines, on_stderr_line);
            break;
        }
        check_deadlines(&s, cc_mono_ms());
    }
    hand_over_signals();
    rc = conclude(&s, end);
out:
    hand_over_signals(); /* (again: idempotent, for the path that never ran the loop) */
    cc_child_reap(&s.child, 0, 0);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    sig_pipe[0] = sig_pipe[1] = -1;
    free_queue(&s);
    free(s.wbuf);
    cc_lines_free(&s.out_lines);
    cc_lines_free(&s.err_lines);
    cc_lines_free(&s.in_lines);
    return rc;
}
