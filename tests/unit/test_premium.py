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


def test_time_to_expiry_is_zero_at_and_after_the_close() -> None:
    assert pm.time_to_expiry_years([0.0, -5.0, 1.0, 30.0]) == pytest.approx(np.array([0, 0, 1, 30]) / 98280)


def test_minutes_to_close_uses_the_early_close_from_the_calendar() -> None:
    day = trading_day(date(2024, 11, 29))  # day after Thanksgiving: 13:00 ET close
    assert day is not None and day.early_close
    assert pm.minutes_to_close(day.open, day.close) == pytest.approx(210.0)


CURVED = pm.PremiumModelConfig(time_of_day_curve=((0, 1.30), (30, 1.10), (90, 1.00), (300, 0.95), (390, 1.15)))


def test_time_of_day_curve_interpolates_knots() -> None:
    assert pm.time_of_day_factor([0, 15, 90, 345, 500], CURVED) == pytest.approx([1.30, 1.20, 1.00, 1.05, 1.15])


FLAT = pm.PremiumModelConfig(calibration_multiplier=1.5, time_of_day_curve=((0.0, 1.0),), vol_floor=0.10,
                             vol_cap=2.0, vol_prior=0.12, skew_slope=0.0, skew_curvature=0.0)


def test_implied_vol_applies_the_calibration_multiplier_and_the_curve() -> None:
    assert pm.implied_vol(0.20, 90, FLAT) == pytest.approx(1.5 * 0.20)
    curved = CURVED.model_copy(update={"calibration_multiplier": 0.8})
    assert pm.implied_vol(0.20, 15, curved) == pytest.approx(0.8 * 0.20 * 1.20)


def test_the_floor_and_cap_apply_to_the_final_implied_vol() -> None:
    # 1.5 x 0.05 = 0.075 is under the 0.10 floor: 0.10 (a floor before the multiplier would give 0.15)
    assert pm.implied_vol(0.05, 90, FLAT) == pytest.approx(0.10)
    assert pm.implied_vol(1.5, 90, FLAT) == pytest.approx(2.0)
    # no vol input at all: the prior, 1.5 x 0.12
    assert pm.implied_vol(np.nan, 90, FLAT) == pytest.approx(0.18)


def test_config_is_frozen_and_validated() -> None:
    with pytest.raises(ValidationError):
        pm.DEFAULT_PREMIUM_CONFIG.calibration_multiplier = 2.0  # type: ignore[misc]
    with pytest.raises(ValidationError, match="vol_floor"):
        pm.PremiumModelConfig(vol_floor=0.5, vol_cap=0.4)
    assert pm.PremiumModelConfig.model_validate(pm.DEFAULT_PREMIUM_CONFIG.model_dump()) == pm.DEFAULT_PREMIUM_CONFIG
    assert pm.PremiumModelConfig.model_validate_json(pm.DEFAULT_PREMIUM_CONFIG.model_dump_json()) == \
        pm.DEFAULT_PREMIUM_CONFIG


EWMA = pm.PremiumModelConfig(vol_halflife_minutes=1.0, vol_outlier_clip=4.0, vol_prior=0.20)


def test_ewma_step_by_hand() -> None:
    # half-life 1 minute: alpha = 0.5; prior 0.20 -> per-minute variance 0.04 / 98280
    assert EWMA.ewma_alpha == pytest.approx(0.5)
    var0 = 0.04 / 98280
    assert pm.ewma_vol_step(var0, 0.001, EWMA) == pytest.approx(0.5 * var0 + 0.5 * 1e-6)
    # a 1% return is clipped at 4 standard deviations: r**2 -> 16 var0
    assert pm.ewma_vol_step(var0, 0.01, EWMA) == pytest.approx(0.5 * var0 + 0.5 * 16 * var0)
    assert pm.ewma_vol_step(var0, math.nan, EWMA) == var0


def test_robust_ewma_vol_carries_across_sessions_and_skips_the_overnight_gap() -> None:
    closes = [100.0, 100.1, 100.0, 110.0, 110.11]          # a 10% overnight gap before row 3
    new_session = [True, False, False, True, False]
    vols, last = pm.robust_ewma_vol(closes, new_session, EWMA)
    var = 0.04 / 98280
    expected = [var]
    for r in (math.log(100.1 / 100.0), math.log(100.0 / 100.1), math.nan, math.log(110.11 / 110.0)):
        var = pm.ewma_vol_step(var, r, EWMA)
        expected.append(var)
    assert vols == pytest.approx(np.sqrt(np.array(expected) * 98280))
    assert vols[3] == vols[2]                               # the open neither restarts nor jumps
    assert last == pytest.approx(expected[-1])


def test_one_outlier_return_moves_the_implied_vol_by_less_than_the_stated_bound() -> None:
    # default config: half-life 240 minutes, clip 4 sd -> one return, however large, multiplies the
    # vol input (and the implied vol, linear in it) by at most sqrt(1 + a (16 - 1)) = 1.0214
    bound = pm.max_single_return_vol_ratio()
    assert bound == pytest.approx(math.sqrt(1 + (1 - 0.5 ** (1 / 240)) * 15))
    assert bound < 1.025
    rng = np.random.default_rng(3)
    closes = 600 * np.exp(np.cumsum(rng.normal(0, 4e-4, 300)))
    jumped = np.concatenate([closes, [closes[-1] * 1.014]])  # the 1.4% one-minute jump
    vols, _ = pm.robust_ewma_vol(jumped)
    before = pm.implied_vol(vols[-2], 200)
    after = pm.implied_vol(vols[-1], 200)
    assert after / before <= bound + 1e-12
    assert after / before > 1.0
    unclipped = pm.DEFAULT_PREMIUM_CONFIG.model_copy(update={"vol_outlier_clip": 1e6})
    raw, _ = pm.robust_ewma_vol(jumped, config=unclipped)
    assert raw[-1] / raw[-2] > 1.3                           # what the clip prevents


def test_skew_factor_by_hand_and_puts_richer_than_calls() -> None:
    skewed = pm.PremiumModelConfig(skew_slope=-0.1, skew_curvature=0.05, skew_z_limit=3.0)
    assert pm.skew_factor([-2.0, 0.0, 2.0, -5.0], skewed) == pytest.approx(
        [math.exp(0.4), 1.0, math.exp(0.0), math.exp(0.3 + 0.45)])
    t = pm.time_to_expiry_years(120)
    z = pm.standardised_moneyness(100.0, 99.0, t, 0.15)
    assert z == pytest.approx(math.log(0.99) / (0.15 * math.sqrt(120 / 98280)))
    put_vol = pm.strike_vol(100.0, 99.0, t, 0.15, skewed)
    call_vol = pm.strike_vol(100.0, 101.0, t, 0.15, skewed)
    assert put_vol > 0.15 and put_vol > call_vol


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


SPREADS = pm.PremiumModelConfig(symbols={
    **pm.DEFAULT_SYMBOL_SPECS,
    "SPX": pm.SymbolOptionSpec(strike_step=5, tick_below=0.05, tick_above=0.10, tick_threshold=3.0,
                               spread_abs=0.15, spread_pct=0.0275, min_spread=0.05, last_hour_widening=1.0)})


@pytest.mark.parametrize(("symbol", "mid", "bid", "ask"), [
    ("SPY", 1.3307, 1.32, 1.35),   # width 0.01 + 1% * 1.33 = 0.0233 -> 3 ticks
    ("SPY", 0.37, 0.36, 0.38),     # 0.01 + 0.0037 -> 2 ticks
    ("QQQ", 2.00, 1.98, 2.02),     # 0.01 + 1.5% * 2.00 = 0.04 -> 4 ticks
    ("SPX", 2.00, 1.90, 2.15),     # 0.15 + 0.055 = 0.205 -> 5 ticks of 0.05 (bid nearest 2.00 - 0.125)
    ("SPX", 8.00, 7.80, 8.20),     # 0.15 + 0.22 = 0.37 -> 4 ticks of 0.10
    ("SPY", 0.002, 0.00, 0.01),    # a worthless option bids 0
])
def test_spread_arithmetic_and_min_tick(symbol: str, mid: float, bid: float, ask: float) -> None:
    got_bid, got_ask = pm.spread_quote(symbol, mid, SPREADS)
    assert (got_bid, got_ask) == (pytest.approx(bid), pytest.approx(ask))
    assert got_bid <= mid <= got_ask


def test_spreads_widen_through_the_last_hour() -> None:
    # 15 minutes left: ramp 0.75, widening 1 + 1.0 * 0.5625; 0.37 * 1.5625 = 0.578 -> 6 ticks
    assert pm.spread_width("SPX", 8.0, 15.0, SPREADS) == pytest.approx(0.37 * 1.5625)
    assert pm.spread_quote("SPX", 8.0, SPREADS, 15.0) == (pytest.approx(7.70), pytest.approx(8.30))
    assert pm.spread_width("SPX", 8.0, [90.0, 60.0, 0.0], SPREADS) == pytest.approx([0.37, 0.37, 0.74])


def test_quote_prices_a_zero_dte_atm_call_by_hand() -> None:
    # flat curve, multiplier 1.5: iv = 1.5 * 0.18 = 0.27; 60 minutes left -> mid 1.3307; no widening yet
    bid, mid, ask = pm.quote("SPY", 500.0, 500.0, "call", 60, 0.18, 330, FLAT)
    assert mid == pytest.approx(1.3307, abs=2e-4)
    assert (bid, ask) == (pytest.approx(1.32), pytest.approx(1.35))


def test_the_last_minute_prices_intrinsic_value_only() -> None:
    # the 15:59 bar closes at 16:00: no time value left (the model still priced a minute)
    for minutes in (0.0, -3.0):
        _, itm_mid, _ = pm.quote("SPX", 3812.0, 3800.0, "call", minutes, 0.15, 390)
        _, otm_mid, otm_ask = pm.quote("SPX", 3812.0, 3800.0, "put", minutes, 0.15, 390)
        assert itm_mid == pytest.approx(12.0)
        assert otm_mid == 0.0 and otm_ask >= 0.05
    _, one_minute_left, _ = pm.quote("SPX", 3812.0, 3800.0, "put", 1.0, 0.15, 389)
    assert one_minute_left > 0.0


def test_fixed_strike_goes_in_and_out_of_the_money() -> None:
    strike = pm.atm_strike("SPY", 500.2)
    spots = np.array([498.0, 500.2, 502.0])
    _, call_mid, _ = pm.quote("SPY", spots, strike, "call", 60, 0.15, 330, FLAT)
    _, put_mid, _ = pm.quote("SPY", spots, strike, "put", 60, 0.15, 330, FLAT)
    assert np.all(np.diff(call_mid) > 0) and np.all(np.diff(put_mid) < 0)
    assert call_mid[2] > 502.0 - strike  # time value on top of intrinsic
    assert put_mid[0] > strike - 498.0


def test_premium_decays_towards_the_close_to_intrinsic_value() -> None:
    _, mids, _ = pm.quote("SPX", 5000.0, 5000.0, "put", [240, 60, 5, 1, 0], 0.15, 330)
    assert np.all(np.diff(mids) < 0)
    assert mids[-2] > 0 and mids[-1] == 0.0


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
