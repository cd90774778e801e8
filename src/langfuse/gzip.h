/*
 * gzip.h - gzip (RFC 1952) of whole buffers, with libdeflate: the library's one
 * compression library (README, "Foundations": it compresses 2.3x faster than zlib at the
 * level we use, and reads a body 2x faster). The encoder keeps a compressor per exporter
 * (encode.c); these are for the rare re-encoding of a body (a 413 split, a 207 filter).
 */
#ifndef LF_GZIP_H
#define LF_GZIP_H

#include <stddef.h>

/* gzip of `in` at `level` (1..12) into a new buffer; 0, or -1 without memory. */
int lf__gzip(const char *in, size_t len, int level, char **out, size_t *out_len);

/* The content of a gzip body (its first member), NUL-terminated, into a new buffer: 0; -1
 * on bad data or without memory; -2 when it is larger than `max` (decided from the size
 * its trailer declares, before anything is allocated for it). */
int lf__gunzip(const char *in, size_t len, size_t max, char **out, size_t *out_len);

#endif
