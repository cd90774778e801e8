/*
 * child.c - spawning and reaping Claude Code.
 *
 * claude runs under ccrunner-guard (guard.c), ccrunner's own executable started again: the
 * guard is what kills claude and every process its tools started when ccrunner dies or the
 * session ends. Here the guard *is* the child: it leads the process group claude runs in,
 * and it exits with claude's wait status, so the rest of ccrunner sees claude.
 *
 * posix_spawn (with chdir and a new process group) rather than fork: ccrunner may hold
 * threads (exporter, WebSocket), and spawn is both safe with threads and cheaper. The guard
 * must be spawned from the session's thread, the main one: the kernel's parent-death signal
 * fires when the spawning *thread* ends. Exit is observed through a pidfd, so the session
 * loop polls it with the pipes; where pidfds are not available the loop falls back to a
 * short poll timeout and waitpid(WNOHANG).
 */
#include "child.h"
#include "clock.h"
#include "guard.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REPORT_FD 3          /* where the guard finds its report pipe */
#define GUARD_START_MS 10000 /* fork and exec of claude; milliseconds unless the host is stuck */

#ifndef CC_PROJECT_CLAUDE
#define CC_PROJECT_CLAUDE ""
#endif

extern char **environ;

/* Variables meant for ccrunner alone: the agent can run `env`, and nothing it runs needs
 * the backend's token or Langfuse's keys. */
static const char *const withheld[] = {
    "BOT_TOKEN", "LANGFUSE_SECRET_KEY", "LANGFUSE_PUBLIC_KEY", "WEBSOCKET_URL", NULL,
};

static int executable(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

int cc_child_find_claude(const struct cc_options *o, const char *self_exe, char *out, size_t outlen,
                         char *err, size_t errlen)
{
    if (o->claude_path) {
        if (!executable(o->claude_path)) {
            snprintf(err, errlen,
                     "claude executable %.200s not found or not executable; fix "
                     "--claude / CLAUDE_CODE_PATH",
                     o->claude_path);
            return -1;
        }
        snprintf(out, outlen, "%s", o->claude_path);
        return 0;
    }
    /* The project's own npm install: beside the sources this binary was built from, or
     * beside the binary's directory (build/ccrunner and an installed prefix/bin/ccrunner). */
    char cand[PATH_MAX];
    if (CC_PROJECT_CLAUDE[0] && executable(CC_PROJECT_CLAUDE)) {
        snprintf(out, outlen, "%s", CC_PROJECT_CLAUDE);
        return 0;
    }
    if (self_exe) {
        const char *slash = strrchr(self_exe, '/');
        int dirlen = slash ? (int)(slash - self_exe) : 1;
        const char *dir = slash ? self_exe : ".";
        snprintf(cand, sizeof cand, "%.*s/../node_modules/.bin/claude", dirlen, dir);
        if (executable(cand)) {
            snprintf(out, outlen, "%s", cand);
            return 0;
        }
    }
    const char *path = getenv("PATH");
    while (path && *path) {
        const char *end = strchr(path, ':');
        int n = end ? (int)(end - path) : (int)strlen(path);
        snprintf(cand, sizeof cand, "%.*s/claude", n ? n : 1, n ? path : ".");
        if (executable(cand)) {
            snprintf(out, outlen, "%s", cand);
            return 0;
        }
        path = end ? end + 1 : NULL;
    }
    snprintf(err, errlen,
             "claude not found: run `npm ci` in the project (installs "
             "@anthropic-ai/claude-code), put claude on PATH, or set --claude / "
             "CLAUDE_CODE_PATH");
    return -1;
}

int cc_child_argv(const struct cc_options *o, const char *exe, const char **argv, int max,
                  char numbuf[24])
{
    int n = 0;
#define ARG(s)                                                                                     \
    do {                                                                                           \
        if (n >= max - 1) return -1;                                                               \
        argv[n++] = (s);                                                                           \
    } while (0)
    ARG(exe);
    ARG("--output-format");
    ARG("stream-json");
    ARG("--verbose");
    ARG("--input-format");
    ARG("stream-json");
    ARG("--include-partial-messages");
    ARG("--permission-mode");
    ARG(o->permission_mode);
    if (o->model) {
        ARG("--model");
        ARG(o->model);
    }
    if (o->max_turns > 0) {
        snprintf(numbuf, 24, "%d", o->max_turns);
        ARG("--max-turns");
        ARG(numbuf);
    }
    if (o->system_prompt) {
        ARG("--append-system-prompt");
        ARG(o->system_prompt);
    }
    for (int i = 0; i < o->n_add_dirs; i++) {
        ARG("--add-dir");
        ARG(o->add_dirs[i]);
    }
#undef ARG
    argv[n] = NULL;
    return n;
}

/* environ minus the withheld names and those we set, plus ours. Caller frees the array
 * and the strings marked in `owned` (the ones built here). */
/* Whether environment entry `e` (NAME=value) names one of `list`'s variables. */
static int named_in(const char *e, size_t len, const char *const *list)
{
    for (int j = 0; list && list[j]; j++)
        if (strncmp(list[j], e, len) == 0 && list[j][len] == '=') return 1;
    return 0;
}

static char **child_env(const struct cc_options *o, const char *const *extra, char ***owned_out)
{
    size_t n = 0, nextra = 0;
    while (environ[n])
        n++;
    while (extra && extra[nextra])
        nextra++;
    char **env = calloc(n + nextra + 16, sizeof *env);
    char **owned = calloc(16, sizeof *owned);
    if (!env || !owned) {
        free(env);
        free(owned);
        return NULL;
    }
    static const char *const replaced[] = {
        "CLAUDE_CODE_USE_VERTEX",
        "ANTHROPIC_VERTEX_PROJECT_ID",
        "CLOUD_ML_REGION",
        NULL,
    };
    /* Claude Code refuses bypassPermissions as root outside a declared sandbox, and only
     * IS_SANDBOX=1 declares one; a session container is one. */
    int sandbox = geteuid() == 0 && strcmp(o->permission_mode, "bypassPermissions") == 0;
    size_t k = 0, nown = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = environ[i];
        size_t len = strcspn(e, "=");
        int skip = 0;
        for (int j = 0; withheld[j] && !skip; j++)
            skip = strlen(withheld[j]) == len && strncmp(e, withheld[j], len) == 0;
        for (int j = 0; replaced[j] && !skip && o->use_vertex; j++)
            skip = strlen(replaced[j]) == len && strncmp(e, replaced[j], len) == 0;
        if (sandbox && len == 10 && strncmp(e, "IS_SANDBOX", 10) == 0) skip = 1;
        if (!skip && !named_in(e, len, extra)) env[k++] = environ[i];
    }
    for (size_t i = 0; i < nextra; i++)
        env[k++] = (char *)extra[i];
#define SETENV(name, value)                                                                        \
    do {                                                                                           \
        char *s_;                                                                                  \
        if (asprintf(&s_, "%s=%s", (name), (value)) < 0) goto fail;                                \
        env[k++] = owned[nown++] = s_;                                                             \
    } while (0)
    if (o->use_vertex) {
        SETENV("CLAUDE_CODE_USE_VERTEX", "1");
        SETENV("ANTHROPIC_VERTEX_PROJECT_ID", o->vertex_project);
        SETENV("CLOUD_ML_REGION", o->vertex_location);
    }
    if (!getenv("DISABLE_AUTOUPDATER")) /* an unattended run must not update itself */
        SETENV("DISABLE_AUTOUPDATER", "1");
    if (sandbox) SETENV("IS_SANDBOX", "1");
#undef SETENV
    env[k] = NULL;
    *owned_out = owned;
    return env;
fail:
    for (size_t i = 0; i < nown; i++)
        free(owned[i]);
    free(owned);
    free(env);
    return NULL;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Waits for the guard's report on fd. 0 when claude runs; else -1 with err, and the guard
 * (with claude, if it got that far) is killed and reaped. */
static int await_guard(struct cc_child *c, int fd, const char *exe, char *err, size_t errlen)
{
    struct cc_guard_report r;
    size_t have = 0;
    int timed_out = 0;
    long long deadline = cc_mono_ms() + GUARD_START_MS;
    while (have < sizeof r) {
        long long left = deadline - cc_mono_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int ready = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (ready < 0 && errno == EINTR) continue;
        if (ready == 0) {
            timed_out = 1;
            break;
        }
        ssize_t n = read(fd, (char *)&r + have, sizeof r - have);
        if (n > 0)
            have += (size_t)n;
        else if (n == 0 || errno != EINTR)
            break;
    }
    if (have == sizeof r && r.stage == CC_GUARD_RUNNING) return 0;
    kill(-c->pid, SIGKILL); /* the guard's group: itself and a claude it may have started */
    int status = 0;
    waitpid(c->pid, &status, 0);
    c->pid = 0;
    if (have == sizeof r && r.stage == CC_GUARD_EXEC) {
        snprintf(err, errlen, "cannot start %.200s: %s (check --claude / CLAUDE_CODE_PATH)", exe,
                 strerror(r.err));
    } else if (have == sizeof r) {
        snprintf(err, errlen, "cannot start Claude Code under its process guard: %s: %s",
                 cc_guard_stage_name(r.stage), strerror(r.err));
    } else {
        char how[128];
        if (timed_out)
            snprintf(err, errlen,
                     "cannot start Claude Code: its process guard did not answer "
                     "within %d ms",
                     GUARD_START_MS);
        else
            snprintf(err, errlen, "cannot start Claude Code: its process guard ended (%s)",
                     cc_child_describe(status, how, sizeof how));
    }
    return -1;
}

int cc_child_start(struct cc_child *c, const char *exe, const struct cc_options *o,
                   const char *const *extra_env, char *err, size_t errlen)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1}, rep[2] = {-1, -1};
    const char *argv[64 + 3];
    char numbuf[24], runner[24], repfd[8];
    char **owned = NULL, **env = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, defaults;
    int rc;

    memset(c, 0, sizeof *c);
    c->pidfd = c->in_fd = c->out_fd = c->err_fd = -1;
    /* ccrunner-guard RUNNER_PID REPORT_FD, then claude's own argv (guard.h) */
    snprintf(runner, sizeof runner, "%d", (int)getpid());
    snprintf(repfd, sizeof repfd, "%d", REPORT_FD);
    argv[0] = CC_GUARD_ARGV0;
    argv[1] = runner;
    argv[2] = repfd;
    if (cc_child_argv(o, exe, argv + 3, 64, numbuf) < 0) {
        snprintf(err, errlen, "too many options for claude (at most %d --add-dir)",
                 CC_MAX_ADD_DIRS);
        return -1;
    }
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(errp, O_CLOEXEC) ||
        pipe2(rep, O_CLOEXEC)) {
        snprintf(err, errlen, "cannot create pipes for claude: %s", strerror(errno));
        goto fail_pipes;
    }
    if (rep[1] == REPORT_FD) { /* dup2 onto itself would leave it close-on-exec */
        int moved = fcntl(rep[1], F_DUPFD_CLOEXEC, REPORT_FD + 1);
        if (moved < 0) {
            snprintf(err, errlen, "cannot create pipes for claude: %s", strerror(errno));
            goto fail_pipes;
        }
        close(rep[1]);
        rep[1] = moved;
    }
    if (!(env = child_env(o, extra_env, &owned))) {
        snprintf(err, errlen, "out of memory building claude's environment");
        goto fail_pipes;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    posix_spawn_file_actions_adddup2(&fa, rep[1], REPORT_FD);
    posix_spawn_file_actions_addchdir_np(&fa, o->workspace);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE); /* ccrunner ignores it; the child must not inherit that */
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    /* /proc/self/exe is this very binary even if its file was replaced since */
    rc = posix_spawn(&c->pid, "/proc/self/exe", &fa, &attr, (char *const *)argv, env);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    for (size_t i = 0; owned[i]; i++)
        free(owned[i]);
    free(owned);
    free(env);
    if (rc != 0) {
        c->pid = 0;
        snprintf(err, errlen,
                 "cannot start %.200s: %s (check --claude / CLAUDE_CODE_PATH and "
                 "that --workspace exists)",
                 exe, strerror(rc));
        goto fail_pipes;
    }
    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&errp[1]);
    close_fd(&rep[1]);
    if (await_guard(c, rep[0], exe, err, errlen) < 0) goto fail_pipes;
    close_fd(&rep[0]);
    c->in_fd = in[1];
    c->out_fd = out[0];
    c->err_fd = errp[0];
    fcntl(c->in_fd, F_SETFL, O_NONBLOCK);
    fcntl(c->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(c->err_fd, F_SETFL, O_NONBLOCK);
#ifdef SYS_pidfd_open
    c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
#endif
    return 0;

fail_pipes:
    for (int i = 0; i < 2; i++) {
        close_fd(&in[i]);
        close_fd(&out[i]);
        close_fd(&errp[i]);
        close_fd(&rep[i]);
    }
    return -1;
}

void cc_child_close_stdin(struct cc_child *c)
{
    close_fd(&c->in_fd);
}

int cc_child_poll(struct cc_child *c)
{
    if (c->exited || c->pid <= 0) return 1;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0)
        return 0;
    /* It has exited and, not yet reaped, still holds its pid, so no other process group can
     * have taken that number: whatever is left in the group goes now. The guard leaves
     * nothing there; this is for a guard killed from outside (claude's children in its
     * group would be orphans). */
    kill(-c->pid, SIGKILL);
    pid_t r = waitpid(c->pid, &c->status, WNOHANG);
    if (r == c->pid || (r < 0 && errno == ECHILD)) {
        c->exited = 1;
        close_fd(&c->pidfd);
        return 1;
    }
    return 0;
}

int cc_child_wait(struct cc_child *c, int timeout_ms)
{
    long long deadline = cc_mono_ms() + timeout_ms;
    while (!cc_child_poll(c)) {
        long long left = deadline - cc_mono_ms();
        if (left <= 0) return 0;
        if (c->pidfd >= 0) {
            struct pollfd p = {.fd = c->pidfd, .events = POLLIN};
            poll(&p, 1, (int)left);
        } else {
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return 1;
}

void cc_child_signal(struct cc_child *c, int sig)
{
    if (c->pid <= 0 || c->exited) return;
    if (sig == SIGKILL && !c->kill_asked) {
        /* SIGKILL to the group would kill the guard before it could kill the tools that run
         * in sessions of their own: ask the guard to kill everything instead. */
        c->kill_asked = 1;
        kill(c->pid, CC_GUARD_KILL);
        return;
    }
    kill(-c->pid, sig);
}

int cc_child_reap(struct cc_child *c, int grace_ms, int term_ms)
{
    if (c->pid > 0) {
        cc_child_close_stdin(c);
        if (!cc_child_wait(c, grace_ms)) {
            cc_child_signal(c, SIGTERM);
            if (!cc_child_wait(c, term_ms)) {
                cc_child_signal(c, SIGKILL);
                if (!cc_child_wait(c, c->kill_asked ? CC_GUARD_KILL_MS + 2000 : 5000)) {
                    cc_child_signal(c, SIGKILL); /* the guard did not end: its whole group */
                    cc_child_wait(c, 5000);
                }
                if (!c->exited) { /* unkillable (D state): block rather than leak a zombie */
                    waitpid(c->pid, &c->status, 0);
                    c->exited = 1;
                }
            }
        }
    }
    close_fd(&c->in_fd);
    close_fd(&c->out_fd);
    close_fd(&c->err_fd);
    close_fd(&c->pidfd);
    return c->status;
}

const char *cc_child_describe(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "wait status %d", status);
    return buf;
}
