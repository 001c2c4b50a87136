"""The execution service against real PostgreSQL and Redis with the paper broker: the order rate
limit at the broker, timeouts without duplicates, redelivery, the kill switch over REST."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from scalper_execution.api import install_routes
from scalper_execution.brokers.base import BrokerOrder, BrokerTimeout
from scalper_execution.brokers.paper import PaperBroker
from scalper_execution.engine import ORDER_RATE_LIMIT, ExecutionConfig, ExecutionEngine
from scalper_execution.service import DECISIONS_AHEAD, ExecutionService, StreamPublisher
from scalper_execution.store import Store
from scalper_shared.bus import Delivery, StreamProducer
from scalper_shared.clock import FakeClock, SequentialIds
from scalper_shared.core.actions import Action
from scalper_shared.core.premium import DEFAULT_PREMIUM_CONFIG
from scalper_shared.core.ratelimit import RateLimit
from scalper_shared.core.risk import RiskConfig, RiskReason
from scalper_shared.db import make_engine
from scalper_shared.db.models import orders, paper_orders, risk_events, trades
from scalper_shared.runtime import build_service_app
from scalper_shared.runtime.api_security import (
    ApiKeyRecord,
    ApiSettingsMixin,
    Scope,
    hash_key,
    install_api_security,
)
from scalper_shared.schema import make_envelope, streams
from scalper_shared.schema.messages import SubmitOrder, TradingState
from tests.unit.execution_support import FakeMonotonic, bar, decision, served

pytestmark = pytest.mark.integration

CHURN = RiskConfig(cooldown_after_exit_minutes=0, max_trades_per_day=100_000, max_daily_loss=1e9,
                   take_profit_tiers=())
"""Enter and exit as fast as the policy asks: only the limits under test bind."""


class TimeoutAfterAccept:
    """The paper broker, except every submit times out AFTER the broker accepted (and filled) it."""

    def __init__(self, inner: PaperBroker) -> None:
        self.inner = inner
        self.submits = 0

    def submit(self, order: SubmitOrder) -> BrokerOrder:
        self.submits += 1
        self.inner.submit(order)
        raise BrokerTimeout("no answer within 2s")

    def __getattr__(self, name: str):  # noqa: ANN204 - cancel, get_order, positions ... go through
        return getattr(self.inner, name)


@pytest.fixture
def database(migrated_database_url: str) -> Iterator:  # noqa: ANN401
    engine = make_engine(migrated_database_url)
    yield engine
    engine.dispose()


def build(database, redis_client: redis.Redis, prefix: str, risk: RiskConfig, rate: str = "100000/1s",
          wrap=None, bar_wait_s: float = 5.0) -> ExecutionService:  # noqa: ANN001
    clock = FakeClock(datetime(2025, 7, 1, 20, 30, tzinfo=UTC))  # after the bars the tests feed
    engine = ExecutionEngine(risk, DEFAULT_PREMIUM_CONFIG, clock, FakeMonotonic(),
                             ExecutionConfig(1, RateLimit.parse(rate)), served=served)
    broker = PaperBroker(database, engine.quote_option, clock, DEFAULT_PREMIUM_CONFIG)
    producers = [StreamProducer(redis_client, s, maxlen=100_000, prefix=prefix)
                 for s in (streams.ORDERS_EVENTS, streams.POSITIONS_STATE)]
    ids = SequentialIds("evt")
    service = ExecutionService(engine, Store(database), wrap(broker) if wrap else broker,
                               StreamPublisher(*producers, clock, ids), clock, ids, bar_wait_s=bar_wait_s)
    service.restore()
    return service


def deliver(service: ExecutionService, message, envelope_id: str) -> None:  # noqa: ANN001
    envelope = make_envelope(message, source="test", clock=service.clock, ids=lambda: envelope_id)
    handler = service.handle_bars if message.TYPE == "bar" else service.handle_decisions
    handler([Delivery(envelope_id, envelope, 1)])


def warm(service: ExecutionService, symbol: str = "SPY", price: float = 600.0) -> None:
    for n in range(5):
        deliver(service, bar(symbol, n, price + (0.3 if n % 2 else -0.3)), f"bar-{symbol}-{n}")


def count(database, table, *where) -> int:  # noqa: ANN001
    with database.connect() as c:
        return c.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def test_101_orders_in_one_second_exactly_100_reach_the_broker(database, redis_client, stream_prefix) -> None:
    service = build(database, redis_client, stream_prefix, CHURN, rate="100/1s")
    warm(service)
    for k in range(101):
        service.engine._monotonic.now = k * 0.009  # type: ignore[attr-defined]
        deliver(service, bar("SPY", 5 + k, 600.0), f"bar-{k}")  # one decision per (model, symbol, minute)
        deliver(service, decision("SPY", 5 + k, Action.BUY_CALL if k % 2 == 0 else Action.EXIT), f"burst-{k}")
    assert count(database, paper_orders) == 100
    denied = count(database, risk_events, risk_events.c.kind == "denied", risk_events.c.reason == ORDER_RATE_LIMIT)
    assert denied == 1
    events = redis_client.xrange(stream_prefix + streams.ORDERS_EVENTS)
    assert sum(b'"order_denied"' in fields[b"envelope"] for _, fields in events) == 1


@pytest.mark.slow
def test_1000_timeouts_after_the_broker_accepted_make_no_duplicate(database, redis_client, stream_prefix) -> None:
    service = build(database, redis_client, stream_prefix, CHURN, wrap=TimeoutAfterAccept)
    symbols = {"SPY": 600.0, "QQQ": 500.0, "SPX": 6000.0}
    for symbol, price in symbols.items():
        warm(service, symbol, price)
    for pair in range(500):  # one decision per (model, symbol, minute): round trips spread over symbols
        symbol, n = list(symbols)[pair % 3], 5 + 2 * (pair // 3)
        for k, action in ((n, Action.BUY_CALL), (n + 1, Action.EXIT)):
            deliver(service, bar(symbol, k, symbols[symbol]), f"b-{symbol}-{k}")
            deliver(service, decision(symbol, k, action), f"d-{symbol}-{k}")
    assert service.broker.submits == 1000  # type: ignore[attr-defined]
    assert count(database, paper_orders) == 1000
    assert count(database, orders, orders.c.status == "filled") == 1000
    with database.connect() as c:
        assert c.execute(select(func.count(func.distinct(paper_orders.c.client_order_id)))).scalar_one() == 1000
        assert c.execute(select(func.sum(trades.c.contracts_open))).scalar_one() == 0
    assert service.broker.positions() == []


def entry_strike(database) -> str:  # noqa: ANN001
    with database.connect() as c:
        return c.execute(select(orders.c.option_symbol).where(orders.c.side == "buy")).scalar_one()[-8:]


def test_a_decision_ahead_of_its_bar_waits_for_it_and_enters_on_that_bar(
        database, redis_client, stream_prefix) -> None:
    service = build(database, redis_client, stream_prefix, RiskConfig())
    warm(service)  # bars 0-4 near 600
    waiting = threading.Thread(target=deliver, args=(service, decision("SPY", 5, Action.BUY_CALL), "early"))
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive() and count(database, orders) == 0  # held, not entered on bar 4
    deliver(service, bar("SPY", 5, 610.0), "bar-SPY-5")
    waiting.join(5)
    assert not waiting.is_alive()
    assert entry_strike(database) == "00610000"  # the strike of bar 5's close, not bar 4's 600


def test_a_decision_whose_bar_never_comes_goes_on_after_the_wait(database, redis_client, stream_prefix) -> None:
    service = build(database, redis_client, stream_prefix, RiskConfig(), bar_wait_s=0.2)
    warm(service)
    before = DECISIONS_AHEAD._value.get()
    started = time.monotonic()
    deliver(service, decision("SPY", 5, Action.BUY_CALL), "no-bar")
    assert 0.2 <= time.monotonic() - started < 2.0
    assert entry_strike(database) == "00600000"
    assert DECISIONS_AHEAD._value.get() == before + 1


def test_a_redelivered_decision_makes_one_order(database, redis_client, stream_prefix) -> None:
    service = build(database, redis_client, stream_prefix, RiskConfig())
    warm(service)
    for _ in range(3):
        deliver(service, decision("SPY", 4, Action.BUY_CALL), "same-envelope")
    restarted = build(database, redis_client, stream_prefix, RiskConfig())
    deliver(restarted, decision("SPY", 4, Action.BUY_CALL), "same-envelope")
    assert count(database, paper_orders) == 1 and count(database, orders) == 1


def test_the_kill_switch_over_rest_leaves_every_position_flat_within_a_second(
        database, redis_client, stream_prefix) -> None:
    service = build(database, redis_client, stream_prefix, RiskConfig())
    for symbol, price in (("SPY", 600.0), ("QQQ", 500.0), ("SPX", 6000.0)):
        warm(service, symbol, price)
        deliver(service, decision(symbol, 4, Action.BUY_PUT), f"open-{symbol}")
    assert len(service.broker.positions()) == 3
    keys = [ApiKeyRecord(name="reader", sha256=hash_key("r-key"), scopes=frozenset({Scope.READ})),
            ApiKeyRecord(name="trader", sha256=hash_key("t-key"), scopes=frozenset({Scope.TRADE}))]
    app = build_service_app("execution-test")
    install_routes(app, service, install_api_security(app, ApiSettingsMixin(api_keys=keys)))
    with TestClient(app) as client:
        assert len(client.get("/v1/positions", headers={"X-API-Key": "r-key"}).json()) == 3
        assert client.post("/v1/risk/flatten", headers={"X-API-Key": "r-key"}).status_code == 403
        assert client.post("/v1/risk/flatten").status_code == 401
        started = time.perf_counter()
        response = client.post("/v1/risk/flatten", headers={"X-API-Key": "t-key"}, json={"reason": "drill"})
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.text
        assert response.json()["trading_state"] == "halted" and response.json()["open_positions"] == 0
        assert elapsed < 1.0
        assert client.get("/v1/positions", headers={"X-API-Key": "r-key"}).json() == []
        sells = client.get("/v1/orders", params={"status": "filled"}, headers={"X-API-Key": "r-key"}).json()
        assert sorted(o["symbol"] for o in sells if o["side"] == "sell") == ["QQQ", "SPX", "SPY"]
        blocked = client.post("/v1/risk/resume", headers={"X-API-Key": "t-key"})
        assert blocked.json()["trading_state"] == "active"
    assert service.broker.positions() == []
    assert count(database, trades, trades.c.contracts_open > 0) == 0


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_orders_fills_denials_positions_pnl_state_and_bar_to_order_latency_are_exported(
        database, redis_client, stream_prefix) -> None:
    service = build(database, redis_client, stream_prefix, RiskConfig())
    warm(service)
    before = {name: sample(name) for name in ("scalper_execution_fills_total", "scalper_execution_bar_to_order_seconds_count",
                                              "scalper_execution_bar_to_order_seconds_sum")}
    orders_before = sample("scalper_execution_orders_total", {"side": "buy", "reason": "policy:BUY_CALL"})
    deliver(service, bar("SPY", 5, 600.0), "bar-SPY-5")
    service.clock.advance(timedelta(milliseconds=250))  # the bar was published 250 ms before the decision's order
    deliver(service, decision("SPY", 5, Action.BUY_CALL), "buy")
    assert sample("scalper_execution_orders_total", {"side": "buy", "reason": "policy:BUY_CALL"}) == orders_before + 1
    assert sample("scalper_execution_fills_total") == before["scalper_execution_fills_total"] + 1
    assert sample("scalper_execution_bar_to_order_seconds_count") == before["scalper_execution_bar_to_order_seconds_count"] + 1
    assert sample("scalper_execution_bar_to_order_seconds_sum") - before["scalper_execution_bar_to_order_seconds_sum"] \
        == pytest.approx(0.25)
    assert sample("scalper_execution_open_positions") == 1 and sample("scalper_execution_open_contracts") == 1
    deliver(service, bar("SPY", 6, 601.0), "bar-SPY-6")  # marked at the new bar's bid
    assert sample("scalper_execution_unrealised_pnl_dollars") == pytest.approx(
        service.engine.pnl_today() - service.engine.state.tally.realised_pnl)
    assert sample("scalper_execution_trading_state", {"state": "active"}) == 1
    service.set_trading_state(TradingState.HALTED, "test")
    assert sample("scalper_execution_trading_state", {"state": "halted"}) == 1
    assert sample("scalper_execution_trading_state", {"state": "active"}) == 0
    halted = {"reason": RiskReason.TRADING_HALTED.value}
    denials_before = sample("scalper_execution_denials_total", halted)
    warm(service, "QQQ", 500.0)
    deliver(service, decision("QQQ", 4, Action.BUY_PUT), "denied")
    assert sample("scalper_execution_denials_total", halted) == denials_before + 1
    service.kill_switch()
    assert sample("scalper_execution_open_positions") == 0
    assert sample("scalper_execution_realised_pnl_dollars") == pytest.approx(service.engine.state.tally.realised_pnl)
