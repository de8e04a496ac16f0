"""Long-poll claims: wake waiting requests as soon as claimable work may exist.

One ``WorkBroadcaster`` per server process fans wake-ups out to any number of waiting
``POST /v1/claim`` requests (asyncio events, no thread per waiter):

- PostgreSQL: one connection LISTENs on the queue channel (the store NOTIFYs it with
  the queue names when a transaction makes jobs claimable, in any process);
- in-process: the API pokes it after its own writes that free or add work (the only
  signal SQLite has, since it cannot notify another process);
- every waiter also re-checks on its own every ``poll_seconds``: jobs whose ``run_at``
  or retry backoff comes due send no notification, and on SQLite another process's
  submits send none either.

A wake-up is a hint, never a promise: the woken request claims again and, finding
nothing, waits again until its deadline.

Hand-over ("sync match", as Temporal's matching does it): a submit through this server
may ``reserve`` a waiting request that could take its job (its tenant and queue; its
capabilities when the request names them) and claim for it inside the submit's own
transaction (``Fleet.submit_handing_over``). The reserved request neither claims nor
answers until the submit ``deliver``s what that claim took; the job then reaches the
worker without a notification, a wake-up or a claim transaction of its own. A request is
reservable only while it waits, and by one submit at a time.

Settled claims: a worker's next long-poll arrives a moment after its last one answered,
and its first claim would usually find nothing (its previous claim, or the hand-over's,
was short). The broadcaster keeps a ``generation``, moved on by every notification,
local write and wake-up, and remembers per worker (subject, tenant, factory, capabilities,
queues) the generation at which a claim of its came back short. A new long-poll from
that worker, less than ``QUIET_SECONDS`` after such a claim and with the generation
unchanged, waits that remainder first (reservable, woken as any waiter) instead of
claiming at once: nothing announced since says there is work for it. What no
notification announces (room freed under a seat limit or an in-flight cap, a row a
concurrent claim had skipped) is found at most ``QUIET_SECONDS`` later.

A notification wakes ONE waiter that wants those queues (not all of them: with many
workers long-polling, waking everyone for one new job made every other claim an empty
transaction). The woken request hands the wake-up on (``pass_on``) when its claim came
back full (there may be more work) or empty (someone else took it, or its capabilities did
not fit), so a burst still reaches every waiter it needs. Shutdowns, reconnects and
retries call ``wake_all``. On PostgreSQL the API's own writes do not
poke the broadcaster (``local``): their NOTIFY arrives anyway, and both would wake two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable
from typing import Any, Generic, TypeVar

import psycopg

from adapters.store.signals import QUEUE_CHANNEL

log = logging.getLogger("fleetlog.http.waiting")

RECONNECT_SECONDS = 1.0
QUIET_SECONDS = 0.1
"""How long after a short claim a worker's next long-poll may wait before claiming."""
QUIET_KEYS = 10_000
"""Workers remembered (least recently settled forgotten first)."""
W = TypeVar("W")


class Waiter(Generic[W]):
    def __init__(self, broadcaster: WorkBroadcaster, queues: Collection[str] | None, wants: W | None = None):
        self._broadcaster = broadcaster
        self.queues = None if queues is None else frozenset(queues)
        self.wants = wants
        """What the waiting request would claim (the API's; None: not reservable)."""
        self._event = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.woken = False
        """Woken and not yet back to waiting: the next wake-up goes to someone else."""
        self.idle = False
        """Inside ``wait``: it may be reserved."""
        self._delivery: asyncio.Future[list[Any]] | None = None

    def concerns(self, queues: frozenset[str] | None) -> bool:
        return queues is None or self.queues is None or not self.queues.isdisjoint(queues)

    def wake(self) -> None:
        self.woken = True
        self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout: float) -> list[Any] | None:
        """Until woken (since the last wait), or ``timeout``, whichever comes first; if
        a submit reserved this request meanwhile, until it delivers: what it claimed
        here (None: nothing was delivered, claim as usual)."""
        self.idle = True
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout=max(0.0, timeout))
        finally:
            self.idle = False  # from here on nobody may reserve it
            self._event.clear()
        delivery = self._delivery
        if delivery is None:
            return None
        try:
            # Shielded: a cancelled request leaves the delivery to its submit (what that
            # claimed then waits for its lease to expire, as any answer lost on the way).
            return (await asyncio.shield(delivery)) or None
        finally:
            self._delivery = None  # only now: ``deliver`` resolves this very future

    def reserve(self) -> None:
        """Taken by one submit (called under the broadcaster's lock, on the loop)."""
        self.woken = True
        self._delivery = self._loop.create_future()

    def deliver(self, jobs: list[Any]) -> None:
        """The reserving submit is done: hand over what it claimed here ([] for nothing)
        and let the request go on. On the event loop."""
        delivery = self._delivery
        if delivery is not None and not delivery.done():
            delivery.set_result(jobs)
        self._event.set()

    def rest(self) -> None:
        """Back to waiting (after a claim): eligible for the next wake-up again."""
        self.woken = False

    def pass_on(self) -> None:
        """Hand a wake-up to another waiter for the same queues (see the module's doc)."""
        self._broadcaster.notify(self.queues, exclude=self)

    def close(self) -> None:
        self._broadcaster.remove(self)

    def __enter__(self) -> Waiter[W]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WorkBroadcaster:
    def __init__(self, *, postgres_url: str | None, poll_seconds: float):
        self.poll_seconds = poll_seconds
        self._url = postgres_url
        self._waiters: dict[Waiter, None] = {}
        """In arrival order: the longest-waiting request is woken first."""
        self._lock = threading.Lock()
        self.generation = 0
        """Moved on whenever work may have become claimable (see the module's doc)."""
        self._settled: OrderedDict[Hashable, tuple[int, float]] = OrderedDict()
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

    def waiter(self, queues: Collection[str] | None, wants: W | None = None) -> Waiter[W]:
        """Register before the first claim attempt, so no wake-up in between is missed."""
        waiter: Waiter[W] = Waiter(self, queues, wants)
        with self._lock:
            self._waiters[waiter] = None
        return waiter

    def reserve(self, queue: str, fits: Callable[[W], bool]) -> Waiter[W] | None:
        """The longest-waiting idle request for ``queue`` whose ``wants`` ``fits``,
        reserved for one submit, which must ``deliver`` to it. On the event loop."""
        wanted = frozenset((queue,))
        with self._lock:
            for w in self._waiters:
                if w.idle and not w.woken and w.wants is not None and w.concerns(wanted) and fits(w.wants):
                    w.reserve()
                    return w
        return None

    def remove(self, waiter: Waiter) -> None:
        with self._lock:
            self._waiters.pop(waiter, None)

    def settled(self, key: Hashable, generation: int) -> None:
        """A claim for worker ``key`` that began at ``generation`` came back short."""
        with self._lock:
            self._settled[key] = (generation, time.monotonic())
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
            found = self._settled.get(key)
            if found is None or found[0] != self.generation:
                return 0.0
            return max(0.0, QUIET_SECONDS - (time.monotonic() - found[1]))

    def wake_all(self) -> None:
        """Wake every waiter (shutdown, a lost LISTEN, a retry that may be due). Any thread."""
        with self._lock:
            self.generation += 1
            targets = list(self._waiters)
        for waiter in targets:
            waiter.wake()

    def notify(self, queues: Collection[str] | None, *, exclude: Waiter | None = None) -> None:
        """Wake one idle waiter for these queues (None: any queue). Any thread."""
        wanted = None if queues is None else frozenset(queues)
        with self._lock:
            self.generation += 1
            chosen = next(
                (w for w in self._waiters if w is not exclude and not w.woken and w.concerns(wanted)), None
            )
            if chosen is not None:
                chosen.woken = True  # under the lock: two notifications pick two waiters
        if chosen is not None:
            chosen.wake()

    def local(self, queues: Collection[str] | None) -> None:
        """This process made work claimable. On PostgreSQL its NOTIFY will say so (waking
        here too would wake a second waiter for the same job); SQLite has no NOTIFY."""
        if self._url is None:
            self.notify(queues)
        else:
            with self._lock:
                self.generation += 1  # at once: its NOTIFY arrives a moment later

    def _listen(self) -> None:
        assert self._url is not None
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {QUEUE_CHANNEL}")
                    # Reconnected: whatever was announced meanwhile is lost, so wake everyone.
                    self.wake_all()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self.notify(_queues(note.payload))
            except psycopg.Error as exc:
                log.warning("LISTEN %s lost (waiters poll meanwhile): %s", QUEUE_CHANNEL, exc)
                self._stop.wait(RECONNECT_SECONDS)


def _queues(payload: Any) -> frozenset[str] | None:
    """The payload lists the queues that gained claimable work (empty: unknown)."""
    if not payload:
        return None
    return frozenset(str(payload).split(","))
