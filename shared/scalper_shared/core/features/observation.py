"""The 20 x 23 observation: the last 20 minutes of market features plus the current position.

Shared by the training environment, the backtest and the policy service. Rules:

- Rows are oldest first; the last row is the current minute. The window never crosses a session
  open: in the first 19 minutes of a session the missing older rows are zeros.
- The two position columns hold the position of the current step on every row (the policy acts
  on the position it has now, not on the one it had 20 minutes ago).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from scalper_shared.core.enums import PositionSide
from scalper_shared.core.features.incremental import FeatureRow
from scalper_shared.core.features.sessions import SessionBounds, session_of
from scalper_shared.core.features.spec import FEATURE_SPEC, FeatureSpec
from scalper_shared.core.lifecycle import Side

Observation = npt.NDArray[np.float32]


class PositionLike(Protocol):
    """What :meth:`PositionFeatures.from_state` reads of execution's ``PositionState`` message."""

    @property
    def side(self) -> PositionSide: ...

    @property
    def unrealised_pnl_pct(self) -> float: ...


@dataclass(frozen=True, slots=True)
class PositionFeatures:
    """``side`` +1 call, -1 put, 0 flat; ``unrealised_pnl_pct`` as a fraction (-0.15 = -15%)."""

    side: int = 0
    unrealised_pnl_pct: float = 0.0

    def __post_init__(self) -> None:
        if self.side not in tuple(Side):
            raise ValueError(f"side must be -1, 0 or +1, got {self.side}")

    @classmethod
    def from_state(cls, state: PositionLike | None) -> PositionFeatures:
        """From execution's ``positions.state`` message (None means flat)."""
        if state is None or Side.of_position(state.side) is Side.FLAT:
            return FLAT
        return cls(int(Side.of_position(state.side)), state.unrealised_pnl_pct)

    def values(self, spec: FeatureSpec = FEATURE_SPEC) -> tuple[float, float]:
        side_def, pnl_def = spec.position
        pnl = 0.0 if self.side == 0 else min(max(self.unrealised_pnl_pct, pnl_def.low), pnl_def.high)
        return float(self.side), pnl


FLAT = PositionFeatures()


def build_observation(market_rows: npt.ArrayLike, position: PositionFeatures = FLAT,
                      spec: FeatureSpec = FEATURE_SPEC) -> Observation:
    """The observation from up to ``window`` market rows of one session (oldest first)."""
    rows = np.asarray(market_rows, dtype=np.float64).reshape(-1, spec.n_market)[-spec.window:]
    out = np.zeros((spec.window, spec.n_features), dtype=np.float32)
    if len(rows):
        out[spec.window - len(rows):, :spec.n_market] = rows
    out[:, spec.n_market:] = position.values(spec)
    return out


def observation_at(session_values: npt.ArrayLike, index: int, position: PositionFeatures = FLAT,
                   spec: FeatureSpec = FEATURE_SPEC) -> Observation:
    """The observation at row ``index`` of one session's feature matrix (batch: env, backtest)."""
    values = np.asarray(session_values)
    if not 0 <= index < len(values):
        raise IndexError(f"row {index} outside a session of {len(values)} rows")
    return build_observation(values[max(0, index - spec.window + 1):index + 1], position, spec)


class ObservationWindow:
    """Live form: keeps one symbol's last ``window`` feature rows of the current session.

    Each row may carry the names of features computed without their inputs (``unavailable``); a
    row pushed again for a minute still in the window replaces it (a vector superseded once its
    context arrived), and ``unavailable`` tells whether any row of the window is still marked.
    """

    def __init__(self, spec: FeatureSpec = FEATURE_SPEC) -> None:
        self.spec = spec
        self._rows: deque[tuple[float, ...]] = deque(maxlen=spec.window)
        self._minutes: deque[int] = deque(maxlen=spec.window)
        self._marks: deque[tuple[str, ...]] = deque(maxlen=spec.window)
        self._session: SessionBounds | None = None
        self.last_minute: int | None = None

    def push(self, row: FeatureRow, unavailable: tuple[str, ...] = ()) -> None:
        """Append a feature row; a row of a new session clears the window first."""
        session = session_of(row.minute)
        if session != self._session:
            self._rows.clear()
            self._minutes.clear()
            self._marks.clear()
            self._session = session
        self._rows.append(row.values)
        self._minutes.append(row.minute)
        self._marks.append(unavailable)
        self.last_minute = row.minute

    def replace(self, row: FeatureRow, unavailable: tuple[str, ...] = ()) -> bool:
        """Replace the row of ``row.minute`` if the window holds it; False otherwise."""
        if session_of(row.minute) != self._session or row.minute not in self._minutes:
            return False
        index = self._minutes.index(row.minute)
        if self._rows[index] == row.values and self._marks[index] == unavailable:
            return False
        self._rows[index] = row.values
        self._marks[index] = unavailable
        return True

    @property
    def unavailable(self) -> frozenset[str]:
        """Every feature marked unavailable in a row of the window."""
        return frozenset(name for marks in self._marks for name in marks)

    def observation(self, position: PositionFeatures = FLAT) -> Observation:
        return build_observation(list(self._rows), position, self.spec)

    def __len__(self) -> int:
        return len(self._rows)
