/*
 * obs.c - the recording API: traces, observations and their setters.
 *
 * This is the caller's hot path. Each setter appends one tagged entry to the handle's
 * buffer (one memcpy, an occasional realloc); nothing is parsed, escaped or validated here.
 * lf_obs_end() stamps the end time, copies in the trace's attributes (trace.h) and links the
 * handle itself into the queue: each observation goes out exactly once, whole. A failed
 * allocation loses that one field and is counted; the observation still goes out.
 */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "internal.h"
#include "journal.h"
#include "json.h"
#include "trace.h"

static struct lf_obs *obs_new(struct lf_client *c, unsigned type)
{
    struct lf_obs *o = lf__obs_alloc(c);
    if (!o) {
        atomic_fetch_add(&c->n.dropped_nomem, 1);
        return NULL;
    }
    o->client = c;
    o->type = (uint8_t)type;
    o->start_ns = lf_now_ns();
    lf__random_bytes(o->span_id, sizeof(o->span_id));
    return o;
}

/* A text value is cut to max_event_bytes here, on the way in, with the visible marker the
 * encoder uses: one larger could not be exported anyway, and holding it whole would let a
 * single 10 MB tool input fill the queue and lose the observation, usage and cost with it.
 * (JSON text cut short is no longer JSON: it goes out as the string it now is.) */
/* Returns the marker's length (0: the value fits). The observation is counted truncated
 * when it is encoded (its LF__REC_CUT flag), once. */
static size_t cut_to_fit(struct lf_client *c, const void *val, size_t *vlen, uint8_t *kind,
                         char marker[48])
{
    size_t cap = c->conf.max_event_bytes;
    if (*vlen <= cap || (*kind != LF__V_STR && *kind != LF__V_JSON)) return 0;
    size_t cut = lf__utf8_cut(val, cap);
    int m = snprintf(marker, 48, "...[truncated %zu bytes]", *vlen - cut);
    *vlen = cut;
    *kind = LF__V_STR;
    return m > 0 ? (size_t)m : 0;
}

static void put(struct lf_obs *o, uint8_t tag, uint8_t kind, const char *key, const void *val,
                size_t vlen)
{
    if (!o) return;
    char marker[48] = ""; /* read only when mlen > 0; set so that GCC 12 -O3 sees it */
    size_t mlen = cut_to_fit(o->client, val, &vlen, &kind, marker);
    if (mlen) o->flags |= LF__REC_CUT;
    if (lf__rec_put2(o, tag, kind, key, key ? strlen(key) : 0, val, vlen, marker, mlen))
        atomic_fetch_add(&o->client->n.dropped_nomem, 1);
}

static void put_str(struct lf_obs *o, uint8_t tag, uint8_t kind, const char *key, const char *s)
{
    if (o && s) put(o, tag, kind, key, s, strlen(s));
}

/* A trace attribute goes into the set that the trace's observations share. */
static void put_trace(struct lf_obs *o, uint8_t tag, uint8_t kind, const char *key, const void *val,
                      size_t vlen)
{
    if (!o || !o->trace) return;
    char marker[48] = "";
    size_t mlen = cut_to_fit(o->client, val, &vlen, &kind, marker);
    if (mlen) o->flags |= LF__REC_CUT; /* said of the observation it was set through */
    if (lf__trace_put(o->trace, tag, kind, key, key ? strlen(key) : 0, val, vlen, marker, mlen))
        atomic_fetch_add(&o->client->n.dropped_nomem, 1);
}

static void put_trace_str(struct lf_obs *o, uint8_t tag, uint8_t kind, const char *key,
                          const char *s)
{
    if (s) put_trace(o, tag, kind, key, s, strlen(s));
}

lf_obs *lf_trace_start(lf_client *c, const char *name, const char *trace_id)
{
    if (!c || !c->enabled) return NULL;
    uint8_t tid[16];
    if (trace_id && (strlen(trace_id) != 32 || lf__unhex(tid, 16, trace_id))) {
        lf__log(c, LF_LOG_WARN, "trace id '%.40s' is not 32 hex digits; using a random one",
                trace_id);
        trace_id = NULL;
    }
    if (!trace_id) {
        do
            lf__random_bytes(tid, sizeof(tid));
        while (!memcmp(tid, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16));
    }
    if (!lf__sampled(&c->conf, tid)) return NULL;
    struct lf_obs *o = obs_new(c, LF_OBS_SPAN);
    if (!o) return NULL;
    o->trace = lf__trace_new();
    if (!o->trace) {
        atomic_fetch_add(&c->n.dropped_nomem, 1);
        lf__rec_free(o);
        return NULL;
    }
    memcpy(o->trace_id, tid, sizeof(tid));
    o->flags = LF__REC_ROOT;
    if (name) {
        put_str(o, LF__F_NAME, LF__V_STR, NULL, name);
        put_trace_str(o, LF__T_NAME, LF__V_STR, NULL, name);
    }
    lf__trace_set_root(o->trace, o->trace_id, o->span_id, o->start_ns);
    lf__journal_open(c, o->trace);
    return o;
}

lf_obs *lf_obs_start(lf_obs *parent, enum lf_obs_type type, const char *name)
{
    if (!parent || (unsigned)type > LF_OBS_GUARDRAIL) return NULL;
    struct lf_obs *o = obs_new(parent->client, type);
    if (!o) return NULL;
    memcpy(o->trace_id, parent->trace_id, sizeof(o->trace_id));
    memcpy(o->parent_id, parent->span_id, sizeof(o->parent_id));
    o->trace = lf__trace_ref(parent->trace);
    put_str(o, LF__F_NAME, LF__V_STR, NULL, name);
    return o;
}

void lf_obs_end_at(lf_obs *o, int64_t end_ns)
{
    if (!o) return;
    o->end_ns = end_ns < o->start_ns ? o->start_ns : end_ns;
    o->flags |= LF__REC_ENDED;
    if (o->trace && lf__trace_copy_to(o->trace, o, NULL))
        atomic_fetch_add(&o->client->n.dropped_nomem, 1);
    lf__trace_unref(o->trace);
    o->trace = NULL;
    lf__enqueue(o->client, o);
}

void lf_obs_end(lf_obs *o)
{
    if (o) lf_obs_end_at(o, o->type == LF_OBS_EVENT ? o->start_ns : lf_now_ns());
}

void lf_obs_discard(lf_obs *o)
{
    if (o) lf__trace_unref(o->trace);
    lf__rec_free(o);
}

void lf_obs_id(const lf_obs *o, char out[17])
{
    if (o)
        lf__hex(out, o->span_id, 8);
    else
        out[0] = '\0';
}

void lf_obs_trace_id(const lf_obs *o, char out[33])
{
    if (o)
        lf__hex(out, o->trace_id, 16);
    else
        out[0] = '\0';
}

void lf_obs_set_name(lf_obs *o, const char *name)
{
    put_str(o, LF__F_NAME, LF__V_STR, NULL, name);
}

void lf_obs_set_start_time(lf_obs *o, int64_t start_ns)
{
    if (!o || start_ns <= 0) return;
    o->start_ns = start_ns;
    if ((o->flags & LF__REC_ROOT) && o->trace) {
        pthread_mutex_lock(&o->trace->mu); /* what the journal says of the root */
        o->trace->start_ns = start_ns;
        pthread_mutex_unlock(&o->trace->mu);
    }
}

void lf_obs_set_input_json(lf_obs *o, const char *json)
{
    put_str(o, LF__F_INPUT, LF__V_JSON, NULL, json);
}

void lf_obs_set_input_string(lf_obs *o, const char *text)
{
    put_str(o, LF__F_INPUT, LF__V_STR, NULL, text);
}

void lf_obs_set_input_stringn(lf_obs *o, const char *text, size_t len)
{
    if (text) put(o, LF__F_INPUT, LF__V_STR, NULL, text, len);
}

void lf_obs_set_output_json(lf_obs *o, const char *json)
{
    put_str(o, LF__F_OUTPUT, LF__V_JSON, NULL, json);
}

void lf_obs_set_output_string(lf_obs *o, const char *text)
{
    put_str(o, LF__F_OUTPUT, LF__V_STR, NULL, text);
}

void lf_obs_set_output_stringn(lf_obs *o, const char *text, size_t len)
{
    if (text) put(o, LF__F_OUTPUT, LF__V_STR, NULL, text, len);
}

void lf_obs_set_metadata_json(lf_obs *o, const char *key, const char *json)
{
    if (key) put_str(o, LF__F_META, LF__V_JSON, key, json);
}

void lf_obs_set_metadata_string(lf_obs *o, const char *key, const char *value)
{
    if (key) put_str(o, LF__F_META, LF__V_STR, key, value);
}

void lf_obs_set_metadata_int(lf_obs *o, const char *key, int64_t value)
{
    if (key) put(o, LF__F_META, LF__V_INT, key, &value, sizeof(value));
}

void lf_obs_set_metadata_double(lf_obs *o, const char *key, double value)
{
    if (key) put(o, LF__F_META, LF__V_DBL, key, &value, sizeof(value));
}

void lf_obs_set_metadata_bool(lf_obs *o, const char *key, int value)
{
    uint8_t v = value != 0;
    if (key) put(o, LF__F_META, LF__V_BOOL, key, &v, 1);
}

void lf_obs_set_level(lf_obs *o, enum lf_level level)
{
    uint8_t v = (uint8_t)level;
    if ((unsigned)level <= LF_LEVEL_ERROR) put(o, LF__F_LEVEL, LF__V_INT, NULL, &v, 1);
}

void lf_obs_set_status_message(lf_obs *o, const char *message)
{
    put_str(o, LF__F_STATUS, LF__V_STR, NULL, message);
}

void lf_obs_set_version(lf_obs *o, const char *version)
{
    put_str(o, LF__F_VERSION, LF__V_STR, NULL, version);
}

void lf_obs_set_model(lf_obs *o, const char *model)
{
    put_str(o, LF__F_MODEL, LF__V_STR, NULL, model);
}

void lf_obs_set_model_parameters_json(lf_obs *o, const char *json_object)
{
    put_str(o, LF__F_MODEL_PARAMS, LF__V_JSON, NULL, json_object);
}

void lf_obs_set_usage(lf_obs *o, const char *key, int64_t tokens)
{
    if (key) put(o, LF__F_USAGE, LF__V_INT, key, &tokens, sizeof(tokens));
}

void lf_obs_set_cost(lf_obs *o, const char *key, double usd)
{
    if (key) put(o, LF__F_COST, LF__V_DBL, key, &usd, sizeof(usd));
}

void lf_obs_set_completion_start(lf_obs *o, int64_t when_ns)
{
    if (when_ns > 0) put(o, LF__F_COMPLETION_START, LF__V_INT, NULL, &when_ns, sizeof(when_ns));
}

void lf_obs_set_prompt(lf_obs *o, const char *name, int version)
{
    int64_t v = version;
    if (!name) return;
    put_str(o, LF__F_PROMPT_NAME, LF__V_STR, NULL, name);
    put(o, LF__F_PROMPT_VERSION, LF__V_INT, NULL, &v, sizeof(v));
}

void lf_trace_set_name(lf_obs *o, const char *name)
{
    put_trace_str(o, LF__T_NAME, LF__V_STR, NULL, name);
}

void lf_trace_set_session_id(lf_obs *o, const char *session_id)
{
    put_trace_str(o, LF__T_SESSION, LF__V_STR, NULL, session_id);
}

void lf_trace_set_user_id(lf_obs *o, const char *user_id)
{
    put_trace_str(o, LF__T_USER, LF__V_STR, NULL, user_id);
}

void lf_trace_set_input_json(lf_obs *o, const char *json)
{
    put_trace_str(o, LF__T_INPUT, LF__V_JSON, NULL, json);
}

void lf_trace_set_input_string(lf_obs *o, const char *text)
{
    put_trace_str(o, LF__T_INPUT, LF__V_STR, NULL, text);
}

void lf_trace_set_output_json(lf_obs *o, const char *json)
{
    put_trace_str(o, LF__T_OUTPUT, LF__V_JSON, NULL, json);
}

void lf_trace_set_output_string(lf_obs *o, const char *text)
{
    put_trace_str(o, LF__T_OUTPUT, LF__V_STR, NULL, text);
}

void lf_trace_set_metadata_json(lf_obs *o, const char *key, const char *json)
{
    if (key) put_trace_str(o, LF__T_META, LF__V_JSON, key, json);
}

void lf_trace_set_metadata_string(lf_obs *o, const char *key, const char *value)
{
    if (key) put_trace_str(o, LF__T_META, LF__V_STR, key, value);
}

void lf_trace_set_metadata_int(lf_obs *o, const char *key, int64_t value)
{
    if (key) put_trace(o, LF__T_META, LF__V_INT, key, &value, sizeof(value));
}

void lf_trace_set_metadata_double(lf_obs *o, const char *key, double value)
{
    if (key) put_trace(o, LF__T_META, LF__V_DBL, key, &value, sizeof(value));
}

void lf_trace_set_metadata_bool(lf_obs *o, const char *key, int value)
{
    uint8_t v = value != 0;
    if (key) put_trace(o, LF__T_META, LF__V_BOOL, key, &v, 1);
}

void lf_trace_add_tag(lf_obs *o, const char *tag)
{
    put_trace_str(o, LF__T_TAG, LF__V_STR, NULL, tag);
}

void lf_trace_set_public(lf_obs *o, int is_public)
{
    uint8_t v = is_public != 0;
    put_trace(o, LF__T_PUBLIC, LF__V_BOOL, NULL, &v, 1);
}

void lf_trace_set_version(lf_obs *o, const char *version)
{
    put_trace_str(o, LF__T_VERSION, LF__V_STR, NULL, version);
}

void lf_trace_set_release(lf_obs *o, const char *release)
{
    put_trace_str(o, LF__T_RELEASE, LF__V_STR, NULL, release);
}

void lf_trace_set_environment(lf_obs *o, const char *environment)
{
    put_trace_str(o, LF__T_ENV, LF__V_STR, NULL, environment);
}
