-- notifications.sql — wasl_notifications_* (proto/functions/notifications.sql): each
-- function's edges. Rows are named by their dedupe key; ids are taken with \gset.
\pset null '∅'

-- enqueue: three rows, lang and params defaulted on one; then the same keys again (nothing).
SELECT ticket_id, channel, kind FROM wasl_notifications_enqueue('[
    {"ticket_id": 1, "kind": "ack", "channel": "sms", "recipient": "+966500000001",
     "lang": "en", "template": "ack", "params": {"ref": "2600000001"}, "dedupe_key": "k1"},
    {"ticket_id": 2, "kind": "update", "channel": "email", "recipient": "a@example.org",
     "template": "resolved", "dedupe_key": "k2"},
    {"ticket_id": null, "kind": "alert", "channel": "email", "recipient": "ops@example.org",
     "template": "sla_alert", "dedupe_key": "k3"}]');
SELECT count(*) AS again FROM wasl_notifications_enqueue(
    '[{"ticket_id": 1, "kind": "ack", "channel": "sms", "recipient": "+966500000001",
       "template": "ack", "dedupe_key": "k1"}]');
SELECT count(*) AS empty FROM wasl_notifications_enqueue(NULL);
SELECT dedupe_key, lang, params, state, attempts FROM notifications ORDER BY id;
SELECT max(id) FILTER (WHERE dedupe_key = 'k1') AS k1,
       max(id) FILTER (WHERE dedupe_key = 'k2') AS k2,
       max(id) FILTER (WHERE dedupe_key = 'k3') AS k3 FROM notifications \gset

-- claim by ids: k1 only; claimed again (live lease) nothing.
SELECT count(*) AS claimed FROM wasl_notifications_claim('n1', 30, 10, ARRAY[:k1]::bigint[]);
SELECT count(*) AS again FROM wasl_notifications_claim('n2', 30, 10, ARRAY[:k1]::bigint[]);
-- the sweep takes the due rest (k2, k3) up to the limit: one, then one, then none.
SELECT count(*) AS swept FROM wasl_notifications_claim('n1', 30, 1, NULL);
SELECT count(*) AS swept FROM wasl_notifications_claim('n1', 30, 1, NULL);
SELECT count(*) AS swept FROM wasl_notifications_claim('n1', 30, 1, NULL);
SELECT dedupe_key, state, owner, attempts FROM notifications ORDER BY id;

-- sent: another owner's batch records nothing; the owner's records the email with its
-- outbound message and event (given twice in the batch: once; an unknown id: nothing); the same
-- batch again nothing.
\set sent2 '[{"id": ' :k2 ', "provider_id": "p-2", "provider_status": "ok", "segments": null, "message_id": "mid-2@wasl", "sender": "wasl@example.org", "body": "body", "subject": "subject", "record": true, "channel": "email"}'
SELECT count(*) AS not_owner FROM wasl_notifications_sent((:'sent2' || ']')::jsonb, 'n2');
SELECT count(*) AS recorded
  FROM wasl_notifications_sent((:'sent2' || ',' || substr(:'sent2', 2)
                                || ', {"id": 999999, "provider_id": "x"}]')::jsonb, 'n1');
SELECT count(*) AS again FROM wasl_notifications_sent((:'sent2' || ']')::jsonb, 'n1');
SELECT state, provider_id, sent_at IS NOT NULL AS sent, lease_until FROM notifications
 WHERE id = :k2;
SELECT ticket_id, direction, channel, message_id FROM messages;
SELECT ticket_id, kind, data - 'notification_id' AS data FROM ticket_events;

-- fail: a retry (pending again, later), then dead when permanent; another owner nothing.
SELECT count(*) AS not_owner FROM wasl_notifications_fail(:k1, 'n2', 'x', 0, false);
SELECT * FROM wasl_notifications_fail(:k1, 'n1', 'timeout', 60000, false) AS state;
SELECT state, next_attempt_at > now() + interval '59 s' AS backing_off, last_error, owner
  FROM notifications WHERE id = :k1;
-- waiting again (no owner): not the owner's any more, nothing to fail.
SELECT count(*) AS not_held FROM wasl_notifications_fail(:k1, 'n1', 'x', 0, false);
SELECT * FROM wasl_notifications_fail(:k3, 'n1', 'bad template', 0, true) AS state;
-- the last attempt used: dead though not permanent.
UPDATE notifications SET owner = 'n1', lease_until = now() + interval '1 m',
       attempts = max_attempts WHERE id = :k1;
SELECT * FROM wasl_notifications_fail(:k1, 'n1', 'timeout', 0, false) AS state;

-- defer and suppress: fenced; defer gives the attempt back.
SELECT count(*) FROM wasl_notifications_enqueue('[{"ticket_id": 4, "kind": "ack",
    "channel": "sms", "recipient": "+966500000004", "template": "ack", "dedupe_key": "k4"},
    {"ticket_id": 5, "kind": "ack", "channel": "sms", "recipient": "+966500000005",
     "template": "ack", "dedupe_key": "k5"}]');
SELECT max(id) FILTER (WHERE dedupe_key = 'k4') AS k4,
       max(id) FILTER (WHERE dedupe_key = 'k5') AS k5 FROM notifications \gset
-- the claim is a HOT update (it leaves state and every indexed column alone; migration 0028):
-- the transaction's own statistics count both leases among the HOT updates.
BEGIN;
-- (pending counts of earlier transactions may not be flushed yet: count this one's difference)
SELECT n_tup_upd AS upd0, n_tup_hot_upd AS hot0
  FROM pg_stat_xact_user_tables WHERE relname = 'notifications' \gset
SELECT count(*) FROM wasl_notifications_claim('n1', 30, 10, ARRAY[:k4, :k5]::bigint[]);
SELECT n_tup_upd - :upd0 AS updated, n_tup_hot_upd - :hot0 AS hot
  FROM pg_stat_xact_user_tables WHERE relname = 'notifications';
COMMIT;
SELECT count(*) AS not_owner FROM wasl_notifications_defer(:k4, 'n2', 600, 'quiet_hours');
SELECT count(*) AS deferred FROM wasl_notifications_defer(:k4, 'n1', 600, 'quiet_hours');
SELECT state, attempts, next_attempt_at > now() + interval '599 s' AS later, last_error
  FROM notifications WHERE id = :k4;
SELECT count(*) AS not_owner FROM wasl_notifications_suppress(:k5, 'n2', 'opted_out');
SELECT count(*) AS suppressed FROM wasl_notifications_suppress(:k5, 'n1', 'opted_out');
SELECT count(*) AS again FROM wasl_notifications_suppress(:k5, 'n1', 'opted_out');
SELECT state, last_error FROM notifications WHERE id = :k5;

-- release on a stop: the claimed row goes back, its attempt not counted.
UPDATE notifications SET next_attempt_at = now() WHERE id = :k4;
SELECT count(*) FROM wasl_notifications_claim('n1', 30, 10, ARRAY[:k4]::bigint[]);
SELECT count(*) AS not_owner FROM wasl_notifications_release(ARRAY[:k4]::bigint[], 'n2');
SELECT count(*) AS released FROM wasl_notifications_release(ARRAY[:k4]::bigint[], 'n1');
SELECT state, attempts, owner FROM notifications WHERE id = :k4;

-- redrive: dead rows only (k1 sms, k3 email), by channel, then the rest; sent rows never.
SELECT count(*) AS sent_row FROM wasl_notifications_redrive(ARRAY[:k2]::bigint[], NULL);
SELECT count(*) AS email FROM wasl_notifications_redrive(NULL, 'email');
SELECT count(*) AS rest FROM wasl_notifications_redrive(NULL, NULL);
SELECT dedupe_key, state, attempts, owner FROM notifications ORDER BY id;

-- delivery reports (SMS only): by id, then by provider id; a final status is never replaced
-- by a late interim one; an email or an unknown id has none.
UPDATE notifications SET provider_id = 'prov-4' WHERE id = :k4;
SELECT dlr_status FROM wasl_notifications_delivery_report(:k4, NULL, 'submitted');
SELECT dlr_status FROM wasl_notifications_delivery_report(NULL, 'prov-4', 'delivered');
SELECT dlr_status FROM wasl_notifications_delivery_report(:k4, NULL, 'buffered');
SELECT dlr_status FROM wasl_notifications_delivery_report(:k4, NULL, 'failed');
SELECT count(*) AS email FROM wasl_notifications_delivery_report(:k2, NULL, 'delivered');
SELECT count(*) AS unknown FROM wasl_notifications_delivery_report(NULL, 'nope', 'delivered');
SELECT dlr_status, dlr_at IS NOT NULL AS reported FROM notifications WHERE id = :k4;

-- sent, a batch of an SMS and an email (as the notifier records after its sends): both sent, the
-- SMS with its segments and no outbound message, the email with its message; an empty batch.
SELECT count(*) FROM wasl_notifications_enqueue('[{"ticket_id": 3, "kind": "ack",
    "channel": "sms", "recipient": "+966500000003", "template": "ack", "dedupe_key": "k6"},
    {"ticket_id": 3, "kind": "update", "channel": "email", "recipient": "c@example.org",
     "template": "resolved", "dedupe_key": "k7"}]');
SELECT max(id) FILTER (WHERE dedupe_key = 'k6') AS k6,
       max(id) FILTER (WHERE dedupe_key = 'k7') AS k7 FROM notifications \gset
SELECT count(*) AS claimed FROM wasl_notifications_claim('n3', 30, 10, ARRAY[:k6, :k7]::bigint[]);
\set sent67 '[{"id": ' :k6 ', "provider_id": "sms-6", "provider_status": "accepted", "segments": 2, "message_id": null, "sender": "wasl@example.org", "body": "ack", "subject": null, "record": false, "channel": "sms"}, {"id": ' :k7 ', "provider_id": "smtp-7", "provider_status": "250 ok", "segments": null, "message_id": "mid-7@wasl", "sender": "wasl@example.org", "body": "resolved", "subject": "s7", "record": true, "channel": "email"}]'
SELECT count(*) AS recorded FROM wasl_notifications_sent(:'sent67', 'n3');
SELECT dedupe_key, state, provider_id, provider_status, segments, message_id, owner,
       sent_at IS NOT NULL AS sent
  FROM notifications WHERE id IN (:k6, :k7) ORDER BY id;
SELECT m.channel, m.message_id, m.subject FROM messages m WHERE m.ticket_id = 3
   AND m.direction = 'out';
SELECT data - 'notification_id' AS data FROM ticket_events
 WHERE ticket_id = 3 AND kind = 'notification.sent' ORDER BY id;
SELECT count(*) AS empty FROM wasl_notifications_sent('[]', 'n3');
