/*
 * kube.c - requests and watches against the Kubernetes API over libcurl; see kube.h. Where
 * the server is and the credentials come from kubeconfig.c.
 *
 * Requests run one at a time on one easy handle, reset between requests but never cleaned
 * up, so its connection (and TLS session) stays open from one request to the next. Watches
 * are easy handles in one multi handle; co_kube_wait drives them all with curl_multi_poll,
 * which sleeps in poll() until a socket, the caller's extra fd or curl's own timer is due:
 * it never spins.
 *
 * Bounds: a response body is at most 64 MiB (beyond, the request fails); a watch line at
 * most 16 MiB (beyond, the watch ends); a watch's undelivered events at most
 * QUEUE_MAX_EVENTS or QUEUE_MAX_BYTES, past which its transfer is paused (curl keeps the
 * rest in the socket) until the caller has taken some.
 *
 * Secrets: the token is copied into each request's Authorization header; those header lists
 * are wiped before they are freed. The TLS key stays in struct co__tls (kubeconfig.c wipes
 * it); curl is handed it without a copy (CURL_BLOB_NOCOPY).
 */
#include "kube_int.h"
#include "log.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CO_VERSION
#define CO_VERSION "dev"
#endif

#define BODY_MAX (64u << 20)        /* a response body */
#define LINE_MAX_BYTES (16u << 20)  /* a watch line (one event) */
#define ERRBODY_MAX (64u << 10)     /* the body of a watch's non-200 answer, for its message */
#define QUEUE_MAX_EVENTS 4096       /* a watch's decoded, undelivered events ... */
#define QUEUE_MAX_BYTES (32u << 20) /* ... and the bytes of their lines */
#define CONNECT_TIMEOUT_MS 10000L
#define URL_MAX 8192

/* A decoded event waiting for co_kube_wait. */
struct queued {
    json_t *event;     /* owned */
    size_t line_bytes; /* the length of its line, what it is counted as in queue_bytes */
};

/* One open watch. */
struct co_watch {
    struct co_kube *k;              /* borrowed: the client it was opened on */
    CURL *easy;                     /* owned; in k->multi until closed */
    struct curl_slist *headers;     /* owned, holds the token: wiped before free */
    void *user;                     /* the caller's, borrowed */
    struct co_watch *prev, *next;   /* in k->watches */
    long status;                    /* HTTP status, 0 before one came */
    bool done;                      /* the transfer finished (curl said CURLMSG_DONE) */
    bool ended_told;                /* co_kube_wait returned CO_WAIT_ENDED for it */
    bool failed;                    /* this file ended it (a line too long or undecodable) */
    bool paused;                    /* the transfer is paused: the queue is full */
    char error[256];                /* why it ended, "" if it ended cleanly */
    char curl_err[CURL_ERROR_SIZE]; /* curl's own detail of a transport error */
    char *line;                     /* the partial line so far, owned, at most LINE_MAX_BYTES */
    size_t line_len, line_cap;
    char *errbody; /* a non-200 answer's body, owned, at most ERRBODY_MAX */
    size_t errbody_len;
    struct queued *queue; /* decoded events, a ring of queue_cap, owned */
    size_t queue_head, queue_len, queue_cap;
    size_t queue_bytes; /* the sum of their line_bytes */
};

/* A response body being received: at most BODY_MAX bytes. */
struct body_buf {
    char *data; /* owned */
    size_t len, cap;
    bool too_big;
};

/* Frees a header list after wiping each header: one of them carries the token. */
static void free_headers(struct curl_slist *h)
{
    for (struct curl_slist *p = h; p; p = p->next)
        explicit_bzero(p->data, strlen(p->data));
    curl_slist_free_all(h);
}

/* The headers of a request: Accept, the token, the body's type when there is one. NULL when
 * out of memory. */
static struct curl_slist *make_headers(const struct co_kube *k, const char *content_type)
{
    struct curl_slist *h = NULL, *n;
    if (!(n = curl_slist_append(h, "Accept: application/json"))) goto fail;
    h = n;
    /* No "Expect: 100-continue" round trip before a large body. */
    if (!(n = curl_slist_append(h, "Expect:"))) goto fail;
    h = n;
    if (content_type) {
        char ct[160];
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
        if (!(n = curl_slist_append(h, ct))) goto fail;
        h = n;
    }
    if (k->token.value) {
        size_t len = strlen(k->token.value) + sizeof "Authorization: Bearer ";
        char *auth = malloc(len);
        if (!auth) goto fail;
        snprintf(auth, len, "Authorization: Bearer %s", k->token.value);
        n = curl_slist_append(h, auth);
        explicit_bzero(auth, len);
        free(auth);
        if (!n) goto fail;
        h = n;
    }
    return h;
fail:
    free_headers(h);
    return NULL;
}

/* The options every handle shares: TLS material, agent, keepalive, no signals. */
static int setup_common(const struct co_kube *k, CURL *e, char *curl_err)
{
    const struct co__tls *t = &k->tls;
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val);                                    \
    } while (0)
    SET(CURLOPT_ERRORBUFFER, curl_err);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_USERAGENT, k->user_agent);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_TCP_KEEPIDLE, 30L);
    SET(CURLOPT_TCP_KEEPINTVL, 15L);
    if (t->ca_pem || t->ca_file) {
        /* The cluster's CA replaces the system's, directory included. */
        SET(CURLOPT_CAPATH, (char *)NULL);
        if (t->ca_pem) {
            struct curl_blob b = {.data = t->ca_pem, .len = t->ca_len, .flags = CURL_BLOB_NOCOPY};
            SET(CURLOPT_CAINFO_BLOB, &b);
        } else {
            SET(CURLOPT_CAINFO, t->ca_file);
        }
    }
    if (t->cert_pem) {
        struct curl_blob b = {.data = t->cert_pem, .len = t->cert_len, .flags = CURL_BLOB_NOCOPY};
        SET(CURLOPT_SSLCERT_BLOB, &b);
        SET(CURLOPT_SSLCERTTYPE, "PEM");
    } else if (t->cert_file) {
        SET(CURLOPT_SSLCERT, t->cert_file);
        SET(CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (t->key_pem) {
        struct curl_blob b = {.data = t->key_pem, .len = t->key_len, .flags = CURL_BLOB_NOCOPY};
        SET(CURLOPT_SSLKEY_BLOB, &b);
        SET(CURLOPT_SSLKEYTYPE, "PEM");
    } else if (t->key_file) {
        SET(CURLOPT_SSLKEY, t->key_file);
        SET(CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (t->insecure) {
        SET(CURLOPT_SSL_VERIFYPEER, 0L);
        SET(CURLOPT_SSL_VERIFYHOST, 0L);
    }
#undef SET
    return rc == CURLE_OK ? 0 : -1;
}

/* server + path into url; -1 when it does not fit or path is not absolute. */
static int make_url(const struct co_kube *k, const char *path, char *url, size_t len)
{
    if (!path || path[0] != '/') return -1;
    int n = snprintf(url, len, "%s%s", k->server, path);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Copies msg into dst (of dstlen), shortened with "..." when it does not fit. */
static void shorten(char *dst, size_t dstlen, const char *msg)
{
    size_t n = strlen(msg);
    if (n < dstlen) {
        memcpy(dst, msg, n + 1);
        return;
    }
    snprintf(dst, dstlen, "%.*s...", (int)(dstlen - 4), msg);
}

/* ---- requests ------------------------------------------------------------------------- */

static size_t body_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body_buf *b = userdata;
    size_t n = size * nmemb;
    if (n > BODY_MAX - b->len) {
        b->too_big = true;
        return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* One attempt of a request. 0 when a response came (out->status set, *body filled). */
static int request_once(struct co_kube *k, const char *method, const char *url, const char *payload,
                        const char *content_type, long timeout_ms, struct body_buf *body,
                        struct co_response *out)
{
    char curl_err[CURL_ERROR_SIZE] = "";
    CURL *e = k->easy;
    struct curl_slist *headers = NULL;
    int rc = -1;
    curl_easy_reset(e); /* options only: the connection cache stays */
    headers = make_headers(k, payload ? content_type : NULL);
    if (!headers || setup_common(k, e, curl_err) ||
        curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                         timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS) ||
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_write) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEDATA, body) != CURLE_OK) {
        co_errf(out->err, sizeof out->err, "%s %.100s: out of memory setting up the request",
                method, url);
        goto done;
    }
    if (payload) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(payload));
    } else if (!strcmp(method, "HEAD")) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    }
    CURLcode cc = curl_easy_perform(e);
    if (cc != CURLE_OK) {
        if (body->too_big)
            co_errf(out->err, sizeof out->err, "%s %.100s: the response is larger than %u MiB",
                    method, url, BODY_MAX >> 20);
        else
            co_errf(out->err, sizeof out->err, "%s %.100s: %s", method, url,
                    curl_err[0] ? curl_err : curl_easy_strerror(cc));
        goto done;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
    rc = 0;
done:
    free_headers(headers);
    return rc;
}

int co_kube_request(struct co_kube *k, const char *method, const char *path, const json_t *body,
                    const char *content_type, long timeout_ms, struct co_response *out)
{
    char url[URL_MAX];
    char token_err[256] = "";
    char *payload = NULL;
    struct body_buf b = {0};
    int rc = -1;
    *out = (struct co_response){0};
    if (timeout_ms <= 0) timeout_ms = 30000;
    if (make_url(k, path, url, sizeof url)) {
        co_errf(out->err, sizeof out->err, "%s %.100s: the path must start with / and fit %d bytes",
                method, path ? path : "(null)", URL_MAX);
        return -1;
    }
    if (body) {
        payload = json_dumps(body, JSON_COMPACT);
        if (!payload) {
            co_errf(out->err, sizeof out->err, "%s %.100s: the body cannot be encoded", method,
                    path);
            return -1;
        }
    }
    co__token_refresh(&k->token, false, token_err, sizeof token_err);
    for (int attempt = 0;; attempt++) {
        rc = request_once(k, method, url, payload, content_type ? content_type : "application/json",
                          timeout_ms, &b, out);
        /* A 401 may mean the token rotated under us: read the file again, and if it did
         * change, try once more with the new token (the server refused the request, so it
         * did nothing). */
        if (rc == 0 && out->status == 401 && attempt == 0 && k->token.file &&
            co__token_refresh(&k->token, true, token_err, sizeof token_err) == 1) {
            b.len = 0;
            continue;
        }
        break;
    }
    if (rc == 0) {
        char *ct = NULL;
        curl_easy_getinfo(k->easy, CURLINFO_CONTENT_TYPE, &ct);
        if (b.len && ct && strstr(ct, "json"))
            out->body = json_loadb(b.data, b.len, JSON_ALLOW_NUL, NULL);
        if (out->status >= 400) {
            const char *msg = json_string_value(json_object_get(out->body, "message"));
            if (msg && *msg)
                shorten(out->err, sizeof out->err, msg);
            else
                co_errf(out->err, sizeof out->err, "HTTP %ld from %s %.100s", out->status, method,
                        path);
            if (out->status == 401 && token_err[0]) {
                size_t n = strlen(out->err);
                co_errf(out->err + n, sizeof out->err - n, " (and %s)", token_err);
            }
        }
    }
    free(b.data);
    free(payload);
    return rc;
}

void co_response_clear(struct co_response *r)
{
    if (!r) return;
    json_decref(r->body);
    *r = (struct co_response){0};
}

/* ---- watches -------------------------------------------------------------------------- */

static void watch_fail(struct co_watch *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Ends w by this file's decision: the write callback then returns 0 and curl stops. */
static void watch_fail(struct co_watch *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->error, sizeof w->error, fmt, ap);
    va_end(ap);
    w->failed = true;
}

static int queue_push(struct co_watch *w, json_t *ev, size_t bytes)
{
    if (w->queue_len == w->queue_cap) {
        size_t cap = w->queue_cap ? w->queue_cap * 2 : 16;
        struct queued *q = malloc(cap * sizeof *q);
        if (!q) return -1;
        for (size_t i = 0; i < w->queue_len; i++)
            q[i] = w->queue[(w->queue_head + i) % w->queue_cap];
        free(w->queue);
        w->queue = q;
        w->queue_cap = cap;
        w->queue_head = 0;
    }
    w->queue[(w->queue_head + w->queue_len) % w->queue_cap] =
        (struct queued){.event = ev, .line_bytes = bytes};
    w->queue_len++;
    w->queue_bytes += bytes;
    return 0;
}

/* The oldest queued event (the caller's), or NULL. */
static json_t *queue_pop(struct co_watch *w)
{
    if (!w->queue_len) return NULL;
    struct queued q = w->queue[w->queue_head];
    w->queue_head = (w->queue_head + 1) % w->queue_cap;
    w->queue_len--;
    w->queue_bytes -= q.line_bytes;
    return q.event;
}

/* Decodes one complete line into an event and queues it. -1 ends the watch (w->error). */
static int take_line(struct co_watch *w, const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\r' || line[i] == '\t'))
        i++;
    if (i == len) return 0; /* a blank line between events */
    json_error_t jerr;
    json_t *ev = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
    if (!ev || !json_is_object(ev)) {
        /* The line is not NUL-terminated: its first bytes only, by length. */
        watch_fail(w, "an undecodable watch line (%s): %.*s", ev ? "not an object" : jerr.text,
                   (int)(len < 60 ? len : 60), line);
        json_decref(ev);
        return -1;
    }
    if (queue_push(w, ev, len)) {
        json_decref(ev);
        watch_fail(w, "out of memory queueing an event");
        return -1;
    }
    return 0;
}

/* Appends to the partial line, within LINE_MAX_BYTES. */
static int line_append(struct co_watch *w, const char *p, size_t n)
{
    if (n > LINE_MAX_BYTES - w->line_len) {
        watch_fail(w, "a watch line is longer than %u MiB", LINE_MAX_BYTES >> 20);
        return -1;
    }
    if (w->line_len + n > w->line_cap) {
        size_t cap = w->line_cap ? w->line_cap : 16384;
        while (cap < w->line_len + n)
            cap *= 2;
        char *l = realloc(w->line, cap);
        if (!l) {
            watch_fail(w, "out of memory reading a watch line");
            return -1;
        }
        w->line = l;
        w->line_cap = cap;
    }
    memcpy(w->line + w->line_len, p, n);
    w->line_len += n;
    return 0;
}

static size_t watch_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct co_watch *w = userdata;
    size_t n = size * nmemb;
    if (!w->status) curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &w->status);
    if (w->status != 200) { /* kept for its message; the rest is dropped */
        size_t room = ERRBODY_MAX - w->errbody_len;
        size_t take = n < room ? n : room;
        if (take) {
            if (!w->errbody && !(w->errbody = malloc(ERRBODY_MAX + 1))) return n;
            memcpy(w->errbody + w->errbody_len, ptr, take);
            w->errbody_len += take;
            w->errbody[w->errbody_len] = '\0';
        }
        return n;
    }
    if (w->queue_len >= QUEUE_MAX_EVENTS || w->queue_bytes >= QUEUE_MAX_BYTES) {
        w->paused = true; /* co_kube_wait resumes it as the caller takes events */
        return CURL_WRITEFUNC_PAUSE;
    }
    const char *p = ptr, *end = ptr + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            if (line_append(w, p, (size_t)(end - p))) return 0;
            break;
        }
        size_t seg = (size_t)(nl - p);
        if (w->line_len == 0) { /* the whole line is in this chunk: decoded in place */
            if (seg > LINE_MAX_BYTES) {
                watch_fail(w, "a watch line is longer than %u MiB", LINE_MAX_BYTES >> 20);
                return 0;
            }
            if (take_line(w, p, seg)) return 0;
        } else {
            if (line_append(w, p, seg) || take_line(w, w->line, w->line_len)) return 0;
            w->line_len = 0;
        }
        p = nl + 1;
    }
    return n;
}

/* Records how w's transfer ended (curl's CURLMSG_DONE). */
static void watch_done(struct co_watch *w, CURLcode result)
{
    w->done = true;
    if (!w->status) curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &w->status);
    if (w->failed) return; /* w->error already says why */
    if (result != CURLE_OK) {
        co_errf(w->error, sizeof w->error, "%s",
                w->curl_err[0] ? w->curl_err : curl_easy_strerror(result));
        return;
    }
    if (w->status != 200) {
        json_t *st = w->errbody ? json_loads(w->errbody, 0, NULL) : NULL;
        const char *msg = json_string_value(json_object_get(st, "message"));
        if (msg && *msg) shorten(w->error, sizeof w->error, msg);
        json_decref(st);
        if (w->status == 401) w->k->token.check_now = true; /* the next open re-reads it */
        return;
    }
    if (w->line_len) { /* a last event without its newline */
        if (take_line(w, w->line, w->line_len) == 0) w->line_len = 0;
    }
}

/* Takes curl's news of finished transfers. */
static void drain_done(struct co_kube *k)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(k->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        struct co_watch *w = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&w);
        if (w) watch_done(w, m->data.result);
    }
}

struct co_watch *co_watch_open(struct co_kube *k, const char *path, void *user, char *err,
                               size_t errlen)
{
    char url[URL_MAX];
    char token_err[256];
    struct co_watch *w = calloc(1, sizeof *w);
    if (!w) {
        co_errf(err, errlen, "out of memory opening a watch");
        return NULL;
    }
    w->k = k;
    w->user = user;
    if (make_url(k, path, url, sizeof url)) {
        co_errf(err, errlen, "watch %.100s: the path must start with / and fit %d bytes",
                path ? path : "(null)", URL_MAX);
        goto fail;
    }
    co__token_refresh(&k->token, false, token_err, sizeof token_err);
    w->easy = curl_easy_init();
    w->headers = w->easy ? make_headers(k, NULL) : NULL;
    /* No CURLOPT_TIMEOUT and no low-speed limit: a watch lasts as long as the server's
     * timeoutSeconds, and an idle one is normal. TCP keepalive finds a dead peer. */
    if (!w->headers || setup_common(k, w->easy, w->curl_err) ||
        curl_easy_setopt(w->easy, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(w->easy, CURLOPT_HTTPGET, 1L) != CURLE_OK ||
        curl_easy_setopt(w->easy, CURLOPT_HTTPHEADER, w->headers) != CURLE_OK ||
        curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, watch_write) != CURLE_OK ||
        curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w) != CURLE_OK ||
        curl_easy_setopt(w->easy, CURLOPT_PRIVATE, w) != CURLE_OK) {
        co_errf(err, errlen, "watch %.100s: out of memory setting up the request", path);
        goto fail;
    }
    if (curl_multi_add_handle(k->multi, w->easy) != CURLM_OK) {
        co_errf(err, errlen, "watch %.100s: curl refused the transfer", path);
        goto fail;
    }
    w->next = k->watches;
    if (k->watches) k->watches->prev = w;
    k->watches = w;
    return w;
fail:
    if (w->easy) curl_easy_cleanup(w->easy);
    free_headers(w->headers);
    free(w);
    return NULL;
}

void *co_watch_user(const struct co_watch *w)
{
    return w->user;
}

long co_watch_status(const struct co_watch *w)
{
    return w->status;
}

const char *co_watch_error(const struct co_watch *w)
{
    return w->error;
}

void co_watch_close(struct co_watch *w)
{
    if (!w) return;
    struct co_kube *k = w->k;
    curl_multi_remove_handle(k->multi, w->easy);
    curl_easy_cleanup(w->easy);
    free_headers(w->headers);
    if (w->prev)
        w->prev->next = w->next;
    else
        k->watches = w->next;
    if (w->next) w->next->prev = w->prev;
    if (k->last == w) k->last = NULL;
    json_t *ev;
    while ((ev = queue_pop(w)))
        json_decref(ev);
    free(w->queue);
    free(w->line);
    free(w->errbody);
    free(w);
}

/* An event or an end that is ready without waiting: events first, each watch in turn after
 * the one served last (so one busy watch does not starve the others), then ends. */
static enum co_wait_kind take_ready(struct co_kube *k, struct co_watch **wp, json_t **event)
{
    struct co_watch *start = k->last && k->last->next ? k->last->next : k->watches;
    struct co_watch *w = start;
    if (w) {
        do {
            if (w->queue_len) {
                *event = queue_pop(w);
                *wp = k->last = w;
                /* Resumed at half the bounds: not paused and resumed at every event. */
                if (w->paused && w->queue_len <= QUEUE_MAX_EVENTS / 2 &&
                    w->queue_bytes <= QUEUE_MAX_BYTES / 2) {
                    w->paused = false;
                    curl_easy_pause(w->easy, CURLPAUSE_CONT);
                }
                return CO_WAIT_EVENT;
            }
            w = w->next ? w->next : k->watches;
        } while (w != start);
    }
    for (w = k->watches; w; w = w->next) {
        if (w->done && !w->ended_told && !w->queue_len) {
            w->ended_told = true;
            *wp = w;
            return CO_WAIT_ENDED;
        }
    }
    return CO_WAIT_TIMEOUT;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum co_wait_kind co_kube_wait(struct co_kube *k, int timeout_ms, int extra_fd, struct co_watch **w,
                               json_t **event)
{
    long long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    *w = NULL;
    *event = NULL;
    for (;;) {
        enum co_wait_kind kind = take_ready(k, w, event);
        if (kind != CO_WAIT_TIMEOUT) return kind;
        int running;
        curl_multi_perform(k->multi, &running);
        drain_done(k);
        kind = take_ready(k, w, event);
        if (kind != CO_WAIT_TIMEOUT) return kind;
        long long left = deadline - now_ms();
        if (left <= 0) return CO_WAIT_TIMEOUT;
        struct curl_waitfd extra = {.fd = extra_fd, .events = CURL_WAIT_POLLIN};
        /* Sleeps until a watch's socket, curl's timer, the extra fd or the deadline. */
        if (curl_multi_poll(k->multi, extra_fd >= 0 ? &extra : NULL, extra_fd >= 0 ? 1 : 0,
                            (int)left, NULL) != CURLM_OK)
            return CO_WAIT_TIMEOUT;
        if (extra_fd >= 0 && extra.revents) return CO_WAIT_TIMEOUT;
    }
}

/* ---- the client ----------------------------------------------------------------------- */

struct co_kube *co_kube_open(const struct co_kube_source *src, char *err, size_t errlen)
{
    struct co_kube *k = calloc(1, sizeof *k);
    if (!k) {
        co_errf(err, errlen, "out of memory");
        return NULL;
    }
    /* Reference-counted by curl; matched in co_kube_free. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        co_errf(err, errlen, "libcurl failed to initialise");
        free(k);
        return NULL;
    }
    snprintf(k->user_agent, sizeof k->user_agent, "ccoperator/%s", CO_VERSION);
    if (co__kube_configure(k, src, err, errlen)) goto fail;
    k->easy = curl_easy_init();
    k->multi = curl_multi_init();
    if (!k->easy || !k->multi) {
        co_errf(err, errlen, "libcurl failed to create a handle");
        goto fail;
    }
    assert(k->server && k->ns);
    return k;
fail:
    co_kube_free(k);
    return NULL;
}

void co_kube_free(struct co_kube *k)
{
    if (!k) return;
    while (k->watches)
        co_watch_close(k->watches);
    if (k->multi) curl_multi_cleanup(k->multi);
    if (k->easy) curl_easy_cleanup(k->easy);
    co__kube_config_clear(k);
    free(k);
    curl_global_cleanup();
}

const char *co_kube_namespace(const struct co_kube *k)
{
    return k->ns;
}

const char *co_kube_server(const struct co_kube *k)
{
    return k->server;
}
