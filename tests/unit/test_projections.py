"""Projections: the rows each aggregate contributes, their diffs, and rebuild comparison."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from domain.job import Job, JobState
from domain.job.states import LEASED, WAITING
from domain.tenant import Tenant, TenantQuotas
from projections.changes import ViewChanges
from projections.factory_rows import factory_row, profile_row
from projections.job_rows import JobParts, job_parts, job_rows
from projections.rebuild import TABLES, ViewSet, compare, replay, views_from
from tests.unit.job_factories import (
    FACTORY,
    START,
    at,
    job_in,
    leased_job,
    make_report,
    registered_factory,
    registered_profile,
    submitted_job,
)

S = JobState


def changes(before: JobParts | None, job: Job) -> ViewChanges:
    """What a unit of work writes for ``job``, loaded as ``before`` (None: new)."""
    diff = ViewChanges()
    diff.add_job(before, job)
    return diff


def touched(diff: ViewChanges) -> dict[str, int]:
    """Only the non-empty lists, with their lengths."""
    return {f.name: len(getattr(diff, f.name)) for f in dataclasses.fields(diff) if getattr(diff, f.name)}


# ------------------------------------------------------------------- job rows


@pytest.mark.parametrize("state", list(JobState))
def test_queue_row_only_while_waiting_and_lease_columns_only_while_leased(state: JobState) -> None:
    job = job_in(state)
    rows = job_rows(job)
    assert (rows.queue is not None) is (state in WAITING)
    assert (rows.job.lease_factory_id is not None) is (state in LEASED)
    assert rows.job.state == str(state)
    if rows.queue is not None:
        assert (rows.queue.available_at, rows.queue.state) == (job.available_at, str(state))
    if state in LEASED:
        assert job.lease is not None
        assert (rows.job.lease_factory_id, rows.job.epoch, rows.job.lease_expires_at) == (
            FACTORY,
            job.lease.epoch,
            job.lease.expires_at,
        )
    else:
        assert rows.job.lease_expires_at is None


def test_queue_row_carries_what_a_claim_filters_on() -> None:
    job = submitted_job(queue="gpu", priority="high", capabilities=["cuda", "arm"], deps=())
    queue = job_rows(job).queue
    assert queue is not None
    assert (queue.queue, queue.priority, queue.capabilities, queue.has_deps) == (
        "gpu",
        10,
        ("arm", "cuda"),
        False,
    )
    assert job_rows(job_in(S.QUEUED)).queue.has_deps  # type: ignore[union-attr]


def test_idempotency_row_follows_the_key_until_superseded() -> None:
    # Given a job submitted with a key
    job = submitted_job(idempotency_key="k-1")
    row = job_rows(job).idempotency
    assert row is not None
    assert (row.tenant, row.key, row.job_id, row.content_hash) == ("acme", "k-1", job.id, job.content_hash)
    # When it is superseded / Then the key no longer points at it
    job.supersede(job.id, at(1))
    assert job_rows(job).idempotency is None


def test_a_cancelled_job_keeps_its_key() -> None:
    job = submitted_job(idempotency_key="k-1")
    job.cancel("no", "operator", at(1))
    assert job_rows(job).idempotency is not None


def test_jobs_without_a_key_have_no_idempotency_row() -> None:
    assert job_rows(submitted_job()).idempotency is None


def test_edges_and_runs() -> None:
    job = job_in(S.FAILED)
    rows = job_rows(job)
    assert [(e.job_id, e.depends_on, e.mode) for e in rows.edges] == [(job.id, job.deps[0].job_id, "hard")]
    # Runs (one per lease) live in the job's snapshot
    runs = json.loads(rows.job.snapshot_json)["runs"]
    assert [(r["attempt"], r["epoch"], r["outcome"], r["error_kind"]) for r in runs] == [
        (1, 1, "failed", "error")
    ]


def test_job_row_snapshot_is_the_job_snapshot_as_json() -> None:
    job = job_in(S.RUNNING)
    row = job_rows(job).job
    assert json.loads(row.snapshot_json) == job.to_snapshot().as_json()
    assert json.loads(row.spec_json) == job.spec.model_dump(mode="json")
    assert (row.version, row.created_at, row.updated_at) == (job.version, job.created_on, job.modified_on)


# ----------------------------------------------------------------- view diffs


def test_a_new_job_is_only_inserts() -> None:
    job = submitted_job(idempotency_key="k-1", deps=job_in(S.QUEUED).deps)
    diff = changes(None, job)
    assert touched(diff) == {"jobs_insert": 1, "queue_insert": 1, "idempotency_insert": 1, "edges_insert": 1}


def test_a_claim_moves_the_job_from_the_queue_to_its_lease_columns() -> None:
    # Given a queued job's rows / When it is leased
    job = submitted_job(idempotency_key="k-1", deps=job_in(S.QUEUED).deps)
    before = job_parts(job)
    job.grant_lease(FACTORY, 60, at(1))
    after = job_rows(job)
    diff = changes(before, job)
    # Then: queue delete and job update (its lease columns); nothing else
    assert touched(diff) == {"jobs_update": 1, "queue_delete": 1}
    assert diff.queue_delete == [job.id]
    assert diff.jobs_update == [after.job]
    assert after.job.lease_factory_id == FACTORY


def test_a_renewal_touches_only_the_job() -> None:
    job = leased_job()
    before = job_parts(job)
    job.renew_lease(1, None, at(30))
    assert touched(changes(before, job)) == {"jobs_update": 1}


def test_a_release_returns_the_job_to_the_queue() -> None:
    job = leased_job()
    before = job_parts(job)
    job.release_lease(1, "shutdown", at(5))
    diff = changes(before, job)
    assert touched(diff) == {"jobs_update": 1, "queue_upsert": 1}
    assert diff.jobs_update[0].lease_factory_id is None


def test_superseding_deletes_the_idempotency_row() -> None:
    job = submitted_job(idempotency_key="k-1")
    before = job_parts(job)
    job.supersede(job.id, at(1))
    diff = changes(before, job)
    assert touched(diff) == {"jobs_update": 1, "queue_delete": 1, "idempotency_delete": 1}
    assert diff.idempotency_delete == [before.idempotency]


def test_replacing_a_dependency_swaps_the_edge() -> None:
    job = job_in(S.BLOCKED)
    before = job_parts(job)
    job.replace_dependency(job.deps[0].job_id, job.id, at(1))
    diff = changes(before, job)
    assert touched(diff) == {"jobs_update": 1, "edges_delete": 1, "edges_insert": 1}


def test_empty_changes_are_empty() -> None:
    assert ViewChanges().is_empty()
    assert not changes(None, submitted_job()).is_empty()


def test_an_unchanged_job_writes_only_its_job_row() -> None:
    job = job_in(S.RUNNING)
    assert touched(changes(job_parts(job), job)) == {"jobs_update": 1}


# ---------------------------------------------------------- factory, profile


def test_factory_row_mirrors_the_factory() -> None:
    factory = registered_factory(capabilities=["b", "a"], seat_limit=3)
    factory.heartbeat(make_report(load=1.5), at(10))
    row = factory_row(factory)
    assert (row.factory_id, row.health, row.capabilities, row.seat_limit) == (
        FACTORY,
        "ok",
        ("cpu", "gpu"),
        4,
    )
    assert (row.load, row.last_heartbeat_at, row.registered_at, row.version) == (1.5, at(10), START, 2)
    assert json.loads(row.snapshot_json)["name"] == FACTORY


def test_profile_row_mirrors_the_profile() -> None:
    profile = registered_profile(content={"b": 1, "a": 2})
    row = profile_row(profile)
    assert (row.profile_id, row.name, row.version, row.content_hash) == (
        profile.id,
        "coder",
        1,
        profile.content_hash,
    )
    assert row.content_json == '{"a": 2, "b": 1}'


# ------------------------------------------------------------------- rebuild


def quota_limited_tenant() -> Tenant:
    tenant = Tenant.register("acme", START)
    tenant.set_quotas(TenantQuotas(max_queued=2), "admin", START)
    tenant.refuse_admission("max_queued", limit=2, current=2, requested=1, now=at(1))
    return tenant


def live_aggregates() -> list[Any]:
    jobs: list[Any] = [job_in(state) for state in JobState]
    return [
        *jobs,
        submitted_job(idempotency_key="k-9"),
        registered_factory(),
        registered_profile(),
        quota_limited_tenant(),
    ]


def test_rebuilding_from_the_log_equals_the_live_views() -> None:
    # Given aggregates built through commands / When their events are replayed from nothing
    live = live_aggregates()
    events = [event for agg in live for event in agg.pending_events]
    rebuilt = replay(events)
    # Then the rebuilt views equal the live ones, table by table
    live_views = views_from(live)
    assert all(live_views.by_table()[table] for table in TABLES), "every table has rows"
    assert compare(live_views, views_from(rebuilt.values())) == []


def copy_of(views: ViewSet) -> ViewSet:
    return ViewSet(**{f.name: list(getattr(views, f.name)) for f in dataclasses.fields(views)})


def test_compare_reports_a_changed_row_and_its_table() -> None:
    # Given live views in which one queue row has drifted from the log
    aggregates = live_aggregates()
    rebuilt = views_from(replay(ev for agg in aggregates for ev in agg.pending_events).values())
    drifted = copy_of(views_from(aggregates))
    drifted.queue[0] = dataclasses.replace(drifted.queue[0], priority=99)
    # When compared with the rebuild / Then the queue table is reported, and only it
    differences = compare(drifted, rebuilt)
    assert [d.table for d in differences] == ["fleet_queue"]
    (difference,) = differences
    assert (difference.only_live, difference.only_rebuilt) == (1, 1)
    assert difference.describe().startswith("fleet_queue: 1 row(s) only in the live view")


def test_compare_reports_duplicated_rows() -> None:
    live = views_from(live_aggregates())
    doubled = copy_of(live)
    doubled.jobs.append(doubled.jobs[0])
    assert [d.table for d in compare(doubled, live)] == ["fleet_jobs"]


def test_compare_ignores_json_key_order() -> None:
    # Given a job row whose snapshot JSON came back from a jsonb column with keys reordered
    live = views_from([job_in(S.RUNNING)])
    row = live.jobs[0]
    reordered = json.dumps(dict(reversed(list(json.loads(row.snapshot_json).items()))))
    stored = ViewSet(jobs=[dataclasses.replace(row, snapshot_json=reordered)])
    rest = ViewSet(jobs=[row])
    # Then it compares equal
    assert compare(stored, rest) == []
