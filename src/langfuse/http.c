/*
 * http.c - the HTTP client's front: picks the implementation by URL scheme, and holds what
 * both share: the response head parser, chunked decoding, Retry-After.
 *
 * The parsers are strict and bounded (they are fed by a remote peer): header lines longer
 * than the head buffer, status codes outside 100..599, malformed lengths or chunk sizes
 * are errors, never undefined behaviour. fuzz/fuzz_http_head.c exercises them.
 */
#include "http.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "alloc.h"
#include "langfuse/langfuse.h"

struct lf__http *lf__http_new(const struct lf__http_opts *opts, char *err, size_t errlen)
{
    if (!strncmp(opts->base_url, "http://", 7)) return lf__http_plain_new(opts, err, errlen);
    if (!strncmp(opts->base_url, "https://", 8)) return lf__http_curl_new(opts, err, errlen);
    snprintf(err, errlen, "the host must start with http:// or https://");
    return NULL;
}

void lf__http_free(struct lf__http *h)
{
    if (h) h->impl->free(h, 0);
}

void lf__http_abandon(struct lf__http *h)
{
    if (h) h->impl->free(h, 1);
}

void lf__http_wakeup(struct lf__http *h)
{
    if (h) h->impl->wakeup(h);
}

int lf__http_begin(struct lf__http *h, const char *path, const char *body, size_t len, int gz,
                   int timeout_ms, struct lf__http_result *res)
{
    memset(res, 0, sizeof(*res));
    res->retry_after_ms = -1;
    return h->impl->begin(h, path, body, len, gz, timeout_ms, res);
}

enum lf__http_step lf__http_step(struct lf__http *h, struct lf__http_result *res)
{
    return h->impl->step(h, res);
}

void lf__http_result_free(struct lf__http_result *res)
{
    free(res->body);
    res->body = NULL;
}

/* ---- response head ------------------------------------------------------------------ */

long lf__http_parse_head(const char *buf, size_t len, int *status, long long *content_length,
                         int *chunked, int *close, long *retry_after_ms, long long now)
{
    const char *end = NULL;
    for (size_t i = 3; i < len; i++)
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
            end = buf + i + 1;
            break;
        }
    if (!end) return 0;
    *status = 0;
    *content_length = -1;
    *chunked = 0;
    *close = 0;
    *retry_after_ms = -1;
    /* "HTTP/1.1 200 OK\r\n" */
    if (end - buf < 14 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') ||
        buf[8] != ' ' || !isdigit((unsigned char)buf[9]) || !isdigit((unsigned char)buf[10]) ||
        !isdigit((unsigned char)buf[11]) || (buf[12] != ' ' && buf[12] != '\r'))
        return -1;
    *status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    if (*status < 100 || *status > 599) return -1;
    if (buf[7] == '0') *close = 1; /* HTTP/1.0 closes unless told otherwise; we do not ask */
    const char *p = (const char *)memchr(buf, '\n', (size_t)(end - buf)) + 1;
    while (p < end - 2) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol || eol == p || eol[-1] != '\r') return -1;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p) return -1;
        size_t nlen = (size_t)(colon - p);
        const char *v = colon + 1;
        while (v < eol - 1 && (*v == ' ' || *v == '\t'))
            v++;
        size_t vlen = (size_t)(eol - 1 - v);
        while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        char val[128];
        size_t cl = vlen < sizeof(val) - 1 ? vlen : sizeof(val) - 1;
        memcpy(val, v, cl);
        val[cl] = '\0';
        if (nlen == 14 && !strncasecmp(p, "content-length", 14)) {
            char *e;
            if (!isdigit((unsigned char)val[0]) || vlen > 18) return -1;
            long long n = strtoll(val, &e, 10);
            if (*e || (*content_length >= 0 && *content_length != n)) return -1;
            *content_length = n;
        } else if (nlen == 17 && !strncasecmp(p, "transfer-encoding", 17)) {
            if (strcasestr(val, "chunked")) *chunked = 1;
        } else if (nlen == 10 && !strncasecmp(p, "connection", 10)) {
            if (strcasestr(val, "close"))
                *close = 1;
            else if (strcasestr(val, "keep-alive"))
                *close = 0;
        } else if (nlen == 11 && !strncasecmp(p, "retry-after", 11)) {
            *retry_after_ms = lf__parse_retry_after(val, now);
        }
        p = eol + 1;
    }
    return (long)(end - buf);
}

enum {
    CH_SIZE,
    CH_EXT,
    CH_SIZE_LF,
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TRAILER,
    CH_TRAILER_LINE,
    CH_TRAILER_LF,
    CH_DONE
};

/* One state machine over the bytes as they come (81 lines): a state per byte of the chunked
 * grammar, each a case of one switch, reads better whole than spread over functions. */
long lf__chunked_feed(struct lf__chunked *c, const char *in, size_t n, char *out, size_t keep,
                      size_t *out_len, int *done)
{
    size_t i = 0;
    *done = c->state == CH_DONE;
    while (i < n && c->state != CH_DONE) {
        char ch = in[i];
        switch (c->state) {
        case CH_SIZE:
            if (isxdigit((unsigned char)ch)) {
                if (++c->digits > 15) return -1;
                c->left = c->left * 16 +
                          (unsigned long long)(isdigit((unsigned char)ch)
                                                   ? ch - '0'
                                                   : (tolower((unsigned char)ch) - 'a' + 10));
                i++;
            } else if (c->digits && (ch == ';' || ch == ' ' || ch == '\t')) {
                c->state = CH_EXT;
                i++;
            } else if (c->digits && ch == '\r') {
                c->state = CH_SIZE_LF;
                i++;
            } else {
                return -1;
            }
            break;
        case CH_EXT:
            if (ch == '\r') c->state = CH_SIZE_LF;
            i++;
            break;
        case CH_SIZE_LF:
            if (ch != '\n') return -1;
            i++;
            c->digits = 0;
            c->state = c->left ? CH_DATA : CH_TRAILER;
            break;
        case CH_DATA: {
            size_t take = n - i < c->left ? n - i : (size_t)c->left;
            if (*out_len < keep) {
                size_t room = keep - *out_len;
                size_t k = take < room ? take : room;
                memcpy(out + *out_len, in + i, k);
                *out_len += k;
            }
            i += take;
            c->left -= take;
            if (!c->left) c->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
            if (ch != '\r') return -1;
            c->state = CH_DATA_LF;
            i++;
            break;
        case CH_DATA_LF:
            if (ch != '\n') return -1;
            c->state = CH_SIZE;
            i++;
            break;
        case CH_TRAILER: /* start of a trailer line, or the final CRLF */
            c->state = ch == '\r' ? CH_TRAILER_LF : CH_TRAILER_LINE;
            i++;
            break;
        case CH_TRAILER_LINE:
            if (ch == '\n') c->state = CH_TRAILER;
            i++;
            break;
        case CH_TRAILER_LF:
            if (ch != '\n') return -1;
            c->state = CH_DONE;
            i++;
            break;
        }
    }
    *done = c->state == CH_DONE;
    return (long)i;
}

long lf__parse_retry_after(const char *v, long long now)
{
    while (isspace((unsigned char)*v))
        v++;
    if (isdigit((unsigned char)*v)) {
        char *end;
        double s = strtod(v, &end);
        while (isspace((unsigned char)*end))
            end++;
        if (*end || s < 0 || s > 86400) return -1;
        return (long)(s * 1000.0);
    }
    /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end) return -1;
    long long when = (long long)timegm(&tm);
    long long d = when - now;
    if (d < 0) d = 0;
    if (d > 86400) return -1;
    return (long)(d * 1000);
}
