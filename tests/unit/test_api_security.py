from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from scalper_shared.core.ratelimit import RateLimit
from scalper_shared.runtime.api_security import (
    ApiKeyRecord,
    ApiSettingsMixin,
    Authenticator,
    Scope,
    hash_key,
    install_api_security,
)

KEYS = {"reader": "r-secret", "inferer": "i-secret", "boss": "a-secret"}
RECORDS = [
    ApiKeyRecord(name="reader", sha256=hash_key(KEYS["reader"]), scopes=frozenset({Scope.READ})),
    ApiKeyRecord(name="inferer", sha256=hash_key(KEYS["inferer"]), scopes=frozenset({Scope.INFER})),
    ApiKeyRecord(name="boss", sha256=hash_key(KEYS["boss"]), scopes=frozenset({Scope.ADMIN})),
]


class _Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def _app(rate: str = "100/1s", max_body: int = 1000, clock: _Clock | None = None) -> FastAPI:
    app = FastAPI()
    settings = ApiSettingsMixin(api_keys=RECORDS, api_rate_limit=rate, api_max_body_bytes=max_body)
    install_api_security(app, settings)
    auth = Authenticator(RECORDS, RateLimit.parse(rate), clock or _Clock())

    @app.post("/infer")
    def infer(payload: dict, key: ApiKeyRecord = Depends(auth.require(Scope.INFER))) -> dict:  # noqa: B008
        return {"by": key.name}

    @app.post("/train")
    def train(key: ApiKeyRecord = Depends(auth.require(Scope.TRAIN))) -> dict:  # noqa: B008
        return {"by": key.name}

    return app


def test_missing_and_unknown_keys_are_401() -> None:
    client = TestClient(_app())
    assert client.post("/infer", json={}).status_code == 401
    assert client.post("/infer", json={}, headers={"X-API-Key": "nope"}).status_code == 401


def test_missing_scope_is_403_and_names_it() -> None:
    client = TestClient(_app())
    response = client.post("/train", headers={"X-API-Key": KEYS["inferer"]})
    assert response.status_code == 403 and "'train'" in response.json()["detail"]
    assert client.post("/infer", json={}, headers={"X-API-Key": KEYS["reader"]}).status_code == 403


def test_scoped_and_admin_keys_pass() -> None:
    client = TestClient(_app())
    assert client.post("/infer", json={}, headers={"X-API-Key": KEYS["inferer"]}).json() == {"by": "inferer"}
    assert client.post("/train", headers={"X-API-Key": KEYS["boss"]}).json() == {"by": "boss"}


def test_rate_limit_is_per_key_and_429_has_retry_after() -> None:
    clock = _Clock()
    client = TestClient(_app(rate="2/1s", clock=clock))
    headers = {"X-API-Key": KEYS["inferer"]}
    assert [client.post("/infer", json={}, headers=headers).status_code for _ in range(3)] == [200, 200, 429]
    assert client.post("/infer", json={}, headers=headers).headers["Retry-After"] == "1"
    assert client.post("/train", headers={"X-API-Key": KEYS["boss"]}).status_code == 200
    clock.now = 1.5
    assert client.post("/infer", json={}, headers=headers).status_code == 200


def test_large_body_is_413() -> None:
    client = TestClient(_app(max_body=100))
    response = client.post("/infer", content=b"{" + b" " * 200 + b"}",
                           headers={"X-API-Key": KEYS["inferer"], "content-type": "application/json"})
    assert response.status_code == 413
