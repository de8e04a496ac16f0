-- Where each ClickHouse projection has got to in the event log (issue 4). The consumer
-- records a batch's notification range as pending BEFORE it writes to ClickHouse, and
-- moves the position (clearing the range) after; a consumer that finds a pending range
-- re-reads exactly that range, so its deduplication tokens match what it may already
-- have written. rebuild_requested_at asks the projection's leader (a `serve` process)
-- to rebuild; rebuilt_at says when a rebuild last finished. swap_database and
-- swap_position are set while a rebuilt database is being swapped in, so a crash in the
-- middle of the swap is finished on restart (never a gap, never a duplicate).
CREATE TABLE fleet_analytics_positions (
    projection text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0,
    pending_first bigint,
    pending_last bigint,
    updated_at timestamptz NOT NULL,
    leader text,
    rebuild_requested_at timestamptz,
    rebuilt_at timestamptz,
    swap_database text,
    swap_position bigint,
    CHECK ((pending_first IS NULL) = (pending_last IS NULL)),
    CHECK (pending_first IS NULL OR (pending_first > position AND pending_last >= pending_first))
);
