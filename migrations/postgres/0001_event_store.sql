-- The eventsourcing library's application events table, exactly as its
-- PostgresApplicationRecorder creates it (tests/migration checks the two agree), so the
-- library's recorder reads and appends unchanged. notification_id is the global order.
CREATE TABLE IF NOT EXISTS fleetlog_events (
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    topic text,
    state bytea,
    notification_id bigserial,
    PRIMARY KEY (originator_id, originator_version)
) WITH (
    autovacuum_enabled = true,
    autovacuum_vacuum_threshold = 100000000,
    autovacuum_vacuum_scale_factor = 0.5,
    autovacuum_analyze_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.01
);

DO $$ BEGIN
    CREATE TYPE stored_event_uuid AS (
        originator_id uuid, originator_version bigint, topic text, state bytea);
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

CREATE UNIQUE INDEX IF NOT EXISTS fleetlog_events_notification_id_idx
    ON fleetlog_events (notification_id ASC);
