-- Named queries for PostgreSQL. The same names exist in sqlite.sql with the same meaning
-- (tests/contract checks both files define the same names and the store contract suite
-- runs every behaviour against both backends).
--
-- Locking: every query that reads rows a transaction will change locks them. Rows are
-- locked in job_id order so two transactions locking overlapping sets cannot deadlock.
-- Claims, the reaper and the scheduler use SKIP LOCKED: a row another transaction holds
-- is somebody else's work, so nobody waits and nobody retries.

-- name: lock_jobs
SELECT job_id, version, spec, snapshot
FROM fleet_jobs
WHERE job_id = ANY(%(ids)s::uuid[])
ORDER BY job_id
FOR UPDATE;

-- name: dependency_status
-- FOR SHARE: a dependency cannot finish (or fail) under a dependent being submitted;
-- the finishing transaction waits, then sees the new dependent when it propagates.
SELECT job_id, state, phase, (spec::jsonb -> 'phases')::text AS phases,
       snapshot::jsonb ->> 'superseded_by' AS superseded_by
FROM fleet_jobs
WHERE tenant = %(tenant)s AND job_id = ANY(%(ids)s::uuid[])
ORDER BY job_id
FOR SHARE;

-- name: dependencies_of
SELECT job_id, depends_on FROM fleet_dependencies WHERE job_id = ANY(%(ids)s::uuid[]);

-- name: dependents_of
SELECT e.job_id
FROM fleet_dependencies e JOIN fleet_jobs j ON j.job_id = e.job_id
WHERE e.depends_on = ANY(%(ids)s::uuid[])
  AND j.state NOT IN ('succeeded', 'cancelled', 'superseded', 'dead_letter')
ORDER BY e.job_id;

-- name: blocked_dependents_of
SELECT DISTINCT e.job_id
FROM fleet_dependencies e JOIN fleet_jobs j ON j.job_id = e.job_id
WHERE e.depends_on = ANY(%(ids)s::uuid[]) AND j.state = 'blocked'
ORDER BY e.job_id;

-- name: find_idempotent
SELECT tenant, key, job_id, content_hash
FROM fleet_idempotency
WHERE tenant = %(tenant)s AND key = %(key)s
FOR UPDATE;

-- name: claim_plan_hints
-- The queue churns faster than autovacuum re-analyses it: right after a bulk submit the
-- planner may still believe the queue holds a handful of rows and choose "read every
-- eligible row, then sort", which makes each claim O(queue). Claims must walk an
-- ordered index and stop at LIMIT whatever the statistics say. Transaction-local.
SET LOCAL enable_sort = off;

-- name: tenants_with_work
-- A loose index scan: one index probe per tenant instead of a DISTINCT over the queue.
WITH RECURSIVE t(tenant) AS (
    SELECT min(q.tenant) FROM fleet_queue q
    WHERE q.available_at <= %(now)s
      AND q.capabilities <@ %(caps)s::text[]
      AND (q.state = 'queued' OR NOT q.has_deps)
      AND (%(tenants)s::text[] IS NULL OR q.tenant = ANY(%(tenants)s::text[]))
      AND (%(queues)s::text[] IS NULL OR q.queue = ANY(%(queues)s::text[]))
  UNION ALL
    SELECT (SELECT min(q.tenant) FROM fleet_queue q
            WHERE q.tenant > t.tenant
              AND q.available_at <= %(now)s
              AND q.capabilities <@ %(caps)s::text[]
              AND (q.state = 'queued' OR NOT q.has_deps)
              AND (%(tenants)s::text[] IS NULL OR q.tenant = ANY(%(tenants)s::text[]))
              AND (%(queues)s::text[] IS NULL OR q.queue = ANY(%(queues)s::text[])))
    FROM t WHERE t.tenant IS NOT NULL
)
SELECT tenant FROM t WHERE tenant IS NOT NULL;

-- name: lock_claimable_tenant
-- Due scheduled/failed jobs without dependencies are claimable too (the claim promotes
-- them); those with dependencies wait for the scheduler, which re-checks them.
SELECT j.job_id, j.version, j.spec, j.snapshot
FROM fleet_queue q JOIN fleet_jobs j ON j.job_id = q.job_id
WHERE q.tenant = %(tenant)s
  AND q.available_at <= %(now)s
  AND q.capabilities <@ %(caps)s::text[]
  AND (q.state = 'queued' OR NOT q.has_deps)
  AND (%(queues)s::text[] IS NULL OR q.queue = ANY(%(queues)s::text[]))
  AND NOT (q.job_id = ANY(%(exclude)s::uuid[]))
ORDER BY q.priority, q.available_at, q.job_id
LIMIT %(limit)s
FOR UPDATE OF q, j SKIP LOCKED;

-- name: lock_claimable_any
SELECT j.job_id, j.version, j.spec, j.snapshot
FROM fleet_queue q JOIN fleet_jobs j ON j.job_id = q.job_id
WHERE q.available_at <= %(now)s
  AND q.capabilities <@ %(caps)s::text[]
  AND (q.state = 'queued' OR NOT q.has_deps)
  AND (%(tenants)s::text[] IS NULL OR q.tenant = ANY(%(tenants)s::text[]))
  AND (%(queues)s::text[] IS NULL OR q.queue = ANY(%(queues)s::text[]))
  AND NOT (q.job_id = ANY(%(exclude)s::uuid[]))
ORDER BY q.priority, q.available_at, q.job_id
LIMIT %(limit)s
FOR UPDATE OF q, j SKIP LOCKED;

-- name: lock_expired_leases
SELECT j.job_id, j.version, j.spec, j.snapshot
FROM fleet_leases l JOIN fleet_jobs j ON j.job_id = l.job_id
WHERE l.expires_at < %(now)s
ORDER BY l.expires_at, l.job_id
LIMIT %(limit)s
FOR UPDATE OF l, j SKIP LOCKED;

-- name: lock_due_jobs
SELECT j.job_id, j.version, j.spec, j.snapshot
FROM fleet_queue q JOIN fleet_jobs j ON j.job_id = q.job_id
WHERE q.state <> 'queued' AND q.available_at <= %(now)s
ORDER BY q.available_at, q.job_id
LIMIT %(limit)s
FOR UPDATE OF q, j SKIP LOCKED;

-- name: lock_factory
SELECT factory_id, version, snapshot
FROM fleet_factories WHERE factory_id = %(name)s
FOR UPDATE;

-- name: lock_silent_factories
SELECT factory_id, version, snapshot
FROM fleet_factories
WHERE health <> 'down'
  AND heartbeat_timeout_seconds IS NOT NULL
  AND last_heartbeat_at + make_interval(secs => heartbeat_timeout_seconds) < %(now)s
ORDER BY factory_id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: leases_held
SELECT count(*) AS n FROM fleet_leases WHERE factory_id = %(name)s;

-- name: lock_jobs_leased_by
SELECT j.job_id, j.version, j.spec, j.snapshot
FROM fleet_leases l JOIN fleet_jobs j ON j.job_id = l.job_id
WHERE l.factory_id = %(name)s
ORDER BY j.job_id
FOR UPDATE OF l, j;

-- name: get_profile
SELECT profile_id, tenant, name, version, content, content_hash, registered_at
FROM fleet_profiles WHERE tenant = %(tenant)s AND name = %(name)s AND version = %(version)s;

-- ---------------------------------------------------------------- view writes

-- name: insert_jobs
INSERT INTO fleet_jobs (job_id, tenant, state, kind, queue, priority, idempotency_key,
    parent_id, phase, epoch, attempt, version, created_at, updated_at, available_at,
    lease_factory_id, lease_expires_at, spec, snapshot)
SELECT job_id, tenant, state, kind, queue, priority, idempotency_key, parent_id, phase,
    epoch, attempt, version, created_at, updated_at, available_at, lease_factory_id,
    lease_expires_at, spec, snapshot
FROM unnest(%(job_id)s::uuid[], %(tenant)s::text[], %(state)s::text[], %(kind)s::text[],
    %(queue)s::text[], %(priority)s::int[], %(idempotency_key)s::text[], %(parent_id)s::uuid[],
    %(phase)s::text[], %(epoch)s::bigint[], %(attempt)s::int[], %(version)s::bigint[],
    %(created_at)s::timestamptz[], %(updated_at)s::timestamptz[], %(available_at)s::timestamptz[],
    %(lease_factory_id)s::text[], %(lease_expires_at)s::timestamptz[], %(spec)s::text[],
    %(snapshot)s::text[])
  AS u(job_id, tenant, state, kind, queue, priority, idempotency_key, parent_id, phase,
       epoch, attempt, version, created_at, updated_at, available_at, lease_factory_id,
       lease_expires_at, spec, snapshot);

-- name: update_jobs
-- The spec never changes after submit, so it is not rewritten.
UPDATE fleet_jobs j SET
    state = u.state, phase = u.phase, epoch = u.epoch, attempt = u.attempt,
    version = u.version, updated_at = u.updated_at, available_at = u.available_at,
    lease_factory_id = u.lease_factory_id, lease_expires_at = u.lease_expires_at,
    snapshot = u.snapshot
FROM unnest(%(job_id)s::uuid[], %(state)s::text[], %(phase)s::text[], %(epoch)s::bigint[],
    %(attempt)s::int[], %(version)s::bigint[], %(updated_at)s::timestamptz[],
    %(available_at)s::timestamptz[], %(lease_factory_id)s::text[],
    %(lease_expires_at)s::timestamptz[], %(snapshot)s::text[])
  AS u(job_id, state, phase, epoch, attempt, version, updated_at, available_at,
       lease_factory_id, lease_expires_at, snapshot)
WHERE j.job_id = u.job_id;

-- name: delete_queue
DELETE FROM fleet_queue WHERE job_id = ANY(%(job_id)s::uuid[]);

-- name: insert_queue
INSERT INTO fleet_queue (job_id, tenant, queue, priority, state, available_at, capabilities, has_deps)
SELECT u.job_id, u.tenant, u.queue, u.priority, u.state, u.available_at,
       ARRAY(SELECT jsonb_array_elements_text(u.capabilities::jsonb)), u.has_deps
FROM unnest(%(job_id)s::uuid[], %(tenant)s::text[], %(queue)s::text[], %(priority)s::int[],
    %(state)s::text[], %(available_at)s::timestamptz[], %(capabilities)s::text[],
    %(has_deps)s::boolean[])
  AS u(job_id, tenant, queue, priority, state, available_at, capabilities, has_deps);

-- name: upsert_queue
INSERT INTO fleet_queue (job_id, tenant, queue, priority, state, available_at, capabilities, has_deps)
SELECT u.job_id, u.tenant, u.queue, u.priority, u.state, u.available_at,
       ARRAY(SELECT jsonb_array_elements_text(u.capabilities::jsonb)), u.has_deps
FROM unnest(%(job_id)s::uuid[], %(tenant)s::text[], %(queue)s::text[], %(priority)s::int[],
    %(state)s::text[], %(available_at)s::timestamptz[], %(capabilities)s::text[],
    %(has_deps)s::boolean[])
  AS u(job_id, tenant, queue, priority, state, available_at, capabilities, has_deps)
ON CONFLICT (job_id) DO UPDATE SET
    tenant = excluded.tenant, queue = excluded.queue, priority = excluded.priority,
    state = excluded.state, available_at = excluded.available_at,
    capabilities = excluded.capabilities, has_deps = excluded.has_deps;

-- name: delete_leases
DELETE FROM fleet_leases WHERE job_id = ANY(%(job_id)s::uuid[]);

-- name: upsert_leases
INSERT INTO fleet_leases (job_id, tenant, factory_id, epoch, granted_at, expires_at, last_renewed_at)
SELECT * FROM unnest(%(job_id)s::uuid[], %(tenant)s::text[], %(factory_id)s::text[],
    %(epoch)s::bigint[], %(granted_at)s::timestamptz[], %(expires_at)s::timestamptz[],
    %(last_renewed_at)s::timestamptz[])
ON CONFLICT (job_id) DO UPDATE SET
    tenant = excluded.tenant, factory_id = excluded.factory_id, epoch = excluded.epoch,
    granted_at = excluded.granted_at, expires_at = excluded.expires_at,
    last_renewed_at = excluded.last_renewed_at;

-- name: delete_idempotency
-- Only while the key still points at the job that gave it up.
DELETE FROM fleet_idempotency i
USING unnest(%(tenant)s::text[], %(key)s::text[], %(job_id)s::uuid[]) AS u(tenant, key, job_id)
WHERE i.tenant = u.tenant AND i.key = u.key AND i.job_id = u.job_id;

-- name: insert_idempotency
INSERT INTO fleet_idempotency (tenant, key, job_id, content_hash)
SELECT * FROM unnest(%(tenant)s::text[], %(key)s::text[], %(job_id)s::uuid[], %(content_hash)s::text[]);

-- name: upsert_idempotency
INSERT INTO fleet_idempotency (tenant, key, job_id, content_hash)
SELECT * FROM unnest(%(tenant)s::text[], %(key)s::text[], %(job_id)s::uuid[], %(content_hash)s::text[])
ON CONFLICT (tenant, key) DO UPDATE SET job_id = excluded.job_id, content_hash = excluded.content_hash;

-- name: delete_edges
DELETE FROM fleet_dependencies d
USING unnest(%(job_id)s::uuid[], %(depends_on)s::uuid[]) AS u(job_id, depends_on)
WHERE d.job_id = u.job_id AND d.depends_on = u.depends_on;

-- name: insert_edges
INSERT INTO fleet_dependencies (job_id, depends_on, mode, milestone)
SELECT * FROM unnest(%(job_id)s::uuid[], %(depends_on)s::uuid[], %(mode)s::text[], %(milestone)s::text[]);

-- name: upsert_runs
INSERT INTO fleet_runs (job_id, attempt, tenant, epoch, factory_id, started_at, ended_at,
    outcome, error_kind, insights, artifacts)
SELECT job_id, attempt, tenant, epoch, factory_id, started_at, ended_at, outcome, error_kind,
    insights, artifacts
FROM unnest(%(job_id)s::uuid[], %(attempt)s::int[], %(tenant)s::text[], %(epoch)s::bigint[],
    %(factory_id)s::text[], %(started_at)s::timestamptz[], %(ended_at)s::timestamptz[],
    %(outcome)s::text[], %(error_kind)s::text[], %(insights)s::text[], %(artifacts)s::text[])
  AS u(job_id, attempt, tenant, epoch, factory_id, started_at, ended_at, outcome, error_kind,
       insights, artifacts)
ON CONFLICT (job_id, attempt) DO UPDATE SET
    tenant = excluded.tenant, epoch = excluded.epoch, factory_id = excluded.factory_id,
    started_at = excluded.started_at, ended_at = excluded.ended_at, outcome = excluded.outcome,
    error_kind = excluded.error_kind, insights = excluded.insights, artifacts = excluded.artifacts;

-- name: upsert_factories
INSERT INTO fleet_factories (factory_id, health, capabilities, seat_limit, load,
    heartbeat_timeout_seconds, last_heartbeat_at, registered_at, version, snapshot)
SELECT u.factory_id, u.health, ARRAY(SELECT jsonb_array_elements_text(u.capabilities::jsonb)),
    u.seat_limit, u.load, u.heartbeat_timeout_seconds, u.last_heartbeat_at, u.registered_at,
    u.version, u.snapshot
FROM unnest(%(factory_id)s::text[], %(health)s::text[], %(capabilities)s::text[],
    %(seat_limit)s::int[], %(load)s::float8[], %(heartbeat_timeout_seconds)s::float8[],
    %(last_heartbeat_at)s::timestamptz[], %(registered_at)s::timestamptz[],
    %(version)s::bigint[], %(snapshot)s::text[])
  AS u(factory_id, health, capabilities, seat_limit, load, heartbeat_timeout_seconds,
       last_heartbeat_at, registered_at, version, snapshot)
ON CONFLICT (factory_id) DO UPDATE SET
    health = excluded.health, capabilities = excluded.capabilities,
    seat_limit = excluded.seat_limit, load = excluded.load,
    heartbeat_timeout_seconds = excluded.heartbeat_timeout_seconds,
    last_heartbeat_at = excluded.last_heartbeat_at, registered_at = excluded.registered_at,
    version = excluded.version, snapshot = excluded.snapshot;

-- name: insert_profiles
INSERT INTO fleet_profiles (profile_id, tenant, name, version, content_hash, content, registered_at)
SELECT profile_id, tenant, name, version, content_hash, content, registered_at
FROM unnest(%(profile_id)s::uuid[], %(tenant)s::text[], %(name)s::text[], %(version)s::int[],
    %(content_hash)s::text[], %(content)s::text[], %(registered_at)s::timestamptz[])
  AS u(profile_id, tenant, name, version, content_hash, content, registered_at);

-- ---------------------------------------------------------------- store reads

-- name: get_job
SELECT job_id, version, spec, snapshot
FROM fleet_jobs WHERE job_id = %(job_id)s;

-- name: list_jobs
SELECT job_id, tenant, state, kind, queue, priority, idempotency_key, parent_id, phase,
    epoch, attempt, version, created_at, updated_at, available_at, lease_factory_id,
    lease_expires_at, spec, snapshot
FROM fleet_jobs
WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
  AND (%(states)s::text[] IS NULL OR state = ANY(%(states)s::text[]))
  AND (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND (%(idempotency_key)s::text IS NULL OR idempotency_key = %(idempotency_key)s)
  AND (%(parent_id)s::uuid IS NULL OR parent_id = %(parent_id)s)
  AND (%(after_created)s::timestamptz IS NULL
       OR (created_at, job_id) > (%(after_created)s::timestamptz, %(after_id)s::uuid))
ORDER BY created_at, job_id
LIMIT %(limit)s;

-- name: get_runs
SELECT job_id, attempt, tenant, epoch, factory_id, started_at, ended_at, outcome, error_kind,
    insights, artifacts
FROM fleet_runs WHERE job_id = %(job_id)s ORDER BY attempt;

-- name: list_factories
SELECT factory_id, health, capabilities, seat_limit, load, heartbeat_timeout_seconds,
    last_heartbeat_at, registered_at, version, snapshot
FROM fleet_factories ORDER BY factory_id;

-- ---------------------------------------------------------------- rebuild

-- name: dump_jobs
SELECT job_id, tenant, state, kind, queue, priority, idempotency_key, parent_id, phase,
    epoch, attempt, version, created_at, updated_at, available_at, lease_factory_id,
    lease_expires_at, spec, snapshot
FROM fleet_jobs;

-- name: dump_queue
SELECT job_id, tenant, queue, priority, state, available_at, capabilities, has_deps FROM fleet_queue;

-- name: dump_leases
SELECT job_id, tenant, factory_id, epoch, granted_at, expires_at, last_renewed_at FROM fleet_leases;

-- name: dump_idempotency
SELECT tenant, key, job_id, content_hash FROM fleet_idempotency;

-- name: dump_edges
SELECT job_id, depends_on, mode, milestone FROM fleet_dependencies;

-- name: dump_runs
SELECT job_id, attempt, tenant, epoch, factory_id, started_at, ended_at, outcome, error_kind,
    insights, artifacts
FROM fleet_runs;

-- name: dump_factories
SELECT factory_id, health, capabilities, seat_limit, load, heartbeat_timeout_seconds,
    last_heartbeat_at, registered_at, version, snapshot
FROM fleet_factories;

-- name: dump_profiles
SELECT profile_id, tenant, name, version, content_hash, content, registered_at
FROM fleet_profiles;

-- name: clear_views
TRUNCATE fleet_jobs, fleet_queue, fleet_leases, fleet_idempotency, fleet_dependencies,
    fleet_runs, fleet_factories, fleet_profiles;

-- name: lock_views
-- Rebuild holds every view exclusively so no write lands between the replay and the swap;
-- the events table lock keeps new events out for the same time.
LOCK TABLE fleet_jobs, fleet_queue, fleet_leases, fleet_idempotency, fleet_dependencies,
    fleet_runs, fleet_factories, fleet_profiles IN EXCLUSIVE MODE;

-- name: select_events_page
-- The notification log read inside the caller's transaction (the library's
-- select_notifications opens its own connection, so it cannot share a snapshot with
-- the views when verifying or rebuilding them).
SELECT notification_id, originator_id, originator_version, topic, state
FROM fleetlog_events
WHERE notification_id > %(after)s
ORDER BY notification_id
LIMIT %(limit)s;

-- name: lock_events
LOCK TABLE fleetlog_events IN EXCLUSIVE MODE;
