"""REST routes: positions, orders and risk state (``read`` scope); halt, reduce, resume and flatten
(the kill switch) need the ``trade`` scope (``admin`` implies every scope)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query
from pydantic import BaseModel, Field

from scalper_execution.service import ExecutionService
from scalper_shared.runtime.api_security import NUL_TOLERANT_PATHS_STATE, Authenticator, Scope
from scalper_shared.schema.execution import RiskStateView
from scalper_shared.schema.messages import TradingState

ORDER_STATUSES = Literal["submitted", "accepted", "partially_filled", "filled", "canceled", "rejected"]


class CommandBody(BaseModel):
    reason: str = Field("operator", min_length=1, max_length=200)


def install_routes(app: FastAPI, service: ExecutionService, auth: Authenticator) -> None:
    router = APIRouter(prefix="/v1", tags=["execution"])
    # the kill switch engages whatever its reason holds (the reason is sanitised, never refused)
    setattr(app.state, NUL_TOLERANT_PATHS_STATE, {"/v1/risk/halt", "/v1/risk/reduce", "/v1/risk/flatten"})
    read = [Depends(auth.require(Scope.READ))]
    trade = [Depends(auth.require(Scope.TRADE))]

    @router.get("/positions", dependencies=read)
    def positions() -> list[dict[str, Any]]:
        """Open positions, marked at the modelled bid of their underlying's last bar."""
        with service.lock:
            symbols = sorted(p.symbol for p in service.engine.open_positions())
            return [service.engine.position_state(s).model_dump(mode="json") for s in symbols]

    @router.get("/orders", dependencies=read)
    def orders(status: ORDER_STATUSES | None = None,
               limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        """Newest orders first, optionally only those in ``status``."""
        return service.store.orders(limit=limit, status=status)

    @router.get("/risk/state", dependencies=read)
    def risk_state() -> RiskStateView:
        return _risk_view(service)

    @router.post("/risk/halt", dependencies=trade)
    def halt(body: CommandBody | None = None) -> RiskStateView:
        """HALTED: no entries; exits, stops and take-profits still work."""
        service.set_trading_state(TradingState.HALTED, (body or CommandBody()).reason)
        return _risk_view(service)

    @router.post("/risk/reduce", dependencies=trade)
    def reduce_only(body: CommandBody | None = None) -> RiskStateView:
        """REDUCING: only orders that reduce a position."""
        service.set_trading_state(TradingState.REDUCING, (body or CommandBody()).reason)
        return _risk_view(service)

    @router.post("/risk/resume", dependencies=trade)
    def resume(body: CommandBody | None = None) -> RiskStateView:
        service.set_trading_state(TradingState.ACTIVE, (body or CommandBody()).reason)
        return _risk_view(service)

    @router.post("/risk/flatten", dependencies=trade)
    def flatten(body: CommandBody | None = None) -> RiskStateView:
        """Kill switch: HALTED, every working entry canceled, every position sold."""
        service.kill_switch((body or CommandBody(reason="kill_switch")).reason)
        return _risk_view(service)

    app.include_router(router)


def _risk_view(service: ExecutionService) -> RiskStateView:
    with service.lock:
        engine = service.engine
        return RiskStateView(
            trading_state=engine.state.trading_state, pnl_today=engine.pnl_today(),
            realised_pnl_today=engine.state.tally.realised_pnl, trades_today=engine.state.tally.trades,
            open_positions=sum(1 for _ in engine.open_positions()), open_orders=len(engine.state.open_orders),
            limits=engine.risk.model_dump(mode="json"))
