/* fuzz_spill.c - reading a spill file back, whatever its bytes (a full disk or a bug can
 * leave anything): no crash, no overread, everything accounted. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spill.h"

/* libFuzzer's entry point (it declares none for C). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lf__spill s;
    lf__spill_init(&s, NULL, 1 << 20);
    FILE *f = tmpfile();
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fflush(f);
    s.fd = dup(fileno(f));
    fclose(f);
    s.wpos = (off_t)size;
    s.nrec = size / 64 + 1; /* claim more than may be there */
    uint64_t lost = 0, got = 0;
    while (s.nrec) {
        struct lf_obs *list = lf__spill_read(&s, 4096, UINT_MAX, &lost);
        if (!list) break;
        while (list) {
            struct lf_obs *r = list;
            list = r->next;
            got++;
            lf__rec_free(r);
        }
    }
    lf__spill_close(&s);
    return 0;
}
