-- Read models written in the same transaction as the events; the same tables and
-- columns as migrations/postgres/0002_read_models.sql (tests/migration compares them).
-- Timestamps are ISO-8601 UTC text with microseconds (they sort as text), UUIDs are
-- canonical text, arrays and documents are JSON text.

CREATE TABLE fleet_jobs (
    job_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    state TEXT NOT NULL,
    kind TEXT NOT NULL,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    idempotency_key TEXT,
    parent_id TEXT,
    phase TEXT,
    epoch INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    available_at TEXT,
    lease_factory_id TEXT,
    lease_expires_at TEXT,
    spec TEXT NOT NULL,
    snapshot TEXT NOT NULL
);
-- Listings page in id order: ids are UUIDv7, so id order is creation order. (Every
-- transition rewrites the row and, not being a HOT update, every index: each index
-- here costs every claim and every completion.)
CREATE INDEX fleet_jobs_tenant ON fleet_jobs (tenant, job_id);
CREATE INDEX fleet_jobs_tenant_state ON fleet_jobs (tenant, state, job_id);
CREATE INDEX fleet_jobs_parent ON fleet_jobs (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX fleet_jobs_lease_expiry ON fleet_jobs (lease_expires_at, job_id)
    WHERE lease_expires_at IS NOT NULL;
CREATE INDEX fleet_jobs_lease_factory ON fleet_jobs (lease_factory_id)
    WHERE lease_factory_id IS NOT NULL;

CREATE VIEW fleet_leases AS
    SELECT job_id, tenant, lease_factory_id AS factory_id, epoch, lease_expires_at AS expires_at
    FROM fleet_jobs
    WHERE lease_factory_id IS NOT NULL;

CREATE TABLE fleet_queue (
    job_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    available_at TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    has_deps INTEGER NOT NULL
);
CREATE INDEX fleet_queue_tenant_order ON fleet_queue (tenant, priority, available_at, job_id);
CREATE INDEX fleet_queue_order ON fleet_queue (priority, available_at, job_id);
CREATE INDEX fleet_queue_due ON fleet_queue (available_at, job_id) WHERE state <> 'queued';

CREATE TABLE fleet_idempotency (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    job_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    PRIMARY KEY (tenant, key)
);

CREATE TABLE fleet_dependencies (
    job_id TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    mode TEXT NOT NULL,
    milestone TEXT,
    PRIMARY KEY (job_id, depends_on)
);
CREATE INDEX fleet_dependencies_reverse ON fleet_dependencies (depends_on, job_id);

CREATE TABLE fleet_factories (
    factory_id TEXT PRIMARY KEY,
    health TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    seat_limit INTEGER,
    load REAL NOT NULL,
    heartbeat_timeout_seconds REAL,
    last_heartbeat_at TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    version INTEGER NOT NULL,
    snapshot TEXT NOT NULL
);

CREATE TABLE fleet_profiles (
    profile_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    content TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    UNIQUE (tenant, name, version)
);
