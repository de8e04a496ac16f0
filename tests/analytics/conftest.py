"""Fixtures of the ClickHouse adapter tests: real chDB, and a real server when
``CLICKHOUSE_URL`` is set (those cases skip with a message otherwise).

chDB hosts one engine directory per process, and starting it costs ~1 s: the session
shares one directory and one client, and each test gets a fresh *database* in it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from clickhouse_connect.driver.client import Client

from adapters.analytics.client import AnalyticsSettings, open_client
from adapters.analytics.migrate import drop_schema, migrate_clickhouse
from adapters.analytics.sink import ClickHouseSink


@dataclass(frozen=True)
class Ch:
    """One migrated database: its settings, the shared client, a sink on it."""

    settings: AnalyticsSettings
    client: Client
    sink: ClickHouseSink

    def rows(self, sql: str, **parameters: object) -> list[tuple[object, ...]]:
        return [tuple(r) for r in self.client.query(sql, parameters=parameters).result_rows]

    def scalar(self, sql: str, **parameters: object) -> object:
        return self.rows(sql, **parameters)[0][0]


@pytest.fixture(scope="session")
def ch_embedded(chdb_url: str) -> Iterator[tuple[AnalyticsSettings, Client]]:
    settings = AnalyticsSettings(url=chdb_url)
    client = open_client(settings)
    yield settings, client
    client.close()


@pytest.fixture(scope="session")
def ch_server() -> Iterator[tuple[AnalyticsSettings, Client]]:
    url = os.environ.get("CLICKHOUSE_URL", "")
    if not url.startswith(("http://", "https://")):
        pytest.skip("no ClickHouse server: set CLICKHOUSE_URL=http://user:pass@host:8123 to run these too")
    settings = AnalyticsSettings(url=url)
    client = open_client(settings)
    yield settings, client
    client.close()


@pytest.fixture(params=["chdb", "server"])
def ch_target(request: pytest.FixtureRequest) -> tuple[AnalyticsSettings, Client]:
    """The engine or server a test runs on (database not chosen yet)."""
    name = "ch_embedded" if request.param == "chdb" else "ch_server"
    target: tuple[AnalyticsSettings, Client] = request.getfixturevalue(name)
    return target


@pytest.fixture
def ch(ch_target: tuple[AnalyticsSettings, Client]) -> Iterator[Ch]:
    """A fresh database with every migration applied, dropped afterwards."""
    base, client = ch_target
    settings = base.model_copy(update={"database": fresh_name("t")})
    migrate_clickhouse(client, settings)
    yield Ch(settings, client, ClickHouseSink(client, settings))
    drop_schema(client, base, settings.database)


def fresh_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"
