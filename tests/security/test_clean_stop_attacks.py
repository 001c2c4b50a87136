"""Issue #15 item 9: on SIGTERM a busy trainer worker asks its training job to stop at a checkpoint
(the preempt flag, ``HeartbeatWorker``) instead of waiting for the job's end; the run checkpoints, says
so in its status and gives the job back to RQ's retry, and the next attempt resumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalper_shared.runtime.rq_jobs import JobPreempted
from scalper_shared.schema.training import JobState
from tests.integration.test_training_run import CONFIG, Status, _run

pytestmark = pytest.mark.integration


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
