"""Acceptance: ``fleetlog serve`` and ``fleetlog worker --url`` as OS processes.

Workers that know only the server's URL and a token drain jobs; one killed with
SIGKILL mid-job has its lease reaped by the server, another worker finishes the job
from its checkpoint, and the dead worker's late write is refused 409 ``stale-epoch``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from adapters.auth import TokenAuthority
from adapters.bootstrap import Settings
from adapters.client import FleetClient
from adapters.worker.examples import resume_point
from coordinator.identity import Role
from coordinator.views import HistoryEntry, JobView
from domain.errors import StaleEpoch
from tests.client.conftest import WORKER_ROLES
from tests.client.processes import FleetlogProcess, environment
from tests.http.live import LiveServer
from tests.integration.worker_helpers import wait_until

pytestmark = pytest.mark.slow

SECRET = "acceptance-secret-" + "s" * 40
HANDLERS = "adapters.worker.examples:HANDLERS"
WORKER_OPTIONS = [
    "--lease-seconds", "2",
    "--heartbeat-timeout", "1.5",
    "--heartbeat-interval", "0.3",
    "--grace-seconds", "2",
]  # fmt: skip


def token(tenant: str | None, *roles: Role) -> str:
    authority = TokenAuthority(SECRET.encode())
    return authority.issue("acceptance", tenant, roles, ttl_seconds=600, now=datetime.now(UTC))


@pytest.fixture
def server(backend: Settings, tmp_path: Path) -> Iterator[str]:
    """``fleetlog serve`` on a free port, reaping every 0.1 s; its URL."""
    store = (
        ["--database-url", backend.database_url]
        if backend.database_url
        else ["--data-dir", str(backend.data_dir)]
    )
    args = ["serve", "--port", "0", "--reaper-interval", "0.1", "--log-level", "warning", *store]
    serve = FleetlogProcess("serve", args, tmp_path, environment({"FLEETLOG_JWT_SECRET": SECRET}))
    try:
        yield serve.wait_for_url()
        assert serve.stop() == 0, serve.tail()
    finally:
        serve.close()


def worker(name: str, url: str, logs: Path, *extra: str, worker_token: str | None = None) -> FleetlogProcess:
    """``fleetlog worker --url``; the token in ``$FLEETLOG_TOKEN`` unless given as ``--token``."""
    args = ["worker", "--url", url, "--handlers", HANDLERS, "--factory-id", name, *WORKER_OPTIONS, *extra]
    env = {"FLEETLOG_TOKEN": token("acme", *WORKER_ROLES)}
    if worker_token is not None:
        args += ["--token", worker_token]
    return FleetlogProcess(name, args, logs, environment(env))


def events(client: FleetClient, job: JobView, kind: str) -> list[HistoryEntry]:
    return [e for e in client.history(job.id) if e.type == kind]


def test_workers_over_http_drain_jobs_and_a_killed_one_is_reaped_and_fenced(
    server: str, tmp_path: Path
) -> None:
    client = FleetClient(server, token("acme", Role.SUBMITTER, Role.READER))
    a_token = token("acme", *WORKER_ROLES)
    a: FleetlogProcess | None = None
    others: list[FleetlogProcess] = []
    try:
        # Given a 3-second job running in worker process A (its token given as --token)
        spec = {"queue": "sleep", "lease_seconds": 2, "payload": {"seconds": 3.0, "step": 0.1}}
        job = client.submit(spec).job
        a = worker("proc-a", server, tmp_path, "--concurrency", "1", worker_token=a_token)

        def mid_job() -> JobView | None:
            assert a is not None and a.alive, a.tail() if a else ""
            view = client.get_job(job.id)
            return view if view.state == "running" and resume_point(view.checkpoint) >= 3 else None

        epoch_a = wait_until(mid_job, timeout=30, what="A to be mid-job").epoch

        # When A is killed outright, 30 more jobs arrive, and workers B and C start
        a.kill()
        done_at_kill = resume_point(client.get_job(job.id).checkpoint)
        batch = client.submit_batch([{"queue": "noop", "payload": {"n": n}} for n in range(30)])
        others = [worker(name, server, tmp_path, "--concurrency", "2") for name in ("proc-b", "proc-c")]

        # Then every job succeeds: the server's reaper freed A's job for B or C
        ids = [job.id] + [r.job_id for r in batch if r.job_id is not None]
        wait_until(
            lambda: all(client.get_job(i).state == "succeeded" for i in ids),
            timeout=40,
            what="every job to succeed",
        )
        [expired] = events(client, job, "LeaseExpired")
        assert expired.data["epoch"] == epoch_a
        assert expired.data["reason"] in ("factory_down", "lease_timeout")
        takeover = events(client, job, "LeaseGranted")[-1]
        assert takeover.data["factory_id"] in ("proc-b", "proc-c")
        assert takeover.data["epoch"] > epoch_a
        # And the job resumed from A's last checkpoint, and each batch job ran once
        view = client.get_job(job.id)
        assert isinstance(view.result, dict) and view.result["resumed_from"] == done_at_kill >= 3
        for job_id in ids[1:]:
            assert [e.type for e in client.history(job_id)].count("JobSucceeded") == 1

        # When A's late write arrives with its old epoch
        late = httpx.patch(
            f"{server}/v1/jobs/{job.id}",
            json={"epoch": epoch_a, "checkpoint": {"done": 99}},
            headers={"Authorization": f"Bearer {a_token}"},
        )

        # Then it is refused 409 stale-epoch, recorded, and changes nothing
        assert late.status_code == 409
        assert late.headers["content-type"].startswith("application/problem+json")
        problem = late.json()
        assert problem["code"] == "stale-epoch" and problem["presented_epoch"] == epoch_a
        assert problem["current_epoch"] > epoch_a
        with FleetClient(server, a_token) as dead, pytest.raises(StaleEpoch):
            dead.succeed(job.id, epoch_a, result="too late")
        rejection = events(client, job, "StaleWriteRejected")[0]
        assert (rejection.data["presented_epoch"], rejection.data["command"]) == (epoch_a, "checkpoint")
        assert client.get_job(job.id).checkpoint == {"done": 30}

        # And the survivors stop gracefully on SIGTERM, without waiting out their long polls
        for survivor in others:
            started = time.monotonic()
            assert survivor.stop() == 0, survivor.tail()
            assert time.monotonic() - started < 10
            assert "stopped:" in survivor.output()
    finally:
        client.close()
        for process in [a, *others]:
            if process is not None:
                process.close()


def test_a_worker_with_a_bad_token_stops_at_once_and_says_why(
    live_server: LiveServer, tmp_path: Path
) -> None:
    env = environment({"FLEETLOG_TOKEN": "not-a-token"})
    args = ["-m", "adapters.cli", "worker", "--url", live_server.url, "--handlers", HANDLERS]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, *args], check=False, env=env, capture_output=True, text=True, timeout=60
    )
    # (at once: a process start and one refused heartbeat, not a wait for claims never made)
    assert time.monotonic() - started < 15
    assert done.returncode == 1
    assert "cannot start" in done.stderr and "token" in done.stderr


@pytest.mark.parametrize(
    ("extra", "env", "complaint"),
    [
        (["--url", "http://127.0.0.1:9"], {}, "needs a token"),
        (["--url", "http://127.0.0.1:9", "--tenant", "acme"], {"FLEETLOG_TOKEN": "t"}, "token decides"),
        (["--data-dir", "x", "--token", "t", "--all-tenants"], {}, "--token needs --url"),
        (["--data-dir", "x", "--no-refill", "--all-tenants"], {}, "--no-refill needs --url"),
        ([], {}, "needs --tenant"),
    ],
)
def test_worker_arguments_are_checked_per_mode(extra: list[str], env: dict[str, str], complaint: str) -> None:
    args = [sys.executable, "-m", "adapters.cli", "worker", "--handlers", HANDLERS, *extra]
    done = subprocess.run(args, check=False, env=environment(env), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert complaint in done.stderr
