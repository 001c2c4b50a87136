"""Following a training job or an evaluation on the policy API until it ends, with a progress bar.

One home for ``scalper train --wait``, ``scalper eval`` and ``scalper demo``: each poll is read into
the API's typed view (:class:`TrainingJobView`, :class:`EvaluationView`); an HTTP error ends it with
:class:`~scalper_cli.api_client.ApiError` (via ``checked``), a deadline with :class:`FollowTimeout`.
"""

from __future__ import annotations

import time

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from scalper_cli.api_client import checked
from scalper_shared.schema.evaluation import EvaluationStatus, EvaluationView
from scalper_shared.schema.training import JobState, TrainingJobView
from scalper_shared.schema.training import Progress as JobProgress

TERMINAL_STATES = (JobState.FINISHED, JobState.FAILED, JobState.CANCELLED)
TERMINAL_EVALUATION = (EvaluationStatus.FINISHED, EvaluationStatus.FAILED)


class FollowTimeout(RuntimeError):
    """The job did not end within the caller's deadline."""


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline


def follow_training(http: httpx.Client, job_id: str, console: Console, poll_s: float,
                    timeout_s: float | None = None) -> TrainingJobView:
    """Poll the training job until it ends; returns its last view."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(job_id, total=None, rate="")
        while True:
            view = TrainingJobView.model_validate(checked(http.get(f"/v1/training-jobs/{job_id}")))
            progress = view.progress or JobProgress()
            bar.update(task, completed=progress.steps, total=progress.total_steps or None,
                       description=f"{job_id} {view.state}", rate=f"{progress.steps_per_second:,.0f} steps/s")
            if view.state in TERMINAL_STATES:
                return view
            if _past(deadline):
                raise FollowTimeout(f"training job {job_id} still {view.state} after {timeout_s:.0f}s")
            time.sleep(poll_s)


def follow_evaluation(http: httpx.Client, evaluation_id: str, console: Console, poll_s: float,
                      timeout_s: float | None = None) -> EvaluationView:
    """Poll the evaluation until it ends; returns its last view."""
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn())
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(evaluation_id, total=1.0)
        while True:
            view = EvaluationView.model_validate(checked(http.get(f"/v1/evaluations/{evaluation_id}")))
            bar.update(task, completed=view.progress, description=f"{evaluation_id} {view.status}: {view.stage}")
            if view.status in TERMINAL_EVALUATION:
                return view
            if _past(deadline):
                raise FollowTimeout(f"evaluation {evaluation_id} still {view.status} after {timeout_s:.0f}s")
            time.sleep(poll_s)
