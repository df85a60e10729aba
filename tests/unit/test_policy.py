"""`NameRulesPolicy`: what a channel's name alone allows."""

from __future__ import annotations

import pytest

from wedsync_realtime.auth.jwt import Principal
from wedsync_realtime.auth.policy import Action, Decision, NameRulesPolicy

ALL_ACTIONS = list(Action)
READS = [Action.SUBSCRIBE, Action.PRESENCE_READ]
WRITES = [Action.BROADCAST, Action.PRESENCE_WRITE]


def principal(user_id: str = "alice", role: str = "authenticated") -> Principal:
    claims = {"sub": user_id, "role": role, "exp": 2_000_000_000}
    return Principal(user_id=user_id, role=role, claims=claims, expires_at=2e9, token="t")


async def decide(
    who: Principal, channel: str, action: Action, *, private: bool = False
) -> Decision:
    return await NameRulesPolicy().authorize(who, channel, action, private=private)


@pytest.mark.parametrize("action", ALL_ACTIONS)
@pytest.mark.parametrize("private", [False, True])
@pytest.mark.parametrize("channel", ["broadcast:all", "user:alice", "user:bob", "room1", "x:y"])
async def test_service_role_may_do_anything(channel: str, private: bool, action: Action) -> None:
    service = principal("service_role:anonymous", "service_role")
    assert await decide(service, channel, action, private=private) == Decision.allow()


@pytest.mark.parametrize("private", [False, True])
@pytest.mark.parametrize("action", READS)
async def test_broadcast_channels_are_readable_by_everyone(private: bool, action: Action) -> None:
    for who in (principal("alice"), principal("anon:anonymous", "anon")):
        assert (await decide(who, "broadcast:venue-42", action, private=private)).allowed


@pytest.mark.parametrize("private", [False, True])
@pytest.mark.parametrize("action", WRITES)
async def test_broadcast_channels_are_written_only_by_the_service_role(
    private: bool, action: Action
) -> None:
    decision = await decide(principal("alice"), "broadcast:venue-42", action, private=private)
    assert decision == Decision.deny("only the service role may write to broadcast:venue-42")


@pytest.mark.parametrize("private", [False, True])
@pytest.mark.parametrize("action", ALL_ACTIONS)
async def test_user_channel_is_its_owners(private: bool, action: Action) -> None:
    assert (await decide(principal("alice"), "user:alice", action, private=private)).allowed


@pytest.mark.parametrize("private", [False, True])
@pytest.mark.parametrize("action", ALL_ACTIONS)
async def test_user_channel_of_another_user_is_refused(private: bool, action: Action) -> None:
    decision = await decide(principal("bob"), "user:alice", action, private=private)
    assert decision == Decision.deny("user:alice belongs to another user")


async def test_user_channel_compares_the_whole_id() -> None:
    # Neither a prefix nor a longer id matches.
    assert not (await decide(principal("ali"), "user:alice", Action.SUBSCRIBE)).allowed
    assert not (await decide(principal("alice"), "user:alice:2", Action.SUBSCRIBE)).allowed


@pytest.mark.parametrize("action", ALL_ACTIONS)
@pytest.mark.parametrize("channel", ["room1", "wedding:123", "broadcast:", "user:", ""])
async def test_other_public_channels_are_open(channel: str, action: Action) -> None:
    assert (await decide(principal("alice"), channel, action, private=False)).allowed


@pytest.mark.parametrize("action", ALL_ACTIONS)
@pytest.mark.parametrize("channel", ["room1", "wedding:123", "broadcast:", "user:"])
async def test_other_private_channels_are_refused(channel: str, action: Action) -> None:
    decision = await decide(principal("alice"), channel, action, private=True)
    assert decision == Decision.deny(f"no rule grants access to the private channel {channel}")
