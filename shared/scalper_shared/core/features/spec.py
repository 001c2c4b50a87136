"""The FeatureSpec: the one definition of every observation feature, its parameters and its hash.

Both implementations (``batch`` and ``incremental``) read their constants from ``PARAMS`` and clip
with ``MARKET_CLIP_LOW`` / ``MARKET_CLIP_HIGH``, so the two cannot drift apart. Any change to a
name, a formula text, a parameter or a clip range changes ``FEATURE_SPEC.spec_hash``; bump
``SPEC_VERSION`` when a formula's code changes without its text changing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum

SPEC_VERSION = 1
WINDOW = 20


class Family(StrEnum):
    MOMENTUM = "momentum"
    ANCHORS = "anchors"
    VOLATILITY = "volatility"
    VOLUME = "volume"
    BAR_SHAPE = "bar_shape"
    MARKET_CONTEXT = "market_context"
    CLOCK = "clock"
    POSITION = "position"


@dataclass(frozen=True, slots=True)
class FeatureDef:
    """One feature: what it is, how it is computed, when it is meaningful and its clip range."""

    name: str
    family: Family
    formula: str
    units: str
    warmup: int
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Params:
    """Every constant the formulas use (bars are 1 minute; returns are in per-mille)."""

    ema_fast: int = 9
    ema_slow: int = 21
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    rsi_period: int = 14
    atr_period: int = 14
    realised_vol_window: int = 15
    volume_window: int = 20
    opening_range_minutes: int = 15
    return_horizons: tuple[int, int, int] = (1, 5, 15)
    relative_strength_horizon: int = 15
    peer_return_horizon: int = 5
    return_scale: float = 1000.0
    atr_floor_fraction: float = 1e-6
    volume_min_history: int = 2
    clock_scale_minutes: float = 390.0

    @staticmethod
    def ema_alpha(span: int) -> float:
        """Smoothing factor of an EMA with span ``span``: 2 / (span + 1)."""
        return 2.0 / (span + 1.0)

    @staticmethod
    def wilder_alpha(period: int) -> float:
        """Wilder's smoothing factor: 1 / period."""
        return 1.0 / period


PARAMS = Params()

_ATR = "max(ATR14, 1e-6*c)"
MARKET_FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("ret_1", Family.MOMENTUM, "1000*ln(c[t]/c[t-1])", "per-mille", 1, -20.0, 20.0),
    FeatureDef("ret_5", Family.MOMENTUM, "1000*ln(c[t]/c[t-5])", "per-mille", 5, -40.0, 40.0),
    FeatureDef("ret_15", Family.MOMENTUM, "1000*ln(c[t]/c[t-15])", "per-mille", 15, -60.0, 60.0),
    FeatureDef("dist_ema9", Family.MOMENTUM, f"(c - EMA9(c)) / {_ATR}", "ATR", 9, -10.0, 10.0),
    FeatureDef("dist_ema21", Family.MOMENTUM, f"(c - EMA21(c)) / {_ATR}", "ATR", 21, -15.0, 15.0),
    FeatureDef("macd_hist", Family.MOMENTUM,
               f"(EMA12(c)-EMA26(c) - EMA9(EMA12(c)-EMA26(c))) / {_ATR}", "ATR", 35, -5.0, 5.0),
    FeatureDef("rsi_centred", Family.MOMENTUM,
               "(RSI14 - 50)/50 = (W14(gain) - W14(loss)) / (W14(gain) + W14(loss)), 0 if both 0",
               "unitless", 14, -1.0, 1.0),
    FeatureDef("dist_vwap", Family.ANCHORS,
               f"(c - VWAP) / {_ATR}; VWAP = cum(tp*v)/cum(v), or cum(tp)/n while cum(v)=0 (index)",
               "ATR", 1, -30.0, 30.0),
    FeatureDef("dist_high_of_day", Family.ANCHORS, f"(c - max(h[0..t])) / {_ATR}", "ATR", 1, -20.0, 0.0),
    FeatureDef("dist_low_of_day", Family.ANCHORS, f"(c - min(l[0..t])) / {_ATR}", "ATR", 1, 0.0, 20.0),
    FeatureDef("opening_range_pos", Family.ANCHORS,
               "2*(c - OR_mid) / max(OR_high - OR_low, 1e-6*c); OR = bars of the first 15 minutes "
               "(running while forming)", "half-ranges", 15, -10.0, 10.0),
    FeatureDef("atr_pct", Family.VOLATILITY, "1000 * ATR14 / c; TR uses the previous close",
               "per-mille", 14, 0.0, 20.0),
    FeatureDef("realised_vol_15", Family.VOLATILITY,
               "sqrt(15/n * sum(ret_1^2 over the last n<=15 bars))", "per-mille per 15 min", 15, 0.0, 40.0),
    FeatureDef("volume_z", Family.VOLUME,
               "(v - mean(v[t-20..t-1])) / std(v[t-20..t-1]) (population); 0 with <2 bars or std 0",
               "std devs", 20, -5.0, 10.0),
    FeatureDef("body_ratio", Family.BAR_SHAPE, "(c - o) / (h - l), 0 if h = l", "unitless", 0, -1.0, 1.0),
    FeatureDef("wick_balance", Family.BAR_SHAPE,
               "((min(o,c) - l) - (h - max(o,c))) / (h - l), 0 if h = l", "unitless", 0, -1.0, 1.0),
    FeatureDef("relative_strength", Family.MARKET_CONTEXT,
               "ret_15(symbol) - ret_15(reference); reference I:SPX, else SPY; 0 if self or absent",
               "per-mille", 15, -40.0, 40.0),
    FeatureDef("peer_ret_5", Family.MARKET_CONTEXT, "ret_5(peer); peer SPY<->QQQ, I:SPX->QQQ; 0 if absent",
               "per-mille", 5, -40.0, 40.0),
    FeatureDef("minutes_since_open", Family.CLOCK, "(bar_start + 1 min - open) / 390 min", "sessions",
               0, 0.0, 1.0),
    FeatureDef("minutes_to_close", Family.CLOCK, "(close - bar_start - 1 min) / 390 min; early closes "
               "from the calendar", "sessions", 0, 0.0, 1.0),
    FeatureDef("theta_pressure", Family.CLOCK,
               "1 - sqrt(minutes_to_close / 390): share of a 0DTE ATM premium's time value already "
               "decayed (premium ~ sqrt(T))", "unitless", 0, 0.0, 1.0),
)

POSITION_FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("position_side", Family.POSITION, "+1 call, -1 put, 0 flat", "side", 0, -1.0, 1.0),
    FeatureDef("unrealised_pnl_pct", Family.POSITION,
               "(mark premium - average premium) / average premium; 0 when flat", "fraction", 0, -1.0, 5.0),
)


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """The ordered market features (from bars) followed by the position features (from the book)."""

    market: tuple[FeatureDef, ...] = MARKET_FEATURES
    position: tuple[FeatureDef, ...] = POSITION_FEATURES
    params: Params = PARAMS
    window: int = WINDOW
    version: int = SPEC_VERSION
    spec_hash: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "spec_hash", _hash(self))

    @property
    def features(self) -> tuple[FeatureDef, ...]:
        return self.market + self.position

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def market_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.market)

    @property
    def n_market(self) -> int:
        return len(self.market)

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def warmup(self) -> int:
        """Bars into a session after which every market feature is fully formed."""
        return max(f.warmup for f in self.market)

    def index(self, name: str) -> int:
        return self.names.index(name)


def canonical_json(spec: FeatureSpec) -> str:
    """The spec as canonical JSON (sorted keys, no spaces): the input of the hash."""
    body = {
        "version": spec.version,
        "window": spec.window,
        "params": asdict(spec.params),
        "features": [{**asdict(f), "family": str(f.family)} for f in spec.features],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def _hash(spec: FeatureSpec) -> str:
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()


FEATURE_SPEC = FeatureSpec()
N_MARKET = FEATURE_SPEC.n_market
N_FEATURES = FEATURE_SPEC.n_features
MARKET_CLIP_LOW: tuple[float, ...] = tuple(f.low for f in MARKET_FEATURES)
MARKET_CLIP_HIGH: tuple[float, ...] = tuple(f.high for f in MARKET_FEATURES)
MARKET_INDEX: dict[str, int] = {f.name: i for i, f in enumerate(MARKET_FEATURES)}

REFERENCE_SYMBOLS = ("I:SPX", "SPY")
PEERS = {"SPY": "QQQ", "QQQ": "SPY", "I:SPX": "QQQ"}


def reference_symbol(available: set[str] | frozenset[str]) -> str | None:
    """The market reference: I:SPX when it is among ``available``, else SPY, else None."""
    return next((s for s in REFERENCE_SYMBOLS if s in available), None)


def peer_symbol(symbol: str) -> str | None:
    return PEERS.get(symbol)
