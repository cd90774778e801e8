/*
 * spool.h - undeliverable request bodies kept on disk for a later run.
 *
 * One file per request body, named so that a plain directory listing sorts oldest first
 * and tells what is inside: lf-<unix ns, 20 digits>-<pid>-<n>-r<records>.<otlp|ingestion>
 * .json[.gz]. The content is exactly the body that was to be POSTed, so `zcat` shows it
 * and the trace viewer reads it. Writes are crash-safe (temporary file, fsync, rename,
 * fsync of the directory); a sender claims a file with flock() so that two processes
 * sharing a spool never send one file twice.
 */
#ifndef LF_SPOOL_H
#define LF_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct lf__spool_entry {
    char *path;   /* owned */
    int endpoint; /* LF_TRANSPORT_* */
    int gz;
    uint32_t nrec;
    size_t size;
    int fd; /* its claim, owned, if already held (an adopted journal); else -1 */
};

/*
 * The spool as one writer (the exporter thread) sees it. Listing the directory costs a
 * stat() per file, so a write does not list it: the size is counted from one listing plus
 * what this writer added since. Other processes sharing the spool, and deliveries of its
 * files, make the count drift; it is re-listed, exactly, whenever it says the next write
 * would pass the cap, so eviction is always decided on the real directory.
 */
struct lf__spool {
    const char *dir;  /* borrowed: the client's configuration, which outlives this */
    size_t max_bytes; /* cap on the directory's spool files, in bytes */
    size_t bytes;     /* the spool's size: the last listing plus this writer's files since */
    int listed;       /* `bytes` comes from a listing */
    int dir_made;     /* `dir` exists: created (mode 0700) or found */
};

void lf__spool_init(struct lf__spool *sp, const char *dir, size_t max_bytes);

/* A spool file this process holds claimed (locked) while it sends what the file holds. */
struct lf__spool_held {
    char path[4096];
    int fd;
};

/*
 * Writes `body` as a new spool file, first evicting the oldest files while the spool
 * would pass its cap (their records are added to *evicted). Creates the directory (mode
 * 0700) on first use. Returns 0, or -1 with errno-based text in `err`.
 *
 * Without `held` the file is written durably (fsync of the file and of the directory) and
 * left for whoever sends it. With `held` it is a write-ahead copy of a request about to be
 * sent: it is claimed before it appears under its name, so no other process sends it, and
 * not fsynced, since it is there for a process that is killed (the page cache outlives
 * it); lf__spool_sync() makes it durable if it is to stay.
 */
int lf__spool_write(struct lf__spool *sp, int endpoint, const char *body, size_t len, int gz,
                    uint32_t nrec, uint64_t *evicted, struct lf__spool_held *held, char *err,
                    size_t errlen);
/* Makes a held file durable: fsync of it and of the spool's directory. */
void lf__spool_sync(const char *dir, int fd);

/* Lists the spool's files, oldest first. Caller frees with lf__spool_entries_free(). A
 * missing directory is an empty spool. Leftover temporary files of crashed writers older
 * than an hour are removed. Returns 0 or -1. */
int lf__spool_list(const char *dir, struct lf__spool_entry **out, size_t *n);
void lf__spool_entries_free(struct lf__spool_entry *e, size_t n);

/* Opens and locks a spool file for sending: returns an fd, or -1 if it is gone or another
 * process holds it. */
int lf__spool_claim(const char *path);
/* Reads a claimed file whole (at most `max` bytes). Caller frees *data. 0 or -1. */
int lf__spool_read(int fd, size_t max, char **data, size_t *len);
/* Removes a delivered file (still holding the claim) and releases it. */
void lf__spool_done(const char *path, int fd);
/* Releases a claim, keeping the file. */
void lf__spool_release(int fd);

/*
 * Journal files (journal.c): lf-open-<id>.<otlp|ingestion>.json[.gz], one request body
 * each, claimed by the process that keeps it. Not spool files until adopted.
 *
 * lf__spool_journal_write() writes one atomically over its previous version (temporary
 * file, claim, rename; not fsynced: it is there for a killed process). *fd holds the claim
 * (a previous one is released once replaced) and *path (owned) the name. 0 or -1.
 */
int lf__spool_journal_write(const char *dir, const char *id, int endpoint, int gz, const char *body,
                            size_t len, int *fd, char **path);
/* Removes a journal file and releases its claim (*fd = -1, *path freed). */
void lf__spool_journal_remove(int *fd, char **path);
/* Releases the claim and keeps the file (*fd = -1, *path freed). */
void lf__spool_journal_release(int *fd, char **path);
/* Adopts every journal file that no process holds (its owner died) as a spool file, to be
 * sent like any other, and lists the adopted files in *out (each still
 * claimed: a claim given up and taken again could fail while a child this process spawns
 * at that moment holds a copy of the descriptor until its exec). 0, or -1 without memory
 * (the files adopted are then on disk, for the next listing). */
int lf__spool_adopt_journals(const char *dir, struct lf__spool_entry **out, size_t *n);

/* Creates `dir` and its missing parents, mode 0700 (the spool and the spill file hold
 * traced data). Existing directories are fine. 0, or -1 with errno set. */
int lf__mkdir_p(const char *dir);

/* Parses a spool file name; 0 on success. */
int lf__spool_parse_name(const char *name, int *endpoint, int *gz, uint32_t *nrec);

#endif
