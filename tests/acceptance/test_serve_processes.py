"""``fleetlog serve --processes N``: one socket served by N processes that start, serve
and stop together."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from adapters.auth import TokenAuthority
from coordinator.identity import ALL_ROLES
from tests.client.processes import FleetlogProcess, environment, run_fleetlog

SECRET = "a-test-secret-that-is-long-enough-for-hs256-0123456789"


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); it has stopped all the same.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def wait_gone(pids: list[int], seconds: float, why: str) -> None:
    deadline = time.monotonic() + seconds
    while not all(gone(p) for p in pids):
        assert time.monotonic() < deadline, why
        time.sleep(0.05)


def start(pg_database: str, tmp_path: Path, name: str) -> tuple[FleetlogProcess, str, dict[str, str]]:
    server = FleetlogProcess(
        name,
        ["serve", "--processes", "2", "--port", "0", "--database-url", pg_database, "--no-analytics"],
        tmp_path,
        environment({"FLEETLOG_JWT_SECRET": SECRET}),
    )
    try:
        url = server.wait_for_url()
    except BaseException:
        server.close()  # never leave a server (and its children) behind
        raise
    token = TokenAuthority(SECRET.encode()).issue(
        "t", "acme", ALL_ROLES, ttl_seconds=600, now=datetime.now(UTC)
    )
    return server, url, {"Authorization": f"Bearer {token}"}


@pytest.mark.postgres
@pytest.mark.slow
def test_two_processes_serve_one_socket_and_stop_together_on_sigterm(
    pg_database: str, tmp_path: Path
) -> None:
    server, url, headers = start(pg_database, tmp_path, "serve-2")
    try:
        children = children_of(server.process.pid)
        assert len(children) == 2, server.tail()
        # Requests on fresh connections, whichever process accepts them
        ids = []
        for i in range(20):
            response = httpx.post(f"{url}/v1/jobs", json={"queue": "q", "payload": {"i": i}}, headers=headers)
            assert response.status_code == 201, response.text
            ids.append(response.json()["job"]["id"])
        # A long-poll on one connection learns of a submit on another, in either process
        answered: dict[str, object] = {}

        def poll() -> None:
            with httpx.Client(base_url=url, headers=headers, timeout=30) as worker:
                while len(answered.get("ids", [])) < 21:  # type: ignore[arg-type]
                    body = {"factory_id": "f1", "max_jobs": 25, "wait_seconds": 10, "queues": ["q"]}
                    jobs = worker.post("/v1/claim", json=body).json()["jobs"]
                    answered.setdefault("ids", []).extend(j["job"]["id"] for j in jobs)  # type: ignore[attr-defined]
                    answered["at"] = time.monotonic()

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        time.sleep(1.0)
        assert answered["ids"] == ids
        last = httpx.post(f"{url}/v1/jobs", json={"queue": "q"}, headers=headers)
        submitted = time.monotonic()
        thread.join(timeout=10)
        assert answered["ids"] == [*ids, last.json()["job"]["id"]]
        assert float(answered["at"]) - submitted < 1.0  # type: ignore[arg-type]
        assert server.stop(timeout=30) == 0, server.tail()
        wait_gone(children, 10, "a child outlived the server")
    finally:
        server.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_a_child_that_dies_stops_the_whole_server(pg_database: str, tmp_path: Path) -> None:
    server, _, _ = start(pg_database, tmp_path, "serve-2-crash")
    try:
        first, second = children_of(server.process.pid)
        os.kill(first, signal.SIGKILL)
        assert server.process.wait(30) == 1, server.tail()
        assert "ended on its own" in server.output()
        wait_gone([second], 10, "the other child was left running")
    finally:
        server.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_children_stop_when_the_parent_is_killed(pg_database: str, tmp_path: Path) -> None:
    server, _, _ = start(pg_database, tmp_path, "serve-2-orphans")
    try:
        children = children_of(server.process.pid)
        assert server.kill() == -signal.SIGKILL
        wait_gone(children, 20, "children outlived a killed parent")
    finally:
        server.close()


def test_several_processes_need_postgres(tmp_path: Path) -> None:
    done = run_fleetlog(["serve", "--processes", "2", "--data-dir", str(tmp_path / "d")], environment({}))
    assert done.returncode == 2
    assert "--processes above 1 needs PostgreSQL" in done.stderr
