"""POST /v1/policy/action and GET /v1/policy/model: explicit and live observations, masks, validation."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from scalper_policy.app import build_policy_app
from scalper_policy.inference import ModelHolder, Refusal
from scalper_policy.live import LiveState, minute_ms, minutes_to_close_at
from scalper_policy.serving import PolicyRuntime
from scalper_shared.core.actions import Action
from scalper_shared.core.features import FEATURE_SPEC
from scalper_shared.core.masks import action_mask
from scalper_shared.runtime.api_security import Scope
from scalper_shared.schema.messages import FeatureVector, PositionSide, PositionState
from tests.unit.policy_support import (
    NOW,
    fake_clock,
    headers,
    lazy_connections,
    observation,
    served,
    settings,
)

ACTION = "/v1/policy/action"
INFER = headers(Scope.INFER)


@pytest.fixture
def runtime(tmp_path: Path) -> PolicyRuntime:
    return PolicyRuntime(ModelHolder(served(tmp_path, "model-a", seed=7)), LiveState(), fake_clock())


@pytest.fixture
def client(runtime: PolicyRuntime) -> TestClient:
    return TestClient(build_policy_app(settings(), lazy_connections(), runtime))


def test_explicit_observation_gets_the_policy_action_under_the_training_mask(
        client: TestClient, runtime: PolicyRuntime) -> None:
    obs = observation(seed=3)
    body = client.post(ACTION, json={"symbol": "SPY", "observation": obs}, headers=INFER).json()
    mask = action_mask(PositionSide.FLAT, minutes_to_close=minutes_to_close_at(minute_ms(NOW)))
    model = runtime.holder.current()
    assert model is not None
    action, probabilities = model.policy.act(np.asarray(obs, np.float32), mask)
    assert body["action"] == action and body["action_name"] == Action(action).name
    assert body["mask"] == mask.tolist() and body["probabilities"] == pytest.approx(probabilities.tolist())
    assert body["model_id"] == "model-a" and body["spec_hash"] == FEATURE_SPEC.spec_hash
    assert body["minute"] == "2024-03-05T15:00:00Z" and body["observation_source"] == "explicit"


def test_an_open_position_in_the_observation_masks_entries(client: TestClient) -> None:
    body = client.post(ACTION, json={"symbol": "SPY", "observation": observation(),
                                     "position": {"side": "put", "unrealised_pnl_pct": 0.05}}, headers=INFER).json()
    assert body["mask"] == [True, False, False, True, True, True]
    assert body["probabilities"][Action.BUY_CALL] == 0.0 and body["probabilities"][Action.BUY_PUT] == 0.0


def test_context_fields_feed_the_mask(client: TestClient) -> None:
    halted = client.post(ACTION, json={"symbol": "SPY", "observation": observation(),
                                       "context": {"trading_state": "halted"}}, headers=INFER).json()
    cooling = client.post(ACTION, json={"symbol": "SPY", "observation": observation(),
                                        "context": {"minutes_since_exit": 1, "exit_was_stop": True}},
                          headers=INFER).json()
    late = client.post(ACTION, json={"symbol": "SPY", "observation": observation(),
                                     "context": {"minutes_to_close": 5}}, headers=INFER).json()
    for body in (halted, cooling, late):
        assert body["mask"] == [True, False, False, False, False, False] and body["action"] == 0


def test_stochastic_actions_are_reproducible_with_a_seed_and_respect_the_mask(client: TestClient) -> None:
    request = {"symbol": "SPY", "observation": observation(), "position": {"side": "call"},
               "deterministic": False, "seed": 11}
    first = client.post(ACTION, json=request, headers=INFER).json()
    again = client.post(ACTION, json=request, headers=INFER).json()
    assert first["action"] == again["action"] and first["deterministic"] is False
    draws = {client.post(ACTION, json={**request, "seed": s}, headers=INFER).json()["action"] for s in range(30)}
    assert draws <= {0, 3, 4, 5}


def _raw(client: TestClient, text: str) -> dict:
    response = client.post(ACTION, content=text, headers={**INFER, "content-type": "application/json"})
    assert response.status_code == 422, response.text
    return response.json()


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_observation_values_are_422_naming_the_cell(client: TestClient, bad: str) -> None:
    obs = observation()
    obs[4][7] = "BAD"
    body = _raw(client, json.dumps({"symbol": "SPY", "observation": obs}).replace('"BAD"', bad))
    assert body["detail"][0]["loc"] == ["body", "observation", 4, 7]


def test_wrong_shapes_are_422_naming_the_field(client: TestClient) -> None:
    short = client.post(ACTION, json={"symbol": "SPY", "observation": observation()[:19]}, headers=INFER)
    narrow = client.post(ACTION, json={"symbol": "SPY", "observation": [row[:22] for row in observation()]},
                         headers=INFER)
    assert short.status_code == 422 and short.json()["detail"][0]["loc"] == ["body", "observation"]
    assert narrow.status_code == 422 and narrow.json()["detail"][0]["loc"][:3] == ["body", "observation", 0]


def test_the_position_replaces_the_observation_position_columns(client: TestClient, runtime: PolicyRuntime) -> None:
    stale = observation(side=1, pnl=0.3)  # columns saying "call" are overridden by the flat default
    body = client.post(ACTION, json={"symbol": "SPY", "observation": stale}, headers=INFER).json()
    fixed = np.asarray(stale)
    fixed[:, FEATURE_SPEC.n_market:] = 0.0
    model = runtime.holder.current()
    assert model is not None
    mask = np.asarray(body["mask"])
    assert body["action"] == model.policy.act(fixed, mask)[0] and mask[Action.BUY_CALL]


def test_out_of_range_feature_values_are_422(client: TestClient) -> None:
    obs = observation()
    obs[2][3] = 1e9
    response = client.post(ACTION, json={"symbol": "SPY", "observation": obs}, headers=INFER)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "observation", 2, 3]


def test_a_live_request_uses_the_symbol_window_and_position(client: TestClient, runtime: PolicyRuntime) -> None:
    start = NOW - timedelta(minutes=25)
    for i in range(25):
        runtime.live.push_features(FeatureVector(symbol="QQQ", minute=start + timedelta(minutes=i),
                                                 spec_hash=FEATURE_SPEC.spec_hash,
                                                 values=(0.01 * i,) * FEATURE_SPEC.n_market))
    runtime.live.update_position(PositionState(symbol="QQQ", side=PositionSide.CALL, contracts=1,
                                               unrealised_pnl_pct=0.02, as_of=NOW - timedelta(minutes=3)))
    body = client.post(ACTION, json={"symbol": "QQQ"}, headers=INFER).json()
    overridden = client.post(ACTION, json={"symbol": "QQQ", "position": {"side": "flat"}}, headers=INFER).json()
    assert overridden["mask"][Action.BUY_CALL] and overridden["minute"] == body["minute"]
    snapshot = runtime.live.snapshot("QQQ")
    model = runtime.holder.current()
    assert snapshot is not None and model is not None
    action, _ = model.policy.act(snapshot.observation, snapshot.inputs.mask())
    assert body["observation_source"] == "live" and body["action"] == action
    assert body["minute"] == "2024-03-05T14:59:00Z" and body["mask"] == [True, False, False, True, True, True]


def test_a_live_request_for_an_unknown_symbol_is_404(client: TestClient) -> None:
    response = client.post(ACTION, json={"symbol": "IWM"}, headers=INFER)
    assert response.status_code == 404 and "IWM" in response.json()["detail"]


def test_without_a_served_model_the_action_is_503_with_the_refusal_reason() -> None:
    runtime = PolicyRuntime(ModelHolder(), LiveState(), fake_clock())
    runtime.holder.refuse(Refusal("model-x", "feature-spec hash mismatch: ...", "h", NOW))
    client = TestClient(build_policy_app(settings(), lazy_connections(), runtime))
    response = client.post(ACTION, json={"symbol": "SPY", "observation": observation()}, headers=INFER)
    assert response.status_code == 503 and "model-x refused: feature-spec hash mismatch" in response.json()["detail"]
    view = client.get("/v1/policy/model", headers=headers(Scope.READ)).json()
    assert view["model_id"] is None and view["refused_model_id"] == "model-x"


def test_keys_scopes_rate_and_body_limits(runtime: PolicyRuntime) -> None:
    client = TestClient(build_policy_app(settings(api_rate_limit="3/60s", api_max_body_bytes=20_000),
                                         lazy_connections(), runtime))
    request = {"symbol": "SPY", "observation": observation()}
    assert client.post(ACTION, json=request).status_code == 401
    assert client.post(ACTION, json=request, headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.post(ACTION, json=request, headers=headers(Scope.TRAIN)).status_code == 403
    assert client.post(ACTION, json={**request, "observation": [[0.123456789] * 23] * 200},
                       headers=INFER).status_code == 413
    statuses = [client.post(ACTION, json=request, headers=INFER).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]  # the 413 was refused before its key was checked


def test_docs_can_be_switched_off_and_cors_is_off_by_default(runtime: PolicyRuntime) -> None:
    closed = TestClient(build_policy_app(settings(api_docs_enabled=False), lazy_connections(), runtime))
    assert closed.get("/docs").status_code == 404 and closed.get("/openapi.json").status_code == 404
    preflight = closed.options(ACTION, headers={"Origin": "https://evil.example",
                                                "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    opened = TestClient(build_policy_app(settings(), lazy_connections(), runtime))
    assert opened.get("/openapi.json").status_code == 200
