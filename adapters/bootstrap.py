"""The composition root: settings in, a wired ``Fleet`` out. Nothing is built at import."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from eventsourcing import persistence as es
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.store.migrate import MigrationError, migrate_postgres, migrate_sqlite
from adapters.system import SystemClock, SystemRandom, Uuid7Ids
from coordinator.context import Context
from coordinator.errors import InvalidRequest, Unavailable, validation_errors
from coordinator.fleet import Fleet
from coordinator.ports import Clock, IdGenerator, RandomSource, Store
from coordinator.reaper import ReaperConfig
from coordinator.scheduler import SchedulerConfig

if TYPE_CHECKING:
    from adapters.analytics.client import AnalyticsSettings

DEFAULT_DATA_DIR = Path(".fleetlog")


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = DEFAULT_DATA_DIR
    """Embedded mode: where the SQLite event store lives."""
    database_url: str | None = None
    """``postgresql://...``: use PostgreSQL instead of the embedded store."""
    pool_size: int = Field(default=5, ge=1, le=200)
    max_overflow: int = Field(default=10, ge=0, le=200)
    migrate: bool = True
    """Apply pending migrations when the app starts."""
    prepared_statements: bool = True
    """PostgreSQL: run named queries as prepared statements (planned once per connection).
    Turn off behind a transaction-pooling PgBouncer, which tracks only protocol-level
    prepares (``FLEETLOG_PG_PREPARED_STATEMENTS=off``)."""
    clickhouse_url: str | None = None
    """``http(s)://user:pass@host:port[/database]`` or ``chdb:///DIR``; None: the embedded
    engine in ``<data_dir>/clickhouse`` (``CLICKHOUSE_URL``)."""
    clickhouse_database: str | None = None
    """The analytics database (``FLEETLOG_CLICKHOUSE_DATABASE``; default ``fleetlog``, or
    the URL's path)."""
    clickhouse_cluster: str | None = None
    """Cluster mode (``FLEETLOG_CLICKHOUSE_CLUSTER``): Replicated tables, ON CLUSTER DDL."""
    reaper: ReaperConfig = ReaperConfig()
    scheduler: SchedulerConfig = SchedulerConfig()

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: object) -> Settings:
        values: dict[str, object] = {}
        if environ.get("FLEETLOG_DATA_DIR"):
            values["data_dir"] = Path(environ["FLEETLOG_DATA_DIR"])
        if environ.get("DATABASE_URL"):
            values["database_url"] = environ["DATABASE_URL"]
        for key, name in (
            ("clickhouse_url", "CLICKHOUSE_URL"),
            ("clickhouse_database", "FLEETLOG_CLICKHOUSE_DATABASE"),
            ("clickhouse_cluster", "FLEETLOG_CLICKHOUSE_CLUSTER"),
        ):
            if environ.get(name, "").strip():
                values[key] = environ[name].strip()
        if environ.get("FLEETLOG_PG_PREPARED_STATEMENTS"):
            values["prepared_statements"] = environ["FLEETLOG_PG_PREPARED_STATEMENTS"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "fleetlog.db"

    def describe(self) -> str:
        if self.database_url:
            return "postgresql " + self.database_url.split("@")[-1]
        return f"sqlite {self.sqlite_path}"


@contextmanager
def _opening(settings: Settings) -> Iterator[None]:
    """Failures to reach or prepare the store, as coordinator errors that say what to do."""
    try:
        yield
    except MigrationError as exc:
        raise Unavailable(f"{settings.describe()}: {exc}") from exc
    except (OSError, sqlite3.Error, psycopg.Error, es.PersistenceError) as exc:
        hint = (
            "check DATABASE_URL and that PostgreSQL accepts connections"
            if settings.database_url
            else "check that the data directory is writable"
        )
        text = str(exc).strip()
        detail = text.splitlines()[0] if text else type(exc).__name__
        raise Unavailable(f"cannot open {settings.describe()}: {detail}; {hint}") from exc


def migrate(settings: Settings) -> list[str]:
    with _opening(settings):
        if settings.database_url:
            done = migrate_postgres(settings.database_url)
        else:
            done = migrate_sqlite(settings.sqlite_path)
    return [f"{m.version:04d}_{m.name}" for m in done]


def analytics_settings(settings: Settings) -> AnalyticsSettings:
    """Where the analytics tables live (validated: a bad URL is a clear error)."""
    from adapters.analytics.client import AnalyticsSettings  # clickhouse_connect: ~0.4 s to import

    env = {"CLICKHOUSE_URL": settings.clickhouse_url or ""}
    if settings.clickhouse_cluster:
        env["FLEETLOG_CLICKHOUSE_CLUSTER"] = settings.clickhouse_cluster
    try:
        chosen = AnalyticsSettings.from_env(env, settings.data_dir)
        if settings.clickhouse_database:
            chosen = AnalyticsSettings.model_validate(
                chosen.model_dump() | {"database": settings.clickhouse_database}
            )
    except ValidationError as exc:
        raise InvalidRequest("analytics settings", validation_errors(exc)) from None
    return chosen


def migrate_analytics(settings: Settings) -> list[str]:
    """Apply the ClickHouse migrations (``fleetlog migrate``; servers do it on start)."""
    from adapters.analytics.analytics import ClickHouseAnalytics

    chosen = analytics_settings(settings)
    analytics = ClickHouseAnalytics.open(chosen, migrate=False)
    try:
        return analytics.migrate()
    finally:
        analytics.close()


def build_store(settings: Settings) -> Store:
    if settings.migrate:
        migrate(settings)
    with _opening(settings):
        if settings.database_url:
            from adapters.store.postgres import PostgresStore

            return PostgresStore(
                settings.database_url,
                pool_size=settings.pool_size,
                max_overflow=settings.max_overflow,
                prepared_statements=settings.prepared_statements,
            )
        from adapters.store.sqlite import SQLiteStore

        return SQLiteStore(settings.sqlite_path)


def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
    random: RandomSource | None = None,
) -> Fleet:
    """Wire a Fleet: the store for the settings, the system clock, ids and randomness
    (tests pass a fake clock and a seeded random source)."""
    ctx = Context(
        store=build_store(settings),
        clock=clock or SystemClock(),
        ids=ids or Uuid7Ids(),
        random=random or SystemRandom(),
    )
    return Fleet(ctx, reaper=settings.reaper, scheduler=settings.scheduler)
