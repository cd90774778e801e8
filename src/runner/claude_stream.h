/*
 * claude_stream.h - Claude Code's stream-json protocol: reading what the CLI prints on stdout and
 * writing what it reads on stdin (reference/CLAUDE-CODE.md).
 *
 * A line is decoded once, here, into a struct cc_msg, which the session loop, the message
 * stream and the tracer all read: every line that Claude Code itself would read (what
 * JavaScript's JSON.parse accepts) is decoded, with its text whole (see cc_msg_parse). Text
 * may hold U+0000: read strings with json_string_length(), not as C strings, wherever text
 * is passed on. Nothing here knows about processes or sockets.
 */
#ifndef CC_CLAUDE_STREAM_H
#define CC_CLAUDE_STREAM_H

#include <jansson.h>
#include <stddef.h>

enum cc_msg_kind {
    CC_MSG_UNKNOWN = 0,       /* a type this runner does not use (rate_limit_event, ...) */
    CC_MSG_SYSTEM,            /* init, api_retry, permission_denied, status, ... */
    CC_MSG_ASSISTANT,         /* one content block of a model response */
    CC_MSG_USER,              /* tool results (and interruption notices) */
    CC_MSG_STREAM_EVENT,      /* a raw SSE event (--include-partial-messages) */
    CC_MSG_RESULT,            /* the end of a turn */
    CC_MSG_CONTROL_REQUEST,   /* the CLI asks the host something; must be answered */
    CC_MSG_CONTROL_RESPONSE,  /* the CLI answers one of ours */
};

/* One parsed stdout line. Every pointer is borrowed from `root`, valid until
 * cc_msg_clear(). */
struct cc_msg {
    enum cc_msg_kind kind;
    json_t *root;                   /* owned */
    const char *type;               /* "type" ("" when missing) */
    const char *subtype;            /* "subtype" or NULL */
    const char *parent_tool_use_id; /* non-NULL inside a subagent */
    json_t *message;                /* "message" of assistant and user lines, else NULL */
    json_t *event;                  /* "event" of stream_event lines, else NULL */
    char damage[256];               /* "": a decoded line. Else this is a stand-in for a line
                                       that could not be decoded (cc_msg_standin), and this
                                       says so and why, in one printable line */
};

/* The fields of a result line that the runner uses (borrowed from the cc_msg). */
struct cc_result {
    int is_error;
    const char *subtype;          /* success, error_max_turns, error_during_execution, ... */
    const char *result;           /* the turn's final text, or NULL ... */
    size_t result_len;            /* ... of this many bytes (it may hold U+0000) */
    const char *stop_reason;      /* or NULL */
    const char *terminal_reason;  /* completed, aborted_streaming, ... or NULL */
    double total_cost_usd;        /* cumulative for the CLI process */
    long long duration_ms, duration_api_ms, num_turns;
    long long api_error_status;   /* 0 when none */
    json_t *usage;                /* this turn's usage object, or NULL */
    json_t *model_usage;          /* cumulative modelUsage, or NULL */
    const char *session_id;
};

/* Decodes one line as Claude Code, a JavaScript program, means it. Where jansson is
 * stricter than JavaScript's JSON.parse, the line is read as JavaScript reads it: an escaped
 * lone UTF-16 surrogate ("\ud83d", which JSON.stringify writes for a cut surrogate pair) is
 * U+FFFD; "\u0000" is a character of the text (and U+FFFD in an object key, which jansson
 * cannot hold); an integer beyond 64 bits is a real; a number beyond a double's range is null
 * (JSON.parse reads Infinity, which JSON.stringify writes as null). Beyond JSON.parse, and
 * costing nothing: bytes that are not UTF-8 are U+FFFD (as a decoder with replacement reads
 * them) and raw control characters inside strings are kept as characters.
 *
 * Returns 0 with m owning the document. When the line still cannot be decoded (err says why,
 * in one printable line: "column 5: ..."), returns 1 if it is recognisably a result or a
 * control request (m is then its stand-in, see cc_msg_standin), else -1 (m cleared). */
int cc_msg_parse(struct cc_msg *m, const char *line, size_t len, char *err, size_t errlen);

/* A stand-in for a line that cannot be decoded, made from what is known of it: its first
 * `head_len` and last `tail_len` bytes (the same whole line, or what lines.h kept of an
 * over-long one). When they show a result line, m becomes a result with is_error, no
 * subtype and as its text m->damage ("Claude Code's result line could not be read: WHY"), so
 * that the turn ends as failed instead of waiting for a result that will not come; when they
 * show a control request with its request_id, m becomes that request, which
 * cc_stdin_answer_control() answers with an error, so that Claude Code does not wait for an
 * answer. `why` is printable text. Returns 1 (m owns the stand-in), or 0 for any other line
 * or when out of memory (m cleared). */
int cc_msg_standin(struct cc_msg *m, const char *head, size_t head_len, const char *tail,
                   size_t tail_len, const char *why);

/* Frees what cc_msg_parse() took; accepts a cleared or zeroed cc_msg. */
void cc_msg_clear(struct cc_msg *m);

/* Fills r from a CC_MSG_RESULT. */
void cc_msg_result(const struct cc_msg *m, struct cc_result *r);

/* What went wrong in a failed turn, in one line for a user: the model API's HTTP status,
 * else what the subtype means (or the subtype and terminal reason), else the result text.
 * The message stream, the session's failure and the trace all say it this way. */
void cc_result_describe(const struct cc_result *r, char *buf, size_t len);

/* A bounded, printable rendering of `n` bytes of a line for a log line or a message:
 * printable ASCII and valid UTF-8 as they are, other bytes as \xNN (a backslash as \\),
 * cut with "..." to fit `outlen` bytes with the NUL. */
void cc_excerpt(char *out, size_t outlen, const char *s, size_t n);

/* json_dumps() without its final copy: jansson's builds the text in a buffer and returns
 * a copy of it, which for a 10 MB tool input is 10 MB more at the peak. The text, with
 * `extra` spare bytes after its NUL for the caller (a newline, say), and its length in
 * *len if len is not NULL; caller frees; NULL when out of memory or `v` is NULL. */
char *cc_json_dumps(const json_t *v, size_t flags, size_t extra, size_t *len);

/* Convenience readers that tolerate missing keys: the string or NULL, the integer or 0. */
const char *cc_json_str(const json_t *obj, const char *key);
/* The string at key, or `def` when it is missing or not a string. */
const char *cc_json_str_or(const json_t *obj, const char *key, const char *def);
long long cc_json_int(const json_t *obj, const char *key);
double cc_json_num(const json_t *obj, const char *key);

/* Lines for the CLI's stdin, each ending in '\n'. Caller frees; NULL when out of memory. */
char *cc_stdin_user_turn(const char *text);
char *cc_stdin_interrupt(const char *request_id);
/* Answer to a control request: `response` is borrowed (NULL: {}), or an error answer when
 * `error` is non-NULL. */
char *cc_stdin_control_response(const char *request_id, const json_t *response,
                                const char *error);

/* The answer this runner gives to a control request from the CLI (`m` is a
 * CC_MSG_CONTROL_REQUEST): permission questions are denied with a message naming the
 * permission mode setting (the session runs unattended), hook and MCP callbacks this runner
 * never registered get an error answer, and so does a stand-in for a request that could not
 * be read (m->damage). Caller frees the line. */
char *cc_stdin_answer_control(const struct cc_msg *m);

/* The text of a tool result's content as a new string value (caller decrefs; NULL when
 * memory ran out): the string itself, or a list's text blocks joined by newlines (images
 * and other blocks are named, not inlined). One reading for every consumer: the message
 * stream and the trace show the same text. */
json_t *cc_tool_result_text(json_t *content);

#endif
