"""Per-tenant quotas on both stores: setting and reading them, admission at submit
(max_queued, submits_per_minute; a batch all or nothing), refusals counted durably and
rebuilt from the log, and max_in_flight at claim. (The fixture checks after each test
that every view, ``fleet_tenants`` included, equals its rebuild from the log.)"""

from __future__ import annotations

from typing import Any

import pytest

from coordinator.errors import Forbidden, InvalidRequest, NotFound, QuotaExceeded
from coordinator.fleet import Fleet
from coordinator.identity import Identity, Role
from coordinator.quotas import TenantQuotas
from domain.job.spec import ErrorInfo
from domain.tenant import tenant_uuid
from tests.contract.helpers import claim, claim_one, submit
from tests.support import START, FakeClock, fleet_wide, make_spec, tenant

ACME = tenant("acme")
BETA = tenant("beta")
ADMIN = fleet_wide("admin")
WORKER = fleet_wide("worker")


def waiting(fleet: Fleet, who: Identity = ACME) -> int:
    return fleet.get_quotas(who, who.tenant or "acme").usage.queued


def refused(fleet: Fleet, quota: str, **spec: Any) -> QuotaExceeded:
    with pytest.raises(QuotaExceeded) as caught:
        submit(fleet, ACME, **spec)
    assert caught.value.fields["quota"] == quota
    return caught.value


def tenant_event_types(fleet: Fleet, name: str) -> list[str]:
    return [type(e).__name__ for e in fleet.ctx.store.job_events(tenant_uuid(name))]


# ------------------------------------------------------------ set and get


def test_a_tenant_without_quotas_is_unlimited(fleet: Fleet) -> None:
    submit(fleet, ACME)
    view = fleet.get_quotas(ACME, "acme")
    assert view.tenant == "acme"
    assert view.quotas == TenantQuotas()
    assert (view.usage.queued, view.usage.in_flight, view.usage.submitted_last_minute) == (1, 0, 1)
    assert (view.refusals, view.updated_at) == ({}, None)


def test_setting_quotas_is_an_event_and_reads_back(fleet: Fleet, clock: FakeClock) -> None:
    # When an admin sets quotas (as a mapping, as the HTTP layer will)
    view = fleet.set_quotas(ADMIN, "acme", {"max_queued": 5, "submits_per_minute": 60})
    # Then they read back, stamped with the time, and the log holds the facts
    assert view.quotas == TenantQuotas(max_queued=5, submits_per_minute=60)
    assert view.updated_at == START
    assert fleet.get_quotas(ACME, "acme") == view
    assert tenant_event_types(fleet, "acme") == ["TenantRegistered", "QuotasSet"]
    # Setting the same again records nothing; a change records one event
    clock.advance(5)
    assert fleet.set_quotas(ADMIN, "acme", TenantQuotas(max_queued=5, submits_per_minute=60)) == view
    changed = fleet.set_quotas(ADMIN, "acme", {"max_in_flight": 2})
    assert changed.quotas == TenantQuotas(max_in_flight=2)  # a PUT replaces all three
    assert changed.updated_at == clock.now()
    assert tenant_event_types(fleet, "acme") == ["TenantRegistered", "QuotasSet", "QuotasSet"]


@pytest.mark.parametrize(
    "quotas",
    [{"max_queued": -1}, {"max_in_flight": 10_000_001}, {"submits_per_minute": "many"}, {"max_jobs": 3}],
)
def test_malformed_quotas_are_refused(fleet: Fleet, quotas: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        fleet.set_quotas(ADMIN, "acme", quotas)
    assert fleet.get_quotas(ADMIN, "acme").updated_at is None


def test_a_malformed_tenant_name_is_refused(fleet: Fleet) -> None:
    with pytest.raises(InvalidRequest):
        fleet.set_quotas(ADMIN, "Not A Tenant", {"max_queued": 1})


def test_quotas_need_their_roles_and_the_tenant(fleet: Fleet) -> None:
    submitter = Identity.of("s", "acme", Role.SUBMITTER)
    reader = Identity.of("r", "acme", Role.READER)
    other_admin = Identity.of("a", "beta", Role.ADMIN)
    # Only an admin sets quotas
    with pytest.raises(Forbidden):
        fleet.set_quotas(submitter, "acme", {"max_queued": 1})
    with pytest.raises(Forbidden):
        fleet.set_quotas(reader, "acme", {"max_queued": 1})
    with pytest.raises(Forbidden):
        fleet.get_quotas(Identity.of("w", "acme", Role.WORKER), "acme")
    # Another tenant's quotas look like no tenant at all
    with pytest.raises(NotFound):
        fleet.set_quotas(other_admin, "acme", {"max_queued": 1})
    with pytest.raises(NotFound):
        fleet.get_quotas(Identity.of("r", "beta", Role.READER), "acme")
    # A reader sees its own tenant's; an admin bound to the tenant sets them
    fleet.set_quotas(Identity.of("a", "acme", Role.ADMIN), "acme", {"max_queued": 1})
    assert fleet.get_quotas(reader, "acme").quotas.max_queued == 1


# -------------------------------------------------------------- max_queued


def test_max_queued_refuses_the_job_past_the_limit(fleet: Fleet) -> None:
    # Given a limit of 3 waiting jobs, reached
    fleet.set_quotas(ADMIN, "acme", {"max_queued": 3})
    for _ in range(3):
        submit(fleet, ACME)
    # When a fourth is submitted
    refusal = refused(fleet, "max_queued")
    # Then it is refused with the fields the HTTP layer maps to 429, and nothing was added
    assert refusal.fields == {
        "tenant": "acme",
        "quota": "max_queued",
        "limit": 3,
        "current": 3,
        "retry_after_seconds": 1.0,
    }
    assert (refusal.code, refusal.retryable) == ("quota-exceeded", False)
    assert "PUT /v1/tenants/acme/quotas" in refusal.message
    assert "retry in 1 s" in refusal.message
    assert len(fleet.list_jobs(ACME).jobs) == 3
    # And once a worker takes a job there is room again
    claim_one(fleet, ACME)
    submit(fleet, ACME)
    assert waiting(fleet) == 3


def test_blocked_scheduled_and_retrying_jobs_wait_but_leased_and_dead_ones_do_not(fleet: Fleet) -> None:
    fleet.set_quotas(ADMIN, "acme", {"max_queued": 3})
    # Given a dead letter and a leased job (neither waits to run)
    dead = submit(fleet, ACME, retry={"max_attempts": 1})
    fleet.fail(ACME, dead, claim_one(fleet, ACME).epoch, ErrorInfo(kind="boom", retryable=False))
    assert fleet.get(ACME, dead).state == "dead_letter"
    submit(fleet, ACME)
    claim_one(fleet, ACME)
    # And a scheduled, a blocked and a retrying job (all three wait)
    upstream = submit(fleet, ACME, run_at="2030-01-01T00:00:00Z")
    submit(fleet, ACME, deps=[str(upstream)])
    retrying = submit(fleet, ACME)
    fleet.fail(ACME, retrying, claim_one(fleet, ACME).epoch, ErrorInfo(kind="flaky"))
    assert fleet.get(ACME, retrying).state == "failed"
    # Then three wait, one is in flight, and the limit of 3 is reached
    view = fleet.get_quotas(ACME, "acme")
    assert (view.usage.queued, view.usage.in_flight) == (3, 1)
    refused(fleet, "max_queued")


def test_a_batch_past_the_limit_is_refused_whole(fleet: Fleet) -> None:
    # Given room for two more jobs
    fleet.set_quotas(ADMIN, "acme", {"max_queued": 5})
    for _ in range(3):
        submit(fleet, ACME)
    # When a batch of three (with keys) is submitted
    batch = [make_spec(idempotency_key=f"b{i}") for i in range(3)]
    with pytest.raises(QuotaExceeded) as caught:
        fleet.submit_many(ACME, batch)
    # Then none of it was submitted, not even the first two
    assert caught.value.fields["current"] == 3
    assert caught.value.requested == 3
    assert len(fleet.list_jobs(ACME).jobs) == 3
    assert fleet.list_jobs(ACME, idempotency_key="b0").jobs == []
    # And a batch that fits is admitted whole, its keys fresh
    results = fleet.submit_many(ACME, batch[:2])
    assert [r.outcome for r in results] == ["created", "created"]
    assert fleet.get_quotas(ADMIN, "acme").refusals == {"max_queued": 1}


def test_a_batch_bigger_than_the_limit_says_to_split_it(fleet: Fleet) -> None:
    fleet.set_quotas(ADMIN, "acme", {"max_queued": 2})
    with pytest.raises(QuotaExceeded) as caught:
        fleet.submit_many(ACME, [make_spec() for _ in range(3)])
    assert "split it into requests of at most 2" in caught.value.message
    assert fleet.list_jobs(ACME).jobs == []


def test_invalid_items_of_a_batch_do_not_count(fleet: Fleet) -> None:
    fleet.set_quotas(ADMIN, "acme", {"max_queued": 2})
    results = fleet.submit_many(ACME, [make_spec(), {"priority": "urgent"}, make_spec()])
    assert [r.ok for r in results] == [True, False, True]
    assert waiting(fleet) == 2


def test_idempotent_resubmits_are_not_counted(fleet: Fleet) -> None:
    # Given a tenant at its limit with two keyed jobs
    fleet.set_quotas(ADMIN, "acme", {"max_queued": 2, "submits_per_minute": 2})
    first = submit(fleet, ACME, idempotency_key="k1")
    submit(fleet, ACME, idempotency_key="k2")
    # When the same jobs are submitted again, one by one and as a batch
    again = fleet.submit(ACME, make_spec(idempotency_key="k1"))
    results = fleet.submit_many(ACME, [make_spec(idempotency_key="k1"), make_spec(idempotency_key="k2")])
    # Then they answer with the existing jobs, and nothing is refused
    assert (again.outcome, again.job.id) == ("existing", first)
    assert [r.outcome for r in results] == ["existing", "existing"]
    assert fleet.get_quotas(ADMIN, "acme").refusals == {}


def test_a_supersede_replaces_a_waiting_job_but_is_a_new_submission(fleet: Fleet) -> None:
    fleet.set_quotas(ADMIN, "acme", {"max_queued": 1, "submits_per_minute": 2})
    submit(fleet, ACME, idempotency_key="k")
    # Replacing the waiting job keeps one job waiting: max_queued has room for it
    replaced = fleet.submit(ACME, make_spec(idempotency_key="k", payload={"n": 2}))
    assert replaced.outcome == "superseded"
    # but it created a job: the per-minute window counts it
    refusal = refused(fleet, "submits_per_minute", idempotency_key="k", payload={"n": 3})
    assert refusal.fields["current"] == 2


# ------------------------------------------------------- submits_per_minute


def test_the_per_minute_window_refuses_and_says_when_to_retry(fleet: Fleet, clock: FakeClock) -> None:
    # Given 3 per minute, submitted at 0 s, 10 s and 20 s
    fleet.set_quotas(ADMIN, "acme", {"submits_per_minute": 3})
    for step in (10, 10, 5):
        submit(fleet, ACME)
        clock.advance(step)
    # When a fourth comes at 25 s
    refusal = refused(fleet, "submits_per_minute")
    # Then it may come back when the first is 60 s old: 35 s from now
    assert refusal.fields["current"] == 3
    assert refusal.fields["retry_after_seconds"] == pytest.approx(35.0)
    assert "retry in 35 s" in refusal.message
    # A batch of two must wait for the second oldest too
    with pytest.raises(QuotaExceeded) as caught:
        fleet.submit_many(ACME, [make_spec(), make_spec()])
    assert caught.value.fields["retry_after_seconds"] == pytest.approx(45.0)
    # Just before the first ages out: still refused; at 60 s: admitted
    clock.advance(34.9)
    refused(fleet, "submits_per_minute")
    clock.advance(0.1)
    submit(fleet, ACME)
    view = fleet.get_quotas(ACME, "acme")
    assert view.usage.submitted_last_minute == 3
    assert view.refusals == {"submits_per_minute": 3}


def test_with_both_quotas_exceeded_the_longer_wait_is_reported(fleet: Fleet) -> None:
    fleet.set_quotas(ADMIN, "acme", {"max_queued": 1, "submits_per_minute": 1})
    submit(fleet, ACME)
    refusal = refused(fleet, "submits_per_minute")
    assert refusal.fields["retry_after_seconds"] == pytest.approx(60.0)
    assert fleet.get_quotas(ADMIN, "acme").refusals == {"submits_per_minute": 1}


def test_a_zero_quota_refuses_everything_new(fleet: Fleet) -> None:
    fleet.set_quotas(ADMIN, "acme", {"max_queued": 0})
    refused(fleet, "max_queued")
    # Lifting it (None = unlimited) admits again
    fleet.set_quotas(ADMIN, "acme", {})
    submit(fleet, ACME)


# ----------------------------------------------- refusal counts and rebuild


def test_refusal_counts_survive_a_rebuild(fleet: Fleet) -> None:
    # Given refusals of both kinds
    fleet.set_quotas(ADMIN, "acme", {"max_queued": 1})
    submit(fleet, ACME)
    refused(fleet, "max_queued")
    refused(fleet, "max_queued")
    fleet.set_quotas(ADMIN, "acme", {"submits_per_minute": 1})
    refused(fleet, "submits_per_minute")
    before = fleet.get_quotas(ADMIN, "acme")
    assert before.refusals == {"max_queued": 2, "submits_per_minute": 1}
    assert tenant_event_types(fleet, "acme").count("AdmissionRefused") == 3
    # When every view is rebuilt from the log
    counts = fleet.rebuild_projections(ADMIN)
    # Then the tenant view comes back the same (and verify finds no difference)
    assert counts["fleet_tenants"] == 1
    assert fleet.get_quotas(ADMIN, "acme") == before
    assert fleet.verify_projections(ADMIN).ok


def test_other_tenants_are_not_limited(fleet: Fleet) -> None:
    fleet.set_quotas(ADMIN, "acme", {"max_queued": 0, "submits_per_minute": 0, "max_in_flight": 0})
    for _ in range(3):
        submit(fleet, BETA)
    assert len(claim(fleet, BETA, max_jobs=3)) == 3
    assert fleet.get_quotas(BETA, "beta").refusals == {}


# ------------------------------------------------------------ max_in_flight


def test_max_in_flight_caps_a_tenants_claims(fleet: Fleet) -> None:
    # Given a cap of 2 leased jobs and 5 waiting
    fleet.set_quotas(ADMIN, "acme", {"max_in_flight": 2})
    for _ in range(5):
        submit(fleet, ACME)
    # A claim for 5 gets 2, the next none
    first = claim(fleet, ACME, max_jobs=5)
    assert len(first) == 2
    assert claim(fleet, ACME, max_jobs=5) == []
    # Finishing one makes room for one
    fleet.succeed(ACME, first[0].job.id, first[0].epoch)
    assert len(claim(fleet, ACME, max_jobs=5)) == 1
    assert fleet.get_quotas(ACME, "acme").usage.in_flight == 2
    # No refusal is recorded for claims: workers simply get fewer jobs
    assert fleet.get_quotas(ACME, "acme").refusals == {}


def test_jobs_leased_before_the_cap_count_against_it(fleet: Fleet) -> None:
    for _ in range(4):
        submit(fleet, ACME)
    claim(fleet, ACME, max_jobs=2)
    fleet.set_quotas(ADMIN, "acme", {"max_in_flight": 2})
    assert claim(fleet, ACME, max_jobs=2) == []
    assert len(claim(fleet, WORKER, max_jobs=2)) == 0


def test_fleet_wide_claims_skip_a_capped_tenant_and_serve_the_others(fleet: Fleet) -> None:
    # Given acme capped at 1 and beta unlimited, 4 jobs each
    fleet.set_quotas(ADMIN, "acme", {"max_in_flight": 1})
    for _ in range(4):
        submit(fleet, ACME)
        submit(fleet, BETA)
    # When a fleet-wide worker claims 4, then 4 more
    first = claim(fleet, WORKER, max_jobs=4)
    second = claim(fleet, WORKER, max_jobs=4)
    # Then acme got one, beta the rest
    tenants = [c.job.tenant for c in first + second]
    assert tenants.count("acme") == 1
    assert tenants.count("beta") == 4
    assert claim(fleet, WORKER, max_jobs=4) == []


def test_a_capped_tenant_with_room_fills_the_gap(fleet: Fleet) -> None:
    # Given acme capped at 4 with 6 jobs, beta with 1
    fleet.set_quotas(ADMIN, "acme", {"max_in_flight": 4})
    for _ in range(6):
        submit(fleet, ACME)
    submit(fleet, BETA)
    # When one claim asks for 6 (a fair share is 3 each; beta has only 1)
    claimed = claim(fleet, WORKER, max_jobs=6)
    # Then acme fills the gap up to its cap, no further
    tenants = [c.job.tenant for c in claimed]
    assert (tenants.count("acme"), tenants.count("beta")) == (4, 1)


def test_fleet_wide_claims_with_a_capped_tenant_still_go_round_robin(fleet: Fleet) -> None:
    fleet.set_quotas(ADMIN, "gamma", {"max_in_flight": 0})
    for who in (ACME, BETA, tenant("gamma")):
        for _ in range(3):
            submit(fleet, who)
    tenants = [claim_one(fleet, WORKER).job.tenant for _ in range(6)]
    assert sorted(tenants) == ["acme"] * 3 + ["beta"] * 3
    assert tenants[:2] in (["acme", "beta"], ["beta", "acme"])
