"""Promoting a model swaps the served one with no failed request; a model of another feature spec is
refused with its reason while the old one keeps serving."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from scalper_policy.app import build_policy_app
from scalper_policy.inference import (
    FEATURE_SPEC_HASH_KEY,
    ModelHolder,
    PromotedModelSync,
    feature_service_spec_hash,
)
from scalper_policy.live import LiveState
from scalper_policy.models_api import promote_model
from scalper_policy.serving import PolicyRuntime
from scalper_shared.runtime.api_security import Scope
from scalper_shared.runtime.bootstrap import Connections
from tests.integration.policy_support import register
from tests.unit.policy_support import fake_clock, headers, observation, settings
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

ACTION = "/v1/policy/action"


@pytest.fixture
def connections(migrated_database_url: str, redis_url: str) -> Connections:
    return Connections(redis=redis.Redis.from_url(redis_url), engine=create_engine(migrated_database_url))


def _sync(connections: Connections, holder: ModelHolder, prefix: str) -> PromotedModelSync:
    return PromotedModelSync(holder, connections.engine,
                             lambda: feature_service_spec_hash(connections.redis, prefix), fake_clock())


def _wait_for_requests(results: list, count: int) -> None:
    wait_until(lambda: len(results) >= count, 30, f"{count} requests", poll_s=0.01)


def test_promotions_swap_the_model_under_load_without_a_failed_request(
        connections: Connections, stream_prefix: str, tmp_path: Path) -> None:
    for i, model_id in enumerate(("model-a", "model-b")):
        register(connections.engine, tmp_path, model_id, seed=i)
    register(connections.engine, tmp_path, "model-old-spec", spec_hash="0" * 64)
    holder = ModelHolder()
    sync = _sync(connections, holder, stream_prefix)
    runtime = PolicyRuntime(holder, LiveState(), fake_clock(), sync=sync)
    app = build_policy_app(settings(), connections, runtime)
    promote_model(connections.engine, "model-a")
    assert sync.refresh() is not None and holder.current().model_id == "model-a"

    stop, results = threading.Event(), []

    def hammer() -> None:
        client = TestClient(app)
        while not stop.is_set():
            response = client.post(ACTION, json={"symbol": "SPY", "observation": observation()},
                                   headers=headers(Scope.INFER))
            results.append((response.status_code, response.json().get("model_id")))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    for model_id in ("model-b", "model-a", "model-b", "model-old-spec"):
        _wait_for_requests(results, len(results) + 20)
        promote_model(connections.engine, model_id)
        sync.refresh()
    _wait_for_requests(results, len(results) + 20)
    stop.set()
    for thread in threads:
        thread.join()

    assert results and all(status == 200 for status, _ in results), {s for s, _ in results}
    assert {model_id for _, model_id in results} == {"model-a", "model-b"}
    assert holder.current().model_id == "model-b"  # the refused one did not replace it
    view = TestClient(app).get("/v1/policy/model", headers=headers(Scope.READ)).json()
    assert view["model_id"] == "model-b" and view["refused_model_id"] == "model-old-spec"
    assert "feature-spec hash mismatch" in view["refused_reason"]


def test_the_feature_service_spec_hash_in_redis_decides_acceptance(
        connections: Connections, stream_prefix: str, tmp_path: Path) -> None:
    register(connections.engine, tmp_path, "model-a")
    connections.redis.set(stream_prefix + FEATURE_SPEC_HASH_KEY, "f" * 64)
    holder = ModelHolder()
    promote_model(connections.engine, "model-a")
    assert _sync(connections, holder, stream_prefix).refresh() is None
    assert holder.refusal is not None and "ffffffff" in holder.refusal.reason
    connections.redis.delete(stream_prefix + FEATURE_SPEC_HASH_KEY)  # back to this code's FEATURE_SPEC
    assert _sync(connections, holder, stream_prefix).refresh() is not None


def test_the_running_app_picks_up_a_promotion_made_through_the_api(
        connections: Connections, stream_prefix: str, tmp_path: Path) -> None:
    register(connections.engine, tmp_path, "model-a")
    app = build_policy_app(settings(model_poll_s=0.05, stream_prefix=stream_prefix), connections)
    with TestClient(app) as client:  # the lifespan runs the promoted-model poller
        request = {"symbol": "SPY", "observation": observation()}
        assert client.post(ACTION, json=request, headers=headers(Scope.INFER)).status_code == 503
        assert client.post("/v1/models/model-a/promote", headers=headers(Scope.ADMIN)).status_code == 200
        wait_until(lambda: client.post(ACTION, json=request, headers=headers(Scope.INFER)).status_code == 200,
                   10, "the promoted model to be picked up")
        assert client.post(ACTION, json=request, headers=headers(Scope.INFER)).json()["model_id"] == "model-a"
