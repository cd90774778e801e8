/*
 * ids.c - trace and span ids, the clock, and per-trace sampling.
 *
 * Ids come from a per-thread xoshiro256** generator seeded once per thread (and again in a
 * forked child) from getrandom(): one system call per thread, then a few nanoseconds per
 * id. Ids must be unique, not secret, so a fast PRNG with a random seed is the right tool.
 *
 * Sampling follows OpenTelemetry's TraceIdRatioBased: the low 64 bits of the trace id are
 * compared with rate * 2^64, so every process that sees one trace id decides alike.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static atomic_int fork_generation; /* bumped in the child after fork() */

void lf__ids_after_fork(void)
{
    atomic_fetch_add(&fork_generation, 1);
}

static _Thread_local struct {
    uint64_t s[4];
    int gen;
    int seeded;
} rng;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t next_u64(void)
{
    int gen = atomic_load_explicit(&fork_generation, memory_order_relaxed);
    if (!rng.seeded || rng.gen != gen) {
        uint64_t seed[4] = {0};
        if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            seed[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
            seed[1] = (uint64_t)(uintptr_t)&rng ^ (uint64_t)ts.tv_sec;
            seed[2] = 0x9E3779B97F4A7C15u;
            seed[3] = 0xD1B54A32D192ED03u;
        }
        memcpy(rng.s, seed, sizeof(seed));
        rng.gen = gen;
        rng.seeded = 1;
    }
    uint64_t *s = rng.s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void lf__random_bytes(uint8_t *out, size_t n)
{
    while (n) {
        uint64_t v = next_u64();
        size_t k = n < 8 ? n : 8;
        memcpy(out, &v, k);
        out += k;
        n -= k;
    }
}

int64_t lf_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void lf__cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

int lf__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ns)
{
    struct timespec ts = {(time_t)(deadline_ns / 1000000000), (long)(deadline_ns % 1000000000)};
    return pthread_cond_timedwait(cv, mu, &ts);
}

int64_t lf__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t lf__sample_bound(double rate, int *all)
{
    *all = !(rate < 1.0);
    if (!(rate > 0.0)) return 0;
    if (*all) return UINT64_MAX;
    return (uint64_t)ldexp(rate, 64);
}

int lf__sampled(const struct lf__conf *conf, const uint8_t trace_id[16])
{
    if (conf->sample_all) return 1;
    uint64_t low = 0;
    for (int i = 8; i < 16; i++)
        low = low << 8 | trace_id[i];
    return low < conf->sample_bound;
}
