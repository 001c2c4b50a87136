"""A fake Polygon REST server: ``/v2/aggs/ticker/{ticker}/range/{mult}/{timespan}/{from}/{to}`` and
``/v3/reference/options/contracts``.

A real HTTP server on 127.0.0.1 (``http.server`` in a thread) answering with Polygon's JSON shape:
``results`` of ``t,o,h,l,c[,v,vw,n]`` (index tickers have no ``v``/``vw``/``n``), ``next_url``
pagination with an opaque cursor, ``Authorization: Bearer`` checks (401), entitlement refusals
(403), scripted failure bursts (429/5xx) and stalls (for timeouts). Option aggregates are served
under their ``O:`` tickers like any other; the contracts endpoint answers Polygon's v3 shape
(``results`` of ``cfi, contract_type, exercise_style, expiration_date, primary_exchange,
shares_per_contract, strike_price, ticker, underlying_ticker``, ``next_url`` with a cursor) and
filters on ``underlying_ticker``, ``contract_type``, ``expiration_date``, ``as_of`` and
``strike_price`` with its ``.gt/.gte/.lt/.lte`` modifiers.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse
from zoneinfo import ZoneInfo

from tests.fakes.loopback import LoopbackHttpServer

NEW_YORK = ZoneInfo("America/New_York")
UNKNOWN_KEY = {"status": "ERROR", "error": "Unknown API Key"}
NOT_ENTITLED = {"status": "NOT_AUTHORIZED",
                "message": "You are not entitled to this data. Please upgrade your plan at https://polygon.io/pricing"}
CONTRACTS_PATH = "/v3/reference/options/contracts"
TOO_MANY = {"status": "ERROR",
            "error": "You've exceeded the maximum requests per minute, please wait or upgrade your subscription"}


@dataclass
class Scripted:
    """One scripted answer served before normal handling (a 429 burst, a 502, ...)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    at: float


def minute_bars(day: date, count: int, *, first_et: str = "09:30", price: float = 500.0,
                index: bool = False) -> list[dict[str, Any]]:
    """``count`` consecutive Polygon-shaped minute aggregates on ``day`` from ``first_et`` New York time."""
    hour, minute = (int(part) for part in first_et.split(":"))
    start = datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK)
    bars = []
    for i in range(count):
        o = price + 0.01 * i
        bar: dict[str, Any] = {"t": int((start + timedelta(minutes=i)).timestamp() * 1000),
                               "o": o, "h": o + 0.05, "l": o - 0.05, "c": o + 0.02}
        if not index:
            bar.update(v=1000.0 + i, vw=o + 0.01, n=10 + i)
        bars.append(bar)
    return bars


def option_contract(underlying: str, expiry: date, right: str, strike: float, root: str | None = None
                    ) -> dict[str, Any]:
    """One options-contracts result as Polygon sends it (``right`` is ``call`` or ``put``)."""
    ticker = f"O:{root or underlying}{expiry:%y%m%d}{'C' if right == 'call' else 'P'}{round(strike * 1000):08d}"
    return {"cfi": "OCASPS" if right == "call" else "OPASPS", "contract_type": right,
            "exercise_style": "european" if underlying == "SPX" else "american",
            "expiration_date": expiry.isoformat(), "primary_exchange": "BATO", "shares_per_contract": 100,
            "strike_price": strike, "ticker": ticker, "underlying_ticker": underlying}


_STRIKE_FILTERS = {"strike_price": lambda v, x: v == x, "strike_price.gte": lambda v, x: v >= x,
                   "strike_price.gt": lambda v, x: v > x, "strike_price.lte": lambda v, x: v <= x,
                   "strike_price.lt": lambda v, x: v < x}


def _to_ms(value: str, end: bool) -> int:
    if value.isdigit():
        return int(value)
    day = date.fromisoformat(value) + timedelta(days=1 if end else 0)
    return int(datetime(day.year, day.month, day.day, tzinfo=NEW_YORK).timestamp() * 1000) - (1 if end else 0)


class FakePolygonRest(LoopbackHttpServer):
    """Serve ``bars`` (ticker -> Polygon aggregate dicts) like ``api.polygon.io`` does."""

    def __init__(self, bars: dict[str, list[dict[str, Any]]] | None = None, *, api_key: str = "test-key",
                 page_size: int = 50_000) -> None:
        self.bars = bars or {}
        self.contracts: list[dict[str, Any]] = []
        """Options-contracts results (see :func:`option_contract`), listed and active forever."""
        self.api_key = api_key
        self.page_size = page_size
        self.script: deque[Scripted] = deque()
        self.forbidden: set[str] = set()
        self.fail_at: dict[int, int] = {}  # 1-based request number -> status to answer with
        self.stall_s = 0.0
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._bind(self._handler_class(), "fake-polygon-rest")


    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        """The next ``times`` requests get ``status`` (429 by default body), whatever they ask."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        body = TOO_MANY if status == 429 else {"status": "ERROR", "error": f"upstream failure {status}"}
        for _ in range(times):
            self.script.append(Scripted(status, body, headers))

    def aggs_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith("/v2/aggs/")]

    def contracts_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == CONTRACTS_PATH]

    def _contracts_page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        offset = 0
        if "cursor" in query:  # like Polygon's, the cursor carries the whole query: next_url has nothing else
            state = json.loads(base64.urlsafe_b64decode(query["cursor"][0]).decode())
            offset, query = state["offset"], state["query"]
        selected = list(self.contracts)
        for name in ("underlying_ticker", "contract_type", "expiration_date"):
            if name in query:
                selected = [c for c in selected if str(c[name]) == query[name][0]]
        if "as_of" in query:  # contracts are listed before they expire and stop being active after
            selected = [c for c in selected if c["expiration_date"] >= query["as_of"][0]]
        for name, keep in _STRIKE_FILTERS.items():
            if name in query:
                bound = float(query[name][0])
                selected = [c for c in selected if keep(float(c["strike_price"]), bound)]
        selected.sort(key=lambda c: c["ticker"])
        limit = min(int(query.get("limit", ["10"])[0]), 1000)
        body: dict[str, Any] = {"results": selected[offset:offset + limit], "status": "OK",
                                "request_id": f"req-{len(self.requests)}"}
        if offset + limit < len(selected):
            state = {"offset": offset + limit, "query": query}
            cursor = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
            body["next_url"] = f"{self.url}{CONTRACTS_PATH}?cursor={cursor}"
        return body

    # -- request handling ------------------------------------------------------------------------

    def _answer(self, path: str, query: dict[str, list[str]], authorization: str | None,
                ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.requests.append(RecordedRequest(path, query, authorization, time.monotonic()))
            scripted = self.script.popleft() if self.script else None
            if scripted is None and len(self.requests) in self.fail_at:
                scripted = Scripted(self.fail_at[len(self.requests)], TOO_MANY)
        if self.stall_s:
            time.sleep(self.stall_s)
        if scripted is not None:
            return scripted.status, scripted.body, scripted.headers
        if authorization != f"Bearer {self.api_key}":
            return 401, UNKNOWN_KEY, {}
        if path == CONTRACTS_PATH:
            return 200, self._contracts_page(query), {}
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if len(parts) != 9 or parts[:3] != ["v2", "aggs", "ticker"] or parts[4] != "range":
            return 404, {"status": "NOT_FOUND", "message": "Not found"}, {}
        ticker, frm, to = parts[3], parts[7], parts[8]
        if ticker in self.forbidden:
            return 403, NOT_ENTITLED, {}
        return 200, self._page(path, ticker, _to_ms(frm, False), _to_ms(to, True), query), {}

    def _page(self, path: str, ticker: str, frm: int, to: int, query: dict[str, list[str]]) -> dict[str, Any]:
        selected = sorted((b for b in self.bars.get(ticker, []) if frm <= b["t"] <= to), key=lambda b: b["t"])
        limit = min(int(query.get("limit", ["5000"])[0]), self.page_size)
        offset = int(base64.urlsafe_b64decode(query["cursor"][0]).decode()) if "cursor" in query else 0
        page = selected[offset:offset + limit]
        body: dict[str, Any] = {"ticker": ticker, "queryCount": len(page), "resultsCount": len(page),
                                "adjusted": True, "status": "OK", "request_id": f"req-{len(self.requests)}",
                                "count": len(page)}
        if page:
            body["results"] = page
        if offset + limit < len(selected):
            cursor = base64.urlsafe_b64encode(str(offset + limit).encode()).decode()
            body["next_url"] = f"{self.url}{path}?cursor={cursor}"
        return body

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                parsed = urlparse(self.path)
                status, body, headers = fake._answer(parsed.path, parse_qs(parsed.query),
                                                     self.headers.get("Authorization"))
                payload = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler
