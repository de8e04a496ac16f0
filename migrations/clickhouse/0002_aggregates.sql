-- Aggregates ClickHouse keeps up to date as rows arrive: AggregatingMergeTree targets
-- fed by materialized views with -State functions, and plain views (-Merge) for
-- analysts. Placeholders: see 0001_raw_tables.sql.
--
-- The views compute nothing from history: they only fold what is inserted after they
-- exist. A rebuild (fresh database, then swap) is how they cover older rows.
--
-- Counts come from fleet_events, so they are exact as long as no event is inserted
-- twice under different tokens (the consumer's pending range guarantees that); the
-- raw tables would collapse such a duplicate on merge, an aggregate cannot.

-- Per tenant and hour. Event counts by event type; wait and run time quantiles over
-- runs with a real lease (a stale_rejected row's lease times are stand-ins, equal to
-- its end), bucketed by the hour the run ended, like the success and failure counts.
-- `runs` is the quantiles' sample size. An hour with events but no timed run has
-- empty quantile states (the view shows nan).
CREATE TABLE IF NOT EXISTS {db}.tenant_hourly{local} {on_cluster}
(
    tenant LowCardinality(String),
    hour DateTime('UTC'),
    submitted AggregateFunction(sum, UInt64),
    succeeded AggregateFunction(sum, UInt64),
    failed AggregateFunction(sum, UInt64),
    dead_lettered AggregateFunction(sum, UInt64),
    reaped AggregateFunction(sum, UInt64),
    stale_refused AggregateFunction(sum, UInt64),
    runs AggregateFunction(count),
    wait_ms AggregateFunction(quantiles(0.5, 0.95, 0.99), Float64),
    run_ms AggregateFunction(quantiles(0.5, 0.95, 0.99), Float64)
)
ENGINE = {engine:AggregatingMergeTree}
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, hour)
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

-- Only the counted event types pass the WHERE, so most events cost the view nothing.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.tenant_hourly_from_events {on_cluster}
TO {db}.tenant_hourly{local}
AS SELECT
    tenant,
    toStartOfHour(toDateTime(at, 'UTC')) AS hour,
    sumState(toUInt64(type = 'JobSubmitted')) AS submitted,
    sumState(toUInt64(type = 'JobSucceeded')) AS succeeded,
    sumState(toUInt64(type = 'AttemptFailed')) AS failed,
    sumState(toUInt64(type = 'JobDeadLettered')) AS dead_lettered,
    sumState(toUInt64(type = 'LeaseExpired')) AS reaped,
    sumState(toUInt64(type = 'StaleWriteRejected')) AS stale_refused
FROM {db}.fleet_events{local}
WHERE type IN ('JobSubmitted', 'JobSucceeded', 'AttemptFailed', 'JobDeadLettered', 'LeaseExpired',
               'StaleWriteRejected')
GROUP BY tenant, hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.tenant_hourly_from_runs {on_cluster}
TO {db}.tenant_hourly{local}
AS SELECT
    tenant,
    toStartOfHour(toDateTime(ended_at, 'UTC')) AS hour,
    countState() AS runs,
    quantilesState(0.5, 0.95, 0.99)(wait_ms) AS wait_ms,
    quantilesState(0.5, 0.95, 0.99)(run_ms) AS run_ms
FROM {db}.job_runs{local}
WHERE outcome != 'stale_rejected' AND toUnixTimestamp64Micro(leased_at) > 0
GROUP BY tenant, hour;

-- Per tenant, model and day (UTC), from the runs that reported usage.
CREATE TABLE IF NOT EXISTS {db}.model_daily{local} {on_cluster}
(
    tenant LowCardinality(String),
    model LowCardinality(String),
    day Date,
    runs AggregateFunction(count),
    tokens_in AggregateFunction(sum, UInt64),
    tokens_out AggregateFunction(sum, UInt64),
    tokens_cached AggregateFunction(sum, UInt64),
    cost_usd AggregateFunction(sum, Float64)
)
ENGINE = {engine:AggregatingMergeTree}
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, model, day)
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.model_daily_from_insights {on_cluster}
TO {db}.model_daily{local}
AS SELECT
    tenant,
    model,
    toDate(at, 'UTC') AS day,
    countState() AS runs,
    sumState(tokens_in) AS tokens_in,
    sumState(tokens_out) AS tokens_out,
    sumState(tokens_cached) AS tokens_cached,
    sumState(cost_usd) AS cost_usd
FROM {db}.run_insights{local}
GROUP BY tenant, model, day;

-- Reads only (the views insert into the local tables), so no sharding key.
-- cluster only
CREATE TABLE IF NOT EXISTS {db}.tenant_hourly {on_cluster}
AS {db}.tenant_hourly_local
ENGINE = Distributed('{cluster}', '{db}', 'tenant_hourly_local');

-- cluster only
CREATE TABLE IF NOT EXISTS {db}.model_daily {on_cluster}
AS {db}.model_daily_local
ENGINE = Distributed('{cluster}', '{db}', 'model_daily_local');

-- What analysts query: one row per tenant and hour, states merged (across parts and,
-- in cluster mode, shards). Quantiles are nan for an hour without timed runs; the
-- repeated quantilesMerge is computed once (ClickHouse merges identical aggregates).
CREATE VIEW IF NOT EXISTS {db}.tenant_hourly_v {on_cluster}
AS SELECT
    tenant,
    hour,
    sumMerge(submitted) AS submitted,
    sumMerge(succeeded) AS succeeded,
    sumMerge(failed) AS failed,
    sumMerge(dead_lettered) AS dead_lettered,
    sumMerge(reaped) AS reaped,
    sumMerge(stale_refused) AS stale_refused,
    countMerge(runs) AS runs,
    quantilesMerge(0.5, 0.95, 0.99)(wait_ms)[1] AS wait_p50_ms,
    quantilesMerge(0.5, 0.95, 0.99)(wait_ms)[2] AS wait_p95_ms,
    quantilesMerge(0.5, 0.95, 0.99)(wait_ms)[3] AS wait_p99_ms,
    quantilesMerge(0.5, 0.95, 0.99)(run_ms)[1] AS run_p50_ms,
    quantilesMerge(0.5, 0.95, 0.99)(run_ms)[2] AS run_p95_ms,
    quantilesMerge(0.5, 0.95, 0.99)(run_ms)[3] AS run_p99_ms
FROM {db}.tenant_hourly
GROUP BY tenant, hour;

CREATE VIEW IF NOT EXISTS {db}.model_daily_v {on_cluster}
AS SELECT
    tenant,
    model,
    day,
    countMerge(runs) AS runs,
    sumMerge(tokens_in) AS tokens_in,
    sumMerge(tokens_out) AS tokens_out,
    sumMerge(tokens_cached) AS tokens_cached,
    sumMerge(cost_usd) AS cost_usd
FROM {db}.model_daily
GROUP BY tenant, model, day;
