-- setup.sql — the fixtures every tests/sql/<family>.sql starts from (run first, not echoed):
-- three agents present for an hour and five routed tickets, 2600000001 … 2600000005, in
-- queue 'general'. Each family's file then builds what its cases need.
SET client_min_messages = warning;
INSERT INTO agents (id, name, skills, presence, presence_until, idle_since)
SELECT a, 'Agent ' || a, '{"general": 5}', 'available', now() + interval '1 hour',
       now() - interval '10 minutes'
  FROM unnest(ARRAY['amal', 'badr', 'dana']) AS a;
INSERT INTO tickets (ref, channel, external_id, status, queue, priority, prio_rank, language,
                     from_phone, waiting_since, first_response_due, resolution_due)
SELECT '260000000' || n, 'api', 'ext-' || n, 'routed', 'general', 'normal', 2, 'ar',
       '+96650000000' || n, now(), now() + interval '1 hour', now() + interval '1 day'
  FROM generate_series(1, 5) AS n;
