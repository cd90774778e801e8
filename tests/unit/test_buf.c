/* test_buf.c - the capped byte buffer: growth, the cap, failures, numbers; and what a
 * broken invariant does (invariant.h). */
#include "cm.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "invariant.h"

static void test_append_and_grow(void **state)
{
    (void)state;
    struct lf__buf b;
    lf__buf_init(&b, 0);
    for (int i = 0; i < 1000; i++)
        lf__buf_puts(&b, "abc");
    assert_int_equal(b.len, 3000);
    assert_false(lf__buf_failed(&b));
    assert_int_equal(b.data[b.len], '\0');
    assert_memory_equal(b.data + 2997, "abc", 3);
    lf__buf_free(&b);
}

static void test_cap_is_hard(void **state)
{
    (void)state;
    struct lf__buf b;
    lf__buf_init(&b, 10);
    lf__buf_puts(&b, "12345");
    lf__buf_puts(&b, "123456"); /* would make 11 */
    assert_true(b.toobig);
    assert_int_equal(b.len, 5);
    lf__buf_putc(&b, 'x'); /* ignored after failure */
    assert_int_equal(b.len, 5);
    lf__buf_reset(&b);
    assert_false(lf__buf_failed(&b));
    lf__buf_puts(&b, "1234567890");
    assert_int_equal(b.len, 10);
    assert_false(lf__buf_failed(&b));
    lf__buf_free(&b);
}

static void test_allocation_failure_is_sticky(void **state)
{
    (void)state;
    struct lf__buf b;
    lf__buf_init(&b, 0);
    lf__alloc_fail_after(0, 0);
    lf__buf_puts(&b, "hello");
    assert_true(b.oom);
    assert_int_equal(lf__alloc_failures(), 1);
    lf__buf_puts(&b, "hello"); /* allocator works again, buffer stays failed */
    assert_int_equal(b.len, 0);
    lf__alloc_fail_after(-1, 0);
    lf__buf_free(&b);
}

static void test_numbers(void **state)
{
    (void)state;
    struct lf__buf b;
    lf__buf_init(&b, 0);
    lf__buf_put_i64(&b, INT64_MIN);
    lf__buf_putc(&b, ' ');
    lf__buf_put_i64(&b, INT64_MAX);
    lf__buf_putc(&b, ' ');
    lf__buf_put_u64(&b, 0);
    lf__buf_printf(&b, " %s-%d", "x", 42);
    assert_string_equal(b.data, "-9223372036854775808 9223372036854775807 0 x-42");
    size_t n;
    char *p = lf__buf_steal(&b, &n);
    assert_int_equal(n, strlen(p));
    assert_null(b.data);
    free(p);
}

/* A broken invariant ends the process at once, saying which and where, in every build. */
static void test_a_broken_invariant_aborts_with_its_place(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        int held = 1;
        LF_INVARIANT(held == 2);
        _exit(0);
    }
    close(fds[1]);
    char out[512] = {0};
    ssize_t n = read(fds[0], out, sizeof out - 1);
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    assert_true(n > 0);
    assert_non_null(strstr(out, "test_buf.c:"));
    assert_non_null(strstr(out, "invariant failed: held == 2"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_broken_invariant_aborts_with_its_place),
        cmocka_unit_test(test_append_and_grow),
        cmocka_unit_test(test_cap_is_hard),
        cmocka_unit_test(test_allocation_failure_is_sticky),
        cmocka_unit_test(test_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
