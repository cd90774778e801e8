/*
 * outcome.h - what an HTTP answer means for a batch, and when to try again: pure functions
 * of the status and the attempt, so that each rule is tested case by case
 * (tests/unit/test_exporter_outcome.c). exporter.c acts on them.
 */
#ifndef LF_OUTCOME_H
#define LF_OUTCOME_H

#include <stdint.h>

enum lf__outcome {
    LF__OUT_DELIVERED, /* 2xx (a 207's events are then read one by one: rebatch.c) */
    LF__OUT_TOO_LARGE, /* 413: split the body, or cut its largest value */
    LF__OUT_REJECTED,  /* 400 and the other 4xx this data would get again: counted, dropped */
    LF__OUT_BLOCKED,   /* 401, 403, 404, 405, 415: this configuration is refused: spool all */
    LF__OUT_RETRY,     /* 408, 429, 5xx, no answer (0), anything unexpected: back off */
};

/* The meaning of HTTP status `status` (0: no answer at all). */
enum lf__outcome lf__outcome_of(int status);

/*
 * How long to wait before attempt `attempts` + 1, in ns: the server's Retry-After when it
 * gave one (retry_after_ms >= 0, capped at a minute), else exponential backoff from half a
 * second, doubling per attempt up to 30 s, with "equal jitter": half of it fixed, half
 * scaled by `jitter` (0..65535, random in use), so that the retries of many clients spread
 * out.
 */
int64_t lf__backoff_ns(int attempts, long retry_after_ms, unsigned jitter);

#endif
