/*
 * otel.c - the loopback OTLP/HTTP JSON logs receiver (see otel.h for what Claude Code sends).
 *
 * One thread owns the listening socket and up to MAX_CONNS connections and multiplexes them
 * with poll(), so a slow or stuck sender holds only its own slot, never the others. Every
 * state has a deadline: a request must arrive whole (head and body) and be answered within
 * REQUEST_MS of its first byte, a kept-alive connection may idle IDLE_MS, a connection we
 * close after refusing a request is drained for at most LINGER_MS. The thread decodes each
 * accepted body with jansson into plain structs and queues those (no JSON object leaves the
 * thread); the session takes them with cc_otel_next() when cc_otel_fd() is readable.
 *
 * Why HTTP by hand: libwebsockets (already linked) can serve HTTP, but its timeouts count
 * whole seconds, its log level is process-wide (ws.c sets it), and refusing a request before
 * its body means working around its body handling. What is needed here is one endpoint, one
 * method, Content-Length bodies (the CLI's exporter never chunks), answers of a few bytes:
 * some 450 lines with poll(), every limit visible below. Gzip is libdeflate's, as the library's.
 */
#include "otel.h"

#include "clock.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include <libdeflate.h>

#define OTEL_PATH "/v1/logs"
#define MAX_CONNS 16   /* the CLI uses one; the rest is room for strays */
#define HEAD_MAX 16384 /* request line and headers */
#define BODY_MAX                                                                                   \
    (8u << 20)          /* a body, before and after gunzip (a full batch of 512 records            \
                           of the CLI's is under 1 MiB) */
#define REQUEST_MS 5000 /* from a request's first byte to its answer written */
#define IDLE_MS                                                                                    \
    60000              /* a kept-alive connection between requests: long, because                  \
                          closing one as the client reuses it loses a batch */
#define LINGER_MS 500  /* reading what a refused sender still sends, then close */
#define QUEUE_MAX 4096 /* events waiting for the session (about 1.3 KiB each) */
#define TOKEN_BYTES 32

enum conn_state {
    C_HEAD,   /* reading a request line and headers (or idle between requests) */
    C_BODY,   /* reading the body: into body, or discarded when the answer is known */
    C_WRITE,  /* writing the answer */
    C_LINGER, /* answered with Connection: close; draining what still comes, then close */
};

struct conn {
    int fd;
    enum conn_state state;
    long long deadline;  /* monotonic ms: when this state has run out of time */
    uint64_t idle_since; /* when it last became idle, in o->idle_clock ticks */
    size_t head_len;     /* bytes in head: a request's head, or what came after a body */
    size_t body_len;     /* the request's Content-Length */
    size_t body_got;     /* of it, received */
    unsigned char *body; /* NULL while discarding */
    int status;          /* the answer decided from the head; 0: decided by the body */
    int gzip;            /* Content-Encoding: gzip */
    int close_after;     /* Connection: close, HTTP/1.0, or the body is not read */
    char out[512];       /* the answer */
    size_t out_len, out_off;
    char head[HEAD_MAX];
};

struct node {
    struct node *next;
    struct cc_otel_event ev;
};

struct cc_otel {
    /* Set at start, read-only after. */
    int listen_fd;
    int port;
    char token[2 * TOKEN_BYTES + 1]; /* hex; wiped at stop */
    char *env[11];                   /* NULL-terminated; wiped at stop */
    int stop_pipe[2];                /* [1] written by cc_otel_stop */
    pthread_t thread;

    /* Shared, under mu. */
    pthread_mutex_t mu;
    struct node *head, *tail;
    size_t queued;
    struct cc_otel_stats st;
    int notify[2]; /* [0] readable while queued > 0 */

    /* Receiver thread only. */
    struct conn *conns[MAX_CONNS];
    uint64_t idle_clock; /* orders connections by when they became idle */
};

/* ---- the queue ---------------------------------------------------------------------- */

static void bump(struct cc_otel *o, uint64_t *counter, uint64_t n)
{
    pthread_mutex_lock(&o->mu);
    *counter += n;
    pthread_mutex_unlock(&o->mu);
}

static void push_event(struct cc_otel *o, const struct cc_otel_event *ev)
{
    struct node *n = malloc(sizeof *n);
    pthread_mutex_lock(&o->mu);
    if (!n || o->queued >= QUEUE_MAX) {
        o->st.dropped++;
        pthread_mutex_unlock(&o->mu);
        free(n);
        return;
    }
    n->next = NULL;
    n->ev = *ev;
    if (o->tail)
        o->tail->next = n;
    else
        o->head = n;
    o->tail = n;
    /* One byte marks "not empty"; cc_otel_next() takes it when the queue empties. */
    if (o->queued++ == 0 && write(o->notify[1], "e", 1) < 0) {
        /* Cannot happen with one byte in an empty pipe; the session still sees the queue
         * at its next wake-up. */
    }
    o->st.events++;
    pthread_mutex_unlock(&o->mu);
}

int cc_otel_next(struct cc_otel *o, struct cc_otel_event *ev)
{
    pthread_mutex_lock(&o->mu);
    struct node *n = o->head;
    if (n) {
        o->head = n->next;
        if (!o->head) o->tail = NULL;
        if (--o->queued == 0) {
            char buf[16];
            while (read(o->notify[0], buf, sizeof buf) > 0) {
            }
        }
    }
    pthread_mutex_unlock(&o->mu);
    if (!n) return 0;
    *ev = n->ev;
    free(n);
    return 1;
}

/* ---- OTLP JSON ---------------------------------------------------------------------- */

/* An AnyValue's integer: intValue as a JSON integer or a decimal string (proto3 JSON writes
 * int64 as a string; the CLI writes numbers), doubleValue when integral, or a stringValue
 * holding digits (the CLI sends some counts so). */
static int any_int(const json_t *v, long long *out)
{
    const json_t *x;
    if (!json_is_object(v)) return 0;
    if ((x = json_object_get(v, "intValue")) || (x = json_object_get(v, "stringValue")) ||
        (x = json_object_get(v, "doubleValue"))) {
        if (json_is_integer(x)) {
            *out = json_integer_value(x);
            return 1;
        }
        if (json_is_real(x)) {
            double d = json_real_value(x);
            if (!isfinite(d) || d != floor(d) || fabs(d) > 9.0e18) return 0;
            *out = (long long)d;
            return 1;
        }
        if (json_is_string(x)) {
            const char *s = json_string_value(x);
            char *end;
            errno = 0;
            long long n = strtoll(s, &end, 10);
            if (end == s || *end || errno) return 0;
            *out = n;
            return 1;
        }
    }
    return 0;
}

/* An AnyValue's number as a double: the JSON number exactly as jansson's strtod read it (a
 * shortest round-trip print comes back as the same double), or a numeric string. */
static int any_double(const json_t *v, double *out)
{
    const json_t *x;
    if (!json_is_object(v)) return 0;
    if ((x = json_object_get(v, "doubleValue")) || (x = json_object_get(v, "intValue")) ||
        (x = json_object_get(v, "stringValue"))) {
        if (json_is_number(x)) {
            *out = json_number_value(x);
            return 1;
        }
        if (json_is_string(x)) {
            const char *s = json_string_value(x);
            char *end;
            double d = strtod(s, &end);
            if (end == s || *end) return 0;
            *out = d;
            return 1;
        }
    }
    return 0;
}

/* An AnyValue's string (stringValue; a number's decimal form), cut to size. */
static void any_string(const json_t *v, char *out, size_t size)
{
    const json_t *x = json_is_object(v) ? json_object_get(v, "stringValue") : NULL;
    long long n;
    if (json_is_string(x))
        snprintf(out, size, "%s", json_string_value(x));
    else if (any_int(v, &n))
        snprintf(out, size, "%lld", n);
}

/* timeUnixNano and friends: a decimal string (proto3 JSON) or a JSON number. */
static int64_t nanos(const json_t *x)
{
    if (json_is_integer(x)) return json_integer_value(x);
    if (json_is_real(x) && isfinite(json_real_value(x)) && json_real_value(x) < 9.2e18)
        return (int64_t)json_real_value(x);
    if (json_is_string(x)) {
        char *end;
        errno = 0;
        long long n = strtoll(json_string_value(x), &end, 10);
        if (!*end && !errno) return n;
    }
    return 0;
}

static int kind_of(const char *name, enum cc_otel_kind *kind)
{
    if (strncmp(name, "claude_code.", 12) == 0) name += 12;
    if (strcmp(name, "api_request") == 0)
        *kind = CC_OTEL_API_REQUEST;
    else if (strcmp(name, "api_error") == 0)
        *kind = CC_OTEL_API_ERROR;
    else if (strcmp(name, "api_retries_exhausted") == 0)
        *kind = CC_OTEL_RETRIES_EXHAUSTED;
    else
        return 0;
    return 1;
}

/* One log record: queued if it is one of the api_* events, else skipped. */
static void decode_record(struct cc_otel *o, const json_t *rec)
{
    const json_t *attrs = json_object_get(rec, "attributes");
    const json_t *body = json_object_get(json_object_get(rec, "body"), "stringValue");
    enum cc_otel_kind kind;
    char name[64] = "";
    size_t i;
    const json_t *a;

    if (json_is_string(body)) {
        snprintf(name, sizeof name, "%s", json_string_value(body));
    } else {
        /* No body: the event.name attribute says the same. */
        json_array_foreach(attrs, i, a)
        {
            const char *k = json_string_value(json_object_get(a, "key"));
            if (k && strcmp(k, "event.name") == 0)
                any_string(json_object_get(a, "value"), name, sizeof name);
        }
    }
    if (!kind_of(name, &kind)) return;

    struct cc_otel_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = kind;
    ev.duration_ms = -1;
    ev.ttft_ms = -1;
    ev.sequence = -1;
    ev.time_ns = nanos(json_object_get(rec, "timeUnixNano"));
    if (ev.time_ns == 0) ev.time_ns = nanos(json_object_get(rec, "observedTimeUnixNano"));

    json_array_foreach(attrs, i, a)
    {
        const char *k = json_string_value(json_object_get(a, "key"));
        const json_t *v = json_object_get(a, "value");
        long long n;
        if (!k) continue;
        if (strcmp(k, "request_id") == 0)
            any_string(v, ev.request_id, sizeof ev.request_id);
        else if (strcmp(k, "agent_id") == 0)
            any_string(v, ev.agent_id, sizeof ev.agent_id);
        else if (strcmp(k, "query_source") == 0)
            any_string(v, ev.query_source, sizeof ev.query_source);
        else if (strcmp(k, "prompt.id") == 0)
            any_string(v, ev.prompt_id, sizeof ev.prompt_id);
        else if (strcmp(k, "session.id") == 0)
            any_string(v, ev.session_id, sizeof ev.session_id);
        else if (strcmp(k, "model") == 0)
            any_string(v, ev.model, sizeof ev.model);
        else if (strcmp(k, "error") == 0)
            any_string(v, ev.error, sizeof ev.error);
        else if (strcmp(k, "input_tokens") == 0)
            any_int(v, &ev.input_tokens);
        else if (strcmp(k, "output_tokens") == 0)
            any_int(v, &ev.output_tokens);
        else if (strcmp(k, "cache_read_tokens") == 0)
            any_int(v, &ev.cache_read_tokens);
        else if (strcmp(k, "cache_creation_tokens") == 0)
            any_int(v, &ev.cache_creation_tokens);
        else if (strcmp(k, "cost_usd") == 0)
            any_double(v, &ev.cost_usd);
        else if (strcmp(k, "ttft_ms") == 0)
            any_double(v, &ev.ttft_ms);
        else if (strcmp(k, "duration_ms") == 0 && kind != CC_OTEL_RETRIES_EXHAUSTED)
            any_double(v, &ev.duration_ms);
        else if (strcmp(k, "total_retry_duration_ms") == 0 && kind == CC_OTEL_RETRIES_EXHAUSTED)
            any_double(v, &ev.duration_ms);
        else if (strcmp(k, "event.sequence") == 0)
            any_int(v, &ev.sequence);
        else if (strcmp(k, "status_code") == 0 && any_int(v, &n) && n >= 0 && n < 1000)
            ev.status_code = (int)n;
        else if ((strcmp(k, "attempt") == 0 || strcmp(k, "total_attempts") == 0) &&
                 any_int(v, &n) && n >= 0 && n < 1000000)
            ev.attempt = (int)n;
    }
    push_event(o, &ev);
}

/* A whole request body. 0, or -1 when it is not OTLP logs JSON. */
static int decode_body(struct cc_otel *o, const unsigned char *data, size_t len)
{
    json_error_t jerr;
    /* Integers stay integers (JSON_DECODE_INT_AS_REAL is not used): token counts up to
     * 2^63 exactly; reals are read by strtod, correctly rounded, so cost_usd is the double
     * Claude Code printed. */
    json_t *root = json_loadb((const char *)data, len, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return -1;
    }
    const json_t *rls = json_object_get(root, "resourceLogs");
    if (rls && !json_is_array(rls)) {
        json_decref(root);
        return -1;
    }
    uint64_t records = 0;
    size_t i, j, k;
    const json_t *rl, *sl, *rec;
    json_array_foreach(rls, i, rl)
    {
        json_array_foreach(json_object_get(rl, "scopeLogs"), j, sl)
        {
            json_array_foreach(json_object_get(sl, "logRecords"), k, rec)
            {
                records++;
                if (json_is_object(rec)) decode_record(o, rec);
            }
        }
    }
    bump(o, &o->st.records, records);
    json_decref(root);
    return 0;
}

/* Gunzips into a new buffer of at most BODY_MAX bytes. 0; -1 not gzip; -2 too large.
 * libdeflate, as the library (one gzip library): Node's gzip writes one member, whose
 * trailer declares the size, so the buffer is sized once and a body that says otherwise
 * is refused by libdeflate's own check. */
static int gunzip(const unsigned char *in, size_t len, unsigned char **out, size_t *outlen)
{
    if (len < 18 || in[0] != 0x1f || in[1] != 0x8b) return -1;
    const unsigned char *t = in + len - 4;
    size_t want = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
    if (want > BODY_MAX) return -2;
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    unsigned char *buf = d ? malloc(want ? want : 1) : NULL;
    size_t got = 0;
    int ok = buf && libdeflate_gzip_decompress(d, in, len, buf, want, &got) == LIBDEFLATE_SUCCESS &&
             got == want;
    if (d) libdeflate_free_decompressor(d);
    if (!ok) {
        free(buf);
        return -1;
    }
    *out = buf;
    *outlen = got;
    return 0;
}

/* ---- HTTP --------------------------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 431:
        return "Request Header Fields Too Large";
    default:
        return "Error";
    }
}

/* Puts the answer in c->out and starts writing it. OTLP/HTTP: success is 200 with an
 * ExportLogsServiceResponse, `{}` when everything was taken; a failure carries a
 * google.rpc.Status; none of our statuses is one the sender retries (429, 502, 503, 504).
 * Events lost to a full queue are counted here, not reported as a partial success: the
 * sender could do nothing about them either. */
static void answer(struct cc_otel *o, struct conn *c, int status)
{
    char body[128];
    if (status == 200)
        snprintf(body, sizeof body, "{}");
    else
        snprintf(body, sizeof body, "{\"code\":%d,\"message\":\"%s\"}", status == 401 ? 16 : 3,
                 reason(status));
    if (status == 200)
        bump(o, &o->st.requests, 1);
    else if (status == 401)
        bump(o, &o->st.unauthorized, 1);
    else
        bump(o, &o->st.bad, 1);
    int n = snprintf(c->out, sizeof c->out,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "%s%s\r\n%s",
                     status, reason(status), strlen(body), status == 405 ? "Allow: POST\r\n" : "",
                     c->close_after ? "Connection: close\r\n" : "", body);
    assert(n > 0 && (size_t)n < sizeof c->out);
    c->out_len = (size_t)n;
    c->out_off = 0;
    c->state = C_WRITE;
    free(c->body);
    c->body = NULL;
}

/* Case-insensitive header match: returns the trimmed value or NULL. `line` ends at eol. */
static const char *header_value(const char *line, const char *eol, const char *name, size_t *vlen)
{
    size_t n = strlen(name);
    if ((size_t)(eol - line) <= n || strncasecmp(line, name, n) != 0 || line[n] != ':') return NULL;
    const char *v = line + n + 1;
    while (v < eol && (*v == ' ' || *v == '\t'))
        v++;
    const char *e = eol;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *vlen = (size_t)(e - v);
    return v;
}

/* Constant-time comparison of the Authorization value with "Bearer <token>". */
static int token_ok(const struct cc_otel *o, const char *v, size_t len)
{
    if (len < 7 || strncasecmp(v, "Bearer ", 7) != 0) return 0;
    v += 7;
    len -= 7;
    while (len && *v == ' ') {
        v++;
        len--;
    }
    size_t tl = strlen(o->token);
    if (len != tl) return 0;
    unsigned char diff = 0;
    for (size_t i = 0; i < tl; i++)
        diff |= (unsigned char)(v[i] ^ o->token[i]);
    return diff == 0;
}

static int media_is_json(const char *v, size_t len)
{
    static const char json[] = "application/json";
    size_t n = sizeof json - 1;
    return len >= n && strncasecmp(v, json, n) == 0 && (len == n || v[n] == ';' || v[n] == ' ');
}

static void conn_close(struct cc_otel *o, int slot)
{
    struct conn *c = o->conns[slot];
    close(c->fd);
    free(c->body);
    free(c);
    o->conns[slot] = NULL;
}

static void take_body(struct cc_otel *o, struct conn *c);

/* A whole head is in c->head[0, end). Decides what to do with the request. */
static void start_request(struct cc_otel *o, struct conn *c, size_t end)
{
    const char *p = c->head, *stop = c->head + end - 2; /* at the blank line's CRLF */
    const char *eol = memmem(p, (size_t)(stop - p + 2), "\r\n", 2);
    int have_length = 0, expect = 0, chunked = 0, auth = 0, json = 0, encoding_ok = 1;
    unsigned long long length = 0;

    c->status = 0;
    c->gzip = 0;
    c->close_after = 0;
    c->body_len = c->body_got = 0;

    /* Request line: METHOD SP TARGET SP HTTP/1.x */
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp1 || !sp2 || eol - sp2 - 1 != 8 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
        c->close_after = 1;
        c->status = 400;
    } else {
        if (sp2[8] == '0') c->close_after = 1;
        size_t plen = (size_t)(sp2 - sp1 - 1);
        const char *q = memchr(sp1 + 1, '?', plen);
        if (q) plen = (size_t)(q - sp1 - 1);
        if ((size_t)(sp1 - p) != 4 || strncmp(p, "POST", 4) != 0)
            c->status = 405;
        else if (plen != sizeof OTEL_PATH - 1 || strncmp(sp1 + 1, OTEL_PATH, plen) != 0)
            c->status = 404;
    }
    for (const char *line = eol + 2; c->status != 400 && line < stop; line = eol + 2) {
        eol = memmem(line, (size_t)(stop - line + 2), "\r\n", 2);
        size_t vl;
        const char *v;
        if ((v = header_value(line, eol, "Content-Length", &vl))) {
            char *e;
            char num[24];
            if (vl == 0 || vl >= sizeof num || have_length) {
                c->status = 400; /* two lengths could smuggle a request */
                c->close_after = 1;
                break;
            }
            memcpy(num, v, vl);
            num[vl] = '\0';
            errno = 0;
            length = strtoull(num, &e, 10);
            if (*e || errno || num[0] == '-') {
                c->status = 400;
                c->close_after = 1;
                break;
            }
            have_length = 1;
        } else if ((v = header_value(line, eol, "Transfer-Encoding", &vl))) {
            chunked = 1;
        } else if ((v = header_value(line, eol, "Authorization", &vl))) {
            auth = token_ok(o, v, vl);
        } else if ((v = header_value(line, eol, "Content-Type", &vl))) {
            json = media_is_json(v, vl);
        } else if ((v = header_value(line, eol, "Content-Encoding", &vl))) {
            if (vl == 4 && strncasecmp(v, "gzip", 4) == 0)
                c->gzip = 1;
            else if (!(vl == 8 && strncasecmp(v, "identity", 8) == 0))
                encoding_ok = 0;
        } else if ((v = header_value(line, eol, "Connection", &vl))) {
            if (vl == 5 && strncasecmp(v, "close", 5) == 0) c->close_after = 1;
        } else if ((v = header_value(line, eol, "Expect", &vl))) {
            expect = 1;
        }
    }
    if (c->status != 400) {
        /* A chunked body's end would need a decoder the CLI gives no use for: answer and
         * close. A request with neither header has no body (RFC 9112, 6.3). */
        if (chunked) {
            c->status = 411;
            c->close_after = 1;
        } else if (length > BODY_MAX) {
            c->status = 413;
            c->close_after = 1;
        } else if (c->status == 0 && !auth) {
            c->status = 401;
        } else if (c->status == 0 && (!json || !encoding_ok)) {
            c->status = 415;
        }
    }
    /* The head is used; what follows it is body, then maybe the next request. */
    memmove(c->head, c->head + end, c->head_len - end);
    c->head_len -= end;
    c->deadline = cc_mono_ms() + REQUEST_MS;

    if (c->close_after && c->status) {
        answer(o, c, c->status);
        return;
    }
    if (expect && c->status) {
        /* The client waits for our word before sending the body: refuse and close. */
        c->close_after = 1;
        answer(o, c, c->status);
        return;
    }
    c->body_len = (size_t)length;
    if (c->status == 0 && !(c->body = malloc(c->body_len ? c->body_len : 1))) {
        c->status = 413; /* no memory for it: the sender should not retry it either */
    }
    if (expect && c->status == 0) {
        static const char go[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (send(c->fd, go, sizeof go - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof go - 1)) {
            c->close_after = 1;
            answer(o, c, 400);
            return;
        }
    }
    size_t take = c->head_len < c->body_len ? c->head_len : c->body_len;
    if (c->body) memcpy(c->body, c->head, take);
    memmove(c->head, c->head + take, c->head_len - take);
    c->head_len -= take;
    c->body_got = take;
    c->state = C_BODY;
    if (c->body_got == c->body_len) take_body(o, c);
}

/* The body is complete: decode it (unless already refused) and answer. */
static void take_body(struct cc_otel *o, struct conn *c)
{
    int status = c->status;
    if (status == 0) {
        unsigned char *plain = c->body;
        size_t plain_len = c->body_len;
        int rc = 0;
        if (c->gzip) rc = gunzip(c->body, c->body_len, &plain, &plain_len);
        if (rc == -2)
            status = 413;
        else if (rc < 0)
            status = 400;
        else
            status = decode_body(o, plain, plain_len) == 0 ? 200 : 400;
        if (plain != c->body) free(plain);
    }
    answer(o, c, status);
}

/* Looks for the end of a head in what has arrived; 1 if a request was started. */
static int try_head(struct cc_otel *o, struct conn *c, size_t from)
{
    size_t start = from > 3 ? from - 3 : 0;
    const char *end =
        c->head_len > start ? memmem(c->head + start, c->head_len - start, "\r\n\r\n", 4) : NULL;
    if (end) {
        start_request(o, c, (size_t)(end - c->head) + 4);
        return 1;
    }
    if (c->head_len == sizeof c->head) {
        c->close_after = 1;
        answer(o, c, 431);
        return 1;
    }
    return 0;
}

/* Writes what is left of the answer; then the next request, or the linger before close.
 * 0, or -1 when the connection is to be closed now. */
static int write_answer(struct cc_otel *o, struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0; /* POLLOUT will say when */
        if (n <= 0) return -1;
        c->out_off += (size_t)n;
    }
    if (c->close_after) {
        /* Half-close and read what the sender still sends (an unread body), so closing
         * does not reset the connection before our answer is read. */
        shutdown(c->fd, SHUT_WR);
        c->state = C_LINGER;
        c->deadline = cc_mono_ms() + LINGER_MS;
        return 0;
    }
    c->state = C_HEAD;
    c->deadline = cc_mono_ms() + (c->head_len ? REQUEST_MS : IDLE_MS);
    c->idle_since = ++o->idle_clock;
    if (c->head_len) /* pipelined: the next request may be here already */
        try_head(o, c, 0);
    if (c->state == C_WRITE) return write_answer(o, c);
    return 0;
}

/* Reads what the socket has for this connection. 0, or -1 to close it. */
static int read_conn(struct cc_otel *o, struct conn *c)
{
    for (;;) {
        char scratch[16384];
        char *dst;
        size_t room;
        if (c->state == C_HEAD) {
            dst = c->head + c->head_len;
            room = sizeof c->head - c->head_len;
        } else if (c->state == C_BODY) {
            room = c->body_len - c->body_got;
            dst = c->body ? (char *)c->body + c->body_got : scratch;
            if (!c->body && room > sizeof scratch) room = sizeof scratch;
        } else if (c->state == C_LINGER) {
            dst = scratch;
            room = sizeof scratch;
        } else {
            return 0; /* C_WRITE: reading waits for the answer */
        }
        ssize_t n = recv(c->fd, dst, room, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (n <= 0) return -1; /* closed or reset: a request cut short is dropped */
        if (c->state == C_HEAD) {
            size_t before = c->head_len;
            if (before == 0) c->deadline = cc_mono_ms() + REQUEST_MS; /* a request has begun */
            c->head_len += (size_t)n;
            if (try_head(o, c, before) && c->state == C_WRITE) return write_answer(o, c);
        } else if (c->state == C_BODY) {
            c->body_got += (size_t)n;
            if (c->body_got == c->body_len) {
                take_body(o, c);
                return write_answer(o, c);
            }
        }
    }
}

static void accept_conns(struct cc_otel *o)
{
    for (;;) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof peer;
        int fd =
            accept4(o->listen_fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return; /* EAGAIN, or a connection that vanished: nothing to do */
        int slot = -1;
        for (int i = 0; i < MAX_CONNS && slot < 0; i++)
            if (!o->conns[i]) slot = i;
        if (slot < 0) {
            /* Full: make room by closing the connection idle the longest, if any. A
             * connection in the middle of a request keeps its slot until its deadline. */
            uint64_t oldest = 0;
            for (int i = 0; i < MAX_CONNS; i++) {
                struct conn *c = o->conns[i];
                if (c->state == C_HEAD && c->head_len == 0 &&
                    (slot < 0 || c->idle_since < oldest)) {
                    slot = i;
                    oldest = c->idle_since;
                }
            }
            if (slot >= 0) conn_close(o, slot);
        }
        int loopback = peer.sin_family == AF_INET && (ntohl(peer.sin_addr.s_addr) >> 24) == 127;
        struct conn *c = slot >= 0 && loopback ? malloc(sizeof *c) : NULL;
        if (!c) {
            close(fd);
            bump(o, &o->st.refused, 1);
            continue;
        }
        /* Each answer goes out in one write: no reason to wait for the peer's ACK. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        memset(c, 0, offsetof(struct conn, head));
        c->fd = fd;
        c->state = C_HEAD;
        c->deadline = cc_mono_ms() + IDLE_MS;
        c->idle_since = ++o->idle_clock;
        o->conns[slot] = c;
        bump(o, &o->st.connections, 1);
    }
}

static void *serve(void *arg)
{
    struct cc_otel *o = arg;
    struct pollfd pfd[2 + MAX_CONNS];
    int slot_of[2 + MAX_CONNS];

    for (;;) {
        long long now = cc_mono_ms(), next = now + IDLE_MS;
        int n = 0;
        pfd[n].fd = o->stop_pipe[0];
        pfd[n++].events = POLLIN;
        pfd[n].fd = o->listen_fd;
        pfd[n++].events = POLLIN;
        for (int i = 0; i < MAX_CONNS; i++) {
            struct conn *c = o->conns[i];
            if (!c) continue;
            if (c->deadline < next) next = c->deadline;
            pfd[n].fd = c->fd;
            pfd[n].events = c->state == C_WRITE ? POLLOUT : POLLIN;
            slot_of[n++] = i;
        }
        int wait = next > now ? (int)(next - now) : 0;
        if (poll(pfd, (nfds_t)n, wait) < 0 && errno != EINTR) break;
        if (pfd[0].revents) break;
        for (int k = 2; k < n; k++) {
            struct conn *c = o->conns[slot_of[k]];
            if (!pfd[k].revents) continue;
            int rc = c->state == C_WRITE ? write_answer(o, c) : read_conn(o, c);
            if (rc < 0) conn_close(o, slot_of[k]);
        }
        now = cc_mono_ms();
        for (int i = 0; i < MAX_CONNS; i++) {
            struct conn *c = o->conns[i];
            if (!c || c->deadline > now) continue;
            if ((c->state == C_HEAD && c->head_len > 0) || c->state == C_BODY) {
                /* Too slow to send its request (a slowloris, or a stuck client). */
                c->close_after = 1;
                answer(o, c, 408);
                c->deadline = now + LINGER_MS;
                if (write_answer(o, c) == 0) continue;
            }
            conn_close(o, i); /* idle, lingered, or not reading its answer */
        }
        if (pfd[1].revents) accept_conns(o);
    }
    return NULL;
}

/* ---- life cycle --------------------------------------------------------------------- */

static void wipe_env(struct cc_otel *o)
{
    for (size_t i = 0; i < sizeof o->env / sizeof o->env[0] && o->env[i]; i++) {
        explicit_bzero(o->env[i], strlen(o->env[i]));
        free(o->env[i]);
        o->env[i] = NULL;
    }
}

static int make_env(struct cc_otel *o)
{
    int i = 0;
#define ENV(...)                                                                                   \
    do {                                                                                           \
        if (asprintf(&o->env[i], __VA_ARGS__) < 0) {                                               \
            o->env[i] = NULL;                                                                      \
            return -1;                                                                             \
        }                                                                                          \
        i++;                                                                                       \
    } while (0)
    ENV("CLAUDE_CODE_ENABLE_TELEMETRY=1");
    ENV("OTEL_LOGS_EXPORTER=otlp");
    ENV("OTEL_METRICS_EXPORTER=none");
    ENV("OTEL_TRACES_EXPORTER=none");
    ENV("OTEL_EXPORTER_OTLP_PROTOCOL=http/json");
    ENV("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL=http/json");
    ENV("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=http://127.0.0.1:%d" OTEL_PATH, o->port);
    ENV("OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer %s", o->token);
    ENV("OTEL_LOGS_EXPORT_INTERVAL=200");
    ENV("CLAUDE_CODE_OTEL_SHUTDOWN_TIMEOUT_MS=1000");
#undef ENV
    o->env[i] = NULL;
    return 0;
}

struct cc_otel *cc_otel_start(char *err, size_t errlen)
{
    struct cc_otel *o = calloc(1, sizeof *o);
    unsigned char raw[TOKEN_BYTES];
    struct sockaddr_in addr;
    socklen_t alen = sizeof addr;

    if (!o) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    o->listen_fd = o->stop_pipe[0] = o->stop_pipe[1] = o->notify[0] = o->notify[1] = -1;
    pthread_mutex_init(&o->mu, NULL);
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        snprintf(err, errlen, "no random token: %s", strerror(errno));
        goto fail;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(o->token + 2 * i, 3, "%02x", raw[i]);
    explicit_bzero(raw, sizeof raw);

    o->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (o->listen_fd < 0 || bind(o->listen_fd, (struct sockaddr *)&addr, sizeof addr) ||
        listen(o->listen_fd, 64) || getsockname(o->listen_fd, (struct sockaddr *)&addr, &alen)) {
        snprintf(err, errlen, "cannot listen on 127.0.0.1: %s", strerror(errno));
        goto fail;
    }
    o->port = ntohs(addr.sin_port);
    if (pipe2(o->stop_pipe, O_CLOEXEC | O_NONBLOCK) || pipe2(o->notify, O_CLOEXEC | O_NONBLOCK)) {
        snprintf(err, errlen, "cannot create a pipe: %s", strerror(errno));
        goto fail;
    }
    if (make_env(o)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* The thread takes no signals: they are the session's (see ws.c). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int started = pthread_create(&o->thread, NULL, serve, o) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!started) {
        snprintf(err, errlen, "cannot start the telemetry receiver thread");
        goto fail;
    }
    return o;
fail:
    wipe_env(o);
    explicit_bzero(o->token, sizeof o->token);
    for (int i = 0; i < 2; i++) {
        if (o->stop_pipe[i] >= 0) close(o->stop_pipe[i]);
        if (o->notify[i] >= 0) close(o->notify[i]);
    }
    if (o->listen_fd >= 0) close(o->listen_fd);
    pthread_mutex_destroy(&o->mu);
    free(o);
    return NULL;
}

int cc_otel_port(const struct cc_otel *o)
{
    return o->port;
}

const char *const *cc_otel_env(const struct cc_otel *o)
{
    return (const char *const *)o->env;
}

int cc_otel_fd(const struct cc_otel *o)
{
    return o->notify[0];
}

void cc_otel_stats(struct cc_otel *o, struct cc_otel_stats *st)
{
    pthread_mutex_lock(&o->mu);
    *st = o->st;
    pthread_mutex_unlock(&o->mu);
}

void cc_otel_stop(struct cc_otel *o)
{
    if (!o) return;
    while (write(o->stop_pipe[1], "s", 1) < 0 && errno == EINTR) {
    }
    pthread_join(o->thread, NULL);
    for (int i = 0; i < MAX_CONNS; i++)
        if (o->conns[i]) conn_close(o, i);
    close(o->listen_fd);
    for (int i = 0; i < 2; i++) {
        close(o->stop_pipe[i]);
        close(o->notify[i]);
    }
    struct node *n = o->head;
    while (n) {
        struct node *next = n->next;
        free(n);
        n = next;
    }
    wipe_env(o);
    explicit_bzero(o->token, sizeof o->token);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

/* ---- the user's own telemetry ------------------------------------------------------- */

static int set_to_other_than(const char *name, const char *const *inert)
{
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    for (; *inert; inert++)
        if (strcasecmp(v, *inert) == 0) return 0;
    return 1;
}

int cc_otel_user_configured(void)
{
    static const char *const off[] = {"0", "false", "no", "off", NULL};
    static const char *const none[] = {"none", NULL};
    static const char *const nothing[] = {NULL};
    static const char *const exporters[] = {"OTEL_LOGS_EXPORTER", "OTEL_METRICS_EXPORTER",
                                            "OTEL_TRACES_EXPORTER"};
    static const char *const endpoints[] = {
        "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"};

    if (set_to_other_than("CLAUDE_CODE_ENABLE_TELEMETRY", off)) return 1;
    for (size_t i = 0; i < sizeof exporters / sizeof exporters[0]; i++)
        if (set_to_other_than(exporters[i], none)) return 1;
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++)
        if (set_to_other_than(endpoints[i], nothing)) return 1;
    return 0;
}
