"""API keys with scopes, per-key rate limits, body size limit and CORS for the services' REST APIs.

Keys travel in the ``X-API-Key`` header and are stored only as SHA-256 hashes in settings
(``API_KEYS``, a JSON list of ``{"name", "sha256", "scopes"}``; ``scalper keys new`` makes one).
No or unknown key -> 401; a key without the endpoint's scope -> 403; over its rate -> 429; a client
address with more than ``API_AUTH_FAILURE_LIMIT`` failed authentications -> 429 for a while, whatever
key it sends. ``admin`` implies every scope. Every service (``build_service_app``) refuses a body over
the limit with 413 (chunked too) and a NUL character in the path, query or a JSON string with 422.
"""

from __future__ import annotations

import hashlib
import hmac
import json
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
    api_auth_failure_limit: str = Field("10/60s", description="Failed authentications per client address, "
                                                               "COUNT/WINDOW; beyond it every request gets 429")
    api_max_body_bytes: int = Field(1_048_576, gt=0, description="Larger request bodies get 413")
    api_cors_origins: list[str] = Field(default_factory=list, description="CORS off when empty")
    api_docs_enabled: bool = Field(True, description="Serve /docs and /openapi.json")

    @field_validator("api_rate_limit", "api_auth_failure_limit")
    @classmethod
    def _valid_rate(cls, value: str) -> str:
        RateLimit.parse(value)
        return value


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Authenticator:
    """Looks keys up by hash (constant-time compare) and enforces each key's rate limit."""

    def __init__(self, records: list[ApiKeyRecord], rate_limit: RateLimit,
                 monotonic: Callable[[], float] = time.monotonic, *,
                 failure_limit: RateLimit | None = None) -> None:
        self._records = list(records)
        self._rate_limit = rate_limit
        self._failure_limit = failure_limit or RateLimit(10, 60.0)
        self._monotonic = monotonic
        self._windows: dict[str, SlidingWindow] = {}
        self._failures: dict[str, SlidingWindow] = {}
        self._lock = threading.Lock()

    def authenticate(self, key: str | None, client: str = "unknown") -> ApiKeyRecord:
        """The key's record; 401 for a missing or unknown key, 429 for a client address that failed
        more than ``failure_limit`` times lately (whatever key it sends now) or a key over its rate."""
        self._refuse_locked_out(client)
        if not key:
            self._failed(client)
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"missing {API_KEY_HEADER} header")
        digest = hash_key(key)
        record = next((r for r in self._records if hmac.compare_digest(r.sha256, digest)), None)
        if record is None:
            self._failed(client)
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown API key")
        self._throttle(record)
        return record

    def _refuse_locked_out(self, client: str) -> None:
        now = self._monotonic()
        with self._lock:
            window = self._failures.get(client)
            retry_after = window.retry_after(now) if window is not None else 0.0
        if retry_after > 0:
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                                f"too many failed authentications from {client} ({self._failure_limit})",
                                headers={"Retry-After": f"{max(1, round(retry_after))}"})

    def _failed(self, client: str) -> None:
        now = self._monotonic()
        with self._lock:
            if len(self._failures) > 100_000:  # bound the memory an address-rotating attacker can take
                self._failures.clear()
            self._failures.setdefault(client, SlidingWindow(self._failure_limit)).try_acquire(now)

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

        async def dependency(request: Request, key: str | None = Depends(header)) -> ApiKeyRecord:
            # async: a few microseconds of hashing, not worth a hop to the thread pool
            record = self.authenticate(key, request.client.host if request.client else "unknown")
            if not record.allows(scope):
                raise HTTPException(status.HTTP_403_FORBIDDEN,
                                    f"key {record.name!r} lacks the {scope.value!r} scope")
            return record

        return dependency


DEFAULT_MAX_BODY_BYTES = 1_048_576
NUL_TOLERANT_PATHS_STATE = "nul_tolerant_paths"
"""``app.state`` attribute: paths whose JSON body may hold NUL (the kill switch sanitises its reason
rather than refuse to engage); their path and query are still checked."""


class BodySizeLimit:
    """ASGI middleware: 413 for a request body over the limit, 422 for a NUL character anywhere in the
    path, the query or a string of a JSON body (PostgreSQL text cannot hold one: it must never reach
    a handler as a 500).

    The body is read in full (up to the limit) before the app runs, so a chunked body over the limit
    gets 413 too, not the app's 400 for a body it could not finish reading. The limit is
    ``max_bytes``, or ``app.state.max_body_bytes`` when set (``install_api_security``)."""

    def __init__(self, app: ASGIApp, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = getattr(scope.get("app"), "state", None)
        max_bytes = self.max_bytes or getattr(state, "max_body_bytes", None) or DEFAULT_MAX_BODY_BYTES
        if _has_nul(scope.get("path", "")) or b"%00" in scope.get("query_string", b"") \
                or b"\x00" in scope.get("query_string", b"") or b"%00" in scope.get("raw_path", b""):
            await _nul_refused(send, "path")
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await _too_large(send, max_bytes)
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # client gone: the app sees an empty body
            received += len(message.get("body", b""))
            if received > max_bytes:
                await _too_large(send, max_bytes)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        tolerant = scope.get("path", "") in getattr(state, NUL_TOLERANT_PATHS_STATE, ())
        if not tolerant and _json_has_nul(body):
            await _nul_refused(send, "body")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _has_nul(text: str) -> bool:
    return "\x00" in text


def _json_has_nul(body: bytes) -> bool:
    """A NUL in any string or key of a JSON body (raw or escaped as \\u0000)."""
    if b"\x00" in body:
        return True
    if b"\\u0000" not in body:
        return False
    try:
        document = json.loads(body)
    except ValueError:
        return False  # not JSON: the route's own validation answers
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


async def _nul_refused(send: Send, where: str) -> None:
    body = json.dumps({"detail": [{"loc": [where], "msg": "NUL character not allowed",
                                   "type": "value_error"}]}).encode()
    await send({"type": "http.response.start", "status": 422,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


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
    app.state.max_body_bytes = settings.api_max_body_bytes  # read by the BodySizeLimit every service has
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)  # apps not built by build_service_app
    app.add_exception_handler(RequestValidationError, validation_error_response)
    if settings.api_cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.api_cors_origins,
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=[API_KEY_HEADER])
    return Authenticator(settings.api_keys, RateLimit.parse(settings.api_rate_limit),
                         failure_limit=RateLimit.parse(settings.api_auth_failure_limit))

