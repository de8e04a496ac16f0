"""``Waiter``: one waiting claim request, as the ``WorkBroadcaster`` sees it.

A plain long poll (``POST /v1/claim`` with ``wait_seconds``) answers with the first
jobs it is given; a claim stream (``POST /v1/claim/stream``) goes on waiting after each
delivery until it has been given ``capacity`` jobs. Either may be woken (a notification,
a token, a wake-up: it then claims), or reserved by submits that claim for it inside
their own transactions and ``deliver`` what they took (see ``waiting.py``).

Budgets: each reservation may claim at most ``budget`` jobs, half of what the request
has room for beyond the budgets already promised (at least one), so that the jobs it is
given never add up to more than it asked for. A delivery gives back the part of its
budget it did not use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Hashable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from adapters.http.waiting import WorkBroadcaster

W = TypeVar("W")


class Waiter(Generic[W]):
    def __init__(
        self,
        broadcaster: WorkBroadcaster,
        queues: Collection[str] | None,
        wants: W | None = None,
        capacity: int = 1,
        *,
        stream: bool = False,
        key: Hashable | None = None,
        refill: bool = False,
    ):
        self._broadcaster = broadcaster
        self.refill = stream and refill
        """A stream its worker gives room as handler slots free (``add_room``): it stays
        open with no room, for a moment, instead of ending once given ``capacity`` jobs."""
        self.key = key
        """The worker asking (the broadcaster's ``settled`` key; None: unknown)."""
        self.queues = None if queues is None else frozenset(queues)
        self.wants = wants
        """What the waiting request would claim (the API's; None: not reservable)."""
        self.capacity = capacity
        """Jobs it may still be given (its ``max_jobs``, less what it was given)."""
        self.stream = stream
        """A stream waits on after a delivery; a plain long poll answers with it."""
        self.expired = False
        """Its request reached its deadline (a refilled stream that still had room: its
        worker opens the next one at once, ``WorkBroadcaster.remove``)."""
        self._loop = asyncio.get_running_loop()
        self._signalled = False
        """Woken or given jobs since its last wait began: the next wait returns at once."""
        self._future: asyncio.Future[None] | None = None
        """What the current wait awaits (a bare future: the waiting request resumes in
        the loop's very next turn, ahead of the submit that woke it)."""
        self.woken = False
        """Woken and not yet back to waiting: the next wake-up goes to someone else."""
        self.idle = False
        """Inside ``wait``: it may be reserved."""
        self.claiming = False
        """In a claim of its own: it waits again in a moment (``WorkBroadcaster.reserve``
        may wait for that)."""
        self.reserved = 0
        """Submits holding it that have not delivered yet."""
        self._promised = 0
        """The budgets of those reservations, together."""
        self._none_reserved = asyncio.Event()
        self._none_reserved.set()
        self._handed: list[Any] = []
        self._answering = False
        """A plain long poll was given jobs: it takes no new reservation and answers
        once the ones it has delivered."""

    def concerns(self, queues: frozenset[str] | None) -> bool:
        return queues is None or self.queues is None or not self.queues.isdisjoint(queues)

    @property
    def room(self) -> int:
        """Jobs it may claim itself now: what no reservation was promised."""
        return self.capacity - self._promised

    @property
    def reservable(self) -> bool:
        return (
            self.idle
            and not self.woken
            and not self._answering
            and self.wants is not None
            and self._promised < self.capacity
        )

    @property
    def wakeable(self) -> bool:
        """Free for a notification: nobody woke it, no submit is bringing it work, and it
        has room (a refilled stream may have none for a moment)."""
        return not self.woken and not self.reserved and not self._answering and self.room > 0

    def wake(self) -> None:
        """Any thread."""
        self.woken = True
        self._loop.call_soon_threadsafe(self._signal)

    def _signal(self) -> None:
        self._signalled = True
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    async def wait(self, timeout: float) -> list[Any] | None:
        """Until woken (since the last wait, or by a token kept for it), given jobs, or
        ``timeout``, whichever comes first: the jobs it was given (None: none, claim as
        usual). A plain long poll given jobs first waits for every reservation still
        outstanding (past ``timeout`` too: what those claim is leased to it)."""
        if self._broadcaster._idle(self) or self.woken:
            # Woken and not yet claimed (a delivery came with the wake-up): claim now.
            self._signalled = True
        try:
            if not self._signalled and timeout > 0:
                future = self._future = self._loop.create_future()
                expiry = self._loop.call_later(timeout, _resolve, future)
                try:
                    await future
                finally:
                    expiry.cancel()
                    self._future = None
        finally:
            self.idle = False  # from here on nobody may reserve it
            self._signalled = False
        if not self.stream:
            await self._none_reserved.wait()
        return self._take() or None

    async def drain(self) -> list[Any]:
        """The request ends: wait for the reservations still outstanding (what they
        claim is leased to it), and what they bring."""
        await self._none_reserved.wait()
        return self._take()

    def add_room(self, count: int, limit: int) -> int:
        """Its worker freed ``count`` handler slots (a refilled stream): it may be given
        that many more jobs, ``limit`` at most in all. The room it now has. On the loop."""
        self.capacity = min(self.capacity + count, limit)
        return self.room

    def took(self, count: int) -> None:
        """It claimed ``count`` jobs itself."""
        self.capacity -= count

    def _take(self) -> list[Any]:
        handed, self._handed = self._handed, []
        self._answering = False
        return handed

    def reserve(self) -> int:
        """Taken by one more submit (called under the broadcaster's lock, on the loop),
        which must ``deliver``: its budget, the most jobs its hand-over may claim."""
        budget = max(1, (self.capacity - self._promised + 1) // 2)
        self._promised += budget
        self.reserved += 1
        self._none_reserved.clear()
        return budget

    def deliver(self, jobs: list[Any], budget: int) -> None:
        """A reserving submit is done: hand over what it claimed here ([] for nothing)
        and give back the rest of its ``budget``. On the event loop."""
        self.reserved -= 1
        self._promised -= budget
        # Counted at once, not when the request picks them up: a submit may reserve in
        # between, and its budget must come out of what is really left.
        self.capacity -= len(jobs)
        self._handed += jobs
        if jobs and not self.stream:
            self._answering = True
        if not self.reserved:
            self._none_reserved.set()
        if jobs or not self.reserved:
            self._signal()

    def rest(self) -> None:
        """Back to waiting (after a claim): eligible for the next wake-up again."""
        self.woken = False

    def pass_on(self, *, keep: bool) -> None:
        """Hand a wake-up to another waiter for the same queues (see ``waiting.py``);
        ``keep``: as a token if none is idle."""
        self._broadcaster.notify(self.queues, exclude=self, keep=keep)

    def close(self) -> None:
        self._broadcaster.remove(self)
        if self.woken:
            # Ending with a wake-up it never claimed for (a delivery filled it, or its
            # plain long poll answered with it, in the moment the wake-up chose it):
            # whatever was announced is still claimable, so hand it on, kept if
            # nobody is idle.
            self.pass_on(keep=True)

    def __enter__(self) -> Waiter[W]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
