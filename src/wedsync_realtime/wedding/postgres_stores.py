"""The WedSync domain's facts and stores on PostgreSQL (production mode).

The same roles as the embedded default's `SqliteDirectory` and `sqlite_stores`, on the tables of
the migrations (``0002_wedsync_example.sql``, ``0003_wedsync_domain.sql`` and
``0004_wedsync_journeys.sql``):

* `PostgresDirectory` — the access rules' `Directory`, the services' `Audience` and the
  `VenueDirectory` that fills venue-dependent core fields;
* `PostgresCoreFieldStore`, `PostgresFormStore` — reads (and the version-checked writes);
* `PostgresJourneyStore` — a couple's journey and its steps (and the atomic step completion);
* `PostgresNotificationStore` — notifications per user, as on the embedded default;
* `PostgresLastSeenStore` — last-seen times (``realtime.last_seen``).

Every call takes a connection from one `psycopg_pool.AsyncConnectionPool` for one statement or
one transaction, so catalog checks at a join storm and domain reads of change capture share a
bounded number of sessions. Ids are uuids in this schema (``auth.uid()`` is one): an id that is
not a uuid names nothing, so reads answer None/False/empty for it instead of raising.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncCursor
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from wedsync_realtime.timestamps import iso_millis
from wedsync_realtime.wedding.audience import couple_display_name
from wedsync_realtime.wedding.core_fields import (
    AppliedChange,
    CoreFieldValue,
    FieldWrite,
    Venue,
    VersionConflict,
    plan_core_field_write,
)
from wedsync_realtime.wedding.directory import FormFacts, JourneyFacts, UserProfile, UserType
from wedsync_realtime.wedding.errors import NotFound
from wedsync_realtime.wedding.events import JsonValue
from wedsync_realtime.wedding.forms import FormDefinition, FormResponse, form_fields
from wedsync_realtime.wedding.journeys import JourneyInstance, JourneyStep, StepKind, StepStatus
from wedsync_realtime.wedding.notifications import Notification, Priority

__all__ = [
    "PostgresCoreFieldStore",
    "PostgresDirectory",
    "PostgresFormStore",
    "PostgresJourneyStore",
    "PostgresLastSeenStore",
    "PostgresNotificationStore",
    "as_uuid",
    "domain_pool",
]

Row = dict[str, Any]


def domain_pool(dsn: str, *, max_size: int = 8) -> AsyncConnectionPool:
    """A pool of autocommit sessions on `dsn`, not yet open (`AsyncConnectionPool.open` in the
    application's lifespan: it connects in the background, so a server started while
    PostgreSQL is down comes up and its domain reads wait for the database)."""
    return AsyncConnectionPool(
        dsn,
        min_size=1,
        max_size=max_size,
        kwargs={"autocommit": True},
        open=False,
        name="wedsync-domain",
        # A join waits at most this long for a session while PostgreSQL is away (the default
        # 30 s would hold that socket's frames, heartbeats included), and a session that died
        # with a PostgreSQL restart is replaced before use instead of failing one request.
        timeout=5.0,
        check=AsyncConnectionPool.check_connection,
    )


def as_uuid(value: str | None) -> uuid.UUID | None:
    """`value` as a uuid, or None when it is not one in canonical form (it then names no row).

    Only the canonical text (lower case, hyphens) names a row: channel names carry ids as text,
    and re-authorization matches them as text, so ``form:{F-IN-UPPER-CASE}`` must not be a
    second name of ``form:{f}`` that the re-check would miss."""
    if not value:
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    return parsed if str(parsed) == value else None


def _text(value: Any) -> str | None:
    """A column as the text the domain speaks: uuids as strings, instants as ISO 8601 UTC."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return iso_millis(value)
    return str(value)


class _Queries:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @property
    def pool(self) -> AsyncConnectionPool:
        return self._pool

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._pool.connection() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(sql, params)
            return await cursor.fetchall()

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    async def _ids(self, sql: str, params: Sequence[Any] = ()) -> tuple[str, ...]:
        return tuple(str(next(iter(row.values()))) for row in await self._all(sql, params))


class PostgresDirectory(_Queries):
    """`Directory`, `Audience` and `VenueDirectory` on the WedSync tables."""

    # -- Directory ------------------------------------------------------------------------------

    async def user_profile(self, user_id: str) -> UserProfile | None:
        key = as_uuid(user_id)
        if key is None:
            return None
        row = await self._one(
            "SELECT user_type, supplier_id, couple_id FROM public.user_profiles WHERE id = %s",
            (key,),
        )
        if row is None:
            return None
        return UserProfile(
            user_id, UserType(row["user_type"]), _text(row["supplier_id"]), _text(row["couple_id"])
        )

    async def is_team_member(self, user_id: str, supplier_id: str) -> bool:
        user, supplier = as_uuid(user_id), as_uuid(supplier_id)
        if user is None or supplier is None:
            return False
        row = await self._one(
            "SELECT 1 FROM public.supplier_team_members WHERE supplier_id = %s AND user_id = %s",
            (supplier, user),
        )
        return row is not None

    async def is_connected(self, supplier_id: str, couple_id: str) -> bool:
        supplier, couple = as_uuid(supplier_id), as_uuid(couple_id)
        if supplier is None or couple is None:
            return False
        row = await self._one(
            "SELECT 1 FROM public.supplier_client_connections"
            " WHERE supplier_id = %s AND couple_id = %s AND status = 'active'",
            (supplier, couple),
        )
        return row is not None

    async def wedding_couple(self, wedding_id: str) -> str | None:
        key = as_uuid(wedding_id)
        if key is None:
            return None
        row = await self._one("SELECT couple_id FROM public.weddings WHERE id = %s", (key,))
        return None if row is None else _text(row["couple_id"])

    async def wedding_suppliers(self, wedding_id: str) -> frozenset[str]:
        key = as_uuid(wedding_id)
        if key is None:
            return frozenset()
        return frozenset(
            await self._ids(
                "SELECT c.supplier_id FROM public.weddings w"
                " JOIN public.supplier_client_connections c ON c.couple_id = w.couple_id"
                " WHERE w.id = %s AND c.status = 'active'",
                (key,),
            )
        )

    async def form(self, form_id: str) -> FormFacts | None:
        key = as_uuid(form_id)
        if key is None:
            return None
        row = await self._one("SELECT supplier_id FROM public.forms WHERE id = %s", (key,))
        if row is None:
            return None
        sent = await self._ids(
            "SELECT couple_id FROM public.form_recipients WHERE form_id = %s", (key,)
        )
        return FormFacts(form_id, str(row["supplier_id"]), frozenset(sent))

    async def journey(self, journey_id: str) -> JourneyFacts | None:
        key = as_uuid(journey_id)
        if key is None:
            return None
        row = await self._one(
            "SELECT supplier_id, couple_id FROM public.journey_instances WHERE id = %s", (key,)
        )
        if row is None:
            return None
        return JourneyFacts(journey_id, str(row["supplier_id"]), str(row["couple_id"]))

    # -- Audience -------------------------------------------------------------------------------

    async def user_name(self, user_id: str) -> str | None:
        key = as_uuid(user_id)
        if key is None:
            return None
        row = await self._one("SELECT display_name FROM public.user_profiles WHERE id = %s", (key,))
        return None if row is None else str(row["display_name"])

    async def couple_name(self, couple_id: str) -> str | None:
        key = as_uuid(couple_id)
        if key is None:
            return None
        row = await self._one(
            "SELECT partner1_name, partner2_name FROM public.couples WHERE id = %s", (key,)
        )
        if row is None:
            return None
        return couple_display_name(row["partner1_name"], row["partner2_name"])

    async def supplier_name(self, supplier_id: str) -> str | None:
        key = as_uuid(supplier_id)
        if key is None:
            return None
        row = await self._one("SELECT business_name FROM public.suppliers WHERE id = %s", (key,))
        return None if row is None else str(row["business_name"])

    async def couple_weddings(self, couple_id: str) -> tuple[str, ...]:
        key = as_uuid(couple_id)
        if key is None:
            return ()
        return await self._ids(
            "SELECT id FROM public.weddings WHERE couple_id = %s ORDER BY id::text", (key,)
        )

    async def connected_suppliers(self, couple_id: str) -> tuple[str, ...]:
        key = as_uuid(couple_id)
        if key is None:
            return ()
        return await self._ids(
            "SELECT supplier_id FROM public.supplier_client_connections"
            " WHERE couple_id = %s AND status = 'active' ORDER BY supplier_id::text",
            (key,),
        )

    async def supplier_users(self, supplier_id: str) -> tuple[str, ...]:
        key = as_uuid(supplier_id)
        if key is None:
            return ()
        return await self._ids(
            "SELECT id FROM public.user_profiles WHERE supplier_id = %s AND user_type = 'supplier'"
            " ORDER BY id::text",
            (key,),
        )

    async def couple_users(self, couple_id: str) -> tuple[str, ...]:
        key = as_uuid(couple_id)
        if key is None:
            return ()
        return await self._ids(
            "SELECT id FROM public.user_profiles WHERE couple_id = %s AND user_type = 'couple'"
            " ORDER BY id::text",
            (key,),
        )

    async def supplier_couples(self, supplier_id: str) -> tuple[str, ...]:
        """The couples the supplier is actively connected to, in id order."""
        key = as_uuid(supplier_id)
        if key is None:
            return ()
        return await self._ids(
            "SELECT couple_id FROM public.supplier_client_connections"
            " WHERE supplier_id = %s AND status = 'active' ORDER BY couple_id::text",
            (key,),
        )

    # -- VenueDirectory -------------------------------------------------------------------------

    async def venue_by_name(self, name: str) -> Venue | None:
        row = await self._one(
            "SELECT id, name, address, capacity FROM public.venues WHERE lower(name) = lower(%s)",
            (name.strip(),),
        )
        if row is None:
            return None
        return Venue(str(row["id"]), row["name"], row["address"], row["capacity"])


class PostgresCoreFieldStore(_Queries):
    """`CoreFieldStore` on ``public.core_field_values`` (version checked under a row lock)."""

    async def core_field_values(self, couple_id: str) -> dict[str, CoreFieldValue]:
        key = as_uuid(couple_id)
        if key is None:
            return {}
        rows = await self._all(
            "SELECT field_name, value, version, updated_by, updated_at"
            " FROM public.core_field_values WHERE couple_id = %s",
            (key,),
        )
        return {r["field_name"]: _core_value(couple_id, r) for r in rows}

    async def write_core_fields(
        self, couple_id: str, writes: Sequence[FieldWrite], *, updated_by: str, at: str
    ) -> list[AppliedChange]:
        key = as_uuid(couple_id)
        if key is None:
            raise NotFound(f"unknown couple {couple_id!r}", field="couple_id")
        applied: list[AppliedChange] = []
        async with self._pool.connection() as conn, conn.transaction():
            cursor = conn.cursor(row_factory=dict_row)
            for write in writes:
                change = await self._write_one(cursor, key, couple_id, write, updated_by, at)
                if change is not None:
                    applied.append(change)
        return applied

    @staticmethod
    async def _write_one(
        cursor: AsyncCursor[Row],
        key: uuid.UUID,
        couple_id: str,
        write: FieldWrite,
        updated_by: str,
        at: str,
    ) -> AppliedChange | None:
        """Check the version and write one field. The upsert only applies on the version that
        was read: a row another writer inserted meanwhile (``FOR UPDATE`` locks no row that
        does not exist yet) makes it write nothing, and the field is read and checked again."""
        for _ in range(_WRITE_ATTEMPTS):
            await cursor.execute(
                "SELECT field_name, value, version, updated_by, updated_at"
                " FROM public.core_field_values WHERE couple_id = %s AND field_name = %s"
                " FOR UPDATE",
                (key, write.field_name),
            )
            row = await cursor.fetchone()
            stored = None if row is None else _core_value(couple_id, row)
            # A VersionConflict raised here rolls the transaction back.
            current, change = plan_core_field_write(
                couple_id, write, stored, updated_by=updated_by, at=at
            )
            if change is None:
                return None
            await cursor.execute(
                "INSERT INTO public.core_field_values"
                " (couple_id, field_name, value, version, updated_by, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s::timestamptz)"
                " ON CONFLICT (couple_id, field_name) DO UPDATE SET"
                " value = excluded.value, version = excluded.version,"
                " updated_by = excluded.updated_by, updated_at = excluded.updated_at"
                " WHERE core_field_values.version = %s RETURNING 1",
                (
                    key,
                    write.field_name,
                    Jsonb(write.value),
                    change.new.version,
                    as_uuid(updated_by),
                    at,
                    current.version,
                ),
            )
            if await cursor.fetchone() is not None:
                return change
        raise VersionConflict(current, write.expected_version or current.version)


#: Reads and writes of one field before a writer racing on it makes this one give up.
_WRITE_ATTEMPTS = 3


def _core_value(couple_id: str, row: Row) -> CoreFieldValue:
    return CoreFieldValue(
        couple_id,
        row["field_name"],
        row["value"],
        int(row["version"]),
        _text(row["updated_by"]),
        _text(row["updated_at"]),
    )


class PostgresFormStore(_Queries):
    """`FormStore` on ``public.forms`` and ``public.form_responses``."""

    async def form_definition(self, form_id: str) -> FormDefinition | None:
        key = as_uuid(form_id)
        if key is None:
            return None
        row = await self._one(
            "SELECT supplier_id, title, fields FROM public.forms WHERE id = %s", (key,)
        )
        if row is None:
            return None
        fields = form_fields(row["fields"])
        return FormDefinition(form_id, str(row["supplier_id"]), row["title"], fields)

    async def form_response(self, form_id: str, couple_id: str) -> FormResponse | None:
        form, couple = as_uuid(form_id), as_uuid(couple_id)
        if form is None or couple is None:
            return None
        row = await self._one(
            "SELECT data, status, submitted_at, updated_at, updated_by"
            " FROM public.form_responses WHERE form_id = %s AND couple_id = %s",
            (form, couple),
        )
        if row is None:
            return None
        return FormResponse(
            form_id,
            couple_id,
            dict(row["data"] or {}),
            row["status"],
            _text(row["submitted_at"]),
            _text(row["updated_at"]),
            _text(row["updated_by"]),
        )

    async def save_form_answer(
        self,
        form_id: str,
        couple_id: str,
        field_id: str,
        value: JsonValue,
        *,
        updated_by: str,
        at: str,
    ) -> FormResponse:
        form, couple = self._keys(form_id, couple_id)
        # jsonb_set keeps a JSON null under the key, unlike SQLite's json_set: one statement.
        await self._all(
            "INSERT INTO public.form_responses"
            " (form_id, supplier_id, couple_id, data, updated_by, updated_at)"
            " SELECT f.id, f.supplier_id, %s, jsonb_build_object(%s::text, %s::jsonb), %s,"
            " %s::timestamptz FROM public.forms f WHERE f.id = %s"
            " ON CONFLICT (form_id, couple_id) DO UPDATE SET"
            " data = jsonb_set(form_responses.data, ARRAY[%s::text], %s::jsonb),"
            " updated_by = excluded.updated_by, updated_at = excluded.updated_at"
            " RETURNING 1",
            (
                couple,
                field_id,
                Jsonb(value),
                as_uuid(updated_by),
                at,
                form,
                field_id,
                Jsonb(value),
            ),
        )
        return await self._written(form_id, couple_id)

    async def submit_form_response(
        self, form_id: str, couple_id: str, *, submitted_by: str, at: str
    ) -> FormResponse:
        form, couple = self._keys(form_id, couple_id)
        await self._all(
            "INSERT INTO public.form_responses"
            " (form_id, supplier_id, couple_id, status, submitted_at, updated_by, updated_at)"
            " SELECT f.id, f.supplier_id, %s, 'submitted', %s::timestamptz, %s, %s::timestamptz"
            " FROM public.forms f WHERE f.id = %s"
            " ON CONFLICT (form_id, couple_id) DO UPDATE SET status = 'submitted',"
            " submitted_at = excluded.submitted_at, updated_by = excluded.updated_by,"
            " updated_at = excluded.updated_at RETURNING 1",
            (couple, at, as_uuid(submitted_by), at, form),
        )
        return await self._written(form_id, couple_id)

    @staticmethod
    def _keys(form_id: str, couple_id: str) -> tuple[uuid.UUID, uuid.UUID]:
        form, couple = as_uuid(form_id), as_uuid(couple_id)
        if form is None:
            raise NotFound(f"unknown form {form_id!r}", field="form_id")
        if couple is None:
            raise NotFound(f"unknown couple {couple_id!r}", field="couple_id")
        return form, couple

    async def _written(self, form_id: str, couple_id: str) -> FormResponse:
        found = await self.form_response(form_id, couple_id)
        if found is None:  # the form vanished between the checks and the write
            raise NotFound(f"no response of {couple_id!r} to form {form_id!r}", field="form_id")
        return found


class PostgresJourneyStore(_Queries):
    """`JourneyStore` on ``public.journey_instances`` (linked to ``public.journeys`` and its
    ``journey_steps``) and ``public.journey_instance_steps``, as `SqliteJourneyStore` on the
    embedded default. The instance's name is its journey's, else 0002's ``journey_name``;
    a completion also keeps 0002's ``current_step`` (the first step not completed) up to date."""

    async def journey_instance(self, journey_id: str) -> JourneyInstance | None:
        key = as_uuid(journey_id)
        if key is None:
            return None
        # One statement, so the instance and its steps come from one snapshot.
        rows = await self._all(
            "SELECT i.supplier_id, i.couple_id, i.status, coalesce(j.name, i.journey_name) AS"
            " journey_name, st.* FROM public.journey_instances i"
            " LEFT JOIN public.journeys j ON j.id = i.journey_id"
            " LEFT JOIN LATERAL (SELECT s.step_id, s.name, s.position, s.kind, x.status AS"
            "  step_status, x.completed_at, x.completed_by, x.due_at, x.email_opened_at"
            "  FROM public.journey_instance_steps x JOIN public.journey_steps s"
            "  ON s.journey_id = i.journey_id AND s.step_id = x.step_id"
            "  WHERE x.instance_id = i.id) st ON true"
            " WHERE i.id = %s ORDER BY st.position",
            (key,),
        )
        if not rows:
            return None
        head = rows[0]
        steps = tuple(
            JourneyStep(
                step_id=r["step_id"],
                name=r["name"],
                position=int(r["position"]),
                kind=StepKind(r["kind"]),
                status=StepStatus(r["step_status"]),
                completed_at=_text(r["completed_at"]),
                completed_by=_text(r["completed_by"]),
                due_at=_text(r["due_at"]),
                email_opened_at=_text(r["email_opened_at"]),
            )
            for r in rows
            if r["step_id"] is not None
        )
        return JourneyInstance(
            journey_id,
            head["journey_name"],
            str(head["supplier_id"]),
            str(head["couple_id"]),
            head["status"],
            steps,
        )

    async def complete_journey_step(
        self, journey_id: str, step_id: str, *, completed_by: str, at: str
    ) -> bool:
        key = as_uuid(journey_id)
        if key is None:
            return False
        async with self._pool.connection() as conn, conn.transaction():
            cursor = conn.cursor(row_factory=dict_row)
            # Completions of one instance run one at a time (as SQLite's writes do): a
            # concurrent one waits here, then sees this one's steps and status committed.
            await cursor.execute(
                "SELECT 1 FROM public.journey_instances WHERE id = %s FOR UPDATE", (key,)
            )
            if await cursor.fetchone() is None:
                return False
            await cursor.execute(
                "UPDATE public.journey_instance_steps SET status = 'completed',"
                " completed_at = %s::timestamptz, completed_by = %s"
                " WHERE instance_id = %s AND step_id = %s AND status = 'available' RETURNING 1",
                (at, as_uuid(completed_by), key, step_id),
            )
            if await cursor.fetchone() is None:
                return False
            # The next locked step, in journey order, becomes available.
            await cursor.execute(
                "UPDATE public.journey_instance_steps SET status = 'available'"
                " WHERE instance_id = %(i)s AND step_id = ("
                "  SELECT x.step_id FROM public.journey_instance_steps x"
                "  JOIN public.journey_instances i ON i.id = x.instance_id"
                "  JOIN public.journey_steps s ON s.journey_id = i.journey_id"
                "   AND s.step_id = x.step_id"
                "  WHERE x.instance_id = %(i)s AND x.status = 'locked'"
                "  ORDER BY s.position LIMIT 1)",
                {"i": key},
            )
            await cursor.execute(
                "UPDATE public.journey_instances i SET"
                " status = CASE WHEN EXISTS (SELECT 1 FROM public.journey_instance_steps x"
                "  WHERE x.instance_id = i.id AND x.status <> 'completed')"
                "  THEN 'active' ELSE 'completed' END,"
                " current_step = (SELECT x.step_id FROM public.journey_instance_steps x"
                "  JOIN public.journey_steps s ON s.journey_id = i.journey_id"
                "   AND s.step_id = x.step_id"
                "  WHERE x.instance_id = i.id AND x.status <> 'completed'"
                "  ORDER BY s.position LIMIT 1),"
                " updated_at = %s::timestamptz WHERE i.id = %s",
                (at, key),
            )
        return True

    async def record_email_opened(self, journey_id: str, step_id: str, *, at: str) -> bool:
        key = as_uuid(journey_id)
        if key is None:
            return False
        rows = await self._all(
            "UPDATE public.journey_instance_steps SET email_opened_at = %s::timestamptz"
            " WHERE instance_id = %s AND step_id = %s AND email_opened_at IS NULL RETURNING 1",
            (at, key, step_id),
        )
        return bool(rows)


_NOTIFICATION_COLUMNS = (
    "id, recipient_id, type, title, body, action_url, priority, read_at, dismissed_at, created_at"
)


def _notification(row: Row) -> Notification:
    return Notification(
        notification_id=str(row["id"]),
        user_id=str(row["recipient_id"]),
        type=row["type"],
        title=row["title"],
        message=row["body"] or "",
        action_url=row["action_url"],
        priority=Priority(row["priority"]),
        created_at=_text(row["created_at"]) or "",
        read_at=_text(row["read_at"]),
        dismissed_at=_text(row["dismissed_at"]),
    )


class PostgresNotificationStore(_Queries):
    """`NotificationStore` on ``public.notifications`` (``body`` holds the message)."""

    async def insert_notification(self, notification: Notification) -> bool:
        n = notification
        recipient = as_uuid(n.user_id)
        if recipient is None:
            raise NotFound(f"unknown user {n.user_id!r}", field="user_id")
        inserted = await self._all(
            "INSERT INTO public.notifications (id, recipient_id, type, title, body, action_url,"
            " priority, read_at, dismissed_at, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s,"
            " %s::timestamptz, %s::timestamptz, %s::timestamptz)"
            " ON CONFLICT (id) DO NOTHING RETURNING 1",
            (
                uuid.UUID(n.notification_id),
                recipient,
                n.type,
                n.title,
                n.message,
                n.action_url,
                n.priority.value,
                n.read_at,
                n.dismissed_at,
                n.created_at,
            ),
        )
        return bool(inserted)

    async def notification(self, user_id: str, notification_id: str) -> Notification | None:
        user, key = as_uuid(user_id), as_uuid(notification_id)
        if user is None or key is None:
            return None
        row = await self._one(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM public.notifications"
            " WHERE id = %s AND recipient_id = %s",
            (key, user),
        )
        return None if row is None else _notification(row)

    async def list_notifications(
        self, user_id: str, *, type: str | None, unread_only: bool, limit: int
    ) -> list[Notification]:
        user = as_uuid(user_id)
        if user is None:
            return []
        sql = f"SELECT {_NOTIFICATION_COLUMNS} FROM public.notifications"
        sql += " WHERE recipient_id = %s AND dismissed_at IS NULL"
        params: list[object] = [user]
        if type is not None:
            sql += " AND type = %s"
            params.append(type)
        if unread_only:
            sql += " AND read_at IS NULL"
        sql += " ORDER BY created_at DESC, seq DESC LIMIT %s"
        params.append(limit)
        return [_notification(r) for r in await self._all(sql, params)]

    async def unread_count(self, user_id: str) -> int:
        user = as_uuid(user_id)
        if user is None:
            return 0
        row = await self._one(
            "SELECT count(*) AS n FROM public.notifications"
            " WHERE recipient_id = %s AND dismissed_at IS NULL AND read_at IS NULL",
            (user,),
        )
        return 0 if row is None else int(row["n"])

    async def set_read_at(self, user_id: str, notification_id: str, read_at: str | None) -> None:
        await self._update(
            "UPDATE public.notifications SET read_at = %s::timestamptz",
            read_at,
            user_id,
            notification_id,
        )

    async def set_dismissed_at(self, user_id: str, notification_id: str, at: str) -> None:
        await self._update(
            "UPDATE public.notifications SET dismissed_at = %s::timestamptz",
            at,
            user_id,
            notification_id,
        )

    async def dismiss_all(self, user_id: str, at: str) -> list[str]:
        user = as_uuid(user_id)
        if user is None:
            return []
        rows = await self._all(
            "UPDATE public.notifications SET dismissed_at = %s::timestamptz"
            " WHERE recipient_id = %s AND dismissed_at IS NULL RETURNING id",
            (at, user),
        )
        return sorted(str(r["id"]) for r in rows)

    async def _update(
        self, head: str, value: str | None, user_id: str, notification_id: str
    ) -> None:
        user, key = as_uuid(user_id), as_uuid(notification_id)
        if user is None or key is None:
            return
        await self._all(
            head + " WHERE id = %s AND recipient_id = %s RETURNING 1", (value, key, user)
        )


class PostgresLastSeenStore(_Queries):
    """`LastSeenStore` on ``realtime.last_seen``."""

    async def record_last_seen(self, user_id: str, *, at: str, status: str | None) -> None:
        await self._all(
            "INSERT INTO realtime.last_seen (user_id, last_seen_at, status)"
            " VALUES (%s, %s::timestamptz, %s) ON CONFLICT (user_id) DO UPDATE SET"
            " last_seen_at = excluded.last_seen_at, status = excluded.status"
            " WHERE excluded.last_seen_at >= last_seen.last_seen_at RETURNING 1",
            (user_id, at, status),
        )

    async def last_seen(self, user_ids: Sequence[str]) -> dict[str, tuple[str, str | None]]:
        if not user_ids:
            return {}
        rows = await self._all(
            "SELECT user_id, last_seen_at, status FROM realtime.last_seen WHERE user_id = ANY(%s)",
            (list(user_ids),),
        )
        return {r["user_id"]: (_text(r["last_seen_at"]) or "", r["status"]) for r in rows}

    async def forget_last_seen_before(self, cutoff: str) -> int:
        rows = await self._all(
            "DELETE FROM realtime.last_seen WHERE last_seen_at < %s::timestamptz RETURNING 1",
            (cutoff,),
        )
        return len(rows)
