/*
 * lftrace - show a Langfuse trace as a tree, with durations, tokens and cost.
 *
 *   lftrace [--host URL] TRACE_ID      read it from a Langfuse server's public API
 *                                      (LANGFUSE_HOST, LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY)
 *   lftrace --session ID [--host URL]  every trace of a session
 *
 * The tree is what a person reads in Langfuse's trace view: each observation with its
 * type, model, duration, token usage and cost, errors flagged, children under parents in
 * start order, and the totals at the top.
 *
 * Servers of two lines are met: Langfuse v4 reads through GET /api/public/v2/observations
 * and answers 404 on the v1 trace endpoints; v3 has only those (v2 observations answer 404
 * unless the v4 write mode is on). lftrace asks which, once a run, and needs no flag: v4's
 * observations are grouped into v3's trace view (trace_tree.c), so one printer prints both
 * and the same trace reads the same on either.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace_tree.h"

/* A response body larger than this is not one we print (a trace view, or one page). */
#define LFT_MAX_BODY (64u << 20)
/* v2 observations per page: the server's maximum (its default is 50). */
#define LFT_PAGE_LIMIT 1000
/* Pages followed for one query, and observations read in one run: far beyond any session
   we trace; past them lftrace stops with an error rather than print totals that are not the
   trace's. */
#define LFT_MAX_PAGES 50
#define LFT_MAX_OBSERVATIONS 50000
/* Traces of one session read from v4: the newest, as many as the v3 path lists. */
#define LFT_MAX_TRACES 100
/* A v2 cursor is base64 of {lastStartTimeTo, lastTraceId, lastId}: about 150 bytes. */
#define LFT_MAX_CURSOR 512
/* The v2 field groups the tree shows: names, levels, status and the trace's attributes
   (basic, trace_context), a span's own usage kept in metadata, model, usage and cost. Not io:
   the tree does not show input and output, and with them a page of 1000 observations could
   pass LFT_MAX_BODY (and makes the server join its full events table). */
#define LFT_V2_FIELDS "core,basic,metadata,model,usage,trace_context"

enum lft_line { LFT_V3 = 3, LFT_V4 = 4 };

struct lft_server {
    const char *host;  /* base URL, borrowed from argv or the environment */
    char userpwd[512]; /* "public:secret" for Basic auth; wiped before exit */
    int verbose;       /* say which line the server runs, on stderr */
};

static void usage(FILE *f)
{
    fprintf(f, "usage: lftrace [-v] [--host URL] TRACE_ID\n"
               "       lftrace [-v] [--host URL] --session SESSION_ID\n"
               "       lftrace FILE...          (OTLP or ingestion bodies, .json or .json.gz,\n"
               "                                 e.g. the spool's files)\n"
               "Keys come from LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY; the host from\n"
               "--host or LANGFUSE_HOST. Reads Langfuse v4 (GET /api/public/v2/observations)\n"
               "and v3 (GET /api/public/traces), asking the server which it runs; -v says\n"
               "which it found.\n");
}

struct membuf {
    char *p;    /* the body so far, NUL-terminated; caller frees */
    size_t n;   /* its length */
    int toobig; /* the body passed LFT_MAX_BODY and was cut off */
};

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    struct membuf *m = ud;
    size_t len = size * n;
    if (m->n + len > LFT_MAX_BODY) {
        m->toobig = 1;
        return 0;
    }
    char *q = realloc(m->p, m->n + len + 1);
    if (!q) return 0;
    memcpy(q + m->n, p, len);
    m->p = q;
    m->n += len;
    q[m->n] = '\0';
    return len;
}

/* An error body on the one line an error gets: control characters become spaces. */
static void print_body(FILE *f, const char *s, size_t max)
{
    size_t n = 0;
    for (; s && s[n] && n < max; n++)
        fputc((unsigned char)s[n] < ' ' ? ' ' : s[n], f);
}

/* GETs host+path with Basic auth. Returns the JSON of a 200 answer (a new reference), or
   NULL after one line on stderr; *status (may be NULL) gets the HTTP status, 0 when none came.
   With quiet_404 a 404 is left to the caller to explain. */
static json_t *api_get(const struct lft_server *srv, const char *path, int quiet_404, long *status)
{
    char url[4096];
    long code = 0;
    if (status) *status = 0;
    if ((size_t)snprintf(url, sizeof(url), "%s%s", srv->host, path) >= sizeof(url)) {
        fprintf(stderr, "lftrace: %.100s...: URL longer than %zu bytes\n", url, sizeof(url));
        return NULL;
    }
    CURL *e = curl_easy_init();
    if (!e) {
        fprintf(stderr, "lftrace: %s: cannot start libcurl\n", url);
        return NULL;
    }
    struct membuf m = {NULL, 0, 0};
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_USERPWD, srv->userpwd);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &m);
    CURLcode rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(e);
    json_t *v = NULL;
    if (m.toobig)
        fprintf(stderr, "lftrace: %s: answer larger than %u MiB\n", url, LFT_MAX_BODY >> 20);
    else if (rc != CURLE_OK)
        fprintf(stderr, "lftrace: %s: %s\n", url, curl_easy_strerror(rc));
    else if (code != 200) {
        if (!(quiet_404 && code == 404)) {
            fprintf(stderr, "lftrace: %s: HTTP %ld: ", url, code);
            print_body(stderr, m.p, 200);
            fputc('\n', stderr);
        }
    } else {
        json_error_t err;
        v = json_loadb(m.p ? m.p : "", m.n, 0, &err);
        if (!v) fprintf(stderr, "lftrace: %s: not JSON: %s\n", url, err.text);
    }
    if (status && rc == CURLE_OK) *status = code;
    free(m.p);
    return v;
}

/* Which line the server runs: v2 observations answer on v4; on 404 the v1 trace list must
   answer (v3). Returns LFT_V4 or LFT_V3, or -1 after one line on stderr. */
static int detect_line(const struct lft_server *srv)
{
    long status;
    json_t *v = api_get(srv, "/api/public/v2/observations?fields=core&limit=1", 1, &status);
    if (v) {
        int list = json_is_array(json_object_get(v, "data"));
        json_decref(v);
        if (!list) {
            fprintf(stderr,
                    "lftrace: %s: GET /api/public/v2/observations answers 200 without a data "
                    "list: not a Langfuse server\n",
                    srv->host);
            return -1;
        }
        if (srv->verbose)
            fprintf(stderr, "lftrace: %s: Langfuse v4 (GET /api/public/v2/observations)\n",
                    srv->host);
        return LFT_V4;
    }
    if (status != 404) return -1;
    v = api_get(srv, "/api/public/traces?limit=1", 1, &status);
    if (v) {
        json_decref(v);
        if (srv->verbose)
            fprintf(stderr,
                    "lftrace: %s: Langfuse v3 (GET /api/public/traces; v2 observations answer "
                    "404)\n",
                    srv->host);
        return LFT_V3;
    }
    if (status == 404)
        fprintf(stderr,
                "lftrace: %s: no Langfuse read API: GET /api/public/v2/observations (v4) and "
                "/api/public/traces (v3) both answer HTTP 404\n",
                srv->host);
    return -1;
}

/* Appends to `all` every v2 observation with key=value (traceId or sessionId) in the field
   groups `fields`, following meta.cursor until the server gives none. 0, or -1 after one
   line on stderr (what was read stays in `all`, for the caller to drop). */
static int v4_read(const struct lft_server *srv, const char *key, const char *value,
                   const char *fields, json_t *all)
{
    char *val = curl_easy_escape(NULL, value, 0);
    char *cursor = NULL; /* escaped, for the next page's URL */
    char path[3072];     /* the escaped value (a session id is under 200 bytes) and cursor */
    int page = 0, more = 1;
    if (!val) {
        fprintf(stderr, "lftrace: out of memory\n");
        return -1;
    }
    for (; more && page < LFT_MAX_PAGES; page++) {
        if ((size_t)snprintf(path, sizeof(path),
                             "/api/public/v2/observations?%s=%s&fields=%s&limit=%d%s%s", key, val,
                             fields, LFT_PAGE_LIMIT, cursor ? "&cursor=" : "",
                             cursor ? cursor : "") >= sizeof(path)) {
            fprintf(stderr, "lftrace: %s %.100s...: too long for a URL\n", key, value);
            goto fail;
        }
        json_t *resp = api_get(srv, path, 0, NULL);
        if (!resp) goto fail;
        json_t *data = json_object_get(resp, "data");
        const char *next =
            json_string_value(json_object_get(json_object_get(resp, "meta"), "cursor"));
        const char *problem = NULL;
        if (!json_is_array(data))
            problem = "answer without a data list";
        else if (next && strlen(next) > LFT_MAX_CURSOR)
            problem = "cursor too long";
        else if (json_array_extend(all, data))
            problem = "out of memory";
        if (problem) {
            fprintf(stderr, "lftrace: %s%s: %s\n", srv->host, path, problem);
            json_decref(resp);
            goto fail;
        }
        more = next && *next;
        curl_free(cursor);
        /* base64 may carry '+', '/' and '=': escaped, or '+' would arrive as a space */
        cursor = more ? curl_easy_escape(NULL, next, 0) : NULL;
        json_decref(resp);
        if (more && !cursor) {
            fprintf(stderr, "lftrace: out of memory\n");
            goto fail;
        }
        if (json_array_size(all) > LFT_MAX_OBSERVATIONS) {
            fprintf(stderr, "lftrace: %s %s: more than %d observations; stopped\n", key, value,
                    LFT_MAX_OBSERVATIONS);
            goto fail;
        }
    }
    if (more) {
        fprintf(stderr,
                "lftrace: %s %s: more than %d pages of %d observations; stopped (ask for one "
                "trace id)\n",
                key, value, LFT_MAX_PAGES, LFT_PAGE_LIMIT);
        goto fail;
    }
    if (srv->verbose) fprintf(stderr, "lftrace: %s %s: %d pages\n", key, value, page);
    curl_free(val);
    return 0;
fail:
    curl_free(cursor);
    curl_free(val);
    return -1;
}

/* Prints the traces of a v4 session, or one trace (session NULL); 0, or 1 after a line on
   stderr. v4 files an observation under a session only when it carries session.id itself,
   so the session is asked for its trace ids only, and each trace for all its observations:
   the tree is the trace as the v4 UI shows it, every observation of the trace id. */
static int v4_print(const struct lft_server *srv, const char *session, const char *trace_id)
{
    json_t *all = json_array(), *hits = json_array(), *seen = json_object(), *traces = NULL;
    int rc = 1;
    if (!all || !hits || !seen) {
        fprintf(stderr, "lftrace: out of memory\n");
        goto out;
    }
    if (session && v4_read(srv, "sessionId", session, "core", hits)) goto out;
    if (!session && json_array_append_new(hits, json_pack("{s:s}", "traceId", trace_id))) {
        fprintf(stderr, "lftrace: out of memory\n");
        goto out;
    }
    size_t i;
    json_t *h;
    json_array_foreach(hits, i, h)
    {
        const char *tid = json_string_value(json_object_get(h, "traceId"));
        if (!tid || json_object_get(seen, tid)) continue;
        if (json_object_size(seen) == LFT_MAX_TRACES) {
            /* the v3 path reads the newest 100 too */
            fprintf(stderr, "lftrace: session %s: more than %d traces, the newest %d shown\n",
                    session, LFT_MAX_TRACES, LFT_MAX_TRACES);
            break;
        }
        if (json_object_set_new(seen, tid, json_true()) ||
            v4_read(srv, "traceId", tid, LFT_V2_FIELDS, all))
            goto out;
    }
    traces = tt_traces_from_observations(all);
    if (!traces) {
        fprintf(stderr, "lftrace: out of memory\n");
        goto out;
    }
    rc = 0;
    if (!json_array_size(traces)) {
        /* v4 shows what was sent without x-langfuse-ingestion-version: 4 minutes late */
        fprintf(stderr, "lftrace: %s %s: not found (no observations on the server yet)\n",
                session ? "session" : "trace", session ? session : trace_id);
        rc = 1;
    }
    json_t *t;
    json_array_foreach(traces, i, t) tt_print_api_trace(t, stdout);
out:
    json_decref(traces);
    json_decref(seen);
    json_decref(hits);
    json_decref(all);
    return rc;
}

/* Prints one trace read through v3's GET /api/public/traces/{id}; 0, or 1. */
static int v3_print_trace(const struct lft_server *srv, const char *raw)
{
    char path[1024];
    char *id = curl_easy_escape(NULL, raw, 0);
    int fits =
        id && (size_t)snprintf(path, sizeof(path), "/api/public/traces/%s", id) < sizeof(path);
    curl_free(id);
    if (!fits) {
        fprintf(stderr, "lftrace: trace %.100s: id too long for a URL\n", raw);
        return 1;
    }
    json_t *t = api_get(srv, path, 0, NULL);
    if (!t) return 1;
    tt_print_api_trace(t, stdout);
    json_decref(t);
    return 0;
}

/* Prints every trace of a session through v3's trace list (the newest LFT_MAX_TRACES); 0, or 1. */
static int v3_print_session(const struct lft_server *srv, const char *session)
{
    char path[1024];
    /* a session id is any string: escaped, so that '&', ' ' or '#' stay part of it */
    char *sid = curl_easy_escape(NULL, session, 0);
    int fits =
        sid && (size_t)snprintf(path, sizeof(path), "/api/public/traces?sessionId=%s&limit=%d", sid,
                                LFT_MAX_TRACES) < sizeof(path);
    curl_free(sid);
    if (!fits) {
        fprintf(stderr, "lftrace: session %.100s: id too long for a URL\n", session);
        return 1;
    }
    json_t *list = api_get(srv, path, 0, NULL);
    if (!list) return 1;
    int rc = 0;
    if (!json_array_size(json_object_get(list, "data"))) {
        fprintf(stderr, "lftrace: session %s: not found (no traces on the server)\n", session);
        rc = 1;
    }
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(list, "data"), i, item)
    {
        const char *id = json_string_value(json_object_get(item, "id"));
        if (id && v3_print_trace(srv, id)) rc = 1;
    }
    json_decref(list);
    return rc;
}

int main(int argc, char **argv)
{
    struct lft_server srv = {.host = getenv("LANGFUSE_HOST")};
    const char *session = NULL;
    int nfiles = 0, rc = 0;
    const char *ids[64];
    int nids = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--host") && i + 1 < argc)
            srv.host = argv[++i];
        else if (!strcmp(argv[i], "--session") && i + 1 < argc)
            session = argv[++i];
        else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose"))
            srv.verbose = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "lftrace: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (nids < 64) {
            ids[nids++] = argv[i];
        }
    }
    if (!nids && !session) {
        usage(stderr);
        return 2;
    }
    /* Arguments that name files are read as files; the others are trace ids. */
    struct tt_forest *files = tt_forest_new();
    for (int i = 0; i < nids; i++) {
        FILE *f = fopen(ids[i], "rb");
        if (!f) continue;
        fclose(f);
        char err[256];
        if (tt_forest_add_file(files, ids[i], err, sizeof(err))) {
            fprintf(stderr, "lftrace: %s\n", err);
            rc = 1;
        }
        nfiles++;
        ids[i] = NULL;
    }
    if (nfiles) tt_forest_print(files, stdout);
    tt_forest_free(files);
    if (nids == nfiles && !session) return rc;

    if (!srv.host) {
        fprintf(stderr, "lftrace: give --host URL or set LANGFUSE_HOST\n");
        return 2;
    }
    const char *pk = getenv("LANGFUSE_PUBLIC_KEY"), *sk = getenv("LANGFUSE_SECRET_KEY");
    if (!pk || !sk) {
        fprintf(stderr, "lftrace: set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY\n");
        return 1;
    }
    if ((size_t)snprintf(srv.userpwd, sizeof(srv.userpwd), "%s:%s", pk, sk) >=
        sizeof(srv.userpwd)) {
        fprintf(stderr,
                "lftrace: LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY: longer than %zu "
                "bytes together\n",
                sizeof(srv.userpwd) - 2);
        explicit_bzero(srv.userpwd, sizeof(srv.userpwd));
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int line = detect_line(&srv);
    if (line < 0) rc = 1;
    for (int i = 0; line > 0 && i < nids; i++) {
        if (!ids[i]) continue;
        if (line == LFT_V4 ? v4_print(&srv, NULL, ids[i]) : v3_print_trace(&srv, ids[i])) rc = 1;
    }
    if (line > 0 && session &&
        (line == LFT_V4 ? v4_print(&srv, session, NULL) : v3_print_session(&srv, session)))
        rc = 1;
    curl_global_cleanup();
    explicit_bzero(srv.userpwd, sizeof(srv.userpwd));
    return rc;
}
