/*
 * otlp.c - one observation as an OTLP/JSON span with Langfuse's attributes.
 *
 * The span carries Langfuse's own attributes (langfuse.observation.*, langfuse.trace.*,
 * session.id, user.id: every span carries its trace's, since Langfuse v4 reads them per
 * observation) and, alongside, the OpenTelemetry GenAI ones (gen_ai.*), so that a
 * plain OTLP backend understands the spans too. Which record field becomes which attribute,
 * and how its value is written, is said once, in the table `attrs` below; the code walks
 * the record and looks each field up there. Only the span's frame (ids, name, times) and
 * its OTLP status are not attributes, and are code.
 *
 * OTLP/JSON rules: ids are lowercase hex, times are decimal strings of Unix nanoseconds,
 * 64-bit integers are strings, enums are numbers. Values that Langfuse reads as JSON
 * (input, output, metadata, usage and cost details, model parameters) travel as JSON text
 * in string attributes. tests/unit/test_encode.c pins the exact bytes of spans that carry
 * every field, so a change to the mapping shows there.
 */
#include <assert.h>
#include <string.h>

#include "encode.h"
#include "json.h"

/* The OTLP status keeps at most this many bytes of the status message. */
#define STATUS_MESSAGE_MAX 4096

static void key(struct lf__buf *out, int *first, const char *k, size_t klen, const char *kind)
{
    if (!*first) lf__buf_putc(out, ',');
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

static void attr_bool(struct lf__buf *out, int *first, const char *k, size_t klen,
                      const struct lf__field *f)
{
    key(out, first, k, klen, "boolValue");
    lf__buf_puts(out, f->vlen && f->val[0] ? "true}}" : "false}}");
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

/* A metadata attribute, `prefix` + its key (the whole cut to 255 bytes), keeps its type:
 * integers, doubles and booleans as OTLP values of their own, strings and JSON as JSON text
 * (a string quoted, like every value Langfuse reads as JSON). */
static void attr_meta(const struct lf__enc *e, struct lf__buf *out, int *first, const char *prefix,
                      uint32_t pos, const struct lf__field *f, const char *field,
                      const struct lf__limits *lim)
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
        attr_bool(out, first, k, klen, f);
        return;
    }
    attr_value(e, out, first, k, klen, pos, f, field, lim);
}

/* A usage (integers) or cost (doubles) map as JSON text in a stringValue. */
static void attr_map(struct lf__buf *out, int *first, const char *k, const struct lf_obs *r,
                     uint8_t tag)
{
    struct lf__buf m;
    key(out, first, k, strlen(k), "stringValue");
    lf__buf_init(&m, 0);
    lf__enc_map(&m, r, tag);
    lf__json_str(out, m.data ? m.data : "{}", m.data ? m.len : 2, NULL, 0);
    lf__buf_free(&m);
    lf__buf_puts(out, "}}");
}

/* The GenAI operation of an observation type, or NULL. */
static const char *genai_operation(unsigned type)
{
    switch (type) {
    case LF_OBS_GENERATION:
        return "chat";
    case LF_OBS_TOOL:
        return "execute_tool";
    case LF_OBS_AGENT:
        return "invoke_agent";
    case LF_OBS_EMBEDDING:
        return "embeddings";
    default:
        return NULL;
    }
}

/* ---- the mapping ------------------------------------------------------------------------- */

/* Where a row's value comes from, when it is not a record field (enum lf__tag). */
enum {
    FROM_TYPE = LF__TAG_MAX, /* the observation's type */
    FROM_CONF_ENV,           /* lf_config.environment (LANGFUSE_TRACING_ENVIRONMENT) */
    FROM_CONF_RELEASE,       /* lf_config.release (LANGFUSE_RELEASE) */
};

/* Which entries of its field a row writes. */
enum { ONCE, EACH };

/* How a row's value is written. */
enum attr_as {
    AS_STR,       /* stringValue: the text, redacted; never cut (names, ids, versions) */
    AS_LONG_STR,  /* stringValue: the text, redacted; truncation may cut it, as it cuts input */
    AS_JSON,      /* stringValue: the value as JSON text; masked, truncated, redacted */
    AS_META,      /* the key is a prefix: one attribute per metadata key, see attr_meta() */
    AS_INT,       /* intValue */
    AS_COUNT,     /* intValue, none when negative: a token count */
    AS_BOOL,      /* boolValue */
    AS_TIME,      /* stringValue: RFC 3339 UTC ("Z"), microseconds, of Unix nanoseconds */
    AS_LEVEL,     /* stringValue: the level's name (lf__level_name); none for DEFAULT (0) */
    AS_MAP,       /* stringValue: JSON object of every key's last number (usage, cost) */
    AS_TAGS,      /* arrayValue of stringValues: every tag, in order, duplicates removed */
    AS_TYPE,      /* stringValue: the type's Langfuse name ("span", "generation", ...) */
    AS_OPERATION, /* stringValue: the type's GenAI operation; none for most types */
};

/* One row of the mapping: one attribute. */
struct attr {
    uint8_t from;        /* a record field (enum lf__tag) or FROM_* */
    uint8_t each;        /* ONCE: the last entry (for AS_MAP, AS_TAGS: all); EACH: see below */
    uint8_t as;          /* enum attr_as */
    const char *key;     /* the attribute's key; for AS_META, the prefix of the metadata key */
    const char *mask;    /* the value's name for the masking callback; NULL: never masked */
    const char *rkey;    /* ONCE rows of a keyed field: the entry with this key */
    uint8_t root_unless; /* nonzero: only on the root, and only if it has no field of this tag */
    uint16_t types;      /* nonzero: only for these observation types (1 << LF_OBS_*) */
};

/*
 * The mapping, the one place to read it: every attribute a span can carry, in the order
 * written. A run of EACH rows is written in one walk of the record: every entry that is the
 * last of its tag (and key), in the record's order, under each of the run's rows for its
 * tag. ONCE rows are written where they stand, from the last entry of their field (with
 * `rkey`, the last with that key; AS_MAP and AS_TAGS: all entries), if there is one. Record
 * fields are an observation's own (LF__F_*) or its trace's (LF__T_*, which every
 * observation of the trace carries: trace.h).
 *
 * What Langfuse does with them (read in langfuse/langfuse: tests/support/langfuse_receiver.py
 * lists the files, and plays both server lines in the integration tests):
 * - v4 stores each span as one row. Trace attributes (session.id, user.id,
 *   langfuse.trace.name, .tags, .metadata.*, langfuse.release, langfuse.version,
 *   langfuse.environment) belong to the row that carried them, which is why every span
 *   carries its trace's: a row without session.id is not found by its session. The trace
 *   view folds the rows: its input, output and metadata are the root row's, and
 *   langfuse.trace.input and .output are read by nothing.
 * - v3 merges spans into traces and observations and reads a trace's input and output from
 *   langfuse.trace.input and .output, else from the root's langfuse.observation.input and
 *   .output. So both are sent, and a root without its own input or output takes the trace's
 *   (the root_unless rows). A non-root span with trace attributes updates the trace, and
 *   resets its `public` to false and its version and release unless it repeats them.
 * - Usage and cost details are JSON objects in strings. When they are there, v3 ignores
 *   gen_ai.usage.* (so the two never add up), and v4 takes them as given (a missing total
 *   is summed; usage that comes without cost is priced from its model table).
 * - v3 takes the type from langfuse.observation.type before gen_ai.operation.name; strips
 *   model, usage and cost from span and event types and from invoke_agent operations; reads
 *   the model from langfuse.observation.model.name, else gen_ai.response.model, else
 *   gen_ai.request.model; the level from langfuse.observation.level, else ERROR from status
 *   code 2; the status message from langfuse.observation.status_message, else the OTLP
 *   status's. On generation-like types it drops an observation whose completion start time
 *   is not ISO 8601 with an offset.
 * - Metadata goes one attribute per key (langfuse.observation.metadata.<key>), each value
 *   typed: v3 reads them so; v4 merges langfuse.trace.metadata.* into the row's metadata.
 * - langfuse.environment and langfuse.release come from the client's configuration and,
 *   when the trace sets its own, from the trace too: a span may carry both, the trace's last.
 * - The gen_ai.* rows are the GenAI view of the same facts, for backends that do not know
 *   Langfuse's names; v3 falls back to them where Langfuse's own are absent.
 */
static const struct attr attrs[] = {
    {FROM_TYPE, ONCE, AS_TYPE, .key = "langfuse.observation.type"},
    {FROM_CONF_ENV, ONCE, AS_STR, .key = "langfuse.environment"},
    {FROM_CONF_RELEASE, ONCE, AS_STR, .key = "langfuse.release"},
    {LF__F_LEVEL, ONCE, AS_LEVEL, .key = "langfuse.observation.level"},
    {LF__F_USAGE, ONCE, AS_MAP, .key = "langfuse.observation.usage_details"},
    {LF__F_COST, ONCE, AS_MAP, .key = "langfuse.observation.cost_details"},

    {LF__F_INPUT, EACH, AS_JSON, .key = "langfuse.observation.input", .mask = "input"},
    {LF__F_OUTPUT, EACH, AS_JSON, .key = "langfuse.observation.output", .mask = "output"},
    {LF__F_META, EACH, AS_META, .key = "langfuse.observation.metadata.", .mask = "metadata"},
    {LF__F_STATUS, EACH, AS_LONG_STR, .key = "langfuse.observation.status_message"},
    {LF__F_VERSION, EACH, AS_STR, .key = "langfuse.version"},
    {LF__F_MODEL, EACH, AS_STR, .key = "langfuse.observation.model.name"},
    {LF__F_MODEL_PARAMS, EACH, AS_JSON, .key = "langfuse.observation.model.parameters"},
    {LF__F_COMPLETION_START, EACH, AS_TIME, .key = "langfuse.observation.completion_start_time"},
    {LF__F_PROMPT_NAME, EACH, AS_STR, .key = "langfuse.observation.prompt.name"},
    {LF__F_PROMPT_VERSION, EACH, AS_INT, .key = "langfuse.observation.prompt.version"},
    {LF__T_NAME, EACH, AS_STR, .key = "langfuse.trace.name"},
    {LF__T_SESSION, EACH, AS_STR, .key = "session.id"},
    {LF__T_USER, EACH, AS_STR, .key = "user.id"},
    {LF__T_INPUT, EACH, AS_JSON, .key = "langfuse.trace.input", .mask = "input"},
    {LF__T_INPUT, EACH, AS_JSON, .key = "langfuse.observation.input", .mask = "input",
     .root_unless = LF__F_INPUT},
    {LF__T_OUTPUT, EACH, AS_JSON, .key = "langfuse.trace.output", .mask = "output"},
    {LF__T_OUTPUT, EACH, AS_JSON, .key = "langfuse.observation.output", .mask = "output",
     .root_unless = LF__F_OUTPUT},
    {LF__T_META, EACH, AS_META, .key = "langfuse.trace.metadata.", .mask = "metadata"},
    {LF__T_PUBLIC, EACH, AS_BOOL, .key = "langfuse.trace.public"},
    {LF__T_VERSION, EACH, AS_STR, .key = "langfuse.trace.version"},
    {LF__T_RELEASE, EACH, AS_STR, .key = "langfuse.release"},
    {LF__T_ENV, EACH, AS_STR, .key = "langfuse.environment"},

    {LF__T_TAG, ONCE, AS_TAGS, .key = "langfuse.trace.tags"},
    {FROM_TYPE, ONCE, AS_OPERATION, .key = "gen_ai.operation.name"},
    {LF__F_MODEL, ONCE, AS_STR, .key = "gen_ai.request.model"},
    {LF__F_MODEL, ONCE, AS_STR, .key = "gen_ai.response.model"},
    {LF__F_USAGE, ONCE, AS_COUNT, .key = "gen_ai.usage.input_tokens", .rkey = "input"},
    {LF__F_USAGE, ONCE, AS_COUNT, .key = "gen_ai.usage.output_tokens", .rkey = "output"},
    {LF__F_NAME, ONCE, AS_STR, .key = "gen_ai.tool.name", .types = 1u << LF_OBS_TOOL},
    {LF__F_NAME, ONCE, AS_STR, .key = "gen_ai.agent.name", .types = 1u << LF_OBS_AGENT},
};

/* One span being written. */
struct span {
    const struct lf__enc *e;
    struct lf__buf *out;
    const struct lf_obs *r;
    const struct lf__limits *lim;
    int first;                          /* no attribute written yet */
    struct lf__field last[LF__TAG_MAX]; /* the last entry of each tag; .tag is 0 if none */
    uint32_t last_at[LF__TAG_MAX];      /* where each of those begins in r->data */
};

static int level_of(const struct lf__field *f)
{
    return f->vlen ? (unsigned char)f->val[0] : 0;
}

static int has(const struct span *s, uint8_t tag)
{
    return s->last[tag].tag == tag;
}

static int applies(const struct span *s, const struct attr *a)
{
    if (a->types && (s->r->type >= 16 || !(a->types & (1u << s->r->type)))) return 0;
    return !a->root_unless || ((s->r->flags & LF__REC_ROOT) && !has(s, a->root_unless));
}

/* The last entry of keyed field `tag` with key `k`: 1 with *f and *at set, or 0. */
static int last_keyed(const struct lf_obs *r, uint8_t tag, const char *k, struct lf__field *f,
                      uint32_t *at)
{
    struct lf__field g;
    size_t klen = strlen(k);
    int found = 0;
    for (uint32_t pos = 0, start = 0; lf__rec_next(r, &pos, &g); start = pos)
        if (g.tag == tag && g.klen == klen && !memcmp(g.key, k, klen)) {
            *f = g;
            *at = start;
            found = 1;
        }
    return found;
}

/* The entry a ONCE row reads: 1 with *f and *at set, or 0 when there is none. */
static int once_source(const struct span *s, const struct attr *a, struct lf__field *f,
                       uint32_t *at)
{
    const char *conf_str;
    memset(f, 0, sizeof(*f));
    *at = 0;
    switch (a->from) {
    case FROM_TYPE:
        return 1;
    case FROM_CONF_ENV:
        conf_str = s->e->conf->environment;
        break;
    case FROM_CONF_RELEASE:
        conf_str = s->e->conf->release;
        break;
    default:
        if (a->rkey) return has(s, a->from) && last_keyed(s->r, a->from, a->rkey, f, at);
        *f = s->last[a->from];
        *at = s->last_at[a->from];
        return has(s, a->from);
    }
    if (!conf_str) return 0;
    f->val = conf_str;
    f->vlen = (uint32_t)strlen(conf_str);
    return 1;
}

/* Writes row `a` for entry `f` (at data offset `at`), or nothing when its `as` says so. */
static void put_attr(struct span *s, const struct attr *a, const struct lf__field *f, uint32_t at)
{
    const struct lf__enc *e = s->e;
    struct lf__buf *out = s->out;
    int *first = &s->first;
    const char *op;
    char iso[64];

    switch ((enum attr_as)a->as) {
    case AS_STR:
        attr_str(out, first, a->key, f->val, f->vlen, e->red);
        break;
    case AS_LONG_STR:
        key(out, first, a->key, strlen(a->key), "stringValue");
        lf__enc_value(e, out, at, f, a->mask, s->lim, LF__VM_JSON);
        lf__buf_puts(out, "}}");
        break;
    case AS_JSON:
        attr_value(e, out, first, a->key, strlen(a->key), at, f, a->mask, s->lim);
        break;
    case AS_META:
        attr_meta(e, out, first, a->key, at, f, a->mask, s->lim);
        break;
    case AS_INT:
        attr_int(out, first, a->key, lf__field_i64(f));
        break;
    case AS_COUNT:
        if (lf__field_i64(f) >= 0) attr_int(out, first, a->key, lf__field_i64(f));
        break;
    case AS_BOOL:
        attr_bool(out, first, a->key, strlen(a->key), f);
        break;
    case AS_TIME:
        lf__iso8601(iso, lf__field_i64(f));
        attr_cstr(out, first, a->key, iso, NULL);
        break;
    case AS_LEVEL:
        if (level_of(f)) attr_cstr(out, first, a->key, lf__level_name(level_of(f)), NULL);
        break;
    case AS_MAP:
        attr_map(out, first, a->key, s->r, a->from);
        break;
    case AS_TAGS:
        key(out, first, a->key, strlen(a->key), "arrayValue");
        lf__buf_puts(out, "{\"values\":[");
        lf__enc_tags(out, s->r, e->red, "{\"stringValue\":", "}");
        lf__buf_puts(out, "]}}}");
        break;
    case AS_TYPE:
        attr_cstr(out, first, a->key, lf__obs_type_name(s->r->type), NULL);
        break;
    case AS_OPERATION:
        op = genai_operation(s->r->type);
        if (op) attr_cstr(out, first, a->key, op, NULL);
        break;
    }
}

/* Writes a run of `n` EACH rows: one walk of the record, each entry looked up by its tag
 * (a tag's rows are adjacent). lf__enc_is_last() costs a walk of its own, so it is asked
 * only of entries that some row writes. */
static void put_each(struct span *s, const struct attr *run, size_t n)
{
    uint8_t rows_of[LF__TAG_MAX]; /* a tag's first row in `run`, or n */
    struct lf__field f;

    assert(n < UINT8_MAX);
    memset(rows_of, (int)n, sizeof(rows_of));
    for (size_t i = n; i-- > 0;) {
        assert(run[i].from < LF__TAG_MAX); /* EACH rows read record fields */
        assert(rows_of[run[i].from] == n || rows_of[run[i].from] == i + 1);
        rows_of[run[i].from] = (uint8_t)i;
    }
    for (uint32_t pos = 0, at = 0; lf__rec_next(s->r, &pos, &f); at = pos) {
        int last = -1; /* not asked yet */
        size_t i = f.tag < LF__TAG_MAX ? rows_of[f.tag] : n;
        for (; i < n && run[i].from == f.tag; i++) {
            if (!applies(s, &run[i])) continue;
            if (last < 0) last = lf__enc_is_last(s->r, pos, &f);
            if (last) put_attr(s, &run[i], &f, at);
        }
    }
}

/* ---- the span ---------------------------------------------------------------------------- */

void lf__otlp_begin(const struct lf__enc *e, struct lf__buf *out)
{
    int first = 1;
    lf__buf_puts(out, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    attr_cstr(out, &first, "service.name", e->conf->service_name, NULL);
    attr_cstr(out, &first, "telemetry.sdk.name", "liblangfuse", NULL);
    attr_cstr(out, &first, "telemetry.sdk.language", "c", NULL);
    attr_cstr(out, &first, "telemetry.sdk.version", LF_VERSION_STRING, NULL);
    lf__buf_puts(
        out,
        "]},\"scopeSpans\":[{\"scope\":{\"name\":\"liblangfuse\",\"version\":\"" LF_VERSION_STRING
        "\"},\"spans\":[");
}

void lf__otlp_end(struct lf__buf *out)
{
    lf__buf_puts(out, "]}]}]}");
}

/* Ids, name and times, up to the opening of the attributes. A span without a name has "". */
static void put_frame(const struct span *s)
{
    struct lf__buf *out = s->out;
    const struct lf_obs *r = s->r;
    char hex[33];

    lf__buf_puts(out, "{\"traceId\":\"");
    lf__hex(hex, r->trace_id, 16);
    lf__buf_puts(out, hex);
    lf__buf_puts(out, "\",\"spanId\":\"");
    lf__hex(hex, r->span_id, 8);
    lf__buf_puts(out, hex);
    if (!(r->flags & LF__REC_ROOT)) {
        lf__buf_puts(out, "\",\"parentSpanId\":\"");
        lf__hex(hex, r->parent_id, 8);
        lf__buf_puts(out, hex);
    }
    lf__buf_puts(out, "\",\"name\":");
    if (has(s, LF__F_NAME))
        lf__json_str(out, s->last[LF__F_NAME].val, s->last[LF__F_NAME].vlen, s->e->red, 0);
    else
        lf__buf_puts(out, "\"\"");
    lf__buf_puts(out, ",\"kind\":1,\"startTimeUnixNano\":\"");
    lf__buf_put_i64(out, r->start_ns);
    lf__buf_puts(out, "\",\"endTimeUnixNano\":\"");
    lf__buf_put_i64(out, r->flags & LF__REC_ENDED ? r->end_ns : r->start_ns);
    lf__buf_puts(out, "\",\"attributes\":[");
}

/* The OTLP status, not an attribute: code 2 (error) for the ERROR level, nothing otherwise.
 * The full text is in the status_message attribute, which truncation governs; the OTLP
 * status keeps a bounded copy. */
static void put_status(const struct span *s)
{
    const struct lf__field *status = &s->last[LF__F_STATUS];
    if (level_of(&s->last[LF__F_LEVEL]) != LF_LEVEL_ERROR) return;
    lf__buf_puts(s->out, ",\"status\":{\"code\":2");
    if (has(s, LF__F_STATUS)) {
        size_t n = status->vlen;
        if (n > STATUS_MESSAGE_MAX) n = lf__utf8_cut(status->val, STATUS_MESSAGE_MAX);
        lf__buf_puts(s->out, ",\"message\":");
        lf__json_str(s->out, status->val, n, s->e->red, 0);
    }
    lf__buf_putc(s->out, '}');
}

void lf__otlp_span(const struct lf__enc *e, struct lf__buf *out, const struct lf_obs *r,
                   const struct lf__limits *lim)
{
    struct span s = {.e = e, .out = out, .r = r, .lim = lim, .first = 1};
    struct lf__field f;
    size_t nattrs = sizeof(attrs) / sizeof(attrs[0]);

    /* The last entry of each tag, which the frame, the ONCE rows and the status read. */
    for (uint32_t pos = 0, at = 0; lf__rec_next(r, &pos, &f); at = pos)
        if (f.tag < LF__TAG_MAX) {
            s.last[f.tag] = f;
            s.last_at[f.tag] = at;
        }

    put_frame(&s);
    for (size_t i = 0; i < nattrs;) {
        size_t n = 1;
        if (attrs[i].each) {
            while (i + n < nattrs && attrs[i + n].each)
                n++;
            put_each(&s, &attrs[i], n);
        } else {
            uint32_t at;
            if (applies(&s, &attrs[i]) && once_source(&s, &attrs[i], &f, &at))
                put_attr(&s, &attrs[i], &f, at);
        }
        i += n;
    }
    lf__buf_putc(out, ']');
    put_status(&s);
    lf__buf_putc(out, '}');
}
