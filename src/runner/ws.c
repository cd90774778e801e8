/*
 * ws.c - the backend WebSocket on libwebsockets.
 *
 * Threading: only the service thread touches lws objects. The session thread talks to it
 * through the mutex-protected queues below and lws_cancel_service(), the one lws call that
 * is safe from another thread; the thread answers in LWS_CALLBACK_EVENT_WAIT_CANCELLED.
 *
 * Delivery: a message leaves the queue only once lws has taken all of it. A connection that
 * breaks after that may lose what was in the socket; the envelopes' seq lets the backend
 * see such a gap. Reconnects back off from 200 ms to 5 s, with jitter.
 */
#include "ws.h"

#include "clock.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define BACKOFF_MIN_US (200 * 1000)
#define BACKOFF_MAX_US (5 * 1000 * 1000)
#define RX_MAX (4u << 20) /* the longest inbound message kept */

struct msg {
    struct msg *next;
    size_t len;
    unsigned char data[]; /* LWS_PRE bytes of headroom, then the text */
};

struct cc_ws {
    /* Set at start, read-only after. */
    char *url_copy; /* lws_parse_uri() cuts this one up */
    const char *host;
    char path[1024];
    int port, tls;
    char *auth; /* "Bearer TOKEN" or NULL; wiped at close */
    size_t max_pending;

    /* Shared, under mu. */
    pthread_mutex_t mu;
    struct msg *out_head, *out_tail;
    size_t out_bytes;
    struct msg *in_head, *in_tail;
    int closing;              /* cc_ws_drain() or cc_ws_close() was called */
    struct timespec deadline; /* ... and must be done by then (CLOCK_MONOTONIC) */
    struct cc_ws_stats st;
    int notify[2]; /* [0] polled by the session, [1] written on arrival */

    int finished; /* the thread was joined (the closing thread's) */

    /* Service thread only. */
    pthread_t thread;
    struct lws_context *ctx;
    struct lws *wsi; /* the connection, NULL between connections */
    int established;
    int close_sent;
    lws_sorted_usec_list_t sul_connect, sul_tick;
    lws_usec_t backoff;
    unsigned char *rx; /* inbound message being assembled */
    size_t rx_len;
    int rx_skip;         /* the current inbound message was too long */
    int failures_logged; /* consecutive failures already reported */
    unsigned rng;
};

static void schedule_connect(struct cc_ws *ws);

static void do_connect(lws_sorted_usec_list_t *sul)
{
    struct cc_ws *ws = lws_container_of(sul, struct cc_ws, sul_connect);
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = ws->ctx;
    ci.address = ws->host;
    ci.port = ws->port;
    ci.path = ws->path;
    ci.host = ws->host;
    ci.origin = ws->host;
    ci.ssl_connection = ws->tls ? LCCSCF_USE_SSL : 0;
    ci.protocol = NULL;
    ci.local_protocol_name = "ccrunner";
    ci.userdata = ws;
    ci.pwsi = &ws->wsi;
    ws->established = 0;
    ws->close_sent = 0;
    if (!lws_client_connect_via_info(&ci)) {
        ws->wsi = NULL;
        schedule_connect(ws);
    }
}

static void schedule_connect(struct cc_ws *ws)
{
    pthread_mutex_lock(&ws->mu);
    int pointless = ws->closing && ws->out_head == NULL;
    pthread_mutex_unlock(&ws->mu);
    if (pointless) return;
    /* Full jitter over the upper half: reconnecting runners do not stampede a backend
     * that just restarted. */
    ws->rng = ws->rng * 1103515245u + 12345u;
    lws_usec_t delay =
        ws->backoff / 2 + (lws_usec_t)((ws->rng >> 8) % (unsigned)(ws->backoff / 2 + 1));
    lws_sul_schedule(ws->ctx, 0, &ws->sul_connect, do_connect, delay);
    ws->backoff = ws->backoff * 2 > BACKOFF_MAX_US ? BACKOFF_MAX_US : ws->backoff * 2;
}

/* While closing, wakes the loop regularly so the deadline is noticed. */
static void tick(lws_sorted_usec_list_t *sul)
{
    struct cc_ws *ws = lws_container_of(sul, struct cc_ws, sul_tick);
    lws_sul_schedule(ws->ctx, 0, &ws->sul_tick, tick, 50 * 1000);
}

static void push_inbound(struct cc_ws *ws, const unsigned char *data, size_t len)
{
    struct msg *m = malloc(sizeof *m + len + 1);
    if (!m) {
        cc_log("websocket: out of memory: an inbound message of %zu bytes was dropped", len);
        return;
    }
    m->next = NULL;
    m->len = len;
    memcpy(m->data, data, len);
    m->data[len] = '\0';
    pthread_mutex_lock(&ws->mu);
    if (ws->in_tail)
        ws->in_tail->next = m;
    else
        ws->in_head = m;
    ws->in_tail = m;
    ws->st.received++;
    pthread_mutex_unlock(&ws->mu);
    char b = 1;
    (void)!write(ws->notify[1], &b, 1);
}

static int on_receive(struct cc_ws *ws, struct lws *wsi, const void *in, size_t len)
{
    if (!ws->rx_skip) {
        if (ws->rx_len + len > RX_MAX) {
            cc_log("websocket: an inbound message longer than %u bytes was dropped", RX_MAX);
            ws->rx_skip = 1;
        } else {
            unsigned char *p = realloc(ws->rx, ws->rx_len + len + 1);
            if (!p) {
                ws->rx_skip = 1;
            } else {
                ws->rx = p;
                memcpy(ws->rx + ws->rx_len, in, len);
                ws->rx_len += len;
            }
        }
    }
    if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
        if (!ws->rx_skip) push_inbound(ws, ws->rx, ws->rx_len);
        ws->rx_len = 0;
        ws->rx_skip = 0;
    }
    return 0;
}

static int on_writable(struct cc_ws *ws, struct lws *wsi)
{
    pthread_mutex_lock(&ws->mu);
    struct msg *m = ws->out_head;
    int closing = ws->closing;
    pthread_mutex_unlock(&ws->mu);
    if (!m) {
        if (closing && !ws->close_sent) {
            ws->close_sent = 1;
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"session ended", 13);
            return -1;
        }
        return 0;
    }
    /* Only this thread removes from the head, so m stays valid without the lock. */
    int n = lws_write(wsi, m->data + LWS_PRE, m->len, LWS_WRITE_TEXT);
    if (n < (int)m->len) return -1; /* the connection is broken: the message stays queued */
    pthread_mutex_lock(&ws->mu);
    ws->out_head = m->next;
    if (!ws->out_head) ws->out_tail = NULL;
    ws->out_bytes -= m->len;
    ws->st.sent++;
    int more = ws->out_head != NULL || ws->closing;
    pthread_mutex_unlock(&ws->mu);
    free(m);
    if (more) lws_callback_on_writable(wsi);
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct cc_ws *ws = lws_context_user(lws_get_context(wsi));
    (void)user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        unsigned char **p = in, *end = *p + len;
        if (ws->auth && lws_add_http_header_by_name(wsi, (const unsigned char *)"authorization:",
                                                    (const unsigned char *)ws->auth,
                                                    (int)strlen(ws->auth), p, end))
            return -1;
        break;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        ws->established = 1;
        ws->backoff = BACKOFF_MIN_US;
        pthread_mutex_lock(&ws->mu);
        ws->st.connects++;
        uint64_t connects = ws->st.connects;
        pthread_mutex_unlock(&ws->mu);
        if (connects > 1 || ws->failures_logged)
            cc_log("websocket: connected to the backend again (connection %llu)",
                   (unsigned long long)connects);
        ws->failures_logged = 0;
        lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return on_receive(ws, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return on_writable(ws, wsi);
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (ws->failures_logged++ == 0)
            cc_log("websocket: cannot connect to the backend (%s); retrying with backoff, messages "
                   "are "
                   "kept meanwhile",
                   in ? (const char *)in : "no reason given");
        ws->wsi = NULL;
        schedule_connect(ws);
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (!ws->close_sent) cc_log("websocket: the backend closed the connection; reconnecting");
        ws->wsi = NULL;
        ws->rx_len = 0;
        ws->rx_skip = 0;
        if (!ws->close_sent) schedule_connect(ws);
        break;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (ws && ws->wsi && ws->established) lws_callback_on_writable(ws->wsi);
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"ccrunner", callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static int done(struct cc_ws *ws)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&ws->mu);
    int closing = ws->closing;
    int empty = ws->out_head == NULL;
    int late =
        closing && (now.tv_sec > ws->deadline.tv_sec ||
                    (now.tv_sec == ws->deadline.tv_sec && now.tv_nsec >= ws->deadline.tv_nsec));
    pthread_mutex_unlock(&ws->mu);
    if (!closing) return 0;
    /* Done when everything is out and the connection closed, or at the deadline. */
    return late || (empty && !ws->wsi);
}

static void *service(void *arg)
{
    struct cc_ws *ws = arg;
    int ticking = 0;
    lws_sul_schedule(ws->ctx, 0, &ws->sul_connect, do_connect, 1);
    while (!done(ws)) {
        pthread_mutex_lock(&ws->mu);
        int closing = ws->closing;
        pthread_mutex_unlock(&ws->mu);
        if (closing && !ticking) {
            ticking = 1;
            tick(&ws->sul_tick);
            if (ws->wsi && ws->established) lws_callback_on_writable(ws->wsi);
        }
        if (lws_service(ws->ctx, 0) < 0) break;
    }
    return NULL;
}

static void free_list(struct msg *m)
{
    while (m) {
        struct msg *next = m->next;
        free(m);
        m = next;
    }
}

struct cc_ws *cc_ws_start(const char *url, const char *token, size_t max_pending, char *err,
                          size_t errlen)
{
    struct cc_ws *ws = calloc(1, sizeof *ws);
    const char *prot, *path;
    struct lws_context_creation_info info;
    if (!ws || !(ws->url_copy = strdup(url))) {
        free(ws);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ws->notify[0] = ws->notify[1] = -1;
    if (lws_parse_uri(ws->url_copy, &prot, &ws->host, &ws->port, &path) ||
        (strcmp(prot, "ws") && strcmp(prot, "wss")) || !*ws->host) {
        snprintf(err, errlen,
                 "WEBSOCKET_URL=%.200s is invalid: use ws://HOST[:PORT]/PATH or "
                 "wss://...",
                 url);
        goto fail;
    }
    ws->tls = strcmp(prot, "wss") == 0;
    if (ws->port == 80 && ws->tls && !strstr(url + 6, ":80"))
        ws->port = 443; /* lws_parse_uri defaults to 80 for unknown schemes */
    snprintf(ws->path, sizeof ws->path, "/%s", path);
    if (token && *token && asprintf(&ws->auth, "Bearer %s", token) < 0) {
        ws->auth = NULL;
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    ws->max_pending = max_pending;
    ws->backoff = BACKOFF_MIN_US;
    ws->rng = (unsigned)getpid() ^ (unsigned)cc_mono_ms();
    pthread_mutex_init(&ws->mu, NULL);
    if (pipe2(ws->notify, O_CLOEXEC | O_NONBLOCK)) {
        snprintf(err, errlen, "cannot create a pipe: %s", strerror(errno));
        goto fail;
    }
    lws_set_log_level(LLL_ERR, NULL);
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.gid = (gid_t)-1;
    info.uid = (uid_t)-1;
    info.user = ws;
    /* TLS is initialised only for wss://: OpenSSL's set-up costs megabytes of memory. */
    info.options = ws->tls ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0;
    if (!(ws->ctx = lws_create_context(&info))) {
        snprintf(err, errlen, "cannot create the WebSocket context");
        goto fail;
    }
    /* The thread takes no signals: SIGTERM and SIGINT are the session's (and, as it ends,
     * ending.c's), and a default action taken here would kill the runner. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int started = pthread_create(&ws->thread, NULL, service, ws) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!started) {
        snprintf(err, errlen, "cannot start the WebSocket thread");
        lws_context_destroy(ws->ctx);
        goto fail;
    }
    return ws;
fail:
    if (ws->notify[0] >= 0) {
        close(ws->notify[0]);
        close(ws->notify[1]);
    }
    free(ws->auth);
    free(ws->url_copy);
    free(ws);
    return NULL;
}

int cc_ws_fd(const struct cc_ws *ws)
{
    return ws->notify[0];
}

void cc_ws_send(struct cc_ws *ws, const char *text, size_t len)
{
    struct msg *m = malloc(sizeof *m + LWS_PRE + len);
    if (!m) {
        pthread_mutex_lock(&ws->mu);
        ws->st.dropped++;
        pthread_mutex_unlock(&ws->mu);
        return;
    }
    m->next = NULL;
    m->len = len;
    memcpy(m->data + LWS_PRE, text, len);
    struct msg *drop = NULL;
    uint64_t dropped_now = 0, total_dropped;
    pthread_mutex_lock(&ws->mu);
    if (ws->out_tail)
        ws->out_tail->next = m;
    else
        ws->out_head = m;
    ws->out_tail = m;
    ws->out_bytes += len;
    /* Over the cap: drop from the head, but never the one being written (the head may be
     * in lws_write right now; it is the service thread's to remove). */
    while (ws->out_bytes > ws->max_pending && ws->out_head && ws->out_head->next) {
        struct msg *victim = ws->out_head->next;
        ws->out_head->next = victim->next;
        if (ws->out_tail == victim) ws->out_tail = ws->out_head;
        ws->out_bytes -= victim->len;
        victim->next = drop;
        drop = victim;
        dropped_now++;
    }
    ws->st.dropped += dropped_now;
    total_dropped = ws->st.dropped;
    pthread_mutex_unlock(&ws->mu);
    free_list(drop);
    /* Report the first drop and then every power of two, not every message. */
    if (dropped_now && (total_dropped & (total_dropped - 1)) == 0)
        cc_log("websocket: backend unreachable and %zu bytes queued: %llu oldest messages dropped "
               "so far",
               ws->max_pending, (unsigned long long)total_dropped);
    lws_cancel_service(ws->ctx);
}

char *cc_ws_recv(struct cc_ws *ws, size_t *len)
{
    char b[64];
    pthread_mutex_lock(&ws->mu);
    struct msg *m = ws->in_head;
    if (m) {
        ws->in_head = m->next;
        if (!ws->in_head) ws->in_tail = NULL;
    } else {
        while (read(ws->notify[0], b, sizeof b) > 0) /* drained: clear the wake-up */
            ;
    }
    pthread_mutex_unlock(&ws->mu);
    if (!m) return NULL;
    /* The struct header is reused as nothing: move the text to its own allocation. */
    char *text = malloc(m->len + 1);
    if (text) {
        memcpy(text, m->data, m->len + 1);
        *len = m->len;
    }
    free(m);
    return text;
}

void cc_ws_stats(struct cc_ws *ws, struct cc_ws_stats *st)
{
    pthread_mutex_lock(&ws->mu);
    *st = ws->st;
    uint64_t n = 0;
    for (struct msg *m = ws->out_head; m; m = m->next)
        n++;
    st->pending = n;
    pthread_mutex_unlock(&ws->mu);
}

void cc_ws_drain(struct cc_ws *ws, int timeout_ms)
{
    if (!ws) return;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&ws->mu);
    if (!ws->closing) { /* the first deadline stands */
        ws->closing = 1;
        ws->deadline = dl;
    }
    pthread_mutex_unlock(&ws->mu);
    lws_cancel_service(ws->ctx);
}

void cc_ws_hurry(struct cc_ws *ws)
{
    if (!ws) return;
    pthread_mutex_lock(&ws->mu);
    ws->closing = 1;
    clock_gettime(CLOCK_MONOTONIC, &ws->deadline);
    pthread_mutex_unlock(&ws->mu);
    lws_cancel_service(ws->ctx);
}

void cc_ws_finish(struct cc_ws *ws, int timeout_ms)
{
    if (!ws || ws->finished) return;
    cc_ws_drain(ws, timeout_ms);
    pthread_join(ws->thread, NULL);
    ws->finished = 1;
}

uint64_t cc_ws_close(struct cc_ws *ws, int timeout_ms)
{
    if (!ws) return 0;
    cc_ws_finish(ws, timeout_ms);
    lws_context_destroy(ws->ctx);

    struct cc_ws_stats st;
    cc_ws_stats(ws, &st);
    if (st.pending || st.dropped)
        cc_log("websocket: %llu messages not delivered to the backend (%llu dropped from a full "
               "queue, "
               "%llu still queued at the end)",
               (unsigned long long)(st.pending + st.dropped), (unsigned long long)st.dropped,
               (unsigned long long)st.pending);
    free_list(ws->out_head);
    free_list(ws->in_head);
    free(ws->rx);
    close(ws->notify[0]);
    close(ws->notify[1]);
    if (ws->auth) {
        explicit_bzero(ws->auth, strlen(ws->auth));
        free(ws->auth);
    }
    free(ws->url_copy);
    pthread_mutex_destroy(&ws->mu);
    free(ws);
    return st.pending + st.dropped;
}
