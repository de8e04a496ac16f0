"""The analytics routes over HTTP, with a server that follows the log into real chDB:
lag in /v1/analytics/status, tenant-scoped runs and throughput, tenants kept apart."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from adapters.bootstrap import Settings
from coordinator.analytics import ConsumerConfig
from coordinator.identity import Role
from tests.acceptance.cli_runner import Cli
from tests.http.live import LiveServer, serve

FAST = ConsumerConfig(idle_seconds=0.05, linger_seconds=0.0)


@pytest.fixture
def analytics_server(backend: Settings, chdb_url: str) -> Iterator[LiveServer]:
    # The test process's one chDB engine directory, a database of this test's own.
    settings = backend.model_copy(
        update={"clickhouse_url": chdb_url, "clickhouse_database": f"h_{uuid.uuid4().hex[:12]}"}
    )
    with serve(settings, analytics=FAST) as server:
        yield server


def run_jobs(server: LiveServer, tenant: str, n: int, model: str) -> None:
    with server.as_tenant(tenant, Role.SUBMITTER, Role.WORKER, Role.READER) as http:
        jobs = [{"queue": "q", "payload": {"i": i}} for i in range(n)]
        assert http.post("/v1/jobs/batch", json={"jobs": jobs}).status_code == 200
        claimed = http.post("/v1/claim", json={"factory_id": f"f-{tenant}", "max_jobs": n}).json()["jobs"]
        assert len(claimed) == n
        for c in claimed:
            body = {
                "epoch": c["epoch"],
                "state": "succeeded",
                "insights": {"model": model, "tokens_in": 10, "cost_usd": 0.25},
            }
            done = http.patch(f"/v1/jobs/{c['job']['id']}", json=body)
            assert done.status_code == 200, done.text


def caught_up(server: LiveServer, timeout: float = 30) -> dict[str, object]:
    with server.as_tenant(None, Role.READER) as ops:
        deadline = time.monotonic() + timeout
        while True:
            status = ops.get("/v1/analytics/status")
            assert status.status_code == 200, status.text
            body: dict[str, object] = status.json()
            if body["connected"] and body["events_behind"] == 0 and body["head"]:
                return body
            assert time.monotonic() < deadline, body
            time.sleep(0.05)


def test_runs_and_throughput_are_tenant_scoped(analytics_server: LiveServer) -> None:
    # Given two tenants' work, followed into ClickHouse
    run_jobs(analytics_server, "acme", 3, "m-a")
    run_jobs(analytics_server, "globex", 2, "m-g")
    status = caught_up(analytics_server)
    assert status["position"] == status["head"] and status["seconds_behind"] == 0
    consumer = status["consumer"]
    assert isinstance(consumer, dict) and consumer["leader"] is True and consumer["events"] > 0
    # Then a tenant sees its own runs and counts, and nothing of the other's
    with analytics_server.as_tenant("acme", Role.READER) as acme:
        runs = acme.get("/v1/analytics/runs").json()
        assert len(runs) == 3 and {r["outcome"] for r in runs} == {"succeeded"}
        assert all(r["factory_id"] == "f-acme" for r in runs)
        hours = acme.get("/v1/analytics/throughput").json()
        assert sum(h["submitted"] for h in hours) == 3 and sum(h["succeeded"] for h in hours) == 3
        assert acme.get("/v1/analytics/runs", params={"tenant": "globex"}).status_code == 403
        # a tenant learns how fresh the data is, not the fleet's log positions
        mine = acme.get("/v1/analytics/status").json()
        assert mine["head"] is None and mine["position"] is None and mine["seconds_behind"] == 0
    with analytics_server.as_tenant("globex", Role.READER) as globex:
        assert len(globex.get("/v1/analytics/runs").json()) == 2
    # And a fleet-wide reader names the tenant
    with analytics_server.as_tenant(None, Role.READER) as ops:
        assert ops.get("/v1/analytics/runs").status_code == 403  # tenant-required
        assert len(ops.get("/v1/analytics/runs", params={"tenant": "globex", "limit": 1}).json()) == 1
        bad = ops.get("/v1/analytics/runs", params={"tenant": "acme", "limit": 0})
        assert bad.status_code == 422
    with analytics_server.as_tenant("acme", Role.WORKER) as worker:
        assert worker.get("/v1/analytics/runs").status_code == 403


def test_without_analytics_the_routes_say_so(live_server: LiveServer) -> None:
    with live_server.as_tenant("acme", Role.READER) as http:
        refused = http.get("/v1/analytics/runs")
        assert refused.status_code == 503
        assert refused.json()["code"] == "analytics-off"
        assert "--no-analytics" in refused.json()["detail"]


def test_a_cli_rebuild_is_done_by_the_leading_server(
    analytics_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_jobs(analytics_server, "acme", 2, "m-a")
    before = caught_up(analytics_server)
    settings = analytics_server.settings
    monkeypatch.setenv("FLEETLOG_CLICKHOUSE_DATABASE", str(settings.clickhouse_database))
    store = (
        ["--database-url", settings.database_url]
        if settings.database_url
        else ["--data-dir", str(settings.data_dir)]
    )
    # On PostgreSQL the settings' data dir is the default, relative one, which need not
    # exist: the command runs from a directory of its own then.
    cwd = tmp_path if settings.database_url else settings.data_dir
    cli = Cli(store, cwd, in_process=True, monkeypatch=monkeypatch)
    # When an operator asks for a rebuild while the server leads the projection
    done = cli("analytics", "rebuild", "--wait", "60", tenant=None).json()
    # Then the server did it, and the data is whole
    assert done["rebuilt_by"] == before["leader"]
    after = caught_up(analytics_server)
    assert after["rebuilt_at"] is not None and after["position"] == after["head"]
    status = cli("analytics", "status", tenant=None).json()
    assert status["events_behind"] == 0
    assert datetime.fromisoformat(status["rebuilt_at"]) == datetime.fromisoformat(str(after["rebuilt_at"]))
    with analytics_server.as_tenant("acme", Role.READER) as acme:
        assert len(acme.get("/v1/analytics/runs").json()) == 2


def test_a_window_at_the_ends_of_the_calendar_is_refused_not_failed(live_server: LiveServer) -> None:
    # Found by the fuzz test: in UTC these fall outside what a datetime can hold.
    with live_server.as_tenant("acme", Role.READER) as http:
        for value in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:00-01:00", "1900-01-01T00:00:00Z"):
            for name in ("since", "until"):
                answer = http.get("/v1/analytics/runs", params={name: value})
                assert answer.status_code == 422, (name, value, answer.text)
                assert "between 1901 and 2298" in answer.json()["detail"]
