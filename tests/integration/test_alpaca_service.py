"""The execution service trading through the Alpaca adapter against the fake Alpaca server: the live
switches at start, start-up reconciliation, no duplicate under timeouts, SPX refused with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
import redis
from sqlalchemy import Engine, func, insert, select

from scalper_execution.brokers.alpaca import AlpacaBroker, AlpacaConfig
from scalper_execution.engine import ExecutionConfig, ExecutionEngine
from scalper_execution.live import (
    LiveSettingsMixin,
    LiveTradingRefused,
    confirmation_phrase,
    start_live_broker,
)
from scalper_execution.reconcile import RECONCILED, RECONCILIATION_MISMATCH, reconcile_at_start
from scalper_execution.service import BROKER_REJECTED, ExecutionService, SendPolicy, StreamPublisher
from scalper_execution.store import Store
from scalper_shared.bus import Delivery, StreamProducer
from scalper_shared.clock import FakeClock, SequentialIds
from scalper_shared.core.actions import N_ACTIONS, Action
from scalper_shared.core.premium import DEFAULT_PREMIUM_CONFIG
from scalper_shared.core.ratelimit import RateLimit
from scalper_shared.core.risk import RiskConfig
from scalper_shared.db import make_engine
from scalper_shared.db.models import daily_pnl, orders, risk_events, risk_state, trades
from scalper_shared.schema import make_envelope, streams
from scalper_shared.schema.messages import Bar, PolicyDecision, Session, TradingState
from tests.fakes.alpaca import FakeAlpaca
from tests.unit.execution_support import SERVED, FakeMonotonic, bar, decision, served

pytestmark = pytest.mark.integration

TODAY = date(2025, 7, 1)
VENUE_START = datetime(2025, 7, 1, 13, 0, tzinfo=UTC)
"""The fake venue's clock starts here and moves 20 ms per event: fills stay before the market time
of the warm-up bars (13:35), as they would in a live session, whatever the wall clock says."""
CHURN = RiskConfig(cooldown_after_exit_minutes=0, max_trades_per_day=100_000, max_daily_loss=1e9,
                   take_profit_tiers=())


@pytest.fixture
def database(migrated_database_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    with FakeAlpaca(clock=lambda: VENUE_START, tick_ms=20) as server:
        yield server


def alpaca(fake: FakeAlpaca, contracts: int = 1) -> AlpacaBroker:
    return AlpacaBroker(AlpacaConfig(api_key=fake.api_key, secret_key=fake.secret_key, base_url=fake.url,
                                     timeout_s=0.05, max_contracts_per_entry=contracts))


def build(database: Engine, redis_client: redis.Redis, prefix: str, broker: AlpacaBroker,
          risk: RiskConfig | None = None) -> ExecutionService:
    clock = FakeClock(datetime(2025, 7, 1, 14, 0, tzinfo=UTC))
    engine = ExecutionEngine(risk or CHURN, DEFAULT_PREMIUM_CONFIG, clock, FakeMonotonic(),
                             ExecutionConfig(broker.config.max_contracts_per_entry, RateLimit.parse("100000/1s")),
                             served=served)
    producers = [StreamProducer(redis_client, s, maxlen=100_000, prefix=prefix)
                 for s in (streams.ORDERS_EVENTS, streams.POSITIONS_STATE)]
    ids = SequentialIds("evt")
    service = ExecutionService(engine, Store(database), broker, StreamPublisher(*producers, clock, ids), clock, ids,
                               SendPolicy(attempts=3))
    service.restore()
    return service


def deliver(service: ExecutionService, message, envelope_id: str) -> None:  # noqa: ANN001
    envelope = make_envelope(message, source="test", clock=service.clock, ids=lambda: envelope_id)
    handler = service.handle_bars if message.TYPE == "bar" else service.handle_decisions
    handler([Delivery(envelope_id, envelope, 1)])


def warm(service: ExecutionService, symbol: str = "SPY", price: float = 600.0) -> None:
    for n in range(5):
        deliver(service, bar(symbol, n, price + (0.3 if n % 2 else -0.3)), f"bar-{symbol}-{n}")


def denial(database: Engine, order_id_prefix: str = "") -> tuple[str, str] | None:
    with database.connect() as c:
        row = c.execute(select(risk_events.c.reason, risk_events.c.detail).where(
            risk_events.c.kind == "denied").order_by(risk_events.c.at.desc())).first()
    return None if row is None else (row.reason, row.detail)


def stored_state(database: Engine) -> tuple[str, str]:
    with database.connect() as c:
        row = c.execute(select(risk_state.c.trading_state, risk_state.c.reason)).one()
    return row.trading_state, row.reason


def test_a_decision_becomes_an_alpaca_order_fill_and_position_then_exits_flat(
        database, redis_client, stream_prefix, fake) -> None:  # noqa: ANN001
    service = build(database, redis_client, stream_prefix, alpaca(fake))
    warm(service)
    deliver(service, decision("SPY", 4, Action.BUY_CALL), "d-buy")
    with database.connect() as c:
        trade = c.execute(select(trades)).one()
    assert trade.contracts_open == 1 and trade.avg_premium == pytest.approx(1.25)
    assert [p.option_symbol for p in service.broker.positions()] == [trade.option_symbol]
    fake.fill_price = 1.50
    deliver(service, decision("SPY", 5, Action.EXIT), "d-exit")
    with database.connect() as c:
        trade = c.execute(select(trades)).one()
        statuses = c.execute(select(orders.c.status)).scalars().all()
    assert trade.contracts_open == 0 and trade.realised_pnl == pytest.approx((1.50 - 1.25) * 100)
    assert statuses == ["filled", "filled"] and service.broker.positions() == []


SESSIONS_FOR_1000 = (datetime(2025, 7, 1, 13, 30, tzinfo=UTC), datetime(2025, 7, 2, 13, 30, tzinfo=UTC),
                     datetime(2025, 7, 7, 13, 30, tzinfo=UTC))
"""Three regular sessions (09:30 ET opens): 1,000 decisions need 1,000 distinct minutes, since execution
takes one decision per (model, symbol, minute)."""


def decision_minutes(count: int) -> list[datetime]:
    """``count`` entry-eligible minutes (from 5 minutes after the open to 40 minutes before the close)."""
    minutes = [open_ + timedelta(minutes=m) for open_ in SESSIONS_FOR_1000 for m in range(5, 350)]
    assert len(minutes) >= count
    return minutes[:count]


@pytest.mark.slow
def test_1000_timeouts_after_alpaca_accepted_make_no_duplicate_order(
        database, redis_client, stream_prefix, fake) -> None:  # noqa: ANN001
    service = build(database, redis_client, stream_prefix, alpaca(fake))
    clock = service.clock
    for k, at in enumerate(decision_minutes(1000)):
        clock.set(at + timedelta(minutes=1))  # type: ignore[attr-defined]  # the FakeClock of build()
        close = 600.0 + (0.3 if k % 2 else -0.3)
        deliver(service, Bar(symbol="SPY", start=at, open=close, high=close, low=close, close=close,
                             session=Session.REGULAR, source="test"), f"bar-{k}")
        fake.faults.clear()
        if k % 50 == 0:
            fake.stall_next("POST", "/v2/orders", stall_s=0.2)  # accepted, answered past the read timeout
        else:
            fake.drop_next("POST", "/v2/orders")  # accepted (and filled), the answer never arrives
        if k % 10 == 0:
            fake.drop_next("GET", "/v2/orders:by_client_order_id")  # the look-up fails too: a resubmit
        action = Action.BUY_CALL if k % 2 == 0 else Action.EXIT
        deliver(service, PolicyDecision(symbol="SPY", minute=at, action=action,
                                        probabilities=(1 / N_ACTIONS,) * N_ACTIONS, mask=(True,) * N_ACTIONS,
                                        model_id=SERVED.model_id, spec_hash=SERVED.spec_hash), f"d-{k}")
    per_id = fake.orders_per_client_id()
    assert len(per_id) == 1000 and max(per_id.values()) == 1  # 0 duplicates at the broker
    assert fake.duplicates_refused >= 90  # the resubmits were answered 422 and fetched
    with database.connect() as c:
        assert c.execute(select(func.count()).select_from(orders).where(orders.c.status == "filled")).scalar_one() == 1000
        assert c.execute(select(func.sum(trades.c.contracts_open))).scalar_one() == 0
    assert service.broker.positions() == []
    assert denial(database) is None


def test_spx_is_refused_with_the_reason_and_nothing_reaches_alpaca(
        database, redis_client, stream_prefix, fake) -> None:  # noqa: ANN001
    service = build(database, redis_client, stream_prefix, alpaca(fake))
    warm(service, "SPX", 6000.0)
    deliver(service, decision("I:SPX", 4, Action.BUY_CALL), "d-spx")
    reason, detail = denial(database) or ("", "")
    assert reason == BROKER_REJECTED and "Alpaca does not offer SPX index options" in detail
    assert ("POST", "/v2/orders") not in fake.requests
    with database.connect() as c:
        assert c.execute(select(orders.c.status)).scalar_one() == "rejected"


def test_a_position_opened_elsewhere_halts_trading_at_start_and_entries_are_denied(
        database, redis_client, stream_prefix, fake) -> None:  # noqa: ANN001
    fake.seed_position("QQQ250701P00500000", 2)
    fake.plant_open_order("SPY250701C00650000", 1, client_order_id="manual-1")
    service = build(database, redis_client, stream_prefix, alpaca(fake))
    mismatches = reconcile_at_start(service)
    assert {m.key for m in mismatches} == {"QQQ250701P00500000", "manual-1"}
    state, reason = stored_state(database)
    assert state == "halted" and reason.startswith(RECONCILIATION_MISMATCH)
    assert "QQQ250701P00500000: ours 0, broker 2" in reason and "manual-1" in reason
    warm(service)
    deliver(service, decision("SPY", 4, Action.BUY_CALL), "d-refused")
    assert denial(database) is not None and "halted" in denial(database)[0]
    assert ("POST", "/v2/orders") not in fake.requests


def test_a_start_that_reconciles_cleanly_lifts_a_reconciliation_halt(
        database, redis_client, stream_prefix, fake) -> None:  # noqa: ANN001
    fake.seed_position("QQQ250701P00500000", 1)
    reconcile_at_start(build(database, redis_client, stream_prefix, alpaca(fake)))
    assert stored_state(database)[0] == "halted"
    fake.positions.clear()  # the operator closed it at the broker
    restarted = build(database, redis_client, stream_prefix, alpaca(fake))
    assert reconcile_at_start(restarted) == []
    assert stored_state(database) == ("active", RECONCILED)
    assert restarted.engine.state.trading_state is TradingState.ACTIVE


def test_a_halt_for_another_reason_is_not_lifted_by_a_clean_start(
        database, redis_client, stream_prefix, fake) -> None:  # noqa: ANN001
    service = build(database, redis_client, stream_prefix, alpaca(fake))
    service.set_trading_state(TradingState.HALTED, "operator")
    assert reconcile_at_start(build(database, redis_client, stream_prefix, alpaca(fake))) == []
    assert stored_state(database) == ("halted", "operator")


def test_matching_positions_and_orders_keep_trading_active(
        database, redis_client, stream_prefix, fake) -> None:  # noqa: ANN001
    service = build(database, redis_client, stream_prefix, alpaca(fake))
    warm(service)
    deliver(service, decision("SPY", 4, Action.BUY_CALL), "d-held")
    restarted = build(database, redis_client, stream_prefix, alpaca(fake))
    assert reconcile_at_start(restarted) == []
    assert restarted.engine.state.trading_state is TradingState.ACTIVE


def test_an_unreachable_broker_at_start_halts_trading(database, redis_client, stream_prefix, fake) -> None:  # noqa: ANN001
    service = build(database, redis_client, stream_prefix, alpaca(fake))
    fake.stall_next("GET", "/v2/positions", stall_s=0.3)
    assert reconcile_at_start(service)[0].key == "unreachable"
    state, reason = stored_state(database)
    assert state == "halted" and "could not be asked" in reason


# -- the switches and the ladder at start ------------------------------------------------------------

def live_settings(fake: FakeAlpaca, **overrides: object) -> LiveSettingsMixin:
    values = {"alpaca_api_key": fake.api_key, "alpaca_secret_key": fake.secret_key, "alpaca_base_url": fake.url,
              "live_trading": True, "live_trading_confirm": confirmation_phrase(fake.account_number, TODAY),
              **overrides}
    return LiveSettingsMixin.model_validate(values)


def test_live_trading_starts_only_with_every_switch_on(database, fake) -> None:  # noqa: ANN001
    broker = start_live_broker(live_settings(fake), database, TODAY)
    assert broker.config.max_contracts_per_entry == 1
    for off in ({"live_trading": False}, {"alpaca_api_key": ""},
                {"live_trading_confirm": confirmation_phrase("PA3SOMEONEELSE", TODAY)},
                {"live_trading_confirm": confirmation_phrase(fake.account_number, date(2025, 6, 30))}):
        with pytest.raises(LiveTradingRefused, match="live trading is off"):
            start_live_broker(live_settings(fake, **off), database, TODAY)


def test_an_account_without_options_approval_is_refused(database, fake) -> None:  # noqa: ANN001
    fake.options_trading_level = 0
    with pytest.raises(LiveTradingRefused, match="not approved for options"):
        start_live_broker(live_settings(fake), database, TODAY)


def test_the_ladder_rung_comes_from_profitable_days_since_the_ladder_start(database, fake) -> None:  # noqa: ANN001
    rows = [{"day": date(2025, 6, d), "trades": 3, "realised_pnl": pnl, "updated_at": datetime.now(UTC)}
            for d, pnl in ((2, 50.0), (3, 20.0), (4, -10.0), (5, 30.0), (6, 40.0), (9, 10.0), (10, 15.0))]
    with database.begin() as c:
        c.execute(insert(daily_pnl), rows)
    settings = {"live_ladder_days_per_step": 2, "live_size_ladder": [1, 2, 3]}
    assert start_live_broker(live_settings(fake, **settings), database, TODAY).config.max_contracts_per_entry == 1
    since_june = live_settings(fake, live_ladder_since=date(2025, 6, 1), **settings)
    # +,+ -> rung 2; - -> rung 1; +,+ -> rung 2; +,+ -> rung 3
    assert start_live_broker(since_june, database, TODAY).config.max_contracts_per_entry == 3
    since_later = live_settings(fake, live_ladder_since=date(2025, 6, 6), **settings)
    assert start_live_broker(since_later, database, TODAY).config.max_contracts_per_entry == 2
