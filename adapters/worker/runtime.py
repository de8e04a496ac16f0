"""``Worker``: claims jobs for its free handler slots, runs them, renews their leases,
reports their outcomes in batches, heartbeats, and stops gracefully.

Threads (all daemons, joined on shutdown):
- ``concurrency + 1`` handler threads taking turns (``turns.py``, leader/follower): the
  one holding the reading turn runs the claim loop, which waits for a free slot, claims
  as many jobs as there are free slots (in one transaction, or over HTTP as a claim
  stream that brings them as they are leased) and keeps claiming until a claim comes
  back short, then waits for work (a PostgreSQL notification, a poll on SQLite, the
  server over HTTP) and claims again. A job it reads it runs itself, passing the turn
  to an idle thread, so no job waits for a thread to wake; with every seat taken
  (prefetch) it queues the job for the next free thread and reads on;
- the renewer (``renewer.py``), the completer (``completer.py``), the heartbeat.

A job's outcome is reported only if its lease is still ours: a lost, cancelled or
released job is never reported (``JobContext.finish`` decides under a lock).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from types import TracebackType
from uuid import UUID

from adapters.worker.attempt import run_attempt
from adapters.worker.completer import Completer
from adapters.worker.config import WorkerConfig
from adapters.worker.context import Handler, JobContext, Stop
from adapters.worker.port import FleetPort
from adapters.worker.registry import claim_queues
from adapters.worker.renewer import Renewer
from adapters.worker.slots import Slots
from adapters.worker.stats import StatsRecorder, WorkerStats
from adapters.worker.turns import Turn, Turns
from coordinator.claiming import ClaimRequest
from coordinator.errors import Conflict, FactoryDown, Unavailable
from coordinator.views import ClaimedJob
from domain.errors import DomainError, StaleEpoch
from domain.factory import FactoryReport

log = logging.getLogger("fleetlog.worker")

RELEASE_REASON = "worker shutting down"
STOP_POLL_SECONDS = 0.1
CLAIM_JOIN_SECONDS = 35.0
"""A claim in flight on a busy SQLite file may wait its 30 s lock timeout."""
HANDLER_JOIN_SECONDS = 2.0
"""On shutdown, after releasing what still runs: how long handler threads get to end."""


class Worker:
    def __init__(
        self,
        port: FleetPort,
        handlers: Mapping[str, Handler],
        config: WorkerConfig,
        *,
        rng: random.Random | None = None,
    ):
        self.port = port
        self.config = config
        self.handlers = dict(handlers)
        self.queues = claim_queues(self.handlers, config.queues)
        self.fatal: DomainError | None = None
        """Set when the coordinator refused the worker for good (it then stops)."""
        self._stats = StatsRecorder()
        self._stopping = threading.Event()
        self._slots = Slots(config.concurrency + config.prefetch)
        self._turns: Turns[JobContext] = Turns(config.concurrency)
        self._claims: Iterator[JobContext] = self._claim_loop()
        self._claims_over = threading.Event()
        self._inflight: dict[UUID, JobContext] = {}
        self._inflight_lock = threading.Lock()
        self._renewer = Renewer(port, config)
        self._completer = Completer(port, config, self._stats)
        self._heartbeat_stop = threading.Event()
        self._heartbeat_waits = heartbeat_waits(config.heartbeat_interval, config.heartbeat_jitter, rng)
        self._threads: dict[str, threading.Thread] = {}
        self._life = threading.Lock()
        self._started = False
        self._shut_down = False

    # ------------------------------------------------------------- lifecycle

    @property
    def stats(self) -> WorkerStats:
        return self._stats.snapshot()

    @property
    def busy(self) -> int:
        return self._slots.busy

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(self) -> None:
        with self._life:
            if self._started:
                return
            self._started = True
        # Register with a heartbeat before the first claim: a claim from an unknown
        # factory registers it without a heartbeat timeout.
        self.port.heartbeat(self._report())
        self._spawn("renewer", self._renewer.run)
        self._spawn("completer", self._completer.run)
        self._spawn("heartbeat", self._heartbeat_loop)
        for n in range(self.config.concurrency + 1):
            self._spawn(f"handler-{n}", self._handler_loop)
        log.info(
            "worker %s started: %d slot(s), queues %s",
            self.config.factory_id,
            self.config.concurrency,
            "any" if self.queues is None else ",".join(self.queues),
        )

    def stop(self) -> None:
        """Ask for a graceful stop and return at once (safe in a signal handler)."""
        self._stopping.set()

    def run_until_stopped(self) -> WorkerStats:
        """Start, block until ``stop()``, then shut down gracefully."""
        self.start()
        # Poll the flag instead of Event.wait(): a signal handler calling stop() in this
        # thread while it held the event's internal lock would deadlock.
        while not self._stopping.is_set():
            time.sleep(STOP_POLL_SECONDS)
        return self.shutdown()

    def shutdown(self) -> WorkerStats:
        """Stop claiming, give running handlers ``grace_seconds``, release what still
        runs, flush outcomes, stop the threads. Idempotent."""
        with self._life:
            done, self._shut_down = self._shut_down, True
        if done or not self._started:
            self._stopping.set()
            return self.stats
        self._stopping.set()
        self.port.interrupt()
        handlers = [name for name in self._threads if name.startswith("handler-")]
        if handlers and not self._claims_over.wait(CLAIM_JOIN_SECONDS):
            log.warning("the claim in flight did not end within %ss; leaving it", CLAIM_JOIN_SECONDS)
        if self.busy:
            log.info(
                "stopping: waiting up to %ss for %d running job(s)", self.config.grace_seconds, self.busy
            )
        self._slots.wait_idle(self.config.grace_seconds)
        self._release_running()
        self._turns.close()
        for name in handlers:
            self._join(name, HANDLER_JOIN_SECONDS)
        self._completer.stop()
        self._join("completer", 30)
        self._renewer.stop()
        self._join("renewer", 10)
        self._heartbeat_stop.set()
        self._join("heartbeat", 10)
        log.info("worker %s stopped: %s", self.config.factory_id, self.stats)
        return self.stats

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        def body() -> None:
            try:
                target()
            except Exception:  # a thread boundary: never die silently, stop the worker instead
                log.exception("worker thread %s crashed; stopping the worker", name)
                self._stopping.set()

        thread = threading.Thread(target=body, name=f"{self.config.factory_id}:{name}", daemon=True)
        self._threads[name] = thread
        thread.start()

    def _join(self, name: str, timeout: float) -> None:
        thread = self._threads.get(name)
        if thread is None:
            return
        thread.join(timeout)
        if thread.is_alive():
            log.warning("worker thread %s did not stop within %ss; leaving it", name, timeout)

    # ---------------------------------------------------------------- claims

    def _claim_loop(self) -> Iterator[JobContext]:
        """The claim loop, resumed by whichever thread holds the reading turn: each job
        it yields is dispatched (a slot taken, its lease tracked)."""
        failures = 0
        while not self._stopping.is_set():
            free = self._slots.wait_free(self._stopping)
            if free <= 0:
                continue
            got = yield from self._claim(free)
            if got is None:
                failures += 1
                self._stopping.wait(min(0.1 * 2**failures, 5.0))
                continue
            failures = 0
            if got < free:
                # A short claim: the queue is drained for us. Wait for a notification
                # (or the idle poll) and claim again; a full claim loops straight back.
                # An empty one first cools down: the notifications that woke it were
                # for work someone else took, and more of them may be queued.
                if not got and self._stopping.wait(self.config.claim_cooldown_seconds):
                    return
                self.port.wait_for_work(self.config.idle_poll_seconds)

    def _claim(self, free: int) -> Generator[JobContext, None, int | None]:
        """Claim up to ``free`` jobs, dispatching each as it comes: how many came (None:
        the claim failed before any did)."""
        request = ClaimRequest(
            factory_id=self.config.factory_id,
            capabilities=self.config.capabilities,
            max_jobs=free,
            lease_seconds=self.config.lease_seconds,
            queues=self.queues,
            # Without prefetch every claimed job lands on a free handler thread: record
            # its start in the claim's own transaction.
            start=self.config.prefetch == 0,
        )
        got = 0
        try:
            for claimed in self.port.claim(request):
                yield self._dispatch(claimed)
                got += 1
            return got
        except FactoryDown as exc:
            log.warning("%s; rejoining with a heartbeat", exc.message)
            self._heartbeat_once()
        except (Conflict, Unavailable) as exc:
            log.warning("claim failed, will retry: %s", exc.message)
        except DomainError as exc:
            log.error("the coordinator refuses this worker's claims: %s; stopping", exc.message)
            self.fatal = exc
            self._stopping.set()
        return got or None  # the jobs that came before a failure run all the same

    def _dispatch(self, claimed: ClaimedJob) -> JobContext:
        ctx = JobContext(self.port, claimed)
        self._stats.add(claimed=1)
        self._slots.take()
        with self._inflight_lock:
            self._inflight[ctx.job_id] = ctx
        lease = claimed.job.lease
        seconds = self.config.lease_seconds or (
            (claimed.lease_expires_at - lease.granted_at).total_seconds() if lease else 60.0
        )
        self._renewer.track(ctx, seconds)
        return ctx

    # -------------------------------------------------------------- handlers

    def _handler_loop(self) -> None:
        while True:
            turn = self._turns.next()
            if turn is None:
                return
            ctx = self._read() if turn is Turn.READ else turn
            if ctx is None:
                continue
            try:
                self._execute(ctx)
            finally:
                self._turns.done()
                self._slots.give()
                self.port.slot_freed(self._slots.free)

    def _read(self) -> JobContext | None:
        """This thread's reading turn: resume the claim loop until a job comes that this
        thread runs itself (None: the claims are over)."""
        try:
            for read in self._claims:
                ctx = self._turns.ran(read)
                if ctx is not None:
                    return ctx
        except BaseException:  # the claim loop crashed: nobody may resume it; stop
            self._end_claims()
            raise
        self._end_claims()
        return None

    def _end_claims(self) -> None:
        self._turns.over()
        self._claims_over.set()

    def _execute(self, ctx: JobContext) -> None:
        completion = run_attempt(self.port, self.handlers, ctx)
        self._renewer.untrack(ctx.job_id)  # before the outcome: no renewal may land after it
        with self._inflight_lock:
            self._inflight.pop(ctx.job_id, None)
        why = ctx.finish()
        if why is None and completion is not None:
            self._completer.submit(completion)
        elif why is Stop.LOST:
            self._stats.add(lost=1)
            log.warning("job %s: lease epoch %d was lost; its outcome is not reported", ctx.job_id, ctx.epoch)
        elif why is Stop.CANCELLED:
            self._stats.add(cancelled=1)
            log.info("job %s: cancelled while running; its outcome is not reported", ctx.job_id)

    def _release_running(self) -> None:
        with self._inflight_lock:
            running = list(self._inflight.values())
        for ctx in running:
            if not ctx.halt(Stop.RELEASED):
                continue  # it finished meanwhile: its outcome is being reported
            self._renewer.untrack(ctx.job_id)
            try:
                self.port.release(ctx.job_id, ctx.epoch, RELEASE_REASON)
            except StaleEpoch:
                self._stats.add(lost=1)
            except DomainError as exc:
                log.error("job %s: release failed (its lease will expire instead): %s", ctx.job_id, exc)
            else:
                self._stats.add(released=1)
                log.info("job %s: released (%s)", ctx.job_id, RELEASE_REASON)

    # ------------------------------------------------------------- heartbeat

    def _report(self) -> FactoryReport:
        return FactoryReport(
            factory_id=self.config.factory_id,
            capabilities=self.config.capabilities,
            load=min(self._slots.busy, self.config.concurrency) / self.config.concurrency,
            heartbeat_timeout_seconds=self.config.heartbeat_timeout,
        )

    def _heartbeat_once(self) -> None:
        try:
            self.port.heartbeat(self._report())
        except (Conflict, Unavailable) as exc:
            log.warning("heartbeat failed, will retry: %s", exc.message)
        except DomainError as exc:  # refused for good (an expired token, a lost role)
            log.error("the coordinator refuses this worker's heartbeats: %s; stopping", exc.message)
            self.fatal = exc
            self._heartbeat_stop.set()  # no more heartbeats the coordinator would refuse
            self._stopping.set()

    def _heartbeat_loop(self) -> None:
        while not self._heartbeat_stop.wait(next(self._heartbeat_waits)):
            self._heartbeat_once()


def heartbeat_waits(interval: float, jitter: float, rng: random.Random | None = None) -> Iterator[float]:
    """The waits between heartbeats: each in ``((1 - jitter) * interval, interval]``, drawn
    from ``rng`` (a new, unseeded one by default: workers started together draw apart)."""
    draw = rng or random.Random()
    while True:
        yield interval * (1 - jitter * draw.random())
