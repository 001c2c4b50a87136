"""``/v1/studies`` on the real policy app, Redis and PostgreSQL (no worker): creation stores the
study in Optuna's storage and queues one job per trial slot on ``training`` plus the finalise job,
deferred until every trial job ended; names are unique; bad requests are refused with the field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from scalper_shared.schema.studies import STUDY_FINALISE_JOB_FUNC, STUDY_TRIAL_JOB_FUNC
from scalper_shared.schema.training import TRAINING_QUEUE
from tests.integration.training_support import headers, policy_client, private_redis_server

pytestmark = pytest.mark.integration

BODY: dict[str, Any] = {"name": "lr-sweep", "trials": 3, "timesteps": 20_000, "symbols": ["SPY", "QQQ"],
                        "start": "2025-08-11", "end": "2025-09-19", "folds": 2}


@pytest.fixture
def api(tmp_path: Path, migrated_database_url: str) -> Iterator[tuple[TestClient, str]]:
    with private_redis_server(tmp_path) as redis_url, \
            policy_client(redis_url, migrated_database_url, tmp_path / "artifacts") as client:
        yield client, redis_url


def test_creating_a_study_queues_a_job_per_trial_and_a_finalise_job_after_them(
        api: tuple[TestClient, str]) -> None:
    client, redis_url = api
    posted = client.post("/v1/studies", json=BODY, headers=headers("trainer-key"))
    assert posted.status_code == 202, posted.text
    accepted = posted.json()
    assert posted.headers["Location"] == "/v1/studies/lr-sweep" == accepted["status_url"]
    assert len(set(accepted["trial_jobs"])) == 3

    connection = redis.Redis.from_url(redis_url)
    queue = Queue(TRAINING_QUEUE, connection=connection, serializer=JSONSerializer)
    assert queue.job_ids == accepted["trial_jobs"]
    for slot, job_id in enumerate(accepted["trial_jobs"]):
        job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
        assert job.func_name == STUDY_TRIAL_JOB_FUNC and job.args == ["lr-sweep", slot]
        assert job.retries_left == 3
    final = Job.fetch(accepted["finalise_job"], connection=connection, serializer=JSONSerializer)
    assert final.func_name == STUDY_FINALISE_JOB_FUNC and final.get_status() == JobStatus.DEFERRED
    assert set(final._dependency_ids) == set(accepted["trial_jobs"]) and final.allow_dependency_failures

    view = client.get("/v1/studies/lr-sweep", headers=headers("reader-key")).json()
    assert view["states"] == {"queued": 3} and view["trials"] == [] and not view["finished"]
    assert view["best"] is None and view["direction"] == "maximize"
    assert {p["name"] for p in view["request"]["space"]["params"]} >= {"ppo.learning_rate", "reward.hold_tax"}
    listed = client.get("/v1/studies", headers=headers("reader-key")).json()
    assert [s["name"] for s in listed] == ["lr-sweep"]
    assert client.get("/v1/studies/lr-sweep/report", headers=headers("reader-key")).status_code == 409
    training = client.get("/v1/training-jobs", headers=headers("reader-key")).json()
    assert {j["id"] for j in training} == set(accepted["trial_jobs"])  # visible as training jobs too


def test_a_taken_name_is_a_conflict_and_queues_nothing(api: tuple[TestClient, str]) -> None:
    client, redis_url = api
    assert client.post("/v1/studies", json=BODY, headers=headers("trainer-key")).status_code == 202
    again = client.post("/v1/studies", json={**BODY, "trials": 9}, headers=headers("trainer-key"))
    assert again.status_code == 409 and "exists already" in again.text
    assert Queue(TRAINING_QUEUE, connection=redis.Redis.from_url(redis_url)).count == 3


@pytest.mark.parametrize(("change", "field"), [
    ({"name": "no spaces"}, "name"),
    ({"folds": 2, "start": "2025-08-11", "end": "2025-08-12"}, "too few"),
    ({"space": {"params": [{"name": "ppo.warp_drive", "type": "float", "low": 0, "high": 1}]}}, "ppo.warp_drive"),
    ({"space": {"params": [{"name": "ppo.learning_rate", "type": "float", "low": 0, "high": 1, "log": True}]}},
     "log scale"),
    ({"preset": "nope"}, "unknown preset"),
    ({"start": "0001-01-01", "end": "9999-12-31"}, "must lie within"),
    ({"start": "2001-01-01", "end": "2025-12-31"}, "longer than 3660 days"),
])
def test_bad_study_requests_are_refused_naming_the_problem(api: tuple[TestClient, str], change: dict[str, Any],
                                                          field: str) -> None:
    client, _ = api
    response = client.post("/v1/studies", json={**BODY, **change}, headers=headers("trainer-key"))
    assert response.status_code == 422 and field in response.text
    assert client.get("/v1/studies", headers=headers("reader-key")).json() == []


def test_studies_need_the_train_scope_to_create_and_read_to_look(api: tuple[TestClient, str]) -> None:
    client, _ = api
    assert client.post("/v1/studies", json=BODY, headers=headers("reader-key")).status_code == 403
    assert client.get("/v1/studies").status_code == 401
    assert client.get("/v1/studies/unknown", headers=headers("reader-key")).status_code == 404
