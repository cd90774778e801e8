/*
 * guard.h - the process guard between ccrunner and Claude Code.
 *
 * ccrunner does not start claude itself: it starts its own executable again as
 * `ccrunner-guard`, which starts claude and stays its parent. The guard guarantees that no
 * process the agent started outlives the session: when claude exits, when ccrunner asks,
 * and when ccrunner dies by any cause (SIGKILL, OOM kill, crash), it kills claude and every
 * descendant, tools in their own sessions included, and exits. See guard.c for how.
 *
 * Command line (built by child.c; main() dispatches on argv[0] before anything else):
 *     ccrunner-guard RUNNER_PID REPORT_FD EXE [ARG...]
 * RUNNER_PID is the pid of the ccrunner that must be the guard's parent; REPORT_FD a
 * descriptor on which the guard writes one struct cc_guard_report once claude is running or
 * could not be started (-1: none); EXE and the ARGs are claude's argv. The guard's working
 * directory, environment and descriptors 0-2 are claude's.
 *
 * Seen from ccrunner the guard is the child: it is in the process group it leads together
 * with claude (so kill(-pid, SIGTERM) still reaches claude), and it exits with claude's wait
 * status (the same exit code; killed by the same signal).
 */
#ifndef CC_GUARD_H
#define CC_GUARD_H

#include <signal.h>

#define CC_GUARD_ARGV0 "ccrunner-guard"

/* Sent by ccrunner (instead of a SIGKILL to the group, which would kill the guard first and
 * orphan tools in their own sessions), and by the kernel when ccrunner dies
 * (PR_SET_PDEATHSIG): kill claude and everything under it now. From anyone else it is
 * ignored. */
#define CC_GUARD_KILL SIGUSR1

/* How long the guard goes on killing and reaping a tree that will not die (processes in
 * uninterruptible sleep) before it exits anyway. */
#define CC_GUARD_KILL_MS 3000

/* Where starting claude failed; CC_GUARD_RUNNING means it did not. */
enum cc_guard_stage {
    CC_GUARD_RUNNING = 0,
    CC_GUARD_SUBREAPER, /* prctl(PR_SET_CHILD_SUBREAPER) */
    CC_GUARD_PDEATHSIG, /* prctl(PR_SET_PDEATHSIG) */
    CC_GUARD_ORPHANED,  /* ccrunner died before the guard could watch it */
    CC_GUARD_FORK,      /* fork() or pipe2() */
    CC_GUARD_EXEC,      /* execve(EXE): err is its errno */
};

/* The one record written on REPORT_FD (8 bytes: a single atomic pipe write). */
struct cc_guard_report {
    int stage; /* enum cc_guard_stage */
    int err;   /* errno of the failed step; 0 when running */
};

/* "prctl(PR_SET_CHILD_SUBREAPER)", ... for messages; never NULL. */
const char *cc_guard_stage_name(int stage);

/* The guard's whole life; returns its exit code (or dies by claude's signal). argv as
 * above; a malformed command line returns 2. */
int cc_guard_main(int argc, char **argv);

#endif
