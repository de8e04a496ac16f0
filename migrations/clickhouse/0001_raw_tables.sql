-- ClickHouse schema of the analytics projection (docs/analytics-design.md): the four raw
-- tables the analytics fold writes. Applied by adapters/analytics/migrate.py, recorded
-- in {db}.schema_migrations; forward-only like the other migrations.
--
-- One text serves a single node (chDB or one server) and a cluster. The templating is
-- deliberately tiny; migrate.py substitutes exactly these placeholders and refuses any
-- other {...}:
--
--   {db}              the database (`fleetlog`, or e.g. `fleetlog_rebuild` for a rebuild)
--   {on_cluster}      ''  |  ON CLUSTER '<cluster>'
--   {local}           ''  |  _local   -- suffix of the tables that store rows
--   {cluster}         the cluster's name (only in cluster-only statements)
--   {engine:X(args)}  X(args)  |  ReplicatedX('/clickhouse/tables/{uuid}/{shard}', '{replica}', args)
--
-- A statement with a comment line `-- cluster only` runs in cluster mode only: there,
-- each storage table is <name>_local on every node, and <name> is a Distributed table
-- over it, so readers and the sink use the same names in both modes. Materialized views
-- read and write the local tables (they fire on each shard's part of an insert).
--
-- Statements end with `;` at the end of a line. ClickHouse DDL is not transactional, so
-- every statement is idempotent (IF NOT EXISTS): a migration cut short re-runs whole.
--
-- Every table that receives inserts keeps a deduplication window: the consumer tags
-- each INSERT with insert_deduplication_token, and a retried batch (after a crash
-- between writing and moving its position) is dropped by ClickHouse, in the table and,
-- with deduplicate_blocks_in_dependent_materialized_views, in the views' targets.
-- Replicated tables use replicated_deduplication_window; the setting is accepted by
-- both engines, so both are set.
--
-- The replica path uses {uuid}, not the table's name: rebuilds swap tables between
-- databases with EXCHANGE TABLES, and a name-based path would then point at the wrong
-- table's replicas.

-- One row per event. ReplacingMergeTree: a row written twice (same key) collapses on
-- merge; read with FINAL where an exact count matters.
CREATE TABLE IF NOT EXISTS {db}.fleet_events{local} {on_cluster}
(
    tenant LowCardinality(String),
    aggregate LowCardinality(String),
    originator_id UUID,
    version UInt32,
    notification_id UInt64,
    type LowCardinality(String),
    at DateTime64(6, 'UTC'),
    factory_id String,
    epoch UInt32,
    queue LowCardinality(String),
    attrs String,
    job_id UUID ALIAS originator_id
)
ENGINE = {engine:ReplacingMergeTree}
PARTITION BY toYYYYMM(at)
ORDER BY (tenant, aggregate, originator_id, version)
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

-- One row per attempt that ended (and one per refused stale write).
CREATE TABLE IF NOT EXISTS {db}.job_runs{local} {on_cluster}
(
    tenant LowCardinality(String),
    job_id UUID,
    queue LowCardinality(String),
    kind LowCardinality(String),
    priority UInt8,
    attempt UInt32,
    epoch UInt32,
    factory_id String,
    ready_at DateTime64(6, 'UTC'),
    leased_at DateTime64(6, 'UTC'),
    ended_at DateTime64(6, 'UTC'),
    wait_ms Float64,
    run_ms Float64,
    outcome LowCardinality(String),
    error_kind LowCardinality(String),
    retryable UInt8,
    notification_id UInt64
)
ENGINE = {engine:ReplacingMergeTree}
PARTITION BY toYYYYMM(ended_at)
ORDER BY (tenant, job_id, notification_id)
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

-- One row per ended run that reported usage. Counters are UInt64: the domain bounds
-- them below only, and a value that did not fit would stop the consumer for good.
CREATE TABLE IF NOT EXISTS {db}.run_insights{local} {on_cluster}
(
    tenant LowCardinality(String),
    job_id UUID,
    queue LowCardinality(String),
    attempt UInt32,
    epoch UInt32,
    factory_id String,
    model LowCardinality(String),
    tokens_in UInt64,
    tokens_out UInt64,
    tokens_cached UInt64,
    cost_usd Float64,
    turns UInt64,
    tool_calls UInt64,
    files_changed UInt64,
    lines_added UInt64,
    lines_deleted UInt64,
    outcome LowCardinality(String),
    at DateTime64(6, 'UTC'),
    notification_id UInt64
)
ENGINE = {engine:ReplacingMergeTree}
PARTITION BY toYYYYMM(at)
ORDER BY (tenant, job_id, notification_id)
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

-- Each job's state after its latest batch; the highest version wins on merge. Not
-- partitioned by time: replacing only happens within a partition.
CREATE TABLE IF NOT EXISTS {db}.jobs_latest{local} {on_cluster}
(
    tenant LowCardinality(String),
    job_id UUID,
    queue LowCardinality(String),
    kind LowCardinality(String),
    priority UInt8,
    state LowCardinality(String),
    phase LowCardinality(String),
    epoch UInt32,
    attempts UInt32,
    factory_id String,
    created_at DateTime64(6, 'UTC'),
    updated_at DateTime64(6, 'UTC'),
    version UInt32,
    notification_id UInt64
)
ENGINE = {engine:ReplacingMergeTree(version)}
ORDER BY (tenant, job_id)
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

-- Sharding keys keep each job's (each aggregate's) rows on one shard, so replacing works
-- and a retried insert splits into the same per-shard blocks (and deduplicates).
-- cluster only
CREATE TABLE IF NOT EXISTS {db}.fleet_events {on_cluster}
AS {db}.fleet_events_local
ENGINE = Distributed('{cluster}', '{db}', 'fleet_events_local', cityHash64(originator_id));

-- cluster only
CREATE TABLE IF NOT EXISTS {db}.job_runs {on_cluster}
AS {db}.job_runs_local
ENGINE = Distributed('{cluster}', '{db}', 'job_runs_local', cityHash64(job_id));

-- cluster only
CREATE TABLE IF NOT EXISTS {db}.run_insights {on_cluster}
AS {db}.run_insights_local
ENGINE = Distributed('{cluster}', '{db}', 'run_insights_local', cityHash64(job_id));

-- cluster only
CREATE TABLE IF NOT EXISTS {db}.jobs_latest {on_cluster}
AS {db}.jobs_latest_local
ENGINE = Distributed('{cluster}', '{db}', 'jobs_latest_local', cityHash64(job_id));
