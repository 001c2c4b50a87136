"""Attacks on training (issue #15 item 7): a ``train`` key filling the disk with checkpoints, and a
SIGKILLed trainer worker whose job stayed ``running`` with frozen progress for minutes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pytest
import redis
from pydantic import ValidationError
from rq import Callback, Queue, Retry
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from scalper_shared.runtime.rq_jobs import note_abandoned, run_sweeper
from scalper_shared.schema.training import TrainConfig
from scalper_trainer.checkpoints import CheckpointStore
from tests.waiting import wait_until

WINDOW = {"symbols": ("SPY",), "train_from": date(2025, 7, 1), "train_to": date(2025, 7, 3),
          "validation_from": date(2025, 7, 7), "validation_to": date(2025, 7, 8)}


def test_checkpoint_every_one_step_is_refused() -> None:
    with pytest.raises(ValidationError, match="checkpoint_every"):
        TrainConfig(**WINDOW, total_timesteps=50_000, checkpoint_every=1)
    with pytest.raises(ValidationError, match="more than 1000 checkpoints"):
        TrainConfig(**WINDOW, total_timesteps=10_000_000, checkpoint_every=1_000)
    assert TrainConfig(**WINDOW, total_timesteps=50_000, checkpoint_every=100).checkpoint_every == 100


class FakeModel:
    """Anything with ``save(path)``: writes ``size`` bytes, like an SB3 zip."""

    def __init__(self, size: int) -> None:
        self.size = size

    def save(self, path: Path) -> None:
        Path(path).write_bytes(b"x" * self.size)


def test_a_job_keeps_its_newest_checkpoints_within_its_disk_budget(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "checkpoints", keep=3, budget_bytes=250_000)
    for step in range(100, 16_800, 100):  # 167 checkpoints, as the attack wrote
        store.save(FakeModel(100_000), step)
    assert [c.step for c in store.all()] == [16_600, 16_700]  # 3 kept by count, 2 fit in 250 kB
    assert store.size_bytes() <= 250_000 and store.latest().step == 16_700
    big = CheckpointStore(tmp_path / "big", keep=3, budget_bytes=10)
    big.save(FakeModel(1_000), 1)
    assert [c.step for c in big.all()] == [1]  # the newest always stays, to resume from


WORKER = """
import sys, redis
from rq import Queue
from rq.serializers import JSONSerializer
from scalper_shared.runtime.rq_jobs import HeartbeatWorker
connection = redis.Redis.from_url(sys.argv[1])
queue = Queue(sys.argv[2], connection=connection, serializer=JSONSerializer)
HeartbeatWorker([queue], connection=connection, serializer=JSONSerializer, job_monitoring_interval=2).work()
"""


@pytest.mark.integration
def test_a_sigkilled_workers_job_is_requeued_within_a_minute_and_its_status_says_so(
        redis_url: str, redis_client: redis.Redis, stream_prefix: str) -> None:
    """The sweep runs in a thread, as in the policy service (the failure callback that writes the status
    used to raise "signal only works in main thread" there)."""
    queue = Queue(stream_prefix + "training", connection=redis_client, serializer=JSONSerializer)
    job = queue.enqueue("time.sleep", 120, retry=Retry(max=1), on_failure=Callback(note_abandoned),
                        job_timeout=600)
    worker = subprocess.Popen([sys.executable, "-c", WORKER, redis_url, queue.name], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()
    sweeper = threading.Thread(target=run_sweeper, args=([queue], 0.5, stop), daemon=True)
    try:
        wait_until(lambda: job.get_status(refresh=True) == JobStatus.STARTED, 30, "the job to start", poll_s=0.2)
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its work-horse
        worker.wait(10)
        killed = time.monotonic()
        sweeper.start()
        wait_until(lambda: job.get_status(refresh=True) == JobStatus.QUEUED, 60,
                   lambda: f"re-queue (still {job.get_status()})", poll_s=0.2)
        noticed = time.monotonic() - killed
        assert noticed < 20  # 3 heartbeat intervals of 2 s plus a sweep, not 105 s to 7 minutes
        refreshed = Job.fetch(job.id, connection=redis_client, serializer=JSONSerializer)
        assert any("worker died" in w and "re-queued" in w for w in refreshed.meta["warnings"])
    finally:
        stop.set()
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        queue.empty()
        queue.delete(delete_jobs=True)
