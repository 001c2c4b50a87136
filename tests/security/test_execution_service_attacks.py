"""Attacks on the running execution service (real PostgreSQL, Redis, paper broker): denials are stored
events, reducing actions never wait behind forged decisions, the kill switch always engages."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from scalper_execution.api import install_routes
from scalper_execution.engine import DECISION_OUT_OF_TIME, UNKNOWN_SYMBOL
from scalper_shared.core.actions import Action
from scalper_shared.core.risk import RiskConfig
from scalper_shared.db.models import orders, risk_events, risk_state
from scalper_shared.runtime import build_service_app
from scalper_shared.runtime.api_security import (
    ApiKeyRecord,
    ApiSettingsMixin,
    Scope,
    hash_key,
    install_api_security,
)
from tests.integration.test_execution_service import build, count, database, deliver, warm  # noqa: F401
from tests.unit.execution_support import bar, decision, minute

pytestmark = pytest.mark.integration


def denials(db, reason: str) -> int:  # noqa: ANN001
    return count(db, risk_events, risk_events.c.kind == "denied", risk_events.c.reason == reason)


def test_an_exit_behind_six_2030_dated_buys_is_not_delayed(database, redis_client, stream_prefix) -> None:  # noqa: F811
    service = build(database, redis_client, stream_prefix, RiskConfig(), bar_wait_s=5.0)
    warm(service)
    deliver(service, decision("SPY", 4, Action.BUY_CALL), "open")
    started = time.monotonic()
    for k in range(6):
        future = decision("SPY", 4 + k, Action.BUY_CALL).model_copy(
            update={"minute": minute(4 + k).replace(year=2030)})
        deliver(service, future, f"future-{k}")
    deliver(service, decision("SPY", 5, Action.EXIT), "exit")  # bar 5 never comes: an exit does not wait
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"the exit ran {elapsed:.1f}s late"
    assert denials(database, DECISION_OUT_OF_TIME) == 6
    with database.connect() as c:
        sides = c.execute(select(orders.c.side).order_by(orders.c.created_at)).scalars().all()
    assert sides == ["buy", "sell"]


def test_a_decision_for_aapl_is_a_stored_unknown_symbol_denial_not_a_retry(
        database, redis_client, stream_prefix) -> None:  # noqa: F811
    service = build(database, redis_client, stream_prefix, RiskConfig())
    for n in range(5):
        deliver(service, bar("AAPL", n, 200.0), f"aapl-{n}")
    deliver(service, decision("AAPL", 4, Action.BUY_CALL), "aapl-buy")  # raised ValueError on 426f8f1
    assert denials(database, UNKNOWN_SYMBOL) == 1 and count(database, orders) == 0


@pytest.mark.parametrize("path", ["/v1/risk/halt", "/v1/risk/flatten"])
def test_a_nul_in_the_reason_still_engages_the_kill_switch(database, redis_client, stream_prefix, path) -> None:  # noqa: F811,ANN001
    service = build(database, redis_client, stream_prefix, RiskConfig())
    warm(service)
    deliver(service, decision("SPY", 4, Action.BUY_PUT), "open")
    keys = [ApiKeyRecord(name="trader", sha256=hash_key("t-key"), scopes=frozenset({Scope.TRADE}))]
    app = build_service_app("execution-test")
    install_routes(app, service, install_api_security(app, ApiSettingsMixin(api_keys=keys)))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(path, headers={"X-API-Key": "t-key"}, json={"reason": "panic\u0000now"})
        assert response.status_code == 200, response.text
        assert response.json()["trading_state"] == "halted"
    with database.connect() as c:
        state, reason = c.execute(select(risk_state.c.trading_state, risk_state.c.reason)).one()
    assert (state, reason) == ("halted", "panic now")
    assert service.engine.state.trading_state.value == "halted"
