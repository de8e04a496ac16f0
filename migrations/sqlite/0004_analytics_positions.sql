-- Where each ClickHouse projection has got to in the event log (issue 4): see the
-- PostgreSQL migration of the same number for the protocol.
CREATE TABLE fleet_analytics_positions (
    projection TEXT PRIMARY KEY,
    position INTEGER NOT NULL DEFAULT 0,
    pending_first INTEGER,
    pending_last INTEGER,
    updated_at TEXT NOT NULL,
    leader TEXT,
    rebuild_requested_at TEXT,
    rebuilt_at TEXT,
    swap_database TEXT,
    swap_position INTEGER,
    CHECK ((pending_first IS NULL) = (pending_last IS NULL)),
    CHECK (pending_first IS NULL OR (pending_first > position AND pending_last >= pending_first))
);
