"""``WorkBroadcaster``'s wake-ups and hand-overs, on a real event loop (no database:
the in-process side only)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.http.waiter import Waiter
from adapters.http.waiting import (
    MAX_TOKENS,
    QUIET_KEYS,
    QUIET_SECONDS,
    RETURN_SECONDS,
    RETURNING_KEYS,
    WorkBroadcaster,
)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def broadcaster() -> WorkBroadcaster:
    return WorkBroadcaster(postgres_url=None, poll_seconds=5)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def handed_over(reserving: asyncio.Task[Any], w: Waiter[Any], budget: int) -> None:
    """``w`` begins to wait: the submit waiting in ``reserving`` reserves it with ``budget``,
    and ``w`` gets the job that submit delivers."""
    waiting = asyncio.create_task(w.wait(5))
    assert await asyncio.wait_for(reserving, 1) == (w, budget)
    w.deliver(["job"], budget)
    assert await asyncio.wait_for(waiting, 1) == ["job"]


def test_a_reserved_waiter_gets_what_the_submit_delivers() -> None:
    async def scenario() -> Any:
        b = broadcaster()
        with b.waiter(["q"], wants="worker-1") as w:
            waiting = asyncio.create_task(w.wait(5))
            await settle()
            assert b.reserve("q", lambda wants: wants == "worker-1") == (w, 1)
            w.deliver(["job"], 1)
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
            assert b.reserve("q", lambda _: True) == (w, 1)
            await asyncio.sleep(0.2)  # past the wait's timeout
            assert not waiting.done(), "the reserved wait returned before its delivery"
            w.deliver(["job"], 1)
            return await asyncio.wait_for(waiting, 1)

    assert run(scenario()) == ["job"]


def test_an_empty_delivery_lets_the_request_claim_as_usual() -> None:
    async def scenario() -> Any:
        b = broadcaster()
        with b.waiter(["q"], wants="w") as w:
            waiting = asyncio.create_task(w.wait(5))
            await settle()
            assert b.reserve("q", lambda _: True) == (w, 1)
            w.deliver([], 1)
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
            assert b.reserve("q", lambda wants: wants == "acme") == (busy, 1)
            # Reserved for all it asked for: neither a second submit nor a notification takes it
            assert b.reserve("q", lambda wants: wants == "acme") is None
            b.notify(["q"])
            await settle()
            assert not waiting.done()
            busy.deliver([], 1)
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
            assert b.reserve("q", lambda _: True) == (first, 1)
            assert b.reserve("q", lambda _: True) == (second, 1)
            first.deliver([1], 1)
            second.deliver([2], 1)
            assert [await t for t in tasks] == [[1], [2]]

    run(scenario())


def test_a_shutdown_does_not_abandon_a_reserved_waiter() -> None:
    async def scenario() -> Any:
        b = broadcaster()
        with b.waiter(["q"], wants="w") as w:
            waiting = asyncio.create_task(w.wait(5))
            await settle()
            assert b.reserve("q", lambda _: True) == (w, 1)
            b.begin_shutdown()
            await settle()
            assert not waiting.done()
            w.deliver(["job"], 1)
            return await asyncio.wait_for(waiting, 1)

    assert run(scenario()) == ["job"]


def test_a_request_for_several_jobs_is_shared_by_submits_within_what_it_asked_for() -> None:
    """Submits arriving together all hand over to one waiting request: each reservation
    gets half of the room left (at least one), so the budgets add up to its max_jobs."""

    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=4) as w:
            waiting = asyncio.create_task(w.wait(5))
            await settle()
            budgets = [b.reserve("q", lambda _: True) for _ in range(4)]
            assert budgets == [(w, 2), (w, 1), (w, 1), None]
            # The first delivery does not answer while the others are still claiming
            w.deliver(["a", "b"], 2)
            await settle()
            assert not waiting.done() and not w.reservable
            w.deliver([], 1)
            await settle()
            assert not waiting.done()
            w.deliver(["c"], 1)
            assert await asyncio.wait_for(waiting, 1) == ["a", "b", "c"]

    run(scenario())


def test_a_delivery_with_a_job_closes_the_request_to_new_submits() -> None:
    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=8) as w:
            waiting = asyncio.create_task(w.wait(5))
            await settle()
            assert b.reserve("q", lambda _: True) == (w, 4)
            w.deliver(["a"], 4)
            # Room is left, but it is answering now: the next submit goes elsewhere
            assert b.reserve("q", lambda _: True) is None
            assert await asyncio.wait_for(waiting, 1) == ["a"]

    run(scenario())


def test_empty_deliveries_leave_the_request_waiting_and_give_their_budget_back() -> None:
    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=2) as w:
            waiting = asyncio.create_task(w.wait(0.3))
            await settle()
            assert b.reserve("q", lambda _: True) == (w, 1)
            assert b.reserve("q", lambda _: True) == (w, 1)
            w.deliver([], 1)
            await settle()
            assert not waiting.done() and w.reserved == 1
            w.deliver([], 1)
            # Everything delivered and nothing brought: it claims as usual
            assert await asyncio.wait_for(waiting, 1) is None

    run(scenario())


def test_a_submit_prefers_a_request_nobody_holds() -> None:
    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(None, wants="a", capacity=4) as first, b.waiter(None, wants="b", capacity=4) as second:
            tasks = [asyncio.create_task(w.wait(5)) for w in (first, second)]
            await settle()
            # The work spreads over the workers before any of them takes a second submit
            assert b.reserve("q", lambda _: True) == (first, 2)
            assert b.reserve("q", lambda _: True) == (second, 2)
            assert b.reserve("q", lambda _: True) == (first, 1)
            first.deliver([1], 2)
            first.deliver([2], 1)
            second.deliver([3], 2)
            assert [await t for t in tasks] == [[1, 2], [3]]

    run(scenario())


def test_a_held_request_is_not_woken_by_notifications() -> None:
    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(None, wants="a", capacity=4) as held, b.waiter(None, wants="b") as free:
            tasks = [asyncio.create_task(w.wait(5)) for w in (held, free)]
            await settle()
            assert b.reserve("q", lambda wants: wants == "a") == (held, 2)
            b.notify(["q"])
            await settle()
            assert free.woken and not held.woken
            held.deliver([1], 2)
            assert await asyncio.wait_for(tasks[0], 1) == [1]
            assert await asyncio.wait_for(tasks[1], 1) is None

    run(scenario())


def test_a_short_claim_settles_its_worker_for_a_moment() -> None:
    b = broadcaster()
    b.settled("w1")
    assert 0 < b.quiet_for("w1") <= QUIET_SECONDS
    assert b.quiet_for("w2") == 0  # another worker


def test_an_announcement_ends_a_settled_workers_quiet_wait() -> None:
    """The quiet is a wait like any other: whatever is announced before or during it
    (a notification, a local write, a wake-up) ends it at once."""

    async def scenario() -> None:
        for announce in (
            lambda b: b.notify(["q"]),
            lambda b: b.local(["q"]),
            lambda b: b.wake_all(),
        ):
            b = broadcaster()
            with b.waiter(["q"]) as w:
                waiting = asyncio.create_task(w.wait(5))
                await settle()
                announce(b)
                assert await asyncio.wait_for(waiting, 1) is None
                assert w.woken

    run(scenario())


def test_an_announcement_nobody_waits_for_is_kept_for_the_next_waiter() -> None:
    """Announced while the only request claims (or between two polls): it is not lost,
    and the next wait for those queues takes it and returns at once."""

    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"]) as claiming, b.waiter(["other"]) as elsewhere:
            b.notify(["q"])  # nobody idle: kept
            assert b.tokens == 1
            other = asyncio.create_task(elsewhere.wait(0.2))
            await settle()
            assert b.tokens == 1, "a waiter for other queues does not take it"
            started = time.monotonic()
            assert await asyncio.wait_for(claiming.wait(5), 1) is None
            assert claiming.woken and time.monotonic() - started < 0.5
            assert b.tokens == 0
            assert await other is None and not elsewhere.woken

    run(scenario())


def test_an_idle_waiter_is_woken_and_nothing_is_kept() -> None:
    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(None) as w:
            waiting = asyncio.create_task(w.wait(5))
            await settle()
            b.notify(["q"])
            assert await asyncio.wait_for(waiting, 1) is None
            assert b.tokens == 0

    run(scenario())


def test_a_full_claim_hands_its_wake_up_on_and_an_empty_one_only_to_someone_idle() -> None:
    b = broadcaster()

    async def scenario() -> None:
        with b.waiter(["q"]) as w:
            w.pass_on(keep=False)  # an empty claim, nobody idle: nothing kept
            assert b.tokens == 0
            w.pass_on(keep=True)  # a full one: kept for the next waiter
            assert b.tokens == 1

    run(scenario())


def test_announcements_for_the_same_queues_are_kept_once() -> None:
    """A claim sees every job committed before it: a burst of announcements nobody was
    idle for costs one claim, not one per job."""
    b = broadcaster()
    for _ in range(5):
        b.notify(["q"])
    b.notify(["other"])
    b.notify(["q"])
    assert b.tokens == 2


def test_kept_announcements_are_bounded() -> None:
    b = broadcaster()
    for n in range(MAX_TOKENS + 10):
        b.notify([f"q{n}"])
    assert b.tokens == MAX_TOKENS


def test_the_quiet_ends_on_its_own_and_a_full_claim_ends_it_at_once() -> None:
    b = broadcaster()
    b.settled("w1")
    b.unsettled("w1")
    assert b.quiet_for("w1") == 0
    b.settled("w1")
    time.sleep(QUIET_SECONDS + 0.02)
    assert b.quiet_for("w1") == 0


def test_on_postgres_a_local_write_leaves_the_announcement_to_its_notify() -> None:
    b = WorkBroadcaster(postgres_url="postgresql://unused", poll_seconds=5)  # never started
    b.local(["q"])
    assert b.tokens == 0


def test_settled_workers_are_bounded() -> None:
    b = broadcaster()
    for n in range(QUIET_KEYS + 5):
        b.settled(n)
    assert b.quiet_for(0) == 0 and b.quiet_for(QUIET_KEYS + 4) > 0


def test_a_stream_takes_each_delivery_at_once_and_stays_reservable_for_the_rest() -> None:
    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=4, stream=True) as w:
            waiting = asyncio.create_task(w.wait(5))
            await settle()
            assert b.reserve("q", lambda _: True) == (w, 2)
            assert b.reserve("q", lambda _: True) == (w, 1)
            # The first delivery is answered at once, the other reservation still out
            w.deliver(["a"], 2)
            assert await asyncio.wait_for(waiting, 1) == ["a"]
            assert w.capacity == 3 and w.reserved == 1
            # Waiting again, it has room for the unused budget: 3 given at most, 1 promised
            waiting = asyncio.create_task(w.wait(5))
            await settle()
            assert w.reservable and w.room == 2
            assert b.reserve("q", lambda _: True) == (w, 1)
            w.deliver(["b"], 1)
            assert await asyncio.wait_for(waiting, 1) == ["b"]
            assert w.capacity == 2 and w.reserved == 1

    run(scenario())


def test_a_stream_ending_waits_for_its_outstanding_reservations() -> None:
    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=2, stream=True) as w:
            waiting = asyncio.create_task(w.wait(0.05))
            await settle()
            assert b.reserve("q", lambda _: True) == (w, 1)
            assert await waiting is None  # its wait ended with the submit still claiming
            draining = asyncio.create_task(w.drain())
            await asyncio.sleep(0.1)
            assert not draining.done(), "the stream ended before the submit delivered"
            w.deliver(["late"], 1)
            assert await asyncio.wait_for(draining, 1) == ["late"]

    run(scenario())


def test_budgets_never_promise_more_than_the_capacity() -> None:
    """Whatever the order of reservations and deliveries, what a waiter may be given
    (the budgets outstanding plus what it was given) stays within its max_jobs."""

    async def scenario() -> None:
        for capacity in range(1, 9):
            b = broadcaster()
            with b.waiter(None, wants="w", capacity=capacity, stream=True) as w:
                waiting = asyncio.create_task(w.wait(5))
                await settle()
                budgets = []
                while (reserved := b.reserve("q", lambda _: True)) is not None:
                    budgets.append(reserved[1])
                assert sum(budgets) == capacity, (capacity, budgets)
                assert budgets[0] == (capacity + 1) // 2
                for budget in budgets:
                    w.deliver(["job"] * budget, budget)
                got = await asyncio.wait_for(waiting, 1) or []
                got += await w.drain()
                assert len(got) == capacity

    run(scenario())


def test_a_reservation_between_a_delivery_and_its_pick_up_counts_the_delivered_jobs() -> None:
    """A delivery wakes the stream, but until the stream runs again it is still waiting
    and reservable: a submit arriving in between must not be promised the slots the
    delivered jobs took (the worker would be sent more jobs than it asked for)."""

    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=4, stream=True) as w:
            waiting = asyncio.create_task(w.wait(5))
            await settle()
            assert b.reserve("q", lambda _: True) == (w, 2)
            assert b.reserve("q", lambda _: True) == (w, 1)
            w.deliver(["a", "b"], 2)  # the stream has not picked them up yet
            assert w.capacity == 2 and w.room == 1
            assert b.reserve("q", lambda _: True) == (w, 1)
            assert b.reserve("q", lambda _: True) is None
            w.deliver(["c"], 1)
            w.deliver(["d"], 1)
            got = await asyncio.wait_for(waiting, 1)
            assert got == ["a", "b", "c", "d"] and w.capacity == 0

    run(scenario())


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 8), steps=st.lists(st.tuples(st.booleans(), st.integers(0, 8)), max_size=30))
def test_no_order_of_reservations_and_deliveries_gives_a_request_more_than_it_asked_for(
    capacity: int, steps: list[tuple[bool, int]]
) -> None:
    """Reservations and deliveries (each of up to its budget, the stream not running in
    between): what was delivered plus what is still promised never exceeds max_jobs."""

    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=capacity, stream=True) as w:
            waiting = asyncio.create_task(w.wait(5))
            await settle()
            held: list[int] = []
            delivered = 0
            for reserve, n in steps:
                if reserve or not held:
                    got = b.reserve("q", lambda _: True)
                    if got is not None:
                        held.append(got[1])
                else:
                    budget = held.pop(0)
                    jobs = min(n, budget)
                    w.deliver(["job"] * jobs, budget)
                    delivered += jobs
                assert delivered + sum(held) <= capacity, (delivered, held)
            for budget in held:
                w.deliver([], budget)
            waiting.cancel()

    run(scenario())


def test_a_submit_waits_for_a_request_busy_in_its_own_claim_instead_of_queueing() -> None:
    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=2) as w:
            w.claiming = True  # between its waits: claiming for itself
            reserving = asyncio.create_task(b.reserve_soon("q", lambda _: True, 1.0))
            await asyncio.sleep(0.05)
            assert not reserving.done(), "it gave up on a request that waits again in a moment"
            w.claiming = False
            await handed_over(reserving, w, 1)

    run(scenario())


def test_a_submit_waits_for_a_request_whose_room_is_all_promised_to_hand_overs_in_flight() -> None:
    """Each hand-over holds part of the request's room until it delivers, and gives back
    what it did not use: a submit arriving meanwhile waits for that rather than queue its
    job (a queued job costs a claim of its own, during which the next submits find the
    request busy again)."""

    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=1, stream=True) as w:
            first = asyncio.create_task(w.wait(5))
            await settle()
            assert b.reserve("q", lambda _: True) == (w, 1)  # all its room, promised
            reserving = asyncio.create_task(b.reserve_soon("q", lambda _: True, 1.0))
            await asyncio.sleep(0.05)
            assert not reserving.done(), "it queued the job while a hand-over held the request's room"
            w.deliver([], 1)  # the first hand-over claimed nothing for it: its room is back
            assert await asyncio.wait_for(first, 1) is None
            await handed_over(reserving, w, 1)

    run(scenario())


def test_a_submit_waits_for_promised_room_no_longer_than_its_bound() -> None:
    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=1, stream=True) as w:
            waiting = asyncio.create_task(w.wait(5))
            await settle()
            assert b.reserve("q", lambda _: True) == (w, 1)
            started = time.monotonic()
            assert await b.reserve_soon("q", lambda _: True, 0.1) is None
            assert 0.08 < time.monotonic() - started < 1
            started = time.monotonic()
            assert await b.reserve_soon("q", lambda wants: wants == "other", 1.0) is None
            assert time.monotonic() - started < 0.05, "it waited for a request that could not take the job"
            w.deliver([], 1)
            assert await asyncio.wait_for(waiting, 1) is None

    run(scenario())


def test_a_submit_waits_no_longer_than_its_bound_nor_for_requests_that_do_not_fit() -> None:
    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w") as w:
            w.claiming = True
            started = time.monotonic()
            assert await b.reserve_soon("q", lambda _: True, 0.1) is None
            assert 0.08 < time.monotonic() - started < 1
            started = time.monotonic()
            assert await b.reserve_soon("q", lambda wants: wants == "other", 1.0) is None
            assert await b.reserve_soon("elsewhere", lambda _: True, 1.0) is None
            assert time.monotonic() - started < 0.05, "it waited for a request that could not take the job"

    run(scenario())


def test_a_request_about_to_be_handed_a_job_leaves_the_kept_announcement_for_later() -> None:
    """Taking the token would start another claim and the waiting submit would find the
    request busy again; its hand-over's claim takes the queued jobs anyway."""

    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=2) as w:
            w.claiming = True
            b.notify(["q"])  # announced while it claims: kept
            reserving = asyncio.create_task(b.reserve_soon("q", lambda _: True, 1.0))
            await settle()
            w.claiming = False
            waiting = asyncio.create_task(w.wait(5))
            assert await asyncio.wait_for(reserving, 1) == (w, 1)
            assert b.tokens == 1 and not w.woken
            w.deliver(["job"], 1)
            assert await asyncio.wait_for(waiting, 1) == ["job"]
            # With no submit waiting, its next wait takes the token and claims
            assert await asyncio.wait_for(w.wait(5), 1) is None and w.woken and b.tokens == 0

    run(scenario())


def test_a_submit_waits_for_a_worker_between_two_streams_and_hands_its_job_to_the_next() -> None:
    """A claim stream given all it asked for ends; its worker opens the next one as soon as
    it has read the end. A job queued meanwhile would cost that worker a claim of its own."""

    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=1, stream=True, key="worker") as first:
            first.took(1)  # filled
        reserving = asyncio.create_task(b.reserve_soon("q", lambda _: True, 1.0))
        await asyncio.sleep(0.02)
        assert not reserving.done(), "it sent the job to the queue while the worker was coming back"
        with b.waiter(["q"], wants="w", capacity=4, stream=True, key="worker") as second:
            await handed_over(reserving, second, 2)

    run(scenario())


def test_a_submit_does_not_wait_for_a_worker_whose_stream_ended_short_or_long_ago() -> None:
    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=2, stream=True, key="short"):
            pass  # its wait ended with room left: not coming back at once
        with b.waiter(["q"], wants="w", capacity=1, key="poll") as poll:
            poll.took(1)  # a plain long poll: not a stream
        with b.waiter(["q"], wants="w", capacity=1, stream=True) as unknown:
            unknown.took(1)  # no worker key
        with b.waiter(["q3"], wants="w", capacity=1, stream=True, key="other-queue") as elsewhere:
            elsewhere.took(1)
        started = time.monotonic()
        assert await b.reserve_soon("q2", lambda _: True, 1.0) is None
        assert await b.reserve_soon("q", lambda _: True, 1.0) is None
        assert time.monotonic() - started < 0.05, "it waited for a worker that is not coming back"

        with b.waiter(["q"], wants="w", capacity=1, stream=True, key="filled") as filled:
            filled.took(1)
        started = time.monotonic()
        assert await b.reserve_soon("q", lambda wants: wants == "other", 1.0) is None
        assert time.monotonic() - started < 0.05, "it waited for a worker that could not take the job"
        assert await b.reserve_soon("q", lambda _: True, 0.05) is None  # waits no longer than its bound
        await asyncio.sleep(RETURN_SECONDS)
        started = time.monotonic()
        assert await b.reserve_soon("q", lambda _: True, 1.0) is None
        assert time.monotonic() - started < 0.05, "it waited for a worker that did not come back in time"

    run(scenario())


def test_a_submit_waits_for_a_worker_whose_refilled_stream_reached_its_deadline_with_room() -> None:
    """A refilled stream stays open job after job until its deadline; its worker then opens
    the next one at once. A job queued in between would cost that worker a claim of its
    own, and the next hand-overs a missed guess."""

    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=2, stream=True, key="worker", refill=True) as first:
            first.expired = True
        reserving = asyncio.create_task(b.reserve_soon("q", lambda _: True, 1.0))
        await asyncio.sleep(0.02)
        assert not reserving.done(), "it sent the job to the queue while the worker was coming back"
        with b.waiter(["q"], wants="w", capacity=2, stream=True, key="worker", refill=True) as second:
            await handed_over(reserving, second, 1)

    run(scenario())


def test_a_submit_does_not_wait_for_a_refilled_stream_that_ended_before_its_deadline_or_roomless() -> None:
    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=2, stream=True, key="gone", refill=True):
            pass  # ended before its deadline (its worker went away, or stopped)
        with b.waiter(["q"], wants="w", capacity=1, stream=True, key="busy", refill=True) as busy:
            busy.took(1)
            busy.expired = True  # at its deadline with no room: its worker asks again when a slot frees
        started = time.monotonic()
        assert await b.reserve_soon("q", lambda _: True, 1.0) is None
        assert time.monotonic() - started < 0.05, "it waited for a worker that is not coming back at once"

    run(scenario())


def test_a_shutting_down_server_expects_no_worker_back() -> None:
    async def scenario() -> None:
        b = broadcaster()
        b.begin_shutdown()
        with b.waiter(["q"], wants="w", capacity=1, stream=True, key="worker") as w:
            w.took(1)
        started = time.monotonic()
        assert await b.reserve_soon("q", lambda _: True, 1.0) is None
        assert time.monotonic() - started < 0.05

    run(scenario())


def test_workers_expected_back_are_bounded() -> None:
    async def scenario() -> None:
        b = broadcaster()
        for i in range(RETURNING_KEYS + 5):
            with b.waiter(["q"], wants="w", capacity=1, stream=True, key=i) as w:
                w.took(1)
        assert len(b._returning) == RETURNING_KEYS and 0 not in b._returning

    run(scenario())


def test_a_wake_up_given_to_a_request_that_ends_without_claiming_is_passed_on() -> None:
    """A notification in the moment between a delivery that fills a stream and its
    resumption: the stream ends without claiming, so the announced job must not go with
    it (and wait for somebody's next poll). A stream with no room is not picked at all
    now; the announcement is kept for the next waiter."""

    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="other", capacity=1) as other:
            other.claiming = True  # busy: not idle, so the notification picks the stream
            with b.waiter(["q"], wants="w", capacity=1, stream=True) as w:
                waiting = asyncio.create_task(w.wait(5))
                await settle()
                assert b.reserve("q", lambda wants: wants == "w") == (w, 1)
                w.deliver(["job"], 1)  # fills it
                b.notify(["q"])  # before it resumes: still idle, but with no room
                assert not w.woken
                assert await asyncio.wait_for(waiting, 1) == ["job"]
            assert b.tokens == 1, "the announcement went with the stream that ended"
            other.claiming = False
            assert await asyncio.wait_for(other.wait(5), 1) is None and other.woken

    run(scenario())


def test_a_wake_up_not_yet_acted_on_is_never_slept_through() -> None:
    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=4, stream=True) as w:
            waiting = asyncio.create_task(w.wait(5))
            await settle()
            assert b.reserve("q", lambda _: True) == (w, 2)
            w.deliver(["job"], 2)
            b.notify(["q"])
            assert await asyncio.wait_for(waiting, 1) == ["job"]
            started = time.monotonic()
            assert await asyncio.wait_for(w.wait(5), 1) is None  # claim now
            assert time.monotonic() - started < 0.5

    run(scenario())


def test_a_refilled_stream_with_no_room_is_neither_woken_nor_given_a_token() -> None:
    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=1, stream=True, refill=True) as w:
            w.took(1)  # its one slot's job: no room
            waiting = asyncio.create_task(w.wait(0.2))
            await settle()
            b.notify(["q"])
            assert not w.woken and b.tokens == 1, "a request with no room was woken to claim"
            assert await asyncio.wait_for(waiting, 1) is None
            assert b.tokens == 1, "a request with no room took the kept announcement"

    run(scenario())


def test_room_given_to_a_stream_makes_it_reservable_and_wakes_it_only_for_announced_work() -> None:
    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=1, stream=True, key="k", refill=True) as w:
            w.took(1)
            b.settled("k")  # its last claim was short: nothing else queued for it
            waiting = asyncio.create_task(w.wait(5))
            await settle()
            assert b.reserve("q", lambda _: True) is None  # no room
            # A submit waiting for a request to be free is answered when room comes
            reserving = asyncio.create_task(b.reserve_soon("q", lambda _: True, 1.0))
            await settle()
            assert w.add_room(1, 100) == 1
            b.room_added(w)
            assert not w.woken, "room alone woke it to claim (an empty claim per freed slot)"
            assert await asyncio.wait_for(reserving, 1) == (w, 1)
            w.deliver(["job"], 1)
            assert await asyncio.wait_for(waiting, 1) == ["job"]

            # With work announced while it had no room, room wakes it to claim
            waiting = asyncio.create_task(w.wait(5))
            await settle()
            b.notify(["q"])
            assert b.tokens == 1
            w.add_room(1, 100)
            b.room_added(w)
            assert w.woken and b.tokens == 0
            assert await asyncio.wait_for(waiting, 1) is None  # it claims

    run(scenario())


def test_room_wakes_a_stream_whose_last_claim_came_back_full() -> None:
    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=2, stream=True, key="k", refill=True) as w:
            w.took(2)
            b.unsettled("k")  # it took all it asked for: more may be queued
            waiting = asyncio.create_task(w.wait(5))
            await settle()
            w.add_room(1, 100)
            b.room_added(w)
            assert w.woken
            assert await asyncio.wait_for(waiting, 1) is None

    run(scenario())


def test_room_is_capped() -> None:
    async def scenario() -> None:
        b = broadcaster()
        with b.waiter(["q"], wants="w", capacity=90, stream=True, refill=True) as w:
            assert w.add_room(50, 100) == 100

    run(scenario())


def test_submits_spread_over_streams_that_stay_open() -> None:
    """Refilled streams never end: the first one registered must not take every job."""

    async def scenario() -> None:
        b = broadcaster()
        with (
            b.waiter(["q"], wants="a", capacity=100, stream=True, refill=True) as first,
            b.waiter(["q"], wants="b", capacity=100, stream=True, refill=True) as second,
        ):
            tasks = [asyncio.create_task(first.wait(5)), asyncio.create_task(second.wait(5))]
            await settle()
            chosen = []
            for _ in range(4):
                found = b.reserve("q", lambda _: True)
                assert found is not None
                w, budget = found
                w.deliver(["job"], budget)
                chosen.append(w.wants)
            assert chosen == ["a", "b", "a", "b"]
            for t in tasks:
                t.cancel()

    run(scenario())
