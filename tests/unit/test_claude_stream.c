/* test_stream.c - Claude Code's stream-json, parsed and mapped to the message stream, on
 * real captured output (tests/fixtures/claude-code-2.1.328 and its sibling -escapes): what a
 * user sees for every kind of message, the envelope's shape, the stdin lines, and the answers
 * to control requests. Decoding: every line JavaScript's JSON.parse reads is read, its text
 * whole (lone surrogates, U+0000, big numbers, bytes that are not UTF-8), and a line that
 * still cannot be read leaves no session waiting (a stand-in result or control request). */
#include "cm.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "message_stream.h"
#include "claude_stream.h"

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
            text = owned =
                json_is_string(l) ? strdup(json_string_value(l)) : json_dumps(l, JSON_COMPACT);
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
    assert_int_equal(regcomp(&ts,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    out[0] = '\0';
    char *copy = strndup(m->buf, m->len), *save = NULL;
    long long expect_seq = 1;
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_error_t je;
        json_t *env = json_loads(l, JSON_ALLOW_NUL, &je);
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
        if (json_is_true(json_object_get(p, "is_error"))) strcat(out, "!");
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
    json_t *env = json_loadb(p, strcspn(p, "\n"), JSON_ALLOW_NUL, NULL);
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
    r = (struct cc_result){
        .is_error = 1, .subtype = "success", .result = "Credit balance is too low"};
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
            if (strcmp(cc_json_str(w, "dir"), "out") == 0 &&
                json_is_object(json_object_get(w, "line")) &&
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

/* ---- decoding as JavaScript reads -------------------------------------------------------- */

#define FFFD "\xEF\xBF\xBD"

/* Decodes `line` (n bytes) and returns the value at key "v" (a new reference). */
static json_t *decoded_v(const char *line, size_t n)
{
    struct cc_msg m;
    char err[200];
    int rc = cc_msg_parse(&m, line, n, err, sizeof err);
    if (rc != 0) fail_msg("not decoded (%s): %.*s", err, (int)n, line);
    assert_string_equal(m.damage, "");
    json_t *v = json_incref(json_object_get(m.root, "v"));
    cc_msg_clear(&m);
    assert_non_null(v);
    return v;
}

/* The string at "v" of {"type":"x","v":"<body>"} is exactly the `want_len` bytes of want. */
static void expect_text(const char *body, size_t body_len, const char *want, size_t want_len)
{
    char line[512];
    int n = snprintf(line, sizeof line, "{\"type\":\"x\",\"v\":\"");
    memcpy(line + n, body, body_len);
    memcpy(line + n + body_len, "\"}", 2);
    json_t *v = decoded_v(line, (size_t)n + body_len + 2);
    assert_true(json_is_string(v));
    if (json_string_length(v) != want_len || memcmp(json_string_value(v), want, want_len) != 0)
        fail_msg("\"%.*s\" decoded as %zu bytes \"%.*s\", want %zu", (int)body_len, body,
                 json_string_length(v), (int)json_string_length(v), json_string_value(v), want_len);
    json_decref(v);
}

#define TEXT(body, want) expect_text(body, sizeof body - 1, want, sizeof want - 1)

/* Every escape and byte that JavaScript's JSON.parse reads (node 20 agrees with each line
 * here), and jansson alone refuses, is read: lone surrogates as U+FFFD, U+0000 kept. */
static void test_strings_read_as_javascript_reads_them(void **state)
{
    (void)state;
    TEXT("\\ud83d", FFFD);                                  /* a lone high surrogate */
    TEXT("\\uD83D", FFFD);                                  /* ... in capitals */
    TEXT("\\ude00", FFFD);                                  /* a lone low surrogate */
    TEXT("a\\ud83d", "a" FFFD);                             /* ... at the end */
    TEXT("\\ud83dx", FFFD "x");                             /* ... before a character */
    TEXT("\\ud83d\\u0041", FFFD "A");                       /* ... before another escape */
    TEXT("\\ud83d\\n", FFFD "\n");                          /* ... before a short escape */
    TEXT("\\ud83d\\ud83d\\ude00", FFFD "\xF0\x9F\x98\x80"); /* a lone one, then a pair */
    TEXT("\\ude00\\ud83d", FFFD FFFD);                      /* a pair in the wrong order */
    TEXT("\\ud83d\\ude00", "\xF0\x9F\x98\x80");             /* a proper pair stays one */
    TEXT("x\\u0000y", "x\0y");                              /* U+0000 is a character */
    TEXT("\\\\ud83d \\ud83d", "\\ud83d " FFFD);             /* an escaped backslash is no escape */
    TEXT("\\\"\\ud83d\\\"", "\"" FFFD "\"");                /* nor is an escaped quote an end */
    /* raw control characters: JSON.parse refuses them, but they cost nothing to keep */
    TEXT("a\x01"
         "b\tc",
         "a\x01"
         "b\tc");
    TEXT("a\0b", "a\0b"); /* a raw NUL byte too */
    /* bytes that are not UTF-8: one U+FFFD per maximal invalid subpart, as TextDecoder
     * (and Claude Code reading a tool's output) replaces them */
    TEXT("[\xff]", "[" FFFD "]");
    TEXT("[\xed\xa0\xbd]", "[" FFFD FFFD FFFD "]"); /* an encoded surrogate (CESU-8) */
    TEXT("[\xf0\x9f\x98]", "[" FFFD "]");           /* a cut sequence */
    TEXT("[\xc3(]", "[" FFFD "(]");
    TEXT("[\xc0\xaf]", "[" FFFD FFFD "]");                   /* an overlong form */
    TEXT("[\xf4\x90\x80\x80]", "[" FFFD FFFD FFFD FFFD "]"); /* above U+10FFFF */
    TEXT("ok \xc3\xa9 \xf0\x9f\x98\x80 \\ud83d", "ok \xc3\xa9 \xf0\x9f\x98\x80 " FFFD);
}

/* Keys and numbers: jansson cannot hold U+0000 in a key (U+FFFD there), and JavaScript reads
 * integers beyond 64 bits as numbers (JSON.stringify(1e20) writes one) and numbers beyond a
 * double as Infinity (null when written again). */
static void test_keys_and_numbers_read_as_javascript_reads_them(void **state)
{
    (void)state;
    struct cc_msg m;
    char err[200];
    const char key[] = "{\"type\":\"x\",\"k\\u0000\":\"\\u0000\",\"w\":\"\\ud83d\"}";
    assert_int_equal(cc_msg_parse(&m, key, sizeof key - 1, err, sizeof err), 0);
    json_t *v = json_object_get(m.root, "k" FFFD);
    assert_non_null(v);
    assert_int_equal(json_string_length(v), 1); /* in a value, U+0000 stays */
    cc_msg_clear(&m);

    const char big[] = "{\"type\":\"x\",\"v\":[100000000000000000000,-99999999999999999999,"
                       "9223372036854775807,-9223372036854775808,1e400,-1e400,1e-400,"
                       "\"\\ud83d\"]}";
    v = decoded_v(big, sizeof big - 1);
    assert_true(json_is_real(json_array_get(v, 0)));
    assert_true(json_real_value(json_array_get(v, 0)) == 1e20);
    assert_true(json_real_value(json_array_get(v, 1)) == -1e20);
    assert_true(json_is_integer(json_array_get(v, 2))); /* what fits stays an integer */
    assert_true(json_integer_value(json_array_get(v, 2)) == INT64_MAX);
    assert_true(json_integer_value(json_array_get(v, 3)) == INT64_MIN);
    assert_true(json_is_null(json_array_get(v, 4)));
    assert_true(json_is_null(json_array_get(v, 5)));
    assert_true(json_is_real(json_array_get(v, 6)));
    json_decref(v);
}

/* `before`, arrays nested deeper than jansson reads (2048 levels; JavaScript reads any
 * depth), `after`; caller frees. */
static char *deep_line(const char *before, const char *after, size_t *len)
{
    const int depth = 3000;
    size_t n = strlen(before) + strlen(after) + 2 * (size_t)depth + 1;
    char *s = malloc(n), *p = s;
    p += sprintf(p, "%s", before);
    memset(p, '[', depth);
    p += depth;
    memset(p, ']', depth);
    p += depth;
    p += sprintf(p, "%s", after);
    *len = (size_t)(p - s);
    return s;
}

/* The result line of the captured run, with its permission_denials nested too deep to
 * decode: a result that cannot be read. Caller frees. */
static char *unreadable_result(size_t *len)
{
    static const char key[] = "\"permission_denials\":";
    char path[512], *line = NULL;
    size_t cap = 0;
    snprintf(path, sizeof path,
             "%s/../claude-code-2.1.328-escapes/batch_lone_surrogate_nul.stdout.jsonl", FIXTURES);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (getline(&line, &cap, f) > 0 && !strstr(line, "\"type\":\"result\""))
        ;
    fclose(f);
    char *at = strstr(line, "\"permission_denials\":[]");
    assert_non_null(at);
    at[sizeof key - 1] = '\0'; /* the line up to the key, [] replaced by 3000 levels */
    char *out = deep_line(line, at + sizeof key - 1 + 2, len);
    free(line);
    return out;
}

/* A line that cannot be decoded even so is reported (printably, whatever bytes it holds),
 * and when it is a result it ends the turn as failed, saying why, in the stream too; a
 * control request gets an error answer. No such line can leave a session waiting. */
static void test_unreadable_lines(void **state)
{
    (void)state;
    struct cc_msg m;
    char err[200];
    size_t len;
    assert_int_equal(cc_msg_parse(&m, "not json \xff\x01", 11, err, sizeof err), -1);
    assert_non_null(strstr(err, "column 3: '[' or '{' expected"));
    for (const char *p = err; *p; p++) /* printable: "near" quotes the line */
        assert_true(*p >= 0x20 && *p < 0x7f);
    assert_null(m.root);

    char *deep = deep_line("{\"type\":\"assistant\",\"x\":", "}", &len);
    assert_int_equal(cc_msg_parse(&m, deep, len, err, sizeof err), -1);
    assert_non_null(strstr(err, "maximum parsing depth"));
    free(deep);

    /* a result */
    deep = unreadable_result(&len);
    assert_int_equal(cc_msg_parse(&m, deep, len, err, sizeof err), 1);
    assert_int_equal(m.kind, CC_MSG_RESULT);
    assert_non_null(strstr(m.damage, "Claude Code's result line could not be read: column"));
    struct cc_result r = m.result;
    assert_true(r.is_error);
    assert_null(r.subtype);
    char why[300];
    cc_result_describe(&r, why, sizeof why);
    assert_string_equal(why, m.damage);
    /* in the stream: the error, then a failed result */
    char *buf = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&buf, &blen);
    struct cc_out o;
    cc_out_init(&o, f, CC_OUTPUT_JSONL);
    assert_int_equal(cc_out_claude(&o, &m), 2);
    fclose(f);
    assert_non_null(
        strstr(buf, "\"content\":\"Error: Claude Code's result line could not be read"));
    assert_non_null(strstr(buf, "\"type\":\"result\""));
    assert_non_null(strstr(buf, "\"is_error\":true"));
    free(buf);
    cc_msg_clear(&m);
    free(deep);

    /* a control request: answered with an error, under its id */
    deep = deep_line("{\"type\":\"control_request\",\"request_id\":\"req-7\",\"request\":"
                     "{\"subtype\":\"can_use_tool\",\"input\":",
                     "}}", &len);
    assert_int_equal(cc_msg_parse(&m, deep, len, err, sizeof err), 1);
    assert_int_equal(m.kind, CC_MSG_CONTROL_REQUEST);
    char *answer = cc_stdin_answer_control(&m);
    json_t *a = json_loads(answer, 0, NULL);
    json_t *resp = json_object_get(a, "response");
    assert_string_equal(cc_json_str(resp, "subtype"), "error");
    assert_string_equal(cc_json_str(resp, "request_id"), "req-7");
    assert_non_null(strstr(cc_json_str(resp, "error"), "control request could not be read"));
    json_decref(a);
    free(answer);
    cc_msg_clear(&m);
    free(deep);
}

/* An over-long line is known by what lines.h keeps of it: its first bytes show "type" on
 * every line but a result, which writes it after its text, near its end. */
static void test_standin_from_head_and_tail(void **state)
{
    (void)state;
    struct cc_msg m;
    size_t len;
    char *line = unreadable_result(&len);
    size_t tail_len = len < 8192 ? len : 8192;
    const char *tail = line + len - tail_len;
    assert_null(memmem(line, 512, "\"type\"", 6)); /* only the tail shows it */
    assert_int_equal(cc_msg_standin(&m, line, 512, tail, tail_len, "its 9 bytes are over"), 1);
    assert_int_equal(m.kind, CC_MSG_RESULT);
    assert_string_equal(m.damage,
                        "Claude Code's result line could not be read: its 9 bytes are over");
    cc_msg_clear(&m);
    /* the tail alone is not enough: a line must start as an object */
    assert_int_equal(cc_msg_standin(&m, "xx", 2, tail, tail_len, "why"), 0);
    assert_null(m.root);
    free(line);

    /* an assistant line whose tool input holds "type":"result" is not a result */
    const char *a = "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"tool_use\","
                    "\"input\":{\"type\":\"result\"}}]}}";
    assert_int_equal(cc_msg_standin(&m, a, 40, a, strlen(a), "why"), 0);
    /* nor is a line whose nested "type" comes first */
    const char *n = "{\"x\":{\"type\":\"result\"},\"type\":\"user\"}";
    assert_int_equal(cc_msg_standin(&m, n, strlen(n), n, strlen(n), "why"), 0);
    /* a control request, by its first bytes */
    const char *c =
        "{\"type\":\"control_request\",\"request_id\":\"r-1\",\"request\":{\"subtype\":";
    assert_int_equal(cc_msg_standin(&m, c, strlen(c), c, strlen(c), "why"), 1);
    assert_int_equal(m.kind, CC_MSG_CONTROL_REQUEST);
    assert_string_equal(cc_json_str(m.root, "request_id"), "r-1");
    cc_msg_clear(&m);
    /* ... and without its id there is nothing to answer */
    const char *noid = "{\"type\":\"control_request\",\"request\":{\"subtype\":";
    assert_int_equal(cc_msg_standin(&m, noid, strlen(noid), noid, strlen(noid), "why"), 0);
    /* why is cut to fit, never inside a UTF-8 sequence (jansson would refuse the text) */
    for (int shift = 0; shift < 4; shift++) {
        char why[700] = "";
        memset(why, 'x', (size_t)shift);
        for (int i = 0; i < 100; i++)
            strcat(why, "\xF0\x9F\x98\x80\xc3\xa9");
        const char *r = "{\"type\":\"result\"";
        assert_int_equal(cc_msg_standin(&m, r, strlen(r), r, strlen(r), why), 1);
        assert_true(strlen(m.damage) > 240);
        assert_string_equal(cc_json_str(m.root, "result"), m.damage);
        cc_msg_clear(&m);
    }
}

/* The captured run whose text holds lone surrogates and U+0000, and whose tool printed a NUL
 * and bytes that are not UTF-8: every line decoded, every text whole in the envelopes (the
 * NUL relayed as \u0000), and whole in what the trace is given (the cc_msg; the result's
 * text with its length). */
static void test_captured_text_is_whole(void **state)
{
    (void)state;
    static const char first[] =
        "first: lone high [" FFFD "] nul [\0] lone low [" FFFD "] pair [\xF0\x9F\x98\x80] end";
    static const char final[] =
        "final: lone high [" FFFD "] nul [\0] lone low [" FFFD "] pair [\xF0\x9F\x98\x80] end";
    static const char tool[] = "a\0b [" FFFD FFFD FFFD "] c [" FFFD "]";
    const char *name = "../claude-code-2.1.328-escapes/batch_lone_surrogate_nul.stdout.jsonl";
    struct mapped mp;
    map_fixture(name, CC_OUTPUT_JSONL, &mp);
    assert_string_equal(codes(&mp), "sys text tool_use tool_result text result");
    assert_int_equal(mp.lines_in, 28);
    struct {
        int at;
        const char *want;
        size_t len;
    } texts[] = {
        {2, first, sizeof first - 1}, {4, tool, sizeof tool - 1}, {5, final, sizeof final - 1}};
    for (size_t i = 0; i < 3; i++) {
        json_t *p = payload_at(&mp, texts[i].at);
        json_t *content = json_object_get(p, "content");
        assert_int_equal(json_string_length(content), texts[i].len);
        assert_memory_equal(json_string_value(content), texts[i].want, texts[i].len);
        json_decref(p);
    }
    /* on the wire: valid UTF-8, the NUL escaped */
    assert_non_null(
        strstr(mp.buf, "\"content\":\"final: lone high [" FFFD "] nul [\\u0000] lone low"));
    assert_non_null(strstr(mp.buf, "\"content\":\"a\\u0000b [" FFFD FFFD FFFD "] c [" FFFD "]\""));
    mapped_free(&mp);

    /* the text transcript prints the text whole */
    map_fixture(name, CC_OUTPUT_TEXT, &mp);
    assert_non_null(memmem(mp.buf, mp.len, final, sizeof final - 1));
    assert_non_null(memmem(mp.buf, mp.len, tool, sizeof tool - 1));
    mapped_free(&mp);

    /* what the trace is given: the decoded result, its text whole */
    char path[512], *line = NULL, err[200];
    size_t cap = 0;
    snprintf(path, sizeof path, "%s/%s", FIXTURES, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int results = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        struct cc_msg m;
        assert_int_equal(cc_msg_parse(&m, line, (size_t)n, err, sizeof err), 0);
        if (m.kind == CC_MSG_RESULT) {
            struct cc_result r = m.result;
            assert_false(r.is_error);
            assert_int_equal(r.result_len, sizeof final - 1);
            assert_memory_equal(r.result, final, sizeof final - 1);
            results++;
        }
        cc_msg_clear(&m);
    }
    assert_int_equal(results, 1);
    free(line);
    fclose(f);
}

/* cc_excerpt: bounded, printable, UTF-8 kept whole. */
static void test_excerpt(void **state)
{
    (void)state;
    char out[16];
    cc_excerpt(out, sizeof out, "ab\0c\\\xff\xc3\xa9", 8); /* 15 bytes: it fits */
    assert_string_equal(out, "ab\\x00c\\\\\\xff\xc3\xa9");
    cc_excerpt(out, sizeof out, "0123456789abcdefghij", 20);
    assert_string_equal(out, "0123456789ab...");
    cc_excerpt(out, sizeof out, "0123456789abcde", 15);
    assert_string_equal(out, "0123456789abcde");
    cc_excerpt(out, 8, "\x01\x02\x03", 3);
    assert_string_equal(out, "\\x01...");
}

/* Decodes one line that must decode. */
static void parse_ok(struct cc_msg *m, const char *line)
{
    char err[200];
    assert_int_equal(cc_msg_parse(m, line, strlen(line), err, sizeof err), 0);
}

static void test_lines_decode_into_typed_fields(void **state)
{
    (void)state;
    struct cc_msg m;
    parse_ok(
        &m,
        "{\"type\":\"assistant\",\"request_id\":\"req_1\",\"parent_tool_use_id\":\"toolu_A\","
        "\"agent_id\":\"ag1\",\"message\":{\"id\":\"msg_1\",\"content\":["
        "{\"type\":\"text\",\"text\":\"a\\u0000b\"},{\"type\":\"thinking\",\"thinking\":\"hm\"},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"Bash\",\"input\":{\"command\":\"ls\"}"
        "},"
        "{\"type\":\"redacted_thinking\",\"data\":\"x\"},{\"type\":\"text\"}]}}");
    assert_int_equal(m.kind, CC_MSG_ASSISTANT);
    assert_string_equal(m.msg_id, "msg_1");
    assert_string_equal(m.request_id, "req_1");
    assert_string_equal(m.parent_tool_use_id, "toolu_A");
    assert_string_equal(m.agent_id, "ag1");
    assert_false(m.api_error);
    assert_int_equal(m.nblocks, 5);
    assert_int_equal(m.blocks[0].kind, CC_BLOCK_TEXT);
    assert_int_equal(json_string_length(m.blocks[0].text), 3); /* U+0000 kept */
    assert_int_equal(m.blocks[1].kind, CC_BLOCK_THINKING);
    assert_string_equal(json_string_value(m.blocks[1].text), "hm");
    assert_int_equal(m.blocks[2].kind, CC_BLOCK_TOOL_USE);
    assert_string_equal(m.blocks[2].id, "toolu_1");
    assert_string_equal(m.blocks[2].name, "Bash");
    assert_string_equal(cc_json_str(m.blocks[2].input, "command"), "ls");
    assert_int_equal(m.blocks[3].kind, CC_BLOCK_OTHER);
    assert_non_null(m.blocks[3].raw);
    assert_int_equal(m.blocks[4].kind, CC_BLOCK_TEXT);
    assert_null(m.blocks[4].text);
    cc_msg_clear(&m);

    /* a tool result whose content is a list: its text, once, for every consumer */
    parse_ok(&m, "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":["
                 "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\",\"is_error\":true,"
                 "\"content\":[{\"type\":\"text\",\"text\":\"one\"},{\"type\":\"image\"},"
                 "{\"type\":\"text\",\"text\":\"two\"}]},{\"type\":\"text\",\"text\":\"[Request "
                 "interrupted by user]\"}]}}");
    assert_int_equal(m.kind, CC_MSG_USER);
    assert_int_equal(m.nblocks, 2);
    assert_int_equal(m.blocks[0].kind, CC_BLOCK_TOOL_RESULT);
    assert_string_equal(m.blocks[0].id, "toolu_1");
    assert_true(m.blocks[0].is_error);
    assert_string_equal(json_string_value(m.blocks[0].text), "one\n[image]\ntwo");
    assert_true(json_is_array(json_object_get(m.blocks[0].raw, "content")));
    cc_msg_clear(&m);

    /* SSE events: what was given of a usage, and what was not */
    parse_ok(&m, "{\"type\":\"stream_event\",\"event\":{\"type\":\"message_start\",\"message\":"
                 "{\"id\":\"msg_2\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":3,"
                 "\"output_tokens\":1}}}}");
    assert_int_equal(m.kind, CC_MSG_STREAM_EVENT);
    assert_int_equal(m.sse.kind, CC_SSE_MESSAGE_START);
    assert_string_equal(m.sse.msg_id, "msg_2");
    assert_string_equal(m.sse.model, "claude-x");
    assert_int_equal(m.sse.usage_has, CC_USAGE_IN | CC_USAGE_OUT);
    assert_int_equal(m.sse.usage.in, 3);
    cc_msg_clear(&m);
    parse_ok(&m, "{\"type\":\"stream_event\",\"event\":{\"type\":\"message_delta\",\"delta\":"
                 "{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":42,"
                 "\"cache_read_input_tokens\":7}}}");
    assert_int_equal(m.sse.kind, CC_SSE_MESSAGE_DELTA);
    assert_int_equal(m.sse.usage_has, CC_USAGE_OUT | CC_USAGE_CR);
    assert_int_equal(m.sse.usage.out, 42);
    assert_int_equal(m.sse.usage.cr, 7);
    assert_string_equal(m.sse.stop_reason, "tool_use");
    cc_msg_clear(&m);
    parse_ok(&m, "{\"type\":\"stream_event\",\"event\":{\"type\":\"content_block_delta\"}}");
    assert_int_equal(m.sse.kind, CC_SSE_BLOCK_DELTA);
    cc_msg_clear(&m);
    parse_ok(&m, "{\"type\":\"stream_event\",\"event\":{\"type\":\"ping\"}}");
    assert_int_equal(m.sse.kind, CC_SSE_OTHER);
    cc_msg_clear(&m);

    /* a result and its modelUsage */
    parse_ok(&m,
             "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"ok\","
             "\"total_cost_usd\":0.5,\"num_turns\":2,\"usage\":{\"input_tokens\":1},"
             "\"modelUsage\":{\"claude-a\":{\"inputTokens\":10,\"outputTokens\":20,"
             "\"cacheReadInputTokens\":30,\"cacheCreationInputTokens\":40,\"costUSD\":0.25},"
             "\"claude-b\":{\"inputTokens\":1,\"costUSD\":0.25}}}");
    assert_int_equal(m.kind, CC_MSG_RESULT);
    assert_string_equal(m.result.subtype, "success");
    assert_int_equal(m.result.num_turns, 2);
    assert_true(json_is_object(m.result.usage));
    assert_int_equal(m.result.nmodels, 2);
    assert_string_equal(m.result.models[0].model, "claude-a");
    assert_int_equal(m.result.models[0].u.cw, 40);
    assert_true(m.result.models[0].cost_usd == 0.25);
    assert_string_equal(m.result.models[1].model, "claude-b");
    assert_int_equal(m.result.models[1].u.out, 0);
    cc_msg_clear(&m);

    /* system lines and control messages */
    parse_ok(&m,
             "{\"type\":\"system\",\"subtype\":\"api_retry\",\"error_status\":529,"
             "\"error\":\"overloaded\",\"attempt\":2,\"max_retries\":10,\"retry_delay_ms\":1200}");
    assert_int_equal(m.kind, CC_MSG_SYSTEM);
    assert_int_equal(m.sys.error_status, 529);
    assert_string_equal(m.sys.error, "overloaded");
    assert_int_equal(m.sys.attempt, 2);
    assert_int_equal(m.sys.retry_delay_ms, 1200);
    cc_msg_clear(&m);
    parse_ok(&m, "{\"type\":\"system\",\"subtype\":\"task_started\",\"task_id\":\"ag9\","
                 "\"tool_use_id\":\"toolu_9\"}");
    assert_string_equal(m.sys.task_id, "ag9");
    assert_string_equal(m.sys.tool_use_id, "toolu_9");
    cc_msg_clear(&m);
    parse_ok(&m, "{\"type\":\"control_response\",\"response\":{\"subtype\":\"error\","
                 "\"request_id\":\"r-2\",\"error\":\"no such request\"}}");
    assert_int_equal(m.kind, CC_MSG_CONTROL_RESPONSE);
    assert_string_equal(m.ctl.request_id, "r-2");
    assert_string_equal(m.ctl.subtype, "error");
    assert_string_equal(m.ctl.error, "no such request");
    cc_msg_clear(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_batch_fixture),
        cmocka_unit_test(test_lines_decode_into_typed_fields),
        cmocka_unit_test(test_payloads_carry_the_contract_fields),
        cmocka_unit_test(test_errors_say_what_happened),
        cmocka_unit_test(test_result_description),
        cmocka_unit_test(test_thinking_text),
        cmocka_unit_test(test_interactive_transcripts),
        cmocka_unit_test(test_text_output),
        cmocka_unit_test(test_parse_errors_and_kinds),
        cmocka_unit_test(test_stdin_lines),
        cmocka_unit_test(test_control_requests_answered),
        cmocka_unit_test(test_strings_read_as_javascript_reads_them),
        cmocka_unit_test(test_keys_and_numbers_read_as_javascript_reads_them),
        cmocka_unit_test(test_unreadable_lines),
        cmocka_unit_test(test_standin_from_head_and_tail),
        cmocka_unit_test(test_captured_text_is_whole),
        cmocka_unit_test(test_excerpt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
