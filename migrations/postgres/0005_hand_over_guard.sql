-- The check a hand-over sent in one round trip runs first (coordinator/claiming.py,
-- "Hand-over in one round trip"). A submit that hands its new job to a waiting worker
-- may skip reading the worker's factory, its leases and the queue before deciding, on
-- what this server process last read for that factory; the decision then goes in the
-- commit's round trip behind this guard, which re-reads the three under the factory's
-- row lock: the factory is the version the server decided on (so its health, seat limit
-- and capabilities are), it has a seat free, and nothing else is claimable for the
-- worker (else the claim would have to rank it against the new job). Any of them wrong:
-- SQLSTATE FL001 ends the transaction, and the submit runs again with a claim that reads
-- before it decides.
CREATE FUNCTION fleet_hand_over_guard(
    p_factory text,
    p_version bigint,
    p_now timestamptz,
    p_caps text[],
    p_tenants text[],
    p_queues text[]
) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    f record;
BEGIN
    SELECT version, seat_limit INTO f FROM fleet_factories WHERE factory_id = p_factory FOR UPDATE;
    IF NOT FOUND OR f.version <> p_version THEN
        RAISE EXCEPTION 'hand-over guess missed: factory % is not at version %', p_factory, p_version
            USING ERRCODE = 'FL001';
    END IF;
    IF f.seat_limit IS NOT NULL
       AND (SELECT count(*) FROM fleet_jobs WHERE lease_factory_id = p_factory) >= f.seat_limit THEN
        RAISE EXCEPTION 'hand-over guess missed: factory % has no seat free', p_factory
            USING ERRCODE = 'FL001';
    END IF;
    IF EXISTS (
        SELECT 1 FROM fleet_queue q
        WHERE q.available_at <= p_now
          AND q.capabilities <@ p_caps
          AND (q.state = 'queued' OR NOT q.has_deps)
          AND (p_tenants IS NULL OR q.tenant = ANY(p_tenants))
          AND (p_queues IS NULL OR q.queue = ANY(p_queues))
    ) THEN
        RAISE EXCEPTION 'hand-over guess missed: other work is claimable for factory %', p_factory
            USING ERRCODE = 'FL001';
    END IF;
    RETURN true;
END
$$;
