"""The trainer worker's metrics read RQ at scrape time: jobs by queue and state, a running job's
steps/s and its last checkpoint's diagnostics (every numeric field, nested ones as parent.key)."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from rq import Callback, Queue, Retry
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from scalper_shared.runtime.rq_jobs import note_abandoned, sweep_abandoned
from scalper_shared.schema.training import TRAINING_QUEUE
from scalper_trainer.metrics import TrainerCollector

pytestmark = pytest.mark.integration

DIAGNOSTICS = {"step": 5000, "hold_share": 0.81, "entropy": 0.42, "collapse_warning": True, "seed_criteria": {"a": False},
               "ppo": {"approx_kl": 0.013, "updates": 4, "value_loss": None}, "reward_terms": {"pnl": -0.5}}


def scrape(collector: TrainerCollector) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(collector)
    samples = {}
    for family in registry.collect():
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    assert generate_latest(registry)  # the exposition renders
    return samples


def test_jobs_by_state_steps_per_second_and_last_checkpoint_diagnostics(redis_url: str, stream_prefix: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(stream_prefix + TRAINING_QUEUE, connection=connection, serializer=JSONSerializer)
    queue.enqueue("scalper_trainer.jobs.run_training_job", {"waiting": True}, job_id="waiting-job")
    running = Job.create("scalper_trainer.jobs.run_training_job", args=({},), id="running-job", connection=connection,
                         serializer=JSONSerializer,
                         meta={"progress": {"steps": 5000, "steps_per_second": 1234.5}, "diagnostics": [
                             {"step": 1000, "hold_share": 0.5}, DIAGNOSTICS]})
    running.save()
    with connection.pipeline() as pipe:  # what a worker does when it starts a job
        execution = Execution.create(running, ttl=600, pipeline=pipe)
        StartedJobRegistry(queue=queue).add_execution(execution, pipeline=pipe, ttl=600)
        pipe.execute()

    samples = scrape(TrainerCollector(connection, stream_prefix))
    assert samples["scalper_trainer_jobs{queue=training,state=queued}"] == 1
    assert samples["scalper_trainer_jobs{queue=training,state=running}"] == 1
    assert samples["scalper_trainer_jobs{queue=evaluation,state=failed}"] == 0
    assert samples["scalper_trainer_job_steps_per_second{job_id=running-job}"] == 1234.5
    assert samples["scalper_trainer_job_steps{job_id=running-job}"] == 5000
    assert samples["scalper_trainer_last_checkpoint_step{job_id=running-job}"] == 5000
    diag = {key.split("field=")[1].split(",")[0]: value for key, value in samples.items()
            if key.startswith("scalper_trainer_last_checkpoint_diagnostic")}
    assert diag == {"hold_share": 0.81, "entropy": 0.42, "collapse_warning": 1.0, "seed_criteria.a": 0.0,
                    "ppo.approx_kl": 0.013, "ppo.updates": 4.0, "reward_terms.pnl": -0.5}


def test_a_scrape_without_redis_answers_with_empty_families() -> None:
    samples = scrape(TrainerCollector(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)))
    assert samples == {}


def test_a_scrape_leaves_a_dead_workers_job_to_the_sweep_that_says_so(redis_url: str, stream_prefix: str) -> None:
    """A scrape runs in an HTTP thread: it must not run RQ's registry cleanup (which re-queued the job there
    while its failure callback failed on "signal only works in main thread", so no warning was written)."""
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(stream_prefix + TRAINING_QUEUE, connection=connection, serializer=JSONSerializer)
    job = queue.enqueue("time.sleep", 1, job_id="dead-job", retry=Retry(max=1), on_failure=Callback(note_abandoned))
    queue.remove(job)
    job.set_status(JobStatus.STARTED)
    with connection.pipeline() as pipe:  # started by a worker whose heartbeat expired 10 s ago
        execution = Execution.create(job, ttl=600, pipeline=pipe)
        pipe.zadd(StartedJobRegistry(queue=queue).key, {execution.composite_key: time.time() - 10})
        pipe.execute()
    assert StartedJobRegistry(queue=queue).get_expired_job_ids()
    scraped: dict[str, float] = {}
    thread = threading.Thread(target=lambda: scraped.update(scrape(TrainerCollector(connection, stream_prefix))))
    thread.start()
    thread.join(30)
    assert scraped["scalper_trainer_jobs{queue=training,state=running}"] == 1
    assert job.get_status(refresh=True) == JobStatus.STARTED  # left to the sweep
    assert sweep_abandoned([queue]) == 1
    job.refresh()
    assert job.get_status() == JobStatus.QUEUED and any("worker died" in w for w in job.meta["warnings"])
