"""The premium model against real option quotes: ``scalper premium check`` and ``calibrate``.

Pure functions over a pandas frame of quotes in the tidy format of ``../shared/data/options``
(``ts_utc_ms, underlying, root, expiry, right, strike, bid, ask, bid_size, ask_size,
underlying_price, pcp_forward``; ``ts_utc_ms`` is the END of the minute). :func:`prepare_quotes`
cleans them and adds the model's inputs, :func:`check_report` measures the model against them and
:func:`calibrate` fits a :class:`PremiumModelConfig`. The CLI reads files; nothing here does I/O.
See ``docs/premium-and-risk.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scalper_shared.core.calendar import trading_day
from scalper_shared.core.premium import (
    DEFAULT_PREMIUM_CONFIG,
    PremiumModelConfig,
    SymbolOptionSpec,
    bs_implied_vol,
    implied_vol,
    intrinsic_value,
    normalise_symbol,
    quote,
    robust_ewma_vol,
    skew_factor,
    spread_quote,
    standardised_moneyness,
    tick_size,
    time_to_expiry_years,
)

REQUIRED_COLUMNS = ("ts_utc_ms", "underlying", "expiry", "right", "strike", "bid", "ask")
MINUTE_MS = 60_000
ATM_LIMIT = 0.005
NEAR_LIMIT = 0.02
BUCKETS = ("atm", "otm_0.5_2", "otm_gt_2", "itm_0.5_2", "itm_gt_2")
ROUND_TRIP_TIMES = ("10:00", "12:00", "14:00", "15:30")
ROUND_TRIP_WINDOW_MINUTES = 5
MIN_IV_MINUTES = 5.0
"""Quotes with fewer minutes left say little about vol (time value of a tick or two)."""
MIN_IV_MID = 0.30
"""Far OTM quotes parked at the $0.05-0.10 floor say little about vol."""
TOD_EDGES = (0.0, 30.0, 60.0, 120.0, 180.0, 240.0, 300.0, 330.0, 360.0, 375.0, 390.0)
SKEW_MIN_Z = 0.5
SKEW_MIN_QUOTES = 20
"""A skew is fitted only with this many informative quotes at |z| > SKEW_MIN_Z on EACH side."""
SKEW_MAX_CURVATURE = 0.1
TOD_SHRINK = 20.0
"""Pseudo-count pulling a time-of-day bin with few quotes towards the overall multiplier."""


class QuoteDataError(ValueError):
    """The quotes cannot be used (a missing column, no usable row); the message says which."""


@dataclass(frozen=True)
class PreparedQuotes:
    """Clean two-sided quotes with the model's inputs, one row per contract-minute."""

    frame: pd.DataFrame
    dropped: Mapping[str, int]
    """Rows removed, by reason."""


def _underlying_from_bars(frame: pd.DataFrame, bars: pd.DataFrame | None) -> pd.Series:
    if bars is None or bars.empty:
        return pd.Series(np.nan, index=frame.index)
    closes = pd.Series(bars["c"].to_numpy(dtype=float), index=bars["t"].to_numpy(dtype=np.int64) + MINUTE_MS)
    closes = closes[~closes.index.duplicated(keep="last")]
    return pd.Series(closes.reindex(frame["ts_utc_ms"].to_numpy()).to_numpy(), index=frame.index)


def _session_clock(ts_ms: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(minutes to the close, minutes since the open, session day) of each end-of-minute instant."""
    days = pd.to_datetime(ts_ms, unit="ms", utc=True).dt.tz_convert("America/New_York").dt.date
    left = np.full(len(ts_ms), np.nan)
    since = np.full(len(ts_ms), np.nan)
    values = ts_ms.to_numpy(dtype=np.int64)
    for day in pd.unique(days):
        session = trading_day(day)
        if session is None:
            continue
        rows = (days == day).to_numpy()
        open_ms = session.open.timestamp() * 1000
        close_ms = session.close.timestamp() * 1000
        left[rows] = (close_ms - values[rows]) / MINUTE_MS
        since[rows] = (values[rows] - open_ms) / MINUTE_MS
    return left, since, days.to_numpy()


def vol_inputs(series_ms: np.ndarray, closes: np.ndarray, config: PremiumModelConfig) -> pd.Series:
    """The robust EWMA vol input at each end-of-minute instant of one underlying's minute closes."""
    order = np.argsort(series_ms, kind="stable")
    t, c = series_ms[order], closes[order]
    days = pd.to_datetime(t, unit="ms", utc=True).tz_convert("America/New_York").date
    new_session = np.concatenate(([True], days[1:] != days[:-1]))
    vols, _ = robust_ewma_vol(c, new_session, config)
    return pd.Series(vols, index=t)


def prepare_quotes(quotes: pd.DataFrame, bars: pd.DataFrame | None = None,
                   config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> PreparedQuotes:
    """Clean quotes plus the model's inputs.

    Drops rows with a blank side, a crossed or locked quote (``ask <= bid``), a bad strike or right,
    no underlying, or outside the regular session. A row with a blank bid and ask but a ``close``
    (a trade print: stored option bars, :func:`option_bars_as_quotes`) is kept with that close as
    its mid and no spread. The underlying is ``underlying_price``, else
    ``pcp_forward``, else the close of the 1-minute ``bars`` (Polygon columns ``t, c``; ``t`` the
    bar start) ending at that instant. The vol input runs over the bars when given (so their earlier
    sessions warm it up), else over the quotes' own underlying minute series, in day order.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in quotes.columns]
    if missing:
        raise QuoteDataError(f"quotes lack column(s) {missing}; the tidy format needs {list(REQUIRED_COLUMNS)}")
    frame = quotes.copy()
    dropped: dict[str, int] = {}

    def drop(mask: pd.Series, reason: str) -> None:
        nonlocal frame
        count = int(mask.sum())
        if count:
            dropped[reason] = dropped.get(reason, 0) + count
            frame = frame[~mask]

    for column in ("ts_utc_ms", "strike", "bid", "ask", "underlying_price", "pcp_forward", "close"):
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["printed"] = ((frame["close"] > 0) & frame["bid"].isna() & frame["ask"].isna()
                        if "close" in frame.columns else False)
    drop(~frame["printed"] & (frame["bid"].isna() | frame["ask"].isna()), "blank bid or ask")
    drop(~frame["printed"] & (frame["ask"] <= frame["bid"]), "crossed or locked")
    drop((frame["bid"] < 0) | frame["ts_utc_ms"].isna() | ~(frame["strike"] > 0), "bad price, time or strike")
    right = frame["right"].astype(str).str.upper().str[0]
    drop(~right.isin(("C", "P")), "unknown right")
    frame["is_call"] = frame["right"].astype(str).str.upper().str[0] == "C"
    frame["ts_utc_ms"] = frame["ts_utc_ms"].astype(np.int64)
    frame["symbol"] = frame["underlying"].astype(str).map(normalise_symbol)
    spot = pd.Series(np.nan, index=frame.index)
    for column in ("underlying_price", "pcp_forward"):
        if column in frame.columns:
            spot = spot.fillna(frame[column])
    frame["spot"] = spot.fillna(_underlying_from_bars(frame, bars))
    drop(~(frame["spot"] > 0), "no underlying price")
    left, since, days = _session_clock(frame["ts_utc_ms"])
    frame["minutes_to_close"], frame["minute_of_day"], frame["day"] = left, since, days
    drop(frame["minutes_to_close"].isna() | (frame["minutes_to_close"] < 0) | (frame["minute_of_day"] <= 0),
         "outside the regular session")
    if frame.empty:
        raise QuoteDataError(f"no usable quote left (dropped: {dropped})")
    frame["vol_input"] = np.nan
    for symbol, rows in frame.groupby("symbol").groups.items():
        if bars is not None and not bars.empty:
            series_ms = bars["t"].to_numpy(dtype=np.int64) + MINUTE_MS
            closes = bars["c"].to_numpy(dtype=float)
        else:
            minute = frame.loc[rows].groupby("ts_utc_ms")["spot"].first()
            series_ms, closes = minute.index.to_numpy(dtype=np.int64), minute.to_numpy(dtype=float)
        vols = vol_inputs(series_ms, closes, config)
        frame.loc[rows, "vol_input"] = vols.reindex(frame.loc[rows, "ts_utc_ms"].to_numpy()).to_numpy()
        del symbol
    frame["mid"] = (frame["bid"] + frame["ask"]) / 2
    frame["spread"] = frame["ask"] - frame["bid"]
    if "close" in frame.columns:
        frame["mid"] = frame["mid"].fillna(frame["close"])
    frame["log_moneyness"] = np.log(frame["strike"] / frame["spot"])
    frame["bucket"] = moneyness_bucket(frame["log_moneyness"].to_numpy(), frame["is_call"].to_numpy())
    return PreparedQuotes(frame.reset_index(drop=True), dropped)


def moneyness_bucket(log_moneyness: np.ndarray, is_call: np.ndarray) -> np.ndarray:
    """atm (|ln K/S| < 0.5%), otm/itm 0.5-2%, otm/itm > 2% (a call is OTM above the spot)."""
    x = np.abs(log_moneyness)
    otm = np.where(is_call, log_moneyness > 0, log_moneyness < 0)
    side = np.where(otm, "otm", "itm")
    band = np.where(x < NEAR_LIMIT, "0.5_2", "gt_2")
    return np.where(x < ATM_LIMIT, "atm", np.char.add(np.char.add(side.astype(str), "_"), band.astype(str)))


def model_quotes(frame: pd.DataFrame, config: PremiumModelConfig) -> pd.DataFrame:
    """The model's bid, mid and ask for every prepared quote row."""
    bid, mid, ask = quote(frame["symbol"].tolist(), frame["spot"].to_numpy(), frame["strike"].to_numpy(),
                          frame["is_call"].to_numpy(), frame["minutes_to_close"].to_numpy(),
                          frame["vol_input"].to_numpy(), frame["minute_of_day"].to_numpy(), config)
    return pd.DataFrame({"model_bid": bid, "model_mid": mid, "model_ask": ask}, index=frame.index)


def _error_stats(real_mid: np.ndarray, model_mid: np.ndarray, real_spread: np.ndarray,
                 model_spread: np.ndarray) -> dict[str, Any]:
    if real_mid.size == 0:
        return {"n": 0}
    rel = model_mid / real_mid - 1.0
    quoted = np.isfinite(real_spread)  # trade prints (stored option bars) have no spread
    return {"n": int(real_mid.size),
            "median_rel_error": float(np.median(rel)),
            "median_abs_rel_error": float(np.median(np.abs(rel))),
            "p90_abs_rel_error": float(np.percentile(np.abs(rel), 90)),
            "share_within_25pct": float(np.mean(np.abs(rel) <= 0.25)),
            "median_spread_model": float(np.median(model_spread[quoted])) if quoted.any() else None,
            "median_spread_real": float(np.median(real_spread[quoted])) if quoted.any() else None}


def check_report(prepared: PreparedQuotes, config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG,
                 model: pd.DataFrame | None = None) -> dict[str, Any]:
    """The model against the quotes: by moneyness bucket, ATM by hour, and ATM round-trip costs.

    Relative error = model mid / real mid - 1 (real mid = (bid + ask) / 2). ``model`` overrides the
    model prices (columns ``model_bid, model_mid, model_ask``; used to measure another model).
    """
    frame = prepared.frame
    priced = model if model is not None else model_quotes(frame, config)
    real_mid = frame["mid"].to_numpy()
    model_mid = priced["model_mid"].to_numpy()
    real_spread = frame["spread"].to_numpy()
    model_spread = (priced["model_ask"] - priced["model_bid"]).to_numpy()
    bucket = frame["bucket"].to_numpy()
    report: dict[str, Any] = {"n_quotes": int(len(frame)), "dropped": dict(prepared.dropped),
                              "days": sorted({d.isoformat() for d in frame["day"]}), "buckets": {}, "hours": {},
                              "round_trip": {}}
    for name in BUCKETS:
        rows = bucket == name
        report["buckets"][name] = _error_stats(real_mid[rows], model_mid[rows], real_spread[rows], model_spread[rows])
    atm = bucket == "atm"
    hour = (9 + (frame["minute_of_day"].to_numpy() + 29) // 60).astype(int)
    for h in sorted(set(hour[atm].tolist())):
        rows = atm & (hour == h)
        report["hours"][f"{h:02d}"] = _error_stats(real_mid[rows], model_mid[rows], real_spread[rows],
                                                   model_spread[rows])
    commission = 2 * config.commission_per_contract
    multiplier = config.contract_multiplier
    for label in ROUND_TRIP_TIMES:
        hh, mm = (int(p) for p in label.split(":"))
        minute = (hh - 9) * 60 + mm - 30
        rows = atm & np.isfinite(real_spread) & (
            np.abs(frame["minute_of_day"].to_numpy() - minute) <= ROUND_TRIP_WINDOW_MINUTES)
        if not rows.any():
            report["round_trip"][label] = {"n": 0}
            continue
        real_cost = real_spread[rows] * multiplier + commission
        model_cost = model_spread[rows] * multiplier + commission
        report["round_trip"][label] = {
            "n": int(rows.sum()),
            "real_dollars": float(np.median(real_cost)), "model_dollars": float(np.median(model_cost)),
            "real_pct_of_premium": float(np.median(real_cost / (real_mid[rows] * multiplier))),
            "model_pct_of_premium": float(np.median(model_cost / (model_mid[rows] * multiplier)))}
    return report


# -- calibration ------------------------------------------------------------------------------------


def real_implied_vols(frame: pd.DataFrame) -> np.ndarray:
    """The Black-Scholes vol of each real mid (NaN where the mid has no time value to invert)."""
    t = np.asarray(time_to_expiry_years(frame["minutes_to_close"].to_numpy()))
    return np.asarray(bs_implied_vol(frame["mid"].to_numpy(), frame["spot"].to_numpy(), frame["strike"].to_numpy(),
                                     t, frame["is_call"].to_numpy()), dtype=np.float64)


def _informative(frame: pd.DataFrame, iv: np.ndarray) -> np.ndarray:
    """Quotes that say something about vol: time left, off the price floor, with time value, OTM or ATM."""
    x = frame["log_moneyness"].to_numpy()
    call = frame["is_call"].to_numpy()
    otm_or_atm = (np.abs(x) < ATM_LIMIT) | np.where(call, x > 0, x < 0)
    intrinsic = np.asarray(intrinsic_value(frame["spot"].to_numpy(), frame["strike"].to_numpy(), call))
    ticks = np.asarray(tick_size(frame["symbol"].tolist(), frame["mid"].to_numpy()))
    out: np.ndarray = (np.isfinite(iv) & (frame["minutes_to_close"].to_numpy() >= MIN_IV_MINUTES)
                       & (frame["mid"].to_numpy() >= MIN_IV_MID) & otm_or_atm
                       & (frame["mid"].to_numpy() - intrinsic >= 2 * ticks) & np.isfinite(frame["vol_input"].to_numpy()))
    return out


def _lad(design: np.ndarray, target: np.ndarray, iterations: int = 60) -> np.ndarray:
    """Least absolute deviations by iteratively reweighted least squares."""
    weights = np.ones(target.size)
    coef = np.zeros(design.shape[1])
    for _ in range(iterations):
        sw = np.sqrt(weights)
        coef = np.linalg.lstsq(design * sw[:, None], target * sw, rcond=None)[0]
        weights = 1.0 / np.maximum(np.abs(target - design @ coef), 1e-4)
    return coef


def fit_time_of_day(ratio: np.ndarray, minute_of_day: np.ndarray) -> tuple[float, tuple[tuple[float, float], ...]]:
    """(multiplier, curve) from ATM ``implied / vol input`` ratios: the multiplier is their median;
    each bin of ``TOD_EDGES`` gets its median ratio over the multiplier, shrunk towards 1 when the
    bin holds few quotes (``TOD_SHRINK`` pseudo-quotes, in logs); empty bins are interpolated."""
    if ratio.size == 0:
        raise QuoteDataError("no at-the-money quote with time value to fit the multiplier on")
    multiplier = float(np.median(ratio))
    knots: list[tuple[float, float]] = []
    for lo, hi in zip(TOD_EDGES[:-1], TOD_EDGES[1:], strict=True):
        rows = (minute_of_day > lo) & (minute_of_day <= hi)
        n = int(rows.sum())
        if n == 0:
            continue
        log_factor = float(np.log(np.median(ratio[rows]) / multiplier)) * n / (n + TOD_SHRINK)
        knots.append(((lo + hi) / 2, round(float(np.exp(log_factor)), 4)))
    return multiplier, tuple(knots)


def fit_skew(z: np.ndarray, log_ratio: np.ndarray, z_limit: float) -> tuple[float, float]:
    """(slope, curvature) of ``ln(iv / atm iv) = c + slope z + curvature z**2`` by least absolute
    deviations over ``|z| <= z_limit``. Kept to the shape of an index skew: slope <= 0 (OTM puts
    richer than OTM calls), 0 <= curvature <= ``SKEW_MAX_CURVATURE`` (a smile, never a frown)."""
    rows = np.abs(z) <= z_limit
    if min((z[rows] < -SKEW_MIN_Z).sum(), (z[rows] > SKEW_MIN_Z).sum()) < SKEW_MIN_QUOTES:
        raise QuoteDataError(f"too few quotes on both sides of the money (|z| > {SKEW_MIN_Z}) to fit a skew")
    zr, yr = z[rows], log_ratio[rows]
    slope, curvature = _lad(np.column_stack([np.ones(zr.size), zr, zr * zr]), yr)[1:]
    if curvature < 0:
        slope, curvature = float(_lad(np.column_stack([np.ones(zr.size), zr]), yr)[1]), 0.0
    return round(min(float(slope), 0.0), 4), round(min(float(curvature), SKEW_MAX_CURVATURE), 4)


def fit_spread(mid: np.ndarray, spread: np.ndarray, minutes_to_close: np.ndarray, symbol: str,
               config: PremiumModelConfig) -> SymbolOptionSpec:
    """``spread_abs``, ``spread_pct`` (quotes before the last ``widening_minutes``) then
    ``last_hour_widening`` (quotes inside them), each by a grid search minimising the mean absolute
    error of the modelled spread ON THE TICK GRID (the model rounds widths up to whole ticks)."""
    base = config.symbols[symbol]
    early = minutes_to_close > config.widening_minutes
    if early.sum() < 10:
        raise QuoteDataError(f"{symbol}: fewer than 10 quotes before the last hour to fit spreads on")

    def modelled(spec: SymbolOptionSpec, rows: np.ndarray) -> np.ndarray:
        one = config.model_copy(update={"symbols": {**config.symbols, symbol: spec}})
        bid, ask = spread_quote(symbol, mid[rows], one, minutes_to_close[rows])
        out: np.ndarray = np.asarray(ask) - np.asarray(bid)
        return out

    best: tuple[float, SymbolOptionSpec] | None = None
    for spread_abs in np.arange(0.0, 0.505, 0.01):
        for spread_pct in np.arange(0.0, 0.0805, 0.0025):
            spec = base.model_copy(update={"spread_abs": round(float(spread_abs), 4),
                                           "spread_pct": round(float(spread_pct), 5), "last_hour_widening": 0.0})
            error = float(np.mean(np.abs(modelled(spec, early) - spread[early])))
            if best is None or error < best[0] - 1e-12:
                best = (error, spec)
    assert best is not None
    spec = best[1]
    late = ~early
    if late.sum() >= 10:
        errors = [(float(np.mean(np.abs(modelled(spec.model_copy(update={"last_hour_widening": w}), late)
                                        - spread[late]))), w) for w in np.round(np.arange(0.0, 6.01, 0.1), 2)]
        spec = spec.model_copy(update={"last_hour_widening": float(min(errors)[1])})
    return spec


@dataclass(frozen=True)
class Calibration:
    config: PremiumModelConfig
    details: dict[str, Any]


def calibrate(quotes: pd.DataFrame, bars: pd.DataFrame | None = None,
              base: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG, iterations: int = 3) -> Calibration:
    """Fit the multiplier, time-of-day curve, final-IV floor, moneyness skew, the vol prior and the
    spreads of the quotes' symbols. The vol-input dynamics (half-life, outlier clip) stay ``base``'s.

    1. ``vol_prior``: the outlier-clipped RMS of every 1-minute return of the underlying, annualised.
    2. Real implied vols of the informative quotes (:func:`_informative`).
    3. Alternately: multiplier and curve from ATM ``real iv / (vol input * skew)``
       (:func:`fit_time_of_day`); skew from ``ln(real iv / modelled ATM iv)`` against the
       standardised moneyness (:func:`fit_skew`).
    4. ``vol_floor``: 90% of the lowest real ATM implied vol, rounded down to 0.01.
    5. Spreads per symbol on the ATM and 0.5-2% OTM quotes (the contracts the agent trades; deep
       ITM spreads follow their intrinsic value, not the time value) (:func:`fit_spread`).
    """
    config = base.model_copy(update={"vol_prior": _vol_prior(quotes, bars, base)})
    prepared = prepare_quotes(quotes, bars, config)
    frame = prepared.frame
    iv = real_implied_vols(frame)
    informative = _informative(frame, iv)
    atm = informative & (frame["bucket"].to_numpy() == "atm")
    minute = frame["minute_of_day"].to_numpy()
    vol_input = frame["vol_input"].to_numpy()
    t = np.asarray(time_to_expiry_years(frame["minutes_to_close"].to_numpy()))
    spot, strike = frame["spot"].to_numpy(), frame["strike"].to_numpy()
    skew_atm = np.asarray(skew_factor(np.zeros(len(frame)), config))
    notes: list[str] = []
    for _ in range(iterations):
        multiplier, curve = fit_time_of_day(iv[atm] / (vol_input[atm] * skew_atm[atm]), minute[atm])
        config = config.model_copy(update={"calibration_multiplier": round(multiplier, 4), "time_of_day_curve": curve})
        atm_model = np.asarray(implied_vol(vol_input, minute, config))
        z = np.asarray(standardised_moneyness(spot, strike, t, atm_model))
        try:
            slope, curvature = fit_skew(z[informative], np.log(iv[informative] / atm_model[informative]),
                                        config.skew_z_limit)
        except QuoteDataError as refusal:
            notes.append(f"skew kept at the base config's: {refusal}")
            break
        config = config.model_copy(update={"skew_slope": slope, "skew_curvature": curvature})
        skew_atm = np.asarray(skew_factor(z, config))
    floor = float(np.floor(0.9 * np.min(iv[atm]) * 100) / 100)
    config = config.model_copy(update={"vol_floor": max(floor, 0.01)})
    near = (np.isin(frame["bucket"].to_numpy(), ("atm", "otm_0.5_2")) & (frame["mid"].to_numpy() >= MIN_IV_MID)
            & np.isfinite(frame["spread"].to_numpy()))
    symbols = dict(config.symbols)
    for symbol in sorted(set(frame["symbol"])):
        if symbol not in symbols:
            raise QuoteDataError(f"no option spec for {symbol!r} to fit spreads on; known: {sorted(symbols)}")
        rows = near & (frame["symbol"].to_numpy() == symbol)
        symbols[symbol] = fit_spread(frame["mid"].to_numpy()[rows], frame["spread"].to_numpy()[rows],
                                     frame["minutes_to_close"].to_numpy()[rows], symbol, config)
    config = PremiumModelConfig.model_validate({**config.model_dump(), "symbols": symbols})
    details = {"quotes": int(len(frame)), "informative_quotes": int(informative.sum()), "atm_quotes": int(atm.sum()),
               "real_atm_iv": {"min": float(np.min(iv[atm])), "median": float(np.median(iv[atm])),
                               "max": float(np.max(iv[atm]))},
               "vol_input_at_atm": {"median": float(np.median(vol_input[atm]))}, "dropped": dict(prepared.dropped),
               "notes": notes}
    return Calibration(config, details)


def _vol_prior(quotes: pd.DataFrame, bars: pd.DataFrame | None, config: PremiumModelConfig) -> float:
    prepared = prepare_quotes(quotes, bars, config)
    frame = prepared.frame
    returns: list[np.ndarray] = []
    for _, rows in frame.groupby(["symbol", "day"]).groups.items():
        minute = frame.loc[rows].groupby("ts_utc_ms")["spot"].first().sort_index()
        returns.append(np.diff(np.log(minute.to_numpy(dtype=float))))
    r = np.concatenate(returns) if returns else np.zeros(0)
    r = r[np.isfinite(r)]
    if r.size < 30:
        return config.vol_prior
    sigma = np.median(np.abs(r)) / 0.6745
    clipped = np.minimum(r * r, (config.vol_outlier_clip * sigma) ** 2)
    return round(float(np.sqrt(np.mean(clipped) * 252 * 390)), 4)


def _epoch_ms(values: pd.Series) -> pd.Series:
    """Epoch milliseconds of timestamps whatever their pandas resolution (ns, us from the database)."""
    return (pd.to_datetime(values, utc=True) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)


def option_bars_as_quotes(option_rows: pd.DataFrame, underlying_bars: pd.DataFrame) -> pd.DataFrame:
    """Stored option bars (``ticker, start, underlying, expiry, option_right, strike, close``) as tidy
    rows for :func:`prepare_quotes`: the close is a trade print (no bid or ask), the underlying the
    close of its bar of the same minute (``underlying_bars``: ``symbol, start, close``)."""
    if option_rows.empty:
        raise QuoteDataError("no stored option bars in that window (run `scalper ingest options` first)")
    end_ms = _epoch_ms(option_rows["start"]) + MINUTE_MS
    spot = pd.Series(np.nan, index=option_rows.index)
    if not underlying_bars.empty:
        keyed = pd.Series(underlying_bars["close"].to_numpy(dtype=float), index=pd.MultiIndex.from_arrays(
            [underlying_bars["symbol"].astype(str).to_numpy(),
             _epoch_ms(underlying_bars["start"]).to_numpy()]))
        keyed = keyed[~keyed.index.duplicated()]
        lookup = pd.MultiIndex.from_arrays([option_rows["underlying"].astype(str).to_numpy(),
                                            (end_ms - MINUTE_MS).to_numpy()])
        spot = pd.Series(keyed.reindex(lookup).to_numpy(), index=option_rows.index)
    return pd.DataFrame({
        "ts_utc_ms": end_ms.to_numpy(), "underlying": option_rows["underlying"].astype(str).to_numpy(),
        "root": option_rows["ticker"].astype(str).str.extract(r"^O:([A-Z]+)\d")[0].to_numpy(),
        "expiry": option_rows["expiry"].astype(str).to_numpy(),
        "right": np.where(option_rows["option_right"].astype(str) == "call", "C", "P"),
        "strike": option_rows["strike"].to_numpy(dtype=float), "bid": np.nan, "ask": np.nan,
        "underlying_price": spot.to_numpy(), "pcp_forward": np.nan,
        "close": option_rows["close"].to_numpy(dtype=float)})
