/*
 * input.c - parsing interactive input lines. Every malformed line gets a reason a user can
 * act on; nothing here ends a session by itself.
 */
#include "input.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cc_input_clear(struct cc_input *in)
{
    if (!in) return;
    free(in->text);
    memset(in, 0, sizeof *in);
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

static void invalid(struct cc_input *in, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void invalid(struct cc_input *in, const char *fmt, ...)
{
    va_list ap;
    in->kind = CC_IN_INVALID;
    va_start(ap, fmt);
    vsnprintf(in->why, sizeof in->why, fmt, ap);
    va_end(ap);
}

void cc_input_parse(const char *line, size_t len, struct cc_input *in)
{
    json_error_t je;
    memset(in, 0, sizeof *in);
    if (blank(line, len)) return;
    json_t *doc = json_loadb(line, len, 0, &je);
    if (!doc) {
        invalid(in,
                "input is not JSON (%.80s); send {\"type\":\"user_message\","
                "\"payload\":{\"content\":\"...\"}}",
                je.text);
        return;
    }
    const char *type = json_string_value(json_object_get(doc, "type"));
    if (!json_is_object(doc) || !type) {
        invalid(in, "input has no \"type\"; use user_message, interrupt or end_session");
    } else if (strcmp(type, "user_message") == 0) {
        json_t *payload = json_object_get(doc, "payload");
        json_t *c = json_object_get(payload, "content");
        if (!c) c = json_object_get(payload, "text");
        if (!json_is_string(c) || json_string_length(c) == 0)
            invalid(in, "user_message needs a non-empty string payload.content");
        else if (!(in->text = strdup(json_string_value(c))))
            invalid(in, "out of memory reading a user message");
        else
            in->kind = CC_IN_MESSAGE;
    } else if (strcmp(type, "interrupt") == 0) {
        in->kind = CC_IN_INTERRUPT;
    } else if (strcmp(type, "end_session") == 0 || strcmp(type, "terminate") == 0 ||
               strcmp(type, "stop") == 0) {
        in->kind = CC_IN_END;
    } else {
        invalid(in, "unknown input type \"%.60s\"; use user_message, interrupt or end_session",
                type);
    }
    json_decref(doc);
}
