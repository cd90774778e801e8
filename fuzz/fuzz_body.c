/* fuzz_body.c - body surgery (split, shrink, filter) on arbitrary JSON, as read back from
 * spool files or rebuilt after a 413 or a 207. Outputs must be JSON again. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "langfuse/langfuse.h"

static void must_parse(const char *s, size_t n)
{
    json_error_t err;
    json_t *v = json_loadb(s, n, 0, &err);
    if (!v) abort();
    json_decref(v);
}

/* libFuzzer's entry point (it declares none for C). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    for (int ep = LF_TRANSPORT_OTLP; ep <= LF_TRANSPORT_INGESTION; ep++) {
        lf__body_count(ep, s, size);
        char *a, *b;
        size_t al, bl;
        if (lf__body_split(ep, s, size, &a, &al, &b, &bl) == 0) {
            must_parse(a, al);
            must_parse(b, bl);
            free(a);
            free(b);
        }
    }
    char *out;
    size_t n;
    if (lf__body_shrink(s, size, &out, &n) == 0) {
        must_parse(out, n);
        free(out);
    }
    const char *ids[] = {"a", "b"};
    if (lf__body_filter_events(s, size, ids, 2, &out, &n) == 0) {
        must_parse(out, n);
        free(out);
    }
    return 0;
}
