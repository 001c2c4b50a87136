"""Issue #15 item 9: on SIGTERM a busy trainer worker asks its training job to stop at a checkpoint
(the preempt flag, ``HeartbeatWorker``) instead of waiting for the job's end; the run checkpoints, says
so in its status and is re-queued (without spending a retry), and the next attempt resumes. A job that
does not stop (an evaluation) is killed after the grace period and re-queued, its status saying so; a
study trial stopped this way is not failed but goes on in the next attempt."""

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
from optuna.trial import TrialState
from rq import Callback, Queue, Retry, Worker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from scalper_shared import studies
from scalper_shared.db import make_engine
from scalper_shared.db.evaluations import create_evaluation, load_evaluation
from scalper_shared.runtime.rq_jobs import (
    JobPreempted,
    note_evaluation_interrupted,
    run_sweeper,
)
from scalper_shared.schema.evaluation import EvaluationRequest
from scalper_shared.schema.training import JobState
from scalper_trainer.local import LocalStatus
from scalper_trainer.studies.trial import run_trial
from tests.integration.test_study_trials import _ctx, _request
from tests.integration.test_study_trials import _small_rollouts as _small_rollouts  # noqa: F401  (fixture)
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
HeartbeatWorker([queue], connection=connection, serializer=JSONSerializer, job_monitoring_interval=2,
                preempt_grace_s=float(sys.argv[3])).work()
"""
STACK_STOP_TIMEOUT_S = 20.0


def start_worker(redis_url: str, queue: Queue, *, grace_s: float = 10.0, database_url: str = "") -> subprocess.Popen:
    env = {**os.environ, **({"DATABASE_URL": database_url} if database_url else {})}
    return subprocess.Popen([sys.executable, "-c", WORKER, redis_url, queue.name, str(grace_s)], cwd=REPO,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


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
        assert job.get_status() == JobStatus.QUEUED
        assert job.retries_left == 2  # a shutdown is not the job's fault: no retry spent
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


def test_a_busy_worker_kills_a_job_that_ignores_the_stop_after_the_grace_and_requeues_it(
        redis_url: str, redis_client: redis.Redis, stream_prefix: str) -> None:
    queue = Queue(stream_prefix + "training", connection=redis_client, serializer=JSONSerializer)
    job = queue.enqueue("time.sleep", 600, job_timeout=900)  # no retries, no callback: a study's finalise job
    worker = start_worker(redis_url, queue, grace_s=2)
    try:
        wait_until(lambda: job.get_status(refresh=True) == JobStatus.STARTED, 30, "the job to start", poll_s=0.2)
        assert 2 <= stop_seconds(worker) < STACK_STOP_TIMEOUT_S / 2  # the grace, then the kill
        job = Job.fetch(job.id, connection=redis_client, serializer=JSONSerializer)
        assert job.get_status() == JobStatus.QUEUED
        assert job.meta["state"] == "queued"
        assert any("worker stopped (shutdown)" in w and "re-queued" in w for w in job.meta["warnings"])
    finally:
        if worker.poll() is None:
            worker.kill()
        queue.empty()
        queue.delete(delete_jobs=True)


def test_an_evaluation_whose_worker_stops_is_requeued_and_its_row_says_so(
        redis_url: str, redis_client: redis.Redis, stream_prefix: str, migrated_database_url: str) -> None:
    engine = make_engine(migrated_database_url)
    create_evaluation(engine, "eval-stopped", EvaluationRequest(model_id="m", start=date(2025, 7, 7),
                                                                end=date(2025, 7, 8)))
    queue = Queue(stream_prefix + "evaluation", connection=redis_client, serializer=JSONSerializer)
    job = queue.enqueue("tests.fakes.cooperative_job.evaluate_without_checkpoints", "eval-stopped", 600,
                        job_id="eval-stopped", job_timeout=900, on_failure=Callback(note_evaluation_interrupted))
    worker = start_worker(redis_url, queue, grace_s=2, database_url=migrated_database_url)
    try:
        wait_until(lambda: (load_evaluation(engine, "eval-stopped") or {}).get("status") == "running", 30,
                   "the evaluation to run", poll_s=0.2)
        assert stop_seconds(worker) < STACK_STOP_TIMEOUT_S / 2
        assert job.get_status(refresh=True) == JobStatus.QUEUED
        row = load_evaluation(engine, "eval-stopped")
        assert row is not None and row["status"] == "queued" and row["progress"] == 0.0
        assert "worker stopped (shutdown)" in row["stage"] and "re-queued" in row["stage"]
    finally:
        if worker.poll() is None:
            worker.kill()
        queue.empty()
        queue.delete(delete_jobs=True)
        engine.dispose()


def test_the_evaluations_api_enqueues_jobs_whose_row_hears_of_a_stopped_or_dead_worker(
        redis_client: redis.Redis, stream_prefix: str, migrated_database_url: str) -> None:
    from scalper_policy.evaluations_api import EvaluationJobs

    engine = make_engine(migrated_database_url)
    jobs = EvaluationJobs(redis_client, engine, lambda: "wired", prefix=stream_prefix)
    evaluation_id = jobs.submit(EvaluationRequest(model_id="m", start=date(2025, 7, 7), end=date(2025, 7, 8)))
    job = Job.fetch(evaluation_id, connection=redis_client, serializer=JSONSerializer)
    assert job.failure_callback is note_evaluation_interrupted
    jobs.queue.delete(delete_jobs=True)
    engine.dispose()


def test_an_evaluation_whose_worker_died_is_marked_failed_by_the_sweep_thread(
        redis_url: str, redis_client: redis.Redis, stream_prefix: str, migrated_database_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", migrated_database_url)  # the sweeping (policy) process's settings
    engine = make_engine(migrated_database_url)
    create_evaluation(engine, "eval-dead", EvaluationRequest(model_id="m", start=date(2025, 7, 7),
                                                             end=date(2025, 7, 8)))
    queue = Queue(stream_prefix + "evaluation", connection=redis_client, serializer=JSONSerializer)
    queue.enqueue("tests.fakes.cooperative_job.evaluate_without_checkpoints", "eval-dead", 600, job_id="eval-dead",
                  job_timeout=900, on_failure=Callback(note_evaluation_interrupted))
    worker = start_worker(redis_url, queue, database_url=migrated_database_url)
    stop = threading.Event()
    sweeper = threading.Thread(target=run_sweeper, args=([queue], 0.5, stop), daemon=True)
    try:
        wait_until(lambda: (load_evaluation(engine, "eval-dead") or {}).get("status") == "running", 30,
                   "the evaluation to run", poll_s=0.2)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        sweeper.start()
        wait_until(lambda: (load_evaluation(engine, "eval-dead") or {}).get("status") == "failed", 30,
                   lambda: f"the row to say so (still {load_evaluation(engine, 'eval-dead')})", poll_s=0.2)
        row = load_evaluation(engine, "eval-dead")
        assert row is not None and "its worker died" in row["error"]  # was "running" forever
    finally:
        stop.set()
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        queue.empty()
        queue.delete(delete_jobs=True)
        engine.dispose()


class PreemptedAtFirstCheckpoint:
    """A study trial's cancel flag as a stopping worker sets it, seen once the first checkpoint is stored."""

    def __init__(self, status: LocalStatus) -> None:
        self.status = status

    def is_set(self) -> bool:
        return self.preempted()

    def preempted(self) -> bool:
        return bool(self.status.meta.get("diagnostics"))


def test_a_study_trial_stopped_by_its_worker_is_not_failed_and_goes_on(migrated_database_url: str,
                                                                        tmp_path: Path) -> None:
    storage = studies.open_storage(migrated_database_url)
    studies.create(storage, _request("stopped"))
    ctx = _ctx(migrated_database_url, tmp_path, "job-s")
    ctx.cancel = PreemptedAtFirstCheckpoint(ctx.status)  # type: ignore[assignment]
    ctx.retries_left = lambda: 0  # even on its last attempt
    with pytest.raises(JobPreempted):
        run_trial("stopped", 0, ctx)
    (trial,) = studies.load(storage, "stopped").get_trials()
    assert trial.state is TrialState.RUNNING  # was FAIL: "fold 0 ended cancelled"
    assert any("re-queued to resume" in w for w in ctx.status.meta["warnings"])
    assert list((tmp_path / "artifacts" / "jobs").glob("job-s*/checkpoints/step_*.zip"))
