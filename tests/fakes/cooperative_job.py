"""A job that works until its worker asks it to stop (the preempt flag), as a training job does."""

from __future__ import annotations

import time

from rq import get_current_job

from scalper_shared.runtime.rq_jobs import JobPreempted, preempt_flag_key


def work_until_preempted(seconds: float) -> str:
    job = get_current_job()
    assert job is not None
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if job.connection.exists(preempt_flag_key(job.id)):
                job.meta["checkpointed"] = True
                job.save_meta()
                raise JobPreempted("worker stopping: checkpointed")
            time.sleep(0.1)
        return "done"
    finally:
        job.connection.delete(preempt_flag_key(job.id))  # served, as run_training_job does


def evaluate_without_checkpoints(evaluation_id: str, seconds: float) -> str:
    """An evaluation-like job that never looks at the preempt flag: it marks its row running, then works."""
    from scalper_shared.db import make_engine
    from scalper_shared.db.evaluations import set_progress
    from scalper_shared.settings import ServiceSettings, load_settings

    engine = make_engine(load_settings(ServiceSettings).database_url)
    try:
        set_progress(engine, evaluation_id, 0.1, "agent")
    finally:
        engine.dispose()
    time.sleep(seconds)
    return "done"
