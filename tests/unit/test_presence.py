"""Presence on one node: the Phoenix.Presence shapes Supabase clients expect (reference notes
§2.4): state `{key: {"metas": [...]}}`, diffs `{"joins", "leaves"}`, every meta with `phx_ref`."""

from __future__ import annotations

from wedsync_realtime.engine.presence import PresenceDiff, PresenceRegistry

CHANNEL = "realtime:room1"


def test_track_joins_with_a_phx_ref() -> None:
    registry = PresenceRegistry("node1")
    diff = registry.track(CHANNEL, "c1", "user-1", {"online_at": "now"})
    assert diff is not None
    assert diff.leaves == {}
    [meta] = diff.joins["user-1"]["metas"]
    assert meta["online_at"] == "now"
    assert isinstance(meta["phx_ref"], str) and meta["phx_ref"]
    assert "phx_ref_prev" not in meta
    assert diff.payload() == {"joins": diff.joins, "leaves": {}}
    assert registry.state(CHANNEL) == {"user-1": {"metas": [meta]}}
    assert registry.count(CHANNEL) == 1


def test_phx_refs_are_unique() -> None:
    registry = PresenceRegistry("node1")
    other_node = PresenceRegistry("node2")
    refs = set()
    for conn in ("c1", "c2", "c3"):
        for reg in (registry, other_node):
            diff = reg.track(CHANNEL, conn, conn, {})
            assert diff is not None
            refs.add(diff.joins[conn]["metas"][0]["phx_ref"])
    assert len(refs) == 6


def test_unchanged_retrack_is_a_no_op() -> None:
    registry = PresenceRegistry("node1")
    registry.track(CHANNEL, "c1", "user-1", {"status": "online"})
    before = registry.state(CHANNEL)
    assert registry.track(CHANNEL, "c1", "user-1", {"status": "online"}) is None
    assert registry.state(CHANNEL) == before


def test_changed_retrack_is_join_with_phx_ref_prev_plus_leave_of_old_meta() -> None:
    registry = PresenceRegistry("node1")
    first = registry.track(CHANNEL, "c1", "u/058c52", {"foo": "bar"})
    assert first is not None
    [old_meta] = first.joins["u/058c52"]["metas"]
    diff = registry.track(CHANNEL, "c1", "u/058c52", {"foo": "baz"})
    assert diff is not None
    [new_meta] = diff.joins["u/058c52"]["metas"]
    assert new_meta["foo"] == "baz"
    assert new_meta["phx_ref_prev"] == old_meta["phx_ref"]
    assert new_meta["phx_ref"] != old_meta["phx_ref"]
    assert diff.leaves == {"u/058c52": {"metas": [{"foo": "bar", "phx_ref": old_meta["phx_ref"]}]}}
    # The connection still has one meta: the new one.
    assert registry.state(CHANNEL) == {"u/058c52": {"metas": [new_meta]}}


def test_track_does_not_alias_the_callers_payload() -> None:
    registry = PresenceRegistry("node1")
    payload = {"status": "online"}
    registry.track(CHANNEL, "c1", "k", payload)
    payload["status"] = "away"
    # The mutated dict is a change, not the stored payload itself.
    diff = registry.track(CHANNEL, "c1", "k", payload)
    assert diff is not None
    assert diff.leaves["k"]["metas"][0]["status"] == "online"


def test_untrack_leaves_with_the_current_meta() -> None:
    registry = PresenceRegistry("node1")
    registry.track(CHANNEL, "c1", "user-1", {"a": 1})
    updated = registry.track(CHANNEL, "c1", "user-1", {"a": 2})
    assert updated is not None
    [meta] = updated.joins["user-1"]["metas"]
    diff = registry.untrack(CHANNEL, "c1")
    assert diff == PresenceDiff(joins={}, leaves={"user-1": {"metas": [meta]}})
    assert registry.state(CHANNEL) == {}
    assert registry.count(CHANNEL) == 0


def test_untrack_without_presence_is_none() -> None:
    registry = PresenceRegistry("node1")
    assert registry.untrack(CHANNEL, "c1") is None
    registry.track(CHANNEL, "c1", "k", {})
    assert registry.untrack(CHANNEL, "c2") is None
    assert registry.untrack("realtime:other", "c1") is None
    assert registry.untrack(CHANNEL, "c1") is not None
    assert registry.untrack(CHANNEL, "c1") is None


def test_state_groups_connections_by_key() -> None:
    registry = PresenceRegistry("node1")
    # One user on a phone and a laptop (same presence key), another user elsewhere.
    registry.track(CHANNEL, "phone", "alice", {"device": "phone"})
    registry.track(CHANNEL, "laptop", "alice", {"device": "laptop"})
    registry.track(CHANNEL, "c3", "bob", {"device": "tablet"})
    state = registry.state(CHANNEL)
    assert set(state) == {"alice", "bob"}
    assert sorted(m["device"] for m in state["alice"]["metas"]) == ["laptop", "phone"]
    assert [m["device"] for m in state["bob"]["metas"]] == ["tablet"]
    assert all("phx_ref" in m for metas in state.values() for m in metas["metas"])
    assert registry.count(CHANNEL) == 3

    # One of alice's connections leaving leaves only that meta; the key stays present.
    diff = registry.untrack(CHANNEL, "phone")
    assert diff is not None
    assert [m["device"] for m in diff.leaves["alice"]["metas"]] == ["phone"]
    assert [m["device"] for m in registry.state(CHANNEL)["alice"]["metas"]] == ["laptop"]


def test_channels_are_separate() -> None:
    registry = PresenceRegistry("node1")
    registry.track("realtime:a", "c1", "k", {"x": 1})
    registry.track("realtime:b", "c1", "k", {"x": 2})
    assert registry.state("realtime:a")["k"]["metas"][0]["x"] == 1
    assert registry.state("realtime:b")["k"]["metas"][0]["x"] == 2
    registry.untrack("realtime:a", "c1")
    assert registry.state("realtime:a") == {}
    assert registry.count("realtime:b") == 1


def test_key_change_leaves_the_old_key() -> None:
    registry = PresenceRegistry("node1")
    registry.track(CHANNEL, "c1", "old", {"x": 1})
    diff = registry.track(CHANNEL, "c1", "new", {"x": 1})
    assert diff is not None
    assert set(diff.joins) == {"new"}
    assert set(diff.leaves) == {"old"}
    assert set(registry.state(CHANNEL)) == {"new"}
