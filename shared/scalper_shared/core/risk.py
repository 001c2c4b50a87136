"""Risk rules the policy cannot bypass: stop, take-profit tiers, session windows, cooldowns, limits.

Pure functions. A check returns a :class:`RiskReason` (a ``str``) when it refuses and ``None`` when it
allows: a refusal is an event (``OrderDenied(reason)``), never an exception. Time comes in as
arguments (``now``, ``close``, minutes); nothing here reads a clock. The per-bar predicates take
numpy arrays too, so the training environment evaluates N environments at once with the same
thresholds the execution service uses.

Session windows are measured back from the session close, so early closes move them with it:
entries stop ``entry_cutoff_minutes`` before the close (15:30 ET on a 16:00 day) and positions are
flattened from ``flatten_minutes`` before it (15:55 ET).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from scalper_shared.core.enums import TradingState
from scalper_shared.core.premium import normalise_symbol

STOP_TOLERANCE = 1e-9
"""Slack on premium-return comparisons, so an exact -15.00% fires despite binary rounding."""
MAX_TAKE_PROFIT_TIERS = 5
"""Take-profit tiers a config may have (each has its own exit reason, ``lifecycle.ExitReason``)."""


class RiskReason(StrEnum):
    TRADING_HALTED = "trading_halted"
    TRADING_REDUCING = "trading_reducing"
    AFTER_ENTRY_CUTOFF = "after_entry_cutoff"
    FLATTEN_WINDOW = "flatten_window"
    COOLDOWN = "cooldown"
    TRADES_PER_DAY_CAP = "trades_per_day_cap"
    MAX_DAILY_LOSS = "max_daily_loss"
    ORDER_CONTRACTS_LIMIT = "order_contracts_limit"
    PORTFOLIO_CONTRACTS_LIMIT = "portfolio_contracts_limit"
    MAX_CONCURRENT_POSITIONS = "max_concurrent_positions"
    SYMBOL_ALREADY_HELD = "symbol_already_held"
    NO_POSITION = "no_position"
    EXCEEDS_POSITION = "exceeds_position"
    BAD_CONTRACTS = "bad_contracts"


class TakeProfitTier(BaseModel):
    """At ``gain`` (premium return, 0.20 = +20%) sell ``trim_fraction`` of the contracts then held."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    gain: float = Field(gt=0)
    """Premium return that fires the tier, on the bar's bid against the entry premium (0.20 = +20%)."""
    trim_fraction: float = Field(gt=0, le=1)
    """Fraction of the contracts then held that the tier sells (rounded half up, at least 1; 1.0 sells all)."""


DEFAULT_TAKE_PROFIT_TIERS = (
    TakeProfitTier(gain=0.20, trim_fraction=0.5),
    TakeProfitTier(gain=0.50, trim_fraction=0.7),
    TakeProfitTier(gain=1.00, trim_fraction=1.0),
)


class RiskConfig(BaseModel):
    """Every risk threshold and the size of an entry: the one risk-and-sizing config. Frozen; saved
    with a model (``TrainConfig.risk``), used by the environment, the evaluation, the policy's mask and
    execution (which refuses a model whose config differs from its own unless told to)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    stop_loss_pct: float = Field(default=0.15, gt=0, lt=1)
    """Premium loss that stops a position out: fires when ``bid / entry - 1 <= -stop_loss_pct`` on a
    bar (exactly -15% fires: a 1e-9 slack absorbs binary rounding), filled at the next bar's bid, so a
    gap loses more."""
    take_profit_tiers: tuple[TakeProfitTier, ...] = Field(default=DEFAULT_TAKE_PROFIT_TIERS,
                                                          max_length=MAX_TAKE_PROFIT_TIERS)
    """Take-profit tiers in ascending gain (at most 5), each firing once per position: by default
    +20% sells half, +50% sells 70% of the rest, +100% sells everything."""
    entry_cutoff_minutes: float = Field(default=30.0, ge=0)
    """No entry from this many minutes before the session close on (15:30 ET; 12:30 on a 13:00 close):
    at the cutoff minute entries are already refused."""
    flatten_minutes: float = Field(default=5.0, ge=0)
    """Everything still held is sold from this many minutes before the close (15:55 ET): a 0DTE option
    is never held into the close. At most ``entry_cutoff_minutes``."""
    cooldown_after_stop_minutes: float = Field(default=10.0, ge=0)
    """Minutes a symbol refuses entries after a stop-out."""
    cooldown_after_exit_minutes: float = Field(default=2.0, ge=0)
    """Minutes a symbol refuses entries after an exit that was not a stop."""
    contracts_per_entry: int = Field(default=10, gt=0)
    """Contracts bought on every entry (BUY_CALL / BUY_PUT), in training, backtests, paper and live."""
    max_trades_per_day: int = Field(default=20, ge=0)
    """Entries per account-day (every symbol of the account together)."""
    max_daily_loss: float = Field(default=1_000.0, gt=0)
    """Dollars of the account's day P&L (realised plus open positions at the bid); once lost, the
    account is HALTED for the day."""
    max_contracts_per_order: int = Field(default=10, gt=0)
    """Contracts one order may buy (execution refuses a larger entry; the mask does not size orders)."""
    max_portfolio_contracts: int = Field(default=30, gt=0)
    """Contracts held across every symbol together: three full-size positions."""
    max_concurrent_positions: int = Field(default=3, gt=0)
    """Open positions across symbols (and at most one per symbol)."""

    @model_validator(mode="after")
    def _consistent(self) -> RiskConfig:
        gains = [tier.gain for tier in self.take_profit_tiers]
        if gains != sorted(gains) or len(set(gains)) != len(gains):
            raise ValueError(f"take_profit_tiers need strictly ascending gains, got {gains}")
        if self.entry_cutoff_minutes < self.flatten_minutes:
            raise ValueError("entry_cutoff_minutes must be at least flatten_minutes")
        return self


DEFAULT_RISK_CONFIG = RiskConfig()


def saved_risk_config(train_config: Mapping[str, Any] | None) -> RiskConfig:
    """The risk-and-sizing config saved with a model (the ``risk`` of its ``TrainConfig``, as the
    manifest and the ``models`` table hold it). A model saved before configs carried it ran under
    the defaults."""
    saved = (train_config or {}).get("risk")
    return RiskConfig.model_validate(saved) if saved else DEFAULT_RISK_CONFIG


def risk_differences(mine: RiskConfig, theirs: RiskConfig) -> list[str]:
    """``field: mine != theirs`` for every field where the two configs differ (empty: equal)."""
    a, b = mine.model_dump(mode="json"), theirs.model_dump(mode="json")
    return [f"{name}: {a[name]!r} != {b[name]!r}" for name in a if a[name] != b[name]]


# ---------------------------------------------------------------------------------------------
# Per-bar position rules (vectorised; scalars in, numpy scalars out)


def _out(values: NDArray[Any]) -> Any:
    return values[()] if values.ndim == 0 else values


def premium_return(entry_premium: ArrayLike, price: ArrayLike) -> Any:
    """``price / entry_premium - 1``: -0.15 is a 15% loss of premium."""
    entry = np.asarray(entry_premium, dtype=np.float64)
    return _out(np.asarray(price, dtype=np.float64) / entry - 1.0)


def stop_triggered(entry_premium: ArrayLike, mark_bid: ArrayLike,
                   config: RiskConfig = DEFAULT_RISK_CONFIG) -> Any:
    """True where the bar's bid is down ``stop_loss_pct`` or more from the entry premium (-15% fires)."""
    change = np.asarray(premium_return(entry_premium, mark_bid))
    return _out(change <= -config.stop_loss_pct + STOP_TOLERANCE)


def stop_fill_price(next_bar_bid: ArrayLike) -> Any:
    """The fill of a risk exit decided on bar t: bar t+1's bid, as it is (a gap down fills lower).

    The env and the paper broker both use it: decide on bar t's bid, fill at the next bar's bid.
    A bid below zero cannot be quoted, so it is floored at 0.
    """
    return _out(np.maximum(np.asarray(next_bar_bid, dtype=np.float64), 0.0))


@dataclass(frozen=True, slots=True)
class StopExit:
    trigger_index: int
    fill_index: int
    fill_price: float


def first_stop_exit(entry_premium: float, bids: ArrayLike,
                    config: RiskConfig = DEFAULT_RISK_CONFIG) -> StopExit | None:
    """Walk a position's bar bids; the first stop and its next-bar fill, or None if it never fires.

    A stop on the last bar fills at that bar's bid (there is no next bar; the session is over).
    """
    marks = np.asarray(bids, dtype=np.float64)
    fired = np.flatnonzero(stop_triggered(entry_premium, marks, config))
    if fired.size == 0:
        return None
    trigger = int(fired[0])
    fill = min(trigger + 1, marks.size - 1)
    return StopExit(trigger, fill, float(stop_fill_price(marks[fill])))


@dataclass(frozen=True, slots=True)
class TakeProfitHit:
    tier: int
    """1-based tier number (1 = TP1)."""
    gain: float
    trim_fraction: float


def take_profit_tier(entry_premium: float, mark: float, tiers_already_hit: int,
                     config: RiskConfig = DEFAULT_RISK_CONFIG) -> TakeProfitHit | None:
    """The next tier (in order) that ``mark`` has reached, or None.

    Tiers fire one at a time: after TP1 is handled the caller passes ``tiers_already_hit=1`` and asks
    again (a bar that jumps past TP2 yields TP1, then TP2).
    """
    tier, fraction = take_profit_tiers(entry_premium, mark, tiers_already_hit, config)
    if int(tier) == 0:
        return None
    spec = config.take_profit_tiers[int(tier) - 1]
    return TakeProfitHit(int(tier), spec.gain, float(fraction))


def take_profit_tiers(entry_premium: ArrayLike, mark: ArrayLike, tiers_already_hit: ArrayLike,
                      config: RiskConfig = DEFAULT_RISK_CONFIG) -> tuple[Any, Any]:
    """Vectorised :func:`take_profit_tier`: (tier number, 0 for none; trim fraction, 0 for none)."""
    gains = np.array([t.gain for t in config.take_profit_tiers] + [np.inf])
    fractions = np.array([t.trim_fraction for t in config.take_profit_tiers] + [0.0])
    hit = np.clip(np.asarray(tiers_already_hit, dtype=np.int64), 0, len(config.take_profit_tiers))
    change = np.asarray(premium_return(entry_premium, mark))
    reached = change >= gains[hit] - STOP_TOLERANCE
    return _out(np.where(reached, hit + 1, 0)), _out(np.where(reached, fractions[hit], 0.0))


def contracts_to_sell(held: ArrayLike, fraction: ArrayLike) -> Any:
    """Contracts a trim of ``fraction`` sells: ``held * fraction`` rounded half up, at least 1 of a
    non-empty position, never more than held (so trimming 1 contract closes it)."""
    h = np.asarray(held, dtype=np.int64)
    wanted = np.floor(h * np.asarray(fraction, dtype=np.float64) + 0.5).astype(np.int64)
    return _out(np.where(h > 0, np.clip(wanted, 1, np.maximum(h, 1)), 0))


# ---------------------------------------------------------------------------------------------
# Session and account predicates (vectorised, the units the env has: minutes and counts)


def past_entry_cutoff(minutes_to_close: ArrayLike, config: RiskConfig = DEFAULT_RISK_CONFIG) -> Any:
    """True from ``entry_cutoff_minutes`` before the close on (15:30 ET included on a 16:00 day)."""
    return _out(np.asarray(minutes_to_close, dtype=np.float64) <= config.entry_cutoff_minutes)


def in_flatten_window(minutes_to_close: ArrayLike, config: RiskConfig = DEFAULT_RISK_CONFIG) -> Any:
    """True from ``flatten_minutes`` before the close on: every position must be closed."""
    return _out(np.asarray(minutes_to_close, dtype=np.float64) <= config.flatten_minutes)


def in_cooldown(minutes_since_exit: ArrayLike, exit_was_stop: ArrayLike,
                config: RiskConfig = DEFAULT_RISK_CONFIG) -> Any:
    """True while a symbol cools down after its last exit (longer after a stop-out).

    ``minutes_since_exit`` is ``inf`` (or NaN) when the symbol has not exited today.
    """
    since = np.asarray(minutes_since_exit, dtype=np.float64)
    length = np.where(np.asarray(exit_was_stop, dtype=bool),
                      config.cooldown_after_stop_minutes, config.cooldown_after_exit_minutes)
    return _out(np.nan_to_num(since, nan=np.inf) < length)


def trades_cap_reached(trades_today: ArrayLike, config: RiskConfig = DEFAULT_RISK_CONFIG) -> Any:
    return _out(np.asarray(trades_today) >= config.max_trades_per_day)


def daily_loss_limit_hit(pnl_today: ArrayLike, config: RiskConfig = DEFAULT_RISK_CONFIG) -> Any:
    """True once the day's P&L (dollars, negative = loss) is down ``max_daily_loss`` or more."""
    return _out(np.asarray(pnl_today, dtype=np.float64) <= -config.max_daily_loss)


def entries_allowed(trading_state: TradingState | str | Sequence[TradingState | str]) -> Any:
    """Only ACTIVE allows new positions: REDUCING only reduces, HALTED only exits."""
    states = np.asarray(trading_state, dtype=object)
    return _out(np.asarray(states == TradingState.ACTIVE.value, dtype=bool))


def entry_blocked(minutes_to_close: ArrayLike, trades_today: ArrayLike,
                  minutes_since_exit: ArrayLike, exit_was_stop: ArrayLike,
                  pnl_today: ArrayLike, trading_state: Any,
                  config: RiskConfig = DEFAULT_RISK_CONFIG) -> Any:
    """The entry rules the action mask shares with :func:`check_entry` (everything but sizes)."""
    return _out(np.asarray(
        ~np.asarray(entries_allowed(trading_state))
        | np.asarray(past_entry_cutoff(minutes_to_close, config))
        | np.asarray(in_cooldown(minutes_since_exit, exit_was_stop, config))
        | np.asarray(trades_cap_reached(trades_today, config))
        | np.asarray(daily_loss_limit_hit(pnl_today, config))
    ))


def entries_over_for_the_day(minutes_to_close: ArrayLike, trades_today: ArrayLike, pnl_today: ArrayLike,
                             config: RiskConfig = DEFAULT_RISK_CONFIG) -> Any:
    """True when no entry can be allowed again this session: past the entry cutoff, at the trade
    cap or at the daily loss limit (a cooldown ends, so it does not count; the trading state is
    the operator's and is not assumed to stay)."""
    return _out(np.asarray(
        np.asarray(past_entry_cutoff(minutes_to_close, config))
        | np.asarray(trades_cap_reached(trades_today, config))
        | np.asarray(daily_loss_limit_hit(pnl_today, config))
    ))


# ---------------------------------------------------------------------------------------------
# Datetime helpers for the execution service


def entry_cutoff_time(close: datetime, config: RiskConfig = DEFAULT_RISK_CONFIG) -> datetime:
    return close - timedelta(minutes=config.entry_cutoff_minutes)


def flatten_time(close: datetime, config: RiskConfig = DEFAULT_RISK_CONFIG) -> datetime:
    return close - timedelta(minutes=config.flatten_minutes)


def must_flatten(now: datetime, close: datetime, config: RiskConfig = DEFAULT_RISK_CONFIG) -> bool:
    """True from ``flatten_minutes`` before the session close (15:55 ET, or 12:55 on a 13:00 close)."""
    return now >= flatten_time(close, config)


def cooldown_until(exit_at: datetime, was_stop: bool, config: RiskConfig = DEFAULT_RISK_CONFIG) -> datetime:
    minutes = config.cooldown_after_stop_minutes if was_stop else config.cooldown_after_exit_minutes
    return exit_at + timedelta(minutes=minutes)


@dataclass(frozen=True, slots=True)
class ExitRecord:
    at: datetime
    was_stop: bool


@dataclass(frozen=True, slots=True)
class RiskSnapshot:
    """What the risk engine knows at ``now``: positions (symbol -> contracts), today's tallies."""

    now: datetime
    close: datetime
    trading_state: TradingState = TradingState.ACTIVE
    positions: Mapping[str, int] = field(default_factory=dict)
    trades_today: int = 0
    pnl_today: float = 0.0
    last_exits: Mapping[str, ExitRecord] = field(default_factory=dict)

    def held(self, symbol: str) -> int:
        key = normalise_symbol(symbol)
        return sum(n for s, n in self.positions.items() if normalise_symbol(s) == key)

    def minutes_to_close(self) -> float:
        return (self.close - self.now).total_seconds() / 60.0

    def minutes_since_exit(self, symbol: str) -> tuple[float, bool]:
        key = normalise_symbol(symbol)
        records = [r for s, r in self.last_exits.items() if normalise_symbol(s) == key]
        if not records:
            return math.inf, False
        last = max(records, key=lambda r: r.at)
        return (self.now - last.at).total_seconds() / 60.0, last.was_stop


def _state_reason(state: TradingState | str) -> RiskReason | None:
    state = TradingState(state)
    if state is TradingState.HALTED:
        return RiskReason.TRADING_HALTED
    if state is TradingState.REDUCING:
        return RiskReason.TRADING_REDUCING
    return None


def _session_reason(snapshot: RiskSnapshot, symbol: str, config: RiskConfig) -> RiskReason | None:
    minutes_left = snapshot.minutes_to_close()
    if in_flatten_window(minutes_left, config):
        return RiskReason.FLATTEN_WINDOW
    if past_entry_cutoff(minutes_left, config):
        return RiskReason.AFTER_ENTRY_CUTOFF
    since, was_stop = snapshot.minutes_since_exit(symbol)
    if in_cooldown(since, was_stop, config):
        return RiskReason.COOLDOWN
    return None


def _account_reason(snapshot: RiskSnapshot, symbol: str, contracts: int,
                    config: RiskConfig) -> RiskReason | None:
    if trades_cap_reached(snapshot.trades_today, config):
        return RiskReason.TRADES_PER_DAY_CAP
    if daily_loss_limit_hit(snapshot.pnl_today, config):
        return RiskReason.MAX_DAILY_LOSS
    if snapshot.held(symbol) > 0:
        return RiskReason.SYMBOL_ALREADY_HELD
    if contracts > config.max_contracts_per_order:
        return RiskReason.ORDER_CONTRACTS_LIMIT
    if sum(snapshot.positions.values()) + contracts > config.max_portfolio_contracts:
        return RiskReason.PORTFOLIO_CONTRACTS_LIMIT
    if sum(1 for n in snapshot.positions.values() if n > 0) >= config.max_concurrent_positions:
        return RiskReason.MAX_CONCURRENT_POSITIONS
    return None


def check_entry(snapshot: RiskSnapshot, symbol: str, contracts: int,
                config: RiskConfig = DEFAULT_RISK_CONFIG) -> RiskReason | None:
    """Why opening ``contracts`` on ``symbol`` is refused, or None when it is allowed.

    Order: trading state, session windows (flatten, cutoff), cooldown, trades cap, daily loss,
    symbol already held, order size, portfolio contracts, concurrent positions.
    """
    if contracts <= 0:
        return RiskReason.BAD_CONTRACTS
    return (_state_reason(snapshot.trading_state)
            or _session_reason(snapshot, symbol, config)
            or _account_reason(snapshot, symbol, contracts, config))


def check_reduce(snapshot: RiskSnapshot, symbol: str, contracts: int) -> RiskReason | None:
    """Why selling ``contracts`` of the ``symbol`` position is refused. Allowed in every trading
    state and at any time: reducing risk is never blocked."""
    if contracts <= 0:
        return RiskReason.BAD_CONTRACTS
    held = snapshot.held(symbol)
    if held == 0:
        return RiskReason.NO_POSITION
    if contracts > held:
        return RiskReason.EXCEEDS_POSITION
    return None
