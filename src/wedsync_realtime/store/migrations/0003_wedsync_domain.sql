-- What the WedSync domain layer reads and writes on PostgreSQL, beyond 0002's example schema: the
-- facts the channel catalog's rules read (team members, weddings, the couples a form was sent to),
-- the venue directory that fills venue-dependent core fields, who last wrote a form response,
-- notifications as the specification shapes them (message, action URL, priority
-- low|medium|high|urgent, read and dismissed state), and last-seen times (kept 7 days).
--
-- The same facts as the embedded default's SQLite store (`store/sqlite.py`), so one set of domain
-- services runs on either; ids are uuids here, as `auth.uid()` is.

CREATE TABLE public.supplier_team_members (
    supplier_id uuid NOT NULL REFERENCES public.suppliers (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL,
    role        text NOT NULL DEFAULT 'member',
    PRIMARY KEY (supplier_id, user_id)
);

CREATE TABLE public.weddings (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    couple_id  uuid NOT NULL REFERENCES public.couples (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX weddings_couple_idx ON public.weddings (couple_id);

CREATE TABLE public.form_recipients (
    form_id   uuid NOT NULL REFERENCES public.forms (id) ON DELETE CASCADE,
    couple_id uuid NOT NULL REFERENCES public.couples (id) ON DELETE CASCADE,
    sent_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (form_id, couple_id)
);

-- Venue names are matched without regard to case, as the embedded default's COLLATE NOCASE.
CREATE TABLE public.venues (
    id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name     text NOT NULL,
    address  text,
    capacity integer CHECK (capacity IS NULL OR capacity >= 0)
);
CREATE UNIQUE INDEX venues_name_idx ON public.venues (lower(name));

ALTER TABLE public.suppliers
    ADD COLUMN tier text NOT NULL DEFAULT 'free'
        CHECK (tier IN ('free', 'starter', 'professional', 'scale', 'enterprise'));

-- One response per couple and form; who wrote it last (the `user_name` of form events).
ALTER TABLE public.form_responses ADD COLUMN updated_by uuid;
ALTER TABLE public.form_responses
    ADD CONSTRAINT form_responses_form_couple_key UNIQUE (form_id, couple_id);

-- Notifications as SPEC.md shapes them: `body` is the message.
ALTER TABLE public.notifications DROP CONSTRAINT notifications_priority_check;
ALTER TABLE public.notifications ALTER COLUMN priority DROP DEFAULT;
ALTER TABLE public.notifications
    ALTER COLUMN priority TYPE text USING (
        CASE
            WHEN priority >= 9 THEN 'urgent'
            WHEN priority >= 7 THEN 'high'
            WHEN priority >= 4 THEN 'medium'
            ELSE 'low'
        END
    );
ALTER TABLE public.notifications ALTER COLUMN priority SET DEFAULT 'medium';
ALTER TABLE public.notifications
    ADD CONSTRAINT notifications_priority_check
        CHECK (priority IN ('low', 'medium', 'high', 'urgent'));
ALTER TABLE public.notifications ADD COLUMN action_url text;
ALTER TABLE public.notifications ADD COLUMN dismissed_at timestamptz;
-- Insertion order, for "newest first" among notifications of the same instant.
ALTER TABLE public.notifications ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE INDEX notifications_recipient_open_idx
    ON public.notifications (recipient_id, dismissed_at, read_at);

-- Last seen, for "active 2 minutes ago" (the server prunes rows older than the retention).
CREATE TABLE realtime.last_seen (
    user_id      text PRIMARY KEY,
    last_seen_at timestamptz NOT NULL,
    status       text
);

-- Replica identity, row-level security and read policies, as 0002 does for its tables.
ALTER TABLE public.supplier_team_members REPLICA IDENTITY FULL;
ALTER TABLE public.weddings REPLICA IDENTITY FULL;
ALTER TABLE public.form_recipients REPLICA IDENTITY FULL;
ALTER TABLE public.venues REPLICA IDENTITY FULL;

ALTER TABLE public.supplier_team_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.weddings ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.form_recipients ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.venues ENABLE ROW LEVEL SECURITY;

CREATE POLICY supplier_team_members_select ON public.supplier_team_members
    FOR SELECT TO authenticated
    USING (
        user_id = auth.uid()
        OR public.wedsync_is_admin()
        OR EXISTS (
            SELECT 1 FROM public.user_profiles p
            WHERE p.id = auth.uid() AND p.user_type = 'supplier'
              AND p.supplier_id = supplier_team_members.supplier_id
        )
    );
CREATE POLICY weddings_select ON public.weddings FOR SELECT TO authenticated
    USING (public.wedsync_can_see_couple(couple_id));
CREATE POLICY form_recipients_select ON public.form_recipients FOR SELECT TO authenticated
    USING (
        public.wedsync_can_see_pair(
            (SELECT f.supplier_id FROM public.forms f WHERE f.id = form_recipients.form_id),
            couple_id
        )
    );
CREATE POLICY venues_select ON public.venues FOR SELECT TO authenticated USING (true);

GRANT SELECT ON
    public.supplier_team_members, public.weddings, public.form_recipients, public.venues
    TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    public.supplier_team_members, public.weddings, public.form_recipients, public.venues
    TO service_role;

ALTER PUBLICATION wedsync_realtime ADD TABLE
    public.supplier_team_members, public.weddings, public.form_recipients;
