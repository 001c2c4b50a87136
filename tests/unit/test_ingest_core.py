"""Pure parts of the ingestion wiring: speed factors and pacing, symbols, results, quality of symbols."""

from __future__ import annotations

import pandas as pd
import pytest

from scalper_ingestion.quality import INVALID_SYMBOL, validate
from scalper_ingestion.replay import Pacer, parse_speed
from scalper_ingestion.settings import parse_symbols
from scalper_ingestion.sources.base import conform_bars
from scalper_ingestion.writer import WriteResult

START = pd.Timestamp("2025-07-01 13:30", tz="UTC")


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


@pytest.mark.parametrize(("text", "speed"), [("max", 0.0), ("MAX", 0.0), ("0", 0.0), ("1", 1.0), ("60", 60.0),
                                             ("2.5", 2.5)])
def test_speed_words_and_factors(text: str, speed: float) -> None:
    assert parse_speed(text) == speed


@pytest.mark.parametrize("text", ["-1", "fast", "nan"])
def test_bad_speeds_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_speed(text)


def test_pacer_spaces_minutes_by_sixty_seconds_over_the_speed() -> None:
    clock = FakeTime()
    pacer = Pacer(60.0, monotonic=clock.monotonic, sleep=clock.sleep)
    for offset in (0, 1, 2, 5):
        pacer.wait_for(START + pd.Timedelta(minutes=offset))
    assert clock.sleeps == [1.0, 1.0, 3.0]


def test_pacer_only_waits_for_what_is_left_after_slow_publishing() -> None:
    clock = FakeTime()
    pacer = Pacer(1.0, monotonic=clock.monotonic, sleep=clock.sleep)
    pacer.wait_for(START)
    clock.now += 45.0  # publishing took 45 s
    pacer.wait_for(START + pd.Timedelta(minutes=1))
    assert clock.sleeps == [15.0]


def test_max_speed_never_sleeps_and_restart_forgets_the_origin() -> None:
    clock = FakeTime()
    fastest = Pacer(0.0, monotonic=clock.monotonic, sleep=clock.sleep)
    for offset in range(3):
        fastest.wait_for(START + pd.Timedelta(minutes=offset))
    paced = Pacer(60.0, monotonic=clock.monotonic, sleep=clock.sleep)
    paced.wait_for(START)
    paced.restart()
    paced.wait_for(START + pd.Timedelta(days=1))  # next day: a new origin, no overnight wait
    assert clock.sleeps == []


def test_symbols_are_parsed_deduplicated_and_checked() -> None:
    assert parse_symbols("SPY, QQQ,I:SPX,SPY") == ("SPY", "QQQ", "I:SPX")
    for bad in ("spy", "SPY;QQQ", "", "SPY,,QQQ", "A" * 17):
        with pytest.raises(ValueError):
            parse_symbols(bad)


def test_a_symbol_the_wire_schema_refuses_is_quarantined() -> None:
    frame = conform_bars(pd.DataFrame({
        "symbol": ["spy", "SPY"], "start": [START, START], "open": [1.0, 1.0], "high": [1.0, 1.0],
        "low": [1.0, 1.0], "close": [1.0, 1.0], "session": ["regular", "regular"], "source": ["t", "t"]}))
    clean, quarantined = validate(frame)
    assert clean["symbol"].tolist() == ["SPY"]
    assert quarantined["reason"].tolist() == [INVALID_SYMBOL]


def test_write_results_add_up_with_their_reasons() -> None:
    total = WriteResult(10, 5, 1, 2, 2, 6, {"off_calendar": 2}) + WriteResult(3, 1, 0, 0, 2, 1,
                                                                                {"off_calendar": 1, "x": 1})
    assert total == WriteResult(13, 6, 1, 2, 4, 7, {"off_calendar": 3, "x": 1})
    assert total.stored == 9


