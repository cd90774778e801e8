/*
 * http.h - one HTTP POST at a time over a kept-alive libcurl handle, and gzip.
 *
 * Used only by the exporter thread. Every request is bounded twice: by its own timeout and
 * by an abort time that flush and shutdown may pull in while the request is in flight
 * (checked from libcurl's progress callback), so no server can hold the exporter past a
 * deadline.
 */
#ifndef LF_HTTP_H
#define LF_HTTP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define LF__RESP_MAX 65536 /* bytes of a response body kept */

struct lf__http;

struct lf__http_result {
    int status;            /* HTTP status, 0 when no answer arrived */
    int timed_out;         /* the request's timeout or the abort time passed */
    int aborted;           /* the abort time passed */
    long retry_after_ms;   /* from Retry-After, -1 if absent */
    char error[256];       /* libcurl's reason when status is 0 */
    char *body;            /* response body (NUL-terminated, at most LF__RESP_MAX), owned */
    size_t body_len;
};

/* `abort_at` points at a CLOCK_MONOTONIC nanosecond time (0: none) read during transfers. */
struct lf__http *lf__http_new(const char *userpwd, atomic_llong *abort_at);
void lf__http_free(struct lf__http *h);
/* Forgets the handle without closing its sockets (they belong to a parent after fork). */
void lf__http_abandon(struct lf__http *h);

/*
 * POSTs `body` as application/json (gzip-encoded if `gz`). Returns 0 when a status arrived
 * (see res->status), -1 when none did (res->error says why). Caller frees res->body with
 * lf__http_result_free().
 */
int lf__http_post(struct lf__http *h, const char *url, const char *body, size_t len, int gz,
                  int timeout_ms, struct lf__http_result *res);
void lf__http_result_free(struct lf__http_result *res);

/* Parses a Retry-After value (delta seconds or an HTTP date) into milliseconds; -1 if
 * unparseable. `now` is the current Unix time in seconds. */
long lf__parse_retry_after(const char *v, long long now);

/* gzip (RFC 1952) of `in` into a malloc'd buffer; 0 on success. */
int lf__gzip(const char *in, size_t len, int level, char **out, size_t *out_len);
/* gunzip with an output cap; 0 on success, -1 on bad data, -2 when larger than `max`. */
int lf__gunzip(const char *in, size_t len, size_t max, char **out, size_t *out_len);

#endif
