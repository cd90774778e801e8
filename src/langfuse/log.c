/*
 * log.c - the library's log lines: formatted, redacted, one write each.
 *
 * Every message passes through the client's redactor, so a secret that reaches a log line
 * (a server echoing a key in an error body, a URL with a token) is replaced before any sink
 * sees it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "internal.h"
#include "invariant.h"

static void default_sink(void *ud, enum lf_log_level level, const char *msg)
{
    (void)ud;
    static const char *const names[] = {"debug", "info", "warning", "error"};
    char line[2048];
    int n = snprintf(line, sizeof(line), "langfuse: %s: %s\n", names[level & 3], msg);
    if (n < 0) return;
    if ((size_t)n >= sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    /* One write(2): lines from several threads and processes do not interleave. */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

static void vlog(struct lf_client *c, enum lf_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void vlog(struct lf_client *c, enum lf_log_level level, const char *fmt, va_list ap)
{
    if (level == LF_LOG_DEBUG && (!c || !c->conf.debug)) return;
    char raw[1536];
    vsnprintf(raw, sizeof(raw), fmt, ap);
    struct lf__buf out;
    lf__buf_init(&out, sizeof(raw) * 2);
    struct lf__redactor *red = c ? lf__redactor_get(c) : NULL;
    if (red)
        lf__redact_append(red, &out, raw, strlen(raw));
    else
        lf__buf_puts(&out, raw);
    const char *msg = out.data && !lf__buf_failed(&out) ? out.data : "(log line lost: no memory)";
    if (c && c->conf.log)
        c->conf.log(c->conf.log_ud, level, msg);
    else
        default_sink(NULL, level, msg);
    lf__buf_free(&out);
    lf__redactor_free(red);
}

void lf__log(struct lf_client *c, enum lf_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(c, level, fmt, ap);
    va_end(ap);
}

void lf__log_once(struct lf_client *c, int slot, enum lf_log_level level, const char *fmt, ...)
{
    if (c) {
        pthread_mutex_lock(&c->mu);
        int seen = c->reported_status[slot]++;
        pthread_mutex_unlock(&c->mu);
        if (seen) return;
    }
    va_list ap;
    va_start(ap, fmt);
    vlog(c, level, fmt, ap);
    va_end(ap);
}

void lf__invariant_failed(const char *cond, const char *file, int line)
{
    /* no allocation, no lock, no user callback: the state is not to be trusted */
    char msg[512];
    int n =
        snprintf(msg, sizeof msg, "liblangfuse: %s:%d: invariant failed: %s\n", file, line, cond);
    if (n > 0) (void)!write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
    abort();
}
