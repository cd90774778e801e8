/*
 * testutil.h - helpers shared by the C tests: child servers, HTTP with JSON, temp dirs.
 *
 * Servers are started on 127.0.0.1 with port 0 and report "READY <port>" on stdout; every
 * wait is bounded, and tu_server_stop() always reaps what tu_server_start() started. A server
 * is killed when the thread that started it ends (PR_SET_PDEATHSIG): start servers from the
 * test's main thread.
 */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

struct tu_server {
    pid_t pid;
    int port;
    char base[64]; /* "http://127.0.0.1:PORT" */
};

/* Starts argv (argv[0] is looked up in PATH) and waits up to timeout_ms for READY. 0 or -1. */
int tu_server_start(struct tu_server *s, char *const argv[], int timeout_ms);
/* SIGTERM, up to 3 s, then SIGKILL; always reaps. */
void tu_server_stop(struct tu_server *s);

/* Starts the Langfuse test receiver with keys pk-lf-test / sk-lf-test-secret, behaving as a
 * Langfuse server of `langfuse_version` (3 or 4). */
int tu_receiver_start(struct tu_server *s, int langfuse_version);
/* The same over HTTPS with a certificate and key (PEM files; NULL: plain HTTP); base is
 * https:// then. */
int tu_receiver_start_tls(struct tu_server *s, int langfuse_version, const char *cert,
                          const char *key);
#define TU_PK "pk-lf-test"
#define TU_SK "sk-lf-test-secret"

/*
 * An HTTP request with an optional JSON body; returns the parsed JSON answer (NULL if not
 * JSON) and the status in *status. `userpwd` may be NULL. The raw body is kept in *raw if
 * raw is non-NULL (caller frees).
 */
json_t *tu_http(const char *method, const char *url, const char *userpwd, const char *body,
                long *status, char **raw, size_t *raw_len);
/* GET base+path with the test keys; asserts nothing, returns NULL on failure. */
json_t *tu_get(const struct tu_server *s, const char *path, long *status);

/* Clears what the receiver stored and its failure mode; 0 or -1. */
int tu_receiver_reset(const struct tu_server *s);
/* Every observation row of trace `trace_id` that a Langfuse v4 receiver lists (its v2
 * observations API, every field group), as a new JSON array; NULL on failure. */
json_t *tu_v4_rows(const struct tu_server *s, const char *trace_id);
/* POST base+path with a JSON body (no auth). */
json_t *tu_post(const struct tu_server *s, const char *path, const char *json, long *status);

/* Polls `pred` every 20 ms until it is true or timeout_ms passed. Returns the last value. */
int tu_wait_until(int (*pred)(void *), void *arg, int timeout_ms);

/* A fresh directory under $TMPDIR; caller frees. tu_rmrf removes a tree. */
char *tu_mkdtemp(const char *prefix);
void tu_rmrf(const char *path);

/* Milliseconds on the monotonic clock. */
long long tu_now_ms(void);

/*
 * What a loaded machine (CI's 2 cores, both busy) may add to a time the library promises,
 * such as shutdown's deadline: a thread's wake-up and its turn on a core. A test asserts
 * promise + TU_SLACK_MS, and keeps what it means to catch (a request timeout, a backlog
 * spooled past the deadline) well above that.
 */
#define TU_SLACK_MS 300

/* 1 in a ThreadSanitizer build (scripts/test.sh --tsan), else 0. */
#if defined(__SANITIZE_THREAD__)
#define TU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TU_TSAN 1
#endif
#endif
#ifndef TU_TSAN
#define TU_TSAN 0
#endif

#endif
