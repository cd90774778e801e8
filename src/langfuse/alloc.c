/*
 * alloc.c - allocation wrappers with failure injection for tests; see alloc.h.
 */
#include "alloc.h"

#include <jansson.h>
#include <libdeflate.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_int armed;
static atomic_long countdown;
static atomic_int sticky_failures;
static atomic_long failures;

static int should_fail(void)
{
    if (!atomic_load_explicit(&armed, memory_order_relaxed)) return 0;
    long n = atomic_fetch_sub(&countdown, 1);
    if (n > 0) return 0;
    if (!atomic_load(&sticky_failures)) atomic_store(&armed, 0);
    atomic_fetch_add(&failures, 1);
    return 1;
}

void lf__alloc_fail_after(long n, int sticky)
{
    /* Armed, jansson's and libdeflate's allocations go through the countdown as well, so
     * that the failure tests reach what the library does with them (a 413's split, a 207's
     * filter, gzip); disarmed, they are given back to malloc. Both setters are global: this
     * is a test hook, never called by the library itself. */
    json_set_alloc_funcs(n >= 0 ? lf__malloc : malloc, free);
    libdeflate_set_memory_allocator(n >= 0 ? lf__malloc : malloc, free);
    atomic_store(&armed, 0);
    atomic_store(&failures, 0);
    atomic_store(&countdown, n);
    atomic_store(&sticky_failures, sticky);
    atomic_store(&armed, n >= 0);
}

long lf__alloc_failures(void)
{
    return atomic_load(&failures);
}

void *lf__malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n ? n : 1);
}

void *lf__calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n ? n : 1, size ? size : 1);
}

void *lf__realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n ? n : 1);
}

char *lf__strndup(const char *s, size_t n)
{
    char *d = lf__malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *lf__strdup(const char *s)
{
    return lf__strndup(s, strlen(s));
}

void lf__free_secret(char *s)
{
    if (!s) return;
    explicit_bzero(s, strlen(s)); /* a plain memset before free() may be optimised away */
    free(s);
}
