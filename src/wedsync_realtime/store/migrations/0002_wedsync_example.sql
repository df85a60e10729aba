-- An example WedSync schema (SPEC.md, "Data model" and "Security and privacy") that the tests and
-- the demo use: REPLICA IDENTITY FULL on every table (so change capture sees whole old rows and
-- filters on non-key columns work), row-level security, and the `wedsync_realtime` publication.
--
-- Visibility, decided by PostgreSQL itself:
--   * a couple's user sees its own couple's rows;
--   * a supplier's user sees rows of couples it has an *active* connection with, and never
--     another supplier's rows;
--   * an admin sees everything; service_role bypasses RLS.

-- Roles as Supabase names them. Roles are cluster-wide, so create them only when missing; a
-- concurrent migration of another database may create one first, hence the duplicate_object guard.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- `auth`: the claims of the current request, read as Supabase does from the `request.jwt.claims`
-- setting that the server applies (set_config(..., true)) before a visibility check.
CREATE SCHEMA IF NOT EXISTS auth;

CREATE FUNCTION auth.jwt() RETURNS jsonb
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb $$;

-- NULL (sees nothing) when `sub` is missing or not a uuid, rather than an error that would fail
-- a whole batched visibility check because of one odd token.
CREATE FUNCTION auth.uid() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$
        SELECT CASE
            WHEN sub ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
            THEN sub::uuid
        END
        FROM (SELECT auth.jwt() ->> 'sub' AS sub) AS claims
    $$;

CREATE FUNCTION auth.role() RETURNS text
    LANGUAGE sql STABLE
    AS $$ SELECT auth.jwt() ->> 'role' $$;

-- The domain tables.
CREATE TABLE public.suppliers (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    business_name text NOT NULL,
    category      text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.couples (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    partner1_name text NOT NULL,
    partner2_name text,
    wedding_date  date,
    venue_name    text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.user_profiles (
    id           uuid PRIMARY KEY,
    user_type    text NOT NULL CHECK (user_type IN ('supplier', 'couple', 'admin')),
    display_name text NOT NULL,
    supplier_id  uuid REFERENCES public.suppliers (id) ON DELETE SET NULL,
    couple_id    uuid REFERENCES public.couples (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (user_type <> 'supplier' OR supplier_id IS NOT NULL),
    CHECK (user_type <> 'couple' OR couple_id IS NOT NULL)
);

CREATE TABLE public.supplier_client_connections (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    supplier_id uuid NOT NULL REFERENCES public.suppliers (id) ON DELETE CASCADE,
    couple_id   uuid NOT NULL REFERENCES public.couples (id) ON DELETE CASCADE,
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'active', 'paused', 'ended')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (supplier_id, couple_id)
);
CREATE INDEX supplier_client_connections_couple_idx
    ON public.supplier_client_connections (couple_id);

CREATE TABLE public.core_field_values (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    couple_id  uuid NOT NULL REFERENCES public.couples (id) ON DELETE CASCADE,
    field_name text NOT NULL,
    value      jsonb,
    version    integer NOT NULL DEFAULT 1 CHECK (version > 0),
    updated_by uuid,
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (couple_id, field_name)
);

CREATE TABLE public.forms (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    supplier_id uuid NOT NULL REFERENCES public.suppliers (id) ON DELETE CASCADE,
    title       text NOT NULL,
    fields      jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.form_responses (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    form_id      uuid NOT NULL REFERENCES public.forms (id) ON DELETE CASCADE,
    supplier_id  uuid NOT NULL REFERENCES public.suppliers (id) ON DELETE CASCADE,
    couple_id    uuid NOT NULL REFERENCES public.couples (id) ON DELETE CASCADE,
    data         jsonb NOT NULL DEFAULT '{}'::jsonb,
    status       text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'submitted')),
    submitted_at timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX form_responses_couple_idx ON public.form_responses (couple_id);

CREATE TABLE public.journey_instances (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    supplier_id  uuid NOT NULL REFERENCES public.suppliers (id) ON DELETE CASCADE,
    couple_id    uuid NOT NULL REFERENCES public.couples (id) ON DELETE CASCADE,
    journey_name text NOT NULL,
    current_step text,
    status       text NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'paused', 'completed', 'cancelled')),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX journey_instances_couple_idx ON public.journey_instances (couple_id);

CREATE TABLE public.notifications (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    recipient_id uuid NOT NULL REFERENCES public.user_profiles (id) ON DELETE CASCADE,
    couple_id    uuid REFERENCES public.couples (id) ON DELETE CASCADE,
    type         text NOT NULL,
    title        text NOT NULL,
    body         text,
    priority     smallint NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
    read_at      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_recipient_idx ON public.notifications (recipient_id);

-- Visibility helpers. SECURITY DEFINER (owned by the migrating superuser) so that they read
-- user_profiles and connections without recursing into those tables' own policies; an empty
-- search_path so a caller cannot shadow the tables they name.
CREATE FUNCTION public.wedsync_is_admin() RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
    AS $$
        SELECT EXISTS (
            SELECT 1 FROM public.user_profiles p
            WHERE p.id = auth.uid() AND p.user_type = 'admin'
        )
    $$;

-- May the current user see rows of this couple? Its own couple, a connected supplier, an admin.
CREATE FUNCTION public.wedsync_can_see_couple(target uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
    AS $$
        SELECT EXISTS (
            SELECT 1 FROM public.user_profiles p
            WHERE p.id = auth.uid()
              AND (
                  p.user_type = 'admin'
                  OR (p.user_type = 'couple' AND p.couple_id = target)
                  OR (p.user_type = 'supplier' AND EXISTS (
                      SELECT 1 FROM public.supplier_client_connections c
                      WHERE c.supplier_id = p.supplier_id
                        AND c.couple_id = target
                        AND c.status = 'active'))
              )
        )
    $$;

-- A row that belongs to one supplier–couple pair (a form response, a journey): the couple, the
-- supplier it belongs to while connected, an admin. Never another supplier, connected or not.
CREATE FUNCTION public.wedsync_can_see_pair(owner_supplier uuid, target uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
    AS $$
        SELECT EXISTS (
            SELECT 1 FROM public.user_profiles p
            WHERE p.id = auth.uid()
              AND (
                  p.user_type = 'admin'
                  OR (p.user_type = 'couple' AND p.couple_id = target)
                  OR (p.user_type = 'supplier' AND p.supplier_id = owner_supplier AND EXISTS (
                      SELECT 1 FROM public.supplier_client_connections c
                      WHERE c.supplier_id = owner_supplier
                        AND c.couple_id = target
                        AND c.status = 'active'))
              )
        )
    $$;

-- May the current user see this supplier? Itself, a couple actively connected to it, an admin.
CREATE FUNCTION public.wedsync_can_see_supplier(target uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
    AS $$
        SELECT EXISTS (
            SELECT 1 FROM public.user_profiles p
            WHERE p.id = auth.uid()
              AND (
                  p.user_type = 'admin'
                  OR (p.user_type = 'supplier' AND p.supplier_id = target)
                  OR (p.user_type = 'couple' AND EXISTS (
                      SELECT 1 FROM public.supplier_client_connections c
                      WHERE c.supplier_id = target
                        AND c.couple_id = p.couple_id
                        AND c.status = 'active'))
              )
        )
    $$;

-- Replica identity, RLS and read policies (writes go through the service role for now).
ALTER TABLE public.user_profiles REPLICA IDENTITY FULL;
ALTER TABLE public.suppliers REPLICA IDENTITY FULL;
ALTER TABLE public.couples REPLICA IDENTITY FULL;
ALTER TABLE public.supplier_client_connections REPLICA IDENTITY FULL;
ALTER TABLE public.core_field_values REPLICA IDENTITY FULL;
ALTER TABLE public.forms REPLICA IDENTITY FULL;
ALTER TABLE public.form_responses REPLICA IDENTITY FULL;
ALTER TABLE public.journey_instances REPLICA IDENTITY FULL;
ALTER TABLE public.notifications REPLICA IDENTITY FULL;

ALTER TABLE public.user_profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.suppliers ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.couples ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.supplier_client_connections ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.core_field_values ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.forms ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.form_responses ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.journey_instances ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.notifications ENABLE ROW LEVEL SECURITY;

CREATE POLICY user_profiles_select ON public.user_profiles FOR SELECT TO authenticated
    USING (id = auth.uid() OR public.wedsync_is_admin());
CREATE POLICY suppliers_select ON public.suppliers FOR SELECT TO authenticated
    USING (public.wedsync_can_see_supplier(id));
CREATE POLICY couples_select ON public.couples FOR SELECT TO authenticated
    USING (public.wedsync_can_see_couple(id));
-- Both parties see their connection (whatever its status), and admins.
CREATE POLICY supplier_client_connections_select ON public.supplier_client_connections
    FOR SELECT TO authenticated
    USING (
        public.wedsync_is_admin()
        OR EXISTS (
            SELECT 1 FROM public.user_profiles p
            WHERE p.id = auth.uid()
              AND ((p.user_type = 'supplier' AND p.supplier_id = supplier_client_connections.supplier_id)
                OR (p.user_type = 'couple' AND p.couple_id = supplier_client_connections.couple_id))
        )
    );
CREATE POLICY core_field_values_select ON public.core_field_values FOR SELECT TO authenticated
    USING (public.wedsync_can_see_couple(couple_id));
CREATE POLICY forms_select ON public.forms FOR SELECT TO authenticated
    USING (public.wedsync_can_see_supplier(supplier_id));
CREATE POLICY form_responses_select ON public.form_responses FOR SELECT TO authenticated
    USING (public.wedsync_can_see_pair(supplier_id, couple_id));
CREATE POLICY journey_instances_select ON public.journey_instances FOR SELECT TO authenticated
    USING (public.wedsync_can_see_pair(supplier_id, couple_id));
CREATE POLICY notifications_select ON public.notifications FOR SELECT TO authenticated
    USING (recipient_id = auth.uid() OR public.wedsync_is_admin());

-- Privileges: authenticated reads (RLS decides which rows); service_role does everything.
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION auth.jwt(), auth.uid(), auth.role() TO anon, authenticated, service_role;
REVOKE EXECUTE ON FUNCTION
    public.wedsync_is_admin(), public.wedsync_can_see_couple(uuid),
    public.wedsync_can_see_pair(uuid, uuid), public.wedsync_can_see_supplier(uuid)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    public.wedsync_is_admin(), public.wedsync_can_see_couple(uuid),
    public.wedsync_can_see_pair(uuid, uuid), public.wedsync_can_see_supplier(uuid)
    TO authenticated, service_role;
GRANT SELECT ON
    public.user_profiles, public.suppliers, public.couples, public.supplier_client_connections,
    public.core_field_values, public.forms, public.form_responses, public.journey_instances,
    public.notifications
    TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    public.user_profiles, public.suppliers, public.couples, public.supplier_client_connections,
    public.core_field_values, public.forms, public.form_responses, public.journey_instances,
    public.notifications
    TO service_role;

-- The change-capture default: every table of this publication (issue 3).
CREATE PUBLICATION wedsync_realtime FOR TABLE
    public.user_profiles, public.suppliers, public.couples, public.supplier_client_connections,
    public.core_field_values, public.forms, public.form_responses, public.journey_instances,
    public.notifications;
