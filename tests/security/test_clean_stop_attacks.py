"""Issue #15 item 9: on SIGTERM a busy trainer worker asks its training job to stop at a checkpoint
(the preempt flag, ``HeartbeatWorker``) instead of waiting for the job's end; the run checkpoints, says
so in its status and gives the job back to RQ's retry, and the next attempt resumes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from rq import Queue, Retry, Worker
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from scalper_shared.runtime.rq_jobs import JobPreempted
from scalper_shared.schema.training import JobState
from tests.integration.test_training_run import CONFIG, Status, _run
from tests.waiting import wait_until

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


def start_worker(redis_url: str, queue: Queue) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, redis_url, queue.name], cwd=REPO,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_seconds(worker: subprocess.Popen) -> float:
    """SIGTERM to the worker only (what `scalper stack down` sends); seconds until it exited."""
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    worker.wait(STACK_STOP_TIMEOUT_S)  # TimeoutExpired: the stack would have had to SIGKILL it
    return time.monotonic() - started


def test_an_idle_worker_exits_on_sigterm_at_once(redis_url: str, redis_client: redis.Redis,
                                                 stream_prefix: str) -> None:
    queue = Queue(stream_prefix + "training", connection=redis_client, serializer=JSONSerializer)
    workers = [start_worker(redis_url, queue) for _ in range(4)]
    try:
        wait_until(lambda: sum(w.get_state() == "idle" for w in Worker.all(queue=queue)) == 4, 30,
                   "four workers idle on the queue", poll_s=0.2)
        seconds = [stop_seconds(w) for w in workers]
        assert max(seconds) < 5, seconds  # RQ's own worker took ~25 s (a 60 s pubsub wait)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()


def test_a_busy_worker_exits_on_sigterm_and_its_job_is_requeued(
        redis_url: str, redis_client: redis.Redis, stream_prefix: str) -> None:
    queue = Queue(stream_prefix + "training", connection=redis_client, serializer=JSONSerializer)
    job = queue.enqueue("tests.fakes.cooperative_job.work_until_preempted", 600, retry=Retry(max=2),
                        job_timeout=900)
    worker = start_worker(redis_url, queue)
    try:
        wait_until(lambda: job.get_status(refresh=True) == JobStatus.STARTED, 30, "the job to start", poll_s=0.2)
        assert stop_seconds(worker) < STACK_STOP_TIMEOUT_S / 2
        job.refresh()
        assert job.meta.get("checkpointed") is True
        assert job.get_status() in (JobStatus.QUEUED, JobStatus.SCHEDULED) and job.retries_left == 1
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
