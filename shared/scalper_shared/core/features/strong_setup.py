"""The strong-setup rule, defined once: reward shaping, diagnostics and the rule baseline import it.

A strong call setup is an aligned intraday up-move a momentum scalper would buy a call on: price
above its fast and slow EMAs and VWAP, rising over 5 and 15 minutes with a positive MACD
histogram, RSI strong but not exhausted, trading beyond the opening range with at least normal
volume, outside the first and last minutes of the session. The put setup is the mirror image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from scalper_shared.core.arrays import FloatArray
from scalper_shared.core.features.spec import MARKET_INDEX, PARAMS


class SetupSide(IntEnum):
    PUT = -1
    NONE = 0
    CALL = 1


@dataclass(frozen=True, slots=True)
class StrongSetupRule:
    """Thresholds, in the units of the spec (see docs/features.md)."""

    min_ret_5: float = 0.3
    min_ret_15: float = 0.6
    min_dist_ema9: float = 0.0
    min_dist_ema21: float = 0.5
    min_dist_vwap: float = 0.0
    min_macd_hist: float = 0.0
    rsi_band: tuple[float, float] = (0.2, 0.8)
    min_opening_range_pos: float = 1.0
    min_volume_z: float = 0.0
    min_minutes_since_open: float = 15.0
    min_minutes_to_close: float = 15.0


STRONG_SETUP = StrongSetupRule()


def strong_setup(values: npt.ArrayLike, rule: StrongSetupRule = STRONG_SETUP,
                 volume_available: bool | npt.ArrayLike = True) -> npt.NDArray[np.int8]:
    """+1 (call), -1 (put) or 0 for each market-feature row of ``values`` (shape ``(..., 21)``).

    ``volume_available`` (one flag, or one per row): False where the volume features are marked
    unavailable (an equity imported without volume, ``core.features.availability``). The volume
    condition then fails, so no setup fires: "at least normal volume" cannot be shown without volume,
    and ``volume_z`` = 0 would otherwise pass it on every row.
    """
    x = np.asarray(values, dtype=np.float64)

    def col(name: str) -> FloatArray:
        return x[..., MARKET_INDEX[name]]

    scale = PARAMS.clock_scale_minutes
    in_hours = ((col("minutes_since_open") * scale >= rule.min_minutes_since_open)
                & (col("minutes_to_close") * scale >= rule.min_minutes_to_close)
                & (col("volume_z") >= rule.min_volume_z) & np.asarray(volume_available, dtype=bool))
    low, high = rule.rsi_band
    up = _directional(col, 1.0, rule) & (col("rsi_centred") >= low) & (col("rsi_centred") <= high)
    down = _directional(col, -1.0, rule) & (col("rsi_centred") <= -low) & (col("rsi_centred") >= -high)
    return (np.where(in_hours & up, 1, 0) - np.where(in_hours & down, 1, 0)).astype(np.int8)


def _directional(col: Callable[[str], FloatArray], sign: float, rule: StrongSetupRule) -> npt.NDArray[np.bool_]:
    out: npt.NDArray[np.bool_] = ((sign * col("ret_5") >= rule.min_ret_5)
                                  & (sign * col("ret_15") >= rule.min_ret_15)
                                  & (sign * col("dist_ema9") > rule.min_dist_ema9)
                                  & (sign * col("dist_ema21") >= rule.min_dist_ema21)
                                  & (sign * col("dist_vwap") > rule.min_dist_vwap)
                                  & (sign * col("macd_hist") > rule.min_macd_hist)
                                  & (sign * col("opening_range_pos") >= rule.min_opening_range_pos))
    return out


def setup_side(row: npt.ArrayLike, rule: StrongSetupRule = STRONG_SETUP, volume_available: bool = True) -> SetupSide:
    """The setup of a single market-feature row."""
    return SetupSide(int(strong_setup(row, rule, volume_available)))


def firing_rates(values: npt.ArrayLike, rule: StrongSetupRule = STRONG_SETUP) -> tuple[float, float]:
    """Share of rows with a call setup and with a put setup."""
    sides = strong_setup(values, rule)
    n = max(sides.size, 1)
    return float((sides == 1).sum() / n), float((sides == -1).sum() / n)
