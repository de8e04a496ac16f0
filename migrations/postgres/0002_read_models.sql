-- Read models written in the same transaction as the events (see projections/).
-- Every row is a function of one aggregate's state: `fleetlog projections verify`
-- rebuilds them from the log and compares.
--
-- Documents (spec, snapshot, insights...) are JSON kept as text: Fleetlog never queries
-- inside them on a hot path and text streams through COPY without re-encoding; cast
-- with ::jsonb to inspect them by hand.
--
-- The queue table churns (a row per job passes through it): autovacuum and autoanalyze
-- look at it far more often than the defaults would.

-- The job summary used for listing, and the hot-path snapshot (version + state) that
-- lets a transaction change a job without replaying its stream.
CREATE TABLE fleet_jobs (
    job_id uuid PRIMARY KEY,
    tenant text NOT NULL,
    state text NOT NULL,
    kind text NOT NULL,
    queue text NOT NULL,
    priority int NOT NULL,
    idempotency_key text,
    parent_id uuid,
    phase text,
    epoch bigint NOT NULL,
    attempt int NOT NULL,
    version bigint NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    available_at timestamptz,
    lease_factory_id text,
    lease_expires_at timestamptz,
    spec text NOT NULL,
    snapshot text NOT NULL
) WITH (fillfactor = 90);
-- Listings page in id order: ids are UUIDv7, so id order is creation order. (Every
-- transition rewrites the row and, not being a HOT update, every index: each index
-- here costs every claim and every completion.)
CREATE INDEX fleet_jobs_tenant ON fleet_jobs (tenant, job_id);
CREATE INDEX fleet_jobs_tenant_state ON fleet_jobs (tenant, state, job_id);
CREATE INDEX fleet_jobs_parent ON fleet_jobs (parent_id) WHERE parent_id IS NOT NULL;
-- The lease columns: the reaper scans expiries, seat limits count per factory.
CREATE INDEX fleet_jobs_lease_expiry ON fleet_jobs (lease_expires_at, job_id)
    WHERE lease_expires_at IS NOT NULL;
CREATE INDEX fleet_jobs_lease_factory ON fleet_jobs (lease_factory_id)
    WHERE lease_factory_id IS NOT NULL;

-- The lease view: who holds which job until when. A view over the job summary, so it
-- changes in the same statement as the job (a job's runs, one per lease, live in its
-- snapshot; analytics over runs is ClickHouse's job).
CREATE VIEW fleet_leases AS
    SELECT job_id, tenant, lease_factory_id AS factory_id, epoch, lease_expires_at AS expires_at
    FROM fleet_jobs
    WHERE lease_factory_id IS NOT NULL;

-- The queue: jobs that are claimable now (queued) or once available_at passes
-- (scheduled, failed-awaiting-retry). Claimed rows leave it, so it stays small.
CREATE TABLE fleet_queue (
    job_id uuid PRIMARY KEY,
    tenant text NOT NULL,
    queue text NOT NULL,
    priority int NOT NULL,
    state text NOT NULL,
    available_at timestamptz NOT NULL,
    capabilities text[] NOT NULL,
    has_deps boolean NOT NULL
) WITH (
    autovacuum_vacuum_threshold = 200,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_threshold = 200,
    autovacuum_analyze_scale_factor = 0.02
);
CREATE INDEX fleet_queue_tenant_order ON fleet_queue (tenant, priority, available_at, job_id);
CREATE INDEX fleet_queue_order ON fleet_queue (priority, available_at, job_id);
CREATE INDEX fleet_queue_due ON fleet_queue (available_at, job_id) WHERE state <> 'queued';

-- (tenant, idempotency key) -> the job currently answering to it.
CREATE TABLE fleet_idempotency (
    tenant text NOT NULL,
    key text NOT NULL,
    job_id uuid NOT NULL,
    content_hash text NOT NULL,
    PRIMARY KEY (tenant, key)
);

-- Dependency edges: job_id waits for depends_on.
CREATE TABLE fleet_dependencies (
    job_id uuid NOT NULL,
    depends_on uuid NOT NULL,
    mode text NOT NULL,
    milestone text,
    PRIMARY KEY (job_id, depends_on)
);
CREATE INDEX fleet_dependencies_reverse ON fleet_dependencies (depends_on, job_id);

-- Worker hosts and their hot-path snapshot.
CREATE TABLE fleet_factories (
    factory_id text PRIMARY KEY,
    health text NOT NULL,
    capabilities text[] NOT NULL,
    seat_limit int,
    load double precision NOT NULL,
    heartbeat_timeout_seconds double precision,
    last_heartbeat_at timestamptz NOT NULL,
    registered_at timestamptz NOT NULL,
    version bigint NOT NULL,
    snapshot text NOT NULL
);

-- Immutable, versioned profiles per tenant.
CREATE TABLE fleet_profiles (
    profile_id uuid PRIMARY KEY,
    tenant text NOT NULL,
    name text NOT NULL,
    version int NOT NULL,
    content_hash text NOT NULL,
    content text NOT NULL,
    registered_at timestamptz NOT NULL,
    UNIQUE (tenant, name, version)
);
