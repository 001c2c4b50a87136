"""Prometheus metrics of the trainer worker, read from Redis when ``/metrics`` is scraped.

RQ runs every job in a forked work-horse, so counters set inside a job would die with it. The
collector therefore asks RQ at scrape time: jobs by queue and state (its registries), and for the
running training jobs (and the last finished one) the progress and the last checkpoint's
diagnostics the job saved in its meta. Every numeric field of :class:`Diagnostics` (nested
statistics by ``parent.key``) is exported under ``field``, so new fields appear without a change here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from rq import Queue
from rq.job import Job
from rq.registry import (
    BaseRegistry,
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.serializers import JSONSerializer

from scalper_shared.schema.evaluation import EVALUATION_QUEUE
from scalper_shared.schema.training import TRAINING_QUEUE

logger = logging.getLogger(__name__)

REGISTRIES: dict[str, type[BaseRegistry]] = {
    "running": StartedJobRegistry, "finished": FinishedJobRegistry, "failed": FailedJobRegistry,
    "deferred": DeferredJobRegistry, "scheduled": ScheduledJobRegistry, "canceled": CanceledJobRegistry}


def diagnostic_values(diagnostics: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    """(field, value) of every number or flag of one diagnostics record; mappings as ``field.key``."""
    for name, value in diagnostics.items():
        if isinstance(value, bool | int | float):
            yield name, float(value)
        elif isinstance(value, Mapping):
            for key, inner in value.items():
                if isinstance(inner, bool | int | float):
                    yield f"{name}.{key}", float(inner)


class TrainerCollector(Collector):
    """``scalper_trainer_*`` gauges from RQ's registries and the training jobs' meta."""

    def __init__(self, connection: redis.Redis | None, prefix: str = "") -> None:
        self.connection = connection
        self.prefix = prefix

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return self._families()

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily("scalper_trainer_jobs", "Jobs of the trainer's queues by state", labels=["queue", "state"]),
            GaugeMetricFamily("scalper_trainer_job_steps", "Environment steps done by a training job", labels=["job_id"]),
            GaugeMetricFamily("scalper_trainer_job_steps_per_second", "Training speed of a job (since it started)",
                              labels=["job_id"]),
            GaugeMetricFamily("scalper_trainer_last_checkpoint_step", "Step of a job's last checkpoint with diagnostics",
                              labels=["job_id"]),
            GaugeMetricFamily("scalper_trainer_last_checkpoint_diagnostic",
                              "Every numeric diagnostics field of a job's last checkpoint (validation set)",
                              labels=["job_id", "field"]),
        ]

    def collect(self) -> Iterable[GaugeMetricFamily]:
        families = self._families()
        if self.connection is None:
            return families
        try:
            self._fill(self.connection, *families)
        except redis.RedisError as exc:  # a scrape reports what it can; /readyz says Redis is down
            logger.warning("trainer metrics: Redis unavailable (%s)", exc)
            return self._families()
        return families

    def _fill(self, connection: redis.Redis, jobs: GaugeMetricFamily, steps: GaugeMetricFamily, rate: GaugeMetricFamily,
              checkpoint: GaugeMetricFamily, diagnostic: GaugeMetricFamily) -> None:
        for name in (TRAINING_QUEUE, EVALUATION_QUEUE):
            queue = Queue(self.prefix + name, connection=connection, serializer=JSONSerializer)
            jobs.add_metric([name, "queued"], queue.count)
            for state, registry in REGISTRIES.items():
                # No cleanup: a scrape (an HTTP thread) must not run abandoned jobs' failure callbacks;
                # the policy service's sweep does (``rq_jobs.sweep_abandoned``).
                jobs.add_metric([name, state], registry(queue=queue).get_job_count(cleanup=False))
        training = Queue(self.prefix + TRAINING_QUEUE, connection=connection, serializer=JSONSerializer)
        job_ids = StartedJobRegistry(queue=training).get_job_ids(cleanup=False)
        job_ids += FinishedJobRegistry(queue=training).get_job_ids(cleanup=False)[-1:]
        for job in Job.fetch_many(job_ids, connection=connection, serializer=JSONSerializer):
            if job is None:
                continue
            meta = job.meta or {}
            progress = meta.get("progress") or {}
            if "steps" in progress:
                steps.add_metric([job.id], float(progress["steps"]))
                rate.add_metric([job.id], float(progress.get("steps_per_second") or 0.0))
            records = meta.get("diagnostics") or []
            if records:
                last = records[-1]
                checkpoint.add_metric([job.id], float(last.get("step", 0)))
                for field, value in diagnostic_values(last):
                    if field != "step":
                        diagnostic.add_metric([job.id, field], value)
