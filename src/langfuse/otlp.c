/*
 * otlp.c - one observation as an OTLP/JSON span with Langfuse's attributes.
 *
 * The span carries Langfuse's own attributes (langfuse.observation.*, langfuse.trace.*,
 * session.id, user.id: every span carries its trace's, since Langfuse v4 reads them per
 * observation) and, alongside, the OpenTelemetry GenAI ones (gen_ai.*), so that a
 * plain OTLP backend understands the spans too. OTLP/JSON rules: ids are lowercase hex,
 * times are decimal strings of Unix nanoseconds, 64-bit integers are strings, enums are
 * numbers. Values that Langfuse reads as JSON (input, output, usage and cost details,
 * model parameters) travel as JSON text in string attributes.
 */
#include <string.h>

#include "encode.h"
#include "json.h"

static void key(struct lf__buf *out, int *first, const char *k, size_t klen, const char *kind)
{
    if (!*first)
        lf__buf_putc(out, ',');
    *first = 0;
    lf__buf_puts(out, "{\"key\":");
    lf__json_str(out, k, klen, NULL, 0);
    lf__buf_puts(out, ",\"value\":{\"");
    lf__buf_puts(out, kind);
    lf__buf_puts(out, "\":");
}

static void attr_str(struct lf__buf *out, int *first, const char *k, const char *v, size_t n,
                     const struct lf__redactor *red)
{
    key(out, first, k, strlen(k), "stringValue");
    lf__json_str(out, v, n, red, 0);
    lf__buf_puts(out, "}}");
}

static void attr_cstr(struct lf__buf *out, int *first, const char *k, const char *v,
                      const struct lf__redactor *red)
{
    attr_str(out, first, k, v, strlen(v), red);
}

static void attr_int(struct lf__buf *out, int *first, const char *k, int64_t v)
{
    key(out, first, k, strlen(k), "intValue");
    lf__buf_putc(out, '"');
    lf__buf_put_i64(out, v);
    lf__buf_puts(out, "\"}}");
}

/* A Langfuse JSON-valued attribute: the value's JSON text in a stringValue. */
static void attr_value(const struct lf__enc *e, struct lf__buf *out, int *first, const char *k,
                       size_t klen, uint32_t pos, const struct lf__field *f, const char *field,
                       const struct lf__limits *lim)
{
    key(out, first, k, klen, "stringValue");
    lf__enc_value(e, out, pos, f, field, lim, LF__VM_JSON_IN_STR);
    lf__buf_puts(out, "}}");
}

/* A metadata attribute keeps its type: strings, numbers and booleans as OTLP values, JSON
 * as JSON text. */
static void attr_meta(const struct lf__enc *e, struct lf__buf *out, int *first, const char *prefix,
                      uint32_t pos, const struct lf__field *f, const struct lf__limits *lim)
{
    char k[256];
    size_t plen = strlen(prefix);
    size_t klen = f->klen < sizeof(k) - plen - 1 ? f->klen : sizeof(k) - plen - 1;
    memcpy(k, prefix, plen);
    memcpy(k + plen, f->key, klen);
    klen += plen;
    k[klen] = '\0';
    if (f->kind == LF__V_INT) {
        attr_int(out, first, k, lf__field_i64(f));
        return;
    }
    if (f->kind == LF__V_DBL) {
        key(out, first, k, klen, "doubleValue");
        lf__json_double(out, lf__field_dbl(f));
        lf__buf_puts(out, "}}");
        return;
    }
    if (f->kind == LF__V_BOOL) {
        key(out, first, k, klen, "boolValue");
        lf__buf_puts(out, f->vlen && f->val[0] ? "true}}" : "false}}");
        return;
    }
    attr_value(e, out, first, k, klen, pos, f, "metadata", lim);
}

/* The GenAI operation of an observation type, or NULL. */
static const char *genai_operation(unsigned type)
{
    switch (type) {
    case LF_OBS_GENERATION: return "chat";
    case LF_OBS_TOOL: return "execute_tool";
    case LF_OBS_AGENT: return "invoke_agent";
    case LF_OBS_EMBEDDING: return "embeddings";
    default: return NULL;
    }
}

void lf__otlp_begin(const struct lf__enc *e, struct lf__buf *out)
{
    int first = 1;
    lf__buf_puts(out, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    attr_cstr(out, &first, "service.name", e->conf->service_name, NULL);
    attr_cstr(out, &first, "telemetry.sdk.name", "liblangfuse", NULL);
    attr_cstr(out, &first, "telemetry.sdk.language", "c", NULL);
    attr_cstr(out, &first, "telemetry.sdk.version", LF_VERSION_STRING, NULL);
    lf__buf_puts(out, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"liblangfuse\",\"version\":\"" LF_VERSION_STRING
                      "\"},\"spans\":[");
}

void lf__otlp_end(struct lf__buf *out)
{
    lf__buf_puts(out, "]}]}]}");
}

void lf__otlp_span(const struct lf__enc *e, struct lf__buf *out, const struct lf_obs *r,
                   const struct lf__limits *lim)
{
    char hex[33];
    struct lf__field f, name = {0}, status = {0}, model = {0};
    int has_name = 0, has_status = 0, has_model = 0, level = 0;
    int has_usage = 0, has_cost = 0, ntags = 0, has_input = 0, has_output = 0;
    int root = (r->flags & LF__REC_ROOT) != 0;
    int64_t usage_in = -1, usage_out = -1;
    uint32_t pos = 0;

    /* First pass: the singular fields the span's frame needs. */
    while (lf__rec_next(r, &pos, &f)) {
        switch (f.tag) {
        case LF__F_NAME: name = f; has_name = 1; break;
        case LF__F_STATUS: status = f; has_status = 1; break;
        case LF__F_MODEL: model = f; has_model = 1; break;
        case LF__F_LEVEL: level = f.vlen ? (unsigned char)f.val[0] : 0; break;
        case LF__F_USAGE:
            has_usage = 1;
            if (f.klen == 5 && !memcmp(f.key, "input", 5))
                usage_in = lf__field_i64(&f);
            else if (f.klen == 6 && !memcmp(f.key, "output", 6))
                usage_out = lf__field_i64(&f);
            break;
        case LF__F_COST: has_cost = 1; break;
        case LF__F_INPUT: has_input = 1; break;
        case LF__F_OUTPUT: has_output = 1; break;
        case LF__T_TAG: ntags++; break;
        default: break;
        }
    }

    lf__buf_puts(out, "{\"traceId\":\"");
    lf__hex(hex, r->trace_id, 16);
    lf__buf_puts(out, hex);
    lf__buf_puts(out, "\",\"spanId\":\"");
    lf__hex(hex, r->span_id, 8);
    lf__buf_puts(out, hex);
    if (!root) {
        lf__buf_puts(out, "\",\"parentSpanId\":\"");
        lf__hex(hex, r->parent_id, 8);
        lf__buf_puts(out, hex);
    }
    lf__buf_puts(out, "\",\"name\":");
    if (has_name)
        lf__json_str(out, name.val, name.vlen, e->red, 0);
    else
        lf__buf_puts(out, "\"\"");
    lf__buf_puts(out, ",\"kind\":1,\"startTimeUnixNano\":\"");
    lf__buf_put_i64(out, r->start_ns);
    lf__buf_puts(out, "\",\"endTimeUnixNano\":\"");
    lf__buf_put_i64(out, r->flags & LF__REC_ENDED ? r->end_ns : r->start_ns);
    lf__buf_puts(out, "\",\"attributes\":[");

    int first = 1;
    attr_cstr(out, &first, "langfuse.observation.type", lf__obs_type_name(r->type), NULL);
    if (e->conf->environment)
        attr_cstr(out, &first, "langfuse.environment", e->conf->environment, e->red);
    if (e->conf->release)
        attr_cstr(out, &first, "langfuse.release", e->conf->release, e->red);
    if (level)
        attr_cstr(out, &first, "langfuse.observation.level", lf__level_name(level), NULL);
    if (has_usage) {
        key(out, &first, "langfuse.observation.usage_details", 34, "stringValue");
        struct lf__buf m;
        lf__buf_init(&m, 0);
        lf__enc_map(&m, r, LF__F_USAGE);
        lf__json_str(out, m.data ? m.data : "{}", m.data ? m.len : 2, NULL, 0);
        lf__buf_free(&m);
        lf__buf_puts(out, "}}");
    }
    if (has_cost) {
        key(out, &first, "langfuse.observation.cost_details", 33, "stringValue");
        struct lf__buf m;
        lf__buf_init(&m, 0);
        lf__enc_map(&m, r, LF__F_COST);
        lf__json_str(out, m.data ? m.data : "{}", m.data ? m.len : 2, NULL, 0);
        lf__buf_free(&m);
        lf__buf_puts(out, "}}");
    }

    /* Second pass: every other field, the last value per tag (and key) only. */
    pos = 0;
    while (1) {
        uint32_t at = pos;
        if (!lf__rec_next(r, &pos, &f))
            break;
        if (f.tag != LF__T_TAG && !lf__enc_is_last(r, pos, &f))
            continue;
        switch (f.tag) {
        case LF__F_INPUT:
            attr_value(e, out, &first, "langfuse.observation.input", 26, at, &f, "input", lim);
            break;
        case LF__F_OUTPUT:
            attr_value(e, out, &first, "langfuse.observation.output", 27, at, &f, "output", lim);
            break;
        case LF__F_META:
            attr_meta(e, out, &first, "langfuse.observation.metadata.", at, &f, lim);
            break;
        case LF__F_STATUS:
            key(out, &first, "langfuse.observation.status_message", 35, "stringValue");
            lf__enc_value(e, out, at, &f, NULL, lim, LF__VM_JSON);
            lf__buf_puts(out, "}}");
            break;
        case LF__F_VERSION:
            attr_str(out, &first, "langfuse.version", f.val, f.vlen, e->red);
            break;
        case LF__F_MODEL:
            attr_str(out, &first, "langfuse.observation.model.name", f.val, f.vlen, e->red);
            break;
        case LF__F_MODEL_PARAMS:
            attr_value(e, out, &first, "langfuse.observation.model.parameters", 37, at, &f, NULL,
                       lim);
            break;
        case LF__F_COMPLETION_START: {
            char iso[64];
            lf__iso8601(iso, lf__field_i64(&f));
            attr_cstr(out, &first, "langfuse.observation.completion_start_time", iso, NULL);
            break;
        }
        case LF__F_PROMPT_NAME:
            attr_str(out, &first, "langfuse.observation.prompt.name", f.val, f.vlen, e->red);
            break;
        case LF__F_PROMPT_VERSION:
            attr_int(out, &first, "langfuse.observation.prompt.version", lf__field_i64(&f));
            break;
        case LF__T_NAME:
            attr_str(out, &first, "langfuse.trace.name", f.val, f.vlen, e->red);
            break;
        case LF__T_SESSION:
            attr_str(out, &first, "session.id", f.val, f.vlen, e->red);
            break;
        case LF__T_USER:
            attr_str(out, &first, "user.id", f.val, f.vlen, e->red);
            break;
        /* v4 reads a trace's input and output from its root observation, v3 from these:
         * a root without its own takes the trace's. */
        case LF__T_INPUT:
            attr_value(e, out, &first, "langfuse.trace.input", 20, at, &f, "input", lim);
            if (root && !has_input)
                attr_value(e, out, &first, "langfuse.observation.input", 26, at, &f, "input",
                           lim);
            break;
        case LF__T_OUTPUT:
            attr_value(e, out, &first, "langfuse.trace.output", 21, at, &f, "output", lim);
            if (root && !has_output)
                attr_value(e, out, &first, "langfuse.observation.output", 27, at, &f, "output",
                           lim);
            break;
        case LF__T_META:
            attr_meta(e, out, &first, "langfuse.trace.metadata.", at, &f, lim);
            break;
        case LF__T_PUBLIC:
            key(out, &first, "langfuse.trace.public", 21, "boolValue");
            lf__buf_puts(out, f.vlen && f.val[0] ? "true}}" : "false}}");
            break;
        case LF__T_VERSION:
            attr_str(out, &first, "langfuse.trace.version", f.val, f.vlen, e->red);
            break;
        case LF__T_RELEASE:
            attr_str(out, &first, "langfuse.release", f.val, f.vlen, e->red);
            break;
        case LF__T_ENV:
            attr_str(out, &first, "langfuse.environment", f.val, f.vlen, e->red);
            break;
        default:
            break;
        }
    }
    if (ntags) {
        /* All tags, in order, duplicates removed. */
        key(out, &first, "langfuse.trace.tags", 19, "arrayValue");
        lf__buf_puts(out, "{\"values\":[");
        lf__enc_tags(out, r, e->red, "{\"stringValue\":", "}");
        lf__buf_puts(out, "]}}}");
    }

    /* The GenAI view of the same facts, for backends that do not know Langfuse's names. */
    const char *op = genai_operation(r->type);
    if (op)
        attr_cstr(out, &first, "gen_ai.operation.name", op, NULL);
    if (has_model) {
        attr_str(out, &first, "gen_ai.request.model", model.val, model.vlen, e->red);
        attr_str(out, &first, "gen_ai.response.model", model.val, model.vlen, e->red);
    }
    if (usage_in >= 0)
        attr_int(out, &first, "gen_ai.usage.input_tokens", usage_in);
    if (usage_out >= 0)
        attr_int(out, &first, "gen_ai.usage.output_tokens", usage_out);
    if (r->type == LF_OBS_TOOL && has_name)
        attr_str(out, &first, "gen_ai.tool.name", name.val, name.vlen, e->red);
    if (r->type == LF_OBS_AGENT && has_name)
        attr_str(out, &first, "gen_ai.agent.name", name.val, name.vlen, e->red);
    lf__buf_putc(out, ']');

    if (level == LF_LEVEL_ERROR) {
        lf__buf_puts(out, ",\"status\":{\"code\":2");
        if (has_status) {
            /* The full text is in the status_message attribute, which truncation governs;
             * the OTLP status keeps a bounded copy. */
            size_t n = status.vlen;
            if (n > 4096) {
                n = 4096;
                while (n && ((unsigned char)status.val[n] & 0xC0) == 0x80)
                    n--;
            }
            lf__buf_puts(out, ",\"message\":");
            lf__json_str(out, status.val, n, e->red, 0);
        }
        lf__buf_putc(out, '}');
    }
    lf__buf_putc(out, '}');
}
