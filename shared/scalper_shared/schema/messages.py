"""Message types on the wire. Commands are imperative (``SubmitOrder``), events past tense.

Every type is frozen and versioned; bump ``VERSION`` and register an upcaster in
``scalper_shared.schema.codec`` when a field changes meaning or shape.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator

from scalper_shared.core.actions import N_ACTIONS, Action
from scalper_shared.core.enums import OptionRight, OrderSide, PositionSide, Session, TradingState
from scalper_shared.schema.envelope import Message


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Finite = Annotated[float, AfterValidator(_finite)]
Price = Annotated[float, Field(gt=0), AfterValidator(_finite)]
Symbol = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Z0-9:.]+$")]
FeatureName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must be timezone-aware (UTC)")
    return value


UtcTime = Annotated[datetime, AfterValidator(_utc)]


class Bar(Message):
    """One 1-minute bar; ``start`` is the bar's opening minute in UTC."""

    TYPE = "bar"

    symbol: Symbol
    start: UtcTime
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Annotated[float, Field(ge=0), AfterValidator(_finite)] | None = None
    vwap: Price | None = None
    trade_count: Annotated[int, Field(ge=0)] | None = None
    session: Session
    source: str

    @model_validator(mode="after")
    def _ohlc_consistent(self) -> Bar:
        if self.high < self.low:
            raise ValueError(f"high {self.high} is below low {self.low}")
        if not (self.low <= self.open <= self.high and self.low <= self.close <= self.high):
            raise ValueError("open and close must lie within [low, high]")
        return self


class FeatureVector(Message):
    """The market features of one symbol-minute, in the order of the FeatureSpec ``spec_hash``."""

    TYPE = "feature_vector"
    VERSION = 2  # v2: ``unavailable`` (v1 payloads are upcast with none marked)

    symbol: Symbol
    minute: UtcTime
    spec_hash: str
    values: tuple[Finite, ...]
    unavailable: tuple[FeatureName, ...] = Field(default=(), max_length=64)
    """Features computed without their inputs (``scalper_shared.core.features.availability``): missing
    peers (a minute released before the reference's or peer's bar) or missing volume. Empty on a
    vector training could have seen; the policy decides on no window holding a marked row."""


class PolicyDecision(Message):
    """What the promoted policy chose for one symbol-minute, under the mask it was given."""

    TYPE = "policy_decision"

    symbol: Symbol
    minute: UtcTime
    action: Action
    probabilities: tuple[Finite, ...]
    mask: tuple[bool, ...]
    model_id: str
    spec_hash: str
    deterministic: bool = True

    @field_validator("probabilities", "mask")
    @classmethod
    def _six(cls, value: tuple[object, ...]) -> tuple[object, ...]:
        if len(value) != N_ACTIONS:
            raise ValueError(f"needs {N_ACTIONS} entries, got {len(value)}")
        return value


class SubmitOrder(Message):
    """Command to the broker side of execution. ``client_order_id`` is deterministic and unique."""

    TYPE = "submit_order"

    client_order_id: str
    symbol: Symbol
    option_symbol: str
    right: OptionRight
    side: OrderSide
    contracts: Annotated[int, Field(gt=0)]
    limit_price: Price | None = None
    reason: str
    decision_id: str | None = None


class OrderAccepted(Message):
    TYPE = "order_accepted"

    client_order_id: str
    broker_order_id: str


class OrderFilled(Message):
    TYPE = "order_filled"

    client_order_id: str
    fill_id: str
    contracts: Annotated[int, Field(gt=0)]
    price: Price
    commission: Annotated[float, Field(ge=0)]
    filled_at: UtcTime


class OrderDenied(Message):
    """A risk refusal: an event with its reason, never an exception."""

    TYPE = "order_denied"

    client_order_id: str
    symbol: Symbol
    reason: str
    detail: str = ""


class OrderCanceled(Message):
    TYPE = "order_canceled"

    client_order_id: str
    reason: str


class PositionState(Message):
    """The option position held on one underlying symbol, as execution sees it."""

    TYPE = "position_state"

    symbol: Symbol
    side: PositionSide
    contracts: Annotated[int, Field(ge=0)]
    option_symbol: str | None = None
    avg_premium: Annotated[float, Field(ge=0)] = 0.0
    mark_premium: Annotated[float, Field(ge=0)] = 0.0
    unrealised_pnl_pct: Finite = 0.0
    realised_pnl: Finite = 0.0
    as_of: UtcTime

    @model_validator(mode="after")
    def _flat_has_no_contracts(self) -> PositionState:
        if (self.side is PositionSide.FLAT) != (self.contracts == 0):
            raise ValueError("a flat position has 0 contracts and an open one more than 0")
        return self


class TradingStateChanged(Message):
    TYPE = "trading_state_changed"

    previous: TradingState
    current: TradingState
    reason: str


ALL_MESSAGE_TYPES: tuple[type[Message], ...] = (
    Bar, FeatureVector, PolicyDecision, SubmitOrder, OrderAccepted, OrderFilled, OrderDenied,
    OrderCanceled, PositionState, TradingStateChanged,
)
