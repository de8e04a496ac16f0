-- The check a hand-over sent in one round trip runs first (coordinator/claiming.py,
-- ``Claiming._guess``). A submit that hands its new job to a waiting worker may skip
-- reading the worker's factory, its leases and the queue before deciding, on what this
-- server process last read for that factory; the decision then goes in the commit's
-- round trip behind this guard, which reads what the decision rests on, with the
-- factory's row locked (as every claim for it locks it): the factory is not down, its
-- capabilities are still the ones decided on (p_factory_caps; NULL when the claim named
-- its own), it has a seat free, and nothing else is claimable for the worker (else the
-- claim would have to rank it against the new job). Any of them wrong: SQLSTATE FL001
-- ends the transaction, and the submit runs again with a claim that reads first. A
-- heartbeat that changes none of these does not void a guess.
CREATE FUNCTION fleet_hand_over_guard(
    p_factory text,
    p_factory_caps text[],
    p_now timestamptz,
    p_caps text[],
    p_tenants text[],
    p_queues text[]
) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    f record;
BEGIN
    SELECT health, capabilities, seat_limit INTO f
    FROM fleet_factories WHERE factory_id = p_factory FOR UPDATE;
    IF NOT FOUND OR f.health = 'down' THEN
        RAISE EXCEPTION 'hand-over guess missed: factory % is unknown or down', p_factory
            USING ERRCODE = 'FL001';
    END IF;
    IF p_factory_caps IS NOT NULL
       AND NOT (f.capabilities @> p_factory_caps AND f.capabilities <@ p_factory_caps) THEN
        RAISE EXCEPTION 'hand-over guess missed: factory % has other capabilities now', p_factory
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
