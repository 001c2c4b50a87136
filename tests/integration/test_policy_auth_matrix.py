"""Every endpoint of the policy app (policy, training jobs, models, and any added later): no key 401,
unknown key 401, a key without the endpoint's scope 403, its scope or admin passes; endpoints that
start work or change state never accept a read key, and no API endpoint is left without a scope."""

from __future__ import annotations

import inspect
import re

import pytest
import redis
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from scalper_policy.app import build_policy_app
from scalper_shared.runtime.api_security import Scope
from scalper_shared.runtime.bootstrap import Connections
from tests.unit.policy_support import headers, settings

pytestmark = pytest.mark.integration

PUBLIC_PATHS = {"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}


def required_scope(route: APIRoute) -> Scope | None:
    """The scope of the route's ``Authenticator.require`` dependency, found in the dependency tree."""
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        call = dependant.call
        if call is not None and "Authenticator.require" in getattr(call, "__qualname__", ""):
            return inspect.getclosurevars(call).nonlocals["scope"]
        pending.extend(dependant.dependencies)
    return None


def api_routes(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    """(method, path, route) of every FastAPI route, those of included routers too (FastAPI >= 0.165
    keeps included routers as one entry of ``app.routes``; ``iter_route_contexts`` flattens them)."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            found.extend((method, context.path or route.path, route) for method in sorted(route.methods - {"HEAD"}))
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "no-such-id", path)


@pytest.fixture
def app(redis_url: str, migrated_database_url: str) -> FastAPI:
    connections = Connections(redis=redis.Redis.from_url(redis_url), engine=create_engine(migrated_database_url))
    return build_policy_app(settings(), connections)


def test_every_api_endpoint_requires_a_scope_and_state_changes_never_take_read(app: FastAPI) -> None:
    routes = api_routes(app)
    assert {"/v1/policy/action", "/v1/training-jobs", "/v1/models"} <= {path for _, path, _ in routes}
    unguarded = [f"{m} {p}" for m, p, r in routes if p not in PUBLIC_PATHS and required_scope(r) is None]
    assert not unguarded, f"endpoints without an API key scope: {unguarded}"
    read_writes = [f"{m} {p}" for m, p, r in routes if m != "GET" and required_scope(r) is Scope.READ]
    assert not read_writes, f"state-changing endpoints open to read keys: {read_writes}"


def test_auth_matrix_over_every_endpoint(app: FastAPI) -> None:
    client = TestClient(app)
    failures = []
    for method, path, route in api_routes(app):
        scope = required_scope(route)
        if scope is None:
            continue
        url = concrete(path)
        expected = {None: 401, "bogus": 401}
        for key_scope in Scope:
            expected[key_scope] = "pass" if key_scope in (scope, Scope.ADMIN) else 403
        for key, outcome in expected.items():
            key_headers = {} if key is None else {"X-API-Key": "bogus"} if key == "bogus" else headers(key)
            status = client.request(method, url, headers=key_headers, json={}).status_code
            ok = status not in (401, 403) and status < 500 if outcome == "pass" else status == outcome
            if not ok:
                failures.append(f"{method} {path} with {key} key: {status} (expected {outcome})")
    assert not failures, "\n".join(failures)
