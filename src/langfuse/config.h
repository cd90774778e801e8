/*
 * config.h - the library's own view of struct lf_config: defaults, validation, and reading
 * a caller's struct of whatever size it was compiled with.
 */
#ifndef LF_CONFIG_H
#define LF_CONFIG_H

#include <stddef.h>

#include "langfuse/langfuse.h"

/* A whole struct with every default (struct_size = this library's). */
void lf__config_defaults(struct lf_config *cfg);
/* The caller's struct as this library's: the fields it has, defaults for the rest. -1 when
 * it was not set up by lf_config_init() (struct_size out of range). */
int lf__config_import(struct lf_config *out, const struct lf_config *in);
/* 0, or LF_ERR_INVALID with a one-line reason. */
int lf__config_check(const struct lf_config *cfg, char *errbuf, size_t errlen);

#endif
