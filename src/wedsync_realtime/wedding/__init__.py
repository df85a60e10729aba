"""The WedSync domain: the channel catalog, the facts its access rules read, and the policy.

Issue 5 ("WedSync domain", section "Channel catalog and access rules") and SPEC.md ("Channels",
"Security and privacy", "Presence"):

* `channels` — a pure parser of catalog channel names into typed `ChannelRef` values;
* `directory` — the `Directory` of facts the rules read (user profiles, teams, supplier-couple
  connections, weddings, forms, journeys) and `MemoryDirectory`, its in-memory reference;
* `policy` — `CatalogPolicy`, the `ChannelPolicy` that governs every catalog channel and
  delegates every other channel to a fallback policy.

The domain services (issue 5, "One pipeline for domain events") take small store Protocols and
return `events.DomainEvent` values for the router to publish; they never publish themselves:

* `events` — `DomainEvent`, `Outcome`, canonical channel names, the payload timestamp format;
* `errors` — `DomainError` and its subclasses, one per HTTP status of the REST API;
* `audience` — `Audience` (names, a couple's weddings and connected suppliers) and where an
  event about a couple goes;
* `core_fields`, `notifications`, `journeys`, `forms` — the services and their store roles;
* `sqlite_directory`, `sqlite_stores` — the embedded default's implementations
  (on `store.sqlite.SqliteDatabase`);
* `demo` — the demo wedding (James & Emma and their five suppliers).
"""

from __future__ import annotations
