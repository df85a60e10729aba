"""Exactly-once, in-order delivery decisions on one channel (the client's de-duplication)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wedsync_realtime.client.stream import Position, StreamTracker, Verdict

E = "epoch-a"


def test_in_order_messages_are_delivered_and_remembered() -> None:
    tracker = StreamTracker(Position(0, E))
    for offset in range(1, 5):
        assert tracker.classify(Position(offset, E)) is Verdict.DELIVER
    assert tracker.position == Position(4, E)


def test_messages_at_or_before_the_last_delivered_are_duplicates() -> None:
    tracker = StreamTracker(Position(10, E))
    assert tracker.classify(Position(10, E)) is Verdict.DUPLICATE
    assert tracker.classify(Position(3, E)) is Verdict.DUPLICATE
    assert tracker.duplicates == 2
    assert tracker.position == Position(10, E)


def test_a_gap_is_reported_and_not_remembered() -> None:
    tracker = StreamTracker(Position(10, E))
    assert tracker.classify(Position(12, E)) is Verdict.GAP
    # The position stays put, so a recovery asks for 11 onwards.
    assert tracker.position == Position(10, E)
    assert tracker.classify(Position(11, E)) is Verdict.DELIVER


def test_a_new_epoch_continues_only_from_its_first_message() -> None:
    tracker = StreamTracker(Position(7, E))
    assert tracker.classify(Position(1, "epoch-b")) is Verdict.DELIVER
    assert tracker.position == Position(1, "epoch-b")
    assert tracker.classify(Position(5, "epoch-c")) is Verdict.GAP
    assert tracker.position == Position(1, "epoch-b")


def test_an_empty_stream_position_accepts_the_first_message_of_any_epoch() -> None:
    # A server reports (0, "") for a channel whose stream does not exist yet.
    tracker = StreamTracker(Position(0, ""))
    assert tracker.classify(Position(1, E)) is Verdict.DELIVER


def test_without_positions_everything_is_delivered() -> None:
    tracker = StreamTracker()
    assert tracker.classify(None) is Verdict.DELIVER
    assert tracker.classify(None) is Verdict.DELIVER
    assert tracker.position is None
    # The first positioned message starts tracking.
    assert tracker.classify(Position(40, E)) is Verdict.DELIVER
    assert tracker.position == Position(40, E)


def test_reset_moves_the_position() -> None:
    tracker = StreamTracker(Position(9, E))
    tracker.reset(Position(50, "epoch-b"))
    assert tracker.classify(Position(50, "epoch-b")) is Verdict.DUPLICATE
    assert tracker.classify(Position(51, "epoch-b")) is Verdict.DELIVER


@given(st.lists(st.integers(min_value=1, max_value=30), max_size=200))
def test_any_arrival_order_delivers_a_gapless_increasing_run(offsets: list[int]) -> None:
    """Whatever mix of replays, live copies and reorderings arrives, what is delivered is each
    offset once, consecutive from the start position."""
    tracker = StreamTracker(Position(0, E))
    delivered = [
        offset for offset in offsets if tracker.classify(Position(offset, E)) is Verdict.DELIVER
    ]
    assert delivered == list(range(1, len(delivered) + 1))


def test_position_parsing_is_strict() -> None:
    assert Position.from_json({"offset": 3, "epoch": "x", "id": "m"}) == Position(3, "x")
    assert Position.from_json({"offset": True, "epoch": "x"}) is None
    assert Position.from_json({"offset": "3", "epoch": "x"}) is None
    assert Position.from_json({"offset": 3}) is None
    assert Position.from_json(None) is None
    assert Position(3, "x").to_json() == {"offset": 3, "epoch": "x"}
