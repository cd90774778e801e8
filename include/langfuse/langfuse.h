/*
 * langfuse.h - liblangfuse, a C client for Langfuse (and any OpenTelemetry trace backend).
 *
 * This header is the library's whole public API.
 *
 * The model: a client (lf_client) owns a bounded queue and one exporter thread. A trace is
 * started with lf_trace_start(), which returns its root observation; observations nest
 * under it with lf_obs_start(). Setters fill an observation, lf_obs_end() hands it to the
 * exporter and frees the handle.
 *
 * What Langfuse shows (right on both server lines in use, v4 and v3):
 *  - Each observation is exported exactly once, whole, when it ends: Langfuse v4 keeps every
 *    copy of a span as an observation of its own (tokens and cost counted again), so the
 *    library never sends one twice. An observation is visible in Langfuse within about
 *    flush_interval_ms of its end, not before; the root, ended last, completes the trace.
 *  - Trace attributes (lf_trace_set_*: name, session and user id, tags, metadata, release,
 *    environment) may be set through any handle of the trace and are copied onto every
 *    observation as it ends, since v4 reads them per observation: set them early (right
 *    after lf_trace_start) so that every observation carries them; one set later reaches
 *    only the observations that end later.
 *  - v4 takes a trace's input and output from its root observation: the root's own input
 *    and output if set, else the trace input and output (lf_trace_set_input_*), which the
 *    root then carries as its own.
 *  - Name a model (lf_obs_set_model) only together with usage and cost: v4 counts the
 *    tokens of any observation that names a model without usage, from its text, and prices
 *    them from its own table, so the trace's cost is no longer what was billed. Put the
 *    model in metadata where the numbers are not known.
 *  - The legacy transport (LF_TRANSPORT_INGESTION) is for v3 and older: v4 refuses its
 *    observation events. The library says so once on the log and counts them rejected. Recording
 * never waits on the network and never does I/O: setters copy bytes into the handle, lf_obs_end()
 * links it into the queue. Serialization, masking, redaction, compression, HTTP, retries and the
 * spool all happen on the exporter thread.
 *
 * Wire formats: OTLP/HTTP JSON (gzip) to /api/public/otel/v1/traces (the default; every
 * request carries x-langfuse-ingestion-version: 4, v4's real-time path), or the legacy
 * /api/public/ingestion batches.
 *
 * Failure: the API never fails loudly. A client whose configuration is missing or invalid
 * is created disabled (one warning on the log) and every call on it is a no-op. Functions
 * that return handles return NULL when the client is disabled, the trace is not sampled
 * or memory ran out; every function accepts NULL handles and does nothing with them, so
 * instrumented code needs no checks. Statistics (lf_client_stats) say what was dropped.
 *
 * Threads: any thread may record. One handle must not be used by two threads at once;
 * different handles of one trace may be used on different threads. The client itself is
 * thread-safe except lf_client_free().
 *
 * Strings are NUL-terminated UTF-8 unless a length is given; invalid UTF-8 is replaced by
 * U+FFFD on export, so any bytes yield valid JSON. Every string argument is copied: the
 * caller keeps ownership of what it passes.
 */
#ifndef LANGFUSE_H
#define LANGFUSE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define LF_EXPORT __attribute__((visibility("default")))
#else
#define LF_EXPORT
#endif

#define LF_VERSION_MAJOR 0
#define LF_VERSION_MINOR 2
#define LF_VERSION_PATCH 0
#define LF_VERSION_STRING "0.2.0"

/* Library version, "MAJOR.MINOR.PATCH". Static storage. */
LF_EXPORT const char *lf_version(void);

/* ---------------------------------------------------------------------------------------
 * Result codes. Functions that can fail return LF_OK (0) or a negative code.
 */
enum lf_err {
    LF_OK = 0,
    LF_ERR_NOMEM = -1,    /* an allocation failed */
    LF_ERR_INVALID = -2,  /* a bad argument or configuration value */
    LF_ERR_DISABLED = -3, /* the client is disabled (no keys, bad config, shut down) */
    LF_ERR_TIMEOUT = -4,  /* the deadline passed: what was left is spooled or counted lost */
    LF_ERR_IO = -5,       /* a file could not be read or written */
    LF_ERR_HTTP = -6,     /* the server refused or could not be reached */
    LF_ERR_PARSE = -7,    /* malformed input (JSON, spool file) */
};

/* A static, human-readable description of an lf_err code. */
LF_EXPORT const char *lf_strerror(int err);

/* ---------------------------------------------------------------------------------------
 * Configuration.
 */
enum lf_transport {
    LF_TRANSPORT_OTLP = 0,      /* POST /api/public/otel/v1/traces, OTLP/HTTP JSON */
    LF_TRANSPORT_INGESTION = 1, /* POST /api/public/ingestion, legacy event batches */
};

enum lf_log_level {
    LF_LOG_DEBUG = 0,
    LF_LOG_INFO = 1,
    LF_LOG_WARN = 2,
    LF_LOG_ERROR = 3,
};

/*
 * A log sink. Called from any thread (mostly the exporter's), never with a lock held that
 * recording needs. `msg` has no trailing newline, secrets are already redacted, and it is
 * borrowed for the duration of the call.
 */
typedef void (*lf_log_fn)(void *ud, enum lf_log_level level, const char *msg);

/*
 * A masking callback, applied on the exporter thread to every input, output and metadata
 * value before it is exported. `field` is "input", "output" or "metadata"; `value` (`len`
 * bytes, JSON text) is borrowed. Return NULL to keep the value, or a malloc'd NUL-terminated
 * JSON text to replace it: the library frees it. It must be thread-safe if shared.
 */
typedef char *(*lf_mask_fn)(void *ud, const char *field, const char *value, size_t len);

/*
 * Client configuration. Initialise with lf_config_init() (defaults) and optionally
 * lf_config_from_env(), then override fields. Strings are borrowed until lf_client_new()
 * returns: the client copies all of them.
 *
 * Growing safely: new fields are only ever added at the end, and lf_config_init() records
 * the size of the struct the caller was compiled with (struct_size), so a program built
 * against an older header keeps working with a newer library: the library reads and
 * writes only the fields that program knows, and gives the others their defaults. A struct
 * not set up by lf_config_init() gives a disabled client with a warning.
 */
struct lf_config {
    size_t struct_size;          /* set by lf_config_init(): sizeof the caller's struct */
    int enabled;                 /* 0: the client records nothing and sends nothing. Default 1. */
    const char *public_key;      /* pk-lf-...; required when enabled */
    const char *secret_key;      /* sk-lf-...; required when enabled; redacted everywhere */
    const char *host;            /* base URL, default "http://localhost:3000" (no trailing /api) */
    enum lf_transport transport; /* default LF_TRANSPORT_OTLP */
    double sample_rate;          /* 0..1, decided per trace on its id; default 1 */
    const char *environment;     /* langfuse.environment of every trace; NULL: none */
    const char *release;         /* release of every trace; NULL: none */
    const char *service_name;    /* OTLP resource service.name; default "liblangfuse" */

    int flush_at;             /* send when this many observations are queued; default 256 */
    int flush_interval_ms;    /* ... or when the oldest has waited this long; default 1000 */
    int request_timeout_ms;   /* one HTTP request's limit; default 10000 */
    int flush_timeout_ms;     /* default deadline of flush and shutdown; default 5000 */
    int max_retries;          /* retries of a request after the first try; default 6 */
    size_t max_queue_bytes;   /* cap on recorded, not yet encoded bytes in memory; default
                                 8 MiB. Past an eighth of it the exporter moves the queue to a
                                 spill file (in spool_dir, else $TMPDIR), so a burst costs
                                 disk rather than memory or data */
    size_t max_request_bytes; /* cap on one request body before gzip; default 1 MiB (what
                                 proxies in front of Langfuse commonly accept) */
    size_t max_event_bytes;   /* cap on one encoded observation; larger ones are truncated,
                                 largest field first; default 768 KiB */
    int gzip;                 /* compress request bodies; default 1 */

    const char *spool_dir;  /* where undeliverable batches go; NULL: no spool (counted lost) */
    size_t spool_max_bytes; /* cap on the spool's size; oldest dropped first; default 64 MiB */
    int spool_replay;       /* re-send the spool's files when the client starts; default 1 */

    int mask_messages; /* replace every input and output by "[masked]"; default 0 */
    lf_mask_fn mask;   /* optional, see lf_mask_fn */
    void *mask_ud;

    int debug;     /* log LF_LOG_DEBUG messages too; default 0 */
    lf_log_fn log; /* NULL: "langfuse: ..." lines on stderr */
    void *log_ud;

    /* A trace whose root is still open is journaled in spool_dir (a small file kept up to
     * date within flush_interval_ms of each change, claimed by this process). If the
     * process dies without ending the root (SIGKILL, the OOM killer, a crash), the next
     * client with that spool completes the trace: its root goes out at level ERROR with
     * this status message (and as its output, if the trace has none), ending at the last
     * end time known. Default "the program ended
     * without ending this trace". */
    const char *orphan_message;
};

/* Fills `cfg` with the defaults above. A macro, so that the size of the caller's struct is
 * passed along (see struct lf_config). */
#define lf_config_init(cfg) lf_config_init_size((cfg), sizeof(*(cfg)))
LF_EXPORT void lf_config_init_size(struct lf_config *cfg, size_t struct_size);

/*
 * Reads the LANGFUSE_* environment variables into `cfg` (see the README for the list):
 * LANGFUSE_ENABLED, LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, LANGFUSE_HOST
 * (LANGFUSE_BASE_URL), LANGFUSE_TRANSPORT, LANGFUSE_SAMPLE_RATE,
 * LANGFUSE_TRACING_ENVIRONMENT, LANGFUSE_RELEASE, LANGFUSE_FLUSH_AT,
 * LANGFUSE_FLUSH_INTERVAL (seconds), LANGFUSE_TIMEOUT (seconds), LANGFUSE_FLUSH_TIMEOUT
 * (seconds), LANGFUSE_SPOOL_DIR, LANGFUSE_MASK_MESSAGES, LANGFUSE_DEBUG, and
 * LANGFUSE_MAX_QUEUE_BYTES. A variable that is unset or empty leaves the field alone.
 * Strings point into the environment (borrowed while it is unchanged).
 *
 * LANGFUSE_ENABLED is only read if present: "true"/"1"/"yes" enable, "false"/"0"/"no"
 * disable. Returns LF_OK, or LF_ERR_INVALID with a one-line reason in `errbuf` naming the
 * variable, its value and what it takes; parsing stops at the first bad value and the
 * fields read so far stay set.
 */
LF_EXPORT int lf_config_from_env(struct lf_config *cfg, char *errbuf, size_t errlen);

/* ---------------------------------------------------------------------------------------
 * The client.
 */
typedef struct lf_client lf_client;

/*
 * Creates a client and starts its exporter thread. Never fails for a bad configuration:
 * an enabled config without keys, or with an invalid value, gives a disabled client and
 * one warning on the log. Returns NULL only when memory ran out. Free with
 * lf_client_free().
 */
LF_EXPORT lf_client *lf_client_new(const struct lf_config *cfg);

/* lf_config_init() + lf_config_from_env() + lf_client_new(); a bad variable disables the
 * client with one warning. */
LF_EXPORT lf_client *lf_client_new_from_env(void);

/* Nonzero if the client records and exports (configured, not shut down). */
LF_EXPORT int lf_client_enabled(const lf_client *c);

/*
 * Registers a value that must never leave the process: every exported string and every log
 * line has it replaced by "[REDACTED]". The client registers its own keys. There is no limit
 * on how many values are registered. Values shorter than 6 bytes are refused with
 * LF_ERR_INVALID (they would redact ordinary words). Takes effect for what is exported
 * after the call. If the value cannot be registered (LF_ERR_NOMEM), the client turns itself
 * off (lf_client_enabled() then says 0; one error on the log): nothing recorded afterwards
 * is exported, since the value could not be kept out of it.
 */
LF_EXPORT int lf_client_add_secret(lf_client *c, const char *value);

/*
 * Blocks until everything recorded before the call has been delivered, spooled or counted
 * lost, or until `timeout_ms` passed (negative: the configured flush_timeout_ms). Bounded
 * even against a server that accepts connections and never answers: what the deadline
 * leaves undelivered is spooled (or counted lost without a spool). Returns LF_OK when all
 * was delivered, LF_ERR_TIMEOUT otherwise, LF_ERR_DISABLED on a disabled client.
 */
LF_EXPORT int lf_client_flush(lf_client *c, int timeout_ms);

/*
 * Flushes within `timeout_ms` (negative: flush_timeout_ms), then stops the exporter thread.
 * Returns by the deadline (plus about 50 ms for the thread to wake and be joined), whatever
 * the machine's load: what could be neither sent nor spooled by then (a backlog too big to
 * encode in time) is counted in spool_dropped; an exporter thread that has not stopped by
 * then is detached and left to finish (LF_ERR_TIMEOUT), and lf_client_free() then keeps the
 * client's memory for it. Later recording on this client is counted as dropped. Idempotent.
 * Returns as lf_client_flush().
 */
LF_EXPORT int lf_client_shutdown(lf_client *c, int timeout_ms);

/*
 * Cuts a shutdown short, in progress or to come: its deadline becomes now plus the little
 * time needed to spool what is not delivered (at most 250 ms), and a request in flight is
 * given up. For a program told to stop while it flushes (a Pod deleted, a second Ctrl-C):
 * nothing is lost that the spool can keep, and the program ends at once. Thread-safe; not
 * async-signal-safe (call it from a thread that waits for signals, not from a handler).
 */
LF_EXPORT void lf_client_hurry(lf_client *c);

/* Shuts down (default deadline) if not done yet, and frees the client. Accepts NULL. Every
 * handle of the client must have been ended before. */
LF_EXPORT void lf_client_free(lf_client *c);

/*
 * Re-sends the spool's files now (blocking, within `timeout_ms`), deleting each one that
 * was delivered. Returns LF_OK when the spool is empty afterwards, else LF_ERR_TIMEOUT or
 * LF_ERR_HTTP. A client with spool_replay does this on its own in the background.
 */
LF_EXPORT int lf_client_replay_spool(lf_client *c, int timeout_ms);

/*
 * Counters since the client started, in observations (each is exported once). New
 * counters are only ever added at the end; lf_client_stats() writes only as much as the
 * caller's struct holds.
 */
struct lf_stats {
    uint64_t recorded;       /* exports accepted into the queue */
    uint64_t delivered;      /* exports the server accepted */
    uint64_t dropped_queue;  /* refused because the queue was at max_queue_bytes */
    uint64_t dropped_nomem;  /* lost to failed allocations */
    uint64_t dropped_closed; /* recorded after shutdown */
    uint64_t rejected;       /* refused by the server (400, 207 errors; on the legacy
                                transport, what a v4 server refuses, also spooled once) */
    uint64_t spooled;        /* written to the spool for a later run */
    uint64_t spool_dropped;  /* evicted from the full spool, lost without one, or left
                                unspooled when a shutdown's deadline passed */
    uint64_t replayed;       /* delivered from the spool (of an earlier run or this one) */
    uint64_t truncated;      /* exports shortened to fit max_event_bytes */
    uint64_t spilled;        /* moved to the spill file when the queue passed its memory mark */
    uint64_t requests;       /* HTTP requests made */
    uint64_t retries;        /* of which were retries */
    uint64_t queue_bytes;    /* bytes queued now */
    uint64_t queue_peak_bytes;
    int last_http_status; /* of the last answered request; 0 if none */
};

/* Copies the counters into `out`. Thread-safe. A NULL client gives zeros. A macro, so that
 * the size of the caller's struct is passed along. */
#define lf_client_stats(c, out) lf_client_stats_size((c), (out), sizeof(*(out)))
LF_EXPORT void lf_client_stats_size(const lf_client *c, struct lf_stats *out, size_t out_size);

/* ---------------------------------------------------------------------------------------
 * Traces and observations.
 */
enum lf_obs_type {
    LF_OBS_SPAN = 0,
    LF_OBS_GENERATION,
    LF_OBS_EVENT,
    LF_OBS_AGENT,
    LF_OBS_TOOL,
    LF_OBS_CHAIN,
    LF_OBS_RETRIEVER,
    LF_OBS_EVALUATOR,
    LF_OBS_EMBEDDING,
    LF_OBS_GUARDRAIL,
};

enum lf_level {
    LF_LEVEL_DEFAULT = 0,
    LF_LEVEL_DEBUG,
    LF_LEVEL_WARNING,
    LF_LEVEL_ERROR,
};

/* An observation being recorded. Owned by the caller until lf_obs_end() frees it. */
typedef struct lf_obs lf_obs;

/*
 * Starts a trace and returns its root observation (a span named `name`, which is also the
 * trace's name). `trace_id` is 32 lowercase hex digits to continue a known trace, or NULL
 * for a random one. Returns NULL when the client is disabled, the trace is not sampled, or
 * memory ran out; an invalid trace_id is replaced by a random one with a warning.
 */
LF_EXPORT lf_obs *lf_trace_start(lf_client *c, const char *name, const char *trace_id);

/* Starts an observation of `type` under `parent` (same trace). NULL parent: NULL. */
LF_EXPORT lf_obs *lf_obs_start(lf_obs *parent, enum lf_obs_type type, const char *name);

/* Sets the end time to now, copies in the trace's attributes, exports the observation (its
 * only export) and frees the handle. */
LF_EXPORT void lf_obs_end(lf_obs *o);

/* As lf_obs_end() with an explicit end time (Unix epoch nanoseconds). */
LF_EXPORT void lf_obs_end_at(lf_obs *o, int64_t end_ns);

/* Frees the handle without exporting (an observation abandoned). */
LF_EXPORT void lf_obs_discard(lf_obs *o);

/* Writes the observation id (16 hex digits + NUL) into out[17]; "" for NULL. */
LF_EXPORT void lf_obs_id(const lf_obs *o, char out[17]);
/* Writes the trace id (32 hex digits + NUL) into out[33]; "" for NULL. */
LF_EXPORT void lf_obs_trace_id(const lf_obs *o, char out[33]);

/* Current time as Unix epoch nanoseconds (the clock the library stamps with). */
LF_EXPORT int64_t lf_now_ns(void);

/*
 * Observation fields. A setter called twice keeps the last value; metadata, usage and cost
 * keep the last value per key. `json` arguments are JSON text (any JSON value); text that
 * is not valid JSON is exported as a string. Setters return nothing: a failed allocation
 * is counted (dropped_nomem) and the observation is exported without that field.
 */
LF_EXPORT void lf_obs_set_name(lf_obs *o, const char *name);
LF_EXPORT void lf_obs_set_start_time(lf_obs *o, int64_t start_ns);
LF_EXPORT void lf_obs_set_input_json(lf_obs *o, const char *json);
LF_EXPORT void lf_obs_set_input_string(lf_obs *o, const char *text);
LF_EXPORT void lf_obs_set_input_stringn(lf_obs *o, const char *text, size_t len);
LF_EXPORT void lf_obs_set_output_json(lf_obs *o, const char *json);
LF_EXPORT void lf_obs_set_output_string(lf_obs *o, const char *text);
LF_EXPORT void lf_obs_set_output_stringn(lf_obs *o, const char *text, size_t len);
LF_EXPORT void lf_obs_set_metadata_json(lf_obs *o, const char *key, const char *json);
LF_EXPORT void lf_obs_set_metadata_string(lf_obs *o, const char *key, const char *value);
LF_EXPORT void lf_obs_set_metadata_int(lf_obs *o, const char *key, int64_t value);
LF_EXPORT void lf_obs_set_metadata_double(lf_obs *o, const char *key, double value);
LF_EXPORT void lf_obs_set_metadata_bool(lf_obs *o, const char *key, int value);
LF_EXPORT void lf_obs_set_level(lf_obs *o, enum lf_level level);
LF_EXPORT void lf_obs_set_status_message(lf_obs *o, const char *message);
LF_EXPORT void lf_obs_set_version(lf_obs *o, const char *version);
/* Generation-like fields (any type may carry them; Langfuse shows them on generations). */
LF_EXPORT void lf_obs_set_model(lf_obs *o, const char *model);
LF_EXPORT void lf_obs_set_model_parameters_json(lf_obs *o, const char *json_object);
/* Usage, by Langfuse's keys: "input", "output", "total", "cache_read_input_tokens", ... */
LF_EXPORT void lf_obs_set_usage(lf_obs *o, const char *key, int64_t tokens);
/* Cost in USD by the same keys; send "total" (Langfuse does not derive it otherwise). */
LF_EXPORT void lf_obs_set_cost(lf_obs *o, const char *key, double usd);
/* Time of the first token (Unix epoch nanoseconds). */
LF_EXPORT void lf_obs_set_completion_start(lf_obs *o, int64_t when_ns);
LF_EXPORT void lf_obs_set_prompt(lf_obs *o, const char *name, int version);

/*
 * Trace fields. They may be set through any observation of the trace (normally the root
 * returned by lf_trace_start) and are carried by every observation of the trace that ends
 * afterwards (see the top of this header). Input and output go on the root only.
 */
LF_EXPORT void lf_trace_set_name(lf_obs *o, const char *name);
LF_EXPORT void lf_trace_set_session_id(lf_obs *o, const char *session_id);
LF_EXPORT void lf_trace_set_user_id(lf_obs *o, const char *user_id);
LF_EXPORT void lf_trace_set_input_json(lf_obs *o, const char *json);
LF_EXPORT void lf_trace_set_input_string(lf_obs *o, const char *text);
LF_EXPORT void lf_trace_set_output_json(lf_obs *o, const char *json);
LF_EXPORT void lf_trace_set_output_string(lf_obs *o, const char *text);
LF_EXPORT void lf_trace_set_metadata_json(lf_obs *o, const char *key, const char *json);
LF_EXPORT void lf_trace_set_metadata_string(lf_obs *o, const char *key, const char *value);
LF_EXPORT void lf_trace_set_metadata_int(lf_obs *o, const char *key, int64_t value);
LF_EXPORT void lf_trace_set_metadata_double(lf_obs *o, const char *key, double value);
LF_EXPORT void lf_trace_set_metadata_bool(lf_obs *o, const char *key, int value);
LF_EXPORT void lf_trace_add_tag(lf_obs *o, const char *tag);
LF_EXPORT void lf_trace_set_public(lf_obs *o, int is_public);
LF_EXPORT void lf_trace_set_version(lf_obs *o, const char *version);
LF_EXPORT void lf_trace_set_release(lf_obs *o, const char *release);
LF_EXPORT void lf_trace_set_environment(lf_obs *o, const char *environment);

#ifdef __cplusplus
}
#endif
#endif /* LANGFUSE_H */
