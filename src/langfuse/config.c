/*
 * config.c - defaults, LANGFUSE_* environment variables, and validation.
 *
 * Parsing is strict: "10s", "1e99" or "" for a number is an error with a one-line reason
 * that names the variable, the value and what it takes. The client turns such an error
 * into one warning and a disabled client; it never stops the program.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "langfuse/langfuse.h"
#include "config.h"

#define DEFAULT_HOST "http://langfuse-web.langfuse.svc.cluster.local:3000"

void lf_config_init_size(struct lf_config *cfg, size_t struct_size)
{
    /* Defaults are written into a whole struct and copied out as far as the caller's goes,
     * so no field past its end is touched. */
    struct lf_config d;
    lf__config_defaults(&d);
    if (struct_size > sizeof(d))
        struct_size = sizeof(d); /* a newer program's struct: what follows is its own */
    memcpy(cfg, &d, struct_size);
    cfg->struct_size = struct_size;
}

void lf__config_defaults(struct lf_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->struct_size = sizeof(*cfg);
    cfg->enabled = 1;
    cfg->host = DEFAULT_HOST;
    cfg->transport = LF_TRANSPORT_OTLP;
    cfg->sample_rate = 1.0;
    cfg->service_name = "liblangfuse";
    cfg->flush_at = 256;
    cfg->flush_interval_ms = 1000;
    cfg->request_timeout_ms = 10000;
    cfg->flush_timeout_ms = 5000;
    cfg->max_retries = 6;
    cfg->max_queue_bytes = 8u << 20;
    cfg->max_request_bytes = 1u << 20;
    cfg->max_event_bytes = 768u << 10;
    cfg->gzip = 1;
    cfg->spool_max_bytes = 64u << 20;
    cfg->spool_replay = 1;
    cfg->orphan_message = "the program ended without ending this trace";
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Returns 1 true, 0 false, -1 unrecognised. */
static int parse_bool(const char *v)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) return 1;
        if (strcasecmp(v, no[i]) == 0) return 0;
    }
    return -1;
}

static int parse_double(const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    while (isspace((unsigned char)*end))
        end++;
    if (errno || end == v || *end || !isfinite(d)) return -1;
    *out = d;
    return 0;
}

static int fail(char *errbuf, size_t errlen, const char *name, const char *value, const char *want)
{
    if (errbuf && errlen) snprintf(errbuf, errlen, "%s=%s is invalid: %s", name, value, want);
    return LF_ERR_INVALID;
}

/* Seconds (fractions allowed) in (0, max_s] into milliseconds. */
static int env_seconds(const char *name, int *out_ms, double max_s, char *errbuf, size_t errlen)
{
    const char *v = env(name);
    double d;
    if (!v) return LF_OK;
    if (parse_double(v, &d) || d <= 0 || d > max_s) {
        char want[96];
        snprintf(want, sizeof(want), "expected a number of seconds above 0 and at most %g", max_s);
        return fail(errbuf, errlen, name, v, want);
    }
    *out_ms = (int)ceil(d * 1000.0);
    return LF_OK;
}

static int from_env(struct lf_config *cfg, char *errbuf, size_t errlen)
{
    const char *v;
    double d;
    int rc, b;

    if (errbuf && errlen) errbuf[0] = '\0';
    if ((v = env("LANGFUSE_ENABLED"))) {
        if ((b = parse_bool(v)) < 0)
            return fail(errbuf, errlen, "LANGFUSE_ENABLED", v, "expected true or false");
        cfg->enabled = b;
    }
    if ((v = env("LANGFUSE_PUBLIC_KEY"))) cfg->public_key = v;
    if ((v = env("LANGFUSE_SECRET_KEY"))) cfg->secret_key = v;
    if ((v = env("LANGFUSE_BASE_URL"))) cfg->host = v;
    if ((v = env("LANGFUSE_HOST"))) cfg->host = v;
    if ((v = env("LANGFUSE_TRANSPORT"))) {
        if (strcasecmp(v, "otlp") == 0)
            cfg->transport = LF_TRANSPORT_OTLP;
        else if (strcasecmp(v, "ingestion") == 0)
            cfg->transport = LF_TRANSPORT_INGESTION;
        else
            return fail(errbuf, errlen, "LANGFUSE_TRANSPORT", v, "expected otlp or ingestion");
    }
    if ((v = env("LANGFUSE_SAMPLE_RATE"))) {
        if (parse_double(v, &d) || d < 0 || d > 1)
            return fail(errbuf, errlen, "LANGFUSE_SAMPLE_RATE", v, "expected a number from 0 to 1");
        cfg->sample_rate = d;
    }
    if ((v = env("LANGFUSE_TRACING_ENVIRONMENT"))) cfg->environment = v;
    if ((v = env("LANGFUSE_RELEASE"))) cfg->release = v;
    if ((v = env("LANGFUSE_FLUSH_AT"))) {
        if (parse_double(v, &d) || d < 1 || d > 100000 || d != floor(d))
            return fail(errbuf, errlen, "LANGFUSE_FLUSH_AT", v,
                        "expected a whole number of events from 1 to 100000");
        cfg->flush_at = (int)d;
    }
    if ((rc =
             env_seconds("LANGFUSE_FLUSH_INTERVAL", &cfg->flush_interval_ms, 3600, errbuf, errlen)))
        return rc;
    if ((rc = env_seconds("LANGFUSE_TIMEOUT", &cfg->request_timeout_ms, 600, errbuf, errlen)))
        return rc;
    if ((rc = env_seconds("LANGFUSE_FLUSH_TIMEOUT", &cfg->flush_timeout_ms, 600, errbuf, errlen)))
        return rc;
    if ((v = env("LANGFUSE_MAX_QUEUE_BYTES"))) {
        if (parse_double(v, &d) || d < 65536 || d > 1e12 || d != floor(d))
            return fail(errbuf, errlen, "LANGFUSE_MAX_QUEUE_BYTES", v,
                        "expected a whole number of bytes, at least 65536");
        cfg->max_queue_bytes = (size_t)d;
    }
    if ((v = env("LANGFUSE_SPOOL_DIR"))) cfg->spool_dir = v;
    if ((v = env("LANGFUSE_MASK_MESSAGES"))) {
        if ((b = parse_bool(v)) < 0)
            return fail(errbuf, errlen, "LANGFUSE_MASK_MESSAGES", v, "expected true or false");
        cfg->mask_messages = b;
    }
    if ((v = env("LANGFUSE_DEBUG"))) {
        if ((b = parse_bool(v)) < 0)
            return fail(errbuf, errlen, "LANGFUSE_DEBUG", v, "expected true or false");
        cfg->debug = b;
    }
    return LF_OK;
}

/* Langfuse refuses events whose environment is not lowercase [a-z0-9-_], at most 40
 * characters, not starting with "langfuse": every event would be lost, so refuse it here. */
static int environment_ok(const char *env)
{
    size_t n = strlen(env);
    if (n == 0 || n > 40 || strncmp(env, "langfuse", 8) == 0) return 0;
    for (const char *p = env; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            return 0;
    return 1;
}

/* Checks an enabled configuration; 0 or LF_ERR_INVALID with a reason. */
/* The variables are read into a whole struct and copied back as far as the caller's goes. */
int lf_config_from_env(struct lf_config *cfg, char *errbuf, size_t errlen)
{
    struct lf_config full;
    if (lf__config_import(&full, cfg)) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "struct lf_config was not set up by lf_config_init()");
        return LF_ERR_INVALID;
    }
    int rc = from_env(&full, errbuf, errlen);
    size_t n = cfg->struct_size;
    memcpy(cfg, &full, n < sizeof(full) ? n : sizeof(full));
    cfg->struct_size = n;
    return rc;
}

int lf__config_import(struct lf_config *out, const struct lf_config *in)
{
    lf__config_defaults(out);
    size_t n = in->struct_size;
    if (n < offsetof(struct lf_config, enabled) + sizeof(in->enabled) || n > (1u << 16)) return -1;
    memcpy(out, in, n < sizeof(*out) ? n : sizeof(*out));
    out->struct_size = sizeof(*out);
    return 0;
}

int lf__config_check(const struct lf_config *cfg, char *errbuf, size_t errlen)
{
    const char *why = NULL;
    if (!cfg->public_key || !*cfg->public_key)
        why = "LANGFUSE_PUBLIC_KEY is not set; set it and LANGFUSE_SECRET_KEY to the project's "
              "API keys";
    else if (!cfg->secret_key || !*cfg->secret_key)
        why = "LANGFUSE_SECRET_KEY is not set; set it to the project's secret API key";
    else if (!cfg->host || (strncmp(cfg->host, "http://", 7) && strncmp(cfg->host, "https://", 8)))
        why = "LANGFUSE_HOST must be an http:// or https:// URL";
    else if (!(cfg->sample_rate >= 0 && cfg->sample_rate <= 1))
        why = "the sample rate must be between 0 and 1";
    else if (cfg->flush_at < 1 || cfg->flush_interval_ms < 1 || cfg->request_timeout_ms < 1 ||
             cfg->flush_timeout_ms < 1 || cfg->max_retries < 0)
        why = "flush_at, the intervals and the timeouts must be positive";
    else if (cfg->max_request_bytes < 4096 || cfg->max_event_bytes < 1024 ||
             cfg->max_event_bytes > cfg->max_request_bytes - 1024 || cfg->max_queue_bytes < 65536)
        why = "max_request_bytes (>= 4096), max_event_bytes (>= 1024, below the request cap) "
              "and max_queue_bytes (>= 65536) are out of range";
    else if (cfg->environment && !environment_ok(cfg->environment))
        why = "LANGFUSE_TRACING_ENVIRONMENT must be 1 to 40 of a-z, 0-9, '-' and '_', not "
              "starting with \"langfuse\"";
    if (!why) return LF_OK;
    snprintf(errbuf, errlen, "%s", why);
    return LF_ERR_INVALID;
}
