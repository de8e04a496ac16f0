"""``fleetlog serve`` and ``fleetlog token`` as OS processes."""

from __future__ import annotations

import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.client.processes import FleetlogProcess, environment, run_fleetlog


def token(data_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "adapters.cli", "token", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=environment({}),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.slow
def test_serve_embedded_generates_a_private_secret_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = FleetlogProcess(
        "serve", ["serve", "--port", "0", "--data-dir", str(data)], tmp_path, environment({})
    )
    try:
        url = server.wait_for_url()
        secret = data / "jwt.secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert secret.read_text().strip() not in server.output(), "the secret is never logged"
        admin = token(data, "--tenant", "acme", "--role", "submitter,worker,reader")
        headers = {"Authorization": f"Bearer {admin}"}
        assert httpx.get(f"{url}/readyz").json()["store"] == "sqlite"
        assert httpx.post(f"{url}/v1/jobs", json={"queue": "q"}, headers=headers).status_code == 201

        # a long-poll waiting when SIGTERM arrives is answered at once, not after its wait
        answered: dict[str, object] = {}

        def poll() -> None:
            started = time.monotonic()
            response = httpx.post(
                f"{url}/v1/claim",
                json={"factory_id": "f1", "queues": ["empty"], "wait_seconds": 30},
                headers=headers,
                timeout=60,
            )
            answered["status"] = response.status_code
            answered["seconds"] = time.monotonic() - started

        thread = threading.Thread(target=poll)
        thread.start()
        time.sleep(0.5)
        assert server.stop(timeout=20) == 0
        thread.join(timeout=20)
        assert answered["status"] == 200
        assert float(answered["seconds"]) < 10  # type: ignore[arg-type]
    finally:
        server.close()
    # the same secret is reused by the next server: old tokens still work
    again = FleetlogProcess(
        "serve2", ["serve", "--port", "0", "--data-dir", str(data)], tmp_path, environment({})
    )
    try:
        url = again.wait_for_url()
        listed = httpx.get(f"{url}/v1/jobs", headers={"Authorization": f"Bearer {admin}"})
        assert listed.status_code == 200 and len(listed.json()["jobs"]) == 1
    finally:
        again.stop()
        again.close()


def test_token_command_scopes_roles_and_refuses_bad_input(tmp_path: Path) -> None:
    from adapters.auth import TokenAuthority, load_secret

    data = tmp_path / "data"
    minted = token(
        data, "--tenant", "acme", "--role", "worker", "--role", "reader", "--ttl", "120", "--subject", "ci"
    )
    identity = TokenAuthority(load_secret({}, data, embedded=True)).verify(minted)
    assert identity.tenant == "acme" and identity.subject == "ci"
    assert {str(r) for r in identity.roles} == {"worker", "reader"}
    fleet_wide = TokenAuthority(load_secret({}, data, embedded=True)).verify(
        token(data, "--all-tenants", "--role", "worker")
    )
    assert fleet_wide.tenant is None
    for bad in (
        ["--tenant", "acme", "--role", "root"],
        ["--tenant", "Bad Name", "--role", "reader"],
        ["--role", "reader"],
        ["--tenant", "a", "--role", "reader", "--ttl", "-5"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "adapters.cli", "token", "--data-dir", str(data), *bad],
            capture_output=True,
            text=True,
            env=environment({}),
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, (bad, done.stdout, done.stderr)
        assert done.stdout == ""
        assert done.stderr.strip()


def test_serve_with_postgres_needs_an_explicit_secret(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:5432/postgres"
    done = run_fleetlog(["serve", "--port", "0", "--database-url", url], environment({}))
    assert done.returncode == 2
    assert "FLEETLOG_JWT_SECRET" in done.stderr
