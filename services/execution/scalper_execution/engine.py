"""The risk engine: policy decisions, bars and operator commands in; orders, denials and state out.

Pure (no I/O). The service feeds it events and persists and sends what it returns. Every open
position is marked on every bar of its underlying and the hard stop, the flatten window and the
take-profit tiers are evaluated there, whatever the policy said. Every refusal comes back as an
``OrderDenied`` event. Time comes from the bars (market time, so replays are deterministic) and from
the injected clock for operator commands; the order rate limit uses the injected monotonic clock.

Nothing on the streams is trusted (docs/execution.md, "What execution refuses"): a bar whose close
lies ahead of the clock is refused, so market time per symbol only moves forward and never into the
future; a decision is acted on only when it comes from the promoted model under the served feature
spec hash, its own mask and the mask execution recomputes allow its action, its symbol has an option
spec and its minute lies within ``decision_tolerance`` of the symbol's market time. Decisions are
deduplicated by (model, symbol, minute), whatever their envelope id.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from scalper_execution.contracts import BAR_LENGTH, MarketState, OptionQuote, occ_symbol, parse_occ
from scalper_shared.clock import Clock
from scalper_shared.core.actions import ENTRY_ACTIONS, Action
from scalper_shared.core.calendar import session_date, trading_day
from scalper_shared.core.lifecycle import ExitReason, position_exits
from scalper_shared.core.masks import action_mask
from scalper_shared.core.premium import PremiumModelConfig, atm_strike, normalise_symbol
from scalper_shared.core.ratelimit import RateLimit, SlidingWindow
from scalper_shared.core.risk import (
    ExitRecord,
    RiskConfig,
    RiskSnapshot,
    check_entry,
    check_reduce,
    contracts_to_sell,
    daily_loss_limit_hit,
    must_flatten,
    risk_differences,
)
from scalper_shared.schema.envelope import Message
from scalper_shared.schema.messages import (
    Bar,
    OptionRight,
    OrderDenied,
    OrderFilled,
    OrderSide,
    PolicyDecision,
    PositionSide,
    PositionState,
    SubmitOrder,
    TradingState,
    TradingStateChanged,
)

logger = logging.getLogger(__name__)

ORDER_RATE_LIMIT = "order_rate_limit"
NO_MARKET_DATA = "no_market_data"
ORDER_PENDING = "order_pending"
UNKNOWN_SYMBOL = "unknown_symbol"
NO_PROMOTED_MODEL = "no_promoted_model"
UNKNOWN_MODEL = "unknown_model"
SPEC_HASH_MISMATCH = "spec_hash_mismatch"
ACTION_MASKED = "action_masked"
DECISION_OUT_OF_TIME = "decision_out_of_time"
RISK_CONFIG_MISMATCH = "risk_config_mismatch"
PREMIUM_CONFIG_MISMATCH = "premium_config_mismatch"
BAR_AHEAD_OF_CLOCK = "bar_ahead_of_clock"
TRIM_FRACTIONS = {Action.TRIM_50: 0.5, Action.TRIM_70: 0.7, Action.EXIT: 1.0}
TERMINAL_STATUSES = frozenset({"filled", "canceled", "rejected"})


def client_order_id(*parts: object) -> str:
    """A deterministic id from what caused the order: the same cause always gives the same id."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return f"sx-{digest[:28]}"


def sanitise_reason(reason: str, limit: int = 200) -> str:
    """An operator's or a rule's reason as stored: control characters (NUL included) become spaces,
    at most ``limit`` characters."""
    cleaned = "".join(" " if unicodedata.category(c) in ("Cc", "Cs") else c for c in reason)
    return cleaned.strip()[:limit]


def decision_order_id(decision: PolicyDecision) -> str:
    """The order (or denial) id of a decision: by (model, symbol, minute), never by envelope id, so the
    same decision under a new envelope is recognised as a duplicate."""
    return client_order_id("decision", decision.model_id, normalise_symbol(decision.symbol),
                           decision.minute.isoformat())


@dataclass(frozen=True, slots=True)
class ServedModel:
    """The model whose decisions execution acts on: the promoted one, its feature spec hash and the
    risk-and-sizing config it was trained and evaluated under."""

    model_id: str
    spec_hash: str
    risk: RiskConfig | None = None
    """None: unknown, taken as equal to execution's."""
    premium: PremiumModelConfig | None = None
    """The premium model it was trained and evaluated under (None: unknown, taken as execution's)."""


ServedModelSource = Callable[[str], ServedModel | None]
"""Given the model id a decision claims, the model served now (None when none is promoted); the
argument lets a caching source re-read its store when the claim differs from what it holds."""


@dataclass(slots=True)
class Position:
    """One option position (at most one per underlying) and the trade it belongs to."""

    symbol: str
    option_symbol: str
    right: OptionRight
    trade_id: str
    opened_at: datetime
    contracts: int = 0
    avg_premium: float = 0.0
    tiers_hit: int = 0
    realised_pnl: float = 0.0
    mark_bid: float = 0.0
    bought: int = 0
    closed_at: datetime | None = None
    exit_reason: ExitReason | None = None

    @property
    def strike(self) -> float:
        return parse_occ(self.option_symbol).strike

    def unrealised_pnl(self, multiplier: int) -> float:
        if self.contracts == 0 or self.mark_bid <= 0:
            return 0.0
        return (self.mark_bid - self.avg_premium) * self.contracts * multiplier


@dataclass(slots=True)
class OpenOrder:
    order: SubmitOrder
    trade_id: str
    filled: int = 0

    @property
    def remaining(self) -> int:
        return self.order.contracts - self.filled


@dataclass(slots=True)
class DayTally:
    day: date | None = None
    trades: int = 0
    realised_pnl: float = 0.0


@dataclass(slots=True)
class EngineState:
    """Everything the engine remembers; the store saves it piecewise and restores it at start."""

    trading_state: TradingState = TradingState.ACTIVE
    positions: dict[str, Position] = field(default_factory=dict)
    open_orders: dict[str, OpenOrder] = field(default_factory=dict)
    tally: DayTally = field(default_factory=DayTally)
    last_exits: dict[str, ExitRecord] = field(default_factory=dict)
    known_order_ids: set[str] = field(default_factory=set)
    seen_fill_ids: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Effects:
    """What one event asks the service to do, in order: persist and send ``orders``, cancel
    ``cancels``, persist ``positions`` (copies) and ``tally``, persist and publish ``events``."""

    orders: list[OpenOrder] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    events: list[Message] = field(default_factory=list)
    tally_changed: bool = False
    refused_bar: str | None = None

    def denials(self) -> list[OrderDenied]:
        return [e for e in self.events if isinstance(e, OrderDenied)]


@dataclass(frozen=True, slots=True)
class ExecutionConfig:
    contracts_per_entry: int | None = None
    """Contracts per entry; None: the risk config's ``contracts_per_entry`` (paper). The live broker
    passes its own ramped size."""
    order_rate_limit: RateLimit = field(default_factory=lambda: RateLimit(100, 1.0))
    decision_tolerance: timedelta = timedelta(minutes=2)
    """How far a decision's minute may lie from its symbol's market time (newest bar start)."""
    clock_allowance: timedelta = timedelta(minutes=1)
    """How far a bar's close may lie ahead of the clock before the bar is refused."""
    allow_risk_mismatch: bool = False
    """Act on a model whose saved risk-and-sizing config differs from execution's (told to)."""


class ExecutionEngine:
    def __init__(self, risk: RiskConfig, premium: PremiumModelConfig, clock: Clock,
                 monotonic: Callable[[], float], config: ExecutionConfig | None = None,
                 state: EngineState | None = None, *, served: ServedModelSource) -> None:
        self.served = served
        self.risk = risk
        self.premium = premium
        self.config = config or ExecutionConfig()
        self.state = state or EngineState()
        self._clock = clock
        self._monotonic = monotonic
        self._throttle = SlidingWindow(self.config.order_rate_limit)
        self._markets: dict[str, MarketState] = {}
        self._market_now: datetime | None = None

    # -- views ------------------------------------------------------------------------------------

    @property
    def contracts_per_entry(self) -> int:
        return self.config.contracts_per_entry or self.risk.contracts_per_entry

    def now(self) -> datetime:
        """Market time (the close of the newest bar) when bars have been seen, else the clock."""
        return self._market_now or self._clock.now()

    def market(self, symbol: str) -> MarketState:
        key = normalise_symbol(symbol)
        if key not in self._markets:
            self._markets[key] = MarketState(key, self.premium)
        return self._markets[key]

    def bar_seen(self, symbol: str, start: datetime) -> bool:
        """Whether the underlying's bar starting at ``start`` (or a later one) has been applied."""
        last = self.market(symbol).last_bar
        return last is not None and last.start >= start

    def quote_option(self, option_symbol: str) -> OptionQuote | None:
        """The modelled quote of an option from its underlying's last bar (the paper broker's prices)."""
        parts = parse_occ(option_symbol)
        underlying = next((s for s, m in self._markets.items() if occ_symbol(s, parts.expiry, parts.right,
                                                                             parts.strike) == option_symbol), None)
        if underlying is None:
            return None
        return self._markets[underlying].quote(parts.strike, parts.right, self.premium)

    def snapshot(self) -> RiskSnapshot:
        now = self.now()
        day = trading_day(session_date(now))
        close = day.close if day is not None else now + timedelta(days=1)
        held = {s: p.contracts for s, p in self.state.positions.items() if p.contracts > 0}
        for open_order in self.state.open_orders.values():
            if open_order.order.side is OrderSide.BUY:
                held[open_order.order.symbol] = held.get(open_order.order.symbol, 0) + open_order.remaining
        pending_entries = sum(1 for o in self.state.open_orders.values()
                              if o.order.side is OrderSide.BUY and o.trade_id == o.order.client_order_id)
        return RiskSnapshot(now=now, close=close, trading_state=self.state.trading_state, positions=held,
                            trades_today=self.state.tally.trades + pending_entries,
                            pnl_today=self.pnl_today(), last_exits=dict(self.state.last_exits))

    def pnl_today(self) -> float:
        """Realised P&L of the day plus the open positions marked at the bid."""
        multiplier = self.premium.contract_multiplier
        return self.state.tally.realised_pnl + sum(p.unrealised_pnl(multiplier)
                                                   for p in self.state.positions.values())

    def position_state(self, symbol: str) -> PositionState:
        position = self.state.positions.get(symbol)
        as_of = self.now()
        if position is None or position.contracts == 0:
            realised = position.realised_pnl if position is not None else 0.0
            return PositionState(symbol=symbol, side=PositionSide.FLAT, contracts=0, realised_pnl=realised,
                                 as_of=as_of)
        change = position.mark_bid / position.avg_premium - 1 if position.mark_bid > 0 else 0.0
        return PositionState(symbol=symbol, side=PositionSide(position.right.value), contracts=position.contracts,
                             option_symbol=position.option_symbol, avg_premium=position.avg_premium,
                             mark_premium=position.mark_bid, unrealised_pnl_pct=change,
                             realised_pnl=position.realised_pnl, as_of=as_of)

    # -- events -----------------------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> Effects:
        """Mark the symbol's position, apply the lifecycle's per-bar rule (stop, take-profit tiers,
        flatten window: ``scalper_shared.core.lifecycle``) and the daily loss limit."""
        symbol = normalise_symbol(bar.symbol)
        market = self.market(symbol)
        if market.last_bar is not None and bar.start <= market.last_bar.start:
            return Effects()
        clock_now = self._clock.now()
        if bar.start + BAR_LENGTH > clock_now + self.config.clock_allowance:
            logger.warning("bar %s %s refused: it closes after the clock (%s)", symbol, bar.start.isoformat(),
                           clock_now.isoformat())
            return Effects(refused_bar=BAR_AHEAD_OF_CLOCK)
        market.update(bar)
        as_of = market.as_of
        assert as_of is not None
        self._market_now = max(self._market_now or as_of, as_of)
        effects = Effects()
        if trading_day(session_date(bar.start)) is not None:
            self._roll_day(session_date(bar.start), effects)
        position = self.state.positions.get(symbol)
        if position is not None and position.contracts > 0:
            self._enforce_position_rules(position, market, bar, effects)
            effects.positions.append(copy.copy(position))
            effects.events.append(self.position_state(symbol))
        self._enforce_daily_loss(effects)
        return effects

    def on_decision(self, decision: PolicyDecision, decision_id: str) -> Effects:
        """Turn a policy action into an order, or an ``OrderDenied`` with the rule that refused it."""
        effects = Effects()
        if decision.action is Action.HOLD:
            return effects
        symbol = normalise_symbol(decision.symbol)
        order_id = decision_order_id(decision)
        if order_id in self.state.known_order_ids:
            return effects  # redelivered, or the same decision again: its order (or denial) already exists
        refusal = self._unauthentic(decision, symbol)
        if refusal is not None:
            self._deny(order_id, symbol, refusal[0], effects, refusal[1])
            return effects
        if decision.action in (Action.BUY_CALL, Action.BUY_PUT):
            right = OptionRight.CALL if decision.action is Action.BUY_CALL else OptionRight.PUT
            self._enter(symbol, right, order_id, decision_id, effects)
        else:
            self._reduce(symbol, TRIM_FRACTIONS[decision.action], order_id, decision_id, effects)
        return effects

    def decision_in_time(self, decision: PolicyDecision) -> bool:
        """Whether the decision's minute lies within the tolerance of its symbol's market time (of the
        clock before any bar of the symbol arrived)."""
        last = self.market(decision.symbol).last_bar
        reference = last.start if last is not None else self._clock.now()
        return abs(decision.minute - reference) <= self.config.decision_tolerance

    def action_mask(self, symbol: str) -> list[bool]:
        """The mask execution recomputes from its own state (positions, trading state, day tally)."""
        snapshot = self.snapshot()
        since, was_stop = snapshot.minutes_since_exit(symbol)
        mask = action_mask(snapshot.held(symbol) > 0, minutes_to_close=snapshot.minutes_to_close(),
                           trading_state=snapshot.trading_state, trades_today=snapshot.trades_today,
                           minutes_since_exit=since, exit_was_stop=was_stop, pnl_today=snapshot.pnl_today,
                           config=self.risk)
        return [bool(v) for v in mask]

    def _unauthentic(self, decision: PolicyDecision, symbol: str) -> tuple[str, str] | None:
        """(reason, detail) when the decision must not be acted on, else None."""
        if symbol not in self.premium.symbols:
            return UNKNOWN_SYMBOL, f"no option spec for {symbol}"
        served = self.served(decision.model_id)
        if served is None:
            return NO_PROMOTED_MODEL, "no model is promoted"
        if decision.model_id != served.model_id:
            return UNKNOWN_MODEL, f"model {decision.model_id[:64]!r} is not the promoted model"
        if decision.spec_hash != served.spec_hash:
            return SPEC_HASH_MISMATCH, f"spec hash {decision.spec_hash[:16]!r} is not the served one"
        differences = [] if served.risk is None else risk_differences(self.risk, served.risk)
        if differences and not self.config.allow_risk_mismatch:
            return RISK_CONFIG_MISMATCH, ("execution's risk config differs from the model's ("
                                          + "; ".join(differences)[:300] + ")")
        if served.premium is not None and served.premium != self.premium and not self.config.allow_risk_mismatch:
            return PREMIUM_CONFIG_MISMATCH, "execution's premium config differs from the model's"
        if not decision.mask[decision.action]:
            return ACTION_MASKED, "the decision's own mask forbids its action"
        if not self.decision_in_time(decision):
            last = self.market(symbol).last_bar
            return DECISION_OUT_OF_TIME, (f"minute {decision.minute.isoformat()} is more than "
                                          f"{self.config.decision_tolerance} from market time "
                                          f"{last.start.isoformat() if last else 'none'}")
        if decision.action in ENTRY_ACTIONS and self.market(symbol).last_bar is not None:
            mask = self.action_mask(symbol)
            if not mask[decision.action]:
                reason = check_entry(self.snapshot(), symbol, self.contracts_per_entry, self.risk)
                return str(reason or ACTION_MASKED), "execution's own mask forbids the action"
        return None

    def on_fill(self, fill: OrderFilled) -> Effects:
        """Apply a broker fill to its order, position, trade and the day's P&L (once per fill id)."""
        effects = Effects()
        open_order = self.state.open_orders.get(fill.client_order_id)
        if fill.fill_id in self.state.seen_fill_ids or open_order is None:
            return effects
        self.state.seen_fill_ids.add(fill.fill_id)
        open_order.filled += fill.contracts
        if open_order.remaining <= 0:
            del self.state.open_orders[fill.client_order_id]
        order = open_order.order
        if order.side is OrderSide.BUY:
            position = self._apply_buy(open_order, fill)
        else:
            position = self._apply_sell(open_order, fill)
        effects.tally_changed = True
        effects.positions.append(copy.copy(position))
        effects.events.append(self.position_state(order.symbol))
        self._enforce_daily_loss(effects)
        return effects

    def on_order_closed(self, order_id: str) -> None:
        """The broker canceled or rejected the order: it no longer reserves contracts."""
        self.state.open_orders.pop(order_id, None)

    # -- operator commands ------------------------------------------------------------------------

    def set_trading_state(self, target: TradingState, reason: str) -> Effects:
        effects = Effects()
        self._change_state(target, reason, effects)
        return effects

    def kill_switch(self, command_id: str, reason: str = "kill_switch") -> Effects:
        """HALTED, every open order canceled, every position sold (at the market)."""
        effects = self.set_trading_state(TradingState.HALTED, reason)
        effects.cancels.extend(o for o, open_order in self.state.open_orders.items()
                               if open_order.order.side is OrderSide.BUY)
        for symbol, position in list(self.state.positions.items()):
            if position.contracts > 0:
                self._sell(position, self._unreserved(position), client_order_id("kill", command_id, symbol),
                           ExitReason.KILL_SWITCH, None, effects)
        return effects

    # -- rules ------------------------------------------------------------------------------------

    def _enforce_position_rules(self, position: Position, market: MarketState, bar: Bar,
                                effects: Effects) -> None:
        """The lifecycle's per-bar rule on the contracts not already promised to a working sell: one
        sell order per planned exit, in the rule's order (a stop's order fills at the next bar)."""
        option_quote = market.quote(position.strike, position.right, self.premium)
        if option_quote is None:
            return
        position.mark_bid = option_quote.bid
        assert market.day is not None
        available = self._unreserved(position)
        if available <= 0:
            return
        flatten = must_flatten(option_quote.as_of, market.day.close, self.risk)
        for planned in position_exits(position.avg_premium, option_quote.bid, available, position.tiers_hit,
                                      flatten, self.risk):
            order_id = client_order_id(planned.reason.value, position.trade_id,
                                       planned.reason.tier or bar.start.isoformat())
            if self._sell(position, planned.contracts, order_id, planned.reason, None, effects) \
                    and planned.reason.tier:
                position.tiers_hit = planned.reason.tier

    def _enforce_daily_loss(self, effects: Effects) -> None:
        if self.state.trading_state is not TradingState.HALTED and daily_loss_limit_hit(self.pnl_today(), self.risk):
            self._change_state(TradingState.HALTED, "max_daily_loss", effects)

    def _roll_day(self, day: date, effects: Effects) -> None:
        if self.state.tally.day is None or day > self.state.tally.day:
            self.state.tally = DayTally(day=day)
            effects.tally_changed = True

    def _change_state(self, target: TradingState, reason: str, effects: Effects) -> None:
        reason = sanitise_reason(reason) or target.value
        previous = self.state.trading_state
        if previous is target:
            return
        self.state.trading_state = target
        logger.warning("trading state %s -> %s (%s)", previous.value, target.value, reason)
        effects.events.append(TradingStateChanged(previous=previous, current=target, reason=reason))

    # -- orders -----------------------------------------------------------------------------------

    def _enter(self, symbol: str, right: OptionRight, order_id: str, decision_id: str, effects: Effects) -> None:
        contracts = self.contracts_per_entry
        reason = check_entry(self.snapshot(), symbol, contracts, self.risk)
        if reason is not None:
            self._deny(order_id, symbol, str(reason), effects)
            return
        market = self.market(symbol)
        if market.last_bar is None or market.day is None:
            self._deny(order_id, symbol, NO_MARKET_DATA, effects, "no bar seen for the underlying yet")
            return
        strike = float(atm_strike(symbol, market.last_bar.close, self.premium))
        option_symbol = occ_symbol(symbol, market.day.day, right, strike)
        order = SubmitOrder(client_order_id=order_id, symbol=symbol, option_symbol=option_symbol, right=right,
                            side=OrderSide.BUY, contracts=contracts, reason=f"policy:BUY_{right.name}",
                            decision_id=decision_id)
        self._emit(OpenOrder(order, trade_id=order_id), effects)

    def _reduce(self, symbol: str, fraction: float, order_id: str, decision_id: str | None,
                effects: Effects) -> None:
        position = self.state.positions.get(symbol)
        held = position.contracts if position is not None else 0
        contracts = int(contracts_to_sell(held, fraction)) if held else 1
        refusal = check_reduce(self.snapshot(), symbol, contracts)
        if refusal is None and position is not None and self._unreserved(position) < contracts:
            self._deny(order_id, symbol, ORDER_PENDING, effects, "an exit of this position is already working")
            return
        if refusal is not None or position is None:
            self._deny(order_id, symbol, str(refusal), effects)
            return
        self._sell(position, contracts, order_id, ExitReason.AGENT, decision_id, effects)

    def _sell(self, position: Position, contracts: int, order_id: str, reason: ExitReason, decision_id: str | None,
              effects: Effects) -> bool:
        if contracts <= 0 or order_id in self.state.known_order_ids:
            return False
        order = SubmitOrder(client_order_id=order_id, symbol=position.symbol, option_symbol=position.option_symbol,
                            right=position.right, side=OrderSide.SELL, contracts=contracts, reason=reason.value,
                            decision_id=decision_id)
        return self._emit(OpenOrder(order, trade_id=position.trade_id), effects)

    def _emit(self, open_order: OpenOrder, effects: Effects) -> bool:
        """The last gate before the broker: the order rate limit. True when the order goes out."""
        order = open_order.order
        if not self._throttle.try_acquire(self._monotonic()):
            self._deny(order.client_order_id, order.symbol, ORDER_RATE_LIMIT, effects,
                       f"more than {self.config.order_rate_limit} orders")
            return False
        self.state.known_order_ids.add(order.client_order_id)
        self.state.open_orders[order.client_order_id] = open_order
        effects.orders.append(open_order)
        return True

    def _deny(self, order_id: str, symbol: str, reason: str, effects: Effects, detail: str = "") -> None:
        self.state.known_order_ids.add(order_id)
        logger.info("order %s on %s denied: %s %s", order_id, symbol, reason, detail)
        effects.events.append(OrderDenied(client_order_id=order_id, symbol=symbol, reason=reason, detail=detail))

    def _unreserved(self, position: Position) -> int:
        """Contracts of ``position`` not already promised to a working sell order."""
        selling = sum(o.remaining for o in self.state.open_orders.values()
                      if o.order.side is OrderSide.SELL and o.trade_id == position.trade_id)
        return position.contracts - selling

    # -- fills ------------------------------------------------------------------------------------

    def _apply_buy(self, open_order: OpenOrder, fill: OrderFilled) -> Position:
        order = open_order.order
        position = self.state.positions.get(order.symbol)
        if position is None or position.trade_id != open_order.trade_id:
            position = Position(order.symbol, order.option_symbol, order.right, open_order.trade_id,
                                opened_at=fill.filled_at)
            self.state.positions[order.symbol] = position
            self.state.tally.trades += 1
        cost = position.avg_premium * position.contracts + fill.price * fill.contracts
        position.contracts += fill.contracts
        position.bought += fill.contracts
        position.avg_premium = cost / position.contracts
        position.mark_bid = position.mark_bid or fill.price
        position.realised_pnl -= fill.commission
        self.state.tally.realised_pnl -= fill.commission
        return position

    def _apply_sell(self, open_order: OpenOrder, fill: OrderFilled) -> Position:
        position = self.state.positions[open_order.order.symbol]
        pnl = (fill.price - position.avg_premium) * fill.contracts * self.premium.contract_multiplier
        pnl -= fill.commission
        position.contracts -= fill.contracts
        position.realised_pnl += pnl
        self.state.tally.realised_pnl += pnl
        if position.contracts == 0:
            position.closed_at = fill.filled_at
            position.exit_reason = ExitReason.parse(open_order.order.reason)
            was_stop = position.exit_reason is ExitReason.STOP
            self.state.last_exits[position.symbol] = ExitRecord(fill.filled_at, was_stop)
            del self.state.positions[position.symbol]
            logger.info("trade %s on %s closed by %s: %.2f", position.trade_id, position.symbol,
                        position.exit_reason, position.realised_pnl)
        return position

    def open_positions(self) -> Iterable[Position]:
        return (p for p in self.state.positions.values() if p.contracts > 0)
