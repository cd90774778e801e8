/*
 * http_curl.c - HTTPS through libcurl, loaded with dlopen() only when a client needs it.
 *
 * Loading libcurl maps its whole dependency tree (OpenSSL, GnuTLS, Kerberos, LDAP, ...):
 * 8.6 MB of resident memory. Programs that talk plain HTTP, or trace nothing, should not
 * pay for it, so the library does not link libcurl; the first https:// client loads it.
 * The transfer runs on a multi handle, so that each step waits at most a tick, the wait can
 * be woken and the abort time checked precisely (libcurl's progress callback may be a
 * second apart when idle).
 */
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "http.h"
#include "invariant.h"
#include "langfuse/langfuse.h"

int64_t lf__mono_ns(void);

static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_perform)(CURLM *, int *);
    CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd *, unsigned, int, int *);
    CURLMcode (*multi_wakeup)(CURLM *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    CURLMcode (*multi_cleanup)(CURLM *);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    int loaded; /* 1 ok, -1 failed */
    char why[200];
} cu;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void load(void)
{
    const char *names[] = {"libcurl.so.4", "libcurl-gnutls.so.4", "libcurl.so"};
    void *lib = NULL;
    for (size_t i = 0; i < 3 && !lib; i++)
        lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(cu.why, sizeof(cu.why), "https needs libcurl (Debian: libcurl4): %s", dlerror());
        cu.loaded = -1;
        return;
    }
#define SYM(field, name)                                                                           \
    do {                                                                                           \
        *(void **)&cu.field = dlsym(lib, name);                                                    \
        if (!cu.field) {                                                                           \
            snprintf(cu.why, sizeof(cu.why), "libcurl lacks %s (7.68 or later is needed)", name);  \
            cu.loaded = -1;                                                                        \
            return;                                                                                \
        }                                                                                          \
    } while (0)
    SYM(global_init, "curl_global_init");
    SYM(easy_init, "curl_easy_init");
    SYM(easy_setopt, "curl_easy_setopt");
    SYM(easy_getinfo, "curl_easy_getinfo");
    SYM(easy_cleanup, "curl_easy_cleanup");
    SYM(easy_strerror, "curl_easy_strerror");
    SYM(multi_init, "curl_multi_init");
    SYM(multi_add_handle, "curl_multi_add_handle");
    SYM(multi_remove_handle, "curl_multi_remove_handle");
    SYM(multi_perform, "curl_multi_perform");
    SYM(multi_poll, "curl_multi_poll");
    SYM(multi_wakeup, "curl_multi_wakeup");
    SYM(multi_info_read, "curl_multi_info_read");
    SYM(multi_cleanup, "curl_multi_cleanup");
    SYM(slist_append, "curl_slist_append");
    SYM(slist_free_all, "curl_slist_free_all");
#undef SYM
    if (cu.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(cu.why, sizeof(cu.why), "curl_global_init failed");
        cu.loaded = -1;
        return;
    }
    cu.loaded = 1; /* never unloaded: libcurl does not support it */
}

struct curlh {
    struct lf__http base;
    CURLM *multi;
    CURL *easy;
    struct curl_slist *hdr_plain, *hdr_gzip;
    struct lf__buf resp;
    long retry_after_ms;
    char *url;
    size_t url_cap;
    int in_flight; /* the easy handle is on the multi handle */
};

static size_t on_body(char *ptr, size_t size, size_t n, void *ud)
{
    struct curlh *h = ud;
    size_t len = size * n;
    if (h->resp.len < LF__RESP_MAX) {
        size_t room = LF__RESP_MAX - h->resp.len;
        lf__buf_append(&h->resp, ptr, len < room ? len : room);
    }
    return len;
}

static size_t on_header(char *ptr, size_t size, size_t n, void *ud)
{
    struct curlh *h = ud;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof(name) && strncasecmp(ptr, name, sizeof(name) - 1) == 0) {
        char v[64];
        size_t vl = len - (sizeof(name) - 1);
        if (vl >= sizeof(v)) vl = sizeof(v) - 1;
        memcpy(v, ptr + sizeof(name) - 1, vl);
        v[vl] = '\0';
        char *e = v + strlen(v);
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
            *--e = '\0';
        h->retry_after_ms = lf__parse_retry_after(v, (long long)time(NULL));
    }
    return len;
}

static int curl_begin(struct lf__http *base, const char *path, const char *body, size_t len, int gz,
                      int timeout_ms, struct lf__http_result *res)
{
    struct curlh *h = (struct curlh *)base;
    LF_INVARIANT(!h->in_flight);
    lf__buf_reset(&h->resp);
    h->retry_after_ms = -1;
    long long at = base->opts.abort_at ? atomic_load(base->opts.abort_at) : 0;
    if (at) {
        long long left_ms = (at - lf__mono_ns()) / 1000000;
        if (left_ms <= 0) {
            res->timed_out = res->aborted = 1;
            snprintf(res->error, sizeof(res->error), "deadline passed before the request");
            return -1;
        }
        if (left_ms < timeout_ms) timeout_ms = (int)left_ms;
    }
    size_t need = strlen(base->opts.base_url) + strlen(path) + 1;
    if (need > h->url_cap) {
        char *u = lf__realloc(h->url, need);
        if (!u) {
            snprintf(res->error, sizeof(res->error), "out of memory");
            return -1;
        }
        h->url = u;
        h->url_cap = need;
    }
    snprintf(h->url, h->url_cap, "%s%s", base->opts.base_url, path);
    CURL *e = h->easy;
    cu.easy_setopt(e, CURLOPT_URL, h->url);
    cu.easy_setopt(e, CURLOPT_POST, 1L);
    cu.easy_setopt(e, CURLOPT_POSTFIELDS, body);
    cu.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    cu.easy_setopt(e, CURLOPT_HTTPHEADER, gz ? h->hdr_gzip : h->hdr_plain);
    cu.easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 1));
    cu.easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 1));
    if (cu.multi_add_handle(h->multi, h->easy) != CURLM_OK) {
        snprintf(res->error, sizeof(res->error), "out of memory");
        return -1;
    }
    h->in_flight = 1;
    return 0;
}

/* Ends the transfer with libcurl's verdict `rc`, filling res. */
static enum lf__http_step curl_end(struct curlh *h, CURLcode rc, struct lf__http_result *res)
{
    cu.multi_remove_handle(h->multi, h->easy);
    h->in_flight = 0;
    res->retry_after_ms = h->retry_after_ms;
    if (h->resp.data && !lf__buf_failed(&h->resp)) {
        res->body = lf__buf_steal(&h->resp, &res->body_len);
        lf__buf_init(&h->resp, LF__RESP_MAX + 1);
    }
    if (rc != CURLE_OK) {
        res->timed_out = rc == CURLE_OPERATION_TIMEDOUT || res->aborted;
        snprintf(res->error, sizeof(res->error), "%s",
                 res->aborted ? "deadline passed during the request" : cu.easy_strerror(rc));
        return LF__HTTP_FAILED;
    }
    long status = 0;
    cu.easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
    res->status = (int)status;
    return LF__HTTP_DONE;
}

/* Lets libcurl work; whether the transfer ended, and how (*rc). */
static int curl_done(struct curlh *h, CURLcode *rc)
{
    int running = 1;
    if (cu.multi_perform(h->multi, &running) != CURLM_OK) {
        *rc = CURLE_RECV_ERROR;
        return 1;
    }
    if (running) return 0;
    *rc = CURLE_OK;
    int left;
    CURLMsg *m;
    while ((m = cu.multi_info_read(h->multi, &left)))
        if (m->msg == CURLMSG_DONE && m->easy_handle == h->easy) *rc = m->data.result;
    return 1;
}

static enum lf__http_step curl_step(struct lf__http *base, struct lf__http_result *res)
{
    struct curlh *h = (struct curlh *)base;
    CURLcode rc;
    if (curl_done(h, &rc)) return curl_end(h, rc, res);
    long long at = base->opts.abort_at ? atomic_load(base->opts.abort_at) : 0;
    long long now = lf__mono_ns();
    int wait = LF__HTTP_TICK_MS;
    if (at) {
        if (now >= at) {
            res->aborted = 1;
            return curl_end(h, CURLE_ABORTED_BY_CALLBACK, res);
        }
        if ((at - now) / 1000000 < wait) wait = (int)((at - now) / 1000000) + 1;
    }
    cu.multi_poll(h->multi, NULL, 0, wait, NULL); /* lf__http_wakeup() ends it early */
    if (curl_done(h, &rc)) return curl_end(h, rc, res);
    return LF__HTTP_AGAIN;
}

static void curl_wakeup(struct lf__http *base)
{
    struct curlh *h = (struct curlh *)base;
    cu.multi_wakeup(h->multi);
}

static void curlh_free(struct lf__http *base, int abandon)
{
    struct curlh *h = (struct curlh *)base;
    /* After fork the TLS session belongs to the parent: cleaning up would write to it. */
    if (!abandon) {
        if (h->in_flight) cu.multi_remove_handle(h->multi, h->easy);
        if (h->easy) cu.easy_cleanup(h->easy);
        if (h->multi) cu.multi_cleanup(h->multi);
        if (cu.slist_free_all) {
            cu.slist_free_all(h->hdr_plain);
            cu.slist_free_all(h->hdr_gzip);
        }
    }
    lf__buf_free(&h->resp);
    free(h->url);
    free(h);
}

static const struct lf__http_impl curl_impl = {curl_begin, curl_step, curl_wakeup, curlh_free};

/* The request headers, plus `extra` if not NULL; NULL when memory ran out. */
static struct curl_slist *header_list(const char *extra)
{
    static const char *const common[] = {"Content-Type: application/json",
                                         "Expect:", LF__HDR_INGESTION_VERSION, LF__HDR_SDK_NAME,
                                         LF__HDR_SDK_VERSION};
    struct curl_slist *list = NULL;
    for (size_t i = 0; i <= sizeof(common) / sizeof(common[0]); i++) {
        const char *h = i < sizeof(common) / sizeof(common[0]) ? common[i] : extra;
        if (!h) continue;
        struct curl_slist *more = cu.slist_append(list, h);
        if (!more) {
            cu.slist_free_all(list);
            return NULL;
        }
        list = more;
    }
    return list;
}

struct lf__http *lf__http_curl_new(const struct lf__http_opts *opts, char *err, size_t errlen)
{
    pthread_once(&load_once, load);
    if (cu.loaded != 1) {
        snprintf(err, errlen, "%s", cu.why);
        return NULL;
    }
    struct curlh *h = lf__calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->base.impl = &curl_impl;
    h->base.opts = *opts;
    lf__buf_init(&h->resp, LF__RESP_MAX + 1);
    h->multi = cu.multi_init();
    h->easy = cu.easy_init();
    h->hdr_plain = header_list(NULL);
    h->hdr_gzip = header_list("Content-Encoding: gzip");
    if (!h->multi || !h->easy || !h->hdr_plain || !h->hdr_gzip) {
        curlh_free(&h->base, 0);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    CURL *e = h->easy;
    cu.easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    cu.easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    cu.easy_setopt(e, CURLOPT_USERPWD, opts->userpwd); /* libcurl keeps its own copy */
    cu.easy_setopt(e, CURLOPT_USERAGENT, "liblangfuse/" LF_VERSION_STRING);
    cu.easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    cu.easy_setopt(e, CURLOPT_WRITEDATA, h);
    cu.easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    cu.easy_setopt(e, CURLOPT_HEADERDATA, h);
    cu.easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* Redirects would resend the credentials to another host; Langfuse does not redirect. */
    cu.easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    cu.easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
    const char *ca = getenv("LANGFUSE_CA_BUNDLE"); /* a private CA, e.g. in a cluster */
    if (ca && *ca) cu.easy_setopt(e, CURLOPT_CAINFO, ca);
    return &h->base;
}
