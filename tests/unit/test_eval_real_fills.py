"""``--fills real``: fills repriced from real option bars where they exist, the model's otherwise."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from scalper_shared.core.premium import round_trip_pnl, spread_quote
from scalper_trainer.env import EnvConfig, MarketTape, synthetic_episodes
from scalper_trainer.env.core import ENTRY
from scalper_trainer.evaluation import RandomMaskedPolicy, evaluate
from scalper_trainer.evaluation.real_fills import _bar_start, reprice_fills

CONFIG = EnvConfig()


@pytest.fixture(scope="module")
def tape() -> MarketTape:
    return MarketTape(synthetic_episodes(date(2025, 7, 7), date(2025, 7, 8), seed=4, symbols=("SPY",)), CONFIG)


def test_entries_with_a_real_bar_pay_the_spread_around_its_close_and_the_pnl_follows(tape: MarketTape) -> None:
    result = evaluate(RandomMaskedPolicy(), tape, CONFIG, seed=3)
    entries = [f for f in result.fills if f.reason == ENTRY]
    assert len(entries) > 5
    first = entries[0]
    # the contract of the first entry: the ATM strike of its bar, the day's same-day SPY call or put
    strike = round(float(tape.close[first.row]))
    day = tape.episodes.days[first.episode]
    ticker = f"O:SPY{day:%y%m%d}{'C' if first.side == 1 else 'P'}{strike * 1000:08d}"
    closes = {(ticker, _bar_start(tape, first)): 2.00}
    repriced, summary = reprice_fills(result, tape, CONFIG, closes)
    assert summary == {"mode": "real", "fills": len(result.fills), "real": 1, "model": len(result.fills) - 1,
                       "real_share": pytest.approx(1 / len(result.fills))}
    _, ask = spread_quote("SPY", 2.00, CONFIG.premium, tape.minutes_to_close[first.row])
    new_first = repriced.fills[result.fills.index(first)]
    assert new_first.price == pytest.approx(float(ask)) and new_first.price != first.price
    exit_fill = next(f for f in repriced.fills[result.fills.index(first) + 1:] if f.episode == first.episode)
    assert exit_fill.pnl == pytest.approx(float(round_trip_pnl(float(ask), exit_fill.price, exit_fill.contracts)))
    assert repriced.trades[0].entry_price == pytest.approx(float(ask))
    assert repriced.episode_pnl.sum() == pytest.approx(sum(t.pnl for t in repriced.trades))
    untouched = [(a.price, a.pnl) for a, b in zip(result.fills, repriced.fills, strict=True) if a.episode != first.episode]
    assert untouched == [(b.price, b.pnl) for a, b in zip(result.fills, repriced.fills, strict=True)
                         if a.episode != first.episode]


def test_without_real_bars_nothing_changes(tape: MarketTape) -> None:
    result = evaluate(RandomMaskedPolicy(), tape, CONFIG, seed=3)
    repriced, summary = reprice_fills(result, tape, CONFIG, {})
    assert summary["real"] == 0 and summary["real_share"] == 0.0
    assert np.array_equal(repriced.episode_pnl, result.episode_pnl)
    assert [f.price for f in repriced.fills] == [f.price for f in result.fills]


def test_bar_start_is_the_fill_bars_opening_minute(tape: MarketTape) -> None:
    result = evaluate(RandomMaskedPolicy(), tape, CONFIG, seed=3)
    fill = result.fills[0]
    start = _bar_start(tape, fill)
    offset = fill.row - int(tape.first_row[fill.episode]) + int(tape.episodes.offsets[fill.episode])
    # 2025-07-07 (EDT): 09:30 ET = 13:30 UTC; minute_of_day counts at the bar's close
    minutes = tape.episodes.minute_of_day[offset]
    assert (start.hour * 60 + start.minute) - (13 * 60 + 30) == minutes - 1
