"""SIGKILL the execution service while the paper broker holds an accepted, unfilled order; after a
restart it reconciles with the broker: one order, one fill, nothing lost and nothing doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

import httpx
import pytest
import redis
from sqlalchemy import insert, select

from scalper_cli.processes import free_port
from scalper_shared.bus import StreamProducer
from scalper_shared.clock import FakeClock, uuid_ids
from scalper_shared.core.actions import Action
from scalper_shared.core.risk import RiskConfig
from scalper_shared.db import make_engine
from scalper_shared.db.models import fills, models, orders, paper_fills, paper_orders, trades
from scalper_shared.schema import make_envelope, streams
from tests.unit.execution_support import SERVED, bar, decision
from tests.waiting import wait_until as wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LATENCY_MS = 4000


@contextmanager
def execution_process(env: dict[str, str], port: int, log_path) -> Iterator[subprocess.Popen]:  # noqa: ANN001
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "scalper_execution"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _healthy(port), 60, "the execution service to serve /healthz")
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def promote_the_served_model(database) -> None:  # noqa: ANN001
    """A promoted ``models`` row for the model the test's decisions claim (execution acts for no other);
    its config carries no risk section, which execution takes as its own."""
    with database.begin() as c:
        c.execute(insert(models).values(
            id=SERVED.model_id, job_id="job-of-the-served-model", config={}, spec_hash=SERVED.spec_hash,
            train_from=date(2025, 6, 2), train_to=date(2025, 6, 20), validation_from=date(2025, 6, 23),
            validation_to=date(2025, 6, 27), total_timesteps=1, metrics={}, artifact_path="unused", promoted=True))


def test_sigkill_mid_order_then_restart_reconciles_without_duplicate_or_lost_fill(
        migrated_database_url: str, redis_url: str, stream_prefix: str, tmp_path) -> None:  # noqa: ANN001
    port = free_port()
    env = {**os.environ, "DATABASE_URL": migrated_database_url, "REDIS_URL": redis_url,
           "STREAM_PREFIX": stream_prefix, "EXECUTION_HTTP_PORT": str(port), "PAPER_DETERMINISTIC": "false",
           "PAPER_LATENCY_MS": str(LATENCY_MS), "EXECUTION_RECONCILE_INTERVAL_MS": "100",
           "CONSUMER_BLOCK_MS": "100", "CONSUMER_CLAIM_IDLE_MS": "1000", "LOG_FORMAT": "text"}
    database = make_engine(migrated_database_url)
    client = redis.Redis.from_url(redis_url)
    clock = FakeClock(datetime(2025, 7, 1, 14, 0, tzinfo=UTC))

    def publish(stream: str, message) -> None:  # noqa: ANN001
        StreamProducer(client, stream, maxlen=10_000, prefix=stream_prefix).publish(
            make_envelope(message, source="test", clock=clock, ids=uuid_ids))

    def rows(table) -> list:  # noqa: ANN001
        with database.connect() as c:
            return c.execute(select(table)).all()

    promote_the_served_model(database)
    try:
        with execution_process(env, port, tmp_path / "execution.log") as process:
            for n in range(5):
                publish(streams.MD_BARS, bar("SPY", n, 600.0 + (0.3 if n % 2 else -0.3)))
            wait_for(lambda: client.xinfo_groups(stream_prefix + streams.MD_BARS)
                     and client.xinfo_groups(stream_prefix + streams.MD_BARS)[0]["pending"] == 0
                     and client.xinfo_groups(stream_prefix + streams.MD_BARS)[0]["entries-read"] == 5,
                     30, "the bars to be consumed")
            publish(streams.POLICY_DECISIONS, decision("SPY", 4, Action.BUY_CALL))
            wait_for(lambda: [r for r in rows(orders) if r.status == "accepted"], 30, "the broker to accept")
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        assert [r.status for r in rows(paper_orders)] == ["accepted"]  # at the venue, not yet filled
        assert rows(fills) == []

        with execution_process(env, port, tmp_path / "execution.log"):
            wait_for(lambda: [r for r in rows(orders) if r.status == "filled"], LATENCY_MS / 1000 + 30,
                     "the restarted service to record the fill")
            time.sleep(1.0)  # a few reconcile rounds and any redelivery: nothing may change
            (order,) = rows(orders)
            (venue_order,) = rows(paper_orders)
            (venue_fill,) = rows(paper_fills)
            (fill,) = rows(fills)
            (trade,) = rows(trades)
        assert order.client_order_id == venue_order.client_order_id == fill.client_order_id
        assert (fill.fill_id, fill.price, fill.contracts) == (venue_fill.fill_id, venue_fill.price,
                                                              venue_fill.contracts)
        entry = RiskConfig().contracts_per_entry  # execution's default sizing
        assert (order.filled_contracts, trade.contracts_open, trade.avg_premium) == (entry, entry, fill.price)
    finally:
        database.dispose()
        client.close()
