"""`CatalogPolicy`: who may do what on the WedSync channel catalog.

The rules of issue 5, "Channel catalog and access rules", with SPEC.md "Security and privacy"
("suppliers never see other suppliers' data") and "Presence" ("team members always see each
other; active supplier-couple pairs see each other; competitors and other couples never").
Reads are `subscribe` and `presence_read`; writes are `broadcast` and `presence_write`.

In order:

1. the `service_role` may do anything;
2. an admin (`user_profiles.user_type = admin`) may read any channel ("Admins may read any
   channel");
3. a name in a catalog namespace (``supplier:``, ``couple:``, ... see `CATALOG_SCOPES`) that is
   not a catalog channel is refused (rule "malformed"): a look-alike of a private channel must
   not fall through to the open rules of the fallback;
4. any other non-catalog channel is decided by the fallback policy, with its `private` flag;
5. a catalog channel is decided by its rule below; the client's `private` flag is ignored.

Catalog rules ("users of S": profiles of type supplier with supplier S; "users of C": profiles
of type couple with couple C). Unless a rule says otherwise it grants reads and writes alike.

* ``supplier:{S}``, ``:clients``, ``:forms``, ``:journeys``, ``supplier:dashboard:{S}``: users
  of S. ``supplier:{S}:team``: users of S and S's team members.
* ``couple:{C}``, ``:suppliers``, ``:tasks``, ``:timeline``, ``couple:dashboard:{C}``: users of C.
* ``wedding:{W}``: users of W's couple and users of every supplier connected to W.
* ``collaboration:{S}:{C}``: users of S and users of C, only while S and C are connected.
* ``form:{F}``, ``form:responses:{F}``: users of F's supplier; users of a couple F was sent to,
  while that couple is connected to F's supplier.
* ``journey:{J}:{C}``: only when C is J's client; users of J's supplier and users of C, while the
  two are connected. ``journey:progress:{J}``: the same sides of J's instance.
* ``core_fields:{C}``: read by users of C and users of suppliers connected to C; written only by
  users of C.
* ``broadcast:{scope}``: read by every verified caller (as `NameRulesPolicy`); written by
  admins (and the service role).
* ``user:{U}``: U only (any action); admins read.
"""

from __future__ import annotations

from wedsync_realtime.auth.jwt import Principal
from wedsync_realtime.auth.policy import Action, ChannelPolicy, Decision
from wedsync_realtime.wedding.channels import (
    ChannelKind,
    ChannelRef,
    in_catalog_namespace,
    parse_channel,
)
from wedsync_realtime.wedding.directory import Directory, UserProfile, UserType

__all__ = ["READ_ACTIONS", "WRITE_ACTIONS", "CatalogPolicy"]

READ_ACTIONS = frozenset({Action.SUBSCRIBE, Action.PRESENCE_READ})
WRITE_ACTIONS = frozenset({Action.BROADCAST, Action.PRESENCE_WRITE})

_SUPPLIER_OWN = frozenset(
    {
        ChannelKind.SUPPLIER,
        ChannelKind.SUPPLIER_CLIENTS,
        ChannelKind.SUPPLIER_FORMS,
        ChannelKind.SUPPLIER_JOURNEYS,
        ChannelKind.SUPPLIER_DASHBOARD,
    }
)
_COUPLE_OWN = frozenset(
    {
        ChannelKind.COUPLE,
        ChannelKind.COUPLE_SUPPLIERS,
        ChannelKind.COUPLE_TASKS,
        ChannelKind.COUPLE_TIMELINE,
        ChannelKind.COUPLE_DASHBOARD,
    }
)


def _yes_if(ok: bool, channel: str, rule: str) -> Decision:
    return Decision.allow() if ok else Decision.deny(f"{channel}: {rule}")


class CatalogPolicy:
    """The catalog's rules over `directory`; non-catalog channels go to `fallback`."""

    def __init__(self, directory: Directory, fallback: ChannelPolicy) -> None:
        self._directory = directory
        self._fallback = fallback

    @property
    def directory(self) -> Directory:
        """The facts the rules read (the composition root hands the same store to the
        domain services)."""
        return self._directory

    async def authorize(
        self, principal: Principal, channel: str, action: Action, *, private: bool
    ) -> Decision:
        if principal.is_service:
            return Decision.allow()
        profile = await self._directory.user_profile(principal.user_id)
        is_admin = profile is not None and profile.user_type is UserType.ADMIN
        if is_admin and action in READ_ACTIONS:
            return Decision.allow()
        ref = parse_channel(channel)
        if ref is None:
            if in_catalog_namespace(channel):
                return Decision.deny(
                    f"{channel}: rule 'malformed': not a channel of the WedSync catalog"
                )
            return await self._fallback.authorize(principal, channel, action, private=private)
        return await self._catalog(principal, profile, ref, channel, action)

    async def _catalog(
        self,
        principal: Principal,
        profile: UserProfile | None,
        ref: ChannelRef,
        channel: str,
        action: Action,
    ) -> Decision:
        d = self._directory
        kind = ref.kind
        supplier = profile.acting_supplier_id if profile is not None else None
        couple = profile.acting_couple_id if profile is not None else None
        if kind in _SUPPLIER_OWN:
            return _yes_if(
                supplier == ref.id, channel, f"rule 'supplier': only users of supplier {ref.id}"
            )
        if kind is ChannelKind.SUPPLIER_TEAM:
            ok = supplier == ref.id or await d.is_team_member(principal.user_id, ref.id)
            return _yes_if(ok, channel, f"rule 'supplier team': only the team of {ref.id}")
        if kind in _COUPLE_OWN:
            return _yes_if(
                couple == ref.id, channel, f"rule 'couple': only users of couple {ref.id}"
            )
        if kind is ChannelKind.WEDDING:
            return await self._wedding(ref, channel, supplier, couple)
        if kind is ChannelKind.COLLABORATION:
            s, c = ref.id, ref.second_id
            rule = f"rule 'collaboration': only {s} and {c}, while connected"
            if supplier != s and couple != c:
                return Decision.deny(f"{channel}: {rule}")
            return _yes_if(await d.is_connected(s, c), channel, rule)
        if kind in (ChannelKind.FORM, ChannelKind.FORM_RESPONSES):
            return await self._form(ref, channel, supplier, couple)
        if kind in (ChannelKind.JOURNEY, ChannelKind.JOURNEY_PROGRESS):
            return await self._journey(ref, channel, supplier, couple)
        if kind is ChannelKind.CORE_FIELDS:
            if couple == ref.id:
                return Decision.allow()
            if action in WRITE_ACTIONS:
                return Decision.deny(f"{channel}: rule 'core fields': only couple {ref.id} writes")
            ok = supplier is not None and await d.is_connected(supplier, ref.id)
            return _yes_if(
                ok, channel, f"rule 'core fields': read by couple {ref.id} and its suppliers"
            )
        if kind is ChannelKind.BROADCAST:
            is_admin = profile is not None and profile.user_type is UserType.ADMIN
            return _yes_if(
                action in READ_ACTIONS or is_admin,
                channel,
                "rule 'broadcast': written only by admins and the service role",
            )
        # ChannelKind.USER: admins' reads were granted before.
        return _yes_if(principal.user_id == ref.id, channel, f"rule 'user': only user {ref.id}")

    async def _wedding(
        self, ref: ChannelRef, channel: str, supplier: str | None, couple: str | None
    ) -> Decision:
        rule = f"rule 'wedding': only the couple of {ref.id} and its connected suppliers"
        owner = await self._directory.wedding_couple(ref.id)
        if owner is None:
            return Decision.deny(f"{channel}: rule 'wedding': unknown wedding {ref.id}")
        if couple is not None and couple == owner:
            return Decision.allow()
        ok = supplier is not None and supplier in await self._directory.wedding_suppliers(ref.id)
        return _yes_if(ok, channel, rule)

    async def _form(
        self, ref: ChannelRef, channel: str, supplier: str | None, couple: str | None
    ) -> Decision:
        form = await self._directory.form(ref.id)
        if form is None:
            return Decision.deny(f"{channel}: rule 'form': unknown form {ref.id}")
        if supplier is not None and supplier == form.supplier_id:
            return Decision.allow()
        ok = (
            couple is not None
            and couple in form.sent_to
            and await self._directory.is_connected(form.supplier_id, couple)
        )
        return _yes_if(
            ok,
            channel,
            f"rule 'form': only supplier {form.supplier_id} and connected couples it was sent to",
        )

    async def _journey(
        self, ref: ChannelRef, channel: str, supplier: str | None, couple: str | None
    ) -> Decision:
        journey = await self._directory.journey(ref.id)
        if journey is None:
            return Decision.deny(f"{channel}: rule 'journey': unknown journey {ref.id}")
        if ref.kind is ChannelKind.JOURNEY and ref.second_id != journey.couple_id:
            return Decision.deny(
                f"{channel}: rule 'journey': {ref.second_id} is not the client of {ref.id}"
            )
        rule = (
            f"rule 'journey': only supplier {journey.supplier_id} and couple "
            f"{journey.couple_id}, while connected"
        )
        if supplier != journey.supplier_id and couple != journey.couple_id:
            return Decision.deny(f"{channel}: {rule}")
        connected = await self._directory.is_connected(journey.supplier_id, journey.couple_id)
        return _yes_if(connected, channel, rule)
