/*
 * test_faults.c - liblangfuse where a demanding user pushes it: a shutdown whose exporter
 * is stuck, hundreds of registered secrets, a value larger than the whole queue, and a
 * program built against an older header. Against the test receiver in its v4 mode.
 */
#include "../unit/cm.h"

#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "langfuse/langfuse.h"
#include "testutil.h"

extern char **environ;

static struct tu_server rx;

static int group_setup(void **state)
{
    (void)state;
    return tu_receiver_start(&rx, 4);
}

static int group_teardown(void **state)
{
    (void)state;
    tu_server_stop(&rx);
    return 0;
}

static int reset(void **state)
{
    (void)state;
    assert_int_equal(tu_receiver_reset(&rx), 0);
    return 0;
}

static void base_config(struct lf_config *c)
{
    lf_config_init(c);
    c->public_key = TU_PK;
    c->secret_key = TU_SK;
    c->host = rx.base;
    c->flush_interval_ms = 100;
}

/* The rows of the single trace the receiver holds. */
static json_t *rows_of(const char *tid)
{
    json_t *rows = tu_v4_rows(&rx, tid);
    assert_non_null(rows);
    return rows;
}

/* ---- a stuck exporter: shutdown keeps its deadline ------------------------------------- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int blocked, release;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

/* Blocks the exporter thread in the log line it writes after its first request, as a slow
 * disk or a starved machine might. */
static void blocking_log(void *ud, enum lf_log_level level, const char *msg)
{
    (void)ud;
    (void)level;
    if (strncmp(msg, "POST ", 5) != 0) return;
    pthread_mutex_lock(&gate.mu);
    if (!gate.blocked++) {
        pthread_cond_broadcast(&gate.cv);
        while (!gate.release)
            pthread_cond_wait(&gate.cv, &gate.mu);
    }
    pthread_mutex_unlock(&gate.mu);
}

static void test_shutdown_keeps_its_deadline_with_a_stuck_exporter(void **state)
{
    (void)state;
    struct lf_config cfg;
    base_config(&cfg);
    cfg.debug = 1;
    cfg.log = blocking_log;
    lf_client *c = lf_client_new(&cfg);
    lf_obs *t = lf_trace_start(c, "stuck", NULL);
    lf_obs_end(t);
    lf_client_flush(c, 0);
    pthread_mutex_lock(&gate.mu);
    while (!gate.blocked)
        pthread_cond_wait(&gate.cv, &gate.mu); /* the exporter is stuck now */
    pthread_mutex_unlock(&gate.mu);

    long long t0 = tu_now_ms();
    assert_int_equal(lf_client_shutdown(c, 300), LF_ERR_TIMEOUT);
    long long took = tu_now_ms() - t0;
    /* the deadline and the join's 50 ms, with room for a loaded machine's scheduling; the
     * exporter stays stuck for as long as the test likes, so without a hard deadline this
     * would wait forever */
    assert_true(took < 300 + 50 + 1000);
    lf_client_free(c); /* returns at once: the client is kept for its exporter */

    pthread_mutex_lock(&gate.mu);
    gate.release = 1;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
}

/* ---- secrets: no limit ------------------------------------------------------------------ */

static void test_hundreds_of_secrets_are_all_redacted(void **state)
{
    (void)state;
    enum { N = 300 };
    static char secrets[N][24];
    struct lf_config cfg;
    base_config(&cfg);
    lf_client *c = lf_client_new(&cfg);
    struct {
        char *p;
        size_t n;
    } text = {calloc(N, 32), 0};
    for (int i = 0; i < N; i++) {
        snprintf(secrets[i], sizeof secrets[i], "key-line-%05d-%c%c", i * 7919, 'a' + i % 26,
                 'a' + i / 26 % 26);
        assert_int_equal(lf_client_add_secret(c, secrets[i]), LF_OK);
        text.n += (size_t)sprintf(text.p + text.n, "%s ", secrets[i]);
    }
    lf_obs *t = lf_trace_start(c, "secrets", NULL);
    char tid[33];
    lf_obs_trace_id(t, tid);
    lf_obs_set_input_string(t, text.p);
    lf_obs_end(t);
    assert_int_equal(lf_client_flush(c, 10000), LF_OK);
    lf_client_free(c);
    free(text.p);

    json_t *rows = rows_of(tid);
    assert_int_equal(json_array_size(rows), 1);
    const char *in = json_string_value(json_object_get(json_array_get(rows, 0), "input"));
    assert_non_null(in);
    for (int i = 0; i < N; i++)
        if (strstr(in, secrets[i]))
            fail_msg("secret %d of %d reached the server: %s", i + 1, N, secrets[i]);
    assert_non_null(strstr(in, "[REDACTED]"));
    json_decref(rows);
}

/* ---- a value larger than the queue ----------------------------------------------------- */

static void test_a_value_larger_than_the_queue_keeps_usage_and_cost(void **state)
{
    (void)state;
    struct lf_config cfg;
    base_config(&cfg);
    lf_client *c = lf_client_new(&cfg);
    size_t n = 10u << 20; /* a 10 MB Write input; the queue holds 8 MiB */
    char *big = malloc(n + 1);
    memset(big, 'w', n);
    big[n] = '\0';
    lf_obs *t = lf_trace_start(c, "big", NULL);
    char tid[33];
    lf_obs_trace_id(t, tid);
    lf_obs *g = lf_obs_start(t, LF_OBS_GENERATION, "call");
    lf_obs_set_model(g, "claude-sonnet-4-5");
    lf_obs_set_input_string(g, big);
    lf_obs_set_output_string(g, big);
    lf_obs_set_usage(g, "input", 21);
    lf_obs_set_usage(g, "output", 3);
    lf_obs_set_cost(g, "total", 0.000105);
    lf_obs_end(g);
    lf_obs_end(t);
    free(big);
    assert_int_equal(lf_client_flush(c, 10000), LF_OK);
    struct lf_stats s;
    lf_client_stats(c, &s);
    assert_int_equal(s.dropped_queue, 0);
    assert_int_equal(s.truncated, 1);
    assert_int_equal(s.delivered, 2);
    lf_client_free(c);

    json_t *rows = rows_of(tid);
    assert_int_equal(json_array_size(rows), 2);
    size_t i;
    json_t *o;
    int seen = 0;
    json_array_foreach(rows, i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, "name")), "call")) continue;
        seen = 1;
        assert_true(json_number_value(json_object_get(o, "totalCost")) == 0.000105);
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(o, "usageDetails"), "input")), 21);
        assert_non_null(strstr(json_string_value(json_object_get(o, "input")), "...[truncated "));
    }
    assert_true(seen);
    json_decref(rows);
}

/* ---- a program built against an older header -------------------------------------------- */

static void test_an_older_programs_structs_are_not_overrun(void **state)
{
    (void)state;
    /* An older lf_config: it ended before `debug`. What follows it in memory is the
     * program's own and must stay as it is. */
    size_t old_size = offsetof(struct lf_config, debug);
    unsigned char mem[sizeof(struct lf_config) + 64];
    memset(mem, 0xA5, sizeof mem);
    struct lf_config *cfg = (struct lf_config *)(void *)mem;
    lf_config_init_size(cfg, old_size);
    cfg->public_key = TU_PK;
    cfg->secret_key = TU_SK;
    cfg->host = rx.base;
    char err[128];
    assert_int_equal(lf_config_from_env(cfg, err, sizeof err), LF_OK);
    for (size_t i = old_size; i < sizeof mem; i++)
        if (mem[i] != 0xA5) fail_msg("byte %zu past the caller's struct was written", i);
    lf_client *c = lf_client_new(cfg); /* reads only the old fields; defaults for the rest */
    assert_true(lf_client_enabled(c));
    lf_obs_end(lf_trace_start(c, "old", NULL));
    assert_int_equal(lf_client_flush(c, 10000), LF_OK);

    size_t old_stats = offsetof(struct lf_stats, queue_bytes);
    unsigned char smem[sizeof(struct lf_stats) + 64];
    memset(smem, 0xA5, sizeof smem);
    lf_client_stats_size(c, (struct lf_stats *)(void *)smem, old_stats);
    for (size_t i = old_stats; i < sizeof smem; i++)
        if (smem[i] != 0xA5) fail_msg("byte %zu past the caller's stats was written", i);
    assert_int_equal(((struct lf_stats *)(void *)smem)->delivered, 1);
    lf_client_free(c);

    /* a struct nobody initialised: a disabled client, not a crash */
    struct lf_config zero;
    memset(&zero, 0, sizeof zero);
    lf_client *z = lf_client_new(&zero);
    assert_non_null(z);
    assert_false(lf_client_enabled(z));
    lf_client_free(z);
}

/* ---- a killed process: nothing that ended a flush interval before is lost ------------- */

#define KILLED_SESSION "killed-session"

/* The killed program (this test binary run with --killed SPOOL HOST): a trace whose root
 * stays open and three observations that end, then it waits to be killed. */
static _Noreturn void killed_main(const char *spool, const char *host)
{
    struct lf_config cfg;
    lf_config_init(&cfg);
    cfg.public_key = TU_PK;
    cfg.secret_key = TU_SK;
    cfg.host = host;
    cfg.spool_dir = spool;
    cfg.flush_interval_ms = 100;
    cfg.orphan_message = "the runner ended without closing the session";
    lf_client *c = lf_client_new(&cfg);
    lf_obs *root = lf_trace_start(c, "agentic-session", NULL);
    lf_trace_set_session_id(root, KILLED_SESSION);
    lf_trace_set_input_json(root, "{\"prompt\":\"work\"}");
    for (int i = 0; i < 3; i++) {
        lf_obs *step = lf_obs_start(root, LF_OBS_TOOL, "step");
        lf_obs_set_metadata_int(step, "i", i);
        lf_obs_end(step);
    }
    for (;;)
        pause(); /* SIGKILL ends this; the root is never ended */
}

static int count_files(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d) closedir(d);
    return n;
}

struct spool_state {
    const char *dir;
};

/* The killed program has sent all three of its steps (each request is written ahead into
 * the spool before it goes out; the black hole holds them) and journaled its open root. */
static int in_flight_and_journaled(void *arg)
{
    const char *dir = ((struct spool_state *)arg)->dir;
    long st;
    size_t spans = 0, i;
    json_t *reqs = tu_get(&rx, "/_test/requests", &st), *r;
    json_array_foreach(reqs, i, r) spans += json_array_size(json_object_get(r, "span_ids"));
    json_decref(reqs);
    return spans >= 3 && count_files(dir, "lf-open-") == 1 && count_files(dir, "lf-0") >= 1;
}

static void test_a_killed_process_loses_nothing_and_its_trace_is_completed(void **state)
{
    (void)state;
    long st;
    json_decref(tu_post(&rx, "/_test/mode", "{\"mode\":\"blackhole\"}", &st));
    char *spool = tu_mkdtemp("lf-killed-spool");
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    char *argv[] = {self, "--killed", spool, rx.base, NULL};
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, self, NULL, NULL, argv, environ), 0);
    struct spool_state ss = {spool};
    int ready = tu_wait_until(in_flight_and_journaled, &ss, 20000);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    assert_true(ready);
    json_decref(tu_post(&rx, "/_test/mode", "{\"mode\":\"ok\"}", &st));

    /* the next run with the same spool delivers what was in flight and completes the trace */
    struct lf_config cfg;
    base_config(&cfg);
    cfg.spool_dir = spool;
    lf_client *c = lf_client_new(&cfg);
    assert_int_equal(lf_client_replay_spool(c, 20000), LF_OK);
    lf_client_free(c);
    assert_int_equal(count_files(spool, "lf-"), 0);

    json_t *page = tu_get(&rx,
                          "/api/public/v2/observations?sessionId=" KILLED_SESSION
                          "&limit=1000&fields=core,basic,io",
                          &st);
    assert_int_equal(st, 200);
    json_t *rows = json_object_get(page, "data");
    assert_int_equal(json_array_size(rows), 4); /* three steps and the root, once each */
    size_t i;
    json_t *o, *root = NULL;
    const char *last_end = "";
    json_array_foreach(rows, i, o)
    {
        if (json_is_null(json_object_get(o, "parentObservationId")))
            root = o;
        else if (strcmp(json_string_value(json_object_get(o, "endTime")), last_end) > 0)
            last_end = json_string_value(json_object_get(o, "endTime"));
    }
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "level")), "ERROR");
    assert_string_equal(json_string_value(json_object_get(root, "statusMessage")),
                        "the runner ended without closing the session");
    assert_string_equal(json_string_value(json_object_get(root, "endTime")), last_end);
    assert_non_null(strstr(json_string_value(json_object_get(root, "input")), "work"));
    json_decref(page);
    tu_rmrf(spool);
    free(spool);
}

/* ---- adopted journals while the program forks ------------------------------ */

static atomic_int spawning;

/* Forks over and over, each child living 2 ms: as a child between its fork (or
 * posix_spawn's clone) and its exec does, it holds a copy of every descriptor this process
 * had open at the fork, the claims on spool files among them. */
static void *fork_loop(void *arg)
{
    (void)arg;
    int alive = 0;
    while (atomic_load(&spawning)) {
        while (alive > 0 && waitpid(-1, NULL, alive >= 16 ? 0 : WNOHANG) > 0)
            alive--;
        pid_t pid = fork();
        if (pid == 0) {
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
            _exit(0);
        }
        alive += pid > 0;
    }
    while (alive-- > 0)
        waitpid(-1, NULL, 0);
    return NULL;
}

static void write_orphan(const char *dir, int n)
{
    char path[4096], body[512];
    snprintf(path, sizeof path, "%s/lf-open-%032x.otlp.json", dir, n + 1);
    snprintf(body, sizeof body,
             "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"%032x\","
             "\"spanId\":\"%016x\",\"name\":\"orphan\",\"startTimeUnixNano\":\"1\","
             "\"endTimeUnixNano\":\"2\"}]}]}]}",
             n + 1, n + 1);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(body, f);
    assert_int_equal(fclose(f), 0);
}

struct replayed_state {
    lf_client *c;
    uint64_t want;
};

static int all_replayed(void *arg)
{
    struct replayed_state *rs = arg;
    struct lf_stats st;
    lf_client_stats(rs->c, &st);
    return st.replayed >= rs->want;
}

static void test_adopted_journals_go_out_while_the_program_forks(void **state)
{
    (void)state;
    enum { ROUNDS = 20, ORPHANS = 8 };
    char *spool = tu_mkdtemp("lf-adopt-spool");
    pthread_t th;
    atomic_store(&spawning, 1);
    assert_int_equal(pthread_create(&th, NULL, fork_loop, NULL), 0);
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < ORPHANS; i++)
            write_orphan(spool, r * ORPHANS + i);
        struct lf_config cfg;
        base_config(&cfg);
        cfg.spool_dir = spool;
        lf_client *c = lf_client_new(&cfg);
        /* sent by the client's start alone, as a short program's only chance (an explicit
         * lf_client_replay_spool() would list the spool again) */
        struct replayed_state rs = {c, ORPHANS};
        assert_true(tu_wait_until(all_replayed, &rs, 20000));
        lf_client_free(c);
        assert_int_equal(count_files(spool, "lf-"), 0);
    }
    atomic_store(&spawning, 0);
    pthread_join(th, NULL);

    long st;
    size_t spans = 0, i;
    json_t *reqs = tu_get(&rx, "/_test/requests", &st), *q;
    json_array_foreach(reqs, i, q) spans += json_array_size(json_object_get(q, "span_ids"));
    json_decref(reqs);
    assert_int_equal(spans, ROUNDS * ORPHANS);
    tu_rmrf(spool);
    free(spool);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--killed") == 0) killed_main(argv[2], argv[3]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_shutdown_keeps_its_deadline_with_a_stuck_exporter, reset),
        cmocka_unit_test_setup(test_hundreds_of_secrets_are_all_redacted, reset),
        cmocka_unit_test_setup(test_a_value_larger_than_the_queue_keeps_usage_and_cost, reset),
        cmocka_unit_test_setup(test_an_older_programs_structs_are_not_overrun, reset),
        cmocka_unit_test_setup(test_a_killed_process_loses_nothing_and_its_trace_is_completed,
                               reset),
        cmocka_unit_test_setup(test_adopted_journals_go_out_while_the_program_forks, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
