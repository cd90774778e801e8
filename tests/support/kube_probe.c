/*
 * kube_probe.c - the operator's Kubernetes client (src/operator/kube.c, kubeconfig.c) on
 * its own, for tests/operator/test_kube.py, which runs it against test API servers.
 *
 *     kube_probe [--kubeconfig F] [--context C] [--timeout-ms MS] [--content-type T] COMMAND
 *
 *   info                        prints `SERVER <url>` and `NAMESPACE <ns>`
 *   request METHOD PATH [BODY]  one request; prints `STATUS <n>`, `BODY <json|null>`,
 *                               `ERR <err>`; exits 0 when a response came, 1 when none did
 *   requests                    the same for each stdin line `METHOD PATH [BODY]`, each answer
 *                               followed by `DONE`, until stdin ends (one client throughout:
 *                               its connection and token carry over)
 *   watch PATH N [PATH...]      opens a watch on each PATH; prints `EVENT <i> <json>` per event
 *                               (i: the watch's index) and `ENDED <i> <status> <error>` per
 *                               end; exits 0 after N events or when every watch ended
 *       --wakes                 stdin is co_kube_wait's extra fd: each line read from it after
 *                               a wake-up is printed as `WOKE <line>`; stdin's end exits
 *       --wait-ms MS            each co_kube_wait's timeout (default 1000)
 *       --max-seconds S         gives up after S seconds (default 30): `GAVEUP`, exit 3
 *       --stall-ms MS           sleeps MS after the first event, once: the server's stream
 *                               piles up meanwhile and arrives at once (a full queue)
 *
 * A client that cannot open prints `OPEN_ERROR <err>` and exits 2. Every line is flushed.
 */
#include "kube.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void print_json_line(const char *prefix, const json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    printf("%s%s\n", prefix, s ? s : "null");
    free(s);
}

static int one_request(struct co_kube *k, const char *method, const char *path,
                       const char *body_text, const char *ctype, long timeout_ms)
{
    json_t *body = NULL;
    if (body_text && *body_text) {
        json_error_t jerr;
        body = json_loads(body_text, JSON_DECODE_ANY, &jerr);
        if (!body) {
            printf("ERR the probe's body is not JSON: %s\n", jerr.text);
            fflush(stdout);
            return 1;
        }
    }
    struct co_response r;
    int rc = co_kube_request(k, method, path, body, ctype, timeout_ms, &r);
    printf("STATUS %ld\n", r.status);
    print_json_line("BODY ", r.body);
    printf("ERR %s\n", r.err);
    fflush(stdout);
    co_response_clear(&r);
    json_decref(body);
    return rc ? 1 : 0;
}

static int run_requests(struct co_kube *k, const char *ctype, long timeout_ms)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n') line[n - 1] = '\0';
        char *method = strtok(line, " ");
        char *path = strtok(NULL, " ");
        char *body = strtok(NULL, "");
        if (method && path) one_request(k, method, path, body, ctype, timeout_ms);
        puts("DONE");
        fflush(stdout);
    }
    free(line);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int run_watch(struct co_kube *k, char **paths, int npaths, long want, bool wakes,
                     int wait_ms, double max_seconds, long stall_ms)
{
    struct co_watch *ws[16] = {0};
    char err[256];
    int open = 0, rc = 0;
    long events = 0;
    if (npaths > 16) npaths = 16;
    for (int i = 0; i < npaths; i++) {
        ws[i] = co_watch_open(k, paths[i], (void *)(intptr_t)i, err, sizeof err);
        if (!ws[i]) {
            printf("WATCH_ERROR %d %s\n", i, err);
            fflush(stdout);
            rc = 2;
            goto done;
        }
        open++;
    }
    double deadline = now_s() + max_seconds;
    while (open > 0 && events < want) {
        if (now_s() > deadline) {
            puts("GAVEUP");
            rc = 3;
            break;
        }
        struct co_watch *w;
        json_t *ev;
        switch (co_kube_wait(k, wait_ms, wakes ? 0 : -1, &w, &ev)) {
        case CO_WAIT_EVENT: {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "EVENT %d ", (int)(intptr_t)co_watch_user(w));
            print_json_line(prefix, ev);
            json_decref(ev);
            if (events++ == 0 && stall_ms > 0) {
                fflush(stdout);
                struct timespec ts = {stall_ms / 1000, (stall_ms % 1000) * 1000000L};
                nanosleep(&ts, NULL);
            }
            break;
        }
        case CO_WAIT_ENDED:
            printf("ENDED %d %ld %s\n", (int)(intptr_t)co_watch_user(w), co_watch_status(w),
                   co_watch_error(w));
            open--;
            break;
        case CO_WAIT_TIMEOUT:
            if (wakes) {
                struct pollfd p = {.fd = 0, .events = POLLIN};
                if (poll(&p, 1, 0) == 1) {
                    char line[256];
                    if (!fgets(line, sizeof line, stdin)) goto done;
                    line[strcspn(line, "\n")] = '\0';
                    printf("WOKE %s\n", line);
                }
            }
            break;
        }
        fflush(stdout);
    }
done:
    fflush(stdout);
    for (int i = 0; i < npaths; i++)
        co_watch_close(ws[i]);
    return rc;
}

int main(int argc, char **argv)
{
    struct co_kube_source src = {0};
    const char *ctype = NULL;
    long timeout_ms = 10000;
    bool wakes = false;
    int wait_ms = 1000;
    double max_seconds = 30;
    long stall_ms = 0;
    int i = 1;
    for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
        const char *opt = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(opt, "--wakes")) {
            wakes = true;
            continue;
        }
        if (!val) break;
        i++;
        if (!strcmp(opt, "--kubeconfig"))
            src.kubeconfig = val;
        else if (!strcmp(opt, "--context"))
            src.context = val;
        else if (!strcmp(opt, "--timeout-ms"))
            timeout_ms = atol(val);
        else if (!strcmp(opt, "--content-type"))
            ctype = val;
        else if (!strcmp(opt, "--wait-ms"))
            wait_ms = atoi(val);
        else if (!strcmp(opt, "--max-seconds"))
            max_seconds = atof(val);
        else if (!strcmp(opt, "--stall-ms"))
            stall_ms = atol(val);
        else {
            fprintf(stderr, "kube_probe: unknown option %s\n", opt);
            return 64;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "kube_probe: no command (info, request, requests, watch)\n");
        return 64;
    }
    const char *cmd = argv[i++];
    char err[512];
    struct co_kube *k = co_kube_open(&src, err, sizeof err);
    if (!k) {
        printf("OPEN_ERROR %s\n", err);
        return 2;
    }
    int rc = 64;
    if (!strcmp(cmd, "info")) {
        printf("SERVER %s\nNAMESPACE %s\n", co_kube_server(k), co_kube_namespace(k));
        rc = 0;
    } else if (!strcmp(cmd, "request") && i + 1 < argc) {
        rc = one_request(k, argv[i], argv[i + 1], i + 2 < argc ? argv[i + 2] : NULL, ctype,
                         timeout_ms);
    } else if (!strcmp(cmd, "requests")) {
        rc = run_requests(k, ctype, timeout_ms);
    } else if (!strcmp(cmd, "watch") && i + 1 < argc) {
        char *paths[16];
        int n = 0;
        paths[n++] = argv[i];
        long want = atol(argv[i + 1]);
        for (int j = i + 2; j < argc && n < 16; j++)
            paths[n++] = argv[j];
        rc = run_watch(k, paths, n, want, wakes, wait_ms, max_seconds, stall_ms);
    } else {
        fprintf(stderr, "kube_probe: bad command line\n");
    }
    fflush(stdout);
    co_kube_free(k);
    return rc;
}
