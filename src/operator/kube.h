/*
 * A Kubernetes API client, just what the operator needs: where the API server is and how to
 * authenticate (in the cluster: the service account; outside: a kubeconfig), one request at
 * a time with a bound on its time, and watches whose events are read from one wait. libcurl
 * does HTTP and TLS; one handle is reused for requests, so the connection is kept alive.
 * Not thread-safe: one thread owns a struct co_kube and everything opened on it.
 */
#ifndef CO_KUBE_H
#define CO_KUBE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct co_kube;  /* opaque: server, credentials, the request and watch handles */
struct co_watch; /* opaque: one open watch stream */

/* Where the client's configuration comes from. Strings are borrowed for the call. */
struct co_kube_source {
    const char *kubeconfig; /* a kubeconfig file; NULL: in the cluster when
                             * KUBERNETES_SERVICE_HOST is set, else $KUBECONFIG (its first
                             * file), else ~/.kube/config */
    const char *context;    /* a kubeconfig context; NULL: its current-context (in the
                             * cluster, without kubeconfig, a context is an error) */
};

/* Opens a client. In the cluster: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT,
 * the token and CA of /var/run/secrets/kubernetes.io/serviceaccount (the token re-read when
 * the file changes: projected tokens rotate), its namespace file. From a kubeconfig: the
 * context's cluster (server, certificate-authority[-data], insecure-skip-tls-verify) and
 * user (token, tokenFile, client-certificate[-data] + client-key[-data]; exec and
 * auth-provider plugins refused with a clear error), relative paths against the kubeconfig's
 * directory. http:// servers are allowed (a local stand-in). CO_SERVICEACCOUNT_DIR replaces
 * the service account's directory, for tests only. Returns NULL with one line in
 * err (naming the file and field) on any error. Caller frees with co_kube_free. */
struct co_kube *co_kube_open(const struct co_kube_source *src, char *err, size_t errlen);
void co_kube_free(struct co_kube *k); /* NULL-safe; also closes the watches still open */

/* The namespace of the context or the service account; "default" when none is named. */
const char *co_kube_namespace(const struct co_kube *k);
/* The server's base URL, for logs. */
const char *co_kube_server(const struct co_kube *k);

/* What a request returned. */
struct co_response {
    long status;   /* HTTP status; 0 when no response came */
    json_t *body;  /* the decoded JSON body, or NULL (not JSON, or none); caller frees */
    char err[256]; /* status 0: the transport error; else a short form of the body's
                    * "message" when status >= 400 */
};

/* One request: method (GET, POST, PUT, PATCH, DELETE), path with query ("/apis/..."),
 * an optional JSON body (borrowed) sent as content_type (NULL: application/json; PATCH
 * callers pass application/merge-patch+json). Bounded by timeout_ms for the whole request
 * (connect included). Returns 0 when a response came, whatever its status, -1 when none did
 * (out->err says why). out->body is the caller's to free in both cases. */
int co_kube_request(struct co_kube *k, const char *method, const char *path, const json_t *body,
                    const char *content_type, long timeout_ms, struct co_response *out);
void co_response_clear(struct co_response *r); /* frees body, resets fields; NULL-safe */

/* Opens a watch: GET path, where path already holds watch=1, resourceVersion=...,
 * allowWatchBookmarks=... and any selector. The stream is read by co_kube_wait. NULL with
 * err on a local error (the request is started asynchronously; server errors come as the
 * end of the watch). Close with co_watch_close. */
struct co_watch *co_watch_open(struct co_kube *k, const char *path, void *user, char *err,
                               size_t errlen);
void *co_watch_user(const struct co_watch *w);
void co_watch_close(struct co_watch *w); /* NULL-safe; also frees what is buffered */

/* What co_kube_wait found. */
enum co_wait_kind {
    CO_WAIT_TIMEOUT, /* nothing within timeout_ms (or an extra fd is readable: see below) */
    CO_WAIT_EVENT,   /* *event holds one decoded watch event, {"type":..., "object":...} */
    CO_WAIT_ENDED,   /* the watch *w ended: closed by the server, a non-200 status
                      * (co_watch_status), a transport error (co_watch_error) or an
                      * undecodable line; the caller closes it and opens another */
};

/* Waits up to timeout_ms for the next event of any open watch, also waking when extra_fd
 * (if >= 0) becomes readable (returns CO_WAIT_TIMEOUT then). Events buffered from earlier
 * reads are returned first, in the order they arrived on each watch. A line is at most
 * 16 MiB; a longer one ends the watch. *event is the caller's to free. */
enum co_wait_kind co_kube_wait(struct co_kube *k, int timeout_ms, int extra_fd, struct co_watch **w,
                               json_t **event);
long co_watch_status(const struct co_watch *w); /* the HTTP status, 0 before one came */
/* Why the watch ended: the transport error, the Status "message" of a non-200 answer, or
 * what was wrong with its last line (undecodable, over 16 MiB); "" when the server simply
 * closed the stream. */
const char *co_watch_error(const struct co_watch *w);

#endif
