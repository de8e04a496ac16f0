"""Driving ``fleetlog mcp`` as an MCP client would: the real console script in a child
process, spoken to over stdio by the SDK's ``stdio_client`` and ``ClientSession``.

``Store`` is one fresh store (a temp embedded data dir, or a new PostgreSQL database)
with its signing secret: it mints tokens, gives the server the environment it needs,
and opens a ``Fleet`` in this process to arrange or check what the server cannot see.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp_types import CallToolResult, TextContent

from adapters.auth import TokenAuthority
from adapters.bootstrap import Settings, build_app
from coordinator.fleet import Fleet
from coordinator.identity import Role
from tests.acceptance.cli_runner import fleetlog_command
from tests.support import fleet_wide

ROOT = Path(__file__).resolve().parents[2]
SESSION_TIMEOUT = 30.0
"""Generous: a session normally takes about a second; this only stops a hang."""


@dataclass
class Store:
    settings: Settings
    env: dict[str, str]
    """What the server process needs to find this store and its secret."""
    secret: bytes
    errlog: Path
    """The server's stderr, shown when a test fails."""

    def token(
        self,
        tenant: str | None,
        *roles: Role,
        subject: str = "agent",
        ttl_seconds: float = 600,
        now: datetime | None = None,
    ) -> str:
        return TokenAuthority(self.secret).issue(
            subject,
            tenant,
            roles or (Role.SUBMITTER, Role.READER),
            ttl_seconds=ttl_seconds,
            now=now or datetime.now(UTC),
        )

    def server_env(self, token: str | None) -> dict[str, str]:
        return {**self.env, **({"FLEETLOG_TOKEN": token} if token is not None else {})}

    @contextmanager
    def fleet(self) -> Iterator[Fleet]:
        fleet = build_app(self.settings)
        try:
            yield fleet
        finally:
            fleet.close()

    def verify_projections(self) -> None:
        with self.fleet() as fleet:
            report = fleet.verify_projections(fleet_wide())
        assert report.ok, [d.describe() for d in report.differences]

    def server_log(self) -> str:
        return self.errlog.read_text() if self.errlog.exists() else ""

    @asynccontextmanager
    async def session(self, token: str) -> AsyncIterator[ClientSession]:
        command, *args = fleetlog_command()
        params = StdioServerParameters(
            command=command, args=[*args, "mcp"], env=self.server_env(token), cwd=ROOT
        )
        with self.errlog.open("a") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as s:
                await s.initialize()
                yield s

    def run(self, token: str, scenario: Callable[[ClientSession], Awaitable[None]]) -> None:
        """Run ``scenario`` in one MCP session of a server holding ``token``."""

        async def main() -> None:
            with anyio.fail_after(SESSION_TIMEOUT):
                async with self.session(token) as session:
                    await scenario(session)

        try:
            anyio.run(main)
        except BaseException:
            print("server stderr:\n" + self.server_log())
            raise

    def start_refused(self, token: str | None, extra_args: Sequence[str] = ()) -> dict[str, Any]:
        """Start the server expecting it to refuse: its JSON error object on stderr."""
        ran = subprocess.run(
            [*fleetlog_command(), "mcp", *extra_args],
            env={"PATH": "/usr/bin:/bin", **self.server_env(token)},
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=SESSION_TIMEOUT,
            check=False,
        )
        assert ran.returncode == 2, f"exit {ran.returncode}: {ran.stderr}"
        assert ran.stdout == "", "nothing may reach stdout (the protocol channel)"
        assert "Traceback" not in ran.stderr
        body: dict[str, Any] = json.loads(ran.stderr)
        return body


def ok(result: CallToolResult) -> dict[str, Any]:
    """The structured result of a successful call (the text block says the same)."""
    assert not result.is_error, text(result)
    assert isinstance(result.structured_content, dict)
    assert json.loads(text(result)) == result.structured_content
    return result.structured_content


def error(result: CallToolResult) -> dict[str, Any]:
    """The error object of a refused call: ``{"code", "message", ...}``."""
    assert result.is_error, f"expected a tool error, got {text(result)}"
    body: dict[str, Any] = json.loads(text(result))
    return body


def text(result: CallToolResult) -> str:
    [block] = result.content
    assert isinstance(block, TextContent)
    return block.text
