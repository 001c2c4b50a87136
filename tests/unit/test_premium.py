from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest
from pydantic import ValidationError

from scalper_shared.core import premium as pm
from scalper_shared.core.calendar import trading_day
from scalper_shared.schema.messages import OptionRight


def test_bs_atm_one_year_call_matches_reference_value() -> None:
    # 100 * (2 N(0.1) - 1) with N(0.1) = 0.5398278
    assert pm.bs_price(100.0, 100.0, 1.0, 0.2, OptionRight.CALL) == pytest.approx(7.965567, abs=1e-6)


def test_bs_with_rate_matches_textbook_values() -> None:
    assert pm.bs_price(100.0, 100.0, 1.0, 0.2, "call", rate=0.05) == pytest.approx(10.4506, abs=1e-4)
    assert pm.bs_price(100.0, 100.0, 1.0, 0.2, "put", rate=0.05) == pytest.approx(5.5735, abs=1e-4)


@pytest.mark.parametrize(("spot", "strike", "t", "vol", "rate"),
                         [(100, 95, 0.5, 0.3, 0.02), (5000, 5010, 1e-4, 0.25, 0.0), (430, 430, 2e-3, 0.8, 0.05)])
def test_put_call_parity_holds(spot: float, strike: float, t: float, vol: float, rate: float) -> None:
    call = pm.bs_price(spot, strike, t, vol, "call", rate)
    put = pm.bs_price(spot, strike, t, vol, "put", rate)
    assert call - put == pytest.approx(spot - strike * math.exp(-rate * t), abs=1e-9)


def test_zero_dte_atm_price_matches_hand_approximation() -> None:
    # ATM, r=0: C ~= 0.39894 * S * vol * sqrt(T); 60 trading minutes, vol 0.27 -> 1.3307
    t = pm.time_to_expiry_years(60)
    assert t == pytest.approx(60 / (252 * 390))
    assert pm.bs_price(500.0, 500.0, t, 0.27, "call") == pytest.approx(1.3307, abs=2e-4)


def test_zero_time_or_vol_gives_intrinsic_value() -> None:
    assert pm.bs_price(102.0, 100.0, 0.0, 0.2, "call") == pytest.approx(2.0)
    assert pm.bs_price(102.0, 100.0, 0.01, 0.0, "put") == pytest.approx(0.0)


def test_bs_is_vectorised_with_mixed_rights() -> None:
    prices = pm.bs_price([100.0, 100.0], [100.0, 100.0], 1.0, 0.2, np.array([True, False]), rate=0.05)
    assert prices.shape == (2,)
    assert prices == pytest.approx([10.4506, 5.5735], abs=1e-4)


def test_unknown_right_is_rejected() -> None:
    with pytest.raises(ValueError, match="'call' or 'put'"):
        pm.bs_price(100, 100, 1, 0.2, "straddle")


def test_time_to_expiry_is_floored_at_one_minute() -> None:
    assert pm.time_to_expiry_years([0.0, -5.0, 1.0, 30.0]) == pytest.approx(np.array([1, 1, 1, 30]) / 98280)


def test_minutes_to_close_uses_the_early_close_from_the_calendar() -> None:
    day = trading_day(date(2024, 11, 29))  # day after Thanksgiving: 13:00 ET close
    assert day is not None and day.early_close
    assert pm.minutes_to_close(day.open, day.close) == pytest.approx(210.0)


def test_time_of_day_curve_interpolates_knots() -> None:
    assert pm.time_of_day_factor([0, 15, 90, 330, 500]) == pytest.approx([1.30, 1.20, 1.00, 1.00, 1.15])


def test_implied_vol_applies_the_calibration_multiplier() -> None:
    assert pm.implied_vol(0.20, 90) == pytest.approx(1.8 * 0.20)
    plain = pm.PremiumModelConfig(calibration_multiplier=1.0)
    assert pm.implied_vol(0.20, 90, plain) == pytest.approx(0.20)


def test_implied_vol_floor_cap_and_missing_history() -> None:
    assert pm.implied_vol(0.01, 90) == pytest.approx(1.8 * 0.10)
    assert pm.implied_vol(5.0, 90) == pytest.approx(1.8 * 3.0)
    assert pm.implied_vol(np.nan, 90) == pytest.approx(1.8 * 0.10)


def test_config_is_frozen_and_validated() -> None:
    with pytest.raises(ValidationError):
        pm.DEFAULT_PREMIUM_CONFIG.calibration_multiplier = 2.0  # type: ignore[misc]
    with pytest.raises(ValidationError, match="vol_floor"):
        pm.PremiumModelConfig(vol_floor=0.5, vol_cap=0.4)
    assert pm.PremiumModelConfig.model_validate(pm.DEFAULT_PREMIUM_CONFIG.model_dump()) == pm.DEFAULT_PREMIUM_CONFIG


def test_realised_vol_is_annualised_rms_of_log_returns() -> None:
    closes = [100.0, 100.1, 100.0]
    r1, r2 = math.log(100.1 / 100.0), math.log(100.0 / 100.1)
    expected = math.sqrt((r1**2 + r2**2) / 2 * 98280)
    assert pm.annualised_realised_vol(closes) == pytest.approx(expected)


def test_rolling_realised_vol_matches_window_by_window() -> None:
    rng = np.random.default_rng(7)
    closes = 500 * np.exp(np.cumsum(rng.normal(0, 5e-4, 60)))
    rolling = pm.rolling_realised_vol(closes, window=10)
    assert math.isnan(rolling[0])
    for i in (1, 5, 9, 10, 35, 59):
        start = max(0, i - 9)
        assert rolling[i] == pytest.approx(pm.annualised_realised_vol(closes[start:i + 1]))


@pytest.mark.parametrize(("symbol", "spot", "strike"), [
    ("SPY", 500.49, 500.0), ("SPY", 500.5, 501.0), ("QQQ", 431.7, 432.0),
    ("SPX", 5002.4, 5000.0), ("I:SPX", 5002.5, 5005.0), ("I:SPX", 5007.6, 5010.0),
])
def test_atm_strike_uses_the_symbol_grid(symbol: str, spot: float, strike: float) -> None:
    assert pm.atm_strike(symbol, spot) == strike


def test_atm_strike_vectorised_over_symbols() -> None:
    assert pm.atm_strike(["SPY", "QQQ", "SPX"], [500.2, 430.6, 5003.0]) == pytest.approx([500, 431, 5005])


def test_unknown_symbol_names_itself() -> None:
    with pytest.raises(ValueError, match="'TSLA'"):
        pm.atm_strike("TSLA", 250.0)


def test_tick_sizes_per_symbol() -> None:
    assert pm.tick_size("SPY", [0.5, 5.0]) == pytest.approx([0.01, 0.01])
    assert pm.tick_size("SPX", [2.95, 3.0, 20.0]) == pytest.approx([0.05, 0.10, 0.10])


@pytest.mark.parametrize(("symbol", "mid", "bid", "ask"), [
    ("SPY", 1.3307, 1.32, 1.34),   # width max(0.01, 1% * 1.33) = 0.0133 -> 2 ticks
    ("SPY", 0.37, 0.37, 0.38),     # width = min spread, 1 tick
    ("QQQ", 2.00, 1.99, 2.02),     # 1.5% * 2.00 = 0.03 -> 3 ticks
    ("SPX", 2.00, 1.95, 2.05),     # min spread 0.10 = 2 ticks of 0.05
    ("SPX", 20.00, 19.90, 20.20),  # 1.5% * 20 = 0.30 = 3 ticks of 0.10
    ("SPY", 0.002, 0.00, 0.01),    # a worthless option bids 0
])
def test_spread_arithmetic_and_min_tick(symbol: str, mid: float, bid: float, ask: float) -> None:
    got_bid, got_ask = pm.spread_quote(symbol, mid)
    assert (got_bid, got_ask) == (pytest.approx(bid), pytest.approx(ask))
    assert got_bid <= mid <= got_ask


def test_quote_prices_a_zero_dte_atm_call_by_hand() -> None:
    # minute 330 (15:00 ET): tod factor 1.0, iv = 1.8 * 0.15 = 0.27; 60 minutes left -> mid 1.3307
    bid, mid, ask = pm.quote("SPY", 500.0, 500.0, "call", 60, 0.15, 330)
    assert mid == pytest.approx(1.3307, abs=2e-4)
    assert (bid, ask) == (pytest.approx(1.32), pytest.approx(1.34))


def test_fixed_strike_goes_in_and_out_of_the_money() -> None:
    strike = pm.atm_strike("SPY", 500.2)
    spots = np.array([498.0, 500.2, 502.0])
    _, call_mid, _ = pm.quote("SPY", spots, strike, "call", 60, 0.15, 330)
    _, put_mid, _ = pm.quote("SPY", spots, strike, "put", 60, 0.15, 330)
    assert np.all(np.diff(call_mid) > 0) and np.all(np.diff(put_mid) < 0)
    assert call_mid[2] > 502.0 - strike  # time value on top of intrinsic
    assert put_mid[0] > strike - 498.0


def test_premium_decays_towards_the_close_and_stays_positive_at_the_floor() -> None:
    _, mids, _ = pm.quote("SPX", 5000.0, 5000.0, "put", [240, 60, 5, 0], 0.15, 330)
    assert np.all(np.diff(mids) < 0)
    assert mids[-1] > 0
    assert mids[-1] == pytest.approx(pm.quote("SPX", 5000.0, 5000.0, "put", 1, 0.15, 330)[1])


def test_quote_is_vectorised_over_environments_and_matches_scalar_calls() -> None:
    symbols = ["SPY", "QQQ", "SPX", "SPY"]
    spots = np.array([500.3, 430.2, 5003.0, 499.1])
    strikes = np.array([500.0, 430.0, 5005.0, 500.0])
    rights = np.array([True, False, True, False])
    minutes = np.array([200.0, 45.0, 3.0, 390.0])
    vols = np.array([0.12, 0.2, np.nan, 0.3])
    tod = np.array([190.0, 345.0, 387.0, 0.0])
    bids, mids, asks = pm.quote(symbols, spots, strikes, rights, minutes, vols, tod)
    for i, symbol in enumerate(symbols):
        right = "call" if rights[i] else "put"
        assert pm.quote(symbol, spots[i], strikes[i], right, minutes[i], vols[i], tod[i]) == \
            (pytest.approx(bids[i]), pytest.approx(mids[i]), pytest.approx(asks[i]))


def test_commission_and_contract_multiplier_arithmetic() -> None:
    assert pm.commission(10) == pytest.approx(6.50)
    assert pm.premium_cash(2.00, 10) == pytest.approx(2000.0)
    # 10 contracts bought at 2.00, sold at 2.30: 0.30 * 10 * 100 - 2 * 6.50
    assert pm.round_trip_pnl(2.00, 2.30, 10) == pytest.approx(287.0)
    assert pm.round_trip_pnl([2.00, 2.00], [1.70, 2.00], [1, 10]) == pytest.approx([-31.30, -13.0])
