"""Schemathesis against the policy app's own OpenAPI schema: on every operation, 500 generated valid
and invalid requests never get a 5xx, responses conform to the schema, invalid data is rejected.

The app runs under the test's own ``STREAM_PREFIX``, so valid training jobs go to its own RQ queue
(where no worker listens; deleted afterwards); promotions and evaluations touch only the test's database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq import Queue
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import create_engine

from scalper_policy.app import build_policy_app
from scalper_policy.inference import ModelHolder
from scalper_policy.live import LiveState
from scalper_policy.serving import PolicyRuntime
from scalper_shared.runtime.api_security import API_KEY_HEADER, Scope
from scalper_shared.runtime.bootstrap import Connections
from scalper_shared.schema.evaluation import EVALUATION_QUEUE
from scalper_shared.schema.training import TRAINING_QUEUE
from tests.unit.policy_support import fake_clock, headers, served
from tests.unit.policy_support import settings as policy_settings

pytestmark = pytest.mark.integration

OPERATIONS = [("/healthz", "GET"), ("/readyz", "GET"), ("/metrics", "GET"),
              ("/v1/training-jobs", "POST"), ("/v1/training-jobs", "GET"), ("/v1/training-jobs/{job_id}", "GET"),
              ("/v1/training-jobs/{job_id}", "DELETE"), ("/v1/models", "GET"),
              ("/v1/models/{model_id}/promote", "POST"), ("/v1/policy/action", "POST"), ("/v1/policy/model", "GET"),
              ("/v1/evaluations", "POST"), ("/v1/evaluations/{evaluation_id}", "GET"),
              ("/v1/evaluations/{evaluation_id}/report", "GET"), ("/v1/evaluations/{evaluation_id}/{name}", "GET"),
              ("/v1/studies", "POST"), ("/v1/studies", "GET"), ("/v1/studies/{name}", "GET"),
              ("/v1/studies/{name}/report", "GET")]
CASES = 500
CROSS_FIELD_RULES = {("/v1/training-jobs", "POST"), ("/v1/evaluations", "POST"), ("/v1/studies", "POST")}
"""Bodies with rules JSON Schema cannot state (validation days after the training days, end not
before start, known symbols, enough trading days for a study's folds, a search space's ranges): a schema-valid body may get 422, so "valid data is accepted" is not
checked there; every other check is."""


@pytest.fixture
def app(redis_url: str, migrated_database_url: str, tmp_path: Path, stream_prefix: str) -> Iterator[FastAPI]:
    client = redis.Redis.from_url(redis_url)
    connections = Connections(redis=client, engine=create_engine(migrated_database_url))
    runtime = PolicyRuntime(ModelHolder(served(tmp_path, "model-fuzz", seed=3)), LiveState(), fake_clock())
    yield build_policy_app(policy_settings(stream_prefix=stream_prefix), connections, runtime)
    for name in (TRAINING_QUEUE, EVALUATION_QUEUE):
        Queue(stream_prefix + name, connection=client).delete(delete_jobs=True)
    connections.engine.dispose()
    client.close()


def fuzz(app: FastAPI, path: str, method: str, max_examples: int) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operation = schema[path][method]
    strategy = st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                         operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    excluded = [positive_data_acceptance] if (path, method) in CROSS_FIELD_RULES else []

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        if API_KEY_HEADER in (case.headers or {}):  # a valid key for the generated one; a case that
            case.headers = {**case.headers, **headers(Scope.ADMIN)}  # drops the header must get 401
        statuses.append(case.call_and_validate(excluded_checks=excluded).status_code)

    statuses: list[int] = []
    run()
    assert any(code != 401 for code in statuses), f"{method} {path}: every case was refused as unauthenticated"


def test_every_operation_of_the_schema_is_fuzzed(app: FastAPI) -> None:
    schema = app.openapi()["paths"]
    assert sorted((path, method.upper()) for path, ops in schema.items() for method in ops) == sorted(OPERATIONS)


@pytest.mark.slow
@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_every_operation_survives_500_generated_cases(app: FastAPI, path: str, method: str) -> None:
    fuzz(app, path, method, max_examples=CASES)
