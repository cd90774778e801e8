/*
 * http.c - the exporter's HTTP client on libcurl, and gzip on zlib; see http.h.
 *
 * libcurl does no retries of its own; the exporter owns the retry policy and this file
 * only reports what happened: a status, a Retry-After, or the reason nothing came back.
 */
#include "http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

#include "alloc.h"
#include "buf.h"
#include "langfuse/langfuse.h"

int64_t lf__mono_ns(void);

struct lf__http {
    CURLM *multi; /* drives the transfer so that the abort time is checked precisely */
    CURL *easy;
    struct curl_slist *hdr_plain, *hdr_gzip;
    atomic_llong *abort_at;
    struct lf__buf resp;
    long retry_after_ms;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct lf__http *h = ud;
    size_t len = size * n;
    if (h->resp.len < LF__RESP_MAX) {
        size_t room = LF__RESP_MAX - h->resp.len;
        lf__buf_append(&h->resp, p, len < room ? len : room);
    }
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct lf__http *h = ud;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof(name) && strncasecmp(p, name, sizeof(name) - 1) == 0) {
        char v[64];
        size_t vl = len - (sizeof(name) - 1);
        if (vl >= sizeof(v))
            vl = sizeof(v) - 1;
        memcpy(v, p + sizeof(name) - 1, vl);
        v[vl] = '\0';
        h->retry_after_ms = lf__parse_retry_after(v, (long long)time(NULL));
    }
    return len;
}

struct lf__http *lf__http_new(const char *userpwd, atomic_llong *abort_at)
{
    struct lf__http *h = lf__calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->abort_at = abort_at;
    lf__buf_init(&h->resp, LF__RESP_MAX + 1);
    h->multi = curl_multi_init();
    h->easy = curl_easy_init();
    if (!h->multi || !h->easy)
        goto fail;
    struct curl_slist *a = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *b = a ? curl_slist_append(a, "Expect:") : NULL;
    h->hdr_plain = b;
    if (!b) {
        curl_slist_free_all(a);
        goto fail;
    }
    struct curl_slist *c = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *d = c ? curl_slist_append(c, "Expect:") : NULL;
    struct curl_slist *g = d ? curl_slist_append(d, "Content-Encoding: gzip") : NULL;
    h->hdr_gzip = g;
    if (!g) {
        curl_slist_free_all(d ? d : c);
        goto fail;
    }
    CURL *e = h->easy;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(e, CURLOPT_USERPWD, userpwd);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "liblangfuse/" LF_VERSION_STRING);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* Redirects would resend credentials to another host; Langfuse does not redirect. */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    return h;
fail:
    lf__http_free(h);
    return NULL;
}

void lf__http_free(struct lf__http *h)
{
    if (!h)
        return;
    if (h->easy)
        curl_easy_cleanup(h->easy);
    if (h->multi)
        curl_multi_cleanup(h->multi);
    curl_slist_free_all(h->hdr_plain);
    curl_slist_free_all(h->hdr_gzip);
    lf__buf_free(&h->resp);
    free(h);
}

void lf__http_abandon(struct lf__http *h)
{
    /* Deliberately leaked: cleaning up would close (and for TLS, write to) sockets that the
     * parent process is still using. One handle per fork, bounded. */
    (void)h;
}

/*
 * Runs the transfer on the multi handle, waking at least every POLL_MS to check the abort
 * time: libcurl's own progress callback may go a whole second between calls on an idle
 * connection, which is too coarse for a shutdown deadline.
 */
#define POLL_MS 50
static CURLcode perform(struct lf__http *h, int *aborted)
{
    CURLcode result = CURLE_OK;
    int running = 1;
    *aborted = 0;
    if (curl_multi_add_handle(h->multi, h->easy) != CURLM_OK)
        return CURLE_OUT_OF_MEMORY;
    while (running) {
        if (curl_multi_perform(h->multi, &running) != CURLM_OK) {
            result = CURLE_RECV_ERROR;
            break;
        }
        if (!running)
            break;
        long long at = atomic_load(h->abort_at);
        long long now = lf__mono_ns();
        int wait = POLL_MS;
        if (at) {
            if (now >= at) {
                *aborted = 1;
                result = CURLE_ABORTED_BY_CALLBACK;
                break;
            }
            if ((at - now) / 1000000 < wait)
                wait = (int)((at - now) / 1000000) + 1;
        }
        curl_multi_poll(h->multi, NULL, 0, wait, NULL);
    }
    if (!*aborted) {
        int left;
        CURLMsg *m;
        while ((m = curl_multi_info_read(h->multi, &left)))
            if (m->msg == CURLMSG_DONE && m->easy_handle == h->easy)
                result = m->data.result;
    }
    curl_multi_remove_handle(h->multi, h->easy);
    return result;
}

int lf__http_post(struct lf__http *h, const char *url, const char *body, size_t len, int gz,
                  int timeout_ms, struct lf__http_result *res)
{
    memset(res, 0, sizeof(*res));
    res->retry_after_ms = -1;
    lf__buf_reset(&h->resp);
    h->retry_after_ms = -1;

    long long abort_at = atomic_load(h->abort_at);
    if (abort_at) {
        long long left_ms = (abort_at - lf__mono_ns()) / 1000000;
        if (left_ms <= 0) {
            res->timed_out = res->aborted = 1;
            snprintf(res->error, sizeof(res->error), "deadline passed before the request");
            return -1;
        }
        if (left_ms < timeout_ms)
            timeout_ms = (int)left_ms;
    }
    CURL *e = h->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, gz ? h->hdr_gzip : h->hdr_plain);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 1));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 1));

    CURLcode rc = perform(h, &res->aborted);
    res->retry_after_ms = h->retry_after_ms;
    if (h->resp.data && !lf__buf_failed(&h->resp)) {
        res->body = lf__buf_steal(&h->resp, &res->body_len);
        lf__buf_init(&h->resp, LF__RESP_MAX + 1);
    }
    if (rc != CURLE_OK) {
        res->timed_out = rc == CURLE_OPERATION_TIMEDOUT || res->aborted;
        snprintf(res->error, sizeof(res->error), "%s",
                 res->aborted ? "deadline passed during the request" : curl_easy_strerror(rc));
        return -1;
    }
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    res->status = (int)status;
    return 0;
}

void lf__http_result_free(struct lf__http_result *res)
{
    free(res->body);
    res->body = NULL;
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
        if (*end || s < 0 || s > 86400)
            return -1;
        return (long)(s * 1000.0);
    }
    /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end)
        return -1;
    long long when = (long long)timegm(&tm);
    long long d = when - now;
    if (d < 0)
        d = 0;
    if (d > 86400)
        return -1;
    return (long)(d * 1000);
}

int lf__gzip(const char *in, size_t len, int level, char **out, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    /* 15 + 16: zlib writes a gzip header and trailer */
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t cap = deflateBound(&z, (uLong)len);
    char *buf = lf__malloc(cap);
    if (!buf) {
        deflateEnd(&z);
        return -1;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)buf;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = z.total_out;
    return 0;
}

int lf__gunzip(const char *in, size_t len, size_t max, char **out, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 15 + 32) != Z_OK) /* +32: gzip or zlib header, detected */
        return -1;
    struct lf__buf b;
    /* one byte over the cap is room to notice that the content is larger */
    lf__buf_init(&b, max + 1);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    int rc = Z_OK;
    while (rc == Z_OK) {
        size_t room = b.max - b.len;
        size_t chunk = room < 65536 ? room : 65536;
        if (chunk == 0 || lf__buf_reserve(&b, chunk)) {
            inflateEnd(&z);
            int big = chunk == 0 || b.toobig;
            lf__buf_free(&b);
            return big ? -2 : -1;
        }
        z.next_out = (Bytef *)b.data + b.len;
        z.avail_out = (uInt)chunk;
        rc = inflate(&z, Z_NO_FLUSH);
        b.len = (size_t)((char *)z.next_out - b.data);
        if (rc == Z_BUF_ERROR && z.avail_in == 0)
            break;
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END || b.len > max) {
        int big = b.len > max;
        lf__buf_free(&b);
        return big ? -2 : -1;
    }
    b.data[b.len] = '\0';
    *out = lf__buf_steal(&b, out_len);
    return 0;
}
