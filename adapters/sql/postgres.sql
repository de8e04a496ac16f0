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
-- The jobs are probed by key (= ANY(ARRAY(...))): as a join, a plan made while the jobs
-- table was small (a prepared statement's generic plan lasts the session) merged with a
-- scan of the whole table, on every completion. A job depending on several of ``ids``
-- comes once (the join gave it once per edge; the caller kept it once).
SELECT j.job_id
FROM fleet_jobs j
WHERE j.job_id = ANY(ARRAY(SELECT e.job_id FROM fleet_dependencies e WHERE e.depends_on = ANY(%(ids)s::uuid[])))
  AND j.state NOT IN ('succeeded', 'cancelled', 'superseded', 'dead_letter')
ORDER BY j.job_id;

-- name: blocked_dependents_of
SELECT e.job_id, e.depends_on
FROM fleet_dependencies e JOIN fleet_jobs j ON j.job_id = e.job_id
WHERE e.depends_on = ANY(%(ids)s::uuid[])
  AND j.job_id = ANY(ARRAY(SELECT d.job_id FROM fleet_dependencies d WHERE d.depends_on = ANY(%(ids)s::uuid[])))
  AND j.state = 'blocked'
ORDER BY e.job_id;

-- name: find_idempotent
SELECT tenant, key, job_id, content_hash
FROM fleet_idempotency
WHERE tenant = %(tenant)s AND key = %(key)s
FOR UPDATE;

-- name: tenants_with_work
-- A loose index scan: one probe of the tenant-ordered index per tenant instead of a
-- DISTINCT over the queue (ORDER BY ... LIMIT 1 rather than min(): the index order is
-- the only plan, whatever the statistics say).
WITH RECURSIVE t(tenant) AS (
    (SELECT q.tenant FROM fleet_queue q
     WHERE q.available_at <= %(now)s
       AND q.capabilities <@ %(caps)s::text[]
       AND (q.state = 'queued' OR NOT q.has_deps)
       AND (%(tenants)s::text[] IS NULL OR q.tenant = ANY(%(tenants)s::text[]))
       AND (%(queues)s::text[] IS NULL OR q.queue = ANY(%(queues)s::text[]))
     ORDER BY q.tenant LIMIT 1)
  UNION ALL
    SELECT (SELECT q.tenant FROM fleet_queue q
            WHERE q.tenant > t.tenant
              AND q.available_at <= %(now)s
              AND q.capabilities <@ %(caps)s::text[]
              AND (q.state = 'queued' OR NOT q.has_deps)
              AND (%(tenants)s::text[] IS NULL OR q.tenant = ANY(%(tenants)s::text[]))
              AND (%(queues)s::text[] IS NULL OR q.queue = ANY(%(queues)s::text[]))
            ORDER BY q.tenant LIMIT 1)
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
SELECT job_id, version, spec, snapshot
FROM fleet_jobs
WHERE lease_expires_at < %(now)s
ORDER BY lease_expires_at, job_id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

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

-- name: guard_hand_over
-- Raises SQLSTATE FL001 unless the factory is up, has the capabilities decided on (none
-- given: the claim named its own), a seat free, and nothing else is claimable for the
-- filter (migration 0005); queued ahead of a hand-over's writes.
SELECT fleet_hand_over_guard(%(name)s, %(factory_caps)s::text[], %(now)s, %(caps)s::text[],
                             %(tenants)s::text[], %(queues)s::text[]) AS ok;

-- name: leases_held
SELECT count(*) AS n FROM fleet_jobs WHERE lease_factory_id = %(name)s;

-- name: lock_jobs_leased_by
-- In job_id order (the locking order) without a sort: the keys come from the factory's
-- index, and the primary key is probed with them (ordered), instead of walking the
-- whole primary key for the factory's rows.
SELECT job_id, version, spec, snapshot
FROM fleet_jobs
WHERE job_id = ANY(ARRAY(SELECT l.job_id FROM fleet_jobs l WHERE l.lease_factory_id = %(name)s))
  AND lease_factory_id = %(name)s
ORDER BY job_id
FOR UPDATE;

-- name: get_profile
SELECT profile_id, tenant, name, version, content, content_hash, registered_at
FROM fleet_profiles WHERE tenant = %(tenant)s AND name = %(name)s AND version = %(version)s;

-- ---------------------------------------------------------------- tenant quotas
-- Only tenants with quotas ever reach these (the coordinator keeps a short-lived cache
-- of which tenants have them): a tenant without quotas is never locked or counted.

-- name: lock_tenant
SELECT tenant, version, snapshot
FROM fleet_tenants WHERE tenant = %(tenant)s
FOR UPDATE;

-- name: count_waiting_jobs
-- What max_queued limits: jobs waiting to run. Dead letters are parked (an operator
-- decides), not waiting; leased jobs count against max_in_flight instead.
SELECT count(*) AS n
FROM fleet_jobs
WHERE tenant = %(tenant)s AND state IN ('queued', 'blocked', 'scheduled', 'failed');

-- name: count_jobs_since
SELECT count(*) AS n
FROM fleet_jobs
WHERE tenant = %(tenant)s AND created_at > %(since)s;

-- name: nth_job_since
-- The creation time of the window's (offset + 1)-th oldest job: once it is 60 s old,
-- enough of the window has aged out to admit the refused request.
SELECT created_at
FROM fleet_jobs
WHERE tenant = %(tenant)s AND created_at > %(since)s
ORDER BY created_at
LIMIT 1 OFFSET %(offset)s;

-- name: gate_tenant_claims
-- Claims of one capped tenant take turns (a transaction-scoped advisory lock, waited
-- for): each counts the tenant's leased jobs only after the previous claim committed.
-- Not the tenant row, which submits lock: claims and submits never wait on each other.
SELECT %(tenant)s::text AS tenant, true AS locked
FROM (SELECT pg_advisory_xact_lock(1718379380, hashtext(%(tenant)s::text))) AS gate;

-- name: try_gate_tenant_claims
-- A fleet-wide claim never waits for a capped tenant's gate: a tenant another claim is
-- serving right now is skipped this time (locked = false), like SKIP LOCKED rows.
SELECT t AS tenant, pg_try_advisory_xact_lock(1718379380, hashtext(t)) AS locked
FROM unnest(%(tenants)s::text[]) AS t;

-- name: tenants_in_flight
-- Run after the gate, as a statement of its own: its snapshot then includes every
-- lease the previous holder of the gate committed.
SELECT t.tenant, t.max_in_flight,
       (SELECT count(*) FROM fleet_jobs j
        WHERE j.tenant = t.tenant AND j.state IN ('assigned', 'running')) AS in_flight
FROM fleet_tenants t
WHERE t.tenant = ANY(%(tenants)s::text[]);

-- ---------------------------------------------------------------- view writes
-- Each write takes its rows as one JSON document (%(rows)s): one parameter however many
-- rows, encoded by pydantic-core instead of psycopg's per-element array dumpers, and
-- usable in the single round trip that ends a unit of work (see adapters/store/postgres.py).

-- name: insert_jobs
INSERT INTO fleet_jobs (job_id, tenant, state, kind, queue, priority, idempotency_key,
    parent_id, phase, epoch, attempt, version, created_at, updated_at, available_at,
    lease_factory_id, lease_expires_at, spec, snapshot)
SELECT * FROM json_to_recordset(%(rows)s::json) AS u(job_id uuid, tenant text, state text,
    kind text, queue text, priority int, idempotency_key text, parent_id uuid, phase text,
    epoch bigint, attempt int, version bigint, created_at timestamptz, updated_at timestamptz,
    available_at timestamptz, lease_factory_id text, lease_expires_at timestamptz, spec text,
    snapshot text);

-- name: update_jobs
-- The spec never changes after submit, so it is not rewritten.
UPDATE fleet_jobs j SET
    state = u.state, phase = u.phase, epoch = u.epoch, attempt = u.attempt,
    version = u.version, updated_at = u.updated_at, available_at = u.available_at,
    lease_factory_id = u.lease_factory_id, lease_expires_at = u.lease_expires_at,
    snapshot = u.snapshot
FROM json_to_recordset(%(rows)s::json) AS u(job_id uuid, state text, phase text, epoch bigint,
    attempt int, version bigint, updated_at timestamptz, available_at timestamptz,
    lease_factory_id text, lease_expires_at timestamptz, snapshot text)
WHERE j.job_id = u.job_id
  -- A primary-key probe per row (as delete_queue): joined only on u, a plan made while
  -- the table was small (a generic plan lasts the session) hashed the rows and walked
  -- the whole table, on every claim, start and completion.
  AND j.job_id = ANY(ARRAY(SELECT r.job_id FROM json_to_recordset(%(rows)s::json) AS r(job_id uuid)));

-- name: delete_queue
-- = ANY(ARRAY(...)): a primary-key probe per row. Joined USING the JSON rows instead, the
-- planner (expecting 100 rows from the function) hashes them and scans the whole queue.
DELETE FROM fleet_queue
WHERE job_id = ANY(ARRAY(SELECT u.job_id FROM json_to_recordset(%(rows)s::json) AS u(job_id uuid)));

-- name: insert_queue
INSERT INTO fleet_queue (job_id, tenant, queue, priority, state, available_at, capabilities, has_deps)
SELECT * FROM json_to_recordset(%(rows)s::json) AS u(job_id uuid, tenant text, queue text,
    priority int, state text, available_at timestamptz, capabilities text[], has_deps boolean);

-- name: upsert_queue
INSERT INTO fleet_queue (job_id, tenant, queue, priority, state, available_at, capabilities, has_deps)
SELECT * FROM json_to_recordset(%(rows)s::json) AS u(job_id uuid, tenant text, queue text,
    priority int, state text, available_at timestamptz, capabilities text[], has_deps boolean)
ON CONFLICT (job_id) DO UPDATE SET
    tenant = excluded.tenant, queue = excluded.queue, priority = excluded.priority,
    state = excluded.state, available_at = excluded.available_at,
    capabilities = excluded.capabilities, has_deps = excluded.has_deps;

-- name: delete_idempotency
-- Only while the key still points at the job that gave it up.
-- The primary key is searched with the given tenants and keys (= ANY(ARRAY(...))), so no
-- plan walks the whole table (on an empty table the generic plan bounds the scan by the
-- tenants alone); the pairs and the job then pick the exact rows.
DELETE FROM fleet_idempotency
WHERE tenant = ANY(ARRAY(SELECT u.tenant FROM json_to_recordset(%(rows)s::json) AS u(tenant text)))
  AND key = ANY(ARRAY(SELECT u.key FROM json_to_recordset(%(rows)s::json) AS u(key text)))
  AND job_id = ANY(ARRAY(SELECT u.job_id FROM json_to_recordset(%(rows)s::json) AS u(job_id uuid)))
  AND (tenant, key) IN (SELECT u.tenant, u.key FROM json_to_recordset(%(rows)s::json) AS u(tenant text, key text));

-- name: insert_idempotency
INSERT INTO fleet_idempotency (tenant, key, job_id, content_hash)
SELECT * FROM json_to_recordset(%(rows)s::json)
    AS u(tenant text, key text, job_id uuid, content_hash text);

-- name: upsert_idempotency
INSERT INTO fleet_idempotency (tenant, key, job_id, content_hash)
SELECT * FROM json_to_recordset(%(rows)s::json)
    AS u(tenant text, key text, job_id uuid, content_hash text)
ON CONFLICT (tenant, key) DO UPDATE SET job_id = excluded.job_id, content_hash = excluded.content_hash;

-- name: delete_edges
DELETE FROM fleet_dependencies
WHERE job_id = ANY(ARRAY(SELECT u.job_id FROM json_to_recordset(%(rows)s::json) AS u(job_id uuid)))
  AND (job_id, depends_on) IN (
      SELECT u.job_id, u.depends_on FROM json_to_recordset(%(rows)s::json) AS u(job_id uuid, depends_on uuid));

-- name: insert_edges
INSERT INTO fleet_dependencies (job_id, depends_on, mode, milestone)
SELECT * FROM json_to_recordset(%(rows)s::json)
    AS u(job_id uuid, depends_on uuid, mode text, milestone text);

-- name: upsert_factories
INSERT INTO fleet_factories (factory_id, health, capabilities, seat_limit, load,
    heartbeat_timeout_seconds, last_heartbeat_at, registered_at, version, snapshot)
SELECT * FROM json_to_recordset(%(rows)s::json) AS u(factory_id text, health text,
    capabilities text[], seat_limit int, load float8, heartbeat_timeout_seconds float8,
    last_heartbeat_at timestamptz, registered_at timestamptz, version bigint, snapshot text)
ON CONFLICT (factory_id) DO UPDATE SET
    health = excluded.health, capabilities = excluded.capabilities,
    seat_limit = excluded.seat_limit, load = excluded.load,
    heartbeat_timeout_seconds = excluded.heartbeat_timeout_seconds,
    last_heartbeat_at = excluded.last_heartbeat_at, registered_at = excluded.registered_at,
    version = excluded.version, snapshot = excluded.snapshot;

-- name: insert_profiles
INSERT INTO fleet_profiles (profile_id, tenant, name, version, content_hash, content, registered_at)
SELECT * FROM json_to_recordset(%(rows)s::json) AS u(profile_id uuid, tenant text, name text,
    version int, content_hash text, content text, registered_at timestamptz);

-- name: upsert_tenants
INSERT INTO fleet_tenants (tenant, max_queued, max_in_flight, submits_per_minute, refusals,
    quotas_set_at, version, snapshot)
SELECT * FROM json_to_recordset(%(rows)s::json) AS u(tenant text, max_queued int,
    max_in_flight int, submits_per_minute int, refusals text, quotas_set_at timestamptz,
    version bigint, snapshot text)
ON CONFLICT (tenant) DO UPDATE SET
    max_queued = excluded.max_queued, max_in_flight = excluded.max_in_flight,
    submits_per_minute = excluded.submits_per_minute, refusals = excluded.refusals,
    quotas_set_at = excluded.quotas_set_at, version = excluded.version,
    snapshot = excluded.snapshot;

-- name: append_events
-- Events as JSON rows, their state base64 (bytes), for the final round trip of a unit of
-- work; the table lock and NOTIFY come first (see FleetPostgresRecorder).
INSERT INTO fleetlog_events (originator_id, originator_version, topic, state)
SELECT u.originator_id, u.originator_version, u.topic, decode(u.state, 'base64')
FROM json_to_recordset(%(rows)s::json)
    AS u(originator_id uuid, originator_version bigint, topic text, state text);

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
  AND (%(after)s::uuid IS NULL OR job_id > %(after)s::uuid)
ORDER BY job_id
LIMIT %(limit)s;

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
FROM fleet_tenants WHERE tenant = %(tenant)s;

-- name: tenant_usage
SELECT
    (SELECT count(*) FROM fleet_jobs WHERE tenant = %(tenant)s
        AND state IN ('queued', 'blocked', 'scheduled', 'failed')) AS queued,
    (SELECT count(*) FROM fleet_jobs WHERE tenant = %(tenant)s
        AND state IN ('assigned', 'running')) AS in_flight,
    (SELECT count(*) FROM fleet_jobs WHERE tenant = %(tenant)s
        AND created_at > %(since)s) AS submitted;

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
SELECT profile_id, tenant, name, version, content_hash, content, registered_at
FROM fleet_profiles;

-- name: dump_tenants
SELECT tenant, max_queued, max_in_flight, submits_per_minute, refusals, quotas_set_at,
    version, snapshot
FROM fleet_tenants;

-- name: clear_views
TRUNCATE fleet_jobs, fleet_queue, fleet_idempotency, fleet_dependencies, fleet_factories,
    fleet_profiles, fleet_tenants;

-- name: lock_views
-- Rebuild holds every view exclusively so no write lands between the replay and the swap;
-- the events table lock keeps new events out for the same time.
LOCK TABLE fleet_jobs, fleet_queue, fleet_idempotency, fleet_dependencies, fleet_factories,
    fleet_profiles, fleet_tenants IN EXCLUSIVE MODE;

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

-- name: analytics_position
SELECT projection, position, pending_first, pending_last, updated_at, leader,
       rebuild_requested_at, rebuilt_at, swap_database, swap_position
FROM fleet_analytics_positions WHERE projection = %(projection)s;

-- name: analytics_positions
SELECT projection, position, pending_first, pending_last, updated_at, leader,
       rebuild_requested_at, rebuilt_at, swap_database, swap_position
FROM fleet_analytics_positions ORDER BY projection;

-- name: analytics_begin
-- Record a batch's range before it is written; the CHECKs refuse a range that does not
-- start after the position (a second writer, or a bug), and the WHERE a stale one.
INSERT INTO fleet_analytics_positions (projection, position, pending_first, pending_last, updated_at, leader)
VALUES (%(projection)s, 0, %(first)s, %(last)s, %(now)s, %(leader)s)
ON CONFLICT (projection) DO UPDATE SET
    pending_first = excluded.pending_first, pending_last = excluded.pending_last,
    updated_at = excluded.updated_at, leader = excluded.leader
WHERE fleet_analytics_positions.position = %(position)s
RETURNING projection;

-- name: analytics_commit
UPDATE fleet_analytics_positions
SET position = %(last)s, pending_first = NULL, pending_last = NULL, updated_at = %(now)s
WHERE projection = %(projection)s AND pending_last = %(last)s
RETURNING projection;

-- name: analytics_prepare_swap
-- A rebuilt database holding everything up to swap_position is about to replace the live
-- tables: recorded first, so a crash mid-swap is finished on restart.
INSERT INTO fleet_analytics_positions (projection, position, updated_at, leader, swap_database, swap_position)
VALUES (%(projection)s, 0, %(now)s, %(leader)s, %(database)s, %(position)s)
ON CONFLICT (projection) DO UPDATE SET
    swap_database = excluded.swap_database, swap_position = excluded.swap_position,
    updated_at = excluded.updated_at, leader = excluded.leader;

-- name: analytics_finish_swap
UPDATE fleet_analytics_positions
SET position = swap_position, pending_first = NULL, pending_last = NULL, swap_database = NULL,
    swap_position = NULL, rebuilt_at = %(now)s, updated_at = %(now)s, rebuild_requested_at = NULL
WHERE projection = %(projection)s AND swap_database IS NOT NULL;

-- name: analytics_request_rebuild
INSERT INTO fleet_analytics_positions (projection, position, updated_at, rebuild_requested_at)
VALUES (%(projection)s, 0, %(now)s, %(now)s)
ON CONFLICT (projection) DO UPDATE SET rebuild_requested_at = excluded.rebuild_requested_at;

-- name: analytics_claim_leader
INSERT INTO fleet_analytics_positions (projection, position, updated_at, leader)
VALUES (%(projection)s, 0, %(now)s, %(leader)s)
ON CONFLICT (projection) DO UPDATE SET leader = excluded.leader, updated_at = excluded.updated_at;
