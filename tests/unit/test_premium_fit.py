"""The premium model against real SPXW 0DTE quotes (../shared/data/options): check and calibrate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scalper_cli.main import app
from scalper_shared.core import premium as pm
from scalper_shared.core import premium_fit as pf

DAYS = ("2021-01-06", "2021-01-08")


def quote_files(shared_data: Path) -> list[Path]:
    return [shared_data / "options" / f"spxw_0dte_{day}.csv.gz" for day in DAYS]


@pytest.fixture
def real_quotes(shared_data: Path) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p) for p in quote_files(shared_data)], ignore_index=True)


def test_default_model_meets_the_acceptance_figures_on_the_real_quotes(real_quotes: pd.DataFrame) -> None:
    report = pf.check_report(pf.prepare_quotes(real_quotes))
    atm = report["buckets"]["atm"]
    assert atm["n"] > 600
    assert atm["median_abs_rel_error"] <= 0.15
    assert atm["share_within_25pct"] >= 0.75
    assert abs(atm["median_spread_model"] / atm["median_spread_real"] - 1) <= 0.30


def test_prepare_drops_blank_crossed_and_locked_quotes_and_uses_the_forward() -> None:
    rows = [  # 2021-01-08 12:00 ET = 17:00 UTC (end of the 11:59 minute)
        {"ts_utc_ms": 1610125200000, "underlying": "SPX", "expiry": "2021-01-08", "right": "C", "strike": 3800,
         "bid": 10.0, "ask": 10.4, "underlying_price": None, "pcp_forward": 3805.0},
        {"ts_utc_ms": 1610125200000, "underlying": "SPX", "expiry": "2021-01-08", "right": "P", "strike": 3800,
         "bid": None, "ask": 5.0, "underlying_price": None, "pcp_forward": 3805.0},
        {"ts_utc_ms": 1610125200000, "underlying": "SPX", "expiry": "2021-01-08", "right": "P", "strike": 3700,
         "bid": 0.10, "ask": 0.10, "underlying_price": None, "pcp_forward": 3805.0},
        {"ts_utc_ms": 1610125200000, "underlying": "SPX", "expiry": "2021-01-08", "right": "C", "strike": 3900,
         "bid": 0.15, "ask": 0.10, "underlying_price": 3806.0, "pcp_forward": 3805.0},
    ]
    prepared = pf.prepare_quotes(pd.DataFrame(rows))
    assert prepared.dropped == {"blank bid or ask": 1, "crossed or locked": 2}
    row = prepared.frame.iloc[0]
    assert row["spot"] == 3805.0 and row["mid"] == pytest.approx(10.2)
    assert row["minutes_to_close"] == 240.0 and row["minute_of_day"] == 150.0
    assert row["bucket"] == "atm"


def test_quotes_without_the_tidy_columns_are_refused_by_name() -> None:
    with pytest.raises(pf.QuoteDataError, match="strike"):
        pf.prepare_quotes(pd.DataFrame({"ts_utc_ms": [1], "underlying": ["SPX"], "expiry": ["2021-01-08"],
                                        "right": ["C"], "bid": [1.0], "ask": [1.1]}))


def test_moneyness_buckets() -> None:
    x = np.log(np.array([3800, 3810, 3850, 3700, 3900, 3760]) / 3800.0)
    calls = np.array([True, True, True, True, False, False])
    assert pf.moneyness_bucket(x, calls).tolist() == ["atm", "atm", "otm_0.5_2", "itm_gt_2", "itm_gt_2",
                                                      "otm_0.5_2"]


def synthetic_quotes(truth: pm.PremiumModelConfig, seed: int = 1) -> pd.DataFrame:
    """Two sessions of SPX quotes priced by ``truth`` (mid on the tick grid): what calibrate must recover."""
    rng = np.random.default_rng(seed)
    rows = []
    for day_open_ms in (1609943400000, 1610116200000):  # 2021-01-06 and 2021-01-08 09:30 ET
        ts = day_open_ms + np.arange(1, 391) * 60_000
        spot = 3800 * np.exp(np.cumsum(rng.normal(0, 4.5e-4, ts.size)))
        vols, _ = pm.robust_ewma_vol(spot, config=truth)
        for k in range(ts.size):
            strikes = [5 * round(spot[k] / 5) + d for d in (-50, -25, -10, -5, 0, 5, 10, 25, 50)]
            for strike in strikes:
                for call in (True, False):
                    bid, mid, ask = pm.quote("SPX", spot[k], strike, call, 389 - k, vols[k], k + 1, truth)
                    rows.append({"ts_utc_ms": int(ts[k]), "underlying": "SPX", "expiry": "x", "right": "C" if call
                                 else "P", "strike": strike, "bid": float(bid), "ask": float(ask),
                                 "underlying_price": spot[k], "pcp_forward": None})
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_calibrate_recovers_a_known_model_from_its_own_quotes() -> None:
    spx = pm.SymbolOptionSpec(strike_step=5, tick_below=0.05, tick_above=0.10, tick_threshold=3.0,
                              spread_abs=0.12, spread_pct=0.03, min_spread=0.05, last_hour_widening=1.5)
    truth = pm.PremiumModelConfig(calibration_multiplier=1.3, time_of_day_curve=((0.0, 1.0),), vol_prior=0.13,
                                  skew_slope=-0.08, skew_curvature=0.03, symbols={**pm.DEFAULT_SYMBOL_SPECS,
                                                                                  "SPX": spx})
    quotes = synthetic_quotes(truth)
    base = truth.model_copy(update={"calibration_multiplier": 0.5, "skew_slope": 0.0, "skew_curvature": 0.0})
    fitted = pf.calibrate(quotes, base=base.model_copy(update={"vol_prior": 0.13})).config
    # the mid is a (bid + ask) / 2 on the tick grid, not the model mid: a few % of noise
    assert fitted.calibration_multiplier == pytest.approx(1.3, rel=0.05)
    assert all(f == pytest.approx(1.0, abs=0.08) for _, f in fitted.time_of_day_curve)
    assert fitted.skew_slope == pytest.approx(-0.08, abs=0.03)
    got = fitted.symbols["SPX"]
    assert got.spread_abs == pytest.approx(0.12, abs=0.03) and got.spread_pct == pytest.approx(0.03, abs=0.006)
    assert got.last_hour_widening == pytest.approx(1.5, abs=0.5)


def test_fit_time_of_day_by_hand() -> None:
    # 30 quotes at minute 100 with ratio 1.2, 10 at minute 350 with ratio 0.6: multiplier = median 1.2;
    # the 330-360 bin: ln(0.6 / 1.2) * 10 / (10 + 20) shrunk towards 1
    ratio = np.array([1.2] * 30 + [0.6] * 10)
    minute = np.array([100.0] * 30 + [350.0] * 10)
    multiplier, curve = pf.fit_time_of_day(ratio, minute)
    assert multiplier == pytest.approx(1.2)
    assert curve == ((90.0, 1.0), (345.0, pytest.approx(math.exp(math.log(0.5) / 3), abs=1e-4)))


def test_fit_skew_refuses_one_sided_data() -> None:
    z = np.linspace(0.0, 2.0, 100)
    with pytest.raises(pf.QuoteDataError, match="both sides"):
        pf.fit_skew(z, 0.1 * z, 3.0)
    z = np.linspace(-2.5, 2.5, 101)
    slope, curvature = pf.fit_skew(z, 0.02 - 0.07 * z + 0.04 * z * z, 3.0)
    assert (slope, curvature) == (pytest.approx(-0.07, abs=1e-3), pytest.approx(0.04, abs=1e-3))


def test_premium_check_cli_prints_and_writes_the_json(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    args = ["premium", "check", *sum((["--quotes", str(p)] for p in quote_files(shared_data)), []), "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "at the money, by hour" in result.output
    figures = json.loads(out.read_text())
    assert set(figures) >= {"buckets", "hours", "round_trip"}
    assert set(figures["buckets"]["atm"]) >= {"n", "median_abs_rel_error", "p90_abs_rel_error", "share_within_25pct",
                                              "median_spread_model", "median_spread_real"}
    assert set(figures["round_trip"]) == {"10:00", "12:00", "14:00", "15:30"}


def test_premium_calibrate_cli_writes_a_config_check_can_take(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "premium.json"
    files = sum((["--quotes", str(p)] for p in quote_files(shared_data)), [])
    result = CliRunner().invoke(app, ["premium", "calibrate", *files, "--out", str(out)])
    assert result.exit_code == 0, result.output
    config = pm.PremiumModelConfig.model_validate_json(out.read_text())
    assert config.skew_slope <= 0 and config.vol_floor > 0
    checked = CliRunner().invoke(app, ["premium", "check", *files, "--premium-config", str(out)])
    assert checked.exit_code == 0, checked.output


def test_premium_cli_refuses_bad_files_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    result = CliRunner().invoke(app, ["premium", "check", "--quotes", str(bad)])
    assert result.exit_code == 2 and "lack column" in result.output and "Traceback" not in result.output
    missing = CliRunner().invoke(app, ["premium", "check", "--quotes", str(tmp_path / "none.csv")])
    assert missing.exit_code == 2 and "cannot read" in missing.output
    config = tmp_path / "premium.json"
    config.write_text('{"calibration_multiplier": -1}')
    refused = CliRunner().invoke(app, ["premium", "check", "--quotes", str(bad), "--premium-config", str(config)])
    assert refused.exit_code == 2 and "not a premium config" in refused.output
