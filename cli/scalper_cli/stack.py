"""The local stack: every service as a detached local process, with its infrastructure.

``up`` resolves Redis and PostgreSQL (see :mod:`scalper_cli.infra`), applies migrations, starts
each service that is not already running (``python -m scalper_<service>``, log in
``var/log/<service>.log``, PID in ``var/run/<service>.pid``), records the resolved URLs in
``var/run/stack.json`` and waits until every ``/readyz`` answers 200. ``down`` stops services
(SIGTERM, then SIGKILL after a timeout) and the embedded servers ``up`` started.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import httpx
from pydantic import BaseModel

from scalper_cli.infra import (
    Infrastructure,
    StackError,
    mask_url,
    resolve_infrastructure,
    run_migrations,
    stop_targets,
)
from scalper_cli.processes import (
    StopResult,
    StopTarget,
    is_running,
    port_in_use,
    read_pid,
    spawn_detached,
    stop_processes,
    tail,
    write_pid,
)
from scalper_cli.settings import StackSettings
from scalper_shared.settings import ServiceSettings, env_name, load_settings

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 20


@runtime_checkable
class HttpSettings(Protocol):
    """A service's settings with an HTTP server (every service in :data:`SERVICES`)."""

    http_host: str
    http_port: int


@dataclass(frozen=True)
class ServiceSpec:
    """One service: its name, the module ``python -m`` runs, and its settings class."""

    name: str
    module: str
    settings_class: str  # "package.module:ClassName"

    def load_settings_class(self) -> type[ServiceSettings]:
        module_name, class_name = self.settings_class.split(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        if not (isinstance(cls, type) and issubclass(cls, ServiceSettings)):
            raise TypeError(f"{self.settings_class} is not a ServiceSettings class")
        return cls


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("ingestion", "scalper_ingestion", "scalper_ingestion.settings:IngestionSettings"),
    ServiceSpec("features", "scalper_features", "scalper_features.settings:FeaturesSettings"),
    ServiceSpec("policy", "scalper_policy", "scalper_policy.settings:PolicySettings"),
    ServiceSpec("execution", "scalper_execution", "scalper_execution.settings:ExecutionSettings"),
    ServiceSpec("trainer", "scalper_trainer", "scalper_trainer.settings:TrainerSettings"),
)
SERVICE_NAMES = tuple(s.name for s in SERVICES)


@dataclass(frozen=True)
class Endpoint:
    """Where a service listens, from its own settings (``<SERVICE>_HTTP_PORT``)."""

    spec: ServiceSpec
    host: str
    port: int
    port_variable: str

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def marker(self) -> str:
        return f"-m {self.spec.module}"


def endpoint(spec: ServiceSpec) -> Endpoint:
    cls = spec.load_settings_class()
    settings = load_settings(cls)
    if not isinstance(settings, HttpSettings):
        raise TypeError(f"{spec.settings_class} has no http_port: the service serves no HTTP")
    return Endpoint(spec, settings.http_host, settings.http_port, env_name(cls, "http_port"))


def endpoints(specs: tuple[ServiceSpec, ...] = SERVICES) -> list[Endpoint]:
    return [endpoint(spec) for spec in specs]


class StackState(BaseModel):
    """``var/run/stack.json``: the URLs the services were given and who started what."""

    infrastructure: Infrastructure
    services: dict[str, int] = {}
    started_at: float = 0.0


def load_state(settings: StackSettings) -> StackState | None:
    try:
        return StackState.model_validate_json(settings.state_file.read_text())
    except FileNotFoundError:
        return None


def save_state(settings: StackSettings, state: StackState) -> None:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    tmp = settings.state_file.with_suffix(".tmp")
    tmp.touch(mode=0o600)  # the Redis URL in it carries the embedded server's password
    tmp.chmod(0o600)
    tmp.write_text(state.model_dump_json(indent=2))
    tmp.replace(settings.state_file)


def service_pid(settings: StackSettings, ep: Endpoint) -> int | None:
    """The PID in the service's PID file when that process is alive and is this service."""
    pid = read_pid(settings.pid_file(ep.spec.name))
    return pid if is_running(pid, ep.marker) else None


# --- up -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceStart:
    name: str
    pid: int
    port: int
    action: str  # "started", "restarted" or "running"
    ready_after_s: float | None = None


@dataclass(frozen=True)
class UpReport:
    infrastructure: Infrastructure
    services: list[ServiceStart]
    migrated: bool
    elapsed_s: float


def child_environment(settings: StackSettings, infra: Infrastructure,
                      extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The CLI's environment plus ``extra_env``, the resolved infrastructure URLs and the var-based defaults."""
    env = {**os.environ, **(extra_env or {})}
    env["REDIS_URL"] = infra.redis_url
    env["DATABASE_URL"] = infra.database_url
    env.setdefault("ARTIFACTS_DIR", str(settings.var_dir / "artifacts"))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_service(settings: StackSettings, ep: Endpoint, env: dict[str, str]) -> ServiceStart:
    """Leave a running service alone; otherwise start it (its port must be free)."""
    name = ep.spec.name
    pid = service_pid(settings, ep)
    if pid is not None:
        return ServiceStart(name, pid, ep.port, "running")
    if port_in_use(ep.host if ep.host not in ("0.0.0.0", "") else "127.0.0.1", ep.port):
        raise StackError(f"{name}: port {ep.port} is already in use by another process "
                         f"(set {ep.port_variable} to a free port)")
    had_pid = read_pid(settings.pid_file(name)) is not None
    argv = [sys.executable, "-m", ep.spec.module]
    pid = spawn_detached(argv, settings.log_file(name), env, Path.cwd())
    write_pid(settings.pid_file(name), pid)
    action = "restarted" if had_pid else "started"
    logger.info("%s %s (pid %s, port %s, log %s)", action, name, pid, ep.port, settings.log_file(name))
    return ServiceStart(name, pid, ep.port, action)


def probe(url: str, timeout_s: float) -> int | None:
    """HTTP status of GET ``url``, or None when nothing answers."""
    try:
        return httpx.get(url, timeout=timeout_s).status_code
    except httpx.HTTPError:
        return None


def not_ready_error(settings: StackSettings, name: str, reason: str) -> StackError:
    log = settings.log_file(name)
    lines = "\n".join("    " + line for line in tail(log, LOG_TAIL_LINES)) or "    (empty log)"
    return StackError(f"{name} {reason}. Last lines of {log}:\n{lines}")


def wait_ready(settings: StackSettings, starts: list[ServiceStart], eps: list[Endpoint],
               started_at: float) -> list[ServiceStart]:
    """Poll every ``/readyz`` until all answer 200; fail fast when a service dies, else at the timeout."""
    by_name = {ep.spec.name: ep for ep in eps}
    pending = {s.name: s for s in starts}
    ready: dict[str, ServiceStart] = {}
    deadline = started_at + settings.ready_timeout_s
    while pending:
        for name, start in list(pending.items()):
            ep = by_name[name]
            if not is_running(start.pid):  # identity checked at start; the PID alone tells death now
                raise not_ready_error(settings, name, f"exited before it was ready (pid {start.pid})")
            if probe(ep.base_url + "/readyz", settings.probe_timeout_s) == 200:
                ready[name] = ServiceStart(name, start.pid, start.port, start.action,
                                           round(time.monotonic() - started_at, 2))
                del pending[name]
        if pending and time.monotonic() > deadline:
            name = next(iter(pending))
            raise not_ready_error(settings, name, f"was not ready within {settings.ready_timeout_s:.0f}s "
                                                  f"(GET {by_name[name].base_url}/readyz)")
        if pending:
            time.sleep(0.2)
    return [ready[s.name] for s in starts]


def up(settings: StackSettings, extra_env: Mapping[str, str] | None = None,
       fresh_database: bool = False) -> UpReport:
    """Bring the stack up (idempotent): infrastructure, migrations, services, then wait for readiness.

    ``extra_env`` is added to the environment of the services this call starts (``scalper demo``
    passes its one-run API key and the paper-mode settings this way). ``fresh_database`` drops and
    recreates the database first (the demo's own, never while services of a stack are running).
    """
    began = time.monotonic()
    for directory in (settings.log_dir, settings.run_dir):
        directory.mkdir(parents=True, exist_ok=True)
    previous = load_state(settings)
    if fresh_database:
        running = [ep.spec.name for ep in endpoints() if service_pid(settings, ep) is not None]
        if running:
            raise StackError(f"a stack is already running ({', '.join(running)}): `scalper stack down` first; "
                             "this run starts on a fresh database")
    infra = resolve_infrastructure(settings, previous.infrastructure if previous else None, fresh_database)
    state = StackState(infrastructure=infra, services=previous.services if previous else {},
                       started_at=previous.started_at if previous else time.time())
    save_state(settings, state)
    migrated = run_migrations(infra.database_url)
    eps = endpoints()
    env = child_environment(settings, infra, extra_env)
    starts = []
    for ep in eps:
        start = start_service(settings, ep, env)
        starts.append(start)
        state.services[start.name] = start.pid
        save_state(settings, state)
    ready = wait_ready(settings, starts, eps, began)
    return UpReport(infra, ready, migrated, round(time.monotonic() - began, 2))


# --- down ---------------------------------------------------------------------------------------


def down(settings: StackSettings) -> list[StopResult]:
    """Stop every service (SIGTERM, SIGKILL after the timeout), then the embedded servers; clean up."""
    state = load_state(settings)
    service_targets = []
    for ep in endpoints():
        pid = read_pid(settings.pid_file(ep.spec.name)) or (state.services.get(ep.spec.name) if state else None)
        if pid:
            service_targets.append(StopTarget(ep.spec.name, pid, ep.marker))
    results = stop_processes(service_targets, settings.stop_timeout_s)
    if state is not None:
        results += stop_processes(stop_targets(state.infrastructure), settings.stop_timeout_s)
    for name in SERVICE_NAMES:
        settings.pid_file(name).unlink(missing_ok=True)
    settings.state_file.unlink(missing_ok=True)
    return results


# --- status -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    alive: bool
    port: int
    healthz: int | None
    readyz: int | None

    @property
    def ok(self) -> bool:
        return self.alive and self.healthz == 200 and self.readyz == 200


@dataclass(frozen=True)
class InfraStatus:
    name: str
    url: str  # password masked
    embedded_pid: int | None
    alive: bool | None  # None: not started by this CLI


@dataclass(frozen=True)
class StackStatus:
    services: list[ServiceStatus]
    infrastructure: list[InfraStatus]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.services)


def service_status(settings: StackSettings, ep: Endpoint) -> ServiceStatus:
    pid = read_pid(settings.pid_file(ep.spec.name))
    alive = is_running(pid, ep.marker)
    healthz = probe(ep.base_url + "/healthz", settings.probe_timeout_s) if alive else None
    readyz = probe(ep.base_url + "/readyz", settings.probe_timeout_s) if alive else None
    return ServiceStatus(ep.spec.name, pid, alive, ep.port, healthz, readyz)


def infra_status(state: StackState | None) -> list[InfraStatus]:
    if state is None:
        return []
    infra = state.infrastructure
    rows = []
    for kind, url in (("redis", infra.redis_url), ("postgres", infra.database_url)):
        server = infra.embedded_server(kind)
        alive = is_running(server.pid, server.marker) if server else None
        rows.append(InfraStatus(kind, mask_url(url), server.pid if server else None, alive))
    return rows


def status(settings: StackSettings) -> StackStatus:
    services = [service_status(settings, ep) for ep in endpoints()]
    return StackStatus(services, infra_status(load_state(settings)))


# --- logs ---------------------------------------------------------------------------------------


def log_names(settings: StackSettings) -> list[str]:
    """Services and embedded servers that have a log under ``var/log``."""
    if not settings.log_dir.is_dir():
        return []
    return sorted(p.stem for p in settings.log_dir.glob("*.log") if p.exists())
