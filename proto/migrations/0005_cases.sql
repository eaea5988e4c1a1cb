-- 0005_cases: the court system's case data (a read replica) and the append-only audit of every
-- case lookup made through Wasl (issue 7).

CREATE TABLE courts (
    id        integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code      text NOT NULL UNIQUE,
    name_ar   text NOT NULL,
    name_en   text NOT NULL,
    city_ar   text NOT NULL,
    city_en   text NOT NULL,
    -- Hearings are stored in UTC and shown in the court's zone.
    time_zone text NOT NULL DEFAULT 'Asia/Riyadh'
);

CREATE TABLE circuits (
    id       integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    court_id integer NOT NULL REFERENCES courts (id),
    name_ar  text    NOT NULL,
    name_en  text    NOT NULL,
    UNIQUE (court_id, name_ar)
);

CREATE TABLE cases (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- 10 digits starting with the 2-digit Hijri year of filing (1444 -> 44).
    case_number text        NOT NULL UNIQUE CHECK (case_number ~ '^4[0-9]{9}$'),
    circuit_id  integer     NOT NULL REFERENCES circuits (id),
    subject_ar  text        NOT NULL,
    subject_en  text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('filed', 'under_review', 'in_hearing',
                                                       'adjourned', 'judgment_issued', 'appealed',
                                                       'closed')),
    filed_at    timestamptz NOT NULL,
    -- Bumped by the triggers below on any change to the case or its rows: caches key on it.
    version     bigint      NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE case_parties (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id     bigint NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    role        text   NOT NULL CHECK (role IN ('plaintiff', 'defendant', 'representative')),
    name_ar     text   NOT NULL,
    -- A person's national (1…) or resident (2…) ID; NULL for a government body.
    national_id text   CHECK (national_id ~ '^[12][0-9]{9}$'),
    -- The registered phone in E.164, when the party gave one.
    phone       text   CHECK (phone ~ '^\+[1-9][0-9]{6,14}$')
);
CREATE INDEX case_parties_case ON case_parties (case_id);
CREATE INDEX case_parties_phone ON case_parties (phone) WHERE phone IS NOT NULL;

CREATE TABLE case_hearings (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id   bigint      NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    starts_at timestamptz NOT NULL,
    kind_ar   text        NOT NULL,
    kind_en   text        NOT NULL
);
CREATE INDEX case_hearings_case ON case_hearings (case_id, starts_at);

CREATE TABLE case_updates (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id bigint      NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    at      timestamptz NOT NULL,
    text_ar text        NOT NULL,
    text_en text        NOT NULL
);
CREATE INDEX case_updates_case ON case_updates (case_id, at DESC);

-- Any change to a case or its rows bumps its version and tells the lookup workers, which drop
-- their cached copy (NOTIFY is delivered at commit).
CREATE FUNCTION wasl_case_touch() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cid bigint;
BEGIN
    IF TG_TABLE_NAME = 'cases' THEN
        IF TG_OP = 'UPDATE' THEN
            NEW.version := OLD.version + 1;
            NEW.updated_at := now();
        END IF;
        PERFORM pg_notify('wasl_case_changed', NEW.case_number);
        RETURN NEW;
    END IF;
    cid := CASE WHEN TG_OP = 'DELETE' THEN OLD.case_id ELSE NEW.case_id END;
    UPDATE cases SET version = version + 1, updated_at = now() WHERE id = cid;
    RETURN NULL;
END;
$$;
CREATE TRIGGER cases_touch BEFORE INSERT OR UPDATE ON cases
    FOR EACH ROW EXECUTE FUNCTION wasl_case_touch();
CREATE TRIGGER case_parties_touch AFTER INSERT OR UPDATE OR DELETE ON case_parties
    FOR EACH ROW EXECUTE FUNCTION wasl_case_touch();
CREATE TRIGGER case_hearings_touch AFTER INSERT OR UPDATE OR DELETE ON case_hearings
    FOR EACH ROW EXECUTE FUNCTION wasl_case_touch();
CREATE TRIGGER case_updates_touch AFTER INSERT OR UPDATE OR DELETE ON case_updates
    FOR EACH ROW EXECUTE FUNCTION wasl_case_touch();

-- Every lookup, disclosed or not. The verifier is never stored in clear: only its kind and a
-- masked form (enough for an investigator to match a complaint, not to replay it).
CREATE TABLE case_lookup_audit (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    request_id      text        NOT NULL,
    case_number     text        NOT NULL,
    verifier_kind   text        NOT NULL CHECK (verifier_kind IN ('national_id', 'caller_phone')),
    verifier_masked text        NOT NULL,
    caller_masked   text,
    channel         text        NOT NULL,
    client          text        NOT NULL,
    call_id         text,
    outcome         text        NOT NULL CHECK (outcome IN ('found', 'denied', 'locked', 'error')),
    -- Why a denial was a denial (never shown to the caller): no_case | not_party | bad_request.
    reason          text,
    cached          boolean     NOT NULL DEFAULT false,
    worker          text        NOT NULL
);
CREATE INDEX case_lookup_audit_case ON case_lookup_audit (case_number, at);
CREATE TRIGGER case_lookup_audit_append_only BEFORE UPDATE OR DELETE ON case_lookup_audit
    FOR EACH ROW EXECUTE FUNCTION wasl_append_only();
CREATE TRIGGER case_lookup_audit_no_truncate BEFORE TRUNCATE ON case_lookup_audit
    FOR EACH STATEMENT EXECUTE FUNCTION wasl_append_only();

-- The lookup service's own role: it reads case data and can only append to the audit. Roles are
-- cluster-wide, so it is created once; a migrating user without CREATEROLE skips it (and the
-- service then runs as the migrating user, still held by the triggers above).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'wasl_caselookup') THEN
        BEGIN
            CREATE ROLE wasl_caselookup LOGIN;
        EXCEPTION WHEN insufficient_privilege OR duplicate_object THEN
            RAISE NOTICE 'role wasl_caselookup not created: %', SQLERRM;
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'wasl_caselookup') THEN
        EXECUTE 'GRANT SELECT ON courts, circuits, cases, case_parties, case_hearings, '
                'case_updates TO wasl_caselookup';
        EXECUTE 'GRANT SELECT, INSERT ON case_lookup_audit TO wasl_caselookup';
        EXECUTE 'REVOKE UPDATE, DELETE, TRUNCATE ON case_lookup_audit FROM wasl_caselookup';
    END IF;
END;
$$;
