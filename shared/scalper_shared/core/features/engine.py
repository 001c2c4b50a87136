"""Streaming features for several symbols at once: context first, then each symbol's update.

The feature service and the streaming side of the agreement test drive this: hand it every bar
of one minute (all symbols), get back each symbol's completed rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from scalper_shared.core.features.context import ContextTracker
from scalper_shared.core.features.incremental import BarInput, FeatureRow, IncrementalFeatures
from scalper_shared.core.features.sessions import session_of
from scalper_shared.core.features.spec import FEATURE_SPEC, FeatureSpec, peer_symbol, reference_symbol


class FeatureEngine:
    """Per-symbol incremental state plus the shared cross-symbol context."""

    def __init__(self, symbols: Iterable[str], spec: FeatureSpec = FEATURE_SPEC) -> None:
        self.symbols = tuple(symbols)
        self.spec = spec
        self.context = ContextTracker(reference_symbol(frozenset(self.symbols)), spec.params)
        self._states = {s: IncrementalFeatures(s, spec) for s in self.symbols}
        peers = {s: peer_symbol(s) for s in self.symbols}
        self._lookups = {s: self.context.lookup(s, p if p in self._states else None) for s, p in peers.items()}

    def on_minute(self, bars: Mapping[str, BarInput]) -> dict[str, list[FeatureRow]]:
        """Consume the bars of one minute (symbol -> bar); returns each symbol's new rows."""
        for symbol, bar in bars.items():
            bounds = session_of(bar.t)
            if bounds is not None and symbol in self._states:
                self.context.observe(symbol, bounds, bar.t, bar.o, bar.c)
        return {symbol: self._states[symbol].update(bar, self._lookups[symbol])
                for symbol, bar in bars.items() if symbol in self._states}
