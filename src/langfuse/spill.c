/*
 * spill.c - raw records on disk, first in first out; see spill.h.
 *
 * Format: each record is a fixed header (ids, times, flags, lengths) followed by its field
 * bytes, written with writev() in groups. The file is opened O_TMPFILE (no name at all),
 * or created and unlinked at once where the filesystem lacks O_TMPFILE.
 */
#include "spill.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "alloc.h"
#include "iov.h"
#include "spool.h"

#define SPILL_MAGIC 0x4C465350u /* "LFSP" */
#define IOV_GROUP 64
#define SPILL_CHUNK (256u << 10)

struct hdr {
    uint32_t magic;
    uint32_t len;
    uint64_t qseq;
    int64_t start_ns, end_ns;
    uint8_t type, flags, pad[6];
    uint8_t trace_id[16], span_id[8], parent_id[8];
};

void lf__spill_init(struct lf__spill *s, const char *dir, size_t max_bytes)
{
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    s->max_bytes = max_bytes;
    if (!dir || !*dir) {
        dir = getenv("TMPDIR");
        if (!dir || !*dir) dir = "/tmp";
    }
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
}

void lf__spill_close(struct lf__spill *s)
{
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    free(s->rbuf);
    s->rbuf = NULL;
    s->rbuf_len = 0;
}

/* Copies n bytes at file offset `at` into dst, through the read buffer: records are read
 * back in order, so one pread() serves a few hundred of them. 0 or -1. */
static int read_at(struct lf__spill *s, void *dst, size_t n, off_t at)
{
    if (!s->rbuf) {
        s->rbuf = lf__malloc(SPILL_CHUNK);
        if (!s->rbuf) return -1;
        s->rbuf_len = 0;
    }
    if (at < s->rbuf_at || at + (off_t)n > s->rbuf_at + (off_t)s->rbuf_len) {
        if (n > SPILL_CHUNK) /* a record larger than the buffer: read it directly */
            return pread(s->fd, dst, n, at) == (ssize_t)n ? 0 : -1;
        ssize_t r = pread(s->fd, s->rbuf, SPILL_CHUNK, at);
        if (r < (ssize_t)n) return -1;
        s->rbuf_at = at;
        s->rbuf_len = (size_t)r;
    }
    memcpy(dst, s->rbuf + (at - s->rbuf_at), n);
    return 0;
}

static int open_file(struct lf__spill *s)
{
    if (s->fd >= 0) return 0;
    if (s->failed) return -1;
    /* The spool directory may not exist yet (the spool itself creates it only on its first
     * write, which may never come): without this, the first burst would turn spilling off
     * for the whole run. */
    if (lf__mkdir_p(s->dir)) {
        s->failed = 1;
        return -1;
    }
#ifdef O_TMPFILE
    s->fd = open(s->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
#endif
    if (s->fd < 0) {
        char path[600];
        snprintf(path, sizeof(path), "%s/.lf-spill-XXXXXX", s->dir);
        s->fd = mkostemp(path, O_CLOEXEC);
        if (s->fd >= 0) unlink(path);
    }
    if (s->fd < 0) {
        s->failed = 1;
        return -1;
    }
    return 0;
}

int lf__spill_usable(struct lf__spill *s)
{
    return open_file(s) == 0;
}

static int write_iov(int fd, struct iovec *iov, int n, off_t at)
{
    while (n > 0) {
        ssize_t w = pwritev(fd, iov, n, at);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        at += w;
        lf__iov_advance(&iov, &n, (size_t)w);
    }
    return 0;
}

static void give_back(void (*release)(void *, struct lf_obs *), void *ud, struct lf_obs *r)
{
    if (release)
        release(ud, r);
    else
        lf__rec_free(r);
}

uint64_t lf__spill_write(struct lf__spill *s, struct lf_obs *list, uint64_t *dropped,
                         void (*release)(void *ud, struct lf_obs *r), void *ud)
{
    struct hdr hdrs[IOV_GROUP];
    struct iovec iov[2 * IOV_GROUP];
    struct lf_obs *group[IOV_GROUP];
    uint64_t written = 0;
    int ok = open_file(s) == 0;

    while (list) {
        int n = 0;
        size_t bytes = 0;
        while (list && n < IOV_GROUP) {
            struct lf_obs *r = list;
            list = r->next;
            size_t need = sizeof(struct hdr) + r->len;
            if (!ok || (size_t)(s->wpos - s->rpos) + bytes + need > s->max_bytes) {
                (*dropped)++;
                give_back(release, ud, r);
                continue;
            }
            struct hdr *h = &hdrs[n];
            memset(h, 0, sizeof(*h));
            h->magic = SPILL_MAGIC;
            h->len = r->len;
            h->qseq = r->qseq;
            h->start_ns = r->start_ns;
            h->end_ns = r->end_ns;
            h->type = r->type;
            h->flags = r->flags;
            memcpy(h->trace_id, r->trace_id, 16);
            memcpy(h->span_id, r->span_id, 8);
            memcpy(h->parent_id, r->parent_id, 8);
            iov[2 * n] = (struct iovec){h, sizeof(*h)};
            iov[2 * n + 1] = (struct iovec){r->data, r->len};
            group[n++] = r;
            bytes += need;
        }
        if (n == 0) continue;
        if (write_iov(s->fd, iov, 2 * n, s->wpos)) {
            ok = 0; /* disk full or gone: drop this group and the rest */
            *dropped += (uint64_t)n;
        } else {
            if (s->nrec == 0) s->head_qseq = group[0]->qseq;
            s->wpos += (off_t)bytes;
            s->nrec += (uint64_t)n;
            written += (uint64_t)n;
        }
        for (int i = 0; i < n; i++)
            give_back(release, ud, group[i]);
    }
    return written;
}

static void reset_if_empty(struct lf__spill *s)
{
    if (s->nrec) return;
    /* Empty: start over at the beginning and give the disk space back. */
    s->wpos = s->rpos = 0;
    s->rbuf_len = 0;
    if (s->fd >= 0 && ftruncate(s->fd, 0) != 0) lf__spill_close(s);
}

uint64_t lf__spill_discard(struct lf__spill *s)
{
    uint64_t n = s->nrec;
    s->nrec = 0;
    reset_if_empty(s);
    return n;
}

struct lf_obs *lf__spill_read(struct lf__spill *s, size_t max_bytes, unsigned max_records,
                              uint64_t *lost)
{
    struct lf_obs *head = NULL, **tail = &head;
    size_t taken = 0;
    unsigned count = 0;
    while (s->nrec && (taken < max_bytes || !head) && count++ < max_records) {
        struct hdr h;
        struct lf_obs *o = NULL;
        if (read_at(s, &h, sizeof(h), s->rpos) == 0 && h.magic == SPILL_MAGIC &&
            h.len <= UINT32_MAX / 2) {
            o = lf__calloc(1, sizeof(*o));
            if (o && h.len) {
                o->data = lf__malloc(h.len);
                if (!o->data || read_at(s, o->data, h.len, s->rpos + (off_t)sizeof(h))) {
                    lf__rec_free(o);
                    o = NULL;
                }
            }
        }
        if (!o) {
            /* A short read or no memory: what is left of the file cannot be trusted or
             * taken now. Drop it rather than spin, and say how much. */
            *lost += s->nrec;
            s->nrec = 0;
            reset_if_empty(s);
            break;
        }
        o->len = o->cap = h.len;
        o->qseq = h.qseq;
        o->start_ns = h.start_ns;
        o->end_ns = h.end_ns;
        o->type = h.type;
        o->flags = h.flags;
        memcpy(o->trace_id, h.trace_id, 16);
        memcpy(o->span_id, h.span_id, 8);
        memcpy(o->parent_id, h.parent_id, 8);
        s->rpos += (off_t)(sizeof(h) + h.len);
        s->nrec--;
        taken += sizeof(h) + h.len;
        *tail = o;
        tail = &o->next;
    }
    if (s->nrec) {
        struct hdr next;
        if (read_at(s, &next, sizeof(next), s->rpos) == 0) s->head_qseq = next.qseq;
    }
    reset_if_empty(s);
    return head;
}
