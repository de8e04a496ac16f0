"""``WorkBroadcaster``'s wake-ups and hand-overs, on a real event loop (no database:
the in-process side only)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from adapters.http.waiting import QUIET_KEYS, QUIET_SECONDS, WorkBroadcaster


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def broadcaster() -> WorkBroadcaster:
    return WorkBroadcaster(postgres_url=None, poll_seconds=5)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_reserved_waiter_gets_what_the_submit_delivers() -> None:
    async def scenario() -> Any:
        b = broadcaster()
        with b.waiter(["q"], wants="worker-1") as w:
            waiting = asyncio.create_task(w.wait(5))
            await settle()
            chosen = b.reserve("q", lambda wants: wants == "worker-1")
            assert chosen is w
            chosen.deliver(["job"])
            return await asyncio.wait_for(waiting, 1)

    assert run(scenario()) == ["job"]


def test_a_delivery_after_the_waits_timeout_still_arrives() -> None:
    """The wait ends on its own while the submit is still in its transaction: it must
    wait for the delivery, or what the submit claimed for it would be lost."""

    async def scenario() -> Any:
        b = broadcaster()
        with b.waiter(["q"], wants="w") as w:
            waiting = asyncio.create_task(w.wait(0.05))
            await settle()
            assert b.reserve("q", lambda _: True) is w
            await asyncio.sleep(0.2)  # past the wait's timeout
            assert not waiting.done(), "the reserved wait returned before its delivery"
            w.deliver(["job"])
            return await asyncio.wait_for(waiting, 1)

    assert run(scenario()) == ["job"]


def test_an_empty_delivery_lets_the_request_claim_as_usual() -> None:
    async def scenario() -> Any:
        b = broadcaster()
        with b.waiter(["q"], wants="w") as w:
            waiting = asyncio.create_task(w.wait(5))
            await settle()
            reserved = b.reserve("q", lambda _: True)
            assert reserved is not None
            reserved.deliver([])
            return await asyncio.wait_for(waiting, 1)

    assert run(scenario()) is None


def test_only_idle_fitting_waiters_for_the_queue_are_reserved() -> None:
    async def scenario() -> None:
        b = broadcaster()
        with (
            b.waiter(["q"], wants="acme") as busy,
            b.waiter(["other"], wants="acme") as elsewhere,
            b.waiter(["q"]) as anonymous,
            b.waiter(["q"], wants="globex") as other_tenant,
        ):
            tasks = [asyncio.create_task(w.wait(5)) for w in (elsewhere, anonymous, other_tenant)]
            await settle()
            # ``busy`` is not waiting (it is claiming); the others do not fit
            assert b.reserve("q", lambda wants: wants == "acme") is None
            assert not busy.idle
            waiting = asyncio.create_task(busy.wait(5))
            await settle()
            assert b.reserve("q", lambda wants: wants == "acme") is busy
            # Reserved: neither a second submit nor a notification takes it
            assert b.reserve("q", lambda wants: wants == "acme") is None
            b.notify(["q"])
            await settle()
            assert not waiting.done()
            busy.deliver([])
            assert await asyncio.wait_for(waiting, 1) is None
            for t in tasks:
                t.cancel()

    run(scenario())


def test_the_longest_waiting_request_is_reserved_first() -> None:
    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(None, wants="a") as first, b.waiter(None, wants="b") as second:
            tasks = [asyncio.create_task(w.wait(5)) for w in (first, second)]
            await settle()
            assert b.reserve("q", lambda _: True) is first
            assert b.reserve("q", lambda _: True) is second
            first.deliver([1])
            second.deliver([2])
            assert [await t for t in tasks] == [[1], [2]]

    run(scenario())


def test_a_shutdown_does_not_abandon_a_reserved_waiter() -> None:
    async def scenario() -> Any:
        b = broadcaster()
        with b.waiter(["q"], wants="w") as w:
            waiting = asyncio.create_task(w.wait(5))
            await settle()
            assert b.reserve("q", lambda _: True) is w
            b.begin_shutdown()
            await settle()
            assert not waiting.done()
            w.deliver(["job"])
            return await asyncio.wait_for(waiting, 1)

    assert run(scenario()) == ["job"]


def test_a_short_claim_settles_its_worker_until_anything_is_announced() -> None:
    b = broadcaster()
    b.settled("w1", b.generation)
    assert 0 < b.quiet_for("w1") <= QUIET_SECONDS
    assert b.quiet_for("w2") == 0  # another worker
    for announce in (lambda: b.notify(["q"]), lambda: b.local(["q"]), b.wake_all):
        b.settled("w1", b.generation)
        announce()
        assert b.quiet_for("w1") == 0, "a new generation must end the quiet"


def test_a_claim_that_began_before_an_announcement_settles_nothing() -> None:
    b = broadcaster()
    began = b.generation
    b.notify(None)  # work announced while the claim ran: it may not have seen it
    b.settled("w1", began)
    assert b.quiet_for("w1") == 0


def test_the_quiet_ends_on_its_own_and_a_full_claim_ends_it_at_once() -> None:
    b = broadcaster()
    b.settled("w1", b.generation)
    b.unsettled("w1")
    assert b.quiet_for("w1") == 0
    b.settled("w1", b.generation)
    time.sleep(QUIET_SECONDS + 0.02)
    assert b.quiet_for("w1") == 0


def test_on_postgres_a_local_write_moves_the_generation_at_once() -> None:
    b = WorkBroadcaster(postgres_url="postgresql://unused", poll_seconds=5)  # never started
    b.settled("w1", b.generation)
    b.local(["q"])
    assert b.quiet_for("w1") == 0


def test_settled_workers_are_bounded() -> None:
    b = broadcaster()
    for n in range(QUIET_KEYS + 5):
        b.settled(n, b.generation)
    assert b.quiet_for(0) == 0 and b.quiet_for(QUIET_KEYS + 4) > 0
