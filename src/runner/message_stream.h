/*
 * message_stream.h - the message stream: what a session shows its user (SPEC.md, "The message
 * stream").
 *
 * Every message is an envelope {"seq","type","timestamp","payload"}; seq counts from 1
 * with no gaps, and the same envelope goes to stdout (as a JSON line, or a readable line
 * with --output text) and to an optional sink (the backend WebSocket). This module also
 * maps Claude Code's stdout messages to the stream's messages.
 */
#ifndef CC_MESSAGE_STREAM_H
#define CC_MESSAGE_STREAM_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "options.h"
#include "claude_stream.h"

/* Receives each envelope as one JSON text (no newline), borrowed for the call. */
typedef void (*cc_out_sink_fn)(void *ctx, const char *json, size_t len);

struct cc_out {
    FILE *fp; /* stdout; borrowed */
    enum cc_output format;
    uint64_t seq;        /* of the last envelope */
    cc_out_sink_fn sink; /* optional second destination */
    void *sink_ctx;
    int write_failed; /* stdout refused a write: reported once */
    int init_seen;    /* Claude Code's init was announced (it repeats every turn) */
};

void cc_out_init(struct cc_out *o, FILE *fp, enum cc_output format);

/* Emits one envelope; takes ownership of `payload` (NULL means {}). Returns its seq, or 0
 * when the payload could not be built (out of memory; nothing is emitted, no seq used). */
uint64_t cc_out_emit(struct cc_out *o, const char *type, json_t *payload);

/* The fixed messages. */
void cc_out_status(struct cc_out *o, const char *phase, const char *message);
void cc_out_running(struct cc_out *o);
void cc_out_waiting(struct cc_out *o);
void cc_out_system(struct cc_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cc_out_error(struct cc_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Maps one Claude Code message to zero or more stream messages: text, thinking, tool uses,
 * tool results, the result, API errors, retries and permission denials. Control and
 * stream_event lines map to nothing (the session loop handles them). Returns how many
 * messages were emitted. */
int cc_out_claude(struct cc_out *o, const struct cc_msg *m);

/* RFC 3339 UTC with milliseconds of the real-time clock: "2026-11-24T10:00:00.123Z". */
void cc_timestamp(char out[32]);

#endif
