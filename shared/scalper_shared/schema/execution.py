"""Execution API types: what ``GET /v1/risk/state`` and the risk commands answer (the CLI reads them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from scalper_shared.core.enums import TradingState


class RiskStateView(BaseModel):
    """The account's trading state and today's tally, as the execution service sees them."""

    trading_state: TradingState
    pnl_today: float = Field(description="Realised plus unrealised P&L today, dollars")
    realised_pnl_today: float = Field(description="Dollars")
    trades_today: int
    open_positions: int
    open_orders: int
    limits: dict[str, Any] = Field(description="The risk config's limits in force")
