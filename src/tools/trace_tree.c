/*
 * trace_tree.c - see trace_tree.h.
 *
 * Files are turned into the same JSON shape the Langfuse API returns, so one printer
 * serves both sources: OTLP spans are mapped with Langfuse's attribute names
 * (langfuse.observation.*, langfuse.trace.*, session.id, user.id), ingestion events by
 * their bodies.
 */
#include "trace_tree.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gzip.h"

#define FILE_MAX (256u << 20) /* a body file read whole, packed or not */

struct tt_forest {
    json_t *traces; /* id -> trace view (with "observations": {id -> observation}) */
};

/* ---- printing ------------------------------------------------------------------------ */

static double iso_seconds(const char *s)
{
    if (!s) return 0;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    double frac = 0;
    int y, mo, d, h, mi, sec;
    if (sscanf(s, "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi, &sec) != 6) return 0;
    const char *dot = strchr(s, '.');
    if (dot) frac = strtod(dot, NULL);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    return (double)timegm(&tm) + frac;
}

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void lower(char *out, const char *in, size_t n)
{
    size_t i = 0;
    for (; in && in[i] && i + 1 < n; i++)
        out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] - 'A' + 'a' : in[i]);
    out[i] = '\0';
}

static void print_usage(FILE *out, json_t *usage, const char *lead)
{
    const char *k;
    json_t *v;
    int first = 1;
    json_object_foreach(usage, k, v)
    {
        if (!json_is_integer(v) || !json_integer_value(v)) continue;
        const char *label = !strcmp(k, "cache_read_input_tokens")       ? "cache-read"
                            : !strcmp(k, "cache_creation_input_tokens") ? "cache-write"
                                                                        : k;
        fprintf(out, "%s%s %lld", first ? lead : ", ", label, (long long)json_integer_value(v));
        first = 0;
    }
}

/* Metadata values arrive as JSON or, through OTLP attributes, as strings holding JSON. */
static json_t *metadata_value(json_t *o, const char *key)
{
    json_t *v = json_object_get(json_object_get(o, "metadata"), key);
    if (!json_is_string(v)) return json_incref(v);
    return json_loads(json_string_value(v), JSON_DECODE_ANY, NULL);
}

/* A status message on one line: newlines become " | ", at most `max` bytes. */
static void print_oneline(FILE *out, const char *s, size_t max)
{
    size_t n = 0;
    for (; s && *s && n < max; s++, n++) {
        if (*s == '\n' || *s == '\r') {
            while (s[1] == '\n' || s[1] == '\r')
                s++;
            if (s[1]) fputs(" | ", out);
        } else {
            fputc(*s, out);
        }
    }
    if (s && *s) fputs("...", out);
}

/* costDetails.total as sent; v4 answers it as totalCost too, v3 as calculatedTotalCost. */
static double obs_cost(json_t *o)
{
    json_t *c = json_object_get(json_object_get(o, "costDetails"), "total");
    if (json_is_number(c)) return json_number_value(c);
    if (json_is_number(json_object_get(o, "totalCost")))
        return json_number_value(json_object_get(o, "totalCost"));
    return json_number_value(json_object_get(o, "calculatedTotalCost"));
}

static int by_start(const void *a, const void *b)
{
    const char *x = str(*(json_t *const *)a, "startTime"),
               *y = str(*(json_t *const *)b, "startTime");
    double dx = iso_seconds(x), dy = iso_seconds(y);
    return dx < dy ? -1 : dx > dy;
}

static void print_node(FILE *out, json_t *o, json_t *all, const char *prefix, int last)
{
    char type[32], line_prefix[512];
    lower(type, str(o, "type"), sizeof(type));
    double start = iso_seconds(str(o, "startTime")), end = iso_seconds(str(o, "endTime"));
    fprintf(out, "%s%s %s [%s", prefix, last ? "└─" : "├─",
            str(o, "name") ? str(o, "name") : "(unnamed)", type);
    if (str(o, "model") && *str(o, "model")) /* v4 answers "" for none */
        fprintf(out, " %s", str(o, "model"));
    fprintf(out, "]");
    if (end > 0) fprintf(out, "  %.3f s", end - start);
    print_usage(out, json_object_get(o, "usageDetails"), "  tokens: ");
    double cost = obs_cost(o);
    if (cost > 0) fprintf(out, "  $%.6f", cost);
    if (!json_object_size(json_object_get(o, "usageDetails"))) {
        /* a span's own numbers (per-query model calls) are kept in metadata: shown in
           parentheses, as part of what the generation above already counts */
        json_t *u = metadata_value(o, "usage"), *c = metadata_value(o, "cost_usd");
        if (json_is_object(u) || json_is_number(c)) {
            fputs("  (", out);
            print_usage(out, u, "tokens: ");
            if (json_is_number(c))
                fprintf(out, "%s$%.6f", json_is_object(u) ? "; " : "", json_number_value(c));
            fputc(')', out);
        }
        json_decref(u);
        json_decref(c);
    }
    const char *level = str(o, "level");
    if (level && (!strcmp(level, "ERROR") || !strcmp(level, "WARNING"))) {
        fprintf(out, "  %s: ", level);
        print_oneline(out, str(o, "statusMessage"), 120);
    }
    fputc('\n', out);

    /* children, in start order */
    size_t n = 0, i;
    json_t *c;
    json_t **kids = malloc(json_array_size(all) * sizeof(*kids) + 1);
    const char *id = str(o, "id");
    json_array_foreach(all, i, c)
    {
        const char *p = str(c, "parentObservationId");
        if (kids && p && id && !strcmp(p, id)) kids[n++] = c;
    }
    if (n > 1) qsort(kids, n, sizeof(*kids), by_start);
    snprintf(line_prefix, sizeof(line_prefix), "%s%s", prefix, last ? "   " : "│  ");
    for (i = 0; i < n; i++)
        print_node(out, kids[i], all, line_prefix, i + 1 == n);
    free(kids);
}

void tt_print_api_trace(json_t *t, FILE *out)
{
    json_t *all = json_object_get(t, "observations");
    size_t i;
    json_t *o;
    double cost = 0, start = 0, end = 0;
    long long tin = 0, tout = 0;
    int errors = 0;
    json_array_foreach(all, i, o)
    {
        cost += obs_cost(o);
        json_t *u = json_object_get(o, "usageDetails");
        const char *k;
        json_t *v;
        json_object_foreach(u, k, v)
        {
            if (!strncmp(k, "input", 5) || strstr(k, "input_tokens"))
                tin += json_integer_value(v);
            else if (!strncmp(k, "output", 6))
                tout += json_integer_value(v);
        }
        errors += str(o, "level") && !strcmp(str(o, "level"), "ERROR");
        double s = iso_seconds(str(o, "startTime")), e = iso_seconds(str(o, "endTime"));
        if (s > 0 && (start == 0 || s < start)) start = s;
        if (e > end) end = e;
    }
    fprintf(out, "trace %s  %s\n", str(t, "name") ? str(t, "name") : "(unnamed)", str(t, "id"));
    if (str(t, "sessionId") || str(t, "userId"))
        fprintf(out, "  session %s  user %s\n", str(t, "sessionId") ? str(t, "sessionId") : "-",
                str(t, "userId") ? str(t, "userId") : "-");
    fprintf(out, "  %.3f s  $%.6f  tokens in %lld out %lld  %zu observations, %d errors\n",
            end > start ? end - start : 0, cost, tin, tout, json_array_size(all), errors);
    json_t *tags = json_object_get(t, "tags");
    if (json_array_size(tags)) {
        fprintf(out, "  tags:");
        json_array_foreach(tags, i, o) fprintf(out, " %s", json_string_value(o));
        fputc('\n', out);
    }
    /* roots: no parent, or a parent that is not in this trace */
    json_t **roots = malloc(json_array_size(all) * sizeof(*roots) + 1);
    size_t n = 0;
    json_array_foreach(all, i, o)
    {
        const char *p = str(o, "parentObservationId");
        int found = 0;
        size_t j;
        json_t *q;
        if (p) json_array_foreach(all, j, q) found |= str(q, "id") && !strcmp(str(q, "id"), p);
        if (!found && roots) roots[n++] = o;
    }
    if (n > 1) qsort(roots, n, sizeof(*roots), by_start);
    for (i = 0; i < n; i++)
        print_node(out, roots[i], all, "", i + 1 == n);
    free(roots);
    fputc('\n', out);
}

/* ---- v4 observations ------------------------------------------------------------------ */

/* Sets trace[key] to value unless value is null or missing; with `keep`, an existing value
   stays (a non-root observation only fills in what the root has not given). */
static void set_from(json_t *trace, const char *key, json_t *value, int keep)
{
    if (!value || json_is_null(value) || (keep && json_object_get(trace, key))) return;
    json_object_set(trace, key, value);
}

/* v2 answers input and output as the raw strings stored; the v3 trace view had them parsed. */
static void set_io(json_t *trace, const char *key, json_t *value)
{
    if (!json_is_string(value)) {
        set_from(trace, key, value, 0);
        return;
    }
    json_t *v = json_loads(json_string_value(value), JSON_DECODE_ANY, NULL);
    json_object_set_new(trace, key, v ? v : json_incref(value));
}

static int newest_first(const void *a, const void *b)
{
    double x = iso_seconds(str(*(json_t *const *)a, "timestamp"));
    double y = iso_seconds(str(*(json_t *const *)b, "timestamp"));
    return x > y ? -1 : x < y;
}

json_t *tt_traces_from_observations(json_t *items)
{
    json_t *by_id = json_object(); /* traceId -> trace view */
    json_t *out = json_array();
    json_t **sorted = NULL;
    if (!by_id || !out) goto fail;
    size_t i;
    json_t *o;
    json_array_foreach(items, i, o)
    {
        const char *tid = str(o, "traceId");
        if (!tid) continue; /* v4 allows an observation without a trace: it is in no tree */
        json_t *t = json_object_get(by_id, tid);
        if (!t) {
            t = json_pack("{s:s, s:[], s:[], s:f}", "id", tid, "observations", "tags", "totalCost",
                          0.0);
            if (!t || json_object_set_new(by_id, tid, t)) goto fail;
        }
        if (json_array_append(json_object_get(t, "observations"), o)) goto fail;
        double cost = json_number_value(json_object_get(t, "totalCost")) +
                      json_number_value(json_object_get(o, "totalCost"));
        json_object_set_new(t, "totalCost", json_real(cost));
        const char *start = str(o, "startTime");
        if (start &&
            (!str(t, "timestamp") || iso_seconds(start) < iso_seconds(str(t, "timestamp"))))
            json_object_set(t, "timestamp", json_object_get(o, "startTime"));
        /* v4 reads trace attributes per observation: any may carry them, the root's win */
        int root =
            json_is_true(json_object_get(o, "isRootObservation")) || !str(o, "parentObservationId");
        set_from(t, "name", json_object_get(o, "traceName"), !root);
        if (root) set_from(t, "name", json_object_get(o, "name"), 1);
        set_from(t, "sessionId", json_object_get(o, "sessionId"), !root);
        set_from(t, "userId", json_object_get(o, "userId"), !root);
        if (json_array_size(json_object_get(o, "tags")) &&
            (root || !json_array_size(json_object_get(t, "tags"))))
            json_object_set(t, "tags", json_object_get(o, "tags"));
        if (root) {
            set_io(t, "input", json_object_get(o, "input"));
            set_io(t, "output", json_object_get(o, "output"));
        }
    }
    size_t n = json_object_size(by_id), k = 0;
    sorted = malloc(n * sizeof(*sorted) + 1);
    if (!sorted) goto fail;
    const char *id;
    json_object_foreach(by_id, id, o)
    {
        sorted[k++] = o;
    }
    qsort(sorted, n, sizeof(*sorted), newest_first);
    for (k = 0; k < n; k++)
        if (json_array_append(out, sorted[k])) goto fail;
    free(sorted);
    json_decref(by_id);
    return out;
fail:
    free(sorted);
    json_decref(by_id);
    json_decref(out);
    return NULL;
}

/* ---- files ------------------------------------------------------------------------------- */

struct tt_forest *tt_forest_new(void)
{
    struct tt_forest *f = calloc(1, sizeof(*f));
    if (f) f->traces = json_object();
    return f;
}

void tt_forest_free(struct tt_forest *f)
{
    if (!f) return;
    json_decref(f->traces);
    free(f);
}

static json_t *trace_of(struct tt_forest *f, const char *id)
{
    json_t *t = json_object_get(f->traces, id);
    if (!t) {
        t = json_pack("{s:s, s:{}, s:[]}", "id", id, "obsmap", "tags");
        json_object_set_new(f->traces, id, t);
    }
    return t;
}

/* Merges `fields` into `dst`: non-empty values win, metadata is merged key by key. */
static void merge(json_t *dst, json_t *fields)
{
    const char *k;
    json_t *v;
    json_object_foreach(fields, k, v)
    {
        if (json_is_null(v) || (json_is_string(v) && !*json_string_value(v))) continue;
        if (!strcmp(k, "metadata") && json_is_object(v) && json_is_object(json_object_get(dst, k)))
            json_object_update(json_object_get(dst, k), v);
        else if (!strcmp(k, "tags") && json_is_array(v)) {
            json_t *tags = json_object_get(dst, "tags");
            size_t i, j;
            json_t *a, *b;
            json_array_foreach(v, i, a)
            {
                int dup = 0;
                json_array_foreach(tags, j, b) dup |= json_equal(a, b);
                if (!dup) json_array_append(tags, a);
            }
        } else if (!(!strcmp(k, "startTime") && json_object_get(dst, k)))
            json_object_set(dst, k, v);
    }
}

static json_t *parse_json_string(const char *s)
{
    if (!s) return json_null();
    json_error_t err;
    json_t *v = json_loads(s, JSON_DECODE_ANY, &err);
    return v ? v : json_string(s);
}

static char *iso_from_ns(const char *ns)
{
    long long v = ns ? strtoll(ns, NULL, 10) : 0;
    time_t sec = (time_t)(v / 1000000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char buf[64];
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (v % 1000000000) / 1000);
    return strdup(buf);
}

static json_t *any_value(json_t *v)
{
    json_t *x;
    if ((x = json_object_get(v, "stringValue"))) return json_incref(x);
    if ((x = json_object_get(v, "intValue")))
        return json_is_string(x) ? json_integer(strtoll(json_string_value(x), NULL, 10))
                                 : json_incref(x);
    if ((x = json_object_get(v, "doubleValue")) || (x = json_object_get(v, "boolValue")))
        return json_incref(x);
    if ((x = json_object_get(v, "arrayValue"))) {
        json_t *arr = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(x, "values"), i, e)
            json_array_append_new(arr, any_value(e));
        return arr;
    }
    return json_null();
}

static void add_span(struct tt_forest *f, json_t *span)
{
    const char *tid = str(span, "traceId"), *sid = str(span, "spanId");
    if (!tid || !sid) return;
    json_t *t = trace_of(f, tid);
    json_t *obs = json_object(), *tr = json_object(), *meta = json_object(), *tmeta = json_object();
    char *start = iso_from_ns(str(span, "startTimeUnixNano"));
    char *end = iso_from_ns(str(span, "endTimeUnixNano"));
    json_object_set_new(obs, "id", json_string(sid));
    json_object_set_new(obs, "traceId", json_string(tid));
    json_object_set_new(obs, "name", json_string(str(span, "name") ? str(span, "name") : ""));
    json_object_set_new(obs, "startTime", json_string(start));
    json_object_set_new(obs, "endTime", json_string(end));
    free(start);
    free(end);
    const char *parent = str(span, "parentSpanId");
    if (parent && *parent) json_object_set_new(obs, "parentObservationId", json_string(parent));
    char type[32] = "SPAN";
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(span, "attributes"), i, a)
    {
        const char *k = str(a, "key");
        json_t *v = any_value(json_object_get(a, "value"));
        const char *s = json_string_value(v);
        if (!k) {
            json_decref(v);
            continue;
        }
        if (!strcmp(k, "langfuse.observation.type") && s) {
            size_t j = 0;
            for (; s[j] && j < sizeof(type) - 1; j++)
                type[j] = (char)(s[j] >= 'a' && s[j] <= 'z' ? s[j] - 'a' + 'A' : s[j]);
            type[j] = '\0';
        } else if (!strcmp(k, "langfuse.observation.input"))
            json_object_set_new(obs, "input", parse_json_string(s));
        else if (!strcmp(k, "langfuse.observation.output"))
            json_object_set_new(obs, "output", parse_json_string(s));
        else if (!strcmp(k, "langfuse.observation.level"))
            json_object_set(obs, "level", v);
        else if (!strcmp(k, "langfuse.observation.status_message"))
            json_object_set(obs, "statusMessage", v);
        else if (!strcmp(k, "langfuse.observation.model.name"))
            json_object_set(obs, "model", v);
        else if (!strcmp(k, "langfuse.observation.usage_details"))
            json_object_set_new(obs, "usageDetails", parse_json_string(s));
        else if (!strcmp(k, "langfuse.observation.cost_details"))
            json_object_set_new(obs, "costDetails", parse_json_string(s));
        else if (!strncmp(k, "langfuse.observation.metadata.", 30))
            json_object_set_new(meta, k + 30, s ? parse_json_string(s) : json_incref(v));
        else if (!strcmp(k, "langfuse.trace.name"))
            json_object_set(tr, "name", v);
        else if (!strcmp(k, "session.id"))
            json_object_set(tr, "sessionId", v);
        else if (!strcmp(k, "user.id"))
            json_object_set(tr, "userId", v);
        else if (!strcmp(k, "langfuse.trace.input"))
            json_object_set_new(tr, "input", parse_json_string(s));
        else if (!strcmp(k, "langfuse.trace.output"))
            json_object_set_new(tr, "output", parse_json_string(s));
        else if (!strcmp(k, "langfuse.trace.tags"))
            json_object_set(tr, "tags", v);
        else if (!strncmp(k, "langfuse.trace.metadata.", 24))
            json_object_set_new(tmeta, k + 24, s ? parse_json_string(s) : json_incref(v));
        json_decref(v);
    }
    json_object_set_new(obs, "type", json_string(type));
    json_object_set_new(obs, "metadata", meta);
    json_object_set_new(tr, "metadata", tmeta);
    if (!parent || !*parent) {
        if (!json_object_get(tr, "name")) json_object_set(tr, "name", json_object_get(obs, "name"));
        json_object_set(tr, "timestamp", json_object_get(obs, "startTime"));
    }
    if (!json_object_get(t, "metadata")) json_object_set_new(t, "metadata", json_object());
    merge(t, tr);
    json_t *old = json_object_get(json_object_get(t, "obsmap"), sid);
    if (old) {
        merge(old, obs);
    } else {
        json_object_set(json_object_get(t, "obsmap"), sid, obs);
    }
    json_decref(obs);
    json_decref(tr);
}

static void add_event(struct tt_forest *f, json_t *ev)
{
    const char *type = str(ev, "type");
    json_t *body = json_object_get(ev, "body");
    if (!type || !json_is_object(body)) return;
    if (!strcmp(type, "trace-create")) {
        const char *id = str(body, "id");
        if (!id) return;
        json_t *t = trace_of(f, id);
        if (!json_object_get(t, "metadata")) json_object_set_new(t, "metadata", json_object());
        merge(t, body);
        return;
    }
    const char *dash = strrchr(type, '-');
    const char *tid = str(body, "traceId"), *id = str(body, "id");
    if (!dash || strcmp(dash, "-create") || !tid || !id || !strcmp(type, "score-create")) return;
    char upper[32];
    size_t n = (size_t)(dash - type);
    if (n >= sizeof(upper)) return;
    for (size_t i = 0; i < n; i++)
        upper[i] = (char)(type[i] >= 'a' && type[i] <= 'z' ? type[i] - 'a' + 'A' : type[i]);
    upper[n] = '\0';
    json_t *t = trace_of(f, tid);
    json_t *obs = json_deep_copy(body);
    if (!json_object_get(obs, "type")) json_object_set_new(obs, "type", json_string(upper));
    json_t *old = json_object_get(json_object_get(t, "obsmap"), id);
    if (old)
        merge(old, obs);
    else
        json_object_set(json_object_get(t, "obsmap"), id, obs);
    json_decref(obs);
}

/* Adds one body already in memory (plain JSON). */
static int tt_forest_add_body(struct tt_forest *f, const char *json, size_t len, char *err,
                              size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root) {
        snprintf(err, errlen, "not JSON (line %d: %s)", jerr.line, jerr.text);
        return -1;
    }
    size_t i, j, k;
    json_t *rs, *ss, *sp, *ev;
    if (json_object_get(root, "resourceSpans")) {
        json_array_foreach(json_object_get(root, "resourceSpans"), i, rs)
            json_array_foreach(json_object_get(rs, "scopeSpans"), j, ss)
                json_array_foreach(json_object_get(ss, "spans"), k, sp) add_span(f, sp);
    } else if (json_is_array(json_object_get(root, "batch"))) {
        json_array_foreach(json_object_get(root, "batch"), i, ev) add_event(f, ev);
    } else {
        json_decref(root);
        snprintf(err, errlen, "neither an OTLP body (resourceSpans) nor an ingestion batch");
        return -1;
    }
    json_decref(root);
    return 0;
}

int tt_forest_add_file(struct tt_forest *f, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: cannot open", path);
        return -1;
    }
    size_t cap = 1 << 16, n = 0, r;
    char *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n, fp)) > 0) {
        n += r;
        if (n == cap) {
            if (cap >= FILE_MAX) {
                snprintf(err, errlen, "%s: larger than 256 MiB", path);
                free(buf);
                fclose(fp);
                return -1;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(fp);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    if (n >= 2 && (unsigned char)buf[0] == 0x1f && (unsigned char)buf[1] == 0x8b) {
        char *plain;
        size_t plen;
        int g = lf__gunzip(buf, n, FILE_MAX, &plain, &plen); /* the library's own gzip */
        free(buf);
        if (g) {
            snprintf(err, errlen, "%s: %s", path,
                     g == -2 ? "larger than 256 MiB unpacked" : "not a readable gzip file");
            return -1;
        }
        buf = plain;
        n = plen;
    }
    char inner[200];
    int rc = tt_forest_add_body(f, buf, n, inner, sizeof(inner));
    if (rc) snprintf(err, errlen, "%s: %s", path, inner);
    free(buf);
    return rc;
}

/* The forest as a JSON array of trace views (the API's shape); a new reference. */
static json_t *tt_forest_traces(struct tt_forest *f)
{
    json_t *out = json_array();
    const char *id;
    json_t *t;
    json_object_foreach(f->traces, id, t)
    {
        json_t *view = json_deep_copy(t);
        json_t *list = json_array();
        const char *oid;
        json_t *o;
        json_object_foreach(json_object_get(t, "obsmap"), oid, o) json_array_append(list, o);
        json_object_del(view, "obsmap");
        json_object_set_new(view, "observations", list);
        json_array_append_new(out, view);
    }
    return out;
}

void tt_forest_print(struct tt_forest *f, FILE *out)
{
    json_t *all = tt_forest_traces(f);
    size_t i;
    json_t *t;
    json_array_foreach(all, i, t) tt_print_api_trace(t, out);
    json_decref(all);
}
