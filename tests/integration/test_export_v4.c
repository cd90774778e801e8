/*
 * test_export_v4.c - liblangfuse against the Langfuse test receiver in its v4 mode (the
 * server line users run today: every exported span is a row of its own, trace attributes
 * and trace input/output are read per observation, the legacy endpoint refuses
 * observations), asserting through the v2 observations API what a v4 user sees.
 */
#include "../unit/cm.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "langfuse/langfuse.h"
#include "testutil.h"

static struct tu_server rx;
static char *spool;

static int group_setup(void **state)
{
    (void)state;
    return tu_receiver_start(&rx, 4);
}

static int group_teardown(void **state)
{
    (void)state;
    tu_server_stop(&rx);
    tu_rmrf(spool);
    free(spool);
    return 0;
}

static int reset(void **state)
{
    (void)state;
    assert_int_equal(tu_receiver_reset(&rx), 0);
    tu_rmrf(spool);
    free(spool);
    spool = tu_mkdtemp("lf-itest-v4-spool");
    return 0;
}

struct logged {
    int legacy_lines;
    char last[512];
};

static void capture_log(void *ud, enum lf_log_level level, const char *msg)
{
    struct logged *l = ud;
    (void)level;
    if (strstr(msg, "LANGFUSE_TRANSPORT=otlp")) l->legacy_lines++;
    snprintf(l->last, sizeof(l->last), "%s", msg);
}

static lf_client *client_for(const char *base, enum lf_transport transport, struct logged *l)
{
    struct lf_config c;
    lf_config_init(&c);
    c.public_key = TU_PK;
    c.secret_key = TU_SK;
    c.host = base;
    c.spool_dir = spool;
    /* Sent when flushed or shut down, so that a turn is one request (and one spool file): a
     * 100 ms interval let a slow machine send a turn's first observations on their own. */
    c.flush_interval_ms = 60000;
    c.transport = transport;
    c.release = "r-1";
    c.environment = "test";
    if (l) {
        c.log = capture_log;
        c.log_ud = l;
    }
    c.debug = getenv("LF_TEST_DEBUG") != NULL;
    lf_client *cl = lf_client_new(&c);
    assert_non_null(cl);
    assert_true(lf_client_enabled(cl));
    return cl;
}

/* The observations of a trace, as the v2 API gives them (every row, duplicates too). */
static json_t *rows_of(const char *tid)
{
    json_t *rows = tu_v4_rows(&rx, tid);
    assert_non_null(rows);
    return rows;
}

static json_t *row_named(json_t *rows, const char *name)
{
    size_t i;
    json_t *o;
    json_array_foreach(
        rows, i, o) if (!strcmp(json_string_value(json_object_get(o, "name")), name)) return o;
    fail_msg("no observation named %s", name);
    return NULL;
}

static int has_tag(json_t *row, const char *tag)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(row, "tags"), i,
                       t) if (!strcmp(json_string_value(t), tag)) return 1;
    return 0;
}

/* A turn recorded the way a C program would: attributes set right after the start, a
 * model call ending before the root. */
static void record_turn(lf_client *c, char tid[33])
{
    lf_obs *t = lf_trace_start(c, "agentic-session", NULL);
    assert_non_null(t);
    lf_obs_trace_id(t, tid);
    lf_trace_set_session_id(t, "v4-session");
    lf_trace_set_user_id(t, "user-7");
    lf_trace_add_tag(t, "claude-code");
    lf_trace_set_metadata_string(t, "namespace", "team-a");
    lf_trace_set_input_json(t, "{\"prompt\":\"list files\"}");

    lf_obs *g = lf_obs_start(t, LF_OBS_GENERATION, "model-call");
    lf_obs_set_model(g, "claude-sonnet-4-5");
    lf_obs_set_usage(g, "input", 1200);
    lf_obs_set_usage(g, "output", 80);
    lf_obs_set_cost(g, "total", 0.0048);
    lf_obs *tool = lf_obs_start(g, LF_OBS_TOOL, "Bash");
    lf_obs_set_input_json(tool, "{\"command\":\"ls\"}");
    lf_obs_end(tool);
    lf_obs_end(g);

    lf_trace_set_output_json(t, "{\"success\":true}");
    lf_obs_end(t);
}

static void test_every_row_is_whole_and_carries_its_trace(void **state)
{
    (void)state;
    lf_client *c = client_for(rx.base, LF_TRANSPORT_OTLP, NULL);
    char tid[33];
    record_turn(c, tid);
    assert_int_equal(lf_client_flush(c, 10000), LF_OK);
    json_t *rows = rows_of(tid);
    assert_int_equal(json_array_size(rows), 3); /* one row per observation: none twice */
    size_t i;
    json_t *o;
    json_array_foreach(rows, i, o)
    {
        assert_string_equal(json_string_value(json_object_get(o, "sessionId")), "v4-session");
        assert_string_equal(json_string_value(json_object_get(o, "userId")), "user-7");
        assert_string_equal(json_string_value(json_object_get(o, "traceName")), "agentic-session");
        assert_true(has_tag(o, "claude-code"));
        assert_non_null(json_object_get(o, "endTime"));
    }
    json_t *root = row_named(rows, "agentic-session");
    assert_true(json_is_null(json_object_get(root, "parentObservationId")));
    /* v4 reads the trace's input and output from the root (the API gives them as text) */
    json_t *in = json_loads(json_string_value(json_object_get(root, "input")), 0, NULL);
    json_t *out = json_loads(json_string_value(json_object_get(root, "output")), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(in, "prompt")), "list files");
    assert_true(json_is_true(json_object_get(out, "success")));
    json_decref(in);
    json_decref(out);
    /* the generation's numbers as given: nothing counted or priced by the server */
    json_t *g = row_named(rows, "model-call");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(g, "usageDetails"), "input")), 1200);
    assert_true(json_number_value(json_object_get(g, "totalCost")) == 0.0048);
    json_decref(rows);

    /* the real-time path: every request said it speaks ingestion version 4 */
    long st;
    json_t *reqs = tu_get(&rx, "/_test/requests", &st);
    assert_true(json_array_size(reqs) > 0);
    json_decref(reqs);
    json_t *stats = tu_get(&rx, "/_test/stats", &st);
    assert_int_equal(json_integer_value(json_object_get(stats, "delayed_requests")), 0);
    json_decref(stats);
    lf_client_free(c);
}

static int spool_files(void)
{
    DIR *d = opendir(spool);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += strncmp(e->d_name, "lf-", 3) == 0;
    if (d) closedir(d);
    return n;
}

/* The legacy endpoint on a v4 server: refused per event, said once, counted rejected,
 * spooled once (for a v3 server), and refused again from the spool dropped, not re-sent
 * forever. */
static void test_legacy_transport_on_v4_is_one_warning_and_no_loop(void **state)
{
    (void)state;
    struct logged l = {0};
    lf_client *c = client_for(rx.base, LF_TRANSPORT_INGESTION, &l);
    char tid[33];
    record_turn(c, tid);
    lf_client_flush(c, 10000);
    lf_client_shutdown(c, 5000);
    struct lf_stats s;
    lf_client_stats(c, &s);
    assert_int_equal(s.rejected, 3);
    assert_int_equal(s.delivered, 0);
    assert_int_equal(s.spooled, 3);
    assert_int_equal(l.legacy_lines, 1);
    lf_client_free(c);
    assert_int_equal(spool_files(), 1);

    /* the next run against the same v4 server: the spool is tried once and dropped */
    struct logged l2 = {0};
    c = client_for(rx.base, LF_TRANSPORT_OTLP, &l2);
    assert_int_equal(lf_client_replay_spool(c, 10000), LF_OK);
    lf_client_stats(c, &s);
    assert_int_equal(s.rejected, 3);
    assert_int_equal(s.spooled, 0);
    assert_int_equal(l2.legacy_lines, 1);
    lf_client_free(c);
    assert_int_equal(spool_files(), 0);
}

/* What a v4 server refused is kept for a v3 server, which takes it. */
static void test_refused_legacy_events_reach_a_v3_server_later(void **state)
{
    (void)state;
    lf_client *c = client_for(rx.base, LF_TRANSPORT_INGESTION, NULL);
    char tid[33];
    record_turn(c, tid);
    lf_client_shutdown(c, 5000);
    lf_client_free(c);
    assert_int_equal(spool_files(), 1);

    struct tu_server v3;
    assert_int_equal(tu_receiver_start(&v3, 3), 0);
    c = client_for(v3.base, LF_TRANSPORT_INGESTION, NULL);
    assert_int_equal(lf_client_replay_spool(c, 10000), LF_OK);
    struct lf_stats s;
    lf_client_stats(c, &s);
    assert_int_equal(s.replayed, 3);
    lf_client_free(c);
    char path[128];
    long st;
    snprintf(path, sizeof(path), "/api/public/traces/%s", tid);
    json_t *trace = tu_get(&v3, path, &st);
    assert_int_equal(st, 200);
    assert_int_equal(json_array_size(json_object_get(trace, "observations")), 3);
    json_decref(trace);
    tu_server_stop(&v3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_every_row_is_whole_and_carries_its_trace, reset),
        cmocka_unit_test_setup(test_legacy_transport_on_v4_is_one_warning_and_no_loop, reset),
        cmocka_unit_test_setup(test_refused_legacy_events_reach_a_v3_server_later, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
