/* fuzz_names.c - spool file names (anything may be in the spool directory). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool.h"

/* libFuzzer's entry point (it declares none for C). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *name = malloc(size + 1);
    memcpy(name, data, size);
    name[size] = '\0';
    int ep = -1, gz = -1;
    uint32_t n;
    if (lf__spool_parse_name(name, &ep, &gz, &n) == 0 && (ep < 0 || ep > 1 || gz < 0 || gz > 1))
        abort();
    free(name);
    return 0;
}
