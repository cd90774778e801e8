/* clock.h - the monotonic clock in milliseconds, which every deadline in the runner uses. */
#ifndef CC_CLOCK_H
#define CC_CLOCK_H

#include <time.h>

static inline long long cc_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
