/*
 * guard.c - ccrunner-guard: Claude Code's parent, and the end of everything the agent started.
 *
 * Why a process of its own. SPEC ("Signals") asks two things: when ccrunner dies by any
 * cause, Claude Code and every process its tools started are gone within a second; when a
 * session ends normally, nothing the agent started is left. ccrunner alone can do neither:
 * a SIGKILL runs none of its code, and Claude Code's Bash tool runs each command in a new
 * session, so kill(-pgid) on claude's group misses it, and once claude exits it belongs to
 * init. So a small single-threaded process sits between the two:
 *  - PR_SET_CHILD_SUBREAPER: whatever is orphaned below the guard (a backgrounded tool, a
 *    daemon that forked twice, a tool whose shell claude killed) is re-parented to the
 *    guard, not to init. Following /proc/PID/task/TID/children down from the guard
 *    therefore finds every process the agent started, and none can leave the tree.
 *  - PR_SET_PDEATHSIG(CC_GUARD_KILL): the kernel signals the guard when ccrunner dies,
 *    however it dies, and the guard kills the whole tree at once. A getppid() check right
 *    after the prctl covers a runner that died before it.
 *  - claude gets PR_SET_PDEATHSIG(SIGKILL) between fork and exec (it survives exec), so even
 *    a guard killed from outside takes claude with it.
 *  - when claude exits, or ccrunner sends CC_GUARD_KILL, the guard kills every descendant
 *    and exits with claude's wait status: ccrunner's code for "the child" (pidfd, exit
 *    status, the crash message) sees what it saw when claude was its child.
 *
 * Killing a tree. Each round lists the descendants, SIGKILLs each one, and also the process
 * group of each one whose session was created inside the tree (a Bash tool's): a group
 * kill is atomic against fork, so a shell looping on fork cannot outrun it. Groups in the
 * guard's own session, which is ccrunner's, are never killed as groups: a process there may
 * have joined a group outside the tree, and the guard's own group would kill the guard. A
 * process forked after the list was read is re-parented to the guard when its parent dies,
 * and the next round, woken by that SIGCHLD, gets it. Rounds end when the guard has no
 * child left (ECHILD), or after CC_GUARD_KILL_MS (a process stuck in uninterruptible sleep).
 * The cost is a few /proc reads per descendant, once, at the end of a session. The lists
 * need CONFIG_PROC_CHILDREN (on in every mainstream kernel); without it only claude is
 * killed.
 *
 * Considered and not taken: a PID namespace (its init's death kills every member) needs
 * CAP_SYS_ADMIN or user namespaces, and cgroup.kill a delegated cgroup; session containers
 * grant neither. The guard needs nothing but /proc.
 *
 * What it cannot do: if the guard itself is SIGKILLed (not ccrunner), claude dies by its
 * PDEATHSIG and ccrunner kills what is left in the guard's group, but a tool in a session
 * of its own goes to init. The guard is a small process that only waits; the OOM killer
 * chooses by size and does not pick it.
 *
 * Signals: every signal the guard acts on is blocked and taken with sigwaitinfo(), so there
 * are no handlers and no races with them. SIGTERM, SIGINT and SIGHUP from ccrunner reach
 * claude through the group and are not repeated; from anyone else they are forwarded to
 * claude, which decides.
 */
#include "guard.h"
#include "clock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_TREE 4096 /* descendants killed per round; more are found by the next round */

struct guard {
    pid_t runner;      /* ccrunner: the parent to watch */
    pid_t claude;      /* claude's pid */
    int claude_done;   /* claude has been reaped: claude_status is valid */
    int claude_status; /* its wait status */
    pid_t tree[MAX_TREE];
};

const char *cc_guard_stage_name(int stage)
{
    switch (stage) {
    case CC_GUARD_RUNNING:
        return "running";
    case CC_GUARD_SUBREAPER:
        return "prctl(PR_SET_CHILD_SUBREAPER)";
    case CC_GUARD_PDEATHSIG:
        return "prctl(PR_SET_PDEATHSIG)";
    case CC_GUARD_ORPHANED:
        return "ccrunner exited before the guard started";
    case CC_GUARD_FORK:
        return "fork";
    case CC_GUARD_EXEC:
        return "exec";
    default:
        return "unknown stage";
    }
}

/* A decimal number from -1 to INT_MAX, or -2 for anything else. */
static long parse_num(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < -1 || v > INT_MAX) return -2;
    return v;
}

static void report(int fd, int stage, int err)
{
    struct cc_guard_report r = {.stage = stage, .err = err};
    if (fd < 0) return;
    while (write(fd, &r, sizeof r) < 0 && errno == EINTR)
        ;
    close(fd);
}

/* Appends the pids in one /proc/.../children file to g->tree[*n...]; whitespace-separated
 * decimals, read in chunks (a busy process may list many). */
static void read_children(struct guard *g, const char *path, size_t *n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[512];
    long cur = 0;
    int digits = 0;
    ssize_t got;
    while ((got = read(fd, buf, sizeof buf)) > 0 || (got < 0 && errno == EINTR)) {
        for (ssize_t i = 0; i < got; i++) {
            if (buf[i] >= '0' && buf[i] <= '9') {
                if (cur <= INT_MAX) /* longer is no pid: kept above INT_MAX, dropped below */
                    cur = cur * 10 + (buf[i] - '0');
                digits++;
            } else if (digits) {
                if (cur > 0 && cur <= INT_MAX && *n < MAX_TREE) g->tree[(*n)++] = (pid_t)cur;
                cur = 0;
                digits = 0;
            }
        }
    }
    if (digits && cur > 0 && cur <= INT_MAX && *n < MAX_TREE) g->tree[(*n)++] = (pid_t)cur;
    close(fd);
}

/* Lists pid's children, one children file per thread (a child belongs to the thread that
 * forked it; claude is multi-threaded). */
static void list_children(struct guard *g, pid_t pid, size_t *n)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) && *n < MAX_TREE) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char file[96];
        snprintf(file, sizeof file, "/proc/%d/task/%.16s/children", (int)pid, e->d_name);
        read_children(g, file, n);
    }
    closedir(d);
}

/* One round: every descendant (breadth first, at most MAX_TREE) gets SIGKILL, and so does
 * its group when its session was born inside the tree. Returns how many were found. */
static size_t kill_round(struct guard *g)
{
    pid_t self = getpid(), my_sid = getsid(0);
    size_t n = 0;
    if (!g->claude_done) /* not reaped, so the pid is still claude's; even without /proc */
        kill(g->claude, SIGKILL);
    list_children(g, self, &n);
    for (size_t i = 0; i < n; i++)
        list_children(g, g->tree[i], &n);
    for (size_t i = 0; i < n; i++) {
        pid_t p = g->tree[i], sid = getsid(p), pg = getpgid(p);
        if (p <= 0 || p == self) continue;
        if (sid > 0 && sid != my_sid && pg > 1) kill(-pg, SIGKILL);
        kill(p, SIGKILL);
    }
    return n;
}

/* Reaps every child that has exited, noting claude's status. 1 if children remain (or may:
 * an error other than ECHILD), 0 when the guard has none left. */
static int reap(struct guard *g)
{
    for (;;) {
        int st;
        pid_t r = waitpid(-1, &st, WNOHANG);
        if (r > 0) {
            if (r == g->claude) {
                g->claude_done = 1;
                g->claude_status = st;
            }
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        return !(r < 0 && errno == ECHILD);
    }
}

/* Kills and reaps the whole tree (claude too, if it still runs): rounds until the guard
 * has no child left or CC_GUARD_KILL_MS have passed. Each round waits for the SIGCHLD that
 * a death below it brings, at most 50 ms (a child re-parented to the guard after it was
 * killed raises no new one). */
static void kill_tree(struct guard *g)
{
    long long deadline = cc_mono_ms() + CC_GUARD_KILL_MS;
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    while (reap(g)) {
        long long left = deadline - cc_mono_ms();
        if (left <= 0) {
            fprintf(stderr,
                    "ccrunner-guard: processes the agent started would not die within "
                    "%d ms (uninterruptible sleep?); leaving them\n",
                    CC_GUARD_KILL_MS);
            return;
        }
        kill_round(g);
        if (!reap(g)) return;
        struct timespec ts = {0, (left < 50 ? left : 50) * 1000000L};
        sigtimedwait(&chld, NULL, &ts);
    }
}

/* Ends the guard the way claude ended: its exit code, or death by its signal (with no core
 * file of the guard's own). */
static int mirror(const struct guard *g)
{
    if (!g->claude_done) return 128 + SIGKILL; /* claude would not die: say it was killed */
    if (WIFEXITED(g->claude_status)) return WEXITSTATUS(g->claude_status);
    if (WIFSIGNALED(g->claude_status)) {
        int sig = WTERMSIG(g->claude_status);
        struct rlimit no_core = {0, 0};
        sigset_t one;
        setrlimit(RLIMIT_CORE, &no_core);
        signal(sig, SIG_DFL);
        sigemptyset(&one);
        sigaddset(&one, sig);
        raise(sig);
        sigprocmask(SIG_UNBLOCK, &one, NULL);
        return 128 + sig; /* a signal whose default is not to terminate */
    }
    return 1;
}

/* The child side of the fork: claude, dying with the guard, with the signal state ccrunner
 * gave the guard. Writes errno on exec_fd when execve fails. */
static void exec_claude(pid_t guard, const sigset_t *mask, int report_fd, int exec_fd, char **argv)
{
    signal(SIGPIPE, SIG_DFL);
    sigprocmask(SIG_SETMASK, mask, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* cannot fail where the guard's own prctl worked */
    if (getppid() != guard)           /* the guard died already */
        _exit(127);
    if (report_fd >= 0) close(report_fd);
    execve(argv[0], argv, environ);
    int err = errno;
    while (write(exec_fd, &err, sizeof err) < 0 && errno == EINTR)
        ;
    _exit(127);
}

int cc_guard_main(int argc, char **argv)
{
    struct guard *g;
    sigset_t set, old;
    int exec_pipe[2], err = 0;

    if (argc < 4) {
        fprintf(stderr, "usage: %s RUNNER_PID REPORT_FD EXE [ARG...] (started by ccrunner)\n",
                CC_GUARD_ARGV0);
        return 2;
    }
    long runner = parse_num(argv[1]), report_fd = parse_num(argv[2]);
    if (runner < 1 || report_fd < -1) { /* ccrunner is pid 1 as a container's entrypoint */
        fprintf(stderr, "%s: bad RUNNER_PID or REPORT_FD\n", CC_GUARD_ARGV0);
        return 2;
    }
    if (!(g = calloc(1, sizeof *g))) {
        report((int)report_fd, CC_GUARD_FORK, ENOMEM);
        return 127;
    }
    g->runner = (pid_t)runner;

    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, CC_GUARD_KILL);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, &old);
    signal(SIGPIPE, SIG_IGN); /* stderr's reader may be gone; a note there must not kill us */

    int stage = CC_GUARD_RUNNING;
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        stage = CC_GUARD_SUBREAPER, err = errno;
    else if (prctl(PR_SET_PDEATHSIG, CC_GUARD_KILL) != 0)
        stage = CC_GUARD_PDEATHSIG, err = errno;
    else if (getppid() != g->runner)
        stage = CC_GUARD_ORPHANED, err = ESRCH;
    else if (pipe2(exec_pipe, O_CLOEXEC) != 0)
        stage = CC_GUARD_FORK, err = errno;
    if (stage != CC_GUARD_RUNNING) {
        report((int)report_fd, stage, err);
        free(g);
        return 127;
    }

    pid_t self = getpid();
    g->claude = fork();
    if (g->claude == 0) {
        close(exec_pipe[0]);
        exec_claude(self, &old, (int)report_fd, exec_pipe[1], argv + 3);
    }
    if (g->claude < 0) {
        report((int)report_fd, CC_GUARD_FORK, errno);
        free(g);
        return 127;
    }
    close(exec_pipe[1]);
    ssize_t got;
    while ((got = read(exec_pipe[0], &err, sizeof err)) < 0 && errno == EINTR)
        ;
    close(exec_pipe[0]);
    if (got == (ssize_t)sizeof err) { /* exec failed; the child has exited */
        report((int)report_fd, CC_GUARD_EXEC, err);
        waitpid(g->claude, NULL, 0);
        free(g);
        return 127;
    }
    report((int)report_fd, CC_GUARD_RUNNING, 0);

    /* Claude's stdin and stdout are ccrunner's pipes: let them close with claude. stderr
     * stays, for the one note above; the guard exits right after claude anyway. */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        close(null);
    } else {
        close(0);
        close(1);
    }

    for (;;) {
        siginfo_t si;
        if (sigwaitinfo(&set, &si) < 0) continue; /* EINTR: a stop signal and SIGCONT */
        if (si.si_signo == SIGCHLD) {
            reap(g);
            if (g->claude_done) break;
        } else if (si.si_signo == CC_GUARD_KILL) {
            /* From ccrunner, or the kernel on its death (which sends as the dying runner). A
             * tool signalling its group reaches the guard too: ignore that. */
            if (si.si_pid == g->runner || getppid() != g->runner) break;
        } else if (si.si_code <= 0 && si.si_pid != g->runner && !g->claude_done) {
            kill(g->claude, si.si_signo); /* SIGTERM, SIGINT, SIGHUP from someone else */
        }
    }
    kill_tree(g);
    int code = mirror(g);
    free(g);
    return code;
}
