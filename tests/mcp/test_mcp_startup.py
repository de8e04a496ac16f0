"""``fleetlog mcp`` refuses to start without a usable token or secret: a JSON error
object on stderr, nothing on stdout (the protocol channel), exit status 2. A token
that expires during a session stops working then."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import jwt
import pytest
from mcp import ClientSession, MCPError

from adapters.auth import TokenAuthority
from adapters.auth.tokens import LEEWAY_SECONDS
from adapters.bootstrap import Settings
from coordinator.identity import Role
from tests.mcp.harness import Store, error, ok


def test_without_a_token_the_server_does_not_start(sqlite_store: Store) -> None:
    refusal = sqlite_store.start_refused(token=None)

    assert refusal["error"] == "unauthenticated"
    assert refusal["message"].startswith("FLEETLOG_TOKEN: not set")
    assert "fleetlog token --tenant T --role R" in refusal["message"]


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("garbage", "the token is malformed (Not enough segments)"),
        (
            TokenAuthority(secrets.token_bytes(32)).issue(
                "agent", "acme", [Role.READER], ttl_seconds=600, now=datetime.now(UTC)
            ),
            "the token's signature does not match this server's secret",
        ),
        (
            "expired",
            "the token has expired",
        ),
    ],
    ids=["malformed", "foreign-secret", "expired"],
)
def test_an_unusable_token_stops_the_server(sqlite_store: Store, token: str, reason: str) -> None:
    if token == "expired":
        token = sqlite_store.token("acme", now=datetime.now(UTC) - timedelta(hours=1), ttl_seconds=60)

    refusal = sqlite_store.start_refused(token)

    assert refusal == {
        "error": "unauthenticated",
        "message": f"FLEETLOG_TOKEN: {reason}; mint one with `fleetlog token --tenant T --role R` "
        "(signed with this store's secret)",
        "reason": reason,
    }


def test_the_client_sees_a_server_that_refused_to_start(sqlite_store: Store) -> None:
    async def connect() -> None:
        with anyio.fail_after(30):
            async with sqlite_store.session("garbage"):
                pass

    # When
    with pytest.raises(BaseException) as raised:
        anyio.run(connect)

    # Then the handshake failed at once (the SDK wraps it in its task groups) instead of hanging
    assert [str(e) for e in leaves(raised.value)] == ["Connection closed"]
    assert all(isinstance(e, MCPError) for e in leaves(raised.value))
    assert "the token is malformed" in sqlite_store.server_log()


def leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


@pytest.mark.postgres
def test_postgresql_needs_the_shared_secret(pg_database: str, tmp_path: Path) -> None:
    # Given a token for a PostgreSQL store, but no FLEETLOG_JWT_SECRET for the server
    store = Store(
        Settings(database_url=pg_database),
        {"DATABASE_URL": pg_database},
        secrets.token_bytes(32),
        tmp_path / "server.stderr",
    )

    refusal = store.start_refused(store.token("acme"))

    assert refusal["error"] == "jwt-secret"
    assert refusal["message"].startswith("set FLEETLOG_JWT_SECRET")


def test_the_store_options_are_those_of_the_cli(sqlite_store: Store, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")

    both = sqlite_store.start_refused(
        sqlite_store.token("acme"), extra_args=["--data-dir", "x", "--database-url", "postgresql://h/db"]
    )
    unwritable = sqlite_store.start_refused(
        sqlite_store.token("acme"), extra_args=["--data-dir", str(not_a_dir)]
    )

    assert both["error"] == "conflicting-options"
    assert unwritable["error"] == "jwt-secret"
    assert unwritable["message"].startswith(f"cannot read or create the signing secret in {not_a_dir}")


def test_a_token_that_expires_during_the_session_stops_working(sqlite_store: Store) -> None:
    # Given a token that verifies for about three more seconds (PyJWT allows the leeway)
    token = sqlite_store.token(
        "acme", now=datetime.now(UTC) - timedelta(seconds=LEEWAY_SECONDS), ttl_seconds=3
    )
    expires = jwt.decode(token, options={"verify_signature": False})["exp"] + LEEWAY_SECONDS

    async def scenario(session: ClientSession) -> None:
        assert ok(await session.call_tool("list", {}))["jobs"] == []

        # When it expires
        await anyio.sleep(max(0.0, expires + 1.1 - time.time()))

        # Then the next call is refused, and the server keeps serving the session
        for _ in range(2):
            refusal = error(await session.call_tool("list", {}))
            assert refusal["code"] == "unauthenticated"
            assert refusal["message"].startswith("FLEETLOG_TOKEN: the token has expired")

    sqlite_store.run(token, scenario)
