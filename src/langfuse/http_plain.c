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
 * The request is a state machine (resolving, connecting, sending, reading the head, reading
 * the body) that each lf__http_step() moves on as far as it goes without blocking, waiting
 * for its descriptor at most LF__HTTP_TICK_MS at a time. It returns LF__HTTP_AGAIN after a
 * tick in which nothing could be done, or at once when a pipe ends the wait:
 * lf__http_wakeup() writes a byte.
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
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "iov.h"
#include "buf.h"
#include "http.h"
#include "internal.h"
#include "invariant.h"
#include "langfuse/langfuse.h"

#define HEAD_MAX 16384
#define DNS_TTL_NS (60LL * 1000000000) /* re-resolve a name at most once a minute */

/* Where a request in flight stands. */
enum phase { IDLE, RESOLVING, CONNECTING, SENDING, HEAD, BODY };

/* A response's head, as read so far. */
struct head {
    char buf[HEAD_MAX];
    size_t len; /* bytes read into buf */
    long size;  /* the head's length within them, once complete */
    int status, chunked, closing;
    long long clen; /* Content-Length, or -1 */
    long retry;     /* Retry-After in ms, or -1 */
};

struct lookup;

struct plain {
    struct lf__http base;
    char host[256]; /* as written in the URL, brackets stripped */
    char port[8];
    char prefix[512]; /* path prefix of the base URL, without trailing slash */
    char *head_fixed; /* the request's header lines that never change, precomputed */
    int fd;           /* the connection (kept alive, or being made), -1 if none */
    int wake[2];      /* wakeup pipe: [0] polled, [1] written */
    struct addrinfo *ai;
    int64_t ai_at; /* when ai was resolved */

    /* The request in flight: lf__http_begin() sets it up, each step moves it on. */
    enum phase phase;
    int64_t start;
    int timeout_ms;
    int reused;  /* sent on a kept-alive connection */
    int got_any; /* some byte of the answer arrived */
    char req[2048];
    size_t req_len;
    const char *send_body; /* borrowed until the request ends */
    size_t send_len;
    struct iovec iov_store[2], *iov;
    int niov;
    struct lookup *lookup;   /* a name lookup under way */
    struct addrinfo *trying; /* the address being connected to */
    int last_err;            /* why the last address failed */
    struct head *h;          /* the answer's head (allocated once, reused) */
    char *body;              /* the answer's body, LF__RESP_MAX + 1 bytes */
    size_t blen;
    long long want; /* body bytes still to come; -1: until the server closes */
    struct lf__chunked ch;
};

static int64_t deadline_of(const struct plain *p, int *by_abort)
{
    int64_t d = p->start + (int64_t)p->timeout_ms * 1000000;
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

static void close_conn(struct plain *p)
{
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
}

/*
 * A name lookup on a thread of its own, so that the caller can give up at its deadline.
 * glibc's getaddrinfo_a() would do, but its thread pool does not survive fork(), and a
 * forked child must be able to send. The lookup is shared by the caller and the thread;
 * whoever finishes with it last frees it. The thread signals `efd` when done, which the
 * request's wait polls.
 */
struct lookup {
    pthread_mutex_t mu;
    int refs, done, rc;
    int efd;
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
    close(l->efd);
    pthread_mutex_destroy(&l->mu);
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
    uint64_t one = 1;
    ssize_t w = write(l->efd, &one, sizeof(one)); /* cannot fail: the counter is far from full */
    (void)w;
    pthread_mutex_unlock(&l->mu);
    lookup_put(l);
    return NULL;
}

static int lookup_start(struct plain *p, struct lf__http_result *res)
{
    struct lookup *l = lf__calloc(1, sizeof(*l));
    if (!l) {
        snprintf(res->error, sizeof(res->error), "out of memory");
        return -1;
    }
    l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->efd < 0) {
        free(l);
        snprintf(res->error, sizeof(res->error), "eventfd: %s", strerror(errno));
        return -1;
    }
    pthread_mutex_init(&l->mu, NULL);
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
    p->lookup = l;
    return 0;
}

static void set_addresses(struct plain *p, struct addrinfo *ai)
{
    if (p->ai) freeaddrinfo(p->ai);
    p->ai = ai;
    p->ai_at = lf__mono_ns();
    p->trying = ai;
    p->last_err = 0;
    p->phase = CONNECTING;
}

/* What advance() tells step(). */
enum { ADV_WAIT, ADV_DONE, ADV_FAILED };

/* Resolves host:port (an address at once, a name on the lookup thread; the answer is kept
 * DNS_TTL_NS), then goes on to connect. */
static int resolving(struct plain *p, struct lf__http_result *res, struct pollfd *pf)
{
    if (!p->lookup) {
        if (p->ai && lf__mono_ns() - p->ai_at < DNS_TTL_NS) {
            p->trying = p->ai;
            p->last_err = 0;
            p->phase = CONNECTING;
            return ADV_WAIT; /* nothing to wait for: advance() goes on */
        }
        struct addrinfo hints, *ai = NULL;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
        if (getaddrinfo(p->host, p->port, &hints, &ai) == 0) {
            set_addresses(p, ai); /* an address, not a name */
            return ADV_WAIT;
        }
        if (lookup_start(p, res)) return ADV_FAILED;
    }
    struct lookup *l = p->lookup;
    pthread_mutex_lock(&l->mu);
    int done = l->done, rc = l->rc;
    struct addrinfo *ai = l->result;
    l->result = NULL;
    pthread_mutex_unlock(&l->mu);
    if (!done) {
        *pf = (struct pollfd){l->efd, POLLIN, 0};
        return ADV_WAIT;
    }
    p->lookup = NULL;
    lookup_put(l);
    if (rc) {
        snprintf(res->error, sizeof(res->error), "cannot resolve %.100s: %s", p->host,
                 gai_strerror(rc));
        return ADV_FAILED;
    }
    set_addresses(p, ai);
    return ADV_WAIT;
}

/* Connects to each address in turn, without blocking; then goes on to send. */
static int connecting(struct plain *p, struct lf__http_result *res, struct pollfd *pf)
{
    if (p->fd >= 0) { /* a connect under way: finished yet? */
        struct pollfd f = {p->fd, POLLOUT, 0};
        if (poll(&f, 1, 0) <= 0) { /* not yet (or EINTR): wait */
            *pf = f;
            return ADV_WAIT;
        }
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && !err) {
            p->phase = SENDING;
            return ADV_WAIT;
        }
        p->last_err = err ? err : errno;
        close_conn(p);
        p->trying = p->trying->ai_next;
    }
    for (; p->trying; p->trying = p->trying->ai_next) {
        const struct addrinfo *a = p->trying;
        int fd =
            socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            p->last_err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        int rc = connect(fd, a->ai_addr, a->ai_addrlen);
        if (rc == 0 || errno == EINPROGRESS) {
            p->fd = fd;
            if (rc == 0)
                p->phase = SENDING;
            else
                *pf = (struct pollfd){fd, POLLOUT, 0};
            return ADV_WAIT;
        }
        p->last_err = errno;
        close(fd);
    }
    snprintf(res->error, sizeof(res->error), "cannot connect to %.100s:%s: %s", p->host, p->port,
             strerror(p->last_err ? p->last_err : ECONNREFUSED));
    return ADV_FAILED;
}

static int sending(struct plain *p, struct lf__http_result *res, struct pollfd *pf)
{
    while (p->niov > 0) {
        struct msghdr m;
        memset(&m, 0, sizeof(m));
        m.msg_iov = p->iov;
        m.msg_iovlen = (size_t)p->niov;
        ssize_t w = sendmsg(p->fd, &m, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                *pf = (struct pollfd){p->fd, POLLOUT, 0};
                return ADV_WAIT;
            }
            snprintf(res->error, sizeof(res->error), "send: %s", strerror(errno));
            return ADV_FAILED;
        }
        lf__iov_advance(&p->iov, &p->niov, (size_t)w);
    }
    struct head *h = p->h;
    h->len = 0;
    h->size = 0;
    h->status = h->chunked = h->closing = 0;
    h->clen = -1;
    h->retry = -1;
    p->phase = HEAD;
    return ADV_WAIT;
}

/* Reads some bytes: >0 a count, 0 EOF, -1 nothing yet (*pf set), -2 an error (res says). */
static ssize_t recv_some(struct plain *p, char *buf, size_t n, struct lf__http_result *res,
                         struct pollfd *pf)
{
    for (;;) {
        ssize_t r = recv(p->fd, buf, n, 0);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *pf = (struct pollfd){p->fd, POLLIN, 0};
            return -1;
        }
        snprintf(res->error, sizeof(res->error), "receive: %s", strerror(errno));
        return -2;
    }
}

/* Takes body bytes: a chunked body decoded, a sized one counted down; ADV_DONE at its end. */
static int take_body(struct plain *p, const char *in, size_t n, struct lf__http_result *res)
{
    struct head *h = p->h;
    if (h->chunked) {
        int done = 0;
        long used = lf__chunked_feed(&p->ch, in, n, p->body, LF__RESP_MAX, &p->blen, &done);
        if (used < 0) {
            snprintf(res->error, sizeof(res->error), "malformed chunked body");
            return ADV_FAILED;
        }
        h->closing |= done && (size_t)used < n; /* pipelined junk: do not reuse */
        return done ? ADV_DONE : ADV_WAIT;
    }
    size_t take = n;
    if (p->want >= 0 && (long long)take > p->want) take = (size_t)p->want;
    if (p->blen < LF__RESP_MAX) {
        size_t k = take < LF__RESP_MAX - p->blen ? take : LF__RESP_MAX - p->blen;
        memcpy(p->body + p->blen, in, k);
        p->blen += k;
    }
    if (p->want < 0) return ADV_WAIT;
    p->want -= (long long)take;
    h->closing |= take < n;
    return p->want == 0 ? ADV_DONE : ADV_WAIT;
}

/* Reads until a final (non-1xx) response head is complete, then goes on to its body. */
static int reading_head(struct plain *p, struct lf__http_result *res, struct pollfd *pf)
{
    struct head *h = p->h;
    for (;;) {
        h->size = lf__http_parse_head(h->buf, h->len, &h->status, &h->clen, &h->chunked,
                                      &h->closing, &h->retry, (long long)time(NULL));
        if (h->size < 0) {
            snprintf(res->error, sizeof(res->error), "malformed response head");
            return ADV_FAILED;
        }
        if (h->size > 0 && h->status >= 100 && h->status < 200) {
            /* an interim answer: drop it, then look at what follows it */
            memmove(h->buf, h->buf + h->size, h->len - (size_t)h->size);
            h->len -= (size_t)h->size;
            continue;
        }
        if (h->size > 0) break;
        if (h->len == sizeof(h->buf)) {
            snprintf(res->error, sizeof(res->error), "response head larger than %d bytes",
                     HEAD_MAX);
            return ADV_FAILED;
        }
        ssize_t r = recv_some(p, h->buf + h->len, sizeof(h->buf) - h->len, res, pf);
        if (r == -1) return ADV_WAIT;
        if (r == 0)
            snprintf(res->error, sizeof(res->error),
                     "the server closed the connection without an answer");
        if (r <= 0) return ADV_FAILED;
        p->got_any = 1;
        h->len += (size_t)r;
    }
    res->retry_after_ms = h->retry;
    if (!p->body) p->body = lf__malloc(LF__RESP_MAX + 1);
    if (!p->body) {
        snprintf(res->error, sizeof(res->error), "out of memory");
        return ADV_FAILED;
    }
    p->blen = 0;
    memset(&p->ch, 0, sizeof(p->ch));
    p->want = h->clen;
    const char *extra = h->buf + h->size;
    size_t nextra = h->len - (size_t)h->size;
    if (h->status == 204 || h->status == 304) {
        h->closing |= nextra > 0; /* no body: what follows is junk */
        return ADV_DONE;
    }
    if (!h->chunked && h->clen < 0) h->closing = 1; /* the body ends when the server closes */
    p->phase = BODY;
    return take_body(p, extra, nextra, res);
}

static int reading_body(struct plain *p, struct lf__http_result *res, struct pollfd *pf)
{
    char chunk[16384];
    /* A server that sends faster than we read would keep us here: after 1 MiB, let the
     * step look at the deadline and the wakeup pipe. */
    for (int reads = 0;; reads++) {
        if (reads == 64) {
            *pf = (struct pollfd){p->fd, POLLIN, 0};
            return ADV_WAIT;
        }
        ssize_t r = recv_some(p, chunk, sizeof(chunk), res, pf);
        if (r == -1) return ADV_WAIT;
        if (r == 0 && !p->h->chunked && p->want < 0) return ADV_DONE;
        if (r == 0)
            snprintf(res->error, sizeof(res->error), "the server closed the connection mid-answer");
        if (r <= 0) return ADV_FAILED;
        int a = take_body(p, chunk, (size_t)r, res);
        if (a != ADV_WAIT) return a;
    }
}

/* A kept-alive connection the server has since closed shows as readable (EOF). */
static int conn_still_open(struct plain *p)
{
    struct pollfd f = {p->fd, POLLIN, 0};
    return poll(&f, 1, 0) == 0;
}

/* Sends the request on the kept-alive connection if it is still open, else on a new one. */
static void attempt(struct plain *p)
{
    if (p->fd >= 0 && !conn_still_open(p)) close_conn(p);
    p->reused = p->fd >= 0;
    p->got_any = 0;
    p->iov_store[0] = (struct iovec){p->req, p->req_len};
    p->iov_store[1] = (struct iovec){(void *)p->send_body, p->send_len};
    p->iov = p->iov_store;
    p->niov = 2;
    p->phase = p->reused ? SENDING : RESOLVING;
}

/*
 * Moves the request on as far as it goes without waiting. ADV_WAIT with *pf set when it
 * must wait for a descriptor; with pf->fd < 0 when a phase ended and the next is to run.
 */
static int advance(struct plain *p, struct lf__http_result *res, struct pollfd *pf)
{
    for (;;) {
        *pf = (struct pollfd){-1, 0, 0};
        int a;
        switch (p->phase) {
        case RESOLVING:
            a = resolving(p, res, pf);
            break;
        case CONNECTING:
            a = connecting(p, res, pf);
            break;
        case SENDING:
            a = sending(p, res, pf);
            break;
        case HEAD:
            a = reading_head(p, res, pf);
            break;
        case BODY:
            a = reading_body(p, res, pf);
            break;
        default:
            LF_INVARIANT(!"a step with no request in flight");
            return ADV_FAILED;
        }
        if (a != ADV_WAIT || pf->fd >= 0) return a;
    }
}

/* What a timed-out request was doing, for its error line. */
static void timed_out(struct plain *p, struct lf__http_result *res, int by_abort)
{
    res->timed_out = 1;
    res->aborted = by_abort;
    switch (p->phase) {
    case RESOLVING:
        snprintf(res->error, sizeof(res->error), "resolving %.100s timed out", p->host);
        break;
    case CONNECTING:
        snprintf(res->error, sizeof(res->error), "connecting to %.100s:%s timed out", p->host,
                 p->port);
        break;
    case SENDING:
        snprintf(res->error, sizeof(res->error), "sending timed out");
        break;
    default:
        snprintf(res->error, sizeof(res->error), "no answer in time");
        break;
    }
}

/* Ends the request in flight: the connection stays only after a complete, reusable answer. */
static void finish(struct plain *p, int keep)
{
    if (p->lookup) lookup_put(p->lookup);
    p->lookup = NULL;
    if (!keep || p->h->closing) close_conn(p);
    p->phase = IDLE;
}

static int plain_begin(struct lf__http *h, const char *path, const char *body, size_t len, int gz,
                       int timeout_ms, struct lf__http_result *res)
{
    struct plain *p = (struct plain *)h;
    LF_INVARIANT(p->phase == IDLE);
    if (!p->h) p->h = lf__malloc(sizeof(*p->h));
    if (!p->h) {
        snprintf(res->error, sizeof(res->error), "out of memory");
        return -1;
    }
    p->start = lf__mono_ns();
    p->timeout_ms = timeout_ms;
    int hn =
        snprintf(p->req, sizeof(p->req),
                 "POST %s%s HTTP/1.1\r\n%s%sContent-Length: %zu\r\nConnection: keep-alive\r\n\r\n",
                 p->prefix, path, p->head_fixed, gz ? "Content-Encoding: gzip\r\n" : "", len);
    if (hn < 0 || (size_t)hn >= sizeof(p->req)) {
        snprintf(res->error, sizeof(res->error), "request head too long");
        return -1;
    }
    p->req_len = (size_t)hn;
    p->send_body = body;
    p->send_len = len;
    attempt(p);
    return 0;
}

static enum lf__http_step plain_step(struct lf__http *h, struct lf__http_result *res)
{
    struct plain *p = (struct plain *)h;
    for (;;) {
        struct pollfd pf;
        int a = advance(p, res, &pf);
        if (a == ADV_DONE) {
            p->body[p->blen] = '\0';
            res->body = p->body;
            res->body_len = p->blen;
            res->status = p->h->status;
            p->body = NULL;
            finish(p, 1);
            return LF__HTTP_DONE;
        }
        if (a == ADV_FAILED) {
            /* A kept-alive connection that died before answering: once more, fresh (nothing
             * was answered, so nothing can be duplicated). */
            if (p->reused && !p->got_any) { /* once: the new connection is not reused */
                close_conn(p);
                res->error[0] = '\0';
                attempt(p);
                continue;
            }
            finish(p, 0);
            return LF__HTTP_FAILED;
        }
        int by_abort;
        int64_t deadline = deadline_of(p, &by_abort), now = lf__mono_ns();
        if (now >= deadline) {
            timed_out(p, res, by_abort);
            finish(p, 0);
            return LF__HTTP_FAILED;
        }
        int64_t left_ms = (deadline - now + 999999) / 1000000;
        struct pollfd fds[2] = {pf, {p->wake[0], POLLIN, 0}};
        int n = poll(fds, 2, left_ms < LF__HTTP_TICK_MS ? (int)left_ms : LF__HTTP_TICK_MS);
        if (n < 0 && errno != EINTR) {
            snprintf(res->error, sizeof(res->error), "poll: %s", strerror(errno));
            finish(p, 0);
            return LF__HTTP_FAILED;
        }
        if (n > 0 && (fds[1].revents & POLLIN)) {
            drain_wake(p);
            return LF__HTTP_AGAIN; /* woken: the caller has something to do */
        }
        if (n <= 0) return LF__HTTP_AGAIN; /* a tick with nothing to read or write */
    }
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
     * affect it (plain TCP, no shutdown()), so abandoning closes it too. A lookup under way
     * is the parent's thread's, which did not come along: its lock may have been held at the
     * fork, so the child leaves the copy alone but for its descriptor (set before the
     * thread started, so read without the lock). */
    if (abandon && p->lookup) {
        close(p->lookup->efd);
        p->lookup = NULL;
    }
    if (p->phase != IDLE) finish(p, 0);
    close_conn(p);
    if (p->wake[0] >= 0) close(p->wake[0]);
    if (p->wake[1] >= 0) close(p->wake[1]);
    if (p->ai) freeaddrinfo(p->ai);
    free(p->h);
    free(p->body);
    lf__free_secret(p->head_fixed); /* it holds the credentials */
    free(p);
}

static const struct lf__http_impl plain_impl = {plain_begin, plain_step, plain_wakeup, plain_free};

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
