/*
 * gzip.c - gzip of whole buffers with libdeflate; see gzip.h.
 *
 * libdeflate works on whole buffers, so the output's size must be known first: compressing,
 * its bound; decompressing, the size the gzip trailer declares (ISIZE, the content's size
 * modulo 2^32: our bodies are at most a few MiB, and a size that is not the content's is
 * caught, as libdeflate then reports a short or overlong output).
 */
#include "gzip.h"

#include <libdeflate.h>
#include <stdint.h>
#include <stdlib.h>

#include "alloc.h"

int lf__gzip(const char *in, size_t len, int level, char **out, size_t *out_len)
{
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
    if (!c) return -1;
    size_t cap = libdeflate_gzip_compress_bound(c, len);
    char *buf = lf__malloc(cap);
    size_t n = buf ? libdeflate_gzip_compress(c, in, len, buf, cap) : 0;
    libdeflate_free_compressor(c);
    if (!n) { /* cannot happen within the bound, but the bound is libdeflate's word */
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = n;
    return 0;
}

/* The size a member declares: its last four bytes, little-endian. */
static uint32_t isize(const unsigned char *end)
{
    return (uint32_t)end[-4] | (uint32_t)end[-3] << 8 | (uint32_t)end[-2] << 16 |
           (uint32_t)end[-1] << 24;
}

int lf__gunzip(const char *in, size_t len, size_t max, char **out, size_t *out_len)
{
    const unsigned char *p = (const unsigned char *)in;
    if (len < 18 || p[0] != 0x1f || p[1] != 0x8b) return -1;
    /* One member, as every body of ours is; what follows it is ignored. Its trailer
     * declares its size: a body that lies about it is bad data (libdeflate checks). */
    size_t want = isize(p + len);
    if (want > max) return -2;
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    char *buf = d ? lf__malloc(want + 1) : NULL;
    size_t got = 0;
    int rc = buf && libdeflate_gzip_decompress(d, in, len, buf, want, &got) == LIBDEFLATE_SUCCESS &&
                     got == want
                 ? 0
                 : -1;
    if (d) libdeflate_free_decompressor(d);
    if (rc) {
        free(buf);
        return -1;
    }
    buf[got] = '\0';
    *out = buf;
    *out_len = got;
    return 0;
}
