/*
 * message_stream.c - envelopes, their two stdout formats, and the mapping from Claude Code's
 * messages. An envelope is serialized once; stdout and the sink get the same bytes, so the
 * WebSocket and the log can never disagree about a seq. Text from Claude Code is passed on
 * as jansson strings, never as C strings: it may hold U+0000, which a C string would cut.
 */
#include "message_stream.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Text mode bounds what a single tool input or result prints; JSON mode never cuts. */
#define TEXT_MAX 2000

void cc_timestamp(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
}

void cc_out_init(struct cc_out *o, FILE *fp, enum cc_output format)
{
    memset(o, 0, sizeof *o);
    o->fp = fp;
    o->format = format;
}

/* Prints the n bytes of s, cut at TEXT_MAX bytes with a note of what was left out. */
static void put_bounded(FILE *fp, const char *s, size_t n)
{
    if (n <= TEXT_MAX) {
        fwrite(s, 1, n, fp);
        return;
    }
    size_t cut = TEXT_MAX;
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) /* keep UTF-8 whole */
        cut--;
    fwrite(s, 1, cut, fp);
    fprintf(fp, " ... (%zu more bytes)", n - cut);
}

/* The string at key, whole; "" when it is missing. */
static const char *text_at(const json_t *obj, const char *key, size_t *len)
{
    json_t *v = json_object_get(obj, key);
    *len = json_string_length(v);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* The readable transcript line of one envelope (--output text). */
static void put_text(FILE *fp, const char *ts, const char *type, const json_t *p)
{
    size_t n;
    const char *kind = cc_json_str(p, "type");
    fprintf(fp, "[%.8s] ", ts + 11);
    if (strcmp(type, "status.update") == 0) {
        fprintf(fp, "status %s: %s", cc_json_str_or(p, "phase", "?"),
                cc_json_str_or(p, "message", ""));
    } else if (strcmp(type, "agent.running") == 0) {
        fputs("agent running", fp);
    } else if (strcmp(type, "agent.waiting") == 0) {
        fputs("waiting for a user message", fp);
    } else if (strcmp(type, "system.message") == 0) {
        fprintf(fp, "system: %s", cc_json_str_or(p, "message", ""));
    } else if (kind && strcmp(kind, "text") == 0) {
        fputs("assistant: ", fp);
        const char *text = text_at(p, "content", &n);
        fwrite(text, 1, n, fp);
    } else if (kind && strcmp(kind, "thinking") == 0) {
        fputs("thinking: ", fp);
        const char *text = text_at(p, "content", &n);
        put_bounded(fp, text, n);
    } else if (kind && strcmp(kind, "tool_use") == 0) {
        char *in = cc_json_dumps(json_object_get(p, "tool_input"), JSON_COMPACT, 0, NULL);
        fprintf(fp, "tool %s ", cc_json_str_or(p, "tool_name", "?"));
        put_bounded(fp, in ? in : "", in ? strlen(in) : 0);
        free(in);
    } else if (kind && strcmp(kind, "tool_result") == 0) {
        fprintf(fp,
                "tool result%s: ", json_is_true(json_object_get(p, "is_error")) ? " (error)" : "");
        const char *text = text_at(p, "content", &n);
        put_bounded(fp, text, n);
    } else if (kind && strcmp(kind, "result") == 0) {
        json_t *cost = json_object_get(p, "cost");
        fprintf(fp, "result: %s%s in %lld ms, %lld turns", cc_json_str_or(p, "subtype", "?"),
                json_is_true(json_object_get(p, "is_error")) ? " (error)" : "",
                cc_json_int(p, "duration_ms"), cc_json_int(p, "num_turns"));
        if (json_is_number(cost)) fprintf(fp, ", $%.4f total", json_number_value(cost));
    } else if (kind && strcmp(kind, "error") == 0) {
        const char *text = text_at(p, "content", &n);
        fwrite(text, 1, n, fp);
    } else {
        char *s = cc_json_dumps(p, JSON_COMPACT, 0, NULL);
        fprintf(fp, "%s %s", type, s ? s : "");
        free(s);
    }
    fputc('\n', fp);
}

uint64_t cc_out_emit(struct cc_out *o, const char *type, json_t *payload)
{
    char ts[32];
    if (!payload) payload = json_object();
    if (!payload) return 0;
    cc_timestamp(ts);
    json_t *env = json_pack("{s:I, s:s, s:s, s:O}", "seq", (json_int_t)(o->seq + 1), "type", type,
                            "timestamp", ts, "payload", payload);
    size_t len;
    char *s = cc_json_dumps(env, JSON_COMPACT | JSON_REAL_PRECISION(15), 1, &len);
    if (!s) {
        json_decref(env);
        json_decref(payload);
        return 0;
    }
    o->seq++;
    if (o->fp) {
        if (o->format == CC_OUTPUT_TEXT)
            put_text(o->fp, ts, type, payload);
        else {
            s[len] = '\n';
            fwrite(s, 1, len + 1, o->fp);
            s[len] = '\0';
        }
        if (fflush(o->fp) != 0 && !o->write_failed) {
            o->write_failed = 1;
            fprintf(stderr, "ccrunner: stdout refused a write; the message stream continues "
                            "on the WebSocket only\n");
        }
    }
    if (o->sink) o->sink(o->sink_ctx, s, len);
    free(s);
    json_decref(env);
    json_decref(payload);
    return o->seq;
}

void cc_out_status(struct cc_out *o, const char *phase, const char *message)
{
    cc_out_emit(o, "status.update",
                json_pack("{s:s, s:s}", "phase", phase, "message", message ? message : ""));
}

void cc_out_running(struct cc_out *o)
{
    cc_out_emit(o, "agent.running", NULL);
}

void cc_out_waiting(struct cc_out *o)
{
    cc_out_emit(o, "agent.waiting", NULL);
}

void cc_out_system(struct cc_out *o, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cc_out_emit(o, "system.message", json_pack("{s:s}", "message", msg));
}

/* An error message's payload: "Error: " and the n bytes of text. */
static json_t *error_payload(const char *text, size_t n)
{
    static const char pre[] = "Error: ";
    char *s = malloc(sizeof pre - 1 + n);
    if (!s) return NULL;
    memcpy(s, pre, sizeof pre - 1);
    memcpy(s + sizeof pre - 1, text, n);
    json_t *content = json_stringn(s, sizeof pre - 1 + n);
    free(s);
    return json_pack("{s:s, s:s, s:o}", "role", "system", "type", "error", "content", content);
}

void cc_out_error(struct cc_out *o, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cc_out_emit(o, "agent.message", error_payload(msg, strlen(msg)));
}

/* Adds parent_tool_use_id to a payload of a subagent's message, so a reader can nest it. */
static json_t *nested(const struct cc_msg *m, json_t *payload)
{
    if (payload && m->parent_tool_use_id)
        json_object_set_new(payload, "parent_tool_use_id", json_string(m->parent_tool_use_id));
    return payload;
}

/* A block's text as a new reference (the same string value, whole), or "" when it has
 * none. */
static json_t *text_of(const struct cc_block *b)
{
    return b->text ? json_incref(b->text) : json_string("");
}

static int map_assistant(struct cc_out *o, const struct cc_msg *m)
{
    int n = 0;
    for (size_t i = 0; i < m->nblocks; i++) {
        const struct cc_block *b = &m->blocks[i];
        json_t *p;
        if (b->kind == CC_BLOCK_TEXT && m->api_error)
            p = b->text ? error_payload(json_string_value(b->text), json_string_length(b->text))
                        : error_payload("API error", 9);
        else if (b->kind == CC_BLOCK_TEXT)
            p = json_pack("{s:s, s:s, s:o}", "role", "assistant", "type", "text", "content",
                          text_of(b));
        else if (b->kind == CC_BLOCK_THINKING)
            p = json_pack("{s:s, s:s, s:o}", "role", "assistant", "type", "thinking", "content",
                          text_of(b));
        else if (b->kind == CC_BLOCK_TOOL_USE)
            p = json_pack("{s:s, s:s, s:s+, s:s, s:O, s:s}", "role", "assistant", "type",
                          "tool_use", "content", "Using tool: ", b->name[0] ? b->name : "?",
                          "tool_name", b->name, "tool_input", b->input ? b->input : json_null(),
                          "tool_use_id", b->id);
        else
            continue; /* redacted_thinking, server tool blocks: nothing a user reads */
        if (cc_out_emit(o, "agent.message", nested(m, p))) n++;
    }
    return n;
}

static int map_user(struct cc_out *o, const struct cc_msg *m)
{
    int n = 0;
    for (size_t i = 0; i < m->nblocks; i++) {
        const struct cc_block *b = &m->blocks[i];
        if (b->kind != CC_BLOCK_TOOL_RESULT)
            continue; /* the CLI's own notices ("[Request interrupted by user]") */
        json_t *p = json_pack("{s:s, s:s, s:O, s:s, s:b}", "role", "user", "type", "tool_result",
                              "content", b->text, "tool_use_id", b->id, "is_error", b->is_error);
        if (cc_out_emit(o, "agent.message", nested(m, p))) n++;
    }
    return n;
}

static int map_result(struct cc_out *o, const struct cc_msg *m)
{
    const struct cc_result *r = &m->result;
    int n = 0;
    /* API failures end as subtype "success" with is_error: the synthetic assistant line
     * already said what happened. Other failures would otherwise go unexplained, and so
     * would a stand-in for a result line that could not be read. */
    if (r->is_error && (m->damage[0] || (r->subtype && strcmp(r->subtype, "success") != 0))) {
        char why[300];
        cc_result_describe(r, why, sizeof why);
        cc_out_error(o, "%s", why);
        n++;
    }
    char content[64];
    snprintf(content, sizeof content, "Session completed in %lldms", r->duration_ms);
    json_t *p = json_pack("{s:s, s:s, s:s, s:O, s:f, s:I, s:I, s:b, s:s}", "role", "system", "type",
                          "result", "content", content, "usage", r->usage ? r->usage : json_null(),
                          "cost", r->total_cost_usd, "num_turns", (json_int_t)r->num_turns,
                          "duration_ms", (json_int_t)r->duration_ms, "is_error", r->is_error,
                          "subtype", r->subtype ? r->subtype : "");
    if (cc_out_emit(o, "agent.message", p)) n++;
    return n;
}

static int map_system(struct cc_out *o, const struct cc_msg *m)
{
    const char *sub = m->subtype ? m->subtype : "";
    const struct cc_system *y = &m->sys;
    if (strcmp(sub, "init") == 0) {
        if (o->init_seen) return 0;
        o->init_seen = 1;
        cc_out_system(o, "Claude Code %s started: model %s, permission mode %s",
                      y->version ? y->version : "(unknown version)",
                      y->model ? y->model : "(default)",
                      y->permission_mode ? y->permission_mode : "?");
        return 1;
    }
    if (strcmp(sub, "api_retry") == 0) {
        char what[64] = "no response";
        if (y->error_status) snprintf(what, sizeof what, "HTTP %lld", y->error_status);
        cc_out_system(o, "Model API error (%s%s%s); retrying in %.1f s, attempt %lld of %lld", what,
                      y->error ? ", " : "", y->error ? y->error : "",
                      (double)y->retry_delay_ms / 1000.0, y->attempt, y->max_retries);
        return 1;
    }
    if (strcmp(sub, "permission_denied") == 0) {
        cc_out_system(o, "Permission denied for %s: %s", y->tool_name ? y->tool_name : "a tool",
                      y->message ? y->message : "not allowed by the permission mode");
        return 1;
    }
    if (strcmp(sub, "compact_boundary") == 0) {
        cc_out_system(o, "Claude Code compacted the conversation to fit its context window");
        return 1;
    }
    return 0; /* status, thinking_tokens, task_* progress: not a user's concern */
}

int cc_out_claude(struct cc_out *o, const struct cc_msg *m)
{
    switch (m->kind) {
    case CC_MSG_ASSISTANT:
        return map_assistant(o, m);
    case CC_MSG_USER:
        return map_user(o, m);
    case CC_MSG_RESULT:
        return map_result(o, m);
    case CC_MSG_SYSTEM:
        return map_system(o, m);
    default:
        return 0;
    }
}
