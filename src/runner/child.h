/*
 * child.h - the Claude Code child process: finding the executable, its command line and
 * environment, the three pipes, and reaping it on every path.
 *
 * The child is ccrunner-guard (guard.h), which runs claude and exits with claude's wait
 * status; between them they lead a process group of their own, in the workspace, with
 * stdin, stdout and stderr on pipes whose parent ends are non-blocking. Whenever the child
 * ends, or ccrunner dies, nothing the agent started is left running. Reaping always ends in
 * a waited-for child: close stdin, wait; SIGTERM to the group, wait; the guard kills
 * everything, wait; SIGKILL to the group.
 */
#ifndef CC_CHILD_H
#define CC_CHILD_H

#include <stddef.h>
#include <sys/types.h>

#include "options.h"

struct cc_child {
    pid_t pid;      /* 0 when not running */
    int pidfd;      /* readable when the child exits; -1 where unsupported */
    int in_fd;      /* its stdin (write end), -1 once closed */
    int out_fd;     /* its stdout (read end), -1 at EOF */
    int err_fd;     /* its stderr (read end), -1 at EOF */
    int exited;     /* reaped: status is valid */
    int status;     /* wait status (claude's: the guard mirrors it) */
    int kill_asked; /* the guard was told to kill everything (cc_child_signal SIGKILL) */
};

/* Finds the claude executable: o->claude_path, else the copy the project installed with
 * npm (node_modules/.bin/claude beside the source tree or the ccrunner binary), else PATH.
 * Writes the path into out. 0, or -1 with a one-line err naming the fix. */
int cc_child_find_claude(const struct cc_options *o, const char *self_exe, char *out, size_t outlen,
                         char *err, size_t errlen);

/* Starts `claude_exe` for the session under its guard, with `extra_env` ("NAME=value"
 * strings, NULL-terminated, may be NULL; they replace variables of those names), and returns once
 * claude runs (or could not be started: its exec error is reported here, as before). Call it from
 * the thread that reaps it, the main thread: the guard watches the thread that spawned it. 0, or -1
 * with err. */
int cc_child_start(struct cc_child *c, const char *claude_exe, const struct cc_options *o,
                   const char *const *extra_env, char *err, size_t errlen);

/* Closes the child's stdin (the CLI then finishes its turn and exits). Idempotent. */
void cc_child_close_stdin(struct cc_child *c);

/* Non-blocking reap; 1 if the child has exited (status set), 0 if it still runs. Before
 * reaping, SIGKILLs whatever is still in the child's process group. */
int cc_child_poll(struct cc_child *c);

/* Waits up to timeout_ms for the child to exit; 1 if it exited. */
int cc_child_wait(struct cc_child *c, int timeout_ms);

/* Sends sig to the child's process group (the guard ignores SIGTERM, SIGINT and SIGHUP from
 * ccrunner: claude decides). SIGKILL instead asks the guard to kill claude and every process
 * under it at once (and exit "killed by signal 9"); a second SIGKILL goes to the group. */
void cc_child_signal(struct cc_child *c, int sig);

/* The full reap: close stdin, wait `grace_ms`; SIGTERM, wait `term_ms`; SIGKILL (the
 * guard), wait; SIGKILL (the group), wait. Returns the wait status. Closes every
 * descriptor. */
int cc_child_reap(struct cc_child *c, int grace_ms, int term_ms);

/* "exit status 1", "killed by signal 9 (Killed)", written into buf. */
const char *cc_child_describe(int status, char *buf, size_t len);

/* Builds the argument vector for claude (exposed for tests). Fills argv (NULL-terminated,
 * strings borrowed from o, numbuf or static) and returns argc, or -1 if max is too small. */
int cc_child_argv(const struct cc_options *o, const char *exe, const char **argv, int max,
                  char numbuf[24]);

#endif
