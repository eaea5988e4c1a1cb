-- 0022_wrapup: a resolution's wrap-up (disposition) code in its own column (issue 15). Before,
-- the desk kept it as a `wrapup:<code>` note in the history; now wasl_tickets_resolve stores it
-- on the ticket (and in the 'resolved' event's data), so supervisors count dispositions with a
-- plain GROUP BY (the wallboard's `wrapup` per queue). NULL: resolved without one (by intake's
-- agent API, or before this migration), or not resolved. The codes themselves are the desk's
-- configuration (WASL_DESK_WRAPUP_CODES); the CHECK only bounds their shape.
ALTER TABLE tickets
    ADD COLUMN wrapup_code text CHECK (wrapup_code ~ '^[a-z0-9][a-z0-9_.-]{0,63}$');

-- The notes the desk wrote before this migration, moved to the column (the note stays in the
-- history: ticket_events is append-only).
UPDATE tickets t
   SET wrapup_code = w.code
  FROM (SELECT DISTINCT ON (e.ticket_id) e.ticket_id, substr(e.data ->> 'text', 8) AS code
          FROM ticket_events e
         WHERE e.kind = 'note' AND e.data ->> 'text' ~ '^wrapup:[a-z0-9][a-z0-9_.-]{0,63}$'
         ORDER BY e.ticket_id, e.id DESC) w
 WHERE t.id = w.ticket_id AND t.status IN ('resolved', 'closed');
