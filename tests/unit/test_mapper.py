"""PydanticMapper: every event class round-trips; old versions are upcast on read."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.compressor import ZlibCompressor
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from adapters.eventstore.mapper import JSONTextTranscoder, PydanticMapper
from domain.events import DomainEvent
from domain.factory import FACTORY_TRANSITIONS
from domain.job import JOB_TRANSITIONS
from domain.job.events import JobEvent
from domain.job.spec import Artifact, RunInsights
from domain.limits import MAX_COUNT
from domain.profile import PROFILE_TRANSITIONS
from domain.tenant import TENANT_TRANSITIONS
from projections.rebuild import replay
from tests.unit.histories import factory_histories, job_histories, profile_histories, tenant_histories
from tests.unit.job_factories import at, failing, running_job, some_insights


def mapper(**options: Any) -> PydanticMapper:
    return PydanticMapper(transcoder=JSONTextTranscoder(), **options)


def rich_history() -> list[DomainEvent]:
    """One job with every kind of JSON value a worker can send."""
    job = running_job(phases=["plan", "build"], idempotency_key="k-1", budget={"usd": 5})
    job.report_phase(1, "plan", at(2))
    job.save_checkpoint(1, {"step": 3, "seen": ["a", "ü"], "ratio": 0.1, "none": None}, at(3))
    job.report_insights(1, some_insights(cost_usd=0.25, tokens=1234), at(4))
    job.record_artifact(1, Artifact(uri="s3://b/o.txt", sha256="ab" * 32, size=99, kind="log"), at(5))
    job.fail(1, failing("flaky"), some_insights(cost_usd=0.5), at(6), jitter_sample=0.3)
    job.make_ready(at(3600))
    job.grant_lease("factory-2", 30, at(3601))
    job.succeed(2, [1, 2.5, {"deep": {"er": True}}], some_insights(cost_usd=0.1), at(3602))
    return list(job.pending_events)  # type: ignore[arg-type]


def corpus() -> list[list[DomainEvent]]:
    return [*job_histories(), *factory_histories(), *profile_histories(), *tenant_histories(), rich_history()]


@pytest.mark.parametrize("options", [{}, {"compressor": ZlibCompressor()}], ids=["plain", "zlib"])
def test_every_event_class_round_trips(options: dict[str, Any]) -> None:
    # Given real events of every class, built through commands
    codec = mapper(**options)
    seen: set[type] = set()
    for history in corpus():
        for event in history:
            # When stored and read back
            stored = codec.to_stored_event(event)
            back = codec.to_domain_event(stored)
            # Then the event is unchanged, and so is its position in the stream
            assert type(back) is type(event)
            assert back == event
            assert (stored.originator_id, stored.originator_version) == (
                event.originator_id,
                event.originator_version,
            )
            seen.add(type(event))
    every_class = {
        *JOB_TRANSITIONS.rows,
        *FACTORY_TRANSITIONS.rows,
        *PROFILE_TRANSITIONS.rows,
        *TENANT_TRANSITIONS.rows,
    }
    assert seen == every_class


def test_replaying_stored_events_gives_the_live_aggregate() -> None:
    # Given a job's history / When stored, read back and replayed
    events = rich_history()
    codec = mapper()
    live = replay(events)
    rebuilt = replay(codec.to_domain_event(codec.to_stored_event(ev)) for ev in events)
    # Then the replayed job equals the one built from the original events
    (job_id,) = live
    assert rebuilt[job_id].to_snapshot() == live[job_id].to_snapshot()
    assert rebuilt[job_id].spec == live[job_id].spec


def test_version_one_events_store_no_class_version() -> None:
    event = rich_history()[0]
    assert "class_version" not in json.loads(mapper().to_stored_event(event).state)


# ----------------------------------------------------------------- upcasting


class NoteAdded(JobEvent):
    """Test-only: v1 had only ``text``; v2 added ``author``."""

    class_version = 2
    text: str
    author: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["author"] = "unknown"


class LabelSet(JobEvent):
    """Test-only: v1 ``name``; v2 renamed it ``label``; v3 added ``colour``."""

    class_version = 3
    label: str
    colour: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["label"] = state.pop("name")

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state["colour"] = "grey"


def stored(cls: type, version: int, **fields: Any) -> StoredEvent:
    """A stored event written by hand, as an older release would have written it."""
    state = {"timestamp": "2026-01-05T09:00:00Z", **fields}
    return StoredEvent(
        originator_id=uuid4(),
        originator_version=version,
        topic=get_topic(cls),
        state=json.dumps(state).encode(),
    )


def test_a_version_one_payload_is_upcast_on_read() -> None:
    # Given a NoteAdded stored by v1 (no class_version, no author)
    old = stored(NoteAdded, 4, text="hello")
    # When read / Then it is a v2 event with the default author
    event = mapper().to_domain_event(old)
    assert isinstance(event, NoteAdded)
    assert (event.text, event.author, event.originator_version) == ("hello", "unknown", 4)
    assert event.timestamp == at(0)


def test_upcasters_chain_from_the_stored_version() -> None:
    codec = mapper()
    from_v1 = codec.to_domain_event(stored(LabelSet, 2, name="urgent"))
    from_v2 = codec.to_domain_event(stored(LabelSet, 2, label="urgent", class_version=2))
    assert isinstance(from_v1, LabelSet) and isinstance(from_v2, LabelSet)
    assert (from_v1.label, from_v1.colour) == (from_v2.label, from_v2.colour) == ("urgent", "grey")


def test_a_current_version_event_stores_its_version_and_is_not_upcast() -> None:
    # Given a v2 event / When stored
    event = NoteAdded(originator_id=uuid4(), originator_version=2, timestamp=at(0), text="t", author="ann")
    record = mapper().to_stored_event(event)
    # Then the JSON carries class_version 2, and reads back unchanged
    assert json.loads(record.state)["class_version"] == 2
    assert mapper().to_domain_event(record) == event


def test_history_recorded_before_a_limit_stays_readable() -> None:
    # Given a run's insights and an artifact stored with counts past today's limits (an
    # event written before the limits existed: edited here in its stored JSON)
    events = rich_history()
    codec = mapper()
    stored = [codec.to_stored_event(e) for e in events]
    over = MAX_COUNT + 1
    rewritten = []
    for s in stored:
        state = json.loads(s.state)
        if state.get("insights"):
            state["insights"]["tokens_in"] = over
        if state.get("artifact"):
            state["artifact"]["size"] = over
        rewritten.append(
            StoredEvent(s.originator_id, s.originator_version, s.topic, json.dumps(state).encode())
        )
    assert any(b"%d" % over in s.state for s in rewritten)
    # When read back, the events load as they were, and the job replays
    back = [codec.to_domain_event(s) for s in rewritten]
    job = replay(back)
    assert job is not None
    insights = [e.insights for e in back if getattr(e, "insights", None) is not None]
    assert insights and all(i.tokens_in == over for i in insights)
    # While a command carrying the same count is refused
    with pytest.raises(ValueError, match="less than or equal to"):
        RunInsights(tokens_in=over)
