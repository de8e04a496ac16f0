"""The sink: one insert per table, retried batches dropped everywhere (tables and
aggregates), aggregates equal to the raw tables, and what the verifier reads back."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest

from adapters.analytics.sink import RAW_TABLES
from projections.analytics.columns import COLUMNS
from tests.analytics.clickhouse_rows import T0, make_event, make_insight, make_latest, make_run
from tests.analytics.conftest import Ch

AGGREGATE_TABLES = ("tenant_hourly", "model_daily")


def _raw_counts(ch: Ch) -> dict[str, int]:
    """Rows as inserted (no FINAL): a duplicate would show here before any merge."""
    db = ch.settings.database
    return {t: int(str(ch.scalar(f"SELECT count() FROM {db}.{t}"))) for t in (*RAW_TABLES, *AGGREGATE_TABLES)}


def _batch(job: uuid.UUID, first: int) -> dict[str, list[tuple[object, ...]]]:
    return {
        "fleet_events": [
            make_event(originator_id=job, version=1, notification_id=first, type="JobSubmitted"),
            make_event(originator_id=job, version=2, notification_id=first + 1, type="LeaseGranted"),
            make_event(originator_id=job, version=3, notification_id=first + 2, type="JobSucceeded"),
        ],
        "job_runs": [make_run(job_id=job, notification_id=first + 2)],
        "run_insights": [make_insight(job_id=job, notification_id=first + 2)],
        "jobs_latest": [make_latest(job_id=job, version=3, notification_id=first + 2)],
    }


def test_the_same_batch_written_twice_lands_once_everywhere(ch: Ch) -> None:
    # Given a batch written once
    batch = _batch(uuid.uuid4(), first=1)
    ch.sink.write(batch, COLUMNS, "analytics:1-3")
    once = _raw_counts(ch)
    hourly_once = ch.rows(f"SELECT * FROM {ch.settings.database}.tenant_hourly_v")
    # When the consumer retries it with the same token (a crash before the position moved)
    ch.sink.write(batch, COLUMNS, "analytics:1-3")
    # Then no table and no aggregate holds anything twice
    assert _raw_counts(ch) == once
    assert once["fleet_events"] == 3 and once["tenant_hourly"] >= 1
    assert ch.rows(f"SELECT * FROM {ch.settings.database}.tenant_hourly_v") == hourly_once
    (submitted, succeeded, runs) = ch.rows(
        f"SELECT submitted, succeeded, runs FROM {ch.settings.database}.tenant_hourly_v"
    )[0]
    assert (submitted, succeeded, runs) == (1, 1, 1)
    assert ch.scalar(f"SELECT runs FROM {ch.settings.database}.model_daily_v") == 1


def test_a_batch_cut_short_lands_whole_on_retry(ch: Ch) -> None:
    # Given a crash after the first table's insert of a batch
    batch = _batch(uuid.uuid4(), first=10)
    ch.sink.write({"fleet_events": batch["fleet_events"]}, COLUMNS, "analytics:10-12")
    # When the batch is written again, whole, under the same token
    ch.sink.write(batch, COLUMNS, "analytics:10-12")
    # Then every table has it exactly once
    counts = _raw_counts(ch)
    assert [counts[t] for t in RAW_TABLES] == [3, 1, 1, 1]
    assert ch.scalar(f"SELECT submitted FROM {ch.settings.database}.tenant_hourly_v") == 1


def test_different_batches_with_identical_aggregate_blocks_both_count(ch: Ch) -> None:
    # Two jobs submitted in the same hour: each batch's view block is the same
    # (acme, 10:00, submitted 1); only the tokens tell them apart
    for n in (1, 2):
        ch.sink.write({"fleet_events": [make_event(notification_id=n)]}, COLUMNS, f"analytics:{n}-{n}")
    assert ch.scalar(f"SELECT submitted FROM {ch.settings.database}.tenant_hourly_v") == 2


def test_empty_tables_are_not_written(ch: Ch) -> None:
    ch.sink.write({"fleet_events": [], "job_runs": []}, COLUMNS, "analytics:1-1")
    assert set(_raw_counts(ch).values()) == {0}


def _history(rng: random.Random) -> list[dict[str, list[tuple[object, ...]]]]:
    """Batches over two tenants, several hours and days, three models."""
    batches: list[dict[str, list[tuple[object, ...]]]] = []
    n = 0
    for _ in range(6):
        batch: dict[str, list[tuple[object, ...]]] = {t: [] for t in RAW_TABLES}
        for _ in range(rng.randint(5, 15)):
            n += 1
            tenant = rng.choice(["acme", "globex"])
            at = T0 + timedelta(minutes=rng.randint(0, 60 * 50))
            kind = rng.choice(
                [
                    "JobSubmitted",
                    "JobSucceeded",
                    "AttemptFailed",
                    "JobDeadLettered",
                    "LeaseExpired",
                    "StaleWriteRejected",
                    "LeaseGranted",
                ]
            )
            batch["fleet_events"].append(make_event(tenant=tenant, at=at, type=kind, notification_id=n))
            ready = at - timedelta(seconds=rng.randint(0, 600))
            leased = ready + timedelta(milliseconds=rng.randint(0, 90_000))
            outcome = rng.choice(["succeeded", "failed", "expired", "stale_rejected"])
            batch["job_runs"].append(
                make_run(
                    tenant=tenant,
                    ready_at=ready,
                    leased_at=leased,
                    ended_at=at,
                    outcome=outcome,
                    notification_id=n,
                )
            )
            batch["run_insights"].append(
                make_insight(
                    tenant=tenant,
                    at=at,
                    model=rng.choice(["m-large", "m-small", ""]),
                    tokens_in=rng.randint(0, 10**6),
                    tokens_out=rng.randint(0, 10**5),
                    tokens_cached=rng.randint(0, 10**5),
                    cost_usd=rng.randint(0, 10_000) / 1000,
                    notification_id=n,
                )
            )
        batches.append(batch)
    return batches


def test_aggregates_agree_with_the_raw_tables(ch: Ch) -> None:
    # Given a history written in batches, one of them retried
    batches = _history(random.Random(4))
    for i, batch in enumerate(batches):
        ch.sink.write(batch, COLUMNS, f"analytics:{i}")
    ch.sink.write(batches[2], COLUMNS, "analytics:2")
    db = ch.settings.database
    # Then the hourly counts are the raw events' counts
    expected = ch.rows(
        f"""SELECT tenant, toStartOfHour(toDateTime(at, 'UTC')) AS hour,
               countIf(type = 'JobSubmitted'), countIf(type = 'JobSucceeded'),
               countIf(type = 'AttemptFailed'), countIf(type = 'JobDeadLettered'),
               countIf(type = 'LeaseExpired'), countIf(type = 'StaleWriteRejected')
           FROM {db}.fleet_events FINAL
           WHERE type IN ('JobSubmitted', 'JobSucceeded', 'AttemptFailed', 'JobDeadLettered', 'LeaseExpired',
                          'StaleWriteRejected')
           GROUP BY tenant, hour ORDER BY tenant, hour"""
    )
    got = ch.rows(
        f"""SELECT tenant, hour, submitted, succeeded, failed, dead_lettered, reaped, stale_refused
           FROM {db}.tenant_hourly_v
           WHERE submitted + succeeded + failed + dead_lettered + reaped + stale_refused > 0
           ORDER BY tenant, hour"""
    )
    assert got == expected and len(got) > 10
    # And the run quantiles are the raw runs' (exact below the 8192-value reservoir)
    expected_runs = ch.rows(
        f"""SELECT tenant, toStartOfHour(toDateTime(ended_at, 'UTC')) AS hour, count(),
               quantiles(0.5, 0.95, 0.99)(wait_ms), quantiles(0.5, 0.95, 0.99)(run_ms)
           FROM {db}.job_runs FINAL WHERE outcome != 'stale_rejected'
           GROUP BY tenant, hour ORDER BY tenant, hour"""
    )
    got_runs = ch.rows(
        f"""SELECT tenant, hour, runs,
               [wait_p50_ms, wait_p95_ms, wait_p99_ms], [run_p50_ms, run_p95_ms, run_p99_ms]
           FROM {db}.tenant_hourly_v WHERE runs > 0 ORDER BY tenant, hour"""
    )
    assert [r[:3] for r in got_runs] == [r[:3] for r in expected_runs]
    for mine, theirs in zip(got_runs, expected_runs, strict=True):
        assert mine[3] == pytest.approx(theirs[3]) and mine[4] == pytest.approx(theirs[4])
    # And the model days are the raw insights' sums
    expected_models = ch.rows(
        f"""SELECT tenant, model, toDate(at, 'UTC') AS day, count(), sum(tokens_in), sum(tokens_out),
               sum(tokens_cached), round(sum(cost_usd), 6)
           FROM {db}.run_insights FINAL GROUP BY tenant, model, day ORDER BY tenant, model, day"""
    )
    got_models = ch.rows(
        f"""SELECT tenant, model, day, runs, tokens_in, tokens_out, tokens_cached, round(cost_usd, 6)
           FROM {db}.model_daily_v ORDER BY tenant, model, day"""
    )
    assert got_models == expected_models and len(got_models) > 5


def test_pressure_reads_parts_and_merges(ch: Ch) -> None:
    # Given merges stopped and three inserts into one partition: three active parts
    ch.client.command(f"SYSTEM STOP MERGES {ch.settings.database}.fleet_events")
    for n in range(1, 4):
        ch.sink.write({"fleet_events": [make_event(notification_id=n)]}, COLUMNS, f"analytics:{n}")
    pressure = ch.sink.pressure()
    assert pressure.active_parts_max >= 3
    assert pressure.merges_running >= 0
    # And once merged, the partition is down to one part
    ch.client.command(f"SYSTEM START MERGES {ch.settings.database}.fleet_events")
    ch.client.command(f"OPTIMIZE TABLE {ch.settings.database}.fleet_events FINAL")
    ch.client.command(f"OPTIMIZE TABLE {ch.settings.database}.tenant_hourly FINAL")
    ch.client.command(f"OPTIMIZE TABLE {ch.settings.database}.schema_migrations FINAL")
    assert ch.sink.pressure().active_parts_max == 1


def test_row_counts_and_version_ranges_see_through_duplicates(ch: Ch) -> None:
    # Given job a (versions 1..3) written twice under different tokens (a duplicate the
    # raw table only collapses on merge), and job b in another tenant
    a, b = uuid.uuid4(), uuid.uuid4()
    events = [make_event(originator_id=a, version=v, notification_id=v) for v in (1, 2, 3)]
    ch.sink.write({"fleet_events": events}, COLUMNS, "analytics:1-3")
    ch.sink.write({"fleet_events": events}, COLUMNS, "other:1-3")
    ch.sink.write(
        {"fleet_events": [make_event(originator_id=b, tenant="globex", notification_id=4)]}, COLUMNS, "x"
    )
    # Then the verifier's view counts each event once
    assert ch.sink.row_counts() == {"fleet_events": 4, "job_runs": 0, "run_insights": 0, "jobs_latest": 0}
    assert ch.sink.version_ranges() == {a: (1, 3, 3), b: (1, 1, 1)}
    assert ch.sink.version_ranges("globex") == {b: (1, 1, 1)}
    assert ch.sink.version_ranges("nobody") == {}
