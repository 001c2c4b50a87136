"""Start-up reconciliation with the broker: positions and open orders must match ours, or trading halts.

Run after ``ExecutionService.restore()``: first the service's own order reconciliation records what
happened to our orders while we were down; then every broker position (option symbol and signed
contracts) and every open broker order (by client order id) is compared with ours. Any difference,
or a broker that cannot be asked, sets HALTED with the reason ``reconciliation_mismatch: ...``;
every entry is then refused (``OrderDenied``) until an operator resolves it and resumes
(``POST /v1/risk/resume``), or a later start finds everything matching: a start that reconciles
cleanly lifts a halt whose reason was a reconciliation mismatch, and no other halt.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select

from scalper_execution.brokers.base import BrokerError
from scalper_execution.service import ExecutionService
from scalper_shared.db.models import risk_state
from scalper_shared.schema.messages import TradingState

logger = logging.getLogger(__name__)

RECONCILIATION_MISMATCH = "reconciliation_mismatch"
RECONCILED = "reconciled_at_start"
MAX_LISTED = 5


@dataclass(frozen=True, slots=True)
class Mismatch:
    what: str
    key: str
    ours: str
    broker: str

    def __str__(self) -> str:
        return f"{self.what} {self.key}: ours {self.ours}, broker {self.broker}"


def position_mismatches(ours: Mapping[str, int], broker: Mapping[str, int]) -> list[Mismatch]:
    """Symbols whose contracts differ (a missing side counts as 0)."""
    return [Mismatch("position", symbol, str(ours.get(symbol, 0)), str(broker.get(symbol, 0)))
            for symbol in sorted(set(ours) | set(broker)) if ours.get(symbol, 0) != broker.get(symbol, 0)]


def order_mismatches(ours: set[str], broker: set[str]) -> list[Mismatch]:
    """Open orders only one side knows about."""
    return ([Mismatch("open order", order_id, "none", "open") for order_id in sorted(broker - ours)]
            + [Mismatch("open order", order_id, "open", "not open") for order_id in sorted(ours - broker)])


def describe(mismatches: list[Mismatch]) -> str:
    listed = "; ".join(str(m) for m in mismatches[:MAX_LISTED])
    more = f" (+{len(mismatches) - MAX_LISTED} more)" if len(mismatches) > MAX_LISTED else ""
    return f"{RECONCILIATION_MISMATCH}: {listed}{more}"


def find_mismatches(service: ExecutionService) -> list[Mismatch]:
    """Our positions and open orders against the broker's (raises ``BrokerError`` if it cannot answer)."""
    with service.lock:
        ours_positions = {p.option_symbol: p.contracts for p in service.engine.open_positions()}
        ours_orders = set(service.engine.state.open_orders)
        broker_positions = {p.option_symbol: p.contracts for p in service.broker.positions() if p.contracts}
        broker_orders = {o.client_order_id for o in service.broker.open_orders()}
    return position_mismatches(ours_positions, broker_positions) + order_mismatches(ours_orders, broker_orders)


def reconcile_at_start(service: ExecutionService) -> list[Mismatch]:
    """Reconcile with the broker; HALTED with the reason on any mismatch. Returns the mismatches."""
    service.reconcile()
    try:
        mismatches = find_mismatches(service)
    except BrokerError as exc:
        reason = f"{RECONCILIATION_MISMATCH}: the broker could not be asked ({exc})"
        logger.error("start-up reconciliation failed: %s", reason)
        service.set_trading_state(TradingState.HALTED, reason)
        return [Mismatch("broker", "unreachable", "-", str(exc))]
    if mismatches:
        reason = describe(mismatches)
        logger.error("start-up reconciliation: %s mismatch(es); trading HALTED: %s", len(mismatches), reason)
        service.set_trading_state(TradingState.HALTED, reason)
    elif _halted_by_reconciliation(service):
        logger.warning("start-up reconciliation: positions and orders match again; resuming")
        service.set_trading_state(TradingState.ACTIVE, RECONCILED)
    else:
        logger.info("start-up reconciliation: positions and open orders match the broker")
    return mismatches


def _halted_by_reconciliation(service: ExecutionService) -> bool:
    if service.engine.state.trading_state is not TradingState.HALTED:
        return False
    with service.store.engine.connect() as c:
        reason = c.execute(select(risk_state.c.reason)).scalar_one_or_none()
    return bool(reason and reason.startswith(RECONCILIATION_MISMATCH))
