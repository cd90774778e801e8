/*
 * encode.h - turning queued records into request bodies, for either wire format.
 *
 * The shared part (encode.c) handles what both formats need: masking, redaction, the
 * per-observation size cap with truncation of the largest value first, and packing
 * observations into bodies that never pass the request cap. The formats (otlp.c,
 * ingest.c) only know how to write one observation and how a body begins and ends.
 */
#ifndef LF_ENCODE_H
#define LF_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "internal.h"
#include "record.h"

#define LF__MAX_LIMITS 16
#define LF__MASKED "[masked]"

/* Per-value size caps of one encoding attempt: the entry at data offset `pos` keeps at most
 * `limit` bytes. */
struct lf__limits {
    uint32_t pos[LF__MAX_LIMITS];
    uint32_t limit[LF__MAX_LIMITS];
    int n;
};

struct lf__enc {
    const struct lf__conf *conf;
    const struct lf__redactor *red;
    int64_t now_ns; /* the export time stamped on ingestion events */
    /* takes each record once encoded (NULL: lf__rec_free), as a deallocator would */
    void (*release)(void *ud, struct lf_obs *r);
    void *ud;
};

/* How a value is written. */
enum lf__vmode {
    LF__VM_JSON,        /* as a JSON value (ingestion bodies) */
    LF__VM_JSON_IN_STR, /* as JSON text inside a JSON string (OTLP stringValue) */
};

/*
 * Writes the value of entry `f` (found at data offset `pos`), masked, size-limited per
 * `lim`, redacted and escaped. `field` names it for the masking callback ("input",
 * "output", "metadata"), or NULL for values that are not masked.
 */
void lf__enc_value(const struct lf__enc *e, struct lf__buf *out, uint32_t pos,
                   const struct lf__field *f, const char *field, const struct lf__limits *lim,
                   enum lf__vmode mode);
/* Writes a usage (integers) or cost (doubles) map of `tag` as a JSON object. */
void lf__enc_map(struct lf__buf *out, const struct lf_obs *r, uint8_t tag);
/* Writes the trace tags of `r`, in order, duplicates removed, comma-separated, each as
 * `pre` + JSON string + `post`. Returns how many were written. */
int lf__enc_tags(struct lf__buf *out, const struct lf_obs *r, const struct lf__redactor *red,
                 const char *pre, const char *post);
/* Nonzero if the entry is the last of its tag (and key): earlier ones are superseded. */
int lf__enc_is_last(const struct lf_obs *r, uint32_t next_pos, const struct lf__field *f);

/* otlp.c */
void lf__otlp_begin(const struct lf__enc *e, struct lf__buf *out);
void lf__otlp_span(const struct lf__enc *e, struct lf__buf *out, const struct lf_obs *r,
                   const struct lf__limits *lim);
void lf__otlp_end(struct lf__buf *out);

/* ingest.c */
void lf__ingest_begin(struct lf__buf *out);
void lf__ingest_events(const struct lf__enc *e, struct lf__buf *out, const struct lf_obs *r,
                       const struct lf__limits *lim);
void lf__ingest_end(struct lf__buf *out);

/* A finished request body. */
struct lf__body {
    char *data; /* owned: the wire bytes (gzip when `gz`) */
    size_t len;
    int gz;
    uint32_t nrec; /* observation exports inside */
};

/*
 * The exporter's encoding state, kept across batches so that its buffers are allocated
 * once: large buffers allocated per request would be mapped and unmapped every time
 * (page faults). A body is built whole in `out`, then compressed with libdeflate into
 * `gz`, which is 2.3 times faster than zlib's fastest level on these bodies (measured:
 * README, "Foundations").
 */
struct lf__encoder {
    struct lf__buf tmp; /* one observation */
    struct lf__buf out; /* the body being built, plain JSON */
    char *gz;           /* compression output */
    size_t gz_cap;
    void *compressor; /* struct libdeflate_compressor, allocated on first use */
    size_t head;      /* the body's opening bytes in `out` */
    uint32_t n;       /* observation exports in the body so far */
};

void lf__encoder_init(struct lf__encoder *enc);
void lf__encoder_free(struct lf__encoder *enc);

/*
 * Encodes the records of list `*list` (linked by ->next) into one body of at most
 * conf->max_request_bytes before compression (gzip if conf->gzip), consuming from the
 * front: encoded records are freed and *list advances. Records larger than
 * max_event_bytes are truncated (counted in *truncated); one that cannot be made to fit
 * is dropped (counted in *dropped). Returns 0 with body->nrec possibly 0 when everything
 * was dropped, or LF_ERR_NOMEM (records consumed into the lost body count as dropped).
 */
int lf__encode_body(struct lf__encoder *enc, const struct lf__enc *e, struct lf_obs **list,
                    struct lf__body *body, uint64_t *truncated, uint64_t *dropped);

/*
 * The same in stages, for a caller with other work to do in between: lf__encode_begin(),
 * then lf__encode_some() encodes at most `max` records and returns 1 while more could go
 * in, 0 once the body is full or the list empty; lf__encode_end() closes and compresses
 * the body. Both return LF_ERR_NOMEM as lf__encode_body() does.
 */
void lf__encode_begin(struct lf__encoder *enc, const struct lf__enc *e);
int lf__encode_some(struct lf__encoder *enc, const struct lf__enc *e, struct lf_obs **list,
                    unsigned max, uint64_t *truncated, uint64_t *dropped);
int lf__encode_end(struct lf__encoder *enc, const struct lf__enc *e, struct lf__body *body,
                   uint64_t *dropped);

#endif
