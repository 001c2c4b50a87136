"""Per-symbol live state: the observation window from ``features.vectors`` and the mask inputs from
``positions.state``.

Mask inputs follow :func:`scalper_shared.core.masks.action_mask`: the position side comes from the
latest position state; ``trades_today`` counts flat -> open transitions of every symbol (the account)
on the state's New York date; the cooldown runs from the symbol's last open -> flat transition (a
stop-out when the last open state was down ``stop_loss_pct`` or more); ``pnl_today`` sums the
realised P&L of the day's closed positions of every symbol. The risk config is the served model's. The
trading state is ACTIVE unless a request says otherwise (``positions.state`` does not carry it; the
execution service's risk engine enforces it regardless).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import lru_cache

import numpy as np

from scalper_shared.core.arrays import BoolArray
from scalper_shared.core.calendar import session_date
from scalper_shared.core.features import (
    FEATURE_SPEC,
    FeatureRow,
    FeatureSpec,
    ObservationWindow,
    PositionFeatures,
)
from scalper_shared.core.features.sessions import MINUTE_MS, session_of
from scalper_shared.core.masks import action_mask
from scalper_shared.core.risk import DEFAULT_RISK_CONFIG, RiskConfig, stop_triggered
from scalper_shared.schema.messages import FeatureVector, PositionSide, PositionState, TradingState


def minute_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000) // MINUTE_MS * MINUTE_MS


def minute_datetime(minute: int) -> datetime:
    return datetime.fromtimestamp(minute / 1000, tz=UTC)


CALENDAR_FROM_MS = int(datetime(1990, 1, 1, tzinfo=UTC).timestamp() * 1000)
CALENDAR_TO_MS = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp() * 1000)


def in_calendar(minute: int) -> bool:
    """Whether ``minute`` lies in the years the trading calendar is asked about at all."""
    return CALENDAR_FROM_MS <= minute < CALENDAR_TO_MS


def minutes_to_close_at(minute: int) -> float:
    """Whole minutes from the end of the bar starting at ``minute`` (epoch ms) to the session close,
    as the training environment counts them; 0 outside regular hours (no entries then)."""
    if not in_calendar(minute):
        return 0.0
    bounds = session_of(minute)
    if bounds is None:
        return 0.0
    return float((bounds.close_ms - minute) // MINUTE_MS - 1)


@dataclass(frozen=True, slots=True)
class MaskInputs:
    """Everything :func:`action_mask` reads besides the risk config."""

    position: PositionSide = PositionSide.FLAT
    minutes_to_close: float = 0.0
    trading_state: TradingState = TradingState.ACTIVE
    trades_today: int = 0
    minutes_since_exit: float = math.inf
    exit_was_stop: bool = False
    pnl_today: float = 0.0

    def mask(self, config: RiskConfig = DEFAULT_RISK_CONFIG) -> BoolArray:
        """:func:`action_mask` of these inputs (memoised: read-only; the same inputs recur every minute)."""
        return _mask_of(self, config)


@lru_cache(maxsize=16_384)
def _mask_of(inputs: MaskInputs, config: RiskConfig) -> BoolArray:
    mask = action_mask(inputs.position, minutes_to_close=inputs.minutes_to_close,
                       trading_state=inputs.trading_state, trades_today=inputs.trades_today,
                       minutes_since_exit=inputs.minutes_since_exit, exit_was_stop=inputs.exit_was_stop,
                       pnl_today=inputs.pnl_today, config=config)
    mask.setflags(write=False)
    return mask


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    symbol: str
    minute: int
    observation: np.ndarray
    inputs: MaskInputs
    unavailable: frozenset[str] = frozenset()
    """Features marked unavailable in a row of the observation (training never saw such a window)."""


@dataclass
class _Symbol:
    window: ObservationWindow
    position: PositionState | None = None
    day: date | None = None
    trades_today: int = 0
    pnl_today: float = 0.0
    last_exit: datetime | None = None
    exit_was_stop: bool = False
    stop_seen: bool = False
    """The open trade was marked at or below the stop (its exit is the stop's, even if a later mark
    recovered while the stop order waited for its fill)."""


class LiveState:
    """Thread-safe: consumer threads write, request handlers and the decision maker read."""

    def __init__(self, spec: FeatureSpec = FEATURE_SPEC, risk: RiskConfig = DEFAULT_RISK_CONFIG) -> None:
        self.spec = spec
        self.risk = risk
        self._symbols: dict[str, _Symbol] = {}
        self._lock = threading.Lock()

    def _entry(self, symbol: str) -> _Symbol:
        entry = self._symbols.get(symbol)
        if entry is None:
            entry = self._symbols[symbol] = _Symbol(ObservationWindow(self.spec))
        return entry

    def push_features(self, vector: FeatureVector) -> bool:
        """Add the vector's row to its symbol's window; a vector for a minute still in the window
        with other content replaces that row (the feature service superseded a row computed without
        its context). False (ignored) for another spec, a wrong length, or an older or repeated row."""
        if vector.spec_hash != self.spec.spec_hash or len(vector.values) != self.spec.n_market:
            return False
        minute = minute_ms(vector.minute)
        row = FeatureRow(minute, tuple(vector.values), True)
        with self._lock:
            entry = self._entry(vector.symbol)
            last = entry.window.last_minute
            if last is not None and minute <= last and session_of(minute) == session_of(last):
                return entry.window.replace(row, tuple(vector.unavailable))
            entry.window.push(row, tuple(vector.unavailable))
        return True

    def update_position(self, state: PositionState) -> bool:
        """Track the symbol's position and the day's trades, exits and P&L; False for an older state."""
        with self._lock:
            entry = self._entry(state.symbol)
            previous = entry.position
            if previous is not None and state.as_of < previous.as_of:
                return False
            day = session_date(state.as_of)
            if entry.day != day:
                entry.day, entry.trades_today, entry.pnl_today = day, 0, 0.0
                entry.last_exit, entry.exit_was_stop = None, False
            was_open = previous is not None and previous.side is not PositionSide.FLAT
            is_open = state.side is not PositionSide.FLAT
            if is_open and not was_open:
                entry.trades_today += 1
                entry.stop_seen = False
            if is_open:
                entry.stop_seen |= self._at_stop(state)
            if was_open and not is_open and previous is not None:
                entry.last_exit = state.as_of
                entry.exit_was_stop = entry.stop_seen
                entry.pnl_today += state.realised_pnl
            entry.position = state
        return True

    def _at_stop(self, state: PositionState) -> bool:
        """The risk layer's own stop test on the state's mark (its P&L percentage when unpriced)."""
        if state.avg_premium > 0 and state.mark_premium > 0:
            return bool(stop_triggered(state.avg_premium, state.mark_premium, self.risk))
        return state.unrealised_pnl_pct <= -self.risk.stop_loss_pct

    def position_marked(self, symbol: str, minute: int) -> bool:
        """True unless the symbol holds a position not yet marked on the bar starting at ``minute``:
        a decision on that bar must see the position as the risk layer left it after the bar."""
        with self._lock:
            entry = self._symbols.get(symbol)
            position = entry.position if entry is not None else None
            if position is None or position.side is PositionSide.FLAT:
                return True
            return position.as_of.timestamp() * 1000 >= minute + MINUTE_MS

    def mask_inputs(self, symbol: str, minute: int) -> MaskInputs:
        """The symbol's mask inputs for a decision on the bar starting at ``minute``."""
        with self._lock:
            entry = self._symbols.get(symbol)
            return self._inputs(entry, minute)

    def _inputs(self, entry: _Symbol | None, minute: int) -> MaskInputs:
        base = MaskInputs(minutes_to_close=minutes_to_close_at(minute))
        if entry is None or not in_calendar(minute):
            return base
        same_day = entry.day is not None and entry.day == session_date(minute_datetime(minute))
        since_exit = math.inf
        if same_day and entry.last_exit is not None:
            since_exit = max(0.0, (minute + MINUTE_MS - entry.last_exit.timestamp() * 1000) / MINUTE_MS)
        position = entry.position.side if entry.position is not None else PositionSide.FLAT
        day = session_date(minute_datetime(minute))
        account = [e for e in self._symbols.values() if e.day == day]  # trades and P&L are the account's
        return replace(base, position=position, trades_today=sum(e.trades_today for e in account),
                       minutes_since_exit=since_exit, exit_was_stop=same_day and entry.exit_was_stop,
                       pnl_today=sum(e.pnl_today for e in account))

    def snapshot(self, symbol: str) -> LiveSnapshot | None:
        """The current observation and mask inputs of ``symbol``; None before its first features."""
        with self._lock:
            entry = self._symbols.get(symbol)
            if entry is None or entry.window.last_minute is None:
                return None
            minute = entry.window.last_minute
            observation = entry.window.observation(PositionFeatures.from_state(entry.position))
            return LiveSnapshot(symbol, minute, observation, self._inputs(entry, minute), entry.window.unavailable)
