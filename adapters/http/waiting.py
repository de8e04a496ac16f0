"""Waiting claims: wake them as soon as claimable work may exist, or hand them work.

One ``WorkBroadcaster`` per server process serves any number of waiting claim requests
(``Waiter``: a long poll, ``POST /v1/claim`` with ``wait_seconds``, or a claim stream,
``POST /v1/claim/stream``), on asyncio events, with no thread per waiter. Work is
announced by:

- PostgreSQL: one connection LISTENs on the queue channel (the store NOTIFYs it with
  the queue names when a transaction makes jobs claimable, in any process);
- in-process: the API pokes it after its own writes that free or add work (the only
  signal SQLite has, since it cannot notify another process);
- every waiter also re-checks on its own every ``poll_seconds``: jobs whose ``run_at``
  or retry backoff comes due send no notification, and on SQLite another process's
  submits send none either.

A wake-up is a hint, never a promise: the woken request claims and, finding nothing,
waits again until its deadline.

Wake-ups. A notification wakes ONE idle waiter that wants those queues (not all of them:
with many workers waiting, waking everyone for one new job made every other claim an
empty transaction). When none is idle (all are claiming, held by submits, or between
two polls), the announcement is kept as a token, one per set of queues: a claim sees
every job committed before it, so a burst costs one claim more, not one per job. The
next waiter for those queues to wait takes the token and claims at once. The woken
request hands its wake-up on (``pass_on``) when its claim came back full (there may be
more work: kept as a token if nobody is idle) or empty (someone else took it, or its
capabilities did not fit: only to someone idle), and when it ends without claiming at
all (a delivery filled it, or answered its plain long poll, in the moment the wake-up
chose it: kept as a token if nobody is idle). Shutdowns, reconnects and retries call
``wake_all``. On PostgreSQL the API's own writes do not poke the broadcaster (``local``):
their NOTIFY arrives anyway, and both would wake two.

Hand-over ("sync match", as Temporal's matching does it): a submit through this server
may ``reserve`` a waiting request that could take its job (its tenant and queue; its
capabilities when the request names them) and claim for it inside the submit's own
transaction (``Fleet.submit_handing_over``), within the reservation's budget (see
``waiter.py``). The request neither claims nor answers until the submit ``deliver``s what
that claim took; the job then reaches the worker without a notification, a wake-up or a
claim transaction of its own. A request is reservable while it waits, by several submits
at once within what it asked for, so submits arriving together all go to waiting
workers instead of the queue; a first hand-over can still take queued jobs with the new
one (a backlog drains through hand-overs too). A submit picks a request nobody holds yet
when there is one (the work spreads over the workers). When that worker's last claim
came back short, the submit's claim is decided on what that claim read and checked at
commit: the whole hand-over is then one round trip on PostgreSQL (``Claiming.offer_to``).
A submit that finds no request to reserve waits a moment (``reserve_soon``, bounded by
the API's ``handoff_wait_seconds``) when one that could take its job will be reservable
again soon: it is in a claim of its own, all its room is promised to hand-overs still in
their transactions (what they do not use comes back), or it was a claim stream that ended because it
was given all it asked for, and its worker, whose next stream opens as soon as it has
read that end, has not asked again yet (``RETURN_SECONDS`` at most). A job sent to the
queue in that gap would cost that worker a claim of its own when it comes back.

Refilled streams: a claim stream whose worker gives it room as handler slots free
(``Waiter.add_room``, then ``room_added``) stays registered with no room for a moment.
With none it is neither woken nor given a token (it could claim nothing); a submit waits
for it as for a request in a claim of its own. Room makes it reservable at once, and
wakes it to claim only if work was announced meanwhile (a token for its queues) or its
last claim came back full. Such a stream never ends by being filled, so ``reserve``
sends the request it picks to the back of the line: submits spread over open streams.

Settled claims: a worker's next claim request arrives a moment after its last one
answered, and claiming at once would usually find nothing (its previous claim, or the
hand-over's, was short). The broadcaster remembers per worker (subject, tenant, factory,
capabilities, queues) when a claim of its came back short. A new request from that
worker less than ``QUIET_SECONDS`` later waits that remainder first (reservable, and
woken as any waiter, by a notification or a token) instead of claiming at once. What no
notification announces (room freed under a seat limit or an in-flight cap, a row a
concurrent claim had skipped) is found at most ``QUIET_SECONDS`` later. An announcement
made while a claim runs is not seen by that claim, and does not wake the claimer either
(it is not idle): it wakes another waiter, or stays a token for the next wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg

from adapters.http.waiter import Waiter
from adapters.store.signals import QUEUE_CHANNEL

log = logging.getLogger("fleetlog.http.waiting")

RECONNECT_SECONDS = 1.0
QUIET_SECONDS = 0.1
"""How long after a short claim a worker's next long-poll may wait before claiming."""
QUIET_KEYS = 10_000
"""Workers remembered (least recently settled forgotten first)."""
RETURN_SECONDS = 0.1
"""How long after a claim stream ended full (or, refilled, reached its deadline with room)
its worker is expected back with the next one (``reserve_soon`` may wait for it meanwhile)."""
RETURNING_KEYS = 10_000
"""Workers expected back remembered (the oldest forgotten first)."""
MAX_TOKENS = 64
"""Sets of queues with an announcement kept while no waiter was idle (the oldest is
dropped past it; a waiter still finds its work within ``poll_seconds``)."""
W = TypeVar("W")


class WorkBroadcaster:
    def __init__(self, *, postgres_url: str | None, poll_seconds: float):
        self.poll_seconds = poll_seconds
        self._url = postgres_url
        self._waiters: dict[Waiter, None] = {}
        """In arrival order: the longest-waiting request is woken first."""
        self._lock = threading.Lock()
        self._tokens: OrderedDict[frozenset[str] | None, None] = OrderedDict()
        """The queues of announcements no waiter was idle to take, oldest first (None:
        any queue)."""
        self._settled: OrderedDict[Hashable, float] = OrderedDict()
        self._returning: OrderedDict[Hashable, tuple[Waiter, float]] = OrderedDict()
        """Workers whose claim stream ended full (or, refilled, at its deadline with room)
        a moment ago, by worker key: the ended
        request (what it wanted) and when it ended. The worker opens its next stream as
        soon as it has read the last one's end."""
        self._watchers: list[_Watcher] = []
        """Submits waiting for a request to wait again (``reserve_soon``)."""
        self._channels: dict[str, Callable[[str], None]] = {}
        """Other channels the LISTEN connection follows, with what each payload is given
        to (on the listening thread)."""
        self._stop = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def closing(self) -> bool:
        """The server is shutting down: long-polls answer now instead of waiting."""
        return self._closing.is_set()

    def begin_shutdown(self) -> None:
        self._closing.set()
        self.wake_all()

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiters)

    def follow(self, channel: str, handler: Callable[[str], None]) -> None:
        """Also LISTEN on ``channel`` (PostgreSQL; before ``start``): ``handler`` gets each
        payload, on the listening thread, and must not block."""
        assert self._thread is None, "follow channels before start"
        self._channels[channel] = handler

    def start(self) -> None:
        if self._url is not None and self._thread is None:
            self._thread = threading.Thread(target=self._listen, name="fleetlog-listen", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._closing.set()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.wake_all()

    def waiter(
        self,
        queues: Collection[str] | None,
        wants: W | None = None,
        capacity: int = 1,
        *,
        stream: bool = False,
        key: Hashable | None = None,
        refill: bool = False,
    ) -> Waiter[W]:
        """Register before the first claim attempt, so no wake-up in between is missed.
        ``key``: the worker asking (``settled``), so that a stream it fills is expected
        back (``reserve_soon``) until its next request registers."""
        waiter: Waiter[W] = Waiter(self, queues, wants, capacity, stream=stream, key=key, refill=refill)
        with self._lock:
            self._waiters[waiter] = None
            if key is not None:
                self._returning.pop(key, None)
        return waiter

    async def reserve_soon(
        self, queue: str, fits: Callable[[W], bool], wait: float
    ) -> tuple[Waiter[W], int] | None:
        """``reserve``; when nothing is reservable but a request that fits is in a claim
        of its own or has all its room promised to hand-overs in flight
        (``_busy_soon_free``), or its worker is between two claim streams (``_coming_back``), wait
        up to ``wait`` seconds for it (or another) to wait again. A claim lasts a
        millisecond or two; a job sent to the queue meanwhile would cost it a claim of
        its own (its announcement wakes a waiter), during which the next submit finds
        nobody waiting either: a worker could go on claiming job by job instead of being
        handed them. On the event loop."""
        found = self.reserve(queue, fits)
        if found is not None or wait <= 0:
            return found
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while self._busy_soon_free(queue, fits) or self._coming_back(queue, fits):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            watcher = _Watcher(loop.create_future(), frozenset((queue,)), fits)
            with self._lock:
                self._watchers.append(watcher)
            expiry = loop.call_later(remaining, _resolve, watcher.future)
            try:
                await watcher.future
            finally:
                expiry.cancel()
                with self._lock, contextlib.suppress(ValueError):
                    self._watchers.remove(watcher)
            found = self.reserve(queue, fits)
            if found is not None:
                return found
        return None

    def _busy_soon_free(self, queue: str, fits: Callable[[W], bool]) -> bool:
        """A request that fits is in a claim of its own, has all its room promised to
        hand-overs still in flight (what they do not use comes back when they deliver;
        it then waits again, or ends full and its worker comes back), or is a refilled
        stream with no room (its worker gives it some as soon as a handler slot frees)."""
        wanted = frozenset((queue,))
        with self._lock:
            return any(
                (w.claiming or w.reserved or (w.refill and w.capacity <= 0))
                and w.wants is not None
                and w.concerns(wanted)
                and fits(w.wants)
                for w in self._waiters
            )

    def _coming_back(self, queue: str, fits: Callable[[W], bool]) -> bool:
        """A worker that fits ended a claim stream full (or, refilled, at its deadline
        with room) a moment ago and has not asked again
        yet: between two streams, not gone (its next request's wait resolves the
        watchers, as a claim's end does)."""
        wanted = frozenset((queue,))
        horizon = time.monotonic() - RETURN_SECONDS
        with self._lock:
            while self._returning:
                _, (_, ended) = next(iter(self._returning.items()))
                if ended >= horizon:
                    break
                self._returning.popitem(last=False)
            for ended_full, _ in self._returning.values():
                wants = ended_full.wants
                if wants is not None and ended_full.concerns(wanted) and fits(wants):
                    return True
            return False

    def reserve(self, queue: str, fits: Callable[[W], bool]) -> tuple[Waiter[W], int] | None:
        """A reservable request for ``queue`` whose ``wants`` ``fits``, reserved for one
        submit, which must ``deliver`` to it: the longest-waiting one nobody holds yet,
        else the longest-waiting one with room for another hand-over; with the
        reservation's budget. On the event loop."""
        wanted = frozenset((queue,))
        with self._lock:
            shared: Waiter[W] | None = None
            for w in self._waiters:
                if not (w.reservable and w.concerns(wanted) and fits(w.wants)):  # type: ignore[arg-type]
                    continue
                if not w.reserved:
                    # To the back of the line: a stream that stays open (refilled) must not
                    # take every job ahead of the others.
                    del self._waiters[w]
                    self._waiters[w] = None
                    return w, w.reserve()
                shared = shared or w
            return None if shared is None else (shared, shared.reserve())

    def remove(self, waiter: Waiter) -> None:
        with self._lock:
            self._waiters.pop(waiter, None)
            # Filled, or refilled and at its deadline with room: its worker asks again as
            # soon as it has read the end. (A refilled stream also ends with no room when
            # its worker's slots are all busy: that worker asks again when a slot frees.)
            filled = waiter.stream and not waiter.refill and waiter.capacity <= 0
            expired = waiter.refill and waiter.expired and waiter.capacity > 0
            if (
                (filled or expired)
                and waiter.key is not None
                and waiter.wants is not None
                and not self._closing.is_set()
            ):
                self._returning[waiter.key] = (waiter, time.monotonic())
                self._returning.move_to_end(waiter.key)
                while len(self._returning) > RETURNING_KEYS:
                    self._returning.popitem(last=False)

    def room_added(self, waiter: Waiter) -> None:
        """A refilled stream was given room (on the loop). Submits waiting for a request
        to be reservable again try now. If work was announced while it had none (a token
        for its queues), or its last claim came back full (more may be queued), it is
        woken to claim; otherwise it waits on, reservable, as after a short claim."""
        with self._lock:
            watchers, self._watchers = self._watchers, []
            wake = False
            if waiter.idle and waiter.wakeable:
                full_last = waiter.key is not None and waiter.key not in self._settled
                wake = self._take_token(waiter) or full_last
                if wake:
                    waiter.woken = True
        for watcher in watchers:
            _resolve(watcher.future)
        if wake:
            waiter.wake()

    def settled(self, key: Hashable) -> None:
        """A claim for worker ``key`` came back short."""
        with self._lock:
            self._settled[key] = time.monotonic()
            self._settled.move_to_end(key)
            while len(self._settled) > QUIET_KEYS:
                self._settled.popitem(last=False)

    def unsettled(self, key: Hashable) -> None:
        """A claim for ``key`` came back full: there may be more for it."""
        with self._lock:
            self._settled.pop(key, None)

    def quiet_for(self, key: Hashable) -> float:
        """Seconds a new long-poll for ``key`` may wait before its first claim (0: claim now)."""
        with self._lock:
            since = self._settled.get(key)
            if since is None:
                return 0.0
            return max(0.0, QUIET_SECONDS - (time.monotonic() - since))

    @property
    def tokens(self) -> int:
        with self._lock:
            return len(self._tokens)

    def wake_all(self) -> None:
        """Wake every waiter (shutdown, a lost LISTEN, a retry that may be due). Any thread."""
        with self._lock:
            targets = list(self._waiters)
        for waiter in targets:
            waiter.wake()

    def notify(
        self, queues: Collection[str] | None, *, exclude: Waiter | None = None, keep: bool = True
    ) -> None:
        """Wake one idle waiter for these queues (None: any queue); with none idle, keep
        the announcement as a token for the next waiter (``keep``). Any thread."""
        wanted = None if queues is None else frozenset(queues)
        with self._lock:
            chosen = next(
                (
                    w
                    for w in self._waiters
                    if w is not exclude and w.idle and w.wakeable and w.concerns(wanted)
                ),
                None,
            )
            if chosen is not None:
                chosen.woken = True  # under the lock: two notifications pick two waiters
            elif keep:
                self._tokens[wanted] = None
                if len(self._tokens) > MAX_TOKENS:
                    self._tokens.popitem(last=False)
        if chosen is not None:
            chosen.wake()

    def _idle(self, waiter: Waiter) -> bool:
        """``waiter`` begins to wait (under the lock ``notify`` takes, so no announcement
        falls between the two): True if a token was kept for it (it is woken by it).
        Submits waiting for a request to wait again (``reserve_soon``) try again now."""
        with self._lock:
            waiter.idle = True
            watchers, self._watchers = self._watchers, []
            # One of them may hand its job to this request: then leave the token (queued
            # work) for later: that hand-over's claim takes the queued jobs that rank
            # first anyway, while taking the token would start another claim, and the
            # submit would find the request busy again.
            handing = waiter.wants is not None and any(
                waiter.concerns(w.queues) and w.fits(waiter.wants) for w in watchers
            )
            woken = False
            if not waiter.woken and not handing and waiter.room > 0:  # no room: nothing to claim with
                woken = self._take_token(waiter)
                if woken:
                    waiter.woken = True
        for watcher in watchers:
            _resolve(watcher.future)
        return woken

    def _take_token(self, waiter: Waiter) -> bool:
        """Take a kept announcement for ``waiter``'s queues, if any (under the lock)."""
        for token in self._tokens:
            if waiter.concerns(token):
                del self._tokens[token]
                return True
        return False

    def local(self, queues: Collection[str] | None) -> None:
        """This process made work claimable. On PostgreSQL its NOTIFY will say so (waking
        here too would wake a second waiter for the same job); SQLite has no NOTIFY."""
        if self._url is None:
            self.notify(queues)

    def _listen(self) -> None:
        assert self._url is not None
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    for channel in (QUEUE_CHANNEL, *self._channels):
                        conn.execute(f"LISTEN {channel}")
                    # Reconnected: whatever was announced meanwhile is lost, so wake everyone.
                    self.wake_all()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            handler = self._channels.get(note.channel)
                            if handler is None:
                                self.notify(_queues(note.payload))
                            else:
                                handler(note.payload)
            except psycopg.Error as exc:
                log.warning("LISTEN %s lost (waiters poll meanwhile): %s", QUEUE_CHANNEL, exc)
                self._stop.wait(RECONNECT_SECONDS)


def _queues(payload: Any) -> frozenset[str] | None:
    """The payload lists the queues that gained claimable work (empty: unknown)."""
    if not payload:
        return None
    return frozenset(str(payload).split(","))


@dataclass(frozen=True, slots=True)
class _Watcher:
    """A submit waiting for a request busy in its own claim to wait again."""

    future: asyncio.Future[None]
    queues: frozenset[str]
    fits: Callable[[Any], bool]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
