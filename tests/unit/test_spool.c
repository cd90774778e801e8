/* test_spool.c - crash-safe spool files: names, listing order, claims, eviction. */
#include "cm.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "langfuse/langfuse.h"
#include "spool.h"
#include "testutil.h"

static void test_names(void **state)
{
    (void)state;
    int ep, gz;
    uint32_t n;
    assert_int_equal(
        lf__spool_parse_name("lf-00000001795475995218-12-3-r42.otlp.json.gz", &ep, &gz, &n), 0);
    assert_int_equal(ep, LF_TRANSPORT_OTLP);
    assert_int_equal(gz, 1);
    assert_int_equal(n, 42);
    assert_int_equal(
        lf__spool_parse_name("lf-00000001795475995218-12-3-r1.ingestion.json", &ep, &gz, &n), 0);
    assert_int_equal(ep, LF_TRANSPORT_INGESTION);
    assert_int_equal(gz, 0);
    assert_int_equal(lf__spool_parse_name("lf-1-2-3-r1.otlp.json.tmp", &ep, &gz, &n), -1);
    assert_int_equal(lf__spool_parse_name("notes.txt", &ep, &gz, &n), -1);
}

static void test_write_list_claim_done(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("lf-spool");
    char sub[600], err[256];
    snprintf(sub, sizeof(sub), "%s/nested/spool", dir); /* created on demand */
    uint64_t evicted = 0;
    struct lf__spool sp;
    lf__spool_init(&sp, sub, 1 << 20);
    assert_int_equal(
        lf__spool_write(&sp, LF_TRANSPORT_OTLP, "first", 5, 0, 3, &evicted, NULL, err, sizeof(err)),
        0);
    assert_int_equal(lf__spool_write(&sp, LF_TRANSPORT_INGESTION, "second", 6, 1, 4, &evicted, NULL,
                                     err, sizeof(err)),
                     0);
    assert_int_equal(evicted, 0);
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    struct lf__spool_entry *v;
    size_t n;
    assert_int_equal(lf__spool_list(sub, &v, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(v[0].endpoint, LF_TRANSPORT_OTLP); /* oldest first */
    assert_int_equal(v[0].nrec, 3);
    assert_int_equal(v[1].gz, 1);

    int fd = lf__spool_claim(v[0].path);
    assert_true(fd >= 0);
    assert_int_equal(lf__spool_claim(v[0].path), -1); /* held */
    char *data;
    size_t len;
    assert_int_equal(lf__spool_read(fd, 100, &data, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(data, "first", 5);
    free(data);
    lf__spool_done(v[0].path, fd);
    assert_int_equal(lf__spool_claim(v[0].path), -1); /* gone */
    lf__spool_entries_free(v, n);
    assert_int_equal(lf__spool_list(sub, &v, &n), 0);
    assert_int_equal(n, 1);
    lf__spool_entries_free(v, n);
    tu_rmrf(dir);
    free(dir);
}

static void test_eviction_counts_records(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("lf-spool");
    char err[256], body[1000];
    memset(body, 'b', sizeof(body));
    uint64_t evicted = 0;
    struct lf__spool sp;
    lf__spool_init(&sp, dir, 3500);
    for (int i = 0; i < 5; i++)
        assert_int_equal(lf__spool_write(&sp, LF_TRANSPORT_OTLP, body, sizeof(body), 0, 10,
                                         &evicted, NULL, err, sizeof(err)),
                         0);
    /* 3 files fit in 3500 bytes: the two oldest went, 10 records each */
    assert_int_equal(evicted, 20);
    struct lf__spool_entry *v;
    size_t n;
    assert_int_equal(lf__spool_list(dir, &v, &n), 0);
    assert_int_equal(n, 3);
    lf__spool_entries_free(v, n);
    /* a body larger than the whole spool is refused, not written */
    struct lf__spool small;
    lf__spool_init(&small, dir, 500);
    assert_int_equal(lf__spool_write(&small, LF_TRANSPORT_OTLP, body, sizeof(body), 0, 1, &evicted,
                                     NULL, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "larger"));
    tu_rmrf(dir);
    free(dir);
}

static size_t spool_bytes(const char *dir)
{
    struct lf__spool_entry *v;
    size_t n, total = 0;
    assert_int_equal(lf__spool_list(dir, &v, &n), 0);
    for (size_t i = 0; i < n; i++)
        total += v[i].size;
    lf__spool_entries_free(v, n);
    return total;
}

static void test_cap_holds_with_other_writers_and_deliveries(void **state)
{
    (void)state;
    /* Two writers share one spool (two runners on one machine), and files leave it as they
     * are delivered: each writer's own count drifts, the cap on the directory holds. */
    char *dir = tu_mkdtemp("lf-spool");
    char err[256], body[1000];
    memset(body, 'b', sizeof(body));
    uint64_t evicted = 0;
    struct lf__spool a, b;
    lf__spool_init(&a, dir, 3500);
    lf__spool_init(&b, dir, 3500);
    for (int i = 0; i < 3; i++)
        assert_int_equal(lf__spool_write(&a, LF_TRANSPORT_OTLP, body, sizeof(body), 0, 1, &evicted,
                                         NULL, err, sizeof(err)),
                         0);
    assert_int_equal(lf__spool_write(&b, LF_TRANSPORT_OTLP, body, sizeof(body), 0, 1, &evicted,
                                     NULL, err, sizeof(err)),
                     0);
    assert_int_equal(evicted, 1);
    assert_true(spool_bytes(dir) <= 3500);
    assert_int_equal(lf__spool_write(&a, LF_TRANSPORT_OTLP, body, sizeof(body), 0, 1, &evicted,
                                     NULL, err, sizeof(err)),
                     0);
    assert_int_equal(evicted, 2);
    assert_true(spool_bytes(dir) <= 3500);
    /* everything delivered (removed) behind the writers' backs: nothing more is evicted */
    struct lf__spool_entry *v;
    size_t n;
    assert_int_equal(lf__spool_list(dir, &v, &n), 0);
    for (size_t i = 0; i < n; i++)
        unlink(v[i].path);
    lf__spool_entries_free(v, n);
    for (int i = 0; i < 3; i++)
        assert_int_equal(lf__spool_write(&a, LF_TRANSPORT_OTLP, body, sizeof(body), 0, 1, &evicted,
                                         NULL, err, sizeof(err)),
                         0);
    assert_int_equal(evicted, 2);
    assert_int_equal(spool_bytes(dir), 3000);
    /* the directory removed: made again */
    tu_rmrf(dir);
    assert_int_equal(lf__spool_write(&a, LF_TRANSPORT_OTLP, body, sizeof(body), 0, 1, &evicted,
                                     NULL, err, sizeof(err)),
                     0);
    assert_int_equal(spool_bytes(dir), 1000);
    tu_rmrf(dir);
    free(dir);
}

static void test_missing_dir_is_empty_and_unwritable_reports(void **state)
{
    (void)state;
    struct lf__spool_entry *v;
    size_t n = 99;
    assert_int_equal(lf__spool_list("/nonexistent/lf-spool", &v, &n), 0);
    assert_int_equal(n, 0);
    char err[256];
    uint64_t evicted = 0;
    struct lf__spool sp;
    lf__spool_init(&sp, "/proc/lf-cannot", 100);
    assert_int_equal(
        lf__spool_write(&sp, LF_TRANSPORT_OTLP, "x", 1, 0, 1, &evicted, NULL, err, sizeof(err)),
        -1);
    assert_non_null(strstr(err, "/proc/lf-cannot"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_write_list_claim_done),
        cmocka_unit_test(test_eviction_counts_records),
        cmocka_unit_test(test_cap_holds_with_other_writers_and_deliveries),
        cmocka_unit_test(test_missing_dir_is_empty_and_unwritable_reports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
