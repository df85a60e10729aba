"""The WedSync domain: the channel catalog, the facts its access rules read, and the policy.

Issue 5 ("WedSync domain", section "Channel catalog and access rules") and SPEC.md ("Channels",
"Security and privacy", "Presence"):

* `channels` — a pure parser of catalog channel names into typed `ChannelRef` values;
* `directory` — the `Directory` of facts the rules read (user profiles, teams, supplier-couple
  connections, weddings, forms, journeys) and `MemoryDirectory`, its in-memory reference;
* `policy` — `CatalogPolicy`, the `ChannelPolicy` that governs every catalog channel and
  delegates every other channel to a fallback policy.

Not wired into the server yet.
"""

from __future__ import annotations
