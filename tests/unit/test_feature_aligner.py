"""Minute alignment of the feature service: complete minutes in order, skips, timeouts, late bars."""

from __future__ import annotations

from datetime import UTC, datetime

from scalper_features.aligner import MinuteAligner
from scalper_shared.core.features import BarInput

OPEN = int(datetime(2025, 8, 12, 13, 30, tzinfo=UTC).timestamp() * 1000)  # 09:30 New York


def bar(minute: int, close: float = 100.0) -> BarInput:
    return BarInput(OPEN + minute * 60_000, close, close, close, close, 1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_minute_is_released_once_every_symbol_has_its_bar() -> None:
    aligner = MinuteAligner(["SPY", "QQQ"], wait_s=5, clock=Clock())
    aligner.add("SPY", bar(0))
    assert aligner.release() == []
    aligner.add("QQQ", bar(0))
    [released] = aligner.release()
    assert released.minute == bar(0).t and set(released.bars) == {"SPY", "QQQ"} and not released.timed_out


def test_a_symbol_that_skipped_a_minute_releases_it_when_its_next_bar_comes() -> None:
    aligner = MinuteAligner(["SPY", "QQQ"], wait_s=5, clock=Clock())
    aligner.add("SPY", bar(0))
    aligner.add("SPY", bar(1))
    aligner.add("QQQ", bar(1))
    assert [(r.minute, sorted(r.bars)) for r in aligner.release()] == [(bar(0).t, ["SPY"]), (bar(1).t, ["QQQ", "SPY"])]


def test_a_silent_symbol_holds_a_minute_only_until_the_wait_expires() -> None:
    clock = Clock()
    aligner = MinuteAligner(["SPY", "QQQ"], wait_s=5, clock=clock)
    aligner.add("SPY", bar(0))
    clock.now = 4.9
    assert aligner.release() == []
    clock.now = 5.0
    [released] = aligner.release()
    assert released.timed_out and set(released.bars) == {"SPY"}
    late = aligner.add("QQQ", bar(0))
    assert late is not None and late.bars == {"QQQ": bar(0)}


def test_bars_outside_regular_hours_or_of_other_symbols_are_ignored() -> None:
    aligner = MinuteAligner(["SPY"], wait_s=5, clock=Clock())
    assert aligner.add("SPY", bar(-1)) is None and aligner.add("IWM", bar(0)) is None
    assert aligner.pending_minutes == 0


def test_a_corrected_bar_of_a_pending_minute_replaces_the_first_one() -> None:
    aligner = MinuteAligner(["SPY", "QQQ"], wait_s=5, clock=Clock())
    aligner.add("SPY", bar(0, 100.0))
    aligner.add("SPY", bar(0, 101.0))
    aligner.add("QQQ", bar(0))
    [released] = aligner.release()
    assert released.bars["SPY"].c == 101.0
