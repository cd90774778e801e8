/*
 * redact.h - finds secrets in text so that they never leave the process.
 *
 * Two kinds of needles: literal values registered as secret (API keys, tokens), and token
 * shapes that are secret whoever wrote them (sk-ant-..., sk-lf-..., ghp_..., github_pat_...,
 * "Bearer <token>"). A match is replaced by "[REDACTED]" ("Bearer [REDACTED]" for bearer
 * tokens). Matching is driven by a 256-entry table of needle first bytes, so the JSON
 * escaper, which already looks at every byte, pays one table lookup per byte for it.
 *
 * A redactor is immutable once built; the client swaps in a new one when a secret is added.
 * It is reference counted: the client holds one reference to its current redactor, and a
 * thread that redacts takes one for as long as it uses it (lf__redactor_get), so a replaced
 * redactor is freed as soon as its last user is done, and secrets can be added without
 * limit.
 */
#ifndef LF_REDACT_H
#define LF_REDACT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define LF__REDACTED "[REDACTED]"
#define LF__SECRET_MIN 6 /* shorter registered values would redact ordinary words */

struct lf__redactor;

/* A redactor with the built-in token shapes and no literal secrets; NULL when out of
 * memory. */
struct lf__redactor *lf__redactor_new(void);
/* A copy of `r` with `secret` added (r is unchanged), with one reference; NULL when out of
 * memory. */
struct lf__redactor *lf__redactor_with(const struct lf__redactor *r, const char *secret,
                                       size_t len);
/* Another reference to `r`. Returns r. */
struct lf__redactor *lf__redactor_ref(struct lf__redactor *r);
/* Drops a reference; the last one frees the redactor, wiping its copies of the secrets.
 * Accepts NULL. */
void lf__redactor_free(struct lf__redactor *r);

#define LF__MAX_PAIRS 24

/* The distinct two-byte beginnings of the needles: their count, or -1 when there are more
 * than LF__MAX_PAIRS (then scan byte by byte). */
int lf__redact_pairs(const struct lf__redactor *r, const uint8_t **b0, const uint8_t **b1);

/* Nonzero if some needle starts with byte `c`. */
int lf__redact_candidate(const struct lf__redactor *r, unsigned char c);

/*
 * If a needle matches at s[i], returns the number of bytes it covers and sets *repl to the
 * replacement text; else 0.
 */
size_t lf__redact_at(const struct lf__redactor *r, const char *s, size_t n, size_t i,
                     const char **repl);

/* Appends `s` to `out` with every match replaced (no escaping). */
void lf__redact_append(const struct lf__redactor *r, struct lf__buf *out, const char *s, size_t n);

/* Redacts a NUL-terminated string in place into a malloc'd copy; NULL when out of memory. */
char *lf__redact_dup(const struct lf__redactor *r, const char *s);

#endif
