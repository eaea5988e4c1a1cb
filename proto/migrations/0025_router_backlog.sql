-- 0025_router_backlog: the router's rounds cost what they can do, not the backlog (issue 16).
--
-- A dispatch round offers the waiting tickets of the queue/channel pairs some agent can take
-- now, in order (priority, first-response deadline, place in line). With the order alone in the
-- index, a round walked every waiting ticket that nobody present could take before finding the
-- few it could offer: ~100 ms a round with 100,000 tickets waiting in queues without agents,
-- after every routed batch — O(backlog) (issue 16). Keyed by queue and channel first, a round
-- walks each servable pair's own order and stops at its limit. The dispatch round is the
-- index's only reader (the desk's views read tickets_queue_idx and tickets_assignee_idx), so it
-- replaces the old one: no more index entries per ticket than before.
DROP INDEX tickets_waiting_idx;
CREATE INDEX tickets_waiting_idx
    ON tickets (queue, channel, prio_rank, first_response_due, waiting_since, id)
    WHERE status = 'routed';

-- The overflow timer (wasl_tickets_overflow) looked at every waiting ticket each time it ran
-- (~100 ms with 100,000 waiting, every second): these are the ones it can move, oldest mark
-- first, so that it reads the due rows only.
CREATE INDEX tickets_overflow_idx ON tickets (no_agent_since)
    WHERE status = 'routed' AND no_agent_since IS NOT NULL AND overflowed_at IS NULL
      AND escalated_at IS NULL;
