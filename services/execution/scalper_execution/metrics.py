"""Prometheus metrics of the execution service (``/metrics``; dashboards in ``infra/grafana/``).

Counters count what happened (orders sent, fills, denials by reason); gauges mirror the engine's
state after every side effect (open positions, realised and unrealised P&L of the day, trading
state); the histogram times a decision's bar from its publication by ingestion to the order that
decision produced, once the order is recorded and sent.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

from scalper_execution.engine import Effects, EngineState
from scalper_shared.schema.envelope import Message
from scalper_shared.schema.messages import OrderDenied, OrderFilled, TradingState

ORDERS = Counter("scalper_execution_orders_total", "Orders recorded and sent to the broker, by side and reason",
                 ("side", "reason"))
FILLS = Counter("scalper_execution_fills_total", "Fills recorded (new broker fills only)")
FILLED_CONTRACTS = Counter("scalper_execution_filled_contracts_total", "Contracts of the recorded fills")
DENIALS = Counter("scalper_execution_denials_total", "Orders refused (risk rules, broker rejections), by reason",
                  ("reason",))
OPEN_POSITIONS = Gauge("scalper_execution_open_positions", "Option positions currently held")
OPEN_CONTRACTS = Gauge("scalper_execution_open_contracts", "Contracts currently held over all positions")
REALISED_PNL = Gauge("scalper_execution_realised_pnl_dollars", "Realised P&L of the trading day after commissions")
UNREALISED_PNL = Gauge("scalper_execution_unrealised_pnl_dollars", "Open positions marked at the bid against their cost")
TRADING_STATE = Gauge("scalper_execution_trading_state", "1 for the current trading state, 0 for the others",
                      ("state",))
BAR_TO_ORDER = Histogram("scalper_execution_bar_to_order_seconds",
                         "From ingestion publishing a decision's bar to execution having recorded and sent its order",
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))


def count_events(events: Sequence[Message]) -> None:
    for event in events:
        if isinstance(event, OrderFilled):
            FILLS.inc()
            FILLED_CONTRACTS.inc(event.contracts)
        elif isinstance(event, OrderDenied):
            DENIALS.labels(event.reason).inc()


def count_orders(effects: Effects) -> None:
    for open_order in effects.orders:
        ORDERS.labels(open_order.order.side.value, open_order.order.reason).inc()


def observe_state(state: EngineState, contract_multiplier: int) -> None:
    """Set the gauges from the engine's state (call with the service lock held)."""
    held = [p for p in state.positions.values() if p.contracts > 0]
    OPEN_POSITIONS.set(len(held))
    OPEN_CONTRACTS.set(sum(p.contracts for p in held))
    REALISED_PNL.set(state.tally.realised_pnl)
    UNREALISED_PNL.set(sum(p.unrealised_pnl(contract_multiplier) for p in held))
    for trading_state in TradingState:
        TRADING_STATE.labels(trading_state.value).set(1.0 if trading_state is state.trading_state else 0.0)


class BarClock:
    """When each (symbol, bar start) was published by ingestion, for the bar-to-order latency."""

    def __init__(self, capacity: int = 20_000) -> None:
        self._published: OrderedDict[tuple[str, datetime], datetime] = OrderedDict()
        self._capacity = capacity

    def bar_published(self, symbol: str, start: datetime, published_at: datetime) -> None:
        self._published[(symbol, start)] = published_at
        while len(self._published) > self._capacity:
            self._published.popitem(last=False)

    def order_sent(self, symbol: str, minute: datetime, now: datetime) -> float | None:
        """Observe and return the latency of the order decided on ``symbol``'s bar ``minute``."""
        published = self._published.get((symbol, minute))
        if published is None:
            return None
        seconds = max(0.0, (now - published).total_seconds())
        BAR_TO_ORDER.observe(seconds)
        return seconds
