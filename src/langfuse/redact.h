/*
 * redact.h - finds secrets in text so that they never leave the process.
 *
 * Two kinds of needles: token shapes that are secret whoever wrote them (sk-ant-...,
 * sk-lf-..., ghp_..., github_pat_..., "Bearer <token>"), and literal values registered as
 * secret (API keys, tokens, the lines of a private key). A match is replaced by
 * "[REDACTED]" ("Bearer [REDACTED]" for bearer tokens); where occurrences overlap, one
 * replacement covers them all.
 *
 * Each kind has its own search, because they scale differently. The shapes are few and
 * fixed: the JSON escaper's SIMD scan stops where one may begin (lf__redact_probes).
 * Registered secrets are unbounded in number (a service-account key brings ~30) but long,
 * so they are found by sampling, at a cost per byte that does not grow with their number
 * (lf__redact_next; the design and its costs are in redact.c).
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
/* A copy of `r` with `secret` (`len` bytes, at least LF__SECRET_MIN: the client refuses
 * shorter values) added; r is unchanged. One reference; NULL when out of memory. */
struct lf__redactor *lf__redactor_with(const struct lf__redactor *r, const char *secret,
                                       size_t len);
/* Another reference to `r`. Returns r. */
struct lf__redactor *lf__redactor_ref(struct lf__redactor *r);
/* Drops a reference; the last one frees the redactor, wiping its copies of the secrets.
 * Accepts NULL. */
void lf__redactor_free(struct lf__redactor *r);

#define LF__PROBES_MAX 8
#define LF__PROBE_REACH 8 /* a probe at i reads s[i] .. s[i + LF__PROBE_REACH - 1] */

/*
 * What a scan stops at to find the token shapes: a position i where, for some k < n,
 * s[i] == b0[k], s[i + 1] == b1[k] and s[i + at[k]] == b2[k]. Every shape match starts at
 * such a position, and in prose they are rare, which the first two bytes alone are not
 * ("be", "gh", "sk"). Registered secrets are not among them: lf__redact_next() finds those.
 */
struct lf__redact_probes {
    int n;
    uint8_t b0[LF__PROBES_MAX], b1[LF__PROBES_MAX];
    uint8_t at[LF__PROBES_MAX]; /* 2 .. LF__PROBE_REACH - 1 */
    uint8_t b2[LF__PROBES_MAX];
};
/* r's probes, borrowed for as long as r; NULL when r is NULL. */
const struct lf__redact_probes *lf__redact_probes(const struct lf__redactor *r);

/* A table of 256 bytes, nonzero where some token shape starts with that byte (all zero
 * when r is NULL); borrowed for as long as r. */
const uint8_t *lf__redact_firsts(const struct lf__redactor *r);

/*
 * The first position at or after `i` where a registered secret occurs in s[0..n), or n if
 * there is none (or r is NULL). Exact: a secret does occur there, and none starts in
 * [i, result). A scan calls it again once it has moved past the result.
 */
size_t lf__redact_next(const struct lf__redactor *r, const char *s, size_t n, size_t i);

/*
 * If a needle (a shape or a registered secret) matches at s[i], returns the number of bytes
 * to replace and sets *repl to the replacement text; else 0. The bytes replaced are the
 * longest needle at i, extended over every needle that starts inside them and reaches
 * further (so that overlapping occurrences leave nothing in the clear). A caller that
 * skips positions must stop at every position lf__redact_next() returns and at every
 * position lf__redact_probes() describes, or it misses matches.
 */
size_t lf__redact_at(const struct lf__redactor *r, const char *s, size_t n, size_t i,
                     const char **repl);

/* Appends `s` to `out` with every match replaced (no escaping). */
void lf__redact_append(const struct lf__redactor *r, struct lf__buf *out, const char *s, size_t n);

/* Redacts a NUL-terminated string in place into a malloc'd copy; NULL when out of memory. */
char *lf__redact_dup(const struct lf__redactor *r, const char *s);

#endif
