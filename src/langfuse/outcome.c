/*
 * outcome.c - HTTP answers to outcomes, and the backoff rule; see outcome.h.
 */
#include "outcome.h"

#define BACKOFF_BASE_MS 500
#define BACKOFF_CAP_MS 30000
#define RETRY_AFTER_CAP_MS 60000

/* Statuses with a meaning of their own; the ranges below decide the rest. */
static const struct {
    int status;
    enum lf__outcome outcome;
} exact[] = {
    {401, LF__OUT_BLOCKED}, /* the keys */
    {403, LF__OUT_BLOCKED}, /* the keys, or a project that may not ingest */
    {404, LF__OUT_BLOCKED}, /* the host or its path: not a Langfuse server */
    {405, LF__OUT_BLOCKED}, /* a server without this endpoint */
    {408, LF__OUT_RETRY},   /* the server timed the request out */
    {413, LF__OUT_TOO_LARGE},
    {415, LF__OUT_BLOCKED}, /* a server that does not take this encoding */
    {429, LF__OUT_RETRY},
};

static const struct {
    int lo, hi;
    enum lf__outcome outcome;
} ranges[] = {
    {200, 299, LF__OUT_DELIVERED},
    {400, 499, LF__OUT_REJECTED}, /* the same bytes would be refused again */
    {500, 599, LF__OUT_RETRY},
};

enum lf__outcome lf__outcome_of(int status)
{
    for (unsigned i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (exact[i].status == status) return exact[i].outcome;
    for (unsigned i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (status >= ranges[i].lo && status <= ranges[i].hi) return ranges[i].outcome;
    return LF__OUT_RETRY; /* no answer, 1xx, 3xx, nonsense: a later try may fare better */
}

int64_t lf__backoff_ns(int attempts, long retry_after_ms, unsigned jitter)
{
    if (retry_after_ms >= 0)
        return (int64_t)(retry_after_ms < RETRY_AFTER_CAP_MS ? retry_after_ms
                                                             : RETRY_AFTER_CAP_MS) *
               1000000;
    int64_t ms = BACKOFF_BASE_MS;
    for (int i = 1; i < attempts && ms < BACKOFF_CAP_MS; i++)
        ms *= 2;
    if (ms > BACKOFF_CAP_MS) ms = BACKOFF_CAP_MS;
    if (jitter > 65535) jitter = 65535;
    int64_t half_ns = ms / 2 * 1000000;
    return half_ns + half_ns * (int64_t)jitter / 65535;
}
