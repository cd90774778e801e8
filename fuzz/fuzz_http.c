/* fuzz_http.c - the HTTP response parsers: head, chunked coding, Retry-After. Bytes come
 * from whatever server the user points the library at. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* libFuzzer's entry point (it declares none for C). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int st, ch, cl;
    long long len;
    long ra;
    long n = lf__http_parse_head((const char *)data, size, &st, &len, &ch, &cl, &ra, 1700000000);
    if (n > 0 && (st < 100 || st > 599 || (size_t)n > size)) abort();
    /* the rest, or everything, as a chunked body, fed in two pieces */
    size_t off = n > 0 ? (size_t)n : 0;
    char out[256];
    size_t olen = 0;
    int done = 0;
    struct lf__chunked c = {0};
    size_t half = (size - off) / 2;
    long used =
        lf__chunked_feed(&c, (const char *)data + off, half, out, sizeof(out), &olen, &done);
    if (used >= 0 && !done)
        lf__chunked_feed(&c, (const char *)data + off + half, size - off - half, out, sizeof(out),
                         &olen, &done);
    if (olen > sizeof(out)) abort();
    char *v = malloc(size + 1);
    memcpy(v, data, size);
    v[size] = '\0';
    long ms = lf__parse_retry_after(v, 1700000000);
    if (ms < -1) abort();
    free(v);
    return 0;
}
