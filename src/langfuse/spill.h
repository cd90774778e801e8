/*
 * spill.h - the queue's overflow on disk: raw records in an unlinked temporary file.
 *
 * A burst of recording (thousands of observations in milliseconds) outruns any encoder
 * and any network. Rather than hold it all in memory or drop it, the exporter moves the
 * queue's records to this file as soon as the queue passes its memory mark, at the speed
 * of a sequential write into the page cache, and later feeds the encoder from it, oldest
 * first. Page cache is not the process's memory, so a burst costs disk, not RSS. The file
 * is unlinked from the start: it vanishes with the process (the spool, not this, is what
 * survives a crash).
 */
#ifndef LF_SPILL_H
#define LF_SPILL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "record.h"

struct lf__spill {
    int fd;             /* -1 until first use */
    int failed;         /* the file could not be created: spilling is off */
    off_t wpos, rpos;   /* write and read offsets; both reset when the file empties */
    uint64_t nrec;      /* records in the file */
    uint64_t head_qseq; /* qseq of the oldest record in the file */
    size_t max_bytes;   /* cap on the file's live size */
    char *rbuf;         /* read buffer, SPILL_CHUNK bytes, allocated on first read */
    off_t rbuf_at;      /* file offset of rbuf[0] */
    size_t rbuf_len;    /* valid bytes in rbuf */
    char dir[512];      /* where the file is made */
};

void lf__spill_init(struct lf__spill *s, const char *dir, size_t max_bytes);
void lf__spill_close(struct lf__spill *s);

/* Nonzero if the file exists or can be created now (it is created on first use). */
int lf__spill_usable(struct lf__spill *s);

/*
 * Appends the records of `list` (linked by ->next) in order and hands each to `release`
 * (NULL: lf__rec_free). Records that do not fit under max_bytes, or all of them when the
 * file cannot be written, are counted in *dropped and released too. Returns the number
 * written.
 */
uint64_t lf__spill_write(struct lf__spill *s, struct lf_obs *list, uint64_t *dropped,
                         void (*release)(void *ud, struct lf_obs *r), void *ud);

/* Reads the oldest records, about `max_bytes` of them and at most `max_records` (at least
 * one), as a list the caller owns. NULL when empty (or on a read error, after which the
 * file is dropped and its records counted in *lost). Between reads the file may be
 * appended to. */
struct lf_obs *lf__spill_read(struct lf__spill *s, size_t max_bytes, unsigned max_records,
                              uint64_t *lost);

/* Forgets every record in the file and gives its disk space back; returns how many. */
uint64_t lf__spill_discard(struct lf__spill *s);

#endif
