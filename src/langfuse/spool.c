/*
 * spool.c - the on-disk spool of undeliverable bodies; see spool.h.
 *
 * Eviction is by age: when the spool would pass its cap, the oldest files go first, and
 * their record counts (from the names) are reported as lost. That bounds the disk use of a
 * runner that cannot reach Langfuse for days.
 */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "invariant.h"
#include "langfuse/langfuse.h"

int lf__mkdir_p(const char *dir)
{
    char tmp[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(tmp)) {
        errno = n ? ENAMETOOLONG : ENOENT;
        return -1;
    }
    memcpy(tmp, dir, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0700) && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0700) && errno != EEXIST) return -1;
    return 0;
}

int lf__spool_parse_name(const char *name, int *endpoint, int *gz, uint32_t *nrec)
{
    unsigned long long ns;
    unsigned pid, seq, rec;
    char kind[16];
    int used = 0;
    if (sscanf(name, "lf-%20llu-%u-%u-r%u.%15[a-z]%n", &ns, &pid, &seq, &rec, kind, &used) != 5)
        return -1;
    const char *rest = name + used;
    if (strcmp(kind, "otlp") == 0)
        *endpoint = LF_TRANSPORT_OTLP;
    else if (strcmp(kind, "ingestion") == 0)
        *endpoint = LF_TRANSPORT_INGESTION;
    else
        return -1;
    if (strcmp(rest, ".json.gz") == 0)
        *gz = 1;
    else if (strcmp(rest, ".json") == 0)
        *gz = 0;
    else
        return -1;
    *nrec = rec;
    return 0;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct lf__spool_entry *x = a, *y = b;
    return strcmp(x->path, y->path);
}

void lf__spool_entries_free(struct lf__spool_entry *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++) {
        free(e[i].path);
        if (e[i].fd >= 0) lf__spool_release(e[i].fd);
    }
    free(e);
}

int lf__spool_list(const char *dir, struct lf__spool_entry **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -1;
    size_t cap = 0, cnt = 0;
    struct lf__spool_entry *v = NULL;
    struct dirent *de;
    size_t dlen = strlen(dir);
    int rc = 0;
    time_t now = time(NULL);
    while ((de = readdir(d))) {
        int endpoint, gz;
        uint32_t nrec;
        char path[4096];
        if (dlen + strlen(de->d_name) + 2 > sizeof(path)) continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (strncmp(de->d_name, ".tmp-lf-", 8) == 0) {
            struct stat st;
            if (stat(path, &st) == 0 && now - st.st_mtime > 3600) unlink(path);
            continue;
        }
        if (lf__spool_parse_name(de->d_name, &endpoint, &gz, &nrec)) continue;
        struct stat st;
        if (stat(path, &st) || !S_ISREG(st.st_mode)) continue;
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct lf__spool_entry *nv = lf__realloc(v, ncap * sizeof(*v));
            if (!nv) {
                rc = -1;
                break;
            }
            v = nv;
            cap = ncap;
        }
        v[cnt].path = lf__strdup(path);
        if (!v[cnt].path) {
            rc = -1;
            break;
        }
        v[cnt].endpoint = endpoint;
        v[cnt].gz = gz;
        v[cnt].nrec = nrec;
        v[cnt].size = (size_t)st.st_size;
        v[cnt].fd = -1;
        cnt++;
    }
    closedir(d);
    if (rc) {
        lf__spool_entries_free(v, cnt);
        return -1;
    }
    if (cnt > 1) qsort(v, cnt, sizeof(*v), cmp_entry);
    *out = v;
    *n = cnt;
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A spool file's name for a body written now (see spool.h). */
static void spool_name(char *out, size_t n, int endpoint, int gz, uint32_t nrec)
{
    static unsigned seq;
    unsigned s = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
    snprintf(out, n, "lf-%020lld-%u-%u-r%u.%s.json%s", (long long)lf_now_ns(), (unsigned)getpid(),
             s, nrec, endpoint == LF_TRANSPORT_OTLP ? "otlp" : "ingestion", gz ? ".gz" : "");
}

void lf__spool_init(struct lf__spool *sp, const char *dir, size_t max_bytes)
{
    memset(sp, 0, sizeof(*sp));
    sp->dir = dir;
    sp->max_bytes = max_bytes;
}

/* Lists the spool and removes its oldest files until `len` more bytes fit under the cap.
 * O(files), so it runs once, then only when the running count says the spool is full;
 * while a spool stays full every write pays it, the price of an exact cap on a directory
 * that other processes share. */
static void make_room(struct lf__spool *sp, size_t len, uint64_t *evicted)
{
    struct lf__spool_entry *v;
    size_t n;
    if (lf__spool_list(sp->dir, &v, &n)) {
        sp->listed = 0; /* try again next time; write anyway, as the cap is a soft bound */
        return;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += v[i].size;
    for (size_t i = 0; i < n && total + len > sp->max_bytes; i++) {
        if (unlink(v[i].path) == 0)
            *evicted += v[i].nrec;
        else if (errno != ENOENT)
            continue; /* still there, still counted */
        /* ENOENT: just sent, or evicted by another process sharing the spool */
        total -= v[i].size;
    }
    lf__spool_entries_free(v, n);
    sp->bytes = total;
    sp->listed = 1;
}

void lf__spool_sync(const char *dir, int fd)
{
    if (fd >= 0) fsync(fd);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); /* the rename itself must survive a crash */
        close(dfd);
    }
}

int lf__spool_write(struct lf__spool *sp, int endpoint, const char *body, size_t len, int gz,
                    uint32_t nrec, uint64_t *evicted, struct lf__spool_held *held, char *err,
                    size_t errlen)
{
    const char *dir = sp->dir;
    char name[128], tmp[4096], path[4096];
    if (len > sp->max_bytes) {
        snprintf(err, errlen, "a body of %zu bytes is larger than the spool's cap", len);
        return -1;
    }
    if (!sp->dir_made) {
        if (lf__mkdir_p(dir)) {
            snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
            return -1;
        }
        sp->dir_made = 1;
    }
    if (!sp->listed || sp->bytes + len > sp->max_bytes) make_room(sp, len, evicted);
    spool_name(name, sizeof(name), endpoint, gz, nrec);
    snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", dir, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT && lf__mkdir_p(dir) == 0) {
        /* Removed under us (someone cleaning ~/.cache): made again, and empty. */
        sp->bytes = 0;
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    /* A held file is locked before it has its name: a process listing the spool never
     * sees it unclaimed. */
    if ((held && flock(fd, LOCK_EX | LOCK_NB)) || write_all(fd, body, len) ||
        (!held && fsync(fd))) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path)) {
        snprintf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    sp->bytes += len;
    if (held) {
        snprintf(held->path, sizeof(held->path), "%s", path);
        held->fd = fd;
        return 0;
    }
    close(fd);
    lf__spool_sync(dir, -1);
    return 0;
}

int lf__spool_journal_write(const char *dir, const char *id, int endpoint, int gz, const char *body,
                            size_t len, int *fd, char **path)
{
    char name[160], tmp[4096], final[4096];
    snprintf(name, sizeof(name), "lf-open-%.64s.%s.json%s", id,
             endpoint == LF_TRANSPORT_OTLP ? "otlp" : "ingestion", gz ? ".gz" : "");
    if (lf__mkdir_p(dir)) return -1;
    snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", dir, name);
    snprintf(final, sizeof(final), "%s/%s", dir, name);
    int nfd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (nfd < 0) return -1;
    if (flock(nfd, LOCK_EX | LOCK_NB) || write_all(nfd, body, len) || rename(tmp, final)) {
        close(nfd);
        unlink(tmp);
        return -1;
    }
    if (*path && strcmp(*path, final) != 0)
        unlink(*path); /* the same journal under another name (compression changed) */
    if (*fd >= 0)
        close(*fd); /* the replaced version's claim; that inode is gone from the directory */
    *fd = nfd;
    if (!*path || strcmp(*path, final) != 0) {
        free(*path);
        *path = lf__strdup(final);
    }
    return 0;
}

void lf__spool_journal_remove(int *fd, char **path)
{
    if (*path) unlink(*path);
    lf__spool_journal_release(fd, path);
}

void lf__spool_journal_release(int *fd, char **path)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
    free(*path);
    *path = NULL;
}

int lf__spool_adopt_journals(const char *dir, struct lf__spool_entry **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char kind[16], path[4096], name[128], to[4096];
        const char *ext;
        if (strncmp(de->d_name, "lf-open-", 8) != 0 || !(ext = strchr(de->d_name + 8, '.')) ||
            sscanf(ext, ".%15[a-z]", kind) != 1)
            continue;
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            struct lf__spool_entry *nv = lf__realloc(*out, ncap * sizeof(**out));
            if (!nv) {
                rc = -1;
                break;
            }
            *out = nv;
            cap = ncap;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        int fd = lf__spool_claim(path); /* fails while its owner lives */
        if (fd < 0) continue;
        struct lf__spool_entry *e = &(*out)[*n];
        e->endpoint = strcmp(kind, "ingestion") == 0 ? LF_TRANSPORT_INGESTION : LF_TRANSPORT_OTLP;
        e->gz = strstr(ext, ".gz") != NULL;
        e->nrec = 1;
        spool_name(name, sizeof(name), e->endpoint, e->gz, e->nrec);
        snprintf(to, sizeof(to), "%s/%s", dir, name);
        if (rename(path, to) != 0) {
            close(fd);
            continue;
        }
        lf__spool_sync(dir, fd); /* an orphan's last word: keep it */
        e->path = lf__strdup(to);
        if (!e->path) {
            close(fd); /* adopted all the same: the next listing sends it */
            rc = -1;
            break;
        }
        e->fd = fd;
        e->size = 0;
        (*n)++;
    }
    closedir(d);
    return rc;
}

int lf__spool_claim(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        close(fd);
        return -1;
    }
    /* It may have been sent and removed between our listing and the lock. */
    struct stat a, b;
    if (fstat(fd, &a) || stat(path, &b) || a.st_ino != b.st_ino) {
        close(fd);
        return -1;
    }
    return fd;
}

int lf__spool_read(int fd, size_t max, char **data, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) || (size_t)st.st_size > max) return -1;
    size_t n = (size_t)st.st_size;
    char *buf = lf__malloc(n + 1);
    if (!buf) return -1;
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(buf);
            return -1;
        }
        got += (size_t)r;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

void lf__spool_done(const char *path, int fd)
{
    LF_INVARIANT(fd >= 0); /* removed only while claimed: -1 is "no file", never 0 */
    unlink(path);
    close(fd);
}

void lf__spool_release(int fd)
{
    close(fd);
}
