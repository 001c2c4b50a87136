"""The replay clock: replay time moved by the replay driver, running on with the wall clock between moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scalper_shared.clock import ReplayClock

START = datetime(2025, 9, 25, 13, 30, tzinfo=UTC)


class Wall:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_the_replay_clock_runs_with_the_wall_clock_from_where_the_replay_moved_it() -> None:
    wall = Wall()
    clock = ReplayClock(START, monotonic=wall)
    wall.t += 0.04
    assert clock.now() == START + timedelta(milliseconds=40)
    clock.advance_to(START + timedelta(minutes=1))
    assert clock.now() == START + timedelta(minutes=1)
    wall.t += 2.5
    assert clock.now() == START + timedelta(minutes=1, seconds=2.5)
    assert clock.seconds() == (START + timedelta(minutes=1, seconds=2.5)).timestamp()


def test_the_replay_clock_never_goes_back() -> None:
    wall = Wall()
    clock = ReplayClock(START, monotonic=wall)
    wall.t += 90
    clock.advance_to(START + timedelta(minutes=1))  # already later: ignored
    assert clock.now() == START + timedelta(seconds=90)


def test_the_replay_clock_needs_an_aware_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ReplayClock(datetime(2025, 9, 25, 13, 30))
