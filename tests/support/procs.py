"""Child processes for the tests and benchmarks: start a server that prints `READY <port>`
once it listens (the wait is bounded: a hung child must not hang the suite), and stop one
(a signal, then SIGKILL). Standard library only."""

import selectors
import signal
import subprocess


def read_line(stream, timeout):
    """One line from a pipe, or TimeoutError."""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise TimeoutError(f"no line within {timeout}s")
    return stream.readline()


def start_ready(cmd, stderr=subprocess.DEVNULL, timeout=15):
    """Starts cmd, waits for its `READY <port>` line; returns (process, port). stdout is a
    binary pipe; stderr goes where the caller says (DEVNULL, PIPE, a file)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL)
    try:
        line = read_line(proc.stdout, timeout)
        if not line.startswith(b"READY "):
            err = proc.stderr.read().decode(errors="replace")[-2000:] \
                if stderr == subprocess.PIPE and proc.poll() is not None else ""
            raise RuntimeError(f"{' '.join(map(str, cmd[:2]))} said {line!r} {err}")
    except BaseException:
        stop_process(proc)
        raise
    return proc, int(line.split()[1])


def stop_process(proc, sig=signal.SIGTERM, timeout=10):
    """Sends sig (SIGKILL if it has not exited within timeout), closes its stdout; returns
    its exit status. A piped stderr is left for the caller to read."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout:
        proc.stdout.close()
    return proc.returncode


def run_for_peak_rss(argv, env, timeout):
    """Runs argv (stdin /dev/null) to its end under ptrace, stopping it once, inside its
    exit, to read its own high-water mark of resident memory (VmHWM: all its threads, none
    of its children) before the kernel frees it. Returns (exit code, stdout, stderr, peak
    RSS in bytes). Output is read on threads so that a big line cannot block the child."""
    import ctypes
    import os
    import threading
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    seize, cont, detach = 0x4206, 7, 17
    trace_exit, exit_kill, event_exit = 0x40, 0x100000, 6

    def ptrace(req, pid, data=0):
        if libc.ptrace(req, pid, None, ctypes.c_void_p(data)) == -1:
            e = ctypes.get_errno()
            raise OSError(e, f"ptrace({req}): {os.strerror(e)}")

    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    out, err = [], []
    readers = [threading.Thread(target=lambda s=s, b=b: b.append(s.read()), daemon=True)
               for s, b in ((proc.stdout, out), (proc.stderr, err))]
    for t in readers:
        t.start()
    timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
    timer.start()
    peak = None
    try:
        ptrace(seize, proc.pid, trace_exit | exit_kill)
        while True:
            _, status, _ = os.wait4(proc.pid, 0x40000000)  # __WALL
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                break
            if status >> 16 == event_exit:
                with open(f"/proc/{proc.pid}/status") as f:
                    peak = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))
                ptrace(detach, proc.pid)
            else:  # a signal or group stop: let it go on as it would have
                ptrace(cont, proc.pid, os.WSTOPSIG(status) if status >> 16 == 0 else 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in readers:
        t.join(timeout)
    return proc.returncode, b"".join(out), b"".join(err), peak
