/*
 * trace.c - a session as a Langfuse trace.
 *
 * Layout (SPEC.md): trace `agentic-session` > `claude-query` per prompt > a `model-call`
 * per API call Claude Code streamed, and a tool observation per tool use (a subagent's
 * tools nest under the Agent tool use that started it).
 *
 * Exactness. Claude Code reports each API call it makes, a subagent's too, in its own
 * telemetry (otel.c): exact tokens and cost, time to first token, duration, request id and
 * subagent id. A streamed call is matched to its report by request id; a subagent's call
 * becomes a generation of its own under the Agent tool use, matched by the subagent's id.
 * Claude Code also reports cost and tokens cumulatively at each result (total_cost_usd,
 * modelUsage), so a turn's numbers are the differences; cost.c splits them exactly, in
 * integer picodollars: reported calls keep their cost, the others (no telemetry, or a
 * report missing) share the rest by list-price weights, and tokens no call accounts for go
 * on a `subagent-calls` remainder. The parts add up to the turn's cost and the turns to the
 * session's total_cost_usd. Metadata cost_source says which way each number came.
 *
 * Export once (Langfuse v4 keeps every copy of a span): each observation goes out once,
 * when it ends, so nothing is exported before its numbers are final. A tool use ends with
 * its result; a model call when both its stream and its report are in (memory stays flat
 * over a long turn), or when its turn closes; an Agent tool use when its turn closes. A turn
 * closes once its reports add up to its cost, at most a second after its result, while the
 * next turn runs. The root ends last, with the session's output. The trace attributes are
 * all set at the start (and the Claude Code version at init, before any call ends), so
 * every observation carries them.
 *
 * No guessed numbers: v4 prices any observation that names a model without usage, from its
 * text. So a model is named only beside exact usage and cost (a per-query claude-query, a
 * per-call model-call once its cost is known, a subagent's call, subagent-calls); elsewhere
 * it is metadata.
 */
#include "trace.h"
#include "cost.h"
#include "log.h"
#include "otel.h"

#include <langfuse/langfuse.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOOL_OUTPUT (32u << 10) /* a tool result's text kept in the trace */
#define MAX_MODELS 16               /* models a turn's exact totals are kept for */
#define MAX_EARLY 256               /* events kept until the stream says where they belong */
#define CLOSE_WAIT_NS 1000000000LL  /* how long a turn waits for its last events */

/* A main-agent model call that Claude Code streamed. It is ended (exported) as soon as its
 * numbers are final: with Claude Code's telemetry, when both its stream and its api_request
 * event are in; without, when its turn closes and its cost share is known. */
struct call {
    struct call *next;
    lf_obs *obs;
    char msg_id[96];
    char model[96];
    char request_id[128]; /* from its assistant lines, "" until seen */
    struct cc_usage u;    /* streamed usage */
    int64_t start_ns;
    int64_t end_ns;  /* 0 while streaming */
    int got_first;   /* first content delta seen (time to first token) */
    json_t *content; /* the blocks it returned, until the stream ends */
    int has_event;   /* Claude Code's own report of it is in */
    struct cc_otel_event ev;
};

struct tool {
    struct tool *next;
    lf_obs *obs;
    char id[96];
    char agent_id[128]; /* an Agent tool use: its subagent's id, once known */
    int agent;          /* an Agent (Task) tool use: kept open until its turn closes */
    int64_t end_ns;     /* its result arrived (agent tools) */
};

/* What went out with exact numbers, summed per model, for the turn's accounting: the
 * calls themselves are gone by then (memory stays flat over a long turn). */
struct exact_sum {
    char model[96];
    struct cc_usage u;
    long long pico;
};

/* One prompt's turn. It closes at its result, or, with telemetry, once its last events
 * are in (a bounded wait); closing turns are kept until then while the next one runs. */
struct turn {
    struct turn *next; /* closing turns, oldest first */
    lf_obs *query;
    struct call *calls, *cur; /* calls not ended yet (newest first); the one streaming */
    struct tool *tools;       /* open tool uses */
    struct exact_sum exact[MAX_MODELS];
    int nexact;
    struct cc_usage streamed; /* every main call's streamed usage */
    long long gen_pico;       /* cost already placed on generations */
    /* set at the result */
    int closing;
    int64_t close_by_ns;
    long long turn_pico;
    struct cc_cost_model models[MAX_MODELS];
    char model_names[MAX_MODELS][96];
    int nmodels;
    long long events_pico; /* exact cost of every event matched to this turn */
};

/* One model's cumulative numbers at the previous result (a turn's are the differences). */
struct prev_model {
    char model[96];
    struct cc_usage u;
    double cost_usd;
};

struct cc_trace {
    lf_client *lf;
    const struct cc_options *o;
    int per_call;
    int mask;              /* LANGFUSE_MASK_MESSAGES: no tool text in status messages */
    struct cc_otel *otel;  /* Claude Code's telemetry, or NULL (the fallback) */
    char interrupted[160]; /* why the running turn was interrupted, "" when it was not */
    int interrupt_fails;   /* ... and whether that fails the session (timeout, signal) */
    lf_obs *trace;
    struct turn *cur;     /* the running turn, or NULL between turns */
    struct turn *closing; /* turns past their result, waiting for their last events */
    int turns;
    json_t *pending_input;                 /* what leads to the next model call */
    double prev_cost;                      /* total_cost_usd at the previous result */
    struct prev_model prev[MAX_MODELS];    /* modelUsage at the previous result ... */
    int nprev;                             /* ... this many models */
    struct cc_otel_event early[MAX_EARLY]; /* events the stream has not placed yet */
    int nearly;
    int64_t start_ns;
    int init_seen;
    char model[96]; /* the session's model (option or init) */
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
    if (!home || !*home) return NULL;
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

/* Claude Code's own telemetry, received on loopback (otel.c), gives each model call's
 * exact numbers, subagent calls included. Never when the user set Claude Code's own OTel
 * export (theirs stays theirs), nor with CCRUNNER_CLAUDE_TELEMETRY=off; the log says which
 * way the session's numbers come. */
static void start_telemetry(struct cc_trace *t)
{
    const char *off = getenv("CCRUNNER_CLAUDE_TELEMETRY");
    char err[256];
    if (off && (!strcmp(off, "off") || !strcmp(off, "false") || !strcmp(off, "0"))) {
        cc_log("langfuse: per-call numbers apportioned (CCRUNNER_CLAUDE_TELEMETRY=%s)", off);
        return;
    }
    if (cc_otel_user_configured()) {
        cc_log("langfuse: per-call numbers apportioned: Claude Code's OpenTelemetry export is "
               "yours (OTEL_* set), so ccrunner leaves it alone");
        return;
    }
    if (!(t->otel = cc_otel_start(err, sizeof err)))
        cc_log("langfuse: per-call numbers apportioned: %s", err);
    else
        cc_log("langfuse: per-call numbers from Claude Code's own telemetry (127.0.0.1:%d)",
               cc_otel_port(t->otel));
}

const char *const *cc_trace_child_env(const struct cc_trace *t)
{
    return t && t->otel ? cc_otel_env(t->otel) : NULL;
}

int cc_trace_fd(const struct cc_trace *t)
{
    return t && t->otel ? cc_otel_fd(t->otel) : -1;
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
    if (!cfg.enabled) return NULL;
    const char *host = getenv("LANGFUSE_HOST");
    if (host && !*host && !getenv("LANGFUSE_BASE_URL"))
        cc_log("langfuse: LANGFUSE_HOST is set but empty; using %s", cfg.host);
    if (!cfg.spool_dir) cfg.spool_dir = default_spool_dir(spool, sizeof spool);
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
               "per-query",
               layout);
    lf_client_add_secret(lf, o->anthropic_api_key);
    lf_client_add_secret(lf, o->bot_token);
    lf_client_add_secret(lf, getenv("GITHUB_TOKEN"));
    record_credentials_file(lf, o->google_credentials);
    t->pending_input = json_array();
    t->start_ns = lf_now_ns();
    start_telemetry(t);

    lf_obs *tr = t->trace = lf_trace_start(lf, "agentic-session", NULL);
    lf_trace_set_session_id(tr, session_id);
    if (o->user_id) lf_trace_set_user_id(tr, o->user_id);
    json_t *in = json_pack("{s:s?}", "prompt", o->prompt);
    char *ins = cc_json_dumps(in, JSON_COMPACT, 0, NULL);
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
    if (o->project_name) lf_trace_set_metadata_string(tr, "project", o->project_name);
    if (o->user_name) lf_trace_set_metadata_string(tr, "user_name", o->user_name);
    lf_trace_set_metadata_bool(tr, "interactive", o->interactive);
    lf_trace_set_metadata_string(tr, "workspace", o->workspace);
    lf_trace_set_metadata_string(tr, "session_id", session_id);
    if (o->model) set_model(t, o->model);
    return t;
}

/* ---- turns ------------------------------------------------------------------------------ */

static void start_query(struct cc_trace *t, const char *input, int autonomous)
{
    struct turn *u = calloc(1, sizeof *u);
    if (!u) return;
    u->query =
        lf_obs_start(t->trace, t->per_call ? LF_OBS_AGENT : LF_OBS_GENERATION, "claude-query");
    lf_obs_set_input_string(u->query, input);
    if (autonomous) lf_obs_set_metadata_bool(u->query, "autonomous", 1);
    t->cur = u;
    json_decref(t->pending_input);
    t->pending_input = json_pack("[{s:s, s:s}]", "role", "user", "content", input);
}

void cc_trace_prompt(struct cc_trace *t, const char *text)
{
    if (!t) return;
    t->turns++;
    start_query(t, text, 0);
}

/* The running turn; Claude Code may start one by itself (a background agent finished).
 * NULL only when memory ran out. */
static struct turn *turn_now(struct cc_trace *t)
{
    if (!t->cur) {
        t->turns++;
        start_query(t,
                    "(no prompt: Claude Code started this turn by itself, as when a "
                    "background agent finished)",
                    1);
    }
    return t->cur;
}

static struct tool *find_tool(struct turn *u, const char *id)
{
    for (struct tool *x = u ? u->tools : NULL; id && x; x = x->next)
        if (strcmp(x->id, id) == 0) return x;
    return NULL;
}

/* The open Agent tool use whose subagent is `agent_id`, in any open turn (*in: its turn). */
static struct tool *find_agent(struct cc_trace *t, const char *agent_id, struct turn **in)
{
    for (struct turn *u = t->cur ? t->cur : t->closing; u && agent_id && *agent_id;
         u = u == t->cur ? t->closing : u->next)
        for (struct tool *x = u->tools; x; x = x->next)
            if (x->agent && strcmp(x->agent_id, agent_id) == 0) {
                *in = u;
                return x;
            }
    return NULL;
}

static struct call *find_call(struct turn *u, const char *msg_id)
{
    for (struct call *c = u ? u->calls : NULL; msg_id && c; c = c->next)
        if (strcmp(c->msg_id, msg_id) == 0) return c;
    return NULL;
}

/* The main call Claude Code's event `request_id` is about, in any open turn. */
static struct call *find_request(struct cc_trace *t, const char *request_id, struct turn **in)
{
    for (struct turn *u = t->cur ? t->cur : t->closing; u && *request_id;
         u = u == t->cur ? t->closing : u->next)
        for (struct call *c = u->calls; c; c = c->next)
            if (strcmp(c->request_id, request_id) == 0) {
                *in = u;
                return c;
            }
    return NULL;
}

static void usage_add(struct cc_usage *a, const struct cc_usage *b)
{
    a->in += b->in;
    a->out += b->out;
    a->cr += b->cr;
    a->cw += b->cw;
}

static void set_usage(lf_obs *o, const struct cc_usage *u)
{
    lf_obs_set_usage(o, "input", u->in);
    lf_obs_set_usage(o, "output", u->out);
    lf_obs_set_usage(o, "cache_read_input_tokens", u->cr);
    lf_obs_set_usage(o, "cache_creation_input_tokens", u->cw);
    lf_obs_set_usage(o, "total", u->in + u->out + u->cr + u->cw);
}

static void set_usage_metadata(lf_obs *o, const struct cc_usage *u)
{
    char json[256];
    snprintf(json, sizeof json,
             "{\"input\":%lld,\"output\":%lld,\"cache_read_input_tokens\":%lld,"
             "\"cache_creation_input_tokens\":%lld,\"total\":%lld}",
             u->in, u->out, u->cr, u->cw, u->in + u->out + u->cr + u->cw);
    lf_obs_set_metadata_json(o, "usage", json);
}

/* Where a call's cost comes from, in its metadata: Claude Code's own report of it, or a
 * share of its turn's cost by list-price weights (no telemetry, or its event missing). */
#define SOURCE_EXACT "claude-code-telemetry"
#define SOURCE_SHARE "apportioned"

/* A model call's numbers as the layout wants them: a generation carries model, usage and
 * cost (all three, or no model: no guessed numbers); a per-query span keeps them in
 * metadata. pico < 0: the cost is unknown (a turn that never got its result), so no cost
 * and the model in metadata only. Returns the cost placed on a generation (0 for a span). */
static long long set_numbers(lf_obs *o, int generation, const char *model, const struct cc_usage *u,
                             long long pico, const char *source)
{
    lf_obs_set_metadata_string(o, "cost_source", pico < 0 ? "unknown" : source);
    if (pico < 0) {
        if (generation)
            set_usage(o, u);
        else
            set_usage_metadata(o, u);
        lf_obs_set_metadata_string(o, "model", model);
        return 0;
    }
    if (generation) {
        set_usage(o, u);
        lf_obs_set_model(o, model);
        lf_obs_set_cost(o, "total", (double)pico / CC_PICO);
        return pico;
    }
    set_usage_metadata(o, u);
    lf_obs_set_metadata_string(o, "model", model);
    lf_obs_set_metadata_double(o, "cost_usd", (double)pico / CC_PICO);
    return 0;
}

/* A streamed usage into `out`: the fields given (a message_delta gives what changed). */
static void take_usage(const struct cc_sse *e, struct cc_usage *out)
{
    if (e->usage_has & CC_USAGE_IN) out->in = e->usage.in;
    if (e->usage_has & CC_USAGE_OUT) out->out = e->usage.out;
    if (e->usage_has & CC_USAGE_CR) out->cr = e->usage.cr;
    if (e->usage_has & CC_USAGE_CW) out->cw = e->usage.cw;
}

static struct cc_usage event_usage(const struct cc_otel_event *ev)
{
    return (struct cc_usage){ev->input_tokens, ev->output_tokens, ev->cache_read_tokens,
                             ev->cache_creation_tokens};
}

static long long event_pico(const struct cc_otel_event *ev)
{
    return llround(ev->cost_usd * CC_PICO);
}

/* Sets a call's times from Claude Code's report: the request started `duration_ms` before
 * the event, its first token came `ttft_ms` after that (the wait for the first byte, which
 * the stream does not show). Returns the end time. */
static int64_t event_times(lf_obs *o, const struct cc_otel_event *ev)
{
    int64_t end = ev->time_ns;
    if (ev->duration_ms >= 0) {
        int64_t start = end - (int64_t)(ev->duration_ms * 1e6);
        lf_obs_set_start_time(o, start);
        if (ev->ttft_ms >= 0) {
            lf_obs_set_completion_start(o, start + (int64_t)(ev->ttft_ms * 1e6));
            lf_obs_set_metadata_int(o, "time_to_first_token_ms", llround(ev->ttft_ms));
        }
        lf_obs_set_metadata_int(o, "duration_ms", llround(ev->duration_ms));
    }
    lf_obs_set_metadata_string(o, "request_id", ev->request_id);
    return end;
}

/* Adds what went out with exact numbers to the turn's per-model sums. */
static void note_exact(struct turn *u, const char *model, const struct cc_usage *us, long long pico)
{
    int k = 0;
    while (k < u->nexact && strcmp(u->exact[k].model, model))
        k++;
    if (k == u->nexact) {
        if (u->nexact == MAX_MODELS)
            k = MAX_MODELS - 1; /* a 17th model in one turn: summed with the 16th */
        else
            snprintf(u->exact[u->nexact++].model, sizeof u->exact[0].model, "%s", model);
    }
    usage_add(&u->exact[k].u, us);
    u->exact[k].pico += pico;
}

/* Ends a call: with Claude Code's numbers when its event is in, else with `pico`, its share
 * (the turn is closing; -1: unknown, the turn had no result). Frees it. */
static void finish_call(struct cc_trace *t, struct turn *u, struct call *c, long long pico)
{
    int64_t end = c->end_ns ? c->end_ns : lf_now_ns();
    if (c->has_event) {
        pico = event_pico(&c->ev);
        end = event_times(c->obs, &c->ev);
        struct cc_usage eu = event_usage(&c->ev);
        u->gen_pico += set_numbers(c->obs, t->per_call, c->model, &eu, pico, SOURCE_EXACT);
        note_exact(u, c->model, &eu, pico);
    } else {
        u->gen_pico += set_numbers(c->obs, t->per_call, c->model, &c->u, pico, SOURCE_SHARE);
    }
    lf_obs_end_at(c->obs, end);
    for (struct call **p = &u->calls; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    if (u->cur == c) u->cur = NULL;
    json_decref(c->content);
    free(c);
}

/* A subagent's call, from Claude Code's report: a generation of its own, exact, under the
 * Agent tool use that started the subagent. */
static void subagent_call(struct turn *u, struct tool *x, const struct cc_otel_event *ev)
{
    lf_obs *g = lf_obs_start(x->obs, LF_OBS_GENERATION, "model-call");
    struct cc_usage eu = event_usage(ev);
    long long pico = event_pico(ev);
    int64_t end = event_times(g, ev);
    lf_obs_set_metadata_string(g, "agent_id", ev->agent_id);
    if (ev->query_source[0]) lf_obs_set_metadata_string(g, "query_source", ev->query_source);
    u->gen_pico += set_numbers(g, 1, ev->model, &eu, pico, SOURCE_EXACT);
    lf_obs_end_at(g, end);
    note_exact(u, ev->model, &eu, pico);
}

static void close_turn(struct cc_trace *t, struct turn *u);

/* Closes a turn whose result is in once its events add up to the turn's cost: then every
 * call Claude Code billed has reported (a retried call it did not bill never does). */
static void check_close(struct cc_trace *t, struct turn *u)
{
    if (u->closing && llabs(u->events_pico - u->turn_pico) <= 2 * (u->nexact + 1)) close_turn(t, u);
}

/* Places one of Claude Code's reports; 0 if the stream has not said where it belongs. */
static int place_event(struct cc_trace *t, const struct cc_otel_event *ev)
{
    struct turn *u = NULL;
    if (ev->kind == CC_OTEL_API_REQUEST) {
        struct call *c = find_request(t, ev->request_id, &u);
        struct tool *x = c ? NULL : find_agent(t, ev->agent_id, &u);
        if (!c && !x) return 0;
        u->events_pico += event_pico(ev);
        if (c) {
            c->ev = *ev;
            c->has_event = 1;
            if (c->end_ns) /* its stream is done: its numbers are final */
                finish_call(t, u, c, 0);
        } else {
            subagent_call(u, x, ev);
        }
        check_close(t, u);
        return 1;
    }
    /* An API error or exhausted retries: an event on the call, else on the turn. */
    struct call *c = find_request(t, ev->request_id, &u);
    struct tool *x = c ? NULL : find_agent(t, ev->agent_id, &u);
    lf_obs *parent = c ? c->obs : x ? x->obs : t->cur ? t->cur->query : NULL;
    if (!parent) return 0;
    lf_obs *e = lf_obs_start(parent, LF_OBS_EVENT,
                             ev->kind == CC_OTEL_API_ERROR ? "api-error" : "api-retries-exhausted");
    char msg[400];
    snprintf(msg, sizeof msg, "%s%d%s%s (attempt %d)", ev->status_code ? "HTTP " : "",
             ev->status_code, ev->error[0] ? ": " : "", ev->error, ev->attempt);
    lf_obs_set_level(e, ev->kind == CC_OTEL_API_ERROR ? LF_LEVEL_WARNING : LF_LEVEL_ERROR);
    lf_obs_set_status_message(e, msg);
    lf_obs_end_at(e, ev->time_ns > 0 ? ev->time_ns : lf_now_ns());
    return 1;
}

/* Retries the events that came before the stream said where they belong. */
static void place_early(struct cc_trace *t)
{
    int kept = 0;
    for (int i = 0; i < t->nearly; i++)
        if (!place_event(t, &t->early[i])) t->early[kept++] = t->early[i];
    t->nearly = kept;
}

void cc_trace_otel(struct cc_trace *t)
{
    struct cc_otel_event ev;
    while (t && t->otel && cc_otel_next(t->otel, &ev)) {
        if (place_event(t, &ev)) continue;
        if (t->nearly == MAX_EARLY) { /* never placed: the oldest goes */
            memmove(t->early, t->early + 1, sizeof t->early[0] * (MAX_EARLY - 1));
            t->nearly--;
        }
        t->early[t->nearly++] = ev;
    }
}

static void on_stream_event(struct cc_trace *t, const struct cc_msg *m)
{
    const struct cc_sse *e = &m->sse;
    if (e->kind == CC_SSE_OTHER || m->parent_tool_use_id) return;
    struct turn *u = turn_now(t);
    if (!u) return;
    if (e->kind == CC_SSE_MESSAGE_START) {
        struct call *c = calloc(1, sizeof *c);
        if (!c) return;
        snprintf(c->msg_id, sizeof c->msg_id, "%s", e->msg_id);
        snprintf(c->model, sizeof c->model, "%s", e->model);
        take_usage(e, &c->u);
        c->content = json_array();
        c->start_ns = lf_now_ns();
        c->obs =
            lf_obs_start(u->query, t->per_call ? LF_OBS_GENERATION : LF_OBS_SPAN, "model-call");
        char *in = cc_json_dumps(t->pending_input, JSON_COMPACT, 0, NULL);
        if (in) lf_obs_set_input_json(c->obs, in);
        free(in);
        json_array_clear(t->pending_input);
        c->next = u->calls;
        u->calls = u->cur = c;
        if (!t->model[0] && c->model[0]) snprintf(t->model, sizeof t->model, "%s", c->model);
    } else if (!u->cur) {
        return;
    } else if (e->kind == CC_SSE_BLOCK_DELTA && !u->cur->got_first) {
        int64_t now = lf_now_ns();
        u->cur->got_first = 1;
        /* from the first stream event: Claude Code's report, when it comes, has the real one */
        lf_obs_set_completion_start(u->cur->obs, now);
        lf_obs_set_metadata_int(u->cur->obs, "time_to_first_token_ms",
                                (now - u->cur->start_ns) / 1000000);
    } else if (e->kind == CC_SSE_MESSAGE_DELTA) {
        take_usage(e, &u->cur->u);
        if (e->stop_reason) lf_obs_set_metadata_string(u->cur->obs, "stop_reason", e->stop_reason);
    } else if (e->kind == CC_SSE_MESSAGE_STOP) {
        struct call *c = u->cur;
        c->end_ns = lf_now_ns();
        char *out = cc_json_dumps(c->content, JSON_COMPACT, 0, NULL);
        if (out) lf_obs_set_output_json(c->obs, out);
        free(out);
        json_decref(c->content); /* the record has it now */
        c->content = NULL;
        usage_add(&u->streamed, &c->u);
        u->cur = NULL;
        if (c->has_event) finish_call(t, u, c, 0);
    }
}

static void start_tool(struct turn *u, const struct cc_msg *m, const struct cc_block *b)
{
    struct tool *parent = find_tool(u, m->parent_tool_use_id);
    const char *name = b->name[0] ? b->name : "tool";
    struct tool *x = calloc(1, sizeof *x);
    if (!x) return;
    x->obs = lf_obs_start(parent ? parent->obs : u->query, LF_OBS_TOOL, name);
    snprintf(x->id, sizeof x->id, "%s", b->id);
    x->agent = !strcmp(name, "Agent") || !strcmp(name, "Task");
    char *in = cc_json_dumps(b->input, JSON_COMPACT | JSON_ENCODE_ANY, 0, NULL);
    if (in) lf_obs_set_input_json(x->obs, in);
    free(in);
    lf_obs_set_metadata_string(x->obs, "tool_use_id", x->id);
    x->next = u->tools;
    u->tools = x;
}

static void unlink_tool(struct turn *u, struct tool *x)
{
    for (struct tool **p = &u->tools; *p; p = &(*p)->next)
        if (*p == x) {
            *p = x->next;
            return;
        }
}

/* A subagent's line names its subagent (agent_id) and the Agent tool use that started it:
 * what Claude Code's reports of the subagent's calls are matched by. */
static void learn_agent(struct cc_trace *t, struct turn *u, const char *tool_use_id,
                        const char *agent_id)
{
    struct tool *x = find_tool(u, tool_use_id);
    if (!x || !agent_id || x->agent_id[0]) return;
    snprintf(x->agent_id, sizeof x->agent_id, "%s", agent_id);
    lf_obs_set_metadata_string(x->obs, "agent_id", agent_id);
    place_early(t);
}

static void on_assistant(struct cc_trace *t, const struct cc_msg *m)
{
    struct turn *u = turn_now(t);
    if (!u) return;
    struct call *c = m->parent_tool_use_id ? NULL : find_call(u, m->msg_id);
    if (m->api_error) {
        lf_obs *ev = lf_obs_start(u->query, LF_OBS_EVENT, "api-error");
        lf_obs_set_level(ev, LF_LEVEL_ERROR);
        for (size_t i = 0; i < m->nblocks; i++)
            if (m->blocks[i].kind == CC_BLOCK_TEXT && m->blocks[i].text)
                lf_obs_set_status_message(ev, json_string_value(m->blocks[i].text));
        lf_obs_end(ev);
        return;
    }
    if (c && !c->request_id[0] && m->request_id) {
        snprintf(c->request_id, sizeof c->request_id, "%s", m->request_id);
        place_early(t);
    }
    if (m->parent_tool_use_id) learn_agent(t, u, m->parent_tool_use_id, m->agent_id);
    for (size_t i = 0; i < m->nblocks; i++) {
        if (c && c->content) json_array_append(c->content, m->blocks[i].raw);
        if (m->blocks[i].kind == CC_BLOCK_TOOL_USE) start_tool(u, m, &m->blocks[i]);
    }
}

static void on_user(struct cc_trace *t, const struct cc_msg *m)
{
    struct turn *u = turn_now(t);
    if (!u) return;
    if (m->parent_tool_use_id) learn_agent(t, u, m->parent_tool_use_id, m->agent_id);
    for (size_t i = 0; i < m->nblocks; i++) {
        const struct cc_block *b = &m->blocks[i];
        if (b->kind != CC_BLOCK_TOOL_RESULT) continue;
        if (!m->parent_tool_use_id) json_array_append(t->pending_input, b->raw);
        struct tool *x = find_tool(u, b->id);
        if (!x) continue;
        /* the text the message stream shows (it may hold U+0000) */
        const char *text = json_string_value(b->text);
        size_t n = json_string_length(b->text);
        lf_obs_set_output_stringn(x->obs, text, n > MAX_TOOL_OUTPUT ? MAX_TOOL_OUTPUT : n);
        if (n > MAX_TOOL_OUTPUT) lf_obs_set_metadata_int(x->obs, "output_bytes", (int64_t)n);
        if (b->is_error) {
            lf_obs_set_level(x->obs, LF_LEVEL_ERROR);
            /* the library masks inputs and outputs; a failed tool's text is also its status */
            lf_obs_set_status_message(x->obs, *text && !t->mask ? text : "the tool use failed");
        }
        if (x->agent) {
            x->end_ns = lf_now_ns(); /* ended with the turn: its subagent's calls nest under it */
        } else {
            unlink_tool(u, x);
            lf_obs_end(x->obs);
            free(x);
        }
    }
}

/* Ends a turn's tool uses still open, each at the time it really ended when known (an
 * Agent tool's result), else now; a tool use that never got its result is marked
 * unfinished. */
static void end_tools(struct turn *u)
{
    while (u->tools) {
        struct tool *x = u->tools;
        u->tools = x->next;
        if (!x->end_ns && !x->agent) lf_obs_set_metadata_bool(x->obs, "unfinished", 1);
        if (x->end_ns)
            lf_obs_end_at(x->obs, x->end_ns);
        else
            lf_obs_end(x->obs);
        free(x);
    }
}

static lf_obs *latest_agent(struct turn *u)
{
    for (struct tool *x = u->tools; x; x = x->next)
        if (x->agent) return x->obs;
    return NULL;
}

/*
 * The turn's numbers, split (cost.c): what went out exact keeps its cost, calls still open
 * get Claude Code's number or a share, and what modelUsage holds beyond every call known
 * (a subagent's calls without telemetry) goes on a remainder generation. Then its tools and
 * its query end. Frees the turn.
 */
static void close_turn(struct cc_trace *t, struct turn *u)
{
    int n = u->nexact;
    for (struct call *c = u->calls; c; c = c->next)
        n++;
    struct cc_cost_call *calls = calloc((size_t)n + 1, sizeof *calls);
    struct call **open = calloc((size_t)n + 1, sizeof *open);
    int k = 0, nopen = 0;
    for (int i = 0; calls && i < u->nexact; i++)
        calls[k++] = (struct cc_cost_call){u->exact[i].model, u->exact[i].u, 1, u->exact[i].pico};
    for (struct call *c = u->calls; calls && open && c; c = c->next) {
        open[nopen++] = c;
        calls[k++] = c->has_event ? (struct cc_cost_call){c->model, event_usage(&c->ev), 1,
                                                          event_pico(&c->ev)}
                                  : (struct cc_cost_call){c->model, c->u, 0, 0};
    }
    long long left =
        calls && open ? cc_cost_split(u->turn_pico, u->models, u->nmodels, calls, k) : u->turn_pico;
    /* What the split could not place (no modelUsage): per-query, the query carries it with
     * the rest of the turn; per-call, the newest open call does. */
    if (left && t->per_call && nopen && calls) {
        calls[u->nexact].pico += left;
        left = 0;
    }
    for (int i = 0; i < nopen; i++)
        finish_call(t, u, open[i], calls ? calls[u->nexact + i].pico : 0);
    for (int m = 0; m < u->nmodels; m++) {
        struct cc_cost_model *cm = &u->models[m];
        int tokens = cm->rest.in || cm->rest.out || cm->rest.cr || cm->rest.cw;
        /* No tokens and less than a nanodollar: the rounding between modelUsage's costUSD
         * and the sum of the exact calls' costs (each a double), not a call. Per-query the
         * query's cost takes it; per-call it is left out (the trace's total stays within a
         * nanodollar of Claude Code's). */
        if (!tokens && llabs(cm->rest_pico) < 1000) continue;
        lf_obs *parent = latest_agent(u);
        lf_obs *g = lf_obs_start(parent ? parent : u->query, LF_OBS_GENERATION, "subagent-calls");
        u->gen_pico += set_numbers(g, 1, cm->model, &cm->rest, cm->rest_pico, SOURCE_SHARE);
        lf_obs_set_metadata_string(g, "note",
                                   "model calls Claude Code made without streaming "
                                   "them or reporting them (a subagent's): their "
                                   "usage from the turn's modelUsage");
        lf_obs_end(g);
    }
    free(calls);
    free(open);
    end_tools(u);
    if (t->per_call) {
        set_usage_metadata(u->query, &u->streamed);
    } else {
        set_usage(u->query, &u->streamed);
        lf_obs_set_cost(u->query, "total", (double)(u->turn_pico - u->gen_pico) / CC_PICO);
        if (t->model[0]) lf_obs_set_model(u->query, t->model);
    }
    lf_obs_end(u->query);
    for (struct turn **p = &t->closing; *p; p = &(*p)->next)
        if (*p == u) {
            *p = u->next;
            break;
        }
    free(u);
}

/* The turn's modelUsage differences, for the split; the previous result's numbers become
 * this one's. */
static void turn_models(struct cc_trace *t, struct turn *u, const struct cc_result *r)
{
    u->nmodels = 0;
    for (size_t i = 0; i < r->nmodels && u->nmodels < MAX_MODELS; i++) {
        const struct cc_model_usage *mu = &r->models[i];
        const struct prev_model *p = NULL;
        for (int k = 0; k < t->nprev && !p; k++)
            if (strcmp(t->prev[k].model, mu->model) == 0) p = &t->prev[k];
        struct cc_cost_model *cm = &u->models[u->nmodels];
        snprintf(u->model_names[u->nmodels], sizeof u->model_names[0], "%s", mu->model);
        cm->model = u->model_names[u->nmodels];
        cm->u = mu->u;
        double cost = mu->cost_usd;
        if (p) {
            cm->u.in -= p->u.in;
            cm->u.out -= p->u.out;
            cm->u.cr -= p->u.cr;
            cm->u.cw -= p->u.cw;
            cost -= p->cost_usd;
        }
        cm->pico = llround(cost * CC_PICO);
        u->nmodels++;
    }
    t->nprev = 0;
    for (size_t i = 0; i < r->nmodels && t->nprev < MAX_MODELS; i++) {
        struct prev_model *p = &t->prev[t->nprev++];
        snprintf(p->model, sizeof p->model, "%s", r->models[i].model);
        p->u = r->models[i].u;
        p->cost_usd = r->models[i].cost_usd;
    }
}

static void on_result(struct cc_trace *t, const struct cc_msg *m)
{
    struct cc_result r = m->result;
    struct turn *u = turn_now(t);
    if (!u) return;
    u->turn_pico = 0;
    u->nmodels = 0;
    if (m->damage[0]) /* a stand-in: the turn's numbers are unknown; the next result's
                         differences carry them */
        r.total_cost_usd = t->prev_cost;
    else {
        u->turn_pico = llround((r.total_cost_usd - t->prev_cost) * CC_PICO);
        turn_models(t, u, &r);
    }
    lf_obs *q = u->query;
    if (r.result) lf_obs_set_output_stringn(q, r.result, r.result_len);
    lf_obs_set_metadata_double(q, "cost_usd", r.total_cost_usd - t->prev_cost);
    lf_obs_set_metadata_int(q, "duration_ms", r.duration_ms);
    lf_obs_set_metadata_int(q, "duration_api_ms", r.duration_api_ms);
    lf_obs_set_metadata_int(q, "num_turns", r.num_turns);
    if (r.subtype) lf_obs_set_metadata_string(q, "subtype", r.subtype);
    if (r.stop_reason) lf_obs_set_metadata_string(q, "stop_reason", r.stop_reason);
    lf_obs_set_metadata_string(q, "cost_source", t->otel ? SOURCE_EXACT : SOURCE_SHARE);
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
    t->interrupted[0] = '\0';
    t->prev_cost = r.total_cost_usd;
    json_array_clear(t->pending_input);

    /* Closing: at once without telemetry; with it, once its events add up (they come up to
     * about 0.3 s after the result), or at the latest a second from now. */
    t->cur = NULL;
    u->closing = 1;
    u->close_by_ns = lf_now_ns() + CLOSE_WAIT_NS;
    struct turn **p = &t->closing;
    while (*p)
        p = &(*p)->next;
    *p = u;
    if (!t->otel)
        close_turn(t, u);
    else
        check_close(t, u);
}

int cc_trace_due_ms(const struct cc_trace *t)
{
    if (!t || !t->closing) return -1;
    int64_t left = t->closing->close_by_ns - lf_now_ns();
    return left <= 0 ? 0 : (int)(left / 1000000) + 1;
}

void cc_trace_tick(struct cc_trace *t)
{
    int64_t now = lf_now_ns();
    while (t && t->closing && t->closing->close_by_ns <= now) {
        lf_obs_set_metadata_string(t->closing->query, "cost_source", SOURCE_SHARE);
        close_turn(t, t->closing); /* its events did not all come: the shares stand in */
    }
}

static void on_system(struct cc_trace *t, const struct cc_msg *m)
{
    const char *sub = m->subtype ? m->subtype : "";
    if (strcmp(sub, "init") == 0 && !t->init_seen) {
        t->init_seen = 1;
        const char *v = m->sys.version, *sid = m->sys.session_id, *model = m->sys.model;
        if (v) lf_trace_set_metadata_string(t->trace, "claude_code_version", v);
        if (sid) lf_trace_set_metadata_string(t->trace, "claude_session_id", sid);
        if (model && !t->o->model) set_model(t, model);
    } else if (strcmp(sub, "task_started") == 0 && t->cur) {
        learn_agent(t, t->cur, m->sys.tool_use_id, m->sys.task_id);
    } else if (strcmp(sub, "api_retry") == 0 && t->cur) {
        lf_obs *ev = lf_obs_start(t->cur->query, LF_OBS_EVENT, "api-retry");
        char msg[200];
        snprintf(msg, sizeof msg, "HTTP %lld (%s), attempt %lld of %lld", m->sys.error_status,
                 m->sys.error ? m->sys.error : "error", m->sys.attempt, m->sys.max_retries);
        lf_obs_set_level(ev, LF_LEVEL_WARNING);
        lf_obs_set_status_message(ev, msg);
        lf_obs_end(ev);
    }
}

void cc_trace_interrupt(struct cc_trace *t, const char *why, int fails)
{
    if (!t || !t->cur) return;
    snprintf(t->interrupted, sizeof t->interrupted, "%s", why);
    t->interrupt_fails = fails;
}

void cc_trace_claude(struct cc_trace *t, const struct cc_msg *m)
{
    if (!t) return;
    switch (m->kind) {
    case CC_MSG_STREAM_EVENT:
        on_stream_event(t, m);
        break;
    case CC_MSG_ASSISTANT:
        on_assistant(t, m);
        break;
    case CC_MSG_USER:
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

/* The session is over: the turns still closing get their last events, for at most their
 * second each (Claude Code sends them before it exits, or about 0.3 s after a result). */
static void wait_for_events(struct cc_trace *t)
{
    while (t->otel && t->closing) {
        cc_trace_otel(t);
        if (!t->closing) break;
        int64_t left = t->closing->close_by_ns - lf_now_ns();
        if (left <= 0) break;
        struct pollfd p = {.fd = cc_otel_fd(t->otel), .events = POLLIN};
        poll(&p, 1, (int)(left / 1000000) + 1);
    }
}

void cc_trace_end(struct cc_trace *t, const struct cc_outcome *how)
{
    if (!t) return;
    wait_for_events(t);
    while (t->closing) /* their last events did not come in time */
        close_turn(t, t->closing);
    if (t->cur) { /* the turn never got its result: Claude Code died or was stopped */
        struct turn *u = t->cur;
        while (u->calls) /* their numbers as far as known; no result, no share of a cost */
            finish_call(t, u, u->calls, -1);
        end_tools(u);
        lf_obs_set_level(u->query, LF_LEVEL_ERROR);
        lf_obs_set_status_message(u->query, how && how->message[0] ? how->message
                                                                   : "the turn did not finish");
        lf_obs_end(u->query);
        free(u);
        t->cur = NULL;
    }
    int failed = how && how->failed;
    json_t *out = json_pack("{s:b, s:i, s:b}", "success", !failed, "turns", t->turns, "interactive",
                            t->o->interactive);
    if (failed && how->message[0]) json_object_set_new(out, "error", json_string(how->message));
    char *outs = cc_json_dumps(out, JSON_COMPACT, 0, NULL);
    lf_trace_set_output_json(t->trace, outs);
    free(outs);
    json_decref(out);
    lf_trace_set_metadata_double(t->trace, "total_cost_usd", t->prev_cost);
    lf_trace_set_metadata_int(t->trace, "total_duration_ms", (lf_now_ns() - t->start_ns) / 1000000);
    if (failed) {
        lf_obs_set_level(t->trace, LF_LEVEL_ERROR);
        if (how->message[0]) lf_obs_set_status_message(t->trace, how->message);
        if (how->exception_type)
            lf_trace_set_metadata_string(t->trace, "exception_type", how->exception_type);
    }
    lf_obs_end(t->trace);
    t->trace = NULL;
    lf_client_shutdown(t->lf, -1);
}

void cc_trace_id(const struct cc_trace *t, char out[33])
{
    out[0] = '\0';
    if (t && t->trace) lf_obs_trace_id(t->trace, out);
}

void cc_trace_hurry(struct cc_trace *t)
{
    if (t) lf_client_hurry(t->lf);
}

void cc_trace_free(struct cc_trace *t)
{
    if (!t) return;
    lf_client_free(t->lf);
    cc_otel_stop(t->otel);
    json_decref(t->pending_input);
    free(t);
}
