"""``Turns``, the worker's leader/follower scheduling: one reader at a time, never more
jobs running than seats, every job read runs exactly once and in the order read, a
reader with a free seat runs its job itself, and threads end only once nothing waits."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from adapters.worker.turns import Turn, Turns

CALL_TIMEOUT = 2.0


def without_blocking(call: Callable[[], object]) -> object:
    """Run ``call`` on a thread; fail (rather than hang) if it blocks."""
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
    thread.start()
    thread.join(CALL_TIMEOUT)
    assert not thread.is_alive(), "the call blocked where nothing should wait"
    return out[0]


class TurnsMachine(RuleBasedStateMachine):
    """The test plays every thread: it asks for turns, reads jobs while it holds the
    reading turn, finishes running jobs, ends the claims and closes, in any order the
    rules allow, and checks each answer against a model of what must happen."""

    def __init__(self) -> None:
        super().__init__()
        self.turns: Turns[int] | None = None
        self.seats = 0
        self.running: set[int] = set()
        self.queued: deque[int] = deque()
        self.reading = False
        self.over = False
        self.closed = False
        self.read: list[int] = []
        self.ran: list[int] = []

    @rule(seats=st.integers(min_value=1, max_value=4))
    @precondition(lambda self: self.turns is None)
    def start(self, seats: int) -> None:
        self.turns = Turns(seats)
        self.seats = seats

    def _would_not_wait(self) -> bool:
        runnable = bool(self.queued) and len(self.running) < self.seats
        turn_free = not self.reading and not self.over and not self.closed
        return runnable or turn_free or (self.closed and not self.queued)

    @rule()
    @precondition(lambda self: self.turns is not None and self._would_not_wait())
    def ask_for_a_turn(self) -> None:
        assert self.turns is not None
        got = without_blocking(self.turns.next)
        if self.queued and len(self.running) < self.seats:
            # A waiting job comes first, the oldest one
            assert got == self.queued.popleft()
            self._run(got)
        elif not self.reading and not self.over and not self.closed:
            assert got is Turn.READ
            self.reading = True
        else:
            assert got is None

    @rule()
    @precondition(lambda self: self.reading)
    def read_a_job(self) -> None:
        assert self.turns is not None
        job = len(self.read)
        self.read.append(job)
        got = self.turns.ran(job)
        if len(self.running) < self.seats:
            # A free seat: the reader runs the oldest waiting job and passes the turn on
            self.queued.append(job)
            assert got == self.queued.popleft()
            self._run(got)
            self.reading = False
        else:
            assert got is None
            self.queued.append(job)

    @rule(data=st.data())
    @precondition(lambda self: bool(self.running))
    def finish_a_job(self, data: st.DataObject) -> None:
        assert self.turns is not None
        job = data.draw(st.sampled_from(sorted(self.running)))
        self.running.remove(job)
        self.turns.done()

    @rule()
    @precondition(lambda self: self.reading)
    def find_the_claims_over(self) -> None:
        assert self.turns is not None
        self.turns.over()
        self.reading = False
        self.over = True

    @rule()
    @precondition(lambda self: self.turns is not None and self.over)
    def close(self) -> None:
        assert self.turns is not None
        self.turns.close()
        self.closed = True

    def _run(self, job: object) -> None:
        assert isinstance(job, int) and job not in self.running
        self.running.add(job)
        self.ran.append(job)

    @invariant()
    def never_more_running_than_seats(self) -> None:
        assert len(self.running) <= self.seats
        if self.turns is not None:
            assert self.turns.running == len(self.running)

    @invariant()
    def every_job_runs_once_in_the_order_read(self) -> None:
        assert self.ran == self.read[: len(self.ran)]
        assert self.ran + list(self.queued) == self.read


TestTurns = TurnsMachine.TestCase
TestTurns.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_a_worker_needs_a_seat() -> None:
    with pytest.raises(ValueError, match="at least one handler seat"):
        Turns(0)


def test_threads_taking_turns_run_every_job_once_within_the_seats_and_the_reader_runs_its_own() -> None:
    # Given 2 seats, 3 threads, and claims that bring 300 jobs
    turns: Turns[int] = Turns(2)
    jobs = iter(range(300))
    lock = threading.Lock()
    ran: list[int] = []
    own = 0
    read_by: dict[int, str] = {}
    most = 0

    def thread_loop() -> None:
        nonlocal own, most
        while True:
            turn = turns.next()
            if turn is None:
                return
            job = None
            if turn is Turn.READ:
                for read in jobs:
                    read_by[read] = threading.current_thread().name
                    job = turns.ran(read)
                    if job is not None:
                        break
                else:
                    turns.over()
                    turns.close()
                    continue
            else:
                job = turn
            assert isinstance(job, int)
            with lock:
                most = max(most, turns.running)
                ran.append(job)
                own += read_by[job] == threading.current_thread().name
            turns.done()

    # When they take turns until the claims are over
    threads = [threading.Thread(target=thread_loop, name=f"t{n}") for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    # Then every job ran once, never more than 2 at a time, and threads ended
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(ran) == list(range(300))
    assert most <= 2
    # And with a free seat, the thread that read a job ran it itself (no hop)
    assert own > 150, own
