"""The paper broker: a simulated venue that fills at the modelled bid/ask of the shared premium model.

Buys fill at the modelled ask and sells at the modelled bid of the option's underlying's last bar
(the same ``premium.quote`` the training environment uses), plus ``slippage_ticks`` against the
trader. Deterministic mode fills at once, at that quote, with no slippage (parity tests, replays),
except a sell whose exit reason fills at the next bar (the stop: ``ExitReason.fill_timing`` of the
shared lifecycle, :func:`~scalper_shared.core.risk.stop_fill_price`), so it waits, accepted, for the underlying's
next bar and fills at that bar's bid (:meth:`PaperBroker.fill_next_bar_orders`, called by the
service after every bar), exactly as the training environment and the backtest fill it.
Otherwise an order is accepted and fills ``latency_ms`` later at the quote it was accepted on.

The book lives in its own tables (``paper_orders``, ``paper_fills``), apart from what execution
believes, so it behaves like an outside venue: it survives a crash of the service, it refuses a
second order with the same client id, and it answers ``get_order`` for reconciliation.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects.postgresql import insert

from scalper_execution.brokers.base import (
    OPEN_STATUSES,
    BrokerFill,
    BrokerOrder,
    BrokerPosition,
    BrokerRejected,
    BrokerStatus,
)
from scalper_execution.contracts import OptionQuote
from scalper_shared.clock import Clock
from scalper_shared.core.lifecycle import ExitReason, FillTiming
from scalper_shared.core.premium import PremiumModelConfig, commission, tick_size
from scalper_shared.core.risk import stop_fill_price
from scalper_shared.db.models import paper_fills, paper_orders
from scalper_shared.schema.messages import OrderSide, SubmitOrder

logger = logging.getLogger(__name__)

QuoteSource = Callable[[str], OptionQuote | None]
"""option symbol -> its modelled quote now, or None when the underlying has no bar yet."""
AT_NEXT_BAR = datetime(9999, 12, 31, tzinfo=UTC)
"""``fill_due_at`` of a deterministic stop: never due by the clock, filled by the next bar instead."""


class PaperBrokerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    deterministic: bool = True
    latency_ms: int = Field(0, ge=0)
    slippage_ticks: int = Field(0, ge=0)


def fill_price(side: OrderSide, option_quote: OptionQuote, underlying: str, slippage_ticks: int,
               config: PremiumModelConfig) -> float:
    """Ask (buy) or bid (sell) moved ``slippage_ticks`` against the trader, at least one tick."""
    base = option_quote.ask if side is OrderSide.BUY else option_quote.bid
    tick = float(tick_size(underlying, max(base, 0.0), config))
    moved = base + slippage_ticks * tick if side is OrderSide.BUY else base - slippage_ticks * tick
    return round(max(moved, tick), 4)


class PaperBroker:
    def __init__(self, engine: Engine, quotes: QuoteSource, clock: Clock, premium: PremiumModelConfig,
                 config: PaperBrokerConfig | None = None) -> None:
        self._engine = engine
        self._quotes = quotes
        self._clock = clock
        self._premium = premium
        self.config = config or PaperBrokerConfig()

    # -- Broker ---------------------------------------------------------------------------------

    def submit(self, order: SubmitOrder) -> BrokerOrder:
        existing = self.get_order(order.client_order_id)
        if existing is not None:
            return existing
        option_quote = self._quotes(order.option_symbol)
        if option_quote is None:
            raise BrokerRejected(f"no quote for {order.option_symbol}")
        price = fill_price(order.side, option_quote, order.symbol,
                           0 if self.config.deterministic else self.config.slippage_ticks, self._premium)
        latency = timedelta(0) if self.config.deterministic else timedelta(milliseconds=self.config.latency_ms)
        now = self._clock.now()
        next_bar = self.fills_at_next_bar(order)
        row = {"client_order_id": order.client_order_id, "broker_order_id": _broker_id(order.client_order_id),
               "option_symbol": order.option_symbol, "side": order.side.value, "contracts": order.contracts,
               "status": BrokerStatus.ACCEPTED.value, "fill_price": price, "quote_as_of": option_quote.as_of,
               "accepted_at": now, "fill_due_at": AT_NEXT_BAR if next_bar else now + latency}
        with self._engine.begin() as c:
            c.execute(insert(paper_orders).values(row).on_conflict_do_nothing())
            if self.config.deterministic:  # filled in the same transaction as the acceptance
                self._fill_due(c, now)
        logger.info("paper order %s accepted: %s %s %s at %.4f", order.client_order_id, order.side.value,
                    order.contracts, order.option_symbol, price)
        found = self.get_order(order.client_order_id, settle=not self.config.deterministic)
        assert found is not None
        return found

    def cancel(self, client_order_id: str) -> BrokerOrder | None:
        self._settle_due()
        with self._engine.begin() as c:
            c.execute(update(paper_orders).where(paper_orders.c.client_order_id == client_order_id,
                                                 paper_orders.c.status == BrokerStatus.ACCEPTED.value)
                      .values(status=BrokerStatus.CANCELED.value))
        return self.get_order(client_order_id, settle=False)

    def get_order(self, client_order_id: str, *, settle: bool = True) -> BrokerOrder | None:
        if settle:
            self._settle_due()
        with self._engine.connect() as c:
            row = c.execute(select(paper_orders).where(paper_orders.c.client_order_id == client_order_id)).first()
            if row is None:
                return None
            fill_rows = c.execute(select(paper_fills).where(paper_fills.c.client_order_id == client_order_id)
                                  .order_by(paper_fills.c.fill_id)).all()
        return _order(row, tuple(_fill(f) for f in fill_rows))

    def open_orders(self) -> list[BrokerOrder]:
        self._settle_due()
        with self._engine.connect() as c:
            ids = c.execute(select(paper_orders.c.client_order_id).where(
                paper_orders.c.status.in_([s.value for s in OPEN_STATUSES]))).scalars().all()
        return [o for o in (self.get_order(i, settle=False) for i in ids) if o is not None]

    def positions(self) -> list[BrokerPosition]:
        self._settle_due()
        query = (select(paper_orders.c.option_symbol, paper_orders.c.side, paper_fills.c.contracts,
                        paper_fills.c.price)
                 .join(paper_fills, paper_fills.c.client_order_id == paper_orders.c.client_order_id))
        held: dict[str, list[float]] = {}
        with self._engine.connect() as c:
            for row in c.execute(query):
                contracts, cost = held.setdefault(row.option_symbol, [0, 0.0])
                if row.side == OrderSide.BUY.value:
                    held[row.option_symbol] = [contracts + row.contracts, cost + row.contracts * row.price]
                else:
                    average = cost / contracts if contracts else 0.0
                    held[row.option_symbol] = [contracts - row.contracts, average * (contracts - row.contracts)]
        return [BrokerPosition(symbol, int(n), cost / n) for symbol, (n, cost) in held.items() if n]

    def fills(self, since: datetime | None = None) -> list[BrokerFill]:
        self._settle_due()
        query = select(paper_fills).order_by(paper_fills.c.filled_at, paper_fills.c.fill_id)
        if since is not None:
            query = query.where(paper_fills.c.filled_at >= since)
        with self._engine.connect() as c:
            return [_fill(r) for r in c.execute(query)]

    def fills_at_next_bar(self, order: SubmitOrder) -> bool:
        """A deterministic sell whose exit reason fills at the next bar (the stop) waits for that bar's bid."""
        reason = ExitReason.parse(order.reason) if order.side is OrderSide.SELL else None
        return self.config.deterministic and reason is not None and reason.fill_timing is FillTiming.NEXT_BAR

    def fill_next_bar_orders(self) -> list[str]:
        """Fill every order waiting for its underlying's next bar whose quote moved past the bar it was
        accepted on: at :func:`stop_fill_price` of the new bar's bid, at that bar's close. Returns the
        client order ids filled (the service records them)."""
        with self._engine.begin() as c:
            waiting = c.execute(select(paper_orders).where(
                paper_orders.c.status == BrokerStatus.ACCEPTED.value,
                paper_orders.c.fill_due_at == AT_NEXT_BAR)).all()
            filled = []
            for row in waiting:
                option_quote = self._quotes(row.option_symbol)
                if option_quote is None or option_quote.as_of <= row.quote_as_of:
                    continue
                price = round(float(stop_fill_price(option_quote.bid)), 4)
                c.execute(update(paper_orders).where(paper_orders.c.client_order_id == row.client_order_id)
                          .values(status=BrokerStatus.FILLED.value, fill_price=price))
                c.execute(insert(paper_fills).values(
                    fill_id=f"{row.broker_order_id}-1", client_order_id=row.client_order_id,
                    contracts=row.contracts, price=price,
                    commission=float(commission(row.contracts, self._premium)),
                    filled_at=option_quote.as_of).on_conflict_do_nothing())
                filled.append(row.client_order_id)
        for order_id in filled:
            logger.info("paper stop %s filled at the next bar's bid", order_id)
        return filled

    # -- the venue's clock ---------------------------------------------------------------------

    def _settle_due(self) -> None:
        """Fill every accepted order whose latency has elapsed, at the price fixed when it was accepted."""
        with self._engine.begin() as c:
            self._fill_due(c, self._clock.now())

    def _fill_due(self, c: Connection, now: datetime) -> None:
        due = c.execute(update(paper_orders).where(
            paper_orders.c.status == BrokerStatus.ACCEPTED.value, paper_orders.c.fill_due_at <= now)
            .values(status=BrokerStatus.FILLED.value).returning(paper_orders)).all()
        for row in due:
            latency = row.fill_due_at - row.accepted_at
            c.execute(insert(paper_fills).values(
                fill_id=f"{row.broker_order_id}-1", client_order_id=row.client_order_id,
                contracts=row.contracts, price=row.fill_price,
                commission=float(commission(row.contracts, self._premium)),
                filled_at=row.quote_as_of + latency).on_conflict_do_nothing())


def _broker_id(client_order_id: str) -> str:
    return "paper-" + hashlib.sha256(client_order_id.encode()).hexdigest()[:20]


def _order(row: object, order_fills: tuple[BrokerFill, ...]) -> BrokerOrder:
    return BrokerOrder(client_order_id=row.client_order_id, broker_order_id=row.broker_order_id,  # type: ignore[attr-defined]
                       option_symbol=row.option_symbol, side=OrderSide(row.side),  # type: ignore[attr-defined]
                       contracts=row.contracts, status=BrokerStatus(row.status), fills=order_fills)  # type: ignore[attr-defined]


def _fill(row: object) -> BrokerFill:
    return BrokerFill(fill_id=row.fill_id, client_order_id=row.client_order_id,  # type: ignore[attr-defined]
                      contracts=row.contracts, price=row.price, commission=row.commission,  # type: ignore[attr-defined]
                      filled_at=row.filled_at)  # type: ignore[attr-defined]
