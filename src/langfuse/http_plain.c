/*
 * http_plain.c - HTTP/1.1 POST over a plain TCP socket, for http:// servers.
 *
 * Why by hand: see http.h. What it does, all of it bounded by the request's deadline:
 * name resolution (on a thread of its own, so a dead DNS server cannot hold us), a non-blocking
 * connect over every address, one request with Content-Length, and the response read with
 * Content-Length, chunked coding or until close. The connection is kept alive and reused;
 * if a reused connection turns out to be closed before any answer, the request is sent
 * once more on a fresh one (nothing was answered, so nothing can be duplicated: the
 * server's deduplication by id covers the rest).
 *
 * A pipe wakes the wait: lf__http_wakeup() writes a byte, the wait calls on_wait().
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "iov.h"
#include "buf.h"
#include "http.h"
#include "internal.h"
#include "langfuse/langfuse.h"

#define HEAD_MAX 16384
#define DNS_TTL_NS (60LL * 1000000000) /* re-resolve a name at most once a minute */

struct plain {
    struct lf__http base;
    char host[256]; /* as written in the URL, brackets stripped */
    char port[8];
    char prefix[512]; /* path prefix of the base URL, without trailing slash */
    char *head_fixed; /* the request's header lines that never change, precomputed */
    int fd;           /* kept-alive connection, -1 if none */
    int wake[2];      /* wakeup pipe: [0] polled, [1] written */
    struct addrinfo *ai;
    int64_t ai_at; /* when ai was resolved */
};

static int64_t deadline_of(const struct plain *p, int64_t start, int timeout_ms, int *by_abort)
{
    int64_t d = start + (int64_t)timeout_ms * 1000000;
    long long at = p->base.opts.abort_at ? atomic_load(p->base.opts.abort_at) : 0;
    *by_abort = 0;
    if (at && at < d) {
        d = at;
        *by_abort = 1;
    }
    return d;
}

static void drain_wake(struct plain *p)
{
    char buf[64];
    while (read(p->wake[0], buf, sizeof(buf)) > 0)
        ;
}

/*
 * Waits until `fd` is ready for `events`, the deadline passes (returns 0), or an error
 * (-1). Calls on_wait on every tick and wakeup. The deadline is recomputed each round:
 * shutdown may pull the abort time in while we wait.
 */
static int wait_fd(struct plain *p, int fd, short events, int64_t start, int timeout_ms,
                   int *aborted)
{
    for (;;) {
        int by_abort;
        int64_t deadline = deadline_of(p, start, timeout_ms, &by_abort);
        int64_t now = lf__mono_ns();
        if (now >= deadline) {
            *aborted = by_abort;
            return 0;
        }
        int64_t left_ms = (deadline - now + 999999) / 1000000;
        int wait = left_ms < LF__HTTP_TICK_MS ? (int)left_ms : LF__HTTP_TICK_MS;
        struct pollfd fds[2] = {{fd, events, 0}, {p->wake[0], POLLIN, 0}};
        int n = poll(fds, 2, wait);
        if (n < 0 && errno != EINTR) return -1;
        if (n > 0 && (fds[1].revents & POLLIN)) drain_wake(p);
        if (p->base.opts.on_wait) p->base.opts.on_wait(p->base.opts.ud);
        if (n > 0 && fds[0].revents) return 1;
    }
}

static void close_conn(struct plain *p)
{
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
}

/*
 * A name lookup on a thread of its own, so that the caller can give up at its deadline.
 * glibc's getaddrinfo_a() would do, but its thread pool does not survive fork(), and a
 * forked child must be able to send. The lookup is shared by the caller and the thread;
 * whoever finishes with it last frees it.
 */
struct lookup {
    pthread_mutex_t mu;
    pthread_cond_t done_cv;
    int refs, done, rc;
    char host[256], port[8];
    struct addrinfo *result;
};

static void lookup_put(struct lookup *l)
{
    pthread_mutex_lock(&l->mu);
    int last = --l->refs == 0;
    pthread_mutex_unlock(&l->mu);
    if (!last) return;
    if (l->result) freeaddrinfo(l->result);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->done_cv);
    free(l);
}

static void *lookup_main(void *arg)
{
    struct lookup *l = arg;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(l->host, l->port, &hints, &res);
    pthread_mutex_lock(&l->mu);
    l->rc = rc;
    l->result = res;
    l->done = 1;
    pthread_cond_signal(&l->done_cv);
    pthread_mutex_unlock(&l->mu);
    lookup_put(l);
    return NULL;
}

/* Resolves host:port within the deadline; caches the answer for DNS_TTL_NS. */
static int resolve(struct plain *p, int64_t start, int timeout_ms, struct lf__http_result *res)
{
    int64_t now = lf__mono_ns();
    if (p->ai && now - p->ai_at < DNS_TTL_NS) return 0;
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if (getaddrinfo(p->host, p->port, &hints, &ai) == 0) {
        /* an address, not a name: nothing to wait for */
        if (p->ai) freeaddrinfo(p->ai);
        p->ai = ai;
        p->ai_at = lf__mono_ns();
        return 0;
    }
    struct lookup *l = lf__calloc(1, sizeof(*l));
    if (!l) {
        snprintf(res->error, sizeof(res->error), "out of memory");
        return -1;
    }
    pthread_mutex_init(&l->mu, NULL);
    lf__cond_init(&l->done_cv);
    l->refs = 2;
    snprintf(l->host, sizeof(l->host), "%s", p->host);
    snprintf(l->port, sizeof(l->port), "%s", p->port);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* the lookup thread takes no signals */
    int started = pthread_create(&t, &attr, lookup_main, l) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (!started) {
        l->refs = 1;
        lookup_put(l);
        snprintf(res->error, sizeof(res->error), "cannot start a lookup thread");
        return -1;
    }
    int rc = 0;
    pthread_mutex_lock(&l->mu);
    while (!l->done) {
        int by_abort;
        int64_t deadline = deadline_of(p, start, timeout_ms, &by_abort);
        now = lf__mono_ns();
        if (now >= deadline) {
            res->timed_out = 1;
            res->aborted = by_abort;
            snprintf(res->error, sizeof(res->error), "resolving %.100s timed out", p->host);
            rc = -1;
            break;
        }
        int64_t wait = deadline - now < 50000000 ? deadline - now : 50000000;
        lf__cond_wait_until(&l->done_cv, &l->mu, now + wait);
        if (!l->done && p->base.opts.on_wait) {
            pthread_mutex_unlock(&l->mu);
            p->base.opts.on_wait(p->base.opts.ud);
            pthread_mutex_lock(&l->mu);
        }
    }
    if (rc == 0 && l->rc) {
        snprintf(res->error, sizeof(res->error), "cannot resolve %.100s: %s", p->host,
                 gai_strerror(l->rc));
        rc = -1;
    }
    if (rc == 0) {
        if (p->ai) freeaddrinfo(p->ai);
        p->ai = l->result;
        l->result = NULL;
        p->ai_at = lf__mono_ns();
    }
    pthread_mutex_unlock(&l->mu);
    lookup_put(l);
    return rc;
}

static int connect_any(struct plain *p, int64_t start, int timeout_ms, struct lf__http_result *res)
{
    if (resolve(p, start, timeout_ms, res)) return -1;
    int last_err = 0;
    for (struct addrinfo *a = p->ai; a; a = a->ai_next) {
        int fd =
            socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            last_err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            p->fd = fd;
            return 0;
        }
        if (errno != EINPROGRESS) {
            last_err = errno;
            close(fd);
            continue;
        }
        int aborted = 0;
        int w = wait_fd(p, fd, POLLOUT, start, timeout_ms, &aborted);
        if (w == 0) {
            close(fd);
            res->timed_out = 1;
            res->aborted = aborted;
            snprintf(res->error, sizeof(res->error), "connecting to %.100s:%s timed out", p->host,
                     p->port);
            return -1;
        }
        int err = 0;
        socklen_t len = sizeof(err);
        if (w < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
            last_err = err ? err : errno;
            close(fd);
            continue;
        }
        p->fd = fd;
        return 0;
    }
    snprintf(res->error, sizeof(res->error), "cannot connect to %.100s:%s: %s", p->host, p->port,
             strerror(last_err ? last_err : ECONNREFUSED));
    return -1;
}

/* Sends all of iov; 0, or -1 (res says why). */
static int send_all(struct plain *p, struct iovec *iov, int n, int64_t start, int timeout_ms,
                    struct lf__http_result *res)
{
    while (n > 0) {
        struct msghdr m;
        memset(&m, 0, sizeof(m));
        m.msg_iov = iov;
        m.msg_iovlen = (size_t)n;
        ssize_t w = sendmsg(p->fd, &m, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                snprintf(res->error, sizeof(res->error), "send: %s", strerror(errno));
                return -1;
            }
            int aborted = 0;
            int r = wait_fd(p, p->fd, POLLOUT, start, timeout_ms, &aborted);
            if (r <= 0) {
                res->timed_out = r == 0;
                res->aborted = aborted;
                snprintf(res->error, sizeof(res->error), r ? "send failed" : "sending timed out");
                return -1;
            }
            continue;
        }
        lf__iov_advance(&iov, &n, (size_t)w);
    }
    return 0;
}

/* Reads some bytes; >0 count, 0 EOF, -1 error or timeout (res says why). */
static ssize_t recv_some(struct plain *p, char *buf, size_t n, int64_t start, int timeout_ms,
                         struct lf__http_result *res)
{
    for (;;) {
        ssize_t r = recv(p->fd, buf, n, 0);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            snprintf(res->error, sizeof(res->error), "receive: %s", strerror(errno));
            return -1;
        }
        int aborted = 0;
        int w = wait_fd(p, p->fd, POLLIN, start, timeout_ms, &aborted);
        if (w <= 0) {
            res->timed_out = w == 0;
            res->aborted = aborted;
            snprintf(res->error, sizeof(res->error), w ? "receive failed" : "no answer in time");
            return -1;
        }
    }
}

/* A kept-alive connection the server has since closed shows as readable (EOF). */
static int conn_still_open(struct plain *p)
{
    struct pollfd f = {p->fd, POLLIN, 0};
    return poll(&f, 1, 0) == 0;
}

/* A response's head, as read so far. */
struct head {
    char buf[HEAD_MAX];
    size_t len; /* bytes read into buf */
    long size;  /* the head's length within them, once complete */
    int status, chunked, closing;
    long long clen; /* Content-Length, or -1 */
    long retry;     /* Retry-After in ms, or -1 */
};

/* Reads until a final (non-1xx) response head is complete; 0, or -1 with res->error. */
static int read_head(struct plain *p, int64_t start, int timeout_ms, struct lf__http_result *res,
                     int *got_any, struct head *h)
{
    int need_more = 1;
    for (;;) {
        if (need_more) {
            if (h->len == sizeof(h->buf)) {
                snprintf(res->error, sizeof(res->error), "response head larger than %d bytes",
                         HEAD_MAX);
                return -1;
            }
            ssize_t r =
                recv_some(p, h->buf + h->len, sizeof(h->buf) - h->len, start, timeout_ms, res);
            if (r < 0) return -1;
            if (r == 0) {
                snprintf(res->error, sizeof(res->error),
                         "the server closed the connection without an answer");
                return -1;
            }
            *got_any = 1;
            h->len += (size_t)r;
        }
        h->size = lf__http_parse_head(h->buf, h->len, &h->status, &h->clen, &h->chunked,
                                      &h->closing, &h->retry, (long long)time(NULL));
        if (h->size < 0) {
            snprintf(res->error, sizeof(res->error), "malformed response head");
            return -1;
        }
        need_more = h->size == 0;
        if (h->size == 0) continue;
        if (h->status < 100 || h->status >= 200) return 0;
        /* an interim answer: drop it, then look at what follows it */
        memmove(h->buf, h->buf + h->size, h->len - (size_t)h->size);
        h->len -= (size_t)h->size;
        h->size = 0;
        need_more = h->len == 0;
    }
}

/* Reads a chunked body into body (at most LF__RESP_MAX bytes kept), starting with the
 * `nextra` bytes that came after the head. 0, or -1 with res->error. */
static int read_chunked(struct plain *p, int64_t start, int timeout_ms, struct lf__http_result *res,
                        const char *extra, size_t nextra, char *body, size_t *blen, int *closing)
{
    struct lf__chunked ch = {0};
    char chunk[16384];
    int done = 0;
    for (;;) {
        long used = lf__chunked_feed(&ch, extra, nextra, body, LF__RESP_MAX, blen, &done);
        if (used < 0) {
            snprintf(res->error, sizeof(res->error), "malformed chunked body");
            return -1;
        }
        if (done) {
            *closing |= (size_t)used < nextra; /* pipelined junk: do not reuse */
            return 0;
        }
        ssize_t r = recv_some(p, chunk, sizeof(chunk), start, timeout_ms, res);
        if (r <= 0) {
            if (r == 0)
                snprintf(res->error, sizeof(res->error),
                         "the server closed the connection mid-answer");
            return -1;
        }
        extra = chunk;
        nextra = (size_t)r;
    }
}

/* Reads a body of Content-Length `clen` bytes (-1: until the server closes) likewise. */
static int read_sized(struct plain *p, int64_t start, int timeout_ms, struct lf__http_result *res,
                      long long clen, const char *extra, size_t nextra, char *body, size_t *blen,
                      int *closing)
{
    char chunk[16384];
    long long want = clen;
    if (clen < 0) *closing = 1;
    for (;;) {
        size_t take = nextra;
        if (want >= 0 && (long long)take > want) take = (size_t)want;
        if (*blen < LF__RESP_MAX) {
            size_t k = take < LF__RESP_MAX - *blen ? take : LF__RESP_MAX - *blen;
            memcpy(body + *blen, extra, k);
            *blen += k;
        }
        if (want >= 0) {
            want -= (long long)take;
            if (want == 0) {
                *closing |= take < nextra;
                return 0;
            }
        }
        ssize_t r = recv_some(p, chunk, sizeof(chunk), start, timeout_ms, res);
        if (r < 0 || (r == 0 && want >= 0)) {
            if (r == 0)
                snprintf(res->error, sizeof(res->error),
                         "the server closed the connection mid-answer");
            return -1;
        }
        if (r == 0) return 0;
        extra = chunk;
        nextra = (size_t)r;
    }
}

/* Reads one response. Returns 0 with res->status set, or -1. *got_any: some byte of the
 * answer arrived (then a retry on a new connection would not be safe to hide). */
static int read_response(struct plain *p, int64_t start, int timeout_ms,
                         struct lf__http_result *res, int *got_any)
{
    struct head h;
    h.len = 0;
    h.size = 0;
    h.status = h.chunked = h.closing = 0;
    h.clen = -1;
    h.retry = -1;
    *got_any = 0;
    if (read_head(p, start, timeout_ms, res, got_any, &h)) return -1;
    res->retry_after_ms = h.retry;
    char *body = lf__malloc(LF__RESP_MAX + 1);
    size_t blen = 0;
    if (!body) {
        snprintf(res->error, sizeof(res->error), "out of memory");
        return -1;
    }
    const char *extra = h.buf + h.size;
    size_t nextra = h.len - (size_t)h.size;
    int rc = 0;
    if (h.status == 204 || h.status == 304)
        h.closing |= nextra > 0; /* no body: what follows is junk */
    else if (h.chunked)
        rc = read_chunked(p, start, timeout_ms, res, extra, nextra, body, &blen, &h.closing);
    else
        rc = read_sized(p, start, timeout_ms, res, h.clen, extra, nextra, body, &blen, &h.closing);
    if (rc) {
        free(body);
        return -1;
    }
    body[blen] = '\0';
    res->body = body;
    res->body_len = blen;
    res->status = h.status;
    if (h.closing) close_conn(p);
    return 0;
}

static int plain_post(struct lf__http *h, const char *path, const char *body, size_t len, int gz,
                      int timeout_ms, struct lf__http_result *res)
{
    struct plain *p = (struct plain *)h;
    int64_t start = lf__mono_ns();
    char head[2048];
    int hn =
        snprintf(head, sizeof(head),
                 "POST %s%s HTTP/1.1\r\n%s%sContent-Length: %zu\r\nConnection: keep-alive\r\n\r\n",
                 p->prefix, path, p->head_fixed, gz ? "Content-Encoding: gzip\r\n" : "", len);
    if (hn < 0 || (size_t)hn >= sizeof(head)) {
        snprintf(res->error, sizeof(res->error), "request head too long");
        return -1;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        int reused = p->fd >= 0;
        if (reused && !conn_still_open(p)) {
            close_conn(p);
            reused = 0;
        }
        if (p->fd < 0 && connect_any(p, start, timeout_ms, res)) return -1;
        struct iovec iov[2] = {{head, (size_t)hn}, {(void *)body, len}};
        int got_any = 0;
        if (send_all(p, iov, 2, start, timeout_ms, res) == 0 &&
            read_response(p, start, timeout_ms, res, &got_any) == 0)
            return 0;
        close_conn(p);
        /* A kept-alive connection that died before answering: once more, fresh. */
        if (!reused || got_any || res->timed_out) return -1;
        res->error[0] = '\0';
    }
    return -1;
}

static void plain_wakeup(struct lf__http *h)
{
    struct plain *p = (struct plain *)h;
    char one = 1;
    ssize_t w = write(p->wake[1], &one, 1); /* full pipe: a wakeup is pending anyway */
    (void)w;
}

static void plain_free(struct lf__http *h, int abandon)
{
    struct plain *p = (struct plain *)h;
    /* After fork the socket is shared with the parent; closing our descriptor does not
     * affect it (plain TCP, no shutdown()), so abandoning closes it too. */
    (void)abandon;
    close_conn(p);
    if (p->wake[0] >= 0) close(p->wake[0]);
    if (p->wake[1] >= 0) close(p->wake[1]);
    if (p->ai) freeaddrinfo(p->ai);
    lf__free_secret(p->head_fixed); /* it holds the credentials */
    free(p);
}

static const struct lf__http_impl plain_impl = {plain_post, plain_wakeup, plain_free};

static void base64(char *out, const unsigned char *in, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = '\0';
}

/* Splits "http://host[:port][/prefix]". 0, or -1 with a reason. */
static int parse_url(struct plain *p, const char *url, char *err, size_t errlen)
{
    const char *s = url + 7, *host = s, *host_end;
    if (*s == '[') {
        host = s + 1;
        host_end = strchr(host, ']');
        if (!host_end) {
            snprintf(err, errlen, "bad IPv6 address in %.200s", url);
            return -1;
        }
        s = host_end + 1;
    } else {
        host_end = s + strcspn(s, ":/?#");
        s = host_end;
    }
    size_t hl = (size_t)(host_end - host);
    if (hl == 0 || hl >= sizeof(p->host)) {
        snprintf(err, errlen, "no host in %s", url);
        return -1;
    }
    memcpy(p->host, host, hl);
    p->host[hl] = '\0';
    if (strpbrk(p->host, "% \r\n@")) {
        snprintf(err, errlen, "bad host in %s", url);
        return -1;
    }
    strcpy(p->port, "80");
    if (*s == ':') {
        s++;
        size_t pl = strspn(s, "0123456789");
        long port = strtol(s, NULL, 10);
        if (pl == 0 || pl > 5 || port < 1 || port > 65535) {
            snprintf(err, errlen, "bad port in %s", url);
            return -1;
        }
        snprintf(p->port, sizeof(p->port), "%ld", port);
        s += pl;
    }
    if (*s && *s != '/') {
        snprintf(err, errlen, "cannot read %s as http://host[:port][/path]", url);
        return -1;
    }
    size_t plen = strlen(s);
    while (plen && s[plen - 1] == '/')
        plen--;
    if (plen >= sizeof(p->prefix) || memchr(s, '\r', plen) || memchr(s, '\n', plen) ||
        memchr(s, ' ', plen)) {
        snprintf(err, errlen, "bad path in %s", url);
        return -1;
    }
    memcpy(p->prefix, s, plen);
    p->prefix[plen] = '\0';
    return 0;
}

struct lf__http *lf__http_plain_new(const struct lf__http_opts *opts, char *err, size_t errlen)
{
    struct plain *p = lf__calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->base.impl = &plain_impl;
    p->base.opts = *opts;
    p->fd = -1;
    p->wake[0] = p->wake[1] = -1;
    if (parse_url(p, opts->base_url, err, errlen)) goto fail;
    if (pipe2(p->wake, O_NONBLOCK | O_CLOEXEC)) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    size_t ul = strlen(opts->userpwd);
    char *auth = lf__malloc(ul * 4 / 3 + 8);
    int is_v6 = strchr(p->host, ':') != NULL;
    size_t fl = ul * 4 / 3 + strlen(p->host) + 512;
    p->head_fixed = lf__malloc(fl);
    if (!auth || !p->head_fixed) {
        free(auth);
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    base64(auth, (const unsigned char *)opts->userpwd, ul);
    /* The header lines every request repeats; the request line, the encoding and the
     * length are written per request, with a literal format. */
    snprintf(p->head_fixed, fl,
             "Host: %s%s%s%s%s\r\nAuthorization: Basic %s\r\n"
             "User-Agent: liblangfuse/" LF_VERSION_STRING
             "\r\nContent-Type: application/json\r\n" LF__HDR_INGESTION_VERSION
             "\r\n" LF__HDR_SDK_NAME "\r\n" LF__HDR_SDK_VERSION "\r\n",
             is_v6 ? "[" : "", p->host, is_v6 ? "]" : "", strcmp(p->port, "80") ? ":" : "",
             strcmp(p->port, "80") ? p->port : "", auth);
    lf__free_secret(auth);
    return &p->base;
fail:
    plain_free(&p->base, 0);
    return NULL;
}
