"""The Alpaca adapter's pure parts: status mapping, SPX refusal, the live switches and the size ladder."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from alpaca.trading.models import Order
from pydantic import ValidationError

from scalper_execution.brokers.alpaca import (
    UNSUPPORTED_UNDERLYING,
    AlpacaBroker,
    AlpacaConfig,
    broker_status,
    make_client,
    unsupported_reason,
)
from scalper_execution.brokers.base import BrokerFill, BrokerStatus
from scalper_execution.live import (
    LiveSettingsMixin,
    confirmation_phrase,
    confirmation_refusal,
    ladder_position,
    switch_refusal,
)
from scalper_execution.reconcile import describe, order_mismatches, position_mismatches
from scalper_execution.settings import ExecutionSettings
from scalper_shared.schema.messages import OptionRight, OrderSide, SubmitOrder

NOW = datetime(2025, 7, 1, 14, 0, tzinfo=UTC)
CONFIG = AlpacaConfig(api_key="k", secret_key="s", base_url="http://127.0.0.1:9", timeout_s=0.5)


def alpaca_order(status: str, filled_qty: int = 0, qty: int = 2) -> Order:
    stamp = NOW.isoformat()
    return Order(id=str(uuid.uuid4()), client_order_id="sx-1", created_at=stamp, updated_at=stamp,
                 submitted_at=stamp, symbol="SPY250701C00600000", asset_class="us_option", qty=str(qty),
                 filled_qty=str(filled_qty), order_class="simple", type="market", side="buy",
                 time_in_force="day", status=status, extended_hours=False)


def fills(*contracts: int) -> tuple[BrokerFill, ...]:
    return tuple(BrokerFill(f"f{i}", "sx-1", n, 1.0, 0.0, NOW) for i, n in enumerate(contracts))


def order(symbol: str, option_symbol: str, side: OrderSide = OrderSide.BUY, contracts: int = 1) -> SubmitOrder:
    return SubmitOrder(client_order_id="sx-1", symbol=symbol, option_symbol=option_symbol, right=OptionRight.CALL,
                       side=side, contracts=contracts, reason="test")


@pytest.mark.parametrize(("status", "filled", "seen", "expected"), [
    ("new", 0, (), BrokerStatus.ACCEPTED),
    ("pending_new", 0, (), BrokerStatus.ACCEPTED),
    ("accepted", 0, (), BrokerStatus.ACCEPTED),
    ("pending_cancel", 1, (1,), BrokerStatus.PARTIALLY_FILLED),
    ("done_for_day", 0, (), BrokerStatus.ACCEPTED),
    ("partially_filled", 1, (1,), BrokerStatus.PARTIALLY_FILLED),
    ("filled", 2, (1, 1), BrokerStatus.FILLED),
    ("canceled", 1, (1,), BrokerStatus.CANCELED),
    ("expired", 0, (), BrokerStatus.CANCELED),
    ("rejected", 0, (), BrokerStatus.REJECTED),
])
def test_alpaca_order_statuses_map_to_ours(status: str, filled: int, seen: tuple[int, ...],
                                           expected: BrokerStatus) -> None:
    assert broker_status(alpaca_order(status, filled), fills(*seen)) is expected


def test_a_filled_order_whose_fills_are_not_all_seen_is_not_terminal_yet() -> None:
    assert broker_status(alpaca_order("filled", 2), fills(1)) is BrokerStatus.PARTIALLY_FILLED
    assert broker_status(alpaca_order("canceled", 1), ()) is BrokerStatus.PARTIALLY_FILLED


@pytest.mark.parametrize("symbol", ["SPX", "I:SPX", "spx", "SPXW"])
def test_spx_is_refused_with_the_reason(symbol: str) -> None:
    reason = unsupported_reason(symbol)
    assert reason is not None and reason.startswith(UNSUPPORTED_UNDERLYING) and "SPX" in reason
    assert "SPY and QQQ" in reason


@pytest.mark.parametrize("symbol", ["SPY", "QQQ", "spy"])
def test_spy_and_qqq_are_traded(symbol: str) -> None:
    assert unsupported_reason(symbol) is None


def test_the_adapter_refuses_an_spx_order_and_a_buy_above_the_ladder_before_sending() -> None:
    broker = AlpacaBroker(CONFIG.model_copy(update={"max_contracts_per_entry": 2}))
    assert "SPX" in (broker.refusal(order("SPX", "SPXW250701C06000000")) or "")
    assert "size_ladder" in (broker.refusal(order("SPY", "SPY250701C00600000", contracts=3)) or "")
    assert broker.refusal(order("SPY", "SPY250701C00600000", contracts=2)) is None
    assert broker.refusal(order("QQQ", "QQQ250701P00500000", OrderSide.SELL, contracts=9)) is None  # exits never


def test_the_client_applies_the_timeout_and_never_retries_inside_alpaca_py() -> None:
    client = make_client(CONFIG)
    assert client._session.timeout_s == 0.5  # type: ignore[attr-defined]  # noqa: SLF001
    assert client._retry == 0  # noqa: SLF001
    assert client._base_url == "http://127.0.0.1:9"  # noqa: SLF001


# -- the switches --------------------------------------------------------------------------------

ALL_ON = {"alpaca_api_key": "key", "alpaca_secret_key": "secret", "live_trading": True,
          "live_trading_confirm": "trade live on PA3TEST0001 on 2025-07-01"}


def live(**overrides: object) -> LiveSettingsMixin:
    return LiveSettingsMixin.model_validate({**ALL_ON, **overrides})


def test_live_trading_is_off_by_default() -> None:
    assert switch_refusal(LiveSettingsMixin()) is not None


@pytest.mark.parametrize(("missing", "named"), [
    ({"alpaca_api_key": ""}, "ALPACA_API_KEY"),
    ({"alpaca_secret_key": ""}, "ALPACA_SECRET_KEY"),
    ({"live_trading": False}, "LIVE_TRADING"),
    ({"live_trading_confirm": ""}, "LIVE_TRADING_CONFIRM"),
])
def test_live_trading_is_off_unless_every_switch_is_on(missing: dict[str, object], named: str) -> None:
    refusal = switch_refusal(live(**missing))
    assert refusal is not None and named in refusal


def test_the_confirmation_must_name_this_account_and_today() -> None:
    today = date(2025, 7, 1)
    assert switch_refusal(live()) is None
    assert confirmation_refusal(live(), "PA3TEST0001", today) is None
    assert confirmation_refusal(live(), "PA3OTHER999", today) is not None  # keys of another account
    yesterday_phrase = live(live_trading_confirm=confirmation_phrase("PA3TEST0001", date(2025, 6, 30)))
    refusal = confirmation_refusal(yesterday_phrase, "PA3TEST0001", today)
    assert refusal is not None and "trade live on PA3TEST0001 on 2025-07-01" in refusal


def test_the_switches_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    for name, value in {"EXECUTION_BROKER": "alpaca", "ALPACA_API_KEY": "key", "ALPACA_SECRET_KEY": "secret",
                        "LIVE_TRADING": "true", "LIVE_TRADING_CONFIRM": "trade live on PA3TEST0001 on 2025-07-01",
                        "LIVE_SIZE_LADDER": "[1,2,4]", "LIVE_LADDER_SINCE": "2025-06-02"}.items():
        monkeypatch.setenv(name, value)
    settings = ExecutionSettings()
    assert settings.broker == "alpaca" and switch_refusal(settings) is None
    assert settings.live_size_ladder == [1, 2, 4] and settings.live_ladder_since == date(2025, 6, 2)
    monkeypatch.setenv("LIVE_TRADING", "false")
    assert switch_refusal(ExecutionSettings()) == "LIVE_TRADING is not true"


@pytest.mark.parametrize("ladder", [[2, 3], [], [1, 1, 2], [1, 3, 2]])
def test_a_ladder_must_start_at_one_contract_and_increase(ladder: list[int]) -> None:
    with pytest.raises(ValidationError, match="ladder"):
        LiveSettingsMixin(live_size_ladder=ladder)


# -- the size ladder -------------------------------------------------------------------------------

def days(*pnls: float) -> list[tuple[date, float]]:
    return [(date(2025, 6, 1 + i), pnl) for i, pnl in enumerate(pnls)]


def test_the_ladder_starts_at_one_contract() -> None:
    assert ladder_position([1, 2, 3, 5], 5, []).contracts == 1


def test_the_ladder_climbs_one_rung_per_n_profitable_days() -> None:
    assert ladder_position([1, 2, 3, 5], 3, days(10, 10)).contracts == 1
    assert ladder_position([1, 2, 3, 5], 3, days(10, 10, 10)).contracts == 2
    assert ladder_position([1, 2, 3, 5], 3, days(10, 0, 10, 10, 10, 10, 10)).contracts == 3  # flat days do not count
    assert ladder_position([1, 2, 3, 5], 1, days(*[10] * 20)).contracts == 5  # never above the top rung


def test_a_losing_day_steps_down_one_rung_and_restarts_the_count() -> None:
    position = ladder_position([1, 2, 3, 5], 2, days(10, 10, 10, 10, 10, -5))
    assert (position.contracts, position.profitable_days_on_rung) == (2, 0)
    assert ladder_position([1, 2, 3, 5], 2, days(-5, -5, 10)).contracts == 1  # never below the first rung


# -- reconciliation --------------------------------------------------------------------------------

def test_mismatches_name_each_position_and_order_that_differs() -> None:
    positions = position_mismatches({"SPY250701C00600000": 1}, {"SPY250701C00600000": 2, "QQQ250701P00500000": 1})
    orders = order_mismatches({"sx-ours"}, {"sx-ours", "manual-1"})
    assert [str(m) for m in positions] == ["position QQQ250701P00500000: ours 0, broker 1",
                                           "position SPY250701C00600000: ours 1, broker 2"]
    assert [str(m) for m in orders] == ["open order manual-1: ours none, broker open"]
    assert describe(positions + orders).startswith("reconciliation_mismatch: position QQQ")
    assert position_mismatches({"SPY250701C00600000": 1}, {"SPY250701C00600000": 1}) == []


def test_the_service_refuses_to_start_on_alpaca_with_a_switch_off(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    from scalper_execution.main import start_live
    from scalper_shared.clock import FakeClock
    from scalper_shared.settings import SettingsError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EXECUTION_BROKER", "alpaca")
    with pytest.raises(SettingsError, match="EXECUTION_BROKER=alpaca refused: live trading is off: ALPACA_API_KEY"):
        start_live(ExecutionSettings(), None, FakeClock(NOW))  # type: ignore[arg-type]  # refused before any I/O
