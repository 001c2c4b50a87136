"""Paper mode equals the backtest: one stored day through the services, in a namespace of their own.

Synthetic bars of a few days are backfilled with the ingestion core, a fixed-seed MaskablePPO (its exit
logits lowered so it holds positions into stops and take-profits) is written as an artifact, and
:func:`run_paper_day` replays the last day through the features, policy and execution cores started by
the CLI's :func:`paper_services` on the run's own database, stream prefix and replay clock; the trades
(rebuilt from execution's orders and fills) must equal the evaluation engine's field by field.

The acceptance test runs it as a user would: a stack is up with its default settings and has seen a
real day of ../shared/data (SPY and QQQ, 2025-09-25, imported file by file through its md.bars), then
``scalper paper --model M --date D`` (default settings, no stack variable set for it) trades it 20 times,
the account hits the $1,000 daily-loss limit, and paper equals the backtest; the live stack's streams
and orders are untouched. A forced difference (``--risk-config`` with another entry size) makes the
same command exit 1 naming the first differing trade and its cause.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
import redis
import torch
from sb3_contrib import MaskablePPO
from sqlalchemy import text
from typer.testing import CliRunner

from scalper_cli import stack
from scalper_cli.main import app
from scalper_cli.paper_services import paper_services
from scalper_cli.processes import free_port
from scalper_cli.settings import StackSettings
from scalper_ingestion.backfill import file_source, run_backfill
from scalper_ingestion.replay import replay_days
from scalper_ingestion.sources.synthetic import SyntheticSource
from scalper_ingestion.writer import BarWriter
from scalper_shared.core.calendar import trading_day
from scalper_shared.core.features import FEATURE_SPEC
from scalper_shared.core.risk import RiskConfig
from scalper_shared.db import make_engine, migrate
from scalper_shared.runtime.api_security import hash_key
from scalper_shared.schema import streams
from scalper_shared.schema.training import TrainConfig
from scalper_shared.settings import load_settings
from scalper_trainer.env import EnvConfig, make_vec_env, synthetic_episodes
from scalper_trainer.evaluation.paper import PaperRequest, run_paper_day
from scalper_trainer.registry import Manifest, model_id_for_job, write_artifacts
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SYMBOLS = ("SPY", "QQQ")
FIRST_DAY, DAY = date(2025, 6, 2), date(2025, 6, 4)
CONTRACTS = EnvConfig().contracts
MODEL_SEED, EXIT_LOGIT_SHIFT = 3, 0.02
"""A fresh policy of this seed, its TRIM/EXIT logits lowered by this much, trades 13 times on DAY:
calls and puts on both symbols, agent exits, stops, take-profit trims and an end-of-day flatten."""
JOB_ID = "paper-parity"
PORT_VARIABLES = ("POLICY_HTTP_PORT", "INGESTION_HTTP_PORT", "FEATURES_HTTP_PORT", "EXECUTION_HTTP_PORT",
                  "TRAINER_HTTP_PORT")


def backfill(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        run_backfill(SyntheticSource(("SPY", "QQQ", "I:SPX"), FIRST_DAY, DAY, 0), BarWriter(engine, None))
    finally:
        engine.dispose()


REAL_DAY = date(2025, 9, 25)
REAL_FILES = {"SPY": "SPY_1m_2025-08_2025-10.csv.gz", "QQQ": "QQQ_1m_2025-08_2025-10.csv.gz"}
REAL_MODEL_SEED = 3
"""A fresh policy of this seed trades 20 times on REAL_DAY in the backtest (agent exits, stops, a
take-profit trim) and the account's day goes below -$1,000: the daily-loss limit halts it."""


def real_day_files(shared_data: Path, tmp_path: Path, day: date = REAL_DAY) -> dict[str, Path]:
    """The real SPY and QQQ bars of ``day`` (pre-market to post-market), one file per symbol."""
    session = trading_day(day)
    assert session is not None
    first, last = session.pre_open.timestamp() * 1000, session.post_close.timestamp() * 1000
    files = {}
    for symbol, name in REAL_FILES.items():
        frame = pd.read_csv(shared_data / name)
        files[symbol] = tmp_path / f"{symbol}-{day}.csv"
        frame[(frame["t"] >= first) & (frame["t"] < last)].to_csv(files[symbol], index=False)
    return files


def write_trading_model(artifacts_dir: Path, seed: int = MODEL_SEED, exit_logit_shift: float = EXIT_LOGIT_SHIFT) -> Path:
    """A fixed-seed fresh MaskablePPO with lowered exit logits, exported like a job's artifact."""
    episodes = synthetic_episodes(date(2025, 6, 2), date(2025, 6, 3), seed=1, symbols=("SPY",))
    model = MaskablePPO("MlpPolicy", make_vec_env(episodes, n_envs=1, seed=0), n_steps=32, batch_size=32,
                        policy_kwargs={"net_arch": [32, 32]}, seed=seed, device="cpu", verbose=0)
    with torch.no_grad():
        model.policy.action_net.bias[3:] -= exit_logit_shift
    config = TrainConfig(symbols=SYMBOLS, train_from=date(2025, 6, 2), train_to=date(2025, 6, 2),
                         validation_from=date(2025, 6, 3), validation_to=date(2025, 6, 3), total_timesteps=64)
    manifest = Manifest(model_id_for_job(JOB_ID), JOB_ID, datetime(2025, 6, 6, tzinfo=UTC), config, {})
    return write_artifacts(artifacts_dir, model, manifest)


def test_a_paper_day_equals_the_backtest_trade_for_trade(
        redis_url: str, database_url: str, stream_prefix: str, tmp_path: Path) -> None:
    migrate(database_url)
    backfill(database_url)
    artifact_dir = write_trading_model(tmp_path / "artifacts")

    request = PaperRequest(artifact_dir, DAY, redis_url, database_url, stream_prefix)
    result = run_paper_day(request, replay_days, paper_services)

    assert result.minutes >= 390
    reasons = {t.exit_reason for t in result.backtest}
    assert len(result.backtest) >= 3 and {"stop", "agent"} <= reasons, result.backtest
    assert any(len(t.exit_prices) > 1 for t in result.backtest), "no take-profit trim in the backtest"
    assert result.differences == []
    assert result.exact
    assert result.namespace.startswith(stream_prefix + "paper:")
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=result.namespace + "*")) == [], "the run left keys behind"
    finally:
        client.close()


@pytest.fixture
def default_stack(tmp_path: Path, redis_url: str, database_url: str, stream_prefix: str,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[StackSettings]:
    """The stack up with default settings (its own ports, var dir, database, prefix and admin key)."""
    key = secrets.token_urlsafe(24)
    env = {"SCALPER_VAR_DIR": str(tmp_path / "var"), "REDIS_URL": redis_url, "DATABASE_URL": database_url,
           "STREAM_PREFIX": stream_prefix, "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
           "API_KEYS": json.dumps([{"name": "parity", "sha256": hash_key(key), "scopes": ["admin"]}]),
           "INGESTION_LIVE": "false", "STACK_READY_TIMEOUT_S": "120"}
    env.update({variable: str(free_port()) for variable in PORT_VARIABLES})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(StackSettings)
    try:
        stack.up(settings)
        yield settings
    finally:
        stack.down(settings)


def stream_lengths(client: redis.Redis, prefix: str) -> dict[str, int]:
    names = (streams.MD_BARS, streams.FEATURES_VECTORS, streams.POLICY_DECISIONS, streams.POSITIONS_STATE,
             streams.ORDERS_EVENTS)
    return {name: int(client.xlen(prefix + name)) for name in names}


def count_rows(database_url: str, query: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as c:
            return int(c.execute(text(query)).scalar_one())
    finally:
        engine.dispose()


def test_scalper_paper_with_default_settings_on_a_day_the_stack_saw_equals_the_backtest(
        default_stack: StackSettings, redis_url: str, database_url: str, stream_prefix: str,
        tmp_path: Path, shared_data: Path) -> None:
    runner = CliRunner()
    for symbol, path in real_day_files(shared_data, tmp_path).items():  # file by file, through md.bars
        imported = runner.invoke(app, ["ingest", "file", str(path), "--symbol", symbol])
        assert imported.exit_code == 0, imported.output
    wait_until(lambda: count_rows(database_url, "SELECT count(*) FROM features") >= 2 * 390, 120,
               "the live features service to process the day", poll_s=0.5)
    artifact_dir = write_trading_model(tmp_path / "artifacts", REAL_MODEL_SEED, 0.0)
    client = redis.Redis.from_url(redis_url)
    live_before = stream_lengths(client, stream_prefix)

    result = runner.invoke(app, ["paper", "--model", str(artifact_dir), "--date", REAL_DAY.isoformat()])

    assert result.exit_code == 0, result.output
    assert "parity: paper trades equal the backtest exactly" in result.output
    assert "bar -> order latency: p50" in result.output
    database = f"{database_url.rsplit('/', 1)[1]}_paper"
    paper_url = database_url.rsplit("/", 1)[0] + "/" + database
    trades = count_rows(paper_url, "SELECT count(DISTINCT trade_id) FROM orders")
    assert trades >= 10, result.output
    halts = count_rows(paper_url, "SELECT count(*) FROM risk_events WHERE kind = 'state_changed' "
                                  "AND reason = 'max_daily_loss'")
    assert halts >= 1, f"the account never hit its daily-loss limit\n{result.output}"
    assert stream_lengths(client, stream_prefix) == live_before, "the paper run touched the live streams"
    assert count_rows(database_url, "SELECT count(*) FROM orders") == 0, "the paper run wrote live orders"
    assert count_rows(database_url, "SELECT count(*) FROM features WHERE spec_hash = :h".replace(
        ":h", f"'{FEATURE_SPEC.spec_hash}'")) >= 2 * 390

    risk = tmp_path / "risk.json"
    risk.write_text(RiskConfig(contracts_per_entry=3).model_dump_json())
    forced = runner.invoke(app, ["paper", "--model", str(artifact_dir), "--date", REAL_DAY.isoformat(),
                                 "--risk-config", str(risk)])

    assert forced.exit_code == 1, forced.output
    assert "first difference: trade 0: contracts differs" in forced.output.replace("\n", " ")
    assert "the risk-and-sizing configs differ" in forced.output.replace("\n", " ")
    client.close()


LATE_OPEN_DAY = date(2025, 8, 21)
"""Both symbols' first bar is at 09:44 ET: the features' grid, the environment's episode and so its
warm-up start there, not at the open; the policy's first decision comes 35 rows after 09:44."""


def test_a_day_whose_first_minutes_are_missing_equals_the_backtest(
        redis_url: str, database_url: str, stream_prefix: str, tmp_path: Path, shared_data: Path) -> None:
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        for symbol, path in real_day_files(shared_data, tmp_path, LATE_OPEN_DAY).items():
            run_backfill(file_source(path, symbol), BarWriter(engine, None))
    finally:
        engine.dispose()
    artifact_dir = write_trading_model(tmp_path / "artifacts", REAL_MODEL_SEED, 0.0)

    result = run_paper_day(PaperRequest(artifact_dir, LATE_OPEN_DAY, redis_url, database_url, stream_prefix),
                           replay_days, paper_services)

    assert len(result.backtest) >= 10
    assert min(t.entry_row for t in result.backtest) >= 14 + FEATURE_SPEC.warmup
    assert result.first_difference is None, result.first_difference
