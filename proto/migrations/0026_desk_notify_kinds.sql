-- 0026_desk_notify_kinds: the pipeline's own history events no longer NOTIFY the desk (issue 16).
--
-- The desk turns offers, assignments and presence into events, and any other ticket event only
-- marks its wallboard for a refresh; the wallboard counts tickets by queue, which a ticket has
-- only from `routed` on. The three events every contact gets before and after that —
-- `received` (intake), `classified` (the classifier) and `notification.sent` (the notifier) —
-- changed nothing any desk shows, yet each called the trigger (a read of the ticket, a jsonb
-- payload) and each NOTIFY made its transaction take PostgreSQL's one database-wide lock for
-- notifying commits, held until the commit is flushed: intake's durable commits, the
-- classifier's and the notifier's were queued behind one another on it. A deny list rather than
-- the desk's own list of kinds: a kind added later still reaches the desk, as before.
DROP TRIGGER ticket_events_desk_notify ON ticket_events;
CREATE TRIGGER ticket_events_desk_notify AFTER INSERT ON ticket_events
    FOR EACH ROW
    WHEN (NEW.kind NOT IN ('received', 'classified', 'notification.sent'))
    EXECUTE FUNCTION wasl_desk_notify();
