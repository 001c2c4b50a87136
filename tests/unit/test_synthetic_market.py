"""The embedded synthetic market against the real SPY / QQQ minute bars in ../shared/data.

Tolerances (regular hours; synthetic over the real window 2025-07-01..10-31, seeds 0, 1, 2):
- 1-minute log-return std per half-hour: within a factor 1.5 of the real symbol's, bucket by bucket;
- U-shape: the first and last half-hour std above the mean of 11:30-14:00;
- excess kurtosis of 1-minute returns > 1 (real SPY ~14);
- |return| autocorrelation at lags 1, 5, 15: > 0.1 and within a factor 1.5 of the real symbol's;
- volume share per half-hour: within a factor 1.3 of real; first and last half-hour above every
  half-hour of 11:30-14:00;
- mean 15-minute range (% of price) and overnight gap std: within a factor 1.5 of real;
- 1-minute return correlation SPY~QQQ in [0.8, 0.95] (real 0.94), SPY~SPX > 0.97;
- momentum (past 10-minute vs next 5-minute return correlation) weakly positive, in (0, 0.15):
  trend regimes give momentum features some signal, reversals keep it small (real SPY: -0.04).
"""

from __future__ import annotations

from datetime import date, datetime, time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalper_ingestion.market_stats import (
    MarketStats,
    compute_stats,
    regular_hours,
    return_correlation,
)
from scalper_ingestion.quality import validate
from scalper_ingestion.sources.base import BarSource, conform_bars
from scalper_ingestion.sources.files import PolygonFileSource
from scalper_ingestion.sources.synthetic import SyntheticSource
from scalper_shared.core.calendar import NEW_YORK, classify_many
from scalper_shared.core.synthetic import QQQ, SPX, SPY, generate_bars

WINDOW = (date(2025, 7, 1), date(2025, 10, 31))
REAL_FILES = {SPY: ("SPY_1m_2025-07.csv.gz", "SPY_1m_2025-08_2025-10.csv.gz"),
              QQQ: ("QQQ_1m_2025-08_2025-10.csv.gz",)}
SEEDS = (0, 1, 2)
MARKETS = (*((seed, "none") for seed in SEEDS), *((seed, "momentum") for seed in SEEDS))
"""Every tolerance holds with the planted momentum edge on as well as without it."""
MIDDAY = slice(4, 8)  # half-hours 11:30 .. 14:00 (label-based, inclusive)
STD_FACTOR = RANGE_FACTOR = GAP_FACTOR = ACF_FACTOR = 1.5
VOLUME_SHARE_FACTOR = 1.3


@lru_cache(maxsize=2)
def real_stats(data: Path, symbol: str) -> tuple[MarketStats, pd.DataFrame]:
    frames = [batch for name in REAL_FILES[symbol] for batch in PolygonFileSource(data / name, symbol).batches()]
    bars = pd.concat(frames, ignore_index=True).drop_duplicates(subset=["start"])
    return compute_stats(bars), regular_hours(bars)


@lru_cache(maxsize=6)
def synthetic(market: tuple[int, str]) -> pd.DataFrame:
    seed, edge = market
    return pd.concat(generate_bars((SPY, QQQ, SPX), *WINDOW, seed, edge), ignore_index=True)


@lru_cache(maxsize=12)
def synthetic_stats(seed: tuple[int, str], symbol: str) -> MarketStats:
    bars = synthetic(seed)
    return compute_stats(bars[bars["symbol"] == symbol])


@lru_cache(maxsize=12)
def synthetic_regular(seed: tuple[int, str], symbol: str) -> pd.DataFrame:
    bars = synthetic(seed)
    return regular_hours(bars[bars["symbol"] == symbol])


def day_bars(day: date, seed: int = 0) -> pd.DataFrame:
    (bars,) = list(generate_bars((SPY, QQQ, SPX), day, day, seed))
    return bars


def within_factor(synthetic_value: float, real_value: float, factor: float) -> bool:
    return real_value / factor <= synthetic_value <= real_value * factor


# --- statistics against the real bars ---------------------------------------------------------------

@pytest.mark.parametrize("seed", MARKETS, ids=str)
@pytest.mark.parametrize("symbol", [SPY, QQQ])
def test_return_std_per_half_hour_is_within_a_factor_of_the_real_symbol(shared_data: Path, seed: tuple[int, str],
                                                                         symbol: str) -> None:
    real, _ = real_stats(shared_data, symbol)
    synth = synthetic_stats(seed, symbol)
    ratio = synth.return_std_by_half_hour / real.return_std_by_half_hour
    assert ratio.between(1 / STD_FACTOR, STD_FACTOR).all(), ratio.round(2).to_dict()


@pytest.mark.parametrize("seed", MARKETS, ids=str)
@pytest.mark.parametrize("symbol", [SPY, QQQ, SPX])
def test_intraday_volatility_is_u_shaped(seed: tuple[int, str], symbol: str) -> None:
    std = synthetic_stats(seed, symbol).return_std_by_half_hour
    midday = std.loc[MIDDAY].mean()
    assert std[0] > 1.2 * midday
    assert std[12] > midday


@pytest.mark.parametrize("seed", MARKETS, ids=str)
def test_returns_are_fat_tailed_and_volatility_clusters_like_real(shared_data: Path, seed: tuple[int, str]) -> None:
    for symbol in (SPY, QQQ):
        real, _ = real_stats(shared_data, symbol)
        synth = synthetic_stats(seed, symbol)
        assert synth.excess_kurtosis > 1.0
        for lag, value in synth.abs_return_autocorrelation.items():
            assert value > 0.1, (symbol, lag, value)
            assert within_factor(value, real.abs_return_autocorrelation[lag], ACF_FACTOR), (symbol, lag, value)


@pytest.mark.parametrize("seed", MARKETS, ids=str)
@pytest.mark.parametrize("symbol", [SPY, QQQ])
def test_volume_share_per_half_hour_is_u_shaped_like_real(shared_data: Path, seed: tuple[int, str], symbol: str) -> None:
    real, _ = real_stats(shared_data, symbol)
    share = synthetic_stats(seed, symbol).volume_share_by_half_hour
    assert share is not None and real.volume_share_by_half_hour is not None
    ratio = share / real.volume_share_by_half_hour
    assert ratio.between(1 / VOLUME_SHARE_FACTOR, VOLUME_SHARE_FACTOR).all(), ratio.round(2).to_dict()
    assert share[0] > share.loc[MIDDAY].max() and share[12] > share.loc[MIDDAY].max()
    assert share.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("seed", MARKETS, ids=str)
@pytest.mark.parametrize("symbol", [SPY, QQQ])
def test_15_minute_range_and_overnight_gaps_are_within_a_factor_of_real(shared_data: Path, seed: tuple[int, str],
                                                                         symbol: str) -> None:
    real, _ = real_stats(shared_data, symbol)
    synth = synthetic_stats(seed, symbol)
    assert within_factor(synth.mean_range_15m_pct, real.mean_range_15m_pct, RANGE_FACTOR)
    assert within_factor(synth.overnight_gap_std, real.overnight_gap_std, GAP_FACTOR)


def test_real_spy_and_qqq_are_correlated_as_the_tolerance_assumes(shared_data: Path) -> None:
    _, spy = real_stats(shared_data, SPY)
    _, qqq = real_stats(shared_data, QQQ)
    assert 0.8 <= return_correlation(spy, qqq) <= 0.97


@pytest.mark.parametrize("seed", MARKETS, ids=str)
def test_one_minute_returns_are_cross_correlated(seed: tuple[int, str]) -> None:
    spy, qqq, spx = (synthetic_regular(seed, symbol) for symbol in (SPY, QQQ, SPX))
    assert 0.8 <= return_correlation(spy, qqq) <= 0.95
    assert return_correlation(spy, spx) > 0.97


@pytest.mark.parametrize("seed", MARKETS, ids=str)
def test_price_levels_are_realistic_and_spx_is_ten_times_spy(seed: tuple[int, str]) -> None:
    spy, qqq, spx = (synthetic_regular(seed, symbol) for symbol in (SPY, QQQ, SPX))
    assert spy["close"].between(590, 710).all()
    assert qqq["close"].between(515, 640).all()
    ratio = spx["close"].to_numpy() / spy["close"].to_numpy()
    assert np.all(np.abs(ratio / 10.04 - 1) < 0.005)


@pytest.mark.parametrize("seed", MARKETS, ids=str)
def test_trend_regimes_give_momentum_a_weak_edge(seed: tuple[int, str]) -> None:
    for symbol in (SPY, QQQ):
        assert 0.0 < synthetic_stats(seed, symbol).momentum_correlation < 0.15


# --- determinism -----------------------------------------------------------------------------------

def test_the_same_seed_gives_identical_frames_and_another_seed_does_not() -> None:
    first = list(generate_bars((SPY, QQQ, SPX), date(2025, 7, 7), date(2025, 7, 8), 11))
    second = list(generate_bars((SPY, QQQ, SPX), date(2025, 7, 7), date(2025, 7, 8), 11))
    other = list(generate_bars((SPY, QQQ, SPX), date(2025, 7, 7), date(2025, 7, 8), 12))
    assert len(first) == len(second) == 2
    for a, b in zip(first, second, strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert not np.array_equal(first[0]["close"].to_numpy()[:100], other[0]["close"].to_numpy()[:100])


def test_a_day_is_the_same_however_the_range_is_split() -> None:
    july_alone = list(generate_bars((SPY, QQQ, SPX), date(2025, 7, 28), date(2025, 7, 31), 5))
    july_august = list(generate_bars((SPY, QQQ, SPX), date(2025, 7, 28), date(2025, 8, 5), 5))
    assert len(july_alone) == 4 and len(july_august) == 7
    for alone, joint in zip(july_alone, july_august[:4], strict=True):
        pd.testing.assert_frame_equal(alone, joint)
    (august_first,) = list(generate_bars((SPY, QQQ, SPX), date(2025, 8, 1), date(2025, 8, 1), 5))
    pd.testing.assert_frame_equal(august_first, july_august[4])


def test_asking_for_fewer_symbols_gives_the_same_bars_for_those_symbols() -> None:
    (everything,) = list(generate_bars((SPY, QQQ, SPX), date(2025, 7, 9), date(2025, 7, 9), 3))
    (qqq_only,) = list(generate_bars((QQQ,), date(2025, 7, 9), date(2025, 7, 9), 3))
    expected = everything[everything["symbol"] == QQQ].reset_index(drop=True)
    pd.testing.assert_frame_equal(qqq_only, expected)


# --- calendar and sessions ---------------------------------------------------------------------------

def test_no_bars_on_independence_day_and_an_early_close_on_the_eve() -> None:
    days = list(generate_bars((SPY, QQQ, SPX), date(2025, 7, 3), date(2025, 7, 7), 0))
    starts = pd.concat(days)["start"].dt.tz_convert(NEW_YORK).dt.date
    assert sorted(starts.unique()) == [date(2025, 7, 3), date(2025, 7, 7)]
    eve = days[0]
    regular = eve[eve["session"] == "regular"]
    assert regular.groupby("symbol").size().to_dict() == {SPY: 210, QQQ: 210, SPX: 210}
    last_post = eve.loc[eve["session"] == "post", "start"].max().tz_convert(NEW_YORK)
    assert time(16, 0) <= last_post.time() < time(17, 0)


def test_regular_hours_are_complete_and_extended_hours_thinner_and_labelled() -> None:
    bars = day_bars(date(2025, 7, 8))
    labels = [None if s is None else s.value for s in classify_many(pd.DatetimeIndex(bars["start"]))]
    assert labels == bars["session"].tolist()
    counts = bars.groupby(["symbol", "session"]).size()
    for symbol in (SPY, QQQ):
        assert counts[(symbol, "regular")] == 390
        assert 0.8 * 330 < counts[(symbol, "pre")] < 330
        assert 0.8 * 240 < counts[(symbol, "post")] < 240
        by_session = bars[bars["symbol"] == symbol].groupby("session")["volume"].median()
        assert by_session["pre"] < by_session["regular"] / 10
        assert by_session["post"] < by_session["regular"] / 10
    assert set(bars.loc[bars["symbol"] == SPX, "session"]) == {"regular"}
    first = bars["start"].min().tz_convert(NEW_YORK)
    assert first.time() >= time(4, 0)
    assert bars["start"].max().tz_convert(NEW_YORK) < datetime(2025, 7, 8, 20, 0, tzinfo=NEW_YORK)


def test_the_first_regular_bar_opens_at_the_end_of_the_pre_market_bridge() -> None:
    bars = day_bars(date(2025, 7, 8))
    spy = bars[bars["symbol"] == SPY]
    last_pre_close = spy.loc[spy["session"] == "pre", "close"].iloc[-1]
    first_regular = spy[spy["session"] == "regular"].iloc[0]
    assert abs(first_regular["open"] / last_pre_close - 1) < 0.002


# --- bar validity -----------------------------------------------------------------------------------

def test_bars_are_valid_priced_in_cents_and_pass_quality_checks() -> None:
    bars = pd.concat(generate_bars((SPY, QQQ, SPX), date(2025, 7, 1), date(2025, 7, 10), 4), ignore_index=True)
    pd.testing.assert_frame_equal(bars, conform_bars(bars))
    clean, quarantined = validate(bars)
    assert quarantined.empty and len(clean) == len(bars)
    prices = bars[["open", "high", "low", "close"]].to_numpy()
    assert np.allclose(prices, np.round(prices, 2), atol=1e-9, rtol=0)
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    etfs = bars[bars["symbol"] != SPX]
    assert (etfs["volume"] >= 1).all() and (etfs["volume"] % 1 == 0).all()
    assert etfs["vwap"].between(etfs["low"], etfs["high"]).all()
    assert (etfs["trade_count"] >= 1).all()
    assert not bars.duplicated(subset=["symbol", "start"]).any()
    assert bars["start"].is_monotonic_increasing
    assert set(bars["source"]) == {"synthetic"}


def test_the_index_has_no_volume_vwap_or_trade_count() -> None:
    spx = day_bars(date(2025, 7, 9)).query("symbol == @SPX")
    assert len(spx) == 390
    assert spx["volume"].isna().all() and spx["vwap"].isna().all() and spx["trade_count"].isna().all()


# --- interface ---------------------------------------------------------------------------------------

def test_synthetic_source_is_a_bar_source_yielding_one_batch_per_session() -> None:
    source = SyntheticSource((SPY,), date(2025, 7, 3), date(2025, 7, 7), seed=2)
    assert isinstance(source, BarSource)
    batches = list(source.batches())
    assert len(batches) == 2
    expected = list(generate_bars((SPY,), date(2025, 7, 3), date(2025, 7, 7), 2))
    for got, want in zip(batches, expected, strict=True):
        pd.testing.assert_frame_equal(got, want)


def test_unknown_symbols_and_days_outside_the_covered_range_are_refused() -> None:
    with pytest.raises(ValueError, match="IWM"):
        list(generate_bars(("SPY", "IWM"), date(2025, 7, 1), date(2025, 7, 1), 0))
    with pytest.raises(ValueError, match="1999"):
        list(generate_bars(("SPY",), date(1999, 12, 1), date(1999, 12, 1), 0))


# --- the planted edge --------------------------------------------------------------------------------

def test_the_momentum_edge_is_the_same_day_plus_drift_after_large_moves() -> None:
    from scalper_shared.core.edge import MOMENTUM_EDGE, momentum_edge_drift

    week = (date(2025, 7, 1), date(2025, 7, 31))
    plain = pd.concat(generate_bars((SPY, QQQ, SPX), *week, 0), ignore_index=True)
    edged = pd.concat(generate_bars((SPY, QQQ, SPX), *week, 0, "momentum"), ignore_index=True)
    assert plain["start"].tolist() == edged["start"].tolist()
    regular = (plain["session"] == "regular") & (plain["symbol"] == SPY)
    assert not np.array_equal(plain.loc[regular, "close"], edged.loc[regular, "close"])
    pre = plain["session"] == "pre"
    pd.testing.assert_frame_equal(plain[pre], edged[pre])      # the edge lives in regular hours only
    sigma = np.full(60, 1e-4)
    base = np.zeros(60)
    base[10:15] = 1.5                    # 7.5 sigma in 5 minutes: beyond 3.25 x sqrt(5) only at minute 14
    drift = momentum_edge_drift(sigma, base)
    assert drift[:15].tolist() == [0.0] * 15
    assert drift[15:15 + MOMENTUM_EDGE.drift_minutes].tolist() == [MOMENTUM_EDGE.drift_sigma] * MOMENTUM_EDGE.drift_minutes
    assert not drift[15 + MOMENTUM_EDGE.drift_minutes:].any()  # the drift it planted does not trigger more
    assert momentum_edge_drift(sigma, -base)[15] == -MOMENTUM_EDGE.drift_sigma


def test_an_unknown_edge_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown synthetic edge 'lucky'"):
        list(generate_bars((SPY,), date(2025, 7, 9), date(2025, 7, 9), 3, "lucky"))
