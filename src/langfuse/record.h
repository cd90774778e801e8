/*
 * record.h - the in-memory form of one observation export.
 *
 * An observation handle (struct lf_obs) *is* a record: setters append tagged fields to its
 * byte buffer, and lf_obs_end() links the very same struct into the client's queue, so the
 * caller's thread copies each value exactly once and allocates twice per observation.
 * Fields are appended, never edited: a setter called twice leaves two entries and the
 * encoders take the last one (per key for keyed fields). That keeps setters O(1) and
 * moves the work to the exporter thread.
 *
 * Each observation is exported exactly once, when it ends (Langfuse v4 keeps every copy of
 * a span id as an observation of its own), so a record is one observation, whole.
 *
 * Entry layout in `data`: tag (1 byte), value kind (1), key length (u32), value length (u32),
 * key bytes, value bytes; integers and doubles are stored as their 8 native bytes.
 */
#ifndef LF_RECORD_H
#define LF_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "langfuse/langfuse.h"

enum lf__tag {
    LF__F_NAME = 1,
    LF__F_INPUT,
    LF__F_OUTPUT,
    LF__F_META,
    LF__F_LEVEL,
    LF__F_STATUS,
    LF__F_VERSION,
    LF__F_MODEL,
    LF__F_MODEL_PARAMS,
    LF__F_USAGE,
    LF__F_COST,
    LF__F_COMPLETION_START,
    LF__F_PROMPT_NAME,
    LF__F_PROMPT_VERSION,
    LF__T_NAME,
    LF__T_SESSION,
    LF__T_USER,
    LF__T_INPUT,
    LF__T_OUTPUT,
    LF__T_META,
    LF__T_TAG,
    LF__T_PUBLIC,
    LF__T_VERSION,
    LF__T_RELEASE,
    LF__T_ENV,
    LF__TAG_MAX
};

enum lf__kind {
    LF__V_STR = 's',  /* text, exported as a JSON string */
    LF__V_JSON = 'j', /* JSON text, exported as the value it denotes */
    LF__V_INT = 'i',
    LF__V_DBL = 'd',
    LF__V_BOOL = 'b',
};

#define LF__REC_ENDED 0x01u /* this export carries the end time */
#define LF__REC_ROOT 0x02u  /* no parent: the trace's root observation */
#define LF__REC_CUT 0x04u   /* a value was cut to max_event_bytes when it was set */

struct lf_obs {
    struct lf_obs *next;      /* queue link, owned by the queue once enqueued */
    struct lf_client *client; /* borrowed; the client outlives its handles */
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t parent_id[8]; /* all zero for a root */
    int64_t start_ns;
    int64_t end_ns;          /* meaningful with LF__REC_ENDED */
    uint64_t qseq;           /* position in the client's queue, for flush accounting */
    struct lf__trace *trace; /* the trace's shared attributes (a reference) while the
                                handle is open; NULL once lf_obs_end() copied them in */
    uint8_t type;            /* enum lf_obs_type */
    uint8_t flags;           /* LF__REC_* */
    unsigned char *data;     /* tagged entries, owned */
    uint32_t len;
    uint32_t cap;
};

/* A decoded entry; pointers borrow from the record's data. */
struct lf__field {
    uint8_t tag;
    uint8_t kind;
    const char *key;
    uint32_t klen;
    const char *val;
    uint32_t vlen;
};

/* Iterates entries: start with *pos = 0; returns 0 at the end. */
int lf__rec_next(const struct lf_obs *r, uint32_t *pos, struct lf__field *f);
/* The last entry with `tag`, or 0 if none. */
int lf__rec_last(const struct lf_obs *r, uint8_t tag, struct lf__field *f);
/* Nonzero if a later entry with the same tag and key supersedes the one at `pos` (the
 * position just after `f`). O(entries), fine for the handful a record holds. */
int lf__rec_superseded(const struct lf_obs *r, uint32_t pos, const struct lf__field *f);
/* Nonzero if the record has any trace field (LF__T_*). */
int lf__rec_has_trace_fields(const struct lf_obs *r);
int64_t lf__field_i64(const struct lf__field *f);
double lf__field_dbl(const struct lf__field *f);
/* Bytes a queued record accounts for. */
size_t lf__rec_size(const struct lf_obs *r);
/* Frees a record and its data. Accepts NULL. */
void lf__rec_free(struct lf_obs *r);
/* Appends an entry; 0 on success, -1 when memory ran out or the record would pass 4 GiB.
 * The key and value may be the record's own (a field lf__rec_last found): they are read
 * from where the record's data is after it grows. */
int lf__rec_put(struct lf_obs *r, uint8_t tag, uint8_t kind, const char *key, size_t klen,
                const void *val, size_t vlen);
/* The same with a value in two parts, `val` then `more` (a cut value and its marker). */
int lf__rec_put2(struct lf_obs *r, uint8_t tag, uint8_t kind, const char *key, size_t klen,
                 const void *val, size_t vlen, const void *more, size_t mlen);

/* Langfuse's lowercase name of an observation type ("span", "generation", ...). */
const char *lf__obs_type_name(unsigned type);
/* Langfuse's name of an enum lf_level ("DEFAULT", "DEBUG", "WARNING", "ERROR"); "DEFAULT"
 * for anything else. */
const char *lf__level_name(int level);

#endif
