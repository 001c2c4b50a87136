"""RQ jobs whose worker died: noticed within about a minute, re-queued, and said so in their status.

RQ keeps a running job in the queue's ``StartedJobRegistry`` with a heartbeat deadline; when the worker
dies (SIGKILL, lost host) the deadline passes and ``StartedJobRegistry.cleanup`` hands the job to its
``Retry`` (re-queued) or fails it. Out of the box the deadline is the monitoring interval + 60 s and
the cleanup runs in worker maintenance every 10 minutes, so a dead worker's job showed ``running``
with frozen progress for 105 s to 7 minutes. Here :class:`HeartbeatWorker` shortens the deadline to
three monitoring intervals, :func:`sweep_abandoned` runs the cleanup (the policy service does every
``sweep_s``), and :func:`note_abandoned` (the jobs' failure callback) writes a warning into the job's
meta, which the job status shows.

A worker asked to stop (SIGTERM: ``scalper stack down``, a deploy) does not wait for its running job
to end: :class:`HeartbeatWorker` sets the job's preempt flag (:func:`preempt_flag_key`), a cooperative
job (training) checkpoints and raises :class:`JobPreempted`, RQ's ``Retry`` re-queues it, and the worker
exits within seconds; the next worker resumes the job from that checkpoint.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from rq import Queue, Worker
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.registry import StartedJobRegistry

logger = logging.getLogger(__name__)

PREEMPT_FLAG_TTL_S = 3600
HEARTBEAT_INTERVALS = 3
"""A running job's heartbeat deadline, in monitoring intervals after its last beat."""


def preempt_flag_key(job_id: str) -> str:
    """Redis key a stopping worker sets to ask its running job to checkpoint and give the job back."""
    return f"scalper:jobs:preempt:{job_id}"


class JobPreempted(RuntimeError):
    """Raised by a job that stopped at a checkpoint because its worker is shutting down: RQ's ``Retry``
    re-queues it (the failure is not the job's fault)."""


class HeartbeatWorker(Worker):
    """An RQ worker whose running job counts as abandoned ``HEARTBEAT_INTERVALS`` monitoring intervals
    after its last heartbeat (RQ's default adds a fixed minute), and which on SIGTERM asks its running
    job to stop at a checkpoint (the preempt flag) instead of waiting for it to end."""

    def subscribe(self) -> None:
        """RQ's command channel, read in 1 s waits instead of 60 s: unsubscribing at shutdown waits for
        the reader thread's current wait, which made a stopping worker hang for up to a minute."""
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]  # RQ declares it None
            sleep_time=1, daemon=True, exception_handler=self._pubsub_exception_handler)

    def handle_warm_shutdown_request(self) -> None:
        super().handle_warm_shutdown_request()
        job_id = self.get_current_job_id()
        if job_id:
            # Not from the signal handler itself: it may have interrupted this thread inside the Redis
            # connection pool's (non-reentrant) lock.
            threading.Thread(target=self._preempt, args=(job_id,), name="preempt", daemon=True).start()

    def _preempt(self, job_id: str) -> None:
        self.connection.set(preempt_flag_key(job_id), "1", ex=PREEMPT_FLAG_TTL_S)
        logger.warning("worker %s stopping: job %s asked to checkpoint and re-queue", self.name, job_id)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        interval = self.job_monitoring_interval
        if job.timeout and job.timeout > 0:
            interval = int(max(1, min(job.timeout - working_time, interval)))
        return int(interval) + (HEARTBEAT_INTERVALS - 1) * self.job_monitoring_interval


def note_abandoned(job: Job, connection: Any, exc_type: type, value: BaseException, traceback: Any) -> None:  # noqa: ANN401
    """Failure callback: record in the job's meta that its worker died and whether it was re-queued."""
    if exc_type is not AbandonedJobError:
        return
    retries = job.retries_left or 0
    then = "re-queued to resume from its last checkpoint" if retries > 0 else "no retries left: failed"
    warnings = [*job.meta.get("warnings", []),
                f"{datetime.now(UTC).isoformat(timespec='seconds')}: its worker died (no heartbeat); {then}"]
    job.meta["warnings"] = warnings
    job.meta["state"] = "queued" if retries > 0 else "failed"
    job.save_meta()
    logger.warning("job %s: its worker died; %s", job.id, then)


def sweep_abandoned(queues: list[Queue]) -> int:
    """Hand every job whose heartbeat expired to its retry (or fail it); returns how many were found."""
    found = 0
    for queue in queues:
        registry = StartedJobRegistry(queue=queue)
        found += len(registry.get_expired_job_ids())
        registry.cleanup()
    return found


def run_sweeper(queues: list[Queue], sweep_s: float, stop: threading.Event) -> None:
    """``sweep_abandoned`` every ``sweep_s`` until ``stop`` (a ThreadWorker target)."""
    while not stop.wait(sweep_s):
        try:
            if found := sweep_abandoned(queues):
                logger.warning("%d job(s) of dead workers re-queued or failed", found)
        except Exception as exc:  # noqa: BLE001 - the next sweep retries
            logger.warning("abandoned-job sweep failed: %s", exc)
