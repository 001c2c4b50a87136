"""The live broker: Alpaca options through ``alpaca-py`` (SPY and QQQ; Alpaca offers no SPX options).

Orders go out as DAY market orders under our deterministic ``client_order_id`` with a position
intent (``buy_to_open``/``sell_to_close``, so a sell can never open a short). Every HTTP call has a
timeout. When a call gets no answer the outcome is unknown and ``BrokerTimeout``/``BrokerError`` is
raised; the caller looks the order up by ``client_order_id`` before any resubmit, and a resubmit that
Alpaca refuses as a duplicate (422 "client_order_id must be unique") returns the order Alpaca holds,
so no path sends a second order. Fills are Alpaca's FILL account activities (one per execution, with
its own id), so a partial fill is recorded once, at its own price. An order is reported terminal only
once its fills add up to Alpaca's ``filled_qty``; until then the reconciler keeps asking.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide as AlpacaSide
from alpaca.trading.enums import PositionIntent, QueryOrderStatus, TimeInForce
from alpaca.trading.models import Order, Position, TradeAccount
from alpaca.trading.requests import GetOrdersRequest, MarketOrderRequest
from pydantic import BaseModel, ConfigDict, Field

from scalper_execution.brokers.base import (
    BrokerError,
    BrokerFill,
    BrokerOrder,
    BrokerPosition,
    BrokerRejected,
    BrokerStatus,
    BrokerTimeout,
)
from scalper_shared.core.premium import normalise_symbol
from scalper_shared.schema.messages import OrderSide, SubmitOrder

logger = logging.getLogger(__name__)

ALPACA_UNDERLYINGS = frozenset({"SPY", "QQQ"})
"""Underlyings whose options this adapter trades. Alpaca lists no SPX/SPXW index options."""
UNSUPPORTED_UNDERLYING = "alpaca_unsupported_underlying"
SIZE_LADDER = "size_ladder"
DUPLICATE_CLIENT_ORDER_ID = "client_order_id must be unique"
FILLS_PAGE_SIZE = 100

_STATUS = {
    "filled": BrokerStatus.FILLED,
    "partially_filled": BrokerStatus.PARTIALLY_FILLED,
    "canceled": BrokerStatus.CANCELED,
    "expired": BrokerStatus.CANCELED,
    "replaced": BrokerStatus.CANCELED,
    "rejected": BrokerStatus.REJECTED,
    "suspended": BrokerStatus.REJECTED,
}
"""Alpaca order status -> ours. Everything else (new, accepted, pending_new, accepted_for_bidding,
pending_cancel, pending_replace, pending_review, held, calculated, stopped, done_for_day) is still
working: ACCEPTED, or PARTIALLY_FILLED once something filled."""


class AlpacaConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: str = Field(min_length=1)
    secret_key: str = Field(min_length=1)
    paper: bool = True
    base_url: str | None = None
    timeout_s: float = Field(5.0, gt=0)
    fee_per_contract: float = Field(0.0, ge=0)
    max_contracts_per_entry: int = Field(1, gt=0)


def unsupported_reason(symbol: str) -> str | None:
    """Why Alpaca cannot trade options on ``symbol``, or None for SPY and QQQ."""
    underlying = normalise_symbol(symbol)
    if underlying in ALPACA_UNDERLYINGS:
        return None
    if underlying in ("SPX", "SPXW"):
        return (f"{UNSUPPORTED_UNDERLYING}: Alpaca does not offer SPX index options ({symbol}); "
                "the Alpaca adapter trades SPY and QQQ options only")
    return f"{UNSUPPORTED_UNDERLYING}: {symbol} options are not traded through the Alpaca adapter (SPY, QQQ only)"


def broker_status(order: Order, fills: tuple[BrokerFill, ...]) -> BrokerStatus:
    """Our status of an Alpaca order whose known executions are ``fills``."""
    filled_qty = int(float(order.filled_qty or 0))
    status = _STATUS.get(order.status.value)
    if sum(f.contracts for f in fills) < filled_qty:
        status = None  # Alpaca's activities lag its order: not terminal until every fill is seen
    if status is None:
        return BrokerStatus.PARTIALLY_FILLED if filled_qty > 0 else BrokerStatus.ACCEPTED
    return status


class _TimeoutSession(requests.Session):
    """A requests session that applies ``timeout_s`` (connect and read) to every request."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout_s)
        return super().request(method, url, *args, **kwargs)


def make_client(config: AlpacaConfig) -> TradingClient:
    """A ``TradingClient`` whose every request times out after ``config.timeout_s`` and is never
    retried inside alpaca-py (a retried POST must go through our look-up first)."""
    client = TradingClient(config.api_key, config.secret_key, paper=config.paper, url_override=config.base_url)
    # alpaca-py exposes neither a timeout nor a retry switch: both are its RESTClient's attributes.
    client._session = _TimeoutSession(config.timeout_s)  # noqa: SLF001
    client._retry = 0  # noqa: SLF001
    return client


class AlpacaBroker:
    def __init__(self, config: AlpacaConfig, client: TradingClient | None = None) -> None:
        self.config = config
        self.client = client or make_client(config)
        self._client_ids: dict[str, str] = {}  # Alpaca order id -> our client order id

    # -- account ------------------------------------------------------------------------------------

    def account(self) -> TradeAccount:
        try:
            result = self._call("account", self.client.get_account)
        except APIError as exc:
            raise _refusal_or_error(exc, "account", refuse=False) from exc
        assert isinstance(result, TradeAccount)
        return result

    # -- Broker -------------------------------------------------------------------------------------

    def submit(self, order: SubmitOrder) -> BrokerOrder:
        refusal = self.refusal(order)
        if refusal is not None:
            raise BrokerRejected(refusal)
        request = MarketOrderRequest(
            symbol=order.option_symbol, qty=order.contracts, time_in_force=TimeInForce.DAY,
            side=AlpacaSide.BUY if order.side is OrderSide.BUY else AlpacaSide.SELL,
            position_intent=PositionIntent.BUY_TO_OPEN if order.side is OrderSide.BUY else PositionIntent.SELL_TO_CLOSE,
            client_order_id=order.client_order_id)
        try:
            placed = self._call(order.client_order_id, self.client.submit_order, request)
        except APIError as exc:
            if _is_duplicate(exc):
                logger.info("order %s already at Alpaca (duplicate client_order_id); fetching it",
                            order.client_order_id)
                existing = self.get_order(order.client_order_id)
                if existing is None:
                    raise BrokerError(f"Alpaca calls {order.client_order_id} a duplicate but cannot find it") from exc
                return existing
            raise _refusal_or_error(exc, order.client_order_id) from exc
        assert isinstance(placed, Order)
        logger.info("order %s accepted by Alpaca as %s: %s %s %s", order.client_order_id, placed.id,
                    order.side.value, order.contracts, order.option_symbol)
        return self._order(placed)

    def refusal(self, order: SubmitOrder) -> str | None:
        """Why this adapter refuses ``order`` before sending it: the underlying, or the size ladder."""
        reason = unsupported_reason(order.symbol)
        if reason is None and order.side is OrderSide.BUY and order.contracts > self.config.max_contracts_per_entry:
            reason = (f"{SIZE_LADDER}: {order.contracts} contracts is above the current rung of "
                      f"{self.config.max_contracts_per_entry} contract(s) per entry")
        return reason

    def cancel(self, client_order_id: str) -> BrokerOrder | None:
        current = self._find(client_order_id)
        if current is None:
            return None
        if _STATUS.get(current.status.value) in (None, BrokerStatus.PARTIALLY_FILLED):  # still working
            try:
                self._call(client_order_id, self.client.cancel_order_by_id, current.id)
            except APIError as exc:
                if exc.status_code != 422:  # 422: no longer cancelable (filled meanwhile); report as is
                    raise _refusal_or_error(exc, client_order_id) from exc
        return self.get_order(client_order_id)

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        found = self._find(client_order_id)
        return None if found is None else self._order(found)

    def open_orders(self) -> list[BrokerOrder]:
        request = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500, nested=False)
        found = self._call("open orders", self.client.get_orders, request)
        assert isinstance(found, list)
        return [self._order(o) for o in found]

    def positions(self) -> list[BrokerPosition]:
        """Every position of the account (options and anything else): the start-up check compares all."""
        held = self._call("positions", self.client.get_all_positions)
        assert isinstance(held, list)
        return [_position(p) for p in held]

    def fills(self, since: datetime | None = None) -> list[BrokerFill]:
        result = []
        for activity in self._fill_activities(since):
            client_id = self._client_id(activity["order_id"])
            if client_id is not None:
                result.append(self._fill(activity, client_id))
        return result

    # -- helpers ------------------------------------------------------------------------------------

    def _find(self, client_order_id: str) -> Order | None:
        try:
            found = self._call(client_order_id, self.client.get_order_by_client_id, client_order_id)
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise _refusal_or_error(exc, client_order_id, refuse=False) from exc
        assert isinstance(found, Order)
        return found

    def _order(self, order: Order) -> BrokerOrder:
        broker_id = str(order.id)
        self._client_ids[broker_id] = order.client_order_id
        fills = self._order_fills(order)
        status = broker_status(order, fills)
        reason = order.status.value if status in (BrokerStatus.CANCELED, BrokerStatus.REJECTED) else ""
        return BrokerOrder(client_order_id=order.client_order_id, broker_order_id=broker_id,
                           option_symbol=order.symbol or "", side=OrderSide(order.side.value if order.side else "buy"),
                           contracts=int(float(order.qty or 0)), status=status, fills=fills, reason=reason)

    def _order_fills(self, order: Order) -> tuple[BrokerFill, ...]:
        """The order's FILL activities, read from its submission on until they add up to ``filled_qty``."""
        filled_qty = int(float(order.filled_qty or 0))
        found: list[BrokerFill] = []
        if filled_qty == 0:
            return ()
        for activity in self._fill_activities(order.submitted_at - timedelta(seconds=1)):
            if activity["order_id"] == str(order.id):
                found.append(self._fill(activity, order.client_order_id))
                if sum(f.contracts for f in found) >= filled_qty:
                    break
        return tuple(found)

    def _fill(self, activity: dict[str, Any], client_order_id: str) -> BrokerFill:
        contracts = int(float(activity["qty"]))
        return BrokerFill(fill_id=str(activity["id"]), client_order_id=client_order_id, contracts=contracts,
                          price=float(activity["price"]), commission=contracts * self.config.fee_per_contract,
                          filled_at=datetime.fromisoformat(str(activity["transaction_time"]).replace("Z", "+00:00")))

    def _fill_activities(self, since: datetime | None) -> Iterator[dict[str, Any]]:
        """FILL account activities, oldest first, following Alpaca's ``page_token`` paging."""
        params: dict[str, Any] = {"direction": "asc", "page_size": FILLS_PAGE_SIZE}
        if since is not None:
            params["after"] = since.isoformat()
        while True:
            page = self._call("fill activities", self.client.get, "/account/activities/FILL", dict(params))
            page = page if isinstance(page, list) else []
            yield from (a for a in page if a.get("activity_type", "FILL") == "FILL")
            if len(page) < FILLS_PAGE_SIZE:
                return
            params["page_token"] = page[-1]["id"]

    def _client_id(self, broker_order_id: str) -> str | None:
        if broker_order_id not in self._client_ids:
            try:
                order = self._call(broker_order_id, self.client.get_order_by_id, broker_order_id)
            except APIError as exc:
                logger.warning("fill of unknown Alpaca order %s (%s); skipped", broker_order_id, exc)
                return None
            assert isinstance(order, Order)
            self._client_ids[broker_order_id] = order.client_order_id
        return self._client_ids[broker_order_id]

    def _call(self, what: str, function: Any, *args: Any) -> Any:
        """Run one alpaca-py call; transport failures become ``BrokerTimeout``/``BrokerError``."""
        try:
            return function(*args)
        except requests.Timeout as exc:
            raise BrokerTimeout(f"Alpaca gave no answer within {self.config.timeout_s}s ({what})") from exc
        except requests.RequestException as exc:
            raise BrokerError(f"Alpaca unreachable ({what}): {exc.__class__.__name__}") from exc


def _is_duplicate(exc: APIError) -> bool:
    return exc.status_code == 422 and DUPLICATE_CLIENT_ORDER_ID in _message(exc)


def _message(exc: APIError) -> str:
    try:
        return str(json.loads(str(exc)).get("message", exc))
    except (ValueError, AttributeError):
        return str(exc)


def _refusal_or_error(exc: APIError, what: str, *, refuse: bool = True) -> Exception:
    """A 4xx answer (other than 408/429) is a refusal; 408, 429 and 5xx leave the outcome unknown."""
    status = exc.status_code or 0
    detail = f"Alpaca {status}: {_message(exc)}"
    if refuse and 400 <= status < 500 and status not in (408, 429):
        logger.warning("Alpaca refused %s: %s", what, detail)
        return BrokerRejected(detail)
    return BrokerError(detail)


def _position(position: Position) -> BrokerPosition:
    qty = int(float(position.qty))
    signed = -abs(qty) if position.side.value == "short" else abs(qty)
    return BrokerPosition(option_symbol=position.symbol, contracts=signed, avg_price=float(position.avg_entry_price))


def option_positions(positions: Iterable[BrokerPosition]) -> dict[str, int]:
    """option symbol -> contracts, for the positions that are not flat."""
    return {p.option_symbol: p.contracts for p in positions if p.contracts}
