/*
 * health.c - the probe endpoint (see health.h). One request at a time, each read bounded
 * to 2 s and 4 KiB: probes are small and rare, and a client that stalls cannot hold the
 * thread longer than that. The thread is stopped through a pipe, not by cancellation.
 */
#include "health.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct co_health {
    int fd;      /* the listening socket */
    int stop[2]; /* written by co_health_stop */
    int port;
    struct co_liveness *live;
    pthread_t thread;
};

static void answer(struct co_health *h, int c)
{
    char req[4096];
    size_t len = 0;
    struct timeval tv = {.tv_sec = 2};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (len < sizeof req - 1 && !memmem(req, len, "\r\n\r\n", 4)) {
        ssize_t n = read(c, req + len, sizeof req - 1 - len);
        if (n <= 0) return;
        len += (size_t)n;
    }
    req[len] = '\0';
    int code = 404;
    const char *body = "not found\n";
    if (!strncmp(req, "GET /healthz ", 13) || !strncmp(req, "GET /healthz?", 13)) {
        bool fresh = co_mono_ms() - atomic_load(&h->live->beat_ms) < CO_HEALTH_STALE_MS;
        code = fresh ? 200 : 503;
        body = fresh ? "ok\n" : "the operator's loop is stuck\n";
    } else if (!strncmp(req, "GET /readyz ", 12) || !strncmp(req, "GET /readyz?", 12)) {
        bool ready = atomic_load(&h->live->synced);
        code = ready ? 200 : 503;
        body = ready ? "ok\n" : "not yet listed from the API server\n";
    }
    char out[256];
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     code,
                     code == 200   ? "OK"
                     : code == 503 ? "Service Unavailable"
                                   : "Not Found",
                     strlen(body), body);
    ssize_t w = write(c, out, (size_t)n);
    (void)w;
}

static void *serve(void *arg)
{
    struct co_health *h = arg;
    struct pollfd p[2] = {{.fd = h->fd, .events = POLLIN}, {.fd = h->stop[0], .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0 && errno != EINTR) break;
        if (p[1].revents) break;
        if (!(p[0].revents & POLLIN)) continue;
        int c = accept4(h->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) continue;
        answer(h, c);
        close(c);
    }
    return NULL;
}

struct co_health *co_health_start(const char *addr, struct co_liveness *live, char *err,
                                  size_t errlen)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    err[0] = '\0';
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof host || !colon[1]) {
        snprintf(err, errlen, "health address '%s' is not HOST:PORT (e.g. 0.0.0.0:8081)", addr);
        return NULL;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::]:8081 */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *ai = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc) {
        snprintf(err, errlen, "health address '%s': %s", addr, gai_strerror(rc));
        return NULL;
    }
    struct co_health *h = calloc(1, sizeof *h);
    if (!h) goto fail_ai;
    h->live = live;
    h->stop[0] = h->stop[1] = -1;
    h->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (h->fd < 0 || setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(h->fd, ai->ai_addr, ai->ai_addrlen) || listen(h->fd, 16)) {
        snprintf(err, errlen, "health address '%s': %s", addr, strerror(errno));
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(h->fd, (struct sockaddr *)&ss, &sl);
    h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    rc = pipe2(h->stop, O_CLOEXEC) ? errno : pthread_create(&h->thread, NULL, serve, h);
    if (rc) { /* pthread_create returns its error; it does not set errno */
        snprintf(err, errlen, "health endpoint: %s", strerror(rc));
        goto fail;
    }
    freeaddrinfo(ai);
    return h;
fail:
    if (h->fd >= 0) close(h->fd);
    if (h->stop[0] >= 0) close(h->stop[0]), close(h->stop[1]);
    free(h);
fail_ai:
    freeaddrinfo(ai);
    if (!err[0]) snprintf(err, errlen, "health endpoint: out of memory");
    return NULL;
}

int co_health_port(const struct co_health *h)
{
    return h->port;
}

void co_health_stop(struct co_health *h)
{
    if (!h) return;
    ssize_t w = write(h->stop[1], "x", 1);
    (void)w;
    pthread_join(h->thread, NULL);
    close(h->fd);
    close(h->stop[0]);
    close(h->stop[1]);
    free(h);
}
