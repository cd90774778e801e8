/*
 * http.h - the exporter's HTTP client: one POST at a time on a kept-alive connection.
 *
 * Two implementations behind one interface:
 *  - http_plain.c, for http:// servers (in-cluster Langfuse, local receivers): HTTP/1.1
 *    over a plain TCP socket, written here because Debian's libcurl drags in OpenSSL,
 *    GnuTLS, Kerberos, LDAP, libssh2 and more, which cost 8.6 MB of resident memory at
 *    load time (measured; see README, "Foundations") against a 12 MiB budget.
 *  - http_curl.c, for https:// servers: libcurl, loaded with dlopen() only then.
 *
 * Every request is bounded twice: by its own timeout and by an abort time that shutdown
 * may pull in while the request is in flight. A request is begun, then moved on step by
 * step: lf__http_step() returns when the request is done or failed, after a tick
 * (LF__HTTP_TICK_MS) in which it could not move, and at once after lf__http_wakeup(). Between
 * steps the caller is free to do urgent work (the exporter spills a filling queue in the
 * middle of a slow request); nothing in here calls back out.
 */
#ifndef LF_HTTP_H
#define LF_HTTP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define LF__RESP_MAX 65536 /* bytes of a response body kept */
#define LF__HTTP_TICK_MS 50

struct lf__http;

struct lf__http_result {
    int status;          /* HTTP status, 0 when no answer arrived */
    int timed_out;       /* the request's timeout or the abort time passed */
    int aborted;         /* the abort time passed */
    long retry_after_ms; /* from Retry-After, -1 if absent */
    char error[256];     /* why, when status is 0 */
    char *body;          /* response body (NUL-terminated, at most LF__RESP_MAX), owned */
    size_t body_len;
};

/* Headers every request carries. Langfuse v4 takes OTLP requests with the ingestion
 * version 4 on its real-time path (without it, data shows about 10 minutes late); v3 and
 * the legacy endpoint ignore it. The SDK headers name us in the server's logs. */
#define LF__HDR_INGESTION_VERSION "x-langfuse-ingestion-version: 4"
#define LF__HDR_SDK_NAME "x-langfuse-sdk-name: liblangfuse"
#define LF__HDR_SDK_VERSION "x-langfuse-sdk-version: " LF_VERSION_STRING

struct lf__http_opts {
    /* Strings are borrowed for the handle's life (the client's configuration). */
    const char *base_url;   /* "http://host:port[/prefix]" or "https://..." */
    const char *userpwd;    /* "public:secret" for Basic auth; read once, by lf__http_new():
                               libcurl keeps its own copy, the plain client its request head */
    atomic_llong *abort_at; /* CLOCK_MONOTONIC ns read during transfers; 0: none */
};

/* What lf__http_step() says of the request. */
enum lf__http_step {
    LF__HTTP_AGAIN,  /* still under way: step again (after any urgent work) */
    LF__HTTP_DONE,   /* a status arrived: res->status, res->body */
    LF__HTTP_FAILED, /* no status will: res->error says why */
};

/* A client for opts->base_url; NULL with a one-line reason in err (bad URL, https without
 * libcurl, out of memory). */
struct lf__http *lf__http_new(const struct lf__http_opts *opts, char *err, size_t errlen);
void lf__http_free(struct lf__http *h);
/* Forgets the client without closing its connection (it belongs to the parent after
 * fork(): for TLS, closing would write to the parent's stream). */
void lf__http_abandon(struct lf__http *h);
/* Makes a waiting lf__http_step() return soon. Thread-safe, async-signal-safe. */
void lf__http_wakeup(struct lf__http *h);

/*
 * Begins a POST of `body` (JSON, gzip-encoded if `gz`) to base_url + path; `body` and `res`
 * are borrowed until the request ends. 0, or -1 when it cannot begin (res->error). One
 * request at a time per client.
 */
int lf__http_begin(struct lf__http *h, const char *path, const char *body, size_t len, int gz,
                   int timeout_ms, struct lf__http_result *res);
/* Moves the request on; see enum lf__http_step. */
enum lf__http_step lf__http_step(struct lf__http *h, struct lf__http_result *res);
void lf__http_result_free(struct lf__http_result *res);

/* Parses a Retry-After value (delta seconds or an HTTP date) into milliseconds; -1 if
 * unparseable. `now` is the current Unix time in seconds. */
long lf__parse_retry_after(const char *v, long long now);

/* ---- shared by the implementations ---- */

/* The implementations' vtable. */
struct lf__http_impl {
    int (*begin)(struct lf__http *h, const char *path, const char *body, size_t len, int gz,
                 int timeout_ms, struct lf__http_result *res);
    enum lf__http_step (*step)(struct lf__http *h, struct lf__http_result *res);
    void (*wakeup)(struct lf__http *h);
    void (*free)(struct lf__http *h, int abandon);
};

struct lf__http {
    const struct lf__http_impl *impl;
    struct lf__http_opts opts;
};

struct lf__http *lf__http_plain_new(const struct lf__http_opts *opts, char *err, size_t errlen);
struct lf__http *lf__http_curl_new(const struct lf__http_opts *opts, char *err, size_t errlen);

/*
 * Parses the head of an HTTP/1.x response (status line and headers, up to the blank
 * line). Returns the head's length in bytes when complete, 0 when more bytes are needed,
 * -1 when it is malformed. Fills *status, *content_length (-1 if absent), *chunked,
 * *close (the server will close the connection) and *retry_after_ms (-1 if absent).
 */
long lf__http_parse_head(const char *buf, size_t len, int *status, long long *content_length,
                         int *chunked, int *close, long *retry_after_ms, long long now);

/*
 * Decodes chunked transfer coding incrementally. Feed bytes with lf__chunked_feed(); it
 * appends decoded data (up to `keep` bytes in total) to out/out_len and returns the
 * number of input bytes consumed, or -1 on malformed input. *done is set after the last
 * chunk and its trailer.
 */
struct lf__chunked {
    int state;
    unsigned long long left; /* bytes left in the current chunk */
    int digits;
};
long lf__chunked_feed(struct lf__chunked *c, const char *in, size_t n, char *out, size_t keep,
                      size_t *out_len, int *done);

#endif
