"""Who the caller is (JWT) and which channel actions a principal may take."""

from wedsync_realtime.auth.jwt import Principal, TokenVerifier
from wedsync_realtime.auth.policy import Action, ChannelPolicy, Decision, NameRulesPolicy

__all__ = ["Action", "ChannelPolicy", "Decision", "NameRulesPolicy", "Principal", "TokenVerifier"]
