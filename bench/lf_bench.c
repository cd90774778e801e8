/*
 * lf_bench.c - liblangfuse's side of the tracing benchmark (bench/README.md).
 *
 * The workload of bench/js/workload.mjs, ported bit for bit: one trace, 2,000 spans, each
 * with 3 generations (500-character input and output, usage, cost) and 2 tool
 * observations (1 KB output); `yield` sleeps 1 ms after each span, `burst` does not.
 * Times the calls that create, fill and end each observation on the caller's thread,
 * and prints one JSON line: median and p99 recording cost, CPU per 1,000 observations
 * (whole process, through shutdown), peak RSS and shutdown time. Default client settings.
 */
#include <langfuse/langfuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define SPANS 2000
#define PER_SPAN 6
#define OBSERVATIONS (SPANS * PER_SPAN)
#define CORPUS_LEN 4096

static const char *const words[64] = {
    "the",    "agent", "reads",  "a",       "file",  "and",     "then",    "runs",
    "tests",  "for",   "every",  "module",  "in",    "project", "while",   "model",
    "thinks", "about", "next",   "step",    "shell", "command", "returns", "output",
    "with",   "some",  "errors", "that",    "need",  "fixing",  "before",  "commit",
    "is",     "made",  "on",     "branch",  "user",  "asked",   "to",      "refactor",
    "parser", "so",    "it",     "handles", "large", "inputs",  "without", "copying",
    "memory", "twice", "build",  "passes",  "now",   "but",     "one",     "flaky",
    "test",   "still", "times",  "out",     "under", "load",    "we",      "retry",
};

static char corpus[CORPUS_LEN + 64];

static void build_corpus(void)
{
    uint32_t x = 0x2545F491u;
    size_t len = 0;
    while (len < CORPUS_LEN) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        const char *w = words[x % 64];
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        const char *sep = x % 10 == 0 ? ". " : " ";
        len += (size_t)snprintf(corpus + len, sizeof(corpus) - len, "%s%s", w, sep);
    }
    corpus[CORPUS_LEN] = '\0';
}

/* text(label, n, len) of workload.mjs, into out (len + 1 bytes). */
static void text(char *out, const char *label, int n, int len)
{
    int p = snprintf(out, (size_t)len + 1, "%s#%d ", label, n);
    int off = (n * 131) % 2048;
    memcpy(out + p, corpus + off, (size_t)(len - p));
    out[len] = '\0';
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Peak resident memory of this program, in KiB. Not getrusage()'s ru_maxrss: Linux keeps
 * that across exec(), so a program started by a 23 MB Python driver would report 23 MB. */
static long peak_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmHWM:", 6)) sscanf(line + 6, "%ld", &v);
    if (f) fclose(f);
    return v;
}

static double cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec * 1e6 +
           ru.ru_stime.tv_usec;
}

int main(int argc, char **argv)
{
    const char *host = NULL, *mode = NULL;
    int selftest = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--host") && i + 1 < argc)
            host = argv[++i];
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc)
            mode = argv[++i];
        else if (!strcmp(argv[i], "--selftest"))
            selftest = 1;
    }
    build_corpus();
    static char in[501], out[501], tool_out[1025], trace_io[501];
    if (selftest) {
        /* compare with: node bench/js/workload.mjs --selftest (heads only; sha via shell) */
        printf("corpus_head %.80s\n", corpus);
        text(in, "in", 11999, 500);
        printf("text(in,11999,500) head %.40s\n", in);
        return 0;
    }
    if (!host || !mode || (strcmp(mode, "yield") && strcmp(mode, "burst"))) {
        fprintf(stderr, "usage: lf_bench --host URL --mode yield|burst\n");
        return 2;
    }
    int yield = !strcmp(mode, "yield");
    double *rec = calloc(OBSERVATIONS, sizeof(double));

    struct lf_config cfg;
    lf_config_init(&cfg);
    cfg.public_key = "pk-lf-bench";
    cfg.secret_key = "sk-lf-bench";
    cfg.host = host;
    lf_client *c = lf_client_new(&cfg);
    double cpu0 = cpu_us(); /* as the JS drivers: from after the client is constructed */

    double record_start = now_us();
    lf_obs *trace = lf_trace_start(c, "bench-trace", NULL);
    text(trace_io, "trace-in", 0, 500);
    lf_trace_set_input_string(trace, trace_io);
    for (int i = 0; i < SPANS; i++) {
        int n = i * PER_SPAN;
        double t0 = now_us();
        lf_obs *span = lf_obs_start(trace, LF_OBS_SPAN, "turn");
        double span_us = now_us() - t0;
        for (int k = n + 1; k < n + PER_SPAN; k++) {
            if ((k - n) % 2 == 1) {
                text(in, "in", k, 500);
                text(out, "out", k, 500);
                t0 = now_us();
                lf_obs *g = lf_obs_start(span, LF_OBS_GENERATION, "llm-call");
                lf_obs_set_model(g, "claude-sonnet-4-5");
                lf_obs_set_input_string(g, in);
                lf_obs_set_output_string(g, out);
                lf_obs_set_usage(g, "input", 1200);
                lf_obs_set_usage(g, "output", 80);
                lf_obs_set_usage(g, "cache_read_input_tokens", 300);
                lf_obs_set_usage(g, "cache_creation_input_tokens", 50);
                lf_obs_set_cost(g, "input", 0.0036);
                lf_obs_set_cost(g, "output", 0.0012);
                lf_obs_set_cost(g, "cache_read_input_tokens", 0.00009);
                lf_obs_set_cost(g, "cache_creation_input_tokens", 0.0001875);
                lf_obs_set_cost(g, "total", 0.0050775);
                lf_obs_end(g);
                rec[k] = now_us() - t0;
            } else {
                text(tool_out, "tool", k, 1024);
                t0 = now_us();
                lf_obs *t = lf_obs_start(span, LF_OBS_TOOL, "Bash");
                lf_obs_set_input_json(t, "{\"command\":\"ls -la\"}");
                lf_obs_set_output_string(t, tool_out);
                lf_obs_end(t);
                rec[k] = now_us() - t0;
            }
        }
        t0 = now_us();
        lf_obs_end(span);
        rec[n] = span_us + (now_us() - t0);
        if (yield) {
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
        }
    }
    double record_end = now_us();
    text(trace_io, "trace-out", 0, 500);
    lf_trace_set_output_string(trace, trace_io);
    lf_obs_end(trace);

    double t0 = now_us();
    int rc = lf_client_shutdown(c, -1);
    double shutdown_ms = (now_us() - t0) / 1000;
    double cpu = cpu_us() - cpu0;
    struct lf_stats s;
    lf_client_stats(c, &s);
    lf_client_free(c);

    qsort(rec, OBSERVATIONS, sizeof(double), cmp_double);
    double median = (rec[OBSERVATIONS / 2 - 1] + rec[OBSERVATIONS / 2]) / 2;
    double p99 = rec[(int)(0.99 * OBSERVATIONS + 0.999999) - 1];
    fprintf(stderr,
            "[liblangfuse] shutdown: %s; recorded %llu delivered %llu dropped %llu spooled %llu "
            "lost %llu spilled %llu requests %llu peak queue %llu bytes; recording took %.1f ms\n",
            lf_strerror(rc), (unsigned long long)s.recorded, (unsigned long long)s.delivered,
            (unsigned long long)(s.dropped_queue + s.dropped_nomem + s.dropped_closed),
            (unsigned long long)s.spooled, (unsigned long long)s.spool_dropped,
            (unsigned long long)s.spilled, (unsigned long long)s.requests,
            (unsigned long long)s.queue_peak_bytes, (record_end - record_start) / 1000);
    printf("{\"client\":\"liblangfuse\",\"mode\":\"%s\",\"observations\":%d,"
           "\"record_us_median\":%.2f,\"record_us_p99\":%.2f,\"cpu_ms_per_1000\":%.2f,"
           "\"peak_rss_mib\":%.1f,\"shutdown_ms\":%.1f}\n",
           mode, OBSERVATIONS, median, p99, cpu / 1000.0 / (OBSERVATIONS / 1000.0),
           peak_rss_kib() / 1024.0, shutdown_ms);
    free(rec);
    return 0;
}
