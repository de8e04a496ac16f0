"""``Interrupter``: lets another thread cut a long-poll claim short.

A long-poll claim blocks in ``recv`` for up to ``wait_seconds``; a stopping worker must
not wait that long. Each thread long-polls on a connection of its own (``Session``), and
httpx's ``trace`` request extension hands over its socket as soon as it is connected (or
wrapped in TLS); a poll on the same connection later is ``attach``ed to the socket it
remembered. ``fire()`` shuts down the sockets of the polls in flight, which wakes the
blocked ``recv`` at once (``close()`` from another thread would not, on Linux); the
claim then returns no jobs, and that connection is not used again.

The race this leaves: the server may grant leases in the instant before the socket
goes down and answer into a closed connection. Those jobs are held by nobody until
their leases expire and the reaper requeues them, exactly like the leases of a
worker that died; ``fire()`` is for stopping, where that is the accepted cost.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

CONNECTED_EVENTS = frozenset({"connection.connect_tcp.complete", "connection.start_tls.complete"})


class Interrupter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fired = 0
        self._pending = False
        self._sockets: dict[int, socket.socket] = {}

    def fire(self) -> None:
        """Abort the long polls in flight; the next one is not made to wait (harmless
        when nothing is in flight)."""
        with self._lock:
            self._fired += 1
            self._pending = True
            targets = list(self._sockets.values())
        for sock in targets:
            _shut(sock)

    def take_pending(self) -> bool:
        """Whether ``fire()`` was called since the last look (and forget it)."""
        with self._lock:
            pending, self._pending = self._pending, False
            return pending

    @contextlib.contextmanager
    def watch(self) -> Iterator[Watch]:
        """One abortable request: pass ``watch.trace`` as its ``trace`` extension."""
        with self._lock:
            watch = Watch(self, self._fired)
        try:
            yield watch
        finally:
            with self._lock:
                self._sockets.pop(id(watch), None)

    def _register(self, watch: Watch, sock: socket.socket) -> None:
        with self._lock:
            self._sockets[id(watch)] = sock
            late = self._fired != watch.generation
        if late:
            _shut(sock)  # fired between the request's start and its connection

    def _fired_since(self, generation: int) -> bool:
        with self._lock:
            return self._fired != generation


class Watch:
    def __init__(self, interrupter: Interrupter, generation: int):
        self._interrupter = interrupter
        self.generation = generation

    @property
    def fired(self) -> bool:
        return self._interrupter._fired_since(self.generation)

    def attach(self, sock: socket.socket) -> None:
        """This request runs on ``sock`` (a kept-alive connection announces nothing)."""
        self._interrupter._register(self, sock)

    def trace(self, event: str, info: dict[str, Any]) -> socket.socket | None:
        """httpx's ``trace`` hook: the socket of a connection opened for this request."""
        if event not in CONNECTED_EVENTS:
            return None
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return None
        self._interrupter._register(self, sock)
        return sock


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
