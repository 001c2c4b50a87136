"""Wire schema: the versioned envelope, the message types, stream names and the JSON codec."""

from scalper_shared.schema import streams
from scalper_shared.schema.codec import CODEC, Codec, DecodeError
from scalper_shared.schema.envelope import Envelope, Message, make_envelope
from scalper_shared.schema.messages import (
    Action,
    Bar,
    FeatureVector,
    OptionRight,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderFilled,
    OrderSide,
    PolicyDecision,
    PositionSide,
    PositionState,
    Session,
    SubmitOrder,
    TradingState,
    TradingStateChanged,
)

__all__ = [
    "CODEC", "Codec", "DecodeError", "Envelope", "Message", "make_envelope", "Action", "Bar",
    "FeatureVector", "OptionRight", "OrderAccepted", "OrderCanceled", "OrderDenied", "OrderFilled",
    "OrderSide", "PolicyDecision", "PositionSide", "PositionState", "Session", "SubmitOrder",
    "TradingState", "TradingStateChanged", "streams",
]
