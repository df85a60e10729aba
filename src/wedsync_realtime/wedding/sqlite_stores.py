"""The domain services' stores on the embedded default (`SqliteDatabase`).

One class per role Protocol: `SqliteCoreFieldStore` (`CoreFieldStore`),
`SqliteNotificationStore`, `SqliteJourneyStore`, `SqliteFormStore`; and `SqliteLastSeenStore`
for presence's "last seen". Each write that must be atomic
(a version check and its writes; a step completion and the unlocking of the next step) runs in one
`SqliteDatabase.transaction`. Values of JSON columns are stored as JSON text. Calls run inline on
the event loop; `store.sqlite` explains why.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence

from wedsync_realtime.store.sqlite import SqliteDatabase
from wedsync_realtime.wedding.core_fields import (
    AppliedChange,
    CoreFieldValue,
    FieldWrite,
    plan_core_field_write,
)
from wedsync_realtime.wedding.errors import NotFound
from wedsync_realtime.wedding.events import JsonValue
from wedsync_realtime.wedding.forms import FormDefinition, FormResponse, form_fields
from wedsync_realtime.wedding.journeys import JourneyInstance, JourneyStep, StepKind, StepStatus
from wedsync_realtime.wedding.notifications import Notification, Priority

__all__ = [
    "SqliteCoreFieldStore",
    "SqliteFormStore",
    "SqliteJourneyStore",
    "SqliteLastSeenStore",
    "SqliteNotificationStore",
]


def _load(text: str | None) -> JsonValue:
    return None if text is None else json.loads(text)


def _dump(value: JsonValue) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class SqliteCoreFieldStore:
    """`CoreFieldStore`, with `add_venue` for the venue directory's entries (read by
    `SqliteDirectory.venue_by_name`)."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    def add_venue(
        self, venue_id: str, name: str, *, address: str | None, capacity: int | None
    ) -> None:
        """Add or replace a venue of the directory."""
        self._db.execute(
            "INSERT INTO venues (id, name, address, capacity) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
            " address = excluded.address, capacity = excluded.capacity",
            (venue_id, name, address, capacity),
        )

    async def core_field_values(self, couple_id: str) -> dict[str, CoreFieldValue]:
        rows = self._db.query(
            "SELECT field_name, value, version, updated_by, updated_at FROM core_field_values"
            " WHERE couple_id = ?",
            (couple_id,),
        )
        return {r["field_name"]: _core_value(couple_id, r) for r in rows}

    async def write_core_fields(
        self, couple_id: str, writes: Sequence[FieldWrite], *, updated_by: str, at: str
    ) -> list[AppliedChange]:
        applied: list[AppliedChange] = []
        with self._db.transaction() as conn:
            for write in writes:
                row = conn.execute(
                    "SELECT field_name, value, version, updated_by, updated_at"
                    " FROM core_field_values WHERE couple_id = ? AND field_name = ?",
                    (couple_id, write.field_name),
                ).fetchone()
                stored = None if row is None else _core_value(couple_id, row)
                # A VersionConflict raised here rolls the transaction back.
                _, change = plan_core_field_write(
                    couple_id, write, stored, updated_by=updated_by, at=at
                )
                if change is None:
                    continue
                conn.execute(
                    "INSERT INTO core_field_values"
                    " (couple_id, field_name, value, version, updated_by, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (couple_id, field_name) DO UPDATE SET"
                    " value = excluded.value, version = excluded.version,"
                    " updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                    (
                        couple_id,
                        write.field_name,
                        _dump(write.value),
                        change.new.version,
                        updated_by,
                        at,
                    ),
                )
                applied.append(change)
        return applied


def _core_value(couple_id: str, row: sqlite3.Row) -> CoreFieldValue:
    return CoreFieldValue(
        couple_id,
        row["field_name"],
        _load(row["value"]),
        int(row["version"]),
        row["updated_by"],
        row["updated_at"],
    )


class SqliteNotificationStore:
    """`NotificationStore`; newest first is creation time, then insertion order."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def insert_notification(self, notification: Notification) -> bool:
        n = notification
        inserted = self._db.execute(
            "INSERT INTO notifications (id, user_id, type, title, message, action_url, priority,"
            " read_at, dismissed_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO NOTHING",
            (
                n.notification_id,
                n.user_id,
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
        return inserted > 0

    async def notification(self, user_id: str, notification_id: str) -> Notification | None:
        row = self._db.query_one(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE id = ? AND user_id = ?",
            (notification_id, user_id),
        )
        return None if row is None else _notification(row)

    async def list_notifications(
        self, user_id: str, *, type: str | None, unread_only: bool, limit: int
    ) -> list[Notification]:
        sql = f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications"
        sql += " WHERE user_id = ? AND dismissed_at IS NULL"
        params: list[object] = [user_id]
        if type is not None:
            sql += " AND type = ?"
            params.append(type)
        if unread_only:
            sql += " AND read_at IS NULL"
        sql += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        params.append(limit)
        return [_notification(r) for r in self._db.query(sql, params)]

    async def unread_count(self, user_id: str) -> int:
        row = self._db.query_one(
            "SELECT count(*) FROM notifications"
            " WHERE user_id = ? AND dismissed_at IS NULL AND read_at IS NULL",
            (user_id,),
        )
        return 0 if row is None else int(row[0])

    async def set_read_at(self, user_id: str, notification_id: str, read_at: str | None) -> None:
        self._db.execute(
            "UPDATE notifications SET read_at = ? WHERE id = ? AND user_id = ?",
            (read_at, notification_id, user_id),
        )

    async def set_dismissed_at(self, user_id: str, notification_id: str, at: str) -> None:
        self._db.execute(
            "UPDATE notifications SET dismissed_at = ? WHERE id = ? AND user_id = ?",
            (at, notification_id, user_id),
        )

    async def dismiss_all(self, user_id: str, at: str) -> list[str]:
        with self._db.transaction() as conn:
            rows = conn.execute(
                "UPDATE notifications SET dismissed_at = ?"
                " WHERE user_id = ? AND dismissed_at IS NULL RETURNING id",
                (at, user_id),
            ).fetchall()
        return sorted(str(r[0]) for r in rows)


_NOTIFICATION_COLUMNS = (
    "id, user_id, type, title, message, action_url, priority, read_at, dismissed_at, created_at"
)


def _notification(row: sqlite3.Row) -> Notification:
    return Notification(
        notification_id=row["id"],
        user_id=row["user_id"],
        type=row["type"],
        title=row["title"],
        message=row["message"],
        action_url=row["action_url"],
        priority=Priority(row["priority"]),
        created_at=row["created_at"],
        read_at=row["read_at"],
        dismissed_at=row["dismissed_at"],
    )


class SqliteJourneyStore:
    """`JourneyStore`, with the writes that define journeys and start them for a couple."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    def add_journey(
        self,
        journey_id: str,
        supplier_id: str,
        name: str,
        steps: Sequence[tuple[str, str, StepKind | str]],
    ) -> None:
        """Add (or redefine) a journey; `steps` are (step_id, name, kind) in order."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO journeys (id, supplier_id, name) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET supplier_id = excluded.supplier_id,"
                " name = excluded.name",
                (journey_id, supplier_id, name),
            )
            conn.execute("DELETE FROM journey_steps WHERE journey_id = ?", (journey_id,))
            conn.executemany(
                "INSERT INTO journey_steps (journey_id, step_id, position, name, kind)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (journey_id, step_id, position, step_name, StepKind(kind).value)
                    for position, (step_id, step_name, kind) in enumerate(steps)
                ],
            )

    def start_journey(self, instance_id: str, journey_id: str, couple_id: str) -> bool:
        """Start the journey for a couple (first step available); False if already started."""
        with self._db.transaction() as conn:
            journey = conn.execute(
                "SELECT supplier_id FROM journeys WHERE id = ?", (journey_id,)
            ).fetchone()
            if journey is None:
                raise NotFound(f"unknown journey {journey_id!r}", field="journey_id")
            inserted = conn.execute(
                "INSERT INTO journey_instances (id, journey_id, supplier_id, couple_id)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (instance_id, journey_id, journey["supplier_id"], couple_id),
            ).rowcount
            if not inserted:
                return False
            conn.execute(
                "INSERT INTO journey_instance_steps (instance_id, step_id, status)"
                " SELECT ?, step_id, CASE WHEN position = (SELECT min(position) FROM"
                " journey_steps WHERE journey_id = ?) THEN 'available' ELSE 'locked' END"
                " FROM journey_steps WHERE journey_id = ?",
                (instance_id, journey_id, journey_id),
            )
        return True

    async def journey_instance(self, journey_id: str) -> JourneyInstance | None:
        head = self._db.query_one(
            "SELECT i.id, i.supplier_id, i.couple_id, i.status, coalesce(j.name, i.id) AS name"
            " FROM journey_instances i LEFT JOIN journeys j ON j.id = i.journey_id"
            " WHERE i.id = ?",
            (journey_id,),
        )
        if head is None:
            return None
        rows = self._db.query(
            "SELECT s.step_id, s.name, s.position, s.kind, x.status, x.completed_at,"
            " x.completed_by, x.due_at, x.email_opened_at"
            " FROM journey_instance_steps x JOIN journey_instances i ON i.id = x.instance_id"
            " JOIN journey_steps s ON s.journey_id = i.journey_id AND s.step_id = x.step_id"
            " WHERE x.instance_id = ? ORDER BY s.position",
            (journey_id,),
        )
        steps = tuple(
            JourneyStep(
                step_id=r["step_id"],
                name=r["name"],
                position=int(r["position"]),
                kind=StepKind(r["kind"]),
                status=StepStatus(r["status"]),
                completed_at=r["completed_at"],
                completed_by=r["completed_by"],
                due_at=r["due_at"],
                email_opened_at=r["email_opened_at"],
            )
            for r in rows
        )
        return JourneyInstance(
            head["id"], head["name"], head["supplier_id"], head["couple_id"], head["status"], steps
        )

    async def complete_journey_step(
        self, journey_id: str, step_id: str, *, completed_by: str, at: str
    ) -> bool:
        with self._db.transaction() as conn:
            changed = conn.execute(
                "UPDATE journey_instance_steps SET status = 'completed', completed_at = ?,"
                " completed_by = ? WHERE instance_id = ? AND step_id = ? AND status = 'available'",
                (at, completed_by, journey_id, step_id),
            ).rowcount
            if not changed:
                return False
            # The next locked step, in journey order, becomes available.
            conn.execute(
                "UPDATE journey_instance_steps SET status = 'available'"
                " WHERE instance_id = ?1 AND step_id = ("
                "  SELECT x.step_id FROM journey_instance_steps x"
                "  JOIN journey_instances i ON i.id = x.instance_id"
                "  JOIN journey_steps s ON s.journey_id = i.journey_id AND s.step_id = x.step_id"
                "  WHERE x.instance_id = ?1 AND x.status = 'locked' ORDER BY s.position LIMIT 1)",
                (journey_id,),
            )
            remaining = conn.execute(
                "SELECT count(*) FROM journey_instance_steps"
                " WHERE instance_id = ? AND status <> 'completed'",
                (journey_id,),
            ).fetchone()[0]
            status = "completed" if remaining == 0 else "active"
            conn.execute(
                "UPDATE journey_instances SET status = ?, updated_at = ? WHERE id = ?",
                (status, at, journey_id),
            )
        return True

    async def record_email_opened(self, journey_id: str, step_id: str, *, at: str) -> bool:
        changed = self._db.execute(
            "UPDATE journey_instance_steps SET email_opened_at = ?"
            " WHERE instance_id = ? AND step_id = ? AND email_opened_at IS NULL",
            (at, journey_id, step_id),
        )
        return changed > 0


class SqliteFormStore:
    """`FormStore`; forms themselves are written with `SqliteDirectory.add_form`."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def form_definition(self, form_id: str) -> FormDefinition | None:
        row = self._db.query_one(
            "SELECT supplier_id, title, fields FROM forms WHERE id = ?", (form_id,)
        )
        if row is None:
            return None
        fields = form_fields(json.loads(row["fields"]))
        return FormDefinition(form_id, row["supplier_id"], row["title"], fields)

    async def form_response(self, form_id: str, couple_id: str) -> FormResponse | None:
        row = self._db.query_one(
            "SELECT data, status, submitted_at, updated_at, updated_by FROM form_responses"
            " WHERE form_id = ? AND couple_id = ?",
            (form_id, couple_id),
        )
        if row is None:
            return None
        return FormResponse(
            form_id,
            couple_id,
            json.loads(row["data"]),
            row["status"],
            row["submitted_at"],
            row["updated_at"],
            row["updated_by"],
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
        # json_set cannot store a JSON null under a key distinctly from SQL NULL, so the
        # whole object is read and written back inside one transaction.
        with _known_form(form_id), self._db.transaction() as conn:
            row = conn.execute(
                "SELECT data FROM form_responses WHERE form_id = ? AND couple_id = ?",
                (form_id, couple_id),
            ).fetchone()
            data = {} if row is None else json.loads(row["data"])
            data[field_id] = value
            conn.execute(
                "INSERT INTO form_responses (form_id, couple_id, data, updated_by, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (form_id, couple_id) DO UPDATE SET"
                " data = excluded.data, updated_by = excluded.updated_by,"
                " updated_at = excluded.updated_at",
                (form_id, couple_id, _dump(data), updated_by, at),
            )
        return await self._written(form_id, couple_id)

    async def submit_form_response(
        self, form_id: str, couple_id: str, *, submitted_by: str, at: str
    ) -> FormResponse:
        with _known_form(form_id):
            self._submit(form_id, couple_id, submitted_by, at)
        return await self._written(form_id, couple_id)

    def _submit(self, form_id: str, couple_id: str, submitted_by: str, at: str) -> None:
        self._db.execute(
            "INSERT INTO form_responses"
            " (form_id, couple_id, status, submitted_at, updated_by, updated_at)"
            " VALUES (?, ?, 'submitted', ?, ?, ?) ON CONFLICT (form_id, couple_id) DO UPDATE SET"
            " status = 'submitted', submitted_at = excluded.submitted_at,"
            " updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            (form_id, couple_id, at, submitted_by, at),
        )

    async def _written(self, form_id: str, couple_id: str) -> FormResponse:
        found = await self.form_response(form_id, couple_id)
        if found is None:  # only if deleted between the write and this read
            raise NotFound(f"no response of {couple_id!r} to form {form_id!r}", field="form_id")
        return found


@contextlib.contextmanager
def _known_form(form_id: str) -> Iterator[None]:
    """A response to a form (or of a couple) the store does not hold is `NotFound`, as on
    PostgreSQL, not the foreign key's IntegrityError."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise NotFound(f"unknown form {form_id!r} or couple", field="form_id") from exc


class SqliteLastSeenStore:
    """Last-seen times ("Lisa's Catering — active 2 minutes ago"), kept 7 days (SPEC.md,
    "Presence"): presence itself is not persisted, only the last moment and status seen."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def record_last_seen(self, user_id: str, *, at: str, status: str | None) -> None:
        """Remember `at` (ISO 8601 UTC) unless a later time is already recorded."""
        self._db.execute(
            "INSERT INTO last_seen (user_id, last_seen_at, status) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET last_seen_at = excluded.last_seen_at,"
            " status = excluded.status WHERE excluded.last_seen_at >= last_seen.last_seen_at",
            (user_id, at, status),
        )

    async def last_seen(self, user_ids: Sequence[str]) -> dict[str, tuple[str, str | None]]:
        """user_id -> (last_seen_at, status) for the users seen (within the retention)."""
        if not user_ids:
            return {}
        marks = ", ".join("?" for _ in user_ids)
        rows = self._db.query(
            f"SELECT user_id, last_seen_at, status FROM last_seen WHERE user_id IN ({marks})",
            list(user_ids),
        )
        return {r["user_id"]: (r["last_seen_at"], r["status"]) for r in rows}

    async def forget_last_seen_before(self, cutoff: str) -> int:
        """Drop times older than `cutoff` (now minus 7 days); return how many."""
        return self._db.execute("DELETE FROM last_seen WHERE last_seen_at < ?", (cutoff,))
