-- 0012_least_privilege: every append-only table refuses UPDATE, DELETE and TRUNCATE to every
-- role, the owner included (issue 13, finding 8). Who may do what is in proto/grants.sql,
-- applied by `waslctl migrate` after the migrations; the roles come from proto/roles.sql.
--
-- ticket_events and case_lookup_audit had all three guards already; agent_events lacked the
-- TRUNCATE one. call_events is the durable record of what the telephony front end sent: its
-- rows are never deleted (intake only links one to its ticket, a column-level grant), so it
-- refuses DELETE and TRUNCATE.
CREATE TRIGGER agent_events_no_truncate BEFORE TRUNCATE ON agent_events
    FOR EACH STATEMENT EXECUTE FUNCTION wasl_append_only();
CREATE TRIGGER call_events_no_delete BEFORE DELETE ON call_events
    FOR EACH ROW EXECUTE FUNCTION wasl_append_only();
CREATE TRIGGER call_events_no_truncate BEFORE TRUNCATE ON call_events
    FOR EACH STATEMENT EXECUTE FUNCTION wasl_append_only();
