/*
 * body.h - surgery on encoded request bodies: split, shrink, filter.
 *
 * These run only when the server pushes back (413, a 207 with failed events) or on a
 * spool file, long after the records were freed, so they work on the JSON itself with
 * jansson. That path is rare; it need not be fast, only right.
 */
#ifndef LF_BODY_H
#define LF_BODY_H

#include <stddef.h>
#include <stdint.h>

/* The body's items: spans (OTLP) or events (ingestion). -1 if it is not a body. */
long lf__body_count(int endpoint, const char *json, size_t len);

/* Splits a body of n >= 2 items into two bodies of about n/2 each. Caller frees *a, *b.
 * 0, or -1 (not splittable or out of memory). */
int lf__body_split(int endpoint, const char *json, size_t len, char **a, size_t *alen, char **b,
                   size_t *blen);

/* Halves the largest string in the body (with a truncation marker), for a single item that
 * a server refuses as too large. 0, or -1 when nothing is left to cut. */
int lf__body_shrink(const char *json, size_t len, char **out, size_t *out_len);

/* An ingestion body with only the events whose ids are in `ids` (n of them). Caller frees.
 * 0, or -1. */
int lf__body_filter_events(const char *json, size_t len, const char *const *ids, size_t n,
                           char **out, size_t *out_len);

#endif
