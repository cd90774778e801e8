/* test_otel.c - the loopback OTLP logs receiver over real sockets: the bodies Claude Code
 * posted (tests/fixtures/claude-code-otel/) decoded field by field and cent for cent, the
 * token, every refusal and its status, the bounds (body size, gzip, queue, a slow sender),
 * keep-alive and pipelining, a prompt stop, the environment, and the user's-own-telemetry
 * rule. */
#include "cm.h"

#include "otel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <libdeflate.h>

#define FIX CC_OTEL_FIXTURES_DIR

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    p[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* ---- a small HTTP client on a raw socket, so a test controls every byte ------------- */

struct client {
    int fd;
    char buf[65536]; /* received, not yet consumed */
    size_t len;
};

struct resp {
    int status;
    int close; /* the answer said Connection: close */
    char body[1024];
};

static void client_open(struct client *c, int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    struct timeval tv = {8, 0}; /* no test waits longer for one read */
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1; /* a head and its body go in two writes, as some clients do */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
    c->len = 0;
}

static void client_close(struct client *c)
{
    close(c->fd);
    c->fd = -1;
}

#define SEND(c, literal) send_all((c), literal, sizeof literal - 1)

static void send_all(struct client *c, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t k = send(c->fd, s, n, MSG_NOSIGNAL);
        assert_true(k > 0);
        s += k;
        n -= (size_t)k;
    }
}

/* Reads one answer. Its status, or -1 when the connection ended first. */
static int read_resp(struct client *c, struct resp *r)
{
    memset(r, 0, sizeof *r);
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end) {
            size_t head = (size_t)(end - c->buf) + 4;
            char h[4096];
            assert_true(head < sizeof h);
            memcpy(h, c->buf, head);
            h[head] = '\0';
            assert_int_equal(sscanf(h, "HTTP/1.1 %d", &r->status), 1);
            size_t blen = 0;
            const char *cl = strcasestr(h, "\r\nContent-Length:");
            if (cl) blen = strtoul(cl + 17, NULL, 10);
            r->close = strcasestr(h, "\r\nConnection: close") != NULL;
            while (c->len < head + blen) {
                ssize_t k = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
                if (k <= 0) return -1;
                c->len += (size_t)k;
            }
            assert_true(blen < sizeof r->body);
            memcpy(r->body, c->buf + head, blen);
            memmove(c->buf, c->buf + head + blen, c->len - head - blen);
            c->len -= head + blen;
            return r->status;
        }
        ssize_t k = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (k <= 0) return -1;
        c->len += (size_t)k;
    }
}

/* 1 when the server has closed the connection (EOF or reset) within 8 s. */
static int peer_closed(struct client *c)
{
    char b[256];
    for (;;) {
        ssize_t k = recv(c->fd, b, sizeof b, 0);
        if (k == 0 || (k < 0 && errno == ECONNRESET)) return 1;
        if (k < 0) return 0; /* timed out */
    }
}

/* The token, read back from the environment the receiver hands out. */
static void token_of(const struct cc_otel *o, char *out, size_t len)
{
    static const char pre[] = "OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer ";
    for (const char *const *e = cc_otel_env(o); *e; e++)
        if (strncmp(*e, pre, sizeof pre - 1) == 0) {
            snprintf(out, len, "%s", *e + sizeof pre - 1);
            return;
        }
    fail_msg("no token in the environment");
}

static size_t request_head(char *h, size_t hl, const char *token, const char *ctype,
                           const char *extra, size_t body_len)
{
    char auth[160] = "";
    if (token) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
    int n = snprintf(h, hl,
                     "POST /v1/logs HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n%s\r\n",
                     auth, ctype, body_len, extra ? extra : "");
    assert_true(n > 0 && (size_t)n < hl);
    return (size_t)n;
}

/* One POST on c; the answer's status. */
static int post(struct client *c, const char *token, const char *ctype, const char *extra,
                const void *body, size_t len, struct resp *r)
{
    char h[1024];
    size_t hl = request_head(h, sizeof h, token, ctype, extra, len);
    send_all(c, h, hl);
    send_all(c, body, len);
    return read_resp(c, r);
}

static int post_json(struct client *c, const char *token, const char *body, struct resp *r)
{
    return post(c, token, "application/json", NULL, body, strlen(body), r);
}

static unsigned char *gzip_of(const void *in, size_t len, size_t *outlen)
{
    struct libdeflate_compressor *z = libdeflate_alloc_compressor(6);
    size_t cap = libdeflate_gzip_compress_bound(z, len);
    unsigned char *out = malloc(cap);
    *outlen = libdeflate_gzip_compress(z, in, len, out, cap);
    assert_true(*outlen > 0);
    libdeflate_free_compressor(z);
    return out;
}

static int fd_readable(int fd, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, timeout_ms) == 1;
}

static int drain(struct cc_otel *o, struct cc_otel_event *evs, int max)
{
    int n = 0;
    struct cc_otel_event ev;
    while (cc_otel_next(o, &ev)) {
        if (n < max) evs[n] = ev;
        n++;
    }
    return n;
}

static struct cc_otel *start(void)
{
    char err[256] = "";
    struct cc_otel *o = cc_otel_start(err, sizeof err);
    if (!o) fail_msg("cc_otel_start: %s", err);
    return o;
}

/* ---- what Claude Code sent ---------------------------------------------------------- */

static void test_subagent_run_decoded_field_by_field(void **state)
{
    (void)state;
    struct cc_otel *o = start();
    char token[128];
    token_of(o, token, sizeof token);
    struct client c;
    struct resp r;
    client_open(&c, cc_otel_port(o));
    assert_false(fd_readable(cc_otel_fd(o), 0));
    /* The four posts of the run, on one kept-alive connection as the CLI sends them. */
    for (int i = 1; i <= 4; i++) {
        char path[512];
        size_t len;
        snprintf(path, sizeof path, FIX "/subagent/req%03d.json", i);
        char *body = slurp(path, &len);
        assert_int_equal(post(&c, token, "application/json", NULL, body, len, &r), 200);
        assert_string_equal(r.body, "{}");
        assert_false(r.close);
        free(body);
    }
    client_close(&c);
    assert_true(fd_readable(cc_otel_fd(o), 0));

    struct cc_otel_event ev[8];
    assert_int_equal(drain(o, ev, 8), 4);
    assert_false(fd_readable(cc_otel_fd(o), 0));

    /* The main thread's first call. */
    assert_int_equal(ev[0].kind, CC_OTEL_API_REQUEST);
    assert_string_equal(ev[0].request_id, "req_01Ftvk3JoqIYUqb8huxtO9ZC");
    assert_string_equal(ev[0].agent_id, "");
    assert_string_equal(ev[0].query_source, "sdk");
    assert_string_equal(ev[0].model, "claude-sonnet-4-5");
    assert_string_equal(ev[0].session_id, "3ae02817-3569-48b4-96da-70bd9440fac3");
    assert_string_equal(ev[0].prompt_id, "01a0af1f-d788-406e-a993-3abc658a7d50");
    assert_int_equal(ev[0].input_tokens, 4);
    assert_int_equal(ev[0].output_tokens, 142);
    assert_int_equal(ev[0].cache_read_tokens, 12044);
    assert_int_equal(ev[0].cache_creation_tokens, 5196);
    assert_true(ev[0].cost_usd == 0.025240199999999997); /* the double the CLI printed */
    assert_true(ev[0].duration_ms == 203);
    assert_true(ev[0].ttft_ms == 93);
    assert_int_equal(ev[0].time_ns, 1796533035559000000LL);
    assert_int_equal(ev[0].sequence, 6);
    assert_int_equal(ev[0].status_code, 0);
    assert_string_equal(ev[0].error, "");

    /* The subagent's two calls. */
    assert_string_equal(ev[1].request_id, "req_01Tm2Ab0mX0DCr0pV3D8sBfe");
    assert_string_equal(ev[1].agent_id, "abe30a7cc7aa02651");
    assert_string_equal(ev[1].query_source, "agent:builtin:general-purpose");
    assert_int_equal(ev[1].input_tokens, 3);
    assert_int_equal(ev[1].output_tokens, 71);
    assert_int_equal(ev[1].cache_read_tokens, 9120);
    assert_int_equal(ev[1].cache_creation_tokens, 3861);
    assert_true(ev[1].cost_usd == 0.01828875);
    assert_true(ev[1].ttft_ms == 49);
    assert_true(ev[1].duration_ms == 122);
    assert_string_equal(ev[2].request_id, "req_017HDn440WYEC9QI7uxz23Hc");
    assert_string_equal(ev[2].agent_id, "abe30a7cc7aa02651");
    assert_int_equal(ev[2].cache_read_tokens, 12981);
    assert_true(ev[2].cost_usd == 0.00450105);
    assert_true(ev[2].ttft_ms == 12);

    /* The main thread's last call. */
    assert_string_equal(ev[3].request_id, "req_01Hv2jsuOdRQT1BqNnc4nbFp");
    assert_string_equal(ev[3].agent_id, "");
    assert_int_equal(ev[3].output_tokens, 15);
    assert_true(ev[3].cost_usd == 0.0062025);
    assert_int_equal(ev[3].sequence, 15);

    /* Added in emission order, the costs are the result line's total_cost_usd, exactly. */
    size_t len;
    char *out = slurp(FIX "/subagent/stdout.jsonl", &len);
    double total = -1;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *j = json_loads(line, 0, NULL);
        const char *type = json_string_value(json_object_get(j, "type"));
        if (type && strcmp(type, "result") == 0)
            total = json_real_value(json_object_get(j, "total_cost_usd"));
        json_decref(j);
    }
    free(out);
    double sum = 0;
    for (int i = 0; i < 4; i++)
        sum += ev[i].cost_usd;
    assert_true(total > 0);
    assert_true(sum == total);

    struct cc_otel_stats st;
    cc_otel_stats(o, &st);
    assert_int_equal(st.requests, 4);
    assert_int_equal(st.events, 4);
    assert_int_equal(st.records, 17);
    assert_int_equal(st.unauthorized + st.bad + st.dropped, 0);
    assert_int_equal(st.connections, 1);
    cc_otel_stop(o);
}

static void test_failed_call_and_exhausted_retries(void **state)
{
    (void)state;
    struct cc_otel *o = start();
    char token[128];
    token_of(o, token, sizeof token);
    struct client c;
    struct resp r;
    size_t len;
    client_open(&c, cc_otel_port(o));
    char *body = slurp(FIX "/error_500_retries_exhausted/req002.json", &len);
    assert_int_equal(post(&c, token, "application/json", NULL, body, len, &r), 200);
    free(body);
    client_close(&c);

    struct cc_otel_event ev[4];
    assert_int_equal(drain(o, ev, 4), 2);
    assert_int_equal(ev[0].kind, CC_OTEL_API_ERROR);
    assert_int_equal(ev[0].status_code, 500);
    assert_string_equal(ev[0].error, "Internal server error");
    assert_int_equal(ev[0].attempt, 3);
    assert_true(ev[0].duration_ms == 28);
    assert_true(ev[0].ttft_ms == -1);
    assert_string_equal(ev[0].request_id, "req_01tqk5ay9udwonEGIBncryzz");
    assert_string_equal(ev[0].model, "claude-sonnet-4-5");
    assert_string_equal(ev[0].query_source, "sdk");
    assert_int_equal(ev[0].time_ns, 1796533047057000000LL);
    assert_int_equal(ev[1].kind, CC_OTEL_RETRIES_EXHAUSTED);
    assert_int_equal(ev[1].status_code, 500);
    assert_int_equal(ev[1].attempt, 3);
    assert_true(ev[1].duration_ms == 1892); /* total_retry_duration_ms */
    assert_string_equal(ev[1].request_id, "");
    assert_int_equal(ev[1].sequence, 6);
    cc_otel_stop(o);
}

/* OTLP JSON as other writers send it: int64 as strings, a doubleValue that is a JSON
 * integer, numbers as strings, no body but event.name, the time as a number. */
static void test_other_value_encodings(void **state)
{
    (void)state;
    struct cc_otel *o = start();
    char token[128];
    token_of(o, token, sizeof token);
    struct client c;
    struct resp r;
    client_open(&c, cc_otel_port(o));
    const char *body =
        "{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":["
        "{\"timeUnixNano\":\"0\",\"observedTimeUnixNano\":1700000000000000001,"
        "\"attributes\":[{\"key\":\"event.name\",\"value\":{\"stringValue\":\"api_request\"}},"
        "{\"key\":\"input_tokens\",\"value\":{\"intValue\":\"9007199254740993\"}},"
        "{\"key\":\"output_tokens\",\"value\":{\"stringValue\":\"12\"}},"
        "{\"key\":\"cost_usd\",\"value\":{\"doubleValue\":0}},"
        "{\"key\":\"ttft_ms\",\"value\":{\"doubleValue\":12.5}},"
        "{\"key\":\"duration_ms\",\"value\":{\"stringValue\":\"40\"}},"
        "{\"key\":\"event.sequence\",\"value\":{\"intValue\":\"7\"}},"
        "{\"key\":\"request_id\",\"value\":{\"stringValue\":\"" /* over 127 bytes: cut */
        "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"
        "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"
        "\"}},{\"key\":\"model\",\"value\":{\"intValue\":5}}]},"
        "{\"body\":{\"stringValue\":\"claude_code.api_error\"},\"attributes\":["
        "{\"key\":\"status_code\",\"value\":{\"stringValue\":\"529\"}},"
        "{\"key\":\"cost_usd\",\"value\":{\"stringValue\":\"0.1\"}}]},"
        "{\"body\":{\"stringValue\":\"claude_code.tool_result\"}},"
        "7,"
        "{\"body\":{\"stringValue\":\"claude_code.api_retries_exhausted\"},"
        "\"attributes\":[{\"key\":\"total_attempts\",\"value\":{\"intValue\":11}},"
        "{\"key\":\"duration_ms\",\"value\":{\"intValue\":5}}]}"
        "]}]},{\"resource\":{}}]}";
    assert_int_equal(post_json(&c, token, body, &r), 200);
    client_close(&c);
    struct cc_otel_event ev[4];
    assert_int_equal(drain(o, ev, 4), 3);
    assert_int_equal(ev[0].kind, CC_OTEL_API_REQUEST);
    assert_int_equal(ev[0].time_ns, 1700000000000000001LL);
    assert_int_equal(ev[0].input_tokens, 9007199254740993LL); /* past a double's 2^53 */
    assert_int_equal(ev[0].output_tokens, 12);
    assert_true(ev[0].cost_usd == 0);
    assert_true(ev[0].ttft_ms == 12.5);
    assert_true(ev[0].duration_ms == 40);
    assert_int_equal(ev[0].sequence, 7);
    assert_int_equal(strlen(ev[0].request_id), sizeof ev[0].request_id - 1);
    assert_string_equal(ev[0].model, "5");
    assert_int_equal(ev[1].kind, CC_OTEL_API_ERROR);
    assert_int_equal(ev[1].status_code, 529);
    assert_true(ev[1].cost_usd == 0.1);
    assert_int_equal(ev[1].time_ns, 0);
    assert_int_equal(ev[1].sequence, -1);
    assert_int_equal(ev[2].kind, CC_OTEL_RETRIES_EXHAUSTED);
    assert_int_equal(ev[2].attempt, 11);
    assert_true(ev[2].duration_ms == -1); /* only total_retry_duration_ms counts here */
    struct cc_otel_stats st;
    cc_otel_stats(o, &st);
    assert_int_equal(st.records, 5);
    cc_otel_stop(o);
}

static void test_gzip_body(void **state)
{
    (void)state;
    struct cc_otel *o = start();
    char token[128];
    token_of(o, token, sizeof token);
    struct client c;
    struct resp r;
    size_t len, zlen;
    char *body = slurp(FIX "/subagent/req003.json", &len);
    unsigned char *z = gzip_of(body, len, &zlen);
    client_open(&c, cc_otel_port(o));
    assert_int_equal(post(&c, token, "application/json", "Content-Encoding: gzip\r\n", z, zlen, &r),
                     200);
    struct cc_otel_event ev[4];
    assert_int_equal(drain(o, ev, 4), 2);
    assert_string_equal(ev[0].request_id, "req_01Tm2Ab0mX0DCr0pV3D8sBfe");
    assert_string_equal(ev[1].agent_id, "abe30a7cc7aa02651");
    /* Not gzip after all: 400, and the connection goes on. */
    assert_int_equal(
        post(&c, token, "application/json", "Content-Encoding: gzip\r\n", body, len, &r), 400);
    /* An encoding it does not know: 415. */
    assert_int_equal(post(&c, token, "application/json", "Content-Encoding: br\r\n", body, len, &r),
                     415);
    /* A bomb: 9 MiB of zeros in a few KiB inflates past the cap: 413. */
    size_t big = 9u << 20;
    char *zeros = calloc(1, big);
    free(z);
    z = gzip_of(zeros, big, &zlen);
    assert_true(zlen < 65536);
    assert_int_equal(post(&c, token, "application/json", "Content-Encoding: gzip\r\n", z, zlen, &r),
                     413);
    assert_int_equal(drain(o, ev, 4), 0);
    free(zeros);
    free(z);
    free(body);
    client_close(&c);
    cc_otel_stop(o);
}

/* ---- refusals ----------------------------------------------------------------------- */

static void test_wrong_token_is_401_and_no_event(void **state)
{
    (void)state;
    struct cc_otel *o = start();
    char token[128];
    token_of(o, token, sizeof token);
    size_t len;
    char *body = slurp(FIX "/subagent/req002.json", &len);
    struct client c;
    struct resp r;
    client_open(&c, cc_otel_port(o));
    char wrong[128];
    snprintf(wrong, sizeof wrong, "%s", token);
    wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
    assert_int_equal(post(&c, wrong, "application/json", NULL, body, len, &r), 401);
    assert_int_equal(post(&c, NULL, "application/json", NULL, body, len, &r), 401);
    assert_int_equal(post(&c, "", "application/json", NULL, body, len, &r), 401);
    assert_false(fd_readable(cc_otel_fd(o), 0));
    /* Another receiver's token is no good here either. */
    struct cc_otel *other = start();
    char token2[128];
    token_of(other, token2, sizeof token2);
    assert_string_not_equal(token, token2);
    assert_int_equal(post(&c, token2, "application/json", NULL, body, len, &r), 401);
    cc_otel_stop(other);
    /* The connection is still good for the right token. */
    assert_int_equal(post(&c, token, "application/json", NULL, body, len, &r), 200);
    struct cc_otel_event ev[4];
    assert_int_equal(drain(o, ev, 4), 1);
    struct cc_otel_stats st;
    cc_otel_stats(o, &st);
    assert_int_equal(st.unauthorized, 4);
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.events, 1);
    free(body);
    client_close(&c);
    cc_otel_stop(o);
}

static void test_bad_requests(void **state)
{
    (void)state;
    struct cc_otel *o = start();
    char token[128];
    token_of(o, token, sizeof token);
    struct client c;
    struct resp r;
    client_open(&c, cc_otel_port(o));
    /* Bodies that are not OTLP logs JSON: 400, and the connection goes on. */
    assert_int_equal(post_json(&c, token, "{\"resourceLogs\":[", &r), 400);
    assert_non_null(strstr(r.body, "\"code\":3"));
    assert_int_equal(post_json(&c, token, "[]", &r), 400);
    assert_int_equal(post_json(&c, token, "{\"resourceLogs\":5}", &r), 400);
    assert_int_equal(post_json(&c, token, "", &r), 400);
    /* An empty request is a valid one. */
    assert_int_equal(post_json(&c, token, "{}", &r), 200);
    assert_int_equal(post_json(&c, token, "{\"resourceLogs\":[]}", &r), 200);
    /* Protobuf is not spoken here. */
    assert_int_equal(post(&c, token, "application/x-protobuf", NULL, "\x0a\x00", 2, &r), 415);
    assert_int_equal(post(&c, token, "application/json; charset=utf-8", NULL, "{}", 2, &r), 200);
    /* Wrong path, wrong method. */
    SEND(&c, "POST /v1/traces HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}");
    assert_int_equal(read_resp(&c, &r), 404);
    SEND(&c, "GET /v1/logs HTTP/1.1\r\n\r\n");
    assert_int_equal(read_resp(&c, &r), 405);
    assert_int_equal(post_json(&c, token, "{}", &r), 200);
    client_close(&c);
    /* Not HTTP: 400 and closed. */
    client_open(&c, cc_otel_port(o));
    SEND(&c, "hello\r\n\r\n");
    assert_int_equal(read_resp(&c, &r), 400);
    assert_true(r.close);
    assert_true(peer_closed(&c));
    client_close(&c);
    /* Chunked: no length to go by; 411 and closed. */
    client_open(&c, cc_otel_port(o));
    SEND(&c, "POST /v1/logs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n");
    assert_int_equal(read_resp(&c, &r), 411);
    assert_true(peer_closed(&c));
    client_close(&c);
    /* Two lengths: 400 and closed. */
    client_open(&c, cc_otel_port(o));
    SEND(&c, "POST /v1/logs HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}");
    assert_int_equal(read_resp(&c, &r), 400);
    assert_true(peer_closed(&c));
    client_close(&c);
    /* A head past 16 KiB: 431 and closed. */
    client_open(&c, cc_otel_port(o));
    char *big = malloc(20000);
    memset(big, 'a', 20000);
    memcpy(big, "POST /v1/logs HTTP/1.1\r\nX: ", 27);
    send_all(&c, big, 20000);
    assert_int_equal(read_resp(&c, &r), 431);
    free(big);
    client_close(&c);

    assert_false(fd_readable(cc_otel_fd(o), 0));
    struct cc_otel_stats st;
    cc_otel_stats(o, &st);
    assert_int_equal(st.bad, 11);
    assert_int_equal(st.requests, 4);
    assert_int_equal(st.events, 0);
    cc_otel_stop(o);
}

static void test_huge_body_is_413_before_it_is_sent(void **state)
{
    (void)state;
    struct cc_otel *o = start();
    char token[128];
    token_of(o, token, sizeof token);
    struct client c;
    struct resp r;
    client_open(&c, cc_otel_port(o));
    char h[1024];
    size_t hl = request_head(h, sizeof h, token, "application/json", NULL, (8u << 20) + 1);
    send_all(&c, h, hl);
    assert_int_equal(read_resp(&c, &r), 413); /* no byte of the body was sent */
    assert_true(r.close);
    assert_true(peer_closed(&c));
    client_close(&c);
    /* With Expect: 100-continue, a refusal comes instead of the go-ahead. */
    client_open(&c, cc_otel_port(o));
    hl = request_head(h, sizeof h, NULL, "application/json", "Expect: 100-continue\r\n", 100);
    send_all(&c, h, hl);
    assert_int_equal(read_resp(&c, &r), 401);
    assert_true(r.close);
    client_close(&c);
    cc_otel_stop(o);
}

/* ---- HTTP/1.1 as clients use it --------------------------------------------------------- */

static void test_expect_continue_and_pipelining(void **state)
{
    (void)state;
    struct cc_otel *o = start();
    char token[128];
    token_of(o, token, sizeof token);
    size_t len;
    char *body = slurp(FIX "/error_500_then_ok/req002.json", &len);
    struct client c;
    struct resp r;
    client_open(&c, cc_otel_port(o));
    char h[1024];
    size_t hl =
        request_head(h, sizeof h, token, "application/json", "Expect: 100-continue\r\n", len);
    send_all(&c, h, hl);
    assert_int_equal(read_resp(&c, &r), 100);
    send_all(&c, body, len);
    assert_int_equal(read_resp(&c, &r), 200);

    /* Three requests in one write, the last asking to close. */
    char *three = malloc(3 * (sizeof h + len));
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        n += request_head(three + n, sizeof h, token, "application/json",
                          i == 2 ? "Connection: close\r\n" : NULL, len);
        memcpy(three + n, body, len);
        n += len;
    }
    send_all(&c, three, n);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(read_resp(&c, &r), 200);
        assert_int_equal(r.close, i == 2);
    }
    assert_true(peer_closed(&c));
    client_close(&c);
    struct cc_otel_event ev[8];
    assert_int_equal(drain(o, ev, 8), 4);
    for (int i = 0; i < 4; i++)
        assert_string_equal(ev[i].request_id, "req_01bzvyuqxlIyYjKoLgipyRaH");
    free(three);
    free(body);
    cc_otel_stop(o);
}

/* ---- bounds --------------------------------------------------------------------------- */

static void test_full_queue_drops_and_counts(void **state)
{
    (void)state;
    struct cc_otel *o = start();
    char token[128];
    token_of(o, token, sizeof token);
    enum { N = 5000, QUEUE = 4096 };
    size_t cap = (size_t)N * 128 + 128, n = 0;
    char *body = malloc(cap);
    n +=
        (size_t)snprintf(body + n, cap - n, "{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[");
    for (int i = 0; i < N; i++)
        n += (size_t)snprintf(body + n, cap - n,
                              "%s{\"body\":{\"stringValue\":\"claude_code.api_request\"},"
                              "\"attributes\":[{\"key\":\"request_id\",\"value\":"
                              "{\"stringValue\":\"req_%d\"}}]}",
                              i ? "," : "", i);
    n += (size_t)snprintf(body + n, cap - n, "]}]}]}");
    assert_true(n < cap);
    struct client c;
    struct resp r;
    client_open(&c, cc_otel_port(o));
    /* Still 200: the CLI must not retry what would only be dropped again. */
    assert_int_equal(post(&c, token, "application/json", NULL, body, n, &r), 200);
    client_close(&c);
    struct cc_otel_stats st;
    cc_otel_stats(o, &st);
    assert_int_equal(st.events, QUEUE);
    assert_int_equal(st.dropped, N - QUEUE);
    struct cc_otel_event ev;
    int got = 0;
    while (cc_otel_next(o, &ev)) {
        char want[32];
        snprintf(want, sizeof want, "req_%d", got++);
        assert_string_equal(ev.request_id, want); /* oldest first, the newest dropped */
    }
    assert_int_equal(got, QUEUE);
    free(body);
    cc_otel_stop(o);
}

static void test_slow_sender_blocks_no_one_and_is_cut_off(void **state)
{
    (void)state;
    struct cc_otel *o = start();
    char token[128];
    token_of(o, token, sizeof token);
    size_t len;
    char *body = slurp(FIX "/subagent/req004.json", &len);
    /* A slowloris: half a head, then nothing; and a sender stuck in its body. */
    struct client slow, stuck, c;
    struct resp r;
    client_open(&slow, cc_otel_port(o));
    SEND(&slow, "POST /v1/logs HTTP/1.1\r\nHost: x\r\n");
    client_open(&stuck, cc_otel_port(o));
    char h[1024];
    size_t hl = request_head(h, sizeof h, token, "application/json", NULL, len);
    send_all(&stuck, h, hl);
    send_all(&stuck, body, len / 2);
    long long t0 = now_ms();
    /* Others are served at once, meanwhile. */
    for (int i = 0; i < 3; i++) {
        client_open(&c, cc_otel_port(o));
        assert_int_equal(post(&c, token, "application/json", NULL, body, len, &r), 200);
        client_close(&c);
    }
    assert_true(now_ms() - t0 < 1000);
    struct cc_otel_event ev[4];
    assert_int_equal(drain(o, ev, 4), 3);
    /* Both are answered 408 and closed when their 5 s are up. */
    assert_int_equal(read_resp(&slow, &r), 408);
    assert_true(r.close);
    assert_true(peer_closed(&slow));
    assert_int_equal(read_resp(&stuck, &r), 408);
    assert_true(peer_closed(&stuck));
    long long took = now_ms() - t0;
    assert_true(took >= 4500 && took < 5000 + 1000);
    client_close(&slow);
    client_close(&stuck);
    assert_int_equal(drain(o, ev, 4), 0);
    free(body);
    cc_otel_stop(o);
}

static void test_more_connections_than_slots(void **state)
{
    (void)state;
    struct cc_otel *o = start();
    char token[128];
    token_of(o, token, sizeof token);
    struct client idle[20], c;
    struct resp r;
    /* Twenty idle connections: the oldest idle ones make room for the newer. */
    for (int i = 0; i < 20; i++)
        client_open(&idle[i], cc_otel_port(o));
    client_open(&c, cc_otel_port(o));
    assert_int_equal(post_json(&c, token, "{}", &r), 200);
    assert_true(peer_closed(&idle[0]));
    for (int i = 0; i < 20; i++)
        client_close(&idle[i]);
    client_close(&c);
    struct cc_otel_stats st;
    cc_otel_stats(o, &st);
    assert_int_equal(st.connections, 21);
    cc_otel_stop(o);
}

static void test_stop_with_connections_open_is_prompt(void **state)
{
    (void)state;
    struct cc_otel *o = start();
    char token[128];
    token_of(o, token, sizeof token);
    struct client idle, head, body;
    struct resp r;
    client_open(&idle, cc_otel_port(o));
    assert_int_equal(post_json(&idle, token, "{}", &r), 200);
    client_open(&head, cc_otel_port(o));
    SEND(&head, "POST /v1/lo");
    client_open(&body, cc_otel_port(o));
    char h[1024];
    size_t hl = request_head(h, sizeof h, token, "application/json", NULL, 1000);
    send_all(&body, h, hl);
    SEND(&body, "{\"resourceLogs\":");
    /* Let the receiver take in the three before it is told to stop. */
    struct cc_otel_stats st;
    long long t0 = now_ms();
    for (;;) {
        cc_otel_stats(o, &st);
        if (st.connections >= 3 || now_ms() - t0 > 2000) break;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    assert_int_equal(st.connections, 3);
    /* An event not taken is freed with the rest. */
    struct client c;
    client_open(&c, cc_otel_port(o));
    size_t len;
    char *fx = slurp(FIX "/subagent/req004.json", &len);
    assert_int_equal(post(&c, token, "application/json", NULL, fx, len, &r), 200);
    free(fx);
    t0 = now_ms();
    cc_otel_stop(o);
    assert_true(now_ms() - t0 < 300);
    assert_true(peer_closed(&idle));
    assert_true(peer_closed(&head));
    assert_true(peer_closed(&body));
    assert_true(peer_closed(&c));
    client_close(&idle);
    client_close(&head);
    client_close(&body);
    client_close(&c);
    cc_otel_stop(NULL);
}

/* ---- the environment and the user's own telemetry ------------------------------------- */

static int env_has(const struct cc_otel *o, const char *want)
{
    for (const char *const *e = cc_otel_env(o); *e; e++)
        if (strcmp(*e, want) == 0) return 1;
    return 0;
}

static void test_env(void **state)
{
    (void)state;
    struct cc_otel *o = start();
    char want[256], token[128];
    assert_true(cc_otel_port(o) > 0);
    assert_true(env_has(o, "CLAUDE_CODE_ENABLE_TELEMETRY=1"));
    assert_true(env_has(o, "OTEL_LOGS_EXPORTER=otlp"));
    assert_true(env_has(o, "OTEL_METRICS_EXPORTER=none"));
    assert_true(env_has(o, "OTEL_TRACES_EXPORTER=none"));
    assert_true(env_has(o, "OTEL_EXPORTER_OTLP_PROTOCOL=http/json"));
    assert_true(env_has(o, "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL=http/json"));
    assert_true(env_has(o, "OTEL_LOGS_EXPORT_INTERVAL=200"));
    assert_true(env_has(o, "CLAUDE_CODE_OTEL_SHUTDOWN_TIMEOUT_MS=1000"));
    snprintf(want, sizeof want, "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=http://127.0.0.1:%d/v1/logs",
             cc_otel_port(o));
    assert_true(env_has(o, want));
    token_of(o, token, sizeof token);
    assert_int_equal(strlen(token), 64);
    assert_int_equal(strspn(token, "0123456789abcdef"), 64);
    int n = 0;
    for (const char *const *e = cc_otel_env(o); *e; e++) {
        assert_null(strstr(*e, "OTEL_LOG_USER_PROMPTS")); /* content stays redacted */
        assert_null(strstr(*e, "OTEL_LOG_TOOL"));
        n++;
    }
    assert_int_equal(n, 10);
    cc_otel_stop(o);
}

static const char *const user_vars[] = {"CLAUDE_CODE_ENABLE_TELEMETRY",
                                        "OTEL_LOGS_EXPORTER",
                                        "OTEL_METRICS_EXPORTER",
                                        "OTEL_TRACES_EXPORTER",
                                        "OTEL_EXPORTER_OTLP_ENDPOINT",
                                        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                                        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                                        "OTEL_EXPORTER_OTLP_HEADERS",
                                        "OTEL_EXPORTER_OTLP_PROTOCOL",
                                        NULL};

static void clear_user_vars(void)
{
    for (const char *const *v = user_vars; *v; v++)
        unsetenv(*v);
}

static int configured_with(const char *name, const char *value)
{
    clear_user_vars();
    setenv(name, value, 1);
    int r = cc_otel_user_configured();
    clear_user_vars();
    return r;
}

static void test_user_configured_rule(void **state)
{
    (void)state;
    clear_user_vars();
    assert_false(cc_otel_user_configured());
    assert_true(configured_with("CLAUDE_CODE_ENABLE_TELEMETRY", "1"));
    assert_true(configured_with("CLAUDE_CODE_ENABLE_TELEMETRY", "true"));
    assert_false(configured_with("CLAUDE_CODE_ENABLE_TELEMETRY", "0"));
    assert_false(configured_with("CLAUDE_CODE_ENABLE_TELEMETRY", "False"));
    assert_false(configured_with("CLAUDE_CODE_ENABLE_TELEMETRY", ""));
    assert_true(configured_with("OTEL_LOGS_EXPORTER", "otlp"));
    assert_true(configured_with("OTEL_LOGS_EXPORTER", "console"));
    assert_false(configured_with("OTEL_LOGS_EXPORTER", "none"));
    assert_true(configured_with("OTEL_METRICS_EXPORTER", "otlp,prometheus"));
    assert_false(configured_with("OTEL_METRICS_EXPORTER", "NONE"));
    assert_true(configured_with("OTEL_TRACES_EXPORTER", "otlp"));
    assert_true(configured_with("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"));
    assert_true(configured_with("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://c:4318/v1/logs"));
    assert_true(configured_with("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://c:4318"));
    assert_false(configured_with("OTEL_EXPORTER_OTLP_ENDPOINT", ""));
    /* Inert on their own. */
    assert_false(configured_with("OTEL_EXPORTER_OTLP_HEADERS", "a=b"));
    assert_false(configured_with("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subagent_run_decoded_field_by_field),
        cmocka_unit_test(test_failed_call_and_exhausted_retries),
        cmocka_unit_test(test_other_value_encodings),
        cmocka_unit_test(test_gzip_body),
        cmocka_unit_test(test_wrong_token_is_401_and_no_event),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_huge_body_is_413_before_it_is_sent),
        cmocka_unit_test(test_expect_continue_and_pipelining),
        cmocka_unit_test(test_full_queue_drops_and_counts),
        cmocka_unit_test(test_slow_sender_blocks_no_one_and_is_cut_off),
        cmocka_unit_test(test_more_connections_than_slots),
        cmocka_unit_test(test_stop_with_connections_open_is_prompt),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_user_configured_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
