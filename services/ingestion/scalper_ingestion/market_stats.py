"""Statistics that compare a bars DataFrame with real market behaviour (regular hours only).

Input frames have the bar columns ``symbol, start (UTC, aware), open, high, low, close, volume``
for ONE symbol. Every function is pure. The statistics, all over regular-hours 1-minute bars:

- 1-minute log-return standard deviation per half-hour of the session (13 buckets, 09:30-16:00 ET);
- excess kurtosis of 1-minute log returns (fat tails);
- autocorrelation of absolute returns at lags 1, 5 and 15 minutes (volatility clustering);
- volume share per half-hour, averaged over full-length sessions;
- mean high-low range over 15-minute blocks, in % of price;
- momentum: correlation of the past 10-minute return with the next 5-minute return (real SPY is
  slightly mean-reverting, about -0.04; the synthetic market's trend regimes make it slightly positive);
- correlation of two symbols' 1-minute returns, and the std of overnight gaps
  (first regular open against the previous session's last regular close).

Returns span exactly one minute: a return is taken only between consecutive minutes of the same
session, so gaps in real data (minutes without trades) never inflate it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from scalper_shared.core.calendar import NEW_YORK, trading_day, trading_days

HALF_HOUR_BUCKETS = 13
MINUTES_PER_BUCKET = 30
FULL_SESSION_MINUTES = 390
ABS_RETURN_LAGS = (1, 5, 15)
RANGE_BLOCK_MINUTES = 15
MOMENTUM_LOOKBACK, MOMENTUM_HORIZON = 10, 5


@dataclass(frozen=True)
class MarketStats:
    """The comparison statistics of one symbol's bars."""

    symbol: str
    sessions: int
    return_std_by_half_hour: pd.Series
    excess_kurtosis: float
    abs_return_autocorrelation: dict[int, float]
    volume_share_by_half_hour: pd.Series | None
    mean_range_15m_pct: float
    overnight_gap_std: float
    momentum_correlation: float


def regular_hours(bars: pd.DataFrame) -> pd.DataFrame:
    """The regular-hours bars, with ``day`` (NY date) and ``minute`` (minutes since the open)."""
    days = bars["start"].dt.tz_convert(NEW_YORK).dt.date
    opens, closes = {}, {}
    for day in days.unique():
        session = trading_day(day)
        if session is not None:
            opens[day], closes[day] = pd.Timestamp(session.open), pd.Timestamp(session.close)
    open_ts = pd.to_datetime(days.map(opens), utc=True)
    close_ts = pd.to_datetime(days.map(closes), utc=True)
    keep = (bars["start"] >= open_ts) & (bars["start"] < close_ts)
    out = bars.loc[keep].copy()
    out["day"] = days[keep]
    out["minute"] = ((out["start"] - open_ts[keep]).dt.total_seconds() // 60).astype(int)
    return out.sort_values("start").reset_index(drop=True)


def minute_returns(rth: pd.DataFrame) -> pd.DataFrame:
    """Close-to-close log returns between consecutive minutes of one session (``day, minute, ret``)."""
    log_close = np.log(rth["close"].to_numpy(dtype=float))
    minute = rth["minute"].to_numpy()
    day = rth["day"].to_numpy()
    consecutive = (minute[1:] == minute[:-1] + 1) & (day[1:] == day[:-1])
    return pd.DataFrame({
        "day": day[1:][consecutive],
        "minute": minute[1:][consecutive],
        "ret": np.diff(log_close)[consecutive],
    })


def return_std_by_half_hour(returns: pd.DataFrame) -> pd.Series:
    """Standard deviation of 1-minute log returns per half-hour bucket (0 = 09:30-10:00 ET)."""
    bucket = returns["minute"] // MINUTES_PER_BUCKET
    return returns["ret"].groupby(bucket).std().reindex(range(HALF_HOUR_BUCKETS))


def excess_kurtosis(returns: pd.DataFrame) -> float:
    """Excess kurtosis of the pooled 1-minute log returns (0 for a normal distribution)."""
    values = returns["ret"].to_numpy(dtype=float)
    centred = values - values.mean()
    return float(np.mean(centred**4) / np.mean(centred**2) ** 2 - 3.0)


def abs_return_autocorrelation(returns: pd.DataFrame, lags: Sequence[int] = ABS_RETURN_LAGS) -> dict[int, float]:
    """Autocorrelation of |return| at each lag, pairing only minutes of the same session."""
    key = pd.MultiIndex.from_arrays([returns["day"], returns["minute"]])
    absolute = pd.Series(returns["ret"].abs().to_numpy(), index=key)
    centred = absolute - absolute.mean()
    variance = float(np.mean(centred**2))
    out = {}
    for lag in lags:
        lagged_key = pd.MultiIndex.from_arrays([returns["day"], returns["minute"] + lag])
        later = centred.reindex(lagged_key).to_numpy()
        valid = ~np.isnan(later)
        out[lag] = float(np.mean(centred.to_numpy()[valid] * later[valid]) / variance)
    return out


def volume_share_by_half_hour(rth: pd.DataFrame) -> pd.Series | None:
    """Mean share of a full session's volume traded in each half-hour; None without volume."""
    if "volume" not in rth or rth["volume"].isna().all():
        return None
    full_days = [d for d in rth["day"].unique() if _is_full_session(d)]
    frame = rth[rth["day"].isin(full_days)]
    per_bucket = frame.groupby(["day", frame["minute"] // MINUTES_PER_BUCKET])["volume"].sum().unstack()
    shares = per_bucket.div(per_bucket.sum(axis=1), axis=0)
    return shares.mean().reindex(range(HALF_HOUR_BUCKETS))


def _is_full_session(day: date) -> bool:
    session = trading_day(day)
    return session is not None and session.regular_minutes == FULL_SESSION_MINUTES


def mean_range_15m_pct(rth: pd.DataFrame) -> float:
    """Mean (max high - min low) / mean close over 15-minute blocks from the open, in %."""
    block = rth["minute"] // RANGE_BLOCK_MINUTES
    grouped = rth.groupby([rth["day"], block])
    ranges = (grouped["high"].max() - grouped["low"].min()) / grouped["close"].mean()
    return float(ranges.mean() * 100.0)


def momentum_correlation(rth: pd.DataFrame, lookback: int = MOMENTUM_LOOKBACK,
                         horizon: int = MOMENTUM_HORIZON) -> float:
    """Correlation of the past ``lookback``-minute log return with the next ``horizon``-minute one.

    Every minute of every session is a decision point; a missing minute carries the last close.
    """
    grid = rth.pivot_table(index="day", columns="minute", values="close").ffill(axis=1)
    log_close = np.log(grid.to_numpy(dtype=float))
    past = log_close[:, lookback:-horizon] - log_close[:, :-horizon - lookback]
    future = log_close[:, lookback + horizon:] - log_close[:, lookback:-horizon]
    valid = ~(np.isnan(past) | np.isnan(future))
    return float(np.corrcoef(past[valid], future[valid])[0, 1])


def overnight_gap_std(rth: pd.DataFrame) -> float:
    """Std of log(first regular open / previous session's last regular close), adjacent sessions only."""
    grouped = rth.groupby("day")
    first_open = grouped["open"].first()
    last_close = grouped["close"].last()
    sessions = [s.day for s in trading_days(min(first_open.index), max(first_open.index))]
    previous = dict(zip(sessions[1:], sessions[:-1], strict=False))
    gaps = [np.log(first_open[day] / last_close[previous[day]])
            for day in first_open.index if previous.get(day) in last_close.index]
    return float(np.std(gaps, ddof=1)) if len(gaps) > 1 else float("nan")


def return_correlation(rth_a: pd.DataFrame, rth_b: pd.DataFrame) -> float:
    """Correlation of two symbols' 1-minute log returns over the minutes both have."""
    a = minute_returns(rth_a).set_index(["day", "minute"])["ret"]
    b = minute_returns(rth_b).set_index(["day", "minute"])["ret"]
    joined = pd.concat([a, b], axis=1, join="inner").to_numpy()
    return float(np.corrcoef(joined[:, 0], joined[:, 1])[0, 1])


def compute_stats(bars: pd.DataFrame) -> MarketStats:
    """Every single-symbol statistic of ``bars`` (extended-hours bars are filtered out here)."""
    symbols = bars["symbol"].unique()
    if len(symbols) != 1:
        raise ValueError(f"compute_stats expects one symbol, got {list(symbols)}")
    rth = regular_hours(bars)
    returns = minute_returns(rth)
    return MarketStats(
        symbol=str(symbols[0]),
        sessions=int(rth["day"].nunique()),
        return_std_by_half_hour=return_std_by_half_hour(returns),
        excess_kurtosis=excess_kurtosis(returns),
        abs_return_autocorrelation=abs_return_autocorrelation(returns),
        volume_share_by_half_hour=volume_share_by_half_hour(rth),
        mean_range_15m_pct=mean_range_15m_pct(rth),
        overnight_gap_std=overnight_gap_std(rth),
        momentum_correlation=momentum_correlation(rth),
    )


def stats_rows(columns: dict[str, MarketStats]) -> list[tuple[str, list[float | None]]]:
    """The statistics as table rows (name, one value per column), returns in bp, shares in %."""
    stats = list(columns.values())
    rows: list[tuple[str, list[float | None]]] = []
    for bucket in range(HALF_HOUR_BUCKETS):
        label = _bucket_label(bucket)
        rows.append((f"ret std bp {label}", [s.return_std_by_half_hour[bucket] * 1e4 for s in stats]))
    rows.append(("excess kurtosis", [s.excess_kurtosis for s in stats]))
    for lag in ABS_RETURN_LAGS:
        rows.append((f"|ret| autocorr lag {lag}", [s.abs_return_autocorrelation[lag] for s in stats]))
    for bucket in range(HALF_HOUR_BUCKETS):
        rows.append((f"volume % {_bucket_label(bucket)}", [
            None if s.volume_share_by_half_hour is None else s.volume_share_by_half_hour[bucket] * 100
            for s in stats]))
    rows.append(("15-min range %", [s.mean_range_15m_pct for s in stats]))
    rows.append(("overnight gap std %", [s.overnight_gap_std * 100 for s in stats]))
    rows.append((f"momentum corr {MOMENTUM_LOOKBACK}m->{MOMENTUM_HORIZON}m",
                 [s.momentum_correlation for s in stats]))
    rows.append(("sessions", [float(s.sessions) for s in stats]))
    return rows


def _bucket_label(bucket: int) -> str:
    minutes = 9 * 60 + 30 + bucket * MINUTES_PER_BUCKET
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
