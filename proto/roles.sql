-- roles.sql — the PostgreSQL roles of Wasl, created once per cluster by someone who may create
-- roles (a DBA, the superuser of the local stack and of the tests, or a role with CREATEROLE).
-- Idempotent: run it again after an upgrade that adds a role. It gives no privilege on any
-- table: `waslctl migrate` (run as `wasl`, the owner) applies proto/grants.sql for that.
--
--   psql -v ON_ERROR_STOP=1 -d postgres -f proto/roles.sql
--
-- Passwords are set apart from this file, by whoever holds them (ALTER ROLE … PASSWORD, or
-- `\password` in psql); the local stack and the tests connect over loopback with trust.
--
--   wasl             owns the database, the schema and every table; runs `waslctl migrate`
--                    (and `waslctl seed-cases`, which writes the case replica's demo data)
--   wasl_intake      wasl-intake        wasl_classifier  wasl-classifier
--   wasl_router      wasl-router        wasl_notifier    wasl-notifier
--   wasl_caselookup  wasl-caselookup    wasl_ctl         waslctl's operator commands
--   wasl_desk        wasl-desk: the people's edge and the agent API (moved from intake)
--
-- No role is a superuser, may create roles or databases, replicate or bypass row security;
-- the daemons' roles own nothing, so they cannot ALTER, DROP or DISABLE TRIGGER on any table.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['wasl', 'wasl_intake', 'wasl_classifier', 'wasl_router',
                             'wasl_notifier', 'wasl_caselookup', 'wasl_ctl', 'wasl_desk'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I LOGIN', r);
        END IF;
        EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
                       'NOBYPASSRLS', r);
        -- A daemon's role that was made a member of another (say of the owner) would inherit
        -- its privileges: nobody is a member of anybody here.
        PERFORM 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
            JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = r;
        IF FOUND THEN
            RAISE EXCEPTION 'role % is a member of another role: revoke that first', r;
        END IF;
    END LOOP;
END;
$$;
