/*
 * trace_tree.h - Langfuse traces printed as trees, from the public API (a v3 server's trace
 * view, or a v4 server's observations) or from request bodies on disk (OTLP or ingestion,
 * plain or gzip: the spool's files). Every source is turned into one shape, the v3 trace
 * view, and one printer prints it.
 */
#ifndef TRACE_TREE_H
#define TRACE_TREE_H

#include <jansson.h>
#include <stdio.h>

/* Prints one trace in the shape of GET /api/public/traces/{id} (TraceWithFullDetails). */
void tt_print_api_trace(json_t *trace, FILE *out);

/* Langfuse v4 has no trace rows: a trace is the observations that share a traceId. Groups
 * items of GET /api/public/v2/observations (borrowed; the result holds references to them)
 * into trace views of the shape above: name, session, user, tags (and input and output, when
 * the io group was asked for) from the root observation (the one without a parent, as the v4
 * UI shows it), totalCost the sum of the observations' totalCost. Newest trace first, as the v3
 * trace list answers. Returns a new array (caller decrefs), or NULL when out of memory. */
json_t *tt_traces_from_observations(json_t *observations);

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
