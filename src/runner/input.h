/*
 * input.h - interactive input: the JSON lines a user (stdin) or the backend (WebSocket)
 * sends to a session (SPEC.md): user messages, interrupt, end of session.
 */
#ifndef CC_INPUT_H
#define CC_INPUT_H

#include <stddef.h>

enum cc_input_kind {
    CC_IN_NONE = 0,  /* a blank line: nothing to do */
    CC_IN_MESSAGE,   /* a user message; text holds it */
    CC_IN_INTERRUPT, /* interrupt the running turn */
    CC_IN_END,       /* end the session */
    CC_IN_INVALID,   /* malformed: why says what was wrong */
};

struct cc_input {
    enum cc_input_kind kind;
    char *text;    /* CC_IN_MESSAGE: the message (owned; cc_input_clear frees) */
    char why[200]; /* CC_IN_INVALID: one sentence for a system.message */
};

/* Parses one line: {"type":"user_message","payload":{"content":TEXT}} ("text" accepted
 * for "content"), {"type":"interrupt"}, {"type":"end_session"} ("terminate", "stop"). */
void cc_input_parse(const char *line, size_t len, struct cc_input *in);
void cc_input_clear(struct cc_input *in);

#endif
