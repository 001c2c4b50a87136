"""Persistence of the execution service: orders, fills, trades (positions), day P&L, risk events.

Every write is idempotent (unique client order ids, fill ids and event keys with ``ON CONFLICT``),
and the service makes one transaction per side effect, so a redelivered message changes nothing.
``load_state`` rebuilds the engine's memory after a restart.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, case, func, select, update
from sqlalchemy.dialects.postgresql import insert

from scalper_execution.engine import DayTally, EngineState, OpenOrder, Position
from scalper_shared.core.lifecycle import ExitReason
from scalper_shared.core.risk import ExitRecord
from scalper_shared.db.models import daily_pnl, fills, orders, risk_events, risk_state, trades
from scalper_shared.schema.envelope import Message
from scalper_shared.schema.messages import (
    OptionRight,
    OrderDenied,
    OrderFilled,
    OrderSide,
    SubmitOrder,
    TradingState,
    TradingStateChanged,
)

OPEN_ORDER_STATUSES = ("submitted", "accepted", "partially_filled")
_state_change_seq = itertools.count()


class StoreTx:
    """The writes of one transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def insert_order(self, open_order: OpenOrder, now: datetime) -> bool:
        """Record an order as ``submitted`` before it is sent; False when it was already recorded."""
        order = open_order.order
        row = {"client_order_id": order.client_order_id, "trade_id": open_order.trade_id, "symbol": order.symbol,
               "option_symbol": order.option_symbol, "option_right": order.right.value, "side": order.side.value,
               "contracts": order.contracts, "status": "submitted", "reason": order.reason,
               "decision_id": order.decision_id, "created_at": now, "updated_at": now}
        statement = insert(orders).values(row).on_conflict_do_nothing().returning(orders.c.client_order_id)
        return self.connection.execute(statement).first() is not None

    def set_order_status(self, order_id: str, status: str, now: datetime, *, broker_order_id: str | None = None,
                         detail: str | None = None) -> None:
        """Move an order to ``status`` unless it is already terminal (a late 'accepted' never undoes
        'filled')."""
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if broker_order_id is not None:
            values["broker_order_id"] = broker_order_id
        if detail is not None:
            values["detail"] = detail
        self.connection.execute(update(orders).where(orders.c.client_order_id == order_id,
                                                     orders.c.status.in_(OPEN_ORDER_STATUSES)).values(values))

    def set_order_status_if(self, order_id: str, current: str, target: str, now: datetime,
                            broker_order_id: str) -> bool:
        """Move the order from ``current`` to ``target``; False when it was not in ``current``."""
        statement = update(orders).where(orders.c.client_order_id == order_id, orders.c.status == current).values(
            status=target, broker_order_id=broker_order_id, updated_at=now).returning(orders.c.client_order_id)
        return self.connection.execute(statement).first() is not None

    def insert_fill(self, fill: OrderFilled, now: datetime) -> bool:
        """Record a fill and roll it into its order; False (nothing changed) when it was recorded before."""
        row = {"fill_id": fill.fill_id, "client_order_id": fill.client_order_id, "contracts": fill.contracts,
               "price": fill.price, "commission": fill.commission, "filled_at": fill.filled_at}
        statement = insert(fills).values(row).on_conflict_do_nothing().returning(fills.c.fill_id)
        if self.connection.execute(statement).first() is None:
            return False
        filled = orders.c.filled_contracts + fill.contracts
        average = (func.coalesce(orders.c.avg_fill_price, 0) * orders.c.filled_contracts
                   + fill.price * fill.contracts) / filled
        self.connection.execute(update(orders).where(orders.c.client_order_id == fill.client_order_id).values(
            filled_contracts=filled, avg_fill_price=average, updated_at=now,
            status=case((filled >= orders.c.contracts, "filled"), else_="partially_filled")))
        return True

    def save_positions(self, positions: Iterable[Position]) -> None:
        for p in positions:
            row = {"trade_id": p.trade_id, "symbol": p.symbol, "option_symbol": p.option_symbol,
                   "option_right": p.right.value, "contracts_open": p.contracts, "contracts_bought": p.bought,
                   "avg_premium": p.avg_premium, "mark_bid": p.mark_bid, "tiers_hit": p.tiers_hit,
                   "realised_pnl": p.realised_pnl, "opened_at": p.opened_at, "closed_at": p.closed_at,
                   "exit_reason": p.exit_reason}
            statement = insert(trades).values(row)
            self.connection.execute(statement.on_conflict_do_update(
                index_elements=[trades.c.trade_id],
                set_={k: statement.excluded[k] for k in row if k != "trade_id"}))

    def save_tally(self, tally: DayTally, now: datetime) -> None:
        if tally.day is None:
            return
        row = {"day": tally.day, "trades": tally.trades, "realised_pnl": tally.realised_pnl, "updated_at": now}
        statement = insert(daily_pnl).values(row)
        self.connection.execute(statement.on_conflict_do_update(
            index_elements=[daily_pnl.c.day],
            set_={"trades": statement.excluded.trades, "realised_pnl": statement.excluded.realised_pnl,
                  "updated_at": now}))

    def record_events(self, events: Iterable[Message], now: datetime) -> None:
        """Store denials (keyed by client order id) and trading-state changes (and the current state)."""
        for event in events:
            if isinstance(event, OrderDenied):
                self._risk_event(f"denied:{event.client_order_id}", "denied", event.symbol, event.reason,
                                 event.detail, now)
            elif isinstance(event, TradingStateChanged):
                key = f"state:{now.isoformat()}:{event.current.value}:{next(_state_change_seq)}"
                self._risk_event(key, "state_changed", None, event.reason,
                                 f"{event.previous.value}->{event.current.value}", now)
                self.save_trading_state(event.current, event.reason, now)

    def save_trading_state(self, state: TradingState, reason: str, now: datetime) -> None:
        row = {"id": 1, "trading_state": state.value, "reason": reason, "updated_at": now}
        statement = insert(risk_state).values(row)
        self.connection.execute(statement.on_conflict_do_update(
            index_elements=[risk_state.c.id], set_={"trading_state": state.value, "reason": reason,
                                                   "updated_at": now}))

    def _risk_event(self, key: str, kind: str, symbol: str | None, reason: str, detail: str,
                    now: datetime) -> None:
        self.connection.execute(insert(risk_events).values(
            event_key=key, kind=kind, symbol=symbol, reason=reason, detail=detail, at=now).on_conflict_do_nothing())


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def transaction(self) -> Iterator[StoreTx]:
        with self.engine.begin() as connection:
            yield StoreTx(connection)

    # -- restart --------------------------------------------------------------------------------

    def load_state(self) -> EngineState:
        """The engine's memory as the database has it: state, open trades and orders, today's tally."""
        with self.engine.connect() as c:
            state = EngineState()
            row = c.execute(select(risk_state.c.trading_state)).first()
            if row is not None:
                state.trading_state = TradingState(row.trading_state)
            for t in c.execute(select(trades).where(trades.c.contracts_open > 0)):
                state.positions[t.symbol] = _position(t)
            for o in c.execute(select(orders).where(orders.c.status.in_(OPEN_ORDER_STATUSES))):
                state.open_orders[o.client_order_id] = _open_order(o)
            day = c.execute(select(daily_pnl).order_by(daily_pnl.c.day.desc()).limit(1)).first()
            if day is not None:
                state.tally = DayTally(day.day, day.trades, day.realised_pnl)
            for t in c.execute(select(trades).where(trades.c.closed_at.is_not(None)).order_by(trades.c.closed_at)):
                state.last_exits[t.symbol] = ExitRecord(t.closed_at,
                                                        ExitReason.parse(t.exit_reason) is ExitReason.STOP)
            state.known_order_ids = set(c.execute(select(orders.c.client_order_id)).scalars())
            state.known_order_ids |= {k.removeprefix("denied:") for k in c.execute(
                select(risk_events.c.event_key).where(risk_events.c.kind == "denied")).scalars()}
            state.seen_fill_ids = set(c.execute(select(fills.c.fill_id)).scalars())
        return state

    # -- reads ----------------------------------------------------------------------------------

    def open_order_ids(self) -> list[str]:
        with self.engine.connect() as c:
            return list(c.execute(select(orders.c.client_order_id).where(orders.c.status.in_(OPEN_ORDER_STATUSES))
                                  .order_by(orders.c.created_at)).scalars())

    def order(self, order_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(select(orders).where(orders.c.client_order_id == order_id)).mappings().first()
            return dict(row) if row is not None else None

    def orders(self, limit: int = 100, status: str | None = None) -> list[dict[str, Any]]:
        query = select(orders).order_by(orders.c.created_at.desc(), orders.c.client_order_id).limit(limit)
        if status is not None:
            query = query.where(orders.c.status == status)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(query).mappings()]

    def open_trades(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(select(trades).where(trades.c.contracts_open > 0)
                                               .order_by(trades.c.symbol)).mappings()]

    def daily(self) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(select(daily_pnl).order_by(daily_pnl.c.day.desc()).limit(1)).mappings().first()
            return dict(row) if row is not None else None


def _position(row: Any) -> Position:
    return Position(symbol=row.symbol, option_symbol=row.option_symbol, right=OptionRight(row.option_right),
                    trade_id=row.trade_id, opened_at=row.opened_at, contracts=row.contracts_open,
                    avg_premium=row.avg_premium, tiers_hit=row.tiers_hit, realised_pnl=row.realised_pnl,
                    mark_bid=row.mark_bid, bought=row.contracts_bought)


def _open_order(row: Any) -> OpenOrder:
    order = SubmitOrder(client_order_id=row.client_order_id, symbol=row.symbol, option_symbol=row.option_symbol,
                        right=OptionRight(row.option_right), side=OrderSide(row.side), contracts=row.contracts,
                        reason=row.reason, decision_id=row.decision_id)
    return OpenOrder(order, trade_id=row.trade_id, filled=row.filled_contracts)
