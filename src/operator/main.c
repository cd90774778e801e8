/*
 * ccoperator - runs every AgenticSession applied to a cluster as a ccrunner Job and keeps
 * the session's status true (SPEC, "The operator"). This file is the program around the
 * loop: options and their environment variables, the API client, the health endpoint and
 * the signals. SIGTERM or SIGINT stops it cleanly: the loop ends between two requests,
 * the watches are closed, exit 0. Sessions already running are not touched: their Jobs
 * belong to the sessions, not to the operator.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "health.h"
#include "job.h"
#include "kube.h"
#include "log.h"
#include "reconcile.h"

#ifndef CO_VERSION
#define CO_VERSION "dev"
#endif

static const char usage[] =
    "usage: ccoperator [OPTIONS]\n"
    "Runs every AgenticSession (vteam.ambient-code/v1alpha1) as a ccrunner Job named\n"
    "<session>-job and keeps the session's status: phase, times, cost, usage, turns, traceId.\n"
    "\n"
    "  --namespace NS           watch one namespace (WATCH_NAMESPACE); default all\n"
    "  --image IMAGE            the runner image of the Jobs (RUNNER_IMAGE); required\n"
    "  --health ADDR:PORT       serve GET /healthz and /readyz (HEALTH_ADDR);\n"
    "                           default 0.0.0.0:8081, 'off' for none\n"
    "  --kubeconfig FILE        outside the cluster (KUBECONFIG; default ~/.kube/config);\n"
    "                           in it, the service account is used\n"
    "  --context NAME           the kubeconfig context; default its current-context\n"
    "  --anthropic-secret NAME  the Secret holding ANTHROPIC_API_KEY (ANTHROPIC_SECRET);\n"
    "                           default anthropic-api-key\n"
    "  --bot-token-secret NAME  the Secret holding BOT_TOKEN (BOT_TOKEN_SECRET);\n"
    "                           default ccrunner-bot-token\n"
    "  --start-timeout S        a runner Pod not started after S seconds fails its session\n"
    "                           (POD_START_TIMEOUT); default 600\n"
    "  --websocket-url URL      the backend every runner streams its session to\n"
    "                           (WEBSOCKET_URL), ws:// or wss://, with {namespace} and\n"
    "                           {name} for the session's; default none\n"
    "  --permission-mode MODE   Claude Code's permission mode for every runner\n"
    "                           (PERMISSION_MODE); default the runner's, acceptEdits\n"
    "  -h, --help, --version\n"
    "\n"
    "Exit codes: 0 stopped by SIGTERM/SIGINT; 2 a configuration error (one line on stderr).\n";

static int stop_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    ssize_t w = write(stop_pipe[1], "s", 1);
    (void)w;
    (void)sig;
    errno = saved;
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

/* One line on stderr, exit code 2 (a configuration error). */
__attribute__((format(printf, 1, 2))) static int bad(const char *fmt, ...)
{
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ccoperator: error: %s\n", line);
    return 2;
}

int main(int argc, char **argv)
{
    const char *ns = getenv("WATCH_NAMESPACE");
    const char *image = getenv("RUNNER_IMAGE");
    const char *health = env_or("HEALTH_ADDR", "0.0.0.0:8081");
    const char *kubeconfig = NULL, *context = NULL;
    const char *anthropic = env_or("ANTHROPIC_SECRET", "anthropic-api-key");
    const char *bot = env_or("BOT_TOKEN_SECRET", "ccrunner-bot-token");
    const char *start = env_or("POD_START_TIMEOUT", "600");
    const char *start_from = "POD_START_TIMEOUT";
    const char *ws_url = getenv("WEBSOCKET_URL"), *ws_from = "WEBSOCKET_URL";
    const char *mode = getenv("PERMISSION_MODE"), *mode_from = "PERMISSION_MODE";

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--version")) {
            printf("ccoperator %s\n", CO_VERSION);
            return 0;
        }
        if (!strcmp(a, "--namespace"))
            dst = &ns;
        else if (!strcmp(a, "--image"))
            dst = &image;
        else if (!strcmp(a, "--health"))
            dst = &health;
        else if (!strcmp(a, "--kubeconfig"))
            dst = &kubeconfig;
        else if (!strcmp(a, "--context"))
            dst = &context;
        else if (!strcmp(a, "--anthropic-secret"))
            dst = &anthropic;
        else if (!strcmp(a, "--bot-token-secret"))
            dst = &bot;
        else if (!strcmp(a, "--start-timeout"))
            dst = &start, start_from = "--start-timeout";
        else if (!strcmp(a, "--websocket-url"))
            dst = &ws_url, ws_from = "--websocket-url";
        else if (!strcmp(a, "--permission-mode"))
            dst = &mode, mode_from = "--permission-mode";
        else
            return bad("unknown argument '%s'; see ccoperator --help", a);
        if (i + 1 >= argc) return bad("%s needs a value", a);
        *dst = argv[++i];
    }
    if (!image || !*image)
        return bad("no runner image: set --image or RUNNER_IMAGE (e.g. REGISTRY/ccrunner:TAG)");
    char *end;
    errno = 0;
    long long start_s = strtoll(start, &end, 10);
    if (errno || *end || end == start || start_s < 1 || start_s > 86400)
        return bad("%s=%s is not a number of seconds from 1 to 86400", start_from, start);
    const char *why;
    if (ws_url && *ws_url && (why = co_job_check_websocket_url(ws_url)))
        return bad("%s=%s %s", ws_from, ws_url, why);
    static const char *const modes[] = {"default",           "acceptEdits", "plan",
                                        "bypassPermissions", "dontAsk",     "auto"};
    bool mode_ok = !mode || !*mode;
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++)
        mode_ok |= mode && !strcmp(mode, modes[i]);
    if (!mode_ok)
        return bad("%s=%s is not a permission mode: use default, acceptEdits, plan, "
                   "bypassPermissions, dontAsk or auto",
                   mode_from, mode);

    if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK)) return bad("pipe: %s", strerror(errno));
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    char err[512] = "";
    struct co_kube_source src = {.kubeconfig = kubeconfig, .context = context};
    struct co_kube *k = co_kube_open(&src, err, sizeof err);
    if (!k) {
        curl_global_cleanup();
        return bad("%s", err);
    }
    struct co_liveness live;
    atomic_init(&live.beat_ms, co_mono_ms());
    atomic_init(&live.synced, false);
    struct co_health *h = NULL;
    if (strcmp(health, "off") != 0 && !(h = co_health_start(health, &live, err, sizeof err))) {
        co_kube_free(k);
        curl_global_cleanup();
        return bad("%s", err);
    }
    struct co_operator_opts o = {
        .namespace = ns && *ns ? ns : NULL,
        .job = {.image = image,
                .anthropic_secret = anthropic,
                .bot_token_secret = bot,
                .websocket_url = ws_url,
                .permission_mode = mode && *mode ? mode : NULL},
        .start_timeout_s = start_s,
    };
    char port[16] = "";
    if (h) snprintf(port, sizeof port, "%d", co_health_port(h));
    co_log("%s: API server %s, %s%s, runner image %s%s%s", CO_VERSION, co_kube_server(k),
           o.namespace ? "namespace " : "all namespaces", o.namespace ? o.namespace : "", image,
           h ? ", health on port " : ", no health endpoint", port);
    co_operator_run(k, &o, stop_pipe[0], &live);
    co_log("stopping (signal)");
    co_health_stop(h);
    co_kube_free(k);
    curl_global_cleanup();
    return 0;
}
