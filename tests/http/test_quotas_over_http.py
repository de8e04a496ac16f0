"""Admission quotas over HTTP: 429 with Retry-After, counted, nothing half-accepted."""

from __future__ import annotations

import time

import pytest

from coordinator.identity import Role
from tests.http.live import LiveServer


def test_only_an_admin_of_the_tenant_sets_quotas(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme", Role.SUBMITTER, Role.READER) as user:
        refused = user.put("/v1/tenants/acme/quotas", json={"max_queued": 1})
        assert refused.status_code == 403
    with live_server.as_tenant("acme", Role.ADMIN) as admin:
        assert admin.put("/v1/tenants/globex/quotas", json={"max_queued": 1}).status_code == 404
        bad = admin.put("/v1/tenants/acme/quotas", json={"max_queued": -1, "colour": 1})
        assert bad.status_code == 422
        assert {e["loc"] for e in bad.json()["errors"]} >= {"body.max_queued", "body.colour"}
        ok = admin.put(
            "/v1/tenants/acme/quotas", json={"max_queued": 5, "max_in_flight": 2, "submits_per_minute": 100}
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["quotas"] == {"max_queued": 5, "max_in_flight": 2, "submits_per_minute": 100}
    with live_server.as_tenant("acme", Role.READER) as reader:
        assert reader.get("/v1/tenants/acme/quotas").json()["quotas"]["max_queued"] == 5
        assert reader.get("/v1/tenants/globex/quotas").status_code == 404


@pytest.mark.parametrize("batch", [False, True])
def test_max_queued_refuses_with_429_and_retry_after_and_counts_it(
    live_server: LiveServer, batch: bool
) -> None:
    with live_server.as_tenant("acme") as http:
        assert http.put("/v1/tenants/acme/quotas", json={"max_queued": 3}).status_code == 200
        for i in range(3):
            assert http.post("/v1/jobs", json={"queue": "q", "payload": {"i": i}}).status_code == 201
        if batch:
            refused = http.post("/v1/jobs/batch", json={"jobs": [{"queue": "q"}, {"queue": "q"}]})
        else:
            refused = http.post("/v1/jobs", json={"queue": "q"})
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) >= 1
        body = refused.json()
        assert body["code"] == "quota-exceeded" and body["quota"] == "max_queued" and body["limit"] == 3
        assert len(http.get("/v1/jobs").json()["jobs"]) == 3, "nothing of the refused request was accepted"
        status = http.get("/v1/tenants/acme/quotas").json()
        assert status["refusals"].get("max_queued") == 1
        assert status["usage"]["queued"] == 3
        # another tenant is not limited by acme's quota
    with live_server.as_tenant("globex") as other:
        assert other.post("/v1/jobs", json={"queue": "q"}).status_code == 201


def test_max_in_flight_caps_what_workers_get(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme") as http:
        http.put("/v1/tenants/acme/quotas", json={"max_in_flight": 2})
        http.post("/v1/jobs/batch", json={"jobs": [{"queue": "q"}] * 5})
        first = http.post("/v1/claim", json={"factory_id": "f1", "max_jobs": 5}).json()["jobs"]
        assert len(first) == 2
        assert http.post("/v1/claim", json={"factory_id": "f2", "max_jobs": 5}).json()["jobs"] == []
        done = first[0]
        http.patch(f"/v1/jobs/{done['job']['id']}", json={"epoch": done["epoch"], "state": "succeeded"})
        assert len(http.post("/v1/claim", json={"factory_id": "f2", "max_jobs": 5}).json()["jobs"]) == 1


def test_the_server_keeps_its_quota_cache_loaded_so_no_submit_waits_for_a_reload(
    live_server: LiveServer,
) -> None:
    # Given a server that has been idle for longer than its quota cache lives
    cache = live_server.fleet.quotas.cache
    probes = []
    for _ in range(4):
        time.sleep(cache.ttl * 0.6)
        probes.append(cache.loaded())
    # Then the cache was loaded at every probe: a hand-over submit would find it so and
    # commit from the event loop, and no submit reloads it inline
    assert all(p is not None for p in probes), probes
    # And quotas set meanwhile are seen (set_quotas refreshes this process's cache)
    with live_server.as_tenant("acme") as http:
        assert http.put("/v1/tenants/acme/quotas", json={"max_queued": 1}).status_code == 200
        assert http.post("/v1/jobs", json={"queue": "q"}).status_code == 201
        assert http.post("/v1/jobs", json={"queue": "q"}).status_code == 429
