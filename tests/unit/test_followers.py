"""The CLI's followers read each poll into the API's typed view, from queued (no progress yet) to the end."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import httpx
import pytest
from rich.console import Console

from scalper_cli.api_client import ApiError
from scalper_cli.followers import FollowTimeout, follow_evaluation, follow_training
from scalper_shared.schema.evaluation import EvaluationStatus
from scalper_shared.schema.training import JobState

NOW = datetime(2025, 8, 18, tzinfo=UTC).isoformat()


def client(bodies: list[dict], status: int = 200) -> httpx.Client:
    answers = iter(bodies)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=next(answers))

    return httpx.Client(base_url="http://api", transport=httpx.MockTransport(handler))


def job(state: str, progress: dict | None = None, model_id: str | None = None) -> dict:
    return {"id": "j1", "state": state, "rq_status": state, "progress": progress, "model_id": model_id}


def test_a_training_job_is_followed_from_queued_without_progress_to_its_model() -> None:
    http = client([job("queued"), job("running", {"steps": 512, "total_steps": 1024, "steps_per_second": 900.0}),
                   job("finished", {"steps": 1024, "total_steps": 1024}, model_id="model-1")])
    view = follow_training(http, "j1", Console(file=io.StringIO()), poll_s=0)
    assert view.state is JobState.FINISHED and view.model_id == "model-1"


def test_following_stops_at_the_deadline_and_on_an_api_error() -> None:
    with pytest.raises(FollowTimeout, match="still running"):
        follow_training(client([job("running")] * 3), "j1", Console(file=io.StringIO()), poll_s=0, timeout_s=0)
    with pytest.raises(ApiError, match="GET /v1/training-jobs/j1 -> 404"):
        follow_training(client([{"detail": "no such job"}], status=404), "j1", Console(file=io.StringIO()), poll_s=0)


def test_an_evaluation_is_followed_to_its_end() -> None:
    row = {"id": "e1", "model_id": "m", "request": {}, "stage": "baselines", "created_at": NOW, "updated_at": NOW}
    http = client([{**row, "status": "running", "progress": 0.5}, {**row, "status": "failed", "progress": 1.0,
                                                                   "error": "boom"}])
    view = follow_evaluation(http, "e1", Console(file=io.StringIO()), poll_s=0)
    assert view.status is EvaluationStatus.FAILED and view.error == "boom"
