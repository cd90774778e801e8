/*
 * kubeconfig.c - where the API server is and how to authenticate: the service account in
 * the cluster, a kubeconfig outside it. Called by co_kube_open (kube.c).
 *
 * What it guarantees: after co__kube_configure returns 0, k->server is an http(s) URL,
 * k->ns a namespace, every file it names existed and was readable when the client opened,
 * and every -data field was base64 of PEM. Anything this client cannot honour is an error,
 * not a silent fallback to anonymous requests: exec and auth-provider plugins, basic auth,
 * tls-server-name. Errors are one line naming the file and the field, and what to do.
 *
 * KUBECONFIG may list several files separated by colons. kubectl merges them; this client
 * takes the first that exists and reads only that one (merging is out of scope: the operator
 * runs in the cluster, or outside it against one developer kubeconfig).
 *
 * CO_SERVICEACCOUNT_DIR replaces /var/run/secrets/kubernetes.io/serviceaccount. It exists for
 * tests only (tests/operator/test_kube.py), which cannot write to /var/run.
 */
#include "kube_int.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "yaml.h"

#define SERVICEACCOUNT_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
/* A token, a namespace: small files. A projected token is about 1 KiB. */
#define SMALL_FILE_MAX (64u << 10)
/* A -data field: a CA bundle or a certificate chain, base64. */
#define DATA_FIELD_MAX (4u << 20)
/* How often a token file is looked at without a 401 to prompt it. */
#define TOKEN_CHECK_SECONDS 60

static time_t mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static void wipe_free(void *p, size_t len)
{
    if (!p) return;
    explicit_bzero(p, len);
    free(p);
}

/* Reads a small text file whole, without its trailing whitespace, into a new string (caller
 * frees; wipe it if it is a secret). NULL with err ("PATH: why") on error. */
static char *read_small_file(const char *path, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        co_errf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    buf = malloc(SMALL_FILE_MAX + 1);
    if (!buf) {
        co_errf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    len = fread(buf, 1, SMALL_FILE_MAX + 1, f);
    if (ferror(f)) {
        co_errf(err, errlen, "%s: a read error", path);
        goto fail;
    }
    if (len > SMALL_FILE_MAX) {
        co_errf(err, errlen, "%s: larger than %u KiB; is it the right file?", path,
                SMALL_FILE_MAX >> 10);
        goto fail;
    }
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
                   buf[len - 1] == '\t'))
        len--;
    buf[len] = '\0';
    fclose(f);
    return buf;
fail:
    wipe_free(buf, SMALL_FILE_MAX + 1);
    fclose(f);
    return NULL;
}

/* ---- the token ------------------------------------------------------------------------- */

static bool same_file(const struct co__token *t, const struct stat *st)
{
    return t->dev == st->st_dev && t->ino == st->st_ino && t->size == st->st_size &&
           t->mtime.tv_sec == st->st_mtim.tv_sec && t->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* Reads t->file into t->value. where names it for errors ("the service account's token"). */
static int token_load(struct co__token *t, const char *where, char *err, size_t errlen)
{
    struct stat st;
    char inner[320];
    if (stat(t->file, &st)) {
        co_errf(err, errlen, "%s %s: %s", where, t->file, strerror(errno));
        return -1;
    }
    char *v = read_small_file(t->file, inner, sizeof inner);
    if (!v) {
        co_errf(err, errlen, "%s: %s", where, inner);
        return -1;
    }
    if (!*v) {
        free(v);
        co_errf(err, errlen, "%s %s is empty", where, t->file);
        return -1;
    }
    if (strpbrk(v, "\r\n")) {
        wipe_free(v, strlen(v));
        co_errf(err, errlen, "%s %s holds more than one line: not a token", where, t->file);
        return -1;
    }
    int changed = !t->value || strcmp(v, t->value) != 0;
    if (t->value) wipe_free(t->value, strlen(t->value));
    t->value = v;
    t->dev = st.st_dev;
    t->ino = st.st_ino;
    t->size = st.st_size;
    t->mtime = st.st_mtim;
    t->checked = mono_seconds();
    return changed;
}

int co__token_refresh(struct co__token *t, bool force, char *err, size_t errlen)
{
    if (!t->file) return 0;
    time_t now = mono_seconds();
    if (!force && !t->check_now && now - t->checked < TOKEN_CHECK_SECONDS) return 0;
    t->checked = now;
    t->check_now = false;
    struct stat st;
    if (stat(t->file, &st)) {
        co_errf(err, errlen, "the token file %s: %s", t->file, strerror(errno));
        return -1;
    }
    if (same_file(t, &st)) return 0;
    return token_load(t, "the token file", err, errlen);
}

/* ---- kubeconfig fields ---------------------------------------------------------------- */

/* What a kubeconfig is being read as, for error lines. */
struct kc {
    const char *path; /* the kubeconfig */
    char *dir;        /* its directory, owned: relative paths resolve against it */
    char *err;
    size_t errlen;
};

/* A string field of obj, or NULL when absent; -1 with err when present but not a string.
 * where names obj ("clusters[\"c\"].cluster"). */
static int get_string(struct kc *c, const json_t *obj, const char *where, const char *key,
                      const char **out)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) {
        co_errf(c->err, c->errlen, "%s: %s.%s must be a string", c->path, where, key);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

/* The entry of the list named list ("clusters", "contexts", "users") whose name is name:
 * its inner object (entry[inner]). NULL with err when it is missing. */
static json_t *find_named(struct kc *c, const json_t *doc, const char *list, const char *inner,
                          const char *name)
{
    json_t *arr = json_object_get(doc, list);
    size_t i;
    json_t *e;
    if (arr && !json_is_array(arr)) {
        co_errf(c->err, c->errlen, "%s: %s must be a list", c->path, list);
        return NULL;
    }
    json_array_foreach(arr, i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        if (!n || strcmp(n, name) != 0) continue;
        json_t *body = json_object_get(e, inner);
        if (!json_is_object(body)) {
            co_errf(c->err, c->errlen, "%s: %s[\"%s\"].%s is missing or not a mapping", c->path,
                    list, name, inner);
            return NULL;
        }
        return body;
    }
    co_errf(c->err, c->errlen, "%s: %s has no entry named \"%s\"", c->path, list, name);
    return NULL;
}

/* path resolved against the kubeconfig's directory, checked readable; a new string. */
static char *resolve_file(struct kc *c, const char *where, const char *field, const char *path)
{
    char *full = NULL;
    if (path[0] == '/')
        full = strdup(path);
    else if (asprintf(&full, "%s/%s", c->dir, path) < 0)
        full = NULL;
    if (!full) {
        co_errf(c->err, c->errlen, "%s: out of memory", c->path);
        return NULL;
    }
    if (access(full, R_OK)) {
        co_errf(c->err, c->errlen, "%s: %s.%s: %s: %s", c->path, where, field, full,
                strerror(errno));
        free(full);
        return NULL;
    }
    return full;
}

static int b64_value(int ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

/* Standard base64 (whitespace ignored, padding optional) into a new buffer, caller frees.
 * Written here because none of the operator's libraries (jansson, libcurl, libyaml) exports
 * a decoder; -1 on a character outside the alphabet or a dangling bit. */
static int base64_decode(const char *in, unsigned char **out, size_t *outlen)
{
    size_t n = strlen(in);
    unsigned char *buf = malloc(n / 4 * 3 + 3);
    size_t len = 0;
    unsigned acc = 0;
    int bits = 0, pad = 0;
    if (!buf) return -1;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)in[i];
        if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t') continue;
        if (ch == '=') {
            pad++;
            continue;
        }
        int v = b64_value(ch);
        if (v < 0 || pad) goto fail; /* nothing but padding after padding */
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[len++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (bits >= 6 || pad > 2) goto fail; /* a lone sextet: a truncated text */
    *out = buf;
    *outlen = len;
    return 0;
fail:
    explicit_bzero(buf, n / 4 * 3 + 3);
    free(buf);
    return -1;
}

/* A -data field: base64 of PEM, decoded into *pem. 0 also when absent (*pem NULL). */
static int data_field(struct kc *c, const json_t *obj, const char *where, const char *field,
                      unsigned char **pem, size_t *len)
{
    const char *b64;
    *pem = NULL;
    *len = 0;
    if (get_string(c, obj, where, field, &b64)) return -1;
    if (!b64) return 0;
    if (strlen(b64) > DATA_FIELD_MAX) {
        co_errf(c->err, c->errlen, "%s: %s.%s is larger than %u MiB", c->path, where, field,
                DATA_FIELD_MAX >> 20);
        return -1;
    }
    if (base64_decode(b64, pem, len)) {
        co_errf(c->err, c->errlen, "%s: %s.%s is not base64 (it holds a PEM file, base64-encoded)",
                c->path, where, field);
        return -1;
    }
    if (!memmem(*pem, *len, "-----BEGIN ", 11)) {
        co_errf(c->err, c->errlen,
                "%s: %s.%s is not base64 of PEM (no -----BEGIN line after decoding)", c->path,
                where, field);
        explicit_bzero(*pem, *len);
        free(*pem);
        *pem = NULL;
        return -1;
    }
    return 0;
}

/* The server, its CA and insecure-skip-tls-verify, from a cluster entry. */
static int read_cluster(struct co_kube *k, struct kc *c, const json_t *cl, const char *where)
{
    const char *server, *ca, *tls_name;
    if (get_string(c, cl, where, "server", &server)) return -1;
    if (!server || !*server) {
        co_errf(c->err, c->errlen, "%s: %s.server is missing: the API server's URL", c->path,
                where);
        return -1;
    }
    if (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0) {
        co_errf(c->err, c->errlen, "%s: %s.server %.200s is not an http:// or https:// URL",
                c->path, where, server);
        return -1;
    }
    k->server = strdup(server);
    if (!k->server) goto nomem;
    for (size_t n = strlen(k->server); n > 0 && k->server[n - 1] == '/'; n--)
        k->server[n - 1] = '\0';

    if (get_string(c, cl, where, "tls-server-name", &tls_name)) return -1;
    if (tls_name) {
        co_errf(c->err, c->errlen,
                "%s: %s.tls-server-name is not supported; use a server URL whose host the "
                "certificate names",
                c->path, where);
        return -1;
    }
    json_t *insecure = json_object_get(cl, "insecure-skip-tls-verify");
    if (insecure && !json_is_boolean(insecure) && !json_is_null(insecure)) {
        co_errf(c->err, c->errlen, "%s: %s.insecure-skip-tls-verify must be true or false", c->path,
                where);
        return -1;
    }
    k->tls.insecure = json_is_true(insecure);

    if (data_field(c, cl, where, "certificate-authority-data", &k->tls.ca_pem, &k->tls.ca_len))
        return -1;
    if (get_string(c, cl, where, "certificate-authority", &ca)) return -1;
    if (ca && !k->tls.ca_pem) { /* the -data field wins, as in kubectl */
        k->tls.ca_file = resolve_file(c, where, "certificate-authority", ca);
        if (!k->tls.ca_file) return -1;
    }
    return 0;
nomem:
    co_errf(c->err, c->errlen, "%s: out of memory", c->path);
    return -1;
}

/* The credentials of a user entry: a token or a client certificate; plugins refused. */
static int read_user(struct co_kube *k, struct kc *c, const json_t *u, const char *where)
{
    static const char *const refused[] = {"exec", "auth-provider", "username", "password"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        json_t *v = json_object_get(u, refused[i]);
        if (!v || json_is_null(v)) continue;
        co_errf(c->err, c->errlen,
                "%s: %s.%s: %s is not supported by ccoperator; use a user with a token "
                "(token, tokenFile) or a client certificate (client-certificate[-data] and "
                "client-key[-data])",
                c->path, where, refused[i],
                i == 0   ? "an exec credential plugin"
                : i == 1 ? "an auth-provider plugin"
                         : "basic authentication");
        return -1;
    }
    const char *token, *token_file, *cert, *key;
    if (get_string(c, u, where, "token", &token) ||
        get_string(c, u, where, "tokenFile", &token_file))
        return -1;
    if (token && *token) {
        k->token.value = strdup(token);
        if (!k->token.value) goto nomem;
    } else if (token_file && *token_file) {
        k->token.file = resolve_file(c, where, "tokenFile", token_file);
        if (!k->token.file) return -1;
        char inner[400];
        if (token_load(&k->token, "the tokenFile", inner, sizeof inner) < 0) {
            co_errf(c->err, c->errlen, "%s: %s.tokenFile: %s", c->path, where, inner);
            return -1;
        }
    }

    if (data_field(c, u, where, "client-certificate-data", &k->tls.cert_pem, &k->tls.cert_len) ||
        data_field(c, u, where, "client-key-data", &k->tls.key_pem, &k->tls.key_len))
        return -1;
    if (get_string(c, u, where, "client-certificate", &cert) ||
        get_string(c, u, where, "client-key", &key))
        return -1;
    if (cert && !k->tls.cert_pem) {
        k->tls.cert_file = resolve_file(c, where, "client-certificate", cert);
        if (!k->tls.cert_file) return -1;
    }
    if (key && !k->tls.key_pem) {
        k->tls.key_file = resolve_file(c, where, "client-key", key);
        if (!k->tls.key_file) return -1;
    }
    bool has_cert = k->tls.cert_pem || k->tls.cert_file;
    bool has_key = k->tls.key_pem || k->tls.key_file;
    if (has_cert != has_key) {
        co_errf(c->err, c->errlen, "%s: %s has a client %s without its %s", c->path, where,
                has_cert ? "certificate" : "key",
                has_cert ? "key (client-key[-data])" : "certificate (client-certificate[-data])");
        return -1;
    }
    return 0;
nomem:
    co_errf(c->err, c->errlen, "%s: out of memory", c->path);
    return -1;
}

/* Wipes the string values of every users[].user, where tokens and keys are, before the
 * document is freed: jansson frees without wiping. The strings are the document's own. */
static void wipe_users(json_t *doc)
{
    size_t i;
    json_t *e, *v;
    const char *key;
    json_array_foreach(json_object_get(doc, "users"), i, e)
    {
        json_object_foreach(json_object_get(e, "user"), key, v)
        {
            if (json_is_string(v))
                explicit_bzero((char *)json_string_value(v), json_string_length(v));
        }
    }
}

static int from_kubeconfig(struct co_kube *k, const char *path, const char *context, char *err,
                           size_t errlen)
{
    struct kc c = {.path = path, .err = err, .errlen = errlen};
    char yerr[512];
    char where[300];
    int rc = -1;
    json_t *doc = co_yaml_load_file(path, yerr, sizeof yerr);
    if (!doc) {
        co_errf(err, errlen, "%s", yerr);
        return -1;
    }
    const char *slash = strrchr(path, '/');
    c.dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!c.dir) {
        co_errf(err, errlen, "%s: out of memory", path);
        goto done;
    }
    if (!json_is_object(doc)) {
        co_errf(err, errlen, "%s: not a kubeconfig (a mapping with clusters, contexts and users)",
                path);
        goto done;
    }
    if (!context) {
        if (get_string(&c, doc, "(top)", "current-context", &context)) goto done;
        if (!context || !*context) {
            co_errf(err, errlen, "%s: no current-context; name a context", path);
            goto done;
        }
    }
    json_t *ctx = find_named(&c, doc, "contexts", "context", context);
    if (!ctx) goto done;
    snprintf(where, sizeof where, "contexts[\"%.200s\"].context", context);
    const char *cluster, *user, *ns;
    if (get_string(&c, ctx, where, "cluster", &cluster) ||
        get_string(&c, ctx, where, "user", &user) || get_string(&c, ctx, where, "namespace", &ns))
        goto done;
    if (!cluster) {
        co_errf(err, errlen, "%s: %s.cluster is missing", path, where);
        goto done;
    }
    k->ns = strdup(ns && *ns ? ns : "default");
    if (!k->ns) {
        co_errf(err, errlen, "%s: out of memory", path);
        goto done;
    }

    json_t *cl = find_named(&c, doc, "clusters", "cluster", cluster);
    if (!cl) goto done;
    snprintf(where, sizeof where, "clusters[\"%.200s\"].cluster", cluster);
    if (read_cluster(k, &c, cl, where)) goto done;

    if (user && *user) { /* no user: anonymous requests (a local stand-in, say) */
        json_t *u = find_named(&c, doc, "users", "user", user);
        if (!u) goto done;
        snprintf(where, sizeof where, "users[\"%.200s\"].user", user);
        if (read_user(k, &c, u, where)) goto done;
    }
    rc = 0;
done:
    free(c.dir);
    wipe_users(doc);
    json_decref(doc);
    return rc;
}

/* The service account of the pod this runs in. */
static int in_cluster(struct co_kube *k, const char *host, char *err, size_t errlen)
{
    const char *dir = getenv("CO_SERVICEACCOUNT_DIR"); /* tests only: see the file's header */
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    char path[PATH_MAX];
    char inner[400];
    if (!dir || !*dir) dir = SERVICEACCOUNT_DIR;
    if (!port || !*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5) {
        co_errf(err, errlen,
                "KUBERNETES_SERVICE_HOST is set but KUBERNETES_SERVICE_PORT (%.20s) is not a port",
                port ? port : "unset");
        return -1;
    }
    if (strlen(host) > 255 || strpbrk(host, "/[]@ ")) {
        co_errf(err, errlen, "KUBERNETES_SERVICE_HOST %.60s is not a host name or address", host);
        return -1;
    }
    /* An IPv6 address (it has colons) is bracketed in a URL. */
    if (asprintf(&k->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host, port) <
        0) {
        k->server = NULL;
        goto nomem;
    }

    snprintf(path, sizeof path, "%s/token", dir);
    k->token.file = strdup(path);
    if (!k->token.file) goto nomem;
    if (token_load(&k->token, "the service account's token", inner, sizeof inner) < 0) {
        co_errf(err, errlen, "%s (is automountServiceAccountToken false?)", inner);
        return -1;
    }

    snprintf(path, sizeof path, "%s/ca.crt", dir);
    if (access(path, R_OK)) {
        co_errf(err, errlen, "the service account's CA %s: %s", path, strerror(errno));
        return -1;
    }
    k->tls.ca_file = strdup(path);
    if (!k->tls.ca_file) goto nomem;

    snprintf(path, sizeof path, "%s/namespace", dir);
    k->ns = read_small_file(path, inner, sizeof inner);
    if (!k->ns || !*k->ns) { /* no namespace file: "default", as client-go does */
        free(k->ns);
        k->ns = strdup("default");
        if (!k->ns) goto nomem;
    }
    return 0;
nomem:
    co_errf(err, errlen, "out of memory");
    return -1;
}

/* The kubeconfig to read when none is named: $KUBECONFIG's first existing file, else
 * ~/.kube/config. Writes it to buf. */
static int default_kubeconfig(char *buf, size_t buflen, char *err, size_t errlen)
{
    const char *list = getenv("KUBECONFIG");
    if (list && *list) {
        const char *p = list;
        while (*p) {
            size_t n = strcspn(p, ":");
            if (n && n < buflen) {
                memcpy(buf, p, n);
                buf[n] = '\0';
                struct stat st;
                if (!stat(buf, &st) && S_ISREG(st.st_mode)) return 0;
            }
            p += n;
            if (*p == ':') p++;
        }
        co_errf(err, errlen, "KUBECONFIG=%.200s: none of its files exists", list);
        return -1;
    }
    const char *home = getenv("HOME");
    if (home && *home) {
        snprintf(buf, buflen, "%s/.kube/config", home);
        if (!access(buf, F_OK)) return 0;
    }
    co_errf(err, errlen,
            "no Kubernetes configuration: not in a cluster (KUBERNETES_SERVICE_HOST is unset), "
            "KUBECONFIG is unset and ~/.kube/config does not exist; name a kubeconfig");
    return -1;
}

int co__kube_configure(struct co_kube *k, const struct co_kube_source *src, char *err,
                       size_t errlen)
{
    const char *context = src ? src->context : NULL;
    if (src && src->kubeconfig) return from_kubeconfig(k, src->kubeconfig, context, err, errlen);
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    if (host && *host) {
        if (context) {
            co_errf(err, errlen,
                    "a context (%.100s) names a kubeconfig context, but in the cluster the "
                    "service account is used: name the kubeconfig too, or no context",
                    context);
            return -1;
        }
        return in_cluster(k, host, err, errlen);
    }
    char path[PATH_MAX];
    if (default_kubeconfig(path, sizeof path, err, errlen)) return -1;
    return from_kubeconfig(k, path, context, err, errlen);
}

void co__kube_config_clear(struct co_kube *k)
{
    free(k->server);
    free(k->ns);
    free(k->tls.ca_file);
    free(k->tls.ca_pem);
    free(k->tls.cert_file);
    free(k->tls.cert_pem);
    free(k->tls.key_file);
    wipe_free(k->tls.key_pem, k->tls.key_len);
    if (k->token.value) wipe_free(k->token.value, strlen(k->token.value));
    free(k->token.file);
    k->server = k->ns = NULL;
    k->tls = (struct co__tls){0};
    k->token = (struct co__token){0};
}
