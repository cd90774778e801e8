/*
 * lines.h - splitting a byte stream into lines, with a hard cap on line length.
 *
 * Claude Code's stdout carries one JSON object per line; lines of many megabytes are legal
 * (a tool result holding a large file), so the cap is generous, but it is a cap: a line
 * longer than `max` is not kept. Its bytes are skipped up to the next newline and the caller
 * is told once, with the line's length so far, so nothing is lost silently. Its first and
 * last bytes are kept meanwhile (CC_LINES_HEAD, CC_LINES_TAIL), so that the caller can still
 * tell what kind of line it was: a result line that is lost must still end its turn.
 */
#ifndef CC_LINES_H
#define CC_LINES_H

#include <stddef.h>

/* What is kept of a skipped line: enough of its start for the "type" and "request_id" that
 * Claude Code writes first, and of its end for the "type" that a result line writes after
 * its text and before its per-model usage (about 400 bytes a model). */
#define CC_LINES_HEAD 512
#define CC_LINES_TAIL 8192

struct cc_lines {
    char *buf;                /* bytes of the current, incomplete line (owned) */
    size_t len, cap;          /* used and allocated bytes of buf */
    size_t max;               /* longest line kept, without its newline */
    size_t skipped;           /* > 0 while skipping an over-long line: bytes skipped so far */
    char head[CC_LINES_HEAD]; /* the skipped line's first bytes ... */
    size_t head_len;
    char tail[CC_LINES_TAIL]; /* ... and its last bytes so far */
    size_t tail_len;
};

/* Called once per complete line (without the newline, NUL-terminated, borrowed for the
 * call), or with line == NULL and `len` = its length when a line exceeded the cap (its head
 * and tail are then readable through cc_lines_skipped()). Returns 0 to go on, nonzero to stop
 * feeding (the rest of the chunk stays unconsumed). */
typedef int (*cc_line_fn)(void *ctx, char *line, size_t len);

void cc_lines_init(struct cc_lines *l, size_t max);
void cc_lines_free(struct cc_lines *l);

/* Feeds `n` bytes of the caller's buffer, which is written to during the call (each
 * newline becomes a NUL while its line is delivered) and restored. Returns 0, the
 * callback's nonzero value, or -1 when out of memory (the line being assembled is dropped
 * and reported as over-long; the lines after it are still delivered). */
int cc_lines_feed(struct cc_lines *l, char *data, size_t n, cc_line_fn fn, void *ctx);

/* At end of stream: delivers a last line that had no newline. */
int cc_lines_finish(struct cc_lines *l, cc_line_fn fn, void *ctx);

/* During the callback for a skipped line (line == NULL): its first bytes in *head (at most
 * CC_LINES_HEAD) and its last bytes in *tail (at most CC_LINES_TAIL; they overlap the head
 * when the line was short). Both are borrowed until the callback returns. */
void cc_lines_skipped(const struct cc_lines *l, const char **head, size_t *head_len,
                      const char **tail, size_t *tail_len);

#endif
