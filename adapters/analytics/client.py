"""Where the analytics tables live, and opening a clickhouse_connect client onto them.

Two targets, one SQL: the embedded engine (``chdb:///DIR``, default
``<data_dir>/clickhouse``) or a server (``http(s)://user:pass@host:port/database``).

chDB hosts one engine per process, bound to one directory, and that directory's
``status`` file is locked while the engine runs. clickhouse-connect's chdb backend
gives every client its own connection handle onto that one engine: a second
``open_client`` on the same directory in the same process shares the engine (and its
data) at no cost, which is why this module keeps no client cache of its own. Closing
the last client shuts the engine down (the next open pays its ~1 s start again), and
opening a *different* directory while one is open fails; both open-time refusals
become ``Unavailable`` that say what to do.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from pydantic import BaseModel, ConfigDict, field_validator

from adapters.analytics.errors import unavailable
from coordinator.errors import Unavailable

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CLUSTER = re.compile(r"^[A-Za-z0-9_.{}-]+$")  # braces: a server macro such as {cluster}
_OTHER_PATH = re.compile(r"already initialized with path '([^']*)'")
CONNECT_TIMEOUT_S = 10


class AnalyticsSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    """``chdb:///ABSOLUTE/DIR`` (embedded) or ``http(s)://user:pass@host:port[/database]``."""
    database: str = "fleetlog"
    cluster: str | None = None
    """Cluster mode: DDL runs ON CLUSTER, tables are Replicated with Distributed ones in front."""

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("chdb:///", "http://", "https://")):
            raise ValueError(
                "expected chdb:///ABSOLUTE/DIR (the embedded engine) or "
                "http(s)://user:password@host:port/database (a ClickHouse server)"
            )
        return url

    @field_validator("database")
    @classmethod
    def _identifier(cls, name: str) -> str:
        if not IDENTIFIER.match(name):
            raise ValueError("a database name is letters, digits and underscores")
        return name

    @field_validator("cluster")
    @classmethod
    def _cluster_name(cls, name: str | None) -> str | None:
        if name is not None and not _CLUSTER.match(name):
            raise ValueError("a cluster name is letters, digits, '_', '.', '-' (or a {macro})")
        return name

    @classmethod
    def from_env(cls, environ: Mapping[str, str], data_dir: Path) -> AnalyticsSettings:
        """``CLICKHOUSE_URL`` if set (its path, if any, names the database), else the
        embedded engine under ``data_dir``; ``FLEETLOG_CLICKHOUSE_CLUSTER`` selects a cluster."""
        values: dict[str, object] = {}
        url = environ.get("CLICKHOUSE_URL", "").strip()
        if url:
            values["url"] = url
            path = urlsplit(url).path.strip("/") if not url.startswith("chdb:") else ""
            if path:
                values["database"] = path
        else:
            values["url"] = f"chdb://{(Path(data_dir) / 'clickhouse').resolve()}"
        if environ.get("FLEETLOG_CLICKHOUSE_CLUSTER", "").strip():
            values["cluster"] = environ["FLEETLOG_CLICKHOUSE_CLUSTER"].strip()
        return cls.model_validate(values)

    @property
    def embedded(self) -> bool:
        return self.url.startswith("chdb:")

    @property
    def chdb_dir(self) -> Path:
        return Path(urlsplit(self.url).path)

    def describe(self) -> str:
        """Where the tables are, without credentials."""
        if self.embedded:
            return f"the embedded ClickHouse at {self.chdb_dir}"
        parts = urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]
        return f"ClickHouse at {parts.scheme}://{host}"


def open_client(settings: AnalyticsSettings) -> Client:
    """A client on the server or the embedded engine. Datetimes come back timezone-aware
    (UTC). Our SQL always names ``database.table``, so the client's default database
    does not matter and the database need not exist yet (migrations create it)."""
    if settings.embedded:
        return _open_embedded(settings)
    parts = urlsplit(settings.url)
    dsn = urlunsplit((parts.scheme, parts.netloc, "", parts.query, ""))
    try:
        return clickhouse_connect.get_client(
            dsn=dsn,
            tz_mode="aware",
            connect_timeout=CONNECT_TIMEOUT_S,
            # One client is shared by threads; a session id would serialise their queries
            # server-side (and refuse the concurrent ones).
            autogenerate_session_id=False,
        )
    except ClickHouseError as exc:
        raise unavailable(
            f"cannot reach {settings.describe()}: {_first_line(exc)}; check CLICKHOUSE_URL "
            "(scheme, host, port, user and password) and that the server accepts connections"
        ) from exc


def _open_embedded(settings: AnalyticsSettings) -> Client:
    where = settings.chdb_dir
    try:
        where.mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(dsn=settings.url, tz_mode="aware")
    except OSError as exc:
        raise unavailable(
            f"cannot open {settings.describe()}: {exc}; check that the directory is writable"
        ) from exc
    except ClickHouseError as exc:
        raise _embedded_refusal(settings, exc) from exc


def _embedded_refusal(settings: AnalyticsSettings, exc: ClickHouseError) -> Unavailable:
    text = str(exc)
    other = _OTHER_PATH.search(text)
    if other:
        return unavailable(
            f"this process already has the embedded ClickHouse at {other[1]} open, and chDB "
            f"hosts one directory per process; use that directory or another process to open "
            f"{settings.chdb_dir}"
        )
    holder = _lock_holder(settings.chdb_dir)
    if holder is not None or "Cannot lock file" in text:
        who = f" (pid {holder})" if holder else ""
        return unavailable(
            f"{settings.describe()} is open in another process{who} (a running `fleetlog "
            "serve`?): the embedded engine serves one process; stop that process first, or "
            "point CLICKHOUSE_URL at a ClickHouse server (`fleetlog analytics status` and the "
            "server's /v1/analytics routes work meanwhile)"
        )
    return unavailable(f"cannot open {settings.describe()}: {_first_line(exc)}")


def _lock_holder(directory: Path) -> str | None:
    """The pid in the engine's ``status`` file if another process holds its lock, else None.

    chDB reports a locked directory only on stderr ("Cannot lock file .../status. Another
    server instance in same directory is already running"); the exception says
    "Error initializing EmbeddedServer". So try the lock ourselves: the engine holds an
    exclusive flock on ``status`` while it runs, and the file names its pid.
    """
    status = directory / "status"
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        match = re.search(r"PID:\s*(\d+)", status.read_text(errors="replace"))
        return match[1] if match else ""
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)  # nobody holds it: a stale file from a crashed engine
        return None
    finally:
        os.close(fd)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
