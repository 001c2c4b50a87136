"""``scalper demo`` as a user runs it on a fresh clone: no API key, nothing configured.

A private var dir, free HTTP ports, a fresh database and a Redis URL where nothing answers (so the
demo starts its own embedded Redis and its training job cannot meet another test's RQ worker).
The whole loop runs through real services: backfill, training, evaluation, promotion, paper day.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scalper_cli.processes import free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PORT_VARIABLES = ("POLICY_HTTP_PORT", "INGESTION_HTTP_PORT", "FEATURES_HTTP_PORT", "EXECUTION_HTTP_PORT",
                  "TRAINER_HTTP_PORT")
STEPS = ("stack up", "services ready", "health and metrics", "bars round trip", "load synthetic market", "train",
         "evaluate", "promote", "paper day", "stack down")


def demo_environment(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.endswith("_HTTP_PORT") and k not in ("API_KEYS", "SCALPER_API_KEY", "POLYGON_API_KEY")}
    env.update({"SCALPER_VAR_DIR": str(tmp_path / "var"), "DATABASE_URL": database_url,
                "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "STACK_READY_TIMEOUT_S": "120",
                "COLUMNS": "200"})
    env.update({variable: str(free_port()) for variable in PORT_VARIABLES})
    return env


def test_demo_runs_the_whole_loop_and_prints_an_honest_summary(tmp_path: Path, database_url: str) -> None:
    env = demo_environment(tmp_path, database_url)
    try:
        run_and_check_the_demo(tmp_path, env)
    finally:
        drop_the_demo_database(database_url)


def drop_the_demo_database(database_url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    from scalper_cli.demo import demo_database_url

    demo = make_url(demo_database_url(database_url)).database
    admin = database_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{demo}" WITH (FORCE)')


def run_and_check_the_demo(tmp_path: Path, env: dict[str, str]) -> None:

    result = subprocess.run([sys.executable, "-m", "scalper_cli.main", "demo", "--timesteps", "10000"], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)

    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "FAILED" not in out
    for step in STEPS:
        assert re.search(rf"│ {re.escape(step)}\s+│ ok", out), f"step {step!r} not ok:\n{out}"
    model = re.search(r"model (model-[0-9a-f]+) after 10,000 steps", out)
    assert model is not None, out
    report = tmp_path / "var" / "reports" / model.group(1) / "report.html"
    assert f"report: {report}" in out
    assert report.is_file() and (report.parent / "metrics.json").is_file()
    assert re.search(r"^verdict: The agent (MADE|LOST) \$", out, re.MULTILINE)
    assert re.search(r"^agent P&L: \$-?[\d,]+\.\d\d over 5 held-out days; best baseline \w+", out, re.MULTILINE)
    assert re.search(r"^agent - best baseline, mean daily: \$-?[\d,.]+, 95% CI \[", out, re.MULTILINE)
    assert re.search(r"^trades/day: [\d.]+; HOLD: [\d.]+% of actions", out, re.MULTILINE)
    assert re.search(r"^decision steps at step [\d,]+: P\(HOLD\) [\d.]+%, P\(BUY\) [\d.]+%", out, re.MULTILINE)
    assert re.search(r"^paper day 2025-08-18: \d+ trades, P&L \$-?[\d,.]+; .*; paper trades "
                     r"equal the backtest exactly", out, re.MULTILINE)
    assert f"API docs: http://127.0.0.1:{env['POLICY_HTTP_PORT']}/docs" in out
    assert not list((tmp_path / "var" / "run").glob("*.pid"))


def test_a_second_demo_on_the_same_servers_starts_fresh_and_passes(tmp_path: Path, database_url: str) -> None:
    """The demo runs on its own database (``<name>_demo``), dropped and recreated each run: a second run
    must not read the first run's orders, daily tally or market time (it did, and failed parity)."""
    import psycopg

    env = demo_environment(tmp_path, database_url)
    command = [sys.executable, "-m", "scalper_cli.main", "demo", "--timesteps", "5000"]
    try:
        for run in (1, 2):
            result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
            out = result.stdout
            assert result.returncode == 0, f"run {run}:\n{out}{result.stderr}"
            assert "paper trades equal the backtest exactly" in out, f"run {run}:\n{out}"
            assert not re.search(r"latency p50 -", out), f"run {run}: a latency from an earlier run:\n{out}"
    finally:
        drop_the_demo_database(database_url)
    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
