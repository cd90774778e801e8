/*
 * otel_probe.c - the telemetry receiver (src/runner/otel.c) on its own, for tests that run
 * the real Claude Code CLI against it.
 *
 *     otel_probe [MAX_SECONDS]
 *
 * Prints the environment the CLI needs, one `ENV NAME=value` line each, then `READY <port>`;
 * then one JSON line per event as it arrives, in the order taken ({"kind", the fields of
 * struct cc_otel_event, "received_ms": epoch ms when the probe took it}). When stdin ends (or
 * after MAX_SECONDS, default 120) it takes what is left, prints {"stats": {...}} and exits 0.
 * The loop is the one a session runs: poll() on cc_otel_fd(), then cc_otel_next() until 0.
 */
#include "otel.h"

#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long long epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (s) {
        puts(s);
        fflush(stdout);
    }
    free(s);
    json_decref(j);
}

static int take_events(struct cc_otel *o)
{
    static const char *const kinds[] = {"api_request", "api_error", "api_retries_exhausted"};
    struct cc_otel_event ev;
    int n = 0;
    while (cc_otel_next(o, &ev)) {
        print_json(json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:I, s:I,"
            " s:i, s:s, s:i, s:I}",
            "kind", kinds[ev.kind], "request_id", ev.request_id, "agent_id", ev.agent_id,
            "query_source", ev.query_source, "prompt_id", ev.prompt_id, "session_id", ev.session_id,
            "model", ev.model, "input_tokens", (json_int_t)ev.input_tokens, "output_tokens",
            (json_int_t)ev.output_tokens, "cache_read_tokens", (json_int_t)ev.cache_read_tokens,
            "cache_creation_tokens", (json_int_t)ev.cache_creation_tokens, "cost_usd", ev.cost_usd,
            "duration_ms", ev.duration_ms, "ttft_ms", ev.ttft_ms, "time_ns", (json_int_t)ev.time_ns,
            "sequence", (json_int_t)ev.sequence, "status_code", ev.status_code, "error", ev.error,
            "attempt", ev.attempt, "received_ms", (json_int_t)epoch_ms()));
        n++;
    }
    return n;
}

int main(int argc, char **argv)
{
    char err[256];
    long long max_ms = (argc > 1 ? atoll(argv[1]) : 120) * 1000;
    struct cc_otel *o = cc_otel_start(err, sizeof err);
    if (!o) {
        fprintf(stderr, "otel_probe: %s\n", err);
        return 1;
    }
    for (const char *const *e = cc_otel_env(o); *e; e++)
        printf("ENV %s\n", *e);
    printf("READY %d\n", cc_otel_port(o));
    fflush(stdout);

    long long end = epoch_ms() + max_ms;
    struct pollfd p[2] = {{cc_otel_fd(o), POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    while (epoch_ms() < end) {
        if (poll(p, 2, 100) < 0) break;
        if (p[0].revents) take_events(o);
        if (p[1].revents) {
            char buf[256];
            if (read(STDIN_FILENO, buf, sizeof buf) <= 0) break;
        }
    }
    take_events(o);
    struct cc_otel_stats st;
    cc_otel_stats(o, &st);
    print_json(json_pack("{s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "stats", "requests",
                         (json_int_t)st.requests, "unauthorized", (json_int_t)st.unauthorized,
                         "bad", (json_int_t)st.bad, "records", (json_int_t)st.records, "events",
                         (json_int_t)st.events, "dropped", (json_int_t)st.dropped, "connections",
                         (json_int_t)st.connections, "refused", (json_int_t)st.refused));
    cc_otel_stop(o);
    return 0;
}
