/* test_stream.c - Claude Code's stream-json, parsed and mapped to the message stream, on
 * real captured output (tests/fixtures/claude-code-2.1.328): what a user sees for every
 * kind of message, the envelope's shape, the stdin lines, and the answers to control
 * requests. */
#include "cm.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "messages.h"
#include "stream.h"

#define FIXTURES CC_FIXTURES_DIR

/* The message stream of one fixture, mapped through cc_out_claude into memory. */
struct mapped {
    char *buf; /* stdout bytes */
    size_t len;
    char *sink; /* what the sink received, one per line */
    size_t sink_len;
    FILE *sink_fp;
    int lines_in; /* Claude Code lines parsed */
};

static void sink(void *ctx, const char *json, size_t len)
{
    struct mapped *m = ctx;
    fwrite(json, 1, len, m->sink_fp);
    fputc('\n', m->sink_fp);
}

/* Feeds the stdout lines of a fixture (batch .stdout.jsonl, or the "out" lines of an
 * interactive .transcript.jsonl) through the parser and the mapping. */
static void map_fixture(const char *name, enum cc_output fmt, struct mapped *m)
{
    char path[512], *line = NULL, err[200];
    size_t cap = 0;
    ssize_t n;
    snprintf(path, sizeof path, "%s/%s", FIXTURES, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    memset(m, 0, sizeof *m);
    FILE *out = open_memstream(&m->buf, &m->len);
    m->sink_fp = open_memstream(&m->sink, &m->sink_len);
    struct cc_out o;
    cc_out_init(&o, out, fmt);
    o.sink = sink;
    o.sink_ctx = m;
    int transcript = strstr(name, ".transcript.") != NULL;
    while ((n = getline(&line, &cap, f)) > 0) {
        struct cc_msg msg;
        const char *text = line;
        size_t tlen = (size_t)n;
        json_t *wrap = NULL;
        char *owned = NULL;
        if (transcript) {
            wrap = json_loads(line, 0, NULL);
            assert_non_null(wrap);
            if (strcmp(cc_json_str(wrap, "dir"), "out") != 0) {
                json_decref(wrap);
                continue;
            }
            json_t *l = json_object_get(wrap, "line"); /* an object, or text */
            text = owned = json_is_string(l) ? strdup(json_string_value(l))
                                             : json_dumps(l, JSON_COMPACT);
            tlen = strlen(text);
        }
        assert_int_equal(cc_msg_parse(&msg, text, tlen, err, sizeof err), 0);
        m->lines_in++;
        cc_out_claude(&o, &msg);
        cc_msg_clear(&msg);
        json_decref(wrap);
        free(owned);
    }
    free(line);
    fclose(f);
    fclose(out);
    fclose(m->sink_fp);
}

static void mapped_free(struct mapped *m)
{
    free(m->buf);
    free(m->sink);
}

/* "sys text tool_use tool_result! result" for the mapped stream: system.message is "sys",
 * agent.message its payload type, "!" when is_error is true. Also checks every envelope. */
static char *codes(const struct mapped *m)
{
    static char out[4096];
    regex_t ts;
    assert_int_equal(regcomp(&ts, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    out[0] = '\0';
    char *copy = strndup(m->buf, m->len), *save = NULL;
    long long expect_seq = 1;
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_error_t je;
        json_t *env = json_loads(l, 0, &je);
        assert_non_null(env);
        assert_int_equal(json_object_size(env), 4);
        assert_int_equal(json_integer_value(json_object_get(env, "seq")), expect_seq++);
        assert_int_equal(regexec(&ts, cc_json_str(env, "timestamp"), 0, NULL, 0), 0);
        const char *type = cc_json_str(env, "type");
        json_t *p = json_object_get(env, "payload");
        assert_true(json_is_object(p));
        const char *code = strcmp(type, "system.message") == 0 ? "sys" : cc_json_str(p, "type");
        assert_non_null(code);
        strcat(out, out[0] ? " " : "");
        strcat(out, code);
        if (json_is_true(json_object_get(p, "is_error")))
            strcat(out, "!");
        json_decref(env);
    }
    free(copy);
    regfree(&ts);
    /* The sink got exactly the stdout lines. */
    assert_int_equal(m->sink_len, m->len);
    assert_memory_equal(m->sink, m->buf, m->len);
    return out;
}

/* The payload of the n-th (1-based) envelope; caller decrefs. */
static json_t *payload_at(const struct mapped *m, int n)
{
    const char *p = m->buf;
    for (int i = 1; i < n; i++) {
        p = strchr(p, '\n');
        assert_non_null(p);
        p++;
    }
    json_t *env = json_loadb(p, strcspn(p, "\n"), 0, NULL);
    assert_non_null(env);
    json_t *pl = json_incref(json_object_get(env, "payload"));
    json_decref(env);
    return pl;
}

static void expect(const char *fixture, const char *want)
{
    struct mapped m;
    map_fixture(fixture, CC_OUTPUT_JSONL, &m);
    assert_string_equal(codes(&m), want);
    mapped_free(&m);
}

static void test_every_batch_fixture(void **state)
{
    (void)state;
    expect("batch_bash_tool_use.stdout.jsonl", "sys text tool_use tool_result text result");
    expect("batch_api_500_then_ok.stdout.jsonl", "sys sys text result");
    expect("batch_api_error_401.stdout.jsonl", "sys sys sys error result!");
    expect("batch_api_error_500.stdout.jsonl", "sys sys sys error result!");
    expect("batch_api_error_529.stdout.jsonl", "sys sys sys error result!");
    expect("batch_json_output.stdout.jsonl", "result");
    /* max_tokens: the CLI's synthetic "continue" user text is not a tool result */
    expect("batch_max_tokens.stdout.jsonl", "sys text text result");
    expect("batch_max_turns.stdout.jsonl", "sys text tool_use tool_result error result!");
    expect("batch_multi_tool_use.stdout.jsonl",
           "sys text tool_use tool_use tool_result tool_result text result");
    /* stream events and status lines add nothing to the stream */
    expect("batch_partial_messages.stdout.jsonl", "sys text tool_use tool_result text result");
    expect("batch_thinking.stdout.jsonl", "sys thinking text result");
    expect("batch_write_acceptedits.stdout.jsonl", "sys tool_use tool_result text result");
    expect("batch_write_denied.stdout.jsonl", "sys tool_use sys tool_result! text result");
}

static void test_payloads_carry_the_contract_fields(void **state)
{
    (void)state;
    struct mapped m;
    map_fixture("batch_bash_tool_use.stdout.jsonl", CC_OUTPUT_JSONL, &m);
    json_t *init = payload_at(&m, 1);
    assert_non_null(strstr(cc_json_str(init, "message"), "Claude Code 2.1.328"));
    json_t *use = payload_at(&m, 3);
    assert_string_equal(cc_json_str(use, "role"), "assistant");
    assert_string_equal(cc_json_str(use, "content"), "Using tool: Bash");
    assert_string_equal(cc_json_str(use, "tool_name"), "Bash");
    assert_string_equal(cc_json_str(use, "tool_use_id"), "toolu_bash_0001");
    assert_string_equal(cc_json_str(json_object_get(use, "tool_input"), "command"), "echo hi");
    json_t *res = payload_at(&m, 4);
    assert_string_equal(cc_json_str(res, "role"), "user");
    assert_string_equal(cc_json_str(res, "content"), "hi");
    assert_string_equal(cc_json_str(res, "tool_use_id"), "toolu_bash_0001");
    assert_true(json_is_false(json_object_get(res, "is_error")));
    json_t *r = payload_at(&m, 6);
    assert_string_equal(cc_json_str(r, "role"), "system");
    assert_string_equal(cc_json_str(r, "content"), "Session completed in 466ms");
    assert_true(json_real_value(json_object_get(r, "cost")) == 0.0017464);
    assert_int_equal(cc_json_int(r, "num_turns"), 2);
    assert_int_equal(cc_json_int(r, "duration_ms"), 466);
    assert_string_equal(cc_json_str(r, "subtype"), "success");
    assert_int_equal(cc_json_int(json_object_get(r, "usage"), "input_tokens"), 203);
    /* the cost prints as Claude Code printed it, not as 0.0017464000000000001 */
    assert_non_null(strstr(m.buf, "\"cost\":0.0017464,"));
    json_decref(init);
    json_decref(use);
    json_decref(res);
    json_decref(r);
    mapped_free(&m);
}

static void test_errors_say_what_happened(void **state)
{
    (void)state;
    struct mapped m;
    map_fixture("batch_api_error_500.stdout.jsonl", CC_OUTPUT_JSONL, &m);
    json_t *retry = payload_at(&m, 2);
    assert_non_null(strstr(cc_json_str(retry, "message"), "HTTP 500"));
    assert_non_null(strstr(cc_json_str(retry, "message"), "attempt 1 of 2"));
    json_t *err = payload_at(&m, 4);
    assert_string_equal(cc_json_str(err, "role"), "system");
    assert_true(strncmp(cc_json_str(err, "content"), "Error: API Error: 500", 21) == 0);
    json_decref(retry);
    json_decref(err);
    mapped_free(&m);

    map_fixture("batch_max_turns.stdout.jsonl", CC_OUTPUT_JSONL, &m);
    err = payload_at(&m, 5);
    assert_non_null(strstr(cc_json_str(err, "content"), "maximum number of turns"));
    json_decref(err);
    mapped_free(&m);

    map_fixture("batch_write_denied.stdout.jsonl", CC_OUTPUT_JSONL, &m);
    json_t *denied = payload_at(&m, 3);
    assert_non_null(strstr(cc_json_str(denied, "message"), "Permission denied for Write"));
    json_decref(denied);
    mapped_free(&m);
}

/* One description of a failed turn serves the stream, the session's failure and the trace. */
static void test_result_description(void **state)
{
    (void)state;
    char buf[300];
    struct cc_result r = {.is_error = 1, .subtype = "success", .api_error_status = 529};
    cc_result_describe(&r, buf, sizeof buf);
    assert_string_equal(buf, "the model API failed with HTTP 529");
    r = (struct cc_result){.is_error = 1, .subtype = "error_max_turns"};
    cc_result_describe(&r, buf, sizeof buf);
    assert_string_equal(buf, "Claude Code reached the maximum number of turns (--max-turns) "
                             "(error_max_turns)");
    r = (struct cc_result){.is_error = 1, .subtype = "error_new", .terminal_reason = "aborted"};
    cc_result_describe(&r, buf, sizeof buf);
    assert_string_equal(buf, "the turn ended with error_new: aborted");
    r = (struct cc_result){.is_error = 1, .subtype = "success", .result = "Credit balance is too low"};
    cc_result_describe(&r, buf, sizeof buf);
    assert_string_equal(buf, "Credit balance is too low");
    r = (struct cc_result){.is_error = 1};
    cc_result_describe(&r, buf, sizeof buf);
    assert_string_equal(buf, "the turn failed");
}

static void test_thinking_text(void **state)
{
    (void)state;
    struct mapped m;
    map_fixture("batch_thinking.stdout.jsonl", CC_OUTPUT_JSONL, &m);
    json_t *t = payload_at(&m, 2);
    assert_string_equal(cc_json_str(t, "role"), "assistant");
    assert_true(strlen(cc_json_str(t, "content")) > 10);
    json_decref(t);
    mapped_free(&m);
}

static void test_interactive_transcripts(void **state)
{
    (void)state;
    /* init is announced once although the CLI repeats it every turn */
    expect("interactive_two_turn_raw.transcript.jsonl",
           "sys text result text tool_use tool_result text result");
    /* an interrupted turn: the partial text, then an error result that says why */
    expect("interactive_interrupt.transcript.jsonl", "sys text error result! text result");
    expect("interactive_midturn_message.transcript.jsonl",
           "sys text tool_use tool_result text result");
    expect("interactive_api_error.transcript.jsonl", "sys sys error result! text result");
}

static void test_text_output(void **state)
{
    (void)state;
    struct mapped m;
    map_fixture("batch_bash_tool_use.stdout.jsonl", CC_OUTPUT_TEXT, &m);
    assert_non_null(strstr(m.buf, "] system: Claude Code 2.1.328 started"));
    assert_non_null(strstr(m.buf, "] tool Bash {\"command\":\"echo hi\""));
    assert_non_null(strstr(m.buf, "] tool result: hi\n"));
    assert_non_null(strstr(m.buf, "] assistant: Done: hi\n"));
    assert_non_null(strstr(m.buf, "] result: success in 466 ms, 2 turns, $0.0017 total\n"));
    assert_null(strstr(m.buf, "\"seq\"")); /* no JSON on a text stdout */
    /* ... while the sink still gets envelopes */
    assert_non_null(strstr(m.sink, "{\"seq\":1,"));
    mapped_free(&m);
}

static void test_parse_errors_and_kinds(void **state)
{
    (void)state;
    struct cc_msg m;
    char err[200];
    assert_int_equal(cc_msg_parse(&m, "{\"type\":", 8, err, sizeof err), -1);
    assert_non_null(strstr(err, "column"));
    assert_int_equal(cc_msg_parse(&m, "[1]", 3, err, sizeof err), -1);
    assert_int_equal(cc_msg_parse(&m, "{\"type\":\"rate_limit_event\"}", 27, err, sizeof err), 0);
    assert_int_equal(m.kind, CC_MSG_UNKNOWN);
    cc_msg_clear(&m);
    const char *sub = "{\"type\":\"assistant\",\"parent_tool_use_id\":\"toolu_A\","
                      "\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"inner\"}]}}";
    assert_int_equal(cc_msg_parse(&m, sub, strlen(sub), err, sizeof err), 0);
    assert_int_equal(m.kind, CC_MSG_ASSISTANT);
    assert_string_equal(m.parent_tool_use_id, "toolu_A");
    /* a subagent's messages name the tool use they belong to */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    struct cc_out o;
    cc_out_init(&o, f, CC_OUTPUT_JSONL);
    assert_int_equal(cc_out_claude(&o, &m), 1);
    fclose(f);
    assert_non_null(strstr(buf, "\"parent_tool_use_id\":\"toolu_A\""));
    free(buf);
    cc_msg_clear(&m);
    cc_msg_clear(NULL);
}

static void test_stdin_lines(void **state)
{
    (void)state;
    char *l = cc_stdin_user_turn("say \"hi\"\nnow");
    assert_non_null(l);
    /* one line: the only newline is the last byte (the text's own is escaped) */
    assert_ptr_equal(strchr(l, '\n'), l + strlen(l) - 1);
    json_t *doc = json_loads(l, 0, NULL);
    assert_string_equal(cc_json_str(doc, "type"), "user");
    assert_string_equal(cc_json_str(json_object_get(doc, "message"), "content"), "say \"hi\"\nnow");
    assert_true(json_is_null(json_object_get(doc, "parent_tool_use_id")));
    json_decref(doc);
    free(l);

    l = cc_stdin_interrupt("r1");
    doc = json_loads(l, 0, NULL);
    assert_string_equal(cc_json_str(doc, "type"), "control_request");
    assert_string_equal(cc_json_str(doc, "request_id"), "r1");
    assert_string_equal(cc_json_str(json_object_get(doc, "request"), "subtype"), "interrupt");
    json_decref(doc);
    free(l);
}

/* Every control request of the captured transcripts gets an answer with its request_id:
 * permission questions a denial naming the setting, callbacks an error. */
static void test_control_requests_answered(void **state)
{
    (void)state;
    char path[512], *line = NULL, err[200];
    size_t cap = 0;
    int asked = 0;
    const char *files[] = {"interactive_can_use_tool_allow.transcript.jsonl",
                           "interactive_can_use_tool_deny.transcript.jsonl"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", FIXTURES, files[i]);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        while (getline(&line, &cap, f) > 0) {
            json_t *w = json_loads(line, 0, NULL);
            char *text = json_dumps(json_object_get(w, "line"), JSON_COMPACT | JSON_ENCODE_ANY);
            struct cc_msg m;
            if (strcmp(cc_json_str(w, "dir"), "out") == 0 && json_is_object(json_object_get(w, "line")) &&
                cc_msg_parse(&m, text, strlen(text), err, sizeof err) == 0) {
                if (m.kind == CC_MSG_CONTROL_REQUEST) {
                    asked++;
                    const char *sub = cc_json_str(json_object_get(m.root, "request"), "subtype");
                    char *a = cc_stdin_answer_control(&m);
                    json_t *ans = json_loads(a, 0, NULL);
                    json_t *r = json_object_get(ans, "response");
                    assert_string_equal(cc_json_str(ans, "type"), "control_response");
                    assert_string_equal(cc_json_str(r, "request_id"),
                                        cc_json_str(m.root, "request_id"));
                    if (strcmp(sub, "can_use_tool") == 0) {
                        json_t *inner = json_object_get(r, "response");
                        assert_string_equal(cc_json_str(r, "subtype"), "success");
                        assert_string_equal(cc_json_str(inner, "behavior"), "deny");
                        assert_non_null(strstr(cc_json_str(inner, "message"), "--permission-mode"));
                    } else {
                        assert_string_equal(cc_json_str(r, "subtype"), "error");
                        assert_non_null(strstr(cc_json_str(r, "error"), sub));
                    }
                    json_decref(ans);
                    free(a);
                }
                cc_msg_clear(&m);
            }
            free(text);
            json_decref(w);
        }
        fclose(f);
    }
    free(line);
    assert_true(asked >= 4); /* hook callbacks and permission questions in both */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_batch_fixture),
        cmocka_unit_test(test_payloads_carry_the_contract_fields),
        cmocka_unit_test(test_errors_say_what_happened),
        cmocka_unit_test(test_result_description),
        cmocka_unit_test(test_thinking_text),
        cmocka_unit_test(test_interactive_transcripts),
        cmocka_unit_test(test_text_output),
        cmocka_unit_test(test_parse_errors_and_kinds),
        cmocka_unit_test(test_stdin_lines),
        cmocka_unit_test(test_control_requests_answered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
