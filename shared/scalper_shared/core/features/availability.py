"""Which market features of a symbol-minute were computed without their inputs.

A vector carries the names of such features (``FeatureVector.unavailable``, the ``features`` table's
``unavailable`` column), so a consumer can tell an observation training saw from one it never saw:

- **Missing peers** (:data:`MISSING_PEERS`): the minute was released after the service's wait while
  the reference or peer symbol had not yet shown a bar of that minute or later; the cross-symbol
  features used the other symbol's forward-filled close, which its late bar may contradict.
  ``relative_strength`` depends on the reference, ``peer_ret_5`` on the peer.
- **Missing volume** (:data:`VOLUME_FEATURES`): an equity imported without volume (``scalper ingest
  file --no-volume``, stored NULL); ``volume_z`` is 0 and ``dist_vwap`` measures the time-weighted
  typical price (the index rule) instead of the VWAP. Index symbols (``I:``) never have volume and
  training sees them that way, so their features are not marked.

The batch build marks missing volume too; it never marks missing peers (it sees every stored bar, so
its context is the final one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from scalper_shared.core.features.spec import MARKET_INDEX, peer_symbol, reference_symbol

INDEX_PREFIX = "I:"
REFERENCE_FEATURES: tuple[str, ...] = ("relative_strength",)
PEER_FEATURES: tuple[str, ...] = ("peer_ret_5",)
MISSING_PEERS: tuple[str, ...] = REFERENCE_FEATURES + PEER_FEATURES
VOLUME_FEATURES: tuple[str, ...] = ("dist_vwap", "volume_z")


def is_index(symbol: str) -> bool:
    """True for index tickers (``I:SPX``), which carry no volume."""
    return symbol.startswith(INDEX_PREFIX)


def in_spec_order(names: Iterable[str]) -> tuple[str, ...]:
    """Distinct feature names in the spec's order (the canonical form on the wire and in the table)."""
    return tuple(sorted(set(names), key=MARKET_INDEX.__getitem__))


def context_symbols(symbol: str, universe: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """The other symbols of ``universe`` whose bars ``symbol``'s features use -> the features they feed."""
    members = frozenset(universe)
    out: dict[str, list[str]] = {}
    reference = reference_symbol(members)
    if reference is not None and reference != symbol:
        out.setdefault(reference, []).extend(REFERENCE_FEATURES)
    peer = peer_symbol(symbol)
    if peer is not None and peer in members:
        out.setdefault(peer, []).extend(PEER_FEATURES)
    return {other: tuple(names) for other, names in out.items()}


def missing_context(symbol: str, minute_ms: int, universe: Iterable[str],
                    seen_through: Callable[[str], int | None]) -> tuple[str, ...]:
    """The context features of ``symbol`` at ``minute_ms`` whose symbol has not shown a bar of that
    minute or later (``seen_through(other)``: the start of its newest bar seen, None if none)."""
    names: list[str] = []
    for other, features in context_symbols(symbol, universe).items():
        newest = seen_through(other)
        if newest is None or newest < minute_ms:
            names.extend(features)
    return in_spec_order(names)
