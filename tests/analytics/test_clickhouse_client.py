"""Settings, opening a client, and the choke point: every way of not getting an answer
is ``Unavailable`` saying what to do."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from pydantic import ValidationError

from adapters.analytics.client import AnalyticsSettings, open_client
from adapters.analytics.errors import AnalyticsRefused, driver_errors
from coordinator.errors import InvalidRequest, Unavailable


def test_the_default_is_the_embedded_engine_under_the_data_dir(tmp_path: Path) -> None:
    settings = AnalyticsSettings.from_env({}, Path("relative/data"))
    assert settings.url == f"chdb://{Path('relative/data').resolve()}/clickhouse"
    assert settings.embedded and settings.chdb_dir.is_absolute()
    assert (settings.database, settings.cluster) == ("fleetlog", None)


def test_clickhouse_url_and_cluster_from_the_environment(tmp_path: Path) -> None:
    env = {
        "CLICKHOUSE_URL": "https://bob:s3cret@ch.example:8443/analytics",
        "FLEETLOG_CLICKHOUSE_CLUSTER": "main",
    }
    settings = AnalyticsSettings.from_env(env, tmp_path)
    assert (settings.database, settings.cluster, settings.embedded) == ("analytics", "main", False)
    assert settings.describe() == "ClickHouse at https://ch.example:8443"
    bare = AnalyticsSettings.from_env({"CLICKHOUSE_URL": "http://localhost:8123"}, tmp_path)
    assert bare.database == "fleetlog"


@pytest.mark.parametrize(
    "values",
    [
        {"url": "clickhouse://localhost:9000"},
        {"url": "chdb://relative/dir"},
        {"url": "chdb:///ok", "database": "fleetlog; DROP DATABASE x"},
        {"url": "chdb:///ok", "cluster": "main' SETTINGS x"},
    ],
)
def test_settings_refuse_what_would_reach_sql_unquoted(values: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        AnalyticsSettings.model_validate(values)


def test_a_server_that_does_not_answer_is_unavailable() -> None:
    settings = AnalyticsSettings(url="http://fleet:s3cret@127.0.0.1:1/fleetlog")
    with pytest.raises(Unavailable) as refused:
        open_client(settings)
    message = str(refused.value)
    assert message.startswith(
        "analytics store (ClickHouse) unavailable: cannot reach ClickHouse at http://127.0.0.1:1"
    )
    assert "check CLICKHOUSE_URL" in message and "s3cret" not in message
    assert refused.value.retryable


_HOLDER = textwrap.dedent(
    """
    import sys
    from adapters.analytics.client import AnalyticsSettings, open_client
    client = open_client(AnalyticsSettings(url=sys.argv[1]))
    print("open", flush=True)
    sys.stdin.read()
    client.close()
    """
)


def test_an_engine_directory_open_in_another_process_is_unavailable(tmp_path: Path) -> None:
    # Given another process (a `fleetlog serve`, say) holding the embedded engine
    url = f"chdb://{tmp_path / 'clickhouse'}"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        # When this process opens the same directory, in a child (this one hosts the
        # tests' engine already)
        probe = subprocess.run(
            [sys.executable, "-c", _OPENER, url], capture_output=True, text=True, timeout=60, check=False
        )
        # Then it is told who holds it and what to do
        assert probe.stdout.startswith("Unavailable:"), probe.stdout + probe.stderr
        assert f"is open in another process (pid {holder.pid})" in probe.stdout
        assert "stop that process first, or point CLICKHOUSE_URL at a ClickHouse server" in probe.stdout
    finally:
        holder.communicate("", timeout=60)


_OPENER = textwrap.dedent(
    """
    import sys
    from adapters.analytics.client import AnalyticsSettings, open_client
    from coordinator.errors import Unavailable
    try:
        open_client(AnalyticsSettings(url=sys.argv[1]))
    except Unavailable as exc:
        print(f"Unavailable: {exc}")
    """
)


def test_a_second_engine_directory_in_one_process_is_unavailable(
    ch_embedded: tuple[AnalyticsSettings, Client], tmp_path: Path
) -> None:
    # Given this process hosts the tests' engine; When opening another directory
    with pytest.raises(Unavailable, match="one directory per process") as refused:
        open_client(AnalyticsSettings(url=f"chdb://{tmp_path}"))
    assert str(ch_embedded[0].chdb_dir) in str(refused.value)


def test_the_same_engine_directory_twice_in_one_process_shares_it(
    ch_embedded: tuple[AnalyticsSettings, Client],
) -> None:
    settings, first = ch_embedded
    second = open_client(settings)
    try:
        second.command("CREATE TABLE IF NOT EXISTS default.shared_probe (x UInt8) ENGINE = Memory")
        assert first.query("EXISTS TABLE default.shared_probe").result_rows == [(1,)]
    finally:
        second.command("DROP TABLE IF EXISTS default.shared_probe")
        second.close()
    # Closing the second client leaves the first (and the engine) working
    assert first.query("SELECT 1").result_rows == [(1,)]


@pytest.mark.parametrize(
    ("raised", "user_sql", "expected"),
    [
        (OperationalError("connection reset"), False, Unavailable),
        (DatabaseError("Code: 252. DB::Exception: Too many parts", code=252), False, Unavailable),
        (DatabaseError("Code: 241. DB::Exception: Memory limit exceeded"), False, Unavailable),
        (DatabaseError("Code: 62. DB::Exception: Syntax error", code=62), False, AnalyticsRefused),
        (DatabaseError("Code: 62. DB::Exception: Syntax error", code=62), True, InvalidRequest),
        (OperationalError("connection reset"), True, Unavailable),
    ],
)
def test_the_choke_point(raised: Exception, user_sql: bool, expected: type[Exception]) -> None:
    with (
        pytest.raises(expected) as translated,
        driver_errors("ClickHouse at x", "doing y", user_sql=user_sql),
    ):
        raise raised
    assert translated.value.__cause__ is raised
    assert getattr(translated.value, "retryable", None) == (expected is Unavailable)
