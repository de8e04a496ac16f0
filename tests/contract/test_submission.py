"""Submitting: validation, idempotency, supersede, listing, history."""

from __future__ import annotations

import pytest

from coordinator.errors import InvalidRequest, NotFound, TenantRequired
from coordinator.fleet import Fleet
from domain.errors import IdempotencyConflict
from tests.contract.helpers import claim_one, history_types, submit
from tests.support import FakeClock, fleet_wide, make_spec, tenant

ACME = tenant("acme")
GLOBEX = tenant("globex")


def test_submit_then_read_back_round_trips(fleet: Fleet) -> None:
    # Given a full spec
    spec = make_spec(
        queue="render",
        priority="high",
        capabilities=["gpu", "cuda"],
        payload={"doc": "a", "nested": {"k": [1, 2]}},
        retry={"max_attempts": 5, "backoff": "linear", "base_seconds": 2, "max_seconds": 60},
        lease_seconds=30,
        budget={"usd": 1.5, "tokens": 1000},
        phases=["building", "review"],
    )
    # When it is submitted
    result = fleet.submit(ACME, spec)
    # Then the job reads back with the same normalised content
    job = fleet.get(ACME, result.job.id)
    assert result.outcome == "created"
    assert job.state == "queued"
    assert (job.queue, job.priority, job.capabilities) == ("render", 10, ("cuda", "gpu"))
    assert job.payload == {"doc": "a", "nested": {"k": [1, 2]}}
    assert job.phases == ("building", "review")
    assert job.tenant == "acme"
    assert history_types(fleet, ACME, job.id) == ["JobSubmitted"]


@pytest.mark.parametrize(
    ("field", "value", "loc"),
    [
        ("lease_seconds", -5, "lease_seconds"),
        ("kind", "gigantic", "kind"),
        ("priority", "urgent", "priority"),
        ("capabilities", ["Not Valid"], "capabilities.0"),
        ("deps_mode", "sometimes", "(body)"),
        ("unknown_field", 1, "unknown_field"),
    ],
)
def test_invalid_specs_fail_precisely(fleet: Fleet, field: str, value: object, loc: str) -> None:
    # When a spec with one bad field is submitted
    with pytest.raises(InvalidRequest) as refused:
        fleet.submit(ACME, make_spec(**{field: value}))
    # Then the error names that field and nothing was recorded
    assert any(e["loc"] == loc for e in refused.value.fields["errors"]), refused.value.fields
    assert fleet.list_jobs(ACME).jobs == []


def test_a_submit_without_tenant_is_refused(fleet: Fleet) -> None:
    with pytest.raises(TenantRequired):
        fleet.submit(fleet_wide(), make_spec())


def test_identical_resubmit_returns_the_same_job_without_an_event(fleet: Fleet) -> None:
    first = fleet.submit(ACME, make_spec(idempotency_key="order-1", payload={"a": 1, "b": 2}))
    # When the same content (keys in another order) is submitted with the same key
    again = fleet.submit(ACME, make_spec(idempotency_key="order-1", payload={"b": 2, "a": 1}))
    # Then it is the same job and nothing was appended
    assert again.outcome == "existing"
    assert again.job.id == first.job.id
    assert history_types(fleet, ACME, first.job.id) == ["JobSubmitted"]
    assert len(fleet.list_jobs(ACME).jobs) == 1


def test_the_same_key_in_another_tenant_is_another_job(fleet: Fleet) -> None:
    a = fleet.submit(ACME, make_spec(idempotency_key="k"))
    b = fleet.submit(GLOBEX, make_spec(idempotency_key="k"))
    assert a.job.id != b.job.id
    assert b.outcome == "created"


def test_changed_content_while_queued_supersedes(fleet: Fleet) -> None:
    old = fleet.submit(ACME, make_spec(idempotency_key="k", payload={"v": 1}))
    # When different content arrives under the same key while the job is still queued
    new = fleet.submit(ACME, make_spec(idempotency_key="k", payload={"v": 2}))
    # Then a new job replaces it and the old one is superseded (recorded as an event)
    assert new.outcome == "superseded"
    assert new.superseded_job_id == old.job.id
    assert new.job.supersedes == old.job.id
    assert fleet.get(ACME, old.job.id).state == "superseded"
    assert fleet.get(ACME, old.job.id).superseded_by == new.job.id
    assert history_types(fleet, ACME, old.job.id) == ["JobSubmitted", "JobSuperseded"]
    # And the key now answers with the new job
    again = fleet.submit(ACME, make_spec(idempotency_key="k", payload={"v": 2}))
    assert (again.outcome, again.job.id) == ("existing", new.job.id)
    assert [j.id for j in fleet.list_jobs(ACME, idempotency_key="k").jobs] == [old.job.id, new.job.id]


def test_changed_content_after_the_job_started_is_a_conflict(fleet: Fleet) -> None:
    fleet.submit(ACME, make_spec(idempotency_key="k", payload={"v": 1}))
    claim_one(fleet, ACME)
    with pytest.raises(IdempotencyConflict) as refused:
        fleet.submit(ACME, make_spec(idempotency_key="k", payload={"v": 2}))
    assert refused.value.fields["state"] == "assigned"


def test_supersede_moves_dependents_to_the_replacement(fleet: Fleet) -> None:
    # Given B waiting for A (blocked)
    a = submit(fleet, ACME, idempotency_key="a", payload={"v": 1})
    upstream = submit(fleet, ACME)
    fleet.cancel(ACME, upstream)  # irrelevant job, makes sure only a's dependents move
    b = submit(fleet, ACME, deps=[str(a)], run_at=None)
    claimed = claim_one(fleet, ACME)
    assert claimed.job.id == a
    fleet.release(ACME, a, claimed.epoch)
    # When A is superseded
    a2 = fleet.submit(ACME, make_spec(idempotency_key="a", payload={"v": 2})).job.id
    # Then B now waits for A2, with the change recorded on B
    assert [d.job_id for d in fleet.get(ACME, b).deps] == [a2]
    assert history_types(fleet, ACME, b)[-1] == "DependencyReplaced"
    # And B runs once A2 succeeds
    c = claim_one(fleet, ACME)
    assert c.job.id == a2
    fleet.succeed(ACME, a2, c.epoch)
    assert fleet.get(ACME, b).state == "queued"


def test_tenants_cannot_see_each_other(fleet: Fleet) -> None:
    job = submit(fleet, ACME)
    with pytest.raises(NotFound):
        fleet.get(GLOBEX, job)
    with pytest.raises(NotFound):
        fleet.history(GLOBEX, job)
    with pytest.raises(NotFound):
        fleet.cancel(GLOBEX, job)
    assert fleet.list_jobs(GLOBEX).jobs == []
    # And a globex worker claims nothing of acme's
    assert fleet.claim(GLOBEX, _claim_request()) == []


def _claim_request():
    from coordinator.claiming import ClaimRequest

    return ClaimRequest(factory_id="globex-host", max_jobs=10)


def test_listing_filters_and_pages(fleet: Fleet, clock: FakeClock) -> None:
    ids = []
    for i in range(7):
        ids.append(submit(fleet, ACME, queue="a" if i % 2 else "b"))
        clock.advance(1)
    claim_one(fleet, ACME, queues=("a",))
    # Pages of 3 in creation order
    page1 = fleet.list_jobs(ACME, limit=3)
    page2 = fleet.list_jobs(ACME, limit=3, cursor=page1.next_cursor)
    page3 = fleet.list_jobs(ACME, limit=3, cursor=page2.next_cursor)
    assert [j.id for j in page1.jobs + page2.jobs + page3.jobs] == ids
    assert page3.next_cursor is None
    # Filters by state and queue
    assert [j.id for j in fleet.list_jobs(ACME, states=("assigned",)).jobs] == [ids[1]]
    assert len(fleet.list_jobs(ACME, queue="b").jobs) == 4
    with pytest.raises(InvalidRequest):
        fleet.list_jobs(ACME, states=("nonsense",))
    with pytest.raises(InvalidRequest):
        fleet.list_jobs(ACME, cursor="garbage!")


def test_batch_submit_reports_each_item_in_order(fleet: Fleet) -> None:
    existing = submit(fleet, ACME, idempotency_key="dup")
    results = fleet.submit_many(
        ACME,
        [
            make_spec(),
            make_spec(lease_seconds=-1),
            make_spec(idempotency_key="dup"),
            make_spec(idempotency_key="x"),
            make_spec(idempotency_key="x"),
            make_spec(deps=["00000000-0000-0000-0000-000000000001"]),
        ],
    )
    assert [r.ok for r in results] == [True, False, True, True, True, False]
    assert results[1].error is not None and results[1].error.code == "invalid-request"
    assert (results[2].outcome, results[2].job_id) == ("existing", existing)
    assert results[4].outcome == "existing" and results[4].job_id == results[3].job_id
    assert results[5].error is not None and results[5].error.code == "unknown-dependency"
    assert len(fleet.list_jobs(ACME).jobs) == 3


def test_history_and_replay_at_any_version(fleet: Fleet, clock: FakeClock) -> None:
    job = submit(fleet, ACME, phases=["build", "test"])
    c = claim_one(fleet, ACME)
    fleet.report_phase(ACME, job, c.epoch, "build")
    fleet.checkpoint(ACME, job, c.epoch, {"step": 3})
    clock.advance(5)
    fleet.succeed(ACME, job, c.epoch, {"ok": True})
    history = fleet.history(ACME, job)
    assert [h.version for h in history] == [1, 2, 3, 4, 5]
    assert [h.type for h in history] == [
        "JobSubmitted",
        "LeaseGranted",
        "PhaseReported",
        "Checkpointed",
        "JobSucceeded",
    ]
    assert history[-1].at > history[0].at
    # The state as of each version
    assert fleet.state_at(ACME, job, 1).state == "queued"
    assert fleet.state_at(ACME, job, 3).phase == "build"
    assert fleet.state_at(ACME, job, 4).checkpoint == {"step": 3}
    assert fleet.state_at(ACME, job, 5).result == {"ok": True}
    with pytest.raises(InvalidRequest):
        fleet.state_at(ACME, job, 9)
