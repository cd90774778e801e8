/*
 * gzip_bench.c - zlib and libdeflate side by side on request bodies: gzip at level 1 (the
 * exporter's) and gunzip, MB/s of JSON (median of 21 runs each) and compressed size.
 *
 *   build/bench/gzip_bench                 a synthetic 550 KB OTLP body like ccrunner's
 *   build/bench/gzip_bench FILE...         each file's bytes as the body
 *
 * The synthetic body: spans with random 32/16-hex ids, nanosecond timestamps, names and
 * attributes as the exporter writes them, and inputs/outputs of prose and shell/code text
 * drawn from a fixed vocabulary with a fixed seed (the same body every run).
 */
#include <libdeflate.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define RUNS 21

static uint64_t seed = 0x9E3779B97F4A7C15u;

static uint64_t rnd(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

static const char *const words[] = {
    "the",    "runner", "file",  "test",     "build",   "error",     "return", "session",
    "tool",   "model",  "const", "char",     "size_t",  "if",        "for",    "while",
    "struct", "static", "int",   "void",     "grep",    "-rn",       "src/",   "make",
    "&&",     "echo",   "cat",   "json",     "trace",   "span",      "usage",  "input_tokens",
    "cost",   "Claude", "Code",  "Langfuse", "{",       "}",         "(",      ")",
    ";",      "=",      "->",    "fixed",    "failing", "assertion", "line",   "42",
    "0x7f",   "NULL",   "free",  "malloc",   "ok"};

static void text(FILE *f, int n)
{
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%s", i ? (rnd() % 9 ? " " : "\\n") : "",
                words[rnd() % (sizeof words / sizeof *words)]);
}

static void hex(FILE *f, int n)
{
    for (int i = 0; i < n; i++)
        fputc("0123456789abcdef"[rnd() % 16], f);
}

static char *synthetic(size_t *len)
{
    char *out = NULL;
    FILE *f = open_memstream(&out, len);
    fputs("{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":"
          "{\"stringValue\":\"ccrunner\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"langfuse-c\"},"
          "\"spans\":[",
          f);
    uint64_t t = 1796548000000000000u;
    for (int i = 0; *len < 550000; i++) {
        fflush(f);
        fputs(i ? ",{\"traceId\":\"" : "{\"traceId\":\"", f);
        hex(f, 32);
        fputs("\",\"spanId\":\"", f);
        hex(f, 16);
        fputs("\",\"parentSpanId\":\"", f);
        hex(f, 16);
        t += rnd() % 2000000000u;
        fprintf(f,
                "\",\"name\":\"%s\",\"kind\":1,\"startTimeUnixNano\":\"%llu\","
                "\"endTimeUnixNano\":\"%llu\",\"attributes\":[",
                i % 3 ? "Bash" : "model-call", (unsigned long long)t,
                (unsigned long long)(t + rnd() % 900000000u));
        fputs("{\"key\":\"langfuse.observation.type\",\"value\":{\"stringValue\":\"tool\"}},"
              "{\"key\":\"langfuse.session.id\",\"value\":{\"stringValue\":\"s-",
              f);
        hex(f, 12);
        fputs("\"}},{\"key\":\"langfuse.observation.input\",\"value\":{\"stringValue\":\"{"
              "\\\"command\\\":\\\"",
              f);
        text(f, 8 + (int)(rnd() % 40));
        fputs("\\\"}\"}},{\"key\":\"langfuse.observation.output\",\"value\":{\"stringValue\":\"",
              f);
        text(f, 20 + (int)(rnd() % 300));
        fprintf(f,
                "\"}},{\"key\":\"langfuse.observation.usage_details\",\"value\":{\"stringValue\":"
                "\"{\\\"input\\\":%llu,\\\"output\\\":%llu}\"}}]}",
                (unsigned long long)(rnd() % 20000), (unsigned long long)(rnd() % 2000));
    }
    fputs("]}]}]}", f);
    fclose(f);
    return out;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v)
{
    qsort(v, RUNS, sizeof *v, cmp);
    return v[RUNS / 2];
}

static size_t zlib_gzip(const char *in, size_t len, unsigned char *out, size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    size_t n = z.total_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? n : 0;
}

static size_t zlib_gunzip(const unsigned char *in, size_t len, char *out, size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    inflateInit2(&z, 15 + 32);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    int rc = inflate(&z, Z_FINISH);
    size_t n = z.total_out;
    inflateEnd(&z);
    return rc == Z_STREAM_END ? n : 0;
}

static void bench(const char *name, const char *body, size_t len)
{
    size_t cap = len + len / 10 + 1024;
    unsigned char *zgz = malloc(cap), *dgz = malloc(cap);
    char *back = malloc(len + 1);
    double zc[RUNS], dc[RUNS], zd[RUNS], dd[RUNS];
    size_t zn = 0, dn = 0;
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_s();
        zn = zlib_gzip(body, len, zgz, cap);
        double t1 = now_s();
        /* the exporter keeps its compressor (encode.c): its allocation is not timed */
        struct libdeflate_compressor *c = libdeflate_alloc_compressor(1);
        double t2 = now_s();
        dn = libdeflate_gzip_compress(c, body, len, dgz, cap);
        double t3 = now_s();
        libdeflate_free_compressor(c);
        size_t zb = zlib_gunzip(dgz, dn, back, len + 1);
        double t4 = now_s();
        struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
        size_t db = 0;
        int ok = libdeflate_gzip_decompress(d, zgz, zn, back, len, &db) == LIBDEFLATE_SUCCESS;
        double t5 = now_s();
        libdeflate_free_decompressor(d);
        if (!zn || !dn || zb != len || !ok || db != len || memcmp(back, body, len)) {
            fprintf(stderr, "%s: a round trip failed\n", name);
            exit(1);
        }
        zc[r] = len / (t1 - t0) / 1e6;
        dc[r] = len / (t3 - t2) / 1e6;
        zd[r] = len / (t4 - t3) / 1e6;
        dd[r] = len / (t5 - t4) / 1e6;
    }
    printf("%s: %zu bytes of JSON\n", name, len);
    printf("  gzip level 1   zlib %7.0f MB/s -> %7zu bytes   libdeflate %7.0f MB/s -> %7zu bytes"
           "   x%.2f\n",
           median(zc), zn, median(dc), dn, median(dc) / median(zc));
    printf("  gunzip         zlib %7.0f MB/s                     libdeflate %7.0f MB/s"
           "                     x%.2f\n",
           median(zd), median(dd), median(dd) / median(zd));
    free(zgz);
    free(dgz);
    free(back);
}

int main(int argc, char **argv)
{
    printf("zlib %s, libdeflate %s; medians of %d runs\n", zlibVersion(), LIBDEFLATE_VERSION_STRING,
           RUNS);
    if (argc < 2) {
        size_t len;
        char *body = synthetic(&len);
        bench("synthetic OTLP body", body, len);
        free(body);
    }
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        char *body = NULL;
        size_t len = 0, cap = 0, n;
        char chunk[65536];
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
            if (len + n > cap) {
                cap = (len + n) * 2;
                body = realloc(body, cap);
            }
            memcpy(body + len, chunk, n);
            len += n;
        }
        fclose(f);
        bench(argv[i], body, len);
        free(body);
    }
    return 0;
}
