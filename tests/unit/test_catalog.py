"""The WedSync channel catalog: the parser and `CatalogPolicy`'s access matrix (issue 5)."""

from __future__ import annotations

import pytest

from wedsync_realtime.auth.jwt import Principal
from wedsync_realtime.auth.policy import Action, NameRulesPolicy
from wedsync_realtime.wedding.channels import (
    ChannelKind,
    ChannelRef,
    in_catalog_namespace,
    parse_channel,
)
from wedsync_realtime.wedding.directory import MemoryDirectory, UserType
from wedsync_realtime.wedding.policy import CatalogPolicy

K = ChannelKind

# -- parser ------------------------------------------------------------------------------------

PARSED = [
    ("supplier:s1", K.SUPPLIER, ("s1",)),
    ("supplier:s1:team", K.SUPPLIER_TEAM, ("s1",)),
    ("supplier:s1:clients", K.SUPPLIER_CLIENTS, ("s1",)),
    ("supplier:s1:forms", K.SUPPLIER_FORMS, ("s1",)),
    ("supplier:s1:journeys", K.SUPPLIER_JOURNEYS, ("s1",)),
    ("supplier:dashboard:s1", K.SUPPLIER_DASHBOARD, ("s1",)),
    ("couple:c1", K.COUPLE, ("c1",)),
    ("couple:c1:suppliers", K.COUPLE_SUPPLIERS, ("c1",)),
    ("couple:c1:tasks", K.COUPLE_TASKS, ("c1",)),
    ("couple:c1:timeline", K.COUPLE_TIMELINE, ("c1",)),
    ("couple:dashboard:c1", K.COUPLE_DASHBOARD, ("c1",)),
    ("wedding:w1", K.WEDDING, ("w1",)),
    ("collaboration:s1:c1", K.COLLABORATION, ("s1", "c1")),
    ("collab:s1:c1", K.COLLABORATION, ("s1", "c1")),
    ("form:f1", K.FORM, ("f1",)),
    ("form:responses:f1", K.FORM_RESPONSES, ("f1",)),
    ("journey:j1:c1", K.JOURNEY, ("j1", "c1")),
    ("journey:progress:j1", K.JOURNEY_PROGRESS, ("j1",)),
    ("core_fields:c1", K.CORE_FIELDS, ("c1",)),
    ("broadcast:all", K.BROADCAST, ("all",)),
    ("user:4f1c-uuid", K.USER, ("4f1c-uuid",)),
]


@pytest.mark.parametrize(("name", "kind", "ids"), PARSED)
def test_every_catalog_form_parses(name: str, kind: ChannelKind, ids: tuple[str, ...]) -> None:
    ref = parse_channel(name)
    assert ref == ChannelRef(kind, ids)
    assert ref.id == ids[0]
    # The canonical name round-trips (the alias is written out in full).
    assert ref.name == name.replace("collab:", "collaboration:")
    assert parse_channel(ref.name) == ref
    assert in_catalog_namespace(name)


def test_second_id_of_two_id_kinds_only() -> None:
    assert ChannelRef(K.COLLABORATION, ("s1", "c1")).second_id == "c1"
    assert ChannelRef(K.JOURNEY, ("j1", "c1")).second_id == "c1"
    with pytest.raises(AttributeError):
        _ = ChannelRef(K.FORM, ("f1",)).second_id


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # The keyword wins: `dashboard`, `progress`, `responses` are never ids there.
        ("supplier:dashboard:team", ChannelRef(K.SUPPLIER_DASHBOARD, ("team",))),
        ("couple:dashboard:tasks", ChannelRef(K.COUPLE_DASHBOARD, ("tasks",))),
        ("journey:progress:c1", ChannelRef(K.JOURNEY_PROGRESS, ("c1",))),
        ("form:responses:responses", ChannelRef(K.FORM_RESPONSES, ("responses",))),
        ("supplier:dashboard", None),
        ("couple:dashboard", None),
        ("form:responses", None),
        ("supplier:dashboard:s1:team", None),
        ("journey:progress:j1:c1", None),
        # The other words are fine as ids.
        ("supplier:team", ChannelRef(K.SUPPLIER, ("team",))),
        ("supplier:team:team", ChannelRef(K.SUPPLIER_TEAM, ("team",))),
        ("journey:team:progress", ChannelRef(K.JOURNEY, ("team", "progress"))),
        ("form:progress", ChannelRef(K.FORM, ("progress",))),
        ("user:dashboard", ChannelRef(K.USER, ("dashboard",))),
    ],
)
def test_ambiguities_resolve_to_the_keyword(name: str, expected: ChannelRef | None) -> None:
    assert parse_channel(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "",
        "supplier",
        "supplier:",
        ":s1",
        "supplier::team",
        "supplier:s1:",
        "supplier:s1:secret",
        "supplier:s1:team:extra",
        "couple:c1:clients",
        "couple:c1:team",
        "wedding",
        "wedding:w1:extra",
        "collaboration:s1",
        "collab:s1:c1:x",
        "collaboration::c1",
        "form:f1:extra",
        "journey:j1",
        "journey:j1:c1:x",
        "journey:progress",
        "core_fields:",
        "core_fields:c1:x",
        "broadcast:a:b",
        "user:a:b",
        "user:",
        "Supplier:s1",
        "vendor:s1",
        "room1",
        "realtime:supplier:s1",
    ],
)
def test_malformed_names_are_not_catalog_channels(name: str) -> None:
    assert parse_channel(name) is None


def test_namespace_check() -> None:
    assert in_catalog_namespace("supplier:s1:secret")
    assert in_catalog_namespace("collab:x")
    assert not in_catalog_namespace("room1")
    assert not in_catalog_namespace("realtime:supplier:s1")


# -- the demo wedding --------------------------------------------------------------------------

CJE, COTHER = "c-james-emma", "c-olivia"
WJE, WOTHER = "w-james-emma", "w-olivia"
SARAH, LISA, MIKE, FLO = "s-sarah-photo", "s-lisas-catering", "s-mike-venue", "s-flo-florist"
SHOT_LIST, WALKTHROUGH = "f-shot-list", "j-venue-walkthrough"

USERS = ["james", "emma", "sarah", "tom", "lisa", "mike", "flo", "olivia", "admin", "ghost"]


def demo_directory() -> MemoryDirectory:
    d = MemoryDirectory()
    d.add_user("james", UserType.COUPLE, couple_id=CJE)
    d.add_user("emma", UserType.COUPLE, couple_id=CJE)
    d.add_user("olivia", UserType.COUPLE, couple_id=COTHER)
    d.add_user("sarah", UserType.SUPPLIER, supplier_id=SARAH)
    d.add_user("tom", UserType.SUPPLIER, supplier_id=SARAH)  # Sarah's second shooter
    d.add_team_member(SARAH, "sarah")
    d.add_team_member(SARAH, "tom")
    d.add_user("lisa", UserType.SUPPLIER, supplier_id=LISA)
    d.add_user("mike", UserType.SUPPLIER, supplier_id=MIKE)
    d.add_user("flo", UserType.SUPPLIER, supplier_id=FLO)  # not connected to James & Emma
    d.add_user("admin", UserType.ADMIN)
    # "ghost" has a valid token but no profile.
    for supplier in (SARAH, LISA, MIKE):
        d.connect(supplier, CJE)
    d.connect(FLO, COTHER)
    d.add_wedding(WJE, CJE)
    d.add_wedding(WOTHER, COTHER)
    d.add_form(SHOT_LIST, SARAH, sent_to=(CJE,))
    d.add_journey(WALKTHROUGH, MIKE, CJE)
    return d


def principal(user_id: str, role: str = "authenticated") -> Principal:
    claims = {"sub": user_id, "role": role, "exp": 2_000_000_000}
    return Principal(user_id=user_id, role=role, claims=claims, expires_at=2e9, token="t")


def policy(directory: MemoryDirectory | None = None) -> CatalogPolicy:
    return CatalogPolicy(directory or demo_directory(), NameRulesPolicy())


RW = frozenset(Action)
R = frozenset({Action.SUBSCRIBE, Action.PRESENCE_READ})
COUPLE_JE = {"james": RW, "emma": RW, "admin": R}
SARAHS = {"sarah": RW, "tom": RW, "admin": R}

#: channel -> user -> the actions allowed; a user not listed is allowed nothing. Written out by
#: hand from the issue's rules, not computed.
EXPECTED: dict[str, dict[str, frozenset[Action]]] = {
    f"supplier:{SARAH}": SARAHS,
    f"supplier:{SARAH}:team": SARAHS,
    f"supplier:{SARAH}:clients": SARAHS,
    f"supplier:{SARAH}:forms": SARAHS,
    f"supplier:{SARAH}:journeys": SARAHS,
    f"supplier:dashboard:{SARAH}": SARAHS,
    f"supplier:{LISA}": {"lisa": RW, "admin": R},
    f"supplier:{LISA}:team": {"lisa": RW, "admin": R},
    f"supplier:dashboard:{MIKE}": {"mike": RW, "admin": R},
    f"supplier:{MIKE}:journeys": {"mike": RW, "admin": R},
    f"supplier:{FLO}:clients": {"flo": RW, "admin": R},
    f"couple:{CJE}": COUPLE_JE,
    f"couple:{CJE}:suppliers": COUPLE_JE,
    f"couple:{CJE}:tasks": COUPLE_JE,
    f"couple:{CJE}:timeline": COUPLE_JE,
    f"couple:dashboard:{CJE}": COUPLE_JE,
    f"couple:{COTHER}": {"olivia": RW, "admin": R},
    f"wedding:{WJE}": {
        "james": RW,
        "emma": RW,
        "sarah": RW,
        "tom": RW,
        "lisa": RW,
        "mike": RW,
        "admin": R,
    },
    f"wedding:{WOTHER}": {"olivia": RW, "flo": RW, "admin": R},
    "wedding:w-unknown": {"admin": R},
    f"collaboration:{SARAH}:{CJE}": {"sarah": RW, "tom": RW, "james": RW, "emma": RW, "admin": R},
    f"collab:{LISA}:{CJE}": {"lisa": RW, "james": RW, "emma": RW, "admin": R},
    f"collaboration:{FLO}:{CJE}": {"admin": R},
    f"collab:{SARAH}:{COTHER}": {"admin": R},
    f"collaboration:{FLO}:{COTHER}": {"flo": RW, "olivia": RW, "admin": R},
    f"form:{SHOT_LIST}": {"sarah": RW, "tom": RW, "james": RW, "emma": RW, "admin": R},
    f"form:responses:{SHOT_LIST}": {"sarah": RW, "tom": RW, "james": RW, "emma": RW, "admin": R},
    "form:f-unknown": {"admin": R},
    f"journey:{WALKTHROUGH}:{CJE}": {"mike": RW, "james": RW, "emma": RW, "admin": R},
    f"journey:progress:{WALKTHROUGH}": {"mike": RW, "james": RW, "emma": RW, "admin": R},
    f"journey:{WALKTHROUGH}:{COTHER}": {"admin": R},
    f"core_fields:{CJE}": {
        "james": RW,
        "emma": RW,
        "sarah": R,
        "tom": R,
        "lisa": R,
        "mike": R,
        "admin": R,
    },
    f"core_fields:{COTHER}": {"olivia": RW, "flo": R, "admin": R},
    "broadcast:all": {user: R for user in USERS} | {"admin": RW},
    "user:emma": {"emma": RW, "admin": R},
    "user:tom": {"tom": RW, "admin": R},
    "user:ghost": {"ghost": RW, "admin": R},
}


def test_the_matrix_covers_every_catalog_kind() -> None:
    kinds = set()
    for name in EXPECTED:
        ref = parse_channel(name)
        assert ref is not None, name
        kinds.add(ref.kind)
    assert kinds == set(ChannelKind)


@pytest.mark.parametrize("private", [False, True])
async def test_access_matrix(private: bool) -> None:
    """Every demo user x every catalog channel x every action, against the table above.

    The client's `private` flag makes no difference on catalog channels."""
    p = policy()
    unexpected_allows: list[str] = []
    unexpected_denials: list[str] = []
    for channel, allowed in EXPECTED.items():
        for user in USERS:
            for action in Action:
                decision = await p.authorize(principal(user), channel, action, private=private)
                expected = action in allowed.get(user, frozenset())
                case = f"{user} {action} {channel}"
                if decision.allowed and not expected:
                    unexpected_allows.append(case)
                elif not decision.allowed and expected:
                    unexpected_denials.append(f"{case}: {decision.reason}")
                elif not decision.allowed:
                    assert "rule '" in decision.reason, case
                    assert channel in decision.reason, case
    assert unexpected_allows == []
    assert unexpected_denials == []


#: The suppliers and couples whose data each matrix channel carries (broadcast and user
#: channels carry neither).
PARTIES: dict[str, set[str]] = {}
for _name in EXPECTED:
    _ref = parse_channel(_name)
    assert _ref is not None
    if _ref.kind in (K.BROADCAST, K.USER):
        continue
    _parties = set(_ref.ids)
    _parties |= {CJE} if _ref.id in (WJE, SHOT_LIST, WALKTHROUGH) else set()
    _parties |= {COTHER} if _ref.id == WOTHER else set()
    _parties |= {SARAH} if _ref.id == SHOT_LIST else set()
    _parties |= {MIKE} if _ref.id == WALKTHROUGH else set()
    PARTIES[_name] = _parties

SUPPLIER_USERS = {"sarah": SARAH, "tom": SARAH, "lisa": LISA, "mike": MIKE, "flo": FLO}
CONNECTED = {SARAH: {CJE}, LISA: {CJE}, MIKE: {CJE}, FLO: {COTHER}}
ALL_PARTIES = {SARAH, LISA, MIKE, FLO, CJE, COTHER}


async def test_a_supplier_never_touches_strangers() -> None:
    """No supplier user gets anything on a channel about a couple it is not connected to or
    about another supplier (SPEC "Security and privacy")."""
    p = policy()
    for user, supplier in SUPPLIER_USERS.items():
        mine = {supplier} | CONNECTED[supplier]
        for channel, parties in PARTIES.items():
            if not (parties & ALL_PARTIES) <= mine:
                for action in Action:
                    decision = await p.authorize(principal(user), channel, action, private=False)
                    assert not decision.allowed, f"{user} {action} {channel}"


# -- rules beyond the matrix -------------------------------------------------------------------


async def test_a_team_only_member_gets_the_team_channel_only() -> None:
    d = demo_directory()
    d.add_user("zoe", UserType.SUPPLIER, supplier_id=FLO)
    d.add_team_member(SARAH, "zoe")  # a freelancer on Sarah's team
    p, zoe = policy(d), principal("zoe")
    assert (
        await p.authorize(zoe, f"supplier:{SARAH}:team", Action.BROADCAST, private=True)
    ).allowed
    for channel in (f"supplier:{SARAH}", f"supplier:{SARAH}:clients", f"wedding:{WJE}"):
        assert not (await p.authorize(zoe, channel, Action.SUBSCRIBE, private=True)).allowed


async def test_disconnecting_revokes_shared_channels() -> None:
    d = demo_directory()
    d.disconnect(SARAH, CJE)
    d.disconnect(MIKE, CJE)
    p = policy(d)
    for user, channel in [
        ("sarah", f"collaboration:{SARAH}:{CJE}"),
        ("emma", f"collaboration:{SARAH}:{CJE}"),
        ("sarah", f"wedding:{WJE}"),
        ("tom", f"core_fields:{CJE}"),
        ("emma", f"form:{SHOT_LIST}"),
        ("mike", f"journey:progress:{WALKTHROUGH}"),
        ("james", f"journey:{WALKTHROUGH}:{CJE}"),
    ]:
        decision = await p.authorize(principal(user), channel, Action.SUBSCRIBE, private=True)
        assert not decision.allowed, f"{user} {channel}"
    # Sarah keeps her own form; Lisa is still connected.
    assert (
        await p.authorize(principal("sarah"), f"form:{SHOT_LIST}", Action.SUBSCRIBE, private=True)
    ).allowed
    assert (
        await p.authorize(principal("lisa"), f"wedding:{WJE}", Action.SUBSCRIBE, private=True)
    ).allowed


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("channel", [*EXPECTED, "supplier:s1:secret", "user:a:b", "room1", "x:y"])
async def test_service_role_may_do_anything(channel: str, action: Action) -> None:
    service = principal("service_role:anonymous", "service_role")
    for private in (False, True):
        assert (await policy().authorize(service, channel, action, private=private)).allowed


@pytest.mark.parametrize(
    "channel", ["supplier:s1:secret", "couple:c1:clients", "user:a:b", "collab:x"]
)
async def test_malformed_catalog_names_are_refused_even_when_public(channel: str) -> None:
    decision = await policy().authorize(principal("emma"), channel, Action.SUBSCRIBE, private=False)
    assert not decision.allowed
    assert "rule 'malformed'" in decision.reason


async def test_non_catalog_channels_go_to_the_fallback() -> None:
    p = policy()
    emma = principal("emma")
    assert (await p.authorize(emma, "room1", Action.BROADCAST, private=False)).allowed
    denied = await p.authorize(emma, "room1", Action.SUBSCRIBE, private=True)
    assert not denied.allowed
    assert "private channel room1" in denied.reason
    # Admins read any channel, writes still go to the fallback.
    admin = principal("admin")
    assert (await p.authorize(admin, "room1", Action.SUBSCRIBE, private=True)).allowed
    assert not (await p.authorize(admin, "room1", Action.BROADCAST, private=True)).allowed
