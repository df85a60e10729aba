"""The demo wedding in an in-memory SQLite store, with every domain service wired to it.

A stepping clock (one second per reading) and sequential notification ids keep the tests'
expectations exact.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass

from wedsync_realtime.store.sqlite import SqliteDatabase
from wedsync_realtime.wedding.core_fields import CoreFieldsService
from wedsync_realtime.wedding.demo import load_demo
from wedsync_realtime.wedding.events import DomainEvent
from wedsync_realtime.wedding.forms import FormService
from wedsync_realtime.wedding.journeys import JourneyService
from wedsync_realtime.wedding.notifications import NotificationService
from wedsync_realtime.wedding.sqlite_directory import SqliteDirectory
from wedsync_realtime.wedding.sqlite_stores import (
    SqliteCoreFieldStore,
    SqliteFormStore,
    SqliteJourneyStore,
    SqliteNotificationStore,
)

START = dt.datetime(2025, 6, 1, 14, 0, tzinfo=dt.UTC)


class SteppingClock:
    """Starts at `START` and moves one second on every reading."""

    def __init__(self) -> None:
        self._ticks = itertools.count()

    def __call__(self) -> dt.datetime:
        return START + dt.timedelta(seconds=next(self._ticks))


@dataclass
class World:
    database: SqliteDatabase
    directory: SqliteDirectory
    core_field_store: SqliteCoreFieldStore
    journey_store: SqliteJourneyStore
    notifications: NotificationService
    core_fields: CoreFieldsService
    journeys: JourneyService
    forms: FormService


def demo_world() -> World:
    database = SqliteDatabase.open(":memory:")
    load_demo(database)
    clock = SteppingClock()
    ids = (f"n{i}" for i in itertools.count(1))
    directory = SqliteDirectory(database)
    core_field_store = SqliteCoreFieldStore(database)
    journey_store = SqliteJourneyStore(database)
    notifications = NotificationService(
        SqliteNotificationStore(database), clock=clock, new_id=lambda: next(ids)
    )
    return World(
        database=database,
        directory=directory,
        core_field_store=core_field_store,
        journey_store=journey_store,
        notifications=notifications,
        core_fields=CoreFieldsService(
            core_field_store, directory, directory, notifications, clock=clock
        ),
        journeys=JourneyService(journey_store, directory, notifications, clock=clock),
        forms=FormService(SqliteFormStore(database), directory, notifications, clock=clock),
    )


def named(events: tuple[DomainEvent, ...], name: str) -> list[DomainEvent]:
    """The events called `name`, in order."""
    return [e for e in events if e.event == name]


def all_channels(events: tuple[DomainEvent, ...]) -> set[str]:
    return {channel for event in events for channel in event.channels}
