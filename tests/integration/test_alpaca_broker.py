"""The Alpaca adapter (alpaca-py over HTTP) against the fake Alpaca server on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from scalper_execution.brokers.alpaca import AlpacaBroker, AlpacaConfig
from scalper_execution.brokers.base import BrokerError, BrokerRejected, BrokerStatus, BrokerTimeout
from scalper_shared.schema.messages import OptionRight, OrderSide, SubmitOrder
from tests.fakes.alpaca import FakeAlpaca

pytestmark = pytest.mark.integration

CALL = "SPY250701C00600000"


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    with FakeAlpaca() as server:
        yield server


def connect(fake: FakeAlpaca, **overrides: object) -> AlpacaBroker:
    config = {"api_key": fake.api_key, "secret_key": fake.secret_key, "base_url": fake.url, "timeout_s": 0.25,
              "max_contracts_per_entry": 5, **overrides}
    return AlpacaBroker(AlpacaConfig.model_validate(config))


def order(client_order_id: str, side: OrderSide = OrderSide.BUY, contracts: int = 1, symbol: str = "SPY",
          option_symbol: str = CALL) -> SubmitOrder:
    return SubmitOrder(client_order_id=client_order_id, symbol=symbol, option_symbol=option_symbol,
                       right=OptionRight.CALL, side=side, contracts=contracts, reason="test")


def test_submit_fill_and_close_round_trip(fake: FakeAlpaca) -> None:
    broker = connect(fake)
    bought = broker.submit(order("sx-buy", contracts=2))
    assert bought.status is BrokerStatus.FILLED and bought.filled_contracts == 2
    assert bought.fills[0].price == pytest.approx(1.25) and bought.option_symbol == CALL
    assert [(p.option_symbol, p.contracts) for p in broker.positions()] == [(CALL, 2)]
    sold = broker.submit(order("sx-sell", OrderSide.SELL, contracts=2))
    assert sold.status is BrokerStatus.FILLED
    assert broker.positions() == []
    assert [f.client_order_id for f in broker.fills()] == ["sx-buy", "sx-sell"]
    posted = [r for r in fake.requests if r == ("POST", "/v2/orders")]
    assert len(posted) == 2


def test_partial_fills_are_recorded_once_each_at_their_own_price(fake: FakeAlpaca) -> None:
    fake.fill_on_accept = False
    broker = connect(fake)
    assert broker.submit(order("sx-p", contracts=3)).status is BrokerStatus.ACCEPTED
    fake.fill("sx-p", 1, 1.10)
    partial = broker.get_order("sx-p")
    assert partial is not None and partial.status is BrokerStatus.PARTIALLY_FILLED and partial.filled_contracts == 1
    fake.fill("sx-p", 2, 1.20)
    done = broker.get_order("sx-p")
    assert done is not None and done.status is BrokerStatus.FILLED
    assert [(f.contracts, f.price) for f in done.fills] == [(1, 1.10), (2, 1.20)]
    assert done.fills[0].fill_id == partial.fills[0].fill_id  # stable ids: the service dedups on them


def test_cancel_leaves_the_order_canceled_with_its_partial_fill(fake: FakeAlpaca) -> None:
    fake.fill_on_accept = False
    broker = connect(fake)
    broker.submit(order("sx-c", contracts=2))
    assert [o.client_order_id for o in broker.open_orders()] == ["sx-c"]
    fake.fill("sx-c", 1, 1.30)
    canceled = broker.cancel("sx-c")
    assert canceled is not None and canceled.status is BrokerStatus.CANCELED and canceled.filled_contracts == 1
    assert canceled.reason == "canceled"
    assert broker.open_orders() == []
    assert broker.cancel("sx-never-sent") is None


def test_cancel_of_an_order_that_filled_meanwhile_reports_it_filled(fake: FakeAlpaca) -> None:
    broker = connect(fake)
    broker.submit(order("sx-f"))
    result = broker.cancel("sx-f")
    assert result is not None and result.status is BrokerStatus.FILLED


def test_a_resubmitted_client_order_id_returns_the_order_alpaca_holds(fake: FakeAlpaca) -> None:
    broker = connect(fake)
    first = broker.submit(order("sx-dup"))
    again = broker.submit(order("sx-dup"))
    assert again.broker_order_id == first.broker_order_id
    assert fake.duplicates_refused == 1 and fake.accepted["sx-dup"] == 1


def test_a_stalled_answer_times_out_within_the_configured_timeout(fake: FakeAlpaca) -> None:
    broker = connect(fake, timeout_s=0.2)
    fake.stall_next("POST", "/v2/orders", stall_s=1.0)
    started = time.perf_counter()
    with pytest.raises(BrokerTimeout):
        broker.submit(order("sx-slow"))
    assert time.perf_counter() - started < 0.9
    found = broker.get_order("sx-slow")  # accepted all the same: the look-up finds it
    assert found is not None and found.status is BrokerStatus.FILLED


def test_a_dropped_answer_leaves_the_outcome_unknown_and_the_look_up_finds_the_order(fake: FakeAlpaca) -> None:
    broker = connect(fake)
    fake.drop_next("POST", "/v2/orders")
    with pytest.raises(BrokerError):
        broker.submit(order("sx-drop"))
    assert fake.accepted["sx-drop"] == 1
    assert broker.get_order("sx-drop") is not None
    assert broker.get_order("sx-unknown") is None


def test_a_refusal_by_alpaca_is_a_rejection(fake: FakeAlpaca) -> None:
    broker = connect(fake)
    fake.reject_next(403, "insufficient options buying power")
    with pytest.raises(BrokerRejected, match="insufficient options buying power"):
        broker.submit(order("sx-poor"))
    assert fake.accepted["sx-poor"] == 0


def test_spx_is_refused_without_calling_alpaca(fake: FakeAlpaca) -> None:
    broker = connect(fake)
    with pytest.raises(BrokerRejected, match="Alpaca does not offer SPX index options"):
        broker.submit(order("sx-spx", symbol="I:SPX", option_symbol="SPXW250701C06000000"))
    assert fake.requests == []


def test_a_buy_above_the_ladder_rung_is_refused_but_an_exit_is_not(fake: FakeAlpaca) -> None:
    broker = connect(fake, max_contracts_per_entry=1)
    with pytest.raises(BrokerRejected, match="size_ladder"):
        broker.submit(order("sx-big", contracts=2))
    fake.seed_position(CALL, 3)
    assert broker.submit(order("sx-exit", OrderSide.SELL, contracts=3)).status is BrokerStatus.FILLED


def test_wrong_keys_are_an_error_naming_alpacas_answer(fake: FakeAlpaca) -> None:
    broker = connect(fake, secret_key="wrong")
    with pytest.raises(BrokerError, match="401"):
        broker.account()


def test_fills_follow_alpacas_paging(fake: FakeAlpaca) -> None:
    broker = connect(fake)
    for k in range(120):
        broker.submit(order(f"sx-{k:03d}", OrderSide.BUY if k % 2 == 0 else OrderSide.SELL))
    found = broker.fills()
    assert len(found) == 120 and len({f.fill_id for f in found}) == 120
    pages = [r for r in fake.requests if r == ("GET", "/v2/account/activities/FILL")]
    assert len(pages) >= 2
