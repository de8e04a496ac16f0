-- Tenant quotas: the same table and index as migrations/postgres/0003_tenant_quotas.sql.
-- refusals is a JSON object (quota name -> count), timestamps ISO-8601 UTC text.
CREATE TABLE fleet_tenants (
    tenant TEXT PRIMARY KEY,
    max_queued INTEGER,
    max_in_flight INTEGER,
    submits_per_minute INTEGER,
    refusals TEXT NOT NULL,
    quotas_set_at TEXT,
    version INTEGER NOT NULL,
    snapshot TEXT NOT NULL
);

CREATE INDEX fleet_jobs_tenant_created ON fleet_jobs (tenant, created_at);
