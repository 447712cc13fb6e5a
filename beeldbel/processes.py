"""Child processes under one supervisor: ``beeldbel run`` over the control plane
and the media server, and the media server over its workers."""

from __future__ import annotations

import signal
import subprocess


def supervise(
    children: list[subprocess.Popen[bytes]], stop_timeout: float | None = 30
) -> int:
    """Wait until a child ends or we are told to stop (SIGINT, SIGTERM, SIGHUP),
    then stop every child once with SIGTERM and wait ``stop_timeout`` s for each
    (None: as long as it takes, for media workers draining their calls).

    One child ending stops the others: a system with a worker or a process
    missing would look up while it is not. Exit code: 0 when every child stopped
    cleanly, else the first failing child's."""
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    try:
        while all(child.poll() is None for child in children):
            signal.sigtimedwait([signal.SIGCHLD], 1.0)
        asked = stopping
        stop(signal.SIGTERM, None)
        codes = [child.wait(timeout=stop_timeout) for child in children]
    finally:
        stop(signal.SIGTERM, None)
    # a child that died of our own SIGTERM before it could handle it stopped
    # as asked; anything else is a failure
    failed = [c for c in codes if c != 0 and not (asked and c == -signal.SIGTERM)]
    return exit_code(failed[0]) if failed else 0


def exit_code(returncode: int) -> int:
    """A child's return code as our exit code (killed by signal n: 128 + n)."""
    return 128 - returncode if returncode < 0 else returncode
