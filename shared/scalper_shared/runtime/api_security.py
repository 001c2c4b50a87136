"""API keys with scopes, per-key rate limits, body size limit and CORS for the services' REST APIs.

Keys travel in the ``X-API-Key`` header and are stored only as SHA-256 hashes in settings
(``API_KEYS``, a JSON list of ``{"name", "sha256", "scopes"}``; ``scalper keys new`` makes one).
No or unknown key -> 401; a key without the endpoint's scope -> 403; over its rate -> 429.
``admin`` implies every scope.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from scalper_shared.core.ratelimit import RateLimit, SlidingWindow

API_KEY_HEADER = "X-API-Key"
API_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not parseable (not JSON, wrong encoding)"},
    401: {"description": f"No or unknown {API_KEY_HEADER}"},
    403: {"description": "The key lacks the endpoint's scope"},
    413: {"description": "Request body too large"},
    429: {"description": "The key's rate limit is exceeded (see Retry-After)"},
}
"""Statuses any key-protected endpoint may answer: pass as ``responses=`` so the schema lists them."""


class Scope(StrEnum):
    READ = "read"
    INFER = "infer"
    TRAIN = "train"
    TRADE = "trade"
    ADMIN = "admin"


class ApiKeyRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes


class ApiSettingsMixin(BaseModel):
    """Fields every REST-serving service adds to its settings."""

    api_keys: list[ApiKeyRecord] = Field(default_factory=list, description="JSON list of hashed keys")
    api_rate_limit: str = Field("100/1s", description="Per-key request limit, COUNT/WINDOW")
    api_max_body_bytes: int = Field(1_048_576, gt=0, description="Larger request bodies get 413")
    api_cors_origins: list[str] = Field(default_factory=list, description="CORS off when empty")
    api_docs_enabled: bool = Field(True, description="Serve /docs and /openapi.json")

    @field_validator("api_rate_limit")
    @classmethod
    def _valid_rate(cls, value: str) -> str:
        RateLimit.parse(value)
        return value


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Authenticator:
    """Looks keys up by hash (constant-time compare) and enforces each key's rate limit."""

    def __init__(self, records: list[ApiKeyRecord], rate_limit: RateLimit,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._records = list(records)
        self._rate_limit = rate_limit
        self._monotonic = monotonic
        self._windows: dict[str, SlidingWindow] = {}
        self._lock = threading.Lock()

    def authenticate(self, key: str | None) -> ApiKeyRecord:
        if not key:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"missing {API_KEY_HEADER} header")
        digest = hash_key(key)
        record = next((r for r in self._records if hmac.compare_digest(r.sha256, digest)), None)
        if record is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown API key")
        self._throttle(record)
        return record

    def _throttle(self, record: ApiKeyRecord) -> None:
        now = self._monotonic()
        with self._lock:
            window = self._windows.setdefault(record.name, SlidingWindow(self._rate_limit))
            allowed = window.try_acquire(now)
            retry_after = window.retry_after(now)
        if not allowed:
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                                f"rate limit {self._rate_limit} exceeded for key {record.name!r}",
                                headers={"Retry-After": f"{max(1, round(retry_after))}"})

    def require(self, scope: Scope) -> Callable[..., Awaitable[ApiKeyRecord]]:
        """A FastAPI dependency: the caller's key record, if it has ``scope``."""
        header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)

        async def dependency(key: str | None = Depends(header)) -> ApiKeyRecord:
            # async: a few microseconds of hashing, not worth a hop to the thread pool
            record = self.authenticate(key)
            if not record.allows(scope):
                raise HTTPException(status.HTTP_403_FORBIDDEN,
                                    f"key {record.name!r} lacks the {scope.value!r} scope")
            return record

        return dependency


class BodySizeLimit:
    """ASGI middleware: 413 for a declared or streamed request body over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(send, self.max_bytes)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await _too_large(send, self.max_bytes)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send, max_bytes: int) -> None:
    body = f'{{"detail":"request body larger than {max_bytes} bytes"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def validation_error_response(_: Request, exc: Exception) -> JSONResponse:
    """422 naming each bad field (``loc``) and why, without echoing the input: FastAPI's default
    handler echoes it and fails with a 500 when the input holds NaN or infinity."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [{"loc": list(error.get("loc", ())), "msg": str(error.get("msg", "")),
               "type": str(error.get("type", "value_error"))} for error in errors]
    return JSONResponse({"detail": detail}, status_code=422)


def install_api_security(app: FastAPI, settings: ApiSettingsMixin) -> Authenticator:
    """Body limit, input-free 422s and (only when origins are configured) CORS on ``app``; returns the
    authenticator."""
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    app.add_exception_handler(RequestValidationError, validation_error_response)
    if settings.api_cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.api_cors_origins,
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=[API_KEY_HEADER])
    return Authenticator(settings.api_keys, RateLimit.parse(settings.api_rate_limit))

