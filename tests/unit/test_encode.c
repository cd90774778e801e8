/* test_encode.c - OTLP spans and ingestion events as a Langfuse server reads them:
 * attribute mapping, last-wins, truncation, packing, masking, redaction. */
#include "cm.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "encode.h"
#include "json.h"

static struct lf__conf conf;
static struct lf__redactor *red;
static struct lf__encoder enc;

static int setup(void **state)
{
    (void)state;
    memset(&conf, 0, sizeof(conf));
    conf.transport = LF_TRANSPORT_OTLP;
    conf.max_request_bytes = 1 << 20;
    conf.max_event_bytes = 256 << 10;
    conf.service_name = "svc";
    red = lf__redactor_new();
    struct lf__redactor *r2 = lf__redactor_with(red, "topsecret-123", 13);
    lf__redactor_free(red);
    red = r2;
    lf__encoder_init(&enc);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    lf__redactor_free(red);
    lf__encoder_free(&enc);
    return 0;
}

static struct lf_obs *mk(unsigned type, int root, uint8_t id)
{
    struct lf_obs *r = calloc(1, sizeof(*r));
    memset(r->trace_id, 0xab, 16);
    memset(r->span_id, id, 8);
    if (!root) memset(r->parent_id, 0x01, 8);
    r->type = (uint8_t)type;
    r->flags = LF__REC_ENDED | (root ? LF__REC_ROOT : 0);
    r->start_ns = 1700000000000000000LL;
    r->end_ns = 1700000001000000000LL;
    return r;
}

static void put_s(struct lf_obs *r, uint8_t tag, uint8_t kind, const char *key, const char *v)
{
    assert_int_equal(lf__rec_put(r, tag, kind, key, key ? strlen(key) : 0, v, strlen(v)), 0);
}

static void put_i(struct lf_obs *r, uint8_t tag, const char *key, int64_t v)
{
    assert_int_equal(lf__rec_put(r, tag, LF__V_INT, key, key ? strlen(key) : 0, &v, 8), 0);
}

static void put_d(struct lf_obs *r, uint8_t tag, const char *key, double v)
{
    assert_int_equal(lf__rec_put(r, tag, LF__V_DBL, key, strlen(key), &v, 8), 0);
}

/* Encodes a list into bodies; returns them parsed, in a JSON array. */
static json_t *encode(struct lf_obs *list, uint64_t *truncated, uint64_t *dropped, size_t *max_len)
{
    struct lf__enc e = {&conf, red, 1700000002000000000LL, NULL, NULL};
    json_t *all = json_array();
    uint64_t t = 0, d = 0;
    size_t ml = 0;
    while (list) {
        struct lf__body b;
        assert_int_equal(lf__encode_body(&enc, &e, &list, &b, &t, &d), 0);
        if (!b.nrec) {
            free(b.data);
            continue;
        }
        assert_true(b.len <= conf.max_request_bytes);
        if (b.len > ml) ml = b.len;
        json_error_t err;
        json_t *v = json_loadb(b.data, b.len, 0, &err);
        if (!v) fail_msg("invalid JSON at %d: %s\n%.300s", err.position, err.text, b.data);
        json_object_set_new(v, "_nrec", json_integer(b.nrec));
        json_array_append_new(all, v);
        free(b.data);
    }
    if (truncated) *truncated = t;
    if (dropped) *dropped = d;
    if (max_len) *max_len = ml;
    return all;
}

static json_t *spans_of(json_t *body)
{
    return json_object_get(
        json_array_get(json_object_get(json_array_get(json_object_get(body, "resourceSpans"), 0),
                                       "scopeSpans"),
                       0),
        "spans");
}

/* The value object of attribute `key`, asserting it occurs exactly once. */
static json_t *attr(json_t *span, const char *key)
{
    size_t i;
    json_t *a, *found = NULL;
    int n = 0;
    json_array_foreach(json_object_get(span, "attributes"), i,
                       a) if (!strcmp(json_string_value(json_object_get(a, "key")), key))
    {
        found = json_object_get(a, "value");
        n++;
    }
    assert_true(n <= 1);
    return found;
}

static const char *sattr(json_t *span, const char *key)
{
    json_t *v = attr(span, key);
    return v ? json_string_value(json_object_get(v, "stringValue")) : NULL;
}

static void test_otlp_root_span_carries_everything(void **state)
{
    (void)state;
    struct lf_obs *r = mk(LF_OBS_GENERATION, 1, 0x22);
    put_s(r, LF__F_NAME, LF__V_STR, NULL, "old-name");
    put_s(r, LF__F_NAME, LF__V_STR, NULL, "claude-query");
    put_s(r, LF__F_INPUT, LF__V_STR, NULL, "say \"hi\"");
    put_s(r, LF__F_OUTPUT, LF__V_JSON, NULL, "{\"answer\":42}");
    put_s(r, LF__F_META, LF__V_STR, "kind", "a string");
    put_i(r, LF__F_META, "turns", 5);
    put_d(r, LF__F_META, "ratio", 0.5);
    assert_int_equal(lf__rec_put(r, LF__F_META, LF__V_BOOL, "ok", 2, "\1", 1), 0);
    put_s(r, LF__F_META, LF__V_JSON, "obj", "{\"a\":[1,2]}");
    put_i(r, LF__F_USAGE, "input", 10);
    put_i(r, LF__F_USAGE, "output", 7);
    put_i(r, LF__F_USAGE, "input", 12); /* last wins */
    put_d(r, LF__F_COST, "total", 0.0017464);
    uint8_t lvl = LF_LEVEL_ERROR;
    assert_int_equal(lf__rec_put(r, LF__F_LEVEL, LF__V_INT, NULL, 0, &lvl, 1), 0);
    put_s(r, LF__F_STATUS, LF__V_STR, NULL, "tool denied");
    put_s(r, LF__F_MODEL, LF__V_STR, NULL, "claude-sonnet-4-5");
    put_s(r, LF__F_MODEL_PARAMS, LF__V_JSON, NULL, "{\"max_tokens\":32000}");
    put_i(r, LF__F_COMPLETION_START, NULL, 1700000000500000000LL);
    put_s(r, LF__T_NAME, LF__V_STR, NULL, "agentic-session");
    put_s(r, LF__T_SESSION, LF__V_STR, NULL, "sess-1");
    put_s(r, LF__T_USER, LF__V_STR, NULL, "user-1");
    put_s(r, LF__T_TAG, LF__V_STR, NULL, "claude-code");
    put_s(r, LF__T_TAG, LF__V_STR, NULL, "model:x");
    put_s(r, LF__T_TAG, LF__V_STR, NULL, "claude-code");
    put_s(r, LF__T_META, LF__V_STR, "namespace", "ns");
    assert_int_equal(lf__rec_put(r, LF__T_PUBLIC, LF__V_BOOL, NULL, 0, "\1", 1), 0);

    json_t *bodies = encode(r, NULL, NULL, NULL);
    assert_int_equal(json_array_size(bodies), 1);
    json_t *span = json_array_get(spans_of(json_array_get(bodies, 0)), 0);
    assert_string_equal(json_string_value(json_object_get(span, "traceId")),
                        "abababababababababababababababab");
    assert_string_equal(json_string_value(json_object_get(span, "spanId")), "2222222222222222");
    assert_null(json_object_get(span, "parentSpanId"));
    assert_string_equal(json_string_value(json_object_get(span, "name")), "claude-query");
    assert_string_equal(json_string_value(json_object_get(span, "startTimeUnixNano")),
                        "1700000000000000000");
    assert_string_equal(json_string_value(json_object_get(span, "endTimeUnixNano")),
                        "1700000001000000000");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(span, "status"), "code")),
                     2);

    assert_string_equal(sattr(span, "langfuse.observation.type"), "generation");
    assert_string_equal(sattr(span, "langfuse.observation.input"), "\"say \\\"hi\\\"\"");
    assert_string_equal(sattr(span, "langfuse.observation.output"), "{\"answer\":42}");
    assert_string_equal(sattr(span, "langfuse.observation.usage_details"),
                        "{\"output\":7,\"input\":12}");
    assert_string_equal(sattr(span, "langfuse.observation.cost_details"), "{\"total\":0.0017464}");
    assert_string_equal(sattr(span, "langfuse.observation.level"), "ERROR");
    assert_string_equal(sattr(span, "langfuse.observation.status_message"), "tool denied");
    assert_string_equal(sattr(span, "langfuse.observation.model.name"), "claude-sonnet-4-5");
    assert_string_equal(sattr(span, "langfuse.observation.model.parameters"),
                        "{\"max_tokens\":32000}");
    assert_string_equal(sattr(span, "langfuse.observation.completion_start_time"),
                        "2023-11-14T22:13:20.500000Z");
    assert_string_equal(sattr(span, "langfuse.observation.metadata.kind"), "\"a string\"");
    assert_string_equal(json_string_value(json_object_get(
                            attr(span, "langfuse.observation.metadata.turns"), "intValue")),
                        "5");
    assert_true(json_real_value(json_object_get(attr(span, "langfuse.observation.metadata.ratio"),
                                                "doubleValue")) == 0.5);
    assert_true(
        json_is_true(json_object_get(attr(span, "langfuse.observation.metadata.ok"), "boolValue")));
    assert_string_equal(sattr(span, "langfuse.observation.metadata.obj"), "{\"a\":[1,2]}");
    assert_string_equal(sattr(span, "langfuse.trace.name"), "agentic-session");
    assert_string_equal(sattr(span, "session.id"), "sess-1");
    assert_string_equal(sattr(span, "user.id"), "user-1");
    assert_string_equal(sattr(span, "langfuse.trace.metadata.namespace"), "\"ns\"");
    assert_true(json_is_true(json_object_get(attr(span, "langfuse.trace.public"), "boolValue")));
    json_t *tags =
        json_object_get(json_object_get(attr(span, "langfuse.trace.tags"), "arrayValue"), "values");
    assert_int_equal(json_array_size(tags), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(tags, 1), "stringValue")),
                        "model:x");
    /* the GenAI view alongside */
    assert_string_equal(sattr(span, "gen_ai.operation.name"), "chat");
    assert_string_equal(sattr(span, "gen_ai.request.model"), "claude-sonnet-4-5");
    assert_string_equal(
        json_string_value(json_object_get(attr(span, "gen_ai.usage.input_tokens"), "intValue")),
        "12");
    json_decref(bodies);
}

static void test_otlp_child(void **state)
{
    (void)state;
    struct lf_obs *r = mk(LF_OBS_TOOL, 0, 0x33);
    r->flags &= (uint8_t)~LF__REC_ENDED; /* not ended: the end time is the start */
    put_s(r, LF__F_NAME, LF__V_STR, NULL, "Bash");
    json_t *bodies = encode(r, NULL, NULL, NULL);
    json_t *span = json_array_get(spans_of(json_array_get(bodies, 0)), 0);
    assert_string_equal(json_string_value(json_object_get(span, "parentSpanId")),
                        "0101010101010101");
    assert_string_equal(sattr(span, "langfuse.observation.type"), "tool");
    assert_string_equal(sattr(span, "gen_ai.tool.name"), "Bash");
    assert_null(json_object_get(span, "status"));
    assert_string_equal(json_string_value(json_object_get(span, "endTimeUnixNano")),
                        json_string_value(json_object_get(span, "startTimeUnixNano")));
    json_decref(bodies);
}

/* Langfuse v4 takes a trace's input and output from its root observation: a root without
 * its own carries the trace's; one with its own keeps them. */
static void test_v4_reads_trace_input_and_output_from_the_root(void **state)
{
    (void)state;
    struct lf_obs *r = mk(LF_OBS_SPAN, 1, 0x55);
    put_s(r, LF__T_INPUT, LF__V_JSON, NULL, "{\"prompt\":\"hi\"}");
    put_s(r, LF__T_OUTPUT, LF__V_JSON, NULL, "{\"success\":true}");
    struct lf_obs *own = mk(LF_OBS_SPAN, 1, 0x56);
    put_s(own, LF__F_INPUT, LF__V_STR, NULL, "own input");
    put_s(own, LF__T_INPUT, LF__V_JSON, NULL, "{\"prompt\":\"hi\"}");
    r->next = own;
    json_t *bodies = encode(r, NULL, NULL, NULL);
    json_t *span = json_array_get(spans_of(json_array_get(bodies, 0)), 0);
    assert_string_equal(sattr(span, "langfuse.observation.input"), "{\"prompt\":\"hi\"}");
    assert_string_equal(sattr(span, "langfuse.observation.output"), "{\"success\":true}");
    assert_string_equal(sattr(span, "langfuse.trace.input"), "{\"prompt\":\"hi\"}");
    span = json_array_get(spans_of(json_array_get(bodies, 0)), 1);
    assert_string_equal(sattr(span, "langfuse.observation.input"), "\"own input\"");
    assert_null(attr(span, "langfuse.observation.output"));
    json_decref(bodies);
}

/* Writes one span as the exporter would, frees the record, and compares the bytes. */
static void assert_span_bytes(struct lf_obs *r, const char *expected)
{
    struct lf__enc e = {&conf, red, 0, NULL, NULL};
    struct lf__buf b;
    lf__buf_init(&b, 0);
    lf__otlp_span(&e, &b, r, NULL);
    lf__rec_free(r);
    assert_false(lf__buf_failed(&b));
    if (strcmp(b.data, expected) != 0)
        fail_msg("span differs\nexpected: %s\nactual:   %s", expected, b.data);
    lf__buf_free(&b);
}

/* The exact bytes of spans that carry every record field between them: Langfuse reads these
 * attribute keys and value kinds, so any change to the mapping in otlp.c shows here first. */
static void test_otlp_mapping_of_every_field(void **state)
{
    (void)state;
    /* A root generation with every field, some set twice (the last wins), and its own input
     * and output, so the trace's stay trace attributes only. */
    conf.environment = "prod";
    conf.release = "r1";
    struct lf_obs *r = mk(LF_OBS_GENERATION, 1, 0x22);
    put_s(r, LF__F_NAME, LF__V_STR, NULL, "old-name");
    put_s(r, LF__F_NAME, LF__V_STR, NULL, "claude-query");
    put_s(r, LF__F_INPUT, LF__V_STR, NULL, "say \"hi\"");
    put_s(r, LF__F_OUTPUT, LF__V_JSON, NULL, "{\"answer\":42}");
    put_s(r, LF__F_META, LF__V_STR, "kind", "superseded");
    put_i(r, LF__F_META, "turns", 5);
    put_d(r, LF__F_META, "ratio", 0.5);
    assert_int_equal(lf__rec_put(r, LF__F_META, LF__V_BOOL, "ok", 2, "\1", 1), 0);
    put_s(r, LF__F_META, LF__V_JSON, "obj", "{\"a\":[1,2]}");
    put_s(r, LF__F_META, LF__V_STR, "kind", "a string");
    uint8_t lvl = LF_LEVEL_WARNING;
    assert_int_equal(lf__rec_put(r, LF__F_LEVEL, LF__V_INT, NULL, 0, &lvl, 1), 0);
    lvl = LF_LEVEL_ERROR;
    assert_int_equal(lf__rec_put(r, LF__F_LEVEL, LF__V_INT, NULL, 0, &lvl, 1), 0);
    put_s(r, LF__F_STATUS, LF__V_STR, NULL, "tool denied");
    put_s(r, LF__F_VERSION, LF__V_STR, NULL, "v2");
    put_s(r, LF__F_MODEL, LF__V_STR, NULL, "claude-sonnet-4-5");
    put_s(r, LF__F_MODEL_PARAMS, LF__V_JSON, NULL, "{\"max_tokens\":32000}");
    put_i(r, LF__F_USAGE, "input", 10);
    put_i(r, LF__F_USAGE, "output", 7);
    put_i(r, LF__F_USAGE, "input", 12);
    put_d(r, LF__F_COST, "total", 0.0017464);
    put_i(r, LF__F_COMPLETION_START, NULL, 1700000000500000000LL);
    put_s(r, LF__F_PROMPT_NAME, LF__V_STR, NULL, "system-prompt");
    put_i(r, LF__F_PROMPT_VERSION, NULL, 3);
    put_s(r, LF__T_NAME, LF__V_STR, NULL, "agentic-session");
    put_s(r, LF__T_SESSION, LF__V_STR, NULL, "sess-1");
    put_s(r, LF__T_USER, LF__V_STR, NULL, "user-1");
    put_s(r, LF__T_INPUT, LF__V_JSON, NULL, "{\"prompt\":\"hi\"}");
    put_s(r, LF__T_OUTPUT, LF__V_STR, NULL, "done");
    put_s(r, LF__T_TAG, LF__V_STR, NULL, "claude-code");
    put_s(r, LF__T_TAG, LF__V_STR, NULL, "model:x");
    put_s(r, LF__T_TAG, LF__V_STR, NULL, "claude-code");
    put_s(r, LF__T_META, LF__V_STR, "namespace", "ns");
    put_i(r, LF__T_META, "attempt", 2);
    assert_int_equal(lf__rec_put(r, LF__T_PUBLIC, LF__V_BOOL, NULL, 0, "\1", 1), 0);
    put_s(r, LF__T_VERSION, LF__V_STR, NULL, "tv1");
    put_s(r, LF__T_RELEASE, LF__V_STR, NULL, "r2");
    put_s(r, LF__T_ENV, LF__V_STR, NULL, "staging");
    assert_span_bytes(
        r, "{\"traceId\":\"abababababababababababababababab\",\"spanId\":\"2222222222222222\""
           ",\"name\":\"claude-query\",\"kind\":1,\"startTimeUnixNano\":\"1700000000000000000\""
           ",\"endTimeUnixNano\":\"1700000001000000000\",\"attributes\":["
           "{\"key\":\"langfuse.observation.type\",\"value\":{\"stringValue\":\"generation\"}},"
           "{\"key\":\"langfuse.environment\",\"value\":{\"stringValue\":\"prod\"}},"
           "{\"key\":\"langfuse.release\",\"value\":{\"stringValue\":\"r1\"}},"
           "{\"key\":\"langfuse.observation.level\",\"value\":{\"stringValue\":\"ERROR\"}},"
           "{\"key\":\"langfuse.observation.usage_details\",\"value\":"
           "{\"stringValue\":\"{\\\"output\\\":7,\\\"input\\\":12}\"}},"
           "{\"key\":\"langfuse.observation.cost_details\",\"value\":"
           "{\"stringValue\":\"{\\\"total\\\":0.0017464}\"}},"
           "{\"key\":\"langfuse.observation.input\",\"value\":"
           "{\"stringValue\":\"\\\"say \\\\\\\"hi\\\\\\\"\\\"\"}},"
           "{\"key\":\"langfuse.observation.output\",\"value\":"
           "{\"stringValue\":\"{\\\"answer\\\":42}\"}},"
           "{\"key\":\"langfuse.observation.metadata.turns\",\"value\":{\"intValue\":\"5\"}},"
           "{\"key\":\"langfuse.observation.metadata.ratio\",\"value\":{\"doubleValue\":0.5}},"
           "{\"key\":\"langfuse.observation.metadata.ok\",\"value\":{\"boolValue\":true}},"
           "{\"key\":\"langfuse.observation.metadata.obj\",\"value\":"
           "{\"stringValue\":\"{\\\"a\\\":[1,2]}\"}},"
           "{\"key\":\"langfuse.observation.metadata.kind\",\"value\":"
           "{\"stringValue\":\"\\\"a string\\\"\"}},"
           "{\"key\":\"langfuse.observation.status_message\",\"value\":"
           "{\"stringValue\":\"tool denied\"}},"
           "{\"key\":\"langfuse.version\",\"value\":{\"stringValue\":\"v2\"}},"
           "{\"key\":\"langfuse.observation.model.name\",\"value\":"
           "{\"stringValue\":\"claude-sonnet-4-5\"}},"
           "{\"key\":\"langfuse.observation.model.parameters\",\"value\":"
           "{\"stringValue\":\"{\\\"max_tokens\\\":32000}\"}},"
           "{\"key\":\"langfuse.observation.completion_start_time\",\"value\":"
           "{\"stringValue\":\"2023-11-14T22:13:20.500000Z\"}},"
           "{\"key\":\"langfuse.observation.prompt.name\",\"value\":"
           "{\"stringValue\":\"system-prompt\"}},"
           "{\"key\":\"langfuse.observation.prompt.version\",\"value\":{\"intValue\":\"3\"}},"
           "{\"key\":\"langfuse.trace.name\",\"value\":{\"stringValue\":\"agentic-session\"}},"
           "{\"key\":\"session.id\",\"value\":{\"stringValue\":\"sess-1\"}},"
           "{\"key\":\"user.id\",\"value\":{\"stringValue\":\"user-1\"}},"
           "{\"key\":\"langfuse.trace.input\",\"value\":"
           "{\"stringValue\":\"{\\\"prompt\\\":\\\"hi\\\"}\"}},"
           "{\"key\":\"langfuse.trace.output\",\"value\":{\"stringValue\":\"\\\"done\\\"\"}},"
           "{\"key\":\"langfuse.trace.metadata.namespace\",\"value\":"
           "{\"stringValue\":\"\\\"ns\\\"\"}},"
           "{\"key\":\"langfuse.trace.metadata.attempt\",\"value\":{\"intValue\":\"2\"}},"
           "{\"key\":\"langfuse.trace.public\",\"value\":{\"boolValue\":true}},"
           "{\"key\":\"langfuse.trace.version\",\"value\":{\"stringValue\":\"tv1\"}},"
           "{\"key\":\"langfuse.release\",\"value\":{\"stringValue\":\"r2\"}},"
           "{\"key\":\"langfuse.environment\",\"value\":{\"stringValue\":\"staging\"}},"
           "{\"key\":\"langfuse.trace.tags\",\"value\":{\"arrayValue\":{\"values\":["
           "{\"stringValue\":\"claude-code\"},{\"stringValue\":\"model:x\"}]}}},"
           "{\"key\":\"gen_ai.operation.name\",\"value\":{\"stringValue\":\"chat\"}},"
           "{\"key\":\"gen_ai.request.model\",\"value\":{\"stringValue\":\"claude-sonnet-4-5\"}},"
           "{\"key\":\"gen_ai.response.model\",\"value\":{\"stringValue\":\"claude-sonnet-4-5\"}},"
           "{\"key\":\"gen_ai.usage.input_tokens\",\"value\":{\"intValue\":\"12\"}},"
           "{\"key\":\"gen_ai.usage.output_tokens\",\"value\":{\"intValue\":\"7\"}}"
           "],\"status\":{\"code\":2,\"message\":\"tool denied\"}}");

    /* A child agent, not ended: no copy of the trace's input, the agent's GenAI name. */
    conf.environment = NULL;
    conf.release = NULL;
    r = mk(LF_OBS_AGENT, 0, 0x23);
    r->flags &= (uint8_t)~LF__REC_ENDED;
    put_s(r, LF__F_NAME, LF__V_STR, NULL, "planner");
    lvl = LF_LEVEL_DEBUG;
    assert_int_equal(lf__rec_put(r, LF__F_LEVEL, LF__V_INT, NULL, 0, &lvl, 1), 0);
    put_i(r, LF__F_USAGE, "output", 4);
    put_s(r, LF__T_INPUT, LF__V_STR, NULL, "task");
    assert_span_bytes(
        r,
        "{\"traceId\":\"abababababababababababababababab\",\"spanId\":\"2323232323232323\""
        ",\"parentSpanId\":\"0101010101010101\",\"name\":\"planner\",\"kind\":1"
        ",\"startTimeUnixNano\":\"1700000000000000000\",\"endTimeUnixNano\":\"1700000000000000000\""
        ",\"attributes\":["
        "{\"key\":\"langfuse.observation.type\",\"value\":{\"stringValue\":\"agent\"}},"
        "{\"key\":\"langfuse.observation.level\",\"value\":{\"stringValue\":\"DEBUG\"}},"
        "{\"key\":\"langfuse.observation.usage_details\",\"value\":"
        "{\"stringValue\":\"{\\\"output\\\":4}\"}},"
        "{\"key\":\"langfuse.trace.input\",\"value\":{\"stringValue\":\"\\\"task\\\"\"}},"
        "{\"key\":\"gen_ai.operation.name\",\"value\":{\"stringValue\":\"invoke_agent\"}},"
        "{\"key\":\"gen_ai.usage.output_tokens\",\"value\":{\"intValue\":\"4\"}},"
        "{\"key\":\"gen_ai.agent.name\",\"value\":{\"stringValue\":\"planner\"}}"
        "]}");

    /* A root tool in error without a message, with none of its own input and output: it
     * carries the trace's (Langfuse v4 reads them from the root). */
    r = mk(LF_OBS_TOOL, 1, 0x24);
    put_s(r, LF__F_NAME, LF__V_STR, NULL, "Bash");
    put_s(r, LF__T_INPUT, LF__V_STR, NULL, "ls");
    put_s(r, LF__T_OUTPUT, LF__V_JSON, NULL, "{\"exit\":0}");
    lvl = LF_LEVEL_ERROR;
    assert_int_equal(lf__rec_put(r, LF__F_LEVEL, LF__V_INT, NULL, 0, &lvl, 1), 0);
    assert_int_equal(lf__rec_put(r, LF__T_PUBLIC, LF__V_BOOL, NULL, 0, "\0", 1), 0);
    assert_span_bytes(
        r, "{\"traceId\":\"abababababababababababababababab\",\"spanId\":\"2424242424242424\""
           ",\"name\":\"Bash\",\"kind\":1,\"startTimeUnixNano\":\"1700000000000000000\""
           ",\"endTimeUnixNano\":\"1700000001000000000\",\"attributes\":["
           "{\"key\":\"langfuse.observation.type\",\"value\":{\"stringValue\":\"tool\"}},"
           "{\"key\":\"langfuse.observation.level\",\"value\":{\"stringValue\":\"ERROR\"}},"
           "{\"key\":\"langfuse.trace.input\",\"value\":{\"stringValue\":\"\\\"ls\\\"\"}},"
           "{\"key\":\"langfuse.observation.input\",\"value\":{\"stringValue\":\"\\\"ls\\\"\"}},"
           "{\"key\":\"langfuse.trace.output\",\"value\":{\"stringValue\":\"{\\\"exit\\\":0}\"}},"
           "{\"key\":\"langfuse.observation.output\",\"value\":"
           "{\"stringValue\":\"{\\\"exit\\\":0}\"}},"
           "{\"key\":\"langfuse.trace.public\",\"value\":{\"boolValue\":false}},"
           "{\"key\":\"gen_ai.operation.name\",\"value\":{\"stringValue\":\"execute_tool\"}},"
           "{\"key\":\"gen_ai.tool.name\",\"value\":{\"stringValue\":\"Bash\"}}"
           "],\"status\":{\"code\":2}}");
}

static void test_ingestion_events(void **state)
{
    (void)state;
    conf.transport = LF_TRANSPORT_INGESTION;
    struct lf_obs *root = mk(LF_OBS_SPAN, 1, 0x10);
    put_s(root, LF__F_NAME, LF__V_STR, NULL, "agentic-session");
    put_s(root, LF__T_NAME, LF__V_STR, NULL, "agentic-session");
    put_s(root, LF__T_INPUT, LF__V_JSON, NULL, "{\"prompt\":\"hello topsecret-123\"}");
    struct lf_obs *gen = mk(LF_OBS_GENERATION, 0, 0x11);
    put_s(gen, LF__F_INPUT, LF__V_JSON, NULL, "{not json");
    put_i(gen, LF__F_USAGE, "input", 3);
    put_d(gen, LF__F_COST, "total", 0.25);
    struct lf_obs *tool = mk(LF_OBS_TOOL, 0, 0x12);
    root->next = gen;
    gen->next = tool;
    json_t *bodies = encode(root, NULL, NULL, NULL);
    json_t *batch = json_object_get(json_array_get(bodies, 0), "batch");
    assert_int_equal(json_array_size(batch), 4);
    json_t *ev = json_array_get(batch, 0);
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "trace-create");
    json_t *body = json_object_get(ev, "body");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(body, "input"), "prompt")),
        "hello [REDACTED]");
    assert_string_equal(json_string_value(json_object_get(json_array_get(batch, 1), "type")),
                        "span-create");
    ev = json_array_get(batch, 2);
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "generation-create");
    body = json_object_get(ev, "body");
    assert_string_equal(json_string_value(json_object_get(body, "input")), "{not json");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(body, "usageDetails"), "input")), 3);
    assert_true(json_number_value(json_object_get(json_object_get(body, "costDetails"), "total")) ==
                0.25);
    assert_string_equal(json_string_value(json_object_get(body, "parentObservationId")),
                        "0101010101010101");
    ev = json_array_get(batch, 3);
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "tool-create");
    /* event ids are a function of the observation: a resent or replayed one dedups */
    const char *id_a = json_string_value(json_object_get(json_array_get(batch, 2), "id"));
    assert_int_equal(strlen(id_a), 36);
    struct lf_obs *again = mk(LF_OBS_GENERATION, 0, 0x11);
    json_t *b2 = encode(again, NULL, NULL, NULL);
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(json_array_get(b2, 0), "batch"), 0), "id")),
        id_a);
    struct lf_obs *other = mk(LF_OBS_GENERATION, 0, 0x12);
    json_t *b3 = encode(other, NULL, NULL, NULL);
    assert_string_not_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(json_array_get(b3, 0), "batch"), 0), "id")),
        id_a);
    json_decref(b2);
    json_decref(b3);
    json_decref(bodies);
    conf.transport = LF_TRANSPORT_OTLP;
}

static void test_oversized_observation_is_truncated_not_lost(void **state)
{
    (void)state;
    conf.max_event_bytes = 4096;
    size_t n = 50000;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    /* a multi-byte character right at a likely cut point must not be split */
    memcpy(big + 1000, "\xc3\xa9\xc3\xa9", 4);
    struct lf_obs *r = mk(LF_OBS_GENERATION, 0, 0x44);
    put_s(r, LF__F_NAME, LF__V_STR, NULL, "big");
    put_s(r, LF__F_INPUT, LF__V_STR, NULL, big);
    put_s(r, LF__F_OUTPUT, LF__V_JSON, NULL, "{\"small\":true}");
    put_i(r, LF__F_USAGE, "input", 99);
    uint64_t truncated = 0, dropped = 0;
    json_t *bodies = encode(r, &truncated, &dropped, NULL);
    assert_int_equal(truncated, 1);
    assert_int_equal(dropped, 0);
    json_t *span = json_array_get(spans_of(json_array_get(bodies, 0)), 0);
    const char *in = sattr(span, "langfuse.observation.input");
    assert_non_null(strstr(in, "...[truncated "));
    assert_true(strlen(in) < 4096);
    assert_string_equal(sattr(span, "langfuse.observation.output"), "{\"small\":true}");
    assert_string_equal(sattr(span, "langfuse.observation.usage_details"), "{\"input\":99}");
    json_decref(bodies);
    free(big);
    conf.max_event_bytes = 256 << 10;
}

static void test_bodies_never_pass_the_request_cap(void **state)
{
    (void)state;
    conf.max_request_bytes = 16384;
    conf.max_event_bytes = 8192;
    char text[3001];
    memset(text, 'q', 3000);
    text[3000] = '\0';
    struct lf_obs *head = NULL, **tail = &head;
    for (int i = 0; i < 40; i++) {
        struct lf_obs *r = mk(LF_OBS_SPAN, 0, (uint8_t)i);
        put_s(r, LF__F_INPUT, LF__V_STR, NULL, text);
        *tail = r;
        tail = &r->next;
    }
    size_t max_len = 0;
    json_t *bodies = encode(head, NULL, NULL, &max_len);
    assert_true(json_array_size(bodies) > 5);
    assert_true(max_len <= 16384);
    size_t i, total = 0;
    json_t *b;
    json_array_foreach(bodies, i, b) total += json_array_size(spans_of(b));
    assert_int_equal(total, 40);
    json_decref(bodies);
    conf.max_request_bytes = 1 << 20;
    conf.max_event_bytes = 256 << 10;
}

static char *mask_cb(void *ud, const char *field, const char *value, size_t len)
{
    (*(int *)ud)++;
    (void)len;
    if (strstr(value, "private"))
        return strdup(!strcmp(field, "metadata") ? "\"meta-hidden\"" : "\"hidden\"");
    return NULL;
}

static void test_masking(void **state)
{
    (void)state;
    struct lf_obs *r = mk(LF_OBS_SPAN, 0, 0x55);
    put_s(r, LF__F_INPUT, LF__V_STR, NULL, "private prompt");
    put_s(r, LF__F_OUTPUT, LF__V_STR, NULL, "public answer");
    put_s(r, LF__F_META, LF__V_STR, "m", "private meta");
    put_s(r, LF__T_INPUT, LF__V_STR, NULL, "private trace input");
    put_s(r, LF__T_META, LF__V_STR, "t", "private trace meta");
    /* never given to the callback */
    put_s(r, LF__F_MODEL_PARAMS, LF__V_JSON, NULL, "{\"private\":1}");
    put_s(r, LF__F_STATUS, LF__V_STR, NULL, "private status");
    int calls = 0;
    conf.mask = mask_cb;
    conf.mask_ud = &calls;
    json_t *bodies = encode(r, NULL, NULL, NULL);
    json_t *span = json_array_get(spans_of(json_array_get(bodies, 0)), 0);
    assert_string_equal(sattr(span, "langfuse.observation.input"), "\"hidden\"");
    assert_string_equal(sattr(span, "langfuse.observation.output"), "\"public answer\"");
    assert_string_equal(sattr(span, "langfuse.observation.metadata.m"), "\"meta-hidden\"");
    assert_string_equal(sattr(span, "langfuse.trace.input"), "\"hidden\"");
    assert_string_equal(sattr(span, "langfuse.trace.metadata.t"), "\"meta-hidden\"");
    assert_string_equal(sattr(span, "langfuse.observation.model.parameters"), "{\"private\":1}");
    assert_string_equal(sattr(span, "langfuse.observation.status_message"), "private status");
    assert_int_equal(calls, 5);
    json_decref(bodies);
    conf.mask = NULL;

    r = mk(LF_OBS_SPAN, 0, 0x56);
    put_s(r, LF__F_INPUT, LF__V_STR, NULL, "anything");
    put_s(r, LF__T_OUTPUT, LF__V_JSON, NULL, "{\"x\":1}");
    /* messages only: metadata, model parameters and the status message stay */
    put_s(r, LF__F_META, LF__V_STR, "m", "kept");
    put_s(r, LF__F_MODEL_PARAMS, LF__V_JSON, NULL, "{\"t\":1}");
    put_s(r, LF__F_STATUS, LF__V_STR, NULL, "why");
    conf.mask_messages = 1;
    bodies = encode(r, NULL, NULL, NULL);
    span = json_array_get(spans_of(json_array_get(bodies, 0)), 0);
    assert_string_equal(sattr(span, "langfuse.observation.input"), "\"[masked]\"");
    assert_string_equal(sattr(span, "langfuse.trace.output"), "\"[masked]\"");
    assert_string_equal(sattr(span, "langfuse.observation.metadata.m"), "\"kept\"");
    assert_string_equal(sattr(span, "langfuse.observation.model.parameters"), "{\"t\":1}");
    assert_string_equal(sattr(span, "langfuse.observation.status_message"), "why");
    json_decref(bodies);
    conf.mask_messages = 0;
}

static void test_secrets_never_encoded(void **state)
{
    (void)state;
    struct lf_obs *r = mk(LF_OBS_SPAN, 1, 0x66);
    put_s(r, LF__F_NAME, LF__V_STR, NULL, "name topsecret-123");
    put_s(r, LF__F_INPUT, LF__V_JSON, NULL,
          "{\"k\":\"topsecret-123\",\"t\":\"sk-ant-api03-xxxxxxxxxxxx\"}");
    put_s(r, LF__F_META, LF__V_STR, "m", "Bearer abcdefghijklmnopqrstuvwxyz");
    put_s(r, LF__T_USER, LF__V_STR, NULL, "topsecret-123");
    struct lf__enc e = {&conf, red, 0, NULL, NULL};
    struct lf__body b;
    uint64_t t = 0, d = 0;
    struct lf_obs *list = r;
    assert_int_equal(lf__encode_body(&enc, &e, &list, &b, &t, &d), 0);
    assert_null(strstr(b.data, "topsecret"));
    assert_null(strstr(b.data, "sk-ant-api03"));
    assert_null(strstr(b.data, "abcdefghijklmnop"));
    assert_non_null(strstr(b.data, "[REDACTED]"));
    free(b.data);
}

/* The staged encoder, a few records at a time (as the exporter drives it, serving urgent work
 * in between), writes the same body as lf__encode_body() in one go, and says when the list
 * is done. */
static void test_staged_encoding_writes_the_same_body(void **state)
{
    (void)state;
    conf.gzip = 0;
    struct lf__enc e = {&conf, red, 1700000002000000000LL, NULL, NULL};
    struct lf__body whole, staged;
    uint64_t t = 0, d = 0;
    struct lf_obs *list = NULL;
    for (int round = 0; round < 2; round++) {
        for (int i = 4; i >= 0; i--) {
            struct lf_obs *r = mk(LF_OBS_GENERATION, 0, (uint8_t)(0x10 + i));
            put_s(r, LF__F_NAME, LF__V_STR, NULL, "step");
            put_i(r, LF__F_USAGE, "input", i);
            r->next = list;
            list = r;
        }
        if (round == 0) {
            assert_int_equal(lf__encode_body(&enc, &e, &list, &whole, &t, &d), 0);
            assert_null(list);
            continue;
        }
        lf__encode_begin(&enc, &e);
        int steps = 0, rc;
        while ((rc = lf__encode_some(&enc, &e, &list, 2, &t, &d)) == 1)
            steps++;
        assert_int_equal(rc, 0);
        assert_int_equal(steps, 2); /* 2 + 2 + 1 records */
        assert_null(list);
        assert_int_equal(lf__encode_end(&enc, &e, &staged, &d), 0);
    }
    assert_int_equal(whole.nrec, 5);
    assert_int_equal(staged.nrec, 5);
    assert_int_equal(staged.len, whole.len);
    assert_memory_equal(staged.data, whole.data, whole.len);
    assert_int_equal(d, 0);
    free(whole.data);
    free(staged.data);
}

static void test_allocation_failures(void **state)
{
    (void)state;
    int injected = 0, nomem = 0;
    for (long n = 0; n < 200; n++) {
        struct lf_obs *r = mk(LF_OBS_GENERATION, 1, 0x77);
        put_s(r, LF__F_INPUT, LF__V_JSON, NULL, "{\"a\":[1,2,3],\"b\":\"text\"}");
        put_s(r, LF__T_TAG, LF__V_STR, NULL, "t");
        put_i(r, LF__F_USAGE, "input", 1);
        struct lf__enc e = {&conf, red, 0, NULL, NULL};
        struct lf__body b;
        uint64_t t = 0, d = 0;
        struct lf_obs *list = r;
        conf.transport = n % 2 ? LF_TRANSPORT_INGESTION : LF_TRANSPORT_OTLP;
        lf__alloc_fail_after(n / 2, 0);
        int rc = lf__encode_body(&enc, &e, &list, &b, &t, &d);
        long failed = lf__alloc_failures();
        lf__alloc_fail_after(-1, 0);
        injected += failed > 0;
        nomem += rc == LF_ERR_NOMEM;
        if (rc == 0) {
            json_error_t err;
            if (b.nrec) {
                json_t *v = json_loadb(b.data, b.len, 0, &err);
                assert_non_null(v);
                json_decref(v);
            }
            free(b.data);
            /* the record is in the body, counted dropped, or left to encode */
            assert_int_equal(b.nrec + d + (list != NULL), 1);
            lf__rec_free(list);
        } else {
            assert_int_equal(rc, LF_ERR_NOMEM);
            assert_true(failed > 0);
            assert_int_equal(d + (list != NULL), 1); /* a lost record is counted */
            lf__rec_free(list);
        }
        if (!failed && n > 20) break;
    }
    /* The encoder keeps its buffers between bodies, so only the first few allocations of
     * the loop can fail: without one that did, this test showed nothing. */
    assert_true(injected > 0);
    assert_true(nomem > 0);
    conf.transport = LF_TRANSPORT_OTLP;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_otlp_root_span_carries_everything),
        cmocka_unit_test(test_otlp_child),
        cmocka_unit_test(test_v4_reads_trace_input_and_output_from_the_root),
        cmocka_unit_test(test_otlp_mapping_of_every_field),
        cmocka_unit_test(test_ingestion_events),
        cmocka_unit_test(test_oversized_observation_is_truncated_not_lost),
        cmocka_unit_test(test_bodies_never_pass_the_request_cap),
        cmocka_unit_test(test_masking),
        cmocka_unit_test(test_secrets_never_encoded),
        cmocka_unit_test(test_staged_encoding_writes_the_same_body),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
