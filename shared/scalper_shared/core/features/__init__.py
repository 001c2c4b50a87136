"""Observation features: the spec, batch and incremental implementations, strong setup, observations.

See docs/features.md for the feature table and the rules (sessions, gaps, warm-up, context).
"""

from scalper_shared.core.features.batch import FeatureDay, FeatureFrame, session_features, symbol_features
from scalper_shared.core.features.context import ContextLookup, ContextTracker, MarketContext, no_context
from scalper_shared.core.features.engine import FeatureEngine
from scalper_shared.core.features.incremental import BarInput, FeatureRow, IncrementalFeatures
from scalper_shared.core.features.observation import (
    FLAT,
    ObservationWindow,
    PositionFeatures,
    build_observation,
    observation_at,
)
from scalper_shared.core.features.sessions import BarArrays, SessionBars, session_of, split_sessions
from scalper_shared.core.features.spec import (
    FEATURE_SPEC,
    N_FEATURES,
    N_MARKET,
    FeatureDef,
    FeatureSpec,
    peer_symbol,
    reference_symbol,
)
from scalper_shared.core.features.strong_setup import (
    STRONG_SETUP,
    SetupSide,
    StrongSetupRule,
    firing_rates,
    setup_side,
    strong_setup,
)

__all__ = [
    "FEATURE_SPEC", "FLAT", "N_FEATURES", "N_MARKET", "STRONG_SETUP", "BarArrays", "BarInput",
    "ContextLookup", "ContextTracker", "FeatureDay", "FeatureDef", "FeatureEngine", "FeatureFrame", "FeatureRow", "FeatureSpec",
    "IncrementalFeatures", "MarketContext", "ObservationWindow", "PositionFeatures", "SessionBars",
    "SetupSide", "StrongSetupRule", "build_observation", "firing_rates", "no_context",
    "observation_at", "peer_symbol", "reference_symbol", "session_features", "session_of",
    "setup_side", "split_sessions", "strong_setup", "symbol_features",
]
