/*
 * trace.c - a session as a Langfuse trace.
 *
 * Layout (SPEC.md): trace `agentic-session` > `claude-query` per prompt > a `model-call`
 * per API call Claude Code streamed, and a tool observation per tool use (a subagent's
 * tools nest under the Agent tool use that started it).
 *
 * Exactness. Claude Code reports cost and tokens cumulatively (`total_cost_usd`,
 * `modelUsage`) at each result; a turn's numbers are the differences. Per-call tokens come
 * from the stream events (message_start, message_delta); what the turn's modelUsage holds
 * beyond them (a subagent's calls, which are not streamed) goes on a `subagent-calls`
 * generation under the Agent tool use. Cost is split in integer picodollars, by list-price
 * weights within each model, the last part taking the rounding rest, so the parts add up
 * to the turn's cost exactly and the turns to the session's total_cost_usd.
 *
 * Export once (Langfuse v4 keeps every copy of a span): each observation goes out once,
 * when it ends, so nothing is exported before its numbers are final. A tool use ends with
 * its result; a model call and an Agent tool use stay open until their turn's result (their
 * cost is known only then) and are ended with the time they really ended; the root ends
 * last, with the session's output. The trace attributes are all set at the start (and the
 * Claude Code version at init, before any call ends), so every observation carries them.
 *
 * No guessed numbers: v4 prices any observation that names a model without usage, from its
 * text. So a model is named only beside exact usage and cost (a per-query claude-query, a
 * per-call model-call once its cost share is set, subagent-calls); elsewhere it is metadata.
 */
#include "trace.h"
#include "log.h"

#include <langfuse/langfuse.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOOL_OUTPUT (32u << 10) /* a tool result's text kept in the trace */
#define PICO 1e12

/* List-price ratios of Claude models (input 1, output 5, cache read 0.1, cache write 1.25):
 * only used to split a model's known cost between its calls. */
static const double W_IN = 1.0, W_OUT = 5.0, W_CR = 0.1, W_CW = 1.25;

struct usage {
    long long in, out, cr, cw;
};

struct call {
    struct call *next;
    lf_obs *obs;
    char msg_id[96];
    char model[96];
    struct usage u;
    int64_t start_ns;
    int64_t end_ns;     /* 0 while streaming */
    int got_first;      /* first content delta seen (time to first token) */
    json_t *content;    /* the blocks it returned */
};

struct tool {
    struct tool *next;
    lf_obs *obs;
    char id[96];
    int agent;          /* an Agent (Task) tool use: kept open until the turn ends */
    int64_t end_ns;     /* its result arrived (agent tools) */
};

struct cc_trace {
    lf_client *lf;
    const struct cc_options *o;
    int per_call;
    int mask;                   /* LANGFUSE_MASK_MESSAGES: no tool text in status messages */
    char interrupted[160];      /* why the running turn was interrupted, "" when it was not */
    int interrupt_fails;        /* ... and whether that fails the session (timeout, signal) */
    lf_obs *trace;
    lf_obs *query;
    int turns;
    struct call *calls, *cur;   /* this turn's calls (newest first); the one streaming */
    struct tool *tools;         /* this turn's open tool uses */
    json_t *pending_input;      /* what leads to the next model call */
    double prev_cost;           /* total_cost_usd at the previous result */
    json_t *prev_usage;         /* modelUsage at the previous result */
    int64_t start_ns;
    int init_seen;
    char model[96];             /* the session's model (option or init) */
};

/* The service-account key's secret parts (the file's whole text would redact too much).
 * lf_client_add_secret() takes NULL and refuses values too short to be secrets; one it
 * cannot register (out of memory) turns the client off and says so, so none leaks. */
static void record_credentials_file(lf_client *c, const char *path)
{
    json_t *doc = path ? json_load_file(path, 0, NULL) : NULL;
    const char *pem = cc_json_str(doc, "private_key");
    lf_client_add_secret(c, pem);
    /* and each line of its body, which is what a log or a pasted fragment would carry */
    for (const char *line = pem; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        char part[256];
        if (n < sizeof part && strncmp(line, "-----", 5) != 0) {
            memcpy(part, line, n);
            part[n] = '\0';
            lf_client_add_secret(c, part);
        }
        line = nl ? nl + 1 : NULL;
    }
    lf_client_add_secret(c, cc_json_str(doc, "private_key_id"));
    lf_client_add_secret(c, cc_json_str(doc, "refresh_token"));
    lf_client_add_secret(c, cc_json_str(doc, "client_secret"));
    json_decref(doc);
}

/* $HOME/.cache/ccrunner/langfuse-spool: what a dead Langfuse leaves undelivered waits
 * there for the next run. The library creates it (mode 0700) when it first writes there.
 * NULL when there is no HOME. */
static const char *default_spool_dir(char *path, size_t len)
{
    const char *home = getenv("HOME");
    if (!home || !*home)
        return NULL;
    snprintf(path, len, "%s/.cache/ccrunner/langfuse-spool", home);
    return path;
}

/* The session's model: tag, metadata, and the model of its queries. */
static void set_model(struct cc_trace *t, const char *model)
{
    char tag[300];
    snprintf(t->model, sizeof t->model, "%s", model);
    snprintf(tag, sizeof tag, "model:%s", model);
    lf_trace_add_tag(t->trace, tag);
    lf_trace_set_metadata_string(t->trace, "model", model);
}

/* The library's log lines, under the runner's prefix: one voice for everything about
 * tracing ("ccrunner: langfuse: ..."). */
static void library_log(void *ud, enum lf_log_level level, const char *msg)
{
    (void)ud;
    cc_log("langfuse: %s%s", level == LF_LOG_DEBUG ? "debug: " : "", msg);
}

struct cc_trace *cc_trace_start(const struct cc_options *o, const char *session_id)
{
    struct lf_config cfg;
    char err[256], spool[4096];
    /* The library reads LANGFUSE_*; only LANGFUSE_ENABLED switches tracing on. */
    lf_config_init(&cfg);
    cfg.enabled = 0;
    cfg.log = library_log;
    /* what the next run says of a session this runner could not close (SIGKILL, OOM) */
    cfg.orphan_message = "the runner ended without closing the session";
    if (lf_config_from_env(&cfg, err, sizeof err)) {
        cc_log("langfuse: tracing off: %s", err);
        return NULL;
    }
    if (!cfg.enabled)
        return NULL;
    const char *host = getenv("LANGFUSE_HOST");
    if (host && !*host && !getenv("LANGFUSE_BASE_URL"))
        cc_log("langfuse: LANGFUSE_HOST is set but empty; using %s", cfg.host);
    if (!cfg.spool_dir)
        cfg.spool_dir = default_spool_dir(spool, sizeof spool);
    lf_client *lf = lf_client_new(&cfg);
    if (!lf || !lf_client_enabled(lf)) {
        lf_client_free(lf);
        return NULL; /* missing keys: the library said so, once */
    }
    struct cc_trace *t = calloc(1, sizeof *t);
    if (!t) {
        lf_client_free(lf);
        return NULL;
    }
    t->lf = lf;
    t->o = o;
    const char *layout = getenv("LANGFUSE_GENERATIONS");
    t->per_call = layout && strcmp(layout, "per-call") == 0;
    t->mask = cfg.mask_messages;
    if (layout && strcmp(layout, "per-call") && strcmp(layout, "per-query"))
        cc_log("langfuse: LANGFUSE_GENERATIONS=%.40s is not per-query or per-call; using "
               "per-query", layout);
    lf_client_add_secret(lf, o->anthropic_api_key);
    lf_client_add_secret(lf, o->bot_token);
    lf_client_add_secret(lf, getenv("GITHUB_TOKEN"));
    record_credentials_file(lf, o->google_credentials);
    t->pending_input = json_array();
    t->start_ns = lf_now_ns();

    lf_obs *tr = t->trace = lf_trace_start(lf, "agentic-session", NULL);
    lf_trace_set_session_id(tr, session_id);
    if (o->user_id)
        lf_trace_set_user_id(tr, o->user_id);
    json_t *in = json_pack("{s:s?}", "prompt", o->prompt);
    char *ins = json_dumps(in, JSON_COMPACT);
    lf_trace_set_input_json(tr, ins);
    free(ins);
    json_decref(in);
    lf_trace_add_tag(tr, "claude-code");
    if (o->namespace_name) {
        char tag[300];
        snprintf(tag, sizeof tag, "namespace:%s", o->namespace_name);
        lf_trace_add_tag(tr, tag);
        lf_trace_set_metadata_string(tr, "namespace", o->namespace_name);
    }
    if (o->project_name)
        lf_trace_set_metadata_string(tr, "project", o->project_name);
    if (o->user_name)
        lf_trace_set_metadata_string(tr, "user_name", o->user_name);
    lf_trace_set_metadata_bool(tr, "interactive", o->interactive);
    lf_trace_set_metadata_string(tr, "workspace", o->workspace);
    lf_trace_set_metadata_string(tr, "session_id", session_id);
    if (o->model)
        set_model(t, o->model);
    return t;
}

/* ---- turns ------------------------------------------------------------------------------ */

static void start_query(struct cc_trace *t, const char *input, int autonomous)
{
    t->query = lf_obs_start(t->trace, t->per_call ? LF_OBS_AGENT : LF_OBS_GENERATION,
                            "claude-query");
    lf_obs_set_input_string(t->query, input);
    if (autonomous)
        lf_obs_set_metadata_bool(t->query, "autonomous", 1);
    json_decref(t->pending_input);
    t->pending_input = json_pack("[{s:s, s:s}]", "role", "user", "content", input);
}

void cc_trace_prompt(struct cc_trace *t, const char *text)
{
    if (!t)
        return;
    t->turns++;
    start_query(t, text, 0);
}

static void ensure_query(struct cc_trace *t)
{
    if (!t->query) {
        t->turns++;
        start_query(t, "(no prompt: Claude Code started this turn by itself, as when a "
                       "background agent finished)", 1);
    }
}

static struct tool *find_tool(struct cc_trace *t, const char *id)
{
    for (struct tool *x = t->tools; id && x; x = x->next)
        if (strcmp(x->id, id) == 0)
            return x;
    return NULL;
}

static struct call *find_call(struct cc_trace *t, const char *msg_id)
{
    for (struct call *c = t->calls; msg_id && c; c = c->next)
        if (strcmp(c->msg_id, msg_id) == 0)
            return c;
    return NULL;
}

/* a += sign * b */
static void usage_add(struct usage *a, const struct usage *b, int sign)
{
    a->in += sign * b->in;
    a->out += sign * b->out;
    a->cr += sign * b->cr;
    a->cw += sign * b->cw;
}

static void set_usage(lf_obs *o, const struct usage *u)
{
    lf_obs_set_usage(o, "input", u->in);
    lf_obs_set_usage(o, "output", u->out);
    lf_obs_set_usage(o, "cache_read_input_tokens", u->cr);
    lf_obs_set_usage(o, "cache_creation_input_tokens", u->cw);
    lf_obs_set_usage(o, "total", u->in + u->out + u->cr + u->cw);
}

static void set_usage_metadata(lf_obs *o, const struct usage *u)
{
    char json[256];
    snprintf(json, sizeof json,
             "{\"input\":%lld,\"output\":%lld,\"cache_read_input_tokens\":%lld,"
             "\"cache_creation_input_tokens\":%lld,\"total\":%lld}",
             u->in, u->out, u->cr, u->cw, u->in + u->out + u->cr + u->cw);
    lf_obs_set_metadata_json(o, "usage", json);
}

static void read_usage(const json_t *u, struct usage *out, int only_present)
{
    static const char *keys[] = {"input_tokens", "output_tokens", "cache_read_input_tokens",
                                 "cache_creation_input_tokens"};
    long long *dst[] = {&out->in, &out->out, &out->cr, &out->cw};
    for (int i = 0; i < 4; i++) {
        json_t *v = json_object_get(u, keys[i]);
        if (json_is_integer(v) || !only_present)
            *dst[i] = json_is_integer(v) ? (long long)json_integer_value(v) : 0;
    }
}

static void on_stream_event(struct cc_trace *t, const struct cc_msg *m)
{
    const char *type = cc_json_str(m->event, "type");
    if (!type || m->parent_tool_use_id)
        return;
    if (strcmp(type, "message_start") == 0) {
        json_t *msg = json_object_get(m->event, "message");
        ensure_query(t);
        struct call *c = calloc(1, sizeof *c);
        if (!c)
            return;
        snprintf(c->msg_id, sizeof c->msg_id, "%s", cc_json_str_or(msg, "id", ""));
        snprintf(c->model, sizeof c->model, "%s", cc_json_str_or(msg, "model", ""));
        read_usage(json_object_get(msg, "usage"), &c->u, 0);
        c->content = json_array();
        c->start_ns = lf_now_ns();
        c->obs = lf_obs_start(t->query, t->per_call ? LF_OBS_GENERATION : LF_OBS_SPAN, "model-call");
        lf_obs_set_metadata_string(c->obs, "model", c->model); /* named with its cost */
        char *in = json_dumps(t->pending_input, JSON_COMPACT);
        if (in)
            lf_obs_set_input_json(c->obs, in);
        free(in);
        json_array_clear(t->pending_input);
        c->next = t->calls;
        t->calls = t->cur = c;
        if (!t->model[0] && c->model[0])
            snprintf(t->model, sizeof t->model, "%s", c->model);
    } else if (!t->cur) {
        return;
    } else if (strcmp(type, "content_block_delta") == 0 && !t->cur->got_first) {
        int64_t now = lf_now_ns();
        t->cur->got_first = 1;
        /* Langfuse shows completionStartTime on generations; spans keep it in metadata */
        lf_obs_set_completion_start(t->cur->obs, now);
        lf_obs_set_metadata_int(t->cur->obs, "time_to_first_token_ms",
                                (now - t->cur->start_ns) / 1000000);
    } else if (strcmp(type, "message_delta") == 0) {
        read_usage(json_object_get(m->event, "usage"), &t->cur->u, 1);
        const char *stop = cc_json_str(json_object_get(m->event, "delta"), "stop_reason");
        if (stop)
            lf_obs_set_metadata_string(t->cur->obs, "stop_reason", stop);
    } else if (strcmp(type, "message_stop") == 0) {
        struct call *c = t->cur;
        c->end_ns = lf_now_ns();
        char *out = json_dumps(c->content, JSON_COMPACT);
        if (out)
            lf_obs_set_output_json(c->obs, out);
        free(out);
        if (t->per_call)
            set_usage(c->obs, &c->u);
        else
            set_usage_metadata(c->obs, &c->u);
        t->cur = NULL;
    }
}

static void start_tool(struct cc_trace *t, const struct cc_msg *m, const json_t *b)
{
    struct tool *parent = find_tool(t, m->parent_tool_use_id);
    const char *name = cc_json_str_or(b, "name", "tool");
    struct tool *x = calloc(1, sizeof *x);
    if (!x)
        return;
    ensure_query(t);
    x->obs = lf_obs_start(parent ? parent->obs : t->query, LF_OBS_TOOL, name);
    snprintf(x->id, sizeof x->id, "%s", cc_json_str_or(b, "id", ""));
    x->agent = !strcmp(name, "Agent") || !strcmp(name, "Task");
    char *in = json_dumps(json_object_get(b, "input"), JSON_COMPACT | JSON_ENCODE_ANY);
    if (in)
        lf_obs_set_input_json(x->obs, in);
    free(in);
    lf_obs_set_metadata_string(x->obs, "tool_use_id", x->id);
    x->next = t->tools;
    t->tools = x;
}

static void unlink_tool(struct cc_trace *t, struct tool *x)
{
    for (struct tool **p = &t->tools; *p; p = &(*p)->next)
        if (*p == x) {
            *p = x->next;
            return;
        }
}

static void on_assistant(struct cc_trace *t, const struct cc_msg *m)
{
    json_t *content = json_object_get(m->message, "content");
    const char *msg_id = cc_json_str(m->message, "id");
    struct call *c = m->parent_tool_use_id ? NULL : find_call(t, msg_id);
    size_t i;
    json_t *b;
    if (json_is_true(json_object_get(m->root, "is_api_error_message"))) {
        ensure_query(t);
        lf_obs *ev = lf_obs_start(t->query, LF_OBS_EVENT, "api-error");
        lf_obs_set_level(ev, LF_LEVEL_ERROR);
        json_array_foreach(content, i, b) if (cc_json_str(b, "text"))
            lf_obs_set_status_message(ev, cc_json_str(b, "text"));
        lf_obs_end(ev);
        return;
    }
    json_array_foreach(content, i, b) {
        const char *type = cc_json_str(b, "type");
        if (c)
            json_array_append(c->content, b);
        if (type && strcmp(type, "tool_use") == 0)
            start_tool(t, m, b);
    }
}

static void on_user(struct cc_trace *t, const struct cc_msg *m)
{
    json_t *content = json_object_get(m->message, "content");
    size_t i;
    json_t *b;
    json_array_foreach(content, i, b) {
        const char *type = cc_json_str(b, "type");
        if (!type || strcmp(type, "tool_result") != 0)
            continue;
        if (!m->parent_tool_use_id)
            json_array_append(t->pending_input, b);
        struct tool *x = find_tool(t, cc_json_str(b, "tool_use_id"));
        if (!x)
            continue;
        json_t *c = json_object_get(b, "content");
        /* a string whole (it may hold U+0000), blocks as their JSON */
        char *dumped = json_is_string(c) ? NULL : json_dumps(c, JSON_COMPACT | JSON_ENCODE_ANY);
        const char *text = json_is_string(c) ? json_string_value(c) : dumped;
        size_t n = json_is_string(c) ? json_string_length(c) : dumped ? strlen(dumped) : 0;
        if (text) {
            lf_obs_set_output_stringn(x->obs, text, n > MAX_TOOL_OUTPUT ? MAX_TOOL_OUTPUT : n);
            if (n > MAX_TOOL_OUTPUT)
                lf_obs_set_metadata_int(x->obs, "output_bytes", (int64_t)n);
        }
        if (json_is_true(json_object_get(b, "is_error"))) {
            lf_obs_set_level(x->obs, LF_LEVEL_ERROR);
            /* the library masks inputs and outputs; a failed tool's text is also its status */
            lf_obs_set_status_message(x->obs, text && *text && !t->mask ? text : "the tool use failed");
        }
        free(dumped);
        if (x->agent) {
            x->end_ns = lf_now_ns(); /* ended with the turn, when its calls' cost is known */
        } else {
            unlink_tool(t, x);
            lf_obs_end(x->obs);
            free(x);
        }
    }
}

/* Ends the turn's calls and tool uses still open, each at the time it really ended when
 * known (a call's message_stop, an Agent tool's result), else now; a tool use that never
 * got its result is marked unfinished. */
static void end_open(struct cc_trace *t)
{
    for (struct call *c = t->calls; c;) {
        struct call *next = c->next;
        if (c->end_ns)
            lf_obs_end_at(c->obs, c->end_ns);
        else
            lf_obs_end(c->obs); /* interrupted mid-stream */
        json_decref(c->content);
        free(c);
        c = next;
    }
    t->calls = t->cur = NULL;
    while (t->tools) {
        struct tool *x = t->tools;
        t->tools = x->next;
        if (!x->end_ns && !x->agent)
            lf_obs_set_metadata_bool(x->obs, "unfinished", 1);
        if (x->end_ns)
            lf_obs_end_at(x->obs, x->end_ns);
        else
            lf_obs_end(x->obs);
        free(x);
    }
}

/* Splits `total` picodollars between n parts in proportion to w[] (exactly: the last part
 * takes the rest). */
static void split(long long total, const double *w, int n, long long *out)
{
    double sum = 0;
    long long given = 0;
    for (int i = 0; i < n; i++)
        sum += w[i];
    for (int i = 0; i < n; i++) {
        out[i] = i == n - 1 ? total - given
                            : (sum > 0 ? (long long)floor((double)total * w[i] / sum) : 0);
        given += out[i];
    }
}

static double weight(const struct usage *u)
{
    return W_IN * (double)u->in + W_OUT * (double)u->out + W_CR * (double)u->cr +
           W_CW * (double)u->cw;
}

static void model_diff(const json_t *cur, const json_t *prev, struct usage *u, double *cost)
{
    u->in = cc_json_int(cur, "inputTokens") - cc_json_int(prev, "inputTokens");
    u->out = cc_json_int(cur, "outputTokens") - cc_json_int(prev, "outputTokens");
    u->cr = cc_json_int(cur, "cacheReadInputTokens") - cc_json_int(prev, "cacheReadInputTokens");
    u->cw = cc_json_int(cur, "cacheCreationInputTokens") -
            cc_json_int(prev, "cacheCreationInputTokens");
    *cost = cc_json_num(cur, "costUSD") - cc_json_num(prev, "costUSD");
}

static lf_obs *latest_agent(struct cc_trace *t)
{
    for (struct tool *x = t->tools; x; x = x->next)
        if (x->agent)
            return x->obs;
    return NULL;
}

/* The turn's numbers: per-call usage from the stream, the rest from modelUsage, cost split
 * exactly. Returns the cost not placed on generations under the query's
 * children (per-query: the query's own cost). */
static void account_turn(struct cc_trace *t, const struct cc_result *r, struct usage *streamed,
                         long long *query_pico)
{
    long long turn_pico = llround((r->total_cost_usd - t->prev_cost) * PICO);
    long long placed = 0;
    memset(streamed, 0, sizeof *streamed);
    for (struct call *c = t->calls; c; c = c->next)
        usage_add(streamed, &c->u, 1);
    const char *model;
    json_t *mu;
    int nmodels = 0;
    json_object_foreach(r->model_usage, model, mu) nmodels++;
    /* Per model: its calls and, when modelUsage holds more, a remainder generation. */
    long long model_left = turn_pico;
    int k = 0;
    json_object_foreach(r->model_usage, model, mu) {
        struct usage d, rest;
        double cost;
        model_diff(mu, json_object_get(t->prev_usage, model), &d, &cost);
        k++;
        long long mpico = k == nmodels ? model_left : llround(cost * PICO);
        model_left -= mpico;
        rest = d;
        int ncalls = 0;
        for (struct call *c = t->calls; c; c = c->next)
            if (strcmp(c->model, model) == 0) {
                usage_add(&rest, &c->u, -1);
                ncalls++;
            }
        int has_rest = rest.in > 0 || rest.out > 0 || rest.cr > 0 || rest.cw > 0;
        if (rest.in < 0 || rest.out < 0 || rest.cr < 0 || rest.cw < 0)
            has_rest = 0; /* streamed more than accounted (an aborted call): nothing left */
        int n = ncalls + has_rest;
        if (n == 0) {
            if (mpico) { /* cost with no call at all: an unstreamed call with no tokens */
                rest = d;
                has_rest = 1;
                n = 1;
            } else
                continue;
        }
        double *w = calloc((size_t)n, sizeof *w);
        long long *share = calloc((size_t)n, sizeof *share);
        struct call **cs = calloc((size_t)n, sizeof *cs);
        if (!w || !share || !cs) {
            free(w);
            free(share);
            free(cs);
            continue;
        }
        int j = 0;
        for (struct call *c = t->calls; c; c = c->next)
            if (strcmp(c->model, model) == 0) {
                cs[j] = c;
                w[j++] = weight(&c->u);
            }
        if (has_rest)
            w[j] = weight(&rest) > 0 ? weight(&rest) : 1;
        split(mpico, w, n, share);
        for (j = 0; j < ncalls; j++) {
            if (t->per_call) {
                lf_obs_set_model(cs[j]->obs, cs[j]->model);
                lf_obs_set_cost(cs[j]->obs, "total", (double)share[j] / PICO);
                placed += share[j];
            } else {
                lf_obs_set_metadata_double(cs[j]->obs, "cost_usd", (double)share[j] / PICO);
            }
        }
        if (has_rest) {
            lf_obs *parent = latest_agent(t);
            lf_obs *g = lf_obs_start(parent ? parent : t->query, LF_OBS_GENERATION,
                                     "subagent-calls");
            lf_obs_set_model(g, model);
            set_usage(g, &rest);
            lf_obs_set_cost(g, "total", (double)share[n - 1] / PICO);
            lf_obs_set_metadata_string(g, "note", "model calls Claude Code made without "
                                                  "streaming them (a subagent's): their "
                                                  "usage from the turn's modelUsage");
            lf_obs_end(g);
            placed += share[n - 1];
        }
        free(w);
        free(share);
        free(cs);
    }
    if (!nmodels && t->per_call && t->calls) { /* no modelUsage: everything on the last call */
        lf_obs_set_model(t->calls->obs, t->calls->model);
        lf_obs_set_cost(t->calls->obs, "total", (double)turn_pico / PICO);
        placed = turn_pico;
    }
    *query_pico = turn_pico - placed;
}

static void on_result(struct cc_trace *t, const struct cc_msg *m)
{
    struct cc_result r;
    struct usage streamed;
    long long query_pico;
    cc_msg_result(m, &r);
    if (m->damage[0]) { /* a stand-in: the turn's numbers are unknown; the next result's
                           differences carry them */
        r.total_cost_usd = t->prev_cost;
        r.model_usage = t->prev_usage;
    }
    ensure_query(t);
    account_turn(t, &r, &streamed, &query_pico);
    lf_obs *q = t->query;
    if (r.result)
        lf_obs_set_output_stringn(q, r.result, r.result_len);
    lf_obs_set_metadata_double(q, "cost_usd", r.total_cost_usd - t->prev_cost);
    lf_obs_set_metadata_int(q, "duration_ms", r.duration_ms);
    lf_obs_set_metadata_int(q, "duration_api_ms", r.duration_api_ms);
    lf_obs_set_metadata_int(q, "num_turns", r.num_turns);
    if (r.subtype)
        lf_obs_set_metadata_string(q, "subtype", r.subtype);
    if (r.stop_reason)
        lf_obs_set_metadata_string(q, "stop_reason", r.stop_reason);
    if (t->per_call) {
        set_usage_metadata(q, &streamed);
    } else {
        set_usage(q, &streamed);
        lf_obs_set_cost(q, "total", (double)query_pico / PICO);
        if (t->model[0])
            lf_obs_set_model(q, t->model);
    }
    if (r.is_error && t->interrupted[0]) {
        /* an interrupt the user asked for ends the turn, not the session: a warning */
        char msg[200];
        snprintf(msg, sizeof msg, "interrupted: %s", t->interrupted);
        lf_obs_set_level(q, t->interrupt_fails ? LF_LEVEL_ERROR : LF_LEVEL_WARNING);
        lf_obs_set_status_message(q, msg);
    } else if (r.is_error) {
        char msg[300];
        cc_result_describe(&r, msg, sizeof msg);
        lf_obs_set_level(q, LF_LEVEL_ERROR);
        lf_obs_set_status_message(q, msg);
    }
    end_open(t);
    lf_obs_end(q);
    t->query = NULL;
    t->interrupted[0] = '\0';
    t->prev_cost = r.total_cost_usd;
    if (r.model_usage != t->prev_usage) {
        json_decref(t->prev_usage);
        t->prev_usage = r.model_usage ? json_deep_copy(r.model_usage) : NULL;
    }
    json_array_clear(t->pending_input);
}

static void on_system(struct cc_trace *t, const struct cc_msg *m)
{
    const char *sub = m->subtype ? m->subtype : "";
    if (strcmp(sub, "init") == 0 && !t->init_seen) {
        t->init_seen = 1;
        const char *v = cc_json_str(m->root, "claude_code_version");
        const char *sid = cc_json_str(m->root, "session_id");
        const char *model = cc_json_str(m->root, "model");
        if (v)
            lf_trace_set_metadata_string(t->trace, "claude_code_version", v);
        if (sid)
            lf_trace_set_metadata_string(t->trace, "claude_session_id", sid);
        if (model && !t->o->model)
            set_model(t, model);
    } else if (strcmp(sub, "api_retry") == 0 && t->query) {
        lf_obs *ev = lf_obs_start(t->query, LF_OBS_EVENT, "api-retry");
        char msg[200];
        snprintf(msg, sizeof msg, "HTTP %lld (%s), attempt %lld of %lld",
                 cc_json_int(m->root, "error_status"),
                 cc_json_str_or(m->root, "error", "error"),
                 cc_json_int(m->root, "attempt"), cc_json_int(m->root, "max_retries"));
        lf_obs_set_level(ev, LF_LEVEL_WARNING);
        lf_obs_set_status_message(ev, msg);
        lf_obs_end(ev);
    }
}

void cc_trace_interrupt(struct cc_trace *t, const char *why, int fails)
{
    if (!t || !t->query)
        return;
    snprintf(t->interrupted, sizeof t->interrupted, "%s", why);
    t->interrupt_fails = fails;
}

void cc_trace_claude(struct cc_trace *t, const struct cc_msg *m)
{
    if (!t)
        return;
    switch (m->kind) {
    case CC_MSG_STREAM_EVENT:
        if (m->event)
            on_stream_event(t, m);
        break;
    case CC_MSG_ASSISTANT:
        if (m->message)
            on_assistant(t, m);
        break;
    case CC_MSG_USER:
        if (m->message)
            on_user(t, m);
        break;
    case CC_MSG_RESULT:
        on_result(t, m);
        break;
    case CC_MSG_SYSTEM:
        on_system(t, m);
        break;
    default:
        break;
    }
}

void cc_trace_end(struct cc_trace *t, const struct cc_outcome *how)
{
    if (!t)
        return;
    if (t->query) { /* the turn never got its result: Claude Code died or was stopped */
        end_open(t);
        lf_obs_set_level(t->query, LF_LEVEL_ERROR);
        lf_obs_set_status_message(t->query, how && how->message[0] ? how->message
                                                                   : "the turn did not finish");
        lf_obs_end(t->query);
    }
    int failed = how && how->failed;
    json_t *out = json_pack("{s:b, s:i, s:b}", "success", !failed, "turns", t->turns,
                            "interactive", t->o->interactive);
    if (failed && how->message[0])
        json_object_set_new(out, "error", json_string(how->message));
    char *outs = json_dumps(out, JSON_COMPACT);
    lf_trace_set_output_json(t->trace, outs);
    free(outs);
    json_decref(out);
    lf_trace_set_metadata_double(t->trace, "total_cost_usd", t->prev_cost);
    lf_trace_set_metadata_int(t->trace, "total_duration_ms", (lf_now_ns() - t->start_ns) / 1000000);
    if (failed) {
        lf_obs_set_level(t->trace, LF_LEVEL_ERROR);
        if (how->message[0])
            lf_obs_set_status_message(t->trace, how->message);
        if (how->exception_type)
            lf_trace_set_metadata_string(t->trace, "exception_type", how->exception_type);
    }
    lf_obs_end(t->trace);
    t->trace = NULL;
    lf_client_shutdown(t->lf, -1);
}

void cc_trace_hurry(struct cc_trace *t)
{
    if (t)
        lf_client_hurry(t->lf);
}

void cc_trace_free(struct cc_trace *t)
{
    if (!t)
        return;
    lf_client_free(t->lf);
    json_decref(t->pending_input);
    json_decref(t->prev_usage);
    free(t);
}
