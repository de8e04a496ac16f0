"""``Claims``: the API's side of waiting claims: submits that hand their job over, and
claim requests that wait for work (``waiting.py`` has the mechanism).

``batches`` is one claim request, as a sequence of batches of leased jobs: a long poll
answers with everything it yields (at most one batch, and what reservations still held
for it bring); a claim stream writes each batch as it comes, until it has been given
``max_jobs`` jobs or its wait ends. A refilled stream (``refill``) is given more room by
its worker as handler slots free (``add_room``, ``POST /v1/claim/room``): it goes on
past ``max_jobs``, and ends at its deadline or once it has had no room for
``refill_idle`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from adapters.http.room_relay import ROOM_CHANNEL, ForwardedRoom, RoomRelay
from adapters.http.schemas import MAX_CLAIM_HTTP, ClaimBody
from adapters.http.waiter import Waiter
from adapters.http.waiting import WorkBroadcaster
from coordinator.claiming import ClaimRequest
from coordinator.errors import Conflict, GuessMissed, NotFound, Unavailable, WouldRead
from coordinator.fleet import Fleet
from coordinator.identity import Identity
from coordinator.ports import LoopCommits
from coordinator.views import ClaimedJob, SubmitResult
from domain.job import JobSpec

T = TypeVar("T")
Run = Callable[..., Awaitable[Any]]
"""Runs a synchronous ``Fleet`` call on a worker thread (``Api.run``)."""

DEFAULT_HANDOFF_WAIT = 0.005
"""A claim lasts a millisecond or two: a submit waits this long at most for a busy
waiting request rather than queue its job (see ``WorkBroadcaster.reserve_soon``)."""
MAX_HANDOFF_WAIT = 1.0
REFILL_IDLE_SECONDS = 0.25
"""A refilled claim stream that had no room this long ends (its worker's slots are
busy with long jobs): the worker opens the next one when a slot frees."""

Wants = tuple[Identity, ClaimRequest]
"""What a waiting claim would claim: the worker and its request."""


def fits(tenant: str, spec: JobSpec) -> Callable[[Wants], bool]:
    """Whether a waiting claim may be offered this tenant's new job (the claim itself
    decides; this only spares it offers it could never take)."""

    def check(wants: Wants) -> bool:
        worker, request = wants
        scope = worker.scope()
        caps = request.capabilities
        return (scope is None or tenant in scope) and (caps is None or set(spec.capabilities) <= set(caps))

    return check


def worker_key(worker: Identity, request: ClaimRequest) -> tuple[Any, ...]:
    """Which claim requests are the same worker asking again (``WorkBroadcaster.settled``)."""
    return (worker.subject, worker.tenant, request.factory_id, request.capabilities, request.queues)


def at_most(limit: int, request: ClaimRequest) -> ClaimRequest:
    return request if request.max_jobs <= limit else request.model_copy(update={"max_jobs": limit})


def claimable_at_once(spec: JobSpec) -> bool:
    return not spec.deps and (spec.run_at is None or spec.run_at <= datetime.now(UTC))


def claim_request(body: ClaimBody) -> ClaimRequest:
    return ClaimRequest(
        factory_id=body.factory_id,
        capabilities=body.capabilities,
        max_jobs=body.max_jobs,
        lease_seconds=body.lease_seconds,
        queues=body.queues,
        start=body.start,
    )


async def hand_over(
    fleet: Fleet,
    identity: Identity,
    spec: JobSpec,
    worker: Identity,
    request: ClaimRequest,
    *,
    loop_commits: LoopCommits | None,
    run: Run,
) -> tuple[SubmitResult, list[ClaimedJob]]:
    """``Fleet.submit_handing_over`` from the event loop: committed from the loop itself
    when the unit of work needs no read before its commit and the store can
    (``loop_commits``), else, and after any failure there (nothing written), on a
    thread (``run``) the ordinary way, which reads what it must and retries."""
    guess = True
    if loop_commits is not None:
        unit = fleet.hand_over_unit(identity, spec, worker, request)
        if unit is not None:
            try:
                return await loop_commits.transact(unit)
            except GuessMissed:
                guess = False  # the claim reads before it decides, this time
            except (WouldRead, Conflict, Unavailable):
                pass
    result: tuple[SubmitResult, list[ClaimedJob]] = await run(
        fleet.submit_handing_over, identity, spec, worker, request, guess=guess
    )
    return result


class Claims:
    def __init__(
        self,
        fleet: Fleet,
        broadcaster: WorkBroadcaster,
        run: Run,
        *,
        handoff: bool = True,
        handoff_wait: float = DEFAULT_HANDOFF_WAIT,
        refill_idle: float = REFILL_IDLE_SECONDS,
        relay: RoomRelay | None = None,
        loop_commits: LoopCommits | None = None,
    ):
        self.fleet = fleet
        self.broadcaster = broadcaster
        self.run = run
        self.loop_commits = loop_commits
        """Where the store has them, hand-overs that need no read before their commit
        run on the loop and send it from there (``Store.loop_commits``)."""
        self.handoff = handoff
        """Offer a new job to a waiting claim in the submit's transaction."""
        self.handoff_wait = handoff_wait
        """How long a submit waits for a claim request busy in a claim of its own
        (``WorkBroadcaster.reserve_soon``) before it sends its job to the queue."""
        self.refill_idle = refill_idle
        """How long a refilled stream with no room waits for some before it ends."""
        self._streams: dict[str, tuple[Identity, Waiter[Wants]]] = {}
        """Refilled claim streams open in this process, by id (``add_room``)."""
        self.relay = relay or RoomRelay(None)
        """Room for other processes' streams (``room_relay.py``)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        if self.relay.relays:
            broadcaster.follow(ROOM_CHANNEL, self._forwarded)

    def new_stream_id(self) -> str:
        return self.relay.new_stream_id()

    async def submit(self, identity: Identity, spec: JobSpec) -> SubmitResult:
        """``Fleet.submit``, handing the job to a waiting claim that can take it if one
        waits here."""
        tenant = identity.tenant
        reserved = None
        if self.handoff and tenant is not None and claimable_at_once(spec):
            reserved = await self.broadcaster.reserve_soon(spec.queue, fits(tenant, spec), self.handoff_wait)
        if reserved is None:
            result: SubmitResult = await self.run(self.fleet.submit, identity, spec)
            handed = False
        else:
            waiter, budget = reserved
            assert waiter.wants is not None  # only requests that say what they want are reserved
            worker, request = waiter.wants
            # Shielded: if the submitter goes away meanwhile, the transaction still ends
            # and the worker still gets what it leased to it.
            result, claimed = await asyncio.shield(
                asyncio.ensure_future(self._hand_over(identity, spec, waiter, budget))
            )
            if claimed:
                # One turn of the loop: the worker's request, resumed by the delivery,
                # writes its jobs before this submit answers (the job's latency runs to
                # the worker; the submitter's answer can wait the moment).
                await asyncio.sleep(0)
            handed = any(c.job.id == result.job.id for c in claimed)
            key = worker_key(worker, request)
            if len(claimed) < budget or (handed and len(claimed) == 1):
                # Nothing else claimable ranks with what it took: the worker's next
                # request may wait instead of claiming (until anything is announced).
                self.broadcaster.settled(key)
            else:
                self.broadcaster.unsettled(key)  # queued jobs came with it: more may wait
        if result.outcome != "existing" and not handed:
            self.broadcaster.local([spec.queue])
        return result

    async def _hand_over(
        self, identity: Identity, spec: JobSpec, waiter: Waiter[Wants], budget: int
    ) -> tuple[SubmitResult, list[ClaimedJob]]:
        assert waiter.wants is not None
        worker, request = waiter.wants
        claimed: list[ClaimedJob] = []
        # Within its budget: the submits holding one request never claim more between
        # them than it asked for.
        try:
            result, claimed = await hand_over(
                self.fleet,
                identity,
                spec,
                worker,
                at_most(budget, request),
                loop_commits=self.loop_commits,
                run=self.run,
            )
            return result, claimed
        finally:
            waiter.deliver(claimed, budget)

    async def batches(
        self,
        identity: Identity,
        body: ClaimBody,
        *,
        stream: bool,
        disconnected: Callable[[], Awaitable[bool]] | None = None,
        stream_id: str | None = None,
    ) -> AsyncGenerator[list[ClaimedJob], None]:
        """The jobs one claim request is given, batch by batch (see the module's doc).
        ``disconnected``: asked after each empty wait; True ends the request (nobody
        would receive the leases). ``stream_id``: a refilled stream's id (``add_room``)."""
        request = claim_request(body)
        if body.wait_seconds <= 0:
            yield await self.run(self.fleet.claim, identity, request)
            return
        deadline = time.monotonic() + body.wait_seconds
        key = worker_key(identity, request)
        wants = (identity, request)
        refill = stream and body.refill
        with (
            self.broadcaster.waiter(
                body.queues, wants, body.max_jobs, stream=stream, key=key, refill=refill
            ) as waiter,
            self._registered(refill, stream_id, identity, waiter),
        ):
            # Its last claim was short a moment ago: wait (reservable) before claiming.
            first_wait = min(self.broadcaster.quiet_for(key), body.wait_seconds)
            claim_now = first_wait <= 0
            while True:
                if claim_now:
                    jobs = await self._claim(identity, request, waiter, key)
                    if jobs:
                        yield jobs
                        if not stream:
                            break
                remaining = deadline - time.monotonic()
                waiter.expired = remaining <= 0
                if self.broadcaster.closing or waiter.expired or (waiter.capacity <= 0 and not refill):
                    break
                # Refilled, with no room: its worker's slots are all busy. It waits a moment
                # for room (reservable as soon as some comes), then ends: a worker whose jobs
                # run long opens its next stream when a slot frees.
                roomless = waiter.capacity <= 0
                timeout = self._timeout(remaining, self.refill_idle if roomless else first_wait)
                to_deadline = timeout >= remaining
                first_wait = 0.0
                handed = await waiter.wait(timeout)
                if handed:  # submits claimed for this request in their own transactions
                    yield handed
                    if not stream:
                        break
                    claim_now = False  # a hand-over settles the worker: wait on
                    continue
                # A wait that ran to the deadline ends the request without a last claim:
                # while one ran, the request could not be handed jobs and the submits
                # meanwhile would queue theirs (and cost the next hand-overs a missed
                # guess). What is claimable goes to the worker's next request (a wake-up it
                # holds is passed on as it ends; a refilled stream's worker is expected back).
                # (The loop's timer may fire a moment early: a wait to the deadline that no
                # wake-up ended has expired.)
                waiter.expired = time.monotonic() >= deadline or (to_deadline and not waiter.woken)
                if waiter.expired or (roomless and waiter.capacity <= 0):
                    break  # the deadline, or no room came
                if roomless:
                    claim_now = waiter.woken  # work announced, or its last claim was full
                    continue
                if disconnected is not None and await disconnected():
                    break
                claim_now = True  # woken, or its wait ended: claim
            # What reservations still outstanding claim is leased to this request.
            rest = await waiter.drain()
            if rest:
                yield rest

    def _timeout(self, remaining: float, first: float) -> float:
        """The next wait: ``first`` if set (a settled worker's first wait, or a roomless
        stream's wait for room), else the re-check period; never past the deadline."""
        return min(remaining, first if first > 0 else self.broadcaster.poll_seconds)

    async def add_room(self, identity: Identity, stream_id: str, count: int) -> int | None:
        """Its worker freed ``count`` handler slots: the refilled claim stream ``stream_id``
        may be given that many more jobs (``MAX_CLAIM_HTTP`` at most in all). The room it
        now has; None when the stream is another server process's and the room was
        forwarded to it (``room_relay.py``). ``NotFound`` when it is this process's and
        no such stream of this worker is open (it ended), or, on SQLite, not open here."""
        if self.relay.relays and not self.relay.ours(stream_id):
            forwarded = ForwardedRoom(stream_id, identity.subject, identity.tenant, count)
            await self.run(self.relay.forward, forwarded)
            return None
        return self._add_room(identity.subject, identity.tenant, stream_id, count)

    def _add_room(self, subject: str, tenant: str | None, stream_id: str, count: int) -> int:
        """On the loop."""
        held = self._streams.get(stream_id)
        if held is None or held[0].subject != subject or held[0].tenant != tenant:
            raise NotFound("claim stream", stream_id)
        waiter = held[1]
        room = waiter.add_room(count, MAX_CLAIM_HTTP)
        self.broadcaster.room_added(waiter)
        return room

    def _forwarded(self, payload: str) -> None:
        """A room notification (on the broadcaster's listening thread): room for a stream
        of this process is applied on the loop; any other process's is not ours to apply."""
        room = ForwardedRoom.parse(payload)
        loop = self._loop
        if room is not None and self.relay.ours(room.stream) and loop is not None:
            loop.call_soon_threadsafe(self._apply_forwarded, room)

    def _apply_forwarded(self, room: ForwardedRoom) -> None:
        # NotFound: it ended meanwhile (or was never this worker's); its worker knows.
        with contextlib.suppress(NotFound):
            self._add_room(room.subject, room.tenant, room.stream, room.jobs)

    @contextlib.contextmanager
    def _registered(
        self, refill: bool, stream_id: str | None, identity: Identity, waiter: Waiter[Wants]
    ) -> Iterator[None]:
        if not refill:
            yield
            return
        if stream_id is None:
            raise ValueError("a refilled claim stream needs a stream id")
        if stream_id in self._streams:
            raise ValueError(f"claim stream {stream_id} is open already")
        self._loop = asyncio.get_running_loop()
        self._streams[stream_id] = (identity, waiter)
        try:
            yield
        finally:
            self._streams.pop(stream_id, None)

    async def _claim(
        self, identity: Identity, request: ClaimRequest, waiter: Waiter[Wants], key: Any
    ) -> list[ClaimedJob]:
        room = waiter.room
        if room <= 0:
            # All its room is promised to hand-overs in flight (or, refilled, it has none):
            # they take what ranks first anyway. A wake-up it holds goes on (kept if nobody
            # is idle), or it would come back to claim at once, again and again.
            if waiter.woken:
                waiter.pass_on(keep=True)
                waiter.rest()
            return []
        waiter.claiming = True
        try:
            jobs: list[ClaimedJob] = await self.run(self.fleet.claim, identity, at_most(room, request))
        finally:
            waiter.claiming = False
        waiter.took(len(jobs))
        full = len(jobs) == room
        if full:
            self.broadcaster.unsettled(key)
        else:
            self.broadcaster.settled(key)
        if waiter.woken and (full or not jobs):
            # More work than it took (kept if nobody waits), or work it could not take
            waiter.pass_on(keep=full)
        waiter.rest()
        return jobs
