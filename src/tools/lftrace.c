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
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trace_tree.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: lftrace [--host URL] TRACE_ID\n"
               "       lftrace [--host URL] --session SESSION_ID\n"
               "       lftrace FILE...          (OTLP or ingestion bodies, .json or .json.gz,\n"
               "                                 e.g. the spool's files)\n"
               "Keys come from LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY; the host from\n"
               "--host or LANGFUSE_HOST.\n");
}

struct membuf {
    char *p;
    size_t n;
};

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    struct membuf *m = ud;
    size_t len = size * n;
    if (m->n + len > (64u << 20))
        return 0; /* a trace view larger than 64 MiB is not one we print */
    char *q = realloc(m->p, m->n + len + 1);
    if (!q)
        return 0;
    memcpy(q + m->n, p, len);
    m->p = q;
    m->n += len;
    q[m->n] = '\0';
    return len;
}

/* GETs host+path with Basic auth; returns the JSON or NULL with a message on stderr. */
static json_t *api_get(const char *host, const char *path)
{
    const char *pk = getenv("LANGFUSE_PUBLIC_KEY"), *sk = getenv("LANGFUSE_SECRET_KEY");
    if (!pk || !sk) {
        fprintf(stderr, "lftrace: set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY\n");
        return NULL;
    }
    char url[2048], userpwd[512];
    snprintf(url, sizeof(url), "%s%s", host, path);
    snprintf(userpwd, sizeof(userpwd), "%s:%s", pk, sk);
    CURL *e = curl_easy_init();
    struct membuf m = {NULL, 0};
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_USERPWD, userpwd);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &m);
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    json_t *v = NULL;
    if (rc != CURLE_OK)
        fprintf(stderr, "lftrace: %s: %s\n", url, curl_easy_strerror(rc));
    else if (status != 200)
        fprintf(stderr, "lftrace: %s: HTTP %ld: %.200s\n", url, status, m.p ? m.p : "");
    else {
        json_error_t err;
        v = json_loadb(m.p, m.n, 0, &err);
        if (!v)
            fprintf(stderr, "lftrace: %s: not JSON: %s\n", url, err.text);
    }
    free(m.p);
    return v;
}

int main(int argc, char **argv)
{
    const char *host = getenv("LANGFUSE_HOST");
    const char *session = NULL;
    int nfiles = 0, rc = 0;
    const char *ids[64];
    int nids = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--host") && i + 1 < argc)
            host = argv[++i];
        else if (!strcmp(argv[i], "--session") && i + 1 < argc)
            session = argv[++i];
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
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* Arguments that name files are read as files; the others are trace ids. */
    struct tt_forest *files = tt_forest_new();
    for (int i = 0; i < nids; i++) {
        FILE *f = fopen(ids[i], "rb");
        if (!f)
            continue;
        fclose(f);
        char err[256];
        if (tt_forest_add_file(files, ids[i], err, sizeof(err))) {
            fprintf(stderr, "lftrace: %s\n", err);
            rc = 1;
        }
        nfiles++;
        ids[i] = NULL;
    }
    if (nfiles)
        tt_forest_print(files, stdout);
    tt_forest_free(files);

    if ((nids > nfiles || session) && !host) {
        fprintf(stderr, "lftrace: give --host URL or set LANGFUSE_HOST\n");
        return 2;
    }
    for (int i = 0; i < nids; i++) {
        if (!ids[i])
            continue;
        char path[512];
        char *id = curl_easy_escape(NULL, ids[i], 0);
        snprintf(path, sizeof(path), "/api/public/traces/%s", id ? id : "");
        curl_free(id);
        json_t *t = api_get(host, path);
        if (!t) {
            rc = 1;
            continue;
        }
        tt_print_api_trace(t, stdout);
        json_decref(t);
    }
    if (session) {
        char path[1024];
        /* a session id is any string: escaped, so that '&', ' ' or '#' stay part of it */
        char *sid = curl_easy_escape(NULL, session, 0);
        snprintf(path, sizeof(path), "/api/public/traces?sessionId=%s&limit=100", sid ? sid : "");
        curl_free(sid);
        json_t *list = api_get(host, path);
        size_t i;
        json_t *item;
        json_array_foreach(json_object_get(list, "data"), i, item)
        {
            const char *raw = json_string_value(json_object_get(item, "id"));
            if (!raw)
                continue;
            char *id = curl_easy_escape(NULL, raw, 0);
            snprintf(path, sizeof(path), "/api/public/traces/%s", id ? id : "");
            curl_free(id);
            json_t *t = api_get(host, path);
            if (t)
                tt_print_api_trace(t, stdout);
            json_decref(t);
        }
        if (!list)
            rc = 1;
        json_decref(list);
    }
    curl_global_cleanup();
    return rc;
}
