/*
 * kube_int.h - what kube.c (requests and watches) and kubeconfig.c (where the server is
 * and how to authenticate) share: the client's fields and the bearer token that rotates.
 * Private to those two files; the operator sees only kube.h.
 */
#ifndef CO_KUBE_INT_H
#define CO_KUBE_INT_H

#include "kube.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

/* A bearer token: fixed (a kubeconfig's `token`) or read from a file that may be replaced
 * at any time (a projected service-account token, a kubeconfig's `tokenFile`). */
struct co__token {
    char *value; /* the token, owned and secret (wiped before free); NULL: none */
    char *file;  /* the file it is re-read from, owned; NULL: fixed */
    dev_t dev;   /* the file as last read: a change of any of these means re-read */
    ino_t ino;   /* (a projected token is replaced by a symlink swap: a new inode) */
    off_t size;
    struct timespec mtime;
    time_t checked; /* CLOCK_MONOTONIC seconds of the last look at the file */
    bool check_now; /* a 401 came: look at the file before the next request */
};

/* The TLS material. Each of the CA, the client certificate and the key comes from a file
 * (a path curl reads at each new connection) or from memory (a kubeconfig's -data field,
 * decoded); at most one of the two is set. */
struct co__tls {
    char *ca_file;         /* owned, or NULL */
    unsigned char *ca_pem; /* owned PEM bytes, or NULL */
    size_t ca_len;
    char *cert_file;         /* owned, or NULL */
    unsigned char *cert_pem; /* owned PEM bytes, or NULL */
    size_t cert_len;
    char *key_file;         /* owned, or NULL */
    unsigned char *key_pem; /* owned PEM bytes, secret: wiped before free; or NULL */
    size_t key_len;
    bool insecure; /* insecure-skip-tls-verify: no check of the server at all */
};

struct co_kube {
    char *server; /* base URL without a trailing slash, owned */
    char *ns;     /* the namespace, owned, never NULL once open */
    struct co__tls tls;
    struct co__token token;
    CURL *easy;               /* the one request handle, reused: its connection stays open */
    CURLM *multi;             /* every watch's handle */
    struct co_watch *watches; /* open watches, a doubly linked list */
    struct co_watch *last;    /* the watch co_kube_wait served last, for round robin; or NULL */
    char user_agent[64];
};

/* Fills k's server, namespace, TLS material and token from src (kubeconfig.c). On error,
 * one line in err and whatever was filled is left for co__kube_config_clear. */
int co__kube_configure(struct co_kube *k, const struct co_kube_source *src, char *err,
                       size_t errlen);
/* Frees what co__kube_configure filled, wiping the secrets. */
void co__kube_config_clear(struct co_kube *k);

/* Re-reads t->file when it changed since it was read: at most once a minute, unless force
 * or t->check_now. 1 when the token changed, 0 when not (or fixed), -1 with err when the
 * file cannot be read (the old token stays). */
int co__token_refresh(struct co__token *t, bool force, char *err, size_t errlen);

#endif
