"""One example envelope per (type, version): the contract the golden files pin down."""

from __future__ import annotations

from datetime import UTC, datetime

from scalper_shared.core.actions import Action
from scalper_shared.schema import (
    Bar,
    Envelope,
    FeatureVector,
    Message,
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

T0 = datetime(2025, 7, 1, 13, 31, tzinfo=UTC)
T1 = datetime(2025, 7, 1, 13, 32, 0, 250000, tzinfo=UTC)

EXAMPLES: list[Message] = [
    Bar(symbol="SPY", start=T0, open=617.1, high=617.5, low=616.9, close=617.42, volume=152340.0,
        vwap=617.2, trade_count=1830, session=Session.REGULAR, source="polygon"),
    FeatureVector(symbol="QQQ", minute=T0, spec_hash="abc123", values=(0.1, -0.25, 3.0), unavailable=("peer_ret_5",)),
    PolicyDecision(symbol="SPY", minute=T0, action=Action.BUY_CALL,
                   probabilities=(0.5, 0.3, 0.1, 0.0, 0.0, 0.1),
                   mask=(True, True, True, False, False, False), model_id="m-1", spec_hash="abc123"),
    SubmitOrder(client_order_id="SPY-20250701-0931-buy-1", symbol="SPY", option_symbol="SPY250701C00617000",
                right=OptionRight.CALL, side=OrderSide.BUY, contracts=10, limit_price=1.25,
                reason="policy BUY_CALL", decision_id="d-1"),
    OrderAccepted(client_order_id="SPY-20250701-0931-buy-1", broker_order_id="b-77"),
    OrderFilled(client_order_id="SPY-20250701-0931-buy-1", fill_id="f-1", contracts=10, price=1.26,
                commission=6.5, filled_at=T1),
    OrderDenied(client_order_id="SPY-20250701-1531-buy-2", symbol="SPY", reason="entry_cutoff",
                detail="no new entries after 15:30 ET"),
    OrderCanceled(client_order_id="SPY-20250701-0931-buy-1", reason="kill switch"),
    PositionState(symbol="SPY", side=PositionSide.CALL, contracts=10, option_symbol="SPY250701C00617000",
                  avg_premium=1.26, mark_premium=1.4, unrealised_pnl_pct=11.11, realised_pnl=0.0, as_of=T1),
    TradingStateChanged(previous=TradingState.ACTIVE, current=TradingState.HALTED, reason="max daily loss"),
]


def example_envelope(message: Message) -> Envelope:
    return Envelope(type=message.TYPE, version=message.VERSION, id=f"{message.TYPE}-1", ts_event=T0,
                    ts_init=T1, source="golden", correlation_id="corr-1", payload=message)
