"""Schemathesis against the policy app's own OpenAPI schema: generated valid and invalid requests
never get a 5xx, responses conform to the schema, invalid data is rejected.

The policy action gets 500 cases (slow); the read-only endpoints of the app get a lighter run.
POST/DELETE /v1/training-jobs and the promotion are left out: valid cases would enqueue real
training jobs on the shared Redis or change the served model mid-run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sqlalchemy import create_engine

from scalper_policy.app import build_policy_app
from scalper_policy.inference import ModelHolder
from scalper_policy.live import LiveState
from scalper_policy.serving import PolicyRuntime
from scalper_shared.runtime.api_security import Scope
from scalper_shared.runtime.bootstrap import Connections
from tests.unit.policy_support import fake_clock, headers, served
from tests.unit.policy_support import settings as policy_settings

pytestmark = pytest.mark.integration

READ_ONLY = [("/v1/training-jobs", "GET"), ("/v1/training-jobs/{job_id}", "GET"), ("/v1/models", "GET"),
             ("/v1/policy/model", "GET")]


@pytest.fixture
def app(redis_url: str, migrated_database_url: str, tmp_path: Path) -> FastAPI:
    connections = Connections(redis=redis.Redis.from_url(redis_url), engine=create_engine(migrated_database_url))
    runtime = PolicyRuntime(ModelHolder(served(tmp_path, "model-fuzz", seed=3)), LiveState(), fake_clock())
    return build_policy_app(policy_settings(), connections, runtime)


def fuzz(app: FastAPI, path: str, method: str, max_examples: int) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operation = schema[path][method]
    strategy = st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                         operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers(Scope.ADMIN))

    run()


@pytest.mark.slow
def test_policy_action_survives_500_generated_cases(app: FastAPI) -> None:
    fuzz(app, "/v1/policy/action", "POST", max_examples=500)


@pytest.mark.parametrize(("path", "method"), READ_ONLY)
def test_read_only_endpoints_survive_generated_cases(app: FastAPI, path: str, method: str) -> None:
    fuzz(app, path, method, max_examples=50)
