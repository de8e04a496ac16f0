"""The Factory and Profile aggregates."""

from __future__ import annotations

import pytest

from domain.errors import IllegalTransition
from domain.factory import (
    Factory,
    FactoryHeartbeat,
    FactoryMarkedDown,
    FactoryRegistered,
    FactorySnapshot,
    Health,
    factory_uuid,
)
from domain.profile import Profile, ProfileRegistered, ProfileSpec, profile_uuid
from tests.unit.job_factories import FACTORY, START, at, make_report, registered_factory, registered_profile

# ------------------------------------------------------------------- factory


def test_register_names_the_factory_and_normalises_capabilities() -> None:
    # Given a report with unsorted, repeated capabilities / When registered
    factory = registered_factory(capabilities=["gpu", "cpu", "gpu"], load=0.5)
    # Then the id derives from the name, capabilities are sorted and unique
    assert (factory.id, factory.name) == (factory_uuid(FACTORY), FACTORY)
    assert factory.capabilities == ("cpu", "gpu")
    assert (factory.health, factory.load, factory.last_heartbeat_at) == (Health.OK, 0.5, START)
    assert [type(ev) for ev in factory.pending_events] == [FactoryRegistered]


def test_the_same_name_always_gives_the_same_id() -> None:
    assert factory_uuid("f-1") == factory_uuid("f-1") != factory_uuid("f-2")


def test_heartbeat_updates_everything_it_reports() -> None:
    factory = registered_factory()
    factory.heartbeat(make_report(health="degraded", load=3, capabilities=["arm"], seat_limit=2), at(30))
    assert (factory.health, factory.load, factory.capabilities) == (Health.DEGRADED, 3, ("arm",))
    assert (factory.seat_limit, factory.last_heartbeat_at) == (2, at(30))
    assert isinstance(factory.pending_events[-1], FactoryHeartbeat)


def test_heartbeat_brings_a_down_factory_back() -> None:
    factory = registered_factory()
    factory.mark_down(at(120))
    factory.heartbeat(make_report(), at(130))
    assert factory.health is Health.OK


def test_is_silent_after_the_heartbeat_timeout() -> None:
    # Given a 60 s heartbeat timeout, last heartbeat at 0
    factory = registered_factory(heartbeat_timeout_seconds=60)
    # Then it is silent only strictly after 60 s
    assert not factory.is_silent(at(60))
    assert factory.is_silent(at(60.001))


def test_a_factory_without_timeout_is_never_silent() -> None:
    factory = registered_factory(heartbeat_timeout_seconds=None)
    assert not factory.is_silent(at(10**8))


def test_mark_down_records_the_last_heartbeat() -> None:
    factory = registered_factory(heartbeat_timeout_seconds=60)
    factory.heartbeat(make_report(heartbeat_timeout_seconds=60), at(30))
    factory.mark_down(at(100))
    event = factory.pending_events[-1]
    assert isinstance(event, FactoryMarkedDown)
    assert (event.last_heartbeat_at, factory.health) == (at(30), Health.DOWN)
    assert "60" in event.reason


def test_mark_down_twice_is_illegal() -> None:
    factory = registered_factory()
    factory.mark_down(at(100))
    with pytest.raises(IllegalTransition, match="FactoryMarkedDown cannot happen in state 'down'"):
        factory.mark_down(at(101))


@pytest.mark.parametrize(("limit", "held", "free"), [(None, 5, None), (4, 1, 3), (4, 4, 0), (4, 9, 0)])
def test_seats_free(limit: int | None, held: int, free: int | None) -> None:
    assert registered_factory(seat_limit=limit).seats_free(held) == free


def test_restore_round_trips_through_the_snapshot() -> None:
    # Given a factory with some history, and its snapshot read back from JSON
    factory = registered_factory()
    factory.heartbeat(make_report(health="degraded", load=2.5), at(30))
    snapshot = FactorySnapshot.model_validate_json(factory.to_snapshot().model_dump_json())
    # When restored at its version
    restored = Factory.restore(factory.version, snapshot)
    # Then it equals the live factory, and carries on the same way
    assert (restored.id, restored.version) == (factory.id, factory.version)
    assert restored.to_snapshot() == factory.to_snapshot()
    restored.mark_down(at(200))
    assert restored.pending_events[-1].originator_version == factory.version + 1


# ------------------------------------------------------------------- profile


def test_register_profile_hashes_its_content() -> None:
    profile = registered_profile(content={"model": "m-1", "tools": ["a"]})
    assert profile.id == profile_uuid("acme", "coder", 1)
    assert (profile.tenant, profile.name, profile.version_number) == ("acme", "coder", 1)
    assert profile.content == {"model": "m-1", "tools": ["a"]}
    assert profile.content_hash == ProfileSpec(name="x", version=9, content=profile.content).content_hash()
    assert [type(ev) for ev in profile.pending_events] == [ProfileRegistered]


def test_profile_hash_ignores_key_order_but_not_content() -> None:
    a = ProfileSpec(name="p", version=1, content={"a": 1, "b": 2})
    b = ProfileSpec(name="p", version=1, content={"b": 2, "a": 1})
    c = ProfileSpec(name="p", version=1, content={"a": 1, "b": 3})
    assert a.content_hash() == b.content_hash() != c.content_hash()


def test_profile_ids_differ_per_tenant_name_and_version() -> None:
    ids = {profile_uuid(t, n, v) for t in ("a", "b") for n in ("x", "y") for v in (1, 2)}
    assert len(ids) == 8


def test_profile_replays_from_its_event() -> None:
    profile = registered_profile()
    replayed = profile.pending_events[0].mutate(None)
    assert isinstance(replayed, Profile)
    assert (replayed.content, replayed.content_hash, replayed.version_number) == (
        profile.content,
        profile.content_hash,
        1,
    )
