/*
 * ingest.c - one observation as legacy /api/public/ingestion events.
 *
 * For Langfuse v3 (and older) servers only: a v4 server refuses every observation event
 * here (the exporter reports that once and spools them). An observation becomes one
 * `<type>-create` event, preceded by a `trace-create` event with the trace attributes it
 * carries (every observation carries them, see trace.h), since in this format observations
 * do not create the trace; the server merges the trace events by trace id.
 * Agent, tool and the other newer types have events of their own (`agent-create`,
 * `tool-create`, ...): the server accepts them although the published OpenAPI document
 * predates them, while the legacy `observation-create` takes only span, generation and
 * event.
 *
 * Event ids are derived from the observation id (each observation is exported once), so a
 * retried or replayed request carries the same ids and the server's deduplication holds.
 */
#include <stdio.h>
#include <string.h>

#include "encode.h"
#include "json.h"

static void event_id(char out[37], const struct lf_obs *r, int kind)
{
    uint8_t b[16];
    memcpy(b, r->span_id, 8);
    b[8] = (uint8_t)kind;
    memcpy(b + 9, r->trace_id, 7);
    char hex[33];
    lf__hex(hex, b, 16);
    /* 8-4-4-4-12 */
    memcpy(out, hex, 8);
    out[8] = '-';
    memcpy(out + 9, hex + 8, 4);
    out[13] = '-';
    memcpy(out + 14, hex + 12, 4);
    out[18] = '-';
    memcpy(out + 19, hex + 16, 4);
    out[23] = '-';
    memcpy(out + 24, hex + 20, 12);
    out[36] = '\0';
}

static void field_name(struct lf__buf *out, int *first, const char *name)
{
    if (!*first) lf__buf_putc(out, ',');
    *first = 0;
    lf__buf_putc(out, '"');
    lf__buf_puts(out, name);
    lf__buf_puts(out, "\":");
}

static void put_time(struct lf__buf *out, int *first, const char *name, int64_t ns)
{
    char iso[64];
    lf__iso8601(iso, ns);
    field_name(out, first, name);
    lf__buf_putc(out, '"');
    lf__buf_puts(out, iso);
    lf__buf_putc(out, '"');
}

static void put_str(const struct lf__enc *e, struct lf__buf *out, int *first, const char *name,
                    const struct lf__field *f)
{
    field_name(out, first, name);
    lf__json_str(out, f->val, f->vlen, e->red, 0);
}

/* A metadata object from every last-per-key entry of `tag`. */
static void put_meta(const struct lf__enc *e, struct lf__buf *out, int *first,
                     const struct lf_obs *r, uint8_t tag, const struct lf__limits *lim)
{
    struct lf__field f;
    uint32_t pos = 0;
    int any = 0;
    while (1) {
        uint32_t at = pos;
        if (!lf__rec_next(r, &pos, &f)) break;
        if (f.tag != tag || !lf__enc_is_last(r, pos, &f)) continue;
        if (!any) field_name(out, first, "metadata");
        lf__buf_putc(out, any ? ',' : '{');
        any = 1;
        lf__json_str(out, f.key, f.klen, e->red, 0);
        lf__buf_putc(out, ':');
        lf__enc_value(e, out, at, &f, "metadata", lim, LF__VM_JSON);
    }
    if (any) lf__buf_putc(out, '}');
}

static void event_head(struct lf__buf *out, const char *id, const char *type, int64_t now_ns)
{
    char iso[64];
    lf__iso8601(iso, now_ns);
    lf__buf_puts(out, "{\"id\":\"");
    lf__buf_puts(out, id);
    lf__buf_puts(out, "\",\"timestamp\":\"");
    lf__buf_puts(out, iso);
    lf__buf_puts(out, "\",\"type\":\"");
    lf__buf_puts(out, type);
    lf__buf_puts(out, "\",\"body\":{");
}

static void trace_event(const struct lf__enc *e, struct lf__buf *out, const struct lf_obs *r,
                        const struct lf__limits *lim)
{
    char id[37], hex[33];
    struct lf__field f;
    uint32_t pos = 0;
    int first = 1, ntags = 0;

    event_id(id, r, 't');
    event_head(out, id, "trace-create", e->now_ns);
    lf__hex(hex, r->trace_id, 16);
    field_name(out, &first, "id");
    lf__buf_printf(out, "\"%s\"", hex);
    if (r->flags & LF__REC_ROOT) put_time(out, &first, "timestamp", r->start_ns);
    if (e->conf->environment) {
        field_name(out, &first, "environment");
        lf__json_str(out, e->conf->environment, strlen(e->conf->environment), e->red, 0);
    }
    if (e->conf->release && !lf__rec_last(r, LF__T_RELEASE, &f)) {
        field_name(out, &first, "release");
        lf__json_str(out, e->conf->release, strlen(e->conf->release), e->red, 0);
    }
    while (1) {
        uint32_t at = pos;
        if (!lf__rec_next(r, &pos, &f)) break;
        if (f.tag == LF__T_TAG) {
            ntags++;
            continue;
        }
        if (!lf__enc_is_last(r, pos, &f)) continue;
        switch (f.tag) {
        case LF__T_NAME:
            put_str(e, out, &first, "name", &f);
            break;
        case LF__T_SESSION:
            put_str(e, out, &first, "sessionId", &f);
            break;
        case LF__T_USER:
            put_str(e, out, &first, "userId", &f);
            break;
        case LF__T_VERSION:
            put_str(e, out, &first, "version", &f);
            break;
        case LF__T_RELEASE:
            put_str(e, out, &first, "release", &f);
            break;
        case LF__T_ENV:
            if (!e->conf->environment) put_str(e, out, &first, "environment", &f);
            break;
        case LF__T_PUBLIC:
            field_name(out, &first, "public");
            lf__buf_puts(out, f.vlen && f.val[0] ? "true" : "false");
            break;
        case LF__T_INPUT:
            field_name(out, &first, "input");
            lf__enc_value(e, out, at, &f, "input", lim, LF__VM_JSON);
            break;
        case LF__T_OUTPUT:
            field_name(out, &first, "output");
            lf__enc_value(e, out, at, &f, "output", lim, LF__VM_JSON);
            break;
        default:
            break;
        }
    }
    put_meta(e, out, &first, r, LF__T_META, lim);
    if (ntags) {
        field_name(out, &first, "tags");
        lf__buf_putc(out, '[');
        lf__enc_tags(out, r, e->red, "", "");
        lf__buf_putc(out, ']');
    }
    lf__buf_puts(out, "}}");
}

/* One observation's -create event (94 lines): the legacy API's mapping written out, field
 * by field, as its schema lists them. It is for v3 servers only and frozen there; the
 * mapping that evolves is otlp.c's table. */
static void observation_event(const struct lf__enc *e, struct lf__buf *out, const struct lf_obs *r,
                              const struct lf__limits *lim)
{
    char id[37], hex[33];
    struct lf__field f;
    uint32_t pos = 0;
    int first = 1;
    /* Every type but span and event is generation-like: it keeps model, usage and cost. */
    int gen_fields = r->type != LF_OBS_SPAN && r->type != LF_OBS_EVENT;
    char type[32];
    snprintf(type, sizeof(type), "%s-create", lf__obs_type_name(r->type));

    event_id(id, r, 'o');
    event_head(out, id, type, e->now_ns);
    lf__hex(hex, r->span_id, 8);
    field_name(out, &first, "id");
    lf__buf_printf(out, "\"%s\"", hex);
    lf__hex(hex, r->trace_id, 16);
    field_name(out, &first, "traceId");
    lf__buf_printf(out, "\"%s\"", hex);
    if (!(r->flags & LF__REC_ROOT)) {
        lf__hex(hex, r->parent_id, 8);
        field_name(out, &first, "parentObservationId");
        lf__buf_printf(out, "\"%s\"", hex);
    }
    put_time(out, &first, "startTime", r->start_ns);
    if ((r->flags & LF__REC_ENDED) && r->type != LF_OBS_EVENT)
        put_time(out, &first, "endTime", r->end_ns);
    if (e->conf->environment) {
        field_name(out, &first, "environment");
        lf__json_str(out, e->conf->environment, strlen(e->conf->environment), e->red, 0);
    }
    while (1) {
        uint32_t at = pos;
        if (!lf__rec_next(r, &pos, &f)) break;
        if (f.tag >= LF__T_NAME || !lf__enc_is_last(r, pos, &f)) continue;
        switch (f.tag) {
        case LF__F_NAME:
            put_str(e, out, &first, "name", &f);
            break;
        case LF__F_INPUT:
            field_name(out, &first, "input");
            lf__enc_value(e, out, at, &f, "input", lim, LF__VM_JSON);
            break;
        case LF__F_OUTPUT:
            field_name(out, &first, "output");
            lf__enc_value(e, out, at, &f, "output", lim, LF__VM_JSON);
            break;
        case LF__F_LEVEL:
            field_name(out, &first, "level");
            lf__buf_printf(out, "\"%s\"", lf__level_name(f.vlen ? (unsigned char)f.val[0] : 0));
            break;
        case LF__F_STATUS:
            field_name(out, &first, "statusMessage");
            lf__enc_value(e, out, at, &f, NULL, lim, LF__VM_JSON);
            break;
        case LF__F_VERSION:
            put_str(e, out, &first, "version", &f);
            break;
        case LF__F_MODEL:
            if (gen_fields) put_str(e, out, &first, "model", &f);
            break;
        case LF__F_MODEL_PARAMS:
            if (gen_fields) {
                field_name(out, &first, "modelParameters");
                lf__enc_value(e, out, at, &f, NULL, lim, LF__VM_JSON);
            }
            break;
        case LF__F_COMPLETION_START:
            if (gen_fields) put_time(out, &first, "completionStartTime", lf__field_i64(&f));
            break;
        case LF__F_PROMPT_NAME:
            if (gen_fields) put_str(e, out, &first, "promptName", &f);
            break;
        case LF__F_PROMPT_VERSION:
            if (gen_fields) {
                field_name(out, &first, "promptVersion");
                lf__buf_put_i64(out, lf__field_i64(&f));
            }
            break;
        default:
            break;
        }
    }
    put_meta(e, out, &first, r, LF__F_META, lim);
    if (gen_fields && lf__rec_last(r, LF__F_USAGE, &f)) {
        field_name(out, &first, "usageDetails");
        lf__enc_map(out, r, LF__F_USAGE);
    }
    if (gen_fields && lf__rec_last(r, LF__F_COST, &f)) {
        field_name(out, &first, "costDetails");
        lf__enc_map(out, r, LF__F_COST);
    }
    lf__buf_puts(out, "}}");
}

void lf__ingest_begin(struct lf__buf *out)
{
    lf__buf_puts(out, "{\"batch\":[");
}

void lf__ingest_end(struct lf__buf *out)
{
    lf__buf_puts(out,
                 "],\"metadata\":{\"sdk_name\":\"liblangfuse\",\"sdk_version\":\"" LF_VERSION_STRING
                 "\",\"sdk_integration\":\"c\"}}");
}

void lf__ingest_events(const struct lf__enc *e, struct lf__buf *out, const struct lf_obs *r,
                       const struct lf__limits *lim)
{
    if (lf__rec_has_trace_fields(r)) {
        trace_event(e, out, r, lim);
        lf__buf_putc(out, ',');
    }
    observation_event(e, out, r, lim);
}
