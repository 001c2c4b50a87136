"""Issue #15 item 9: a busy trainer worker exits within the stack's stop timeout on SIGTERM (it asked its
job to checkpoint and re-queue) instead of logging "warm shut down requested" and being SIGKILLed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from rq import Queue, Retry
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from scalper_shared.runtime.rq_jobs import JobPreempted
from scalper_shared.schema.training import JobState
from tests.integration.test_training_run import CONFIG, Status, _run

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WORKER = """
import sys, redis
from rq import Queue
from rq.serializers import JSONSerializer
from scalper_shared.runtime.rq_jobs import HeartbeatWorker
connection = redis.Redis.from_url(sys.argv[1])
queue = Queue(sys.argv[2], connection=connection, serializer=JSONSerializer)
HeartbeatWorker([queue], connection=connection, serializer=JSONSerializer, job_monitoring_interval=2).work()
"""
STACK_STOP_TIMEOUT_S = 20.0


def test_a_busy_worker_exits_on_sigterm_within_the_stop_timeout_and_its_job_is_requeued(
        redis_url: str, redis_client: redis.Redis, stream_prefix: str) -> None:
    queue = Queue(stream_prefix + "training", connection=redis_client, serializer=JSONSerializer)
    job = queue.enqueue("tests.fakes.cooperative_job.work_until_preempted", 600, retry=Retry(max=2),
                        job_timeout=900)
    worker = subprocess.Popen([sys.executable, "-c", WORKER, redis_url, queue.name], cwd=REPO,
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while job.get_status(refresh=True) != JobStatus.STARTED and time.monotonic() < deadline:
            time.sleep(0.2)
        assert job.get_status() == JobStatus.STARTED
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)  # what `scalper stack down` sends, to the worker only
        worker.wait(STACK_STOP_TIMEOUT_S)  # raised TimeoutExpired on 426f8f1: RQ waited for the job's end
        stopped = time.monotonic() - started
        assert stopped < STACK_STOP_TIMEOUT_S / 2, f"{stopped:.1f}s"
        job.refresh()
        assert job.meta.get("checkpointed") is True
        assert job.get_status() in (JobStatus.QUEUED, JobStatus.SCHEDULED)  # given back, to resume
        assert job.retries_left == 1
    finally:
        if worker.poll() is None:
            worker.kill()
        queue.empty()
        queue.delete(delete_jobs=True)


class PreemptAfterFirstCheckpoint:
    """The flag a stopping worker sets, seen after the first checkpoint."""

    def __init__(self, status: Status) -> None:
        self.status = status

    def is_set(self) -> bool:
        return self.preempted()

    def preempted(self) -> bool:
        return bool(self.status.meta.get("diagnostics"))


def test_a_preempted_training_run_checkpoints_says_so_and_the_next_attempt_resumes(
        migrated_database_url: str, tmp_path: Path) -> None:
    status = Status()
    with pytest.raises(JobPreempted):
        _run(migrated_database_url, tmp_path, status, PreemptAfterFirstCheckpoint(status))
    assert status.meta["state"] == JobState.QUEUED.value
    assert any("worker stopped at step" in w and "re-queued" in w for w in status.meta["warnings"])
    checkpoints = sorted((tmp_path / "jobs" / "job-1" / "checkpoints").glob("step_*.zip"))
    assert checkpoints, "no checkpoint to resume from"

    class Never:
        def is_set(self) -> bool:
            return False

    finished = _run(migrated_database_url, tmp_path, Status(), Never())
    assert finished.state is JobState.FINISHED and finished.steps == CONFIG.total_timesteps
