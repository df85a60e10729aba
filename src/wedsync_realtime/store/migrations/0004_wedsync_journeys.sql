-- Journeys on PostgreSQL, as the embedded default's SQLite store keeps them (`store/sqlite.py`):
-- a supplier's journey (name and ordered steps), run per couple as a `journey_instances` row
-- (0002's table, now linked to its journey) with one `journey_instance_steps` row per step,
-- locked, available or completed. The platform writes these tables; change capture turns a step
-- completed (or its email opened) into the same events as the embedded write API.

CREATE TABLE public.journeys (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    supplier_id uuid NOT NULL REFERENCES public.suppliers (id) ON DELETE CASCADE,
    name        text NOT NULL
);
CREATE INDEX journeys_supplier_idx ON public.journeys (supplier_id);

CREATE TABLE public.journey_steps (
    journey_id uuid NOT NULL REFERENCES public.journeys (id) ON DELETE CASCADE,
    step_id    text NOT NULL,
    position   integer NOT NULL,
    name       text NOT NULL,
    kind       text NOT NULL DEFAULT 'task' CHECK (kind IN ('task', 'email', 'meeting')),
    PRIMARY KEY (journey_id, step_id),
    UNIQUE (journey_id, position)
);

-- One couple's run of a journey. Its id is the {journey_id} of the journey channels. 0002's
-- journey_name, current_step and status stay (the journey's name wins when it is linked).
ALTER TABLE public.journey_instances
    ADD COLUMN journey_id uuid REFERENCES public.journeys (id) ON DELETE CASCADE;
CREATE INDEX journey_instances_journey_idx ON public.journey_instances (journey_id);

CREATE TABLE public.journey_instance_steps (
    instance_id     uuid NOT NULL REFERENCES public.journey_instances (id) ON DELETE CASCADE,
    step_id         text NOT NULL,
    status          text NOT NULL CHECK (status IN ('locked', 'available', 'completed')),
    completed_at    timestamptz,
    completed_by    uuid,
    due_at          timestamptz,
    email_opened_at timestamptz,
    PRIMARY KEY (instance_id, step_id)
);

-- Replica identity, row-level security and read policies, as 0002 and 0003 do.
ALTER TABLE public.journeys REPLICA IDENTITY FULL;
ALTER TABLE public.journey_steps REPLICA IDENTITY FULL;
ALTER TABLE public.journey_instance_steps REPLICA IDENTITY FULL;

ALTER TABLE public.journeys ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.journey_steps ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.journey_instance_steps ENABLE ROW LEVEL SECURITY;

-- A journey's definition is the supplier's, like a form: the supplier, its connected couples,
-- an admin.
CREATE POLICY journeys_select ON public.journeys FOR SELECT TO authenticated
    USING (public.wedsync_can_see_supplier(supplier_id));
CREATE POLICY journey_steps_select ON public.journey_steps FOR SELECT TO authenticated
    USING (
        public.wedsync_can_see_supplier(
            (SELECT j.supplier_id FROM public.journeys j WHERE j.id = journey_steps.journey_id)
        )
    );
-- A couple's progress is the business of its pair, as its instance: the couple, the supplier
-- while connected, an admin.
CREATE POLICY journey_instance_steps_select ON public.journey_instance_steps
    FOR SELECT TO authenticated
    USING (
        EXISTS (
            SELECT 1 FROM public.journey_instances i
            WHERE i.id = journey_instance_steps.instance_id
              AND public.wedsync_can_see_pair(i.supplier_id, i.couple_id)
        )
    );

GRANT SELECT ON public.journeys, public.journey_steps, public.journey_instance_steps
    TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    public.journeys, public.journey_steps, public.journey_instance_steps
    TO service_role;

-- Progress is a stream (definitions are reference data, like the venue directory).
ALTER PUBLICATION wedsync_realtime ADD TABLE public.journey_instance_steps;
