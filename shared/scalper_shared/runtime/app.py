"""The HTTP face every service has: ``/healthz``, ``/readyz``, ``/metrics``, API docs, request
latency metrics, and clean shutdown.

API docs (Swagger UI at ``/docs``, ReDoc at ``/redoc``) are served from assets bundled by the
``fastapi-offline`` package (under ``/static-offline-docs``): they work without internet. Every
request is timed into ``scalper_http_request_duration_seconds{method, route, status}`` (``route`` is
the path template, so ids do not explode the label set; unmatched paths count as ``unmatched``).

A service's ``main`` builds its settings and clients, wraps its long-running loops as
:class:`BackgroundWorker` objects and calls :func:`serve`. Uvicorn turns SIGTERM/SIGINT into the
app's shutdown, which stops every worker (each finishes its batch and acknowledges) before exit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import Depends, FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scalper_shared.runtime.api_security import BodySizeLimit

logger = logging.getLogger(__name__)

ReadinessCheck = Callable[[], None]
"""Raises when the dependency is not usable; returns None when it is."""

REQUEST_SECONDS = Histogram(
    "scalper_http_request_duration_seconds", "HTTP request latency by route template and status",
    ("method", "route", "status"),
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
UNMATCHED_ROUTE = "unmatched"


class RequestLatency:
    """ASGI middleware: times every HTTP request into :data:`REQUEST_SECONDS` (to the end of its body)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            REQUEST_SECONDS.labels(scope["method"], route, str(status)).observe(time.perf_counter() - started)


class BackgroundWorker(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None:
        """Ask the worker to finish its current unit of work and return."""
        ...

    def join(self, timeout: float | None = None) -> None: ...

    def is_alive(self) -> bool: ...


class ThreadWorker:
    """Runs ``target(stop_event)`` in a thread; ``stop`` sets the event."""

    def __init__(self, name: str, target: Callable[[threading.Event], None]) -> None:
        self.name = name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(target,), name=name, daemon=True)

    def _run(self, target: Callable[[threading.Event], None]) -> None:
        try:
            target(self._stop)
        except Exception:
            logger.exception("worker %s crashed", self.name)
            raise

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()


async def reject_unknown_query(request: Request) -> None:
    """422 naming every query parameter the route does not declare: a mistyped filter must not be
    silently ignored (and answered as if it were absent)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    unknown = sorted(set(request.query_params) - _query_names(dependant))
    if unknown:
        raise RequestValidationError([{"type": "extra_forbidden", "loc": ("query", name),
                                       "msg": "Unknown query parameter", "input": request.query_params[name]}
                                      for name in unknown])


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def build_service_app(
    name: str,
    *,
    checks: dict[str, ReadinessCheck] | None = None,
    workers: Sequence[BackgroundWorker] = (),
    registry: CollectorRegistry = REGISTRY,
    shutdown_timeout_s: float = 30.0,
    docs: bool = True,
    **fastapi_kwargs: object,
) -> FastAPI:
    """A FastAPI app with health, readiness and metrics routes that runs ``workers`` while up.

    ``docs``: serve ``/openapi.json``, Swagger UI (``/docs``) and ReDoc (``/redoc``) from local assets;
    False serves none of them."""
    checks = dict(checks or {})

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for worker in workers:
            logger.info("starting worker %s", worker.name)
            worker.start()
        try:
            yield
        finally:
            for worker in workers:
                worker.stop()
            for worker in workers:
                worker.join(shutdown_timeout_s)
                if worker.is_alive():
                    logger.error("worker %s did not stop within %.0fs", worker.name, shutdown_timeout_s)
                else:
                    logger.info("worker %s stopped", worker.name)

    dependencies = [Depends(reject_unknown_query), *fastapi_kwargs.pop("dependencies", [])]  # type: ignore[misc]
    if docs:
        app = FastAPIOffline(title=f"scalper-{name}", lifespan=lifespan, dependencies=dependencies,
                             **fastapi_kwargs)  # type: ignore[arg-type]
    else:
        app = FastAPI(title=f"scalper-{name}", lifespan=lifespan, dependencies=dependencies, docs_url=None,
                      redoc_url=None, openapi_url=None, **fastapi_kwargs)  # type: ignore[arg-type]
    app.add_middleware(RequestLatency)
    app.add_middleware(BodySizeLimit)  # 413 over the body limit, 422 for NUL in path, query or JSON strings

    @app.get("/healthz", tags=["ops"], responses={503: {"description": "A background worker has died"}})
    def healthz() -> dict[str, object]:
        """Liveness: the process serves requests and its workers are running."""
        dead = [w.name for w in workers if not w.is_alive()]
        if dead:
            return JSONResponse({"status": "unhealthy", "dead_workers": dead}, status_code=503)  # type: ignore[return-value]
        return {"status": "ok", "service": name}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "A dependency does not answer"}})
    def readyz() -> Response:
        """Readiness: every dependency (Redis, database, ...) answers."""
        results: dict[str, str] = {}
        ok = True
        for check_name, check in checks.items():
            try:
                check()
                results[check_name] = "ok"
            except Exception as exc:  # a readiness probe reports, it never raises
                ok = False
                results[check_name] = f"error: {exc}"
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": results},
                            status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run ``app`` until SIGTERM/SIGINT; uvicorn then runs the lifespan shutdown."""
    import uvicorn

    # ws="none": no service serves websockets (uvicorn's default would import websockets.legacy)
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, ws="none")
    uvicorn.Server(config).run()
