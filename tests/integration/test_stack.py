"""``scalper stack`` as a user runs it: real CLI processes, real services.

Each test gets a private var dir, free HTTP ports for the five services, a fresh database and a
stream prefix on the machine's Redis; a finalizer always runs ``stack down``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from scalper_cli.infra import ensure_database, postgres_answers
from scalper_cli.processes import free_port, is_running
from scalper_cli.stack import SERVICE_NAMES
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

PORT_VARIABLES = {"policy": "POLICY_HTTP_PORT", "ingestion": "INGESTION_HTTP_PORT",
                  "features": "FEATURES_HTTP_PORT", "execution": "EXECUTION_HTTP_PORT",
                  "trainer": "TRAINER_HTTP_PORT"}


class Cli:
    """Runs ``python -m scalper_cli.main`` with a private environment."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd

    @property
    def var_dir(self) -> Path:
        return Path(self.env["SCALPER_VAR_DIR"])

    def __call__(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "scalper_cli.main", *args], env=self.env, cwd=self.cwd,
                              capture_output=True, text=True, timeout=timeout)

    def status(self) -> dict:
        result = self("stack", "status", "--json")
        return json.loads(result.stdout)

    def pids(self) -> dict[str, int]:
        return {name: int((self.var_dir / "run" / f"{name}.pid").read_text()) for name in SERVICE_NAMES}


def _environment(tmp_path: Path, redis_url: str, database_url: str, stream_prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_HTTP_PORT")}
    env.update({"SCALPER_VAR_DIR": str(tmp_path / "var"), "REDIS_URL": redis_url, "DATABASE_URL": database_url,
                "STREAM_PREFIX": stream_prefix, "STACK_READY_TIMEOUT_S": "90", "STACK_STOP_TIMEOUT_S": "20",
                "SCALPER_PROBE_TIMEOUT_S": "10",
                "COLUMNS": "200"})
    env.update({variable: str(free_port()) for variable in PORT_VARIABLES.values()})
    return env


@pytest.fixture
def cli(tmp_path: Path, redis_url: str, database_url: str, stream_prefix: str) -> Iterator[Cli]:
    runner = Cli(_environment(tmp_path, redis_url, database_url, stream_prefix), tmp_path)
    yield runner
    runner("stack", "down")


def _assert_up(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"stack up failed:\n{result.stdout}\n{result.stderr}"


def test_up_brings_every_service_to_ready_and_down_stops_them_all(cli: Cli) -> None:
    _assert_up(cli("stack", "up"))
    status = cli.status()
    assert status["ok"] is True, status
    assert {s["name"] for s in status["services"]} == set(SERVICE_NAMES)
    assert all(s["alive"] and s["healthz"] == 200 and s["readyz"] == 200 for s in status["services"])
    for service in status["services"]:
        assert service["port"] == int(cli.env[PORT_VARIABLES[service["name"]]])
    state = json.loads((cli.var_dir / "run" / "stack.json").read_text())
    assert state["infrastructure"]["embedded"] == []
    assert state["infrastructure"]["database_url"] == cli.env["DATABASE_URL"]
    pids = cli.pids()

    down = cli("stack", "down")

    assert down.returncode == 0, down.stdout + down.stderr
    assert down.stdout.count("stopped") == len(SERVICE_NAMES)
    assert "killed" not in down.stdout
    assert not any(is_running(pid) for pid in pids.values())
    assert not list((cli.var_dir / "run").glob("*.pid"))
    assert cli("stack", "status").returncode == 3


def test_a_second_up_leaves_running_services_alone_and_restarts_a_killed_one(cli: Cli) -> None:
    _assert_up(cli("stack", "up"))
    before = cli.pids()
    os.kill(before["features"], signal.SIGKILL)
    wait_until(lambda: not is_running(before["features"]), 10, "the killed features service to be gone")

    second = cli("stack", "up")

    _assert_up(second)
    after = cli.pids()
    assert after["features"] != before["features"]
    assert {k: v for k, v in after.items() if k != "features"} == {k: v for k, v in before.items()
                                                                  if k != "features"}
    assert "restarted" in second.stdout and second.stdout.count("running") == len(SERVICE_NAMES) - 1
    assert cli.status()["ok"] is True


def test_a_service_that_cannot_start_is_named_with_the_tail_of_its_log(cli: Cli) -> None:
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", int(cli.env["POLICY_HTTP_PORT"])))  # bound, not listening: uvicorn's bind fails
    try:
        result = cli("stack", "up")
    finally:
        blocker.close()
    assert result.returncode == 1
    assert "policy exited before it was ready" in result.stderr
    assert "address already in use" in result.stderr.lower()


def test_up_refuses_a_port_another_process_listens_on(cli: Cli) -> None:
    with socket.create_server(("127.0.0.1", int(cli.env["INGESTION_HTTP_PORT"]))):
        result = cli("stack", "up")
    assert result.returncode == 1
    assert "ingestion: port" in result.stderr and "INGESTION_HTTP_PORT" in result.stderr


def test_a_missing_database_is_created_when_its_server_answers(database_url: str) -> None:
    missing = database_url + "_new"
    admin = database_url.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    try:
        assert postgres_answers(missing, 2.0)
        assert ensure_database(missing, 2.0) is True
        assert ensure_database(missing, 2.0) is False
        with psycopg.connect(missing.replace("postgresql+psycopg://", "postgresql://")) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == missing.rsplit("/", 1)[1]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{missing.rsplit("/", 1)[1]}" WITH (FORCE)')


@pytest.mark.slow
def test_embedded_servers_start_when_nothing_answers_and_down_stops_them(stream_prefix) -> None:
    # Not under pytest's basetemp: pytest resets its root to 0700, which PostgreSQL's own user
    # (pgserver runs it as user "pgserver" when we are root) could then not traverse.
    work = Path(tempfile.mkdtemp(prefix="scalper-stack-test-"))
    closed_redis = f"redis://127.0.0.1:{free_port()}/0"
    closed_db = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/scalper"
    cli = Cli(_environment(work, closed_redis, closed_db, stream_prefix), work)
    try:
        up = cli("stack", "up")
        _assert_up(up)
        assert "started embedded Redis" in up.stderr and "started embedded PostgreSQL" in up.stderr
        state = json.loads((cli.var_dir / "run" / "stack.json").read_text())
        embedded = {s["kind"]: s["pid"] for s in state["infrastructure"]["embedded"]}
        assert set(embedded) == {"redis", "postgres"}
        assert state["infrastructure"]["redis_url"] != closed_redis
        assert "host=" in state["infrastructure"]["database_url"]
        status = cli.status()
        assert status["ok"] is True
        assert all(i["alive"] for i in status["infrastructure"])

        down = cli("stack", "down")

        assert down.returncode == 0, down.stdout + down.stderr
        assert "embedded-redis" in down.stdout and "embedded-postgres" in down.stdout
        assert not any(is_running(pid) for pid in embedded.values())
    finally:
        cli("stack", "down")
        shutil.rmtree(work, ignore_errors=True)
