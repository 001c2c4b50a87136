"""The training-jobs REST API over a real Redis (RQ, JSON serializer) and PostgreSQL, no worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from scalper_shared.schema.training import TRAINING_JOB_FUNC, TRAINING_QUEUE, cancel_flag_key, job_id_for_key
from tests.integration.training_support import headers, policy_client, private_redis_server

pytestmark = pytest.mark.integration

CONFIG: dict[str, Any] = {"symbols": ["SPY", "QQQ"], "train_from": "2025-07-01", "train_to": "2025-07-31",
                          "validation_from": "2025-08-01", "validation_to": "2025-08-08", "total_timesteps": 5000}


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with private_redis_server(tmp_path) as url:
        yield url


@pytest.fixture
def api(redis_url: str, migrated_database_url: str, tmp_path: Path, stream_prefix: str) -> Iterator[TestClient]:
    with policy_client(redis_url, migrated_database_url, tmp_path / "artifacts", stream_prefix) as client:
        yield client


def test_posting_a_job_enqueues_it_on_the_training_queue_as_json(api: TestClient, redis_url: str,
                                                                  stream_prefix: str) -> None:
    response = api.post("/v1/training-jobs", json={**CONFIG, "preset": "seed", "ppo": {"n_epochs": 3}},
                        headers=headers("trainer-key", **{"Idempotency-Key": "k1"}))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["id"] == job_id_for_key("k1", stream_prefix) != job_id_for_key("k1") and body["state"] == "queued"
    assert response.headers["Location"] == f"/v1/training-jobs/{body['id']}"
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(stream_prefix + TRAINING_QUEUE, connection=connection, serializer=JSONSerializer)
    assert queue.job_ids == [body["id"]]
    assert Queue(TRAINING_QUEUE, connection=connection).count == 0  # the stack's own queue, not the shared one
    job = Job.fetch(body["id"], connection=connection, serializer=JSONSerializer)
    assert job.func_name == TRAINING_JOB_FUNC
    assert job.args[0]["total_timesteps"] == 5000 and job.args[0]["preset"] == "seed"
    assert job.args[0]["ppo"]["ent_coef"] == 0.08 and job.args[0]["ppo"]["n_epochs"] == 3  # preset + override
    assert job.args[0]["data_source"] == "database"
    assert job.retries_left == 3
    view = api.get(f"/v1/training-jobs/{body['id']}", headers=headers("reader-key")).json()
    assert view["state"] == "queued" and view["config"]["symbols"] == ["SPY", "QQQ"] and view["diagnostics"] == []


def test_an_unknown_preset_is_a_422_naming_the_known_ones(api: TestClient) -> None:
    response = api.post("/v1/training-jobs", json={**CONFIG, "preset": "nope"}, headers=headers("trainer-key"))
    assert response.status_code == 422 and "unknown preset 'nope'" in response.text and "seed" in response.text


def test_the_same_idempotency_key_and_config_give_the_same_job(api: TestClient, redis_url: str,
                                                                stream_prefix: str) -> None:
    first = api.post("/v1/training-jobs", json=CONFIG, headers=headers("trainer-key", **{"Idempotency-Key": "same"}))
    second = api.post("/v1/training-jobs", json=CONFIG, headers=headers("trainer-key", **{"Idempotency-Key": "same"}))
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert Queue(stream_prefix + TRAINING_QUEUE, connection=redis.Redis.from_url(redis_url)).count == 1
    other = api.post("/v1/training-jobs", json={**CONFIG, "seed": 9},
                     headers=headers("trainer-key", **{"Idempotency-Key": "same"}))
    assert other.status_code == 409 and "another config" in other.text


def test_jobs_without_a_key_are_distinct_and_listed_newest_first(api: TestClient) -> None:
    ids = [api.post("/v1/training-jobs", json=CONFIG, headers=headers("trainer-key")).json()["id"] for _ in range(2)]
    assert ids[0] != ids[1]
    listed = api.get("/v1/training-jobs", headers=headers("reader-key")).json()
    assert [j["id"] for j in listed] == ids[::-1]


def test_a_bad_config_is_a_422_naming_the_field(api: TestClient) -> None:
    response = api.post("/v1/training-jobs", json={**CONFIG, "validation_from": "2025-07-15"},
                        headers=headers("trainer-key"))
    assert response.status_code == 422 and "held out" in response.text
    response = api.post("/v1/training-jobs", json={**CONFIG, "n_envs": 0}, headers=headers("trainer-key"))
    assert response.status_code == 422 and "n_envs" in response.text


def test_scopes_guard_every_route(api: TestClient) -> None:
    assert api.post("/v1/training-jobs", json=CONFIG).status_code == 401
    assert api.post("/v1/training-jobs", json=CONFIG, headers=headers("reader-key")).status_code == 403
    assert api.get("/v1/training-jobs", headers=headers("nobody")).status_code == 401
    job_id = api.post("/v1/training-jobs", json=CONFIG, headers=headers("trainer-key")).json()["id"]
    assert api.delete(f"/v1/training-jobs/{job_id}", headers=headers("reader-key")).status_code == 403
    assert api.get(f"/v1/training-jobs/{job_id}", headers=headers("admin-key")).status_code == 200


def test_cancelling_a_queued_job_removes_it_from_the_queue(api: TestClient, redis_url: str,
                                                           stream_prefix: str) -> None:
    job_id = api.post("/v1/training-jobs", json=CONFIG, headers=headers("trainer-key")).json()["id"]
    response = api.delete(f"/v1/training-jobs/{job_id}", headers=headers("trainer-key"))
    assert response.status_code == 202 and response.json()["state"] == "cancelled"
    connection = redis.Redis.from_url(redis_url)
    assert Queue(stream_prefix + TRAINING_QUEUE, connection=connection, serializer=JSONSerializer).count == 0
    assert connection.exists(cancel_flag_key(job_id))
    assert api.delete(f"/v1/training-jobs/{job_id}", headers=headers("trainer-key")).status_code == 409


def test_an_unknown_job_is_a_404(api: TestClient) -> None:
    assert api.get("/v1/training-jobs/train-nope", headers=headers("reader-key")).status_code == 404
    assert api.delete("/v1/training-jobs/train-nope", headers=headers("trainer-key")).status_code == 404
