"""Room for a refilled stream that another server process holds (``room_relay.py``): on
PostgreSQL the process a room request reaches forwards it (202), and the process holding
the stream gives it to the stream, after the same check of the worker's identity. Two
servers on one database here, as ``serve --processes 2`` or two hosts would be."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.bootstrap import Settings
from adapters.http.app import ApiConfig
from adapters.http.room_relay import TAG_CHARS, ForwardedRoom, RoomRelay
from coordinator.identity import Role
from tests.http.live import LiveServer, serve
from tests.http.test_claim_streams import wait_for
from tests.http.test_refilled_streams import full_stream, submit


@pytest.fixture
def two_servers(pg_database: str) -> Iterator[tuple[LiveServer, LiveServer]]:
    settings = Settings(database_url=pg_database, pool_size=2, max_overflow=6)
    config = ApiConfig(refill_idle_seconds=3, poll_seconds=0.25)
    with serve(settings, config) as holder, serve(settings, config) as other:
        yield holder, other


def test_room_given_through_another_process_reaches_the_stream(
    two_servers: tuple[LiveServer, LiveServer],
) -> None:
    holder, other = two_servers
    # Given a refilled stream on one server for 1 job, which it has taken
    stream = full_stream(holder)
    first = list(stream.ids)
    # And two more jobs, which it has no room for
    more = submit(holder, 2)
    time.sleep(0.2)
    assert stream.ids == first
    with other.as_tenant("acme", Role.WORKER) as worker:
        # When its worker's room request reaches the other server
        answer = worker.post("/v1/claim/room", json={"stream": stream.stream_id, "jobs": 1})
        # Then that server forwards it, and the stream is given one job, and no more
        assert answer.status_code == 202
        assert answer.json() == {"stream": stream.stream_id, "room": None, "forwarded": True}
        wait_for(lambda: len(stream.ids) == 2, what="a job for the forwarded room")
        time.sleep(0.2)
        assert len(stream.ids) == 2, "it leased more than the room forwarded"
        assert worker.post("/v1/claim/room", json={"stream": stream.stream_id, "jobs": 1}).status_code == 202
        wait_for(lambda: len(stream.ids) == 3, what="a job for the second forwarded room")
    assert sorted(stream.ids[1:]) == sorted(more)
    stream.join(timeout=8)


def test_forwarded_room_from_another_worker_is_not_applied(
    two_servers: tuple[LiveServer, LiveServer],
) -> None:
    holder, other = two_servers
    stream = full_stream(holder, wait_seconds=4)
    first = list(stream.ids)
    submit(holder, 1)
    # Another tenant's worker, and another worker of the same tenant, through the other server
    strangers = (other.token("other", Role.WORKER), other.token("acme", Role.WORKER, subject="someone-else"))
    for token in strangers:
        with other.client(token) as stranger:
            answer = stranger.post("/v1/claim/room", json={"stream": stream.stream_id, "jobs": 1})
            assert answer.status_code == 202  # a forward is accepted: whose stream it is is not told
    time.sleep(0.5)
    assert stream.ids == first, "room from someone else's worker reached the stream"
    stream.join(timeout=8)


def test_a_relay_names_its_own_streams() -> None:
    relay, another = RoomRelay(None), RoomRelay(None)
    stream_id = relay.new_stream_id()
    assert len(stream_id) == 32 and int(stream_id, 16) >= 0
    assert relay.ours(stream_id) and not another.ours(stream_id)
    assert stream_id[:TAG_CHARS] == relay.tag and relay.new_stream_id() != stream_id
    assert not relay.relays and RoomRelay("postgresql://x").relays


@given(
    st.builds(
        ForwardedRoom,
        stream=st.text(max_size=40),
        subject=st.text(max_size=40),
        tenant=st.none() | st.text(max_size=20),
        jobs=st.integers(min_value=1, max_value=100),
    )
)
def test_a_forwarded_room_reads_back_as_it_was_written(room: ForwardedRoom) -> None:
    assert ForwardedRoom.parse(room.payload()) == room


@given(st.text(max_size=200))
def test_a_malformed_room_notification_is_ignored_not_raised(payload: str) -> None:
    parsed = ForwardedRoom.parse(payload)
    assert parsed is None or isinstance(parsed, ForwardedRoom)
