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
