"""A fake Alpaca trading API: a real HTTP server on 127.0.0.1 speaking Alpaca's v2 wire format.

Endpoints (what ``alpaca-py``'s ``TradingClient`` and the adapter call): ``GET /v2/account``,
``POST /v2/orders``, ``GET /v2/orders`` (``status=open|closed|all``, ``limit``, ``direction``),
``GET /v2/orders:by_client_order_id``, ``GET /v2/orders/{id}``, ``DELETE /v2/orders/{id}``,
``GET /v2/positions`` and ``GET /v2/account/activities/FILL`` (``after``, ``direction``,
``page_size``, ``page_token``). Errors have Alpaca's ``{"code", "message"}`` body: 401 for bad keys,
404 for an unknown order, 422 for a duplicate ``client_order_id`` or an order that cannot be canceled.

Scriptable: orders fill at once (``fill_on_accept``) or stay open for :meth:`fill`; the next
responses can be dropped after the order was accepted (:meth:`drop_next`: the connection is closed
without an answer) or stalled (:meth:`stall_next`: answered after a delay, past the client's
timeout); the next submits can be refused (:meth:`reject_next`); positions can be seeded
(:meth:`seed_position`) and open orders planted (:meth:`plant_open_order`) to stage a mismatch.
``accepted`` counts the orders accepted per ``client_order_id``: a duplicate shows up there.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.fakes.loopback import LoopbackHttpServer

OPEN_STATUSES = frozenset({"new", "accepted", "pending_new", "partially_filled", "pending_cancel"})
UNAUTHORIZED = {"code": 40110000, "message": "request is not authorized"}
DUPLICATE = {"code": 40010001, "message": "client_order_id must be unique"}


@dataclass
class Fault:
    """What to do to the next matching request: ``drop`` (close, no answer) or ``stall`` (answer late)."""

    method: str
    path_prefix: str
    kind: str
    stall_s: float = 0.0


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class FakeAlpaca(LoopbackHttpServer):
    """Serve one Alpaca account: orders, fills (account activities) and positions."""

    def __init__(self, *, api_key: str = "test-key", secret_key: str = "test-secret",
                 account_number: str = "PA3TEST0001", fill_on_accept: bool = True,
                 fill_price: float = 1.25, clock: Callable[[], datetime] | None = None, tick_ms: int = 1) -> None:
        self.api_key = api_key
        self.secret_key = secret_key
        self.account_number = account_number
        self.fill_on_accept = fill_on_accept
        self.fill_price = fill_price
        self.options_trading_level = 2
        self.orders: dict[str, dict[str, Any]] = {}
        self.by_client_id: dict[str, str] = {}
        self.activities: list[dict[str, Any]] = []
        self.positions: dict[str, dict[str, Any]] = {}
        self.accepted: Counter[str] = Counter()
        self.duplicates_refused = 0
        self.requests: list[tuple[str, str]] = []
        self.faults: deque[Fault] = deque()
        self.rejections: deque[tuple[int, str]] = deque()
        self._lock = threading.RLock()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._clock_ms = 0
        self._tick_ms = tick_ms
        self._bind(self._handler_class(), "fake-alpaca")


    # -- scripting --------------------------------------------------------------------------------

    def drop_next(self, method: str, path_prefix: str, times: int = 1) -> None:
        """The next ``times`` matching requests are processed, then the connection closes unanswered."""
        self.faults.extend(Fault(method, path_prefix, "drop") for _ in range(times))

    def stall_next(self, method: str, path_prefix: str, stall_s: float, times: int = 1) -> None:
        """The next matching requests are processed, then answered only after ``stall_s``."""
        self.faults.extend(Fault(method, path_prefix, "stall", stall_s) for _ in range(times))

    def reject_next(self, status: int, message: str) -> None:
        """The next order submission is refused with ``status`` and Alpaca's error body."""
        self.rejections.append((status, message))

    def seed_position(self, symbol: str, qty: int, avg_entry_price: float = 1.0) -> None:
        """A position the account holds whatever our service believes (opened elsewhere)."""
        with self._lock:
            self.positions[symbol] = {"qty": qty, "cost": qty * avg_entry_price * 100}

    def plant_open_order(self, symbol: str, qty: int, client_order_id: str | None = None) -> dict[str, Any]:
        """An open order someone else placed on the account."""
        body = {"symbol": symbol, "qty": str(qty), "side": "buy", "type": "limit", "limit_price": "0.05",
                "time_in_force": "day", "client_order_id": client_order_id or str(uuid.uuid4())}
        with self._lock:
            return self._accept(body, fill=False)

    def fill(self, client_order_id: str, qty: int, price: float) -> dict[str, Any]:
        """Execute ``qty`` more contracts of an open order at ``price`` (one FILL activity)."""
        with self._lock:
            order = self.orders[self.by_client_id[client_order_id]]
            self._execute(order, qty, price)
            return dict(order)

    def orders_per_client_id(self) -> Counter[str]:
        return Counter(self.accepted)

    # -- the venue --------------------------------------------------------------------------------

    def _now(self) -> datetime:
        """The venue's time (wall time unless a clock is given), strictly increasing by at least
        ``tick_ms`` per call (distinct activity ids)."""
        self._clock_ms = max(self._clock_ms + self._tick_ms, int(self._clock().timestamp() * 1000))
        return datetime.fromtimestamp(self._clock_ms / 1000, UTC)

    def _accept(self, body: dict[str, Any], *, fill: bool) -> dict[str, Any]:
        now = _iso(self._now())
        order = {
            "id": str(uuid.uuid4()), "client_order_id": body["client_order_id"], "created_at": now,
            "updated_at": now, "submitted_at": now, "filled_at": None, "expired_at": None, "expires_at": None,
            "canceled_at": None, "failed_at": None, "replaced_at": None, "replaced_by": None, "replaces": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_OID, body["symbol"])), "symbol": body["symbol"],
            "asset_class": "us_option", "notional": None, "qty": str(body["qty"]), "filled_qty": "0",
            "filled_avg_price": None, "order_class": "simple", "order_type": body["type"], "type": body["type"],
            "side": body["side"], "position_intent": body.get("position_intent"),
            "time_in_force": body["time_in_force"], "limit_price": body.get("limit_price"), "stop_price": None,
            "status": "accepted", "extended_hours": False, "legs": None, "trail_percent": None,
            "trail_price": None, "hwm": None,
        }
        self.orders[order["id"]] = order
        self.by_client_id[order["client_order_id"]] = order["id"]
        self.accepted[order["client_order_id"]] += 1
        if fill:
            self._execute(order, int(body["qty"]), self.fill_price)
        return order

    def _execute(self, order: dict[str, Any], qty: int, price: float) -> None:
        if order["status"] not in OPEN_STATUSES:
            raise ValueError(f"order {order['client_order_id']} is {order['status']}, it cannot fill")
        done = int(order["filled_qty"])
        if done + qty > int(order["qty"]):
            raise ValueError("fill larger than what is left of the order")
        now = self._now()
        average = float(order["filled_avg_price"] or 0.0)
        order["filled_avg_price"] = str(round((average * done + price * qty) / (done + qty), 6))
        order["filled_qty"] = str(done + qty)
        complete = done + qty == int(order["qty"])
        order["status"] = "filled" if complete else "partially_filled"
        order["updated_at"] = _iso(now)
        if complete:
            order["filled_at"] = _iso(now)
        self.activities.append({
            "id": f"{now:%Y%m%d%H%M%S%f}"[:17] + f"::{uuid.uuid4()}", "activity_type": "FILL",
            "transaction_time": _iso(now), "type": "fill" if complete else "partial_fill", "price": str(price),
            "qty": str(qty), "side": order["side"], "symbol": order["symbol"],
            "leaves_qty": str(int(order["qty"]) - done - qty), "order_id": order["id"], "cum_qty": str(done + qty),
            "order_status": order["status"]})
        self._move_position(order["symbol"], qty if order["side"] == "buy" else -qty, price)

    def _move_position(self, symbol: str, delta: int, price: float) -> None:
        held = self.positions.setdefault(symbol, {"qty": 0, "cost": 0.0})
        if delta > 0:
            held["cost"] += delta * price * 100
        elif held["qty"]:
            held["cost"] *= (held["qty"] + delta) / held["qty"]
        held["qty"] += delta
        if held["qty"] == 0:
            del self.positions[symbol]

    def _position_json(self, symbol: str, held: dict[str, Any]) -> dict[str, Any]:
        qty = held["qty"]
        average = held["cost"] / qty / 100 if qty else 0.0
        return {"asset_id": str(uuid.uuid5(uuid.NAMESPACE_OID, symbol)), "symbol": symbol, "exchange": "",
                "asset_class": "us_option", "asset_marginable": False, "avg_entry_price": str(round(average, 6)),
                "qty": str(abs(qty)), "side": "long" if qty > 0 else "short", "market_value": None,
                "cost_basis": str(round(held["cost"], 2)), "unrealized_pl": None, "unrealized_plpc": None,
                "unrealized_intraday_pl": None, "unrealized_intraday_plpc": None, "current_price": None,
                "lastday_price": None, "change_today": None, "qty_available": str(abs(qty))}

    def _account_json(self) -> dict[str, Any]:
        return {"id": str(uuid.uuid5(uuid.NAMESPACE_OID, self.account_number)),
                "account_number": self.account_number, "status": "ACTIVE", "crypto_status": "INACTIVE",
                "currency": "USD", "buying_power": "100000", "cash": "100000", "portfolio_value": "100000",
                "pattern_day_trader": False, "trading_blocked": False, "transfers_blocked": False,
                "account_blocked": False, "created_at": "2024-01-02T15:00:00Z", "trade_suspended_by_user": False,
                "multiplier": "1", "shorting_enabled": False, "equity": "100000", "last_equity": "100000",
                "options_approved_level": self.options_trading_level,
                "options_trading_level": self.options_trading_level, "options_buying_power": "100000"}

    # -- routes -----------------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        one = {k: v[0] for k, v in query.items()}
        if method == "GET" and path == "/v2/account":
            return 200, self._account_json()
        if method == "POST" and path == "/v2/orders":
            return self._submit(body)
        if method == "GET" and path == "/v2/orders":
            return 200, self._list_orders(one)
        if method == "GET" and path == "/v2/orders:by_client_order_id":
            order_id = self.by_client_id.get(one.get("client_order_id", ""))
            return (200, self.orders[order_id]) if order_id else (404, {"code": 40410000,
                                                                      "message": "order not found"})
        if path.startswith("/v2/orders/"):
            return self._one_order(method, path.removeprefix("/v2/orders/"))
        if method == "GET" and path == "/v2/positions":
            return 200, [self._position_json(s, h) for s, h in sorted(self.positions.items())]
        if method == "GET" and path == "/v2/account/activities/FILL":
            return 200, self._fill_activities(one)
        return 404, {"code": 40410000, "message": f"no route {method} {path}"}

    def _submit(self, body: dict[str, Any]) -> tuple[int, Any]:
        if self.rejections:
            status, message = self.rejections.popleft()
            return status, {"code": 40310000, "message": message}
        if body.get("client_order_id") in self.by_client_id:
            self.duplicates_refused += 1
            return 422, DUPLICATE
        if body.get("time_in_force") != "day":
            return 422, {"code": 42210000, "message": "options orders must be day orders"}
        if float(body.get("qty", 0)) != int(float(body.get("qty", 0))) or float(body.get("qty", 0)) <= 0:
            return 422, {"code": 40010001, "message": "qty must be a positive whole number of contracts"}
        body = {**body, "client_order_id": body.get("client_order_id") or str(uuid.uuid4()),
                "qty": int(float(body["qty"]))}
        return 200, self._accept(body, fill=self.fill_on_accept and body["type"] == "market")

    def _list_orders(self, query: dict[str, str]) -> list[dict[str, Any]]:
        status = query.get("status", "open")
        chosen = [o for o in self.orders.values()
                  if status == "all" or (o["status"] in OPEN_STATUSES) == (status == "open")]
        chosen.sort(key=lambda o: o["submitted_at"], reverse=query.get("direction", "desc") == "desc")
        return chosen[:int(query.get("limit", 50))]

    def _one_order(self, method: str, order_id: str) -> tuple[int, Any]:
        order = self.orders.get(order_id)
        if order is None:
            return 404, {"code": 40410000, "message": "order not found"}
        if method == "GET":
            return 200, order
        if method == "DELETE":
            if order["status"] not in OPEN_STATUSES:
                return 422, {"code": 42210000, "message": f"order is not cancelable (status {order['status']})"}
            order["status"] = "canceled"
            order["canceled_at"] = order["updated_at"] = _iso(self._now())
            return 204, None
        return 405, {"code": 40510000, "message": "method not allowed"}

    def _fill_activities(self, query: dict[str, str]) -> list[dict[str, Any]]:
        chosen = list(self.activities)
        if "after" in query:
            after = _parse_time(query["after"])
            chosen = [a for a in chosen if _parse_time(a["transaction_time"]) > after]
        if query.get("direction", "desc") == "desc":
            chosen.reverse()
        if "page_token" in query:
            ids = [a["id"] for a in chosen]
            chosen = chosen[ids.index(query["page_token"]) + 1:] if query["page_token"] in ids else []
        return chosen[:min(int(query.get("page_size", 100)), 100)]

    # -- HTTP ---------------------------------------------------------------------------------------

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method == method and path.startswith(fault.path_prefix):
                    self.faults.remove(fault)
                    return fault
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body in one segment: no 40 ms delayed-ACK stall
            wbufsize = -1  # buffered; flushed once per request by the base class

            def log_message(self, *args: object) -> None:  # keep test output quiet
                return

            def _handle(self, method: str) -> None:
                parsed = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                fake.requests.append((method, parsed.path))
                if (self.headers.get("APCA-API-KEY-ID") != fake.api_key
                        or self.headers.get("APCA-API-SECRET-KEY") != fake.secret_key):
                    self._send(401, UNAUTHORIZED)
                    return
                fault = fake._fault_for(method, parsed.path)
                with fake._lock:
                    status, payload = fake._route(method, parsed.path, parse_qs(parsed.query),
                                                  json.loads(raw) if raw else None)
                if fault is not None and fault.kind == "drop":
                    self.close_connection = True  # processed, but the client never hears about it
                    return
                if fault is not None:
                    time.sleep(fault.stall_s)
                self._send(status, payload)

            def _send(self, status: int, payload: Any) -> None:
                data = b"" if payload is None else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up waiting (a stalled answer)
                    self.close_connection = True

            def do_GET(self) -> None:  # noqa: N802
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

            def do_DELETE(self) -> None:  # noqa: N802
                self._handle("DELETE")

        return Handler
