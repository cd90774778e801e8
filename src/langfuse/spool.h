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
    char *path;       /* owned */
    int endpoint;     /* LF_TRANSPORT_* */
    int gz;
    uint32_t nrec;
    size_t size;
};

/*
 * Writes `body` as a new spool file, first evicting the oldest files while the spool
 * would pass `max_bytes` (their records are added to *evicted). Creates `dir` (mode 0700)
 * if needed. Returns 0, or -1 with errno-based text in `err`.
 */
int lf__spool_write(const char *dir, int endpoint, const char *body, size_t len, int gz,
                    uint32_t nrec, size_t max_bytes, uint64_t *evicted, char *err, size_t errlen);

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

/* Parses a spool file name; 0 on success. */
int lf__spool_parse_name(const char *name, int *endpoint, int *gz, uint32_t *nrec);

#endif
