-- The eventsourcing library's application events table, exactly as its
-- SQLiteApplicationRecorder creates it (tests/migration checks the two agree).
-- SQLite's rowid is the notification id (the global order).
CREATE TABLE IF NOT EXISTS fleetlog_events (
    originator_id TEXT,
    originator_version INTEGER,
    topic TEXT,
    state BLOB,
    PRIMARY KEY (originator_id, originator_version)
);
