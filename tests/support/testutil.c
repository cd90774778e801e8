/*
 * testutil.c - see testutil.h.
 */
#include "testutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TU_PYTHON
#define TU_PYTHON "python3"
#endif
#ifndef TU_SUPPORT_DIR
#define TU_SUPPORT_DIR "tests/support"
#endif

long long tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tu_server_start(struct tu_server *s, char *const argv[], int timeout_ms)
{
    int fds[2];
    memset(s, 0, sizeof(*s));
    if (pipe2(fds, O_CLOEXEC)) return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        /* Dies with the test: a test killed by a sanitizer (halt_on_error) or a crash skips
         * tu_server_stop(), and a server left running holds ctest's output pipe open, so
         * ctest waited out the test's whole timeout. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        dup2(fds[1], STDOUT_FILENO);
        setpgid(0, 0);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    s->pid = pid;
    char line[128];
    size_t n = 0;
    long long deadline = tu_now_ms() + timeout_ms;
    while (n < sizeof(line) - 1) {
        long long left = deadline - tu_now_ms();
        struct pollfd p = {fds[0], POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) break;
        ssize_t r = read(fds[0], line + n, 1);
        if (r <= 0) break;
        if (line[n] == '\n') break;
        n++;
    }
    line[n] = '\0';
    close(fds[0]);
    if (sscanf(line, "READY %d", &s->port) != 1) {
        fprintf(stderr, "server %s did not get ready (read '%s')\n", argv[0], line);
        tu_server_stop(s);
        return -1;
    }
    snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", s->port);
    return 0;
}

void tu_server_stop(struct tu_server *s)
{
    if (s->pid <= 0) return;
    kill(s->pid, SIGTERM);
    long long deadline = tu_now_ms() + 3000;
    int status;
    while (waitpid(s->pid, &status, WNOHANG) == 0) {
        if (tu_now_ms() > deadline) {
            kill(-s->pid, SIGKILL);
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            break;
        }
        usleep(10000);
    }
    s->pid = 0;
}

int tu_receiver_start(struct tu_server *s, int langfuse_version)
{
    return tu_receiver_start_tls(s, langfuse_version, NULL, NULL);
}

int tu_receiver_start_tls(struct tu_server *s, int langfuse_version, const char *cert,
                          const char *key)
{
    char version[8];
    snprintf(version, sizeof version, "%d", langfuse_version);
    char *argv[] = {TU_PYTHON,
                    TU_SUPPORT_DIR "/langfuse_receiver.py",
                    "--port",
                    "0",
                    "--public-key",
                    TU_PK,
                    "--secret-key",
                    TU_SK,
                    "--langfuse-version",
                    version,
                    cert ? "--tls-cert" : NULL,
                    (char *)cert,
                    "--tls-key",
                    (char *)key,
                    NULL};
    if (tu_server_start(s, argv, 15000)) return -1;
    if (cert) snprintf(s->base, sizeof(s->base), "https://127.0.0.1:%d", s->port);
    return 0;
}

struct membuf {
    char *p;
    size_t n;
};

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    struct membuf *m = ud;
    size_t len = size * n;
    char *q = realloc(m->p, m->n + len + 1);
    if (!q) return 0;
    memcpy(q + m->n, p, len);
    m->p = q;
    m->n += len;
    m->p[m->n] = '\0';
    return len;
}

json_t *tu_http(const char *method, const char *url, const char *userpwd, const char *body,
                long *status, char **raw, size_t *raw_len)
{
    CURL *e = curl_easy_init();
    struct membuf m = {NULL, 0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &m);
    if (userpwd) curl_easy_setopt(e, CURLOPT_USERPWD, userpwd);
    const char *ca = getenv("LANGFUSE_CA_BUNDLE");
    if (ca && *ca) curl_easy_setopt(e, CURLOPT_CAINFO, ca);
    if (body) curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(e);
    long st = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    if (status) *status = rc == CURLE_OK ? st : 0;
    json_t *v = NULL;
    if (m.p) {
        json_error_t err;
        v = json_loadb(m.p, m.n, JSON_DECODE_ANY, &err);
    }
    if (raw) {
        *raw = m.p;
        if (raw_len) *raw_len = m.n;
    } else {
        free(m.p);
    }
    return v;
}

json_t *tu_get(const struct tu_server *s, const char *path, long *status)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", s->base, path);
    return tu_http("GET", url, TU_PK ":" TU_SK, NULL, status, NULL, NULL);
}

int tu_receiver_reset(const struct tu_server *s)
{
    long st;
    json_decref(tu_post(s, "/_test/reset", "{}", &st));
    return st == 200 ? 0 : -1;
}

json_t *tu_v4_rows(const struct tu_server *s, const char *trace_id)
{
    char path[256];
    long st;
    snprintf(path, sizeof(path),
             "/api/public/v2/observations?traceId=%.64s&limit=1000&fields=core,basic,time,io,"
             "metadata,model,usage,trace_context",
             trace_id);
    json_t *page = tu_get(s, path, &st);
    json_t *data = st == 200 ? json_incref(json_object_get(page, "data")) : NULL;
    json_decref(page);
    if (data && !json_is_array(data)) {
        json_decref(data);
        data = NULL;
    }
    return data;
}

json_t *tu_post(const struct tu_server *s, const char *path, const char *json, long *status)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", s->base, path);
    return tu_http("POST", url, NULL, json ? json : "{}", status, NULL, NULL);
}

int tu_wait_until(int (*pred)(void *), void *arg, int timeout_ms)
{
    long long deadline = tu_now_ms() + timeout_ms;
    for (;;) {
        int v = pred(arg);
        if (v || tu_now_ms() >= deadline) return v;
        usleep(20000);
    }
}

char *tu_mkdtemp(const char *prefix)
{
    const char *tmp = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
    if (!mkdtemp(path)) return NULL;
    return strdup(path);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

void tu_rmrf(const char *path)
{
    if (path) nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
