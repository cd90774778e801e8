/* test_client.c - the client without a live server: NULL safety, sampling, the queue cap,
 * allocation failures on the recording path, shutdown bounds. */
#include "cm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "internal.h"
#include "testutil.h"

struct logged {
    int lines;
    int queue_full; /* lines that report the queue full */
    char last[512];
};

static void capture(void *ud, enum lf_log_level level, const char *msg)
{
    struct logged *l = ud;
    (void)level;
    __atomic_add_fetch(&l->lines, 1, __ATOMIC_RELAXED);
    if (strstr(msg, "queue full")) __atomic_add_fetch(&l->queue_full, 1, __ATOMIC_RELAXED);
    snprintf(l->last, sizeof(l->last), "%s", msg);
}

/* A client aimed at a closed port: every request fails at once with no answer. */
static lf_client *offline_client(struct logged *l, size_t queue_bytes, const char *spool_dir)
{
    struct lf_config c;
    lf_config_init(&c);
    c.public_key = "pk-lf-unit";
    c.secret_key = "sk-lf-unit-secret";
    c.host = "http://127.0.0.1:1";
    c.flush_at = 100000;
    c.flush_interval_ms = 3600 * 1000;
    c.max_retries = 0;
    if (queue_bytes) c.max_queue_bytes = queue_bytes;
    c.spool_dir = spool_dir;
    c.log = capture;
    c.log_ud = l;
    lf_client *cl = lf_client_new(&c);
    assert_non_null(cl);
    assert_true(lf_client_enabled(cl));
    return cl;
}

static void test_null_is_always_safe(void **state)
{
    (void)state;
    lf_obs *o = lf_trace_start(NULL, "x", NULL);
    assert_null(o);
    assert_null(lf_obs_start(NULL, LF_OBS_SPAN, "x"));
    lf_obs_set_input_json(NULL, "{}");
    lf_obs_set_usage(NULL, "input", 1);
    lf_trace_add_tag(NULL, "t");
    lf_obs_end(NULL);
    lf_obs_discard(NULL);
    char id[33];
    lf_obs_trace_id(NULL, id);
    assert_string_equal(id, "");
    assert_int_equal(lf_client_flush(NULL, 0), LF_ERR_DISABLED);
    struct lf_stats s;
    lf_client_stats(NULL, &s);
    assert_int_equal(s.recorded, 0);
    lf_client_free(NULL);
    assert_string_equal(lf_strerror(LF_ERR_TIMEOUT),
                        "the deadline passed before everything was delivered");
    assert_string_equal(lf_version(), LF_VERSION_STRING);
}

static void test_ids_and_given_trace_id(void **state)
{
    (void)state;
    struct logged l = {0};
    lf_client *c = offline_client(&l, 0, NULL);
    lf_obs *t = lf_trace_start(c, "t", "0123456789abcdef0123456789abcdef");
    char tid[33], sid[17], cid[17];
    lf_obs_trace_id(t, tid);
    assert_string_equal(tid, "0123456789abcdef0123456789abcdef");
    lf_obs *child = lf_obs_start(t, LF_OBS_TOOL, "c");
    lf_obs_trace_id(child, tid);
    assert_string_equal(tid, "0123456789abcdef0123456789abcdef");
    lf_obs_id(t, sid);
    lf_obs_id(child, cid);
    assert_int_equal(strlen(sid), 16);
    assert_string_not_equal(sid, cid);
    lf_obs_discard(child);
    lf_obs_discard(t);
    /* a malformed id: a random one and a warning */
    int before = l.lines;
    t = lf_trace_start(c, "t", "not-an-id");
    assert_non_null(t);
    lf_obs_trace_id(t, tid);
    assert_int_equal(strlen(tid), 32);
    assert_int_equal(l.lines, before + 1);
    lf_obs_discard(t);
    assert_int_equal(lf_client_add_secret(c, "short"), LF_ERR_INVALID);
    assert_int_equal(lf_client_add_secret(c, "long-enough-secret"), LF_OK);
    lf_client_free(c);
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static void test_sampling_is_per_trace_and_deterministic(void **state)
{
    (void)state;
    struct lf_config cfg;
    lf_config_init(&cfg);
    cfg.public_key = "pk";
    cfg.secret_key = "sk-secret";
    cfg.host = "http://127.0.0.1:1";
    cfg.sample_rate = 0.5;
    lf_client *a = lf_client_new(&cfg);
    lf_client *b = lf_client_new(&cfg);
    int kept = 0;
    uint64_t seed = 42;
    for (int i = 0; i < 2000; i++) {
        char id[33];
        uint64_t hi = splitmix64(&seed), lo = splitmix64(&seed);
        snprintf(id, sizeof(id), "%016llx%016llx", (unsigned long long)hi, (unsigned long long)lo);
        lf_obs *x = lf_trace_start(a, "t", id);
        lf_obs *y = lf_trace_start(b, "t", id);
        assert_true((x == NULL) == (y == NULL)); /* the same decision for one trace id */
        kept += x != NULL;
        lf_obs_discard(x);
        lf_obs_discard(y);
    }
    assert_true(kept > 850 && kept < 1150);
    lf_client_free(a);
    lf_client_free(b);
    cfg.sample_rate = 0;
    a = lf_client_new(&cfg);
    assert_null(lf_trace_start(a, "t", NULL));
    lf_client_free(a);
}

static void test_queue_cap_drops_and_counts(void **state)
{
    (void)state;
    struct logged l = {0};
    /* No writable spill or spool directory: the memory cap alone bounds the queue (with a
     * spill file, whether anything drops would depend on the exporter's timing). */
    lf_client *c = offline_client(&l, 65536, "/proc/lf-no-such-dir");
    char text[1025];
    memset(text, 'z', 1024);
    text[1024] = '\0';
    lf_obs *t = lf_trace_start(c, "t", NULL);
    for (int i = 0; i < 500; i++) {
        lf_obs *o = lf_obs_start(t, LF_OBS_SPAN, "s");
        lf_obs_set_input_string(o, text);
        lf_obs_end(o);
    }
    struct lf_stats s;
    lf_client_stats(c, &s);
    assert_true(s.dropped_queue > 0);
    assert_int_equal(s.recorded + s.dropped_queue, 500);
    assert_true(s.queue_bytes <= 65536);
    assert_true(s.queue_peak_bytes <= 65536);
    assert_int_equal(l.queue_full, 1); /* reported once, however many drops */
    lf_obs_end(lf_obs_start(t, LF_OBS_SPAN, "one more drop"));
    assert_int_equal(l.queue_full, 1);
    lf_obs_end(t);
    long long t0 = tu_now_ms();
    int rc = lf_client_shutdown(c, 2000);
    assert_true(tu_now_ms() - t0 < 2000 + TU_SLACK_MS); /* its deadline holds */
    assert_int_not_equal(rc, LF_OK);                    /* nothing could be delivered */
    lf_client_stats(c, &s);
    /* without a usable spool directory, what could not be delivered is counted lost */
    assert_int_equal(s.spool_dropped + s.dropped_queue, 502); /* 500 spans, the trace, one more */
    assert_int_equal(s.delivered, 0);
    /* recording after shutdown is counted too */
    lf_obs_end(lf_trace_start(c, "late", NULL));
    lf_client_free(c);
}

static int spilled_some(void *arg)
{
    struct lf_stats s;
    lf_client_stats(arg, &s);
    return s.spilled > 0;
}

static void test_burst_spills_into_a_new_spool_dir(void **state)
{
    (void)state;
    /* The first run on a machine: the spool directory does not exist yet. A burst past the
     * queue's memory mark must still go to the spill file (which lives there), not turn
     * spilling off for the run. */
    char *dir = tu_mkdtemp("lf-unit-spool");
    char sub[600];
    snprintf(sub, sizeof(sub), "%s/new/spool", dir);
    struct logged l = {0};
    lf_client *c = offline_client(&l, 1 << 20, sub);
    char text[1025];
    memset(text, 'q', 1024);
    text[1024] = '\0';
    lf_obs *t = lf_trace_start(c, "t", NULL);
    for (int i = 0; i < 400; i++) {
        lf_obs *o = lf_obs_start(t, LF_OBS_SPAN, "s");
        lf_obs_set_input_string(o, text);
        lf_obs_end(o);
    }
    lf_obs_end(t);
    if (!tu_wait_until(spilled_some, c, 5000))
        fail_msg("nothing was spilled; last log line: %s", l.last);
    struct lf_stats s;
    lf_client_stats(c, &s);
    assert_int_equal(s.dropped_queue, 0);
    lf_client_shutdown(c, 2000);
    lf_client_free(c);
    tu_rmrf(dir);
    free(dir);
}

static void test_small_records_count_small_after_big_ones(void **state)
{
    (void)state;
    /* Records are reused once exported. One that once held a 30 KiB input must not come
     * back for a small span and make it count (and fill the queue) as 30 KiB. */
    struct logged l = {0};
    lf_client *c = offline_client(&l, 64 << 20, NULL);
    char *big = malloc(30 * 1024 + 1);
    memset(big, 'b', 30 * 1024);
    big[30 * 1024] = '\0';
    lf_obs *t = lf_trace_start(c, "t", NULL);
    for (int i = 0; i < 40; i++) {
        lf_obs *o = lf_obs_start(t, LF_OBS_SPAN, "big");
        lf_obs_set_input_string(o, big);
        lf_obs_end(o);
    }
    free(big);
    lf_client_flush(c, 5000); /* exported (and lost: nothing listens), records given back */
    struct lf_stats s;
    lf_client_stats(c, &s);
    assert_int_equal(s.queue_bytes, 0);
    for (int i = 0; i < 5; i++)
        lf_obs_end(lf_obs_start(t, LF_OBS_SPAN, "small"));
    lf_client_stats(c, &s);
    if (s.queue_bytes > 5 * 8192)
        fail_msg("5 small spans count %llu bytes", (unsigned long long)s.queue_bytes);
    lf_obs_discard(t);
    lf_client_free(c);
}

static void test_allocation_failures_while_recording(void **state)
{
    (void)state;
    struct logged l = {0};
    lf_client *c = offline_client(&l, 0, NULL);
    for (long n = 0; n < 60; n++) {
        lf__alloc_fail_after(n, 0);
        lf_obs *t = lf_trace_start(c, "trace", NULL);
        lf_trace_set_session_id(t, "s");
        lf_obs *g = lf_obs_start(t, LF_OBS_GENERATION, "gen");
        lf_obs_set_input_string(g, "some input text");
        lf_obs_set_usage(g, "input", 3);
        lf_obs_set_output_json(g, "{\"x\":1}");
        lf_obs_end(g);
        lf_obs_end(t);
        long failed = lf__alloc_failures();
        lf__alloc_fail_after(-1, 0);
        if (!failed && n > 20) break;
    }
    struct lf_stats s;
    lf_client_stats(c, &s);
    assert_true(s.dropped_nomem > 0);
    assert_true(s.recorded > 0);
    lf_client_free(c);
}

static void test_shutdown_twice_and_flush_after(void **state)
{
    (void)state;
    struct logged l = {0};
    lf_client *c = offline_client(&l, 0, NULL);
    lf_obs_end(lf_trace_start(c, "t", NULL));
    lf_client_shutdown(c, 500);
    assert_false(lf_client_enabled(c));
    assert_int_equal(lf_client_shutdown(c, 500), LF_ERR_DISABLED);
    assert_int_equal(lf_client_flush(c, 10), LF_ERR_DISABLED);
    lf_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_is_always_safe),
        cmocka_unit_test(test_ids_and_given_trace_id),
        cmocka_unit_test(test_sampling_is_per_trace_and_deterministic),
        cmocka_unit_test(test_queue_cap_drops_and_counts),
        cmocka_unit_test(test_burst_spills_into_a_new_spool_dir),
        cmocka_unit_test(test_small_records_count_small_after_big_ones),
        cmocka_unit_test(test_allocation_failures_while_recording),
        cmocka_unit_test(test_shutdown_twice_and_flush_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
