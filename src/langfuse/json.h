/*
 * json.h - the JSON writing primitives of the encoders.
 *
 * The encoders stream JSON text straight into an lf__buf instead of building jansson trees:
 * an OTLP batch of 10,000 spans would otherwise cost ~30 allocations per span on the
 * exporter thread (measured in bench/). Strings go through one pass that escapes, repairs
 * invalid UTF-8 (each bad byte becomes U+FFFD) and redacts secrets, so whatever bytes the
 * caller recorded, the output is valid JSON with no secret in it.
 */
#ifndef LF_JSON_H
#define LF_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "redact.h"

/*
 * Appends `s` (`n` bytes) as a quoted JSON string. With `twice`, the result is itself
 * escaped once more, as needed to carry JSON text inside a JSON string: "a" becomes
 * "\"a\"". `red` may be NULL.
 */
void lf__json_str(struct lf__buf *b, const char *s, size_t n, const struct lf__redactor *red,
                  int twice);
/* As lf__json_str() without the surrounding quotes. */
void lf__json_str_body(struct lf__buf *b, const char *s, size_t n, const struct lf__redactor *red,
                       int twice);
/* The shortest decimal that reads back as `d`; non-finite values are written as 0. */
void lf__json_double(struct lf__buf *b, double d);
/* Writes `ns` (Unix epoch nanoseconds) as RFC 3339 UTC with microseconds into out[64]. */
void lf__iso8601(char out[64], int64_t ns);
/* Lowercase hex of `n` bytes into out[2n+1]. */
void lf__hex(char *out, const uint8_t *bytes, size_t n);
/* Parses 2n lowercase or uppercase hex digits; 0 on success. */
int lf__unhex(uint8_t *bytes, size_t n, const char *hex);

/* The longest prefix of s (at least limit + 1 bytes long) of at most `limit` bytes that
 * does not split a UTF-8 sequence. */
size_t lf__utf8_cut(const char *s, size_t limit);

#endif
