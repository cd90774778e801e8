/*
 * stream.c - parsing Claude Code's stdout lines and composing its stdin lines.
 *
 * Parsing is strict about JSON (a line that is not a JSON object is reported, with line
 * and column from jansson) and lenient about shape: any key may be missing, any type may be
 * new, and readers return NULL or 0 rather than fail, because the CLI adds fields and
 * message types between releases.
 */
#include "stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *type;
    enum cc_msg_kind kind;
} kinds[] = {
    {"system", CC_MSG_SYSTEM},
    {"assistant", CC_MSG_ASSISTANT},
    {"user", CC_MSG_USER},
    {"stream_event", CC_MSG_STREAM_EVENT},
    {"result", CC_MSG_RESULT},
    {"control_request", CC_MSG_CONTROL_REQUEST},
    {"control_response", CC_MSG_CONTROL_RESPONSE},
};

const char *cc_json_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* What a failed result's subtype means to a user, or NULL for one not known here. */
static const char *subtype_text(const char *subtype)
{
    if (strcmp(subtype, "error_max_turns") == 0)
        return "Claude Code reached the maximum number of turns (--max-turns)";
    if (strcmp(subtype, "error_max_budget_usd") == 0)
        return "Claude Code reached its budget limit";
    if (strcmp(subtype, "error_during_execution") == 0)
        return "the turn was interrupted or failed during execution";
    return NULL;
}

void cc_result_describe(const struct cc_result *r, char *buf, size_t len)
{
    if (r->api_error_status)
        snprintf(buf, len, "the model API failed with HTTP %lld", r->api_error_status);
    else if (r->subtype && strcmp(r->subtype, "success") != 0 && subtype_text(r->subtype))
        snprintf(buf, len, "%s (%s)", subtype_text(r->subtype), r->subtype);
    else if (r->subtype && strcmp(r->subtype, "success") != 0)
        snprintf(buf, len, "the turn ended with %s%s%s", r->subtype,
                 r->terminal_reason ? ": " : "", r->terminal_reason ? r->terminal_reason : "");
    else
        snprintf(buf, len, "%.200s", r->result ? r->result : "the turn failed");
}

const char *cc_json_str_or(const json_t *obj, const char *key, const char *def)
{
    const char *v = cc_json_str(obj, key);
    return v ? v : def;
}

long long cc_json_int(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        return (long long)json_integer_value(v);
    if (json_is_real(v))
        return (long long)json_real_value(v);
    return 0;
}

double cc_json_num(const json_t *obj, const char *key)
{
    return json_number_value(json_object_get(obj, key));
}

int cc_msg_parse(struct cc_msg *m, const char *line, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    memset(m, 0, sizeof *m);
    m->root = json_loadb(line, len, JSON_ALLOW_NUL, &je);
    if (!m->root) {
        snprintf(err, errlen, "column %d: %s", je.column, je.text);
        return -1;
    }
    if (!json_is_object(m->root)) {
        snprintf(err, errlen, "not a JSON object");
        cc_msg_clear(m);
        return -1;
    }
    m->type = cc_json_str(m->root, "type");
    if (!m->type)
        m->type = "";
    m->subtype = cc_json_str(m->root, "subtype");
    m->parent_tool_use_id = cc_json_str(m->root, "parent_tool_use_id");
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(m->type, kinds[i].type) == 0) {
            m->kind = kinds[i].kind;
            break;
        }
    if (m->kind == CC_MSG_ASSISTANT || m->kind == CC_MSG_USER) {
        m->message = json_object_get(m->root, "message");
        if (!json_is_object(m->message))
            m->message = NULL;
    } else if (m->kind == CC_MSG_STREAM_EVENT) {
        m->event = json_object_get(m->root, "event");
        if (!json_is_object(m->event))
            m->event = NULL;
    }
    return 0;
}

void cc_msg_clear(struct cc_msg *m)
{
    if (!m)
        return;
    json_decref(m->root);
    memset(m, 0, sizeof *m);
}

void cc_msg_result(const struct cc_msg *m, struct cc_result *r)
{
    const json_t *o = m->root;
    memset(r, 0, sizeof *r);
    r->is_error = json_is_true(json_object_get(o, "is_error"));
    r->subtype = m->subtype;
    r->result = cc_json_str(o, "result");
    r->stop_reason = cc_json_str(o, "stop_reason");
    r->terminal_reason = cc_json_str(o, "terminal_reason");
    r->total_cost_usd = cc_json_num(o, "total_cost_usd");
    r->duration_ms = cc_json_int(o, "duration_ms");
    r->duration_api_ms = cc_json_int(o, "duration_api_ms");
    r->num_turns = cc_json_int(o, "num_turns");
    r->api_error_status = cc_json_int(o, "api_error_status");
    r->usage = json_object_get(o, "usage");
    if (!json_is_object(r->usage))
        r->usage = NULL;
    r->model_usage = json_object_get(o, "modelUsage");
    if (!json_is_object(r->model_usage))
        r->model_usage = NULL;
    r->session_id = cc_json_str(o, "session_id");
}

/* Serializes and appends the newline; steals `doc`. */
static char *line_of(json_t *doc)
{
    if (!doc)
        return NULL;
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (!line) {
        free(s);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    return line;
}

char *cc_stdin_user_turn(const char *text)
{
    return line_of(json_pack("{s:s, s:{s:s, s:s}, s:n, s:s}", "type", "user", "message", "role",
                             "user", "content", text, "parent_tool_use_id", "session_id", ""));
}

char *cc_stdin_interrupt(const char *request_id)
{
    return line_of(json_pack("{s:s, s:s, s:{s:s}}", "type", "control_request", "request_id",
                             request_id, "request", "subtype", "interrupt"));
}

char *cc_stdin_control_response(const char *request_id, const json_t *response,
                                const char *error)
{
    json_t *inner;
    if (error)
        inner = json_pack("{s:s, s:s, s:s}", "subtype", "error", "request_id", request_id,
                          "error", error);
    else
        inner = json_pack("{s:s, s:s, s:o}", "subtype", "success", "request_id", request_id,
                          "response", response ? json_deep_copy(response) : json_object());
    if (!inner)
        return NULL;
    return line_of(json_pack("{s:s, s:o}", "type", "control_response", "response", inner));
}

char *cc_stdin_answer_control(const struct cc_msg *m)
{
    const char *id = cc_json_str(m->root, "request_id");
    json_t *req = json_object_get(m->root, "request");
    const char *sub = cc_json_str(req, "subtype");
    if (!id)
        return NULL; /* nothing to answer to */
    if (sub && strcmp(sub, "can_use_tool") == 0) {
        const char *tool = cc_json_str(req, "tool_name");
        char msg[300];
        snprintf(msg, sizeof msg,
                 "ccrunner runs unattended and cannot ask for permission to use %.100s; "
                 "allow it with --permission-mode (PERMISSION_MODE)",
                 tool ? tool : "this tool");
        json_t *deny = json_pack("{s:s, s:s}", "behavior", "deny", "message", msg);
        char *line = cc_stdin_control_response(id, deny, NULL);
        json_decref(deny);
        return line;
    }
    char msg[200];
    snprintf(msg, sizeof msg, "ccrunner does not support control request %.100s",
             sub ? sub : "(no subtype)");
    return cc_stdin_control_response(id, NULL, msg);
}
