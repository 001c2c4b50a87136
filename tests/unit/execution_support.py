"""Builders for the execution tests: bars on a real session, decisions, an engine with fake clocks,
and a broker stand-in that fills engine orders at the modelled quote like the deterministic paper broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scalper_execution.engine import Effects, ExecutionConfig, ExecutionEngine, ServedModel
from scalper_shared.clock import FakeClock
from scalper_shared.core.actions import N_ACTIONS, Action
from scalper_shared.core.premium import DEFAULT_PREMIUM_CONFIG, commission
from scalper_shared.core.ratelimit import RateLimit
from scalper_shared.core.risk import RiskConfig
from scalper_shared.schema.messages import Bar, OrderFilled, OrderSide, PolicyDecision, Session

DAY_OPEN = datetime(2025, 7, 1, 13, 30, tzinfo=UTC)  # 09:30 ET, a regular 16:00 session
AFTER_THE_DAY = datetime(2025, 7, 2, 0, 0, tzinfo=UTC)
"""The tests' wall clock: after every bar of the day they feed (execution refuses bars from the future)."""
SERVED = ServedModel("m", "h")
"""The promoted model of the tests: what :func:`decision` claims."""


def served(_claimed: str) -> ServedModel:
    return SERVED


def minute(n: int) -> datetime:
    """The bar start ``n`` minutes after the 09:30 ET open of 2025-07-01."""
    return DAY_OPEN + timedelta(minutes=n)


def bar(symbol: str, n: int, close: float) -> Bar:
    return Bar(symbol=symbol, start=minute(n), open=close, high=close, low=close, close=close,
               session=Session.REGULAR, source="test")


def decision(symbol: str, n: int, action: Action, *, model_id: str = SERVED.model_id,
             spec_hash: str = SERVED.spec_hash, mask: tuple[bool, ...] = (True,) * N_ACTIONS) -> PolicyDecision:
    return PolicyDecision(symbol=symbol, minute=minute(n), action=action, probabilities=(1 / N_ACTIONS,) * N_ACTIONS,
                          mask=mask, model_id=model_id, spec_hash=spec_hash)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_engine(risk: RiskConfig | None = None, contracts: int = 1, rate: str = "100000/1s") -> ExecutionEngine:
    return ExecutionEngine(risk or RiskConfig(), DEFAULT_PREMIUM_CONFIG, FakeClock(AFTER_THE_DAY), FakeMonotonic(),
                           ExecutionConfig(contracts, RateLimit.parse(rate)), served=served)


def fill_all(engine: ExecutionEngine, effects: Effects) -> list[OrderFilled]:
    """Fill every order of ``effects`` at once at the modelled ask (buys) / bid (sells), as the
    deterministic paper broker does, and feed the fills back to the engine."""
    done = []
    for open_order in effects.orders:
        order = open_order.order
        option_quote = engine.quote_option(order.option_symbol)
        assert option_quote is not None
        price = option_quote.ask if order.side is OrderSide.BUY else max(option_quote.bid, 0.01)
        fill = OrderFilled(client_order_id=order.client_order_id, fill_id=f"f-{order.client_order_id}",
                           contracts=order.contracts, price=price,
                           commission=float(commission(order.contracts, DEFAULT_PREMIUM_CONFIG)),
                           filled_at=option_quote.as_of)
        engine.on_fill(fill)
        done.append(fill)
    return done
