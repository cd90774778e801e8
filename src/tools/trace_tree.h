/*
 * trace_tree.h - Langfuse traces printed as trees, from the public API's trace view or
 * from request bodies on disk (OTLP or ingestion, plain or gzip: the spool's files).
 */
#ifndef TRACE_TREE_H
#define TRACE_TREE_H

#include <jansson.h>
#include <stdio.h>

/* Prints one trace in the shape of GET /api/public/traces/{id} (TraceWithFullDetails). */
void tt_print_api_trace(json_t *trace, FILE *out);

/* Traces assembled from files; observations exported several times are merged the way
 * Langfuse merges them (later non-empty fields win). */
struct tt_forest;
struct tt_forest *tt_forest_new(void);
void tt_forest_free(struct tt_forest *f);
/* Reads one body file; 0, or -1 with a one-line reason in err. */
int tt_forest_add_file(struct tt_forest *f, const char *path, char *err, size_t errlen);
/* Prints every trace of the forest, oldest first. */
void tt_forest_print(struct tt_forest *f, FILE *out);

#endif
