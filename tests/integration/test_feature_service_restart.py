"""The feature service as a real process: SIGKILL mid-day, restart, finish the day; nothing differs.

Stream and table must equal the batch computation of the same bars (which equals an uninterrupted
streaming run: tests/unit/test_features_agreement.py and test_feature_service.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from sqlalchemy import Engine, func, select

from scalper_cli.processes import free_port
from scalper_features.build import session_feature_days
from scalper_features.repository import datetime_to_ms, stored_features
from scalper_shared.core.features import FEATURE_SPEC
from scalper_shared.core.features.sessions import session_of
from scalper_shared.db import make_engine
from scalper_shared.db.models import features
from tests.conftest import REPO_ROOT
from tests.integration.feature_service_support import EXPECTED_ROWS, bar_messages, day_bars, ingest
from tests.integration.test_feature_service import read_vectors
from tests.waiting import wait_until as wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SYMBOLS = ("SPY", "QQQ")
TOTAL_ROWS = sum(rows for rows, _ in EXPECTED_ROWS.values())


class ServiceProcess:
    """``python -m scalper_features`` with the test's database, Redis prefix and port."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = int(env["FEATURES_HTTP_PORT"])
        self._env, self._log = env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "scalper_features"], env=self._env,
                                            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._ready, 60, f"/readyz of the feature service (log {self._log})")

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"feature service exited with {self.process.returncode}: {self._log.read_text()[-3000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def stop(self, sig: signal.Signals) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(30)


@pytest.fixture
def service_env(migrated_database_url: str, redis_url: str, stream_prefix: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": migrated_database_url, "REDIS_URL": redis_url,
            "STREAM_PREFIX": stream_prefix, "FEATURES_HTTP_PORT": str(free_port()),
            "FEATURES_SYMBOLS": ",".join(SYMBOLS), "FEATURES_MINUTE_WAIT_S": "120", "CONSUMER_BLOCK_MS": "100",
            "LOG_FORMAT": "text", "LOG_LEVEL": "INFO"}


@pytest.fixture
def db(migrated_database_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database_url)
    yield engine
    engine.dispose()


def stored_count(db: Engine, published_only: bool = False) -> int:
    query = select(func.count()).select_from(features)
    if published_only:
        query = query.where(features.c.published)
    with db.connect() as connection:
        return int(connection.execute(query).scalar_one())


def last_stored_minute(db: Engine) -> int:
    with db.connect() as connection:
        latest = connection.execute(select(func.max(features.c.minute))).scalar_one()
    return -1 if latest is None else datetime_to_ms(latest)


def test_a_killed_and_restarted_service_publishes_what_an_uninterrupted_run_would(
        service_env: dict[str, str], db: Engine, redis_client: redis.Redis, stream_prefix: str,
        shared_data: Path, tmp_path: Path) -> None:
    bars = day_bars(shared_data)
    messages = bar_messages(bars)
    regular = [m for m in messages if str(m.session) == "regular"]
    cut = regular[len(regular) // 2].start
    first_half = [m for m in messages if m.start < cut]
    second_half = [m for m in messages if m.start >= cut]
    service = ServiceProcess(service_env, tmp_path / "features.log")

    service.start()
    for chunk in np.array_split(np.arange(len(first_half)), 6):
        ingest(db, redis_client, stream_prefix, [first_half[i] for i in chunk])
        time.sleep(0.05)
    kill_after = datetime_to_ms(regular[len(regular) // 3].start)
    wait_for(lambda: last_stored_minute(db) >= kill_after, 60, "the first third of the day's features")
    assert service.stop(signal.SIGKILL) == -signal.SIGKILL

    down, after = second_half[:len(second_half) // 2], second_half[len(second_half) // 2:]
    ingest(db, redis_client, stream_prefix, down)  # the day goes on while the service is down
    service.start()
    ingest(db, redis_client, stream_prefix, after)
    wait_for(lambda: stored_count(db, published_only=True) == TOTAL_ROWS, 90, "every row stored and published")
    metrics = service.get("/metrics").text
    assert service.get("/healthz").json()["status"] == "ok"
    assert service.stop(signal.SIGTERM) in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after shutdown
    log = (tmp_path / "features.log").read_text()
    assert log.count("worker features:flusher stopped") == 1 and "Application shutdown complete" in log
    assert 'scalper_features_vectors_published_total{symbol="SPY"}' in metrics

    bounds = session_of(int(bars["SPY"].t[len(bars["SPY"]) // 2]))
    assert bounds is not None
    expected = {d.symbol: d for d in session_feature_days(bounds, bars, SYMBOLS)}
    vectors = read_vectors(redis_client, stream_prefix)
    with db.connect() as connection:
        stored = stored_features(connection, SYMBOLS, FEATURE_SPEC.spec_hash)
    assert len(stored) == len(vectors) == TOTAL_ROWS
    for symbol, day in expected.items():
        rows = [r for r in stored if r.symbol == symbol]
        assert [r.minute_ms for r in rows] == day.minutes.tolist()
        assert [r.real for r in rows] == day.real.tolist()
        np.testing.assert_allclose(np.array([r.values for r in rows]), day.values, rtol=0, atol=1e-9)
        streamed = np.array([vectors[(symbol, t)] for t in day.minutes.tolist()])
        np.testing.assert_allclose(streamed, day.values, rtol=0, atol=1e-9)
