"""``fleetlog serve --processes N``: N server processes on one listening socket.

One Python process runs one thread at a time; a server on a machine with several cores
answers more, and sooner, with one process per core (as gunicorn's workers do). The
parent binds the socket, then forks the children one at a time, each after the previous
one is ready (so their start-up migrations never race), and forwards SIGTERM/SIGINT to
them. The kernel hands each new connection to whichever child accepts it first.

The parent serves nothing and holds no store: if a child ends on its own, the parent
stops the others and exits 1, for a supervisor (systemd, Kubernetes) to restart the
whole server. Nothing here is specific to HTTP; ``child`` is what a process runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("fleetlog.serve")

PR_SET_PDEATHSIG = 1
"""Linux prctl(2): the signal a process gets when its parent dies."""

Ready = Callable[[], None]
Child = Callable[[int, Ready], int]
"""Runs in a child: (its index, call when ready to serve) -> exit code."""


class Supervisor:
    def __init__(self, count: int, child: Child):
        if count < 1:
            raise ValueError("count must be >= 1")
        self.count = count
        self.child = child
        self._pids: dict[int, int] = {}
        """Running children: pid -> index."""
        self._stopping = False
        self._failed = False

    def run(self, announce: Callable[[], None]) -> int:
        """Start the children, ``announce`` once all are ready, wait for them all to end:
        0 when each stopped cleanly after a signal, else 1."""
        previous = {s: signal.signal(s, self._forward) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(self.count):
                if self._stopping or not self._start(index):
                    self._stop_all()
                    break
            else:
                announce()
            self._collect()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 1 if self._failed else 0

    def _start(self, index: int) -> bool:
        """Fork child ``index`` and wait until it is ready (False: it ended first)."""
        read, write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child
            os.close(read)
            _die_with(parent)
            self._run_child(index, write)
        os.close(write)
        self._pids[pid] = index
        try:
            ready = os.read(read, 1) == b"1"  # EOF: the child ended before it was ready
        finally:
            os.close(read)
        if not ready:
            log.error("server process %d (pid %d) ended while starting", index, pid)
            self._failed = True
        return ready

    def _run_child(self, index: int, ready_fd: int) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)  # the server installs its own handlers
        self._pids.clear()

        def ready() -> None:
            os.write(ready_fd, b"1")

        code = 1
        try:
            code = self.child(index, ready)
        except BaseException:  # a process boundary: say why, then exit non-zero
            log.exception("server process %d failed", index)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _forward(self, sig: int, frame: FrameType | None) -> None:
        self._stopping = True
        for pid in list(self._pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _stop_all(self) -> None:
        self._forward(signal.SIGTERM, None)

    def _collect(self) -> None:
        while self._pids:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return
            index = self._pids.pop(pid, None)
            if index is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if not self._stopping:
                log.error(
                    "server process %d (pid %d) ended on its own (exit %d): stopping the others",
                    index,
                    pid,
                    code,
                )
                self._failed = True
                self._stop_all()
            elif code != 0:
                log.error("server process %d (pid %d) exited %d while stopping", index, pid, code)
                self._failed = True


def _die_with(parent: int) -> None:
    """SIGTERM this child (a graceful stop) when the supervisor dies, even by SIGKILL,
    so no server is left serving on its own. Linux only; elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)
