"""The execution service: engine effects persisted, sent to the broker, reconciled and published.

One lock serialises the engine, the store and the broker (the bar consumer, the decision consumer,
the reconciler and the REST commands run on different threads). Each side effect is one database
transaction; an order is recorded (``submitted``) before it is sent; a broker timeout is followed by
a look-up by client order id before any resubmit, so a timeout never makes a duplicate. After a crash,
``reconcile`` asks the broker about every order not yet terminal and records what it finds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import Counter

from scalper_execution import metrics
from scalper_execution.brokers.base import Broker, BrokerError, BrokerOrder, BrokerRejected, BrokerStatus
from scalper_execution.engine import Effects, ExecutionEngine, OpenOrder, sanitise_reason
from scalper_execution.store import Store
from scalper_shared.bus import Delivery, StreamProducer
from scalper_shared.clock import Clock, IdFactory
from scalper_shared.core.actions import ENTRY_ACTIONS
from scalper_shared.schema import make_envelope
from scalper_shared.schema.envelope import Message
from scalper_shared.schema.messages import (
    Bar,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderFilled,
    PolicyDecision,
    PositionState,
    TradingState,
)

logger = logging.getLogger(__name__)

DECISIONS_AHEAD = Counter("scalper_execution_decisions_ahead_of_bar_total",
                          "Decisions acted on before their own bar reached execution (waited bar_wait_s)")
BARS_REFUSED = Counter("scalper_execution_bars_refused_total", "Bars refused by execution, by reason", ("reason",))

SOURCE = "execution"
BROKER_REJECTED = "broker_rejected"


class Publisher(Protocol):
    def publish(self, messages: Sequence[Message]) -> None: ...


class StreamPublisher:
    """Position states to ``positions.state``, every other event to ``orders.events``."""

    def __init__(self, orders: StreamProducer, positions: StreamProducer, clock: Clock, ids: IdFactory) -> None:
        self._orders = orders
        self._positions = positions
        self._clock = clock
        self._ids = ids

    def publish(self, messages: Sequence[Message]) -> None:
        for message in messages:
            producer = self._positions if isinstance(message, PositionState) else self._orders
            producer.publish(make_envelope(message, source=SOURCE, clock=self._clock, ids=self._ids))


@dataclass
class SendPolicy:
    """How hard to try when the broker does not answer: look up, then resubmit, ``attempts`` times."""

    attempts: int = 3


@dataclass
class _Outcome:
    events: list[Message] = field(default_factory=list)


class ExecutionService:
    def __init__(self, engine: ExecutionEngine, store: Store, broker: Broker, publisher: Publisher,
                 clock: Clock, ids: IdFactory, send_policy: SendPolicy | None = None, *,
                 bar_wait_s: float = 5.0) -> None:
        self.engine = engine
        self.store = store
        self.broker = broker
        self.publisher = publisher
        self.clock = clock
        self.ids = ids
        self.send_policy = send_policy or SendPolicy()
        self.lock = threading.RLock()
        self.bar_wait_s = bar_wait_s
        self._bar_applied = threading.Condition()
        self.bar_clock = metrics.BarClock()

    # -- start ------------------------------------------------------------------------------------

    def restore(self) -> None:
        """Reload the engine's memory from the database (at start, and after a failed side effect)."""
        with self.lock:
            self.engine.state = self.store.load_state()
            self._observe_state()
            logger.info("restored %s open position(s), %s open order(s), state %s",
                        len(self.engine.state.positions), len(self.engine.state.open_orders),
                        self.engine.state.trading_state.value)

    # -- consumers ----------------------------------------------------------------------------------

    def handle_bars(self, batch: Sequence[Delivery]) -> None:
        for delivery in batch:
            if isinstance(delivery.envelope.payload, Bar):
                bar = delivery.envelope.payload
                self.bar_clock.bar_published(bar.symbol, bar.start, delivery.envelope.ts_init)
                with self.lock:  # the bar and the fills it triggers, before any decision gets in
                    self._guarded(lambda bar=delivery.envelope.payload: self._on_bar(bar))
                    self._guarded(self._fill_next_bar_orders)
                with self._bar_applied:
                    self._bar_applied.notify_all()

    def _on_bar(self, bar: Bar) -> Effects:
        effects = self.engine.on_bar(bar)
        if effects.refused_bar is not None:
            BARS_REFUSED.labels(effects.refused_bar).inc()
        return effects

    def _fill_next_bar_orders(self) -> Effects:
        """Orders the broker fills on the next bar (the paper broker's deterministic stops): record them."""
        settle = getattr(self.broker, "fill_next_bar_orders", None)
        if settle is None:
            return Effects()
        for order_id in settle():
            broker_order = self.broker.get_order(order_id)
            if broker_order is not None:
                self._record(broker_order)
        return Effects()

    def handle_decisions(self, batch: Sequence[Delivery]) -> None:
        for delivery in batch:
            payload = delivery.envelope.payload
            if isinstance(payload, PolicyDecision):
                self._await_bar(payload)
                self._decide(payload, delivery.envelope.id)

    def _decide(self, decision: PolicyDecision, decision_id: str) -> None:
        """Act on one decision; an order it produced is timed from its bar's publication."""
        ordered: list[bool] = []

        def event() -> Effects:
            effects = self.engine.on_decision(decision, decision_id)
            ordered.append(bool(effects.orders))
            return effects

        self._guarded(event)
        if any(ordered):
            self.bar_clock.order_sent(decision.symbol, decision.minute, self.clock.now())

    def _await_bar(self, decision: PolicyDecision) -> None:
        """Hold a decision until its own bar has been applied (up to ``bar_wait_s``).

        The two consumers run apart, so a decision on minute m can arrive before execution has seen
        bar m: the entry would take its strike and price from the bar before, the exit would miss
        that bar's stop and take-profits. Past the wait the decision goes on with the last bar seen.
        Only entries wait: a reducing action (EXIT, TRIM) never does, and neither does a decision whose
        minute is outside the tolerance (the engine refuses it at once).
        """
        if decision.action not in ENTRY_ACTIONS:
            return
        with self.lock:
            if not self.engine.decision_in_time(decision):
                return
        with self._bar_applied:
            if self._bar_applied.wait_for(lambda: self._bar_seen(decision), timeout=self.bar_wait_s):
                return
        DECISIONS_AHEAD.inc()
        logger.warning("decision on %s %s acted on without its bar (none within %.1fs)", decision.symbol,
                       decision.minute.isoformat(), self.bar_wait_s)

    def _bar_seen(self, decision: PolicyDecision) -> bool:
        with self.lock:
            return self.engine.bar_seen(decision.symbol, decision.minute)

    # -- operator commands -------------------------------------------------------------------------

    def set_trading_state(self, target: TradingState, reason: str) -> TradingState:
        reason = sanitise_reason(reason)
        with self.lock:
            self._guarded(lambda: self.engine.set_trading_state(target, reason))
            return self.engine.state.trading_state

    def kill_switch(self, reason: str = "kill_switch") -> None:
        """HALTED (committed on its own first, so nothing after it can undo it), then cancel every
        working entry and sell every position; returns once the orders are sent."""
        reason = sanitise_reason(reason) or "kill_switch"
        command_id = self.ids()
        logger.warning("kill switch %s: %s", command_id, reason)
        with self.lock:
            self.set_trading_state(TradingState.HALTED, reason)
            self._guarded(lambda: self.engine.kill_switch(command_id, reason))

    # -- effects --------------------------------------------------------------------------------------

    def _guarded(self, event: object) -> None:
        """Run an engine event and apply its effects; on failure reload the engine from the database."""
        with self.lock:
            try:
                effects = event()  # type: ignore[operator]
                self.apply(effects)
            except Exception:
                logger.exception("side effect failed; reloading the engine state from the database")
                self.restore()
                raise
            self._observe_state()

    def _observe_state(self) -> None:
        metrics.observe_state(self.engine.state, self.engine.premium.contract_multiplier)

    def _publish(self, events: Sequence[Message]) -> None:
        """Publish committed events (and count fills and denials)."""
        metrics.count_events(events)
        self.publisher.publish(events)

    def apply(self, effects: Effects) -> None:
        now = self.clock.now()
        with self.store.transaction() as tx:
            for open_order in effects.orders:
                tx.insert_order(open_order, now)
            tx.save_positions(effects.positions)
            if effects.tally_changed:
                tx.save_tally(self.engine.state.tally, now)
            tx.record_events(effects.events, now)
        self._publish(effects.events)
        metrics.count_orders(effects)
        for order_id in effects.cancels:
            self._cancel(order_id)
        for open_order in effects.orders:
            self._send(open_order)

    def _cancel(self, order_id: str) -> None:
        try:
            broker_order = self.broker.cancel(order_id)
        except BrokerError as exc:
            logger.warning("cancel of %s failed (%s); the reconciler will retry the look-up", order_id, exc)
            return
        if broker_order is not None:
            self._record(broker_order)

    def _send(self, open_order: OpenOrder) -> None:
        order = open_order.order
        for attempt in range(1, self.send_policy.attempts + 1):
            broker_order: BrokerOrder | None
            try:
                broker_order = self.broker.submit(order)
            except BrokerRejected as exc:
                self._reject(open_order, str(exc))
                return
            except BrokerError as exc:
                logger.warning("submit of %s: no answer (%s, attempt %s); looking it up", order.client_order_id,
                               exc, attempt)
                broker_order = self._look_up(order.client_order_id)
                if broker_order is None:
                    continue  # the broker never got it: resubmitting cannot duplicate it
            self._record(broker_order)
            return
        logger.error("order %s: broker unreachable after %s attempts; left submitted for the reconciler",
                     order.client_order_id, self.send_policy.attempts)

    def _look_up(self, order_id: str) -> BrokerOrder | None:
        try:
            return self.broker.get_order(order_id)
        except BrokerError as exc:
            logger.warning("look-up of %s failed too (%s)", order_id, exc)
            return None

    def _reject(self, open_order: OpenOrder, detail: str) -> None:
        order = open_order.order
        now = self.clock.now()
        denial = OrderDenied(client_order_id=order.client_order_id, symbol=order.symbol, reason=BROKER_REJECTED,
                             detail=detail)
        with self.store.transaction() as tx:
            tx.set_order_status(order.client_order_id, "rejected", now, detail=detail)
            tx.record_events([denial], now)
        self.engine.on_order_closed(order.client_order_id)
        logger.warning("order %s rejected by the broker: %s", order.client_order_id, detail)
        self._publish([denial])

    def _record(self, broker_order: BrokerOrder) -> None:
        """Record what the broker says about an order: acceptance, new fills, cancel or reject."""
        now = self.clock.now()
        order_id = broker_order.client_order_id
        outcome = _Outcome()
        with self.store.transaction() as tx:
            if tx.set_order_status_if(order_id, "submitted", "accepted", now, broker_order.broker_order_id):
                outcome.events.append(OrderAccepted(client_order_id=order_id,
                                                    broker_order_id=broker_order.broker_order_id))
            for broker_fill in broker_order.fills:
                fill = OrderFilled(client_order_id=order_id, fill_id=broker_fill.fill_id,
                                   contracts=broker_fill.contracts, price=broker_fill.price,
                                   commission=broker_fill.commission, filled_at=broker_fill.filled_at)
                if not tx.insert_fill(fill, now):
                    continue
                effects = self.engine.on_fill(fill)
                tx.save_positions(effects.positions)
                tx.save_tally(self.engine.state.tally, now)
                tx.record_events(effects.events, now)
                outcome.events += [fill, *effects.events]
            if broker_order.status in (BrokerStatus.CANCELED, BrokerStatus.REJECTED):
                tx.set_order_status(order_id, broker_order.status.value, now, detail=broker_order.reason)
                self.engine.on_order_closed(order_id)
                outcome.events.append(OrderCanceled(client_order_id=order_id,
                                                    reason=broker_order.reason or broker_order.status.value))
        self._publish(outcome.events)

    # -- reconciliation ------------------------------------------------------------------------------

    def reconcile(self) -> int:
        """Ask the broker about every order not yet terminal; record fills and ends, resend what it never
        received. Returns how many orders were looked at."""
        with self.lock:
            order_ids = self.store.open_order_ids()
            for order_id in order_ids:
                try:
                    self._guarded(lambda i=order_id: self._reconcile_one(i))
                except Exception:
                    logger.exception("reconciling order %s failed; next round retries", order_id)
            return len(order_ids)

    def _reconcile_one(self, order_id: str) -> Effects:
        broker_order = self._look_up(order_id)
        if broker_order is not None:
            self._record(broker_order)
            return Effects()
        row = self.store.order(order_id)
        open_order = self.engine.state.open_orders.get(order_id)
        if row is not None and row["status"] == "submitted" and open_order is not None:
            logger.warning("order %s was recorded but never reached the broker; sending it now", order_id)
            self._send(open_order)
        return Effects()

    def run_reconciler(self, interval_s: float, stop_event: threading.Event) -> None:
        while not stop_event.wait(interval_s):
            try:
                self.reconcile()
            except Exception:
                logger.exception("reconciliation round failed")
