/*
 * claude_stream.h - Claude Code's stream-json protocol: reading what the CLI prints on
 * stdout and writing what it reads on stdin (reference/CLAUDE-CODE.md).
 *
 * A line is decoded once, here, into a struct cc_msg of typed fields (content blocks, SSE
 * events, results, system lines, control messages), which the session loop, the message
 * stream and the tracer all read; none of them reads the JSON. Every line that Claude Code
 * itself would read (what JavaScript's JSON.parse accepts) is decoded, with its text whole
 * (see cc_msg_parse). Text may hold U+0000: read strings with json_string_length(), not as
 * C strings, wherever text is passed on. Nothing here knows about processes or sockets.
 */
#ifndef CC_CLAUDE_STREAM_H
#define CC_CLAUDE_STREAM_H

#include <jansson.h>
#include <stddef.h>

#include "cost.h"

enum cc_msg_kind {
    CC_MSG_UNKNOWN = 0,      /* a type this runner does not use (rate_limit_event, ...) */
    CC_MSG_SYSTEM,           /* init, api_retry, permission_denied, status, ... */
    CC_MSG_ASSISTANT,        /* one content block of a model response */
    CC_MSG_USER,             /* tool results (and interruption notices) */
    CC_MSG_STREAM_EVENT,     /* a raw SSE event (--include-partial-messages) */
    CC_MSG_RESULT,           /* the end of a turn */
    CC_MSG_CONTROL_REQUEST,  /* the CLI asks the host something; must be answered */
    CC_MSG_CONTROL_RESPONSE, /* the CLI answers one of ours */
};

/* One content block of an assistant or user line. */
enum cc_block_kind {
    CC_BLOCK_OTHER = 0, /* redacted_thinking, server tool blocks, the CLI's own notices */
    CC_BLOCK_TEXT,
    CC_BLOCK_THINKING,
    CC_BLOCK_TOOL_USE,
    CC_BLOCK_TOOL_RESULT,
};

struct cc_block {
    enum cc_block_kind kind;
    json_t *text;     /* TEXT, THINKING: the text, a string value (borrowed; NULL when missing);
                         TOOL_RESULT: its content as text (owned; see cc_tool_result_text) */
    const char *id;   /* TOOL_USE: its id; TOOL_RESULT: the tool use it answers ("" if none) */
    const char *name; /* TOOL_USE: the tool ("" when missing) */
    json_t *input;    /* TOOL_USE: its input (borrowed; NULL when missing) */
    int is_error;     /* TOOL_RESULT */
    json_t *raw;      /* the block as Claude Code wrote it: a model call's input or output is
                         passed on whole, never read */
};

/* A raw SSE event of the main agent's model call (--include-partial-messages). */
enum cc_sse_kind {
    CC_SSE_OTHER = 0,
    CC_SSE_MESSAGE_START,
    CC_SSE_BLOCK_DELTA,
    CC_SSE_MESSAGE_DELTA,
    CC_SSE_MESSAGE_STOP,
};

/* Which fields of a usage object were given (a message_delta gives only what changed). */
enum { CC_USAGE_IN = 1, CC_USAGE_OUT = 2, CC_USAGE_CR = 4, CC_USAGE_CW = 8 };

struct cc_sse {
    enum cc_sse_kind kind;
    const char *msg_id, *model; /* MESSAGE_START ("" when missing) */
    struct cc_usage usage;      /* MESSAGE_START, MESSAGE_DELTA */
    unsigned usage_has;         /* CC_USAGE_* */
    const char *stop_reason;    /* MESSAGE_DELTA, or NULL */
};

/* One model's cumulative numbers in a result's modelUsage. */
struct cc_model_usage {
    const char *model;
    struct cc_usage u;
    double cost_usd;
};

/* The fields of a result line. */
struct cc_result {
    int is_error;
    const char *subtype;         /* success, error_max_turns, error_during_execution, ... */
    const char *result;          /* the turn's final text, or NULL ... */
    size_t result_len;           /* ... of this many bytes (it may hold U+0000) */
    const char *stop_reason;     /* or NULL */
    const char *terminal_reason; /* completed, aborted_streaming, ... or NULL */
    double total_cost_usd;       /* cumulative for the CLI process */
    long long duration_ms, duration_api_ms, num_turns;
    long long api_error_status;    /* 0 when none */
    json_t *usage;                 /* this turn's usage object, relayed as it is, or NULL */
    struct cc_usage turn_usage;    /* its token counts (0 where missing) */
    struct cc_model_usage *models; /* cumulative modelUsage (owned by the cc_msg) ... */
    size_t nmodels;                /* ... this many; 0 when it has none */
    const char *session_id;
};

/* The fields of the system lines the runner uses (by subtype). */
struct cc_system {
    const char *version, *session_id, *model, *permission_mode;   /* init */
    const char *tool_use_id, *task_id;                            /* task_started */
    long long error_status, retry_delay_ms, attempt, max_retries; /* api_retry */
    const char *error;                                            /* api_retry, or NULL */
    const char *tool_name, *message;                              /* permission_denied, or NULL */
};

/* A control request from the CLI, or its answer to one of ours. */
struct cc_control {
    const char *request_id; /* or NULL */
    const char *subtype;    /* request: can_use_tool, ...; response: success or error */
    const char *tool_name;  /* can_use_tool, or NULL */
    const char *error;      /* an error response's reason, or NULL */
};

/* One stdout line, decoded once, here: the session loop, the message stream and the trace
 * read these typed fields, never the JSON. Every pointer is borrowed from the decoded
 * document and valid until cc_msg_clear(). */
struct cc_msg {
    enum cc_msg_kind kind;
    json_t *root;                   /* the document, owned (for the parser's own tests) */
    const char *type;               /* "type" ("" when missing) */
    const char *subtype;            /* "subtype" or NULL */
    const char *parent_tool_use_id; /* non-NULL inside a subagent */
    const char *agent_id;           /* the subagent's id on its lines, or NULL */
    /* ASSISTANT, USER */
    const char *msg_id;      /* the model response's id (assistant), or NULL */
    const char *request_id;  /* the API request's id (assistant), or NULL */
    int api_error;           /* a synthetic assistant line saying the API failed */
    struct cc_block *blocks; /* owned */
    size_t nblocks;
    struct cc_sse sse;       /* STREAM_EVENT */
    struct cc_result result; /* RESULT */
    struct cc_system sys;    /* SYSTEM */
    struct cc_control ctl;   /* CONTROL_REQUEST, CONTROL_RESPONSE */
    char damage[256];        /* "": a decoded line. Else this is a stand-in for a line
                                that could not be decoded (cc_msg_standin), and this
                                says so and why, in one printable line */
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
char *cc_stdin_control_response(const char *request_id, const json_t *response, const char *error);

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
