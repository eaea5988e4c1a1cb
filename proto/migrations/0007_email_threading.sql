-- 0007_email_threading: our outbound Message-IDs as capabilities (issue 13, finding 10).
--
-- A reply that carries one of our Message-IDs in In-Reply-To/References threads into that
-- ticket whoever sends it, so the ids must not be guessable: "<wasl.n<id>@domain>" was (the
-- notification id is a sequence). Each notification now carries 128 bits from the server's
-- strong random source (gen_random_uuid, 122 of them random), fixed at insert so that a resend
-- after a crash keeps the same Message-ID: "<wasl.n<id>.<msgid_token>@domain>". Intake trusts
-- only outbound ids of that form (the old ones stay in `messages` but no longer thread).
ALTER TABLE notifications
    ADD COLUMN msgid_token text NOT NULL DEFAULT replace(gen_random_uuid()::text, '-', '')
        CHECK (msgid_token ~ '^[0-9a-f]{32}$');
