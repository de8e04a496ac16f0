"""``HttpPort``: the worker port over the HTTP API (``FleetClient``), so the same
``Worker`` runtime drives a remote coordinator exactly as it drives ``DirectPort``.

Waiting for work is the server's job: every claim is a claim stream (``POST
/v1/claim/stream``) that the server holds open for up to ``wait_seconds``, writing each
job as soon as it is leased to this worker (handed over by a submit, or claimed when
work is announced); ``wait_for_work`` returns at once. The stream is refilled: opened
for the slots free then, it is given room (``POST /v1/claim/room``) by a refiller
thread as handler slots free, one request at a time (the slots freed while one is in
flight go in the next), so it stays open job after job and the server always sees what
this worker can start now. A job counts against the room until the runtime has taken a
slot for it, so the room never exceeds the free slots. A room request that reaches
another server process than the stream's is forwarded by that process (202; see
``adapters/http/room_relay.py``). Without refill (or after ``REFILL_MISSES`` streams in a
row whose room requests found no stream: servers that do not forward) a stream ends once
it has written ``max_jobs``.
The server claims at once when this worker's last claim was full (a backlog), and waits
first when it was short a moment ago, so a stream costs no claim transaction of its own
in steady state. One stream serves several jobs: no request per job, and no moment
between two requests when a submit finds this worker not waiting. ``interrupt()`` cuts
a stream short (see ``adapters.client.interrupt``), so a stop never waits for it. With
``wait_seconds=0`` claims are plain claims, and ``wait_for_work`` sleeps instead.

Completions: a batch whose answer was lost (a timeout) may have been applied; when the
runtime sends it again, the items that had landed come back ``stale-epoch`` with the
job already in the outcome's state under the same epoch. Those are our own earlier
writes, reported here as accepted (the server still records the repeat as a refused
write in the job's history).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from uuid import UUID

from pydantic import JsonValue

from adapters.client import FleetClient, Interrupter
from adapters.http.schemas import MAX_CLAIM_HTTP, MAX_WAIT_SECONDS
from coordinator.claiming import ClaimRequest
from coordinator.errors import NotFound
from coordinator.reporting import Completion
from coordinator.views import ClaimedJob, ItemResult, RenewResult
from domain.errors import DomainError
from domain.factory import FactoryReport
from domain.job.spec import RunInsights

REFILL_POLL_SECONDS = 0.5
"""How often the refiller re-checks that it is not closed."""
REFILL_MISSES = 3
"""Refilled streams in a row whose room request found no stream, before the port stops
asking for refilled streams."""
log = logging.getLogger("fleetlog.worker")

CLAIM_LANE = "claims"
"""The long-poll connection the worker's claims travel on, whichever of its threads holds
the reading turn (``turns.py``): one connection, kept alive from stream to stream."""

DEFAULT_WAIT_SECONDS = 20.0
"""Long-poll length: an idle worker asks again this often (the server allows 30)."""

LANDED_STATES = {"succeeded": frozenset({"succeeded"}), "failed": frozenset({"failed", "dead_letter"})}
"""States a job is in right after an outcome of that kind, under the same epoch."""


@dataclass
class _Stream:
    """A refilled claim stream, as the worker counts it: the room it gave (``max_jobs``
    and every ``add_room``) and the jobs it has dispatched from it."""

    granted: int
    id: str | None = None
    dispatched: int = 0
    refused: bool = False
    """A room request found no such stream: give it no more (it ends on its own)."""
    yielded: bool = False
    """A job was handed to the runtime, which has not yet asked for the next one: it may
    hold a slot already and still count as outstanding."""
    owed: bool = False
    """Room was counted while a job was both: ask again once it is counted as dispatched."""

    @property
    def outstanding(self) -> int:
        """Jobs the server may still lease to it, or has leased and not yet dispatched."""
        return self.granted - self.dispatched


class HttpPort:
    def __init__(
        self, client: FleetClient, *, wait_seconds: float = DEFAULT_WAIT_SECONDS, refill: bool = True
    ):
        if not 0 <= wait_seconds <= MAX_WAIT_SECONDS:
            raise ValueError(f"wait_seconds must be 0-{MAX_WAIT_SECONDS:g}, got {wait_seconds}")
        self.client = client
        self.wait_seconds = wait_seconds
        self.refill = refill
        """Claim streams stay open: the worker gives them room as handler slots free
        (a refiller thread sends ``POST /v1/claim/room``). Turned off for good after
        ``REFILL_MISSES`` streams in a row were not found (servers that do not forward
        room to the process holding the stream)."""
        self._interrupter = Interrupter()
        self._idle = threading.Event()
        """Without long polls (wait_seconds=0), what ``wait_for_work`` sleeps on."""
        self._lock = threading.Lock()
        self._stream: _Stream | None = None
        self._free: Callable[[], int] | None = None
        self._freed = threading.Event()
        self._closed = threading.Event()
        self._misses = 0
        self._refiller: threading.Thread | None = None

    def heartbeat(self, report: FactoryReport) -> None:
        self.client.heartbeat(report)

    def claim(self, request: ClaimRequest) -> Iterable[ClaimedJob]:
        if request.max_jobs > MAX_CLAIM_HTTP:
            request = request.model_copy(update={"max_jobs": MAX_CLAIM_HTTP})
        if self.wait_seconds <= 0 or self._interrupter.take_pending():
            # No waiting (or a stop was asked for: look, but do not wait)
            return self.client.claim(request)
        if self.refill:
            return self._refilled(request)
        return self.client.claim_stream(
            request, wait_seconds=self.wait_seconds, interrupter=self._interrupter, lane=CLAIM_LANE
        )

    def _refilled(self, request: ClaimRequest) -> Iterator[ClaimedJob]:
        """A claim stream given room as slots free. A job counts as dispatched once the
        caller asks for the next one (it has taken a slot by then), so the room given is
        never more than the slots free. Room counted while a job was handed over and not
        yet resumed past (counted twice: outstanding, and maybe in a slot) is asked for
        again once it is: the runtime's next reader may be another thread, a moment later."""
        self._start_refiller()
        stream = _Stream(granted=request.max_jobs)

        def opened(stream_id: str) -> None:
            with self._lock:
                stream.id = stream_id
                self._stream = stream
            self._freed.set()  # slots freed since max_jobs was counted

        try:
            for claimed in self.client.claim_stream(
                request,
                wait_seconds=self.wait_seconds,
                interrupter=self._interrupter,
                refill=opened,
                lane=CLAIM_LANE,
            ):
                with self._lock:
                    stream.yielded = True
                yield claimed
                with self._lock:
                    stream.dispatched += 1
                    stream.yielded = False
                    owed, stream.owed = stream.owed, False
                if owed:
                    self._freed.set()
        finally:
            with self._lock:
                if self._stream is stream:
                    self._stream = None

    def slot_freed(self, free: Callable[[], int]) -> None:
        self._free = free
        self._freed.set()

    def _start_refiller(self) -> None:
        with self._lock:
            if self._refiller is not None:
                return
            self._refiller = threading.Thread(target=self._refill_loop, name="fleetlog-refill", daemon=True)
        self._refiller.start()

    def _refill_loop(self) -> None:
        """One room request at a time: the slots freed while one is in flight go in the next."""
        while not self._closed.is_set():
            if not self._freed.wait(REFILL_POLL_SECONDS):
                continue
            self._freed.clear()
            free = self._free
            with self._lock:
                stream = self._stream
                if stream is None or stream.id is None or stream.refused or free is None:
                    continue
                room = min(free() - stream.outstanding, MAX_CLAIM_HTTP)
                # A job handed over but not yet resumed past (the runtime's next reader
                # resumes the stream) may be counted twice: its room comes once it is not.
                stream.owed = stream.yielded
                if room <= 0:
                    continue
                stream.granted += room
                stream_id = stream.id
            try:
                self.client.add_room(stream_id, room)
            except NotFound:
                self._missed(stream)
            except DomainError as exc:  # the stream ends on its own; the next one is refilled
                stream.refused = True
                log.warning("could not give claim stream %s room: %s", stream_id, exc.message)
            else:
                self._misses = 0

    def _missed(self, stream: _Stream) -> None:
        stream.refused = True
        self._misses += 1
        if self._misses >= REFILL_MISSES and self.refill:
            self.refill = False
            log.info(
                "claim streams: %d room requests in a row found no stream (several server "
                "processes?); claiming without refill from now on",
                self._misses,
            )

    def renew(self, job_id: UUID, epoch: int, lease_seconds: float | None) -> RenewResult:
        return self.client.renew(job_id, epoch, lease_seconds)

    def start(self, job_id: UUID, epoch: int) -> None:
        self.client.start(job_id, epoch)

    def report_phase(self, job_id: UUID, epoch: int, phase: str) -> None:
        self.client.report_phase(job_id, epoch, phase)

    def checkpoint(self, job_id: UUID, epoch: int, data: JsonValue) -> None:
        self.client.checkpoint(job_id, epoch, data)

    def report_insights(self, job_id: UUID, epoch: int, insights: RunInsights) -> None:
        self.client.report_insights(job_id, epoch, insights)

    def complete(self, completions: Sequence[Completion]) -> list[ItemResult]:
        results = self.client.complete(completions)
        return [_reconcile(c, r) for c, r in zip(completions, results, strict=True)]

    def release(self, job_id: UUID, epoch: int, reason: str) -> None:
        self.client.release(job_id, epoch, reason)

    def wait_for_work(self, timeout_seconds: float) -> None:
        if self.wait_seconds > 0:
            return  # the next claim waits on the server
        if self._idle.wait(timeout_seconds):
            self._idle.clear()

    def interrupt(self) -> None:
        self._interrupter.fire()
        self._idle.set()

    def close(self) -> None:
        """Abort a poll still in flight; the client belongs to the caller."""
        self._closed.set()
        self._interrupter.fire()
        refiller = self._refiller
        if refiller is not None:
            refiller.join(timeout=5)


def _reconcile(completion: Completion, result: ItemResult) -> ItemResult:
    """A stale-epoch refusal of an outcome this worker already delivered is a success."""
    error = result.error
    if result.ok or error is None or error.code != "stale-epoch":
        return result
    details = error.details
    same_epoch = details.get("current_epoch") == completion.epoch
    if same_epoch and details.get("state") in LANDED_STATES[completion.outcome]:
        return ItemResult(index=result.index, ok=True, job_id=result.job_id, state=details.get("state"))
    return result
