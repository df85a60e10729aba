"""Channel policy: may this principal subscribe to, broadcast on, or use presence on a channel?

The interface is what the WedSync catalog (supplier, couple, wedding, form, journey channels)
plugs into later. `NameRulesPolicy` is the rule set for channel names that needs no data:

* the `service_role` may do anything;
* `broadcast:<scope>` — readable (subscribe, presence read) by every authenticated caller,
  writable (broadcast, presence write) only by the `service_role`;
* `user:<id>` — its owner only (JWT `sub` equal to `<id>`);
* any other public channel (`private: false`) — open to every authenticated caller;
* any other private channel — refused: nothing here can vouch for it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from wedsync_realtime.auth.jwt import Principal

__all__ = ["Action", "ChannelPolicy", "Decision", "NameRulesPolicy"]


class Action(enum.StrEnum):
    SUBSCRIBE = "subscribe"
    BROADCAST = "broadcast"
    PRESENCE_READ = "presence_read"
    PRESENCE_WRITE = "presence_write"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    #: Why it was refused; goes into the `Unauthorized: ...` reason and the log.
    reason: str = ""

    @classmethod
    def allow(cls) -> Decision:
        return cls(True)

    @classmethod
    def deny(cls, reason: str) -> Decision:
        return cls(False, reason)


class ChannelPolicy(Protocol):
    """Decides one action of one principal on one channel (the subtopic, without `realtime:`)."""

    async def authorize(
        self, principal: Principal, channel: str, action: Action, *, private: bool
    ) -> Decision: ...


_READ_ACTIONS = frozenset({Action.SUBSCRIBE, Action.PRESENCE_READ})


class NameRulesPolicy:
    """The rules that follow from a channel's name alone."""

    async def authorize(
        self, principal: Principal, channel: str, action: Action, *, private: bool
    ) -> Decision:
        if principal.is_service:
            return Decision.allow()
        scope, _, rest = channel.partition(":")
        if scope == "broadcast" and rest:
            if action in _READ_ACTIONS:
                return Decision.allow()
            return Decision.deny(f"only the service role may write to {channel}")
        if scope == "user" and rest:
            if rest == principal.user_id:
                return Decision.allow()
            return Decision.deny(f"{channel} belongs to another user")
        if not private:
            return Decision.allow()
        return Decision.deny(f"no rule grants access to the private channel {channel}")
