/*
 * YAML to JSON, for the two YAML texts the operator reads: a kubeconfig and the runner Job
 * template (deploy/k8s/runner-job.template.yaml, compiled in). libyaml parses; this file
 * turns its events into a jansson tree with the YAML 1.2 core schema's typing of plain
 * scalars (null, ~, true, false, integers, floats; anything else a string), and quoted or
 * block scalars always strings. Anchors and aliases are refused: neither text needs them,
 * and an alias bomb costs nothing then. One document only. What JSON cannot hold is refused
 * too, never approximated: tags other than the standard ones (!!str, !!int, ...), .inf and
 * .nan, integers beyond 64 bits; and so are duplicate keys and keys that are not scalars.
 */
#ifndef CO_YAML_H
#define CO_YAML_H

#include <jansson.h>
#include <stddef.h>

/* Decodes len bytes of YAML text into a new JSON value, caller frees (json_decref). NULL on
 * error, with one line in err naming the line and column and the cause. */
json_t *co_yaml_load(const char *text, size_t len, char *err, size_t errlen);

/* Same, from a file; err names the file. */
json_t *co_yaml_load_file(const char *path, char *err, size_t errlen);

#endif
