/* fuzz_json.c - the escaper: whatever bytes a caller records (invalid UTF-8, NULs, secrets
 * split across anything), the output must be valid JSON, once and twice escaped. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static struct lf__redactor *red;

/* libFuzzer's entry point (it declares none for C). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!red) {
        struct lf__redactor *r = lf__redactor_new();
        red = lf__redactor_with(r, "sk-secret-value", 15);
        lf__redactor_free(r);
    }
    for (int twice = 0; twice < 2; twice++) {
        struct lf__buf b;
        lf__buf_init(&b, 0);
        if (twice) lf__buf_putc(&b, '"');
        lf__json_str(&b, (const char *)data, size, red, twice);
        if (twice) lf__buf_putc(&b, '"');
        json_error_t err;
        json_t *v = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (!v) abort();
        if (twice) {
            json_t *inner = json_loadb(json_string_value(v), json_string_length(v),
                                       JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
            if (!inner) abort();
            json_decref(inner);
        }
        if (memmem(b.data, b.len, "sk-secret-value", 15)) abort();
        json_decref(v);
        lf__buf_free(&b);
    }
    return 0;
}
