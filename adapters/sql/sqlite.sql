-- Named queries for SQLite: the same names and meaning as postgres.sql.
--
-- SQLite has one writer at a time and no row locks: every write transaction starts with
-- BEGIN IMMEDIATE, which takes the database write lock before the first read, so what a
-- transaction reads cannot change until it commits (across threads and processes). The
-- "lock_" queries therefore are plain reads here.
--
-- Lists arrive as JSON text (json_each); timestamps are ISO-8601 UTC text with
-- microseconds, which compare correctly as text.

-- name: lock_jobs
SELECT job_id, version, spec, snapshot
FROM fleet_jobs
WHERE job_id IN (SELECT value FROM json_each(:ids))
ORDER BY job_id;

-- name: dependency_status
SELECT job_id, state, phase, json_extract(spec, '$.phases') AS phases,
       json_extract(snapshot, '$.superseded_by') AS superseded_by
FROM fleet_jobs
WHERE tenant = :tenant AND job_id IN (SELECT value FROM json_each(:ids))
ORDER BY job_id;

-- name: dependencies_of
SELECT job_id, depends_on FROM fleet_dependencies
WHERE job_id IN (SELECT value FROM json_each(:ids));

-- name: dependents_of
SELECT e.job_id
FROM fleet_dependencies e JOIN fleet_jobs j ON j.job_id = e.job_id
WHERE e.depends_on IN (SELECT value FROM json_each(:ids))
  AND j.state NOT IN ('succeeded', 'cancelled', 'superseded', 'dead_letter')
ORDER BY e.job_id;

-- name: blocked_dependents_of
SELECT e.job_id, e.depends_on
FROM fleet_dependencies e JOIN fleet_jobs j ON j.job_id = e.job_id
WHERE e.depends_on IN (SELECT value FROM json_each(:ids)) AND j.state = 'blocked'
ORDER BY e.job_id;

-- name: find_idempotent
SELECT tenant, key, job_id, content_hash
FROM fleet_idempotency
WHERE tenant = :tenant AND key = :key;

-- name: tenants_with_work
-- A loose index scan, as on PostgreSQL: one probe of the tenant-ordered index per tenant
-- (SEARCH ... (tenant>?)) instead of a DISTINCT that walked every queued row per claim.
WITH RECURSIVE t(tenant) AS (
    SELECT (SELECT q.tenant FROM fleet_queue q
            WHERE q.available_at <= :now
              AND NOT EXISTS (SELECT 1 FROM json_each(q.capabilities) c
                              WHERE c.value NOT IN (SELECT value FROM json_each(:caps)))
              AND (q.state = 'queued' OR NOT q.has_deps)
              AND (:tenants IS NULL OR q.tenant IN (SELECT value FROM json_each(:tenants)))
              AND (:queues IS NULL OR q.queue IN (SELECT value FROM json_each(:queues)))
            ORDER BY q.tenant LIMIT 1)
  UNION ALL
    SELECT (SELECT q.tenant FROM fleet_queue q
            WHERE q.tenant > t.tenant
              AND q.available_at <= :now
              AND NOT EXISTS (SELECT 1 FROM json_each(q.capabilities) c
                              WHERE c.value NOT IN (SELECT value FROM json_each(:caps)))
              AND (q.state = 'queued' OR NOT q.has_deps)
              AND (:tenants IS NULL OR q.tenant IN (SELECT value FROM json_each(:tenants)))
              AND (:queues IS NULL OR q.queue IN (SELECT value FROM json_each(:queues)))
            ORDER BY q.tenant LIMIT 1)
    FROM t WHERE t.tenant IS NOT NULL
)
SELECT tenant FROM t WHERE tenant IS NOT NULL;

-- name: lock_claimable_tenant
SELECT j.job_id, j.version, j.spec, j.snapshot
FROM fleet_queue q JOIN fleet_jobs j ON j.job_id = q.job_id
WHERE q.tenant = :tenant
  AND q.available_at <= :now
  AND NOT EXISTS (SELECT 1 FROM json_each(q.capabilities) c
                  WHERE c.value NOT IN (SELECT value FROM json_each(:caps)))
  AND (q.state = 'queued' OR NOT q.has_deps)
  AND (:queues IS NULL OR q.queue IN (SELECT value FROM json_each(:queues)))
  AND q.job_id NOT IN (SELECT value FROM json_each(:exclude))
ORDER BY q.priority, q.available_at, q.job_id
LIMIT :limit;

-- name: lock_claimable_any
SELECT j.job_id, j.version, j.spec, j.snapshot
FROM fleet_queue q JOIN fleet_jobs j ON j.job_id = q.job_id
WHERE q.available_at <= :now
  AND NOT EXISTS (SELECT 1 FROM json_each(q.capabilities) c
                  WHERE c.value NOT IN (SELECT value FROM json_each(:caps)))
  AND (q.state = 'queued' OR NOT q.has_deps)
  AND (:tenants IS NULL OR q.tenant IN (SELECT value FROM json_each(:tenants)))
  AND (:queues IS NULL OR q.queue IN (SELECT value FROM json_each(:queues)))
  AND q.job_id NOT IN (SELECT value FROM json_each(:exclude))
ORDER BY q.priority, q.available_at, q.job_id
LIMIT :limit;

-- name: lock_expired_leases
SELECT job_id, version, spec, snapshot
FROM fleet_jobs
WHERE lease_expires_at < :now
ORDER BY lease_expires_at, job_id
LIMIT :limit;

-- name: lock_due_jobs
SELECT j.job_id, j.version, j.spec, j.snapshot
FROM fleet_queue q JOIN fleet_jobs j ON j.job_id = q.job_id
WHERE q.state <> 'queued' AND q.available_at <= :now
ORDER BY q.available_at, q.job_id
LIMIT :limit;

-- name: lock_factory
SELECT factory_id, version, snapshot FROM fleet_factories WHERE factory_id = :name;

-- name: lock_silent_factories
-- julianday() parses the ISO-8601 text (with its UTC offset); precision is ~1 ms.
SELECT factory_id, version, snapshot
FROM fleet_factories
WHERE health <> 'down'
  AND heartbeat_timeout_seconds IS NOT NULL
  AND julianday(last_heartbeat_at) + heartbeat_timeout_seconds / 86400.0 < julianday(:now)
ORDER BY factory_id
LIMIT :limit;

-- name: guard_hand_over
-- The facts PostgreSQL's fleet_hand_over_guard checks, as one row (none: no such factory).
SELECT f.health <> 'down'
       AND (:factory_caps IS NULL
            OR (NOT EXISTS (SELECT 1 FROM json_each(f.capabilities) c
                            WHERE c.value NOT IN (SELECT value FROM json_each(:factory_caps)))
                AND NOT EXISTS (SELECT 1 FROM json_each(:factory_caps) c
                                WHERE c.value NOT IN (SELECT value FROM json_each(f.capabilities)))))
       AND (f.seat_limit IS NULL
            OR (SELECT count(*) FROM fleet_jobs WHERE lease_factory_id = :name) < f.seat_limit)
       AND NOT EXISTS (
           SELECT 1 FROM fleet_queue q
           WHERE q.available_at <= :now
             AND NOT EXISTS (SELECT 1 FROM json_each(q.capabilities) c
                             WHERE c.value NOT IN (SELECT value FROM json_each(:caps)))
             AND (q.state = 'queued' OR NOT q.has_deps)
             AND (:tenants IS NULL OR q.tenant IN (SELECT value FROM json_each(:tenants)))
             AND (:queues IS NULL OR q.queue IN (SELECT value FROM json_each(:queues)))) AS ok
FROM fleet_factories f WHERE f.factory_id = :name;

-- name: leases_held
SELECT count(*) AS n FROM fleet_jobs WHERE lease_factory_id = :name;

-- name: lock_jobs_leased_by
SELECT job_id, version, spec, snapshot
FROM fleet_jobs
WHERE lease_factory_id = :name
ORDER BY job_id;

-- name: get_profile
SELECT profile_id, tenant, name, version, content, content_hash, registered_at
FROM fleet_profiles WHERE tenant = :tenant AND name = :name AND version = :version;

-- ---------------------------------------------------------------- tenant quotas

-- name: lock_tenant
SELECT tenant, version, snapshot FROM fleet_tenants WHERE tenant = :tenant;

-- name: count_waiting_jobs
SELECT count(*) AS n
FROM fleet_jobs
WHERE tenant = :tenant AND state IN ('queued', 'blocked', 'scheduled', 'failed');

-- name: count_jobs_since
SELECT count(*) AS n FROM fleet_jobs WHERE tenant = :tenant AND created_at > :since;

-- name: nth_job_since
SELECT created_at
FROM fleet_jobs
WHERE tenant = :tenant AND created_at > :since
ORDER BY created_at
LIMIT 1 OFFSET :offset;

-- name: gate_tenant_claims
-- BEGIN IMMEDIATE already serialises every claim: nothing to wait for.
SELECT :tenant AS tenant, 1 AS locked;

-- name: try_gate_tenant_claims
SELECT value AS tenant, 1 AS locked FROM json_each(:tenants);

-- name: tenants_in_flight
SELECT t.tenant, t.max_in_flight,
       (SELECT count(*) FROM fleet_jobs j
        WHERE j.tenant = t.tenant AND j.state IN ('assigned', 'running')) AS in_flight
FROM fleet_tenants t
WHERE t.tenant IN (SELECT value FROM json_each(:tenants));

-- ---------------------------------------------------------------- view writes

-- name: insert_jobs
INSERT INTO fleet_jobs (job_id, tenant, state, kind, queue, priority, idempotency_key,
    parent_id, phase, epoch, attempt, version, created_at, updated_at, available_at,
    lease_factory_id, lease_expires_at, spec, snapshot)
VALUES (:job_id, :tenant, :state, :kind, :queue, :priority, :idempotency_key, :parent_id,
    :phase, :epoch, :attempt, :version, :created_at, :updated_at, :available_at,
    :lease_factory_id, :lease_expires_at, :spec, :snapshot);

-- name: update_jobs
UPDATE fleet_jobs SET
    state = :state, phase = :phase, epoch = :epoch, attempt = :attempt, version = :version,
    updated_at = :updated_at, available_at = :available_at,
    lease_factory_id = :lease_factory_id, lease_expires_at = :lease_expires_at,
    snapshot = :snapshot
WHERE job_id = :job_id;

-- name: delete_queue
DELETE FROM fleet_queue WHERE job_id = :job_id;

-- name: insert_queue
INSERT INTO fleet_queue (job_id, tenant, queue, priority, state, available_at, capabilities, has_deps)
VALUES (:job_id, :tenant, :queue, :priority, :state, :available_at, :capabilities, :has_deps);

-- name: upsert_queue
INSERT INTO fleet_queue (job_id, tenant, queue, priority, state, available_at, capabilities, has_deps)
VALUES (:job_id, :tenant, :queue, :priority, :state, :available_at, :capabilities, :has_deps)
ON CONFLICT (job_id) DO UPDATE SET
    tenant = excluded.tenant, queue = excluded.queue, priority = excluded.priority,
    state = excluded.state, available_at = excluded.available_at,
    capabilities = excluded.capabilities, has_deps = excluded.has_deps;

-- name: delete_idempotency
DELETE FROM fleet_idempotency WHERE tenant = :tenant AND key = :key AND job_id = :job_id;

-- name: insert_idempotency
INSERT INTO fleet_idempotency (tenant, key, job_id, content_hash)
VALUES (:tenant, :key, :job_id, :content_hash);

-- name: upsert_idempotency
INSERT INTO fleet_idempotency (tenant, key, job_id, content_hash)
VALUES (:tenant, :key, :job_id, :content_hash)
ON CONFLICT (tenant, key) DO UPDATE SET job_id = excluded.job_id, content_hash = excluded.content_hash;

-- name: delete_edges
DELETE FROM fleet_dependencies WHERE job_id = :job_id AND depends_on = :depends_on;

-- name: insert_edges
INSERT INTO fleet_dependencies (job_id, depends_on, mode, milestone)
VALUES (:job_id, :depends_on, :mode, :milestone);

-- name: upsert_factories
INSERT INTO fleet_factories (factory_id, health, capabilities, seat_limit, load,
    heartbeat_timeout_seconds, last_heartbeat_at, registered_at, version, snapshot)
VALUES (:factory_id, :health, :capabilities, :seat_limit, :load, :heartbeat_timeout_seconds,
    :last_heartbeat_at, :registered_at, :version, :snapshot)
ON CONFLICT (factory_id) DO UPDATE SET
    health = excluded.health, capabilities = excluded.capabilities,
    seat_limit = excluded.seat_limit, load = excluded.load,
    heartbeat_timeout_seconds = excluded.heartbeat_timeout_seconds,
    last_heartbeat_at = excluded.last_heartbeat_at, registered_at = excluded.registered_at,
    version = excluded.version, snapshot = excluded.snapshot;

-- name: insert_profiles
INSERT INTO fleet_profiles (profile_id, tenant, name, version, content_hash, content, registered_at)
VALUES (:profile_id, :tenant, :name, :version, :content_hash, :content, :registered_at);

-- name: upsert_tenants
INSERT INTO fleet_tenants (tenant, max_queued, max_in_flight, submits_per_minute, refusals,
    quotas_set_at, version, snapshot)
VALUES (:tenant, :max_queued, :max_in_flight, :submits_per_minute, :refusals, :quotas_set_at,
    :version, :snapshot)
ON CONFLICT (tenant) DO UPDATE SET
    max_queued = excluded.max_queued, max_in_flight = excluded.max_in_flight,
    submits_per_minute = excluded.submits_per_minute, refusals = excluded.refusals,
    quotas_set_at = excluded.quotas_set_at, version = excluded.version,
    snapshot = excluded.snapshot;

-- name: append_events
-- (PostgreSQL only: on SQLite the library's recorder inserts the events itself.)
SELECT 1;

-- ---------------------------------------------------------------- store reads

-- name: get_job
SELECT job_id, version, spec, snapshot FROM fleet_jobs WHERE job_id = :job_id;

-- name: list_jobs
SELECT job_id, tenant, state, kind, queue, priority, idempotency_key, parent_id, phase,
    epoch, attempt, version, created_at, updated_at, available_at, lease_factory_id,
    lease_expires_at, spec, snapshot
FROM fleet_jobs
WHERE (:tenant IS NULL OR tenant = :tenant)
  AND (:states IS NULL OR state IN (SELECT value FROM json_each(:states)))
  AND (:queue IS NULL OR queue = :queue)
  AND (:idempotency_key IS NULL OR idempotency_key = :idempotency_key)
  AND (:parent_id IS NULL OR parent_id = :parent_id)
  AND (:after IS NULL OR job_id > :after)
ORDER BY job_id
LIMIT :limit;

-- name: list_factories
SELECT factory_id, health, capabilities, seat_limit, load, heartbeat_timeout_seconds,
    last_heartbeat_at, registered_at, version, snapshot
FROM fleet_factories ORDER BY factory_id;

-- name: quota_tenants
SELECT tenant, max_queued, max_in_flight, submits_per_minute, refusals, quotas_set_at,
    version, snapshot
FROM fleet_tenants
WHERE max_queued IS NOT NULL OR max_in_flight IS NOT NULL OR submits_per_minute IS NOT NULL;

-- name: get_tenant
SELECT tenant, max_queued, max_in_flight, submits_per_minute, refusals, quotas_set_at,
    version, snapshot
FROM fleet_tenants WHERE tenant = :tenant;

-- name: tenant_usage
SELECT
    (SELECT count(*) FROM fleet_jobs WHERE tenant = :tenant
        AND state IN ('queued', 'blocked', 'scheduled', 'failed')) AS queued,
    (SELECT count(*) FROM fleet_jobs WHERE tenant = :tenant
        AND state IN ('assigned', 'running')) AS in_flight,
    (SELECT count(*) FROM fleet_jobs WHERE tenant = :tenant
        AND created_at > :since) AS submitted;

-- ---------------------------------------------------------------- rebuild

-- name: dump_jobs
SELECT job_id, tenant, state, kind, queue, priority, idempotency_key, parent_id, phase,
    epoch, attempt, version, created_at, updated_at, available_at, lease_factory_id,
    lease_expires_at, spec, snapshot
FROM fleet_jobs;

-- name: dump_queue
SELECT job_id, tenant, queue, priority, state, available_at, capabilities, has_deps FROM fleet_queue;

-- name: dump_idempotency
SELECT tenant, key, job_id, content_hash FROM fleet_idempotency;

-- name: dump_edges
SELECT job_id, depends_on, mode, milestone FROM fleet_dependencies;

-- name: dump_factories
SELECT factory_id, health, capabilities, seat_limit, load, heartbeat_timeout_seconds,
    last_heartbeat_at, registered_at, version, snapshot
FROM fleet_factories;

-- name: dump_profiles
SELECT profile_id, tenant, name, version, content_hash, content, registered_at FROM fleet_profiles;

-- name: dump_tenants
SELECT tenant, max_queued, max_in_flight, submits_per_minute, refusals, quotas_set_at,
    version, snapshot
FROM fleet_tenants;

-- name: clear_views
DELETE FROM fleet_jobs; DELETE FROM fleet_queue; DELETE FROM fleet_idempotency;
DELETE FROM fleet_dependencies; DELETE FROM fleet_factories; DELETE FROM fleet_profiles;
DELETE FROM fleet_tenants;

-- name: lock_views
-- BEGIN IMMEDIATE already holds the database write lock for the whole rebuild.
SELECT 1;

-- name: select_events_page
SELECT rowid AS notification_id, originator_id, originator_version, topic, state
FROM fleetlog_events
WHERE rowid > :after
ORDER BY rowid
LIMIT :limit;

-- name: lock_events
SELECT 1;

-- name: analytics_position
SELECT projection, position, pending_first, pending_last, updated_at, leader,
       rebuild_requested_at, rebuilt_at, swap_database, swap_position
FROM fleet_analytics_positions WHERE projection = :projection;

-- name: analytics_positions
SELECT projection, position, pending_first, pending_last, updated_at, leader,
       rebuild_requested_at, rebuilt_at, swap_database, swap_position
FROM fleet_analytics_positions ORDER BY projection;

-- name: analytics_begin
INSERT INTO fleet_analytics_positions (projection, position, pending_first, pending_last, updated_at, leader)
VALUES (:projection, 0, :first, :last, :now, :leader)
ON CONFLICT (projection) DO UPDATE SET
    pending_first = excluded.pending_first, pending_last = excluded.pending_last,
    updated_at = excluded.updated_at, leader = excluded.leader
WHERE fleet_analytics_positions.position = :position
RETURNING projection;

-- name: analytics_commit
UPDATE fleet_analytics_positions
SET position = :last, pending_first = NULL, pending_last = NULL, updated_at = :now
WHERE projection = :projection AND pending_last = :last
RETURNING projection;

-- name: analytics_prepare_swap
-- A rebuilt database holding everything up to swap_position is about to replace the live
-- tables: recorded first, so a crash mid-swap is finished on restart.
INSERT INTO fleet_analytics_positions (projection, position, updated_at, leader, swap_database, swap_position)
VALUES (:projection, 0, :now, :leader, :database, :position)
ON CONFLICT (projection) DO UPDATE SET
    swap_database = excluded.swap_database, swap_position = excluded.swap_position,
    updated_at = excluded.updated_at, leader = excluded.leader;

-- name: analytics_finish_swap
UPDATE fleet_analytics_positions
SET position = swap_position, pending_first = NULL, pending_last = NULL, swap_database = NULL,
    swap_position = NULL, rebuilt_at = :now, updated_at = :now, rebuild_requested_at = NULL
WHERE projection = :projection AND swap_database IS NOT NULL;

-- name: analytics_request_rebuild
INSERT INTO fleet_analytics_positions (projection, position, updated_at, rebuild_requested_at)
VALUES (:projection, 0, :now, :now)
ON CONFLICT (projection) DO UPDATE SET rebuild_requested_at = excluded.rebuild_requested_at;

-- name: analytics_claim_leader
INSERT INTO fleet_analytics_positions (projection, position, updated_at, leader)
VALUES (:projection, 0, :now, :leader)
ON CONFLICT (projection) DO UPDATE SET leader = excluded.leader, updated_at = excluded.updated_at;
