-- Tenant quotas: the Tenant aggregate's view (and hot-path snapshot). A row exists once
-- an admin has set the tenant's quotas; NULL limits mean unlimited. Admission (submit)
-- locks the row FOR UPDATE while it counts, so concurrent submits of a tenant with
-- quotas are admitted one at a time; tenants without a row are never locked or counted.
CREATE TABLE fleet_tenants (
    tenant text PRIMARY KEY,
    max_queued int,
    max_in_flight int,
    submits_per_minute int,
    refusals text NOT NULL,
    quotas_set_at timestamptz,
    version bigint NOT NULL,
    snapshot text NOT NULL
);

-- The per-minute admission window: a tenant's jobs by creation time (created_at never
-- changes, but like every index on fleet_jobs this one is rewritten by each transition).
CREATE INDEX fleet_jobs_tenant_created ON fleet_jobs (tenant, created_at);
