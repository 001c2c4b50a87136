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
to end: :class:`HeartbeatWorker` sets the job's preempt flag (:func:`preempt_flag_key`); a cooperative
job (training, a study trial) checkpoints, says so in its status and raises :class:`JobPreempted`. A job
that has not stopped after ``preempt_grace_s`` (an evaluation, a study's finalise step: they restart from
the beginning, nothing is lost) has its work-horse killed, and its failure callback hears
:class:`WorkerStopped` (:func:`note_evaluation_interrupted` puts the evaluation's row back to
``queued``; :func:`note_abandoned`, also the fallback of a job without a callback, writes the warning). Either way the job is re-queued without spending one of
its own retries (a shutdown is not the job's fault) and the worker exits within seconds; the next worker
resumes or restarts it.

Failure callbacks also run in the policy service's sweep thread, so the registry runs them under RQ's
thread-safe ``TimerDeathPenalty`` (the default one installs a signal handler: "signal only works in
main thread", and the warning was never written).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

from rq import Queue, Worker
from rq.callbacks import execute_failure_callback
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.timeouts import TimerDeathPenalty

logger = logging.getLogger(__name__)

PREEMPT_FLAG_TTL_S = 3600
PREEMPT_GRACE_S = 10.0
"""How long a stopping worker lets its running job reach a checkpoint before killing its work-horse
(well inside the stack's 20 s stop timeout)."""
HEARTBEAT_INTERVALS = 3
"""A running job's heartbeat deadline, in monitoring intervals after its last beat."""


def preempt_flag_key(job_id: str) -> str:
    """Redis key a stopping worker sets to ask its running job to checkpoint and give the job back."""
    return f"scalper:jobs:preempt:{job_id}"


class JobPreempted(RuntimeError):
    """Raised by a job that stopped at a checkpoint because its worker is shutting down: RQ's ``Retry``
    re-queues it (the failure is not the job's fault)."""


class WorkerStopped(RuntimeError):
    """What a job's failure callback hears when its worker, asked to stop, killed the job's work-horse
    after the grace period: the job is re-queued (the failure is not the job's fault)."""


class HeartbeatWorker(Worker):
    """An RQ worker whose running job counts as abandoned ``HEARTBEAT_INTERVALS`` monitoring intervals
    after its last heartbeat (RQ's default adds a fixed minute), and which on SIGTERM asks its running
    job to stop at a checkpoint (the preempt flag) instead of waiting for it to end, kills it after
    ``preempt_grace_s`` if it has not, and re-queues it either way."""

    def __init__(self, *args: Any, preempt_grace_s: float = PREEMPT_GRACE_S, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(*args, **kwargs)
        self.preempt_grace_s = preempt_grace_s
        self._preempted_job_id: str | None = None  # the job this worker's shutdown stopped
        self._killed_job_id: str | None = None  # ... by killing its work-horse

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
        if self.horse_pid:
            # Not from the signal handler itself: it may have interrupted this thread inside the Redis
            # connection pool's (non-reentrant) lock.
            threading.Thread(target=self._preempt, args=(self.horse_pid,), name="preempt", daemon=True).start()

    def _preempt(self, horse_pid: int) -> None:
        job_id = self.get_current_job_id()
        if not job_id:
            return
        self._preempted_job_id = job_id
        self.connection.set(preempt_flag_key(job_id), "1", ex=PREEMPT_FLAG_TTL_S)
        logger.warning("worker %s stopping: job %s asked to checkpoint and re-queue", self.name, job_id)
        deadline = time.monotonic() + self.preempt_grace_s
        while self.horse_pid == horse_pid and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.horse_pid == horse_pid:
            logger.warning("worker %s stopping: job %s still running after %.0f s: killing it to re-queue it",
                           self.name, job_id, self.preempt_grace_s)
            self._killed_job_id = job_id
            self.kill_horse(signal.SIGKILL)

    def handle_exception(self, job: Job, *exc_info: Any) -> None:  # noqa: ANN401
        """In the work-horse, before ``handle_job_failure``: a job that stopped for the shutdown."""
        if exc_info and isinstance(exc_info[0], type) and issubclass(exc_info[0], JobPreempted):
            self._preempted_job_id = job.id
        super().handle_exception(job, *exc_info)

    def handle_job_failure(self, job: Job, queue: Queue, started_job_registry: Any = None,  # noqa: ANN401
                           exc_string: str = "", execution: Any = None) -> None:  # noqa: ANN401
        """A job this worker's shutdown stopped is re-queued without spending one of its retries."""
        if job.id in (self._preempted_job_id, self._killed_job_id):
            job.get_meta(refresh=True)  # the job's own last status, not the one it was dequeued with
            job.retries_left = (job.retries_left or 0) + 1
            if job.id == self._killed_job_id:
                stopped = WorkerStopped(f"worker {self.name} stopped; the job was killed after "
                                        f"{self.preempt_grace_s:.0f} s and re-queued")
                try:  # the job's own callback says so in its status; a job without one gets the warning
                    if job.failure_callback is not None:
                        execute_failure_callback(job, self.death_penalty_class, WorkerStopped, stopped, None)
                    else:
                        note_abandoned(job, self.connection, WorkerStopped, stopped, None)
                except Exception:  # noqa: BLE001 - the job is re-queued all the same
                    logger.exception("job %s: failure callback raised", job.id)
            self._preempted_job_id = self._killed_job_id = None
        super().handle_job_failure(job, queue, started_job_registry=started_job_registry, exc_string=exc_string,
                                   execution=execution)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        interval = self.job_monitoring_interval
        if job.timeout and job.timeout > 0:
            interval = int(max(1, min(job.timeout - working_time, interval)))
        return int(interval) + (HEARTBEAT_INTERVALS - 1) * self.job_monitoring_interval


def interruption(job: Job, exc_type: type) -> str | None:
    """What happened to a job whose worker went away (died, or stopped and killed it), and what comes
    next; None for any other failure (the job's own)."""
    if exc_type is AbandonedJobError:
        what = "its worker died (no heartbeat)"
    elif exc_type is WorkerStopped:
        what = "its worker stopped (shutdown) before the job reached a checkpoint"
    else:
        return None
    then = "re-queued" if (job.retries_left or 0) > 0 else "no retries left: failed"
    return f"{datetime.now(UTC).isoformat(timespec='seconds')}: {what}; {then}"


def note_abandoned(job: Job, connection: Any, exc_type: type, value: BaseException, traceback: Any) -> None:  # noqa: ANN401
    """Failure callback: record in the job's meta that its worker died or stopped and whether it was re-queued."""
    warning = interruption(job, exc_type)
    if warning is None:
        return
    job.meta["warnings"] = [*job.meta.get("warnings", []), warning]
    job.meta["state"] = "queued" if (job.retries_left or 0) > 0 else "failed"
    job.save_meta()
    logger.warning("job %s: %s", job.id, warning)


def note_evaluation_interrupted(job: Job, connection: Any, exc_type: type, value: BaseException,  # noqa: ANN401
                                traceback: Any) -> None:  # noqa: ANN401
    """Failure callback of an evaluation job (args: evaluation id, request): its row says the worker went
    away and that it was re-queued (it restarts from the beginning) or failed."""
    warning = interruption(job, exc_type)
    if warning is None:
        return  # the job's own failure: it wrote the row itself
    from scalper_shared.db import make_engine
    from scalper_shared.db.evaluations import fail_evaluation, requeue_evaluation
    from scalper_shared.settings import ServiceSettings, load_settings

    evaluation_id = str(job.args[0])
    engine = make_engine(load_settings(ServiceSettings).database_url)
    try:
        if (job.retries_left or 0) > 0:
            requeue_evaluation(engine, evaluation_id, warning)
        else:
            fail_evaluation(engine, evaluation_id, warning)
    finally:
        engine.dispose()
    logger.warning("evaluation %s: %s", evaluation_id, warning)


def sweep_abandoned(queues: list[Queue]) -> int:
    """Hand every job whose heartbeat expired to its retry (or fail it); returns how many were found."""
    found = 0
    for queue in queues:
        # Timer, not signal: the callbacks run here, and this runs in the policy service's sweep thread.
        registry = StartedJobRegistry(queue=queue, death_penalty_class=TimerDeathPenalty)
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
