"""The domain's vocabulary: the enumerations the core reasons with and the wire messages carry.

They live in the core (not in :mod:`scalper_shared.schema.messages`, which re-exports them) so the
core never imports the schema: the schema builds on the core, never the reverse.
"""

from __future__ import annotations

from enum import StrEnum


class Session(StrEnum):
    PRE = "pre"
    REGULAR = "regular"
    POST = "post"


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OptionRight(StrEnum):
    CALL = "call"
    PUT = "put"


class PositionSide(StrEnum):
    FLAT = "flat"
    CALL = "call"
    PUT = "put"


class TradingState(StrEnum):
    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"
