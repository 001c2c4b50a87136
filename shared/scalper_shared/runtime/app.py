"""The HTTP face every service has: ``/healthz``, ``/readyz``, ``/metrics``, and clean shutdown.

A service's ``main`` builds its settings and clients, wraps its long-running loops as
:class:`BackgroundWorker` objects and calls :func:`serve`. Uvicorn turns SIGTERM/SIGINT into the
app's shutdown, which stops every worker (each finishes its batch and acknowledges) before exit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import Depends, FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

logger = logging.getLogger(__name__)

ReadinessCheck = Callable[[], None]
"""Raises when the dependency is not usable; returns None when it is."""


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
    **fastapi_kwargs: object,
) -> FastAPI:
    """A FastAPI app with health, readiness and metrics routes that runs ``workers`` while up."""
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
    app = FastAPI(title=f"scalper-{name}", lifespan=lifespan, dependencies=dependencies,
                  **fastapi_kwargs)  # type: ignore[arg-type]

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
