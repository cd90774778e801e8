/* test_http_plain.c - the plain HTTP/1.1 client against a scripted server on loopback:
 * what it sends, keep-alive and reconnects, body framings, timeouts, abort, wake-ups. */
#include "cm.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "internal.h"
#include "testutil.h"

/* ---- a scripted server ------------------------------------------------------------------ */

struct reply {
    const char *raw; /* bytes to answer with ("": none); NULL: never answer */
    int close_after; /* close the connection after answering; 2: then send bytes for ever */
};

/* The server thread writes what it saw under `mu`; the test reads it under `mu` too. (The
 * socket orders the two, but no tool can see that: ThreadSanitizer reported the buffer.) */
struct server {
    int lfd, port;
    pthread_t thread;
    struct reply script[8];
    int nscript, next;
    pthread_mutex_t mu;
    int accepts;             /* guarded by mu */
    int closes;              /* connections the server closed; guarded by mu */
    char last_request[8192]; /* guarded by mu */
    size_t last_len;         /* guarded by mu */
    atomic_int stop;
};

/* The last request the server read, copied under its lock (NUL-terminated); its length. */
static size_t last_request(struct server *s, char *out, size_t cap)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->last_len < cap - 1 ? s->last_len : cap - 1;
    memcpy(out, s->last_request, n);
    out[n] = '\0';
    pthread_mutex_unlock(&s->mu);
    return n;
}

static int accepts(struct server *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->accepts;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Awaited by tu_wait_until: the server closed as many connections as it accepted. */
static int all_closed(void *arg)
{
    struct server *s = arg;
    pthread_mutex_lock(&s->mu);
    int done = s->closes == s->accepts;
    pthread_mutex_unlock(&s->mu);
    return done;
}

static size_t read_request(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    long long want = -1;
    while (n < cap) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0) break;
        ssize_t r = read(fd, buf + n, cap - n);
        if (r <= 0) break;
        n += (size_t)r;
        buf[n] = '\0'; /* cap leaves room: strcasestr below reads up to it */
        char *end = memmem(buf, n, "\r\n\r\n", 4);
        if (end && want < 0) {
            char *cl = strcasestr(buf, "Content-Length:");
            want = (end + 4 - buf) + (cl ? atoll(cl + 15) : 0);
        }
        if (want >= 0 && (long long)n >= want) break;
    }
    return n;
}

static void *serve(void *arg)
{
    struct server *s = arg;
    char req[sizeof(s->last_request)];
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {s->lfd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) continue;
        pthread_mutex_lock(&s->mu);
        s->accepts++;
        pthread_mutex_unlock(&s->mu);
        for (;;) {
            size_t n = read_request(fd, req, sizeof(req) - 1);
            if (n == 0) break;
            pthread_mutex_lock(&s->mu);
            memcpy(s->last_request, req, n);
            s->last_request[n] = '\0';
            s->last_len = n;
            pthread_mutex_unlock(&s->mu);
            struct reply *r = &s->script[s->next < s->nscript ? s->next++ : s->nscript - 1];
            if (!r->raw) {
                while (!atomic_load(&s->stop))
                    usleep(10000);
                break;
            }
            ssize_t w = write(fd, r->raw, strlen(r->raw));
            (void)w;
            static const char flood[16384];
            while (r->close_after == 2 && !atomic_load(&s->stop) &&
                   send(fd, flood, sizeof(flood), MSG_NOSIGNAL) > 0)
                ;
            if (r->close_after) break;
        }
        close(fd);
        pthread_mutex_lock(&s->mu);
        s->closes++;
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

static void server_start(struct server *s)
{
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 8), 0);
    socklen_t len = sizeof(a);
    getsockname(s->lfd, (struct sockaddr *)&a, &len);
    s->port = ntohs(a.sin_port);
    pthread_mutex_init(&s->mu, NULL);
    pthread_create(&s->thread, NULL, serve, s);
}

static void server_stop(struct server *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    close(s->lfd);
    pthread_mutex_destroy(&s->mu);
}

static atomic_llong abort_at;
static pthread_mutex_t again_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t again_cv = PTHREAD_COND_INITIALIZER;
static int waits; /* steps that returned LF__HTTP_AGAIN; guarded by again_mu */
static void came_back(void)
{
    pthread_mutex_lock(&again_mu);
    waits++;
    pthread_cond_broadcast(&again_cv);
    pthread_mutex_unlock(&again_mu);
}

/* A POST as the exporter makes it: begun, then stepped, counting the steps that
 * came back before the end (each a moment the exporter could serve urgent work). */
static int post(struct lf__http *h, const char *path, const char *body, size_t len, int gz,
                int timeout_ms, struct lf__http_result *res)
{
    if (lf__http_begin(h, path, body, len, gz, timeout_ms, res)) return -1;
    enum lf__http_step step;
    while ((step = lf__http_step(h, res)) == LF__HTTP_AGAIN)
        came_back();
    return step == LF__HTTP_DONE ? 0 : -1;
}

static int returns_before_end(void)
{
    pthread_mutex_lock(&again_mu);
    int n = waits;
    pthread_mutex_unlock(&again_mu);
    return n;
}

static struct lf__http *client(struct server *s, const char *prefix)
{
    char url[128], err[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->port, prefix);
    struct lf__http_opts o = {url, "pk-lf-1:sk-lf-2", &abort_at};
    struct lf__http *h = lf__http_new(&o, err, sizeof(err));
    if (!h) fail_msg("%s", err);
    return h;
}

#define OK200 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"

/* ---- tests -------------------------------------------------------------------------------- */

static void test_request_and_keep_alive(void **state)
{
    (void)state;
    struct server s = {.script = {{OK200, 0}}, .nscript = 1};
    server_start(&s);
    struct lf__http *h = client(&s, "/langfuse/");
    struct lf__http_result res;
    assert_int_equal(post(h, "/api/public/ingestion", "{\"batch\":[]}", 12, 1, 5000, &res), 0);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.body, "{}");
    lf__http_result_free(&res);
    char req[8192];
    size_t len = last_request(&s, req, sizeof(req));
    assert_non_null(strstr(req, "POST /langfuse/api/public/ingestion HTTP/1.1\r\n"));
    char host[64];
    snprintf(host, sizeof(host), "Host: 127.0.0.1:%d\r\n", s.port);
    assert_non_null(strstr(req, host));
    /* base64("pk-lf-1:sk-lf-2") */
    assert_non_null(strstr(req, "Authorization: Basic cGstbGYtMTpzay1sZi0y\r\n"));
    assert_non_null(strstr(req, "Content-Encoding: gzip\r\n"));
    assert_non_null(strstr(req, "Content-Length: 12\r\n"));
    assert_memory_equal(req + len - 12, "{\"batch\":[]}", 12);
    /* a second request reuses the connection */
    assert_int_equal(post(h, "/x", "ab", 2, 0, 5000, &res), 0);
    lf__http_result_free(&res);
    last_request(&s, req, sizeof(req));
    assert_non_null(strstr(req, "POST /langfuse/x HTTP/1.1\r\n"));
    assert_null(strstr(req, "Content-Encoding"));
    assert_int_equal(accepts(&s), 1);
    lf__http_free(h);
    server_stop(&s);
}

static void test_reconnects_when_server_closed(void **state)
{
    (void)state;
    /* answers without saying so, then closes: the client finds out and reconnects */
    struct server s = {.script = {{OK200, 1}}, .nscript = 1};
    server_start(&s);
    struct lf__http *h = client(&s, "");
    struct lf__http_result res;
    for (int i = 0; i < 3; i++) {
        assert_true(tu_wait_until(all_closed, &s, 5000)); /* closed after its answer */
        assert_int_equal(post(h, "/p", "x", 1, 0, 5000, &res), 0);
        assert_int_equal(res.status, 200);
        lf__http_result_free(&res);
    }
    assert_int_equal(accepts(&s), 3);
    lf__http_free(h);
    server_stop(&s);
}

static void test_unanswered_kept_alive_request_sent_once_more(void **state)
{
    (void)state;
    /* The server hangs up on the second request unanswered, on a connection that looked
     * alive: the client sends it once more on a fresh connection, and that one answers. */
    struct server s = {.script = {{OK200, 0}, {"", 1}, {OK200, 0}}, .nscript = 3};
    server_start(&s);
    struct lf__http *h = client(&s, "");
    struct lf__http_result res;
    assert_int_equal(post(h, "/p", "one", 3, 0, 5000, &res), 0);
    lf__http_result_free(&res);
    assert_int_equal(post(h, "/p", "two", 3, 0, 5000, &res), 0);
    assert_int_equal(res.status, 200);
    lf__http_result_free(&res);
    assert_int_equal(accepts(&s), 2);
    char req[8192];
    size_t len = last_request(&s, req, sizeof(req));
    assert_memory_equal(req + len - 3, "two", 3);
    lf__http_free(h);
    server_stop(&s);

    /* On a fresh connection, the same is a failure, not sent again. */
    struct server s2 = {.script = {{"", 1}, {OK200, 0}}, .nscript = 2};
    server_start(&s2);
    h = client(&s2, "");
    assert_int_equal(post(h, "/p", "x", 1, 0, 5000, &res), -1);
    assert_non_null(strstr(res.error, "without an answer"));
    assert_int_equal(accepts(&s2), 1);
    lf__http_free(h);
    server_stop(&s2);
}

static void test_framings(void **state)
{
    (void)state;
    struct server s = {
        .script = {{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: "
                    "chunked\r\n\r\n"
                    "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                    0},
                   {"HTTP/1.1 429 Too Many\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n", 0},
                   {"HTTP/1.1 503 Busy\r\nConnection: close\r\n\r\nuntil close", 1},
                   {"HTTP/1.1 204 No Content\r\n\r\n", 0}},
        .nscript = 4};
    server_start(&s);
    struct lf__http *h = client(&s, "");
    struct lf__http_result res;
    assert_int_equal(post(h, "/p", "x", 1, 0, 5000, &res), 0);
    assert_int_equal(res.status, 201);
    assert_string_equal(res.body, "abcde");
    lf__http_result_free(&res);
    assert_int_equal(post(h, "/p", "x", 1, 0, 5000, &res), 0);
    assert_int_equal(res.status, 429);
    assert_int_equal(res.retry_after_ms, 2000);
    lf__http_result_free(&res);
    assert_int_equal(post(h, "/p", "x", 1, 0, 5000, &res), 0);
    assert_int_equal(res.status, 503);
    assert_string_equal(res.body, "until close");
    lf__http_result_free(&res);
    assert_int_equal(post(h, "/p", "x", 1, 0, 5000, &res), 0);
    assert_int_equal(res.status, 204);
    lf__http_result_free(&res);
    lf__http_free(h);
    server_stop(&s);
}

static void test_malformed_answer(void **state)
{
    (void)state;
    struct server s = {.script = {{"SMTP ready\r\n\r\n", 1}}, .nscript = 1};
    server_start(&s);
    struct lf__http *h = client(&s, "");
    struct lf__http_result res;
    assert_int_equal(post(h, "/p", "x", 1, 0, 5000, &res), -1);
    assert_int_equal(res.status, 0);
    assert_non_null(strstr(res.error, "malformed"));
    lf__http_free(h);
    server_stop(&s);
}

static void test_timeout_abort_and_wakeup(void **state)
{
    (void)state;
    struct server s = {.script = {{NULL, 0}}, .nscript = 1}; /* a black hole */
    server_start(&s);
    struct lf__http *h = client(&s, "");
    struct lf__http_result res;
    long long t0 = lf__mono_ns() / 1000000;
    assert_int_equal(post(h, "/p", "x", 1, 0, 300, &res), -1);
    long long took = lf__mono_ns() / 1000000 - t0;
    assert_true(res.timed_out);
    assert_false(res.aborted);
    assert_true(took >= 290 && took < 1000);
    /* an abort time shorter than the timeout wins, and says so */
    atomic_store(&abort_at, lf__mono_ns() + 200000000);
    int calls = returns_before_end();
    t0 = lf__mono_ns() / 1000000;
    assert_int_equal(post(h, "/p", "x", 1, 0, 10000, &res), -1);
    took = lf__mono_ns() / 1000000 - t0;
    assert_true(res.aborted);
    assert_true(took <
                2000); /* the 200 ms abort, not the 10 s timeout; slack for a loaded machine */
    assert_true(returns_before_end() > calls); /* the wait ticks come back to the caller */
    atomic_store(&abort_at, 0);
    lf__http_free(h);
    server_stop(&s);
}

static void test_an_endless_answer_ends_at_the_deadline(void **state)
{
    (void)state;
    /* A body until close that never ends, sent as fast as the server can: the request still
     * ends at its timeout, however fast the bytes come. */
    struct server s = {.script = {{"HTTP/1.1 200 OK\r\n\r\n", 2}}, .nscript = 1};
    server_start(&s);
    struct lf__http *h = client(&s, "");
    struct lf__http_result res;
    long long t0 = tu_now_ms();
    assert_int_equal(post(h, "/p", "x", 1, 0, 500, &res), -1);
    long long took = tu_now_ms() - t0;
    assert_true(res.timed_out);
    if (took > 5000) fail_msg("an endless answer held the request for %lld ms", took);
    lf__http_free(h);
    server_stop(&s);
}

#define WAKE_ROUNDS 20

struct waker {
    struct lf__http *h;
    int rounds;        /* wake-ups answered by a step coming back */
    long long took_ms; /* for all of them */
};

/* Wakes the waiting client WAKE_ROUNDS times, each time awaiting the step that answers it,
 * then ends the wait (the abort time, now). */
static void *wake_rounds(void *arg)
{
    struct waker *w = arg;
    long long t0 = tu_now_ms();
    pthread_mutex_lock(&again_mu);
    for (; w->rounds < WAKE_ROUNDS; w->rounds++) {
        int seen = waits;
        lf__http_wakeup(w->h);
        struct timespec give_up;
        clock_gettime(CLOCK_REALTIME, &give_up);
        give_up.tv_sec += 2;
        while (waits == seen)
            if (pthread_cond_timedwait(&again_cv, &again_mu, &give_up)) break;
        if (waits == seen) break; /* not answered at all, not even by a tick */
    }
    pthread_mutex_unlock(&again_mu);
    w->took_ms = tu_now_ms() - t0;
    atomic_store(&abort_at, lf__mono_ns());
    lf__http_wakeup(w->h);
    return NULL;
}

static void test_wakeup_ends_a_step_promptly(void **state)
{
    (void)state;
    struct server s = {.script = {{NULL, 0}}, .nscript = 1};
    server_start(&s);
    struct lf__http *h = client(&s, "");
    struct waker w = {h, 0, 0};
    pthread_t t;
    pthread_create(&t, NULL, wake_rounds, &w);
    struct lf__http_result res;
    post(h, "/p", "x", 1, 0, 30000, &res);
    pthread_join(t, NULL);
    atomic_store(&abort_at, 0);
    assert_true(res.aborted);
    assert_int_equal(w.rounds, WAKE_ROUNDS);
    /* Each wake-up is answered at once, not at the next tick: answered by ticks alone, the
     * rounds would take WAKE_ROUNDS ticks (1 s). A loaded machine gets half of that. */
    if (w.took_ms >= WAKE_ROUNDS * LF__HTTP_TICK_MS / 2)
        fail_msg("%d wake-ups took %lld ms", WAKE_ROUNDS, w.took_ms);
    lf__http_free(h);
    server_stop(&s);
}

static void test_refused_and_bad_urls(void **state)
{
    (void)state;
    char err[256];
    struct lf__http_opts o = {"http://127.0.0.1:1", "a:b", NULL};
    struct lf__http *h = lf__http_new(&o, err, sizeof(err));
    assert_non_null(h);
    struct lf__http_result res;
    assert_int_equal(post(h, "/p", "x", 1, 0, 2000, &res), -1);
    assert_non_null(strstr(res.error, "cannot connect"));
    lf__http_free(h);
    const char *bad[] = {"http://",     "http://host:99999", "http://host:80x",
                         "http://[::1", "http://ho st",      "ftp://host"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o.base_url = bad[i];
        err[0] = '\0';
        assert_null(lf__http_new(&o, err, sizeof(err)));
        assert_true(strlen(err) > 0);
    }
    o.base_url = "http://[::1]:8080/base";
    h = lf__http_new(&o, err, sizeof(err));
    assert_non_null(h);
    lf__http_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_and_keep_alive),
        cmocka_unit_test(test_reconnects_when_server_closed),
        cmocka_unit_test(test_unanswered_kept_alive_request_sent_once_more),
        cmocka_unit_test(test_an_endless_answer_ends_at_the_deadline),
        cmocka_unit_test(test_framings),
        cmocka_unit_test(test_malformed_answer),
        cmocka_unit_test(test_timeout_abort_and_wakeup),
        cmocka_unit_test(test_wakeup_ends_a_step_promptly),
        cmocka_unit_test(test_refused_and_bad_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
