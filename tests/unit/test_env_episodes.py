"""Episode data: symbol-sessions built from bars with the shared feature code."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from scalper_shared.core.features import BarArrays, strong_setup, symbol_features
from scalper_shared.core.synthetic import generate_bars
from scalper_shared.db import bars, bulk_upsert, make_engine
from scalper_trainer.env import (
    EpisodeSet,
    bars_by_symbol,
    episodes_from_bars,
    episodes_from_frame,
    load_episodes,
)

START, END = date(2024, 11, 27), date(2024, 12, 2)   # includes the 2024-11-29 early close


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return pd.concat(list(generate_bars(("SPY", "QQQ", "I:SPX"), START, END, seed=4)), ignore_index=True)


def test_episodes_carry_the_shared_batch_features_of_each_symbol_session(frame: pd.DataFrame) -> None:
    by_symbol = bars_by_symbol(frame)
    episodes = episodes_from_bars(by_symbol)
    assert episodes.symbols == ("I:SPX",) * 3 + ("QQQ",) * 3 + ("SPY",) * 3
    expected = symbol_features(by_symbol["QQQ"], reference=by_symbol["I:SPX"], peer=by_symbol["SPY"])
    qqq = slice(int(episodes.offsets[3]), int(episodes.offsets[6]))
    np.testing.assert_array_equal(episodes.features[qqq], expected.values.astype(np.float32))
    np.testing.assert_array_equal(episodes.setup[qqq], strong_setup(expected.values))


def test_clock_columns_add_up_to_the_session_length_early_close_included(frame: pd.DataFrame) -> None:
    episodes = episodes_from_frame(frame)
    for e in range(episodes.n_episodes):
        rows = slice(int(episodes.offsets[e]), int(episodes.offsets[e + 1]))
        total = episodes.minutes_to_close[rows] + episodes.minute_of_day[rows]
        length = 210 if episodes.days[e] == date(2024, 11, 29) else 390
        assert np.all(total == length), (episodes.symbols[e], episodes.days[e])
        assert episodes.minute_of_day[rows][0] == 1 and episodes.minutes_to_close[rows][-1] == 0


def test_underlying_close_is_the_bar_close(frame: pd.DataFrame) -> None:
    episodes = episodes_from_frame(frame)
    spy = frame[(frame.symbol == "SPY") & (frame.session == "regular")]
    e = episodes.symbols.index("SPY")
    np.testing.assert_array_equal(episodes.close[episodes.offsets[e]:episodes.offsets[e + 1]],
                                  spy[spy.start.dt.tz_convert("America/New_York").dt.date == episodes.days[e]]
                                  .close.to_numpy())


def test_select_and_concat_round_trip(frame: pd.DataFrame) -> None:
    episodes = episodes_from_frame(frame)
    first, rest = episodes.select([0, 1]), episodes.select(range(2, episodes.n_episodes))
    joined = EpisodeSet.concat([first, rest])
    for name in ("features", "close", "minutes_to_close", "minute_of_day", "setup", "offsets"):
        np.testing.assert_array_equal(getattr(joined, name), getattr(episodes, name))
    assert joined.days == episodes.days and joined.symbols == episodes.symbols


def test_real_spy_month_gives_one_episode_per_session(shared_data) -> None:
    spy = BarArrays.from_csv(shared_data / "SPY_1m_2025-07.csv.gz")
    episodes = episodes_from_bars({"SPY": spy})
    assert episodes.n_episodes == 21
    early = episodes.days.index(date(2025, 7, 3))
    assert episodes.minutes_to_close[episodes.offsets[early]] + 1 == 210
    assert np.isfinite(episodes.features).all()


@pytest.mark.integration
def test_load_episodes_reads_the_bars_table(migrated_database_url: str, frame: pd.DataFrame) -> None:
    engine = make_engine(migrated_database_url)
    try:
        with engine.begin() as connection:
            bulk_upsert(connection, bars, frame)
    finally:
        engine.dispose()
    loaded = load_episodes(migrated_database_url, ["SPY", "QQQ"], date(2024, 11, 29), END)
    expected = episodes_from_frame(frame[frame.symbol.isin(["SPY", "QQQ"])
                                         & (frame.start >= pd.Timestamp("2024-11-29", tz="America/New_York"))])
    assert loaded.days == expected.days and loaded.symbols == expected.symbols
    np.testing.assert_array_equal(loaded.features, expected.features)
    np.testing.assert_array_equal(loaded.close, expected.close)
    with pytest.raises(ValueError, match="no bars"):
        load_episodes(migrated_database_url, ["SPY"], date(2020, 1, 6), date(2020, 1, 7))
