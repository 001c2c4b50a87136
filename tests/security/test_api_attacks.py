"""Attacks on the REST APIs (issue #15 items 4 and 7): NUL characters, oversized chunked bodies,
unthrottled key guessing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import Depends
from fastapi.testclient import TestClient
from pydantic import BaseModel

from scalper_shared.core.ratelimit import RateLimit
from scalper_shared.runtime import build_service_app
from scalper_shared.runtime.api_security import (
    ApiKeyRecord,
    ApiSettingsMixin,
    Authenticator,
    Scope,
    hash_key,
    install_api_security,
)

KEY = "the-real-key"
RECORDS = [ApiKeyRecord(name="ops", sha256=hash_key(KEY), scopes=frozenset({Scope.ADMIN}))]


class Body(BaseModel):
    name: str


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def service(clock: Clock | None = None, max_body: int = 1000, failures: str = "10/60s") -> TestClient:
    app = build_service_app("attack-test", docs=False)
    install_api_security(app, ApiSettingsMixin(api_keys=RECORDS, api_max_body_bytes=max_body))
    auth = Authenticator(RECORDS, RateLimit.parse("1000/1s"), clock or Clock(),
                         failure_limit=RateLimit.parse(failures))

    @app.post("/v1/things")
    def create(body: Body, _: ApiKeyRecord = Depends(auth.require(Scope.READ))) -> dict:  # noqa: B008
        return {"name": body.name}

    @app.get("/v1/things/{thing_id}")
    def read(thing_id: str, _: ApiKeyRecord = Depends(auth.require(Scope.READ))) -> dict:  # noqa: B008
        return {"id": thing_id}

    return TestClient(app, raise_server_exceptions=False)


HEADERS = {"X-API-Key": KEY}


@pytest.mark.parametrize("request_args", [
    {"method": "POST", "url": "/v1/things", "json": {"name": "evil\u0000name"}},
    {"method": "GET", "url": "/v1/things/evil%00id"},
    {"method": "GET", "url": "/v1/things/x?flag=a%00b"},
])
def test_a_nul_in_a_string_field_or_path_parameter_is_422(request_args: dict) -> None:
    response = service().request(headers=HEADERS, **request_args)
    assert response.status_code == 422, response.text
    assert "NUL" in response.text


def test_every_service_app_refuses_nul_even_without_api_keys() -> None:
    client = TestClient(build_service_app("bare", docs=False), raise_server_exceptions=False)
    assert client.get("/healthz%00").status_code == 422


def chunks(total: int, size: int = 4096) -> Iterator[bytes]:
    yield b'{"name": "'
    for _ in range(total // size):
        yield b"x" * size
    yield b'"}'


def test_a_chunked_body_over_the_limit_is_413_not_400() -> None:
    response = service(max_body=10_000).post("/v1/things", content=chunks(50_000),
                                             headers={**HEADERS, "content-type": "application/json"})
    assert response.status_code == 413, response.text


def test_a_chunked_body_under_the_limit_still_works() -> None:
    response = service(max_body=100_000).post("/v1/things", content=chunks(20_000),
                                              headers={**HEADERS, "content-type": "application/json"})
    assert response.status_code == 200 and len(response.json()["name"]) == 16_384


def test_guessing_api_keys_is_throttled_per_client_address() -> None:
    clock = Clock()
    client = service(clock, failures="10/60s")
    statuses = [client.get("/v1/things/a", headers={"X-API-Key": f"guess-{k}"}).status_code for k in range(400)]
    assert statuses[:10] == [401] * 10 and set(statuses[10:]) == {429}
    locked = client.get("/v1/things/a", headers=HEADERS)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1
    clock.now = 61.0  # the window has passed
    assert client.get("/v1/things/a", headers=HEADERS).status_code == 200
