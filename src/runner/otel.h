/*
 * otel.h - Claude Code's own telemetry, received on loopback.
 *
 * Claude Code exports log events over OTLP when told to (CLAUDE-CODE.md, last section). One of
 * them, `claude_code.api_request`, reports each model API call it made, subagent calls
 * included, with exact tokens and cost; stream-json never shows a subagent's calls. This
 * module is the receiving end: a small HTTP/1.1 server on 127.0.0.1 in a thread of its own,
 * the environment that points the CLI at it, and a bounded queue of decoded events that the
 * session drains when cc_otel_fd() is readable. It never takes over telemetry the user set
 * up for themselves (cc_otel_user_configured()).
 *
 * What Claude Code 2.1.328 sends (observed offline against the scripted model server; the
 * captures are in tests/fixtures/claude-code-otel/, with how they were made):
 * - `POST` to OTEL_EXPORTER_OTLP_LOGS_ENDPOINT taken as the full URL (a URL without a path
 *   gets the posts at `/`); only OTEL_EXPORTER_OTLP_ENDPOINT has `/v1/logs` appended.
 *   Headers: `Content-Type: application/json`, `User-Agent: OTel-OTLP-Exporter-JavaScript/
 *   0.208.0`, `Connection: keep-alive` (one connection for the whole run), a
 *   `Content-Length` (never chunked, no `Expect`), the headers of
 *   OTEL_EXPORTER_OTLP_HEADERS, and `Content-Encoding: gzip` only when
 *   OTEL_EXPORTER_OTLP_[LOGS_]COMPRESSION=gzip. The per-signal variables win over the
 *   generic ones for the protocol and the compression; for headers the two lists are merged
 *   and the generic one wins on a name both set.
 * - Answers: 200 ends it; 400 and 401 are not retried and print nothing; 503 is retried
 *   with backoff (a slower exit), so this receiver never answers it.
 * - The body is OTLP JSON: resourceLogs[].scopeLogs[] (scope `com.anthropic.claude_code.events`)
 *   .logRecords[], each with `timeUnixNano` and `observedTimeUnixNano` as decimal strings
 *   (equal), `body.stringValue` = `claude_code.<event>`, and attributes as OTLP AnyValues:
 *   strings as stringValue, integers as intValue JSON *numbers*, cost_usd as a doubleValue
 *   number printed in shortest round-trip form (0.025240199999999997), some numbers as
 *   strings (tool_result's duration_ms). No severity. Every record has `session.id`,
 *   `event.name`, `event.sequence` (per process, in emission order) and, inside a prompt,
 *   `prompt.id`; subagent records have `agent_id`.
 * - `claude_code.api_request`, logged when a call ends (timeUnixNano = its end): model,
 *   input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens (and
 *   cache_creation_5m_tokens / _1h_tokens), cost_usd, cost_usd_micros (rounded: do not
 *   add), duration_ms, ttft_ms, request_id (the `request-id` response header, which
 *   stream-json's assistant lines carry as `request_id`), speed, query_source (`sdk` for the
 *   main thread under -p or stream-json input; `agent:builtin:general-purpose` for a
 *   subagent), and for a subagent agent.name and agent_id (the `x-claude-code-agent-id`
 *   request header).
 * - `claude_code.api_error`: only for the call that finally failed, not for each retried
 *   attempt (a 500 followed by a success gives no api_error at all): model, error (the
 *   message), status_code (intValue), duration_ms (of the last attempt), attempt (its
 *   number: retries + 1), request_id, speed, query_source.
 * - `claude_code.api_retries_exhausted`, right after that api_error: model, error,
 *   status_code, total_attempts, total_retry_duration_ms, speed, query_source.
 * - Timing, OTEL_LOGS_EXPORT_INTERVAL=200: an event arrives 5-240 ms after its
 *   timeUnixNano; in batch mode the last post arrives 30-40 ms before the CLI exits, and
 *   interactively the export after a turn's last call can come up to ~0.2 s after the
 *   turn's `result` line (the final one is flushed at exit).
 * - A `settings.json` "env" block wins over the process environment: telemetry configured
 *   there goes where it says, and this receiver then gets nothing (nor takes anything).
 * These are Claude Code's names, not a stable interface: a session must work without any
 * event arriving.
 */
#ifndef CC_OTEL_H
#define CC_OTEL_H

#include <stddef.h>
#include <stdint.h>

struct cc_otel;

enum cc_otel_kind {
    CC_OTEL_API_REQUEST,       /* claude_code.api_request: one model call that succeeded */
    CC_OTEL_API_ERROR,         /* claude_code.api_error: a call that failed for good */
    CC_OTEL_RETRIES_EXHAUSTED, /* claude_code.api_retries_exhausted: follows that error */
};

/* One decoded log record. Strings are NUL-terminated, cut to fit, "" when absent; numbers
 * are 0 when absent unless said otherwise. Integer attributes are read whether they come as
 * JSON numbers or decimal strings; doubles from a JSON number (integer or real, parsed once
 * by jansson with strtod: the double Claude Code printed, exactly) or a string. */
struct cc_otel_event {
    enum cc_otel_kind kind;
    char request_id[128];  /* the API's request-id; "" if absent */
    char agent_id[128];    /* the subagent's id; "" for the main agent */
    char query_source[64]; /* "sdk" (main thread), "agent:builtin:<type>", ... */
    char prompt_id[128];   /* prompt.id */
    char session_id[128];  /* session.id: Claude Code's session id */
    char model[128];
    long long input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens;
    double cost_usd;    /* as Claude Code billed it (api_request) */
    double duration_ms; /* api_request / api_error: duration_ms; retries_exhausted:
                         * total_retry_duration_ms; -1 when absent */
    double ttft_ms;     /* api_request: time to first token; -1 when absent */
    int64_t time_ns;    /* timeUnixNano (else observedTimeUnixNano), epoch ns: for
                         * api_request the call's end; 0 when absent */
    long long sequence; /* event.sequence: Claude Code's emission order; -1 absent */
    int status_code;    /* api_error / retries_exhausted: the HTTP status, else 0 */
    char error[256];    /* api_error / retries_exhausted: the message */
    int attempt;        /* api_error: attempt; retries_exhausted: total_attempts */
};

struct cc_otel_stats {
    uint64_t requests;     /* POSTs accepted (answered 200) */
    uint64_t unauthorized; /* answered 401: token missing or wrong (the body is not decoded) */
    uint64_t bad;          /* answered another 4xx: malformed request, wrong path, method or
                            * media type, chunked, too large, too slow (408), a body that is
                            * not OTLP logs JSON */
    uint64_t records;      /* log records in accepted requests */
    uint64_t events;       /* api_* events queued */
    uint64_t dropped;      /* api_* events lost: the queue was full, or memory ran out */
    uint64_t connections;  /* connections accepted */
    uint64_t refused;      /* connections closed at once: not from loopback, or no slot */
};

/*
 * Starts listening on 127.0.0.1, on a port the kernel picks, with a fresh random token
 * (256 bits from getrandom), and starts the receiver thread (all signals blocked in it).
 * Returns NULL with a one-line err when the socket, the token or the thread cannot be had.
 * Free with cc_otel_stop().
 */
struct cc_otel *cc_otel_start(char *err, size_t errlen);

/* The port it listens on. */
int cc_otel_port(const struct cc_otel *o);

/*
 * The environment Claude Code needs to send its log events here: NULL-terminated
 * "NAME=value" strings to set (over the inherited environment) in the child, owned by o and
 * valid until cc_otel_stop(). Logs only, OTLP http/json (the per-signal protocol is set too:
 * it would win), the full endpoint URL, the token as `Authorization: Bearer` in
 * OTEL_EXPORTER_OTLP_HEADERS (the generic list wins over a user's per-signal one), a 200 ms
 * export interval, a 1 s shutdown timeout; no content logging variable is set. The strings
 * hold the token: do not log them.
 */
const char *const *cc_otel_env(const struct cc_otel *o);

/* Readable while events wait (for the session's poll); drain with cc_otel_next(). */
int cc_otel_fd(const struct cc_otel *o);

/* Takes the next event, oldest first, into *ev: 1, or 0 when none waits. Never blocks on
 * the network (a mutex held only for queue operations). */
int cc_otel_next(struct cc_otel *o, struct cc_otel_event *ev);

/* A snapshot of the counters. */
void cc_otel_stats(struct cc_otel *o, struct cc_otel_stats *st);

/* Stops the thread (within a few ms, whatever its connections are doing), closes every
 * socket, wipes the token and frees everything, events not taken included. Accepts NULL. */
void cc_otel_stop(struct cc_otel *o);

/*
 * Nonzero when the user's environment already sets up Claude Code's own telemetry export;
 * ccrunner then leaves it alone (no receiver, no variable set) and relies on stream-json.
 * The rule, any of:
 * - CLAUDE_CODE_ENABLE_TELEMETRY is set to anything but "", "0", "false", "no", "off"
 *   (the user turned telemetry on, its exporters may come from settings files);
 * - OTEL_LOGS_EXPORTER, OTEL_METRICS_EXPORTER or OTEL_TRACES_EXPORTER is set to anything
 *   but "" or "none" (our "none" and "otlp" would replace it);
 * - OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_LOGS_ENDPOINT,
 *   OTEL_EXPORTER_OTLP_METRICS_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set and
 *   not empty (an OTLP destination was chosen).
 * Other OTEL_* variables (headers, protocol, compression, resource attributes) are inert
 * without these and do not count; the ones that would change our export are overridden by
 * cc_otel_env(), and gzip is accepted. Erring towards "configured" costs only the per-call
 * detail of subagent calls; erring the other way would reroute the user's telemetry.
 */
int cc_otel_user_configured(void);

#endif
