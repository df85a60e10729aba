"""The demo wedding on PostgreSQL (production mode): the wedding `demo.load_demo` puts in the
embedded store, in the migrations' WedSync tables (``0002``..``0004``), ids as `demo_uuid`.

James & Emma and Olivia & Noah, the six suppliers (tiers as their plans), every `DEMO_USERS`
profile, Sarah's team, the connections, both weddings, Sarah's form "Shot List Preferences" sent
to James & Emma, the venue directory, Mike's journey "Venue Booking" (its steps in
``journey_steps``) started for James & Emma (a ``journey_instances`` row linked by
``journey_id``, one ``journey_instance_steps`` row per step: the first ``available``, the others
``locked``) and the couple's initial core fields, written by Emma.

Idempotent, as `load_demo` is: everything is an upsert of fixed ids that writes a row only when
it differs from the demo's (so a second run writes nothing at all, and change capture sees
nothing), a journey already started is left as it is, and a core field once set is never
overwritten. One transaction (under an advisory lock, so two runs do not interleave): change
capture, when a server is running, sees the whole wedding at once — the couple's core fields
become ``core_fields_updated`` events written by Emma, the venue with the fields it fills.

The form's fields, the journey's steps, Sarah's team and the core fields' author come from
`demo`, as `load_demo` writes them (tests/integration/test_wedsync_demo_postgres.py checks both
loads hold the same wedding).
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from wedsync_realtime.wedding.demo import (
    _CORE_FIELDS,
    _CORE_FIELDS_BY,
    _SHOT_LIST_FIELDS,
    _SUPPLIERS,
    _TEAM,
    _VENUE_STEPS,
    _VENUES,
    DEMO_USERS,
    DemoIds,
    demo,
    demo_uuid,
)

__all__ = ["DEMO_TABLES", "DemoTablesMissing", "load_demo_postgres"]

#: The tables the demo writes; all of them come with the migrations (``wedsync-realtime migrate``).
DEMO_TABLES = (
    "public.suppliers",
    "public.couples",
    "public.user_profiles",
    "public.supplier_team_members",
    "public.supplier_client_connections",
    "public.weddings",
    "public.forms",
    "public.form_recipients",
    "public.venues",
    "public.journeys",
    "public.journey_steps",
    "public.journey_instances",
    "public.journey_instance_steps",
    "public.core_field_values",
)

#: Serialises demo loads against one database (any fixed 64-bit key).
_LOCK_KEY = 0x7765_6473_796E_6344  # "wedsyncD"


class DemoTablesMissing(Exception):
    """The database lacks WedSync tables the demo writes (it is not migrated)."""

    def __init__(self, missing: tuple[str, ...]) -> None:
        super().__init__(f"missing tables: {', '.join(missing)}")
        self.missing = missing


def _id(name: str | None) -> uuid.UUID | None:
    return None if name is None else demo_uuid(name)


def load_demo_postgres(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Load the demo wedding through `conn` (idempotent; one transaction, committed here).

    Returns each demo supplier's tier as the database now holds it, by the supplier's demo id.

    Raises:
        DemoTablesMissing: the database is not migrated.
    """
    missing = tuple(
        str(row[0])
        for row in conn.execute(
            "SELECT t FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, n)"
            " WHERE to_regclass(t) IS NULL ORDER BY n",
            (list(DEMO_TABLES),),
        ).fetchall()
    )
    if missing:
        raise DemoTablesMissing(missing)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        _load(conn, demo)
    rows = conn.execute(
        "SELECT id, tier FROM public.suppliers WHERE id = ANY(%s)",
        ([demo_uuid(s[0]) for s in _SUPPLIERS],),
    ).fetchall()
    by_uuid = {row[0]: str(row[1]) for row in rows}
    return {s[0]: by_uuid[demo_uuid(s[0])] for s in _SUPPLIERS if demo_uuid(s[0]) in by_uuid}


def _load(conn: psycopg.Connection[Any], ids: DemoIds) -> None:
    cursor = conn.cursor()
    # Each upsert writes only a row that differs from the demo's: a second run writes nothing.
    cursor.executemany(
        "INSERT INTO public.suppliers AS t (id, business_name, category, tier)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
        " business_name = excluded.business_name, category = excluded.category,"
        " tier = excluded.tier"
        " WHERE (t.business_name, t.category, t.tier)"
        " IS DISTINCT FROM (excluded.business_name, excluded.category, excluded.tier)",
        [(demo_uuid(s), name, category, tier) for s, name, category, tier in _SUPPLIERS],
    )
    cursor.executemany(
        "INSERT INTO public.couples AS t (id, partner1_name, partner2_name) VALUES (%s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET partner1_name = excluded.partner1_name,"
        " partner2_name = excluded.partner2_name"
        " WHERE (t.partner1_name, t.partner2_name)"
        " IS DISTINCT FROM (excluded.partner1_name, excluded.partner2_name)",
        [(demo_uuid(ids.couple), "James", "Emma"), (demo_uuid(ids.other_couple), "Olivia", "Noah")],
    )
    cursor.executemany(
        "INSERT INTO public.user_profiles AS t"
        " (id, user_type, display_name, supplier_id, couple_id) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET user_type = excluded.user_type,"
        " display_name = excluded.display_name, supplier_id = excluded.supplier_id,"
        " couple_id = excluded.couple_id"
        " WHERE (t.user_type, t.display_name, t.supplier_id, t.couple_id) IS DISTINCT FROM"
        " (excluded.user_type, excluded.display_name, excluded.supplier_id, excluded.couple_id)",
        [
            (demo_uuid(u.user_id), u.user_type.value, u.name, _id(u.supplier_id), _id(u.couple_id))
            for u in DEMO_USERS
        ],
    )
    cursor.executemany(
        "INSERT INTO public.supplier_team_members AS t (supplier_id, user_id, role)"
        " VALUES (%s, %s, %s) ON CONFLICT (supplier_id, user_id) DO UPDATE SET"
        " role = excluded.role WHERE t.role IS DISTINCT FROM excluded.role",
        [(demo_uuid(ids.photographer), demo_uuid(user), role) for user, role in _TEAM],
    )
    pairs = [(s, ids.couple) for s in ids.connected_suppliers] + [(ids.rival, ids.other_couple)]
    cursor.executemany(
        "INSERT INTO public.supplier_client_connections AS t (id, supplier_id, couple_id, status)"
        " VALUES (%s, %s, %s, 'active') ON CONFLICT (supplier_id, couple_id) DO UPDATE SET"
        " status = 'active' WHERE t.status IS DISTINCT FROM 'active'",
        [
            (demo_uuid(f"connection:{supplier}:{couple}"), demo_uuid(supplier), demo_uuid(couple))
            for supplier, couple in pairs
        ],
    )
    cursor.executemany(
        "INSERT INTO public.weddings AS t (id, couple_id) VALUES (%s, %s)"
        " ON CONFLICT (id) DO UPDATE SET couple_id = excluded.couple_id"
        " WHERE t.couple_id IS DISTINCT FROM excluded.couple_id",
        [
            (demo_uuid(ids.wedding), demo_uuid(ids.couple)),
            (demo_uuid(ids.other_wedding), demo_uuid(ids.other_couple)),
        ],
    )
    _load_form(cursor, ids)
    cursor.executemany(
        # A venue of the same name the platform already has (another id) is kept, not doubled.
        "INSERT INTO public.venues AS t (id, name, address, capacity)"
        " SELECT %(id)s, %(name)s, %(address)s, %(capacity)s WHERE NOT EXISTS ("
        "  SELECT 1 FROM public.venues v WHERE lower(v.name) = lower(%(name)s)"
        "  AND v.id <> %(id)s)"
        " ON CONFLICT (id) DO UPDATE SET name = excluded.name, address = excluded.address,"
        " capacity = excluded.capacity"
        " WHERE (t.name, t.address, t.capacity)"
        " IS DISTINCT FROM (excluded.name, excluded.address, excluded.capacity)",
        [
            {"id": demo_uuid(v), "name": name, "address": address, "capacity": capacity}
            for v, name, address, capacity in _VENUES
        ],
    )
    _load_journey(cursor, ids)
    # The couple's core fields: written once, never overwritten (the couple owns them then).
    cursor.executemany(
        "INSERT INTO public.core_field_values"
        " (id, couple_id, field_name, value, version, updated_by)"
        " VALUES (%s, %s, %s, %s, 1, %s) ON CONFLICT (couple_id, field_name) DO NOTHING",
        [
            (
                demo_uuid(f"core-field:{ids.couple}:{field}"),
                demo_uuid(ids.couple),
                field,
                Jsonb(value),
                demo_uuid(_CORE_FIELDS_BY),
            )
            for field, value in _CORE_FIELDS.items()
        ],
    )


def _load_form(cursor: psycopg.Cursor[Any], ids: DemoIds) -> None:
    form = demo_uuid(ids.shot_list_form)
    fields = [
        {"field_id": field_id, "label": label, "required": required}
        for field_id, label, required in _SHOT_LIST_FIELDS
    ]
    cursor.execute(
        "INSERT INTO public.forms AS t (id, supplier_id, title, fields) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET supplier_id = excluded.supplier_id,"
        " title = excluded.title, fields = excluded.fields, updated_at = now()"
        " WHERE (t.supplier_id, t.title, t.fields)"
        " IS DISTINCT FROM (excluded.supplier_id, excluded.title, excluded.fields)",
        (form, demo_uuid(ids.photographer), "Shot List Preferences", Jsonb(fields)),
    )
    # Sent to James & Emma only, as `load_demo` leaves it.
    recipients = [demo_uuid(ids.couple)]
    cursor.execute(
        "DELETE FROM public.form_recipients WHERE form_id = %s AND couple_id <> ALL(%s)",
        (form, recipients),
    )
    cursor.executemany(
        "INSERT INTO public.form_recipients (form_id, couple_id) VALUES (%s, %s)"
        " ON CONFLICT DO NOTHING",
        [(form, couple) for couple in recipients],
    )


def _load_journey(cursor: psycopg.Cursor[Any], ids: DemoIds) -> None:
    journey = demo_uuid(ids.venue_journey)
    cursor.execute(
        "INSERT INTO public.journeys AS t (id, supplier_id, name) VALUES (%s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET supplier_id = excluded.supplier_id,"
        " name = excluded.name"
        " WHERE (t.supplier_id, t.name) IS DISTINCT FROM (excluded.supplier_id, excluded.name)",
        (journey, demo_uuid(ids.venue_owner), "Venue Booking"),
    )
    wanted = [
        (step_id, position, name, kind)
        for position, (step_id, name, kind) in enumerate(_VENUE_STEPS)
    ]
    cursor.execute(
        "SELECT step_id, position, name, kind FROM public.journey_steps"
        " WHERE journey_id = %s ORDER BY position",
        (journey,),
    )
    if [tuple(row) for row in cursor.fetchall()] != wanted:
        # Redefined as a whole (positions are unique per journey), as `load_demo` does.
        cursor.execute("DELETE FROM public.journey_steps WHERE journey_id = %s", (journey,))
        cursor.executemany(
            "INSERT INTO public.journey_steps (journey_id, step_id, position, name, kind)"
            " VALUES (%s, %s, %s, %s, %s)",
            [(journey, *step) for step in wanted],
        )
    # Started for James & Emma once; their progress since is theirs.
    instance = demo_uuid(ids.walkthrough)
    cursor.execute(
        "INSERT INTO public.journey_instances"
        " (id, journey_id, supplier_id, couple_id, journey_name, current_step)"
        " SELECT %s, j.id, j.supplier_id, %s, j.name, ("
        "  SELECT s.step_id FROM public.journey_steps s WHERE s.journey_id = j.id"
        "  ORDER BY s.position LIMIT 1)"
        " FROM public.journeys j WHERE j.id = %s ON CONFLICT (id) DO NOTHING RETURNING 1",
        (instance, demo_uuid(ids.couple), journey),
    )
    if cursor.fetchone() is None:
        return
    cursor.execute(
        "INSERT INTO public.journey_instance_steps (instance_id, step_id, status)"
        " SELECT %(i)s, s.step_id, CASE WHEN s.position = (SELECT min(position)"
        "  FROM public.journey_steps WHERE journey_id = %(j)s) THEN 'available' ELSE 'locked' END"
        " FROM public.journey_steps s WHERE s.journey_id = %(j)s",
        {"i": instance, "j": journey},
    )
