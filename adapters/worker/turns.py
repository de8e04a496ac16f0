"""``Turns``: which of a worker's threads reads the claims next, and which runs what
(the leader/follower pattern).

One thread at a time holds the *reading turn*: it claims and reads the claimed jobs.
When a job comes and a handler seat is free, that thread takes the seat, passes the
turn to an idle thread and runs the job itself, so a job starts on the thread that
read it, without waiting for another thread to wake (the hop a dedicated claim thread
handing jobs to handler threads costs on every job). When every seat is taken (prefetched
jobs), the reader queues the job and reads on; a thread coming back from a job runs
the queued ones first, in order.

A worker has one thread more than seats, so a thread not running a job always exists
to hold the turn: the claims are read while every seat runs.
"""

from __future__ import annotations

import threading
from collections import deque
from enum import Enum
from typing import Generic, TypeVar

T = TypeVar("T")


class Turn(Enum):
    READ = "read"
    """This thread holds the reading turn: it reads until ``Turns.ran`` gives it a job
    to run, or until the claims are over (``Turns.over``)."""


class Turns(Generic[T]):
    def __init__(self, seats: int):
        if seats < 1:
            raise ValueError(f"a worker needs at least one handler seat, got {seats}")
        self.seats = seats
        self._running = 0
        self._ready: deque[T] = deque()
        self._reading = False
        self._over = False
        self._closed = False
        self._cond = threading.Condition()

    @property
    def running(self) -> int:
        return self._running

    def next(self) -> T | Turn | None:
        """Block until this thread has something to do: a queued job to run (its seat is
        taken), the reading turn, or None once closed with nothing queued."""
        with self._cond:
            while True:
                if self._ready and self._running < self.seats:
                    self._running += 1
                    return self._ready.popleft()
                if not self._reading and not self._over and not self._closed:
                    self._reading = True
                    return Turn.READ
                if self._closed and not self._ready:
                    return None
                self._cond.wait()

    def ran(self, job: T) -> T | None:
        """The reader read ``job``. If a seat is free: the job the reader runs now (the
        oldest waiting: ``job`` unless some were queued), its seat taken and the turn
        passed on. None: every seat is taken, the job is queued, the reader reads on."""
        with self._cond:
            if self._running >= self.seats:
                self._ready.append(job)
                return None
            if self._ready:
                self._ready.append(job)
                job = self._ready.popleft()
            self._running += 1
            self._reading = False
            self._cond.notify()
            return job

    def over(self) -> None:
        """The reader found the claims over (the worker is stopping): nobody reads again."""
        with self._cond:
            self._reading = False
            self._over = True
            self._cond.notify_all()

    def done(self) -> None:
        """A job this thread ran has ended: its seat is free. (No thread is woken: this
        one calls ``next`` at once, and takes a queued job or the turn itself.)"""
        with self._cond:
            self._running -= 1

    def close(self) -> None:
        """Threads end once nothing is queued (a queued job still goes to a thread)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
